"""Benchmark: does a steerable motion model stay in range at every speed it can be asked for?

An exported model with a style (``serving/models/motion_speed.onnx``: the root speed,
standardised) generates ``--seconds`` at each constant requested style, and each generation is
set beside the real training frames whose own style lies near the same speed: the largest
standardised value (p99.9 of ``|z|``, over frames and dimensions) and the median per-dimension
standard deviation. A model that follows a faster request with faster motion keeps both near
the real frames'; one that blows up does not. The styles of the training frames (their 1st and
99th percentiles, min and max) are printed too: the range a request can be trusted in. Beside
them, the speed the body actually moves at over the second half of each generation (the
generated root speed in the style's standardised units, mean over ``--seeds`` seeds): how well
the slider means what it says. A request outside the card's trusted range is clipped into it
by the runtime, so the measured speed is the clipped request's.

Run from the repository root (the default data is the committed CMU fixture the embedded model
was trained on)::

    python benchmarks/motion_style_range.py --model serving/models/motion_speed.onnx
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import dump_json, markdown_table, styled_artifact


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="serving/models/motion_speed.onnx")
    parser.add_argument("--path", default=None, help="its training clips (default: the fixture)")
    parser.add_argument(
        "--styles", type=float, nargs="+", default=[-1.4, -0.5, 0.0, 0.5, 1.0, 1.5, 2.0, 3.0]
    )
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--band", type=float, default=0.5, help="real frames within ± this")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--seeds", type=int, default=3, help="seeds for the measured speed")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", category=UserWarning)
    art, dm = styled_artifact(parser, args.model, path=args.path)
    real = np.concatenate(dm.clips("train"))
    style = np.concatenate(dm.style_clips("train"))[:, 0]
    n = round(args.seconds * (art.frame_rate or 30.0))
    rows: dict[str, dict[str, float]] = {}
    stats = dm.stats()["style"]
    features = dm.features

    def speed(frames: np.ndarray) -> float:
        """Mean standardised root speed over the second half of a generation."""
        moved = features.root_speed(features.inverse_transform(frames))
        return float(((moved[moved.shape[0] // 2 :] - stats["mean"]) / stats["std"]).mean())

    for s in args.styles:
        near = np.abs(style - s) <= args.band
        gens = [
            art.generate(n, style=np.array([s]), seed=args.seed + k)[0]
            for k in range(max(1, args.seeds))
        ]
        gen = gens[0]
        rows[f"{s:+.2f}"] = {
            "real_frames": int(near.sum()),
            "real_p999": float(np.percentile(np.abs(real[near]), 99.9)) if near.any() else np.nan,
            "real_std": float(np.median(real[near].std(0))) if near.sum() > 1 else np.nan,
            "gen_p999": float(np.percentile(np.abs(gen), 99.9)),
            "gen_std": float(np.median(gen.std(0))),
            "measured_speed": float(np.mean([speed(g) for g in gens]))
            if all(np.isfinite(g).all() for g in gens)
            else np.nan,
            "finite": bool(np.isfinite(gen).all()),
        }
    quantiles = {q: float(np.percentile(style, q)) for q in (0, 1, 99, 100)}
    print(
        f"training styles: min {quantiles[0]:+.2f}, 1st pct {quantiles[1]:+.2f}, "
        f"99th pct {quantiles[99]:+.2f}, max {quantiles[100]:+.2f} ({style.size} frames)"
    )
    print(
        markdown_table(
            [
                "requested style",
                "real frames within band",
                "real p99.9 |z|",
                "generated p99.9 |z|",
                "real median std",
                "generated median std",
                "measured speed",
            ],
            [
                [
                    k,
                    v["real_frames"],
                    v["real_p999"],
                    v["gen_p999"],
                    v["real_std"],
                    v["gen_std"],
                    v["measured_speed"],
                ]
                for k, v in rows.items()
            ],
            [0, 0, 1, 1, 2, 2, 2],
        )
    )
    results = {"model": args.model, "styles": quantiles, "rows": rows, "settings": vars(args)}
    if args.json:
        dump_json(results, args.json)
    return results


if __name__ == "__main__":
    main()
