"""``seqboltz fit|validate|test|predict``: LightningCLI over :class:`RBMSystem` and DataModules.

Recipes are YAML files with ``model`` (the system's arguments, with
``energy_model: {class_path, init_args}``), ``data`` (a DataModule ``class_path``) and
``trainer`` sections; the full config of every run is saved beside its logs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import lightning as L
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

from seqboltz.training._system import RBMSystem

__all__ = ["run_cli"]


def _n_features(datamodule: Any) -> int:
    """The data's frame size, loading the data first when it is known only after setup."""
    try:
        return int(datamodule.n_features)
    except (RuntimeError, ValueError):
        datamodule.prepare_data()
        datamodule.setup("fit")
        return int(datamodule.n_features)


class SeqboltzCLI(LightningCLI):
    """LightningCLI whose model size follows the data: ``n_visible`` comes from the DataModule."""

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.link_arguments(
            "data",
            "model.energy_model.init_args.n_visible",
            compute_fn=_n_features,
            apply_on="instantiate",
        )


def run_cli(args: Sequence[str] | None = None) -> LightningCLI:
    """Run LightningCLI with ``args`` (e.g. ``["fit", "--config", "recipes/mnist_rbm.yaml"]``).

    ``None`` parses ``sys.argv[1:]`` (the console script's own arguments).
    """
    return SeqboltzCLI(
        RBMSystem,
        L.LightningDataModule,
        subclass_mode_data=True,
        args=None if args is None else list(args),
        auto_configure_optimizers=False,
        save_config_kwargs={"overwrite": True},
        parser_kwargs={"parser_mode": "yaml"},
    )
