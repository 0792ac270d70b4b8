"""Benchmark: motion quality of the motion recipes beside AR and repeat-last-frame.

Trains (or loads) each motion recipe, fits the least-squares AR baseline of the same order on
the same training clips, and scores everything on the held-out **test** clips of the recipe's
DataModule (its public splits; nothing else of the data pipeline is used), with every model
generating ``--seconds`` from each test clip's first ``order`` frames for ``--seeds`` seeds:

* one-step MSE, NPSS, power-spectrum KL both ways and entropy (Hernandez et al. 2019),
  Fréchet distance on pose + velocity, foot skating, dimensions within 0.5–2× of real
  spread over the last 10 s (real motion's spread within 10-s pieces; the held-out clips' own
  value in the real row), diversity across seeds and the copy check
  (:mod:`seqboltz.eval._motion_metrics`), each a mean over clips × seeds with a two-way
  bootstrap 95 % interval;
* for a recipe with a speed style: the speed-control gain per seed (low → high → low request).

AR generates with Gaussian residual noise of its training residual covariance (a generative
peer); a ``real (held out)`` row gives the values of real motion. Every model is the
checkpoint the recipe itself chose on validation clips (its ``best.ckpt``, else its last; no
choice on test clips). The table is printed; ``--json`` writes everything.

``--train-seeds N`` trains each recipe N times (``seed_everything`` 0 … N−1), and
checkpoints named ``NAME@SEED=PATH`` are grouped the same way: a summary then gives each
training run's paired difference to AR and their pooled mean with a three-way bootstrap
interval (training runs × clips × generation seeds), so one lucky run cannot pass.

Run from the repository root, e.g. a short proof run and the full one::

    python benchmarks/motion_quality.py --epochs 2 --seconds 20 --json /tmp/mq.json
    python benchmarks/motion_quality.py --json benchmarks/motion_quality.json
    python benchmarks/motion_quality.py --data-path /my/clips   # a user's own clips
    python benchmarks/motion_quality.py --checkpoint runs/x/last.ckpt  # no training
    python benchmarks/motion_quality.py --recipes motion_rcrbm --train-seeds 5 --gibbs-steps 1
    python benchmarks/motion_quality.py --checkpoint r@0=runs/a/best.ckpt r@1=runs/b/best.ckpt
    python benchmarks/motion_quality.py --artifact shipped=serving/models/motion_crbm.onnx \
        --checkpoint new=runs/x/best.ckpt   # what the service serves, through the runtime

An ``--artifact`` is an exported model scored through the torch-free runtime (what the
service streams, at its card's ``k``; the same seed gives the same frames as its checkpoint
would), on the data its card was trained on, rebuilt and checked against the card
(:func:`~seqboltz.eval._cli.datamodule_from_card`); every model in one run must share it.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))  # `_common` when run as a script

from _common import (
    artifact_with_data,
    dump_json,
    fit_recipe,
    format_machine_info,
    machine_info,
    set_threads,
)

from seqboltz._io import atomic_write
from seqboltz.eval._cli import datamodule_from_checkpoint
from seqboltz.eval._motion_metrics import bootstrap_ci
from seqboltz.eval._sequence import (
    STABILISE_METHODS,
    RepeatLastFrame,
    fit_linear_ar,
    one_step_errors,
    stabilise_ar,
)
from seqboltz.eval._sequence_report import (
    AR_NAME,
    REAL_NAME,
    REPEAT_NAME,
    SequenceEvaluation,
    generate_seeds,
    model_generator,
    model_one_step_mse,
    motion_pictures,
    motion_reference,
    paired_difference,
    real_row,
    score_generations,
    speed_control,
    speed_gain,
)
from seqboltz.models import SequenceRBM, load_model, recentred_gibbs_steps

REPO = Path(__file__).resolve().parents[1]
RECIPES = ("motion_crbm", "motion_fcrbm")


def train(
    recipe: str,
    root: Path,
    epochs: int | None,
    data_path: str | None,
    threads: int,
    seed: int | None = None,
) -> Path:
    """Fit ``recipes/<recipe>.yaml`` (optionally fewer epochs, another data folder or another
    ``seed_everything``) into ``root`` and return the checkpoint the recipe chose on its
    validation clips (``best.ckpt`` beside the last one, else the last)."""
    config = yaml.safe_load((REPO / "recipes" / f"{recipe}.yaml").read_text())
    if epochs is not None:
        config["trainer"]["max_epochs"] = epochs
        config["trainer"]["check_val_every_n_epoch"] = max(1, min(epochs, 10))
    if data_path is not None:
        config["data"].setdefault("init_args", {})["path"] = data_path
    if seed is not None:
        config["seed_everything"] = seed
    name = recipe if seed is None else f"{recipe}@{seed}"
    path = root / f"{name}.yaml"
    atomic_write(path, lambda fh: yaml.safe_dump(config, fh, sort_keys=False), text=True)
    last = fit_recipe(path, root / name, threads=threads)
    best = last.with_name("best.ckpt")
    return best if best.is_file() else last


def parse_checkpoints(specs: list[str]) -> dict[str, Path]:
    """``PATH`` or ``NAME=PATH`` → ``{label: path}`` (label: NAME, else the file's stem).
    Labels must be unique: two ``best.ckpt`` need names."""
    out: dict[str, Path] = {}
    for spec in specs:
        label, sep, path = spec.partition("=")
        ckpt = Path(path) if sep else Path(spec)
        label = label if sep else ckpt.stem
        if label in out:
            raise SystemExit(f"--checkpoint: the label {label!r} is given twice; use NAME=PATH")
        out[label] = ckpt
    return out


#: issue 13's four realism measures (lower is better for each)
REALISM = {
    "npss": "NPSS",
    "pskl": "PSKL (mean of both)",
    "frechet": "Fréchet",
    "foot_skating": "foot skating",
}
#: reported beside them, not counted: the Fréchet distance pooled over clips per seed, as FID
#: is computed (its interval resamples the seeds only)
POOLED = {"frechet_pooled": "Fréchet, pooled"}


def target_report(rows: list[dict[str, Any]], baseline_name: str, n_boot: int) -> str:
    """Each row against the baseline on the four realism measures: the paired difference
    (same clips and seeds) with its 95 % interval, and the issue's stricter test, marginal
    intervals that do not overlap."""
    base = next((r for r in rows if r["model"] == baseline_name), None)
    if base is None:
        return ""
    head = f"against {baseline_name}: paired difference [95 % interval]"
    lines = ["", head + "; 'wins' = the two marginal intervals do not overlap"]
    for row in rows:
        if row is base or "cells" not in row:
            continue
        wins = ties = 0
        cells = []
        for key, title in REALISM.items():
            mean, low, high = paired_difference(row, base, key, n_boot)
            (lo_a, hi_a), (lo_b, hi_b) = row[f"{key}_ci"], base[f"{key}_ci"]
            win, loss = hi_a < lo_b, lo_a > hi_b
            wins, ties = wins + win, ties + (not win and not loss)
            verdict = "wins" if win else "loses" if loss else "overlaps"
            cells.append(f"{title} {mean:+.3g} [{low:+.3g}, {high:+.3g}] ({verdict})")
        lines.append(f"  {row['model']}: " + "; ".join(cells))
        lines.append(f"    wins {wins}/4, overlaps {ties}/4 (target: >= 3 wins, no loss)")
        for key, title in POOLED.items():
            if key not in row.get("cells", {}) or key not in base.get("cells", {}):
                continue
            mean, low, high = paired_difference(row, base, key, n_boot)
            (lo_a, hi_a), (lo_b, hi_b) = row[f"{key}_ci"], base[f"{key}_ci"]
            verdict = "wins" if hi_a < lo_b else "loses" if lo_a > hi_b else "overlaps"
            lines.append(
                f"    beside them, {title}: {row[key]:.4g} against {base[key]:.4g}, "
                f"{mean:+.3g} [{low:+.3g}, {high:+.3g}] ({verdict})"
            )
    real = next((r for r in rows if r["model"] == REAL_NAME), None)
    if real is not None:  # the ceiling: real training motion scored like a generation
        cells = []
        for key in ("npss", "pskl", "frechet", "frechet_pooled"):
            if f"{key}_ci" not in real and key not in real:
                continue
            (lo_a, hi_a) = real.get(f"{key}_ci", (real[key], real[key]))
            (lo_b, hi_b) = base[f"{key}_ci"]
            verdict = "wins" if hi_a < lo_b else "loses" if lo_a > hi_b else "overlaps"
            title = {**REALISM, **POOLED}[key]
            cells.append(f"{title} {real[key]:.4g} against {base[key]:.4g} ({verdict})")
        lines.append(f"  {REAL_NAME}, real training motion: " + "; ".join(cells))
    stable = [
        f"{r['model']} {r['std_ratio_within']}/{r['n_dims']} "
        f"({r['std_ratio_within'] / r['n_dims']:.0%})"
        for r in rows
        if r.get("n_dims")
    ]
    if stable:  # the 60-s target, beside what real held-out clips get the same way
        lines.append("  dims within 0.5-2x over 60 s (target >= 90 %): " + "; ".join(stable))
    return "\n".join(lines)


def training_seed_report(
    rows: list[dict[str, Any]], baseline_name: str, n_boot: int
) -> tuple[str, dict[str, Any]]:
    """Rows labelled ``NAME@SEED`` grouped by NAME: per measure, each training run's paired
    difference to the baseline, how many runs win by the issue's test (marginal intervals
    apart), and the pooled mean difference with a three-way bootstrap interval over training
    runs × clips × generation seeds (:func:`bootstrap_ci` on a ``(runs, clips, seeds)`` table).
    The pooled model's own interval (same bootstrap) is set against the baseline's for the
    issue's test. Returns the text and the figures."""
    base = next((r for r in rows if r["model"] == baseline_name), None)
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        label = row.get("label", "")
        if "@" in label and "cells" in row:
            groups.setdefault(label.rsplit("@", 1)[0], []).append(row)
    groups = {k: v for k, v in groups.items() if len(v) >= 2}
    if base is None or not groups:
        return "", {}
    lines = ["", f"over training runs, against {baseline_name} (pooled: three-way bootstrap)"]
    figures: dict[str, Any] = {}
    for name, runs in groups.items():
        seeds = [r["label"].rsplit("@", 1)[1] for r in runs]
        lines.append(f"  {name}, {len(runs)} training runs (seeds {', '.join(seeds)}):")
        per: dict[str, Any] = {}
        for key, title in {**REALISM, **POOLED}.items():
            if any(key not in r.get("cells", {}) for r in [*runs, base]):
                continue
            cells = np.stack([np.asarray(r["cells"][key], dtype=np.float64) for r in runs])
            ref = np.asarray(base["cells"][key], dtype=np.float64)
            diff = bootstrap_ci(cells - ref[None], n_boot=n_boot)
            pooled = bootstrap_ci(cells, n_boot=n_boot)
            lo_b, hi_b = base[f"{key}_ci"]
            per_run = [paired_difference(r, base, key, n_boot)[0] for r in runs]
            run_wins = sum(r[f"{key}_ci"][1] < lo_b for r in runs)
            verdict = "wins" if pooled[2] < lo_b else "loses" if pooled[1] > hi_b else "overlaps"
            per[key] = {
                "per_run_difference": per_run,
                "runs_winning": run_wins,
                "pooled": pooled,
                "pooled_difference": diff,
                "pooled_verdict": verdict,
            }
            runs_text = ", ".join(f"{d:+.3g}" for d in per_run)
            lines.append(
                f"    {title}: pooled {pooled[0]:.4g} [{pooled[1]:.4g}, {pooled[2]:.4g}] "
                f"({verdict}); difference {diff[0]:+.3g} [{diff[1]:+.3g}, {diff[2]:+.3g}]; "
                f"per run {runs_text}; runs winning {run_wins}/{len(runs)}"
            )
        counted = [v for k, v in per.items() if k in REALISM]
        wins = sum(v["pooled_verdict"] == "wins" for v in counted)
        losses = sum(v["pooled_verdict"] == "loses" for v in counted)
        lines.append(f"    pooled: wins {wins}/4, loses {losses}/4 (target: >= 3 wins, no loss)")
        figures[name] = {"seeds": seeds, "measures": per, "wins": wins, "losses": losses}
    return "\n".join(lines), figures


