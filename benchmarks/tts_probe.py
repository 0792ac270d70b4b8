"""Probe: can *any* one-hidden-layer function of the linguistic controls improve on the
least-squares acoustic model's conditional mean? (Issue 14, target "the CRBM beats the linear
acoustic model on MCD".)

The residual CRBM's mean-field conditional mean, one pass from the linear prediction
(``r = 0``), is ``u = â + W σ(b + c Q [+ x B])``: the linear model plus a one-hidden-layer
network of the controls ``c`` (and the history ``x``). CD fits ``W, Q, B`` to the *density*
of the residual, not to its mean; this probe instead fits that same network directly to the
least-squares model's residual by squared error (Adam, zero-initialised output, the best
epoch on the validation prompts kept): the most that hidden units of this form could add to
the conditional mean. If the fitted network cannot lower even the *training* residual, the
CRBM cannot beat the linear model on MCD through its mean with these controls.

Reported: teacher-forced residual mean square (standardised units, all ``D`` columns) on the
training and validation prompts, per epoch; then the validation prompts' free-running MCD of
the linear model and of linear + network, plain and with MLPG (each model's own free-running
error variances on 40 training prompts, as ``benchmarks/tts.py``).

    python benchmarks/tts_probe.py [--hidden 256 512] [--lr 1e-3 1e-4] [--history] \\
        [--epochs 20] [--json benchmarks/tts_probe.json]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import dump_json, markdown_table, seed_all, set_threads
from tts import (
    apply_mlpg,
    design,
    fit_linear,
    free_running_variances,
    generate_linear_batch,
    score_frames,
)

from seqboltz.data import TTSDataModule


def fit_network(
    inputs: np.ndarray,
    residual: np.ndarray,
    val_inputs: np.ndarray,
    val_residual: np.ndarray,
    hidden: int,
    lr: float,
    epochs: int,
    seed: int,
) -> tuple[torch.nn.Module, list[dict[str, float]]]:
    """``W σ(A z + b) + a`` fitted to ``residual`` by squared error; the epoch with the lowest
    validation mean square is kept. Returns the network (float64) and the per-epoch log."""
    seed_all(seed)
    x, r = torch.from_numpy(inputs).float(), torch.from_numpy(residual).float()
    xv, rv = torch.from_numpy(val_inputs).float(), torch.from_numpy(val_residual).float()
    net = torch.nn.Sequential(
        torch.nn.Linear(x.shape[1], hidden), torch.nn.Sigmoid(), torch.nn.Linear(hidden, r.shape[1])
    )
    torch.nn.init.zeros_(net[2].weight)  # starts exactly at the linear model
    torch.nn.init.zeros_(net[2].bias)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    best, state, log = float("inf"), None, []
    for epoch in range(epochs):
        for idx in torch.randperm(len(x)).split(256):
            loss = ((net(x[idx]) - r[idx]) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            row = {
                "epoch": epoch,
                "train_ms": float(((net(x) - r) ** 2).mean()),
                "val_ms": float(((net(xv) - rv) ** 2).mean()),
            }
        log.append(row)
        print(f"  epoch {epoch}: {row}", file=sys.stderr, flush=True)
        if row["val_ms"] < best:
            best, state = row["val_ms"], {k: v.clone() for k, v in net.state_dict().items()}
    assert state is not None
    net.load_state_dict(state)
    return net.double().eval(), log


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hidden", type=int, nargs="+", default=[256])
    parser.add_argument("--lr", type=float, nargs="+", default=[1e-3])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--history", action="store_true", help="the network sees the history")
    parser.add_argument("--history-noise", type=float, default=3.0, help="the linear model's")
    parser.add_argument("--val-fraction", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    set_threads(args.threads)
    dm = TTSDataModule(val_fraction=args.val_fraction, deltas=True)
    dm.prepare_data()
    dm.setup()
    wf = dm.features
    assert wf is not None
    order, columns = dm.order, dm.delta_columns
    clips, controls = dm.clips("train"), dm.control_clips("train")
    v_clips, v_ctl = dm.clips("val"), dm.control_clips("val")
    v_seeds, v_real = [z[:order] for z in v_clips], [p.frames for p in dm.prompts("val")]
    w = fit_linear(clips, controls, order, history_noise=args.history_noise)
    x, y = design(clips, controls, order)
    xv, yv = design(v_clips, v_ctl, order)
    n_hist = order * y.shape[1]
    inputs = (lambda a: a[:, :-1]) if args.history else (lambda a: a[:, n_hist:-1])
    res, res_v = y - x @ w, yv - xv @ w

    def free_running(net: torch.nn.Module | None) -> dict[str, float]:
        def gen(seeds: list[np.ndarray], ctls: list[np.ndarray]) -> list[np.ndarray]:
            if net is None:
                return generate_linear_batch(w, seeds, ctls)
            out = []
            with torch.no_grad():
                for seed, c in zip(seeds, ctls, strict=True):
                    frames = list(seed)
                    for t in range(order, c.shape[0]):
                        z = np.concatenate([*(frames[t - k] for k in range(1, order + 1)), c[t]])
                        row = np.concatenate([z, [1.0]])
                        extra = net(torch.from_numpy(inputs(row[None]))).numpy()[0]
                        frames.append(row @ w + extra)
                    out.append(np.stack(frames))
            return out

        gens = gen(v_seeds, v_ctl)
        var = free_running_variances(gen, clips[:40], controls[:40], order)
        return {
            "mcd_db": score_frames(v_real, gens, wf)["mcd_db"],
            "mcd_db_mlpg": score_frames(v_real, [apply_mlpg(g, var, columns) for g in gens], wf)[
                "mcd_db"
            ],
        }

    results: dict[str, Any] = {
        "linear": {
            "train_ms": float((res**2).mean()),
            "val_ms": float((res_v**2).mean()),
            **free_running(None),
        },
        "networks": {},
        "settings": vars(args),
    }
    for hidden in args.hidden:
        for lr in args.lr:
            name = f"H {hidden}, lr {lr:g}" + (", with history" if args.history else "")
            print(name, file=sys.stderr, flush=True)
            tick = time.perf_counter()
            net, log = fit_network(
                inputs(x), res, inputs(xv), res_v, hidden, lr, args.epochs, args.seed
            )
            best = min(log, key=lambda r: r["val_ms"])
            results["networks"][name] = {
                "best_epoch": best["epoch"],
                "train_ms": best["train_ms"],
                "val_ms": best["val_ms"],
                "min_train_ms": min(r["train_ms"] for r in log),
                **free_running(net),
                "seconds": time.perf_counter() - tick,
                "log": log,
            }
    rows = [["linear (least squares)", *(results["linear"][k] for k in _COLS)]]
    rows += [[n, *(r[k] for k in _COLS)] for n, r in results["networks"].items()]
    print(markdown_table(["model", *_COLS], rows, digits=4))
    if args.json:
        dump_json(results, args.json)
    return results


_COLS = ["train_ms", "val_ms", "mcd_db", "mcd_db_mlpg"]


if __name__ == "__main__":
    main()
