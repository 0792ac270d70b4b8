"""Generation in blocks (``Artifact.steps`` through the straight-line block graph,
``FrameStream.run(steps=...)``, ``Artifact.generate``/``run_stream``): bit for bit the frames of
``step`` called frame by frame, for several seeds, ``k``, block sizes and partial last blocks,
with a style that changes inside a block, on diverging sequences, on the embedded models and on
an artifact from before ``max_gibbs_steps``."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from seqboltz.errors import ModelDiverged
from seqboltz.noise import gibbs_uniforms, sequence_rng
from seqboltz.runtime import load_artifact
from seqboltz.runtime._frames import BLOCK, block_graph, frames_graph

D, ORDER, K = 8, 3, 5
ROOT = Path(__file__).resolve().parents[2]
EMBEDDED = sorted((ROOT / "serving" / "models").glob("*.onnx"))
FIXED_K = Path(__file__).resolve().parent / "data" / "fixed_k_crbm.onnx"


def frame_by_frame(art, n_frames: int, **kwargs):  # type: ignore[no-untyped-def]
    """Today's path: ``FrameStream.run`` with ``step``, one onnxruntime call a frame."""
    stream = art.frame_stream(**kwargs)
    return stream, stream.run(art.step, n_frames)


@pytest.mark.parametrize("block", [2, 4, 7, 16, 64])
@pytest.mark.parametrize("k", [K, 1, 2])
def test_generate_in_blocks_equals_frame_by_frame(crbm_path, k: int, block: int) -> None:
    """Three seeds, 23 frames (a partial last block for every block size but 1 frame over;
    blocks of 64 run 23 frames as 16 + 4 + 3), 4 sequences: the same bits as frame by frame,
    and the streams end in the same state."""
    _, path = crbm_path
    art = replace(load_artifact(path), block_frames=block)
    seeds = np.random.default_rng(block).normal(size=(4, ORDER, D))
    for seed in (0, 7, 2**40 + 5):
        kwargs = {"seed": seed, "seed_frames": seeds, "gibbs_steps": k}
        before, want = frame_by_frame(art, 23, **kwargs)
        got = art.generate(23, **kwargs)
        np.testing.assert_array_equal(got, want.frames)
        stream = art.frame_stream(**kwargs)
        art.run_stream(stream, 23)
        assert stream.frame == before.frame == 23
        np.testing.assert_array_equal(stream.window, before.window)
        np.testing.assert_array_equal(stream.inputs().noise, before.inputs().noise)
        # a sequence's frames do not depend on what shares its blocks
        alone = art.generate(23, **{**kwargs, "seed_frames": seeds[2:3], "sequence_indices": [2]})
        np.testing.assert_array_equal(alone[0], got[2])


def test_blocks_break_where_the_style_changes(fcrbm_path) -> None:
    """A per-frame style schedule that changes at frames 5, 6 and 19 (inside blocks of 8), and
    a steering change on a stream: the same bits as frame by frame."""
    _, path = fcrbm_path
    art = replace(load_artifact(path), block_frames=8)
    style = np.zeros((3, 30, 1))
    style[:, 5:] = 1.0
    style[:, 6:] = -0.5
    style[1, 19:] = 2.0  # one row only
    for k in (K, 3):
        _, want = frame_by_frame(art, 30, seed=3, count=3, style=style, gibbs_steps=k)
        got = art.generate(30, seed=3, count=3, style=style, gibbs_steps=k)
        np.testing.assert_array_equal(got, want.frames)
    steered, blocks = (art.frame_stream(seed=9, count=2, style=np.array([0.3])) for _ in "ab")
    first = steered.run(art.step, 11).frames
    np.testing.assert_array_equal(art.run_stream(blocks, 11).frames, first)
    for stream in (steered, blocks):
        stream.change(style=np.array([[1.0], [-1.0]]))
    np.testing.assert_array_equal(
        art.run_stream(blocks, 20).frames, steered.run(art.step, 20).frames
    )


