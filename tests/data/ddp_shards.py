"""Helper script for test_datamodule.py: which rows each DDP rank sees.

Run as ``python ddp_shards.py OUT_DIR`` (Lightning's DDP launcher re-runs this file once per
extra rank). Every rank writes ``OUT_DIR/rank{r}.json`` with the row ids it saw per epoch.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import lightning as L
import numpy as np
import torch

from seqboltz.data import ArrayDataModule

N, D = 96, 3


class Recorder(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(D))
        self.seen: dict[str, list[int]] = {}

    def training_step(self, batch: torch.Tensor, batch_idx: int) -> torch.Tensor:
        assert batch.dtype == torch.float32 and batch.ndim == 2 and batch.shape[1] == D
        key = f"train{self.current_epoch}"
        self.seen.setdefault(key, []).extend(batch[:, 0].long().tolist())
        return (batch @ self.w).pow(2).mean()

    def validation_step(self, batch: torch.Tensor, batch_idx: int) -> None:
        self.seen.setdefault(f"val{self.current_epoch}", []).extend(batch[:, 0].long().tolist())

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.0)


def main(out: Path) -> None:
    ids = np.arange(N, dtype=np.float32)
    train = np.stack([ids, np.zeros(N), np.ones(N)], axis=1)
    val = train[:40].copy()
    dm = ArrayDataModule.from_arrays(train, val, val, visible_kind="gaussian", batch_size=8)
    model = Recorder()
    trainer = L.Trainer(
        accelerator="cpu",
        devices=2,
        strategy="ddp",
        max_epochs=2,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    trainer.fit(model, datamodule=dm)
    (out / f"rank{trainer.global_rank}.json").write_text(json.dumps(model.seen))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
