"""Audio files: reading (any rate, resampled), atomic WAV writing, log-mel spectrograms, and
the soft limiter that keeps synthesised speech from clipping.

Reading and writing go through soundfile (libsndfile), resampling through soxr (libsoxr),
log-mel spectrograms through :mod:`seqboltz.speech._dsp` (numpy): all of it torch-free.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from seqboltz._io import atomic_path
from seqboltz.speech._base import SpeechFeatureError

__all__ = [
    "LIMIT_CEILING",
    "LIMIT_KNEE",
    "AudioFileError",
    "log_mel_spectrogram",
    "read_audio",
    "resample",
    "soft_limit",
    "write_wav",
]

LIMIT_KNEE = 0.9
"""Sample magnitude below which :func:`soft_limit` leaves speech unchanged (real speech and
WORLD's resynthesis of it peak below it: 0.65 and 0.91 on CMU ARCTIC slt's test prompts)."""

LIMIT_CEILING = 0.98
"""Magnitude :func:`soft_limit` approaches and never reaches (0.18 dB below full scale)."""


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


def soft_limit(
    wave: np.ndarray, knee: float = LIMIT_KNEE, ceiling: float = LIMIT_CEILING
) -> np.ndarray:
    """Samples above ``knee`` in magnitude bent smoothly towards ``ceiling``, never reaching it.

    ``knee + (ceiling − knee)·tanh((|x| − knee)/(ceiling − knee))``, sign kept; samples at or
    below ``knee`` are returned unchanged. The curve is continuous with slope 1 at the knee and
    monotone. It acts on each sample alone (no gain, no state), so limiting an utterance whole
    or chunk by chunk gives the same samples.

    Args:
        wave: samples, any shape.
        knee, ceiling: ``0 < knee < ceiling <= 1``.

    Returns:
        float64 samples of the same shape, ``|y| < ceiling``.
    """
    if not 0.0 < knee < ceiling <= 1.0:
        raise ValueError(f"need 0 < knee < ceiling <= 1, got knee {knee}, ceiling {ceiling}")
    x = np.asarray(wave, dtype=np.float64)
    mag = np.abs(x)
    over = mag > knee
    if not over.any():
        return x
    span = ceiling - knee
    # tanh rounds to 1 in float64 far above the knee: stay strictly below the ceiling
    bent = np.minimum(knee + span * np.tanh((mag[over] - knee) / span), np.nextafter(ceiling, 0))
    out = x.copy()
    out[over] = np.sign(x[over]) * bent
    return out


def write_wav(path: str | os.PathLike[str], wave: np.ndarray, sample_rate: int) -> Path:
    """Write 16-bit PCM mono WAV atomically (a temporary file, then a rename).

    Samples beyond ±1 are clipped there (a last guard: :meth:`WorldFeatures.synthesize
    <seqboltz.speech.WorldFeatures.synthesize>` already limits its output with
    :func:`soft_limit`, so speech it made never reaches them).

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
