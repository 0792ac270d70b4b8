"""``seqboltz evaluate`` rebuilds the DataModule a checkpoint was trained on, whatever module it
lives in, or refuses in one line; ``--data``/``--data-arg``; AIS progress and ±3σ on stderr."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import lightning as L
import pytest
import torch

from seqboltz.cli import main
from seqboltz.eval._cli import parse_data_spec
from seqboltz.models import BernoulliRBM
from seqboltz.training import RBMSystem

REPO = Path(__file__).resolve().parents[2]

FOREIGN = textwrap.dedent(
    '''
    """A user's own DataModule, outside seqboltz."""
    import numpy as np

    from seqboltz.data import ArrayDataModule


    class StripesDataModule(ArrayDataModule):
        def __init__(self, n: int, seed: int = 0, batch_size: int = 10) -> None:
            super().__init__(batch_size=batch_size)
            self.n, self.seed = n, seed
            self.save_hyperparameters()

        def _load(self):
            rng = np.random.default_rng(self.seed)
            x = (rng.random((self.n, 16)) < np.linspace(0.1, 0.9, 16)).astype(np.float32)
            q = self.n // 4
            return x[: 2 * q], x[2 * q : 3 * q], x[3 * q :]


    class UnrecordedDataModule(StripesDataModule):
        def __init__(self, n: int) -> None:  # keeps no hyperparameters
            ArrayDataModule.__init__(self, batch_size=10)
            self.n, self.seed = n, 0
    '''
)


@pytest.fixture
def foreign(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> object:
    (tmp_path / "my_data.py").write_text(FOREIGN)
    monkeypatch.syspath_prepend(str(tmp_path))
    import importlib

    import my_data  # type: ignore[import-not-found]

    return importlib.reload(my_data)


def _train(datamodule: L.LightningDataModule, path: Path) -> Path:
    """A few CD steps of a 16→4 RBM through the system, saved as Lightning saves it."""
    torch.manual_seed(0)
    trainer = L.Trainer(
        max_steps=3,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
    )
    trainer.fit(RBMSystem(BernoulliRBM(16, 4)), datamodule=datamodule)
    trainer.save_checkpoint(path)
    return path


def test_evaluate_rebuilds_a_datamodule_outside_seqboltz(
    foreign: object, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ckpt = _train(foreign.StripesDataModule(n=80, seed=3), tmp_path / "m.ckpt")  # type: ignore[attr-defined]
    record = torch.load(ckpt, weights_only=True)["seqboltz"]["data"]
    assert record["class_path"] == "my_data.StripesDataModule"
    report = tmp_path / "r.json"
    assert main(["evaluate", str(ckpt), "--json", str(report)]) == 0
    result = json.loads(report.read_text())
    assert result["n_test"] == 20 and result["method"] == "exact"
    assert "warning" not in capsys.readouterr().err  # the same training data were rebuilt
    # AIS: progress lines while it runs, then the estimate with its ±3σ bounds (stderr)
    assert main(["evaluate", str(ckpt), "--method=ais", "--ais-chains=8", "--ais-betas=40"]) == 0
    captured = capsys.readouterr()
    progress = [line for line in captured.err.splitlines() if "% (" in line]
    assert len(progress) == 9 and "s elapsed, about" in progress[0]
    assert "AIS: log Z = " in captured.err and "±3σ [" in captured.err
    assert "±3σ" in captured.out
    # other data than it was trained on: evaluated, with a warning that says so
    assert main(["evaluate", str(ckpt), "--data-arg", "seed=4"]) == 0
    assert "are not those" in capsys.readouterr().err


def test_evaluate_refuses_in_one_line_or_takes_data(
    foreign: object, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ckpt = _train(foreign.UnrecordedDataModule(n=40), tmp_path / "m.ckpt")  # type: ignore[attr-defined]

    def refused(*argv: str) -> str:
        with pytest.raises(SystemExit) as exc:
            main(["evaluate", str(ckpt), *argv])
        err = capsys.readouterr().err
        assert exc.value.code == 2 and len(err.strip().splitlines()) == 1, err
        return err

    err = refused()
    assert "cannot rebuild the data" in err and "no value for its argument(s) ['n']" in err
    assert main(["evaluate", str(ckpt), "--data-arg", "n=40"]) == 0
    spec = "{class_path: my_data.StripesDataModule, init_args: {n: 40, seed: 0}}"
    assert main(["evaluate", str(ckpt), "--data", spec]) == 0
    # a module that cannot be imported where evaluate runs
    raw = torch.load(ckpt, weights_only=True)
    raw["seqboltz"]["data"]["class_path"] = "no_such_package.data.Clips"
    torch.save(raw, ckpt)
    err = refused()
    assert "cannot import the module of data module 'no_such_package.data.Clips'" in err
    raw["seqboltz"]["data"]["class_path"] = "torch.nn.Linear"
    torch.save(raw, ckpt)
    assert "is not a LightningDataModule" in refused()
    del raw["seqboltz"]["data"]
    torch.save(raw, ckpt)
    assert "records no DataModule" in refused()
    assert "--data-arg takes KEY=VALUE" in refused("--data", "ImageDataModule", "--data-arg", "x")


def test_parse_data_spec() -> None:
    recipe = REPO / "recipes" / "mnist_rbm.yaml"
    assert parse_data_spec(str(recipe)) == (
        "seqboltz.data.MNIST5kDataModule",
        {"batch_size": 100, "val_size": 500},
    )
    assert parse_data_spec("ImageDataModule", ["path=x.npz", "val_size=0.2", "key=null"]) == (
        "ImageDataModule",
        {"path": "x.npz", "val_size": 0.2, "key": None},
    )
    with pytest.raises(ValueError, match="has no data class_path"):
        parse_data_spec("{init_args: {}}")


def test_datamodule_from_card_rebuilds_an_artifacts_training_data() -> None:
    """An exported model's card names its training data: the embedded speed model's rebuilds
    with the card's own arguments (its style and window), an override replaces one, and a
    card without data is one line."""
    from seqboltz.eval._cli import datamodule_from_card
    from seqboltz.runtime import load_artifact

    repo = Path(__file__).resolve().parents[2]
    card = load_artifact(repo / "serving" / "models" / "motion_speed.onnx").card
    dm = datamodule_from_card(card)
    assert (dm.style, dm.style_window, dm.order) == ("root_speed", 30, 3)
    assert datamodule_from_card(card, order=2, path=None).order == 2  # None: the card's
    with pytest.raises(ValueError, match="records no training data on its card"):
        datamodule_from_card({"name": "bare"})
