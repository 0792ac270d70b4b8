"""Text-to-speech data: WORLD frames of transcribed recordings with frame-level linguistic
features, aligned by PocketSphinx.

The default corpus is the Asterisk English prompts (:data:`~seqboltz.data.ASTERISK_PROMPTS`,
8 kHz, one female speaker) with their transcripts from Debian ``asterisk-core-sounds-en``
1.6.1-1 (``core-sounds-en.txt.gz``, one ``name: text`` line per prompt;
:data:`ASTERISK_TRANSCRIPTS`, fetched and pinned like the prompts). Any folder of WAVs with a
transcript file in that format works the same way.

For each prompt with a transcript the DataModule

1. reads the WAV at its own rate: every file must have the same rate, which becomes the
   features' rate (no resampling; a mismatch is an error naming two files);
2. analyses WORLD frames (:class:`~seqboltz.speech.WorldFeatures`) and aligns the transcript
   (:class:`~seqboltz.speech._align.ForcedAligner`), both cached per file (the keys hold the
   file's sha256, the text, the settings and the front end's and aligner's versions);
3. turns the aligned phones into frame-level linguistic features
   (:func:`~seqboltz.speech._text.frame_features`), one row per WORLD frame.

Prompts without speech (``[beep]``), without a transcript or that fail to align are listed in
:attr:`TTSDataModule.skipped` with the reason. Whole prompts are held out: a prompt goes to the
held-out (test) side when a hash of its *normalised text* falls below ``held_out_fraction``,
to a separate validation side when it falls in the next ``val_fraction`` (0: val = test), so
prompts with the same words are always on the same side and adding prompts never moves one
across. Batches are ``{"v": (B, D) frame t, "cond": {"history":
(B, order, D), "controls": (B, C) linguistic features of frame t}}``, float32; the acoustic
frames are standardised with the training prompts' statistics, the controls are used as they
are (one-hots and positions in [0, 1]).
"""

from __future__ import annotations

import gzip
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from seqboltz._io import atomic_write
from seqboltz.data._fetch import PinnedDebPackage, default_cache_dir, fetch_deb, sha256_file
from seqboltz.data._speech import fetch_speech_prompts, find_wavs
from seqboltz.data._windows import SequenceDataModule, WindowDataset, WindowSplit
from seqboltz.speech import WorldFeatures, read_audio
from seqboltz.speech._align import AlignmentError, ForcedAligner, PhoneAlignment
from seqboltz.speech._duration import DurationModel
from seqboltz.speech._mlpg import append_deltas
from seqboltz.speech._text import (
    TextFrontEndError,
    frame_feature_names,
    frame_features,
    normalize_text,
)
from seqboltz.speech._voice import seen_pauses, voice_stats

__all__ = [
    "ASTERISK_TRANSCRIPTS",
    "TTSDataModule",
    "TTSPrompt",
    "fetch_transcripts",
    "read_transcripts",
]

ASTERISK_TRANSCRIPTS = PinnedDebPackage(
    name="asterisk-core-sounds-en-1.6.1-1",
    package="asterisk-core-sounds-en",
    version="1.6.1-1",
    sha256="973e797d28e37fa6ca3c0a9d6fa717e77cf1268ae916bf09fd3503113cdffa50",
    subdir="usr/share/doc/asterisk-core-sounds-en",
)
"""Transcripts of the Asterisk English prompts (``core-sounds-en.txt.gz``, 571 lines)."""

_TRANSCRIPT_FILE = "core-sounds-en.txt.gz"


def fetch_transcripts(cache_dir: str | Path | None = None, refetch: bool = False) -> Path:
    """Path of ``core-sounds-en.txt.gz`` (the installed package's, else the pinned ``.deb``'s).

    An installed package whose ``/usr/share/doc`` files were left out (container images often
    exclude them) does not count: the ``.deb`` is then fetched into the cache.
    """
    path = fetch_deb(ASTERISK_TRANSCRIPTS, cache_dir=cache_dir, refetch=refetch) / _TRANSCRIPT_FILE
    if path.is_file():
        return path
    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    cached = cache / ASTERISK_TRANSCRIPTS.name / ASTERISK_TRANSCRIPTS.subdir / _TRANSCRIPT_FILE
    if cached.is_file() and not refetch:
        return cached
    path = fetch_deb(ASTERISK_TRANSCRIPTS, cache_dir=cache_dir, refetch=True) / _TRANSCRIPT_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{ASTERISK_TRANSCRIPTS.package} has no {_TRANSCRIPT_FILE}")
    return path


