"""Tests of :class:`MeanCovarianceRBM` against brute force on tiny float64 models.

Hidden sums are enumerations of all ``2**(M+F)`` states; integrals over the visibles are
Riemann sums on a fine 2-D grid (exact to rounding for these smooth, Gaussian-tailed
integrands); the references are written in numpy, independently of
:mod:`seqboltz.functional._mc`.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from scipy.special import expit, logsumexp

from seqboltz.data import ArrayDataModule
from seqboltz.eval import ais_log_partition, exact_log_partition
from seqboltz.functional import _mc as MC
from seqboltz.models import MeanCovarianceRBM, load_model, model_from_spec, model_spec
from seqboltz.training import RBMSystem, SavePictures

DTYPE = torch.float64
STEP = 0.05
AXIS = np.arange(-10.0, 10.0, STEP)
GRID = np.stack(np.meshgrid(AXIS, AXIS, indexing="ij"), -1).reshape(-1, 2)  # (N, 2)
LOG_CELL = 2 * math.log(STEP)


@pytest.fixture(autouse=True)
def one_thread():
    """Many tiny matmuls: on a busy 2-core machine intra-op threads only spin. Restored after."""
    n_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n_threads)


def make(d: int = 2, m: int = 2, f: int = 2, seed: int = 0, **kwargs) -> MeanCovarianceRBM:
    """A float64 model with random, non-trivial parameters."""
    model = MeanCovarianceRBM(d, m, f, **kwargs).double()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        model.weight.copy_(0.7 * torch.randn(d, m, generator=g, dtype=DTYPE))
        model.mean_bias.copy_(0.5 * torch.randn(m, generator=g, dtype=DTYPE))
        model.filters.copy_(0.8 * torch.randn(d, f, generator=g, dtype=DTYPE))
        model.cov_bias.copy_(0.5 + 0.5 * torch.randn(f, generator=g, dtype=DTYPE))
    return model


def binary_states(n: int) -> np.ndarray:
    return np.array(list(itertools.product([0.0, 1.0], repeat=n)))


def params(model: MeanCovarianceRBM) -> tuple[np.ndarray, ...]:
    return tuple(
        t.detach().numpy().copy()
        for t in (model.weight, model.mean_bias, model.filters, model.cov_bias)
    )


def ref_energy(model: MeanCovarianceRBM, x: np.ndarray, h: np.ndarray) -> np.ndarray:
    """``E(x, h)`` for all pairs of rows of ``x (N, D)`` and ``h (K, M+F)``, ``(N, K)``."""
    w, bm, r, bc = params(model)
    hm, hc = h[:, : model.n_mean_hidden], h[:, model.n_mean_hidden :]
    quad = 0.5 * (x**2).sum(1)[:, None]
    mean = -(x @ w) @ hm.T - (hm @ bm)[None, :]
    cov = 0.5 * ((x @ r) ** 2) @ hc.T - (hc @ bc)[None, :]
    return quad + mean + cov


def ref_conditional(model: MeanCovarianceRBM, h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of ``p(x | h)`` by matrix inversion, ``(D,)``, ``(D, D)``."""
    w, _, r, _ = params(model)
    hm, hc = h[: model.n_mean_hidden], h[model.n_mean_hidden :]
    cov = np.linalg.inv(np.eye(model.n_visible) + (r * hc) @ r.T)
    return cov @ (w @ hm), cov


def ref_moments(model: MeanCovarianceRBM) -> tuple[np.ndarray, np.ndarray]:
    """Exact mean and covariance of ``p(x) = Σ_h p(h) N(μ_h, C_h)``, ``p(h)`` by quadrature."""
    h_all = binary_states(model.n_hidden)
    log_ph = logsumexp(-ref_energy(model, GRID, h_all), axis=0)
    ph = np.exp(log_ph - logsumexp(log_ph))
    mean, second = np.zeros(model.n_visible), np.zeros((model.n_visible,) * 2)
    for p, h in zip(ph, h_all, strict=True):
        mu, c = ref_conditional(model, h)
        mean += p * mu
        second += p * (c + np.outer(mu, mu))
    return mean, second - np.outer(mean, mean)


