"""Benchmark: the gRPC service under concurrent streams, batching on against batching off, and
the capacity of paced, steered streams.

A real server process per configuration (``seqboltz serve`` on the embedded default model,
``serving/models/README.md``, at its card's k), and a client:

1. 1, 16, 64 and 256 concurrent unpaced streams (``--streams``): aggregate frames/s and the
   p50/p99 time between frames of a stream, with batching on (``--max-batch 256``) and off
   (``--max-batch 1``), next to the runtime's compute ceiling for the same work (the
   artifact's step called in a tight loop at that batch size, noise drawn per sequence);
   an asyncio client in this process;
2. the capacity curve (``--capacity``): N paced 30-fps **Steer** streams for
   ``--probe-seconds`` each, ``--frames-per-message`` frames a message (a message leaves when
   its first frame is due, the rest is look-ahead), started at random moments within
   ``--ramp-seconds``, each steered every ``--steer-every`` seconds on average (an ``observe``
   of its latest frame: the default model takes no style), which truncates its look-ahead.
   Per N: p50/p99 lateness of every frame against its play time (first frame + index / 30,
   the version the client plays: a revision replaces look-ahead), p99 of every message's
   first frame, p99 time from a change sent to the first frame showing it played, errors,
   the time from a call's start to its first frame, and the CPU shares of client, server and
   everything else on the machine (CPU seconds over wall seconds × cores), with the load
   average. The largest N with p99 lateness under ``--target-ms``, no error
   and change latency p99 under 100 ms is the capacity. The client is
   ``benchmarks/serve_client_node`` (Node, ``npm ci`` there once) with ``--client node``,
   else an asyncio client in this process (``--client python``; ``auto``: Node when its
   packages are installed).

Both cores are shared by the server and the client. Run from the repository root::

    python benchmarks/serve.py [--streams ""] [--capacity 250,500,1000] [--json PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import shutil
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

ROOT = Path(__file__).resolve().parents[1]
NODE_CLIENT = ROOT / "benchmarks" / "serve_client_node"
PROTO = ROOT / "proto" / "seqboltz" / "v1" / "generation.proto"
RATE = 30.0


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


def _summary(values: list[float]) -> dict[str, float | int | None]:
    if not values:
        return {"n": 0, "p50": None, "p99": None, "p999": None, "max": None}
    a = np.asarray(values)
    return {
        "n": int(a.size),
        "p50": float(np.percentile(a, 50)),
        "p99": float(np.percentile(a, 99)),
        "p999": float(np.percentile(a, 99.9)),
        "max": float(a.max()),
    }


async def steered_streams(args: dict[str, Any]) -> dict[str, Any]:
    """The Node client's measurement (``serve_client_node/client.js``, same arguments and
    result) in asyncio: paced Steer streams, revisions replacing look-ahead, changes timed."""
    rng = random.Random(args["seed"] + 12345)
    n, frames, per = args["streams"], args["frames"], args["framesPerMessage"]
    late: list[float] = []
    message_late: list[float] = []
    steer: list[float] = []
    start_ms: list[float] = []
    counts = {"received": 0, "revisions": 0, "messages": 0, "errors": 0}
    codes: dict[str, int] = {}
    period = 1000.0 / RATE

    def now() -> float:
        return time.perf_counter() * 1e3

    async with grpc.aio.insecure_channel(
        args["address"], options=[("grpc.max_concurrent_streams", 10000)]
    ) as ch:
        stub = pb_grpc.GenerationStub(ch)

        async def one(j: int) -> None:
            await asyncio.sleep(args["rampSeconds"] * rng.random())
            queue: asyncio.Queue[pb.SteerRequest | None] = asyncio.Queue()
            start = pb.GenerateRequest(
                model=args["model"],
                n_frames=frames,
                seed=args["seed"] * 100000 + j,
                realtime=True,
                frames_per_message=per,
            )
            queue.put_nowait(pb.SteerRequest(start=start))
            arrival = np.full(frames, np.nan)
            sent: list[float] = []
            state: dict[str, Any] = {"first": None, "latest": None, "started": now()}

            async def requests() -> Any:
                while (message := await queue.get()) is not None:
                    yield message

            async def steering() -> None:
                t_end = time.perf_counter() + frames / RATE + 0.1
                while args["steerEvery"]:
                    gap = rng.expovariate(1.0 / args["steerEvery"])
                    await asyncio.sleep(min(gap, max(0.0, t_end - time.perf_counter())))
                    if time.perf_counter() >= t_end:
                        break
                    if state["latest"] is None:
                        continue
                    if args["action"] == "change":
                        msg = pb.SteerRequest(change=pb.Conditioning(style=[rng.uniform(-1, 1)]))
                    else:
                        msg = pb.SteerRequest(observe=pb.ObservedFrames(values=state["latest"]))
                    sent.append(now())
                    queue.put_nowait(msg)
                queue.put_nowait(None)

            steerer = asyncio.get_running_loop().create_task(steering())
            try:
                async for chunk in stub.Steer(requests()):
                    t = now()
                    counts["messages"] += 1
                    if chunk.frames:
                        i0 = chunk.frames[0].index
                        if state["first"] is None:
                            state["first"] = t - i0 * period
                            start_ms.append(t - state["started"])
                        if chunk.revises:
                            counts["revisions"] += 1
                        else:
                            message_late.append(t - (state["first"] + i0 * period))
                        for f in chunk.frames:
                            arrival[f.index] = t
                        counts["received"] += len(chunk.frames)
                        state["latest"] = list(chunk.frames[-1].values)
                    for a in chunk.applied:
                        if a.action == "more_frames" or not sent or state["first"] is None:
                            continue
                        t_sent = sent.pop(0)
                        if a.frame < frames:  # else after the last frame: no frame shows it
                            steer.append(max(t, state["first"] + a.frame * period) - t_sent)
            except grpc.RpcError as err:
                counts["errors"] += 1
                codes[err.code().name] = codes.get(err.code().name, 0) + 1
            finally:
                steerer.cancel()
            if state["first"] is not None:
                got = ~np.isnan(arrival)
                late.extend(
                    (arrival[got] - (state["first"] + np.flatnonzero(got) * period)).tolist()
                )

        cpu0 = time.process_time()
        t0 = time.perf_counter()
        await asyncio.gather(*(one(j) for j in range(n)))
        wall = time.perf_counter() - t0
    return {
        "client": "python",
        "streams": n,
        "frames_per_message": per,
        "wall_s": wall,
        "client_cpu_s": time.process_time() - cpu0,
        "frames_received": counts["received"],
        "frames_expected": n * frames,
        "messages": counts["messages"],
        "revisions": counts["revisions"],
        "errors": counts["errors"],
        "error_codes": codes,
        "late_ms": _summary(late),
        "message_late_ms": _summary(message_late),
        "steer_ms": _summary(steer),
        "start_ms": _summary(start_ms),
    }


def node_available() -> bool:
    return shutil.which("node") is not None and (NODE_CLIENT / "node_modules").is_dir()


def run_client(kind: str, args: dict[str, Any]) -> dict[str, Any]:
    """One probe with the Node client (a subprocess) or the asyncio one (this process)."""
    if kind == "node":
        out = subprocess.run(
            ["node", str(NODE_CLIENT / "client.js"), json.dumps({**args, "proto": str(PROTO)})],
            capture_output=True,
            text=True,
            check=True,
            cwd=NODE_CLIENT,
        )
        result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
        return result
    return asyncio.run(steered_streams(args))


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (all its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def busy_seconds() -> float:
    """CPU seconds the whole machine has spent busy so far (all cores), from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")  # less idle, iowait


