from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from seqboltz.motion import (
    axis_rotation,
    complete_order,
    euler_to_matrix,
    matrix_to_euler,
    matrix_to_quaternion,
    matrix_to_rotvec,
    quaternion_to_matrix,
    rotvec_to_matrix,
    unwrap_expmap,
    wrap_angle,
)

ORDERS = ["".join(p) for p in itertools.permutations("XYZ")]
RNG = np.random.default_rng(0)


def test_axis_rotation_is_active_right_handed() -> None:
    # +90° about Z takes x to y; about X takes y to z; about Y takes z to x.
    np.testing.assert_allclose(axis_rotation("Z", np.pi / 2) @ [1, 0, 0], [0, 1, 0], atol=1e-15)
    np.testing.assert_allclose(axis_rotation("X", np.pi / 2) @ [0, 1, 0], [0, 0, 1], atol=1e-15)
    np.testing.assert_allclose(axis_rotation("Y", np.pi / 2) @ [0, 0, 1], [1, 0, 0], atol=1e-15)


@pytest.mark.parametrize("order", [*ORDERS, "ZX", "YZ", "X", "Y"])
def test_euler_is_intrinsic_like_scipy_uppercase(order: str) -> None:
    angles = RNG.uniform(-np.pi, np.pi, (200, len(order)))
    ours = euler_to_matrix(angles, order)
    np.testing.assert_allclose(ours, Rotation.from_euler(order, angles).as_matrix(), atol=1e-14)
    # intrinsic = the product of the axis rotations in channel order
    manual = np.eye(3)
    for k, axis in enumerate(order):
        manual = manual @ axis_rotation(axis, angles[0, k])
    np.testing.assert_allclose(ours[0], manual, atol=1e-14)


@pytest.mark.parametrize("order", ORDERS)
def test_matrix_to_euler_inverts_and_handles_gimbal_lock(order: str) -> None:
    angles = RNG.uniform(-np.pi, np.pi, (500, 3))
    angles[:, 1] /= 2.0  # the middle angle's range
    got = matrix_to_euler(euler_to_matrix(angles, order), order)
    np.testing.assert_allclose(got, angles, atol=1e-12)
    locked = angles.copy()
    locked[:, 1] = np.pi / 2 * np.sign(RNG.standard_normal(500))
    m = euler_to_matrix(locked, order)
    np.testing.assert_allclose(euler_to_matrix(matrix_to_euler(m, order), order), m, atol=1e-12)
    # any rotation (scipy's random ones) comes back as the same matrix
    r = Rotation.random(300, random_state=1).as_matrix()
    np.testing.assert_allclose(euler_to_matrix(matrix_to_euler(r, order), order), r, atol=1e-12)


def test_partial_orders_exact_inside_their_subgroup() -> None:
    assert complete_order("ZX") == "ZXY" and complete_order("y") == "YXZ"
    angles = RNG.uniform(-3, 3, (100, 2))
    angles[:, 1] /= 2.0
    m = euler_to_matrix(angles, "ZX")
    np.testing.assert_allclose(matrix_to_euler(m, "ZX"), angles, atol=1e-12)
    one = RNG.uniform(-3, 3, (50, 1))
    np.testing.assert_allclose(matrix_to_euler(euler_to_matrix(one, "Y"), "Y"), one, atol=1e-12)


def test_bad_orders_rejected() -> None:
    for bad in ("XXY", "XYW", ""):
        with pytest.raises(ValueError, match="rotation order"):
            euler_to_matrix(np.zeros(len(bad) or 1), bad)


