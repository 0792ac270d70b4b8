"""``seqboltz synthesize --text``: a tiny text-to-speech model (a residual CRBM started at the
least-squares fit on one ARCTIC utterance with even phone durations), exported by ``seqboltz
export`` from a checkpoint whose data statistics carry the voice, speaks a text with a word
outside the dictionary; the WAV has the predicted durations' length, is finite, not clipped and
not silent; the alignment files agree with it; bad input is one line; no torch is imported."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from seqboltz.cli import main
from seqboltz.runtime import load_voice
from seqboltz.runtime._tts import PEAK
from seqboltz.speech._text import text_to_utterance
from seqboltz.speech._voice import VoiceCard

TEXT = "Press one, then Zorblax."  # "Zorblax" is not in the dictionary: g2p


@pytest.fixture(scope="module")
def tts_model(tiny_tts_artifact: Path) -> Path:
    return tiny_tts_artifact


DELTA_COLUMNS = [c for c in range(30) if c != 26]  # every static but the voicing flag


@pytest.fixture(scope="module")
def tts_delta_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny voice of tests/conftest.py on frames with Δ and Δ² (as TTSDataModule(deltas=
    True) makes them), exported by ``seqboltz export``: its card asks for MLPG."""
    import warnings

    import torch

    from seqboltz.models import ResidualCRBM, save_model
    from seqboltz.speech import WorldFeatures, read_audio
    from seqboltz.speech._duration import DurationModel
    from seqboltz.speech._mlpg import append_deltas
    from seqboltz.speech._text import frame_features
    from seqboltz.speech._voice import voice_stats

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pysptk

    folder, order = tmp_path_factory.mktemp("tts_deltas"), 2
    wf = WorldFeatures(sample_rate=8000)
    raw = wf.analyze(read_audio(pysptk.util.example_audio_file(), 8000))
    assert wf.dim == 30 and wf.vuv_index == 26
    utt = text_to_utterance("And you always want to see it in the superlative degree.")
    n = len(utt.phones)
    durations = np.diff(np.linspace(0, raw.shape[0], n + 1).round()).astype(np.int64)
    wf.fit([raw])
    z = append_deltas(wf.transform(raw), DELTA_COLUMNS)
    controls = frame_features(utt, durations)
    torch.manual_seed(0)
    model = ResidualCRBM(
        z.shape[1], 8, order, n_controls=controls.shape[1], ridge=1.0, start_history_noise=1.0,
        train_linear=False, visible_noise=0.0,
    ).double()  # fmt: skip
    model.init_from_sequences([z], [controls])
    ckpt = save_model(model, folder / "tts.ckpt")
    entry = torch.load(ckpt, weights_only=True)
    stats = voice_stats(wf, order, DurationModel().fit([utt], [durations]), z[:order], None,
                        DELTA_COLUMNS)  # fmt: skip
    entry["seqboltz"]["data"] = {"class_path": "seqboltz.data.TTSDataModule", "stats": stats}
    torch.save(entry, ckpt)
    out = folder / "tts_deltas.onnx"
    argv = ["export", str(ckpt), "--out", str(out), "--gibbs-steps", "2", "--no-data"]
    assert main(argv) == 0
    return out


# Runs in a fresh interpreter, where torch, torchaudio and lightning cannot be imported.
BLOCKED = """
import sys
for name in ("torch", "torchaudio", "lightning"):
    sys.modules[name] = None
from seqboltz.cli import main
status = main(["synthesize", "--model", sys.argv[1], "--text", sys.argv[2], "--out", sys.argv[3]])
loaded = [m for m, v in sys.modules.items() if v is not None and m.split(".")[0] == "torch"]
assert not loaded, loaded
sys.exit(status)
"""


