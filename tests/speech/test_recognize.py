"""Intelligibility tools: word error rate against hand-worked cases, and PocketSphinx
identifying CMU ARCTIC a0007 (ships in pysptk) among three prompt texts, at 8 kHz."""

from __future__ import annotations

import numpy as np
import pytest

from seqboltz.speech._recognize import PromptRecognizer, prompt_words, word_error_rate

ARCTIC_A0007 = "And you always want to see it in the superlative degree."


def test_word_error_rate_by_hand() -> None:
    assert word_error_rate(["a", "b", "c"], ["a", "b", "c"]) == (0, 3)
    assert word_error_rate(["a", "b", "c"], []) == (3, 3)  # three deletions
    assert word_error_rate([], ["x"]) == (1, 0)  # one insertion
    assert word_error_rate(["a", "b", "c"], ["a", "x", "c", "d"]) == (2, 3)  # sub + ins
    assert word_error_rate(["a", "b", "c", "d"], ["b", "c", "d"]) == (1, 4)  # one deletion
    assert prompt_words("Press 1, or # to exit.") == ("press", "one", "or", "pound", "to", "exit")


@pytest.mark.slow  # two PocketSphinx decodes of 4 s (about 2 s)
def test_identifies_the_arctic_prompt_among_others(arctic_8k: np.ndarray) -> None:
    texts = [ARCTIC_A0007, "Please hold while I try that extension.", "Goodbye."]
    rec = PromptRecognizer(texts)
    assert rec.identify(arctic_8k, 8000) == prompt_words(ARCTIC_A0007)
    errors, n = word_error_rate(prompt_words(ARCTIC_A0007), rec.transcribe(arctic_8k, 8000))
    assert n == 11 and errors <= 4  # the general model hears most of the words
    silence = np.zeros(8000)
    assert rec.identify(silence, 8000) in {(), *map(prompt_words, texts)}
    with pytest.raises(ValueError, match=r"mono recording of at least 0\.1 s"):
        rec.identify(np.zeros(10), 8000)


def test_same_prompt_accepts_homophones_only() -> None:
    rec = PromptRecognizer(["For sales, press one.", "Four.", "For.", "Five."])
    assert rec.pronounce(("four",)) == rec.pronounce(("for",)) == "F AO R"
    assert rec.same_prompt(("four",), ("for",))  # one pronunciation: no recogniser can tell
    assert rec.same_prompt(("five",), ("five",))
    assert not rec.same_prompt(("five",), ("four",))
    assert not rec.same_prompt((), ("four",))
    assert rec.pronounce(("zebra",)) is None  # not in the grammar's dictionary
    assert not rec.same_prompt(("zebra",), ("four",))


def test_noise_floor_is_fixed_and_at_its_level() -> None:
    from seqboltz.speech._recognize import NOISE_FLOOR_DBFS, _pcm

    silence = np.zeros(8000)
    assert not np.frombuffer(_pcm(silence, 8000, None), "<i2").any()  # no floor: digital zero
    a, b = _pcm(silence, 8000, NOISE_FLOOR_DBFS), _pcm(silence, 8000, NOISE_FLOOR_DBFS)
    assert a == b  # the same draw every time: decoding stays deterministic
    pcm = np.frombuffer(a, "<i2").astype(np.float64) / 32767.0
    assert pcm.shape == (16000,)  # upsampled to the model's 16 kHz after adding the noise
    level = 20 * np.log10(np.sqrt(np.mean(pcm**2)))
    assert abs(level - NOISE_FLOOR_DBFS) < 1.5, level


@pytest.mark.slow  # a few PocketSphinx decodes (about 2 s)
def test_a_recording_decodes_the_same_whatever_came_before(arctic_8k: np.ndarray) -> None:
    rec = PromptRecognizer([ARCTIC_A0007, "Please hold while I try that extension.", "Goodbye."])
    closed, _ = rec._decoders()
    first = rec.identify(arctic_8k, 8000)
    cmn = closed.get_cmn()
    loud = np.random.default_rng(1).standard_normal(16000) * 0.3  # noise, another level
    rec.identify(loud, 8000)
    assert rec.identify(arctic_8k, 8000) == first and closed.get_cmn() == cmn
