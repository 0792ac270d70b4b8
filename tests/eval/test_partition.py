"""Tests of exact and AIS log partition functions and of the log-likelihood.

References are computed here, independently: direct double sums over (v, h), the
closed-form Gaussian integral written out below, 1-D quadrature, and exact samples drawn by
enumerating the hidden states.
"""

from __future__ import annotations

import itertools
import logging
import math

import numpy as np
import pytest
import torch
from scipy import integrate
from scipy.special import logsumexp

from seqboltz.eval import (
    AISResult,
    ais_log_partition,
    default_betas,
    exact_log_partition,
    log_likelihood,
)
from seqboltz.models import BernoulliRBM, EnergyModel, GaussianBernoulliRBM

DTYPE = torch.float64
LOG2 = math.log(2.0)


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """AIS is thousands of tiny matmuls: on a busy 2-core box, intra-op threads only spin.

    One thread keeps this file's run time independent of the machine's load; restored after.
    """
    n_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n_threads)


# -- models and references ------------------------------------------------------------------
def binary_states(n_units: int) -> np.ndarray:
    return np.array(list(itertools.product([0.0, 1.0], repeat=n_units)))


def binary_rbm(
    n_visible: int, n_hidden: int, seed: int, weight_std: float = 1.0, bias_std: float = 1.0
) -> BernoulliRBM:
    g = torch.Generator().manual_seed(seed)
    model = BernoulliRBM(n_visible, n_hidden).double()
    with torch.no_grad():
        model.weight.copy_(weight_std * torch.randn(n_visible, n_hidden, generator=g, dtype=DTYPE))
        model.visible_bias.copy_(bias_std * torch.randn(n_visible, generator=g, dtype=DTYPE))
        model.hidden_bias.copy_(bias_std * torch.randn(n_hidden, generator=g, dtype=DTYPE))
    return model


def gaussian_rbm(
    n_visible: int, n_hidden: int, seed: int, weight_std: float = 0.3
) -> GaussianBernoulliRBM:
    """Random Gaussian-Bernoulli RBM with learned-like σ in [0.5, 2]."""
    g = torch.Generator().manual_seed(seed)
    model = GaussianBernoulliRBM(n_visible, n_hidden).double()
    with torch.no_grad():
        model.weight.copy_(weight_std * torch.randn(n_visible, n_hidden, generator=g, dtype=DTYPE))
        model.visible_bias.copy_(torch.randn(n_visible, generator=g, dtype=DTYPE))
        model.hidden_bias.copy_(torch.randn(n_hidden, generator=g, dtype=DTYPE))
        model.log_sigma.uniform_(math.log(0.5), math.log(2.0), generator=g)
    return model


def params(model: EnergyModel) -> dict[str, np.ndarray]:
    return {k: v.detach().numpy() for k, v in model.state_dict().items()}


def ref_energy(model: EnergyModel, v: np.ndarray, h: np.ndarray) -> np.ndarray:
    """``E(v, h)`` for all pairs of rows, ``(N, M)``."""
    p = params(model)
    w, a, b = p["weight"], p["visible_bias"], p["hidden_bias"]
    if model.visible_kind == "bernoulli":
        return -(v @ a)[:, None] - (h @ b)[None, :] - v @ w @ h.T
    sigma = np.exp(p["log_sigma"])
    quad = 0.5 * (((v - a) / sigma) ** 2).sum(1)
    return quad[:, None] - (h @ b)[None, :] - (v / sigma) @ w @ h.T


