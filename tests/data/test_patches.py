from __future__ import annotations

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view

from seqboltz.data import PatchData, extract_patches, image_patches, sample_images_gray

P = 4
H, W = 40, 24
SPLIT_ROW = 30  # floor(0.75 * 40)


@pytest.fixture(scope="module")
def images() -> list[np.ndarray]:
    rng = np.random.default_rng(7)
    return [rng.random((H, W)), rng.random((H, W))]


def _positions(d: PatchData, split: np.ndarray, images: list[np.ndarray]) -> list[tuple]:
    """(image, row, col) of each standardised patch, found by exact match against all windows."""
    dc = split.astype(np.float64) * d.std + d.mean  # undo standardisation: DC-removed patches
    found = []
    for z in dc:
        best = None
        for k, im in enumerate(images):
            win = sliding_window_view(im, (P, P)).reshape(H - P + 1, W - P + 1, P * P)
            win = win - win.mean(axis=2, keepdims=True)
            dist = np.abs(win - z).max(axis=2)
            r, c = np.unravel_index(np.argmin(dist), dist.shape)
            if dist[r, c] < 1e-4:
                best = (k, int(r), int(c))
        assert best is not None, "patch does not come from any image window"
        found.append(best)
    return found


def test_shapes_dtypes_and_standardisation(images: list[np.ndarray]) -> None:
    d = extract_patches(images, patch_size=P, n_train=400, n_test=60, seed=0, n_val=40)
    assert d.train.shape == (400, 16) and d.val.shape == (40, 16) and d.test.shape == (60, 16)
    assert d.mean.shape == (16,) and d.std.shape == (16,) and d.patch_size == P
    for a in (d.train, d.val, d.test, d.mean, d.std):
        assert a.dtype == np.float32
    np.testing.assert_allclose(d.train.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(d.train.std(axis=0), 1.0, atol=1e-4)
    # each raw patch had its DC removed before standardising
    raw = d.train.astype(np.float64) * d.std + d.mean
    np.testing.assert_allclose(raw.mean(axis=1), 0.0, atol=1e-6)


def test_train_and_test_come_from_disjoint_regions(images: list[np.ndarray]) -> None:
    d = extract_patches(images, patch_size=P, n_train=100, n_test=30, seed=1, n_val=20)
    fit = _positions(d, np.concatenate([d.train, d.val]), images)
    test = _positions(d, d.test, images)
    assert all(r + P <= SPLIT_ROW for _, r, _ in fit), "train/val patch reaches the test rows"
    assert all(r >= SPLIT_ROW for _, r, _ in test), "test patch reaches the train rows"
    assert len(set(fit)) == len(fit), "train and val positions are distinct"
    assert {k for k, _, _ in fit} == {0, 1} and {k for k, _, _ in test} == {0, 1}


def test_deterministic_per_seed(images: list[np.ndarray]) -> None:
    a = extract_patches(images, patch_size=P, n_train=50, n_test=10, seed=5)
    b = extract_patches(images, patch_size=P, n_train=50, n_test=10, seed=5)
    c = extract_patches(images, patch_size=P, n_train=50, n_test=10, seed=6)
    assert np.array_equal(a.train, b.train) and np.array_equal(a.test, b.test)
    assert not np.array_equal(a.train, c.train)
    assert a.val.shape == (0, 16)


def test_rejects_impossible_requests(images: list[np.ndarray]) -> None:
    with pytest.raises(ValueError, match="distinct positions"):
        extract_patches(images, patch_size=P, n_train=5000, n_test=10)
    with pytest.raises(ValueError, match="does not fit"):
        extract_patches(images, patch_size=12, n_train=10, n_test=10)
    with pytest.raises(ValueError, match="2-D"):
        extract_patches([np.zeros((40, 24, 3))], patch_size=P, n_train=10, n_test=10)


def test_image_patches_on_real_photographs() -> None:
    gray = sample_images_gray()
    assert len(gray) == 2 and all(g.shape == (427, 640) for g in gray)
    assert all(0.0 <= g.min() and g.max() <= 1.0 and g.std() > 0.1 for g in gray)
    d = image_patches(patch_size=8, n_train=3000, n_test=500, seed=0)
    assert d.train.shape == (3000, 64) and d.test.shape == (500, 64)
    np.testing.assert_allclose(d.train.mean(axis=0), 0.0, atol=1e-4)
    np.testing.assert_allclose(d.train.std(axis=0), 1.0, atol=1e-3)
    # the test region is other pixels: standardised with train statistics, close but not exact
    assert np.abs(d.test.mean(axis=0)).max() < 0.5
    assert not np.allclose(d.test.std(axis=0), 1.0, atol=1e-3)
    # natural images: neighbouring pixels are strongly correlated
    assert np.corrcoef(d.train[:, 0], d.train[:, 1])[0, 1] > 0.5
