"""A real server process over loopback, serving tiny exported models."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper
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
def diverging_dir(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with one real exported model whose weights blow up: crbm.onnx with its
    autoregressive weights replaced by a gain of 8 from the last frame's dimension 0 onto
    itself (and the history-to-hidden weights zero), so every sequence reaches ±inf near
    frame 340 (no second export: the initializers are replaced in the ONNX file)."""
    folder = tmp_path_factory.mktemp("diverging")
    proto = onnx.load(str(model_dir / "crbm.onnx"))
    replaced = set()
    for k, init in enumerate(proto.graph.initializer):
        if init.name in ("model.autoregressive", "model.past_to_hidden"):
            value = np.zeros(tuple(init.dims))
            if init.name == "model.autoregressive":
                value[0, 0] = 8.0
            proto.graph.initializer[k].CopyFrom(numpy_helper.from_array(value, init.name))
            replaced.add(init.name)
    assert len(replaced) == 2, f"the exported graph's initializers changed: {replaced}"
    onnx.save(proto, str(folder / "diverging.onnx"))
    return folder
