"""Benchmark: training a 784→500 binary RBM on MNIST-5k, seqboltz vs scikit-learn vs learnergy.

One process measures, on the same machine and data (the fixed 4000-image training split as
Bernoulli probabilities; the 1000 test images binarised once with seed 1234), batch 100:

1. throughput (examples/s) of seqboltz CD-1 and PCD-1 through the real Lightning training path,
   of the same CD-1 system's step in a bare Python loop (no Trainer: isolates Lightning's
   overhead), of scikit-learn's ``BernoulliRBM.fit`` (PCD-1) on float32 and on float64 input,
   and of learnergy's Bernoulli ``RBM.fit`` (CD-1);
2. the test log-likelihood each contender reaches after the same wall-clock budget, all
   evaluated with the same seqboltz AIS estimate of ``log Z``;
3. the float32 GEMM ceiling of the machine and the fraction of it a seqboltz CD-1 step reaches.

Run from the repository root::

    python benchmarks/train_rbm.py                  # full run (minutes)
    python benchmarks/train_rbm.py --quick          # smoke test only, numbers are meaningless
    python benchmarks/train_rbm.py --threads 1 --json runs/bench/train_rbm.json

Hyperparameters: every contender uses learning rate 0.05 and batch 100, otherwise its library's
defaults (seqboltz: SGD momentum 0.5 → 0.9 after 5 epochs, weight decay 2e-4, visible biases
initialised from the data; scikit-learn: plain SGD; learnergy: plain SGD, no decay).
"""

from __future__ import annotations

import argparse
import logging
import math
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

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "algorithm": self.algorithm,
            "dtype": self.dtype,
            "throughput": None if self.throughput is None else self.throughput.as_dict(),
            "budget_epochs": self.budget_epochs,
            "budget_seconds": self.budget_seconds,
            "evaluation": self.evaluation,
            "notes": self.notes,
        }


