"""Pictures of the body: stick-figure filmstrips (PNG) and animations (GIF) of motion clips.

From any :class:`~seqboltz.motion.MotionClip` (a BVH or ASF/AMC take read with
:mod:`seqboltz.motion`, or generated features turned back into a clip with
``MotionFeatures.inverse_transform``): forward kinematics gives the joints and End Sites, and
each frame is drawn as bones on a floor grid, with the root's ground-plane trail. Several
clips (e.g. real held-out motion beside generated motion) are drawn side by side, on one
length scale and one floor, so a figure that sinks, floats, tumbles or slides shows.

The camera is orthographic: it looks at the first clip from the side of its direction of
travel (30° off the perpendicular, 20° above the floor), in the rig's own right-handed axes,
so the body is upright and never mirrored. Left-side bones are blue, right-side bones red.

Torch-free: numpy, matplotlib (Agg backend) and pillow, imported when a picture is drawn.

>>> from seqboltz.motion import read_bvh
>>> from seqboltz.viz_motion import render_clips
>>> files = render_clips("out/walk", {"real": read_bvh("walk.bvh")})  # doctest: +SKIP
>>> files["filmstrip"], files["animation"]  # doctest: +SKIP
(PosixPath('out/walk_filmstrip.png'), PosixPath('out/walk.gif'))
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from seqboltz._io import atomic_path
from seqboltz.motion import MotionClip, Skeleton, forward_kinematics, read_bvh

__all__ = [
    "Body",
    "body_of",
    "draw_animation",
    "draw_filmstrip",
    "render_bvh",
    "render_clips",
]

_AXES = "xyz"
_LEFT, _RIGHT, _MIDDLE = "#1f5fbf", "#c0392b", "#222222"


@dataclass(frozen=True)
class Body:
    """Joint and End Site positions of a clip, ready to draw.

    Attributes:
        points: ``(T, P, 3)`` world positions (joints, then End Sites).
        bones: ``(E, 2)`` index pairs into ``points`` (parent, child).
        colours: ``E`` matplotlib colours (left blue, right red, middle dark).
        fps: frames per second.
    """

    points: np.ndarray
    bones: np.ndarray
    colours: tuple[str, ...]
    fps: float

    @property
    def root(self) -> np.ndarray:
        """``(T, 3)`` root positions."""
        return self.points[:, 0]


def _bare(name: str) -> str:
    """The joint name without a namespace (``mixamorig:LeftArm`` → ``leftarm``)."""
    return name.rsplit(":", 1)[-1].lower()


def _side(name: str, names: set[str]) -> str:
    """``"left"``, ``"right"`` or ``"middle"`` from a mirrored partner's existence."""
    low = _bare(name)
    for left, right in (("left", "right"), ("l_", "r_"), ("l", "r")):
        if low.startswith(left) and right + low[len(left) :] in names:
            return "left"
        if low.startswith(right) and left + low[len(right) :] in names:
            return "right"
    return "middle"


def _bones(skeleton: Skeleton) -> tuple[np.ndarray, tuple[str, ...]]:
    names = {_bare(n) for n in skeleton.names}
    colour = {"left": _LEFT, "right": _RIGHT, "middle": _MIDDLE}
    pairs: list[tuple[int, int]] = []
    colours: list[str] = []
    for i, j in enumerate(skeleton.joints):
        if j.parent >= 0:
            pairs.append((j.parent, i))
            colours.append(colour[_side(j.name, names)])
    tip = len(skeleton)
    for i, j in enumerate(skeleton.joints):
        if j.end_site is not None:
            pairs.append((i, tip))
            colours.append(colour[_side(j.name, names)])
            tip += 1
    return np.asarray(pairs, dtype=np.int64).reshape(-1, 2), tuple(colours)


def body_of(clip: MotionClip) -> Body:
    """Forward kinematics of every frame of ``clip`` (joints and End Sites) and its bones."""
    points = forward_kinematics(clip.skeleton, clip.frames, end_sites=True)
    bones, colours = _bones(clip.skeleton)
    return Body(np.asarray(points), bones, colours, clip.fps)


