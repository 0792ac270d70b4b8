"""``seqboltz evaluate`` for speech models: MCD, F0 RMSE and voicing error against baselines.

On held-out utterances (WORLD frames, :class:`~seqboltz.speech.WorldFeatures`; log-mel frames
are scored by log-spectral distance instead of the three measures below), next-frame
prediction from the true history by the model (Taylor's sampler, ``k`` Gibbs steps, seeded),
the least-squares linear AR model of the same order and repeat-last-frame, all compared in
raw units:

* MCD in dB on mel-cepstra, ``c₀`` excluded (:func:`~seqboltz.speech.mel_cepstral_distortion`);
* F0 RMSE in Hz over frames voiced in both prediction and reference;
* voicing error: the fraction of frames whose voiced/unvoiced decision (``voiced > 0.5``)
  differs.

With ``out_dir``: a generated WAV (model and AR, ``seconds`` long, continuing a held-out
utterance) and a PNG of their log-mel spectrograms against the real utterance.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from seqboltz.eval._sequence import LinearAR, RepeatLastFrame, fit_linear_ar, history_windows
from seqboltz.models import SequenceRBM
from seqboltz.models._residual import LinearARX, fit_linear_arx
from seqboltz.speech import (
    SpeechFeatures,
    WorldFeatures,
    log_spectral_distance,
    mel_cepstral_distortion,
)

__all__ = [
    "LINEAR_HISTORY_NOISE",
    "SpeechEvaluation",
    "evaluate_speech_model",
    "evaluate_tts_model",
    "free_running_mcd",
    "linear_rollout",
    "model_rollout",
    "speech_errors",
    "utterance_scores",
]

_CHUNK = 4096


@dataclass
class SpeechEvaluation:
    """Rows (model and baselines), settings and written files; JSON-serialisable."""

    rows: list[dict[str, Any]]
    settings: dict[str, Any]
    files: dict[str, str] = field(default_factory=dict)

    def table(self) -> str:
        """Markdown table of the rows (WORLD: MCD, F0, voicing; log-mel: log-spectral
        distance)."""
        if self.rows and "gv_ratio" in self.rows[0]:
            lines = [
                "| model (run free, natural durations) | MCD (dB) | − linear [95 %] | "
                "F0 RMSE (Hz) | voicing error | GV ratio |",
                "|---|---|---|---|---|---|",
            ]
            for r in self.rows:
                diff = r.get("mcd_minus_linear")
                paired = f"{diff[0]:+.3f} [{diff[1]:+.3f}, {diff[2]:+.3f}]" if diff else "—"
                lines.append(
                    f"| {r['model']} | {r['mcd_db']:.3f} | {paired} | {r['f0_rmse_hz']:.2f} | "
                    f"{100 * r['vuv_error']:.2f} % | {r['gv_ratio']:.3f} |"
                )
        elif self.rows and "mcd_db" in self.rows[0]:
            lines = [
                "| model | one-step MCD (dB) | F0 RMSE (Hz) | voicing error | one-step MSE (std) |",
                "|---|---|---|---|---|",
            ]
            for r in self.rows:
                lines.append(
                    f"| {r['model']} | {r['mcd_db']:.3f} | {r['f0_rmse_hz']:.2f} | "
                    f"{100 * r['vuv_error']:.2f} % | {r['mse']:.4f} |"
                )
        else:
            lines = [
                "| model | one-step log-spectral distance (dB) | one-step MSE (std) |",
                "|---|---|---|",
            ]
            for r in self.rows:
                lines.append(f"| {r['model']} | {r['lsd_db']:.3f} | {r['mse']:.4f} |")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@torch.no_grad()
def free_running_mcd(
    model: SequenceRBM,
    clips: list[np.ndarray],
    controls: list[np.ndarray],
    real: list[np.ndarray],
    features: WorldFeatures,
    delta_columns: list[int] | None = None,
    gibbs_steps: int = 1,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-utterance MCD and global-variance ratio of a text-to-speech model run free.

    Every utterance is generated from its first ``order`` frames to its end, the model
    feeding on its own frames and reading the utterance's own per-frame linguistic controls
    (natural durations), exactly as :meth:`~seqboltz.models.SequenceRBM.generate` (the path
    the runtime's card takes; ``generation="mean"`` speaks the conditional mean), and scored
    by :func:`utterance_scores` (with ``delta_columns``, MLPG with unit variances as the card's
    ``MLPG_GENERATION``, Tokuda et al. 2000; a GV ratio below 1 is over-smoothed).

    Args:
        model: a sequence model with controls (``n_controls`` = the controls' width).
        clips: standardised frames ``[(T_i, D')]`` (statics, then Δ and Δ² with deltas).
        controls: ``[(T_i, C)]`` aligned with ``clips``.
        real: raw WORLD frames ``[(T_i, D)]`` of the same utterances.
        features: the fitted :class:`~seqboltz.speech.WorldFeatures` (standardisation).
        delta_columns: the static columns with Δ and Δ² (``None``: frames are statics).
        gibbs_steps: ``k`` per frame.
        seed: the generation seed (sequence ``i`` draws from ``sequence_rng(seed, i)``).

    Returns:
        ``(mcd_db, gv_ratio)``, each ``(N,)``; ``inf`` and ``nan`` for an utterance whose
        generation is not finite.
    """
    _check_rollout(clips, controls, real, int(model.order))
    frames = model_rollout(model, clips, controls, gibbs_steps, seed)
    scores = utterance_scores(frames, real, features, delta_columns)
    return scores["mcd_db"], scores["gv_ratio"]


