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
  minimiser of the variational free energy given the other block, so it never increases it
  and cannot cycle. (Updating both blocks from the previous pair instead splits into two
  interleaved block sequences, so it cannot cycle either when started consistently.)
  Damping, ``q(v) ← λ q(v) + (1 - λ) q_new(v)``, is available (the device of damped loopy
  belief propagation, Murphy, Weiss & Jordan 1999); it keeps the fixed points and slows each
  step down, and for this bipartite model it is never needed for convergence.
* "MAP" (iterated conditional modes on the two blocks): ``h = 1[p(h | y, x) > ½]``,
  ``y = 1[p(y | h, x) > ½]``. Each block is set to its most probable state given the other,
  so the joint energy ``E(y, h | x)`` never increases. This is exactly a Gibbs step
  (:func:`~seqboltz.functional.bernoulli_rbm_gibbs_step`) whose uniform noise is ½:
  a unit is on iff ``½ < p``.

For small output spaces (``D ≤ 20``, e.g. multi-label classification, the setting of Mnih et al.
2011 §5) ``p(y | x)`` is computed exactly by enumerating all ``2^D`` outputs,
``log p(y | x) = -F(y | x) - log Σ_y' exp(-F(y' | x))`` (:func:`exact_output_log_probs`), from
which exact marginals and the exact most probable ``y`` follow.

Cost-augmented (margin) negatives: loss-augmented inference maximises ``-F(y | x) + m Δ(y, t)``
with the Hamming loss ``Δ(y, t) = Σᵢ yᵢ(1 - tᵢ) + (1 - yᵢ)tᵢ = Σᵢ yᵢ(1 - 2tᵢ) + const``, i.e.
plain inference with the output biases shifted by ``m (1 - 2t)``
(:func:`cost_augmented_bias`; margin rescaling, Taskar, Guestrin & Koller 2003;
Tsochantaridis et al. 2005).
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F

from seqboltz.functional._rbm import (
    bernoulli_rbm_gibbs_step,
    bernoulli_visible_probs,
    hidden_probs,
)

__all__ = [
    "all_binary_states",
    "bernoulli_map_inference",
    "bernoulli_mean_field",
    "cost_augmented_bias",
    "exact_output_log_partition",
    "exact_output_log_probs",
]

MAX_EXACT_OUTPUTS = 20
"""Largest ``D`` for which :func:`exact_output_log_probs` enumerates ``2^D`` outputs."""


def bernoulli_mean_field(
    q_v: Tensor,
    weight: Tensor,
    visible_bias: Tensor,
    hidden_bias: Tensor,
    n_steps: int,
    tol: float = 0.0,
    damping: float = 0.0,
) -> tuple[Tensor, Tensor]:
    """Block mean-field inference of a binary RBM with (per-example) biases, optionally damped.

    Starting from ``q(v) = q_v``, repeats ``n_steps`` times ``q(h) = sigm(b + q(v)ᵀW)`` then
    ``q(v) = λ q(v) + (1 - λ) sigm(a + W q(h))`` (damping ``λ``; 0: the plain update), stopping
    early once no ``q(v)`` changes by more than ``tol`` in a step (``tol = 0``: never early).

    Args:
        q_v: initial ``q(v = 1)`` ``(B, D)``.
        weight: ``W`` ``(D, H)``.
        visible_bias: ``a`` ``(B, D)`` or ``(D,)`` (for a CRBM, ``â = a + xA``).
        hidden_bias: ``b`` ``(B, H)`` or ``(H,)`` (for a CRBM, ``b̂ = b + xB``).
        n_steps: number of ``h``-then-``v`` updates, ``>= 1``.
        tol: early-stopping tolerance on ``max |Δq(v)|``.
        damping: ``λ`` in ``[0, 1)`` (0: undamped).

    Returns:
        ``(q_v (B, D), q_h (B, H))`` with ``q_h = sigm(b + q_vᵀW)`` evaluated at the *returned*
        ``q_v`` (so the pair satisfies the hidden equation exactly).
    """
    if n_steps < 1:
        raise ValueError(f"n_steps must be >= 1, got {n_steps}")
    if not 0.0 <= damping < 1.0:
        raise ValueError(f"damping must be in [0, 1), got {damping}")
    for _ in range(n_steps):
        q_h = hidden_probs(q_v, weight, hidden_bias)
        q_next = bernoulli_visible_probs(q_h, weight, visible_bias)
        if damping > 0:
            q_next = damping * q_v + (1 - damping) * q_next
        converged = tol > 0 and bool((q_next - q_v).abs().max() <= tol)
        q_v = q_next
        if converged:
            break
    return q_v, hidden_probs(q_v, weight, hidden_bias)