def probe(
    proc: subprocess.Popen[str], address: str, n: int, args: argparse.Namespace, model: str
) -> dict[str, Any]:
    """N paced, steered streams: the client's result plus CPU shares (server, client, and
    everything else on the machine) and load average."""
    client_args = {
        "address": address,
        "model": model,
        "streams": n,
        "frames": int(args.probe_seconds * RATE),
        "framesPerMessage": args.frames_per_message,
        "rate": RATE,
        "rampSeconds": args.ramp_seconds,
        "steerEvery": args.steer_every,
        "action": "observe",
        "seed": n,
    }
    load0 = os.getloadavg()[0]
    server0, busy0 = cpu_seconds(proc.pid), busy_seconds()
    t0 = time.perf_counter()
    result = run_client(args.client, client_args)
    wall = time.perf_counter() - t0
    cores = os.cpu_count() or 1
    result["server_cpu_s"] = cpu_seconds(proc.pid) - server0
    result["client_cpu_share"] = result["client_cpu_s"] / (result["wall_s"] * cores)
    result["server_cpu_share"] = result["server_cpu_s"] / (wall * cores)
    other = busy_seconds() - busy0 - result["server_cpu_s"] - result["client_cpu_s"]
    result["other_cpu_share"] = max(0.0, other) / (wall * cores)  # other processes' load
    result["loadavg_1min"] = [load0, os.getloadavg()[0]]
    return result


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