def ref_neg_hidden_free_energy(model: EnergyModel, h: np.ndarray) -> np.ndarray:
    """``log Σ_v exp(-E(v, h))`` (binary) or the closed-form ``log ∫ exp(-E(v, h)) dv``.

    Gaussian: completing the square in each vᵢ,
    ``∫ exp(-(vᵢ-aᵢ)²/2σᵢ² + vᵢ cᵢ/σᵢ) dvᵢ = √(2π) σᵢ exp(aᵢcᵢ/σᵢ + cᵢ²/2)``, ``c = W h``.
    """
    p = params(model)
    w, a, b = p["weight"], p["visible_bias"], p["hidden_bias"]
    wh = h @ w.T  # (M, D)
    if model.visible_kind == "bernoulli":
        return h @ b + np.logaddexp(0.0, a + wh).sum(1)
    sigma = np.exp(p["log_sigma"])
    d = model.n_visible
    return (
        h @ b
        + (a * wh / sigma + 0.5 * wh**2).sum(1)
        + np.log(sigma).sum()
        + 0.5 * d * math.log(2 * math.pi)
    )


def ref_free_energy(model: EnergyModel, v: np.ndarray) -> np.ndarray:
    return -logsumexp(-ref_energy(model, v, binary_states(model.n_hidden)), axis=1)


def exact_samples(model: EnergyModel, n: int, seed: int) -> torch.Tensor:
    """Exact samples of ``p(v)``: ``h ~ p(h)`` by enumeration, then ``v ~ p(v | h)``."""
    rng = np.random.default_rng(seed)
    h_all = binary_states(model.n_hidden)
    log_ph = ref_neg_hidden_free_energy(model, h_all)
    ph = np.exp(log_ph - logsumexp(log_ph))
    h = h_all[rng.choice(len(h_all), size=n, p=ph / ph.sum())]
    p = params(model)
    wh = h @ p["weight"].T
    if model.visible_kind == "bernoulli":
        prob = 1.0 / (1.0 + np.exp(-(p["visible_bias"] + wh)))
        v = (rng.random(prob.shape) < prob).astype(np.float64)
    else:
        sigma = np.exp(p["log_sigma"])
        v = p["visible_bias"] + sigma * wh + sigma * rng.standard_normal(wh.shape)
    return torch.as_tensor(v)


# -- exact log Z ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("n_visible", "n_hidden"),
    [(1, 1), (3, 7), (6, 6), (8, 4), (9, 2)],
    ids=["1x1", "D<H", "D=H", "D>H", "D>>H"],
)
def test_exact_binary_equals_double_sum(n_visible: int, n_hidden: int) -> None:
    model = binary_rbm(n_visible, n_hidden, seed=n_visible * 31 + n_hidden)
    expected = logsumexp(-ref_energy(model, binary_states(n_visible), binary_states(n_hidden)))
    assert exact_log_partition(model) == pytest.approx(expected, abs=1e-10)
    # Chunked enumeration gives the same sum.
    assert exact_log_partition(model, chunk_size=3) == pytest.approx(expected, abs=1e-10)


def test_exact_binary_large_visible_side() -> None:
    """784 × 15: only the hidden side can be enumerated; compare with the summed-out formula."""
    model = binary_rbm(784, 15, seed=1, weight_std=0.05)
    h_all = binary_states(15)
    expected = logsumexp(ref_neg_hidden_free_energy(model, h_all))
    assert exact_log_partition(model) == pytest.approx(expected, abs=1e-8)


@pytest.mark.parametrize(("n_visible", "n_hidden"), [(1, 3), (3, 5), (12, 4)])
def test_exact_gaussian_closed_form(n_visible: int, n_hidden: int) -> None:
    """``log Z = logsumexp_h [bᵀh + Σᵢ (aᵢ(Wh)ᵢ/σᵢ + (Wh)ᵢ²/2)] + Σᵢ log σᵢ + (D/2) log 2π``."""
    model = gaussian_rbm(n_visible, n_hidden, seed=n_visible + 10 * n_hidden, weight_std=0.8)
    p = params(model)
    w, a, b, sigma = p["weight"], p["visible_bias"], p["hidden_bias"], np.exp(p["log_sigma"])
    h = binary_states(n_hidden)
    wh = h @ w.T
    expected = (
        logsumexp(h @ b + (a * wh / sigma + 0.5 * wh**2).sum(1))
        + np.log(sigma).sum()
        + 0.5 * n_visible * math.log(2 * math.pi)
    )
    assert exact_log_partition(model) == pytest.approx(expected, abs=1e-10)


