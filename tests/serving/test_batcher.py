"""The cross-stream batcher: streams of different k (Gibbs steps per frame) share a batcher
but never a runtime call, and each stream's frames are its frames alone."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np

from seqboltz.runtime import FrameStream, load_artifact
from serving.batcher import StepBatcher

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
