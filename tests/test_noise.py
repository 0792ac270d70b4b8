"""Tests of :mod:`seqboltz.noise`, the one seed → noise rule (DESIGN.md)."""

from __future__ import annotations

import numpy as np
import pytest

from seqboltz.noise import gibbs_uniforms, sequence_rng


def test_stream_is_the_documented_seed_sequence() -> None:
    """Sequence ``i`` of seed ``S`` is ``Generator(PCG64(SeedSequence([S, i])))``."""
    for seed, index in [(0, 0), (7, 3), (2**40 + 1, 12345)]:
        ref = np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, index])))
        np.testing.assert_array_equal(sequence_rng(seed, index).random(50), ref.random(50))


def test_same_seed_and_index_give_same_numbers() -> None:
    a = gibbs_uniforms(sequence_rng(11, 4), 5, 3, 7)
    b = gibbs_uniforms(sequence_rng(11, 4), 5, 3, 7)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (5, 3, 7)
    assert a.dtype == np.float64
    assert float(a.min()) >= 0.0
    assert float(a.max()) < 1.0


@pytest.mark.parametrize(("seed", "index"), [(11, 5), (12, 4), (4, 11), (0, 0)])
def test_different_seed_or_index_give_different_streams(seed: int, index: int) -> None:
    base = gibbs_uniforms(sequence_rng(11, 4), 4, 2, 3)
    other = gibbs_uniforms(sequence_rng(seed, index), 4, 2, 3)
    assert not np.any(base == other)


def test_frames_one_at_a_time_equal_all_at_once() -> None:
    n_frames, steps, hidden = 6, 4, 5
    whole = gibbs_uniforms(sequence_rng(3, 2), n_frames, steps, hidden)
    rng = sequence_rng(3, 2)
    one_by_one = np.concatenate([gibbs_uniforms(rng, 1, steps, hidden) for _ in range(n_frames)])
    np.testing.assert_array_equal(one_by_one, whole)
    rng = sequence_rng(3, 2)
    chunks = np.concatenate([gibbs_uniforms(rng, n, steps, hidden) for n in (2, 1, 3)])
    np.testing.assert_array_equal(chunks, whole)


def test_order_is_frame_then_step_then_unit() -> None:
    """The stream is consumed frame-major, then Gibbs step, then hidden unit."""
    flat = sequence_rng(9, 1).random(3 * 2 * 4)
    u = gibbs_uniforms(sequence_rng(9, 1), 3, 2, 4)
    for t in range(3):
        for s in range(2):
            for j in range(4):
                assert u[t, s, j] == flat[(t * 2 + s) * 4 + j]


def test_uniforms_look_uniform() -> None:
    u = gibbs_uniforms(sequence_rng(1, 0), 100, 10, 50).ravel()
    counts = np.histogram(u, bins=10, range=(0.0, 1.0))[0]
    expected = len(u) / 10
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < 40.0  # 9 degrees of freedom: p ≈ 5e-6


@pytest.mark.parametrize(("seed", "index"), [(-1, 0), (0, -1), (-5, -5)])
def test_negative_seed_or_index_rejected(seed: int, index: int) -> None:
    with pytest.raises(ValueError, match=r">= 0"):
        sequence_rng(seed, index)
