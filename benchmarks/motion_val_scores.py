"""Score motion checkpoints on their *validation* clips, the pooled Fréchet distance included.

For choosing between recipe variants without touching the test clips: each checkpoint
generates 60 s from every validation clip's start for 5 seeds at the k its intercept was
re-centred at (else 1), scored by the motion report (``tune_motion.validation_rows``: the
report's ``score_generations`` through ``SplitView``); AR is scored on the same starts and
seeds. Prints one line per model and writes the values as JSON.

    python benchmarks/motion_val_scores.py out.json a@0=runs/a/…/best.ckpt b@0=runs/b/…/best.ckpt
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # `tune_motion` when run as a script

from tune_motion import validation_rows

from seqboltz._io import atomic_write
from seqboltz.models import recentred_gibbs_steps

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
        k = recentred_gibbs_steps(path) or 1
        row, peer = validation_rows(path, args.seeds, args.seconds, k)
        if "AR" not in out:
            out["AR"] = {key: peer[key] for key in KEYS}
            print("AR", {key: round(peer[key], 3) for key in KEYS}, flush=True)
        out[name] = {key: row[key] for key in KEYS}
        print(name, {key: round(row[key], 3) for key in KEYS}, flush=True)
    atomic_write(args.json, lambda f: f.write(json.dumps(out, indent=1)), text=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
