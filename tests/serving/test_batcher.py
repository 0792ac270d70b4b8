"""The cross-stream batcher: streams of different k (Gibbs steps per frame) share a batcher
but never a runtime call, and each stream's frames are its frames alone."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np

from seqboltz.noise import sequence_rng
from seqboltz.runtime import FrameStream, load_artifact
from serving.batcher import ChunkInputs, StepBatcher

N_FRAMES = 6
#: each stream's sequence index and k (the test models' k is 5, their max_gibbs_steps too)
STREAMS = [(0, 1), (0, 2), (0, 5), (1, 5), (1, 2), (1, 1)]


def test_streams_of_different_k_are_batched_apart_and_keep_their_frames(
    model_dir: Path,
) -> None:
    art = load_artifact(model_dir / "crbm.onnx")
    alone = [
        art.generate(N_FRAMES, seed=11, sequence_indices=[i], gibbs_steps=k)[0] for i, k in STREAMS
    ]
    calls: list[tuple[int, int]] = []  # (rows, k) of every runtime call
    step = art.step

    def recording(history, noise, style=None, controls=None):  # type: ignore[no-untyped-def]
        calls.append((noise.shape[0], noise.shape[1]))
        return step(history, noise, style, controls)

    art.step = recording  # type: ignore[method-assign]
    collected: list[int] = []  # steps per collected batch
    batcher = StepBatcher(art, max_batch=64, max_wait=1.0, observe=lambda n, s: collected.append(n))

    async def run(stream: FrameStream) -> np.ndarray:
        out = [stream.push(await batcher.step(stream.inputs()))[0] for _ in range(N_FRAMES)]
        return np.stack(out)

    async def main() -> list[np.ndarray]:
        streams = [
            art.frame_stream(seed=11, sequence_indices=[i], gibbs_steps=k) for i, k in STREAMS
        ]
        for _ in streams:
            batcher.open()
        try:
            return await asyncio.gather(*(run(s) for s in streams))
        finally:
            batcher.shutdown()

    got = asyncio.run(main())
    # every batch held all six streams (three k), and each k ran as its own call
    assert collected == [len(STREAMS)] * N_FRAMES
    assert sorted(calls) == sorted([(2, 1), (2, 2), (2, 5)] * N_FRAMES)
    for frames, expected in zip(got, alone, strict=True):
        np.testing.assert_allclose(frames, expected, rtol=0, atol=1e-10)
    for a, b in ((0, 1), (1, 2), (3, 5)):  # one sequence's noise at two k: other frames
        assert np.abs(got[a] - got[b]).max() > 1e-3


def test_chunks_ahead_of_time_wait_for_their_horizon_and_share_a_batch(model_dir: Path) -> None:
    """Ahead of time, chunks asked for at different times run in one batch once their
    deadlines are within the horizon, not before; one cancelled before then is never
    computed; an urgent chunk does not wait for them."""
    art = load_artifact(model_dir / "crbm.onnx")
    rows: list[int] = []
    batcher = StepBatcher(art, cadence=0.02, horizon=0.1, observe=lambda n, s: rows.append(n))
    window = np.ascontiguousarray(art.default_seed_frames[::-1][: art.order])

    def request(i: int) -> ChunkInputs:
        return ChunkInputs(window, sequence_rng(3, i), 4, art.gibbs_steps, None, None)

    async def main() -> tuple[float, float, list[float]]:
        loop = asyncio.get_running_loop()
        for _ in range(4):
            batcher.open()
        t0 = loop.time()
        ahead = [batcher.chunk(request(0), wait=0.3)]
        await asyncio.sleep(0.01)
        ahead += [batcher.chunk(request(1), wait=0.3), batcher.chunk(request(2), wait=0.3)]
        ahead[2].cancel()
        urgent = await batcher.chunk(request(3))
        urgent_at = loop.time() - t0
        assert not any(f.done() for f in ahead[:2]) and urgent.frames.shape[0] == 4
        await asyncio.gather(*ahead[:2])
        done_at = loop.time() - t0
        batcher.shutdown()
        return urgent_at, done_at, [f.result().frames.shape[0] for f in ahead[:2]]

    urgent_at, done_at, lengths = asyncio.run(main())
    assert urgent_at < 0.1 and 0.15 < done_at < 0.35, (urgent_at, done_at)
    assert lengths == [4, 4]
    assert rows == [1, 2]  # the urgent chunk, then the two left ahead of time together


def test_a_deferred_chunk_goes_after_work_due_soon_when_a_batch_is_full(model_dir: Path) -> None:
    """With more chunks ready than a batch holds, one asked for with ``defer`` (a stream's
    first chunk) waits for the next batch, though its deadline is the earliest."""
    art = load_artifact(model_dir / "crbm.onnx")
    order: list[list[int]] = []
    batcher = StepBatcher(art, max_batch=2, cadence=0.01, horizon=0.05)
    compute = batcher._compute

    def recording(requests):  # type: ignore[no-untyped-def]
        order.append([int(r.history[0, 0]) for r in requests])
        return compute(requests)

    batcher._compute = recording  # type: ignore[method-assign]

    def request(tag: int) -> ChunkInputs:
        window = np.full((art.order, art.frame_size), float(tag))
        return ChunkInputs(window, sequence_rng(3, tag), 2, art.gibbs_steps, None, None)

    async def main() -> None:
        for _ in range(3):
            batcher.open()
        futures = [
            batcher.chunk(request(0), wait=0.05, defer=1.0),
            batcher.chunk(request(1), wait=0.052),
            batcher.chunk(request(2), wait=0.054),
        ]
        await asyncio.gather(*futures)
        batcher.shutdown()

    asyncio.run(main())
    assert order == [[1, 2], [0]]
