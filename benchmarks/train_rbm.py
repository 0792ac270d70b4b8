"""Benchmark: training a 784→500 binary RBM on MNIST-5k, seqboltz vs scikit-learn vs learnergy.

One process measures, on the same machine and data (the fixed 4000-image training split as
Bernoulli probabilities; the 1000 test images binarised once with seed 1234), batch 100:

1. throughput (examples/s), in interleaved rounds (each round runs every contender once, in
   a rotated order; the table gives medians over rounds, and ratios taken within a round):

   * the **reference loop** of issue 15, exactly as written there and nothing more (plain
     tensor ops: ``ph0 = σ(c + v0 W)``; ``h0 = (U < ph0)`` with ``U`` drawn in one call;
     ``pv1 = σ(b + h0 Wᵀ)``; ``ph1 = σ(c + pv1 W)``; ``ΔW = v0ᵀ ph0 − pv1ᵀ ph1``, the bias
     steps ``Σ(v0 − pv1)``, ``Σ(ph0 − ph1)``; SGD with momentum as in-place tensor ops);
   * a **GEMM-only loop**: the same five ``B×D×H`` products per batch and nothing else, the
     ceiling of any CD-1 step on this machine for these shapes;
   * seqboltz's CD-1 step in a bare Python loop (no Trainer) and through the Lightning
     ``Trainer``, configured as the same algorithm as the reference loop (mean-field negative
     visibles, no weight decay), plus the recipe's own CD-1 (sampled negatives, weight decay
     2e-4), the autograd path (``closed_form=False``) and PCD-1 through Lightning;
   * scikit-learn's ``BernoulliRBM.fit`` (PCD-1) on float32 and on float64 input, and
     learnergy's Bernoulli ``RBM.fit`` (CD-1);
2. the test log-likelihood each contender reaches after the same wall-clock budget, all
   evaluated with the same seqboltz AIS estimate of ``log Z`` (``--budget 0`` skips it);
3. the share of the GEMM ceiling each contender reaches (its examples/s over the GEMM-only
   loop's in the same round), and the large square float32 GEMM rate for reference.

Run from the repository root::

    python benchmarks/train_rbm.py                  # full run (minutes)
    python benchmarks/train_rbm.py --quick          # smoke test only, numbers are meaningless
    python benchmarks/train_rbm.py --threads 1 --json runs/bench/train_rbm.json
    nice -n 10 python benchmarks/train_rbm.py --threads 1 --budget 0 --rounds 7   # throughput

Hyperparameters: every contender uses learning rate 0.05 and batch 100, otherwise its library's
defaults (seqboltz: SGD momentum 0.5 → 0.9 after 5 epochs, weight decay 2e-4, visible biases
initialised from the data; scikit-learn: plain SGD; learnergy: plain SGD, no decay).
"""

from __future__ import annotations

import argparse
import itertools
import logging
import math
import statistics
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback
from torch import Tensor

sys.path.insert(0, str(Path(__file__).resolve().parent))  # `_common` when run as a script

from _common import (
    dump_json,
    format_machine_info,
    gemm_ceiling,
    machine_info,
    markdown_table,
    measure_gemm,
    quiet_trainer,
    seed_all,
    set_threads,
    timed,
)

from seqboltz.data import ArrayDataModule, binarize, mnist5k_split
from seqboltz.eval import ais_log_partition, log_likelihood
from seqboltz.models import BernoulliRBM
from seqboltz.training import RBMSystem

N_VISIBLE = 784
N_HIDDEN = 500
BATCH = 100
LR = 0.05
SEED = 0
# Algorithmic FLOPs of one CD-1 update: five B×D×H GEMMs (positive hidden probabilities,
# negative visible probabilities, negative hidden probabilities, and the two gradient outer
# products), 2 FLOPs per multiply-add.
CD1_FLOPS_PER_EXAMPLE = 10 * N_VISIBLE * N_HIDDEN
FLOP_CONVENTION = (
    "one CD-1 update = 10·B·D·H FLOPs: five B×D×H GEMMs (positive hidden probabilities, "
    "negative visible, negative hidden, two gradient outer products) at 2 FLOPs per "
    "multiply-add; sampling, sigmoids and bias updates not counted"
)


# -- data -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Data:
    """MNIST-5k: ``train (4000, 784)`` intensities, test as intensities and binarised."""

    train: np.ndarray
    test_probs: np.ndarray
    test_bin: np.ndarray

    @property
    def n_train(self) -> int:
        return int(self.train.shape[0])

    @property
    def train_tensor(self) -> Tensor:
        return torch.from_numpy(self.train)

    @property
    def test_bin_tensor(self) -> Tensor:
        return torch.from_numpy(self.test_bin)

    def datamodule(self, seed: int = SEED) -> ArrayDataModule:
        # val (the test intensities) is never used: the trainer runs no validation.
        return ArrayDataModule.from_arrays(
            self.train, self.test_probs, self.test_bin, "bernoulli", BATCH, shuffle_seed=seed
        )


def load_data() -> Data:
    split = mnist5k_split(seed=0)
    return Data(
        train=np.ascontiguousarray(split.train_x, dtype=np.float32),
        test_probs=np.ascontiguousarray(split.test_x, dtype=np.float32),
        test_bin=binarize(split.test_x, seed=1234),
    )


# -- results --------------------------------------------------------------------------------
@dataclass
class Throughput:
    examples: int
    steps: int
    seconds: float

    @property
    def examples_per_s(self) -> float:
        return self.examples / self.seconds

    @property
    def seconds_per_step(self) -> float:
        return self.seconds / self.steps

    def as_dict(self) -> dict[str, float]:
        return {
            "examples": self.examples,
            "steps": self.steps,
            "seconds": self.seconds,
            "examples_per_s": self.examples_per_s,
            "ms_per_step": 1e3 * self.seconds_per_step,
        }


@dataclass
class Trained:
    """A model trained for a wall-clock budget, converted to seqboltz."""

    model: BernoulliRBM
    epochs: int
    seconds: float
    dtype: str


@dataclass
class Evaluation:
    test_log_likelihood: float
    log_z: float
    log_z_low: float
    log_z_high: float
    effective_sample_size: float
    ais_seconds: float