def chunk_ceiling(rows: int, per: int, repeats: int = 5) -> float:
    """Frames/s of the server's chunk computation alone (``StepBatcher``'s n steps over
    ``rows`` streams, noise drawn per stream), ``per`` frames a chunk, in this thread."""
    from serving.batcher import ChunkInputs, StepBatcher

    art = load_artifact(DEFAULT_MODEL, threads=1)
    batcher = StepBatcher(art)
    window = np.ascontiguousarray(art.default_seed_frames[::-1][: art.order])
    requests = [
        ChunkInputs(window, sequence_rng(0, i), per, art.gibbs_steps, None, None)
        for i in range(rows)
    ]
    batcher._chunks(requests)
    start = time.perf_counter()
    for _ in range(repeats):
        batcher._chunks(requests)
    return rows * per * repeats / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--frames", type=int, default=300)
    p.add_argument("--streams", default="1,16,64,256", help="unpaced levels ('' skips them)")
    p.add_argument(
        "--capacity",
        default="250,500,750,1000,1250,1500",
        help="paced, steered stream counts of the capacity curve ('' skips it)",
    )
    p.add_argument("--probe-seconds", type=float, default=10.0)
    p.add_argument(
        "--frames-per-message",
        type=int,
        default=30,
        help="frames per message of the paced streams (look-ahead: per-message - 1 frames)",
    )
    p.add_argument("--steer-every", type=float, default=5.0, help="mean seconds between changes")
    p.add_argument("--ramp-seconds", type=float, default=1.0, help="streams start within this")
    p.add_argument("--target-ms", type=float, default=10.0, help="p99 lateness bound")
    p.add_argument("--client", choices=("auto", "node", "python"), default="auto")
    p.add_argument("--ceiling-batch", type=int, default=256)
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    if args.client == "auto":
        args.client = "node" if node_available() else "python"
    levels = [int(x) for x in args.streams.split(",") if x]
    capacity_levels = [int(x) for x in args.capacity.split(",") if x]
    results: dict[str, Any] = {"unpaced": {}, "capacity": {}, "settings": vars(args) | {}}
    results["settings"]["json"] = str(args.json)
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
    art = load_artifact(DEFAULT_MODEL)
    curve = []
    if capacity_levels:
        top = ceiling(args.ceiling_batch, args.frames)
        results["ceiling_frames_per_s"] = {"batch": args.ceiling_batch, "frames_per_s": top}
        results["chunk_ceiling_frames_per_s"] = {
            "rows": args.ceiling_batch,
            "frames_per_chunk": args.frames_per_message,
            "frames_per_s": chunk_ceiling(args.ceiling_batch, args.frames_per_message),
        }
        proc, address = start_server(256)
        try:
            for n in capacity_levels:
                r = probe(proc, address, n, args, "")
                ok = (
                    r["errors"] == 0
                    and r["late_ms"]["n"] >= r["frames_expected"]
                    and r["late_ms"]["p99"] is not None
                    and r["late_ms"]["p99"] < args.target_ms
                    and (r["steer_ms"]["p99"] or 0.0) < 100.0
                )
                r["meets_target"] = ok
                r["ratio_to_ceiling"] = n * RATE / top
                results["capacity"][str(n)] = r
                curve.append(r)
                print(
                    f"{n} streams: late p99 {r['late_ms']['p99']:.1f} ms, steer p99 "
                    f"{(r['steer_ms']['p99'] or math.nan):.0f} ms, errors {r['errors']}",
                    file=sys.stderr,
                )
        finally:
            stop(proc)
        passing = [r["streams"] for r in curve if r["meets_target"]]
        results["capacity"]["max_streams_meeting_target"] = max(passing, default=0)
    print(format_machine_info(machine_info()))
    model = (
        f"embedded {art.card['kind']} ({art.card['frame_size']}→"
        f"{art.card['n_hidden']}, order {art.order}, k = {art.gibbs_steps})"
    )
    print(f"\n{model}, {args.frames} frames per unpaced stream\n")
    if rows:
        print(
            markdown_table(
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
    if curve:
        print(
            f"\npaced 30-fps Steer streams, {args.frames_per_message} frames a message, "
            f"{args.probe_seconds:.0f} s each, a change every {args.steer_every:g} s on average, "
            f"{args.client} client; ceiling {results['ceiling_frames_per_s']['frames_per_s']:,.0f} "
            f"frames/s at batch {args.ceiling_batch} (the server's chunk computation: "
            f"{results['chunk_ceiling_frames_per_s']['frames_per_s']:,.0f} frames/s)\n"
        )
        print(
            markdown_table(
                [
                    "streams",
                    "late p50 ms",
                    "late p99 ms",
                    "msg first-frame p99 ms",
                    "change→shown p99 ms",
                    "start p50 / p99 ms",
                    "errors",
                    "frames not played",
                    "client CPU",
                    "server CPU",
                    "other CPU",
                    "load avg",
                    "frames/s / ceiling",
                    f"p99 < {args.target_ms:g} ms",
                ],
                [
                    [
                        r["streams"],
                        r["late_ms"]["p50"],
                        r["late_ms"]["p99"],
                        r["message_late_ms"]["p99"],
                        r["steer_ms"]["p99"],
                        f"{r['start_ms']['p50']:.0f} / {r['start_ms']['p99']:.0f}",
                        r["errors"],
                        r["frames_expected"] - r["late_ms"]["n"],
                        f"{r['client_cpu_share']:.0%}",
                        f"{r['server_cpu_share']:.0%}",
                        f"{r['other_cpu_share']:.0%}",
                        f"{r['loadavg_1min'][0]:.2f}–{r['loadavg_1min'][1]:.2f}",
                        r["ratio_to_ceiling"],
                        "yes" if r["meets_target"] else "no",
                    ]
                    for r in curve
                ],
                digits=[0, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0],
            )
        )
        print(
            f"\ncapacity: {results['capacity']['max_streams_meeting_target']} streams with p99 "
            f"lateness under {args.target_ms:g} ms, no errors and change latency p99 under 100 ms"
        )
    if args.json:
        dump_json({"machine": machine_info(), "results": results}, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
