"""Property tests of :class:`ConditionalRBM` and :class:`FactoredConditionalRBM`.

One test family (:class:`_SequenceFamily`) runs on every conditional model; each subclass
supplies an independent numpy construction of what a conditioning fixes for one frame: the
dynamic biases ``â``, ``b̂`` and the (per-example, for the factored model) effective weight
matrix ``Ŵ``. Everything else — energies, free energies by enumeration, conditionals by
quadrature, gradients, Taylor's sampler — is written here from those, in float64.
"""

from __future__ import annotations

import copy
import math
from typing import Any, ClassVar

import numpy as np
import pytest
import torch
from scipy import integrate
from scipy.special import expit, logsumexp
from torch import Tensor

from seqboltz.models import (
    ConditionalRBM,
    FactoredConditionalRBM,
    SequenceRBM,
    model_from_spec,
    model_spec,
)
from seqboltz.noise import gibbs_uniforms, sequence_rng

DTYPE = torch.float64
COND_KEYS = ("history", "controls", "style")


def binary_states(n_units: int) -> np.ndarray:
    """All ``2**n_units`` binary vectors, first unit most significant, ``(2**n, n)``."""
    grid = np.arange(2**n_units)[:, None] >> np.arange(n_units - 1, -1, -1)[None, :]
    return (grid & 1).astype(np.float64)


def numpy_params(model: SequenceRBM) -> dict[str, np.ndarray]:
    return {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}


def to_numpy(cond: dict[str, Tensor]) -> dict[str, np.ndarray]:
    return {k: v.detach().numpy() for k, v in cond.items()}


def _fill_(model: SequenceRBM, seed: int, stds: dict[str, float], default: float) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=DTYPE) * stds.get(name, default))


