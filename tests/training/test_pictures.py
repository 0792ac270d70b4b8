"""SavePictures: what a model learned is written as PNG files by the training run itself."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from _trainer import quiet_trainer
from PIL import Image

from seqboltz.data import DigitsDataModule
from seqboltz.models import BernoulliRBM, ConvolutionalRBM
from seqboltz.training import RBMSystem, SavePictures


def _fit(model: torch.nn.Module, callback: SavePictures, tmp_path: Path, epochs: int = 1) -> None:
    trainer = quiet_trainer(
        tmp_path,
        max_epochs=epochs,
        callbacks=[callback],
        limit_train_batches=3,
        limit_val_batches=0,
    )
    trainer.fit(RBMSystem(model, eval_log_z="none"), DigitsDataModule(batch_size=50))


def test_conv_rbm_filters_are_written_at_fit_end(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = ConvolutionalRBM((1, 8, 8), n_filters=6, filter_size=3, pool_size=2)
    callback = SavePictures()
    _fit(model, callback, tmp_path)
    assert [p.name for p in callback.written] == ["filters.png"]
    path = callback.written[0]
    assert path.parent == tmp_path / "pictures"
    picture = np.asarray(Image.open(path))
    # 6 filters of 3×3 in one row of 8 columns (6 used), 1-pixel padding, 6× upscaling
    assert picture.shape == ((3 + 2) * 6, (6 * 4 + 1) * 6)
    assert picture.dtype == np.uint8 and picture.max() > picture.min()
    np.testing.assert_array_equal(picture, model.pictures()["filters"])


def test_every_n_epochs_rewrites_and_models_without_pictures_write_nothing(
    tmp_path: Path,
) -> None:
    callback = SavePictures(every_n_epochs=1)
    _fit(BernoulliRBM(64, 8), callback, tmp_path, epochs=2)
    assert callback.written == []
    assert not (tmp_path / "pictures").exists()


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="every_n_epochs"):
        SavePictures(every_n_epochs=-1)
