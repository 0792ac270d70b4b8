"""``seqboltz synthesize``: offline batch synthesis from an ONNX artifact (no torch), or one
utterance from a text-to-speech model (``--text``)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

__all__ = ["synthesize_main"]


def synthesize_main(argv: Sequence[str]) -> int:
    """Entry point of ``seqboltz synthesize``; prints the manifest's summary.

    Exit status 0; 2 for bad input (one line); 1 when the model diverged on some sequences
    (one line each; the other sequences are written and the manifest lists both). With
    ``--text`` (:func:`seqboltz.runtime._tts.synthesize_text`): one utterance's WAV,
    spectrogram PNG, alignment (HTK ``.lab`` and TextGrid) and JSON record; ``--count``,
    ``--frames`` and the other batch options do not apply.
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
    parser.add_argument("--count", type=int, help="number of sequences (not with --text)")
    parser.add_argument("--frames", type=int, help="frames per sequence (not with --text)")
    parser.add_argument(
        "--text",
        help="say this text with a text-to-speech model: writes speech.wav, a spectrogram "
        "speech.png, the alignment (speech.lab, speech.TextGrid) and speech.json to --out; "
        "the length comes from the model's predicted durations",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--gibbs-steps",
        type=int,
        metavar="K",
        help="Gibbs steps per frame, 1 to the card's max_gibbs_steps (default: the card's "
        "gibbs_steps)",
    )
    parser.add_argument(
        "--style",
        help="style value(s), comma-separated, for styled models; or a schedule "
        "VALUES@FRAME;VALUES@FRAME;… (e.g. '-1@0;1.5@600': the style changes at frame 600)",
    )
    parser.add_argument("--shard", default="0/1", help="i/n: this machine's share of the job")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--format", choices=FORMATS, default="npy")
    parser.add_argument(
        "--plot",
        action="store_true",
        help="also a PNG of the values per sequence and, for a motion model, the body "
        "(stick-figure filmstrip PNG and GIF, SEQ_body_filmstrip.png / SEQ_body.gif)",
    )
    parser.add_argument(
        "--start",
        metavar="BVH",
        help="continue every sequence from the last frames of this BVH clip (a motion model's "
        "rig, any frame rate), where it stands and faces",
    )
    parser.add_argument(
        "--fps",
        metavar="RATE",
        help="frame rate of --format bvh files: a number, or 'source' for the rate of the files "
        "the model was trained on (default: the model's rate; rotations resampled by slerp)",
    )
    parser.add_argument(
        "--plant-feet",
        action="store_true",
        help="footskate cleanup of --format bvh files: a foot on the floor stays where it "
        "landed (the root and the legs are adjusted; seqboltz.motion.plant_feet)",
    )
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
    if args.text is not None:
        return _speak(parser, args)
    if args.count is None or args.frames is None:
        parser.error("--count and --frames are required (or --text, with a text-to-speech model)")
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
            gibbs_steps=args.gibbs_steps,
            start=args.start,
            fps=args.fps,
            plant_feet=args.plant_feet,
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


def _speak(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    """``--text``: one utterance from a text-to-speech model; 0, 2 (bad input), 1 (diverged)."""
    from seqboltz.errors import BadRequest, ModelDiverged
    from seqboltz.runtime._tts import synthesize_text

    batch_only = {
        "--count": args.count is not None,
        "--frames": args.frames is not None,
        "--style": args.style is not None,
        "--shard": args.shard != "0/1",
        "--ray": args.ray is not None,
        "--format": args.format != "npy",
        "--plot": args.plot,
        "--fps": args.fps is not None,
        "--plant-feet": args.plant_feet,
    }
    given = [flag for flag, used in batch_only.items() if used]
    if given:
        parser.error(
            f"--text speaks one utterance, whose length the model's durations set; "
            f"{', '.join(given)} {'is' if len(given) == 1 else 'are'} for batches of sequences"
        )
    try:
        speech, paths = synthesize_text(args.model, args.text, args.out, seed=args.seed)
    except ModelDiverged as exc:
        print(f"seqboltz synthesize: {exc}; nothing written", file=sys.stderr)
        return 1
    except BadRequest as exc:  # ArtifactError, VoiceError (empty text, not a TTS model)
        print(f"seqboltz synthesize: error: {exc}", file=sys.stderr)
        return 2
    unknown = [w.text for w in speech.plan.utterance.words if w.source != "lexicon"]
    print(
        f"{paths['.wav']}: {speech.duration:.2f} s at {speech.sample_rate} Hz, "
        f"{len(speech.plan.utterance.words)} words, {len(speech.plan.utterance.phones)} phones"
        + (f" (by g2p or spelled: {', '.join(unknown)})" if unknown else "")
        + (f", scaled by {speech.gain:.2f}" if speech.gain < 1 else "")
        + f"; also {', '.join(p.name for s, p in paths.items() if s != '.wav')} "
        f"({speech.seconds:.1f} s)"
    )
    return 0
