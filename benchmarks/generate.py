"""Benchmark: frame-by-frame generation, torch eager against the torch-free ONNX runtime.

One process, one model: the 30 fps motion CRBM set-up (63 values per frame, 150 hidden,
order 3, k = 30 Gibbs steps per frame), exported with ``seqboltz.export``. For each
configuration, ``--frames`` frames are generated frame by frame with the seed→noise rule
(per-sequence ``sequence_rng``), timing every frame:

* torch eager: ``SequenceRBM.next_frame`` in float64 (what ``generate`` runs), batch 1 and 64;
* the runtime: ``Artifact.stream`` (onnxruntime, float64), batch 1, 64 and 256, at each
  ``--gibbs-steps`` k: an artifact with that k on its card (the card's k runs with the Gibbs-step
  Loop written out), and the k = 30 artifact run at that k (through its Loop); with a seqboltz
  from before ``max_gibbs_steps`` (for before/after), one artifact per k, k unrolled at export;
* the runtime in blocks (``--block-frames``, default 16 and 64, a row each):
  ``Artifact.generate`` with ``block_frames = block``, which advances ``block`` frames a call
  (``Artifact.steps``: straight-line graphs of ``block``, ``block // 4``, … frames at the
  card's k, the ``Loop`` over frames at another k), timed over the whole call (frames/s) and
  per call (p50/p99 ms/step: from a call's start to the next call's, over its frames), after
  a warm-up call that builds its sessions; "Loop only" rows run every block through the
  ``Loop`` (no straight-line graph), at the largest block;
* the pure-compute ceiling: the same step's math and noise generation in a tight numpy loop
  (no session, no I/O), batch 1, 64, 256, in float64 and float32 — float64 is what keeps a
  sequence's frames independent of its batch, so float64 / float32 is the cost of that rule.

Frames/s counts every sequence's frames (batch × frames / seconds); latency is per step (one
frame of every sequence in the batch). Run from the repository root::

    python benchmarks/generate.py [--frames 200] [--threads 1] [--json PATH]
    python benchmarks/generate.py --gibbs-steps 30,10,3,1 --batches 1,256 --no-ceiling
    python benchmarks/generate.py --gibbs-steps 30,1 --batches 1,256 --no-ceiling --rounds 3
    python benchmarks/generate.py --gibbs-steps 1 --batches 1 --block-frames 16,32,64,128

With ``--rounds R`` every configuration runs ``R`` times, the rounds interleaved (all
configurations once, then again), and the table holds each configuration's median round; the
ratios to torch are of those medians. "frames/s at p50" is batch / p50 seconds a step: on a
shared machine it is less moved by the steps another process delays than the mean.
"""

from __future__ import annotations

import argparse
import inspect
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # `_common` when run as a script

from _common import dump_json, format_machine_info, machine_info, markdown_table, set_threads

from seqboltz.export import build_card, export_onnx
from seqboltz.models import ConditionalRBM
from seqboltz.noise import gibbs_uniforms, sequence_rng
from seqboltz.runtime import load_artifact

D, H, ORDER, K = 63, 150, 3, 30


def _summary(step_seconds: list[float], batch: int) -> dict[str, float]:
    s = np.asarray(step_seconds)
    return {
        "frames_per_s": batch * len(s) / s.sum(),
        "p50_frames_per_s": batch / float(np.percentile(s, 50)),
        "p50_ms": float(np.percentile(s, 50) * 1e3),
        "p99_ms": float(np.percentile(s, 99) * 1e3),
    }


def _noise(rngs: list[np.random.Generator], k: int = K) -> np.ndarray:
    return np.stack([gibbs_uniforms(r, 1, k, H)[0] for r in rngs])


def time_torch(model: ConditionalRBM, batch: int, frames: int, k: int = K) -> dict[str, float]:
    """Torch eager's frames/s: ``next_frame`` at ``k`` Gibbs steps, noise drawn as the runtime
    draws it."""
    m = model.double()
    window = torch.zeros(batch, ORDER, D, dtype=torch.float64)
    rngs = [sequence_rng(0, i) for i in range(batch)]
    times = []
    with torch.no_grad():
        for _ in range(frames):
            t0 = time.perf_counter()
            noise = torch.from_numpy(_noise(rngs, k))
            v = m.next_frame({"history": window}, noise)
            window = torch.cat([v[:, None], window[:, :-1]], dim=1)
            times.append(time.perf_counter() - t0)
    return _summary(times[5:], batch)


