"""Forced alignment (PocketSphinx, shipped 16-kHz model) on CMU ARCTIC a0007, which ships in
pysptk: "And you always want to see it in the superlative degree." (16 kHz, and bridged from
8 kHz)."""

from __future__ import annotations

import numpy as np
import pytest

from seqboltz.speech import WorldFeatures
from seqboltz.speech._align import (
    AlignmentError,
    ForcedAligner,
    PhoneAlignment,
    alignment_sanity,
)
from seqboltz.speech._text import PAUSE, TextFrontEndError

ARCTIC_A0007 = "And you always want to see it in the superlative degree."


@pytest.fixture(scope="module")
def arctic_16k(arctic_path) -> np.ndarray:  # type: ignore[no-untyped-def]
    from seqboltz.speech import read_audio

    return read_audio(arctic_path)


@pytest.fixture(scope="module")
def aligned_16k(arctic_16k: np.ndarray) -> PhoneAlignment:
    return ForcedAligner().align(arctic_16k, 16000, ARCTIC_A0007)


@pytest.fixture(scope="module")
def aligned_8k(arctic_8k: np.ndarray) -> PhoneAlignment:
    return ForcedAligner().align(arctic_8k, 8000, ARCTIC_A0007)


def test_alignment_covers_the_recording(aligned_16k: PhoneAlignment) -> None:
    al = aligned_16k
    n = len(al.utterance.phones)
    assert al.starts.shape == al.ends.shape == (n,)
    assert al.starts[0] == 0.0 and al.ends[-1] == pytest.approx(4.0)
    assert np.all(np.diff(al.starts) > 0) and np.allclose(al.starts[1:], al.ends[:-1])
    words = [p for p in al.utterance.phones if p.symbol != PAUSE]
    assert len(words) == sum(len(w.phones) for w in al.utterance.words)
    # the recording starts and ends with silence
    assert al.utterance.symbols[0] == al.utterance.symbols[-1] == PAUSE


def test_alignment_follows_the_audio(arctic_16k: np.ndarray, aligned_16k: PhoneAlignment) -> None:
    wf = WorldFeatures(sample_rate=16000)
    frames = wf.analyze(arctic_16k)
    cols = (wf.lf0_index, wf.vuv_index)
    s = alignment_sanity(aligned_16k, frames, wf.frame_period, cols)
    assert s["pause_c0_gap"] > 2.0  # pauses are quiet
    assert s["vowel_voiced"] > 0.7 and s["voiceless_voiced"] < 0.3
    # WORLD's voicing agrees with the phone classes better than for the same phones with
    # boundaries 50 ms off, or spread evenly over the speech
    al = aligned_16k
    worse = []
    for shift in (-0.05, 0.05):
        starts = al.starts.copy()
        starts[1:-1] += shift
        worse.append(PhoneAlignment(al.utterance, starts, al.ends, al.duration))
    even = np.linspace(al.starts[1], al.starts[-1], len(al.starts) - 1)
    worse.append(PhoneAlignment(al.utterance, np.r_[0.0, even], al.ends, al.duration))
    for other in worse:
        o = alignment_sanity(other, frames, wf.frame_period, cols)
        assert s["voicing_agreement"] > o["voicing_agreement"] + 0.03


def test_8k_bridge_agrees_with_16k(aligned_16k: PhoneAlignment, aligned_8k: PhoneAlignment) -> None:
    """The same utterance at 8 kHz (upsampled for the aligner) lands near the 16-kHz times."""

    def word_starts(al: PhoneAlignment) -> np.ndarray:
        seen, out = set(), []
        for p, s in zip(al.utterance.phones, al.starts, strict=True):
            if p.word >= 0 and p.word not in seen:
                seen.add(p.word)
                out.append(s)
        return np.array(out)

    a, b = word_starts(aligned_16k), word_starts(aligned_8k)
    assert a.shape == b.shape
    assert np.median(np.abs(a - b)) <= 0.03


def test_durations_in_frames(aligned_16k: PhoneAlignment) -> None:
    d = aligned_16k.durations(5.0, n_frames=801)
    assert d.sum() == 801 and d.min() >= 1 and d.shape == (len(aligned_16k.utterance.phones),)
    ms = d * 5.0
    np.testing.assert_allclose(ms[1:-1], (aligned_16k.ends - aligned_16k.starts)[1:-1] * 1000,
                               atol=5.0)  # fmt: skip
    with pytest.raises(AlignmentError, match="cannot hold"):
        aligned_16k.durations(5.0, n_frames=3)


def test_round_trip_and_labels(aligned_16k: PhoneAlignment) -> None:
    again = PhoneAlignment.from_dict(aligned_16k.to_dict())
    assert again.utterance.symbols == aligned_16k.utterance.symbols
    np.testing.assert_array_equal(again.starts, aligned_16k.starts)
    lines = aligned_16k.htk_labels().splitlines()
    assert len(lines) == len(aligned_16k.utterance.phones)
    start, end, phone = lines[1].split()
    assert int(start) == round(aligned_16k.starts[1] * 1e7) and int(end) > int(start)
    assert phone == aligned_16k.utterance.symbols[1]


def test_bad_input(arctic_16k: np.ndarray) -> None:
    with pytest.raises(TextFrontEndError, match="empty"):
        ForcedAligner().align(arctic_16k, 16000, "  ")
    with pytest.raises(AlignmentError, match="mono recording"):
        ForcedAligner().align(arctic_16k[:100], 16000, "hello")