def test_exact_gaussian_by_quadrature() -> None:
    """D = 1: ``log ∫ Σ_h exp(-E(v, h)) dv`` by adaptive quadrature."""
    model = gaussian_rbm(1, 3, seed=5, weight_std=1.0)
    h_all = binary_states(3)
    p = params(model)
    sigma = float(np.exp(p["log_sigma"][0]))
    modes = p["visible_bias"][0] + sigma * (h_all @ p["weight"][0])
    lo, hi = modes.min() - 30 * sigma, modes.max() + 30 * sigma
    shift = float(-ref_free_energy(model, np.array([[modes.mean()]]))[0])

    def integrand(x: float) -> float:
        return math.exp(logsumexp(-ref_energy(model, np.array([[x]]), h_all)) - shift)

    val, _ = integrate.quad(integrand, lo, hi, points=sorted(modes), epsabs=0, epsrel=1e-12)
    assert exact_log_partition(model) == pytest.approx(math.log(val) + shift, abs=1e-9)


def test_exact_does_not_touch_the_model() -> None:
    model = binary_rbm(5, 4, seed=2).float()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    log_z = exact_log_partition(model)
    assert model.weight.dtype == torch.float32
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k])
    assert log_z == pytest.approx(exact_log_partition(model.double()), abs=1e-12)


@pytest.mark.parametrize(
    ("make", "max_units"),
    [
        (lambda: BernoulliRBM(26, 30), 25),  # visible side is the smaller one
        (lambda: BernoulliRBM(40, 26), 25),  # hidden side is the smaller one
        (lambda: GaussianBernoulliRBM(3, 26), 25),  # Gaussian: always the hidden side
        (lambda: BernoulliRBM(5, 6), 4),
    ],
)
def test_exact_refuses_big_models(make, max_units: int) -> None:
    with pytest.raises(ValueError, match=r"(?i)\bais"):
        exact_log_partition(make(), max_units=max_units)


def test_exact_limit_is_inclusive() -> None:
    model = binary_rbm(5, 6, seed=3)
    expected = logsumexp(-ref_energy(model, binary_states(5), binary_states(6)))
    assert exact_log_partition(model, max_units=5) == pytest.approx(expected, abs=1e-10)


# -- AIS ------------------------------------------------------------------------------------
def _case_b20x10():
    return binary_rbm(20, 10, seed=0, weight_std=0.5), None


def _case_b784x15():
    return binary_rbm(784, 15, seed=0, weight_std=0.05), None


def _case_b784x15_data():
    model = binary_rbm(784, 15, seed=2, weight_std=0.05)
    return model, exact_samples(model, 1000, seed=2)


def _case_g50x12():
    return gaussian_rbm(50, 12, seed=3), None


def _case_g50x12_data():
    model = gaussian_rbm(50, 12, seed=4)
    return model, exact_samples(model, 1000, seed=4)


@pytest.mark.parametrize(
    ("case", "n_chains", "n_betas"),
    [
        pytest.param(_case_b20x10, 100, 1000, id="binary-20x10"),
        pytest.param(_case_b784x15, 300, 5000, id="binary-784x15", marks=pytest.mark.slow),
        pytest.param(_case_b784x15_data, 100, 1000, id="binary-784x15-base-data"),
        pytest.param(_case_g50x12, 200, 3000, id="gaussian-50x12"),
        pytest.param(_case_g50x12_data, 100, 500, id="gaussian-50x12-base-data"),
    ],
)
def test_ais_agrees_with_exact(case, n_chains: int, n_betas: int) -> None:
    model, base_data = case()
    exact = exact_log_partition(model)
    result = ais_log_partition(model, base_data, n_chains=n_chains, n_betas=n_betas, seed=0)
    assert abs(result.log_z - exact) < 0.1, (result.log_z, exact, result.log_z_std)
    assert result.log_z_low - 0.1 <= exact <= result.log_z_high + 0.1
    # Non-trivial: the model is far from its base distribution (Z differs by several nats).
    d, h = model.n_visible, model.n_hidden
    if base_data is None and model.visible_kind == "bernoulli":
        assert abs(exact - (d + h) * LOG2) > 5.0


