"""Property tests of :mod:`seqboltz.functional` against brute force, in float64.

Every check compares the library's closed forms with an independent computation written
here: sums over all binary states, numerical integration over Gaussian visibles, hand-derived
gradients, or Monte Carlo with explicit noise. One family of tests runs on both the binary
and the Gaussian-Bernoulli RBM.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pytest
import torch
from scipy import integrate
from scipy.special import expit, logsumexp

from seqboltz import functional as Fn

DTYPE = torch.float64
Tensor = torch.Tensor


# -- independent references (numpy) --------------------------------------------------------
def binary_states(n_units: int) -> np.ndarray:
    """All ``2**n_units`` binary vectors, ``(2**n, n)``."""
    return np.array(list(itertools.product([0.0, 1.0], repeat=n_units)))


def ref_energy(kind: str, v: np.ndarray, h: np.ndarray, params: tuple[Tensor, ...]) -> np.ndarray:
    """``E(v, h)`` for every pair of rows: ``v (N, D)``, ``h (M, H)`` → ``(N, M)``."""
    p = [x.detach().numpy() for x in params]
    if kind == "bernoulli":
        w, a, b = p
        return -(v @ a)[:, None] - (h @ b)[None, :] - v @ w @ h.T
    w, a, b, log_sigma = p
    sigma = np.exp(log_sigma)
    quad = 0.5 * (((v - a) / sigma) ** 2).sum(1)
    return quad[:, None] - (h @ b)[None, :] - (v / sigma) @ w @ h.T


def random_params(
    n_visible: int, n_hidden: int, kind: str, seed: int, weight_std: float = 1.0
) -> tuple[Tensor, ...]:
    """Random ``(W, a, b)`` or ``(W, a, b, log σ)`` with σ in [0.5, 2]."""
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(n_visible, n_hidden, generator=g, dtype=DTYPE) * weight_std
    a = torch.randn(n_visible, generator=g, dtype=DTYPE) * 0.5
    b = torch.randn(n_hidden, generator=g, dtype=DTYPE) * 0.5
    if kind == "bernoulli":
        return w, a, b
    log_sigma = torch.empty(n_visible, dtype=DTYPE).uniform_(
        math.log(0.5), math.log(2.0), generator=g
    )
    return w, a, b, log_sigma


def random_visible(n: int, n_visible: int, kind: str, seed: int) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    if kind == "bernoulli":
        # Half binary rows, half grey levels in [0, 1] (both are valid inputs).
        grey = torch.rand(n - n // 2, n_visible, generator=g, dtype=DTYPE)
        binary = (torch.rand(n // 2, n_visible, generator=g, dtype=DTYPE) < 0.5).to(DTYPE)
        return torch.cat([binary, grey])
    return 2.0 * torch.randn(n, n_visible, generator=g, dtype=DTYPE)


@dataclass(frozen=True)
class Family:
    """The functional API of one RBM family, with the conventions a model applies."""

    kind: str
    energy: Callable[..., Tensor]
    free_energy: Callable[..., Tensor]
    hidden_free_energy: Callable[..., Tensor]
    gibbs_step: Callable[..., tuple[Tensor, Tensor, Tensor]]
    hidden_probs: Callable[..., Tensor]
    visible_params: Callable[..., Tensor]


def _gauss_hidden_probs(v, w, a, b, log_sigma):
    return Fn.hidden_probs(v * torch.exp(-log_sigma), w, b)


FAMILIES = {
    "bernoulli": Family(
        "bernoulli",
        Fn.bernoulli_rbm_energy,
        Fn.bernoulli_rbm_free_energy,
        Fn.bernoulli_rbm_hidden_free_energy,
        Fn.bernoulli_rbm_gibbs_step,
        lambda v, w, a, b: Fn.hidden_probs(v, w, b),
        lambda h, w, a, b: Fn.bernoulli_visible_probs(h, w, a),
    ),
    "gaussian": Family(
        "gaussian",
        Fn.gaussian_rbm_energy,
        Fn.gaussian_rbm_free_energy,
        Fn.gaussian_rbm_hidden_free_energy,
        Fn.gaussian_rbm_gibbs_step,
        _gauss_hidden_probs,
        lambda h, w, a, b, log_sigma: Fn.gaussian_visible_mean(h, w, a, log_sigma),
    ),
}


@pytest.fixture
def one_thread():
    """Many tiny matmuls: on a busy 2-core machine intra-op threads only spin. Restored after."""
    n_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n_threads)


@pytest.fixture(params=sorted(FAMILIES))
def family(request) -> Family:
    return FAMILIES[request.param]


# -- energies and free energies ---------------------------------------------------------------
def test_energy_matches_reference(family: Family) -> None:
    params = random_params(4, 3, family.kind, seed=1)
    v = random_visible(6, 4, family.kind, seed=2)
    h = torch.as_tensor(binary_states(3))
    got = family.energy(v[:, None, :], h[None, :, :], *params)  # broadcast to (6, 8)
    expected = ref_energy(family.kind, v.numpy(), h.numpy(), params)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(("n_visible", "n_hidden"), [(1, 1), (3, 4), (5, 2)])
def test_free_energy_sums_out_hiddens(family: Family, n_visible: int, n_hidden: int) -> None:
    params = random_params(n_visible, n_hidden, family.kind, seed=n_visible * 10 + n_hidden)
    v = random_visible(7, n_visible, family.kind, seed=3)
    h_all = binary_states(n_hidden)
    expected = -logsumexp(-ref_energy(family.kind, v.numpy(), h_all, params), axis=1)
    got = family.free_energy(v, *params)
    assert got.shape == (7,)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-12, atol=1e-11)


def test_binary_hidden_free_energy_sums_out_visibles() -> None:
    params = random_params(5, 3, "bernoulli", seed=4)
    h_all = binary_states(3)
    v_all = binary_states(5)
    expected = -logsumexp(-ref_energy("bernoulli", v_all, h_all, params), axis=0)
    got = Fn.bernoulli_rbm_hidden_free_energy(torch.as_tensor(h_all), *params)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-12, atol=1e-11)


def _gauss_window(params: tuple[Tensor, ...], h: np.ndarray, width: float = 20.0):
    """Integration limits per visible dim: around the conditional mean, ±width σ (test-derived)."""
    w, a, _, log_sigma = (x.numpy() for x in params)
    sigma = np.exp(log_sigma)
    mean = a + sigma * (w @ h)
    return mean - width * sigma, mean + width * sigma


def _point_energy(params, v: np.ndarray, h: np.ndarray) -> float:
    return float(ref_energy("gaussian", v[None, :], h[None, :], params)[0, 0])


@pytest.mark.parametrize("n_visible", [1, 2])
def test_gaussian_hidden_free_energy_integrates_out_visibles(n_visible: int) -> None:
    """``exp(-F(h)) = ∫ exp(-E(v, h)) dv``: adaptive quadrature (D = 1), a fine grid (D = 2)."""
    params = random_params(n_visible, 3, "gaussian", seed=5 + n_visible)
    h_all = binary_states(3)
    got = Fn.gaussian_rbm_hidden_free_energy(torch.as_tensor(h_all), *params).numpy()
    for h, f_h in zip(h_all, got, strict=True):
        lo, hi = _gauss_window(params, h)
        # Subtract the value at the conditional mode to keep the integrand O(1).
        shift = _point_energy(params, (lo + hi) / 2, h)
        if n_visible == 1:
            val, _ = integrate.quad(
                lambda x, h=h, shift=shift: math.exp(
                    shift - _point_energy(params, np.array([x]), h)
                ),
                lo[0],
                hi[0],
                epsabs=0,
                epsrel=1e-12,
                limit=200,
            )
            log_integral = math.log(val) - shift
        else:
            # Riemann sum with step <= σ/10: exact to ~exp(-2π²·100) for a Gaussian integrand.
            step = 0.05
            grid = np.stack(
                np.meshgrid(*(np.arange(lo[i], hi[i], step) for i in range(2))), -1
            ).reshape(-1, 2)
            log_f = -ref_energy("gaussian", grid, h[None, :], params)[:, 0]
            log_integral = float(logsumexp(log_f)) + 2 * math.log(step)
        assert -f_h == pytest.approx(log_integral, abs=1e-9)


def test_gaussian_partition_identity_on_grid() -> None:
    """``Σ_h exp(-F(h)) = ∫ exp(-F(v)) dv`` (D = 2), the integral as a fine Riemann sum."""
    params = random_params(2, 3, "gaussian", seed=11, weight_std=0.7)
    h_all = binary_states(3)
    lows, highs = zip(*(_gauss_window(params, h, width=15.0) for h in h_all), strict=True)
    lo, hi = np.min(lows, axis=0), np.max(highs, axis=0)
    step = 0.04  # σ >= 0.5, so > 12 points per σ: the Riemann sum is exact to ~1e-12
    axes = [torch.arange(lo[i], hi[i], step, dtype=DTYPE) for i in range(2)]
    grid = torch.cartesian_prod(*axes)
    log_int_v = torch.logsumexp(-Fn.gaussian_rbm_free_energy(grid, *params), 0) + 2 * math.log(step)
    log_sum_h = torch.logsumexp(
        -Fn.gaussian_rbm_hidden_free_energy(torch.as_tensor(h_all), *params), 0
    )
    assert float(log_int_v) == pytest.approx(float(log_sum_h), abs=1e-9)


# -- conditionals --------------------------------------------------------------------------
def test_hidden_probs_match_enumeration(family: Family) -> None:
    params = random_params(3, 4, family.kind, seed=12)
    v = random_visible(9, 3, family.kind, seed=13)
    h_all = binary_states(4)
    log_joint = -ref_energy(family.kind, v.numpy(), h_all, params)  # (N, 16)
    post = np.exp(log_joint - logsumexp(log_joint, axis=1, keepdims=True))
    expected = post @ h_all  # p(h_j = 1 | v)
    got = family.hidden_probs(v, *params)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-12, atol=1e-13)


def test_binary_visible_probs_match_enumeration() -> None:
    params = random_params(4, 3, "bernoulli", seed=14)
    v_all = binary_states(4)
    h_all = binary_states(3)
    log_joint = -ref_energy("bernoulli", v_all, h_all, params).T  # (H states, V states)
    post = np.exp(log_joint - logsumexp(log_joint, axis=1, keepdims=True))
    expected = post @ v_all  # p(v_i = 1 | h)
    got = Fn.bernoulli_visible_probs(torch.as_tensor(h_all), params[0], params[1])
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-12, atol=1e-13)


def test_gaussian_visible_moments_match_quadrature() -> None:
    """D = 1: mean and σ of ``p(v | h) ∝ exp(-E(v, h))`` by numerical integration."""
    params = random_params(1, 3, "gaussian", seed=15)
    h_all = binary_states(3)
    means = Fn.gaussian_visible_mean(torch.as_tensor(h_all), params[0], params[1], params[3])
    for h, mean in zip(h_all, means.numpy(), strict=True):
        lo, hi = _gauss_window(params, h)
        shift = _point_energy(params, (lo + hi) / 2, h)

        def moment(k: int, h=h, lo=lo, hi=hi, shift=shift) -> float:
            return integrate.quad(
                lambda x: x**k * math.exp(shift - _point_energy(params, np.array([x]), h)),
                lo[0],
                hi[0],
                epsabs=0,
                epsrel=1e-12,
                limit=200,
            )[0]

        m0, m1, m2 = moment(0), moment(1), moment(2)
        q_mean = m1 / m0
        q_std = math.sqrt(m2 / m0 - q_mean**2)
        assert mean[0] == pytest.approx(q_mean, abs=1e-9)
        assert math.exp(float(params[3][0])) == pytest.approx(q_std, abs=1e-8)


def test_gaussian_gibbs_visible_moments_monte_carlo() -> None:
    """D = 2: the Gibbs step's v samples have the moments of ``exp(-E(v, h))`` (h forced)."""
    params = random_params(2, 3, "gaussian", seed=16)
    h_target = np.array([1.0, 0.0, 1.0])
    n = 200_000
    g = torch.Generator().manual_seed(0)
    v0 = torch.randn(n, 2, generator=g, dtype=DTYPE)
    # u = 0 turns a unit on (0 < p), u = 1 turns it off (p <= 1 is never > 1).
    u_h = torch.as_tensor(1.0 - h_target).expand(n, 3).clone()
    z = torch.randn(n, 2, generator=g, dtype=DTYPE)
    v_next, v_mean, h = Fn.gaussian_rbm_gibbs_step(v0, u_h, z, *params)
    assert torch.equal(h, torch.as_tensor(h_target).expand(n, 3))
    lo, hi = _gauss_window(params, h_target)
    centre = (lo + hi) / 2

    def log_f(x: float, i: int) -> float:
        # p(v | h) factorises over visible units: vary v_i, hold the others fixed.
        v = centre.copy()
        v[i] = x
        return -_point_energy(params, v, h_target)

    for i in range(2):
        ref = log_f(centre[i], i)
        mom = [
            integrate.quad(
                lambda x, k=k, i=i, ref=ref: x**k * math.exp(log_f(x, i) - ref),
                lo[i],
                hi[i],
                limit=200,
            )[0]
            for k in range(3)
        ]
        mean = mom[1] / mom[0]
        std = math.sqrt(mom[2] / mom[0] - mean**2)
        assert float(v_mean[0, i]) == pytest.approx(mean, abs=1e-9)
        se = std / math.sqrt(n)
        assert float(v_next[:, i].mean()) == pytest.approx(mean, abs=5 * se)
        assert float(v_next[:, i].std()) == pytest.approx(std, rel=5 * math.sqrt(0.5 / n))


