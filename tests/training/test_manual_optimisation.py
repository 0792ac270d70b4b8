"""RBMSystem under Lightning's manual optimisation (issue 15, item 1): with the closed-form
gradient and nothing that needs the automatic loop, ``training_step`` steps the optimizer
itself; training, checkpoints and resumes are the same as under automatic optimisation."""

from __future__ import annotations

import datetime
from functools import partial
from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch
from _trainer import quiet_trainer
from lightning.pytorch.callbacks import GradientAccumulationScheduler, ModelCheckpoint

from seqboltz.data import ArrayDataModule, DigitsDataModule
from seqboltz.models import BernoulliRBM, GaussianBernoulliRBM
from seqboltz.training import RBMSystem

STEPS_PER_EPOCH = 13  # DigitsDataModule's 1257 training digits in batches of 100


# float64 (the runs are compared to rtol 1e-12), three epochs, no validation
_trainer = partial(
    quiet_trainer, limit_val_batches=0, precision="64-true", max_epochs=3, log_every_n_steps=5
)


class _KeepAutomatic(L.Callback):
    """A callback with a ``zero_grad`` hook, which only automatic optimisation calls: it keeps
    the system on automatic optimisation (and counts the calls)."""

    def __init__(self) -> None:
        self.calls = 0

    def on_before_zero_grad(self, trainer: L.Trainer, pl_module: Any, optimizer: Any) -> None:
        self.calls += 1


class _CountOptimizerSteps(L.Callback):
    def __init__(self) -> None:
        self.steps: list[int] = []

    def on_before_optimizer_step(self, trainer: L.Trainer, pl_module: Any, optimizer: Any) -> None:
        self.steps.append(trainer.global_step)


def _system(kind: str, **kwargs: Any) -> RBMSystem:
    torch.manual_seed(5)
    model = GaussianBernoulliRBM(64, 24) if kind == "gaussian" else BernoulliRBM(64, 24)
    # float64 from the start: Lightning restores a checkpoint before "64-true" converts
    # the module, so a float32 module would round the restored parameters
    model = model.double()
    presets: dict[str, dict[str, Any]] = {
        "bernoulli": {"k": 1},
        "pcd": {"k": 2, "persistent": True, "sparsity_target": 0.1, "sparsity_cost": 0.3},
        "gaussian": {"k": 1, "sigma_lr_scale": 0.3},
    }
    options = dict(presets[kind])
    options.update(kwargs)
    return RBMSystem(
        model,
        lr=0.01 if kind == "gaussian" else 0.05,
        momentum=0.9,
        initial_momentum=0.5,
        momentum_warmup_epochs=1,
        weight_decay=0.01,
        eval_log_z="none",
        **options,
    )


def _data(kind: str = "bernoulli") -> ArrayDataModule:
    """The digits (13 batches an epoch); standardised for the Gaussian RBM."""
    if kind != "gaussian":
        return DigitsDataModule(batch_size=100)
    digits = DigitsDataModule(batch_size=100)
    digits.setup("fit")
    train = digits.train_tensor.numpy()
    mean, std = train.mean(0), train.std(0) + 0.1
    split = [(x.numpy() - mean) / std for x in (digits.train_tensor, digits.val_tensor)]
    return ArrayDataModule.from_arrays(split[0], split[1], split[1], "gaussian", 100)


def _momentum(system: RBMSystem) -> float:
    optimizer = system.optimizers()
    assert not isinstance(optimizer, list)
    return float(optimizer.param_groups[0]["momentum"])


def _lr(system: RBMSystem) -> float:
    optimizer = system.optimizers()
    assert not isinstance(optimizer, list)
    return float(optimizer.param_groups[0]["lr"])


def _parameters(system: RBMSystem) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in system.energy_model.named_parameters()}


def _assert_same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for name in a:
        assert a[name].dtype == torch.float64
        torch.testing.assert_close(a[name], b[name], rtol=1e-12, atol=1e-14, msg=name)