# -- energies -------------------------------------------------------------------------------
def test_energy_matches_reference() -> None:
    model = make(3, 2, 3, seed=1)
    g = torch.Generator().manual_seed(2)
    x = 1.5 * torch.randn(6, 3, generator=g, dtype=DTYPE)
    h = torch.as_tensor(binary_states(5)[[0, 3, 7, 12, 25, 31]])
    got = model.energy(x, h).detach().numpy()
    np.testing.assert_allclose(got, np.diag(ref_energy(model, x.numpy(), h.numpy())), rtol=1e-12)


def test_free_energy_sums_out_hiddens() -> None:
    model = make(3, 2, 3, seed=3)
    x = 1.5 * torch.randn(9, 3, generator=torch.Generator().manual_seed(4), dtype=DTYPE)
    expected = -logsumexp(-ref_energy(model, x.numpy(), binary_states(5)), axis=1)
    np.testing.assert_allclose(model.free_energy(x).detach().numpy(), expected, rtol=1e-12)


def test_hidden_free_energy_integrates_out_visibles() -> None:
    model = make(seed=5)
    h_all = binary_states(model.n_hidden)
    got = model.hidden_free_energy(torch.as_tensor(h_all)).detach().numpy()
    numeric = logsumexp(-ref_energy(model, GRID, h_all), axis=0) + LOG_CELL
    np.testing.assert_allclose(-got, numeric, rtol=0, atol=1e-9)


def test_free_energy_gradient_is_autograd() -> None:
    model = make(4, 3, 5, seed=6)
    x = 2.0 * torch.randn(7, 4, generator=torch.Generator().manual_seed(7), dtype=DTYPE)
    x.requires_grad_(True)
    (auto,) = torch.autograd.grad(model.free_energy(x).sum(), x)
    analytic = MC.mc_free_energy_grad(x.detach(), *model._params())
    torch.testing.assert_close(analytic.detach(), auto, rtol=1e-12, atol=1e-12)


# -- conditionals -----------------------------------------------------------------------------
def test_hidden_probs_match_enumeration() -> None:
    model = make(3, 2, 3, seed=8)
    x = 1.5 * torch.randn(7, 3, generator=torch.Generator().manual_seed(9), dtype=DTYPE)
    h_all = binary_states(5)
    log_joint = -ref_energy(model, x.numpy(), h_all)
    post = np.exp(log_joint - logsumexp(log_joint, axis=1, keepdims=True))
    np.testing.assert_allclose(model.hidden_probs(x).detach().numpy(), post @ h_all, rtol=1e-12)
    w, bm, r, bc = params(model)
    closed = np.concatenate(
        [expit(bm + x.numpy() @ w), expit(bc - 0.5 * (x.numpy() @ r) ** 2)], axis=1
    )
    np.testing.assert_allclose(model.hidden_probs(x).detach().numpy(), closed, rtol=1e-13)


def test_visible_params_is_conditional_mean_by_quadrature() -> None:
    model = make(seed=10)
    h_all = binary_states(model.n_hidden)
    got = model.visible_params(torch.as_tensor(h_all)).detach().numpy()
    log_p = -ref_energy(model, GRID, h_all)  # (N, K)
    p = np.exp(log_p - logsumexp(log_p, axis=0))
    np.testing.assert_allclose(got, p.T @ GRID, rtol=0, atol=1e-9)


# -- sampling -----------------------------------------------------------------------------------
@pytest.mark.parametrize("sampler", ["exact", "hmc"])
def test_gibbs_step_deterministic_given_noise(sampler: str) -> None:
    model = make(3, 2, 3, seed=11, sampler=sampler, hmc_steps=5, hmc_step_size=0.2)
    v = torch.randn(12, 3, generator=torch.Generator().manual_seed(12), dtype=DTYPE)
    noise = model.sample_noise(12, torch.Generator().manual_seed(13))
    assert {k: tuple(n.shape) for k, n in noise.items()} == (
        {"hidden": (12, 5), "visible": (12, 3)}
        if sampler == "exact"
        else {"momentum": (12, 3), "accept": (12, 1)}
    )
    a = model.gibbs_step(v, noise)
    b = model.gibbs_step(v.clone(), {k: n.clone() for k, n in noise.items()})
    for x, y in zip(a, b, strict=True):
        assert torch.equal(x, y)
    other = model.gibbs_step(v, model.sample_noise(12, torch.Generator().manual_seed(14)))
    assert not torch.equal(a.v, other.v)


