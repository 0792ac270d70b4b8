"""Tiny exported artifacts shared by the runtime tests."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

from seqboltz.export import CARD_KEY, build_card, export_onnx
from seqboltz.models import ConditionalRBM, FactoredConditionalRBM

D, H, ORDER, K = 8, 12, 3, 5


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    """Torch oracles on one thread: on a shared 2-core machine more threads only contend
    (345 frames of generation: 15 s with the default threads under load, 1.7 s with one)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _one_by_one(
    art: Any,
    history: np.ndarray,
    noise: np.ndarray,
    style: np.ndarray | None = None,
) -> np.ndarray:
    """``n`` calls of ``art.step`` (``noise (B, n, k, W)``), the window shifted in numpy:
    ``(B, n, D)``, the frames every several-frames path must give bit for bit."""
    window, frames = history.copy(), []
    for t in range(noise.shape[1]):
        v = art.step(window, noise[:, t], style, None)
        frames.append(v)
        window = np.concatenate([v[:, None], window[:, :-1]], axis=1)
    return np.stack(frames, axis=1)


@pytest.fixture(scope="session")
def one_by_one() -> Callable[..., np.ndarray]:
    """:func:`_one_by_one`: frame by frame through ``step``, the reference of the block and
    ``Loop`` tests (``test_frames.py``, ``test_blocks.py``)."""
    return _one_by_one


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


def blow_up(model: ConditionalRBM, path: Path, out: Path) -> tuple[ConditionalRBM, Path]:
    """A copy of an exported CRBM whose weights blow up, as torch model and artifact: an
    autoregressive gain of 8 from the last frame's dimension 0 onto itself (the rest of ``A``
    and all of ``B`` zero), so every sequence reaches ±inf near frame 340, the exact frame
    depending on its noise. The artifact is ``path`` with those initializers replaced (no
    second export), the name "diverging" and zero default seed frames (so that the noise, not
    the seed, sets each sequence's size)."""
    blown = copy.deepcopy(model)
    with torch.no_grad():
        blown.autoregressive.zero_()
        blown.autoregressive[0, 0] = 8.0
        blown.past_to_hidden.zero_()
    proto = onnx.load(str(path))
    names = {"model.autoregressive", "model.past_to_hidden"}
    for k, init in enumerate(proto.graph.initializer):
        if init.name in names:
            value = getattr(blown, init.name.removeprefix("model.")).detach().numpy()
            proto.graph.initializer[k].CopyFrom(numpy_helper.from_array(value, init.name))
            names.discard(init.name)
    assert not names, f"the exported graph has no initializer {names}"
    for prop in proto.metadata_props:
        if prop.key == CARD_KEY:
            card = json.loads(prop.value)
            zeros = np.zeros_like(np.asarray(card["default_seed_frames"])).tolist()
            prop.value = json.dumps({**card, "name": "diverging", "default_seed_frames": zeros})
    onnx.save(proto, str(out))
    return blown, out


@pytest.fixture(scope="session")
def diverging_path(
    crbm_path: tuple[ConditionalRBM, Path], tmp_path_factory: pytest.TempPathFactory
) -> tuple[ConditionalRBM, Path]:
    return blow_up(*crbm_path, tmp_path_factory.mktemp("rt") / "diverging.onnx")