@pytest.mark.parametrize(
    ("make", "base"),
    [
        (lambda: binary_rbm(4, 3, seed=7), None),
        (lambda: binary_rbm(4, 3, seed=8), "data"),
        (lambda: gaussian_rbm(2, 3, seed=9, weight_std=0.8), None),
        (lambda: gaussian_rbm(2, 3, seed=10, weight_std=0.8), "data"),
    ],
    ids=["binary", "binary-base-data", "gaussian", "gaussian-base-data"],
)
def test_ais_importance_weights_unbiased_with_few_betas(make, base) -> None:
    """With only 3 temperatures the weights are far from constant, yet E[w] = Z / Z_base.

    This needs every intermediate distribution, transition and the base log Z to be right,
    not just the end points.
    """
    model = make()
    base_data = None
    if base == "data":
        # Off-model base data: a shifted, rescaled cloud.
        g = torch.Generator().manual_seed(11)
        base_data = 0.3 + 1.5 * torch.randn(500, model.n_visible, generator=g, dtype=DTYPE)
        if model.visible_kind == "bernoulli":
            base_data = (base_data > 0.5).to(DTYPE)
    exact = exact_log_partition(model)
    result = ais_log_partition(
        model, base_data, n_chains=40_000, betas=torch.tensor([0.0, 0.5, 1.0]), seed=1
    )
    assert result.effective_sample_size < 0.9 * 40_000  # the weights do vary
    assert abs(result.log_z - exact) < max(4 * result.log_z_std, 1e-3)
    assert result.log_z_std < 0.02


def test_ais_exact_when_model_is_the_base() -> None:
    """Zero parameters: the model equals the uniform base, every weight is exactly 1."""
    model = BernoulliRBM(6, 4, init_std=0.0).double()
    result = ais_log_partition(model, n_chains=10, n_betas=20, seed=0)
    assert torch.equal(result.log_weights, torch.zeros(10, dtype=DTYPE))
    assert result.log_z == pytest.approx(10 * LOG2, abs=1e-12)
    assert result.effective_sample_size == pytest.approx(10.0, abs=1e-12)
    assert result.log_z_low == pytest.approx(result.log_z_high, abs=1e-12)


@pytest.mark.parametrize("kind", ["binary", "gaussian"])
def test_ais_result_fields_consistent(kind: str) -> None:
    model = (
        binary_rbm(10, 6, seed=12, weight_std=0.7)
        if kind == "binary"
        else gaussian_rbm(6, 5, seed=13, weight_std=0.6)
    )
    n = 64
    result = ais_log_partition(model, n_chains=n, n_betas=50, seed=3)
    assert isinstance(result, AISResult)
    assert result.n_betas == 50
    assert result.log_weights.shape == (n,)
    assert result.log_weights.dtype == DTYPE
    assert result.log_z_low <= result.log_z <= result.log_z_high
    assert 0 < result.effective_sample_size <= n
    # Recompute every summary from the log weights and the base model's log Z (no data:
    # uniform visibles / N(a, σ²), each with H free hidden units).
    p = params(model)
    d, h = model.n_visible, model.n_hidden
    if kind == "binary":
        log_z_base = (d + h) * LOG2
    else:
        log_z_base = p["log_sigma"].sum() + 0.5 * d * math.log(2 * math.pi) + h * LOG2
    lw = result.log_weights.numpy()
    log_mean = logsumexp(lw) - math.log(n)
    w = np.exp(lw - log_mean)
    rel_se = w.std(ddof=1) / math.sqrt(n)
    assert result.log_z == pytest.approx(log_z_base + log_mean, abs=1e-10)
    assert result.effective_sample_size == pytest.approx(w.sum() ** 2 / (w**2).sum(), rel=1e-10)
    assert result.log_z_std == pytest.approx(rel_se, rel=1e-10)
    assert result.log_z_high == pytest.approx(result.log_z + math.log1p(3 * rel_se), abs=1e-10)
    assert 3 * rel_se < 1  # so the lower bound is finite
    assert result.log_z_low == pytest.approx(result.log_z + math.log1p(-3 * rel_se), abs=1e-10)
    assert result.effective_sample_size < n  # weights not all equal: the checks above bite