@pytest.mark.parametrize("kind", ["bernoulli", "pcd", "gaussian"])
def test_manual_optimisation_trains_to_the_same_parameters(kind: str) -> None:
    """Three epochs (39 steps, momentum 0.5 → 0.9 after the first, weight decay, float64)
    reach the same parameters, chains and step count under manual optimisation as under
    Lightning's automatic loop: with the optimizer stepped directly (no callback), and
    through LightningOptimizer.step when a callback has on_before_optimizer_step, which
    then sees every step."""
    direct, manual, automatic = _system(kind), _system(kind), _system(kind)
    keep = _KeepAutomatic()
    counts = _CountOptimizerSteps(), _CountOptimizerSteps()
    trainers = (
        _trainer(),
        _trainer(callbacks=[counts[0]]),
        _trainer(callbacks=[keep, counts[1]]),
    )
    for trainer, system in zip(trainers, (direct, manual, automatic), strict=True):
        trainer.fit(system, datamodule=_data(kind))
        assert trainer.global_step == 3 * STEPS_PER_EPOCH
    assert not direct.automatic_optimization and not manual.automatic_optimization
    assert direct._mode(trainers[0])[2] and not manual._mode(trainers[1])[2]
    assert automatic.automatic_optimization and keep.calls == 3 * STEPS_PER_EPOCH
    assert counts[0].steps == counts[1].steps == list(range(3 * STEPS_PER_EPOCH))
    assert _momentum(direct) == _momentum(manual) == 0.9
    _assert_same(_parameters(direct), _parameters(automatic))
    _assert_same(_parameters(manual), _parameters(automatic))
    torch.manual_seed(5)
    initial = _system(kind)
    weights = (
        manual.energy_model.get_parameter("weight"),
        initial.energy_model.get_parameter("weight"),
    )
    assert not torch.allclose(*weights, atol=1e-3)
    if kind == "pcd":
        assert direct.chains is not None and automatic.chains is not None
        torch.testing.assert_close(direct.chains, automatic.chains, rtol=0, atol=0)


def _last(root: Path) -> Path:
    return next(root.rglob("last.ckpt"))


@pytest.mark.parametrize("first_automatic", [False, True], ids=["manual", "from-automatic"])
def test_resume_continues_steps_and_optimizer_state(tmp_path: Path, first_automatic: bool) -> None:
    """Two epochs, a checkpoint, two more epochs resumed in a new system (with the Gibbs
    noise stream where the first run left it) give the parameters and the global step of
    four epochs in one run: the momentum buffers travel in the checkpoint. A checkpoint
    saved under automatic optimisation (as before manual optimisation existed) resumes
    under manual optimisation without restarting the step count."""
    whole = _system("bernoulli")
    _trainer(max_epochs=4).fit(whole, datamodule=_data())

    first = _system("bernoulli")
    save = ModelCheckpoint(save_last=True, save_top_k=0)
    callbacks: list[L.Callback] = [save, _KeepAutomatic()] if first_automatic else [save]
    saving = _trainer(tmp_path, enable_checkpointing=True, max_epochs=2, callbacks=callbacks)
    saving.fit(first, datamodule=_data())
    assert first.automatic_optimization is first_automatic
    assert first.generator is not None

    second = _system("bernoulli")
    second.generator = torch.Generator().set_state(first.generator.get_state())
    steps = _CountOptimizerSteps()
    trainer = _trainer(max_epochs=4, callbacks=[steps])
    trainer.fit(second, datamodule=_data(), ckpt_path=_last(tmp_path))
    assert not second.automatic_optimization
    assert steps.steps == list(range(2 * STEPS_PER_EPOCH, 4 * STEPS_PER_EPOCH))
    assert trainer.global_step == 4 * STEPS_PER_EPOCH
    _assert_same(_parameters(second), _parameters(whole))


