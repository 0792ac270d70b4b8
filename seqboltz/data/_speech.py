"""Speech data for sequence models: WORLD frames of a folder of WAVs, split by utterance.

The default corpus is the Asterisk English prompts (Debian ``asterisk-core-sounds-en-wav``
1.6.1-1: 568 prompts, 25.5 min, one female speaker, 8 kHz, CC-BY-SA-3.0), fetched by
:func:`fetch_speech_prompts` (the installed package if present, else the pinned ``.deb``).

Every WAV is read with soundfile, resampled to ``sample_rate`` with torchaudio, analysed with
:class:`~seqboltz.speech.WorldFeatures` and cached per file (the cache key holds the file's
sha256 and the analysis settings, so an edited file or new settings are analysed again).
Utterances are assigned to train or held out (val/test) by a hash of their path relative to the
folder, so adding files never moves an existing utterance to the other side. Statistics come
from the training utterances and travel with the model (:meth:`SpeechDataModule.stats`).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

import numpy as np

from seqboltz._io import atomic_write
from seqboltz.data._fetch import PinnedDebPackage, default_cache_dir, fetch_deb, sha256_file
from seqboltz.data._windows import SequenceDataModule, WindowSplit
from seqboltz.speech import LogMelFeatures, SpeechFeatures, WorldFeatures, read_audio

__all__ = ["ASTERISK_PROMPTS", "SpeechDataModule", "fetch_speech_prompts", "find_wavs"]

ASTERISK_PROMPTS = PinnedDebPackage(
    name="asterisk-core-sounds-en-wav-1.6.1-1",
    package="asterisk-core-sounds-en-wav",
    version="1.6.1-1",
    sha256="2be3ea287d83299d143815fa804f11179a75b7affd4a758b98b55f5afc18a35d",
    subdir="usr/share/asterisk/sounds/en_US_f_Allison",
)
"""Asterisk English prompts (one female speaker, 8 kHz, CC-BY-SA-3.0)."""


def fetch_speech_prompts(cache_dir: str | Path | None = None, refetch: bool = False) -> Path:
    """Folder of the Asterisk prompts (see :func:`~seqboltz.data.fetch_deb`)."""
    return fetch_deb(ASTERISK_PROMPTS, cache_dir=cache_dir, refetch=refetch)


#: the recording formats a speech folder may hold (libsndfile reads them all losslessly)
AUDIO_SUFFIXES = (".wav", ".flac")


def find_wavs(folder: str | Path, exclude: tuple[str, ...] = ()) -> list[Path]:
    """Recordings under ``folder`` (``*.wav`` and ``*.flac``, recursive, sorted), minus paths
    (relative, POSIX) matching a glob of ``exclude``.

    A name is the path without its suffix, so a folder holding ``a.wav`` and ``a.flac`` is
    refused (two recordings of one name)."""
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"speech folder {root} does not exist")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file())
    rel = [(p, p.relative_to(root)) for p in files]
    keep = [p for p, r in rel if not any(r.match(pat) for pat in exclude)]
    if not keep:
        raise FileNotFoundError(f"no .wav or .flac files in {root} (excluding {list(exclude)})")
    stems: dict[Path, Path] = {}
    for p in keep:
        stem = p.with_suffix("")
        if stem in stems:
            raise FileNotFoundError(
                f"{stems[stem]} and {p}: two recordings of one name; keep one of them"
            )
        stems[stem] = p
    return keep


def _held_out(relative: str, fraction: float) -> bool:
    """Stable utterance-level assignment: a hash of the relative path below ``fraction``."""
    digest = hashlib.sha256(relative.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction


class SpeechDataModule(SequenceDataModule):
    """Windows of standardised WORLD frames for conditional RBMs over speech.

    Args:
        path: a folder of WAVs (any rate, mono or not; searched recursively); ``None``: the
            Asterisk prompts (:func:`fetch_speech_prompts`, without their ``silence/`` files).
        order: frames of history.
        sample_rate: rate the audio is resampled to (Hz).
        frame_period: WORLD hop (ms).
        mcep_order: mel-cepstrum order ``M`` (frames hold ``c₀ … c_M``).
        features: ``"world"`` (:class:`~seqboltz.speech.WorldFeatures`, the default) or
            ``"logmel"`` (:class:`~seqboltz.speech.LogMelFeatures`: ``n_mels`` log mel powers,
            Griffin-Lim inversion; needs torchaudio).
        n_mels: mel bands of the log-mel option.
        held_out_fraction: fraction of utterances held out (val and test), chosen by a hash
            of each file's relative path.
        max_utterances: use only the first ``n`` files (sorted), e.g. for quick runs.
        exclude: globs of relative paths to leave out.
        batch_size, shuffle_seed, num_workers: as in :class:`~seqboltz.data.MotionDataModule`.
        cache_dir: cache of the fetched corpus and of the analysed features.

    Raises (in :meth:`setup`):
        AudioFileError: a corrupt or empty WAV (naming it); ValueError: no utterance long
            enough for ``order`` in a split.
    """

    def __init__(
        self,
        path: str | None = None,
        order: int = 3,
        sample_rate: int = 8000,
        frame_period: float = 5.0,
        mcep_order: int = 24,
        features: Literal["world", "logmel"] = "world",
        n_mels: int = 40,
        held_out_fraction: float = 0.1,
        max_utterances: int | None = None,
        exclude: tuple[str, ...] | None = None,
        batch_size: int = 256,
        shuffle_seed: int = 0,
        cache_dir: str | None = None,
        num_workers: int = 0,
    ) -> None:
        super().__init__(order, batch_size, shuffle_seed, num_workers)
        if not 0.0 < held_out_fraction < 1.0:
            raise ValueError(f"held_out_fraction must be in (0, 1), got {held_out_fraction}")
        if max_utterances is not None and max_utterances < 2:
            raise ValueError(f"max_utterances must be >= 2, got {max_utterances}")
        self.path = path
        self.held_out_fraction = held_out_fraction
        self.max_utterances = max_utterances
        self.exclude = tuple(exclude) if exclude is not None else (() if path else ("silence/*",))
        self.cache_dir = cache_dir
        if features not in ("world", "logmel"):
            raise ValueError(f"features must be 'world' or 'logmel', got {features!r}")
        self.features: SpeechFeatures = (
            WorldFeatures(sample_rate=sample_rate, frame_period=frame_period, mcep_order=mcep_order)
            if features == "world"
            else LogMelFeatures(sample_rate=sample_rate, frame_period=frame_period, n_mels=n_mels)
        )
        self.save_hyperparameters()

    @property
    def frame_rate(self) -> float:
        """Frames per second."""
        return 1000.0 / self.features.frame_period

    def prepare_data(self) -> None:
        if self.path is None:
            fetch_speech_prompts(self.cache_dir)

    def _folder(self) -> Path:
        return Path(self.path) if self.path is not None else fetch_speech_prompts(self.cache_dir)

    def _analyse(self, wav: Path) -> np.ndarray:
        """Raw WORLD frames of one file, from the feature cache when possible."""
        wf = self.features
        settings = {k: v for k, v in wf.to_dict().items() if k not in ("mean", "std")}
        settings.update(sha256=sha256_file(wav), version=1)
        key = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:32]
        root = Path(self.cache_dir) if self.cache_dir else default_cache_dir()
        cached = root / "speech-features" / f"{key}.npy"
        if cached.is_file():
            try:
                frames = np.load(cached)
                if frames.ndim == 2 and frames.shape[1] == wf.dim:
                    return np.asarray(frames)
            except (OSError, ValueError):
                pass  # a damaged cache entry is recomputed below
        frames = wf.analyze(read_audio(wav, wf.sample_rate))
        atomic_write(cached, lambda f: np.save(f, frames))
        return frames

    def setup(self, stage: str | None = None) -> None:
        """Analyse (or load) every utterance, split, fit the statistics, build windows."""
        if self._splits:
            return
        folder = self._folder()
        wavs = find_wavs(folder, self.exclude)
        if self.max_utterances is not None:
            wavs = wavs[: self.max_utterances]
        parts: dict[str, list[tuple[Path, np.ndarray]]] = {"train": [], "held_out": []}
        for wav in wavs:
            rel = wav.relative_to(folder).as_posix()
            side = "held_out" if _held_out(rel, self.held_out_fraction) else "train"
            frames = self._analyse(wav)
            if frames.shape[0] > self.order:
                parts[side].append((wav, frames))
        if not parts["held_out"] and len(parts["train"]) > 1:
            parts["held_out"].append(parts["train"].pop())  # tiny folders: hold one out
        for side, items in parts.items():
            if not items:
                raise ValueError(
                    f"no {side} utterance has more than order={self.order} frames in {folder}"
                )
        self.features.fit([f for _, f in parts["train"]])
        arrays = {k: [self.features.transform(f) for _, f in v] for k, v in parts.items()}
        sources = {k: [str(p) for p, _ in v] for k, v in parts.items()}
        train = WindowSplit(arrays["train"], self.order, sources=sources["train"])
        held = WindowSplit(arrays["held_out"], self.order, sources=sources["held_out"])
        self._splits = {"train": train, "val": held, "test": held}

    def utterance_paths(self, split: str = "test") -> list[str]:
        """The WAV behind each sequence of :meth:`clips`."""
        return list(self._split(split).sources)

    def stats(self) -> dict[str, Any]:
        """The fitted features' ``to_dict()`` (settings, statistics, ``"kind"``) plus
        ``"order"``."""
        self._split("train")
        d = self.features.to_dict()
        d["order"] = self.order
        return d

    def __repr__(self) -> str:
        return (
            f"SpeechDataModule(path={self.path!r}, order={self.order}, "
            f"sample_rate={self.features.sample_rate}, frame_period={self.features.frame_period})"
        )