@torch.no_grad()
def model_rollout(
    model: SequenceRBM,
    clips: list[np.ndarray],
    controls: list[np.ndarray],
    gibbs_steps: int = 1,
    seed: int = 0,
) -> list[np.ndarray]:
    """A sequence model's frames run free: each utterance from its first ``order`` frames to
    its end with its own per-frame controls, all in one batch through
    :meth:`~seqboltz.models.SequenceRBM.generate` (sequence ``i`` draws from
    ``sequence_rng(seed, i)``; frames past a shorter utterance's end are dropped).
    Returns ``[(T_i, D)]``, the first ``order`` frames the utterance's own."""
    order = int(model.order)
    t_max = max(c.shape[0] for c in clips)
    padded = np.zeros((len(clips), t_max - order, controls[0].shape[1]))
    for b, c in enumerate(controls):
        padded[b, : c.shape[0] - order] = c[order:]
    ref = model.reference_parameter()
    starts = torch.from_numpy(np.stack([c[:order] for c in clips])).to(ref)
    gen = model.generate(
        starts, t_max - order, gibbs_steps, controls=torch.from_numpy(padded).to(ref), seed=seed
    )
    gen_np = gen.double().cpu().numpy()
    frames = [
        np.concatenate([clip[:order], gen_np[b, : clip.shape[0] - order]])
        for b, clip in enumerate(clips)
    ]
    return frames


