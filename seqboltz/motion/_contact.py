"""Foot contacts and footskate cleanup: planted feet stay where they were planted.

Why. A generated clip's feet slide while they stand on the floor: on the CMU test clips the
models' feet move at 53–64 rig units a second in contact where real people's move at 10
(``benchmarks/RESULTS.md``). About half of it is the frame-by-frame noise of the sampler
reaching the toes through the leg's joint angles, the other half a root velocity that does not
agree with the planted foot. Neither is a thing a Gaussian next-frame model holds: a planted
foot is a constraint on the pose that switches on and off with the contact. Animation pipelines
remove it after generation, as they do for captured motion (Kovar, Schreiner & Gleicher 2002,
"Footskate cleanup for motion capture editing").

What. :func:`plant_feet` is that cleanup, for any rig whose joints name their feet:

1. **Contacts.** A foot joint (``foot``, ``toe`` or ``ankle`` in its name,
   :func:`foot_joints`) is in contact over a step when it is below ``floor + threshold`` at both
   ends (the rule the evaluation's foot-skating measure uses); by default each joint's floor is
   a low percentile of its own height over the clip and the threshold 5 % of the figure's
   stature (:func:`contact_floor`).
2. **Root.** The root's ground-plane path is moved by minus the mean ground-plane
   displacement of the joints in contact, averaged over ``root_window`` steps, so that the body
   travels with its planted feet instead of past them (the average: a foot's frame-to-frame
   jitter is the legs' to remove, not the whole body's).
3. **Legs.** For each leg (a top foot joint, its parent and grandparent: ankle, knee, hip), the
   ground-plane position of each foot joint in contact is held where its contact began (a
   toe on the floor while the heel rises is held, the rising ankle is not),
   and held again where it is once the generated foot has slid more than ``reach`` from there
   (so no target is out of the leg's reach); the hold fades in and out over ``blend_frames``
   frames. The leg's rotation channels (hip, knee and ankle, whatever channels the rig gives
   them) are solved for those targets by damped Gauss–Newton on the channel values, so a
   one-axis knee stays one-axis, heights are kept as generated, and a frame the solver cannot
   improve keeps its pose.

Everything is numpy on the clip's channels (no torch), so it runs wherever a BVH is written.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from seqboltz.motion._skeleton import (
    POSITION_CHANNELS,
    ROTATION_CHANNELS,
    MotionClip,
    Skeleton,
    forward_kinematics,
)

__all__ = [
    "CONTACT_FRACTION",
    "FOOT_WORDS",
    "PlantReport",
    "check_plantable",
    "contact_floor",
    "contact_speed",
    "foot_contacts",
    "foot_joints",
    "ground_axes",
    "plant_feet",
    "stature",
]

#: a joint whose name contains one of these (any case) is a foot joint
FOOT_WORDS = ("foot", "toe", "ankle")
#: a foot joint within this fraction of the stature above its floor touches it
CONTACT_FRACTION = 0.05
_AXES = "xyz"


def foot_joints(names: Sequence[str]) -> list[int]:
    """Indices of the joints whose name contains ``foot``, ``toe`` or ``ankle`` (any case):
    ``LeftFoot``/``LeftToeBase`` (BVH), ``lfoot``/``ltoes`` (CMU ASF), ``l_ankle``."""
    return [i for i, n in enumerate(names) if any(w in n.lower() for w in FOOT_WORDS)]


def ground_axes(up_axis: str) -> tuple[int, int, int]:
    """``(g1, g2, up)`` indices in cyclic (right-handed) order: y-up → (z, x, y)."""
    if up_axis.lower() not in _AXES or len(up_axis) != 1:
        raise ValueError(f"up_axis must be 'x', 'y' or 'z', got {up_axis!r}")
    u = _AXES.index(up_axis.lower())
    return (u + 1) % 3, (u + 2) % 3, u


def stature(heights: np.ndarray, quantile: float = 0.02) -> float:
    """The figure's standing height: the median highest joint above the ``quantile`` of the
    lowest, from ``heights (N, J)`` of every joint in ``N`` frames."""
    h = np.asarray(heights, dtype=np.float64)
    if h.ndim != 2 or h.shape[0] < 1:
        raise ValueError(f"heights must be (N >= 1, J); got {h.shape}")
    return float(np.median(h.max(1)) - np.quantile(h.min(1), quantile))


def contact_floor(
    heights: np.ndarray, feet: Sequence[int], quantile: float = 0.02
) -> tuple[np.ndarray, float]:
    """Each foot joint's floor and the contact tolerance, from real or generated frames: the
    floor is the ``quantile`` of the joint's height (ankles rest higher than toes), the
    tolerance 5 % of the :func:`stature`.

    Args:
        heights: ``(N, J)`` every joint's height in ``N`` frames.
        feet: indices of the foot joints (:func:`foot_joints`).
        quantile: the low percentile that counts as the floor.

    Returns:
        ``(floor (F,), threshold)``; the threshold is 1 length unit for a flat figure.
    """
    tall = stature(heights, quantile)
    floor = np.quantile(np.asarray(heights, dtype=np.float64)[:, list(feet)], quantile, axis=0)
    return floor.reshape(len(feet)), (CONTACT_FRACTION * tall if tall > 0 else 1.0)


def foot_contacts(heights: np.ndarray, floor: np.ndarray, threshold: float) -> np.ndarray:
    """``(..., T-1, F)`` steps in contact: the joint is below ``floor + threshold`` at both ends.

    Args:
        heights: ``(..., T, F)`` the foot joints' heights.
        floor: ``(F,)`` each joint's floor.
        threshold: tolerance above the floor.
    """
    low = np.asarray(heights) < np.asarray(floor) + threshold
    return np.asarray(low[..., 1:, :] & low[..., :-1, :])


@dataclass(frozen=True)
class PlantReport:
    """What :func:`plant_feet` did.

    Attributes:
        feet: names of the foot joints.
        legs: per leg, the names of the joints whose channels were solved (hip, knee, ankle).
        contact_fraction: share of (step, foot joint) pairs in contact.
        skating_before: mean ground-plane speed of foot joints in contact, length units per
            second, before the cleanup.
        skating_after: the same after it (the same contacts: heights are kept).
        max_root_shift: largest ground-plane distance the root was moved.
        max_residual: largest distance left between a held joint and its target.
    """

    feet: tuple[str, ...]
    legs: tuple[tuple[str, ...], ...]
    contact_fraction: float
    skating_before: float
    skating_after: float
    max_root_shift: float
    max_residual: float


def contact_speed(
    feet: np.ndarray, contact: np.ndarray, ground: Sequence[int], fps: float
) -> float:
    """Mean ground-plane speed of foot joints over the steps they are in contact.

    Args:
        feet: ``(..., T, F, 3)`` world positions of ``F`` foot joints.
        contact: ``(..., T-1, F)`` steps in contact (:func:`foot_contacts`).
        ground: the two ground-plane axes (:func:`ground_axes`).
        fps: frames per second.

    Returns:
        Length units per second; 0 with no contact step.
    """
    step = np.diff(feet, axis=-3)[..., list(ground)]
    speed = np.linalg.norm(step, axis=-1) * fps
    n = int(contact.sum())
    return float(speed[contact].sum() / n) if n else 0.0


def check_plantable(skeleton: Skeleton, up_axis: str = "y") -> tuple[list[int], dict[int, int]]:
    """What :func:`plant_feet` needs of a rig: joints that name their feet and a root with
    ground-plane position channels to move.

    Returns:
        ``(foot joints, {ground axis: the root's channel column})``.

    Raises:
        ValueError: one line saying which is missing.
    """
    feet = foot_joints(skeleton.names)
    if not feet:
        raise ValueError(f"no joint of its skeleton names a foot ({'/'.join(FOOT_WORDS)})")
    g1, g2, _up = ground_axes(up_axis)
    root_cols = {
        POSITION_CHANNELS.index(c): skeleton.channel_slice(0).start + k
        for k, c in enumerate(skeleton.root.channels)
        if c in POSITION_CHANNELS
    }
    if not all(a in root_cols for a in (g1, g2)):
        raise ValueError(
            f"the root has no {'/'.join('XYZ'[a] for a in (g1, g2))} position channels to move"
        )
    return feet, root_cols


def _legs(skeleton: Skeleton, feet: list[int]) -> list[tuple[list[int], list[int]]]:
    """``[(chain joints [hip, knee, ankle], foot joints of that leg)]``: the top foot joint of
    each group of foot joints, with its parent and grandparent."""
    parents, in_feet = skeleton.parents, set(feet)
    groups: dict[int, list[int]] = {}
    for j in feet:
        top = j
        while parents[top] >= 0 and parents[top] in in_feet:
            top = parents[top]
        groups.setdefault(top, []).append(j)
    legs = []
    for top, members in groups.items():
        chain = [top]
        for _ in range(2):
            if parents[chain[0]] <= 0:  # never the root: it carries the whole body
                break
            chain.insert(0, parents[chain[0]])
        legs.append((chain, sorted(members)))
    return legs


def _fade(held: np.ndarray, gap: np.ndarray, blend: int) -> np.ndarray:
    """Per frame, the offset to add to one joint: ``gap (T, 3)`` in held frames; elsewhere the
    nearest held frame's, faded linearly to 0 over ``blend`` frames."""
    idx = np.flatnonzero(held)
    if idx.size == 0:
        return np.zeros_like(gap)
    t = np.arange(held.size)
    at = np.searchsorted(idx, t)
    left, right = idx[np.clip(at - 1, 0, idx.size - 1)], idx[np.clip(at, 0, idx.size - 1)]
    nearest = np.where(np.abs(t - left) <= np.abs(right - t), left, right)
    weight = np.clip(1.0 - np.abs(t - nearest) / (blend + 1), 0.0, 1.0)
    return np.asarray(gap[nearest] * weight[:, None])


def _steady(mask: np.ndarray, min_run: int) -> np.ndarray:
    """A contact mask without flicker: gaps shorter than ``min_run`` frames filled, then runs
    shorter than it dropped (a generated foot hovering at the tolerance toggles every frame,
    and each toggle would start and end a hold)."""
    out = mask.copy()
    if min_run <= 1:
        return out
    for value in (False, True):  # fill short gaps, then drop short holds
        member = np.concatenate([[0], (out == value).astype(np.int8), [0]])
        edges = np.flatnonzero(np.diff(member))
        for start, stop in zip(edges[::2], edges[1::2], strict=True):
            inner = start > 0 and stop < out.size  # a gap at the clip's edge is not a gap
            if stop - start < min_run and (value or inner):
                out[start:stop] = not value
    return out


def _moving_average(x: np.ndarray, window: int) -> np.ndarray:
    """Centred moving average of ``x (N, K)`` over ``window`` rows (near the ends, over the
    rows there are)."""
    if window <= 1:
        return x
    kernel = np.ones(window)
    count = np.convolve(np.ones(x.shape[0]), kernel, mode="same")
    return np.stack(
        [np.convolve(x[:, k], kernel, mode="same") / count for k in range(x.shape[1])], axis=1
    )


def _sticky_targets(ground_pos: np.ndarray, held: np.ndarray, reach: float) -> np.ndarray:
    """``(T, 2)`` ground-plane targets of one joint: while held it stays at its anchor, set
    where the hold starts and set again (to where the joint is) once the joint has moved more
    than ``reach`` from it, so no target is further than ``reach`` from the generated foot."""
    out = ground_pos.copy()
    anchor = ground_pos[0].copy()
    for t in range(ground_pos.shape[0]):
        starts = not held[t] or (t > 0 and not held[t - 1])
        if starts or np.linalg.norm(ground_pos[t] - anchor) > reach:
            anchor = ground_pos[t].copy()
        out[t] = anchor
    return out


def _solve_leg(
    skeleton: Skeleton,
    frames: np.ndarray,
    chain: list[int],
    joints: list[int],
    targets: np.ndarray,
    rows: np.ndarray,
    iterations: int,
    damping: float,
) -> np.ndarray:
    """Damped Gauss–Newton on the rotation channels of ``chain`` so that ``joints`` reach
    ``targets (R, K, 3)`` in frames ``rows``; returns the solved frames ``(R, C)``."""
    cols = [
        skeleton.channel_slice(i).start + k
        for i in chain
        for k, c in enumerate(skeleton.joints[i].channels)
        if c in ROTATION_CHANNELS
    ]
    f = frames[rows].copy()
    if not cols:
        return f
    start = f[:, cols].copy()
    step = 1e-3  # degrees, for the finite differences
    lam = damping * (180.0 / np.pi) ** -2  # penalty per squared degree (damping per rad²)
    eye = np.eye(len(cols))
    for _ in range(iterations):
        p = forward_kinematics(skeleton, f)[:, joints]
        r = (p - targets).reshape(len(rows), -1)
        jac = np.empty((len(rows), r.shape[1], len(cols)))
        for a, c in enumerate(cols):
            g = f.copy()
            g[:, c] += step
            jac[:, :, a] = ((forward_kinematics(skeleton, g)[:, joints] - p) / step).reshape(
                len(rows), -1
            )
        jtj = np.einsum("tka,tkb->tab", jac, jac) + lam * eye
        rhs = np.einsum("tka,tk->ta", jac, r) + lam * (f[:, cols] - start)
        f[:, cols] -= np.linalg.solve(jtj, rhs[..., None])[..., 0]
    return f


def plant_feet(
    clip: MotionClip,
    *,
    up_axis: str = "y",
    floor: np.ndarray | None = None,
    threshold: float | None = None,
    blend_frames: int = 4,
    iterations: int = 6,
    damping: float = 1e-3,
    reach: float | None = None,
    move_root: bool = True,
    root_window: int = 9,
    min_gap: int = 3,
) -> tuple[MotionClip, PlantReport]:
    """Footskate cleanup (see the module): the clip with its planted feet held still.

    Args:
        clip: a clip whose skeleton names its feet; its root has ground-plane position channels.
        up_axis: the world's vertical axis.
        floor: ``(F,)`` floor height of each foot joint (:func:`foot_joints` order); default
            from the clip itself (:func:`contact_floor`).
        threshold: contact tolerance above the floor; default 5 % of the clip's stature.
        blend_frames: frames over which a hold fades in before and out after a contact.
        iterations: Gauss–Newton iterations per leg.
        damping: pull of each channel towards its generated value, per squared radian.
        reach: farthest a held joint is pulled from where it was generated before its hold
            starts again where it is (default 4 × threshold, 20 % of the stature).
        move_root: move the root with the planted feet (step 2); ``False``: the legs only.
        root_window: steps over which the planted feet's slide is averaged before the root
            follows it (0.3 s at 30 fps): the root takes the drift, the legs the
            frame-to-frame jitter (followed step by step, the root shook 10× as much).
        min_gap: a leg's contact gaps shorter than this many frames are filled and its holds
            shorter than it dropped (no hold flickers on and off).

    Returns:
        ``(cleaned clip, report)``; the cleaned clip has the same skeleton, rate and name.
    """
    sk = clip.skeleton
    try:
        feet, root_cols = check_plantable(sk, up_axis)
    except ValueError as exc:
        raise ValueError(f"clip {clip.name!r}: {exc}") from None
    if clip.n_frames < 2:
        raise ValueError(f"clip {clip.name!r} has {clip.n_frames} frame(s); need at least 2")
    if not np.isfinite(clip.frames).all():
        raise ValueError(f"clip {clip.name!r} has NaN or infinite channel values")
    g1, g2, up = ground_axes(up_axis)
    ground = [g1, g2]
    if blend_frames < 0 or iterations < 1 or not damping >= 0 or root_window < 1:
        raise ValueError(
            "need blend_frames >= 0, iterations >= 1, damping >= 0 and root_window >= 1; got "
            f"{blend_frames}, {iterations}, {damping}, {root_window}"
        )
    frames = np.array(clip.frames, dtype=np.float64)
    pos = forward_kinematics(sk, frames)
    if floor is None or threshold is None:
        auto_floor, auto_threshold = contact_floor(pos[..., up], feet)
        floor = auto_floor if floor is None else floor
        threshold = auto_threshold if threshold is None else threshold
    floor = np.asarray(floor, dtype=np.float64).reshape(-1)
    if floor.shape != (len(feet),) or not float(threshold) > 0:
        raise ValueError(
            f"floor must give one height per foot joint ({len(feet)}) and threshold be > 0; "
            f"got {floor.shape}, {threshold}"
        )
    reach = 4.0 * float(threshold) if reach is None else float(reach)
    contact = foot_contacts(pos[:, feet, up], floor, float(threshold))  # (T-1, F)
    before = contact_speed(pos[:, feet], contact, ground, clip.fps)

    # 2. the root travels with the planted feet
    step = np.diff(pos[:, feet], axis=0)
    n = contact.sum(1)
    corr = np.zeros((frames.shape[0], 3))
    moved = (step * contact[..., None]).sum(1) / np.maximum(n, 1)[:, None]
    if move_root:  # the drift only: a frame's jitter stays with the legs, not the whole body
        drift = _moving_average(moved[:, ground], root_window)
        corr[1:, ground] = -np.cumsum(drift, axis=0)
    for a in ground:
        frames[:, root_cols[a]] += corr[:, a]
    pos = pos + corr[:, None, :]

    # 3. each leg's contact joints held at their anchors, the leg solved to reach them
    residual = 0.0
    legs = _legs(sk, feet)
    for chain, members in legs:
        gap = np.zeros((frames.shape[0], len(members), 3))
        for k, j in enumerate(members):  # each joint held only while it touches the floor
            step_contact = contact[:, feet.index(j)]
            held = np.zeros(frames.shape[0], dtype=bool)
            held[:-1] |= step_contact
            held[1:] |= step_contact
            held = _steady(held, min_gap)
            if held.any():
                goal_j = pos[:, j].copy()
                goal_j[:, ground] = _sticky_targets(pos[:, j][:, ground], held, reach)
                gap[:, k] = _fade(held, goal_j - pos[:, j], blend_frames)
        rows = np.flatnonzero(np.abs(gap).max(axis=(1, 2)) > 0)
        if rows.size == 0:
            continue
        goal = pos[rows][:, members] + gap[rows]
        solved = _solve_leg(sk, frames, chain, members, goal, rows, iterations, damping)
        got = forward_kinematics(sk, solved)[:, members]
        err = np.linalg.norm(got - goal, axis=-1).max(1)
        was = np.linalg.norm(pos[rows][:, members] - goal, axis=-1).max(1)
        better = err <= was  # a frame the solver could not improve keeps its pose
        frames[rows[better]] = solved[better]
        residual = max(residual, float(np.where(better, err, was).max()))
        pos = forward_kinematics(sk, frames)
    after = contact_speed(pos[:, feet], contact, ground, clip.fps)
    report = PlantReport(
        feet=tuple(sk.names[j] for j in feet),
        legs=tuple(tuple(sk.names[j] for j in chain) for chain, _ in legs),
        contact_fraction=float(contact.mean()),
        skating_before=before,
        skating_after=after,
        max_root_shift=float(np.linalg.norm(corr[:, ground], axis=-1).max()),
        max_residual=residual,
    )
    return MotionClip(sk, frames, clip.frame_time, clip.name), report
