"""Benchmark: text-to-speech on the Asterisk prompts, held-out prompts synthesised from text.

One process, on :class:`~seqboltz.data.TTSDataModule` (8 kHz, PocketSphinx alignments,
whole prompts held out by a hash of their text):

1. **Alignment sanity** on the training prompts: how quiet the aligned pauses are, how often
   WORLD finds voicing in vowels and in voiceless obstruents, the agreement of WORLD's voicing
   with the phone classes — against the same phones with every boundary moved by ±50 ms and
   spread evenly over the speech.
2. **Durations**: duration RMSE on the held-out prompts of the ridge duration model against
   the mean per phone (edge silences left out).
3. **Acoustics with natural (aligned) durations**, every model started from the prompt's first
   ``order`` real frames and run free over the rest with the prompt's linguistic controls:
   the residual CRBM (:class:`~seqboltz.models.ResidualCRBM` over [history, controls], started
   at the least-squares fit, linear part frozen; its conditional mean by mean-field and
   Taylor's sampler with and without the visible noise), optionally the plain conditional RBM
   (``--systems crbm``), a linear least-squares model with the same inputs (history +
   controls), and WORLD's own analysis–synthesis (the ceiling). MCD (dB, c₀ excluded), F0
   RMSE (Hz, frames voiced in both), voicing error, global-variance ratio of the
   mel-cepstrum, voiced share and frame-energy spread against the real prompts', clipped
   samples. Every variant (linear history noise, residual CRBM configuration and generation
   mode) is scored on the **validation** prompts; each family's best by MCD (with every
   generation mode of the chosen residual CRBM) is scored once on the **test** prompts.
4. **Intelligibility** (:mod:`seqboltz.speech._recognize`): the test prompts synthesised from
   their text with *predicted* durations (ridge duration model; ``--intel-durations natural``:
   the aligned ones, to separate the durations' errors from the spectra's), started from the
   training prompts' mean first frames (silence), and the real recordings, decoded by PocketSphinx:
   prompt identification with a grammar of every prompt text, and WER with its general
   language model, with 95 % bootstrap intervals over prompts of the WER and (paired) of its
   ratio to the real recordings'. PocketSphinx also aligned the training corpus.

Run from the repository root::

    python benchmarks/tts.py [--max-utterances N] [--rcrbm hidden=128,epochs=4 ...]
        [--systems rcrbm crbm] [--ckpt CKPT] [--json PATH]

WAVs and spectrogram pictures of two held-out prompts go to ``--out``.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
import time
import warnings
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning.pytorch.callbacks import Callback

sys.path.insert(0, str(Path(__file__).resolve().parent))  # `_common` when run as a script

from _common import dump_json, markdown_table, quiet_trainer, seed_all, set_threads

from seqboltz.data import TTSDataModule, TTSPrompt
from seqboltz.models import ConditionalRBM, ResidualCRBM
from seqboltz.speech import (
    WorldFeatures,
    log_mel_spectrogram,
    mel_cepstral_distortion,
    read_audio,
    write_wav,
)
from seqboltz.speech._align import PhoneAlignment, alignment_sanity
from seqboltz.speech._duration import DurationModel, MeanDurationModel, duration_rmse
from seqboltz.training import RBMSystem

_DB = 20.0 / math.log(10.0)
Gen = Callable[[list[np.ndarray], list[np.ndarray]], list[np.ndarray]]
"""A generation: (seed frames per prompt, controls per prompt) → standardised frames."""


# -- 1. alignment ---------------------------------------------------------------------------
def alignment_report(prompts: list[TTSPrompt], wf: WorldFeatures) -> dict[str, dict[str, float]]:
    """Mean :func:`alignment_sanity` over prompts, for the alignment and three worse ones."""
    cols = (wf.lf0_index, wf.vuv_index)
    out: dict[str, list[dict[str, float]]] = {"aligned": [], "-50 ms": [], "+50 ms": [], "even": []}
    for p in prompts:
        al = p.alignment
        out["aligned"].append(alignment_sanity(al, p.frames, wf.frame_period, cols))
        for name, shift in (("-50 ms", -0.05), ("+50 ms", 0.05)):
            starts = al.starts.copy()
            starts[1:-1] = np.clip(starts[1:-1] + shift, 0.0, al.duration)
            starts = np.maximum.accumulate(starts)
            moved = PhoneAlignment(al.utterance, starts, al.ends, al.duration)
            out[name].append(alignment_sanity(moved, p.frames, wf.frame_period, cols))
        n = len(al.starts)
        lo, hi = (al.starts[1], al.starts[-1]) if n > 2 else (0.0, al.duration)
        even = np.r_[0.0, np.linspace(lo, hi, n - 1)] if n > 1 else al.starts
        out["even"].append(
            alignment_sanity(
                PhoneAlignment(al.utterance, even, al.ends, al.duration),
                p.frames,
                wf.frame_period,
                cols,
            )
        )
    return {k: {m: float(np.nanmean([r[m] for r in v])) for m in v[0]} for k, v in out.items()}


# -- 3. acoustic models ---------------------------------------------------------------------
def design(
    clips: list[np.ndarray], controls: list[np.ndarray], order: int
) -> tuple[np.ndarray, np.ndarray]:
    """Rows ``[v_{t-1} … v_{t-order}, c_t, 1]`` ``(N, order·D + C + 1)`` and targets ``v_t``
    ``(N, D)`` of every prompt's frames from ``order`` on."""
    xs, ys = [], []
    for v, c in zip(clips, controls, strict=True):
        t = v.shape[0]
        hist = np.concatenate([v[order - k : t - k] for k in range(1, order + 1)], axis=1)
        xs.append(np.concatenate([hist, c[order:], np.ones((t - order, 1))], axis=1))
        ys.append(v[order:])
    return np.concatenate(xs), np.concatenate(ys)


