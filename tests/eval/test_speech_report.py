"""Speech evaluation: the error measures, and a report against both baselines."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from seqboltz.data import SpeechDataModule, TTSDataModule
from seqboltz.eval._speech_report import (
    evaluate_speech_model,
    free_running_mcd,
    speech_errors,
    utterance_scores,
)
from seqboltz.models import ConditionalRBM, FactoredConditionalRBM, ResidualCRBM
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


@pytest.fixture(scope="module")
def voice(voice_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> TTSDataModule:
    """The two-recording voice with Δ and Δ² (real WORLD frames, PocketSphinx alignments)."""
    dm = TTSDataModule(
        path=str(voice_folder), transcripts=str(voice_folder / "text.txt"), order=2,
        deltas=True, cache_dir=str(tmp_path_factory.mktemp("voice_cache")),
    )  # fmt: skip
    dm.setup()
    return dm


def _mcd_gv(scores: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    return scores["mcd_db"], scores["gv_ratio"]


def _rollout_inputs(dm: TTSDataModule) -> tuple[list[np.ndarray], ...]:
    clips = dm.clips("train") + dm.clips("test")
    controls = dm.control_clips("train") + dm.control_clips("test")
    real = [p.frames for s in ("train", "test") for p in dm.prompts(s)]
    return clips, controls, real


def test_utterance_scores_are_zero_for_the_recording_and_exact_for_a_known_offset(
    voice: TTSDataModule,
) -> None:
    """The recording's own standardised frames (statics, Δ, Δ²) score MCD ~ 0 and GV ratio ~ 1:
    MLPG of consistent deltas and the de-standardisation lose nothing. A known offset δ on
    ``c₁`` scores ``10 / ln 10 · √2 · δ`` exactly, and halving the spread of ``c₁…`` a quarter
    of the variance."""
    clips, _, real = _rollout_inputs(voice)
    wf = voice.features
    scores = utterance_scores(clips, real, wf, voice.delta_columns)
    mcd, gv = _mcd_gv(scores)
    assert mcd.shape == gv.shape == (len(clips),)
    np.testing.assert_allclose(scores["vuv_error"], 0.0)
    np.testing.assert_allclose(scores["f0_rmse_hz"], 0.0, atol=1e-6)
    np.testing.assert_array_less(mcd, 1e-6)
    np.testing.assert_allclose(gv, 1.0, atol=1e-6)
    mc = wf.mcep_slice
    shifted = []
    for raw in real:
        out = raw.copy()
        out[:, mc.start + 1] += 0.05
        shifted.append(wf.transform(out))  # statics only: no Δ columns
    mcd = utterance_scores(shifted, real, wf)["mcd_db"]
    np.testing.assert_allclose(mcd, 10 / math.log(10) * math.sqrt(2) * 0.05, rtol=1e-6)
    flat = []
    for raw in real:
        out = raw.copy()
        c = out[:, mc][:, 1:]
        out[:, mc.start + 1 : mc.stop] = c.mean(0) + 0.5 * (c - c.mean(0))
        flat.append(wf.transform(out))
    gv = utterance_scores(flat, real, wf)["gv_ratio"]
    np.testing.assert_allclose(gv, 0.25, rtol=1e-6)
    bad = [c.copy() for c in clips]
    bad[0][5, 3] = math.nan
    mcd, gv = _mcd_gv(utterance_scores(bad, real, wf, voice.delta_columns))
    assert math.isinf(mcd[0]) and math.isnan(gv[0]) and np.isfinite(mcd[1:]).all()
    with pytest.raises(ValueError, match="2 generated utterances for 1 recordings"):
        utterance_scores(clips, real[:1], wf)
    with pytest.raises(ValueError, match="utterance 0"):
        utterance_scores([c[:-1] for c in clips], real, wf)


def test_free_running_mcd_runs_the_model_on_its_own_frames(voice: TTSDataModule) -> None:
    """The least-squares linear start on the real linguistic controls, run free from each
    utterance's first frames, speaks at a few dB and over-smoothed; a model that blows up
    scores inf; the scores are those of the model's own generation path."""
    clips, controls, real = _rollout_inputs(voice)
    linear = ResidualCRBM(
        voice.n_features, 4, order=2, n_controls=voice.n_controls, ridge=1e-3,
        visible_noise=0.0, train_linear=False, start_history_noise=1.0,
        history_to_hidden=False, generation="mean",
    ).double()  # fmt: skip
    linear.init_from_sequences(clips, controls=controls)
    mcd, gv = free_running_mcd(linear, clips, controls, real, voice.features, voice.delta_columns)
    assert np.all((mcd > 1.0) & (mcd < 20.0)) and np.all((gv > 0.01) & (gv < 1.0))
    gen = linear.generate(
        torch.from_numpy(clips[0][None, :2]), clips[0].shape[0] - 2, 1,
        controls=torch.from_numpy(controls[0][None, 2:]), seed=0,
    )  # fmt: skip
    own = np.concatenate([clips[0][:2], gen[0].numpy()])
    expected = utterance_scores([own], real[:1], voice.features, voice.delta_columns)["mcd_db"]
    assert mcd[0] == pytest.approx(expected[0], rel=1e-9)  # padding the batch changes nothing
    with torch.no_grad():
        linear.visible_bias.fill_(math.nan)
    mcd, gv = free_running_mcd(linear, clips, controls, real, voice.features, voice.delta_columns)
    assert np.isinf(mcd).all() and np.isnan(gv).all()
    with pytest.raises(ValueError, match="same number"):
        free_running_mcd(linear, clips, controls[:1], real, voice.features)
    with pytest.raises(ValueError, match="more than order=2 frames"):
        free_running_mcd(linear, [c[:2] for c in clips], controls, real, voice.features)


