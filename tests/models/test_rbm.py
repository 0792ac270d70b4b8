"""Property tests of :class:`BernoulliRBM` and :class:`GaussianBernoulliRBM`.

One test family (:class:`_RBMFamily`) runs on both models, torchaudio style; each subclass
supplies an independent numpy reference of its energy and of the marginal over the visibles.
Everything is float64 and small enough to enumerate.
"""

from __future__ import annotations

import itertools
import math
from typing import Any, ClassVar

import numpy as np
import pytest
import torch
from scipy import integrate
from scipy.special import expit, logsumexp
from torch import Tensor

from seqboltz.models import BernoulliRBM, EnergyModel, GaussianBernoulliRBM

DTYPE = torch.float64


def binary_states(n_units: int) -> np.ndarray:
    """All ``2**n_units`` binary vectors, first unit most significant, ``(2**n, n)``."""
    return np.array(list(itertools.product([0.0, 1.0], repeat=n_units)))


def numpy_params(model: EnergyModel) -> dict[str, np.ndarray]:
    return {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}


@pytest.fixture
def one_thread():
    """Many tiny matmuls: on a busy 2-core machine intra-op threads only spin. Restored after."""
    n_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n_threads)


class _RBMFamily:
    """Tests shared by every unconditional RBM; subclasses fill in the reference maths."""

    model_cls: ClassVar[type[EnergyModel]]
    n_visible: ClassVar[int] = 3
    n_hidden: ClassVar[int] = 4

    # -- what each subclass provides -------------------------------------------------------
    def make(self, n_visible: int | None = None, n_hidden: int | None = None, seed: int = 0):
        """A float64 model with random, non-trivial parameters."""
        raise NotImplementedError

    def visible_batch(self, n: int, n_visible: int | None = None, seed: int = 0) -> Tensor:
        raise NotImplementedError

    def ref_energy(self, model: EnergyModel, v: np.ndarray, h: np.ndarray) -> np.ndarray:
        """``E(v, h)`` for all pairs of rows, ``(N, M)``."""
        raise NotImplementedError

    def ref_neg_hidden_free_energy(self, model: EnergyModel, h: np.ndarray) -> np.ndarray:
        """``log Σ_v exp(-E(v, h))`` (or ``log ∫ … dv``), ``(M,)``, computed numerically."""
        raise NotImplementedError

    def ref_visible_params(self, model: EnergyModel, h: np.ndarray) -> np.ndarray:
        """Mean of ``p(v | h)`` computed numerically, ``(M, D)``."""
        raise NotImplementedError

    def ref_free_energy_grads(self, model: EnergyModel, v: np.ndarray) -> dict[str, np.ndarray]:
        """Hand-derived batch mean of ``∂F(v)/∂θ`` per parameter name."""
        raise NotImplementedError

    def check_stationary(self, model: EnergyModel, samples: Tensor) -> None:
        """Assert that ``samples`` come from the model's exact ``p(v)``."""
        raise NotImplementedError

    # -- energies ---------------------------------------------------------------------------
    def test_energy_matches_reference(self) -> None:
        model = self.make(seed=1)
        v = self.visible_batch(5, seed=2)
        h = torch.as_tensor(binary_states(self.n_hidden)[[1, 5, 6, 10, 15]])
        got = model.energy(v, h).detach().numpy()
        full = self.ref_energy(model, v.numpy(), h.numpy())
        np.testing.assert_allclose(got, np.diag(full), rtol=1e-12, atol=1e-12)

    def test_free_energy_sums_out_hiddens(self) -> None:
        model = self.make(seed=3)
        v = self.visible_batch(8, seed=4)
        expected = -logsumexp(
            -self.ref_energy(model, v.numpy(), binary_states(self.n_hidden)), axis=1
        )
        np.testing.assert_allclose(
            model.free_energy(v).detach().numpy(), expected, rtol=1e-12, atol=1e-11
        )

    def test_hidden_free_energy_marginalises_visibles(self) -> None:
        model = self.make(seed=5)
        h_all = binary_states(self.n_hidden)
        got = model.hidden_free_energy(torch.as_tensor(h_all)).detach().numpy()
        np.testing.assert_allclose(
            -got, self.ref_neg_hidden_free_energy(model, h_all), rtol=1e-10, atol=1e-9
        )

    # -- conditionals -----------------------------------------------------------------------
    def test_hidden_probs_match_enumeration(self) -> None:
        model = self.make(seed=6)
        v = self.visible_batch(7, seed=7)
        h_all = binary_states(self.n_hidden)
        log_joint = -self.ref_energy(model, v.numpy(), h_all)
        post = np.exp(log_joint - logsumexp(log_joint, axis=1, keepdims=True))
        np.testing.assert_allclose(
            model.hidden_probs(v).detach().numpy(), post @ h_all, rtol=1e-12, atol=1e-13
        )

    def test_visible_params_match_conditional(self) -> None:
        model = self.make(seed=8)
        h_all = binary_states(self.n_hidden)
        np.testing.assert_allclose(
            model.visible_params(torch.as_tensor(h_all)).detach().numpy(),
            self.ref_visible_params(model, h_all),
            rtol=1e-9,
            atol=1e-9,
        )

    def test_reconstruct_is_mean_field(self) -> None:
        model = self.make(seed=9)
        v = self.visible_batch(4, seed=10)
        p_h = model.hidden_probs(v)
        torch.testing.assert_close(model.reconstruct(v), model.visible_params(p_h))

    # -- gradients --------------------------------------------------------------------------
    def test_cd_gradient_equals_analytic(self) -> None:
        """Autograd of ``mean F(v_pos) - mean F(v_neg.detach())`` = the hand-derived gradient."""
        model = self.make(seed=11)
        v_pos = self.visible_batch(9, seed=12)
        v_neg = model.gibbs_chain(v_pos, k=1, generator=torch.Generator().manual_seed(0)).v
        loss = model.free_energy(v_pos).mean() - model.free_energy(v_neg.detach()).mean()
        names = [n for n, p in model.named_parameters() if p.requires_grad]
        grads = torch.autograd.grad(loss, [dict(model.named_parameters())[n] for n in names])
        pos = self.ref_free_energy_grads(model, v_pos.numpy())
        neg = self.ref_free_energy_grads(model, v_neg.detach().numpy())
        assert sorted(names) == sorted(pos)
        for name, got in zip(names, grads, strict=True):
            np.testing.assert_allclose(
                got.numpy(), pos[name] - neg[name], rtol=1e-10, atol=1e-12, err_msg=name
            )

    # -- batching ---------------------------------------------------------------------------
    def test_batched_equals_item_by_item(self) -> None:
        model = self.make(seed=13)
        v = self.visible_batch(6, seed=14)
        h = torch.as_tensor(binary_states(self.n_hidden))[:6]
        noise = model.sample_noise(6, torch.Generator().manual_seed(1))
        batched = {
            "free_energy": model.free_energy(v),
            "hidden_probs": model.hidden_probs(v),
            "visible_params": model.visible_params(h),
            "energy": model.energy(v, h),
            "hidden_free_energy": model.hidden_free_energy(h),
            "gibbs": torch.cat(model.gibbs_step(v, noise), dim=1),
        }
        for i in range(6):
            one = slice(i, i + 1)
            single = {
                "free_energy": model.free_energy(v[one]),
                "hidden_probs": model.hidden_probs(v[one]),
                "visible_params": model.visible_params(h[one]),
                "energy": model.energy(v[one], h[one]),
                "hidden_free_energy": model.hidden_free_energy(h[one]),
                "gibbs": torch.cat(
                    model.gibbs_step(v[one], {k: n[one] for k, n in noise.items()}), dim=1
                ),
            }
            for key, value in single.items():
                torch.testing.assert_close(
                    batched[key][one], value, rtol=1e-13, atol=1e-13, msg=key
                )

    # -- sampling ---------------------------------------------------------------------------
    def test_noise_spec_matches_sample_noise(self) -> None:
        model = self.make(seed=15)
        spec = model.noise_spec()
        assert spec["hidden"].shape == (model.n_hidden,)
        assert spec["hidden"].kind == "uniform"
        assert spec["visible"].shape == (model.n_visible,)
        noise = model.sample_noise(50_000, torch.Generator().manual_seed(2))
        assert set(noise) == set(spec)
        for name, s in spec.items():
            x = noise[name]
            assert x.shape == (50_000, *s.shape)
            assert x.dtype == DTYPE
            if s.kind == "uniform":
                assert float(x.min()) >= 0.0
                assert float(x.max()) < 1.0
                assert float(x.mean()) == pytest.approx(0.5, abs=0.005)
            else:
                assert float(x.mean()) == pytest.approx(0.0, abs=0.01)
                assert float(x.std()) == pytest.approx(1.0, abs=0.01)

    def test_gibbs_step_deterministic_given_noise(self) -> None:
        model = self.make(seed=16)
        v = self.visible_batch(12, seed=17)
        noise = model.sample_noise(12, torch.Generator().manual_seed(3))
        a = model.gibbs_step(v, noise)
        b = model.gibbs_step(v.clone(), {k: n.clone() for k, n in noise.items()})
        for x, y in zip(a, b, strict=True):
            assert torch.equal(x, y)
        # The hidden sample is exactly u < p(h | v) and the visible parameters follow from h.
        assert torch.equal(a.h, (noise["hidden"] < model.hidden_probs(v)).to(DTYPE))
        torch.testing.assert_close(a.v_mean, model.visible_params(a.h), rtol=0, atol=0)

    def test_gibbs_chain_equals_manual_loop(self) -> None:
        model = self.make(seed=18)
        v0 = self.visible_batch(5, seed=19)
        got = model.gibbs_chain(v0, k=3, generator=torch.Generator().manual_seed(4))
        g = torch.Generator().manual_seed(4)
        v = v0
        for _ in range(3):
            step = model.gibbs_step(v, model.sample_noise(5, g))
            v = step.v
        for x, y in zip(got, step, strict=True):
            assert torch.equal(x, y)
        with pytest.raises(ValueError, match="k must be >= 1"):
            model.gibbs_chain(v0, k=0)

    @pytest.mark.usefixtures("one_thread")
    def test_gibbs_chain_reaches_exact_distribution(self) -> None:
        model = self.make(n_visible=self.n_visible, n_hidden=3, seed=20)
        g = torch.Generator().manual_seed(5)
        with torch.no_grad():
            v0 = model.init_chains(20_000, g)
            samples = model.gibbs_chain(v0, k=50, generator=g).v
        self.check_stationary(model, samples)

    def test_init_chains(self) -> None:
        model = self.make(seed=21)
        a = model.init_chains(40_000, torch.Generator().manual_seed(6))
        b = model.init_chains(40_000, torch.Generator().manual_seed(6))
        assert a.shape == (40_000, model.n_visible)
        assert a.dtype == DTYPE
        assert torch.equal(a, b)
        self.check_init_chains(model, a)

    def check_init_chains(self, model: EnergyModel, v: Tensor) -> None:
        raise NotImplementedError

    # -- interface behaviour -----------------------------------------------------------------
    @pytest.mark.parametrize(
        ("bad", "error", "match"),
        [
            (lambda d: torch.zeros(4, d + 1), ValueError, r"shape \(batch, {d}\); got \(4, {d1}\)"),
            (lambda d: torch.zeros(d), ValueError, r"shape \(batch, {d}\); got \({d},\)"),
            (lambda d: torch.zeros(2, 3, d), ValueError, r"shape \(batch, {d}\)"),
            (lambda d: torch.zeros(4, d, dtype=torch.int64), ValueError, "floating-point"),
            (
                lambda d: torch.zeros(4, d).index_fill(0, torch.tensor([2]), math.nan),
                ValueError,
                r"NaN or infinite values \(rows \[2\]",
            ),
            (lambda d: torch.full((4, d), math.inf), ValueError, "NaN or infinite"),
            (lambda d: np.zeros((4, d)), TypeError, "torch.Tensor"),
        ],
        ids=["wrong-width", "1-d", "3-d", "int", "nan", "inf", "numpy"],
    )
    def test_check_visible_errors(self, bad, error, match) -> None:
        model = self.make()
        d = model.n_visible
        with pytest.raises(error, match=match.format(d=d, d1=d + 1)):
            model.check_visible(bad(d))
        model.check_visible(self.visible_batch(3))  # valid input passes

    def test_error_messages_name_the_model(self) -> None:
        model = self.make()
        with pytest.raises(ValueError, match=self.model_cls.__name__):
            model.check_visible(torch.zeros(1, model.n_visible + 2))
        with pytest.raises(ValueError, match=rf"h of shape \(batch, {model.n_hidden}\)"):
            model.hidden_free_energy(torch.zeros(2, model.n_hidden + 1, dtype=DTYPE))

    @pytest.mark.parametrize(
        "call",
        [
            lambda m, v, h: m.energy(v, h, torch.zeros(2)),
            lambda m, v, h: m.free_energy(v, torch.zeros(2)),
            lambda m, v, h: m.hidden_free_energy(h, torch.zeros(2)),
            lambda m, v, h: m.hidden_probs(v, {"history": torch.zeros(2)}),
            lambda m, v, h: m.visible_params(h, torch.zeros(2)),
            lambda m, v, h: m.gibbs_step(v, m.sample_noise(2), torch.zeros(2)),
            lambda m, v, h: m.gibbs_chain(v, 1, None, torch.zeros(2)),
        ],
        ids=[
            "energy",
            "free_energy",
            "hidden_free_energy",
            "hidden_probs",
            "visible_params",
            "gibbs_step",
            "gibbs_chain",
        ],
    )
    def test_conditioning_rejected(self, call) -> None:
        model = self.make()
        v = self.visible_batch(2)
        h = torch.zeros(2, model.n_hidden, dtype=DTYPE)
        with pytest.raises(ValueError, match="unconditional"):
            call(model, v, h)

    @pytest.mark.parametrize(
        "kwargs",
        [
            {"n_visible": 3, "n_hidden": 0},
            {"n_visible": 0, "n_hidden": 3},
            {"n_visible": 3, "n_hidden": 3, "init_std": -0.1},
            {"n_visible": 3, "n_hidden": 3, "init_std": math.nan},
        ],
    )
    def test_invalid_constructor_args(self, kwargs) -> None:
        with pytest.raises(ValueError):
            self.model_cls(**kwargs)

    def test_parameter_roles_partition_parameters(self) -> None:
        model = self.make()
        roles = model.parameter_roles()
        listed = [id(p) for ps in roles.values() for p in ps]
        assert sorted(listed) == sorted(id(p) for p in model.parameters())
        assert [id(p) for p in roles["weights"]] == [id(model.weight)]
        assert {role for role, _ in model.named_parameter_roles()} == set(roles)

    def test_init_args_rebuild_same_architecture(self) -> None:
        model = self.make()
        clone = self.model_cls(**model.init_args()).double()
        clone.load_state_dict(model.state_dict())
        v = self.visible_batch(4)
        torch.testing.assert_close(clone.free_energy(v), model.free_energy(v), rtol=0, atol=0)
        assert clone.init_args() == model.init_args()

    def test_float32_agrees_with_float64(self) -> None:
        model = self.make(seed=22)
        v = self.visible_batch(16, seed=23)
        f64 = model.free_energy(v)
        f32 = model.float().free_energy(v.float())
        assert f32.dtype == torch.float32
        torch.testing.assert_close(f32.double(), f64, rtol=1e-5, atol=1e-4)

    # -- annealing path (AIS) ---------------------------------------------------------------
    def path_base_data(self, model: EnergyModel) -> Tensor:
        raise NotImplementedError

    def visible_quadrature(self, model: EnergyModel) -> tuple[Tensor, float]:
        """Points covering the visible space and ``log`` of each one's weight (cell volume)."""
        raise NotImplementedError

    def sample_grid(self, points: Tensor, log_p: Tensor, n: int, g: torch.Generator) -> Tensor:
        """``n`` samples of the density ``∝ exp(log_p)`` tabulated on ``points``."""
        idx = torch.multinomial(torch.softmax(log_p, 0), n, replacement=True, generator=g)
        return points[idx]

    def check_same_distribution(self, samples: Tensor, points: Tensor, log_p: Tensor) -> None:
        raise NotImplementedError

    @pytest.mark.parametrize("with_data", [False, True], ids=["no-data", "base-data"])
    def test_annealing_path_end_points(self, with_data: bool) -> None:
        """``f_1 = exp(-F)`` and ``Σ_v f_0(v) = Z_base`` (sum or integral over v)."""
        model = self.make(n_hidden=3, seed=25)
        path = model.annealing_path(self.path_base_data(model) if with_data else None)
        points, log_cell = self.visible_quadrature(model)
        torch.testing.assert_close(
            path.log_f(points, 1.0), -model.free_energy(points).detach(), rtol=1e-12, atol=1e-10
        )
        log_z0 = float(torch.logsumexp(path.log_f(points, 0.0), 0)) + log_cell
        assert log_z0 == pytest.approx(path.log_z_base, abs=1e-8)
        # And Σ_v f_1(v) is the model's log Z (hidden side summed out by the reference).
        log_z1 = float(torch.logsumexp(path.log_f(points, 1.0), 0)) + log_cell
        log_z_ref = logsumexp(self.ref_neg_hidden_free_energy(model, binary_states(3)))
        assert log_z1 == pytest.approx(log_z_ref, abs=1e-8)

    @pytest.mark.usefixtures("one_thread")
    @pytest.mark.parametrize("with_data", [False, True], ids=["no-data", "base-data"])
    def test_annealing_path_samples_and_transitions(self, with_data: bool) -> None:
        """``sample_base`` draws from ``f_0``; ``transition`` at β leaves ``f_β`` invariant."""
        model = self.make(n_hidden=3, seed=26)
        path = model.annealing_path(self.path_base_data(model) if with_data else None)
        points, _ = self.visible_quadrature(model)
        g = torch.Generator().manual_seed(8)
        n = 40_000
        self.check_same_distribution(path.sample_base(n, g), points, path.log_f(points, 0.0))
        for beta in (0.35, 0.8):
            log_p = path.log_f(points, beta)
            start = self.sample_grid(points, log_p, n, g)
            self.check_same_distribution(path.transition(start, beta, g), points, log_p)

    def test_annealing_path_advance_equals_log_f_and_transition(self) -> None:
        model = self.make(n_hidden=3, seed=27)
        for base in (None, self.path_base_data(model)):
            path = model.annealing_path(base)
            v = self.visible_batch(7, seed=28)
            for beta_prev, beta in [(0.0, 0.1), (0.37, 0.42), (0.99, 1.0)]:
                delta, v_next = path.advance(v, beta_prev, beta, torch.Generator().manual_seed(9))
                expected = path.log_f(v, beta) - path.log_f(v, beta_prev)
                torch.testing.assert_close(delta, expected, rtol=1e-12, atol=1e-12)
                torch.testing.assert_close(
                    v_next,
                    path.transition(v, beta, torch.Generator().manual_seed(9)),
                    rtol=1e-12,
                    atol=1e-12,
                )

    def test_public_methods_check_shapes(self) -> None:
        model = self.make()
        wrong = torch.zeros(2, model.n_visible + 1, dtype=DTYPE)
        for method in (model.free_energy, model.hidden_probs):
            with pytest.raises(ValueError, match=rf"shape \(batch, {model.n_visible}\)"):
                method(wrong)
        with pytest.raises(ValueError, match=rf"h of shape \(batch, {model.n_hidden}\)"):
            model.visible_params(torch.zeros(2, model.n_hidden + 1, dtype=DTYPE))


