"""``seqboltz evaluate CHECKPOINT``: average test log-likelihood in nats."""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from seqboltz._io import atomic_write
from seqboltz.data._datamodule import build_datamodule
from seqboltz.eval._partition import (
    ais_log_partition,
    exact_log_partition,
    log_likelihood,
    log_progress_to_stderr,
)
from seqboltz.models import EnergyModel, load_model

__all__ = [
    "EvaluationReport",
    "data_record",
    "datamodule_from_card",
    "datamodule_from_checkpoint",
    "evaluate_checkpoint",
    "evaluate_main",
    "evaluate_model",
    "parse_data_spec",
]


@dataclass(frozen=True)
class EvaluationReport:
    """What ``seqboltz evaluate`` reports (JSON-serialisable)."""

    model: str
    n_visible: int
    n_hidden: int
    n_test: int
    method: str
    log_z: float
    log_z_low: float
    log_z_high: float
    test_log_likelihood: float
    test_log_likelihood_stderr: float
    ais_chains: int | None = None
    ais_betas: int | None = None

    def table(self) -> str:
        """Human-readable summary."""
        spread = (
            f" (±3σ: [{self.log_z_low:.2f}, {self.log_z_high:.2f}];"
            f" {self.ais_chains} chains × {self.ais_betas} β)"
            if self.method == "ais"
            else " (exact)"
        )
        rows = [
            ("model", f"{self.model} {self.n_visible}→{self.n_hidden}"),
            ("test examples", str(self.n_test)),
            ("log Z", f"{self.log_z:.3f}{spread}"),
            (
                "test log-likelihood",
                f"{self.test_log_likelihood:.2f} ± {self.test_log_likelihood_stderr:.2f} nats",
            ),
        ]
        return "\n".join(f"{k:<20} {v}" for k, v in rows)


def evaluate_model(
    model: EnergyModel,
    test: torch.Tensor,
    train: torch.Tensor | None,
    *,
    method: str = "auto",
    ais_chains: int = 100,
    ais_betas: int = 14500,
    seed: int = 0,
) -> EvaluationReport:
    """Average log-likelihood of ``test (N, D)`` under ``model``.

    ``method``: ``"exact"`` (enumeration), ``"ais"`` (base rates from ``train``) or
    ``"auto"`` (exact when the smaller binary side has ≤ 20 units).
    """
    small = model.n_hidden
    if model.visible_kind == "bernoulli":
        small = min(small, model.n_visible)
    if method == "auto":
        method = "exact" if small <= 20 else "ais"
    if method == "exact":
        log_z = low = high = exact_log_partition(model)
        chains = betas = None
    elif method == "ais":
        result = ais_log_partition(model, train, n_chains=ais_chains, n_betas=ais_betas, seed=seed)
        log_z, low, high = result.log_z, result.log_z_low, result.log_z_high
        chains, betas = ais_chains, result.n_betas
    else:
        raise ValueError(f"method must be 'auto', 'exact' or 'ais', got {method!r}")
    ll = log_likelihood(model, test, log_z)
    return EvaluationReport(
        model=type(model).__name__,
        n_visible=model.n_visible,
        n_hidden=model.n_hidden,
        n_test=int(ll.numel()),
        method=method,
        log_z=log_z,
        log_z_low=low,
        log_z_high=high,
        test_log_likelihood=float(ll.mean()),
        test_log_likelihood_stderr=float(ll.std() / math.sqrt(ll.numel()))
        if ll.numel() > 1
        else 0.0,
        ais_chains=chains,
        ais_betas=betas,
    )


def _run_config_data(checkpoint: Path) -> dict[str, Any] | None:
    """The ``data`` section of the ``config.yaml`` LightningCLI saved beside the run's
    ``checkpoints/`` folder, if there is one."""
    import yaml

    config = checkpoint.resolve().parent.parent / "config.yaml"
    try:
        data = yaml.safe_load(config.read_text()).get("data")
    except (OSError, AttributeError, yaml.YAMLError):
        return None
    return data if isinstance(data, dict) and "class_path" in data else None


