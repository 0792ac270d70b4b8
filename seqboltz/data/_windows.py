"""History windows over sequences of frames, shared by the motion and speech DataModules.

A split's sequences (clips, utterances) are concatenated into one ``(N, D)`` tensor; only rows
with at least ``order`` earlier frames *of the same sequence* are window targets, so a window
never straddles two sequences. Batches are

``{"v": (B, D) frame t, "cond": {"history": (B, order, D) frames t-1 … t-order (index 0 is
t-1), "style": (B, S) if the data has a style}}``, float32.

A training split may also take histories the model generated itself
(:meth:`SequenceDataModule.set_train_history`, "data as demonstrator": Venkatraman, Hebert &
Bagnell 2015): a window's history then comes, with a set probability, from the model's own
frames at the same rows while its target stays the real frame.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import lightning as L
import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from seqboltz.data._datamodule import sharded_loader

__all__ = [
    "OwnHistory",
    "SequenceDataModule",
    "WindowDataset",
    "WindowSplit",
    "collate_windows",
]


@dataclass
class OwnHistory:
    """Histories a model generated itself, shared by a DataModule and its live training
    datasets (so a refresh reaches the next batch without rebuilding the loader).

    Attributes:
        frames: ``(N, D)`` float32 rows aligned with the split's concatenated data; ``None``:
            real histories only.
        prob: probability that a window's history comes from ``frames``.
    """

    frames: Tensor | None = None
    prob: float = 0.0


class WindowDataset(Dataset[dict[str, Any]]):
    """Windows ``(frame t, frames t-1 … t-order)`` over a concatenated ``(N, D)`` split.

    ``targets`` holds the row of frame ``t`` of each window; ``__getitems__`` slices a whole
    batch at once. With ``own`` (:class:`OwnHistory`), each window's history is taken from
    ``own.frames`` instead with probability ``own.prob``; the target stays the real frame."""

    def __init__(
        self,
        data: Tensor,
        targets: Tensor,
        order: int,
        style: Tensor | None,
        history_noise: float = 0.0,
        seed: int = 0,
        own: OwnHistory | None = None,
    ) -> None:
        self.data = data
        self.targets = targets
        self.lags = torch.arange(1, order + 1, dtype=torch.long)
        self.style = style
        self.history_noise = history_noise
        self.generator = torch.Generator().manual_seed(seed) if history_noise > 0 else None
        self.own = own
        self.own_generator = torch.Generator().manual_seed(seed + 1)

    def __len__(self) -> int:
        return int(self.targets.shape[0])

    def __getitems__(self, indices: Sequence[int]) -> dict[str, Any]:
        rows = self.targets[torch.as_tensor(indices, dtype=torch.long)]
        history = self.data[rows[:, None] - self.lags]
        if self.generator is not None:  # training-time noise on the history (see the module)
            noise = torch.randn(history.shape, generator=self.generator, dtype=history.dtype)
            history = history + self.history_noise * noise
        own = self.own
        if own is not None and own.frames is not None and own.prob > 0:
            pick = torch.rand(len(rows), generator=self.own_generator) < own.prob
            mine = own.frames[rows[:, None] - self.lags]
            history = torch.where(pick[:, None, None], mine, history)
        cond: dict[str, Tensor] = {"history": history}
        if self.style is not None:
            cond["style"] = self.style[rows]
        return {"v": self.data[rows], "cond": cond}

    def __getitem__(self, index: int) -> dict[str, Any]:
        batch = self.__getitems__([index])
        return {
            "v": batch["v"][0],
            "cond": {k: v[0] for k, v in batch["cond"].items()},
        }


def collate_windows(batch: dict[str, Any] | Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Pass a batch from ``__getitems__`` through; stack single windows otherwise."""
    if isinstance(batch, dict):
        return batch
    items = list(batch)
    return {
        "v": torch.stack([b["v"] for b in items]),
        "cond": {k: torch.stack([b["cond"][k] for b in items]) for k in items[0]["cond"]},
    }


class WindowSplit:
    """One split: its sequences ``[(T_i, D)]`` (standardised), optional per-frame style
    ``[(T_i, S)]``, the concatenated tensor and the window targets.

    Args:
        arrays: the split's sequences.
        order: history length.
        style: per-frame style aligned with ``arrays`` (``(T_i,)`` is read as ``(T_i, 1)``).
        sources: what each sequence came from (clips, file paths), kept for the caller.
    """

    def __init__(
        self,
        arrays: list[np.ndarray],
        order: int,
        style: list[np.ndarray] | None = None,
        sources: Sequence[Any] = (),
    ) -> None:
        self.arrays = arrays
        self.sources = list(sources)
        self.order = order
        lengths = [a.shape[0] for a in arrays]
        self.starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
        self.data = torch.from_numpy(np.concatenate(arrays, axis=0).astype(np.float32))
        targets = [s + np.arange(order, n) for s, n in zip(self.starts, lengths, strict=True)]
        self.targets = torch.from_numpy(np.concatenate(targets).astype(np.int64))
        self.style = None
        if style is not None:
            cols = [s.reshape(s.shape[0], -1) for s in style]
            self.style = torch.from_numpy(np.concatenate(cols).astype(np.float32))

    def style_arrays(self) -> list[np.ndarray] | None:
        """Per-sequence style ``[(T_i, S) float64]`` (``None`` without a style)."""
        if self.style is None:
            return None
        style = self.style.double().numpy()
        lengths = [a.shape[0] for a in self.arrays]
        return [style[s : s + n].copy() for s, n in zip(self.starts, lengths, strict=True)]


