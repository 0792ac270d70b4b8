"""Rotation helpers in plain numpy: Euler angles (BVH convention) ↔ matrices ↔ exponential maps.

Conventions (column vectors, right-handed, radians unless a name says ``deg``):

* ``axis_rotation("X", a)`` is the usual active rotation by ``a`` about x.
* Euler angles follow the BVH convention: the rotation channels of a joint, read left to right,
  are *intrinsic* rotations, so ``"Zrotation Xrotation Yrotation"`` (``order="ZXY"``) means
  ``R = Rz(z) @ Rx(x) @ Ry(y)`` and a point of the child's frame maps to the parent's frame as
  ``p_parent = R @ p_child + offset``. This is what Blender's BVH importer (it reverses the
  channel string into Blender's extrinsic order), MotionBuilder and ``bvhio``
  (``Euler.toQuatFrom(order, extrinsic=False)``) do, and what scipy calls
  ``Rotation.from_euler("ZXY", ...)`` with upper-case letters; the tests check both.
* Exponential maps (Grassia 1998, "Practical parameterization of rotations using the exponential
  map") are rotation vectors ``r = θ·u``: ``R = exp([r]×)``.

Everything here is numpy only (no scipy), so the torch-free runtime can turn generated features
back into joint angles with a bare numpy install. Results agree with
``scipy.spatial.transform.Rotation`` to ~1e-12 (tested).
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "axis_rotation",
    "complete_order",
    "euler_to_matrix",
    "matrix_to_euler",
    "matrix_to_quaternion",
    "matrix_to_rot6d",
    "matrix_to_rotvec",
    "mean_rotation",
    "quaternion_slerp",
    "quaternion_to_matrix",
    "rot6d_to_matrix",
    "rotvec_to_matrix",
    "unwrap_degrees",
    "unwrap_expmap",
    "wrap_angle",
]

_AXIS_INDEX = {"X": 0, "Y": 1, "Z": 2}


def _check_order(order: str, allow_partial: bool) -> str:
    order = order.upper()
    if not order or any(c not in _AXIS_INDEX for c in order) or len(set(order)) != len(order):
        raise ValueError(f"rotation order must be distinct axes from 'XYZ', got {order!r}")
    if not allow_partial and len(order) != 3:
        raise ValueError(f"rotation order must name all three axes, got {order!r}")
    return order


def complete_order(order: str) -> str:
    """Pad a 1- or 2-axis order with the missing axes (in XYZ order): ``"ZX"`` → ``"ZXY"``."""
    order = _check_order(order, allow_partial=True)
    return order + "".join(c for c in "XYZ" if c not in order)


def axis_rotation(axis: str, angle: np.ndarray | float) -> np.ndarray:
    """Rotation matrices about a coordinate axis.

    Args:
        axis: ``"X"``, ``"Y"`` or ``"Z"``.
        angle: angles in radians, any shape ``S``.

    Returns:
        ``S + (3, 3)`` float64 matrices.
    """
    i = _AXIS_INDEX[_check_order(axis, allow_partial=True)]
    a = np.asarray(angle, dtype=np.float64)
    c, s = np.cos(a), np.sin(a)
    j, k = (i + 1) % 3, (i + 2) % 3
    out = np.zeros((*a.shape, 3, 3))
    out[..., i, i] = 1.0
    out[..., j, j] = c
    out[..., k, k] = c
    out[..., j, k] = -s
    out[..., k, j] = s
    return out


def _quat_mul(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Hamilton product of ``(..., 4)`` quaternions ``(w, x, y, z)``, elementwise."""
    pw, px, py, pz = p[..., 0], p[..., 1], p[..., 2], p[..., 3]
    qw, qx, qy, qz = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    return np.stack(
        [
            pw * qw - px * qx - py * qy - pz * qz,
            pw * qx + px * qw + py * qz - pz * qy,
            pw * qy - px * qz + py * qw + pz * qx,
            pw * qz + px * qy - py * qx + pz * qw,
        ],
        axis=-1,
    )


