"""Small offline data sets that ship with scikit-learn."""

from __future__ import annotations

import numpy as np

__all__ = ["load_digits_probs"]


def load_digits_probs() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 8x8 handwritten digits as intensities in [0, 1].

    Returns:
        ``(x, y)``: x ``(1797, 64)`` float32, pixel / 16 (the pixel range is 0..16);
        y ``(1797,)`` int64 labels 0..9.

    Reference: the UCI "Optical Recognition of Handwritten Digits" data (Alpaydin & Kaynak 1998),
    loaded by :func:`sklearn.datasets.load_digits`, which needs no network.
    """
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = (np.asarray(bunch.data, dtype=np.float64) / 16.0).astype(np.float32)
    y = np.asarray(bunch.target, dtype=np.int64)
    return x, y
