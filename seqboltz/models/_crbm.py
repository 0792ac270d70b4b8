"""Conditional RBMs for sequences: Taylor-style CRBM and the factored CRBM with style.

Both are Gaussian-Bernoulli RBMs over one frame (unit variances, for standardised data)
whose biases, and for the factored model whose weights, depend on the conditioning:

* ``cond["history"]``: the previous ``order`` frames ``(B, order, D)``, index 0 = ``t-1``
  (a plain tensor ``cond`` is taken as the history);
* ``cond["controls"]``: optional per-frame controls/labels ``(B, C)`` (linear in the biases);
* ``cond["style"]``: style features ``(B, S)`` of the factored model (gating the weights).

Generation (:meth:`SequenceRBM.generate`) follows Taylor's code: each frame starts its
chain at the previous frame, runs ``k`` alternating Gibbs steps that sample ``h`` and set
``v`` to its mean (no visible noise), then one mean-field hidden step; the emitted frame is
that last mean of ``v``. The noise is ``k × H`` uniforms per frame from
:func:`seqboltz.noise.sequence_rng`, so a sequence is the same alone or in any batch.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Literal, NamedTuple

import numpy as np
import torch
from torch import Tensor, nn

from seqboltz import functional as Fn
from seqboltz._conditioning import per_frame
from seqboltz.models._base import (
    AnnealingPath,
    Conditioning,
    EnergyModel,
    ExportPath,
    GibbsStep,
    NoiseSpec,
)
from seqboltz.noise import gibbs_uniforms, sequence_rng

__all__ = ["ConditionalRBM", "FactoredConditionalRBM", "FrameParams", "SequenceRBM"]


class FrameParams(NamedTuple):
    """What a conditioning fixes for one frame: dynamic biases and (factored) gates.

    Attributes:
        visible_bias: ``â`` ``(B, D)``.
        hidden_bias: ``b̂`` ``(B, H)``.
        gate: ``z Wᶻ`` ``(B, F)`` for the factored model; the residual scale ``σ(z)``
            ``(B, 1)`` for a :class:`~seqboltz.models.ResidualCRBM` with a style; else ``None``.
    """

    visible_bias: Tensor
    hidden_bias: Tensor
    gate: Tensor | None


class SequenceRBM(EnergyModel):
    """Base of conditional RBMs over frames (Gaussian visibles, σ = 1, binary hiddens).

    Subclasses implement :meth:`frame_params`, :meth:`hidden_input` and
    :meth:`visible_mean`; the energy-model interface and generation are shared.
    """

    visible_kind: ClassVar[Literal["bernoulli", "gaussian"]] = "gaussian"
    is_conditional: ClassVar[bool] = True
    export_path: ClassVar[ExportPath | None] = "sequence"
    order: int
    n_controls: int
    n_style: int

    # -- what subclasses provide ------------------------------------------------------------
    def frame_params(self, cond: Conditioning | None) -> FrameParams:
        """Dynamic biases (and gates) for a batch of conditionings."""
        raise NotImplementedError

    def hidden_input(self, v: Tensor, params: FrameParams) -> Tensor:
        """Total input to the hiddens ``b̂ + vᵀŴ``, ``(B, D)`` → ``(B, H)``."""
        raise NotImplementedError

    def visible_mean(self, h: Tensor, params: FrameParams) -> Tensor:
        """Mean of ``p(v | h, cond)``, ``(B, H)`` → ``(B, D)``."""
        raise NotImplementedError

    def coupling(self, h: Tensor, params: FrameParams) -> Tensor:
        """``Ŵ h`` ``(B, D)``: the hiddens' contribution to the visible mean."""
        return self.visible_mean(h, params) - params.visible_bias

    @property
    def noise_width(self) -> int:
        """Uniforms per Gibbs step of generation (``H``: one per hidden unit); the noise of a
        frame is ``(k, noise_width)``. Models that draw more per step (visible noise) widen it."""
        return self.n_hidden

    # -- conditioning -----------------------------------------------------------------------
    def parse_cond(self, cond: Conditioning | None) -> tuple[Tensor, Tensor | None, Tensor | None]:
        """Validate ``cond``; returns ``(history (B, order·D), controls, style)``."""
        if cond is None:
            raise ValueError(
                f"{type(self).__name__} is conditional: pass cond={{'history': (B, "
                f"{self.order}, {self.n_visible})"
                + (", 'style': ..." if self.n_style else "")
                + "}"
            )
        parts: Mapping[str, Tensor] = {"history": cond} if isinstance(cond, Tensor) else cond
        unknown = set(parts) - {"history", "controls", "style"}
        if unknown:
            raise ValueError(f"unknown conditioning keys {sorted(unknown)}")
        if "history" not in parts:
            raise ValueError("cond has no 'history'")
        history = parts["history"]
        if history.dim() != 3 or history.shape[2] != self.n_visible:
            raise ValueError(
                f"history must have shape (batch, {self.order}, {self.n_visible}); "
                f"got {tuple(history.shape)}"
            )
        if history.shape[1] < self.order:
            raise ValueError(
                f"history has {history.shape[1]} frames but the model's order is {self.order}"
            )
        history = history[:, : self.order].reshape(history.shape[0], -1)
        controls = self._check_extra(parts.get("controls"), self.n_controls, "controls", history)
        style = self._check_extra(parts.get("style"), self.n_style, "style", history)
        return history, controls, style

    def _check_extra(
        self, x: Tensor | None, size: int, name: str, history: Tensor
    ) -> Tensor | None:
        if size == 0:
            if x is not None:
                raise ValueError(f"{type(self).__name__} takes no {name} (it was built with 0)")
            return None
        if x is None:
            raise ValueError(f"{type(self).__name__} needs {name} of shape (batch, {size})")
        if x.dim() != 2 or x.shape != (history.shape[0], size):
            raise ValueError(
                f"{name} must have shape ({history.shape[0]}, {size}); got {tuple(x.shape)}"
            )
        return x

    # -- the energy-model interface ---------------------------------------------------------
    def _log_sigma(self, like: Tensor) -> Tensor:
        return torch.zeros(self.n_visible, dtype=like.dtype, device=like.device)  # σ = 1

    def _params_for(
        self, x: Tensor, cond: Conditioning | None, hidden: bool = False
    ) -> FrameParams:
        """Check ``x`` (visibles, or hiddens if ``hidden``) and return the frame parameters."""
        if hidden:
            self.check_hidden_shape(x)
        else:
            self.check_shape(x)
        params = self.frame_params(cond)
        n = params.visible_bias.shape[0]
        if n != x.shape[0]:
            size = self.n_hidden if hidden else self.n_visible
            raise ValueError(
                f"{type(self).__name__} expects {'h' if hidden else 'v'} of shape (batch, "
                f"{size}) with the conditioning's batch of {n}; got {tuple(x.shape)}"
            )
        return params

    def energy(self, v: Tensor, h: Tensor, cond: Conditioning | None = None) -> Tensor:
        self.check_hidden_shape(h)
        p = self._params_for(v, cond)
        return Fn.gaussian_energy_from_coupling(
            v, h, p.visible_bias, p.hidden_bias, self._log_sigma(v), self.coupling(h, p)
        )

    def free_energy(self, v: Tensor, cond: Conditioning | None = None) -> Tensor:
        p = self._params_for(v, cond)
        return Fn.gaussian_free_energy_from_input(
            v, p.visible_bias, self._log_sigma(v), self.hidden_input(v, p)
        )

    def hidden_free_energy(self, h: Tensor, cond: Conditioning | None = None) -> Tensor:
        p = self._params_for(h, cond, hidden=True)
        return Fn.gaussian_hidden_free_energy_from_coupling(
            h, self.coupling(h, p), p.visible_bias, p.hidden_bias, self._log_sigma(h)
        )

    def hidden_probs(self, v: Tensor, cond: Conditioning | None = None) -> Tensor:
        return torch.sigmoid(self.hidden_input(v, self._params_for(v, cond)))

    def visible_params(self, h: Tensor, cond: Conditioning | None = None) -> Tensor:
        return self.visible_mean(h, self._params_for(h, cond, hidden=True))

    def noise_spec(self) -> dict[str, NoiseSpec]:
        return {
            "hidden": NoiseSpec((self.n_hidden,), "uniform"),
            "visible": NoiseSpec((self.n_visible,), "normal"),
        }

    def gibbs_step(
        self, v: Tensor, noise: Mapping[str, Tensor], cond: Conditioning | None = None
    ) -> GibbsStep:
        p = self._params_for(v, cond)
        probs = torch.sigmoid(self.hidden_input(v, p))
        h = Fn.bernoulli_from_uniform(probs, noise["hidden"])
        mean = self.visible_mean(h, p)
        return GibbsStep(mean + noise["visible"], mean, h)

    @torch.no_grad()
    def init_chains(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        ref = self.reference_parameter()
        return torch.randn((n, self.n_visible), generator=generator, dtype=ref.dtype)

    @torch.no_grad()
    def init_from_data(self, data: Tensor) -> None:
        """No-op beyond validation: the data are standardised and the biases start at 0."""
        self.check_visible(data, "data")

    def annealing_path(self, base_data: Tensor | None = None) -> AnnealingPath:
        raise NotImplementedError(
            f"{type(self).__name__}: log Z depends on the history; evaluate sequence models "
            "by prediction error and generation statistics instead"
        )

    # -- generation -------------------------------------------------------------------------
    # One frame of the sampler in three parts, so that the exported graph can run any number
    # of Gibbs steps (an ONNX Loop over ``sampler_step``): ``next_frame`` is their composition.
    def sampler_start(self, cond: dict[str, Tensor]) -> tuple[Tensor, Any]:
        """A frame's chain start and what stays fixed over its Gibbs steps.

        Args:
            cond: ``{"history": (B, order, D) most recent first, "style"/"controls": (B, ·)}``.

        Returns:
            ``(state, context)``: the chain's state ``(B, D)`` (Taylor et al. 2007: the most
            recent frame) and the frame's :class:`FrameParams`.
        """
        return cond["history"][:, 0], self.frame_params(cond)

    def sampler_step(self, state: Tensor, context: Any, noise: Tensor) -> Tensor:
        """One alternating Gibbs step: ``h`` drawn as ``u < p(h | v, x)`` from ``noise``
        ``(B, noise_width)`` (one row of the frame's noise), ``v`` set to its mean."""
        probs = torch.sigmoid(self.hidden_input(state, context))
        return self.visible_mean(Fn.bernoulli_from_uniform(probs, noise), context)

    def sampler_emit(self, state: Tensor, context: Any, noise: Tensor) -> Tensor:
        """The frame emitted after the Gibbs steps: the visible mean under the final
        mean-field hidden step, ``(B, D)``; ``noise`` is the frame's last row (unused here)."""
        return self.visible_mean(torch.sigmoid(self.hidden_input(state, context)), context)

    def next_frame(self, cond: dict[str, Tensor], noise: Tensor) -> Tensor:
        """One frame of Taylor et al. (2007)'s sampler: the step :meth:`generate` repeats and
        the exported ONNX graph holds.

        Starting from the most recent frame, ``k`` alternating Gibbs steps with the hidden
        states drawn as ``u < p(h | v, x)`` from the given uniforms and the visibles set to
        their mean, then a final mean-field step: :meth:`sampler_start`, ``k`` ×
        :meth:`sampler_step` (step ``s`` reads row ``s`` of ``noise``), :meth:`sampler_emit`
        (with the last row).

        Args:
            cond: ``{"history": (B, order, D) most recent first, "style"/"controls": (B, ·)}``.
            noise: uniforms ``(B, k, H)`` (``H`` = :attr:`noise_width`), ``k ≥ 1``.

        Returns:
            ``(B, D)`` the next frame.
        """
        state, context = self.sampler_start(cond)
        for s in range(noise.shape[1]):
            state = self.sampler_step(state, context, noise[:, s])
        return self.sampler_emit(state, context, noise[:, -1])

    # -- generation -------------------------------------------------------------------------
    @torch.no_grad()
    def generate(
        self,
        seed_frames: Tensor,
        n_frames: int,
        gibbs_steps: int = 30,
        style: Tensor | None = None,
        controls: Tensor | None = None,
        seed: int = 0,
        sequence_indices: Sequence[int] | None = None,
    ) -> Tensor:
        """Generate ``n_frames`` new frames per sequence (Taylor et al. 2007's sampler).

        Args:
            seed_frames: the frames to continue, oldest first, ``(B, T0, D)`` or ``(T0, D)``
                with ``T0 ≥ order`` (only the last ``order`` are used).
            n_frames: frames to generate.
            gibbs_steps: ``k``, alternating Gibbs steps per frame.
            style: ``(S,)`` shared, ``(B, S)`` per sequence or ``(B, n_frames, S)`` per frame
                (the style may change mid-sequence); only for models with style. Read by
                :func:`seqboltz._conditioning.per_frame`, the rule the runtime's
                :class:`~seqboltz.runtime.FrameStream` uses.
            controls: per-frame controls, like ``style``.
            seed: the request's seed ``S``.
            sequence_indices: index ``i`` of each sequence in the request (default
                ``0..B-1``); sequence ``i`` draws its noise from ``sequence_rng(S, i)``.

        Returns:
            ``(B, n_frames, D)`` generated frames (``(n_frames, D)`` for a 2-D seed), in the
            model's dtype. Internally computed in float64 so that a sequence's frames do not
            depend on its batch.
        """
        squeeze = seed_frames.dim() == 2
        frames = seed_frames[None] if squeeze else seed_frames
        if frames.dim() != 3 or frames.shape[2] != self.n_visible:
            raise ValueError(
                f"seed_frames must have shape (batch, >= {self.order}, {self.n_visible}); "
                f"got {tuple(seed_frames.shape)}"
            )
        if frames.shape[1] < self.order:
            raise ValueError(
                f"need at least {self.order} seed frames (the model's order); got {frames.shape[1]}"
            )
        if n_frames < 1 or gibbs_steps < 1:
            raise ValueError(
                f"n_frames and gibbs_steps must be >= 1, got {n_frames}, {gibbs_steps}"
            )
        if not bool(torch.isfinite(frames).all()):
            raise ValueError("seed_frames contain NaN or infinite values")
        batch = frames.shape[0]
        indices = list(range(batch)) if sequence_indices is None else list(sequence_indices)
        if len(indices) != batch:
            raise ValueError(f"{len(indices)} sequence indices for a batch of {batch}")
        model = copy.deepcopy(self).to(torch.float64)
        device = self.reference_parameter().device
        extras: dict[str, Tensor] = {}  # per-frame style/controls (B, T, ·), the runtime's rule
        for name, x, size in (
            ("style", style, self.n_style),
            ("controls", controls, self.n_controls),
        ):
            numpy_x = None if x is None else x.detach().cpu().double().numpy()
            arr = per_frame(numpy_x, size, name, batch, n_frames, type(self).__name__)
            if arr is not None:
                extras[name] = torch.from_numpy(np.ascontiguousarray(arr)).to(device)
        rngs = [sequence_rng(seed, i) for i in indices]
        uniforms = np.stack(
            [gibbs_uniforms(r, n_frames, gibbs_steps, self.noise_width) for r in rngs]
        )
        noise = torch.from_numpy(uniforms).to(device)  # (B, T, k, H)
        # history window, most recent first
        window = frames[:, -self.order :].flip(1).to(device, torch.float64)
        out = []
        for t in range(n_frames):
            cond: dict[str, Tensor] = {"history": window}
            cond.update({name: x[:, t] for name, x in extras.items()})
            v = model.next_frame(cond, noise[:, t])
            out.append(v)
            window = torch.cat([v[:, None], window[:, :-1]], dim=1)
        result = torch.stack(out, dim=1).to(self.reference_parameter().dtype)
        return result[0] if squeeze else result


def _param(*shape: int, std: float) -> nn.Parameter:
    return nn.Parameter(torch.randn(*shape) * std if std > 0 else torch.zeros(*shape))


class ConditionalRBM(SequenceRBM):
    """Conditional RBM (Taylor, Hinton & Roweis 2007) over frames of ``D`` values.

    ``E(v, h | x, c) = ½‖v - â‖² - b̂ᵀh - vᵀWh`` with ``â = a + xA + cP``, ``b̂ = b + xB + cQ``;
    ``x`` the last ``order`` frames flattened (most recent first), ``c`` optional controls.

    Args:
        n_visible: frame size ``D`` (standardised features).
        n_hidden: hidden units ``H`` (Taylor et al. use 150).
        order: history length ``n`` (Taylor et al. use 3 at 30 fps).
        n_controls: size ``C`` of the optional per-frame controls (0: none).
        init_std: standard deviation of the initial ``W``, ``A``, ``B`` (0.01 in Taylor's code).

    Example:
        >>> crbm = ConditionalRBM(10, 16, order=3)
        >>> cond = {"history": torch.randn(4, 3, 10)}
        >>> crbm.free_energy(torch.randn(4, 10), cond).shape
        torch.Size([4])
    """

    def __init__(
        self,
        n_visible: int,
        n_hidden: int,
        order: int,
        n_controls: int = 0,
        init_std: float = 0.01,
    ) -> None:
        super().__init__()
        if min(n_visible, n_hidden, order) < 1 or n_controls < 0:
            raise ValueError(
                "need n_visible, n_hidden, order >= 1 and n_controls >= 0; got "
                f"{n_visible}, {n_hidden}, {order}, {n_controls}"
            )
        self.n_visible, self.n_hidden, self.order = n_visible, n_hidden, order
        self.n_controls, self.n_style, self.init_std = n_controls, 0, init_std
        n_past = order * n_visible
        self.weight = _param(n_visible, n_hidden, std=init_std)
        self.visible_bias = _param(n_visible, std=0)
        self.hidden_bias = _param(n_hidden, std=0)
        self.autoregressive = _param(n_past, n_visible, std=init_std)
        self.past_to_hidden = _param(n_past, n_hidden, std=init_std)
        if n_controls:
            self.control_to_visible = _param(n_controls, n_visible, std=init_std)
            self.control_to_hidden = _param(n_controls, n_hidden, std=init_std)

    def frame_params(self, cond: Conditioning | None) -> FrameParams:
        history, controls, _ = self.parse_cond(cond)
        a_hat, b_hat = Fn.linear_dynamic_biases(
            history,
            self.visible_bias,
            self.hidden_bias,
            self.autoregressive,
            self.past_to_hidden,
            controls,
            getattr(self, "control_to_visible", None),
            getattr(self, "control_to_hidden", None),
        )
        return FrameParams(a_hat, b_hat, None)

    def hidden_input(self, v: Tensor, params: FrameParams) -> Tensor:
        return Fn.hidden_input(v, self.weight, params.hidden_bias)

    def visible_mean(self, h: Tensor, params: FrameParams) -> Tensor:
        zeros = torch.zeros((), dtype=h.dtype, device=h.device)
        return Fn.gaussian_visible_mean(h, self.weight, params.visible_bias, zeros)

    @torch.no_grad()
    def cd_gradients(
        self,
        v_data: Tensor,
        hidden_uniform: Tensor,
        visible_noise: Tensor,
        cond: Conditioning | None = None,
        *,
        chain_start: Tensor | None = None,
        negative: Literal["sample", "mean_field"] = "sample",
        sparsity_target: float | None = None,
        sparsity_cost: float = 0.0,
        negative_free_energy: bool = False,
    ) -> Fn.ContrastiveStep:
        """Closed-form CD-k / PCD-k gradient of every parameter, written into ``.grad``.

        The gradient of ``mean F(v_data | cond) - mean F(v⁻ | cond) (+ sparsity penalty)``
        with ``v⁻`` the end of a ``k``-step chain under each row's own conditioning, driven
        by ``hidden_uniform (k, B, H)`` and the standard normals ``visible_noise (k, B, D)``
        (``k - 1`` allowed with mean-field negatives); it replaces each ``.grad``. The fast
        path of :class:`~seqboltz.training.RBMSystem`; see
        :func:`seqboltz.functional.crbm_cd_gradients`.
        """
        history, controls, _ = self.parse_cond(cond)
        self.check_shape(v_data, "v_data")
        if history.shape[0] != v_data.shape[0]:
            raise ValueError(
                f"v_data has {v_data.shape[0]} rows but the conditioning {history.shape[0]}"
            )
        params = [
            self.weight,
            self.visible_bias,
            self.hidden_bias,
            self.autoregressive,
            self.past_to_hidden,
        ]
        if self.n_controls:
            params += [self.control_to_visible, self.control_to_hidden]
        grads, step = Fn.crbm_cd_gradients(
            v_data,
            history,
            hidden_uniform,
            visible_noise,
            self.weight,
            self.visible_bias,
            self.hidden_bias,
            self.autoregressive,
            self.past_to_hidden,
            controls,
            getattr(self, "control_to_visible", None),
            getattr(self, "control_to_hidden", None),
            chain_start=chain_start,
            negative=negative,
            sparsity_target=sparsity_target,
            sparsity_cost=sparsity_cost,
            negative_free_energy=negative_free_energy,
            out=[p.grad for p in params],
        )
        for param, grad in zip(params, grads, strict=False):
            param.grad = grad
        return step

    def parameter_roles(self) -> dict[str, list[nn.Parameter]]:
        weights = [self.weight, self.autoregressive, self.past_to_hidden]
        if self.n_controls:
            weights += [self.control_to_visible, self.control_to_hidden]
        return {"weights": weights, "biases": [self.visible_bias, self.hidden_bias]}

    def extra_repr(self) -> str:
        return f"n_visible={self.n_visible}, n_hidden={self.n_hidden}, order={self.order}"


class FactoredConditionalRBM(SequenceRBM):
    """Factored conditional RBM with style (Taylor & Hinton 2009).

    Style features ``z`` ``(B, S)`` — a label embedding, or measured controls such as root
    speed — gate the visible-hidden, past-visible and past-hidden interactions through
    ``n_factors`` three-way factors, so one model holds several styles and the style can
    change mid-sequence (pass a per-frame style to :meth:`generate`).

    Args:
        n_visible: frame size ``D``.
        n_hidden: hidden units ``H``.
        order: history length ``n``.
        n_style: size ``S`` of the style features.
        n_factors: number of factors ``F`` per interaction.
        n_controls: size of additional per-frame controls entering the biases linearly.
        init_std: standard deviation of the initial factor weights.
        gated_autoregressive: whether the style gates the autoregressive past→visible
            interaction ``Â(z)`` too, as in Taylor & Hinton (2009). With ``False``, ``Â`` is
            the same for every style (still factored, with learned gate offsets) and the
            style changes the dynamics only through the hidden units and the biases. Use
            ``False`` for continuous controls that a client may push to any value (e.g. root
            speed): a gated ``Â(z)`` is a different linear dynamical system for every
            ``z``, and one with spectral radius above 1 for some requested ``z`` makes the
            generation grow without bound (measured in ``benchmarks/RESULTS.md``).

    Example:
        >>> fcrbm = FactoredConditionalRBM(10, 16, order=2, n_style=3, n_factors=8)
        >>> cond = {"history": torch.randn(4, 2, 10), "style": torch.randn(4, 3)}
        >>> fcrbm.hidden_probs(torch.randn(4, 10), cond).shape
        torch.Size([4, 16])
    """

    def __init__(
        self,
        n_visible: int,
        n_hidden: int,
        order: int,
        n_style: int,
        n_factors: int = 100,
        n_controls: int = 0,
        init_std: float = 0.01,
        gated_autoregressive: bool = True,
    ) -> None:
        super().__init__()
        if min(n_visible, n_hidden, order, n_style, n_factors) < 1 or n_controls < 0:
            raise ValueError(
                "need n_visible, n_hidden, order, n_style, n_factors >= 1 and n_controls >= 0;"
                f" got {n_visible}, {n_hidden}, {order}, {n_style}, {n_factors}, {n_controls}"
            )
        self.n_visible, self.n_hidden, self.order = n_visible, n_hidden, order
        self.n_style, self.n_factors, self.n_controls = n_style, n_factors, n_controls
        self.init_std = init_std
        self.gated_autoregressive = gated_autoregressive
        n_past = order * n_visible
        # Each gate is g = z Wᶻ + c with a learned offset c (starting at 1): without it a
        # real-valued style near 0 (e.g. a standardised speed at its mean) would switch every
        # interaction off. Style weights start small, so training starts near a plain CRBM.
        gate_std = 0.1 / math.sqrt(n_style)
        self.visible_factor = _param(n_visible, n_factors, std=init_std)
        self.hidden_factor = _param(n_hidden, n_factors, std=init_std)
        self.style_factor = _param(n_style, n_factors, std=gate_std)
        self.past_factor_v = _param(n_past, n_factors, std=init_std)
        self.style_factor_v = (
            _param(n_style, n_factors, std=gate_std) if gated_autoregressive else None
        )
        self.visible_factor_a = _param(n_visible, n_factors, std=init_std)
        self.past_factor_h = _param(n_past, n_factors, std=init_std)
        self.style_factor_h = _param(n_style, n_factors, std=gate_std)
        self.hidden_factor_b = _param(n_hidden, n_factors, std=init_std)
        self.gate_offset = nn.Parameter(torch.ones(n_factors))
        self.gate_offset_v = nn.Parameter(torch.ones(n_factors))
        self.gate_offset_h = nn.Parameter(torch.ones(n_factors))
        self.style_to_visible = _param(n_style, n_visible, std=init_std)
        self.style_to_hidden = _param(n_style, n_hidden, std=init_std)
        self.visible_bias = _param(n_visible, std=0)
        self.hidden_bias = _param(n_hidden, std=0)
        if n_controls:
            self.control_to_visible = _param(n_controls, n_visible, std=init_std)
            self.control_to_hidden = _param(n_controls, n_hidden, std=init_std)

    def frame_params(self, cond: Conditioning | None) -> FrameParams:
        history, controls, style = self.parse_cond(cond)
        assert style is not None
        # [1, z] with the offsets as the first row of each style factor: g = z Wᶻ + c
        ones = torch.ones_like(style[:, :1])
        z1 = torch.cat([ones, style], dim=1)

        def with_offset(offset: Tensor, factor: Tensor) -> Tensor:
            return torch.cat([offset[None], factor], dim=0)

        style_factor_v = (
            self.style_factor_v
            if self.style_factor_v is not None
            else torch.zeros_like(self.style_factor_h)  # Â does not depend on the style
        )
        no_bias_v = torch.zeros_like(self.style_to_visible[:1])
        no_bias_h = torch.zeros_like(self.style_to_hidden[:1])
        a_hat, b_hat = Fn.factored_dynamic_biases(
            history,
            z1,
            self.visible_bias,
            self.hidden_bias,
            self.past_factor_v,
            with_offset(self.gate_offset_v, style_factor_v),
            self.visible_factor_a,
            self.past_factor_h,
            with_offset(self.gate_offset_h, self.style_factor_h),
            self.hidden_factor_b,
            torch.cat([no_bias_v, self.style_to_visible]),
            torch.cat([no_bias_h, self.style_to_hidden]),
        )
        if controls is not None:
            a_hat = a_hat + controls @ self.control_to_visible
            b_hat = b_hat + controls @ self.control_to_hidden
        return FrameParams(a_hat, b_hat, style @ self.style_factor + self.gate_offset)

    def hidden_input(self, v: Tensor, params: FrameParams) -> Tensor:
        assert params.gate is not None
        return Fn.factored_hidden_input(
            v, params.hidden_bias, self.visible_factor, params.gate, self.hidden_factor
        )

    def visible_mean(self, h: Tensor, params: FrameParams) -> Tensor:
        assert params.gate is not None
        return Fn.factored_visible_mean(
            h, params.visible_bias, self.visible_factor, params.gate, self.hidden_factor
        )

    def parameter_roles(self) -> dict[str, list[nn.Parameter]]:
        biases = [
            self.visible_bias,
            self.hidden_bias,
            self.gate_offset,
            self.gate_offset_v,
            self.gate_offset_h,
        ]
        weights = [p for p in self.parameters() if all(p is not b for b in biases)]
        return {"weights": weights, "biases": biases}

    def extra_repr(self) -> str:
        return (
            f"n_visible={self.n_visible}, n_hidden={self.n_hidden}, order={self.order}, "
            f"n_style={self.n_style}, n_factors={self.n_factors}, "
            f"gated_autoregressive={self.gated_autoregressive}"
        )