# ---- camera ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Camera:
    """Orthographic camera in the rig's axes: ground axes ``(g1, g2)`` and ``up`` in
    right-handed cyclic order, azimuth ``az`` of the viewer in the ground plane, elevation."""

    g1: int
    g2: int
    up: int
    az: float
    elevation: float
    floor: float

    def project(self, p: np.ndarray) -> np.ndarray:
        """``(..., 3)`` world → ``(..., 2)`` screen (x right, y up)."""
        a, b, h = p[..., self.g1], p[..., self.g2], p[..., self.up] - self.floor
        ca, sa = np.cos(self.az), np.sin(self.az)
        toward = ca * a + sa * b
        x = -sa * a + ca * b
        y = h * np.cos(self.elevation) - toward * np.sin(self.elevation)
        return np.stack([x, y], axis=-1)


def _camera(first: Body, up_axis: str, floor: float) -> _Camera:
    u = _AXES.index(up_axis.lower())
    g1, g2 = (u + 1) % 3, (u + 2) % 3
    ground = first.root[:, [g1, g2]]
    travel = ground - ground.mean(0)
    if np.abs(travel).max() > 1e-9:
        direction = np.linalg.svd(travel, full_matrices=False)[2][0]  # main direction of travel
    else:
        direction = np.array([0.0, 1.0])
    # the viewer stands on the perpendicular of the travel direction, 30° towards its start
    side = np.arctan2(direction[1], direction[0]) - np.pi / 2
    return _Camera(g1, g2, u, float(side + np.deg2rad(30.0)), float(np.deg2rad(20.0)), floor)


def _scene(bodies: Sequence[Body], up_axis: str) -> tuple[_Camera, float]:
    """One camera and one length scale (the first clip's standing height) for all clips."""
    u = _AXES.index(up_axis.lower())
    first = bodies[0]
    floor = float(np.quantile(first.points[..., u].min(1), 0.02))
    height = float(np.quantile(first.points[..., u].max(1), 0.5) - floor)
    if not height > 0:
        height = float(np.ptp(first.points[0], axis=0).max()) or 1.0
    return _camera(first, up_axis, floor), height


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _floor_segments(cam: _Camera, centre: np.ndarray, height: float) -> np.ndarray:
    """Projected floor grid lines ``(L, 2, 2)`` around ``centre`` (world ``(3,)``)."""
    step = height / 4.0
    c1 = np.round(centre[cam.g1] / step) * step
    c2 = np.round(centre[cam.g2] / step) * step
    ticks = np.arange(-4, 5) * step
    segs = []
    for t in ticks:
        for a0, a1, b0, b1 in (
            (c1 + t, c1 + t, c2 + ticks[0], c2 + ticks[-1]),
            (c1 + ticks[0], c1 + ticks[-1], c2 + t, c2 + t),
        ):
            p = np.zeros((2, 3))
            p[:, cam.g1] = (a0, a1)
            p[:, cam.g2] = (b0, b1)
            p[:, cam.up] = cam.floor
            segs.append(cam.project(p))
    return np.asarray(segs)


def _on_floor(cam: _Camera, root: np.ndarray) -> np.ndarray:
    trail = np.array(root, dtype=np.float64)
    trail[..., cam.up] = cam.floor
    return cam.project(trail)


