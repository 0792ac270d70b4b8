from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

import seqboltz.motion._bvh as bvh_mod
from seqboltz.motion import (
    Joint,
    MotionClip,
    MotionFileError,
    Skeleton,
    forward_kinematics,
    read_bvh,
    write_bvh,
)

TOL_DEG = 1e-4


def unusual_skeleton() -> Skeleton:
    """Every rotation order, position channels interleaved and on a non-root joint, a joint
    without channels, partial rotation channels, End Sites, names with ':' and spaces."""
    return Skeleton(
        (
            Joint(
                "mixamorig:Hips",
                -1,
                (1.0, 2.0, 3.0),
                ("Yrotation", "Xposition", "Zrotation", "Zposition", "Xrotation", "Yposition"),
            ),
            Joint("Spine", 0, (0.0, 10.0, -1.0), ("Xrotation", "Zrotation", "Yrotation")),
            Joint("Neck", 1, (0.0, 12.5, 0.25), ("Yrotation", "Xrotation", "Zrotation")),
            Joint(
                "Head Top", 2, (0.0, 8.0, 1.0), ("Zrotation", "Yrotation", "Xrotation"), (0, 5, 0)
            ),
            Joint("Left Arm", 1, (6.0, 9.0, 0.0), ("Xrotation", "Yrotation", "Zrotation")),
            Joint(
                "LeftForeArm",
                4,
                (11.0, 0.0, 0.0),
                ("Xposition", "Yposition", "Zposition", "Yrotation", "Zrotation", "Xrotation"),
            ),
            Joint("LeftHand", 5, (9.0, 0.0, 0.0), ("Zrotation", "Xrotation"), (4.0, 0.0, 0.5)),
            Joint("RightHip", 0, (-4.0, -2.0, 0.0), ()),
            Joint("RightKnee", 7, (0.0, -20.0, 0.0), ("Xrotation",)),
            Joint(
                "RightFoot",
                8,
                (0.0, -19.0, 1.0),
                ("Zrotation", "Xrotation", "Yrotation"),
                (0, -2, 8),
            ),
        )
    )


def random_clip(skeleton: Skeleton, n_frames: int = 37, seed: int = 0) -> MotionClip:
    rng = np.random.default_rng(seed)
    frames = rng.uniform(-720.0, 720.0, (n_frames, skeleton.n_channels))
    frames[3, :] = 0.0
    frames[4, :] = -0.0
    frames[5, :] = 1e-7  # rounds to 0 in the file: still within the tolerance
    return MotionClip(skeleton, frames, 1.0 / 120.0, "synthetic")


def assert_same_clip(a: MotionClip, b: MotionClip, tol: float = TOL_DEG) -> None:
    assert a.skeleton.structure() == b.skeleton.structure()
    np.testing.assert_allclose(a.skeleton.offsets(), b.skeleton.offsets(), atol=1e-6)
    assert [j.end_site is None for j in a.skeleton.joints] == [
        j.end_site is None for j in b.skeleton.joints
    ]
    for ja, jb in zip(a.skeleton.joints, b.skeleton.joints, strict=True):
        if ja.end_site is not None:
            np.testing.assert_allclose(ja.end_site, jb.end_site, atol=1e-6)  # type: ignore[arg-type]
    assert a.frames.shape == b.frames.shape
    assert np.abs(a.frames - b.frames).max() <= tol
    assert a.frame_time == pytest.approx(b.frame_time, rel=1e-9)


# ---- round trips --------------------------------------------------------------------------


def test_round_trip_unusual_channel_orders(tmp_path: Path) -> None:
    clip = random_clip(unusual_skeleton())
    p1 = write_bvh(tmp_path / "a.bvh", clip)
    back = read_bvh(p1)
    assert back.name == "a" and back.skeleton.names == clip.skeleton.names
    assert back.skeleton.channel_names() == clip.skeleton.channel_names()
    assert_same_clip(clip, back, tol=6e-7)
    # writing what was read gives the same bytes (a fixed point)
    p2 = write_bvh(tmp_path / "b.bvh", back)
    assert p1.read_bytes() == p2.read_bytes()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "no temp files left"


@pytest.mark.realdata
@pytest.mark.parametrize(
    ("key", "n_frames", "n_joints"), [("test_mocapbank", 455, 19), ("test_freebvh", 69, 55)]
)
def test_round_trip_real_files(
    bvh_fixtures: dict[str, Path], tmp_path: Path, key: str, n_frames: int, n_joints: int
) -> None:
    clip = read_bvh(bvh_fixtures[key])
    assert clip.n_frames == n_frames and len(clip.skeleton) == n_joints
    assert clip.skeleton.n_channels == 3 * n_joints + 3
    assert clip.fps == pytest.approx(30.0, rel=1e-4)
    # spot checks against the file's text: the first values of frame 0 and the hierarchy
    first_frame = next(
        line
        for line in bvh_fixtures[key].read_text().splitlines()
        if line.strip() and line.strip()[0] in "-0123456789"
    )
    np.testing.assert_array_equal(clip.frames[0, :5], [float(v) for v in first_frame.split()[:5]])
    back = read_bvh(write_bvh(tmp_path / f"{key}.bvh", clip))
    assert_same_clip(clip, back)
    # forward kinematics (what a viewer shows) agrees too
    fk_a = forward_kinematics(clip.skeleton, clip.frames, end_sites=True)
    fk_b = forward_kinematics(back.skeleton, back.frames, end_sites=True)
    assert np.abs(fk_a - fk_b).max() < 1e-4 * clip.skeleton.scale()


