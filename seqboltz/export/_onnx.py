"""Export a trained model's sampling step to one self-describing ONNX file.

Each model declares whether and how it exports
(:meth:`~seqboltz.models.EnergyModel.export_support`); the graph follows that declaration,
traced by :func:`torch.onnx.export` (so the math exists once, in torch), in float64 with a
dynamic batch:

* ``"sequence"``: one frame of Taylor's sampler,
  :meth:`~seqboltz.models.SequenceRBM.next_frame`, for any number of Gibbs steps ``k``:
  ``history (B, order, D) [, style (B, S)] [, controls (B, C)], noise (B, k, W) → frame (B, D)``
  with ``k = noise.shape[1]`` (an ONNX ``Loop`` over one traced Gibbs step,
  :mod:`seqboltz.export._loop`); the card says which ``k`` a sampler uses unless asked for
  another (``gibbs_steps``) and the most it may be asked for (``max_gibbs_steps``);
* ``"gibbs"``: one block Gibbs step of an unconditional model,
  ``v (B, D), *noise (sorted by name) → v_next (B, D), v_mean (B, D)``.

A model that declares no path is refused with :class:`ExportError` and its reason. All
weights are stored inside the file (no external data). The model card — everything a sampler
needs besides the graph — is JSON in the ``metadata_props`` entry :data:`CARD_KEY`; see
:func:`build_card` for its fields. :mod:`seqboltz.runtime` reads it without torch.
"""

from __future__ import annotations

import hashlib
import json
import math
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
from torch import Tensor, nn

from seqboltz._io import atomic_path
from seqboltz.export._loop import EMIT_INPUTS, PART_OUTPUTS, STEP_INPUTS, loop_frame_graph
from seqboltz.models import (
    EnergyModel,
    SequenceRBM,
    default_gibbs_steps,
    load_model,
    recentred_gibbs_steps,
)
from seqboltz.models._base import ExportPath

__all__ = [
    "CARD_KEY",
    "CARD_SCHEMA_VERSION",
    "DEFAULT_MAX_GIBBS_STEPS",
    "OPSET",
    "ExportError",
    "build_card",
    "build_rbm_card",
    "export_checkpoint",
    "export_onnx",
]

_M = TypeVar("_M", bound=nn.Module)

CARD_KEY = "seqboltz.card"
CARD_SCHEMA_VERSION = 1
OPSET = 18
#: the default most Gibbs steps a sequence artifact may be asked for (``max_gibbs_steps``)
DEFAULT_MAX_GIBBS_STEPS = 30
NOISE_RULE = (
    "sequence i of a request with seed S draws numpy Generator(PCG64(SeedSequence([S, i])))"
    ".random((k, W)) per frame, frame after frame (seqboltz.noise.gibbs_uniforms), k the "
    "stream's Gibbs steps (the card's gibbs_steps unless a request names another, 1 <= k <= "
    "max_gibbs_steps), W the card's noise_width; hidden unit j at Gibbs step s is on iff "
    "noise[s, j] < p(h_j = 1 | v, history); columns past the hidden units feed visible "
    "normals (Box-Muller)"
)


class ExportError(ValueError):
    """A model or checkpoint that cannot be exported, with the reason (one line)."""


class _SamplerParts(nn.Module):
    """The three parts of ``next_frame`` side by side, for tracing:
    ``(history, state_in, u_step, state_emit, u_emit[, style][, controls]) →
    (state0, state_next, frame)`` (:mod:`seqboltz.export._loop` rewires them into a Loop)."""

    def __init__(self, model: SequenceRBM) -> None:
        super().__init__()
        self.model = model
        self.has_style = model.n_style > 0
        self.has_controls = getattr(model, "n_controls", 0) > 0

    def cond(
        self, history: Tensor, extra1: Tensor | None = None, extra2: Tensor | None = None
    ) -> dict[str, Tensor]:
        """``next_frame``'s conditioning from the positional inputs."""
        cond = {"history": history}
        rest = [x for x in (extra1, extra2) if x is not None]
        if self.has_style:
            cond["style"] = rest.pop(0)
        if self.has_controls:
            cond["controls"] = rest.pop(0)
        return cond

    def forward(
        self,
        history: Tensor,
        state_in: Tensor,
        u_step: Tensor,
        state_emit: Tensor,
        u_emit: Tensor,
        extra1: Tensor | None = None,
        extra2: Tensor | None = None,
    ) -> tuple[Tensor, Tensor, Tensor]:
        state0, context = self.model.sampler_start(self.cond(history, extra1, extra2))
        state_next = self.model.sampler_step(state_in, context, u_step)
        return state0, state_next, self.model.sampler_emit(state_emit, context, u_emit)


