"""Conditional RBMs for sequences as pure tensor functions.

Conditional RBM (Taylor, Hinton & Roweis 2007, "Modeling human motion using binary latent
variables", NIPS): a Gaussian-Bernoulli RBM over the frame ``v_t`` whose biases depend on the
history ``x = (v_{t-1}, …, v_{t-n})`` (flattened, ``(B, n·D)``) and on optional per-frame
controls ``c`` ``(B, C)``:

    ``â = a + x A + c P``,   ``b̂ = b + x B + c Q``,
    ``E(v, h | x, c) = Σᵢ (vᵢ - âᵢ)²/(2σᵢ²) - b̂ᵀh - Σᵢⱼ (vᵢ/σᵢ) Wᵢⱼ hⱼ``.

The energy, free energy, conditionals and Gibbs step are then exactly those of
:mod:`seqboltz.functional._rbm` with per-example biases.

Factored conditional RBM (Taylor & Hinton 2009, "Factored conditional restricted Boltzmann
machines for modeling motion style", ICML): style features ``z`` ``(B, S)`` gate every
interaction through three-way factors ``f``:

    ``Ŵ(z) = Wᵛ diag(z Wᶻ) Wʰᵀ``,   ``Â(z) = Aˣ diag(z Aᶻ) Aᵛᵀ``,   ``B̂(z) = Bˣ diag(z Bᶻ) Bʰᵀ``,
    ``â = a + x Â(z) + z P``,   ``b̂ = b + x B̂(z) + z Q``,
    ``E(v, h | x, z) = Σᵢ (vᵢ - âᵢ)²/2 - b̂ᵀh - Σ_f (vᵀWᵛ)_f (zᵀWᶻ)_f (hᵀWʰ)_f``.

No per-example matrix is ever formed: ``vᵀŴ(z) = ((v Wᵛ) ⊙ (z Wᶻ)) Wʰᵀ``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, NamedTuple

import torch
from torch import Tensor

from seqboltz.functional._rbm import ContrastiveStep, contrastive_divergence

__all__ = [
    "CRBMGradients",
    "crbm_cd_gradients",
    "factored_dynamic_biases",
    "factored_hidden_input",
    "factored_visible_mean",
    "gated_product",
    "linear_dynamic_biases",
    "piecewise_linear",
]


def piecewise_linear(x: Tensor, knots_x: Tensor, knots_y: Tensor) -> Tensor:
    """The piecewise-linear function through ``(knots_x[k], knots_y[k])``, extended beyond the
    ends along the first and last segments (a calibration curve of a control).

    Written as ``y₀ + s₀ (x − x₀) + Σₖ (sₖ − sₖ₋₁) relu(x − xₖ)`` (``sₖ`` the slope of segment
    ``k``), so it exports to ONNX as plain arithmetic and ``relu``.

    Args:
        x: any shape.
        knots_x: ``(K,)`` strictly increasing, K ≥ 2.
        knots_y: ``(K,)``.

    Returns:
        ``f(x)``, the shape of ``x``.
    """
    kx, ky = knots_x.to(x), knots_y.to(x)
    slopes = (ky[1:] - ky[:-1]) / (kx[1:] - kx[:-1])  # (K-1,)
    out = ky[0] + slopes[0] * (x - kx[0])
    if slopes.shape[0] > 1:
        bends = slopes[1:] - slopes[:-1]  # (K-2,) at the inner knots
        out = out + (bends * torch.relu(x.unsqueeze(-1) - kx[1:-1])).sum(-1)
    return out


def linear_dynamic_biases(
    history: Tensor,
    visible_bias: Tensor,
    hidden_bias: Tensor,
    autoregressive: Tensor,
    past_to_hidden: Tensor,
    controls: Tensor | None = None,
    control_to_visible: Tensor | None = None,
    control_to_hidden: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """Dynamic biases of a CRBM: ``â = a + x A + c P`` and ``b̂ = b + x B + c Q``.

    Args:
        history: flattened history ``x`` ``(B, n·D)`` (frame ``t-1`` first).
        visible_bias: ``a`` ``(D,)``; hidden_bias: ``b`` ``(H,)``.
        autoregressive: ``A`` ``(n·D, D)``; past_to_hidden: ``B`` ``(n·D, H)``.
        controls: optional per-frame controls ``c`` ``(B, C)``, with ``P`` ``(C, D)`` and
            ``Q`` ``(C, H)`` as control_to_visible / control_to_hidden.

    Returns:
        ``(â (B, D), b̂ (B, H))``.
    """
    a_hat = torch.addmm(visible_bias, history, autoregressive)
    b_hat = torch.addmm(hidden_bias, history, past_to_hidden)
    if controls is not None:
        assert control_to_visible is not None and control_to_hidden is not None
        a_hat = a_hat + controls @ control_to_visible
        b_hat = b_hat + controls @ control_to_hidden
    return a_hat, b_hat


def gated_product(x: Tensor, x_factor: Tensor, gate: Tensor, out_factor: Tensor) -> Tensor:
    """``((x Xᶠ) ⊙ g) Oᶠᵀ``: ``x`` through a factored, gated weight matrix.

    Args:
        x: ``(B, I)``; x_factor: ``(I, F)``; gate: ``(B, F)`` (e.g. ``z Wᶻ``);
        out_factor: ``(O, F)``.

    Returns:
        ``(B, O)``.
    """
    return ((x @ x_factor) * gate) @ out_factor.T


def factored_dynamic_biases(
    history: Tensor,
    style: Tensor,
    visible_bias: Tensor,
    hidden_bias: Tensor,
    past_factor_v: Tensor,
    style_factor_v: Tensor,
    visible_factor_a: Tensor,
    past_factor_h: Tensor,
    style_factor_h: Tensor,
    hidden_factor_b: Tensor,
    style_to_visible: Tensor,
    style_to_hidden: Tensor,
) -> tuple[Tensor, Tensor]:
    """Dynamic biases of a factored CRBM (Taylor & Hinton 2009, eqs. 8–9).

    Args:
        history: ``x`` ``(B, n·D)``; style: ``z`` ``(B, S)``.
        visible_bias: ``a`` ``(D,)``; hidden_bias: ``b`` ``(H,)``.
        past_factor_v: ``Aˣ`` ``(n·D, F)``; style_factor_v: ``Aᶻ`` ``(S, F)``;
        visible_factor_a: ``Aᵛ`` ``(D, F)``.
        past_factor_h: ``Bˣ`` ``(n·D, F)``; style_factor_h: ``Bᶻ`` ``(S, F)``;
        hidden_factor_b: ``Bʰ`` ``(H, F)``.
        style_to_visible: ``P`` ``(S, D)``; style_to_hidden: ``Q`` ``(S, H)``.

    Returns:
        ``(â (B, D), b̂ (B, H))``.
    """
    a_hat = visible_bias + style @ style_to_visible
    a_hat = a_hat + gated_product(history, past_factor_v, style @ style_factor_v, visible_factor_a)
    b_hat = hidden_bias + style @ style_to_hidden
    b_hat = b_hat + gated_product(history, past_factor_h, style @ style_factor_h, hidden_factor_b)
    return a_hat, b_hat


def factored_hidden_input(
    v: Tensor, hidden_bias: Tensor, visible_factor: Tensor, gate: Tensor, hidden_factor: Tensor
) -> Tensor:
    """``b̂ + vᵀŴ(z)`` with ``Ŵ(z) = Wᵛ diag(g) Wʰᵀ``: ``(B, D)`` → ``(B, H)``.

    Args:
        v: ``(B, D)``; hidden_bias: ``b̂`` ``(B, H)`` or ``(H,)``.
        visible_factor: ``Wᵛ`` ``(D, F)``; gate: ``g = z Wᶻ`` ``(B, F)``;
        hidden_factor: ``Wʰ`` ``(H, F)``.
    """
    return hidden_bias + gated_product(v, visible_factor, gate, hidden_factor)


def factored_visible_mean(
    h: Tensor, visible_bias: Tensor, visible_factor: Tensor, gate: Tensor, hidden_factor: Tensor
) -> Tensor:
    """Mean of ``p(v | h, x, z) = N(â + Ŵ(z) h, I)``: ``(B, H)`` → ``(B, D)``."""
    return visible_bias + gated_product(h, hidden_factor, gate, visible_factor)


class CRBMGradients(NamedTuple):
    """``∂L/∂θ`` of a conditional RBM, shaped like its parameters (``None`` without controls)."""

    weight: Tensor
    visible_bias: Tensor
    hidden_bias: Tensor
    autoregressive: Tensor
    past_to_hidden: Tensor
    control_to_visible: Tensor | None = None
    control_to_hidden: Tensor | None = None


def crbm_cd_gradients(
    v_data: Tensor,
    history: Tensor,
    hidden_uniform: Tensor,
    visible_normal: Tensor,
    weight: Tensor,
    visible_bias: Tensor,
    hidden_bias: Tensor,
    autoregressive: Tensor,
    past_to_hidden: Tensor,
    controls: Tensor | None = None,
    control_to_visible: Tensor | None = None,
    control_to_hidden: Tensor | None = None,
    *,
    chain_start: Tensor | None = None,
    negative: Literal["sample", "mean_field"] = "sample",
    sparsity_target: float | None = None,
    sparsity_cost: float = 0.0,
    negative_free_energy: bool = False,
    out: Sequence[Tensor | None] | None = None,
) -> tuple[CRBMGradients, ContrastiveStep]:
    """CD-k / PCD-k gradient of a conditional RBM (Taylor, Hinton & Roweis 2007), closed form.

    ``L = mean F(v⁺ | x) - mean F(v⁻ | x) (+ λ‖t - q‖²)`` with ``F`` the unit-variance
    Gaussian-Bernoulli free energy under the dynamic biases ``â = a + xA + cP``,
    ``b̂ = b + xB + cQ`` (:func:`linear_dynamic_biases`), each negative particle conditioned on
    its own row's history. The chain and ``∂L/∂W`` come from
    :func:`~seqboltz.functional.contrastive_divergence` with per-example biases; then
    ``∂L/∂â = (v⁻ - v⁺)/B`` and ``∂L/∂b̂ = (p⁻ - r)/B`` row by row, so
    ``∂L/∂A = xᵀ ∂L/∂â``, ``∂L/∂B = xᵀ ∂L/∂b̂``, ``∂L/∂a = Σₙ ∂L/∂âₙ`` (likewise ``P``, ``Q``,
    ``b``). The dynamic biases are formed once (autograd through ``F(v⁺)`` and ``F(v⁻)``
    forms them twice, three times with a sparsity penalty).

    Args:
        v_data: frames ``v⁺`` ``(B, D)``.
        history: flattened histories ``x`` ``(B, n·D)``.
        hidden_uniform: ``(k, B, H)``; visible_normal: ``(k, B, D)`` (``k - 1`` allowed with
            mean-field negatives).
        weight ... control_to_hidden: the parameters (see :func:`linear_dynamic_biases`).
        chain_start: where the chain starts ``(B, D)``; ``None``: at ``v_data`` (CD).
        negative, sparsity_target, sparsity_cost, negative_free_energy: see
            :func:`~seqboltz.functional.contrastive_divergence`.
        out: tensors to write the gradients into, in :class:`CRBMGradients` order.

    Returns:
        ``(CRBMGradients, ContrastiveStep)``. Call under ``torch.no_grad()``.
    """
    outs = [None] * 7 if out is None else [*list(out), *([None] * 7)][:7]
    batch = v_data.shape[0]
    if chain_start is not None and chain_start.shape[0] != batch:
        raise ValueError(
            f"a conditional chain needs one row per conditioning row: {chain_start.shape[0]} "
            f"chains for a batch of {batch}"
        )
    a_hat, b_hat = linear_dynamic_biases(
        history,
        visible_bias,
        hidden_bias,
        autoregressive,
        past_to_hidden,
        controls,
        control_to_visible,
        control_to_hidden,
    )
    grad_w, step = contrastive_divergence(
        v_data,
        hidden_uniform,
        visible_normal,
        weight,
        a_hat,
        b_hat,
        None,
        visible_kind="gaussian",
        chain_start=chain_start,
        negative=negative,
        sparsity_target=sparsity_target,
        sparsity_cost=sparsity_cost,
        negative_free_energy=negative_free_energy,
        weight_grad_out=outs[0],
    )
    g_visible = (step.negative - v_data).div_(batch)  # ∂L/∂â, (B, D)
    g_hidden = (step.negative_hidden_probs - step.data_coefficient).div_(batch)  # ∂L/∂b̂, (B, H)

    def product(x: Tensor, g: Tensor, dest: Tensor | None) -> Tensor:
        return torch.mm(x.T, g) if dest is None else torch.mm(x.T, g, out=dest)

    def column_sum(g: Tensor, dest: Tensor | None) -> Tensor:
        return g.sum(0) if dest is None else torch.sum(g, 0, out=dest)

    grads = CRBMGradients(
        grad_w,
        column_sum(g_visible, outs[1]),
        column_sum(g_hidden, outs[2]),
        product(history, g_visible, outs[3]),
        product(history, g_hidden, outs[4]),
        None if controls is None else product(controls, g_visible, outs[5]),
        None if controls is None else product(controls, g_hidden, outs[6]),
    )
    return grads, step