@dataclass
class Row:
    name: str
    algorithm: str
    dtype: str
    throughput: Throughput | None = None
    budget_epochs: int | None = None
    budget_seconds: float | None = None
    evaluation: Evaluation | None = None
    notes: list[str] = field(default_factory=list)
    rounds: list[Throughput] = field(default_factory=list)  # one per interleaved round
    ratios: dict[str, float] = field(default_factory=dict)  # medians of per-round ratios

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "algorithm": self.algorithm,
            "dtype": self.dtype,
            "throughput": None if self.throughput is None else self.throughput.as_dict(),
            "rounds_examples_per_s": [t.examples_per_s for t in self.rounds],
            "median_ratios": self.ratios,
            "budget_epochs": self.budget_epochs,
            "budget_seconds": self.budget_seconds,
            "evaluation": self.evaluation,
            "notes": self.notes,
        }


# -- the reference loop of issue 15 and the GEMM-only ceiling -------------------------------
def _batches(data: Data, epochs: int, seed: int = SEED) -> list[list[Tensor]]:
    """Per epoch, the row-index batches of a seeded permutation (as every contender walks)."""
    order = torch.Generator().manual_seed(seed)
    return [list(torch.randperm(data.n_train, generator=order).split(BATCH)) for _ in range(epochs)]


def reference_step_fn(momentum: float = 0.5) -> Any:
    """Issue 15's plain CD-1 loop body, exactly as specified, float32: ``step(v0)``.

    ``ph0 = σ(c + v0 W)``; ``h0 = (U < ph0)`` with ``U`` drawn in one call;
    ``pv1 = σ(b + h0 Wᵀ)``; ``ph1 = σ(c + pv1 W)``; ``ΔW = v0ᵀ ph0 − pv1ᵀ ph1`` (and the
    biases' ``Σ(v0 − pv1)``, ``Σ(ph0 − ph1)``); SGD with momentum as in-place tensor ops.
    """
    g = torch.Generator().manual_seed(SEED)
    w = torch.randn(N_VISIBLE, N_HIDDEN, generator=g) * 0.01
    b, c = torch.zeros(N_VISIBLE), torch.zeros(N_HIDDEN)
    vel_w, vel_b, vel_c = torch.zeros_like(w), torch.zeros_like(b), torch.zeros_like(c)
    lr = LR / BATCH

    def step(v0: Tensor) -> None:
        ph0 = torch.sigmoid(c + v0 @ w)
        h0 = (torch.rand(ph0.shape, generator=g) < ph0).float()
        pv1 = torch.sigmoid(b + h0 @ w.T)
        ph1 = torch.sigmoid(c + pv1 @ w)
        d_w = v0.T @ ph0 - pv1.T @ ph1
        d_b = (v0 - pv1).sum(0)
        d_c = (ph0 - ph1).sum(0)
        vel_w.mul_(momentum).add_(d_w, alpha=lr)
        vel_b.mul_(momentum).add_(d_b, alpha=lr)
        vel_c.mul_(momentum).add_(d_c, alpha=lr)
        w.add_(vel_w)
        b.add_(vel_b)
        c.add_(vel_c)

    return step


def gemm_only_step_fn() -> Any:
    """Only the five GEMMs of a CD-1 step (``v W``, ``h Wᵀ``, ``p W``, ``vᵀ p``, ``pᵀ p``, same
    shapes and orientations, into preallocated outputs): ``step(v0)``, the ceiling of any CD-1
    step on this machine."""
    g = torch.Generator().manual_seed(SEED)
    w = torch.randn(N_VISIBLE, N_HIDDEN, generator=g) * 0.01
    h = (torch.rand(BATCH, N_HIDDEN, generator=g) < 0.5).float()
    p_v = torch.rand(BATCH, N_VISIBLE, generator=g)
    hid, vis, grad = (
        torch.empty(BATCH, N_HIDDEN),
        torch.empty(BATCH, N_VISIBLE),
        torch.empty_like(w),
    )

    def step(v0: Tensor) -> None:
        torch.mm(v0, w, out=hid)
        torch.mm(h, w.T, out=vis)
        torch.mm(p_v, w, out=hid)
        torch.mm(v0.T, hid, out=grad)
        torch.mm(p_v.T, hid, out=grad)

    return step


def _loop_throughput(data: Data, epochs: int, step: Any) -> Throughput:
    """``step(batch)`` over per-epoch permuted batches; the first epoch is warm-up."""
    x = data.train_tensor
    start, steps = math.nan, 0
    for epoch, batches in enumerate(_batches(data, epochs + 1)):
        if epoch == 1:
            start = time.perf_counter()
        for rows in batches:
            step(x[rows])
            steps += epoch >= 1
    return Throughput(epochs * data.n_train, steps, time.perf_counter() - start)


def reference_throughput(data: Data, epochs: int) -> Throughput:
    return _loop_throughput(data, epochs, reference_step_fn())


def gemm_only_throughput(data: Data, epochs: int) -> Throughput:
    return _loop_throughput(data, epochs, gemm_only_step_fn())


# -- seqboltz -------------------------------------------------------------------------------
#: the reference loop's algorithm: CD-1 with the mean-field negative visibles pv1, no decay
MATCHED = {"negative": "mean_field", "weight_decay": 0.0}


def make_system(persistent: bool, **kwargs: Any) -> RBMSystem:
    return RBMSystem(
        BernoulliRBM(N_VISIBLE, N_HIDDEN),
        k=1,
        persistent=persistent,
        lr=LR,
        eval_log_z="none",
        **kwargs,
    )


class BatchClock(Callback):
    """Times training batches from the first batch start to the last batch end.

    Epochs before ``warmup_epochs`` are not counted. With ``budget`` (seconds), training stops
    at the end of the first epoch that finishes ``budget`` seconds or more after the first batch.
    """

    def __init__(self, warmup_epochs: int = 0, budget: float | None = None) -> None:
        self.warmup_epochs = warmup_epochs
        self.budget = budget
        self.origin: float | None = None  # first batch start, any epoch
        self.first_start: float | None = None  # first counted batch start
        self.last_end: float | None = None
        self.examples = 0
        self.steps = 0
        self.epochs = 0
        self.elapsed = math.nan  # origin → end of the last finished epoch

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: Any, batch: Any, idx: int
    ) -> None:
        now = time.perf_counter()
        if self.origin is None:
            self.origin = now
        if self.first_start is None and trainer.current_epoch >= self.warmup_epochs:
            self.first_start = now

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: Any, outputs: Any, batch: Any, idx: int
    ) -> None:
        if trainer.current_epoch >= self.warmup_epochs:
            self.last_end = time.perf_counter()
            self.examples += int(batch.shape[0])
            self.steps += 1

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        assert self.origin is not None
        self.epochs += 1
        self.elapsed = time.perf_counter() - self.origin
        if self.budget is not None and self.elapsed >= self.budget:
            trainer.should_stop = True

    def throughput(self) -> Throughput:
        if self.first_start is None or self.last_end is None:
            raise RuntimeError("no batch was timed: need more epochs than warm-up epochs")
        return Throughput(self.examples, self.steps, self.last_end - self.first_start)


