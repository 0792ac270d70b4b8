"""Benchmark summary: the residual CRBM against the linear acoustic model over training seeds.

Each input is the ``--json`` of one ``benchmarks/tts.py`` run on the same corpus and split that
trained the residual CRBM with another ``--seed`` (the linear model is least squares, so it is
the same in every run; the script checks that its per-prompt MCD agrees). For each run the
paired MCD difference CRBM − linear over the held-out prompts, with its bootstrap interval;
then the pooled difference with a two-way bootstrap over training runs × prompts
(:func:`seqboltz.eval._motion_metrics.bootstrap_ci` on a ``(runs, prompts, 1)`` table), so one
lucky initialisation cannot pass. The GV ratio per run goes beside it (the issue's second
acoustic target: not smoother than the linear model).

    python benchmarks/tts_seeds.py benchmarks/tts_s9.json runs/a/seed1.json runs/b/seed2.json \
        --json benchmarks/tts_s10_seeds.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # `_common` when run as a script

from _common import dump_json

from seqboltz._io import atomic_write
from seqboltz.eval._motion_metrics import bootstrap_ci


def _pick(names: list[str], prefix: str, mlpg: bool) -> str:
    """The one system name starting with ``prefix`` whose MLPG-ness is ``mlpg``."""
    found = [n for n in names if n.startswith(prefix) and n.endswith(", MLPG") == mlpg]
    if len(found) != 1:
        raise SystemExit(f"expected one {prefix!r} system (MLPG {mlpg}); got {found}")
    return found[0]


def summarise(runs: list[dict[str, Any]], labels: list[str], mlpg: bool, n_boot: int) -> dict:
    """Per-run and pooled CRBM − linear figures of ``tts.py`` results on one split."""
    per_run: list[dict[str, Any]] = []
    diffs, linear_ref = [], None
    for label, run in zip(labels, runs, strict=True):
        names = list(run["per_prompt_mcd"])
        crbm = _pick(names, "residual CRBM", mlpg)
        linear = _pick(names, "linear", mlpg)
        a = np.asarray(run["per_prompt_mcd"][crbm], dtype=np.float64)
        b = np.asarray(run["per_prompt_mcd"][linear], dtype=np.float64)
        if linear_ref is None:
            linear_ref = (linear, b)
        elif linear != linear_ref[0] or b.shape != linear_ref[1].shape:
            raise SystemExit(f"{label}: another split or linear model ({linear}, {b.shape})")
        elif not np.allclose(b, linear_ref[1], atol=1e-6):
            raise SystemExit(f"{label}: the linear model's per-prompt MCD differs: not one split")
        diffs.append(a - b)
        acoustics = run["acoustics"]
        per_run.append(
            {
                "label": label,
                "system": crbm,
                "mcd_db": float(a.mean()),
                "linear_mcd_db": float(b.mean()),
                "difference": bootstrap_ci(a - b, n_boot=n_boot),
                "gv_ratio": acoustics[crbm]["gv_ratio"],
                "linear_gv_ratio": acoustics[linear]["gv_ratio"],
            }
        )
    table = np.stack(diffs)[:, :, None]  # (runs, prompts, 1)
    return {
        "mlpg": mlpg,
        "prompts": int(table.shape[1]),
        "runs": per_run,
        "pooled_difference": bootstrap_ci(table, n_boot=n_boot),
        "runs_better": sum(r["difference"][2] < 0 for r in per_run),
        "runs_worse": sum(r["difference"][1] > 0 for r in per_run),
    }


def format_summary(s: dict[str, Any]) -> str:
    head = "with MLPG" if s["mlpg"] else "without MLPG"
    lines = [
        f"CRBM − linear MCD over training runs, {head}, {s['prompts']} held-out prompts",
        "| run | CRBM MCD dB | linear MCD dB | paired difference [95 %] | GV ratio (linear) |",
        "|---|---|---|---|---|",
    ]
    for r in s["runs"]:
        m, lo, hi = r["difference"]
        lines.append(
            f"| {r['label']} | {r['mcd_db']:.3f} | {r['linear_mcd_db']:.3f} | "
            f"{m:+.3f} [{lo:+.3f}, {hi:+.3f}] | {r['gv_ratio']:.3f} ({r['linear_gv_ratio']:.3f}) |"
        )
    m, lo, hi = s["pooled_difference"]
    n = len(s["runs"])
    lines.append(
        f"pooled over {n} runs × prompts: {m:+.3f} [{lo:+.3f}, {hi:+.3f}]; "
        f"runs better by their own interval {s['runs_better']}/{n}, worse {s['runs_worse']}/{n}"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", nargs="+", type=Path, help="tts.py --json files, one a seed")
    parser.add_argument("--labels", nargs="+", help="a name per file (default: its stem)")
    parser.add_argument("--boot", type=int, default=10000)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    labels = args.labels or [p.stem for p in args.results]
    if len(labels) != len(args.results):
        parser.error(f"{len(labels)} labels for {len(args.results)} files")
    runs = []
    for path in args.results:
        try:
            runs.append(json.loads(path.read_text()))
        except (OSError, ValueError) as e:
            parser.error(f"{path}: not a tts.py result ({e})")
    out = {mode: summarise(runs, labels, mode == "mlpg", args.boot) for mode in ("mlpg", "plain")}
    print("\n\n".join(format_summary(s) for s in out.values()))
    if args.json is not None:
        out["files"] = [str(p) for p in args.results]
        atomic_write(args.json, lambda fh: fh.write(dump_json(out) + "\n"), text=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
