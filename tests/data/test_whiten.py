"""ZCA-whitened patches (``whiten=True``): train statistics only, covariance ≈ I, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from numpy.lib.stride_tricks import sliding_window_view

from seqboltz.data import ImagePatchesDataModule, extract_patches
from seqboltz.data._patches import zca_whitening

P = 4
H, W = 40, 24


@pytest.fixture(scope="module")
def images() -> list[np.ndarray]:
    """Smooth-ish random images: correlated neighbouring pixels, like photographs."""
    rng = np.random.default_rng(3)
    out = []
    for _ in range(2):
        x = rng.random((H + 2, W + 2))
        out.append((x[:-2, :-2] + x[1:-1, 1:-1] + x[2:, 2:] + 0.3 * x[1:-1, :-2])[:H, :W])
    return out


def _window_set(images: list[np.ndarray], lo: int, hi: int) -> np.ndarray:
    """Every raw ``P x P`` window lying in rows ``[lo, hi)`` of any image, ``(K, P*P)``."""
    return np.concatenate(
        [sliding_window_view(im[lo:hi], (P, P)).reshape(-1, P * P) for im in images]
    )


def test_whitened_train_covariance_is_identity(images: list[np.ndarray]) -> None:
    d = extract_patches(images, patch_size=P, n_train=400, n_test=60, n_val=40, whiten=True)
    assert d.whitening is not None and d.dewhitening is not None
    assert d.whitening.shape == d.dewhitening.shape == (16, 16)
    for a in (d.train, d.val, d.test, d.mean, d.std, d.whitening, d.dewhitening):
        assert a.dtype == np.float32
    x = d.train.astype(np.float64)
    np.testing.assert_allclose(x.mean(0), 0.0, atol=1e-5)
    cov = x.T @ x / len(x)
    np.testing.assert_allclose(cov, np.eye(16), atol=2e-3)
    # the raw patches were strongly correlated (else the check would be vacuous)
    raw = x @ d.dewhitening.astype(np.float64)
    corr = np.corrcoef(raw.T)
    assert np.abs(corr - np.eye(16)).max() > 0.5
    # ZCA: symmetric, and the inverse of the de-whitening
    np.testing.assert_allclose(d.whitening, d.whitening.T, atol=1e-4)
    np.testing.assert_allclose(
        d.whitening.astype(np.float64) @ d.dewhitening, np.eye(16), atol=1e-4
    )
    np.testing.assert_array_equal(d.std, np.ones(16, dtype=np.float32))


def test_val_and_test_use_train_statistics(images: list[np.ndarray]) -> None:
    d = extract_patches(images, patch_size=P, n_train=300, n_test=80, n_val=50, whiten=True)
    z_inv = d.dewhitening.astype(np.float64)
    mean = d.mean.astype(np.float64)
    # De-whitened with the train mean and matrix, every split is made of raw image windows
    # (no DC removed) from its own region.
    split_row = int(0.75 * H)
    for split, lo, hi in (("train", 0, split_row), ("val", 0, split_row), ("test", split_row, H)):
        raw = getattr(d, split).astype(np.float64) @ z_inv + mean
        windows = _window_set(images, lo, hi)
        dist = np.abs(raw[:, None, :] - windows[None, :, :]).max(-1).min(1)
        assert dist.max() < 1e-4, split
    # The matrix and mean are those of the train split alone.
    raw_train = d.train.astype(np.float64) @ z_inv + mean
    np.testing.assert_allclose(raw_train.mean(0), mean, atol=1e-5)
    zca, _ = zca_whitening(raw_train - raw_train.mean(0), 1e-4)
    np.testing.assert_allclose(zca, d.whitening, rtol=1e-3, atol=1e-3)
    # The test region's statistics differ (its covariance is not I), so train's were used.
    t = d.test.astype(np.float64)
    assert np.abs(np.cov(t.T) - np.eye(16)).max() > 0.1


def test_epsilon_shrinks_low_variance_directions() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5000, 3)) * np.array([10.0, 1.0, 0.01])
    x -= x.mean(0)
    mean_eig = (x**2).mean(0).sum() / 3  # ≈ 33.7
    for eps, expected in ((1e-8, 1.0), (1e-3, 1e-4 / (1e-4 + 1e-3 * mean_eig))):
        zca, inv = zca_whitening(x, eps)
        var = ((x @ zca) ** 2).mean(0)
        assert var[0] == pytest.approx(1.0, rel=1e-3)
        assert var[2] == pytest.approx(expected, rel=0.05)
        np.testing.assert_allclose(zca @ inv, np.eye(3), atol=1e-8)


def test_rejects_nan_and_bad_epsilon(images: list[np.ndarray]) -> None:
    bad = [images[0].copy(), images[1]]
    bad[0][5, 7] = np.nan
    for whiten in (False, True):
        with pytest.raises(ValueError, match=r"images\[0\] has 1 NaN or infinite pixels"):
            extract_patches(bad, patch_size=P, n_train=50, n_test=10, whiten=whiten)
    with pytest.raises(ValueError, match="whiten_epsilon"):
        extract_patches(images, patch_size=P, n_train=50, n_test=10, whiten=True, whiten_epsilon=0)
    with pytest.raises(ValueError, match="NaN"):
        zca_whitening(np.array([[0.0, 1.0], [np.nan, 0.0], [1.0, 1.0]]))
    with pytest.raises(ValueError, match="N >= 2"):
        zca_whitening(np.zeros((1, 3)))
    with pytest.raises(ValueError, match="whiten_epsilon"):
        ImagePatchesDataModule(whiten=True, whiten_epsilon=-1.0)


def test_default_is_unchanged(images: list[np.ndarray]) -> None:
    d = extract_patches(images, patch_size=P, n_train=100, n_test=20, seed=2)
    assert d.whitening is None and d.dewhitening is None
    raw = d.train.astype(np.float64) * d.std + d.mean
    np.testing.assert_allclose(raw.mean(axis=1), 0.0, atol=1e-6)  # DC removed


def test_datamodule_whitened_stats_travel_with_the_model() -> None:
    dm = ImagePatchesDataModule(
        batch_size=64, patch_size=6, n_train=3000, n_val=200, n_test=300, whiten=True
    )
    dm.setup("fit")
    x = dm.train_tensor.double()
    torch.testing.assert_close(
        x.T @ x / len(x), torch.eye(36, dtype=torch.float64), atol=0.01, rtol=0
    )
    stats = dm.stats()
    assert set(stats) == {"mean", "whitening", "dewhitening"}
    assert (
        len(stats["mean"]) == 36 and len(stats["whitening"]) == len(stats["dewhitening"]) == 36**2
    )
    z = np.asarray(stats["whitening"]).reshape(36, 36)
    z_inv = np.asarray(stats["dewhitening"]).reshape(36, 36)
    np.testing.assert_allclose(z @ z_inv, np.eye(36), atol=1e-3)
    # a raw patch x is fed as (x - mean) Z: the val rows come back as raw photo windows
    raw = dm.val_tensor.double().numpy() @ z_inv + np.asarray(stats["mean"])
    assert raw.min() > -1e-3 and raw.max() < 1 + 1e-3  # intensities in [0, 1], DC kept
    assert np.abs(raw.mean(1)).min() > 1e-3
    assert dm.hparams["whiten"] is True
