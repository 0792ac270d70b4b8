"""``seqboltz export CHECKPOINT --out NAME.onnx``."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

__all__ = ["export_main"]


def export_main(argv: Sequence[str]) -> int:
    """Entry point of ``seqboltz export``; prints the written file."""
    parser = argparse.ArgumentParser(
        prog="seqboltz export",
        description="Write a trained sequence model's sampling step and model card to one "
        "ONNX file, sampled by seqboltz.runtime without torch.",
    )
    parser.add_argument("checkpoint", help="a .ckpt written by `seqboltz fit`")
    parser.add_argument("--out", type=Path, required=True, help="the .onnx file to write")
    parser.add_argument("--gibbs-steps", type=int, default=30, help="k, unrolled in the graph")
    parser.add_argument("--name", help="model name in the card (default: the file's stem)")
    parser.add_argument(
        "--no-data",
        action="store_true",
        help="do not rebuild the training data for default seed frames (use the mean frame)",
    )
    args = parser.parse_args(list(argv))
    from seqboltz.export import export_checkpoint

    try:
        path = export_checkpoint(
            args.checkpoint,
            args.out,
            gibbs_steps=args.gibbs_steps,
            name=args.name or args.out.stem,
            seed_from_data=not args.no_data,
        )
    except (FileNotFoundError, ValueError, TypeError) as exc:
        parser.error(str(exc))
    print(path)
    return 0