# -- gradients -----------------------------------------------------------------------------
def _analytic_free_energy_grads(kind: str, v: Tensor, params: tuple[Tensor, ...]) -> list[Tensor]:
    """Mean over the batch of ``∂F(v)/∂θ``, derived by hand (see the test's docstring)."""
    v_np = v.numpy()
    if kind == "bernoulli":
        w, a, b = (x.detach().numpy() for x in params)
        p = expit(b + v_np @ w)
        grads = [-(v_np[:, :, None] * p[:, None, :]), -v_np, -p]
    else:
        w, a, b, log_sigma = (x.detach().numpy() for x in params)
        sigma = np.exp(log_sigma)
        p = expit(b + (v_np / sigma) @ w)
        d_w = -((v_np / sigma)[:, :, None] * p[:, None, :])
        d_a = -(v_np - a) / sigma**2
        d_log_sigma = -((v_np - a) ** 2) / sigma**2 + (v_np / sigma) * (p @ w.T)
        grads = [d_w, d_a, -p, d_log_sigma]
    return [torch.as_tensor(g.mean(0)) for g in grads]


def test_cd_gradient_equals_analytic(family: Family) -> None:
    """grad of ``mean F(v_pos) - mean F(v_neg)`` is ``-(⟨∂(-F)⟩_pos - ⟨∂(-F)⟩_neg)``.

    Binary: ``∂F/∂W = -v p(h|v)ᵀ``, ``∂F/∂a = -v``, ``∂F/∂b = -p(h|v)``.
    Gaussian: ``∂F/∂aᵢ = -(vᵢ-aᵢ)/σᵢ²``, ``∂F/∂Wᵢⱼ = -(vᵢ/σᵢ) p(hⱼ|v)``,
    ``∂F/∂bⱼ = -p(hⱼ|v)``, ``∂F/∂log σᵢ = -(vᵢ-aᵢ)²/σᵢ² + (vᵢ/σᵢ) Σⱼ Wᵢⱼ p(hⱼ|v)``.
    """
    params = tuple(p.clone().requires_grad_(True) for p in random_params(5, 4, family.kind, 17))
    v_pos = random_visible(8, 5, family.kind, seed=18)
    v_neg = random_visible(6, 5, family.kind, seed=19)
    loss = family.free_energy(v_pos, *params).mean() - family.free_energy(v_neg, *params).mean()
    grads = torch.autograd.grad(loss, params)
    pos = _analytic_free_energy_grads(family.kind, v_pos, params)
    neg = _analytic_free_energy_grads(family.kind, v_neg, params)
    for name, got, gp, gn in zip(("W", "a", "b", "log_sigma"), grads, pos, neg, strict=False):
        torch.testing.assert_close(got, gp - gn, rtol=1e-12, atol=1e-12, msg=name)


