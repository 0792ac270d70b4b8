"""Recipes through the ``seqboltz`` command: fit/validate/test, evaluate, bad configs, DDP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from seqboltz.cli import main
from seqboltz.models import BernoulliRBM, load_model

REPO = Path(__file__).resolve().parents[2]
RECIPES = sorted((REPO / "recipes").glob("*.yaml"))
SEQBOLTZ = [sys.executable, "-m", "seqboltz.cli"]


def _run(args: list[str], cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.run(
        [*SEQBOLTZ, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


def _last_ckpt(root: Path) -> Path:
    return max(root.rglob("last.ckpt"), key=lambda p: p.stat().st_mtime)


def test_every_recipe_is_tested() -> None:
    names = {p.name for p in RECIPES}
    assert {"mnist_rbm.yaml", "mnist_rbm_cd25.yaml", "mnist_rbm_pcd.yaml"} <= names
    assert "patches_grbm.yaml" in names


# the TTS recipe force-aligns every prompt on a fresh cache (minutes): a few suffice here
FAST_DEV_ARGS = {"tts_crbm.yaml": ["--data.init_args.max_utterances=12"]}

# recipes that train on a lower layer's checkpoint, or start from another model's: run after
# that model (below; tts_rcrbm_adapt.yaml in tests/speech/test_tts_recipe.py)
STACKED = {"mnist_conv_dbn_layer2.yaml", "motion_rcrbm_layer2.yaml", "tts_rcrbm_adapt.yaml"}


@pytest.mark.realdata
@pytest.mark.parametrize(
    "recipe", [r for r in RECIPES if r.name not in STACKED], ids=lambda p: p.stem
)
def test_recipe_fast_dev_run(
    recipe: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Every recipe fits one batch through the real CLI, in this process (a subprocess per
    recipe would re-import torch and Lightning each time; the subprocess path is covered by
    the round trip below)."""
    extra = FAST_DEV_ARGS.get(recipe.name, [])
    monkeypatch.chdir(tmp_path)
    with caplog.at_level("INFO", logger="lightning.pytorch"):
        assert main(["fit", "--config", str(recipe), "--trainer.fast_dev_run=true", *extra]) == 0
    assert "`Trainer.fit` stopped" in caplog.text


