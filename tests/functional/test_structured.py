"""Tests of :mod:`seqboltz.functional._structured` against brute-force enumeration (float64).

References are independent numpy: ``E(y, h) = -yᵀWh - âᵀy - b̂ᵀh`` summed over every ``y`` and
``h`` (Mnih, Larochelle & Hinton 2011); the Hamming-loss-augmented objective written out.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from scipy.special import logsumexp

from seqboltz import functional as Fn

DTYPE = torch.float64
B, D, H = 3, 4, 3


def _model(seed: int = 0, scale: float = 1.5) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(D, H, generator=g, dtype=DTYPE) * scale
    a = torch.randn(B, D, generator=g, dtype=DTYPE)
    b = torch.randn(B, H, generator=g, dtype=DTYPE)
    return w, a, b


def _states(n: int) -> np.ndarray:
    return np.array(list(itertools.product([0.0, 1.0], repeat=n)))


def _ref_log_p(w: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """log p(y | x) by summing exp(-E(y, h)) over every h, one row per example: (B, 2^D)."""
    ys, hs = _states(w.shape[0]), _states(w.shape[1])
    out = []
    for ai, bi in zip(a, b, strict=True):
        e = -(ys @ w @ hs.T) - (ys @ ai)[:, None] - (hs @ bi)[None, :]  # (2^D, 2^H)
        log_unnorm = logsumexp(-e, axis=1)
        out.append(log_unnorm - logsumexp(log_unnorm))
    return np.array(out)


def test_all_binary_states_in_product_order() -> None:
    assert torch.equal(Fn.all_binary_states(3, DTYPE), torch.from_numpy(_states(3)))
    assert Fn.all_binary_states(0).shape == (1, 0)
    with pytest.raises(ValueError, match=r"in \[0, 20\]"):
        Fn.all_binary_states(21)


def test_exact_output_log_probs_match_enumeration_over_h() -> None:
    w, a, b = _model()
    ref = _ref_log_p(w.numpy(), a.numpy(), b.numpy())
    for chunk in (1 << 24, 1):  # one block, and one example at a time
        got = Fn.exact_output_log_probs(w, a, b, chunk_elements=chunk)
        np.testing.assert_allclose(got.numpy(), ref, rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="per-example"):
        Fn.exact_output_log_probs(w, a[0], b)


def test_cost_augmented_bias_is_loss_augmented_inference() -> None:
    """argmax_y p̃(y) with the shifted biases = argmax_y [log p(y | x) + m·Hamming(y, t)]."""
    w, a, b = _model(1)
    ys = _states(D)
    t = torch.tensor([[1.0, 0, 1, 0], [0, 0, 0, 0], [1, 1, 1, 1]], dtype=DTYPE)
    for m in (0.0, 0.7, 3.0):
        shifted = Fn.cost_augmented_bias(a, t, m)
        got = Fn.exact_output_log_probs(w, shifted, b).argmax(1).numpy()
        hamming = np.abs(ys[None, :, :] - t.numpy()[:, None, :]).sum(-1)  # (B, 2^D)
        ref = (_ref_log_p(w.numpy(), a.numpy(), b.numpy()) + m * hamming).argmax(1)
        np.testing.assert_array_equal(got, ref)
    with pytest.raises(ValueError, match="margin must be >= 0"):
        Fn.cost_augmented_bias(a, t, -1.0)


def test_damped_mean_field_reaches_the_undamped_fixed_point() -> None:
    """Damping changes the path, not the fixed point: both satisfy the mean-field equations;
    the undamped block update cannot cycle (it descends the variational free energy; see
    tests/models/test_structured.py), so damping is never needed for convergence here."""
    w, a, b = _model(2, scale=3.0)
    q0 = torch.full((B, D), 0.5, dtype=DTYPE)
    plain, _ = Fn.bernoulli_mean_field(q0, w, a, b, n_steps=500, tol=1e-13)
    damped, q_h = Fn.bernoulli_mean_field(q0, w, a, b, n_steps=2000, tol=1e-13, damping=0.6)
    torch.testing.assert_close(damped, torch.sigmoid(a + q_h @ w.T), rtol=0, atol=1e-10)
    torch.testing.assert_close(damped, plain, rtol=0, atol=1e-8)
    one_plain, _ = Fn.bernoulli_mean_field(q0, w, a, b, n_steps=1)
    one_damped, _ = Fn.bernoulli_mean_field(q0, w, a, b, n_steps=1, damping=0.6)
    torch.testing.assert_close(one_damped, 0.6 * q0 + 0.4 * one_plain, rtol=0, atol=1e-15)
    with pytest.raises(ValueError, match="damping"):
        Fn.bernoulli_mean_field(q0, w, a, b, n_steps=1, damping=1.0)


def test_exact_log_partition_matches_enumeration_and_normalises() -> None:
    w, a, b = _model(3)
    ys, hs = _states(D), _states(H)
    for i in range(B):
        e = -(ys @ w.numpy() @ hs.T) - (ys @ a[i].numpy())[:, None] - (hs @ b[i].numpy())[None]
        got = float(Fn.exact_output_log_partition(w, a[i : i + 1], b[i : i + 1])[0])
        assert got == pytest.approx(float(logsumexp(-e)), abs=1e-12)
    log_p = Fn.exact_output_log_probs(w, a, b)
    torch.testing.assert_close(log_p.exp().sum(1), torch.ones(B, dtype=DTYPE))
