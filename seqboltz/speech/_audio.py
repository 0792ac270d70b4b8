"""Audio files: reading (any rate, resampled), atomic WAV writing, and log-mel spectrograms.

Reading and writing go through soundfile (libsndfile), resampling through soxr (libsoxr),
log-mel spectrograms through :mod:`seqboltz.speech._dsp` (numpy): all of it torch-free.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from seqboltz._io import atomic_path
from seqboltz.speech._base import SpeechFeatureError

__all__ = ["AudioFileError", "log_mel_spectrogram", "read_audio", "resample", "write_wav"]


class AudioFileError(SpeechFeatureError):
    """An audio file that cannot be read, with the path and the reason."""


def read_audio(path: str | os.PathLike[str], sample_rate: int | None = None) -> np.ndarray:
    """Read a sound file as mono float64 in [-1, 1], resampled to ``sample_rate``.

    Args:
        path: WAV (or any format libsndfile reads).
        sample_rate: target rate in Hz; ``None`` keeps the file's rate.

    Returns:
        ``(N,)`` samples. Channels are averaged.

    Raises:
        AudioFileError: missing, empty, corrupt or non-finite file.
    """
    import soundfile as sf

    path = Path(path)
    if not path.is_file():
        raise AudioFileError(f"{path}: no such audio file")
    try:
        data, rate = sf.read(str(path), dtype="float64", always_2d=True)
    except Exception as exc:  # libsndfile raises its own error types
        raise AudioFileError(f"{path}: not a readable audio file ({exc})") from exc
    if data.shape[0] == 0:
        raise AudioFileError(f"{path}: the file holds no samples")
    if not np.isfinite(data).all():
        raise AudioFileError(f"{path}: the file holds NaN or infinite samples")
    wave = data.mean(axis=1)
    if sample_rate is not None and rate != sample_rate:
        wave = resample(wave, int(rate), int(sample_rate))
    return np.asarray(wave)


def resample(wave: np.ndarray, orig_rate: int, new_rate: int) -> np.ndarray:
    """Band-limited resampling ``(N,)`` → ``(round(N · new_rate / orig_rate),)`` with soxr.

    libsoxr's "HQ" quality (a linear-phase low-pass at the lower Nyquist frequency, 20-bit
    precision; the resampler librosa uses by default): torch-free and fast to import.
    """
    import soxr

    if orig_rate <= 0 or new_rate <= 0:
        raise AudioFileError(f"sample rates must be positive, got {orig_rate} → {new_rate}")
    wave = np.asarray(wave, dtype=np.float64)
    if orig_rate == new_rate:
        return wave
    return np.asarray(soxr.resample(wave, int(orig_rate), int(new_rate), quality="HQ"))


def write_wav(path: str | os.PathLike[str], wave: np.ndarray, sample_rate: int) -> Path:
    """Write 16-bit PCM mono WAV atomically (a temporary file, then a rename).

    Raises:
        AudioFileError: a wave that is not ``(N,)`` finite samples.
    """
    import soundfile as sf

    wave = np.asarray(wave, dtype=np.float64)
    if wave.ndim != 1 or wave.shape[0] == 0:
        raise AudioFileError(f"wave must be (N >= 1,) mono samples, got shape {wave.shape}")
    if not np.isfinite(wave).all():
        raise AudioFileError("wave contains NaN or infinite samples; nothing written")
    path = Path(path)
    with atomic_path(path, suffix=".wav") as tmp:
        sf.write(tmp, np.clip(wave, -1.0, 1.0), sample_rate, subtype="PCM_16", format="WAV")
    return path


def log_mel_spectrogram(
    wave: np.ndarray, sample_rate: int, n_mels: int = 64, hop_ms: float = 5.0
) -> np.ndarray:
    """Natural-log mel spectrogram ``(n_mels, T)`` (for pictures), in numpy.

    Window 25 ms, hop ``hop_ms``, power spectrum, floor 1e-10 (torchaudio's
    ``MelSpectrogram`` conventions; see :mod:`seqboltz.speech._dsp`).
    """
    from seqboltz.speech._dsp import mel_spectrogram

    win_length = int(0.025 * sample_rate)
    n_fft = 1 << (win_length - 1).bit_length()
    hop = max(1, int(hop_ms * sample_rate / 1000))
    mel = mel_spectrogram(wave, sample_rate, n_fft, win_length, hop, n_mels)
    return np.asarray(np.log(np.maximum(mel, 1e-10)))
