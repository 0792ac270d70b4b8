"""Tiny exported artifacts shared by the runtime tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from seqboltz.export import build_card, export_onnx
from seqboltz.models import ConditionalRBM, FactoredConditionalRBM

D, H, ORDER, K = 8, 12, 3, 5


@pytest.fixture(scope="session")
def crbm_path(tmp_path_factory: pytest.TempPathFactory) -> tuple[ConditionalRBM, Path]:
    torch.manual_seed(0)
    model = ConditionalRBM(D, H, ORDER, init_std=0.1).double()
    seed = np.arange(ORDER * D, dtype=np.float64).reshape(ORDER, D) / 10
    card = build_card(model, name="crbm", gibbs_steps=K, default_seed_frames=seed)
    path = tmp_path_factory.mktemp("rt") / "crbm.onnx"
    return model, export_onnx(model, path, card, gibbs_steps=K)


@pytest.fixture(scope="session")
def fcrbm_path(tmp_path_factory: pytest.TempPathFactory) -> tuple[FactoredConditionalRBM, Path]:
    torch.manual_seed(1)
    model = FactoredConditionalRBM(D, H, ORDER, n_style=1, n_factors=6, init_std=0.3).double()
    card = build_card(model, name="fcrbm", gibbs_steps=K)
    path = tmp_path_factory.mktemp("rt") / "fcrbm.onnx"
    return model, export_onnx(model, path, card, gibbs_steps=K)


def diverging_crbm() -> ConditionalRBM:
    """A tiny CRBM whose weights blow up: its autoregressive gain on frame dimension 0 is 8,
    so every sequence reaches ±inf near frame 341, the exact frame depending on its noise."""
    torch.manual_seed(0)
    model = ConditionalRBM(2, 4, 1, init_std=1.0).double()
    with torch.no_grad():
        model.autoregressive.copy_(torch.tensor([[8.0, 0.0], [0.0, 0.5]], dtype=torch.float64))
        model.past_to_hidden.zero_()
    return model


#: the Gibbs steps of the diverging artifact
DIVERGING_K = 2


@pytest.fixture(scope="session")
def diverging_path(tmp_path_factory: pytest.TempPathFactory) -> tuple[ConditionalRBM, Path]:
    model = diverging_crbm()
    card = build_card(model, name="diverging", gibbs_steps=DIVERGING_K)
    path = tmp_path_factory.mktemp("rt") / "diverging.onnx"
    return model, export_onnx(model, path, card, gibbs_steps=DIVERGING_K)
