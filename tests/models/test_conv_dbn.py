"""The two-layer convolutional model (Lee et al. 2009) against brute force on a tiny model."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import torch

from seqboltz.functional import _conv as C
from seqboltz.models import ConvolutionalDBN, ConvolutionalRBM, save_model

DTYPE = torch.float64


def tiny(seed: int = 0, scale: float = 1.0) -> ConvolutionalDBN:
    """3×3 binary images; 2 filters of 2×2 (one 2×2 pooling block each: p is (2, 1, 1));
    2 upper filters of 1×1 on p (upper detection (2, 1, 1), pool 1)."""
    torch.manual_seed(seed)
    lower = ConvolutionalRBM((1, 3, 3), n_filters=2, filter_size=2, pool_size=2)
    upper = ConvolutionalRBM((2, 1, 1), n_filters=2, filter_size=1, pool_size=1)
    with torch.no_grad():
        for layer in (lower, upper):
            for p in layer.parameters():
                p.normal_(0, scale)
    return ConvolutionalDBN(lower.double(), upper.double())


def lower_states() -> torch.Tensor:
    """The 25 valid layer-1 states (at most one unit on per block), ``(25, 2, 2, 2)``."""
    block = [np.zeros(4)] + [np.eye(4)[i] for i in range(4)]
    states = [np.concatenate([a, b]) for a, b in itertools.product(block, block)]
    return torch.tensor(np.stack(states), dtype=DTYPE).reshape(25, 2, 2, 2)


def upper_states() -> torch.Tensor:
    """The 4 layer-2 states ``(4, 2, 1, 1)`` (1×1 blocks: every state is valid)."""
    return torch.tensor(list(itertools.product([0.0, 1.0], repeat=2)), dtype=DTYPE).reshape(
        4, 2, 1, 1
    )


def explicit_energy(model: ConvolutionalDBN, v: torch.Tensor, h: torch.Tensor, h2: torch.Tensor):
    """DESIGN.md's two-layer energy written as explicit sums (no conv2d)."""
    img = v.reshape(3, 3)
    w = model.lower.filters.detach()[:, 0]
    interaction = sum(
        h[k, i, j] * sum(w[k, a, b] * img[i + a, j + b] for a in range(2) for b in range(2))
        for k in range(2)
        for i in range(2)
        for j in range(2)
    )
    e1 = -interaction - sum(model.lower.hidden_bias[k] * h[k].sum() for k in range(2))
    e1 = e1 - model.lower.visible_bias[0] * img.sum()
    p = h.reshape(2, 4).amax(1)  # pooling unit on iff one unit of its block is
    gamma = model.upper.filters.detach()[:, :, 0, 0]  # (L, K)
    e2 = -sum(p[k] * gamma[l_, k] * h2[l_, 0, 0] for k in range(2) for l_ in range(2))
    e2 = e2 - sum(model.upper.hidden_bias[l_] * h2[l_, 0, 0] for l_ in range(2))
    return float(e1 + e2)


def joint_energies(model: ConvolutionalDBN, v: torch.Tensor) -> torch.Tensor:
    """``E(v_b, h_s, h′_t)`` for every valid state: ``(B, 25, 4)``."""
    hs, h2s = lower_states(), upper_states()
    b = v.shape[0]
    out = torch.empty(b, 25, 4, dtype=DTYPE)
    with torch.no_grad():
        for s, t in itertools.product(range(25), range(4)):
            out[:, s, t] = model.energy(
                v, hs[s].expand(b, -1, -1, -1), h2s[t].expand(b, -1, -1, -1)
            )
    return out


def test_energy_equals_the_explicit_sum() -> None:
    model = tiny(seed=1)
    v = torch.rand(3, 9, dtype=DTYPE)
    hs, h2s = lower_states(), upper_states()
    for b, s, t in [(0, 0, 0), (1, 7, 3), (2, 24, 1), (0, 13, 2)]:
        got = model.energy(v[b : b + 1], hs[s : s + 1], h2s[t : t + 1])
        assert float(got) == pytest.approx(explicit_energy(model, v[b], hs[s], h2s[t]), abs=1e-10)