def test_rotvec_and_quaternion_match_scipy_at_all_angles() -> None:
    r = Rotation.random(2000, random_state=2)
    np.testing.assert_allclose(matrix_to_rotvec(r.as_matrix()), r.as_rotvec(), atol=1e-12)
    np.testing.assert_allclose(rotvec_to_matrix(r.as_rotvec()), r.as_matrix(), atol=1e-12)
    q = matrix_to_quaternion(r.as_matrix())
    q_scipy = r.as_quat(canonical=True)[:, [3, 0, 1, 2]]  # scipy: (x, y, z, w)
    np.testing.assert_allclose(q, q_scipy, atol=1e-12)
    np.testing.assert_allclose(quaternion_to_matrix(q), r.as_matrix(), atol=1e-12)
    # near 0 and near π (the hard cases of a log map)
    axis = RNG.standard_normal((100, 3))
    axis /= np.linalg.norm(axis, axis=1, keepdims=True)
    for theta in (0.0, 1e-12, 1e-6, np.pi - 1e-9, np.pi):
        m = rotvec_to_matrix(axis * theta)
        np.testing.assert_allclose(m, Rotation.from_rotvec(axis * theta).as_matrix(), atol=1e-13)
        back = matrix_to_rotvec(m)
        np.testing.assert_allclose(rotvec_to_matrix(back), m, atol=1e-13)
        assert np.all(np.linalg.norm(back, axis=1) <= np.pi + 1e-12)


def test_rotvec_to_matrix_accepts_any_angle() -> None:
    u = np.array([0.0, 0.6, 0.8])
    np.testing.assert_allclose(
        rotvec_to_matrix(u * (np.pi + 0.3)), rotvec_to_matrix(-u * (np.pi - 0.3)), atol=1e-14
    )
    np.testing.assert_allclose(rotvec_to_matrix(u * 2 * np.pi), np.eye(3), atol=1e-14)


def test_wrap_angle_range() -> None:
    a = np.array([np.pi, -np.pi, 3 * np.pi, 0.1, -0.1 - 4 * np.pi, 7.0])
    w = wrap_angle(a)
    assert np.all(w > -np.pi) and np.all(w <= np.pi)
    np.testing.assert_allclose(np.cos(w), np.cos(a), atol=1e-12)
    np.testing.assert_allclose(np.sin(w), np.sin(a), atol=1e-12)
    assert w[0] == w[1] == np.pi


def test_unwrap_continuous_through_180_degrees() -> None:
    # A joint spinning about a fixed axis for two full turns: the principal exp map jumps
    # from +π·u to -π·u; the unwrapped one is θ(t)·u exactly.
    u = np.array([0.3, -0.5, 0.812])
    u /= np.linalg.norm(u)
    theta = np.linspace(0.0, 4 * np.pi, 401)
    raw = matrix_to_rotvec(rotvec_to_matrix(theta[:, None] * u))
    assert np.linalg.norm(np.diff(raw, axis=0), axis=1).max() > 6.0, "the principal branch jumps"
    un = unwrap_expmap(raw)
    np.testing.assert_allclose(un, theta[:, None] * u, atol=1e-9)
    # Going back and forth across 180° about a wobbling axis: continuous, same rotations.
    t = np.linspace(0, 1, 300)
    angle = np.pi + 0.4 * np.sin(2 * np.pi * 3 * t)
    axes = np.stack([np.sin(0.3 * t), np.cos(0.3 * t), 0.2 + 0 * t], axis=1)
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    rots = rotvec_to_matrix(angle[:, None] * axes)
    raw = matrix_to_rotvec(rots)
    un = unwrap_expmap(raw)
    np.testing.assert_allclose(rotvec_to_matrix(un), rots, atol=1e-12)
    step = np.linalg.norm(np.diff(un, axis=0), axis=1)
    raw_step = np.linalg.norm(np.diff(raw, axis=0), axis=1)
    assert raw_step.max() > 5.0 and step.max() < 0.05
    # Several joints at once: (T, J, 3) gives the same as each joint alone.
    both = unwrap_expmap(np.stack([raw, raw[::-1]], axis=1))
    np.testing.assert_allclose(both[:, 0], un)
    np.testing.assert_allclose(both[:, 1], unwrap_expmap(raw[::-1]))


def test_unwrap_through_identity_keeps_axis() -> None:
    u = np.array([0.0, 0.0, 1.0])
    theta = np.linspace(-0.5, 0.5, 11)  # passes exactly through 0
    raw = theta[:, None] * u
    np.testing.assert_allclose(unwrap_expmap(raw), raw, atol=1e-15)
