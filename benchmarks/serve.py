"""Benchmark: the gRPC service under concurrent streams, batching on against batching off.

A real server process per configuration (``seqboltz serve`` on the embedded default model,
``serving/models/README.md``, at its card's k), and an asyncio client in this process:

1. 1, 16, 64 and 256 concurrent unpaced streams: aggregate frames/s and the p50/p99 time
   between frames of a stream, with batching on (``--max-batch 256``) and off
   (``--max-batch 1``), next to the runtime's compute ceiling for the same work (the
   artifact's step called in a tight loop at that batch size, noise drawn per sequence);
2. 64 streams paced at 30 fps for ``--paced-seconds``: p99 lateness of a frame against its
   schedule (first frame + index / 30);
3. the largest number of paced 30-fps streams with p99 lateness under 20 ms (doubling from 64,
   ``--probe-seconds`` each); paced streams take ``--frames-per-message`` frames a message
   (a message leaves when its first frame is due, the rest is look-ahead).

Both cores are shared by the server and the client. Run from the repository root::

    python benchmarks/serve.py [--frames 300] [--paced-seconds 60] [--json PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import grpc
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # `_common` when run as a script

from _common import dump_json, format_machine_info, machine_info, markdown_table, start_serve

from seqboltz.noise import gibbs_uniforms, sequence_rng
from seqboltz.runtime import load_artifact
from seqboltz.v1 import generation_pb2 as pb
from seqboltz.v1 import generation_pb2_grpc as pb_grpc
from serving.repository import DEFAULT_MODEL


def start_server(max_batch: int) -> tuple[subprocess.Popen[str], str]:
    return start_serve("--max-batch", str(max_batch), "--max-streams", "5000")


def stop(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)


async def run_streams(
    address: str, n: int, frames: int, realtime: bool, per_message: int = 1
) -> tuple[float, list[float], list[float]]:
    """``(seconds, gaps between frames, lateness of paced frames)`` over ``n`` streams, with
    ``per_message`` frames per message (paced: a message leaves when its first frame is due,
    so its later frames arrive early, a bounded look-ahead the client plays at their times)."""
    gaps: list[float] = []
    late: list[float] = []
    async with grpc.aio.insecure_channel(
        address, options=[("grpc.max_concurrent_streams", 10000)]
    ) as ch:
        stub = pb_grpc.GenerationStub(ch)

        async def one(seed: int) -> None:
            request = pb.GenerateRequest(
                n_frames=frames, seed=seed, realtime=realtime, frames_per_message=per_message
            )
            first = last = None
            async for chunk in stub.Generate(request):
                now = time.perf_counter()
                for f in chunk.frames:
                    if first is None:
                        first = now
                    elif last is not None:
                        gaps.append(now - last)
                    if realtime:
                        late.append(now - first - f.index / 30.0)
                    last = now

        start = time.perf_counter()
        await asyncio.gather(*(one(s) for s in range(n)))
        return time.perf_counter() - start, gaps, late


def ceiling(batch: int, frames: int) -> float:
    """Frames/s of the artifact's step in a tight loop at ``batch`` (noise per sequence)."""
    art = load_artifact(DEFAULT_MODEL, threads=1)
    window = np.repeat(art.default_seed_frames[None, ::-1], batch, axis=0)
    rngs = [sequence_rng(0, i) for i in range(batch)]
    steps = max(20, frames // 4)
    start = time.perf_counter()
    for _ in range(steps):
        noise = np.stack([gibbs_uniforms(r, 1, art.gibbs_steps, art.noise_width)[0] for r in rngs])
        v = art.step(window, noise)
        window = np.concatenate([v[:, None], window[:, :-1]], axis=1)
    return batch * steps / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--frames", type=int, default=300)
    p.add_argument("--streams", default="1,16,64,256")
    p.add_argument("--paced-seconds", type=float, default=60.0)
    p.add_argument("--probe-seconds", type=float, default=10.0)
    p.add_argument(
        "--frames-per-message",
        type=int,
        default=1,
        help="frames per message of the paced streams (look-ahead: per-message - 1 frames)",
    )
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    levels = [int(x) for x in args.streams.split(",") if x]
    results: dict[str, Any] = {"unpaced": {}, "paced": {}, "capacity": {}}
    rows = []
    for n in levels:
        row: list[Any] = [n]
        for label, max_batch in (("on", 256), ("off", 1)):
            proc, address = start_server(max_batch)
            try:
                seconds, gaps, _ = asyncio.run(run_streams(address, n, args.frames, False))
            finally:
                stop(proc)
            fps = n * args.frames / seconds
            g = np.asarray(gaps) * 1e3
            results["unpaced"][f"{n} {label}"] = {
                "frames_per_s": fps,
                "gap_p50_ms": float(np.percentile(g, 50)),
                "gap_p99_ms": float(np.percentile(g, 99)),
            }
            row += [fps, float(np.percentile(g, 50)), float(np.percentile(g, 99))]
        c = ceiling(n, args.frames)
        results["unpaced"][f"{n} ceiling"] = c
        row += [c, row[1] / row[4], row[1] / c]
        rows.append(row)
    proc, address = start_server(256)
    try:
        frames = int(args.paced_seconds * 30)
        per = args.frames_per_message
        _, _, late = asyncio.run(run_streams(address, 64, frames, True, per))
        results["paced"] = {
            "streams": 64,
            "frames_per_message": per,
            "seconds": args.paced_seconds,
            "late_p50_ms": float(np.percentile(late, 50) * 1e3),
            "late_p99_ms": float(np.percentile(late, 99) * 1e3),
        }
        n, best = 64, 0
        while n <= 4096:
            probe = int(args.probe_seconds * 30)
            _, _, late = asyncio.run(run_streams(address, n, probe, True, per))
            p99 = float(np.percentile(late, 99) * 1e3)
            results["capacity"][str(n)] = p99
            if p99 >= 20.0:
                break
            best, n = n, n * 2
        results["capacity"]["max_streams_p99_under_20ms"] = best
    finally:
        stop(proc)
    print(format_machine_info(machine_info()))
    art = load_artifact(DEFAULT_MODEL)
    model = (
        f"embedded {art.card['kind']} ({art.card['frame_size']}→"
        f"{art.card['n_hidden']}, order {art.order}, k = {art.gibbs_steps})"
    )
    print(f"\n{model}, {args.frames} frames per stream\n")
    print(
        ""
        if not rows
        else markdown_table(
            [
                "streams",
                "on: frames/s",
                "on: gap p50 ms",
                "on: gap p99 ms",
                "off: frames/s",
                "off: gap p50 ms",
                "off: gap p99 ms",
                "ceiling frames/s",
                "on / off",
                "on / ceiling",
            ],
            rows,
            digits=[0, 0, 2, 2, 0, 2, 2, 0, 2, 2],
        )
    )
    paced = results["paced"]
    print(
        f"\n64 streams paced at 30 fps, {paced['frames_per_message']} frame(s) per message, "
        f"for {paced['seconds']:.0f} s: lateness p50 "
        f"{paced['late_p50_ms']:.2f} ms, p99 {paced['late_p99_ms']:.2f} ms"
    )
    cap = results["capacity"]
    probes = ", ".join(f"{k}: {v:.1f} ms" for k, v in cap.items() if k.isdigit())
    print(
        f"paced-stream capacity (p99 lateness per probe: {probes}): "
        f"{cap['max_streams_p99_under_20ms']} streams with p99 under 20 ms"
    )
    if args.json:
        dump_json({"machine": machine_info(), "results": results}, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
