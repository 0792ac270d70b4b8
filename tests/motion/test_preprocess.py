from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from seqboltz.motion import (
    Joint,
    MotionClip,
    MotionFeatures,
    RootState,
    Skeleton,
    axis_rotation,
    read_amc,
    read_asf,
    resample,
    resample_factor,
)

TOL = 1e-5


def walker_skeleton() -> Skeleton:
    return Skeleton(
        (
            Joint(
                "Hips",
                -1,
                (0, 0, 0),
                ("Xposition", "Yposition", "Zposition", "Zrotation", "Xrotation", "Yrotation"),
            ),
            Joint("Spine", 0, (0, 10, 0), ("Zrotation", "Xrotation", "Yrotation")),
            Joint("Head", 1, (0, 20, 2), ("Zrotation", "Xrotation", "Yrotation"), (0, 8, 0)),
            Joint("Arm", 1, (8, 18, 0), ("Yrotation", "Zrotation", "Xrotation")),
            Joint(
                "Hand",
                3,
                (12, 0, 0),
                ("Xposition", "Yposition", "Zposition", "Zrotation", "Xrotation", "Yrotation"),
                (4, 0, 0),
            ),
            Joint("Hip", 0, (-5, -2, 0), ("Zrotation", "Xrotation", "Yrotation")),
            Joint("Knee", 5, (0, -20, 0), ("Xrotation",)),
            Joint("Foot", 6, (0, -20, 0), ("Zrotation", "Xrotation", "Yrotation"), (0, -3, 8)),
            Joint("Stiff", 0, (5, -2, 0), ("Zrotation", "Xrotation", "Yrotation"), (0, -30, 0)),
        )
    )


def euler_deg(mats: np.ndarray, order: str) -> np.ndarray:
    """Channel values for rotation matrices, via scipy (independent of the code under test)."""
    return Rotation.from_matrix(mats).as_euler(order, degrees=True)


