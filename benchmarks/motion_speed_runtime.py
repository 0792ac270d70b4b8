"""Benchmark: the speed-control gain of an exported steerable motion model through the runtime
(what the service serves, the card's style range included), with ``motion_quality.py``'s
protocol (``speed_control``: the 10 % -> 90 % -> 10 % quantiles of the training speeds, 20 s
each, from the held-out clips' starts), 10 seeds by default (``--seeds``).
``motion_quality.py`` measures a checkpoint through torch; the embedded ``motion_speed.onnx``
has no checkpoint in the repository.

    python benchmarks/motion_speed_runtime.py --model MODEL.onnx --json out.json
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

sys.path.insert(0, str(Path(__file__).resolve().parent))  # `_common` when run as a script

from _common import styled_artifact

from seqboltz.eval._sequence_report import speed_control, speed_gain


def main(argv: list[str] | None = None) -> dict[int, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="serving/models/motion_speed.onnx")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--json", default=None, help="write the results here")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", category=UserWarning)
    art, dm = styled_artifact(parser, args.model)

    class Runtime:  # the one method speed_control calls, through the artifact
        order = art.order

        def generate(
            self, starts: torch.Tensor, n: int, k: int, style: torch.Tensor, seed: int = 0
        ) -> torch.Tensor:
            frames = art.generate(
                n, seed=seed, seed_frames=starts.numpy(), style=style.numpy(), gibbs_steps=k
            )
            return torch.from_numpy(np.asarray(frames))

    results: dict[int, Any] = {}
    for seed in range(args.seeds):
        segments = speed_control(Runtime(), dm, art.gibbs_steps, seed)  # type: ignore[arg-type]
        results[seed] = {"segments": segments, "gain": speed_gain(segments)}
        measured = [round(s["measured"], 3) for s in segments]
        requested = [round(s["requested"], 3) for s in segments]
        print(seed, round(results[seed]["gain"], 3), measured, requested, flush=True)
    gains = [r["gain"] for r in results.values()]
    passed = sum(g >= 0.7 for g in gains)
    print(f"gain >= 0.7 in {passed}/{len(gains)} (range {min(gains):.2f}-{max(gains):.2f})")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return results


if __name__ == "__main__":
    main()