def test_top_down_input_enters_the_pooling_softmax_as_the_formula_says() -> None:
    model = tiny(seed=2)
    v = torch.rand(4, 9, dtype=DTYPE)
    energies = joint_energies(model, v)
    hs = lower_states()
    gamma = model.upper.filters.detach()[:, :, 0, 0]
    for t, h2 in enumerate(upper_states()):
        with torch.no_grad():
            q_h, q_p = model.lower_probs(v, h2.expand(4, -1, -1, -1))
        # enumeration: p(h | v, h′) ∝ exp(-E(v, h, h′)) at fixed v, h′
        post = torch.softmax(-energies[:, :, t], dim=1)
        torch.testing.assert_close(q_h.reshape(4, 8), post @ hs.reshape(25, 8), atol=1e-10, rtol=0)
        pooled = post @ hs.reshape(25, 2, 4).amax(-1)
        torch.testing.assert_close(q_p.reshape(4, 2), pooled, atol=1e-10, rtol=0)
        # the formula: T_k = Σ_l Γ[l, k] h′_l added to every unit of block k
        top = h2[:, 0, 0] @ gamma  # (K,)
        inputs = C.conv_hidden_input(
            v.reshape(4, 1, 3, 3), model.lower.filters, model.lower.hidden_bias
        )
        with torch.no_grad():
            blocks = inputs.detach().reshape(4, 2, 4) + top[None, :, None]
            off = 1.0 / (1.0 + blocks.exp().sum(-1))
        torch.testing.assert_close(q_p.reshape(4, 2), 1.0 - off, atol=1e-12, rtol=0)
    # and top-down input does change the posterior (a non-zero Γ makes this test meaningful)
    with torch.no_grad():
        _, p_off = model.lower_probs(v, upper_states()[0].expand(4, -1, -1, -1))
        _, p_on = model.lower_probs(v, upper_states()[3].expand(4, -1, -1, -1))
    assert float((p_on - p_off).abs().max()) > 0.05


def test_upper_conditional_matches_enumeration() -> None:
    model = tiny(seed=3)
    v = torch.rand(2, 9, dtype=DTYPE)
    energies = joint_energies(model, v)
    hs, h2s = lower_states(), upper_states()
    for s in [0, 5, 12, 24]:
        post = torch.softmax(-energies[:, s, :], dim=1)  # p(h′ | h_s) (v drops out)
        p = C.max_pool_states(hs[s : s + 1], 2)
        with torch.no_grad():
            q_h2, q_p2 = model.upper_probs(p)
        expected = post @ h2s.reshape(4, 2)
        torch.testing.assert_close(q_h2.reshape(1, 2).expand(2, -1), expected, atol=1e-10, rtol=0)
        torch.testing.assert_close(q_p2, q_h2)  # 1×1 pooling blocks


def test_joint_gibbs_sampler_reaches_the_exact_marginals() -> None:
    """Joint block Gibbs (with top-down input) against exact marginals over all 2⁹·25·4 states."""
    model = tiny(seed=4, scale=0.7)
    v_all = torch.tensor(list(itertools.product([0.0, 1.0], repeat=9)), dtype=DTYPE)
    log_p = -joint_energies(model, v_all)  # (512, 25, 4)
    prob = torch.softmax(log_p.flatten(), 0).reshape(log_p.shape)
    hs, h2s = lower_states(), upper_states()
    exact_p = torch.einsum("vst,sk->k", prob, hs.reshape(25, 2, 4).amax(-1))
    exact_h2 = torch.einsum("vst,tl->l", prob, h2s.reshape(4, 2))
    exact_v = torch.einsum("vst,vd->d", prob, v_all)
    gen = torch.Generator().manual_seed(0)
    n = 4000
    with torch.no_grad():
        v = model.lower.init_chains(n, gen)
        h2 = torch.zeros(n, 2, 1, 1, dtype=DTYPE)
        for _ in range(60):
            noise = {
                name: torch.rand(n, *spec.shape, generator=gen, dtype=DTYPE)
                for name, spec in model.noise_spec().items()
            }
            step = model.gibbs_step(v, h2, noise)
            v, h2 = step.v, step.h2
    got_p = C.max_pool_states(step.h, 2).reshape(n, 2).mean(0)
    for got, exact in (
        (got_p, exact_p),
        (h2.reshape(n, 2).mean(0), exact_h2),
        (v.mean(0), exact_v),
    ):
        se = (exact * (1 - exact) / n).sqrt()
        assert bool(((got - exact).abs() < 5 * se + 1e-3).all()), (got, exact)


