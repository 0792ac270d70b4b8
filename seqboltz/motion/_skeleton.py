"""Skeletons (a BVH-style joint hierarchy) and motion clips, plus forward kinematics.

A :class:`Skeleton` is what a BVH ``HIERARCHY`` section describes: joints in depth-first file
order (every parent before its children), each with an offset from its parent in the parent's
rest frame, a tuple of channels (``Xposition``/``Yposition``/``Zposition`` and
``Xrotation``/``Yrotation``/``Zrotation`` in any order) and an optional End Site. A
:class:`MotionClip` holds one value per channel per frame, in BVH channel order, rotations in
degrees.

Kinematics (:func:`forward_kinematics`), the convention this package uses everywhere:

* a joint's local translation is its offset, with each position channel it has *replacing*
  that coordinate of the offset (so a root with ``Xposition Yposition Zposition`` sits at the
  channel values, as in Blender, MotionBuilder and bvhio);
* its local rotation is the product of its rotation channels in file order, as intrinsic
  rotations (``Zrotation Xrotation Yrotation`` → ``Rz @ Rx @ Ry``; see
  :mod:`seqboltz.motion._rotations`);
* ``G_j = G_parent @ [R_j | t_j]``: a child's position is ``p_parent + R_parent_global @ t_j``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from seqboltz.motion._rotations import euler_to_matrix

__all__ = [
    "POSITION_CHANNELS",
    "ROTATION_CHANNELS",
    "Joint",
    "MotionClip",
    "Skeleton",
    "forward_kinematics",
]

POSITION_CHANNELS = ("Xposition", "Yposition", "Zposition")
ROTATION_CHANNELS = ("Xrotation", "Yrotation", "Zrotation")
_VALID_CHANNELS = frozenset(POSITION_CHANNELS + ROTATION_CHANNELS)

Vec3 = tuple[float, float, float]


def _vec3(x: Sequence[float] | np.ndarray, what: str) -> Vec3:
    a = np.asarray(x, dtype=np.float64).reshape(-1)
    if a.shape != (3,) or not np.all(np.isfinite(a)):
        raise ValueError(f"{what} must be 3 finite numbers, got {x!r}")
    return (float(a[0]), float(a[1]), float(a[2]))


@dataclass(frozen=True)
class Joint:
    """One joint of a hierarchy.

    Args:
        name: unique joint name (no whitespace at either end, no braces or line breaks).
        parent: index of the parent joint in :attr:`Skeleton.joints`, ``-1`` for the root.
        offset: ``(3,)`` translation from the parent joint, in the parent's rest frame.
        channels: channel names in file order, each one of ``Xposition Yposition Zposition
            Xrotation Yrotation Zrotation`` at most once.
        end_site: ``(3,)`` offset of an End Site (the tip of a leaf bone), or ``None``.
    """

    name: str
    parent: int
    offset: Vec3
    channels: tuple[str, ...] = ()
    end_site: Vec3 | None = None

    def __post_init__(self) -> None:
        if not self.name or self.name != self.name.strip() or any(c in self.name for c in "{}\n\r"):
            raise ValueError(f"invalid joint name {self.name!r}")
        object.__setattr__(self, "offset", _vec3(self.offset, f"offset of joint {self.name!r}"))
        if self.end_site is not None:
            object.__setattr__(
                self, "end_site", _vec3(self.end_site, f"End Site of joint {self.name!r}")
            )
        channels = tuple(self.channels)
        unknown = [c for c in channels if c not in _VALID_CHANNELS]
        if unknown:
            raise ValueError(
                f"joint {self.name!r}: unknown channel names {unknown}; expected some of "
                f"{POSITION_CHANNELS + ROTATION_CHANNELS}"
            )
        if len(set(channels)) != len(channels):
            raise ValueError(f"joint {self.name!r}: repeated channels {channels}")
        object.__setattr__(self, "channels", channels)

    @property
    def rotation_order(self) -> str:
        """Axes of the rotation channels in file order, e.g. ``"ZXY"`` (``""`` if none)."""
        return "".join(c[0] for c in self.channels if c in ROTATION_CHANNELS)

    @property
    def position_channels(self) -> tuple[str, ...]:
        """The position channels in file order."""
        return tuple(c for c in self.channels if c in POSITION_CHANNELS)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable description."""
        return {
            "name": self.name,
            "parent": self.parent,
            "offset": list(self.offset),
            "channels": list(self.channels),
            "end_site": None if self.end_site is None else list(self.end_site),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Joint:
        return cls(
            name=str(d["name"]),
            parent=int(d["parent"]),
            offset=tuple(d["offset"]),
            channels=tuple(d["channels"]),
            end_site=None if d.get("end_site") is None else tuple(d["end_site"]),
        )


@dataclass(frozen=True)
class Skeleton:
    """A joint hierarchy; ``joints[0]`` is the root and every parent comes before its children.

    Args:
        joints: the joints in depth-first (BVH file) order.
    """

    joints: tuple[Joint, ...]
    _index: dict[str, int] = field(init=False, repr=False, compare=False)
    _offsets: tuple[int, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        joints = tuple(self.joints)
        object.__setattr__(self, "joints", joints)
        if not joints:
            raise ValueError("a skeleton needs at least one joint")
        index: dict[str, int] = {}
        for i, j in enumerate(joints):
            if not isinstance(j, Joint):
                raise TypeError(f"joints must be Joint objects, got {type(j).__name__}")
            if j.name in index:
                raise ValueError(f"duplicate joint name {j.name!r}")
            if i == 0 and j.parent != -1:
                raise ValueError(f"the first joint {j.name!r} must be the root (parent -1)")
            if i > 0 and not 0 <= j.parent < i:
                raise ValueError(
                    f"joint {j.name!r} (index {i}) has parent {j.parent}; parents must come "
                    "before their children and only the first joint is a root"
                )
            index[j.name] = i
        starts = [0]
        for j in joints:
            starts.append(starts[-1] + len(j.channels))
        object.__setattr__(self, "_index", index)
        object.__setattr__(self, "_offsets", tuple(starts))

    # ---- structure -----------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.joints)

    @property
    def root(self) -> Joint:
        return self.joints[0]

    @property
    def names(self) -> list[str]:
        return [j.name for j in self.joints]

    @property
    def parents(self) -> list[int]:
        return [j.parent for j in self.joints]

    def index(self, name: str) -> int:
        """Index of the joint called ``name`` (``KeyError`` naming the known joints if absent)."""
        try:
            return self._index[name]
        except KeyError:
            raise KeyError(f"no joint {name!r} in the skeleton") from None

    def children(self, i: int) -> list[int]:
        return [k for k, j in enumerate(self.joints) if j.parent == i]

    @property
    def n_channels(self) -> int:
        return self._offsets[-1]

    def channel_slice(self, i: int) -> slice:
        """Columns of joint ``i``'s channels in a frame."""
        return slice(self._offsets[i], self._offsets[i + 1])

    def channel_index(self, joint: str | int, channel: str) -> int:
        """Column of one channel of one joint."""
        i = self.index(joint) if isinstance(joint, str) else joint
        j = self.joints[i]
        if channel not in j.channels:
            raise KeyError(f"joint {j.name!r} has no channel {channel!r} (has {j.channels})")
        return self._offsets[i] + j.channels.index(channel)

    def channel_names(self) -> list[str]:
        """``"joint.channel"`` for every column of a frame, e.g. ``"Hips.Xposition"``."""
        return [f"{j.name}.{c}" for j in self.joints for c in j.channels]

    # ---- comparison ----------------------------------------------------------------------
    def structure(self) -> list[tuple[str, int, tuple[str, ...]]]:
        """Names, parents and channels: what two skeletons must share to share one model."""
        return [(j.name, j.parent, j.channels) for j in self.joints]

    def same_as(self, other: Skeleton, offset_atol: float | None = None) -> bool:
        """Same joint names, hierarchy and channels (and offsets within ``offset_atol`` if given;
        offsets are not compared by default, so subjects of different sizes share a model)."""
        if self.structure() != other.structure():
            return False
        if offset_atol is None:
            return True
        return bool(np.allclose(self.offsets(), other.offsets(), rtol=0.0, atol=offset_atol))

    def signature(self) -> str:
        """Stable hex sha256 of :meth:`structure` (offsets excluded)."""
        text = json.dumps([[n, p, list(c)] for n, p, c in self.structure()], separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()

    def describe_difference(self, other: Skeleton) -> str:
        """A short human-readable reason why :meth:`same_as` is False (``""`` if it is True)."""
        a, b = self.structure(), other.structure()
        if len(a) != len(b):
            return f"{len(a)} joints vs {len(b)} joints"
        for x, y in zip(a, b, strict=True):
            if x != y:
                return (
                    f"joint {x[0]!r} (parent {x[1]}, {list(x[2])}) vs "
                    f"{y[0]!r} (parent {y[1]}, {list(y[2])})"
                )
        return ""

    def offsets(self) -> np.ndarray:
        """``(J, 3)`` joint offsets."""
        return np.array([j.offset for j in self.joints], dtype=np.float64)

    def scale(self) -> float:
        """A length scale of the skeleton: the largest distance of a joint or End Site from the
        root in the rest pose (at least 1e-12)."""
        rest = forward_kinematics(self, np.zeros((1, self.n_channels)), end_sites=True)[0]
        return float(max(np.linalg.norm(rest[0] - rest[1:], axis=-1).max(initial=0.0), 1e-12))

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable description (see :meth:`from_dict`)."""
        return {"joints": [j.to_dict() for j in self.joints]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Skeleton:
        return cls(tuple(Joint.from_dict(j) for j in d["joints"]))


@dataclass
class MotionClip:
    """Motion of one skeleton: BVH channel values per frame.

    Args:
        skeleton: the hierarchy.
        frames: ``(T, skeleton.n_channels)`` float64, columns in :meth:`Skeleton.channel_names`
            order, rotations in degrees, positions in the skeleton's length unit.
        frame_time: seconds per frame (``1 / fps``).
        name: a label, e.g. the file stem.
    """

    skeleton: Skeleton
    frames: np.ndarray
    frame_time: float
    name: str = ""

    def __post_init__(self) -> None:
        f = np.asarray(self.frames, dtype=np.float64)
        if f.ndim != 2 or f.shape[1] != self.skeleton.n_channels:
            raise ValueError(
                f"clip {self.name!r}: frames must have shape (T, {self.skeleton.n_channels}), "
                f"got {f.shape}"
            )
        if not (np.isfinite(self.frame_time) and self.frame_time > 0):
            raise ValueError(f"clip {self.name!r}: frame_time must be > 0, got {self.frame_time}")
        self.frames = f
        self.frame_time = float(self.frame_time)

    @property
    def n_frames(self) -> int:
        return int(self.frames.shape[0])

    @property
    def fps(self) -> float:
        return 1.0 / self.frame_time

    def local_rotations(self) -> np.ndarray:
        """``(T, J, 3, 3)`` local rotation matrices of every joint (identity without channels)."""
        return local_rotations(self.skeleton, self.frames)

    def local_translations(self) -> np.ndarray:
        """``(T, J, 3)`` local translations (offsets with position channels substituted)."""
        return local_translations(self.skeleton, self.frames)


def local_rotations(skeleton: Skeleton, frames: np.ndarray) -> np.ndarray:
    """``(T, J, 3, 3)`` local rotations from ``(T, n_channels)`` channel values (degrees)."""
    f = np.asarray(frames, dtype=np.float64)
    out = np.broadcast_to(np.eye(3), (f.shape[0], len(skeleton), 3, 3)).copy()
    for i, j in enumerate(skeleton.joints):
        order = j.rotation_order
        if not order:
            continue
        sl = skeleton.channel_slice(i)
        cols = [sl.start + k for k, c in enumerate(j.channels) if c in ROTATION_CHANNELS]
        out[:, i] = euler_to_matrix(np.deg2rad(f[:, cols]), order)
    return out


def local_translations(skeleton: Skeleton, frames: np.ndarray) -> np.ndarray:
    """``(T, J, 3)`` local translations: offsets with each position channel replacing its axis."""
    f = np.asarray(frames, dtype=np.float64)
    out = np.broadcast_to(skeleton.offsets(), (f.shape[0], len(skeleton), 3)).copy()
    for i, j in enumerate(skeleton.joints):
        sl = skeleton.channel_slice(i)
        for k, c in enumerate(j.channels):
            if c in POSITION_CHANNELS:
                out[:, i, POSITION_CHANNELS.index(c)] = f[:, sl.start + k]
    return out


def forward_kinematics(
    skeleton: Skeleton,
    frames: np.ndarray,
    end_sites: bool = False,
    return_rotations: bool = False,
) -> Any:
    """Global joint positions (and optionally global rotations) of every frame.

    Args:
        skeleton: the hierarchy.
        frames: ``(T, n_channels)`` channel values (rotations in degrees).
        end_sites: also return the End Site positions, appended after the joints in joint
            order (only joints that have one).
        return_rotations: also return the global rotations ``(T, J, 3, 3)``.

    Returns:
        ``(T, J [+ n_end_sites], 3)`` positions, or ``(positions, rotations)``.
    """
    f = np.asarray(frames, dtype=np.float64)
    if f.ndim != 2 or f.shape[1] != skeleton.n_channels:
        raise ValueError(f"frames must have shape (T, {skeleton.n_channels}), got {f.shape}")
    rot_local = local_rotations(skeleton, f)
    trans_local = local_translations(skeleton, f)
    n_frames, n_joints = f.shape[0], len(skeleton)
    rot = np.empty((n_frames, n_joints, 3, 3))
    pos = np.empty((n_frames, n_joints, 3))
    for i, j in enumerate(skeleton.joints):
        if j.parent < 0:
            rot[:, i] = rot_local[:, i]
            pos[:, i] = trans_local[:, i]
        else:
            p = j.parent
            rot[:, i] = rot[:, p] @ rot_local[:, i]
            pos[:, i] = pos[:, p] + np.einsum("tab,tb->ta", rot[:, p], trans_local[:, i])
    if end_sites:
        tips = [
            pos[:, i] + rot[:, i] @ np.asarray(j.end_site)
            for i, j in enumerate(skeleton.joints)
            if j.end_site is not None
        ]
        if tips:
            pos = np.concatenate([pos, np.stack(tips, axis=1)], axis=1)
    if return_rotations:
        return pos, rot
    return pos
