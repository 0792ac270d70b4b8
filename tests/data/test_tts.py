"""The TTS DataModule: transcripts, native sample rate, alignment, whole-prompt split, batches
with linguistic controls."""

from __future__ import annotations

import gzip
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from seqboltz.data._tts import (
    TTSDataModule,
    _held_out_text,
    fetch_transcripts,
    read_transcripts,
)
from seqboltz.speech import read_audio, resample, write_wav
from seqboltz.speech._text import PAUSE, frame_feature_names


@pytest.fixture(scope="module")
def arctic() -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pysptk

    return read_audio(pysptk.util.example_audio_file())


@pytest.fixture(scope="module")
def folder(voice_folder: Path) -> Path:
    """Two 16-kHz recordings with transcripts, one without, and a transcript file."""
    return voice_folder


def test_read_transcripts(tmp_path: Path) -> None:
    path = tmp_path / "t.txt.gz"
    with gzip.open(path, "wt") as f:
        f.write("; comment\n\ndigits/1: one\nhello: Hello: world.\n")
    assert read_transcripts(path) == {"digits/1": "one", "hello": "Hello: world."}
    bad = tmp_path / "bad.txt"
    bad.write_text("a: b\nno colon here\n")
    with pytest.raises(ValueError, match=r"bad.txt:2: expected 'name: text'"):
        read_transcripts(bad)
    bad.write_text("a: b\na: c\n")
    with pytest.raises(ValueError, match="second transcript"):
        read_transcripts(bad)


def test_split_is_by_text() -> None:
    # the same words, however written, land on the same side
    for fraction in (0.1, 0.5):
        assert _held_out_text("Press 1.", fraction) == _held_out_text("press one", fraction)
    sides = {_held_out_text(f"prompt number {i}", 0.3) for i in range(40)}
    assert sides == {True, False}


@pytest.mark.slow
def test_folder_datamodule(folder: Path, tmp_path: Path) -> None:
    dm = TTSDataModule(
        path=str(folder), transcripts=str(folder / "text.txt"), order=2, batch_size=16,
        cache_dir=str(tmp_path),
    )  # fmt: skip
    dm.setup()
    assert dm.skipped == {"untranscribed": "no transcript"}
    assert dm.features is not None and dm.features.sample_rate == 16000  # the data's rate
    names = {p.name for s in ("train", "test") for p in dm.prompts(s)}
    assert names == {"a0007", "sub/a0007_part"}
    prompt = dm.prompts("train")[0] if dm.prompts("train") else dm.prompts("test")[0]
    controls = prompt.controls()
    assert controls.shape == (prompt.frames.shape[0], dm.n_controls)
    assert dm.n_controls == len(frame_feature_names())
    assert prompt.durations.sum() == prompt.frames.shape[0]
    assert prompt.alignment.utterance.symbols[0] == PAUSE
    batch = next(iter(dm.train_dataloader()))
    assert set(batch["cond"]) == {"history", "controls"}
    assert batch["v"].shape == (16, dm.n_features) and batch["v"].dtype == torch.float32
    assert batch["cond"]["history"].shape == (16, 2, dm.n_features)
    assert batch["cond"]["controls"].shape == (16, dm.n_controls)
    # histories a model generated itself replace the real ones (targets stay real)
    own = [np.full_like(c, 7.0) for c in dm.clips("train")]
    dm.set_train_history(own, prob=1.0)
    batch_own = next(iter(dm.train_dataloader()))
    assert bool((batch_own["cond"]["history"] == 7.0).all())
    assert not bool((batch_own["v"] == 7.0).any())
    with pytest.raises(ValueError, match="training clips' shapes"):
        dm.set_train_history(own[:0])
    dm.set_train_history(None)
    assert not bool((next(iter(dm.train_dataloader()))["cond"]["history"] == 7.0).any())
    stats = dm.stats()
    assert stats["front_end"]["version"] and stats["aligner"]["aligner"] == "pocketsphinx"
    assert stats["sample_rate"] == 16000 and stats["n_controls"] == dm.n_controls
    # the sentence-internal pause kinds the training prompts hold, for the voice's plan
    heard = {p.pause for q in dm.prompts("train") for p in q.alignment.utterance.phones}
    assert stats["pauses_seen"] == sorted(heard & {1, 2})
    from seqboltz.speech._duration import DurationModel

    durations = DurationModel.from_dict(stats["duration_model"])
    assert durations.predict(prompt.alignment.utterance).min() >= 1
    # a second DataModule reads the cached features and alignments: the same data
    again = TTSDataModule(
        path=str(folder), transcripts=str(folder / "text.txt"), order=2, cache_dir=str(tmp_path)
    )
    again.setup()
    torch.testing.assert_close(again.train_tensor, dm.train_tensor)
    # frames with dynamic features for MLPG: the statics first, then Δ and Δ² of all but vuv
    dyn = TTSDataModule(
        path=str(folder), transcripts=str(folder / "text.txt"), order=2, deltas=True,
        cache_dir=str(tmp_path),
    )  # fmt: skip
    dyn.setup()
    d = dm.n_features
    assert dyn.n_features == d + 2 * (d - 1) and len(dyn.delta_columns) == d - 1
    for z, z0 in zip(dyn.clips("train"), dm.clips("train"), strict=True):
        np.testing.assert_allclose(z[:, :d], z0)
        np.testing.assert_allclose(z[1:-1, d], 0.5 * (z0[2:, 0] - z0[:-2, 0]))
    assert dyn.stats()["deltas"]["columns"] == dyn.delta_columns