class _Panel:
    """One axes showing one body, following its root (drawn root-relative on fixed limits, so
    an animation redraws only the moving artists); updated frame by frame."""

    def __init__(
        self,
        ax: Any,
        body: Body,
        cam: _Camera,
        height: float,
        label: str,
        animated: bool = False,
    ) -> None:
        from matplotlib.collections import LineCollection

        self.ax, self.body, self.cam, self.height = ax, body, cam, height
        self.screen = cam.project(body.points)  # (T, P, 2)
        self.trail = _on_floor(cam, body.root)  # (T, 2), the root's ground point on screen
        kw = {"animated": animated}
        self.floor = LineCollection([], colors="#d0d0d0", linewidths=0.6, zorder=1, **kw)
        self.bones = LineCollection([], colors=list(body.colours), linewidths=2.0, zorder=3, **kw)
        ax.add_collection(self.floor)
        ax.add_collection(self.bones)
        (self.past,) = ax.plot([], [], color="#e69f00", lw=1.2, zorder=2, **kw)
        (self.future,) = ax.plot([], [], color="#e69f00", lw=0.6, alpha=0.35, zorder=2, **kw)
        ax.set_aspect("equal")
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_visible(False)
        ax.set_title(label, fontsize=9)
        ax.set_xlim(-0.6 * height, 0.6 * height)
        ax.set_ylim(-0.3 * height, 1.2 * height)

    @property
    def artists(self) -> list[Any]:
        return [self.floor, self.past, self.future, self.bones]

    def show(self, t: int) -> None:
        body, cam, h = self.body, self.cam, self.height
        centre = self.trail[t]
        self.floor.set_segments(list(_floor_segments(cam, body.root[t], h) - centre))
        self.bones.set_segments(list(self.screen[t][body.bones] - centre))
        past, future = self.trail[: t + 1] - centre, self.trail[t:] - centre
        self.past.set_data(past[:, 0], past[:, 1])
        self.future.set_data(future[:, 0], future[:, 1])


def _bodies(clips: Mapping[str, MotionClip]) -> tuple[list[str], list[Body]]:
    if not clips:
        raise ValueError("no clip to draw")
    labels = list(clips)
    return labels, [body_of(clips[k]) for k in labels]


def draw_filmstrip(
    path: str | Path,
    clips: Mapping[str, MotionClip],
    *,
    n_frames: int = 8,
    seconds: float | None = None,
    up_axis: str = "y",
    title: str = "",
) -> Path:
    """A stick-figure filmstrip PNG: one row per clip, ``n_frames`` evenly spaced columns.

    Args:
        path: PNG to write (atomically).
        clips: ``{label: clip}``, e.g. ``{"real (held out)": ..., "CRBM": ...}``; the first
            sets the camera, the floor and the scale.
        n_frames: columns.
        seconds: span shown from each clip's start (default: the shortest clip).
        up_axis: the rig's vertical axis.
        title: figure title.

    Returns:
        ``path``.
    """
    if n_frames < 1:
        raise ValueError(f"n_frames must be >= 1, got {n_frames}")
    labels, bodies = _bodies(clips)
    cam, height = _scene(bodies, up_axis)
    plt = _pyplot()
    rows = len(bodies)
    fig, axes = plt.subplots(
        rows, n_frames, figsize=(1.6 * n_frames, 2.1 * rows + 0.5), squeeze=False
    )
    for r, (label, body) in enumerate(zip(labels, bodies, strict=True)):
        if seconds is None:
            span = min(b.points.shape[0] for b in bodies)
        else:
            span = round(seconds * body.fps)
        span = max(1, min(span, body.points.shape[0]))
        times = np.linspace(0, span - 1, n_frames).round().astype(int)
        for c, t in enumerate(times):
            panel = _Panel(axes[r, c], body, cam, height, f"{t / body.fps:.1f} s")
            panel.show(int(t))
        axes[r, 0].set_ylabel(label, fontsize=9)
        axes[r, 0].yaxis.set_visible(True)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, path, ".png")


