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

import torch
from torch import Tensor

__all__ = [
    "factored_dynamic_biases",
    "factored_hidden_input",
    "factored_visible_mean",
    "gated_product",
    "linear_dynamic_biases",
]


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
