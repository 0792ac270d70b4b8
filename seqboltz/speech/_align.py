"""Forced alignment of recordings with their transcripts: phone durations for training.

The aligner is PocketSphinx (``pocketsphinx`` wheel) with the US-English acoustic model that
ships inside the wheel (continuous HMMs trained on 16-kHz speech); nothing is downloaded. The
transcript goes through the text front end (:mod:`seqboltz.speech._text`), and each of its
words is entered into a per-utterance dictionary with the front end's own pronunciation, so the
aligned phones are exactly the front end's phones. PocketSphinx inserts optional silences
between words; silences of at least ``min_pause`` seconds become pauses (``pau``) of the
utterance, shorter ones are given to the phone before them.

Bridging the sample rate: the model's features are computed from 16-kHz audio, so audio at
another rate is resampled to 16 kHz first (:func:`seqboltz.speech.resample`, band-limited).
8-kHz telephone speech upsampled this way has no energy above 4 kHz, where the model's mel
filters reach up to 6.9 kHz; the cepstral mean normalisation absorbs part of that mismatch,
and :func:`alignment_sanity` measures how well the boundaries follow the audio.

PocketSphinx works on 10-ms frames, each dated at the centre of its 25.6-ms window (12.8 ms
after the frame's start); :meth:`PhoneAlignment.durations` converts the phone
boundaries (seconds) to any acoustic frame period, with every phone at least one frame long.

Reference: Huggins-Daines et al. (2006), "PocketSphinx: a free, real-time continuous speech
recognition system for hand-held devices", ICASSP.
"""

from __future__ import annotations

import importlib.metadata
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from seqboltz.speech._text import (
    FRONTEND_VERSION,
    PAUSE,
    Utterance,
    build_utterance,
    make_word,
    normalize_text,
)

__all__ = ["ALIGNER_VERSION", "AlignmentError", "ForcedAligner", "PhoneAlignment"]

ALIGNER_VERSION = "2"
"""Bumped when the aligner's output for the same audio and text changes (cache key)."""

_ALIGN_RATE = 16000
_PS_FRAME = 0.01  # PocketSphinx frame period (s)
# PocketSphinx frame i analyses a 25.625-ms window starting at i·10 ms; its time is the window's
# centre, as for WORLD's frames (centred at t·frame_period). Measured on CMU ARCTIC a0007: the
# voicing agreement of the alignment peaks 10-20 ms after the window starts.
_PS_OFFSET = 0.025625 / 2


class AlignmentError(ValueError):
    """A recording that cannot be aligned with its transcript, saying which and why."""


