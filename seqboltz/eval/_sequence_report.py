"""``seqboltz evaluate`` for sequence models: a conditional RBM against two baselines.

On the held-out part of every clip (standardised features):

* one-step prediction error from the true history (the model predicts with Taylor's sampler,
  ``k`` Gibbs steps, seeded);
* long generations (default 60 s) from each held-out clip's first frames: per-dimension
  standard deviation over the last 10 s against real motion (neither explode nor freeze) and
  the spectral distance :func:`~seqboltz.eval._sequence.npss` against real held-out motion;
* the same for repeat-last-frame and a least-squares linear AR model of the same order
  fitted on the same training data (generating with its Gaussian residual noise);
* for models with a root-speed style: the measured root speed of motion generated while the
  requested speed changes mid-sequence.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from seqboltz.eval._sequence import (
    LinearAR,
    RepeatLastFrame,
    fit_linear_ar,
    history_windows,
    npss,
    one_step_errors,
    std_ratio,
)
from seqboltz.models import SequenceRBM

__all__ = ["SequenceEvaluation", "evaluate_sequence_model"]


@dataclass
class SequenceEvaluation:
    """Rows (model and baselines) of the sequence evaluation, JSON-serialisable."""

    rows: list[dict[str, Any]]
    settings: dict[str, Any]
    speed_control: list[dict[str, Any]] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)

    def table(self) -> str:
        """Markdown table of the rows."""
        head = (
            "| model | one-step MSE | NPSS (lower is closer) | std ratio last 10 s: "
            "median [min, max] | dims within 0.5–2× |\n|---|---|---|---|---|"
        )
        lines = [head]
        for r in self.rows:
            lines.append(
                f"| {r['model']} | {r['one_step_mse']:.4f} | {r['npss']:.4f} | "
                f"{r['std_ratio_median']:.2f} [{r['std_ratio_min']:.2f}, {r['std_ratio_max']:.2f}]"
                f" | {r['std_ratio_within']}/{r['n_dims']} |"
            )
        if self.speed_control:
            lines.append("\n| segment | requested speed (std units) | measured speed (std units) |")
            lines.append("|---|---|---|")
            for s in self.speed_control:
                lines.append(f"| {s['segment']} | {s['requested']:.2f} | {s['measured']:.2f} |")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _row(
    name: str,
    mse: float,
    real: list[np.ndarray],
    generated: np.ndarray,
    fps: float,
    reference: np.ndarray,
) -> dict[str, Any]:
    """One model's row: ``real`` held-out clips for NPSS, ``reference (N, D)`` all real frames
    (training and held out) for the per-dimension standard deviation."""
    if not np.isfinite(generated).all():
        first = int(np.argmax(~np.isfinite(generated).all(axis=(0, 2))))
        return {
            "model": name,
            "one_step_mse": mse,
            "npss": float("nan"),
            "std_ratio_median": float("inf"),
            "std_ratio_min": float("inf"),
            "std_ratio_max": float("inf"),
            "std_ratio_within": 0,
            "n_dims": int(generated.shape[2]),
            "exploded": True,
            "frozen": False,
            "first_non_finite_frame": first,
        }
    last = generated[:, -round(10 * fps) :].reshape(-1, generated.shape[2])
    ratio = std_ratio(reference, last)
    length = min(r.shape[0] for r in real)
    reals = np.stack([r[:length] for r in real])  # (B, L, D)
    distances = [
        npss(reals, generated[:, start : start + length])
        for start in range(0, generated.shape[1] - length + 1, length)
    ]
    return {
        "model": name,
        "one_step_mse": mse,
        "npss": float(np.mean(distances)),
        "std_ratio_median": float(np.median(ratio)),
        "std_ratio_min": float(ratio.min()),
        "std_ratio_max": float(ratio.max()),
        "std_ratio_within": int(((ratio >= 0.5) & (ratio <= 2.0)).sum()),
        "n_dims": int(ratio.size),
        "exploded": bool(not np.isfinite(generated).all() or ratio.max() > 10),
        "frozen": bool(ratio.min() < 0.05),
    }


def _window_styles(styles: list[np.ndarray] | None, order: int) -> np.ndarray | None:
    if styles is None:
        return None
    return np.concatenate([s[order:] for s in styles])


def evaluate_sequence_model(
    model: SequenceRBM,
    datamodule: Any,
    *,
    seconds: float = 60.0,
    gibbs_steps: int = 30,
    seed: int = 0,
    out_dir: str | Path | None = None,
) -> SequenceEvaluation:
    """Evaluate ``model`` on ``datamodule``'s held-out clips against both baselines.

    Args:
        model: a trained conditional RBM.
        datamodule: a set-up sequence DataModule with ``clips(split)``, ``order``,
            ``target_fps`` (and ``style_clips(split)`` for models with style).
        seconds: length of the long generations.
        gibbs_steps: ``k`` of the model's sampler.
        seed: seed of every generation (sequence ``i`` uses ``sequence_rng(seed, i)``).
        out_dir: where to write plots and a generated BVH (motion data only); ``None``: none.
    """
    order, fps = model.order, float(datamodule.target_fps)
    train, test = datamodule.clips("train"), datamodule.clips("test")
    has_style = model.n_style > 0
    test_styles = datamodule.style_clips("test") if has_style else None
    n_frames = round(seconds * fps)

    # one-step prediction from the true history
    hist, _ = history_windows(test, order)
    style_w = _window_styles(test_styles, order)

    def model_predict(h: np.ndarray) -> np.ndarray:
        seed_frames = torch.from_numpy(np.ascontiguousarray(h[:, ::-1])).to(torch.float64)
        style = None if style_w is None else torch.from_numpy(style_w).to(torch.float64)
        out = model.generate(seed_frames, 1, gibbs_steps, style=style, seed=seed)
        return out[:, 0].double().numpy()

    ar: LinearAR = fit_linear_ar(train, order)
    repeat = RepeatLastFrame(order)
    mse = {
        "model": one_step_errors(model_predict, test, order)["mse"],
        "ar": one_step_errors(ar.predict, test, order)["mse"],
        "repeat": one_step_errors(repeat.predict, test, order)["mse"],
    }

    # long generations from each held-out clip's first frames
    seeds = np.stack([clip[:order] for clip in test])
    style_seq = None
    if test_styles is not None:
        style_seq = torch.from_numpy(np.stack([s.mean(0) for s in test_styles])).double()
    gen_model = (
        model.generate(
            torch.from_numpy(seeds).double(), n_frames, gibbs_steps, style=style_seq, seed=seed
        )
        .double()
        .numpy()
    )
    gen_ar = ar.generate(seeds, n_frames, seed=seed)
    gen_repeat = repeat.generate(seeds, n_frames)
    name = type(model).__name__
    # The held-out tail of a take is short (seconds): per-dimension spread of "real motion"
    # is measured on every real frame, training and held out.
    reference = np.concatenate(train + test)
    rows = [
        _row(name, mse["model"], test, gen_model, fps, reference),
        _row(f"linear AR (order {order})", mse["ar"], test, gen_ar, fps, reference),
        _row("repeat last frame", mse["repeat"], test, gen_repeat, fps, reference),
    ]
    report = SequenceEvaluation(
        rows=rows,
        settings={
            "seconds": seconds,
            "gibbs_steps": gibbs_steps,
            "seed": seed,
            "fps": fps,
            "order": order,
            "n_test_clips": len(test),
            "n_test_windows": int(hist.shape[0]),
        },
    )
    if has_style and hasattr(datamodule, "features"):
        report.speed_control = _speed_control(model, datamodule, gibbs_steps, seed)
    if out_dir is not None and hasattr(datamodule, "features") and np.isfinite(gen_model).all():
        report.files = _motion_pictures(Path(out_dir), datamodule, test, gen_model, gen_ar, fps)
    return report


def _root_speed_std_units(features: np.ndarray, datamodule: Any) -> np.ndarray:
    """Ground-plane root speed of standardised feature frames ``(..., T, D)``, standardised
    like the data module's style."""
    mf = datamodule.features
    names = mf.feature_names()
    i_f, i_l = names.index("root_vel_forward"), names.index("root_vel_lateral")
    raw_f = features[..., i_f] * mf.std[i_f] + mf.mean[i_f]
    raw_l = features[..., i_l] * mf.std[i_l] + mf.mean[i_l]
    speed = np.hypot(raw_f, raw_l) * float(datamodule.target_fps)
    stats = datamodule.stats()["style"]
    return np.asarray((speed - stats["mean"]) / stats["std"])