class IdleModule(L.LightningModule):
    """A LightningModule whose step trains nothing (a zero loss of one scalar parameter, SGD
    at learning rate 0): its examples/s through :func:`quiet_trainer` and the same DataModule
    measure Lightning's own per-step cost (the loop, its hooks, the DataLoader), the floor
    of any step taken through the Trainer."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(()))

    def training_step(self, batch: Tensor, batch_idx: int) -> Tensor:
        return self.weight * 0.0

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD([self.weight], lr=0.0, momentum=0.5)


def lightning_floor_throughput(data: Data, epochs: int) -> Throughput:
    """:class:`IdleModule` through ``lightning.Trainer.fit``; the first epoch is warm-up."""
    clock = BatchClock(warmup_epochs=1)
    quiet_trainer(epochs + 1, [clock]).fit(IdleModule(), datamodule=data.datamodule())
    return clock.throughput()


class KeepAutomatic(Callback):
    """A callback with a ``zero_grad`` hook, which only Lightning's automatic optimisation
    calls: it keeps :class:`RBMSystem` on automatic optimisation, as every system was before
    session 10 (it then takes manual optimisation on the closed-form path)."""

    def on_before_zero_grad(self, trainer: L.Trainer, pl_module: Any, optimizer: Any) -> None:
        pass


def seqboltz_throughput(
    data: Data, persistent: bool, epochs: int, automatic: bool = False, **system_kwargs: Any
) -> Throughput:
    """seqboltz CD-1/PCD-1 through ``lightning.Trainer.fit``; the first epoch is warm-up.
    ``automatic``: keep Lightning's automatic optimisation (:class:`KeepAutomatic`)."""
    seed_all(SEED)
    clock = BatchClock(warmup_epochs=1)
    system = make_system(persistent, **system_kwargs)
    callbacks: list[Callback] = [clock, KeepAutomatic()] if automatic else [clock]
    quiet_trainer(epochs + 1, callbacks).fit(system, datamodule=data.datamodule())
    return clock.throughput()


#: the Trainer's default ``log_every_n_steps`` (``quiet_trainer`` keeps it)
LOG_EVERY_N_STEPS = 50


def report_like_the_trainer(system: RBMSystem, every: int = LOG_EVERY_N_STEPS) -> None:
    """Make a system stepped without a Trainer compute its free energies (loss, logged values)
    on every ``every``-th step only, as under the Trainer, which logs every
    ``log_every_n_steps``; without a Trainer it would compute them on every step (a direct
    call). The batch and divergence checks run on every step either way."""
    steps = itertools.count(1)
    system._reports_step = lambda: next(steps) % every == 0  # type: ignore[method-assign]


def bare_step_fn(data: Data, persistent: bool = False, **system_kwargs: Any) -> Any:
    """seqboltz's step as the Trainer calls it, without a Trainer: ``step(batch)`` runs
    ``training_step``, the ``optimizer_zero_grad`` and ``backward`` hooks, ``optimizer.step``
    and ``on_train_batch_end`` (momentum fixed at the initial momentum)."""
    seed_all(SEED)
    system = make_system(persistent, **system_kwargs)
    system.energy_model.init_from_data(data.train_tensor)
    system.generator = torch.Generator().manual_seed(SEED)
    report_like_the_trainer(system)
    optimizer = system.configure_optimizers()

    def step(batch: Tensor) -> None:
        loss = system.training_step(batch, 0)
        system.optimizer_zero_grad(0, 0, optimizer)
        system.backward(loss)
        optimizer.step()
        system.on_train_batch_end(loss, batch, 0)

    return step


def step_interleaved(data: Data, epochs: int) -> dict[str, list[float]]:
    """Seconds per step of the loops in :data:`STEP_LOOPS`, one step of each in turn.

    On a shared machine the load changes within seconds; taking the steps of the contenders
    alternately (the order rotated at every batch) gives every loop the same share of quiet
    and busy moments, so the ratio of their median step times is robust where run-level
    timings are not. The first epoch is warm-up.
    """
    x = data.train_tensor
    steps = {name: make(data) for name, make in STEP_LOOPS.items()}
    names = list(steps)
    times: dict[str, list[float]] = {name: [] for name in names}
    count = 0
    for epoch, batches in enumerate(_batches(data, epochs + 1)):
        for rows in batches:
            batch = x[rows]
            count += 1
            for name in names[count % len(names) :] + names[: count % len(names)]:
                start = time.perf_counter()
                steps[name](batch)
                if epoch >= 1:
                    times[name].append(time.perf_counter() - start)
    return times


class _StepsBetweenTrainerSteps(Callback):
    """Runs one step of each given loop after every Trainer step, in a rotated order.

    The Trainer's step is timed from the end of the previous one (after these loops) to the
    end of its ``on_train_batch_end``: the DataLoader, Lightning's loop and hooks and the
    system's step, everything but the epoch boundaries. The loops slice their batch from the
    training tensor inside their timing, as the throughput loops do."""

    def __init__(self, data: Data, loops: dict[str, Any]) -> None:
        self.x = data.train_tensor
        self.rows = itertools.chain.from_iterable(_batches(data, 10_000, seed=SEED + 1))
        self.loops = loops
        self.times: dict[str, list[float]] = {"seqboltz_cd1": [], **{n: [] for n in loops}}
        self.last_end: float | None = None
        self.count = 0

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: Any, outputs: Any, batch: Any, idx: int
    ) -> None:
        end = time.perf_counter()
        counted = trainer.current_epoch >= 1
        if self.last_end is not None and counted:
            self.times["seqboltz_cd1"].append(end - self.last_end)
        rows = next(self.rows)
        names = list(self.loops)
        self.count += 1
        for name in names[self.count % len(names) :] + names[: self.count % len(names)]:
            start = time.perf_counter()
            self.loops[name](self.x[rows])
            if counted:
                self.times[name].append(time.perf_counter() - start)
        self.last_end = time.perf_counter()

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        self.last_end = None  # the epoch boundary is not a step


