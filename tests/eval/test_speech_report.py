"""Speech evaluation: the error measures, and a report against both baselines."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from seqboltz.data import SpeechDataModule
from seqboltz.eval._speech_report import evaluate_speech_model, speech_errors
from seqboltz.models import ConditionalRBM, FactoredConditionalRBM
from seqboltz.speech import WorldFeatures, read_audio, resample


@pytest.fixture(scope="module")
def datamodule(tmp_path_factory: pytest.TempPathFactory) -> SpeechDataModule:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pysptk
    wave = resample(read_audio(pysptk.util.example_audio_file()), 16000, 8000)
    root = tmp_path_factory.mktemp("wavs")
    for i, piece in enumerate(np.split(wave, 4)):
        sf.write(root / f"u{i}.wav", piece, 8000, subtype="PCM_16")
    dm = SpeechDataModule(
        path=str(root), order=2, held_out_fraction=0.3, cache_dir=str(root / "cache")
    )
    dm.setup()
    return dm


def test_speech_errors_zero_for_perfect_prediction(datamodule: SpeechDataModule) -> None:
    frames = np.concatenate(datamodule.clips("test"))
    errors = speech_errors(datamodule.features, frames, frames)
    assert errors["mcd_db"] == 0 and errors["vuv_error"] == 0 and errors["f0_rmse_hz"] == 0


def test_speech_errors_measure_raw_units() -> None:
    wf = WorldFeatures(sample_rate=8000)
    wf.mean, wf.std = np.zeros(30), np.full(30, 2.0)
    target = np.zeros((4, 30))
    target[:, wf.vuv_index] = 0.5  # raw 1.0: voiced
    target[:, wf.lf0_index] = math.log(100.0) / 2
    pred = target.copy()
    pred[:, 1] += 0.5  # raw c1 off by 1.0
    pred[0, wf.vuv_index] = 0.0  # frame 0 unvoiced
    pred[1:, wf.lf0_index] = math.log(110.0) / 2
    e = speech_errors(wf, target, pred)
    assert e["mcd_db"] == pytest.approx(10 / math.log(10) * math.sqrt(2))
    assert e["vuv_error"] == pytest.approx(0.25)
    assert e["f0_rmse_hz"] == pytest.approx(10.0)  # voiced in both: frames 1-3
    with pytest.raises(ValueError, match="differ in shape"):
        speech_errors(wf, target, pred[:3])


def test_report_against_baselines(
    datamodule: SpeechDataModule, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    torch.manual_seed(0)
    model = ConditionalRBM(datamodule.n_features, 16, order=2)
    report = evaluate_speech_model(
        model, datamodule, seconds=0.5, gibbs_steps=2, seed=0, out_dir=tmp_path
    )
    assert [r["model"] for r in report.rows] == [
        "ConditionalRBM",
        "linear AR (order 2)",
        "repeat last frame",
    ]
    assert "one-step MCD (dB)" in report.table()
    for row in report.rows:
        assert row["mcd_db"] > 0 and np.isfinite(row["mse"])
    assert sf.info(report.files["generated"]).frames == 4000
    assert Path(report.files["spectrograms"]).stat().st_size > 1000
    # one-step predictions do not depend on how windows are chunked: same seed, same numbers
    import seqboltz.eval._speech_report as mod

    monkeypatch.setattr(mod, "_CHUNK", 7)
    again = evaluate_speech_model(model, datamodule, seconds=0.5, gibbs_steps=2, seed=0)
    assert again.rows == report.rows
    other = evaluate_speech_model(model, datamodule, seconds=0.5, gibbs_steps=2, seed=1)
    assert other.rows[0] != report.rows[0]


def test_styled_models_refused(datamodule: SpeechDataModule) -> None:
    model = FactoredConditionalRBM(datamodule.n_features, 8, order=2, n_style=1, n_factors=4)
    with pytest.raises(ValueError, match="without style"):
        evaluate_speech_model(model, datamodule)


def test_log_mel_features_report_log_spectral_distance(
    datamodule: SpeechDataModule, tmp_path: Path
) -> None:
    folder = Path(datamodule.path)  # the same four utterances, as log-mel frames
    dm = SpeechDataModule(
        path=str(folder),
        order=2,
        features="logmel",
        n_mels=24,
        held_out_fraction=0.3,
        cache_dir=str(tmp_path / "cache"),
    )
    dm.setup()
    assert dm.n_features == 24 and dm.stats()["kind"] == "logmel"
    model = ConditionalRBM(24, 8, order=2)
    report = evaluate_speech_model(model, dm, seconds=0.25, gibbs_steps=2, out_dir=tmp_path)
    assert "log-spectral distance" in report.table()
    assert all(r["lsd_db"] > 0 and "mcd_db" not in r for r in report.rows)
    assert sf.info(report.files["generated"]).samplerate == 8000
