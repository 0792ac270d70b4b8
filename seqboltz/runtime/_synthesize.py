"""Offline batch synthesis from an artifact: many sequences to files, sharded deterministically.

Sequence ``i`` of a job with seed ``S`` draws its noise from ``sequence_rng(S, i)``, starts from
the card's default seed frames and is computed in the fixed chunk ``i // chunk`` (chunks of
consecutive global indices). Shard ``j`` of ``n`` takes the chunks ``c`` with ``c % n == j``, so
``--shard 0/2`` and ``--shard 1/2`` on two machines write byte-identical files to one
unsharded run. Files appear only through an atomic rename, so a killed run leaves complete
files only, and a rerun skips them. Worker processes (one ONNX session each, one thread) use
every core. A sequence on which the model diverges (a NaN or infinite frame) stops there and
writes no file; the manifest records it and the job's other sequences are written.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Literal

import numpy as np

from seqboltz._io import atomic_write
from seqboltz.runtime._artifact import Artifact, ArtifactError, load_artifact

__all__ = [
    "StyleSchedule",
    "SynthesisJob",
    "parse_shard",
    "parse_style",
    "run_synthesis",
    "style_frames",
]

Format = Literal["npy", "bvh", "wav"]
FORMATS: tuple[str, ...] = ("npy", "bvh", "wav")
#: a piecewise-constant style: ``((start_frame, values), ...)``, the first segment at frame 0
StyleSchedule = tuple[tuple[int, tuple[float, ...]], ...]


def parse_style(text: str) -> StyleSchedule:
    """``--style``: constant values ``"0.5"`` / ``"0.1,0.2"``, or a schedule of segments
    ``"VALUES@FRAME;VALUES@FRAME;…"`` (e.g. ``"-1@0;1.5@600;-1@1200"``: the style changes at
    frames 600 and 1200). The first segment starts at frame 0 (``@0`` may be left out); starts
    increase; every segment has the same number of finite values."""
    segments: list[tuple[int, tuple[float, ...]]] = []
    for k, part in enumerate(text.split(";")):
        values_text, _, start_text = part.strip().partition("@")
        try:
            values = tuple(float(x) for x in values_text.split(","))
            start = int(start_text) if start_text else 0
        except ValueError:
            raise ArtifactError(
                f"--style must be numbers (VALUES or VALUES@FRAME;…), got {text!r}"
            ) from None
        if not all(np.isfinite(values)):
            raise ArtifactError(f"--style values must be finite, got {part.strip()!r}")
        if k == 0 and start != 0:
            raise ArtifactError(f"the first --style segment must start at frame 0, got {start}")
        if segments and start <= segments[-1][0]:
            raise ArtifactError(f"--style segments must start at increasing frames: {text!r}")
        if segments and len(values) != len(segments[0][1]):
            raise ArtifactError(f"every --style segment needs the same number of values: {text!r}")
        segments.append((start, values))
    return tuple(segments)


def style_frames(schedule: StyleSchedule, n_frames: int) -> np.ndarray:
    """The per-frame style ``(n_frames, S)`` of a schedule."""
    out = np.empty((n_frames, len(schedule[0][1])))
    for k, (start, values) in enumerate(schedule):
        stop = schedule[k + 1][0] if k + 1 < len(schedule) else n_frames
        out[start:stop] = values
    return out


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/n"`` → ``(i, n)`` with ``0 <= i < n``."""
    try:
        i_text, n_text = text.split("/")
        i, n = int(i_text), int(n_text)
    except ValueError:
        raise ArtifactError(f"--shard must look like i/n (e.g. 0/4), got {text!r}") from None
    if not 0 <= i < n:
        raise ArtifactError(f"--shard i/n needs 0 <= i < n, got {text!r}")
    return i, n


