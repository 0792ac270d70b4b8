"""The energy-model interface every seqboltz model implements.

A model is a small :class:`torch.nn.Module` that holds parameters and calls the pure
functions of :mod:`seqboltz.functional`. It never owns an optimizer, a device policy, a
progress bar or a training loop: :class:`seqboltz.training.RBMSystem` does that.

The interface, shared by unconditional and conditional models alike:

* :meth:`EnergyModel.free_energy` ``F(v | cond)``, ``(B,)``;
* :meth:`EnergyModel.energy` ``E(v, h | cond)``, ``(B,)``;
* :meth:`EnergyModel.hidden_probs` ``p(h = 1 | v, cond)``, ``(B, H)``;
* :meth:`EnergyModel.visible_params` the parameters of ``p(v | h, cond)`` (probabilities
  for binary units, means for Gaussian ones), ``(B, D)``;
* :meth:`EnergyModel.noise_spec` / :meth:`EnergyModel.gibbs_step`: one Gibbs step given
  explicit noise tensors, so that torch, ONNX and numpy samplers agree exactly;
* :meth:`EnergyModel.init_chains`: a way to start Markov chains.

``cond`` is the one optional conditioning argument: a history of frames, a style vector,
labels, or the input ``x`` of ``p(y | x)``; a tensor or a mapping of named tensors, as each
model documents. Unconditional models reject a non-``None`` ``cond``.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, NamedTuple, Protocol

import numpy as np
import torch
from torch import Tensor, nn

Conditioning = Tensor | Mapping[str, Tensor]
NoiseKind = Literal["uniform", "normal"]
#: the graphs :mod:`seqboltz.export` writes: one frame of a sequence model's sampler, or one
#: block Gibbs step of an unconditional model
ExportPath = Literal["sequence", "gibbs"]

__all__ = [
    "AnnealingPath",
    "Conditioning",
    "EnergyModel",
    "ExportPath",
    "ExportSupport",
    "GibbsStep",
    "NoiseSpec",
    "draw_noise",
]


@dataclass(frozen=True)
class NoiseSpec:
    """Shape (without the batch dimension) and distribution of one noise input of a Gibbs step."""

    shape: tuple[int, ...]
    kind: NoiseKind


class ExportSupport(NamedTuple):
    """Whether and how :mod:`seqboltz.export` writes a model
    (:meth:`EnergyModel.export_support`).

    Attributes:
        path: ``"sequence"`` (``history, noise[, style][, controls] → frame``), ``"gibbs"``
            (``v, *noise → v_next, v_mean``), or ``None`` when the model does not export.
        reason: why it does not export, one line (empty when it does).
    """

    path: ExportPath | None
    reason: str = ""


class GibbsStep(NamedTuple):
    """Result of one Gibbs step.

    Attributes:
        v: the new visible state ``(B, D)`` (a sample).
        v_mean: the parameters it was sampled from (probabilities or means), ``(B, D)``.
        h: the hidden state sampled on the way, ``(B, H)``.
    """

    v: Tensor
    v_mean: Tensor
    h: Tensor


def draw_noise(
    specs: Mapping[str, NoiseSpec],
    batch_size: int,
    generator: torch.Generator | None,
    device: torch.device | str,
    dtype: torch.dtype,
) -> dict[str, Tensor]:
    """One batch of every named noise input: ``(batch_size, *spec.shape)`` uniforms or normals."""
    out: dict[str, Tensor] = {}
    for name, spec in specs.items():
        draw = torch.rand if spec.kind == "uniform" else torch.randn
        out[name] = draw((batch_size, *spec.shape), generator=generator, device=device, dtype=dtype)
    return out


def _plain_arg(value: Any) -> Any:
    """A constructor argument as plain data: tuples (and lists) become lists, recursively."""
    if isinstance(value, tuple | list):
        return [_plain_arg(v) for v in value]
    return value


class AnnealingPath(Protocol):
    """A geometric path ``f_β(v) = f_base(v)^(1-β) f_model(v)^β`` for annealed importance sampling.

    ``β = 0`` is a tractable base-rate model with known ``log Z``; ``β = 1`` is the model.
    See Neal (2001) and Salakhutdinov & Murray (2008).
    """

    @property
    def log_z_base(self) -> float:
        """``log Z`` of the ``β = 0`` distribution (base model times free hidden units)."""
        ...

    def sample_base(self, n: int, generator: torch.Generator) -> Tensor:
        """Exact samples ``(n, D)`` from the ``β = 0`` distribution."""
        ...

    def log_f(self, v: Tensor, beta: float) -> Tensor:
        """Unnormalised log-probability ``log f_β(v)`` of visibles ``(n, D)``, ``(n,)``."""
        ...

    def transition(self, v: Tensor, beta: float, generator: torch.Generator) -> Tensor:
        """One Markov transition that leaves ``f_β`` invariant, ``(n, D) → (n, D)``."""
        ...

    def advance(
        self, v: Tensor, beta_prev: float, beta: float, generator: torch.Generator
    ) -> tuple[Tensor, Tensor]:
        """One AIS step: ``(log f_β(v) - log f_β_prev(v), transition(v, β))``.

        Equal to the two :meth:`log_f` calls and :meth:`transition`, but free to share work
        between them (for an RBM, one ``v W`` product serves all three).
        """
        ...


class EnergyModel(nn.Module):
    """Base class of seqboltz's energy models (see the module docstring for the interface).

    Subclasses set :attr:`visible_kind` and implement the abstract methods. The public
    methods check the shapes of their inputs (cheap); finiteness is checked where data enter
    (the training system, evaluation, generation) through :meth:`check_visible`, since on an
    accelerator it costs a device synchronisation per call.
    """

    visible_kind: ClassVar[Literal["bernoulli", "gaussian"]]
    #: whether the model needs ``cond`` (its log Z then depends on the conditioning)
    is_conditional: ClassVar[bool] = False
    #: the graph :mod:`seqboltz.export` writes for this model, or ``None`` (then
    #: :attr:`export_refusal` says why)
    export_path: ClassVar[ExportPath | None] = None
    #: why the model does not export, one line, when :attr:`export_path` is ``None``
    export_refusal: ClassVar[str] = "the model declares no export path"
    n_visible: int
    n_hidden: int

    # -- the energy-model interface ---------------------------------------------------------
    def energy(self, v: Tensor, h: Tensor, cond: Conditioning | None = None) -> Tensor:
        """Joint energy ``E(v, h | cond)``: ``v (B, D)``, ``h (B, H)`` → ``(B,)``."""
        raise NotImplementedError

    def free_energy(self, v: Tensor, cond: Conditioning | None = None) -> Tensor:
        """Free energy ``F(v | cond) = -log Σ_h exp(-E(v, h | cond))``: ``(B, D)`` → ``(B,)``."""
        raise NotImplementedError

    def hidden_free_energy(self, h: Tensor, cond: Conditioning | None = None) -> Tensor:
        """``F(h)``: free energy of the hiddens, visibles summed or integrated out; ``(B,)``."""
        raise NotImplementedError

    def hidden_probs(self, v: Tensor, cond: Conditioning | None = None) -> Tensor:
        """``p(h = 1 | v, cond)``: ``(B, D)`` → ``(B, H)``."""
        raise NotImplementedError

    def visible_params(self, h: Tensor, cond: Conditioning | None = None) -> Tensor:
        """Parameters of ``p(v | h, cond)`` (probabilities or means): ``(B, H)`` → ``(B, D)``."""
        raise NotImplementedError

    def noise_spec(self) -> dict[str, NoiseSpec]:
        """Named noise inputs consumed by one :meth:`gibbs_step`, per example."""
        raise NotImplementedError

    def gibbs_step(
        self, v: Tensor, noise: Mapping[str, Tensor], cond: Conditioning | None = None
    ) -> GibbsStep:
        """One block Gibbs step ``v → h → v'`` driven by the explicit ``noise`` tensors."""
        raise NotImplementedError

    def init_chains(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """Starting states ``(n, D)`` for Markov chains (samples of the visible biases alone)."""
        raise NotImplementedError

    def init_from_data(self, data: Tensor) -> None:
        """Set biases (and scales) from data statistics (Hinton 2010, §8); ``data (N, D)``."""
        raise NotImplementedError

    def annealing_path(self, base_data: Tensor | None = None) -> AnnealingPath:
        """The AIS path from a base-rate model fitted to ``base_data (N, D)`` to this model."""
        raise NotImplementedError

    def parameter_roles(self) -> dict[str, list[nn.Parameter]]:
        """Trainable parameters grouped by role: ``weights`` (decayed), ``biases``, ``scales``."""
        raise NotImplementedError

    def init_args(self) -> dict[str, Any]:
        """Constructor arguments, enough to rebuild the model (weights travel separately).

        Derived from the constructor: every parameter of ``type(self).__init__`` is read
        back from the attribute of the same name (tuples become lists, so the result is
        plain JSON). A constructor argument the model does not keep under its own name is
        an error here, never a silently forgotten setting.

        Raises:
            TypeError: the constructor takes ``*args``/``**kwargs``, or an argument is not
                kept as an attribute (or is kept as a tensor).
        """
        cls = type(self)
        args: dict[str, Any] = {}
        for name, param in inspect.signature(cls.__init__).parameters.items():
            if name == "self":
                continue
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                raise TypeError(
                    f"{cls.__name__}.__init__ takes {param}: init_args() needs named arguments"
                )
            if name in self._parameters or name in self._buffers or not hasattr(self, name):
                raise TypeError(
                    f"{cls.__name__}.__init__ takes {name!r} but the model keeps no plain "
                    f"attribute self.{name}: store it under that name"
                )
            args[name] = _plain_arg(getattr(self, name))
        return args

    def pictures(self, generator: torch.Generator | None = None) -> dict[str, np.ndarray]:
        """What the model learned, as named uint8 grayscale pictures ``(H, W)`` (filters,
        samples); written as PNGs by :class:`seqboltz.training.SavePictures`. Default: none."""
        return {}

    def export_support(self) -> ExportSupport:
        """Whether and how this model exports: :attr:`export_path`, or ``None`` and
        :attr:`export_refusal`. Models whose support depends on their settings override it."""
        if self.export_path is None:
            return ExportSupport(None, self.export_refusal)
        return ExportSupport(self.export_path)

    # -- shared behaviour -------------------------------------------------------------------
    def constrain_(self) -> None:
        """Project parameters back into their allowed set (e.g. bounded log σ); in place."""

    def sample_noise(
        self,
        batch_size: int,
        generator: torch.Generator | None = None,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> dict[str, Tensor]:
        """Draw the noise for one :meth:`gibbs_step` of ``batch_size`` chains from ``generator``."""
        ref = self.reference_parameter()
        device = ref.device if device is None else device
        dtype = ref.dtype if dtype is None else dtype
        return draw_noise(self.noise_spec(), batch_size, generator, device, dtype)

    def gibbs_chain(
        self,
        v: Tensor,
        k: int,
        generator: torch.Generator | None = None,
        cond: Conditioning | None = None,
    ) -> GibbsStep:
        """Run ``k ≥ 1`` Gibbs steps from ``v (B, D)``; returns the last :class:`GibbsStep`."""
        if k < 1:
            raise ValueError(f"number of Gibbs steps k must be >= 1, got {k}")
        step: GibbsStep | None = None
        for _ in range(k):
            noise = self.sample_noise(v.shape[0], generator, device=v.device, dtype=v.dtype)
            step = self.gibbs_step(v, noise, cond)
            v = step.v
        assert step is not None
        return step

    def reconstruct(self, v: Tensor, cond: Conditioning | None = None) -> Tensor:
        """Mean-field reconstruction ``E[v' | h = p(h | v)]``, ``(B, D)`` → ``(B, D)``."""
        return self.visible_params(self.hidden_probs(v, cond), cond)

    def reference_parameter(self) -> Tensor:
        """A parameter whose device and dtype the model lives on."""
        return next(iter(self.parameters()))

    def check_visible(self, v: Tensor, name: str = "v") -> None:
        """Raise ``ValueError`` unless ``v`` is a finite ``(B, n_visible)`` floating tensor."""
        if not isinstance(v, Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(v).__name__}")
        self.check_shape(v, name)
        if not v.is_floating_point():
            raise ValueError(f"{name} must be a floating-point tensor, got dtype {v.dtype}")
        if not bool(torch.isfinite(v).all()):
            bad = (~torch.isfinite(v)).any(dim=1).nonzero().flatten()[:5].tolist()
            raise ValueError(f"{name} contains NaN or infinite values (rows {bad} among others)")

    def check_shape(self, v: Tensor, name: str = "v") -> None:
        """Raise ``ValueError`` unless ``v`` is ``(B, n_visible)``; no data-dependent check."""
        if v.dim() != 2 or v.shape[1] != self.n_visible:
            raise ValueError(
                f"{type(self).__name__} expects {name} of shape (batch, {self.n_visible}); "
                f"got {tuple(v.shape)}"
            )

    def check_hidden_shape(self, h: Tensor, name: str = "h") -> None:
        """Raise ``ValueError`` unless ``h`` has shape ``(B, n_hidden)``."""
        if h.dim() != 2 or h.shape[1] != self.n_hidden:
            raise ValueError(
                f"{type(self).__name__} expects {name} of shape (batch, {self.n_hidden}); "
                f"got {tuple(h.shape)}"
            )

    def check_unconditional(self, cond: Conditioning | None) -> None:
        """Raise ``ValueError`` if conditioning is given to a model that takes none."""
        if cond is not None:
            raise ValueError(f"{type(self).__name__} is unconditional but was given cond")

    def named_parameter_roles(self) -> Iterator[tuple[str, nn.Parameter]]:
        """``(role, parameter)`` pairs for every trainable parameter."""
        for role, params in self.parameter_roles().items():
            for p in params:
                yield role, p
