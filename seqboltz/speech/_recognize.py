"""Intelligibility by an offline recogniser: prompt identification and word error rate.

The recogniser is PocketSphinx (``pocketsphinx`` wheel) with the US-English acoustic model,
dictionary and language model that ship inside the wheel; nothing is downloaded. It is the
tool that aligned the training corpus (:class:`~seqboltz.speech._align.ForcedAligner`), with
the same rate bridge: audio at another rate is resampled (band-limited) to 16 kHz.

* **Prompt identification** (:meth:`PromptRecognizer.identify`): a grammar whose sentences are
  all the corpus's prompt texts (JSGF, one alternative per distinct word sequence), and a
  dictionary of their words pronounced by the project's text front end
  (:func:`~seqboltz.speech._text.make_word`, stress removed, as the aligner does). A recording
  is identified when the best sentence has its own words;
  :meth:`PromptRecognizer.same_prompt` also accepts a homophone (a sentence the dictionary
  pronounces the same: "four" for "for"), which no recogniser can tell apart.
* **Word error rate** (:meth:`PromptRecognizer.transcribe`, :func:`word_error_rate`): the
  recogniser's general trigram language model and dictionary, free decoding; the reference
  is the front end's normalised words (digits spelled out).

**A noise floor.** Every recording gets white noise at :data:`NOISE_FLOOR_DBFS` (-70 dBFS
RMS, a fixed draw, at its own rate, before upsampling) before decoding. The Asterisk
recordings, like WORLD's output, hold near-digital silence (10-ms frames at -90 to -98 dBFS),
whose log filter energies PocketSphinx's model never saw. Chosen on real recordings of 137
training and validation prompts (benchmarks/RESULTS.md, text-to-speech session 7): 96
identified without the floor, 103 with it (one- and two-word prompts 45 -> 50 of 80), each
recording decoded with a fresh front end as here. On the 56 test recordings it did not carry
over: 40 -> 38.

The rate bridge and the decoder's other settings, on the same 137 recordings without the floor,
decoded one after another (the front end's state carried over, as before session 7): upsampled
to 16 kHz as here, 97 identified (105 with the floor). Features computed at 8 kHz instead
(``-samprate 8000 -nfft 256 -upperf 3500``; the shipped model's ``feat.params`` sets ``-upperf
6800`` and must be edited to allow it): 3-4 identified, since the model's 25 mel filters span
130-6800 Hz and squeezing them under 4 kHz changes every cepstral coefficient; upsampling leaves
the top ~5 filters empty, a near-constant that batch CMN absorbs. Dither (±1 LSB), live CMN, the
PocketSphinx dictionary's variants or silence probability 0.1: within one prompt of 97. Lower
word insertion penalties (0.1, 0.01) or language weight 10: 82-93. Padding 0.3 s of digital (or
dithered) silence at both ends: 80, all of the loss on one- and two-word prompts.

Reference: Huggins-Daines et al. (2006), "PocketSphinx: a free, real-time continuous speech
recognition system for hand-held devices", ICASSP.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from typing import Any

import numpy as np

from seqboltz.speech._text import make_word, normalize_text

__all__ = ["NOISE_FLOOR_DBFS", "PromptRecognizer", "prompt_words", "word_error_rate"]

_RATE = 16000


def prompt_words(text: str) -> tuple[str, ...]:
    """The words a recogniser should hear for ``text``: the front end's, lower-case."""
    return tuple(w.lower() for w, _ in normalize_text(text))


def word_error_rate(reference: Sequence[str], hypothesis: Sequence[str]) -> tuple[int, int]:
    """Word-level Levenshtein distance (substitutions + deletions + insertions).

    Args:
        reference: the words said; hypothesis: the words recognised.

    Returns:
        ``(errors, len(reference))``; the WER of a set is ``Σ errors / Σ words``.

    >>> word_error_rate(["press", "one", "now"], ["press", "won", "now", "please"])
    (2, 3)
    """
    ref, hyp = list(reference), list(hypothesis)
    prev = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        cur = [i] + [0] * len(hyp)
        for j, h in enumerate(hyp, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h))
        prev = cur
    return prev[-1], len(ref)


NOISE_FLOOR_DBFS = -70.0
"""White noise added to every recording before decoding (dBFS RMS, at the recording's own rate,
a fixed draw): see the module's measurements."""