def utterance_scores(
    frames: list[np.ndarray],
    real: list[np.ndarray],
    features: WorldFeatures,
    delta_columns: list[int] | None = None,
) -> dict[str, np.ndarray]:
    """Per-utterance distances of standardised utterances from the recordings.

    With ``delta_columns`` the statics are MLPG's trajectory from the frames' statics, Δ and
    Δ² with unit variances; they are then de-standardised (``features``) and compared with
    the raw WORLD frames of the same length:

    * ``mcd_db``: MCD without ``c₀`` (Kubichek 1993), averaged over frames;
    * ``gv_ratio``: ``mean_m var(ĉ_m) / var(c_m)`` over ``c₁…`` (Toda & Tokuda 2007; below 1
      is over-smoothed);
    * ``f0_rmse_hz``: F0 RMSE over frames voiced in both (``nan`` where none are);
    * ``vuv_error``: the share of frames whose voicing decision differs.

    Args:
        frames: standardised ``[(T_i, D')]``.
        real: raw ``[(T_i, D)]``.
        features: the fitted :class:`~seqboltz.speech.WorldFeatures`.
        delta_columns: the static columns with Δ and Δ² (``None``: frames are statics).

    Returns:
        Each measure ``(N,)``; an utterance that is not finite scores ``inf`` MCD and ``nan``
        otherwise.
    """
    from seqboltz.speech._mlpg import mlpg_frames

    if len(frames) != len(real):
        raise ValueError(f"{len(frames)} generated utterances for {len(real)} recordings")
    n = len(frames)
    out = {
        "mcd_db": np.full(n, np.inf),
        "gv_ratio": np.full(n, np.nan),
        "f0_rmse_hz": np.full(n, np.nan),
        "vuv_error": np.full(n, np.nan),
    }
    mc = features.mcep_slice
    for b, (z, raw) in enumerate(zip(frames, real, strict=True)):
        if z.shape[0] != raw.shape[0]:
            raise ValueError(f"utterance {b}: {z.shape[0]} frames against {raw.shape[0]} real")
        if not np.isfinite(z).all():
            continue
        statics = mlpg_frames(z, delta_columns) if delta_columns else z
        gen = features.inverse_transform(statics[:, : features.dim])
        if not np.isfinite(gen).all():
            continue
        out["mcd_db"][b] = float(mel_cepstral_distortion(raw[:, mc], gen[:, mc]).mean())
        var_r = raw[:, mc][:, 1:].var(axis=0)
        out["gv_ratio"][b] = float(
            np.mean(gen[:, mc][:, 1:].var(axis=0) / np.maximum(var_r, 1e-300))
        )
        vr, vg = raw[:, features.vuv_index] > 0.5, gen[:, features.vuv_index] > 0.5
        out["vuv_error"][b] = float(np.mean(vr != vg))
        both = vr & vg
        if both.any():
            f0r, f0g = np.exp(raw[both, features.lf0_index]), np.exp(gen[both, features.lf0_index])
            out["f0_rmse_hz"][b] = float(np.sqrt(np.mean((f0r - f0g) ** 2)))
    return out


def _check_rollout(
    clips: list[np.ndarray], controls: list[np.ndarray], real: list[np.ndarray], order: int
) -> None:
    if not clips or len(clips) != len(controls) or len(clips) != len(real):
        raise ValueError("need the same number (> 0) of clips, controls and real utterances")
    if min(c.shape[0] for c in clips) <= order:
        raise ValueError(f"every utterance needs more than order={order} frames")


def linear_rollout(
    arx: LinearARX, clips: list[np.ndarray], controls: list[np.ndarray], order: int
) -> list[np.ndarray]:
    """The linear acoustic model's frames run free: each utterance from its first ``order``
    frames, every next frame the model's mean given its own last ``order`` frames and the
    utterance's controls (:class:`~seqboltz.models._residual.LinearARX`), all utterances
    in one batch. Returns ``[(T_i, D)]``."""
    t_max = max(c.shape[0] for c in clips)
    d = clips[0].shape[1]
    ctl = np.zeros((len(clips), t_max, controls[0].shape[1]))
    out = np.zeros((len(clips), t_max, d))
    for b, (c, z) in enumerate(zip(controls, clips, strict=True)):
        ctl[b, : c.shape[0]] = c
        out[b, :order] = z[:order]
    for t in range(order, t_max):
        history = out[:, t - order : t][:, ::-1]  # most recent first
        out[:, t] = arx.predict(history, ctl[:, t])
    return [out[b, : z.shape[0]] for b, z in enumerate(clips)]


