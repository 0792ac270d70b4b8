"""Benchmark and picture: the footskate cleanup (`seqboltz synthesize --plant-feet`) on what an
exported motion model generates, through the torch-free runtime.

For each seed, the model generates ``--seconds`` from its card's seed frames (what
``seqboltz synthesize`` writes); the clip is turned back into the rig as it is and with its
feet planted (:func:`seqboltz.motion.plant_feet`, on the floor the card records), and both are
measured with the evaluation's own foot-skating rule (speed of a foot joint in contact, on the
training clips' floor) beside how far the cleanup moved the body: the largest change of any
joint, and of the root's ground-plane path. A PNG shows, seen from above, the first seed's
foot joints over ``--picture-seconds``: as generated and planted, contact steps as dots (a
planted foot leaves footprints; a sliding one leaves smears).

Run from the repository root::

    python benchmarks/motion_foot_paths.py --model serving/models/motion_crbm.onnx \
        --seeds 10 --json benchmarks/motion_s18_foot_paths.json \
        --png benchmarks/figures/motion_s18_foot_paths.png
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # `_common` when run as a script

from _common import dump_json, format_machine_info, machine_info, markdown_table

from seqboltz._io import atomic_write
from seqboltz.eval._motion_metrics import foot_skating, ground_axes
from seqboltz.motion import MotionFeatures, foot_joints, forward_kinematics
from seqboltz.runtime import load_artifact


def _style(art: Any, values: list[float] | None) -> np.ndarray | None:
    if not art.style_size:
        return None
    if values is None or len(values) != art.style_size:
        raise SystemExit(f"model {art.name!r} needs --style with {art.style_size} value(s)")
    return np.asarray(values, dtype=np.float64)[None, :]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="serving/models/motion_crbm.onnx")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--style", type=float, nargs="+", help="a styled model's request")
    parser.add_argument("--picture-seconds", type=float, default=10.0)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--png", type=Path)
    args = parser.parse_args(argv)
    art = load_artifact(args.model, threads=1)
    features = MotionFeatures.from_dict(art.card["features"])
    if features.contact is None:
        parser.error(
            f"{args.model}: its card records no foot contacts (serving/models/add_contact.py)"
        )
    floor, threshold = features.contact
    sk = features.skeleton
    assert sk is not None
    feet = foot_joints(sk.names)
    up = features.up_axis
    g1, g2, u = ground_axes(up)
    fps = float(art.frame_rate or features.fps)
    n = round(args.seconds * fps)
    style = _style(art, args.style)
    rows, first = [], None
    t0 = time.perf_counter()
    for seed in range(args.seeds):
        kwargs: dict[str, Any] = {} if style is None else {"style": style}
        frames = art.generate(n, seed=seed, gibbs_steps=art.gibbs_steps, **kwargs)[0]
        raw = features.inverse_transform(frames, None, f"seed{seed}")
        planted, report = features.plant_feet(raw)
        p_raw = forward_kinematics(sk, raw.frames)
        p_new = forward_kinematics(sk, planted.frames)
        before = foot_skating(p_raw[:, feet], fps, floor, threshold, up)
        after = foot_skating(p_new[:, feet], fps, floor, threshold, up)
        # how far the body moved, apart from where the root went (root-relative joints)
        rel = (p_new - p_new[:, :1]) - (p_raw - p_raw[:, :1])
        rows.append(
            {
                "seed": seed,
                "skating_generated": before[0],
                "skating_planted": after[0],
                "contact_generated": before[1],
                "contact_planted": after[1],
                "ratio": after[0] / before[0] if before[0] else float("nan"),
                "max_joint_change": float(np.linalg.norm(rel, axis=-1).max()),
                "median_foot_change": float(np.median(np.linalg.norm(rel[:, feet], axis=-1))),
                "max_root_shift": report.max_root_shift,
                "max_residual": report.max_residual,
            }
        )
        if first is None:
            first = (p_raw, p_new)
    seconds = time.perf_counter() - t0
    keys = ["skating_generated", "skating_planted", "ratio", "contact_generated"]
    keys += ["max_joint_change", "median_foot_change", "max_root_shift"]
    mean = {k: float(np.mean([r[k] for r in rows])) for k in keys}
    print(format_machine_info(machine_info()))
    print(
        f"\n{art.name} ({args.model}), {args.seeds} seeds x {args.seconds:g} s through the runtime;"
        f" length unit: the rig's (floor and contact tolerance {threshold:.3g} from the card)\n"
    )
    print(markdown_table(["seed", *keys], [[r["seed"], *(r[k] for k in keys)] for r in rows], 2))
    print(markdown_table(["", *keys], [["mean", *(mean[k] for k in keys)]], 2))
    print(f"\n{seconds:.1f} s for generation and cleanup")
    if args.png is not None and first is not None:
        _picture(args.png, first, feet, sk.names, (g1, g2, u), floor, threshold, art, args)
        print(f"picture: {args.png}")
    if args.json is not None:
        result = {"machine": machine_info(), "model": args.model, "rows": rows, "mean": mean}
        atomic_write(args.json, lambda fh: fh.write(dump_json(result) + "\n"), text=True)
    return 0


def _picture(
    path: Path,
    first: tuple[np.ndarray, np.ndarray],
    feet: list[int],
    names: list[str],
    axes: tuple[int, int, int],
    floor: np.ndarray,
    threshold: float,
    art: Any,
    args: argparse.Namespace,
) -> None:
    from seqboltz.viz import _pyplot, _save_figure

    plt = _pyplot()
    g1, g2, u = axes
    k = round(args.picture_seconds * float(art.frame_rate or 30.0))
    fig, panels = plt.subplots(1, 2, figsize=(11, 5.2), sharex=True, sharey=True)
    shown = (("as generated", first[0]), ("--plant-feet", first[1]))
    for ax, (title, pos) in zip(panels, shown, strict=True):
        for c, j in enumerate(feet):
            path_j = pos[:k, j]
            low = path_j[:, u] < floor[c] + threshold
            ax.plot(path_j[:, g2], path_j[:, g1], lw=0.7, color=f"C{c}", label=names[j])
            ax.plot(path_j[low, g2], path_j[low, g1], ".", ms=2.5, color=f"C{c}")
        ax.set_title(f"{title}: foot joints, first {args.picture_seconds:g} s (dots: on the floor)")
        ax.set_aspect("equal")
        ax.set_xlabel("ground axis 2")
    panels[0].set_ylabel("ground axis 1")
    panels[0].legend(fontsize=7)
    fig.suptitle(f"{art.name}, seed 0, seen from above")
    fig.tight_layout()
    _save_figure(fig, path)


if __name__ == "__main__":
    raise SystemExit(main())
