"""Motion features for sequence models: Taylor, Hinton & Roweis (2007) preprocessing, invertible,
with rotation features that have no branch to flip.

Taylor, Hinton & Roweis, "Modeling human motion using binary latent variables", NIPS 2007, §4
(and Taylor's released ``preprocess1.m``): the root is made body-centred (ground-plane
translation in the body's own heading frame, and the change of heading instead of the heading),
joint rotations become features, dimensions that never change are dropped and every remaining
dimension is standardised. The same representation is what games use to drive a character
(root motion as local velocity + turn rate, so generated motion can be steered and placed
anywhere).

Features of frame ``t`` (``t = 1 … T-1``; frame 0 only provides the previous frame), before
dropping and standardisation, in this order (:meth:`MotionFeatures.raw_feature_names`):

============================  ==========================================================
``root_height``               root position along the up axis (absolute)
``root_vel_forward``          ground-plane root displacement ``p_t - p_{t-1}`` along the
``root_vel_lateral``          heading frame of frame ``t-1``: forward and lateral
                              (``up × forward``), in length units per frame
``root_dheading``             heading change ``ψ_t - ψ_{t-1}`` wrapped to (-π, π]
``root_tilt_*``               root orientation without its heading: ``R_root = R_up(ψ) @ T``
``<joint>_*``                 each non-root joint with rotation channels: its local rotation
``<joint>_<X|Y|Z>position``   non-root position channels, as values
============================  ==========================================================

Rotations (``rotation``; each a function of one frame only, so the same pose has the same
features in every clip, split and phase copy, and clip joins cannot jump):

* ``"rot6d"`` (default): the first two columns of the rotation matrix, ``<joint>_r0 … r5``
  (Zhou, Barnes, Lu, Yang & Li 2019, "On the continuity of rotation representations in neural
  networks", CVPR): continuous everywhere, so joints held near 180° or spinning through it
  never jump; back to a rotation by Gram-Schmidt, which also turns generated (slightly
  off-manifold) values into a valid pose.
* ``"expmap"``: the exponential map (Grassia 1998) of the rotation *relative to the joint's
  mean training rotation* ``R̄`` (chordal mean): ``R = R̄ @ exp([r]×)``, ``|r| ≤ π``,
  ``<joint>_rx … rz``. Three numbers per joint as in Taylor et al.; its only discontinuity is
  at 180° from ``R̄``, which :meth:`MotionFeatures.fit` measures and warns about
  (``report()["max_angle_from_mean"]``).
* ``"expmap_unwrap"``: Taylor's exp maps about the identity, unwrapped over time within each
  clip (the format of earlier versions, kept to read old model cards). Its branch depends on
  where a clip starts, so held-out clips can land on another branch: do not train new models
  with it.

Rank-deficient rotations (a 1-dof knee stored as 3 tilted rotation channels, e.g. converted
CMU data) move on a line or plane of their block; :meth:`MotionFeatures.fit` rotates such a
block into its principal axes (a fixed orthogonal basis, named ``<joint>_e0 …``) so the constant
directions are dropped like any constant dimension.

Data checks (:meth:`MotionFeatures.report`): dimensions constant over the training frames
(standard deviation below ``const_tol``) and near-constant rotation or position dimensions (below
``near_constant_tol`` radians, or that fraction of the skeleton's size for positions) are
dropped and restored as their mean, and so are per-clip constants (dimensions whose spread
within a clip is below ``per_clip_tol`` of their spread over all clips: a property of the
performer or the take, such as bone lengths stored as position channels, not motion; a model
would have to invent how they move, and the held-out clips' values are another performer's;
:attr:`RootState.performer` restores a seed clip's own); dimensions that are an affine function
of the ones kept before them (to ``dependent_tol`` of their spread: a rig that stores one
quantity twice, such as two joints that always share a rotation or position channels that copy
each other) are dropped and restored from those (``dependent``), since a model over exactly
collinear inputs has a rank-deficient history and a defective AR start; outlier-heavy
dimensions (excess kurtosis above ``outlier_kurtosis``: a few glitch frames far from the rest)
are standardised with the spread of their central 99.8 % so the glitches do not squash the
motion, and :meth:`MotionFeatures.outlier_frames` marks frames beyond ``outlier_z`` for a data
module to leave out of training; :meth:`MotionFeatures.range_check` finds frames far outside
the training range (what a held-out clip on another branch or another rig looks like).

Axes: ``up_axis`` is the world's vertical axis; ``forward_axis`` is the axis *of the root's own
frame* that points where the character faces (signed: ``"z"``, ``"-z"``, ``"+y"``, …). They may
name the same letter: a rig whose root faces its local +Y with Y up is ``up_axis="y",
forward_axis="y"``. ``"auto"`` detects either from the training clips (up: the axis along which
the body is tallest; forward: the root axis that best follows the direction of travel). The
heading ``ψ`` is the angle about the up axis of that forward axis projected on the ground; the
decomposition ``R_root = R_up(ψ) @ T`` is exact for any ``ψ``, and the output is in the rig's
own axes.

Exactness: :meth:`MotionFeatures.inverse_transform` of :meth:`MotionFeatures.transform` with
:meth:`MotionFeatures.initial_state` gives back frames ``1 … T-1`` with every joint's rotation
matrix and the root position equal to floating point (up to the dropped dimensions; tested to
1e-5). Euler angles may come back as an equivalent triple: compare rotation matrices.
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from seqboltz.motion._contact import PlantReport, contact_floor, foot_joints
from seqboltz.motion._contact import plant_feet as _plant_feet
from seqboltz.motion._resample import effective_fps, resample_clip
from seqboltz.motion._rotations import (
    axis_rotation,
    matrix_to_euler,
    matrix_to_rot6d,
    matrix_to_rotvec,
    mean_rotation,
    rot6d_to_matrix,
    rotvec_to_matrix,
    unwrap_degrees,
    unwrap_expmap,
    wrap_angle,
)
from seqboltz.motion._skeleton import (
    POSITION_CHANNELS,
    ROTATION_CHANNELS,
    MotionClip,
    Skeleton,
    forward_kinematics,
    local_rotations,
    local_translations,
)

__all__ = ["MotionFeatures", "RootState", "resample", "resample_factor"]

FORMAT_VERSION = 2
_AXES = "xyz"
_ROOT_NAMES = ["root_height", "root_vel_forward", "root_vel_lateral", "root_dheading"]
Rotation = Literal["rot6d", "expmap", "expmap_unwrap"]
_ROTATIONS = ("rot6d", "expmap", "expmap_unwrap")


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
        performer: the values of the fitted features' per-clip constants (the performer's
            bone lengths where a rig stores them as channels) to restore instead of their
            training mean; :meth:`MotionFeatures.initial_state` reads them from the seed
            clip, so a continuation keeps its performer's proportions. ``None``: the mean.
    """

    position: tuple[float, float, float]
    heading: float
    performer: tuple[float, ...] | None = None

    @classmethod
    def coerce(cls, value: RootState | tuple[Any, float] | None) -> RootState:
        if value is None:
            return cls((0.0, 0.0, 0.0), 0.0)
        if isinstance(value, RootState):
            return value
        pos, heading = value
        p = np.asarray(pos, dtype=np.float64).reshape(3)
        return cls((float(p[0]), float(p[1]), float(p[2])), float(heading))


