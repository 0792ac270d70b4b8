"""WORLD vocoder features for sequence models: analysis, standardisation and resynthesis.

A frame is ``[c₀ … c_M, log F0, voiced, bap₁ … bap_K]``:

* ``c`` — mel-cepstrum of WORLD's CheapTrick spectral envelope (:func:`pysptk.sp2mc`, natural
  log units, all-pass constant ``alpha`` for the sample rate), order ``M``;
* ``log F0`` — natural log of F0 in Hz from DIO + StoneMask, linearly interpolated through
  unvoiced frames (a continuous track the model can predict); ``voiced`` is ``1.0``/``0.0``;
* ``bap`` — coded aperiodicity: D4C's aperiodicity in dB averaged over bands centred every
  ``ap_band_hz`` below Nyquist. WORLD's own coding (:func:`pyworld.code_aperiodicity`) spaces
  its bands 3 kHz apart and so has no band at all at 8 kHz, the rate of the default corpus;
  decoding interpolates in dB between the band centres with WORLD's end points (−60 dB at 0 Hz,
  0 dB at Nyquist), like WORLD's ``DecodeAperiodicity``.

numpy, pyworld and pysptk only (no torch), so the torch-free runtime can turn generated frames
into a waveform: :meth:`WorldFeatures.synthesize`.

References: Morise, Yokomori & Ozawa (2016), "WORLD: a vocoder-based high-quality speech
synthesis system for real-time applications", IEICE; Fukada et al. (1992), mel-cepstral
analysis; Kubichek (1993), mel-cepstral distance.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np

from seqboltz.speech._audio import soft_limit
from seqboltz.speech._base import SpeechFeatureError, SpeechFeatures

__all__ = [
    "SpeechFeatureError",
    "WorldFeatures",
    "formant_postfilter",
    "mcep_power_spectrum",
    "mel_cepstral_distortion",
    "postfilter_beta_problem",
]

_LOG_AP_FLOOR_DB = -60.0


def _vocoder() -> tuple[Any, Any]:
    """Import pyworld and pysptk (the ``speech`` extra) with a clear error if missing."""
    try:
        with warnings.catch_warnings():
            # pysptk 1.0.1 imports the deprecated pkg_resources
            warnings.simplefilter("ignore", UserWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            import pysptk
            import pyworld
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ImportError(
            "speech features need pyworld and pysptk: pip install 'seqboltz[speech]'"
        ) from exc
    return pyworld, pysptk


def mel_cepstral_distortion(c_ref: np.ndarray, c_est: np.ndarray) -> np.ndarray:
    """Mel-cepstral distortion in dB per frame, ``c₀`` excluded (Kubichek 1993).

    ``MCD = 10/ln 10 · √(2 Σ_{m≥1} (c_m − ĉ_m)²)`` on natural-log mel-cepstra.

    Args:
        c_ref, c_est: ``(..., M+1)`` mel-cepstra including ``c₀`` (column 0 is ignored).

    Returns:
        ``(...)`` distortion per frame in dB.
    """
    c_ref, c_est = np.asarray(c_ref), np.asarray(c_est)
    if c_ref.shape != c_est.shape or c_ref.shape[-1] < 2:
        raise SpeechFeatureError(
            f"mel-cepstra must have the same shape (..., M+1) with M >= 1; "
            f"got {c_ref.shape} and {c_est.shape}"
        )
    diff = c_ref[..., 1:] - c_est[..., 1:]
    return np.asarray(10.0 / math.log(10.0) * np.sqrt(2.0 * np.sum(diff**2, axis=-1)))


def mcep_power_spectrum(mcep: np.ndarray, alpha: float, fft_size: int) -> np.ndarray:
    """Power spectra of mel-cepstra, frame by frame: what :func:`pysptk.mc2sp` returns (equal
    to 1e-13 in log), as one matrix product instead of a conversion per frame.

    ``log |H(e^{jω})| = Σ_m c_m cos(m ω̃)`` with the all-pass warped frequency
    ``ω̃ = atan2((1 − α²) sin ω, (1 + α²) cos ω − 2α)`` (Fukada et al. 1992), at the
    ``fft_size // 2 + 1`` bins from 0 to π.

    Args:
        mcep: ``(T, M+1)`` natural-log mel-cepstra ``c₀ … c_M``.
        alpha: the all-pass constant.
        fft_size: FFT length.

    Returns:
        ``(T, fft_size // 2 + 1)`` power spectrum ``|H|²``.
    """
    c = np.asarray(mcep, dtype=np.float64)
    return np.asarray(np.exp(2.0 * (c @ _warped_cosines(c.shape[-1], alpha, fft_size))))


@lru_cache(maxsize=16)
def _warped_cosines(n_coef: int, alpha: float, fft_size: int) -> np.ndarray:
    """``(n_coef, fft_size // 2 + 1)`` basis ``cos(m ω̃)`` of :func:`mcep_power_spectrum`, made
    once per voice's settings (read-only: it is shared between calls)."""
    w = np.linspace(0.0, math.pi, fft_size // 2 + 1)
    warped = np.arctan2(
        (1 - alpha * alpha) * np.sin(w), (1 + alpha * alpha) * np.cos(w) - 2 * alpha
    )
    basis = np.cos(np.outer(np.arange(n_coef), warped))
    basis.flags.writeable = False
    return basis


def postfilter_beta_problem(beta: float) -> str | None:
    """What is wrong with a post-filter ``beta`` (one line), or ``None``: it must be finite
    and ``>= 0`` (0: no post-filter)."""
    if math.isfinite(beta) and beta >= 0:
        return None
    return f"post-filter beta must be finite and >= 0, got {beta}"


def formant_postfilter(mcep: np.ndarray, beta: float, alpha: float, fft_size: int) -> np.ndarray:
    """The mel-cepstral formant-emphasis post-filter of HTS and Merlin, frame by frame.

    Every coefficient from ``c₂`` on is multiplied by ``1 + beta``, which deepens the
    spectral valleys and sharpens the formants that a statistical model's averaged frames
    blur; then ``c₀`` moves so that each frame's spectral power (the sum of its power
    spectrum over ``fft_size // 2 + 1`` bins, :func:`mcep_power_spectrum`) is what it was. Merlin's
    ``pf_coef`` is ``1 + beta`` (1.4 by default); ``beta = 0`` returns the frames unchanged.
    Each frame is filtered alone, so a waveform made in chunks gets the same frames.

    Args:
        mcep: ``(T, M+1)`` natural-log mel-cepstra ``c₀ … c_M``.
        beta: emphasis, ``>= 0``.
        alpha: the mel-cepstrum's all-pass constant.
        fft_size: FFT length of the power spectra the energy is kept on.

    Returns:
        ``(T, M+1)`` filtered mel-cepstra.

    Reference: Yoshimura et al. (2005), "Incorporating a mixed excitation model and
    postfilter into HMM-based text-to-speech synthesis", Systems and Computers in Japan.
    """
    c = np.asarray(mcep, dtype=np.float64)
    if c.ndim != 2 or c.shape[1] < 3:
        raise SpeechFeatureError(f"mel-cepstra must be (T, M+1) with M >= 2, got {c.shape}")
    problem = postfilter_beta_problem(beta)
    if problem:
        raise SpeechFeatureError(problem)
    if beta == 0 or c.shape[0] == 0:
        return c.copy()
    out = c.copy()
    out[:, 2:] *= 1.0 + beta
    power = mcep_power_spectrum(c, alpha, fft_size).sum(axis=1)
    power_out = mcep_power_spectrum(out, alpha, fft_size).sum(axis=1)
    out[:, 0] += 0.5 * np.log(power / power_out)
    return out


@dataclass
class WorldFeatures(SpeechFeatures):
    """WORLD analysis/synthesis with per-dimension standardisation (statistics from training).

    Args:
        sample_rate: rate the audio must have (Hz); resample before :meth:`analyze`.
        frame_period: hop in milliseconds.
        mcep_order: ``M``; the frame holds ``c₀ … c_M``.
        alpha: all-pass constant of the mel-cepstrum; ``None``: pysptk's choice for the rate.
        ap_band_hz: spacing of the aperiodicity bands (Hz).
        f0_floor, f0_ceil: DIO's search range (Hz).

    Example:
        >>> wf = WorldFeatures(sample_rate=8000)
        >>> frames = wf.analyze(wave)  # (T, wf.dim)  # doctest: +SKIP
        >>> wf.fit([frames]); z = wf.transform(frames)  # doctest: +SKIP
        >>> wave2 = wf.synthesize(wf.inverse_transform(z))  # doctest: +SKIP
    """

    sample_rate: int = 8000
    frame_period: float = 5.0
    mcep_order: int = 24
    alpha: float | None = None
    ap_band_hz: float = 1000.0
    f0_floor: float = 71.0
    f0_ceil: float = 500.0
    mean: np.ndarray | None = field(default=None, repr=False)
    std: np.ndarray | None = field(default=None, repr=False)

    kind = "world"
    layout = "mcep/lf0/vuv/bap"

    def __post_init__(self) -> None:
        if self.sample_rate < 4000:
            raise SpeechFeatureError(f"sample_rate must be >= 4000 Hz, got {self.sample_rate}")
        if self.frame_period <= 0 or self.mcep_order < 1 or self.ap_band_hz <= 0:
            raise SpeechFeatureError(
                "need frame_period > 0, mcep_order >= 1 and ap_band_hz > 0; got "
                f"{self.frame_period}, {self.mcep_order}, {self.ap_band_hz}"
            )
        if not 0 < self.f0_floor < self.f0_ceil < self.sample_rate / 2:
            raise SpeechFeatureError(
                f"need 0 < f0_floor < f0_ceil < Nyquist; got {self.f0_floor}, {self.f0_ceil}"
            )
        if self.alpha is None:
            _, pysptk = _vocoder()
            self.alpha = float(pysptk.util.mcepalpha(self.sample_rate))
        if self.n_ap_bands < 1:
            raise SpeechFeatureError(
                f"ap_band_hz={self.ap_band_hz} leaves no aperiodicity band below Nyquist "
                f"({self.sample_rate / 2} Hz)"
            )
        self._coerce_stats()

    # ------------------------------------------------------------------ layout
    @property
    def n_ap_bands(self) -> int:
        """Number of coded aperiodicity bands ``K``."""
        return max(0, math.ceil(self.sample_rate / 2 / self.ap_band_hz) - 1)

    @property
    def dim(self) -> int:
        """Frame size ``M + 1 + 2 + K``."""
        return self.mcep_order + 1 + 2 + self.n_ap_bands

    @property
    def mcep_slice(self) -> slice:
        return slice(0, self.mcep_order + 1)

    @property
    def lf0_index(self) -> int:
        return self.mcep_order + 1

    @property
    def vuv_index(self) -> int:
        return self.mcep_order + 2

    @property
    def bap_slice(self) -> slice:
        return slice(self.mcep_order + 3, self.dim)

    def feature_names(self) -> list[str]:
        """One name per frame dimension."""
        return (
            [f"mcep_{m}" for m in range(self.mcep_order + 1)]
            + ["lf0", "vuv"]
            + [f"bap_{k}" for k in range(self.n_ap_bands)]
        )

    @property
    def fft_size(self) -> int:
        pyworld, _ = _vocoder()
        return int(pyworld.get_cheaptrick_fft_size(self.sample_rate, self.f0_floor))

    def _band_centres(self) -> np.ndarray:
        return self.ap_band_hz * np.arange(1, self.n_ap_bands + 1)

    # ------------------------------------------------------------------ analysis
    def analyze(self, wave: np.ndarray) -> np.ndarray:
        """WORLD features of a mono waveform at :attr:`sample_rate`.

        Args:
            wave: ``(N,)`` samples in [-1, 1].

        Returns:
            ``(T, dim)`` raw (not standardised) frames, ``T = ⌊N / hop⌋ + 1``.
        """
        wave = np.asarray(wave)
        if wave.ndim != 1:
            raise SpeechFeatureError(f"wave must be mono (N,), got shape {wave.shape}")
        if not np.isfinite(wave).all():
            raise SpeechFeatureError("wave contains NaN or infinite samples")
        min_len = int(self.sample_rate * 3 * self.frame_period / 1000)
        if wave.shape[0] < min_len:
            raise SpeechFeatureError(
                f"wave has {wave.shape[0]} samples; need at least {min_len} (3 frames)"
            )
        pyworld, pysptk = _vocoder()
        x = np.ascontiguousarray(wave, dtype=np.float64)
        fs = self.sample_rate
        f0, times = pyworld.dio(
            x, fs, f0_floor=self.f0_floor, f0_ceil=self.f0_ceil, frame_period=self.frame_period
        )
        f0 = pyworld.stonemask(x, f0, times, fs)
        sp = pyworld.cheaptrick(x, f0, times, fs, f0_floor=self.f0_floor)
        ap = pyworld.d4c(x, f0, times, fs)
        mcep = pysptk.sp2mc(sp, self.mcep_order, self.alpha)
        voiced = f0 > 0
        lf0 = _interpolate_log_f0(f0, voiced, self.f0_floor)
        bap = self._code_aperiodicity(ap)
        return np.concatenate([mcep, lf0[:, None], voiced[:, None].astype(np.float64), bap], axis=1)

    def _code_aperiodicity(self, ap: np.ndarray) -> np.ndarray:
        """``(T, fft/2+1)`` aperiodicity → ``(T, K)`` band averages in dB."""
        freqs = np.linspace(0.0, self.sample_rate / 2, ap.shape[1])
        ap_db = 20.0 * np.log10(np.clip(ap, 10 ** (_LOG_AP_FLOOR_DB / 20), 1.0))
        out = np.empty((ap.shape[0], self.n_ap_bands))
        half = self.ap_band_hz / 2
        for k, centre in enumerate(self._band_centres()):
            mask = (freqs >= centre - half) & (freqs < centre + half)
            out[:, k] = ap_db[:, mask].mean(axis=1)
        return out

    def _decode_aperiodicity(self, bap: np.ndarray) -> np.ndarray:
        """``(T, K)`` dB bands → ``(T, fft/2+1)`` aperiodicity in (0, 1]."""
        n_bins = self.fft_size // 2 + 1
        freqs = np.linspace(0.0, self.sample_rate / 2, n_bins)
        xp = np.concatenate([[0.0], self._band_centres(), [self.sample_rate / 2]])
        # linear interpolation is linear in the values: one weight matrix for every frame
        weights = np.stack([np.interp(freqs, xp, e) for e in np.eye(xp.shape[0])], axis=1)
        t = bap.shape[0]
        fp = np.concatenate(
            [np.full((t, 1), _LOG_AP_FLOOR_DB), np.minimum(bap, 0.0), np.zeros((t, 1))], axis=1
        )
        return np.asarray(10.0 ** ((fp @ weights.T) / 20.0))

    # ------------------------------------------------------------------ synthesis
    def synthesize(
        self, frames: np.ndarray, clip: bool = True, postfilter: float = 0.0
    ) -> np.ndarray:
        """Waveform ``(N,)`` float64 of raw frames ``(T, dim)`` through WORLD,
        ``N = T · frame_period · sample_rate / 1000`` samples.

        A frame is voiced where its ``voiced`` value is above 0.5; its F0 is then
        ``exp(log F0)`` clipped to ``[f0_floor, f0_ceil]``. ``clip``: pass the samples through
        :func:`~seqboltz.speech._audio.soft_limit` (unchanged up to 0.9 in magnitude, bent
        smoothly above it, always below 0.98: WORLD's pulses from generated frames reach 2.3
        on ARCTIC, and a hard clip at ±1 flattened them); ``False``: as WORLD made them (e.g.
        to scale a loud utterance down instead). The limiter acts on each sample alone, so
        synthesising a prompt whole or in chunks limits the same samples the same way.
        ``postfilter``: the ``beta`` of :func:`formant_postfilter` applied to the mel-cepstra
        first (0: none).
        """
        frames = self.check_frames(frames)
        pyworld, _ = _vocoder()
        assert self.alpha is not None  # set in __post_init__
        mcep = frames[:, self.mcep_slice]
        if postfilter:
            mcep = formant_postfilter(mcep, postfilter, self.alpha, self.fft_size)
        voiced = frames[:, self.vuv_index] > 0.5
        f0 = np.where(
            voiced, np.clip(np.exp(frames[:, self.lf0_index]), self.f0_floor, self.f0_ceil), 0.0
        )
        sp = mcep_power_spectrum(mcep, self.alpha, self.fft_size)  # pysptk.mc2sp, vectorised
        ap = self._decode_aperiodicity(frames[:, self.bap_slice])
        wave = pyworld.synthesize(
            np.ascontiguousarray(f0),
            np.ascontiguousarray(sp),
            np.ascontiguousarray(ap),
            self.sample_rate,
            self.frame_period,
        )
        return soft_limit(wave) if clip else np.asarray(wave)


def _interpolate_log_f0(f0: np.ndarray, voiced: np.ndarray, floor: float) -> np.ndarray:
    """Continuous log F0: linear interpolation through unvoiced frames, ends held."""
    t = np.arange(f0.shape[0])
    if not voiced.any():
        return np.full(f0.shape[0], math.log(floor))
    return np.interp(t, t[voiced], np.log(f0[voiced]))