def rotvecs(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
    return Rotation.from_rotvec(np.stack([x, y, z], axis=1)).as_matrix()


def walker_clip(n_frames: int = 400, seed: int = 0, turn: float = 0.05) -> MotionClip:
    """Walks in a circle (heading through ±180° several times), sways, an arm spinning through
    ±180°, a 1-dof knee, a knee-like joint about a tilted axis stored as 3 channels, a joint that
    never moves, and position channels on the hand (one of them constant)."""
    sk = walker_skeleton()
    rng = np.random.default_rng(seed)
    t = np.arange(n_frames, dtype=np.float64)
    phase = rng.uniform(0, 2 * np.pi)
    heading = 0.3 + turn * t + 0.2 * np.sin(0.05 * t + phase)
    speed = 1.5 + 0.5 * np.sin(0.1 * t)
    fwd = np.stack([np.sin(heading), np.zeros(n_frames), np.cos(heading)], axis=1)
    pos = np.cumsum(speed[:, None] * fwd, axis=0) + np.array([3.0, 0.0, -7.0])
    pos[:, 1] = 90.0 + 2.0 * np.sin(0.4 * t)
    tilt = axis_rotation("X", 0.1 * np.sin(0.4 * t)) @ axis_rotation("Z", 0.05 * np.cos(0.4 * t))
    root = axis_rotation("Y", heading) @ tilt
    frames = np.zeros((n_frames, sk.n_channels))

    def put(name: str, mats: np.ndarray) -> None:
        i = sk.index(name)
        j = sk.joints[i]
        sl = sk.channel_slice(i)
        cols = [sl.start + k for k, c in enumerate(j.channels) if c.endswith("rotation")]
        frames[:, cols] = euler_deg(mats, j.rotation_order)

    frames[:, 0:3] = pos
    put("Hips", root)
    put("Spine", rotvecs(0.2 * np.sin(0.3 * t), 0.1 * np.cos(0.23 * t), 0.05 * np.sin(0.7 * t)))
    put("Head", rotvecs(0.1 * np.sin(0.2 * t), 0.3 * np.cos(0.1 * t), 0.05 * np.sin(0.37 * t)))
    # the arm: angle oscillating across 180° about a slowly moving axis
    axis = np.stack([np.cos(0.01 * t), np.sin(0.01 * t), 0.3 + 0 * t], axis=1)
    axis /= np.linalg.norm(axis, axis=1, keepdims=True)
    put("Arm", Rotation.from_rotvec((np.pi + 0.5 * np.sin(0.2 * t))[:, None] * axis).as_matrix())
    hand = sk.channel_slice(sk.index("Hand"))
    frames[:, hand.start + 0] = 12.0  # constant
    frames[:, hand.start + 1] = np.sin(0.3 * t)
    frames[:, hand.start + 2] = 0.5 * np.cos(0.3 * t)
    frames[:, hand.start + 3 : hand.stop] = euler_deg(
        rotvecs(0.4 * np.sin(0.5 * t), 0.1 * np.sin(0.13 * t), 0.2 * np.cos(0.5 * t)),
        "ZXY",
    )
    put("Hip", rotvecs(0.5 * np.sin(0.2 * t), 0.1 * np.sin(0.1 * t), 0.1 + 0.05 * np.cos(0.31 * t)))
    frames[:, sk.channel_slice(sk.index("Knee"))] = (40 + 35 * np.sin(0.2 * t))[:, None]
    tilted = np.array([0.8, 0.0, 0.6])  # a 1-dof hinge about a tilted axis
    put("Foot", Rotation.from_rotvec((0.6 * np.sin(0.2 * t))[:, None] * tilted).as_matrix())
    put(
        "Stiff",
        np.broadcast_to(Rotation.from_rotvec([0.1, 0.2, 0.3]).as_matrix(), (n_frames, 3, 3)),
    )
    return MotionClip(sk, frames, 1.0 / 30.0, f"walker{seed}")


def assert_inverse_exact(mf: MotionFeatures, clip: MotionClip, tol: float = TOL) -> MotionClip:
    x = mf.transform(clip)
    assert x.shape == (clip.n_frames - 1, mf.n_features) and x.dtype == np.float64
    back = mf.inverse_transform(x, mf.initial_state(clip), name="back")
    assert back.n_frames == clip.n_frames - 1
    rot_err = np.abs(back.local_rotations() - clip.local_rotations()[1:]).max()
    trans_err = np.abs(back.local_translations() - clip.local_translations()[1:]).max()
    assert rot_err < tol, rot_err
    assert trans_err < tol * clip.skeleton.scale(), trans_err
    return back


# ---- resampling ---------------------------------------------------------------------------


def test_resample_120_to_30_gives_4_phases_covering_every_frame_once() -> None:
    sk = Skeleton((Joint("root", -1, (0, 0, 0), ("Xposition",)),))
    n = 4 * 25 + 3
    clip = MotionClip(sk, np.arange(n, dtype=np.float64)[:, None], 1 / 120, "take")
    factor = resample_factor(clip.fps, 30.0)
    assert factor == 4
    parts = resample(clip, factor)
    assert [p.name for p in parts] == ["take@0", "take@1", "take@2", "take@3"]
    assert all(p.frame_time == pytest.approx(1 / 30) for p in parts)
    assert [p.n_frames for p in parts] == [26, 26, 26, 25]
    for k, p in enumerate(parts):
        np.testing.assert_array_equal(p.frames[:, 0], np.arange(k, n, 4))
    covered = np.sort(np.concatenate([p.frames[:, 0] for p in parts]))
    np.testing.assert_array_equal(covered, np.arange(n))


def test_resample_factor_must_be_integer() -> None:
    assert resample_factor(1 / 0.008333, 30) == 4  # BVH frame times are rounded
    assert resample_factor(60, 30) == 2 and resample_factor(30, 30) == 1
    with pytest.raises(ValueError, match="not a whole number"):
        resample_factor(50, 30)
    with pytest.raises(ValueError, match="not a whole number"):
        resample_factor(30, 60)


# ---- feature semantics --------------------------------------------------------------------


def test_root_features_are_body_centred_velocities_and_turn_rate() -> None:
    sk = Skeleton(
        (Joint("root", -1, (0, 0, 0), ("Xposition", "Yposition", "Zposition", "Yrotation")),)
    )
    t = np.arange(10, dtype=np.float64)
    # facing +X (heading 90° about Y) and walking +X at 2 units/frame, then strafing
    walk = np.stack([2 * t, 90 + 0 * t, 0 * t, 90 + 0 * t], axis=1)
    strafe = np.stack([0 * t, 90 + 0 * t, -3 * t, 90 + 0 * t], axis=1)  # -Z: the left of +X
    turn = np.stack([0 * t, 90 + 0 * t, 0 * t, 170 + 5 * t], axis=1)  # through 180°
    clips = [
        MotionClip(sk, f, 1 / 30, n)
        for f, n in ((walk, "walk"), (strafe, "strafe"), (turn, "turn"))
    ]
    mf = MotionFeatures().fit(clips)
    names = mf.raw_feature_names()
    col = {
        n: names.index(n)
        for n in ("root_height", "root_vel_forward", "root_vel_lateral", "root_dheading")
    }
    w, s, r = (mf.raw_features(c) for c in clips)
    np.testing.assert_allclose(w[:, col["root_vel_forward"]], 2.0, atol=1e-12)
    np.testing.assert_allclose(w[:, col["root_vel_lateral"]], 0.0, atol=1e-12)
    np.testing.assert_allclose(s[:, col["root_vel_forward"]], 0.0, atol=1e-12)
    np.testing.assert_allclose(s[:, col["root_vel_lateral"]], 3.0, atol=1e-12)
    np.testing.assert_allclose(w[:, col["root_height"]], 90.0)
    np.testing.assert_allclose(r[:, col["root_dheading"]], np.deg2rad(5.0), atol=1e-12)
    np.testing.assert_allclose(mf.root_speed(clips[1]), 3.0 * 30, atol=1e-9)
    assert mf.initial_state(clips[2]).heading == pytest.approx(np.deg2rad(170.0))
    # a constant root dimension (height) is dropped
    assert "root_height" not in mf.feature_names()


@pytest.mark.parametrize("rotation", ["rot6d", "expmap_unwrap"])
def test_rotation_features_do_not_jump_at_180_degrees(rotation: str) -> None:
    """The arm swings across 180° about a moving axis and the root turns through ±180°: the
    Euler channels wrap, the features do not."""
    clip = walker_clip()
    mf = MotionFeatures(rotation=rotation).fit([clip])  # type: ignore[arg-type]
    raw = mf.raw_features(clip)
    names = mf.raw_feature_names()
    arm = [i for i, n in enumerate(names) if n.startswith("Arm_")]
    assert len(arm) == (6 if rotation == "rot6d" else 3)
    assert np.abs(np.diff(raw[:, arm], axis=0)).max() < 0.2
    if rotation == "expmap_unwrap":
        assert np.abs(raw[:, arm]).max() > np.pi  # beyond the principal branch, continuous
    # the Euler channels themselves do wrap
    sl = clip.skeleton.channel_slice(clip.skeleton.index("Arm"))
    assert np.abs(np.diff(clip.frames[:, sl], axis=0)).max() > 180
    dh = raw[:, names.index("root_dheading")]
    assert np.abs(dh).max() < 0.2  # heading passes ±180° several times, its change never jumps


# ---- exact inverse ------------------------------------------------------------------------


def test_inverse_exact_on_synthetic_walker_and_constants_restored() -> None:
    clips = [walker_clip(seed=0), walker_clip(n_frames=250, seed=1, turn=-0.08)]
    # dependent_tol=0: the walker's joints are all smooth functions of a few sinusoids, so
    # some of its features are affine in others to 1e-10 (the foot hinge's second direction)
    mf = MotionFeatures(near_constant_tol=0.0, dependent_tol=0.0).fit(clips)
    names = mf.feature_names()
    # constant dimensions are dropped: the frozen joint, the constant hand X position
    assert not any(n.startswith("Stiff_") for n in names)
    assert "Hand_Xposition" not in names and "Hand_Yposition" in names
    # 1-dof hinges keep the plane their 6-D features move in: the knee (one channel) and the
    # tilted foot hinge, 2 dimensions each (cos and sin of the angle)
    hinge = [n for n in names if n.startswith(("Knee_", "Foot_"))]
    assert hinge == ["Knee_e0", "Knee_e1", "Foot_e0", "Foot_e1"]
    assert len(mf.raw_feature_names()) == 4 + 6 + 6 * 8 + 3
    assert mf.report()["dropped_constant"][:1] and not mf.report()["near_constant"]
    for clip in clips:
        x = mf.transform(clip)
        back = assert_inverse_exact(mf, clip)
        sl = clip.skeleton.channel_slice(clip.skeleton.index("Hand"))
        np.testing.assert_allclose(back.frames[:, sl.start], 12.0)  # restored constant
    stacked = np.concatenate([mf.transform(c) for c in clips])
    np.testing.assert_allclose(stacked.mean(axis=0), 0.0, atol=1e-9)
    np.testing.assert_allclose(stacked.std(axis=0), 1.0, atol=1e-9)
    assert x.shape[1] == mf.n_features


def test_dimensions_that_copy_others_are_dropped_and_restored_from_them() -> None:
    """A rig that stores one quantity twice (a joint that always turns with another, a position
    channel that is an affine copy of another: the ReActIdle rig's pelvis.L/pelvis.R) gives
    exactly collinear features; they are dropped, reported, restored exactly, and carried by
    to_dict."""
    clip = walker_clip(n_frames=300)
    sk = clip.skeleton
    frames = clip.frames.copy()
    spine, stiff = sk.channel_slice(sk.index("Spine")), sk.channel_slice(sk.index("Stiff"))
    frames[:, stiff] = frames[:, spine]  # same channel order (ZXY): the same rotation
    hand = sk.channel_slice(sk.index("Hand"))
    frames[:, hand.start + 2] = 2.0 * frames[:, hand.start + 1] + 1.0
    twin = MotionClip(sk, frames, clip.frame_time, "twin")
    mf = MotionFeatures(near_constant_tol=0.0).fit([twin])
    dependent = mf.report()["dependent"]
    # the walker itself has a few: its joints are smooth functions of a few sinusoids
    own = MotionFeatures(near_constant_tol=0.0).fit([clip]).report()["dependent"]
    assert set(own) < set(dependent)
    assert "Hand_Zposition" in dependent and "Hand_Yposition" not in dependent
    assert {n.split("_")[0] for n in set(dependent) - set(own)} == {"Stiff", "Hand"}
    assert not set(dependent) & set(mf.feature_names())
    plain = MotionFeatures(near_constant_tol=0.0, dependent_tol=0.0).fit([twin])
    assert plain.n_features == mf.n_features + len(dependent)
    x = mf.transform(twin)
    assert np.linalg.matrix_rank(x - x.mean(0)) == mf.n_features  # no collinear inputs left
    back = assert_inverse_exact(mf, twin)
    np.testing.assert_allclose(
        back.frames[:, hand.start + 2], 2.0 * back.frames[:, hand.start + 1] + 1.0, atol=1e-6
    )
    mf2 = MotionFeatures.from_dict(json.loads(json.dumps(mf.to_dict())))
    s = mf.initial_state(twin)
    np.testing.assert_array_equal(
        mf2.inverse_transform(x, s).frames, mf.inverse_transform(x, s).frames
    )
    bad = mf.to_dict()
    bad["dependent"] = {**bad["dependent"], "coef": bad["dependent"]["coef"][:-1]}
    with pytest.raises(ValueError, match="dependent"):
        MotionFeatures.from_dict(bad)


def test_per_clip_constants_are_dropped_and_restored_as_their_mean() -> None:
    """A channel that is constant within every clip but differs between clips (a performer's
    bone length stored as a position channel, as in the ReActIdle rig) is not motion: dropped,
    reported, and restored from the seed clip (its initial state) or as its training mean; a
    clip's steady root speed is kept."""
    clips = [walker_clip(seed=0), walker_clip(n_frames=250, seed=1, turn=-0.08)]
    frames = [c.frames.copy() for c in clips]
    sk = clips[0].skeleton
    hand = sk.channel_slice(sk.index("Hand"))
    frames[1][:, hand.start] = 14.0  # 12.0 in the first clip
    frames[1][:, 0:3] = frames[1][:1, 0:3] + np.arange(250)[:, None] * [1.0, 0.0, 0.0]
    frames[1][:, 1] = 90.0  # clip 2 glides at one steady speed: its root features are constant
    two = [MotionClip(sk, f, c.frame_time, c.name) for f, c in zip(frames, clips, strict=True)]
    mf = MotionFeatures(near_constant_tol=0.0, dependent_tol=0.0).fit(two)
    assert mf.report()["per_clip_constant"] == ["Hand_Xposition"]
    assert "Hand_Xposition" not in mf.feature_names()
    assert {"root_vel_forward", "root_dheading"} <= set(mf.feature_names())
    state = mf.initial_state(two[1])  # carries the seed clip's own value: its performer
    assert state.performer == pytest.approx((14.0,))
    back = mf.inverse_transform(mf.transform(two[1]), state)
    np.testing.assert_allclose(back.frames[:, hand.start], 14.0)
    assert_inverse_exact(mf, two[1])
    anyone = RootState(state.position, state.heading)  # no performer: the training mean
    back = mf.inverse_transform(mf.transform(two[1]), anyone)
    n0, n1 = clips[0].n_frames - 1, clips[1].n_frames - 1
    np.testing.assert_allclose(back.frames[:, hand.start], (12.0 * n0 + 14.0 * n1) / (n0 + n1))
    again = MotionFeatures.from_dict(json.loads(json.dumps(mf.to_dict())))
    assert again.initial_state(two[1]) == state
    off = MotionFeatures(near_constant_tol=0.0, dependent_tol=0.0, per_clip_tol=0.0).fit(two)
    assert off.report()["per_clip_constant"] == [] and "Hand_Xposition" in off.feature_names()
    with pytest.raises(ValueError, match="per_clip_tol"):
        MotionFeatures(per_clip_tol=-1.0)


def test_inverse_places_motion_anywhere() -> None:
    """Features are body-centred: another start position/heading gives the same motion moved
    and turned rigidly about the up axis (what a game needs)."""
    clip = walker_clip(n_frames=120)
    mf = MotionFeatures(near_constant_tol=0.0).fit([clip])
    x = mf.transform(clip)
    s0 = mf.initial_state(clip)
    start = RootState((10.0, 0.0, -5.0), 1.0)
    moved = mf.inverse_transform(x, start)
    turn = axis_rotation("Y", start.heading - s0.heading)
    p = clip.local_translations()[1:, 0]
    expected = (p - np.asarray(s0.position)) @ turn.T + np.asarray(start.position)
    expected[:, 1] = p[:, 1]  # the height is absolute
    np.testing.assert_allclose(moved.local_translations()[:, 0], expected, atol=1e-9)
    np.testing.assert_allclose(
        moved.local_rotations()[:, 0], turn @ clip.local_rotations()[1:, 0], atol=1e-9
    )
    np.testing.assert_allclose(
        moved.local_rotations()[:, 1:], clip.local_rotations()[1:, 1:], atol=1e-9
    )
    origin = mf.inverse_transform(x)  # default: origin, heading 0
    assert origin.local_translations()[0, 0, [0, 2]] @ [1, 1] != 0.0


def test_near_180_root_and_joints_every_euler_order() -> None:
    """Rotations hugging ±180° in every channel order invert exactly."""
    orders = ["XYZ", "XZY", "YXZ", "YZX", "ZXY", "ZYX"]
    joints = [
        Joint(
            "root",
            -1,
            (0, 0, 0),
            ("Xposition", "Yposition", "Zposition", *(f"{c}rotation" for c in "YZX")),
        )
    ]
    joints += [
        Joint(f"j{o}", k, (1.0, 2.0, 0.5), tuple(f"{c}rotation" for c in o))
        for k, o in enumerate(orders)
    ]
    sk = Skeleton(tuple(joints))
    rng = np.random.default_rng(3)
    n = 200
    frames = np.empty((n, sk.n_channels))
    frames[:, :3] = np.cumsum(rng.normal(size=(n, 3)), axis=0)
    for i, j in enumerate(sk.joints):
        ax = rng.normal(size=3)
        ax /= np.linalg.norm(ax)
        angle = np.pi + 0.05 * np.cumsum(rng.normal(size=n))
        mats = Rotation.from_rotvec(angle[:, None] * ax).as_matrix()
        sl = sk.channel_slice(i)
        frames[:, sl.stop - 3 : sl.stop] = euler_deg(mats, j.rotation_order)
    clip = MotionClip(sk, frames, 1 / 30, "flip")
    for rotation in ("rot6d", "expmap", "expmap_unwrap"):
        mf = MotionFeatures(rotation=rotation, near_constant_tol=0.0).fit([clip])  # type: ignore[arg-type]
        assert_inverse_exact(mf, clip)
    # with the default tolerance two root-tilt directions of 6-D features that move by less
    # than 1e-3 are dropped, and the pose comes back within that
    mf = MotionFeatures().fit([clip])
    assert mf.report()["near_constant"] == ["root_tilt_e4", "root_tilt_e5"]
    assert_inverse_exact(mf, clip, tol=5e-3)


def test_to_dict_is_json_and_restores_the_same_pipeline() -> None:
    clips = [walker_clip(seed=0), walker_clip(n_frames=200, seed=2)]
    mf = MotionFeatures().fit(clips, source_fps=120.0)
    d = json.loads(json.dumps(mf.to_dict()))
    assert d["fps"] == pytest.approx(30.0) and d["up_axis"] == "y" and d["source_fps"] == 120.0
    assert d["feature_names"] == mf.feature_names() and len(d["mean"]) == mf.n_features
    assert sum(d["kept"]) == mf.n_features and {"Knee", "Foot"} <= set(d["bases"])
    assert d["format_version"] == 2 and d["rotation"] == "rot6d"
    mf2 = MotionFeatures.from_dict(d)
    x = mf.transform(clips[1])
    np.testing.assert_array_equal(mf2.transform(clips[1]), x)
    s = mf.initial_state(clips[1])
    np.testing.assert_array_equal(
        mf2.inverse_transform(x, s).frames, mf.inverse_transform(x, s).frames
    )
    with pytest.raises(ValueError, match="format_version"):
        MotionFeatures.from_dict({**d, "format_version": 99})
    with pytest.raises(ValueError, match="mean/std"):
        MotionFeatures.from_dict({**d, "std": d["std"][:-1]})


def test_errors() -> None:
    clip = walker_clip(n_frames=50)
    with pytest.raises(RuntimeError, match="not fitted"):
        MotionFeatures().transform(clip)
    mf = MotionFeatures().fit([clip])
    other = Skeleton((Joint("root", -1, (0, 0, 0), ("Yrotation",)),))
    with pytest.raises(ValueError, match="different skeleton"):
        mf.transform(MotionClip(other, np.zeros((5, 1)), 1 / 30, "x"))
    with pytest.raises(ValueError, match="need at least 2"):
        mf.transform(MotionClip(clip.skeleton, clip.frames[:1], 1 / 30, "one"))
    with pytest.raises(ValueError, match="different frame rates"):
        MotionFeatures().fit([clip, MotionClip(clip.skeleton, clip.frames, 1 / 120, "fast")])
    with pytest.raises(ValueError, match="different skeletons"):
        MotionFeatures().fit([clip, MotionClip(other, np.zeros((5, 1)), 1 / 30, "x")])
    with pytest.raises(ValueError, match=r"features must have shape \(T, "):
        mf.inverse_transform(np.zeros((3, mf.n_features + 1)))
    with pytest.raises(ValueError, match="must be one of x, y, z"):
        MotionFeatures(up_axis="w")
    with pytest.raises(ValueError, match="rotation must be one of"):
        MotionFeatures(rotation="euler")  # type: ignore[arg-type]
    MotionFeatures(up_axis="y", forward_axis="y")  # a root facing its local +Y is a valid rig


@pytest.mark.realdata
def test_inverse_exact_on_real_take_at_30fps(cmu_take_paths: tuple[Path, Path]) -> None:
    asf_path, amc_path = cmu_take_paths
    clip = read_amc(amc_path, read_asf(asf_path), fps=120.0)
    parts = resample(clip, resample_factor(clip.fps, 30.0))
    assert len(parts) == 4 and all(p.fps == pytest.approx(30.0) for p in parts)
    mf = MotionFeatures(near_constant_tol=0.0).fit(parts)
    names = mf.feature_names()
    assert names[:2] == ["root_height", "root_vel_forward"] and "lfemur_r0" in names
    assert "ltibia_e0" in names and not any(n.startswith("lclavicle") for n in names)
    assert 60 <= mf.n_features <= 160
    for part in parts:
        assert_inverse_exact(mf, part)
