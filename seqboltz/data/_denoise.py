"""MNIST-5k denoising as structured output prediction: corrupted digit ``x`` → clean digit ``y``.

The task of Mnih, Larochelle & Hinton (2011, "Conditional Restricted Boltzmann Machines for
Structured Output Prediction", UAI, §5) in the project's fixed MNIST-5k split: the output ``y`` is
the clean digit binarised by thresholding at ½, the input ``x`` is that binary digit corrupted by
salt-and-pepper noise and/or occluding blocks. Every example's corruption comes from its own seeded
stream, so every run (and every machine) sees the same corrupted training, validation and test sets.

Why a threshold for ``y`` (and not the project's fixed-seed stochastic binarisation used for
log-likelihoods): a denoising target must be one unambiguous clean image. Thresholding is the most
probable binary image under the intensities-as-probabilities reading, and it does not add its own
pixel noise along stroke edges, which would otherwise be an error floor no denoiser could beat.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import lightning as L
import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from seqboltz.data._datamodule import sharded_loader, validate_array
from seqboltz.data._fetch import fetch_mnist5k
from seqboltz.data._mnist import mnist5k_split, stratified_split

__all__ = ["Corruption", "MNISTDenoisingDataModule", "corrupt_digits"]

Corruption = Literal["salt_pepper", "occlusion", "both"]
_CORRUPTIONS = ("salt_pepper", "occlusion", "both")
_STREAM_TRAIN, _STREAM_TEST = 0, 1  # the 4000 training images (val included), the 1000 test


def corrupt_digits(
    y: np.ndarray,
    corruption: Corruption = "salt_pepper",
    *,
    noise_rate: float = 0.1,
    n_blocks: int = 1,
    block_size: int = 8,
    fill: float = 0.0,
    image_shape: tuple[int, int] = (28, 28),
    seed: int = 0,
    stream: int = 0,
    indices: Sequence[int] | np.ndarray | None = None,
    copy: int = 0,
) -> np.ndarray:
    """Corrupt images, each from its own seeded random stream.

    Row ``r`` draws from ``np.random.default_rng([seed, stream, indices[r], copy])``, in this
    order: salt-and-pepper (a mask ``u < noise_rate`` then a value ``u' < ½``: each pixel is
    replaced with probability ``noise_rate`` by 0 or 1 with equal chance), then ``n_blocks``
    square occluding blocks of side ``block_size`` at uniform positions, set to ``fill``.
    So an image's corruption depends only on its identity, never on its batch or the others.

    Args:
        y: ``(N, h·w)`` images in [0, 1].
        corruption: ``"salt_pepper"``, ``"occlusion"`` or ``"both"``.
        noise_rate: salt-and-pepper density in [0, 1].
        n_blocks: occluding blocks per image (``>= 0``).
        block_size: side of the blocks (``1..min(h, w)``).
        fill: value of the occluded pixels.
        image_shape: ``(h, w)``.
        seed: the corruption seed.
        stream: which set the images belong to (e.g. train or test).
        indices: the images' identities within the stream (default ``0..N-1``).
        copy: which corrupted copy of each image (for several copies of a training set).

    Returns:
        float32 ``(N, h·w)``.
    """
    if corruption not in _CORRUPTIONS:
        raise ValueError(f"corruption must be one of {_CORRUPTIONS}, got {corruption!r}")
    if not 0.0 <= noise_rate <= 1.0:
        raise ValueError(f"noise_rate must be in [0, 1], got {noise_rate}")
    h, w = image_shape
    if y.ndim != 2 or y.shape[1] != h * w:
        raise ValueError(f"y must have shape (N, {h * w}) for images {h}x{w}; got {y.shape}")
    if n_blocks < 0 or not 1 <= block_size <= min(h, w):
        raise ValueError(
            f"need n_blocks >= 0 and 1 <= block_size <= {min(h, w)}; "
            f"got {n_blocks} and {block_size}"
        )
    idx = np.arange(y.shape[0]) if indices is None else np.asarray(indices)
    if idx.shape != (y.shape[0],):
        raise ValueError(f"indices must have {y.shape[0]} entries, got shape {idx.shape}")
    x = np.array(y, dtype=np.float32, copy=True)
    for r in range(x.shape[0]):
        rng = np.random.default_rng([seed, stream, int(idx[r]), copy])
        if corruption in ("salt_pepper", "both"):
            mask = rng.random(h * w) < noise_rate
            values = (rng.random(h * w) < 0.5).astype(np.float32)
            x[r, mask] = values[mask]
        if corruption in ("occlusion", "both"):
            image = x[r].reshape(h, w)  # a view
            for _ in range(n_blocks):
                top = int(rng.integers(0, h - block_size + 1))
                left = int(rng.integers(0, w - block_size + 1))
                image[top : top + block_size, left : left + block_size] = fill
    return x


class _PairsDataset(Dataset[tuple[Tensor, Tensor]]):
    """Rows of ``(y, x)``; ``__getitems__`` slices a whole batch at once."""

    def __init__(self, y: Tensor, x: Tensor) -> None:
        self.y, self.x = y, x

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        return self.y[index], self.x[index]

    def __getitems__(self, indices: Sequence[int]) -> tuple[Tensor, Tensor]:
        i = torch.as_tensor(indices, dtype=torch.long)
        return self.y[i], self.x[i]


def _collate_pairs(batch: object) -> tuple[Tensor, Tensor]:
    """Pass a ``(y (B, D), x (B, C))`` batch from ``__getitems__`` through; stack rows otherwise."""
    if isinstance(batch, tuple) and len(batch) == 2:
        y, x = batch
        if isinstance(y, Tensor) and isinstance(x, Tensor) and y.dim() == 2:
            return y, x
    rows: list[tuple[Tensor, Tensor]] = list(batch)  # type: ignore[call-overload]
    return torch.stack([r[0] for r in rows]), torch.stack([r[1] for r in rows])


class PairsDataModule(L.LightningDataModule):
    """What every ``(y, x)`` DataModule of a structured-output task shares: the splits as
    tensors and their sharded loaders. A subclass's ``setup`` fills ``self._splits`` with
    ``{"train" | "val" | "test": (y (N, D), x (N, C))}`` and sets ``batch_size``,
    ``shuffle_seed`` and ``num_workers``."""

    _splits: dict[str, tuple[Tensor, Tensor]] | None
    batch_size: int
    shuffle_seed: int
    num_workers: int

    def pairs(self, split: str) -> tuple[Tensor, Tensor]:
        """``(y (N, D), x (N, C))`` of ``"train"``, ``"val"`` or ``"test"``, float32."""
        if self._splits is None:
            raise RuntimeError(f"{type(self).__name__}: the splits exist after setup()")
        if split not in self._splits:
            raise ValueError(f"split must be 'train', 'val' or 'test', got {split!r}")
        return self._splits[split]

    @property
    def train_tensor(self) -> Tensor:
        """Training outputs ``y`` ``(N_train, D)`` (the system sets output biases from them)."""
        return self.pairs("train")[0]

    @property
    def val_tensor(self) -> Tensor:
        return self.pairs("val")[0]

    @property
    def test_tensor(self) -> Tensor:
        return self.pairs("test")[0]

    def train_dataloader(self) -> DataLoader[tuple[Tensor, Tensor]]:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader[tuple[Tensor, Tensor]]:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader[tuple[Tensor, Tensor]]:
        return self._loader("test", shuffle=False)

    def _loader(self, split: str, shuffle: bool) -> DataLoader[tuple[Tensor, Tensor]]:
        y, x = self.pairs(split)
        return sharded_loader(
            _PairsDataset(y, x),
            self.trainer,
            self.batch_size,
            shuffle=shuffle,
            seed=self.shuffle_seed,
            collate_fn=_collate_pairs,
            num_workers=self.num_workers,
        )


class MNISTDenoisingDataModule(PairsDataModule):
    """MNIST-5k denoising: batches ``(y, x)`` of clean binary digits and corrupted inputs.

    Splits: the project's fixed stratified 4000/1000 split (:func:`~seqboltz.data.mnist5k_split`
    with ``split_seed``); ``val_size`` validation images carved out of the 4000 by a stratified
    split (as :class:`~seqboltz.data.MNIST5kDataModule` does); train = the rest. ``y`` is the
    digit thresholded at ½; ``x`` is ``y`` corrupted by :func:`corrupt_digits`, each image from
    its own stream ``[corruption_seed, set, index, copy]`` (set: the 4000 or the 1000), so the
    corrupted test set is the same in every run. ``train_copies > 1`` adds independently
    corrupted copies of every training image (same ``y``).

    Train a :class:`~seqboltz.models.StructuredOutputCRBM` with ``n_visible = n_features``
    and ``n_cond = n_cond`` (784 each).

    Args:
        batch_size: rows per batch.
        val_size: validation images taken from the 4000 training images (1..3999).
        corruption: ``"salt_pepper"``, ``"occlusion"`` or ``"both"``.
        noise_rate: salt-and-pepper density (fraction of pixels replaced by 0 or 1).
        n_blocks: occluding blocks per image.
        block_size: side of each occluding block (pixels).
        fill: value of occluded pixels (0: erased).
        corruption_seed: seed of the corruption streams.
        train_copies: corrupted copies of each training image.
        split_seed: seed of the train/test and train/val splits.
        cache_dir: cache directory for the fetcher.
        shuffle_seed: seed of the training order.
        num_workers: DataLoader workers.
    """

    visible_kind = "bernoulli"
    image_shape: tuple[int, int] = (28, 28)

    def __init__(
        self,
        batch_size: int = 100,
        val_size: int = 500,
        corruption: Corruption = "salt_pepper",
        noise_rate: float = 0.1,
        n_blocks: int = 1,
        block_size: int = 8,
        fill: float = 0.0,
        corruption_seed: int = 0,
        train_copies: int = 1,
        split_seed: int = 0,
        cache_dir: str | None = None,
        shuffle_seed: int = 0,
        num_workers: int = 0,
    ) -> None:
        super().__init__()
        if batch_size < 1 or num_workers < 0 or train_copies < 1:
            raise ValueError(
                "need batch_size >= 1, num_workers >= 0 and train_copies >= 1; got "
                f"{batch_size}, {num_workers}, {train_copies}"
            )
        if not 1 <= val_size < 4000:
            raise ValueError(f"val_size must be in [1, 3999], got {val_size}")
        if not 0.0 <= fill <= 1.0:
            raise ValueError(f"fill must be in [0, 1], got {fill}")
        self.corruption: Corruption = corruption
        self.noise_rate = noise_rate
        self.n_blocks = n_blocks
        self.block_size = block_size
        self.fill = fill
        self.corruption_seed = corruption_seed
        self._corrupt(np.zeros((1, self.n_features), np.float32), 0, np.zeros(1), 0)  # validate
        self.batch_size = batch_size
        self.val_size = val_size
        self.train_copies = train_copies
        self.split_seed = split_seed
        self.cache_dir = cache_dir
        self.shuffle_seed = shuffle_seed
        self.num_workers = num_workers
        self._splits: dict[str, tuple[Tensor, Tensor]] | None = None
        self._labels: dict[str, np.ndarray] = {}
        self.save_hyperparameters()

    # -- sizes ------------------------------------------------------------------------------
    @property
    def n_features(self) -> int:
        """``dim y`` (784)."""
        return self.image_shape[0] * self.image_shape[1]

    @property
    def n_cond(self) -> int:
        """``dim x`` (784)."""
        return self.image_shape[0] * self.image_shape[1]

    # -- Lightning hooks --------------------------------------------------------------------
    def prepare_data(self) -> None:
        fetch_mnist5k(self.cache_dir)

    def _corrupt(self, y: np.ndarray, stream: int, idx: np.ndarray, copy: int) -> np.ndarray:
        return corrupt_digits(
            y,
            self.corruption,
            noise_rate=self.noise_rate,
            n_blocks=self.n_blocks,
            block_size=self.block_size,
            fill=self.fill,
            image_shape=self.image_shape,
            seed=self.corruption_seed,
            stream=stream,
            indices=idx,
            copy=copy,
        )

    def setup(self, stage: str | None = None) -> None:
        """Load, binarise, corrupt and validate all three splits (once)."""
        if self._splits is not None:
            return
        split = mnist5k_split(self.cache_dir, seed=self.split_seed)
        y_all = (split.train_x > 0.5).astype(np.float32)
        y_test = (split.test_x > 0.5).astype(np.float32)
        train_idx, val_idx = stratified_split(split.train_y, self.val_size, self.split_seed)
        train_y = np.concatenate([y_all[train_idx]] * self.train_copies)
        train_x = np.concatenate(
            [
                self._corrupt(y_all[train_idx], _STREAM_TRAIN, train_idx, c)
                for c in range(self.train_copies)
            ]
        )
        parts = {
            "train": (train_y, train_x),
            "val": (y_all[val_idx], self._corrupt(y_all[val_idx], _STREAM_TRAIN, val_idx, 0)),
            "test": (
                y_test,
                self._corrupt(y_test, _STREAM_TEST, np.arange(y_test.shape[0]), 0),
            ),
        }
        self._labels = {
            "train": np.concatenate([split.train_y[train_idx]] * self.train_copies),
            "val": split.train_y[val_idx],
            "test": split.test_y,
        }
        self._splits = {
            name: (
                torch.from_numpy(validate_array(y, f"{name} y", "bernoulli")),
                torch.from_numpy(validate_array(x, f"{name} x", "bernoulli")),
            )
            for name, (y, x) in parts.items()
        }

    # -- data access ------------------------------------------------------------------------

    def labels(self, split: str) -> np.ndarray:
        """Digit classes ``(N,)`` of a split's rows (for picking examples; not used to train)."""
        self.pairs(split)
        return self._labels[split]