def lightning_step_interleaved(
    data: Data, epochs: int, automatic: bool = False
) -> dict[str, list[float]]:
    """Seconds per step of seqboltz's CD-1 through the Trainer, of its bare step and of the
    reference loop, one step of each in turn (see :class:`_StepsBetweenTrainerSteps`): the
    Lightning-over-bare ratio as robust to a changing load as :func:`step_interleaved`'s.
    The first epoch is warm-up. ``automatic``: the Trainer keeps automatic optimisation
    (:class:`KeepAutomatic`)."""
    loops = {"reference": reference_step_fn(), "seqboltz_cd1_bare": bare_step_fn(data, **MATCHED)}
    clock = _StepsBetweenTrainerSteps(data, loops)
    seed_all(SEED)
    system = make_system(False, **MATCHED)
    callbacks: list[Callback] = [clock, KeepAutomatic()] if automatic else [clock]
    quiet_trainer(epochs + 1, callbacks).fit(system, datamodule=data.datamodule())
    return clock.times


STEP_LOOPS: dict[str, Any] = {
    "reference": lambda d: reference_step_fn(),
    "gemm_only": lambda d: gemm_only_step_fn(),
    "seqboltz_cd1_bare": lambda d: bare_step_fn(d, **MATCHED),
    "seqboltz_cd1_recipe_bare": lambda d: bare_step_fn(d),
    "seqboltz_cd1_autograd_bare": lambda d: bare_step_fn(d, closed_form=False, **MATCHED),
}


def seqboltz_bare_throughput(
    data: Data, epochs: int, persistent: bool = False, **system_kwargs: Any
) -> Throughput:
    """The same system's step in a bare loop, calling what the Trainer calls, in its order.

    ``training_step`` (which on the closed-form path writes ``.grad``), the system's
    ``optimizer_zero_grad`` and ``backward`` hooks (no-ops on that path), ``optimizer.step``
    and ``on_train_batch_end`` (parameter constraints), with the momentum schedule; batches are
    sliced from the training tensor with a per-epoch permutation (no DataLoader, no Trainer:
    isolates Lightning's overhead). First epoch is warm-up.
    """
    seed_all(SEED)
    system = make_system(persistent, **system_kwargs)
    x = data.train_tensor
    system.energy_model.init_from_data(x)  # what RBMSystem.setup does under a Trainer
    system.generator = torch.Generator().manual_seed(SEED)  # what on_fit_start does
    report_like_the_trainer(system)  # free energies on the Trainer's logging steps only
    optimizer = system.configure_optimizers()
    steps = 0
    start = math.nan
    for epoch, batches in enumerate(_batches(data, epochs + 1)):
        if epoch == 1:
            start = time.perf_counter()
        momentum = (
            system.initial_momentum if epoch < system.momentum_warmup_epochs else system.momentum
        )
        for group in optimizer.param_groups:
            group["momentum"] = momentum
        for idx, rows in enumerate(batches):
            batch = x[rows]
            loss = system.training_step(batch, idx)
            system.optimizer_zero_grad(epoch, idx, optimizer)
            system.backward(loss)
            optimizer.step()
            system.on_train_batch_end(loss, batch, idx)
            steps += epoch >= 1
    seconds = time.perf_counter() - start
    return Throughput(epochs * data.n_train, steps, seconds)


def seqboltz_budget(data: Data, persistent: bool, budget: float) -> Trained:
    """Train through the Trainer, epoch by epoch, until ``budget`` seconds are spent."""
    seed_all(SEED)
    system = make_system(persistent)
    clock = BatchClock(budget=budget)
    quiet_trainer(1_000_000, [clock]).fit(system, datamodule=data.datamodule())
    model = system.energy_model
    assert isinstance(model, BernoulliRBM)
    return Trained(
        model, clock.epochs, clock.elapsed, str(model.weight.dtype).removeprefix("torch.")
    )


# -- scikit-learn ---------------------------------------------------------------------------
def make_sklearn(n_iter: int) -> Any:
    from sklearn.neural_network import BernoulliRBM as SkBernoulliRBM

    return SkBernoulliRBM(
        n_components=N_HIDDEN, batch_size=BATCH, learning_rate=LR, n_iter=n_iter, random_state=SEED
    )


def sklearn_throughput(data: Data, dtype: type[np.floating], epochs: int) -> tuple[Throughput, str]:
    """``BernoulliRBM.fit`` (PCD-1) with ``n_iter=epochs``; returns the parameters' dtype too.

    ``fit`` keeps the input dtype (float32 or float64). A one-epoch ``fit`` runs first as
    warm-up. ``fit`` walks the data in a fixed order (no shuffling).
    """
    x = data.train.astype(dtype)
    make_sklearn(1).fit(x)  # warm-up
    est = make_sklearn(epochs)
    with timed() as t:
        est.fit(x)
    steps = epochs * math.ceil(data.n_train / BATCH)
    return Throughput(epochs * data.n_train, steps, t.seconds), str(est.components_.dtype)


def sklearn_budget(data: Data, dtype: type[np.floating], budget: float) -> Trained:
    """PCD-1 on shuffled batches of 100 per epoch until ``budget`` seconds are spent.

    float64 uses the public ``partial_fit``. ``partial_fit`` converts every batch *and* the
    parameters it initialises to float64 whatever the input, so float32 instead initialises
    with ``fit(n_iter=0)`` (float32 parameters, no epochs) and then calls the per-minibatch
    update that ``fit`` itself runs, the private ``_fit(batch, rng)``.
    """
    x = data.train.astype(dtype)
    order = np.random.default_rng(SEED)
    if dtype == np.float64:
        est = make_sklearn(1)

        def update(batch: np.ndarray) -> None:
            est.partial_fit(batch)

    else:
        est = make_sklearn(0).fit(x)  # n_iter=0: initialise parameters in x's dtype only
        rng = np.random.RandomState(SEED + 1)  # fit's own generator is local to fit

        def update(batch: np.ndarray) -> None:
            est._fit(batch, rng)

    epochs = 0
    start = time.perf_counter()
    while time.perf_counter() - start < budget:
        perm = order.permutation(data.n_train)
        for i in range(0, data.n_train, BATCH):
            update(x[perm[i : i + BATCH]])
        epochs += 1
    seconds = time.perf_counter() - start
    return Trained(BernoulliRBM.from_sklearn(est), epochs, seconds, str(est.components_.dtype))