def _randomise(model: EnergyModel, seed: int, weight_std: float) -> EnergyModel:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        model.weight.copy_(torch.randn(model.weight.shape, generator=g, dtype=DTYPE) * weight_std)
        model.visible_bias.copy_(0.5 * torch.randn(model.n_visible, generator=g, dtype=DTYPE))
        model.hidden_bias.copy_(0.5 * torch.randn(model.n_hidden, generator=g, dtype=DTYPE))
        if isinstance(model, GaussianBernoulliRBM):
            model.log_sigma.uniform_(math.log(0.5), math.log(2.0), generator=g)
    return model


class TestBernoulliRBM(_RBMFamily):
    model_cls = BernoulliRBM

    def make(self, n_visible=None, n_hidden=None, seed=0):
        model = BernoulliRBM(n_visible or self.n_visible, n_hidden or self.n_hidden).double()
        return _randomise(model, seed, weight_std=1.0)

    def visible_batch(self, n, n_visible=None, seed=0):
        g = torch.Generator().manual_seed(seed)
        d = n_visible or self.n_visible
        grey = torch.rand(n - n // 2, d, generator=g, dtype=DTYPE)
        binary = (torch.rand(n // 2, d, generator=g, dtype=DTYPE) < 0.5).to(DTYPE)
        return torch.cat([binary, grey])

    def ref_energy(self, model, v, h):
        p = numpy_params(model)
        w, a, b = p["weight"], p["visible_bias"], p["hidden_bias"]
        return -(v @ a)[:, None] - (h @ b)[None, :] - v @ w @ h.T

    def ref_neg_hidden_free_energy(self, model, h):
        return logsumexp(-self.ref_energy(model, binary_states(model.n_visible), h), axis=0)

    def ref_visible_params(self, model, h):
        v_all = binary_states(model.n_visible)
        log_joint = -self.ref_energy(model, v_all, h).T
        return np.exp(log_joint - logsumexp(log_joint, axis=1, keepdims=True)) @ v_all

    def ref_free_energy_grads(self, model, v):
        p = numpy_params(model)
        ph = expit(p["hidden_bias"] + v @ p["weight"])
        return {
            "weight": -(v[:, :, None] * ph[:, None, :]).mean(0),
            "visible_bias": -v.mean(0),
            "hidden_bias": -ph.mean(0),
        }

    def check_stationary(self, model, samples):
        v_all = binary_states(model.n_visible)
        log_p = logsumexp(-self.ref_energy(model, v_all, binary_states(model.n_hidden)), axis=1)
        p_exact = np.exp(log_p - logsumexp(log_p))
        codes = (samples.numpy() @ 2 ** np.arange(model.n_visible - 1, -1, -1)).astype(int)
        p_chain = np.bincount(codes, minlength=len(v_all)) / len(codes)
        assert 0.5 * np.abs(p_chain - p_exact).sum() < 0.02

    def check_init_chains(self, model, v):
        assert set(v.unique().tolist()) <= {0.0, 1.0}
        expected = torch.sigmoid(model.visible_bias.detach())
        torch.testing.assert_close(v.mean(0), expected, rtol=0, atol=0.01)

    def path_base_data(self, model):
        g = torch.Generator().manual_seed(30)
        rates = torch.linspace(0.1, 0.9, model.n_visible, dtype=DTYPE)
        return (torch.rand(300, model.n_visible, generator=g, dtype=DTYPE) < rates).to(DTYPE)

    def visible_quadrature(self, model):
        return torch.as_tensor(binary_states(model.n_visible)), 0.0

    def check_same_distribution(self, samples, points, log_p):
        weights = 2 ** torch.arange(points.shape[1] - 1, -1, -1, dtype=DTYPE)
        codes = (samples @ weights).long()
        assert torch.equal((points @ weights).long(), torch.arange(len(points)))
        p_emp = torch.bincount(codes, minlength=len(points)).to(DTYPE) / len(samples)
        assert 0.5 * float((p_emp - torch.softmax(log_p, 0)).abs().sum()) < 0.015

    # -- Bernoulli-specific ------------------------------------------------------------------
    def test_init_from_data_sets_logit_of_mean(self) -> None:
        data = torch.tensor(
            [[0.0, 1.0, 0.5, 1.0], [0.0, 1.0, 0.25, 0.0], [0.0, 1.0, 1.0, 1.0]], dtype=DTYPE
        )
        model = BernoulliRBM(4, 2).double()
        model.init_from_data(data)
        p = np.clip(data.numpy().mean(0), 1e-3, 1 - 1e-3)
        np.testing.assert_allclose(
            model.visible_bias.detach().numpy(), np.log(p / (1 - p)), rtol=1e-12
        )
        # init_from_data validates its input.
        with pytest.raises(ValueError, match=r"\(batch, 4\)"):
            model.init_from_data(torch.zeros(3, 5, dtype=DTYPE))

    def test_from_sklearn_matches_sklearn(self) -> None:
        sklearn_rbm = pytest.importorskip("sklearn.neural_network")
        from sklearn.datasets import load_digits

        x = load_digits().data.astype(np.float64) / 16.0
        est = sklearn_rbm.BernoulliRBM(n_components=32, n_iter=3, batch_size=100, random_state=0)
        est.fit(x)
        model = BernoulliRBM.from_sklearn(est)
        assert (model.n_visible, model.n_hidden) == (64, 32)
        assert model.weight.dtype == torch.float64
        v = torch.as_tensor(x)
        np.testing.assert_allclose(
            model.hidden_probs(v).detach().numpy(), est.transform(x), rtol=0, atol=1e-6
        )
        np.testing.assert_allclose(
            model.free_energy(v).detach().numpy(), est._free_energy(x), rtol=0, atol=1e-6
        )
        # The fitted model is far from its initialisation: the check is not vacuous.
        assert float(model.weight.detach().abs().max()) > 0.1


class TestGaussianBernoulliRBM(_RBMFamily):
    model_cls = GaussianBernoulliRBM
    n_visible = 2

    def make(self, n_visible=None, n_hidden=None, seed=0, **kwargs: Any):
        model = GaussianBernoulliRBM(
            n_visible or self.n_visible, n_hidden or self.n_hidden, **kwargs
        ).double()
        return _randomise(model, seed, weight_std=0.7)

    def visible_batch(self, n, n_visible=None, seed=0):
        g = torch.Generator().manual_seed(seed)
        return 2.0 * torch.randn(n, n_visible or self.n_visible, generator=g, dtype=DTYPE)

    def ref_energy(self, model, v, h):
        p = numpy_params(model)
        w, a, b = p["weight"], p["visible_bias"], p["hidden_bias"]
        sigma = np.exp(p["log_sigma"])
        quad = 0.5 * (((v - a) / sigma) ** 2).sum(1)
        return quad[:, None] - (h @ b)[None, :] - (v / sigma) @ w @ h.T

    def _marginal_moments(self, model, h) -> tuple[float, np.ndarray, np.ndarray]:
        """``log ∫ exp(-E(v, h)) dv``, mean and std of v under it: 1-D quadratures per unit.

        Given h the energy separates over visible units, so the D-dimensional integral is the
        product of 1-D ones; the window is ±25 σ around the mode of each factor.
        """
        p = numpy_params(model)
        w, a, b = p["weight"], p["visible_bias"], p["hidden_bias"]
        sigma = np.exp(p["log_sigma"])
        log_z, means, stds = float(h @ b), [], []
        for i in range(model.n_visible):
            c = float((w[i] * h).sum())  # coupling of v_i: exp(v_i c / σ_i)

            def log_f(x, i=i, c=c):
                return -0.5 * ((x - a[i]) / sigma[i]) ** 2 + x * c / sigma[i]

            centre = a[i] + sigma[i] * c
            lo, hi = centre - 25 * sigma[i], centre + 25 * sigma[i]
            ref = log_f(centre)
            m = [
                integrate.quad(
                    lambda x, k=k, f=log_f, r=ref: x**k * math.exp(f(x) - r),
                    lo,
                    hi,
                    points=[centre],
                    epsabs=0,
                    epsrel=1e-10,
                    limit=200,
                )[0]
                for k in range(3)
            ]
            log_z += math.log(m[0]) + ref
            means.append(m[1] / m[0])
            stds.append(math.sqrt(m[2] / m[0] - (m[1] / m[0]) ** 2))
        return log_z, np.array(means), np.array(stds)

    def ref_neg_hidden_free_energy(self, model, h):
        return np.array([self._marginal_moments(model, row)[0] for row in h])

    def ref_visible_params(self, model, h):
        return np.stack([self._marginal_moments(model, row)[1] for row in h])

    def test_visible_sigma_matches_conditional(self) -> None:
        model = self.make(seed=24)
        for h in binary_states(self.n_hidden):
            std = self._marginal_moments(model, h)[2]
            np.testing.assert_allclose(model.sigma.detach().numpy(), std, rtol=1e-8)

    def ref_free_energy_grads(self, model, v):
        p = numpy_params(model)
        w, a, b = p["weight"], p["visible_bias"], p["hidden_bias"]
        sigma = np.exp(p["log_sigma"])
        ph = expit(b + (v / sigma) @ w)
        return {
            "weight": -((v / sigma)[:, :, None] * ph[:, None, :]).mean(0),
            "visible_bias": (-(v - a) / sigma**2).mean(0),
            "hidden_bias": -ph.mean(0),
            "log_sigma": (-((v - a) ** 2) / sigma**2 + (v / sigma) * (ph @ w.T)).mean(0),
        }

    def _mixture_moments(self, model) -> tuple[np.ndarray, np.ndarray]:
        """Exact mean and variance of ``p(v) = Σ_h p(h) N(a + σ W h, σ²)``."""
        h_all = binary_states(model.n_hidden)
        log_ph = self.ref_neg_hidden_free_energy(model, h_all)
        ph = np.exp(log_ph - logsumexp(log_ph))
        p = numpy_params(model)
        sigma = np.exp(p["log_sigma"])
        mu = p["visible_bias"] + sigma * (h_all @ p["weight"].T)  # (2**H, D)
        mean = ph @ mu
        var = sigma**2 + ph @ (mu - mean) ** 2
        return mean, var

    def check_stationary(self, model, samples):
        mean, var = self._mixture_moments(model)
        n = samples.shape[0]
        se = np.sqrt(var / n)
        np.testing.assert_allclose(samples.mean(0).numpy(), mean, rtol=0, atol=float(5 * se.max()))
        np.testing.assert_allclose(samples.var(0).numpy(), var, rtol=5 * math.sqrt(2 / n) * 2)

    def check_init_chains(self, model, v):
        torch.testing.assert_close(v.mean(0), model.visible_bias.detach(), rtol=0, atol=0.05)
        torch.testing.assert_close(v.std(0), model.sigma.detach(), rtol=0.02, atol=0)

    GRID_STEP: ClassVar[float] = 0.05

    def path_base_data(self, model):
        g = torch.Generator().manual_seed(31)
        return 0.5 + 1.5 * torch.randn(300, model.n_visible, generator=g, dtype=DTYPE)

    def visible_quadrature(self, model):
        # σ >= 0.5 and the base std ~1.5: a 0.05 grid over ±20 makes Riemann sums exact.
        axis = torch.arange(-20.0, 20.0, self.GRID_STEP, dtype=DTYPE)
        grid = torch.cartesian_prod(*[axis] * model.n_visible)
        return grid, model.n_visible * math.log(self.GRID_STEP)

    def sample_grid(self, points, log_p, n, g):
        jitter = (torch.rand(n, points.shape[1], generator=g, dtype=DTYPE) - 0.5) * self.GRID_STEP
        return super().sample_grid(points, log_p, n, g) + jitter

    def check_same_distribution(self, samples, points, log_p):
        p = torch.softmax(log_p, 0)[:, None]
        mean = (p * points).sum(0)
        var = (p * (points - mean) ** 2).sum(0)
        n = samples.shape[0]
        se = torch.sqrt(var / n)
        torch.testing.assert_close(samples.mean(0), mean, rtol=0, atol=float(5 * se.max()))
        # Grid sampling adds step²/12 of variance; far below the Monte Carlo error.
        torch.testing.assert_close(samples.var(0), var, rtol=5 * math.sqrt(2 / n) * 2, atol=0)

    # -- Gaussian-specific -------------------------------------------------------------------
    def test_constrain_clamps_log_sigma(self) -> None:
        model = GaussianBernoulliRBM(4, 2, min_sigma=0.1, max_sigma=3.0).double()
        raw = torch.tensor(
            [math.log(0.01), math.log(0.5), math.log(2.9), math.log(50.0)], dtype=DTYPE
        )
        with torch.no_grad():
            model.log_sigma.copy_(raw)
        model.constrain_()
        expected = np.clip(raw.numpy(), math.log(0.1), math.log(3.0))
        np.testing.assert_allclose(model.log_sigma.detach().numpy(), expected, rtol=1e-15)
        assert isinstance(model.log_sigma, torch.nn.Parameter)

    @pytest.mark.parametrize(
        "kwargs",
        [
            {"min_sigma": 2.0, "max_sigma": 1.0},
            {"min_sigma": 0.0},
            {"sigma_init": 20.0},
            {"sigma_init": 0.01},
            {"n_hidden": 0},
        ],
    )
    def test_invalid_sigma_args(self, kwargs) -> None:
        args = {"n_visible": 3, "n_hidden": 2, **kwargs}
        with pytest.raises(ValueError):
            GaussianBernoulliRBM(**args)

    def test_sigma_init_and_fixed_sigma(self) -> None:
        model = GaussianBernoulliRBM(3, 2, sigma_init=0.7, learn_sigma=False)
        torch.testing.assert_close(model.sigma, torch.full((3,), 0.7))
        assert "log_sigma" not in dict(model.named_parameters())
        assert "log_sigma" in dict(model.named_buffers())
        assert "scales" not in model.parameter_roles()
        learned = GaussianBernoulliRBM(3, 2)
        assert learned.parameter_roles()["scales"] == [learned.log_sigma]

    def test_init_from_data_sets_mean_and_log_std(self) -> None:
        g = torch.Generator().manual_seed(7)
        scales = torch.tensor([0.01, 0.5, 3.0, 40.0], dtype=DTYPE)  # two fall outside bounds
        data = 1.5 + scales * torch.randn(500, 4, generator=g, dtype=DTYPE)
        model = GaussianBernoulliRBM(4, 2, min_sigma=0.05, max_sigma=10.0).double()
        model.init_from_data(data)
        x = data.numpy()
        np.testing.assert_allclose(model.visible_bias.detach().numpy(), x.mean(0), rtol=1e-12)
        std = np.clip(x.std(0, ddof=1), 0.05, 10.0)
        np.testing.assert_allclose(model.log_sigma.detach().numpy(), np.log(std), rtol=1e-12)

        fixed = GaussianBernoulliRBM(4, 2, learn_sigma=False, sigma_init=0.5).double()
        fixed.init_from_data(data)
        np.testing.assert_allclose(fixed.visible_bias.detach().numpy(), x.mean(0), rtol=1e-12)
        # log σ was initialised in float32 before .double(): float32 accuracy.
        np.testing.assert_allclose(fixed.sigma.numpy(), 0.5, rtol=1e-7)

        explicit = GaussianBernoulliRBM(4, 2, sigma_init=0.5).double()  # learned, but set
        explicit.init_from_data(data)
        np.testing.assert_allclose(explicit.sigma.detach().numpy(), 0.5, rtol=1e-7)

        one_row = GaussianBernoulliRBM(4, 2).double()
        one_row.init_from_data(data[:1])  # the std of a single row is undefined: σ untouched
        np.testing.assert_allclose(one_row.sigma.detach().numpy(), 1.0, rtol=1e-15)
        np.testing.assert_allclose(one_row.visible_bias.detach().numpy(), x[0], rtol=1e-15)