class _GibbsStepModule(nn.Module):
    """``gibbs_step`` of an unconditional model with positional noise inputs (sorted by name,
    the order of the card's ``noise`` field), for tracing."""

    def __init__(self, model: EnergyModel) -> None:
        super().__init__()
        self.model = model
        self.noise_names = sorted(model.noise_spec())

    def forward(self, v: Tensor, *noise: Tensor) -> tuple[Tensor, Tensor]:
        step = self.model.gibbs_step(v, dict(zip(self.noise_names, noise, strict=True)))
        return step.v, step.v_mean


def input_names(model: SequenceRBM) -> list[str]:
    """Graph inputs in order."""
    names = ["history", "noise"]
    if model.n_style:
        names.append("style")
    if getattr(model, "n_controls", 0):
        names.append("controls")
    return names


def _conditioning_examples(model: SequenceRBM, g: torch.Generator, batch: int) -> list[Tensor]:
    out = []
    if model.n_style:
        out.append(torch.randn(batch, model.n_style, generator=g, dtype=torch.float64))
    if getattr(model, "n_controls", 0):
        n_controls = int(model.n_controls)
        out.append(torch.randn(batch, n_controls, generator=g, dtype=torch.float64))
    return out


def _example_inputs(model: SequenceRBM, batch: int = 2) -> tuple[Tensor, ...]:
    """Inputs of :class:`_SamplerParts` (``model`` in float64)."""
    g = torch.Generator().manual_seed(0)
    d, w = model.n_visible, model.noise_width
    history = torch.randn(batch, model.order, d, generator=g, dtype=torch.float64)
    extras = _conditioning_examples(model, g, batch)
    with torch.no_grad():
        state0, _ = model.sampler_start(_SamplerParts(model).cond(history, *extras))
    state = torch.randn(state0.shape, generator=g, dtype=torch.float64)
    u_step, u_emit = (torch.rand(batch, w, generator=g, dtype=torch.float64) for _ in "se")
    return (history, state, u_step, state.clone(), u_emit, *extras)


def declared_path(model: EnergyModel) -> ExportPath:
    """The graph ``model`` declares (:meth:`~seqboltz.models.EnergyModel.export_support`).

    Raises:
        ExportError: the model declares none; the message names the model and the reason.
        TypeError: not a seqboltz energy model.
    """
    if not isinstance(model, EnergyModel):
        raise TypeError(f"only seqboltz energy models export; got {type(model).__name__}")
    support = model.export_support()
    if support.path is None:
        raise ExportError(f"{type(model).__name__} does not export: {support.reason}")
    if support.path == "sequence" and not isinstance(model, SequenceRBM):
        raise TypeError(f"{type(model).__name__} declares a sequence graph but is no SequenceRBM")
    return support.path


def _sequence_graph(
    model: EnergyModel, gibbs_steps: int
) -> tuple[nn.Module, list[str], list[str], tuple[Tensor, ...]]:
    assert isinstance(model, SequenceRBM)
    if gibbs_steps < 1:
        raise ValueError(f"gibbs_steps must be >= 1, got {gibbs_steps}")
    parts = _SamplerParts(_float64_copy(model)).eval()
    names = ["history", *STEP_INPUTS, *EMIT_INPUTS, *input_names(model)[2:]]
    return parts, names, list(PART_OUTPUTS), _example_inputs(parts.model)