def time_runtime(
    path: Path, batch: int, frames: int, threads: int, k: int | None = None
) -> dict[str, float]:
    """The runtime's frames/s; ``k``: Gibbs steps per frame (``None``: the card's)."""
    art = load_artifact(path, threads=threads)
    times = []
    kwargs = {} if k is None else {"gibbs_steps": k}
    t0 = time.perf_counter()
    for _ in art.stream(frames, seed=0, count=batch, **kwargs):
        t1 = time.perf_counter()
        times.append(t1 - t0)
        t0 = t1
    return _summary(times[5:], batch)


def time_blocks(
    path: Path,
    batch: int,
    frames: int,
    threads: int,
    k: int | None,
    block: int,
    straight: bool = True,
) -> dict[str, float]:
    """The runtime's frames/s generating in blocks (``Artifact.generate``, ``block`` frames a
    call), over the whole call; a first call of two blocks and two frames, and one of each
    smaller straight-line block, build and warm the sessions. ``straight=False``: every block
    through the ``Loop`` over frames (no straight-line graph), as before the block graph."""
    from seqboltz.runtime import _artifact

    art = load_artifact(path, threads=threads)
    if hasattr(art, "block_frames"):
        art.block_frames = block
    kwargs = {} if k is None else {"gibbs_steps": k}
    budget = getattr(_artifact, "BLOCK_NODES", None)
    if not straight and budget is not None:
        _artifact.BLOCK_NODES = 0  # type: ignore[attr-defined]
    calls: list[tuple[float, int]] = []  # (start, frames) of each multi-frame call
    steps = art.steps

    def timed(*args: np.ndarray, **kwargs: bool) -> np.ndarray:
        calls.append((time.perf_counter(), args[1].shape[1]))
        return steps(*args, **kwargs)

    art.steps = timed  # type: ignore[method-assign]
    try:
        art.generate(2 * block + 2, seed=1, count=batch, **kwargs)  # the block's and Loop's
        sizes = [size for size, _ in getattr(art, "_ladder", list)()]  # block, block // 4, …
        if len(sizes) > 1:  # one call of each straight-line block
            art.generate(sum(sizes) + 2, seed=1, count=batch, **kwargs)
        calls.clear()
        t0 = time.perf_counter()
        art.generate(frames, seed=0, count=batch, **kwargs)
        t1 = time.perf_counter()
    finally:
        if budget is not None:
            _artifact.BLOCK_NODES = budget  # type: ignore[attr-defined]
    # a step's share of each call, from its start to the next call's (or the end)
    starts = [c[0] for c in calls] + [t1]
    per_step = [(b - a) / n for a, b, (_, n) in zip(starts, starts[1:], calls, strict=False)]
    nan = float("nan")
    summary = _summary(per_step, batch) if calls else {"p50_ms": nan, "p99_ms": nan}
    summary["frames_per_s"] = batch * frames / (t1 - t0)
    summary["p50_frames_per_s"] = summary.get("p50_frames_per_s", nan)
    summary["calls"] = len(calls)  # 0: generate stepped frame by frame (LOOP_ROWS)
    return summary


def ceiling_step(model: ConditionalRBM, dtype: type) -> Callable[..., np.ndarray]:
    """The CRBM step in numpy: dynamic biases, k Gibbs steps from the given uniforms, mean-field
    last step (the same math as ``next_frame``)."""
    p = {n: t.detach().double().numpy().astype(dtype) for n, t in model.named_parameters()}
    w, a, b = p["weight"], p["visible_bias"], p["hidden_bias"]
    big_a, big_b = p["autoregressive"], p["past_to_hidden"]

    def step(window: np.ndarray, noise: np.ndarray) -> np.ndarray:
        x = window.reshape(window.shape[0], -1)
        a_hat, b_hat = a + x @ big_a, b + x @ big_b
        v = window[:, 0]
        for s in range(K):
            probs = 1.0 / (1.0 + np.exp(-(b_hat + v @ w)))
            v = a_hat + (noise[:, s] < probs).astype(dtype) @ w.T
        return a_hat + (1.0 / (1.0 + np.exp(-(b_hat + v @ w)))) @ w.T

    return step


