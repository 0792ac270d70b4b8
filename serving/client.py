"""``seqboltz generate``: stream a sequence from a running server and save it.

Writes the frames as NPY (data units), plus a BVH for motion models (through the model card's
preprocessing inverse) or a WAV for speech models, and optionally a PNG plot.
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

from seqboltz.v1 import generation_pb2 as pb
from seqboltz.v1 import generation_pb2_grpc as pb_grpc

__all__ = ["channel", "main"]


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


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="seqboltz generate", description=__doc__.split("\n\n")[0])
    p.add_argument("--server", default="127.0.0.1:50051")
    p.add_argument("--model", default="", help="model name (default: the server's default)")
    p.add_argument("--frames", type=int, default=300)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--style", help="comma-separated style values")
    p.add_argument("--out", type=Path, default=Path("generated"), help="output path stem")
    p.add_argument("--plot", action="store_true", help="also write a PNG of the first values")
    p.add_argument("--realtime", action="store_true", help="paced at the model's frame rate")
    p.add_argument("--token", help="bearer token")
    p.add_argument("--tls-ca")
    p.add_argument("--tls-cert")
    p.add_argument("--tls-key")
    p.add_argument("--timeout", type=float, default=600.0)
    args = p.parse_args(None if argv is None else list(argv))
    metadata = [("authorization", f"Bearer {args.token}")] if args.token else None
    try:
        style = [float(x) for x in args.style.split(",")] if args.style else []
    except ValueError:
        p.error(f"--style must be comma-separated numbers, got {args.style!r}")
    if args.frames < 1:
        p.error(f"--frames must be >= 1, got {args.frames}")
    with channel(args.server, args.tls_ca, args.tls_cert, args.tls_key) as ch:
        stub = pb_grpc.GenerationStub(ch)
        try:
            info = stub.GetModel(pb.GetModelRequest(name=args.model), metadata=metadata, timeout=30)
            request = pb.GenerateRequest(
                model=info.name,
                n_frames=args.frames,
                seed=args.seed,
                style=style,
                frames_per_message=10,
                realtime=args.realtime,
            )
            start = time.perf_counter()
            frames = [
                list(f.values)
                for chunk in stub.Generate(request, metadata=metadata, timeout=args.timeout)
                for f in chunk.frames
            ]
            seconds = time.perf_counter() - start
        except grpc.RpcError as err:
            print(f"seqboltz generate: {err.code().name}: {err.details()}", file=sys.stderr)
            return 1
    card = json.loads(info.card_json)
    z = np.asarray(frames, dtype=np.float64)
    raw = z * np.asarray(card["features"]["std"]) + np.asarray(card["features"]["mean"])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    written = [_save_npy(args.out.with_suffix(".npy"), raw)]
    if info.domain == "motion":
        from seqboltz.motion import MotionFeatures, write_bvh

        clip = MotionFeatures.from_dict(card["features"]).inverse_transform(z, name=info.name)
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
    print(
        f"{len(frames)} frames of {info.name} (seed {args.seed}) in {seconds:.2f} s "
        f"({len(frames) / max(seconds, 1e-9):.0f} frames/s): " + ", ".join(str(w) for w in written)
    )
    return 0


def _save_npy(path: Path, values: np.ndarray) -> Path:
    from seqboltz._io import atomic_write

    atomic_write(path, lambda f: np.save(f, values))
    return path
