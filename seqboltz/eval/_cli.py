"""``seqboltz evaluate CHECKPOINT``: average test log-likelihood in nats."""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from seqboltz.data._datamodule import build_datamodule
from seqboltz.eval._partition import ais_log_partition, exact_log_partition, log_likelihood
from seqboltz.models import EnergyModel, load_model

__all__ = ["EvaluationReport", "evaluate_checkpoint", "evaluate_main", "evaluate_model"]


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


def datamodule_from_checkpoint(checkpoint: str | Path) -> Any:
    """Rebuild the DataModule recorded in a seqboltz checkpoint (only ``seqboltz.data`` classes)."""
    ckpt = torch.load(checkpoint, map_location="cpu", weights_only=True)
    entry = ckpt.get("seqboltz", {}).get("data")
    if not entry:
        raise ValueError(f"{checkpoint} records no data module; pass --data")
    return build_datamodule(entry["class_path"], entry.get("init_args", {}))


def evaluate_checkpoint(
    checkpoint: str | Path, data: str | None = None, **kwargs: Any
) -> EvaluationReport:
    """Evaluate a checkpoint on the test split of its (or the named) DataModule."""
    model = load_model(checkpoint)
    dm = _setup_datamodule(checkpoint, data)
    return evaluate_model(model, dm.eval_tensor(), dm.train_tensor, **kwargs)


def _setup_datamodule(checkpoint: str | Path, data: str | None) -> Any:
    dm = build_datamodule(data, {}) if data else datamodule_from_checkpoint(checkpoint)
    dm.prepare_data()
    dm.setup("fit")
    return dm


def evaluate_main(argv: Sequence[str]) -> int:
    """``seqboltz evaluate`` entry point."""
    parser = argparse.ArgumentParser(
        prog="seqboltz evaluate",
        description="Average test log-likelihood (nats) of a trained model: exact log Z for "
        "small models, annealed importance sampling otherwise.",
    )
    parser.add_argument("checkpoint", help="a .ckpt written by `seqboltz fit`")
    parser.add_argument("--data", help="DataModule name (default: the one it was trained on)")
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
    parser.add_argument("--gibbs-steps", type=int, default=30, help="sequence models: k")
    parser.add_argument(
        "--out", type=Path, help="sequence models: folder for plots and a BVH or WAVs"
    )
    args = parser.parse_args(list(argv))
    try:
        model = load_model(args.checkpoint)
        from seqboltz.models import SequenceRBM, StructuredOutputCRBM

        if isinstance(model, StructuredOutputCRBM):
            return _evaluate_structured(model, args)
        if isinstance(model, SequenceRBM):
            return _evaluate_sequence(model, args)
        if model.is_conditional:
            raise ValueError(f"seqboltz evaluate has no evaluation for {type(model).__name__}")
        report = evaluate_checkpoint(
            args.checkpoint,
            args.data,
            method=args.method,
            ais_chains=args.ais_chains,
            ais_betas=args.ais_betas,
            seed=args.seed,
        )
    except (FileNotFoundError, ValueError, NotImplementedError) as exc:
        parser.error(str(exc))
    print(report.table())
    if args.json:
        args.json.write_text(json.dumps(asdict(report), indent=2))
    return 0


def _evaluate_structured(model: EnergyModel, args: argparse.Namespace) -> int:
    """Pixel (output-unit) error of ``p(y | x)`` predictions on the test pairs, for both
    inferences and both starts (:meth:`~seqboltz.models.StructuredOutputCRBM.predict`)."""
    from seqboltz.models import StructuredOutputCRBM

    assert isinstance(model, StructuredOutputCRBM)
    dm = _setup_datamodule(args.checkpoint, args.data)
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
        args.json.write_text(json.dumps({"n_test": int(y.shape[0]), "error": rows}, indent=2))
    return 0


def _evaluate_sequence(model: EnergyModel, args: argparse.Namespace) -> int:
    from seqboltz.eval._sequence_report import evaluate_sequence_model
    from seqboltz.models import SequenceRBM
    from seqboltz.speech import SpeechFeatures

    assert isinstance(model, SequenceRBM)
    dm = _setup_datamodule(args.checkpoint, args.data)
    evaluate: Any = evaluate_sequence_model
    default_seconds = 60.0
    if isinstance(getattr(dm, "features", None), SpeechFeatures):
        from seqboltz.eval._speech_report import evaluate_speech_model

        evaluate, default_seconds = evaluate_speech_model, 5.0
    report = evaluate(
        model,
        dm,
        seconds=default_seconds if args.seconds is None else args.seconds,
        gibbs_steps=args.gibbs_steps,
        seed=args.seed,
        out_dir=args.out,
    )
    print(report.table())
    for name, path in report.files.items():
        print(f"{name:<14}{path}")
    if args.json:
        args.json.write_text(json.dumps(report.to_dict(), indent=2))
    return 0