def test_mean_field_inference() -> None:
    model = tiny(seed=5)
    v = torch.rand(3, 9, dtype=DTYPE)
    with torch.no_grad():
        greedy = model.infer(v, n_steps=0)
        torch.testing.assert_close(greedy.p, model.lower.pooling_probs(v))
        post = model.infer(v, n_steps=50)
        # a fixed point of the mean-field equations, top-down input included
        h, p = model.lower_probs(v, post.h2)
        h2, _ = model.upper_probs(post.p)
    torch.testing.assert_close(post.h, h, atol=1e-8, rtol=0)
    torch.testing.assert_close(post.p, p, atol=1e-8, rtol=0)
    torch.testing.assert_close(post.h2, h2, atol=1e-8, rtol=0)
    assert model.features(v, 5).shape == (3, 2 + 2)
    assert float((post.p - greedy.p).abs().max()) > 1e-4  # the top-down pass did something


def test_second_layer_filters_in_input_space() -> None:
    """A one-hot Γ (filter l, channel k, offset (a, b)) draws lower filter k over pooling
    block (a, b), i.e. summed over the C×C detection positions of that block."""
    torch.manual_seed(0)
    lower = ConvolutionalRBM((1, 12, 12), n_filters=3, filter_size=3, pool_size=2, init_std=1.0)
    upper = ConvolutionalRBM((3, 5, 5), n_filters=1, filter_size=2, pool_size=2)
    with torch.no_grad():
        upper.filters.zero_()
        upper.filters[0, 1, 1, 0] = 1.0
    model = ConvolutionalDBN(lower, upper)
    got = model.upper_filters_in_input_space().detach()[0, 0]  # (2·2 + 3 - 1) = 6 square
    expected = torch.zeros(6, 6)
    w = lower.filters.detach()[1, 0]
    for di, dj in itertools.product(range(2), range(2)):
        expected[2 + di : 5 + di, 0 + dj : 3 + dj] += w
    torch.testing.assert_close(got, expected)
    assert set(model.pictures()) == {"filters_layer1", "filters_layer2"}
    pictures = model.pictures(torch.Generator().manual_seed(0), torch.rand(3, 144))
    assert set(pictures) == {"filters_layer1", "filters_layer2", "samples"}
    assert pictures["samples"].shape == ((3 * 13 + 1) * 3, (3 * 13 + 1) * 3)  # 3 rows of 3
    assert all(p.dtype == np.uint8 for p in pictures.values())


def test_bad_input(tmp_path: Path) -> None:
    lower = ConvolutionalRBM((1, 12, 12), n_filters=3, filter_size=3, pool_size=2)
    with pytest.raises(ValueError, match=r"must be the lower layer's pooling layer \(3, 5, 5\)"):
        ConvolutionalDBN(
            lower, ConvolutionalRBM((3, 6, 6), n_filters=2, filter_size=3, pool_size=2)
        )
    with pytest.raises(ValueError, match="binary visibles"):
        ConvolutionalDBN(
            lower,
            ConvolutionalRBM((3, 5, 5), 2, filter_size=2, pool_size=2, visible="gaussian"),
        )
    model = ConvolutionalDBN(lower, ConvolutionalRBM((3, 5, 5), 2, filter_size=2, pool_size=2))
    with pytest.raises(ValueError, match=r"expects v of shape \(batch, 144\)"):
        model.infer(torch.rand(2, 100))
    with pytest.raises(ValueError, match="NaN"):
        model.infer(torch.full((2, 144), float("nan")))
    with pytest.raises(ValueError, match="top-down input must have the pooling layer's shape"):
        model.lower_probs(torch.rand(2, 144), torch.zeros(2, 2, 3, 3))
    with pytest.raises(ValueError, match="n_steps"):
        model.infer(torch.rand(2, 144), n_steps=-1)
    # a checkpoint of another kind of model is refused by name
    from seqboltz.models import BernoulliRBM

    other = BernoulliRBM(4, 3)
    path = tmp_path / "rbm.ckpt"
    save_model(other, path)
    with pytest.raises(ValueError, match="holds a BernoulliRBM, not a ConvolutionalRBM"):
        ConvolutionalDBN.from_checkpoints(path, path)