def euler_to_matrix(angles: np.ndarray, order: str) -> np.ndarray:
    """Intrinsic Euler angles (BVH convention) to rotation matrices.

    Composed as unit quaternions (elementwise arithmetic, no batched 3×3 products), then
    converted once: the same matrices as ``R_{order[0]} @ R_{order[1]} @ R_{order[2]}``.

    Args:
        angles: ``(..., k)`` radians, one column per axis of ``order``.
        order: ``k`` distinct axes (1 to 3), e.g. ``"ZXY"`` for ``Zrotation Xrotation Yrotation``.

    Returns:
        ``(..., 3, 3)`` float64, ``R = R_{order[0]} @ R_{order[1]} @ R_{order[2]}``.
    """
    order = _check_order(order, allow_partial=True)
    a = np.asarray(angles, dtype=np.float64)
    if a.shape[-1:] != (len(order),):
        raise ValueError(f"angles must have a last axis of {len(order)} for {order!r}: {a.shape}")
    q = None
    for n, axis in enumerate(order):
        half = 0.5 * a[..., n]
        qn = np.zeros((*half.shape, 4))
        qn[..., 0] = np.cos(half)
        qn[..., 1 + _AXIS_INDEX[axis]] = np.sin(half)
        q = qn if q is None else _quat_mul(q, qn)
    assert q is not None
    return quaternion_to_matrix(q)


def matrix_to_euler(matrix: np.ndarray, order: str) -> np.ndarray:
    """Rotation matrices to intrinsic Euler angles (inverse of :func:`euler_to_matrix`).

    For a full order (three axes ``i, j, k``) the result is exact: the middle angle lies in
    [-π/2, π/2] and the others in (-π, π]; at gimbal lock (middle angle ±π/2) the last angle is set
    to 0. For a 1- or 2-axis order the matrix is decomposed in :func:`complete_order` and the
    angles of the missing axes are dropped, which is exact when the rotation is one the joint can
    make and the nearest such rotation otherwise (e.g. for generated features).

    Args:
        matrix: ``(..., 3, 3)`` rotation matrices.
        order: 1 to 3 distinct axes.

    Returns:
        ``(..., len(order))`` radians.
    """
    order = _check_order(order, allow_partial=True)
    if len(order) < 3:
        return matrix_to_euler(matrix, complete_order(order))[..., : len(order)]
    r = np.asarray(matrix, dtype=np.float64)
    if r.shape[-2:] != (3, 3):
        raise ValueError(f"matrix must have shape (..., 3, 3), got {r.shape}")
    i, j, k = (_AXIS_INDEX[c] for c in order)
    # +1 for cyclic orders (XYZ, YZX, ZXY), -1 otherwise: e_i x e_j = s e_k.
    s = 1.0 if (j - i) % 3 == 1 else -1.0
    # R = Ri(a) Rj(b) Rk(c): R[i,k] = s sin b, R[j,k] = -s sin a cos b, R[k,k] = cos a cos b,
    # R[i,j] = -s cos b sin c, R[i,i] = cos b cos c.
    sin_b = s * r[..., i, k]
    cos_b = np.hypot(r[..., i, i], r[..., i, j])
    b = np.arctan2(sin_b, cos_b)
    a = np.arctan2(-s * r[..., j, k], r[..., k, k])
    c = np.arctan2(-s * r[..., i, j], r[..., i, i])
    gimbal = cos_b < 1e-9
    if np.any(gimbal):
        # c := 0; then R e_j = Ri(a) e_j = cos a e_j + s sin a e_k.
        a = np.where(gimbal, np.arctan2(s * r[..., k, j], r[..., j, j]), a)
        c = np.where(gimbal, 0.0, c)
    return np.stack([a, b, c], axis=-1)