def fit_linear(
    clips: list[np.ndarray],
    controls: list[np.ndarray],
    order: int,
    ridge: float = 1e-3,
    history_noise: float = 0.0,
) -> np.ndarray:
    """Least squares ``v_t ≈ W [v_{t-1} … v_{t-order}, c_t, 1]``; returns ``W`` ``(F, D)``.

    ``history_noise`` σ: the expected least squares under Gaussian noise of std σ on the
    history inputs, i.e. ``N σ²`` added to the history block of the Gram matrix (the linear
    counterpart of the CRBM's noisy-history training)."""
    x, y = design(clips, controls, order)
    penalty = np.full(x.shape[1], ridge)
    penalty[: order * clips[0].shape[1]] += x.shape[0] * history_noise**2
    gram = x.T @ x + np.diag(penalty)
    return np.asarray(np.linalg.solve(gram, x.T @ y))


def generate_linear_batch(
    w: np.ndarray, seeds: list[np.ndarray], controls: list[np.ndarray]
) -> list[np.ndarray]:
    """:func:`generate_linear` of each prompt."""
    return [generate_linear(w, z, c) for z, c in zip(seeds, controls, strict=True)]


def generate_linear(w: np.ndarray, seed: np.ndarray, controls: np.ndarray) -> np.ndarray:
    """Free-running generation from the first ``order`` frames of ``seed``, ``(T, D)``."""
    order = seed.shape[0]
    frames = [f for f in seed]
    for t in range(order, controls.shape[0]):
        hist = np.concatenate([frames[t - k] for k in range(1, order + 1)])
        frames.append(np.concatenate([hist, controls[t], [1.0]]) @ w)
    return np.stack(frames)


def train_crbm(dm: TTSDataModule, hidden: int, epochs: int, lr: float, seed: int) -> Any:
    seed_all(seed)
    model = ConditionalRBM(dm.n_features, hidden, order=dm.order, n_controls=dm.n_controls)
    system = RBMSystem(
        model,
        lr=lr,
        momentum=0.9,
        initial_momentum=0.5,
        momentum_warmup_epochs=1,
        weight_decay=2e-4,
        mean_field_negative=True,
        eval_log_z="none",
    )
    quiet_trainer(epochs, [_EpochLog()]).fit(system, dm)
    return system.energy_model


class _EpochLog(Callback):
    """One line per training epoch on stderr (progress of long runs)."""

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
        print(f"epoch {trainer.current_epoch}: {metrics}", file=sys.stderr, flush=True)


def _padded(controls: list[np.ndarray]) -> np.ndarray:
    """``(B, T_max, C)`` with zeros after each sequence's end."""
    t_max = max(c.shape[0] for c in controls)
    out = np.zeros((len(controls), t_max, controls[0].shape[1]))
    for b, c in enumerate(controls):
        out[b, : c.shape[0]] = c
    return out


@torch.no_grad()
def generate_crbm_mean(
    model: ConditionalRBM, seeds: list[np.ndarray], controls: list[np.ndarray], steps: int
) -> list[np.ndarray]:
    """Conditional-mean generation of a batch of prompts: per frame, ``steps`` mean-field
    passes ``v ← E[v | p(h | v)]`` from the previous frame (no sampling)."""
    m = model.to(torch.float64)
    order = seeds[0].shape[0]
    c = torch.from_numpy(_padded(controls))
    window = torch.from_numpy(np.stack([s[::-1] for s in seeds]).copy())  # most recent first
    out = [window[:, order - 1 - k] for k in range(order)]
    for t in range(order, c.shape[1]):
        params = m.frame_params({"history": window, "controls": c[:, t]})
        v = window[:, 0]
        for _ in range(steps):
            v = m.visible_mean(torch.sigmoid(m.hidden_input(v, params)), params)
        out.append(v)
        window = torch.cat([v[:, None], window[:, :-1]], dim=1)
    frames = torch.stack(out, dim=1).numpy()
    return [frames[b, : ctl.shape[0]] for b, ctl in enumerate(controls)]


def generate_crbm(
    model: ConditionalRBM, seeds: list[np.ndarray], controls: list[np.ndarray], gibbs: int
) -> list[np.ndarray]:
    """Taylor's sampler over a batch of prompts (sequence ``i`` draws its own noise)."""
    order = seeds[0].shape[0]
    c = _padded(controls)
    gen = (
        model.generate(
            torch.from_numpy(np.stack(seeds)),
            c.shape[1] - order,
            gibbs_steps=gibbs,
            controls=torch.from_numpy(c[:, order:]),
            seed=0,
        )
        .double()
        .numpy()
    )
    return [
        np.concatenate([s, gen[b, : ctl.shape[0] - order]])
        for b, (s, ctl) in enumerate(zip(seeds, controls, strict=True))
    ]


def acoustic_metrics(real: np.ndarray, gen: np.ndarray, wf: WorldFeatures) -> dict[str, float]:
    """Distances of raw generated WORLD frames from the real ones (same length)."""
    n = min(real.shape[0], gen.shape[0])
    real, gen = real[:n], gen[:n]
    mc = wf.mcep_slice
    vr, vg = real[:, wf.vuv_index] > 0.5, gen[:, wf.vuv_index] > 0.5
    both = vr & vg
    f0r, f0g = np.exp(real[:, wf.lf0_index]), np.exp(gen[:, wf.lf0_index])
    var_r = real[:, mc][:, 1:].var(axis=0)
    var_g = gen[:, mc][:, 1:].var(axis=0)
    return {
        "mcd_db": float(mel_cepstral_distortion(real[:, mc], gen[:, mc]).mean()),
        "f0_rmse_hz": float(np.sqrt(np.mean((f0r[both] - f0g[both]) ** 2)))
        if both.any()
        else math.nan,
        "vuv_error": float(np.mean(vr != vg)),
        "gv_ratio": float(np.mean(var_g / var_r)),
        "voiced": float(vg.mean()),
        "voiced_real": float(vr.mean()),
        "energy_spread_db": float(gen[:, 0].std() * _DB),
        "energy_spread_real_db": float(real[:, 0].std() * _DB),
    }


def clipped_share(wave: np.ndarray) -> float:
    return float(np.mean(np.abs(wave) >= 0.999))


