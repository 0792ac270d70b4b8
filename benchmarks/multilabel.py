"""Benchmark: multi-label classification on Yeast with a structured-output CRBM and two baselines.

Mnih, Larochelle & Hinton (2011, "Conditional Restricted Boltzmann Machines for Structured Output
Prediction", UAI) apply conditional RBMs ``p(y, h | x)`` to structured outputs in small output
spaces such as label sets. Data: Yeast (MULAN; :class:`~seqboltz.data.YeastDataModule`,
1200 train / 300 val / 917 test genes, 103 standardised features, 14 labels).

**Primary metric, named before any run: subset accuracy** (the fraction of test genes whose
whole label set is predicted exactly: the metric of a *structured* prediction, the one where
modelling label dependencies can pay). Beside it: Hamming loss (= the mean per-label error) and
each label's error (JSON). Compared on the test genes:

* independent logistic regressions (one per label, L-BFGS, L2 chosen on validation subset
  accuracy from a grid);
* an MLP with one hidden layer of the CRBM's size (sigmoid units) trained by backprop (Adam,
  weight decay chosen on validation, early stopping on validation subset accuracy);
* the CRBM(s) given (default: ``recipes/multilabel_crbm.yaml`` trained here, its checkpoint
  kept on ``val/subset_error``), with every inference (exact most probable label set, exact
  marginals thresholded at ½, mean field, MAP); the row used for the comparison is the one
  best on validation.

The paired bootstrap (10,000 resamples of the test genes) gives the 95 % interval of the
difference CRBM − logistic regression in subset accuracy and in Hamming loss. Run from the
repository root::

    python benchmarks/multilabel.py [--crbm NAME=CKPT ...] [--out runs/multilabel] [--json PATH]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # `_common` when run as a script

from _common import dump_json, fit_recipe, format_machine_info, machine_info, markdown_table
from _structured_common import best_checkpoint, best_logistic, best_mlp, paired_bootstrap

from seqboltz.data import YeastDataModule
from seqboltz.models import StructuredOutputCRBM, load_model

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "recipes" / "multilabel_crbm.yaml"
L2_GRID = (1e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0)
MLP_DECAY_GRID = (1e-4, 1e-3, 1e-2)
INFERENCES = (
    ("exact_map", "zeros"),
    ("exact", "zeros"),
    ("mean_field", "zeros"),
    ("mean_field", "input"),
    ("map", "zeros"),
    ("map", "input"),
)


def scores(pred: torch.Tensor, y: torch.Tensor) -> dict[str, np.ndarray]:
    """Per-example ``subset_correct (N,)`` and ``label_errors (N,)`` (fraction of wrong labels),
    and per-label ``label_error (D,)``, for predictions thresholded at ½."""
    wrong = ((pred > 0.5) != (y > 0.5)).double().numpy()
    return {
        "subset_correct": (wrong.sum(1) == 0).astype(np.float64),
        "label_errors": wrong.mean(1),
        "label_error": wrong.mean(0),
    }


def subset_error(pred: torch.Tensor, y: torch.Tensor) -> float:
    return 1.0 - float(scores(pred, y)["subset_correct"].mean())


def data_args(checkpoint: Path) -> dict[str, Any]:
    ckpt = torch.load(checkpoint, map_location="cpu", weights_only=True)
    entry = ckpt.get("seqboltz", {}).get("data", {})
    if not entry.get("class_path", "").endswith("YeastDataModule"):
        raise SystemExit(f"{checkpoint} was not trained on YeastDataModule")
    return {k: entry["init_args"][k] for k in ("val_size", "split_seed", "standardize")}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--crbm", action="append", default=[], help="NAME=CKPT (repeatable)")
    p.add_argument("--out", type=Path, default=Path("runs/multilabel"))
    p.add_argument("--bootstrap", type=int, default=10_000)
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    torch.manual_seed(0)
    torch.set_num_threads(1)
    ckpts = dict(c.rsplit("=", 1) for c in args.crbm) if args.crbm else {}
    if not ckpts:
        ckpts = {"CRBM (recipe)": str(best_checkpoint(fit_recipe(RECIPE, args.out, threads=1)))}
    settings = {name: data_args(Path(c)) for name, c in ckpts.items()}
    first = next(iter(settings.values()))
    if any(s != first for s in settings.values()):
        raise SystemExit(f"the checkpoints saw different data settings: {settings}")
    dm = YeastDataModule(**first)
    dm.setup()
    y_tr, x_tr = dm.pairs("train")
    y_val, x_val = dm.pairs("val")
    y_te, x_te = dm.pairs("test")

    rows: list[list[Any]] = []
    results: dict[str, Any] = {"data": first, "rows": {}, "checkpoints": ckpts}
    test_scores: dict[str, dict[str, np.ndarray]] = {}

    def add(label: str, test_pred: torch.Tensor, val_pred: torch.Tensor, **extra: Any) -> float:
        s, sv = scores(test_pred, y_te), scores(val_pred, y_val)
        test_scores[label] = s
        row = {
            "test_subset_accuracy_pct": 100 * s["subset_correct"].mean(),
            "test_hamming_loss_pct": 100 * s["label_errors"].mean(),
            "val_subset_accuracy_pct": 100 * sv["subset_correct"].mean(),
            "val_hamming_loss_pct": 100 * sv["label_errors"].mean(),
            "test_label_error_pct": (100 * s["label_error"]).round(2).tolist(),
            **extra,
        }
        results["rows"][label] = row
        rows.append([label, *(row[k] for k in list(row)[:4])])
        return float(sv["subset_correct"].mean())

    prior = (y_tr.mean(0) > 0.5).float().expand_as(y_te)
    add("most frequent label set per label (reference)", prior, prior[: len(y_val)])

    l2, layer, info = best_logistic(x_tr, y_tr, x_val, y_val, L2_GRID, subset_error)
    lr_label = f"independent logistic regressions (L2 {l2:g})"
    with torch.no_grad():
        add(lr_label, torch.sigmoid(layer(x_te)), torch.sigmoid(layer(x_val)), fit=info)

    crbms: dict[str, StructuredOutputCRBM] = {}
    for name, c in ckpts.items():
        model = load_model(c)
        if not isinstance(model, StructuredOutputCRBM):
            raise SystemExit(f"{c} holds a {type(model).__name__}")
        crbms[name] = model.double()
    n_hidden = next(iter(crbms.values())).n_hidden
    decay, net, info = best_mlp(x_tr, y_tr, x_val, y_val, n_hidden, MLP_DECAY_GRID, subset_error)
    with torch.no_grad():
        add(
            f"MLP, {n_hidden} sigmoid hidden units, backprop (wd {decay:g})",
            torch.sigmoid(net(x_te)),
            torch.sigmoid(net(x_val)),
            fit=info,
        )

    chosen: tuple[float, str] | None = None
    for name, model in crbms.items():
        for method, start in INFERENCES:
            what = f"{name}, {method.replace('_', ' ')}" + (
                f", y₀ = {start}" if method in ("mean_field", "map") else ""
            )
            val_acc = add(
                what,
                model.predict(x_te.double(), method, 50, start).float(),  # type: ignore[arg-type]
                model.predict(x_val.double(), method, 50, start).float(),  # type: ignore[arg-type]
            )
            if chosen is None or val_acc > chosen[0]:
                chosen = (val_acc, what)
    assert chosen is not None

    crbm_s, lr_s = test_scores[chosen[1]], test_scores[lr_label]
    boot = {
        "subset_accuracy": paired_bootstrap(
            crbm_s["subset_correct"], lr_s["subset_correct"], args.bootstrap
        ),
        "hamming_loss": paired_bootstrap(
            crbm_s["label_errors"], lr_s["label_errors"], args.bootstrap
        ),
    }
    results["chosen_on_validation"] = chosen[1]
    results["bootstrap_crbm_minus_logistic"] = boot

    print(format_machine_info(machine_info()))
    print(
        f"\nYeast multi-label, {len(y_tr)} train / {len(y_val)} val / {len(y_te)} test genes, "
        f"{y_te.shape[1]} labels; primary metric: subset accuracy\n"
    )
    print(
        markdown_table(
            [
                "method",
                "test subset accuracy %",
                "test Hamming loss % (mean per-label error)",
                "val subset accuracy %",
                "val Hamming loss %",
            ],
            rows,
            digits=[0, 2, 2, 2, 2],
        )
    )
    print(f"\nCRBM chosen on validation: {chosen[1]}")
    for metric, b in boot.items():
        print(
            f"paired bootstrap ({args.bootstrap} resamples of the test genes), CRBM − logistic "
            f"regression, {metric}: {100 * b['difference']:+.2f} points, 95 % interval "
            f"[{100 * b['ci_low']:+.2f}, {100 * b['ci_high']:+.2f}]"
        )
    if args.json:
        dump_json(results, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
