"""``seqboltz fit|validate|test|predict``: LightningCLI over :class:`RBMSystem` and DataModules.

Recipes are YAML files with ``model`` (the system's arguments, with
``energy_model: {class_path, init_args}``), ``data`` (a DataModule ``class_path``) and
``trainer`` sections; the full config of every run is saved beside its logs.

What this adds to LightningCLI:

* the model's ``n_visible`` follows the data (``data.n_features``);
* each run writes TensorBoard event files and a ``metrics.csv`` into one versioned run folder,
  ``<default_root_dir>/lightning_logs/version_N/``, whose ``checkpoints/`` holds its
  checkpoints, so a second run never overwrites or renames the first one's ``last.ckpt``;
* your own images: ``--data.init_args.path=FILE_OR_FOLDER`` on a recipe over a built-in image
  set (``MNIST5kDataModule``, ``DigitsDataModule``, ``ImagePatchesDataModule``) switches its
  data to :class:`~seqboltz.data.ImageDataModule` in that set's mode (arguments of the same
  name, such as ``batch_size`` or ``val_size``, carry over);
* bad data (a missing, unreadable or too-short file, NaN, wrong shapes) and other bad values
  end the command with one line naming the file and the problem, and exit status 2
  (``SEQBOLTZ_TRACEBACK=1`` shows the traceback instead);
* ``seqboltz fit --help`` starts with the seqboltz models and DataModules;
* AIS in ``seqboltz test`` reports its progress and ±3σ bounds on stderr.
"""

from __future__ import annotations

import argparse
import inspect
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
from jsonargparse import DefaultHelpFormatter
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.loggers import CSVLogger, Logger, TensorBoardLogger

from seqboltz.training._system import RBMSystem

__all__ = ["run_cli", "run_loggers"]

_SUBCOMMANDS = ("fit", "validate", "test", "predict")
_IMAGES = "seqboltz.data.ImageDataModule"


def _n_features(datamodule: Any) -> int:
    """The data's frame size, loading the data first when it is known only after setup."""
    try:
        return int(datamodule.n_features)
    except (RuntimeError, ValueError):
        pass  # known after setup: load the data (outside the handler, so errors stand alone)
    datamodule.prepare_data()
    datamodule.setup("fit")
    return int(datamodule.n_features)


def run_loggers(root_dir: str | Path) -> list[Logger]:
    """CSV and TensorBoard loggers writing into one run folder ``root_dir/lightning_logs/
    version_N`` (the next free ``N``): ``events.out.tfevents.*``, ``metrics.csv``,
    ``hparams.yaml``, and (through ModelCheckpoint, which follows the first logger)
    ``checkpoints/``."""
    # CSV first: it warns about a run folder that already holds files (TensorBoard's would)
    csv = CSVLogger(save_dir=str(root_dir), name="lightning_logs")
    return [
        csv,
        TensorBoardLogger(save_dir=str(root_dir), name="lightning_logs", version=csv.version),
    ]


class _HelpFormatter(argparse.RawDescriptionHelpFormatter, DefaultHelpFormatter):
    """jsonargparse's help, with the description's own line breaks kept."""


def _first_line(obj: object) -> str:
    doc = inspect.getdoc(obj) or ""
    line = doc.strip().split("\n\n")[0].replace("\n", " ")
    line = re.sub(r":(?:class|func|meth|mod):`~?([^`]+)`", r"\1", line).replace("``", "")
    line = line.split(". ")[0].rstrip(".")
    if len(line) > 72:
        line = line[:70].rsplit(" ", 1)[0].rstrip(",;:(") + " …"
    return line


