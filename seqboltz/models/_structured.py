"""Conditional RBM for structured output prediction (Mnih, Larochelle & Hinton 2011).

``p(y, h | x) ∝ exp(-E(y, h | x))`` with binary outputs ``y`` (the visibles, ``D`` of them:
denoised pixels, pixel labels, a multi-label vector), binary hiddens ``h`` and a real input
``x`` ``(B, C)`` passed as ``cond``. The input enters only through dynamic biases,

    ``â = a + x A``,   ``b̂ = b + x B``,   ``E(y, h | x) = -yᵀWh - âᵀy - b̂ᵀh``,

(Mnih, Larochelle & Hinton 2011, "Conditional Restricted Boltzmann Machines for Structured
Output Prediction", UAI, arXiv:1202.3748, §2), so the model is a thin module over
:func:`~seqboltz.functional.linear_dynamic_biases` and the binary-RBM functions, with per-example
biases. Train it with :class:`~seqboltz.training.RBMSystem` on batches ``(y, x)``: CD-k
(``negative="sample"``) or CD-PercLoss (``negative="perceptron"``, §4 of the paper).
Predict with :meth:`StructuredOutputCRBM.predict`: mean field (optionally damped),
deterministic "MAP", or, for small output spaces (``D ≤ 20``: multi-label classification),
exactly by enumerating every ``y`` (``"exact"`` marginals, ``"exact_map"``). The model keeps
its default inference (``inference``, ``inference_start``, ``inference_steps``, ``damping``),
which :meth:`~StructuredOutputCRBM.prediction_errors` uses for ``RBMSystem``'s
``val/output_error``. :meth:`~StructuredOutputCRBM.cost_augmented_cond` gives CD-PercLoss its
cost-augmented (margin) negative (``RBMSystem(perceptron_margin=...)``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import ClassVar, Literal, NamedTuple

import numpy as np
import torch
from torch import Tensor, nn

from seqboltz import functional as Fn
from seqboltz.functional._structured import MAX_EXACT_OUTPUTS
from seqboltz.models._base import AnnealingPath, Conditioning, EnergyModel, GibbsStep, NoiseSpec

__all__ = ["StructuredInference", "StructuredOutputCRBM"]

InferenceMethod = Literal["mean_field", "map", "exact", "exact_map"]
InferenceStart = Literal["zeros", "input"]
_METHODS = ("mean_field", "map", "exact", "exact_map")


class StructuredInference(NamedTuple):
    """Result of :meth:`StructuredOutputCRBM.infer`.

    Attributes:
        y: ``(B, D)``: ``q(y = 1)`` for mean field, binary states for ``"map"``.
        h: ``(B, H)``: ``q(h = 1)`` for mean field, binary states for ``"map"``.

    For ``"exact"``, ``y`` is ``p(yᵢ = 1 | x)`` and ``h`` is ``p(hⱼ = 1 | x)``; for
    ``"exact_map"``, ``y`` is the most probable output and ``h`` ``p(h = 1 | y, x)`` there.
    """

    y: Tensor
    h: Tensor


def _param(*shape: int, std: float) -> nn.Parameter:
    return nn.Parameter(torch.randn(*shape) * std if std > 0 else torch.zeros(*shape))


class StructuredOutputCRBM(EnergyModel):
    """Binary conditional RBM ``p(y, h | x)`` for structured outputs (Mnih et al. 2011).

    ``E(y, h | x) = -yᵀWh - (a + xA)ᵀy - (b + xB)ᵀh``; ``cond`` is the input ``x``,
    a floating tensor ``(B, n_cond)`` (required by every method). ``p(y | x)`` has an
    ``x``-dependent partition function, so there is no AIS path; evaluate by prediction error.

    Args:
        n_visible: output size ``D`` (``dim y``).
        n_hidden: hidden units ``H``.
        n_cond: input size ``C`` (``dim x``).
        init_std: standard deviation of the initial ``W``, ``A`` and ``B``.
        inference: default inference of :meth:`predict` (and of ``val/output_error``):
            ``"mean_field"``, ``"map"``, ``"exact"`` or ``"exact_map"`` (the last two need
            ``n_visible ≤ 20``).
        inference_start: default ``y_init`` of :meth:`infer`, ``"zeros"`` or ``"input"``.
        inference_steps: default maximum number of mean-field / MAP steps.
        damping: default mean-field damping ``λ`` in ``[0, 1)``.

    Example:
        >>> crbm = StructuredOutputCRBM(16, 8, n_cond=16)
        >>> x = torch.rand(4, 16)
        >>> crbm.free_energy(torch.bernoulli(torch.rand(4, 16)), x).shape
        torch.Size([4])
        >>> crbm.predict(x, method="map").shape
        torch.Size([4, 16])
    """

    visible_kind: ClassVar[Literal["bernoulli", "gaussian"]] = "bernoulli"
    is_conditional: ClassVar[bool] = True
    export_refusal: ClassVar[str] = (
        "it samples p(y | x), and the runtime's Gibbs chains take no input x; predict with "
        "StructuredOutputCRBM.infer or `seqboltz evaluate` instead"
    )

    def __init__(
        self,
        n_visible: int,
        n_hidden: int,
        n_cond: int,
        init_std: float = 0.01,
        inference: InferenceMethod = "mean_field",
        inference_start: InferenceStart = "zeros",
        inference_steps: int = 30,
        damping: float = 0.0,
    ) -> None:
        super().__init__()
        if min(n_visible, n_hidden, n_cond) < 1:
            raise ValueError(
                "n_visible, n_hidden and n_cond must be >= 1, got "
                f"{n_visible}, {n_hidden}, {n_cond}"
            )
        if not init_std >= 0:
            raise ValueError(f"init_std must be >= 0, got {init_std}")
        self.n_visible, self.n_hidden, self.n_cond = n_visible, n_hidden, n_cond
        self.init_std = init_std
        self.inference: InferenceMethod = self._check_inference(
            inference, inference_start, inference_steps, damping
        )
        self.inference_start: InferenceStart = inference_start
        self.inference_steps = inference_steps
        self.damping = damping
        self.weight = _param(n_visible, n_hidden, std=init_std)  # W (D, H)
        self.visible_bias = _param(n_visible, std=0)  # a (D,)
        self.hidden_bias = _param(n_hidden, std=0)  # b (H,)
        self.cond_to_visible = _param(n_cond, n_visible, std=init_std)  # A (C, D)
        self.cond_to_hidden = _param(n_cond, n_hidden, std=init_std)  # B (C, H)

    # -- conditioning -----------------------------------------------------------------------
    def parse_cond(self, cond: Conditioning | None, batch: int | None = None) -> Tensor:
        """Validate the input ``x``: a finite floating tensor ``(batch, n_cond)``."""
        return self._split_cond(cond, batch)[0]

    def _split_cond(
        self, cond: Conditioning | None, batch: int | None = None
    ) -> tuple[Tensor, tuple[Tensor, float] | None]:
        """``(x, (target, margin) or None)``: cond is ``x``, ``{"x": x}``, or
        :meth:`cost_augmented_cond`'s ``{"x", "target", "margin"}``."""
        name = type(self).__name__
        if cond is None:
            raise ValueError(f"{name} is conditional: pass the input x as cond, (B, {self.n_cond})")
        cost: tuple[Tensor, float] | None = None
        if isinstance(cond, Mapping):
            if set(cond) not in ({"x"}, {"x", "target", "margin"}):
                raise ValueError(
                    f"{name} takes cond=x, {{'x': x}} or {{'x', 'target', 'margin'}}; "
                    f"got keys {sorted(cond)}"
                )
            if "target" in cond:
                cost = (cond["target"], float(cond["margin"]))
            cond = cond["x"]
        if not isinstance(cond, Tensor):
            raise ValueError(f"{name}: cond must be a tensor x, got {type(cond).__name__}")
        if cond.dim() != 2 or cond.shape[1] != self.n_cond:
            raise ValueError(
                f"{name} expects x (cond) of shape (batch, {self.n_cond}); got {tuple(cond.shape)}"
            )
        if batch is not None and cond.shape[0] != batch:
            raise ValueError(
                f"{name}: x (cond) has {cond.shape[0]} rows but the states have {batch}"
            )
        if not cond.is_floating_point():
            raise ValueError(f"{name}: x (cond) must be floating point, got {cond.dtype}")
        if not bool(torch.isfinite(cond).all()):
            bad = (~torch.isfinite(cond)).any(dim=1).nonzero().flatten()[:5].tolist()
            raise ValueError(f"{name}: x (cond) contains NaN or infinite values (rows {bad})")
        if cost is not None and cost[0].shape != (cond.shape[0], self.n_visible):
            raise ValueError(
                f"{name}: the cost-augmentation target must be (batch, {self.n_visible}) like "
                f"x's rows; got {tuple(cost[0].shape)}"
            )
        return cond, cost

    def dynamic_biases(
        self, cond: Conditioning | None, batch: int | None = None
    ) -> tuple[Tensor, Tensor]:
        """``(â, b̂) = (a + xA, b + xB)``, ``(B, D)`` and ``(B, H)``, for a validated ``x``;
        for a cost-augmented cond, ``â + m (1 - 2t)`` (:func:`~seqboltz.functional.
        cost_augmented_bias`)."""
        x, cost = self._split_cond(cond, batch)
        a_hat, b_hat = Fn.linear_dynamic_biases(
            x, self.visible_bias, self.hidden_bias, self.cond_to_visible, self.cond_to_hidden
        )
        if cost is not None:
            a_hat = Fn.cost_augmented_bias(a_hat, cost[0].to(a_hat), cost[1])
        return a_hat, b_hat

    def cost_augmented_cond(
        self, cond: Conditioning, target: Tensor, margin: float
    ) -> dict[str, Tensor]:
        """Conditioning under which inference maximises ``-F(y | x) + m Δ(y, target)``
        (Hamming loss ``Δ``; margin rescaling, Taskar et al. 2003): the output biases become
        ``â + m (1 - 2·target)``. ``target`` ``(B, D)``; use it only for a negative phase."""
        x, _ = self._split_cond(cond, target.shape[0])
        return {
            "x": x,
            "target": target.detach(),
            "margin": torch.tensor(float(margin), dtype=torch.float64),
        }

    # -- the energy-model interface ---------------------------------------------------------
    def energy(self, v: Tensor, h: Tensor, cond: Conditioning | None = None) -> Tensor:
        self.check_shape(v, "y")
        self.check_hidden_shape(h)
        a_hat, b_hat = self.dynamic_biases(cond, v.shape[0])
        return Fn.bernoulli_rbm_energy(v, h, self.weight, a_hat, b_hat)

    def free_energy(self, v: Tensor, cond: Conditioning | None = None) -> Tensor:
        """``F(y | x) = -âᵀy - Σⱼ softplus(b̂ⱼ + (yᵀW)ⱼ)``; ``p(y | x) ∝ exp(-F(y | x))``."""
        self.check_shape(v, "y")
        a_hat, b_hat = self.dynamic_biases(cond, v.shape[0])
        return Fn.bernoulli_rbm_free_energy(v, self.weight, a_hat, b_hat)

    def hidden_free_energy(self, h: Tensor, cond: Conditioning | None = None) -> Tensor:
        self.check_hidden_shape(h)
        a_hat, b_hat = self.dynamic_biases(cond, h.shape[0])
        return Fn.bernoulli_rbm_hidden_free_energy(h, self.weight, a_hat, b_hat)

    def hidden_probs(self, v: Tensor, cond: Conditioning | None = None) -> Tensor:
        """``p(h = 1 | y, x) = sigm(b̂ + yᵀW)``, ``(B, H)``."""
        self.check_shape(v, "y")
        _, b_hat = self.dynamic_biases(cond, v.shape[0])
        return Fn.hidden_probs(v, self.weight, b_hat)

    def visible_params(self, h: Tensor, cond: Conditioning | None = None) -> Tensor:
        """``p(y = 1 | h, x) = sigm(â + W h)``, ``(B, D)``."""
        self.check_hidden_shape(h)
        a_hat, _ = self.dynamic_biases(cond, h.shape[0])
        return Fn.bernoulli_visible_probs(h, self.weight, a_hat)

    def noise_spec(self) -> dict[str, NoiseSpec]:
        return {
            "hidden": NoiseSpec((self.n_hidden,), "uniform"),
            "visible": NoiseSpec((self.n_visible,), "uniform"),
        }

    def gibbs_step(
        self, v: Tensor, noise: Mapping[str, Tensor], cond: Conditioning | None = None
    ) -> GibbsStep:
        """``y → h → y'`` given ``x``: a unit is on where its uniform noise is below its
        probability (noise ½ everywhere gives the most probable states, as CD-PercLoss uses)."""
        self.check_shape(v, "y")
        a_hat, b_hat = self.dynamic_biases(cond, v.shape[0])
        y, probs, h = Fn.bernoulli_rbm_gibbs_step(
            v, noise["hidden"], noise["visible"], self.weight, a_hat, b_hat
        )
        return GibbsStep(y, probs, h)

    @torch.no_grad()
    def init_chains(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """Samples ``(n, D)`` of ``sigm(a)`` (the output biases without an input)."""
        p = torch.sigmoid(self.visible_bias).expand(n, -1)
        u = torch.rand(p.shape, generator=generator, device=p.device, dtype=p.dtype)
        return Fn.bernoulli_from_uniform(p, u)

    @torch.no_grad()
    def init_from_data(self, data: Tensor) -> None:
        """``a = logit(ȳ)`` with ``ȳ`` the mean of the outputs ``data (N, D)``, clipped to
        [1e-3, 1-1e-3] (Hinton 2010, §8)."""
        self.check_visible(data, "data")
        p = data.mean(0).clamp(1e-3, 1 - 1e-3).to(self.visible_bias)
        self.visible_bias.copy_(torch.log(p) - torch.log1p(-p))

    def annealing_path(self, base_data: Tensor | None = None) -> AnnealingPath:
        raise NotImplementedError(
            f"{type(self).__name__}: log Z depends on the input x; evaluate structured-output "
            "models by prediction error (predict) instead"
        )

    def parameter_roles(self) -> dict[str, list[nn.Parameter]]:
        return {
            "weights": [self.weight, self.cond_to_visible, self.cond_to_hidden],
            "biases": [self.visible_bias, self.hidden_bias],
        }

    # -- prediction -------------------------------------------------------------------------
    def _check_inference(
        self, method: str, start: str, n_steps: int, damping: float
    ) -> InferenceMethod:
        if method not in _METHODS:
            raise ValueError(f"inference method must be one of {_METHODS}, got {method!r}")
        if method in ("exact", "exact_map") and self.n_visible > MAX_EXACT_OUTPUTS:
            raise ValueError(
                f"exact inference enumerates 2^{self.n_visible} outputs; it is for "
                f"n_visible <= {MAX_EXACT_OUTPUTS}"
            )
        if start not in ("zeros", "input"):
            raise ValueError(f"y_init must be a tensor, 'zeros' or 'input'; got {start!r}")
        if n_steps < 1:
            raise ValueError(f"n_steps must be >= 1, got {n_steps}")
        if not 0.0 <= damping < 1.0:
            raise ValueError(f"damping must be in [0, 1), got {damping}")
        return method  # type: ignore[return-value]

    def infer(
        self,
        x: Tensor,
        method: InferenceMethod | None = None,
        n_steps: int | None = None,
        y_init: Tensor | InferenceStart | None = None,
        damping: float | None = None,
    ) -> StructuredInference:
        """Approximate (or, for small ``D``, exact) inference of ``y`` (and ``h``) given ``x``.

        ``"mean_field"``: block mean field on ``q(y) q(h)`` (see
        :func:`~seqboltz.functional.bernoulli_mean_field`, damped by ``damping``), stopping
        early once ``q(y)`` moves by less than 1e-6. ``"map"``: deterministic block updates to
        the most probable ``h`` given ``y`` and ``y`` given ``h`` (threshold ½; the joint energy
        never increases; :func:`~seqboltz.functional.bernoulli_map_inference`), stopping at a
        fixed point. ``"exact"``: the marginals ``p(yᵢ = 1 | x)`` by enumerating all ``2^D``
        outputs (:func:`~seqboltz.functional.exact_output_log_probs`); ``"exact_map"``: the
        most probable output ``argmax_y p(y | x)`` (``n_steps``, ``y_init`` and ``damping`` do
        not apply to these two). Every argument left ``None`` takes the model's default
        (``inference``, ``inference_steps``, ``inference_start``, ``damping``).

        Args:
            x: inputs ``(B, n_cond)``.
            method: ``"mean_field"``, ``"map"``, ``"exact"`` or ``"exact_map"``.
            n_steps: maximum number of ``h``-then-``y`` updates.
            y_init: starting ``y`` ``(B, D)``, or ``"zeros"`` (the first hiddens come from the
                input alone, ``b̂ = b + xB``, the start CD-PercLoss trains from,
                :class:`~seqboltz.training.RBMSystem` with ``negative="perceptron"``) or
                ``"input"``: ``y`` from its input-only bias ``â = a + xA`` (``sigm(â)`` for mean
                field, ``â > 0`` for MAP); CD-trained models predict better from there.
            damping: mean-field damping ``λ`` in ``[0, 1)``.

        Returns:
            :class:`StructuredInference` ``(y (B, D), h (B, H))``.
        """
        method = self.inference if method is None else method
        n_steps = self.inference_steps if n_steps is None else n_steps
        y_init = self.inference_start if y_init is None else y_init
        damping = self.damping if damping is None else damping
        self._check_inference(
            method, y_init if isinstance(y_init, str) else "zeros", n_steps, damping
        )
        a_hat, b_hat = self.dynamic_biases(x)
        if method in ("exact", "exact_map"):
            return self._exact(a_hat, b_hat, method == "exact_map")
        if isinstance(y_init, str):
            if y_init == "zeros":
                y0 = torch.zeros_like(a_hat)
            elif method == "mean_field":
                y0 = torch.sigmoid(a_hat)
            else:
                y0 = (a_hat > 0).to(a_hat.dtype)
        else:
            self.check_visible(y_init, "y_init")
            if y_init.shape[0] != x.shape[0]:
                raise ValueError(f"y_init has {y_init.shape[0]} rows, x has {x.shape[0]}")
            y0 = y_init.to(a_hat)
        if method == "mean_field":
            y, h = Fn.bernoulli_mean_field(
                y0, self.weight, a_hat, b_hat, n_steps, tol=1e-6, damping=damping
            )
        else:
            y, h, _ = Fn.bernoulli_map_inference(y0, self.weight, a_hat, b_hat, n_steps)
        return StructuredInference(y, h)

    def _exact(self, a_hat: Tensor, b_hat: Tensor, mode: bool) -> StructuredInference:
        """Exact marginals (``mode=False``) or the exact most probable output of ``p(y | x)``."""
        ys = Fn.all_binary_states(self.n_visible, a_hat.dtype, a_hat.device)  # (S, D)
        log_p = Fn.exact_output_log_probs(self.weight, a_hat, b_hat)  # (B, S)
        if mode:
            y = ys[log_p.argmax(dim=1)]
            return StructuredInference(y, Fn.hidden_probs(y, self.weight, b_hat))
        p = log_p.exp()
        h = (
            torch.stack(  # E[p(h | y, x)] under p(y | x), one example at a time
                [p[i] @ torch.sigmoid(b_hat[i] + ys @ self.weight) for i in range(p.shape[0])]
            )
            if p.shape[0]
            else b_hat.new_zeros(0, self.n_hidden)
        )
        return StructuredInference(p @ ys, h)

    @torch.no_grad()
    def predict(
        self,
        x: Tensor,
        method: InferenceMethod | None = None,
        n_steps: int | None = None,
        start: InferenceStart | None = None,
        damping: float | None = None,
    ) -> Tensor:
        """Predicted outputs ``(B, D)`` for inputs ``x (B, n_cond)``: ``q(y = 1 | x)`` for
        ``"mean_field"`` and ``"exact"`` (threshold at ½ for a binary answer), binary states
        for ``"map"`` and ``"exact_map"``. ``start`` is :meth:`infer`'s ``y_init``; ``None``
        arguments take the model's defaults."""
        return self.infer(x, method, n_steps, start, damping).y

    def conditional_log_prob(self, y: Tensor, cond: Conditioning) -> Tensor:
        """Exact ``log p(y | x) = -F(y | x) - log Σ_y' exp(-F(y' | x))``, ``(B,)``, by
        enumerating the ``2^D`` outputs (``D ≤ 20``); differentiable: ``RBMSystem`` with
        ``negative="exact"`` maximises it (exact conditional maximum likelihood)."""
        if self.n_visible > MAX_EXACT_OUTPUTS:
            raise ValueError(
                f"exact log p(y | x) enumerates 2^{self.n_visible} outputs; it is for "
                f"n_visible <= {MAX_EXACT_OUTPUTS}"
            )
        self.check_shape(y, "y")
        a_hat, b_hat = self.dynamic_biases(cond, y.shape[0])
        free = Fn.bernoulli_rbm_free_energy(y, self.weight, a_hat, b_hat)
        return -free - Fn.exact_output_log_partition(self.weight, a_hat, b_hat)

    @torch.no_grad()
    def prediction_errors(self, y: Tensor, x: Tensor) -> dict[str, Tensor]:
        """Errors of the default prediction (:meth:`predict`, thresholded at ½) against the
        binary targets ``y`` ``(B, D)``: ``output_error``, the fraction of wrong output units
        (pixel error, Hamming loss), and ``subset_error``, the fraction of examples with any
        wrong unit (1 − subset accuracy). Scalars."""
        self.check_shape(y, "y")
        wrong = (self.predict(x) > 0.5) != (y > 0.5)
        return {
            "output_error": wrong.to(y.dtype).mean(),
            "subset_error": wrong.any(dim=1).to(y.dtype).mean(),
        }

    # -- pictures ---------------------------------------------------------------------------
    def pictures(self, generator: torch.Generator | None = None) -> dict[str, np.ndarray]:
        """``filters``: the first 100 columns of ``W`` as images (when ``D`` is a square);
        ``input_filters``: the first 100 columns of ``B`` (when ``C`` is a square);
        ``dynamic_bias``: for the 10 outputs with the largest ``‖A[:, i]‖``, the map
        ``A[:, i]`` over the input (when ``C`` is a square), i.e. which input pixels push
        output ``i`` on (bright) or off (dark)."""
        from seqboltz.viz import filter_grid, normalized_grid

        out: dict[str, np.ndarray] = {}
        side_y, side_x = _square_side(self.n_visible), _square_side(self.n_cond)
        if side_y is not None:
            w = self.weight.detach().double().cpu().numpy()
            out["filters"] = filter_grid(w, (side_y, side_y), n=100)
        if side_x is not None:
            b = self.cond_to_hidden.detach().double().cpu().numpy()
            out["input_filters"] = filter_grid(b, (side_x, side_x), n=100)
            a = self.cond_to_visible.detach().double().cpu().numpy()  # (C, D)
            top = np.argsort(-np.linalg.norm(a, axis=0), kind="stable")[:10]
            out["dynamic_bias"] = normalized_grid(
                a[:, top].T.reshape(-1, side_x, side_x), ncols=10, scale=3
            )
        return out

    def extra_repr(self) -> str:
        return f"n_visible={self.n_visible}, n_hidden={self.n_hidden}, n_cond={self.n_cond}"


def _square_side(n: int) -> int | None:
    side = math.isqrt(n)
    return side if side * side == n and side > 1 else None