def test_ais_lower_bound_infinite_when_spread_is_large() -> None:
    model = binary_rbm(30, 8, seed=14, weight_std=2.0)
    result = ais_log_partition(model, n_chains=4, betas=torch.tensor([0.0, 1.0]), seed=0)
    lw = result.log_weights.numpy()
    w = np.exp(lw - (logsumexp(lw) - math.log(4)))
    assert 3 * w.std(ddof=1) / 2 >= 1  # the test's premise: a very wide spread
    assert result.log_z_low == -math.inf
    assert math.isfinite(result.log_z_high)


def test_ais_deterministic_for_fixed_seed() -> None:
    model = gaussian_rbm(8, 5, seed=15)
    a = ais_log_partition(model, n_chains=16, n_betas=40, seed=7)
    b = ais_log_partition(model, n_chains=16, n_betas=40, seed=7)
    c = ais_log_partition(model, n_chains=16, n_betas=40, seed=8)
    assert torch.equal(a.log_weights, b.log_weights)
    assert a.log_z == b.log_z
    assert not torch.equal(a.log_weights, c.log_weights)
    # float32 models are evaluated in float64: the same numbers as the float64 copy.
    f32 = ais_log_partition(model.float(), n_chains=16, n_betas=40, seed=7)
    f64 = ais_log_partition(model.double(), n_chains=16, n_betas=40, seed=7)
    torch.testing.assert_close(f32.log_weights, f64.log_weights, rtol=0, atol=1e-12)


def test_ais_explicit_betas_match_default_schedule() -> None:
    model = binary_rbm(6, 4, seed=16)
    a = ais_log_partition(model, n_chains=8, n_betas=30, seed=2)
    b = ais_log_partition(model, n_chains=8, betas=default_betas(30), seed=2)
    assert torch.equal(a.log_weights, b.log_weights)


@pytest.mark.parametrize(
    "betas",
    [
        torch.tensor([0.1, 0.5, 1.0]),
        torch.tensor([0.0, 0.5, 0.9]),
        torch.tensor([0.0, 0.6, 0.4, 1.0]),
        torch.tensor([0.0, 1.5, 1.0]),
        torch.tensor([1.0, 0.0]),
    ],
    ids=["start", "end", "decreasing", "overshoot", "reversed"],
)
def test_ais_rejects_bad_betas(betas: torch.Tensor) -> None:
    with pytest.raises(ValueError, match="increase monotonically from 0 to 1"):
        ais_log_partition(binary_rbm(3, 2, seed=0), n_chains=4, betas=betas)


@pytest.mark.parametrize(
    "betas", [torch.tensor([0.0, math.nan, 1.0]), torch.tensor([])], ids=["nan", "empty"]
)
def test_ais_rejects_malformed_betas(betas: torch.Tensor) -> None:
    with pytest.raises(ValueError, match="betas"):
        ais_log_partition(binary_rbm(3, 2, seed=0), n_chains=4, betas=betas)


def test_ais_rejects_too_few_chains_or_betas() -> None:
    model = binary_rbm(3, 2, seed=0)
    with pytest.raises(ValueError, match="n_chains"):
        ais_log_partition(model, n_chains=1, n_betas=10)
    with pytest.raises(ValueError, match="n_betas"):
        ais_log_partition(model, n_chains=4, n_betas=3)


