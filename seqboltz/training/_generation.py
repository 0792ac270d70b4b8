"""Model selection by what a sequence model generates, not by its training loss.

CD's reconstruction error and one-step prediction error say little about the long
generations users see: a CRBM can predict the next frame well and still drift, freeze or blow
up when it feeds on its own output. :class:`GenerationMetric` generates from the start of every
validation clip at each validation epoch, scores the generations against the real
continuations, and logs the score, so ``ModelCheckpoint(monitor=...)`` and ``EarlyStopping``
select on it.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Literal

import lightning as L
import numpy as np
import torch

__all__ = ["GenerationMetric", "SpeechGenerationMetric", "drift_penalty", "generation_score"]

#: What a non-finite or exploded generation scores (worse than any finite NPSS, which is < 2F).
DIVERGED_SCORE = 1e3


def generation_score(
    real: np.ndarray, generated: np.ndarray, max_std_ratio: float = 4.0
) -> tuple[float, dict[str, float]]:
    """Score generations against the real continuations of the same starts.

    Args:
        real: ``(B, T, D)`` held-out continuations (standardised).
        generated: ``(B, T, D)`` generations from the same starts.
        max_std_ratio: a generation whose per-dimension standard deviation exceeds this many
            times the real one's (median over dimensions) counts as exploded.

    Returns:
        ``(score, parts)``: the score is NPSS (Gopalakrishnan et al. 2019; lower is closer)
        plus a penalty for freezing, ``|log(median std ratio)|`` when the ratio falls below
        ½, so a still pose cannot win on spectra alone; :data:`DIVERGED_SCORE` for a
        non-finite or exploded generation. ``parts`` holds ``npss`` and ``std_ratio``.
    """
    from seqboltz.eval._sequence import npss

    if real.shape != generated.shape or real.ndim != 3:
        raise ValueError(
            f"real and generated must both be (B, T, D); got {real.shape}, {generated.shape}"
        )
    if not np.isfinite(generated).all():
        return DIVERGED_SCORE, {"npss": math.nan, "std_ratio": math.inf}
    ref = real.reshape(-1, real.shape[-1]).std(0)
    gen = generated.reshape(-1, generated.shape[-1]).std(0)
    moving = ref > 1e-6 * max(float(ref.max()), 1e-300)
    ratio = float(np.median(gen[moving] / ref[moving])) if moving.any() else 1.0
    if ratio > max_std_ratio:
        return DIVERGED_SCORE, {"npss": math.nan, "std_ratio": ratio}
    value = npss(real, generated)
    penalty = abs(math.log(max(ratio, 1e-12))) if ratio < 0.5 else 0.0
    return value + penalty, {"npss": value, "std_ratio": ratio}


def drift_penalty(real: np.ndarray, tail: np.ndarray) -> float:
    """How far the end of long generations has left the data's spread.

    Args:
        real: ``(N, D)`` real frames (standardised), the reference spread.
        tail: ``(M, D)`` the last frames of long generations (all sequences stacked).

    Returns:
        ``mean_d max(0, |log(σ_gen,d / σ_real,d)| - log 2)`` over the moving dimensions: 0
        when every dimension's standard deviation is within 0.5–2× the real one (the 60-s
        stability target of issue 13), growing with drift or freezing; ``inf`` if any value
        is non-finite.
    """
    if not np.isfinite(tail).all():
        return math.inf
    ref, gen = real.std(0), tail.std(0)
    moving = ref > 1e-6 * max(float(ref.max()), 1e-300)
    if not moving.any():
        return 0.0
    log_ratio = np.abs(np.log(np.maximum(gen[moving], 1e-12) / ref[moving]))
    return float(np.maximum(log_ratio - math.log(2.0), 0.0).mean())


class GenerationMetric(L.Callback):
    """Log ``val/gen_score`` (and ``val/gen_npss``, ``val/gen_std_ratio``) at each
    validation epoch, from generations started at every validation clip.

    Each clip of the DataModule's ``"val"`` split seeds one generation with its first
    ``order`` frames; the next ``frames`` frames (all clips cropped to a common length) are
    the reference. Style clips, where the data have a style, drive the generation frame by
    frame. The noise follows the seed rule (sequence ``i`` of seed ``seed``), so the score of
    a given model is reproducible. The least-squares AR baseline's score on the same starts
    is logged once as ``val/gen_score_ar`` for comparison.

    With ``horizon`` longer than ``frames``, each generation runs on to ``horizon`` frames
    (e.g. 60 s), and :func:`drift_penalty` of its last ``frames`` frames against the spread
    of the validation clips is added to the score (logged as ``val/gen_drift``): a model
    that is good for 10 s and then drifts or blows up is not chosen.

    ``measures="realism"`` scores what the motion report scores instead
    (:func:`~seqboltz.eval._sequence_report.score_generations` on the validation clips, as
    ``benchmarks/motion_quality.py`` does on the test clips): NPSS, PSKL (mean of both
    directions) and, where the data have a skeleton, the Fréchet distance on pose + velocity
    and foot skating, each against the least-squares AR's on the same starts and seeds.
    ``val/gen_score`` is then :func:`~seqboltz.eval._sequence_report.realism_score` (the mean
    log ratio to AR: 0 at parity, below 0 better) plus the drift penalty, and each measure is
    logged (``val/gen_frechet`` …). NPSS alone kept improving on the CMU 131 clips while the
    Fréchet distance and foot skating of the same generations grew (317 → 391 and 21.0 →
    24.4 from epoch 19 to 39, 3 seeds), so the checkpoint NPSS chose was not the one the
    report preferred.

    Args:
        frames: frames generated per clip (fewer if the shortest clip is shorter).
        gibbs_steps: ``k`` per frame (smaller than generation's usual 30 to keep it cheap).
        seed: the generation seed.
        max_clips: at most this many validation clips (the longest first).
        horizon: total frames per generation for the drift check (0: no check).
        measures: ``"npss"`` (NPSS plus the freezing penalty) or ``"realism"`` (see above;
            every validation clip, generated for ``max(frames, horizon)`` frames, at least
            one spectral window: the shortest validation clip, at most 10 s).
        seeds: generations per clip, seeds ``seed … seed + seeds - 1`` (``"realism"`` only:
            one seed per clip is a noisy score).
    """

    def __init__(
        self,
        frames: int = 300,
        gibbs_steps: int = 10,
        seed: int = 0,
        max_clips: int = 16,
        horizon: int = 0,
        measures: Literal["npss", "realism"] = "npss",
        seeds: int = 1,
    ) -> None:
        if frames < 8 or gibbs_steps < 1 or max_clips < 1 or horizon < 0 or seeds < 1:
            raise ValueError(
                "need frames >= 8, gibbs_steps >= 1, max_clips >= 1, horizon >= 0 and "
                f"seeds >= 1; got {frames}, {gibbs_steps}, {max_clips}, {horizon}, {seeds}"
            )
        if measures not in ("npss", "realism"):
            raise ValueError(f"measures must be 'npss' or 'realism'; got {measures!r}")
        self.frames, self.gibbs_steps = frames, gibbs_steps
        self.seed, self.max_clips, self.horizon = seed, max_clips, horizon
        self.measures, self.seeds = measures, seeds
        self._ar_logged = False
        self._reference: Any = None
        self._ar_row: dict[str, Any] | None = None
        self.best_score = math.inf  # the lowest val/gen_score of this fit
        self._last_parts: dict[str, float] = {}

    def _starts(self, trainer: L.Trainer, order: int) -> tuple[np.ndarray, np.ndarray, Any]:
        dm = trainer.datamodule  # type: ignore[attr-defined]
        if dm is None or not hasattr(dm, "clips"):
            raise TypeError("GenerationMetric needs a sequence DataModule (with clips())")
        clips = dm.clips("val")
        styles = dm.style_clips("val") if hasattr(dm, "style_clips") else None
        ranked = sorted(range(len(clips)), key=lambda i: -clips[i].shape[0])[: self.max_clips]
        length = min(clips[i].shape[0] for i in ranked) - order
        if length < 8:
            raise ValueError(
                f"the validation clips are too short to score generations ({length + order} "
                f"frames for order {order})"
            )
        n = min(self.frames, length)
        seeds = np.stack([clips[i][:order] for i in ranked])
        real = np.stack([clips[i][order : order + n] for i in ranked])
        style = None
        if styles is not None:
            style = np.stack([styles[i][order : order + n] for i in ranked])
        return seeds, real, style

    @torch.no_grad()
    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        model: Any = getattr(pl_module, "energy_model", None)
        if model is None or not hasattr(model, "generate"):
            raise TypeError("GenerationMetric needs a LightningModule whose energy_model generates")
        if self.measures == "realism" and not getattr(trainer, "fast_dev_run", False):
            self._log_realism(trainer, pl_module, model)
            return
        seeds, real, style = self._starts(trainer, model.order)
        ref = model.reference_parameter()
        kwargs: dict[str, Any] = {}
        n = real.shape[1]
        # a fast_dev_run is a smoke test of the loop: no long generation for the drift check
        total = n if getattr(trainer, "fast_dev_run", False) else max(n, self.horizon)
        if style is not None and total > n:  # hold the last style value past the reference
            style = np.concatenate([style, np.repeat(style[:, -1:], total - n, axis=1)], 1)
        if style is not None and int(getattr(model, "n_style", 0)) > 0:
            kwargs["style"] = torch.from_numpy(style).to(ref)
        generated = (
            model.generate(
                torch.from_numpy(seeds).to(ref),
                total,
                gibbs_steps=self.gibbs_steps,
                seed=self.seed,
                **kwargs,
            )
            .double()
            .cpu()
            .numpy()
        )
        score, parts = self._score(trainer, real, generated)
        self.best_score, self._last_parts = min(self.best_score, score), parts
        pl_module.log("val/gen_score", score, prog_bar=True)
        pl_module.log("val/gen_npss", parts["npss"])
        pl_module.log("val/gen_std_ratio", parts["std_ratio"])
        if "drift" in parts:
            pl_module.log("val/gen_drift", parts["drift"])
        if not self._ar_logged:
            pl_module.log("val/gen_score_ar", self._ar_score(trainer, seeds, real))
            self._ar_logged = True

    def _log_realism(self, trainer: L.Trainer, pl_module: L.LightningModule, model: Any) -> None:
        """``measures="realism"``: score every validation clip's generations as the motion
        report does, against the least-squares AR's (computed once)."""
        from seqboltz.eval._sequence_report import (
            SplitView,
            ar_row,
            motion_reference,
            realism_score,
            score_generations,
        )

        dm: Any = trainer.datamodule  # type: ignore[attr-defined]
        if dm is None or not hasattr(dm, "clips"):
            raise TypeError("GenerationMetric needs a sequence DataModule (with clips())")
        view = SplitView(dm, "val")
        if self._reference is None:
            self._reference = motion_reference(view)
        ref = self._reference
        order = int(model.order)
        starts = np.stack([c[:order] for c in ref.test])
        total = max(self.frames, self.horizon, ref.window)  # at least one spectral window
        seeds = range(self.seed, self.seed + self.seeds)
        style = None
        if int(getattr(model, "n_style", 0)) > 0:  # each clip's mean validation style
            style = np.stack([s.mean(0) for s in view.style_clips("test")])
        param = model.reference_parameter()
        gens = []
        for s in seeds:
            kwargs: dict[str, Any] = {}
            if style is not None:
                kwargs["style"] = torch.from_numpy(style).to(param)
            out = model.generate(
                torch.from_numpy(starts).to(param), total, self.gibbs_steps, seed=s, **kwargs
            )
            gens.append(out.double().cpu().numpy())
        generated = np.stack(gens)  # (S, C, T, D)
        row = score_generations("model", generated, ref, n_boot=1)
        if self._ar_row is None:
            self._ar_row = ar_row(dm, ref, order, list(seeds), total, n_boot=1)
        score = realism_score(row, self._ar_row)
        drift = math.inf
        if math.isfinite(score):
            tail = generated[:, :, -min(self.frames, total) :].reshape(-1, generated.shape[-1])
            drift = drift_penalty(np.concatenate(dm.clips("val")), tail)
        value = score + drift if math.isfinite(score + drift) else DIVERGED_SCORE
        self.best_score = min(self.best_score, value, DIVERGED_SCORE)
        pl_module.log("val/gen_score", min(value, DIVERGED_SCORE), prog_bar=True)
        pl_module.log("val/gen_drift", drift if math.isfinite(drift) else DIVERGED_SCORE)
        for key in ("npss", "pskl", "frechet", "foot_skating"):
            if math.isfinite(row.get(key, math.nan)):
                pl_module.log(f"val/gen_{key}", float(row[key]))
                pl_module.log(f"val/gen_{key}_ar", float(self._ar_row[key]))

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Say so when every validation generation of the fit diverged or exploded: the
        checkpoints then hold no usable model, whatever the exit status."""
        if self.best_score >= DIVERGED_SCORE and math.isfinite(self.best_score):
            ratio = self._last_parts.get("std_ratio", math.nan)
            detail = f"; last median std ratio {ratio:.3g}" if math.isfinite(ratio) else ""
            warnings.warn(
                "GenerationMetric: every validation generation diverged or exploded (score "
                f"{DIVERGED_SCORE:g}{detail} against the validation clips): the checkpoints of "
                "this fit are not usable models",
                stacklevel=2,
            )

    def _score(
        self, trainer: L.Trainer, real: np.ndarray, generated: np.ndarray
    ) -> tuple[float, dict[str, float]]:
        """:func:`generation_score` of the first ``frames``, plus the drift penalty of the
        last ``frames`` when the generations ran on to the horizon."""
        n = real.shape[1]
        score, parts = generation_score(real, generated[:, :n])
        if generated.shape[1] > n and score < DIVERGED_SCORE:
            dm = trainer.datamodule  # type: ignore[attr-defined]
            reference = np.concatenate(dm.clips("val"))
            tail = generated[:, -n:].reshape(-1, generated.shape[-1])
            drift = drift_penalty(reference, tail)
            parts["drift"] = drift
            score = DIVERGED_SCORE if not math.isfinite(drift) else min(score + drift, 1e3)
        return score, parts

    def _ar_score(self, trainer: L.Trainer, seeds: np.ndarray, real: np.ndarray) -> float:
        from seqboltz.eval._sequence import fit_linear_ar

        dm = trainer.datamodule  # type: ignore[attr-defined]
        ar = fit_linear_ar(dm.clips("train"), seeds.shape[1])
        generated = ar.generate(seeds, max(real.shape[1], self.horizon), seed=self.seed)
        return self._score(trainer, real, generated)[0]


class SpeechGenerationMetric(L.Callback):
    """Log ``val/mcd_db`` (and ``val/gv_ratio``): the free-running MCD of a text-to-speech
    model on the validation utterances, at each validation.

    The acoustic model's one-step error is a poor guide to the speech it makes: on CMU
    ARCTIC ``slt`` the hybrid residual CRBM's one-step error of its mean was lowest at the
    linear start and rose all through training, while the MCD of whole utterances run free
    fell (``benchmarks/RESULTS.md``, session 11). This callback generates every validation
    utterance from its first ``order`` frames with its own linguistic controls (natural
    durations), the way ``seqboltz synthesize --text`` speaks (the model's generation path,
    MLPG over Δ and Δ² where the data carry them), and scores it against the recording
    (:func:`~seqboltz.eval._speech_report.free_running_mcd`), so ``ModelCheckpoint(monitor=
    "val/mcd_db")`` keeps the checkpoint that speaks best. A generation that is not finite
    scores :data:`DIVERGED_SCORE`.

    Needs a DataModule with ``clips``, ``control_clips``, ``prompts``, ``features`` (a
    :class:`~seqboltz.speech.WorldFeatures`) and ``delta_columns`` when ``deltas`` is set,
    as :class:`~seqboltz.data.TTSDataModule`. Its ``"val"`` split is the test prompts when
    ``val_fraction`` is 0: give it a validation split (the recipe's 5 %) before selecting on
    this score.

    Args:
        gibbs_steps: ``k`` per frame (the card's; ``generation="mean"`` ignores it).
        seed: the generation seed.
        max_utterances: at most this many validation utterances (the first ones).
    """

    def __init__(self, gibbs_steps: int = 1, seed: int = 0, max_utterances: int = 64) -> None:
        if gibbs_steps < 1 or max_utterances < 1:
            raise ValueError(
                "SpeechGenerationMetric: need gibbs_steps >= 1 and max_utterances >= 1; got "
                f"{gibbs_steps}, {max_utterances}"
            )
        self.gibbs_steps, self.seed, self.max_utterances = gibbs_steps, seed, max_utterances

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        from seqboltz.eval._speech_report import free_running_mcd

        if trainer.sanity_checking:
            return
        model: Any = getattr(pl_module, "energy_model", None)
        dm: Any = trainer.datamodule  # type: ignore[attr-defined]
        needed = ("clips", "control_clips", "prompts", "features")
        if model is None or not all(hasattr(dm, name) for name in needed):
            raise ValueError(
                "SpeechGenerationMetric needs a sequence model and a DataModule with clips(), "
                f"control_clips(), prompts() and features (a TTSDataModule); got "
                f"{type(model).__name__} and {type(dm).__name__}"
            )
        n = self.max_utterances
        clips, controls = dm.clips("val")[:n], dm.control_clips("val")[:n]
        real = [p.frames for p in dm.prompts("val")[:n]]
        columns = list(dm.delta_columns) if getattr(dm, "deltas", False) else None
        was_training = model.training
        model.eval()
        try:
            mcd, gv = free_running_mcd(
                model, clips, controls, real, dm.features, columns, self.gibbs_steps, self.seed
            )
        finally:
            model.train(was_training)
        finite = np.isfinite(mcd).all()
        pl_module.log("val/mcd_db", float(mcd.mean()) if finite else DIVERGED_SCORE)
        pl_module.log("val/gv_ratio", float(np.mean(gv)) if finite else math.nan)