def test_a_stream_whose_noise_is_drawn_continues_exactly(crbm_path) -> None:
    """``inputs()`` drew the next frame's noise already: the blocks start after that frame."""
    _, path = crbm_path
    art = load_artifact(path)
    a, b = (art.frame_stream(seed=5, count=2) for _ in "ab")
    a.inputs(), b.inputs()
    np.testing.assert_array_equal(art.run_stream(a, 40).frames, b.run(art.step, 40).frames)


def test_diverging_sequences_stop_at_the_same_frames(diverging_path) -> None:
    """Blocks on a model that blows up near frame 340: the same frames, the same divergences
    (frame, row), and the same error as frame by frame."""
    _, path = diverging_path
    art = replace(load_artifact(path), block_frames=16)
    want = art.frame_stream(seed=0, count=8).run(art.step, 345, stop_diverged=True)
    got = art.run_stream(art.frame_stream(seed=0, count=8), 345, stop_diverged=True)
    assert want.diverged and {r: e.frame for r, e in got.diverged.items()} == {
        r: e.frame for r, e in want.diverged.items()
    }
    assert {r: e.sequences for r, e in got.diverged.items()} == {
        r: e.sequences for r, e in want.diverged.items()
    }
    np.testing.assert_array_equal(got.frames, want.frames)
    first = min(e.frame for e in want.diverged.values())
    with pytest.raises(ModelDiverged, match=f"model diverged at frame {first}"):
        art.generate(345, seed=0, count=8)
    stream = art.frame_stream(seed=0, count=8)
    with pytest.raises(ModelDiverged):
        art.run_stream(stream, 345)
    assert stream.frame == first  # stopped before the frame, its noise next
    again = art.frame_stream(seed=0, count=8)
    again.run(art.step, first)
    np.testing.assert_array_equal(stream.window, again.window)
    np.testing.assert_array_equal(stream.inputs().noise, again.inputs().noise)


@pytest.mark.parametrize("path", [*EMBEDDED, FIXED_K], ids=[p.name for p in [*EMBEDDED, FIXED_K]])
def test_steps_in_blocks_on_the_embedded_and_old_artifacts(path: Path, one_by_one) -> None:
    """The embedded models (Box-Muller visible noise, style) and an artifact with ``k``
    unrolled at export: whole blocks (of 16 and of 4), a last frame through ``step`` and a
    rest through the ``Loop`` give ``step``'s bits; the block graph drops the per-frame
    bookkeeping."""
    base = load_artifact(path)
    history = np.random.default_rng(1).normal(size=(3, base.order, base.frame_size))
    style = np.linspace(-1, 1, 3)[:, None] if base.style_size else None
    k = base.gibbs_steps
    for block, n in ((4, 4), (4, 9), (4, 10), (16, 23)):
        art = replace(base, block_frames=block)
        noise = np.stack(
            [gibbs_uniforms(sequence_rng(2, i), n, k, art.noise_width) for i in range(3)]
        )
        np.testing.assert_array_equal(
            art.steps(history, noise, style, blocks=True), one_by_one(art, history, noise, style)
        )
        assert art._block() is not None
    frame = onnx.load_from_string(art.step_graph)
    block = block_graph(frame, art.order, art.frame_size, k, 8)
    per_frame = (len(block.graph.node) - 4) / 8  # Split, Reshape ×2, Concat of the frames
    ops = [n.op_type for n in block.graph.node]
    assert per_frame < len(frame.graph.node) - 3
    assert "Shape" not in ops or any(
        n.op_type == "Shape" and n.input[0] != "noise" for n in block.graph.node
    )
    assert not any("noise" == x for n in block.graph.node for x in n.input)