@pytest.mark.realdata
def test_mocapbank_structure(bvh_fixtures: dict[str, Path]) -> None:
    sk = read_bvh(bvh_fixtures["test_mocapbank"]).skeleton
    assert sk.root.name == "Hips"
    assert sk.root.channels == (
        "Xposition", "Yposition", "Zposition", "Zrotation", "Xrotation", "Yrotation",
    )  # fmt: skip
    chest = sk.joints[sk.index("Chest")]
    assert chest.parent == 0 and chest.offset == (-0.1728, 10.2870, 0.1254)
    wrist = sk.joints[sk.index("LeftWrist")]
    assert wrist.end_site == (1.4871, -13.9919, 1.1523)
    assert sk.joints[sk.index("LeftWrist")].rotation_order == "ZXY"
    assert sk.signature() == read_bvh(bvh_fixtures["test_mocapbank"]).skeleton.signature()


# ---- conventions --------------------------------------------------------------------------


def test_channels_are_intrinsic_rotations_in_file_order() -> None:
    """``Zrotation Xrotation Yrotation`` is R = Rz·Rx·Ry (intrinsic), as Blender/MotionBuilder read
    BVH. Worked by hand: Rz(90)·Rx(90) takes the child offset (0, 0, 1) to (1, 0, 0), whereas the
    extrinsic reading Rx(90)·Rz(90) would give (0, -1, 0)."""
    sk = Skeleton(
        (
            Joint("root", -1, (0, 0, 0), ("Zrotation", "Xrotation", "Yrotation")),
            Joint("tip", 0, (0, 0, 1), ()),
        )
    )
    pos = forward_kinematics(sk, np.array([[90.0, 90.0, 0.0]]))
    np.testing.assert_allclose(pos[0, 1], [1.0, 0.0, 0.0], atol=1e-12)
    # and in general it is scipy's upper-case (intrinsic) Euler convention
    angles = np.array([[30.0, -50.0, 120.0]])
    pos = forward_kinematics(sk, angles, return_rotations=True)[1]
    np.testing.assert_allclose(
        pos[0, 0], Rotation.from_euler("ZXY", angles[0], degrees=True).as_matrix(), atol=1e-14
    )


def test_position_channels_replace_offset_and_children_follow_parent() -> None:
    sk = Skeleton(
        (
            Joint("root", -1, (5, 5, 5), ("Xposition", "Zposition", "Yrotation")),
            Joint("child", 0, (1, 0, 0), ()),
        )
    )
    pos = forward_kinematics(sk, np.array([[10.0, -2.0, 90.0]]))
    np.testing.assert_allclose(pos[0, 0], [10.0, 5.0, -2.0])  # Y keeps the offset
    np.testing.assert_allclose(pos[0, 1], [10.0, 5.0, -3.0], atol=1e-12)  # Ry(90) x -> -z


# ---- malformed files ----------------------------------------------------------------------

GOOD = """HIERARCHY
ROOT Hips
{
  OFFSET 0 0 0
  CHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation
  JOINT Chest
  {
    OFFSET 0 10 0
    CHANNELS 3 Zrotation Xrotation Yrotation
    End Site
    {
      OFFSET 0 5 0
    }
  }
}
MOTION
Frames: 3
Frame Time: 0.0333333
0 90 0 1 2 3 4 5 6
1 91 0 1 2 3 4 5 6
2 92 0 1 2 3 4 5 6
"""


def test_good_minimal_file_parses(tmp_path: Path) -> None:
    p = tmp_path / "good.bvh"
    p.write_text(GOOD.replace("\n", "\r\n"))  # CRLF like the real fixtures
    clip = read_bvh(p)
    assert clip.frames.shape == (3, 9) and clip.frames[2, 1] == 92.0
    assert clip.skeleton.joints[1].end_site == (0.0, 5.0, 0.0)


LAST = "2 92 0 1 2 3 4 5 6\n"
TAIL = GOOD[GOOD.index("  }\n}\nMOTION") :]
CHEST_CHANNELS = "CHANNELS 3 Zrotation Xrotation Yrotation\n    End"

