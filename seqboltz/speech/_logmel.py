"""Log-mel spectrogram frames with Griffin-Lim inversion (torchaudio; needs torch).

A frame is the natural log of the mel power spectrum, ``n_mels`` values, window 25 ms, hop
``frame_period`` (the same framing as :class:`~seqboltz.speech.WorldFeatures`: ``T = ⌊N/hop⌋
+ 1``). :meth:`LogMelFeatures.synthesize` inverts the mel filterbank by least squares
(:class:`torchaudio.transforms.InverseMelScale`) and recovers a phase with Griffin & Lim
(1984) (:class:`torchaudio.transforms.GriffinLim`, ``griffin_lim_iters`` iterations, seeded).
Unlike WORLD frames it has no explicit pitch, so a model over log-mel frames is scored by
log-spectral distance rather than MCD and F0 error.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from seqboltz.speech._base import SpeechFeatureError, SpeechFeatures

__all__ = ["LogMelFeatures", "log_spectral_distance"]

_FLOOR = 1e-10


def log_spectral_distance(log_ref: np.ndarray, log_est: np.ndarray) -> np.ndarray:
    """RMS difference in dB between natural-log power spectra, per frame.

    ``10/ln 10 · √(mean_b (ln P_b − ln P̂_b)²)``; inputs ``(..., n_bands)``.
    """
    log_ref, log_est = np.asarray(log_ref), np.asarray(log_est)
    if log_ref.shape != log_est.shape:
        raise SpeechFeatureError(f"spectra differ in shape: {log_ref.shape} and {log_est.shape}")
    return np.asarray(10.0 / math.log(10.0) * np.sqrt(np.mean((log_ref - log_est) ** 2, axis=-1)))


@dataclass
class LogMelFeatures(SpeechFeatures):
    """Log-mel analysis/synthesis with standardisation (statistics from training).

    Args:
        sample_rate: rate the audio must have (Hz).
        frame_period: hop in milliseconds.
        n_mels: mel bands per frame.
        griffin_lim_iters: Griffin-Lim iterations in :meth:`synthesize`.
    """

    sample_rate: int = 8000
    frame_period: float = 5.0
    n_mels: int = 40
    griffin_lim_iters: int = 32
    mean: np.ndarray | None = field(default=None, repr=False)
    std: np.ndarray | None = field(default=None, repr=False)

    kind = "logmel"
    layout = "log mel power per band"

    def __post_init__(self) -> None:
        if self.sample_rate < 4000 or self.frame_period <= 0 or self.n_mels < 2:
            raise SpeechFeatureError(
                "need sample_rate >= 4000, frame_period > 0 and n_mels >= 2; got "
                f"{self.sample_rate}, {self.frame_period}, {self.n_mels}"
            )
        if self.griffin_lim_iters < 1:
            raise SpeechFeatureError(
                f"griffin_lim_iters must be >= 1, got {self.griffin_lim_iters}"
            )
        self._coerce_stats()

    @property
    def dim(self) -> int:
        return self.n_mels

    def feature_names(self) -> list[str]:
        return [f"logmel_{b}" for b in range(self.n_mels)]

    @property
    def hop(self) -> int:
        return max(1, round(self.frame_period * self.sample_rate / 1000))

    @property
    def win_length(self) -> int:
        return round(0.025 * self.sample_rate)

    @property
    def n_fft(self) -> int:
        return 1 << (self.win_length - 1).bit_length()

    def _transforms(self) -> tuple[Any, Any, Any]:
        """The torchaudio transforms (built once per feature object)."""
        cached = self.__dict__.get("_cached_transforms")
        if cached is not None:
            return cached
        try:
            import torchaudio
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise ImportError(
                "log-mel features need torchaudio: pip install 'seqboltz[train]'"
            ) from exc
        mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=self.sample_rate,
            n_fft=self.n_fft,
            win_length=self.win_length,
            hop_length=self.hop,
            n_mels=self.n_mels,
            power=2.0,
        )
        inverse = torchaudio.transforms.InverseMelScale(
            n_stft=self.n_fft // 2 + 1, n_mels=self.n_mels, sample_rate=self.sample_rate
        )
        griffin_lim = torchaudio.transforms.GriffinLim(
            n_fft=self.n_fft,
            win_length=self.win_length,
            hop_length=self.hop,
            power=2.0,
            n_iter=self.griffin_lim_iters,
        )
        self.__dict__["_cached_transforms"] = (mel, inverse, griffin_lim)
        return mel, inverse, griffin_lim

    def analyze(self, wave: np.ndarray) -> np.ndarray:
        """Raw log-mel frames ``(T, n_mels)`` of a mono waveform ``(N,)``."""
        import torch

        wave = np.asarray(wave)
        if wave.ndim != 1:
            raise SpeechFeatureError(f"wave must be mono (N,), got shape {wave.shape}")
        if not np.isfinite(wave).all():
            raise SpeechFeatureError("wave contains NaN or infinite samples")
        if wave.shape[0] < self.n_fft:
            raise SpeechFeatureError(
                f"wave has {wave.shape[0]} samples; need at least {self.n_fft} (one window)"
            )
        mel, _, _ = self._transforms()
        x = torch.from_numpy(np.ascontiguousarray(wave, dtype=np.float32))
        return torch.log(mel(x).clamp_min(_FLOOR)).T.double().numpy()

    def synthesize(self, frames: np.ndarray) -> np.ndarray:
        """Waveform ``(N,)`` of raw log-mel frames ``(T, n_mels)`` by Griffin-Lim (seeded)."""
        import torch

        frames = self.check_frames(frames)
        _, inverse, griffin_lim = self._transforms()
        power = torch.from_numpy(np.exp(np.clip(frames, -50.0, 50.0)).T.astype(np.float32))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)  # GriffinLim's random initial phase: same frames, same wave
            linear = inverse(power).clamp_min(0.0)
            wave = griffin_lim(linear)
        return np.asarray(np.clip(wave.double().numpy(), -1.0, 1.0))
