"""Benchmark: MNIST-5k denoising with structured-output CRBMs (CD vs CD-PercLoss) and a baseline.

Mnih, Larochelle & Hinton (2011, "Conditional Restricted Boltzmann Machines for Structured Output
Prediction", UAI) predict a clean binary image ``y`` from a corrupted one ``x`` with a
conditional RBM ``p(y, h | x)``. This script compares, on the 1000 MNIST-5k test digits of
:class:`~seqboltz.data.MNISTDenoisingDataModule` (corrupted once, seeded per example):

* the corrupted input itself (reference);
* a per-pixel logistic regression: each output pixel a logistic regression on all of ``x``
  (one linear layer + sigmoid, BCE, L2 on the weights chosen on the validation split from a
  small grid, fitted to convergence by full-batch L-BFGS);
* an MLP with one hidden layer of the CRBM's size (sigmoid units) trained by backprop (Adam,
  weight decay chosen on validation, early stopping on validation pixel error), and with
  ``--mlp-direct`` the same MLP plus a direct linear input→output layer (the CRBM's
  connectivity: ``x`` reaches ``y`` through ``A`` and through the hidden units);
* ``recipes/mnist_denoise_crbm.yaml`` (CD) and ``recipes/mnist_denoise_crbm_percloss.yaml``
  (CD-PercLoss), each predicted by mean field and by deterministic "MAP" inference, from the
  checkpoint each recipe kept on ``val/output_error``.

The paired bootstrap (10,000 resamples of the test digits) gives the 95 % interval of the
difference in pixel error, CRBM (the recipe and inference best on validation) − logistic
regression.

Error: pixels wrong after thresholding at ½, against the clean binarised digit. Writes a PNG of
corrupted / CD / PercLoss / baseline / clean rows (one test digit per class). Run from the
repository root; without checkpoints it trains both recipes first (a few minutes on 2 cores)::

    python benchmarks/denoise.py [--cd CKPT] [--percloss CKPT] [--out runs/denoise] [--json PATH]

(``--cd`` / ``--percloss`` take any checkpoint of a structured CRBM on this data, whatever
its training.)
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
from _structured_common import (
    best_checkpoint,
    best_logistic,
    best_mlp,
    crbm_from_logistic,
    paired_bootstrap,
    train_structured,
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
MLP_DECAY_GRID = (1e-4, 1e-3)


def train_recipe(name: str, out: Path) -> Path:
    """``seqboltz fit`` the recipe into ``out/name``; returns the checkpoint it kept on
    ``val/output_error`` (``best.ckpt``; ``last.ckpt`` for a recipe without one)."""
    return best_checkpoint(fit_recipe(RECIPES[name], out / name, threads=1))


def training_label(checkpoint: Path) -> str:
    """``"CRBM, CD-k"`` (``", mean-field negative"``) or ``"CRBM, CD-PercLoss (k steps[,
    margin m])"`` from the checkpoint's settings."""
    hp = torch.load(checkpoint, map_location="cpu", weights_only=True).get("hyper_parameters", {})
    k = hp.get("k", 1)
    if hp.get("negative") == "perceptron":
        margin = hp.get("perceptron_margin", 0.0)
        return f"CRBM, CD-PercLoss ({k} steps" + (f", margin {margin:g})" if margin else ")")
    if hp.get("negative") == "exact":
        return "CRBM, exact conditional likelihood"
    label = f"CRBM, PCD-{k}" if hp.get("persistent") else f"CRBM, CD-{k}"
    return label + (", mean-field negative" if hp.get("negative") == "mean_field" else "")


def data_args(checkpoint: Path) -> dict[str, Any]:
    """The DataModule arguments a checkpoint was trained with."""
    ckpt = torch.load(checkpoint, map_location="cpu", weights_only=True)
    entry = ckpt.get("seqboltz", {}).get("data", {})
    if not entry.get("class_path", "").endswith("MNISTDenoisingDataModule"):
        raise SystemExit(f"{checkpoint} was not trained on MNISTDenoisingDataModule")
    return dict(entry["init_args"])