@dataclass(frozen=True)
class PhoneAlignment:
    """Phones of an utterance with their times.

    Attributes:
        utterance: the utterance, with pauses where the recording has them.
        starts, ends: ``(P,)`` seconds of each phone of ``utterance.phones``.
        duration: length of the recording (s).
    """

    utterance: Utterance
    starts: np.ndarray
    ends: np.ndarray
    duration: float

    def durations(self, frame_period: float, n_frames: int) -> np.ndarray:
        """Frames per phone ``(P,)`` int64 for acoustic frames every ``frame_period`` ms,
        summing to ``n_frames`` (frame ``t`` at time ``t · frame_period``), each at least 1.

        Raises:
            AlignmentError: fewer frames than phones.
        """
        n = len(self.utterance.phones)
        if n_frames < n:
            raise AlignmentError(f"{n_frames} frames cannot hold {n} phones")
        bounds = np.rint(self.starts * 1000.0 / frame_period).astype(np.int64)
        bounds = np.concatenate([bounds, [n_frames]])
        bounds[0] = 0
        # at least one frame per phone, keeping inside [0, n_frames]
        for i in range(1, n + 1):
            bounds[i] = max(bounds[i], bounds[i - 1] + 1)
        bounds[n] = n_frames
        for i in range(n - 1, 0, -1):
            bounds[i] = min(bounds[i], bounds[i + 1] - 1)
        return np.diff(bounds)

    def htk_labels(self) -> str:
        """HTK label text: ``start end phone`` per line, times in 100-ns units."""
        lines = [
            f"{round(s * 1e7)} {round(e * 1e7)} {p.symbol}"
            for s, e, p in zip(self.starts, self.ends, self.utterance.phones, strict=True)
        ]
        return "\n".join(lines) + "\n"

    @classmethod
    def from_durations(
        cls, utterance: Utterance, durations: Sequence[int] | np.ndarray, frame_period: float
    ) -> PhoneAlignment:
        """The alignment that frames per phone imply (e.g. a duration model's prediction):
        phone ``i`` spans frames ``[b_i, b_{i+1})``, i.e. ``[b_i, b_{i+1}) · frame_period``
        ms; the utterance lasts ``Σ durations · frame_period`` ms (as long as WORLD's
        waveform of those frames)."""
        durs = np.asarray(durations, dtype=np.int64)
        if durs.shape != (len(utterance.phones),) or (durs.size and durs.min() < 1):
            raise ValueError(
                f"need {len(utterance.phones)} durations of at least one frame, got "
                f"shape {durs.shape}"
            )
        bounds = np.concatenate([[0], np.cumsum(durs)]) * frame_period / 1000.0
        return cls(utterance, bounds[:-1], bounds[1:], float(bounds[-1]))

    def textgrid(self) -> str:
        """Praat TextGrid text (long format) with two interval tiers, ``words`` (pauses and
        gaps empty) and ``phones`` (``pau`` for pauses), tiling ``[0, duration]``."""
        phones = [
            (float(s), float(e), p.symbol)
            for s, e, p in zip(self.starts, self.ends, self.utterance.phones, strict=True)
        ]
        spans: dict[int, list[float]] = {}
        for (s, e, _), p in zip(phones, self.utterance.phones, strict=True):
            if p.word >= 0:
                span = spans.setdefault(p.word, [s, e])
                span[0], span[1] = min(span[0], s), max(span[1], e)
        words = [(a, b, self.utterance.words[w].text) for w, (a, b) in sorted(spans.items())]
        end = max(float(self.duration), max((e for _, e, _ in phones), default=0.0))
        tiers = [("words", _tile(words, end)), ("phones", _tile(phones, end))]
        lines = ['File type = "ooTextFile"', 'Object class = "TextGrid"', "", "xmin = 0"]
        lines += [f"xmax = {end:.6f}", "tiers? <exists>", f"size = {len(tiers)}", "item []:"]
        for k, (name, intervals) in enumerate(tiers, 1):
            lines += [f"    item [{k}]:", '        class = "IntervalTier"']
            lines += [f'        name = "{name}"', "        xmin = 0", f"        xmax = {end:.6f}"]
            lines.append(f"        intervals: size = {len(intervals)}")
            for i, (a, b, text) in enumerate(intervals, 1):
                quoted = text.replace('"', '""')
                lines += [f"        intervals [{i}]:", f"            xmin = {a:.6f}"]
                lines += [f"            xmax = {b:.6f}", f'            text = "{quoted}"']
        return "\n".join(lines) + "\n"

    def to_dict(self) -> dict[str, Any]:
        """Plain types for a JSON cache: the text, the pauses found, the times."""
        pauses = [0] * len(self.utterance.words)
        last_word = -1
        for p in self.utterance.phones:
            if p.symbol == PAUSE and p.pause in (1, 2) and last_word >= 0:
                pauses[last_word] = p.pause
            elif p.word >= 0:
                last_word = p.word
        phones = self.utterance.phones
        return {
            "text": self.utterance.text,
            "pauses_after": pauses,
            "edges": [phones[0].pause == 3, phones[-1].pause == 3],
            "starts": [float(x) for x in self.starts],
            "ends": [float(x) for x in self.ends],
            "duration": float(self.duration),
            "front_end": FRONTEND_VERSION,
            "aligner": ALIGNER_VERSION,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PhoneAlignment:
        """Rebuild from :meth:`to_dict` (the text goes through the front end again)."""
        words = [make_word(w, p) for w, p in normalize_text(d["text"])]
        edges = (bool(d["edges"][0]), bool(d["edges"][1]))
        utt = build_utterance(d["text"], words, d["pauses_after"], edges)
        starts, ends = np.asarray(d["starts"], float), np.asarray(d["ends"], float)
        if starts.shape != (len(utt.phones),) or ends.shape != starts.shape:
            raise AlignmentError(
                f"cached alignment of {d['text'][:40]!r} has {starts.shape[0]} phones, the "
                f"front end gives {len(utt.phones)}"
            )
        return cls(utt, starts, ends, float(d["duration"]))


def _tile(
    intervals: Sequence[tuple[float, float, str]], end: float
) -> list[tuple[float, float, str]]:
    """Sorted ``(start, end, text)`` intervals tiling ``[0, end]``: overlaps cut at the later
    start, gaps filled with empty intervals."""
    out: list[tuple[float, float, str]] = []
    t = 0.0
    for a, b, text in sorted(intervals):
        a, b = max(a, t), min(b, end)
        if b <= a:
            continue
        if a > t:
            out.append((t, a, ""))
        out.append((a, b, text))
        t = b
    if t < end:
        out.append((t, end, ""))
    return out


def _pocketsphinx() -> Any:
    try:
        import pocketsphinx
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ImportError("alignment needs pocketsphinx: pip install 'seqboltz[speech]'") from exc
    return pocketsphinx


class ForcedAligner:
    """PocketSphinx forced alignment with its shipped 16-kHz US-English model.

    Args:
        min_pause: shortest silence between words kept as a pause (s).
        beam_log: PocketSphinx's beam width (``beam``, a probability floor); the default
            ``1e-60`` is wider than the recogniser's, for long prompts.

    >>> al = ForcedAligner().align(wave, 8000, "Please hold.")  # doctest: +SKIP
    >>> al.durations(5.0, n_frames=400)  # frames per phone  # doctest: +SKIP
    """

    def __init__(self, min_pause: float = 0.05, beam_log: float = 1e-60) -> None:
        if min_pause < 0:
            raise ValueError(f"min_pause must be >= 0, got {min_pause}")
        self.min_pause = min_pause
        self.beam_log = beam_log

    def card(self) -> dict[str, Any]:
        """What produced the alignments (for a model card or a cache key)."""
        try:
            version = importlib.metadata.version("pocketsphinx")
        except importlib.metadata.PackageNotFoundError:  # pragma: no cover
            version = None
        return {
            "aligner": "pocketsphinx",
            "pocketsphinx": version,
            "acoustic_model": "en-us (shipped in the wheel, 16 kHz)",
            "rate_bridge": f"band-limited resampling to {_ALIGN_RATE} Hz",
            "min_pause": self.min_pause,
            "beam": self.beam_log,
            "version": ALIGNER_VERSION,
        }

    def align(self, wave: np.ndarray, sample_rate: int, text: str) -> PhoneAlignment:
        """Align a mono recording with its transcript.

        Args:
            wave: ``(N,)`` samples in [-1, 1].
            sample_rate: its rate (Hz); resampled to 16 kHz for the aligner.
            text: the transcript (any text the front end reads).

        Raises:
            TextFrontEndError: a transcript with nothing to speak.
            AlignmentError: the aligner found no path through the transcript.
        """
        from seqboltz.speech._audio import resample

        words = [make_word(w, p) for w, p in normalize_text(text)]
        wave = np.asarray(wave, dtype=np.float64)
        if wave.ndim != 1 or wave.shape[0] < sample_rate // 10:
            raise AlignmentError(f"need a mono recording of at least 0.1 s, got {wave.shape}")
        x = resample(wave, sample_rate, _ALIGN_RATE) if sample_rate != _ALIGN_RATE else wave
        pcm = (np.clip(x, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()
        segments = self._decode(words, pcm)
        return self._to_alignment(text, words, segments, wave.shape[0] / sample_rate)

    def _decode(self, words: Sequence[Any], pcm: bytes) -> list[tuple[str, str, int, int]]:
        """Two PocketSphinx passes; ``[(word, phone, start_frame, n_frames)]``."""
        ps = _pocketsphinx()
        with tempfile.TemporaryDirectory(prefix="seqboltz-align-") as tmp:
            dict_path = os.path.join(tmp, "words.dict")
            with open(dict_path, "w", encoding="ascii") as f:
                for i, w in enumerate(words):
                    f.write(f"w{i} {' '.join(p.rstrip('012') for p in w.phones)}\n")
            decoder = ps.Decoder(
                dict=dict_path, lm=None, samprate=_ALIGN_RATE, loglevel="FATAL", beam=self.beam_log
            )
        try:
            decoder.set_align_text(" ".join(f"w{i}" for i in range(len(words))))
            for _ in range(2):  # words first, then phones within them
                decoder.start_utt()
                decoder.process_raw(pcm, full_utt=True)
                decoder.end_utt()
                if decoder.get_alignment() is None:
                    decoder.set_alignment()
            alignment = decoder.get_alignment()
        except RuntimeError as exc:
            raise AlignmentError(f"PocketSphinx found no alignment ({exc})") from exc
        if alignment is None:
            raise AlignmentError("PocketSphinx found no alignment")
        out = []
        for word in alignment:
            for phone in word:
                out.append((word.name, phone.name, int(phone.start), int(phone.duration)))
        if not out:
            raise AlignmentError("PocketSphinx found no alignment")
        return out

    def _to_alignment(
        self,
        text: str,
        words: Sequence[Any],
        segments: list[tuple[str, str, int, int]],
        duration: float,
    ) -> PhoneAlignment:
        # Group: leading silence, then each word's phones followed by the silence after it.
        lead = 0
        word_phones: list[list[tuple[int, int]]] = [[] for _ in words]
        sil_after = [0] * len(words)
        current = -1
        for name, _phone, start, n in segments:
            if name.startswith("w") and name[1:].isdigit():
                current = int(name[1:])
                word_phones[current].append((start, n))
            elif current < 0:
                lead += n
            else:
                sil_after[current] += n
        if any(len(wp) != len(w.phones) for wp, w in zip(word_phones, words, strict=True)):
            raise AlignmentError("PocketSphinx returned a different phone count than asked")
        min_frames = self.min_pause / _PS_FRAME
        pauses = [
            (w.pause_after or 1) if s >= max(min_frames, 1) else 0
            for w, s in zip(words, sil_after, strict=True)
        ]
        tail = sil_after[-1]
        pauses[-1] = 0
        edges = (lead > 0, tail > 0)
        utt = build_utterance(text, list(words), pauses, edges)
        starts: list[float] = []
        if edges[0]:
            starts.append(0.0)
        for i, wp in enumerate(word_phones):
            starts += [s * _PS_FRAME for s, _ in wp]
            if pauses[i] > 0:
                end = wp[-1][0] + wp[-1][1]
                starts.append(end * _PS_FRAME)
        if edges[1]:
            wp = word_phones[-1]
            starts.append((wp[-1][0] + wp[-1][1]) * _PS_FRAME)
        start_arr = np.asarray(starts)
        start_arr[1:] = np.minimum(start_arr[1:] + _PS_OFFSET, duration)
        if start_arr.shape[0] != len(utt.phones):  # pragma: no cover - internal consistency
            raise AlignmentError("alignment and utterance disagree on the phone count")
        ends = np.concatenate([start_arr[1:], [duration]])
        return PhoneAlignment(utt, start_arr, ends, duration)


def alignment_sanity(
    alignment: PhoneAlignment, frames: np.ndarray, frame_period: float, lf0_vuv: tuple[int, int]
) -> dict[str, float]:
    """How well an alignment follows the audio, from its WORLD frames.

    Args:
        alignment: the alignment.
        frames: raw WORLD frames ``(T, D)`` of the same recording (column 0 is ``c₀``, the
            log energy of the mel-cepstrum).
        frame_period: their hop (ms).
        lf0_vuv: the columns of log F0 and of the voicing flag.

    Returns:
        ``pause_c0_gap``: mean ``c₀`` of speech frames minus that of internal and edge pauses
        (natural-log units; large and positive when pauses are silent);
        ``vowel_voiced``: voiced share of vowel frames; ``voiceless_voiced``: voiced share
        of the frames of voiceless obstruents (P T K CH F TH S SH HH);
        ``voicing_agreement``: share of the frames of sonorants (vowels, nasals, liquids,
        glides), voiceless obstruents and pauses whose WORLD voicing matches the class
        (voiced for sonorants, unvoiced otherwise);
        ``boundary_change``: mean cepstral change ``‖c_t − c_{t−1}‖`` at phone boundaries
        divided by the mean over all frames (above 1 when boundaries sit on spectral changes).
    """
    t = frames.shape[0]
    durs = alignment.durations(frame_period, t)
    syms = np.repeat(np.array(alignment.utterance.symbols), durs)
    c0 = frames[:, 0]
    voiced = frames[:, lf0_vuv[1]] > 0.5
    pause = syms == PAUSE
    vowels = np.isin(syms, ["AA", "AE", "AH", "AO", "AW", "AY", "EH", "ER", "EY", "IH", "IY",
                            "OW", "OY", "UH", "UW"])  # fmt: skip
    voiceless = np.isin(syms, ["P", "T", "K", "CH", "F", "TH", "S", "SH", "HH"])
    sonorant = vowels | np.isin(syms, ["M", "N", "NG", "L", "R", "W", "Y"])
    judged = sonorant | voiceless | pause
    change = np.r_[0.0, np.linalg.norm(np.diff(frames[:, 1 : lf0_vuv[0]], axis=0), axis=1)]
    bounds = np.cumsum(durs)[:-1]
    nan = float("nan")
    return {
        "pause_c0_gap": float(c0[~pause].mean() - c0[pause].mean()) if pause.any() else nan,
        "vowel_voiced": float(voiced[vowels].mean()) if vowels.any() else nan,
        "voiceless_voiced": float(voiced[voiceless].mean()) if voiceless.any() else nan,
        "voicing_agreement": float((voiced[judged] == sonorant[judged]).mean()),
        "boundary_change": float(change[bounds].mean() / change[1:].mean()) if bounds.size else nan,
    }
