"""The frame producer's parts in-process: chunks computed in one batch equal each stream
alone, and messages encoded from the frames' bytes equal those built value by value."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from seqboltz.noise import sequence_rng
from seqboltz.runtime import load_artifact
from seqboltz.v1 import generation_pb2 as pb
from serving.batcher import ChunkInputs, StepBatcher
from serving.streaming import frames_wire, packed_doubles


@pytest.mark.parametrize("first", [0, 1, 127, 128, 16383, 16384, 2**40])
def test_frames_wire_equals_frame_messages(first: int) -> None:
    values = np.random.default_rng(first % 11).standard_normal((3, 7))
    wire = pb.FrameChunk.FromString(frames_wire(first, values))
    built = pb.FrameChunk(
        frames=[pb.Frame(index=first + i, values=row.tolist()) for i, row in enumerate(values)]
    )
    assert wire == built and wire.SerializeToString() == built.SerializeToString()
    token = pb.ResumeToken(seed=3)
    token.MergeFromString(packed_doubles(5, values))
    assert list(token.history) == values.ravel().tolist()


@pytest.mark.parametrize("name, style", [("crbm", None), ("fcrbm", np.array([0.7]))])
def test_chunks_of_several_lengths_and_k_in_one_batch_equal_each_stream_alone(
    model_dir: Path, name: str, style: np.ndarray | None
) -> None:
    """Six streams (two k, lengths 1 to 7) in one batch: each chunk's frames are its stream's
    frames generated alone, and its noise generator ends where the stream's next frame
    starts; the batch ran one several-frames call per k and distinct length (up to it)."""
    art = load_artifact(model_dir / f"{name}.onnx")
    streams = [(0, 5, 7), (1, 5, 3), (2, 2, 1), (3, 2, 7), (4, 5, 4), (5, 2, 2)]
    calls: list[tuple[int, int, int]] = []  # (k, rows, frames) of every call
    steps = art.steps

    def counting(h, u, s=None, c=None):
        calls.append((u.shape[2], u.shape[0], u.shape[1]))
        return steps(h, u, s, c)

    art.steps = counting  # type: ignore[method-assign]
    batcher = StepBatcher(art, max_batch=64, max_wait=1.0)
    window = np.ascontiguousarray(art.default_seed_frames[::-1][: art.order])
    rngs = [sequence_rng(9, i) for i, _, _ in streams]

    async def run() -> list[np.ndarray]:
        for _ in streams:
            batcher.open()
        futures = [
            batcher.chunk(ChunkInputs(window, rng, n, k, style, None))
            for rng, (_, k, n) in zip(rngs, streams, strict=True)
        ]
        try:
            return [(await f).frames for f in futures]
        finally:
            batcher.shutdown()

    got = asyncio.run(run())
    art.steps = steps  # type: ignore[method-assign]
    # k = 5: lengths 7, 4, 3 (3 rows for 3 frames, 2 for 1, 1 for 3); k = 2: 7, 2, 1
    assert sorted(calls) == sorted(
        [(5, 3, 3), (5, 2, 1), (5, 1, 3), (2, 3, 1), (2, 2, 1), (2, 1, 5)]
    )
    for (i, k, n), frames, rng in zip(streams, got, rngs, strict=True):
        alone = art.generate(n + 1, seed=9, sequence_indices=[i], gibbs_steps=k, style=style)
        np.testing.assert_allclose(frames, alone[0, :n], rtol=0, atol=1e-10)
        jumped = sequence_rng(9, i, n, k, art.noise_width)
        np.testing.assert_array_equal(rng.random(4), jumped.random(4))
