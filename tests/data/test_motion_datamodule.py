from __future__ import annotations

import json
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from jsonargparse import ArgumentParser

from seqboltz.data._motion import MotionDataModule
from seqboltz.data._windows import WindowDataset
from seqboltz.motion import (
    Joint,
    MotionClip,
    MotionFeatures,
    Skeleton,
    read_bvh,
    write_bvh,
)

LENGTHS = {"a_walk.bvh": 403, "b_run.bvh": 250, "c_turn.bvh": 161}


def skeleton(extra_joint: bool = False) -> Skeleton:
    joints = [
        Joint(
            "Hips",
            -1,
            (0, 0, 0),
            ("Xposition", "Yposition", "Zposition", "Zrotation", "Xrotation", "Yrotation"),
        ),
        Joint("Spine", 0, (0, 10, 0), ("Zrotation", "Xrotation", "Yrotation")),
        Joint("Leg", 0, (4, -2, 0), ("Xrotation", "Yrotation", "Zrotation")),
        Joint("Shin", 2, (0, -20, 0), ("Zrotation", "Xrotation", "Yrotation"), (0, -20, 0)),
    ]
    if extra_joint:
        joints.append(Joint("Tail", 0, (0, 0, -5), ("Xrotation",)))
    return Skeleton(tuple(joints))


def smooth_clip(
    n_frames: int, seed: int, sk: Skeleton | None = None, fps: float = 120.0
) -> MotionClip:
    sk = sk or skeleton()
    rng = np.random.default_rng(seed)
    steps = rng.normal(size=(n_frames, sk.n_channels))
    frames = np.cumsum(np.cumsum(steps, axis=0) * 0.01, axis=0)  # smooth, every row distinct
    frames[:, 1] += 90.0
    return MotionClip(sk, frames, 1.0 / fps, f"clip{seed}")


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    d = tmp_path / "clips"
    d.mkdir()
    for seed, (name, n) in enumerate(LENGTHS.items()):
        write_bvh(d / name, smooth_clip(n, seed))
    return d


def _setup(path: Path, **kwargs: object) -> MotionDataModule:
    dm = MotionDataModule(path=str(path), **kwargs)  # type: ignore[arg-type]
    dm.setup("fit")
    return dm


def _row_index(clips: list[np.ndarray]) -> dict[bytes, tuple[int, int]]:
    """float32 row bytes → (clip, row) over the standardised clip arrays (rows are distinct)."""
    out = {}
    for i, a in enumerate(clips):
        for t, row in enumerate(a.astype(np.float32)):
            out[row.tobytes()] = (i, t)
    assert len(out) == sum(len(a) for a in clips), "test data rows must be distinct"
    return out


@pytest.mark.parametrize("order", [1, 3, 6])
def test_window_uses_exactly_the_previous_frames_of_its_clip(folder: Path, order: int) -> None:
    dm = _setup(folder, order=order, batch_size=17)
    for split, loader in (("train", dm.train_dataloader()), ("val", dm.val_dataloader())):
        clips = dm.clips(split)
        index = _row_index(clips)
        seen = []
        for batch in loader:
            v, hist = batch["v"], batch["cond"]["history"]
            assert v.dtype == hist.dtype == torch.float32
            assert hist.shape == (v.shape[0], order, dm.n_features)
            assert set(batch["cond"]) == {"history"}
            for b in range(v.shape[0]):
                i, t = index[v[b].numpy().tobytes()]
                assert t >= order
                expected = np.stack([clips[i][t - 1 - k] for k in range(order)]).astype(np.float32)
                np.testing.assert_array_equal(hist[b].numpy(), expected)
                seen.append((i, t))
        # every window of every clip exactly once, none straddling two clips
        expected_windows = {(i, t) for i, a in enumerate(clips) for t in range(order, len(a))}
        assert sorted(seen) == sorted(expected_windows)
        assert dm.n_windows(split) == len(expected_windows)


