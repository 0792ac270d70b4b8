"""Sequence baselines and generation statistics (numpy)."""

from __future__ import annotations

import numpy as np
import pytest

from seqboltz.eval._sequence import (
    LinearAR,
    RepeatLastFrame,
    ar_spectral_radius,
    clip_ar_spectrum,
    clip_length_radius,
    fit_linear_ar,
    history_windows,
    npss,
    one_step_errors,
    stabilise_ar,
    std_ratio,
)


def _ar2_sequences(n: int = 3, t: int = 400, seed: int = 0) -> tuple[list[np.ndarray], np.ndarray]:
    rng = np.random.default_rng(seed)
    m1 = np.array([[1.5, 0.1], [0.0, 1.2]])
    m2 = np.array([[-0.7, 0.0], [0.05, -0.5]])
    seqs = []
    for _ in range(n):
        x = np.zeros((t, 2))
        for i in range(2, t):
            x[i] = x[i - 1] @ m1 + x[i - 2] @ m2 + 0.1 * rng.standard_normal(2)
        seqs.append(x)
    return seqs, np.concatenate([m1, m2])


def test_history_windows_use_exactly_the_previous_frames_of_each_sequence() -> None:
    a = np.arange(10.0).reshape(5, 2)
    b = 100 + np.arange(8.0).reshape(4, 2)
    hist, targ = history_windows([a, b], order=2)
    assert hist.shape == (3 + 2, 2, 2) and targ.shape == (5, 2)
    np.testing.assert_array_equal(targ[0], a[2])
    np.testing.assert_array_equal(hist[0], a[[1, 0]])  # most recent first
    np.testing.assert_array_equal(targ[3], b[2])
    np.testing.assert_array_equal(hist[3], b[[1, 0]])  # never straddles a and b
    with pytest.raises(ValueError, match="longer than the order"):
        history_windows([a[:2]], order=2)


def test_linear_ar_recovers_the_generating_process() -> None:
    seqs, true_coef = _ar2_sequences()
    ar = fit_linear_ar(seqs, order=2)
    np.testing.assert_allclose(ar.coef, true_coef, atol=0.05)
    np.testing.assert_allclose(ar.residual_cov, 0.01 * np.eye(2), atol=0.003)
    err = one_step_errors(ar.predict, seqs, 2)
    assert err["mse"] == pytest.approx(0.01, rel=0.15)
    # the AR baseline beats repeat-last-frame on AR data
    assert err["mse"] < one_step_errors(RepeatLastFrame().predict, seqs, 2)["mse"]


def test_linear_ar_generation_is_per_sequence_reproducible() -> None:
    seqs, _ = _ar2_sequences()
    ar = fit_linear_ar(seqs, order=2)
    seed_frames = np.stack([s[:5] for s in seqs])
    together = ar.generate(seed_frames, 50, seed=7)
    alone = ar.generate(seed_frames[1:2], 50, seed=7, sequence_indices=[1])
    np.testing.assert_allclose(together[1], alone[0], rtol=0, atol=1e-12)
    assert not np.allclose(together[0], together[1])


def test_repeat_last_frame_generates_a_constant() -> None:
    seed_frames = np.arange(12.0).reshape(1, 3, 4)
    out = RepeatLastFrame().generate(seed_frames, 5)
    assert out.shape == (1, 5, 4)
    assert (out == seed_frames[0, -1]).all()


def test_npss_is_zero_for_equal_spectra_and_grows_with_frequency_shift() -> None:
    t = np.arange(512)[:, None]
    slow = np.sin(2 * np.pi * t / 64)
    faster = np.sin(2 * np.pi * t / 32)
    fastest = np.sin(2 * np.pi * t / 8)
    assert npss(slow, slow) == pytest.approx(0.0, abs=1e-12)
    # a phase shift leaves the power spectrum unchanged
    assert npss(slow, np.sin(2 * np.pi * t / 64 + 1.0)) < 1e-3
    assert 0 < npss(slow, faster) < npss(slow, fastest)
    with pytest.raises(ValueError, match="same shape"):
        npss(slow, slow[:10])


def test_std_ratio_ignores_still_dimensions() -> None:
    rng = np.random.default_rng(0)
    real = np.stack([rng.normal(0, 1, 5000), rng.normal(0, 2, 5000), np.full(5000, 3.0)], 1)
    gen = np.stack([rng.normal(0, 2, 5000), rng.normal(0, 1, 5000), np.full(5000, 3.0)], 1)
    np.testing.assert_allclose(std_ratio(real, gen), [2.0, 0.5], rtol=0.05)


def test_stabilise_ar_puts_the_spectral_radius_where_asked() -> None:
    rng = np.random.default_rng(3)
    x = np.cumsum(rng.normal(size=(300, 2)), 0) * 0.1
    # an explosive AR(2) on each dimension: roots 1.05 and 0.8 (λ² - 1.85λ + 0.84)
    coef = np.concatenate([1.85 * np.eye(2), -0.84 * np.eye(2)])
    ar = LinearAR(coef, np.zeros(2), np.eye(2))
    assert ar_spectral_radius(ar.coef) == pytest.approx(1.05)
    stable = stabilise_ar(ar, [x], 0.99)
    assert ar_spectral_radius(stable.coef) == pytest.approx(0.99, abs=1e-9)
    gamma = 0.99 / 1.05  # lag i scaled by γ^i exactly
    np.testing.assert_allclose(stable.coef[:2], ar.coef[:2] * gamma)
    np.testing.assert_allclose(stable.coef[2:], ar.coef[2:] * gamma**2)
    hist, targ = history_windows([x], 2)  # intercept and covariance refitted on the data
    resid = targ - hist.reshape(len(hist), -1) @ stable.coef - stable.intercept
    np.testing.assert_allclose(resid.mean(0), 0, atol=1e-12)
    np.testing.assert_allclose(stable.residual_cov, np.cov(resid.T))
    window = stable.generate(x[None, :2], 3000, seed=0)
    assert np.isfinite(window).all() and np.abs(window).max() < 1e3
    assert np.abs(ar.generate(x[None, :2], 3000, seed=0)).max() > 1e20
    assert stabilise_ar(stable, [x], 0.995) is stable  # already inside: unchanged
    with pytest.raises(ValueError, match="max_radius"):
        stabilise_ar(ar, [x], 1.5)


