"""Inference in conditional RBMs for structured outputs, as pure tensor functions.

Structured-output conditional RBM (Mnih, Larochelle & Hinton 2011, "Conditional Restricted
Boltzmann Machines for Structured Output Prediction", UAI; arXiv:1202.3748): binary outputs
``y`` ``(B, D)``, binary hiddens ``h`` ``(B, H)`` and an input ``x`` ``(B, C)`` that enters
through dynamic biases,

    ``â = a + x A``,   ``b̂ = b + x B``     (:func:`~seqboltz.functional.linear_dynamic_biases`),
    ``E(y, h | x) = -yᵀWh - âᵀy - b̂ᵀh``,

so every energy, free energy, conditional and Gibbs step is the binary RBM's of
:mod:`seqboltz.functional._rbm` with per-example biases. Predicting ``y`` from ``x`` needs
approximate inference; here are the two deterministic procedures:

* mean field: a factorised ``q(y) q(h)`` updated block by block,
  ``q(h) = sigm(b̂ + q(y)ᵀW)``, ``q(y) = sigm(â + W q(h))``. Each block update is the exact
  minimiser of the variational free energy given the other block, so it never increases it.
* "MAP" (iterated conditional modes on the two blocks): ``h = 1[p(h | y, x) > ½]``,
  ``y = 1[p(y | h, x) > ½]``. Each block is set to its most probable state given the other,
  so the joint energy ``E(y, h | x)`` never increases. This is exactly a Gibbs step
  (:func:`~seqboltz.functional.bernoulli_rbm_gibbs_step`) whose uniform noise is ½:
  a unit is on iff ``½ < p``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from seqboltz.functional._rbm import (
    bernoulli_rbm_gibbs_step,
    bernoulli_visible_probs,
    hidden_probs,
)

__all__ = ["bernoulli_map_inference", "bernoulli_mean_field"]


def bernoulli_mean_field(
    q_v: Tensor,
    weight: Tensor,
    visible_bias: Tensor,
    hidden_bias: Tensor,
    n_steps: int,
    tol: float = 0.0,
) -> tuple[Tensor, Tensor]:
    """Block mean-field inference of a binary RBM with (per-example) biases.

    Starting from ``q(v) = q_v``, repeats ``n_steps`` times
    ``q(h) = sigm(b + q(v)ᵀW)`` then ``q(v) = sigm(a + W q(h))``, stopping early once
    no ``q(v)`` changes by more than ``tol`` (``tol = 0``: never early).

    Args:
        q_v: initial ``q(v = 1)`` ``(B, D)``.
        weight: ``W`` ``(D, H)``.
        visible_bias: ``a`` ``(B, D)`` or ``(D,)`` (for a CRBM, ``â = a + xA``).
        hidden_bias: ``b`` ``(B, H)`` or ``(H,)`` (for a CRBM, ``b̂ = b + xB``).
        n_steps: number of ``h``-then-``v`` updates, ``>= 1``.
        tol: early-stopping tolerance on ``max |Δq(v)|``.

    Returns:
        ``(q_v (B, D), q_h (B, H))`` with ``q_h = sigm(b + q_vᵀW)`` evaluated at the *returned*
        ``q_v`` (so the pair satisfies the hidden equation exactly).
    """
    if n_steps < 1:
        raise ValueError(f"n_steps must be >= 1, got {n_steps}")
    for _ in range(n_steps):
        q_h = hidden_probs(q_v, weight, hidden_bias)
        q_next = bernoulli_visible_probs(q_h, weight, visible_bias)
        converged = tol > 0 and bool((q_next - q_v).abs().max() <= tol)
        q_v = q_next
        if converged:
            break
    return q_v, hidden_probs(q_v, weight, hidden_bias)


def bernoulli_map_inference(
    v: Tensor,
    weight: Tensor,
    visible_bias: Tensor,
    hidden_bias: Tensor,
    n_steps: int,
) -> tuple[Tensor, Tensor, int]:
    """Deterministic block coordinate descent on ``E(v, h)``: most probable ``h``, then ``v``.

    Each step is :func:`~seqboltz.functional.bernoulli_rbm_gibbs_step` with every uniform set
    to ½, i.e. ``h = 1[p(h | v) > ½]``, ``v = 1[p(v | h) > ½]``; ``E(v, h)`` never increases.
    Stops early when no row changes (the state is then a fixed point).

    Args:
        v: starting binary state ``(B, D)``.
        weight, visible_bias, hidden_bias: as in :func:`bernoulli_mean_field`.
        n_steps: maximum number of steps, ``>= 1``.

    Returns:
        ``(v (B, D), h (B, H), steps)``: the final binary states, with ``h`` the most probable
        hiddens given the returned ``v``, and the number of steps taken.
    """
    if n_steps < 1:
        raise ValueError(f"n_steps must be >= 1, got {n_steps}")
    half_h = torch.full((v.shape[0], weight.shape[1]), 0.5, dtype=v.dtype, device=v.device)
    half_v = torch.full_like(v, 0.5)
    steps = 0
    for steps in range(1, n_steps + 1):  # noqa: B007 - steps is returned
        v_next = bernoulli_rbm_gibbs_step(v, half_h, half_v, weight, visible_bias, hidden_bias)[0]
        done = bool(torch.equal(v_next, v))
        v = v_next
        if done:
            break
    h = (hidden_probs(v, weight, hidden_bias) > 0.5).to(v.dtype)
    return v, h, steps
