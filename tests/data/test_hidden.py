"""The second CRBM layer's data: layer 1's hidden probabilities over layer 1's own splits."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from scipy.special import expit

from seqboltz.data import CRBMHiddenDataModule, MotionDataModule, sha256_file
from seqboltz.models import BinaryConditionalRBM, ConditionalRBM, ResidualCRBM, save_model
from seqboltz.training import RBMSystem


@pytest.fixture(scope="module")
def layer1(random_walk_clips: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    folder = random_walk_clips
    record = {
        "class_path": "seqboltz.data.MotionDataModule",
        "init_args": {"path": str(folder), "order": 3, "batch_size": 32},
    }
    dm = MotionDataModule(path=str(folder), order=3, batch_size=32)
    dm.setup("fit")
    model = ConditionalRBM(dm.n_features, 6, order=3)
    with torch.no_grad():
        g = torch.Generator().manual_seed(0)
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    return save_model(model, tmp_path_factory.mktemp("layer1") / "layer1.ckpt"), record


def test_windows_hold_layer_1_hidden_probabilities(layer1: tuple[Path, dict]) -> None:
    ckpt, record = layer1
    dm = CRBMHiddenDataModule(ckpt, data=record, order=2, batch_size=16)
    dm.setup("fit")
    inner = MotionDataModule(**record["init_args"])
    inner.setup("fit")
    lower = torch.load(ckpt, weights_only=True)["state_dict"]
    w = lower["energy_model.weight"].double().numpy()
    b = lower["energy_model.hidden_bias"].double().numpy()
    bp = lower["energy_model.past_to_hidden"].double().numpy()
    for split in ("train", "val", "test"):
        clips, hidden = inner.clips(split), dm.clips(split)
        assert len(hidden) == len(clips)
        for clip, h in zip(clips, hidden, strict=True):
            t = np.arange(3, clip.shape[0])
            x = np.stack([clip[t - lag] for lag in (1, 2, 3)], axis=1).reshape(len(t), -1)
            expected = expit(b + x @ bp + clip[t] @ w)
            np.testing.assert_allclose(h, expected, rtol=1e-5, atol=1e-6)
    batch = next(iter(dm.train_dataloader()))
    assert batch["v"].shape == (16, 6) and batch["cond"]["history"].shape == (16, 2, 6)
    assert float(batch["v"].min()) >= 0 and float(batch["v"].max()) <= 1
    assert dm.hparams["checkpoint_sha256"] == sha256_file(ckpt)
    assert dm.stats() == inner.stats()


def test_layer_2_trains_on_them(layer1: tuple[Path, dict]) -> None:
    ckpt, record = layer1
    dm = CRBMHiddenDataModule(ckpt, data=record, order=2, batch_size=32)
    system = RBMSystem(BinaryConditionalRBM(6, 5, order=2), lr=0.05, mean_field_negative=True)
    before = system.energy_model.weight.detach().clone()
    trainer = L.Trainer(
        max_epochs=2,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(system, datamodule=dm)
    after = system.energy_model.weight.detach()
    assert torch.isfinite(after).all() and not torch.equal(before, after)


def test_refuses_another_first_layer(layer1: tuple[Path, dict], tmp_path: Path) -> None:
    ckpt, record = layer1
    with pytest.raises(ValueError, match="not the first layer this was built with"):
        CRBMHiddenDataModule(ckpt, data=record, checkpoint_sha256="0" * 64).setup("fit")
    other = save_model(BinaryConditionalRBM(4, 3, order=2), tmp_path / "wrong.ckpt")
    with pytest.raises(ValueError, match="needs a ConditionalRBM"):
        CRBMHiddenDataModule(other, data=record).setup("fit")
    with pytest.raises(ValueError, match="records no DataModule"):
        CRBMHiddenDataModule(ckpt).setup("fit")
    with pytest.raises(ValueError, match="no such layer-1 checkpoint"):
        CRBMHiddenDataModule(tmp_path / "missing.ckpt", data=record).setup("fit")


def test_a_residual_first_layer_gives_its_residual_hidden_probabilities(
    layer1: tuple[Path, dict], tmp_path: Path
) -> None:
    """A ResidualCRBM layer 1 (no controls, no style), its data record kept in the checkpoint
    (``save_model(..., data=)``): the windows hold ``sigm(b̂ + (M v - â) W)``."""
    _, record = layer1
    inner = MotionDataModule(**record["init_args"])
    inner.setup("fit")
    torch.manual_seed(0)  # the weights' draw, whatever ran before
    lower = ResidualCRBM(inner.n_features, 5, order=3, init_std=0.3).double()
    lower.init_from_sequences(inner.clips("train"))
    ckpt = save_model(lower, tmp_path / "residual.ckpt", data=record)
    dm = CRBMHiddenDataModule(ckpt, order=2, batch_size=16)  # the record from the checkpoint
    dm.setup("fit")
    w, M = lower.weight.detach().numpy(), lower.whiten.numpy()
    a, A = lower.visible_bias.detach().numpy(), lower.autoregressive.detach().numpy()
    b, B = lower.hidden_bias.detach().numpy(), lower.past_to_hidden.detach().numpy()
    clip, h = inner.clips("val")[0], dm.clips("val")[0]
    t = np.arange(3, clip.shape[0])
    x = np.stack([clip[t - lag] for lag in (1, 2, 3)], axis=1).reshape(len(t), -1)
    expected = expit(b + x @ B + (clip[t] @ M.T - a - x @ A) @ w)
    np.testing.assert_allclose(h, expected, atol=1e-3)  # the layer is loaded in float32
    assert 0.05 < float(np.mean((expected > 0.01) & (expected < 0.99)))  # not all saturated
    styled = ResidualCRBM(inner.n_features, 5, order=3, n_style=1)
    other = save_model(styled, tmp_path / "styled.ckpt", data=record)
    with pytest.raises(ValueError, match="without controls or style"):
        CRBMHiddenDataModule(other).setup("fit")