# -- learnergy ------------------------------------------------------------------------------
def _quiet_learnergy() -> None:
    """learnergy gives each module's logger its own stdout (and file) handler: mute them."""
    for name in list(logging.root.manager.loggerDict):
        if name.startswith("learnergy"):
            logging.getLogger(name).setLevel(logging.ERROR)


def make_learnergy(data: Data) -> tuple[Any, Any]:
    """A learnergy Bernoulli RBM (CD-1, on the CPU) and its dataset of ``(x, dummy y)`` pairs.

    Constructing the model sets torch's default dtype to float32 (a learnergy side effect).
    """
    from learnergy.core import Dataset
    from learnergy.models.bernoulli import RBM

    _quiet_learnergy()
    seed_all(SEED)
    rbm = RBM(n_visible=N_VISIBLE, n_hidden=N_HIDDEN, steps=1, learning_rate=LR, use_gpu=False)
    x = data.train_tensor
    dataset = Dataset(x, torch.zeros(x.shape[0], dtype=torch.long), show_log=False)
    return rbm, dataset


def learnergy_throughput(data: Data, epochs: int) -> Throughput:
    """learnergy's own ``fit(dataset, batch_size, epochs)`` after a one-epoch warm-up ``fit``.

    Its ``fit`` also computes the reconstruction error and a pseudo-likelihood per batch, and
    its DataLoader fetches and collates the batch row by row: both are counted, as they are
    part of training with learnergy.
    """
    rbm, dataset = make_learnergy(data)
    n = len(dataset)
    rbm.fit(dataset, batch_size=BATCH, epochs=1)  # warm-up
    with timed() as t:
        rbm.fit(dataset, batch_size=BATCH, epochs=epochs)
    return Throughput(epochs * n, epochs * math.ceil(n / BATCH), t.seconds)


def learnergy_to_seqboltz(rbm: Any) -> BernoulliRBM:
    """learnergy's ``W (D, H)``, ``a`` (visible) and ``b`` (hidden) use seqboltz's energy."""
    model = BernoulliRBM(int(rbm.n_visible), int(rbm.n_hidden), init_std=0.0)
    with torch.no_grad():
        model.weight.copy_(rbm.W.detach().cpu())
        model.visible_bias.copy_(rbm.a.detach().cpu())
        model.hidden_bias.copy_(rbm.b.detach().cpu())
    return model


def learnergy_budget(data: Data, budget: float) -> Trained:
    """One-epoch ``fit`` calls until ``budget`` seconds are spent."""
    rbm, dataset = make_learnergy(data)
    epochs = 0
    start = time.perf_counter()
    while time.perf_counter() - start < budget:
        rbm.fit(dataset, batch_size=BATCH, epochs=1)
        epochs += 1
    seconds = time.perf_counter() - start
    return Trained(
        learnergy_to_seqboltz(rbm), epochs, seconds, str(rbm.W.dtype).removeprefix("torch.")
    )


# -- evaluation -----------------------------------------------------------------------------
def evaluate(model: BernoulliRBM, data: Data, n_chains: int, n_betas: int) -> Evaluation:
    """Mean test log-likelihood with ``log Z`` from seqboltz's AIS (same settings for all)."""
    with timed() as t:
        ais = ais_log_partition(
            model, base_data=data.train_tensor, n_chains=n_chains, n_betas=n_betas, seed=0
        )
        ll = float(log_likelihood(model, data.test_bin_tensor, ais.log_z).mean())
    return Evaluation(
        ll, ais.log_z, ais.log_z_low, ais.log_z_high, ais.effective_sample_size, t.seconds
    )


# -- output ---------------------------------------------------------------------------------
def _log_z_cell(e: Evaluation | None) -> str | None:
    if e is None:
        return None
    low = "inf" if math.isinf(e.log_z_low) else f"{e.log_z - e.log_z_low:.2f}"
    return f"{e.log_z:.2f} (−{low} / +{e.log_z_high - e.log_z:.2f})"


def results_table(rows: list[Row]) -> str:
    headers = [
        "contender",
        "algorithm",
        "dtype",
        "examples/s",
        "× reference loop",
        "share of GEMM ceiling",
        "× sklearn f32",
        "test LL after budget (nats)",
        "log Z (−3σ / +3σ)",
        "epochs in budget",
    ]
    body = []
    for r in rows:
        body.append(
            [
                r.name,
                r.algorithm,
                r.dtype,
                None if r.throughput is None else r.throughput.examples_per_s,
                r.ratios.get("reference"),
                r.ratios.get("gemm_only"),
                r.ratios.get("sklearn_pcd1_float32"),
                None if r.evaluation is None else r.evaluation.test_log_likelihood,
                _log_z_cell(r.evaluation),
                r.budget_epochs,
            ]
        )
    return markdown_table(headers, body, digits=[0, 0, 0, 0, 3, 3, 2, 2, 0, 0])


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument(
        "--budget", type=float, default=60.0, help="training seconds per contender (0: skip)"
    )
    p.add_argument("--throughput-epochs", type=int, default=2, help="timed epochs (after warm-up)")
    p.add_argument("--rounds", type=int, default=5, help="interleaved throughput rounds")
    p.add_argument(
        "--step-epochs",
        type=int,
        default=3,
        help="epochs of the step-interleaved comparison (0: skip it)",
    )
    p.add_argument(
        "--contenders",
        default="all",
        help="comma-separated throughput contenders (see CONTENDERS), or 'all'",
    )
    p.add_argument("--ais-betas", type=int, default=14500)
    p.add_argument("--ais-chains", type=int, default=100)
    p.add_argument(
        "--sklearn-budget-dtype",
        choices=["float32", "float64"],
        default="float32",
        help="dtype of scikit-learn's budget run (float64 uses the public partial_fit)",
    )
    p.add_argument("--threads", type=int, default=None, help="torch and BLAS threads")
    p.add_argument("--json", type=Path, default=None, help="also write the JSON results here")
    p.add_argument(
        "--quick", action="store_true", help="smoke test: 3 s budget, 1 epoch, 1 round, 500 betas"
    )
    args = p.parse_args(argv)
    if args.quick:
        args.budget, args.throughput_epochs, args.ais_betas = min(args.budget, 3.0), 1, 500
        args.rounds = 1
    if args.budget < 0 or args.throughput_epochs < 1 or args.rounds < 1:
        p.error("--budget must be >= 0, --throughput-epochs and --rounds >= 1")
    names = list(CONTENDERS) if args.contenders == "all" else args.contenders.split(",")
    unknown = [n for n in names if n not in CONTENDERS]
    if unknown:
        p.error(f"unknown contenders {unknown}; choose from {list(CONTENDERS)}")
    args.contenders = [n for n in CONTENDERS if n in names or n in ("reference", "gemm_only")]
    return args


