"""Short-time Fourier transforms, mel filterbanks and Griffin-Lim in numpy (torch-free).

Pure functions that take every setting as an argument. Their conventions are torchaudio's
(``torch.stft``/``torch.istft`` with ``center=True`` and reflect padding, a periodic Hann
window centred in ``n_fft``, HTK mel filters without normalisation, minimum-norm least-squares
mel inversion, Griffin-Lim with momentum), so frames analysed here equal torchaudio's to
float precision; ``tests/speech/test_dsp.py`` checks each against torchaudio.

References:
    D. W. Griffin and J. S. Lim, "Signal estimation from modified short-time Fourier
    transform", IEEE Trans. ASSP 32(2), 1984.
    N. Perraudin, P. Balazs and P. L. Søndergaard, "A fast Griffin-Lim algorithm", WASPAA 2013
    (the momentum term).
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "griffin_lim",
    "hann_window",
    "inverse_mel",
    "istft",
    "mel_filterbank",
    "mel_spectrogram",
    "stft",
]


def hann_window(win_length: int, n_fft: int) -> np.ndarray:
    """Periodic Hann window of ``win_length`` zero-padded to ``n_fft`` (centred), ``(n_fft,)``."""
    if not 1 <= win_length <= n_fft:
        raise ValueError(f"need 1 <= win_length <= n_fft, got {win_length} and {n_fft}")
    n = np.arange(win_length)
    window = 0.5 - 0.5 * np.cos(2.0 * np.pi * n / win_length)
    left = (n_fft - win_length) // 2
    return np.pad(window, (left, n_fft - win_length - left))


def stft(wave: np.ndarray, n_fft: int, hop: int, win_length: int) -> np.ndarray:
    """One-sided STFT of ``wave (N,)``, centred frames (reflect padding of ``n_fft // 2``).

    Returns:
        complex ``(n_fft // 2 + 1, T)`` with ``T = 1 + N // hop``, as ``torch.stft(...,
        center=True, pad_mode="reflect", onesided=True)``.
    """
    wave = np.asarray(wave, dtype=np.float64)
    pad = n_fft // 2
    if wave.ndim != 1 or wave.shape[0] <= pad:
        raise ValueError(f"wave must be (N > {pad},) samples, got shape {wave.shape}")
    padded = np.pad(wave, pad, mode="reflect")
    n_frames = 1 + (padded.shape[0] - n_fft) // hop
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop][:n_frames]
    return np.fft.rfft(frames * hann_window(win_length, n_fft), axis=-1).T  # (F, T)


def istft(
    spec: np.ndarray, n_fft: int, hop: int, win_length: int, length: int | None = None
) -> np.ndarray:
    """Inverse of :func:`stft` by weighted overlap-add (``torch.istft`` with ``center=True``).

    Args:
        spec: complex ``(n_fft // 2 + 1, T)``.
        length: samples to return (default ``hop · (T - 1)``).

    Returns:
        ``(length,)`` samples.
    """
    window = hann_window(win_length, n_fft)
    n_frames = spec.shape[1]
    frames = np.fft.irfft(spec.T, n=n_fft, axis=-1) * window  # (T, n_fft)
    total = n_fft + hop * (n_frames - 1)
    where = (np.arange(n_frames)[:, None] * hop + np.arange(n_fft)).ravel()  # overlap-add
    y: np.ndarray = np.bincount(where, weights=frames.ravel(), minlength=total)
    envelope: np.ndarray = np.bincount(where, weights=np.tile(window**2, n_frames), minlength=total)
    start = n_fft // 2
    end = start + length if length is not None else total - n_fft // 2
    y, envelope = y[start:end], envelope[start:end]
    if envelope.size and envelope.min() < 1e-11:
        raise ValueError(
            f"window of {win_length} samples with hop {hop} does not cover every sample "
            "(overlap-add envelope is zero)"
        )
    y = y / envelope
    if length is not None and y.shape[0] < length:
        y = np.pad(y, (0, length - y.shape[0]))
    return y


def _hz_to_mel(f: np.ndarray | float) -> np.ndarray:
    return np.asarray(2595.0 * np.log10(1.0 + np.asarray(f) / 700.0))


def _mel_to_hz(m: np.ndarray) -> np.ndarray:
    return np.asarray(700.0 * (10.0 ** (m / 2595.0) - 1.0))


def mel_filterbank(
    n_freqs: int, f_min: float, f_max: float, n_mels: int, sample_rate: int
) -> np.ndarray:
    """Triangular HTK mel filters without area normalisation, ``(n_freqs, n_mels)``.

    The STFT bins sit at ``linspace(0, sample_rate // 2, n_freqs)`` Hz; filter ``m`` rises
    from mel point ``m`` to ``m + 1`` and falls to ``m + 2`` of ``n_mels + 2`` points evenly
    spaced in ``mel = 2595 log10(1 + f / 700)`` between ``f_min`` and ``f_max``
    (``torchaudio.functional.melscale_fbanks(..., norm=None, mel_scale="htk")``).
    """
    all_freqs = np.linspace(0.0, sample_rate // 2, n_freqs)
    m_pts = np.linspace(_hz_to_mel(f_min), _hz_to_mel(f_max), n_mels + 2)
    f_pts = _mel_to_hz(m_pts)
    f_diff = np.diff(f_pts)  # (n_mels + 1,)
    slopes = f_pts[None, :] - all_freqs[:, None]  # (n_freqs, n_mels + 2)
    down = -slopes[:, :-2] / f_diff[:-1]
    up = slopes[:, 2:] / f_diff[1:]
    return np.maximum(0.0, np.minimum(down, up))


def mel_spectrogram(
    wave: np.ndarray, sample_rate: int, n_fft: int, win_length: int, hop: int, n_mels: int
) -> np.ndarray:
    """Mel power spectrogram ``(n_mels, T)`` of ``wave (N,)`` (filters from 0 Hz to Nyquist)."""
    power = np.abs(stft(wave, n_fft, hop, win_length)) ** 2  # (F, T)
    fb = mel_filterbank(n_fft // 2 + 1, 0.0, float(sample_rate // 2), n_mels, sample_rate)
    return np.asarray(fb.T @ power)


def inverse_mel(mel_power: np.ndarray, filterbank: np.ndarray) -> np.ndarray:
    """Linear power spectrum ``(n_freqs, T)`` of mel power ``(n_mels, T)``.

    The minimum-norm least-squares solution of ``filterbankᵀ S = mel_power``, negative values
    set to 0 (``torchaudio.transforms.InverseMelScale``).
    """
    solution = np.linalg.pinv(filterbank.T) @ np.asarray(mel_power, dtype=np.float64)
    return np.asarray(np.maximum(solution, 0.0))


def griffin_lim(
    magnitude: np.ndarray,
    n_fft: int,
    hop: int,
    win_length: int,
    n_iter: int,
    momentum: float = 0.99,
    init_angles: np.ndarray | None = None,
    length: int | None = None,
) -> np.ndarray:
    """A waveform whose STFT magnitude approaches ``magnitude (n_fft // 2 + 1, T)``.

    Fast Griffin-Lim: each iteration resynthesises with the current phases, re-analyses, and
    extrapolates the new STFT by ``momentum / (1 + momentum)`` of the previous one before
    keeping only its phase (``torchaudio.functional.griffinlim``).

    Args:
        magnitude: STFT magnitudes (not power), ``(F, T)``.
        n_iter: iterations (>= 1).
        momentum: in ``[0, 1)``; 0 is the original algorithm.
        init_angles: complex ``(F, T)`` starting phase factors; default all ones (zero phase).
        length: samples to return (default ``hop · (T - 1)``).

    Returns:
        ``(length,)`` samples.
    """
    if n_iter < 1:
        raise ValueError(f"n_iter must be >= 1, got {n_iter}")
    if not 0.0 <= momentum < 1.0:
        raise ValueError(f"momentum must be in [0, 1), got {momentum}")
    magnitude = np.asarray(magnitude, dtype=np.float64)
    angles: np.ndarray
    if init_angles is None:
        angles = np.ones(magnitude.shape, dtype=np.complex128)
    else:
        angles = np.asarray(init_angles, dtype=np.complex128)
        if angles.shape != magnitude.shape:
            raise ValueError(f"init_angles {angles.shape} must match magnitude {magnitude.shape}")
    previous: np.ndarray | float = 0.0
    for _ in range(n_iter):
        inverse = istft(magnitude * angles, n_fft, hop, win_length, length)
        rebuilt = stft(inverse, n_fft, hop, win_length)
        angles = rebuilt - previous * (momentum / (1.0 + momentum)) if momentum else rebuilt
        angles = angles / (np.abs(angles) + 1e-16)
        previous = rebuilt
    return istft(magnitude * angles, n_fft, hop, win_length, length)