def matrix_to_quaternion(matrix: np.ndarray) -> np.ndarray:
    """Rotation matrices to unit quaternions ``(w, x, y, z)`` with ``w >= 0`` (Shepperd's method).

    Args:
        matrix: ``(..., 3, 3)``.

    Returns:
        ``(..., 4)`` float64.
    """
    r = np.asarray(matrix, dtype=np.float64)
    if r.shape[-2:] != (3, 3):
        raise ValueError(f"matrix must have shape (..., 3, 3), got {r.shape}")
    batch = r.shape[:-2]
    r = r.reshape(-1, 3, 3)
    tr = np.trace(r, axis1=1, axis2=2)
    diag = np.stack([r[:, 0, 0], r[:, 1, 1], r[:, 2, 2]], axis=1)
    choice = np.argmax(np.concatenate([tr[:, None], diag], axis=1), axis=1)
    q = np.empty((r.shape[0], 4))
    m = choice == 0
    if np.any(m):
        t = np.sqrt(1.0 + tr[m]) * 2.0
        q[m, 0] = 0.25 * t
        q[m, 1] = (r[m, 2, 1] - r[m, 1, 2]) / t
        q[m, 2] = (r[m, 0, 2] - r[m, 2, 0]) / t
        q[m, 3] = (r[m, 1, 0] - r[m, 0, 1]) / t
    for n in range(3):
        m = choice == n + 1
        if not np.any(m):
            continue
        i, j, k = n, (n + 1) % 3, (n + 2) % 3
        t = np.sqrt(np.maximum(1.0 + r[m, i, i] - r[m, j, j] - r[m, k, k], 0.0)) * 2.0
        q[m, 0] = (r[m, k, j] - r[m, j, k]) / t
        q[m, 1 + i] = 0.25 * t
        q[m, 1 + j] = (r[m, j, i] + r[m, i, j]) / t
        q[m, 1 + k] = (r[m, k, i] + r[m, i, k]) / t
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    q *= np.where(q[:, :1] < 0, -1.0, 1.0)
    return q.reshape(*batch, 4)


def quaternion_to_matrix(quat: np.ndarray) -> np.ndarray:
    """Unit quaternions ``(w, x, y, z)`` (normalised here) to rotation matrices ``(..., 3, 3)``."""
    q = np.asarray(quat, dtype=np.float64)
    if q.shape[-1:] != (4,):
        raise ValueError(f"quaternions must have shape (..., 4), got {q.shape}")
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    w, x, y, z = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    out = np.empty((*q.shape[:-1], 3, 3))
    out[..., 0, 0] = 1 - 2 * (y * y + z * z)
    out[..., 0, 1] = 2 * (x * y - z * w)
    out[..., 0, 2] = 2 * (x * z + y * w)
    out[..., 1, 0] = 2 * (x * y + z * w)
    out[..., 1, 1] = 1 - 2 * (x * x + z * z)
    out[..., 1, 2] = 2 * (y * z - x * w)
    out[..., 2, 0] = 2 * (x * z - y * w)
    out[..., 2, 1] = 2 * (y * z + x * w)
    out[..., 2, 2] = 1 - 2 * (x * x + y * y)
    return out


def matrix_to_rotvec(matrix: np.ndarray) -> np.ndarray:
    """Rotation matrices to exponential maps (rotation vectors) with angle in [0, π].

    Goes through the quaternion, so it is accurate for every angle including θ ≈ π.

    Args:
        matrix: ``(..., 3, 3)``.

    Returns:
        ``(..., 3)`` radians.
    """
    q = matrix_to_quaternion(matrix)
    v = q[..., 1:]
    sin_half = np.linalg.norm(v, axis=-1)
    angle = 2.0 * np.arctan2(sin_half, q[..., 0])
    # angle / sin(angle/2), with its limit 2 (+ angle^2/12) near 0.
    small = sin_half < 1e-8
    scale = np.where(small, 2.0 + angle**2 / 12.0, angle / np.where(small, 1.0, sin_half))
    return v * scale[..., None]


def rotvec_to_matrix(rotvec: np.ndarray) -> np.ndarray:
    """Exponential maps (rotation vectors, any angle) to rotation matrices.

    Args:
        rotvec: ``(..., 3)`` radians.

    Returns:
        ``(..., 3, 3)`` float64.
    """
    r = np.asarray(rotvec, dtype=np.float64)
    if r.shape[-1:] != (3,):
        raise ValueError(f"rotation vectors must have shape (..., 3), got {r.shape}")
    angle = np.linalg.norm(r, axis=-1)
    half = 0.5 * angle
    small = angle < 1e-8
    # sin(θ/2)/θ with its Taylor limit 1/2 - θ²/48 near 0.
    k = np.where(small, 0.5 - angle**2 / 48.0, np.sin(half) / np.where(small, 1.0, angle))
    q = np.concatenate([np.cos(half)[..., None], r * k[..., None]], axis=-1)
    return quaternion_to_matrix(q)


