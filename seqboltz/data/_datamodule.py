"""Lightning DataModules over in-memory arrays, with fast whole-batch loading.

Batching: the data of a split is one float32 tensor ``(N, D)``. The DataLoader uses the usual
``batch_size`` and a sampler, but the dataset implements ``__getitems__`` (the batched fetch hook
of :class:`torch.utils.data.Dataset`), so a batch is one slice ``data[indices]`` instead of ``B``
single-row fetches plus a collate (which is about 100x slower for small rows). Without worker
processes the loader goes further: it turns an epoch's indices into one tensor and slices each
batch from it, without the DataLoader's per-batch iterator machinery (the same batches).

Sharding (DDP): the sampler is always a :class:`~torch.utils.data.distributed.DistributedSampler`
built by the DataModule itself with ``num_replicas``/``rank`` taken from the attached trainer's
``distributed_sampler_kwargs`` (1 and 0 without a trainer or in a single process) and
``seed=shuffle_seed``. Lightning leaves a DataLoader whose sampler is already a
``DistributedSampler`` alone (whatever ``Trainer(use_distributed_sampler=...)`` says) and calls its
``set_epoch`` at every epoch, so: each rank gets a disjoint shard (``DistributedSampler``
semantics: the shards are padded by repeating a few examples when ``N`` is not divisible by the
world size), every epoch has its own permutation ``randperm(N, seed=shuffle_seed + epoch)`` shared
by all ranks, a run is reproducible epoch by epoch (also after resuming), and in one process every
training example is seen exactly once per epoch. Outside Lightning call
``loader.sampler.set_epoch(epoch)`` yourself to get a new order each epoch.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Iterator, Sequence
from typing import Any, ClassVar, cast

import lightning as L
import numpy as np
import torch
from torch import Tensor
from torch.utils.data import BatchSampler, DataLoader, Dataset
from torch.utils.data.distributed import DistributedSampler

from seqboltz.data._fetch import fetch_mnist5k
from seqboltz.data._mnist import binarize, mnist5k_split, stratified_split
from seqboltz.data._patches import image_patches
from seqboltz.data._small import load_digits_probs

__all__ = [
    "ArrayDataModule",
    "DataError",
    "DigitsDataModule",
    "ImagePatchesDataModule",
    "MNIST5kDataModule",
    "build_datamodule",
    "validate_array",
]

VISIBLE_KINDS = ("bernoulli", "gaussian")


class DataError(ValueError):
    """The data cannot be used as it is: a missing, unreadable or too-short file, NaN or
    infinite values, values out of range, wrong shapes. The message names the file (or the
    data set) and the problem in one line; ``seqboltz fit`` prints it and exits with status 2.
    """


class _RowsDataset(Dataset[Tensor]):
    """Rows of a ``(N, D)`` tensor; ``__getitems__`` returns a whole ``(B, D)`` batch at once."""

    def __init__(self, data: Tensor) -> None:
        self.data = data

    def __len__(self) -> int:
        return int(self.data.shape[0])

    def __getitem__(self, index: int) -> Tensor:
        return self.data[index]

    def __getitems__(self, indices: Sequence[int]) -> Tensor:
        return self.data[torch.as_tensor(indices, dtype=torch.long)]


class _RowsLoader(DataLoader[Tensor]):
    """A DataLoader over a :class:`_RowsDataset` whose single-process iteration slices each
    batch straight from the tensor.

    The same batches as :class:`DataLoader` (same sampler, ``set_epoch``, ``batch_size``,
    ``drop_last`` and ``collate_fn``; anything Lightning rebuilds it with, e.g. the
    ``SequentialSampler`` of ``overfit_batches``), without the iterator machinery around
    each batch (the fetcher, the profiler range, one index list to tensor per batch): the
    epoch's indices become one tensor, split into batches. With worker processes, pinned
    memory or a custom batch sampler it iterates as :class:`DataLoader` does.
    """

    def __iter__(self) -> Iterator[Tensor]:  # type: ignore[override]
        batches = self.batch_sampler
        if (
            self.num_workers > 0
            or self.pin_memory
            or type(batches) is not BatchSampler
            or not isinstance(self.dataset, _RowsDataset)
        ):
            return cast(Iterator[Tensor], super().__iter__())
        # DataLoader's iterator draws its workers' base seed here, from the global stream
        # unless the loader has a generator: the same draw keeps that stream where it was
        torch.empty((), dtype=torch.int64).random_(generator=self.generator)
        return self._sliced(self.dataset, batches)

    def _sliced(self, dataset: _RowsDataset, batches: BatchSampler) -> Iterator[Tensor]:
        indices = torch.as_tensor(list(batches.sampler), dtype=torch.long)
        size = batches.batch_size
        collate: Callable[[Tensor], Tensor] = self.collate_fn  # type: ignore[assignment]
        for rows in indices.split(size):
            if batches.drop_last and rows.shape[0] < size:
                return
            yield collate(dataset.data[rows])


def _collate_batch(batch: Tensor | Sequence[Tensor]) -> Tensor:
    """Pass a ``(B, D)`` batch from ``__getitems__`` through; stack rows otherwise."""
    if isinstance(batch, Tensor):
        return batch
    return torch.stack(list(batch))


def _rows_str(rows: np.ndarray, limit: int = 10) -> str:
    shown = rows[:limit].tolist()
    more = f" and {rows.size - limit} more" if rows.size > limit else ""
    return f"{shown}{more}"


def validate_array(x: np.ndarray, split: str, visible_kind: str) -> np.ndarray:
    """Check one split of a data set and return it as a C-contiguous float32 array.

    Args:
        x: ``(N, D)`` data.
        split: name used in error messages (``"train"``, ``"val"``, ``"test"``).
        visible_kind: ``"bernoulli"`` (values must lie in [0, 1]) or ``"gaussian"``.

    Raises:
        ValueError: ``x`` is not 2-D, is empty, has NaN/inf (the message names the split and the
            first offending rows), or is bernoulli data with values outside [0, 1].
    """
    if visible_kind not in VISIBLE_KINDS:
        raise ValueError(f"visible_kind must be one of {VISIBLE_KINDS}, got {visible_kind!r}")
    a = np.asarray(x)
    if a.ndim != 2:
        raise ValueError(f"{split} split must be 2-D (N, D), got shape {a.shape}")
    if a.shape[0] == 0 or a.shape[1] == 0:
        raise ValueError(f"{split} split is empty: shape {a.shape}")
    if not np.issubdtype(a.dtype, np.number) or np.iscomplexobj(a):
        raise ValueError(f"{split} split must be real numbers, got dtype {a.dtype}")
    a = np.ascontiguousarray(a, dtype=np.float32)
    bad = np.flatnonzero(~np.isfinite(a).all(axis=1))
    if bad.size:
        raise ValueError(
            f"{split} split has non-finite values (NaN or inf) in {bad.size} rows: {_rows_str(bad)}"
        )
    if visible_kind == "bernoulli":
        bad = np.flatnonzero(((a < 0) | (a > 1)).any(axis=1))
        if bad.size:
            raise ValueError(
                f"{split} split is bernoulli data but has values outside [0, 1] "
                f"(min {a.min():g}, max {a.max():g}) in {bad.size} rows: {_rows_str(bad)}"
            )
    return a


def sharded_loader(
    dataset: Dataset[Any],
    trainer: L.Trainer | None,
    batch_size: int,
    *,
    shuffle: bool,
    seed: int,
    collate_fn: Callable[[Any], Any],
    num_workers: int = 0,
) -> DataLoader[Any]:
    """A DataLoader whose :class:`DistributedSampler` shards by the trainer's ranks.

    With no trainer (or one process) it is a plain seeded (shuffled) loader over everything.
    Lightning leaves a ``DistributedSampler`` it did not make alone, so the sharding and the
    ``seed`` hold whatever ``use_distributed_sampler`` says; it calls ``set_epoch`` each epoch.
    """
    kwargs = trainer.distributed_sampler_kwargs if trainer is not None else None
    num_replicas, rank = (int(kwargs["num_replicas"]), int(kwargs["rank"])) if kwargs else (1, 0)
    sampler: DistributedSampler[int] = DistributedSampler(
        dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed, drop_last=False
    )
    loader = _RowsLoader if isinstance(dataset, _RowsDataset) else DataLoader
    return loader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        collate_fn=collate_fn,
        num_workers=num_workers,
        persistent_workers=num_workers > 0,
    )


class ArrayDataModule(L.LightningDataModule):
    """Base DataModule for data sets that fit in memory as ``(N, D)`` float32 tensors.

    Subclasses override :meth:`_load` (return ``(train, val, test)`` numpy arrays, each
    ``(N_split, D)``), set the class attribute ``_visible_kind`` (``"bernoulli"`` for intensities
    in [0, 1], ``"gaussian"`` for real values) and optionally :meth:`prepare_data`,
    :meth:`stats`, :meth:`eval_tensor` and ``_n_features_hint``. Loaders yield plain ``(B, D)``
    float32 tensors; see the module docstring for how batches are sliced and sharded under DDP.

    Args:
        batch_size: rows per batch (the last batch of an epoch may be smaller).
        shuffle_seed: seed of the per-epoch training permutation (``shuffle_seed + epoch``).
        num_workers: DataLoader worker processes (0 is best for in-memory data).
    """

    _visible_kind: str = "bernoulli"
    _n_features_hint: int | None = None
    own_images: ClassVar[dict[str, Any] | None] = None
    """For an image data set: the :class:`~seqboltz.data.ImageDataModule` arguments
    (e.g. ``{"mode": "binary"}``) that train a recipe over this class on your own images when
    it is given ``--data.init_args.path`` (see :mod:`seqboltz.training`); ``None``: none."""

    def __init__(self, batch_size: int = 100, shuffle_seed: int = 0, num_workers: int = 0) -> None:
        super().__init__()
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if num_workers < 0:
            raise ValueError(f"num_workers must be >= 0, got {num_workers}")
        if type(self) is ArrayDataModule:
            raise ValueError(
                "ArrayDataModule is the base class of the in-memory DataModules: for image "
                "files use seqboltz.data.ImageDataModule (path=FILE_OR_FOLDER), from Python "
                "ArrayDataModule.from_arrays(train, val, test)"
            )
        self.batch_size = batch_size
        self.shuffle_seed = shuffle_seed
        self.num_workers = num_workers
        self._train: Tensor | None = None
        self._val: Tensor | None = None
        self._test: Tensor | None = None

    # ---- hooks for subclasses -------------------------------------------------------------
    def _load(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Return ``(train, val, test)``, each ``(N_split, D)``."""
        raise NotImplementedError(f"{type(self).__name__} must implement _load()")

    def stats(self) -> dict[str, list[float]]:
        """Normalisation statistics that travel with a trained model (empty: none applied)."""
        return {}

    @property
    def source(self) -> str:
        """Where the data comes from, for messages (a file or folder, or the data set's name)."""
        return type(self).__name__

    # ---- Lightning hooks ------------------------------------------------------------------
    def setup(self, stage: str | None = None) -> None:
        """Load, validate and convert all three splits (once; later calls do nothing)."""
        if self._train is not None:
            return
        train, val, test = self._load()
        try:
            splits = {
                name: validate_array(a, name, self.visible_kind)
                for name, a in (("train", train), ("val", val), ("test", test))
            }
        except ValueError as exc:
            raise DataError(f"{self.source}: {exc}") from exc
        widths = {name: a.shape[1] for name, a in splits.items()}
        if len(set(widths.values())) != 1:
            raise DataError(f"{self.source}: splits have different numbers of features: {widths}")
        hint = self._n_features_hint
        if hint is not None and widths["train"] != hint:
            raise DataError(
                f"{self.source}: expected {hint} features, the data has {widths['train']}"
            )
        self._train = torch.from_numpy(splits["train"])
        self._val = torch.from_numpy(splits["val"])
        self._test = torch.from_numpy(splits["test"])

    def train_dataloader(self) -> DataLoader[Tensor]:
        return self._loader(self.train_tensor, shuffle=True)

    def val_dataloader(self) -> DataLoader[Tensor]:
        return self._loader(self.val_tensor, shuffle=False)

    def test_dataloader(self) -> DataLoader[Tensor]:
        return self._loader(self.test_tensor, shuffle=False)

    # ---- data access ----------------------------------------------------------------------
    @property
    def visible_kind(self) -> str:
        """``"bernoulli"`` (values in [0, 1]) or ``"gaussian"`` (real values)."""
        return self._visible_kind

    @property
    def n_features(self) -> int:
        """Number of visible units ``D`` (known before :meth:`setup` for the built-in sets)."""
        if self._train is not None:
            return int(self._train.shape[1])
        if self._n_features_hint is not None:
            return self._n_features_hint
        raise RuntimeError(f"{type(self).__name__}.n_features is known only after setup()")

    @property
    def train_tensor(self) -> Tensor:
        """Training data ``(N_train, D)`` float32."""
        return self._require(self._train, "train")

    @property
    def val_tensor(self) -> Tensor:
        """Validation data ``(N_val, D)`` float32."""
        return self._require(self._val, "val")

    @property
    def test_tensor(self) -> Tensor:
        """Test data ``(N_test, D)`` float32."""
        return self._require(self._test, "test")

    def eval_tensor(self) -> Tensor:
        """Test data as used for log-likelihood evaluation ``(N_test, D)`` float32."""
        return self.test_tensor

    # ---- helpers --------------------------------------------------------------------------
    def _require(self, t: Tensor | None, split: str) -> Tensor:
        if t is None:
            raise RuntimeError(f"{type(self).__name__}: the {split} split exists after setup()")
        return t

    def _loader(self, data: Tensor, shuffle: bool) -> DataLoader[Tensor]:
        return sharded_loader(
            _RowsDataset(data),
            self.trainer,
            self.batch_size,
            shuffle=shuffle,
            seed=self.shuffle_seed,
            collate_fn=_collate_batch,
            num_workers=self.num_workers,
        )

    @classmethod
    def from_arrays(
        cls,
        train: np.ndarray,
        val: np.ndarray,
        test: np.ndarray,
        visible_kind: str = "bernoulli",
        batch_size: int = 100,
        shuffle_seed: int = 0,
        num_workers: int = 0,
    ) -> ArrayDataModule:
        """A DataModule over given ``(N_split, D)`` arrays (for tests and quick experiments)."""
        return _InMemoryDataModule(
            train, val, test, visible_kind, batch_size, shuffle_seed, num_workers
        )


