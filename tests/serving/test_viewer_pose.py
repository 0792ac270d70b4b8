"""serving.viewer.pose: the one frames → joints path, piece by piece equal to the whole."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from seqboltz.motion import forward_kinematics, local_rotations, matrix_to_quaternion
from seqboltz.runtime import load_artifact
from serving.viewer.pose import PoseStream, motion_features

EMBEDDED = Path(__file__).resolve().parents[2] / "serving" / "models" / "motion_crbm.onnx"


@pytest.fixture(scope="module")
def generated() -> tuple[dict, np.ndarray]:
    art = load_artifact(EMBEDDED)
    return art.card, art.generate(60, seed=11)[0]


def test_pieces_equal_the_whole_inverse(generated: tuple[dict, np.ndarray]) -> None:
    """Frame by frame (and in uneven pieces) the joints equal inverse_transform of the whole
    sequence followed by forward kinematics: the root state is carried exactly."""
    card, z = generated
    features = motion_features(card)
    whole = features.inverse_transform(z)
    expected = forward_kinematics(whole.skeleton, whole.frames, end_sites=True)
    for cuts in ([1] * len(z), [7, 1, 30, 22]):
        stream = PoseStream.from_card(card)
        parts, start = [], 0
        for n in cuts:
            parts.append(stream.push(z[start : start + n]).positions)
            start += n
        got = np.concatenate(parts)
        assert got.shape == expected.shape
        np.testing.assert_allclose(got, expected, atol=1e-9)
    # the root really travels and turns: a frozen root would hide a lost state
    path = np.linalg.norm(np.diff(expected[:, 0], axis=0), axis=1).sum()
    assert path > 0.02 * whole.skeleton.scale()


def test_local_rotations_and_translations_rebuild_the_joints(
    generated: tuple[dict, np.ndarray],
) -> None:
    """What the page receives (local translations + quaternions) composes back to the joints."""
    card, z = generated
    poses = PoseStream.from_card(card).push(z[:20])
    sk = motion_features(card).skeleton
    assert sk is not None
    q = matrix_to_quaternion(local_rotations(sk, poses.channels))  # (w, x, y, z)
    xyzw = np.concatenate([q[..., 1:], q[..., :1]], axis=-1)
    np.testing.assert_allclose(np.abs(np.sum(xyzw * poses.local_quaternions, -1)), 1, atol=1e-9)
    # compose by hand: G_j = G_parent @ [R_j | t_j]
    x, y, zq, w = np.moveaxis(poses.local_quaternions, -1, 0)
    rot = np.stack(
        [
            np.stack([1 - 2 * (y * y + zq * zq), 2 * (x * y - zq * w), 2 * (x * zq + y * w)], -1),
            np.stack([2 * (x * y + zq * w), 1 - 2 * (x * x + zq * zq), 2 * (y * zq - x * w)], -1),
            np.stack([2 * (x * zq - y * w), 2 * (y * zq + x * w), 1 - 2 * (x * x + y * y)], -1),
        ],
        -2,
    )
    glob = np.empty_like(rot)
    pos = np.empty_like(poses.local_translations)
    for i, parent in enumerate(sk.parents):
        if parent < 0:
            glob[:, i], pos[:, i] = rot[:, i], poses.local_translations[:, i]
        else:
            glob[:, i] = glob[:, parent] @ rot[:, i]
            pos[:, i] = pos[:, parent] + np.einsum(
                "tab,tb->ta", glob[:, parent], poses.local_translations[:, i]
            )
    np.testing.assert_allclose(pos, poses.positions[:, : len(sk)], atol=1e-9)


def test_skeleton_json_describes_the_drawn_body(generated: tuple[dict, np.ndarray]) -> None:
    card, _ = generated
    stream = PoseStream.from_card(card)
    sk = stream.skeleton_json()
    n_end = sum(j["end_site"] is not None for j in sk["joints"])
    assert (
        len(sk["joints"]) + n_end
        == stream.push(np.zeros((1, stream.n_features))).positions.shape[1]
    )
    assert sk["up_axis"] == "y" and sk["fps"] == pytest.approx(card["frame_rate"])
    assert sk["joints"][0]["parent"] == -1 and sk["scale"] > 0


def test_bad_input_gets_one_clear_line(generated: tuple[dict, np.ndarray]) -> None:
    card, z = generated
    stream = PoseStream.from_card(card)
    with pytest.raises(ValueError, match=rf"frames must have shape \(n, {z.shape[1]}\)"):
        stream.push(z[:, :10])
    with pytest.raises(ValueError, match="NaN or inf"):
        stream.push(np.full((1, z.shape[1]), np.nan))
    with pytest.raises(ValueError, match="speech model; the viewer draws motion models only"):
        PoseStream.from_card({"name": "tts", "domain": "speech", "features": {}})


def test_viewer_is_torch_free() -> None:
    code = (
        "import sys, serving.viewer, serving.viewer.bridge, serving.viewer.pose; "
        "bad = [m for m in ('torch', 'lightning') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
