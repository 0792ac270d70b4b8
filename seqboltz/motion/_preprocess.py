"""Motion features for sequence models: Taylor, Hinton & Roweis (2007) preprocessing, invertible.

Taylor, Hinton & Roweis, "Modeling human motion using binary latent variables", NIPS 2007, §4
(and Taylor's released ``preprocess1.m``): CMU mocap is downsampled from 120 to 30 fps (each
take giving 4 sequences at phase offsets 0-3), the root is made body-centred (ground-plane
translation in the body's own heading frame, and the change of heading instead of the heading),
joint angles become exponential maps (Grassia 1998), dimensions that never change are dropped
and every remaining dimension is standardised to zero mean and unit variance. The same
representation is what games use to drive a character (root motion as local velocity + turn
rate, so generated motion can be steered and placed anywhere).

Features of frame ``t`` (``t = 1 … T-1``; frame 0 only provides the previous frame), before
dropping and standardisation, in this order (:meth:`MotionFeatures.raw_feature_names`):

============================  ==========================================================
``root_height``               root position along the up axis (absolute)
``root_vel_forward``          ground-plane root displacement ``p_t - p_{t-1}`` along the
``root_vel_lateral``          heading frame of frame ``t-1``: forward and lateral
                              (``up × forward``, i.e. the character's left for Y up / Z
                              forward), in length units per frame
``root_dheading``             heading change ``ψ_t - ψ_{t-1}`` wrapped to (-π, π]
``root_tilt_{x,y,z}``         root orientation without its heading, as an exp map:
                              ``R_root = R_up(ψ) @ exp(tilt)``
``<joint>_{rx,ry,rz}``        each non-root joint with rotation channels: its local rotation
                              as an exp map, unwrapped over time (never wraps at ±180°)
``<joint>_<X|Y|Z>position``   non-root position channels, as values
============================  ==========================================================

The heading ``ψ`` of a frame is the angle about the up axis of the root's forward axis projected
on the ground (``forward_axis`` in the rest pose, +Z for BVH/CMU characters): the yaw of a
``Y X Z`` Euler decomposition, as in Taylor's code. The decomposition is exact for any ``ψ``.

Rank-deficient rotations (a 1-dof knee stored as 3 tilted rotation channels, e.g. converted
CMU data) give exp maps that move on a line or plane; :meth:`MotionFeatures.fit` rotates such a
joint's exp map into its principal axes (a fixed orthogonal 3×3 basis, named
``<joint>_e0 … e2``) so the constant directions are dropped like any constant dimension.

Exactness: :meth:`MotionFeatures.inverse_transform` of :meth:`MotionFeatures.transform` with
:meth:`MotionFeatures.initial_state` gives back frames ``1 … T-1`` with every joint's rotation
matrix and the root position equal to floating point (up to the ``const_tol`` of dropped
dimensions; tested to 1e-5). Euler angles themselves may come back as an equivalent triple
(e.g. 190° as -170°): compare rotation matrices, not angles.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from seqboltz.motion._rotations import (
    axis_rotation,
    matrix_to_euler,
    matrix_to_rotvec,
    rotvec_to_matrix,
    unwrap_expmap,
    wrap_angle,
)
from seqboltz.motion._skeleton import (
    POSITION_CHANNELS,
    ROTATION_CHANNELS,
    MotionClip,
    Skeleton,
    local_rotations,
    local_translations,
)

__all__ = ["MotionFeatures", "RootState", "resample", "resample_factor"]

FORMAT_VERSION = 1
_AXES = "xyz"
_ROOT_NAMES = ["root_height", "root_vel_forward", "root_vel_lateral", "root_dheading"]


def resample_factor(source_fps: float, target_fps: float, tol: float = 1e-2) -> int:
    """The integer frame-rate reduction ``source_fps / target_fps``.

    Raises:
        ValueError: the ratio is not within ``tol`` of a positive integer (e.g. 50 → 30 fps).
    """
    if not (source_fps > 0 and target_fps > 0):
        raise ValueError(f"frame rates must be > 0, got {source_fps} and {target_fps}")
    ratio = source_fps / target_fps
    factor = round(ratio)
    if factor < 1 or abs(ratio - factor) > tol:
        raise ValueError(
            f"cannot resample {source_fps:g} fps to {target_fps:g} fps: the ratio {ratio:.4g} "
            "is not a whole number (only integer frame-rate reductions keep the captured frames "
            "exactly; pick a target_fps that divides the source rate)"
        )
    return int(factor)


def resample(clip: MotionClip, factor: int) -> list[MotionClip]:
    """Split a clip into ``factor`` clips at ``1/factor`` the frame rate (Taylor et al. 2007).

    Clip ``k`` (``k = 0 … factor-1``) holds frames ``k, k+factor, k+2·factor, …`` so every
    frame lands in exactly one clip (120 fps → 4 clips at 30 fps with phase offsets 0-3).

    Args:
        clip: the source clip.
        factor: integer reduction (>= 1), e.g. :func:`resample_factor` ``(120, 30)`` = 4.

    Returns:
        ``factor`` clips named ``"<name>@<k>"`` with ``frame_time * factor`` (some may be empty
        if the clip has fewer than ``factor`` frames).
    """
    if int(factor) != factor or factor < 1:
        raise ValueError(f"factor must be a positive integer, got {factor}")
    factor = int(factor)
    if factor == 1:
        return [MotionClip(clip.skeleton, clip.frames.copy(), clip.frame_time, clip.name)]
    return [
        MotionClip(
            clip.skeleton,
            clip.frames[k::factor].copy(),
            clip.frame_time * factor,
            f"{clip.name}@{k}",
        )
        for k in range(factor)
    ]


@dataclass(frozen=True)
class RootState:
    """Where the root is before the first feature frame.

    Args:
        position: ``(3,)`` root position (local translation of the root joint).
        heading: heading ``ψ`` in radians about the up axis.
    """

    position: tuple[float, float, float]
    heading: float

    @classmethod
    def coerce(cls, value: RootState | tuple[Any, float] | None) -> RootState:
        if value is None:
            return cls((0.0, 0.0, 0.0), 0.0)
        if isinstance(value, RootState):
            return value
        pos, heading = value
        p = np.asarray(pos, dtype=np.float64).reshape(3)
        return cls((float(p[0]), float(p[1]), float(p[2])), float(heading))


@dataclass(frozen=True)
class _Layout:
    """Column layout of the raw features of one skeleton."""

    names: tuple[str, ...]
    rot_blocks: tuple[tuple[str, int, int], ...]  # (label, joint index or -1 for tilt, column)
    pos_cols: tuple[tuple[int, int, int], ...]  # (joint index, channel column, feature column)


def _layout(skeleton: Skeleton) -> _Layout:
    names = list(_ROOT_NAMES)
    blocks: list[tuple[str, int, int]] = [("root_tilt", -1, len(names))]
    names += [f"root_tilt_{a}" for a in _AXES]
    for i, j in enumerate(skeleton.joints):
        if i == 0 or not j.rotation_order:
            continue
        blocks.append((j.name, i, len(names)))
        names += [f"{j.name}_r{a}" for a in _AXES]
    pos: list[tuple[int, int, int]] = []
    for i, j in enumerate(skeleton.joints):
        if i == 0:
            continue
        sl = skeleton.channel_slice(i)
        for k, c in enumerate(j.channels):
            if c in POSITION_CHANNELS:
                pos.append((i, sl.start + k, len(names)))
                names.append(f"{j.name}_{c}")
    return _Layout(tuple(names), tuple(blocks), tuple(pos))


class MotionFeatures:
    """Fitted, exactly invertible motion preprocessing (see the module docstring).

    Usage: ``mf = MotionFeatures().fit(train_clips)``; ``x = mf.transform(clip)`` gives
    ``(T-1, F)`` standardised features of frames ``1 … T-1``;
    ``mf.inverse_transform(x, mf.initial_state(clip))`` gives those frames back as a clip of the
    fitted skeleton (e.g. to :func:`~seqboltz.motion.write_bvh`). :meth:`to_dict` /
    :meth:`from_dict` carry everything (skeleton, layout, constants, mean, std, frame rate,
    axes) as JSON, so the statistics travel with a trained model.

    Args:
        up_axis: the vertical axis, ``"y"`` for BVH and CMU data (``"z"`` for Z-up exports).
        forward_axis: the axis the character faces in the rest pose (``"z"`` for BVH/CMU).
        const_tol: dimensions whose standard deviation over the training frames is below this
            are dropped and restored as their constant mean (radians / length units).
        rotation_bases: rotate rank-deficient exp maps into their principal axes so that
            constant directions are dropped (see the module docstring).
    """

    def __init__(
        self,
        up_axis: str = "y",
        forward_axis: str = "z",
        const_tol: float = 1e-7,
        rotation_bases: bool = True,
    ) -> None:
        up, fwd = up_axis.lower(), forward_axis.lower()
        if up not in _AXES or fwd not in _AXES or up == fwd:
            raise ValueError(
                f"up_axis and forward_axis must be two different axes of 'xyz', got "
                f"{up_axis!r} and {forward_axis!r}"
            )
        if not const_tol >= 0:
            raise ValueError(f"const_tol must be >= 0, got {const_tol}")
        self.up_axis = up
        self.forward_axis = fwd
        self.const_tol = float(const_tol)
        self.rotation_bases = bool(rotation_bases)
        self._e_up = np.eye(3)[_AXES.index(up)]
        self._e_fwd = np.eye(3)[_AXES.index(fwd)]
        self._e_side = np.cross(self._e_up, self._e_fwd)
        # fitted state
        self.skeleton: Skeleton | None = None
        self.frame_time: float | None = None
        self._layout: _Layout | None = None
        self._bases: dict[str, np.ndarray] = {}
        self._kept: np.ndarray | None = None
        self._constants: np.ndarray | None = None
        self._mean: np.ndarray | None = None
        self._std: np.ndarray | None = None

    # ---- fitted properties ---------------------------------------------------------------
    @property
    def is_fitted(self) -> bool:
        return self._std is not None

    def _require(self) -> tuple[Skeleton, _Layout, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        if (
            self.skeleton is None
            or self._layout is None
            or self._kept is None
            or self._constants is None
            or self._mean is None
            or self._std is None
        ):
            raise RuntimeError("MotionFeatures is not fitted: call fit(clips) or from_dict(d)")
        return self.skeleton, self._layout, self._kept, self._constants, self._mean, self._std

    @property
    def n_features(self) -> int:
        """``F``: number of kept (modelled) dimensions."""
        return int(self._require()[2].sum())

    @property
    def fps(self) -> float:
        if self.frame_time is None:
            raise RuntimeError("MotionFeatures is not fitted")
        return 1.0 / self.frame_time

    def raw_feature_names(self) -> list[str]:
        """Names of all raw dimensions (before dropping), exp-map blocks in their fitted basis."""
        _, layout, *_ = self._require()
        names = list(layout.names)
        for label, _i, col in layout.rot_blocks:
            if label in self._bases:
                names[col : col + 3] = [f"{label}_e{k}" for k in range(3)]
        return names

    def feature_names(self) -> list[str]:
        """Names of the ``F`` kept dimensions, e.g. ``["root_height", ..., "lfemur_rx", ...]``."""
        kept = self._require()[2]
        return [n for n, k in zip(self.raw_feature_names(), kept, strict=True) if k]

    @property
    def mean(self) -> np.ndarray:
        """``(F,)`` mean of the kept raw dimensions."""
        return self._require()[4].copy()

    @property
    def std(self) -> np.ndarray:
        """``(F,)`` standard deviation of the kept raw dimensions."""
        return self._require()[5].copy()

    @property
    def kept(self) -> np.ndarray:
        """``(F_raw,)`` bool mask of the kept raw dimensions."""
        return self._require()[2].copy()

    @property
    def constants(self) -> np.ndarray:
        """``(F_raw,)`` training mean of every raw dimension (the value restored if dropped)."""
        return self._require()[3].copy()

    # ---- the root ------------------------------------------------------------------------
    def _heading(self, root_rot: np.ndarray) -> np.ndarray:
        """``(T,)`` heading of ``(T, 3, 3)`` root rotations (forward axis projected on ground)."""
        f = root_rot @ self._e_fwd
        return np.arctan2(f @ self._e_side, f @ self._e_fwd)

    def _yaw(self, heading: np.ndarray) -> np.ndarray:
        return axis_rotation(self.up_axis.upper(), heading)

    def initial_state(self, clip: MotionClip) -> RootState:
        """Root position and heading at frame 0 of ``clip`` (what :meth:`transform` drops)."""
        t = local_translations(clip.skeleton, clip.frames[:1])[0, 0]
        rot = local_rotations(clip.skeleton, clip.frames[:1])[:, 0]
        return RootState((float(t[0]), float(t[1]), float(t[2])), float(self._heading(rot)[0]))

    def root_speed(self, clip: MotionClip) -> np.ndarray:
        """``(T-1,)`` ground-plane root speed of frames ``1 … T-1`` in length units per second."""
        t = local_translations(clip.skeleton, clip.frames)[:, 0]
        d = np.diff(t, axis=0)
        ground = d - np.outer(d @ self._e_up, self._e_up)
        return np.asarray(np.linalg.norm(ground, axis=1) / clip.frame_time)

    # ---- raw features --------------------------------------------------------------------
    def _raw(self, clip: MotionClip, layout: _Layout) -> np.ndarray:
        """``(T-1, F_raw)`` raw features in the canonical (unrotated) exp-map coordinates."""
        sk = clip.skeleton
        if clip.n_frames < 2:
            raise ValueError(
                f"clip {clip.name!r} has {clip.n_frames} frame(s); features need at least 2 "
                "(frame 0 only provides the previous frame for the velocities)"
            )
        rot = local_rotations(sk, clip.frames)
        trans = local_translations(sk, clip.frames)
        n_frames = clip.n_frames
        out = np.empty((n_frames - 1, len(layout.names)))
        p = trans[:, 0]
        heading = self._heading(rot[:, 0])
        d = np.diff(p, axis=0)
        yaw_prev = self._yaw(heading[:-1])
        out[:, 0] = p[1:] @ self._e_up
        out[:, 1] = np.einsum("ti,ti->t", d, yaw_prev @ self._e_fwd)
        out[:, 2] = np.einsum("ti,ti->t", d, yaw_prev @ self._e_side)
        out[:, 3] = wrap_angle(np.diff(heading))
        tilt_rot = np.swapaxes(self._yaw(heading), -1, -2) @ rot[:, 0]
        blocks = [tilt_rot] + [rot[:, i] for _label, i, _c in layout.rot_blocks[1:]]
        rv = unwrap_expmap(matrix_to_rotvec(np.stack(blocks, axis=1)))
        for b, (_label, _i, col) in enumerate(layout.rot_blocks):
            out[:, col : col + 3] = rv[1:, b]
        for _i, ch_col, col in layout.pos_cols:
            out[:, col] = clip.frames[1:, ch_col]
        return out

    def _to_basis(self, raw: np.ndarray, layout: _Layout, inverse: bool = False) -> np.ndarray:
        out = raw.copy()
        for label, _i, col in layout.rot_blocks:
            basis = self._bases.get(label)
            if basis is not None:
                block = raw[:, col : col + 3]
                out[:, col : col + 3] = block @ (basis.T if inverse else basis)
        return out

    def raw_features(self, clip: MotionClip) -> np.ndarray:
        """``(T-1, F_raw)`` unstandardised features of frames ``1 … T-1`` with every dimension
        (dropped ones included), exp-map blocks in their fitted basis."""
        _, layout, *_ = self._require()
        self._check_skeleton(clip)
        return self._to_basis(self._raw(clip, layout), layout)

    def _check_skeleton(self, clip: MotionClip) -> None:
        sk = self._require()[0]
        if not clip.skeleton.same_as(sk):
            raise ValueError(
                f"clip {clip.name!r} has a different skeleton than the fitted one "
                f"({sk.describe_difference(clip.skeleton)})"
            )

    # ---- fit / transform -----------------------------------------------------------------
    def fit(self, clips: Sequence[MotionClip]) -> MotionFeatures:
        """Fit the basis of rank-deficient exp maps, the constant dimensions and mean/std.

        Args:
            clips: training clips, all of one skeleton (structure) and one frame rate, each
                with at least 2 frames. The first clip's skeleton (with its offsets) becomes
                the skeleton of :meth:`inverse_transform`.

        Returns:
            ``self``.

        Raises:
            ValueError: no clips, clips of different skeletons or frame rates, a clip with
                fewer than 2 frames.
        """
        clips = list(clips)
        if not clips:
            raise ValueError("fit needs at least one clip")
        sk = clips[0].skeleton
        for c in clips[1:]:
            if not c.skeleton.same_as(sk):
                raise ValueError(
                    f"clips {clips[0].name!r} and {c.name!r} have different skeletons "
                    f"({sk.describe_difference(c.skeleton)}); one model needs one skeleton"
                )
            if not math.isclose(c.frame_time, clips[0].frame_time, rel_tol=1e-3):
                raise ValueError(
                    f"clips {clips[0].name!r} and {c.name!r} have different frame rates "
                    f"({1 / clips[0].frame_time:g} and {1 / c.frame_time:g} fps): resample first"
                )
        layout = _layout(sk)
        raw = np.concatenate([self._raw(c, layout) for c in clips], axis=0)
        bases: dict[str, np.ndarray] = {}
        if self.rotation_bases:
            for label, _i, col in layout.rot_blocks:
                block = raw[:, col : col + 3]
                cov = np.cov(block, rowvar=False, bias=True)
                evals, evecs = np.linalg.eigh(cov)
                sd = np.sqrt(np.maximum(evals, 0.0))
                n_const = int((sd < self.const_tol).sum())
                if n_const in (1, 2):
                    basis = evecs[:, ::-1].copy()  # decreasing variance
                    for k in range(3):  # deterministic signs: largest entry positive
                        if basis[np.argmax(np.abs(basis[:, k])), k] < 0:
                            basis[:, k] *= -1
                    if np.linalg.det(basis) < 0:
                        basis[:, 2] *= -1
                    bases[label] = basis
        self._bases = bases
        raw = self._to_basis(raw, layout)
        std_all = raw.std(axis=0)
        kept = std_all >= self.const_tol
        if not kept.any():
            raise ValueError("every feature is constant over the training clips: nothing to model")
        self.skeleton = sk
        self.frame_time = float(clips[0].frame_time)
        self._layout = layout
        self._constants = raw.mean(axis=0)
        self._kept = kept
        self._mean = self._constants[kept].copy()
        self._std = std_all[kept].copy()
        return self

    def transform(self, clip: MotionClip) -> np.ndarray:
        """Standardised features of frames ``1 … T-1`` of ``clip``.

        Args:
            clip: a clip of the fitted skeleton with ``T >= 2`` frames.

        Returns:
            ``(T-1, F)`` float64.
        """
        _, _, kept, _, mean, std = self._require()
        raw = self.raw_features(clip)
        return np.asarray((raw[:, kept] - mean) / std)

    def fit_transform(self, clips: Sequence[MotionClip]) -> list[np.ndarray]:
        """:meth:`fit` then :meth:`transform` of each clip."""
        self.fit(clips)
        return [self.transform(c) for c in clips]

    def inverse_transform(
        self,
        features: np.ndarray,
        initial: RootState | tuple[Any, float] | None = None,
        name: str = "generated",
    ) -> MotionClip:
        """Channel values from standardised features, integrating root velocity and heading.

        Args:
            features: ``(T, F)`` standardised features (e.g. a model's output).
            initial: root position and heading of the frame *before* the first feature frame
                (:meth:`initial_state` of the source clip); default origin, heading 0.
            name: name of the returned clip.

        Returns:
            A :class:`MotionClip` of the fitted skeleton with ``T`` frames: root position and
            rotation channels rebuilt from the integrated position/heading and the tilt, joint
            rotation channels as Euler angles (degrees) in each joint's channel order, position
            channels as values. Joints with fewer than 3 rotation channels get the closest
            rotation they can make.
        """
        sk, layout, kept, constants, mean, std = self._require()
        x = np.asarray(features, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != int(kept.sum()):
            raise ValueError(f"features must have shape (T, {int(kept.sum())}), got {x.shape}")
        if not np.all(np.isfinite(x)):
            raise ValueError("features contain NaN or inf")
        state = RootState.coerce(initial)
        n_frames = x.shape[0]
        raw = np.broadcast_to(constants, (n_frames, constants.size)).copy()
        raw[:, kept] = x * std + mean
        raw = self._to_basis(raw, layout, inverse=True)

        # Root: integrate heading and ground-plane displacement.
        heading = state.heading + np.cumsum(raw[:, 3])
        prev_heading = np.concatenate([[state.heading], heading[:-1]])
        yaw_prev = self._yaw(prev_heading)
        step = raw[:, 1:2] * (yaw_prev @ self._e_fwd) + raw[:, 2:3] * (yaw_prev @ self._e_side)
        pos = np.asarray(state.position, dtype=np.float64) + np.cumsum(step, axis=0)
        pos += np.outer(raw[:, 0] - pos @ self._e_up, self._e_up)
        rotvecs = np.stack([raw[:, c : c + 3] for _l, _i, c in layout.rot_blocks], axis=1)
        mats = rotvec_to_matrix(rotvecs)
        root_rot = self._yaw(heading) @ mats[:, 0]

        frames = np.zeros((n_frames, sk.n_channels))
        root = sk.joints[0]
        sl = sk.channel_slice(0)
        for k, c in enumerate(root.channels):
            if c in POSITION_CHANNELS:
                frames[:, sl.start + k] = pos[:, POSITION_CHANNELS.index(c)]
        self._put_rotation(frames, sk, 0, root_rot)
        for b, (_label, i, _col) in enumerate(layout.rot_blocks):
            if i >= 0:
                self._put_rotation(frames, sk, i, mats[:, b])
        for _i, ch_col, col in layout.pos_cols:
            frames[:, ch_col] = raw[:, col]
        return MotionClip(sk, frames, self.frame_time or 1.0, name)

    @staticmethod
    def _put_rotation(frames: np.ndarray, sk: Skeleton, i: int, mats: np.ndarray) -> None:
        j = sk.joints[i]
        if not j.rotation_order:
            return
        sl = sk.channel_slice(i)
        cols = [sl.start + k for k, c in enumerate(j.channels) if c in ROTATION_CHANNELS]
        frames[:, cols] = np.rad2deg(matrix_to_euler(mats, j.rotation_order))

    # ---- serialisation -------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Everything needed to transform and invert, as JSON-serialisable plain values.

        Keys: ``format_version``, ``up_axis``, ``forward_axis``, ``const_tol``,
        ``rotation_bases``, ``frame_time``, ``fps``, ``skeleton`` (joints with offsets and
        channels), ``raw_feature_names``, ``feature_names``, ``kept`` (bool per raw
        dimension), ``constants`` (per raw dimension), ``mean`` and ``std`` (per kept
        dimension), ``bases`` (``{block: 3×3 row-major}`` for rotated exp-map blocks).
        """
        sk, _layout, kept, constants, mean, std = self._require()
        return {
            "format_version": FORMAT_VERSION,
            "kind": "seqboltz.motion.MotionFeatures",
            "up_axis": self.up_axis,
            "forward_axis": self.forward_axis,
            "const_tol": self.const_tol,
            "rotation_bases": self.rotation_bases,
            "frame_time": self.frame_time,
            "fps": self.fps,
            "skeleton": sk.to_dict(),
            "skeleton_signature": sk.signature(),
            "raw_feature_names": self.raw_feature_names(),
            "feature_names": self.feature_names(),
            "kept": [bool(k) for k in kept],
            "constants": [float(v) for v in constants],
            "mean": [float(v) for v in mean],
            "std": [float(v) for v in std],
            "bases": {k: v.tolist() for k, v in self._bases.items()},
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MotionFeatures:
        """Rebuild a fitted :class:`MotionFeatures` from :meth:`to_dict` (unknown keys ignored).

        Raises:
            ValueError: an unsupported ``format_version`` or inconsistent lengths.
        """
        version = d.get("format_version")
        if version != FORMAT_VERSION:
            raise ValueError(f"unsupported MotionFeatures format_version {version!r}")
        mf = cls(
            up_axis=d["up_axis"],
            forward_axis=d["forward_axis"],
            const_tol=d["const_tol"],
            rotation_bases=d["rotation_bases"],
        )
        sk = Skeleton.from_dict(d["skeleton"])
        layout = _layout(sk)
        kept = np.asarray(d["kept"], dtype=bool)
        constants = np.asarray(d["constants"], dtype=np.float64)
        mean = np.asarray(d["mean"], dtype=np.float64)
        std = np.asarray(d["std"], dtype=np.float64)
        n_raw = len(layout.names)
        if kept.shape != (n_raw,) or constants.shape != (n_raw,):
            raise ValueError(f"kept/constants must have {n_raw} entries for this skeleton")
        if mean.shape != (int(kept.sum()),) or std.shape != mean.shape or np.any(std <= 0):
            raise ValueError("mean/std must have one positive entry per kept dimension")
        labels = {label for label, _i, _c in layout.rot_blocks}
        bases = {}
        for k, v in d.get("bases", {}).items():
            if k not in labels:
                raise ValueError(f"basis for unknown rotation block {k!r}")
            bases[k] = np.asarray(v, dtype=np.float64).reshape(3, 3)
        mf.skeleton = sk
        mf.frame_time = float(d["frame_time"])
        mf._layout = layout
        mf._bases = bases
        mf._kept = kept
        mf._constants = constants
        mf._mean = mean
        mf._std = std
        return mf