@pytest.mark.realdata
def test_two_layer_motion_recipes_fit_stack_and_export(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Taylor's two layers on the residual CRBM, as the README gives them: layer 1, layer 2 on
    its checkpoint, ``seqboltz stack``, then the stack exports (a few batches each)."""
    from seqboltz.models import TwoLayerCRBM, load_model

    monkeypatch.chdir(tmp_path)
    short = ["--trainer.max_epochs=1", "--trainer.limit_train_batches=3"]
    recipes = REPO / "recipes"
    assert main(["fit", "--config", str(recipes / "motion_rcrbm.yaml"), *short]) == 0
    lower = next((tmp_path / "runs/motion_rcrbm").rglob("last.ckpt"))
    upper_args = ["--config", str(recipes / "motion_rcrbm_layer2.yaml"), *short]
    assert main(["fit", *upper_args, f"--data.init_args.checkpoint={lower}"]) == 0
    upper = next((tmp_path / "runs/motion_rcrbm_layer2").rglob("last.ckpt"))
    stacked = tmp_path / "two_layer.ckpt"
    assert main(["stack", str(lower), str(upper), "--out", str(stacked)]) == 0
    model = load_model(stacked)
    assert isinstance(model, TwoLayerCRBM) and (model.order1, model.order2) == (3, 2)
    assert main(["export", str(stacked), "--out", str(tmp_path / "two.onnx")]) == 0
    assert (tmp_path / "two.onnx").stat().st_size > 0


@pytest.mark.realdata
def test_greedy_two_layer_conv_recipes(tmp_path: Path) -> None:
    """Layer 1 writes its checkpoint where layer 2's recipe reads it; both write pictures."""
    lower = _run(
        [
            "fit",
            "--config",
            str(REPO / "recipes" / "mnist_conv_rbm.yaml"),
            "--trainer.max_epochs=1",
            "--trainer.limit_train_batches=3",
            "--trainer.limit_val_batches=1",
        ],
        cwd=tmp_path,
    )
    assert lower.returncode == 0, lower.stderr[-3000:]
    assert (
        tmp_path / "runs/mnist_conv_rbm/lightning_logs/version_0/checkpoints/last.ckpt"
    ).is_file()
    upper = _run(
        [
            "fit",
            "--config",
            str(REPO / "recipes" / "mnist_conv_dbn_layer2.yaml"),
            "--trainer.max_epochs=1",
            "--trainer.limit_train_batches=3",
            "--trainer.limit_val_batches=1",
        ],
        cwd=tmp_path,
    )
    assert upper.returncode == 0, upper.stderr[-3000:]
    pictures = {p.name for p in (tmp_path / "runs").rglob("pictures/*.png")}
    assert pictures == {"filters.png", "filters_layer2.png", "samples.png"}
    assert len(list((tmp_path / "runs").rglob("pictures/filters.png"))) == 2  # both layers
    ckpt = torch.load(
        tmp_path / "runs/mnist_conv_dbn_layer2/lightning_logs/version_0/checkpoints/last.ckpt",
        weights_only=True,
    )
    data = ckpt["seqboltz"]["data"]["init_args"]
    assert data["data"]["class_path"] == "seqboltz.data._datamodule.MNIST5kDataModule"
    assert len(data["checkpoint_sha256"]) == 64  # which lower layer it was trained on
    # the recorded DataModule rebuilds (same lower layer, checked by its sha256) ...
    from seqboltz.eval._cli import build_datamodule

    lower = str(
        tmp_path / "runs/mnist_conv_rbm/lightning_logs/version_0/checkpoints/last.ckpt"
    )  # recorded relative
    rebuilt = build_datamodule(
        ckpt["seqboltz"]["data"]["class_path"], {**data, "checkpoint": lower}
    )
    rebuilt.setup("fit")
    assert rebuilt.n_features == 24 * 10 * 10
    # ... and refuses another lower layer under the same path
    other = dict(data, checkpoint=lower, checkpoint_sha256="0" * 64)
    with pytest.raises(ValueError, match="not the lower layer this was built with"):
        build_datamodule(ckpt["seqboltz"]["data"]["class_path"], other).setup("fit")
    # evaluate says why it cannot estimate a conv RBM's likelihood
    ev = _run(
        [
            "evaluate",
            str(tmp_path / "runs/mnist_conv_rbm/lightning_logs/version_0/checkpoints/last.ckpt"),
        ],
        tmp_path,
    )
    assert ev.returncode == 2 and "has no AIS path" in ev.stderr, ev.stderr[-2000:]


@pytest.mark.realdata
def test_structured_output_recipe_fits_and_evaluates(tmp_path: Path) -> None:
    fit = _run(
        [
            "fit",
            "--config",
            str(REPO / "recipes" / "mnist_denoise_crbm.yaml"),
            f"--trainer.default_root_dir={tmp_path}",
            "--trainer.max_epochs=1",
            "--trainer.limit_train_batches=5",
            "--trainer.limit_val_batches=1",
        ],
        cwd=tmp_path,
    )
    assert fit.returncode == 0, fit.stderr[-3000:]
    report = tmp_path / "report.json"
    ev = _run(["evaluate", str(_last_ckpt(tmp_path)), "--json", str(report)], cwd=tmp_path)
    assert ev.returncode == 0, ev.stderr[-3000:]
    result = json.loads(report.read_text())
    assert result["n_test"] == 1000
    errors = result["error"]
    assert 0.05 < errors["input x as the prediction"] < 0.08  # the corruption itself
    assert set(errors) == {
        "input x as the prediction",
        "mean_field, y0 = zeros",
        "mean_field, y0 = input",
        "map, y0 = zeros",
        "map, y0 = input",
    }
    assert all(0.0 <= e <= 1.0 for e in errors.values())
    assert "output-unit error %" in ev.stdout


@pytest.mark.realdata
def test_fit_validate_test_evaluate_round_trip(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``fit`` through the console command in a subprocess (the real entry point), then
    ``validate``, ``test`` and ``evaluate`` on its checkpoint in this process."""
    recipe = str(REPO / "recipes" / "mnist_rbm.yaml")
    # 12 hidden units: `test` computes log Z exactly (2^12 states) instead of the recipe's AIS
    common = [
        "--config",
        recipe,
        f"--trainer.default_root_dir={tmp_path}",
        "--model.eval_log_z=auto",
    ]
    fit = _run(
        ["fit", *common, "--trainer.max_epochs=1", "--model.energy_model.init_args.n_hidden=12"],
        cwd=tmp_path,
    )
    assert fit.returncode == 0, fit.stderr[-3000:]
    ckpt = _last_ckpt(tmp_path)
    # the full config of the run is saved beside its logs
    assert list(tmp_path.rglob("config.yaml"))
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    for command in ("validate", "test"):
        hidden = "--model.energy_model.init_args.n_hidden=12"
        assert main([command, *common, hidden, f"--ckpt_path={ckpt}"]) == 0
    assert "test/log_likelihood" in capsys.readouterr().out
    report = tmp_path / "report.json"
    assert main(["evaluate", str(ckpt), "--json", str(report)]) == 0
    result = json.loads(report.read_text())
    assert result["method"] == "exact"  # 12 hidden units: enumerated exactly
    assert result["n_test"] == 1000
    assert -250 < result["test_log_likelihood"] < -80
    assert "test log-likelihood" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("old", "new", "named"),
    [
        ("  k: 1\n", "  k: 1\n  learning_rat: 0.1\n", "learning_rat"),
        ("seqboltz.models.BernoulliRBM", "seqboltz.models.NoSuchRBM", "NoSuchRBM"),
    ],
    ids=["unknown-key", "unknown-class"],
)
def test_bad_config_is_named(
    old: str, new: str, named: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    text = (REPO / "recipes" / "mnist_rbm.yaml").read_text()
    assert old in text
    bad.write_text(text.replace(old, new))
    with pytest.raises(SystemExit) as exc:
        main(["fit", "--config", str(bad), f"--trainer.default_root_dir={tmp_path}"])
    assert exc.value.code != 0
    assert named in capsys.readouterr().err


def test_evaluate_missing_and_corrupt_checkpoint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["evaluate", str(tmp_path / "missing.ckpt")])
    assert exc.value.code == 2
    assert "checkpoint not found" in capsys.readouterr().err
    corrupt = tmp_path / "corrupt.ckpt"
    corrupt.write_bytes(b"not a checkpoint")
    with pytest.raises(SystemExit):
        main(["evaluate", str(corrupt)])
    assert "cannot read checkpoint" in capsys.readouterr().err
    foreign = tmp_path / "foreign.ckpt"
    torch.save({"state_dict": BernoulliRBM(4, 2).state_dict()}, foreign)
    with pytest.raises(SystemExit):
        main(["evaluate", str(foreign)])
    assert "not a seqboltz checkpoint" in capsys.readouterr().err


def test_unknown_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["frobnicate"]) == 2
    assert "unknown command 'frobnicate'" in capsys.readouterr().err
    assert main([]) == 2


@pytest.mark.realdata
@pytest.mark.slow
def test_ddp_on_cpu_with_pcd(tmp_path: Path) -> None:
    """The PCD recipe trains under DDP with 2 CPU processes; each keeps its own chains."""
    spy = tmp_path / "spy.py"
    spy.write_text(
        "import lightning as L, torch, os\n"
        "class ChainSpy(L.Callback):\n"
        "    def on_train_end(self, trainer, pl_module):\n"
        "        torch.save(pl_module.chains, os.path.join("
        f"{str(tmp_path)!r}, f'chains{{trainer.global_rank}}.pt'))\n"
    )
    env_path = f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"
    out = subprocess.run(
        [
            *SEQBOLTZ,
            "fit",
            "--config",
            str(REPO / "recipes" / "mnist_rbm_pcd.yaml"),
            "--trainer.strategy=ddp",
            "--trainer.accelerator=cpu",
            "--trainer.devices=2",
            "--trainer.max_steps=6",
            "--trainer.limit_val_batches=1",
            f"--trainer.default_root_dir={tmp_path}",
            "--model.energy_model.init_args.n_hidden=50",
            "--trainer.callbacks+=spy.ChainSpy",
        ],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": env_path, "PYTHONWARNINGS": "ignore"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-4000:]
    chains = [torch.load(tmp_path / f"chains{r}.pt", weights_only=True) for r in (0, 1)]
    for c in chains:
        assert c.shape == (100, 784) and torch.isfinite(c).all()
    # each process keeps its own persistent chains (not broadcast from rank 0)
    assert not torch.equal(chains[0], chains[1])
    model = load_model(_last_ckpt(tmp_path))
    assert model.n_hidden == 50 and all(torch.isfinite(p).all() for p in model.parameters())


@pytest.mark.slow
def test_gaussian_recipe_full_length_is_stable_and_improves_ais_likelihood(tmp_path: Path) -> None:
    """patches_grbm.yaml for its full schedule (all epochs, on a quarter of each epoch's
    batches to keep the suite short): no NaN, σ within bounds, AIS log-lik improves."""
    from seqboltz.data import ImagePatchesDataModule
    from seqboltz.eval import ais_log_partition, log_likelihood
    from seqboltz.models import GaussianBernoulliRBM

    recipe = REPO / "recipes" / "patches_grbm.yaml"
    out = _run(
        [
            "fit",
            "--config",
            str(recipe),
            f"--trainer.default_root_dir={tmp_path}",
            "--trainer.limit_train_batches=0.25",
        ],
        tmp_path,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    trained = load_model(_last_ckpt(tmp_path))
    assert isinstance(trained, GaussianBernoulliRBM)
    assert all(torch.isfinite(p).all() for p in trained.parameters())
    sigma = trained.sigma
    assert torch.all(sigma >= trained.min_sigma - 1e-6) and torch.all(
        sigma <= trained.max_sigma + 1e-6
    )
    assert not torch.allclose(sigma, torch.ones_like(sigma))  # σ was learned

    dm = ImagePatchesDataModule()
    dm.setup("test")
    torch.manual_seed(0)
    untrained = GaussianBernoulliRBM(**{**trained.init_args()})
    untrained.init_from_data(dm.train_tensor)  # the fairest untrained baseline

    def ais_ll(model: GaussianBernoulliRBM) -> tuple[torch.Tensor, float]:
        ais = ais_log_partition(model, dm.train_tensor, n_chains=50, n_betas=2000)
        assert ais.log_z_high - ais.log_z_low < 0.5  # AIS converged
        return log_likelihood(model, dm.eval_tensor(), ais.log_z), ais.log_z_std

    (before, err_b), (after, err_a) = ais_ll(untrained), ais_ll(trained)
    gain = after - before  # per test patch, paired
    noise = 3 * float(gain.std()) / gain.numel() ** 0.5 + 3 * (err_a + err_b)
    # a significant improvement (measured: ~2 nats; a full-covariance Gaussian gains ~5)
    assert float(gain.mean()) > max(noise, 0.5), (float(before.mean()), float(after.mean()))


@pytest.mark.realdata
@pytest.mark.slow
@pytest.mark.parametrize("recipe", ["motion_crbm", "motion_fcrbm"])
def test_sequence_recipe_fit_and_evaluate(recipe: str, tmp_path: Path) -> None:
    """A motion recipe trains briefly; `evaluate` compares it with both baselines and writes
    curves, root trajectories and a BVH that reads back."""
    from seqboltz.motion import read_bvh

    fit = _run(
        [
            "fit",
            "--config",
            str(REPO / "recipes" / f"{recipe}.yaml"),
            f"--trainer.default_root_dir={tmp_path}",
            "--trainer.max_epochs=1",
            "--trainer.limit_train_batches=40",
            "--trainer.limit_val_batches=5",
        ],
        cwd=tmp_path,
    )
    assert fit.returncode == 0, fit.stderr[-3000:]
    report = tmp_path / "report.json"
    out = tmp_path / "eval"
    ev = _run(
        [
            "evaluate",
            str(_last_ckpt(tmp_path)),
            "--seconds=12",
            "--gibbs-steps=5",
            "--seeds=2",
            f"--out={out}",
            f"--json={report}",
        ],
        cwd=tmp_path,
    )
    assert ev.returncode == 0, ev.stderr[-3000:]
    result = json.loads(report.read_text())
    names = [row["model"] for row in result["rows"]]
    assert names[1:] == ["linear AR (order 3)", "repeat last frame"]
    for row in result["rows"]:
        assert row["one_step_mse"] > 0 and row["npss"] >= 0 and row["n_dims"] > 10
    # repeat-last-frame freezes by construction
    assert result["rows"][2]["frozen"] is True
    assert (recipe == "motion_fcrbm") == bool(result["speed_control"])
    clip = read_bvh(out / "generated.bvh")
    assert clip.frames.shape[0] == 12 * 30 and np.isfinite(clip.frames).all()
    assert (out / "curves.png").stat().st_size > 1000
    assert (out / "root_trajectories.png").stat().st_size > 1000


@pytest.mark.realdata
@pytest.mark.slow
def test_speech_recipe_fit_and_evaluate(tmp_path: Path) -> None:
    """The speech recipe trains briefly on 40 prompts; `evaluate` reports MCD, F0 RMSE and
    voicing error against both baselines and writes a 1-s WAV and a spectrogram PNG."""
    import soundfile as sf

    fit = _run(
        [
            "fit",
            "--config",
            str(REPO / "recipes" / "speech_crbm.yaml"),
            f"--trainer.default_root_dir={tmp_path}",
            "--trainer.max_epochs=1",
            "--data.init_args.max_utterances=40",
        ],
        cwd=tmp_path,
    )
    assert fit.returncode == 0, fit.stderr[-3000:]
    report, out = tmp_path / "report.json", tmp_path / "eval"
    ev = _run(
        [
            "evaluate",
            str(_last_ckpt(tmp_path)),
            "--seconds=1",
            "--gibbs-steps=3",
            f"--out={out}",
            f"--json={report}",
        ],
        cwd=tmp_path,
    )
    assert ev.returncode == 0, ev.stderr[-3000:]
    assert "one-step MCD (dB)" in ev.stdout
    result = json.loads(report.read_text())
    names = [row["model"] for row in result["rows"]]
    assert names == ["ConditionalRBM", "linear AR (order 3)", "repeat last frame"]
    for row in result["rows"]:
        assert 0.5 < row["mcd_db"] < 20 and 0 <= row["vuv_error"] <= 1
        assert row["f0_rmse_hz"] >= 0
    info = sf.info(str(out / "generated.wav"))
    assert info.samplerate == 8000 and abs(info.duration - 1.0) < 0.02
    assert (out / "spectrograms.png").stat().st_size > 1000