def pixel_error(pred: torch.Tensor, y: torch.Tensor) -> float:
    """Fraction of wrong pixels after thresholding at ½ (the MLP's early-stopping metric)."""
    return float(((pred > 0.5).float() != y).float().mean())


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
    p.add_argument("--bootstrap", type=int, default=10_000)
    p.add_argument("--skip-mlp", action="store_true", help="leave the MLP baseline out")
    p.add_argument(
        "--mlp-direct", action="store_true", help="also an MLP with a direct input→output path"
    )
    p.add_argument("--l2", type=float, help="the logistic regression's L2 (default: chosen on val)")
    p.add_argument(
        "--from-logistic",
        choices=("sample", "mean_field", "perceptron"),
        help="also train a CRBM started at the fitted logistic regression, with this negative",
    )
    p.add_argument("--fl-hidden", type=int, default=200, help="its hidden units")
    p.add_argument("--fl-k", type=int, default=10, help="its Gibbs / PercLoss steps")
    p.add_argument("--fl-lr", type=float, default=0.01, help="its SGD learning rate")
    p.add_argument("--fl-margin", type=float, default=0.0, help="its PercLoss margin")
    p.add_argument("--fl-epochs", type=int, default=20, help="its maximum epochs")
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    seed_all(0)
    torch.set_num_threads(1)
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
    per_image: dict[str, np.ndarray] = {}  # test pixel error per image, for the bootstrap

    def add(label: str, test_pred: torch.Tensor, val_pred: torch.Tensor, **extra: Any) -> None:
        e, ev = errors(test_pred, y_te), errors(val_pred, y_val)
        per_image[label] = ((test_pred > 0.5).float() != y_te).double().mean(1).numpy()
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
    l2_grid = L2_GRID if args.l2 is None else (args.l2,)
    l2, layer, info = best_logistic(x_tr, y_tr, x_val, y_val, l2_grid, pixel_error)
    lr_label = f"per-pixel logistic regression (L2 {l2:g})"
    with torch.no_grad():
        preds["baseline"] = torch.sigmoid(layer(x_te))
        add(lr_label, preds["baseline"], torch.sigmoid(layer(x_val)), fit=info)

    models = {name: load_model(ckpts[name]) for name in ("cd", "percloss")}
    if args.from_logistic:
        start = crbm_from_logistic(layer, args.fl_hidden)
        assert isinstance(start, StructuredOutputCRBM)
        start_err = float(start.prediction_errors(y_val, x_val)["output_error"])
        dm_fl = MNISTDenoisingDataModule(**{k: settings["cd"][k] for k in (*keys, "val_size")})
        ckpt, curve = train_structured(
            start,
            dm_fl,
            args.out / "from_logistic",
            args.fl_epochs,
            patience=5,
            k=args.fl_k,
            negative=args.from_logistic,
            perceptron_margin=args.fl_margin,
            lr=args.fl_lr,
            weight_decay=l2,  # the baseline's L2: its optimum stays a fixed point at W = 0
        )
        print(
            f"from logistic: val error at the start {start_err:.5f}, curve {curve}", file=sys.stderr
        )
        results["from_logistic"] = {"start_val_error": start_err, "val_curve": curve}
        ckpts["from_logistic"] = ckpt
        models["from_logistic"] = load_model(ckpt)
    for name, model in models.items():
        if not isinstance(model, StructuredOutputCRBM):
            raise SystemExit(f"{ckpts[name]} holds a {type(model).__name__}")
    for direct in (False, True) if args.mlp_direct else (False,):
        if args.skip_mlp:
            break
        n_hidden = models["cd"].n_hidden
        decay, net, mlp_info = best_mlp(
            x_tr,
            y_tr,
            x_val,
            y_val,
            n_hidden,
            MLP_DECAY_GRID,
            pixel_error,
            max_epochs=200,
            patience=10,
            batch_size=100,
            direct=direct,
        )
        path = " + direct input→output layer" if direct else ""
        with torch.no_grad():
            add(
                f"MLP, {n_hidden} sigmoid hidden units{path}, backprop (wd {decay:g})",
                torch.sigmoid(net(x_te)),
                torch.sigmoid(net(x_val)),
                fit=mlp_info,
            )
    chosen: tuple[float, str] | None = None

    for name, model in models.items():
        assert isinstance(model, StructuredOutputCRBM)
        label = training_label(ckpts[name])
        if name == "from_logistic":
            label += ", started at the logistic regression"
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
                if chosen is None or val_err < chosen[0]:
                    chosen = (val_err, what)
        assert best is not None
        preds[name] = best[1]  # the inference chosen on validation

    assert chosen is not None
    boot = paired_bootstrap(per_image[chosen[1]], per_image[lr_label], args.bootstrap)
    results["chosen_on_validation"] = chosen[1]
    results["bootstrap_crbm_minus_logistic"] = boot

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
    print(f"\nCRBM chosen on validation: {chosen[1]}")
    print(
        f"paired bootstrap ({args.bootstrap} resamples of the test digits), CRBM − logistic "
        f"regression, pixel error: {100 * boot['difference']:+.3f} points, 95 % interval "
        f"[{100 * boot['ci_low']:+.3f}, {100 * boot['ci_high']:+.3f}]"
    )
    print(f"\nfigure (rows: corrupted, CD, PercLoss, logistic regression, clean): {png}")
    results["checkpoints"] = {k: str(v) for k, v in ckpts.items()}
    results["figure"] = str(png)
    if args.json:
        dump_json(results, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