def test_a_manual_checkpoint_resumes_under_automatic_optimisation(tmp_path: Path) -> None:
    first = _system("bernoulli")
    save = ModelCheckpoint(save_last=True, save_top_k=0)
    saving = _trainer(tmp_path, enable_checkpointing=True, max_epochs=1, callbacks=[save])
    saving.fit(first, datamodule=_data())
    assert not first.automatic_optimization
    second = _system("bernoulli")
    trainer = _trainer(max_epochs=2, gradient_clip_val=10.0)
    trainer.fit(second, datamodule=_data(), ckpt_path=_last(tmp_path))
    assert second.automatic_optimization
    assert trainer.global_step == 2 * STEPS_PER_EPOCH


class _OnAfterBackward(L.Callback):
    def on_after_backward(self, trainer: L.Trainer, pl_module: Any) -> None:
        pass


def _with_scheduler(system: RBMSystem) -> None:
    """What LightningCLI's ``--lr_scheduler`` does: replace the instance's
    configure_optimizers with one that adds a scheduler."""
    own = system.configure_optimizers

    def configure_optimizers() -> Any:
        optimizer = own()
        return {
            "optimizer": optimizer,
            "lr_scheduler": {
                "scheduler": torch.optim.lr_scheduler.StepLR(optimizer, 1, gamma=0.5),
                "interval": "step",
            },
        }

    system.configure_optimizers = configure_optimizers  # type: ignore[method-assign]


@pytest.mark.parametrize(
    "setup",
    [
        "closed_form=False",
        "gradient_clip_val",
        "accumulate_grad_batches",
        "GradientAccumulationScheduler",
        "on_after_backward",
        "every_n_train_steps",
        "train_time_interval",
        "lr_scheduler",
    ],
)
def test_automatic_optimisation_is_kept_where_manual_would_differ(
    setup: str, tmp_path: Path
) -> None:
    """Everything that the automatic loop does and the manual one would not (clipping,
    accumulation, backward hooks, LR schedulers, step- and time-based checkpoints) keeps
    the system on automatic optimisation, and works as before."""
    system = _system("bernoulli", closed_form=setup != "closed_form=False")
    kwargs: dict[str, Any] = {"max_epochs": 1}
    if setup == "gradient_clip_val":
        kwargs["gradient_clip_val"] = 0.5
    elif setup == "accumulate_grad_batches":
        kwargs["accumulate_grad_batches"] = 2
    elif setup == "GradientAccumulationScheduler":
        kwargs["callbacks"] = [GradientAccumulationScheduler({0: 1, 5: 2})]
    elif setup == "on_after_backward":
        kwargs["callbacks"] = [_OnAfterBackward()]
    elif setup == "every_n_train_steps":
        kwargs["callbacks"] = [ModelCheckpoint(every_n_train_steps=5, save_top_k=-1)]
        kwargs["default_root_dir"], kwargs["enable_checkpointing"] = str(tmp_path), True
    elif setup == "train_time_interval":
        interval = datetime.timedelta(seconds=0)
        kwargs["callbacks"] = [ModelCheckpoint(train_time_interval=interval, save_top_k=-1)]
        kwargs["default_root_dir"], kwargs["enable_checkpointing"] = str(tmp_path), True
    elif setup == "lr_scheduler":
        _with_scheduler(system)
    trainer = _trainer(**kwargs)
    trainer.fit(system, datamodule=_data())
    assert system.automatic_optimization
    assert system._needs_automatic_optimization(trainer) is not None
    if setup == "lr_scheduler":  # stepped by Lightning after each of the 13 steps
        assert _lr(system) == pytest.approx(0.05 * 0.5**13)
    if setup == "every_n_train_steps":
        assert len(list(tmp_path.rglob("*.ckpt"))) == 2  # steps 5 and 10
    if setup == "train_time_interval":
        assert len(list(tmp_path.rglob("*.ckpt"))) >= 2


def test_without_a_trainer_the_system_is_automatic() -> None:
    system = _system("bernoulli")
    assert system.automatic_optimization
    assert system._trainer is None


