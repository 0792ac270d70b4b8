"""RBMSystem: CD-k / PCD training, optimizer groups, remedies, divergence detection."""

from __future__ import annotations

import math
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from _trainer import quiet_trainer

from seqboltz.data import ArrayDataModule, DigitsDataModule
from seqboltz.eval import exact_log_partition, log_likelihood
from seqboltz.models import (
    BernoulliRBM,
    ConditionalRBM,
    GaussianBernoulliRBM,
    StructuredOutputCRBM,
    load_model,
)
from seqboltz.training import RBMSystem
from seqboltz.training._system import chain_noise, mode_noise


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
    quiet_trainer(max_epochs=15).fit(system, digits)
    after = log_likelihood(model, test, exact_log_partition(model)).mean()
    assert after > before + 5.0, (before, after)
    if persistent:
        assert system.chains is not None and system.chains.shape == (100, 64)


@pytest.mark.parametrize("closed_form", [True, False], ids=["closed-form", "autograd"])
def test_cd_k_loss_is_the_free_energy_difference(closed_form: bool) -> None:
    """The training loss is mean F(data) - mean F(negatives) with negatives from k Gibbs steps
    on the bulk-drawn noise of :func:`chain_noise`."""
    torch.manual_seed(0)
    model = BernoulliRBM(6, 4, init_std=0.5).double()
    system = RBMSystem(model, k=3, init_from_data=False, closed_form=closed_form)
    v = torch.bernoulli(torch.full((5, 6), 0.5, dtype=torch.float64))
    torch.manual_seed(123)
    loss = system.training_step(v, 0)
    torch.manual_seed(123)
    noise = chain_noise(model.noise_spec(), 3, 5, None, v)
    assert noise["hidden"].shape == (3, 5, 4) and noise["visible"].shape == (3, 5, 6)
    neg = v
    for s in range(3):
        neg = model.gibbs_step(neg, {name: x[s] for name, x in noise.items()}).v
    expected = model.free_energy(v).mean() - model.free_energy(neg).mean()
    assert torch.allclose(loss, expected, atol=1e-12)


def test_pcd_chains_persist_and_are_checkpointed(digits: DigitsDataModule, tmp_path: Path) -> None:
    torch.manual_seed(0)
    system = RBMSystem(BernoulliRBM(64, 16), persistent=True, n_chains=37)
    trainer = quiet_trainer(tmp_path, max_steps=5, enable_checkpointing=True)
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

    quiet_trainer(max_epochs=3, limit_train_batches=2, callbacks=[Spy()]).fit(system, digits)
    assert seen == [0.5, 0.9, 0.9]


def test_gaussian_sigma_stays_within_bounds_under_aggressive_updates() -> None:
    data = _gaussian_data(600, 10)
    dm = ArrayDataModule.from_arrays(data[:400], data[400:500], data[500:], "gaussian", 50)
    model = GaussianBernoulliRBM(10, 6, min_sigma=0.5, max_sigma=1.5)
    system = RBMSystem(model, lr=0.05, sigma_lr_scale=20.0)
    quiet_trainer(max_epochs=5, gradient_clip_val=10.0).fit(system, dm)
    assert torch.all(model.sigma >= 0.5 - 1e-6) and torch.all(model.sigma <= 1.5 + 1e-6)
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_sparsity_target_lowers_mean_activation(digits: DigitsDataModule) -> None:
    def mean_activation(sparsity_cost: float) -> float:
        torch.manual_seed(0)
        model = BernoulliRBM(64, 16)
        system = RBMSystem(model, lr=0.05, sparsity_target=0.05, sparsity_cost=sparsity_cost)
        quiet_trainer(max_epochs=5).fit(system, digits)
        with torch.no_grad():
            return float(model.hidden_probs(digits.train_tensor).mean())

    assert mean_activation(5.0) < mean_activation(0.0) - 0.05


@pytest.mark.parametrize("closed_form", [True, False], ids=["closed-form", "autograd"])
def test_divergence_stops_with_a_clear_message(digits: DigitsDataModule, closed_form: bool) -> None:
    model = GaussianBernoulliRBM(64, 32, min_sigma=1e-3, sigma_init=1.0)
    data = digits.train_tensor.numpy() * 1e6
    dm = ArrayDataModule.from_arrays(data, data[:100], data[:100], "gaussian")
    system = RBMSystem(
        model, lr=10.0, init_from_data=False, divergence_threshold=1e8, closed_form=closed_form
    )
    with pytest.raises(FloatingPointError, match=r"training diverged at epoch 0, step \d+"):
        quiet_trainer(max_epochs=3).fit(system, dm)


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
        quiet_trainer(max_steps=1).fit(RBMSystem(BernoulliRBM(784, 10)), digits)
    with pytest.raises(
        ValueError, match="gaussian visibles but DigitsDataModule provides bernoulli"
    ):
        quiet_trainer(max_steps=1).fit(RBMSystem(GaussianBernoulliRBM(64, 10)), digits)


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
    trainer = quiet_trainer(max_epochs=2)
    trainer.fit(system, digits)
    (metrics,) = trainer.test(system, digits, verbose=False)
    expected = log_likelihood(model, digits.eval_tensor(), exact_log_partition(model)).mean()
    assert metrics["test/log_likelihood"] == pytest.approx(float(expected), abs=1e-3)
    assert "test/free_energy_gap" in metrics and "test/pseudo_log_likelihood" in metrics