def test_few_clips_hold_out_the_last_fifth_of_each_clip_split_before_resampling(
    folder: Path,
) -> None:
    """Fewer than 5 clips: the end of every clip is held out, its first half for validation and
    its second half for test, split at 120 fps before the phase copies are made."""
    dm = _setup(folder, order=3, held_out_fraction=0.2)
    assert dm.report()["split"] == "tail"
    train, val, test = (dm.source_clips(s) for s in ("train", "val", "test"))
    assert len(train) == 4 * len(LENGTHS)
    # c_turn's 16 validation frames are 4 per copy at 30 fps: too short for order 3, skipped
    assert len(val) == len(test) == 4 * 2
    for name, n in list(LENGTHS.items())[:2]:
        frames = read_bvh(folder / name).frames
        cut = n - round(0.2 * n)
        mid = cut + round(0.2 * n) // 2
        for k in range(4):
            tr = next(c for c in train if c.name == f"{name}@{k}")
            va = next(c for c in val if c.name == f"{name}[val]@{k}")
            te = next(c for c in test if c.name == f"{name}[test]@{k}")
            np.testing.assert_array_equal(tr.frames, frames[:cut][k::4])
            np.testing.assert_array_equal(va.frames, frames[cut:mid][k::4])
            np.testing.assert_array_equal(te.frames, frames[mid:][k::4])
            assert tr.fps == pytest.approx(30.0)
    # clips() are the standardised features of those clips (rows = frames 1..T-1)
    for src, arr in zip(val, dm.clips("val"), strict=True):
        np.testing.assert_array_equal(arr, dm.features.transform(src))
    torch.testing.assert_close(
        dm.train_tensor, torch.from_numpy(np.concatenate(dm.clips("train")).astype(np.float32))
    )
    assert dm.eval_tensor().shape == (sum(len(a) for a in dm.clips("test")), dm.n_features)


def _many(tmp_path: Path, n: int = 8) -> Path:
    d = tmp_path / "many"
    d.mkdir()
    for seed in range(n):
        write_bvh(d / f"take{seed:02d}.bvh", smooth_clip(200 + 10 * seed, seed, fps=60.0))
    return d


def test_five_or_more_clips_hold_out_whole_clips(tmp_path: Path) -> None:
    d = _many(tmp_path)
    dm = _setup(d, order=3, held_out_fraction=0.25)
    rep = dm.report()
    assert rep["split"] == "clips"
    names = rep["clips"]
    assert len(names["val"]) == len(names["test"]) == 1 and len(names["train"]) == 6
    assert not set(names["val"]) & set(names["test"]) and not set(names["train"]) & set(
        names["val"] + names["test"]
    )
    assert {c.name.split("@")[0] for c in dm.source_clips("test")} == set(names["test"])
    # whole clips at 60 -> 30 fps: two phase copies of every frame
    full = read_bvh(d / names["test"][0]).frames
    copies = [c for c in dm.source_clips("test")]
    assert sum(c.n_frames for c in copies) == len(full)
    again = _setup(d, order=3, held_out_fraction=0.25)
    assert again.report()["clips"] == names  # fixed by split_seed
    other = _setup(d, order=3, held_out_fraction=0.25, split_seed=1)
    assert other.report()["clips"] != names
    assert dm.stats()["split"]["test"] == names["test"]


def test_manifest_split_and_kind_style(tmp_path: Path) -> None:
    d = _many(tmp_path, 6)
    kinds = ["walk", "run", "walk", "run", "walk", "run"]
    splits = ["train", "train", "val", "test", "train", "train"]
    doc = {
        "clips": [
            {"clip": f"take{i:02d}.bvh", "kind": k, "split": s}
            for i, (k, s) in enumerate(zip(kinds, splits, strict=True))
        ]
    }
    (d / "clips.json").write_text(json.dumps(doc))
    dm = _setup(d, order=2, style="root_speed+kind", batch_size=16)
    assert dm.report()["split"] == "manifest"
    assert dm.report()["clips"]["val"] == ["take02.bvh"]
    assert dm.report()["clips"]["test"] == ["take03.bvh"]
    assert dm.style_dim == 3 and dm.stats()["style"]["columns"] == [
        "root_speed",
        "kind=run",
        "kind=walk",
    ]
    # the styles a request can be trusted in: the speed's 1st-99th percentile, a kind's 0-1
    train_style = np.concatenate(dm.style_clips("train"))
    stats = dm.stats()["style"]
    assert stats["low"] == pytest.approx([np.percentile(train_style[:, 0], 1), 0.0, 0.0])
    assert stats["high"] == pytest.approx([np.percentile(train_style[:, 0], 99), 1.0, 1.0])
    for split, kind in (("val", "walk"), ("test", "run")):
        style = np.concatenate(dm.style_clips(split))
        np.testing.assert_array_equal(style[:, 1:], [[kind == "run", kind == "walk"]] * len(style))
    batch = next(iter(dm.train_dataloader()))
    assert batch["cond"]["style"].shape == (16, 3)
    # each clip's kind, aligned with clips(split), whatever the style
    plain = _setup(d, order=2)
    for split, names in (("train", {"run", "walk"}), ("val", {"walk"}), ("test", {"run"})):
        assert set(plain.clip_kinds(split)) == names
        assert len(plain.clip_kinds(split)) == len(plain.clips(split))  # phase copies too
    assert plain.clip_kinds("train").count("walk") == plain.clip_kinds("train").count("run")
    only_kind = _setup(d, order=2, style="kind")
    assert only_kind.style_dim == 2 and "mean" not in only_kind.stats()["style"]
    (d / "clips.json").unlink()
    with pytest.raises(ValueError, match="needs the clips' kinds"):
        _setup(d, order=2, style="kind")


