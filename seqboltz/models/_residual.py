"""A conditional RBM over the whitened residual of a linear autoregressive predictor.

Why. On real motion the plain CRBM (Taylor et al. 2007: Gaussian visibles with σ = 1 on
standardised frames) is mis-scaled: the frames vary with unit spread, but a frame *given its
history* varies about 10× less, so the unit-variance visible model is far too broad and CD
learns dynamics that drift or blow up when the model feeds on its own output. Here the
visible units are the one-step residual of a least-squares AR predictor, whitened by its
covariance, so that the unit-variance Gaussian is the right size, and the model starts
exactly at the linear baseline:

* ``x``: the last ``order`` frames flattened (most recent first), ``v`` the frame ``(D,)``;
* whitening ``M = L⁻¹`` with ``L Lᵀ = Σ`` the AR residual covariance (buffers, set by
  :meth:`ResidualCRBM.init_from_sequences`); ``u = M v``;
* ``c`` the frame's optional controls ``(C,)`` (e.g. linguistic features for speech
  synthesis; ``n_controls = 0`` for none) and style ``(S,)`` (e.g. the root speed a client
  steers; ``n_style = 0`` for none), which enter alike, side by side in ``c``;
* ``â = a + x A + c P`` (whitened prediction; starts at the least-squares fit on
  ``[x, c, 1]``), ``b̂ = b + x B + c Q`` (as in :class:`~seqboltz.models.ConditionalRBM`);
* ``r = u - â`` and ``E(v, h | x) = ½‖r‖² - b̂ᵀh - rᵀWh``.

So ``p(h | v, x) = sigm(b̂ + rW)`` and ``p(u | h, x) = N(â + W h, I)``: with ``W = 0`` this is
exactly the linear AR(X) model with its full residual covariance, the baseline; the hidden units
add what a linear Gaussian predictor cannot hold (several modes, phase). ``F(v | x) = ½‖r‖² -
Σⱼ softplus(b̂ⱼ + (rW)ⱼ)``, in whitened coordinates (the Jacobian ``log|det M|`` is a constant).

With a style ``z`` (``n_style > 0``) the residual also has a per-frame scale ``σ(z) =
exp(κ₀ + z κ)`` (log-linear, bounded): ``r = (u - â) / σ(z)``, so ``p(u | h, x, z) = N(â +
σ W h, σ² I)``. Motion's speed is mostly *how much* the body moves, not a shift of its mean
(on the CMU selection the whitened one-step residual's mean square grows tenfold from the
slowest tenth of frames to the fastest), which a mean shift ``z P`` cannot express and a scale
does. ``κ`` starts at the maximum-likelihood fit on the start's residuals
(:func:`fit_log_scale`). The Jacobian ``D log σ(z)`` is constant given the conditioning, so
``F`` stays in these scaled coordinates.

Generation (:meth:`~seqboltz.models.SequenceRBM.next_frame` over this model's
``sampler_start``/``sampler_step``/``sampler_emit``): Taylor's sampler over the residual, its
chain started at ``r = 0`` (the AR prediction), ``k`` alternating steps (``h`` sampled, ``r``
set to its mean), a final mean-field step, then the visible noise the model defines, ``ε ~ N(0, I)``
scaled by ``visible_noise``, and ``v = L(â + r + ε)``. The normals come from the frame's
uniforms by Box–Muller, so the noise is still one ``(k, noise_width)`` block of uniforms per
frame (:attr:`ResidualCRBM.noise_width` ``= H + 2⌈D/2⌉``) and the step exports and streams like
every sequence model.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from seqboltz import functional as Fn
from seqboltz.models._base import Conditioning, GibbsStep, NoiseSpec
from seqboltz.models._crbm import FrameParams, SequenceRBM, _param
from seqboltz.models._registry import register_model

__all__ = [
    "LinearARX",
    "ResidualCRBM",
    "band_weights",
    "box_muller",
    "fit_banded_arx",
    "fit_linear_arx",
    "fit_log_scale",
]

_TWO_PI = torch.tensor(2.0 * math.pi, dtype=torch.float64)
#: bound on the residual's log scale ``log σ(z)`` (σ in [e⁻³, e³]), as a GBRBM bounds log σ
LOG_SCALE_BOUND = 3.0


def box_muller(uniforms: Tensor, n: int) -> Tensor:
    """``n`` standard normals per row from ``2⌈n/2⌉`` uniforms in [0, 1) (Box & Muller 1958).

    Args:
        uniforms: ``(..., 2m)`` with ``m = ⌈n/2⌉``.
        n: normals wanted.

    Returns:
        ``(..., n)``: ``√(-2 ln(1 - u₁)) · (cos 2πu₂, sin 2πu₂)``.
    """
    m = (n + 1) // 2
    if uniforms.shape[-1] != 2 * m:
        raise ValueError(f"{n} normals need {2 * m} uniforms per row; got {uniforms.shape[-1]}")
    radius = torch.sqrt(-2.0 * torch.log1p(-uniforms[..., :m]))
    # 2π as a float64 tensor constant: a Python float (or torch.full) is traced into the
    # ONNX graph rounded to float32, 2e-7 off, which the runtime would then disagree by.
    angle = _TWO_PI.to(uniforms) * uniforms[..., m:]
    return torch.cat([radius * torch.cos(angle), radius * torch.sin(angle)], dim=-1)[..., :n]


@dataclass(frozen=True)
class LinearARX:
    """Linear model ``v_t = c₀ + x_t M + c_t P + ε``, ``ε ~ N(0, Σ)`` (AR with exogenous controls).

    Attributes:
        coef: ``M`` ``(order·D, D)`` on the flattened history (most recent first).
        control_coef: ``P`` ``(C, D)`` on the frame's controls (``C`` may be 0).
        intercept: ``c₀`` ``(D,)``.
        residual_cov: ``Σ`` ``(D, D)``, the covariance of the training residuals.
    """

    coef: np.ndarray
    control_coef: np.ndarray
    intercept: np.ndarray
    residual_cov: np.ndarray

    def predict(self, history: np.ndarray, controls: np.ndarray | None = None) -> np.ndarray:
        """Mean of the next frame: ``history (B, order, D)``, ``controls (B, C)`` → ``(B, D)``."""
        order = self.coef.shape[0] // self.coef.shape[1]
        x = np.asarray(history, dtype=np.float64)[:, :order].reshape(len(history), -1)
        out = self.intercept + x @ self.coef
        if self.control_coef.shape[0]:
            out = out + np.asarray(controls, dtype=np.float64) @ self.control_coef
        return np.asarray(out)


def _design(clip: np.ndarray, ctl: np.ndarray | None, order: int) -> tuple[np.ndarray, np.ndarray]:
    """``[x_t, c_t, 1]`` rows ``(T - order, order·D + C + 1)`` and targets ``v_t``."""
    t = clip.shape[0]
    parts = [clip[order - k : t - k] for k in range(1, order + 1)]  # t-1 first
    if ctl is not None:
        parts.append(ctl[order:])
    parts.append(np.ones((t - order, 1)))
    return np.concatenate(parts, axis=1), clip[order:]


def _solve_stabilised(
    gram: np.ndarray,
    xty: np.ndarray,
    penalty: np.ndarray,
    n_past: int,
    max_radius: float | None,
    stabilise: str,
) -> np.ndarray:
    """Solve the ridge normal equations ``(G + diag(p)) β = Xᵀy`` on ``[x_t, c_t, 1]``; with
    ``max_radius``, bring the history block ``β[:n_past]`` inside it
    (:func:`seqboltz.eval._sequence.stabilised_coef`) and refit the rest (controls, intercept)
    given it. The one solve of :func:`fit_linear_arx` and of each band of
    :func:`fit_banded_arx`."""
    from seqboltz.eval._sequence import stabilised_coef  # numpy, defined once

    sol = np.linalg.solve(gram + np.diag(penalty), xty)
    if max_radius is None:
        return sol
    past = sol[:n_past]
    coef = stabilised_coef(past, max_radius, stabilise)
    if coef is past:  # already inside the radius
        return sol
    sol = sol.copy()
    sol[:n_past] = coef
    rest = slice(n_past, None)
    rhs = xty[rest] - gram[rest, :n_past] @ coef
    sol[rest] = np.linalg.solve(gram[rest, rest] + np.diag(penalty[rest]), rhs)
    return sol


def fit_linear_arx(
    sequences: Sequence[np.ndarray],
    controls: Sequence[np.ndarray] | None,
    order: int,
    ridge: float = 1e-6,
    history_noise: float = 0.0,
    max_radius: float | None = None,
    stabilise: str = "scale",
) -> LinearARX:
    """Least squares ``v_t ≈ [x_t, c_t, 1] β`` over clips (never straddling two).

    The normal equations are accumulated clip by clip (``O((nD + C)²)`` memory).

    Args:
        sequences: clips ``[(T_i, D)]``.
        controls: per-frame controls ``[(T_i, C)]`` aligned with ``sequences``, or ``None``.
        order: history length ``n``.
        ridge: Tikhonov term added to every diagonal entry of the normal equations.
        history_noise: σ of a Gaussian noise the fit expects on the history inputs: the
            expected least squares adds ``N σ²`` to the history block's diagonal (``N``
            windows). A free-running generation then leans less on its own past (the linear
            counterpart of noisy-history training; Bengio et al. 2015 discuss the exposure
            problem it eases).
        max_radius: if set and the history part's companion spectral radius exceeds it, the
            history blocks are brought inside it as :func:`seqboltz.eval._sequence.stabilise_ar`
            does and the controls and intercept refitted given them.
        stabilise: ``"scale"`` (every root times ``γ``) or ``"clip"`` (only the roots above
            ``max_radius``), as :func:`seqboltz.eval._sequence.stabilised_coef`.
    """
    d = sequences[0].shape[1]
    n_past = order * d
    gram: np.ndarray | None = None
    xty: np.ndarray | None = None
    n = 0
    ctls = list(controls) if controls is not None else [None] * len(sequences)
    for clip, ctl in zip(sequences, ctls, strict=True):
        if clip.shape[0] <= order:
            continue
        x, y = _design(clip, ctl, order)
        gram = x.T @ x if gram is None else gram + x.T @ x
        xty = x.T @ y if xty is None else xty + x.T @ y
        n += x.shape[0]
    assert gram is not None and xty is not None
    penalty = np.full(gram.shape[0], ridge)
    penalty[:n_past] += n * history_noise**2
    sol = _solve_stabilised(gram, xty, penalty, n_past, max_radius, stabilise)
    total = np.zeros(d)
    outer = np.zeros((d, d))
    for clip, ctl in zip(sequences, ctls, strict=True):
        if clip.shape[0] <= order:
            continue
        x, y = _design(clip, ctl, order)
        resid = y - x @ sol
        total += resid.sum(0)
        outer += resid.T @ resid
    mean = total / n
    cov = (outer - n * np.outer(mean, mean)) / max(n - 1, 1)
    return LinearARX(sol[:n_past], sol[n_past:-1], sol[-1], cov)


def fit_log_scale(
    sq_norms: np.ndarray, features: np.ndarray, dim: int, iterations: int = 50
) -> np.ndarray:
    """Maximum-likelihood ``κ`` of a residual ``r_t ~ N(0, σ_t² I_dim)``, ``log σ_t = [1, z_t] κ``.

    Minimises the negative log-likelihood ``Σ_t dim · s_t + ‖r_t‖² e^{-2 s_t} / 2`` (convex in
    ``κ``) by Newton's method from the constant fit.

    Args:
        sq_norms: ``‖r_t‖²`` ``(N,)`` of whitened residuals.
        features: ``z_t`` ``(N, S)``.
        dim: the residual's size ``D``.
        iterations: Newton steps at most (it stops when a step moves ``κ`` by < 1e-10).

    Returns:
        ``κ`` ``(1 + S,)``: the intercept ``κ₀``, then one slope per feature.
    """
    q = np.asarray(sq_norms, dtype=np.float64)
    z = np.concatenate([np.ones((q.shape[0], 1)), np.asarray(features, np.float64)], axis=1)
    kappa = np.zeros(z.shape[1])
    kappa[0] = 0.5 * math.log(max(float(q.mean()) / dim, 1e-300))
    for _ in range(iterations):
        w = q * np.exp(-2.0 * (z @ kappa))
        grad = z.T @ (dim - w)
        hess = 2.0 * (z.T * w) @ z + 1e-12 * np.eye(z.shape[1])
        step = np.linalg.solve(hess, grad)
        kappa -= step
        if np.abs(step).max() < 1e-10:
            break
    return kappa


def band_weights(z: Tensor, centres: Tensor) -> Tensor:
    """Piecewise-linear interpolation weights of ``z`` ``(N, 1)`` between band ``centres``
    ``(K,)`` (increasing): ``(N, K)``, each row summing to 1, ``z`` clamped to the outer
    centres. The one definition: the start's fit (:func:`fit_banded_arx`) and the graph
    (:meth:`ResidualCRBM.band_weights`) both call it."""
    c = centres.to(z)
    x = torch.minimum(torch.maximum(z, c[:1]), c[-1:])
    prev = torch.cat([c[:1] - 1.0, c[:-1]])
    nxt = torch.cat([c[1:], c[-1:] + 1.0])
    return torch.clamp(torch.minimum((x - prev) / (c - prev), (nxt - x) / (nxt - c)), 0.0, 1.0)


def _band_weights_np(z: np.ndarray, centres: Sequence[float]) -> np.ndarray:
    """:func:`band_weights` of a numpy ``z`` ``(N,)``, float64."""
    zt = torch.as_tensor(np.asarray(z, dtype=np.float64).reshape(-1, 1))
    return band_weights(zt, torch.as_tensor(centres, dtype=torch.float64)).numpy()


def fit_banded_arx(
    sequences: Sequence[np.ndarray],
    styles: Sequence[np.ndarray],
    order: int,
    centres: Sequence[float],
    ridge: float,
    max_radius: float | None,
    stabilise: str,
) -> list[np.ndarray]:
    """One least-squares AR with style per speed band: the windows weighted by
    :func:`band_weights` of their style's first column, each band's history part stabilised
    like :func:`fit_linear_arx`'s and its style and intercept refitted given it.

    Returns:
        per band ``β`` ``(order·D + S + 1, D)`` on ``[x_t, z_t, 1]``.
    """
    d = sequences[0].shape[1]
    n_past = order * d
    grams: list[np.ndarray] = []
    rhs: list[np.ndarray] = []
    for clip, sty in zip(sequences, styles, strict=True):
        if clip.shape[0] <= order:
            continue
        x, y = _design(clip, sty, order)
        w = _band_weights_np(sty[order:, 0], centres)  # (N, K)
        for k in range(w.shape[1]):
            xw = x * w[:, k : k + 1]
            if len(grams) <= k:
                grams.append(x.T @ xw)
                rhs.append(xw.T @ y)
            else:
                grams[k] += x.T @ xw
                rhs[k] += xw.T @ y
    out = []
    for gram, xty in zip(grams, rhs, strict=True):
        penalty = np.full(gram.shape[0], ridge * max(float(np.trace(gram)) / gram.shape[0], 1e-12))
        out.append(_solve_stabilised(gram, xty, penalty, n_past, max_radius, stabilise))
    return out


@register_model
class ResidualCRBM(SequenceRBM):
    """Conditional RBM over the whitened residual of a linear AR predictor (see the module).

    Args:
        n_visible: frame size ``D`` (standardised features).
        n_hidden: hidden units ``H``.
        order: history length ``n``.
        init_std: standard deviation of the initial ``W`` and ``B``.
        visible_noise: scale of the visible noise ``ε`` in generation (1: the model's own
            conditional; 0: Taylor's noiseless visible mean).
        ridge: Tikhonov term of the least-squares start (relative to the mean diagonal of the
            normal equations).
        max_radius: if set, the least-squares start is stabilised to this companion spectral
            radius (:func:`seqboltz.eval._sequence.stabilise_ar`) before training: a fit on
            a few seconds of a user's clips can land above 1 and blow up over a minute.
            ``"auto"``: the radius whose time constant is the median training clip's length
            (:func:`seqboltz.eval._sequence.clip_length_radius`; :attr:`start_radius` holds
            it once fitted), so no mode is slower than the clips can show.
        stabilise: how: ``"scale"`` multiplies every companion root by ``γ = max_radius / ρ``,
            damping every mode; ``"clip"`` moves only the roots above ``max_radius`` onto it
            (:func:`seqboltz.eval._sequence.clip_ar_spectrum`). On the CMU selection scaling
            0.9992 to 0.99 shrank the linear start's 60-s generations (validation: median
            std ratio 0.89 → 0.77, pooled Fréchet 628 → 753); clipping kept most (0.88, 683).
        train_linear: train the AR part (``A`` and ``a``) with CD too. ``False`` keeps the
            (stable) least-squares start fixed, so the hidden units can only add a bounded
            term ``W h`` to a stable linear system and a generation cannot grow without
            bound. CD left free moved the start's radius from 0.9992 to 1.0050 on the CMU
            selection, and its 60-s generations drifted (``benchmarks/RESULTS.md``). With
            controls, ``P`` is part of the linear part too.
        n_controls: size ``C`` of the optional per-frame controls (0: none). They enter the
            least-squares start beside the history (:func:`fit_linear_arx`) and the hidden
            biases through ``Q``; :meth:`init_from_sequences` then needs their clips.
        start_history_noise: σ of the history noise the least-squares start expects
            (:func:`fit_linear_arx`'s ``history_noise``; 0: plain least squares). A start that
            leans less on its own past runs steadier free, as in text-to-speech.
        history_to_hidden: let the history reach the hidden units (``B``). ``False`` keeps
            ``B = 0`` (frozen): the hidden units then see the residual and the controls only,
            so when a generation feeds on its own output (text-to-speech run free over a
            whole utterance) the non-linear part cannot amplify the history's drift. On the
            Asterisk prompts the history-driven hidden units cut the one-step MCD by 0.7 dB
            but made free-running speech worse than the linear start
            (``benchmarks/RESULTS.md``).
        n_style: size ``S`` of an optional per-frame style ``cond["style"]`` (0: none), such
            as :class:`~seqboltz.data.MotionDataModule`'s standardised root speed. It enters
            exactly like the controls (the least-squares start's regressors, ``P``, and the
            hidden biases, ``Q``; :meth:`init_from_sequences` then needs its clips) but under
            the name a style travels by: the data's ``cond["style"]``, the exported graph's
            ``style`` input with the data's style statistics on the card, the service's and
            viewer's steering. It also sets the residual's scale ``σ(z)`` (see the module).
            Unlike :class:`~seqboltz.models.FactoredConditionalRBM`'s style it gates no
            dynamics, so with ``train_linear=False`` any requested style drives a stable
            linear system with a bounded input and bounded noise.
        generation: how a frame is generated (never used in training). ``"sampler"``:
            Taylor's sampler (``k`` steps with the hidden states drawn, a mean-field last
            step, the visible noise). ``"mean"``: the model's one-pass conditional mean
            ``L(â + σ(z) W σ(b̂))`` (:meth:`conditional_mean`): the sampler's steps keep
            ``r = 0``, so its mean-field last step is that pass, and no noise is read; the
            frame a text-to-speech voice fitted by
            :class:`~seqboltz.training.FitConditionalMean` should speak (``benchmarks/
            RESULTS.md``, session 9: more passes diverge, the sampled hidden states add noise).
        style_bands: centres of speed bands in the style's first column (e.g. ``[-1.25,
            0.5]``, standardised root speed), or ``None``. Each band gets its own least-squares
            linear start (:func:`fit_banded_arx`: the windows weighted by
            :func:`band_weights` of their style, stabilised like the pooled one), and a frame's
            linear prediction is the bands' interpolated at its style. One linear system for
            every speed cannot stand still: a slow person's root barely moves while the body
            still does, and the served speed model's slowest gait was −0.39 standard units
            where −1.25 was asked; the slow band's own dynamics reach −0.75 from the
            validation starts (``benchmarks/RESULTS.md``, session 16). It gates the linear
            part only, with coefficients fixed at the start, each band stabilised.

    Example:
        >>> model = ResidualCRBM(4, 8, order=2)
        >>> clips = [np.cumsum(np.random.default_rng(i).normal(size=(200, 4)), 0) for i in range(3)]
        >>> model.init_from_sequences(clips)
        >>> model.generate(torch.as_tensor(clips[0][:2]), 5, gibbs_steps=3).shape
        torch.Size([5, 4])
    """

    whiten: Tensor  # (D, D) buffer M = L⁻¹
    start_radius_: Tensor  # () float64 buffer, 0 until known
    # speed bands (``style_bands``): centres (K,), and each band's whitened prediction minus
    # the pooled one: history (K, n·D, D), style (K, S, D), intercept (K, D)
    band_centres: Tensor
    band_autoregressive: Tensor
    band_style: Tensor
    band_bias: Tensor
    unwhiten: Tensor  # (D, D) buffer L

    def __init__(
        self,
        n_visible: int,
        n_hidden: int,
        order: int,
        init_std: float = 0.01,
        visible_noise: float = 1.0,
        ridge: float = 1e-4,
        max_radius: float | str | None = None,
        stabilise: str = "scale",
        train_linear: bool = True,
        n_controls: int = 0,
        start_history_noise: float = 0.0,
        history_to_hidden: bool = True,
        n_style: int = 0,
        generation: str = "sampler",
        style_bands: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        if generation not in ("sampler", "mean"):
            raise ValueError(f"generation must be 'sampler' or 'mean'; got {generation!r}")
        self.generation = generation
        if min(n_visible, n_hidden, order) < 1 or not visible_noise >= 0 or not ridge >= 0:
            raise ValueError(
                "need n_visible, n_hidden, order >= 1 and visible_noise, ridge >= 0; got "
                f"{n_visible}, {n_hidden}, {order}, {visible_noise}, {ridge}"
            )
        if isinstance(max_radius, str):
            if max_radius != "auto":
                raise ValueError(f"max_radius must be in (0, 1] or 'auto'; got {max_radius!r}")
        elif max_radius is not None and not 0 < max_radius <= 1:
            raise ValueError(f"max_radius must be in (0, 1] or 'auto'; got {max_radius}")
        from seqboltz.eval._sequence import STABILISE_METHODS  # numpy, defined once

        if stabilise not in STABILISE_METHODS:
            raise ValueError(f"stabilise must be one of {STABILISE_METHODS}; got {stabilise!r}")
        if n_controls < 0 or n_style < 0 or not start_history_noise >= 0:
            raise ValueError(
                "need n_controls >= 0, n_style >= 0 and start_history_noise >= 0; got "
                f"{n_controls}, {n_style}, {start_history_noise}"
            )
        self.n_visible, self.n_hidden, self.order = n_visible, n_hidden, order
        self.n_controls, self.n_style = n_controls, n_style
        self.init_std, self.visible_noise, self.ridge = init_std, visible_noise, ridge
        self.max_radius, self.train_linear = max_radius, train_linear
        # the radius the start was stabilised to (``max_radius``, or what ``"auto"`` chose), a
        # float64 buffer so that a checkpoint keeps it (0: none, not yet fitted or not recorded;
        # not NaN, which a scan of the state for divergence would take for a blown-up model)
        fixed = 0.0 if isinstance(max_radius, str) or max_radius is None else max_radius
        self.register_buffer("start_radius_", torch.tensor(fixed, dtype=torch.float64))
        self.stabilise = stabilise
        self.start_history_noise = start_history_noise
        self.history_to_hidden = history_to_hidden
        n_past = order * n_visible
        self.weight = _param(n_visible, n_hidden, std=init_std)
        self.visible_bias = _param(n_visible, std=0)
        self.hidden_bias = _param(n_hidden, std=0)
        self.autoregressive = _param(n_past, n_visible, std=0)
        past_std = init_std / 10 if history_to_hidden else 0.0
        self.past_to_hidden = _param(n_past, n_hidden, std=past_std)
        self.past_to_hidden.requires_grad_(history_to_hidden)
        # v → u = v Mᵀ and back, u → v = u Lᵀ (the residual whitening; identity until fitted)
        self.register_buffer("whiten", torch.eye(n_visible))
        self.register_buffer("unwhiten", torch.eye(n_visible))
        if n_controls:
            self.control_to_visible = _param(n_controls, n_visible, std=0)
            self.control_to_hidden = _param(n_controls, n_hidden, std=init_std / 10)
            self.control_to_visible.requires_grad_(train_linear)
        if n_style:  # the style's P and Q, as the controls', and its residual scale κ
            self.style_to_visible = _param(n_style, n_visible, std=0)
            self.style_to_hidden = _param(n_style, n_hidden, std=init_std / 10)
            self.log_scale_bias = _param(1, std=0)
            self.style_to_log_scale = _param(n_style, std=0)
            for param in (self.style_to_visible, self.log_scale_bias, self.style_to_log_scale):
                param.requires_grad_(train_linear)
            # generation's style gain g (1 until calibrated: CalibrateStyleGain), and its
            # calibration curve of the first column ((2, K) knots; K = 0: none)
            self.register_buffer("style_gain", torch.ones(()))
            self.register_buffer("style_curve", torch.zeros(2, 0))
        self.style_bands: tuple[float, ...] | None = None
        if style_bands is not None:
            centres = tuple(float(c) for c in style_bands)
            if not n_style or n_controls:
                raise ValueError("style_bands needs a style (n_style > 0) and no controls")
            if len(centres) < 2 or any(b <= a for a, b in itertools.pairwise(centres)):
                raise ValueError(f"style_bands must be 2+ increasing centres; got {centres}")
            k = len(centres)
            self.style_bands = centres
            # each band's linear prediction minus the pooled one (whitened), fitted at the start
            self.register_buffer("band_centres", torch.tensor(centres, dtype=torch.float64))
            self.register_buffer("band_autoregressive", torch.zeros(k, n_past, n_visible))
            self.register_buffer("band_style", torch.zeros(k, n_style, n_visible))
            self.register_buffer("band_bias", torch.zeros(k, n_visible))
        self.autoregressive.requires_grad_(train_linear)
        self.visible_bias.requires_grad_(train_linear)

    @property
    def start_radius(self) -> float | None:
        """The companion spectral radius the least-squares start was stabilised to:
        ``max_radius``, or the one ``"auto"`` chose from the training clips (kept in the
        checkpoint); ``None`` before an ``"auto"`` start is fitted, without a bound, or in a
        checkpoint from before it was recorded."""
        value = float(self.start_radius_)
        return None if value <= 0.0 else value

    @property
    def noise_width(self) -> int:
        """Uniforms per Gibbs step of generation: ``H`` for the hiddens, ``2⌈D/2⌉`` for the
        visible normals (read from the last step's row)."""
        return self.n_hidden + 2 * ((self.n_visible + 1) // 2)

    # -- the start: least-squares AR and its residual covariance -----------------------------
    @torch.no_grad()
    def init_from_sequences(
        self,
        sequences: Sequence[np.ndarray],
        controls: Sequence[np.ndarray] | None = None,
        styles: Sequence[np.ndarray] | None = None,
    ) -> None:
        """Start at the least-squares AR(X) model of the training clips (never straddling
        two): ``â`` is its prediction, ``M``/``L`` whiten its residual, ``W`` stays small.

        Args:
            sequences: training clips ``[(T_i, D)]``, standardised.
            controls: their per-frame controls ``[(T_i, C)]`` (only, and then required, for a
                model with ``n_controls > 0``).
            styles: their per-frame style ``[(T_i, S)]`` (only, and then required, for a
                model with ``n_style > 0``).
        """
        from seqboltz.eval._sequence import (  # numpy, defined once
            clip_length_radius,
            fit_linear_ar,
            stabilise_ar,
        )

        clips = [np.asarray(s, dtype=np.float64) for s in sequences]
        if not clips or any(c.ndim != 2 or c.shape[1] != self.n_visible for c in clips):
            raise ValueError(f"sequences must be clips of shape (T, {self.n_visible})")
        ctls = self._check_extra_clips(clips, controls, self.n_controls, "controls", "control")
        stys = self._check_extra_clips(clips, styles, self.n_style, "styles", "style")
        if ctls is not None and stys is not None:  # c = [controls, style]
            ctls = [np.concatenate([c, s], axis=1) for c, s in zip(ctls, stys, strict=True)]
        elif stys is not None:
            ctls = stys
        if sum(max(0, c.shape[0] - self.order) for c in clips) <= self.order * self.n_visible:
            raise ValueError(
                f"too few windows to fit the AR start of order {self.order} on "
                f"{self.n_visible} features"
            )
        if not all(np.isfinite(c).all() for c in clips):
            raise ValueError("sequences contain NaN or infinite values")
        radius: float | None  # the Python value: the buffer may be float32
        if self.max_radius == "auto":
            radius = clip_length_radius(clips)
            self.start_radius_.fill_(radius)
        else:
            radius = None if self.max_radius is None else float(self.max_radius)
        if ctls is None and self.start_history_noise == 0:  # the motion path, unchanged
            ar = fit_linear_ar(clips, self.order, ridge=self.ridge)
            if radius is not None:
                ar = stabilise_ar(ar, clips, radius, self.stabilise)
            coef, intercept, resid_cov = ar.coef, ar.intercept, ar.residual_cov
            control_coef = None
        else:
            arx = fit_linear_arx(
                clips,
                ctls,
                self.order,
                ridge=self.ridge,
                history_noise=self.start_history_noise,
                max_radius=radius,
                stabilise=self.stabilise,
            )
            coef, intercept, resid_cov = arx.coef, arx.intercept, arx.residual_cov
            control_coef = arx.control_coef
        d = self.n_visible
        cov = resid_cov + 1e-8 * max(float(np.trace(resid_cov)) / d, 1e-12) * np.eye(d)
        chol = np.linalg.cholesky(cov)
        inv = np.linalg.inv(chol)
        ref = self.reference_parameter()
        as_t = lambda a: torch.as_tensor(a, dtype=ref.dtype, device=ref.device)  # noqa: E731
        self.whiten.copy_(as_t(inv))
        self.unwhiten.copy_(as_t(chol))
        self.autoregressive.copy_(as_t(coef @ inv.T))
        self.visible_bias.copy_(as_t(intercept @ inv.T))
        if control_coef is not None:
            coef_p = control_coef @ inv.T  # (C + S, D): the controls' rows, then the style's
            if self.n_controls:
                self.control_to_visible.copy_(as_t(coef_p[: self.n_controls]))
            if self.n_style:
                self.style_to_visible.copy_(as_t(coef_p[self.n_controls :]))
        bands: list[np.ndarray] = []
        if self.style_bands is not None:  # each band's own dynamics, as deltas to the pooled
            assert stys is not None and control_coef is not None
            pooled = np.concatenate([coef, control_coef, intercept[None]], axis=0)
            bands = fit_banded_arx(
                clips, stys, self.order, self.style_bands, self.ridge, radius, self.stabilise
            )
            n_past = self.order * self.n_visible
            for k, sol_k in enumerate(bands):
                delta = (sol_k - pooled) @ inv.T
                self.band_autoregressive[k].copy_(as_t(delta[:n_past]))
                self.band_style[k].copy_(as_t(delta[n_past:-1]))
                self.band_bias[k].copy_(as_t(delta[-1]))
        if stys is not None:  # the residual's scale σ(z): ML on the whitened start residuals
            assert ctls is not None and control_coef is not None
            sol = np.concatenate([coef, control_coef, intercept[None]], axis=0)
            sq, feats = [], []
            for clip, ctl, sty in zip(clips, ctls, stys, strict=True):
                if clip.shape[0] > self.order:
                    x, y = _design(clip, ctl, self.order)
                    if bands:
                        w = _band_weights_np(sty[self.order :, 0], self.style_bands or ())
                        pred = sum(w[:, k : k + 1] * (x @ b) for k, b in enumerate(bands))
                    else:
                        pred = x @ sol
                    sq.append((((y - pred) @ inv.T) ** 2).sum(1))
                    feats.append(sty[self.order :])
            kappa = fit_log_scale(np.concatenate(sq), np.concatenate(feats), d)
            self.log_scale_bias.copy_(as_t(kappa[:1]))
            self.style_to_log_scale.copy_(as_t(kappa[1:]))

    def _check_extra_clips(
        self,
        clips: list[np.ndarray],
        extra: Sequence[np.ndarray] | None,
        size: int,
        name: str,
        what: str,
    ) -> list[np.ndarray] | None:
        """Per-frame ``controls``/``styles`` clips checked against ``clips`` (``None``: none)."""
        size_name = "n_controls" if name == "controls" else "n_style"
        if not size:
            if extra is not None:
                raise ValueError(f"{name} given, but the model was built with {size_name}=0")
            return None
        if extra is None:
            raise ValueError(
                f"the model has {size_name}={size}: init_from_sequences needs the clips' {name} too"
            )
        out = [np.asarray(c, dtype=np.float64) for c in extra]
        if len(out) != len(clips):
            raise ValueError(f"{len(out)} {what} clips for {len(clips)} clips")
        for i, (c, v) in enumerate(zip(out, clips, strict=True)):
            if c.shape != (v.shape[0], size):
                raise ValueError(
                    f"{what} clip {i} has shape {c.shape}; expected ({v.shape[0]}, "
                    f"{size}) to match its clip"
                )
            if not np.isfinite(c).all():
                raise ValueError(f"{what} clip {i} contains NaN or infinite values")
        return out

    @torch.no_grad()
    def init_from_data(self, data: Tensor) -> None:
        """Validation only: the start needs whole clips (:meth:`init_from_sequences`)."""
        self.check_visible(data, "data")

    # -- conditionals -------------------------------------------------------------------------
    def frame_params(self, cond: Conditioning | None) -> FrameParams:
        history, controls, style = self.parse_cond(cond)
        # controls and style enter alike: c = [controls, style], P and Q stacked to match
        parts = [
            (x, to_v, to_h)
            for x, to_v, to_h in (
                (controls, "control_to_visible", "control_to_hidden"),
                (style, "style_to_visible", "style_to_hidden"),
            )
            if x is not None
        ]
        c = p = q = None
        if parts:
            c = torch.cat([x for x, _, _ in parts], dim=1)
            p = torch.cat([getattr(self, to_v) for _, to_v, _ in parts], dim=0)
            q = torch.cat([getattr(self, to_h) for _, _, to_h in parts], dim=0)
        a_hat, b_hat = Fn.linear_dynamic_biases(
            history,
            self.visible_bias,
            self.hidden_bias,
            self.autoregressive,
            self.past_to_hidden,
            c,
            p,
            q,
        )
        if self.style_bands is not None and style is not None:
            a_hat = a_hat + self._band_delta(history, style)
        # â is in whitened coordinates; the third field carries the residual scale σ(z) (B, 1)
        return FrameParams(a_hat, b_hat, None if style is None else self.residual_scale(style))

    def band_weights(self, style: Tensor) -> Tensor:
        """:func:`band_weights` of the style's first column: ``(B, S)`` → ``(B, K)``."""
        return band_weights(style[:, :1], self.band_centres)

    def _band_delta(self, history: Tensor, style: Tensor) -> Tensor:
        """``Σ_k w_k(z) (δa_k + x δA_k + z δP_k)`` ``(B, D)``: the speed bands' own linear
        prediction minus the pooled one, interpolated at the frame's style."""
        w = self.band_weights(style)  # (B, K)
        per_band = (
            torch.einsum("bi,kij->bkj", history, self.band_autoregressive)
            + torch.einsum("bs,ksj->bkj", style, self.band_style)
            + self.band_bias
        )
        return (w.unsqueeze(-1) * per_band).sum(dim=1)

    def residual_scale(self, style: Tensor) -> Tensor:
        """``σ(z) = exp(clamp(κ₀ + z κ, ±LOG_SCALE_BOUND))``: ``(B, S)`` → ``(B, 1)``."""
        log_scale = self.log_scale_bias + style @ self.style_to_log_scale[:, None]
        return torch.exp(torch.clamp(log_scale, -LOG_SCALE_BOUND, LOG_SCALE_BOUND))

    @staticmethod
    def _scaled(x: Tensor, params: FrameParams) -> Tensor:
        """``σ(z) x`` (``x`` itself without a style)."""
        return x if params.gate is None else x * params.gate

    def residual(self, v: Tensor, params: FrameParams) -> Tensor:
        """``r = (M v - â) / σ(z)`` ``(B, D)`` (``σ = 1`` without a style)."""
        r = v @ self.whiten.T - params.visible_bias
        return r if params.gate is None else r / params.gate

    def hidden_input(self, v: Tensor, params: FrameParams) -> Tensor:
        return Fn.hidden_input(self.residual(v, params), self.weight, params.hidden_bias)

    def visible_mean(self, h: Tensor, params: FrameParams) -> Tensor:
        """``E[v | h, x] = L(â + σ W h)`` ``(B, H)`` → ``(B, D)`` (``σ = 1`` without a style)."""
        return (params.visible_bias + self._scaled(h @ self.weight.T, params)) @ self.unwhiten.T

    def conditional_mean(self, cond: Conditioning, passes: int = 1) -> Tensor:
        """Mean-field estimate of ``E[v | x, c]``: from the linear prediction (``r = 0``),
        ``passes`` passes ``r ← σ(z) W σ(b̂ + r W)``, then ``L(â + r)``.

        One pass is ``L(â + σ(z) W σ(b̂))``: the linear model plus a one-hidden-layer network
        of the history and controls (``b̂ = b + x B + c Q``), which is what the hidden units
        can add to the mean (the probe ``benchmarks/tts_probe.py``); more passes iterate
        towards the mean-field fixed point.

        Args:
            cond: ``{"history": (B, order, D), "controls"/"style": (B, ·)}``.
            passes: mean-field passes, ``≥ 1``.

        Returns:
            ``(B, D)``.
        """
        return self._mean_field(self.frame_params(cond), passes)

    def _mean_field(self, params: FrameParams, passes: int) -> Tensor:
        if passes < 1:
            raise ValueError(f"passes must be >= 1; got {passes}")
        h = params.hidden_bias.new_zeros(params.hidden_bias.shape)
        v = self.visible_mean(h, params)  # L(â)
        for _ in range(passes):
            v = self.visible_mean(torch.sigmoid(self.hidden_input(v, params)), params)
        return v

    def conditional_mean_error(self, v: Tensor, cond: Conditioning, passes: int = 1) -> Tensor:
        """``½‖r(v) − r(v̂)‖²`` per row, ``v̂`` :meth:`conditional_mean`: the squared error of
        the mean in the whitened (and scaled) residual coordinates, i.e. the negative
        log-likelihood of ``v`` under ``N(v̂, Σ)`` up to a constant: ``(B, D)`` → ``(B,)``.

        The objective of :class:`~seqboltz.training.FitConditionalMean` (Larochelle & Bengio
        2008's hybrid of generative and discriminative training, for a conditional RBM)."""
        params = self.frame_params(cond)
        v_hat = self._mean_field(params, passes)
        return 0.5 * ((self.residual(v, params) - self.residual(v_hat, params)) ** 2).sum(dim=1)

    def energy(self, v: Tensor, h: Tensor, cond: Conditioning | None = None) -> Tensor:
        self.check_hidden_shape(h)
        p = self._params_for(v, cond)
        r = self.residual(v, p)
        zeros = torch.zeros_like(r)
        return Fn.gaussian_energy_from_coupling(
            r, h, zeros, p.hidden_bias, zeros[0], h @ self.weight.T
        )  # ½‖r‖² - b̂ᵀh - rᵀWh

    def free_energy(self, v: Tensor, cond: Conditioning | None = None) -> Tensor:
        p = self._params_for(v, cond)
        r = self.residual(v, p)
        zeros = torch.zeros_like(r)
        return Fn.gaussian_free_energy_from_input(
            r, zeros, zeros[0], Fn.hidden_input(r, self.weight, p.hidden_bias)
        )

    def hidden_free_energy(self, h: Tensor, cond: Conditioning | None = None) -> Tensor:
        p = self._params_for(h, cond, hidden=True)
        coupling = h @ self.weight.T
        zeros = torch.zeros_like(coupling)
        return Fn.gaussian_hidden_free_energy_from_coupling(
            h, coupling, zeros, p.hidden_bias, zeros[0]
        )

    def noise_spec(self) -> dict[str, NoiseSpec]:
        return {
            "hidden": NoiseSpec((self.n_hidden,), "uniform"),
            "visible": NoiseSpec((self.n_visible,), "normal"),
        }

    def gibbs_step(
        self, v: Tensor, noise: Mapping[str, Tensor], cond: Conditioning | None = None
    ) -> GibbsStep:
        p = self._params_for(v, cond)
        probs = torch.sigmoid(self.hidden_input(v, p))
        h = Fn.bernoulli_from_uniform(probs, noise["hidden"])
        mean_u = p.visible_bias + self._scaled(h @ self.weight.T, p)
        u = mean_u + self._scaled(noise["visible"], p)
        return GibbsStep(u @ self.unwhiten.T, mean_u @ self.unwhiten.T, h)

    # -- generation: SequenceRBM.next_frame composes these (see the module) ----------------------
    def sampler_start(self, cond: dict[str, Tensor]) -> tuple[Tensor, FrameParams]:
        """The chain over the residual starts at ``r = 0`` (the AR prediction): ``(r (B, D),
        the frame's parameters)``; ``cond`` as :meth:`SequenceRBM.next_frame`'s.

        A model with a style generates from the requested style times :attr:`style_gain`
        ``g`` (a buffer, 1 until calibrated), so that the motion follows a requested change of
        style at its size: the linear start explains most of a frame's speed by the frames
        before it, and a model that learnt only the rest moves ``1/g`` as far as asked
        (:class:`~seqboltz.training.CalibrateStyleGain` measures that on the validation clips
        and sets ``g``). Training and the free energy read the style as given."""
        if self.n_style and cond.get("style") is not None:
            cond = {**cond, "style": self.requested_style(cond["style"])}
        params = self.frame_params(cond)
        return torch.zeros_like(params.visible_bias), params

    def requested_style(self, style: Tensor) -> Tensor:
        """What generation reads for a requested ``style (B, S)``: ``g·z``, except that a model
        with a calibration curve (:attr:`style_curve`, knots ``(requests, inputs)`` set by
        :class:`~seqboltz.training.CalibrateStyleGain` with ``curve_points``) reads its first
        column through the curve (:func:`seqboltz.functional.piecewise_linear`): the input
        that made the body move at the requested speed on the validation clips."""
        gain: Tensor = self.style_gain  # type: ignore[assignment]
        curve: Tensor = self.style_curve
        scaled = style * gain.to(style)
        if curve.shape[1] < 2:
            return scaled
        first = Fn.piecewise_linear(style[:, :1], curve[0], curve[1])
        return torch.cat([first, scaled[:, 1:]], dim=1)

    def _load_from_state_dict(
        self,
        state_dict: dict[str, Any],
        prefix: str,
        local_metadata: dict[str, Any],
        strict: bool,
        missing_keys: list[str],
        unexpected_keys: list[str],
        error_msgs: list[str],
    ) -> None:
        # checkpoints from before the style gain generate as they did (g = 1)
        if self.n_style and prefix + "style_gain" not in state_dict:
            state_dict[prefix + "style_gain"] = torch.ones(())
        if self.n_style:  # a curve has as many knots as its calibration chose (none before)
            curve = state_dict.setdefault(prefix + "style_curve", torch.zeros(2, 0))
            gain: Tensor = self.style_gain  # type: ignore[assignment]
            self.style_curve = torch.empty_like(curve, device=gain.device)
        # checkpoints from before the start's radius was recorded: a fixed one is known
        if prefix + "start_radius_" not in state_dict:
            state_dict[prefix + "start_radius_"] = self.start_radius_.clone()
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )

    def sampler_step(self, state: Tensor, context: FrameParams, noise: Tensor) -> Tensor:
        """``h`` drawn from the first ``H`` uniforms of ``noise (B, noise_width)``, ``r = W h``
        (``generation="mean"``: ``r`` stays at its start, 0)."""
        if self.generation == "mean":
            return state
        probs = torch.sigmoid(Fn.hidden_input(state, self.weight, context.hidden_bias))
        return Fn.bernoulli_from_uniform(probs, noise[:, : self.n_hidden]) @ self.weight.T

    def sampler_emit(self, state: Tensor, context: FrameParams, noise: Tensor) -> Tensor:
        """The mean-field last step, the visible noise by Box–Muller from the columns past the
        hidden units of ``noise`` (the frame's last row), and ``v = L(â + r + ε)``: ``(B, D)``."""
        h_dim, d = self.n_hidden, self.n_visible
        r = torch.sigmoid(Fn.hidden_input(state, self.weight, context.hidden_bias)) @ self.weight.T
        if self.visible_noise > 0 and self.generation == "sampler":
            r = r + self.visible_noise * box_muller(noise[:, h_dim:], d)
        return (context.visible_bias + self._scaled(r, context)) @ self.unwhiten.T

    def parameter_roles(self) -> dict[str, list[nn.Parameter]]:
        # The AR part is the least-squares start: weight decay would pull it towards "no
        # dynamics", so it trains like a bias (or not at all: ``train_linear=False``).
        linear = [self.visible_bias, self.autoregressive] if self.train_linear else []
        weights = [self.weight, self.past_to_hidden] if self.history_to_hidden else [self.weight]
        if self.n_controls:
            weights.append(self.control_to_hidden)
            if self.train_linear:
                linear.append(self.control_to_visible)
        if self.n_style:
            weights.append(self.style_to_hidden)
            if self.train_linear:
                linear += [self.style_to_visible, self.log_scale_bias, self.style_to_log_scale]
        return {"weights": weights, "biases": [self.hidden_bias, *linear]}

    def extra_repr(self) -> str:
        return (
            f"n_visible={self.n_visible}, n_hidden={self.n_hidden}, order={self.order}, "
            f"visible_noise={self.visible_noise}, max_radius={self.max_radius!r}, "
            f"start_radius={self.start_radius}, "
            f"stabilise={self.stabilise!r}, "
            f"train_linear={self.train_linear}, n_controls={self.n_controls}, "
            f"start_history_noise={self.start_history_noise}, "
            f"history_to_hidden={self.history_to_hidden}, n_style={self.n_style}, "
            f"generation={self.generation!r}"
        )