# -- negative particles: sample, mean field, CD-PercLoss ------------------------------------------
def _hand_model() -> StructuredOutputCRBM:
    """D=2 outputs, H=1 hidden, C=1 input; â = (-1, 0.5), b̂ = 0.3 for x = 0."""
    model = StructuredOutputCRBM(2, 1, n_cond=1, init_std=0.0).double()
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[2.0], [-3.0]]))
        model.visible_bias.copy_(torch.tensor([-1.0, 0.5]))
        model.hidden_bias.copy_(torch.tensor([0.3], dtype=torch.float64))
    return model


def _hand_free_energy(y: list[float]) -> float:
    """F(y | x=0) = -âᵀy - softplus(b̂ + yᵀW), written out for the hand model."""
    return -(-1.0 * y[0] + 0.5 * y[1]) - math.log1p(math.exp(0.3 + 2.0 * y[0] - 3.0 * y[1]))


@pytest.mark.parametrize("k", [1, 3])
def test_percloss_negative_is_the_deterministic_prediction_from_zeros(k: int) -> None:
    """From y = 0: h = 1[b̂ > 0] = 1, then y* = 1[â + W h > 0] = 1[(1, -2.5) > 0] = (1, 0),
    a fixed point (h = 1[0.3 + 2 > 0] = 1 again); the loss is F(y_data) - F(y*)."""
    model = _hand_model()
    system = RBMSystem(model, k=k, negative="perceptron", init_from_data=False)
    y = torch.tensor([[0.0, 1.0], [1.0, 1.0]], dtype=torch.float64)
    x = torch.zeros(2, 1, dtype=torch.float64)
    neg, _ = system._negative_particles(y, x)
    assert torch.equal(neg, torch.tensor([[1.0, 0.0], [1.0, 0.0]], dtype=torch.float64))
    losses = []
    for seed in (0, 1):  # no randomness is involved
        torch.manual_seed(seed)
        losses.append(float(system.training_step((y, x), 0)))
    f_neg = _hand_free_energy([1.0, 0.0])
    expected = (_hand_free_energy([0.0, 1.0]) + _hand_free_energy([1.0, 1.0])) / 2 - f_neg
    assert losses == [pytest.approx(expected, abs=1e-12)] * 2


def test_percloss_from_the_data_is_zero_at_a_fixed_point() -> None:
    """perceptron_start='data': y = (0, 1) gives h = 1[0.3 - 3 > 0] = 0, y* = 1[(-1, .5) > 0]
    = (0, 1) = y: the training output is already the model's answer, so the loss is 0;
    y = (1, 1) gives h = 1[-0.7 > 0] = 0 and y* = (0, 1)."""
    model = _hand_model()
    system = RBMSystem(model, negative="perceptron", perceptron_start="data", init_from_data=False)
    x = torch.zeros(1, 1, dtype=torch.float64)
    y = torch.tensor([[0.0, 1.0]], dtype=torch.float64)
    assert torch.equal(system._negative_particles(y, x)[0], y)
    assert float(system.training_step((y, x), 0)) == 0.0
    y2 = torch.tensor([[1.0, 1.0]], dtype=torch.float64)
    assert torch.equal(system._negative_particles(y2, x)[0], y)


def test_mode_noise_is_half_for_bernoulli_and_zero_for_gaussian() -> None:
    noise = mode_noise(GaussianBernoulliRBM(3, 2), 4, torch.zeros(1))
    assert torch.equal(noise["hidden"], torch.full((4, 2), 0.5))
    assert torch.equal(noise["visible"], torch.zeros(4, 3))
    rbm = BernoulliRBM(5, 3, init_std=1.0).double()
    v = torch.bernoulli(torch.full((4, 5), 0.5, dtype=torch.float64))
    step = rbm.gibbs_step(v, mode_noise(rbm, 4, v))
    assert torch.equal(step.h, (rbm.hidden_probs(v) > 0.5).double())
    assert torch.equal(step.v, (step.v_mean > 0.5).double())


