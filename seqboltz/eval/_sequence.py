"""Evaluation of sequence models against simple baselines (numpy only; no torch).

* Baselines of the same order, fitted on the same data: :class:`RepeatLastFrame` and
  :class:`LinearAR` (least squares, generating with its Gaussian residual noise).
* :func:`one_step_errors`: prediction error of the next frame from the true history.
* :func:`npss`: the normalised power spectrum similarity of Gopalakrishnan et al. (2019,
  "A neural temporal model for human motion prediction", CVPR): an earth mover's distance
  between per-dimension power spectra, weighted by each dimension's power in the real data.
* :func:`std_ratio`: per-dimension standard deviation of generated over real motion, the
  check that a long generation neither explodes nor freezes.

Sequences are ``(T, D)`` arrays; histories are ``(B, order, D)`` with index 0 = frame ``t-1``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from seqboltz.noise import sequence_rng

STABILISE_METHODS = ("scale", "clip")

__all__ = [
    "STABILISE_METHODS",
    "LinearAR",
    "RepeatLastFrame",
    "ar_spectral_radius",
    "clip_ar_spectrum",
    "clip_length_radius",
    "fit_linear_ar",
    "history_windows",
    "npss",
    "one_step_errors",
    "stabilise_ar",
    "stabilised_coef",
    "std_ratio",
]


def history_windows(sequences: Sequence[np.ndarray], order: int) -> tuple[np.ndarray, np.ndarray]:
    """All ``(history, target)`` pairs of the sequences, never straddling two sequences.

    Args:
        sequences: ``(T_i, D)`` arrays.
        order: history length ``n``.

    Returns:
        ``histories (N, order, D)`` (index 0 = ``t-1``) and ``targets (N, D)``.
    """
    hist, targ = [], []
    for seq in sequences:
        seq = np.asarray(seq, dtype=np.float64)
        if seq.ndim != 2:
            raise ValueError(f"each sequence must be (T, D); got shape {seq.shape}")
        for t in range(order, seq.shape[0]):
            hist.append(seq[t - order : t][::-1])
            targ.append(seq[t])
    if not targ:
        raise ValueError(f"no sequence is longer than the order ({order})")
    return np.stack(hist), np.stack(targ)


@dataclass(frozen=True)
class RepeatLastFrame:
    """The baseline that predicts (and generates) the previous frame forever."""

    order: int = 1

    def predict(self, history: np.ndarray) -> np.ndarray:
        """``history (B, order, D)`` → ``(B, D)``."""
        return np.asarray(history)[:, 0]

    def generate(self, seed_frames: np.ndarray, n_frames: int, seed: int = 0) -> np.ndarray:
        """``seed_frames (B, T0, D)`` oldest first → ``(B, n_frames, D)``."""
        last = np.asarray(seed_frames, dtype=np.float64)[:, -1:]
        return np.repeat(last, n_frames, axis=1)


@dataclass(frozen=True)
class LinearAR:
    """Linear autoregressive model ``v_t = c + x_t M + ε``, ``ε ~ N(0, Σ)``.

    Attributes:
        coef: ``M`` ``(order·D, D)`` acting on the flattened history (most recent first).
        intercept: ``c`` ``(D,)``.
        residual_cov: ``Σ`` ``(D, D)``, the covariance of the training residuals.
    """

    coef: np.ndarray
    intercept: np.ndarray
    residual_cov: np.ndarray

    @property
    def order(self) -> int:
        return self.coef.shape[0] // self.coef.shape[1]

    def predict(self, history: np.ndarray) -> np.ndarray:
        """Mean of the next frame, ``history (B, order, D)`` → ``(B, D)``."""
        history = np.asarray(history, dtype=np.float64)
        x = history[:, : self.order].reshape(history.shape[0], -1)
        return self.intercept + x @ self.coef

    def generate(
        self,
        seed_frames: np.ndarray,
        n_frames: int,
        seed: int = 0,
        sequence_indices: Sequence[int] | None = None,
    ) -> np.ndarray:
        """Sample ``n_frames`` per sequence with Gaussian residual noise.

        Noise of sequence ``i`` comes from ``sequence_rng(seed, i)`` (standard normals,
        frame by frame), so a sequence is the same alone or in a batch.
        """
        frames = np.asarray(seed_frames, dtype=np.float64)
        batch, d = frames.shape[0], frames.shape[2]
        indices = range(batch) if sequence_indices is None else sequence_indices
        chol = np.linalg.cholesky(self.residual_cov + 1e-9 * np.eye(d))
        z = np.stack([sequence_rng(seed, i).standard_normal((n_frames, d)) for i in indices])
        window = frames[:, -self.order :][:, ::-1].copy()
        out = np.empty((batch, n_frames, d))
        for t in range(n_frames):
            v = self.predict(window) + z[:, t] @ chol.T
            out[:, t] = v
            window = np.concatenate([v[:, None], window[:, :-1]], axis=1)
        return out


def fit_linear_ar(sequences: Sequence[np.ndarray], order: int, ridge: float = 1e-6) -> LinearAR:
    """Least-squares AR model of ``order`` on ``sequences`` (``(T_i, D)`` each).

    Args:
        sequences: training sequences.
        order: history length.
        ridge: tiny Tikhonov term for numerical stability.
    """
    hist, targ = history_windows(sequences, order)
    x = hist.reshape(hist.shape[0], -1)
    x1 = np.concatenate([x, np.ones((x.shape[0], 1))], axis=1)
    gram = x1.T @ x1 + ridge * np.eye(x1.shape[1])
    sol = np.linalg.solve(gram, x1.T @ targ)
    resid = targ - x1 @ sol
    return LinearAR(sol[:-1], sol[-1], np.cov(resid.T).reshape(targ.shape[1], targ.shape[1]))


def _companion(coef: np.ndarray) -> np.ndarray:
    """``(n·D, n·D)`` companion matrix of AR coefficients ``(n·D, D)`` (most recent lag first)."""
    d = coef.shape[1]
    order = coef.shape[0] // d
    companion = np.zeros((order * d, order * d))
    companion[:d] = coef.T
    companion[d:, :-d] = np.eye((order - 1) * d)
    return companion


def ar_spectral_radius(coef: np.ndarray) -> float:
    """Largest eigenvalue modulus of the AR model's companion matrix.

    Args:
        coef: ``(order·D, D)`` acting on the flattened history, most recent first
            (:attr:`LinearAR.coef`).

    Returns:
        ``ρ``: the noiseless model decays to its fixed point when ``ρ < 1`` and grows
        without bound when ``ρ > 1`` (a least-squares fit on a few seconds of motion can land
        just above 1 and blow up over a minute of generation).
    """
    return float(np.abs(np.linalg.eigvals(_companion(coef))).max())


def clip_ar_spectrum(coef: np.ndarray, max_radius: float) -> np.ndarray:
    """AR coefficients whose companion roots above ``max_radius`` are moved onto that circle.

    Every other root, and every root's direction ``u`` (the matrix polynomial's null vector,
    ``(λⁿ I − Σ A_i λⁿ⁻ⁱ) u = 0``), is kept: with ``V'`` the block-Vandermonde matrix of
    columns ``[λ'ⁿ⁻¹u; …; λ'u; u]``, ``C' = V' Λ' V'⁻¹`` is again a companion matrix, and its
    first block row holds the new ``A_i``. Eigenvalue clipping, the simple fix that Siddiqi,
    Boots & Gordon (2007, "A constraint generation approach to learning stable linear
    dynamical systems", NeurIPS) discuss before their own method. Unlike
    :func:`stabilise_ar`'s ``"scale"`` (every root times ``γ``), it leaves the
    slower-than-``max_radius`` dynamics alone: on the CMU selection AR's radius is 0.9992
    and scaling to 0.99 damps every pose mode, while
    clipping moves three of its 360 roots (``benchmarks/RESULTS.md``, session 12).

    Args:
        coef: ``(order·D, D)`` as :attr:`LinearAR.coef`.
        max_radius: the largest allowed root modulus, in ``(0, 1]``.

    Returns:
        ``(order·D, D)`` coefficients with spectral radius ``<= max_radius`` (``coef``
        itself when already inside).

    Raises:
        ValueError: the roots' directions are too close to dependent (a defective
            companion) for the reconstruction to hold; :func:`stabilise_ar`'s ``"scale"``
            always works.
    """
    if not 0 < max_radius <= 1:
        raise ValueError(f"max_radius must be in (0, 1]; got {max_radius}")
    d = coef.shape[1]
    order = coef.shape[0] // d
    lam, vec = np.linalg.eig(_companion(coef))
    mod = np.abs(lam)
    if mod.max() <= max_radius:
        return coef
    lam = np.where(mod > max_radius, lam * (max_radius / np.maximum(mod, 1e-300)), lam)
    u = vec[-d:]  # the last block of [λⁿ⁻¹u; …; u] is u
    basis = np.concatenate([u * lam[None] ** (order - 1 - j) for j in range(order)])
    if np.linalg.cond(basis) > 1e10:
        raise ValueError("the AR model's companion roots are too close to defective to clip")
    first = (basis[:d] * lam[None]) @ np.linalg.inv(basis)  # first block row of V'Λ'V'⁻¹
    if np.abs(first.imag).max() > 1e-6 * max(1.0, np.abs(first.real).max()):
        raise ValueError("clipping the AR model's companion roots gave complex coefficients")
    out = np.ascontiguousarray(first.real.T)
    if ar_spectral_radius(out) > max_radius * (1 + 1e-6):
        raise ValueError("clipping the AR model's companion roots did not bound the radius")
    return out


def stabilised_coef(coef: np.ndarray, max_radius: float, method: str = "scale") -> np.ndarray:
    """``(order·D, D)`` AR coefficients brought inside companion radius ``max_radius``.

    ``"scale"``: lag ``i``'s block times ``γ^i`` with ``γ = max_radius / ρ`` (every root
    times ``γ``); ``"clip"``: :func:`clip_ar_spectrum`. ``coef`` itself when inside.
    """
    if method not in STABILISE_METHODS:
        raise ValueError(f"method must be one of {STABILISE_METHODS}; got {method!r}")
    if method == "clip":
        return clip_ar_spectrum(coef, max_radius)
    if not 0 < max_radius <= 1:
        raise ValueError(f"max_radius must be in (0, 1]; got {max_radius}")
    radius = ar_spectral_radius(coef)
    if radius <= max_radius:
        return coef
    d = coef.shape[1]
    order = coef.shape[0] // d
    gamma = max_radius / radius
    return coef * np.repeat(gamma ** np.arange(1, order + 1), d)[:, None]


#: the range :func:`clip_length_radius` keeps to (time constants of 10 to 2,000 frames)
CLIP_LENGTH_RADIUS_RANGE = (0.9, 0.9995)


def clip_length_radius(sequences: Sequence[np.ndarray]) -> float:
    """The companion spectral radius whose time constant is the median clip's length:
    ``ρ = 1 − 1 / median(T_i)``, kept within :data:`CLIP_LENGTH_RADIUS_RANGE`.

    A mode of a linear dynamical system with root modulus ``ρ`` decays with time constant
    ``1 / (1 − ρ)`` frames. A least-squares fit cannot tell such a mode's rate from the
    data when it is slower than the clips it was fitted on: it extrapolates, and the roots
    land just inside (or outside) the unit circle. In a free-running generation these slow
    modes let the body drift for a minute. Clipping the spectrum at this radius
    (:func:`clip_ar_spectrum`) keeps every mode the clips can show and bounds the rest.
    On the CMU selection (median 322 frames at 30 fps) it is 0.9969, a hair under AR's own
    0.9992 and 0.9970; on the Daz clips (median 91 frames) 0.989. Validation chose about
    these radii on each set (``benchmarks/RESULTS.md``, session 15).

    Args:
        sequences: training clips ``[(T_i, ·)]``.

    Returns:
        ``ρ`` in :data:`CLIP_LENGTH_RADIUS_RANGE`.
    """
    lengths = [np.shape(s)[0] for s in sequences]
    if not lengths:
        raise ValueError("no clips to take a length from")
    low, high = CLIP_LENGTH_RADIUS_RANGE
    return float(np.clip(1.0 - 1.0 / max(float(np.median(lengths)), 1.0), low, high))


def stabilise_ar(
    ar: LinearAR, sequences: Sequence[np.ndarray], max_radius: float, method: str = "scale"
) -> LinearAR:
    """The AR model with its companion spectrum brought inside radius ``max_radius``.

    ``method="scale"``: scaling lag ``i``'s block ``A_i`` by ``γ^i`` multiplies every root of
    ``det(λⁿ - Σ A_i λⁿ⁻ⁱ) = 0`` by ``γ`` exactly, so ``γ = max_radius / ρ`` puts the
    spectral radius at ``max_radius`` while keeping the shape of the dynamics, but damps every
    mode. ``method="clip"``: only the roots above ``max_radius`` move
    (:func:`clip_ar_spectrum`). Either way the intercept and the residual covariance are
    then refitted on ``sequences`` with the new coefficients. Unchanged (the same object)
    when ``ρ <= max_radius``.

    Args:
        ar: a fitted model (:func:`fit_linear_ar`).
        sequences: its training sequences ``[(T_i, D)]``.
        max_radius: the largest allowed spectral radius, in ``(0, 1]``.
        method: ``"scale"`` or ``"clip"`` (see above).
    """
    coef = stabilised_coef(ar.coef, max_radius, method)
    if coef is ar.coef:
        return ar
    d = coef.shape[1]
    hist, targ = history_windows(sequences, ar.order)
    resid = targ - hist.reshape(hist.shape[0], -1) @ coef
    intercept = resid.mean(0)
    resid = resid - intercept
    return LinearAR(coef, intercept, np.cov(resid.T).reshape(d, d))


def one_step_errors(
    predict: Callable[[np.ndarray], np.ndarray], sequences: Sequence[np.ndarray], order: int
) -> dict[str, float]:
    """Next-frame prediction error from the true history.

    Returns:
        ``{"mse": mean squared error per dimension, "rmse": its root,
        "mse_per_frame": mean over frames of the summed squared error}``.
    """
    hist, targ = history_windows(sequences, order)
    err = np.asarray(predict(hist), dtype=np.float64) - targ
    mse = float(np.mean(err**2))
    return {"mse": mse, "rmse": float(np.sqrt(mse)), "mse_per_frame": float((err**2).sum(1).mean())}


def npss(real: np.ndarray, generated: np.ndarray) -> float:
    """Normalised power spectrum similarity (lower is closer; 0 for equal spectra).

    Args:
        real: ``(T, D)`` or ``(B, T, D)`` real motion.
        generated: the same shape.

    Returns:
        The power-weighted mean over dimensions (and sequences) of the earth mover's
        distance between normalised power spectra.
    """
    r = np.asarray(real, dtype=np.float64)
    g = np.asarray(generated, dtype=np.float64)
    if r.shape != g.shape:
        raise ValueError(f"real {r.shape} and generated {g.shape} must have the same shape")
    r = r[None] if r.ndim == 2 else r
    g = g[None] if g.ndim == 2 else g
    pr = np.abs(np.fft.rfft(r - r.mean(1, keepdims=True), axis=1)) ** 2  # (B, F, D)
    pg = np.abs(np.fft.rfft(g - g.mean(1, keepdims=True), axis=1)) ** 2
    tot_r, tot_g = pr.sum(1, keepdims=True), pg.sum(1, keepdims=True)
    cr = np.cumsum(pr / np.maximum(tot_r, 1e-300), axis=1)
    cg = np.cumsum(pg / np.maximum(tot_g, 1e-300), axis=1)
    emd = np.abs(cr - cg).sum(1)  # (B, D)
    weight = tot_r[:, 0]
    return float((emd * weight).sum() / max(weight.sum(), 1e-300))


def std_ratio(real: np.ndarray, generated: np.ndarray, min_fraction: float = 0.01) -> np.ndarray:
    """Per-dimension std of generated over real frames, for dimensions that move.

    Args:
        real: ``(N, D)`` real frames (any number of frames from held-out motion).
        generated: ``(M, D)`` generated frames (e.g. the last 10 s of each generation).
        min_fraction: keep dimensions whose real std exceeds this fraction of the largest.

    Returns:
        ``(D',)`` ratios for the kept dimensions (NaN-free).
    """
    sr = np.asarray(real, dtype=np.float64).std(0)
    sg = np.asarray(generated, dtype=np.float64).std(0)
    keep = sr > min_fraction * sr.max()
    return sg[keep] / sr[keep]