def test_held_out_frames_far_outside_training_warn(tmp_path: Path) -> None:
    """A held-out clip whose leg sits 150° away from anything in training (another branch of
    the old exp maps, another rig) is reported."""
    d = _many(tmp_path, 6)
    odd = smooth_clip(230, 3, fps=60.0)
    leg = odd.skeleton.channel_slice(odd.skeleton.index("Leg"))
    odd.frames[:, leg.start] += 150.0
    write_bvh(d / "take03.bvh", odd)
    splits = ["train", "train", "val", "test", "train", "train"]
    doc = {"clips": [{"clip": f"take{i:02d}.bvh", "split": s} for i, s in enumerate(splits)]}
    (d / "clips.json").write_text(json.dumps(doc))
    with pytest.warns(UserWarning, match=r"test frames far outside the training range.*take03"):
        _setup(d, order=2)


def test_statistics_fitted_on_train_travel_as_json(folder: Path) -> None:
    dm = _setup(folder, order=2)
    stats = json.loads(json.dumps(dm.stats()))
    assert stats["order"] == 2 and stats["fps"] == pytest.approx(30.0)
    assert len(stats["feature_names"]) == dm.n_features == len(stats["mean"])
    mf = MotionFeatures.from_dict(stats)
    src = dm.source_clips("test")[0]
    np.testing.assert_array_equal(mf.transform(src), dm.clips("test")[0])
    train = dm.train_tensor.double()
    torch.testing.assert_close(
        train.mean(0), torch.zeros(dm.n_features, dtype=torch.float64), atol=1e-5, rtol=0
    )
    torch.testing.assert_close(
        train.std(0, unbiased=False),
        torch.ones(dm.n_features, dtype=torch.float64),
        atol=1e-5,
        rtol=0,
    )


def test_root_speed_style(folder: Path) -> None:
    dm = _setup(folder, order=3, style="root_speed", style_window=9, batch_size=32)
    assert dm.style_dim == 1
    batch = next(iter(dm.val_dataloader()))
    assert batch["cond"]["style"].shape == (batch["v"].shape[0], 1)
    style = torch.cat([b["cond"]["style"] for b in dm.train_dataloader()])
    assert style.dtype == torch.float32 and abs(float(style.mean())) < 0.5
    s = dm.stats()["style"]
    assert s["kind"] == "root_speed" and s["window"] == 9 and s["std"] > 0
    # the style of a window is the smoothed speed of its target frame
    clip = dm.source_clips("train")[0]
    speed = dm.features.root_speed(clip)
    expected = (speed[:9].mean() - s["mean"]) / s["std"]  # frame 4's centred window: rows 0..8
    ds = dm.train_dataloader().dataset
    got = ds.__getitems__([1])["cond"]["style"][0, 0]  # first clip, target row 4
    assert float(got) == pytest.approx(expected, rel=1e-5)


def test_two_skeletons_in_one_folder_is_an_error(folder: Path) -> None:
    write_bvh(folder / "d_other.bvh", smooth_clip(200, 7, skeleton(extra_joint=True)))
    with pytest.raises(ValueError, match=r"a_walk.bvh and .*d_other.bvh have different skeletons"):
        _setup(folder)


def test_order_longer_than_the_clips(folder: Path, tmp_path: Path) -> None:
    with pytest.raises(
        ValueError, match=r"no train clip is long enough for order 100: .*\.bvh.* frames at most"
    ):
        _setup(folder, order=100)
    # one short clip is skipped with a warning, the others are used
    write_bvh(folder / "d_short.bvh", smooth_clip(30, 9))
    with pytest.warns(
        UserWarning, match=r"fewer than 5 frames .* skipped: \[.*'d_short.bvh\[val\]@0'"
    ):
        dm = _setup(folder, order=3)
    assert not any(c.name.startswith("d_short.bvh[val]") for c in dm.source_clips("val"))
    assert any(c.name.startswith("d_short.bvh@") for c in dm.source_clips("train"))


