"""Rebuilding models from checkpoints without unpickling code.

A checkpoint written by :class:`seqboltz.training.RBMSystem` carries, besides the
Lightning ``state_dict``, a ``"seqboltz"`` entry: ``{"model": {"kind": NAME,
"init_args": {...}}}``. :func:`load_model` reads it with ``torch.load(weights_only=True)``
and only instantiates classes registered here, so a checkpoint can never name arbitrary code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from seqboltz._io import atomic_write
from seqboltz.models._base import EnergyModel
from seqboltz.models._conv import ConvolutionalRBM
from seqboltz.models._crbm import ConditionalRBM, FactoredConditionalRBM
from seqboltz.models._mc import MeanCovarianceRBM
from seqboltz.models._rbm import BernoulliRBM, GaussianBernoulliRBM
from seqboltz.models._structured import StructuredOutputCRBM

__all__ = [
    "DEFAULT_GIBBS_STEPS",
    "default_gibbs_steps",
    "load_model",
    "model_from_spec",
    "model_spec",
    "recentred_gibbs_steps",
    "register_model",
    "save_model",
]

_REGISTRY: dict[str, type[EnergyModel]] = {}


def register_model(cls: type[EnergyModel]) -> type[EnergyModel]:
    """Register a model class under its class name (usable as a decorator)."""
    _REGISTRY[cls.__name__] = cls
    return cls


for _cls in (
    BernoulliRBM,
    GaussianBernoulliRBM,
    ConditionalRBM,
    FactoredConditionalRBM,
    ConvolutionalRBM,
    StructuredOutputCRBM,
    MeanCovarianceRBM,
):
    register_model(_cls)


def model_spec(model: EnergyModel) -> dict[str, Any]:
    """``{"kind": class name, "init_args": {...}}``: everything but the weights."""
    return {"kind": type(model).__name__, "init_args": model.init_args()}


def model_from_spec(spec: dict[str, Any]) -> EnergyModel:
    """Instantiate an (untrained) model from :func:`model_spec`'s output."""
    kind = spec.get("kind")
    if kind not in _REGISTRY:
        known = ", ".join(sorted(_REGISTRY))
        raise ValueError(f"unknown model kind {kind!r}; known kinds: {known}")
    return _REGISTRY[kind](**spec.get("init_args", {}))


def save_model(
    model: EnergyModel,
    path: str | Path,
    data: dict[str, Any] | None = None,
    recentred_gibbs_steps: int | None = None,
) -> Path:
    """Write ``model`` as a minimal seqboltz checkpoint (its spec and weights, the layout
    :class:`~seqboltz.training.RBMSystem` writes) that :func:`load_model` reads; returns ``path``.

    ``data`` is the DataModule record ``{"class_path", "init_args"}`` to keep beside it (as a
    trained checkpoint keeps its own), with its ``stats`` (what ``export`` puts on the card:
    a motion model's features and skeleton) and ``train_sha256`` when given, so that
    ``seqboltz evaluate`` and ``export`` rebuild the data of a model assembled outside a fit
    (e.g. a stacked :class:`TwoLayerCRBM`);
    ``recentred_gibbs_steps`` the ``k`` its intercept was re-centred at, if it was
    (:func:`recentred_gibbs_steps` reads it back).
    """
    path = Path(path)
    state = {f"energy_model.{k}": t for k, t in model.state_dict().items()}
    meta: dict[str, Any] = {"model": model_spec(model)}
    if data is not None:
        if not isinstance(data, dict) or not isinstance(data.get("class_path"), str):
            raise ValueError(
                f"data must be {{'class_path': str, 'init_args': {{…}}}}; got {data!r}"
            )
        meta["data"] = {
            "class_path": data["class_path"],
            "init_args": dict(data.get("init_args") or {}),
            **{k: data[k] for k in ("stats", "train_sha256") if data.get(k) is not None},
        }
    if recentred_gibbs_steps is not None:
        meta["recentred_gibbs_steps"] = int(recentred_gibbs_steps)
    entry = {"seqboltz": meta, "state_dict": state}
    atomic_write(path, lambda f: torch.save(entry, f))
    return path


def load_model(checkpoint: str | Path, map_location: str = "cpu") -> EnergyModel:
    """Load the trained energy model out of a seqboltz Lightning checkpoint.

    Args:
        checkpoint: path of a ``.ckpt`` written while training with ``RBMSystem``.
        map_location: device to load the tensors on.

    Returns:
        The model in eval mode, with its trained weights.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file is not a readable seqboltz checkpoint.
    """
    path = Path(checkpoint)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises several types for corrupt/unsafe files
        raise ValueError(f"cannot read checkpoint {path}: {exc}") from exc
    entry = ckpt.get("seqboltz") if isinstance(ckpt, dict) else None
    if not isinstance(entry, dict) or not isinstance(entry.get("model"), dict):
        raise ValueError(f"{path} is not a seqboltz checkpoint (no 'seqboltz' model spec)")
    if not isinstance(ckpt.get("state_dict"), dict):
        raise ValueError(f"{path} is not a seqboltz checkpoint (no state_dict)")
    try:
        model = model_from_spec(entry["model"])
        prefix = "energy_model."
        state = {k[len(prefix) :]: v for k, v in ckpt["state_dict"].items() if k.startswith(prefix)}
        model.load_state_dict(state)
    except (TypeError, RuntimeError) as exc:
        raise ValueError(f"{path}: the model spec and weights do not fit: {exc}") from exc
    return model.eval()


def recentred_gibbs_steps(checkpoint: str | Path | dict[str, Any]) -> int | None:
    """The ``k`` (Gibbs steps per frame) a checkpoint's intercept was re-centred at, if any.

    :class:`~seqboltz.training.RecentreIntercept` matches a residual CRBM's intercept to its
    sampler at one ``k`` and records it in the checkpoint; generations at another ``k``
    settle away from the data's mean pose. ``seqboltz export`` and ``seqboltz evaluate`` take
    it as their default ``k``.

    Args:
        checkpoint: a checkpoint's path, or the dictionary ``torch.load`` read from it.

    Returns:
        The recorded ``k``, or ``None`` (never re-centred, or not a seqboltz checkpoint).
    """
    ckpt = (
        checkpoint
        if isinstance(checkpoint, dict)
        else torch.load(checkpoint, map_location="cpu", weights_only=True)
    )
    entry = ckpt.get("seqboltz") if isinstance(ckpt, dict) else None
    value = entry.get("recentred_gibbs_steps") if isinstance(entry, dict) else None
    return int(value) if value is not None else None


#: ``k`` when neither the request nor the checkpoint names one (Taylor et al.'s sampler).
DEFAULT_GIBBS_STEPS = 30


def default_gibbs_steps(model: Any, recentred: int | None) -> int:
    """The ``k`` to generate with when none is named.

    The ``k`` the checkpoint's intercept was re-centred at (:func:`recentred_gibbs_steps`)
    if any; else 1 for a model whose frames do not depend on ``k`` (a
    :class:`~seqboltz.models.ResidualCRBM` with ``generation="mean"``, the text-to-speech
    recipe's: its chain never moves, so more steps only draw unused noise, 30 rows of it per
    frame); else :data:`DEFAULT_GIBBS_STEPS`.

    Args:
        model: the loaded model.
        recentred: the checkpoint's recorded ``k``, or ``None``.
    """
    from seqboltz.models._residual import ResidualCRBM  # registers through this module

    if recentred is not None:
        return int(recentred)
    if isinstance(model, ResidualCRBM) and model.generation == "mean":
        return 1
    return DEFAULT_GIBBS_STEPS
