"""What every speech feature kind shares: frame checks and standardisation that travels."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import numpy as np

__all__ = ["SpeechFeatureError", "SpeechFeatures"]


class SpeechFeatureError(ValueError):
    """Speech features or audio that cannot be used, with what is wrong."""


class SpeechFeatures:
    """Base of the feature kinds (dataclasses with ``mean``/``std`` fields and a ``dim``).

    Subclasses implement ``analyze(wave) -> (T, dim)`` raw frames and
    ``synthesize(frames) -> wave`` and name their columns in ``feature_names()``.
    """

    kind: ClassVar[str] = ""
    layout: ClassVar[str] = ""
    sample_rate: int
    frame_period: float
    mean: np.ndarray | None
    std: np.ndarray | None

    @property
    def dim(self) -> int:
        raise NotImplementedError

    def analyze(self, wave: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def synthesize(self, frames: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _coerce_stats(self) -> None:
        """``mean``/``std`` given as lists (e.g. from :meth:`from_dict`) become float64 arrays."""
        for name in ("mean", "std"):
            value = getattr(self, name)
            if value is not None:
                setattr(self, name, np.asarray(value, dtype=np.float64))

    def check_frames(self, frames: np.ndarray) -> np.ndarray:
        """``frames`` as float64 ``(T, dim)``; a clear error for a wrong shape or NaN."""
        frames = np.asarray(frames, dtype=np.float64)
        if frames.ndim != 2 or frames.shape[1] != self.dim or frames.shape[0] < 1:
            raise SpeechFeatureError(
                f"speech frames must have shape (T >= 1, {self.dim}) ({self.layout}); "
                f"got {frames.shape}"
            )
        if not np.isfinite(frames).all():
            raise SpeechFeatureError("speech frames contain NaN or infinite values")
        return frames

    def fit(self, utterances: list[np.ndarray]) -> Any:
        """Per-dimension mean and std over the raw frames of ``utterances``; returns self."""
        if not utterances:
            raise SpeechFeatureError("need at least one utterance to fit the statistics")
        allf = np.concatenate([self.check_frames(u) for u in utterances])
        self.mean = allf.mean(axis=0)
        std = allf.std(axis=0)
        self.std = np.where(std > 1e-8, std, 1.0)
        return self

    def _stats(self) -> tuple[np.ndarray, np.ndarray]:
        if self.mean is None or self.std is None:
            raise SpeechFeatureError("statistics are not fitted: call fit() first")
        return self.mean, self.std

    def transform(self, frames: np.ndarray) -> np.ndarray:
        """Standardise raw frames ``(T, dim)``."""
        mean, std = self._stats()
        return (self.check_frames(frames) - mean) / std

    def inverse_transform(self, z: np.ndarray) -> np.ndarray:
        """Raw frames of standardised ``z`` ``(..., dim)`` (exact inverse of :meth:`transform`)."""
        mean, std = self._stats()
        z = np.asarray(z, dtype=np.float64)
        if z.shape[-1] != self.dim:
            raise SpeechFeatureError(f"frames must have {self.dim} values, got {z.shape}")
        return np.asarray(z * std + mean)

    def to_dict(self) -> dict[str, Any]:
        """Plain-types description (settings and statistics) that travels with a model."""
        assert dataclasses.is_dataclass(self)
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        for name in ("mean", "std"):
            d[name] = None if d[name] is None else [float(x) for x in d[name]]
        d["kind"] = self.kind
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Any:
        """Rebuild from :meth:`to_dict` (the ``kind`` must match; other keys are ignored)."""
        if d.get("kind", cls.kind) != cls.kind:
            raise SpeechFeatureError(f"features of kind {d.get('kind')!r} are not {cls.kind!r}")
        assert dataclasses.is_dataclass(cls)
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def speech_features_from_dict(d: dict[str, Any]) -> SpeechFeatures:
    """The feature object a :meth:`SpeechFeatures.to_dict` describes."""
    from seqboltz.speech._logmel import LogMelFeatures
    from seqboltz.speech._world import WorldFeatures

    kinds: dict[str, type[SpeechFeatures]] = {"world": WorldFeatures, "logmel": LogMelFeatures}
    if d.get("kind") not in kinds:
        raise SpeechFeatureError(f"unknown speech feature kind {d.get('kind')!r}")
    result: SpeechFeatures = kinds[d["kind"]].from_dict(d)
    return result
