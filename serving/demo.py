"""``seqboltz demo``: the main job — the service on its embedded default model, with a client
streaming a generated sequence from it.

Starts ``seqboltz serve`` (the embedded motion CRBM, a free loopback port) in a subprocess,
waits until it is healthy, streams ``--frames`` frames with ``seqboltz generate`` (saved as
NPY, BVH and a PNG plot), then stops the server with SIGTERM and checks it exits cleanly.
Last it draws the generated body beside a real held-out clip of the committed CMU selection
(:func:`draw_body`: ``body_filmstrip.png`` and ``body.gif``).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

__all__ = ["draw_body", "main"]

#: the real clip drawn beside the generation: a test clip of the default data (never trained on)
REAL_CLIP = ("cmu_mixed", "131", "131_06")


def draw_body(
    generated_bvh: Path, out: Path, label: str = "generated", seconds: float = 10.0
) -> dict[str, Path]:
    """Stick-figure filmstrip and GIF of a generated BVH beside the real held-out clip
    :data:`REAL_CLIP` (read from the committed fixture, resampled to the generation's rate).

    Returns:
        ``{"filmstrip": png, "animation": gif}`` under ``out`` (``body_filmstrip.png``,
        ``body.gif``).
    """
    from seqboltz.data import motion_fixture_folder
    from seqboltz.motion import read_amc, read_asf, read_bvh, resample_clip
    from seqboltz.viz_motion import render_clips

    generated = read_bvh(generated_bvh)
    fixture, subject, take = REAL_CLIP
    folder = motion_fixture_folder(fixture)
    real = read_amc(folder / f"{take}.amc", read_asf(folder / f"{subject}.asf"))
    real = resample_clip(real, generated.fps)
    clips = {f"real (held out, CMU {take})": real, label: generated}
    return render_clips(out / "body", clips, seconds=seconds, title="seqboltz demo")


def _wait_listening(proc: subprocess.Popen[str], timeout: float = 60.0) -> dict[str, object]:
    assert proc.stdout is not None
    deadline = time.time() + timeout
    while time.time() < deadline:
        line = proc.stdout.readline()
        if line.startswith("{"):
            info: dict[str, object] = json.loads(line)["listening"]
            return info
        if proc.poll() is not None:
            break
    raise RuntimeError("the server did not start (see its log above)")


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="seqboltz demo", description=__doc__.split("\n\n")[0])
    p.add_argument("--frames", type=int, default=300, help="frames to stream (30 per second)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path("runs/demo"))
    args = p.parse_args(None if argv is None else list(argv))
    cmd = [sys.executable, "-m", "seqboltz.cli", "serve", "--port", "0"]
    server = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"}
    )
    try:
        try:
            info = _wait_listening(server)
        except RuntimeError as exc:
            print(f"seqboltz demo: {exc}", file=sys.stderr)
            return 1
        address = str(info["address"])
        with grpc.insecure_channel(address) as ch:
            status = health_pb2_grpc.HealthStub(ch).Check(
                health_pb2.HealthCheckRequest(service=""), timeout=10
            )
        print(
            f"seqboltz serve: listening on {address}, models {info['models']}, health "
            f"{health_pb2.HealthCheckResponse.ServingStatus.Name(status.status)}"
        )
        from serving.client import main as generate

        code = generate(
            [
                "--server",
                address,
                "--frames",
                str(args.frames),
                "--seed",
                str(args.seed),
                "--out",
                str(args.out / "generated"),
                "--plot",
            ]
        )
    finally:
        if server.poll() is None:
            server.send_signal(signal.SIGTERM)
        exit_code = server.wait(timeout=60)
    print(f"seqboltz serve: stopped with SIGTERM, exit code {exit_code}")
    bvh = args.out / "generated.bvh"
    if code == 0 and bvh.exists():
        models = info["models"]
        model = models[0] if isinstance(models, list) and models else "embedded model"
        label = f"generated ({model}, seed {args.seed})"
        try:
            pictures = draw_body(bvh, args.out, label)
        except ImportError as exc:  # the torch-free serve install has no data package or plots
            print(f"the body pictures need the full install (pip install 'seqboltz[all]'): {exc}")
        else:
            paths = ", ".join(str(p) for p in pictures.values())
            print(f"the body, real beside generated: {paths}")
    return code or exit_code
