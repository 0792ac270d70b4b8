"""Hybrid training of a residual CRBM: CD for the density, and the model's own mean-field
conditional mean fitted to the data.

Why. CD fits the hidden units to the *density* of the residual left by the linear start; on
speech the residual's mean given the linguistic controls is not what they learn (session 7:
the mean-field hidden contribution predicted 0.1 % of the whitened residual), so the
conditional mean, the frame a synthesiser emits, stays the linear model's. Yet the model's
one-pass mean-field mean ``L(â + W σ(b̂))`` is a one-hidden-layer network of the controls,
and fitted by squared error that network lowers the validation prompts' free-running MCD by
0.38 dB (``benchmarks/tts_probe.py``). This callback adds that fit to CD training: after
each CD step, one Adam step on the squared whitened error of the model's conditional mean
for the same batch (:meth:`~seqboltz.models.ResidualCRBM.conditional_mean_error`), over
the hidden part's parameters (``W``, ``b``, ``Q`` and, where the history reaches the hidden
units, ``B``; the linear start is left as it is). It is the hybrid generative–
discriminative objective of Larochelle & Bengio (2008), "Classification using discriminative
restricted Boltzmann machines", for a conditional RBM with Gaussian visibles; the two terms
take turns rather than sharing one optimiser, because the discriminative term needs Adam to
leave the plateau where every hidden unit sits at ``σ ≈ ½`` (plain SGD at CD's rate stays
there for tens of epochs).

The validation error of the mean is logged as ``val_mean_error`` (per frame, summed over
``D``), for a checkpoint monitor or early stopping.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import lightning as L
import torch
from torch import Tensor, nn

from seqboltz.models import ResidualCRBM
from seqboltz.training._system import _unpack

__all__ = ["FitConditionalMean"]


def _split(batch: Any) -> tuple[Tensor, Mapping[str, Tensor]]:
    """``(v, cond)`` of a sequence batch, as the system reads it (:func:`_unpack`)."""
    v, cond = _unpack(batch)
    if not isinstance(cond, Mapping):
        raise TypeError("FitConditionalMean needs sequence batches {'v': …, 'cond': {…}}")
    return v, cond


class FitConditionalMean(L.Callback):
    """Fit a :class:`~seqboltz.models.ResidualCRBM`'s mean-field conditional mean beside CD
    (see the module).

    Args:
        lr: Adam's learning rate for the mean's term.
        passes: mean-field passes of the conditional mean (1: ``L(â + W σ(b̂))``, the form
            generation uses with ``passes=1``).
        weight_decay: L2 on the hidden part's weights in the mean's term.
        start_epoch: first epoch with the mean's term (CD alone before it).
    """

    def __init__(
        self, lr: float = 1e-3, passes: int = 1, weight_decay: float = 0.0, start_epoch: int = 0
    ) -> None:
        if not lr > 0 or passes < 1 or not weight_decay >= 0 or start_epoch < 0:
            raise ValueError(
                "FitConditionalMean needs lr > 0, passes >= 1, weight_decay >= 0 and "
                f"start_epoch >= 0; got {lr}, {passes}, {weight_decay}, {start_epoch}"
            )
        self.lr, self.passes = lr, passes
        self.weight_decay, self.start_epoch = weight_decay, start_epoch
        self._optimizer: torch.optim.Optimizer | None = None
        self._params: list[nn.Parameter] = []
        self._pending_state: dict[str, Any] | None = None
        self._val_sum, self._val_count = 0.0, 0

    @staticmethod
    def _model(pl_module: L.LightningModule) -> ResidualCRBM:
        model = getattr(pl_module, "energy_model", None)
        if not isinstance(model, ResidualCRBM):
            raise ValueError(f"FitConditionalMean needs a ResidualCRBM; got {type(model).__name__}")
        return model

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        model = self._model(pl_module)
        names = ["weight", "hidden_bias", "past_to_hidden", "control_to_hidden", "style_to_hidden"]
        self._params = [
            p for n in names if (p := getattr(model, n, None)) is not None and p.requires_grad
        ]
        self._optimizer = torch.optim.Adam(self._params, lr=self.lr, weight_decay=self.weight_decay)
        if self._pending_state is not None:
            self._optimizer.load_state_dict(self._pending_state)
            self._pending_state = None

    def on_train_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        if trainer.current_epoch < self.start_epoch or self._optimizer is None:
            return
        if self._pending_state is not None:  # a checkpoint's state restored after fit start
            self._optimizer.load_state_dict(self._pending_state)
            self._pending_state = None
        model = self._model(pl_module)
        v, cond = _split(batch)
        with torch.enable_grad():
            loss = model.conditional_mean_error(v, cond, self.passes).mean()
            grads = torch.autograd.grad(loss, self._params)
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"training diverged at epoch {trainer.current_epoch}: the conditional mean's "
                "error is not finite"
            )
        # The CD step's gradients stay the system's: Adam reads these, then they are put back.
        kept = [p.grad for p in self._params]
        for p, g in zip(self._params, grads, strict=True):
            p.grad = g
        self._optimizer.step()
        for p, old in zip(self._params, kept, strict=True):
            p.grad = old
        if trainer.global_step % max(int(getattr(trainer, "log_every_n_steps", 1)), 1) == 0:
            pl_module.log("train_mean_error", loss.detach(), on_step=True, on_epoch=False)

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._val_sum, self._val_count = 0.0, 0

    @torch.no_grad()
    def on_validation_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        v, cond = _split(batch)
        err = self._model(pl_module).conditional_mean_error(v, cond, self.passes)
        self._val_sum += float(err.sum())
        self._val_count += err.shape[0]

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._val_count:
            pl_module.log("val_mean_error", self._val_sum / self._val_count, prog_bar=True)

    def state_dict(self) -> dict[str, Any]:
        return {"adam": None if self._optimizer is None else self._optimizer.state_dict()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._pending_state = state_dict.get("adam")