def data_record(checkpoint: str | Path) -> dict[str, Any]:
    """``{"class_path", "init_args"}`` of the DataModule a checkpoint was trained on.

    The checkpoint's own record (the DataModule's hyperparameters) comes first; a DataModule
    that saved none is completed from the run's ``config.yaml`` when that names the same class.

    Raises:
        ValueError: the checkpoint records no DataModule (one line saying what to pass).
    """
    ckpt = torch.load(checkpoint, map_location="cpu", weights_only=True)
    entry = ckpt.get("seqboltz", {}).get("data") if isinstance(ckpt, dict) else None
    config = _run_config_data(Path(checkpoint))
    if not entry:
        if config is None:
            raise ValueError(
                f"{checkpoint} records no DataModule and has no config.yaml beside its run: "
                "pass --data CLASS_OR_CONFIG"
            )
        return {"class_path": config["class_path"], "init_args": config.get("init_args") or {}}
    init_args = dict(entry.get("init_args") or {})
    if not init_args and config is not None:
        if config["class_path"].rpartition(".")[2] == entry["class_path"].rpartition(".")[2]:
            init_args = dict(config.get("init_args") or {})
    record = {"class_path": entry["class_path"], "init_args": init_args}
    if entry.get("train_sha256"):
        record["train_sha256"] = entry["train_sha256"]
    return record


def datamodule_from_checkpoint(checkpoint: str | Path) -> Any:
    """Rebuild the DataModule a seqboltz checkpoint was trained on (any importable class).

    Raises:
        ValueError: nothing is recorded, the class cannot be imported, or an argument is
            missing (one line saying why).
    """
    record = data_record(checkpoint)
    try:
        return build_datamodule(record["class_path"], record["init_args"])
    except ValueError as exc:
        raise ValueError(f"cannot rebuild the data {checkpoint} was trained on: {exc}") from exc


def datamodule_from_card(card: dict[str, Any], **overrides: Any) -> Any:
    """Rebuild the DataModule an exported model was trained on, from its card's
    ``training.data`` (``overrides`` replace init arguments that are not ``None``).

    Raises:
        ValueError: the card records no data, or it cannot be rebuilt (one line saying why).
    """
    record = (card.get("training") or {}).get("data") or {}
    if "class_path" not in record:
        raise ValueError(f"model {card.get('name', '?')!r} records no training data on its card")
    init_args = {**(record.get("init_args") or {})}
    init_args.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return build_datamodule(record["class_path"], init_args)
    except ValueError as exc:
        raise ValueError(
            f"cannot rebuild the data {card.get('name', '?')!r} was trained on: {exc}"
        ) from exc


