"""RBMSystem's CD step at the limit (issue 15, item 1): free energies only on logging steps,
the per-step batch and divergence checks from their bounds, the fused momentum SGD."""

from __future__ import annotations

import inspect
import math
from functools import partial
from typing import Any

import lightning as L
import pytest
import torch
from _trainer import quiet_trainer
from lightning.pytorch.utilities.signature_utils import is_param_in_hook_signature

from seqboltz.data import DigitsDataModule
from seqboltz.models import BernoulliRBM, GaussianBernoulliRBM
from seqboltz.training import RBMSystem
from seqboltz.training._system import _FusedMomentumSGD

_trainer = partial(quiet_trainer, limit_val_batches=0)


@pytest.fixture(scope="module")
def digits() -> DigitsDataModule:
    dm = DigitsDataModule(batch_size=100)
    dm.setup("fit")
    return dm


def _loader(batches: list[torch.Tensor]) -> torch.utils.data.DataLoader:
    return torch.utils.data.DataLoader(batches, batch_size=None)  # type: ignore[arg-type]


class _Recorder(L.Callback):
    """Per step: the global step, ``mean F(batch)`` before the update, the returned loss and
    what the system logged (its ``self.log`` calls)."""

    def __init__(self, system: RBMSystem) -> None:
        self.steps: list[int] = []
        self.free_energy_before: list[float] = []
        self.losses: list[float] = []
        self.logged: list[dict[str, float]] = []
        log = system.log

        def spy(name: str, value: Any, *args: Any, **kwargs: Any) -> None:
            self.logged[-1][name] = float(value)
            log(name, value, *args, **kwargs)

        system.log = spy  # type: ignore[method-assign]

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: Any, batch: Any, batch_idx: int
    ) -> None:
        self.steps.append(trainer.global_step)
        self.logged.append({})
        with torch.no_grad():
            f = pl_module.energy_model.free_energy(batch.to(pl_module.device)).mean()
        self.free_energy_before.append(float(f))

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: Any, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self.losses.append(float(outputs["loss"]))


@pytest.mark.parametrize("closed_form", [True, False], ids=["closed-form", "autograd"])
def test_free_energies_are_computed_and_logged_on_logging_steps(
    digits: DigitsDataModule, closed_form: bool
) -> None:
    """Under a Trainer the closed-form step computes the loss and ``train/free_energy`` only
    on the steps the Trainer logs (every ``log_every_n_steps``); they are the free energies of
    that step's batch. The other steps return a NaN loss (nothing reads it: the gradient is
    already in ``.grad``). The autograd path needs its loss on every step."""
    torch.manual_seed(0)
    system = RBMSystem(BernoulliRBM(64, 16), lr=0.05, closed_form=closed_form)
    recorder = _Recorder(system)
    _trainer(max_steps=8, log_every_n_steps=3, callbacks=[recorder]).fit(system, digits)
    assert recorder.steps == list(range(8))
    for step, loss, logged, f_before in zip(
        recorder.steps,
        recorder.losses,
        recorder.logged,
        recorder.free_energy_before,
        strict=True,
    ):
        if (step + 1) % 3 == 0:  # a logging step
            assert math.isfinite(loss), step
            assert set(logged) >= {"train/free_energy", "train/free_energy_diff"}, step
            assert logged["train/free_energy_diff"] == pytest.approx(loss, abs=1e-6)
            assert logged["train/free_energy"] == pytest.approx(f_before, rel=1e-5), step
        else:
            assert not logged, (step, logged)
            assert math.isnan(loss) if closed_form else math.isfinite(loss), (step, loss)


@pytest.mark.parametrize("value", [math.nan, math.inf])
@pytest.mark.parametrize("closed_form", [True, False], ids=["closed-form", "autograd"])
def test_a_non_finite_weight_is_caught_at_the_step_it_appears(
    digits: DigitsDataModule, closed_form: bool, value: float
) -> None:
    """A weight made NaN or infinite before step 4 (a step that logs nothing) stops training
    at step 4 with the one-line divergence message, as every step's free-energy check did."""
    torch.manual_seed(0)
    system = RBMSystem(BernoulliRBM(64, 16), lr=0.05, closed_form=closed_form)

    class Corrupt(L.Callback):
        def on_train_batch_start(
            self, trainer: L.Trainer, pl_module: Any, batch: Any, batch_idx: int
        ) -> None:
            if trainer.global_step == 4:
                with torch.no_grad():
                    pl_module.energy_model.weight[10, 3] = value

    with pytest.raises(
        FloatingPointError,
        match=r"^training diverged at epoch 0, step 4: free energy of the training batch is "
        r"(nan|-?inf)\. Lower the learning rate",
    ):
        _trainer(max_steps=20, callbacks=[Corrupt()]).fit(system, digits)


