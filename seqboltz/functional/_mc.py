"""Mean-covariance RBM math as pure tensor functions (Ranzato & Hinton 2010).

Notation (signs as in DESIGN.md, "Mean-covariance RBM"):

* ``x``: real-valued visibles ``(..., D)``;
* ``h_mean``: mean hidden units ``hᵐ (..., M)``, ``h_cov``: covariance hidden units
  ``hᶜ (..., F)``, both binary (or probabilities where a mean-field value is wanted);
* ``weight``: mean filters ``W (D, M)``; ``mean_bias``: ``bᵐ (..., M)``;
* ``filters``: covariance filters ``R = [r⁽¹⁾ … r⁽ᶠ⁾]`` of shape ``(D, F)``, one covariance
  hidden unit per filter; ``cov_bias``: ``bᶜ (..., F)``.

Energy (Ranzato & Hinton 2010, "Modeling pixel means and covariances using factorized
third-order Boltzmann machines", CVPR, eqs. 1-3 with the factor loadings ``P`` fixed to the
identity; Goodfellow, Bengio & Courville 2016, §20.5.2)::

    E_m(x, hᵐ) = ½ xᵀx - Σⱼ xᵀW:,ⱼ hᵐⱼ - Σⱼ bᵐⱼ hᵐⱼ
    E_c(x, hᶜ) = ½ Σⱼ hᶜⱼ (xᵀr⁽ʲ⁾)² - Σⱼ bᶜⱼ hᶜⱼ
    E = E_m + E_c

Given the hiddens the visibles are Gaussian, ``p(x | h) = N(C W hᵐ, C)`` with precision
``Λ(hᶜ) = C⁻¹ = I + Σⱼ hᶜⱼ r⁽ʲ⁾r⁽ʲ⁾ᵀ = I + R diag(hᶜ) Rᵀ``; given the visibles the hiddens are
independent: ``p(hᵐⱼ = 1 | x) = sigm(bᵐⱼ + xᵀW:,ⱼ)``,
``p(hᶜⱼ = 1 | x) = sigm(bᶜⱼ - ½ (xᵀr⁽ʲ⁾)²)``. Summing the hiddens out gives the free energy
``F(x) = ½ xᵀx - Σ softplus(bᵐ + xᵀW) - Σ softplus(bᶜ - ½ (xᵀR)²)``; integrating the
visibles out gives ``F(h)`` in closed form (a Gaussian integral), so that log Z of a small
model is a sum over the ``2^(M+F)`` hidden states.

Sampling takes explicit noise, as everywhere in seqboltz: uniforms for the binary units,
standard normals for the Gaussian visibles (drawn through a Cholesky factor of ``Λ``), and
for Hamiltonian Monte Carlo (Duane et al. 1987; Neal 2011, "MCMC using Hamiltonian
dynamics") a standard-normal momentum and one uniform for the accept test. Ranzato & Hinton
sample with HMC on ``F(x)``; exact block Gibbs costs one ``D × D`` Cholesky factorisation per
example, which is cheap for small patches.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from seqboltz.functional._rbm import bernoulli_from_uniform, softplus

__all__ = [
    "hmc_step",
    "mc_cov_input",
    "mc_energy",
    "mc_free_energy",
    "mc_free_energy_grad",
    "mc_gibbs_step",
    "mc_hidden_free_energy",
    "mc_hidden_probs",
    "mc_hmc_step",
    "mc_mean_input",
    "mc_precision_cholesky",
    "mc_sample_visible",
    "mc_visible_mean",
]


def mc_mean_input(x: Tensor, weight: Tensor, mean_bias: Tensor) -> Tensor:
    """Total input to the mean hidden units, ``bᵐ + xᵀW``.

    Args:
        x: visibles ``(..., D)``.
        weight: mean filters ``W (D, M)``.
        mean_bias: ``bᵐ (..., M)``.

    Returns:
        ``(..., M)``.
    """
    return x @ weight + mean_bias


def mc_cov_input(x: Tensor, filters: Tensor, cov_bias: Tensor) -> Tensor:
    """Total input to the covariance hidden units, ``bᶜ - ½ (xᵀR)²``.

    Args:
        x: visibles ``(..., D)``.
        filters: covariance filters ``R (D, F)``.
        cov_bias: ``bᶜ (..., F)``.

    Returns:
        ``(..., F)``.
    """
    return cov_bias - 0.5 * (x @ filters) ** 2


def mc_energy(
    x: Tensor,
    h_mean: Tensor,
    h_cov: Tensor,
    weight: Tensor,
    mean_bias: Tensor,
    filters: Tensor,
    cov_bias: Tensor,
) -> Tensor:
    """Joint energy ``E(x, h) = E_m(x, hᵐ) + E_c(x, hᶜ)`` (see the module docstring).

    Args:
        x: ``(..., D)``; h_mean: ``(..., M)``; h_cov: ``(..., F)``;
        weight: ``(D, M)``; mean_bias: ``(..., M)``; filters: ``(D, F)``; cov_bias: ``(..., F)``.

    Returns:
        ``(...)``, one energy per configuration.
    """
    proj = x @ filters
    e_mean = 0.5 * (x * x).sum(-1) - ((x @ weight) * h_mean).sum(-1) - (mean_bias * h_mean).sum(-1)
    e_cov = 0.5 * (h_cov * proj**2).sum(-1) - (cov_bias * h_cov).sum(-1)
    return e_mean + e_cov


def mc_free_energy(
    x: Tensor, weight: Tensor, mean_bias: Tensor, filters: Tensor, cov_bias: Tensor
) -> Tensor:
    """``F(x) = ½ xᵀx - Σ softplus(bᵐ + xᵀW) - Σ softplus(bᶜ - ½ (xᵀR)²)``.

    Both hidden layers summed out (Ranzato & Hinton 2010, eq. 5).

    Returns:
        ``(...)`` for ``x`` of shape ``(..., D)``.
    """
    return (
        0.5 * (x * x).sum(-1)
        - softplus(mc_mean_input(x, weight, mean_bias)).sum(-1)
        - softplus(mc_cov_input(x, filters, cov_bias)).sum(-1)
    )


def mc_free_energy_grad(
    x: Tensor, weight: Tensor, mean_bias: Tensor, filters: Tensor, cov_bias: Tensor
) -> Tensor:
    """Gradient of the free energy with respect to the visibles, ``∂F/∂x``.

    ``∂F/∂x = x - W sigm(bᵐ + Wᵀx) + R [sigm(bᶜ - ½ (Rᵀx)²) ⊙ Rᵀx]``, i.e.
    ``x - W p(hᵐ|x) + R (p(hᶜ|x) ⊙ Rᵀx)``: the force HMC integrates. Written out so that it
    works without autograd (under ``torch.no_grad`` and in exported graphs).

    Returns:
        ``(..., D)``.
    """
    proj = x @ filters
    p_mean = torch.sigmoid(x @ weight + mean_bias)
    p_cov = torch.sigmoid(cov_bias - 0.5 * proj**2)
    return x - p_mean @ weight.T + (p_cov * proj) @ filters.T


def mc_hidden_probs(
    x: Tensor, weight: Tensor, mean_bias: Tensor, filters: Tensor, cov_bias: Tensor
) -> tuple[Tensor, Tensor]:
    """``p(hᵐ = 1 | x) = sigm(bᵐ + xᵀW)`` and ``p(hᶜ = 1 | x) = sigm(bᶜ - ½ (xᵀR)²)``.

    Returns:
        ``(p_mean (..., M), p_cov (..., F))``.
    """
    return (
        torch.sigmoid(mc_mean_input(x, weight, mean_bias)),
        torch.sigmoid(mc_cov_input(x, filters, cov_bias)),
    )


def mc_precision_cholesky(h_cov: Tensor, filters: Tensor) -> Tensor:
    """Lower Cholesky factor ``L`` of the precision ``Λ = I + R diag(hᶜ) Rᵀ = L Lᵀ``.

    ``hᶜ`` may hold probabilities (any values ``>= 0`` keep ``Λ ⪰ I`` positive definite).

    Args:
        h_cov: covariance hiddens ``(..., F)``.
        filters: ``R (D, F)``.

    Returns:
        ``(..., D, D)`` lower-triangular.
    """
    n_visible = filters.shape[0]
    eye = torch.eye(n_visible, dtype=filters.dtype, device=filters.device)
    scaled = filters * h_cov.unsqueeze(-2)  # (..., D, F): R diag(hᶜ)
    precision = eye + scaled @ filters.T
    return torch.linalg.cholesky(precision)


def _solve_lower(chol: Tensor, rhs: Tensor, transpose: bool = False) -> Tensor:
    """``L⁻¹ b`` (or ``L⁻ᵀ b``) for ``L (..., D, D)`` and vectors ``b (..., D)``."""
    matrix = chol.mT if transpose else chol
    out = torch.linalg.solve_triangular(matrix, rhs.unsqueeze(-1), upper=transpose)
    return out.squeeze(-1)


def mc_visible_mean(h_mean: Tensor, h_cov: Tensor, weight: Tensor, filters: Tensor) -> Tensor:
    """Mean of ``p(x | h) = N(C W hᵐ, C)``, ``C = (I + R diag(hᶜ) Rᵀ)⁻¹``.

    Args:
        h_mean: ``(..., M)``; h_cov: ``(..., F)``; weight: ``(D, M)``; filters: ``(D, F)``.

    Returns:
        ``(..., D)``.
    """
    chol = mc_precision_cholesky(h_cov, filters)
    return _solve_lower(chol, _solve_lower(chol, h_mean @ weight.T), transpose=True)


def mc_sample_visible(
    h_mean: Tensor, h_cov: Tensor, visible_normal: Tensor, weight: Tensor, filters: Tensor
) -> tuple[Tensor, Tensor]:
    """Exact sample of ``p(x | h) = N(C W hᵐ, C)`` from explicit standard-normal noise.

    With ``Λ = C⁻¹ = L Lᵀ``: ``μ = L⁻ᵀ L⁻¹ W hᵐ`` and ``x = μ + L⁻ᵀ z = L⁻ᵀ (L⁻¹ W hᵐ + z)``,
    whose covariance is ``L⁻ᵀ L⁻¹ = Λ⁻¹ = C``.

    Args:
        h_mean: ``(..., M)``; h_cov: ``(..., F)``.
        visible_normal: ``z`` standard normal ``(..., D)``.
        weight: ``(D, M)``; filters: ``(D, F)``.

    Returns:
        ``(x, μ)``, both ``(..., D)``.
    """
    chol = mc_precision_cholesky(h_cov, filters)
    white = _solve_lower(chol, h_mean @ weight.T)
    both = _solve_lower(chol, torch.stack([white, white + visible_normal]), transpose=True)
    return both[1], both[0]


def mc_hidden_free_energy(
    h_mean: Tensor,
    h_cov: Tensor,
    weight: Tensor,
    mean_bias: Tensor,
    filters: Tensor,
    cov_bias: Tensor,
) -> Tensor:
    """Free energy of the hiddens, ``F(h) = -log ∫ exp(-E(x, h)) dx``, in closed form.

    ``E(x, h) = ½ xᵀΛx - xᵀm - bᵐᵀhᵐ - bᶜᵀhᶜ`` with ``Λ = I + R diag(hᶜ) Rᵀ``, ``m = W hᵐ``;
    the Gaussian integral gives
    ``F(h) = -bᵐᵀhᵐ - bᶜᵀhᶜ - ½ mᵀΛ⁻¹m + ½ log det Λ - (D/2) log 2π``,
    with ``log det Λ = 2 Σ log diag L`` and ``mᵀΛ⁻¹m = |L⁻¹m|²``.

    Returns:
        ``(...)`` for ``h_mean (..., M)``, ``h_cov (..., F)``.
    """
    n_visible = filters.shape[0]
    chol = mc_precision_cholesky(h_cov, filters)
    white = _solve_lower(chol, h_mean @ weight.T)
    half_log_det = torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)).sum(-1)
    return (
        -(mean_bias * h_mean).sum(-1)
        - (cov_bias * h_cov).sum(-1)
        - 0.5 * (white * white).sum(-1)
        + half_log_det
        - 0.5 * n_visible * math.log(2.0 * math.pi)
    )


def mc_gibbs_step(
    x: Tensor,
    hidden_uniform: Tensor,
    visible_normal: Tensor,
    weight: Tensor,
    mean_bias: Tensor,
    filters: Tensor,
    cov_bias: Tensor,
) -> tuple[Tensor, Tensor, Tensor]:
    """One exact block Gibbs step ``x → h → x'`` with explicit noise.

    Args:
        x: current visibles ``(B, D)``.
        hidden_uniform: uniforms ``(B, M + F)`` (mean units first, then covariance units).
        visible_normal: standard normals ``(B, D)``.
        weight, mean_bias, filters, cov_bias: parameters (see the module docstring).

    Returns:
        ``(x_next, x_mean, h)``: the sample ``(B, D)``, the mean of ``p(x | h)`` ``(B, D)`` and
        the sampled hiddens ``h = [hᵐ, hᶜ]`` ``(B, M + F)``.
    """
    p_mean, p_cov = mc_hidden_probs(x, weight, mean_bias, filters, cov_bias)
    h = bernoulli_from_uniform(torch.cat([p_mean, p_cov], dim=-1), hidden_uniform)
    n_mean = weight.shape[1]
    x_next, x_mean = mc_sample_visible(
        h[..., :n_mean], h[..., n_mean:], visible_normal, weight, filters
    )
    return x_next, x_mean, h


def hmc_step(
    x: Tensor,
    momentum: Tensor,
    accept_uniform: Tensor,
    energy: Callable[[Tensor], Tensor],
    grad: Callable[[Tensor], Tensor],
    step_size: float,
    n_leapfrog: int,
) -> tuple[Tensor, Tensor]:
    """One Hamiltonian Monte Carlo transition on ``p(x) ∝ exp(-U(x))`` with explicit noise.

    Hamiltonian ``H(x, p) = U(x) + ½ pᵀp``; ``n_leapfrog`` leapfrog steps of size
    ``step_size`` from ``(x, momentum)``, then the Metropolis test: the proposal is accepted
    where ``u < exp(H(x, p) - H(x', p'))`` (Duane et al. 1987; Neal 2011, fig. 2). Every chain
    (row) is accepted or rejected on its own.

    Args:
        x: current states ``(B, D)``.
        momentum: standard-normal momentum ``p (B, D)``.
        accept_uniform: uniforms in ``[0, 1)``, ``(B,)`` or ``(B, 1)``.
        energy: ``U``, ``(B, D) → (B,)``.
        grad: ``∂U/∂x``, ``(B, D) → (B, D)``.
        step_size: leapfrog step ``ε > 0``.
        n_leapfrog: leapfrog steps ``L >= 1``.

    Returns:
        ``(x_next (B, D), accepted (B,))``, ``accepted`` as ``0.``/``1.``.
    """
    if n_leapfrog < 1 or not step_size > 0:
        raise ValueError(f"need n_leapfrog >= 1 and step_size > 0, got {n_leapfrog}, {step_size}")
    h_start = energy(x) + 0.5 * (momentum * momentum).sum(-1)
    q = x
    p = momentum - 0.5 * step_size * grad(q)
    for i in range(n_leapfrog):
        q = q + step_size * p
        if i < n_leapfrog - 1:
            p = p - step_size * grad(q)
    p = p - 0.5 * step_size * grad(q)
    h_end = energy(q) + 0.5 * (p * p).sum(-1)
    # exp(ΔH) ≥ u ⇔ ΔH ≥ log u; a non-finite proposal (NaN energy) is rejected.
    log_u = torch.log(accept_uniform.reshape(h_start.shape))
    accepted = (h_start - h_end) >= log_u
    accepted = accepted & torch.isfinite(h_end)
    return torch.where(accepted.unsqueeze(-1), q, x), accepted.to(x.dtype)


def mc_hmc_step(
    x: Tensor,
    momentum: Tensor,
    accept_uniform: Tensor,
    weight: Tensor,
    mean_bias: Tensor,
    filters: Tensor,
    cov_bias: Tensor,
    step_size: float,
    n_leapfrog: int,
) -> tuple[Tensor, Tensor]:
    """:func:`hmc_step` on the mcRBM free energy ``F(x)`` (Ranzato & Hinton 2010, §3).

    Returns:
        ``(x_next (B, D), accepted (B,))``.
    """

    def energy(v: Tensor) -> Tensor:
        return mc_free_energy(v, weight, mean_bias, filters, cov_bias)

    def grad(v: Tensor) -> Tensor:
        return mc_free_energy_grad(v, weight, mean_bias, filters, cov_bias)

    return hmc_step(x, momentum, accept_uniform, energy, grad, step_size, n_leapfrog)
