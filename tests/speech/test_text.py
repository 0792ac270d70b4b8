"""The text front end: normalisation, pronunciation, syllables, pauses and features."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from seqboltz.speech._text import (
    G2P,
    PAUSE,
    PHONES,
    Lexicon,
    TextFrontEndError,
    frame_feature_names,
    frame_features,
    front_end_card,
    normalize_text,
    number_to_words,
    phone_feature_names,
    phone_features,
    pronounce,
    syllabify,
    text_to_utterance,
)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("Press 1, or # to exit.", "press one or pound to exit"),
        ("Press * for help", "press star for help"),
        ("the 21st of March", "the twenty first of march"),
        ("extension 0123", "extension zero one two three"),
        ("1,000,000 and 3.5", "one million and three point five"),
        ("$12 at 10%", "twelve dollars at ten percent"),
        ("Call-Forward on No Answer.", "call forward on no answer"),
        ("[ascending tones] hello", "hello"),
        ("Café “déjà vu”", "cafe deja vu"),
    ],
)
def test_normalize_text_words(text: str, words: str) -> None:
    assert " ".join(w.lower() for w, _ in normalize_text(text)) == words


def test_normalize_text_pauses() -> None:
    got = normalize_text("Hello, world. Again; and... done!")
    assert got == [("hello", 1), ("world", 2), ("again", 1), ("and", 2), ("done", 2)]


@pytest.mark.parametrize("text", ["", "   \n", "[beep]", "😀 ...", "?!"])
def test_nothing_to_speak_is_a_clear_error(text: str) -> None:
    with pytest.raises(TextFrontEndError, match=r"empty|no speakable"):
        text_to_utterance(text)


def test_non_string_text_is_rejected() -> None:
    with pytest.raises(TextFrontEndError, match="must be a string"):
        normalize_text(None)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("n", "ordinal", "words"),
    [
        (0, False, "zero"),
        (13, False, "thirteen"),
        (40, True, "fortieth"),
        (101, False, "one hundred one"),
        (12, True, "twelfth"),
        (2_000_019, False, "two million nineteen"),
        (999_999, False, "nine hundred ninety nine thousand nine hundred ninety nine"),
    ],
)
def test_number_to_words(n: int, ordinal: bool, words: str) -> None:
    assert " ".join(number_to_words(n, ordinal)) == words


def test_number_out_of_range() -> None:
    with pytest.raises(TextFrontEndError, match="out of range"):
        number_to_words(10**15)


def test_lexicon_has_the_cmu_entries() -> None:
    lex = Lexicon()
    assert len(lex) > 120_000
    assert lex.get("HELLO") == ("HH", "AH0", "L", "OW1")
    assert lex.get("seqboltz") is None


def test_g2p_unknown_words_have_vowels_and_stress() -> None:
    g2p = G2P()
    phones = g2p("seqboltz")
    assert phones[0] == "S"
    assert all(p.rstrip("012") in PHONES for p in phones)
    assert any(p.endswith("1") for p in phones)  # a primary stress
    # a word the dictionary knows: the g2p gets it close to the dictionary
    assert g2p("telephone") == ("T", "EH1", "L", "AH0", "F", "OW2", "N")


def test_pronounce_sources() -> None:
    assert pronounce("hello")[1] == "lexicon"
    assert pronounce("ABQX") == (("EY1", "B", "IY1", "K", "Y", "UW1", "EH1", "K", "S"), "spelled")
    assert pronounce("seqboltz")[1] == "g2p"
    phones, source = pronounce("grelbrook's")
    assert source in ("g2p", "lexicon") and phones


@pytest.mark.parametrize(
    ("phones", "syllables"),
    [
        ("AH0 B AW1 T", [(0, 1), (1, 4)]),  # about: a-bout
        ("EH1 K S T R AH0", [(0, 2), (2, 6)]),  # extra: ek-stra (s t r is a legal onset)
        ("K AE1 M P AH0 S", [(0, 3), (3, 6)]),  # campus: cam-pus (m p is not an onset)
        ("HH M", [(0, 2)]),  # no vowel: one syllable
        ("S T R EH1 NG K TH", [(0, 7)]),
    ],
)
def test_syllabify_maximal_onset(phones: str, syllables: list[tuple[int, int]]) -> None:
    assert syllabify(phones.split()) == syllables


def test_utterance_structure() -> None:
    utt = text_to_utterance("Thank you, goodbye.")
    syms = utt.symbols
    assert syms[0] == syms[-1] == PAUSE
    assert syms.count(PAUSE) == 3  # start, after the comma, end
    inner = next(p for p in utt.phones[1:-1] if p.symbol == PAUSE)
    assert inner.pause == 1 and utt.phones[0].pause == utt.phones[-1].pause == 3
    goodbye = [p for p in utt.phones if p.word == 2]
    assert [p.symbol for p in goodbye] == ["G", "UH", "D", "B", "AY"]
    assert {p.n_syllables for p in goodbye} == {2}
    assert goodbye[-1].stress == 1 and goodbye[1].role == 1 and goodbye[0].role == 0
    # "goodbye" is the only word of its phrase, "thank you" has two words
    assert goodbye[0].phrase_size == 1
    assert [p.phrase_word for p in utt.phones if p.word in (0, 1)][-1] == 1


def test_phone_features_one_hots_and_ranges() -> None:
    utt = text_to_utterance("Please hold while we connect you.")
    f = phone_features(utt)
    n = len(PHONES)
    assert f.shape == (len(utt.phones), len(phone_feature_names()))
    for ctx in range(5):  # exactly one phone per context slot
        np.testing.assert_array_equal(f[:, ctx * n : (ctx + 1) * n].sum(axis=1), 1.0)
    centre = f[:, 2 * n : 3 * n].argmax(axis=1)
    assert [PHONES[i] for i in centre] == utt.symbols
    # the left neighbour of phone i is the centre of phone i-1
    np.testing.assert_array_equal(f[1:, n : 2 * n], f[:-1, 2 * n : 3 * n])
    assert f.min() >= 0.0 and f.max() <= 1.0


def test_frame_features_positions() -> None:
    utt = text_to_utterance("Goodbye.")
    durs = np.arange(2, 2 + len(utt.phones))
    f = frame_features(utt, durs)
    assert f.shape == (durs.sum(), len(frame_feature_names()))
    pos = f[:, frame_feature_names().index("pos_in_phone")]
    first = pos[: durs[0]]
    np.testing.assert_allclose(first, (np.arange(durs[0]) + 0.5) / durs[0])
    np.testing.assert_array_equal(f[: durs[0], : len(phone_feature_names())], np.tile(
        phone_features(utt)[0], (durs[0], 1)
    ))  # fmt: skip
    with pytest.raises(ValueError, match="one duration per phone"):
        frame_features(utt, durs[:-1])
    with pytest.raises(ValueError, match="at least one frame"):
        frame_features(utt, np.zeros(len(utt.phones), int))


def test_front_end_card() -> None:
    card = front_end_card()
    assert card["version"] and card["phones"] == list(PHONES)
    assert card["frame_features"] == frame_feature_names()
    for part in ("lexicon", "g2p"):
        assert len(card[part]["sha256"]) == 64 and "==" in card[part]["package"]


def test_front_end_is_torch_free() -> None:
    code = (
        "import sys; from seqboltz.speech._text import text_to_utterance, frame_features; "
        "u = text_to_utterance('Hello there.'); frame_features(u, [2] * len(u.phones)); "
        "from seqboltz.speech._duration import DurationModel; "
        "assert 'torch' not in sys.modules, 'torch was imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