def _roots(coef: np.ndarray) -> np.ndarray:
    d = coef.shape[1]
    companion = np.zeros((coef.shape[0], coef.shape[0]))
    companion[:d], companion[d:, :-d] = coef.T, np.eye(coef.shape[0] - d)
    return np.linalg.eigvals(companion)


def _match(a: np.ndarray, b: np.ndarray) -> float:
    """Largest distance from a root of ``a`` to its nearest root of ``b``, both ways."""
    dist = np.abs(a[:, None] - b[None])
    return float(max(dist.min(1).max(), dist.min(0).max()))


def test_clipping_moves_only_the_roots_outside_the_radius() -> None:
    # one dimension: λ² - 1.85λ + 0.84 has roots 1.05 and 0.8; clipped: 0.99 and 0.8 exactly
    coef = np.array([[1.85], [-0.84]])
    clipped = clip_ar_spectrum(coef, 0.99)
    np.testing.assert_allclose(clipped[:, 0], [0.99 + 0.8, -0.99 * 0.8], atol=1e-12)
    # several coupled dimensions, complex pairs among the roots: the roots above 0.97 land on
    # the circle with their phase, the others stay, and the lower blocks keep the shift form
    rng = np.random.default_rng(0)
    d, order = 4, 3
    coef = rng.normal(scale=0.45, size=(order * d, d))
    roots = _roots(coef)
    outside = np.abs(roots) > 0.97
    assert 0 < outside.sum() < len(roots) and np.iscomplexobj(roots)
    clipped = clip_ar_spectrum(coef, 0.97)
    assert clipped.shape == coef.shape and np.isrealobj(clipped)
    expected = np.where(outside, roots * 0.97 / np.abs(roots), roots)
    assert _match(_roots(clipped), expected) < 1e-8
    assert ar_spectral_radius(clipped) == pytest.approx(0.97, abs=1e-9)
    assert clip_ar_spectrum(clipped, 0.98) is clipped  # already inside: unchanged
    # scaling moves every root instead
    x = rng.normal(size=(200, d))
    scaled = stabilise_ar(LinearAR(coef, np.zeros(d), np.eye(d)), [x], 0.97, method="scale")
    gamma = 0.97 / np.abs(roots).max()
    assert _match(_roots(scaled.coef), roots * gamma) < 1e-8
    clip_fit = stabilise_ar(LinearAR(coef, np.zeros(d), np.eye(d)), [x], 0.97, method="clip")
    np.testing.assert_allclose(clip_fit.coef, clipped)
    with pytest.raises(ValueError, match="method must be one of"):
        stabilise_ar(LinearAR(coef, np.zeros(d), np.eye(d)), [x], 0.97, method="shrink")
    with pytest.raises(ValueError, match="max_radius"):
        clip_ar_spectrum(coef, 0.0)


def test_the_clip_length_radius_has_the_median_clips_time_constant() -> None:
    clips = [np.zeros((n, 2)) for n in (50, 100, 400)]
    assert clip_length_radius(clips) == pytest.approx(1 - 1 / 100)
    assert clip_length_radius([np.zeros((321, 1)), np.zeros((323, 1))]) == pytest.approx(
        1 - 1 / 322
    )
    assert clip_length_radius([np.zeros((3, 2))]) == 0.9  # kept within the range
    assert clip_length_radius([np.zeros((10**6, 2))]) == 0.9995
    with pytest.raises(ValueError, match="no clips"):
        clip_length_radius([])


def test_clipping_keeps_a_fitted_models_slow_modes() -> None:
    # a fit on noisy data with a unit root: clipping to 0.99 keeps the 0.9 mode's decay, which
    # scaling slows down by the same factor as the unit root's
    rng = np.random.default_rng(1)
    t = 3000
    x = np.zeros((t, 2))
    for i in range(1, t):
        x[i] = x[i - 1] * [1.0, 0.9] + rng.normal(scale=0.1, size=2)
    ar = fit_linear_ar([x], 1)
    assert ar_spectral_radius(ar.coef) > 0.99
    clipped = stabilise_ar(ar, [x], 0.95, method="clip")
    scaled = stabilise_ar(ar, [x], 0.95, method="scale")
    roots_c, roots_s = np.sort(np.abs(_roots(clipped.coef))), np.sort(np.abs(_roots(scaled.coef)))
    assert roots_c[1] == pytest.approx(0.95, abs=1e-9) and roots_s[1] == pytest.approx(0.95)
    assert roots_c[0] == pytest.approx(np.sort(np.abs(_roots(ar.coef)))[0], abs=1e-9)
    assert roots_s[0] < roots_c[0] - 0.02