@pytest.mark.slow  # an export (seconds) and a fresh interpreter
@pytest.mark.parametrize("deltas", [False, True], ids=["statics", "deltas-mlpg"])
def test_speak_text_without_torch(
    deltas: bool, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    tts_model = request.getfixturevalue("tts_delta_model" if deltas else "tts_model")
    done = subprocess.run(
        [sys.executable, "-c", BLOCKED, str(tts_model), TEXT, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "zorblax" in done.stdout.lower() and "speech.wav" in done.stdout
    names = {p.name for p in tmp_path.iterdir()}
    assert names == {f"speech{s}" for s in (".wav", ".png", ".lab", ".TextGrid", ".json")}
    record = json.loads((tmp_path / "speech.json").read_text())
    assert [w["source"] for w in record["words"]] == ["lexicon", "lexicon", "lexicon", "g2p"]
    # the length is the duration model's: Σ frames · 5 ms, predicted here independently
    voice = VoiceCard.from_card(load_voice(tts_model).artifact.card)
    predicted = voice.durations.predict(text_to_utterance(TEXT))
    assert [p["frames"] for p in record["phones"]] == predicted.tolist()
    wave, rate = sf.read(tmp_path / "speech.wav")
    assert rate == 8000 and wave.shape == (int(predicted.sum()) * 40,)
    assert np.isfinite(wave).all()
    assert np.abs(wave).max() <= PEAK + 1e-4  # never at ±1: louder speech is scaled down
    speech = wave[int(predicted[0]) * 40 : -int(predicted[-1]) * 40]  # between the edge pauses
    # not silent: above -50 dBFS RMS (the tiny test voice speaks at about -40 dBFS, varying
    # with its few seconds of training; 16-bit silence is below -90)
    assert np.sqrt(np.mean(speech**2)) > 10 ** (-50 / 20), "silent"
    # the alignment: one label per phone, ending with the audio; the TextGrid has the words
    lab = (tmp_path / "speech.lab").read_text().splitlines()
    assert [line.split()[2] for line in lab] == [p["phone"] for p in record["phones"]]
    assert int(lab[-1].split()[1]) == round(len(wave) / rate * 1e7)
    grid = (tmp_path / "speech.TextGrid").read_text()
    assert '"zorblax"' in grid and 'name = "phones"' in grid
    assert (tmp_path / "speech.png").read_bytes()[:4] == b"\x89PNG"
    # the same seed, the same speech, in this process (the noise rule of every artifact)
    again = load_voice(tts_model).speak(TEXT, seed=0)
    assert np.allclose(again.wave, wave, atol=1 / 32768)


def _without_voice(model: Path, out: Path) -> Path:
    """The same graph with a card that has no front end and duration model (a plain speech
    CRBM's)."""
    import onnx

    from seqboltz.export import CARD_KEY

    proto = onnx.load(str(model))
    for prop in proto.metadata_props:
        if prop.key == CARD_KEY:
            card = json.loads(prop.value)
            del card["features"]["front_end"], card["features"]["duration_model"]
            prop.value = json.dumps(card | {"name": "plain"})
    onnx.save(proto, str(out))
    return out


def test_bad_input_is_one_line(
    tts_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["synthesize", "--model", str(tts_model), "--out", str(tmp_path / "x")]
    assert main([*base, "--text", "  "]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "seqboltz synthesize: error: text is empty: give at least one word to speak"
    assert not (tmp_path / "x").exists()  # nothing written
    assert main([*base, "--text", "[beep]"]) == 2
    assert "no speakable words" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main([*base, "--text", "hello", "--count", "2", "--frames", "9"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "--count, --frames are for batches" in err
    with pytest.raises(SystemExit):
        main([*base, "--text", "hello", "--plant-feet"])
    assert "--plant-feet is for batches" in capsys.readouterr().err
    plain = _without_voice(tts_model, tmp_path / "plain.onnx")
    assert main([*base[:2], str(plain), *base[3:], "--text", "hello"]) == 2
    err = capsys.readouterr().err.strip()
    assert "model 'plain' is not a text-to-speech model" in err and "\n" not in err
    with pytest.raises(SystemExit):
        main(["synthesize", "--model", str(tts_model), "--out", str(tmp_path)])
    assert "--count and --frames are required" in capsys.readouterr().err


def test_stream_in_chunks(tts_model: Path) -> None:
    """The streamed chunks hold the same number of samples as speak()'s waveform, start after
    a few frames, and sound like it (log-mel distance well under the spectrogram's spread)."""
    from seqboltz.runtime._tts import AudioChunker, soft_limit
    from seqboltz.speech import log_mel_spectrogram

    tts = load_voice(tts_model)
    whole = tts.speak(TEXT, seed=3)
    plan = tts.plan(TEXT)
    chunker = AudioChunker(tts.voice, plan.n_frames, first_frames=6, min_frames=20)
    frames = tts.frames(plan, seed=3)
    first = chunker.push(frames[: 6 + chunker.lookahead])
    assert len(first) == 1 and first[0].shape[0] == 6 * 40 - chunker.half  # audio early
    rest = chunker.push(frames[6 + chunker.lookahead :]) + chunker.finish()
    chunks = tts.stream(TEXT, seed=3, first_frames=6, min_frames=20)
    streamed = np.concatenate(list(chunks))
    assert np.array_equal(np.concatenate(first + rest), streamed)  # stream() = the chunker
    assert streamed.shape == whole.wave.shape and np.isfinite(streamed).all()
    assert sum(chunker.joins.values()) == len(first + rest) - 1
    assert np.abs(streamed).max() < PEAK
    # the same sound, up to the joins and WORLD's random noise excitation: 16 mel bands
    # averaged over 40 ms (the noise's fine structure differs from call to call)
    a, b = (log_mel_spectrogram(x, 8000, n_mels=16) for x in (streamed, whole.wave / whole.gain))
    n = a.shape[1] // 8 * 8
    a, b = (x[:, :n].reshape(16, -1, 8).mean(axis=2) for x in (a, b))
    assert np.abs(a - b).mean() < 0.3 * np.abs(b - b.mean()).mean()
    # the limiter: unchanged below the knee, never reaching the peak, monotone
    x = np.linspace(-3, 3, 601)
    y = soft_limit(x)
    assert np.array_equal(y[np.abs(x) <= 0.8], x[np.abs(x) <= 0.8])
    assert np.abs(y).max() < PEAK and np.all(np.diff(y) > 0)


def test_deltas_voice_speaks_mlpg_statics(tts_delta_model: Path) -> None:
    """A voice with Δ and Δ² speaks the block-MLPG statics of its frames: speak() and the
    stream's chunker get the same ones (pushed frame by frame), they are within 1e-3 of the
    whole-utterance MLPG, and they are not the model's own static predictions."""
    from seqboltz.runtime._tts import AudioChunker
    from seqboltz.speech._mlpg import block_mlpg, mlpg_frames

    tts = load_voice(tts_delta_model)
    voice = tts.voice
    assert list(voice.delta_columns) == DELTA_COLUMNS and voice.frame_size == 30 + 2 * 29
    card = tts.artifact.card["features"]["deltas"]
    assert card["generation"]["variances"] is None and card["generation"]["block"] == 10
    plan = tts.plan(TEXT)
    frames = tts.frames(plan, seed=0)
    assert frames.shape == (plan.n_frames, 88)
    statics = block_mlpg(frames, DELTA_COLUMNS, None, 10, 10)
    assert np.abs(statics - mlpg_frames(frames, DELTA_COLUMNS)).max() < 1e-3
    assert np.abs(statics - frames[:, :30]).max() > 1e-2  # MLPG moved the statics
    assert np.array_equal(statics[:, 26], frames[:, 26])  # the voicing flag is passed through
    speech = tts.speak(TEXT, seed=0)
    assert np.allclose(speech.frames, voice.features.inverse_transform(statics))
    chunker = AudioChunker(voice, plan.n_frames)
    chunks = [c for f in frames for c in chunker.push(f)] + chunker.finish()
    assert np.array_equal(chunker.frames, statics)
    assert np.concatenate(chunks).shape == speech.wave.shape
    assert np.concatenate(list(tts.stream(TEXT, seed=0))).shape == speech.wave.shape


def test_export_records_the_postfilter_and_speech_uses_it(
    tts_delta_model: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``seqboltz export`` puts the default post-filter on a voice's card, and both speak()
    and the stream vocode with it; ``--postfilter 0`` exports none; a negative one, or one
    for a model that is no voice, is one line and writes nothing."""
    import torch

    from seqboltz.speech import WorldFeatures
    from seqboltz.speech._voice import POSTFILTER_BETA

    ckpt = tts_delta_model.parent / "tts.ckpt"
    tts = load_voice(tts_delta_model)
    assert tts.artifact.card["features"]["postfilter"]["beta"] == POSTFILTER_BETA
    assert tts.voice.postfilter == POSTFILTER_BETA == 0.4
    seen: list[float] = []
    synthesize = WorldFeatures.synthesize

    def spy(self: WorldFeatures, frames: np.ndarray, clip: bool = True, postfilter: float = 0.0):
        seen.append(postfilter)
        return synthesize(self, frames, clip, postfilter)

    monkeypatch.setattr(WorldFeatures, "synthesize", spy)
    tts.speak(TEXT, seed=0)
    n_speak = len(seen)
    assert list(tts.stream(TEXT, seed=0))
    assert n_speak == 1 and len(seen) > 1 and set(seen) == {POSTFILTER_BETA}
    off = tmp_path / "off.onnx"
    assert main(["export", str(ckpt), "--out", str(off), "--no-data", "--postfilter", "0"]) == 0
    assert load_voice(off).voice.postfilter == 0.0
    capsys.readouterr()
    bad = tmp_path / "bad.onnx"
    assert main(["export", str(ckpt), "--out", str(bad), "--no-data", "--postfilter", "-1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "seqboltz export: error: post-filter beta must be finite and >= 0, got -1.0"
    plain = tmp_path / "plain.ckpt"
    entry = torch.load(ckpt, weights_only=True)
    del entry["seqboltz"]["data"]["stats"]["front_end"]
    torch.save(entry, plain)
    assert main(["export", str(plain), "--out", str(bad), "--postfilter", "0.4"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("is not a text-to-speech model: a post-filter applies only to voices")
    assert "\n" not in err and not bad.exists()


def test_export_generation_statics_speaks_the_models_own_statics(
    tts_delta_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``seqboltz export --generation statics``: the card asks for the model's statics as
    they are, speak() and the stream vocode exactly those (no MLPG), and the frames are the
    MLPG voice's; a voice without deltas, or a model that is no voice, refuses it in one line."""
    import torch

    from seqboltz.runtime._tts import AudioChunker
    from seqboltz.speech._voice import STATICS_GENERATION

    ckpt = tts_delta_model.parent / "tts.ckpt"
    out = tmp_path / "statics.onnx"
    argv = ["export", str(ckpt), "--out", str(out), "--gibbs-steps", "2", "--no-data"]
    assert main([*argv, "--generation", "statics"]) == 0
    tts, mlpg = load_voice(out), load_voice(tts_delta_model)
    assert tts.artifact.card["features"]["deltas"]["generation"] == STATICS_GENERATION
    assert not tts.voice.uses_mlpg and mlpg.voice.uses_mlpg and tts.voice.mlpg_solver() is None
    plan = tts.plan(TEXT)
    frames = tts.frames(plan, seed=0)
    assert np.array_equal(frames, mlpg.frames(plan, seed=0))  # the same model, the same frames
    speech = tts.speak(TEXT, seed=0)
    assert np.allclose(speech.frames, tts.voice.features.inverse_transform(frames[:, :30]))
    assert not np.allclose(speech.frames, mlpg.speak(TEXT, seed=0).frames)
    chunker = AudioChunker(tts.voice, plan.n_frames)
    chunks = [c for f in frames for c in chunker.push(f)] + chunker.finish()
    assert np.array_equal(chunker.frames, frames[:, :30])
    assert np.concatenate(chunks).shape == speech.wave.shape
    capsys.readouterr()
    bad = tmp_path / "bad.onnx"
    plain = tmp_path / "plain.ckpt"
    entry = torch.load(ckpt, weights_only=True)
    del entry["seqboltz"]["data"]["stats"]["deltas"]
    torch.save(entry, plain)
    assert main(["export", str(plain), "--out", str(bad), "--generation", "statics"]) == 2
    assert "has no Δ and Δ² frames" in capsys.readouterr().err
    del entry["seqboltz"]["data"]["stats"]["front_end"]
    torch.save(entry, plain)
    assert main(["export", str(plain), "--out", str(bad), "--generation", "mlpg"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("is not a text-to-speech model: a generation mode applies only to voices")
    assert "\n" not in err and not bad.exists()