def test_another_k_and_the_loop_graph_have_no_block(crbm_path, one_by_one) -> None:
    """The Gibbs-step ``Loop`` is a subgraph: no block graph (``ValueError``); ``steps`` with
    ``blocks`` at another ``k`` goes through the ``Loop`` over frames, with the same bits; and
    ``steps`` without ``blocks`` (the service's call) builds no block graph at the card's k."""
    _, path = crbm_path
    art = replace(load_artifact(path), block_frames=2)
    assert art.loop_graph is not None
    with pytest.raises(ValueError, match="subgraph"):
        block_graph(onnx.load_from_string(art.loop_graph), ORDER, D, K, 4)
    with pytest.raises(ValueError, match="not a frame graph"):
        proto = onnx.load_from_string(art.step_graph)
        del proto.graph.output[:]
        block_graph(proto, ORDER, D, K, 4)
    history = np.zeros((2, ORDER, D))
    noise = np.random.default_rng(0).random((2, 5, 2, art.noise_width))
    got = art.steps(history, noise, blocks=True)
    np.testing.assert_array_equal(got, one_by_one(art, history, noise))
    assert art._block_sessions == {}
    noise = noise[:, :, :1].repeat(K, axis=2)  # the card's k
    np.testing.assert_array_equal(art.steps(history, noise), one_by_one(art, history, noise))
    assert art._block_sessions == {}