def test_manual_optimisation_set_by_hand_steps_the_autograd_path() -> None:
    """``automatic_optimization = False`` set by hand on the autograd path: the step runs
    zero_grad, backward and the optimizer itself, as the automatic loop would."""
    by_hand, automatic = (
        _system("bernoulli", closed_form=False),
        _system("bernoulli", closed_form=False),
    )
    by_hand.automatic_optimization = False
    _trainer(max_epochs=2).fit(by_hand, datamodule=_data())
    _trainer(max_epochs=2).fit(automatic, datamodule=_data())
    assert not by_hand.automatic_optimization and automatic.automatic_optimization
    _assert_same(_parameters(by_hand), _parameters(automatic))


def test_barebones_trainer_takes_manual_optimisation() -> None:
    manual, automatic = _system("bernoulli"), _system("bernoulli")
    options: dict[str, Any] = {"barebones": True, "logger": None, "log_every_n_steps": None}
    options["max_epochs"] = 2
    for key in ("enable_checkpointing", "enable_progress_bar", "enable_model_summary"):
        options[key] = None
    trainer = _trainer(**options)
    trainer.fit(manual, datamodule=_data())
    _trainer(max_epochs=2, callbacks=[_KeepAutomatic()]).fit(automatic, datamodule=_data())
    assert not manual.automatic_optimization
    assert trainer.global_step == 2 * STEPS_PER_EPOCH
    _assert_same(_parameters(manual), _parameters(automatic))


@pytest.mark.parametrize(
    "case", ["shuffled", "rank 1 of 3", "drop_last", "sequential", "workers", "pinned"]
)
def test_the_sliced_loader_yields_the_dataloaders_batches(case: str) -> None:
    """The in-memory DataModules' loader (it slices each batch from the epoch's index
    tensor, the Lightning path's DataLoader cost) gives the batches that a DataLoader with
    the same sampler, batch size and drop_last gives, epoch by epoch; and with workers or
    pinned memory it is a DataLoader."""
    from torch.utils.data import DataLoader, SequentialSampler
    from torch.utils.data.distributed import DistributedSampler

    from seqboltz.data._datamodule import _collate_batch, _RowsDataset, _RowsLoader

    data = torch.arange(103 * 3, dtype=torch.float32).reshape(103, 3)
    dataset = _RowsDataset(data)
    replicas, rank = (3, 1) if case == "rank 1 of 3" else (1, 0)

    def sampler() -> Any:
        if case == "sequential":  # what Lightning's overfit_batches puts in
            return SequentialSampler(dataset)
        return DistributedSampler(dataset, num_replicas=replicas, rank=rank, seed=4)

    options: dict[str, Any] = {"batch_size": 10, "collate_fn": _collate_batch}
    options["drop_last"] = case == "drop_last"
    options["num_workers"] = 1 if case == "workers" else 0
    options["pin_memory"] = case == "pinned"
    fast = _RowsLoader(dataset, sampler=sampler(), **options)
    plain = DataLoader(dataset, sampler=sampler(), **options)
    for epoch in range(2):
        for loader in (fast, plain):
            if hasattr(loader.sampler, "set_epoch"):
                loader.sampler.set_epoch(epoch)
        torch.manual_seed(epoch)
        got = list(fast)
        after_fast = torch.get_rng_state()  # the global stream moves as under DataLoader
        torch.manual_seed(epoch)
        want = list(plain)
        assert torch.equal(after_fast, torch.get_rng_state())
        assert len(got) == len(want) == len(fast) == len(plain)
        for a, b in zip(got, want, strict=True):
            assert torch.equal(a, b)
    if case in ("workers", "pinned"):
        assert isinstance(iter(fast), torch.utils.data.dataloader._BaseDataLoaderIter)
    else:
        assert not isinstance(iter(fast), torch.utils.data.dataloader._BaseDataLoaderIter)
