"""The quiet Lightning Trainer that the training tests build: one CPU device, and no logger,
checkpoints, progress bar, model summary or sanity validation, unless a test asks for them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L

QUIET: dict[str, Any] = {
    "accelerator": "cpu",
    "devices": 1,
    "logger": False,
    "enable_checkpointing": False,
    "enable_progress_bar": False,
    "enable_model_summary": False,
    "num_sanity_val_steps": 0,
}


def quiet_trainer(root: Path | None = None, **kwargs: Any) -> L.Trainer:
    """A Trainer with :data:`QUIET`'s options, ``kwargs`` over them; ``root``: its
    ``default_root_dir`` (checkpoints go there with ``enable_checkpointing=True``)."""
    options = dict(QUIET)
    if root is not None:
        options["default_root_dir"] = str(root)
    options.update(kwargs)
    return L.Trainer(**options)