def test_mean_field_negative_and_the_old_flag() -> None:
    torch.manual_seed(0)
    model = BernoulliRBM(6, 4, init_std=0.5).double()
    v = torch.bernoulli(torch.full((5, 6), 0.5, dtype=torch.float64))
    for system in (
        RBMSystem(model, negative="mean_field", init_from_data=False),
        RBMSystem(model, mean_field_negative=True, init_from_data=False),
    ):
        assert system.negative == "mean_field"
        torch.manual_seed(7)
        loss = system.training_step(v, 0)
        torch.manual_seed(7)
        neg = model.gibbs_chain(v, 1).v_mean
        expected = model.free_energy(v).mean() - model.free_energy(neg).mean()
        assert torch.allclose(loss, expected, atol=1e-12)
    assert RBMSystem(model).negative == "sample"
    with pytest.raises(ValueError, match="contradicts"):
        RBMSystem(model, negative="perceptron", mean_field_negative=True)
    with pytest.raises(ValueError, match="cannot be persistent"):
        RBMSystem(model, negative="perceptron", persistent=True)
    with pytest.raises(ValueError, match="negative must be"):
        RBMSystem(model, negative="gibbs")  # type: ignore[arg-type]


def test_percloss_learns_a_structured_mapping() -> None:
    """CD-PercLoss fits y = a fixed permutation of x ⊕ a fixed mask on a tiny CRBM."""
    gen = torch.Generator().manual_seed(0)
    x = torch.bernoulli(torch.full((400, 8), 0.5), generator=gen)
    y = (x[:, [3, 0, 6, 1, 7, 2, 5, 4]] + torch.tensor([1.0, 0, 0, 1, 0, 1, 0, 0])) % 2
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(y, x), batch_size=50, shuffle=True, generator=gen
    )
    torch.manual_seed(0)
    model = StructuredOutputCRBM(8, 6, n_cond=8)
    before = float((model.predict(x, "map") != y).float().mean())
    system = RBMSystem(model, k=1, negative="perceptron", lr=0.1, weight_decay=0.0)
    quiet_trainer(max_epochs=15).fit(system, train_dataloaders=loader)
    after = float((model.predict(x, "map") != y).float().mean())
    assert before > 0.3 and after < 0.02, (before, after)


def test_mean_field_negatives_with_a_learned_sigma_warn() -> None:
    with pytest.warns(UserWarning, match="understates the model's variance"):
        RBMSystem(GaussianBernoulliRBM(4, 3), negative="mean_field")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        RBMSystem(GaussianBernoulliRBM(4, 3, learn_sigma=False), negative="mean_field")
        RBMSystem(GaussianBernoulliRBM(4, 3), negative="sample")


# -- the closed-form fast path against autograd ------------------------------------------------
def _bernoulli() -> BernoulliRBM:
    return BernoulliRBM(7, 5, init_std=0.5).double()


def _gaussian() -> GaussianBernoulliRBM:
    model = GaussianBernoulliRBM(7, 5, init_std=0.5, min_sigma=0.1).double()
    with torch.no_grad():
        model.log_sigma.uniform_(-0.5, 0.5)
        model.visible_bias.normal_()
    return model


def _crbm() -> ConditionalRBM:
    model = ConditionalRBM(7, 5, order=2, n_controls=3, init_std=0.3).double()
    with torch.no_grad():
        model.visible_bias.normal_()
        model.hidden_bias.normal_()
    return model


MODELS = {"bernoulli": _bernoulli, "gaussian": _gaussian, "crbm": _crbm}
PATH_CASES = {
    "cd1": {"k": 1},
    "cd3": {"k": 3},
    "pcd2": {"k": 2, "persistent": True},
    "mean_field": {"k": 2, "negative": "mean_field"},
    "sparsity": {"k": 2, "sparsity_target": 0.1, "sparsity_cost": 0.7},
    "percloss": {"k": 2, "negative": "perceptron"},
}


def _batch(kind: str, n: int, seed: int) -> torch.Tensor | tuple[torch.Tensor, dict]:
    g = torch.Generator().manual_seed(seed)
    if kind == "bernoulli":
        return torch.rand(n, 7, generator=g, dtype=torch.float64)
    v = torch.randn(n, 7, generator=g, dtype=torch.float64)
    if kind == "gaussian":
        return v
    cond = {
        "history": torch.randn(n, 2, 7, generator=g, dtype=torch.float64),
        "controls": torch.randn(n, 3, generator=g, dtype=torch.float64),
    }
    return v, cond


