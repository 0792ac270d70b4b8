"""Convolutional RBM with probabilistic max pooling (Lee, Grosse, Ranganath & Ng 2009), as pure
tensor functions.

Visible images ``v (B, C_in, H, W)``; ``K`` filters ``W (K, C_in, f, f)``; detection layer
``h (B, K, H-f+1, W-f+1)`` split into ``C×C`` blocks ``B_α``, at most one unit on per block; the
pooling unit ``p_α`` is on iff one unit of its block is. With the valid cross-correlation ``⋆``
(``torch.nn.functional.conv2d``) and the hidden input ``I = W ⋆ v + b``:

* binary visibles: ``E(v, h) = -Σ h·(W ⋆ v) - Σₖ bₖ Σ hᵏ - c Σ v``;
* Gaussian visibles (σ = 1): ``E(v, h) = ½Σ (v - c)² - Σ h·(W ⋆ v) - Σₖ bₖ Σ hᵏ``;
* ``P(hᵢ = 1 | v) = exp Iᵢ / (1 + Σ_{j∈B_α} exp Iⱼ)``, ``P(p_α = 0 | v) = 1 / (1 + Σ_{B_α} exp I)``;
* ``p(v | h)``: ``sigmoid(W * h + c)`` (binary) or ``N(W * h + c, 1)`` (Gaussian), with ``*``
  the full convolution (``conv_transpose2d``);
* free energy ``F(v) = -c Σ v - Σ_{k,α} log(1 + Σ_{B_α} exp I)`` (binary; Gaussian: ``½Σ(v - c)²``
  instead of ``-c Σ v``).

``c`` is one visible bias per input channel.

Two layers (Lee et al. 2009, §3.3): the pooling layer ``p (B, K, Hp, Wp)`` couples to a second
detection layer ``h′ (B, L, Hp-g+1, Wp-g+1)`` through filters ``Γ (L, K, g, g)``:
``E(v, h, p, h′) = E₁(v, h) - Σ p•(Γ * h′) - Σₗ b′ₗ Σ h′ˡ``. The top-down input
``T = Γ * h′`` (full convolution, one value per pooling unit) adds to every unit of block ``α``
inside its softmax: ``P(hᵢ = 1 | v, h′) = exp(Iᵢ + T_α) / (1 + Σ_{B_α} exp(I + T_α))``; and
``h′`` given ``p`` is a one-layer pooled conditional with input ``Γ ⋆ p + b′``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "conv2_energy",
    "conv_energy",
    "conv_free_energy",
    "conv_hidden_input",
    "conv_top_down",
    "conv_visible_input",
    "max_pool_states",
    "pool_blocks",
    "prob_max_pool",
    "sample_prob_max_pool",
    "unpool_blocks",
]


def conv_hidden_input(v: Tensor, filters: Tensor, hidden_bias: Tensor) -> Tensor:
    """``I = W ⋆ v + b``: ``(B, C_in, H, W)`` → ``(B, K, H-f+1, W-f+1)``."""
    return F.conv2d(v, filters) + hidden_bias[None, :, None, None]


def conv_visible_input(h: Tensor, filters: Tensor, visible_bias: Tensor) -> Tensor:
    """``W * h + c``: ``(B, K, Hh, Wh)`` → ``(B, C_in, Hh+f-1, Wh+f-1)``."""
    return F.conv_transpose2d(h, filters) + visible_bias[None, :, None, None]


def pool_blocks(x: Tensor, block: int) -> Tensor:
    """``(B, K, Hh, Wh)`` → ``(B, K, Hh/C, Wh/C, C·C)``: each block's units on the last axis."""
    b, k, hh, wh = x.shape
    x = x.reshape(b, k, hh // block, block, wh // block, block)
    return x.permute(0, 1, 2, 4, 3, 5).reshape(b, k, hh // block, wh // block, block * block)


def unpool_blocks(x: Tensor, block: int) -> Tensor:
    """Inverse of :func:`pool_blocks`: ``(B, K, Hp, Wp, C·C)`` → ``(B, K, Hp·C, Wp·C)``."""
    b, k, hp, wp, _ = x.shape
    x = x.reshape(b, k, hp, wp, block, block).permute(0, 1, 2, 4, 3, 5)
    return x.reshape(b, k, hp * block, wp * block)


def conv_top_down(upper: Tensor, gamma: Tensor) -> Tensor:
    """Top-down input ``T = Γ * h′`` into the pooling units: ``(B, L, H2, W2)`` →
    ``(B, K, H2+g-1, W2+g-1)`` for ``Γ (L, K, g, g)``."""
    return F.conv_transpose2d(upper, gamma)


def max_pool_states(h: Tensor, block: int) -> Tensor:
    """Pooling states ``p_α = max_{i∈B_α} hᵢ``: ``(B, K, Hh, Wh)`` → ``(B, K, Hh/C, Wh/C)``."""
    return pool_blocks(h, block).amax(-1)


def _with_off(blocks: Tensor) -> Tensor:
    """Prepend the "all off" state (input 0) to every block: ``(..., C·C)`` → ``(..., 1+C·C)``."""
    return torch.cat([torch.zeros_like(blocks[..., :1]), blocks], dim=-1)


def _block_softmax(hidden_input: Tensor, block: int, top_down: Tensor | None) -> Tensor:
    """``(B, K, Hp, Wp, 1+C·C)`` softmax over (all off, each unit) of every block."""
    blocks = pool_blocks(hidden_input, block)
    if top_down is not None:
        if top_down.shape != blocks.shape[:-1]:
            raise ValueError(
                f"top-down input must have the pooling layer's shape {tuple(blocks.shape[:-1])}; "
                f"got {tuple(top_down.shape)}"
            )
        blocks = blocks + top_down[..., None]
    return torch.softmax(_with_off(blocks), dim=-1)


def prob_max_pool(
    hidden_input: Tensor, block: int, top_down: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """Probabilistic max pooling: ``(P(h = 1 | ·) (B, K, Hh, Wh), P(p = 1 | ·) (B, K, Hp, Wp))``.

    Each block is one softmax over "all off" and its ``C·C`` units; ``top_down (B, K, Hp, Wp)``
    (from a layer above, :func:`conv_top_down`) adds to every unit of its block.
    """
    probs = _block_softmax(hidden_input, block, top_down)
    return unpool_blocks(probs[..., 1:], block), 1.0 - probs[..., 0]


def sample_prob_max_pool(
    hidden_input: Tensor, block: int, uniform: Tensor, top_down: Tensor | None = None
) -> Tensor:
    """Sample the detection layer with one uniform per block ``(B, K, Hp, Wp)``.

    The state of block ``α`` is the first of (all off, unit 1, …, unit C²) whose cumulative
    probability exceeds ``u_α``. Returns ``h (B, K, Hh, Wh)`` with at most one 1 per block.
    ``top_down`` as in :func:`prob_max_pool`.
    """
    probs = _block_softmax(hidden_input, block, top_down)
    cumulative = probs.cumsum(-1)
    state = (cumulative < uniform[..., None]).sum(-1).clamp_max(probs.shape[-1] - 1)
    one_hot = F.one_hot(state, probs.shape[-1]).to(hidden_input.dtype)
    return unpool_blocks(one_hot[..., 1:], block)


def conv_energy(
    v: Tensor,
    h: Tensor,
    filters: Tensor,
    visible_bias: Tensor,
    hidden_bias: Tensor,
    gaussian: bool,
) -> Tensor:
    """``E(v, h)`` ``(B,)`` for images ``v`` and detection states ``h`` (block constraint not
    checked here)."""
    interaction = (h * F.conv2d(v, filters)).sum((1, 2, 3))
    hidden_term = (h.sum((2, 3)) * hidden_bias).sum(1)
    c = visible_bias[None, :, None, None]
    visible_term = 0.5 * ((v - c) ** 2).sum((1, 2, 3)) if gaussian else -(c * v).sum((1, 2, 3))
    return visible_term - interaction - hidden_term


def conv_free_energy(
    v: Tensor,
    filters: Tensor,
    visible_bias: Tensor,
    hidden_bias: Tensor,
    block: int,
    gaussian: bool,
) -> Tensor:
    """``F(v) = -log Σ_h exp(-E(v, h))`` over detection states with the block constraint."""
    blocks = _with_off(pool_blocks(conv_hidden_input(v, filters, hidden_bias), block))
    hidden_term = torch.logsumexp(blocks, dim=-1).sum((1, 2, 3))
    c = visible_bias[None, :, None, None]
    visible_term = 0.5 * ((v - c) ** 2).sum((1, 2, 3)) if gaussian else -(c * v).sum((1, 2, 3))
    return visible_term - hidden_term


def conv2_energy(
    v: Tensor,
    h: Tensor,
    upper: Tensor,
    filters: Tensor,
    visible_bias: Tensor,
    hidden_bias: Tensor,
    gamma: Tensor,
    upper_bias: Tensor,
    block: int,
    gaussian: bool,
) -> Tensor:
    """Two-layer energy ``E(v, h, p(h), h′)`` ``(B,)``, with ``p`` the block maxima of ``h``.

    ``-Σ p•(Γ * h′) - Σ b′ h′`` is the one-layer binary energy of ``(p, h′)`` with no visible
    bias, so it reuses :func:`conv_energy`.
    """
    lower = conv_energy(v, h, filters, visible_bias, hidden_bias, gaussian)
    p = max_pool_states(h, block)
    zero = torch.zeros(p.shape[1], dtype=p.dtype, device=p.device)
    return lower + conv_energy(p, upper, gamma, zero, upper_bias, gaussian=False)
