"""Benchmark: Taylor, Hinton & Roweis (2007)'s two-layer CRBM on the residual CRBM, beside the
one-layer model and least-squares AR, on held-out motion clips.

Layer 1 is a trained ``ResidualCRBM`` checkpoint (``recipes/motion_rcrbm.yaml``; trained here
when none is given). For each top-layer setting (``--order2`` frames of ``h¹``, ``--hidden2``
units, ``--epochs``), ``recipes/motion_rcrbm_layer2.yaml`` fits a ``BinaryConditionalRBM`` on
layer 1's hidden probabilities (``CRBMHiddenDataModule``: layer 1's own clips and splits), and
``seqboltz stack`` (:func:`~seqboltz.training._stack.stack_checkpoints`) stacks the two and
re-centres layer 1's intercept on the stack's own sampler; the stack is saved as a checkpoint
with layer 1's data record, so ``seqboltz evaluate`` and ``export`` take it.

Every model generates ``--seconds`` from each held-out clip of ``--split`` for ``--seeds``
seeds at the card's k (``--gibbs-steps``) and is scored by the motion report
(:func:`seqboltz.eval._sequence_report.score_generations`: NPSS, PSKL, Fréchet, foot skating,
stability, diversity, copy check; means over captured clips × seeds with 95 % intervals), with
the paired difference to AR. The stack needs ``order1 + order2`` start frames; its generation is
scored from frame ``order1`` like the others' (the real frames ``order1 … order1 + order2 - 1``
first), so every row covers the same frames. Settings are chosen on ``--split val``; the test
clips are scored once with the chosen one::

    python benchmarks/motion_two_layer.py --layer1 runs/.../best.ckpt --split val \\
        --order2 3 6 --json benchmarks/motion_two_layer_val.json
    python benchmarks/motion_two_layer.py --layer1 runs/.../best.ckpt --split test --order2 3
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # `_common` when run as a script

from _common import dump_json, fit_recipe, format_machine_info, machine_info, set_threads
from motion_quality import target_report

from seqboltz.eval._cli import datamodule_from_checkpoint
from seqboltz.eval._sequence_report import (
    SequenceEvaluation,
    SplitView,
    ar_row,
    generate_seeds,
    model_generator,
    motion_reference,
    real_row,
    realism_score,
    score_generations,
)
from seqboltz.models import ResidualCRBM, TwoLayerCRBM, load_model
from seqboltz.training._stack import stack_checkpoints

REPO = Path(__file__).resolve().parents[1]


def fit_layer2(layer1: Path, root: Path, order2: int, hidden2: int, epochs: int) -> Path:
    """Fit ``recipes/motion_rcrbm_layer2.yaml`` on ``layer1``'s hidden probabilities; return
    its last checkpoint."""
    import yaml

    config = yaml.safe_load((REPO / "recipes" / "motion_rcrbm_layer2.yaml").read_text())
    config["model"]["energy_model"]["init_args"].update(n_hidden=hidden2, order=order2)
    config["data"]["init_args"].update(checkpoint=str(layer1), order=order2)
    config["trainer"]["max_epochs"] = epochs
    root.mkdir(parents=True, exist_ok=True)
    recipe = root / "layer2.yaml"
    recipe.write_text(yaml.safe_dump(config))
    return fit_recipe(recipe, root, threads=1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--layer1", type=Path, help="a ResidualCRBM checkpoint (default: train)")
    parser.add_argument("--split", choices=("val", "test"), default="val")
    parser.add_argument("--order2", type=int, nargs="+", default=[2], help="frames of h1")
    parser.add_argument("--hidden2", type=int, nargs="+", default=[200], help="top hidden units")
    parser.add_argument("--epochs", type=int, nargs="+", default=[10], help="top-layer epochs")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--gibbs-steps", type=int, default=1, help="k (the recipe card's)")
    parser.add_argument("--boot", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--root", type=Path, default=REPO / "runs" / "motion_two_layer")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    if args.seeds < 2:
        parser.error("--seeds must be >= 2")
    set_threads(args.threads)
    started = time.perf_counter()
    layer1_ckpt = args.layer1 or fit_recipe(
        REPO / "recipes" / "motion_rcrbm.yaml", args.root / "layer1", threads=1
    )
    if not layer1_ckpt.is_file():
        parser.error(f"{layer1_ckpt}: no such checkpoint")
    one = load_model(layer1_ckpt).double().eval()
    if not isinstance(one, ResidualCRBM):
        parser.error(f"{layer1_ckpt} holds a {type(one).__name__}, not a ResidualCRBM")
    dm = datamodule_from_checkpoint(layer1_ckpt)
    dm.prepare_data()
    dm.setup("fit")
    view = SplitView(dm, args.split)
    ref = motion_reference(view)
    held = view.clips("test")
    n1, seeds = one.order, list(range(args.seeds))
    n_frames = round(args.seconds * ref.fps)

    rows = []
    peer = ar_row(dm, ref, n1, seeds, n_frames, n_boot=args.boot)
    starts = np.stack([c[:n1] for c in held])
    one_gens = generate_seeds(model_generator(one, view, args.gibbs_steps), starts, n_frames, seeds)
    rows.append(score_generations("ResidualCRBM (one layer)", one_gens, ref, n_boot=args.boot))
    rows[-1]["checkpoint"] = str(layer1_ckpt)
    for order2 in args.order2:
        for hidden2 in args.hidden2:
            for epochs in args.epochs:
                tag = f"n2={order2}, H2={hidden2}, {epochs} epochs"
                root = args.root / f"layer2_o{order2}_h{hidden2}_e{epochs}"
                t0 = time.perf_counter()
                top_ckpt = fit_layer2(layer1_ckpt, root, order2, hidden2, epochs)
                path = stack_checkpoints(
                    layer1_ckpt, top_ckpt, root / "two_layer.ckpt", args.gibbs_steps
                )
                model = load_model(path).double().eval()
                assert isinstance(model, TwoLayerCRBM)
                first = np.stack([c[: model.order] for c in held])
                gens = generate_seeds(
                    model_generator(model, view, args.gibbs_steps), first, n_frames, seeds
                )
                # scored from frame n1 like the others: the real frames n1 … n1 + n2 - 1 first
                lead = np.broadcast_to(first[None, :, n1:], (len(seeds), *first[:, n1:].shape))
                gens = np.concatenate([lead, gens], axis=2)[:, :, :n_frames]
                row = score_generations(f"TwoLayerCRBM ({tag})", gens, ref, n_boot=args.boot)
                row["checkpoint"] = str(path)
                row["seconds_to_fit_and_score"] = time.perf_counter() - t0
                rows.append(row)
                print(f"scored {tag} in {row['seconds_to_fit_and_score']:.0f} s", file=sys.stderr)
    rows.append(peer)
    settings: dict[str, Any] = {
        "split": args.split,
        "seconds": args.seconds,
        "gibbs_steps": args.gibbs_steps,
        "seeds": seeds,
        "n_seeds": len(seeds),
        "order": n1,
        "n_test_clips": len(held),
        "n_test_captured_clips": ref.n_groups,
        "layer1": str(layer1_ckpt),
        "data": repr(dm),
    }
    if ref.body is not None:
        settings["length_unit"] = ref.body.length_unit
    report = SequenceEvaluation(rows=rows, settings=settings, reference=real_row(ref))
    print(format_machine_info(machine_info()))
    print(f"split: {args.split} (the held-out rows below are this split's clips)")
    print(report.table())
    print(target_report([*rows, report.reference], peer["model"], args.boot))
    print("realism score (mean log ratio to AR over the four measures; lower is better):")
    for row in rows[:-1]:
        print(f"  {row['model']}: {realism_score(row, peer):+.4f}")
    print(f"\ntotal {time.perf_counter() - started:.0f} s")
    if args.json:
        dump_json({"machine": machine_info(), "report": report.to_dict()}, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