def toy_frame_graph() -> onnx.ModelProto:
    """A frame graph that reads its window whole (a ``ReduceSum`` over it and a ``Slice``)
    and its noise through its shape: ``frame = sum(history[:, :2], 1) / 2 + noise[:, k-1]``."""
    b = "batch"
    nodes = [
        helper.make_node("Slice", ["history", "zero", "two", "one"], ["recent"]),
        helper.make_node("ReduceSum", ["recent", "one"], ["summed"], keepdims=0),
        helper.make_node("Mul", ["summed", "half"], ["mean"]),
        helper.make_node("Shape", ["noise"], ["noise_shape"]),
        helper.make_node("Gather", ["noise_shape", "one_scalar"], ["k"], axis=0),
        helper.make_node("Sub", ["k", "one_scalar"], ["last"]),
        helper.make_node("Gather", ["noise", "last"], ["u"], axis=1),
        helper.make_node("Identity", ["u"], ["u_copy"]),
        helper.make_node("Add", ["mean", "u_copy"], ["frame"]),
    ]
    inits = [
        numpy_helper.from_array(np.array([0], dtype=np.int64), "zero"),
        numpy_helper.from_array(np.array([2], dtype=np.int64), "two"),
        numpy_helper.from_array(np.array([1], dtype=np.int64), "one"),
        numpy_helper.from_array(np.array(1, dtype=np.int64), "one_scalar"),
        numpy_helper.from_array(np.array(0.5), "half"),
    ]
    graph = helper.make_graph(
        nodes,
        "toy",
        [
            helper.make_tensor_value_info("history", TensorProto.DOUBLE, [b, 3, 4]),
            helper.make_tensor_value_info("noise", TensorProto.DOUBLE, [b, "k", 4]),
        ],
        [helper.make_tensor_value_info("frame", TensorProto.DOUBLE, [b, 4])],
        initializer=inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def test_a_graph_that_reads_the_whole_window() -> None:
    """The generic path: the window rebuilt per frame, the noise's ``k`` evaluated: the block
    graph equals the ``Loop`` over frames for 6 frames of a toy frame graph."""
    proto = toy_frame_graph()
    onnx.checker.check_model(proto, full_check=True)
    rng = np.random.default_rng(3)
    history, noise = rng.normal(size=(2, 3, 4)), rng.random((2, 6, 2, 4))

    def run(model: onnx.ModelProto, prefix: str) -> np.ndarray:
        session = ort.InferenceSession(
            model.SerializeToString(), providers=["CPUExecutionProvider"]
        )
        return session.run(["frames"], {prefix + "history": history, prefix + "noise": noise})[0]

    block = block_graph(proto, 3, 4, 2, 6)
    onnx.checker.check_model(block, full_check=True)
    got = run(block, "seqboltz_block/")
    want = run(frames_graph(proto, 3), "seqboltz_frames/")
    np.testing.assert_array_equal(got, want)
    assert not any(n.op_type in ("Shape", "Identity") for n in block.graph.node)


def test_a_large_block_graph_is_not_built(
    crbm_path, one_by_one, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A block graph of more than ``BLOCK_NODES`` nodes a frame is not built: the ``Loop``
    over frames instead, the same bits; within the budget, the block graph."""
    from seqboltz.runtime import _artifact

    _, path = crbm_path
    base = load_artifact(path)
    block = block_graph(onnx.load_from_string(base.step_graph), ORDER, D, K, 4)
    nodes = [n for n in block.graph.node if n.output[0].startswith(BLOCK + "3/")]  # frame 3's
    assert len(nodes) * 4 < len(block.graph.node)
    history = np.random.default_rng(4).normal(size=(2, ORDER, D))
    noise = np.random.default_rng(5).random((2, 11, K, base.noise_width))
    want = one_by_one(base, history, noise)
    for budget, built in ((len(nodes), True), (len(nodes) - 1, False)):
        monkeypatch.setattr(_artifact, "BLOCK_NODES", budget)
        art = replace(base, block_frames=4)
        np.testing.assert_array_equal(art.steps(history, noise, blocks=True), want)
        assert (art._block() is not None) == built
        assert len(art._ladder()) == built


def test_steps_run_the_largest_blocks_first(crbm_path, one_by_one) -> None:
    """Blocks of 16 make the ladder 16, 4: 39 frames are two blocks of 16, one of 4, and 3
    frames through the ``Loop``; 37 frames end with one frame through ``step``; 64 frames on
    an artifact of blocks of 64 are one call. The same bits every way."""
    _, path = crbm_path
    base = load_artifact(path)
    history = np.random.default_rng(6).normal(size=(3, ORDER, D))
    noise = np.random.default_rng(7).random((3, 64, K, base.noise_width))
    for block, n, want_calls in ((16, 39, [16, 16, 4]), (16, 37, [16, 16, 4]), (64, 64, [64])):
        art = replace(base, block_frames=block)
        assert [size for size, _ in art._ladder()] == [s for s in (64, 16, 4) if s <= block]
        calls: list[int] = []
        art._ladders[block] = [(size, Counted(s, size, calls)) for size, s in art._ladder()]
        got = art.steps(history, noise[:, :n], blocks=True)
        np.testing.assert_array_equal(got, one_by_one(base, history, noise[:, :n]))
        assert calls == want_calls


class Counted:
    """A block session that records the frames of each call."""

    def __init__(self, session: ort.InferenceSession, frames: int, calls: list[int]) -> None:
        self.session, self.frames, self.calls = session, frames, calls

    def run(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        self.calls.append(self.frames)
        return self.session.run(*args, **kwargs)


def test_generate_picks_blocks_by_graph_and_size(
    crbm_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``run_stream`` runs blocks where a straight-line block graph exists, through the
    ``Loop`` where rows × k is at most ``LOOP_ROWS``, and frame by frame beyond; the same
    frames every way."""
    from seqboltz.runtime import _artifact

    _, path = crbm_path
    art = replace(load_artifact(path), block_frames=16)
    calls: list[int] = []
    steps = art.steps

    def counted(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(args[1].shape[1])
        return steps(*args, **kwargs)

    art.steps = counted  # type: ignore[method-assign]
    for k, budget, rows, blocks in ((2, 0, 8, True), (2, 0, 7, False), (K, 10**6, 0, True)):
        monkeypatch.setattr(_artifact, "BLOCK_NODES", budget)
        monkeypatch.setattr(_artifact, "LOOP_ROWS", rows)
        want = frame_by_frame(art, 20, seed=1, count=4, gibbs_steps=k)[1].frames
        calls.clear()
        got = art.generate(20, seed=1, count=4, gibbs_steps=k)  # 4 rows × k = 2: 8
        np.testing.assert_array_equal(got, want)
        assert calls == ([16, 4] if blocks else [])
