"""MLPG against the dense normal equations; deltas of a trajectory give it back; shapes."""

from __future__ import annotations

import numpy as np
import pytest

from seqboltz.speech._mlpg import DELTA_WINDOWS, append_deltas, delta_matrix, mlpg


def test_deltas() -> None:
    x = np.arange(12.0).reshape(4, 3) ** 2
    out = append_deltas(x, [0, 2])
    assert out.shape == (4, 3 + 4)
    for k, window in enumerate(DELTA_WINDOWS):
        w = delta_matrix(4, window)
        np.testing.assert_allclose(out[:, 3 + 2 * k : 5 + 2 * k], w @ x[:, [0, 2]])
    # the edges repeat the first and last frame
    assert out[0, 3] == pytest.approx(0.5 * (x[1, 0] - x[0, 0]))


@pytest.mark.parametrize("n", [1, 2, 3, 7, 40])
def test_mlpg_solves_the_normal_equations(n: int) -> None:
    rng = np.random.default_rng(n)
    k = 3
    mu = rng.normal(size=(n, 3, k))
    var = rng.uniform(0.2, 2.0, size=(3, k))
    got = mlpg(mu, var)
    for j in range(k):
        a = np.eye(n) / var[0, j]
        b = mu[:, 0, j] / var[0, j]
        for w, window in enumerate(DELTA_WINDOWS, 1):
            m = delta_matrix(n, window)
            a = a + m.T @ m / var[w, j]
            b = b + m.T @ mu[:, w, j] / var[w, j]
        np.testing.assert_allclose(got[:, j], np.linalg.solve(a, b), rtol=1e-9, atol=1e-9)


def test_consistent_means_give_the_trajectory() -> None:
    c = np.cumsum(np.random.default_rng(0).normal(size=(50, 2)), axis=0)
    full = append_deltas(c, [0, 1])
    means = np.stack([full[:, :2], full[:, 2:4], full[:, 4:6]], axis=1)
    np.testing.assert_allclose(mlpg(means, np.ones((3, 2))), c, atol=1e-9)
    with pytest.raises(ValueError, match="variances"):
        mlpg(means, np.ones((2, 2)))


def test_block_mlpg_streams_the_whole_utterance_solution() -> None:
    """BlockMLPG's statics do not depend on how the frames are pushed, equal block_mlpg's,
    and match the whole-utterance MLPG (here within 1e-9 at 20/30, 1e-3 at 10/10); columns
    without deltas pass through; pushing nothing is an error at finish."""
    from seqboltz.speech._mlpg import BlockMLPG, block_mlpg, mlpg_frames

    rng = np.random.default_rng(0)
    t, d, cols = 157, 6, [0, 1, 3, 5]
    z = np.cumsum(rng.standard_normal((t, d)), axis=0) * 0.2
    frames = append_deltas(z, cols) + 0.3 * rng.standard_normal((t, d + 2 * len(cols)))
    exact = mlpg_frames(frames, cols)
    assert np.array_equal(exact[:, 2], frames[:, 2]) and np.array_equal(exact[:, 4], frames[:, 4])
    assert np.abs(exact - frames[:, :d]).max() > 0.1  # MLPG changes the predicted statics
    for block, overlap, tol in ((20, 30, 1e-9), (10, 10, 1e-3)):
        whole = block_mlpg(frames, cols, None, block, overlap)
        assert np.abs(whole - exact).max() < tol
        solver, parts, i = BlockMLPG(cols, None, block, overlap), [], 0
        while i < t:
            n = int(rng.integers(1, 9))
            parts.append(solver.push(frames[i : i + n]))
            assert solver.done >= i + n - solver.delay  # nothing held back beyond the delay
            i += n
        parts.append(solver.finish())
        assert np.array_equal(np.concatenate(parts), whole)
    with pytest.raises(ValueError, match="no frames pushed"):
        BlockMLPG(cols).finish()
    with pytest.raises(ValueError, match="variances"):
        mlpg_frames(frames, cols, np.ones(3))