def test_history_noise_only_on_training_windows(folder: Path) -> None:
    clean = _setup(folder, order=3, batch_size=1000)
    noisy = _setup(folder, order=3, batch_size=1000, history_noise=0.5)
    a, b = next(iter(clean.train_dataloader())), next(iter(noisy.train_dataloader()))
    torch.testing.assert_close(a["v"], b["v"])  # same windows, same order, same frames
    diff = (b["cond"]["history"] - a["cond"]["history"]).flatten()
    assert 0.45 < float(diff.std()) < 0.55 and abs(float(diff.mean())) < 0.05
    again = next(
        iter(_setup(folder, order=3, batch_size=1000, history_noise=0.5).train_dataloader())
    )
    torch.testing.assert_close(again["cond"]["history"], b["cond"]["history"])  # seeded
    for split in ("val_dataloader", "test_dataloader"):
        x, y = next(iter(getattr(clean, split)())), next(iter(getattr(noisy, split)()))
        torch.testing.assert_close(x["cond"]["history"], y["cond"]["history"])


def test_own_histories_replace_real_ones_in_live_training_loaders(folder: Path) -> None:
    """Histories a model generated itself (data as demonstrator) reach a loader that already
    exists, on training windows only; the targets stay real."""
    dm = _setup(folder, order=3, batch_size=1000)
    loader = dm.train_dataloader()
    real = next(iter(loader))
    own = [c + 100.0 for c in dm.clips("train")]
    dm.set_train_history(own, prob=1.0)
    mine = next(iter(loader))  # the same loader, made before the call
    torch.testing.assert_close(mine["v"], real["v"])
    torch.testing.assert_close(mine["cond"]["history"], real["cond"]["history"] + 100.0)
    dm.set_train_history(own, prob=0.5)
    half = next(iter(loader))["cond"]["history"]
    shifted = (half[:, 0, 0] - real["cond"]["history"][:, 0, 0]).abs() > 50
    assert 0.35 < float(shifted.double().mean()) < 0.65
    whole = (half - real["cond"]["history"]).abs() > 50  # a window's history is all one kind
    assert bool((whole.all(dim=(1, 2)) | ~whole.any(dim=(1, 2))).all())
    val = next(iter(dm.val_dataloader()))["cond"]["history"]
    assert float(val.abs().max()) < 50  # never on validation or test windows
    with pytest.raises(ValueError, match="training clips' shapes"):
        dm.set_train_history(own[:-1])
    with pytest.raises(ValueError, match="NaN or infinite"):
        dm.set_train_history([np.full_like(c, np.nan) for c in own])
    with pytest.raises(ValueError, match=r"prob must be in \[0, 1\]"):
        dm.set_train_history(own, prob=1.5)
    dm.set_train_history(None)
    torch.testing.assert_close(next(iter(loader))["cond"]["history"], real["cond"]["history"])


def test_frame_rate_and_argument_errors(folder: Path) -> None:
    dm = _setup(folder, target_fps=50.0)  # 120 -> 50 fps: two phase copies, interpolated
    assert len(dm.source_clips("train")) == 6 and dm.source_clips("train")[0].fps == 50.0
    dm = _setup(folder, source_fps=60.0, order=2)  # overrides the files: factor 2
    assert dm.source_clips("train")[0].name.endswith("@0") and len(dm.source_clips("train")) == 6
    for bad in (
        {"order": 0},
        {"held_out_fraction": 0.0},
        {"held_out_fraction": 1.0},
        {"batch_size": 0},
        {"style": "fast"},
        {"split": "random"},
        {"history_noise": -0.1},
    ):
        with pytest.raises(ValueError):
            MotionDataModule(path=str(folder), **bad)  # type: ignore[arg-type]
    with pytest.raises(RuntimeError, match="after setup"):
        _ = MotionDataModule(path=str(folder)).n_features