def speech_errors(
    features: SpeechFeatures, target: np.ndarray, pred: np.ndarray
) -> dict[str, float]:
    """Errors of ``pred`` against ``target``, both standardised ``(N, dim)``: for WORLD frames
    MCD (dB), F0 RMSE (Hz), voicing error; for log-mel frames the log-spectral distance (dB);
    always the standardised MSE."""
    if target.shape != pred.shape:
        raise ValueError(f"target {target.shape} and prediction {pred.shape} differ in shape")
    raw_t, raw_p = features.inverse_transform(target), features.inverse_transform(pred)
    mse = float(np.mean((target - pred) ** 2))
    if not isinstance(features, WorldFeatures):
        return {"lsd_db": float(log_spectral_distance(raw_t, raw_p).mean()), "mse": mse}
    mc = features.mcep_slice
    mcd = float(mel_cepstral_distortion(raw_t[:, mc], raw_p[:, mc]).mean())
    v_t = raw_t[:, features.vuv_index] > 0.5
    v_p = raw_p[:, features.vuv_index] > 0.5
    both = v_t & v_p
    lf0 = features.lf0_index
    f0_err = np.exp(raw_t[both, lf0]) - np.exp(np.clip(raw_p[both, lf0], -50.0, 50.0))
    return {
        "mcd_db": mcd,
        "f0_rmse_hz": float(np.sqrt(np.mean(f0_err**2))) if both.any() else float("nan"),
        "vuv_error": float(np.mean(v_t != v_p)),
        "mse": mse,
    }


def _model_one_step(
    model: SequenceRBM, hist: np.ndarray, gibbs_steps: int, seed: int
) -> np.ndarray:
    """Next frames of every window ``hist (N, order, D)`` (most recent first); window ``i``
    draws its noise from ``sequence_rng(seed, i)`` whatever the chunking."""
    out = []
    for start in range(0, hist.shape[0], _CHUNK):
        h = hist[start : start + _CHUNK]
        seed_frames = torch.from_numpy(np.ascontiguousarray(h[:, ::-1])).double()
        idx = range(start, start + h.shape[0])
        gen = model.generate(seed_frames, 1, gibbs_steps, seed=seed, sequence_indices=idx)
        out.append(gen[:, 0].double().numpy())
    return np.concatenate(out)


def evaluate_speech_model(
    model: SequenceRBM,
    datamodule: Any,
    *,
    seconds: float = 5.0,
    gibbs_steps: int = 30,
    seed: int = 0,
    out_dir: str | Path | None = None,
) -> SpeechEvaluation:
    """Evaluate ``model`` on ``datamodule``'s held-out utterances against both baselines.

    Args:
        model: a trained conditional RBM over WORLD frames.
        datamodule: a set-up :class:`~seqboltz.data.SpeechDataModule`.
        seconds: length of the generated WAVs.
        gibbs_steps: ``k`` of the model's sampler.
        seed: seed of every generation.
        out_dir: where to write WAVs and the spectrogram PNG; ``None``: nothing written.
    """
    wf: SpeechFeatures = datamodule.features
    order = model.order
    if model.n_style or getattr(model, "n_controls", 0):
        raise ValueError("speech evaluation supports models without style or controls")
    train, test = datamodule.clips("train"), datamodule.clips("test")
    hist, targ = history_windows(test, order)
    ar: LinearAR = fit_linear_ar(train, order)
    preds = {
        type(model).__name__: _model_one_step(model, hist, gibbs_steps, seed),
        f"linear AR (order {order})": ar.predict(hist),
        "repeat last frame": RepeatLastFrame(order).predict(hist),
    }
    rows = [{"model": name, **speech_errors(wf, targ, p)} for name, p in preds.items()]
    report = SpeechEvaluation(
        rows=rows,
        settings={
            "gibbs_steps": gibbs_steps,
            "seed": seed,
            "order": order,
            "frame_period_ms": wf.frame_period,
            "sample_rate": wf.sample_rate,
            "n_test_utterances": len(test),
            "n_test_windows": int(hist.shape[0]),
        },
    )
    if out_dir is not None:
        report.files = _speech_outputs(
            Path(out_dir), model, datamodule, ar, seconds, gibbs_steps, seed
        )
    return report


#: History noise levels of the linear acoustic baseline, chosen on the validation prompts (the
#: expected least squares under noisy histories; 3 on the Asterisk voice, 1-3 on ARCTIC slt).
LINEAR_HISTORY_NOISE = (1.0, 3.0)