def _parse_axis(axis: str, what: str) -> tuple[str, float]:
    """``"z"``, ``"+z"`` or ``"-z"`` → (letter, sign)."""
    a = str(axis).strip().lower()
    sign = -1.0 if a.startswith("-") else 1.0
    letter = a.lstrip("+-")
    if letter not in _AXES or len(letter) != 1:
        raise ValueError(
            f"{what} must be one of x, y, z (forward may be signed: -z, +y), got {axis!r}"
        )
    return letter, sign


@dataclass(frozen=True)
class _Layout:
    """Column layout of the raw features of one skeleton."""

    names: tuple[str, ...]
    # (label, joint index or -1 for the root tilt, first column, width 3 or 6)
    rot_blocks: tuple[tuple[str, int, int, int], ...]
    pos_cols: tuple[tuple[int, int, int], ...]  # (joint index, channel column, feature column)


def _per_clip_constant(
    raw: np.ndarray, lengths: Sequence[int], spread: np.ndarray, tol: float
) -> np.ndarray:
    """``(F_raw,)`` bool: dimensions of ``raw`` ``(N, F_raw)`` (clips of ``lengths`` one after
    another) whose root-mean-square deviation from each clip's own mean is below ``tol`` times
    their ``spread`` over all clips (never with fewer than two clips or ``tol = 0``)."""
    if tol <= 0 or len(lengths) < 2:
        return np.zeros(raw.shape[1], dtype=bool)
    bounds = np.cumsum([0, *lengths])
    within = np.zeros(raw.shape[1])
    for lo, hi in itertools.pairwise(bounds):
        part = raw[lo:hi]
        within += ((part - part.mean(axis=0)) ** 2).sum(axis=0)
    within = np.sqrt(within / raw.shape[0])
    return np.asarray((spread > 0) & (within < tol * spread))


def _dependent_dims(raw: np.ndarray, candidates: np.ndarray, tol: float) -> np.ndarray:
    """``(F_raw,)`` bool: the ``candidates`` columns of ``raw`` ``(N, F_raw)`` that are, to
    ``tol`` of their spread, an affine function of the candidate columns before them (Gram-Schmidt
    on the centred columns, in order, so the first of two copies is kept)."""
    out = np.zeros(raw.shape[1], dtype=bool)
    if tol <= 0:
        return out
    basis = np.zeros((raw.shape[0], 0))
    for j in np.flatnonzero(candidates):
        z = raw[:, j] - raw[:, j].mean()
        norm = float(np.linalg.norm(z))
        if norm == 0.0:
            continue
        r = z - basis @ (basis.T @ z)
        r = r - basis @ (basis.T @ r)  # twice is enough (Giraud et al. 2005)
        rest = float(np.linalg.norm(r))
        if rest < tol * norm:
            out[j] = True
        else:
            basis = np.concatenate([basis, (r / rest)[:, None]], axis=1)
    return out


