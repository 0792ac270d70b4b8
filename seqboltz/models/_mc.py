"""The mean-covariance RBM (Ranzato & Hinton 2010).

A thin module over :mod:`seqboltz.functional._mc`: it holds the mean filters ``W (D, M)``, the
mean hidden biases ``bᵐ (M,)``, the covariance filters ``R (D, F)`` and the covariance hidden
biases ``bᶜ (F,)``, and calls the pure functions.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar, Literal

import numpy as np
import torch
from torch import Tensor, nn

from seqboltz.functional import _mc as MC
from seqboltz.functional._rbm import bernoulli_from_uniform, softplus
from seqboltz.models._base import (
    AnnealingPath,
    Conditioning,
    EnergyModel,
    ExportSupport,
    GibbsStep,
    NoiseSpec,
)

__all__ = ["MeanCovarianceRBM"]

Sampler = Literal["exact", "hmc"]
SAMPLERS = ("exact", "hmc")


class MeanCovarianceRBM(EnergyModel):
    """Mean-covariance RBM: Gaussian visibles whose mean *and* precision depend on the hiddens.

    ``E(x, h) = ½ xᵀx - xᵀW hᵐ - bᵐᵀhᵐ + ½ Σⱼ hᶜⱼ (xᵀr⁽ʲ⁾)² - bᶜᵀhᶜ`` (DESIGN.md; Ranzato &
    Hinton 2010 with the factor loadings fixed to the identity: one covariance hidden unit per
    filter ``r⁽ʲ⁾``). ``p(x | h) = N(C W hᵐ, C)`` with ``C = (I + R diag(hᶜ) Rᵀ)⁻¹``: a
    covariance unit that is on adds precision along its filter, and turns off where the
    filter's output is large (an edge), releasing that constraint.

    The hidden vector of the interface is ``h = [hᵐ, hᶜ]`` (``n_hidden = M + F``, mean units
    first). The model has no visible bias: train it on zero-mean data (whitened patches,
    :class:`~seqboltz.data.ImagePatchesDataModule` with ``whiten=True``).

    Sampling (:meth:`gibbs_step`, used by CD/PCD training, AIS and :meth:`pictures`):

    * ``sampler="exact"``: block Gibbs ``x → h → x'``, ``x' | h`` drawn exactly through a
      Cholesky factor of the ``D × D`` precision (one factorisation per example; fine for small
      patches). Noise: ``hidden`` uniforms ``(M + F,)``, ``visible`` normals ``(D,)``.
    * ``sampler="hmc"``: one Hamiltonian Monte Carlo trajectory on ``F(x)`` of ``hmc_steps``
      leapfrog steps of size ``hmc_step_size`` (Ranzato & Hinton's sampler, for larger inputs).
      Noise: ``momentum`` normals ``(D,)``, ``accept`` uniform ``(1,)``. HMC samples no hidden
      state and has no conditional mean: the step returns ``h = p(h = 1 | v)`` at the starting
      state and ``v_mean = v`` (the new sample).

    Args:
        n_visible: number of visible units ``D``.
        n_mean_hidden: number of mean hidden units ``M``.
        n_cov_hidden: number of covariance hidden units (= filters) ``F``.
        sampler: ``"exact"`` or ``"hmc"``.
        hmc_steps: leapfrog steps per HMC trajectory.
        hmc_step_size: leapfrog step size.
        init_std: standard deviation of the initial mean and covariance filters (the gradient
            of a covariance filter is proportional to the filter: much smaller filters hardly
            move at first).

    Example:
        >>> m = MeanCovarianceRBM(16, 8, 8)
        >>> x = torch.randn(5, 16)
        >>> m.free_energy(x).shape, m.hidden_probs(x).shape
        (torch.Size([5]), torch.Size([5, 16]))
    """

    visible_kind: ClassVar[Literal["bernoulli", "gaussian"]] = "gaussian"

    def __init__(
        self,
        n_visible: int,
        n_mean_hidden: int,
        n_cov_hidden: int,
        sampler: Sampler = "exact",
        hmc_steps: int = 20,
        hmc_step_size: float = 0.1,
        init_std: float = 0.1,
    ) -> None:
        super().__init__()
        if n_visible < 1 or n_mean_hidden < 1 or n_cov_hidden < 1:
            raise ValueError(
                "n_visible, n_mean_hidden and n_cov_hidden must be >= 1, got "
                f"{n_visible}, {n_mean_hidden} and {n_cov_hidden}"
            )
        if sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {SAMPLERS}, got {sampler!r}")
        if hmc_steps < 1:
            raise ValueError(f"hmc_steps must be >= 1, got {hmc_steps}")
        if not (hmc_step_size > 0 and math.isfinite(hmc_step_size)):
            raise ValueError(f"hmc_step_size must be a positive number, got {hmc_step_size}")
        if not init_std >= 0:
            raise ValueError(f"init_std must be >= 0, got {init_std}")
        self.n_visible = n_visible
        self.n_mean_hidden = n_mean_hidden
        self.n_cov_hidden = n_cov_hidden
        self.n_hidden = n_mean_hidden + n_cov_hidden
        self.sampler: Sampler = sampler
        self.hmc_steps = hmc_steps
        self.hmc_step_size = hmc_step_size
        self.init_std = init_std
        self.weight = nn.Parameter(torch.randn(n_visible, n_mean_hidden) * init_std)
        self.mean_bias = nn.Parameter(torch.zeros(n_mean_hidden))
        self.filters = nn.Parameter(torch.randn(n_visible, n_cov_hidden) * init_std)
        self.cov_bias = nn.Parameter(torch.zeros(n_cov_hidden))

    # -- helpers ----------------------------------------------------------------------------
    def _params(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        return self.weight, self.mean_bias, self.filters, self.cov_bias

    def _split(self, h: Tensor) -> tuple[Tensor, Tensor]:
        """``h (B, M + F)`` → ``(hᵐ (B, M), hᶜ (B, F))``."""
        return h[..., : self.n_mean_hidden], h[..., self.n_mean_hidden :]

    # -- the energy-model interface ---------------------------------------------------------
    def energy(self, v: Tensor, h: Tensor, cond: Conditioning | None = None) -> Tensor:
        self.check_unconditional(cond)
        self.check_shape(v)
        self.check_hidden_shape(h)
        h_mean, h_cov = self._split(h)
        return MC.mc_energy(v, h_mean, h_cov, *self._params())

    def free_energy(self, v: Tensor, cond: Conditioning | None = None) -> Tensor:
        self.check_unconditional(cond)
        self.check_shape(v)
        return MC.mc_free_energy(v, *self._params())

    def hidden_free_energy(self, h: Tensor, cond: Conditioning | None = None) -> Tensor:
        """``F(h) = -log ∫ exp(-E(x, h)) dx`` in closed form (a Gaussian integral), ``(B,)``."""
        self.check_unconditional(cond)
        self.check_hidden_shape(h)
        h_mean, h_cov = self._split(h)
        return MC.mc_hidden_free_energy(h_mean, h_cov, *self._params())

    def hidden_probs(self, v: Tensor, cond: Conditioning | None = None) -> Tensor:
        """``[p(hᵐ = 1 | v), p(hᶜ = 1 | v)]``, ``(B, D)`` → ``(B, M + F)``."""
        self.check_unconditional(cond)
        self.check_shape(v)
        return torch.cat(MC.mc_hidden_probs(v, *self._params()), dim=-1)

    def visible_params(self, h: Tensor, cond: Conditioning | None = None) -> Tensor:
        """Mean ``C W hᵐ`` of ``p(v | h)``, ``(B, M + F)`` → ``(B, D)``."""
        self.check_unconditional(cond)
        self.check_hidden_shape(h)
        h_mean, h_cov = self._split(h)
        return MC.mc_visible_mean(h_mean, h_cov, self.weight, self.filters)

    def noise_spec(self) -> dict[str, NoiseSpec]:
        if self.sampler == "hmc":
            return {
                "momentum": NoiseSpec((self.n_visible,), "normal"),
                "accept": NoiseSpec((1,), "uniform"),
            }
        return {
            "hidden": NoiseSpec((self.n_hidden,), "uniform"),
            "visible": NoiseSpec((self.n_visible,), "normal"),
        }

    def gibbs_step(
        self, v: Tensor, noise: Mapping[str, Tensor], cond: Conditioning | None = None
    ) -> GibbsStep:
        self.check_unconditional(cond)
        self.check_shape(v)
        missing = sorted(set(self.noise_spec()) - set(noise))
        if missing:
            raise ValueError(
                f"MeanCovarianceRBM (sampler={self.sampler!r}) needs noise {missing}; "
                f"got {sorted(noise)}"
            )
        if self.sampler == "hmc":
            h = self.hidden_probs(v)
            v_next, _ = MC.mc_hmc_step(
                v,
                noise["momentum"],
                noise["accept"],
                *self._params(),
                step_size=self.hmc_step_size,
                n_leapfrog=self.hmc_steps,
            )
            return GibbsStep(v_next, v_next, h)
        v_next, v_mean, h = MC.mc_gibbs_step(v, noise["hidden"], noise["visible"], *self._params())
        return GibbsStep(v_next, v_mean, h)

    def export_support(self) -> ExportSupport:
        """The HMC sampler exports; the exact one needs a Cholesky factor, which ONNX lacks."""
        if self.sampler == "hmc":
            return ExportSupport("gibbs")
        return ExportSupport(
            None,
            "its exact sampler factorises the precision matrix by Cholesky, which ONNX has no "
            "operator for; a model with sampler='hmc' exports (same distribution, sampled by HMC)",
        )

    @torch.no_grad()
    def init_chains(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``n`` draws of ``N(0, I)``, the model with every interaction removed, ``(n, D)``."""
        ref = self.weight
        return torch.randn(
            (n, self.n_visible), generator=generator, device=ref.device, dtype=ref.dtype
        )

    @torch.no_grad()
    def init_from_data(self, data: Tensor) -> None:
        """Check ``data (N, D)``; nothing to set: the model has no visible bias or scale."""
        self.check_visible(data, "data")

    def annealing_path(self, base_data: Tensor | None = None) -> AnnealingPath:
        """AIS path from ``N(0, I)`` times free hiddens (β = 0) to the model (β = 1).

        Every non-quadratic term is scaled by β (see :class:`_MeanCovPath`). The base is
        fixed (the model's own ``½ xᵀx``), so ``base_data`` is only checked, not fitted.
        """
        if base_data is not None:
            self.check_visible(base_data, "base_data")
        return _MeanCovPath(
            self.weight.detach(),
            self.mean_bias.detach(),
            self.filters.detach(),
            self.cov_bias.detach(),
            self.sampler,
            self.hmc_steps,
            self.hmc_step_size,
        )

    def parameter_roles(self) -> dict[str, list[nn.Parameter]]:
        return {
            "weights": [self.weight, self.filters],
            "biases": [self.mean_bias, self.cov_bias],
        }

    def pictures(self, generator: torch.Generator | None = None) -> dict[str, np.ndarray]:
        """``cov_filters`` (columns of ``R``), ``mean_filters`` (columns of ``W``), each scaled
        to [0, 1] on its own, and ``samples``: 64 chains started by :meth:`init_chains` and run
        for :attr:`PICTURE_STEPS` steps of the model's sampler, drawn from ``generator``.
        Only when ``D`` is a square number (square patches); otherwise none."""
        side = math.isqrt(self.n_visible)
        if side * side != self.n_visible:
            return {}
        from seqboltz.viz import normalized_grid

        def grid(columns: Tensor) -> np.ndarray:
            a = columns.detach().double().cpu().numpy()[:, :256].T.reshape(-1, side, side)
            return normalized_grid(a, ncols=16, scale=3)

        with torch.no_grad():
            start = self.init_chains(64, generator)
            samples = self.gibbs_chain(start, self.PICTURE_STEPS, generator).v
        return {
            "cov_filters": grid(self.filters),
            "mean_filters": grid(self.weight),
            "samples": grid(samples.T),
        }

    #: sampler steps from :meth:`init_chains` to the ``samples`` picture
    PICTURE_STEPS: ClassVar[int] = 200

    def extra_repr(self) -> str:
        return (
            f"n_visible={self.n_visible}, n_mean_hidden={self.n_mean_hidden}, "
            f"n_cov_hidden={self.n_cov_hidden}, sampler={self.sampler!r}"
        )


# -- annealing path -----------------------------------------------------------------------
@dataclass
class _MeanCovPath:
    """``log f_β(x) = -½ xᵀx + Σ softplus(β(bᵐ + xᵀW)) + Σ softplus(β(bᶜ - ½ (xᵀR)²))``.

    Every hidden bias and interaction is scaled by β, the quadratic ``½ xᵀx`` is not, so
    ``f_β`` is again a mean-covariance RBM, with parameters ``(βW, βbᵐ, √β R, βbᶜ)``:
    ``β · ½ hᶜ (xᵀr)² = ½ hᶜ (xᵀ √β r)²``. At β = 0 it is ``N(0, I)`` times ``M + F`` free
    binary units, ``log Z₀ = (D/2) log 2π + (M + F) log 2``. Each transition is the model's
    own sampler at β: exact block Gibbs (``h | x``, then ``x | h`` Gaussian with precision
    ``I + β R diag(hᶜ) Rᵀ`` and mean ``C β W hᵐ``), or one HMC trajectory on ``-log f_β``.
    """

    weight: Tensor
    mean_bias: Tensor
    filters: Tensor
    cov_bias: Tensor
    sampler: Sampler
    hmc_steps: int
    hmc_step_size: float

    @property
    def log_z_base(self) -> float:
        n_visible = self.weight.shape[0]
        n_hidden = self.weight.shape[1] + self.filters.shape[1]
        return 0.5 * n_visible * math.log(2.0 * math.pi) + n_hidden * math.log(2.0)

    def _params(self, beta: float) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        return (
            beta * self.weight,
            beta * self.mean_bias,
            math.sqrt(beta) * self.filters,
            beta * self.cov_bias,
        )

    def sample_base(self, n: int, generator: torch.Generator) -> Tensor:
        w = self.weight
        return torch.randn((n, w.shape[0]), generator=generator, device=w.device, dtype=w.dtype)

    def log_f(self, v: Tensor, beta: float) -> Tensor:
        return -MC.mc_free_energy(v, *self._params(beta))

    def advance(
        self, v: Tensor, beta_prev: float, beta: float, generator: torch.Generator
    ) -> tuple[Tensor, Tensor]:
        # One xᵀW and one xᵀR serve both log f's and (for Gibbs) the hidden step: the tempered
        # hidden inputs are β (bᵐ + xᵀW) and β (bᶜ - ½ (xᵀR)²) at every β.
        pre_mean = MC.mc_mean_input(v, self.weight, self.mean_bias)
        pre_cov = MC.mc_cov_input(v, self.filters, self.cov_bias)
        quad = 0.5 * (v * v).sum(-1)

        def log_f(b: float) -> Tensor:
            return softplus(b * pre_mean).sum(-1) + softplus(b * pre_cov).sum(-1) - quad

        delta = log_f(beta) - log_f(beta_prev)
        if self.sampler == "hmc":
            return delta, self.transition(v, beta, generator)
        pre = torch.cat([pre_mean, pre_cov], dim=-1)
        u_h = torch.rand(pre.shape, generator=generator, device=v.device, dtype=v.dtype)
        h = bernoulli_from_uniform(torch.sigmoid(beta * pre), u_h)
        z = torch.randn(v.shape, generator=generator, device=v.device, dtype=v.dtype)
        w, _, r, _ = self._params(beta)
        n_mean = self.weight.shape[1]
        return delta, MC.mc_sample_visible(h[:, :n_mean], h[:, n_mean:], z, w, r)[0]

    def transition(self, v: Tensor, beta: float, generator: torch.Generator) -> Tensor:
        params = self._params(beta)
        if self.sampler == "hmc":
            p = torch.randn(v.shape, generator=generator, device=v.device, dtype=v.dtype)
            u = torch.rand((v.shape[0], 1), generator=generator, device=v.device, dtype=v.dtype)
            return MC.mc_hmc_step(
                v, p, u, *params, step_size=self.hmc_step_size, n_leapfrog=self.hmc_steps
            )[0]
        n_hidden = self.weight.shape[1] + self.filters.shape[1]
        u_h = torch.rand(
            (v.shape[0], n_hidden), generator=generator, device=v.device, dtype=v.dtype
        )
        z = torch.randn(v.shape, generator=generator, device=v.device, dtype=v.dtype)
        return MC.mc_gibbs_step(v, u_h, z, *params)[0]