def _help_description() -> str:
    """The top of ``seqboltz fit --help``: seqboltz's models and DataModules, then recipes."""
    import seqboltz.data as data
    import seqboltz.models as models
    from seqboltz.models import EnergyModel

    model_names = [
        n
        for n in models.__all__
        if isinstance(getattr(models, n), type)
        and issubclass(getattr(models, n), EnergyModel)
        and not inspect.isabstract(getattr(models, n))
        and n not in ("EnergyModel", "SequenceRBM")
    ]
    data_names = [
        n
        for n in data.__all__
        if isinstance(getattr(data, n), type)
        and issubclass(getattr(data, n), L.LightningDataModule)
        and n not in ("ArrayDataModule", "SequenceDataModule")
    ]
    rows = ["models (--model.energy_model CLASS, then --model.energy_model.init_args.*):"]
    rows += [f"  {n:<26}{_first_line(getattr(models, n))}" for n in model_names]
    rows.append("")
    rows.append("DataModules (--data CLASS, then --data.init_args.*; --data.help CLASS for its")
    rows.append("arguments):")
    rows += [f"  {n:<26}{_first_line(getattr(data, n))}" for n in data_names]
    rows += [
        "",
        "examples:",
        "  seqboltz fit --config recipes/mnist_rbm.yaml",
        "  seqboltz fit --config recipes/mnist_rbm.yaml --data.init_args.path=my_images.npz",
        "  seqboltz fit --config recipes/patches_grbm.yaml --data.init_args.path=my/png/folder",
        "  seqboltz fit --config recipes/motion_crbm.yaml --data.init_args.path=my/bvh/folder",
        "  seqboltz test --config recipes/mnist_rbm.yaml --ckpt_path RUN/checkpoints/last.ckpt",
        "",
        "--data.init_args.path on a recipe over MNIST5kDataModule, DigitsDataModule or",
        "ImagePatchesDataModule trains it on your images (ImageDataModule: .npy/.npz, or a",
        "folder of PNG/JPEG). Runs write TensorBoard and CSV logs and checkpoints to",
        "<trainer.default_root_dir>/lightning_logs/version_N/. All options follow.",
    ]
    return "\n".join(rows)


class SeqboltzCLI(LightningCLI):
    """LightningCLI whose model size follows the data (``n_visible`` from the DataModule) and
    whose runs log to TensorBoard and CSV in one versioned folder (see the module docstring)."""

    def __init__(self, *args: Any, argv: Sequence[str] = (), **kwargs: Any) -> None:
        self._argv = list(argv)  # read by _parse_ckpt_path, inside LightningCLI.__init__
        super().__init__(*args, **kwargs)

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.link_arguments(
            "data",
            "model.energy_model.init_args.n_visible",
            compute_fn=_n_features,
            apply_on="instantiate",
        )

    def _parse_ckpt_path(self) -> None:
        """LightningCLI sets the system's arguments from ``--ckpt_path``'s hyperparameters;
        those given on the command line (e.g. ``--model.ais_betas=2000`` for ``test``) win."""
        before = self.config.clone()
        super()._parse_ckpt_path()
        subcommand = self.config.get("subcommand")
        if not subcommand or self.config is before:
            return
        for arg in self._argv:
            key = arg[2:].partition("=")[0]
            if arg.startswith("--model.") and not key.startswith("model.energy_model"):
                full = f"{subcommand}.{key}"
                if full in before:
                    self.config[full] = before[full]

    def instantiate_trainer(self, **kwargs: Any) -> L.Trainer:
        trainer = self._get(self.config_init, "trainer", default={})
        if "logger" not in kwargs and trainer.get("logger") in (None, True):
            kwargs["logger"] = run_loggers(trainer.get("default_root_dir") or os.getcwd())
        return super().instantiate_trainer(**kwargs)


# ---- your own images ------------------------------------------------------------------------
def _config_data_class(args: Sequence[str]) -> str | None:
    """The DataModule class path of the last ``--config`` file that names one."""
    import yaml

    found: str | None = None
    for i, arg in enumerate(args):
        if arg in ("-c", "--config") and i + 1 < len(args):
            path = args[i + 1]
        elif arg.startswith("--config="):
            path = arg.partition("=")[2]
        else:
            continue
        try:
            config = yaml.safe_load(Path(path).read_text())
        except (OSError, yaml.YAMLError):
            continue  # LightningCLI reports it
        data = config.get("data") if isinstance(config, dict) else None
        if isinstance(data, dict) and isinstance(data.get("class_path"), str):
            found = data["class_path"]
        elif isinstance(data, str):
            found = data
    return found


def _resolve(class_path: str) -> type | None:
    import importlib

    module, _, name = class_path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module or "seqboltz.data"), name, None)
    except ImportError:
        return None
    return cls if isinstance(cls, type) else None