@pytest.mark.parametrize("closed_form", [True, False], ids=["closed-form", "autograd"])
def test_a_bad_batch_mid_training_is_one_line_and_never_applied(
    digits: DigitsDataModule, closed_form: bool
) -> None:
    """A NaN in the fourth batch (a step that logs nothing) raises the one-line batch error
    naming its row, before that batch's update is applied."""
    torch.manual_seed(0)
    batches = [digits.train_tensor[i * 50 : (i + 1) * 50].clone() for i in range(6)]
    batches[3][7, 5] = math.nan
    system = RBMSystem(BernoulliRBM(64, 16), lr=0.05, closed_form=closed_form)
    seen: list[torch.Tensor] = []

    class Snapshot(L.Callback):
        def on_train_batch_end(self, *args: Any) -> None:
            seen.append(system.energy_model.weight.detach().clone())

    with pytest.raises(
        ValueError, match=r"^training batch contains NaN or infinite values \(rows \[7\]"
    ):
        _trainer(max_epochs=1, callbacks=[Snapshot()]).fit(system, _loader(batches))
    assert len(seen) == 3
    assert torch.equal(system.energy_model.weight, seen[-1])


def _quiet_system(model: BernoulliRBM | GaussianBernoulliRBM, **kwargs: Any) -> RBMSystem:
    """A system stepped without a Trainer as on a Trainer's non-logging step."""
    system = RBMSystem(model, init_from_data=False, **kwargs)
    system._reports_step = lambda: False  # type: ignore[method-assign]
    return system


def test_the_divergence_threshold_keeps_its_meaning_on_quiet_steps(
    digits: DigitsDataModule,
) -> None:
    """``|mean F(v)| > divergence_threshold`` stops training on a step that logs nothing as
    on any other (the free energy's bounds decide when they can, ``F`` itself otherwise), and
    a free energy just inside the threshold does not."""
    torch.manual_seed(0)
    model = BernoulliRBM(64, 16, init_std=0.5)
    v = digits.train_tensor[:100]
    with torch.no_grad():
        f = float(model.free_energy(v).mean())
    assert abs(f) > 16 * math.log(2.0)  # the bounds alone cannot place |F| near |f|
    inside = _quiet_system(model, divergence_threshold=abs(f) * (1 + 1e-4))
    loss = inside.training_step(v, 0)
    assert math.isnan(float(loss))  # a quiet step computes no loss
    assert model.weight.grad is not None and bool(torch.isfinite(model.weight.grad).all())
    outside = _quiet_system(model, divergence_threshold=abs(f) * (1 - 1e-4))
    with pytest.raises(
        FloatingPointError,
        match=rf"step 0: free energy of the training batch is {f:.4g}\. ",
    ):
        outside.training_step(v, 0)


def test_quiet_steps_give_the_same_gradients_and_chains(digits: DigitsDataModule) -> None:
    """A step that computes no free energy writes the same ``.grad`` and persistent chains
    as one that does."""
    results = []
    for quiet in (False, True):
        torch.manual_seed(1)
        model = BernoulliRBM(64, 16, init_std=0.3)
        system = RBMSystem(model, persistent=True, k=2, init_from_data=False)
        if quiet:
            system._reports_step = lambda: False  # type: ignore[method-assign]
        system.generator = torch.Generator().manual_seed(2)
        system.training_step(digits.train_tensor[:50], 0)
        assert system.chains is not None
        results.append(({n: p.grad.clone() for n, p in model.named_parameters()}, system.chains))
    (grads, chains), (quiet_grads, quiet_chains) = results
    assert torch.equal(chains, quiet_chains)
    for name, grad in grads.items():
        assert torch.equal(grad, quiet_grads[name]), name


def _params(seed: int) -> list[torch.nn.Parameter]:
    g = torch.Generator().manual_seed(seed)
    shapes = [(7, 5), (7,), (5,), (7,)]
    return [torch.nn.Parameter(torch.randn(s, generator=g, dtype=torch.float64)) for s in shapes]


def _groups(params: list[torch.nn.Parameter], **extra: Any) -> list[dict[str, Any]]:
    return [
        {"params": params[:1], "lr": 0.1, "weight_decay": 0.01, **extra},
        {"params": params[1:3], "lr": 0.1, "weight_decay": 0.0, **extra},
        {"params": params[3:], "lr": 0.01, "weight_decay": 0.0, **extra},
    ]


