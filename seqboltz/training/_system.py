"""The one training system: contrastive divergence (CD-k) and persistent CD for every model.

The gradient is the gradient of ``mean F(v_data) - mean F(v_negative)`` with the negative
particles detached (Hinton 2002; Tieleman 2008): by autograd through the model's free energy,
or, when the model offers it (``cd_gradients``: the RBM family), in closed form with fewer
GEMMs, written straight into ``.grad`` (the fast path; both are tested to agree). CD-k
starts the negative chain at the data; PCD keeps persistent chains across updates. The
negative particle is the chain's last sample (``negative="sample"``), its mean
(``"mean_field"``), or, for CD-PercLoss (Mnih, Larochelle & Hinton 2011), the end of a chain
whose every step sets each unit to its most probable state (``"perceptron"``). Everything
else (optimizer, momentum, weight decay, sparsity, σ learning-rate scale, divergence
detection, metrics) lives here, never in a model.
"""

from __future__ import annotations

import hashlib
import inspect
import math
import warnings
import weakref
from collections.abc import Collection, Mapping
from typing import Any, Literal, Protocol, cast, runtime_checkable

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, GradientAccumulationScheduler, ModelCheckpoint
from lightning.pytorch.plugins.precision import Precision
from lightning.pytorch.strategies import SingleDeviceStrategy, Strategy
from lightning.pytorch.utilities.model_helpers import is_overridden
from torch import Tensor

from seqboltz.eval import ais_log_partition, exact_log_partition, log_likelihood
from seqboltz.functional import ContrastiveStep
from seqboltz.models import Conditioning, EnergyModel, GibbsStep, NoiseSpec, model_spec
from seqboltz.training._recentre import extra_clips

__all__ = ["ClosedFormCD", "RBMSystem", "chain_noise", "mode_noise"]

Batch = Tensor | tuple[Tensor, Conditioning] | list[Any] | dict[str, Any]


def mode_noise(model: EnergyModel, batch_size: int, like: Tensor) -> dict[str, Tensor]:
    """Noise that makes :meth:`EnergyModel.gibbs_step` pick the most probable states.

    Uniform inputs are ½ (a Bernoulli unit is on iff ``½ < p``, i.e. ``p > ½``) and normal
    inputs 0 (a Gaussian unit takes its mean, the mode). Shapes and dtype as
    :meth:`EnergyModel.sample_noise`, on ``like``'s device and dtype.
    """
    return {
        name: torch.full(
            (batch_size, *spec.shape),
            0.5 if spec.kind == "uniform" else 0.0,
            dtype=like.dtype,
            device=like.device,
        )
        for name, spec in model.noise_spec().items()
    }


def chain_noise(
    specs: Mapping[str, NoiseSpec],
    k: int,
    n: int,
    generator: torch.Generator | None,
    like: Tensor,
    skip_last: Collection[str] = (),
) -> dict[str, Tensor]:
    """The noise of ``k`` Gibbs steps of ``n`` chains, each kind drawn in one call.

    All uniforms come from one ``torch.rand`` and all normals from one ``torch.randn`` (a
    call per step and per input costs more than the numbers on a CPU), laid out input by
    input in ``specs`` order and step by step within an input, each a contiguous view.

    Args:
        specs: the model's :meth:`~seqboltz.models.EnergyModel.noise_spec`.
        k: Gibbs steps; n: chains.
        generator: the random stream (``None``: torch's global one).
        like: a tensor with the device and dtype to draw in.
        skip_last: inputs whose last step is not needed (the visible sample of a chain
            whose negative particle is the last mean): ``k - 1`` steps are drawn for them.

    Returns:
        ``{name: (steps, n, *spec.shape)}``.
    """
    steps = {name: k - 1 if name in skip_last else k for name in specs}
    out: dict[str, Tensor] = {}
    for kind, draw in (("uniform", torch.rand), ("normal", torch.randn)):
        names = [name for name, spec in specs.items() if spec.kind == kind]
        sizes = [steps[name] * n * math.prod(specs[name].shape) for name in names]
        if not names:
            continue
        flat = draw(sum(sizes), generator=generator, device=like.device, dtype=like.dtype)
        drawn = [size for size in sizes if size]  # (a skipped last step can leave none)
        chunks = iter(flat.split(drawn) if len(drawn) > 1 else (flat,))
        for name, size in zip(names, sizes, strict=True):
            chunk = next(chunks) if size else flat[:0]
            out[name] = chunk.view(steps[name], n, *specs[name].shape)
    return out


def _mode_chain_noise(
    specs: Mapping[str, NoiseSpec], k: int, n: int, like: Tensor
) -> dict[str, Tensor]:
    """:func:`mode_noise` for ``k`` steps as stacked ``(k, n, *shape)`` views of one scalar."""
    return {
        name: torch.full(
            (), 0.5 if spec.kind == "uniform" else 0.0, dtype=like.dtype, device=like.device
        ).expand(k, n, *spec.shape)
        for name, spec in specs.items()
    }


@runtime_checkable
class ClosedFormCD(Protocol):
    """A model that computes its CD/PCD gradient in closed form (the RBM family).

    ``cd_gradients`` runs the ``k``-step chain on the given stacked noise
    (:func:`chain_noise`), writes ``∂/∂θ [mean F(v_data | cond) - mean F(v⁻ | cond)]``
    (plus the sparsity penalty) into every parameter's ``.grad``, replacing it, and returns
    the :class:`~seqboltz.functional.ContrastiveStep`. A subclass that changes the energy
    must override it. A ``cd_gradients`` that also takes ``data_free_energy`` (the RBMs) is
    asked for ``F(v_data)`` only on the steps that report it, and otherwise returns the
    step's ``data_free_energy_upper`` bounds, which the system checks instead.
    """

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
    ) -> ContrastiveStep: ...


