"""Score motion checkpoints on their *validation* clips, the pooled Fréchet distance included.

For choosing between recipe variants without touching the test clips: each checkpoint
generates 60 s from every validation clip's start for 5 seeds at the k its intercept was
re-centred at (else 1), scored by the motion report (``score_generations`` through
``SplitView``); AR (order 3) is scored once on the same starts and seeds. Prints one line per
model and writes the means as JSON.

    python benchmarks/motion_val_scores.py out.json a@0=runs/a/…/best.ckpt b@0=runs/b/…/best.ckpt
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

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
from seqboltz.models import load_model, recentred_gibbs_steps

KEYS = ("npss", "pskl", "frechet", "frechet_pooled", "foot_skating", "std_ratio_median")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("json", type=Path, help="write the scores here")
    parser.add_argument("checkpoints", nargs="+", help="NAME=PATH of a motion checkpoint")
    parser.add_argument("--seeds", type=int, default=5, help="generation seeds per clip")
    parser.add_argument("--seconds", type=float, default=60.0, help="length of generations")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", category=UserWarning)  # the features' own report
    torch.set_num_threads(1)
    out: dict[str, Any] = {}
    for spec in args.checkpoints:
        name, sep, path = spec.partition("=")
        if not sep:
            parser.error(f"{spec!r}: give NAME=PATH")
        model = load_model(path).double().eval()
        dm = datamodule_from_checkpoint(path)
        dm.prepare_data()
        dm.setup("fit")
        view = SplitView(dm, "val")
        ref = motion_reference(view)
        starts = np.stack([c[: model.order] for c in view.clips("test")])
        seeds, n = list(range(args.seeds)), round(args.seconds * ref.fps)
        k = recentred_gibbs_steps(path) or 1
        gens = generate_seeds(model_generator(model, view, k), starts, n, seeds)
        row = score_generations(name, gens, ref, n_boot=1)
        if "AR" not in out:
            peer = ar_row(dm, ref, 3, seeds, n, n_boot=1)
            out["AR"] = {key: peer[key] for key in KEYS}
            print("AR", {key: round(peer[key], 3) for key in KEYS}, flush=True)
        out[name] = {key: row[key] for key in KEYS}
        print(name, {key: round(row[key], 3) for key in KEYS}, flush=True)
    atomic_write(args.json, lambda f: f.write(json.dumps(out, indent=1)), text=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