def _speed_control(
    model: SequenceRBM, datamodule: Any, gibbs_steps: int, seed: int
) -> list[dict[str, Any]]:
    """Request a low then a high root speed mid-sequence; measure what is generated."""
    fps = float(datamodule.target_fps)
    train_style = np.concatenate(datamodule.style_clips("train"))[:, 0]
    low, high = np.quantile(train_style, [0.1, 0.9])
    seg = round(20 * fps)
    test = datamodule.clips("test")
    seeds = torch.from_numpy(np.stack([c[: model.order] for c in test])).double()
    style = np.concatenate([np.full(seg, low), np.full(seg, high), np.full(seg, low)])
    style_t = torch.from_numpy(
        np.broadcast_to(style[None, :, None], (len(test), 3 * seg, 1)).copy()
    )
    gen = model.generate(seeds, 3 * seg, gibbs_steps, style=style_t.double(), seed=seed)
    speed = _root_speed_std_units(gen.double().numpy(), datamodule)
    out: list[dict[str, Any]] = []
    for i, (label, requested) in enumerate([("0–20 s", low), ("20–40 s", high), ("40–60 s", low)]):
        tail = speed[:, i * seg + seg // 2 : (i + 1) * seg]  # after the change settles
        out.append(
            {"segment": label, "requested": float(requested), "measured": float(tail.mean())}
        )
    return out


def _motion_pictures(
    out: Path,
    datamodule: Any,
    test: list[np.ndarray],
    gen_model: np.ndarray,
    gen_ar: np.ndarray,
    fps: float,
) -> dict[str, str]:
    """Joint-angle curves, root trajectories and a generated BVH."""
    from seqboltz.motion import local_translations, write_bvh
    from seqboltz.viz import plot_curves, plot_trajectories

    mf = datamodule.features
    names = mf.feature_names()
    real = test[0]
    dims = [int(i) for i in np.argsort(real.std(0))[::-1][:6]]
    n = min(gen_model.shape[1], round(10 * fps))
    files = {
        "curves": str(
            plot_curves(
                out / "curves.png",
                real[:, dims],
                gen_model[0, :n][:, dims],
                [names[i] for i in dims],
                fps,
                "generated (first 10 s) against real held-out motion, standardised units",
            )
        )
    }
    source = datamodule.source_clips("test")[0]
    initial = mf.initial_state(source)
    clips = {
        "real (held out)": mf.inverse_transform(real, initial),
        "model": mf.inverse_transform(gen_model[0], initial),
        "linear AR": mf.inverse_transform(gen_ar[0], initial),
    }
    up = {"x": 0, "y": 1, "z": 2}[mf.up_axis]
    ground = [a for a in range(3) if a != up]
    trajectories = {
        label: local_translations(c.skeleton, c.frames)[:, 0][:, ground]
        for label, c in clips.items()
    }
    files["trajectories"] = str(
        plot_trajectories(out / "root_trajectories.png", trajectories, "root on the ground plane")
    )
    bvh = out / "generated.bvh"
    write_bvh(bvh, clips["model"])
    files["bvh"] = str(bvh)
    return files
