"""The numpy STFT, mel filters, mel inversion and Griffin-Lim against torchaudio's.

:mod:`seqboltz.speech._dsp` replaces torchaudio on the torch-free synthesis path; these tests
pin it to torchaudio's conventions where torch is installed (skipped otherwise). torchaudio
runs in float64 here (its filters built under float64 as the default dtype). Stated
tolerances: 1e-9 for one transform, 1e-7 after 32 Griffin-Lim iterations; the whole
log-mel → wave path, whose random phase start differs (numpy's generator, not torch's), is
compared by log-spectral distance: within 0.5 dB of torchaudio's.
"""

from __future__ import annotations

import numpy as np
import pytest

from seqboltz.speech import LogMelFeatures, log_spectral_distance
from seqboltz.speech._dsp import (
    griffin_lim,
    hann_window,
    inverse_mel,
    istft,
    mel_filterbank,
    mel_spectrogram,
    stft,
)

torch = pytest.importorskip("torch")
torchaudio = pytest.importorskip("torchaudio")

SR, N_FFT, WIN, HOP, N_MELS = 8000, 256, 200, 40, 40


@pytest.fixture(autouse=True)
def float64_default():
    """torchaudio builds filters and windows in the default dtype: make it float64."""
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(before)


@pytest.fixture(scope="module")
def wave(arctic_8k: np.ndarray) -> np.ndarray:
    return arctic_8k[8000:16000]  # 1 s of speech


def _t(x: np.ndarray):
    return torch.from_numpy(np.ascontiguousarray(x))


def test_window_and_stft_match_torch(wave: np.ndarray) -> None:
    window = torch.hann_window(WIN, dtype=torch.float64)
    spec = torch.stft(
        _t(wave), N_FFT, HOP, WIN, window, center=True, pad_mode="reflect", return_complex=True
    ).numpy()
    ours = stft(wave, N_FFT, HOP, WIN)
    assert ours.shape == spec.shape == (N_FFT // 2 + 1, len(wave) // HOP + 1)
    np.testing.assert_allclose(ours, spec, rtol=0, atol=1e-9)
    left = (N_FFT - WIN) // 2
    np.testing.assert_allclose(hann_window(WIN, N_FFT)[left : left + WIN], window.numpy())
    back = torch.istft(_t(spec), N_FFT, HOP, WIN, window, center=True).numpy()
    np.testing.assert_allclose(istft(ours, N_FFT, HOP, WIN), back, rtol=0, atol=1e-9)
    n = HOP * (spec.shape[1] - 1)
    np.testing.assert_allclose(istft(ours, N_FFT, HOP, WIN), wave[:n], atol=1e-9)  # inverse


def test_mel_filterbank_matches_torchaudio() -> None:
    ref = torchaudio.functional.melscale_fbanks(
        N_FFT // 2 + 1, 0.0, SR / 2, N_MELS, SR, norm=None, mel_scale="htk"
    ).numpy()
    ours = mel_filterbank(N_FFT // 2 + 1, 0.0, SR / 2, N_MELS, SR)
    assert ours.shape == ref.shape == (N_FFT // 2 + 1, N_MELS)
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-12)
    assert (ours.sum(axis=0) > 0).all()  # no empty band at these settings


def test_log_mel_frames_match_torchaudio(wave: np.ndarray) -> None:
    mel = torchaudio.transforms.MelSpectrogram(
        sample_rate=SR, n_fft=N_FFT, win_length=WIN, hop_length=HOP, n_mels=N_MELS, power=2.0
    )
    ref = torch.log(mel(_t(wave)).clamp_min(1e-10)).T.numpy()
    frames = LogMelFeatures(sample_rate=SR, n_mels=N_MELS).analyze(wave)
    np.testing.assert_allclose(frames, ref, rtol=0, atol=1e-9)
    np.testing.assert_allclose(
        mel_spectrogram(wave, SR, N_FFT, WIN, HOP, N_MELS), mel(_t(wave)).numpy(), rtol=1e-9
    )


def test_inverse_mel_matches_torchaudio(wave: np.ndarray) -> None:
    fb = mel_filterbank(N_FFT // 2 + 1, 0.0, SR / 2, N_MELS, SR)
    power = mel_spectrogram(wave, SR, N_FFT, WIN, HOP, N_MELS)
    inverse = torchaudio.transforms.InverseMelScale(
        n_stft=N_FFT // 2 + 1, n_mels=N_MELS, sample_rate=SR
    )
    ref = inverse(_t(power)).numpy()
    ours = inverse_mel(power, fb)
    assert (ours >= 0).all()
    scale = np.abs(ref).max()
    np.testing.assert_allclose(ours / scale, ref / scale, rtol=0, atol=1e-9)


def test_griffin_lim_matches_torchaudio(wave: np.ndarray) -> None:
    magnitude = np.abs(stft(wave, N_FFT, HOP, WIN))
    ref = torchaudio.functional.griffinlim(
        _t(magnitude),
        torch.hann_window(WIN, dtype=torch.float64),
        N_FFT,
        HOP,
        WIN,
        power=1.0,
        n_iter=32,
        momentum=0.99,
        length=None,
        rand_init=False,
    ).numpy()
    ours = griffin_lim(magnitude, N_FFT, HOP, WIN, n_iter=32, momentum=0.99)
    assert ours.shape == ref.shape == (HOP * (magnitude.shape[1] - 1),)
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-7)
    with pytest.raises(ValueError, match="n_iter"):
        griffin_lim(magnitude, N_FFT, HOP, WIN, n_iter=0)
    with pytest.raises(ValueError, match="init_angles"):
        griffin_lim(magnitude, N_FFT, HOP, WIN, n_iter=1, init_angles=np.ones((2, 2)))


def _torchaudio_synthesis(lm: LogMelFeatures, frames: np.ndarray) -> np.ndarray:
    """The synthesis seqboltz used before numpy: torchaudio's InverseMelScale + GriffinLim,
    in float32 as it was."""
    torch.set_default_dtype(torch.float32)
    inverse = torchaudio.transforms.InverseMelScale(
        n_stft=lm.n_fft // 2 + 1, n_mels=lm.n_mels, sample_rate=lm.sample_rate
    )
    gl = torchaudio.transforms.GriffinLim(
        n_fft=lm.n_fft,
        win_length=lm.win_length,
        hop_length=lm.hop,
        power=2.0,
        n_iter=lm.griffin_lim_iters,
    )
    power = torch.from_numpy(np.exp(frames).T.astype(np.float32))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return gl(inverse(power).clamp_min(0.0)).double().numpy()


def test_synthesis_as_good_as_torchaudio(arctic_8k: np.ndarray) -> None:
    """Log-spectral distance after resynthesis, measured on these 2 s of ARCTIC a0007:
    1.45 dB (numpy) and 1.44 dB (torchaudio, float32); on all 4 s 1.40 and 1.38 dB."""
    lm = LogMelFeatures(sample_rate=SR, n_mels=N_MELS)
    frames = lm.analyze(arctic_8k[:16000])
    ours = lm.synthesize(frames)
    theirs = _torchaudio_synthesis(lm, frames)
    assert ours.shape == theirs.shape

    def distance(w: np.ndarray) -> float:
        again = lm.analyze(w)
        n = min(len(frames), len(again))
        return float(log_spectral_distance(frames[:n], again[:n]).mean())

    d_ours, d_theirs = distance(ours), distance(theirs)
    assert d_ours < 3.0
    assert d_ours < d_theirs + 0.5, (d_ours, d_theirs)
