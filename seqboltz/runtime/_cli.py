"""``seqboltz synthesize``: offline batch synthesis from an ONNX artifact (no torch)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

__all__ = ["synthesize_main"]


def synthesize_main(argv: Sequence[str]) -> int:
    """Entry point of ``seqboltz synthesize``; prints the manifest's summary.

    Exit status 0; 2 for bad input (one line); 1 when the model diverged on some sequences
    (one line each; the other sequences are written and the manifest lists both).
    """
    from seqboltz.errors import BadRequest
    from seqboltz.runtime._synthesize import (
        FORMATS,
        SynthesisJob,
        parse_shard,
        parse_style,
        run_synthesis,
    )

    parser = argparse.ArgumentParser(
        prog="seqboltz synthesize",
        description="Write many generated sequences to files from an exported model. Sequence "
        "i uses the noise of (seed, i), so shards on different machines write exactly what "
        "one machine would; a rerun skips finished files.",
    )
    parser.add_argument("--model", required=True, help="the .onnx written by seqboltz export")
    parser.add_argument("--count", type=int, required=True, help="number of sequences")
    parser.add_argument("--frames", type=int, required=True, help="frames per sequence")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--style",
        help="style value(s), comma-separated, for styled models; or a schedule "
        "VALUES@FRAME;VALUES@FRAME;… (e.g. '-1@0;1.5@600': the style changes at frame 600)",
    )
    parser.add_argument("--shard", default="0/1", help="i/n: this machine's share of the job")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--format", choices=FORMATS, default="npy")
    parser.add_argument("--plot", action="store_true", help="also a PNG per sequence")
    parser.add_argument("--workers", type=int, help="processes (default: every core)")
    parser.add_argument("--chunk", type=int, default=16, help="sequences computed together")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument(
        "--ray",
        nargs="?",
        const="",
        metavar="ADDRESS",
        help="run the chunks as Ray tasks (pip install 'seqboltz[distributed]'): on the cluster "
        "at ADDRESS ('auto', HOST:6379, ray://HOST:10001), else $RAY_ADDRESS or a local one",
    )
    args = parser.parse_args(list(argv))
    try:
        style = None if args.style is None else parse_style(args.style)
        job = SynthesisJob(
            model=args.model,
            out=args.out,
            count=args.count,
            frames=args.frames,
            seed=args.seed,
            fmt=args.format,
            style=style,
            shard=parse_shard(args.shard),
            chunk=args.chunk,
            plot=args.plot,
        )
        if args.ray is not None:
            from seqboltz.runtime._ray import run_synthesis_ray

            manifest = run_synthesis_ray(job, args.ray or None, progress=not args.no_progress)
        else:
            manifest = run_synthesis(job, workers=args.workers, progress=not args.no_progress)
    except BadRequest as exc:  # ArtifactError too
        parser.exit(2, f"seqboltz synthesize: error: {exc}\n")
    print(
        f"{len(manifest['files'])} sequences of {args.frames} frames in {args.out} "
        f"(shard {args.shard}, {manifest['seconds']:.1f} s)"
    )
    for entry in manifest["diverged"]:
        print(
            f"seqboltz synthesize: sequence {entry['index']} stopped: {entry['error']}",
            file=sys.stderr,
        )
    return 1 if manifest["diverged"] else 0
