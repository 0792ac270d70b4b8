"""Benchmark: convolutional-RBM pooling features against raw pixels for digit classification.

Loads a ``ConvolutionalRBM`` checkpoint trained by ``recipes/mnist_conv_rbm.yaml`` and fits
one multinomial logistic regression (scikit-learn, same settings) on each of

* the raw pixels (784 values), and
* the pooling layer's probabilities ``P(p = 1 | v)`` (``K × Hp × Wp`` values),

on MNIST-5k's 4000 training images, scoring both on the same 1000 test images (intensities,
not binarised). Also writes a PNG of the learned filters. Run from the repository root::

    python benchmarks/conv_features.py CHECKPOINT [--out runs/conv_features] [--json PATH]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

sys.path.insert(0, str(Path(__file__).resolve().parent))  # `_common` when run as a script

from _common import dump_json, format_machine_info, machine_info, markdown_table

from seqboltz.data import mnist5k_split
from seqboltz.models import ConvolutionalRBM, load_model
from seqboltz.viz import save_png


def accuracy(
    train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray
) -> tuple[float, float]:
    scaler = StandardScaler().fit(train_x)
    clf = LogisticRegression(max_iter=2000, C=0.1)
    start = time.perf_counter()
    clf.fit(scaler.transform(train_x), train_y)
    return float(clf.score(scaler.transform(test_x), test_y)), time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("checkpoint")
    p.add_argument("--out", type=Path, default=Path("runs/conv_features"))
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    model = load_model(args.checkpoint)
    if not isinstance(model, ConvolutionalRBM):
        raise SystemExit(
            f"{args.checkpoint} holds a {type(model).__name__}, not a ConvolutionalRBM"
        )
    split = mnist5k_split(seed=0)
    with torch.no_grad():
        feats = {
            name: model.pooling_probs(torch.from_numpy(x.astype(np.float32)))
            .reshape(x.shape[0], -1)
            .numpy()
            for name, x in (("train", split.train_x), ("test", split.test_x))
        }
    rows, results = [], {}
    for label, tr, te in (
        ("raw pixels", split.train_x, split.test_x),
        (f"conv RBM pooling features ({feats['train'].shape[1]})", feats["train"], feats["test"]),
    ):
        acc, seconds = accuracy(tr, split.train_y, te, split.test_y)
        results[label] = {"accuracy": acc, "dims": int(tr.shape[1]), "fit_seconds": seconds}
        rows.append([label, int(tr.shape[1]), 100 * acc, 100 * (1 - acc)])
    picture = model.pictures()["filters"]
    args.out.mkdir(parents=True, exist_ok=True)
    png = save_png(args.out / "conv_filters.png", picture)
    print(format_machine_info(machine_info()))
    print("\nMNIST-5k, 4000 train / 1000 test, logistic regression (C = 0.1) on each\n")
    print(
        markdown_table(
            ["features", "dims", "test accuracy %", "test error %"], rows, digits=[0, 0, 1, 1]
        )
    )
    print(f"\nfilters: {png}")
    if args.json:
        dump_json({"machine": machine_info(), "results": results}, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