def _quiet_lightning() -> None:
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    # lightning 2.6 on torch >= 2.10 warns at every fit (lightning's own code, not ours)
    warnings.filterwarnings("ignore", message=".*isinstance\\(treespec, LeafSpec\\).*")


def _measure_gemms(quick: bool) -> dict[str, Any]:
    sizes = (1024, 2048) if quick else (2048, 4096)
    ceiling, squares = gemm_ceiling(sizes, repeats=2 if quick else 3)
    shapes = [  # the three orientations of the 100×784×500 GEMMs in an RBM step
        measure_gemm(BATCH, N_VISIBLE, N_HIDDEN),  # v W          (hidden input)
        measure_gemm(BATCH, N_HIDDEN, N_VISIBLE),  # h Wᵀ         (visible input)
        measure_gemm(N_VISIBLE, BATCH, N_HIDDEN),  # vᵀ h         (gradient)
    ]
    return {"ceiling_gflops": ceiling, "squares": squares, "rbm_shapes": shapes}


@dataclass(frozen=True)
class Contender:
    """A throughput contender: table label, algorithm, dtype and ``run(data, epochs)``."""

    name: str
    algorithm: str
    dtype: str
    run: Any  # Callable[[Data, int], Throughput | tuple[Throughput, str]]


CONTENDERS: dict[str, Contender] = {
    "reference": Contender(
        "reference loop (issue 15)", "CD-1, mean-field v⁻", "float32", reference_throughput
    ),
    "gemm_only": Contender("GEMM-only loop (5 GEMMs/step)", "—", "float32", gemm_only_throughput),
    "seqboltz_cd1_bare": Contender(
        "seqboltz CD-1 (bare step)",
        "CD-1, mean-field v⁻",
        "float32",
        lambda d, e: seqboltz_bare_throughput(d, e, **MATCHED),
    ),
    "seqboltz_cd1": Contender(
        "seqboltz CD-1 (Lightning)",
        "CD-1, mean-field v⁻",
        "float32",
        lambda d, e: seqboltz_throughput(d, False, e, **MATCHED),
    ),
    "seqboltz_cd1_automatic": Contender(
        "seqboltz CD-1 (Lightning, automatic optimisation)",
        "CD-1, mean-field v⁻",
        "float32",
        lambda d, e: seqboltz_throughput(d, False, e, automatic=True, **MATCHED),
    ),
    "seqboltz_cd1_autograd_bare": Contender(
        "seqboltz CD-1 (bare step, autograd path)",
        "CD-1, mean-field v⁻",
        "float32",
        lambda d, e: seqboltz_bare_throughput(d, e, closed_form=False, **MATCHED),
    ),
    "seqboltz_cd1_recipe_bare": Contender(
        "seqboltz CD-1 recipe (bare step)",
        "CD-1, sampled v⁻, decay 2e-4",
        "float32",
        lambda d, e: seqboltz_bare_throughput(d, e),
    ),
    "seqboltz_cd1_recipe": Contender(
        "seqboltz CD-1 recipe (Lightning)",
        "CD-1, sampled v⁻, decay 2e-4",
        "float32",
        lambda d, e: seqboltz_throughput(d, False, e),
    ),
    "seqboltz_pcd1": Contender(
        "seqboltz PCD-1 (Lightning)",
        "PCD-1, decay 2e-4",
        "float32",
        lambda d, e: seqboltz_throughput(d, True, e),
    ),
    "sklearn_pcd1_float32": Contender(
        "sklearn PCD-1 (float32 in)",
        "PCD-1",
        "float32",
        lambda d, e: sklearn_throughput(d, np.float32, e)[0],
    ),
    "sklearn_pcd1_float64": Contender(
        "sklearn PCD-1 (float64 in)",
        "PCD-1",
        "float64",
        lambda d, e: sklearn_throughput(d, np.float64, e)[0],
    ),
    "learnergy_cd1": Contender("learnergy CD-1", "CD-1", "float32", learnergy_throughput),
    "lightning_floor": Contender(
        "Lightning alone (a step that trains nothing)", "—", "float32", lightning_floor_throughput
    ),
}
NOTES = {
    "reference": "issue 15's loop exactly: plain tensor ops, U in one torch.rand call",
    "gemm_only": "the five 100×784×500 GEMMs of a step and nothing else: the ceiling",
    "seqboltz_cd1_bare": "no Trainer, no DataLoader: the Trainer's hook calls in a Python loop",
    "seqboltz_cd1_recipe": "recipes/mnist_rbm.yaml's algorithm (sampled negative visibles)",
    "learnergy_cd1": "its fit also computes MSE and pseudo-likelihood per batch",
    "lightning_floor": "the Trainer's own per-step cost with the same DataModule: no CD step",
    "seqboltz_cd1_automatic": "the Lightning row kept on automatic optimisation (KeepAutomatic)",
}