def test_exact_gibbs_step_samples_the_conditional() -> None:
    """``h = [u < p(h|v)]`` and ``v' = μ(h) + L⁻ᵀz``: ``(v'-μ)ᵀ Λ (v'-μ) = |z|²``."""
    model = make(3, 2, 3, seed=15)
    v = torch.randn(10, 3, generator=torch.Generator().manual_seed(16), dtype=DTYPE)
    noise = model.sample_noise(10, torch.Generator().manual_seed(17))
    with torch.no_grad():
        step = model.gibbs_step(v, noise)
    assert torch.equal(step.h, (noise["hidden"] < model.hidden_probs(v)).to(DTYPE))
    torch.testing.assert_close(step.v_mean, model.visible_params(step.h), rtol=0, atol=1e-14)
    for vi, mi, hi, zi in zip(step.v, step.v_mean, step.h, noise["visible"], strict=True):
        mu, cov = ref_conditional(model, hi.numpy())
        np.testing.assert_allclose(mi.numpy(), mu, rtol=1e-12, atol=1e-12)
        d = (vi - mi).numpy()
        assert d @ np.linalg.solve(cov, d) == pytest.approx(float(zi @ zi), rel=1e-10)


def test_hmc_step_is_leapfrog_plus_metropolis() -> None:
    model = make(3, 2, 3, seed=18, sampler="hmc", hmc_steps=4, hmc_step_size=0.3)
    w, bm, r, bc = params(model)

    def f(x):
        return (
            0.5 * (x**2).sum()
            - np.logaddexp(0, bm + x @ w).sum()
            - np.logaddexp(0, bc - 0.5 * (x @ r) ** 2).sum()
        )

    def grad(x, eps=1e-6):
        return np.array([(f(x + eps * e) - f(x - eps * e)) / (2 * eps) for e in np.eye(3)])

    v = torch.randn(6, 3, generator=torch.Generator().manual_seed(19), dtype=DTYPE)
    p = torch.randn(6, 3, generator=torch.Generator().manual_seed(20), dtype=DTYPE)
    u = torch.rand(6, 1, generator=torch.Generator().manual_seed(21), dtype=DTYPE)
    with torch.no_grad():
        got = model.gibbs_step(v, {"momentum": p, "accept": u})
    for i in range(6):
        q, mom = v[i].numpy(), p[i].numpy()
        h0 = f(q) + 0.5 * mom @ mom
        for _ in range(4):  # plain leapfrog, written out
            mom = mom - 0.15 * grad(q)
            q = q + 0.3 * mom
            mom = mom - 0.15 * grad(q)
        accept = u[i, 0].item() < math.exp(min(0.0, h0 - f(q) - 0.5 * mom @ mom))
        np.testing.assert_allclose(
            got.v[i].numpy(), q if accept else v[i].numpy(), rtol=0, atol=1e-7
        )
    torch.testing.assert_close(got.h, model.hidden_probs(v))
    assert torch.equal(got.v_mean, got.v)
    # u = 0 always accepts; a step size that blows the energy up is always rejected
    always = model.gibbs_step(v, {"momentum": p, "accept": torch.zeros(6, 1, dtype=DTYPE)})
    assert not torch.equal(always.v, v)
    model.hmc_step_size = 1e3
    never = model.gibbs_step(v, {"momentum": p, "accept": torch.full((6, 1), 1e-12)})
    assert torch.equal(never.v, v)


@pytest.mark.parametrize("sampler", ["exact", "hmc"])
def test_samplers_reach_the_model_moments(sampler: str) -> None:
    """Mean and covariance of many independent chains = the exact ones, within 5 standard errors."""
    model = make(seed=3, sampler=sampler, hmc_steps=10, hmc_step_size=0.25)
    mean, cov = ref_moments(model)
    g = torch.Generator().manual_seed(23)
    n = 8000
    with torch.no_grad():
        x = model.gibbs_chain(model.init_chains(n, g), k=40, generator=g).v.numpy()
    centred = x - x.mean(0)
    se_mean = x.std(0) / math.sqrt(n)
    np.testing.assert_allclose(x.mean(0), mean, rtol=0, atol=float(5 * se_mean.max()))
    prods = centred[:, :, None] * centred[:, None, :]  # (n, D, D)
    se_cov = prods.std(0) / math.sqrt(n)
    assert np.all(np.abs(prods.mean(0) - cov) < 5 * se_cov + 1e-12), (prods.mean(0), cov)
    # the moments are far from those of init_chains' N(0, I): the check is not vacuous
    assert np.abs(cov - np.eye(2)).max() > 20 * se_cov.max()


