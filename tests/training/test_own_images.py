"""Your own images through the recipes, end to end, via the ``seqboltz`` command's ``main``:
``fit --data.init_args.path`` on image recipes, run folders (TensorBoard + CSV + checkpoints),
``evaluate`` from elsewhere, one-line data errors with exit status 2, and ``fit --help``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from sklearn.datasets import load_digits

from seqboltz.cli import main
from seqboltz.training._cli import own_images_args

REPO = Path(__file__).resolve().parents[2]
RECIPES = REPO / "recipes"
QUICK = [
    "--trainer.max_epochs=1",
    "--trainer.limit_train_batches=3",
    "--trainer.limit_val_batches=1",
    "--trainer.enable_progress_bar=false",
    "--trainer.enable_model_summary=false",
    "--trainer.log_every_n_steps=1",
]


@pytest.fixture(scope="module")
def digits_npz(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """scikit-learn's 1797 8x8 digits as uint8 images with labels, like a converted data set."""
    d = load_digits()
    path = tmp_path_factory.mktemp("own") / "digits.npz"
    np.savez(path, x=(d.images * 16).clip(0, 255).astype(np.uint8), y=d.target)
    return path


def _fit(recipe: str, *extra: str) -> None:
    with pytest.raises(SystemExit) as exc:  # main returns 0; run_cli exits only on errors
        main(["fit", "--config", str(RECIPES / recipe), *QUICK, *extra])
        raise SystemExit(0)
    assert exc.value.code == 0