def _pcm(wave: np.ndarray, sample_rate: int, noise_floor_dbfs: float | None = None) -> bytes:
    from seqboltz.speech._audio import resample

    x = np.asarray(wave, dtype=np.float64)
    if x.ndim != 1 or x.shape[0] < sample_rate // 10:
        raise ValueError(f"need a mono recording of at least 0.1 s, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("the recording contains NaN or infinite samples")
    if noise_floor_dbfs is not None:  # the same draw for every recording of this length
        noise = np.random.default_rng(0).standard_normal(x.shape[0])
        x = x + noise * 10 ** (noise_floor_dbfs / 20)
    x = resample(x, sample_rate, _RATE) if sample_rate != _RATE else x
    return (np.clip(x, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()


class PromptRecognizer:
    """PocketSphinx over a closed set of prompt texts (identification) and free (WER).

    Args:
        texts: every prompt text of the corpus (the grammar's sentences).
        noise_floor_dbfs: white noise added to each recording before decoding (``None``:
            none); the default :data:`NOISE_FLOOR_DBFS`.

    >>> rec = PromptRecognizer(["Please hold.", "Goodbye."])  # doctest: +SKIP
    >>> rec.identify(wave, 8000)  # doctest: +SKIP
    ('please', 'hold')
    """

    def __init__(
        self, texts: Sequence[str], noise_floor_dbfs: float | None = NOISE_FLOOR_DBFS
    ) -> None:
        self.noise_floor_dbfs = noise_floor_dbfs
        sentences = sorted({prompt_words(t) for t in texts})
        if not sentences:
            raise ValueError("need at least one prompt text")
        words = sorted({w for s in sentences for w in s})
        self._ids = {w: f"w{i}" for i, w in enumerate(words)}
        self._words = {v: k for k, v in self._ids.items()}
        self._phones = {w: " ".join(p.rstrip("012") for p in make_word(w).phones) for w in words}
        self._dict_lines = [f"{self._ids[w]} {self._phones[w]}" for w in words]
        alternatives = " | ".join("(" + " ".join(self._ids[w] for w in s) + ")" for s in sentences)
        self._grammar = f"#JSGF V1.0;\ngrammar prompts;\npublic <prompt> = {alternatives};\n"
        self._closed: Any = None
        self._free: Any = None

    def _decoders(self) -> tuple[Any, Any]:
        if self._closed is None:
            import pocketsphinx as ps

            with tempfile.TemporaryDirectory(prefix="seqboltz-recognize-") as tmp:
                dict_path = os.path.join(tmp, "prompts.dict")
                with open(dict_path, "w", encoding="ascii") as f:
                    f.write("\n".join(self._dict_lines) + "\n")
                closed = ps.Decoder(dict=dict_path, lm=None, samprate=_RATE, loglevel="FATAL")
            closed.add_jsgf_string("prompts", self._grammar)
            closed.activate_search("prompts")
            self._closed = closed
            self._free = ps.Decoder(samprate=_RATE, loglevel="FATAL")
        return self._closed, self._free

    @staticmethod
    def _decode(decoder: Any, pcm: bytes) -> list[str]:
        # a fresh front end for every recording: PocketSphinx otherwise carries its noise
        # statistics over from the recording before (measured: decoding the 56 test recordings
        # alone or each after a synthetic one changed one result)
        decoder.reinit_feat()
        decoder.start_utt()
        decoder.process_raw(pcm, full_utt=True)
        decoder.end_utt()
        hyp = decoder.hyp()
        return hyp.hypstr.split() if hyp is not None and hyp.hypstr else []

    def pronounce(self, words: Sequence[str]) -> str | None:
        """The phones of a word sequence by the grammar's dictionary (``None``: a word that
        is not in it)."""
        phones = []
        for w in words:
            if w not in self._ids:
                return None
            phones.append(self._phones[w])
        return " ".join(phones)

    def same_prompt(self, hypothesis: Sequence[str], reference: Sequence[str]) -> bool:
        """Whether a recognised sentence is the prompt up to homophones: the same words, or
        words the dictionary pronounces the same ("four" for "for")."""
        if tuple(hypothesis) == tuple(reference):
            return True
        a, b = self.pronounce(hypothesis), self.pronounce(reference)
        return bool(hypothesis) and a is not None and a == b

    def identify(self, wave: np.ndarray, sample_rate: int) -> tuple[str, ...]:
        """The grammar's best prompt for a recording, as its words (empty: none found)."""
        closed, _ = self._decoders()
        ids = self._decode(closed, _pcm(wave, sample_rate, self.noise_floor_dbfs))
        return tuple(self._words.get(i, i) for i in ids)

    def transcribe(self, wave: np.ndarray, sample_rate: int) -> list[str]:
        """Free decoding with the recogniser's general language model (lower-case words,
        fillers and alternative-pronunciation marks removed)."""
        _, free = self._decoders()
        words = self._decode(free, _pcm(wave, sample_rate, self.noise_floor_dbfs))
        out = [w.split("(")[0].lower() for w in words]
        return [w for w in out if w and not w.startswith(("<", "[", "++"))]