def test_init_chains_is_standard_normal() -> None:
    model = make(seed=24)
    a = model.init_chains(20_000, torch.Generator().manual_seed(25))
    b = model.init_chains(20_000, torch.Generator().manual_seed(25))
    assert torch.equal(a, b) and a.shape == (20_000, 2) and a.dtype == DTYPE
    torch.testing.assert_close(a.mean(0), torch.zeros(2, dtype=DTYPE), rtol=0, atol=0.04)
    torch.testing.assert_close(a.std(0), torch.ones(2, dtype=DTYPE), rtol=0.03, atol=0)


# -- partition function -------------------------------------------------------------------------
def test_exact_log_partition_quadrature_and_ais_agree() -> None:
    model = make(seed=26)
    exact = exact_log_partition(model)
    neg_f = -model.free_energy(torch.as_tensor(GRID)).detach().numpy()
    assert exact == pytest.approx(float(logsumexp(neg_f)) + LOG_CELL, abs=1e-8)
    assert abs(exact - 2 * 0.5 * math.log(2 * math.pi) - 4 * math.log(2)) > 1.0  # ≠ log Z₀
    for sampler, n_betas in (("exact", 1500), ("hmc", 500)):
        model.sampler = sampler
        model.hmc_steps, model.hmc_step_size = 5, 0.3
        ais = ais_log_partition(model, n_chains=200, n_betas=n_betas, seed=1)
        assert abs(ais.log_z - exact) < 0.1, (sampler, ais.log_z, exact)
        assert ais.log_z_low <= exact + 0.1 and exact - 0.1 <= ais.log_z_high


def test_annealing_path_end_points_and_advance() -> None:
    model = make(seed=27)
    path = model.annealing_path()
    x = torch.as_tensor(GRID)
    torch.testing.assert_close(
        path.log_f(x, 1.0), -model.free_energy(x).detach(), rtol=1e-12, atol=0
    )
    log_z0 = float(torch.logsumexp(path.log_f(x, 0.0), 0)) + LOG_CELL
    assert log_z0 == pytest.approx(path.log_z_base, abs=1e-8)
    assert path.log_z_base == pytest.approx(math.log(2 * math.pi) + 4 * math.log(2), rel=1e-14)
    # At β the path is the model with (βW, βbᵐ, √β R, βbᶜ).
    beta = 0.37
    scaled = make(seed=27)
    with torch.no_grad():
        for p, s in ((scaled.weight, beta), (scaled.mean_bias, beta), (scaled.cov_bias, beta)):
            p.mul_(s)
        scaled.filters.mul_(math.sqrt(beta))
    torch.testing.assert_close(path.log_f(x[:50], beta), -scaled.free_energy(x[:50]).detach())
    for sampler in ("exact", "hmc"):
        model.sampler = sampler
        path = model.annealing_path(torch.randn(20, 2, dtype=DTYPE))
        v = torch.randn(7, 2, generator=torch.Generator().manual_seed(28), dtype=DTYPE)
        for b0, b1 in [(0.0, 0.1), (0.37, 0.42), (0.99, 1.0)]:
            delta, v_next = path.advance(v, b0, b1, torch.Generator().manual_seed(9))
            torch.testing.assert_close(delta, path.log_f(v, b1) - path.log_f(v, b0))
            expected = path.transition(v, b1, torch.Generator().manual_seed(9))
            torch.testing.assert_close(v_next, expected, rtol=1e-12, atol=1e-12)


# -- interface behaviour --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_visible": 0}, "must be >= 1"),
        ({"n_mean_hidden": 0}, "must be >= 1"),
        ({"n_cov_hidden": 0}, "must be >= 1"),
        ({"sampler": "gibbs"}, "sampler must be one of"),
        ({"hmc_steps": 0}, "hmc_steps"),
        ({"hmc_step_size": 0.0}, "hmc_step_size"),
        ({"hmc_step_size": math.inf}, "hmc_step_size"),
        ({"init_std": -1.0}, "init_std"),
    ],
)
def test_bad_constructor_arguments(kwargs, match) -> None:
    args = {"n_visible": 4, "n_mean_hidden": 2, "n_cov_hidden": 3, **kwargs}
    with pytest.raises(ValueError, match=match):
        MeanCovarianceRBM(**args)


