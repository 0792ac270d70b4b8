"""Standardised motion feature frames → joint rotations and positions, frame by frame.

The one code path from a motion model's output to a drawable body, shared by the viewer's
bridge and its tests. It is the path of ``seqboltz generate`` and offline synthesis
(:mod:`seqboltz.runtime._synthesize`), cut into pieces: the card's
:class:`~seqboltz.motion.MotionFeatures` →
:meth:`~seqboltz.motion.MotionFeatures.inverse_transform` (root velocity and heading
integrated) → BVH channels → :func:`~seqboltz.motion.forward_kinematics` (global positions
and rotations; local rotations from those) and :func:`~seqboltz.motion.local_translations`.

Because the inverse integrates the root's velocity and heading, a stream is converted piece by
piece with the root state (position and heading after the last frame) carried between pieces,
so ``push(x[:a]); push(x[a:])`` gives the joints of ``inverse_transform(x)`` (up to rounding).
The heading is carried as the running sum of the features' heading increments, exactly as
:meth:`~seqboltz.motion.MotionFeatures.inverse_transform` sums them, not re-measured from the
root rotation (which a generated tilt would bias).

numpy only (no torch), like :mod:`seqboltz.motion`.

>>> poses = PoseStream.from_card(card)  # doctest: +SKIP
>>> p = poses.push(frames)  # (n, F) standardised  # doctest: +SKIP
>>> p.positions.shape  # (n, J + n_end_sites, 3)  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from seqboltz.motion import (
    MotionFeatures,
    RootState,
    forward_kinematics,
    local_translations,
    matrix_to_quaternion,
)

__all__ = ["PoseStream", "Poses", "motion_features"]

_HEADING = "root_dheading"


def motion_features(card: dict[str, Any]) -> MotionFeatures:
    """The fitted :class:`~seqboltz.motion.MotionFeatures` of a motion model's card.

    Raises:
        ValueError: the card is not a motion model's (its ``domain`` or ``features``).
    """
    features = card.get("features") or {}
    if card.get("domain") != "motion" or features.get("kind") != "seqboltz.motion.MotionFeatures":
        raise ValueError(
            f"model {card.get('name')!r} is a {card.get('domain') or 'generic'} model; "
            "the viewer draws motion models only"
        )
    return MotionFeatures.from_dict(features)


@dataclass(frozen=True)
class Poses:
    """The bodies of ``n`` consecutive frames.

    Attributes:
        channels: ``(n, C)`` BVH channel values (rotations in degrees).
        local_translations: ``(n, J, 3)`` each joint's translation in its parent's frame.
        local_quaternions: ``(n, J, 4)`` each joint's rotation in its parent's frame as unit
            quaternions ``(x, y, z, w)`` (three.js order).
        positions: ``(n, J + E, 3)`` global positions of the joints, then of the ``E`` End Sites
            in joint order (:func:`~seqboltz.motion.forward_kinematics` with ``end_sites``).
    """

    channels: np.ndarray
    local_translations: np.ndarray
    local_quaternions: np.ndarray
    positions: np.ndarray


class PoseStream:
    """Converts a stream of standardised feature frames to poses, carrying the root state.

    Args:
        features: the model's fitted motion features (:func:`motion_features`).
        initial: root position and heading before the first frame (default: origin, heading 0,
            as ``seqboltz generate`` and offline synthesis use).
    """

    def __init__(self, features: MotionFeatures, initial: RootState | None = None) -> None:
        if not features.is_fitted or features.skeleton is None:
            raise ValueError("PoseStream needs fitted MotionFeatures")
        self.features = features
        self.skeleton = features.skeleton
        self.state = RootState.coerce(initial)
        names = features.raw_feature_names()
        if _HEADING not in names:
            raise ValueError(f"motion features without a {_HEADING!r} dimension")
        self._heading_col = names.index(_HEADING)
        kept = features.kept
        self._heading_kept = bool(kept[self._heading_col])
        # position of the heading column among the kept (modelled) dimensions
        self._heading_feature = int(kept[: self._heading_col].sum())
        self._heading_constant = float(features.constants[self._heading_col])
        self._mean, self._std = features.mean, features.std

    @classmethod
    def from_card(cls, card: dict[str, Any]) -> PoseStream:
        """A stream for a motion model's card (``ValueError`` for any other model)."""
        return cls(motion_features(card))

    @property
    def n_features(self) -> int:
        return self.features.n_features

    def skeleton_json(self) -> dict[str, Any]:
        """The skeleton as plain values for the page: joints (name, parent, offset, End Site),
        the up axis, the frame rate and the body's size."""
        sk = self.skeleton
        return {
            "joints": [
                {
                    "name": j.name,
                    "parent": j.parent,
                    "offset": list(j.offset),
                    "end_site": list(j.end_site) if j.end_site is not None else None,
                }
                for j in sk.joints
            ],
            "up_axis": self.features.up_axis,
            "forward_axis": self.features.forward_axis,
            "fps": self.features.fps,
            "scale": sk.scale(),
        }

    def push(self, frames: np.ndarray) -> Poses:
        """The poses of the next ``n`` frames ``(n, F)`` (standardised, as the service sends).

        Raises:
            ValueError: wrong width, or NaN/inf values.
        """
        x = np.asarray(frames, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.n_features:
            raise ValueError(f"frames must have shape (n, {self.n_features}), got {x.shape}")
        clip = self.features.inverse_transform(x, self.state)
        trans = local_translations(self.skeleton, clip.frames)
        positions, glob = forward_kinematics(
            self.skeleton, clip.frames, end_sites=True, return_rotations=True
        )
        # local = R_parent_globalᵀ @ R_global (the root's local rotation is its global one)
        parents = np.asarray(self.skeleton.parents)
        rot = glob.copy()
        child = parents >= 0
        rot[:, child] = np.swapaxes(glob[:, parents[child]], -1, -2) @ glob[:, child]
        if self._heading_kept:
            dheading = x[:, self._heading_feature] * self._std[self._heading_feature]
            dheading = dheading + self._mean[self._heading_feature]
        else:
            dheading = np.full(x.shape[0], self._heading_constant)
        root = trans[-1, 0]
        self.state = RootState(
            (float(root[0]), float(root[1]), float(root[2])),
            self.state.heading + float(np.sum(dheading)),
            self.state.performer,
        )
        wxyz = matrix_to_quaternion(rot)
        return Poses(
            channels=clip.frames,
            local_translations=trans,
            local_quaternions=np.concatenate([wxyz[..., 1:], wxyz[..., :1]], axis=-1),
            positions=positions,
        )