def test_free_energy_gradcheck(family: Family) -> None:
    params = tuple(p.clone().requires_grad_(True) for p in random_params(3, 2, family.kind, 20))
    v = random_visible(4, 3, family.kind, seed=21).requires_grad_(True)
    assert torch.autograd.gradcheck(family.free_energy, (v, *params))
    h = torch.as_tensor(binary_states(2))
    assert torch.autograd.gradcheck(family.hidden_free_energy, (h, *params))


# -- Gibbs steps with explicit noise ---------------------------------------------------------
def _noise(family: Family, n: int, n_visible: int, n_hidden: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    u_h = torch.rand(n, n_hidden, generator=g, dtype=DTYPE)
    draw = torch.rand if family.kind == "bernoulli" else torch.randn
    return u_h, draw(n, n_visible, generator=g, dtype=DTYPE)


def test_gibbs_step_deterministic_given_noise(family: Family) -> None:
    params = random_params(5, 4, family.kind, seed=22)
    v = random_visible(10, 5, family.kind, seed=23)
    first = family.gibbs_step(v, *_noise(family, 10, 5, 4, seed=1), *params)
    again = family.gibbs_step(v.clone(), *_noise(family, 10, 5, 4, seed=1), *params)
    other = family.gibbs_step(v, *_noise(family, 10, 5, 4, seed=2), *params)
    for x, y in zip(first, again, strict=True):
        assert torch.equal(x, y)
    assert not torch.equal(first[2], other[2])  # the noise does matter


def test_bernoulli_from_uniform_threshold() -> None:
    p = torch.tensor([0.0, 0.1, 0.5, 0.9, 1.0], dtype=DTYPE)
    below = torch.nextafter(p, torch.zeros_like(p))
    above = torch.nextafter(p, torch.ones_like(p))
    assert Fn.bernoulli_from_uniform(p, below).tolist() == [0.0, 1.0, 1.0, 1.0, 1.0]
    assert Fn.bernoulli_from_uniform(p, p).tolist() == [0.0] * 5  # strict: u < p
    assert Fn.bernoulli_from_uniform(p, above).tolist() == [0.0] * 5
    assert Fn.bernoulli_from_uniform(p.float(), below.float()).dtype == torch.float32


@pytest.mark.parametrize("side", ["below", "above"])
def test_binary_gibbs_step_unit_on_iff_u_below_p(side: str) -> None:
    w, a, b = random_params(4, 3, "bernoulli", seed=24)
    v = random_visible(6, 4, "bernoulli", seed=25)
    p_h = torch.sigmoid(b + v @ w)  # test-side p(h | v)
    target = 0.0 if side == "below" else 1.0  # u one ulp below p → on; above → off
    u_h = torch.nextafter(Fn.hidden_probs(v, w, b), torch.tensor(target, dtype=DTYPE))
    expect_h = torch.full_like(p_h, 1.0 - target)
    p_v = torch.sigmoid(a + expect_h @ w.T)
    u_v = torch.nextafter(
        Fn.bernoulli_visible_probs(expect_h, w, a), torch.tensor(target, dtype=DTYPE)
    )
    v_next, v_probs, h = Fn.bernoulli_rbm_gibbs_step(v, u_h, u_v, w, a, b)
    assert torch.equal(h, expect_h)
    torch.testing.assert_close(v_probs, p_v, rtol=1e-14, atol=1e-15)
    assert torch.equal(v_next, torch.full((6, 4), 1.0 if side == "below" else 0.0, dtype=DTYPE))


def test_gaussian_gibbs_step_is_mean_plus_sigma_z() -> None:
    w, a, b, log_sigma = random_params(4, 3, "gaussian", seed=26)
    v = random_visible(7, 4, "gaussian", seed=27)
    u_h, z = _noise(FAMILIES["gaussian"], 7, 4, 3, seed=3)
    v_next, v_mean, h = Fn.gaussian_rbm_gibbs_step(v, u_h, z, w, a, b, log_sigma)
    sigma = torch.exp(log_sigma)
    p_h = torch.sigmoid(b + (v / sigma) @ w)
    assert torch.equal(h, (u_h < p_h).to(DTYPE))
    torch.testing.assert_close(v_mean, a + sigma * (h @ w.T), rtol=1e-14, atol=1e-14)
    torch.testing.assert_close(v_next, v_mean + sigma * z, rtol=1e-14, atol=1e-14)


@pytest.mark.usefixtures("one_thread")
def test_binary_gibbs_chain_converges_to_exact_distribution() -> None:
    """4 visible × 3 hidden: 20000 chains × 50 steps; total variation to exact p(v) < 0.02."""
    params = random_params(4, 3, "bernoulli", seed=28)
    v_all = binary_states(4)
    log_p = -ref_energy("bernoulli", v_all, binary_states(3), params)
    p_exact = np.exp(logsumexp(log_p, axis=1) - logsumexp(log_p))
    n, g = 20_000, torch.Generator().manual_seed(0)
    v = torch.zeros(n, 4, dtype=DTYPE)
    for _ in range(50):
        u_h = torch.rand(n, 3, generator=g, dtype=DTYPE)
        u_v = torch.rand(n, 4, generator=g, dtype=DTYPE)
        v = Fn.bernoulli_rbm_gibbs_step(v, u_h, u_v, *params)[0]
    # itertools.product order: the first unit is the most significant bit.
    codes = (v.numpy() @ (2 ** np.arange(3, -1, -1))).astype(int)
    p_chain = np.bincount(codes, minlength=16) / n
    assert 0.5 * np.abs(p_chain - p_exact).sum() < 0.02
    assert p_exact.max() < 0.5  # the target is far from a point mass


# -- batching --------------------------------------------------------------------------------
def test_per_example_biases_equal_item_by_item(family: Family) -> None:
    """Conditional models pass biases (B, D) / (B, H): each row as if alone."""
    n, d, hid = 5, 4, 3
    base = random_params(d, hid, family.kind, seed=29)
    g = torch.Generator().manual_seed(30)
    w = base[0]
    batched = [w] + [p + 0.3 * torch.randn(n, *p.shape, generator=g, dtype=DTYPE) for p in base[1:]]
    v = random_visible(n, d, family.kind, seed=31)
    h = (torch.rand(n, hid, generator=g, dtype=DTYPE) < 0.5).to(DTYPE)
    noise = _noise(family, n, d, hid, seed=4)
    out = {
        "free_energy": family.free_energy(v, *batched),
        "hidden_free_energy": family.hidden_free_energy(h, *batched),
        "energy": family.energy(v, h, *batched),
        "hidden_probs": family.hidden_probs(v, *batched),
        "visible_params": family.visible_params(h, *batched),
        "gibbs": torch.cat(family.gibbs_step(v, *noise, *batched), dim=1),
    }
    for i in range(n):
        row = [w] + [p[i] for p in batched[1:]]
        single = {
            "free_energy": family.free_energy(v[i : i + 1], *row)[0],
            "hidden_free_energy": family.hidden_free_energy(h[i : i + 1], *row)[0],
            "energy": family.energy(v[i : i + 1], h[i : i + 1], *row)[0],
            "hidden_probs": family.hidden_probs(v[i : i + 1], *row)[0],
            "visible_params": family.visible_params(h[i : i + 1], *row)[0],
            "gibbs": torch.cat(
                family.gibbs_step(v[i : i + 1], noise[0][i : i + 1], noise[1][i : i + 1], *row),
                dim=1,
            )[0],
        }
        for key, value in single.items():
            torch.testing.assert_close(out[key][i], value, rtol=1e-13, atol=1e-13, msg=key)


def test_leading_batch_dims(family: Family) -> None:
    """``(..., D)`` inputs: a (2, 3, D) batch equals its (6, D) reshape."""
    params = random_params(4, 3, family.kind, seed=32)
    v = random_visible(6, 4, family.kind, seed=33)
    h = torch.as_tensor(binary_states(3)[:6])
    torch.testing.assert_close(
        family.free_energy(v.reshape(2, 3, 4), *params),
        family.free_energy(v, *params).reshape(2, 3),
    )
    torch.testing.assert_close(
        family.hidden_probs(v.reshape(2, 3, 4), *params),
        family.hidden_probs(v, *params).reshape(2, 3, 3),
    )
    torch.testing.assert_close(
        family.hidden_free_energy(h.reshape(3, 2, 3), *params),
        family.hidden_free_energy(h, *params).reshape(3, 2),
    )


# -- closed-form CD / PCD gradients ------------------------------------------------------------
CD_CASES = {
    "cd1": {"k": 1},
    "cd3": {"k": 3},
    "pcd2": {"k": 2, "pcd": 7},
    "mean_field": {"k": 2, "negative": "mean_field"},
    "sparsity": {"k": 2, "sparsity_target": 0.2, "sparsity_cost": 0.8},
    "pcd_sparsity_mf": {"k": 1, "pcd": 4, "negative": "mean_field", "sparsity_target": 0.1,
                        "sparsity_cost": 0.3},
}  # fmt: skip


def _cd_closed_form(family: Family, *args: Tensor, **kwargs: object):
    fn = (
        Fn.bernoulli_rbm_cd_gradients
        if family.kind == "bernoulli"
        else Fn.gaussian_rbm_cd_gradients
    )
    return fn(*args, **kwargs)


@pytest.mark.parametrize("case", sorted(CD_CASES))
def test_closed_form_cd_gradients_equal_autograd(family: Family, case: str) -> None:
    """The closed-form CD/PCD gradient is autograd's through the free energy (float64, 1e-10).

    The reference runs the chain as ``k`` calls of the family's Gibbs step on the same noise,
    takes ``v⁻`` (the last sample or its mean) and differentiates
    ``mean F(v⁺) - mean F(v⁻) + λ Σ (t - mean p(h | v⁺))²`` with autograd.
    """
    spec = dict(CD_CASES[case])
    k, n_chains = int(spec.pop("k")), spec.pop("pcd", None)
    negative = str(spec.pop("negative", "sample"))
    target, cost = spec.pop("sparsity_target", None), float(spec.pop("sparsity_cost", 0.0))
    d, h, b = 6, 5, 8
    params = random_params(d, h, family.kind, seed=40, weight_std=0.7)
    v_data = random_visible(b, d, family.kind, seed=41)
    start = None if n_chains is None else random_visible(int(n_chains), d, family.kind, seed=42)
    n = b if start is None else start.shape[0]
    g = torch.Generator().manual_seed(43)
    u_h = torch.rand(k, n, h, generator=g, dtype=DTYPE)
    draw = torch.rand if family.kind == "bernoulli" else torch.randn
    noise_v = draw(k, n, d, generator=g, dtype=DTYPE)

    grads, step = _cd_closed_form(
        family,
        v_data,
        u_h,
        noise_v,
        *params,
        chain_start=start,
        negative=negative,
        sparsity_target=target,
        sparsity_cost=cost,
        negative_free_energy=True,
    )

    v = v_data if start is None else start
    for s in range(k):
        v_next, v_mean, _ = family.gibbs_step(v, u_h[s], noise_v[s], *params)
        v = v_next
    v_neg = v_mean if negative == "mean_field" else v
    torch.testing.assert_close(step.chain, v, rtol=1e-13, atol=1e-13)
    torch.testing.assert_close(step.negative, v_neg, rtol=1e-13, atol=1e-13)
    torch.testing.assert_close(step.v_mean, v_mean, rtol=1e-13, atol=1e-13)

    leaves = tuple(p.clone().requires_grad_(True) for p in params)
    f_pos = family.free_energy(v_data, *leaves)
    f_neg = family.free_energy(v_neg, *leaves)
    loss = f_pos.mean() - f_neg.mean()
    if target is not None:
        q = family.hidden_probs(v_data, *leaves).mean(0)
        loss = loss + cost * ((target - q) ** 2).sum()
    expected = torch.autograd.grad(loss, leaves)
    names = ("weight", "visible_bias", "hidden_bias", "log_sigma")
    for name, got, want in zip(names, grads, expected, strict=False):
        assert got is not None and got.shape == want.shape, name
        rel = float((got - want).norm() / want.norm())
        assert rel < 1e-10, (name, rel)
    # The free energies it reports come from x = b + (v/σ)ᵀW without another GEMM.
    torch.testing.assert_close(step.data_free_energy, f_pos.detach(), rtol=1e-12, atol=1e-12)
    assert step.negative_free_energy is not None
    torch.testing.assert_close(step.negative_free_energy, f_neg.detach(), rtol=1e-12, atol=1e-12)


def test_closed_form_cd_writes_into_out_and_skips_the_unused_last_sample(family: Family) -> None:
    """``out`` tensors receive the gradients; a mean-field negative from ``k - 1`` visible
    noise steps equals the one from ``k`` (the last visible sample is never used)."""
    params = random_params(4, 3, family.kind, seed=50)
    v_data = random_visible(5, 4, family.kind, seed=51)
    g = torch.Generator().manual_seed(52)
    u_h = torch.rand(2, 5, 3, generator=g, dtype=DTYPE)
    noise_v = torch.rand(2, 5, 4, generator=g, dtype=DTYPE)
    out = [torch.full_like(p, math.nan) for p in params]
    full, _ = _cd_closed_form(family, v_data, u_h, noise_v, *params, negative="mean_field", out=out)
    short, step = _cd_closed_form(family, v_data, u_h, noise_v[:1], *params, negative="mean_field")
    n = len(params)  # a binary RBM's RBMGradients has log_sigma=None
    for got, dest, other in zip(full[:n], out, short[:n], strict=True):
        assert got is not None and other is not None
        assert got.data_ptr() == dest.data_ptr()
        torch.testing.assert_close(got, other, rtol=1e-14, atol=1e-14)
    assert torch.equal(step.chain, step.v_mean)
    with pytest.raises(ValueError, match=r"visible_noise must have shape \(2, chains, D\)"):
        _cd_closed_form(family, v_data, u_h, noise_v[:1], *params, negative="sample")


@pytest.mark.parametrize("case", ["cd1", "pcd2", "sparsity", "pcd_sparsity_mf"])
def test_free_energy_bounds_stand_in_for_the_data_free_energy(family: Family, case: str) -> None:
    """``data_free_energy=False`` gives the same gradients and chain, no ``F(v⁺)``, and a
    ``U`` with ``U - H log 2 ≤ mean F(v⁺) ≤ U`` (the training system's check on the steps
    that log nothing)."""
    spec = dict(CD_CASES[case])
    k, n_chains = int(spec.pop("k")), spec.pop("pcd", None)
    d, h, b = 6, 5, 8
    params = random_params(d, h, family.kind, seed=60, weight_std=2.0)
    v_data = random_visible(b, d, family.kind, seed=61)
    start = None if n_chains is None else random_visible(int(n_chains), d, family.kind, seed=62)
    n = b if start is None else start.shape[0]
    g = torch.Generator().manual_seed(63)
    u_h = torch.rand(k, n, h, generator=g, dtype=DTYPE)
    noise_v = (torch.rand if family.kind == "bernoulli" else torch.randn)(
        k, n, d, generator=g, dtype=DTYPE
    )
    runs = [
        _cd_closed_form(family, v_data, u_h, noise_v, *params, chain_start=start,
                        data_free_energy=exact, **spec)
        for exact in (True, False)
    ]  # fmt: skip
    (full_grads, full), (fast_grads, fast) = runs
    for got, want in zip(fast_grads, full_grads, strict=True):
        assert (got is None and want is None) or torch.equal(got, want)
    assert torch.equal(fast.chain, full.chain) and torch.equal(fast.negative, full.negative)
    assert full.data_free_energy is not None and full.data_free_energy_upper is None
    assert fast.data_free_energy is None and fast.data_free_energy_upper is not None
    f_mean = float(family.free_energy(v_data, *params).mean())
    upper = float(fast.data_free_energy_upper)
    assert upper - h * math.log(2.0) - 1e-12 <= f_mean <= upper + 1e-12, (f_mean, upper)


@pytest.mark.parametrize(
    "where", ["nan in v", "inf in v", "-inf in v", "nan in W", "inf in W", "nan in a"]
)
def test_free_energy_bounds_are_not_finite_when_the_free_energy_is_not(
    family: Family, where: str
) -> None:
    """A NaN or an infinity in the batch or the parameters reaches the bounds whenever it
    reaches ``F(v⁺)`` (and always from the batch): the check that replaces ``F`` on the
    training system's quiet steps misses nothing that ``F`` would show."""
    params = [p.clone() for p in random_params(6, 5, family.kind, seed=70)]
    v_data = random_visible(8, 6, family.kind, seed=71)
    value = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}[where.split()[0]]
    target = {"v": v_data, "W": params[0], "a": params[1]}[where.split()[-1]]
    target.view(-1)[3] = value
    g = torch.Generator().manual_seed(72)
    u_h = torch.rand(1, 8, 5, generator=g, dtype=DTYPE)
    noise_v = torch.rand(1, 8, 6, generator=g, dtype=DTYPE)
    _, step = _cd_closed_form(family, v_data, u_h, noise_v, *params, data_free_energy=False)
    assert step.data_free_energy_upper is not None
    f_finite = bool(torch.isfinite(family.free_energy(v_data, *params).mean()))
    assert bool(torch.isfinite(step.data_free_energy_upper)) == f_finite
    if where.endswith("v") or where.startswith("nan"):
        assert not f_finite


