from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

import seqboltz.data._mnist as mnist_mod
from seqboltz.data import (
    binarize,
    load_digits_probs,
    load_mnist5k,
    mnist5k_split,
    stratified_split,
)

# ---- stratified_split (synthetic labels) --------------------------------------------------


def test_stratified_split_proportions_disjoint_cover() -> None:
    y = np.repeat(np.arange(10), 500)
    train, test = stratified_split(y, 1000, seed=0)
    assert train.dtype == np.int64 and test.dtype == np.int64
    assert train.shape == (4000,) and test.shape == (1000,)
    assert np.bincount(y[test]).tolist() == [100] * 10
    assert np.bincount(y[train]).tolist() == [400] * 10
    assert np.intersect1d(train, test).size == 0
    assert np.array_equal(np.sort(np.concatenate([train, test])), np.arange(5000))
    # shuffled, not in label order
    assert not np.all(np.diff(y[test]) >= 0)


def test_stratified_split_deterministic_and_seeded() -> None:
    y = np.repeat(np.arange(10), 500)
    a = stratified_split(y, 1000, seed=3)
    b = stratified_split(y, 1000, seed=3)
    c = stratified_split(y, 1000, seed=4)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(np.sort(a[1]), np.sort(c[1]))


def test_stratified_split_uneven_classes_sum_exactly() -> None:
    y = np.array([0] * 7 + [1] * 13 + [2] * 30 + [5] * 50)  # 100 examples
    train, test = stratified_split(y, 15, seed=0)
    assert test.size == 15 and train.size == 85
    counts = {c: int((y[test] == c).sum()) for c in (0, 1, 2, 5)}
    for c, n_c in ((0, 7), (1, 13), (2, 30), (5, 50)):
        assert abs(counts[c] - 15 * n_c / 100) < 1
    assert stratified_split(y, 0, seed=0)[1].size == 0


def test_stratified_split_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="n_test"):
        stratified_split(np.zeros(10, dtype=int), 11, seed=0)
    with pytest.raises(ValueError, match="1-D"):
        stratified_split(np.zeros((10, 2), dtype=int), 2, seed=0)


# ---- binarize -----------------------------------------------------------------------------


def test_binarize_deterministic_binary_unbiased() -> None:
    x = np.random.default_rng(0).random((2000, 50)).astype(np.float32)
    a, b, c = binarize(x, seed=1234), binarize(x, seed=1234), binarize(x, seed=1)
    assert a.dtype == np.float32 and a.shape == x.shape
    assert set(np.unique(a).tolist()) == {0.0, 1.0}
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert abs(a.mean() - x.mean()) < 0.01  # 100k Bernoulli draws: sd ~ 0.0015
    assert binarize(np.zeros(5), 0).sum() == 0 and binarize(np.ones(5), 0).sum() == 5


# ---- load_mnist5k -------------------------------------------------------------------------


@pytest.mark.realdata
def test_load_mnist5k(mnist5k: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = mnist5k
    assert x.shape == (5000, 784) and x.dtype == np.float32
    assert y.shape == (5000,) and y.dtype == np.int64
    assert x.min() == 0.0 and x.max() == 1.0
    assert np.bincount(y).tolist() == [500] * 10
    assert np.all(np.diff(y) >= 0), "rows are sorted by label in the file"
    # real digits: ~19% of pixels are ink on average in MNIST
    assert 0.08 < x.mean() < 0.2
    assert np.allclose(x * 255, np.round(x * 255), atol=1e-4)


def _write_csv_gz(path: Path, table: np.ndarray) -> Path:
    with gzip.open(path, "wt") as f:
        np.savetxt(f, table, fmt="%d", delimiter=",")
    return path


@pytest.mark.parametrize(
    ("table", "match"),
    [
        (np.zeros((10, 785)), "expected 5000 rows x 785 columns"),
        (np.zeros((5000, 700)), "expected 5000 rows x 785 columns"),
        (np.full((5000, 785), 300), "outside 0..255"),
    ],
)
def test_load_mnist5k_rejects_bad_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, table: np.ndarray, match: str
) -> None:
    path = _write_csv_gz(tmp_path / "bad.csv.gz", table)
    monkeypatch.setattr(mnist_mod, "fetch_mnist5k", lambda cache_dir=None: path)
    with pytest.raises(ValueError, match=match) as err:
        load_mnist5k()
    assert str(path) in str(err.value)


def test_load_mnist5k_rejects_non_gzip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "plain.csv.gz"
    path.write_text("1,2,3\n")
    monkeypatch.setattr(mnist_mod, "fetch_mnist5k", lambda cache_dir=None: path)
    with pytest.raises(ValueError, match=str(path)):
        load_mnist5k()


# ---- the fixed split ----------------------------------------------------------------------


@pytest.mark.realdata
def test_mnist5k_split(mnist5k_path: Path, mnist5k: tuple[np.ndarray, np.ndarray]) -> None:
    s = mnist5k_split(mnist5k_path.parent)
    assert s.train_x.shape == (4000, 784) and s.test_x.shape == (1000, 784)
    assert s.train_y.shape == (4000,) and s.test_y.shape == (1000,)
    assert np.bincount(s.test_y).tolist() == [100] * 10
    assert np.bincount(s.train_y).tolist() == [400] * 10
    again = mnist5k_split(mnist5k_path.parent, seed=0)
    assert np.array_equal(s.test_x, again.test_x) and np.array_equal(s.train_y, again.train_y)
    # the split rows are the file's rows, without overlap
    x, _ = mnist5k
    train_idx, test_idx = stratified_split(mnist5k[1], 1000, seed=0)
    assert np.array_equal(s.train_x, x[train_idx]) and np.array_equal(s.test_x, x[test_idx])


# ---- sklearn digits -----------------------------------------------------------------------


def test_load_digits_probs() -> None:
    x, y = load_digits_probs()
    assert x.shape == (1797, 64) and x.dtype == np.float32
    assert y.shape == (1797,) and y.dtype == np.int64
    assert x.min() == 0.0 and x.max() == 1.0
    assert set(np.unique(y).tolist()) == set(range(10))
    assert np.allclose(x * 16, np.round(x * 16), atol=1e-5)