def wrap_angle(angle: np.ndarray | float) -> np.ndarray:
    """Wrap angles (radians) to (-π, π]."""
    a = np.asarray(angle, dtype=np.float64)
    w = np.mod(a + np.pi, 2.0 * np.pi) - np.pi
    return np.where(w <= -np.pi, w + 2.0 * np.pi, w)


def unwrap_expmap(rotvecs: np.ndarray) -> np.ndarray:
    """Make a sequence of exponential maps continuous in time.

    A rotation by θ about u equals a rotation by θ + 2πk about u for every integer k, so each
    frame's rotation vector ``θu`` can be replaced by ``(θ + 2πk)u``. Frame by frame, the
    equivalent vector closest (Euclidean) to the previous, already unwrapped frame is chosen
    (Grassia 1998, §4; Taylor et al. 2007 use exp maps for the same reason). A joint that turns
    smoothly through 180° therefore gives a smooth curve with |θ| > π instead of a jump
    from +π u to -π u. The first frame is kept as it is (|θ| ≤ π).

    Args:
        rotvecs: ``(T, 3)`` rotation vectors of one joint over time (or ``(T, ..., 3)``).

    Returns:
        ``(T, ..., 3)`` rotation vectors, each describing the same rotation as its input.
    """
    r = np.array(rotvecs, dtype=np.float64, copy=True)
    if r.ndim < 2 or r.shape[-1] != 3:
        raise ValueError(f"rotvecs must have shape (T, ..., 3), got {r.shape}")
    two_pi = 2.0 * np.pi
    for t in range(1, r.shape[0]):
        prev = r[t - 1]
        cur = r[t]
        theta = np.linalg.norm(cur, axis=-1, keepdims=True)
        prev_norm = np.linalg.norm(prev, axis=-1, keepdims=True)
        # Near the identity the axis is undefined: borrow the previous frame's axis.
        tiny = theta < 1e-12
        axis = np.where(
            tiny,
            prev / np.where(prev_norm > 0, prev_norm, 1.0),
            cur / np.where(tiny, 1.0, theta),
        )
        # Candidates (θ + 2πk)u; the best k rounds (prev·u - θ) / 2π, check its neighbours too.
        proj = np.sum(prev * axis, axis=-1, keepdims=True)
        k0 = np.round((proj - theta) / two_pi)
        best = cur
        best_d = np.full(theta.shape, np.inf)
        for dk in (-1.0, 0.0, 1.0):
            cand = (theta + two_pi * (k0 + dk)) * axis
            d = np.linalg.norm(cand - prev, axis=-1, keepdims=True)
            better = d < best_d
            best = np.where(better, cand, best)
            best_d = np.where(better, d, best_d)
        r[t] = best
    return r


def quaternion_slerp(q0: np.ndarray, q1: np.ndarray, t: np.ndarray | float) -> np.ndarray:
    """Spherical linear interpolation of unit quaternions along the shorter arc (Shoemake 1985).

    Args:
        q0: ``(..., 4)`` unit quaternions ``(w, x, y, z)`` at ``t = 0``.
        q1: ``(..., 4)`` at ``t = 1``; ``-q1`` is used where it is closer to ``q0`` (same
            rotation), so the path never takes the long way round.
        t: interpolation weights, broadcastable to ``q0.shape[:-1]``.

    Returns:
        ``(..., 4)`` unit quaternions (the constant-speed geodesic between the two rotations).
    """
    a = np.asarray(q0, dtype=np.float64)
    b = np.asarray(q1, dtype=np.float64)
    w = np.asarray(t, dtype=np.float64)[..., None]
    dot = np.sum(a * b, axis=-1, keepdims=True)
    b = np.where(dot < 0.0, -b, b)
    dot = np.abs(dot)
    theta = np.arccos(np.clip(dot, -1.0, 1.0))
    sin_t = np.sin(theta)
    close = sin_t < 1e-9  # nearly equal: linear interpolation is exact to rounding
    safe = np.where(close, 1.0, sin_t)
    k0 = np.where(close, 1.0 - w, np.sin((1.0 - w) * theta) / safe)
    k1 = np.where(close, w, np.sin(w * theta) / safe)
    q = k0 * a + k1 * b
    return np.asarray(q / np.linalg.norm(q, axis=-1, keepdims=True))


