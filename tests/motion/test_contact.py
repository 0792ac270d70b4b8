"""Foot contacts and the footskate cleanup (:func:`seqboltz.motion.plant_feet`): a sliding
planted foot is held, a lifted one is left alone, a one-axis knee stays one-axis, real motion
barely moves, and bad clips are refused in one line."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from seqboltz.eval._motion_metrics import foot_skating
from seqboltz.motion import (
    Joint,
    MotionClip,
    MotionFeatures,
    Skeleton,
    contact_floor,
    foot_contacts,
    foot_joints,
    forward_kinematics,
    plant_feet,
    read_amc,
    read_asf,
    resample,
    resample_factor,
)

ROT = ("Zrotation", "Xrotation", "Yrotation")


def legs_skeleton() -> Skeleton:
    """A pelvis 40 units up, two legs of 20 + 20 with one-axis knees and a toe each."""
    joints = [
        Joint("Hips", -1, (0, 0, 0), ("Xposition", "Yposition", "Zposition", *ROT)),
        Joint("Chest", 0, (0, 20, 0), ROT, (0, 10, 0)),
    ]
    for side, x in (("Left", 5.0), ("Right", -5.0)):
        hip = len(joints)
        joints += [
            Joint(f"{side}UpLeg", 0, (x, 0, 0), ROT),
            Joint(f"{side}Leg", hip, (0, -20, 0), ("Xrotation",)),
            Joint(f"{side}Foot", hip + 1, (0, -19, 0), ROT),
            Joint(f"{side}ToeBase", hip + 2, (0, -1, 6), ROT, (0, 0, 2)),
        ]
    return Skeleton(tuple(joints))


def _clip(frames: np.ndarray, name: str = "legs") -> MotionClip:
    return MotionClip(legs_skeleton(), frames, 1 / 30, name)


def _standing(n: int) -> np.ndarray:
    sk = legs_skeleton()
    frames = np.zeros((n, sk.n_channels))
    frames[:, 1] = 39.0  # pelvis height: the feet just on the floor (toes at 0)
    frames[:, 5] = 10.0  # slightly bent knees give the solver a bend to work with
    for side in ("Left", "Right"):
        frames[:, sk.channel_index(f"{side}UpLeg", "Xrotation")] = -10.0
        frames[:, sk.channel_index(f"{side}Leg", "Xrotation")] = 20.0
        frames[:, sk.channel_index(f"{side}Foot", "Xrotation")] = -10.0
    return frames


def _skating(clip: MotionClip, floor: np.ndarray, threshold: float) -> tuple[float, float]:
    pos = forward_kinematics(clip.skeleton, clip.frames)
    return foot_skating(pos[:, foot_joints(clip.skeleton.names)], clip.fps, floor, threshold)


def test_contacts_and_floor_follow_the_rule_the_evaluation_uses() -> None:
    heights = np.array([[0.0, 1.0], [0.5, 3.0], [0.2, 0.9], [2.0, 0.8]])
    got = foot_contacts(heights, np.array([0.0, 1.0]), 1.0)
    np.testing.assert_array_equal(got, [[True, False], [True, False], [False, True]])
    everything = np.column_stack([heights, np.full(4, 40.0)])
    floor, threshold = contact_floor(everything, [0, 1], quantile=0.0)
    np.testing.assert_allclose(floor, [0.0, 0.8])
    assert threshold == pytest.approx(0.05 * 40.0)


def test_a_body_gliding_over_planted_feet_stops_gliding() -> None:
    """The pelvis glides forward at 15 units/s while the standing legs do not step: every foot
    joint slides at 15 in contact, and afterwards it stands."""
    frames = _standing(60)
    frames[:, 2] = 0.5 * np.arange(60)  # root Z: 0.5 a frame at 30 fps
    clip = _clip(frames)
    floor, threshold = contact_floor(
        forward_kinematics(clip.skeleton, frames)[..., 1], foot_joints(clip.skeleton.names)
    )
    out, report = plant_feet(clip, floor=floor, threshold=threshold)
    assert _skating(clip, floor, threshold)[0] == pytest.approx(15.0, rel=1e-6)
    assert report.skating_before == pytest.approx(15.0, rel=1e-6)
    skate, contact = _skating(out, floor, threshold)
    assert contact == 1.0 and skate < 1e-6 and report.skating_after < 1e-6
    legs = (("LeftUpLeg", "LeftLeg", "LeftFoot"), ("RightUpLeg", "RightLeg", "RightFoot"))
    assert report.legs == legs
    assert report.max_root_shift == pytest.approx(0.5 * 59, rel=1e-6)
    assert out.skeleton is clip.skeleton and out.frame_time == clip.frame_time


def test_a_sliding_foot_is_held_by_the_leg_and_a_lifted_one_is_left_alone() -> None:
    """The left foot shuffles sideways on the floor (hip sway) for the first second, then lifts
    high for the next: the slide is solved away at the leg (within the rig's one-axis knee),
    and the lifted leg away from contact is untouched."""
    sk = legs_skeleton()
    n = 60
    frames = _standing(n)
    t = np.arange(n)
    hip_z = sk.channel_index("LeftUpLeg", "Zrotation")
    frames[:30, hip_z] = 4.0 * np.sin(2 * np.pi * t[:30] / 15)  # sideways shuffle
    frames[30:, sk.channel_index("LeftUpLeg", "Xrotation")] = -60.0  # a high knee: lifted
    frames[30:, sk.channel_index("LeftLeg", "Xrotation")] = 90.0
    clip = _clip(frames)
    feet = foot_joints(sk.names)
    floor, threshold = contact_floor(forward_kinematics(sk, frames)[..., 1], feet, quantile=0.0)
    out, report = plant_feet(clip, floor=floor, threshold=threshold, blend_frames=4)
    before, after = _skating(clip, floor, threshold)[0], _skating(out, floor, threshold)[0]
    assert before > 3.0 and after < 0.15 * before, (before, after)
    assert report.max_residual < 0.3
    changed = np.abs(out.frames - frames) > 1e-9
    knee = sk.channel_slice(sk.index("LeftLeg"))
    assert changed[:, knee].any()  # the knee bends to hold the foot, on its one axis
    # the lifted leg is untouched beyond the fade
    left = [c for i in (2, 3, 4, 5) for c in range(*sk.channel_slice(i).indices(sk.n_channels))]
    np.testing.assert_array_equal(out.frames[36:, left], frames[36:, left])
    # the root followed the planted feet (half the left foot's slide, the right foot still),
    # and the right leg held its foot where the root took it from
    pos = forward_kinematics(sk, out.frames)
    right_feet = [8, 9]
    step = np.diff(pos[:, right_feet][..., [0, 2]], axis=0)
    assert np.linalg.norm(step, axis=-1).max() < 0.05


@pytest.mark.realdata
def test_real_motion_barely_moves_and_jittered_real_motion_is_planted(
    cmu_take_paths: tuple[Path, Path],
) -> None:
    """A real CMU take (30 fps): its feet hardly slide, so the cleanup leaves most of the body
    where it was and moves no joint beyond the hold's reach; with the joint-angle jitter a
    sampler adds, the feet slide several times as fast, and the cleanup takes most of it away."""
    asf_path, amc_path = cmu_take_paths
    clip = resample(
        read_amc(amc_path, read_asf(asf_path), fps=120.0), resample_factor(120.0, 30.0)
    )[0]
    sk = clip.skeleton
    feet = foot_joints(sk.names)
    pos = forward_kinematics(sk, clip.frames)
    floor, threshold = contact_floor(pos[..., 1], feet)
    planted, report = plant_feet(clip, floor=floor, threshold=threshold)
    moved = forward_kinematics(sk, planted.frames)
    change = np.linalg.norm((moved - moved[:, :1]) - (pos - pos[:, :1]), axis=-1)
    assert np.median(change) < 0.1 * threshold  # most of the body does not move at all
    assert np.quantile(change, 0.99) < 2.5 * threshold
    assert change.max() < 5.0 * threshold  # a hold lets go at the reach (4 × threshold)
    assert report.skating_after < report.skating_before
    rng = np.random.default_rng(0)
    legs = [sk.channel_slice(sk.index(name)) for name in ("lfemur", "ltibia", "rfemur", "rtibia")]
    noisy = clip.frames.copy()
    for sl in legs:
        noisy[:, sl] += rng.normal(0.0, 1.5, size=noisy[:, sl].shape)
    jittered = dataclasses.replace(clip, frames=noisy)
    real_skate = _skating(clip, floor, threshold)[0]
    noisy_skate = _skating(jittered, floor, threshold)[0]
    cleaned, _ = plant_feet(jittered, floor=floor, threshold=threshold)
    assert noisy_skate > 2 * real_skate
    assert _skating(cleaned, floor, threshold)[0] < 0.5 * noisy_skate


def test_features_record_the_training_floor_and_carry_it() -> None:
    frames = _standing(40)
    frames[:, 2] = np.linspace(0, 10, 40)
    frames[20:, 4] = np.linspace(0, 30, 20)  # some turning, so the features have a heading
    clip = _clip(frames)
    mf = MotionFeatures(near_constant_tol=0.0, per_clip_tol=0.0).fit([clip])
    assert mf.contact is not None
    floor, threshold = mf.contact
    pos = forward_kinematics(clip.skeleton, frames)
    want_floor, want_threshold = contact_floor(pos[..., 1], foot_joints(clip.skeleton.names))
    np.testing.assert_allclose(floor, want_floor)
    assert threshold == pytest.approx(want_threshold)
    again = MotionFeatures.from_dict(mf.to_dict())
    assert again.contact is not None and np.array_equal(again.contact[0], floor)
    old = {k: v for k, v in mf.to_dict().items() if k != "contact"}
    assert MotionFeatures.from_dict(old).contact is None  # cards from before: none
    bad = mf.to_dict()
    bad["contact"] = {**bad["contact"], "floor": bad["contact"]["floor"][:1]}
    with pytest.raises(ValueError, match="contact must name the skeleton's foot joints"):
        MotionFeatures.from_dict(bad)


def test_bad_clips_are_refused_in_one_line() -> None:
    sk = legs_skeleton()
    frames = _standing(10)
    no_feet = Skeleton(tuple(dataclasses.replace(j, name=f"j{i}") for i, j in enumerate(sk.joints)))
    with pytest.raises(ValueError, match="no joint of its skeleton names a foot"):
        plant_feet(MotionClip(no_feet, frames, 1 / 30, "x"))
    nan = frames.copy()
    nan[3, 7] = np.nan
    with pytest.raises(ValueError, match="NaN or infinite"):
        plant_feet(_clip(nan))
    with pytest.raises(ValueError, match="at least 2"):
        plant_feet(_clip(frames[:1]))
    with pytest.raises(ValueError, match="one height per foot joint"):
        plant_feet(_clip(frames), floor=np.zeros(2), threshold=1.0)
    fixed_root = Skeleton((dataclasses.replace(sk.joints[0], channels=ROT), *sk.joints[1:]))
    with pytest.raises(ValueError, match="the root has no"):
        plant_feet(MotionClip(fixed_root, frames[:, 3:], 1 / 30, "x"))
    with pytest.raises(ValueError, match="up_axis"):
        plant_feet(_clip(frames), up_axis="w")
