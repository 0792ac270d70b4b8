"""``seqboltz stack``: two trained layers as one generating checkpoint (Taylor et al. 2007)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from seqboltz.cli import main
from seqboltz.data import MotionDataModule, sha256_file
from seqboltz.eval._cli import data_record
from seqboltz.models import (
    BinaryConditionalRBM,
    ResidualCRBM,
    TwoLayerCRBM,
    load_model,
    recentred_gibbs_steps,
)
from seqboltz.models._registry import save_model
from seqboltz.training._recentre import sampler_mean_error


@pytest.fixture(scope="module")
def layers(
    random_walk_clips: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Path, list[np.ndarray]]:
    folder = random_walk_clips
    record = {
        "class_path": "seqboltz.data.MotionDataModule",
        "init_args": {"path": str(folder), "order": 3, "batch_size": 32},
    }
    dm = MotionDataModule(path=str(folder), order=3, batch_size=32)
    dm.setup("fit")
    lower = ResidualCRBM(dm.n_features, 6, order=3, train_linear=False).double()
    lower.init_from_sequences(dm.clips("train"))
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():  # hidden units with a mean push, as trained ones have
        lower.weight.copy_(torch.randn(lower.weight.shape, generator=g, dtype=torch.float64))
        lower.hidden_bias.fill_(1.5)
    top = BinaryConditionalRBM(6, 4, order=2).double()
    with torch.no_grad():
        for p in top.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64) * 0.5)
    root = tmp_path_factory.mktemp("layers")
    return (
        save_model(lower, root / "layer1.ckpt", data=record),
        save_model(top, root / "layer2.ckpt"),
        [np.asarray(c) for c in dm.clips("train")],
    )


def test_stack_writes_a_recentred_model_with_its_windows(
    layers: tuple[Path, Path, list[np.ndarray]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    layer1, layer2, clips = layers
    out = tmp_path / "two_layer.ckpt"
    assert main(["stack", str(layer1), str(layer2), "--out", str(out), "--gibbs-steps", "2"]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    model = load_model(out).double()
    assert isinstance(model, TwoLayerCRBM) and model.lower == "residual"
    assert (model.order1, model.order2, model.order) == (3, 2, 5)
    assert data_record(out)["init_args"]["order"] == 5  # the stack's windows
    assert recentred_gibbs_steps(out) == 2  # export and evaluate take the k it matched
    after = float(sampler_mean_error(model, clips, 2).norm())
    raw = tmp_path / "raw.ckpt"
    assert main(["stack", str(layer1), str(layer2), "--out", str(raw), "--no-recentre"]) == 0
    before = float(sampler_mean_error(load_model(raw).double(), clips, 2).norm())  # type: ignore[arg-type]
    assert recentred_gibbs_steps(raw) is None  # not re-centred: nothing claimed
    assert before > 0.1 and after < 0.05 * before


def test_stack_refuses_layers_that_do_not_fit_in_one_line(
    layers: tuple[Path, Path, list[np.ndarray]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    layer1, layer2, _ = layers
    out = tmp_path / "s.ckpt"
    corrupt = tmp_path / "corrupt.ckpt"
    corrupt.write_bytes(b"not a checkpoint")
    for args, message in (
        ([str(layer1), str(layer1)], "layer 2 must be a BinaryConditionalRBM"),
        ([str(layer2), str(layer2)], "layer 1 must be a ConditionalRBM or a ResidualCRBM"),
        ([str(tmp_path / "none.ckpt"), str(layer2)], "not found"),
        ([str(corrupt), str(layer2)], "cannot read checkpoint"),
    ):
        assert main(["stack", *args, "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("seqboltz stack: error: ") and err.count("\n") == 1, err
        assert message in err
    assert not out.exists()
    with pytest.raises(SystemExit):  # argparse's one line, before anything is read
        main(["stack", str(layer1), str(layer2), "--out", str(out), "--draws", "0"])
    assert "--draws must be >= 1" in capsys.readouterr().err and not out.exists()
    # a top layer trained on another first layer (its data record names that one's sha256)
    top = load_model(layer2)
    record = {"class_path": "seqboltz.data.CRBMHiddenDataModule"}
    other = save_model(
        top, tmp_path / "other.ckpt", data={**record, "init_args": {"checkpoint_sha256": "0" * 64}}
    )
    assert main(["stack", str(layer1), str(other), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "another first layer" in err and err.count("\n") == 1 and not out.exists()
    same = save_model(
        top,
        tmp_path / "same.ckpt",
        data={**record, "init_args": {"checkpoint_sha256": sha256_file(layer1)}},
    )
    assert main(["stack", str(layer1), str(same), "--out", str(out), "--no-recentre"]) == 0


def test_a_stack_keeps_the_first_layers_feature_statistics_for_export(
    layers: tuple[Path, Path, list[np.ndarray]], random_walk_clips: Path, tmp_path: Path
) -> None:
    """The first layer's motion statistics (the features' inverse, the skeleton) travel with
    the stack, at the stack's order, so its export writes BVH like a one-layer model's."""
    layer1, layer2, _ = layers
    dm = MotionDataModule(path=str(random_walk_clips), order=3, batch_size=32)
    dm.setup("fit")
    with_stats = tmp_path / "layer1_stats.ckpt"
    record = {**data_record(layer1), "stats": dm.stats()}
    save_model(load_model(layer1), with_stats, data=record)
    out = tmp_path / "two_layer.ckpt"
    assert main(["stack", str(with_stats), str(layer2), "--out", str(out), "--no-recentre"]) == 0
    entry = torch.load(out, map_location="cpu", weights_only=True)["seqboltz"]["data"]
    assert entry["stats"]["order"] == 5
    assert {k: v for k, v in entry["stats"].items() if k != "order"} == {
        k: v for k, v in dm.stats().items() if k != "order"
    }
    # a first layer saved without statistics stacks as before
    assert main(["stack", str(layer1), str(layer2), "--out", str(out), "--no-recentre"]) == 0
    assert "stats" not in torch.load(out, map_location="cpu", weights_only=True)["seqboltz"]["data"]