def test_tts_report_puts_the_model_beside_the_linear_acoustic_model(
    voice: TTSDataModule, tmp_path: Path
) -> None:
    """A residual CRBM with no hidden contribution and the linear start the baseline chose is
    the baseline: both rollouts (torch's generate, numpy's linear model) give the same MCD,
    paired difference 0. The report writes the prompt's WAVs and spectrograms."""
    from seqboltz.eval._speech_report import LINEAR_HISTORY_NOISE, evaluate_tts_model

    diffs = {}
    for noise in LINEAR_HISTORY_NOISE:
        model = ResidualCRBM(
            voice.n_features, 4, order=2, n_controls=voice.n_controls, ridge=1e-3,
            visible_noise=0.0, train_linear=False, start_history_noise=noise,
            history_to_hidden=False, generation="mean",
        ).double()  # fmt: skip
        model.init_from_sequences(voice.clips("train"), controls=voice.control_clips("train"))
        with torch.no_grad():
            model.weight.zero_()
        report = evaluate_tts_model(model, voice, out_dir=tmp_path / f"n{noise:g}", n_boot=200)
        chosen = report.settings["linear_history_noise"]
        assert chosen in LINEAR_HISTORY_NOISE and report.settings["mlpg"] is True
        names = [r["model"] for r in report.rows]
        assert names == ["ResidualCRBM", f"linear acoustic model (history noise {chosen:g})"]
        for row in report.rows:
            assert 1.0 < row["mcd_db"] < 20.0 and 0 <= row["vuv_error"] <= 1
            assert 0 < row["gv_ratio"] < 2 and row["f0_rmse_hz"] >= 0
        diffs[noise] = report.rows[0]["mcd_minus_linear"]
        table = report.table()
        assert "run free, natural durations" in table and "− linear [95 %]" in table
        for label in ("real", "generated", "linear", "spectrograms"):
            assert Path(report.files[label]).stat().st_size > 0
        rate = sf.info(report.files["generated"]).samplerate
        assert rate == voice.features.sample_rate
    same = diffs[chosen]
    assert same == pytest.approx([0.0, 0.0, 0.0], abs=1e-6)
    other = diffs[next(n for n in LINEAR_HISTORY_NOISE if n != chosen)]
    assert abs(other[0]) > 1e-3  # the other start is another model
