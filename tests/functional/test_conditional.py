"""Tests of :mod:`seqboltz.functional._conditional` against explicit constructions, in float64.

The library never forms a per-example weight matrix; the references here do: every factored
product is checked against ``Ŵ(z) = Wᶠ diag(z Wᶻ) Oᶠᵀ`` built with ``einsum`` per example,
and the dynamic biases against the formulas of Taylor et al. (2007) and Taylor & Hinton
(2009) written out term by term.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import Tensor

from seqboltz import functional as Fn

DTYPE = torch.float64


def randn(*shape: int, g: torch.Generator, std: float = 1.0) -> Tensor:
    return torch.randn(*shape, generator=g, dtype=DTYPE) * std


def np_(x: Tensor) -> np.ndarray:
    return x.detach().numpy()


# -- linear (Taylor 2007) dynamic biases -----------------------------------------------------
@pytest.mark.parametrize("with_controls", [False, True], ids=["no-controls", "controls"])
def test_linear_dynamic_biases(with_controls: bool) -> None:
    g = torch.Generator().manual_seed(0)
    batch, order, d, h, c = 5, 3, 2, 4, 2
    frames = randn(batch, order, d, g=g)  # index 0 = t-1
    x = frames.reshape(batch, order * d)
    a, b = randn(d, g=g), randn(h, g=g)
    big_a, big_b = randn(order * d, d, g=g), randn(order * d, h, g=g)
    ctrl, p, q = randn(batch, c, g=g), randn(c, d, g=g), randn(c, h, g=g)
    extra = (ctrl, p, q) if with_controls else ()
    a_hat, b_hat = Fn.linear_dynamic_biases(x, a, b, big_a, big_b, *extra)

    # Reference: â_i = a_i + Σ_k Σ_l v_{t-k, l} A[(k-1)·D + l, i] (+ Σ_m c_m P[m, i]).
    fr, a_, b_, aa, bb = map(np_, (frames, a, b, big_a, big_b))
    ref_a = np.tile(a_, (batch, 1))
    ref_b = np.tile(b_, (batch, 1))
    for n in range(batch):
        for k in range(order):
            for lag_unit in range(d):
                ref_a[n] += fr[n, k, lag_unit] * aa[k * d + lag_unit]
                ref_b[n] += fr[n, k, lag_unit] * bb[k * d + lag_unit]
    if with_controls:
        ref_a += np_(ctrl) @ np_(p)
        ref_b += np_(ctrl) @ np_(q)
    np.testing.assert_allclose(np_(a_hat), ref_a, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(np_(b_hat), ref_b, rtol=1e-13, atol=1e-13)
    assert a_hat.shape == (batch, d)
    assert b_hat.shape == (batch, h)


def test_linear_dynamic_biases_controls_matter() -> None:
    """Passing controls changes the biases by exactly ``c P`` / ``c Q``."""
    g = torch.Generator().manual_seed(1)
    x, a, b = randn(3, 4, g=g), randn(2, g=g), randn(3, g=g)
    big_a, big_b = randn(4, 2, g=g), randn(4, 3, g=g)
    ctrl, p, q = randn(3, 2, g=g), randn(2, 2, g=g), randn(2, 3, g=g)
    a0, b0 = Fn.linear_dynamic_biases(x, a, b, big_a, big_b)
    a1, b1 = Fn.linear_dynamic_biases(x, a, b, big_a, big_b, ctrl, p, q)
    np.testing.assert_allclose(np_(a1 - a0), np_(ctrl) @ np_(p), rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(np_(b1 - b0), np_(ctrl) @ np_(q), rtol=1e-12, atol=1e-13)


# -- factored (gated) products ---------------------------------------------------------------
def effective_matrix(x_factor: Tensor, gate: Tensor, out_factor: Tensor) -> np.ndarray:
    """``Xᶠ diag(g_n) Oᶠᵀ`` for each example ``n``: ``(B, I, O)``."""
    return np.einsum("if,nf,of->nio", np_(x_factor), np_(gate), np_(out_factor))


def test_gated_product_equals_effective_matrix() -> None:
    g = torch.Generator().manual_seed(2)
    batch, i, o, f = 6, 3, 4, 5
    x, xf, gate, of = randn(batch, i, g=g), randn(i, f, g=g), randn(batch, f, g=g), randn(o, f, g=g)
    got = Fn.gated_product(x, xf, gate, of)
    w = effective_matrix(xf, gate, of)
    expected = np.stack([np_(x)[n] @ w[n] for n in range(batch)])
    np.testing.assert_allclose(np_(got), expected, rtol=1e-12, atol=1e-13)
    # A constant gate is an ordinary matrix product.
    one_gate = gate[:1].expand(batch, f)
    np.testing.assert_allclose(
        np_(Fn.gated_product(x, xf, one_gate, of)), np_(x) @ w[0], rtol=1e-12, atol=1e-13
    )


def test_factored_hidden_input_and_visible_mean() -> None:
    """``b̂ + v Ŵ(z)`` and ``â + Ŵ(z) h`` with ``Ŵ(z) = Wᵛ diag(z Wᶻ) Wʰᵀ`` built per example."""
    g = torch.Generator().manual_seed(3)
    batch, d, h, f, s = 5, 3, 4, 6, 2
    wv, wh, wz = randn(d, f, g=g), randn(h, f, g=g), randn(s, f, g=g)
    z = randn(batch, s, g=g)
    gate = z @ wz
    v = randn(batch, d, g=g)
    hid = (torch.rand(batch, h, generator=g, dtype=DTYPE) < 0.5).to(DTYPE)
    a_hat, b_hat = randn(batch, d, g=g), randn(batch, h, g=g)
    w = np.einsum("if,sf,ns,jf->nij", np_(wv), np_(wz), np_(z), np_(wh))  # (B, D, H)

    got_in = Fn.factored_hidden_input(v, b_hat, wv, gate, wh)
    ref_in = np_(b_hat) + np.einsum("ni,nij->nj", np_(v), w)
    np.testing.assert_allclose(np_(got_in), ref_in, rtol=1e-12, atol=1e-12)

    got_mean = Fn.factored_visible_mean(hid, a_hat, wv, gate, wh)
    ref_mean = np_(a_hat) + np.einsum("nij,nj->ni", w, np_(hid))
    np.testing.assert_allclose(np_(got_mean), ref_mean, rtol=1e-12, atol=1e-12)

    # A shared (H,) bias broadcasts like a per-example one.
    np.testing.assert_allclose(
        np_(Fn.factored_hidden_input(v, b_hat[0], wv, gate, wh)),
        np_(b_hat[0]) + np.einsum("ni,nij->nj", np_(v), w),
        rtol=1e-12,
        atol=1e-12,
    )


def test_factored_dynamic_biases() -> None:
    """Taylor & Hinton (2009): ``â = a + x Â(z) + z P``, ``b̂ = b + x B̂(z) + z Q``."""
    g = torch.Generator().manual_seed(4)
    batch, order, d, h, f, s = 4, 2, 3, 5, 4, 2
    n_past = order * d
    x, z = randn(batch, n_past, g=g), randn(batch, s, g=g)
    a, b = randn(d, g=g), randn(h, g=g)
    ax, az, av = randn(n_past, f, g=g), randn(s, f, g=g), randn(d, f, g=g)
    bx, bz, bh = randn(n_past, f, g=g), randn(s, f, g=g), randn(h, f, g=g)
    p, q = randn(s, d, g=g), randn(s, h, g=g)
    a_hat, b_hat = Fn.factored_dynamic_biases(x, z, a, b, ax, az, av, bx, bz, bh, p, q)

    big_a = np.einsum("kf,sf,ns,if->nki", np_(ax), np_(az), np_(z), np_(av))  # (B, nD, D)
    big_b = np.einsum("kf,sf,ns,jf->nkj", np_(bx), np_(bz), np_(z), np_(bh))  # (B, nD, H)
    ref_a = np_(a) + np.einsum("nk,nki->ni", np_(x), big_a) + np_(z) @ np_(p)
    ref_b = np_(b) + np.einsum("nk,nkj->nj", np_(x), big_b) + np_(z) @ np_(q)
    np.testing.assert_allclose(np_(a_hat), ref_a, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(np_(b_hat), ref_b, rtol=1e-12, atol=1e-12)


def test_factored_dynamic_biases_gradcheck() -> None:
    g = torch.Generator().manual_seed(5)
    batch, n_past, d, h, f, s = 3, 4, 2, 3, 2, 2
    shapes = [
        (batch, n_past),
        (batch, s),
        (d,),
        (h,),
        (n_past, f),
        (s, f),
        (d, f),
        (n_past, f),
        (s, f),
        (h, f),
        (s, d),
        (s, h),
    ]
    inputs = tuple(randn(*shape, g=g).requires_grad_() for shape in shapes)
    assert torch.autograd.gradcheck(Fn.factored_dynamic_biases, inputs)


def test_gated_product_gradcheck() -> None:
    g = torch.Generator().manual_seed(6)
    inputs = tuple(randn(*s, g=g).requires_grad_() for s in [(3, 2), (2, 4), (3, 4), (5, 4)])
    assert torch.autograd.gradcheck(Fn.gated_product, inputs)


def test_piecewise_linear_interpolates_and_extends_the_end_segments() -> None:
    from seqboltz.functional import piecewise_linear

    kx = torch.tensor([-1.0, 0.0, 0.5, 2.0], dtype=torch.float64)
    ky = torch.tensor([-2.0, 0.0, 1.5, 2.0], dtype=torch.float64)
    x = torch.linspace(-1.0, 2.0, 31, dtype=torch.float64)
    want = np.interp(x.numpy(), kx.numpy(), ky.numpy())
    np.testing.assert_allclose(piecewise_linear(x, kx, ky).numpy(), want, atol=1e-12)
    outside = piecewise_linear(torch.tensor([-3.0, 4.0], dtype=torch.float64), kx, ky)
    np.testing.assert_allclose(outside.numpy(), [-2.0 + 2.0 * -2.0, 2.0 + 2.0 / 3.0])
    two = piecewise_linear(x, kx[:2], ky[:2])  # one segment: a line
    np.testing.assert_allclose(two.numpy(), 2.0 * x.numpy(), atol=1e-12)
