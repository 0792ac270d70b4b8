"""Shared pieces of the structured-output benchmarks (``denoise.py``, ``multilabel.py``).

Baselines for predicting binary outputs ``y (N, D)`` from inputs ``x (N, C)``: independent
logistic regressions (one per output, L-BFGS to convergence) and a one-hidden-layer MLP trained
by backprop (Adam, early stopping on validation); the paired bootstrap of a per-example
difference (Efron & Tibshirani 1993, ch. 16); locating the checkpoint a recipe kept.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "best_checkpoint",
    "best_logistic",
    "best_mlp",
    "crbm_from_logistic",
    "fit_logistic",
    "fit_mlp",
    "paired_bootstrap",
    "train_structured",
]


def best_checkpoint(last: Path) -> Path:
    """The ``best.ckpt`` beside a run's ``last.ckpt`` (the recipe's ModelCheckpoint on the
    validation metric), else ``last`` itself."""
    best = last.with_name("best.ckpt")
    return best if best.exists() else last


def fit_logistic(
    x: Tensor, y: Tensor, l2: float, max_iter: int = 300
) -> tuple[torch.nn.Linear, dict[str, float]]:
    """Independent logistic regressions ``y ≈ sigm(x Wᵀ + c)``: mean BCE + ``l2/2 ‖W‖²`` by
    L-BFGS (full batch, strong-Wolfe line search) until the largest gradient entry is below
    1e-5 or ``max_iter`` iterations (``grad_max`` says how converged it is)."""
    torch.manual_seed(0)
    layer = torch.nn.Linear(x.shape[1], y.shape[1])
    torch.nn.init.zeros_(layer.weight)
    with torch.no_grad():
        p = y.mean(0).clamp(1e-3, 1 - 1e-3)
        layer.bias.copy_(torch.log(p) - torch.log1p(-p))
    opt = torch.optim.LBFGS(
        layer.parameters(),
        lr=1.0,
        max_iter=max_iter,
        history_size=20,
        tolerance_grad=1e-5,
        tolerance_change=1e-9,
        line_search_fn="strong_wolfe",
    )
    bce = torch.nn.functional.binary_cross_entropy_with_logits

    def closure() -> Tensor:
        opt.zero_grad()
        loss = bce(layer(x), y, reduction="sum") / x.shape[0]
        loss = loss + 0.5 * l2 * (layer.weight**2).sum()
        loss.backward()
        return loss

    start = time.perf_counter()
    opt.step(closure)
    loss = float(closure().detach())  # at the solution; also refreshes the gradients
    grad = torch.cat([p.grad.flatten() for p in layer.parameters() if p.grad is not None])
    state = opt.state[layer.weight]
    return layer, {
        "loss": loss,
        "grad_max": float(grad.abs().max()),
        "iterations": int(state.get("n_iter", 0)),
        "seconds": time.perf_counter() - start,
    }


class _MLP(torch.nn.Module):
    """One sigmoid hidden layer, logits out, optionally a direct linear input→output path."""

    def __init__(self, n_in: int, n_hidden: int, n_out: int, direct: bool) -> None:
        super().__init__()
        self.hidden = torch.nn.Linear(n_in, n_hidden)
        self.out = torch.nn.Linear(n_hidden, n_out)
        self.direct = torch.nn.Linear(n_in, n_out, bias=False) if direct else None
        if self.direct is not None:
            torch.nn.init.zeros_(self.direct.weight)

    def forward(self, x: Tensor) -> Tensor:
        logits = self.out(torch.sigmoid(self.hidden(x)))
        return logits if self.direct is None else logits + self.direct(x)


def fit_mlp(
    x: Tensor,
    y: Tensor,
    x_val: Tensor,
    y_val: Tensor,
    n_hidden: int,
    weight_decay: float,
    val_error: Callable[[Tensor, Tensor], float],
    max_epochs: int = 300,
    patience: int = 20,
    batch_size: int = 50,
    lr: float = 1e-3,
    seed: int = 0,
    direct: bool = False,
) -> tuple[torch.nn.Module, dict[str, float]]:
    """``y ≈ sigm(W₂ sigm(W₁ x + c₁) + c₂ [+ V x])`` with ``n_hidden`` sigmoid units (the
    CRBM's hidden layer size) and, with ``direct``, a linear input→output path ``V`` (the
    CRBM's ``A``; started at 0), mean BCE + ``weight_decay/2 ‖W‖²`` (weights only) by Adam on
    minibatches; keeps the epoch with the lowest ``val_error(probs (N, D), y_val)`` and stops
    after ``patience`` epochs without improvement."""
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    net = _MLP(x.shape[1], n_hidden, y.shape[1], direct)
    with torch.no_grad():
        p = y.mean(0).clamp(1e-3, 1 - 1e-3)
        net.out.bias.copy_(torch.log(p) - torch.log1p(-p))
    weights = [net.hidden.weight, net.out.weight, *([net.direct.weight] if net.direct else [])]
    biases = [net.hidden.bias, net.out.bias]
    opt = torch.optim.Adam(
        [{"params": weights, "weight_decay": weight_decay}, {"params": biases}], lr=lr
    )
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    best: tuple[float, int, dict[str, Tensor]] | None = None
    start = time.perf_counter()
    epoch = 0
    for epoch in range(max_epochs):
        for idx in torch.randperm(x.shape[0], generator=gen).split(batch_size):
            opt.zero_grad()
            bce(net(x[idx]), y[idx]).backward()
            opt.step()
        with torch.no_grad():
            err = val_error(torch.sigmoid(net(x_val)), y_val)
        if best is None or err < best[0]:
            best = (err, epoch, {k: v.clone() for k, v in net.state_dict().items()})
        elif epoch - best[1] >= patience:
            break
    assert best is not None
    net.load_state_dict(best[2])
    net.eval()
    return net, {
        "val_error": best[0],
        "best_epoch": best[1],
        "epochs": epoch + 1,
        "seconds": time.perf_counter() - start,
    }


def paired_bootstrap(
    a: np.ndarray, b: np.ndarray, n_resamples: int = 10_000, seed: int = 0
) -> dict[str, float]:
    """Paired bootstrap of ``mean(a) - mean(b)`` over examples (``a``, ``b``: ``(N,)``
    per-example scores of two methods on the same test examples): the difference and the 2.5 /
    97.5 percentiles of its distribution over ``n_resamples`` resamples of the examples."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"need two (N,) score vectors, got {a.shape} and {b.shape}")
    d = a - b
    idx = np.random.default_rng(seed).integers(0, d.shape[0], size=(n_resamples, d.shape[0]))
    means = d[idx].mean(axis=1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return {"difference": float(d.mean()), "ci_low": float(lo), "ci_high": float(hi)}


def crbm_from_logistic(
    layer: torch.nn.Linear,
    n_hidden: int,
    init_std: float = 0.01,
    seed: int = 0,
    **model_args: object,
) -> torch.nn.Module:
    """A :class:`~seqboltz.models.StructuredOutputCRBM` that starts at the fitted logistic
    regressions: ``a = c``, ``A = Wᵀ`` (so with ``W`` near 0 its prediction ``sigm(a + xA)`` is
    the baseline's), ``W`` and ``B`` small random, ``b = 0``; training then adds what the
    hidden units can model on top of the baseline."""
    from seqboltz.models import StructuredOutputCRBM

    torch.manual_seed(seed)
    n_out, n_in = layer.weight.shape
    model = StructuredOutputCRBM(n_out, n_hidden, n_in, init_std=init_std, **model_args)  # type: ignore[arg-type]
    with torch.no_grad():
        model.cond_to_visible.copy_(layer.weight.detach().T)
        model.visible_bias.copy_(layer.bias.detach())
    return model


def best_logistic(
    x: Tensor,
    y: Tensor,
    x_val: Tensor,
    y_val: Tensor,
    grid: Sequence[float],
    val_error: Callable[[Tensor, Tensor], float],
) -> tuple[float, torch.nn.Linear, dict[str, float]]:
    """:func:`fit_logistic` at every L2 of ``grid``; the one with the lowest
    ``val_error(probs, y_val)`` as ``(l2, layer, info)`` (each fit logged to stderr)."""
    fits = []
    for l2 in grid:
        layer, info = fit_logistic(x, y, l2)
        with torch.no_grad():
            err = val_error(torch.sigmoid(layer(x_val)), y_val)
        print(f"logistic l2={l2:g}: val error {err:.5f} {info}", file=sys.stderr)
        fits.append((err, l2, layer, info))
    _, l2, layer, info = min(fits, key=lambda f: f[0])
    return l2, layer, info


def best_mlp(
    x: Tensor,
    y: Tensor,
    x_val: Tensor,
    y_val: Tensor,
    n_hidden: int,
    grid: Sequence[float],
    val_error: Callable[[Tensor, Tensor], float],
    **kwargs: Any,
) -> tuple[float, torch.nn.Module, dict[str, float]]:
    """:func:`fit_mlp` at every weight decay of ``grid`` (``kwargs`` passed on); the one with
    the lowest validation error as ``(decay, net, info)`` (each fit logged to stderr)."""
    fits = []
    for decay in grid:
        net, info = fit_mlp(x, y, x_val, y_val, n_hidden, decay, val_error, **kwargs)
        print(f"MLP wd={decay:g} {kwargs}: {info}", file=sys.stderr)
        fits.append((info["val_error"], decay, net, info))
    _, decay, net, info = min(fits, key=lambda f: f[0])
    return decay, net, info


def train_structured(
    model: torch.nn.Module,
    datamodule: object,
    root: Path,
    max_epochs: int,
    patience: int,
    monitor: str = "val/output_error",
    **system_args: object,
) -> tuple[Path, list[float]]:
    """Train ``model`` with :class:`~seqboltz.training.RBMSystem` (``init_from_data=False``:
    the start is kept), validating every epoch, early stopping on ``monitor`` and keeping its
    best epoch (``best.ckpt``). Returns the checkpoint and the validation curve."""
    import lightning as L
    from lightning.pytorch.callbacks import Callback, EarlyStopping, ModelCheckpoint

    from seqboltz.training import RBMSystem

    curve: list[float] = []

    class _Curve(Callback):
        def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
            curve.append(float(trainer.callback_metrics[monitor]))

    system = RBMSystem(model, init_from_data=False, **system_args)  # type: ignore[arg-type]
    ckpt = ModelCheckpoint(dirpath=root, monitor=monitor, mode="min", filename="best")
    trainer = L.Trainer(
        accelerator="cpu",
        devices=1,
        max_epochs=max_epochs,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        callbacks=[EarlyStopping(monitor=monitor, mode="min", patience=patience), ckpt, _Curve()],
    )
    trainer.fit(system, datamodule=datamodule)  # type: ignore[arg-type]
    return Path(ckpt.best_model_path), curve