def time_ceiling(model: ConditionalRBM, batch: int, frames: int, dtype: type) -> dict[str, float]:
    step = ceiling_step(model, dtype)
    window = np.zeros((batch, ORDER, D), dtype=dtype)
    rngs = [sequence_rng(0, i) for i in range(batch)]
    times = []
    for _ in range(frames):
        t0 = time.perf_counter()
        noise = _noise(rngs).astype(dtype, copy=False)
        v = step(window, noise)
        window = np.concatenate([v[:, None], window[:, :-1]], axis=1)
        times.append(time.perf_counter() - t0)
    return _summary(times[5:], batch)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1, help="torch, BLAS and ORT threads")
    parser.add_argument("--json", type=Path)
    parser.add_argument(
        "--gibbs-steps", default=str(K), help="k of the runtime rows, comma-separated (e.g. 30,3)"
    )
    parser.add_argument("--batches", default="1,64,256", help="batches of the runtime rows")
    parser.add_argument("--no-ceiling", action="store_true", help="skip the numpy ceiling rows")
    parser.add_argument(
        "--block-frames",
        default="16,64",
        help="frames a call of the block rows, comma-separated, a row each (0: none)",
    )
    parser.add_argument(
        "--rounds", type=int, default=1, help="interleaved rounds; the table shows medians"
    )
    args = parser.parse_args(argv)
    blocks = [int(x) for x in args.block_frames.split(",") if int(x)]
    if args.rounds < 1 or min(blocks, default=1) < 1:
        parser.error("--rounds takes an integer >= 1 and --block-frames integers >= 0")
    ks = [int(x) for x in args.gibbs_steps.split(",")]
    batches = [int(x) for x in args.batches.split(",")]
    if min(ks) < 1 or min(batches) < 1:
        parser.error("--gibbs-steps and --batches take integers >= 1")
    set_threads(args.threads)
    torch.manual_seed(0)
    model = ConditionalRBM(D, H, ORDER)
    rows, results = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        # one artifact per k with that k on its card (a seqboltz from before max_gibbs_steps:
        # k unrolled in the graph; after: run with the Loop written out), and after, the k = 30
        # artifact also run at each other k (through its Loop)
        variable_k = "max_gibbs_steps" in inspect.signature(build_card).parameters
        paths: dict[int, Path] = {}
        for k in sorted({*ks, K}) if variable_k else ks:
            extra = {"max_gibbs_steps": max(*ks, K)} if variable_k else {}
            card = build_card(model, name="bench", gibbs_steps=k, **extra)
            paths[k] = export_onnx(model, Path(tmp) / f"crbm{k}.onnx", card, k)
        configs: list[tuple[str, int, Callable[[], dict[str, float]]]] = []
        for b in (1, 64):
            configs.append(
                ("torch eager (float64)", b, lambda b=b: time_torch(model, b, args.frames))
            )
        for k in (k for k in ks if k != K):  # torch at the runtime rows' other k, batch 1
            configs.append(
                (
                    f"torch eager (float64), k = {k}",
                    1,
                    lambda k=k: time_torch(model, 1, args.frames, k),
                )
            )
        runs = [(k, k, "" if k == K else f", k = {k}") for k in ks]
        if variable_k:
            runs += [(K, k, f", k = {k} through the Loop (card k = {K})") for k in ks if k != K]
        for card_k, k, label in runs:
            for b in batches:
                configs.append(
                    (
                        "runtime (onnxruntime, float64)" + label,
                        b,
                        lambda b=b, k=k, path=paths[card_k]: time_runtime(
                            path, b, args.frames, args.threads, k if variable_k else None
                        ),
                    )
                )
        for card_k, k, label in runs:
            for block in blocks:
                for b in batches:
                    configs.append(
                        (
                            f"runtime in blocks of {block} (generate)" + label,
                            b,
                            lambda b=b, k=k, path=paths[card_k], block=block: time_blocks(
                                path, b, args.frames, args.threads, k, block
                            ),
                        )
                    )
        for card_k, k, label in runs if blocks else ():  # the largest blocks' Loop alone
            if card_k != k:
                continue
            configs.append(
                (
                    f"runtime in blocks of {max(blocks)}, Loop only (generate)" + label,
                    1,
                    lambda k=k, path=paths[card_k]: time_blocks(
                        path, 1, args.frames, args.threads, k, max(blocks), straight=False
                    ),
                )
            )
        for b in () if args.no_ceiling else (1, 64, 256):
            for dt, name in ((np.float64, "float64"), (np.float32, "float32")):
                configs.append(
                    (
                        f"ceiling: numpy step + noise ({name})",
                        b,
                        lambda b=b, dt=dt: time_ceiling(model, b, args.frames, dt),
                    )
                )
        rounds: dict[str, list[dict[str, float]]] = {}
        for _ in range(args.rounds):
            for name, batch, fn in configs:
                rounds.setdefault(f"{name} b{batch}", []).append(fn())
        for name, batch, _fn in configs:
            runs_of = rounds[f"{name} b{batch}"]
            fps = [r["frames_per_s"] for r in runs_of]
            r = dict(runs_of[int(np.argsort(fps)[len(fps) // 2])])  # the median round
            r["rounds_frames_per_s"] = fps  # type: ignore[assignment]
            results[f"{name} b{batch}"] = r
            rows.append(
                [name, batch, r["frames_per_s"], r["p50_frames_per_s"], r["p50_ms"], r["p99_ms"]]
            )
    torch_b1 = results["torch eager (float64) b1"]["frames_per_s"]
    for row in rows:
        row.append(row[2] / torch_b1)
    print(format_machine_info(machine_info()))
    print(
        f"\nCRBM {D}→{H}, order {ORDER}, k = {K} (runtime rows: k as named), {args.frames} frames,"
        f" {args.threads} thread(s), median of {args.rounds} interleaved round(s); "
        + ("k chosen at run time" if variable_k else "k unrolled at export, one artifact per k")
        + "\n"
    )
    print(
        markdown_table(
            [
                "generator",
                "batch",
                "frames/s",
                "frames/s at p50",
                "p50 ms/step",
                "p99 ms/step",
                "× torch b1",
            ],
            rows,
            digits=[0, 0, 0, 0, 3, 3, 2],
        )
    )
    for k in ks:  # the target: runtime >= 5x torch eager at batch 1, at the recipe's k
        tag = "" if k == K else f", k = {k}"
        runtime = results.get(f"runtime (onnxruntime, float64){tag} b1")
        eager = results.get(f"torch eager (float64){tag} b1")
        rows_b1 = [("runtime", runtime)] + [
            (
                f"runtime in blocks of {block}",
                results.get(f"runtime in blocks of {block} (generate){tag} b1"),
            )
            for block in blocks
        ]
        for label, got in rows_b1:
            if got and eager:
                ratio = got["frames_per_s"] / eager["frames_per_s"]
                at_p50 = got["p50_frames_per_s"] / eager["p50_frames_per_s"]
                print(
                    f"{label} / torch eager at batch 1, k = {k}: {ratio:.2f}× (at p50: "
                    f"{at_p50:.2f}×; target ≥ 5×)"
                )
    if args.json:
        command = ["benchmarks/generate.py", *(sys.argv[1:] if argv is None else argv)]
        dump_json({"machine": machine_info(), "command": command, "results": results}, args.json)
    if args.no_ceiling or K not in ks or not {1, 256} <= set(batches):
        return 0
    rt1 = results["runtime (onnxruntime, float64) b1"]["frames_per_s"]
    rt256 = results["runtime (onnxruntime, float64) b256"]["frames_per_s"]
    c256 = results["ceiling: numpy step + noise (float64) b256"]["frames_per_s"]
    c256_32 = results["ceiling: numpy step + noise (float32) b256"]["frames_per_s"]
    print(
        f"\nruntime / torch eager at batch 1: {rt1 / torch_b1:.2f}× (target ≥ 5×)\n"
        f"runtime / float64 ceiling at batch 256: {rt256 / c256:.2f} (target ≥ 0.5)\n"
        f"cost of float64 (the batch-invariance rule) at the ceiling, batch 256: "
        f"{c256_32 / c256:.2f}× slower than float32"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