def _setup(checkpoint: Path) -> Any:
    dm = datamodule_from_checkpoint(checkpoint)
    dm.prepare_data()
    dm.setup("fit")
    return dm


def _load_artifacts(parser: argparse.ArgumentParser, specs: list[str]) -> dict[str, Any]:
    """``{NAME: (artifact, its training DataModule, set up)}`` of ``NAME=PATH.onnx`` specs; a
    bad spec, file or card ends the script through ``parser.error`` (one line)."""
    out: dict[str, Any] = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep or not name or not path:
            parser.error(f"--artifact {spec!r}: give NAME=PATH.onnx")
        out[name] = artifact_with_data(parser, path, what=f"--artifact {spec!r}: ")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipes", nargs="+", default=list(RECIPES), help="recipes to train")
    parser.add_argument(
        "--checkpoint", nargs="+", help="load these instead (PATH or NAME=PATH; NAME@SEED groups)"
    )
    parser.add_argument(
        "--train-seeds",
        type=int,
        default=0,
        help="train each recipe this many times (seed_everything 0..N-1) and summarise over them",
    )
    parser.add_argument(
        "--artifact",
        nargs="+",
        default=[],
        help="also score these exported models through the runtime (NAME=PATH.onnx)",
    )
    parser.add_argument("--epochs", type=int, help="override the recipes' max_epochs")
    parser.add_argument("--data-path", help="a folder of the user's clips (--data.init_args.path)")
    parser.add_argument("--seeds", type=int, default=5, help="generation seeds per clip (>= 5)")
    parser.add_argument("--seconds", type=float, default=60.0, help="length of generations")
    parser.add_argument(
        "--gibbs-steps",
        type=int,
        help="k of Taylor's sampler (default: each checkpoint's re-centred k, else 30)",
    )
    parser.add_argument("--boot", type=int, default=2000, help="bootstrap resamples")
    parser.add_argument("--threads", type=int, default=1, help="torch/BLAS threads")
    parser.add_argument("--root", type=Path, default=REPO / "runs" / "motion_quality")
    parser.add_argument("--pictures", type=Path, help="folder for pictures of the body")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument(
        "--ar-radius",
        type=float,
        help="also score AR with its spectrum shrunk to this radius (the stabilisation a "
        "ResidualCRBM's max_radius applies), to show what the hidden units add beyond it",
    )
    parser.add_argument(
        "--ar-stabilise",
        nargs="+",
        choices=STABILISE_METHODS,
        default=["scale"],
        help="with --ar-radius: how (scale: every root times the same factor; clip: only the "
        "roots above the radius); one AR row per method",
    )
    parser.add_argument(
        "--plant-feet",
        action="store_true",
        help="score every generator (models and baselines alike) after the footskate cleanup "
        "of `seqboltz synthesize --plant-feet` (seqboltz.motion.plant_feet)",
    )
    args = parser.parse_args(argv)
    if args.ar_radius is not None and not 0 < args.ar_radius <= 1:
        parser.error(f"--ar-radius must be in (0, 1]; got {args.ar_radius}")
    if args.seeds < 2:
        parser.error("--seeds must be >= 2 (diversity needs pairs; the table needs >= 5)")
    set_threads(args.threads)
    started = time.perf_counter()

    if args.train_seeds < 0:
        parser.error(f"--train-seeds must be >= 0; got {args.train_seeds}")
    artifacts = _load_artifacts(parser, args.artifact)
    if args.checkpoint:
        checkpoints = parse_checkpoints(args.checkpoint)
    elif artifacts:
        checkpoints = {}
    elif args.train_seeds:
        checkpoints = {
            f"{r}@{seed}": train(r, args.root, args.epochs, args.data_path, args.threads, seed)
            for r in args.recipes
            for seed in range(args.train_seeds)
        }
    else:
        checkpoints = {
            r: train(r, args.root, args.epochs, args.data_path, args.threads) for r in args.recipes
        }
    seeds = list(range(args.seeds))
    rows: list[dict[str, Any]] = []
    speed: dict[str, Any] = {}
    baseline: tuple[Any, Any] | None = None
    first_gens: dict[str, np.ndarray] = {}
    for label, ckpt in checkpoints.items():
        model = load_model(ckpt)
        if not isinstance(model, SequenceRBM):
            parser.error(f"{ckpt} holds a {type(model).__name__}, not a sequence model")
        model = model.double().eval()
        dm = _setup(ckpt)
        ref = motion_reference(dm, plant=args.plant_feet)
        if baseline is None:
            baseline = (dm, ref)
        test = dm.clips("test")
        starts = np.stack([c[: model.order] for c in test])
        n_frames = round(args.seconds * ref.fps)
        t0 = time.perf_counter()
        k = args.gibbs_steps or recentred_gibbs_steps(ckpt) or 30
        gens = generate_seeds(model_generator(model, dm, k), starts, n_frames, seeds)
        mse = model_one_step_mse(model, dm, k, seeds[0])
        name = f"{type(model).__name__} ({label})"
        row = score_generations(name, gens, ref, one_step_mse=mse, n_boot=args.boot)
        row["checkpoint"] = str(ckpt)
        row["label"] = label
        row["gibbs_steps"] = k
        row["generation_seconds"] = time.perf_counter() - t0
        rows.append(row)
        first_gens[name] = gens[0]
        if model.n_style > 0:
            per_seed = [speed_control(model, dm, k, s) for s in seeds]
            gains = [speed_gain(seg) for seg in per_seed]
            speed[name] = {"segments": per_seed, "gain": gains}
        print(f"scored {name} in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    for label, (art, art_dm) in artifacts.items():
        if baseline is None:
            baseline = (art_dm, motion_reference(art_dm, plant=args.plant_feet))
        dm, ref = baseline
        if art_dm.n_features != dm.n_features or repr(art_dm) != repr(dm):
            parser.error(f"--artifact {label}: trained on other data than {dm!r}")
        test = dm.clips("test")
        starts = np.stack([c[: art.order] for c in test])
        n_frames = round(args.seconds * ref.fps)
        t0 = time.perf_counter()

        style = None  # a styled model: each clip's mean held-out style, as model_generator
        if art.style_size:
            style = np.stack([s.mean(0) for s in dm.style_clips("test")])

        def runtime(
            starts: np.ndarray, n: int, seed: int, art: Any = art, style: Any = style
        ) -> np.ndarray:
            kwargs = {} if style is None else {"style": style[: starts.shape[0]]}
            return art.generate(
                n, seed=seed, seed_frames=starts, gibbs_steps=art.gibbs_steps, **kwargs
            )

        gens = generate_seeds(runtime, starts, n_frames, seeds)
        name = f"{art.name} ({label}, runtime)"
        row = score_generations(name, gens, ref, n_boot=args.boot)
        row.update(label=label, checkpoint=None, gibbs_steps=art.gibbs_steps)
        row["generation_seconds"] = time.perf_counter() - t0
        rows.append(row)
        first_gens[name] = gens[0]
        print(f"scored {name} in {time.perf_counter() - t0:.0f} s", file=sys.stderr)

    assert baseline is not None
    dm, ref = baseline
    order = int(dm.order)
    train_clips, test = dm.clips("train"), dm.clips("test")
    starts = np.stack([c[:order] for c in test])
    n_frames = round(args.seconds * ref.fps)
    ar = fit_linear_ar(train_clips, order)
    repeat = RepeatLastFrame(order)
    peers = [(AR_NAME.format(order=order), ar.generate, ar.predict)]
    for method in args.ar_stabilise if args.ar_radius is not None else []:
        stable = stabilise_ar(ar, train_clips, args.ar_radius, method)
        how = ", roots clipped" if method == "clip" else ""
        name = f"linear AR (order {order}, radius <= {args.ar_radius:g}{how})"
        peers.append((name, stable.generate, stable.predict))
    peers.append((REPEAT_NAME, repeat.generate, repeat.predict))
    for name, gen, predict in peers:
        gens = generate_seeds(gen, starts, n_frames, seeds)
        mse = one_step_errors(predict, test, order)["mse"]
        rows.append(score_generations(name, gens, ref, one_step_mse=mse, n_boot=args.boot))
        first_gens[name] = gens[0]

    settings: dict[str, Any] = {
        "seconds": args.seconds,
        "gibbs_steps": args.gibbs_steps,
        "seeds": seeds,
        "n_seeds": len(seeds),
        "fps": ref.fps,
        "order": order,
        "n_test_clips": len(test),
        "n_test_captured_clips": ref.n_groups,
        "spectral_window_frames": ref.window,
        "epochs": args.epochs,
        "data_path": args.data_path,
        "data": repr(dm),
        "ar_radius": args.ar_radius,
        "ar_stabilise": args.ar_stabilise,
        "plant_feet": args.plant_feet,
    }
    if ref.body is not None:
        settings["length_unit"] = ref.body.length_unit
    report = SequenceEvaluation(rows=rows, settings=settings, reference=real_row(ref))
    print(format_machine_info(machine_info()))
    print(report.table())
    print(target_report([*rows, report.reference], AR_NAME.format(order=order), args.boot))
    seed_text, over_seeds = training_seed_report(rows, AR_NAME.format(order=order), args.boot)
    if seed_text:
        print(seed_text)
    for name, s in speed.items():
        gains = ", ".join(f"{g:.2f}" for g in s["gain"])
        n_ok = sum(g >= 0.7 for g in s["gain"])
        print(f"\n{name}: speed-control gain per seed [{gains}]; >= 0.7 in {n_ok}/{len(seeds)}")
    if args.pictures is not None and ref.body is not None:
        models = rows[: len(checkpoints) + len(artifacts)]
        model_name = next((r["model"] for r in models if not r["exploded"]), models[0]["model"])
        ar_name = AR_NAME.format(order=order)
        if np.isfinite(first_gens[model_name]).all():
            files = motion_pictures(
                args.pictures, dm, ref, first_gens[model_name], first_gens[ar_name], model_name, 0
            )
            print("\n".join(f"{k:<14}{v}" for k, v in files.items()))
            report.files = files
    elapsed = time.perf_counter() - started
    print(f"\ntotal {elapsed:.0f} s", file=sys.stderr)
    if args.json is not None:
        result = {
            "machine": machine_info(),
            "report": report,
            "speed_control": speed,
            "over_training_runs": over_seeds,
        }
        atomic_write(args.json, lambda fh: fh.write(dump_json(result) + "\n"), text=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
