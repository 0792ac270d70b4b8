"""RBMSystem: CD-k / PCD training, optimizer groups, remedies, divergence detection."""

from __future__ import annotations

import math
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch

from seqboltz.data import ArrayDataModule, DigitsDataModule
from seqboltz.eval import exact_log_partition, log_likelihood
from seqboltz.models import BernoulliRBM, GaussianBernoulliRBM, load_model
from seqboltz.training import RBMSystem


def _trainer(tmp_path: Path | None = None, **kwargs: object) -> L.Trainer:
    defaults: dict[str, object] = {
        "accelerator": "cpu",
        "devices": 1,
        "logger": False,
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "num_sanity_val_steps": 0,
    }
    if tmp_path is not None:
        defaults["default_root_dir"] = str(tmp_path)
    defaults.update(kwargs)
    return L.Trainer(**defaults)  # type: ignore[arg-type]


def _gaussian_data(n: int, d: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    basis = rng.normal(size=(4, d))
    codes = rng.normal(size=(n, 4))
    return (codes @ basis + 0.3 * rng.normal(size=(n, d))).astype(np.float32)


@pytest.fixture(scope="module")
def digits() -> DigitsDataModule:
    dm = DigitsDataModule(batch_size=100)
    dm.setup("fit")
    return dm


@pytest.mark.parametrize("persistent", [False, True])
def test_training_improves_exact_log_likelihood(digits: DigitsDataModule, persistent: bool) -> None:
    """CD-1 and PCD-1 raise the exact test log-likelihood of a 64x12 RBM on real digits."""
    torch.manual_seed(0)
    model = BernoulliRBM(64, 12)
    system = RBMSystem(model, k=1, persistent=persistent, lr=0.05, init_from_data=False)
    test = digits.eval_tensor()
    before = log_likelihood(model, test, exact_log_partition(model)).mean()
    _trainer(max_epochs=15).fit(system, digits)
    after = log_likelihood(model, test, exact_log_partition(model)).mean()
    assert after > before + 5.0, (before, after)
    if persistent:
        assert system.chains is not None and system.chains.shape == (100, 64)


def test_cd_k_loss_is_the_free_energy_difference() -> None:
    """The training loss is mean F(data) - mean F(negatives) with negatives from k Gibbs steps."""
    torch.manual_seed(0)
    model = BernoulliRBM(6, 4, init_std=0.5).double()
    system = RBMSystem(model, k=3, init_from_data=False)
    v = torch.bernoulli(torch.full((5, 6), 0.5, dtype=torch.float64))
    torch.manual_seed(123)
    loss = system.training_step(v, 0)
    torch.manual_seed(123)
    neg = model.gibbs_chain(v, 3).v
    expected = model.free_energy(v).mean() - model.free_energy(neg).mean()
    assert torch.allclose(loss, expected, atol=1e-12)


def test_pcd_chains_persist_and_are_checkpointed(digits: DigitsDataModule, tmp_path: Path) -> None:
    torch.manual_seed(0)
    system = RBMSystem(BernoulliRBM(64, 16), persistent=True, n_chains=37)
    trainer = _trainer(tmp_path, max_steps=5, enable_checkpointing=True)
    trainer.fit(system, digits)
    assert system.chains is not None and system.chains.shape == (37, 64)
    ckpt = next(tmp_path.rglob("*.ckpt"))
    restored = RBMSystem(BernoulliRBM(64, 16), persistent=True, n_chains=37)
    restored.on_load_checkpoint(torch.load(ckpt, weights_only=True))
    assert restored.chains is not None
    assert torch.equal(restored.chains, system.chains)
    loaded = load_model(ckpt)
    assert torch.equal(loaded.weight, system.energy_model.weight)


def test_optimizer_groups_decay_weights_only_and_scale_sigma_lr() -> None:
    model = GaussianBernoulliRBM(5, 3)
    system = RBMSystem(model, lr=0.1, weight_decay=0.01, sigma_lr_scale=0.05)
    opt = system.configure_optimizers()
    by_param = {id(p): g for g in opt.param_groups for p in g["params"]}
    assert by_param[id(model.weight)]["weight_decay"] == 0.01
    assert by_param[id(model.visible_bias)]["weight_decay"] == 0.0
    assert by_param[id(model.log_sigma)]["lr"] == pytest.approx(0.005)
    assert by_param[id(model.weight)]["lr"] == pytest.approx(0.1)


def test_momentum_schedule(digits: DigitsDataModule) -> None:
    system = RBMSystem(
        BernoulliRBM(64, 8), initial_momentum=0.5, momentum=0.9, momentum_warmup_epochs=1
    )
    seen: list[float] = []

    class Spy(L.Callback):
        def on_train_batch_start(
            self, trainer: L.Trainer, pl_module: L.LightningModule, batch: object, idx: int
        ) -> None:
            if idx == 0:
                seen.append(trainer.optimizers[0].param_groups[0]["momentum"])

    _trainer(max_epochs=3, limit_train_batches=2, callbacks=[Spy()]).fit(system, digits)
    assert seen == [0.5, 0.9, 0.9]


def test_gaussian_sigma_stays_within_bounds_under_aggressive_updates() -> None:
    data = _gaussian_data(600, 10)
    dm = ArrayDataModule.from_arrays(data[:400], data[400:500], data[500:], "gaussian", 50)
    model = GaussianBernoulliRBM(10, 6, min_sigma=0.5, max_sigma=1.5)
    system = RBMSystem(model, lr=0.05, sigma_lr_scale=20.0)
    _trainer(max_epochs=5, gradient_clip_val=10.0).fit(system, dm)
    assert torch.all(model.sigma >= 0.5 - 1e-6) and torch.all(model.sigma <= 1.5 + 1e-6)
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_sparsity_target_lowers_mean_activation(digits: DigitsDataModule) -> None:
    def mean_activation(sparsity_cost: float) -> float:
        torch.manual_seed(0)
        model = BernoulliRBM(64, 16)
        system = RBMSystem(model, lr=0.05, sparsity_target=0.05, sparsity_cost=sparsity_cost)
        _trainer(max_epochs=5).fit(system, digits)
        with torch.no_grad():
            return float(model.hidden_probs(digits.train_tensor).mean())

    assert mean_activation(5.0) < mean_activation(0.0) - 0.05


def test_divergence_stops_with_a_clear_message(digits: DigitsDataModule) -> None:
    model = GaussianBernoulliRBM(64, 32, min_sigma=1e-3, sigma_init=1.0)
    data = digits.train_tensor.numpy() * 1e6
    dm = ArrayDataModule.from_arrays(data, data[:100], data[:100], "gaussian")
    system = RBMSystem(model, lr=10.0, init_from_data=False, divergence_threshold=1e8)
    with pytest.raises(FloatingPointError, match=r"training diverged at epoch 0, step \d+"):
        _trainer(max_epochs=3).fit(system, dm)


def test_nan_batch_is_rejected() -> None:
    system = RBMSystem(BernoulliRBM(4, 3))
    batch = torch.rand(5, 4)
    batch[2, 1] = math.nan
    with pytest.raises(ValueError, match=r"training batch contains NaN.*rows \[2\]"):
        system.training_step(batch, 0)


def test_wrong_batch_shape_is_rejected() -> None:
    system = RBMSystem(BernoulliRBM(4, 3))
    with pytest.raises(
        ValueError, match=r"expects training batch of shape \(batch, 4\); got \(5, 7\)"
    ):
        system.training_step(torch.rand(5, 7), 0)


def test_model_and_data_mismatch_is_reported(digits: DigitsDataModule) -> None:
    with pytest.raises(ValueError, match=r"784 visible units but the data .* has 64 features"):
        _trainer(max_steps=1).fit(RBMSystem(BernoulliRBM(784, 10)), digits)
    with pytest.raises(
        ValueError, match="gaussian visibles but DigitsDataModule provides bernoulli"
    ):
        _trainer(max_steps=1).fit(RBMSystem(GaussianBernoulliRBM(64, 10)), digits)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"k": 0}, "k .* must be >= 1"),
        ({"lr": 0.0}, "lr must be > 0"),
        ({"sparsity_target": 1.5}, "sparsity_target must be in"),
        ({"n_chains": 0}, "n_chains must be >= 1"),
    ],
)
def test_bad_arguments(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RBMSystem(BernoulliRBM(4, 3), **kwargs)  # type: ignore[arg-type]


def test_test_loop_reports_exact_log_likelihood(digits: DigitsDataModule) -> None:
    torch.manual_seed(0)
    model = BernoulliRBM(64, 10)
    system = RBMSystem(model, eval_log_z="auto")
    trainer = _trainer(max_epochs=2)
    trainer.fit(system, digits)
    (metrics,) = trainer.test(system, digits, verbose=False)
    expected = log_likelihood(model, digits.eval_tensor(), exact_log_partition(model)).mean()
    assert metrics["test/log_likelihood"] == pytest.approx(float(expected), abs=1e-3)
    assert "test/free_energy_gap" in metrics and "test/pseudo_log_likelihood" in metrics
