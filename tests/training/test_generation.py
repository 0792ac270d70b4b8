"""Selection by generation: the score, and the callback inside a real fit."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch

from seqboltz.data import MotionDataModule
from seqboltz.models import ConditionalRBM
from seqboltz.motion import Joint, MotionClip, Skeleton, write_bvh
from seqboltz.training import RBMSystem
from seqboltz.training._generation import (
    DIVERGED_SCORE,
    GenerationMetric,
    SpeechGenerationMetric,
    drift_penalty,
    generation_score,
)


def _waves(batch: int, frames: int, dims: int, seed: int, scale: float = 1.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(frames)[None, :, None]
    freq = rng.uniform(0.02, 0.1, size=(batch, 1, dims))
    return scale * np.sin(2 * np.pi * freq * t + rng.uniform(0, 6, size=(batch, 1, dims)))


def test_score_ranks_close_frozen_and_exploded_generations() -> None:
    real = _waves(4, 200, 3, seed=0)
    same = generation_score(real, real)[0]
    shifted = generation_score(real, _waves(4, 200, 3, seed=1))[0]
    frozen, parts = generation_score(real, real * 0.01)
    assert same == pytest.approx(0.0, abs=1e-12)
    assert shifted > same
    # same spectra, 1 % of the amplitude: NPSS cannot see it, the freezing penalty does
    assert parts["npss"] == pytest.approx(0.0, abs=1e-9) and frozen > np.log(50)
    assert generation_score(real, real * 10)[0] == DIVERGED_SCORE
    bad = real.copy()
    bad[0, 5, 0] = np.nan
    assert generation_score(real, bad)[0] == DIVERGED_SCORE
    with pytest.raises(ValueError, match=r"must both be \(B, T, D\)"):
        generation_score(real, real[:, :10])


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rot = ("Zrotation", "Xrotation", "Yrotation")
    sk = Skeleton(
        (
            Joint("Hips", -1, (0, 0, 0), ("Xposition", "Yposition", "Zposition", *rot)),
            Joint("Leg", 0, (4, -2, 0), rot),
            Joint("Shin", 1, (0, -20, 0), rot, (0, -20, 0)),
        )
    )
    d = tmp_path_factory.mktemp("clips")
    t = np.arange(1200)[:, None] / 120
    for i in range(4):
        phase = np.random.default_rng(i).uniform(0, 6, size=(1, sk.n_channels))
        frames = 20 * np.sin(2 * np.pi * 1.1 * t + phase)
        frames[:, :3] = np.cumsum(np.ones((1200, 3)) * 0.1, axis=0)
        write_bvh(d / f"c{i}.bvh", MotionClip(sk, frames, 1 / 120, f"c{i}"))
    return d


def test_a_fit_whose_every_generation_diverged_says_so(folder: Path) -> None:
    """A fit can end with exit status 0 and every validation generation exploded (what the
    ReActIdle clips first did); the metric then says the checkpoints are not usable."""
    dm = MotionDataModule(path=str(folder), order=3, batch_size=50, held_out_fraction=0.3)
    dm.setup("fit")
    model = ConditionalRBM(dm.n_features, 8, order=3)
    with torch.no_grad():  # history weights that double the frame every step
        model.autoregressive.copy_(
            torch.cat(
                [2 * torch.eye(dm.n_features)] + [torch.zeros(dm.n_features, dm.n_features)] * 2
            )
        )
    system = RBMSystem(model, lr=1e-9, mean_field_negative=True)
    metric = GenerationMetric(frames=40, gibbs_steps=1)
    trainer = L.Trainer(
        max_epochs=1,
        logger=False,
        callbacks=[metric],
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        num_sanity_val_steps=0,
    )
    with pytest.warns(UserWarning, match="every validation generation diverged"):
        trainer.fit(system, datamodule=dm)
    assert metric.best_score == DIVERGED_SCORE


def test_callback_logs_scores_that_checkpointing_can_monitor(folder: Path, tmp_path: Path) -> None:
    dm = MotionDataModule(path=str(folder), order=3, batch_size=50, held_out_fraction=0.3)
    dm.setup("fit")
    system = RBMSystem(ConditionalRBM(dm.n_features, 8, order=3), lr=0.01, mean_field_negative=True)
    metric = GenerationMetric(frames=40, gibbs_steps=2)
    ckpt = L.pytorch.callbacks.ModelCheckpoint(dirpath=tmp_path, monitor="val/gen_score")
    trainer = L.Trainer(
        max_epochs=2,
        logger=False,
        callbacks=[metric, ckpt],
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    trainer.fit(system, datamodule=dm)
    logged = trainer.callback_metrics
    assert {"val/gen_score", "val/gen_npss", "val/gen_score_ar"} <= set(logged)
    assert 0.0 <= float(logged["val/gen_score"]) <= DIVERGED_SCORE
    assert float(logged["val/gen_score_ar"]) < DIVERGED_SCORE
    assert ckpt.best_model_score is not None
    assert float(ckpt.best_model_score) == pytest.approx(float(logged["val/gen_score"]))
    # the score is a function of the model: recomputing it gives the same number
    again = L.Trainer(
        logger=False,
        callbacks=[GenerationMetric(frames=40, gibbs_steps=2)],
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    again.validate(system, datamodule=dm, verbose=False)
    assert float(again.callback_metrics["val/gen_score"]) == pytest.approx(
        float(logged["val/gen_score"]), rel=1e-6
    )
    assert torch.isfinite(system.energy_model.weight).all()
    # run on to a horizon: the same first frames, plus the drift of the last 40
    longer = L.Trainer(
        logger=False,
        callbacks=[GenerationMetric(frames=40, gibbs_steps=2, horizon=160)],
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    longer.validate(system, datamodule=dm, verbose=False)
    drift = float(longer.callback_metrics["val/gen_drift"])
    assert drift >= 0.0
    assert float(longer.callback_metrics["val/gen_score"]) == pytest.approx(
        min(float(logged["val/gen_score"]) + drift, DIVERGED_SCORE), rel=1e-6
    )


def test_realism_mode_scores_the_reports_measures_against_ar(folder: Path) -> None:
    """``measures="realism"``: the score is the mean log ratio to AR of the report's measures
    (recomputed here from the same generations), plus the drift penalty."""
    from seqboltz.eval._sequence_report import (
        SplitView,
        motion_reference,
        score_generations,
    )

    dm = MotionDataModule(path=str(folder), order=3, batch_size=50, held_out_fraction=0.3)
    dm.setup("fit")
    torch.manual_seed(0)
    system = RBMSystem(ConditionalRBM(dm.n_features, 8, order=3), lr=0.01, mean_field_negative=True)
    trainer = L.Trainer(
        logger=False,
        callbacks=[GenerationMetric(frames=40, gibbs_steps=2, measures="realism", seeds=2)],
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.validate(system, datamodule=dm, verbose=False)
    logged = {k: float(v) for k, v in trainer.callback_metrics.items()}
    # this skeleton has no named feet: NPSS, PSKL and the Fréchet distance are scored
    assert {"val/gen_npss", "val/gen_pskl", "val/gen_frechet", "val/gen_frechet_ar"} <= set(logged)
    assert "val/gen_foot_skating" not in logged
    view = SplitView(dm, "val")
    ref = motion_reference(view)
    starts = np.stack([c[:3] for c in ref.test])
    model = system.energy_model
    total = max(40, ref.window)  # at least one spectral window
    start = torch.from_numpy(starts).float()
    gens = np.stack([model.generate(start, total, 2, seed=s).double().numpy() for s in (0, 1)])
    row = score_generations("m", gens, ref, n_boot=1)
    assert logged["val/gen_frechet"] == pytest.approx(row["frechet"], rel=1e-4)
    ratio = {
        k: logged[f"val/gen_{k}"] / logged[f"val/gen_{k}_ar"] for k in ("npss", "pskl", "frechet")
    }
    expected = float(np.mean(np.log(list(ratio.values())))) + logged["val/gen_drift"]
    assert logged["val/gen_score"] == pytest.approx(expected, rel=1e-4, abs=1e-6)


def test_realism_score_is_the_mean_log_ratio_and_refuses_blown_up_rows() -> None:
    from seqboltz.eval._sequence_report import realism_score

    base = {"npss": 2.0, "pskl": 0.5, "frechet": 100.0, "foot_skating": 10.0}
    better = {"npss": 1.0, "pskl": 0.5, "frechet": 100.0, "foot_skating": float("nan")}
    # NaN skating is left out: log(1/2) over the three measures both rows have
    assert realism_score(better, base) == pytest.approx(np.log(0.5) / 3)
    assert realism_score(base, base) == 0.0
    assert realism_score({**base, "exploded": True}, base) == float("inf")
    assert realism_score({}, base) == float("inf")


def test_drift_penalty_is_zero_inside_the_band_and_grows_outside() -> None:
    real = _waves(4, 400, 3, seed=0).reshape(-1, 3)
    assert drift_penalty(real, real) == 0.0
    assert drift_penalty(real, real * 1.9) == 0.0  # within 0.5–2×
    assert drift_penalty(real, real * 4) == pytest.approx(np.log(2))
    assert drift_penalty(real, real * 0.125) == pytest.approx(np.log(4))
    partly = real.copy()
    partly[:, 0] *= 8  # one dimension of three drifted: log 8 - log 2 over 3
    assert drift_penalty(real, partly) == pytest.approx(np.log(4) / 3)
    bad = real.copy()
    bad[3, 1] = np.inf
    assert drift_penalty(real, bad) == np.inf


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="frames >= 8"):
        GenerationMetric(frames=2)
    with pytest.raises(ValueError, match="horizon >= 0"):
        GenerationMetric(horizon=-1)
    with pytest.raises(ValueError, match="seeds >= 1"):
        GenerationMetric(seeds=0)
    with pytest.raises(ValueError, match="measures must be"):
        GenerationMetric(measures="fid")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_utterances >= 1"):
        SpeechGenerationMetric(max_utterances=0)


def test_speech_callback_logs_the_free_running_mcd_of_the_validation_voice(
    voice_folder: Path, folder: Path, tmp_path: Path
) -> None:
    """Inside a real fit on a two-recording voice: ``val/mcd_db`` is the mean free-running
    MCD of the validation utterances (MLPG over the data's Δ and Δ²), so ModelCheckpoint can
    monitor it; a motion DataModule is refused in one line."""
    from _trainer import quiet_trainer

    from seqboltz.data import TTSDataModule
    from seqboltz.eval._speech_report import free_running_mcd
    from seqboltz.models import ResidualCRBM

    dm = TTSDataModule(
        path=str(voice_folder), transcripts=str(voice_folder / "text.txt"), order=2,
        deltas=True, batch_size=64, cache_dir=str(tmp_path / "cache"),
    )  # fmt: skip
    dm.setup("fit")
    torch.manual_seed(0)
    model = ResidualCRBM(
        dm.n_features, 8, order=2, n_controls=dm.n_controls, visible_noise=0.0,
        train_linear=False, start_history_noise=1.0, history_to_hidden=False, generation="mean",
    )  # fmt: skip
    callback = SpeechGenerationMetric()
    trainer = quiet_trainer(
        tmp_path, max_epochs=1, limit_train_batches=2, limit_val_batches=1, log_every_n_steps=1
    )
    trainer.callbacks.append(callback)
    trainer.fit(RBMSystem(model, eval_log_z="none"), datamodule=dm)
    logged = float(trainer.callback_metrics["val/mcd_db"])
    mcd, gv = free_running_mcd(
        model.double().eval(), dm.clips("val"), dm.control_clips("val"),
        [p.frames for p in dm.prompts("val")], dm.features, dm.delta_columns,
    )  # fmt: skip
    assert 1.0 < logged < 20.0 and logged == pytest.approx(float(mcd.mean()), rel=1e-4)
    assert float(trainer.callback_metrics["val/gv_ratio"]) == pytest.approx(gv.mean(), rel=1e-4)
    clips = MotionDataModule(path=str(folder), order=2, held_out_fraction=0.3)
    clips.setup("fit")
    motion = quiet_trainer(tmp_path, max_epochs=1, limit_train_batches=1, limit_val_batches=1)
    motion.callbacks.append(SpeechGenerationMetric())
    with pytest.raises(ValueError, match="SpeechGenerationMetric needs"):
        motion.fit(
            RBMSystem(ConditionalRBM(clips.n_features, 8, order=2), eval_log_z="none"),
            datamodule=clips,
        )
