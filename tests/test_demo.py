"""`seqboltz demo-mnist` end to end on real MNIST-5k, shortened."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from seqboltz.cli import main


@pytest.mark.realdata
@pytest.mark.slow
def test_demo_trains_evaluates_and_draws(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "demo"
    args = [
        "demo-mnist",
        "--epochs",
        "2",
        "--ais-betas",
        "300",
        "--sample-steps",
        "20",
        "--out",
        str(out),
    ]
    assert main(args) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["method"] == "ais" and report["n_test"] == 1000
    # two epochs of CD-1 on MNIST already beat the 784·log 2 = -543 nats of a blank model
    assert -400 < report["test_log_likelihood"] < -60
    assert report["log_z_low"] <= report["log_z"] <= report["log_z_high"]
    for name in ("samples.png", "filters.png"):
        picture = np.asarray(Image.open(out / name))
        assert picture.ndim == 2 and picture.shape[0] > 200 and picture.std() > 10
    assert "test log-likelihood" in capsys.readouterr().out
