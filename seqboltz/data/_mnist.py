"""MNIST-5k: loading, the project's fixed stratified split, and stochastic binarisation."""

from __future__ import annotations

import gzip
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from seqboltz.data._fetch import fetch_mnist5k

__all__ = ["MNIST5kSplit", "binarize", "load_mnist5k", "mnist5k_split", "stratified_split"]

_N_ROWS = 5000
_N_PIXELS = 784


def _parse_mnist_csv(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Parse and validate the MNIST-5k gzip CSV at ``path``."""
    try:
        with gzip.open(path, "rt", encoding="ascii") as f:
            table = np.loadtxt(f, delimiter=",", dtype=np.int64, ndmin=2)
    except (OSError, EOFError, zlib.error, UnicodeDecodeError, ValueError) as e:
        raise ValueError(f"{path}: not a readable MNIST-5k gzip CSV ({e})") from e
    if table.shape != (_N_ROWS, _N_PIXELS + 1):
        raise ValueError(
            f"{path}: expected {_N_ROWS} rows x {_N_PIXELS + 1} columns "
            f"(784 pixels then the label), got shape {table.shape}"
        )
    pixels, labels = table[:, :_N_PIXELS], table[:, _N_PIXELS]
    bad = np.flatnonzero((pixels < 0).any(axis=1) | (pixels > 255).any(axis=1))
    if bad.size:
        raise ValueError(f"{path}: pixel values outside 0..255 in rows {bad[:10].tolist()}")
    bad = np.flatnonzero((labels < 0) | (labels > 9))
    if bad.size:
        raise ValueError(f"{path}: labels outside 0..9 in rows {bad[:10].tolist()}")
    images = pixels.astype(np.float32) / np.float32(255.0)
    return images, labels.astype(np.int64)


def load_mnist5k(cache_dir: str | Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Load MNIST-5k (5000 real MNIST digits, 500 per class), fetching it on first use.

    Args:
        cache_dir: cache directory for :func:`~seqboltz.data.fetch_mnist5k`.

    Returns:
        ``(images, labels)``: images ``(5000, 784)`` float32 in [0, 1] (pixel / 255, row-major
        28x28), labels ``(5000,)`` int64 in 0..9. Rows are in file order, sorted by label.

    Raises:
        ValueError: the file does not parse as 5000 x 785 integers with pixels in 0..255 and labels
            in 0..9 (the message names the file).
    """
    return _parse_mnist_csv(fetch_mnist5k(cache_dir))


def stratified_split(labels: np.ndarray, n_test: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded stratified split of ``len(labels)`` examples into train and test indices.

    Each class ``c`` with ``n_c`` examples gets ``n_test * n_c / N`` test examples (largest
    remainder rounding, so the counts add up to ``n_test``), chosen by a permutation drawn from
    ``np.random.default_rng(seed)``. Each index array is sorted and then shuffled with the same
    generator, so the order does not follow the labels.

    Args:
        labels: ``(N,)`` integer class labels.
        n_test: size of the test part, ``0 <= n_test <= N``.
        seed: seed of the generator; the same seed gives the same split.

    Returns:
        ``(train_idx, test_idx)``: int64 arrays of sizes ``N - n_test`` and ``n_test``, disjoint and
        together covering ``0..N-1``.

    >>> y = np.repeat(np.arange(10), 500)
    >>> tr, te = stratified_split(y, 1000, seed=0)
    >>> np.bincount(y[te]).tolist() == [100] * 10
    True
    """
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"labels must be 1-D, got shape {labels.shape}")
    n = labels.shape[0]
    if not 0 <= n_test <= n:
        raise ValueError(f"n_test must be in [0, {n}], got {n_test}")
    rng = np.random.default_rng(seed)
    classes, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    quota = n_test * counts / n
    n_per_class = np.floor(quota).astype(np.int64)
    short = n_test - int(n_per_class.sum())
    if short:
        # largest remainders first; ties broken by class order (stable sort)
        order = np.argsort(-(quota - n_per_class), kind="stable")
        n_per_class[order[:short]] += 1
    test_parts = []
    for k in range(classes.shape[0]):
        members = np.flatnonzero(inverse == k)
        test_parts.append(rng.permutation(members)[: n_per_class[k]])
    test_idx = np.sort(np.concatenate(test_parts)).astype(np.int64)
    train_mask = np.ones(n, dtype=bool)
    train_mask[test_idx] = False
    train_idx = np.flatnonzero(train_mask).astype(np.int64)
    return rng.permutation(train_idx), rng.permutation(test_idx)


@dataclass(frozen=True)
class MNIST5kSplit:
    """The fixed MNIST-5k split: ``train_x (4000, 784)`` float32 in [0, 1], ``train_y (4000,)``
    int64, ``test_x (1000, 784)``, ``test_y (1000,)`` (100 test images per class)."""

    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray


def mnist5k_split(cache_dir: str | Path | None = None, seed: int = 0) -> MNIST5kSplit:
    """The project's 4000/1000 MNIST-5k split: :func:`stratified_split` with ``n_test=1000``.

    Args:
        cache_dir: cache directory for the fetcher.
        seed: split seed; the project's fixed split is ``seed=0``.

    Returns:
        :class:`MNIST5kSplit` with intensities in [0, 1] (not binarised).
    """
    images, labels = load_mnist5k(cache_dir)
    train_idx, test_idx = stratified_split(labels, 1000, seed)
    return MNIST5kSplit(
        train_x=images[train_idx],
        train_y=labels[train_idx],
        test_x=images[test_idx],
        test_y=labels[test_idx],
    )


def binarize(x: np.ndarray, seed: int) -> np.ndarray:
    """Stochastic binarisation with a fixed seed: each value becomes 1 with probability ``x``.

    Used once on test images so log-likelihoods are of binary data (Salakhutdinov & Murray 2008,
    "On the quantitative analysis of deep belief networks", ICML).

    Args:
        x: ``(...)`` intensities in [0, 1].
        seed: seed of ``np.random.default_rng``; the same seed gives the same result.

    Returns:
        float32 array of 0s and 1s, shape of ``x``: ``(rng.random(x.shape) < x)``.
    """
    x = np.asarray(x)
    rng = np.random.default_rng(seed)
    return (rng.random(x.shape) < x).astype(np.float32)