def _error_line(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    """Run ``argv``; it must exit 2 with one ``error:`` line and no traceback on stderr."""
    with pytest.raises(SystemExit) as exc:
        main(argv)
    err = capsys.readouterr().err
    assert exc.value.code == 2, err[-2000:]
    lines = [line for line in err.splitlines() if "error:" in line]
    assert len(lines) == 1 and "Traceback" not in err, err[-2000:]
    return lines[0]


def test_fit_on_own_images_twice_then_test_and_evaluate_elsewhere(
    digits_npz: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    root = tmp_path / "runs"
    for _ in range(2):
        _fit(
            "mnist_rbm.yaml",
            f"--data.init_args.path={digits_npz}",
            f"--trainer.default_root_dir={root}",
            "--model.energy_model.init_args.n_hidden=12",
        )
    runs = sorted((root / "lightning_logs").iterdir())
    assert [r.name for r in runs] == ["version_0", "version_1"]  # one folder per run
    for run in runs:
        assert (run / "checkpoints" / "last.ckpt").is_file()
        assert (run / "metrics.csv").is_file()
        assert list(run.glob("events.out.tfevents.*")), "TensorBoard event file"
    assert not list(root.rglob("last-v*.ckpt"))
    config = yaml.safe_load((runs[1] / "config.yaml").read_text())
    assert config["data"]["class_path"] == "seqboltz.data.ImageDataModule"
    assert config["data"]["init_args"]["mode"] == "binary"
    assert config["data"]["init_args"]["val_size"] == 500  # carried over from the recipe
    ckpt = runs[1] / "checkpoints" / "last.ckpt"
    record = torch.load(ckpt, weights_only=True)["seqboltz"]["data"]
    assert record["class_path"] == "seqboltz.data._images.ImageDataModule"
    assert Path(record["init_args"]["path"]).is_absolute()

    # `test` with AIS: progress and ±3σ on stderr; command-line settings beat the checkpoint's
    capsys.readouterr()
    argv = ["test", "--config", str(RECIPES / "mnist_rbm.yaml"), *QUICK[2:]]
    argv += [f"--data.init_args.path={digits_npz}", f"--trainer.default_root_dir={root}"]
    argv += ["--model.energy_model.init_args.n_hidden=12", "--model.ais_betas=40"]
    assert main([*argv, "--model.ais_chains=4", f"--ckpt_path={ckpt}"]) == 0
    err = capsys.readouterr().err
    progress = [line for line in err.splitlines() if line.startswith("AIS (BernoulliRBM, 4 ")]
    assert len(progress) == 9 and "(20/39 steps)" in progress[4]
    assert "AIS: log Z = " in err and "±3σ [" in err and ", 40 β" in err

    monkeypatch.chdir(tmp_path)  # evaluate from another folder: the data are rebuilt
    report = tmp_path / "report.json"
    assert main(["evaluate", str(ckpt), "--json", str(report)]) == 0
    result = json.loads(report.read_text())
    assert result["method"] == "exact" and result["n_test"] == 180  # 10% of 1797, held out
    assert -64 * np.log(2) - 5 < result["test_log_likelihood"] < 0


def test_gaussian_recipes_on_a_png_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    d = load_digits()
    folder = tmp_path / "pngs"
    folder.mkdir()
    for i in range(60):
        Image.fromarray((d.images[i] * 16).clip(0, 255).astype(np.uint8), mode="L").save(
            folder / f"{i:02d}.png"
        )
    _fit(
        "patches_grbm.yaml",
        f"--data.init_args.path={folder}",
        f"--trainer.default_root_dir={tmp_path / 'runs'}",
        "--model.energy_model.init_args.n_hidden=8",
    )
    ckpt = next((tmp_path / "runs").rglob("last.ckpt"))
    data = torch.load(ckpt, weights_only=True)["seqboltz"]["data"]
    assert data["init_args"]["mode"] == "gaussian" and len(data["stats"]["std"]) == 64
    # the whitened recipes keep their whitening on your images
    args = own_images_args(
        ["fit", "--config", str(RECIPES / "patches_mcrbm.yaml"), f"--data.init_args.path={folder}"]
    )
    assert args[3:5] == ["--data=seqboltz.data.ImageDataModule", "--data.init_args.mode=gaussian"]
    with pytest.raises(SystemExit):
        main([*args, "--print_config"])
    printed = yaml.safe_load(capsys.readouterr().out)["data"]
    assert printed["class_path"] == "seqboltz.data.ImageDataModule"
    assert printed["init_args"]["whiten"] is True and printed["init_args"]["mode"] == "gaussian"


def test_recipes_that_read_paths_themselves_are_left_alone() -> None:
    args = ["fit", "--config", str(RECIPES / "motion_crbm.yaml"), "--data.init_args.path=clips"]
    assert own_images_args(args) == args
    explicit = [
        "fit",
        "--config",
        str(RECIPES / "mnist_rbm.yaml"),
        "--data=MyData",
        "--data.init_args.path=x",
    ]
    assert own_images_args(explicit) == explicit


def test_data_errors_are_one_line_with_exit_status_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recipe = ["fit", "--config", str(RECIPES / "mnist_rbm.yaml"), *QUICK]
    nan = tmp_path / "nan.npy"
    x = np.random.default_rng(0).random((30, 4, 4)).astype(np.float32)
    x[3, 1, 1] = np.nan
    np.save(nan, x)
    # raised inside the LightningCLI link _n_features(data) --> ...n_visible
    line = _error_line(capsys, [*recipe, f"--data.init_args.path={nan}"])
    assert line == f"seqboltz fit: error: {nan} row 3: NaN or infinite values"
    short = tmp_path / "short.npy"
    np.save(short, np.zeros((100, 64), np.uint8))
    short.write_bytes(short.read_bytes()[:100])  # a file cut short
    line = _error_line(capsys, [*recipe, f"--data.init_args.path={short}"])
    assert str(short) in line and "not a readable .npy" in line
    folder = tmp_path / "mixed"
    folder.mkdir()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(folder / "a.png")
    Image.fromarray(np.zeros((9, 8), np.uint8)).save(folder / "b.png")
    line = _error_line(capsys, [*recipe, f"--data.init_args.path={folder}"])
    assert "b.png: 8×9 pixels" in line and "a.png is 8×8" in line
    # a wrong shape for the model, raised during trainer.fit (not in the link)
    line = _error_line(
        capsys,
        [
            "fit",
            "--config",
            str(RECIPES / "mnist_conv_rbm.yaml"),
            *QUICK,
            f"--data.init_args.path={folder / 'a.png'}",
        ],
    )
    assert "a.png: not an image array or folder" in line
    line = _error_line(capsys, [*recipe, "--data=seqboltz.data.ArrayDataModule"])
    assert "ImageDataModule" in line and "base class" in line
    line = _error_line(
        capsys,
        [
            "fit",
            "--config",
            str(RECIPES / "mnist_denoise_crbm.yaml"),
            f"--data.init_args.path={nan}",
        ],
    )
    assert "MNISTDenoisingDataModule" in line and "takes no path" in line


def test_fit_help_starts_with_seqboltz_classes(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["fit", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    first_trainer = out.index("--trainer.")
    for name in ("BernoulliRBM", "ConditionalRBM", "ImageDataModule", "MNIST5kDataModule"):
        assert 0 <= out.index(name) < first_trainer, name
    assert out.index("--data.init_args.path=my_images.npz") < first_trainer
    assert out.splitlines()[0].startswith("usage: seqboltz fit --config RECIPE.yaml")
