"""Taylor, Hinton & Roweis (2007)'s two-layer conditional RBM, trained greedily.

Layer 1 is a :class:`~seqboltz.models.ConditionalRBM` over motion frames (Gaussian visibles,
order ``n1``). Layer 2 is a conditional RBM with *binary* visibles
(:class:`BinaryConditionalRBM`, order ``n2``) trained on sequences of layer 1's hidden
probabilities ``p(h¹_t | v_t, v_{t-1…t-n1})``, which it reads as real values in [0, 1]
(Taylor et al. 2007, section 3.3).

Generation (:class:`TwoLayerCRBM`) runs the top layer's Taylor sampler over ``h¹`` (chain
started at the previous ``h¹``, ``k`` alternating Gibbs steps with sampled ``h²`` and mean
``h¹``, a final mean-field step) and passes the resulting ``h¹`` down through layer 1's
directed part: ``v_t = â¹(v_{<t}) + W¹ h¹_t``.

Layer 1 may also be a :class:`~seqboltz.models.ResidualCRBM` (``lower="residual"``, without
controls or style): its hidden units model the whitened residual of a fixed, stable linear
predictor, and the frame is then ``v_t = L(â¹ + W¹ h¹_t + s ε)`` with ``ε ~ N(0, I)`` from the
frame's last noise row and ``s`` layer 1's ``visible_noise``: the top layer steers the part of
the residual that the hidden units carry, over a longer window, and the rest stays the model's
own noise (a plain CRBM's visible mean alone).

The history of ``h¹`` is re-inferred from the generated frames, ``h¹_{t-j} = p(h¹ | v_{t-j},
v_{t-j-1…t-j-n1})``, rather than carried as separate state (Taylor's code keeps the top
layer's mean-field ``h¹``). So the model is a sequence model of order ``n1 + n2`` over ``v``
alone: the same ``history``/``noise`` step as a one-layer CRBM, which exports, streams,
resumes and serves through the one frame loop. The noise per frame is ``k × H²`` uniforms.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Literal

import torch
from torch import Tensor

from seqboltz import functional as Fn
from seqboltz.models._base import (
    AnnealingPath,
    Conditioning,
    GibbsStep,
    NoiseSpec,
)
from seqboltz.models._crbm import ConditionalRBM, FrameParams, SequenceRBM
from seqboltz.models._registry import register_model
from seqboltz.models._residual import ResidualCRBM, box_muller

__all__ = ["BinaryConditionalRBM", "TwoLayerCRBM"]


@register_model
class BinaryConditionalRBM(ConditionalRBM):
    """A conditional RBM with binary visibles: the upper layer of :class:`TwoLayerCRBM`.

    ``E(v, h | x) = -âᵀv - b̂ᵀh - vᵀWh`` with ``â = a + xA``, ``b̂ = b + xB`` and ``x`` the
    last ``order`` frames of ``v`` flattened (most recent first). ``v`` may be
    probabilities in [0, 1] (layer 1's hidden probabilities), as in Taylor et al. (2007).

    Args: as :class:`~seqboltz.models.ConditionalRBM`.

    Example:
        >>> top = BinaryConditionalRBM(20, 16, order=2)
        >>> cond = {"history": torch.rand(4, 2, 20)}
        >>> top.visible_params(torch.ones(4, 16), cond).shape
        torch.Size([4, 20])
    """

    visible_kind: ClassVar[Literal["bernoulli", "gaussian"]] = "bernoulli"
    # The parent's closed-form CD gradient is the Gaussian one: this energy trains through
    # autograd of its own free energy (None marks the method unsupported for ClosedFormCD).
    cd_gradients = None  # type: ignore[assignment]

    def visible_mean(self, h: Tensor, params: FrameParams) -> Tensor:
        """``p(v = 1 | h, x) = sigm(â + W h)`` ``(B, H)`` → ``(B, D)``."""
        return Fn.bernoulli_visible_probs(h, self.weight, params.visible_bias)

    def coupling(self, h: Tensor, params: FrameParams) -> Tensor:
        return h @ self.weight.T

    def energy(self, v: Tensor, h: Tensor, cond: Conditioning | None = None) -> Tensor:
        self.check_hidden_shape(h)
        p = self._params_for(v, cond)
        return Fn.bernoulli_rbm_energy(v, h, self.weight, p.visible_bias, p.hidden_bias)

    def free_energy(self, v: Tensor, cond: Conditioning | None = None) -> Tensor:
        p = self._params_for(v, cond)
        return Fn.bernoulli_rbm_free_energy(v, self.weight, p.visible_bias, p.hidden_bias)

    def hidden_free_energy(self, h: Tensor, cond: Conditioning | None = None) -> Tensor:
        p = self._params_for(h, cond, hidden=True)
        return Fn.bernoulli_rbm_hidden_free_energy(h, self.weight, p.visible_bias, p.hidden_bias)

    def noise_spec(self) -> dict[str, NoiseSpec]:
        return {
            "hidden": NoiseSpec((self.n_hidden,), "uniform"),
            "visible": NoiseSpec((self.n_visible,), "uniform"),
        }

    def gibbs_step(
        self, v: Tensor, noise: Mapping[str, Tensor], cond: Conditioning | None = None
    ) -> GibbsStep:
        p = self._params_for(v, cond)
        h = Fn.bernoulli_from_uniform(torch.sigmoid(self.hidden_input(v, p)), noise["hidden"])
        probs = self.visible_mean(h, p)
        return GibbsStep(Fn.bernoulli_from_uniform(probs, noise["visible"]), probs, h)

    @torch.no_grad()
    def init_chains(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        ref = self.reference_parameter()
        return (torch.rand((n, self.n_visible), generator=generator, dtype=ref.dtype) < 0.5).to(
            ref.dtype
        )

    @torch.no_grad()
    def init_from_data(self, data: Tensor) -> None:
        """Check that the data are probabilities; the biases start at 0."""
        self.check_visible(data, "data")
        if bool((data < 0).any()) or bool((data > 1).any()):
            raise ValueError(
                f"{type(self).__name__} models values in [0, 1] (probabilities); the data "
                f"range over [{float(data.min()):.3g}, {float(data.max()):.3g}]"
            )


@register_model
class TwoLayerCRBM(SequenceRBM):
    """Two stacked CRBMs (Taylor, Hinton & Roweis 2007, section 3.3) generating frames.

    Build it from two greedily trained layers with :meth:`from_layers`; it is not trained
    as a whole. As a sequence model its ``order`` is ``order1 + order2`` frames of ``v``
    and its sampling noise is ``k × n_hidden2`` uniforms per frame (see the module).

    Args:
        n_visible: frame size ``D``.
        n_hidden1: layer 1's hidden units ``H¹`` (layer 2's visibles).
        n_hidden2: layer 2's hidden units ``H²``.
        order1: layer 1's history length ``n1`` (frames of ``v``).
        order2: layer 2's history length ``n2`` (frames of ``h¹``).
        init_std: initial weight scale of both layers (replaced by :meth:`from_layers`).
        lower: layer 1's kind: ``"crbm"`` (:class:`~seqboltz.models.ConditionalRBM`, the
            paper's) or ``"residual"`` (:class:`~seqboltz.models.ResidualCRBM`).
        visible_noise: a residual layer 1's ``visible_noise`` (the scale of ``ε``; ignored
            for ``"crbm"``).

    Example:
        >>> model = TwoLayerCRBM(10, 16, 8, order1=3, order2=2)
        >>> model.order, model.n_hidden
        (5, 8)
        >>> model.generate(torch.randn(5, 10), n_frames=4, gibbs_steps=3).shape
        torch.Size([4, 10])
    """

    def __init__(
        self,
        n_visible: int,
        n_hidden1: int,
        n_hidden2: int,
        order1: int,
        order2: int,
        init_std: float = 0.01,
        lower: Literal["crbm", "residual"] = "crbm",
        visible_noise: float = 1.0,
    ) -> None:
        super().__init__()
        if lower not in ("crbm", "residual"):
            raise ValueError(f"lower must be 'crbm' or 'residual'; got {lower!r}")
        self.layer1: ConditionalRBM | ResidualCRBM
        if lower == "residual":
            self.layer1 = ResidualCRBM(
                n_visible, n_hidden1, order1, init_std=init_std, visible_noise=visible_noise
            )
        else:
            self.layer1 = ConditionalRBM(n_visible, n_hidden1, order1, init_std=init_std)
        self.lower = lower
        self._visible_noise = visible_noise  # a plain CRBM layer 1 has none (ignored)
        self.layer2 = BinaryConditionalRBM(n_hidden1, n_hidden2, order2, init_std=init_std)
        self.n_visible, self.n_hidden = n_visible, n_hidden2
        self.n_hidden1, self.n_hidden2 = n_hidden1, n_hidden2
        self.order1, self.order2 = order1, order2
        self.order = order1 + order2
        self.n_controls, self.n_style = 0, 0
        self.init_std = init_std

    @property
    def visible_noise(self) -> float:
        """A residual layer 1's ``visible_noise`` (read from the layer, the one the sampler
        uses); the constructor's value for a plain CRBM layer 1, which has none."""
        if isinstance(self.layer1, ResidualCRBM):
            return float(self.layer1.visible_noise)
        return self._visible_noise

    @property
    def noise_width(self) -> int:
        """``H²`` uniforms per Gibbs step, and with a residual layer 1 ``2⌈D/2⌉`` more for its
        visible normals (read from the frame's last row)."""
        if self.lower == "residual":
            return self.n_hidden2 + 2 * ((self.n_visible + 1) // 2)
        return self.n_hidden2

    @classmethod
    def from_layers(
        cls, layer1: ConditionalRBM | ResidualCRBM, layer2: BinaryConditionalRBM
    ) -> TwoLayerCRBM:
        """Stack two trained layers (their weights and buffers are copied)."""
        residual = isinstance(layer1, ResidualCRBM)
        if (
            not (type(layer1) is ConditionalRBM or residual)
            or layer1.n_controls
            or (residual and layer1.n_style)
        ):
            raise ValueError(
                "layer 1 must be a ConditionalRBM or a ResidualCRBM without controls or style; "
                f"got {type(layer1).__name__}"
            )
        if not isinstance(layer2, BinaryConditionalRBM) or layer2.n_controls:
            raise ValueError(
                "layer 2 must be a BinaryConditionalRBM without controls (trained on layer 1's "
                f"hidden probabilities); got {type(layer2).__name__}"
            )
        if layer2.n_visible != layer1.n_hidden:
            raise ValueError(
                f"layer 2 has {layer2.n_visible} visibles but layer 1 has {layer1.n_hidden} "
                "hidden units: it was not trained on this layer 1"
            )
        model = cls(
            layer1.n_visible,
            layer1.n_hidden,
            layer2.n_hidden,
            layer1.order,
            layer2.order,
            lower="residual" if residual else "crbm",
            visible_noise=layer1.visible_noise if isinstance(layer1, ResidualCRBM) else 1.0,
        )
        model.layer1.load_state_dict(layer1.state_dict())
        model.layer2.load_state_dict(layer2.state_dict())
        return model.to(layer1.reference_parameter().dtype)

    # -- sampling: the step the runtime and the exported graph repeat -----------------------
    def lower_hidden_history(self, history: Tensor) -> Tensor:
        """Layer 1's hidden probabilities of the ``order2`` most recent frames, each given its
        own ``order1`` earlier frames: ``(B, order1 + order2, D)`` (most recent first) →
        ``(B, order2, H¹)`` (most recent first)."""
        n1 = self.order1
        return torch.stack(
            [
                self.layer1.hidden_probs(history[:, j], {"history": history[:, j + 1 : j + 1 + n1]})
                for j in range(self.order2)
            ],
            dim=1,
        )

    def sampler_start(self, cond: dict[str, Tensor]) -> tuple[Tensor, Any]:
        """The top layer's chain start over ``h¹`` (its most recent re-inferred value) and the
        context of both layers: ``cond = {"history": (B, order1 + order2, D)}``, most recent
        first."""
        history, _, _ = self.parse_cond(cond)
        history = history.reshape(history.shape[0], self.order, self.n_visible)
        state, top = self.layer2.sampler_start({"history": self.lower_hidden_history(history)})
        return state, (top, self.layer1.frame_params({"history": history[:, : self.order1]}))

    def sampler_step(self, state: Tensor, context: Any, noise: Tensor) -> Tensor:
        """One Gibbs step of the top layer from the first ``H²`` columns of ``noise``."""
        return self.layer2.sampler_step(state, context[0], noise[:, : self.n_hidden2])

    def sampler_emit(self, state: Tensor, context: Any, noise: Tensor) -> Tensor:
        """``â¹ + W¹ h¹``, with ``h¹`` the top layer's final mean-field value: ``(B, D)``; a
        residual layer 1 gives ``L(â¹ + W¹ h¹ + s ε)``, ``ε`` by Box–Muller from the columns
        past ``H²``."""
        h1 = self.layer2.sampler_emit(state, context[0], noise[:, : self.n_hidden2])
        layer1 = self.layer1
        if not isinstance(layer1, ResidualCRBM):
            return layer1.visible_mean(h1, context[1])
        r = h1 @ layer1.weight.T
        if layer1.visible_noise > 0:
            eps = box_muller(noise[:, self.n_hidden2 :], self.n_visible)
            r = r + layer1.visible_noise * eps
        unwhiten: Tensor = layer1.unwhiten
        return (context[1].visible_bias + r) @ unwhiten.T

    # -- the energy-model interface: the stack has no tractable joint free energy -----------
    def _layerwise(self, what: str) -> NotImplementedError:
        return NotImplementedError(
            f"TwoLayerCRBM has no {what}: it is trained layer by layer (fit layer 1 as a "
            "ConditionalRBM, layer 2 as a BinaryConditionalRBM on layer 1's hidden "
            "probabilities) and stacked with TwoLayerCRBM.from_layers"
        )

    def frame_params(self, cond: Conditioning | None) -> FrameParams:
        raise self._layerwise("single set of frame parameters")

    def energy(self, v: Tensor, h: Tensor, cond: Conditioning | None = None) -> Tensor:
        raise self._layerwise("joint energy")

    def free_energy(self, v: Tensor, cond: Conditioning | None = None) -> Tensor:
        raise self._layerwise("free energy")

    def hidden_free_energy(self, h: Tensor, cond: Conditioning | None = None) -> Tensor:
        raise self._layerwise("hidden free energy")

    def hidden_probs(self, v: Tensor, cond: Conditioning | None = None) -> Tensor:
        raise self._layerwise("single hidden layer")

    def visible_params(self, h: Tensor, cond: Conditioning | None = None) -> Tensor:
        raise self._layerwise("single hidden layer")

    def gibbs_step(
        self, v: Tensor, noise: Mapping[str, Tensor], cond: Conditioning | None = None
    ) -> GibbsStep:
        raise self._layerwise("block Gibbs step over one RBM")

    def annealing_path(self, base_data: Tensor | None = None) -> AnnealingPath:
        raise self._layerwise("annealing path")

    def parameter_roles(self) -> dict[str, list[Any]]:
        roles: dict[str, list[Any]] = {"weights": [], "biases": []}
        for layer in (self.layer1, self.layer2):
            for role, params in layer.parameter_roles().items():
                roles[role] += params
        return roles

    def extra_repr(self) -> str:
        return (
            f"n_visible={self.n_visible}, n_hidden1={self.n_hidden1}, "
            f"n_hidden2={self.n_hidden2}, order1={self.order1}, order2={self.order2}, "
            f"lower={self.lower!r}"
        )
