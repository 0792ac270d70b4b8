"""A Lightning callback that writes what a model learned (filters, samples) as PNG files."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch

from seqboltz.models import EnergyModel

__all__ = ["SavePictures"]


class SavePictures(L.Callback):
    """Write ``energy_model.pictures()`` as ``<log dir>/<dirname>/<name>.png`` when fitting ends.

    A DataModule may add pictures that need the data's context through a ``pictures(model)``
    method (e.g. :class:`~seqboltz.data.PooledFeaturesDataModule` draws an upper layer's filters
    in the input's space).

    Args:
        dirname: folder under the run's log directory (``trainer.log_dir``).
        every_n_epochs: also write them every this many epochs (``0``: only at the end).
        seed: seed of the generator handed to :meth:`EnergyModel.pictures` (samples).
    """

    def __init__(self, dirname: str = "pictures", every_n_epochs: int = 0, seed: int = 0) -> None:
        if every_n_epochs < 0:
            raise ValueError(f"every_n_epochs must be >= 0, got {every_n_epochs}")
        self.dirname = dirname
        self.every_n_epochs = every_n_epochs
        self.seed = seed
        self.written: list[Path] = []

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        epoch = trainer.current_epoch + 1
        if self.every_n_epochs and epoch % self.every_n_epochs == 0:
            self._write(trainer, pl_module)

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._write(trainer, pl_module)

    def _write(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        model = getattr(pl_module, "energy_model", None)
        if not isinstance(model, EnergyModel):
            raise TypeError("SavePictures needs a LightningModule with an `energy_model`")
        from seqboltz.viz import save_png

        root = Path(trainer.log_dir or trainer.default_root_dir) / self.dirname
        generator = torch.Generator().manual_seed(self.seed)
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                pictures = model.pictures(generator)
                datamodule = getattr(trainer, "datamodule", None)
                data_pictures = getattr(datamodule, "pictures", None)
                if callable(data_pictures):  # e.g. an upper layer drawn in the input's space
                    pictures.update(data_pictures(model))
        finally:
            model.train(was_training)
        self.written = [save_png(root / f"{name}.png", pic) for name, pic in pictures.items()]
