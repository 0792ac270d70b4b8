"""Pictures of the body: bones, camera conventions, filmstrip PNG and GIF files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from seqboltz.motion import Joint, MotionClip, Skeleton, read_amc, read_asf, write_bvh
from seqboltz.viz_motion import _LEFT, _RIGHT, _Camera, _scene, body_of, render_bvh, render_clips

pytest.importorskip("matplotlib")
pytest.importorskip("PIL")

ROT = ("Zrotation", "Xrotation", "Yrotation")


def _walker(n: int = 40, up: str = "y") -> MotionClip:
    """A small y-up (or z-up) biped walking along its forward axis, legs swinging."""
    u = "xyz".index(up)
    fwd = (u + 1) % 3  # forward ground axis
    h = np.zeros(3)
    h[u] = 1.0

    def vec(up_: float, side: float = 0.0) -> tuple[float, float, float]:
        v = np.zeros(3)
        v[u] = up_
        v[(u + 2) % 3] = side
        return (float(v[0]), float(v[1]), float(v[2]))

    pos = tuple(f"{a.upper()}position" for a in "xyz")
    joints = (
        Joint("Hips", -1, (0, 0, 0), pos + ROT),
        Joint("Spine", 0, vec(0.5), ROT),
        Joint("Head", 1, vec(0.4), (), end_site=vec(0.2)),
        Joint("LeftUpLeg", 0, vec(0.0, 0.15), ROT),
        Joint("LeftFoot", 3, vec(-0.9), ROT, end_site=vec(-0.05)),
        Joint("RightUpLeg", 0, vec(0.0, -0.15), ROT),
        Joint("RightFoot", 5, vec(-0.9), ROT, end_site=vec(-0.05)),
    )
    sk = Skeleton(joints)
    frames = np.zeros((n, sk.n_channels))
    t = np.arange(n) / 30.0
    frames[:, fwd] = 1.2 * t  # walk forward at 1.2 units/s
    frames[:, u] = 0.95
    swing = 25 * np.sin(2 * np.pi * t)
    side = "XYZ"[(u + 2) % 3] + "rotation"  # legs swing about the sideways axis
    for leg, sign in (("LeftUpLeg", 1), ("RightUpLeg", -1)):
        frames[:, sk.channel_index(leg, side)] = sign * swing
    return MotionClip(sk, frames, 1 / 30.0, "walker")


def test_bones_join_every_joint_and_end_site_and_colour_the_sides() -> None:
    body = body_of(_walker())
    assert body.points.shape == (40, 7 + 3, 3)  # 7 joints + 3 End Sites
    assert body.bones.shape == (6 + 3, 2)
    names = [j.name for j in _walker().skeleton.joints]
    for (parent, child), colour in zip(body.bones, body.colours, strict=True):
        if child < 7:
            assert parent == _walker().skeleton.joints[child].parent
        joint = names[child] if child < 7 else None
        if joint == "LeftFoot":
            assert colour == _LEFT
        if joint == "RightFoot":
            assert colour == _RIGHT


@pytest.mark.parametrize("up", ["y", "z"])
def test_camera_is_upright_and_right_handed(up: str) -> None:
    u = "xyz".index(up)
    g1, g2 = (u + 1) % 3, (u + 2) % 3
    cam = _Camera(g1, g2, u, az=0.0, elevation=0.0, floor=0.0)
    e = np.eye(3)
    np.testing.assert_allclose(cam.project(e[g2]), [1, 0], atol=1e-12)  # screen right
    np.testing.assert_allclose(cam.project(e[u]), [0, 1], atol=1e-12)  # screen up
    np.testing.assert_allclose(cam.project(e[g1]), [0, 0], atol=1e-12)  # toward the viewer
    # (right × up) must point at the viewer (g1): a right-handed, unmirrored view
    assert np.allclose(np.cross(e[g2], e[u]), e[g1])
    # the walker's head is drawn above its feet, and its floor is at its feet
    body = body_of(_walker(up=up))
    cam, height = _scene([body], up)
    screen = cam.project(body.points)
    head_tip, foot_tips = 7, [8, 9]
    assert (screen[:, head_tip, 1] > screen[:, foot_tips, 1].max(1) + 0.5 * height).all()
    assert height == pytest.approx(2.05, abs=0.1)


def test_filmstrip_and_gif_are_written(tmp_path: Path) -> None:
    from PIL import Image

    real = _walker()
    generated = MotionClip(real.skeleton, real.frames[::-1].copy(), real.frame_time, "gen")
    files = render_clips(
        tmp_path / "pics" / "walk",
        {"real": real, "generated": generated},
        seconds=1.0,
        n_frames=4,
    )
    assert files["filmstrip"] == tmp_path / "pics" / "walk_filmstrip.png"
    with Image.open(files["filmstrip"]) as png:
        w, h = png.size
        pixels = np.asarray(png.convert("L"))
    assert w > 400 and h > 300
    assert (pixels < 100).mean() > 0.001  # bones are drawn
    with Image.open(files["animation"]) as gif:
        assert gif.n_frames == 15  # 1 s at 15 fps
        assert gif.size[0] > gif.size[1]  # two panels side by side
    assert not list((tmp_path / "pics").glob(".*"))  # no temporary file left behind


def test_render_bvh_reads_files_and_checks_labels(tmp_path: Path) -> None:
    path = write_bvh(tmp_path / "walk.bvh", _walker(20))
    files = render_bvh(tmp_path / "out", [path], seconds=0.5)
    assert files["filmstrip"].stat().st_size > 1000 and files["animation"].stat().st_size > 1000
    with pytest.raises(ValueError, match="labels"):
        render_bvh(tmp_path / "out", [path], labels=["a", "b"])
    with pytest.raises(ValueError, match="at least one"):
        render_bvh(tmp_path / "out", [])


@pytest.mark.realdata
def test_the_real_take_is_drawn_upright(tmp_path: Path) -> None:
    """On the CMU take (y up), the head is drawn above the feet in every frame."""
    from seqboltz.data import default_cache_dir, fetch_cmu_take

    asf, amc = fetch_cmu_take(default_cache_dir())
    clip = read_amc(amc, read_asf(asf), fps=120.0)
    clip = MotionClip(clip.skeleton, clip.frames[::4], 1 / 30.0, "cmu")
    body = body_of(clip)
    cam, height = _scene([body], "y")
    screen = cam.project(body.points)
    names = clip.skeleton.names
    head, feet = names.index("head"), [names.index("lfoot"), names.index("rfoot")]
    assert (screen[:, head, 1] > screen[:, feet, 1].max(1) + 0.5 * height).all()
    files = render_clips(tmp_path / "cmu", {"real": clip}, seconds=2.0)
    assert files["filmstrip"].stat().st_size > 5000
