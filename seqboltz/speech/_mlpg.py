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

:class:`BlockMLPG` solves it block by block as frames arrive (each block of ``block`` frames
from a window reaching ``overlap`` frames to both sides), so that a stream can send audio
before the utterance is complete; the statics depend only on the frames, not on how they
were pushed, and differ from the whole utterance's solution by far less than the models'
errors (the solution's dependence on a frame decays geometrically with the distance).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = [
    "DELTA_WINDOWS",
    "BlockMLPG",
    "append_deltas",
    "block_mlpg",
    "delta_matrix",
    "mlpg",
    "mlpg_frames",
]

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


def mlpg_frames(
    frames: np.ndarray, columns: Sequence[int], variances: np.ndarray | None = None
) -> np.ndarray:
    """``(T, D + 2K)`` frames (statics, then Δ and Δ² of ``columns``, as
    :func:`append_deltas` lays them out) → ``(T, D)`` statics, ``columns`` replaced by the
    MLPG trajectory of their predicted statics, Δ and Δ².

    Args:
        variances: ``(D + 2K,)`` per-column variances; ``None``: all 1 (standardised units).
    """
    x = np.asarray(frames, dtype=np.float64)
    k = len(columns)
    d = x.shape[1] - 2 * k if x.ndim == 2 else -1
    if x.ndim != 2 or d < 1 or max(columns, default=-1) >= d:
        raise ValueError(f"frames of shape {x.shape} cannot hold Δ and Δ² of {k} columns")
    var = np.ones(x.shape[1]) if variances is None else np.asarray(variances, dtype=np.float64)
    if var.shape != (x.shape[1],):
        raise ValueError(f"need {x.shape[1]} variances, got shape {var.shape}")
    cols = list(columns)
    out = x[:, :d].copy()
    if k and x.shape[0]:
        means = np.stack([x[:, cols], x[:, d : d + k], x[:, d + k :]], axis=1)
        out[:, cols] = mlpg(means, np.stack([var[cols], var[d : d + k], var[d + k :]]))
    return out


class BlockMLPG:
    """:func:`mlpg_frames` block by block, for frames that arrive one at a time.

    Block ``j`` (frames ``[jB, (j+1)B)``) is solved on the window ``[jB − L, (j+1)B + L)``
    (clipped to the utterance) once that window's frames are in, or at :meth:`finish`; so
    the statics are a function of the frames alone, whatever the sizes of the pushes, and
    :func:`block_mlpg` gives the same ones for a whole utterance.

    Args:
        columns: the static columns with Δ and Δ² (``K``); frames are ``(D + 2K,)``.
        variances: per-column variances ``(D + 2K,)``; ``None``: all 1.
        block: ``B``, frames finished per solve.
        overlap: ``L``, frames of context on each side of a block.
    """

    def __init__(
        self,
        columns: Sequence[int],
        variances: np.ndarray | None = None,
        block: int = 20,
        overlap: int = 30,
    ) -> None:
        if block < 1 or overlap < 0:
            raise ValueError(f"need block >= 1 and overlap >= 0, got {block}, {overlap}")
        self.columns = [int(c) for c in columns]
        self.variances = variances
        self.block, self.overlap = block, overlap
        self.frames: np.ndarray | None = None
        self.done = 0  # frames already returned

    @property
    def delay(self) -> int:
        """Most frames pushed but not yet returned before :meth:`finish`."""
        return self.block + self.overlap - 1

    def _solve(self, end: int) -> np.ndarray:
        assert self.frames is not None
        a = max(0, self.done - self.overlap)
        b = min(self.frames.shape[0], end + self.overlap)
        statics = mlpg_frames(self.frames[a:b], self.columns, self.variances)
        out = statics[self.done - a : end - a]
        self.done = end
        return out

    def push(self, frames: np.ndarray) -> np.ndarray:
        """The next frames ``(n, D + 2K)`` → the statics ``(m, D)`` now final (m ≥ 0)."""
        x = np.atleast_2d(np.asarray(frames, dtype=np.float64))
        self.frames = x if self.frames is None else np.concatenate([self.frames, x])
        d = self.frames.shape[1] - 2 * len(self.columns)
        parts = [np.empty((0, d))]
        while self.frames.shape[0] >= self.done + self.block + self.overlap:
            parts.append(self._solve(self.done + self.block))
        return np.concatenate(parts)

    def finish(self) -> np.ndarray:
        """The statics of the frames not yet returned (the last blocks)."""
        if self.frames is None:
            raise ValueError("no frames pushed")
        d = self.frames.shape[1] - 2 * len(self.columns)
        parts = [np.empty((0, d))]
        while self.done < self.frames.shape[0]:
            parts.append(self._solve(min(self.done + self.block, self.frames.shape[0])))
        return np.concatenate(parts)


def block_mlpg(
    frames: np.ndarray,
    columns: Sequence[int],
    variances: np.ndarray | None = None,
    block: int = 20,
    overlap: int = 30,
) -> np.ndarray:
    """:class:`BlockMLPG`'s statics of a whole utterance ``(T, D + 2K)`` → ``(T, D)``."""
    solver = BlockMLPG(columns, variances, block, overlap)
    head = solver.push(frames)
    return np.concatenate([head, solver.finish()])