def _check_frame_graph(model: SequenceRBM, proto: Any, ks: Sequence[int]) -> None:
    """Run the finished frame graph in onnxruntime at each ``k`` of ``ks`` against torch's
    ``next_frame`` (float64, small random inputs).

    Raises:
        ExportError: they disagree beyond the design's tolerance of one step, torch against
            ONNX, 1e-5 (float64 ``cos``/``log1p`` differ by ~1e-8 between the two).
    """
    import onnxruntime as ort

    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    twin = _float64_copy(model).eval()
    g = torch.Generator().manual_seed(1)
    history = torch.randn(3, model.order, model.n_visible, generator=g, dtype=torch.float64)
    extras = _conditioning_examples(model, g, 3)
    names = input_names(model)
    for k in ks:
        noise = torch.rand(3, k, model.noise_width, generator=g, dtype=torch.float64)
        with torch.no_grad():
            want = twin.next_frame(_SamplerParts(twin).cond(history, *extras), noise)
        feeds = dict(zip(names, (x.numpy() for x in (history, noise, *extras)), strict=True))
        got = session.run(["frame"], feeds)[0]
        if not np.allclose(got, want.numpy(), rtol=1e-5, atol=1e-5):
            raise ExportError(
                f"{type(model).__name__}: the exported frame graph disagrees with torch at "
                f"k = {k} (max difference {np.abs(got - want.numpy()).max():.3g})"
            )


def _gibbs_graph(
    model: EnergyModel, gibbs_steps: int
) -> tuple[nn.Module, list[str], list[str], tuple[Tensor, ...]]:
    g = torch.Generator().manual_seed(0)
    example = [torch.rand(2, model.n_visible, generator=g, dtype=torch.float64)]
    specs = model.noise_spec()
    for name in sorted(specs):  # the card's order (its JSON keys are sorted)
        draw = torch.rand if specs[name].kind == "uniform" else torch.randn
        example.append(draw((2, *specs[name].shape), generator=g, dtype=torch.float64))
    names = ["v", *sorted(specs)]
    return (
        _GibbsStepModule(_float64_copy(model)).eval(),
        names,
        ["v_next", "v_mean"],
        tuple(example),
    )


def _dynamic_batch(module: nn.Module, example: tuple[Tensor, ...]) -> tuple[Any, ...]:
    """``dynamic_shapes`` for ``torch.export``: dimension 0 of every input is one shared batch
    size, structured like ``module.forward``'s signature (a ``*args`` parameter is a tuple)."""
    import inspect

    batch = torch.export.Dim("batch")
    shapes: list[Any] = []
    for i, param in enumerate(inspect.signature(module.forward).parameters.values()):
        if param.kind is param.VAR_POSITIONAL:
            shapes.append(tuple({0: batch} for _ in example[i:]))
            break
        if i < len(example):
            shapes.append({0: batch})
    return tuple(shapes)


#: the graph builders, by export path: (module, input names, output names, example inputs)
_GRAPHS = {"sequence": _sequence_graph, "gibbs": _gibbs_graph}


def export_onnx(
    model: EnergyModel, path: str | Path, card: dict[str, Any], gibbs_steps: int = 30
) -> Path:
    """Write ``model``'s sampling step with ``card`` to ``path`` (atomically) and check it.

    The graph is the one the model declares (:func:`declared_path`): one frame of a sequence
    model's sampler for any ``k`` (the noise's ``k`` dimension; a ``Loop`` over one traced
    Gibbs step, checked against torch at ``k = 1`` and ``k = gibbs_steps``), or one block
    Gibbs step ``(v, *noise) → (v_next, v_mean)`` whose noise inputs are
    ``model.noise_spec()``'s, sorted by name.

    Args:
        model: a model whose :meth:`~seqboltz.models.EnergyModel.export_support` names a
            path (any dtype; exported in float64).
        path: the ``.onnx`` file to write.
        card: the model card (:func:`build_card` or :func:`build_rbm_card`); a sequence
            card's ``gibbs_steps`` and ``max_gibbs_steps`` say which ``k`` samplers use.
        gibbs_steps: ``k`` of a sequence model the graph is checked at (the card's, when it
            has one).

    Returns:
        ``path``.

    Raises:
        ExportError: the model declares no export path, or the frame graph disagrees with
            torch (nothing is written).
        ValueError: ``gibbs_steps < 1``, or a card whose ``gibbs_steps`` is not in
            ``1..max_gibbs_steps``.
    """
    import onnx

    graph = declared_path(model)
    if graph == "sequence" and "gibbs_steps" in card:
        gibbs_steps = int(card["gibbs_steps"])
        top = int(card.get("max_gibbs_steps", gibbs_steps))
        if not 1 <= gibbs_steps <= top:
            raise ValueError(
                f"the card's gibbs_steps must be in 1..max_gibbs_steps ({top}); got {gibbs_steps}"
            )
    module, names, outputs, example = _GRAPHS[graph](model, gibbs_steps)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".seqboltz-export-", dir=path.parent) as tmp:
        raw = Path(tmp) / "step.onnx"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                module,
                example,
                str(raw),
                input_names=names,
                output_names=outputs,
                dynamic_shapes=_dynamic_batch(module, example),
                opset_version=OPSET,
                dynamo=True,
                verbose=False,
            )
        proto = onnx.load(str(raw), load_external_data=True)
        if graph == "sequence":
            assert isinstance(model, SequenceRBM)
            loop_frame_graph(proto, model.noise_width)
            _check_frame_graph(model, proto, sorted({1, gibbs_steps}))
        del proto.metadata_props[:]
        entry = proto.metadata_props.add()
        entry.key, entry.value = CARD_KEY, json.dumps(card, sort_keys=True)
        proto.producer_name = "seqboltz"
        proto.doc_string = f"seqboltz {card.get('kind')} sampling step ({card.get('name')})"
        onnx.checker.check_model(proto, full_check=True)
        with atomic_path(path, suffix=".onnx") as part:
            onnx.save_model(proto, str(part), save_as_external_data=False)
    return path