def draw_animation(
    path: str | Path,
    clips: Mapping[str, MotionClip],
    *,
    seconds: float = 10.0,
    fps: float = 15.0,
    up_axis: str = "y",
    title: str = "",
) -> Path:
    """An animated GIF with the clips side by side, each panel following its root.

    Args:
        path: GIF to write (atomically).
        clips: ``{label: clip}``; the first sets the camera, the floor and the scale.
        seconds: length shown (clips that end sooner hold their last frame).
        fps: frames per second of the GIF (each clip is sampled at its own frame rate).
        up_axis: the rig's vertical axis.
        title: figure title.

    Returns:
        ``path``.
    """
    if not seconds > 0 or not fps > 0:
        raise ValueError(f"seconds and fps must be > 0, got {seconds}, {fps}")
    from PIL import Image

    labels, bodies = _bodies(clips)
    cam, height = _scene(bodies, up_axis)
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(bodies), figsize=(2.8 * len(bodies), 3.6), squeeze=False)
    panels = [
        _Panel(ax, b, cam, height, label, animated=True)
        for ax, b, label in zip(axes[0], bodies, labels, strict=True)
    ]
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    canvas = fig.canvas
    canvas.draw()  # titles and empty axes once; each frame redraws only the moving artists
    background = canvas.copy_from_bbox(fig.bbox)
    longest = max(b.points.shape[0] / b.fps for b in bodies)
    n = max(1, int(min(seconds, longest) * fps))
    images: list[Any] = []
    for i in range(n):
        canvas.restore_region(background)
        for p in panels:
            p.show(min(round(i / fps * p.body.fps), p.body.points.shape[0] - 1))
            for artist in p.artists:
                p.ax.draw_artist(artist)
        rgb = Image.fromarray(np.asarray(canvas.buffer_rgba())[..., :3])
        images.append(rgb.quantize(colors=64, method=Image.Quantize.FASTOCTREE))
    plt.close(fig)
    target = Path(path)
    with atomic_path(target, suffix=".gif") as tmp:
        images[0].save(
            tmp,
            format="GIF",
            save_all=True,
            append_images=images[1:],
            duration=round(1000 / fps),
            loop=0,
        )
    return target


def _save(fig: Any, path: str | Path, suffix: str) -> Path:
    target = Path(path)
    with atomic_path(target, suffix=suffix) as tmp:
        fig.savefig(tmp, dpi=100, format=suffix.lstrip("."))
    _pyplot().close(fig)
    return target


def render_clips(
    prefix: str | Path,
    clips: Mapping[str, MotionClip],
    *,
    up_axis: str = "y",
    seconds: float = 10.0,
    n_frames: int = 8,
    gif_fps: float = 15.0,
    title: str = "",
) -> dict[str, Path]:
    """Both pictures of ``clips`` side by side: ``{prefix}_filmstrip.png`` (the first
    ``seconds``) and ``{prefix}.gif``.

    This is the function ``synthesize --plot``, ``evaluate`` and the demo call.

    Args:
        prefix: output path without extension (folders are created).
        clips: ``{label: clip}``, real first (it sets camera, floor and scale).
        up_axis: the rig's vertical axis.
        seconds: span shown in both.
        n_frames: filmstrip columns.
        gif_fps: animation frame rate.
        title: title of both pictures.

    Returns:
        ``{"filmstrip": png, "animation": gif}``.
    """
    base = Path(prefix)
    shortest = min(c.n_frames / c.fps for c in clips.values()) if clips else 0.0
    return {
        "filmstrip": draw_filmstrip(
            base.with_name(base.name + "_filmstrip.png"),
            clips,
            n_frames=n_frames,
            seconds=min(seconds, shortest),
            up_axis=up_axis,
            title=title,
        ),
        "animation": draw_animation(
            base.with_name(base.name + ".gif"),
            clips,
            seconds=seconds,
            fps=gif_fps,
            up_axis=up_axis,
            title=title,
        ),
    }


def render_bvh(
    prefix: str | Path,
    bvh_files: Sequence[str | Path],
    labels: Sequence[str] | None = None,
    *,
    up_axis: str = "y",
    seconds: float = 10.0,
) -> dict[str, Path]:
    """:func:`render_clips` of BVH files (e.g. a real clip, then generated ones).

    Args:
        prefix: output path without extension.
        bvh_files: BVH paths; the first sets camera, floor and scale.
        labels: panel labels (default: the file stems).
        up_axis: the rig's vertical axis (``"y"`` for BVH).
        seconds: span shown.

    Raises:
        ValueError: no file, or as many labels as files not given.
        seqboltz.motion.MotionFileError: a malformed BVH (naming the file and line).
    """
    if not bvh_files:
        raise ValueError("render_bvh needs at least one BVH file")
    names = [Path(p).stem for p in bvh_files] if labels is None else list(labels)
    if len(names) != len(bvh_files):
        raise ValueError(f"{len(names)} labels for {len(bvh_files)} BVH files")
    clips = {name: read_bvh(p) for name, p in zip(names, bvh_files, strict=True)}
    return render_clips(prefix, clips, up_axis=up_axis, seconds=seconds)