# -- residual CRBM and scoring --------------------------------------------------------------
def train_rcrbm(dm: TTSDataModule, cfg: dict[str, Any], seed: int) -> ResidualCRBM:
    """A :class:`ResidualCRBM` over [history, controls], started at the least-squares fit
    (history noise ``cfg["start_noise"]`` in the normal equations), linear part frozen; the
    history reaches the hidden units unless ``cfg["hist_hidden"]`` is 0; ``data_noise``: the
    history noise of the training windows; ``dad``: the share of training windows whose
    history is the linear start's own free-running output (data as demonstrator);
    ``mean_lr`` > 0: hybrid training, the model's conditional mean (``mean_passes``
    mean-field passes) fitted beside CD by :class:`~seqboltz.training.FitConditionalMean` at
    that Adam rate."""
    seed_all(seed)
    model = ResidualCRBM(
        dm.n_features,
        cfg["hidden"],
        order=dm.order,
        n_controls=dm.n_controls,
        ridge=1e-3,
        start_history_noise=cfg["start_noise"],
        train_linear=False,
        history_to_hidden=bool(cfg.get("hist_hidden", 1)),
        init_std=0.01,
    )
    system = RBMSystem(
        model,
        k=cfg["k"],
        lr=cfg["lr"],
        momentum=0.9,
        initial_momentum=0.5,
        momentum_warmup_epochs=1,
        weight_decay=2e-4,
        mean_field_negative=True,
        eval_log_z="none",
    )
    dm.history_noise = cfg.get("data_noise", 0.0)
    if cfg.get("dad", 0.0) > 0:  # histories from the start's own free-running output
        clips, controls = dm.clips("train"), dm.control_clips("train")
        w = fit_linear(clips, controls, dm.order, ridge=1e-3, history_noise=cfg["start_noise"])
        own = [generate_linear(w, z[: dm.order], c) for z, c in zip(clips, controls, strict=True)]
        dm.set_train_history(own, cfg["dad"])
    callbacks: list[Callback] = [_EpochLog()]
    if cfg.get("mean_lr", 0.0) > 0:  # hybrid: the conditional mean fitted beside CD
        from seqboltz.training import FitConditionalMean

        callbacks.append(FitConditionalMean(lr=cfg["mean_lr"], passes=int(cfg["mean_passes"])))
    quiet_trainer(cfg["epochs"], callbacks).fit(system, dm)
    dm.history_noise = 0.0
    dm.set_train_history(None)
    return system.energy_model  # type: ignore[return-value]


@torch.no_grad()
def generate_rcrbm_mean(
    model: ResidualCRBM, seeds: list[np.ndarray], controls: list[np.ndarray], steps: int
) -> list[np.ndarray]:
    """Conditional mean of the residual CRBM by mean-field, per frame from the linear
    prediction (:meth:`~seqboltz.models.ResidualCRBM.conditional_mean`, ``steps`` passes),
    fed back as history."""
    m = model.to(torch.float64)
    order = seeds[0].shape[0]
    c = torch.from_numpy(_padded(controls))
    window = torch.from_numpy(np.stack([s[::-1] for s in seeds]).copy())
    out = [window[:, order - 1 - k] for k in range(order)]
    for t in range(order, c.shape[1]):
        v = m.conditional_mean({"history": window, "controls": c[:, t]}, passes=steps)
        out.append(v)
        window = torch.cat([v[:, None], window[:, :-1]], dim=1)
    frames = torch.stack(out, dim=1).numpy()
    return [frames[b, : ctl.shape[0]] for b, ctl in enumerate(controls)]


@torch.no_grad()
def generate_rcrbm_mc_mean(
    model: ResidualCRBM,
    seeds: list[np.ndarray],
    controls: list[np.ndarray],
    steps: int,
    chains: int,
    seed: int = 0,
) -> list[np.ndarray]:
    """Conditional mean of the residual CRBM by Monte Carlo, per frame: ``chains`` block Gibbs
    chains over ``(r, h)`` (``h ~ p(h | r)``, ``r ~ N(W h, I)``, from ``r = 0``, ``steps``
    steps), the frame ``L(â + mean over chains of W h)`` (Rao–Blackwellised: ``E[r | h] = Wh``)
    fed back as history: the model's own ``E[v | x, c]`` without the mean-field fixed point."""
    m = model.to(torch.float64)
    g = torch.Generator().manual_seed(seed)
    order, b = seeds[0].shape[0], len(seeds)
    c = torch.from_numpy(_padded(controls))
    window = torch.from_numpy(np.stack([z[::-1] for z in seeds]).copy())
    out = [window[:, order - 1 - k] for k in range(order)]
    for t in range(order, c.shape[1]):
        params = m.frame_params({"history": window, "controls": c[:, t]})
        a_hat = params.visible_bias.repeat_interleave(chains, 0)
        b_hat = params.hidden_bias.repeat_interleave(chains, 0)
        r = torch.zeros_like(a_hat)
        for _ in range(steps):
            p_h = torch.sigmoid(b_hat + r @ m.weight)
            wh = (torch.rand(p_h.shape, generator=g, dtype=p_h.dtype) < p_h).to(r) @ m.weight.T
            r = wh + torch.randn(wh.shape, generator=g, dtype=wh.dtype)
        mean_r = wh.reshape(b, chains, -1).mean(1)
        v = (params.visible_bias + mean_r) @ m.unwhiten.T
        out.append(v)
        window = torch.cat([v[:, None], window[:, :-1]], dim=1)
    frames = torch.stack(out, dim=1).numpy()
    return [frames[i, : ctl.shape[0]] for i, ctl in enumerate(controls)]


def rcrbm_generators(model: ResidualCRBM, gibbs: int, mc_chains: int = 0) -> dict[str, Any]:
    """The residual CRBM's ways to generate: conditional mean, and Taylor's sampler with the
    model's visible noise (1) and without it (0)."""

    def sampler(noise: float) -> Any:
        def run(seeds: list[np.ndarray], controls: list[np.ndarray]) -> list[np.ndarray]:
            model.visible_noise, kept, model.generation = noise, model.generation, "sampler"
            try:
                return generate_crbm(model, seeds, controls, gibbs)  # type: ignore[arg-type]
            finally:
                model.visible_noise, model.generation = 1.0, kept

        return run

    modes = {"mean": lambda s, c: generate_rcrbm_mean(model, s, c, gibbs)}
    if gibbs != 1:  # the form generation="mean" and FitConditionalMean use
        modes["mean, one pass"] = lambda s, c: generate_rcrbm_mean(model, s, c, 1)
    modes |= {
        "sampler": sampler(1.0),
        "sampler, visible noise 0": sampler(0.0),
    }
    if mc_chains:
        modes[f"Monte Carlo mean ({mc_chains} chains)"] = lambda s, c: generate_rcrbm_mc_mean(
            model, s, c, gibbs, mc_chains
        )
    return modes