@dataclass(frozen=True)
class SynthesisJob:
    """What to synthesise (everything that determines the files' bytes, plus the shard)."""

    model: str
    out: str
    count: int
    frames: int
    seed: int = 0
    fmt: Format = "npy"
    #: constant values, or a :data:`StyleSchedule` (see :func:`parse_style`)
    style: tuple[float, ...] | StyleSchedule | None = None
    shard: tuple[int, int] = (0, 1)
    chunk: int = 16
    plot: bool = False
    #: ``k``, Gibbs steps per frame (``None``: the card's ``gibbs_steps``)
    gibbs_steps: int | None = None
    #: a BVH file (the model's rig, any frame rate) every sequence continues from its last
    #: ``order`` frames, in the clip's own place and heading (``None``: the card's seed frames)
    start: str | None = None
    #: frame rate of written BVH files: a number, ``"source"`` (the rate of the files the
    #: model was trained on, its card's ``features.source_fps``) or ``None`` (the model's rate);
    #: rotations are resampled by slerp
    fps: float | str | None = None
    #: BVH files with the footskate cleanup (:func:`seqboltz.motion.plant_feet`): feet in
    #: contact with the floor are held where they landed (root and legs adjusted)
    plant_feet: bool = False

    def style_schedule(self) -> StyleSchedule | None:
        """:attr:`style` as a schedule (a constant is one segment from frame 0)."""
        if self.style is None or not len(self.style):
            return None
        if isinstance(self.style[0], tuple):
            return self.style
        return ((0, tuple(float(x) for x in self.style)),)

    def indices(self) -> list[int]:
        """Global indices of this shard's sequences, chunk by chunk."""
        i, n = self.shard
        n_chunks = -(-self.count // self.chunk)
        return [
            k
            for c in range(i, n_chunks, n)
            for k in range(c * self.chunk, min((c + 1) * self.chunk, self.count))
        ]

    def file_name(self, index: int) -> str:
        return f"seq_{index:06d}.{self.fmt}"


def _check_job(job: SynthesisJob, art: Artifact) -> None:
    if job.count < 1 or job.frames < 1 or job.chunk < 1:
        raise ArtifactError(
            f"count, frames and chunk must be >= 1; got {job.count}, {job.frames}, {job.chunk}"
        )
    if job.seed < 0:
        raise ArtifactError(f"seed must be >= 0, got {job.seed}")
    if job.fmt not in FORMATS:
        raise ArtifactError(f"format must be one of {FORMATS}, got {job.fmt!r}")
    if art.family == "rbm" and (
        job.fmt != "npy" or job.style is not None or job.gibbs_steps is not None
    ):
        raise ArtifactError(
            f"model {art.name!r} is an RBM: it writes NPY samples (after --frames Gibbs steps) "
            "and takes no style and no --gibbs-steps"
        )
    if art.family == "sequence":
        art.check_gibbs_steps(job.gibbs_steps)
    domain = art.card.get("domain")
    if job.fmt == "bvh" and domain != "motion":
        raise ArtifactError(f"BVH needs a motion model; {art.name!r} is {domain!r}")
    if job.fmt == "wav" and domain != "speech":
        raise ArtifactError(f"WAV needs a speech model; {art.name!r} is {domain!r}")
    if job.start is not None:
        _start_frames(job, art)  # one clear line for a wrong file, before any work
    if job.fps is not None:
        if job.fmt != "bvh":
            raise ArtifactError(f"--fps sets the frame rate of BVH files; the format is {job.fmt}")
        _bvh_fps(job, art)
    if job.plant_feet:
        _check_plant_feet(job, art)
    schedule = job.style_schedule()
    if art.style_size and schedule is None:
        raise ArtifactError(f"model {art.name!r} needs --style with {art.style_size} value(s)")
    if schedule is not None:
        width = len(schedule[0][1])
        if width != art.style_size:
            raise ArtifactError(
                f"--style has {width} value(s); model {art.name!r} takes {art.style_size}"
            )
        if schedule[-1][0] >= job.frames:
            raise ArtifactError(
                f"a --style segment starts at frame {schedule[-1][0]}, beyond the "
                f"{job.frames} frames of each sequence"
            )


def _check_plant_feet(job: SynthesisJob, art: Artifact) -> None:
    """``--plant-feet`` needs BVH output of a rig that names its feet, with a movable root."""
    from seqboltz.motion import MotionFeatures, check_plantable

    if job.fmt != "bvh":
        raise ArtifactError(f"--plant-feet cleans up BVH files; the format is {job.fmt}")
    features = MotionFeatures.from_dict(art.card["features"])
    assert features.skeleton is not None
    try:
        check_plantable(features.skeleton, features.up_axis)
    except ValueError as exc:
        raise ArtifactError(f"--plant-feet: model {art.name!r}: {exc}") from None


def _style_array(job: SynthesisJob, count: int) -> np.ndarray | None:
    """``(count, frames, S)`` per-frame style of a chunk, or ``None``."""
    schedule = job.style_schedule()
    if schedule is None:
        return None
    per_frame = style_frames(schedule, job.frames)
    return np.broadcast_to(per_frame[None], (count, *per_frame.shape))


def _start_frames(job: SynthesisJob, art: Artifact) -> tuple[np.ndarray, Any]:
    """``(seed frames (order, D) standardised, oldest first; the root state at the clip's
    last frame)`` of ``job.start`` (:meth:`seqboltz.motion.MotionFeatures.seed_frames`)."""
    from seqboltz.motion import MotionFeatures, MotionFileError, read_bvh

    assert job.start is not None
    if art.card.get("domain") != "motion" or art.family != "sequence":
        raise ArtifactError(f"--start needs a motion model; {art.name!r} is not one")
    try:
        clip = read_bvh(job.start)
        frames, state = MotionFeatures.from_dict(art.card["features"]).seed_frames(clip, art.order)
    except (OSError, MotionFileError, ValueError) as exc:
        raise ArtifactError(f"--start {job.start}: {exc}") from None
    return np.asarray(frames, dtype=np.float64), state


def _bvh_fps(job: SynthesisJob, art: Artifact) -> float | None:
    """The frame rate BVH files are written at (``None``: the model's own)."""
    if job.fps is None:
        return None
    if job.fps == "source":
        rate = art.card["features"].get("source_fps")
        if not rate:
            raise ArtifactError(
                f"--fps source: model {art.name!r} does not record the frame rate of its "
                "training files (its clips had more than one); give a number"
            )
        return float(rate)
    try:
        rate = float(job.fps)
    except ValueError:
        raise ArtifactError(f"--fps must be a number or 'source'; got {job.fps!r}") from None
    if not (math.isfinite(rate) and 1 <= rate <= 1000):
        raise ArtifactError(f"--fps must be between 1 and 1000 frames per second; got {rate:g}")
    return rate


def _motion_clip(
    art: Artifact,
    frames: np.ndarray,
    state: Any,
    name: str,
    fps: float | None = None,
    plant: bool = False,
) -> Any:
    """The :class:`~seqboltz.motion.MotionClip` of standardised frames ``(T, D)``, at ``fps``
    (default the model's rate); ``plant``: with the footskate cleanup, at the model's rate
    before any resampling, on the floor the card recorded from the training clips (else the
    clip's own)."""
    from seqboltz.motion import MotionFeatures, resample_clip

    features = MotionFeatures.from_dict(art.card["features"])
    if not plant:
        return features.inverse_transform(frames, state, name, fps=fps)
    clip, _ = features.plant_feet(features.inverse_transform(frames, state, name))
    if fps is not None and not math.isclose(fps, clip.fps, rel_tol=1e-6):
        clip = resample_clip(clip, fps)
    return clip


def _plot_body(path: Path, art: Artifact, clip: Any) -> None:
    """Stick-figure filmstrip PNG and GIF of one generated clip (:mod:`seqboltz.viz_motion`)."""
    from seqboltz.viz_motion import render_clips

    up = str(art.card["features"].get("up_axis", "y"))
    render_clips(path, {"generated": clip}, up_axis=up, title=f"{art.name}: {path.stem}")


def _writer(
    art: Artifact, fmt: str, state: Any = None, fps: float | None = None, plant: bool = False
) -> Callable[[Path, np.ndarray], None]:
    """A function writing one sequence's standardised frames ``(T, D)`` to a path (a motion
    clip continues from root ``state``: the start clip's, or the features' default; ``plant``:
    with its feet planted)."""
    card = art.card
    if fmt == "npy":

        def write_npy(path: Path, frames: np.ndarray) -> None:
            atomic_write(path, lambda f: np.save(f, art.to_data_units(frames)))

        return write_npy
    if fmt == "bvh":
        from seqboltz.motion import write_bvh

        def write_motion(path: Path, frames: np.ndarray) -> None:
            write_bvh(path, _motion_clip(art, frames, state, path.stem, fps, plant))

        return write_motion
    from seqboltz.speech import speech_features_from_dict, write_wav

    speech = speech_features_from_dict(card["features"])

    def write_speech(path: Path, frames: np.ndarray) -> None:
        wave = speech.synthesize(speech.inverse_transform(frames))
        write_wav(path, wave, speech.sample_rate)

    return write_speech


def _plot(path: Path, frames: np.ndarray, names: Sequence[str], fps: float | None) -> None:
    from seqboltz.viz import _pyplot, _save_figure

    plt = _pyplot()
    k = min(6, frames.shape[1])
    fig, axes = plt.subplots(k, 1, figsize=(9, 1.4 * k + 0.6), sharex=True, squeeze=False)
    t = np.arange(frames.shape[0]) / (fps or 1.0)
    for i, ax in enumerate(axes[:, 0]):
        ax.plot(t, frames[:, i], lw=0.8)
        ax.set_ylabel(names[i] if i < len(names) else f"dim {i}", fontsize=7)
    axes[-1, 0].set_xlabel("seconds" if fps else "frame")
    fig.suptitle(path.stem)
    fig.tight_layout()
    _save_figure(fig, path)


def _run_chunk(job: SynthesisJob, indices: list[int]) -> dict[str, list[Any]]:
    """Generate and write one chunk (in a worker process).

    Returns ``{"written": [file names], "diverged": [{"index", "frame", "error"}]}``: a
    sequence whose model diverged stops there, writes no file, and the others go on.
    """
    art = load_artifact(job.model, threads=1)
    out = Path(job.out)
    done: dict[str, list[Any]] = {"written": [], "diverged": []}
    if all((out / job.file_name(i)).exists() for i in indices):
        return done
    if art.family == "rbm":  # --frames Gibbs steps; each file holds the final (D,) sample mean
        _, means = art.gibbs_chains(
            job.frames, seed=job.seed, count=len(indices), sequence_indices=indices
        )
        for row, index in enumerate(indices):
            path = out / job.file_name(index)
            if not path.exists():
                sample: np.ndarray = means[row]
                atomic_write(path, partial(np.save, arr=sample))
                done["written"].append(path.name)
        return done
    # the whole chunk, always: a resumed chunk is computed exactly as the first time
    start, state = _start_frames(job, art) if job.start is not None else (None, None)
    stream = art.frame_stream(
        seed=job.seed,
        seed_frames=None if start is None else np.repeat(start[None], len(indices), axis=0),
        count=len(indices),
        style=_style_array(job, len(indices)),
        sequence_indices=indices,
        gibbs_steps=job.gibbs_steps,
    )
    frames, diverged = art.run_stream(stream, job.frames, stop_diverged=True)
    write = _writer(art, job.fmt, state, _bvh_fps(job, art), job.plant_feet)
    names = art.card["features"].get("feature_names") or []
    body = job.plot and "skeleton" in art.card["features"]  # a motion model with its rig
    for row, index in enumerate(indices):
        if row in diverged:
            error = diverged[row]
            done["diverged"].append({"index": index, "frame": error.frame, "error": str(error)})
            continue
        path = out / job.file_name(index)
        if path.exists():
            continue
        write(path, frames[row])
        if job.plot:
            _plot(path.with_suffix(".png"), art.to_data_units(frames[row]), names, art.frame_rate)
        if body:
            clip = _motion_clip(art, frames[row], state, path.stem, plant=job.plant_feet)
            _plot_body(path.with_name(path.stem + "_body"), art, clip)
        done["written"].append(path.name)
    return done


def _chunks(job: SynthesisJob) -> list[list[int]]:
    by_chunk: dict[int, list[int]] = {}
    for index in job.indices():
        by_chunk.setdefault(index // job.chunk, []).append(index)
    return [by_chunk[c] for c in sorted(by_chunk)]


def run_synthesis(
    job: SynthesisJob,
    workers: int | None = None,
    progress: bool = True,
    map_chunks: Callable[[SynthesisJob, list[list[int]]], Iterable[dict[str, Any]]] | None = None,
) -> dict[str, Any]:
    """Run (or resume) a synthesis job; returns the manifest it writes.

    ``map_chunks(job, chunks)``, when given, runs the chunks (with :func:`_run_chunk`) instead of
    this machine's processes and yields their results (:mod:`seqboltz.runtime._ray`: Ray tasks).

    The manifest ``manifest.shard-<i>-of-<n>.json`` in the output folder records the model's
    sha256 and card name, the settings, each file of the shard with its sequence index, and
    under ``"diverged"`` each sequence whose model diverged (``{"index", "frame", "error"}``:
    it stopped there and has no file; the job's other sequences are written).
    """
    art = load_artifact(job.model, threads=1)
    _check_job(job, art)
    if job.plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise ArtifactError("--plot needs matplotlib: pip install matplotlib") from None
    out = Path(job.out)
    out.mkdir(parents=True, exist_ok=True)
    chunks = _chunks(job)
    already = sum(1 for c in chunks for i in c if (out / job.file_name(i)).exists())
    workers = max(1, min(workers or os.cpu_count() or 1, len(chunks) or 1))
    bar = _progress(len(job.indices()), already, progress)
    start = time.perf_counter()
    diverged: list[dict[str, Any]] = []
    if workers == 1 or map_chunks is not None:
        results: Iterable[dict[str, list[Any]]] = (
            map_chunks(job, chunks)
            if map_chunks is not None
            else (_run_chunk(job, chunk) for chunk in chunks)
        )
        for result in results:
            bar(len(result["written"]) + len(result["diverged"]))
            diverged += result["diverged"]
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            for result in pool.map(_run_chunk, [job] * len(chunks), chunks):
                bar(len(result["written"]) + len(result["diverged"]))
                diverged += result["diverged"]
    bar(0, done=True)
    stopped = {d["index"] for d in diverged}
    model_sha = _file_sha256(job.model)
    manifest = {
        "model": str(job.model),
        "model_sha256": model_sha,
        "model_name": art.name,
        "seed": job.seed,
        "count": job.count,
        "frames": job.frames,
        "format": job.fmt,
        "style": _manifest_style(job.style_schedule()),
        "shard": list(job.shard),
        "chunk": job.chunk,
        "gibbs_steps": art.check_gibbs_steps(job.gibbs_steps) if art.family == "sequence" else None,
        "start": None
        if job.start is None
        else {"file": str(job.start), "sha256": _file_sha256(job.start)},
        "bvh_fps": _bvh_fps(job, art) if job.fmt == "bvh" else None,
        "plant_feet": job.plant_feet,
        "noise_rule": art.card["noise_rule"],
        "seconds": round(time.perf_counter() - start, 3),
        "files": [
            {"index": i, "file": job.file_name(i)} for i in job.indices() if i not in stopped
        ],
        "diverged": sorted(diverged, key=lambda d: int(d["index"])),
    }
    i, n = job.shard
    target = out / f"manifest.shard-{i}-of-{n}.json"
    atomic_write(target, lambda f: f.write(json.dumps(manifest, indent=2).encode()))
    return manifest


def _file_sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _progress(total: int, initial: int, enabled: bool) -> Callable[..., None]:
    """A tqdm bar when available and wanted, else a silent counter."""
    if enabled:
        try:
            from tqdm import tqdm

            bar = tqdm(total=total, initial=initial, unit="seq", file=sys.stderr)

            def update(n: int, done: bool = False) -> None:
                bar.update(n)
                if done:
                    bar.close()

            return update
        except ImportError:
            pass

    def silent(n: int, done: bool = False) -> None:
        return None

    return silent


def _manifest_style(schedule: StyleSchedule | None) -> list[dict[str, Any]] | None:
    if schedule is None:
        return None
    return [{"start_frame": start, "values": list(values)} for start, values in schedule]
