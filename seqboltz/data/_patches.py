"""Real-valued image patches from photographs, for Gaussian-visible models."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

__all__ = [
    "PatchData",
    "extract_patches",
    "image_patches",
    "sample_images_gray",
    "zca_whitening",
]

TRAIN_FRACTION = 0.75
"""Fraction of each image's rows (from the top) that train and validation patches come from."""


@dataclass(frozen=True)
class PatchData:
    """Standardised (or whitened) patches. ``D = patch_size ** 2``; every array is float32.

    Attributes:
        train: ``(n_train, D)``, per-pixel mean 0 and std 1 (whitened: covariance ≈ I).
        val: ``(n_val, D)`` from the same (top) region as train, standardised with train's
            statistics; ``(0, D)`` when ``n_val == 0``.
        test: ``(n_test, D)`` from the bottom region, standardised with train's statistics.
        mean: ``(D,)`` per-pixel train mean (subtracted); after DC removal unless whitened.
        std: ``(D,)`` per-pixel train std after DC removal (divided by); ones when whitened.
        patch_size: side of a square patch.
        whitening: ``(D, D)`` symmetric ZCA matrix ``Z`` (whitened patch ``(x - mean) Z``),
            ``None`` unless whitened.
        dewhitening: ``(D, D)`` its inverse ``Z⁻¹`` (``x = y Z⁻¹ + mean``), ``None`` unless
            whitened.
    """

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    patch_size: int
    whitening: np.ndarray | None = None
    dewhitening: np.ndarray | None = None


def sample_images_gray() -> list[np.ndarray]:
    """scikit-learn's two sample photographs (``china.jpg``, ``flower.jpg``), grayscale.

    Returns:
        two ``(427, 640)`` float64 arrays in [0, 1]: ITU-R BT.601 luma
        ``(0.299 R + 0.587 G + 0.114 B) / 255``. Needs no network.
    """
    from sklearn.datasets import load_sample_images

    weights = np.array([0.299, 0.587, 0.114])
    return [
        np.asarray(img, dtype=np.float64) @ weights / 255.0 for img in load_sample_images().images
    ]