def test_bad_inputs_are_named() -> None:
    model = make(3, 2, 3)
    x = torch.zeros(4, 3, dtype=DTYPE)
    for call in (model.free_energy, model.hidden_probs):
        with pytest.raises(ValueError, match=r"MeanCovarianceRBM expects v of shape \(batch, 3\)"):
            call(torch.zeros(4, 4, dtype=DTYPE))
    for call in (model.hidden_free_energy, model.visible_params):
        with pytest.raises(ValueError, match=r"h of shape \(batch, 5\)"):
            call(torch.zeros(4, 4, dtype=DTYPE))
    with pytest.raises(ValueError, match=r"h of shape \(batch, 5\)"):
        model.energy(x, torch.zeros(4, 6, dtype=DTYPE))
    nan = x.clone()
    nan[2, 1] = math.nan
    with pytest.raises(ValueError, match=r"NaN or infinite values \(rows \[2\]"):
        model.init_from_data(nan)
    with pytest.raises(ValueError, match="base_data contains NaN"):
        model.annealing_path(nan)
    with pytest.raises(ValueError, match="needs noise"):
        model.gibbs_step(x, {"hidden": torch.zeros(4, 5, dtype=DTYPE)})
    with pytest.raises(ValueError, match="unconditional"):
        model.free_energy(x, torch.zeros(4, 2))
    with pytest.raises(ValueError, match="k must be >= 1"):
        model.gibbs_chain(x, k=0)


def test_pictures() -> None:
    model = make(4, 3, 5, seed=29, sampler="hmc", hmc_steps=3)
    pics = model.pictures(torch.Generator().manual_seed(0))
    assert set(pics) == {"cov_filters", "mean_filters", "samples"}
    # 5 filters of 2×2 in one row (16 columns), 1-pixel padding, 3× upscaling
    assert pics["cov_filters"].shape == (4 * 3, (5 * 3 + 1) * 3)
    assert pics["mean_filters"].shape == (4 * 3, (3 * 3 + 1) * 3)
    assert pics["samples"].shape == ((4 * 3 + 1) * 3, (16 * 3 + 1) * 3)
    assert all(p.dtype == np.uint8 and p.max() > p.min() for p in pics.values())
    again = model.pictures(torch.Generator().manual_seed(0))
    assert all(np.array_equal(pics[k], again[k]) for k in pics)
    other = model.pictures(torch.Generator().manual_seed(1))
    assert not np.array_equal(pics["samples"], other["samples"])
    assert make(3, 2, 2).pictures() == {}  # D = 3 is no square image


def test_spec_round_trip_and_checkpoint(tmp_path: Path) -> None:
    model = MeanCovarianceRBM(4, 3, 2, sampler="hmc", hmc_steps=3, hmc_step_size=0.05)
    rebuilt = model_from_spec(model_spec(model))
    assert type(rebuilt) is MeanCovarianceRBM and rebuilt.init_args() == model.init_args()
    # A few CD steps through the one training system, then load_model from the checkpoint.
    rng = np.random.default_rng(0)
    data = ArrayDataModule.from_arrays(
        *(rng.standard_normal((n, 4)) for n in (200, 20, 20)), visible_kind="gaussian"
    )
    torch.manual_seed(0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    trainer = L.Trainer(
        accelerator="cpu",
        max_epochs=1,
        limit_train_batches=2,
        limit_val_batches=0,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=str(tmp_path),
        callbacks=[SavePictures()],
    )
    trainer.fit(RBMSystem(model, eval_log_z="none"), data)
    ckpt = tmp_path / "model.ckpt"
    trainer.save_checkpoint(ckpt)
    loaded = load_model(ckpt)
    assert isinstance(loaded, MeanCovarianceRBM) and loaded.sampler == "hmc"
    for k, v in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v)
        assert not torch.equal(before[k], v), f"{k} did not train"
    assert {p.name for p in tmp_path.rglob("*.png")} == {
        "cov_filters.png",
        "mean_filters.png",
        "samples.png",
    }
