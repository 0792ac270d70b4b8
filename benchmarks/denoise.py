"""Benchmark: MNIST-5k denoising with structured-output CRBMs (CD vs CD-PercLoss) and a baseline.

Mnih, Larochelle & Hinton (2011, "Conditional Restricted Boltzmann Machines for Structured Output
Prediction", UAI) predict a clean binary image ``y`` from a corrupted one ``x`` with a
conditional RBM ``p(y, h | x)``. This script compares, on the 1000 MNIST-5k test digits of
:class:`~seqboltz.data.MNISTDenoisingDataModule` (corrupted once, seeded per example):

* the corrupted input itself (reference);
* a per-pixel logistic regression: each output pixel a logistic regression on all of ``x``
  (one linear layer + sigmoid, BCE, L2 on the weights chosen on the validation split from a
  small grid, fitted to convergence by full-batch L-BFGS);
* ``recipes/mnist_denoise_crbm.yaml`` (CD-1) and ``recipes/mnist_denoise_crbm_percloss.yaml``
  (CD-PercLoss), each predicted by mean field and by deterministic "MAP" inference.

Error: pixels wrong after thresholding at ½, against the clean binarised digit. Writes a PNG of
corrupted / CD / PercLoss / baseline / clean rows (one test digit per class). Run from the
repository root; without checkpoints it trains both recipes first (a few minutes on 2 cores)::

    python benchmarks/denoise.py [--cd CKPT] [--percloss CKPT] [--out runs/denoise] [--json PATH]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # `_common` when run as a script

from _common import (
    dump_json,
    fit_recipe,
    format_machine_info,
    machine_info,
    markdown_table,
    seed_all,
)

from seqboltz.data import MNISTDenoisingDataModule
from seqboltz.models import StructuredOutputCRBM, load_model
from seqboltz.viz import image_grid, save_png

REPO = Path(__file__).resolve().parents[1]
RECIPES = {
    "cd": REPO / "recipes" / "mnist_denoise_crbm.yaml",
    "percloss": REPO / "recipes" / "mnist_denoise_crbm_percloss.yaml",
}
L2_GRID = (1e-3, 1e-2, 1e-1)


def train_recipe(name: str, out: Path) -> Path:
    """``seqboltz fit`` the recipe into ``out/name``; returns its ``last.ckpt``."""
    return fit_recipe(RECIPES[name], out / name)


def training_label(checkpoint: Path) -> str:
    """``"CRBM, CD-k"`` or ``"CRBM, CD-PercLoss (k steps)"`` from the checkpoint's settings."""
    hp = torch.load(checkpoint, map_location="cpu", weights_only=True).get("hyper_parameters", {})
    k = hp.get("k", 1)
    if hp.get("negative") == "perceptron":
        return f"CRBM, CD-PercLoss ({k} steps)"
    return f"CRBM, PCD-{k}" if hp.get("persistent") else f"CRBM, CD-{k}"


def data_args(checkpoint: Path) -> dict[str, Any]:
    """The DataModule arguments a checkpoint was trained with."""
    ckpt = torch.load(checkpoint, map_location="cpu", weights_only=True)
    entry = ckpt.get("seqboltz", {}).get("data", {})
    if not entry.get("class_path", "").endswith("MNISTDenoisingDataModule"):
        raise SystemExit(f"{checkpoint} was not trained on MNISTDenoisingDataModule")
    return dict(entry["init_args"])


def fit_logistic(
    x: torch.Tensor, y: torch.Tensor, l2: float, max_iter: int = 300
) -> tuple[torch.nn.Linear, dict[str, float]]:
    """Per-pixel logistic regressions ``y ≈ sigm(x Wᵀ + c)``: mean BCE + ``l2/2 ‖W‖²`` by L-BFGS.

    Full batch, strong-Wolfe line search, until the largest gradient entry is below 1e-5 or
    ``max_iter`` iterations (the returned ``grad_max`` says how converged it is).
    """
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

    def closure() -> torch.Tensor:
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


