"""The clip pipeline on anyone's clips: frame rates, continuity through 180°, clip joins, rig
axes, data checks, seeds from a user's clip, writing back at the user's rate."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from seqboltz.data import motion_fixture_folder
from seqboltz.motion import (
    Joint,
    MotionClip,
    MotionFeatures,
    RootState,
    Skeleton,
    axis_rotation,
    euler_to_matrix,
    quaternion_slerp,
    read_amc,
    read_asf,
    read_bvh,
    resample_clip,
    resample_phases,
    rot6d_to_matrix,
    write_bvh,
)


def rig() -> Skeleton:
    return Skeleton(
        (
            Joint(
                "Hips",
                -1,
                (0, 0, 0),
                ("Xposition", "Yposition", "Zposition", "Zrotation", "Xrotation", "Yrotation"),
            ),
            Joint("Spine", 0, (0, 10, 0), ("Zrotation", "Xrotation", "Yrotation"), (0, 20, 0)),
            Joint("Shoulder", 1, (8, 18, 0), ("Zrotation", "Xrotation", "Yrotation")),
            Joint("Elbow", 2, (12, 0, 0), ("Zrotation", "Xrotation", "Yrotation"), (10, 0, 0)),
            Joint("Hip", 0, (-5, -2, 0), ("Zrotation", "Xrotation", "Yrotation")),
            Joint("Knee", 4, (0, -20, 0), ("Xrotation",), (0, -20, 0)),
        )
    )


def put(clip_frames: np.ndarray, sk: Skeleton, name: str, mats: np.ndarray) -> None:
    i = sk.index(name)
    j = sk.joints[i]
    sl = sk.channel_slice(i)
    cols = [sl.start + k for k, c in enumerate(j.channels) if c.endswith("rotation")]
    clip_frames[:, cols] = Rotation.from_matrix(mats).as_euler(j.rotation_order, degrees=True)


def motion(
    fps: float,
    seconds: float = 8.0,
    shoulder_deg: float = 175.0,
    turn_deg_per_s: float = 60.0,
    root_forward: np.ndarray | None = None,
) -> MotionClip:
    """A smooth walk in a curve sampled at ``fps`` (the same motion at every rate): the heading
    passes ±180°, a shoulder is held around ``shoulder_deg`` (crossing 180° when it is near it),
    a 1-dof knee swings. ``root_forward``: a fixed rotation after the heading (a rig whose root
    frame is not the character's)."""
    sk = rig()
    t = np.arange(round(seconds * fps) + 1) / fps
    omega = np.deg2rad(turn_deg_per_s)
    heading = np.deg2rad(170.0) + omega * t
    speed = 40.0  # units / s on a circle (closed form, so every frame rate samples one path)
    side = np.stack([np.cos(heading), 0 * t, -np.sin(heading)], axis=1)
    pos = (speed / omega) * np.stack(
        [np.cos(heading[0]) - np.cos(heading), 0 * t, np.sin(heading) - np.sin(heading[0])], axis=1
    )
    pos += 2.0 * np.sin(2 * np.pi * 0.9 * t)[:, None] * side  # sway
    pos[:, 1] = 90.0 + 2.0 * np.sin(2 * np.pi * 1.8 * t)
    frames = np.zeros((t.size, sk.n_channels))
    frames[:, :3] = pos
    tilt = axis_rotation("X", 0.08 * np.sin(2 * np.pi * 1.8 * t))
    root = axis_rotation("Y", heading) @ tilt
    if root_forward is not None:
        root = root @ root_forward
    put(frames, sk, "Hips", root)
    put(
        frames,
        sk,
        "Spine",
        Rotation.from_rotvec(
            np.stack([0.1 * np.sin(t), 0.2 * np.cos(0.7 * t), 0 * t], 1)
        ).as_matrix(),
    )
    ang = np.deg2rad(shoulder_deg + 8.0 * np.sin(2 * np.pi * 0.9 * t))
    axis = np.array([0.3, 0.2, 0.93]) / np.linalg.norm([0.3, 0.2, 0.93])
    put(frames, sk, "Shoulder", Rotation.from_rotvec(ang[:, None] * axis).as_matrix())
    put(
        frames,
        sk,
        "Elbow",
        Rotation.from_rotvec(np.stack([0 * t, 0.4 + 0.3 * np.sin(3 * t), 0 * t], 1)).as_matrix(),
    )
    put(
        frames,
        sk,
        "Hip",
        Rotation.from_rotvec(
            np.stack([0.5 * np.sin(2 * np.pi * 0.9 * t), 0 * t, 0.05 + 0 * t], 1)
        ).as_matrix(),
    )
    knee = sk.channel_slice(sk.index("Knee"))
    frames[:, knee] = (30 + 25 * np.sin(2 * np.pi * 0.9 * t))[:, None]
    return MotionClip(sk, frames, 1.0 / fps, f"walk{fps:g}")


def rot_err(a: MotionClip, b: MotionClip) -> float:
    return float(np.abs(a.local_rotations() - b.local_rotations()).max())


# ---- rotations helpers ---------------------------------------------------------------------


def test_slerp_and_6d_against_scipy() -> None:
    rng = np.random.default_rng(0)
    r0, r1 = Rotation.random(50, random_state=1), Rotation.random(50, random_state=2)
    w = rng.uniform(size=50)
    q0 = r0.as_quat()[:, [3, 0, 1, 2]]
    q1 = r1.as_quat()[:, [3, 0, 1, 2]]
    ours = Rotation.from_quat(quaternion_slerp(q0, q1, w)[:, [1, 2, 3, 0]]).as_matrix()
    for k in range(50):
        from scipy.spatial.transform import Slerp

        ref = Slerp([0, 1], Rotation.concatenate([r0[k], r1[k]]))(w[k]).as_matrix()
        np.testing.assert_allclose(ours[k], ref, atol=1e-10)
    m = Rotation.random(20, random_state=3).as_matrix()
    six = np.concatenate([m[:, :, 0], m[:, :, 1]], axis=1)
    np.testing.assert_allclose(rot6d_to_matrix(six), m, atol=1e-12)
    noisy = rot6d_to_matrix(six + 0.05 * rng.normal(size=six.shape))
    np.testing.assert_allclose(
        noisy @ np.swapaxes(noisy, 1, 2), np.broadcast_to(np.eye(3), (20, 3, 3)), atol=1e-12
    )
    np.testing.assert_allclose(np.linalg.det(noisy), 1.0, atol=1e-12)
    # Euler composition through quaternions equals the matrix product
    ang = rng.uniform(-3, 3, size=(10, 3))
    expected = (
        axis_rotation("Z", ang[:, 0])
        @ axis_rotation("X", ang[:, 1])
        @ axis_rotation("Y", ang[:, 2])
    )
    np.testing.assert_allclose(euler_to_matrix(ang, "ZXY"), expected, atol=1e-12)


# ---- frame rates ---------------------------------------------------------------------------


def test_same_motion_at_30_25_and_120_fps_gives_the_same_features() -> None:
    """Stored at 30, 25 or 120 fps and brought to 30 fps, the same motion has the same
    standardised features: 120 fps exactly (phase copy 0 is every 4th frame), 25 fps within
    the error of re-interpolating a 25 fps sampling."""
    at30 = motion(30.0)
    mf = MotionFeatures().fit([at30])
    x30 = mf.transform(at30)
    parts = resample_phases(motion(120.0), 30.0)
    assert len(parts) == 4 and all(p.fps == 30.0 for p in parts)
    np.testing.assert_allclose(mf.transform(parts[0]), x30, atol=1e-9)
    from25 = resample_clip(motion(25.0), 30.0)
    assert from25.fps == 30.0 and from25.n_frames == at30.n_frames
    x25 = mf.transform(from25)
    err = np.abs(x25 - x30)
    assert np.median(err) < 0.02 and err.max() < 0.25, (np.median(err), err.max())
    # interpolation happens on rotations: no Euler wrap artefact at the 180° shoulder
    assert rot_err(from25, at30) < 5e-3
    # 50 fps: two copies, 24 fps: one, both at 30 fps
    assert [p.n_frames for p in resample_phases(motion(50.0), 30.0)] == [241, 240]
    assert len(resample_phases(motion(24.0), 30.0)) == 1


def test_bvh_frame_times_are_snapped_to_whole_ratios() -> None:
    clip = motion(120.0, seconds=2.0)
    clip.frame_time = 0.0083333  # as BVH files round it
    parts = resample_phases(clip, 30.0)
    np.testing.assert_array_equal(parts[1].frames, clip.frames[1::4])


# ---- continuity ----------------------------------------------------------------------------


@pytest.mark.parametrize("rotation", ["rot6d", "expmap"])
def test_joints_held_near_180_and_a_180_turn_have_no_jump(rotation: str) -> None:
    """A shoulder held at 172-188° (crossing 180° every second) on a root that turns through
    ±180°: every feature moves smoothly, frame to frame."""
    clip = motion(30.0, shoulder_deg=180.0)
    sl = clip.skeleton.channel_slice(clip.skeleton.index("Shoulder"))
    assert np.abs(np.diff(clip.frames[:, sl], axis=0)).max() > 180  # the Euler channels jump
    mf = MotionFeatures(rotation=rotation).fit([clip])  # type: ignore[arg-type]
    x = mf.transform(clip)
    steps = np.abs(np.diff(x, axis=0))
    # a jump is a step far beyond that dimension's usual steps (a branch flip is many std)
    ratio = steps.max(axis=0) / (np.quantile(steps, 0.95, axis=0) + 0.05)
    assert ratio.max() < 3.0, (mf.feature_names()[int(np.argmax(ratio))], ratio.max())
    raw = mf.raw_features(clip)
    dh = raw[:, mf.raw_feature_names().index("root_dheading")]
    np.testing.assert_allclose(dh, np.deg2rad(60.0 / 30.0), atol=1e-9)


@pytest.mark.parametrize("rotation", ["rot6d", "expmap"])
def test_clip_joins_do_not_jump(rotation: str) -> None:
    """The same frames give the same features whichever clip or split they are in: a take cut
    in three pieces (where the old unwrapped exp maps picked a branch per piece) has the
    features of the whole take."""
    whole = motion(30.0, shoulder_deg=180.0)
    cuts = [0, 70, 150, whole.n_frames]
    pieces = [
        MotionClip(whole.skeleton, whole.frames[a:b], whole.frame_time, f"p{k}")
        for k, (a, b) in enumerate(itertools.pairwise(cuts))
    ]
    mf = MotionFeatures(rotation=rotation).fit(pieces[:2])  # type: ignore[arg-type]
    x = mf.transform(whole)
    for (a, _b), piece in zip(itertools.pairwise(cuts), pieces, strict=True):
        np.testing.assert_allclose(mf.transform(piece), x[a : a + piece.n_frames - 1], atol=1e-9)
    # the held-out piece is inside the training range (no branch change)
    assert mf.range_check(mf.transform(pieces[2])) is None


# ---- rig axes ------------------------------------------------------------------------------


def test_a_root_facing_its_local_plus_y_with_y_up() -> None:
    """The user's rig: its root frame faces local +Y while the world is Y up (a -90° turn about
    X in every frame). Described (or detected), forward speed is the walking speed."""
    turned = motion(30.0, root_forward=axis_rotation("X", np.pi / 2))
    plain = motion(30.0)
    ref = MotionFeatures().fit([plain])
    for forward in ("y", "auto"):
        mf = MotionFeatures(up_axis="y", forward_axis=forward).fit([turned])
        assert mf.forward_axis == "y"
        names = mf.raw_feature_names()
        for col in ("root_vel_forward", "root_vel_lateral", "root_dheading", "root_height"):
            np.testing.assert_allclose(
                mf.raw_features(turned)[:, names.index(col)],
                ref.raw_features(plain)[:, names.index(col)],
                atol=1e-9,
            )
        back = mf.inverse_transform(mf.transform(turned), mf.initial_state(turned))
        assert rot_err(back, MotionClip(turned.skeleton, turned.frames[1:], 1 / 30)) < 5e-3
    # the old description of that rig (forward = z of the root frame) points the "forward"
    # axis at the sky: its heading is noise, and so are the root features built on it
    wrong = MotionFeatures(up_axis="y", forward_axis="z").fit([turned])
    dh = wrong.raw_features(turned)[:, wrong.raw_feature_names().index("root_dheading")]
    assert np.abs(dh).max() > 1.0  # radians per frame, against a true 2° per frame


def test_z_up_rig_is_detected() -> None:
    plain = motion(30.0)
    to_z = axis_rotation("X", np.pi / 2)  # world Y up -> Z up
    frames = plain.frames.copy()
    sk = plain.skeleton
    frames[:, :3] = plain.frames[:, :3] @ to_z.T
    put(frames, sk, "Hips", to_z @ plain.local_rotations()[:, 0])
    zup = MotionClip(sk, frames, plain.frame_time, "zup")
    mf = MotionFeatures(up_axis="auto", forward_axis="auto").fit([zup])
    assert mf.up_axis == "z" and mf.report()["axes"]["detected"] == {"up": True, "forward": True}
    ref = MotionFeatures().fit([plain])
    np.testing.assert_allclose(
        mf.raw_features(zup)[:, :4], ref.raw_features(plain)[:, :4], atol=1e-9
    )


# ---- data checks ---------------------------------------------------------------------------


def test_near_constant_outlier_heavy_and_out_of_range_are_reported() -> None:
    clip = motion(30.0)
    sk = clip.skeleton
    frames = clip.frames.copy()
    rng = np.random.default_rng(0)
    elbow = sk.channel_slice(sk.index("Elbow"))
    frames[:, elbow] = 20.0 + 0.002 * rng.normal(size=(len(frames), 3))  # sensor noise only
    spine = sk.channel_slice(sk.index("Spine"))
    frames[100, spine.start] += 60.0  # one glitch frame
    noisy = MotionClip(sk, frames, clip.frame_time, "noisy")
    mf = MotionFeatures().fit([noisy])
    rep = json.loads(json.dumps(mf.report()))
    # the elbow's noise is dropped (so are second-order 6-D directions of small rotations)
    assert "Elbow" in {n.split("_")[0] for n in rep["near_constant"]}
    assert not any(n.startswith("Elbow") for n in mf.feature_names())
    heavy = {h["name"].split("_")[0] for h in rep["outlier_heavy"]}
    assert "Spine" in heavy
    for h in rep["outlier_heavy"]:
        assert h["robust_std"] < h["std"]
    flagged = np.flatnonzero(mf.outlier_frames(mf.transform(noisy)))
    assert set(flagged) <= {98, 99, 100} and 99 in flagged  # row r is frame r + 1
    # a held-out clip with the hip 150° away from anything seen
    odd = noisy.frames.copy()
    hip = sk.channel_slice(sk.index("Hip"))
    odd[:, hip.start + 1] += 150.0
    found = mf.range_check(mf.transform(MotionClip(sk, odd, clip.frame_time, "odd")))
    assert found is not None and found["fraction"] > 0.5 and found["worst"][0][0].startswith("Hip")
    assert mf.range_check(mf.transform(noisy)) is None


# ---- seeds and output ----------------------------------------------------------------------


def test_seed_frames_from_a_users_clip_at_another_rate() -> None:
    """A user's 120 fps clip seeds a 30 fps model with its last ``order`` frames; generation
    continues where the clip ends."""
    at30 = motion(30.0, seconds=6.0)
    mf = MotionFeatures().fit([at30])
    x30 = mf.transform(at30)
    users = motion(120.0, seconds=6.0)
    seed, state = mf.seed_frames(users, order=3)
    assert seed.shape == (3, mf.n_features)
    np.testing.assert_allclose(seed, x30[-3:], atol=1e-9)
    end = mf.initial_state(at30, frame=-1)
    np.testing.assert_allclose(state.position, end.position, atol=1e-9)
    assert state.heading == pytest.approx(end.heading)
    # continuing with the clip's own next frames from that state puts them where they belong
    longer = motion(30.0, seconds=7.0)
    nxt = mf.transform(longer)[x30.shape[0] : x30.shape[0] + 10]
    cont = mf.inverse_transform(nxt, state)
    np.testing.assert_allclose(
        cont.local_translations()[:, 0],
        longer.local_translations()[at30.n_frames : at30.n_frames + 10, 0],
        atol=1e-6,
    )
    with pytest.raises(ValueError, match="needs at least 4"):
        mf.seed_frames(MotionClip(users.skeleton, users.frames[:8], users.frame_time), order=3)


def test_output_at_the_users_frame_rate_and_continuous_channels(tmp_path: Path) -> None:
    at30 = motion(30.0, shoulder_deg=180.0)
    mf = MotionFeatures().fit([at30], source_fps=24.0)
    x = mf.transform(at30)
    out = mf.inverse_transform(x, mf.initial_state(at30), fps=mf.source_fps)
    assert (
        out.fps == pytest.approx(24.0)
        and out.n_frames == int(np.floor((x.shape[0] - 1) / 30 * 24)) + 1
    )
    sl = at30.skeleton.channel_slice(at30.skeleton.index("Shoulder"))
    assert np.abs(np.diff(out.frames[:, sl], axis=0)).max() < 20  # no 360° jumps written
    again = read_bvh(write_bvh(tmp_path / "out.bvh", out))
    assert again.fps == pytest.approx(24.0, rel=1e-6)
    assert (
        rot_err(again, resample_clip(MotionClip(at30.skeleton, at30.frames[1:], 1 / 30), 24.0))
        < 5e-3
    )


def test_format_1_cards_still_read() -> None:
    clip = motion(30.0)
    mf = MotionFeatures(rotation="expmap_unwrap").fit([clip])
    d = mf.to_dict()
    old = {
        k: v
        for k, v in d.items()
        if k not in ("rotation", "references", "train_min", "train_max", "report")
    }
    old["format_version"] = 1
    mf1 = MotionFeatures.from_dict(json.loads(json.dumps(old)))
    assert mf1.rotation == "expmap_unwrap"
    np.testing.assert_array_equal(mf1.transform(clip), mf.transform(clip))
    s = RootState((1.0, 0.0, 2.0), 0.5)
    np.testing.assert_array_equal(
        mf1.inverse_transform(mf.transform(clip), s).frames,
        mf.inverse_transform(mf.transform(clip), s).frames,
    )


# ---- real clips ----------------------------------------------------------------------------


def test_real_clips_through_the_features_and_back(tmp_path: Path) -> None:
    """A CMU take (ASF/AMC, 120 fps) and a CMU take in a 3dsMax-friendly BVH rig, both from the
    committed fixtures: 30 fps features and back to a BVH file, every joint's rotation and the
    root position kept (exactly without near-constant dropping)."""
    cmu = motion_fixture_folder("cmu_mixed")
    take = read_amc(cmu / "05_01.amc", read_asf(cmu / "05.asf"), fps=120.0)
    bvh = read_bvh(motion_fixture_folder("cmu131_bvh") / "131_03.bvh")
    for clip in (take, bvh):
        parts = resample_phases(clip, 30.0)
        assert len(parts) == 4
        for tol, rot_tol in ((0.0, 1e-6), (1e-3, 5e-3)):
            mf = MotionFeatures(near_constant_tol=tol, up_axis="auto", forward_axis="auto").fit(
                parts
            )
            assert (mf.up_axis, mf.forward_axis) == ("y", "z")
            x = mf.transform(parts[1])
            back = mf.inverse_transform(x, mf.initial_state(parts[1]))
            again = read_bvh(write_bvh(tmp_path / f"{clip.name}.bvh", back))
            truth = MotionClip(clip.skeleton, parts[1].frames[1:], 1 / 30)
            assert rot_err(again, truth) < rot_tol + 1e-5  # BVH keeps 6 decimals of a degree
            p = again.local_translations()[:, 0] - truth.local_translations()[:, 0]
            assert np.abs(p).max() < 1e-3
