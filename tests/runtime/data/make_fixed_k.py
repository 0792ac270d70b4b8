"""Make the fixed-k fixtures of ``tests/runtime/test_gibbs_steps.py`` (run once, from the
repository root, with the code of commit 50f3395, before the exported graph took a run-time k):

    python tests/runtime/data/make_fixed_k.py

For four tiny sequence models it writes ``fixed_k.npz``, holding each model's spec (kind and
constructor arguments, JSON), its weights and the frames the runtime of that commit generated
from its artifact (k = 5 unrolled in the graph): 3 sequences × 12 frames, seed 7, the card's
default seed frames, style/controls where the model has them. ``fixed_k_crbm.onnx`` is the
CRBM's artifact of that commit as written, an artifact without ``max_gibbs_steps`` on its card.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from seqboltz.export import build_card, export_onnx
from seqboltz.models import (
    ConditionalRBM,
    FactoredConditionalRBM,
    ResidualCRBM,
    SequenceRBM,
    TwoLayerCRBM,
)
from seqboltz.runtime import load_artifact

K, N_FRAMES, COUNT, SEED = 5, 12, 3, 7
HERE = Path(__file__).resolve().parent


def models() -> dict[str, SequenceRBM]:
    torch.manual_seed(0)
    out: dict[str, SequenceRBM] = {
        "crbm": ConditionalRBM(6, 10, 3, init_std=0.3),
        "fcrbm": FactoredConditionalRBM(6, 10, 2, n_style=1, n_factors=5, init_std=0.4),
        "rcrbm": ResidualCRBM(5, 7, 2, init_std=0.5, visible_noise=0.7, n_controls=2),
        "two_layer": TwoLayerCRBM(6, 8, 6, order1=2, order2=2, init_std=0.5),
    }
    with torch.no_grad():  # biases away from zero, so that every weight matters
        for model in out.values():
            for name, p in model.named_parameters():
                if "bias" in name:
                    p.copy_(torch.randn_like(p) * 0.3)
    return {k: m.double() for k, m in out.items()}


def conditioning(model: SequenceRBM) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(3)
    extra = {}
    if model.n_style:
        extra["style"] = rng.normal(size=(COUNT, N_FRAMES, model.n_style))
    if getattr(model, "n_controls", 0):
        extra["controls"] = rng.normal(size=(COUNT, N_FRAMES, model.n_controls))
    return extra


def main() -> int:
    arrays: dict[str, np.ndarray] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, model in models().items():
            seed = np.random.default_rng(1).normal(size=(model.order, model.n_visible))
            card = build_card(model, name=name, gibbs_steps=K, default_seed_frames=seed)
            path = export_onnx(model, Path(tmp) / f"{name}.onnx", card, gibbs_steps=K)
            art = load_artifact(path)
            frames = art.generate(N_FRAMES, seed=SEED, count=COUNT, **conditioning(model))
            spec = {"kind": type(model).__name__, "init_args": model.init_args()}
            arrays[f"{name}/spec"] = np.array(json.dumps(spec))
            arrays[f"{name}/frames"] = frames
            for key, value in model.state_dict().items():
                arrays[f"{name}/state/{key}"] = value.numpy()
            if name == "crbm":
                (HERE / "fixed_k_crbm.onnx").write_bytes(path.read_bytes())
    np.savez_compressed(HERE / "fixed_k.npz", **arrays)
    return 0


if __name__ == "__main__":
    sys.exit(main())
