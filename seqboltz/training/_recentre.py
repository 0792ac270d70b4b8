"""Moment matching of a residual CRBM's intercept to its own sampler.

Why. :class:`~seqboltz.models.ResidualCRBM` keeps its linear part fixed
(``train_linear=False``) so that generation stays stable, and CD trains only the hidden units.
Their contribution ``r`` to a frame (``v = L(â + r + ε)``) then has a mean the fixed intercept
never absorbs: on the CMU selection the sampler's ``r`` averaged 0.06–0.09 whitened units per
dimension over the training histories, where the data's residual averages 0. A stable linear
system turns a constant input ``m`` into a stationary offset ``(I - Σᵢ Aᵢ)⁻¹ L m``, amplified up
to ``1 / (1 - ρ) = 100×`` at spectral radius ``ρ = 0.99``: the free-running poses settled away
from the real ones, and the Fréchet distance of 60-s generations was 2.2× the linear AR's
(``benchmarks/RESULTS.md``, session 5). Re-centring on validation clips took it from 2220 to
914 (AR: 898) without changing anything else.

What. :func:`sampler_mean_error` is the mean one-step error of the model's own sampler (the
generation path, :meth:`~seqboltz.models.SequenceRBM.next_frame`, at ``k`` Gibbs steps, with
its noise drawn from a fixed seed) over every training window:
``e = mean_t (v_t - v̂_t)``, in frame units. The sampler's chain starts at ``r = 0`` and never
reads ``â``, so shifting the whitened intercept by ``M e`` (:func:`recentre_intercept`) moves
every sampled frame by exactly ``e``: afterwards the sampler's one-step mean error over the
training windows is zero (to the Monte-Carlo error of one noise draw per window). This is the
least-squares intercept given the hidden part, the step a linear fit would take for its own
constant term.

:class:`RecentreIntercept` does it before every validation epoch, so the validation score
(:class:`~seqboltz.training.GenerationMetric`) and every saved checkpoint see the re-centred
model, and CD then trains the hidden units against the re-centred residual.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import lightning as L
import numpy as np
import torch
from torch import Tensor

from seqboltz.models import ResidualCRBM, TwoLayerCRBM
from seqboltz.noise import gibbs_uniforms

__all__ = ["RecentreIntercept", "extra_clips", "recentre_intercept", "sampler_mean_error"]


def extra_clips(model: Any, datamodule: Any, split: str) -> dict[str, Sequence[np.ndarray]]:
    """The per-frame inputs a model reads, from a DataModule's split: ``{"controls": …}``
    (``control_clips``) and/or ``{"style": …}`` (``style_clips``), each ``[(T_i, ·)]``
    aligned with ``datamodule.clips(split)``."""
    extra: dict[str, Sequence[np.ndarray]] = {}
    for size, key, getter in (
        ("n_controls", "controls", "control_clips"),
        ("n_style", "style", "style_clips"),
    ):
        if getattr(model, size, 0):
            per_frame = getattr(datamodule, getter, None)
            if not callable(per_frame):
                raise ValueError(
                    f"{type(model).__name__} reads {key}; {type(datamodule).__name__} has no "
                    f"{getter}()"
                )
            extra[key] = per_frame(split)
    return extra


def _windows(
    clips: Sequence[np.ndarray], extra: dict[str, Sequence[np.ndarray]], order: int
) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
    """Every training window (:func:`~seqboltz.eval._sequence.history_windows`): histories
    ``(N, order, D)`` (most recent first), the frames they precede ``(N, D)`` and each frame's
    per-frame conditioning ``{name: (N, ·)}``."""
    from seqboltz.eval._sequence import history_windows

    if all(np.shape(c)[0] <= order for c in clips):
        raise ValueError(f"no training clip is longer than the model's order ({order})")
    hist, target = history_windows(clips, order)
    cond = {
        name: np.concatenate([np.asarray(c, dtype=np.float64)[order:] for c in seqs])
        for name, seqs in extra.items()
    }
    return (
        torch.from_numpy(hist),
        torch.from_numpy(target),
        {k: torch.from_numpy(v) for k, v in cond.items()},
    )


@torch.no_grad()
def sampler_mean_error(
    model: ResidualCRBM | TwoLayerCRBM,
    clips: Sequence[np.ndarray],
    gibbs_steps: int,
    extra: dict[str, Sequence[np.ndarray]] | None = None,
    seed: int = 0,
    batch_size: int = 4096,
    draws: int = 1,
) -> Tensor:
    """Mean one-step error of the model's sampler over every window of ``clips``.

    Args:
        model: the sequence model (its :meth:`next_frame` is the generation path).
        clips: standardised clips ``[(T_i, D)]`` (no window straddles two).
        gibbs_steps: ``k`` of the sampler.
        extra: per-frame conditioning clips by name (``"controls"``, ``"style"``), aligned
            with ``clips``.
        seed: seed of the noise draws.
        batch_size: windows per call.
        draws: noise draws per window, averaged. The stable linear part amplifies what is
            left of the estimate's Monte-Carlo error into a stationary offset of the pose (up
            to ``1 / (1 - ρ)``, 322× at the CMU clips' ρ = 0.9969), so a second estimate
            with another seed still found an error of the size of the first one's.

    The visible noise ``ε`` of a residual model is left out of the sampled frames: it enters
    them linearly with mean exactly 0, so the expected error is the same without it, and its
    Monte-Carlo error is then the hidden units' alone (``ε`` carried about three quarters of
    a sampled frame's variance on the CMU clips).

    Returns:
        ``e = mean_t (v_t - v̂_t)`` ``(D,)`` in frame units, float64.
    """
    if gibbs_steps < 1:
        raise ValueError(f"gibbs_steps must be >= 1; got {gibbs_steps}")
    if draws < 1:
        raise ValueError(f"draws must be >= 1; got {draws}")
    ref = model.reference_parameter()
    hist, target, cond = _windows(clips, extra or {}, model.order)
    rng = np.random.default_rng(seed)
    total = torch.zeros(hist.shape[-1], dtype=torch.float64)
    residual = model.layer1 if isinstance(model, TwoLayerCRBM) else model
    visible_noise = getattr(residual, "visible_noise", None)
    if visible_noise is not None:
        residual.visible_noise = 0.0
    try:
        for _ in range(draws):
            for lo in range(0, hist.shape[0], batch_size):
                hi = min(lo + batch_size, hist.shape[0])
                frame_cond = {"history": hist[lo:hi].to(ref)}
                frame_cond.update({k: v[lo:hi].to(ref) for k, v in cond.items()})
                noise = gibbs_uniforms(rng, hi - lo, gibbs_steps, model.noise_width)
                sampled = model.next_frame(frame_cond, torch.from_numpy(noise).to(ref))
                total += (target[lo:hi] - sampled.double().cpu()).sum(0)
    finally:
        if visible_noise is not None:
            residual.visible_noise = visible_noise
    return total / (hist.shape[0] * draws)


@torch.no_grad()
def recentre_intercept(
    model: ResidualCRBM | TwoLayerCRBM,
    clips: Sequence[np.ndarray],
    gibbs_steps: int,
    extra: dict[str, Sequence[np.ndarray]] | None = None,
    seed: int = 0,
    iterations: int = 1,
    draws: int = 1,
) -> Tensor:
    """Shift the whitened intercept ``a`` by ``M e`` (:func:`sampler_mean_error`, ``draws``
    noise draws per window), in place.

    A :class:`~seqboltz.models.TwoLayerCRBM` over a residual layer 1 is re-centred through
    layer 1's intercept. Its top layer reads ``h¹`` re-inferred from the history, which depends
    on the intercept, so one shift is not exact there: ``iterations`` repeats it (each on a
    fresh measurement; for a one-layer model the second is already at Monte-Carlo error).

    Returns:
        The frame-space shift ``e`` ``(D,)`` of the last iteration.
    """
    residual = model.layer1 if isinstance(model, TwoLayerCRBM) else model
    if not isinstance(residual, ResidualCRBM):
        raise TypeError(
            "recentring needs a ResidualCRBM, or a TwoLayerCRBM over one (its sampler must not "
            f"read the intercept); got {type(model).__name__}"
        )
    if iterations < 1:
        raise ValueError(f"iterations must be >= 1; got {iterations}")
    error = torch.zeros(residual.n_visible, dtype=torch.float64)
    for _ in range(iterations):
        error = sampler_mean_error(model, clips, gibbs_steps, extra, seed, draws=draws)
        shift = error.to(residual.whiten) @ residual.whiten.T
        residual.visible_bias.add_(shift.to(residual.visible_bias))
    return error


class RecentreIntercept(L.Callback):
    """Before every validation epoch, re-centre the residual CRBM's intercept on the training
    clips at the generation's ``gibbs_steps`` (see the module).

    The intercept is matched to *one* ``k``: the hidden part's mean contribution depends on
    the number of Gibbs steps, and the stable linear part amplifies the difference. On the Daz
    clips a model re-centred at ``k = 10`` and generated at the card's ``k = 1`` held its arms
    raised for a whole minute (Fréchet distance 25,815 against 11,861 re-centred at ``k = 1``;
    ``benchmarks/RESULTS.md``, session 11). So ``gibbs_steps`` must be the ``k`` the model is
    exported with, and every checkpoint records it (``checkpoint["seqboltz"]
    ["recentred_gibbs_steps"]``): ``seqboltz export`` takes it as the card's ``k`` by default
    and warns when asked for another.

    Args:
        gibbs_steps: ``k`` of the sampler to match (the card's ``k``).
        seed: seed of the noise draws (the same every epoch).
        draws: noise draws per training window, averaged (:func:`sampler_mean_error`).
    """

    def __init__(self, gibbs_steps: int = 10, seed: int = 0, draws: int = 1) -> None:
        if gibbs_steps < 1:
            raise ValueError(f"RecentreIntercept: gibbs_steps must be >= 1; got {gibbs_steps}")
        if draws < 1:
            raise ValueError(f"RecentreIntercept: draws must be >= 1; got {draws}")
        self.gibbs_steps, self.seed, self.draws = gibbs_steps, seed, draws
        self.last_shift: float | None = None
        self._matched = False

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        model: Any = getattr(pl_module, "energy_model", None)
        datamodule: Any = trainer.datamodule  # type: ignore[attr-defined]
        clips = getattr(datamodule, "clips", None)
        if not isinstance(model, ResidualCRBM) or not callable(clips):
            raise ValueError(
                "RecentreIntercept needs a ResidualCRBM and a DataModule with clips(); got "
                f"{type(model).__name__} and {type(datamodule).__name__}"
            )
        extra = extra_clips(model, datamodule, "train")
        error = recentre_intercept(
            model, clips("train"), self.gibbs_steps, extra, self.seed, draws=self.draws
        )
        self.last_shift = float(error.norm())
        self._matched = True
        pl_module.log("val/recentre_shift", self.last_shift, sync_dist=True)

    def on_save_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        if self._matched:  # the intercept was matched at this k (now, or before a resume)
            checkpoint.setdefault("seqboltz", {})["recentred_gibbs_steps"] = self.gibbs_steps

    def on_load_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        recorded = checkpoint.get("seqboltz", {}).get("recentred_gibbs_steps")
        self._matched = recorded == self.gibbs_steps
