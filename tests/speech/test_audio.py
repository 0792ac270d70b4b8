"""Audio I/O: resampling on read, atomic WAV writing, clear errors for bad files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from seqboltz.speech import AudioFileError, log_mel_spectrogram, read_audio, resample, write_wav


def _sine(rate: int, freq: float = 440.0, seconds: float = 0.5) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return 0.5 * np.sin(2 * np.pi * freq * t)


def test_other_rate_is_resampled(tmp_path: Path) -> None:
    path = tmp_path / "a.wav"
    sf.write(path, _sine(16000), 16000, subtype="PCM_16")
    wave = read_audio(path, 8000)
    assert wave.shape == (4000,)
    spectrum = np.abs(np.fft.rfft(wave))
    assert np.argmax(spectrum) * 8000 / len(wave) == pytest.approx(440, abs=4)
    assert read_audio(path).shape == (8000,)  # native rate kept


def test_resampling_is_band_limited() -> None:
    """soxr: a tone below the new Nyquist frequency keeps its frequency and level, one above it
    is removed rather than folded back (5 kHz at 16 kHz would alias to 3 kHz at 8 kHz)."""

    def rms(x: np.ndarray) -> float:
        return float(np.sqrt(np.mean(x[200:-200] ** 2)))  # away from the edges

    kept = resample(_sine(16000, 1000.0, 1.0), 16000, 8000)
    assert kept.shape == (8000,)
    assert rms(kept) == pytest.approx(0.5 / np.sqrt(2), rel=0.01)
    assert np.argmax(np.abs(np.fft.rfft(kept))) == 1000  # 1 Hz bins
    assert rms(resample(_sine(16000, 5000.0, 1.0), 16000, 8000)) < 1e-3
    up = resample(kept, 8000, 22050)
    assert up.shape == (22050,) and rms(up) == pytest.approx(0.5 / np.sqrt(2), rel=0.01)
    np.testing.assert_array_equal(resample(kept, 8000, 8000), kept)
    with pytest.raises(AudioFileError, match="must be positive"):
        resample(kept, 0, 8000)


def test_real_speech_resampled(arctic_path: Path) -> None:
    native = read_audio(arctic_path)
    low = read_audio(arctic_path, 8000)
    assert native.shape == (64000,) and low.shape == (32000,)


def test_stereo_is_averaged(tmp_path: Path) -> None:
    path = tmp_path / "st.wav"
    left = _sine(8000)
    sf.write(path, np.stack([left, -left], axis=1), 8000, subtype="FLOAT")
    np.testing.assert_allclose(read_audio(path), 0.0, atol=1e-7)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"RIFF\x10\x00\x00\x00WAVEfmt garbage", "not a readable audio file"),
        (b"", "not a readable audio file"),
        (b"\x00" * 64, "not a readable audio file"),
    ],
)
def test_corrupt_wav_clear_error(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.wav"
    path.write_bytes(content)
    with pytest.raises(AudioFileError, match=message) as info:
        read_audio(path, 8000)
    assert "bad.wav" in str(info.value)


def test_truncated_real_wav(tmp_path: Path, arctic_path: Path) -> None:
    path = tmp_path / "cut.wav"
    path.write_bytes(arctic_path.read_bytes()[:30])
    with pytest.raises(AudioFileError, match=r"cut\.wav"):
        read_audio(path)


def test_missing_and_empty(tmp_path: Path) -> None:
    with pytest.raises(AudioFileError, match="no such audio file"):
        read_audio(tmp_path / "nope.wav")
    path = tmp_path / "empty.wav"
    sf.write(path, np.zeros(0), 8000, subtype="PCM_16")
    with pytest.raises(AudioFileError, match="no samples"):
        read_audio(path)


def test_write_wav_round_trip_and_atomic(tmp_path: Path) -> None:
    wave = _sine(8000)
    path = write_wav(tmp_path / "out" / "x.wav", wave, 8000)
    info = sf.info(path)
    assert (info.samplerate, info.channels, info.subtype) == (8000, 1, "PCM_16")
    np.testing.assert_allclose(read_audio(path), wave, atol=1 / 32768 + 1e-9)
    bad = wave.copy()
    bad[3] = np.nan
    with pytest.raises(AudioFileError, match="NaN"):
        write_wav(path, bad, 8000)
    np.testing.assert_allclose(read_audio(path), wave, atol=1 / 32768 + 1e-9)  # untouched
    assert sorted(p.name for p in path.parent.iterdir()) == ["x.wav"]  # no temp left over
    with pytest.raises(AudioFileError, match="mono"):
        write_wav(tmp_path / "y.wav", np.zeros((10, 2)), 8000)
    assert not (tmp_path / "y.wav").exists()


def test_log_mel_spectrogram_shape(arctic_8k: np.ndarray) -> None:
    spec = log_mel_spectrogram(arctic_8k, 8000, n_mels=40, hop_ms=5.0)
    assert spec.shape == (40, len(arctic_8k) // 40 + 1)
    assert np.isfinite(spec).all()
