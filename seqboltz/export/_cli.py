"""``seqboltz export CHECKPOINT --out NAME.onnx``."""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

from seqboltz.speech._voice import GENERATIONS

__all__ = ["export_main"]


def export_main(argv: Sequence[str]) -> int:
    """Entry point of ``seqboltz export``; prints the written file.

    A model that does not export, or a checkpoint that cannot be read, ends with one line on
    stderr (``seqboltz export: error: ...``) and exit status 2; nothing is written.
    """
    parser = argparse.ArgumentParser(
        prog="seqboltz export",
        description="Write a trained model's sampling step and model card to one ONNX file, "
        "sampled by seqboltz.runtime without torch. Each model declares how it exports: "
        "sequence models one frame of their sampler, unconditional models one Gibbs step; "
        "a model that does not export is refused with the reason.",
    )
    parser.add_argument("checkpoint", help="a .ckpt written by `seqboltz fit`")
    parser.add_argument("--out", type=Path, required=True, help="the .onnx file to write")
    parser.add_argument(
        "--gibbs-steps",
        type=int,
        metavar="K",
        help="k, Gibbs steps per frame that samplers use unless a request names another "
        "(the card's gibbs_steps; default: the k the checkpoint's intercept was re-centred "
        "at; 1 for a model whose frames do not depend on k; else 30)",
    )
    parser.add_argument(
        "--max-gibbs-steps",
        type=int,
        metavar="K",
        help="the most Gibbs steps per frame a request may name (the card's max_gibbs_steps; "
        "default max(--gibbs-steps, 30))",
    )
    parser.add_argument(
        "--postfilter",
        type=float,
        metavar="BETA",
        help="text-to-speech models only: the formant-emphasis post-filter their waveforms "
        "are made with, c2... times 1 + BETA (default 0.4, HTS's and Merlin's; 0: none)",
    )
    parser.add_argument(
        "--generation",
        choices=sorted(GENERATIONS),
        help="text-to-speech models with delta frames only: how the statics are made, MLPG "
        "(the default) or the model's statics as they are",
    )
    parser.add_argument("--name", help="model name in the card (default: the file's stem)")
    parser.add_argument(
        "--no-data",
        action="store_true",
        help="do not rebuild the training data for default seed frames (use the mean frame)",
    )
    args = parser.parse_args(list(argv))
    from seqboltz.export import export_checkpoint

    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", UserWarning)
            path = export_checkpoint(
                args.checkpoint,
                args.out,
                gibbs_steps=args.gibbs_steps,
                max_gibbs_steps=args.max_gibbs_steps,
                name=args.name or args.out.stem,
                seed_from_data=not args.no_data,
                postfilter=args.postfilter,
                generation=args.generation,
            )
    except (FileNotFoundError, ValueError, TypeError) as exc:  # ExportError is a ValueError
        message = " ".join(str(exc).split())  # one line, whatever the exception held
        print(f"{parser.prog}: error: {message}", file=sys.stderr)
        return 2
    for warning in caught:  # ours, each on one line, after the export succeeded
        if not issubclass(warning.category, UserWarning):
            continue
        print(f"{parser.prog}: warning: {' '.join(str(warning.message).split())}", file=sys.stderr)
    print(path)
    return 0