def matrix_to_rot6d(matrix: np.ndarray) -> np.ndarray:
    """The continuous 6-D rotation representation of Zhou et al. 2019 ("On the continuity of
    rotation representations in neural networks", CVPR): the first two columns of ``R``.

    Args:
        matrix: ``(..., 3, 3)`` rotation matrices.

    Returns:
        ``(..., 6)``: ``[R[:, 0], R[:, 1]]`` (column 0 then column 1).
    """
    r = np.asarray(matrix, dtype=np.float64)
    if r.shape[-2:] != (3, 3):
        raise ValueError(f"matrix must have shape (..., 3, 3), got {r.shape}")
    return np.concatenate([r[..., :, 0], r[..., :, 1]], axis=-1)


def rot6d_to_matrix(rot6d: np.ndarray) -> np.ndarray:
    """Rotation matrices from 6-D vectors by Gram-Schmidt (Zhou et al. 2019, eq. 15): any 6-D
    vector whose halves are not parallel maps to the nearest-in-spirit rotation, so generated
    (off-manifold) features still give a valid pose.

    Args:
        rot6d: ``(..., 6)`` as from :func:`matrix_to_rot6d`.

    Returns:
        ``(..., 3, 3)`` float64 rotation matrices.
    """
    v = np.asarray(rot6d, dtype=np.float64)
    if v.shape[-1:] != (6,):
        raise ValueError(f"6-D rotations must have shape (..., 6), got {v.shape}")
    a, b = v[..., :3], v[..., 3:]
    n_a = np.linalg.norm(a, axis=-1, keepdims=True)
    x = a / np.where(n_a > 1e-12, n_a, 1.0)
    x = np.where(n_a > 1e-12, x, np.array([1.0, 0.0, 0.0]))
    b = b - np.sum(x * b, axis=-1, keepdims=True) * x
    n_b = np.linalg.norm(b, axis=-1, keepdims=True)
    # a degenerate second column: any unit vector orthogonal to x
    fallback = np.cross(x, np.where(np.abs(x[..., :1]) < 0.9, [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]))
    fallback /= np.linalg.norm(fallback, axis=-1, keepdims=True)
    y = np.where(n_b > 1e-12, b / np.where(n_b > 1e-12, n_b, 1.0), fallback)
    z = np.cross(x, y)
    return np.stack([x, y, z], axis=-1)


def mean_rotation(matrix: np.ndarray) -> np.ndarray:
    """The chordal L2 mean of rotations: the rotation nearest (Frobenius) to their arithmetic
    mean (Hartley et al. 2013, "Rotation averaging", §5.3), by SVD.

    Args:
        matrix: ``(N, 3, 3)`` rotation matrices.

    Returns:
        ``(3, 3)`` rotation matrix.
    """
    r = np.asarray(matrix, dtype=np.float64).reshape(-1, 3, 3)
    u, _, vt = np.linalg.svd(r.mean(axis=0))
    d = np.sign(np.linalg.det(u @ vt)) or 1.0
    return np.asarray(u @ np.diag([1.0, 1.0, d]) @ vt)


def unwrap_degrees(angles: np.ndarray, axis: int = 0) -> np.ndarray:
    """Remove 360° jumps from Euler channel values along ``axis`` (time), so a joint turning
    through ±180° gives a continuous channel in the written BVH (``numpy.unwrap``, degrees)."""
    a = np.asarray(angles, dtype=np.float64)
    if a.shape[axis] < 2:
        return a.copy()
    return np.asarray(np.unwrap(a, period=360.0, axis=axis))
