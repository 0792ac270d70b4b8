"""Frame-rate conversion of motion clips: any source rate to any target rate.

A target frame at time ``τ`` falls between source frames ``i`` and ``i + 1``
(``s = τ · fps_source``, ``i = ⌊s⌋``, ``a = s - i``). Position channels are interpolated
linearly; every joint's local rotation is interpolated on the sphere of unit quaternions
(slerp, Shoemake 1985, "Animating rotation with quaternion curves"), so a joint near 180° or a
root turning through ±180° moves along the short arc instead of through the Euler angles' wrap.
Where ``a`` is 0 (up to rounding) the source frame is copied exactly, so integer reductions
(120 → 30 fps) keep the captured values, as Taylor, Hinton & Roweis (2007) do.

:func:`resample_phases` gives every captured frame a use: a reduction by about ``n`` gives
``n`` clips whose first frames are ``j / (n · fps)`` seconds apart (120 → 30 fps: the four
phase copies 0-3 of Taylor et al.; 50 → 30 fps: two copies, one of them interpolated).

Euler channel values of interpolated frames are chosen (modulo 360°) next to the source frame
before them, so written BVH channels stay continuous where the source's are.
"""

from __future__ import annotations

import math

import numpy as np

from seqboltz.motion._rotations import (
    matrix_to_euler,
    matrix_to_quaternion,
    quaternion_slerp,
    quaternion_to_matrix,
)
from seqboltz.motion._skeleton import ROTATION_CHANNELS, MotionClip, local_rotations

__all__ = ["effective_fps", "resample_clip", "resample_phases"]

_SNAP_TOL = 1e-2  # a BVH "Frame Time: .0083333" is 120 fps, not 120.0005


def effective_fps(source_fps: float, target_fps: float) -> float:
    """``source_fps``, snapped to a whole multiple (or divisor) of ``target_fps`` when it is
    within 1 % of a frame of one (BVH files round their frame time, e.g. 0.0083333 s)."""
    if not (source_fps > 0 and target_fps > 0 and math.isfinite(source_fps)):
        raise ValueError(f"frame rates must be finite and > 0, got {source_fps} and {target_fps}")
    ratio = source_fps / target_fps
    for r in (ratio, 1.0 / ratio):
        k = round(r)
        if k >= 1 and abs(r - k) <= _SNAP_TOL:
            return float(target_fps * k) if r is ratio else float(target_fps / k)
    return float(source_fps)


def resample_clip(
    clip: MotionClip, fps: float, start: float = 0.0, name: str | None = None
) -> MotionClip:
    """The clip sampled at ``fps`` from ``start`` seconds to its last frame.

    Args:
        clip: the source clip (any frame rate).
        fps: target frame rate (> 0), e.g. 30.
        start: time of the first target frame in seconds from the first source frame
            (``0 <= start``).
        name: name of the result (default the clip's).

    Returns:
        A clip of the same skeleton with frame time ``1 / fps`` and
        ``⌊(duration - start) · fps⌋ + 1`` frames (``duration = (T - 1) / clip.fps``); empty
        if ``start`` is past the end.
    """
    if not fps > 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    if not start >= 0:
        raise ValueError(f"start must be >= 0, got {start}")
    src = effective_fps(clip.fps, fps)
    n_src = clip.n_frames
    last = n_src - 1
    # positions in source frames of the target frames
    n_out = math.floor((last / src - start) * fps + 1e-6) + 1 if n_src else 0
    n_out = max(n_out, 0)
    s = (start + np.arange(n_out) / fps) * src
    i0 = np.clip(np.floor(s + 1e-6).astype(np.int64), 0, max(last, 0))
    a = np.clip(s - i0, 0.0, 1.0)
    a[a < 1e-6] = 0.0
    i1 = np.minimum(i0 + 1, last)
    f0, f1 = clip.frames[i0], clip.frames[i1]
    out = f0.copy()
    interp = a > 0.0
    if np.any(interp):
        sk = clip.skeleton
        w = a[interp]
        out[interp] = f0[interp] + w[:, None] * (f1[interp] - f0[interp])  # positions
        rot0 = local_rotations(sk, f0[interp])
        rot1 = local_rotations(sk, f1[interp])
        q = quaternion_slerp(matrix_to_quaternion(rot0), matrix_to_quaternion(rot1), w[:, None])
        mats = quaternion_to_matrix(q)
        for j, joint in enumerate(sk.joints):
            order = joint.rotation_order
            if not order:
                continue
            sl = sk.channel_slice(j)
            cols = [sl.start + k for k, c in enumerate(joint.channels) if c in ROTATION_CHANNELS]
            deg = np.rad2deg(matrix_to_euler(mats[:, j], order))
            ref = f0[interp][:, cols]
            out[np.flatnonzero(interp)[:, None], cols] = ref + (
                np.mod(deg - ref + 180.0, 360.0) - 180.0
            )
    return MotionClip(clip.skeleton, out, 1.0 / fps, clip.name if name is None else name)


def resample_phases(clip: MotionClip, fps: float) -> list[MotionClip]:
    """All phase copies of a clip at ``fps`` (see the module docstring).

    Args:
        clip: the source clip.
        fps: the target frame rate.

    Returns:
        ``n = max(1, round(clip.fps / fps))`` clips; with ``n > 1`` they are named
        ``"<name>@<j>"`` and copy ``j`` starts ``j / (n · fps)`` seconds in (for an integer
        reduction: source frames ``j, j + n, j + 2n, …`` exactly). Copies that would have no
        frame are left out.
    """
    src = effective_fps(clip.fps, fps)
    n = max(1, round(src / fps))
    if n == 1:
        return [resample_clip(clip, fps)]
    parts = [
        resample_clip(clip, fps, start=j / (n * fps), name=f"{clip.name}@{j}") for j in range(n)
    ]
    return [p for p in parts if p.n_frames]
