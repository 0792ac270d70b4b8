"""Benchmark: convolutional-RBM pooling features against raw pixels for digit classification.

Loads a ``ConvolutionalRBM`` checkpoint trained by ``recipes/mnist_conv_rbm.yaml`` (and, with
``--upper``, the second layer trained greedily by ``recipes/mnist_conv_dbn_layer2.yaml``) and fits
one multinomial logistic regression (scikit-learn, same settings) on each of

* the raw pixels (784 values),
* layer 1's pooling probabilities ``P(p = 1 | v)`` (``K × Hp × Wp`` values),
* layer 2's pooling probabilities, bottom-up and with joint mean-field inference (top-down input
  into layer 1's pooling softmax, :class:`~seqboltz.models.ConvolutionalDBN`), and both layers,

on MNIST-5k's 4000 training images, scoring both on the same 1000 test images (intensities,
not binarised). Also writes PNGs of both layers' filters and joint samples. From the repository
root::

    python benchmarks/conv_features.py LAYER1.ckpt [--upper LAYER2.ckpt] [--out DIR] [--json P]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

sys.path.insert(0, str(Path(__file__).resolve().parent))  # `_common` when run as a script

from _common import dump_json, format_machine_info, machine_info, markdown_table

from seqboltz.data import mnist5k_split
from seqboltz.models import ConvolutionalDBN, ConvolutionalRBM, load_model
from seqboltz.viz import save_png


def accuracy(
    train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray
) -> tuple[float, float]:
    scaler = StandardScaler().fit(train_x)
    clf = LogisticRegression(max_iter=2000, C=0.1)
    start = time.perf_counter()
    clf.fit(scaler.transform(train_x), train_y)
    return float(clf.score(scaler.transform(test_x), test_y)), time.perf_counter() - start


def _extract(fn: Callable[[torch.Tensor], torch.Tensor], x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        parts = [fn(torch.from_numpy(c.astype(np.float32))) for c in np.array_split(x, 10)]
    return torch.cat(parts).flatten(1).numpy()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("checkpoint", help="layer 1: recipes/mnist_conv_rbm.yaml's checkpoint")
    p.add_argument("--upper", help="layer 2: recipes/mnist_conv_dbn_layer2.yaml's checkpoint")
    p.add_argument("--mean-field-steps", type=int, default=10)
    p.add_argument("--out", type=Path, default=Path("runs/conv_features"))
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    model = load_model(args.checkpoint)
    if not isinstance(model, ConvolutionalRBM):
        raise SystemExit(
            f"{args.checkpoint} holds a {type(model).__name__}, not a ConvolutionalRBM"
        )
    split = mnist5k_split(seed=0)
    sets: list[tuple[str, Callable[[torch.Tensor], torch.Tensor] | None]] = [
        ("raw pixels", None),
        ("layer 1 pooling (greedy)", model.pooling_probs),
    ]
    pictures = {"conv_filters": model.pictures()["filters"]}
    if args.upper:
        dbn = ConvolutionalDBN.from_checkpoints(args.checkpoint, args.upper)
        steps = args.mean_field_steps
        sets += [
            ("layer 2 pooling (bottom-up only)", lambda v: dbn.infer(v, 0).p2),
            (
                f"layer 2 pooling (joint mean field, {steps} steps)",
                lambda v: dbn.infer(v, steps).p2,
            ),
            (
                f"layers 1 + 2 pooling (joint mean field, {steps} steps)",
                lambda v: dbn.features(v, steps),
            ),
        ]
        test = torch.from_numpy(split.test_x[:8].astype(np.float32))
        more = dbn.pictures(torch.Generator().manual_seed(0), test)
        pictures |= {f"conv_dbn_{k}": v for k, v in more.items() if k != "filters_layer1"}
    rows, results = [], {}
    for label, fn in sets:
        tr = split.train_x if fn is None else _extract(fn, split.train_x)
        te = split.test_x if fn is None else _extract(fn, split.test_x)
        acc, seconds = accuracy(tr, split.train_y, te, split.test_y)
        results[label] = {"accuracy": acc, "dims": int(tr.shape[1]), "fit_seconds": seconds}
        rows.append([label, int(tr.shape[1]), 100 * acc, 100 * (1 - acc)])
    args.out.mkdir(parents=True, exist_ok=True)
    pngs = [save_png(args.out / f"{name}.png", pic) for name, pic in pictures.items()]
    print(format_machine_info(machine_info()))
    print("\nMNIST-5k, 4000 train / 1000 test, logistic regression (C = 0.1) on each\n")
    print(
        markdown_table(
            ["features", "dims", "test accuracy %", "test error %"], rows, digits=[0, 0, 1, 1]
        )
    )
    print("\npictures: " + ", ".join(str(p) for p in pngs))
    if args.json:
        dump_json({"machine": machine_info(), "results": results}, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