def interleaved_throughput(
    data: Data, names: list[str], rounds: int, epochs: int, note: Any
) -> dict[str, list[Throughput]]:
    """``rounds`` rounds; each runs every contender once, the order rotated by one per round
    (so no contender always follows the same neighbour or always runs first)."""
    results: dict[str, list[Throughput]] = {n: [] for n in names}
    for r in range(rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            tp = CONTENDERS[name].run(data, epochs)
            results[name].append(tp)
        ref = results["reference"][-1].examples_per_s
        note(
            f"round {r + 1}/{rounds}: "
            + ", ".join(f"{n} {results[n][-1].examples_per_s / ref:.3f}" for n in names)
            + f" (× reference, {ref:.0f} examples/s)"
        )
    return results


def _median_ratio(num: list[Throughput], den: list[Throughput]) -> float:
    return statistics.median(
        a.examples_per_s / b.examples_per_s for a, b in zip(num, den, strict=True)
    )


def _median_throughput(runs: list[Throughput]) -> Throughput:
    """The run with the median examples/s (the lower middle one for an even count)."""
    ordered = sorted(runs, key=lambda t: t.examples_per_s)
    return ordered[(len(ordered) - 1) // 2]


def summarise_steps(times: dict[str, list[float]], with_gemm: bool) -> dict[str, dict[str, float]]:
    """Per loop of step-interleaved ``times`` (seconds a step): steps, median and quartiles
    (ms), examples/s, speed over the ``"reference"`` loop's and, ``with_gemm``, the share of
    the ``"gemm_only"`` loop's speed (the GEMM ceiling)."""
    ref_median = statistics.median(times["reference"])
    out: dict[str, dict[str, float]] = {}
    for name, ts in times.items():
        med = statistics.median(ts)
        q1, _, q3 = statistics.quantiles(ts, n=4) if len(ts) > 1 else (med, med, med)
        out[name] = {
            "steps": len(ts),
            "median_ms": 1e3 * med,
            "q1_ms": 1e3 * q1,
            "q3_ms": 1e3 * q3,
            "examples_per_s": BATCH / med,
            "over_reference": ref_median / med,
        }
        if with_gemm:
            out[name]["share_of_gemm_ceiling"] = statistics.median(times["gemm_only"]) / med
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    set_threads(args.threads)
    _quiet_lightning()
    info = machine_info()
    print(format_machine_info(info), flush=True)
    if args.quick:
        print("--quick: smoke test, the numbers below are not results", flush=True)

    data = load_data()
    gemm_start = _measure_gemms(args.quick)
    print(f"GEMM ceiling (start): {gemm_start['ceiling_gflops']:.1f} GFLOP/s", flush=True)

    def note(msg: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)

    # 1. throughput, interleaved rounds
    ep = args.throughput_epochs
    names: list[str] = args.contenders
    runs = interleaved_throughput(data, names, args.rounds, ep, note)
    rows: dict[str, Row] = {}
    for name in names:
        c = CONTENDERS[name]
        row = Row(c.name, c.algorithm, c.dtype, _median_throughput(runs[name]))
        row.rounds = runs[name]
        for ref in ("reference", "gemm_only", "sklearn_pcd1_float32"):
            if ref in runs:
                row.ratios[ref] = _median_ratio(runs[name], runs[ref])
        if name in NOTES:
            row.notes.append(NOTES[name])
        rows[name] = row
    targets: dict[str, float] = {}
    if "seqboltz_cd1_bare" in runs:
        targets["bare_over_reference"] = rows["seqboltz_cd1_bare"].ratios["reference"]
    if "seqboltz_cd1" in runs and "seqboltz_cd1_bare" in runs:
        targets["lightning_over_bare"] = _median_ratio(
            runs["seqboltz_cd1"], runs["seqboltz_cd1_bare"]
        )
    if "seqboltz_cd1_automatic" in runs and "seqboltz_cd1_bare" in runs:
        targets["automatic_lightning_over_bare"] = _median_ratio(
            runs["seqboltz_cd1_automatic"], runs["seqboltz_cd1_bare"]
        )
    if "seqboltz_cd1_recipe" in runs and "seqboltz_cd1_recipe_bare" in runs:
        targets["recipe_lightning_over_bare"] = _median_ratio(
            runs["seqboltz_cd1_recipe"], runs["seqboltz_cd1_recipe_bare"]
        )
    if "seqboltz_cd1" in runs and "seqboltz_cd1_bare" in runs:  # ms a step Lightning adds
        targets["lightning_minus_bare_ms_per_step"] = 1e3 * statistics.median(
            a.seconds_per_step - b.seconds_per_step
            for a, b in zip(runs["seqboltz_cd1"], runs["seqboltz_cd1_bare"], strict=True)
        )
    if "lightning_floor" in runs:
        targets["lightning_floor_ms_per_step"] = 1e3 * statistics.median(
            t.seconds_per_step for t in runs["lightning_floor"]
        )

    step_times: dict[str, list[float]] = {}
    step_summary: dict[str, dict[str, float]] = {}
    if args.step_epochs > 0:
        note(f"step-interleaved: {', '.join(STEP_LOOPS)} ({args.step_epochs} epochs)")
        step_times = step_interleaved(data, 1 if args.quick else args.step_epochs)
        step_summary = summarise_steps(step_times, with_gemm=True)
        targets["step_interleaved_bare_over_reference"] = step_summary["seqboltz_cd1_bare"][
            "over_reference"
        ]
    lightning_summary: dict[str, dict[str, float]] = {}
    if args.step_epochs > 0 and "seqboltz_cd1" in names:
        note("Lightning step-interleaved with the bare step and the reference loop")
        lightning_times = lightning_step_interleaved(data, 1 if args.quick else args.step_epochs)
        lightning_summary = summarise_steps(lightning_times, with_gemm=False)
        targets["step_interleaved_lightning_over_bare"] = (
            lightning_summary["seqboltz_cd1"]["over_reference"]
            / lightning_summary["seqboltz_cd1_bare"]["over_reference"]
        )
        targets["step_interleaved_lightning_minus_bare_ms"] = (
            lightning_summary["seqboltz_cd1"]["median_ms"]
            - lightning_summary["seqboltz_cd1_bare"]["median_ms"]
        )
    automatic_summary: dict[str, dict[str, float]] = {}
    if args.step_epochs > 0 and "seqboltz_cd1_automatic" in names:
        note("Lightning step-interleaved again, kept on automatic optimisation")
        automatic_times = lightning_step_interleaved(
            data, 1 if args.quick else args.step_epochs, automatic=True
        )
        automatic_summary = summarise_steps(automatic_times, with_gemm=False)
        targets["step_interleaved_automatic_lightning_over_bare"] = (
            automatic_summary["seqboltz_cd1"]["over_reference"]
            / automatic_summary["seqboltz_cd1_bare"]["over_reference"]
        )
        targets["step_interleaved_automatic_lightning_minus_bare_ms"] = (
            automatic_summary["seqboltz_cd1"]["median_ms"]
            - automatic_summary["seqboltz_cd1_bare"]["median_ms"]
        )

    # 2. test log-likelihood after the same wall-clock budget
    sk_key = f"sklearn_pcd1_{args.sklearn_budget_dtype}"
    sk_dtype = np.float32 if args.sklearn_budget_dtype == "float32" else np.float64
    budget_runs = [
        (
            "seqboltz_cd1_recipe",
            lambda: seqboltz_budget(data, persistent=False, budget=args.budget),
        ),
        ("seqboltz_pcd1", lambda: seqboltz_budget(data, persistent=True, budget=args.budget)),
        (sk_key, lambda: sklearn_budget(data, sk_dtype, args.budget)),
        ("learnergy_cd1", lambda: learnergy_budget(data, args.budget)),
    ]
    for key, train in budget_runs if args.budget > 0 else []:
        if key not in rows:
            continue
        note(f"budget {args.budget:g} s: {rows[key].name}")
        trained = train()
        row = rows[key]
        row.budget_epochs, row.budget_seconds = trained.epochs, trained.seconds
        if trained.dtype != row.dtype:
            row.notes.append(f"budget run trained in {trained.dtype}")
        note(f"AIS ({args.ais_chains} chains, {args.ais_betas} betas): {row.name}")
        row.evaluation = e = evaluate(trained.model, data, args.ais_chains, args.ais_betas)
        if math.isinf(e.log_z_low) or e.effective_sample_size < 0.1 * args.ais_chains:
            row.notes.append(
                f"AIS unreliable: effective sample size {e.effective_sample_size:.1f} of "
                f"{args.ais_chains} chains (raise --ais-betas)"
            )

    gemm_end = _measure_gemms(args.quick)
    ceiling = max(gemm_start["ceiling_gflops"], gemm_end["ceiling_gflops"])

    # 3. GFLOP/s of each contender (10·B·D·H per step) and of the GEMM-only loop
    flops_per_step = CD1_FLOPS_PER_EXAMPLE * BATCH
    gflops = {
        key: flops_per_step / row.throughput.seconds_per_step / 1e9
        for key, row in rows.items()
        if row.throughput is not None
    }

    # 4. output
    table_rows = list(rows.values())
    print()
    print(
        f"MNIST-5k, {N_VISIBLE}→{N_HIDDEN}, batch {BATCH}, lr {LR}; throughput: median of "
        f"{args.rounds} interleaved round(s) of {ep} epoch(s) after a warm-up epoch, ratios "
        f"taken within each round; threads {args.threads}"
        + (
            f"; budget {args.budget:g} s per contender; log Z by AIS ({args.ais_chains} chains, "
            f"{args.ais_betas} betas, seed 0) on the binarised test set"
            if args.budget > 0
            else ""
        )
    )
    print()
    print(results_table(table_rows))
    print()
    for r in table_rows:
        if r.notes:
            print(f"- {r.name}: {'; '.join(r.notes)}")
    if step_summary:
        print()
        print(
            "Step-interleaved (one step of each loop in turn, rotating; median step time over "
            f"{step_summary['reference']['steps']} steps each):"
        )
        print()
        print(
            markdown_table(
                [
                    "loop",
                    "median ms/step (q1–q3)",
                    "examples/s",
                    "× reference loop",
                    "share of GEMM ceiling",
                ],
                [
                    [
                        CONTENDERS[name].name,
                        f"{v['median_ms']:.2f} ({v['q1_ms']:.2f}–{v['q3_ms']:.2f})",
                        v["examples_per_s"],
                        v["over_reference"],
                        v["share_of_gemm_ceiling"],
                    ]
                    for name, v in step_summary.items()
                ],
                digits=[0, 0, 0, 3, 3],
            )
        )
    for summary, how in ((lightning_summary, ""), (automatic_summary, ", automatic optimisation")):
        if not summary:
            continue
        print()
        print(
            f"Lightning step-interleaved{how} (after every Trainer step, one step of the bare "
            "loop and of the reference loop; median step time over "
            f"{summary['reference']['steps']} steps each):"
        )
        print()
        print(
            markdown_table(
                ["loop", "median ms/step (q1–q3)", "examples/s", "× reference loop"],
                [
                    [
                        CONTENDERS[name].name,
                        f"{v['median_ms']:.2f} ({v['q1_ms']:.2f}–{v['q3_ms']:.2f})",
                        v["examples_per_s"],
                        v["over_reference"],
                    ]
                    for name, v in summary.items()
                ],
                digits=[0, 0, 0, 3],
            )
        )
    print()
    for key, value in targets.items():
        print(f"{key}: {value:.3f}")
    shapes = ", ".join(f"{g.shape}: {g.gflops:.1f}" for g in gemm_start["rbm_shapes"])
    print(
        f"float32 GEMM, large squares (best torch.mm of "
        f"{', '.join(g.shape for g in gemm_start['squares'])}, start/end of run): "
        f"{ceiling:.1f} GFLOP/s (start {gemm_start['ceiling_gflops']:.1f}, "
        f"end {gemm_end['ceiling_gflops']:.1f}); the step's shapes alone (GFLOP/s): {shapes}"
    )
    print(f"FLOP convention: {FLOP_CONVENTION}")
    print(
        "GFLOP/s (median run): " + ", ".join(f"{rows[k].name} {v:.1f}" for k, v in gflops.items())
    )

    result = {
        "benchmark": "train_rbm",
        "settings": {
            "data": "MNIST-5k fixed split (seed 0): 4000 train intensities, 1000 test "
            "binarised with seed 1234",
            "n_visible": N_VISIBLE,
            "n_hidden": N_HIDDEN,
            "batch_size": BATCH,
            "learning_rate": LR,
            "budget_s": args.budget,
            "throughput_epochs": ep,
            "rounds": args.rounds,
            "ais_chains": args.ais_chains,
            "ais_betas": args.ais_betas,
            "threads": args.threads,
            "quick": args.quick,
        },
        "machine": info,
        "gemm": {"large_square_gflops": ceiling, "start": gemm_start, "end": gemm_end},
        "flop_convention": FLOP_CONVENTION,
        "flops_per_cd1_step": flops_per_step,
        "gflops": gflops,
        "targets": targets,
        "step_interleaved": step_summary,
        "lightning_step_interleaved": lightning_summary,
        "lightning_automatic_step_interleaved": automatic_summary,
        "rows": {k: r.as_dict() for k, r in rows.items()},
    }
    text = dump_json(result, args.json)
    print()
    print(text)
    return result


if __name__ == "__main__":
    main()