def evaluate_tts_model(
    model: SequenceRBM,
    datamodule: Any,
    *,
    seconds: float = 0.0,
    gibbs_steps: int = 1,
    seed: int = 0,
    out_dir: str | Path | None = None,
    n_boot: int = 2000,
) -> SpeechEvaluation:
    """A text-to-speech acoustic model on its held-out prompts, beside the linear one.

    Each test prompt is spoken free from its first ``order`` frames with its recorded
    durations (:func:`model_rollout`; MLPG where the frames carry Δ and Δ²) and scored by
    :func:`utterance_scores`. The baseline is the least-squares linear acoustic model on the
    same front end's controls and history (:func:`~seqboltz.models._residual.fit_linear_arx`,
    its history-noise level chosen on the validation prompts from
    :data:`LINEAR_HISTORY_NOISE`), run the same way (Ling, Deng & Yu 2013 compare RBM
    acoustic models against the same kind of baseline). A data module without a validation
    split (``val_fraction=0``) validates on the test prompts, which favours the baseline, not
    the model. The model row carries the paired MCD difference with a bootstrap interval over
    prompts.

    Args:
        model: a sequence model with controls (a :class:`~seqboltz.models.ResidualCRBM` from
            ``recipes/tts_rcrbm.yaml``).
        datamodule: a set-up :class:`~seqboltz.data.TTSDataModule`.
        seconds: unused (the prompts set the length); accepted like the other reports.
        gibbs_steps: ``k`` of the model's sampler.
        seed: the generation seed.
        out_dir: where to write the longest test prompt as WAVs (real resynthesised, model,
            linear) and their log-mel spectrograms; ``None``: nothing written.
        n_boot: bootstrap resamples of the paired difference.
    """
    from seqboltz.eval._motion_metrics import bootstrap_ci

    del seconds
    wf: WorldFeatures = datamodule.features
    order = int(model.order)
    columns = list(datamodule.delta_columns) if getattr(datamodule, "deltas", False) else None

    def split(name: str) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
        clips, controls = datamodule.clips(name), datamodule.control_clips(name)
        real = [p.frames for p in datamodule.prompts(name)]
        _check_rollout(clips, controls, real, order)
        return clips, controls, real

    train, val, test = split("train"), split("val"), split("test")
    linear, chosen, best = None, LINEAR_HISTORY_NOISE[0], np.inf
    for noise in LINEAR_HISTORY_NOISE:
        arx = fit_linear_arx(train[0], train[1], order, ridge=1e-3, history_noise=noise)
        frames = linear_rollout(arx, val[0], val[1], order)
        score = float(np.mean(utterance_scores(frames, val[2], wf, columns)["mcd_db"]))
        if score < best:
            linear, chosen, best = arx, noise, score
    assert linear is not None
    generated = {
        type(model).__name__: model_rollout(model, test[0], test[1], gibbs_steps, seed),
        f"linear acoustic model (history noise {chosen:g})": linear_rollout(
            linear, test[0], test[1], order
        ),
    }
    scores = {name: utterance_scores(f, test[2], wf, columns) for name, f in generated.items()}
    rows = []
    for name, sc in scores.items():
        row: dict[str, Any] = {"model": name}
        row.update({k: float(np.nanmean(v)) for k, v in sc.items()})
        rows.append(row)
    model_mcd, linear_mcd = (sc["mcd_db"] for sc in scores.values())
    if np.isfinite(model_mcd).all():
        mean, lo, hi = bootstrap_ci(model_mcd - linear_mcd, n_boot=n_boot, seed=seed)
        rows[0]["mcd_minus_linear"] = [mean, lo, hi]
    report = SpeechEvaluation(
        rows=rows,
        settings={
            "gibbs_steps": gibbs_steps,
            "seed": seed,
            "order": order,
            "mlpg": columns is not None,
            "linear_history_noise": chosen,
            "frame_period_ms": wf.frame_period,
            "sample_rate": wf.sample_rate,
            "n_test_prompts": len(test[0]),
            "n_val_prompts": len(val[0]),
        },
    )
    if out_dir is not None:
        longest = int(np.argmax([c.shape[0] for c in test[0]]))
        report.files = _tts_outputs(
            Path(out_dir),
            wf,
            test[2][longest],
            {name: f[longest] for name, f in generated.items()},
            columns,
            datamodule.prompts("test")[longest].text,
        )
    return report


