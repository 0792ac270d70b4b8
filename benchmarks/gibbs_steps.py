"""Benchmark: how many Gibbs steps per frame buy quality (issue 15, item 2), for a motion model.

For a trained sequence checkpoint, generates ``--seconds`` from the start of every
**validation** clip (the choice is made there; ``--split test`` only to report the chosen k)
with ``--seeds`` seeds at each ``k`` of ``--ks``, and scores NPSS, PSKL (mean of both
directions), Fréchet distance and foot skating (:mod:`seqboltz.eval._sequence_report`), each a
mean over clips × seeds with a two-way bootstrap 95 % interval. The least-squares AR of the
same order generates beside it, as the baseline.

The model's sampler ends every frame with a mean-field hidden step (Taylor et al. 2007's
code). ``--sampled-last`` also scores the variant without it (:func:`sampled_last`): the frame
is emitted from the last *sampled* hidden state.

**The choice**: the smallest ``k`` whose NPSS, PSKL and Fréchet means all lie inside the 95 %
intervals of the largest ``k`` (30). It is printed and written to ``--json``; the recipe's
card takes it (``seqboltz export --gibbs-steps``).

Run from the repository root::

    python benchmarks/gibbs_steps.py --checkpoint runs/motion_rcrbm/.../best.ckpt \\
        --json benchmarks/gibbs_steps_motion.json
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
import types
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # `_common` when run as a script

from _common import dump_json, format_machine_info, machine_info, set_threads

from seqboltz._io import atomic_write
from seqboltz.eval._cli import datamodule_from_checkpoint
from seqboltz.eval._sequence_report import (
    SplitView,
    ar_row,
    generate_seeds,
    model_generator,
    motion_reference,
    score_generations,
)
from seqboltz.models import ResidualCRBM, SequenceRBM, load_model
from seqboltz.models._residual import box_muller

#: the measures the choice compares, lower is better for each
CHOICE_KEYS = ("npss", "pskl", "frechet")
COLUMNS = (*CHOICE_KEYS, "foot_skating", "std_within")


def sampled_last(model: SequenceRBM) -> SequenceRBM:
    """A copy of ``model`` whose frame is emitted from the last Gibbs step's sampled hidden
    state instead of a final mean-field step (the measurement's variant, not a model option):
    for a :class:`~seqboltz.models.ResidualCRBM` ``v = L(â + W h_k + ε)``, for a CRBM the
    visible mean given ``h_k`` (the chain's state after its last step)."""
    variant = copy.deepcopy(model)

    def emit_residual(self: ResidualCRBM, state: Any, context: Any, noise: Any) -> Any:
        if self.visible_noise > 0:
            noise = box_muller(noise[:, self.n_hidden :], self.n_visible)
            state = state + self.visible_noise * noise
        return (context.visible_bias + self._scaled(state, context)) @ self.unwhiten.T

    def emit_state(self: SequenceRBM, state: Any, context: Any, noise: Any) -> Any:
        return state

    emit = emit_residual if isinstance(model, ResidualCRBM) else emit_state
    object.__setattr__(variant, "sampler_emit", types.MethodType(emit, variant))
    return variant


def choose_k(rows: dict[int, dict[str, Any]]) -> int:
    """The smallest ``k`` whose :data:`CHOICE_KEYS` means lie inside the largest ``k``'s 95 %
    intervals (or below them: better)."""
    top = rows[max(rows)]
    for k in sorted(rows):
        if all(rows[k][key] <= top[f"{key}_ci"][1] for key in CHOICE_KEYS):
            return k
    return max(rows)


def _cell(row: dict[str, Any], key: str) -> str:
    low, high = row[f"{key}_ci"]
    digits = 1 if key in ("frechet", "foot_skating") else 3
    return f"{row[key]:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--ks", type=int, nargs="+", default=[1, 2, 3, 5, 10, 30])
    parser.add_argument("--split", choices=["val", "test"], default="val")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--boot", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--sampled-last", action="store_true", help="also without mean field")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    if min(args.ks) < 1 or args.seeds < 2:
        parser.error("every k must be >= 1 and --seeds >= 2")
    set_threads(args.threads)
    model = load_model(args.checkpoint)
    if not isinstance(model, SequenceRBM):
        parser.error(f"{args.checkpoint} holds a {type(model).__name__}, not a sequence model")
    model = model.double().eval()
    dm = datamodule_from_checkpoint(args.checkpoint)
    dm.prepare_data()
    dm.setup("fit")
    view = SplitView(dm, args.split)
    ref = motion_reference(view)
    clips = view.clips("test")
    starts = np.stack([c[: model.order] for c in clips])
    n_frames = round(args.seconds * ref.fps)
    seeds = list(range(args.seeds))

    variants = [True] + ([False] if args.sampled_last else [])
    rows: dict[tuple[int, bool], dict[str, Any]] = {}
    timing: dict[str, float] = {}
    for mean_field in variants:
        for k in sorted(args.ks):
            label = f"k={k}" + ("" if mean_field else ", sampled last")
            t0 = time.perf_counter()
            gen = model_generator(model if mean_field else sampled_last(model), view, k)
            gens = generate_seeds(gen, starts, n_frames, seeds)
            timing[label] = time.perf_counter() - t0
            rows[k, mean_field] = score_generations(label, gens, ref, n_boot=args.boot)
            print(f"{label}: {timing[label]:.0f} s", file=sys.stderr, flush=True)
    peer = ar_row(dm, ref, model.order, seeds, n_frames, n_boot=args.boot)

    chosen = {mf: choose_k({k: r for (k, m), r in rows.items() if m == mf}) for mf in variants}
    print(format_machine_info(machine_info()))
    print(
        f"\n{type(model).__name__} ({args.checkpoint}), {args.split} clips: {len(clips)}, "
        f"{args.seeds} seeds, {args.seconds:g} s; mean [95 % interval]\n"
    )
    head = ["sampler", *COLUMNS, "generation s"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for _, row in sorted(rows.items(), key=lambda kv: (not kv[0][1], kv[0][0])):
        cells = [row["model"], *(_cell(row, c) for c in COLUMNS), f"{timing[row['model']]:.0f}"]
        print("| " + " | ".join(cells) + " |")
    print("| " + " | ".join([peer["model"], *(_cell(peer, c) for c in COLUMNS), "—"]) + " |")
    for mf, k in chosen.items():
        last = "mean-field last step" if mf else "sampled last step"
        print(f"\nchosen k ({last}): {k} (smallest k inside k={max(args.ks)}'s intervals)")
    if args.json is not None:
        result = {
            "machine": machine_info(),
            "checkpoint": str(args.checkpoint),
            "split": args.split,
            "seeds": seeds,
            "seconds": args.seconds,
            "rows": [
                {**{k: v for k, v in r.items() if k != "cells"}, "k": k, "mean_field_last": mf}
                for (k, mf), r in rows.items()
            ],
            "ar": {k: v for k, v in peer.items() if k != "cells"},
            "timing_s": timing,
            "chosen_k": {
                ("mean_field_last" if mf else "sampled_last"): k for mf, k in chosen.items()
            },
        }
        atomic_write(args.json, lambda fh: fh.write(dump_json(result) + "\n"), text=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