def parse_data_spec(spec: str, overrides: Sequence[str] = ()) -> tuple[str, dict[str, Any]]:
    """``--data`` and ``--data-arg`` of ``seqboltz evaluate`` as ``(class_path, init_args)``.

    ``spec`` is a DataModule class (``ImageDataModule``, ``my_pkg.MyData``), a YAML file with a
    ``data`` section (a recipe or a run's ``config.yaml``) or an inline mapping
    ``{class_path: …, init_args: {…}}``; each override is ``KEY=VALUE`` (VALUE read as YAML).
    """
    import yaml

    init_args: dict[str, Any] = {}
    path = Path(spec)
    if spec.lstrip().startswith("{") or path.suffix.lower() in (".yaml", ".yml", ".json"):
        try:
            loaded = yaml.safe_load(spec if spec.lstrip().startswith("{") else path.read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise ValueError(f"--data {spec}: cannot read it ({exc})") from exc
        section = loaded.get("data", loaded) if isinstance(loaded, dict) else None
        if isinstance(section, str):
            section = {"class_path": section}
        if not isinstance(section, dict) or not isinstance(section.get("class_path"), str):
            raise ValueError(f"--data {spec}: has no data class_path")
        class_path, init_args = section["class_path"], dict(section.get("init_args") or {})
    else:
        class_path = spec
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--data-arg takes KEY=VALUE, got {item!r}")
        init_args[key.removeprefix("init_args.")] = yaml.safe_load(value)
    return class_path, init_args


def evaluate_checkpoint(
    checkpoint: str | Path, data: str | None = None, **kwargs: Any
) -> EvaluationReport:
    """Evaluate a checkpoint on the test split of its (or the named) DataModule."""
    model = load_model(checkpoint)
    dm = _setup_datamodule(checkpoint, data)
    return evaluate_model(model, dm.eval_tensor(), dm.train_tensor, **kwargs)


def _setup_datamodule(
    checkpoint: str | Path, data: str | None, overrides: Sequence[str] = ()
) -> Any:
    """The DataModule to evaluate on, set up: ``data`` (see :func:`parse_data_spec`) or the
    one the checkpoint was trained on, with ``overrides``; warns on stderr when the rebuilt
    training data differ from those the checkpoint was trained on."""
    if data:
        dm = build_datamodule(*parse_data_spec(data, overrides))
        expected = None
    else:
        record = data_record(checkpoint)
        _, extra = parse_data_spec(record["class_path"], overrides)
        try:
            dm = build_datamodule(record["class_path"], {**record["init_args"], **extra})
        except ValueError as exc:
            raise ValueError(f"cannot rebuild the data {checkpoint} was trained on: {exc}") from exc
        expected = record.get("train_sha256")
    dm.prepare_data()
    dm.setup("fit")
    train = getattr(dm, "train_tensor", None)
    if expected and isinstance(train, torch.Tensor):
        digest = hashlib.sha256(train.detach().cpu().contiguous().numpy().tobytes()).hexdigest()
        if digest != expected:
            print(
                f"seqboltz evaluate: warning: the training data rebuilt by "
                f"{type(dm).__name__} are not those {checkpoint} was trained on "
                f"(sha256 {digest[:12]}…, recorded {expected[:12]}…)",
                file=sys.stderr,
            )
    return dm


def evaluate_main(argv: Sequence[str]) -> int:
    """``seqboltz evaluate`` entry point."""
    parser = argparse.ArgumentParser(
        prog="seqboltz evaluate",
        description="Average test log-likelihood (nats) of a trained model: exact log Z for "
        "small models, annealed importance sampling otherwise.",
    )
    parser.add_argument("checkpoint", help="a .ckpt written by `seqboltz fit`")
    parser.add_argument(
        "--data",
        metavar="CLASS_OR_CONFIG",
        help="evaluate on this DataModule: a class (ImageDataModule, my_pkg.MyData), a YAML "
        "file with a data section (a recipe, a run's config.yaml) or an inline mapping "
        "'{class_path: ..., init_args: {...}}' (default: the one the checkpoint was trained "
        "on, rebuilt from its record)",
    )
    parser.add_argument(
        "--data-arg",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="set one DataModule argument (repeatable), e.g. --data-arg path=other.npz",
    )
    parser.add_argument("--method", choices=["auto", "exact", "ais"], default="auto")
    parser.add_argument("--ais-chains", type=int, default=100)
    parser.add_argument("--ais-betas", type=int, default=14500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="also write the report as JSON here")
    parser.add_argument(
        "--seconds",
        type=float,
        help="sequence models: length of the generations (default 60 for motion, 5 for speech)",
    )
    parser.add_argument(
        "--gibbs-steps",
        type=int,
        help="sequence models: k (default: the k the checkpoint's intercept was re-centred "
        "at, the one its card will carry; 1 for a model whose frames do not depend on k; "
        "else 30)",
    )
    parser.add_argument(
        "--seeds", type=int, default=5, help="motion models: generation seeds per held-out clip"
    )
    parser.add_argument(
        "--out", type=Path, help="sequence models: folder for plots and a BVH or WAVs"
    )
    args = parser.parse_args(list(argv))
    log_progress_to_stderr()  # AIS progress and its ±3σ bounds
    try:
        model = load_model(args.checkpoint)
        from seqboltz.models import SequenceRBM, StructuredOutputCRBM

        if isinstance(model, StructuredOutputCRBM):
            return _evaluate_structured(model, args)
        if isinstance(model, SequenceRBM):
            return _evaluate_sequence(model, args)
        if model.is_conditional:
            raise ValueError(f"seqboltz evaluate has no evaluation for {type(model).__name__}")
        dm = _setup_datamodule(args.checkpoint, args.data, args.data_arg)
        report = evaluate_model(
            model,
            dm.eval_tensor(),
            dm.train_tensor,
            method=args.method,
            ais_chains=args.ais_chains,
            ais_betas=args.ais_betas,
            seed=args.seed,
        )
    except (OSError, ValueError, NotImplementedError) as exc:
        parser.exit(2, f"seqboltz evaluate: error: {' '.join(str(exc).split())}\n")
    print(report.table())
    if args.json:
        atomic_write(args.json, lambda f: f.write(json.dumps(asdict(report), indent=2)), text=True)
    return 0


def _evaluate_structured(model: EnergyModel, args: argparse.Namespace) -> int:
    """Pixel (output-unit) error of ``p(y | x)`` predictions on the test pairs, for both
    inferences and both starts (:meth:`~seqboltz.models.StructuredOutputCRBM.predict`)."""
    from seqboltz.models import StructuredOutputCRBM

    assert isinstance(model, StructuredOutputCRBM)
    dm = _setup_datamodule(args.checkpoint, args.data, args.data_arg)
    pairs = getattr(dm, "pairs", None)
    if not callable(pairs):
        raise ValueError(
            f"{type(dm).__name__} has no (y, x) pairs to evaluate a structured model on"
        )
    y, x = pairs("test")
    model = model.to(torch.float64)
    y, x = y.to(torch.float64), x.to(torch.float64)
    rows: dict[str, float] = {
        "input x as the prediction": float(((x > 0.5) != (y > 0.5)).double().mean())
    }
    for method in ("mean_field", "map"):
        for start in ("zeros", "input"):
            pred = model.predict(x, method, 30, start)
            rows[f"{method}, y0 = {start}"] = float(((pred > 0.5) != (y > 0.5)).double().mean())
    print(f"{type(model).__name__} on {y.shape[0]} test pairs: output-unit error %")
    for name, err in rows.items():
        print(f"  {name:<28}{100 * err:7.2f}")
    if args.json:
        atomic_write(
            args.json,
            lambda f: f.write(json.dumps({"n_test": int(y.shape[0]), "error": rows}, indent=2)),
            text=True,
        )
    return 0


def _gibbs_steps(args: argparse.Namespace, model: EnergyModel) -> int:
    """``--gibbs-steps``, else :func:`~seqboltz.models.default_gibbs_steps` (the k the
    checkpoint was re-centred at; 1 for a model whose frames do not depend on k; else 30)."""
    from seqboltz.models import default_gibbs_steps, recentred_gibbs_steps

    if args.gibbs_steps is not None:
        return int(args.gibbs_steps)
    return default_gibbs_steps(model, recentred_gibbs_steps(args.checkpoint))


def _evaluate_sequence(model: EnergyModel, args: argparse.Namespace) -> int:
    from seqboltz.eval._sequence_report import evaluate_sequence_model
    from seqboltz.models import SequenceRBM
    from seqboltz.speech import SpeechFeatures

    assert isinstance(model, SequenceRBM)
    dm = _setup_datamodule(args.checkpoint, args.data, args.data_arg)
    evaluate: Any = evaluate_sequence_model
    default_seconds = 60.0
    extra: dict[str, Any] = {"n_seeds": args.seeds}
    if isinstance(getattr(dm, "features", None), SpeechFeatures):
        from seqboltz.eval._speech_report import evaluate_speech_model, evaluate_tts_model

        evaluate, default_seconds, extra = evaluate_speech_model, 5.0, {}
        if callable(getattr(dm, "control_clips", None)):  # text to speech: prompts run free
            evaluate = evaluate_tts_model
    report = evaluate(
        model,
        dm,
        seconds=default_seconds if args.seconds is None else args.seconds,
        gibbs_steps=_gibbs_steps(args, model),
        seed=args.seed,
        out_dir=args.out,
        **extra,
    )
    print(report.table())
    for name, path in report.files.items():
        print(f"{name:<14}{path}")
    if args.json:
        atomic_write(
            args.json, lambda f: f.write(json.dumps(report.to_dict(), indent=2)), text=True
        )
    return 0
