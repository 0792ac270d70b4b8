"""Features of a trained layer as data for the next: greedy layer-wise training (Hinton, Osindero
& Teh 2006; for convolutional layers, Lee et al. 2009)."""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path
from typing import Any

import numpy as np
import torch

from seqboltz.data._datamodule import ArrayDataModule, build_datamodule
from seqboltz.data._fetch import sha256_file

__all__ = ["PooledFeaturesDataModule"]


class PooledFeaturesDataModule(ArrayDataModule):
    """The pooling-layer probabilities ``P(p = 1 | v)`` of a trained
    :class:`~seqboltz.models.ConvolutionalRBM`, computed over another DataModule's splits.

    The next layer (a ``ConvolutionalRBM`` with binary visibles of shape ``lower.pool_shape``)
    trains on them with the same system; :class:`~seqboltz.models.ConvolutionalDBN` then stacks
    the two. The same splits as the lower layer's data, so nothing held out leaks into training.

    Args:
        checkpoint: the lower layer's checkpoint (``seqboltz fit`` of a ConvolutionalRBM recipe).
        data: the DataModule the lower layer was trained on (e.g. ``MNIST5kDataModule``), or
            its record ``{"class_path": …, "init_args": {…}}`` (a ``seqboltz.data`` class), as
            a checkpoint of the upper layer stores it.
        checkpoint_sha256: the lower checkpoint's sha256, checked when given (a checkpoint of
            the upper layer records it, so a rebuilt module refuses another lower layer).
        batch_size: rows per batch.
        shuffle_seed: seed of the training order.
        num_workers: DataLoader workers.
        chunk_size: images per forward pass when computing the features.
    """

    _visible_kind = "bernoulli"

    def __init__(
        self,
        checkpoint: str | Path,
        data: ArrayDataModule | dict[str, Any],
        batch_size: int = 50,
        shuffle_seed: int = 0,
        num_workers: int = 0,
        chunk_size: int = 500,
        checkpoint_sha256: str | None = None,
    ) -> None:
        super().__init__(batch_size=batch_size, shuffle_seed=shuffle_seed, num_workers=num_workers)
        if isinstance(data, dict):
            data = _data_from_record(data)
        if not isinstance(data, ArrayDataModule):
            raise TypeError(
                f"data must be an in-memory seqboltz DataModule, got {type(data).__name__}"
            )
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
        self.checkpoint = Path(checkpoint)
        self.data = data
        self.chunk_size = chunk_size
        self.expected_sha256 = checkpoint_sha256
        self.save_hyperparameters(ignore=["data", "checkpoint_sha256"])
        self.hparams["data"] = {
            "class_path": f"{type(data).__module__}.{type(data).__qualname__}",
            "init_args": _init_args(type(data), dict(getattr(data, "hparams", {}))),
        }
        self._lower: Any = None

    @property
    def lower(self) -> Any:
        """The lower layer (a ``ConvolutionalRBM`` in eval mode), loaded on first use."""
        if self._lower is None:
            from seqboltz.models import ConvolutionalRBM, load_model

            model = load_model(self.checkpoint)
            if not isinstance(model, ConvolutionalRBM):
                raise ValueError(
                    f"{self.checkpoint} holds a {type(model).__name__}; greedy convolutional "
                    "training needs a ConvolutionalRBM checkpoint"
                )
            digest = sha256_file(self.checkpoint)
            if self.expected_sha256 is not None and digest != self.expected_sha256:
                raise ValueError(
                    f"{self.checkpoint} has sha256 {digest[:12]}…, not the lower layer this "
                    f"was built with ({self.expected_sha256[:12]}…)"
                )
            self._lower = model
            self.hparams["checkpoint_sha256"] = digest
        return self._lower

    def prepare_data(self) -> None:
        self.data.prepare_data()

    def _load(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        lower = self.lower
        self.data.setup("fit")
        if self.data.n_features != lower.n_visible:
            raise ValueError(
                f"the lower layer takes {lower.n_visible} values per image but "
                f"{type(self.data).__name__} has {self.data.n_features}"
            )
        return tuple(  # type: ignore[return-value]
            self._features(t)
            for t in (self.data.train_tensor, self.data.val_tensor, self.data.test_tensor)
        )

    @torch.no_grad()
    def _features(self, x: torch.Tensor) -> np.ndarray:
        ref = self.lower.reference_parameter()
        parts = [
            self.lower.pooling_probs(chunk.to(ref)).flatten(1).float().cpu()
            for chunk in x.split(self.chunk_size)
        ]
        return torch.cat(parts).numpy()

    def pictures(self, model: Any) -> dict[str, np.ndarray]:
        """The upper layer in the lower layer's input space: ``filters_layer2``, and ``samples``
        of the stacked :class:`~seqboltz.models.ConvolutionalDBN` started at test images."""
        from seqboltz.models import ConvolutionalDBN

        stacked = ConvolutionalDBN(self.lower.to(model.reference_parameter()), model)
        test = self.data.test_tensor if self.data.n_features == self.lower.n_visible else None
        pictures = stacked.pictures(torch.Generator().manual_seed(0), test)
        return {k: v for k, v in pictures.items() if k != "filters_layer1"}


def _data_from_record(record: dict[str, Any]) -> ArrayDataModule:
    """Rebuild an in-memory DataModule from ``{"class_path", "init_args"}`` (only classes of
    :mod:`seqboltz.data`, see :func:`~seqboltz.data._datamodule.build_datamodule`)."""
    class_path = str(record.get("class_path", ""))
    cls = getattr(importlib.import_module("seqboltz.data"), class_path.rpartition(".")[2], None)
    if not isinstance(cls, type):
        raise ValueError(f"data must name a seqboltz.data DataModule, got {class_path!r}")
    module = build_datamodule(class_path, _init_args(cls, dict(record.get("init_args", {}))))
    if not isinstance(module, ArrayDataModule):
        raise TypeError(f"data must be an in-memory seqboltz DataModule, got {class_path!r}")
    return module


def _init_args(cls: type, hparams: dict[str, Any]) -> dict[str, Any]:
    """The entries of ``hparams`` that are arguments of ``cls`` (LightningCLI and Lightning's
    frame inspection add others, e.g. ``_class_path``)."""
    names = set(inspect.signature(cls).parameters)
    return {k: v for k, v in hparams.items() if k in names}