def _tts_outputs(
    out: Path,
    wf: WorldFeatures,
    real: np.ndarray,
    frames: dict[str, np.ndarray],
    columns: list[int] | None,
    text: str,
) -> dict[str, str]:
    """WAVs of one test prompt (real resynthesised, each system through the post-filter an
    exported voice speaks with, :data:`~seqboltz.speech._voice.POSTFILTER_BETA`) and their
    spectrograms."""
    from seqboltz.speech import log_mel_spectrogram, write_wav
    from seqboltz.speech._mlpg import mlpg_frames
    from seqboltz.speech._voice import POSTFILTER_BETA
    from seqboltz.viz import plot_spectrograms

    waves = {"real": wf.synthesize(real)}
    for name, z in frames.items():
        statics = mlpg_frames(z, columns) if columns else z
        raw = wf.inverse_transform(statics[:, : wf.dim])
        waves[name] = wf.synthesize(raw, postfilter=POSTFILTER_BETA)
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, str] = {}
    for i, wave in enumerate(waves.values()):  # real, the model, the linear model
        label = ("real", "generated", "linear")[i]
        stem = "real_resynthesised" if label == "real" else label
        files[label] = str(write_wav(out / f"{stem}.wav", wave, wf.sample_rate))
    specs = {
        k: log_mel_spectrogram(w, wf.sample_rate, hop_ms=wf.frame_period) for k, w in waves.items()
    }
    files["spectrograms"] = str(
        plot_spectrograms(
            out / "spectrograms.png", specs, wf.frame_period / 1000.0, title=f"log-mel: {text!r}"
        )
    )
    return files


def _speech_outputs(
    out: Path,
    model: SequenceRBM,
    datamodule: Any,
    ar: LinearAR,
    seconds: float,
    gibbs_steps: int,
    seed: int,
) -> dict[str, str]:
    """WAVs of a generation continuing the longest held-out utterance, and spectrograms."""
    from seqboltz.speech import log_mel_spectrogram, write_wav
    from seqboltz.viz import plot_spectrograms

    wf: SpeechFeatures = datamodule.features
    test = datamodule.clips("test")
    real = max(test, key=len)
    n_frames = max(1, round(seconds * 1000.0 / wf.frame_period))
    seeds = real[None, : model.order]
    gen = model.generate(torch.from_numpy(seeds).double(), n_frames, gibbs_steps, seed=seed)
    waves = {
        "real": wf.synthesize(wf.inverse_transform(real[: model.order + n_frames])),
        type(model).__name__: wf.synthesize(wf.inverse_transform(gen[0].double().numpy())),
        "linear AR": wf.synthesize(wf.inverse_transform(ar.generate(seeds, n_frames, seed)[0])),
    }
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, str] = {}
    for label, name in (("real", "real_resynthesised.wav"), ("linear AR", "generated_ar.wav")):
        files[label] = str(write_wav(out / name, waves[label], wf.sample_rate))
    files["generated"] = str(
        write_wav(out / "generated.wav", waves[type(model).__name__], wf.sample_rate)
    )
    specs = {
        k: log_mel_spectrogram(w, wf.sample_rate, hop_ms=wf.frame_period) for k, w in waves.items()
    }
    files["spectrograms"] = str(
        plot_spectrograms(
            out / "spectrograms.png",
            specs,
            wf.frame_period / 1000.0,
            title=f"log-mel: real held-out utterance vs {seconds:g}-s generations",
        )
    )
    return files
