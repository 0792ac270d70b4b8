"""Dynamic features and maximum-likelihood parameter generation (MLPG), in numpy.

An acoustic model can predict, for each frame, the static features ``c_t`` *and* their
dynamics, ``Δc_t = ½(c_{t+1} − c_{t−1})`` and ``Δ²c_t = c_{t+1} − 2c_t + c_{t−1}`` (the edges
repeat the first and last frame). MLPG (Tokuda et al. 2000, "Speech parameter generation
algorithms for HMM-based speech synthesis", ICASSP) then finds the static trajectory that is
most likely under Gaussians with the predicted means ``μ`` and variances ``σ²`` of all three:

    ĉ = argmin_c Σ_w (W_w c − μ_w)ᵀ Σ_w⁻¹ (W_w c − μ_w),   i.e.   (Σ_w W_wᵀ Σ_w⁻¹ W_w) ĉ =
    Σ_w W_wᵀ Σ_w⁻¹ μ_w,

``W_0 = I`` and ``W_1``, ``W_2`` the delta windows as ``(T, T)`` band matrices. With one
variance per dimension and window the system is pentadiagonal and symmetric positive
definite: :func:`mlpg` solves it for every dimension at once by a banded LDLᵀ factorisation,
``O(T · K)``. Torch-free, so the runtime generates with it too.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["DELTA_WINDOWS", "append_deltas", "delta_matrix", "mlpg"]

DELTA_WINDOWS: tuple[tuple[float, float, float], ...] = ((-0.5, 0.0, 0.5), (1.0, -2.0, 1.0))
"""Coefficients on frames ``t−1, t, t+1`` of Δ and Δ²."""


def append_deltas(frames: np.ndarray, columns: Sequence[int]) -> np.ndarray:
    """``(T, D)`` frames → ``(T, D + 2K)``: the frames, then Δ and Δ² of ``columns`` (``K``
    of them), edges repeated."""
    x = np.asarray(frames, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 1:
        raise ValueError(f"frames must be (T >= 1, D), got {x.shape}")
    p = np.pad(x[:, list(columns)], ((1, 1), (0, 0)), mode="edge")
    parts = [x]
    for w in DELTA_WINDOWS:
        parts.append(w[0] * p[:-2] + w[1] * p[1:-1] + w[2] * p[2:])
    return np.concatenate(parts, axis=1)


def delta_matrix(n_frames: int, window: Sequence[float]) -> np.ndarray:
    """The ``(T, T)`` matrix ``W`` of a window (edges repeated): ``W c`` is that delta."""
    w = np.zeros((n_frames, n_frames))
    for t in range(n_frames):
        for k, coef in enumerate(window):
            w[t, min(max(t + k - 1, 0), n_frames - 1)] += coef
    return w


def _bands(n_frames: int, window: Sequence[float]) -> np.ndarray:
    """Diagonals 0, 1, 2 of ``WᵀW`` as ``(3, T)`` (band ``k`` in ``[k, :T-k]``)."""
    out = np.zeros((3, n_frames))
    for t in range(n_frames):  # row t of W, merged at the edges
        row: dict[int, float] = {}
        for k, coef in enumerate(window):
            j = min(max(t + k - 1, 0), n_frames - 1)
            row[j] = row.get(j, 0.0) + coef
        for i, a in row.items():
            for j, b in row.items():
                if 0 <= j - i <= 2:
                    out[j - i, i] += a * b
    return out


def _apply_transpose(values: np.ndarray, window: Sequence[float]) -> np.ndarray:
    """``Wᵀ y`` for ``y`` ``(T, K)``."""
    t = values.shape[0]
    out = np.zeros_like(values)
    for k, coef in enumerate(window):
        cols = np.clip(np.arange(t) + k - 1, 0, t - 1)
        np.add.at(out, cols, coef * values)
    return out


def mlpg(means: np.ndarray, variances: np.ndarray) -> np.ndarray:
    """The most likely static trajectory (see the module).

    Args:
        means: ``(T, 3, K)`` predicted static, Δ and Δ² means of ``K`` dimensions.
        variances: ``(3, K)`` their variances (positive), one per window and dimension.

    Returns:
        ``(T, K)`` statics.
    """
    mu = np.asarray(means, dtype=np.float64)
    var = np.asarray(variances, dtype=np.float64)
    if mu.ndim != 3 or mu.shape[1] != 3 or var.shape != (3, mu.shape[2]):
        raise ValueError(f"need means (T, 3, K) and variances (3, K), got {mu.shape}, {var.shape}")
    if not (var > 0).all() or not np.isfinite(mu).all():
        raise ValueError("variances must be positive and means finite")
    n = mu.shape[0]
    prec = 1.0 / var  # (3, K)
    # A = I/σ₀² + W₁ᵀW₁/σ₁² + W₂ᵀW₂/σ₂² as bands (3, T, K); b = Σ Wᵀ μ / σ²
    band = np.zeros((3, n, mu.shape[2]))
    band[0] += prec[0]
    b = mu[:, 0] * prec[0]
    for w, window in enumerate(DELTA_WINDOWS, 1):
        band += _bands(n, window)[:, :, None] * prec[w]
        b = b + _apply_transpose(mu[:, w] * prec[w], window)
    # banded LDLᵀ (L unit lower, bandwidth 2), all dimensions at once
    d = np.zeros_like(b)
    l1 = np.zeros_like(b)  # L[t, t-1]
    l2 = np.zeros_like(b)  # L[t, t-2]
    for t in range(n):
        if t >= 2:
            l2[t] = band[2, t - 2] / d[t - 2]
        if t >= 1:
            s = band[1, t - 1] - (l2[t] * l1[t - 1] * d[t - 2] if t >= 2 else 0.0)
            l1[t] = s / d[t - 1]
        d[t] = band[0, t]
        if t >= 1:
            d[t] = d[t] - l1[t] ** 2 * d[t - 1]
        if t >= 2:
            d[t] = d[t] - l2[t] ** 2 * d[t - 2]
    y = np.zeros_like(b)  # L y = b
    for t in range(n):
        y[t] = b[t] - (l1[t] * y[t - 1] if t >= 1 else 0.0) - (l2[t] * y[t - 2] if t >= 2 else 0.0)
    z = y / d
    x = np.zeros_like(b)  # Lᵀ x = z
    for t in range(n - 1, -1, -1):
        x[t] = z[t]
        if t + 1 < n:
            x[t] -= l1[t + 1] * x[t + 1]
        if t + 2 < n:
            x[t] -= l2[t + 2] * x[t + 2]
    return x
