"""Tests of :class:`~seqboltz.data.YeastDataModule` (the Yeast multi-label set, fetched pinned)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from seqboltz.data import YEAST, YeastDataModule, default_cache_dir, load_yeast


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="val_size"):
        YeastDataModule(val_size=1500)
    with pytest.raises(ValueError, match="batch_size"):
        YeastDataModule(batch_size=0)
    dm = YeastDataModule()
    with pytest.raises(RuntimeError, match="after setup"):
        dm.pairs("train")
    assert YEAST.requirement == "river==0.26.1" and YEAST.dist == "wheel"


@pytest.mark.realdata
def test_yeast_splits_and_standardisation() -> None:
    x, y = load_yeast(default_cache_dir())
    assert x.shape == (2417, 103) and y.shape == (2417, 14)
    assert np.isin(y, (0, 1)).all() and y.sum(1).mean() == pytest.approx(4.237, abs=0.01)
    dm = YeastDataModule(val_size=300, split_seed=0, cache_dir=str(default_cache_dir()))
    dm.prepare_data()
    dm.setup()
    (y_tr, x_tr), (y_va, x_va), (y_te, x_te) = (dm.pairs(s) for s in ("train", "val", "test"))
    assert (len(y_tr), len(y_va), len(y_te)) == (1200, 300, 917)
    assert (dm.n_features, dm.n_cond) == (14, 103)
    torch.testing.assert_close(x_tr.mean(0), torch.zeros(103), atol=1e-5, rtol=0)
    torch.testing.assert_close(x_tr.std(0, unbiased=False), torch.ones(103), atol=1e-4, rtol=0)
    # test = the last 917 rows as shipped, standardised with the training statistics
    mean, std = (np.array(dm.stats()[k], np.float32) for k in ("mean", "std"))
    np.testing.assert_allclose(x_te.numpy(), (x[1500:] - mean) / std, atol=1e-5)
    np.testing.assert_array_equal(y_te.numpy(), y[1500:])
    # train and val partition the first 1500 rows
    rows = {tuple(r) for r in np.concatenate([x_tr.numpy(), x_va.numpy()]) * std + mean}
    assert len(rows) == 1500
    batch = next(iter(dm.val_dataloader()))
    assert batch[0].shape == (50, 14) and batch[1].shape == (50, 103)
    other = YeastDataModule(split_seed=1, cache_dir=str(default_cache_dir()))
    other.setup()
    assert not torch.equal(other.pairs("val")[0], y_va)
