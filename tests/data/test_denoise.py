"""MNIST-5k denoising data: seeded per-example corruption and the (y, x) DataModule."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from seqboltz.data import MNISTDenoisingDataModule, corrupt_digits, mnist5k_split


def test_corruption_is_per_example_and_seeded() -> None:
    y = (np.random.default_rng(0).random((6, 784)) < 0.3).astype(np.float32)
    kw = {"corruption": "both", "noise_rate": 0.2, "seed": 3, "stream": 1}
    full = corrupt_digits(y, indices=np.arange(10, 16), **kw)  # type: ignore[arg-type]
    # the same image, alone or in another batch order, gets the same corruption
    alone = corrupt_digits(y[[4]], indices=[14], **kw)  # type: ignore[arg-type]
    np.testing.assert_array_equal(alone[0], full[4])
    rev = corrupt_digits(y[::-1], indices=np.arange(15, 9, -1), **kw)  # type: ignore[arg-type]
    np.testing.assert_array_equal(rev[::-1], full)
    # another seed, stream, index or copy gives another corruption
    for change in ({"seed": 4}, {"stream": 0}, {"copy": 1}):
        other = corrupt_digits(y, indices=np.arange(10, 16), **{**kw, **change})  # type: ignore[arg-type]
        assert not np.array_equal(other, full)
    assert not np.array_equal(corrupt_digits(y[[4]], indices=[13], **kw)[0], full[4])  # type: ignore[arg-type]
    np.testing.assert_array_equal(corrupt_digits(y, noise_rate=0.0), y)
    assert corrupt_digits(y, "salt_pepper").dtype == np.float32


def test_salt_pepper_rate_and_occlusion_blocks() -> None:
    grey = np.full((200, 784), 0.5, dtype=np.float32)  # every replaced pixel shows
    x = corrupt_digits(grey, "salt_pepper", noise_rate=0.3)
    replaced = x != 0.5
    assert abs(float(replaced.mean()) - 0.3) < 0.01
    assert abs(float(x[replaced].mean()) - 0.5) < 0.02  # salt and pepper equally
    ones = np.ones((50, 784), dtype=np.float32)
    x = corrupt_digits(ones, "occlusion", n_blocks=1, block_size=6, fill=0.0)
    for img in x.reshape(50, 28, 28):
        rows, cols = np.nonzero(img == 0)
        assert rows.size == 36 and np.ptp(rows) == 5 and np.ptp(cols) == 5
    x2 = corrupt_digits(ones, "occlusion", n_blocks=3, block_size=4)
    assert np.all((x2 == 0).sum(1) <= 48) and np.all((x2 == 0).sum(1) >= 16)


def test_bad_corruption_arguments() -> None:
    y = np.zeros((2, 784), dtype=np.float32)
    with pytest.raises(ValueError, match="corruption must be one of"):
        corrupt_digits(y, "gaussian")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="noise_rate must be in"):
        corrupt_digits(y, noise_rate=1.5)
    with pytest.raises(ValueError, match="block_size"):
        corrupt_digits(y, "occlusion", block_size=29)
    with pytest.raises(ValueError, match=r"shape \(N, 784\)"):
        corrupt_digits(np.zeros((2, 780), dtype=np.float32))
    with pytest.raises(ValueError, match="val_size"):
        MNISTDenoisingDataModule(val_size=0)
    with pytest.raises(ValueError, match="noise_rate"):
        MNISTDenoisingDataModule(noise_rate=-0.1)


@pytest.mark.realdata
def test_denoising_module(mnist5k_path: Path) -> None:
    cache = str(mnist5k_path.parent)
    dm = MNISTDenoisingDataModule(batch_size=64, corruption="both", cache_dir=cache)
    assert dm.n_features == 784 and dm.n_cond == 784
    dm.setup("fit")
    split = mnist5k_split(cache)
    sizes = {s: dm.pairs(s)[0].shape[0] for s in ("train", "val", "test")}
    assert sizes == {"train": 3500, "val": 500, "test": 1000}
    y_te, x_te = dm.pairs("test")
    # y: the test digits thresholded at ½; x: a corruption of y
    assert torch.equal(y_te, torch.from_numpy((split.test_x > 0.5).astype(np.float32)))
    changed = float((x_te != y_te).float().mean())
    assert 0.03 < changed < 0.2
    assert np.bincount(dm.labels("val")).tolist() == [50] * 10
    # every run sees the same corrupted test set; the corruption seed changes it
    again = MNISTDenoisingDataModule(corruption="both", cache_dir=cache)
    again.setup()
    assert torch.equal(again.pairs("test")[1], x_te)
    other = MNISTDenoisingDataModule(corruption="both", corruption_seed=1, cache_dir=cache)
    other.setup()
    assert not torch.equal(other.pairs("test")[1], x_te)
    # batches are (y, x) pairs of the right shapes
    y_b, x_b = next(iter(dm.train_dataloader()))
    assert y_b.shape == x_b.shape == (64, 784) and y_b.dtype == torch.float32
    y_v, x_v = next(iter(dm.val_dataloader()))
    assert torch.equal(y_v, dm.pairs("val")[0][:64]) and torch.equal(x_v, dm.pairs("val")[1][:64])
    # extra training copies share y and differ in x
    two = MNISTDenoisingDataModule(train_copies=2, cache_dir=cache)
    two.setup()
    y2, x2 = two.pairs("train")
    assert torch.equal(y2[:3500], y2[3500:]) and not torch.equal(x2[:3500], x2[3500:])
