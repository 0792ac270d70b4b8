"""Restricted Boltzmann machine math as pure tensor functions.

Every function takes all parameters as arguments and broadcasts over leading batch
dimensions, so conditional models (whose biases depend on a history or a style) call
the same code with per-example biases of shape ``(B, D)`` / ``(B, H)`` instead of
``(D,)`` / ``(H,)``.

Notation (signs as in DESIGN.md):

* ``v``: visible units ``(..., D)``; ``h``: hidden units ``(..., H)``;
* ``weight``: ``W`` of shape ``(D, H)``; ``visible_bias``: ``a`` of shape ``(..., D)``;
  ``hidden_bias``: ``b`` of shape ``(..., H)``;
* Gaussian visibles have per-unit standard deviations ``σ = exp(log_sigma)``, ``(..., D)``.

Binary RBM (Smolensky 1986; Hinton 2002):
    ``E(v, h) = -aᵀv - bᵀh - vᵀWh``,
    ``F(v) = -aᵀv - Σⱼ softplus(bⱼ + (vᵀW)ⱼ)``.

Gaussian-Bernoulli RBM with learned variances (Hinton & Salakhutdinov 2006; Cho et al. 2011):
    ``E(v, h) = Σᵢ (vᵢ - aᵢ)² / (2σᵢ²) - bᵀh - Σᵢⱼ (vᵢ/σᵢ) Wᵢⱼ hⱼ``,
    ``F(v) = Σᵢ (vᵢ - aᵢ)² / (2σᵢ²) - Σⱼ softplus(bⱼ + ((v/σ)ᵀW)ⱼ)``,
    ``p(hⱼ=1 | v) = sigm(bⱼ + Σᵢ Wᵢⱼ vᵢ/σᵢ)``, ``p(vᵢ | h) = N(aᵢ + σᵢ Σⱼ Wᵢⱼ hⱼ, σᵢ²)``.

Sampling takes explicit noise: ``u`` uniform in [0, 1) for Bernoulli units (a unit is on
iff ``u < p``) and ``z`` standard normal for Gaussian units (``v = μ + σ z``). The same
noise therefore gives the same sample in torch, in an exported ONNX graph and in the
numpy runtime.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "ContrastiveStep",
    "RBMGradients",
    "bernoulli_free_energy_from_input",
    "bernoulli_from_uniform",
    "bernoulli_rbm_cd_gradients",
    "bernoulli_rbm_energy",
    "bernoulli_rbm_free_energy",
    "bernoulli_rbm_gibbs_step",
    "bernoulli_rbm_hidden_free_energy",
    "bernoulli_visible_probs",
    "contrastive_divergence",
    "gaussian_energy_from_coupling",
    "gaussian_free_energy_from_input",
    "gaussian_hidden_free_energy_from_coupling",
    "gaussian_rbm_cd_gradients",
    "gaussian_rbm_energy",
    "gaussian_rbm_free_energy",
    "gaussian_rbm_gibbs_step",
    "gaussian_rbm_hidden_free_energy",
    "gaussian_visible_mean",
    "hidden_input",
    "hidden_probs",
    "softplus",
    "softplus_sum_from_probs",
]


def softplus(x: Tensor) -> Tensor:
    """``log(1 + eˣ)``, elementwise.

    Float32 uses ``relu(x) - log σ(|x|)`` (absolute error ≤ 1e-6, the gradient is exactly
    ``σ(x)``): about twice as fast, forward and backward, as ``F.softplus`` on CPU builds
    whose ``log1p`` is not vectorised (measured: 310 µs against 590 µs for a 200×500 batch),
    and the free energy's softplus is the costliest elementwise op of a CD step. Other
    dtypes (float64 evaluation) use ``F.softplus``.
    """
    if x.dtype == torch.float32:
        return torch.relu(x) - torch.log(torch.sigmoid(x.abs()))
    return F.softplus(x)


def bernoulli_from_uniform(probs: Tensor, uniform: Tensor) -> Tensor:
    """Sample Bernoulli units from explicit uniform noise: ``1`` where ``u < p``.

    Args:
        probs: probabilities of each unit being on, any shape.
        uniform: noise in ``[0, 1)`` of the same shape.

    Returns:
        Tensor of ``0.``/``1.`` with the dtype of ``probs``.
    """
    return (uniform < probs).to(probs.dtype)


def hidden_input(v: Tensor, weight: Tensor, hidden_bias: Tensor) -> Tensor:
    """Total input to each hidden unit, ``b + vᵀW``.

    Args:
        v: visible states ``(..., D)`` (for Gaussian units pass ``v / σ``).
        weight: ``(D, H)``.
        hidden_bias: ``(..., H)``, broadcast against ``v @ weight``.

    Returns:
        ``(..., H)``.
    """
    if v.dim() == 2 and hidden_bias.dim() <= 2:
        return torch.addmm(hidden_bias, v, weight)  # one fused GEMM on the hot path
    return v @ weight + hidden_bias


def hidden_probs(v: Tensor, weight: Tensor, hidden_bias: Tensor) -> Tensor:
    """``p(h = 1 | v) = sigm(b + vᵀW)``, ``(..., H)``; see :func:`hidden_input`."""
    return torch.sigmoid(hidden_input(v, weight, hidden_bias))


def bernoulli_visible_probs(h: Tensor, weight: Tensor, visible_bias: Tensor) -> Tensor:
    """``p(v = 1 | h) = sigm(a + W h)`` for binary visibles.

    Args:
        h: hidden states ``(..., H)``.
        weight: ``(D, H)``.
        visible_bias: ``(..., D)``.

    Returns:
        ``(..., D)``.
    """
    return torch.sigmoid(h @ weight.T + visible_bias)


def gaussian_visible_mean(
    h: Tensor, weight: Tensor, visible_bias: Tensor, log_sigma: Tensor
) -> Tensor:
    """Mean of ``p(v | h) = N(a + σ ⊙ W h, σ²)`` for Gaussian visibles, ``(..., D)``."""
    return visible_bias + torch.exp(log_sigma) * (h @ weight.T)


def bernoulli_rbm_energy(
    v: Tensor, h: Tensor, weight: Tensor, visible_bias: Tensor, hidden_bias: Tensor
) -> Tensor:
    """Joint energy ``E(v, h) = -aᵀv - bᵀh - vᵀWh`` of a binary RBM.

    Args:
        v: ``(..., D)``; h: ``(..., H)``; weight: ``(D, H)``; biases ``(..., D)``, ``(..., H)``.

    Returns:
        ``(...)``, one energy per configuration.
    """
    return -(v * visible_bias).sum(-1) - (h * hidden_bias).sum(-1) - ((v @ weight) * h).sum(-1)


def bernoulli_rbm_free_energy(
    v: Tensor, weight: Tensor, visible_bias: Tensor, hidden_bias: Tensor
) -> Tensor:
    """Free energy ``F(v) = -aᵀv - Σⱼ softplus(bⱼ + (vᵀW)ⱼ)`` (hidden units summed out).

    Returns:
        ``(...)`` for ``v`` of shape ``(..., D)``.
    """
    return -(v * visible_bias).sum(-1) - softplus(hidden_input(v, weight, hidden_bias)).sum(-1)


def bernoulli_rbm_hidden_free_energy(
    h: Tensor, weight: Tensor, visible_bias: Tensor, hidden_bias: Tensor
) -> Tensor:
    """Free energy of the hiddens, ``F(h) = -bᵀh - Σᵢ softplus(aᵢ + (W h)ᵢ)`` (visibles summed out).

    Returns:
        ``(...)`` for ``h`` of shape ``(..., H)``.
    """
    return -(h * hidden_bias).sum(-1) - softplus(h @ weight.T + visible_bias).sum(-1)


def gaussian_rbm_energy(
    v: Tensor,
    h: Tensor,
    weight: Tensor,
    visible_bias: Tensor,
    hidden_bias: Tensor,
    log_sigma: Tensor,
) -> Tensor:
    """``E(v, h) = Σᵢ (vᵢ - aᵢ)²/(2σᵢ²) - bᵀh - Σᵢⱼ (vᵢ/σᵢ) Wᵢⱼ hⱼ``, shape ``(...)``."""
    return gaussian_energy_from_coupling(v, h, visible_bias, hidden_bias, log_sigma, h @ weight.T)


def gaussian_rbm_free_energy(
    v: Tensor,
    weight: Tensor,
    visible_bias: Tensor,
    hidden_bias: Tensor,
    log_sigma: Tensor,
) -> Tensor:
    """``F(v) = Σᵢ (vᵢ - aᵢ)²/(2σᵢ²) - Σⱼ softplus(bⱼ + ((v/σ)ᵀW)ⱼ)``, shape ``(...)``."""
    pre = hidden_input(v * torch.exp(-log_sigma), weight, hidden_bias)
    return gaussian_free_energy_from_input(v, visible_bias, log_sigma, pre)


def gaussian_free_energy_from_input(
    v: Tensor, visible_bias: Tensor, log_sigma: Tensor, hidden_in: Tensor
) -> Tensor:
    """``F(v) = Σᵢ (vᵢ - aᵢ)²/(2σᵢ²) - Σⱼ softplus(xⱼ)`` given the hidden input ``x`` ``(..., H)``.

    Shared by every Gaussian-visible model whatever its coupling (plain, conditional with
    dynamic biases, or factored): they differ only in how ``x = b̂ + (v/σ)ᵀŴ`` is formed.
    """
    quad = 0.5 * (((v - visible_bias) * torch.exp(-log_sigma)) ** 2).sum(-1)
    return quad - softplus(hidden_in).sum(-1)


def bernoulli_free_energy_from_input(v: Tensor, visible_bias: Tensor, hidden_in: Tensor) -> Tensor:
    """``F(v) = -aᵀv - Σⱼ softplus(xⱼ)`` given the hidden input ``x = b + vᵀW`` ``(..., H)``.

    The binary counterpart of :func:`gaussian_free_energy_from_input`: a CD step that has
    already formed ``x`` gets ``F`` without another GEMM. Returns ``(...)``.
    """
    if v.dim() == 2 and visible_bias.dim() == 1:
        linear = torch.mv(v, visible_bias)
    else:
        linear = (v * visible_bias).sum(-1)
    return -linear - softplus(hidden_in).sum(-1)


def gaussian_energy_from_coupling(
    v: Tensor,
    h: Tensor,
    visible_bias: Tensor,
    hidden_bias: Tensor,
    log_sigma: Tensor,
    coupling: Tensor,
) -> Tensor:
    """``E = Σᵢ (vᵢ-aᵢ)²/(2σᵢ²) - bᵀh - Σᵢ (vᵢ/σᵢ) mᵢ``, given the coupling ``m = Ŵh (..., D)``."""
    inv_sigma = torch.exp(-log_sigma)
    quad = 0.5 * (((v - visible_bias) * inv_sigma) ** 2).sum(-1)
    return quad - (h * hidden_bias).sum(-1) - (v * inv_sigma * coupling).sum(-1)


def gaussian_rbm_hidden_free_energy(
    h: Tensor,
    weight: Tensor,
    visible_bias: Tensor,
    hidden_bias: Tensor,
    log_sigma: Tensor,
) -> Tensor:
    """Free energy of the hiddens with Gaussian visibles integrated out analytically.

    Completing the square in each ``vᵢ`` gives
    ``F(h) = -bᵀh - Σᵢ [aᵢ (Wh)ᵢ / σᵢ + (Wh)ᵢ² / 2] - Σᵢ log σᵢ - (D/2) log 2π``,
    i.e. ``exp(-F(h)) = ∫ exp(-E(v, h)) dv``.

    Returns:
        ``(...)`` for ``h`` of shape ``(..., H)``.
    """
    return gaussian_hidden_free_energy_from_coupling(
        h, h @ weight.T, visible_bias, hidden_bias, log_sigma
    )


def gaussian_hidden_free_energy_from_coupling(
    h: Tensor, coupling: Tensor, visible_bias: Tensor, hidden_bias: Tensor, log_sigma: Tensor
) -> Tensor:
    """:func:`gaussian_rbm_hidden_free_energy` given the coupling ``m = W h`` ``(..., D)``.

    Any model whose energy is ``Σᵢ (vᵢ-aᵢ)²/(2σᵢ²) - bᵀh - Σᵢ (vᵢ/σᵢ) mᵢ(h)`` (plain,
    conditional or factored couplings) integrates ``v`` out with this formula.
    """
    inv_sigma = torch.exp(-log_sigma)
    n_visible = coupling.shape[-1]
    log_norm = log_sigma.sum(-1) + 0.5 * n_visible * math.log(2.0 * math.pi)
    return (
        -(h * hidden_bias).sum(-1)
        - (visible_bias * inv_sigma * coupling + 0.5 * coupling**2).sum(-1)
        - log_norm
    )


def bernoulli_rbm_gibbs_step(
    v: Tensor,
    hidden_uniform: Tensor,
    visible_uniform: Tensor,
    weight: Tensor,
    visible_bias: Tensor,
    hidden_bias: Tensor,
) -> tuple[Tensor, Tensor, Tensor]:
    """One block Gibbs step ``v → h → v'`` of a binary RBM with explicit noise.

    Args:
        v: current visible states ``(B, D)``.
        hidden_uniform: uniform noise ``(B, H)``.
        visible_uniform: uniform noise ``(B, D)``.
        weight, visible_bias, hidden_bias: parameters (see module docstring).

    Returns:
        ``(v_next, v_probs, h)``: sampled next visibles ``(B, D)``, their probabilities
        ``p(v' | h)`` ``(B, D)`` and the sampled hidden states ``(B, H)``.
    """
    h = bernoulli_from_uniform(hidden_probs(v, weight, hidden_bias), hidden_uniform)
    v_probs = bernoulli_visible_probs(h, weight, visible_bias)
    return bernoulli_from_uniform(v_probs, visible_uniform), v_probs, h


def gaussian_rbm_gibbs_step(
    v: Tensor,
    hidden_uniform: Tensor,
    visible_normal: Tensor,
    weight: Tensor,
    visible_bias: Tensor,
    hidden_bias: Tensor,
    log_sigma: Tensor,
) -> tuple[Tensor, Tensor, Tensor]:
    """One block Gibbs step ``v → h → v'`` of a Gaussian-Bernoulli RBM with explicit noise.

    Args:
        v: current visible states ``(B, D)``.
        hidden_uniform: uniform noise ``(B, H)``.
        visible_normal: standard normal noise ``(B, D)``.

    Returns:
        ``(v_next, v_mean, h)``: ``v_next = v_mean + σ ⊙ z`` ``(B, D)``, the conditional
        mean ``(B, D)`` and the sampled hidden states ``(B, H)``.
    """
    inv_sigma = torch.exp(-log_sigma)
    h = bernoulli_from_uniform(hidden_probs(v * inv_sigma, weight, hidden_bias), hidden_uniform)
    v_mean = gaussian_visible_mean(h, weight, visible_bias, log_sigma)
    return v_mean + torch.exp(log_sigma) * visible_normal, v_mean, h


# -- contrastive divergence in closed form ---------------------------------------------------
# The CD/PCD loss of the training system is L = mean F(v⁺) - mean F(v⁻) (+ a sparsity
# penalty λ‖t - q‖², q = mean p(h | v⁺)), with the negative particles v⁻ held fixed
# (Hinton 2002; Tieleman 2008). Every parameter of an RBM-family free energy enters through
# the hidden input x = b + (v/σ)ᵀW or the visible terms, so the gradient has a closed form:
#   ∂L/∂x⁺ = -r / B  with r = p⁺ + 2λ(t - q) ⊙ p⁺ ⊙ (1 - p⁺),  p = sigm(x);   ∂L/∂x⁻ = p⁻ / B';
#   ∂L/∂W = (v⁻/σ)ᵀ p⁻ / B' - (v⁺/σ)ᵀ r / B;   ∂L/∂b = mean p⁻ - mean r;
#   binary:    ∂L/∂a = mean v⁻ - mean v⁺;
#   Gaussian:  ∂L/∂a = (mean v⁻ - mean v⁺) / σ²,
#              ∂L/∂log σᵢ = mean⁻ ((vᵢ - aᵢ)/σᵢ)² - mean⁺ ((vᵢ - aᵢ)/σᵢ)² - Σⱼ Wᵢⱼ (∂L/∂W)ᵢⱼ
# (the last term because ∂xⱼ/∂log σᵢ = -(vᵢ/σᵢ) Wᵢⱼ, so the whole coupling part of the log σ
# gradient is a row sum of W ⊙ ∂L/∂W: no GEMM). With the chain started at the data (CD),
# CD-k costs 2k + 3 GEMMs: x⁺ (shared with the chain's first hidden step), 2k - 1 in the
# chain, x⁻, and the two products of ∂L/∂W (the second accumulated into the first by addmm).
# Autograd through F forms x⁺ twice more and adds the backward GEMMs.


class ContrastiveStep(NamedTuple):
    """The chain and the intermediate products of one closed-form CD/PCD gradient.

    Attributes:
        chain: the chain's last visible sample ``(B', D)``, the next state of persistent
            chains (its last mean when the last visible noise was not given).
        negative: the negative particle ``v⁻`` the gradient used ``(B', D)``: ``chain``, or
            ``v_mean`` for mean-field negatives.
        v_mean: parameters of the last ``p(v | h)`` ``(B', D)`` (for CD-1 from the data, the
            one-step reconstruction).
        data_hidden_input: ``x⁺ = b + (v⁺/σ)ᵀW`` ``(B, H)``.
        negative_hidden_input: ``x⁻ = b + (v⁻/σ)ᵀW`` ``(B', H)``.
        data_coefficient: ``r = p⁺ + 2λ(t - q) ⊙ p⁺(1 - p⁺)`` ``(B, H)``, so that
            ``∂L/∂x⁺ = -r / B`` (``r = p⁺`` without a sparsity penalty).
        negative_hidden_probs: ``p⁻ = sigm(x⁻)`` ``(B', H)``, so that ``∂L/∂x⁻ = p⁻ / B'``.
        data_hidden_mean: ``q = mean p(h | v⁺)`` ``(H,)`` (the sparsity penalty's argument).
        data_free_energy: ``F(v⁺)`` ``(B,)``, from ``x⁺`` and ``p⁺`` without another GEMM, if
            asked for, else ``None``.
        negative_free_energy: ``F(v⁻)`` ``(B',)`` if asked for, else ``None``.
        data_free_energy_upper: when ``F(v⁺)`` is not asked for, a 0-dim ``U`` with
            ``U - H log 2 ≤ mean F(v⁺) ≤ U`` (``relu(x) ≤ softplus(x) ≤ relu(x) + log 2``): a
            check of the free energy's size and finiteness for one pass over ``x⁺`` instead of
            a softplus; else ``None``.
    """

    chain: Tensor
    negative: Tensor
    v_mean: Tensor
    data_hidden_input: Tensor
    negative_hidden_input: Tensor
    data_coefficient: Tensor
    negative_hidden_probs: Tensor
    data_hidden_mean: Tensor
    data_free_energy: Tensor | None
    negative_free_energy: Tensor | None
    data_free_energy_upper: Tensor | None = None


class RBMGradients(NamedTuple):
    """``∂L/∂θ`` of an unconditional RBM: ``W (D, H)``, ``a (D,)``, ``b (H,)``, ``log σ (D,)``
    (``None`` for binary visibles or a fixed σ)."""

    weight: Tensor
    visible_bias: Tensor
    hidden_bias: Tensor
    log_sigma: Tensor | None = None


def _check_chain_noise(
    hidden_uniform: Tensor, visible_noise: Tensor, negative: str, n_chains: int
) -> int:
    """Validate the stacked noise of a ``k``-step chain; returns ``k``."""
    if negative not in ("sample", "mean_field"):
        raise ValueError(f"negative must be 'sample' or 'mean_field', got {negative!r}")
    if hidden_uniform.dim() != 3 or hidden_uniform.shape[0] < 1:
        raise ValueError(
            f"hidden_uniform must have shape (k >= 1, chains, H); got {tuple(hidden_uniform.shape)}"
        )
    k = hidden_uniform.shape[0]
    allowed = (k, k - 1) if negative == "mean_field" else (k,)
    if visible_noise.dim() != 3 or visible_noise.shape[0] not in allowed:
        raise ValueError(
            f"visible_noise must have shape ({' or '.join(map(str, allowed))}, chains, D) for "
            f"k = {k} and negative={negative!r}; got {tuple(visible_noise.shape)}"
        )
    if hidden_uniform.shape[1] != n_chains or (
        visible_noise.shape[0] and visible_noise.shape[1] != n_chains
    ):
        raise ValueError(
            f"noise for {hidden_uniform.shape[1]} chains but the chains have {n_chains} rows"
        )
    return k


def softplus_sum_from_probs(hidden_in: Tensor, probs: Tensor) -> Tensor:
    """``Σⱼ softplus(xⱼ)`` over the last dimension, given ``x`` and ``p = sigm(x)`` already formed.

    ``softplus(x) = relu(x) - log m`` with ``m = max(p, 1 - p) ∈ [½, 1]``. Since every ``m``
    is at least ½, a product of up to ``c`` of them cannot underflow (``c`` = half the
    exponent range: 63 factors in float32, 511 in float64), so ``Σ log m`` is taken as the sum
    of the logarithms of such products: one logarithm per ``c`` units instead of one per unit
    (the elementwise logarithm dominates the cost of a free energy on a CPU). The relative
    error of a product of ``c`` factors is about ``c`` ulp, i.e. an absolute error of a few
    ``1e-6`` per 63 units in float32 and ``1e-14`` in float64, close to :func:`softplus`'s.
    Used for the free energies that a CD step reports.

    Args:
        hidden_in: ``x`` ``(..., H)``; probs: ``sigm(x)`` ``(..., H)``.

    Returns:
        ``(...)``.
    """
    m = torch.maximum(probs, 1 - probs)
    n = m.shape[-1]
    chunk = _product_chunk(n, m.dtype)
    full = n - n % chunk
    log_m = m[..., :full].unflatten(-1, (full // chunk, chunk)).prod(-1).log_().sum(-1)
    if full < n:
        log_m = log_m + m[..., full:].prod(-1).log_()
    return hidden_in.clamp(min=0).sum(-1).sub_(log_m)


def _product_chunk(n: int, dtype: torch.dtype) -> int:
    """Factors per product in :func:`softplus_sum_from_probs`: at most half the exponent range
    (63 in float32), a divisor of ``n`` when one of at least half that size exists."""
    cap = max(1, int(-math.log2(torch.finfo(dtype).tiny)) // 2)
    if n <= cap:
        return n
    for size in range(cap, cap // 2, -1):
        if n % size == 0:
            return size
    return cap


def _free_energy_upper_bound(
    v: Tensor,
    visible_bias: Tensor,
    inv_sigma: Tensor | None,
    gaussian: bool,
    hidden_in: Tensor,
    v_mean: Tensor | None = None,
) -> Tensor:
    """``U`` (0-dim) with ``U - H log 2 ≤ mean F(v) ≤ U`` for a binary or Gaussian RBM.

    ``F(v) = V(v) - Σⱼ softplus(xⱼ)`` and ``relu(x) ≤ softplus(x) ≤ relu(x) + log 2``, so
    ``U = mean [V(v) - Σⱼ relu(xⱼ)]``: one pass over ``x`` and one over ``v`` (none with
    ``v_mean = mean₀ v`` given, for binary units under a shared bias), no logarithm.
    Non-finite wherever ``F`` is (a NaN or an infinity in ``v``, ``x`` or the biases).
    """
    n = v.shape[0]
    relu_sum = hidden_in.clamp(min=0).sum()
    if not gaussian:
        if visible_bias.dim() == 1 and v.dim() == 2:
            linear = torch.dot(v.mean(0) if v_mean is None else v_mean, visible_bias)
        else:
            linear = (v * visible_bias).sum().div_(n)
        return torch.add(linear, relu_sum, alpha=1.0 / n).neg_()  # mean of -v·a - Σ relu(x)
    centred = v - visible_bias
    if inv_sigma is not None:
        centred = centred * inv_sigma
    flat = centred.reshape(-1)
    return torch.dot(flat, flat).mul_(0.5).sub_(relu_sum).div_(n)


def _free_energy_from_probs(
    v: Tensor,
    visible_bias: Tensor,
    inv_sigma: Tensor | None,
    gaussian: bool,
    hidden_in: Tensor,
    probs: Tensor,
) -> Tensor:
    """``F(v)`` ``(B,)`` of a binary or Gaussian RBM given its hidden input and probabilities."""
    hidden = softplus_sum_from_probs(hidden_in, probs)
    if not gaussian:
        if visible_bias.dim() == 1 and v.dim() == 2:  # -hidden - v·a in one call
            return torch.addmv(hidden, v, visible_bias, beta=-1.0, alpha=-1.0)
        return -(v * visible_bias).sum(-1) - hidden
    centred = v - visible_bias
    if inv_sigma is not None:
        centred = centred * inv_sigma
    return 0.5 * (centred * centred).sum(-1) - hidden


def contrastive_divergence(
    v_data: Tensor,
    hidden_uniform: Tensor,
    visible_noise: Tensor,
    weight: Tensor,
    visible_bias: Tensor,
    hidden_bias: Tensor,
    log_sigma: Tensor | None = None,
    *,
    visible_kind: Literal["bernoulli", "gaussian"] = "bernoulli",
    chain_start: Tensor | None = None,
    negative: Literal["sample", "mean_field"] = "sample",
    sparsity_target: float | None = None,
    sparsity_cost: float = 0.0,
    negative_free_energy: bool = False,
    weight_grad_out: Tensor | None = None,
    data_free_energy: bool = True,
    data_visible_mean: Tensor | None = None,
) -> tuple[Tensor, ContrastiveStep]:
    """Run a ``k``-step Gibbs chain and return ``∂L/∂W`` of the CD/PCD loss in closed form.

    ``L = mean F(v⁺) - mean F(v⁻) + λ Σⱼ (t - qⱼ)²`` (the training system's loss; the
    penalty only with ``sparsity_target``), ``v⁻`` the chain's end, held fixed. The chain is
    the block Gibbs sampler of :func:`bernoulli_rbm_gibbs_step` /
    :func:`gaussian_rbm_gibbs_step` driven by the given noise, so the same noise gives the
    same particles as ``k`` calls of those. Biases may be per example (a conditional RBM's
    ``â``, ``b̂``, then ``B' = B``): the caller turns :class:`ContrastiveStep`'s ``-r/B`` and
    ``p⁻/B'`` (and ``v⁻ - v⁺``) into bias gradients. See the comment above for the formulas
    (Hinton 2002; Tieleman 2008; Lee et al. 2008 for the sparsity penalty).

    Args:
        v_data: the data ``v⁺`` ``(B, D)``.
        hidden_uniform: uniforms of the ``k`` hidden steps ``(k, B', H)``.
        visible_noise: the visible steps' noise ``(k, B', D)``: uniforms for binary units,
            standard normals for Gaussian ones. With ``negative="mean_field"`` it may hold
            ``k - 1`` steps: the last visible sample is then not drawn (``chain`` is its mean).
        weight: ``W`` ``(D, H)``.
        visible_bias: ``a`` ``(D,)`` or ``(B, D)``; hidden_bias: ``b`` ``(H,)`` or ``(B, H)``.
        log_sigma: ``log σ`` ``(D,)`` of Gaussian visibles; ``None``: σ = 1.
        visible_kind: ``"bernoulli"`` or ``"gaussian"``.
        chain_start: where the chain starts ``(B', D)`` (persistent chains, or zeros); ``None``
            (CD): at ``v_data``, sharing ``x⁺`` with the first hidden step.
        negative: ``"sample"`` (``v⁻`` = the last sample) or ``"mean_field"`` (its mean).
        sparsity_target: target mean activation ``t`` of the hiddens, or ``None``.
        sparsity_cost: ``λ``.
        negative_free_energy: also report ``F(v⁻)`` (for logging the loss).
        weight_grad_out: a ``(D, H)`` tensor to write ``∂L/∂W`` into (e.g. ``W.grad``).
        data_free_energy: report ``F(v⁺)``; ``False``: report only the bounds of its mean
            (``ContrastiveStep.data_free_energy_upper``), which cost no logarithm (the
            training system's steps that log nothing).
        data_visible_mean: ``mean₀ v⁺`` ``(D,)`` if the caller has it (it spares the bounds a
            pass over ``v⁺``).

    Returns:
        ``(∂L/∂W (D, H), ContrastiveStep)``. Call under ``torch.no_grad()``.
    """
    start = v_data if chain_start is None else chain_start
    k = _check_chain_noise(hidden_uniform, visible_noise, negative, start.shape[0])
    gaussian = visible_kind == "gaussian"
    inv_sigma = torch.exp(-log_sigma) if gaussian and log_sigma is not None else None
    sigma = torch.exp(log_sigma) if gaussian and log_sigma is not None else None

    def scaled(v: Tensor) -> Tensor:
        return v if inv_sigma is None else v * inv_sigma

    u_data = scaled(v_data)
    x_data = hidden_input(u_data, weight, hidden_bias)
    p_data = torch.sigmoid(x_data)
    v = start
    probs: Tensor | None = p_data if chain_start is None else None
    v_mean = v
    for s in range(k):
        if probs is None:
            probs = torch.sigmoid(hidden_input(scaled(v), weight, hidden_bias))
        h = bernoulli_from_uniform(probs, hidden_uniform[s])
        probs = None
        if not gaussian:
            v_mean = torch.sigmoid(torch.addmm(visible_bias, h, weight.T))
            if s < visible_noise.shape[0]:
                v = bernoulli_from_uniform(v_mean, visible_noise[s])
            else:
                v = v_mean
        else:
            coupling = h @ weight.T
            v_mean = (
                visible_bias + coupling
                if sigma is None
                else torch.addcmul(visible_bias, sigma, coupling)
            )
            if s < visible_noise.shape[0]:
                z = visible_noise[s]
                v = v_mean + z if sigma is None else torch.addcmul(v_mean, sigma, z)
            else:
                v = v_mean
    v_neg = v_mean if negative == "mean_field" else v
    u_neg = scaled(v_neg)
    x_neg = hidden_input(u_neg, weight, hidden_bias)
    p_neg = torch.sigmoid(x_neg)
    q = p_data.mean(0)
    r = p_data
    if sparsity_target is not None and sparsity_cost > 0:
        r = torch.addcmul(
            p_data, (2.0 * sparsity_cost) * (sparsity_target - q), p_data * (1 - p_data)
        )
    n_data, n_neg = v_data.shape[0], v_neg.shape[0]
    if weight_grad_out is None:
        grad_w = torch.mm(u_neg.T, p_neg)
    else:
        grad_w = torch.mm(u_neg.T, p_neg, out=weight_grad_out)
    grad_w.addmm_(u_data.T, r, beta=1.0 / n_neg, alpha=-1.0 / n_data)
    f_data = f_upper = None
    if data_free_energy:
        f_data = _free_energy_from_probs(v_data, visible_bias, inv_sigma, gaussian, x_data, p_data)
    else:
        f_upper = _free_energy_upper_bound(
            v_data, visible_bias, inv_sigma, gaussian, x_data, data_visible_mean
        )
    f_neg = (
        _free_energy_from_probs(v_neg, visible_bias, inv_sigma, gaussian, x_neg, p_neg)
        if negative_free_energy
        else None
    )
    return grad_w, ContrastiveStep(
        v, v_neg, v_mean, x_data, x_neg, r, p_neg, q, f_data, f_neg, f_upper
    )


def _mean_difference(
    neg: Tensor, pos: Tensor, out: Tensor | None, pos_mean: Tensor | None = None
) -> Tensor:
    """``mean₀ neg - mean₀ pos`` (into ``out`` if given; ``pos_mean``: ``mean₀ pos`` if known)."""
    if pos_mean is None:
        pos_mean = pos.mean(0)
    if out is None:
        return neg.mean(0) - pos_mean
    return torch.sub(neg.mean(0), pos_mean, out=out)


def bernoulli_rbm_cd_gradients(
    v_data: Tensor,
    hidden_uniform: Tensor,
    visible_uniform: Tensor,
    weight: Tensor,
    visible_bias: Tensor,
    hidden_bias: Tensor,
    *,
    chain_start: Tensor | None = None,
    negative: Literal["sample", "mean_field"] = "sample",
    sparsity_target: float | None = None,
    sparsity_cost: float = 0.0,
    negative_free_energy: bool = False,
    out: Sequence[Tensor | None] | None = None,
    data_free_energy: bool = True,
) -> tuple[RBMGradients, ContrastiveStep]:
    """CD-k / PCD-k gradient of a binary RBM in closed form (Hinton 2002; Tieleman 2008).

    The gradient of ``L = mean F(v⁺) - mean F(v⁻) (+ λ‖t - q‖²)`` with respect to
    ``(W, a, b)``, equal to autograd's through :func:`bernoulli_rbm_free_energy` with the
    same negatives, in ``2k + 3`` GEMMs for CD-k (see :func:`contrastive_divergence` for the
    arguments, the chain and the formulas). CD-1 with ``negative="mean_field"`` is exactly
    Hinton's reference loop: ``p⁺ = sigm(b + vW)``, ``h = 1[u < p⁺]``,
    ``p(v) = sigm(a + hWᵀ)``, ``p⁻ = sigm(b + p(v)W)``, ``∂L/∂W = (p(v)ᵀp⁻ - vᵀp⁺) / B``.

    Args:
        visible_uniform: uniforms of the visible steps ``(k, B', D)`` (``k - 1`` allowed
            with mean-field negatives).
        out: tensors ``(W, a, b)``-shaped to write the gradients into (e.g. the ``.grad``
            of the parameters; an entry may be ``None``).
        data_free_energy: report ``F(v⁺)`` (else only the bounds of its mean; see
            :func:`contrastive_divergence`).

    Returns:
        ``(RBMGradients(weight, visible_bias, hidden_bias), ContrastiveStep)``.

    Example:
        >>> w, a, b = torch.randn(6, 4) * 0.1, torch.zeros(6), torch.zeros(4)
        >>> v = torch.rand(8, 6)
        >>> grads, step = bernoulli_rbm_cd_gradients(
        ...     v, torch.rand(1, 8, 4), torch.rand(1, 8, 6), w, a, b)
        >>> grads.weight.shape, step.negative.shape
        (torch.Size([6, 4]), torch.Size([8, 6]))
    """
    out_w, out_a, out_b = (None, None, None) if out is None else tuple(out)[:3]
    v_data_mean = v_data.mean(0)  # ∂L/∂a's positive phase, and the bounds of mean F(v⁺)
    grad_w, step = contrastive_divergence(
        v_data,
        hidden_uniform,
        visible_uniform,
        weight,
        visible_bias,
        hidden_bias,
        visible_kind="bernoulli",
        chain_start=chain_start,
        negative=negative,
        sparsity_target=sparsity_target,
        sparsity_cost=sparsity_cost,
        negative_free_energy=negative_free_energy,
        weight_grad_out=out_w,
        data_free_energy=data_free_energy,
        data_visible_mean=v_data_mean,
    )
    sparse = sparsity_target is not None and sparsity_cost > 0
    grad_a = _mean_difference(step.negative, v_data, out_a, v_data_mean)
    r_mean = None if sparse else step.data_hidden_mean  # r = p⁺ without a penalty: q
    grad_b = _mean_difference(step.negative_hidden_probs, step.data_coefficient, out_b, r_mean)
    return RBMGradients(grad_w, grad_a, grad_b), step


def gaussian_rbm_cd_gradients(
    v_data: Tensor,
    hidden_uniform: Tensor,
    visible_normal: Tensor,
    weight: Tensor,
    visible_bias: Tensor,
    hidden_bias: Tensor,
    log_sigma: Tensor,
    *,
    learn_sigma: bool = True,
    chain_start: Tensor | None = None,
    negative: Literal["sample", "mean_field"] = "sample",
    sparsity_target: float | None = None,
    sparsity_cost: float = 0.0,
    negative_free_energy: bool = False,
    out: Sequence[Tensor | None] | None = None,
    data_free_energy: bool = True,
) -> tuple[RBMGradients, ContrastiveStep]:
    """CD-k / PCD-k gradient of a Gaussian-Bernoulli RBM with learned ``log σ``, closed form.

    Equal to autograd's through :func:`gaussian_rbm_free_energy` with the same negatives
    (Hinton & Salakhutdinov 2006; Cho, Ilin & Raiko 2011 for the σ gradient). The ``log σ``
    gradient costs no GEMM: its coupling part is ``-Σⱼ Wᵢⱼ (∂L/∂W)ᵢⱼ``. See
    :func:`contrastive_divergence` for the arguments and the chain.

    Args:
        visible_normal: standard normals of the visible steps ``(k, B', D)`` (``k - 1``
            allowed with mean-field negatives).
        learn_sigma: also return ``∂L/∂log σ`` (else its entry is ``None``).
        out: tensors to write ``(W, a, b, log σ)``'s gradients into (entries may be ``None``).
        data_free_energy: report ``F(v⁺)`` (else only the bounds of its mean).

    Returns:
        ``(RBMGradients(weight, visible_bias, hidden_bias, log_sigma), ContrastiveStep)``.
    """
    outs = [None, None, None, None] if out is None else [*list(out), None, None, None][:4]
    grad_w, step = contrastive_divergence(
        v_data,
        hidden_uniform,
        visible_normal,
        weight,
        visible_bias,
        hidden_bias,
        log_sigma,
        visible_kind="gaussian",
        chain_start=chain_start,
        negative=negative,
        sparsity_target=sparsity_target,
        sparsity_cost=sparsity_cost,
        negative_free_energy=negative_free_energy,
        weight_grad_out=outs[0],
        data_free_energy=data_free_energy,
    )
    sparse = sparsity_target is not None and sparsity_cost > 0
    inv_var = torch.exp(-2.0 * log_sigma)
    grad_a = _mean_difference(step.negative, v_data, outs[1]).mul_(inv_var)
    r_mean = None if sparse else step.data_hidden_mean  # r = p⁺ without a penalty: q
    grad_b = _mean_difference(step.negative_hidden_probs, step.data_coefficient, outs[2], r_mean)
    grad_log_sigma: Tensor | None = None
    if learn_sigma:
        inv_sigma = torch.exp(-log_sigma)
        quad_neg = (((step.negative - visible_bias) * inv_sigma) ** 2).mean(0)
        quad_pos = (((v_data - visible_bias) * inv_sigma) ** 2).mean(0)
        coupling = torch.linalg.vecdot(weight, grad_w)
        if outs[3] is None:
            grad_log_sigma = quad_neg - quad_pos - coupling
        else:
            grad_log_sigma = torch.sub(quad_neg, quad_pos, out=outs[3]).sub_(coupling)
    return RBMGradients(grad_w, grad_a, grad_b, grad_log_sigma), step
