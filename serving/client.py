"""``seqboltz generate``: stream a sequence from a running server and save it.

Writes the frames as NPY (data units), plus a BVH for motion models (through the model card's
preprocessing inverse) or a WAV for speech models, and optionally a PNG plot.

``--save-token PATH`` also writes the stream's last resume token (``ResumeToken`` as protobuf
JSON, :func:`save_token`); when the stream breaks, the frames received so far are written too,
and ``--resume PATH`` continues the stream from there on any server holding the same model,
without recomputing the frames before it (:func:`load_token`).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import grpc
import numpy as np
from google.protobuf import json_format

from seqboltz.v1 import generation_pb2 as pb
from seqboltz.v1 import generation_pb2_grpc as pb_grpc

__all__ = ["channel", "load_token", "main", "save_token"]


def channel(
    address: str, tls_ca: str | None = None, cert: str | None = None, key: str | None = None
) -> grpc.Channel:
    """A blocking channel, TLS when ``tls_ca`` is given (client certificate optional)."""
    if tls_ca is None:
        return grpc.insecure_channel(address)
    creds = grpc.ssl_channel_credentials(
        root_certificates=Path(tls_ca).read_bytes(),
        private_key=Path(key).read_bytes() if key else None,
        certificate_chain=Path(cert).read_bytes() if cert else None,
    )
    return grpc.secure_channel(address, creds)


def save_token(path: Path, token: pb.ResumeToken) -> Path:
    """Write a resume token as protobuf JSON (readable by any language's protobuf library;
    doubles round-trip exactly)."""
    from seqboltz._io import atomic_write

    text = json_format.MessageToJson(token, preserving_proto_field_name=True)
    return atomic_write(path, lambda f: f.write(text + "\n"), text=True)


def load_token(path: Path) -> pb.ResumeToken:
    """A resume token saved by :func:`save_token`.

    Raises:
        ValueError: the file is missing or not a token (one line saying which).
    """
    try:
        return json_format.Parse(Path(path).read_text(), pb.ResumeToken())
    except OSError as exc:
        raise ValueError(f"resume token {path}: {exc.strerror or exc}") from None
    except json_format.ParseError as exc:
        raise ValueError(f"resume token {path}: not a ResumeToken ({exc})") from None


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="seqboltz generate", description=__doc__.split("\n\n")[0])
    p.add_argument("--server", default="127.0.0.1:50051")
    p.add_argument("--model", default="", help="model name (default: the server's default)")
    p.add_argument("--frames", type=int, default=300)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--gibbs-steps",
        type=int,
        default=0,
        metavar="K",
        help="Gibbs steps per frame, 1 to the model's max_gibbs_steps (default: the model's; "
        "a resumed stream: its token's)",
    )
    p.add_argument("--style", help="comma-separated style values")
    p.add_argument("--out", type=Path, default=Path("generated"), help="output path stem")
    p.add_argument("--plot", action="store_true", help="also write a PNG of the first values")
    p.add_argument(
        "--plant-feet",
        action="store_true",
        help="a motion model's BVH with the footskate cleanup (seqboltz.motion.plant_feet)",
    )
    p.add_argument("--realtime", action="store_true", help="paced at the model's frame rate")
    p.add_argument("--token", help="bearer token")
    p.add_argument("--tls-ca")
    p.add_argument("--tls-cert")
    p.add_argument("--tls-key")
    p.add_argument("--timeout", type=float, default=600.0)
    p.add_argument(
        "--resume",
        type=Path,
        metavar="TOKEN",
        help="continue the stream of a token saved with --save-token (its seed, history and "
        "style; --frames more frames)",
    )
    p.add_argument(
        "--save-token",
        type=Path,
        metavar="TOKEN",
        help="write the stream's last resume token here (JSON), also when the stream breaks",
    )
    args = p.parse_args(None if argv is None else list(argv))
    metadata = [("authorization", f"Bearer {args.token}")] if args.token else None
    try:
        style = [float(x) for x in args.style.split(",")] if args.style else []
    except ValueError:
        p.error(f"--style must be comma-separated numbers, got {args.style!r}")
    if args.frames < 1:
        p.error(f"--frames must be >= 1, got {args.frames}")
    if args.gibbs_steps < 0:
        p.error(f"--gibbs-steps must be >= 1, got {args.gibbs_steps}")
    resume = None
    if args.resume is not None:
        try:
            resume = load_token(args.resume)
        except ValueError as exc:
            p.error(str(exc))
    frames: list[list[float]] = []
    token: pb.ResumeToken | None = None
    info: pb.ModelInfo | None = None
    with channel(args.server, args.tls_ca, args.tls_cert, args.tls_key) as ch:
        stub = pb_grpc.GenerationStub(ch)
        try:
            info = stub.GetModel(pb.GetModelRequest(name=args.model), metadata=metadata, timeout=30)
            problem = _plant_problem(info) if args.plant_feet else None
            if problem is not None:  # before anything is streamed or written
                print(f"seqboltz generate: --plant-feet: {problem}", file=sys.stderr)
                return 2
            request = pb.GenerateRequest(
                model=info.name,
                n_frames=args.frames,
                seed=args.seed,
                style=style,
                frames_per_message=10,
                realtime=args.realtime,
                resume=resume,
                gibbs_steps=args.gibbs_steps,
            )
            start = time.perf_counter()
            for chunk in stub.Generate(request, metadata=metadata, timeout=args.timeout):
                frames.extend(list(f.values) for f in chunk.frames)
                if chunk.HasField("resume"):
                    token = chunk.resume
            seconds = time.perf_counter() - start
        except grpc.RpcError as err:
            print(f"seqboltz generate: {err.code().name}: {err.details()}", file=sys.stderr)
            if args.save_token and info is not None and token is not None and frames:
                written = [*_write(args, info, frames), save_token(args.save_token, token)]
                print(
                    f"saved the {len(frames)} frames received and the resume token: "
                    f"{', '.join(map(str, written))}; continue with --resume {args.save_token}",
                    file=sys.stderr,
                )
            return 1
    written = _write(args, info, frames)
    if args.save_token and token is not None:
        written.append(save_token(args.save_token, token))
    first = resume.frame if resume else 0
    seed = resume.seed if resume else args.seed
    print(
        f"{len(frames)} frames of {info.name} (seed {seed}, frames {first}–"
        f"{first + len(frames) - 1}) in {seconds:.2f} s "
        f"({len(frames) / max(seconds, 1e-9):.0f} frames/s): " + ", ".join(str(w) for w in written)
    )
    return 0


def _plant_problem(info: pb.ModelInfo) -> str | None:
    """Why ``--plant-feet`` cannot clean this model's BVH, or ``None``."""
    if info.domain != "motion":
        return f"model {info.name!r} is a {info.domain} model; feet are planted in motion BVH"
    from seqboltz.motion import MotionFeatures, check_plantable

    features = MotionFeatures.from_dict(json.loads(info.card_json)["features"])
    assert features.skeleton is not None
    try:
        check_plantable(features.skeleton, features.up_axis)
    except ValueError as exc:
        return f"model {info.name!r}: {exc}"
    return None


