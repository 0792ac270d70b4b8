"""A real server process over loopback, serving tiny exported models."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from serving_helpers import Server, start_server

from seqboltz.export import build_card, export_onnx
from seqboltz.models import ConditionalRBM, FactoredConditionalRBM

D, H, ORDER, K = 8, 12, 3, 5


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    crbm = ConditionalRBM(D, H, ORDER, init_std=0.1).double()
    export_onnx(
        crbm, folder / "crbm.onnx", build_card(crbm, name="crbm", gibbs_steps=K, frame_rate=30.0), K
    )
    torch.manual_seed(1)
    fcrbm = FactoredConditionalRBM(D, H, ORDER, n_style=1, n_factors=6, init_std=0.3).double()
    export_onnx(
        fcrbm,
        folder / "fcrbm.onnx",
        build_card(fcrbm, name="fcrbm", gibbs_steps=K, frame_rate=30.0),
        K,
    )
    return folder


@pytest.fixture(scope="module")
def server(model_dir: Path) -> Iterator[Server]:
    s = start_server(model_dir)
    yield s
    s.stop()


@pytest.fixture(scope="session")
def diverging_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with one real exported model whose weights blow up: an autoregressive gain of
    8 on one frame dimension takes every sequence to ±inf near frame 341."""
    folder = tmp_path_factory.mktemp("diverging")
    torch.manual_seed(0)
    model = ConditionalRBM(2, 4, 1, init_std=1.0).double()
    with torch.no_grad():
        model.autoregressive.copy_(torch.tensor([[8.0, 0.0], [0.0, 0.5]], dtype=torch.float64))
        model.past_to_hidden.zero_()
    export_onnx(
        model, folder / "diverging.onnx", build_card(model, name="diverging", gibbs_steps=2), 2
    )
    return folder
