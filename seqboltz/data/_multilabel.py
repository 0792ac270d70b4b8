"""Multi-label classification as structured output prediction: the Yeast data set.

Mnih, Larochelle & Hinton (2011, "Conditional Restricted Boltzmann Machines for Structured Output
Prediction", UAI, §5) use conditional RBMs where the output space is small, multi-label
classification among them. Yeast (Elisseeff & Weston 2002, "A kernel method for multi-labelled
classification", NeurIPS; the MULAN version, Tsoumakas et al. 2011) is the best-known small
multi-label set: 2417 genes, 103 real features (micro-array expression and phylogenetic
profiles), 14 functional classes, 4.24 labels per gene on average. It ships inside the ``river``
wheel (``river/datasets/yeast.csv.gz``, the MULAN data as OpenML 40597 has it) and is fetched
from there through the pinned fetcher (:func:`~seqboltz.data.fetch`); the pin is the CPython 3.11
manylinux x86-64 wheel, the one ``pip download`` picks for the project's Python.

Split: the file's first 1500 rows train (validation carved out of them), its last 917 test:
the sizes of MULAN's fixed ``yeast-train`` / ``yeast-test`` split, in the file's order.
"""

from __future__ import annotations

import csv
import gzip
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from seqboltz.data._datamodule import validate_array
from seqboltz.data._denoise import PairsDataModule
from seqboltz.data._fetch import PinnedFile, fetch

__all__ = ["YEAST", "YeastDataModule", "fetch_yeast", "load_yeast"]

YEAST = PinnedFile(
    name="river-0.26.1-yeast.csv.gz",
    sha256="2969cb4bab877a27adcbe17871fa0b378a1e54b98816cd6106b542ee450a1c09",
    requirement="river==0.26.1",
    archive_sha256="6a11e1a9749beec3ea138efeb0205b2c5cea8d424e9deee306c8980faec01bef",
    member="river/datasets/yeast.csv.gz",
    dist="wheel",
)
"""Yeast (MULAN): gzip CSV, header ``Att1..Att103,Class1..Class14``, 2417 rows."""

YEAST_FEATURES, YEAST_LABELS, YEAST_ROWS, YEAST_TRAIN_ROWS = 103, 14, 2417, 1500


def fetch_yeast(cache_dir: str | Path | None = None, refetch: bool = False) -> Path:
    """Path of the cached Yeast CSV (:data:`YEAST`), fetched on first use (see
    :func:`~seqboltz.data.fetch`)."""
    return fetch(YEAST, cache_dir=cache_dir, refetch=refetch)


def load_yeast(cache_dir: str | Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(x (2417, 103) float32, y (2417, 14) float32 in {0, 1})`` in the file's row order.

    Raises:
        ValueError: the file does not have the Yeast layout (header, row count, 0/1 labels).
    """
    path = fetch_yeast(cache_dir)
    with gzip.open(path, "rt", newline="") as f:
        rows = list(csv.reader(f))
    header, body = rows[0], rows[1:]
    expected = [f"Att{i}" for i in range(1, YEAST_FEATURES + 1)]
    expected += [f"Class{i}" for i in range(1, YEAST_LABELS + 1)]
    if header != expected or len(body) != YEAST_ROWS:
        raise ValueError(
            f"{path}: not the Yeast layout (header of {len(header)} columns, {len(body)} rows; "
            f"expected Att1..Att{YEAST_FEATURES}, Class1..Class{YEAST_LABELS}, {YEAST_ROWS} rows)"
        )
    table = np.asarray(body, dtype=np.float64)
    x, y = table[:, :YEAST_FEATURES], table[:, YEAST_FEATURES:]
    if not np.isin(y, (0.0, 1.0)).all():
        raise ValueError(f"{path}: the label columns hold values other than 0 and 1")
    return x.astype(np.float32), y.astype(np.float32)


class YeastDataModule(PairsDataModule):
    """Yeast multi-label classification: batches ``(y, x)``, 14 binary labels given 103 features.

    Train a :class:`~seqboltz.models.StructuredOutputCRBM` with ``n_visible = n_features`` (14)
    and ``n_cond = n_cond`` (103); with ``D = 14`` its ``p(y | x)`` is exact by enumeration
    (``inference: exact_map``).

    Splits: test = the file's last 917 rows (MULAN's test size); ``val_size`` rows of the first
    1500, drawn by ``split_seed``, validate; the rest train. Features are standardised with the
    training rows' mean and standard deviation (:meth:`stats`).

    Args:
        batch_size: rows per batch.
        val_size: validation rows taken from the 1500 training rows (1..1499).
        split_seed: seed of the train/val draw.
        standardize: standardise the features with training statistics.
        cache_dir: cache directory for the fetcher.
        shuffle_seed: seed of the training order.
        num_workers: DataLoader workers.
    """

    visible_kind = "bernoulli"

    def __init__(
        self,
        batch_size: int = 50,
        val_size: int = 300,
        split_seed: int = 0,
        standardize: bool = True,
        cache_dir: str | None = None,
        shuffle_seed: int = 0,
        num_workers: int = 0,
    ) -> None:
        super().__init__()
        if batch_size < 1 or num_workers < 0:
            raise ValueError(
                f"need batch_size >= 1 and num_workers >= 0; got {batch_size}, {num_workers}"
            )
        if not 1 <= val_size < YEAST_TRAIN_ROWS:
            raise ValueError(f"val_size must be in [1, {YEAST_TRAIN_ROWS - 1}], got {val_size}")
        self.batch_size = batch_size
        self.val_size = val_size
        self.split_seed = split_seed
        self.standardize = standardize
        self.cache_dir = cache_dir
        self.shuffle_seed = shuffle_seed
        self.num_workers = num_workers
        self._splits: dict[str, tuple[Tensor, Tensor]] | None = None
        self._stats: dict[str, list[float]] = {}
        self.save_hyperparameters()

    @property
    def n_features(self) -> int:
        """``dim y``: the 14 labels."""
        return YEAST_LABELS

    @property
    def n_cond(self) -> int:
        """``dim x``: the 103 features."""
        return YEAST_FEATURES

    def prepare_data(self) -> None:
        fetch_yeast(self.cache_dir)

    def setup(self, stage: str | None = None) -> None:
        """Load, split, standardise and validate (once)."""
        if self._splits is not None:
            return
        x, y = load_yeast(self.cache_dir)
        order = np.random.default_rng(self.split_seed).permutation(YEAST_TRAIN_ROWS)
        val_idx, train_idx = np.sort(order[: self.val_size]), np.sort(order[self.val_size :])
        test_idx = np.arange(YEAST_TRAIN_ROWS, YEAST_ROWS)
        mean = x[train_idx].mean(0) if self.standardize else np.zeros(x.shape[1], np.float32)
        std = x[train_idx].std(0) if self.standardize else np.ones(x.shape[1], np.float32)
        std = np.where(std > 0, std, 1.0).astype(np.float32)
        self._stats = {"mean": mean.tolist(), "std": std.tolist()}
        splits = {}
        for name, idx in (("train", train_idx), ("val", val_idx), ("test", test_idx)):
            xs = ((x[idx] - mean) / std).astype(np.float32)
            splits[name] = (
                torch.from_numpy(validate_array(y[idx], f"{name} y", "bernoulli")),
                torch.from_numpy(validate_array(xs, f"{name} x", "gaussian")),
            )
        self._splits = splits

    def stats(self) -> dict[str, list[float]]:
        """The feature standardisation (training mean and std per feature), after setup."""
        return dict(self._stats)