def _card_header(model: EnergyModel, name: str, family: str) -> dict[str, Any]:
    """The card fields every exported model has."""
    return {
        "schema_version": CARD_SCHEMA_VERSION,
        "family": family,
        "name": name,
        "kind": type(model).__name__,
        "model": model.init_args(),
        "frame_size": model.n_visible,
        "n_hidden": model.n_hidden,
    }


def build_rbm_card(
    model: EnergyModel,
    *,
    name: str,
    data: dict[str, Any] | None = None,
    training: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The model card of an exported unconditional model's Gibbs sampler (family ``"rbm"``).

    Fields: ``schema_version``, ``family`` (``"rbm"``), ``name``, ``kind``, ``model``,
    ``frame_size`` (``D``), ``n_hidden``, ``noise`` (input name → shape, ``uniform``/``normal``,
    in drawing order: sorted by name, the graph's input order), ``initial_state`` (``D``
    values: the visible units' means under their biases alone, where chains start),
    ``features`` (the data statistics, e.g. image shape),
    ``noise_rule``, ``dtype``, ``opset``, ``training``.
    """
    with torch.no_grad():
        hidden_off = torch.zeros(1, model.n_hidden).to(model.reference_parameter())
        mean = model.visible_params(hidden_off)[0]
    specs = model.noise_spec()
    noise = {k: {"shape": list(specs[k].shape), "kind": specs[k].kind} for k in sorted(specs)}
    return {
        **_card_header(model, name, "rbm"),
        "noise": noise,
        "initial_state": mean.reshape(-1).double().tolist(),
        "features": dict((data or {}).get("stats") or {}),
        "noise_rule": (
            "chain i of a request with seed S draws numpy Generator(PCG64(SeedSequence([S, "
            "i]))) per step: the inputs of 'noise' in order, uniform → random(shape), normal → "
            "standard_normal(shape)"
        ),
        "dtype": "float64",
        "opset": OPSET,
        "training": training or {},
    }


def _float64_copy(model: _M) -> _M:
    import copy

    return copy.deepcopy(model).to(torch.float64)


def build_card(
    model: SequenceRBM,
    *,
    name: str,
    gibbs_steps: int,
    max_gibbs_steps: int | None = None,
    data: dict[str, Any] | None = None,
    default_seed_frames: np.ndarray | None = None,
    training: dict[str, Any] | None = None,
    frame_rate: float | None = None,
) -> dict[str, Any]:
    """The model card of an exported sequence model (``frame_rate`` overrides the data's).

    Fields: ``schema_version``, ``name``, ``kind`` (model class), ``model`` (its constructor
    arguments), ``frame_size``, ``order``, ``n_hidden``, ``gibbs_steps`` (``k``, Gibbs steps
    per frame that samplers use unless a request names another), ``max_gibbs_steps`` (the
    most a request may name; default ``gibbs_steps``; a card without it is a graph with ``k``
    fixed, as exported before it existed), ``noise_width``, ``dtype``,
    ``opset``, ``inputs`` (name → shape and meaning), ``conditioning`` (style/controls: size
    and meaning), ``domain`` (``motion``/``speech``/``generic``), ``frame_rate`` (frames per
    second or ``None``), ``features`` (the data's feature description and the ``mean``/``std``
    that undo standardisation), ``default_seed_frames`` (``order × D`` standardised, oldest
    first), ``noise_rule`` and ``training`` (data module and the sha256 of its training
    tensor, the logged metrics, checkpoint hash, steps, hyper-parameters).
    """
    d = model.n_visible
    top = gibbs_steps if max_gibbs_steps is None else max_gibbs_steps
    if not 1 <= gibbs_steps <= top:
        raise ValueError(
            f"need 1 <= gibbs_steps <= max_gibbs_steps; got {gibbs_steps} and {max_gibbs_steps}"
        )
    features = dict((data or {}).get("stats") or {})
    domain = "generic"
    data_rate: float | None = None
    if features.get("kind") == "seqboltz.motion.MotionFeatures":
        domain, data_rate = "motion", float(features.get("fps") or 0) or None
    elif features.get("kind") in ("world", "logmel"):
        domain = "speech"
        data_rate = 1000.0 / float(features["frame_period"])
    if frame_rate is not None and not frame_rate > 0:
        raise ValueError(f"frame_rate must be > 0, got {frame_rate}")
    rate = float(frame_rate) if frame_rate is not None else data_rate
    if "mean" not in features or "std" not in features:
        features.update(mean=[0.0] * d, std=[1.0] * d)
    if len(features["mean"]) != d or len(features["std"]) != d:
        raise ValueError(
            f"the data statistics describe {len(features['mean'])} values per frame but the "
            f"model's frames have {d}"
        )
    conditioning: dict[str, Any] = {}
    if model.n_style:
        style_stats = features.get("style")
        meaning = (
            f"{style_stats['kind']} averaged over {style_stats['window']} frames, standardised: "
            f"raw = style * {style_stats['std']:.6g} + {style_stats['mean']:.6g}"
            if isinstance(style_stats, dict)
            else "style features as in training"
        )
        conditioning["style"] = {"size": model.n_style, "meaning": meaning, "stats": style_stats}
        trusted = _style_range(model, style_stats)
        if trusted is not None:
            conditioning["style"]["range"] = trusted
    n_controls = int(getattr(model, "n_controls", 0))
    if n_controls:
        conditioning["controls"] = {"size": n_controls, "meaning": "per-frame controls"}
    if default_seed_frames is None:
        default_seed_frames = np.zeros((model.order, d))
    seed = np.asarray(default_seed_frames, dtype=np.float64)
    if seed.shape != (model.order, d):
        raise ValueError(f"default seed frames must be ({model.order}, {d}), got {seed.shape}")
    inputs = {
        "history": f"(B, {model.order}, {d}) standardised frames, most recent first",
        "noise": (
            f"(B, k, {model.noise_width}) uniforms in [0, 1): k Gibbs steps, 1 <= k <= {top} "
            f"(default {gibbs_steps})"
        ),
    }
    for key, spec in conditioning.items():
        inputs[key] = f"(B, {spec['size']}) {spec['meaning']}"
    return {
        **_card_header(model, name, "sequence"),
        "order": model.order,
        "gibbs_steps": gibbs_steps,
        "max_gibbs_steps": top,
        "noise_width": model.noise_width,
        "dtype": "float64",
        "opset": OPSET,
        "inputs": inputs,
        "outputs": {"frame": f"(B, {d}) the next standardised frame"},
        "conditioning": conditioning,
        "domain": domain,
        "frame_rate": rate,
        "features": features,
        "default_seed_frames": seed.tolist(),
        "noise_rule": NOISE_RULE,
        "training": training or {},
    }


def export_checkpoint(
    checkpoint: str | Path,
    out: str | Path,
    *,
    gibbs_steps: int | None = None,
    max_gibbs_steps: int | None = None,
    name: str | None = None,
    seed_from_data: bool = True,
    postfilter: float | None = None,
    generation: str | None = None,
) -> Path:
    """Export a ``seqboltz fit`` checkpoint: the model, its data statistics and a default seed.

    A sequence model's card gets ``gibbs_steps`` (the ``k`` samplers use unless a request
    names another) and ``max_gibbs_steps`` (default ``max(gibbs_steps,``
    :data:`DEFAULT_MAX_GIBBS_STEPS` ``)``), the most a request may name.

    ``gibbs_steps=None`` takes the ``k`` the checkpoint's intercept was re-centred at
    (:class:`~seqboltz.training.RecentreIntercept` records it), else 1 for a model whose
    frames do not depend on ``k`` (``generation="mean"``), else 30
    (:func:`~seqboltz.models.default_gibbs_steps`). Another ``k`` than
    the recorded one is exported as asked, with a :class:`UserWarning`: the intercept is
    matched to one ``k``, and generations at another settle away from the data's mean pose.
    The card's ``training`` entry keeps ``recentred_gibbs_steps``.

    A text-to-speech model's card gets the formant-emphasis post-filter its waveforms are
    made with (``features["postfilter"]``; ``postfilter=None``:
    :data:`~seqboltz.speech._voice.POSTFILTER_BETA`, 0: none); another model refuses one.
    A voice with Δ and Δ² frames speaks MLPG's statics unless ``generation="statics"`` (its
    statics as they are; :data:`~seqboltz.speech._voice.GENERATIONS`) is asked for.

    The default seed frames are the first ``order`` frames of the first held-out sequence of
    the data module the checkpoint names (rebuilt and set up; ``seed_from_data=False`` or an
    unavailable data set: the mean frame, all zeros).

    Raises:
        ExportError: the model declares no export path (checked first; nothing is written).
        FileNotFoundError, ValueError: a missing or unreadable checkpoint.
    """
    checkpoint = Path(checkpoint)
    model = load_model(checkpoint)
    graph = declared_path(model)  # a model that does not export is refused before any work
    ckpt = torch.load(checkpoint, map_location="cpu", weights_only=True)
    entry = ckpt.get("seqboltz", {})
    data = entry.get("data")
    data = _with_voice_options(checkpoint, data, postfilter, generation)
    recentred = recentred_gibbs_steps(ckpt)
    if gibbs_steps is None:
        gibbs_steps = default_gibbs_steps(model, recentred)
    elif recentred is not None and gibbs_steps != recentred:
        warnings.warn(
            f"{checkpoint} was re-centred for k = {recentred} Gibbs steps per frame, and "
            f"is exported with k = {gibbs_steps}: its generations will settle away from the "
            f"data's mean (export with --gibbs-steps {recentred}, or train with "
            f"RecentreIntercept(gibbs_steps={gibbs_steps}))",
            UserWarning,
            stacklevel=2,
        )
    seed_frames = None
    if seed_from_data and data and graph == "sequence" and isinstance(model, SequenceRBM):
        seed_frames = _default_seed(checkpoint, model.order)
    digest = hashlib.sha256(checkpoint.read_bytes()).hexdigest()
    training = {
        "checkpoint_sha256": digest,
        "epoch": int(ckpt.get("epoch", -1)),
        "global_step": int(ckpt.get("global_step", -1)),
        "data": {k: v for k, v in (data or {}).items() if k != "stats"},
        "metrics": dict(entry.get("metrics", {})),
        "hyper_parameters": _plain(ckpt.get("hyper_parameters", {})),
    }
    if recentred is not None:
        training["recentred_gibbs_steps"] = recentred
    if graph == "gibbs":
        card = build_rbm_card(model, name=name or checkpoint.stem, data=data, training=training)
        return export_onnx(model, out, card)
    assert isinstance(model, SequenceRBM)
    card = build_card(
        model,
        name=name or checkpoint.stem,
        gibbs_steps=gibbs_steps,
        max_gibbs_steps=(
            max(gibbs_steps, DEFAULT_MAX_GIBBS_STEPS)
            if max_gibbs_steps is None
            else max_gibbs_steps
        ),
        data=data,
        default_seed_frames=seed_frames,
        training=training,
    )
    return export_onnx(model, out, card, gibbs_steps=gibbs_steps)


def _style_range(model: Any, style_stats: Any) -> dict[str, Any] | None:
    """The requested styles a styled model can be trusted with (``conditioning.style.range``):
    the training frames' range per column (``low``/``high`` of
    :meth:`~seqboltz.data.MotionDataModule.stats`) divided by the model's generation gain
    ``g`` (:attr:`~seqboltz.models.ResidualCRBM.style_gain`; the model multiplies a request by
    it), so that what reaches the model stays inside what it was trained on. ``None``:
    statistics without the range (older checkpoints)."""
    if not isinstance(style_stats, dict) or "low" not in style_stats or "high" not in style_stats:
        return None
    gain_buffer = getattr(model, "style_gain", None)
    gain = 1.0 if gain_buffer is None else float(gain_buffer)
    if not (math.isfinite(gain) and gain > 0):
        return None
    low = [float(x) / gain for x in style_stats["low"]]
    high = [float(x) / gain for x in style_stats["high"]]
    trusted: dict[str, Any] = {
        "min": low,
        "max": high,
        "gain": gain,
        "why": "the training styles (speed: 1st-99th percentile) divided by the generation "
        "gain; the runtime clips every request into it (benchmarks/motion_style_range.py)",
    }
    curve = getattr(model, "style_curve", None)
    if curve is not None and curve.shape[-1] >= 2:  # the speeds made inside the training range
        knots = curve.detach().cpu().double().numpy()
        low[0], high[0] = float(knots[0, 0]), float(knots[0, -1])
        trusted["curve"] = {"requests": knots[0].tolist(), "inputs": knots[1].tolist()}
        trusted["why"] = (
            "the speeds the model made on the validation clips when given the 1st to 99th "
            "percentile of the training speeds (its calibration curve; other columns: the "
            "training range divided by the gain); the runtime clips every request into it"
        )
    return trusted


def _with_voice_options(
    checkpoint: Path,
    data: dict[str, Any] | None,
    postfilter: float | None,
    generation: str | None = None,
) -> dict[str, Any] | None:
    """A voice's data entry with the post-filter it is exported with in its statistics
    (``None``: :data:`~seqboltz.speech._voice.POSTFILTER_BETA`) and, for a voice with deltas,
    how its statics are made (``generation``, a key of
    :data:`~seqboltz.speech._voice.GENERATIONS`; ``None``: as trained, MLPG); other models
    unchanged, and refused if either is asked for."""
    from seqboltz.speech._voice import GENERATIONS, POSTFILTER_BETA, VoiceCard, postfilter_card

    stats = dict((data or {}).get("stats") or {})
    if not VoiceCard.is_voice({"features": stats}):
        for option, value in (("a post-filter", postfilter), ("a generation mode", generation)):
            if value is not None:
                raise ValueError(
                    f"{checkpoint} is not a text-to-speech model: {option} applies only to voices"
                )
        return data
    beta = POSTFILTER_BETA if postfilter is None else postfilter
    stats["postfilter"] = postfilter_card(beta)
    if generation is not None:
        if generation not in GENERATIONS:
            raise ValueError(f"generation must be one of {sorted(GENERATIONS)}, got {generation!r}")
        if not stats.get("deltas"):
            raise ValueError(
                f"{checkpoint} has no Δ and Δ² frames: its statics are its frames, "
                "so there is no generation mode to choose"
            )
        stats["deltas"] = {**stats["deltas"], "generation": dict(GENERATIONS[generation])}
    return {**(data or {}), "stats": stats}


def _default_seed(checkpoint: Path, order: int) -> np.ndarray | None:
    from seqboltz.eval._cli import datamodule_from_checkpoint

    try:
        dm = datamodule_from_checkpoint(checkpoint)
        dm.prepare_data()
        dm.setup("test")
        clips = dm.clips("test")
    except Exception as exc:  # data gone or unreadable: a neutral seed instead
        warnings.warn(f"default seed frames are the mean frame: {exc}", stacklevel=3)
        return None
    first = next((c for c in clips if c.shape[0] >= order), None)
    return None if first is None else np.asarray(first[:order], dtype=np.float64)


def _plain(x: Any) -> Any:
    """JSON-safe copy (class objects and tensors become strings)."""
    if isinstance(x, dict):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_plain(v) for v in x]
    if isinstance(x, str | int | float | bool) or x is None:
        return x
    return repr(x)