@pytest.mark.parametrize("kind", ["bernoulli", "gaussian"])
def test_free_energy_bounds_with_per_example_biases(
    kind: Literal["bernoulli", "gaussian"],
) -> None:
    """The bounds hold for per-example biases ``â (B, D)``, ``b̂ (B, H)`` (conditional RBMs)."""
    g = torch.Generator().manual_seed(80)
    b, d, h = 7, 5, 4
    weight = torch.randn(d, h, generator=g, dtype=DTYPE) * 2
    a_hat = torch.randn(b, d, generator=g, dtype=DTYPE)
    b_hat = torch.randn(b, h, generator=g, dtype=DTYPE)
    v = random_visible(b, d, kind, seed=81)
    u_h = torch.rand(1, b, h, generator=g, dtype=DTYPE)
    noise_v = torch.rand(1, b, d, generator=g, dtype=DTYPE)
    steps = [
        Fn.contrastive_divergence(v, u_h, noise_v, weight, a_hat, b_hat, visible_kind=kind,
                                  negative_free_energy=True, data_free_energy=exact)[1]
        for exact in (True, False)
    ]  # fmt: skip
    assert steps[0].data_free_energy is not None and steps[1].data_free_energy_upper is not None
    f_mean = float(steps[0].data_free_energy.mean())
    upper = float(steps[1].data_free_energy_upper)
    assert upper - h * math.log(2.0) - 1e-12 <= f_mean <= upper + 1e-12, (f_mean, upper)


