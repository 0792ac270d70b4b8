"""ONNX export: the graph's step equals torch's, the card describes the model, bad models
are refused."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from seqboltz.export import CARD_KEY, build_card, export_checkpoint, export_onnx
from seqboltz.export._onnx import input_names
from seqboltz.models import BernoulliRBM, ConditionalRBM, FactoredConditionalRBM, SequenceRBM

D, H, ORDER, K = 6, 9, 2, 4


def make(kind: str) -> SequenceRBM:
    torch.manual_seed(0)
    if kind == "crbm":
        model: SequenceRBM = ConditionalRBM(D, H, ORDER, init_std=0.3)
    elif kind == "crbm_controls":
        model = ConditionalRBM(D, H, ORDER, n_controls=2, init_std=0.3)
    elif kind == "fcrbm":
        model = FactoredConditionalRBM(D, H, ORDER, n_style=2, n_factors=5, init_std=0.3)
    else:
        model = FactoredConditionalRBM(
            D, H, ORDER, n_style=1, n_factors=5, init_std=0.3, gated_autoregressive=False
        )
    return model


def export(model: SequenceRBM, path: Path, k: int = K) -> Path:
    return export_onnx(model, path, build_card(model, name="tiny", gibbs_steps=k), gibbs_steps=k)


@pytest.fixture(scope="module", params=["crbm", "crbm_controls", "fcrbm", "fcrbm_ungated"])
def exported(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    model = make(request.param)
    path = export(model, tmp_path_factory.mktemp("onnx") / f"{request.param}.onnx")
    return model, path


def test_step_equals_torch_step(exported) -> None:
    model, path = exported
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    g = torch.Generator().manual_seed(1)
    for batch in (1, 5):
        feeds = {
            "history": torch.randn(batch, ORDER, D, generator=g, dtype=torch.float64),
            "noise": torch.rand(batch, K, H, generator=g, dtype=torch.float64),
        }
        cond = {"history": feeds["history"]}
        if model.n_style:
            feeds["style"] = cond["style"] = torch.randn(
                batch, model.n_style, generator=g, dtype=torch.float64
            )
        if getattr(model, "n_controls", 0):
            feeds["controls"] = cond["controls"] = torch.randn(
                batch, 2, generator=g, dtype=torch.float64
            )
        got = session.run(None, {k: v.numpy() for k, v in feeds.items()})[0]
        with torch.no_grad():
            expected = model.double().next_frame(cond, feeds["noise"]).numpy()
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-10)
        assert [i.name for i in session.get_inputs()] == input_names(model)


def test_one_self_contained_checked_file(exported) -> None:
    _, path = exported
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no external data
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)
    assert proto.opset_import[0].version == 18
    card = json.loads({p.key: p.value for p in proto.metadata_props}[CARD_KEY])
    assert card["schema_version"] == 1 and card["name"] == "tiny"
    assert card["frame_size"] == D and card["order"] == ORDER and card["gibbs_steps"] == K
    assert card["default_seed_frames"] == np.zeros((ORDER, D)).tolist()


def test_build_card_checks_statistics() -> None:
    model = make("crbm")
    with pytest.raises(ValueError, match="describe 3 values per frame"):
        build_card(
            model, name="x", gibbs_steps=2, data={"stats": {"mean": [0] * 3, "std": [1] * 3}}
        )
    with pytest.raises(ValueError, match="default seed frames must be"):
        build_card(model, name="x", gibbs_steps=2, default_seed_frames=np.zeros((1, D)))


def test_only_sequence_models_export(tmp_path: Path) -> None:
    rbm = BernoulliRBM(4, 3)
    with pytest.raises(TypeError, match="only sequence models"):
        export_onnx(rbm, tmp_path / "x.onnx", {}, gibbs_steps=2)  # type: ignore[arg-type]
    assert not (tmp_path / "x.onnx").exists()
    with pytest.raises(ValueError, match="gibbs_steps"):
        export_onnx(make("crbm"), tmp_path / "y.onnx", {}, gibbs_steps=0)


@pytest.mark.realdata
def test_export_checkpoint_card(tmp_path: Path) -> None:
    """A motion checkpoint exports with its statistics, frame rate and a held-out seed."""
    import lightning as L

    from seqboltz.data import MotionDataModule
    from seqboltz.training import RBMSystem

    dm = MotionDataModule(order=3, batch_size=100)
    model = ConditionalRBM(63, 8, 3)
    trainer = L.Trainer(
        max_epochs=1,
        limit_train_batches=2,
        limit_val_batches=0,
        default_root_dir=tmp_path,
        enable_progress_bar=False,
        enable_model_summary=False,
        logger=False,
    )
    trainer.fit(RBMSystem(model, eval_log_z="none", mean_field_negative=True), datamodule=dm)
    ckpt = tmp_path / "m.ckpt"
    trainer.save_checkpoint(ckpt)
    path = export_checkpoint(ckpt, tmp_path / "motion.onnx", gibbs_steps=3)
    card = json.loads({p.key: p.value for p in onnx.load(str(path)).metadata_props}[CARD_KEY])
    assert card["domain"] == "motion" and card["frame_rate"] == 30.0
    assert card["kind"] == "ConditionalRBM" and card["model"]["n_hidden"] == 8
    assert len(card["features"]["mean"]) == 63 and "skeleton" in card["features"]
    np.testing.assert_allclose(card["default_seed_frames"], dm.clips("test")[0][:3])
    assert len(card["training"]["checkpoint_sha256"]) == 64
    assert card["training"]["data"]["class_path"].endswith("MotionDataModule")
    # the artifact writes BVH files through the card's preprocessing inverse, without torch
    from seqboltz.motion import read_bvh
    from seqboltz.runtime._synthesize import SynthesisJob, run_synthesis

    job = SynthesisJob(model=str(path), out=str(tmp_path / "bvh"), count=2, frames=45, fmt="bvh")
    run_synthesis(job, progress=False)
    clip = read_bvh(tmp_path / "bvh" / "seq_000001.bvh")
    assert clip.frames.shape[0] == 45 and np.isfinite(clip.frames).all()
    assert clip.frame_time == pytest.approx(1 / 30)


@pytest.mark.realdata
def test_speech_checkpoint_synthesizes_wav(tmp_path: Path) -> None:
    import lightning as L
    import soundfile as sf

    from seqboltz.data import SpeechDataModule
    from seqboltz.runtime._synthesize import SynthesisJob, run_synthesis
    from seqboltz.training import RBMSystem

    dm = SpeechDataModule(order=2, max_utterances=12)
    trainer = L.Trainer(
        max_epochs=1,
        limit_train_batches=3,
        limit_val_batches=0,
        default_root_dir=tmp_path,
        enable_progress_bar=False,
        enable_model_summary=False,
        logger=False,
    )
    model = ConditionalRBM(30, 8, 2)
    trainer.fit(RBMSystem(model, eval_log_z="none", mean_field_negative=True), datamodule=dm)
    ckpt = tmp_path / "s.ckpt"
    trainer.save_checkpoint(ckpt)
    path = export_checkpoint(ckpt, tmp_path / "speech.onnx", gibbs_steps=2)
    card = json.loads({p.key: p.value for p in onnx.load(str(path)).metadata_props}[CARD_KEY])
    assert card["domain"] == "speech" and card["frame_rate"] == 200.0
    job = SynthesisJob(model=str(path), out=str(tmp_path / "wav"), count=2, frames=200, fmt="wav")
    run_synthesis(job, progress=False)
    info = sf.info(str(tmp_path / "wav" / "seq_000000.wav"))
    assert info.samplerate == 8000 and abs(info.duration - 1.0) < 0.01
