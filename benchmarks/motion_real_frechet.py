"""What real motion scores on the motion report's per-generation Fréchet distance.

The report (``seqboltz.eval._sequence_report.score_generations``) scores each generation (one
held-out clip's continuation, one seed) against the pooled features of every held-out clip,
and averages over clips and seeds; real motion's value on the pooled protocol
(``frechet_pooled``) is *all* training frames pooled against that pool. This script puts real
clips on the generations' protocol: each real clip of at least ``--min-frames`` frames alone
against the held-out pool (training clips, and the held-out clips themselves, which sit in
the pool and so score low). Session 11 (``benchmarks/RESULTS.md``).

    python benchmarks/motion_real_frechet.py                       # the default data
    python benchmarks/motion_real_frechet.py --path FOLDER --min-frames 150
"""

from __future__ import annotations

import argparse
import sys
import warnings

import numpy as np

from seqboltz.data import MotionDataModule
from seqboltz.eval._motion_metrics import pose_velocity_features
from seqboltz.eval._sequence_report import _clip_body, motion_reference


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--path", help="a folder of clips (default: the committed CMU data)")
    parser.add_argument("--min-frames", type=int, default=300, help="shortest clip scored")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", category=UserWarning)  # the features' own report
    kwargs = {} if args.path is None else {"path": args.path}
    dm = MotionDataModule(order=3, rotation="rot6d", up_axis="auto", forward_axis="auto", **kwargs)
    dm.prepare_data()
    dm.setup("fit")
    ref = motion_reference(dm)
    if ref.body is None:
        parser.error("these clips have no skeleton to score")
    up = str(getattr(dm.features, "up_axis", "y"))
    print("| clips | n | mean | median | min | max |\n|---|---|---|---|---|---|")
    for split in ("train", "test"):
        values = []
        for clip in dm.source_clips(split):
            _, pose, velocity = _clip_body(clip, up)
            if pose.shape[0] >= args.min_frames:
                values.append(
                    ref.body.real_features.distance(pose_velocity_features(pose, velocity))
                )
        if not values:
            print(f"| {split} | 0 | | | | |")
            continue
        v = np.asarray(values)
        print(
            f"| {split}, each alone | {v.size} | {v.mean():.0f} | {np.median(v):.0f} | "
            f"{v.min():.0f} | {v.max():.0f} |"
        )
    pooled = ref.body.real["frechet_pooled"][0]
    print(f"the report's real value, all training frames pooled: {pooled:.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