# (id, old text, new text, expected message): each replaces one piece of GOOD.
BAD = [
    ("truncated", LAST, "", r":\d+: truncated file: 'Frames: 3' \(line 17\) but only 2"),
    ("extra value", "1 91 0 1 2 3 4 5 6", "1 91 0 1 2 3 4 5 6 7", r":20: frame 1 has 10 values"),
    ("missing value", "1 91 0 1 2 3 4 5 6", "1 91 0 1 2 3 4 5", r":20: frame 1 has 8 values"),
    ("non-numeric", "2 92 0", "2 9x2 0", r":21: frame 2: '9x2' is not a number"),
    ("nan", "2 92 0", "2 nan 0", r":21: frame 2 has a non-finite value"),
    (
        "channel count",
        "CHANNELS 3 Zrotation",
        "CHANNELS 4 Zrotation",
        r":9: CHANNELS of joint 'Chest' says 4 channels but lists 3",
    ),
    (
        "unknown channel",
        CHEST_CHANNELS,
        CHEST_CHANNELS.replace("Xrotation", "Wrotation"),
        r":9: joint 'Chest': unknown channel name\(s\) \['Wrotation'\]",
    ),
    (
        "unknown keyword",
        "    OFFSET 0 10 0",
        "    OFFSETS 0 10 0",
        r":8: unknown keyword 'OFFSETS' in joint 'Chest'",
    ),
    (
        "offset values",
        "OFFSET 0 10 0",
        "OFFSET 0 ten 0",
        r":8: OFFSET of joint 'Chest': 'ten' is not a number",
    ),
    ("offset count", "OFFSET 0 10 0", "OFFSET 0 10", r":8: OFFSET of joint 'Chest': expected 3"),
    ("no hierarchy", "HIERARCHY", "HIERARCHIES", r":1: expected HIERARCHY"),
    ("unclosed", "  }\n}\nMOTION", "  }\nMOTION", r"joint 'Hips' is not closed before MOTION"),
    (
        "eof in hierarchy",
        TAIL,
        "",
        r":13: unexpected end of file, expected '}' closing joint 'Chest'",
    ),
    ("frames count", "Frames: 3", "Frames: three", r":17: expected 'Frames: N'"),
    ("frame time", "Frame Time: 0.0333333", "Frame Time: 0", r":18: expected 'Frame Time: t'"),
    ("too many frames", LAST, LAST + "3 93 0 1 2 3 4 5 6\n", r":22: more frame lines than"),
    ("duplicate joint", "JOINT Chest", "JOINT Hips", r"duplicate joint name 'Hips'"),
    ("joint without name", "JOINT Chest", "JOINT", r":6: expected 'JOINT <name>'"),
    ("missing offset", "    OFFSET 0 10 0\n", "", r":6: joint 'Chest' has no OFFSET"),
    ("second root", "MOTION", "ROOT Other\n{\n}\nMOTION", r"more than one ROOT"),
]


@pytest.mark.parametrize(("old", "new", "message"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_malformed_files_raise_clear_errors(
    tmp_path: Path, old: str, new: str, message: str
) -> None:
    p = tmp_path / "bad.bvh"
    assert old in GOOD
    p.write_text(GOOD.replace(old, new, 1))
    with pytest.raises(MotionFileError, match=message) as info:
        read_bvh(p)
    assert str(info.value).startswith(str(p))
    assert isinstance(info.value, ValueError)


# ---- the writer never leaves half a file --------------------------------------------------


def test_writer_rejects_bad_clips_and_writes_nothing(tmp_path: Path) -> None:
    clip = random_clip(unusual_skeleton(), n_frames=8)
    target = tmp_path / "out.bvh"
    clip.frames[2, 3] = np.nan
    with pytest.raises(ValueError, match="frame 2 has a non-finite value"):
        write_bvh(target, clip)
    clip.frames[2, 3] = 0.0
    clip.frames = clip.frames[:, :-1]  # wrong width, bypassing the constructor's check
    with pytest.raises(ValueError, match=r"frames must have shape \(T, "):
        write_bvh(target, clip)
    assert list(tmp_path.iterdir()) == []


def test_failed_write_keeps_previous_file_and_leaves_no_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clip = random_clip(unusual_skeleton(), n_frames=8)
    target = write_bvh(tmp_path / "out.bvh", clip)
    before = target.read_bytes()

    def boom(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(bvh_mod.np, "savetxt", boom)
    with pytest.raises(OSError, match="disk full"):
        write_bvh(target, random_clip(unusual_skeleton(), n_frames=8, seed=9))
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["out.bvh"]


def test_unknown_joint_lookup_is_a_clear_error() -> None:
    sk = unusual_skeleton()
    with pytest.raises(KeyError, match="no joint 'Tail'"):
        sk.index("Tail")
    with pytest.raises(KeyError, match="has no channel 'Xposition'"):
        sk.channel_index("Spine", "Xposition")
    with pytest.raises(ValueError, match="parents must come before"):
        Skeleton((Joint("a", -1, (0, 0, 0)), Joint("b", 5, (0, 0, 0))))
