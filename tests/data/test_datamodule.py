from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from jsonargparse import ArgumentParser

import seqboltz.data._datamodule as dm_mod
from seqboltz.data import (
    ArrayDataModule,
    DataError,
    DigitsDataModule,
    ImagePatchesDataModule,
    MNIST5kDataModule,
    mnist5k_split,
    stratified_split,
)

N, D = 103, 5


def _arrays(n: int = N, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows whose first column is the row id / n (so a batch tells which rows it holds)."""
    rng = np.random.default_rng(seed)
    x = rng.random((n, D))
    x[:, 0] = np.arange(n) / n
    return x, x[:20].copy(), x[20:50].copy()


def _ids(batch: torch.Tensor, n: int = N) -> list[int]:
    return torch.round(batch[:, 0].double() * n).long().tolist()


def _toy(batch_size: int = 10, shuffle_seed: int = 0) -> ArrayDataModule:
    dm = ArrayDataModule.from_arrays(*_arrays(), batch_size=batch_size, shuffle_seed=shuffle_seed)
    dm.setup("fit")
    return dm


# ---- batching -----------------------------------------------------------------------------


def test_batches_shape_dtype_and_each_example_once_per_epoch() -> None:
    dm = _toy(batch_size=10)
    loader = dm.train_dataloader()
    batches = list(loader)
    assert len(batches) == math.ceil(N / 10) == len(loader)
    assert all(b.dtype == torch.float32 and b.ndim == 2 and b.shape[1] == D for b in batches)
    assert [b.shape[0] for b in batches] == [10] * 10 + [3]
    ids = [i for b in batches for i in _ids(b)]
    assert sorted(ids) == list(range(N))
    assert ids != list(range(N)), "training order is shuffled"
    assert torch.equal(torch.cat(batches)[np.argsort(ids)], dm.train_tensor)


def test_epochs_reshuffle_reproducibly() -> None:
    def order(dm: ArrayDataModule, epoch: int) -> list[int]:
        loader = dm.train_dataloader()
        loader.sampler.set_epoch(epoch)  # type: ignore[attr-defined]
        return [i for b in loader for i in _ids(b)]

    a, b, c = _toy(shuffle_seed=0), _toy(shuffle_seed=0), _toy(shuffle_seed=1)
    assert order(a, 0) == order(b, 0)
    assert order(a, 0) != order(a, 1) and sorted(order(a, 1)) == list(range(N))
    assert order(a, 0) != order(c, 0)


def test_eval_loaders_in_order() -> None:
    dm = _toy(batch_size=8)
    val = torch.cat(list(dm.val_dataloader()))
    test = torch.cat(list(dm.test_dataloader()))
    assert torch.equal(val, dm.val_tensor) and torch.equal(test, dm.test_tensor)
    assert torch.equal(dm.eval_tensor(), dm.test_tensor)


def test_batches_are_sliced_not_collated_row_by_row(monkeypatch: pytest.MonkeyPatch) -> None:
    def per_row(self: object, index: int) -> torch.Tensor:
        raise AssertionError("per-row __getitem__ used: slow path")

    monkeypatch.setattr(dm_mod._RowsDataset, "__getitem__", per_row)
    assert sum(b.shape[0] for b in _toy(batch_size=16).train_dataloader()) == N


def test_sharding_by_rank_is_disjoint_and_covering(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = []
    for rank in (0, 1):
        dm = _toy(batch_size=7)
        monkeypatch.setattr(dm, "trainer", _FakeTrainer(2, rank))
        seen.append([i for b in dm.train_dataloader() for i in _ids(b)])
    assert len(seen[0]) == len(seen[1]) == math.ceil(N / 2)
    assert set(seen[0]) | set(seen[1]) == set(range(N))
    # N is odd: DistributedSampler pads one rank with one repeated example
    assert len(set(seen[0]) & set(seen[1])) == 1


# ---- validation ---------------------------------------------------------------------------


@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_nan_names_split_and_rows(split: str) -> None:
    arrays = dict(zip(("train", "val", "test"), _arrays(), strict=True))
    arrays[split][3, 1] = np.nan
    arrays[split][7, 0] = np.inf
    dm = ArrayDataModule.from_arrays(arrays["train"], arrays["val"], arrays["test"])
    with pytest.raises(
        DataError, match=rf"^in-memory arrays: {split} split has non-finite .*\[3, 7\]"
    ):
        dm.setup("fit")


def test_bernoulli_range_checked_gaussian_not() -> None:
    train, val, test = _arrays()
    train[5, 2] = 1.5
    with pytest.raises(ValueError, match=r"train split is bernoulli .*outside \[0, 1\].*\[5\]"):
        ArrayDataModule.from_arrays(train, val, test, visible_kind="bernoulli").setup()
    test = test - 2.0
    dm = ArrayDataModule.from_arrays(train, val, test, visible_kind="gaussian")
    dm.setup()
    assert dm.visible_kind == "gaussian" and dm.test_tensor.min() < 0


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        (np.zeros((0, D)), "train split is empty"),
        (np.zeros(D), "must be 2-D"),
        (np.zeros((4, D + 1)), "different numbers of features"),
    ],
)
def test_shape_errors(bad: np.ndarray, match: str) -> None:
    train, val, test = _arrays()
    if "features" in match:
        val = bad
    else:
        train = bad
    with pytest.raises(ValueError, match=match):
        ArrayDataModule.from_arrays(train, val, test).setup()


def test_access_before_setup_and_bad_args() -> None:
    dm = ArrayDataModule.from_arrays(*_arrays())
    with pytest.raises(RuntimeError, match="after setup"):
        _ = dm.train_tensor
    with pytest.raises(RuntimeError, match="after setup"):
        _ = dm.n_features
    dm.setup()
    assert dm.n_features == D and dm.stats() == {}
    with pytest.raises(ValueError, match="batch_size"):
        ArrayDataModule(batch_size=0)
    with pytest.raises(ValueError, match=r"base class .*ImageDataModule .*from_arrays"):
        ArrayDataModule()  # `--data=seqboltz.data.ArrayDataModule` says what to use instead
    with pytest.raises(ValueError, match="visible_kind"):
        ArrayDataModule.from_arrays(*_arrays(), visible_kind="poisson")


# ---- concrete modules ---------------------------------------------------------------------


def test_digits_module() -> None:
    dm = DigitsDataModule(batch_size=50, val_size=180, test_size=360)
    assert dm.n_features == 64 and dm.visible_kind == "bernoulli"
    dm.setup("fit")
    assert dm.train_tensor.shape == (1797 - 540, 64)
    assert dm.val_tensor.shape == (180, 64) and dm.test_tensor.shape == (360, 64)
    assert set(torch.unique(dm.eval_tensor()).tolist()) == {0.0, 1.0}
    assert len(torch.unique(dm.val_tensor)) > 2, "val stays as intensities"
    assert next(iter(dm.train_dataloader())).shape == (50, 64)
    dm0 = DigitsDataModule(val_size=0)
    dm0.setup()
    assert torch.equal(dm0.val_tensor, dm0.test_tensor)


def test_image_patches_module() -> None:
    dm = ImagePatchesDataModule(batch_size=64, patch_size=6, n_train=2000, n_val=200, n_test=300)
    assert dm.n_features == 36 and dm.visible_kind == "gaussian"
    with pytest.raises(RuntimeError, match="after setup"):
        dm.stats()
    dm.setup("fit")
    assert dm.train_tensor.shape == (2000, 36)
    assert dm.val_tensor.shape == (200, 36) and dm.test_tensor.shape == (300, 36)
    stats = dm.stats()
    assert set(stats) == {"mean", "std"} and len(stats["mean"]) == len(stats["std"]) == 36
    assert all(s > 0 for s in stats["std"])
    torch.testing.assert_close(dm.train_tensor.mean(0), torch.zeros(36), atol=1e-4, rtol=0)


@pytest.mark.realdata
def test_mnist5k_module(mnist5k_path: Path) -> None:
    dm = MNIST5kDataModule(batch_size=100, val_size=500, cache_dir=str(mnist5k_path.parent))
    assert dm.n_features == 784 and dm.visible_kind == "bernoulli" and dm.stats() == {}
    dm.prepare_data()
    dm.setup("fit")
    assert dm.train_tensor.shape == (3500, 784) and dm.val_tensor.shape == (500, 784)
    assert dm.test_tensor.shape == (1000, 784)
    assert torch.equal(dm.eval_tensor(), dm.test_tensor)
    assert set(torch.unique(dm.test_tensor).tolist()) == {0.0, 1.0}
    assert len(torch.unique(dm.train_tensor)) > 100, "train stays as intensities"
    assert abs(dm.test_tensor.mean().item() - dm.train_tensor.mean().item()) < 0.02
    # train and val are a stratified carve-out of the 4000 training images
    split = mnist5k_split(mnist5k_path.parent, seed=0)
    train_idx, val_idx = stratified_split(split.train_y, 500, seed=0)
    assert np.intersect1d(train_idx, val_idx).size == 0
    assert np.bincount(split.train_y[val_idx]).tolist() == [50] * 10
    assert np.array_equal(dm.train_tensor.numpy(), split.train_x[train_idx])
    assert np.array_equal(dm.val_tensor.numpy(), split.train_x[val_idx])
    batch = next(iter(dm.train_dataloader()))
    assert batch.shape == (100, 784) and batch.dtype == torch.float32
    again = MNIST5kDataModule(cache_dir=str(mnist5k_path.parent))
    again.setup()
    assert torch.equal(again.test_tensor, dm.test_tensor)
    assert torch.equal(again.train_tensor, dm.train_tensor)
    no_val = MNIST5kDataModule(val_size=0, cache_dir=str(mnist5k_path.parent))
    no_val.setup()
    assert no_val.train_tensor.shape == (4000, 784)
    assert torch.equal(no_val.val_tensor, no_val.test_tensor)


def test_modules_build_from_cli_yaml() -> None:
    parser = ArgumentParser(exit_on_error=False)
    parser.add_subclass_arguments(L.LightningDataModule, "data")
    yaml = """
data:
  class_path: seqboltz.data.ImagePatchesDataModule
  init_args: {batch_size: 32, patch_size: 4, n_train: 500, n_val: 50, n_test: 60, seed: 3}
"""
    # `instantiate` replaced `instantiate_classes` in jsonargparse 4.49
    instantiate = getattr(parser, "instantiate", None) or parser.instantiate_classes
    cfg = parser.parse_string(yaml)
    dm = instantiate(cfg).data
    assert isinstance(dm, ImagePatchesDataModule)
    assert dm.batch_size == 32 and dm.n_features == 16 and dm.hparams["seed"] == 3
    for cls, args in (
        ("MNIST5kDataModule", "{val_size: 0, cache_dir: /tmp/x, binarize_seed: 7}"),
        ("DigitsDataModule", "{val_size: 100, test_size: 200}"),
    ):
        cfg = parser.parse_string(f"data: {{class_path: seqboltz.data.{cls}, init_args: {args}}}")
        assert type(instantiate(cfg).data).__name__ == cls


# ---- with a Trainer -----------------------------------------------------------------------


class _Recorder(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(D))
        self.seen: dict[int, list[int]] = {}

    def training_step(self, batch: torch.Tensor, batch_idx: int) -> torch.Tensor:
        self.seen.setdefault(self.current_epoch, []).extend(_ids(batch))
        return (batch @ self.w).pow(2).mean()

    def validation_step(self, batch: torch.Tensor, batch_idx: int) -> None:
        pass

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.0)


def test_trainer_fit_sees_every_example_once_per_epoch(tmp_path: Path) -> None:
    dm = ArrayDataModule.from_arrays(*_arrays(), batch_size=16)
    model = _Recorder()
    trainer = L.Trainer(
        accelerator="cpu",
        devices=1,
        max_epochs=2,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        default_root_dir=tmp_path,
    )
    trainer.fit(model, datamodule=dm)
    assert sorted(model.seen[0]) == sorted(model.seen[1]) == list(range(N))
    assert model.seen[0] != model.seen[1], "Lightning's set_epoch gives each epoch its own order"


@pytest.mark.slow
def test_ddp_two_cpu_ranks_get_disjoint_shards(tmp_path: Path) -> None:
    script = Path(__file__).with_name("ddp_shards.py")
    proc = subprocess.run(
        [sys.executable, str(script), str(tmp_path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    r0 = json.loads((tmp_path / "rank0.json").read_text())
    r1 = json.loads((tmp_path / "rank1.json").read_text())
    n = 96
    for epoch in (0, 1):
        a, b = r0[f"train{epoch}"], r1[f"train{epoch}"]
        assert len(a) == len(b) == n // 2
        assert set(a).isdisjoint(b) and set(a) | set(b) == set(range(n))
        va, vb = r0[f"val{epoch}"], r1[f"val{epoch}"]
        assert set(va).isdisjoint(vb) and set(va) | set(vb) == set(range(40))
    assert r0["train0"] != r0["train1"], "a new permutation each epoch"


class _FakeTrainer:
    """Just what the DataModule's sampler reads of a DDP trainer."""

    def __init__(self, num_replicas: int, rank: int) -> None:
        self.distributed_sampler_kwargs = {"num_replicas": num_replicas, "rank": rank}