def _layout(skeleton: Skeleton, rotation: str) -> _Layout:
    width = 6 if rotation == "rot6d" else 3
    suffixes = [f"r{k}" for k in range(6)] if width == 6 else [f"r{a}" for a in _AXES]
    names = list(_ROOT_NAMES)
    blocks: list[tuple[str, int, int, int]] = [("root_tilt", -1, len(names), width)]
    names += [f"root_tilt_{s}" for s in suffixes]
    for i, j in enumerate(skeleton.joints):
        if i == 0 or not j.rotation_order:
            continue
        blocks.append((j.name, i, len(names), width))
        names += [f"{j.name}_{s}" for s in suffixes]
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
    :meth:`from_dict` carry everything (skeleton, layout, references, constants, mean, std,
    frame rates, axes, data report) as JSON, so the statistics travel with a trained model.

    Args:
        up_axis: the world's vertical axis: ``"y"`` for BVH and CMU data, ``"z"`` for Z-up
            exports, ``"auto"`` to detect it from the clips.
        forward_axis: the axis of the root's own frame that points where the character faces,
            optionally signed (``"z"`` for BVH/CMU, ``"-z"``, ``"y"`` for a root facing its
            local +Y, ...), or ``"auto"``.
        rotation: ``"rot6d"``, ``"expmap"`` or ``"expmap_unwrap"`` (module docstring).
        const_tol: dimensions whose standard deviation over the training frames is below this
            are dropped and restored as their constant mean.
        near_constant_tol: rotation dimensions whose standard deviation is below this
            (radians, or unit-vector components for ``rot6d``), and non-root position
            dimensions below this fraction of the skeleton's size, are dropped too (reported
            as ``near_constant``): noise blown up to unit variance is not motion.
        rotation_bases: rotate rank-deficient rotation blocks into their principal axes so
            that their constant directions are dropped.
        per_clip_tol: a dimension whose root-mean-square spread about each clip's own mean is
            below this fraction of its spread over all training clips is a per-clip constant
            (reported as ``per_clip_constant``) and is dropped and restored as its mean
            (``0``: never; needs two or more training clips). The root's dimensions are never
            (a clip may walk or turn at one steady rate).
        dependent_tol: a kept dimension whose part not explained (least squares, with a
            constant) by the kept dimensions before it is below this fraction of its spread
            is dropped and restored from them (``0``: never).
        outlier_kurtosis: excess kurtosis above which a dimension counts as outlier-heavy and
            is scaled by its central 99.8 % (a Gaussian has 0; one frame in 10,000 at 50
            standard deviations gives about 600).
        outlier_z: |standardised value| above which :meth:`outlier_frames` marks a frame.
        range_margin: how far (in standard deviations) beyond the training minimum/maximum a
            frame may lie before :meth:`range_check` reports it.
    """

    def __init__(
        self,
        up_axis: str = "y",
        forward_axis: str = "z",
        rotation: Rotation = "rot6d",
        const_tol: float = 1e-7,
        near_constant_tol: float = 1e-3,
        rotation_bases: bool = True,
        outlier_kurtosis: float = 20.0,
        outlier_z: float = 10.0,
        range_margin: float = 4.0,
        dependent_tol: float = 1e-8,
        per_clip_tol: float = 0.02,
    ) -> None:
        if rotation not in _ROTATIONS:
            raise ValueError(f"rotation must be one of {_ROTATIONS}, got {rotation!r}")
        if str(up_axis).lower() != "auto":
            _parse_axis(up_axis, "up_axis")
            if str(up_axis).strip().startswith("-"):
                raise ValueError(f"up_axis must be x, y or z (unsigned), got {up_axis!r}")
        if str(forward_axis).lower() != "auto":
            _parse_axis(forward_axis, "forward_axis")
        for name, value in (
            ("const_tol", const_tol),
            ("near_constant_tol", near_constant_tol),
            ("dependent_tol", dependent_tol),
            ("per_clip_tol", per_clip_tol),
        ):
            if not value >= 0:
                raise ValueError(f"{name} must be >= 0, got {value}")
        for name, value in (
            ("outlier_kurtosis", outlier_kurtosis),
            ("outlier_z", outlier_z),
            ("range_margin", range_margin),
        ):
            if not value > 0:
                raise ValueError(f"{name} must be > 0, got {value}")
        self.rotation: str = rotation
        self.const_tol = float(const_tol)
        self.near_constant_tol = float(near_constant_tol)
        self.rotation_bases = bool(rotation_bases)
        self.outlier_kurtosis = float(outlier_kurtosis)
        self.outlier_z = float(outlier_z)
        self.range_margin = float(range_margin)
        self.dependent_tol = float(dependent_tol)
        self.per_clip_tol = float(per_clip_tol)
        self.up_axis = str(up_axis).strip().lower().lstrip("+")
        self.forward_axis = str(forward_axis).strip().lower()
        if self.up_axis != "auto" and self.forward_axis != "auto":
            self._set_axes(self.up_axis, self.forward_axis)
        # fitted state
        self.skeleton: Skeleton | None = None
        self.frame_time: float | None = None
        self.source_fps: float | None = None
        self._layout: _Layout | None = None
        self._refs: dict[str, np.ndarray] = {}
        self._bases: dict[str, np.ndarray] = {}
        self._kept: np.ndarray | None = None
        self._constants: np.ndarray | None = None
        # dependent raw dimensions: indices (K,), and raw[:, idx] = raw[:, kept] @ coef.T + icpt
        self._dep_index = np.zeros(0, dtype=np.int64)
        self._dep_coef = np.zeros((0, 0))
        self._dep_icpt = np.zeros(0)
        self._per_clip_index = np.zeros(0, dtype=np.int64)  # raw indices of per-clip constants
        self._mean: np.ndarray | None = None
        self._std: np.ndarray | None = None
        self._lo: np.ndarray | None = None
        self._hi: np.ndarray | None = None
        self._report: dict[str, Any] = {}
        self._contact: dict[str, Any] | None = None

    def _set_axes(self, up: str, forward: str) -> None:
        up_letter, _ = _parse_axis(up, "up_axis")
        fwd_letter, sign = _parse_axis(forward, "forward_axis")
        self.up_axis = up_letter
        self.forward_axis = ("-" if sign < 0 else "") + fwd_letter
        eye = np.eye(3)
        self._e_up = eye[_AXES.index(up_letter)]
        self._f_local = sign * eye[_AXES.index(fwd_letter)]  # in the root's frame
        if fwd_letter != up_letter:
            self._e_fwd = self._f_local.copy()  # heading 0: the rest pose faces it
        else:  # the root's forward is the world's up at rest: heading 0 is the next axis
            self._e_fwd = eye[(_AXES.index(up_letter) + 1) % 3]
        self._e_side = np.cross(self._e_up, self._e_fwd)

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
        """Names of all raw dimensions (before dropping), rotation blocks in their fitted basis."""
        return self._raw_names(self._require()[1])

    def _raw_names(self, layout: _Layout) -> list[str]:
        names = list(layout.names)
        for label, _i, col, width in layout.rot_blocks:
            if label in self._bases:
                names[col : col + width] = [f"{label}_e{k}" for k in range(width)]
        return names

    def feature_names(self) -> list[str]:
        """Names of the ``F`` kept dimensions, e.g. ``["root_height", ..., "lfemur_r0", ...]``."""
        kept = self._require()[2]
        return [n for n, k in zip(self.raw_feature_names(), kept, strict=True) if k]

    @property
    def mean(self) -> np.ndarray:
        """``(F,)`` mean of the kept raw dimensions."""
        return self._require()[4].copy()

    @property
    def std(self) -> np.ndarray:
        """``(F,)`` scale of the kept raw dimensions (standard deviation; for outlier-heavy
        dimensions that of their central 99.8 %)."""
        return self._require()[5].copy()

    @property
    def kept(self) -> np.ndarray:
        """``(F_raw,)`` bool mask of the kept raw dimensions."""
        return self._require()[2].copy()

    @property
    def constants(self) -> np.ndarray:
        """``(F_raw,)`` training mean of every raw dimension (the value restored if dropped)."""
        return self._require()[3].copy()

    def report(self) -> dict[str, Any]:
        """What :meth:`fit` found in the training data (JSON-serialisable): ``axes`` (up and
        forward, and whether they were detected), ``dropped_constant``, ``near_constant``,
        ``per_clip_constant`` and ``dependent`` (names of dropped dimensions),
        ``outlier_heavy`` (``[{name, kurtosis, std, robust_std}]``), ``outlier_frames``
        (training frames beyond ``outlier_z``), ``max_angle_from_mean`` (``expmap``: joints
        more than 120° from their mean rotation, in degrees) and ``n_frames``."""
        self._require()
        return dict(self._report)

    # ---- the root ------------------------------------------------------------------------
    def _heading(self, root_rot: np.ndarray) -> np.ndarray:
        """``(T,)`` heading of ``(T, 3, 3)`` root rotations (forward axis projected on ground)."""
        f = root_rot @ self._f_local
        return np.arctan2(f @ self._e_side, f @ self._e_fwd)

    def _yaw(self, heading: np.ndarray) -> np.ndarray:
        return axis_rotation(self.up_axis.upper(), heading)

    def _require_axes(self) -> None:
        if self.up_axis == "auto" or self.forward_axis == "auto":
            raise RuntimeError("MotionFeatures: axes are detected by fit(clips); fit first")

    def initial_state(self, clip: MotionClip, frame: int = 0) -> RootState:
        """Root position and heading at ``frame`` of ``clip`` (frame 0: what :meth:`transform`
        drops; ``-1``: where a continuation of the clip starts), with the clip's values of the
        per-clip constants (:attr:`RootState.performer`) once fitted."""
        self._require_axes()
        f = clip.frames[frame : frame + 1] if frame != -1 else clip.frames[-1:]
        t = local_translations(clip.skeleton, f)[0, 0]
        rot = local_rotations(clip.skeleton, f)[:, 0]
        performer = None
        if self._per_clip_index.size and self._layout is not None:
            start = frame if frame >= 0 else clip.n_frames - 2
            pair = clip.frames[max(0, start) : max(0, start) + 2]
            if pair.shape[0] == 2:  # one feature row; the per-clip values hold in every frame
                row = self.raw_features(MotionClip(clip.skeleton, pair, clip.frame_time, "seed"))
                performer = tuple(float(v) for v in row[0, self._per_clip_index])
        return RootState(
            (float(t[0]), float(t[1]), float(t[2])), float(self._heading(rot)[0]), performer
        )

    def root_speed(self, clip: MotionClip) -> np.ndarray:
        """``(T-1,)`` ground-plane root speed of frames ``1 … T-1`` in length units per second."""
        self._require_axes()
        t = local_translations(clip.skeleton, clip.frames)[:, 0]
        d = np.diff(t, axis=0)
        ground = d - np.outer(d @ self._e_up, self._e_up)
        return np.asarray(np.linalg.norm(ground, axis=1) / clip.frame_time)

    # ---- axes detection ------------------------------------------------------------------
    @staticmethod
    def _detect_up(clips: Sequence[MotionClip]) -> str:
        """The world axis along which the body is tallest (median over frames of the spread of
        joint positions), the vertical of any standing or moving person."""
        spans = []
        for c in clips:
            step = max(1, c.n_frames // 200)
            pos = forward_kinematics(c.skeleton, c.frames[::step])
            spans.append(pos.max(axis=1) - pos.min(axis=1))
        return _AXES[int(np.argmax(np.median(np.concatenate(spans), axis=0)))]

    def _detect_forward(self, clips: Sequence[MotionClip], up: str) -> str:
        """The signed root axis whose ground projection best follows the direction of travel
        (speed-weighted over ~0.5 s displacements); if the clips barely travel, the most
        horizontal one, +z first."""
        e_up = np.eye(3)[_AXES.index(up)]
        candidates = [s + a for a in "zxy" for s in ("", "-")]
        score = dict.fromkeys(candidates, 0.0)
        flat = dict.fromkeys(candidates, 0.0)
        travel = 0.0
        for c in clips:
            lag = max(1, round(0.5 * c.fps))
            if c.n_frames <= lag:
                continue
            p = local_translations(c.skeleton, c.frames)[:, 0]
            rot = local_rotations(c.skeleton, c.frames)[:, 0]
            d = p[lag:] - p[:-lag]
            d -= np.outer(d @ e_up, e_up)
            travel += float(np.linalg.norm(d, axis=1).sum())
            for cand in candidates:
                letter, sign = _parse_axis(cand, "forward_axis")
                w = rot[:-lag] @ (sign * np.eye(3)[_AXES.index(letter)])
                g = w - np.outer(w @ e_up, e_up)
                score[cand] += float(np.einsum("ti,ti->", g, d))
                flat[cand] += float(np.linalg.norm(g, axis=1).mean()) * c.n_frames
        n = sum(c.n_frames for c in clips) or 1
        best = max(candidates, key=lambda k: score[k])
        if travel > 0 and score[best] > 0.3 * travel:
            return best
        return max(candidates, key=lambda k: (flat[k] / n > 0.9, flat[k] / n))

    # ---- raw features --------------------------------------------------------------------
    def _block_rotations(
        self, skeleton: Skeleton, frames: np.ndarray, layout: _Layout
    ) -> tuple[np.ndarray, ...]:
        """``(mats (T, B, 3, 3), heading (T,), root position (T, 3))`` of ``(T, C)`` frames."""
        rot = local_rotations(skeleton, frames)
        p = local_translations(skeleton, frames)[:, 0]
        heading = self._heading(rot[:, 0])
        tilt = np.swapaxes(self._yaw(heading), -1, -2) @ rot[:, 0]
        mats = np.stack([tilt] + [rot[:, i] for _l, i, _c, _w in layout.rot_blocks[1:]], axis=1)
        return mats, heading, p

    def _encode(self, mats: np.ndarray, layout: _Layout) -> np.ndarray:
        """``(T, B, 3, 3)`` → ``(T, B, width)`` rotation features."""
        if self.rotation == "rot6d":
            return matrix_to_rot6d(mats)
        if self.rotation == "expmap":
            refs = np.stack([self._refs.get(label, np.eye(3)) for label, *_ in layout.rot_blocks])
            return matrix_to_rotvec(np.swapaxes(refs, -1, -2)[None] @ mats)
        return unwrap_expmap(matrix_to_rotvec(mats))

    def _decode(self, block: np.ndarray, label: str) -> np.ndarray:
        """``(T, width)`` rotation features of one block → ``(T, 3, 3)``."""
        if self.rotation == "rot6d":
            return rot6d_to_matrix(block)
        mats = rotvec_to_matrix(block)
        ref = self._refs.get(label)
        return mats if ref is None else ref @ mats

    def _raw_many(self, clips: Sequence[MotionClip], layout: _Layout) -> list[np.ndarray]:
        """``[(T_i-1, F_raw)]`` raw features in the canonical (unrotated) block coordinates;
        the rotations of all clips are computed in one batch (one skeleton)."""
        for clip in clips:
            if clip.n_frames < 2:
                raise ValueError(
                    f"clip {clip.name!r} has {clip.n_frames} frame(s); features need at least 2 "
                    "(frame 0 only provides the previous frame for the velocities)"
                )
        if not clips:
            return []
        frames = np.concatenate([c.frames for c in clips], axis=0)
        mats_all, heading_all, p_all = self._block_rotations(clips[0].skeleton, frames, layout)
        out_all: list[np.ndarray] = []
        start = 0
        for clip in clips:
            sl = slice(start, start + clip.n_frames)
            start += clip.n_frames
            mats, heading, p = mats_all[sl], heading_all[sl], p_all[sl]
            out = np.empty((clip.n_frames - 1, len(layout.names)))
            d = np.diff(p, axis=0)
            yaw_prev = self._yaw(heading[:-1])
            out[:, 0] = p[1:] @ self._e_up
            out[:, 1] = np.einsum("ti,ti->t", d, yaw_prev @ self._e_fwd)
            out[:, 2] = np.einsum("ti,ti->t", d, yaw_prev @ self._e_side)
            out[:, 3] = wrap_angle(np.diff(heading))
            enc = self._encode(mats, layout)  # per clip: expmap_unwrap unwraps within a clip
            for b, (_label, _i, col, width) in enumerate(layout.rot_blocks):
                out[:, col : col + width] = enc[1:, b]
            for _i, ch_col, col in layout.pos_cols:
                out[:, col] = clip.frames[1:, ch_col]
            out_all.append(out)
        return out_all

    def _raw(self, clip: MotionClip, layout: _Layout) -> np.ndarray:
        """``(T-1, F_raw)`` raw features of one clip (see :meth:`_raw_many`)."""
        return self._raw_many([clip], layout)[0]

    def _to_basis(self, raw: np.ndarray, layout: _Layout, inverse: bool = False) -> np.ndarray:
        out = raw.copy()
        for label, _i, col, width in layout.rot_blocks:
            basis = self._bases.get(label)
            if basis is not None:
                block = raw[:, col : col + width]
                out[:, col : col + width] = block @ (basis.T if inverse else basis)
        return out

    def raw_features(self, clip: MotionClip) -> np.ndarray:
        """``(T-1, F_raw)`` unstandardised features of frames ``1 … T-1`` with every dimension
        (dropped ones included), rotation blocks in their fitted basis."""
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
    def fit(
        self,
        clips: Sequence[MotionClip],
        source_fps: float | None = None,
        keep_raw: list[np.ndarray] | None = None,
    ) -> MotionFeatures:
        """Detect the axes (if ``"auto"``), fit the rotation references, the bases of
        rank-deficient blocks, the dropped dimensions, the scales and the training range.

        Args:
            clips: training clips, all of one skeleton (structure) and one frame rate, each
                with at least 2 frames. The first clip's skeleton (with its offsets) becomes
                the skeleton of :meth:`inverse_transform`.
            source_fps: frame rate of the files the clips were resampled from, recorded so
                that generated motion can be written back at the user's rate
                (:meth:`inverse_transform` ``fps=mf.source_fps``).
            keep_raw: a list that receives each clip's raw features (for :meth:`fit_transform`).

        Returns:
            ``self``.

        Raises:
            ValueError: no clips, clips of different skeletons or frame rates, a clip with
                fewer than 2 frames, or nothing but constant dimensions.
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
        for c in clips:
            if c.n_frames < 2:
                raise ValueError(
                    f"clip {c.name!r} has {c.n_frames} frame(s); features need at least 2"
                )
        detected = {"up": self.up_axis == "auto", "forward": self.forward_axis == "auto"}
        up = self._detect_up(clips) if detected["up"] else self.up_axis
        forward = self._detect_forward(clips, up) if detected["forward"] else self.forward_axis
        self._set_axes(up, forward)
        layout = _layout(sk, self.rotation)
        self._refs, self._bases = {}, {}
        max_angle: dict[str, float] = {}
        if self.rotation == "expmap":
            mats = np.concatenate(
                [self._block_rotations(c.skeleton, c.frames, layout)[0][1:] for c in clips]
            )
            for b, (label, *_rest) in enumerate(layout.rot_blocks):
                ref = mean_rotation(mats[:, b])
                self._refs[label] = ref
                angle = np.linalg.norm(matrix_to_rotvec(ref.T @ mats[:, b]), axis=-1).max()
                if angle > np.deg2rad(120.0):
                    max_angle[label] = round(float(np.rad2deg(angle)), 1)
        raws = self._raw_many(clips, layout)
        if keep_raw is not None:
            keep_raw.extend(raws)
        raw = np.concatenate(raws, axis=0)
        scale = sk.scale()
        tol = np.full(raw.shape[1], self.near_constant_tol)
        tol[: len(_ROOT_NAMES)] = (
            self.const_tol
        )  # the root's dimensions are only dropped if constant
        for _i, _ch, col in layout.pos_cols:
            tol[col] = self.near_constant_tol * scale
        if self.rotation_bases:
            for label, _i, col, width in layout.rot_blocks:
                block = raw[:, col : col + width]
                evals, evecs = np.linalg.eigh(np.cov(block, rowvar=False, bias=True))
                n_small = int(
                    (np.sqrt(np.maximum(evals, 0.0)) < max(tol[col], self.const_tol)).sum()
                )
                if 1 <= n_small < width:
                    basis = evecs[:, ::-1].copy()  # decreasing variance
                    for k in range(width):  # deterministic signs: largest entry positive
                        if basis[np.argmax(np.abs(basis[:, k])), k] < 0:
                            basis[:, k] *= -1
                    self._bases[label] = basis
        raw = self._to_basis(raw, layout)
        std_all = raw.std(axis=0)
        constant = std_all < self.const_tol
        near = (std_all < tol) & ~constant
        per_clip = ~(constant | near) & _per_clip_constant(
            raw, [r.shape[0] for r in raws], std_all, self.per_clip_tol
        )
        per_clip[: len(_ROOT_NAMES)] = False  # a clip's steady walk or turn is motion
        kept = ~(constant | near | per_clip)
        if not kept.any():
            raise ValueError("every feature is constant over the training clips: nothing to model")
        dependent = _dependent_dims(raw, kept, self.dependent_tol)
        kept &= ~dependent
        self.skeleton = sk
        self.frame_time = float(clips[0].frame_time)
        self.source_fps = None if source_fps is None else float(source_fps)
        self._layout = layout
        names = self._raw_names(layout)
        mean_all = raw.mean(axis=0)
        mean, std = mean_all[kept].copy(), std_all[kept].copy()
        z = (raw[:, kept] - mean) / std
        kurt = (z**4).mean(axis=0) - 3.0
        heavy: list[dict[str, Any]] = []
        kept_names = [n for n, k in zip(names, kept, strict=True) if k]
        for j in np.flatnonzero(kurt > self.outlier_kurtosis):
            values = raw[:, kept][:, j]
            q_lo, q_hi = np.quantile(values, [0.001, 0.999])
            central = values[(values >= q_lo) & (values <= q_hi)]
            robust = float(central.std()) if central.size > 1 else 0.0
            if robust > 0:
                heavy.append(
                    {
                        "name": kept_names[j],
                        "kurtosis": round(float(kurt[j]), 1),
                        "std": float(std[j]),
                        "robust_std": robust,
                    }
                )
                mean[j], std[j] = float(central.mean()), robust
        self._constants = mean_all
        self._kept = kept
        self._set_dependent(np.flatnonzero(dependent), raw, kept)
        self._per_clip_index = np.flatnonzero(per_clip).astype(np.int64)
        self._mean, self._std = mean, std
        z = (raw[:, kept] - mean) / std
        self._lo, self._hi = z.min(axis=0), z.max(axis=0)
        self._report = {
            "axes": {"up": self.up_axis, "forward": self.forward_axis, "detected": detected},
            "rotation": self.rotation,
            "n_frames": int(raw.shape[0]),
            "dropped_constant": [n for n, c in zip(names, constant, strict=True) if c],
            "near_constant": [n for n, c in zip(names, near, strict=True) if c],
            "per_clip_constant": [n for n, c in zip(names, per_clip, strict=True) if c],
            "dependent": [n for n, c in zip(names, dependent, strict=True) if c],
            "outlier_heavy": heavy,
            "outlier_frames": int((np.abs(z) > self.outlier_z).any(axis=1).sum()),
            "max_angle_from_mean": max_angle,
        }
        self._contact = self._fit_contact(clips)
        if max_angle:
            warnings.warn(
                f"expmap features: joints {sorted(max_angle)} reach {max(max_angle.values()):.0f}° "
                "from their mean rotation (the exp map jumps at 180°); rotation='rot6d' has no "
                "such limit",
                stacklevel=2,
            )
        return self

    def _fit_contact(self, clips: Sequence[MotionClip]) -> dict[str, Any] | None:
        """The training clips' floor under each foot joint and the contact tolerance
        (:func:`~seqboltz.motion.contact_floor`), or ``None`` for a rig that names no feet."""
        sk = clips[0].skeleton
        feet = foot_joints(sk.names)
        if not feet:
            return None
        up = "xyz".index(self.up_axis)
        heights = np.concatenate([forward_kinematics(sk, c.frames)[..., up] for c in clips])
        floor, threshold = contact_floor(heights, feet)
        return {
            "feet": [sk.names[j] for j in feet],
            "floor": [float(v) for v in floor],
            "threshold": float(threshold),
        }

    @property
    def contact(self) -> tuple[np.ndarray, float] | None:
        """``(floor (F,), threshold)`` of the training clips' foot contacts, for
        :func:`~seqboltz.motion.plant_feet` (``None``: a rig without feet, or features fitted
        before this was recorded)."""
        if self._contact is None:
            return None
        return np.asarray(self._contact["floor"], dtype=np.float64), float(
            self._contact["threshold"]
        )

    def plant_feet(self, clip: MotionClip, **options: Any) -> tuple[MotionClip, PlantReport]:
        """:func:`~seqboltz.motion.plant_feet` of a clip of this rig on the training clips' floor
        (:attr:`contact`; features from before it was recorded: the clip's own floor) and in
        these features' up axis; ``options`` as that function's."""
        floor, threshold = self.contact or (None, None)
        return _plant_feet(clip, up_axis=self.up_axis, floor=floor, threshold=threshold, **options)

    def _set_dependent(self, index: np.ndarray, raw: np.ndarray, kept: np.ndarray) -> None:
        """Least-squares ``raw[:, index] ≈ raw[:, kept] β + c`` (exact up to ``dependent_tol``)
        for :meth:`inverse_transform` to restore the dependent dimensions."""
        self._dep_index = index.astype(np.int64)
        if not index.size:
            self._dep_coef, self._dep_icpt = np.zeros((0, int(kept.sum()))), np.zeros(0)
            return
        x = raw[:, kept]
        centre = x.mean(axis=0)
        sol = np.linalg.lstsq(x - centre, raw[:, index] - raw[:, index].mean(axis=0), rcond=None)[0]
        self._dep_coef = sol.T.copy()
        self._dep_icpt = raw[:, index].mean(axis=0) - centre @ sol

    def transform(self, clip: MotionClip) -> np.ndarray:
        """Standardised features of frames ``1 … T-1`` of ``clip``.

        Args:
            clip: a clip of the fitted skeleton with ``T >= 2`` frames (at the fitted frame
                rate: resample other rates first, or use :meth:`seed_frames`).

        Returns:
            ``(T-1, F)`` float64.
        """
        _, _, kept, _, mean, std = self._require()
        raw = self.raw_features(clip)
        return np.asarray((raw[:, kept] - mean) / std)

    def transform_many(self, clips: Sequence[MotionClip]) -> list[np.ndarray]:
        """:meth:`transform` of each clip, the rotations of all of them computed in one batch
        (much faster for many short clips, e.g. phase copies)."""
        _, layout, kept, _, mean, std = self._require()
        for clip in clips:
            self._check_skeleton(clip)
        raws = self._raw_many(list(clips), layout)
        return [np.asarray((self._to_basis(r, layout)[:, kept] - mean) / std) for r in raws]

    def fit_transform(
        self, clips: Sequence[MotionClip], source_fps: float | None = None
    ) -> list[np.ndarray]:
        """:meth:`fit` then :meth:`transform` of each clip (the raw features computed once)."""
        raws: list[np.ndarray] = []
        self.fit(clips, source_fps=source_fps, keep_raw=raws)
        _, layout, kept, _, mean, std = self._require()
        return [np.asarray((self._to_basis(r, layout)[:, kept] - mean) / std) for r in raws]

    def outlier_frames(self, features: np.ndarray) -> np.ndarray:
        """``(T,)`` bool: frames of standardised ``features`` ``(T, F)`` with some dimension
        beyond ``outlier_z`` (glitches a data module may leave out of training)."""
        self._require()
        return np.asarray((np.abs(np.asarray(features)) > self.outlier_z).any(axis=1))

    def range_check(self, features: np.ndarray) -> dict[str, Any] | None:
        """Frames of standardised ``features`` ``(T, F)`` more than ``range_margin`` standard
        deviations outside the training minimum/maximum of some dimension.

        Returns:
            ``None`` if every frame is inside, else ``{"frames": count, "fraction": …,
            "worst": [(name, value, training_lo, training_hi), …]}`` with up to 3 dimensions,
            the farthest first (values in standard deviations).
        """
        self._require()
        if self._lo is None or self._hi is None:
            return None
        x = np.asarray(features, dtype=np.float64)
        below = np.maximum(self._lo - self.range_margin - x, 0.0)
        above = np.maximum(x - self._hi - self.range_margin, 0.0)
        excess = np.maximum(below, above)
        bad = (excess > 0).any(axis=1)
        if not bad.any():
            return None
        names = self.feature_names()
        per_dim = excess.max(axis=0)
        worst = []
        for j in np.argsort(-per_dim)[:3]:
            if per_dim[j] <= 0:
                break
            k = int(np.argmax(excess[:, j]))
            worst.append(
                (
                    names[j],
                    round(float(x[k, j]), 1),
                    round(float(self._lo[j]), 1),
                    round(float(self._hi[j]), 1),
                )
            )
        return {"frames": int(bad.sum()), "fraction": float(bad.mean()), "worst": worst}

    def seed_frames(self, clip: MotionClip, order: int) -> tuple[np.ndarray, RootState]:
        """The last ``order`` feature frames of a user's clip, to start generation from it.

        The clip (any frame rate, the fitted skeleton) is resampled to the model's rate so
        that its last frame is kept, turned into features, and its root state at that last
        frame is returned: generated frames ``g`` continue the clip as
        ``inverse_transform(g, state)``.

        Args:
            clip: e.g. :func:`~seqboltz.motion.read_bvh` of the user's file.
            order: the model's history length.

        Returns:
            ``(features (order, F) oldest first, RootState at the clip's last frame)``.

        Raises:
            ValueError: another skeleton, or fewer than ``order + 1`` frames at the model's rate.
        """
        self._require()
        self._check_skeleton(clip)
        fps = self.fps
        duration = (clip.n_frames - 1) / effective_fps(clip.fps, fps)
        n = math.floor(duration * fps + 1e-6)
        at_rate = resample_clip(clip, fps, start=max(duration - n / fps, 0.0))
        if at_rate.n_frames < order + 1:
            raise ValueError(
                f"clip {clip.name!r} has {at_rate.n_frames} frame(s) at {fps:g} fps; a seed "
                f"of order {order} needs at least {order + 1}"
            )
        x = self.transform(at_rate)[-order:]
        return x, self.initial_state(at_rate, frame=-1)

    def inverse_transform(
        self,
        features: np.ndarray,
        initial: RootState | tuple[Any, float] | None = None,
        name: str = "generated",
        fps: float | None = None,
    ) -> MotionClip:
        """Channel values from standardised features, integrating root velocity and heading.

        Args:
            features: ``(T, F)`` standardised features (e.g. a model's output).
            initial: root position and heading of the frame *before* the first feature frame
                (:meth:`initial_state` of the source clip); default origin, heading 0.
            name: name of the returned clip.
            fps: frame rate of the returned clip (e.g. :attr:`source_fps`, the rate of the
                user's files); default the model's rate. Rotations are resampled by slerp.

        Returns:
            A :class:`MotionClip` of the fitted skeleton (the rig's own axes): root position
            and rotation channels rebuilt from the integrated position/heading and the tilt,
            joint rotation channels as Euler angles (degrees) in each joint's channel order,
            continuous over time (no 360° jumps), position channels as values. Joints with
            fewer than 3 rotation channels get the closest rotation they can make.
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
        if state.performer is not None and len(state.performer) == self._per_clip_index.size:
            raw[:, self._per_clip_index] = np.asarray(state.performer, dtype=np.float64)
        if self._dep_index.size:
            raw[:, self._dep_index] = raw[:, kept] @ self._dep_coef.T + self._dep_icpt
        raw = self._to_basis(raw, layout, inverse=True)

        # Root: integrate heading and ground-plane displacement.
        heading = state.heading + np.cumsum(raw[:, 3])
        prev_heading = np.concatenate([[state.heading], heading[:-1]])
        yaw_prev = self._yaw(prev_heading)
        step = raw[:, 1:2] * (yaw_prev @ self._e_fwd) + raw[:, 2:3] * (yaw_prev @ self._e_side)
        pos = np.asarray(state.position, dtype=np.float64) + np.cumsum(step, axis=0)
        pos += np.outer(raw[:, 0] - pos @ self._e_up, self._e_up)
        mats = [self._decode(raw[:, c : c + w], label) for label, _i, c, w in layout.rot_blocks]
        root_rot = self._yaw(heading) @ mats[0]

        frames = np.zeros((n_frames, sk.n_channels))
        root = sk.joints[0]
        sl = sk.channel_slice(0)
        for k, c in enumerate(root.channels):
            if c in POSITION_CHANNELS:
                frames[:, sl.start + k] = pos[:, POSITION_CHANNELS.index(c)]
        self._put_rotation(frames, sk, 0, root_rot)
        for b, (_label, i, _col, _w) in enumerate(layout.rot_blocks):
            if i >= 0:
                self._put_rotation(frames, sk, i, mats[b])
        for _i, ch_col, col in layout.pos_cols:
            frames[:, ch_col] = raw[:, col]
        clip = MotionClip(sk, frames, self.frame_time or 1.0, name)
        if fps is not None and not math.isclose(fps, clip.fps, rel_tol=1e-6):
            clip = resample_clip(clip, fps)
        return clip

    @staticmethod
    def _put_rotation(frames: np.ndarray, sk: Skeleton, i: int, mats: np.ndarray) -> None:
        j = sk.joints[i]
        if not j.rotation_order:
            return
        sl = sk.channel_slice(i)
        cols = [sl.start + k for k, c in enumerate(j.channels) if c in ROTATION_CHANNELS]
        frames[:, cols] = unwrap_degrees(np.rad2deg(matrix_to_euler(mats, j.rotation_order)))

    # ---- serialisation -------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Everything needed to transform and invert, as JSON-serialisable plain values.

        Keys: ``format_version`` (2), ``kind``, ``up_axis``, ``forward_axis``, ``rotation``,
        the tolerances, ``frame_time``, ``fps``, ``source_fps``, ``skeleton`` (joints with
        offsets and channels), ``raw_feature_names``, ``feature_names``, ``kept`` (bool per raw
        dimension), ``constants`` (per raw dimension), ``mean`` and ``std`` (per kept
        dimension), ``train_min``/``train_max`` (standardised, per kept dimension), ``bases``
        (``{block: width×width row-major}``), ``references`` (``expmap``: ``{block: 3×3}``),
        ``per_clip_index`` (raw dimensions restored from :attr:`RootState.performer`),
        ``dependent`` (``{"index": raw dimensions, "coef": rows over the kept raw dimensions,
        "intercept"}``), ``dependent_tol`` and ``report``.
        """
        sk, _layout, kept, constants, mean, std = self._require()
        return {
            "format_version": FORMAT_VERSION,
            "kind": "seqboltz.motion.MotionFeatures",
            "up_axis": self.up_axis,
            "forward_axis": self.forward_axis,
            "rotation": self.rotation,
            "const_tol": self.const_tol,
            "near_constant_tol": self.near_constant_tol,
            "rotation_bases": self.rotation_bases,
            "outlier_kurtosis": self.outlier_kurtosis,
            "outlier_z": self.outlier_z,
            "range_margin": self.range_margin,
            "dependent_tol": self.dependent_tol,
            "per_clip_tol": self.per_clip_tol,
            "frame_time": self.frame_time,
            "fps": self.fps,
            "source_fps": self.source_fps,
            "skeleton": sk.to_dict(),
            "skeleton_signature": sk.signature(),
            "raw_feature_names": self.raw_feature_names(),
            "feature_names": self.feature_names(),
            "kept": [bool(k) for k in kept],
            "constants": [float(v) for v in constants],
            "mean": [float(v) for v in mean],
            "std": [float(v) for v in std],
            "train_min": [float(v) for v in self._lo] if self._lo is not None else None,
            "train_max": [float(v) for v in self._hi] if self._hi is not None else None,
            "bases": {k: v.tolist() for k, v in self._bases.items()},
            "references": {k: v.tolist() for k, v in self._refs.items()},
            "per_clip_index": [int(i) for i in self._per_clip_index],
            "dependent": {
                "index": [int(i) for i in self._dep_index],
                "coef": self._dep_coef.tolist(),
                "intercept": [float(v) for v in self._dep_icpt],
            },
            "report": self._report,
            "contact": self._contact,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MotionFeatures:
        """Rebuild a fitted :class:`MotionFeatures` from :meth:`to_dict` (unknown keys ignored;
        ``format_version`` 1, the unwrapped exp maps of earlier versions, is read as
        ``rotation="expmap_unwrap"``).

        Raises:
            ValueError: an unsupported ``format_version`` or inconsistent lengths.
        """
        version = d.get("format_version")
        if version not in (1, FORMAT_VERSION):
            raise ValueError(f"unsupported MotionFeatures format_version {version!r}")
        rotation = (
            d.get("rotation", "expmap_unwrap") if version == FORMAT_VERSION else "expmap_unwrap"
        )
        mf = cls(
            up_axis=d["up_axis"],
            forward_axis=d["forward_axis"],
            rotation=rotation if rotation in _ROTATIONS else "expmap_unwrap",  # type: ignore[arg-type]
            const_tol=d["const_tol"],
            near_constant_tol=d.get("near_constant_tol", 1e-3),
            rotation_bases=d["rotation_bases"],
            outlier_kurtosis=d.get("outlier_kurtosis", 20.0),
            outlier_z=d.get("outlier_z", 10.0),
            range_margin=d.get("range_margin", 4.0),
            dependent_tol=d.get("dependent_tol", 0.0),
            per_clip_tol=d.get("per_clip_tol", 0.0),
        )
        sk = Skeleton.from_dict(d["skeleton"])
        layout = _layout(sk, mf.rotation)
        kept = np.asarray(d["kept"], dtype=bool)
        constants = np.asarray(d["constants"], dtype=np.float64)
        mean = np.asarray(d["mean"], dtype=np.float64)
        std = np.asarray(d["std"], dtype=np.float64)
        n_raw = len(layout.names)
        if kept.shape != (n_raw,) or constants.shape != (n_raw,):
            raise ValueError(f"kept/constants must have {n_raw} entries for this skeleton")
        if mean.shape != (int(kept.sum()),) or std.shape != mean.shape or np.any(std <= 0):
            raise ValueError("mean/std must have one positive entry per kept dimension")
        widths = {label: w for label, _i, _c, w in layout.rot_blocks}
        bases, refs = {}, {}
        for k, v in d.get("bases", {}).items():
            if k not in widths:
                raise ValueError(f"basis for unknown rotation block {k!r}")
            bases[k] = np.asarray(v, dtype=np.float64).reshape(widths[k], widths[k])
        for k, v in (d.get("references") or {}).items():
            if k not in widths:
                raise ValueError(f"reference for unknown rotation block {k!r}")
            refs[k] = np.asarray(v, dtype=np.float64).reshape(3, 3)
        mf.skeleton = sk
        mf.frame_time = float(d["frame_time"])
        mf.source_fps = float(d["source_fps"]) if d.get("source_fps") else None
        mf._layout = layout
        mf._bases = bases
        mf._refs = refs
        mf._kept = kept
        mf._constants = constants
        mf._mean = mean
        mf._std = std
        for key, attr in (("train_min", "_lo"), ("train_max", "_hi")):
            if d.get(key) is not None:
                arr = np.asarray(d[key], dtype=np.float64)
                if arr.shape != mean.shape:
                    raise ValueError(f"{key} must have one entry per kept dimension")
                setattr(mf, attr, arr)
        dep = d.get("dependent") or {}
        index = np.asarray(dep.get("index", []), dtype=np.int64)
        coef = np.asarray(dep.get("coef", []), dtype=np.float64)
        if not index.size:
            coef = np.zeros((0, int(kept.sum())))
        icpt = np.asarray(dep.get("intercept", []), dtype=np.float64)
        if index.size and (
            coef.shape != (index.size, int(kept.sum()))
            or icpt.shape != index.shape
            or index.min() < 0
            or index.max() >= n_raw
            or kept[index].any()
        ):
            raise ValueError("dependent: index/coef/intercept do not fit the kept dimensions")
        mf._dep_index, mf._dep_coef, mf._dep_icpt = index, coef, icpt
        per_clip = np.asarray(d.get("per_clip_index", []), dtype=np.int64)
        if per_clip.size and (
            per_clip.min() < 0 or per_clip.max() >= n_raw or kept[per_clip].any()
        ):
            raise ValueError("per_clip_index must name dropped raw dimensions")
        mf._per_clip_index = per_clip
        mf._report = dict(d.get("report") or {})
        contact = d.get("contact")
        if contact is not None:
            feet = [sk.names[j] for j in foot_joints(sk.names)]
            floor = contact.get("floor", [])
            threshold = contact.get("threshold", 0)
            if contact.get("feet") != feet or len(floor) != len(feet) or not threshold > 0:
                raise ValueError(
                    f"contact must name the skeleton's foot joints {feet}, with one floor each "
                    "and a positive threshold"
                )
            mf._contact = {"feet": feet, "floor": [float(v) for v in floor], "threshold": threshold}
        return mf
