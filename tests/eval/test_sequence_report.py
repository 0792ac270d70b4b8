"""The motion evaluation: scores of known generations, the real-motion reference on a BVH
folder, and `evaluate_sequence_model` end to end (small synthetic rig, seconds of motion)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from seqboltz.eval._sequence_report import (
    REAL_NAME,
    MotionReference,
    centred_pieces,
    evaluate_sequence_model,
    group_phase_copies,
    motion_reference,
    paired_difference,
    real_row,
    real_spectral_scores,
    score_generations,
    source_groups,
    stability,
)
from seqboltz.motion import Joint, MotionClip, Skeleton, write_bvh

ROT = ("Zrotation", "Xrotation", "Yrotation")
POS = ("Xposition", "Yposition", "Zposition")


def _sequences(n: int = 3, t: int = 300, d: int = 4, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    time = np.arange(t)[:, None]
    return [
        np.sin(2 * np.pi * time / rng.uniform(20, 40, d) + rng.uniform(0, 6, d))
        + 0.1 * rng.standard_normal((t, d))
        for _ in range(n)
    ]


def _feature_reference(test: list[np.ndarray]) -> MotionReference:
    return MotionReference(
        fps=30.0, order=3, test=test, frames=np.concatenate(test), window=100, body=None
    )


def test_scores_tell_real_motion_from_frozen_and_exploded_generations() -> None:
    test = _sequences()
    ref = _feature_reference(test)
    real = np.stack([np.stack(test)] * 2)  # (S=2, C=3, T, D): the real continuations
    row = score_generations("real", real, ref, n_boot=200)
    assert row["pskl_real_gen"] == pytest.approx(0.0, abs=1e-9)  # the same windows
    assert row["pskl_gen_real"] == pytest.approx(0.0, abs=1e-9)
    assert row["std_within"] == 1.0 and not row["frozen"] and not row["exploded"]
    frozen = np.broadcast_to(real[:, :, :1], real.shape)
    row_f = score_generations("frozen", frozen, ref, n_boot=200)
    assert row_f["frozen"] and row_f["std_within"] == 0.0
    assert row_f["pskl_real_gen"] > 10 * row["pskl_real_gen"] + 0.5
    noisy = real + np.random.default_rng(1).normal(0, 3, real.shape)  # white noise on top
    row_n = score_generations("noisy", noisy, ref, n_boot=200)
    assert row_n["ps_entropy"] > row["ps_entropy"] + 0.5
    assert row_n["npss"] > 2 * row["npss"] and row_n["pskl_real_gen"] > 0.1
    lo, hi = row_n["npss_ci"]
    assert lo <= row_n["npss"] <= hi
    blown = real.copy()
    blown[0, 1, 50:] = np.inf
    row_b = score_generations("blown", blown, ref, n_boot=200)
    assert row_b["exploded"] and row_b["n_exploded"] == 1 and row_b["n_generations"] == 6
    assert row_b["std_within"] == pytest.approx(5 / 6)  # the exploded cell counts as 0


def test_stability_centres_each_segment_so_levels_between_clips_are_not_motion() -> None:
    rng = np.random.default_rng(0)
    sway = [rng.standard_normal((300, 3)) for _ in range(4)]
    frames = np.concatenate(sway)
    same = stability(frames, sway, 3)
    assert same["std_ratio_within"] == 3 and same["std_ratio_median"] == pytest.approx(1, abs=0.05)
    # people standing in their own posture: the pooled real frames spread 5x wider than any
    # one clip moves, so even the real clips score far below "all dimensions within"
    postures = [s + 5 * rng.standard_normal(3) for s in sway]
    apart = stability(np.concatenate(postures), postures, 3)
    assert apart["std_ratio_median"] < 0.5 and apart["std_ratio_within"] < 3
    # centred in pieces (as the reference is), the postures drop out again
    pieces = stability(centred_pieces(postures, 300), postures, 3)
    assert pieces["std_ratio_within"] == 3
    np.testing.assert_allclose(
        centred_pieces([np.arange(10.0)[:, None]], 5).ravel(), [-2, -1, 0, 1, 2] * 2
    )
    assert stability(frames, [], 3)["std_ratio_median"] == float("inf")
    frozen = stability(frames, [np.zeros((300, 3))], 3)
    assert frozen["frozen"] and frozen["std_ratio_within"] == 0


def test_real_spectral_scores_compare_a_held_out_clip_with_training_motion_of_its_kind() -> None:
    """The ``real (held out)`` row's NPSS and PSKL: a held-out clip scored against real training
    windows as a generation would be, of its own kind where kinds are named."""
    rng = np.random.default_rng(0)
    time = np.arange(400)[:, None]

    def wave(period: float) -> np.ndarray:
        return np.sin(2 * np.pi * time / period + rng.uniform(0, 6, 3)) + 0.05 * rng.normal(
            size=(400, 3)
        )

    train = [wave(10), wave(10), wave(40), wave(40)]
    test = [wave(10), wave(40)]
    kinds = (["fast", "fast", "slow", "slow"], ["fast", "slow"])
    by_kind = real_spectral_scores(train, test, 100, kinds)
    pooled = real_spectral_scores(train, test, 100)
    assert set(by_kind) == {"npss", "pskl", "pskl_real_gen", "pskl_gen_real"}
    assert by_kind["npss"].shape == (2,)
    # the same rhythm is close, the pooled windows mix in the other one
    assert (by_kind["npss"] < 0.3 * pooled["npss"]).all()
    assert (by_kind["pskl"] < 0.3 * pooled["pskl"]).all()
    np.testing.assert_allclose(
        by_kind["pskl"], 0.5 * (by_kind["pskl_real_gen"] + by_kind["pskl_gen_real"])
    )
    # a kind with no training window falls back to every window
    lone = real_spectral_scores(train, test, 100, (kinds[0], ["jump", "slow"]))
    assert lone["npss"][0] == pytest.approx(pooled["npss"][0])
    assert lone["npss"][1] == pytest.approx(by_kind["npss"][1])


def test_paired_difference_sees_a_small_consistent_gap_the_marginal_intervals_miss() -> None:
    test = _sequences(n=6, seed=3)
    ref = _feature_reference(test)
    rng = np.random.default_rng(4)
    real = np.stack([np.stack(test)] * 3)  # (S=3, C=6, T, D)
    base = real + rng.normal(0, 0.5, real.shape)
    row_a = score_generations("a", base, ref, n_boot=300)
    row_b = score_generations("b", base + rng.normal(0, 0.3, real.shape), ref, n_boot=300)
    assert row_a["pskl"] == pytest.approx(0.5 * (row_a["pskl_real_gen"] + row_a["pskl_gen_real"]))
    mean, low, high = paired_difference(row_b, row_a, "npss", n_boot=300)
    assert mean == pytest.approx(row_b["npss"] - row_a["npss"])
    assert 0 < low <= mean <= high  # more noise is worse on every clip
    # the paired interval is narrower than either row's own (clip-to-clip spread cancels)
    assert high - low < row_a["npss_ci"][1] - row_a["npss_ci"][0]
    assert np.isnan(paired_difference(row_a, {"model": "x"}, "npss")[0])


def test_phase_copies_are_resampled_as_one_captured_clip() -> None:
    """Four near-identical copies of each of 3 clips are 3 clips' worth of evidence: the
    interval must be as wide as for the 3 clips alone, not half as wide as 12 would give."""
    groups = source_groups(["a.bvh@0", "a.bvh@1", "b.bvh@0", "b.bvh@1", "c@x@0", "c@x@1"])
    np.testing.assert_array_equal(groups, [0, 0, 1, 1, 2, 2])
    table = np.arange(12.0).reshape(6, 2)
    grouped = group_phase_copies(table, groups)
    np.testing.assert_array_equal(grouped, [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]])
    uneven = group_phase_copies(table[:5], groups[:5])  # a clip with fewer copies: NaN-padded
    assert uneven.shape == (3, 4) and np.isnan(uneven[2, 2:]).all()
    assert group_phase_copies(table, None) is not None
    np.testing.assert_array_equal(group_phase_copies(table, None), table)
    test = _sequences(n=3, seed=5)
    copies = [c + 1e-3 * k for c in test for k in range(4)]  # 12 sequences, 3 captures
    rng = np.random.default_rng(2)
    gens = np.stack([np.stack(copies)] * 2) + rng.normal(0, 0.4, (2, 12, *test[0].shape))
    as_copies = _feature_reference(copies)
    as_copies.groups = np.repeat(np.arange(3), 4)
    row = score_generations("g", gens, as_copies, n_boot=400)
    naive = score_generations("g", gens, _feature_reference(copies), n_boot=400)
    assert row["npss"] == pytest.approx(naive["npss"])  # the same mean
    width, naive_width = (r["npss_ci"][1] - r["npss_ci"][0] for r in (row, naive))
    assert width > 1.4 * naive_width
    assert np.asarray(row["cells"]["npss"]).shape == (3, 8)
    assert as_copies.n_groups == 3 and _feature_reference(copies).n_groups == 12


def _walker_clip(n: int, speed: float, phase: float, name: str) -> MotionClip:
    """A y-up biped walking forward (+z) at ``speed`` units/s, legs and arms swinging."""
    joints = (
        Joint("Hips", -1, (0, 0, 0), POS + ROT),
        Joint("Spine", 0, (0, 0.5, 0), ROT),
        Joint("Head", 1, (0, 0.4, 0), ROT, end_site=(0, 0.2, 0)),
        Joint("LeftArm", 1, (0.2, 0.35, 0), ROT, end_site=(0, -0.5, 0)),
        Joint("RightArm", 1, (-0.2, 0.35, 0), ROT, end_site=(0, -0.5, 0)),
        Joint("LeftUpLeg", 0, (0.12, 0, 0), ROT),
        Joint("LeftFoot", 5, (0, -0.9, 0), ROT, end_site=(0, -0.05, 0.1)),
        Joint("RightUpLeg", 0, (-0.12, 0, 0), ROT),
        Joint("RightFoot", 7, (0, -0.9, 0), ROT, end_site=(0, -0.05, 0.1)),
    )
    sk = Skeleton(joints)
    t = np.arange(n) / 30.0
    f = np.zeros((n, sk.n_channels))
    rng = np.random.default_rng(round(phase * 100))
    f[:, 2] = speed * t
    f[:, 1] = 0.95 + 0.02 * np.cos(4 * np.pi * t + phase)
    swing = 25 * np.sin(2 * np.pi * t + phase) + rng.normal(0, 1, n)
    for joint, sign in (("LeftUpLeg", 1), ("RightUpLeg", -1), ("LeftArm", -1), ("RightArm", 1)):
        f[:, sk.channel_index(joint, "Xrotation")] = sign * swing
    f[:, sk.channel_index("Spine", "Yrotation")] = 5 * np.sin(2 * np.pi * t + phase)
    return MotionClip(sk, f, 1 / 30.0, name)


@pytest.fixture(scope="module")
def walker_data(tmp_path_factory: pytest.TempPathFactory) -> object:
    from seqboltz.data import MotionDataModule

    folder = tmp_path_factory.mktemp("walks")
    for i in range(8):  # whole clips held out: 2 val, 2 test, 4 train
        clip = _walker_clip(120, 0.8 + 0.1 * i, 0.7 * i, f"walk{i}")
        write_bvh(folder / f"walk{i}.bvh", clip)
    dm = MotionDataModule(path=str(folder), order=3, batch_size=50, held_out_fraction=0.5)
    dm.prepare_data()
    dm.setup("fit")
    return dm


def test_reference_finds_the_feet_and_the_copy_check_catches_replayed_training_motion(
    walker_data: object,
) -> None:
    dm: object = walker_data
    ref = motion_reference(dm)
    assert ref.body is not None
    names = ref.body.sources[0].skeleton.names
    assert [names[i] for i in ref.body.feet] == ["LeftFoot", "RightFoot"]
    real = ref.body.real
    assert real["foot_contact"][0] > 0.05 and real["diversity"][0] > 0
    train = dm.clips("train")[: len(ref.test)]  # type: ignore[attr-defined]
    n = min(c.shape[0] for c in train) - 3
    replay = np.stack([np.stack([c[3 : 3 + n] for c in train])])  # (1, C, n, D)
    with pytest.raises(ValueError, match="held-out clips"):
        score_generations("wrong", replay[:, :1], ref)
    row = score_generations("replay", replay, ref, n_boot=100)
    assert row["copy_distance"] < 0.2 * real["copy_distance"][0]
    assert row["copy_check_passed"] is False
    # the held-out clips replayed sit where held-out motion sits (the threshold itself) ...
    held = np.stack([np.stack([c[3:] for c in ref.test])])
    row_h = score_generations("held out", held, ref, n_boot=100)
    assert row_h["copy_distance"] == pytest.approx(real["copy_distance"][0], rel=0.1)
    # ... and motion further from the training clips than that passes
    jitter = held + np.random.default_rng(0).normal(0, 0.3, held.shape)
    assert score_generations("jitter", jitter, ref, n_boot=100)["copy_check_passed"] is True
    assert row_h["foot_skating"] == pytest.approx(real["foot_skating"][0], rel=0.1)
    assert row_h["jitter"] == pytest.approx(real["jitter"][0], rel=0.1)
    assert row_h["jitter"] < 0.5 * score_generations("j", jitter, ref, n_boot=100)["jitter"]
    # the real row's 60-s check is the held-out clips scored as a generation's last 10 s is
    whole = np.stack([np.stack(ref.test)])
    row_w, real_w = score_generations("whole", whole, ref, n_boot=100), real_row(ref)
    for key in ("std_ratio_median", "std_ratio_min", "std_ratio_within", "std_within"):
        assert real_w[key] == pytest.approx(row_w[key], rel=1e-9)
    # a frozen pose that keeps the root moving slides its feet
    glide = np.broadcast_to(held[:, :, :1], held.shape)
    row_g = score_generations("glide", glide, ref, n_boot=100)
    assert np.isnan(row_g["diversity"])  # one seed: no pair to compare
    assert row_g["frechet"] > row_h["frechet"]
    # scored after the footskate cleanup (motion_quality.py --plant-feet) it stops sliding
    planted = motion_reference(dm, plant=True)
    skate_p = score_generations("glide", glide, planted, n_boot=100)["foot_skating"]
    assert row_g["foot_skating"] > 1.0 and skate_p < 0.2 * row_g["foot_skating"]
    # pooled (as FID): the held-out clips replayed, pooled, are the reference itself (but for
    # their first frames, the start)
    assert row_h["frechet_pooled"] < 0.01 * row_g["frechet_pooled"]
    assert row_h["cells"]["frechet_pooled"] == [[row_h["frechet_pooled"]]]  # one per seed
    assert row_g["frechet_pooled"] > row_h["frechet_pooled"]
    assert "frechet_pooled" in real and "frechet" not in real  # real: pooled protocol only
    two_seeds = score_generations("two", np.concatenate([held, glide]), ref, n_boot=100)
    np.testing.assert_allclose(
        two_seeds["cells"]["frechet_pooled"][0],
        [row_h["frechet_pooled"], row_g["frechet_pooled"]],
        rtol=1e-9,
        atol=1e-6,
    )


@pytest.mark.slow
def test_evaluate_sequence_model_prints_one_table_and_draws_the_body(
    walker_data: object, tmp_path: Path
) -> None:
    from PIL import Image

    from seqboltz.models import ConditionalRBM

    dm: object = walker_data
    torch.manual_seed(0)
    model = ConditionalRBM(dm.n_features, 16, 3).double()  # type: ignore[attr-defined]
    report = evaluate_sequence_model(
        model, dm, seconds=4.0, gibbs_steps=2, n_seeds=2, n_boot=100, out_dir=tmp_path
    )
    names = [r["model"] for r in report.rows]
    assert names == ["ConditionalRBM", "linear AR (order 3)", "repeat last frame"]
    assert report.reference["model"] == REAL_NAME
    table = report.table()
    for title in ("NPSS", "PSKL(real‖gen)", "PSKL(gen‖real)", "Fréchet", "foot skating"):
        assert title in table
    assert table.count("\n| ") == 4  # three models and the real row
    ar = report.rows[1]
    assert ar["diversity"] > 0 and report.rows[2]["diversity"] == 0.0  # noise vs none
    with Image.open(report.files["filmstrip"]) as png:
        assert png.size[1] > 400  # three rows: real, model, AR
    with Image.open(report.files["animation"]) as gif:
        assert gif.n_frames > 10


def test_table_cells_keep_two_significant_digits_in_small_units() -> None:
    """A rig in metres gives Fréchet distances near 0.08 and foot sliding near 0.04 m/s: the
    table shows them, not "0.1" and "0.04" (nor "0.0" for a real 0.0026)."""
    from seqboltz.eval._sequence_report import _num

    assert _num(0.07755, 1) == "0.078"
    assert _num(0.0026, 2) == "0.0026"
    assert _num(0.0, 2) == "0.00"
    assert _num(59.3, 1) == "59.3" and _num(2.534, 3) == "2.534" and _num(0.0028, 4) == "0.0028"
    assert _num(2.5e7, 1) == "2.5e+07"