@pytest.mark.parametrize(
    "extra", [{}, {"nesterov": True}, {"dampening": 0.1}], ids=["fast", "nesterov", "dampening"]
)
def test_fused_momentum_sgd_is_torch_sgd(extra: dict[str, Any]) -> None:
    """The same updates and momentum buffers as ``torch.optim.SGD(fused=True)`` (bit for bit)
    through a change of momentum and of learning rate, and its state loads into SGD; cases
    outside its fast path (Nesterov, dampening) fall back to SGD's own step."""
    ours, theirs = _params(0), _params(0)
    fast = _FusedMomentumSGD(_groups(ours, **extra), lr=0.1, momentum=0.5, fused=True)
    plain = torch.optim.SGD(_groups(theirs, **extra), lr=0.1, momentum=0.5, fused=True)
    g = torch.Generator().manual_seed(1)
    for step in range(6):
        grads = [torch.randn(p.shape, generator=g, dtype=torch.float64) for p in ours]
        for p, q, grad in zip(ours, theirs, grads, strict=True):
            p.grad, q.grad = grad.clone(), grad.clone()
        if step == 3:
            for opt in (fast, plain):
                for group in opt.param_groups:
                    group["momentum"] = 0.9
                opt.param_groups[0]["lr"] = 0.05
        fast.step()
        plain.step()
        for p, q in zip(ours, theirs, strict=True):
            assert torch.equal(p, q), step
            assert torch.equal(fast.state[p]["momentum_buffer"], plain.state[q]["momentum_buffer"])
    restored = torch.optim.SGD(_groups(_params(0), **extra), lr=0.1, momentum=0.5, fused=True)
    restored.load_state_dict(fast.state_dict())
    assert restored.state_dict()["state"].keys() == plain.state_dict()["state"].keys()


@pytest.mark.parametrize("nesterov", [False, True], ids=["fast", "fallback"])
def test_fused_momentum_sgd_runs_step_hooks_once(nesterov: bool) -> None:
    torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)  # torch hooks SGD.step
    params = _params(4)
    opt = _FusedMomentumSGD(_groups(params), lr=0.1, momentum=0.9, nesterov=nesterov, fused=True)
    calls: list[str] = []
    opt.register_step_pre_hook(lambda *args: calls.append("pre"))
    opt.register_step_post_hook(lambda *args: calls.append("post"))
    for p in params:
        p.grad = torch.ones_like(p)
    opt.step()
    assert calls == ["pre", "post"]


def test_fused_momentum_sgd_skips_parameters_without_a_gradient_as_sgd_does() -> None:
    ours, theirs = _params(3), _params(3)
    fast = _FusedMomentumSGD(_groups(ours), lr=0.1, momentum=0.9, fused=True)
    plain = torch.optim.SGD(_groups(theirs), lr=0.1, momentum=0.9, fused=True)
    for step in range(3):
        for i, (p, q) in enumerate(zip(ours, theirs, strict=True)):
            grad = None if (i == 2 and step == 1) else torch.full_like(p, 0.1 * (step + i))
            p.grad = None if grad is None else grad.clone()
            q.grad = None if grad is None else grad.clone()
        assert fast.step(lambda: torch.tensor(1.5)) == torch.tensor(1.5)
        plain.step()
        for p, q in zip(ours, theirs, strict=True):
            assert torch.equal(p, q), step


def test_the_system_uses_the_fused_sgd_and_lightning_sees_its_training_step() -> None:
    system = RBMSystem(BernoulliRBM(6, 4))
    assert type(system.configure_optimizers()) is _FusedMomentumSGD
    assert type(RBMSystem(BernoulliRBM(6, 4), initial_momentum=0.0).configure_optimizers()) is (
        torch.optim.SGD
    )
    assert list(inspect.signature(system.training_step).parameters) == ["batch", "batch_idx"]
    assert is_param_in_hook_signature(system.training_step, "batch_idx", min_args=2)
    system._current_fx_name = "training_step"  # a plain attribute, set by Lightning per hook
    assert system._current_fx_name == "training_step"
    assert "_current_fx_name" not in dict(system.named_parameters())


def test_barebones_trainer_trains_and_logs_nothing(digits: DigitsDataModule) -> None:
    """``Trainer(barebones=True)`` refuses ``self.log``: the system then logs nothing and
    computes no free energy, and still trains."""
    torch.manual_seed(0)
    system = RBMSystem(BernoulliRBM(64, 16), lr=0.05)
    before = system.energy_model.weight.detach().clone()
    recorder = _Recorder(system)
    L.Trainer(
        accelerator="cpu", devices=1, barebones=True, max_steps=3, limit_val_batches=0,
        callbacks=[recorder],
    ).fit(system, digits)  # fmt: skip
    assert recorder.logged == [{}, {}, {}]
    assert all(math.isnan(loss) for loss in recorder.losses)
    assert not torch.equal(system.energy_model.weight, before)
