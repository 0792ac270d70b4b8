"""Log-mel spectrogram frames with Griffin-Lim inversion, in numpy (torch-free).

A frame is the natural log of the mel power spectrum, ``n_mels`` values, window 25 ms, hop
``frame_period`` (the same framing as :class:`~seqboltz.speech.WorldFeatures`: ``T = ⌊N/hop⌋
+ 1``). :meth:`LogMelFeatures.synthesize` inverts the mel filterbank by least squares and
recovers a phase with Griffin & Lim (1984) (``griffin_lim_iters`` iterations of the fast
variant, seeded). The transforms are those of :mod:`seqboltz.speech._dsp`, which follow
torchaudio's conventions (``MelSpectrogram``, ``InverseMelScale``, ``GriffinLim``), so frames
from models trained with earlier, torchaudio-based versions keep their meaning.
Unlike WORLD frames it has no explicit pitch, so a model over log-mel frames is scored by
log-spectral distance rather than MCD and F0 error.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from seqboltz.speech._base import SpeechFeatureError, SpeechFeatures
from seqboltz.speech._dsp import griffin_lim, mel_filterbank, stft

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

    def _filterbank(self) -> tuple[np.ndarray, np.ndarray]:
        """The mel filters ``(F, n_mels)`` and their pseudo-inverse's transpose, built once."""
        cached = self.__dict__.get("_cached_filterbank")
        if cached is None:
            n_freqs, nyquist = self.n_fft // 2 + 1, float(self.sample_rate // 2)
            fb = mel_filterbank(n_freqs, 0.0, nyquist, self.n_mels, self.sample_rate)
            cached = self.__dict__["_cached_filterbank"] = (fb, np.linalg.pinv(fb.T))
        return cached

    def analyze(self, wave: np.ndarray) -> np.ndarray:
        """Raw log-mel frames ``(T, n_mels)`` of a mono waveform ``(N,)``."""
        wave = np.asarray(wave)
        if wave.ndim != 1:
            raise SpeechFeatureError(f"wave must be mono (N,), got shape {wave.shape}")
        if not np.isfinite(wave).all():
            raise SpeechFeatureError("wave contains NaN or infinite samples")
        if wave.shape[0] < self.n_fft:
            raise SpeechFeatureError(
                f"wave has {wave.shape[0]} samples; need at least {self.n_fft} (one window)"
            )
        fb, _ = self._filterbank()
        power = np.abs(stft(wave, self.n_fft, self.hop, self.win_length)) ** 2  # (F, T)
        return np.asarray(np.log(np.maximum(fb.T @ power, _FLOOR)).T)

    def synthesize(self, frames: np.ndarray) -> np.ndarray:
        """Waveform ``(N,)`` of raw log-mel frames ``(T, n_mels)`` by Griffin-Lim.

        The mel filters are inverted by minimum-norm least squares; Griffin-Lim starts from
        phases drawn from ``numpy.random.default_rng(0)``, so the same frames give the same
        wave. ``N = hop · (T - 1)``.
        """
        frames = self.check_frames(frames)
        _, fb_pinv = self._filterbank()
        power = np.exp(np.clip(frames, -50.0, 50.0)).T  # (n_mels, T)
        magnitude = np.sqrt(np.maximum(fb_pinv @ power, 0.0))  # (F, T)
        rng = np.random.default_rng(0)
        angles = rng.random(magnitude.shape) + 1j * rng.random(magnitude.shape)
        wave = griffin_lim(
            magnitude,
            self.n_fft,
            self.hop,
            self.win_length,
            self.griffin_lim_iters,
            init_angles=angles,
        )
        return np.asarray(np.clip(wave, -1.0, 1.0))