class _SequenceFamily:
    """Tests shared by every conditional sequence model; subclasses fill in the reference."""

    model_cls: ClassVar[type[SequenceRBM]]
    n_visible: ClassVar[int] = 2
    n_hidden: ClassVar[int] = 4
    order: ClassVar[int] = 2
    n_controls: ClassVar[int] = 0
    n_style: ClassVar[int] = 0

    # -- what each subclass provides -------------------------------------------------------
    def make(self, seed: int = 0, n_hidden: int | None = None) -> SequenceRBM:
        """A float64 model with random, non-trivial parameters."""
        raise NotImplementedError

    def ref_frame(
        self, model: SequenceRBM, cond: dict[str, np.ndarray]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(â (B, D), b̂ (B, H), Ŵ (B, D, H))`` built independently from the parameters."""
        raise NotImplementedError

    # -- helpers ------------------------------------------------------------------------------
    def cond_batch(self, n: int, seed: int = 0, extra_frames: int = 0) -> dict[str, Tensor]:
        g = torch.Generator().manual_seed(1000 + seed)
        cond = {
            "history": torch.randn(
                n, self.order + extra_frames, self.n_visible, generator=g, dtype=DTYPE
            )
        }
        if self.n_controls:
            cond["controls"] = torch.randn(n, self.n_controls, generator=g, dtype=DTYPE)
        if self.n_style:
            cond["style"] = torch.randn(n, self.n_style, generator=g, dtype=DTYPE)
        return cond

    def visible_batch(self, n: int, seed: int = 0) -> Tensor:
        g = torch.Generator().manual_seed(2000 + seed)
        return 1.5 * torch.randn(n, self.n_visible, generator=g, dtype=DTYPE)

    def history_vector(self, history: np.ndarray) -> np.ndarray:
        """``x = (v_{t-1}, …, v_{t-n})`` concatenated, most recent first: ``(B, n·D)``."""
        return np.concatenate([history[:, k, :] for k in range(self.order)], axis=1)

    def ref_energy(self, model, v: np.ndarray, h: np.ndarray, cond) -> np.ndarray:
        """``E(v_b, h_m | cond_b)``, ``(B, M)``: ``½‖v - â‖² - b̂ᵀh - vᵀŴh``."""
        a_hat, b_hat, w = self.ref_frame(model, cond)
        quad = 0.5 * ((v - a_hat) ** 2).sum(1)
        return quad[:, None] - b_hat @ h.T - np.einsum("bi,bij,mj->bm", v, w, h)

    def ref_log_integral(self, a_hat: np.ndarray, m: np.ndarray) -> tuple[float, list, list]:
        """``log ∫ exp(-½‖v - â‖² + vᵀm) dv``, and the mean and std of ``v`` under it.

        Given ``h`` the energy separates over visible units: one 1-D quadrature per unit on a
        ±25 window around the mode.
        """
        log_z, means, stds = 0.0, [], []
        for i in range(len(a_hat)):

            def log_f(x, i=i):
                return -0.5 * (x - a_hat[i]) ** 2 + x * m[i]

            centre = a_hat[i] + m[i]
            ref = log_f(centre)
            moments = [
                integrate.quad(
                    lambda x, k=k, f=log_f, r=ref: x**k * math.exp(f(x) - r),
                    centre - 25,
                    centre + 25,
                    points=[centre],
                    epsabs=0,
                    epsrel=1e-11,
                    limit=200,
                )[0]
                for k in range(3)
            ]
            log_z += math.log(moments[0]) + ref
            mean = moments[1] / moments[0]
            means.append(mean)
            stds.append(math.sqrt(moments[2] / moments[0] - mean**2))
        return log_z, means, stds

    def generation_inputs(
        self, batch: int, n_frames: int, seed: int = 0
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """Seed frames ``(B, order + 1, D)`` and per-frame style/controls ``(B, T, ·)``."""
        g = torch.Generator().manual_seed(3000 + seed)
        frames = torch.randn(batch, self.order + 1, self.n_visible, generator=g, dtype=DTYPE)
        kwargs = {}
        if self.n_style:
            kwargs["style"] = torch.randn(batch, n_frames, self.n_style, generator=g, dtype=DTYPE)
        if self.n_controls:
            kwargs["controls"] = torch.randn(
                batch, n_frames, self.n_controls, generator=g, dtype=DTYPE
            )
        return frames, kwargs

    def ref_generate(
        self,
        model: SequenceRBM,
        seed_frames: np.ndarray,
        n_frames: int,
        gibbs_steps: int,
        seed: int,
        indices: list[int],
        per_frame: dict[str, np.ndarray],
    ) -> np.ndarray:
        """Taylor et al. (2007)'s sampler, one sequence and one frame at a time, in numpy.

        Per frame: ``v`` starts at the previous frame; ``k`` steps ``h = [u < σ(b̂ + vŴ)]``,
        ``v = â + Ŵh``; then a mean-field hidden step; the frame is ``â + Ŵ σ(b̂ + vŴ)``.
        """
        batch = seed_frames.shape[0]
        out = np.empty((batch, n_frames, self.n_visible))
        for n, index in enumerate(indices):
            u = gibbs_uniforms(sequence_rng(seed, index), n_frames, gibbs_steps, model.n_hidden)
            window = [seed_frames[n, -1 - j] for j in range(self.order)]  # t-1 first
            for t in range(n_frames):
                cond = {"history": np.stack(window)[None]}
                cond.update({k: x[n, t][None] for k, x in per_frame.items()})
                a_hat, b_hat, w = (x[0] for x in self.ref_frame(model, cond))
                v = window[0]
                for s in range(gibbs_steps):
                    h = (u[t, s] < expit(b_hat + v @ w)).astype(np.float64)
                    v = a_hat + w @ h
                v = a_hat + w @ expit(b_hat + v @ w)
                out[n, t] = v
                window = [v, *window[:-1]]
        return out

    # -- energies and free energies ---------------------------------------------------------
    def test_energy_matches_reference(self) -> None:
        model = self.make(seed=1)
        cond = self.cond_batch(6, seed=1)
        v = self.visible_batch(6, seed=1)
        h = torch.as_tensor(binary_states(self.n_hidden)[[0, 3, 5, 9, 14, 15]])
        full = self.ref_energy(model, v.numpy(), h.numpy(), to_numpy(cond))
        got = model.energy(v, h, cond).detach().numpy()
        np.testing.assert_allclose(got, np.diag(full), rtol=1e-12, atol=1e-12)

    def test_free_energy_sums_out_hiddens(self) -> None:
        model = self.make(seed=2)
        cond = self.cond_batch(8, seed=2)
        v = self.visible_batch(8, seed=2)
        energies = self.ref_energy(model, v.numpy(), binary_states(self.n_hidden), to_numpy(cond))
        expected = -logsumexp(-energies, axis=1)
        got = model.free_energy(v, cond).detach().numpy()
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-11)
        # The conditioning matters: another history gives other free energies.
        other = self.cond_batch(8, seed=99)
        assert not np.allclose(model.free_energy(v, other).detach().numpy(), got, atol=1e-3)

    def test_hidden_probs_match_enumeration(self) -> None:
        model = self.make(seed=3)
        cond = self.cond_batch(7, seed=3)
        v = self.visible_batch(7, seed=3)
        h_all = binary_states(self.n_hidden)
        log_joint = -self.ref_energy(model, v.numpy(), h_all, to_numpy(cond))
        post = np.exp(log_joint - logsumexp(log_joint, axis=1, keepdims=True))
        np.testing.assert_allclose(
            model.hidden_probs(v, cond).detach().numpy(), post @ h_all, rtol=1e-12, atol=1e-13
        )

    def test_visible_params_closed_form(self) -> None:
        """Mean of ``p(v | h, cond)`` is ``â + Ŵh`` (σ = 1) for every ``h``."""
        model = self.make(seed=4)
        h_all = binary_states(self.n_hidden)
        cond = self.cond_batch(len(h_all), seed=4)
        a_hat, _, w = self.ref_frame(model, to_numpy(cond))
        expected = a_hat + np.einsum("bij,bj->bi", w, h_all)
        got = model.visible_params(torch.as_tensor(h_all), cond).detach().numpy()
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(
            model.reconstruct(self.visible_batch(len(h_all)), cond),
            model.visible_params(model.hidden_probs(self.visible_batch(len(h_all)), cond), cond),
        )

    def test_visible_conditional_by_quadrature(self) -> None:
        """Numerical mean and std of ``exp(-E(v, h | cond))`` over ``v``: mean, and σ = 1."""
        model = self.make(seed=5)
        h_all = binary_states(self.n_hidden)
        cond = {k: x[:1].expand(len(h_all), *x.shape[1:]) for k, x in self.cond_batch(1).items()}
        a_hat, _, w = self.ref_frame(model, to_numpy(cond))
        got = model.visible_params(torch.as_tensor(h_all), cond).detach().numpy()
        for row, h in enumerate(h_all):
            _, means, stds = self.ref_log_integral(a_hat[row], w[row] @ h)
            np.testing.assert_allclose(got[row], means, rtol=1e-8, atol=1e-8)
            np.testing.assert_allclose(stds, 1.0, rtol=1e-8)

    def test_hidden_free_energy_integrates_visibles(self) -> None:
        model = self.make(seed=6)
        h_all = binary_states(self.n_hidden)
        cond = self.cond_batch(len(h_all), seed=6)
        a_hat, b_hat, w = self.ref_frame(model, to_numpy(cond))
        expected = [
            float(b_hat[r] @ h) + self.ref_log_integral(a_hat[r], w[r] @ h)[0]
            for r, h in enumerate(h_all)
        ]
        got = model.hidden_free_energy(torch.as_tensor(h_all), cond).detach().numpy()
        np.testing.assert_allclose(-got, expected, rtol=1e-10, atol=1e-9)

    def test_partition_function_both_ways(self) -> None:
        """``Σ_h exp(-F(h | c)) = ∫ exp(-F(v | c)) dv`` (a Riemann sum on a fine 2-D grid)."""
        assert self.n_visible == 2
        model = self.make(seed=7, n_hidden=3)
        h_all = torch.as_tensor(binary_states(3))
        for seed in range(2):
            one = self.cond_batch(1, seed=seed)
            a_hat, _, w = self.ref_frame(model, to_numpy(one))
            reach = float(np.abs(w[0]).sum(1).max())
            step = 0.1
            axes = [
                torch.arange(c - reach - 12, c + reach + 12, step, dtype=DTYPE) for c in a_hat[0]
            ]
            grid = torch.cartesian_prod(*axes)
            cond = {k: x.expand(len(grid), *x.shape[1:]) for k, x in one.items()}
            with torch.no_grad():
                log_z_v = torch.logsumexp(-model.free_energy(grid, cond), 0) + 2 * math.log(step)
                cond_h = {k: x.expand(len(h_all), *x.shape[1:]) for k, x in one.items()}
                log_z_h = torch.logsumexp(-model.hidden_free_energy(h_all, cond_h), 0)
            assert float(log_z_v) == pytest.approx(float(log_z_h), abs=1e-9)

    def test_batched_equals_item_by_item(self) -> None:
        model = self.make(seed=8)
        cond = self.cond_batch(5, seed=8)
        v = self.visible_batch(5, seed=8)
        h = torch.as_tensor(binary_states(self.n_hidden)[[1, 4, 7, 10, 13]])
        noise = model.sample_noise(5, torch.Generator().manual_seed(8))

        def everything(sl: slice) -> dict[str, Tensor]:
            c = {k: x[sl] for k, x in cond.items()}
            return {
                "free_energy": model.free_energy(v[sl], c),
                "energy": model.energy(v[sl], h[sl], c),
                "hidden_free_energy": model.hidden_free_energy(h[sl], c),
                "hidden_probs": model.hidden_probs(v[sl], c),
                "visible_params": model.visible_params(h[sl], c),
                "gibbs": torch.cat(
                    model.gibbs_step(v[sl], {k: n[sl] for k, n in noise.items()}, c), 1
                ),
            }

        batched = everything(slice(None))
        for i in range(5):
            for key, value in everything(slice(i, i + 1)).items():
                torch.testing.assert_close(
                    batched[key][i : i + 1], value, rtol=1e-13, atol=1e-13, msg=key
                )

    # -- gradients --------------------------------------------------------------------------
    def test_free_energy_gradcheck(self) -> None:
        """Autograd of ``F(v | cond)`` w.r.t. every parameter, ``v`` and the conditioning."""
        model = self.make(seed=9, n_hidden=3)
        cond = {k: x.clone().requires_grad_() for k, x in self.cond_batch(3, seed=9).items()}
        keys = sorted(cond)
        v = self.visible_batch(3, seed=9).requires_grad_()
        params = list(model.parameters())

        def f(v: Tensor, *rest: Tensor) -> Tensor:
            # The parameters are passed as inputs so that gradcheck perturbs them in place.
            return model.free_energy(v, dict(zip(keys, rest[: len(keys)], strict=True)))

        assert torch.autograd.gradcheck(f, (v, *(cond[k] for k in keys), *params))

    # -- sampling ---------------------------------------------------------------------------
    def test_noise_spec(self) -> None:
        model = self.make(seed=10)
        spec = model.noise_spec()
        assert (spec["hidden"].shape, spec["hidden"].kind) == ((self.n_hidden,), "uniform")
        assert (spec["visible"].shape, spec["visible"].kind) == ((self.n_visible,), "normal")

    def test_gibbs_step_given_noise(self) -> None:
        model = self.make(seed=11)
        cond = self.cond_batch(40, seed=11)
        v = self.visible_batch(40, seed=11)
        noise = model.sample_noise(40, torch.Generator().manual_seed(11))
        a = model.gibbs_step(v, noise, cond)
        b = model.gibbs_step(v.clone(), {k: n.clone() for k, n in noise.items()}, cond)
        for x, y in zip(a, b, strict=True):
            assert torch.equal(x, y)

        a_hat, b_hat, w = self.ref_frame(model, to_numpy(cond))
        p = expit(b_hat + np.einsum("bi,bij->bj", v.numpy(), w))
        u = noise["hidden"].numpy()
        assert np.abs(u - p).min() > 1e-9  # no tie: the comparison below is exact
        np.testing.assert_array_equal(a.h.numpy(), (u < p).astype(np.float64))
        assert 0 < a.h.sum() < a.h.numel()  # both states occur
        mean = a_hat + np.einsum("bij,bj->bi", w, a.h.numpy())
        np.testing.assert_allclose(a.v_mean.detach().numpy(), mean, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(a.v, a.v_mean + noise["visible"], rtol=0, atol=0)  # σ = 1

    def test_gibbs_chain_takes_cond(self) -> None:
        model = self.make(seed=12)
        cond = self.cond_batch(4, seed=12)
        v0 = self.visible_batch(4, seed=12)
        got = model.gibbs_chain(v0, k=3, generator=torch.Generator().manual_seed(12), cond=cond)
        g = torch.Generator().manual_seed(12)
        v = v0
        for _ in range(3):
            step = model.gibbs_step(v, model.sample_noise(4, g), cond)
            v = step.v
        for x, y in zip(got, step, strict=True):
            assert torch.equal(x, y)

    # -- conditioning validation --------------------------------------------------------------
    METHODS: ClassVar[dict[str, Any]] = {
        "energy": lambda m, v, h, c: m.energy(v, h, c),
        "free_energy": lambda m, v, h, c: m.free_energy(v, c),
        "hidden_free_energy": lambda m, v, h, c: m.hidden_free_energy(h, c),
        "hidden_probs": lambda m, v, h, c: m.hidden_probs(v, c),
        "visible_params": lambda m, v, h, c: m.visible_params(h, c),
        "gibbs_step": lambda m, v, h, c: m.gibbs_step(v, m.sample_noise(len(v)), c),
    }

    def bad_cond(self, model, cond, match: str, error: type[Exception] = ValueError) -> None:
        """Every public method rejects ``cond`` with ``error`` matching ``match``."""
        first = cond if isinstance(cond, Tensor) else next(iter(cond.values()), None)
        v = self.visible_batch(3 if first is None else len(first))
        h = torch.zeros(len(v), model.n_hidden, dtype=DTYPE)
        for name, call in self.METHODS.items():
            with pytest.raises(error, match=match):
                call(model, v, h, cond)
                pytest.fail(f"{name} accepted the conditioning")

    def test_missing_cond(self) -> None:
        model = self.make()
        v = self.visible_batch(3)
        h = torch.zeros(3, model.n_hidden, dtype=DTYPE)
        for call in self.METHODS.values():
            with pytest.raises(ValueError, match=r"is conditional: pass cond=\{'history'"):
                call(model, v, h, None)

    def test_cond_without_history(self) -> None:
        cond = self.cond_batch(3)
        del cond["history"]
        self.bad_cond(self.make(), cond, "no 'history'")

    def test_unknown_cond_keys(self) -> None:
        cond = {**self.cond_batch(3), "labels": torch.zeros(3, 2, dtype=DTYPE)}
        self.bad_cond(self.make(), cond, r"unknown conditioning keys \['labels'\]")

    @pytest.mark.parametrize(
        "shape",
        [lambda o, d: (3, o, d + 1), lambda o, d: (3, o * d), lambda o, d: (3, o, d, 1)],
        ids=["wide", "flat", "4-d"],
    )
    def test_history_of_wrong_shape(self, shape) -> None:
        cond = self.cond_batch(3)
        cond["history"] = torch.zeros(*shape(self.order, self.n_visible), dtype=DTYPE)
        match = rf"history must have shape \(batch, {self.order}, {self.n_visible}\); got"
        self.bad_cond(self.make(), cond, match)

    def test_history_shorter_than_order(self) -> None:
        cond = self.cond_batch(3)
        cond["history"] = cond["history"][:, : self.order - 1]
        self.bad_cond(self.make(), cond, rf"1 frames but the model's order is {self.order}")

    def test_longer_history_uses_most_recent_frames(self) -> None:
        """Frames beyond ``order`` (index ≥ order, the oldest) are ignored."""
        model = self.make(seed=13)
        cond = self.cond_batch(4, seed=13, extra_frames=2)
        v = self.visible_batch(4, seed=13)
        short = {**cond, "history": cond["history"][:, : self.order].clone()}
        torch.testing.assert_close(model.free_energy(v, cond), model.free_energy(v, short))
        a_hat, _, _ = self.ref_frame(model, to_numpy(cond))
        h = torch.zeros(4, model.n_hidden, dtype=DTYPE)
        np.testing.assert_allclose(
            model.visible_params(h, cond).detach().numpy(), a_hat, rtol=1e-12, atol=1e-12
        )

    def test_controls_validation(self) -> None:
        model = self.make()
        cond = self.cond_batch(3)
        if self.n_controls == 0:
            cond["controls"] = torch.zeros(3, 2, dtype=DTYPE)
            self.bad_cond(model, cond, rf"{self.model_cls.__name__} takes no controls")
            return
        bad = {**cond, "controls": torch.zeros(3, self.n_controls + 1, dtype=DTYPE)}
        self.bad_cond(model, bad, rf"controls must have shape \(3, {self.n_controls}\); got")
        del cond["controls"]
        self.bad_cond(model, cond, rf"needs controls of shape \(batch, {self.n_controls}\)")

    @pytest.mark.parametrize(
        ("method", "shape"),
        [
            ("free_energy", lambda b, d, h: (b, d + 1)),
            ("hidden_probs", lambda b, d, h: (b, d + 1)),
            ("free_energy", lambda b, d, h: (d,)),
            ("free_energy", lambda b, d, h: (1, d)),
            ("visible_params", lambda b, d, h: (b, h + 1)),
            ("hidden_free_energy", lambda b, d, h: (b, h + 1)),
        ],
        ids=["v-wide", "v-wide-probs", "v-1d", "v-batch-1", "h-wide", "h-wide-hfe"],
    )
    def test_public_methods_check_shapes(self, method: str, shape) -> None:
        """As for the unconditional models: ``ValueError`` naming the expected shape."""
        model = self.make()
        cond = self.cond_batch(3)
        x = torch.zeros(*shape(3, self.n_visible, self.n_hidden), dtype=DTYPE)
        size = self.n_hidden if method in ("visible_params", "hidden_free_energy") else None
        expected = rf"\(batch, {size or self.n_visible}\)"
        with pytest.raises(ValueError, match=expected):
            getattr(model, method)(x, cond)

    def test_annealing_path_refused(self) -> None:
        with pytest.raises(NotImplementedError, match="depends on the history"):
            self.make().annealing_path()

    # -- generation ---------------------------------------------------------------------------
    def test_generate_matches_reference_sampler(self) -> None:
        """``generate`` is Taylor's sampler with the noise of ``sequence_rng(seed, i)``."""
        model = self.make(seed=14)
        n_frames, steps, seed, indices = 5, 4, 123, [4, 0, 9]
        frames, kwargs = self.generation_inputs(3, n_frames, seed=14)
        got = model.generate(
            frames, n_frames, gibbs_steps=steps, seed=seed, sequence_indices=indices, **kwargs
        )
        assert got.shape == (3, n_frames, self.n_visible)
        assert got.dtype == DTYPE
        expected = self.ref_generate(
            model, frames.numpy(), n_frames, steps, seed, indices, to_numpy(kwargs)
        )
        np.testing.assert_allclose(got.numpy(), expected, rtol=1e-10, atol=1e-10)

    def test_generate_shape_and_2d_seed(self) -> None:
        model = self.make(seed=15)
        frames, kwargs = self.generation_inputs(2, 4, seed=15)
        batched = model.generate(frames, 4, gibbs_steps=3, seed=5, **kwargs)
        assert batched.shape == (2, 4, self.n_visible)
        assert torch.isfinite(batched).all()
        kw0 = {k: x[:1] for k, x in kwargs.items()}
        single = model.generate(frames[0], 4, gibbs_steps=3, seed=5, **kw0)
        assert single.shape == (4, self.n_visible)
        torch.testing.assert_close(single, batched[0], rtol=0, atol=1e-12)

    def test_generate_is_deterministic(self) -> None:
        model = self.make(seed=16)
        frames, kwargs = self.generation_inputs(3, 6, seed=16)
        a = model.generate(frames, 6, gibbs_steps=5, seed=8, **kwargs)
        b = model.generate(frames.clone(), 6, gibbs_steps=5, seed=8, **kwargs)
        assert torch.equal(a, b)
        c = model.generate(frames, 6, gibbs_steps=5, seed=9, **kwargs)
        assert not torch.allclose(a, c, atol=1e-6)

    def test_generate_uses_last_order_seed_frames_oldest_first(self) -> None:
        model = self.make(seed=17)
        frames, kwargs = self.generation_inputs(2, 4, seed=17)
        frames = torch.cat([torch.randn(2, 2, self.n_visible, dtype=DTYPE), frames], dim=1)
        base = model.generate(frames, 4, gibbs_steps=3, seed=1, **kwargs)
        older = frames.clone()
        older[:, : frames.shape[1] - self.order] += 5.0  # beyond the last `order` frames
        assert torch.equal(model.generate(older, 4, gibbs_steps=3, seed=1, **kwargs), base)
        for pos in (-1, -self.order):  # the newest and the oldest frame in use
            changed = frames.clone()
            changed[:, pos] += 0.5
            out = model.generate(changed, 4, gibbs_steps=3, seed=1, **kwargs)
            assert (out - base).abs().amax(dim=(1, 2)).min() > 1e-6
        # Reversing the order of the used frames is not the same conditioning.
        flipped = frames.clone()
        flipped[:, -self.order :] = frames[:, -self.order :].flip(1)
        assert not torch.allclose(
            model.generate(flipped, 4, gibbs_steps=3, seed=1, **kwargs), base, atol=1e-6
        )

    def test_generate_alone_equals_in_batch(self) -> None:
        """Sequence ``i`` is the same alone and inside a batch of 32 (same seed)."""
        model = self.make(seed=18)
        frames, kwargs = self.generation_inputs(32, 6, seed=18)
        batch = model.generate(frames, 6, gibbs_steps=10, seed=77, **kwargs)
        for i in (0, 13, 31):
            alone = model.generate(
                frames[i : i + 1],
                6,
                gibbs_steps=10,
                seed=77,
                sequence_indices=[i],
                **{k: x[i : i + 1] for k, x in kwargs.items()},
            )
            torch.testing.assert_close(alone[0], batch[i], rtol=0, atol=1e-12)

    def test_generate_sequence_indices_differ(self) -> None:
        """Identical inputs but different sequence indices: different noise, different frames.

        The emitted frame depends on the last hidden sample only, and a strongly coupled chain
        sticks to one hidden mode whatever its noise; halving ``Ŵ`` keeps the chains mixing.
        """
        model = self.make(seed=19)
        with torch.no_grad():
            for name, p in model.named_parameters():
                if name in ("weight", "visible_factor"):
                    p.mul_(0.5)
        frames, kwargs = self.generation_inputs(1, 6, seed=19)
        frames = frames.expand(8, *frames.shape[1:])
        kwargs = {k: x.expand(8, *x.shape[1:]) for k, x in kwargs.items()}
        out = model.generate(frames, 6, gibbs_steps=5, seed=3, **kwargs)
        for i in range(8):
            for j in range(i):
                assert not torch.allclose(out[i], out[j], atol=1e-6), (i, j)
        # The default indices are 0..B-1.
        explicit = model.generate(
            frames, 6, gibbs_steps=5, seed=3, sequence_indices=list(range(8)), **kwargs
        )
        assert torch.equal(explicit, out)

    def test_generate_float32_model_computes_in_float64(self) -> None:
        model32 = copy.deepcopy(self.make(seed=20)).float()
        model64 = copy.deepcopy(model32).double()
        frames, kwargs = self.generation_inputs(3, 5, seed=20)
        frames = frames.float()
        kwargs = {k: x.float() for k, x in kwargs.items()}
        got = model32.generate(frames, 5, gibbs_steps=6, seed=2, **kwargs)
        assert got.dtype == torch.float32
        ref = model64.generate(
            frames.double(), 5, gibbs_steps=6, seed=2, **{k: x.double() for k, x in kwargs.items()}
        )
        assert torch.equal(got, ref.float())

    def test_generate_bad_inputs(self) -> None:
        model = self.make(seed=21)
        frames, kwargs = self.generation_inputs(2, 3, seed=21)

        def gen(f=frames, n=3, **kw):
            return model.generate(f, n, **{"gibbs_steps": 2, **kwargs, **kw})

        with pytest.raises(ValueError, match=rf"at least {self.order} seed frames"):
            gen(frames[:, : self.order - 1])
        nan = frames.clone()
        nan[1, -1, 0] = math.nan
        with pytest.raises(ValueError, match="NaN or infinite"):
            gen(nan)
        with pytest.raises(ValueError, match=r"seed_frames must have shape"):
            gen(frames[..., :1])
        with pytest.raises(ValueError, match="gibbs_steps must be >= 1"):
            gen(gibbs_steps=0)
        with pytest.raises(ValueError, match="must be >= 1"):
            gen(n=0)
        with pytest.raises(ValueError, match="3 sequence indices for a batch of 2"):
            gen(sequence_indices=[0, 1, 2])
        with pytest.raises(ValueError, match=">= 0"):
            gen(seed=-1)
        with pytest.raises(ValueError, match="style"):
            gen(style=torch.zeros(2, 4, max(self.n_style, 1), dtype=DTYPE))  # 4 frames, not 3
        if self.n_style == 0:
            with pytest.raises(ValueError, match="takes no style"):
                gen(style=torch.zeros(2, 3, dtype=DTYPE))

    def check_midsequence_change(self, name: str) -> None:
        """Changing ``name`` from frame ``t0`` on changes frames ``t0, t0+1, …`` only."""
        model = self.make(seed=22)
        frames, kwargs = self.generation_inputs(2, 7, seed=22)
        base = model.generate(frames, 7, gibbs_steps=5, seed=4, **kwargs)
        t0 = 3
        changed = kwargs[name].clone()
        changed[:, t0:] += 1.0
        out = model.generate(frames, 7, gibbs_steps=5, seed=4, **{**kwargs, name: changed})
        assert torch.equal(out[:, :t0], base[:, :t0])
        diff = (out[:, t0:] - base[:, t0:]).abs().amax(dim=2)
        assert diff.min() > 1e-6, diff
        # A per-sequence (B, S) value is the same as that value repeated on every frame.
        const = kwargs[name][:, 0]
        per_seq = model.generate(frames, 7, gibbs_steps=5, seed=4, **{**kwargs, name: const})
        repeated = const[:, None].expand(-1, 7, -1)
        per_frame = model.generate(frames, 7, gibbs_steps=5, seed=4, **{**kwargs, name: repeated})
        assert torch.equal(per_seq, per_frame)

    # -- construction and the registry ----------------------------------------------------------
    def test_registry_round_trip(self) -> None:
        model = self.make(seed=23)
        spec = model_spec(model)
        assert spec["kind"] == self.model_cls.__name__
        rebuilt = model_from_spec(spec)
        assert type(rebuilt) is self.model_cls
        assert rebuilt.init_args() == model.init_args()
        rebuilt = rebuilt.double()
        rebuilt.load_state_dict(model.state_dict())
        cond = self.cond_batch(4, seed=23)
        v = self.visible_batch(4, seed=23)
        torch.testing.assert_close(rebuilt.free_energy(v, cond), model.free_energy(v, cond))

    def test_parameter_roles_partition_parameters(self) -> None:
        model = self.make()
        roles = model.parameter_roles()
        listed = [id(p) for ps in roles.values() for p in ps]
        assert sorted(listed) == sorted(id(p) for p in model.parameters())
        # gate offsets of the factored model are biases too: decaying them would shut the gates
        offsets = ["gate_offset", "gate_offset_v", "gate_offset_h"]
        expected = [model.visible_bias, model.hidden_bias]
        expected += [getattr(model, n) for n in offsets if hasattr(model, n)]
        assert {id(p) for p in roles["biases"]} == {id(p) for p in expected}


# -- Taylor, Hinton & Roweis (2007) ---------------------------------------------------------------
class TestConditionalRBM(_SequenceFamily):
    model_cls = ConditionalRBM

    def make(self, seed=0, n_hidden=None):
        model = ConditionalRBM(
            self.n_visible, n_hidden or self.n_hidden, self.order, n_controls=self.n_controls
        ).double()
        stds = {"weight": 0.8, "autoregressive": 0.35, "past_to_hidden": 0.5}
        _fill_(model, seed, stds, default=0.5)
        return model

    def ref_frame(self, model, cond):
        p = numpy_params(model)
        x = self.history_vector(cond["history"])
        a_hat = p["visible_bias"] + x @ p["autoregressive"]
        b_hat = p["hidden_bias"] + x @ p["past_to_hidden"]
        if model.n_controls:
            a_hat = a_hat + cond["controls"] @ p["control_to_visible"]
            b_hat = b_hat + cond["controls"] @ p["control_to_hidden"]
        w = np.broadcast_to(p["weight"], (len(x), *p["weight"].shape))
        return a_hat, b_hat, w

    def ref_free_energy_grads(self, model, v, cond) -> dict[str, np.ndarray]:
        """``F = ½‖v - â‖² - Σ softplus(b̂ + vW)``: ``∂F/∂â = -(v - â)``, ``∂F/∂b̂ = -p(h|v)``,
        ``∂F/∂W = -v p(h|v)ᵀ``, then the chain rule through ``â = a + xA + cP``,
        ``b̂ = b + xB + cQ``; batch means."""
        a_hat, b_hat, _ = self.ref_frame(model, cond)
        w = numpy_params(model)["weight"]
        x = self.history_vector(cond["history"])
        ph = expit(b_hat + v @ w)
        d_a, d_b = -(v - a_hat), -ph

        def outer(left, right):
            return (left[:, :, None] * right[:, None, :]).mean(0)

        grads = {
            "weight": outer(v, -ph),
            "visible_bias": d_a.mean(0),
            "hidden_bias": d_b.mean(0),
            "autoregressive": outer(x, d_a),
            "past_to_hidden": outer(x, d_b),
        }
        if model.n_controls:
            grads["control_to_visible"] = outer(cond["controls"], d_a)
            grads["control_to_hidden"] = outer(cond["controls"], d_b)
        return grads

    def test_cd_gradient_equals_analytic(self) -> None:
        """Autograd of ``mean F(v⁺|c) - mean F(v⁻.detach()|c)`` = the hand-derived gradient."""
        model = self.make(seed=30)
        cond = self.cond_batch(9, seed=30)
        v_pos = self.visible_batch(9, seed=30)
        v_neg = model.gibbs_chain(v_pos, 1, torch.Generator().manual_seed(30), cond).v.detach()
        loss = model.free_energy(v_pos, cond).mean() - model.free_energy(v_neg, cond).mean()
        named = dict(model.named_parameters())
        grads = torch.autograd.grad(loss, list(named.values()))
        c = to_numpy(cond)
        pos = self.ref_free_energy_grads(model, v_pos.numpy(), c)
        neg = self.ref_free_energy_grads(model, v_neg.numpy(), c)
        assert sorted(named) == sorted(pos)
        for name, got in zip(named, grads, strict=True):
            np.testing.assert_allclose(
                got.numpy(), pos[name] - neg[name], rtol=1e-10, atol=1e-12, err_msg=name
            )

    def test_plain_tensor_cond_is_history(self) -> None:
        model = self.make(seed=31)
        history = self.cond_batch(5, seed=31)["history"]
        v = self.visible_batch(5, seed=31)
        h = torch.as_tensor(binary_states(self.n_hidden)[:5])
        if self.n_controls:  # a plain tensor is the history alone: the controls are missing
            self.bad_cond(model, history, rf"needs controls of shape \(batch, {self.n_controls}\)")
            return
        for call in self.METHODS.values():
            if call is self.METHODS["gibbs_step"]:
                continue
            torch.testing.assert_close(
                call(model, v, h, history), call(model, v, h, {"history": history}), rtol=0, atol=0
            )

    def test_style_rejected(self) -> None:
        cond = {**self.cond_batch(3), "style": torch.zeros(3, 2, dtype=DTYPE)}
        self.bad_cond(self.make(), cond, "ConditionalRBM takes no style")

    @pytest.mark.parametrize(
        "kwargs",
        [
            {"n_visible": 0, "n_hidden": 2, "order": 1},
            {"n_visible": 2, "n_hidden": 0, "order": 1},
            {"n_visible": 2, "n_hidden": 2, "order": 0},
            {"n_visible": 2, "n_hidden": 2, "order": 1, "n_controls": -1},
        ],
    )
    def test_invalid_constructor_args(self, kwargs) -> None:
        with pytest.raises(ValueError, match="need n_visible, n_hidden, order >= 1"):
            ConditionalRBM(**kwargs)


class TestConditionalRBMWithControls(TestConditionalRBM):
    n_controls = 2

    def test_controls_change_midsequence(self) -> None:
        self.check_midsequence_change("controls")


# -- Taylor & Hinton (2009) -------------------------------------------------------------------
class TestFactoredConditionalRBM(_SequenceFamily):
    model_cls = FactoredConditionalRBM
    n_style = 2
    n_factors = 3
    gated_autoregressive = True

    def make(self, seed=0, n_hidden=None):
        model = FactoredConditionalRBM(
            self.n_visible,
            n_hidden or self.n_hidden,
            self.order,
            n_style=self.n_style,
            n_factors=self.n_factors,
            n_controls=self.n_controls,
            gated_autoregressive=self.gated_autoregressive,
        ).double()
        stds = {"past_factor_v": 0.45, "visible_factor_a": 0.45}
        _fill_(model, seed, stds, default=0.7)
        return model

    def ref_frame(self, model, cond):
        """Per-example matrices ``Ŵ(z) = Wᵛ diag(zWᶻ) Wʰᵀ``, ``Â(z)``, ``B̂(z)`` with einsum."""
        p = numpy_params(model)
        x, z = self.history_vector(cond["history"]), cond["style"]
        w = np.einsum(
            "if,bf,jf->bij",
            p["visible_factor"],
            z @ p["style_factor"] + p["gate_offset"],
            p["hidden_factor"],
        )
        big_a = np.einsum(
            "kf,bf,if->bki",
            p["past_factor_v"],
            z @ _style_factor_v(p) + p["gate_offset_v"],
            p["visible_factor_a"],
        )
        big_b = np.einsum(
            "kf,bf,jf->bkj",
            p["past_factor_h"],
            z @ p["style_factor_h"] + p["gate_offset_h"],
            p["hidden_factor_b"],
        )
        a_hat = p["visible_bias"] + np.einsum("bk,bki->bi", x, big_a) + z @ p["style_to_visible"]
        b_hat = p["hidden_bias"] + np.einsum("bk,bkj->bj", x, big_b) + z @ p["style_to_hidden"]
        if model.n_controls:
            a_hat = a_hat + cond["controls"] @ p["control_to_visible"]
            b_hat = b_hat + cond["controls"] @ p["control_to_hidden"]
        return a_hat, b_hat, w

    def equivalent_crbm(self, model: FactoredConditionalRBM, style: Tensor) -> ConditionalRBM:
        """The CRBM with ``W = Ŵ(z)``, ``A = Â(z)``, ``B = B̂(z)``, ``a + zP``, ``b + zQ``."""
        p = numpy_params(model)
        z = style.numpy()[0]
        crbm = ConditionalRBM(
            model.n_visible, model.n_hidden, model.order, n_controls=model.n_controls
        ).double()
        values = {
            "weight": np.einsum(
                "if,f,jf->ij",
                p["visible_factor"],
                z @ p["style_factor"] + p["gate_offset"],
                p["hidden_factor"],
            ),
            "autoregressive": np.einsum(
                "kf,f,if->ki",
                p["past_factor_v"],
                z @ _style_factor_v(p) + p["gate_offset_v"],
                p["visible_factor_a"],
            ),
            "past_to_hidden": np.einsum(
                "kf,f,jf->kj",
                p["past_factor_h"],
                z @ p["style_factor_h"] + p["gate_offset_h"],
                p["hidden_factor_b"],
            ),
            "visible_bias": p["visible_bias"] + z @ p["style_to_visible"],
            "hidden_bias": p["hidden_bias"] + z @ p["style_to_hidden"],
        }
        if model.n_controls:
            values["control_to_visible"] = p["control_to_visible"]
            values["control_to_hidden"] = p["control_to_hidden"]
        crbm.load_state_dict({k: torch.as_tensor(x) for k, x in values.items()})
        return crbm

    def test_constant_style_equals_crbm(self) -> None:
        """With one style for every example the FCRBM is a CRBM with the effective weights."""
        model = self.make(seed=40)
        cond = self.cond_batch(6, seed=40)
        style = cond["style"][:1]
        cond["style"] = style.expand(6, -1)
        crbm_cond = {k: x for k, x in cond.items() if k != "style"}
        crbm = self.equivalent_crbm(model, style)
        v = self.visible_batch(6, seed=40)
        h = torch.as_tensor(binary_states(self.n_hidden)[[0, 2, 5, 8, 11, 15]])
        for name, call in self.METHODS.items():
            if name == "gibbs_step":
                continue
            torch.testing.assert_close(
                call(model, v, h, cond), call(crbm, v, h, crbm_cond), rtol=1e-12, atol=1e-12
            )
        frames, kwargs = self.generation_inputs(3, 5, seed=40)
        kwargs.pop("style", None)
        got = model.generate(frames, 5, gibbs_steps=4, style=style.expand(3, -1), **kwargs)
        expected = crbm.generate(frames, 5, gibbs_steps=4, **kwargs)
        torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-10)
        # And a different style is a different model.
        other = model.free_energy(v, {**cond, "style": cond["style"] + 1.0})
        assert not torch.allclose(other, crbm.free_energy(v, crbm_cond), atol=1e-3)

    def test_style_validation(self) -> None:
        model = self.make()
        cond = self.cond_batch(3)
        wrong = {**cond, "style": torch.zeros(3, self.n_style + 1, dtype=DTYPE)}
        self.bad_cond(model, wrong, rf"style must have shape \(3, {self.n_style}\); got \(3, 3\)")
        batch = {**cond, "style": torch.zeros(2, self.n_style, dtype=DTYPE)}
        self.bad_cond(model, batch, rf"style must have shape \(3, {self.n_style}\); got \(2, 2\)")
        flat = {**cond, "style": torch.zeros(3 * self.n_style, dtype=DTYPE)}
        self.bad_cond(model, flat, "style must have shape")
        del cond["style"]
        self.bad_cond(model, cond, rf"needs style of shape \(batch, {self.n_style}\)")
        # A plain tensor is a history and nothing else: the style (and controls) are missing.
        missing = "needs controls" if self.n_controls else "needs style"
        self.bad_cond(model, {"history": cond["history"]}, missing)
        with pytest.raises(ValueError, match=missing):
            model.free_energy(self.visible_batch(3), cond["history"])

    def test_style_changes_midsequence(self) -> None:
        self.check_midsequence_change("style")

    def test_missing_cond_mentions_style(self) -> None:
        with pytest.raises(ValueError, match="'style'"):
            self.make().free_energy(self.visible_batch(2))

    @pytest.mark.parametrize("bad", ["n_style", "n_factors", "order", "n_hidden"])
    def test_invalid_constructor_args(self, bad: str) -> None:
        kwargs = {"n_visible": 2, "n_hidden": 2, "order": 1, "n_style": 2, "n_factors": 2}
        kwargs[bad] = 0
        with pytest.raises(ValueError, match="need n_visible"):
            FactoredConditionalRBM(**kwargs)