# -- seqboltz -------------------------------------------------------------------------------
def make_system(persistent: bool) -> RBMSystem:
    return RBMSystem(
        BernoulliRBM(N_VISIBLE, N_HIDDEN), k=1, persistent=persistent, lr=LR, eval_log_z="none"
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


def seqboltz_throughput(data: Data, persistent: bool, epochs: int) -> Throughput:
    """seqboltz CD-1/PCD-1 through ``lightning.Trainer.fit``; the first epoch is warm-up."""
    seed_all(SEED)
    clock = BatchClock(warmup_epochs=1)
    quiet_trainer(epochs + 1, [clock]).fit(make_system(persistent), datamodule=data.datamodule())
    return clock.throughput()


def seqboltz_bare_throughput(data: Data, epochs: int, persistent: bool = False) -> Throughput:
    """The same system's ``training_step`` + ``backward`` + ``optimizer.step`` without a Trainer.

    Also runs ``zero_grad`` and the system's ``on_train_batch_end`` (parameter constraints and
    finiteness check) so the work per step matches the Lightning path; batches are sliced from
    the training tensor with a per-epoch permutation (no DataLoader). First epoch is warm-up.
    """
    seed_all(SEED)
    system = make_system(persistent)
    x = data.train_tensor
    system.energy_model.init_from_data(x)  # what RBMSystem.setup does under a Trainer
    system.on_fit_start()  # Gibbs noise generator, as under a Trainer (no-op if not defined)
    optimizer = system.configure_optimizers()
    order = torch.Generator().manual_seed(SEED)
    steps = 0
    start = math.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # self.log() without a Trainer warns and does nothing
        for epoch in range(epochs + 1):
            if epoch == 1:
                start = time.perf_counter()
            momentum = (
                system.initial_momentum
                if epoch < system.momentum_warmup_epochs
                else system.momentum
            )
            for group in optimizer.param_groups:
                group["momentum"] = momentum
            for idx, rows in enumerate(torch.randperm(data.n_train, generator=order).split(BATCH)):
                batch = x[rows]
                loss = system.training_step(batch, idx)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                system.on_train_batch_end(loss, batch, idx)
                if epoch >= 1:
                    steps += 1
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


def results_table(rows: list[Row], ref64: float | None, ref32: float | None) -> str:
    headers = [
        "contender",
        "algorithm",
        "dtype",
        "examples/s",
        "× sklearn f64",
        "× sklearn f32",
        "test LL after budget (nats)",
        "log Z (−3σ / +3σ)",
        "epochs in budget",
    ]
    body = []
    for r in rows:
        eps = None if r.throughput is None else r.throughput.examples_per_s
        body.append(
            [
                r.name,
                r.algorithm,
                r.dtype,
                eps,
                None if eps is None or not ref64 else eps / ref64,
                None if eps is None or not ref32 else eps / ref32,
                None if r.evaluation is None else r.evaluation.test_log_likelihood,
                _log_z_cell(r.evaluation),
                r.budget_epochs,
            ]
        )
    return markdown_table(headers, body, digits=[0, 0, 0, 0, 2, 2, 2, 0, 0])


# -- main -----------------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--budget", type=float, default=60.0, help="training seconds per contender")
    p.add_argument("--throughput-epochs", type=int, default=5, help="timed epochs (after warm-up)")
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
        "--quick", action="store_true", help="smoke test: 3 s budget, 1 epoch, 500 betas"
    )
    args = p.parse_args(argv)
    if args.quick:
        args.budget, args.throughput_epochs, args.ais_betas = 3.0, 1, 500
    if args.budget <= 0 or args.throughput_epochs < 1:
        p.error("--budget must be > 0 and --throughput-epochs >= 1")
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

    # 1. throughput
    ep = args.throughput_epochs
    note("throughput: seqboltz CD-1 (Lightning)")
    cd_tp = seqboltz_throughput(data, persistent=False, epochs=ep)
    note("throughput: seqboltz CD-1 (bare step)")
    bare_tp = seqboltz_bare_throughput(data, epochs=ep)
    note("throughput: seqboltz PCD-1 (Lightning)")
    pcd_tp = seqboltz_throughput(data, persistent=True, epochs=ep)
    note("throughput: scikit-learn float32 / float64")
    sk32_tp, sk32_dtype = sklearn_throughput(data, np.float32, ep)
    sk64_tp, sk64_dtype = sklearn_throughput(data, np.float64, ep)
    note("throughput: learnergy CD-1")
    le_tp = learnergy_throughput(data, ep)

    rows = {
        "seqboltz_cd1": Row("seqboltz CD-1 (Lightning)", "CD-1", "float32", cd_tp),
        "seqboltz_cd1_bare": Row("seqboltz CD-1 (bare step)", "CD-1", "float32", bare_tp),
        "seqboltz_pcd1": Row("seqboltz PCD-1 (Lightning)", "PCD-1", "float32", pcd_tp),
        "sklearn_pcd1_float32": Row("sklearn PCD-1 (float32 in)", "PCD-1", sk32_dtype, sk32_tp),
        "sklearn_pcd1_float64": Row("sklearn PCD-1 (float64 in)", "PCD-1", sk64_dtype, sk64_tp),
        "learnergy_cd1": Row("learnergy CD-1", "CD-1", "float32", le_tp),
    }
    rows["seqboltz_cd1_bare"].notes.append("no Trainer, no DataLoader: isolates Lightning overhead")
    rows["learnergy_cd1"].notes.append("its fit also computes MSE and pseudo-likelihood per batch")

    # 2. test log-likelihood after the same wall-clock budget
    sk_key = f"sklearn_pcd1_{args.sklearn_budget_dtype}"
    sk_dtype = np.float32 if args.sklearn_budget_dtype == "float32" else np.float64
    budget_runs = [
        ("seqboltz_cd1", lambda: seqboltz_budget(data, persistent=False, budget=args.budget)),
        ("seqboltz_pcd1", lambda: seqboltz_budget(data, persistent=True, budget=args.budget)),
        (sk_key, lambda: sklearn_budget(data, sk_dtype, args.budget)),
        ("learnergy_cd1", lambda: learnergy_budget(data, args.budget)),
    ]
    for key, train in budget_runs:
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

    # 3. fraction of the GEMM ceiling reached by a seqboltz CD-1 step
    flops_per_step = CD1_FLOPS_PER_EXAMPLE * BATCH
    fractions = {}
    for key in ("seqboltz_cd1_bare", "seqboltz_cd1"):
        tp = rows[key].throughput
        assert tp is not None
        gflops = flops_per_step / tp.seconds_per_step / 1e9
        fractions[key] = {
            "ms_per_step": 1e3 * tp.seconds_per_step,
            "gflops": gflops,
            "fraction_of_ceiling": gflops / ceiling,
        }

    # 4. output
    ref64 = sk64_tp.examples_per_s
    ref32 = sk32_tp.examples_per_s
    table_rows = list(rows.values())
    print()
    print(
        f"MNIST-5k, {N_VISIBLE}→{N_HIDDEN}, batch {BATCH}, lr {LR}; throughput over "
        f"{ep} epoch(s) after warm-up; budget {args.budget:g} s per contender; log Z by AIS "
        f"({args.ais_chains} chains, {args.ais_betas} betas, seed 0) on the binarised test set"
    )
    print()
    print(results_table(table_rows, ref64, ref32))
    print()
    for r in table_rows:
        if r.notes:
            print(f"- {r.name}: {'; '.join(r.notes)}")
    shapes = ", ".join(f"{g.shape}: {g.gflops:.1f}" for g in gemm_start["rbm_shapes"])
    print()
    print(
        f"float32 GEMM ceiling (best torch.mm of "
        f"{', '.join(g.shape for g in gemm_start['squares'])}, start/end of run): "
        f"{ceiling:.1f} GFLOP/s (start {gemm_start['ceiling_gflops']:.1f}, "
        f"end {gemm_end['ceiling_gflops']:.1f}); RBM GEMM shapes (GFLOP/s): {shapes}"
    )
    print(f"FLOP convention: {FLOP_CONVENTION}")
    for key, f in fractions.items():
        print(
            f"{rows[key].name}: {f['ms_per_step']:.2f} ms/step → {f['gflops']:.1f} GFLOP/s = "
            f"{100 * f['fraction_of_ceiling']:.1f}% of the ceiling"
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
            "ais_chains": args.ais_chains,
            "ais_betas": args.ais_betas,
            "threads": args.threads,
            "quick": args.quick,
        },
        "machine": info,
        "gemm": {
            "ceiling_gflops": ceiling,
            "start": gemm_start,
            "end": gemm_end,
        },
        "flop_convention": FLOP_CONVENTION,
        "flops_per_cd1_step": flops_per_step,
        "cd1_fraction_of_ceiling": fractions,
        "rows": {k: r.as_dict() for k, r in rows.items()},
    }
    text = dump_json(result, args.json)
    print()
    print(text)
    return result


if __name__ == "__main__":
    main()