def _write(args: argparse.Namespace, info: pb.ModelInfo, frames: list[list[float]]) -> list[Path]:
    """NPY in data units, plus BVH (motion) or WAV (speech) and the optional PNG."""
    card = json.loads(info.card_json)
    z = np.asarray(frames, dtype=np.float64)
    raw = z * np.asarray(card["features"]["std"]) + np.asarray(card["features"]["mean"])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    written = [_save_npy(args.out.with_suffix(".npy"), raw)]
    if info.domain == "motion":
        from seqboltz.motion import MotionFeatures, write_bvh

        features = MotionFeatures.from_dict(card["features"])
        clip = features.inverse_transform(z, name=info.name)
        if args.plant_feet:
            clip, _ = features.plant_feet(clip)
        written.append(write_bvh(args.out.with_suffix(".bvh"), clip))
    elif info.domain == "speech":
        from seqboltz.speech import speech_features_from_dict, write_wav

        feats = speech_features_from_dict(card["features"])
        written.append(
            write_wav(args.out.with_suffix(".wav"), feats.synthesize(raw), feats.sample_rate)
        )
    if args.plot:
        from seqboltz.runtime._synthesize import _plot

        png = args.out.with_suffix(".png")
        _plot(png, raw, card["features"].get("feature_names") or [], info.frame_rate or None)
        written.append(png)
    return written


def _save_npy(path: Path, values: np.ndarray) -> Path:
    from seqboltz._io import atomic_write

    atomic_write(path, lambda f: np.save(f, values))
    return path