def all_binary_states(
    n: int, dtype: torch.dtype = torch.float32, device: torch.device | str | None = None
) -> Tensor:
    """All ``2^n`` binary vectors ``(2^n, n)``, row ``r`` the bits of ``r`` (first unit most
    significant, as :func:`itertools.product`)."""
    if not 0 <= n <= MAX_EXACT_OUTPUTS:
        raise ValueError(f"n must be in [0, {MAX_EXACT_OUTPUTS}] to enumerate 2^n states, got {n}")
    r = torch.arange(1 << n, device=device)
    shifts = torch.arange(n - 1, -1, -1, device=device)
    return ((r[:, None] >> shifts) & 1).to(dtype)


def _neg_free_energies(
    weight: Tensor, visible_bias: Tensor, hidden_bias: Tensor, chunk_elements: int
) -> list[Tensor]:
    """``-F(y | x)`` for every output ``y`` of :func:`all_binary_states`, ``(b, 2^D)`` blocks."""
    d, h = weight.shape
    if visible_bias.dim() != 2 or hidden_bias.dim() != 2:
        raise ValueError("visible_bias and hidden_bias must be per-example, (B, D) and (B, H)")
    ys = all_binary_states(d, weight.dtype, weight.device)  # (S, D)
    yw = ys @ weight  # (S, H)
    per = max(1, chunk_elements // max(1, ys.shape[0] * h))
    return [
        a_hat @ ys.T + F.softplus(b_hat[:, None, :] + yw[None]).sum(-1)
        for a_hat, b_hat in zip(visible_bias.split(per), hidden_bias.split(per), strict=True)
    ]


def exact_output_log_probs(
    weight: Tensor,
    visible_bias: Tensor,
    hidden_bias: Tensor,
    chunk_elements: int = 1 << 24,
) -> Tensor:
    """Exact ``log p(y | x)`` of a binary (conditional) RBM for every output ``y``.

    ``-F(y) = âᵀy + Σⱼ softplus(b̂ⱼ + (yᵀW)ⱼ)`` over the ``2^D`` outputs of
    :func:`all_binary_states`, normalised per example by log-sum-exp. Memory is bounded by
    working on ``chunk_elements / (2^D · H)`` examples at a time.

    Args:
        weight: ``W`` ``(D, H)``, ``D ≤ 20``.
        visible_bias: ``â`` ``(B, D)``.
        hidden_bias: ``b̂`` ``(B, H)``.
        chunk_elements: the largest ``(examples, 2^D, H)`` block formed at once.

    Returns:
        ``(B, 2^D)``: row ``i``, column ``r``: ``log p(y = all_binary_states(D)[r] | x_i)``.
    """
    blocks = _neg_free_energies(weight, visible_bias, hidden_bias, chunk_elements)
    return torch.cat([nf - torch.logsumexp(nf, dim=1, keepdim=True) for nf in blocks])


def exact_output_log_partition(
    weight: Tensor,
    visible_bias: Tensor,
    hidden_bias: Tensor,
    chunk_elements: int = 1 << 24,
) -> Tensor:
    """``log Z(x) = log Σ_y exp(-F(y | x))`` per example, ``(B,)``, by enumeration (arguments
    as :func:`exact_output_log_probs`); differentiable, so ``-F(y | x) - log Z(x)`` is the
    exact conditional log-likelihood whose gradient is ``-∇F(y) + E_{p(y' | x)}[∇F(y')]``."""
    blocks = _neg_free_energies(weight, visible_bias, hidden_bias, chunk_elements)
    return torch.cat([torch.logsumexp(nf, dim=1) for nf in blocks])


def cost_augmented_bias(visible_bias: Tensor, target: Tensor, margin: float) -> Tensor:
    """Output biases of Hamming-loss-augmented inference: ``â + m (1 - 2t)``, ``(B, D)``.

    Maximising ``-F(y | x) + m Δ(y, t)`` over ``y`` with ``Δ`` the Hamming distance to the
    target ``t`` ``(B, D)`` is plain inference with these biases (margin rescaling, Taskar,
    Guestrin & Koller 2003); a perceptron update against that negative is the structured hinge
    loss's subgradient, whose loss is zero only once the target beats every output by
    ``m`` per differing unit.
    """
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    return visible_bias + margin * (1.0 - 2.0 * target)


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
