"""The soft limiter on WORLD's output: loud speech never reaches full scale, quiet speech passes
unchanged, and limiting is the same whole or chunk by chunk."""

from __future__ import annotations

import numpy as np
import pytest

from seqboltz.speech import WorldFeatures
from seqboltz.speech._audio import LIMIT_CEILING, LIMIT_KNEE, soft_limit


@pytest.fixture(scope="module")
def wf() -> WorldFeatures:
    return WorldFeatures(sample_rate=8000)


def _frames(wf: WorldFeatures, c0: float, n: int = 200) -> np.ndarray:
    """Raw frames: 120 Hz voiced for the first half, unvoiced after, a flat spectrum at ``c0``."""
    f = np.zeros((n, wf.dim))
    f[:, 0] = c0
    f[:, wf.lf0_index] = np.log(120.0)
    f[: n // 2, wf.vuv_index] = 1.0
    f[:, wf.bap_slice] = -10.0
    return f


def test_curve() -> None:
    x = np.linspace(-50, 50, 20001)
    y = soft_limit(x)
    below = np.abs(x) <= LIMIT_KNEE
    assert np.array_equal(y[below], x[below])  # identity up to the knee, bit for bit
    assert np.abs(y).max() < LIMIT_CEILING < 0.999
    assert np.all(np.diff(y) >= 0) and np.all(np.sign(y) == np.sign(x))  # monotone, odd
    # smooth at the knee: slope 1 on both sides
    h = 1e-6
    slope = (soft_limit(np.array([LIMIT_KNEE + h])) - LIMIT_KNEE) / h
    assert slope[0] == pytest.approx(1.0, abs=1e-4)
    assert soft_limit(np.array([1e300, -np.inf])).tolist() == [
        np.nextafter(LIMIT_CEILING, 0),
        -np.nextafter(LIMIT_CEILING, 0),
    ]
    with pytest.raises(ValueError, match="knee"):
        soft_limit(x, knee=0.9, ceiling=0.9)


def test_loud_speech_is_limited(wf: WorldFeatures) -> None:
    frames = _frames(wf, c0=-1.0)  # WORLD's pulses reach about 2.8
    raw = wf.synthesize(frames, clip=False)
    assert np.abs(raw).max() > 2.0
    wave = wf.synthesize(frames)
    assert np.abs(wave).max() < 0.999
    assert np.array_equal(wave, soft_limit(raw))  # WORLD is deterministic: the same samples
    quiet = np.abs(raw) <= LIMIT_KNEE
    assert np.array_equal(wave[quiet], raw[quiet])  # only the loud samples were touched


def test_quiet_speech_passes_unchanged(wf: WorldFeatures, arctic_8k: np.ndarray) -> None:
    for frames in (_frames(wf, c0=-4.0), wf.analyze(arctic_8k)):
        raw = wf.synthesize(frames, clip=False)
        assert np.abs(raw).max() < LIMIT_KNEE
        assert np.array_equal(wf.synthesize(frames), raw)


def test_whole_equals_chunked() -> None:
    rng = np.random.default_rng(0)
    wave = rng.standard_normal(4001) * 0.6  # about 13 % of the samples above the knee
    assert (np.abs(wave) > LIMIT_KNEE).mean() > 0.1
    whole = soft_limit(wave)
    for cuts in ([1000, 2000, 3000], [1, 2, 3999], list(range(0, 4001, 37))):
        chunks = [soft_limit(c) for c in np.split(wave, cuts)]
        assert np.array_equal(np.concatenate(chunks), whole)