class _FusedMomentumSGD(torch.optim.SGD):
    """``torch.optim.SGD(fused=True)`` with its per-step bookkeeping cut to the case RBMSystem
    makes: every parameter of a group has a dense gradient on one device and dtype, momentum
    > 0, no dampening, Nesterov or maximisation, no gradient scaler.

    ``SGD.step`` regroups the tensors by device and dtype and checks each gradient every
    step, about 90 µs of Python on this workload beside the 70 µs update itself; this calls
    the same fused kernel (``torch._fused_sgd_``) on each group's lists, with the same
    momentum buffers in ``state`` (so the same numbers and the same checkpoints), and falls
    back to ``SGD.step`` whenever the case does not hold.
    """

    def step(self, closure: Any = None) -> Any:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        kernel = getattr(torch, "_fused_sgd_", None)
        if (
            kernel is None
            or getattr(self, "grad_scale", None) is not None
            or getattr(self, "found_inf", None) is not None
        ):
            return self._fallback(loss)
        state = self.state
        jobs = []
        for group in self.param_groups:
            params: list[Tensor] = group["params"]
            if not params:
                continue
            grads = [p.grad for p in params if p.grad is not None and not p.grad.is_sparse]
            buffers = [state[p].get("momentum_buffer") if p in state else None for p in params]
            first = buffers[0] is None
            if (
                group["momentum"] == 0
                or group["dampening"] != 0
                or group["nesterov"]
                or group["maximize"]
                or group.get("differentiable", False)
                or len(grads) != len(params)  # a missing or sparse gradient
                or any((b is None) != first for b in buffers)
                or len({(p.device, p.dtype) for p in params}) != 1
            ):
                return self._fallback(loss)
            jobs.append((group, params, grads, buffers, first))
        with torch.no_grad():
            for group, params, grads, buffers, first in jobs:
                if first:  # as SGD: the kernel sets the first step's buffer to the gradient
                    buffers = [torch.empty_like(g) for g in grads]
                kernel(
                    params,
                    grads,
                    buffers,
                    weight_decay=group["weight_decay"],
                    momentum=group["momentum"],
                    lr=group["lr"],
                    dampening=0.0,
                    nesterov=False,
                    maximize=False,
                    is_first_step=first,
                    grad_scale=None,
                    found_inf=None,
                )
                if first:
                    for p, b in zip(params, buffers, strict=True):
                        state[p]["momentum_buffer"] = b
        return loss

    def _fallback(self, loss: Any) -> Any:
        """``SGD.step`` (after the closure, if any, has run: its loss is returned), without
        running the optimizer's step hooks a second time: torch wraps ``SGD.step`` in them
        once an SGD exists, and this class's own ``step`` already ran them."""
        sgd_step = torch.optim.SGD.step
        if getattr(sgd_step, "hooked", False):
            sgd_step = sgd_step.__wrapped__  # type: ignore[attr-defined]
        sgd_step(self, None)
        return loss


#: attributes set on every step that are never parameters, buffers or modules
_PLAIN_ATTRIBUTES = frozenset({"_current_fx_name", "_grads_written"})

#: hooks that Lightning's automatic optimisation calls on every step and manual optimisation
#: does not: a callback that overrides one keeps the system on automatic optimisation
_AUTOMATIC_HOOKS = ("on_before_backward", "on_after_backward", "on_before_zero_grad")

#: the system's methods that shape automatic optimisation's step: a subclass or an instance
#: that replaces one (LightningCLI's ``--optimizer``/``--lr_scheduler`` replace
#: ``configure_optimizers``) keeps the system on automatic optimisation
_STEP_METHODS = (
    "training_step",
    "configure_optimizers",
    "optimizer_step",
    "optimizer_zero_grad",
    "backward",
    "configure_gradient_clipping",
    "lr_scheduler_step",
    *_AUTOMATIC_HOOKS,
)

#: where a checkpoint's fit loop counts the optimizer steps of each optimisation mode
_AUTOMATIC_STEPS = "epoch_loop.automatic_optimization.optim_progress"
_MANUAL_STEPS = "epoch_loop.manual_optimization.optim_step_progress"


def _takes_keyword(fn: Any, name: str) -> bool:
    """Whether ``fn`` has a parameter called ``name`` (``**kwargs`` does not count)."""
    try:
        return name in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


def _continue_step_count(checkpoint: dict[str, Any]) -> None:
    """Make both optimisation modes' step counters in a checkpoint's fit loop the larger of
    the two, in place.

    Lightning counts ``global_step`` separately under automatic and manual optimisation, so
    a run saved under one and resumed under the other (a checkpoint from before
    :attr:`RBMSystem.automatic_optimization` chose manual optimisation, or a resume that adds
    gradient clipping) would restart its ``global_step`` at 0; this continues it.
    """
    loop = checkpoint.get("loops", {}).get("fit_loop")
    if not isinstance(loop, dict):
        return
    automatic = loop.get(_AUTOMATIC_STEPS, {}).get("optimizer", {}).get("step", {}).get("total")
    manual = loop.get(_MANUAL_STEPS, {}).get("total")
    if not isinstance(automatic, dict) or not isinstance(manual, dict):
        return
    for key in ("ready", "completed"):
        steps = max(int(automatic.get(key, 0)), int(manual.get(key, 0)))
        automatic[key] = manual[key] = steps


def _unpack(batch: Batch) -> tuple[Tensor, Conditioning | None]:
    """Split a batch into visibles ``(B, D)`` and optional conditioning."""
    if isinstance(batch, Tensor):
        return batch, None
    if isinstance(batch, dict):
        return batch["v"], batch.get("cond")
    if isinstance(batch, tuple | list) and len(batch) == 2:
        return batch[0], batch[1]
    raise TypeError(
        "a batch must be a tensor v, a pair (v, cond) or a dict with 'v' (and 'cond'); "
        f"got {type(batch).__name__}"
    )


