"""Sequences of a trained CRBM's hidden probabilities: the data of a second layer.

Taylor, Hinton & Roweis (2007, section 3.3) train a second CRBM on the real-valued hidden
probabilities ``p(h¹_t = 1 | v_t, v_{t-1…t-n1})`` that the first layer infers from the data.
:class:`CRBMHiddenDataModule` computes them over every clip of the first layer's own splits
(so nothing held out leaks into training) and serves history windows of them exactly as the
motion DataModule serves frames. The first ``n1`` frames of each clip have no full history
and give no hidden frame.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from seqboltz.data._datamodule import build_datamodule
from seqboltz.data._fetch import sha256_file
from seqboltz.data._windows import SequenceDataModule, WindowSplit

__all__ = ["CRBMHiddenDataModule"]


class CRBMHiddenDataModule(SequenceDataModule):
    """Layer 1's hidden probabilities ``(T_i - n1, H¹)`` per clip, windowed with ``order``.

    Args:
        checkpoint: layer 1's checkpoint (``seqboltz fit`` of a ``ConditionalRBM`` or
            ``ResidualCRBM`` recipe).
        data: layer 1's DataModule record ``{"class_path": …, "init_args": {…}}``; default:
            the record in the checkpoint, so the same clips and splits are used.
        order: layer 2's history length ``n2`` (frames of ``h¹``).
        batch_size: windows per batch.
        shuffle_seed: seed of the training order.
        num_workers: DataLoader workers.
        checkpoint_sha256: layer 1's sha256, checked when given (a layer-2 checkpoint records
            it, so a rebuilt module refuses another first layer).

    Batches: ``{"v": (B, H¹), "cond": {"history": (B, order, H¹)}}`` float32 in [0, 1].
    """

    visible_kind = "bernoulli"

    def __init__(
        self,
        checkpoint: str | Path,
        data: dict[str, Any] | None = None,
        order: int = 2,
        batch_size: int = 100,
        shuffle_seed: int = 0,
        num_workers: int = 0,
        checkpoint_sha256: str | None = None,
    ) -> None:
        super().__init__(order, batch_size, shuffle_seed, num_workers)
        self.checkpoint = Path(checkpoint)
        self.data_record = data
        self.expected_sha256 = checkpoint_sha256
        self.save_hyperparameters()
        self._lower: Any = None
        self._inner: Any = None

    def _load_lower(self) -> tuple[Any, dict[str, Any]]:
        from seqboltz.models import ConditionalRBM, ResidualCRBM, load_model

        if not self.checkpoint.is_file():
            raise ValueError(f"{self.checkpoint}: no such layer-1 checkpoint")
        digest = sha256_file(self.checkpoint)
        if self.expected_sha256 is not None and digest != self.expected_sha256:
            raise ValueError(
                f"{self.checkpoint} has sha256 {digest[:12]}…, not the first layer this was "
                f"built with ({self.expected_sha256[:12]}…)"
            )
        model = load_model(self.checkpoint)
        residual = isinstance(model, ResidualCRBM)
        if not (type(model) is ConditionalRBM or residual) or model.n_controls or model.n_style:
            raise ValueError(
                f"{self.checkpoint} holds a {type(model).__name__}; a second CRBM layer needs a "
                "ConditionalRBM or ResidualCRBM (without controls or style) as its first layer"
            )
        record = self.data_record
        if record is None:
            ckpt = torch.load(self.checkpoint, map_location="cpu", weights_only=True)
            record = ckpt.get("seqboltz", {}).get("data")
            if not record:
                raise ValueError(
                    f"{self.checkpoint} records no DataModule; pass data={{class_path, init_args}}"
                )
        self.hparams["checkpoint_sha256"] = digest
        self.hparams["data"] = record
        return model.eval(), record

    def prepare_data(self) -> None:
        _, record = self._load_lower()
        build_datamodule(record["class_path"], dict(record.get("init_args", {}))).prepare_data()

    def setup(self, stage: str | None = None) -> None:
        if self._splits:
            return
        lower, record = self._load_lower()
        inner = build_datamodule(record["class_path"], dict(record.get("init_args", {})))
        inner.setup("fit")
        if inner.n_features != lower.n_visible:
            raise ValueError(
                f"layer 1 takes {lower.n_visible} values per frame but {type(inner).__name__} "
                f"has {inner.n_features}"
            )
        self._lower, self._inner = lower, inner
        self._splits = {
            split: WindowSplit(
                [h for h in (self.hidden_sequence(c) for c in inner.clips(split)) if len(h)],
                self.order,
            )
            for split in ("train", "val", "test")
        }
        for split, s in self._splits.items():
            if s.targets.numel() == 0:
                raise ValueError(
                    f"layer 1's {split} clips are too short for order {lower.order} + "
                    f"{self.order}: no window"
                )

    @torch.no_grad()
    def hidden_sequence(self, clip: np.ndarray) -> np.ndarray:
        """``(T, D)`` standardised frames → ``(T - n1, H¹)`` hidden probabilities (float64)."""
        lower = self._lower if self._lower is not None else self._load_lower()[0]
        n1 = lower.order
        if clip.shape[0] <= n1:
            return np.zeros((0, lower.n_hidden))
        x = torch.from_numpy(np.ascontiguousarray(clip)).to(lower.reference_parameter().dtype)
        lags = torch.arange(1, n1 + 1)
        rows = torch.arange(n1, x.shape[0])
        history = x[rows[:, None] - lags]  # (T - n1, n1, D), most recent first
        probs = lower.hidden_probs(x[rows], {"history": history})
        return probs.double().numpy()

    def stats(self) -> dict[str, Any]:
        """Layer 1's data statistics (the frames that the stacked model generates)."""
        self._split("train")
        return dict(self._inner.stats())

    def __repr__(self) -> str:
        return f"CRBMHiddenDataModule(checkpoint={str(self.checkpoint)!r}, order={self.order})"
