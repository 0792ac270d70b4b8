"""Warm start of a conditional model's hidden units from another voice's (or rig's) model.

Why. A voice trained on two minutes of speech (CMU ARCTIC ``slt``: 43 training prompts) has
too little data for its hidden units to learn much of how the linguistic context shapes the
frames, while a voice with twenty minutes (the Asterisk prompts) has learnt it. The hidden
units' view of the controls, ``b̂ = b + c Q``, does not depend on the voice's acoustic space,
so it carries over between speakers, sample rates and feature sizes, provided both models
read the same controls (the same text front end). The other parameters (``W``, the visible
side, the linear start) are the new voice's own. This is the shared-hidden-layer speaker
adaptation of multi-speaker DNN synthesis (Fan, Qian, Soong & He 2015, "Multi-speaker
modeling and speaker adaptation for DNN-based TTS synthesis", ICASSP), for a conditional RBM:
the source model's control-to-hidden weights and hidden biases are the new model's start, and
training (CD and :class:`~seqboltz.training.FitConditionalMean`) goes on from there.

The source is a training checkpoint (``.ckpt``), not an exported artifact: ONNX export folds
some parameters into other constants (a model with two controls had ``control_to_hidden``
concatenated into ``cat_2``), so an artifact does not keep them by name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import torch

__all__ = ["WarmStartHidden"]

DEFAULT_PARAMETERS = ("control_to_hidden", "hidden_bias")


def _control_names(stats: Any) -> list[str] | None:
    """The per-frame control names a model card's data statistics record, if any."""
    if not isinstance(stats, dict):
        return None
    front_end = stats.get("front_end")
    names = front_end.get("frame_features") if isinstance(front_end, dict) else None
    return list(names) if isinstance(names, list) else None


def _read_source(path: Path) -> tuple[dict[str, torch.Tensor], list[str] | None]:
    """``({energy_model parameter name: tensor}, control names or None)`` of a checkpoint."""
    if path.suffix == ".onnx":  # the exporter may fold parameters into others (cat_2, …)
        raise ValueError(
            "an exported artifact's graph does not keep every parameter by name; "
            "start from the voice's training checkpoint (.ckpt)"
        )
    source = torch.load(path, map_location="cpu", weights_only=False)
    if not isinstance(source, dict):
        raise ValueError("not a seqboltz checkpoint")
    state = source.get("state_dict", {})
    params = {k.removeprefix("energy_model."): v for k, v in state.items()}
    card = source.get("seqboltz", {})
    return params, _control_names((card.get("data") or {}).get("stats"))


class WarmStartHidden(L.Callback):
    """Copy the hidden units' control side from a trained checkpoint at the start of a fit.

    Args:
        checkpoint: a seqboltz checkpoint (``.ckpt``) of a model with the same controls and
            the same number of hidden units.
        parameters: the ``energy_model`` parameters to copy (default: the control-to-hidden
            weights ``Q``, shape ``(n_controls, n_hidden)``, and the hidden biases ``b``,
            shape ``(n_hidden,)``): those that do not depend on the visible space.

    Raises:
        ValueError: at fit start, when the checkpoint lacks a parameter, a shape differs, or
            the two models' data name different controls (another front end).

    A resumed fit (``ckpt_path``) keeps its own parameters: the copy is a start, made once.
    """

    def __init__(
        self, checkpoint: str | Path, parameters: tuple[str, ...] | list[str] = DEFAULT_PARAMETERS
    ) -> None:
        if not parameters:
            raise ValueError("WarmStartHidden needs at least one parameter name")
        self.checkpoint = Path(checkpoint)
        self.parameters = tuple(parameters)

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if getattr(trainer, "ckpt_path", None):  # resuming: the run's own parameters stand
            return
        if not self.checkpoint.is_file():
            raise ValueError(f"WarmStartHidden: no checkpoint at {self.checkpoint}")
        try:
            params, theirs = _read_source(self.checkpoint)
        except Exception as exc:  # a truncated or foreign file: say which, in one line
            raise ValueError(f"WarmStartHidden: cannot read {self.checkpoint}: {exc}") from exc
        stats = getattr(getattr(trainer, "datamodule", None), "stats", None)
        ours = _control_names(stats()) if callable(stats) else None
        if theirs is not None and ours is not None and theirs != ours:
            raise ValueError(
                f"WarmStartHidden: {self.checkpoint} was trained on other controls "
                f"({len(theirs)} named, this data {len(ours)}): the text front ends differ"
            )
        model = getattr(pl_module, "energy_model", None)
        for name in self.parameters:
            target = getattr(model, name, None)
            if name not in params or not isinstance(target, torch.Tensor):
                where = f"the checkpoint {self.checkpoint}" if name not in params else "the model"
                raise ValueError(f"WarmStartHidden: {name!r} is missing from {where}")
            value = params[name]
            if tuple(value.shape) != tuple(target.shape):
                raise ValueError(
                    f"WarmStartHidden: {name} has shape {tuple(value.shape)} in "
                    f"{self.checkpoint} but {tuple(target.shape)} in this model"
                )
            if not torch.isfinite(value).all():
                raise ValueError(f"WarmStartHidden: {name} in {self.checkpoint} is not finite")
            with torch.no_grad():
                target.copy_(value.to(target))