class _InMemoryDataModule(ArrayDataModule):
    def __init__(
        self,
        train: np.ndarray,
        val: np.ndarray,
        test: np.ndarray,
        visible_kind: str,
        batch_size: int,
        shuffle_seed: int,
        num_workers: int,
    ) -> None:
        super().__init__(batch_size=batch_size, shuffle_seed=shuffle_seed, num_workers=num_workers)
        if visible_kind not in VISIBLE_KINDS:
            raise ValueError(f"visible_kind must be one of {VISIBLE_KINDS}, got {visible_kind!r}")
        self._visible_kind = visible_kind
        self._arrays = (train, val, test)

    @property
    def source(self) -> str:
        return "in-memory arrays"

    def _load(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self._arrays


class MNIST5kDataModule(ArrayDataModule):
    """MNIST-5k (real MNIST digits, 500 per class) for Bernoulli-visible models.

    Splits (all stratified by class and seeded): the fixed 4000/1000 split
    (:func:`~seqboltz.data.mnist5k_split` with ``split_seed``); ``val_size`` validation images
    carved out of the 4000; train = the rest, as intensities in [0, 1]; val as intensities;
    test = the 1000 test images binarised once with ``binarize_seed`` (Salakhutdinov & Murray
    2008), which is also :meth:`eval_tensor`. ``val_size=0`` makes val the (binarised) test set.
    ``prepare_data`` fetches the file, so under DDP only local rank 0 downloads.

    Args:
        batch_size: rows per batch.
        val_size: validation images taken from the 4000 training images (0..3999).
        split_seed: seed of the train/test and train/val splits.
        binarize_seed: seed of the one-off binarisation of the test images.
        cache_dir: cache directory for the fetcher (default:
            :func:`~seqboltz.data.default_cache_dir`).
        shuffle_seed: seed of the training order.
        num_workers: DataLoader workers.
    """

    _visible_kind = "bernoulli"
    _n_features_hint = 784
    own_images: ClassVar[dict[str, Any] | None] = {"mode": "binary"}

    def __init__(
        self,
        batch_size: int = 100,
        val_size: int = 500,
        split_seed: int = 0,
        binarize_seed: int = 1234,
        cache_dir: str | None = None,
        shuffle_seed: int = 0,
        num_workers: int = 0,
    ) -> None:
        super().__init__(batch_size=batch_size, shuffle_seed=shuffle_seed, num_workers=num_workers)
        if not 0 <= val_size < 4000:
            raise ValueError(f"val_size must be in [0, 3999], got {val_size}")
        self.val_size = val_size
        self.split_seed = split_seed
        self.binarize_seed = binarize_seed
        self.cache_dir = cache_dir
        self.save_hyperparameters()

    def prepare_data(self) -> None:
        fetch_mnist5k(self.cache_dir)

    def _load(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        split = mnist5k_split(self.cache_dir, seed=self.split_seed)
        test = binarize(split.test_x, self.binarize_seed)
        if self.val_size == 0:
            return split.train_x, test, test
        train_idx, val_idx = stratified_split(split.train_y, self.val_size, self.split_seed)
        return split.train_x[train_idx], split.train_x[val_idx], test


class DigitsDataModule(ArrayDataModule):
    """scikit-learn's 8x8 digits (1797 images, 64 pixels / 16 in [0, 1]), Bernoulli visibles.

    Stratified seeded splits: ``test_size`` test images, then ``val_size`` validation images from
    the rest; train and val are intensities, test is binarised once with ``binarize_seed`` and is
    :meth:`eval_tensor`. ``val_size=0`` makes val the test set.

    Args:
        batch_size: rows per batch.
        val_size: validation images (>= 0).
        test_size: test images (>= 1).
        split_seed: seed of both splits.
        binarize_seed: seed of the one-off binarisation of the test images.
        shuffle_seed: seed of the training order.
        num_workers: DataLoader workers.
    """

    _visible_kind = "bernoulli"
    _n_features_hint = 64
    own_images: ClassVar[dict[str, Any] | None] = {"mode": "binary"}

    def __init__(
        self,
        batch_size: int = 100,
        val_size: int = 180,
        test_size: int = 360,
        split_seed: int = 0,
        binarize_seed: int = 1234,
        shuffle_seed: int = 0,
        num_workers: int = 0,
    ) -> None:
        super().__init__(batch_size=batch_size, shuffle_seed=shuffle_seed, num_workers=num_workers)
        if test_size < 1 or val_size < 0 or val_size + test_size >= 1797:
            raise ValueError(
                f"need test_size >= 1, val_size >= 0 and val_size + test_size < 1797, "
                f"got val_size={val_size}, test_size={test_size}"
            )
        self.val_size = val_size
        self.test_size = test_size
        self.split_seed = split_seed
        self.binarize_seed = binarize_seed
        self.save_hyperparameters()

    def _load(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        x, y = load_digits_probs()
        rest_idx, test_idx = stratified_split(y, self.test_size, self.split_seed)
        test = binarize(x[test_idx], self.binarize_seed)
        if self.val_size == 0:
            return x[rest_idx], test, test
        train_rel, val_rel = stratified_split(y[rest_idx], self.val_size, self.split_seed)
        return x[rest_idx[train_rel]], x[rest_idx[val_rel]], test


class ImagePatchesDataModule(ArrayDataModule):
    """Standardised (or whitened) grayscale patches of two photographs, for Gaussian visibles.

    Train and val patches come from the top 75% of each image, test patches from the bottom
    25% (see :func:`~seqboltz.data.image_patches`); all are DC-removed and standardised with the
    train statistics, which :meth:`stats` returns so they travel with the model. ``n_val=0`` makes
    val the test set. With ``whiten=True`` they are ZCA-whitened instead (no DC removal; the
    whitening is fitted on the train split only), as the mean-covariance RBM expects.

    Args:
        batch_size: rows per batch.
        patch_size: side of the square patches; ``D = patch_size ** 2``.
        n_train: training patches.
        n_val: validation patches (from the train region, at positions distinct from train's).
        n_test: test patches.
        seed: seed of the patch positions.
        shuffle_seed: seed of the training order.
        num_workers: DataLoader workers.
        whiten: ZCA-whiten (train statistics) instead of DC removal and standardisation.
        whiten_epsilon: whitening regulariser, relative to the mean per-pixel variance.
    """

    _visible_kind = "gaussian"
    own_images: ClassVar[dict[str, Any] | None] = {"mode": "gaussian"}

    def __init__(
        self,
        batch_size: int = 100,
        patch_size: int = 8,
        n_train: int = 20000,
        n_val: int = 2000,
        n_test: int = 5000,
        seed: int = 0,
        shuffle_seed: int = 0,
        num_workers: int = 0,
        whiten: bool = False,
        whiten_epsilon: float = 1e-4,
    ) -> None:
        super().__init__(batch_size=batch_size, shuffle_seed=shuffle_seed, num_workers=num_workers)
        if n_test < 1:
            raise ValueError(f"n_test must be >= 1, got {n_test}")
        if not whiten_epsilon > 0:
            raise ValueError(f"whiten_epsilon must be > 0, got {whiten_epsilon}")
        self.whiten = whiten
        self.whiten_epsilon = whiten_epsilon
        self.patch_size = patch_size
        self.n_train = n_train
        self.n_val = n_val
        self.n_test = n_test
        self.seed = seed
        self._n_features_hint = patch_size * patch_size
        self._stats: dict[str, list[float]] | None = None
        self.save_hyperparameters()

    def _load(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        d = image_patches(
            patch_size=self.patch_size,
            n_train=self.n_train,
            n_test=self.n_test,
            seed=self.seed,
            n_val=self.n_val,
            whiten=self.whiten,
            whiten_epsilon=self.whiten_epsilon,
        )
        if d.whitening is not None and d.dewhitening is not None:
            self._stats = {
                "mean": d.mean.tolist(),
                "whitening": d.whitening.astype(np.float64).ravel().tolist(),
                "dewhitening": d.dewhitening.astype(np.float64).ravel().tolist(),
            }
        else:
            self._stats = {"mean": d.mean.tolist(), "std": d.std.tolist()}
        return d.train, (d.val if self.n_val > 0 else d.test), d.test

    def stats(self) -> dict[str, list[float]]:
        """``{"mean": [D], "std": [D]}``: per-pixel train mean and std of the DC-removed patches
        (a raw patch ``x`` is fed to the model as ``((x - x.mean()) - mean) / std``).

        Whitened: ``{"mean": [D], "whitening": [D*D], "dewhitening": [D*D]}``, the matrices
        ``Z`` and ``Z⁻¹`` row-major: a raw patch ``x`` is fed as ``(x - mean) Z`` and a model
        sample ``y`` shown as ``y Z⁻¹ + mean``."""
        if self._stats is None:
            raise RuntimeError("ImagePatchesDataModule.stats() is known only after setup()")
        return dict(self._stats)


def build_datamodule(class_path: str, init_args: dict[str, Any]) -> Any:
    """Instantiate a DataModule from its class path (any importable module) or its short name
    in :mod:`seqboltz.data`, with the ``init_args`` its signature takes (others, such as the
    ``_class_path`` LightningCLI adds to hyperparameters, are left out).

    Raises:
        ValueError: the module cannot be imported, the class is missing or is not a
            ``LightningDataModule``, or a required argument is missing (one line each).
    """
    module_name, _, name = class_path.rpartition(".")
    try:
        module = importlib.import_module(module_name or "seqboltz.data")
    except ImportError as exc:
        raise ValueError(f"cannot import the module of data module {class_path!r}: {exc}") from exc
    cls = getattr(module, name, None)
    if not isinstance(cls, type):
        raise ValueError(f"unknown data module {class_path!r}: {module.__name__} has no {name!r}")
    if not issubclass(cls, L.LightningDataModule):
        raise ValueError(f"{class_path!r} is not a LightningDataModule")
    params = inspect.signature(cls).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    args = {k: v for k, v in init_args.items() if takes_any or k in params}
    missing = [
        k
        for k, p in params.items()
        if p.default is inspect.Parameter.empty
        and p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
        and k not in args
    ]
    if missing:
        raise ValueError(
            f"cannot rebuild {class_path}: no value for its argument(s) {missing} (a DataModule "
            "records its arguments with self.save_hyperparameters() in __init__)"
        )
    return cls(**args)
