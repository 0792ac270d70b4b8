"""SpeechDataModule over a folder of real speech (CMU ARCTIC pieces at two sample rates)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from seqboltz.data import ASTERISK_PROMPTS, SpeechDataModule, fetch_speech_prompts, find_wavs
from seqboltz.data._speech import _held_out
from seqboltz.speech import AudioFileError, read_audio


@pytest.fixture(scope="module")
def arctic() -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pysptk
    return read_audio(pysptk.util.example_audio_file())  # 16 kHz, 4 s


@pytest.fixture()
def folder(tmp_path: Path, arctic: np.ndarray) -> Path:
    """Eight 0.5-s utterances: four at 16 kHz, four resampled to 8 kHz, one of them stereo."""
    root = tmp_path / "wavs"
    (root / "sub").mkdir(parents=True)
    pieces = np.split(arctic, 8)
    for i, piece in enumerate(pieces):
        if i < 4:
            sf.write(root / f"u{i}.wav", piece, 16000, subtype="PCM_16")
        else:
            low = read_audio_from(piece)
            data = np.stack([low, low], axis=1) if i == 4 else low
            sf.write(root / "sub" / f"u{i}.wav", data, 8000, subtype="PCM_16")
    return root


def read_audio_from(piece: np.ndarray) -> np.ndarray:
    from seqboltz.speech import resample

    return resample(piece, 16000, 8000)


def _setup(path: Path, tmp_path: Path, **kw: object) -> SpeechDataModule:
    dm = SpeechDataModule(
        path=str(path), cache_dir=str(tmp_path / "cache"), held_out_fraction=0.25, **kw
    )
    dm.setup("fit")
    return dm


def test_frames_windows_and_split(folder: Path, tmp_path: Path) -> None:
    dm = _setup(folder, tmp_path, order=3, batch_size=32)
    assert dm.n_features == 30 and dm.frame_rate == 200.0
    train, test = dm.clips("train"), dm.clips("test")
    assert len(train) + len(test) == 8 and len(test) >= 1
    # every utterance is 0.5 s: 101 frames of 5 ms
    assert all(c.shape == (101, 30) for c in train + test)
    assert dm.n_windows("train") == len(train) * (101 - 3)
    # standardised with the training statistics
    allt = np.concatenate(train)
    np.testing.assert_allclose(allt.mean(0)[dm.features.std != 1.0], 0, atol=1e-6)
    # the split follows the hash of the relative path
    for p in dm.utterance_paths("test"):
        assert _held_out(Path(p).relative_to(folder).as_posix(), 0.25)
    for p in dm.utterance_paths("train"):
        assert not _held_out(Path(p).relative_to(folder).as_posix(), 0.25)


def test_windows_never_straddle_utterances(folder: Path, tmp_path: Path) -> None:
    dm = _setup(folder, tmp_path, order=4, batch_size=1000)
    train = [c.astype(np.float32) for c in dm.clips("train")]
    batch = next(iter(dm.train_dataloader()))
    v, hist = batch["v"].numpy(), batch["cond"]["history"].numpy()
    # find each window's utterance and position; its history must be frames t-1..t-4 of it
    for row in range(0, v.shape[0], 37):
        matches = [(i, t) for i, c in enumerate(train) for t in np.where((c == v[row]).all(1))[0]]
        assert matches, "target frame not found"
        i, t = matches[0]
        assert t >= 4
        np.testing.assert_array_equal(hist[row], train[i][t - 4 : t][::-1])


def test_stats_travel_and_features_are_cached(
    folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dm = _setup(folder, tmp_path, order=3)
    stats = dm.stats()
    assert stats["order"] == 3 and stats["kind"] == "world" and len(stats["mean"]) == 30
    from seqboltz.speech import WorldFeatures

    def boom(self: object, wave: np.ndarray) -> np.ndarray:
        raise AssertionError("analysed again instead of read from the cache")

    monkeypatch.setattr(WorldFeatures, "analyze", boom)
    again = _setup(folder, tmp_path, order=3)
    for a, b in zip(dm.clips("train"), again.clips("train"), strict=True):
        np.testing.assert_array_equal(a, b)


def test_max_utterances_and_exclude(folder: Path, tmp_path: Path) -> None:
    assert len(find_wavs(folder)) == 8
    assert len(find_wavs(folder, exclude=("sub/*",))) == 4
    dm = _setup(folder, tmp_path, order=3, max_utterances=3)
    assert len(dm.clips("train")) + len(dm.clips("test")) == 3


def test_flac_recordings_are_found_and_one_name_twice_is_refused(
    folder: Path, tmp_path: Path
) -> None:
    """FLAC (as LibriSpeech-style corpora ship) is read like WAV; ``a.wav`` beside ``a.flac``
    would be one name twice and is refused in one line."""
    wav = sorted((folder / "sub").glob("*.wav"))[0]
    wave, rate = sf.read(str(wav))
    sf.write(str(wav.with_suffix(".flac")), wave, rate, subtype="PCM_16")
    wav.unlink()
    found = find_wavs(folder)
    assert len(found) == 8 and wav.with_suffix(".flac") in found
    np.testing.assert_allclose(sf.read(str(wav.with_suffix(".flac")))[0], wave, atol=1 / 32768)
    sf.write(str(wav), wave, rate)
    with pytest.raises(FileNotFoundError, match="two recordings of one name"):
        find_wavs(folder)


def test_corrupt_wav_names_the_file(folder: Path, tmp_path: Path) -> None:
    (folder / "sub" / "broken.wav").write_bytes(b"RIFF....WAVEjunk")
    with pytest.raises(AudioFileError, match=r"broken\.wav"):
        _setup(folder, tmp_path, order=3)


def test_bad_arguments_and_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="held_out_fraction"):
        SpeechDataModule(path=str(tmp_path), held_out_fraction=1.0)
    with pytest.raises(ValueError, match="order"):
        SpeechDataModule(path=str(tmp_path), order=0)
    with pytest.raises(FileNotFoundError, match=r"no \.wav or \.flac files"):
        SpeechDataModule(path=str(tmp_path)).setup()
    with pytest.raises(FileNotFoundError, match="does not exist"):
        SpeechDataModule(path=str(tmp_path / "nope")).setup()


def test_history_longer_than_every_utterance(folder: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="more than order=200"):
        _setup(folder, tmp_path, order=200)


@pytest.mark.realdata
def test_default_corpus(tmp_path: Path) -> None:
    """The Asterisk prompts: 568 files (10 of them silence, left out by default)."""
    folder = fetch_speech_prompts()
    wavs = find_wavs(folder)
    assert len(wavs) == 568
    assert len(find_wavs(folder, exclude=("silence/*",))) == 558
    assert sf.info(str(wavs[0])).samplerate == 8000
    assert ASTERISK_PROMPTS.version == "1.6.1-1"
    dm = SpeechDataModule(order=3, max_utterances=20)
    dm.setup()
    batch = next(iter(dm.train_dataloader()))
    assert batch["v"].shape == (256, 30) and batch["v"].dtype == torch.float32
