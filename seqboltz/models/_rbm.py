"""Binary and Gaussian-Bernoulli restricted Boltzmann machines.

Thin modules over :mod:`seqboltz.functional`: they hold ``W (D, H)``, ``a (D,)``, ``b (H,)``
(and ``log σ (D,)``) and call the pure functions.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
from torch import Tensor, nn

from seqboltz import functional as Fn
from seqboltz.models._base import (
    AnnealingPath,
    Conditioning,
    EnergyModel,
    ExportPath,
    GibbsStep,
    NoiseSpec,
)

__all__ = ["BernoulliRBM", "GaussianBernoulliRBM"]


def _check_sizes(n_visible: int, n_hidden: int, init_std: float) -> None:
    if n_visible < 1 or n_hidden < 1:
        raise ValueError(f"n_visible and n_hidden must be >= 1, got {n_visible} and {n_hidden}")
    if not init_std >= 0:
        raise ValueError(f"init_std must be >= 0, got {init_std}")


class _RBMBase(EnergyModel):
    """Parameters shared by the two unconditional RBMs."""

    export_path: ClassVar[ExportPath | None] = "gibbs"

    def __init__(self, n_visible: int, n_hidden: int, init_std: float) -> None:
        super().__init__()
        _check_sizes(n_visible, n_hidden, init_std)
        self.n_visible = n_visible
        self.n_hidden = n_hidden
        self.init_std = init_std
        self.weight = nn.Parameter(torch.randn(n_visible, n_hidden) * init_std)
        self.visible_bias = nn.Parameter(torch.zeros(n_visible))
        self.hidden_bias = nn.Parameter(torch.zeros(n_hidden))

    def noise_spec(self) -> dict[str, NoiseSpec]:
        kind: Literal["uniform", "normal"] = (
            "uniform" if self.visible_kind == "bernoulli" else "normal"
        )
        return {
            "hidden": NoiseSpec((self.n_hidden,), "uniform"),
            "visible": NoiseSpec((self.n_visible,), kind),
        }

    def extra_repr(self) -> str:
        return f"n_visible={self.n_visible}, n_hidden={self.n_hidden}"


class BernoulliRBM(_RBMBase):
    """Binary RBM, ``E(v, h) = -aᵀv - bᵀh - vᵀWh`` (Hinton 2002).

    Visible values in ``[0, 1]`` are accepted everywhere (grayscale images are used as
    Bernoulli probabilities for training, Salakhutdinov & Murray 2008).

    Args:
        n_visible: number of visible units ``D``.
        n_hidden: number of hidden units ``H``.
        init_std: standard deviation of the initial weights (Hinton 2010 suggests 0.01).

    Example:
        >>> rbm = BernoulliRBM(784, 500)
        >>> v = torch.rand(8, 784)
        >>> rbm.free_energy(v).shape
        torch.Size([8])
    """

    visible_kind: ClassVar[Literal["bernoulli", "gaussian"]] = "bernoulli"

    def __init__(self, n_visible: int, n_hidden: int, init_std: float = 0.01) -> None:
        super().__init__(n_visible, n_hidden, init_std)

    def energy(self, v: Tensor, h: Tensor, cond: Conditioning | None = None) -> Tensor:
        self.check_unconditional(cond)
        self.check_shape(v)
        self.check_hidden_shape(h)
        return Fn.bernoulli_rbm_energy(v, h, self.weight, self.visible_bias, self.hidden_bias)

    def free_energy(self, v: Tensor, cond: Conditioning | None = None) -> Tensor:
        self.check_unconditional(cond)
        self.check_shape(v)
        return Fn.bernoulli_rbm_free_energy(v, self.weight, self.visible_bias, self.hidden_bias)

    def hidden_free_energy(self, h: Tensor, cond: Conditioning | None = None) -> Tensor:
        self.check_unconditional(cond)
        self.check_hidden_shape(h)
        return Fn.bernoulli_rbm_hidden_free_energy(
            h, self.weight, self.visible_bias, self.hidden_bias
        )

    def hidden_probs(self, v: Tensor, cond: Conditioning | None = None) -> Tensor:
        self.check_unconditional(cond)
        self.check_shape(v)
        return Fn.hidden_probs(v, self.weight, self.hidden_bias)

    def visible_params(self, h: Tensor, cond: Conditioning | None = None) -> Tensor:
        self.check_unconditional(cond)
        self.check_hidden_shape(h)
        return Fn.bernoulli_visible_probs(h, self.weight, self.visible_bias)

    def gibbs_step(
        self, v: Tensor, noise: Mapping[str, Tensor], cond: Conditioning | None = None
    ) -> GibbsStep:
        self.check_unconditional(cond)
        self.check_shape(v)
        v_next, v_probs, h = Fn.bernoulli_rbm_gibbs_step(
            v, noise["hidden"], noise["visible"], self.weight, self.visible_bias, self.hidden_bias
        )
        return GibbsStep(v_next, v_probs, h)

    @torch.no_grad()
    def cd_gradients(
        self,
        v_data: Tensor,
        hidden_uniform: Tensor,
        visible_noise: Tensor,
        cond: Conditioning | None = None,
        *,
        chain_start: Tensor | None = None,
        negative: Literal["sample", "mean_field"] = "sample",
        sparsity_target: float | None = None,
        sparsity_cost: float = 0.0,
        negative_free_energy: bool = False,
        data_free_energy: bool = True,
    ) -> Fn.ContrastiveStep:
        """Closed-form CD-k / PCD-k gradient, written into the parameters' ``.grad``.

        The gradient of ``mean F(v_data) - mean F(v⁻) (+ sparsity_cost ‖t - q‖²)``, ``v⁻``
        the end of a ``k``-step chain driven by the given noise, replaces each ``.grad``
        (as ``zero_grad`` then ``backward`` through :meth:`free_energy` would leave it):
        the fast path of :class:`~seqboltz.training.RBMSystem`. See
        :func:`seqboltz.functional.bernoulli_rbm_cd_gradients`.

        Args:
            v_data: ``(B, D)``.
            hidden_uniform: ``(k, B', H)`` uniforms; visible_noise: ``(k, B', D)`` uniforms
                (``k - 1`` allowed with ``negative="mean_field"``).
            cond: must be ``None``.
            chain_start: ``(B', D)`` chain start (PCD); ``None``: the data (CD).
            negative, sparsity_target, sparsity_cost, negative_free_energy, data_free_energy:
                see :func:`seqboltz.functional.contrastive_divergence` (``data_free_energy=False``
                reports only the bounds of ``mean F(v_data)``).

        Returns:
            the :class:`~seqboltz.functional.ContrastiveStep` (chain, negatives, free energies).
        """
        self.check_unconditional(cond)
        self.check_shape(v_data, "v_data")
        params = (self.weight, self.visible_bias, self.hidden_bias)
        grads, step = Fn.bernoulli_rbm_cd_gradients(
            v_data,
            hidden_uniform,
            visible_noise,
            *params,
            chain_start=chain_start,
            negative=negative,
            sparsity_target=sparsity_target,
            sparsity_cost=sparsity_cost,
            negative_free_energy=negative_free_energy,
            out=[p.grad for p in params],
            data_free_energy=data_free_energy,
        )
        for param, grad in zip(params, grads, strict=False):
            if param.grad is not grad:
                param.grad = grad
        return step

    @torch.no_grad()
    def init_chains(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        p = torch.sigmoid(self.visible_bias).expand(n, -1)
        u = torch.rand(p.shape, generator=generator, device=p.device, dtype=p.dtype)
        return Fn.bernoulli_from_uniform(p, u)

    @torch.no_grad()
    def init_from_data(self, data: Tensor) -> None:
        """``a = logit(p̄)`` with ``p̄`` the mean of ``data (N, D)`` clipped to [1e-3, 1-1e-3]."""
        self.check_visible(data, "data")
        p = data.mean(0).clamp(1e-3, 1 - 1e-3).to(self.visible_bias)
        self.visible_bias.copy_(torch.log(p) - torch.log1p(-p))

    def annealing_path(self, base_data: Tensor | None = None) -> AnnealingPath:
        """AIS path of Salakhutdinov & Murray (2008), base rates from ``base_data``."""
        ref = self.weight
        if base_data is None:
            base_bias = torch.zeros_like(self.visible_bias)
        else:
            self.check_visible(base_data, "base_data")
            # Smoothed base rates, as in Salakhutdinov & Murray's reference code.
            n = base_data.shape[0]
            p = (base_data.to(ref).sum(0) + 0.05 * n) / (n + 0.1 * n)
            base_bias = torch.log(p) - torch.log1p(-p)
        return _BernoulliPath(
            self.weight.detach(),
            self.visible_bias.detach(),
            self.hidden_bias.detach(),
            base_bias.detach(),
        )

    def parameter_roles(self) -> dict[str, list[nn.Parameter]]:
        return {"weights": [self.weight], "biases": [self.visible_bias, self.hidden_bias]}

    @classmethod
    def from_sklearn(cls, estimator: Any) -> BernoulliRBM:
        """Build from a fitted ``sklearn.neural_network.BernoulliRBM`` (``components_ (H, D)``)."""
        components = torch.as_tensor(estimator.components_, dtype=torch.float64)
        n_hidden, n_visible = components.shape
        model = cls(n_visible, n_hidden, init_std=0.0).double()
        with torch.no_grad():
            model.weight.copy_(components.T)
            model.visible_bias.copy_(torch.as_tensor(estimator.intercept_visible_))
            model.hidden_bias.copy_(torch.as_tensor(estimator.intercept_hidden_))
        return model


class GaussianBernoulliRBM(_RBMBase):
    """Gaussian-Bernoulli RBM with learned per-visible standard deviations.

    ``E(v, h) = Σᵢ (vᵢ - aᵢ)²/(2σᵢ²) - bᵀh - Σᵢⱼ (vᵢ/σᵢ) Wᵢⱼ hⱼ`` with ``σ = exp(log σ)``
    (Hinton & Salakhutdinov 2006; Cho, Ilin & Raiko 2011; Krizhevsky 2009).

    Known to be unstable (variance collapse, exploding gradients). Remedies shipped here:
    ``log σ`` is kept within ``[log min_sigma, log max_sigma]`` by :meth:`constrain_`;
    the training system gives ``log σ`` its own learning-rate scale; train on standardised
    data and use gradient clipping (the Trainer's ``gradient_clip_val``).

    Args:
        n_visible: number of visible units ``D``.
        n_hidden: number of hidden units ``H``.
        init_std: standard deviation of the initial weights.
        learn_sigma: learn ``log σ``; if ``False`` it stays at ``log sigma_init``.
        sigma_init: initial ``σ``. ``None`` (default): 1 (which suits standardised data), and
            with ``learn_sigma`` :meth:`init_from_data` sets it to the data's standard
            deviation; a number is kept by :meth:`init_from_data`.
        min_sigma: lower bound of ``σ`` (guards against variance collapse).
        max_sigma: upper bound of ``σ``.

    Example:
        >>> rbm = GaussianBernoulliRBM(64, 32)
        >>> rbm.hidden_probs(torch.randn(5, 64)).shape
        torch.Size([5, 32])
    """

    visible_kind: ClassVar[Literal["bernoulli", "gaussian"]] = "gaussian"

    def __init__(
        self,
        n_visible: int,
        n_hidden: int,
        init_std: float = 0.01,
        learn_sigma: bool = True,
        sigma_init: float | None = None,
        min_sigma: float = 0.05,
        max_sigma: float = 10.0,
    ) -> None:
        super().__init__(n_visible, n_hidden, init_std)
        sigma0 = 1.0 if sigma_init is None else sigma_init
        if not 0 < min_sigma <= sigma0 <= max_sigma:
            raise ValueError(
                "need 0 < min_sigma <= sigma_init <= max_sigma, got "
                f"{min_sigma}, {sigma0}, {max_sigma}"
            )
        self.learn_sigma = learn_sigma
        self.sigma_init = sigma_init
        self.min_sigma = min_sigma
        self.max_sigma = max_sigma
        log_sigma = torch.full((n_visible,), math.log(sigma0))
        if learn_sigma:
            self.log_sigma = nn.Parameter(log_sigma)
        else:
            self.register_buffer("log_sigma", log_sigma)

    @property
    def sigma(self) -> Tensor:
        """Per-visible standard deviations ``σ``, ``(D,)``."""
        return torch.exp(self.log_sigma)

    def energy(self, v: Tensor, h: Tensor, cond: Conditioning | None = None) -> Tensor:
        self.check_unconditional(cond)
        self.check_shape(v)
        self.check_hidden_shape(h)
        return Fn.gaussian_rbm_energy(
            v, h, self.weight, self.visible_bias, self.hidden_bias, self.log_sigma
        )

    def free_energy(self, v: Tensor, cond: Conditioning | None = None) -> Tensor:
        self.check_unconditional(cond)
        self.check_shape(v)
        return Fn.gaussian_rbm_free_energy(
            v, self.weight, self.visible_bias, self.hidden_bias, self.log_sigma
        )

    def hidden_free_energy(self, h: Tensor, cond: Conditioning | None = None) -> Tensor:
        self.check_unconditional(cond)
        self.check_hidden_shape(h)
        return Fn.gaussian_rbm_hidden_free_energy(
            h, self.weight, self.visible_bias, self.hidden_bias, self.log_sigma
        )

    def hidden_probs(self, v: Tensor, cond: Conditioning | None = None) -> Tensor:
        self.check_unconditional(cond)
        self.check_shape(v)
        return Fn.hidden_probs(v * torch.exp(-self.log_sigma), self.weight, self.hidden_bias)

    def visible_params(self, h: Tensor, cond: Conditioning | None = None) -> Tensor:
        self.check_unconditional(cond)
        self.check_hidden_shape(h)
        return Fn.gaussian_visible_mean(h, self.weight, self.visible_bias, self.log_sigma)

    def gibbs_step(
        self, v: Tensor, noise: Mapping[str, Tensor], cond: Conditioning | None = None
    ) -> GibbsStep:
        self.check_unconditional(cond)
        self.check_shape(v)
        v_next, v_mean, h = Fn.gaussian_rbm_gibbs_step(
            v,
            noise["hidden"],
            noise["visible"],
            self.weight,
            self.visible_bias,
            self.hidden_bias,
            self.log_sigma,
        )
        return GibbsStep(v_next, v_mean, h)

    @torch.no_grad()
    def cd_gradients(
        self,
        v_data: Tensor,
        hidden_uniform: Tensor,
        visible_noise: Tensor,
        cond: Conditioning | None = None,
        *,
        chain_start: Tensor | None = None,
        negative: Literal["sample", "mean_field"] = "sample",
        sparsity_target: float | None = None,
        sparsity_cost: float = 0.0,
        negative_free_energy: bool = False,
        data_free_energy: bool = True,
    ) -> Fn.ContrastiveStep:
        """Closed-form CD-k / PCD-k gradient (``log σ`` included), written into ``.grad``.

        As :meth:`BernoulliRBM.cd_gradients`, with ``visible_noise`` standard normals
        ``(k, B', D)``; ``log σ`` gets its gradient when it is learned. See
        :func:`seqboltz.functional.gaussian_rbm_cd_gradients`.
        """
        self.check_unconditional(cond)
        self.check_shape(v_data, "v_data")
        params = [self.weight, self.visible_bias, self.hidden_bias]
        if self.learn_sigma:
            params.append(self.log_sigma)
        grads, step = Fn.gaussian_rbm_cd_gradients(
            v_data,
            hidden_uniform,
            visible_noise,
            self.weight,
            self.visible_bias,
            self.hidden_bias,
            self.log_sigma,
            learn_sigma=self.learn_sigma,
            chain_start=chain_start,
            negative=negative,
            sparsity_target=sparsity_target,
            sparsity_cost=sparsity_cost,
            negative_free_energy=negative_free_energy,
            out=[p.grad for p in params],
            data_free_energy=data_free_energy,
        )
        for param, grad in zip(params, grads, strict=False):
            if param.grad is not grad:
                param.grad = grad
        return step

    @torch.no_grad()
    def init_chains(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        mean = self.visible_bias.expand(n, -1)
        z = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        return mean + self.sigma * z

    @torch.no_grad()
    def init_from_data(self, data: Tensor) -> None:
        """``a = mean(data)``; with ``learn_sigma`` and no explicit ``sigma_init``,
        ``σ = std(data)`` clipped to the bounds."""
        self.check_visible(data, "data")
        data = data.to(self.visible_bias)
        self.visible_bias.copy_(data.mean(0))
        if self.learn_sigma and self.sigma_init is None and data.shape[0] > 1:
            self.log_sigma.copy_(torch.log(data.std(0).clamp(self.min_sigma, self.max_sigma)))

    @torch.no_grad()
    def constrain_(self) -> None:
        self.log_sigma.clamp_(math.log(self.min_sigma), math.log(self.max_sigma))

    def annealing_path(self, base_data: Tensor | None = None) -> AnnealingPath:
        """AIS path from independent Gaussians fitted to ``base_data`` (or ``N(a, σ²)``)."""
        if base_data is None:
            mean, log_std = self.visible_bias.detach(), self.log_sigma.detach()
        else:
            self.check_visible(base_data, "base_data")
            data = base_data.to(self.weight)
            mean = data.mean(0)
            log_std = torch.log(data.std(0).clamp_min(1e-3))
        return _GaussianPath(
            self.weight.detach(),
            self.visible_bias.detach(),
            self.hidden_bias.detach(),
            self.log_sigma.detach(),
            mean.detach(),
            log_std.detach(),
        )

    def parameter_roles(self) -> dict[str, list[nn.Parameter]]:
        roles: dict[str, list[nn.Parameter]] = {
            "weights": [self.weight],
            "biases": [self.visible_bias, self.hidden_bias],
        }
        if self.learn_sigma:
            roles["scales"] = [self.log_sigma]
        return roles


# -- annealing paths ----------------------------------------------------------------------
# The tempered distribution f_β ∝ f_base^(1-β) f_model^β of an RBM is again an RBM of the
# same family (plus a constant), so AIS reuses the same free energies and Gibbs steps.


@dataclass
class _BernoulliPath:
    """``log f_β(v) = -F(v; βW, (1-β)a_base + βa, βb)`` (Salakhutdinov & Murray 2008, eq. 12)."""

    weight: Tensor
    visible_bias: Tensor
    hidden_bias: Tensor
    base_bias: Tensor

    @property
    def log_z_base(self) -> float:
        # Base: independent visibles with biases a_base times H free hidden units.
        n_hidden = self.weight.shape[1]
        softplus = torch.nn.functional.softplus(self.base_bias).sum()
        return float(softplus) + n_hidden * math.log(2.0)

    def _params(self, beta: float) -> tuple[Tensor, Tensor, Tensor]:
        a = (1.0 - beta) * self.base_bias + beta * self.visible_bias
        return beta * self.weight, a, beta * self.hidden_bias

    def sample_base(self, n: int, generator: torch.Generator) -> Tensor:
        p = torch.sigmoid(self.base_bias).expand(n, -1)
        u = torch.rand(p.shape, generator=generator, device=p.device, dtype=p.dtype)
        return Fn.bernoulli_from_uniform(p, u)

    def log_f(self, v: Tensor, beta: float) -> Tensor:
        return -Fn.bernoulli_rbm_free_energy(v, *self._params(beta))

    def advance(
        self, v: Tensor, beta_prev: float, beta: float, generator: torch.Generator
    ) -> tuple[Tensor, Tensor]:
        # One GEMM for b + vW, shared by both log f's and the hidden step (β scales it).
        pre = Fn.hidden_input(v, self.weight, self.hidden_bias)
        lin_base, lin_model = v @ self.base_bias, v @ self.visible_bias
        softplus = torch.nn.functional.softplus

        def log_f(b: float) -> Tensor:
            return (1.0 - b) * lin_base + b * lin_model + softplus(b * pre).sum(-1)

        delta = log_f(beta) - log_f(beta_prev)
        u_h = torch.rand(pre.shape, generator=generator, device=v.device, dtype=v.dtype)
        h = Fn.bernoulli_from_uniform(torch.sigmoid(beta * pre), u_h)
        w, a, _ = self._params(beta)
        u_v = torch.rand(v.shape, generator=generator, device=v.device, dtype=v.dtype)
        return delta, Fn.bernoulli_from_uniform(Fn.bernoulli_visible_probs(h, w, a), u_v)

    def transition(self, v: Tensor, beta: float, generator: torch.Generator) -> Tensor:
        w, a, b = self._params(beta)
        u_h = torch.rand(
            (v.shape[0], w.shape[1]), generator=generator, device=v.device, dtype=v.dtype
        )
        u_v = torch.rand(v.shape, generator=generator, device=v.device, dtype=v.dtype)
        return Fn.bernoulli_rbm_gibbs_step(v, u_h, u_v, w, a, b)[0]


@dataclass
class _GaussianPath:
    """Tempered Gaussian-Bernoulli RBM between ``N(μ_base, σ_base²)`` and the model.

    ``(1-β)(v-μ_b)²/2σ_b² + β(v-a)²/2σ² = (v-a')²/2σ'² + c`` with precision
    ``1/σ'² = (1-β)/σ_b² + β/σ²`` and ``a' = σ'² ((1-β)μ_b/σ_b² + βa/σ²)``; the coupling
    ``β (v/σ) W h = (v/σ') (β σ'/σ W) h``. So ``f_β`` is a Gaussian-Bernoulli RBM with
    ``(W', a', βb, σ')`` times ``exp(-c)``.
    """

    weight: Tensor
    visible_bias: Tensor
    hidden_bias: Tensor
    log_sigma: Tensor
    base_mean: Tensor
    base_log_std: Tensor

    @property
    def log_z_base(self) -> float:
        n_visible, n_hidden = self.weight.shape
        gauss = self.base_log_std.sum() + 0.5 * n_visible * math.log(2.0 * math.pi)
        return float(gauss) + n_hidden * math.log(2.0)

    def _params(self, beta: float) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        prec_base = torch.exp(-2.0 * self.base_log_std)
        prec_model = torch.exp(-2.0 * self.log_sigma)
        prec = (1.0 - beta) * prec_base + beta * prec_model
        log_sigma = -0.5 * torch.log(prec)
        lin = (1.0 - beta) * self.base_mean * prec_base + beta * self.visible_bias * prec_model
        a = lin / prec
        const = (
            0.5
            * (
                (1.0 - beta) * self.base_mean**2 * prec_base
                + beta * self.visible_bias**2 * prec_model
                - a**2 * prec
            ).sum()
        )
        w = beta * torch.exp(log_sigma - self.log_sigma)[:, None] * self.weight
        return w, a, beta * self.hidden_bias, log_sigma, const

    def sample_base(self, n: int, generator: torch.Generator) -> Tensor:
        mean = self.base_mean.expand(n, -1)
        z = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        return mean + torch.exp(self.base_log_std) * z

    def log_f(self, v: Tensor, beta: float) -> Tensor:
        w, a, b, log_sigma, const = self._params(beta)
        return -(Fn.gaussian_rbm_free_energy(v, w, a, b, log_sigma) + const)

    def advance(
        self, v: Tensor, beta_prev: float, beta: float, generator: torch.Generator
    ) -> tuple[Tensor, Tensor]:
        # The tempered hidden input is β (b + (v/σ)W) at every β: one GEMM, shared.
        pre = Fn.hidden_input(v * torch.exp(-self.log_sigma), self.weight, self.hidden_bias)
        softplus = torch.nn.functional.softplus

        def log_f(b: float) -> Tensor:
            _, a, _, log_sigma, const = self._params(b)
            quad = 0.5 * (((v - a) * torch.exp(-log_sigma)) ** 2).sum(-1)
            return softplus(b * pre).sum(-1) - quad - const

        delta = log_f(beta) - log_f(beta_prev)
        u_h = torch.rand(pre.shape, generator=generator, device=v.device, dtype=v.dtype)
        h = Fn.bernoulli_from_uniform(torch.sigmoid(beta * pre), u_h)
        w, a, _, log_sigma, _ = self._params(beta)
        mean = Fn.gaussian_visible_mean(h, w, a, log_sigma)
        z = torch.randn(v.shape, generator=generator, device=v.device, dtype=v.dtype)
        return delta, mean + torch.exp(log_sigma) * z

    def transition(self, v: Tensor, beta: float, generator: torch.Generator) -> Tensor:
        w, a, b, log_sigma, _ = self._params(beta)
        u_h = torch.rand(
            (v.shape[0], w.shape[1]), generator=generator, device=v.device, dtype=v.dtype
        )
        z_v = torch.randn(v.shape, generator=generator, device=v.device, dtype=v.dtype)
        return Fn.gaussian_rbm_gibbs_step(v, u_h, z_v, w, a, b, log_sigma)[0]