def mean_metrics(rows: list[dict[str, float]]) -> dict[str, float]:
    return {m: float(np.nanmean([r[m] for r in rows])) for m in rows[0]}


def score_rows(
    real: list[np.ndarray], gens: list[np.ndarray], wf: WorldFeatures
) -> list[dict[str, float]] | None:
    """:func:`acoustic_metrics` per prompt of standardised generations (their static
    columns) against raw real frames; ``None`` if a generation is not finite."""
    rows = []
    for r, g in zip(real, gens, strict=True):
        raw = wf.inverse_transform(g[:, : wf.dim])
        if not np.isfinite(raw).all():
            return None
        rows.append(acoustic_metrics(r, raw, wf))
    return rows


def score_frames(
    real: list[np.ndarray], gens: list[np.ndarray], wf: WorldFeatures
) -> dict[str, float]:
    """Mean :func:`acoustic_metrics` of standardised generations against raw real frames."""
    rows = score_rows(real, gens, wf)
    return {"mcd_db": math.inf} if rows is None else mean_metrics(rows)


def bootstrap_means(
    rows: list[dict[str, float]], n_resamples: int = 2000, seed: int = 0
) -> dict[str, list[float]]:
    """95 % interval of each metric's mean over prompts (bootstrap over prompts)."""
    idx = np.random.default_rng(seed).integers(0, len(rows), size=(n_resamples, len(rows)))
    out = {}
    for m in rows[0]:
        values = np.array([r[m] for r in rows])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # F0 RMSE is NaN on prompts with no voiced overlap
            means = np.nanmean(values[idx], axis=1)
        out[m] = [float(x) for x in np.nanpercentile(means, [2.5, 97.5])]
    return out


# -- dynamic features and MLPG --------------------------------------------------------------
def free_running_variances(
    gen: Gen, clips: list[np.ndarray], controls: list[np.ndarray], order: int
) -> np.ndarray:
    """Per-column variances ``(D + 2K,)`` for MLPG: the variance of a model's errors when it
    runs free (from each prompt's first ``order`` frames) over training prompts, per static,
    Δ and Δ² column. A free-running model's static error grows with the distance from the
    seed, so its one-step residual variance understates how little its statics can be trusted
    against its deltas (on validation the two gave 6.519 and 6.520 dB for the linear model,
    history noise 2: benchmarks/RESULTS.md, session 6)."""
    gens = gen([z[:order] for z in clips], controls)
    errors = np.concatenate([g[order:] - z[order:] for g, z in zip(gens, clips, strict=True)])
    return np.asarray(errors.var(axis=0))


def apply_mlpg(frames: np.ndarray, variances: np.ndarray, columns: list[int]) -> np.ndarray:
    """Statics of a generated ``(T, D + 2K)`` sequence replaced by MLPG's trajectory from its
    static, Δ and Δ² predictions (``variances``: the per-column ones, ``(D + 2K,)``)."""
    from seqboltz.speech._mlpg import mlpg

    k = len(columns)
    d = frames.shape[1] - 2 * k
    means = np.stack([frames[:, columns], frames[:, d : d + k], frames[:, d + k :]], axis=1)
    var = np.stack([variances[columns], variances[d : d + k], variances[d + k :]])
    out = frames.copy()
    out[:, columns] = mlpg(means, var)
    return out


def global_variance(frames: list[np.ndarray], wf: WorldFeatures) -> np.ndarray:
    """Mean over utterances of each mel-cepstral coefficient's variance within the utterance
    (c1…; Toda & Tokuda 2007's global variance), from raw WORLD frames."""
    mc = wf.mcep_slice
    return np.asarray(np.mean([f[:, mc][:, 1:].var(axis=0) for f in frames], axis=0))


def scale_to_gv(raw: np.ndarray, gv: np.ndarray, wf: WorldFeatures) -> np.ndarray:
    """Raw frames with each mel-cepstral coefficient c1… scaled about its utterance mean so
    that its variance within the utterance is ``gv`` (a GV post-filter; c0, F0 and
    aperiodicity untouched)."""
    mc = wf.mcep_slice
    out = raw.copy()
    c = out[:, mc.start + 1 : mc.stop]
    mean = c.mean(axis=0)
    out[:, mc.start + 1 : mc.stop] = mean + (c - mean) * np.sqrt(gv / np.maximum(c.var(0), 1e-12))
    return out


