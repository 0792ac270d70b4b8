"""``seqboltz fit|validate|test|predict``: LightningCLI over :class:`RBMSystem` and DataModules.

Recipes are YAML files with ``model`` (the system's arguments, with
``energy_model: {class_path, init_args}``), ``data`` (a DataModule ``class_path``) and
``trainer`` sections; the full config of every run is saved beside its logs.
"""

from __future__ import annotations

from collections.abc import Sequence

import lightning as L
from lightning.pytorch.cli import LightningCLI

from seqboltz.training._system import RBMSystem

__all__ = ["run_cli"]


def run_cli(args: Sequence[str]) -> LightningCLI:
    """Run LightningCLI with ``args`` (e.g. ``["fit", "--config", "recipes/mnist_rbm.yaml"]``)."""
    return LightningCLI(
        RBMSystem,
        L.LightningDataModule,
        subclass_mode_data=True,
        args=list(args),
        auto_configure_optimizers=False,
        save_config_kwargs={"overwrite": True},
        parser_kwargs={"parser_mode": "yaml"},
    )