@pytest.mark.parametrize("n_betas", [4, 5, 29, 1000, 14500])
def test_default_betas(n_betas: int) -> None:
    betas = default_betas(n_betas).numpy()
    assert betas.shape == (n_betas,)
    assert betas[0] == 0.0
    assert betas[-1] == 1.0
    assert np.all(np.diff(betas) > 0)
    if n_betas >= 1000:  # Salakhutdinov & Murray's proportions: 500 / 4000 / 10000 of 14500
        frac = np.array([(betas < 0.5).sum(), ((betas >= 0.5) & (betas < 0.9)).sum()]) / n_betas
        np.testing.assert_allclose(frac, [500 / 14500, 4000 / 14500], atol=2 / n_betas)


# -- log-likelihood -------------------------------------------------------------------------
def test_log_likelihood_is_minus_free_energy_minus_log_z() -> None:
    model = binary_rbm(6, 5, seed=17)
    g = torch.Generator().manual_seed(0)
    v = torch.rand(13, 6, generator=g, dtype=DTYPE)
    got = log_likelihood(model, v, log_z=12.5, batch_size=4)
    assert got.shape == (13,)
    assert got.dtype == DTYPE
    np.testing.assert_allclose(got.numpy(), -ref_free_energy(model, v.numpy()) - 12.5, rtol=1e-12)


def test_log_likelihood_normalised_binary() -> None:
    model = binary_rbm(5, 4, seed=18)
    v_all = torch.as_tensor(binary_states(5))
    log_p = log_likelihood(model, v_all, exact_log_partition(model))
    assert float(torch.logsumexp(log_p, 0)) == pytest.approx(0.0, abs=1e-12)


def test_log_likelihood_normalised_gaussian() -> None:
    model = gaussian_rbm(1, 3, seed=19, weight_std=1.0)
    log_z = exact_log_partition(model)

    def density(x: float) -> float:
        return math.exp(float(log_likelihood(model, torch.tensor([[x]], dtype=DTYPE), log_z)[0]))

    p = params(model)
    a, sigma = float(p["visible_bias"][0]), float(np.exp(p["log_sigma"][0]))
    w = float(np.abs(p["weight"]).sum())
    total, _ = integrate.quad(density, a - w * sigma - 30 * sigma, a + w * sigma + 30 * sigma)
    assert total == pytest.approx(1.0, abs=1e-8)


def test_log_likelihood_float32_and_validation() -> None:
    model = binary_rbm(4, 3, seed=20)
    v = torch.as_tensor(binary_states(4))
    expected = log_likelihood(model, v, 3.0)
    got = log_likelihood(model.float(), v.float(), 3.0)
    assert got.dtype == DTYPE
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match=r"\(batch, 4\)"):
        log_likelihood(model, torch.zeros(2, 5), 0.0)


def test_ais_reports_progress_and_bounds() -> None:
    """Every 25% of the schedule a line with elapsed and remaining time, then the estimate
    with its ±3σ bounds; nothing below INFO or with report_every=0; the same estimate."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    log = logging.getLogger("seqboltz.eval")
    level = log.level
    log.addHandler(handler)
    try:
        torch.manual_seed(0)
        model = BernoulliRBM(6, 4)
        log.setLevel(logging.WARNING)
        quiet = ais_log_partition(model, n_chains=10, n_betas=101, seed=2)
        assert records == []
        log.setLevel(logging.INFO)
        ais_log_partition(model, n_chains=10, n_betas=101, seed=2, report_every=0)
        assert records == []
        loud = ais_log_partition(model, n_chains=10, n_betas=101, seed=2, report_every=0.25)
    finally:
        log.removeHandler(handler)
        log.setLevel(level)
    lines = [r.getMessage() for r in records]
    assert len(lines) == 4
    assert [line.split("):")[1].split("(")[0].strip() for line in lines[:3]] == [
        "25%",
        "50%",
        "75%",
    ]
    assert all("s elapsed, about" in line and "/100 steps" in line for line in lines[:3])
    assert lines[3].startswith(f"AIS: log Z = {loud.log_z:.3f}, ±3σ [")
    assert f"{loud.log_z_low:.3f}, {loud.log_z_high:.3f}]" in lines[3]
    assert loud.log_z == quiet.log_z
