"""Speech from text with an exported text-to-speech model, torch-free (numpy, onnxruntime,
pyworld/pysptk and the text front end).

A text-to-speech model is one artifact: the acoustic model's sampling step, with the duration
model, the front end's card and the WORLD settings on its card (why one and not two:
:mod:`seqboltz.speech._voice`). ``seqboltz export`` writes it from a checkpoint trained on
:class:`~seqboltz.data.TTSDataModule`; ``seqboltz synthesize --model tts.onnx --text "…"
--out DIR`` speaks with it.

:meth:`TextToSpeech.speak`: text → phones (CMU dictionary, g2p for unknown words) → frames per
phone (the card's duration model) → per-frame linguistic controls → the acoustic model run
free over them (:class:`~seqboltz.runtime.FrameStream`, the one frame loop, started from the
card's silence frames; sequence 0 of ``seed``'s noise) → for a model with Δ and Δ² in its
frames, the statics by the card's block MLPG (:meth:`VoiceCard.statics`; the audio chunker
runs the same blocks as the frames arrive) → the card's formant-emphasis post-filter on the
mel-cepstra (:func:`~seqboltz.speech._world.formant_postfilter`, frame by frame) → WORLD → a
waveform of exactly
``Σ durations · frame_period`` ms. An utterance whose peak is above :data:`PEAK` is scaled
down to it as a whole (the gain is recorded), so no sample is clipped.
:meth:`Speech.write` saves the WAV, a log-mel spectrogram PNG with the phone boundaries, the
alignment as HTK labels (``.lab``) and a Praat TextGrid, and a JSON record.

>>> from seqboltz.runtime import load_voice
>>> tts = load_voice("tts.onnx")  # doctest: +SKIP
>>> speech = tts.speak("Please hold.", seed=0)  # doctest: +SKIP
>>> speech.write("out")  # out/speech.wav, .png, .lab, .TextGrid, .json  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from seqboltz._io import atomic_write
from seqboltz.runtime._artifact import Artifact, ArtifactError, load_artifact
from seqboltz.runtime._stream import FrameStream
from seqboltz.speech._audio import soft_limit as _soft_limit
from seqboltz.speech._voice import TextPlan, VoiceCard, VoiceError

__all__ = ["PEAK", "AudioChunker", "Speech", "TextToSpeech", "load_voice", "soft_limit"]

PEAK = 0.95
"""Largest sample magnitude written: a louder utterance is scaled down to it as a whole."""

SUFFIXES = (".wav", ".png", ".lab", ".TextGrid", ".json")


@dataclass(frozen=True)
class Speech:
    """One synthesised utterance.

    Attributes:
        text: the text as given.
        wave: ``(N,)`` samples in ``[-PEAK, PEAK]``.
        sample_rate: Hz.
        frames: ``(T, D)`` raw WORLD frames (mel-cepstrum, log F0, voicing, aperiodicity).
        plan: phones, predicted durations, controls and alignment.
        gain: the factor the waveform was scaled by (1: not scaled).
        seed: the noise seed.
        model: the model's name.
        seconds: computing time (front end, sampling, vocoder).
    """

    text: str
    wave: np.ndarray
    sample_rate: int
    frames: np.ndarray
    plan: TextPlan
    gain: float
    seed: int
    model: str
    seconds: float

    @property
    def duration(self) -> float:
        """Length of the waveform (s)."""
        return self.wave.shape[0] / self.sample_rate

    def record(self) -> dict[str, Any]:
        """Plain types: the text, words with their pronunciation's source, phones with their
        frames and times, and the settings."""
        al = self.plan.alignment
        return {
            "text": self.text,
            "model": self.model,
            "seed": self.seed,
            "sample_rate": self.sample_rate,
            "seconds_of_audio": self.duration,
            "frames": int(self.frames.shape[0]),
            "gain": self.gain,
            "compute_seconds": self.seconds,
            "words": [
                {"text": w.text, "phones": list(w.phones), "source": w.source}
                for w in self.plan.utterance.words
            ],
            "phones": [
                {"phone": p.symbol, "frames": int(d), "start": float(s), "end": float(e)}
                for p, d, s, e in zip(
                    self.plan.utterance.phones, self.plan.durations, al.starts, al.ends, strict=True
                )
            ],
        }

    def write(
        self,
        out: str | os.PathLike[str],
        stem: str = "speech",
        extra: dict[str, Any] | None = None,
    ) -> dict[str, Path]:
        """Write ``OUT/STEM.wav`` (16-bit PCM), ``.png`` (log-mel spectrogram with the phones),
        ``.lab`` (HTK labels, 100-ns units), ``.TextGrid`` (words and phones) and ``.json``
        (:meth:`record` and ``extra``), each atomically; returns them by suffix."""
        from seqboltz.speech import write_wav

        folder = Path(out)
        folder.mkdir(parents=True, exist_ok=True)
        paths = {s: folder / f"{stem}{s}" for s in SUFFIXES}
        write_wav(paths[".wav"], self.wave, self.sample_rate)
        _picture(paths[".png"], self)
        al = self.plan.alignment
        record = json.dumps(self.record() | dict(extra or {}), indent=2)
        texts = {".lab": al.htk_labels(), ".TextGrid": al.textgrid(), ".json": record}
        for suffix, text in texts.items():
            atomic_write(paths[suffix], partial(_write_text, text=text), text=True)
        return paths


def _write_text(f: Any, text: str) -> None:
    f.write(text)


def _picture(path: Path, speech: Speech) -> None:
    """Log-mel spectrogram with the phone boundaries and symbols above it."""
    from seqboltz.speech import log_mel_spectrogram
    from seqboltz.viz import _pyplot, _save_figure

    plt = _pyplot()
    hop_ms = speech.plan.alignment.duration * 1000 / max(speech.plan.n_frames, 1)
    spec = log_mel_spectrogram(speech.wave, speech.sample_rate, n_mels=40, hop_ms=hop_ms)
    width = min(24.0, 4.0 + 6.0 * speech.duration)
    fig, ax = plt.subplots(figsize=(width, 3.4))
    extent = (0.0, speech.duration, 0.0, float(spec.shape[0]))
    lo = float(np.percentile(spec, 5))
    ax.imshow(spec, origin="lower", aspect="auto", extent=extent, vmin=lo, vmax=float(spec.max()))
    al = speech.plan.alignment
    for start, end, phone in zip(al.starts, al.ends, al.utterance.phones, strict=True):
        ax.axvline(float(start), color="white", lw=0.5, alpha=0.6)
        ax.text(
            (float(start) + float(end)) / 2,
            spec.shape[0] * 1.02,
            phone.symbol,
            ha="center",
            va="bottom",
            fontsize=6,
            clip_on=False,
        )
    ax.set_xlabel("seconds")
    ax.set_ylabel("mel band")
    title = speech.text if len(speech.text) <= 90 else speech.text[:87] + "…"
    ax.set_title(f"{title}  ({speech.model}, seed {speech.seed})", fontsize=8, pad=14)
    fig.tight_layout()
    _save_figure(fig, path)


def soft_limit(wave: np.ndarray, knee: float = 0.8, peak: float = PEAK) -> np.ndarray:
    """The stream's limiter: :func:`seqboltz.speech._audio.soft_limit` (samples above
    ``knee`` bent smoothly towards ``peak``, never reaching it; below the knee unchanged) at
    the runtime's knee and :data:`PEAK`. Memoryless, so a stream can limit each chunk as it
    goes."""
    return _soft_limit(wave, knee, peak)


class AudioChunker:
    """Audio of an utterance in chunks while its frames are still being generated.

    Frames go in as the acoustic model makes them (:meth:`push`); a chunk of audio comes out
    once its frames and a few after them (``lookahead``) are there. A chunk ends at an
    unvoiced frame (a pause or a voiceless consonant, where WORLD's excitation is noise and a
    splice cannot break the pulse train) once it has ``min_frames`` (``first_frames`` for
    the first chunk, so that audio starts early); with no unvoiced frame within
    ``max_frames``, at the quietest frame (lowest ``c₀``) in that span. Each
    chunk is vocoded from its frames with ``context`` frames on each side and joined to the
    previous chunk by a linear cross-fade over ``crossfade`` samples centred on the boundary.
    The chunks together hold exactly ``n_frames · hop`` samples, like :meth:`TextToSpeech.
    speak`'s waveform, which they match except near the joins; each is limited by
    :func:`soft_limit` (a stream cannot scale the whole utterance down).

    A voice with Δ and Δ² takes the model's frames ``(n, D + 2K)``: their statics come from
    the voice's block MLPG (:meth:`VoiceCard.mlpg_solver`) as its blocks complete, the same
    statics :meth:`TextToSpeech.speak` vocodes.

    Args:
        voice: the voice (features, statistics).
        n_frames: frames of the utterance (the plan's).
    """

    def __init__(
        self,
        voice: VoiceCard,
        n_frames: int,
        *,
        first_frames: int = 12,
        min_frames: int = 40,
        max_frames: int = 120,
        context: int = 4,
        lookahead: int = 4,
        crossfade: int | None = None,
    ) -> None:
        if not 1 <= first_frames <= max_frames or not 1 <= min_frames <= max_frames:
            raise ValueError("need 1 <= first_frames, min_frames <= max_frames")
        self.voice = voice
        self.n_frames = n_frames
        self.first_frames, self.min_frames, self.max_frames = first_frames, min_frames, max_frames
        self.context, self.lookahead = context, lookahead
        self.hop = round(voice.frame_period * voice.sample_rate / 1000)
        half = (self.hop // 2) if crossfade is None else crossfade // 2
        self.half = max(0, min(half, context * self.hop, lookahead * self.hop))
        self.frames = np.empty((0, voice.features.dim))  # statics so far
        self.mlpg = voice.mlpg_solver()
        self.pushed = 0  # model frames pushed
        self.start = 0  # first frame of the next chunk
        self.held = np.empty(0)  # the previous chunk's last 2·half samples, not yet sent
        self.samples_out = 0
        #: how many joins fell on an unvoiced frame, and how many on the quietest voiced one
        self.joins = {"unvoiced": 0, "voiced": 0}

    def _raw(self, t: int, column: int) -> float:
        f = self.voice.features
        assert f.mean is not None and f.std is not None
        return float(self.frames[t, column] * f.std[column] + f.mean[column])

    def _cut(self, final: bool) -> int | None:
        """End (exclusive) of the next chunk, or ``None`` if it cannot be cut yet."""
        if final:
            return self.n_frames if self.start < self.n_frames else None
        least = self.first_frames if self.start == 0 else self.min_frames
        ready = min(self.frames.shape[0] - self.lookahead, self.n_frames - 1)
        candidates = range(self.start + least, min(self.start + self.max_frames, ready) + 1)
        vuv = self.voice.features.vuv_index
        for b in candidates:
            if self._raw(b, vuv) < 0.5:
                self.joins["unvoiced"] += 1
                return b
        if self.start + self.max_frames > ready or not candidates:
            return None  # wait for more frames (the last chunk waits for finish())
        self.joins["voiced"] += 1  # no unvoiced frame: the quietest one
        return min(candidates, key=lambda b: self._raw(b, 0))

    def _chunk(self, end: int) -> np.ndarray:
        a, h = self.start, self.half
        s = max(0, a - self.context)
        e = min(self.frames.shape[0], end + self.lookahead)
        raw = self.voice.features.inverse_transform(self.frames[s:e])
        wave = self.voice.features.synthesize(raw, clip=False, postfilter=self.voice.postfilter)
        final = end >= self.n_frames
        lo = (a - s) * self.hop - (h if a > 0 else 0)
        hi = (end - s) * self.hop + (0 if final else h)
        seg = wave[lo:hi]
        out = []
        if a > 0:  # cross-fade with the previous chunk's tail
            ramp = (np.arange(2 * h) + 0.5) / (2 * h)
            out.append(self.held * (1 - ramp) + seg[: 2 * h] * ramp)
            seg = seg[2 * h :]
        if final:
            out.append(seg)
            self.held = np.empty(0)
        else:
            out.append(seg[: len(seg) - 2 * h])
            self.held = seg[len(seg) - 2 * h :]
        self.start = end
        chunk = soft_limit(np.concatenate(out))
        self.samples_out += chunk.shape[0]
        return chunk

    def push(self, frames: np.ndarray) -> list[np.ndarray]:
        """Standardised model frames ``(n, D)`` or ``(n, D + 2K)`` (the next ones) → the
        audio chunks now ready."""
        x = np.atleast_2d(frames)
        self.pushed += x.shape[0]
        if self.pushed > self.n_frames:
            raise ValueError(f"more than the utterance's {self.n_frames} frames pushed")
        statics = x[:, : self.voice.features.dim] if self.mlpg is None else self.mlpg.push(x)
        self.frames = np.concatenate([self.frames, statics])
        ready = []
        while (end := self._cut(final=False)) is not None:
            ready.append(self._chunk(end))
        return ready

    def finish(self) -> list[np.ndarray]:
        """The remaining audio, once all ``n_frames`` frames are in."""
        if self.mlpg is not None and self.pushed == self.n_frames:
            self.frames = np.concatenate([self.frames, self.mlpg.finish()])
            self.mlpg = None
        if self.frames.shape[0] != self.n_frames:
            raise ValueError(f"{self.frames.shape[0]} of {self.n_frames} frames pushed")
        end = self._cut(final=True)
        return [] if end is None else [self._chunk(end)]


class TextToSpeech:
    """Speak with a text-to-speech artifact (see the module).

    Args:
        artifact: a loaded sequence artifact whose card carries a voice
            (:meth:`~seqboltz.speech._voice.VoiceCard.from_card`).

    Raises:
        VoiceError: the artifact is not a text-to-speech model (one line).
    """

    def __init__(self, artifact: Artifact) -> None:
        if artifact.family != "sequence":
            raise VoiceError(f"model {artifact.name!r} is an RBM, not a text-to-speech model")
        self.artifact = artifact
        self.voice = VoiceCard.from_card(artifact.card)
        if self.voice.frame_size != artifact.frame_size or self.voice.order != artifact.order:
            raise VoiceError(
                f"model {artifact.name!r}: its voice describes frames of "
                f"{self.voice.frame_size} values and order {self.voice.order}; the model has "
                f"{artifact.frame_size} and {artifact.order}"
            )

    @property
    def name(self) -> str:
        return self.artifact.name

    @property
    def sample_rate(self) -> int:
        return self.voice.sample_rate

    @property
    def seed_frames(self) -> np.ndarray:
        """``(order, D)`` standardised frames an utterance starts from (leading silence)."""
        silence = self.voice.silence_frames
        return self.artifact.default_seed_frames if silence is None else silence

    def plan(self, text: str) -> TextPlan:
        """Phones, predicted durations and controls of ``text`` (:meth:`VoiceCard.plan`)."""
        return self.voice.plan(text)

    def frames(self, plan: TextPlan, seed: int = 0) -> np.ndarray:
        """Standardised model frames ``(T, D)`` (``(T, D + 2K)`` with deltas) of a plan: the
        seed frames, then the model run free with the plan's controls (sequence 0 of
        ``seed``'s noise).

        Raises:
            ModelDiverged: the model produced a non-finite frame.
        """
        stream = self.frame_stream(plan, seed)
        generated = self.artifact.run_stream(stream, plan.n_frames - self.voice.order).frames
        return np.concatenate([self.seed_frames, generated[0]])

    def vocode(self, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
        """Raw WORLD frames, the waveform (scaled to :data:`PEAK` if louder) and the gain, of
        standardised model frames (their statics: :meth:`VoiceCard.statics`)."""
        raw = self.voice.features.inverse_transform(self.voice.statics(frames))
        wave = self.voice.features.synthesize(raw, clip=False, postfilter=self.voice.postfilter)
        peak = float(np.max(np.abs(wave))) if wave.size else 0.0
        gain = PEAK / peak if peak > PEAK else 1.0
        return raw, np.asarray(wave * gain), gain

    def speak(self, text: str, seed: int = 0) -> Speech:
        """Synthesise ``text`` (see the module).

        Raises:
            VoiceError: empty text, or text without a speakable word.
            ModelDiverged: the acoustic model produced a non-finite frame.
        """
        if seed < 0:
            raise ArtifactError(f"seed must be >= 0, got {seed}")
        tick = time.perf_counter()
        plan = self.plan(text)
        raw, wave, gain = self.vocode(self.frames(plan, seed))
        return Speech(
            text=text,
            wave=wave,
            sample_rate=self.sample_rate,
            frames=raw,
            plan=plan,
            gain=gain,
            seed=seed,
            model=self.name,
            seconds=time.perf_counter() - tick,
        )

    def stream(self, text: str, seed: int = 0, **chunking: Any) -> Iterator[np.ndarray]:
        """The waveform of ``text`` in chunks as it is generated (:class:`AudioChunker`,
        arguments ``chunking``); the frames are :meth:`speak`'s.

        Raises:
            VoiceError: empty text, or text without a speakable word.
            ModelDiverged: the acoustic model produced a non-finite frame.
        """
        plan = self.plan(text)
        chunker = AudioChunker(self.voice, plan.n_frames, **chunking)
        yield from chunker.push(self.seed_frames)
        stream = self.frame_stream(plan, seed)
        for _ in range(plan.n_frames - self.voice.order):
            yield from chunker.push(stream.advance(self.artifact.step))
        yield from chunker.finish()

    def frame_stream(self, plan: TextPlan, seed: int = 0) -> FrameStream:
        """The :class:`FrameStream` that generates a plan's frames after the seed frames
        (drive it with the artifact's step, or the service's batcher)."""
        order = self.voice.order
        return self.artifact.frame_stream(
            seed=seed, seed_frames=self.seed_frames, controls=plan.controls[None, order:]
        )


def load_voice(path: str | os.PathLike[str], threads: int = 1) -> TextToSpeech:
    """Load a text-to-speech artifact (:func:`~seqboltz.runtime.load_artifact` + its voice).

    Raises:
        ArtifactError: an unreadable artifact.
        VoiceError: an artifact that is not a text-to-speech model.
    """
    return TextToSpeech(load_artifact(path, threads=threads))


def synthesize_text(
    model: str | os.PathLike[str], text: str, out: str | os.PathLike[str], seed: int = 0
) -> tuple[Speech, dict[str, Path]]:
    """``seqboltz synthesize --text``: speak ``text`` with ``model`` and write the files
    (:meth:`Speech.write`; the JSON also records the model file's sha256)."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:  # checked first: nothing is written without the picture
        raise ArtifactError("--text writes a spectrogram PNG: pip install matplotlib") from None
    tts = load_voice(model)
    speech = tts.speak(text, seed=seed)
    digest = hashlib.sha256(Path(model).read_bytes()).hexdigest()
    paths = speech.write(out, extra={"model_file": str(model), "model_sha256": digest})
    return speech, paths
