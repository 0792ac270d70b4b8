"""Several frames in one onnxruntime call (``Artifact.steps``, the frame graph in a ``Loop``
over frames): bit for bit the frames of ``step`` called frame by frame, at the card's ``k``
and at another, with conditioning; ``step_frames`` gives the same frames with it."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import onnx
import pytest

from seqboltz.noise import gibbs_uniforms, sequence_rng
from seqboltz.runtime import ArtifactError, load_artifact, step_frames
from seqboltz.runtime._frames import frames_graph

D, ORDER, K = 8, 3, 5


@pytest.mark.parametrize("k", [K, 2])
@pytest.mark.parametrize("name", ["crbm", "fcrbm"])
def test_steps_equal_step_frame_by_frame(
    crbm_path, fcrbm_path, one_by_one, name: str, k: int
) -> None:
    """Five sequences, 1 and 9 frames, at the card's ``k`` (the unrolled graph) and another
    (the Gibbs-step loop inside the loop over frames): the same bits as ``step``."""
    _, path = crbm_path if name == "crbm" else fcrbm_path
    art = load_artifact(path)
    style = np.linspace(-1, 1, 5)[:, None] if name == "fcrbm" else None
    history = np.random.default_rng(0).normal(size=(5, ORDER, D))
    for n in (1, 9):
        noise = np.stack(
            [gibbs_uniforms(sequence_rng(4, i), n, k, art.noise_width) for i in range(5)]
        )
        got = art.steps(history, noise, style)
        assert got.shape == (5, n, D)
        np.testing.assert_array_equal(got, one_by_one(art, history, noise, style))
    with pytest.raises(ArtifactError, match="noise must have shape"):
        art.steps(history, noise[:, 0], style)
    bare = replace(art, step_graph=None)  # no graph to wrap at the card's k: frame by frame
    np.testing.assert_array_equal(bare.steps(history, noise, style), got)


def test_step_frames_with_steps_equals_frame_by_frame(fcrbm_path) -> None:
    """``step_frames`` with ``steps`` (one call per distinct row length) returns the same bits
    as with ``step`` alone, and leaves each generator at the same draw."""
    _, path = fcrbm_path
    art = load_artifact(path)
    lengths = [7, 2, 7, 1, 4]
    history = np.random.default_rng(1).normal(size=(5, ORDER, D))
    style = np.linspace(-1, 1, 5)[:, None]
    results = []
    for steps in (None, art.steps):
        rngs = [sequence_rng(8, i, 3, K, art.noise_width) for i in range(5)]
        frames = step_frames(
            art.step, history, rngs, lengths, K, art.noise_width, style, steps=steps
        )
        results.append((frames, [r.random() for r in rngs]))
    for a, b in zip(results[0][0], results[1][0], strict=True):
        np.testing.assert_array_equal(a, b)
    assert results[0][1] == results[1][1]


def test_frames_graph_refuses_what_is_not_a_frame_graph(crbm_path) -> None:
    proto = onnx.load(str(crbm_path[1]))
    with pytest.raises(ValueError, match="order"):
        frames_graph(proto, 0)
    del proto.graph.output[:]
    with pytest.raises(ValueError, match="not a frame graph"):
        frames_graph(proto, ORDER)