def test_shards_by_rank_are_disjoint_and_covering(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = []
    for rank in (0, 1):
        dm = _setup(folder, order=3, batch_size=13)
        monkeypatch.setattr(dm, "trainer", _FakeTrainer(2, rank))
        rows = [bytes(r.numpy().tobytes()) for b in dm.train_dataloader() for r in b["v"]]
        seen.append(rows)
    n = dm.n_windows("train")
    assert len(seen[0]) == len(seen[1]) == (n + 1) // 2
    assert len(set(seen[0]) | set(seen[1])) == n


def test_batches_are_sliced_not_collated_window_by_window(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def per_item(self: object, index: int) -> None:
        raise AssertionError("per-window __getitem__ used: slow path")

    monkeypatch.setattr(WindowDataset, "__getitem__", per_item)
    dm = _setup(folder, order=3, batch_size=64)
    assert sum(b["v"].shape[0] for b in dm.train_dataloader()) == dm.n_windows("train")


def test_builds_from_cli_yaml(folder: Path) -> None:
    parser = ArgumentParser(exit_on_error=False)
    parser.add_subclass_arguments(L.LightningDataModule, "data")
    cfg = parser.parse_string(
        f"data:\n  class_path: seqboltz.data.MotionDataModule\n  init_args: "
        f"{{path: {folder}, order: 4, target_fps: 30, style: root_speed, batch_size: 8}}\n"
    )
    instantiate = getattr(parser, "instantiate", None) or parser.instantiate_classes
    dm = instantiate(cfg).data
    assert (
        isinstance(dm, MotionDataModule) and dm.order == 4 and dm.hparams["style"] == "root_speed"
    )


@pytest.mark.slow
def test_default_is_the_cmu_fixture_with_its_clip_split(tmp_path: Path) -> None:
    dm = MotionDataModule(order=3, batch_size=100, style="root_speed+kind")
    dm.prepare_data()
    dm.setup("fit")
    rep = dm.report()
    assert rep["split"] == "manifest"
    assert rep["clips"]["test"] == ["05_07.amc", "131_06.amc", "131_13.amc", "135_09.amc"]
    assert rep["clips"]["val"] == ["05_04.amc", "131_07.amc", "131_10.amc", "135_03.amc"]
    assert len(rep["clips"]["train"]) == 18
    assert rep["minutes"]["train"] == pytest.approx(4.23, abs=0.01)
    assert sum(rep["minutes"].values()) == pytest.approx(5.93, abs=0.02)
    assert rep["kinds"] == [
        "dance",
        "duck",
        "hop",
        "jump",
        "karate",
        "walk",
        "walk_left",
        "walk_right",
    ]
    assert all(c.fps == pytest.approx(30.0) for c in dm.source_clips("val"))
    batch = next(iter(dm.train_dataloader()))
    assert batch["v"].shape == (100, dm.n_features) and batch["cond"]["history"].shape == (
        100,
        3,
        dm.n_features,
    )
    assert dm.visible_kind == "gaussian" and 80 <= dm.n_features <= 160
    assert dm.stats()["source_fps"] == 120.0
    # a held-out clip becomes a BVH file again: rotations within the near-constant tolerance
    src = dm.source_clips("test")[0]
    back = dm.features.inverse_transform(dm.clips("test")[0], dm.features.initial_state(src))
    again = read_bvh(write_bvh(tmp_path / "seed.bvh", back))
    np.testing.assert_allclose(again.local_rotations(), src.local_rotations()[1:], atol=5e-3)
    np.testing.assert_allclose(again.local_translations(), src.local_translations()[1:], atol=1e-3)


class _Recorder(L.LightningModule):
    def __init__(self, n_features: int) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(n_features))
        self.seen: dict[int, list[bytes]] = {}

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:  # type: ignore[type-arg]
        rows = [r.numpy().tobytes() for r in batch["v"]]
        self.seen.setdefault(self.current_epoch, []).extend(rows)
        hist = batch["cond"]["history"]
        return (batch["v"] @ self.w).pow(2).mean() + (hist @ self.w).pow(2).mean()

    def validation_step(self, batch: dict, batch_idx: int) -> None:  # type: ignore[type-arg]
        assert batch["cond"]["history"].shape[1] == 3

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.0)


def test_trainer_fit_sees_every_window_once_per_epoch(folder: Path, tmp_path: Path) -> None:
    dm = MotionDataModule(path=str(folder), order=3, batch_size=50)
    dm.setup("fit")
    model = _Recorder(dm.n_features)
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
    assert len(model.seen[0]) == len(model.seen[1]) == dm.n_windows("train")
    assert sorted(model.seen[0]) == sorted(model.seen[1]) and model.seen[0] != model.seen[1]


class _FakeTrainer:
    """Just what the DataModule's sampler reads of a DDP trainer."""

    def __init__(self, num_replicas: int, rank: int) -> None:
        self.distributed_sampler_kwargs = {"num_replicas": num_replicas, "rank": rank}