def predicted_controls(
    prompts: list[TTSPrompt], durations: DurationModel
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per prompt: phone durations from the duration model and their frame-level controls."""
    from seqboltz.speech._text import frame_features

    durs = [durations.predict(p.alignment.utterance) for p in prompts]
    return durs, [
        frame_features(p.alignment.utterance, d) for p, d in zip(prompts, durs, strict=True)
    ]


def intelligibility(
    waves: dict[str, list[np.ndarray]],
    texts: list[str],
    all_texts: list[str],
    rate: int,
    wer_prompts: int,
) -> dict[str, dict[str, float]]:
    """Prompt identification (grammar of every prompt text) on every prompt, and WER
    (general LM) on the first ``wer_prompts`` (free decoding is slower than real time).

    Identification is given strictly (the recognised sentence is the prompt's words), up to
    homophones (a sentence the dictionary pronounces the same: "four" for "for"), and
    separately for prompts of one or two words (digits, letters, ordinals) and longer ones."""
    from seqboltz.speech._recognize import PromptRecognizer, prompt_words, word_error_rate

    rec = PromptRecognizer(all_texts)
    out: dict[str, dict[str, Any]] = {}
    short = [len(prompt_words(t)) <= 2 for t in texts]
    for name, ws in waves.items():
        hits, homophone, hyps = [], [], []
        errors: list[int] = []
        words: list[int] = []
        for i, (w, text) in enumerate(zip(ws, texts, strict=True)):
            hyp = rec.identify(w, rate)
            hyps.append(" ".join(hyp))
            hits.append(hyp == prompt_words(text))
            homophone.append(rec.same_prompt(hyp, prompt_words(text)))
            if i < wer_prompts:
                e, n = word_error_rate(prompt_words(text), rec.transcribe(w, rate))
                errors, words = [*errors, e], [*words, n]
        h, s_ = np.array(hits), np.array(short)
        out[name] = {
            "identified": float(h.mean()),
            "identified_homophones": float(np.mean(homophone)),
            "identified_short": float(h[s_].mean()) if s_.any() else math.nan,
            "identified_long": float(h[~s_].mean()) if (~s_).any() else math.nan,
            "short_prompts": int(s_.sum()),
            "wer": sum(errors) / max(sum(words), 1),
            "wer_errors": errors,
            "wer_words": words,
            "prompts": len(ws),
            "wer_prompts": min(wer_prompts, len(ws)),
            "hypotheses": hyps,
        }
        print(
            f"recognised {name}: "
            + str({k: v for k, v in out[name].items() if k not in HIDDEN_KEYS}),
            file=sys.stderr,
            flush=True,
        )
    wer_intervals(out)
    return out


HIDDEN_KEYS = ("hypotheses", "wer_errors", "wer_words")


def wer_intervals(
    out: dict[str, dict[str, Any]], reference: str = "real recordings", n_resamples: int = 2000
) -> None:
    """Adds to each system of :func:`intelligibility`'s ``out`` a 95 % bootstrap interval of
    its WER (``Σ errors / Σ words`` over resampled prompts) and, paired (the same resampled
    prompts), of its WER's ratio to ``reference``'s."""
    if reference not in out or not out[reference]["wer_words"]:
        return
    ref_e = np.array(out[reference]["wer_errors"], dtype=float)
    ref_n = np.array(out[reference]["wer_words"], dtype=float)
    idx = np.random.default_rng(0).integers(0, len(ref_e), size=(n_resamples, len(ref_e)))
    ref_wer = ref_e[idx].sum(axis=1) / np.maximum(ref_n[idx].sum(axis=1), 1)
    for v in out.values():
        e = np.array(v["wer_errors"], dtype=float)
        n = np.array(v["wer_words"], dtype=float)
        if len(e) != len(ref_e):
            continue
        wer = e[idx].sum(axis=1) / np.maximum(n[idx].sum(axis=1), 1)
        v["wer_ci"] = [float(x) for x in np.percentile(wer, [2.5, 97.5])]
        v["wer_ratio"] = v["wer"] / out[reference]["wer"] if out[reference]["wer"] else math.nan
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = wer / ref_wer  # inf where a resample has no real errors
        ratio = ratio[~np.isnan(ratio)]  # 0/0: a resample with no words wrong in either
        # nearest rank, not interpolation: the upper end may be inf (no real errors drawn)
        v["wer_ratio_ci"] = [float(x) for x in np.percentile(ratio, [2.5, 97.5], method="nearest")]


# -- main -----------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-utterances", type=int, default=None)
    parser.add_argument(
        "--path", default=None, help="a folder of recordings (default: the Asterisk prompts)"
    )
    parser.add_argument("--transcripts", default=None, help="its `name: text` transcripts")
    parser.add_argument(
        "--held-out-fraction", type=float, default=0.1, help="share of prompts held out for test"
    )
    parser.add_argument("--val-fraction", type=float, default=0.05, help="validation prompts")
    parser.add_argument("--systems", nargs="*", default=["rcrbm"], choices=["crbm", "rcrbm"])
    parser.add_argument(
        "--deltas",
        action="store_true",
        help="frames with Δ and Δ² (TTSDataModule(deltas=True)); adds MLPG generation modes and "
        "a statics-only linear model",
    )
    parser.add_argument(
        "--mlpg-prompts", type=int, default=40, help="training prompts for MLPG's variances"
    )
    parser.add_argument("--epochs", type=int, default=10, help="CRBM epochs")
    parser.add_argument("--hidden", type=int, default=256, help="CRBM hidden units")
    parser.add_argument("--lr", type=float, default=0.005, help="CRBM learning rate")
    parser.add_argument("--order", type=int, default=3)
    parser.add_argument(
        "--history-noise",
        type=float,
        nargs="+",
        default=[0.0, 0.5, 1.0, 2.0],
        help="history noise of the linear model (selected on validation); CRBM: its training",
    )
    parser.add_argument(
        "--rcrbm",
        nargs="+",
        default=["hidden=128,epochs=4,lr=0.001,k=1,start_noise=1.0"],
        help="residual CRBM configurations (key=value,...), selected on validation",
    )
    parser.add_argument("--gibbs", type=int, default=10, help="Gibbs steps per frame")
    parser.add_argument(
        "--mc-chains", type=int, default=0, help="chains of the Monte Carlo mean (0: not scored)"
    )
    parser.add_argument(
        "--no-samplers", action="store_true", help="score the residual CRBM's means only"
    )
    parser.add_argument("--max-test", type=int, default=None, help="held-out prompts to score")
    parser.add_argument("--max-val", type=int, default=None, help="validation prompts to score")
    parser.add_argument(
        "--ckpt", nargs="*", default=[], help="residual CRBM checkpoints to score too"
    )
    parser.add_argument("--save-models", default=None, help="save each trained residual CRBM")
    parser.add_argument("--no-test", action="store_true", help="stop after validation")
    parser.add_argument("--no-intelligibility", action="store_true")
    parser.add_argument(
        "--intel-gv",
        action="store_true",
        help="also decode every system with its mel-cepstra scaled, utterance by utterance, "
        "to the training prompts' global variance (Toda & Tokuda 2007's GV, as a post-filter)",
    )
    parser.add_argument(
        "--intel-postfilter",
        type=float,
        nargs="*",
        default=[],
        help="also decode every system through the mel-cepstral formant-emphasis post-filter "
        "with each of these betas (HTS/Merlin's, pf_coef = 1 + beta)",
    )
    parser.add_argument(
        "--intel-samplers",
        action="store_true",
        help="decode the samplers' speech too (noisy speech decodes several times slower)",
    )
    parser.add_argument(
        "--wer-prompts", type=int, default=20, help="test prompts decoded freely for WER"
    )
    parser.add_argument(
        "--intel-durations",
        choices=["predicted", "natural"],
        default="predicted",
        help="durations of the decoded synthetic speech: the duration model's (from text) or "
        "the aligned ones (to tell the durations' share of the WER from the spectra's)",
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/tts_bench")
    parser.add_argument("--figures", default="benchmarks/figures")
    parser.add_argument("--figure-tag", default="tts", help="figure names: TAG_<prompt>.png")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    set_threads(args.threads)
    logging.getLogger("lightning").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    started = time.perf_counter()

    dm = TTSDataModule(
        path=args.path,
        transcripts=args.transcripts,
        held_out_fraction=args.held_out_fraction,
        order=args.order,
        max_utterances=args.max_utterances,
        val_fraction=args.val_fraction,
        batch_size=256,
        deltas=args.deltas,
    )
    dm.prepare_data()
    dm.setup()
    wf = dm.features
    assert wf is not None
    train, val, test = dm.prompts("train"), dm.prompts("val"), dm.prompts("test")
    val, test = val[: args.max_val], test[: args.max_test]
    minutes = lambda ps: sum(p.frames.shape[0] for p in ps) * wf.frame_period / 60000  # noqa: E731
    results: dict[str, Any] = {
        "corpus": {
            "train_prompts": len(train),
            "val_prompts": len(val),
            "test_prompts": len(test),
            "skipped": len(dm.skipped),
            "train_minutes": minutes(train),
            "val_minutes": minutes(val),
            "test_minutes": minutes(test),
            "sample_rate": wf.sample_rate,
        }
    }

    # 1. alignment sanity
    results["alignment"] = alignment_report(train, wf)

    # 2. durations
    utts = [p.alignment.utterance for p in train]
    durs = [p.durations for p in train]
    t_utts = [p.alignment.utterance for p in test]
    t_durs = [p.durations for p in test]
    ridge = DurationModel(ridge=1.0, frame_period=wf.frame_period).fit(utts, durs)
    mean = MeanDurationModel().fit(utts, durs)
    results["durations"] = {
        "ridge": duration_rmse(ridge, t_utts, t_durs, wf.frame_period),
        "mean_per_phone": duration_rmse(mean, t_utts, t_durs, wf.frame_period),
    }

    # 3. acoustics: every configuration and generation mode scored on the validation prompts;
    # per family the configuration of the best mode by MCD is chosen there, and all of its
    # modes are scored once on the test prompts.
    order = dm.order
    n_static = wf.dim
    clips, controls = dm.clips("train"), dm.control_clips("train")
    v_clips, v_ctl = dm.clips("val")[: len(val)], dm.control_clips("val")[: len(val)]
    v_seeds, v_real = [z[:order] for z in v_clips], [p.frames for p in val]
    columns = dm.delta_columns if args.deltas else []
    n_var = min(len(clips), args.mlpg_prompts)

    def with_mlpg(gen: Gen) -> Gen:
        """MLPG over ``gen``'s output, with ``gen``'s own free-running error variances on
        the first ``--mlpg-prompts`` training prompts (computed on first use)."""
        cache: list[np.ndarray] = []

        def run(sd: list[np.ndarray], c: list[np.ndarray]) -> list[np.ndarray]:
            if not cache:
                cache.append(free_running_variances(gen, clips[:n_var], controls[:n_var], order))
            return [apply_mlpg(g, cache[0], columns) for g in gen(sd, c)]

        return run

    def statics_only(gen: Gen, n: int) -> Gen:  # a statics-only model fed the statics
        return lambda sd, c: gen([z[:, :n] for z in sd], c)

    families: dict[str, dict[str, dict[str, Gen]]] = {"linear": {}, "CRBM": {}, "residual CRBM": {}}
    for s in args.history_noise:
        w = fit_linear(clips, controls, order, history_noise=s)
        plain = partial(generate_linear_batch, w)
        modes: dict[str, Gen] = {"plain": plain}
        if args.deltas:
            modes["MLPG"] = with_mlpg(plain)
            w0 = fit_linear([z[:, :n_static] for z in clips], controls, order, history_noise=s)
            families["linear"][f"statics only, history noise {s}"] = {
                "plain": statics_only(partial(generate_linear_batch, w0), n_static)
            }
        families["linear"][f"{'with deltas, ' if args.deltas else ''}history noise {s}"] = modes
    results["train_seconds"] = {}
    if "crbm" in args.systems:
        for s in args.history_noise:
            tick = time.perf_counter()
            dm.history_noise = s
            crbm = train_crbm(dm, args.hidden, args.epochs, args.lr, args.seed)
            dm.history_noise = 0.0
            crbm = crbm.to(torch.float64).eval()
            results["train_seconds"][f"CRBM history noise {s}"] = time.perf_counter() - tick
            families["CRBM"][f"history noise {s}"] = {
                "sampler": partial(generate_crbm, crbm, gibbs=args.gibbs),
                "mean": partial(generate_crbm_mean, crbm, steps=args.gibbs),
            }
    if "rcrbm" in args.systems:
        for spec in args.rcrbm:
            cfg: dict[str, Any] = {"hidden": 128, "epochs": 4, "lr": 1e-3, "k": 1}
            cfg |= {"start_noise": 1.0, "data_noise": 0.0, "hist_hidden": 1, "dad": 0.0}
            cfg |= {"mean_lr": 0.0, "mean_passes": 1}
            for item in spec.split(","):
                key, _, value = item.partition("=")
                if key not in cfg:
                    raise SystemExit(f"--rcrbm: unknown key {key!r} in {spec!r}")
                cfg[key] = type(cfg[key])(float(value))
            tick = time.perf_counter()
            model = train_rcrbm(dm, cfg, args.seed).to(torch.float64).eval()
            results["train_seconds"][f"residual CRBM {spec}"] = time.perf_counter() - tick
            if args.save_models:
                from seqboltz.models import save_model

                tag = "".join(ch if ch.isalnum() else "_" for ch in spec)
                tag += "_deltas" if args.deltas else ""
                path = save_model(model, Path(args.save_models) / f"rcrbm_{tag}.ckpt")
                results.setdefault("saved", {})[spec] = str(path)
            modes = rcrbm_generators(model, args.gibbs, args.mc_chains)
            if args.no_samplers:
                modes = {k: g for k, g in modes.items() if "sampler" not in k}
            if args.deltas:
                for mode in [m for m in modes if "mean" in m]:
                    modes[f"{mode}, MLPG"] = with_mlpg(modes[mode])
            families["residual CRBM"][("with deltas, " if args.deltas else "") + spec] = modes
    for ckpt in args.ckpt:
        from seqboltz.models import load_model

        loaded = load_model(ckpt)
        if not isinstance(loaded, ResidualCRBM) or loaded.n_controls != dm.n_controls:
            raise SystemExit(f"{ckpt}: need a ResidualCRBM with {dm.n_controls} controls")
        modes = rcrbm_generators(loaded.to(torch.float64).eval(), args.gibbs, args.mc_chains)
        if args.no_samplers:
            modes = {k: g for k, g in modes.items() if "sampler" not in k}
        if loaded.n_visible == n_static < dm.n_features:
            modes = {k: statics_only(g, n_static) for k, g in modes.items()}
        elif loaded.n_visible != dm.n_features:
            raise SystemExit(f"{ckpt}: frames of {loaded.n_visible}, the data's {dm.n_features}")
        elif args.deltas:
            for mode in [m for m in modes if "mean" in m]:
                modes[f"{mode}, MLPG"] = with_mlpg(modes[mode])
        families["residual CRBM"][Path(ckpt).stem] = modes
    results["validation"] = {}
    chosen: dict[str, tuple[str, float]] = {}  # family → (configuration, best MCD)
    for family, configs in families.items():
        for config, modes in configs.items():
            for mode, gen in modes.items():
                tick = time.perf_counter()
                scores = score_frames(v_real, gen(v_seeds, v_ctl), wf)
                results["validation"][f"{family}: {config}, {mode}"] = scores
                print(
                    f"val {family}: {config}, {mode}: MCD {scores['mcd_db']:.3f} "
                    f"({time.perf_counter() - tick:.0f} s)",
                    file=sys.stderr,
                    flush=True,
                )
                if family not in chosen or scores["mcd_db"] < chosen[family][1]:
                    chosen[family] = (config, scores["mcd_db"])
    selected: dict[str, Gen] = {
        f"{family}: {config}, {mode}": gen
        for family, (config, _) in chosen.items()
        for mode, gen in families[family][config].items()
    }
    results["selected"] = list(selected)
    if args.no_test:
        results["seconds"] = time.perf_counter() - started
        results["settings"] = vars(args)
        if args.json:
            dump_json(results, args.json)
        print_tables(results)
        return results

    t_clips, t_controls = dm.clips("test")[: len(test)], dm.control_clips("test")[: len(test)]
    names = [p.name for p in test]
    seeds = [z[:order] for z in t_clips]
    generated = {label: gen(seeds, t_controls) for label, gen in selected.items()}
    systems: dict[str, list[dict[str, float]]] = {"WORLD analysis-synthesis": []}
    clipped: dict[str, list[float]] = {"WORLD analysis-synthesis": []}
    out_dir = Path(args.out)
    figure_labels = [k for k in generated if "sampler, visible noise 0" not in k]
    for i, prompt in enumerate(test):
        real = prompt.frames
        waves: dict[str, np.ndarray] = {"real (WORLD)": wf.synthesize(real)}
        reanalysed = wf.analyze(waves["real (WORLD)"])
        systems["WORLD analysis-synthesis"].append(acoustic_metrics(real, reanalysed, wf))
        clipped["WORLD analysis-synthesis"].append(clipped_share(waves["real (WORLD)"]))
        for name, gens in generated.items():
            raw = wf.inverse_transform(gens[i][:, : wf.dim])
            if not np.isfinite(raw).all():
                raise FloatingPointError(f"{name} generated non-finite frames for {names[i]}")
            systems.setdefault(name, []).append(acoustic_metrics(real, raw, wf))
            waves[name] = wf.synthesize(raw)
            clipped.setdefault(name, []).append(clipped_share(waves[name]))
        if i < 2:
            from seqboltz.viz import plot_spectrograms

            stem = names[i].replace("/", "_")
            for k, (label, wave) in enumerate(waves.items()):
                tag = "".join(ch if ch.isalnum() else "_" for ch in label.lower()).strip("_")
                write_wav(out_dir / f"{stem}_{k}_{tag[:60]}.wav", wave, wf.sample_rate)
            panels = {
                k.split(": ")[0] + (": " + k.rsplit(", ", 1)[-1] if ": " in k else ""): (
                    log_mel_spectrogram(v, wf.sample_rate, n_mels=40)
                )
                for k, v in waves.items()
                if k == "real (WORLD)" or k in figure_labels
            }
            plot_spectrograms(
                Path(args.figures) / f"{args.figure_tag}_{stem}.png",
                panels,
                wf.frame_period / 1000,
                title=f"{names[i]}: {prompt.text[:60]}",
            )
        print(f"scored {i + 1}/{len(test)}: {names[i]}", file=sys.stderr, flush=True)
    results["acoustics"] = {
        k: mean_metrics(v) | {"clipped": float(np.mean(clipped[k]))} for k, v in systems.items()
    }
    results["intervals"] = {k: bootstrap_means(v) for k, v in systems.items()}
    results["per_prompt_mcd"] = {k: [r["mcd_db"] for r in v] for k, v in systems.items()}
    linear = [k for k in systems if k.startswith("linear: ")]
    if linear:
        from _structured_common import paired_bootstrap

        ref = min(linear, key=lambda k: results["acoustics"][k]["mcd_db"])
        results["mcd_minus_best_linear"] = {
            "reference": ref,
            **{
                k: paired_bootstrap(
                    np.array(results["per_prompt_mcd"][k]), np.array(results["per_prompt_mcd"][ref])
                )
                for k in systems
                if k != ref and k != "WORLD analysis-synthesis"
            },
        }
    results["peak_level"] = {}
    if args.json:  # the acoustics are kept even if the (slow) recognition is cut short
        dump_json(results | {"settings": vars(args)}, args.json)

    # 4. intelligibility: held-out prompts synthesised from text with predicted durations
    if not args.no_intelligibility:
        assert dm.duration_model is not None
        if args.intel_durations == "natural":
            p_ctl = list(t_controls)
        else:
            _, p_ctl = predicted_controls(test, dm.duration_model)
        silence = np.mean([z[:order] for z in clips], axis=0)  # the training prompts' start
        p_seeds = [silence] * len(test)
        waves_by: dict[str, list[np.ndarray]] = {
            "real recordings": [read_audio(p.wav) for p in test],
            "WORLD analysis-synthesis": [wf.synthesize(p.frames) for p in test],
        }
        gv = global_variance([p.frames for p in dm.prompts("train")], wf) if args.intel_gv else None
        for label, gen in selected.items():
            if "sampler, visible noise 0" in label or (
                "sampler" in label and not args.intel_samplers
            ):
                continue
            raws = [wf.inverse_transform(g[:, : wf.dim]) for g in gen(p_seeds, p_ctl)]
            waves_by[label] = [wf.synthesize(r) for r in raws]
            if gv is not None:
                waves_by[f"{label}, GV post-filter"] = [
                    wf.synthesize(scale_to_gv(r, gv, wf)) for r in raws
                ]
            for beta in args.intel_postfilter:
                waves_by[f"{label}, post-filter {beta:g}"] = [
                    wf.synthesize(r, postfilter=beta) for r in raws
                ]
        results["peak_level"] = {
            k: float(max(np.abs(w).max() for w in ws)) for k, ws in waves_by.items()
        }
        all_texts = [p.text for p in dm.prompts("train") + dm.prompts("val") + test]
        results["intelligibility"] = intelligibility(
            waves_by, [p.text for p in test], all_texts, wf.sample_rate, args.wer_prompts
        )
    results["seconds"] = time.perf_counter() - started
    results["settings"] = vars(args)
    print_tables(results)
    if args.json:
        dump_json(results, args.json)
    return results


def print_tables(r: dict[str, Any]) -> None:
    c = r["corpus"]
    print(
        f"corpus: {c['train_prompts']} train prompts ({c['train_minutes']:.1f} min), "
        f"{c.get('val_prompts', 0)} validation ({c.get('val_minutes', 0):.1f} min), "
        f"{c['test_prompts']} test ({c['test_minutes']:.1f} min), {c['skipped']} skipped, "
        f"{c['sample_rate']} Hz"
    )
    a = r["alignment"]
    metrics = ["pause_c0_gap", "vowel_voiced", "voiceless_voiced", "voicing_agreement",
               "boundary_change"]  # fmt: skip
    print("\nalignment sanity (training prompts)")
    print(
        markdown_table(
            ["boundaries", *metrics],
            [[k, *[v[m] for m in metrics]] for k, v in a.items()],
            [0, *[3] * len(metrics)],
        )
    )
    d = r["durations"]
    print("\ndurations on held-out prompts (edge silences excluded)")
    print(
        markdown_table(
            ["model", "RMSE (ms)", "MAE (ms)", "corr", "phones"],
            [[k, v["rmse_ms"], v["mae_ms"], v["corr"], v["n_phones"]] for k, v in d.items()],
            [0, 1, 1, 3, 0],
        )
    )
    cols = ["mcd_db", "f0_rmse_hz", "vuv_error", "gv_ratio", "voiced", "voiced_real",
            "energy_spread_db", "energy_spread_real_db"]  # fmt: skip
    if r.get("validation"):
        print("\nvalidation prompts, natural durations (selection by MCD)")
        rows = [[k, *[v.get(m, math.nan) for m in cols]] for k, v in r["validation"].items()]
        print(markdown_table(["system", *cols], rows, [0, *[3] * len(cols)]))
    if "acoustics" not in r:
        return
    s = r["acoustics"]
    print("\ntest prompts, natural durations (each family's validation choice)")
    print(
        markdown_table(
            ["system", *cols, "clipped"],
            [[k, *[v[m] for m in [*cols, "clipped"]]] for k, v in s.items()],
            [0, *[3] * (len(cols) + 1)],
        )
    )
    if r.get("intervals"):
        print("\n95 % intervals of the test means (bootstrap over prompts) and MCD paired with")
        print(f"the best linear row ({r.get('mcd_minus_best_linear', {}).get('reference')})")
        diff = r.get("mcd_minus_best_linear", {})
        metrics = ["mcd_db", "f0_rmse_hz", "vuv_error", "gv_ratio"]
        rows = []
        for k, iv in r["intervals"].items():
            d = diff.get(k)
            cells = [f"[{iv[m][0]:.3f}, {iv[m][1]:.3f}]" for m in metrics]
            paired = (
                f"{d['difference']:+.3f} [{d['ci_low']:+.3f}, {d['ci_high']:+.3f}]" if d else ""
            )
            rows.append([k, *cells, paired])
        print(markdown_table(["system", *metrics, "MCD - linear"], rows, [0] * 6))
    if r.get("intelligibility"):
        print(
            "\nintelligibility on test prompts (PocketSphinx), synthesised with "
            f"{r.get('settings', {}).get('intel_durations', 'predicted')} durations"
        )
        keys = ["identified", "identified_homophones", "identified_short", "identified_long"]
        ci = lambda v, key: "[{:.3f}, {:.3f}]".format(*v[key]) if key in v else ""  # noqa: E731
        rows = [
            [
                k,
                *[v.get(m, math.nan) for m in keys],
                v["wer"],
                ci(v, "wer_ci"),
                v.get("wer_ratio", math.nan),
                ci(v, "wer_ratio_ci"),
                r["peak_level"].get(k, math.nan),
            ]
            for k, v in r["intelligibility"].items()
        ]
        print(
            markdown_table(
                [
                    "system",
                    "identified",
                    "up to homophones",
                    "1-2 words",
                    "3+ words",
                    "WER",
                    "95 %",
                    "× real",
                    "95 %",
                    "peak |x|",
                ],
                rows,
                [0, 3, 3, 3, 3, 3, 0, 2, 0, 3],
            )
        )


if __name__ == "__main__":
    main()