def read_transcripts(path: str | Path) -> dict[str, str]:
    """``{name: text}`` from a transcript file: one ``name: text`` line per recording (``name``
    is the WAV's path relative to the folder, without ``.wav``); ``;`` or ``#`` starts a
    comment line; gzip when the name ends in ``.gz``.

    Raises:
        ValueError: a line without ``name: text`` (with its number), or a name given twice.
    """
    path = Path(path)
    opener: Any = gzip.open if path.suffix == ".gz" else open
    out: dict[str, str] = {}
    with opener(path, "rt", encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            line = line.strip()
            if not line or line[0] in ";#":
                continue
            name, sep, text = line.partition(":")
            if not sep or not name.strip():
                raise ValueError(f"{path}:{number}: expected 'name: text', got {line[:60]!r}")
            name = name.strip()
            if name in out:
                raise ValueError(f"{path}:{number}: {name!r} has a second transcript")
            out[name] = text.strip()
    if not out:
        raise ValueError(f"{path}: no 'name: text' lines")
    return out


def _text_hash(text: str) -> float:
    """A uniform number in [0, 1) from the prompt's normalised words (its split)."""
    words = " ".join(w for w, _ in normalize_text(text)).lower()
    digest = hashlib.sha256(words.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _held_out_text(text: str, fraction: float) -> bool:
    return _text_hash(text) < fraction


@dataclass(frozen=True)
class TTSPrompt:
    """One usable prompt: its name, transcript, WAV, alignment, frames per phone and raw
    WORLD frames ``(T, D)``."""

    name: str
    text: str
    wav: Path
    alignment: PhoneAlignment
    durations: np.ndarray
    frames: np.ndarray

    def controls(self) -> np.ndarray:
        """Frame-level linguistic features ``(T, C)``."""
        return frame_features(self.alignment.utterance, self.durations)


class _ControlWindows(WindowDataset):
    """Windows whose per-frame extra input is the model's ``controls`` (not a style)."""

    def __getitems__(self, indices: Sequence[int]) -> dict[str, Any]:
        batch = super().__getitems__(indices)
        batch["cond"]["controls"] = batch["cond"].pop("style")
        return batch


class TTSDataModule(SequenceDataModule):
    """Windows of standardised WORLD frames with per-frame linguistic controls.

    Args:
        path: a folder of WAVs (searched recursively); ``None``: the Asterisk prompts.
        transcripts: a ``name: text`` file (:func:`read_transcripts`); ``None`` with ``path``
            ``None``: the Asterisk transcripts (:func:`fetch_transcripts`).
        order: frames of acoustic history.
        sample_rate: expected rate; ``None`` takes it from the data. Files at another rate are
            an error, never resampled.
        frame_period: WORLD hop (ms).
        mcep_order: mel-cepstrum order.
        held_out_fraction: share of prompt texts held out for test, by a hash of the text.
        val_fraction: share of prompt texts held out for validation (model selection), by the
            same hash; ``0``: validation uses the test prompts (the earlier behaviour).
        include: globs of relative names (``"digits/*"``) to keep; ``None``: all.
        max_utterances: keep only the first ``n`` prompts (sorted by name), for quick runs.
        min_pause: shortest aligned silence between words kept as a pause (s).
        deltas: append Δ and Δ² of every standardised feature but the voicing flag to each
            frame (:func:`~seqboltz.speech._mlpg.append_deltas`), for parameter generation by
            MLPG; the frame then holds ``D + 2(D − 1)`` values, statics first.
        batch_size, shuffle_seed, num_workers, history_noise: as in
            :class:`~seqboltz.data.SpeechDataModule`.
        cache_dir: cache of the fetched corpus, the features and the alignments.
    """

    window_dataset = _ControlWindows

    def __init__(
        self,
        path: str | None = None,
        transcripts: str | None = None,
        order: int = 3,
        sample_rate: int | None = None,
        frame_period: float = 5.0,
        mcep_order: int = 24,
        held_out_fraction: float = 0.1,
        val_fraction: float = 0.0,
        include: tuple[str, ...] | None = None,
        max_utterances: int | None = None,
        min_pause: float = 0.05,
        deltas: bool = False,
        batch_size: int = 256,
        shuffle_seed: int = 0,
        num_workers: int = 0,
        history_noise: float = 0.0,
        cache_dir: str | None = None,
    ) -> None:
        super().__init__(order, batch_size, shuffle_seed, num_workers, history_noise)
        if not 0.0 < held_out_fraction < 1.0:
            raise ValueError(f"held_out_fraction must be in (0, 1), got {held_out_fraction}")
        if not 0.0 <= val_fraction < 1.0 - held_out_fraction:
            raise ValueError(
                f"val_fraction must be in [0, 1 - held_out_fraction), got {val_fraction}"
            )
        if path is not None and transcripts is None:
            raise ValueError("a folder of WAVs (path) needs its transcripts file")
        if max_utterances is not None and max_utterances < 2:
            raise ValueError(f"max_utterances must be >= 2, got {max_utterances}")
        self.path = path
        self.transcripts = transcripts
        self.sample_rate = sample_rate
        self.frame_period = frame_period
        self.mcep_order = mcep_order
        self.held_out_fraction = held_out_fraction
        self.val_fraction = val_fraction
        self.include = tuple(include) if include is not None else None
        self.max_utterances = max_utterances
        self.cache_dir = cache_dir
        self.deltas = deltas
        self.aligner = ForcedAligner(min_pause=min_pause)
        self.features: WorldFeatures | None = None
        self.duration_model: DurationModel | None = None
        self.skipped: dict[str, str] = {}
        self._prompts: dict[str, list[TTSPrompt]] = {}
        self.save_hyperparameters()

    # ------------------------------------------------------------------ data
    def prepare_data(self) -> None:
        if self.path is None:
            fetch_speech_prompts(self.cache_dir)
            fetch_transcripts(self.cache_dir)

    def _sources(self) -> tuple[Path, dict[str, str]]:
        if self.path is None:
            folder = fetch_speech_prompts(self.cache_dir)
            texts = read_transcripts(fetch_transcripts(self.cache_dir))
        else:
            folder = Path(self.path)
            texts = read_transcripts(self.transcripts)  # type: ignore[arg-type]
        return folder, texts

    def _cache_root(self) -> Path:
        return Path(self.cache_dir) if self.cache_dir else default_cache_dir()

    def _analyse(self, wav: Path, digest: str, wf: WorldFeatures) -> np.ndarray:
        settings = {k: v for k, v in wf.to_dict().items() if k not in ("mean", "std")}
        settings.update(sha256=digest, version=1)
        key = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:32]
        cached = self._cache_root() / "speech-features" / f"{key}.npy"
        if cached.is_file():
            try:
                frames = np.load(cached)
                if frames.ndim == 2 and frames.shape[1] == wf.dim:
                    return np.asarray(frames)
            except (OSError, ValueError):
                pass  # a damaged entry is recomputed
        frames = wf.analyze(read_audio(wav))
        atomic_write(cached, lambda f: np.save(f, frames))
        return frames

    def _align(self, wav: Path, digest: str, text: str, rate: int) -> PhoneAlignment:
        record = {"sha256": digest, "text": text, "aligner": self.aligner.card()}
        key = hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()[:32]
        cached = self._cache_root() / "tts-alignments" / f"{key}.json"
        if cached.is_file():
            try:
                record = json.loads(cached.read_text())
                if "error" in record:  # a failure is remembered too: no retry on each setup
                    failure = str(record["error"])
                else:
                    return PhoneAlignment.from_dict(record)
            except (OSError, ValueError, KeyError):
                failure = ""  # stale or damaged: align again
            if failure:
                raise AlignmentError(failure)
        try:
            alignment = self.aligner.align(read_audio(wav), rate, text)
        except AlignmentError as exc:
            message = json.dumps({"error": str(exc)})
            atomic_write(cached, lambda f: f.write(message), text=True)
            raise
        payload = json.dumps(alignment.to_dict())
        atomic_write(cached, lambda f: f.write(payload), text=True)
        return alignment

    def _rates(self, wavs: list[tuple[str, Path]]) -> int:
        import soundfile as sf

        rates: dict[int, str] = {}
        for name, wav in wavs:
            rates.setdefault(int(sf.info(str(wav)).samplerate), name)
        if len(rates) > 1:
            (r1, n1), (r2, n2) = list(rates.items())[:2]
            raise ValueError(
                f"the recordings have different sample rates ({n1}: {r1} Hz, {n2}: {r2} Hz); "
                "resample them to one rate first (seqboltz never resamples training audio)"
            )
        (rate,) = rates
        if self.sample_rate is not None and rate != self.sample_rate:
            raise ValueError(
                f"sample_rate={self.sample_rate} but the recordings are at {rate} Hz "
                f"(e.g. {rates[rate]}); leave sample_rate unset to use the data's rate"
            )
        return rate

    def setup(self, stage: str | None = None) -> None:
        """Analyse and align every transcribed prompt (cached), split, standardise, window."""
        if self._splits:
            return
        folder, texts = self._sources()
        wavs = find_wavs(folder, () if self.path else ("silence/*",))
        named = [(w.relative_to(folder).with_suffix("").as_posix(), w) for w in wavs]
        if self.include is not None:
            named = [(n, w) for n, w in named if any(Path(n).match(g) for g in self.include)]
        self.skipped = {}
        usable: list[tuple[str, Path]] = []
        for name, wav in named:
            if name not in texts:
                self.skipped[name] = "no transcript"
                continue
            try:
                normalize_text(texts[name])
            except TextFrontEndError as exc:
                self.skipped[name] = f"no speech in the transcript ({exc})"
                continue
            usable.append((name, wav))
        if self.max_utterances is not None:
            usable = usable[: self.max_utterances]
        if not usable:
            raise ValueError(f"no WAV in {folder} has a speakable transcript")
        rate = self._rates(usable)
        wf = WorldFeatures(
            sample_rate=rate, frame_period=self.frame_period, mcep_order=self.mcep_order
        )
        parts: dict[str, list[TTSPrompt]] = {"train": [], "held_out": []}
        if self.val_fraction > 0:
            parts["val"] = []
        for name, wav in usable:
            digest = sha256_file(wav)
            frames = self._analyse(wav, digest, wf)
            try:
                alignment = self._align(wav, digest, texts[name], rate)
                durations = alignment.durations(self.frame_period, frames.shape[0])
            except AlignmentError as exc:
                self.skipped[name] = f"alignment failed ({exc})"
                continue
            h = _text_hash(texts[name])
            side = "held_out" if h < self.held_out_fraction else "train"
            if side == "train" and h < self.held_out_fraction + self.val_fraction:
                side = "val"
            parts[side].append(TTSPrompt(name, texts[name], wav, alignment, durations, frames))
        for side in [s for s in parts if s != "train"]:
            if not parts[side] and len(parts["train"]) > 1:
                parts[side].append(parts["train"].pop())  # tiny sets: hold one out
        for side, items in parts.items():
            if not [p for p in items if p.frames.shape[0] > self.order]:
                reasons = sorted(set(self.skipped.values()))[:2]
                raise ValueError(
                    f"no {side} prompt with more than order={self.order} frames; "
                    f"{len(self.skipped)} skipped ({'; '.join(reasons) or 'none'})"
                )
        wf.fit([p.frames for p in parts["train"]])
        self.features = wf
        train_utts = [p.alignment.utterance for p in parts["train"]]
        self.duration_model = DurationModel(frame_period=self.frame_period).fit(
            train_utts, [p.durations for p in parts["train"]]
        )
        val_side = "val" if "val" in parts else "held_out"
        self._prompts = {"train": parts["train"], "val": parts[val_side]}
        self._prompts["test"] = parts["held_out"]
        splits = {}
        for side, items in parts.items():
            splits[side] = WindowSplit(
                [self._standardise(wf, p.frames) for p in items],
                self.order,
                style=[p.controls() for p in items],
                sources=[p.name for p in items],
            )
        self._splits = {"train": splits["train"], "val": splits[val_side]}
        self._splits["test"] = splits["held_out"]

    def _standardise(self, wf: WorldFeatures, frames: np.ndarray) -> np.ndarray:
        z = wf.transform(frames)
        return append_deltas(z, self.delta_columns) if self.deltas else z

    @property
    def delta_columns(self) -> list[int]:
        """The static columns whose Δ and Δ² follow the statics (all but the voicing flag)."""
        assert self.features is not None, "the data exists after setup()"
        return [i for i in range(self.features.dim) if i != self.features.vuv_index]

    # ------------------------------------------------------------------ access
    def prompts(self, split: str = "test") -> list[TTSPrompt]:
        """The prompts of a split, in the order of :meth:`clips`."""
        self._split(split)
        return list(self._prompts[split])

    @property
    def n_controls(self) -> int:
        """Width ``C`` of ``cond["controls"]`` (the frame-level linguistic features)."""
        return len(frame_feature_names())

    def control_clips(self, split: str = "test") -> list[np.ndarray]:
        """Per-frame linguistic features ``[(T_i, C) float64]`` aligned with :meth:`clips`."""
        controls = self._split(split).style_arrays()
        assert controls is not None
        return controls

    def stats(self) -> dict[str, Any]:
        """The fitted features' ``to_dict()`` plus ``order``, the front end's card, the
        aligner's card, the controls' size, the duration model fitted on the training
        prompts (:class:`~seqboltz.speech._duration.DurationModel`) and the training prompts'
        mean first ``order`` frames (standardised; their leading silence, where synthesis
        starts) and the kinds of sentence-internal pause they hold: what a checkpoint, and so
        an exported model card, needs to speak a text
        (:func:`~seqboltz.speech._voice.voice_stats`; one artifact carries both models)."""
        self._split("train")
        assert self.features is not None and self.duration_model is not None
        starts = [c[: self.order] for c in self.clips("train") if c.shape[0] >= self.order]
        return voice_stats(
            self.features,
            self.order,
            self.duration_model,
            silence_frames=np.mean(starts, axis=0),
            aligner=self.aligner.card(),
            delta_columns=self.delta_columns if self.deltas else None,
            pauses_seen=seen_pauses(p.alignment.utterance for p in self.prompts("train")),
        )

    def __repr__(self) -> str:
        return (
            f"TTSDataModule(path={self.path!r}, order={self.order}, "
            f"frame_period={self.frame_period})"
        )