def _style_factor_v(p: dict[str, np.ndarray]) -> np.ndarray:
    """``Aᶻ``, or zeros for a model whose autoregressive part is not gated."""
    return p.get("style_factor_v", np.zeros_like(p["style_factor_h"]))


class TestFactoredConditionalRBMUngatedAR(TestFactoredConditionalRBM):
    gated_autoregressive = False

    def test_autoregressive_part_ignores_style(self) -> None:
        """``â`` depends on the style only through ``zP``; ``b̂`` and ``Ŵ`` through gates."""
        model = self.make(seed=3)
        assert "style_factor_v" not in dict(model.named_parameters())
        cond = self.cond_batch(4, seed=3)
        other = {**cond, "style": cond["style"] + 0.5}
        p0, p1 = model.frame_params(cond), model.frame_params(other)
        shift = 0.5 * model.style_to_visible.sum(0)
        torch.testing.assert_close(p1.visible_bias - p0.visible_bias, shift.expand(4, -1))
        assert not torch.allclose(p1.hidden_bias, p0.hidden_bias)
        assert p0.gate is not None and p1.gate is not None
        assert not torch.allclose(p1.gate, p0.gate)
        assert model.init_args()["gated_autoregressive"] is False


class TestFactoredConditionalRBMWithControls(TestFactoredConditionalRBM):
    n_controls = 1

    def test_controls_change_midsequence(self) -> None:
        self.check_midsequence_change("controls")