def test_softplus_sum_from_probs_is_softplus() -> None:
    x = torch.tensor([[-800.0, -30.0, -1.0, 0.0, 0.5, 20.0, 700.0]], dtype=DTYPE)
    expected = torch.nn.functional.softplus(x).sum(-1)
    got = Fn.softplus_sum_from_probs(x, torch.sigmoid(x))
    torch.testing.assert_close(got, expected, rtol=1e-15, atol=1e-13)
    x32 = torch.linspace(-90, 90, 1001).reshape(7, 143)
    got32 = Fn.softplus_sum_from_probs(x32, torch.sigmoid(x32))
    ref = torch.nn.functional.softplus(x32.double()).sum(-1)
    # Products of at most 63 (float32) or 511 (float64) factors m = max(p, 1 - p) >= 1/2:
    # no underflow even where every m is exactly 1/2 (x = 0), whatever the width.
    for dtype, width in ((torch.float32, 1000), (DTYPE, 1500), (DTYPE, 511)):
        zeros = torch.zeros(2, width, dtype=dtype)
        got0 = Fn.softplus_sum_from_probs(zeros, torch.sigmoid(zeros))
        torch.testing.assert_close(
            got0.double(), torch.full((2,), width * math.log(2.0), dtype=DTYPE)
        )
    # float32: a few ulp per unit plus the float32 rounding of the sums themselves
    assert bool(((got32.double() - ref).abs() <= 143 * 2e-6 + 1e-6 * ref).all())
