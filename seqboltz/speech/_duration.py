"""Phone-duration models for synthesis: ridge regression on linguistic context, and the
mean-per-phone baseline it is compared with.

Both predict the number of acoustic frames of each phone of an :class:`~seqboltz.speech.
Utterance` from :func:`~seqboltz.speech.phone_features` (numpy only, so the torch-free runtime
and the service use them). :class:`DurationModel` regresses ``log`` frames on the features
(ridge, closed form) and predicts the log-normal's mean, ``round(exp(ŷ + σ²/2))`` with ``σ²``
the training residuals' variance (at least one frame); the log domain keeps the predictions
positive and the errors relative, as in HTS's log-normal state durations (Yoshimura et al.
1998). ``exp(ŷ)`` alone is the log-normal's median: on the Asterisk prompts its speech came
out 12 % too short (predicted speech 0.884 of the aligned frames on the training prompts
themselves, 0.857 on the one- and two-word test prompts; benchmarks/RESULTS.md,
text-to-speech session 13). :class:`MeanDurationModel` predicts each phone's mean training
duration. Edge pauses (leading and trailing silence) depend on how a recording was cut, not
on the text: both models predict a fixed edge pause (its training median), and
:func:`duration_rmse` leaves them out by default.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from seqboltz.speech._text import PAUSE, PHONES, Utterance, phone_feature_names, phone_features

__all__ = ["DurationModel", "MeanDurationModel", "duration_rmse"]


def _edge_mask(utt: Utterance) -> np.ndarray:
    return np.array([p.symbol == PAUSE and p.pause == 3 for p in utt.phones])


def _check(utts: Sequence[Utterance], durations: Sequence[np.ndarray]) -> None:
    if not utts or len(utts) != len(durations):
        raise ValueError(f"need matching utterances and durations, got {len(utts)}, "
                         f"{len(durations)}")  # fmt: skip
    for u, d in zip(utts, durations, strict=True):
        if np.asarray(d).shape != (len(u.phones),):
            raise ValueError(f"{u.text[:40]!r}: {len(u.phones)} phones, durations "
                             f"{np.asarray(d).shape}")  # fmt: skip


class DurationModel:
    """Ridge regression of log frame counts on phone context.

    Args:
        ridge: L2 penalty ``λ`` of ``min ‖Xw − y‖² + λ‖w‖²`` (the bias is not penalised).
        frame_period: the frames' hop (ms), recorded with the model.
    """

    kind = "ridge_log_frames"

    def __init__(self, ridge: float = 1.0, frame_period: float = 5.0) -> None:
        if ridge < 0:
            raise ValueError(f"ridge must be >= 0, got {ridge}")
        self.ridge = ridge
        self.frame_period = frame_period
        self.weights: np.ndarray | None = None
        self.edge_frames = 1
        #: variance of the training residuals of ``log`` frames (``σ²``; 0 on a card written
        #: before it was recorded, which then predicts the median as it did)
        self.log_residual_var = 0.0

    def fit(self, utts: Sequence[Utterance], durations: Sequence[np.ndarray]) -> DurationModel:
        """Fit on aligned utterances (frames per phone); returns self."""
        _check(utts, durations)
        xs, ys, edges = [], [], []
        for u, d in zip(utts, durations, strict=True):
            d = np.asarray(d, dtype=np.float64)
            keep = ~_edge_mask(u)
            xs.append(phone_features(u)[keep])
            ys.append(np.log(d[keep]))
            edges.append(d[~keep])
        x = np.concatenate(xs)
        x = np.concatenate([x, np.ones((x.shape[0], 1))], axis=1)
        y = np.concatenate(ys)
        penalty = self.ridge * np.eye(x.shape[1])
        penalty[-1, -1] = 0.0
        self.weights = np.linalg.solve(x.T @ x + penalty, x.T @ y)
        self.log_residual_var = float(np.var(y - x @ self.weights))
        all_edges = np.concatenate(edges)
        self.edge_frames = int(np.median(all_edges)) if all_edges.size else 1
        return self

    def predict(self, utt: Utterance) -> np.ndarray:
        """Frames per phone ``(P,)`` int64, each at least 1."""
        if self.weights is None:
            raise RuntimeError("DurationModel is not fitted: call fit() first")
        x = phone_features(utt)
        y = x @ self.weights[:-1] + self.weights[-1] + self.log_residual_var / 2
        out = np.maximum(np.rint(np.exp(y)), 1).astype(np.int64)
        out[_edge_mask(utt)] = max(self.edge_frames, 1)
        return out

    def to_dict(self) -> dict[str, Any]:
        """Plain types for a model card."""
        if self.weights is None:
            raise RuntimeError("DurationModel is not fitted: call fit() first")
        return {
            "kind": self.kind,
            "ridge": self.ridge,
            "frame_period": self.frame_period,
            "edge_frames": self.edge_frames,
            "log_residual_var": self.log_residual_var,
            "weights": [float(w) for w in self.weights],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DurationModel:
        """Rebuild from :meth:`to_dict`."""
        if d.get("kind") != cls.kind:
            raise ValueError(f"duration model of kind {d.get('kind')!r} is not {cls.kind!r}")
        m = cls(ridge=float(d["ridge"]), frame_period=float(d["frame_period"]))
        m.weights = np.asarray(d["weights"], dtype=np.float64)
        if m.weights.shape != (len(phone_feature_names()) + 1,):
            raise ValueError(
                f"duration model has {m.weights.shape[0]} weights; this front end needs "
                f"{len(phone_feature_names()) + 1}"
            )
        m.edge_frames = int(d["edge_frames"])
        m.log_residual_var = float(d.get("log_residual_var", 0.0))
        if not (np.isfinite(m.log_residual_var) and m.log_residual_var >= 0):
            raise ValueError(
                f"duration model log_residual_var must be >= 0, got {m.log_residual_var}"
            )
        return m


class MeanDurationModel:
    """Baseline: each phone's mean training duration in frames (edge pauses: their median)."""

    def __init__(self) -> None:
        self.means: dict[str, float] = {}
        self.edge_frames = 1

    def fit(self, utts: Sequence[Utterance], durations: Sequence[np.ndarray]) -> MeanDurationModel:
        _check(utts, durations)
        sums: dict[str, list[float]] = {p: [] for p in PHONES}
        edges: list[float] = []
        for u, d in zip(utts, durations, strict=True):
            for p, n, edge in zip(u.phones, d, _edge_mask(u), strict=True):
                (edges if edge else sums[p.symbol]).append(float(n))
        overall = float(np.mean([v for vs in sums.values() for v in vs]))
        self.means = {p: float(np.mean(v)) if v else overall for p, v in sums.items()}
        self.edge_frames = int(np.median(edges)) if edges else 1
        return self

    def predict(self, utt: Utterance) -> np.ndarray:
        out = np.array([max(round(self.means[p.symbol]), 1) for p in utt.phones], np.int64)
        out[_edge_mask(utt)] = max(self.edge_frames, 1)
        return out


def duration_rmse(
    model: DurationModel | MeanDurationModel,
    utts: Sequence[Utterance],
    durations: Sequence[np.ndarray],
    frame_period: float,
    include_edges: bool = False,
) -> dict[str, float]:
    """Root-mean-square duration error in milliseconds over the phones of ``utts``.

    Returns:
        ``{"rmse_ms", "mae_ms", "corr", "n_phones"}`` (``corr``: Pearson correlation of
        predicted and aligned durations).
    """
    _check(utts, durations)
    pred, true = [], []
    for u, d in zip(utts, durations, strict=True):
        keep = np.ones(len(u.phones), bool) if include_edges else ~_edge_mask(u)
        pred.append(model.predict(u)[keep])
        true.append(np.asarray(d)[keep])
    p = np.concatenate(pred).astype(np.float64) * frame_period
    t = np.concatenate(true).astype(np.float64) * frame_period
    return {
        "rmse_ms": float(np.sqrt(np.mean((p - t) ** 2))),
        "mae_ms": float(np.mean(np.abs(p - t))),
        "corr": float(np.corrcoef(p, t)[0, 1]),
        "n_phones": int(p.shape[0]),
    }