def test_mixed_rates_are_an_error(folder: Path, tmp_path: Path, arctic: np.ndarray) -> None:
    mixed = tmp_path / "mixed"
    write_wav(mixed / "a.wav", arctic, 16000)
    write_wav(mixed / "b.wav", resample(arctic, 16000, 8000), 8000)
    (mixed / "t.txt").write_text("a: hello\nb: hello again\n")
    dm = TTSDataModule(path=str(mixed), transcripts=str(mixed / "t.txt"), cache_dir=str(tmp_path))
    with pytest.raises(ValueError, match=r"different sample rates \(a: 16000 Hz, b: 8000 Hz\)"):
        dm.setup()
    dm = TTSDataModule(
        path=str(folder), transcripts=str(folder / "text.txt"), sample_rate=8000,
        cache_dir=str(tmp_path),
    )  # fmt: skip
    with pytest.raises(ValueError, match="sample_rate=8000 but the recordings are at 16000 Hz"):
        dm.setup()


def test_arguments() -> None:
    with pytest.raises(ValueError, match="transcripts"):
        TTSDataModule(path="/somewhere")
    with pytest.raises(ValueError, match="held_out_fraction"):
        TTSDataModule(held_out_fraction=1.0)
    with pytest.raises(ValueError, match="val_fraction"):
        TTSDataModule(held_out_fraction=0.5, val_fraction=0.5)


@pytest.mark.realdata
@pytest.mark.slow
def test_asterisk_prompts() -> None:
    texts = read_transcripts(fetch_transcripts())
    assert len(texts) == 569 and texts["agent-loggedoff"] == "Agent Logged off."
    dm = TTSDataModule(
        include=("agent-*", "auth-*", "beep", "digits/1*"), batch_size=32, val_fraction=0.3
    )
    dm.setup()
    assert dm.skipped["beep"].startswith("no speech")
    assert dm.features is not None and dm.features.sample_rate == 8000
    train, val, test = dm.prompts("train"), dm.prompts("val"), dm.prompts("test")
    assert train and val and test
    # whole prompts: no text on two sides; validation is its own set (model selection)
    texts = [{p.text.lower() for p in side} for side in (train, val, test)]
    assert not texts[0] & texts[1] and not texts[0] & texts[2] and not texts[1] & texts[2]
    for p in train + test:
        assert p.durations.sum() == p.frames.shape[0] and p.durations.min() >= 1
    batch = next(iter(dm.val_dataloader()))
    assert batch["cond"]["controls"].shape == (32, dm.n_controls)


def test_alignment_failures_are_remembered(
    folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from seqboltz.speech._align import AlignmentError, ForcedAligner

    calls: list[str] = []

    def fail(self: ForcedAligner, wave: np.ndarray, rate: int, text: str) -> None:
        calls.append(text)
        raise AlignmentError("PocketSphinx found no alignment")

    monkeypatch.setattr(ForcedAligner, "align", fail)
    for _ in range(2):
        dm = TTSDataModule(
            path=str(folder), transcripts=str(folder / "text.txt"), cache_dir=str(tmp_path)
        )
        with pytest.raises(ValueError, match="no train prompt"):
            dm.setup()
        assert dm.skipped["a0007"] == "alignment failed (PocketSphinx found no alignment)"
    assert len(calls) == 2  # two prompts, aligned (and failed) once each
