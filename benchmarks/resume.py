"""Benchmark: resuming a stream with its resume token against replaying it from frame 0.

A real server process (``seqboltz serve`` on the embedded motion CRBM: 63 values per frame,
150 hidden, order 3, k = 30; ``--max-replay-frames`` raised so that the replays can be timed)
and a blocking client in this process, both on the same cores. For each frame index ``t`` the
latency is the time from sending the request to receiving the first frame (frame ``t``):

- *token*: ``GenerateRequest(resume=token)`` with a token at frame ``t`` (the token of a real
  stream with its ``frame`` set to ``t``: the server jumps the noise there, nothing is
  replayed), median of ``--repeats``;
- *replay*: ``GenerateRequest(start_frame=t)``, which recomputes the ``t`` frames before it,
  median of 3, measured up to ``--replay-up-to`` frames; beyond that it is extrapolated from
  a least-squares line through the measured replays (marked *extrapolated*).

Also the in-process cost of ``FrameStream.resume`` at frame 10⁶ (no gRPC). Run from the
repository root::

    python benchmarks/resume.py [--repeats 30] [--replay-up-to 2000] [--json PATH]
"""

from __future__ import annotations

import argparse
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import grpc
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # `_common` when run as a script

from _common import dump_json, format_machine_info, machine_info, markdown_table, start_serve

from seqboltz.runtime import FrameStream, load_artifact
from seqboltz.v1 import generation_pb2 as pb
from seqboltz.v1 import generation_pb2_grpc as pb_grpc
from serving.repository import DEFAULT_MODEL

FRAMES = (100, 300, 1000, 2000, 10_000, 100_000, 1_000_000)


def start_server(max_replay: int) -> tuple[subprocess.Popen[str], str]:
    return start_serve("--max-replay-frames", str(max_replay))


def first_frame_seconds(stub: pb_grpc.GenerationStub, request: pb.GenerateRequest) -> float:
    """Seconds from the call to its first (only) frame; checks the frame's index."""
    start = time.perf_counter()
    (chunk,) = list(stub.Generate(request, timeout=600))
    seconds = time.perf_counter() - start
    expected = request.resume.frame if request.HasField("resume") else request.start_frame
    assert chunk.frames[0].index == expected, (chunk.frames[0].index, expected)
    return seconds


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=30, help="token resumes per frame index")
    p.add_argument("--replay-up-to", type=int, default=2000, help="largest replay measured")
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    info = machine_info()
    print(format_machine_info(info))
    proc, address = start_server(args.replay_up_to)
    try:
        with grpc.insecure_channel(address) as channel:
            stub = pb_grpc.GenerationStub(channel)
            (chunk,) = list(
                stub.Generate(pb.GenerateRequest(n_frames=3, seed=7, frames_per_message=3))
            )
            token = chunk.resume
            for _ in range(3):  # warm-up: session, thread pool, channel
                first_frame_seconds(stub, pb.GenerateRequest(n_frames=1, resume=token))
            rows, results = [], []
            replayed: list[tuple[int, float]] = []
            for frame in FRAMES:
                at = pb.ResumeToken()
                at.CopyFrom(token)
                at.frame = frame
                resume = [
                    first_frame_seconds(stub, pb.GenerateRequest(n_frames=1, resume=at))
                    for _ in range(args.repeats)
                ]
                replay = None
                if frame <= args.replay_up_to:
                    replay = statistics.median(
                        first_frame_seconds(
                            stub, pb.GenerateRequest(n_frames=1, seed=7, start_frame=frame)
                        )
                        for _ in range(3)
                    )
                    replayed.append((frame, replay))
                results.append(
                    {
                        "frame": frame,
                        "token_median_s": statistics.median(resume),
                        "token_p90_s": float(np.quantile(resume, 0.9)),
                        "replay_s": replay,
                    }
                )
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    xs, ys = np.array(replayed, dtype=float).T
    slope, intercept = np.polyfit(xs, ys, 1)
    for r in results:
        measured = r["replay_s"] is not None
        replay = r["replay_s"] if measured else slope * r["frame"] + intercept
        r["replay_extrapolated"] = not measured
        rows.append(
            [
                f"{r['frame']:,}",
                r["token_median_s"] * 1e3,
                r["token_p90_s"] * 1e3,
                replay * 1e3,
                "measured" if measured else "extrapolated",
                replay / r["token_median_s"],
            ]
        )
    art = load_artifact(DEFAULT_MODEL)
    state = FrameStream(art.spec, art.default_seed_frames, seed=7).state()._replace(frame=10**6)
    start = time.perf_counter()
    for _ in range(100):
        FrameStream.resume(art.spec, state).inputs()
    in_process = (time.perf_counter() - start) / 100
    print(
        f"\nreplay: {slope * 1e3:.3f} ms a frame + {intercept * 1e3:.1f} ms "
        f"(least squares over {len(replayed)} measured replays)"
    )
    print(
        "FrameStream.resume at frame 10^6 and its first noise, in process: "
        f"{in_process * 1e6:.0f} µs\n"
    )
    print(
        markdown_table(
            ["frame", "token p50 ms", "token p90 ms", "replay ms", "replay is", "replay / token"],
            rows,
            digits=[0, 1, 1, 0, 0, 0],
        )
    )
    if args.json:
        summary = {
            "machine": info,
            "results": results,
            "replay_ms_per_frame": slope * 1e3,
            "in_process_resume_s": in_process,
        }
        dump_json(summary, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