def _split_counts(n: int, k: int) -> list[int]:
    return [n // k + (1 if i < n % k else 0) for i in range(k)]


def _draw(
    img: np.ndarray, row_lo: int, row_hi: int, n: int, p: int, rng: np.random.Generator, what: str
) -> np.ndarray:
    """``n`` distinct ``p x p`` patches, ``(n, p*p)``, lying wholly in rows ``[row_lo, row_hi)``."""
    n_rows = row_hi - row_lo - p + 1
    n_cols = img.shape[1] - p + 1
    if n_rows < 1 or n_cols < 1:
        raise ValueError(
            f"patch_size {p} does not fit the {what} region of an image of shape {img.shape} "
            f"(rows {row_lo}..{row_hi - 1})"
        )
    if n > n_rows * n_cols:
        raise ValueError(
            f"asked for {n} {what} patches of size {p} from an image of shape {img.shape}, "
            f"which has only {n_rows * n_cols} distinct positions in that region"
        )
    flat = rng.choice(n_rows * n_cols, size=n, replace=False)
    rows, cols = row_lo + flat // n_cols, flat % n_cols
    windows = sliding_window_view(img, (p, p))  # (H-p+1, W-p+1, p, p), a view
    return windows[rows, cols].reshape(n, p * p)


def extract_patches(
    images: Sequence[np.ndarray],
    patch_size: int = 8,
    n_train: int = 20000,
    n_test: int = 5000,
    seed: int = 0,
    n_val: int = 0,
    whiten: bool = False,
    whiten_epsilon: float = 1e-4,
) -> PatchData:
    """Draw train/val/test patches from grayscale images, remove each patch's DC, standardise.

    Train and validation patches lie wholly in the top ``TRAIN_FRACTION`` (75%) of each image's
    rows and test patches wholly in the bottom 25%, so test pixels are never seen in training.
    Positions are distinct within a region (train and val never share a position) and drawn from
    ``np.random.default_rng(seed)``; the counts are spread evenly over the images. Each patch has
    its own mean subtracted (DC removed), then every split is standardised per pixel with the
    train patches' mean and std, as is usual for Gaussian-visible RBMs (Hinton 2010, "A
    practical guide to training restricted Boltzmann machines", sec. 13.2).

    With ``whiten=True`` the patches are ZCA-whitened instead (Bell & Sejnowski 1997; the
    preprocessing of Ranzato & Hinton 2010): the train per-pixel mean is subtracted and every
    split is multiplied by the symmetric ``Z = U (Λ + εI)^(-1/2) Uᵀ`` of the *train* covariance
    ``U Λ Uᵀ`` (see :func:`zca_whitening`), so train has covariance ``≈ I``. The DC is not
    removed then: after DC removal the covariance is singular (every patch sums to zero), and
    a density model could gain unbounded likelihood along the missing direction; whitened, the
    DC is one unit-variance direction among ``D``.

    Args:
        images: 2-D grayscale images, each ``(H, W)``.
        patch_size: side ``p`` of the square patches; ``D = p * p``.
        n_train: number of training patches (>= 2).
        n_test: number of test patches (>= 0).
        seed: seed for the positions and the row order.
        n_val: number of validation patches from the train region (>= 0).
        whiten: ZCA-whiten (fitted on train only) instead of DC removal and standardisation.
        whiten_epsilon: ``ε`` of the whitening, relative to the mean eigenvalue of the train
            covariance (the mean per-pixel variance): directions with variance below about
            ``ε · tr(Σ)/D`` are not amplified to unit variance.

    Returns:
        :class:`PatchData` with ``train (n_train, D)``, ``val (n_val, D)``, ``test (n_test, D)``,
        ``mean (D,)`` and ``std (D,)`` (and, whitened, ``whitening``/``dewhitening (D, D)``),
        all float32.

    Raises:
        ValueError: impossible sizes, images that are not 2-D or hold NaN/inf.
    """
    if patch_size < 1:
        raise ValueError(f"patch_size must be >= 1, got {patch_size}")
    if n_train < 2 or n_test < 0 or n_val < 0:
        raise ValueError(
            f"need n_train >= 2, n_val >= 0, n_test >= 0; got {n_train}, {n_val}, {n_test}"
        )
    if len(images) == 0:
        raise ValueError("images is empty")
    imgs = [np.asarray(im, dtype=np.float64) for im in images]
    for i, im in enumerate(imgs):
        if im.ndim != 2:
            raise ValueError(f"images[{i}] must be 2-D (H, W) grayscale, got shape {im.shape}")
        if not np.isfinite(im).all():
            n_bad = int((~np.isfinite(im)).sum())
            raise ValueError(f"images[{i}] has {n_bad} NaN or infinite pixels")
    if not whiten_epsilon > 0:
        raise ValueError(f"whiten_epsilon must be > 0, got {whiten_epsilon}")
    rng = np.random.default_rng(seed)
    p, k = patch_size, len(imgs)
    fit_parts, test_parts = [], []
    for im, n_fit_i, n_test_i in zip(
        imgs, _split_counts(n_train + n_val, k), _split_counts(n_test, k), strict=True
    ):
        split_row = int(np.floor(TRAIN_FRACTION * im.shape[0]))
        fit_parts.append(_draw(im, 0, split_row, n_fit_i, p, rng, "train"))
        test_parts.append(_draw(im, split_row, im.shape[0], n_test_i, p, rng, "test"))
    fit = rng.permutation(np.concatenate(fit_parts))  # (n_train + n_val, D), images mixed
    test = rng.permutation(np.concatenate(test_parts))  # (n_test, D)
    if whiten:
        train_raw = fit[:n_train]
        mean_w = train_raw.mean(axis=0)
        zca, inverse = zca_whitening(train_raw - mean_w, whiten_epsilon)

        def whitened(a: np.ndarray) -> np.ndarray:
            return ((a - mean_w) @ zca).astype(np.float32)

        return PatchData(
            train=whitened(train_raw),
            val=whitened(fit[n_train:]),
            test=whitened(test),
            mean=mean_w.astype(np.float32),
            std=np.ones(p * p, dtype=np.float32),
            patch_size=p,
            whitening=zca.astype(np.float32),
            dewhitening=inverse.astype(np.float32),
        )
    fit = fit - fit.mean(axis=1, keepdims=True)  # remove DC per patch
    test = test - test.mean(axis=1, keepdims=True)
    train, val = fit[:n_train], fit[n_train:]
    mean = train.mean(axis=0)
    std = np.maximum(train.std(axis=0), 1e-8)

    def standardise(a: np.ndarray) -> np.ndarray:
        return ((a - mean) / std).astype(np.float32)

    return PatchData(
        train=standardise(train),
        val=standardise(val),
        test=standardise(test),
        mean=mean.astype(np.float32),
        std=std.astype(np.float32),
        patch_size=p,
    )


def image_patches(
    patch_size: int = 8,
    n_train: int = 20000,
    n_test: int = 5000,
    seed: int = 0,
    n_val: int = 0,
    whiten: bool = False,
    whiten_epsilon: float = 1e-4,
) -> PatchData:
    """Standardised (or whitened) patches from scikit-learn's two sample photographs (offline).

    :func:`extract_patches` applied to :func:`sample_images_gray`; see there for the arguments.

    >>> d = image_patches(patch_size=8, n_train=2000, n_test=500)
    >>> d.train.shape, d.test.shape, d.mean.shape
    ((2000, 64), (500, 64), (64,))
    """
    return extract_patches(
        sample_images_gray(),
        patch_size=patch_size,
        n_train=n_train,
        n_test=n_test,
        seed=seed,
        n_val=n_val,
        whiten=whiten,
        whiten_epsilon=whiten_epsilon,
    )


def zca_whitening(centred: np.ndarray, epsilon: float = 1e-4) -> tuple[np.ndarray, np.ndarray]:
    """ZCA whitening matrix of centred data and its inverse (Bell & Sejnowski 1997).

    With the covariance ``Σ = XᵀX / N = U Λ Uᵀ`` and ``ε' = epsilon · tr(Σ) / D``:
    ``Z = U (Λ + ε'I)^(-1/2) Uᵀ`` and ``Z⁻¹ = U (Λ + ε'I)^(1/2) Uᵀ``, both symmetric. ``X Z``
    has covariance ``U Λ/(Λ + ε') Uᵀ ≈ I`` and stays as close to ``X`` as any whitening can
    (zero-phase: whitened patches still look like patches).

    Args:
        centred: ``(N, D)`` data with (near) zero column means; N >= 2.
        epsilon: regulariser relative to the mean eigenvalue ``tr(Σ)/D`` (> 0).

    Returns:
        ``(Z, Z⁻¹)``, each ``(D, D)`` float64.
    """
    x = np.asarray(centred, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"need (N, D) data with N >= 2 to whiten, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("cannot whiten data with NaN or infinite values")
    if not epsilon > 0:
        raise ValueError(f"epsilon must be > 0, got {epsilon}")
    cov = x.T @ x / x.shape[0]
    eigval, eigvec = np.linalg.eigh(cov)
    eigval = np.clip(eigval, 0.0, None) + epsilon * max(float(np.trace(cov)) / x.shape[1], 1e-300)
    zca = (eigvec / np.sqrt(eigval)) @ eigvec.T
    inverse = (eigvec * np.sqrt(eigval)) @ eigvec.T
    return zca, inverse