@pytest.mark.parametrize("case", sorted(PATH_CASES))
@pytest.mark.parametrize("kind", sorted(MODELS))
def test_closed_form_and_autograd_gradients_agree(kind: str, case: str) -> None:
    """Two steps through training_step: the fast path's ``.grad`` equals autograd's
    (float64, relative 1e-10), and so do the losses and the persistent chains."""
    results = {}
    for closed_form in (True, False):
        torch.manual_seed(1)
        model = MODELS[kind]()
        system = RBMSystem(model, init_from_data=False, closed_form=closed_form, **PATH_CASES[case])
        system.generator = torch.Generator().manual_seed(5)
        grads, losses = [], []
        for step in range(2):
            loss = system.training_step(_batch(kind, 6, seed=step), step)
            system.optimizer_zero_grad(0, step, torch.optim.SGD(model.parameters(), lr=0.1))
            system.backward(loss)
            grads.append({n: p.grad.clone() for n, p in model.named_parameters()})
            losses.append(float(loss))
        chains = None if system.chains is None else system.chains.clone()
        results[closed_form] = (grads, losses, chains)
    (fast, fast_loss, fast_chains), (slow, slow_loss, slow_chains) = results[True], results[False]
    for step in range(2):
        assert fast[step].keys() == slow[step].keys()
        for name in slow[step]:
            rel = float((fast[step][name] - slow[step][name]).norm() / slow[step][name].norm())
            assert rel < 1e-10, (step, name, rel)
    assert fast_loss == pytest.approx(slow_loss, rel=1e-10, abs=1e-12)
    if slow_chains is not None:
        assert fast_chains is not None
        torch.testing.assert_close(fast_chains, slow_chains, rtol=1e-12, atol=1e-12)


class _CountCalls:
    def __init__(self, fn: object) -> None:
        self.fn, self.calls = fn, 0

    def __call__(self, *args: object, **kwargs: object) -> object:
        self.calls += 1
        return self.fn(*args, **kwargs)  # type: ignore[operator]


def _fit(kind: str, closed_form: bool, **trainer_kwargs: object) -> tuple[RBMSystem, int]:
    """A few SGD steps through the Trainer on float64 batches; returns the system and the
    number of closed-form calls."""
    torch.manual_seed(3)
    model = MODELS[kind]()
    counter = _CountCalls(model.cd_gradients)
    model.cd_gradients = counter  # type: ignore[method-assign]
    options: dict[str, object] = {
        "gaussian": {"k": 2, "persistent": True, "n_chains": 6, "sparsity_target": 0.1,
                     "sparsity_cost": 0.5, "sigma_lr_scale": 0.3},
        "crbm": {"k": 1, "negative": "mean_field"},
        "bernoulli": {"k": 1},
    }[kind]  # fmt: skip
    system = RBMSystem(
        model,
        lr=0.05,
        weight_decay=0.01,
        initial_momentum=0.5,
        momentum=0.9,
        momentum_warmup_epochs=1,
        init_from_data=False,
        closed_form=closed_form,
        eval_log_z="none",
        **options,  # type: ignore[arg-type]
    )
    batches = [_batch(kind, 6, seed=10 + i) for i in range(3)]
    kwargs: dict[str, object] = {"max_epochs": 2, "precision": "64-true"}
    kwargs.update(trainer_kwargs)
    loader = torch.utils.data.DataLoader(batches, batch_size=None)  # type: ignore[arg-type]
    quiet_trainer(**kwargs).fit(system, train_dataloaders=loader)
    return system, counter.calls


@pytest.mark.parametrize("kind", ["gaussian", "crbm"])
def test_closed_form_training_matches_autograd_through_the_trainer(kind: str) -> None:
    """Six Trainer steps (momentum 0.5 → 0.9, weight decay, gradient clipping; for the GRBM
    PCD-2 with a sparsity target and a σ learning-rate scale) give the same parameters on
    both paths from the same seed, and only the fast path calls ``cd_gradients``."""
    fast, fast_calls = _fit(kind, True, gradient_clip_val=0.5)
    slow, slow_calls = _fit(kind, False, gradient_clip_val=0.5)
    assert (fast_calls, slow_calls) == (6, 0)
    torch.manual_seed(3)
    initial = MODELS[kind]()  # what _fit starts from
    for (name, p), q in zip(
        fast.energy_model.named_parameters(), slow.energy_model.parameters(), strict=True
    ):
        torch.testing.assert_close(p, q, rtol=1e-10, atol=1e-12, msg=name)
        assert not torch.allclose(p, initial.get_parameter(name), rtol=0, atol=1e-6), name
    if kind == "gaussian":
        assert fast.chains is not None and slow.chains is not None
        torch.testing.assert_close(fast.chains, slow.chains, rtol=1e-10, atol=1e-12)


def test_gradient_accumulation_takes_the_autograd_path() -> None:
    _, calls = _fit("bernoulli", True, accumulate_grad_batches=3, max_epochs=1)
    assert calls == 0
    _, calls = _fit("bernoulli", True, max_epochs=1)
    assert calls == 3
