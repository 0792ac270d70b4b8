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
   the conditional RBM (Taylor's sampler, ``k`` Gibbs steps, and its conditional mean by
   mean-field), a linear least-squares model with the same inputs (history + controls), and
   WORLD's own analysis–synthesis (the ceiling). MCD (dB, c₀ excluded), F0 RMSE (Hz, frames
   voiced in both), voicing error, global-variance ratio of the mel-cepstrum, voiced share and
   frame-energy spread against the real prompts', clipped samples.

Run from the repository root::

    python benchmarks/tts.py [--max-utterances N] [--epochs 10] [--ckpt CKPT] [--json PATH]

WAVs and spectrogram pictures of two held-out prompts go to ``--out``.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning.pytorch.callbacks import Callback

sys.path.insert(0, str(Path(__file__).resolve().parent))  # `_common` when run as a script

from _common import dump_json, markdown_table, quiet_trainer, seed_all, set_threads

from seqboltz.data import TTSDataModule, TTSPrompt
from seqboltz.models import ConditionalRBM
from seqboltz.speech import WorldFeatures, log_mel_spectrogram, mel_cepstral_distortion, write_wav
from seqboltz.speech._align import PhoneAlignment, alignment_sanity
from seqboltz.speech._duration import DurationModel, MeanDurationModel, duration_rmse
from seqboltz.training import RBMSystem

_DB = 20.0 / math.log(10.0)


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
    xs, ys = [], []
    for v, c in zip(clips, controls, strict=True):
        t = v.shape[0]
        hist = np.concatenate([v[order - k : t - k] for k in range(1, order + 1)], axis=1)
        xs.append(np.concatenate([hist, c[order:], np.ones((t - order, 1))], axis=1))
        ys.append(v[order:])
    x, y = np.concatenate(xs), np.concatenate(ys)
    penalty = np.full(x.shape[1], ridge)
    penalty[: order * clips[0].shape[1]] += x.shape[0] * history_noise**2
    gram = x.T @ x + np.diag(penalty)
    return np.asarray(np.linalg.solve(gram, x.T @ y))


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


# -- main -----------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-utterances", type=int, default=None)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--lr", type=float, default=0.005)
    parser.add_argument("--order", type=int, default=3)
    parser.add_argument(
        "--history-noise",
        type=float,
        nargs="+",
        default=[0.0],
        help="training noise on the history (one CRBM and one linear model per value)",
    )
    parser.add_argument("--gibbs", type=int, default=30, help="Gibbs steps per frame")
    parser.add_argument("--max-test", type=int, default=None, help="held-out prompts to score")
    parser.add_argument("--ckpt", default=None, help="a tts_crbm.yaml checkpoint to score")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/tts_bench")
    parser.add_argument("--figures", default="benchmarks/figures")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    set_threads(args.threads)
    logging.getLogger("lightning").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    started = time.perf_counter()

    dm = TTSDataModule(
        order=args.order,
        max_utterances=args.max_utterances,
        batch_size=256,
    )
    dm.prepare_data()
    dm.setup()
    wf = dm.features
    assert wf is not None
    train, test = dm.prompts("train"), dm.prompts("test")
    if args.max_test is not None:
        test = test[: args.max_test]
    results: dict[str, Any] = {
        "corpus": {
            "train_prompts": len(train),
            "test_prompts": len(test),
            "skipped": len(dm.skipped),
            "train_minutes": sum(p.frames.shape[0] for p in train) * wf.frame_period / 60000,
            "test_minutes": sum(p.frames.shape[0] for p in test) * wf.frame_period / 60000,
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

    # 3. acoustics
    order = dm.order
    clips, controls = dm.clips("train"), dm.control_clips("train")
    noises = [0.0] if args.ckpt else args.history_noise
    linear = {
        f"linear (history noise {s})": fit_linear(clips, controls, order, history_noise=s)
        for s in noises
    }
    crbms: dict[str, ConditionalRBM] = {}
    if args.ckpt:
        from seqboltz.models import load_model

        crbms["CRBM (checkpoint)"] = load_model(args.ckpt)  # type: ignore[assignment]
    else:
        results["crbm_train_seconds"] = {}
        for s in noises:
            with_time = time.perf_counter()
            dm.history_noise = s
            crbms[f"CRBM (history noise {s})"] = train_crbm(
                dm, args.hidden, args.epochs, args.lr, args.seed
            )
            results["crbm_train_seconds"][str(s)] = time.perf_counter() - with_time
    for label, model in crbms.items():
        if not isinstance(model, ConditionalRBM) or model.n_controls != dm.n_controls:
            raise ValueError(f"need a ConditionalRBM with {dm.n_controls} controls: {label}")
        crbms[label] = model.to(torch.float64).eval()
    t_clips, t_controls = dm.clips("test"), dm.control_clips("test")
    names = [p.name for p in dm.prompts("test")]
    systems: dict[str, list[dict[str, float]]] = {"WORLD analysis-synthesis": []}
    clipped: dict[str, list[float]] = {"WORLD analysis-synthesis": []}
    out_dir = Path(args.out)
    seeds = [z[:order] for z in t_clips[: len(test)]]
    batch_c = t_controls[: len(test)]
    generated: dict[str, list[np.ndarray]] = {}
    for label, model in crbms.items():
        generated[f"{label} sampler"] = generate_crbm(model, seeds, batch_c, args.gibbs)
        generated[f"{label} mean"] = generate_crbm_mean(model, seeds, batch_c, args.gibbs)
    for i, prompt in enumerate(test):
        z, c = t_clips[i], t_controls[i]
        real = prompt.frames
        gens = {k: v[i] for k, v in generated.items()}
        for label, w in linear.items():
            gens[label] = generate_linear(w, z[:order], c)
        waves: dict[str, np.ndarray] = {"real (WORLD)": wf.synthesize(real)}
        reanalysed = wf.analyze(waves["real (WORLD)"])
        systems["WORLD analysis-synthesis"].append(acoustic_metrics(real, reanalysed, wf))
        clipped["WORLD analysis-synthesis"].append(clipped_share(waves["real (WORLD)"]))
        for name, g in gens.items():
            raw = wf.inverse_transform(g)
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
                write_wav(out_dir / f"{stem}_{k}_{tag}.wav", wave, wf.sample_rate)
            panels = {
                k: log_mel_spectrogram(v, wf.sample_rate, n_mels=40)
                for k, v in waves.items()
                if not k.endswith(" mean")
            }
            plot_spectrograms(
                Path(args.figures) / f"tts_{stem}.png",
                panels,
                wf.frame_period / 1000,
                title=f"{names[i]}: {prompt.text[:60]}",
            )
        print(f"scored {i + 1}/{len(test)}: {names[i]}", file=sys.stderr, flush=True)
    results["acoustics"] = {
        k: {m: float(np.nanmean([r[m] for r in v])) for m in v[0]}
        | {"clipped": float(np.mean(clipped[k]))}
        for k, v in systems.items()
    }
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
        f"{c['test_prompts']} held-out ({c['test_minutes']:.1f} min), {c['skipped']} skipped, "
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
    s = r["acoustics"]
    cols = ["mcd_db", "f0_rmse_hz", "vuv_error", "gv_ratio", "voiced", "voiced_real",
            "energy_spread_db", "energy_spread_real_db", "clipped"]  # fmt: skip
    print("\nheld-out prompts, natural durations")
    print(
        markdown_table(
            ["system", *cols],
            [[k, *[v[m] for m in cols]] for k, v in s.items()],
            [0, *[3] * len(cols)],
        )
    )


if __name__ == "__main__":
    main()