class RBMSystem(L.LightningModule):
    """Trains any :class:`~seqboltz.models.EnergyModel` with CD-k or PCD-k.

    Args:
        energy_model: the model to train.
        k: Gibbs steps per negative sample (CD-k / PCD-k).
        persistent: use persistent chains (PCD, Tieleman 2008) instead of restarting at the data.
        n_chains: number of persistent chains (default: the first batch's size).
        lr: learning rate of weights and biases.
        momentum: final momentum of SGD.
        initial_momentum: momentum for the first ``momentum_warmup_epochs`` epochs
            (Hinton 2010, §9: 0.5 then 0.9).
        momentum_warmup_epochs: epochs at ``initial_momentum``.
        weight_decay: L2 penalty on the weights only (not biases or scales).
        optimizer: ``"sgd"`` (classical momentum) or ``"adam"``.
        sigma_lr_scale: learning-rate multiplier of scale parameters (``log σ``); small values
            keep Gaussian-Bernoulli RBMs stable.
        sparsity_target: target mean activation of hidden units (Lee et al. 2008), or ``None``.
        sparsity_cost: weight of the squared-error sparsity penalty.
        negative: what the negative particle is, after ``k`` steps from the data (CD) or
            from the persistent chains (PCD):

            * ``"sample"``: the last Gibbs sample (CD-k / PCD-k);
            * ``"mean_field"``: its mean ``E[v | h]`` (the low-variance variant of Hinton's
              code);
            * ``"perceptron"``: CD-PercLoss (Mnih, Larochelle & Hinton 2011, §4): every step
              sets each unit to its most probable state instead of sampling it, i.e. a Gibbs
              step whose uniform noise is ½ (``u < p`` ⇔ ``p > ½``) and whose normal noise is
              0 (a Gaussian's mode is its mean); ``k`` such steps are a deterministic descent
              on ``E(v, h | cond)`` to an approximate most probable output ``v*``, and the loss
              ``F(v_data | cond) - F(v* | cond)`` is the perceptron loss of that prediction:
              zero once the model's own deterministic inference returns the training output.
              The chain starts at ``perceptron_start``; never persistent.
            * ``"exact"``: no chain: the loss is the exact ``-log p(v | cond)`` of a model
              with ``conditional_log_prob`` (:class:`~seqboltz.models.StructuredOutputCRBM`
              with at most 20 outputs, whose normaliser is a sum over every output), i.e.
              the CD gradient with the negative phase replaced by its exact expectation.

            ``None`` (default): ``"mean_field"`` if ``mean_field_negative`` else ``"sample"``.
        perceptron_start: where the ``"perceptron"`` chain starts: ``"zeros"`` (default: the
            first hiddens then depend on ``cond`` alone, as in prediction, e.g.
            :meth:`~seqboltz.models.StructuredOutputCRBM.predict`) or ``"data"`` (as CD does).
        perceptron_margin: CD-PercLoss with a cost-augmented negative: the chain runs under
            the model's ``cost_augmented_cond(cond, v, margin)`` (for
            :class:`~seqboltz.models.StructuredOutputCRBM`: output biases ``+ m (1 - 2 y_data)``,
            Hamming-loss margin rescaling), so the loss is zero only once the training output
            wins by a margin; 0 (default): the plain perceptron loss.
        mean_field_negative: the older spelling of ``negative="mean_field"`` (kept for
            existing recipes and checkpoints).
        init_from_data: set biases (and σ) from training-data statistics before training.
        divergence_threshold: stop when ``|mean F(v_data)|`` exceeds this (or is non-finite).
        eval_log_z: how ``test`` computes ``log Z`` for ``test/log_likelihood``: ``"auto"``
            (exact for ≤ 20 units on the smaller binary side, else AIS), ``"exact"``,
            ``"ais"`` or ``"none"``.
        ais_chains: AIS chains used by ``test``.
        ais_betas: AIS inverse temperatures used by ``test``.
        pseudo_likelihood_seed: seed of the bit flips of the stochastic pseudo-likelihood.
        closed_form: use the model's closed-form gradient (:class:`ClosedFormCD`) when it
            has one, ``accumulate_grad_batches`` is 1 and one process trains (under DDP the
            gradients must flow through autograd to be all-reduced). ``False``: always
            autograd through the free energy. Both give the same gradients (tested to
            1e-10 in float64) from the same noise. Under a Trainer the closed-form path
            takes Lightning's manual optimisation where that trains the same way (see
            :attr:`automatic_optimization`).

    The chain's noise is drawn in bulk (:func:`chain_noise`), the same way on both paths, so
    the two paths train to the same parameters from the same seed.

    Persistent chains are a plain attribute, saved in checkpoints, not a registered buffer:
    under DDP each process keeps its own chains (DDP would otherwise broadcast rank 0's
    buffers over them at every step).
    """

    def __init__(
        self,
        energy_model: EnergyModel,
        k: int = 1,
        persistent: bool = False,
        n_chains: int | None = None,
        lr: float = 0.01,
        momentum: float = 0.9,
        initial_momentum: float = 0.5,
        momentum_warmup_epochs: int = 5,
        weight_decay: float = 2e-4,
        optimizer: Literal["sgd", "adam"] = "sgd",
        sigma_lr_scale: float = 0.1,
        sparsity_target: float | None = None,
        sparsity_cost: float = 0.0,
        negative: Literal["sample", "mean_field", "perceptron", "exact"] | None = None,
        perceptron_start: Literal["zeros", "data"] = "zeros",
        perceptron_margin: float = 0.0,
        mean_field_negative: bool = False,
        init_from_data: bool = True,
        divergence_threshold: float = 1e7,
        eval_log_z: Literal["auto", "exact", "ais", "none"] = "auto",
        ais_chains: int = 100,
        ais_betas: int = 14500,
        pseudo_likelihood_seed: int = 0,
        closed_form: bool = True,
    ) -> None:
        super().__init__()
        if not isinstance(energy_model, EnergyModel):
            raise TypeError(
                f"energy_model must be a seqboltz EnergyModel, got {type(energy_model).__name__}"
            )
        if k < 1:
            raise ValueError(f"k (Gibbs steps) must be >= 1, got {k}")
        if lr <= 0:
            raise ValueError(f"lr must be > 0, got {lr}")
        if sparsity_target is not None and not 0 < sparsity_target < 1:
            raise ValueError(f"sparsity_target must be in (0, 1), got {sparsity_target}")
        if n_chains is not None and n_chains < 1:
            raise ValueError(f"n_chains must be >= 1, got {n_chains}")
        if negative is None:
            negative = "mean_field" if mean_field_negative else "sample"
        elif negative not in ("sample", "mean_field", "perceptron", "exact"):
            raise ValueError(
                "negative must be 'sample', 'mean_field', 'perceptron' or 'exact', "
                f"got {negative!r}"
            )
        elif mean_field_negative and negative != "mean_field":
            raise ValueError(
                f"mean_field_negative=True contradicts negative={negative!r}; set only negative"
            )
        if perceptron_start not in ("zeros", "data"):
            raise ValueError(
                f"perceptron_start must be 'zeros' or 'data', got {perceptron_start!r}"
            )
        if perceptron_margin < 0 or (
            perceptron_margin > 0
            and (negative != "perceptron" or not hasattr(energy_model, "cost_augmented_cond"))
        ):
            raise ValueError(
                f"perceptron_margin={perceptron_margin} needs negative='perceptron' and a model "
                "with cost_augmented_cond (StructuredOutputCRBM), and must be >= 0"
            )
        if negative == "exact" and (
            persistent or not hasattr(energy_model, "conditional_log_prob")
        ):
            raise ValueError(
                "negative='exact' needs a model with an exact conditional_log_prob "
                "(StructuredOutputCRBM) and persistent=False"
            )
        if negative == "perceptron" and persistent:
            raise ValueError(
                "negative='perceptron' (CD-PercLoss) runs a deterministic chain from "
                "perceptron_start at every update; it cannot be persistent"
            )
        if negative == "mean_field" and energy_model.parameter_roles().get("scales"):
            warnings.warn(
                f"mean-field negatives with a learned scale ({type(energy_model).__name__}): "
                "E[v | h] has no visible noise, so the negative phase understates the model's "
                "variance and σ tends to grow without bound; use negative='sample' or a fixed σ",
                UserWarning,
                stacklevel=2,
            )
        self.save_hyperparameters(ignore=["energy_model"])
        self.energy_model = energy_model
        self.k = k
        self.persistent = persistent
        self.n_chains = n_chains
        self.lr = lr
        self.momentum = momentum
        self.initial_momentum = initial_momentum
        self.momentum_warmup_epochs = momentum_warmup_epochs
        self.weight_decay = weight_decay
        self.optimizer_name = optimizer
        self.sigma_lr_scale = sigma_lr_scale
        self.sparsity_target = sparsity_target
        self.sparsity_cost = sparsity_cost
        self.negative = negative
        self.perceptron_start = perceptron_start
        self.perceptron_margin = perceptron_margin
        self.init_from_data = init_from_data
        self.divergence_threshold = divergence_threshold
        self.eval_log_z = eval_log_z
        self.ais_chains = ais_chains
        self.ais_betas = ais_betas
        self.pseudo_likelihood_seed = pseudo_likelihood_seed
        self.closed_form = closed_form
        self._grads_written = False  # the fast path filled .grad in this step's training_step
        self._closed_form_info: tuple[Any, bool, bool] | None = None  # see _closed_form_model
        # (trainer, automatic optimisation, the optimizer's step without its hook chain)
        self._optimisation_mode: tuple[weakref.ref[Any], bool, bool] | None = None
        self.chains: Tensor | None = None  # persistent chains (see class docstring)
        self.generator: torch.Generator | None = None  # Gibbs noise, one stream per process
        self.data_sha256: str | None = None  # sha256 of the training tensor, set in setup
        self._train_reference: list[Tensor] = []
        self._eval_free_energy: list[Tensor] = []

    def __setattr__(self, name: str, value: Any) -> None:
        # Lightning sets _current_fx_name before and after each of the ~20 hooks it calls a
        # step, and the step sets _grads_written: plain attributes (never a parameter, buffer
        # or module), so they skip nn.Module's registration checks (~1.5 µs each).
        if name in _PLAIN_ATTRIBUTES and (value is None or type(value) in (str, bool)):
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state["_optimisation_mode"] = None  # a weak reference to the trainer
        return state

    # -- optimisation mode ------------------------------------------------------------------
    @property
    def automatic_optimization(self) -> bool:
        """``False`` (Lightning's manual optimisation: :meth:`training_step` steps the
        optimizer itself) while a Trainer fits with the closed-form gradient and uses nothing
        that needs Lightning's automatic loop (see :meth:`_needs_automatic_optimization`);
        ``True`` otherwise, and always without a Trainer.

        On the closed-form path the automatic loop's closure, ``zero_grad`` and ``backward``
        do nothing but call hooks (Python, on every step). Under manual optimisation
        the step calls the same optimizer at the same point (after the gradient and the
        checks, before ``on_train_batch_end``), through its ``LightningOptimizer`` or, where
        that would only count the step, directly (see :meth:`_manual_optimizer_step`), so
        ``on_before_optimizer_step`` hooks still run, ``global_step`` counts the same, and
        training reaches the same parameters and checkpoints (tested). Decided once per
        Trainer, when Lightning first asks.
        """
        if not self._automatic_optimization:  # set to False by hand
            return False
        trainer = self._trainer
        if trainer is None:
            return True
        return self._mode(trainer)[1]

    @automatic_optimization.setter
    def automatic_optimization(self, automatic_optimization: bool) -> None:
        self._automatic_optimization = automatic_optimization

    def _mode(self, trainer: L.Trainer) -> tuple[weakref.ref[Any], bool, bool]:
        """``(trainer, automatic optimisation, direct optimizer step)``, worked out once per
        Trainer (see :attr:`automatic_optimization` and :meth:`_manual_optimizer_step`)."""
        cached = self._optimisation_mode
        if cached is None or cached[0]() is not trainer:
            automatic = self._needs_automatic_optimization(trainer) is not None
            cached = (weakref.ref(trainer), automatic, not automatic and self._direct_step(trainer))
            object.__setattr__(self, "_optimisation_mode", cached)
        return cached

    def _direct_step(self, trainer: L.Trainer) -> bool:
        """Whether ``LightningOptimizer.step`` would only count the step and call the
        optimizer: the strategy's and the precision plugin's ``optimizer_step`` are
        Lightning's own, nothing overrides ``on_before_optimizer_step`` (the only hook on
        that path under manual optimisation), and the optimizer has Lightning's step
        counters (``_on_before_step``, ``_on_after_step``)."""
        if (
            type(trainer.strategy).optimizer_step is not Strategy.optimizer_step
            or type(trainer.precision_plugin).optimizer_step is not Precision.optimizer_step
            or type(self).on_before_optimizer_step is not L.LightningModule.on_before_optimizer_step
            or "on_before_optimizer_step" in self.__dict__
        ):
            return False
        return not any(
            is_overridden("on_before_optimizer_step", callback, parent=Callback)
            for callback in getattr(trainer, "callbacks", ())
        )

    def _needs_automatic_optimization(self, trainer: L.Trainer) -> str | None:
        """Why this Trainer's fit must take Lightning's automatic optimisation, or ``None``
        when manual optimisation gives the same training (see :attr:`automatic_optimization`).

        Automatic optimisation is kept for the autograd path, gradient accumulation, more
        than one process or a multi-device strategy, gradient clipping, a precision plugin
        that scales the loss or wraps the step (AMP, DeepSpeed, FSDP), a subclass or an
        instance that replaces one of the step's methods (``configure_optimizers``: an LR
        scheduler), a callback with a backward or ``zero_grad`` hook, a
        ``GradientAccumulationScheduler``, and a ``ModelCheckpoint`` that saves every N
        training steps or on a timer (Lightning's manual loop skips the timer).
        """
        if not self._uses_closed_form():
            return "the autograd path (closed_form=False, no cd_gradients, accumulation, DDP)"
        if not isinstance(trainer.strategy, SingleDeviceStrategy):
            return f"the {type(trainer.strategy).__name__} strategy"
        if trainer.gradient_clip_val:
            return "gradient clipping"
        precision = type(trainer.precision_plugin)
        for name in ("optimizer_step", "pre_backward", "backward", "post_backward"):
            if getattr(precision, name) is not getattr(Precision, name):
                return f"the {precision.__name__} precision plugin"
        for name in _STEP_METHODS:
            if name in self.__dict__ or getattr(type(self), name) is not getattr(RBMSystem, name):
                return f"a replaced {name}"
        for callback in getattr(trainer, "callbacks", ()):  # (set by Lightning at init)
            if isinstance(callback, GradientAccumulationScheduler):
                return "GradientAccumulationScheduler"
            if isinstance(callback, ModelCheckpoint) and (
                callback._every_n_train_steps >= 1 or callback._train_time_interval is not None
            ):
                return "a ModelCheckpoint that saves every N training steps or on a timer"
            for hook in _AUTOMATIC_HOOKS:
                if is_overridden(hook, callback, parent=Callback):
                    return f"{type(callback).__name__}.{hook}"
        return None

    # -- forward ----------------------------------------------------------------------------
    def forward(self, v: Tensor, cond: Conditioning | None = None) -> Tensor:
        """Free energy ``F(v | cond)``, ``(B, D)`` → ``(B,)``."""
        return self.energy_model.free_energy(v, cond)

    # -- steps ------------------------------------------------------------------------------
    def training_step(self, batch: Batch, batch_idx: int) -> Tensor:
        """One CD/PCD update's loss ``mean F(v) - mean F(v⁻)`` (+ the sparsity penalty).

        On the closed-form path the gradient is already in ``.grad`` when this returns, and
        nothing reads the loss but the log; so under a Trainer the free energies (the loss,
        ``train/free_energy``, the reconstruction error) are computed only on the steps the
        Trainer logs (every ``log_every_n_steps``), and the other steps return a NaN loss.
        Every step still checks the batch and divergence: from the bounds
        ``U - H log 2 ≤ mean F(v) ≤ U`` of the data free energy (no logarithm), and only when
        those cannot decide, from ``F`` itself (see :meth:`_check_closed_form_step`).
        Without a Trainer (a direct call) every step computes the loss. Under manual
        optimisation (see :attr:`automatic_optimization`) it then steps the optimizer.
        """
        v, cond = _unpack(batch)
        self._grads_written = False
        report = self._reports_step()
        if self._uses_closed_form():
            self._check_batch_shape(v)  # its values are checked from the step's products
            loss, f_pos_mean, recon = self._closed_form_step(v, cond, report)
        else:
            self._check_batch(v)
            loss, f_pos_mean, recon = self._autograd_step(v, cond)
        if report and self._logging_step():  # self.log costs more than a small CD step
            assert f_pos_mean is not None
            self.log("train/free_energy_diff", loss.detach(), prog_bar=True)
            self.log("train/free_energy", f_pos_mean.detach())
            if recon is not None:
                self.log("train/recon_error", ((v - recon) ** 2).sum(1).mean())
        if cond is None and len(self._train_reference) * v.shape[0] < 1000:
            self._train_reference.append(v.detach()[:1000])
        if self._trainer is not None and not self.automatic_optimization:
            self._manual_optimizer_step(loss)
        return loss

    def _manual_optimizer_step(self, loss: Tensor) -> None:
        """What automatic optimisation does after ``training_step``: ``zero_grad`` and
        ``backward`` unless the closed-form path has written ``.grad``, then the optimizer's
        step through its ``LightningOptimizer`` (``on_before_optimizer_step`` hooks, the
        precision plugin, ``global_step``).

        Where that chain would only count the step around ``optimizer.step()`` (see
        :meth:`_direct_step`), the step is counted with the same two calls and the optimizer
        stepped directly: the strategy, the precision plugin, the closure and two hook
        dispatches cost about 0.1 ms a step (1-2 % of MNIST's CD-1 step on one CPU core)."""
        optimizer = self.optimizers()
        assert isinstance(optimizer, L.pytorch.core.optimizer.LightningOptimizer)
        if self._grads_written:
            self._grads_written = False
        else:  # automatic_optimization was set to False by hand
            optimizer.zero_grad()
            self.manual_backward(loss)
        before = getattr(optimizer, "_on_before_step", None)
        after = getattr(optimizer, "_on_after_step", None)
        if self._mode(self.trainer)[2] and callable(before) and callable(after):
            before()
            optimizer.optimizer.step()
            after()
        else:
            optimizer.step()

    def backward(self, loss: Tensor, *args: Any, **kwargs: Any) -> None:
        """Backpropagate, unless the closed-form path already wrote this step's ``.grad``."""
        if self._grads_written:
            self._grads_written = False
            return
        super().backward(loss, *args, **kwargs)

    def optimizer_zero_grad(
        self, epoch: int, batch_idx: int, optimizer: torch.optim.Optimizer
    ) -> None:
        """Zero the gradients, unless the closed-form path has just replaced them."""
        if not self._grads_written:
            optimizer.zero_grad()

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        self._eval_step(batch, "val")

    def test_step(self, batch: Batch, batch_idx: int) -> None:
        self._eval_step(batch, "test")

    def configure_optimizers(self) -> torch.optim.Optimizer:
        groups: list[dict[str, Any]] = []
        for role, params in self.energy_model.parameter_roles().items():
            if not params:
                continue
            lr = self.lr * self.sigma_lr_scale if role == "scales" else self.lr
            decay = self.weight_decay if role == "weights" else 0.0
            same = [g for g in groups if g["lr"] == lr and g["weight_decay"] == decay]
            if same:  # one group per distinct setting: one optimizer kernel fewer per step
                same[0]["params"] = [*same[0]["params"], *params]
            else:
                groups.append({"params": list(params), "lr": lr, "weight_decay": decay})
        # One fused kernel per parameter (CPU and CUDA) instead of three passes over each.
        ref = self.energy_model.reference_parameter()
        fused = True if ref.device.type in ("cpu", "cuda") and ref.is_floating_point() else None
        if self.optimizer_name == "adam":
            return torch.optim.Adam(groups, lr=self.lr, fused=fused)
        if fused and self.initial_momentum > 0:  # the fused kernel without SGD's bookkeeping
            return _FusedMomentumSGD(groups, lr=self.lr, momentum=self.initial_momentum, fused=True)
        return torch.optim.SGD(groups, lr=self.lr, momentum=self.initial_momentum, fused=fused)

    # -- hooks ------------------------------------------------------------------------------
    def transfer_batch_to_device(
        self, batch: Any, device: torch.device, dataloader_idx: int
    ) -> Any:
        """A plain ``(B, D)`` tensor batch moves with one ``.to``; anything else as Lightning
        moves it (its generic walk over the batch's structure is per-step overhead)."""
        if isinstance(batch, Tensor):
            return batch.to(device, non_blocking=device.type == "cuda")
        return super().transfer_batch_to_device(batch, device, dataloader_idx)

    def setup(self, stage: str) -> None:
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer else None
        if datamodule is None:
            return
        n_features = getattr(datamodule, "n_features", None)
        if n_features is not None and n_features != self.energy_model.n_visible:
            raise ValueError(
                f"the model has {self.energy_model.n_visible} visible units but the data "
                f"({type(datamodule).__name__}) has {n_features} features per example"
            )
        kind = getattr(datamodule, "visible_kind", None)
        if kind is not None and kind != self.energy_model.visible_kind:
            raise ValueError(
                f"{type(self.energy_model).__name__} has {self.energy_model.visible_kind} "
                f"visibles but {type(datamodule).__name__} provides {kind} data"
            )
        for data_attr, model_attr in (
            ("order", "order"),
            ("style_dim", "n_style"),
            ("n_cond", "n_cond"),
        ):
            data_value = getattr(datamodule, data_attr, None)
            model_value = getattr(self.energy_model, model_attr, 0)
            if data_value is not None and data_value != model_value:
                raise ValueError(
                    f"the model's {model_attr} is {model_value} but the data's {data_attr} is "
                    f"{data_value}: make them agree in the recipe"
                )
        train = getattr(datamodule, "train_tensor", None)
        if isinstance(train, Tensor):  # a fingerprint of the training data, for model cards
            raw = train.detach().cpu().contiguous().numpy().tobytes()
            self.data_sha256 = hashlib.sha256(raw).hexdigest()
        # Before DDP wraps the model, so every process starts from the same parameters.
        if stage == "fit" and self.init_from_data and isinstance(train, Tensor):
            self.energy_model.init_from_data(train.to(self.energy_model.reference_parameter()))
        # Models whose start needs whole sequences (ResidualCRBM's least-squares AR) get the
        # training clips, so no window straddles two clips.
        init_sequences = getattr(self.energy_model, "init_from_sequences", None)
        if stage == "fit" and self.init_from_data and callable(init_sequences):
            clips = getattr(datamodule, "clips", None)
            if not callable(clips):
                raise ValueError(
                    f"{type(self.energy_model).__name__} starts from whole training sequences; "
                    f"{type(datamodule).__name__} has no clips()"
                )
            extra: dict[str, Any] = extra_clips(self.energy_model, datamodule, "train")
            if "style" in extra:  # their per-frame controls and style too
                extra["styles"] = extra.pop("style")
            init_sequences(clips("train"), **extra)

    def on_fit_start(self) -> None:
        # Each process draws its own Gibbs noise: under DDP all ranks share the global seed,
        # and identical noise would make every rank's persistent chains identical.
        if self.generator is None or self.generator.device != self.device:
            seed = (torch.initial_seed() + 1_000_003 * self.global_rank) % (1 << 63)
            self.generator = torch.Generator(device=self.device).manual_seed(seed)

    def on_train_epoch_start(self) -> None:
        if self.optimizer_name != "sgd":
            return
        momentum = (
            self.initial_momentum
            if self.current_epoch < self.momentum_warmup_epochs
            else self.momentum
        )
        optimizer = self.optimizers()
        assert isinstance(optimizer, L.pytorch.core.optimizer.LightningOptimizer)
        for group in optimizer.param_groups:
            group["momentum"] = momentum

    def on_train_batch_end(self, outputs: Any, batch: Batch, batch_idx: int) -> None:
        self.energy_model.constrain_()

    def on_train_epoch_end(self) -> None:
        # A non-finite parameter makes the next step's free energy non-finite, which
        # _check_divergence catches; this names the parameter at the end of each epoch.
        for name, param in self.energy_model.named_parameters():
            if not bool(torch.isfinite(param).all()):
                self._diverged(f"parameter {name!r} has non-finite values after the update")

    def on_validation_epoch_start(self) -> None:
        self._eval_free_energy = []

    def on_test_epoch_start(self) -> None:
        self._eval_free_energy = []

    def on_validation_epoch_end(self) -> None:
        self._log_free_energy_gap("val")

    def on_test_epoch_end(self) -> None:
        self._log_free_energy_gap("test")
        if self.eval_log_z != "none" and not self.energy_model.is_conditional:
            self._log_test_likelihood()

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        entry: dict[str, Any] = {"model": model_spec(self.energy_model)}
        if self.chains is not None:
            entry["pcd_chains"] = self.chains.detach().cpu()
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer else None
        if datamodule is not None:
            entry["data"] = {
                "class_path": f"{type(datamodule).__module__}.{type(datamodule).__qualname__}",
                "init_args": {
                    k: v
                    for k, v in dict(getattr(datamodule, "hparams", {})).items()
                    if not k.startswith("_")  # LightningCLI adds _class_path, _instantiator
                },
            }
            stats = getattr(datamodule, "stats", None)
            if callable(stats):
                entry["data"]["stats"] = stats()
            if self.data_sha256 is not None:
                entry["data"]["train_sha256"] = self.data_sha256
        if self._trainer is not None:
            entry["metrics"] = {
                k: float(v) for k, v in self.trainer.callback_metrics.items() if v.numel() == 1
            }
        # update, not replace: callbacks run first and may add to the entry (RecentreIntercept
        # records the k its intercept was matched to)
        checkpoint.setdefault("seqboltz", {}).update(entry)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        chains = checkpoint.get("seqboltz", {}).get("pcd_chains")
        self.chains = chains if isinstance(chains, Tensor) else None
        _continue_step_count(checkpoint)

    # -- internals --------------------------------------------------------------------------
    def _check_batch(self, v: Tensor) -> None:
        """:meth:`~seqboltz.models.EnergyModel.check_visible` at the cost of one sum: a NaN or
        an infinity makes the sum non-finite, and only then are the rows searched."""
        self._check_batch_shape(v)
        if not math.isfinite(float(v.sum())):  # (or finite values whose sum overflows)
            self.energy_model.check_visible(v, "training batch")

    def _check_batch_shape(self, v: Tensor) -> None:
        """A floating-point ``(B, n_visible)`` tensor, or the usual one-line error."""
        model = self.energy_model
        if not isinstance(v, Tensor) or not v.is_floating_point():
            model.check_visible(v, "training batch")  # raises the usual message
        model.check_shape(v, "training batch")

    def _reports_step(self) -> bool:
        """Whether this step computes its free energies (the loss and what is logged): on the
        Trainer's logging steps, and on every step without a Trainer (a direct call)."""
        return self._trainer is None or self._logging_step()

    def _logging_step(self) -> bool:
        """Whether the Trainer keeps this step's logged values (every ``log_every_n_steps``);
        without a Trainer, or with ``Trainer(barebones=True)`` (which refuses ``self.log``),
        nothing is logged."""
        trainer = self._trainer
        if trainer is None or getattr(trainer, "barebones", False):
            return False
        every = max(1, int(getattr(trainer, "log_every_n_steps", 1)))
        return (self.global_step + 1) % every == 0 or bool(getattr(trainer, "fast_dev_run", 0))

    def _uses_closed_form(self) -> bool:
        """Whether this step takes the model's closed-form gradient (see ``closed_form``)."""
        if not self.closed_form or not self._closed_form_model()[0]:
            return False
        trainer = self._trainer
        return trainer is None or (trainer.accumulate_grad_batches == 1 and trainer.world_size == 1)

    def _closed_form_model(self) -> tuple[bool, bool]:
        """``(offers cd_gradients, its cd_gradients takes data_free_energy)`` for the current
        model, worked out once per model (a runtime protocol check costs 10 µs a call)."""
        model = self.energy_model
        cached = self._closed_form_info
        if cached is None or cached[0] is not model:
            offers = isinstance(model, ClosedFormCD)
            takes = offers and _takes_keyword(model.cd_gradients, "data_free_energy")
            cached = self._closed_form_info = (model, offers, takes)
        return cached[1], cached[2]

    def _sparsity_penalty(self, q: Tensor) -> Tensor | None:
        """``λ Σⱼ (t - qⱼ)²`` for the mean hidden activation ``q`` ``(H,)``, or ``None``."""
        if self.sparsity_target is None or self.sparsity_cost <= 0:
            return None
        return self.sparsity_cost * ((self.sparsity_target - q) ** 2).sum()

    def _autograd_step(
        self, v: Tensor, cond: Conditioning | None
    ) -> tuple[Tensor, Tensor, Tensor | None]:
        """``(loss with its graph, mean F(v), reconstruction or None)`` through autograd."""
        if self.negative == "exact":  # exact -log p(v | cond): no chain
            nll = -self.energy_model.conditional_log_prob(v, cond).mean()  # type: ignore[operator]
            self._check_divergence(nll, "exact negative log-likelihood of the training batch")
            with torch.no_grad():
                f_pos_mean = self.energy_model.free_energy(v, cond).mean()
            return nll, f_pos_mean, None
        v_neg, recon = self._negative_particles(v, cond)
        if cond is None:  # one GEMM for both phases
            f = self.energy_model.free_energy(torch.cat([v, v_neg]))
            f_pos, f_neg = f[: v.shape[0]], f[v.shape[0] :]
        else:
            f_pos = self.energy_model.free_energy(v, cond)
            f_neg = self.energy_model.free_energy(v_neg, cond)
        f_pos_mean = f_pos.mean()
        loss = f_pos_mean - f_neg.mean()
        self._check_divergence(f_pos_mean, "free energy of the training batch")
        penalty = self._sparsity_penalty(self.energy_model.hidden_probs(v, cond).mean(0))
        if penalty is not None:
            loss = loss + penalty
        return loss, f_pos_mean, recon

    @torch.no_grad()
    def _closed_form_step(
        self, v: Tensor, cond: Conditioning | None, report: bool = True
    ) -> tuple[Tensor, Tensor | None, Tensor | None]:
        """The fast path: the model writes the gradient into ``.grad``; returns the detached
        ``(loss, mean F(v), reconstruction or None)``, as :meth:`_autograd_step` would, when
        ``report``; otherwise ``(NaN, None, None)``: no free energy is computed beyond what
        :meth:`_check_closed_form_step` needs."""
        model = self.energy_model
        _, takes_data_free_energy = self._closed_form_model()
        start, noise = self._chain_inputs(v, cond)
        options: dict[str, Any] = {"data_free_energy": report} if takes_data_free_energy else {}
        step = cast(ClosedFormCD, model).cd_gradients(
            v,
            noise["hidden"],
            noise["visible"],
            cond,
            chain_start=start,
            negative="mean_field" if self.negative == "mean_field" else "sample",
            sparsity_target=self.sparsity_target,
            sparsity_cost=self.sparsity_cost,
            negative_free_energy=report,
            **options,
        )
        self._grads_written = True
        f_pos_mean = None if step.data_free_energy is None else step.data_free_energy.mean()
        self._check_closed_form_step(v, cond, step, f_pos_mean)
        if self.persistent:
            self.chains = step.chain
        if not report:
            return torch.full((), math.nan, dtype=v.dtype, device=v.device), None, None
        assert f_pos_mean is not None and step.negative_free_energy is not None
        loss = f_pos_mean - step.negative_free_energy.mean()
        penalty = self._sparsity_penalty(step.data_hidden_mean)
        if penalty is not None:
            loss = loss + penalty
        recon = step.v_mean if start is None and self.k == 1 else None
        return loss, f_pos_mean, recon

    def _check_closed_form_step(
        self,
        v: Tensor,
        cond: Conditioning | None,
        step: ContrastiveStep,
        f_pos_mean: Tensor | None,
    ) -> None:
        """The batch check and the divergence check of a closed-form step, with one read of a
        scalar and the semantics of :meth:`_check_batch` + :meth:`_check_divergence`.

        A NaN or an infinity in the batch, in a parameter or in a hidden input makes the data
        free energy non-finite, and so its bounds ``U - H log 2 ≤ mean F(v) ≤ U``
        (``ContrastiveStep.data_free_energy_upper``). When the bounds place ``mean F(v)``
        within ``±divergence_threshold`` the step is sound; otherwise (non-finite bounds, or
        ``|mean F|`` possibly above the threshold) the batch is searched (the one-line
        "training batch contains NaN ... rows [...]" error) and ``F(v)`` itself is checked
        (the "training diverged at epoch N" error), as every step did before; a finite
        ``F`` inside the threshold lets training go on. Raised before ``optimizer.step``, so
        the update that a bad batch or a diverged step would make is never applied.
        """
        if f_pos_mean is None:
            assert step.data_free_energy_upper is not None
            upper = float(step.data_free_energy_upper)
            width = step.data_hidden_input.shape[-1] * math.log(2.0)
            slack = 1e-5 * (abs(upper) + width)  # float32 rounding of the two sums
            limit = self.divergence_threshold
            if upper + slack <= limit and upper - width - slack >= -limit:  # False for NaN
                return
            with torch.no_grad():
                f_pos_mean = self.energy_model.free_energy(v, cond).mean()
        value = float(f_pos_mean)
        if not math.isfinite(value) or abs(value) > self.divergence_threshold:
            if not bool(torch.isfinite(v).all()):
                self.energy_model.check_visible(v, "training batch")  # raises, naming rows
            self._diverged(f"free energy of the training batch is {value:.4g}")

    def _chain_inputs(
        self, v: Tensor, cond: Conditioning | None
    ) -> tuple[Tensor | None, dict[str, Tensor]]:
        """Where the negative chain starts (``None``: at the data ``v``) and its stacked noise.

        PCD starts at the persistent chains (created on first use), CD-PercLoss at zeros or
        the data with most-probable-state noise; a mean-field negative from the data needs
        no last visible sample, so that noise is not drawn.
        """
        start: Tensor | None = None
        if self.persistent:
            if self.chains is None or self.chains.device != v.device:
                n = self.n_chains or v.shape[0]
                chains = (
                    self.energy_model.init_chains(n, self.generator)
                    if self.chains is None
                    else self.chains.to(v.device)
                )
                self.chains = chains.to(v.dtype)
            if cond is not None and self.chains.shape[0] != v.shape[0]:
                raise ValueError(
                    "conditional PCD needs as many chains as batch rows "
                    f"({self.chains.shape[0]} chains, batch of {v.shape[0]})"
                )
            start = self.chains
        elif self.negative == "perceptron" and self.perceptron_start == "zeros":
            start = torch.zeros_like(v)
        n = v.shape[0] if start is None else start.shape[0]
        specs = self.energy_model.noise_spec()
        if self.negative == "perceptron":
            return start, _mode_chain_noise(specs, self.k, n, v)
        skip = ("visible",) if self.negative == "mean_field" and not self.persistent else ()
        return start, chain_noise(specs, self.k, n, self.generator, v, skip)

    @torch.no_grad()
    def _negative_particles(
        self, v: Tensor, cond: Conditioning | None
    ) -> tuple[Tensor, Tensor | None]:
        """Negative particles ``(B', D)`` and, for CD-1, the one-step reconstruction ``(B, D)``
        (the autograd path's chain: ``k`` calls of the model's ``gibbs_step``)."""
        start, noise = self._chain_inputs(v, cond)
        if self.perceptron_margin > 0 and cond is not None:  # cost-augmented negative
            cond = self.energy_model.cost_augmented_cond(cond, v, self.perceptron_margin)  # type: ignore[operator]
        step = self._chain(v if start is None else start, cond, noise)
        if self.persistent:
            self.chains = step.v
        recon = step.v_mean if start is None and self.k == 1 else None
        return (step.v_mean if self.negative == "mean_field" else step.v), recon

    def _chain(
        self, v: Tensor, cond: Conditioning | None, noise: Mapping[str, Tensor]
    ) -> GibbsStep:
        """``k`` Gibbs steps from ``v`` on stacked noise (a missing last step: the mode)."""
        specs = self.energy_model.noise_spec()
        mode = _mode_chain_noise(specs, 1, v.shape[0], v)
        step: GibbsStep | None = None
        for s in range(self.k):
            step_noise = {
                name: stacked[s] if s < stacked.shape[0] else mode[name][0]
                for name, stacked in noise.items()
            }
            step = self.energy_model.gibbs_step(v, step_noise, cond)
            v = step.v
        assert step is not None
        return step

    def _eval_step(self, batch: Batch, stage: str) -> None:
        v, cond = _unpack(batch)
        self.energy_model.check_visible(v, f"{stage} batch")
        model = self.energy_model
        recon = model.reconstruct(v, cond)
        f = model.free_energy(v, cond)
        self._eval_free_energy.append(f.detach())
        self.log(f"{stage}/recon_error", ((v - recon) ** 2).sum(1).mean())
        self.log(f"{stage}/free_energy", f.mean())
        if model.visible_kind == "bernoulli":
            self.log(f"{stage}/pseudo_log_likelihood", self._pseudo_log_likelihood(v, cond))
        prediction_errors = getattr(model, "prediction_errors", None)
        if callable(prediction_errors) and cond is not None:  # structured outputs
            for name, value in prediction_errors(v, cond).items():
                self.log(f"{stage}/{name}", value, batch_size=v.shape[0])

    def _pseudo_log_likelihood(self, v: Tensor, cond: Conditioning | None) -> Tensor:
        """Stochastic pseudo-log-likelihood ``D · log σ(F(ṽ) - F(v))``, one random bit flipped.

        The same estimator as scikit-learn's ``BernoulliRBM.score_samples`` (Besag 1975).
        Visibles are rounded to {0, 1} first.
        """
        generator = torch.Generator(device="cpu").manual_seed(self.pseudo_likelihood_seed)
        v_bin = (v > 0.5).to(v.dtype)
        idx = torch.randint(0, v.shape[1], (v.shape[0],), generator=generator).to(v.device)
        rows = torch.arange(v.shape[0], device=v.device)
        v_flip = v_bin.clone()
        v_flip[rows, idx] = 1.0 - v_flip[rows, idx]
        f = self.energy_model.free_energy(v_bin, cond)
        f_flip = self.energy_model.free_energy(v_flip, cond)
        return (v.shape[1] * torch.nn.functional.logsigmoid(f_flip - f)).mean()

    def _log_free_energy_gap(self, stage: str) -> None:
        """``mean F(held-out) - mean F(training sample)``: grows when overfitting (Hinton 2010).

        Only for unconditional models, whose free energies are comparable across examples.
        """
        if not self._eval_free_energy or not self._train_reference:
            return
        reference = torch.cat(self._train_reference)[:1000]
        with torch.no_grad():
            f_train = self.energy_model.free_energy(reference.to(self.device)).mean()
        f_eval = torch.cat(self._eval_free_energy).mean()
        self.log(f"{stage}/free_energy_gap", f_eval - f_train, sync_dist=True)

    def _log_test_likelihood(self) -> None:
        datamodule = getattr(self.trainer, "datamodule", None)
        test = getattr(datamodule, "eval_tensor", None)
        train = getattr(datamodule, "train_tensor", None)
        if not callable(test) or not isinstance(train, Tensor):
            return
        model = self.energy_model
        small = min(model.n_hidden, model.n_visible if model.visible_kind == "bernoulli" else 99)
        method = self.eval_log_z
        if method == "auto":
            method = "exact" if small <= 20 else "ais"
        if method == "exact":
            log_z = exact_log_partition(model)
        else:
            log_z = ais_log_partition(
                model, train, n_chains=self.ais_chains, n_betas=self.ais_betas
            ).log_z
        ll = log_likelihood(model, test(), log_z).mean()
        self.log("test/log_partition", log_z)
        self.log("test/log_likelihood", float(ll))

    def _check_divergence(self, value: Tensor, what: str) -> None:
        x = float(value.detach())
        if not math.isfinite(x) or abs(x) > self.divergence_threshold:
            self._diverged(f"{what} is {x:.4g}")

    def _diverged(self, reason: str) -> None:
        raise FloatingPointError(
            f"training diverged at epoch {self.current_epoch}, step {self.global_step}: "
            f"{reason}. Lower the learning rate (lr={self.lr}), standardise the data, set "
            "trainer.gradient_clip_val, or for Gaussian units lower sigma_lr_scale "
            f"(={self.sigma_lr_scale}) or raise min_sigma."
        )


# Lightning asks whether training_step takes batch_idx before every batch, with
# inspect.getfullargspec (~30 µs); a function's __signature__ is what inspect returns first.
RBMSystem.training_step.__signature__ = inspect.signature(  # type: ignore[attr-defined]
    RBMSystem.training_step
)