def own_images_args(args: Sequence[str]) -> list[str]:
    """``args`` with a switch to :class:`~seqboltz.data.ImageDataModule` inserted when
    ``--data.init_args.path`` is given to a recipe over a built-in image set (see the module
    docstring); unchanged otherwise.

    Raises:
        ValueError: the recipe's DataModule reads no files and has no image counterpart.
    """
    args = list(args)
    at = next((i for i, a in enumerate(args) if a.startswith("--data.init_args.path")), None)
    if at is None or any(
        a == "--data" or a.startswith(("--data=", "--data.class_path")) for a in args
    ):
        return args
    class_path = _config_data_class(args)
    cls = _resolve(class_path) if class_path else None
    if cls is None or "path" in inspect.signature(cls).parameters:
        return args
    switch = getattr(cls, "own_images", None)
    if not isinstance(switch, dict):
        raise ValueError(
            f"this recipe's data ({cls.__name__}) reads no files of yours: it takes no path. "
            f"For your own images use a recipe over plain images (e.g. recipes/mnist_rbm.yaml "
            f"or recipes/patches_grbm.yaml), or --data={_IMAGES} --data.init_args.path=..."
        )
    extra = [f"--data={_IMAGES}"] + [f"--data.init_args.{k}={v}" for k, v in switch.items()]
    return args[:at] + extra + args[at:]


# ---- errors ---------------------------------------------------------------------------------
def _root_cause(exc: BaseException) -> BaseException:
    """What to report of a ``raise … from …`` chain (jsonargparse wraps errors raised in
    argument links that way): its outermost :class:`~seqboltz.data.DataError` (which names
    the file), else its innermost exception."""
    from seqboltz.data import DataError

    chain = [exc]
    while chain[-1].__cause__ is not None and chain[-1].__cause__ not in chain:
        chain.append(chain[-1].__cause__)
    return next((e for e in chain if isinstance(e, DataError)), chain[-1])


_USER_ERRORS = (ValueError, OSError)


def _one_line(exc: BaseException) -> str:
    cause = _root_cause(exc)
    if not isinstance(cause, _USER_ERRORS):
        cause = exc
    text = str(cause)
    if isinstance(cause, OSError) and cause.filename is not None and cause.strerror:
        text = f"{cause.filename}: {cause.strerror}"
    return " ".join(text.split())


def run_cli(args: Sequence[str] | None = None) -> LightningCLI:
    """Run LightningCLI with ``args`` (e.g. ``["fit", "--config", "recipes/mnist_rbm.yaml"]``).

    ``None`` parses ``sys.argv[1:]`` (the console script's own arguments).

    Raises:
        SystemExit: status 2 after one line on stderr for bad data or bad values (a
            :class:`~seqboltz.data.DataError`, a ``ValueError`` or an ``OSError``, also when
            raised inside an argument link); ``SEQBOLTZ_TRACEBACK=1`` re-raises instead.
    """
    argv = list(sys.argv[1:] if args is None else args)
    command = argv[0] if argv and argv[0] in _SUBCOMMANDS else "seqboltz"
    try:
        argv = own_images_args(argv)
        if args is None:  # LightningCLI warns when given both args and sys.argv
            sys.argv[1:] = argv
        from seqboltz.eval._partition import log_progress_to_stderr

        log_progress_to_stderr()
        description = _help_description()
        return SeqboltzCLI(
            RBMSystem,
            L.LightningDataModule,
            subclass_mode_data=True,
            args=None if args is None else argv,
            argv=argv,
            auto_configure_optimizers=False,
            save_config_kwargs={"overwrite": True},
            parser_kwargs={
                "parser_mode": "yaml",
                "formatter_class": _HelpFormatter,  # subcommands take the main parser's
                **{
                    name: {
                        "description": description,
                        "usage": f"seqboltz {name} --config RECIPE.yaml [--KEY=VALUE ...]",
                    }
                    for name in _SUBCOMMANDS
                },
            },
        )
    except _USER_ERRORS as exc:
        if os.environ.get("SEQBOLTZ_TRACEBACK"):
            raise
        print(f"seqboltz {command}: error: {_one_line(exc)}", file=sys.stderr)
        raise SystemExit(2) from None