class SequenceDataModule(L.LightningDataModule):
    """What the motion and speech DataModules share: splits of sequences, windows, loaders.

    Subclasses set ``self._splits = {"train": …, "val": …, "test": …}`` in :meth:`setup` and
    define :attr:`style_dim` and :meth:`stats`.
    """

    visible_kind = "gaussian"
    #: the windows a split's loader serves (a subclass may rename the per-frame extra input)
    window_dataset: type[WindowDataset] = WindowDataset

    def __init__(
        self,
        order: int,
        batch_size: int,
        shuffle_seed: int = 0,
        num_workers: int = 0,
        history_noise: float = 0.0,
    ) -> None:
        super().__init__()
        if not history_noise >= 0:
            raise ValueError(f"history_noise must be >= 0, got {history_noise}")
        self.history_noise = history_noise
        if order < 1:
            raise ValueError(f"order must be >= 1, got {order}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if num_workers < 0:
            raise ValueError(f"num_workers must be >= 0, got {num_workers}")
        self.order = order
        self.batch_size = batch_size
        self.shuffle_seed = shuffle_seed
        self.num_workers = num_workers
        self._splits: dict[str, WindowSplit] = {}
        self._own = OwnHistory()

    def _split(self, split: str) -> WindowSplit:
        if not self._splits:
            raise RuntimeError(f"{type(self).__name__}: the data exists after setup()")
        if split not in self._splits:
            raise ValueError(f"split must be 'train', 'val' or 'test', got {split!r}")
        return self._splits[split]

    @property
    def n_features(self) -> int:
        """``D``, the number of modelled dimensions per frame (after :meth:`setup`)."""
        return int(self._split("train").data.shape[1])

    @property
    def style_dim(self) -> int:
        """Width of ``cond["style"]`` (0 without style)."""
        return 0

    @property
    def train_tensor(self) -> Tensor:
        """All standardised training frames ``(N_train, D)`` float32, sequence after sequence."""
        return self._split("train").data

    @property
    def val_tensor(self) -> Tensor:
        return self._split("val").data

    @property
    def test_tensor(self) -> Tensor:
        return self._split("test").data

    def eval_tensor(self) -> Tensor:
        """All standardised held-out frames ``(N_test, D)`` float32."""
        return self.test_tensor

    def clips(self, split: str = "test") -> list[np.ndarray]:
        """The standardised sequences ``[(T_i, D) float64, ...]`` of a split; window targets
        of sequence ``i`` are rows ``order … T_i - 1``."""
        return [np.asarray(a, dtype=np.float64).copy() for a in self._split(split).arrays]

    def style_clips(self, split: str = "test") -> list[np.ndarray] | None:
        """Per-frame style ``[(T_i, S) float64, ...]`` aligned with :meth:`clips` (``None``
        without a style)."""
        return self._split(split).style_arrays()

    def n_windows(self, split: str = "train") -> int:
        """Number of windows (targets) of a split."""
        return int(self._split(split).targets.shape[0])

    def set_train_history(self, clips: Sequence[np.ndarray] | None, prob: float = 1.0) -> None:
        """Train on histories a model generated itself ("data as demonstrator": Venkatraman,
        Hebert & Bagnell 2015): with probability ``prob`` a training window's history comes
        from ``clips`` (standardised, aligned with :meth:`clips` of ``"train"``; e.g. the
        model's free-running output from each sequence's first frames) while its target
        stays the real frame, so the model learns to correct its own drift. ``None``: real
        histories. Loaders already made see the change at their next batch. (On motion, the
        residual CRBM trained on its own short rollouts diverged: ``benchmarks/RESULTS.md``,
        session 15.)
        """
        if clips is None:
            self._own.frames, self._own.prob = None, 0.0
            return
        real = self._split("train").arrays
        if len(clips) != len(real) or any(
            np.shape(c) != r.shape for c, r in zip(clips, real, strict=True)
        ):
            raise ValueError("own histories must have the training clips' shapes")
        if not 0.0 <= prob <= 1.0:
            raise ValueError(f"prob must be in [0, 1], got {prob}")
        stacked = np.concatenate([np.asarray(c, dtype=np.float32) for c in clips])
        if not np.isfinite(stacked).all():
            raise ValueError("own histories contain NaN or infinite values")
        self._own.frames, self._own.prob = torch.from_numpy(stacked), prob

    def stats(self) -> dict[str, Any]:
        raise NotImplementedError

    def _dataset(self, split: str) -> WindowDataset:
        """The windows of a split (history noise and own histories on ``"train"`` only)."""
        s = self._split(split)
        return self.window_dataset(
            s.data,
            s.targets,
            self.order,
            s.style,
            history_noise=self.history_noise if split == "train" else 0.0,
            seed=self.shuffle_seed,
            own=self._own if split == "train" else None,
        )

    def _loader(self, split: str, shuffle: bool) -> DataLoader[dict[str, Any]]:
        return sharded_loader(
            self._dataset(split),
            self.trainer,
            self.batch_size,
            shuffle=shuffle,
            seed=self.shuffle_seed,
            collate_fn=collate_windows,
            num_workers=self.num_workers,
        )

    def train_dataloader(self) -> DataLoader[dict[str, Any]]:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader[dict[str, Any]]:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader[dict[str, Any]]:
        return self._loader("test", shuffle=False)
