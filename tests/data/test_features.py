"""PooledFeaturesDataModule: a trained conv layer's pooling probabilities as the next one's data."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from seqboltz.data import DigitsDataModule, PooledFeaturesDataModule
from seqboltz.models import BernoulliRBM, ConvolutionalRBM, save_model


def test_features_are_the_lower_layers_pooling_probabilities(tmp_path: Path) -> None:
    torch.manual_seed(0)
    lower = ConvolutionalRBM((1, 8, 8), n_filters=3, filter_size=3, pool_size=2, init_std=0.5)
    dm = PooledFeaturesDataModule(save_model(lower, tmp_path / "l1.ckpt"), DigitsDataModule(), 20)
    dm.setup("fit")
    inner = dm.data
    assert isinstance(inner, DigitsDataModule)
    assert dm.n_features == 3 * 3 * 3 and dm.visible_kind == "bernoulli"
    for mine, theirs in (
        (dm.train_tensor, inner.train_tensor),
        (dm.test_tensor, inner.test_tensor),
    ):
        with torch.no_grad():
            expected = lower.pooling_probs(theirs).flatten(1)
        torch.testing.assert_close(mine, expected)
    assert next(iter(dm.train_dataloader())).shape == (20, 27)
    assert len(dm.hparams["checkpoint_sha256"]) == 64
    upper = ConvolutionalRBM((3, 3, 3), n_filters=2, filter_size=2, pool_size=2)
    assert set(dm.pictures(upper)) == {"filters_layer2", "samples"}


def test_bad_input(tmp_path: Path) -> None:
    rbm = save_model(BernoulliRBM(64, 4), tmp_path / "rbm.ckpt")
    with pytest.raises(ValueError, match="holds a BernoulliRBM; greedy convolutional training"):
        PooledFeaturesDataModule(rbm, DigitsDataModule()).setup("fit")
    wrong = ConvolutionalRBM((1, 12, 12), n_filters=2, filter_size=3, pool_size=2)
    dm = PooledFeaturesDataModule(save_model(wrong, tmp_path / "w.ckpt"), DigitsDataModule())
    with pytest.raises(ValueError, match="takes 144 values per image but DigitsDataModule has 64"):
        dm.setup("fit")
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        PooledFeaturesDataModule(tmp_path / "missing.ckpt", DigitsDataModule()).setup("fit")
    with pytest.raises(TypeError, match="in-memory seqboltz DataModule"):
        PooledFeaturesDataModule(rbm, object())  # type: ignore[arg-type]
