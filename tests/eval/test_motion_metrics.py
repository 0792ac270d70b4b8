"""Motion-quality metrics on synthetic signals with known answers (numpy only)."""

from __future__ import annotations

import numpy as np
import pytest

from seqboltz.eval._motion_metrics import (
    body_frame,
    bootstrap_ci,
    foot_joints,
    foot_skating,
    frechet_distance,
    mean_pairwise_distance,
    nearest_window_distances,
    pose_jitter,
    pose_spread,
    pose_velocity_features,
    power_spectra,
    ps_entropy,
    ps_kl,
    sliding_windows,
    std_within,
)

T = 256
t = np.arange(T)[:, None]


def _tones(amplitudes: dict[int, float]) -> np.ndarray:
    """``(T, 1)`` sum of cosines at integer FFT bins with the given amplitudes."""
    return sum(a * np.cos(2 * np.pi * k * t / T) for k, a in amplitudes.items())  # type: ignore[return-value]


def test_power_spectra_are_normalised_per_dimension_and_put_power_in_the_right_bin() -> None:
    x = np.concatenate([_tones({5: 1.0}), _tones({9: 3.0})], axis=1)
    p = power_spectra(x)
    assert p.shape == (T // 2 + 1, 2)
    np.testing.assert_allclose(p.sum(0), 1.0)
    assert p[5, 0] == pytest.approx(1.0) and p[9, 1] == pytest.approx(1.0)
    # a constant dimension has no power: uniform, not NaN
    flat = power_spectra(np.ones((T, 1)))
    np.testing.assert_allclose(flat, 1.0 / (T // 2 + 1))


def test_ps_entropy_known_answers() -> None:
    assert ps_entropy(_tones({5: 1.0})) == pytest.approx(0.0, abs=1e-9)
    assert ps_entropy(_tones({5: 1.0, 11: 1.0})) == pytest.approx(np.log(2), abs=1e-9)
    assert ps_entropy(_tones({3: 1.0, 7: 1.0, 20: 1.0, 40: 1.0})) == pytest.approx(np.log(4))
    noise = np.random.default_rng(0).standard_normal((50, T, 1))
    assert ps_entropy(noise) > np.log(T // 2 + 1) - 0.05  # white noise: nearly uniform


def test_ps_kl_known_answer_both_directions_and_zero_for_equal_spectra() -> None:
    # power 0.5/0.5 against 0.8/0.2 in bins 4 and 12 (power ∝ amplitude²)
    p = _tones({4: 1.0, 12: 1.0})
    q = _tones({4: np.sqrt(0.8), 12: np.sqrt(0.2)})
    kl_pq = 0.5 * np.log(0.5 / 0.8) + 0.5 * np.log(0.5 / 0.2)
    kl_qp = 0.8 * np.log(0.8 / 0.5) + 0.2 * np.log(0.2 / 0.5)
    assert ps_kl(p, q) == pytest.approx(kl_pq, rel=1e-5)
    assert ps_kl(q, p) == pytest.approx(kl_qp, rel=1e-5)
    assert ps_kl(q, p) != pytest.approx(ps_kl(p, q), rel=1e-3)  # not symmetric
    # a phase shift leaves the spectrum, hence the KL, unchanged
    shifted = np.cos(2 * np.pi * 4 * t / T + 1.0) + np.cos(2 * np.pi * 12 * t / T - 2.0)
    assert ps_kl(p, shifted) == pytest.approx(0.0, abs=1e-9)
    # a frequency shift costs a lot; empty bins stay finite
    far = ps_kl(_tones({4: 1.0}), _tones({30: 1.0}))
    assert np.isfinite(far) and far > 10
    with pytest.raises(ValueError, match="same length"):
        ps_kl(p, p[:100])


def test_frechet_distance_known_answers() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4000, 3))
    assert frechet_distance(x, x) == pytest.approx(0.0, abs=1e-8)
    shift = np.array([1.0, -2.0, 0.5])
    # same covariance, shifted mean: exactly |shift|² (the sample covariances are equal)
    assert frechet_distance(x, x + shift) == pytest.approx(shift @ shift, rel=1e-9)
    # independent Gaussians with stds a and b: Σ (a - b)²
    a, b = np.array([1.0, 2.0, 0.5]), np.array([2.0, 1.0, 0.5])
    big = rng.standard_normal((200_000, 3))
    fd = frechet_distance(big * a, rng.standard_normal((200_000, 3)) * b)
    assert fd == pytest.approx(((a - b) ** 2).sum(), abs=0.03)
    # singular covariances (a constant feature) are fine
    y = np.concatenate([x, np.zeros((4000, 1))], axis=1)
    assert frechet_distance(y, y + np.array([0, 0, 0, 3.0])) == pytest.approx(9.0, rel=1e-9)
    with pytest.raises(ValueError):
        frechet_distance(x, x[:, :2])


def _yaw(angle: float, up: int = 1) -> np.ndarray:
    """Rotation by ``angle`` about the up axis, taking ground axis g1 toward g2 (y-up: z → x)."""
    g1, g2 = (up + 1) % 3, (up + 2) % 3
    r = np.eye(3)
    c, s = np.cos(angle), np.sin(angle)
    r[g1, g1], r[g2, g1], r[g1, g2], r[g2, g2] = c, s, -s, c
    return r


def test_body_frame_removes_heading_and_ground_position() -> None:
    rng = np.random.default_rng(1)
    local = rng.standard_normal((5, 3))
    local[0] = 0.0  # the root
    frames, rots = [], []
    for i, angle in enumerate([0.0, 0.7, -2.0]):
        r = _yaw(angle)
        root = np.array([3.0 * i, 0.9, -1.0 * i])  # y up: height 0.9
        frames.append(root + local @ r.T)
        rots.append(r)
    pose, vel, heading = body_frame(np.stack(frames), np.stack(rots), "y")
    np.testing.assert_allclose(heading, [0.0, 0.7, -2.0], atol=1e-12)
    expected = local.copy()
    expected[:, 1] += 0.9  # the up coordinate keeps the height
    for k in range(3):
        np.testing.assert_allclose(pose[k], expected, atol=1e-12)
    assert vel.shape == (2, 5, 3)
    feats = pose_velocity_features(pose, vel)
    assert feats.shape == (2, 30)


def test_foot_joints_by_name() -> None:
    names = ["Hips", "LeftUpLeg", "LeftFoot", "LeftToeBase", "Head", "rfoot", "rtoes", "L_Ankle"]
    assert foot_joints(names) == [2, 3, 5, 6, 7]


def test_foot_skating_counts_only_ground_contact() -> None:
    fps = 30.0
    n = 61
    feet = np.zeros((n, 2, 3))  # y-up; foot 0 slides on the floor, foot 1 swings in the air
    feet[:, 0, 2] = np.arange(n) * 0.5 / fps  # 0.5 units/s along z at height 0
    feet[:, 1, 1] = 1.0
    feet[:, 1, 0] = np.arange(n) * 3.0 / fps  # fast, but never at floor height
    speed, contact = foot_skating(feet, fps, floor=np.zeros(2), threshold=0.05)
    assert speed == pytest.approx(0.5) and contact == pytest.approx(0.5)
    # a planted foot does not skate; vertical motion alone is not skating
    planted = np.zeros((n, 1, 3))
    planted[:, 0, 1] = 0.02 * np.sin(np.arange(n))
    assert foot_skating(planted, fps, np.zeros(1), 0.05) == (0.0, 1.0)
    # the same motion on a z-up rig
    zup = feet[..., [0, 2, 1]]
    assert foot_skating(zup, fps, np.zeros(2), 0.05, up_axis="z")[0] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="floor"):
        foot_skating(feet, fps, np.zeros(3), 0.05)


def test_std_within_counts_dimensions_in_range() -> None:
    rng = np.random.default_rng(0)
    real = rng.standard_normal((5000, 4))
    gen = real * np.array([1.0, 1.5, 3.0, 0.1])
    assert std_within(real, gen) == pytest.approx(0.5)
    assert std_within(real, np.full((10, 4), np.nan)) == 0.0


def test_mean_pairwise_distance_and_pose_spread_known_answers() -> None:
    a = np.zeros((1, 4, 2, 3))
    b = a.copy()
    b[..., 0] = 3.0
    c = a.copy()
    c[..., 1] = 4.0
    # pairs: |a-b| = 3, |a-c| = 4, |b-c| = 5
    assert mean_pairwise_distance(np.concatenate([a, b, c])) == pytest.approx(4.0)
    assert mean_pairwise_distance(np.concatenate([a, a])) == 0.0
    poses = np.concatenate([a, b, c])[:, 0]  # (3, 2, 3) three distinct poses
    assert pose_spread(poses) == pytest.approx(4.0)


def test_copy_check_finds_replayed_training_windows() -> None:
    rng = np.random.default_rng(0)
    train = rng.standard_normal((500, 4))
    ref = sliding_windows(train, 10, 1)
    assert ref.shape == (491, 10, 4)
    copied = sliding_windows(train[100:200], 10, 5)
    np.testing.assert_allclose(nearest_window_distances(copied, ref), 0.0, atol=1e-6)
    # a known offset: every window 0.5 away per dimension → RMS per frame √(4·0.25) = 1
    assert nearest_window_distances(copied + 0.5, ref, chunk=3) == pytest.approx(
        np.ones(len(copied)), abs=1e-6
    )
    fresh = sliding_windows(rng.standard_normal((100, 4)), 10, 5)
    assert nearest_window_distances(fresh, ref).min() > 1.0


def test_bootstrap_interval_covers_the_mean_and_narrows_with_more_data() -> None:
    rng = np.random.default_rng(0)
    small = rng.normal(1.0, 1.0, (5, 5))
    large = rng.normal(1.0, 1.0, (50, 20))
    m, lo, hi = bootstrap_ci(small)
    assert lo < m < hi and m == pytest.approx(small.mean())
    _, lo2, hi2 = bootstrap_ci(large)
    assert lo2 < 1.0 < hi2 and (hi2 - lo2) < (hi - lo) / 3
    assert bootstrap_ci(np.full((4, 3), 2.0)) == (2.0, 2.0, 2.0)
    with_nan = small.copy()
    with_nan[0, 0] = np.nan
    assert np.isfinite(bootstrap_ci(with_nan)).all()


def test_bootstrap_over_training_runs_covers_the_spread_between_runs() -> None:
    """A ``(runs, clips, seeds)`` table resamples the runs too: two runs that differ by 1
    everywhere give an interval spanning both, where the mean table of the runs has none."""
    runs = np.stack([np.zeros((4, 3)), np.ones((4, 3))])
    m, lo, hi = bootstrap_ci(runs)
    assert (m, lo, hi) == (0.5, 0.0, 1.0)
    assert bootstrap_ci(runs.mean(0)) == (0.5, 0.5, 0.5)
    rng = np.random.default_rng(1)
    noisy = rng.normal(0.0, 1.0, (5, 8, 5)) + rng.normal(0.0, 2.0, (5, 1, 1))
    _, lo3, hi3 = bootstrap_ci(noisy)
    _, lo2, hi2 = bootstrap_ci(noisy.mean(0))
    assert hi3 - lo3 > 2 * (hi2 - lo2)
    with pytest.raises(ValueError, match="runs, clips, seeds"):
        bootstrap_ci(np.zeros((2, 2, 2, 2)))


def test_metrics_and_pictures_of_the_body_import_without_torch() -> None:
    """The metrics and the body pictures serve torch-free code (runtime, synthesize)."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "for m in ('torch', 'lightning'):\n"
        "    sys.modules[m] = None\n"
        "import numpy as np\n"
        "from seqboltz.eval import ps_kl\n"
        "import seqboltz.viz_motion\n"
        "x = np.random.default_rng(0).standard_normal((64, 2))\n"
        "assert ps_kl(x, x) == 0.0\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=120
    )
    assert proc.returncode == 0, proc.stderr


def test_pose_jitter_is_zero_for_steady_motion_and_grows_with_per_frame_noise() -> None:
    t = np.arange(50.0)[:, None, None]
    steady = np.broadcast_to(np.array([1.0, 2.0, 3.0]) * t, (50, 4, 3))  # constant velocity
    assert pose_jitter(steady) == pytest.approx(0.0, abs=1e-12)
    noise = np.random.default_rng(0).normal(0.0, 0.1, size=(4000, 4, 3))
    # white noise of σ per coordinate: the second difference has variance 6σ² per coordinate
    assert pose_jitter(steady[:1] + noise) == pytest.approx(np.sqrt(3 * 6) * 0.1, rel=0.03)
    with pytest.raises(ValueError, match="T >= 3"):
        pose_jitter(noise[:2])