def errors(pred: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    wrong = ((pred > 0.5).float() != y).float()
    per_image = wrong.sum(1)
    return {
        "pixel_error_pct": 100 * float(wrong.mean()),
        "wrong_per_image_mean": float(per_image.mean()),
        "wrong_per_image_median": float(per_image.median()),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cd", type=Path, help="checkpoint of recipes/mnist_denoise_crbm.yaml")
    p.add_argument("--percloss", type=Path, help="checkpoint of the CD-PercLoss recipe")
    p.add_argument("--out", type=Path, default=Path("runs/denoise"))
    p.add_argument("--figure", type=Path, default=REPO / "benchmarks/figures/denoise_examples.png")
    p.add_argument("--n-steps", type=int, default=30, help="inference steps (mean field, MAP)")
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    seed_all(0)
    ckpts = {
        "cd": args.cd or train_recipe("cd", args.out),
        "percloss": args.percloss or train_recipe("percloss", args.out),
    }
    settings = {name: data_args(c) for name, c in ckpts.items()}
    keys = ("corruption", "noise_rate", "n_blocks", "block_size", "fill", "corruption_seed")
    if any(settings["cd"].get(k) != settings["percloss"].get(k) for k in keys):
        raise SystemExit(f"the checkpoints saw different corruptions: {settings}")
    dm = MNISTDenoisingDataModule(**{k: settings["cd"][k] for k in (*keys, "val_size")})
    dm.setup()
    y_tr, x_tr = dm.pairs("train")
    y_val, x_val = dm.pairs("val")
    y_te, x_te = dm.pairs("test")

    rows: list[list[Any]] = []
    results: dict[str, Any] = {"data": {k: settings["cd"][k] for k in keys}, "rows": {}}
    preds: dict[str, torch.Tensor] = {}

    def add(label: str, test_pred: torch.Tensor, val_pred: torch.Tensor, **extra: Any) -> None:
        e, ev = errors(test_pred, y_te), errors(val_pred, y_val)
        results["rows"][label] = {**e, "val_pixel_error_pct": ev["pixel_error_pct"], **extra}
        rows.append(
            [
                label,
                e["pixel_error_pct"],
                e["wrong_per_image_mean"],
                e["wrong_per_image_median"],
                ev["pixel_error_pct"],
            ]
        )

    add("corrupted input x (reference)", x_te, x_val)

    # baseline: L2 chosen on validation pixel error
    fits = []
    for l2 in L2_GRID:
        layer, info = fit_logistic(x_tr, y_tr, l2)
        with torch.no_grad():
            val_err = errors(torch.sigmoid(layer(x_val)), y_val)["pixel_error_pct"]
        print(f"logistic l2={l2:g}: val {val_err:.3f}% {info}", file=sys.stderr)
        fits.append((val_err, l2, layer, info))
    _, l2, layer, info = min(fits, key=lambda f: f[0])
    with torch.no_grad():
        preds["baseline"] = torch.sigmoid(layer(x_te))
        add(
            f"per-pixel logistic regression (L2 {l2:g})",
            preds["baseline"],
            torch.sigmoid(layer(x_val)),
            fit=info,
        )

    for name in ("cd", "percloss"):
        label = training_label(ckpts[name])
        model = load_model(ckpts[name])
        if not isinstance(model, StructuredOutputCRBM):
            raise SystemExit(f"{ckpts[name]} holds a {type(model).__name__}")
        best: tuple[float, torch.Tensor] | None = None
        for method in ("mean_field", "map"):
            for y_start in ("zeros", "input"):
                start = time.perf_counter()
                test_pred = model.predict(x_te, method, args.n_steps, y_start)
                seconds = time.perf_counter() - start
                val_pred = model.predict(x_val, method, args.n_steps, y_start)
                what = f"{label}, {method.replace('_', ' ')}, y₀ = {y_start}"
                add(what, test_pred, val_pred, seconds=seconds)
                val_err = errors(val_pred, y_val)["pixel_error_pct"]
                if best is None or val_err < best[0]:
                    best = (val_err, test_pred)
        assert best is not None
        preds[name] = best[1]  # the inference chosen on validation

    # one test digit per class, the first of each
    test_labels = dm.labels("test")
    pick = [int(np.flatnonzero(test_labels == c)[0]) for c in range(10)]
    figure_rows = [x_te, preds["cd"], preds["percloss"], preds["baseline"], y_te]
    images = torch.cat([(r[pick] > 0.5).float() if r is not x_te else r[pick] for r in figure_rows])
    png = save_png(args.figure, image_grid(images.reshape(-1, 28, 28).numpy(), ncols=10, scale=3))

    print(format_machine_info(machine_info()))
    print(
        f"\nMNIST-5k denoising, {len(y_tr)} train / {len(y_val)} val / {len(y_te)} test digits; "
        f"corruption {results['data']}\n"
    )
    print(
        markdown_table(
            [
                "method",
                "test pixel error %",
                "wrong pixels / image",
                "median / image",
                "val pixel error %",
            ],
            rows,
            digits=[0, 2, 1, 0, 2],
        )
    )
    print(f"\nfigure (rows: corrupted, CD, PercLoss, logistic regression, clean): {png}")
    results["checkpoints"] = {k: str(v) for k, v in ckpts.items()}
    results["figure"] = str(png)
    if args.json:
        dump_json(results, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
