"""``seqboltz evaluate`` for sequence models: a conditional RBM beside two baselines.

On the held-out (test) clips, standardised features, every model generating from each clip's
first ``order`` frames with ``n_seeds`` seeds (default 5):

* one-step prediction error from the true history (the model predicts with Taylor's sampler,
  ``k`` Gibbs steps, seeded);
* spectral realism of long generations (default 60 s) against the clip's real continuation:
  NPSS (:func:`~seqboltz.eval._sequence.npss`), the power-spectrum KL in both directions and
  the power-spectrum entropy (Hernandez, Gall & Moreno-Noguer 2019), on windows of the
  shortest held-out clip (at most 10 s);
* stability: per-dimension standard deviation over the last 10 s against that of real motion
  (train and held out) within 10-s pieces, within 0.5–2×
  (:func:`~seqboltz.eval._motion_metrics.std_within`, :func:`stability`), with real held-out
  clips' own value beside it;
* for motion with a skeleton (features turned back into joint positions by
  ``features.inverse_transform`` and forward kinematics): the Fréchet distance on pose +
  velocity features, foot skating, diversity across seeds and the copy check
  (:mod:`seqboltz.eval._motion_metrics`);
* every figure is the mean over clips × seeds with a two-way bootstrap 95 % interval that
  resamples captured clips (a clip's phase copies, e.g. the four 30-fps copies of a 120-fps
  capture, stay together: :func:`group_phase_copies`) and seeds;
* the baselines, fitted on the same training clips: a least-squares linear AR model of the same
  order generating with Gaussian residual noise of its training residual covariance (a
  generative peer) and repeat-last-frame; a ``real (held out)`` row gives the values of real
  motion where they exist;
* for models with a root-speed style: the measured root speed of motion generated while the
  requested speed changes mid-sequence;
* pictures (``out_dir``): joint-angle curves, root trajectories, a generated BVH, and the body
  itself as a stick-figure filmstrip PNG and GIF, real held-out motion beside the model and AR
  (:func:`seqboltz.viz_motion.render_clips`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from seqboltz.eval._motion_metrics import (
    FrechetReference,
    body_frame,
    bootstrap_ci,
    foot_joints,
    foot_skating,
    frechet_distance,
    mean_pairwise_distance,
    nearest_window_distances,
    pose_jitter,
    pose_spread,
    pose_velocity_features,
    ps_entropy,
    ps_kl,
    sliding_windows,
    std_within,
)
from seqboltz.eval._sequence import (
    LinearAR,
    RepeatLastFrame,
    fit_linear_ar,
    history_windows,
    npss,
    one_step_errors,
    std_ratio,
)
from seqboltz.models import SequenceRBM
from seqboltz.motion._contact import contact_floor, plant_feet, stature

__all__ = [
    "STABILITY_SECONDS",
    "Generator",
    "MotionReference",
    "SequenceEvaluation",
    "SplitView",
    "centred_pieces",
    "evaluate_sequence_model",
    "generate_seeds",
    "group_phase_copies",
    "model_generator",
    "model_one_step_mse",
    "motion_clips_for_pictures",
    "motion_pictures",
    "motion_reference",
    "paired_difference",
    "real_row",
    "realism_score",
    "score_generations",
    "source_groups",
    "speed_control",
    "speed_gain",
    "speed_response",
    "stability",
]

Generator = Callable[[np.ndarray, int, int], np.ndarray]
"""``(starts (C, order, D) oldest first, n_frames, seed) → (C, n_frames, D)``; sequence ``i``
draws its noise from ``sequence_rng(seed, i)``."""

AR_NAME = "linear AR (order {order})"
REPEAT_NAME = "repeat last frame"
REAL_NAME = "real (held out)"

STABILITY_SECONDS = 10.0
"""The stability check's segment: a generation's last 10 s, and the length of the real pieces
its spread is compared with (:func:`centred_pieces`)."""

# metric key → (column title, digits); each is a mean with a 95 % interval in the rows
_COLUMNS: dict[str, tuple[str, int]] = {
    "npss": ("NPSS ↓", 3),
    "pskl_real_gen": ("PSKL(real‖gen) ↓", 3),
    "pskl_gen_real": ("PSKL(gen‖real) ↓", 3),
    "pskl": ("PSKL, mean of both ↓", 3),
    "ps_entropy": ("PS entropy", 3),
    "frechet": ("Fréchet pose+vel ↓", 1),
    "frechet_pooled": ("Fréchet, pooled ↓", 1),
    "foot_skating": ("foot skating ↓", 2),
    "jitter": ("jitter (RMS 2nd diff.)", 3),
    "std_within": ("dims in 0.5–2× (last 10 s)", 2),
    "diversity": ("diversity across seeds", 2),
    "copy_distance": ("nearest-train distance", 2),
}


#: columns with one value per seed, not per clip × seed: ``frechet_pooled`` is the Fréchet
#: distance of all held-out clips' generations of one seed pooled against all held-out frames,
#: as FID pools a model's samples (Heusel et al. 2017); ``frechet`` scores each generation
#: alone, which also rewards a generation for wandering over more of the held-out poses
_POOLED = ("frechet_pooled",)


class SplitView:
    """A sequence DataModule seen through one split: ``clips("test")`` (and the source, style
    and control clips) return ``split``'s clips, so the scoring code that reads the test clips
    scores, e.g., the validation clips instead (model choice on validation, test touched once).

    Args:
        datamodule: a set-up sequence DataModule.
        split: the split that stands in for ``"test"``.
    """

    def __init__(self, datamodule: Any, split: str) -> None:
        self._dm, self._split = datamodule, split

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._dm, name)
        if name in ("clips", "source_clips", "style_clips", "control_clips", "clip_kinds"):
            return lambda split: attr(self._split if split == "test" else split)
        return attr


# ---- real motion the scores compare with ------------------------------------------------------
@dataclass
class MotionReference:
    """Real motion, measured once: what every model's generations are scored against.

    Attributes:
        fps: frame rate of the features.
        order: the models' history length (generations start from ``clip[:order]``).
        test: held-out standardised clips ``[(T_i, D)]``.
        frames: ``(N, D)`` every real standardised frame (train and held out), each ~10-s
            piece of a clip centred on its own mean (:func:`centred_pieces`): the spread of
            real motion within 10 s, which the stability check compares with the spread of a
            generation's last 10 s about its own mean. (Until session 17 the frames were not
            centred, so the differences between people's postures counted as spread that no
            10 s of motion has, and real held-out idle clips scored 23 of 77 dimensions within
            0.5–2×.)
        window: frames per spectral window (the shortest held-out clip, at most 10 s).
        body: the skeleton-side reference (``None`` for data without a skeleton).
        groups: ``(C,)`` the captured clip each held-out sequence comes from: the phase
            copies of one clip (120 → 30 fps gives 4, ``name@0`` … ``name@3``) share an
            index, and the intervals resample captured clips, not copies
            (:func:`group_phase_copies`).
    """

    fps: float
    order: int
    test: list[np.ndarray]
    frames: np.ndarray
    window: int
    body: _BodyReference | None = None
    groups: np.ndarray | None = None

    @property
    def stability_frames(self) -> int:
        """Frames of the stability check's segment: the last :data:`STABILITY_SECONDS`."""
        return round(STABILITY_SECONDS * self.fps)

    @property
    def n_groups(self) -> int:
        """Captured held-out clips (each counted once whatever its phase copies)."""
        return len(self.test) if self.groups is None else int(self.groups.max()) + 1


def source_groups(names: Sequence[str]) -> np.ndarray:
    """``(C,)`` group index per held-out sequence: the phase copies ``clip@k`` of one captured
    clip (:func:`seqboltz.motion.resample_phases`) share one, in order of first appearance."""
    index: dict[str, int] = {}
    return np.array([index.setdefault(str(n).rsplit("@", 1)[0], len(index)) for n in names])


def group_phase_copies(table: np.ndarray, groups: np.ndarray | None) -> np.ndarray:
    """A ``(C, S)`` per-sequence × per-seed table as ``(G, P·S)``: one row per captured clip,
    its phase copies' cells side by side (NaN-padded where clips have fewer copies), so that
    :func:`~seqboltz.eval._motion_metrics.bootstrap_ci` resamples captured clips. The four
    phase copies of a 120-fps clip at 30 fps are near-duplicates of one capture; resampled as
    independent clips they had narrowed every interval (by about half with four copies)."""
    t = np.asarray(table, dtype=np.float64)
    if groups is None or t.ndim != 2:
        return t
    rows = [t[groups == g].reshape(-1) for g in range(int(groups.max()) + 1)]
    width = max(r.size for r in rows)
    out = np.full((len(rows), width), np.nan)
    for i, r in enumerate(rows):
        out[i, : r.size] = r
    return out


@dataclass
class _BodyReference:
    features: Any  # the DataModule's fitted MotionFeatures
    sources: list[Any]  # held-out MotionClips (row r of test[i] is frame r + 1 of sources[i])
    up_axis: str
    feet: list[int]
    floor: np.ndarray  # (F,) floor height of each foot joint
    threshold: float  # contact tolerance above the floor
    length_unit: str
    real_features: FrechetReference  # pose + velocity of held-out frames
    train_windows: np.ndarray  # (M, w, 3J) copy-check reference
    copy_frames: int  # frames per copy-check window before subsampling
    copy_step: int  # subsampling inside a window
    real: dict[str, tuple[float, float, float]] = field(default_factory=dict)
    #: every generation's feet planted (:func:`~seqboltz.motion.plant_feet`, with the
    #: training floor above) before it is scored; the real clips are scored as they are
    plant: bool = False


def _clip_body(clip: Any, up_axis: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(world positions (T, J, 3), body-frame pose (T, J, 3), velocity (T-1, J, 3))``."""
    from seqboltz.motion import forward_kinematics

    pos, rot = forward_kinematics(clip.skeleton, clip.frames, return_rotations=True)
    pose, vel, _ = body_frame(pos, rot[:, 0], up_axis)
    return pos, pose, vel


def _copy_windows(pose: np.ndarray, frames: int, step: int, stride: int) -> np.ndarray:
    """Body-frame pose windows ``(N, frames // step, 3J)`` every ``stride`` frames."""
    flat = pose.reshape(pose.shape[0], -1)
    return sliding_windows(flat, frames, stride)[:, ::step]


def centred_pieces(clips: Sequence[np.ndarray], frames: int) -> np.ndarray:
    """Every clip cut into pieces of about ``frames`` frames, each centred on its own mean.

    Args:
        clips: ``[(T_i, D)]`` real clips.
        frames: the piece length (10 s of frames for the stability check); a clip shorter
            than it is one piece.

    Returns:
        ``(Σ T_i, D)``: the pieces concatenated, so their pooled standard deviation is the
        spread of motion within about ``frames`` frames, without the differences of level
        between clips and between a clip's parts (a person's posture, where a walk has got to).
    """
    pieces = [
        p - p.mean(0)
        for c in clips
        for p in np.array_split(np.asarray(c, dtype=np.float64), max(1, round(len(c) / frames)))
    ]
    return np.concatenate(pieces)


def motion_reference(
    datamodule: Any, window_seconds: float = 10.0, plant: bool = False
) -> MotionReference:
    """Measure the real motion of ``datamodule`` (set up): held-out clips, training clips and,
    when it has a skeleton (``features.inverse_transform`` and ``source_clips``), the real
    values of every body metric (the ``real (held out)`` row). ``plant``: every generation
    scored against it has its feet planted first (:func:`~seqboltz.motion.plant_feet`, the
    footskate cleanup of ``seqboltz synthesize --plant-feet``)."""
    fps, order = float(datamodule.target_fps), int(datamodule.order)
    train, test = datamodule.clips("train"), datamodule.clips("test")
    window = max(2, min(min(c.shape[0] for c in test), round(window_seconds * fps)))
    pieces = centred_pieces(train + test, round(STABILITY_SECONDS * fps))
    ref = MotionReference(fps, order, test, pieces, window)
    if hasattr(datamodule, "source_clips"):
        ref.groups = source_groups([c.name for c in datamodule.source_clips("test")])
    features = getattr(datamodule, "features", None)
    if features is None or not hasattr(datamodule, "source_clips"):
        return ref
    if not hasattr(features, "inverse_transform"):
        return ref
    up = str(getattr(features, "up_axis", "y"))
    train_src, test_src = datamodule.source_clips("train"), datamodule.source_clips("test")
    skeleton = train_src[0].skeleton
    train_body = [_clip_body(c, up) for c in train_src]
    test_body = [_clip_body(c, up) for c in test_src]
    u = "xyz".index(up)
    heights = np.concatenate([p[..., u] for p, _, _ in train_body])  # (N, J)
    feet = foot_joints(skeleton.names)
    floor, threshold = contact_floor(heights, feet)
    tall = stature(heights)
    copy_frames = max(2, round(fps))  # 1-s windows
    copy_step = max(1, copy_frames // 10)
    n_train = sum(p.shape[0] for _, p, _ in train_body)
    stride = max(1, math.ceil(n_train / 4000))  # at most ~4000 reference windows
    train_windows = np.concatenate(
        [_copy_windows(p, copy_frames, copy_step, stride) for _, p, _ in train_body]
    )
    real_features = np.concatenate([pose_velocity_features(p, v) for _, p, v in test_body])
    body = _BodyReference(
        features=features,
        sources=test_src,
        up_axis=up,
        feet=feet,
        floor=floor,
        threshold=threshold,
        length_unit=f"rig units (standing height ≈ {tall:.3g})",
        real_features=FrechetReference.from_features(real_features),
        train_windows=train_windows,
        copy_frames=copy_frames,
        copy_step=copy_step,
        plant=plant,
    )
    train_features = np.concatenate([pose_velocity_features(p, v) for _, p, v in train_body])
    spectral = real_spectral_scores(train, test, window, _kinds(datamodule))
    real: dict[str, np.ndarray] = {
        **spectral,
        "ps_entropy": np.array([ps_entropy(sliding_windows(c, window, window)) for c in test]),
        "jitter": np.array([pose_jitter(p) for _, p, _ in test_body]),
        "copy_distance": np.array(
            [
                nearest_window_distances(
                    _copy_windows(p, copy_frames, copy_step, max(1, copy_frames // 2)),
                    train_windows,
                ).mean()
                if p.shape[0] >= copy_frames
                else np.nan
                for _, p, _ in test_body
            ]
        ),
    }
    if feet:
        real["foot_skating"] = np.array(
            [foot_skating(pos[:, feet], fps, floor, threshold, up)[0] for pos, _, _ in test_body]
        )
        real["foot_contact"] = np.array(
            [foot_skating(pos[:, feet], fps, floor, threshold, up)[1] for pos, _, _ in test_body]
        )
    body.real = {
        k: bootstrap_ci(group_phase_copies(v[:, None], ref.groups)) for k, v in real.items()
    }
    poses = np.concatenate([p for _, p, _ in test_body])
    spread = pose_spread(poses)
    body.real["diversity"] = (spread, spread, spread)
    # real motion on the pooled protocol: every training frame against every held-out frame.
    # (The per-generation column has no real value: a real clip is shorter than a 60-s
    # generation, and one scored alone against the pool scores worse than the models do;
    # benchmarks/motion_real_frechet.py, session 11.)
    fd = frechet_distance(train_features, real_features)
    body.real["frechet_pooled"] = (fd, fd, fd)
    ref.body = body
    return ref


def _kinds(datamodule: Any) -> tuple[list[str], list[str]] | None:
    """``(training kinds, held-out kinds)`` per clip, or ``None`` where the data has none."""
    if not hasattr(datamodule, "clip_kinds"):
        return None
    train, test = datamodule.clip_kinds("train"), datamodule.clip_kinds("test")
    return (list(train), list(test)) if any(train) and any(test) else None


def real_spectral_scores(
    train: Sequence[np.ndarray],
    test: Sequence[np.ndarray],
    window: int,
    kinds: tuple[Sequence[str], Sequence[str]] | None = None,
) -> dict[str, np.ndarray]:
    """NPSS and power-spectrum KL of *real* motion: the training clips' windows scored against
    each held-out clip exactly as a generation is (:func:`score_generations`), so the
    ``real (held out)`` row shows what a model that generated real motion would get.

    A generation starts from a held-out clip, so it is compared with training motion of that
    clip's kind where the data names kinds (``clips.json``); a held-out clip whose kind has no
    training window of ``window`` frames, or data without kinds, uses every training window.

    Args:
        train: standardised training clips ``[(T_i, D)]``.
        test: standardised held-out clips ``[(T_j, D)]``.
        window: frames per spectral window (:attr:`MotionReference.window`).
        kinds: ``(kind of each training clip, kind of each held-out clip)``, or ``None``.

    Returns:
        ``{"npss", "pskl", "pskl_real_gen", "pskl_gen_real"}``, each ``(C,)`` over held-out
        clips (``pskl`` the mean of both directions; "gen" stands for the training windows).
    """
    per_clip = [sliding_windows(c, window, window) for c in train]
    every = np.concatenate([w for w in per_clip if w.shape[0]])
    out = {k: np.full(len(test), np.nan) for k in ("npss", "pskl_real_gen", "pskl_gen_real")}
    for j, clip in enumerate(test):
        same = every
        if kinds is not None and kinds[1][j]:
            picked = [w for w, k in zip(per_clip, kinds[0], strict=True) if k == kinds[1][j]]
            picked = [w for w in picked if w.shape[0]]
            if picked:
                same = np.concatenate(picked)
        real_windows = sliding_windows(clip, window, window)
        out["npss"][j] = np.mean([npss(real_windows[0], w) for w in same])
        out["pskl_real_gen"][j] = ps_kl(real_windows, same)
        out["pskl_gen_real"][j] = ps_kl(same, real_windows)
    out["pskl"] = 0.5 * (out["pskl_real_gen"] + out["pskl_gen_real"])
    return out


# ---- generation ------------------------------------------------------------------------------
def model_generator(model: SequenceRBM, datamodule: Any, gibbs_steps: int) -> Generator:
    """A :data:`Generator` of a trained sequence model on the held-out clips (a model with a
    style gets each clip's mean held-out style)."""
    style_seq = None
    if model.n_style > 0:
        styles = datamodule.style_clips("test")
        style_seq = torch.from_numpy(np.stack([s.mean(0) for s in styles])).double()

    def generate(starts: np.ndarray, n_frames: int, seed: int) -> np.ndarray:
        style = None if style_seq is None else style_seq[: starts.shape[0]]
        out = model.generate(
            torch.from_numpy(np.ascontiguousarray(starts)).double(),
            n_frames,
            gibbs_steps,
            style=style,
            seed=seed,
        )
        return np.asarray(out.double().numpy())

    return generate


def ar_row(
    datamodule: Any,
    ref: MotionReference,
    order: int,
    seeds: Sequence[int],
    n_frames: int,
    *,
    n_boot: int = 2000,
) -> dict[str, Any]:
    """The least-squares AR baseline's row: AR(``order``) fitted on ``datamodule``'s training
    clips, ``n_frames`` generated from the first ``order`` frames of each of ``ref``'s held-out
    clips for every seed (Gaussian residual noise), scored by :func:`score_generations`. The
    peer every motion table, the validation score and the study put a model beside."""
    ar = fit_linear_ar(datamodule.clips("train"), order)
    starts = np.stack([c[:order] for c in ref.test])
    gens = generate_seeds(ar.generate, starts, n_frames, seeds)
    return score_generations(AR_NAME.format(order=order), gens, ref, n_boot=n_boot)


def generate_seeds(
    generator: Generator, starts: np.ndarray, n_frames: int, seeds: Sequence[int]
) -> np.ndarray:
    """``(S, C, n_frames, D)``: the generations of every start with every seed."""
    return np.stack([np.asarray(generator(starts, n_frames, int(s)), np.float64) for s in seeds])


# ---- scoring ---------------------------------------------------------------------------------
def _unit_body(
    ref: MotionReference, body: _BodyReference, c: int, gen: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """World positions, body-frame pose and velocity of the generated frames of clip ``c``."""
    source = body.sources[c]
    clip = body.features.inverse_transform(
        np.concatenate([ref.test[c][: ref.order], gen]), body.features.initial_state(source)
    )
    if body.plant and body.feet:
        clip, _ = plant_feet(clip, up_axis=body.up_axis, floor=body.floor, threshold=body.threshold)
    pos, pose, vel = _clip_body(clip, body.up_axis)
    k = ref.order
    return pos[k:], pose[k:], vel[k:]


def score_generations(
    name: str,
    generations: np.ndarray,
    ref: MotionReference,
    *,
    one_step_mse: float = float("nan"),
    n_boot: int = 2000,
) -> dict[str, Any]:
    """One row: every metric of ``generations (S, C, T, D)`` (seeds × held-out clips), the mean
    over clips × seeds with its 95 % interval (``key`` and ``key_ci``).

    A generation that is not finite, or that the features cannot turn back into a pose, counts
    as exploded: its cells are NaN (left out of the means) and its stability is 0.
    """
    gens = np.asarray(generations, dtype=np.float64)
    if gens.ndim != 4 or gens.shape[1] != len(ref.test):
        raise ValueError(
            f"generations must be (seeds, {len(ref.test)} held-out clips, frames, dims); "
            f"got shape {gens.shape}"
        )
    n_seeds, n_clips, _, dim = gens.shape
    tables = {k: np.full((n_clips, n_seeds), np.nan) for k in _COLUMNS if k not in _POOLED}
    features: dict[tuple[int, int], np.ndarray] = {}
    tables["foot_contact"] = np.full((n_clips, n_seeds), np.nan)
    last = ref.stability_frames
    body = ref.body
    poses: dict[tuple[int, int], np.ndarray] = {}
    exploded = 0
    for c in range(n_clips):
        real_windows = sliding_windows(ref.test[c], ref.window, ref.window)
        for s in range(n_seeds):
            g = gens[s, c]
            if not np.isfinite(g).all():
                exploded += 1
                tables["std_within"][c, s] = 0.0
                continue
            tables["std_within"][c, s] = std_within(ref.frames, g[-last:])
            gw = sliding_windows(g, ref.window, ref.window)
            if gw.shape[0]:
                tables["npss"][c, s] = np.mean([npss(real_windows[0], w) for w in gw])
                tables["pskl_real_gen"][c, s] = ps_kl(real_windows, gw)
                tables["pskl_gen_real"][c, s] = ps_kl(gw, real_windows)
                tables["pskl"][c, s] = 0.5 * (
                    tables["pskl_real_gen"][c, s] + tables["pskl_gen_real"][c, s]
                )
                tables["ps_entropy"][c, s] = ps_entropy(gw)
            if body is None:
                continue
            try:
                pos, pose, vel = _unit_body(ref, body, c, g)
            except ValueError:  # features the rig cannot take back
                exploded += 1
                continue
            if not (np.isfinite(pos).all() and np.abs(pos).max() < 1e12):
                exploded += 1
                continue
            poses[c, s] = pose
            tables["jitter"][c, s] = pose_jitter(pose)
            features[c, s] = pose_velocity_features(pose, vel)
            tables["frechet"][c, s] = body.real_features.distance(features[c, s])
            if body.feet:
                skate, contact = foot_skating(
                    pos[:, body.feet], ref.fps, body.floor, body.threshold, body.up_axis
                )
                tables["foot_skating"][c, s], tables["foot_contact"][c, s] = skate, contact
            stride = max(1, body.copy_frames // 2)  # as for the held-out clips
            windows = _copy_windows(pose, body.copy_frames, body.copy_step, stride)
            if windows.shape[0]:
                tables["copy_distance"][c, s] = nearest_window_distances(
                    windows, body.train_windows
                ).mean()
    if body is not None and n_seeds >= 2:
        for c in range(n_clips):
            if all((c, s) in poses for s in range(n_seeds)):
                stack = np.stack([poses[c, s] for s in range(n_seeds)])
                tables["diversity"][c, 0] = mean_pairwise_distance(stack)
        tables["diversity"] = tables["diversity"][:, :1]
    row: dict[str, Any] = {"model": name, "one_step_mse": one_step_mse}
    # one row per captured clip (its phase copies side by side), so the intervals resample
    # captured clips; the tables themselves are kept, so two rows can be compared clip by
    # clip (:func:`paired_difference`)
    tables = {key: group_phase_copies(table, ref.groups) for key, table in tables.items()}
    if body is not None:  # one value per seed: every clip's generation of that seed pooled
        pooled = [
            body.real_features.distance(np.concatenate([features[c, s] for c in range(n_clips)]))
            if all((c, s) in features for c in range(n_clips))
            else np.nan
            for s in range(n_seeds)
        ]
        tables["frechet_pooled"] = np.asarray(pooled, dtype=np.float64)[None, :]
    row["cells"] = {key: table.tolist() for key, table in tables.items()}
    for key, table in tables.items():
        if np.isnan(table).all():
            row[key], row[f"{key}_ci"] = float("nan"), [float("nan"), float("nan")]
            continue
        mean, low, high = bootstrap_ci(table, n_boot=n_boot)
        row[key], row[f"{key}_ci"] = mean, [low, high]
    finite = [gens[s, c, -last:] for s in range(n_seeds) for c in range(n_clips)]
    row.update(stability(ref.frames, [g for g in finite if np.isfinite(g).all()], dim))
    row["exploded"] = bool(exploded > 0 or row["std_ratio_max"] > 10)
    row["n_exploded"] = exploded
    row["n_generations"] = n_seeds * n_clips
    if body is not None and not math.isnan(row["copy_distance"]):
        real_copy = body.real.get("copy_distance", (float("nan"),) * 3)[0]
        # fails only when generated windows sit significantly closer to the training data
        # than held-out windows do: the upper end of their interval below the held-out mean
        row["copy_check_passed"] = bool(row["copy_distance_ci"][1] >= real_copy)
    return row


def stability(frames: np.ndarray, segments: Sequence[np.ndarray], n_dims: int) -> dict[str, Any]:
    """Per-dimension stability of the last 10 s of several sequences (the 60-s check).

    Each segment is centred on its own mean, so differences between clips' levels do not count
    as motion, and the pooled spread is compared with that of every real frame
    (:func:`~seqboltz.eval._sequence.std_ratio`), which were centred the same way: the median,
    least and largest ratio over the moving dimensions and how many lie within 0.5–2×. Scored
    on real held-out clips (:func:`real_row`) it gives what real motion gets: on people who
    sway more or less than the others it stays below "all dimensions within".

    Args:
        frames: ``(N, D)`` real frames, centred in ~10-s pieces (:attr:`MotionReference.frames`).
        segments: ``[(T_i, D)]`` finite segments (e.g. the last 10 s of each generation);
            none: the ratios are infinite (every generation blew up).
        n_dims: ``D``, reported when no segment is left.
    """
    segs = [np.asarray(g, dtype=np.float64) for g in segments]
    if not segs:
        inf = float("inf")
        return dict(
            std_ratio_median=inf,
            std_ratio_min=inf,
            std_ratio_max=inf,
            std_ratio_within=0,
            n_dims=int(n_dims),
            frozen=False,
        )
    ratio = std_ratio(frames, np.concatenate([g - g.mean(0) for g in segs]))
    return dict(
        std_ratio_median=float(np.median(ratio)),
        std_ratio_min=float(ratio.min()),
        std_ratio_max=float(ratio.max()),
        std_ratio_within=int(((ratio >= 0.5) & (ratio <= 2.0)).sum()),
        n_dims=int(ratio.size),
        frozen=bool(ratio.min() < 0.05),
    )


def paired_difference(
    row: Mapping[str, Any], baseline: Mapping[str, Any], key: str, n_boot: int = 2000
) -> tuple[float, float, float]:
    """Mean difference ``row − baseline`` of metric ``key`` over the same held-out clips and
    seeds, with its two-way bootstrap 95 % interval (:func:`bootstrap_ci` on the per-cell
    differences).

    Two models scored on the same clips differ far less than the clips differ from each
    other, so the paired interval is the test of "better"; two marginal intervals that do
    not overlap is a stricter one.

    Args:
        row, baseline: rows of :func:`score_generations` on the same clips and seed count.
        key: a metric, e.g. ``"frechet"``.
        n_boot: bootstrap resamples.

    Returns:
        ``(mean, low, high)``; NaN when either row lacks the metric.
    """
    a = np.asarray(row.get("cells", {}).get(key, np.nan), dtype=np.float64)
    b = np.asarray(baseline.get("cells", {}).get(key, np.nan), dtype=np.float64)
    if a.ndim != 2 or a.shape != b.shape or not np.isfinite(a - b).any():
        return float("nan"), float("nan"), float("nan")
    return bootstrap_ci(a - b, n_boot=n_boot)


#: the realism measures of issue 13 that :func:`realism_score` averages (lower is better)
REALISM_KEYS = ("npss", "pskl", "frechet", "foot_skating")


def realism_score(row: Mapping[str, Any], baseline: Mapping[str, Any]) -> float:
    """Mean log ratio ``mean_k log(row_k / baseline_k)`` over the :data:`REALISM_KEYS` both
    rows have (finite and positive): 0 at parity with the baseline, below 0 better, and each
    measure weighs the same whatever its units (a 10 % lower Fréchet distance counts as much
    as a 10 % lower NPSS). ``inf`` when ``row`` has none of them or blew up.

    Args:
        row, baseline: rows of :func:`score_generations` (e.g. a model and the linear AR on
            the same clips).
    """
    if row.get("exploded"):
        return math.inf
    logs = []
    for key in REALISM_KEYS:
        a, b = row.get(key, math.nan), baseline.get(key, math.nan)
        if math.isfinite(a) and math.isfinite(b) and a > 0 and b > 0:
            logs.append(math.log(a / b))
    return float(np.mean(logs)) if logs else math.inf


def real_row(ref: MotionReference) -> dict[str, Any]:
    """The ``real (held out)`` row: the values of real held-out motion (empty without a
    skeleton)."""
    row: dict[str, Any] = {"model": REAL_NAME}
    if ref.body is None:
        return row
    # the 60-s check scored on the held-out clips themselves, as a generation's last 10 s is
    last = ref.stability_frames
    within = np.array([[std_within(ref.frames, c[-last:])] for c in ref.test])
    mean, low, high = bootstrap_ci(group_phase_copies(within, ref.groups))
    row["std_within"], row["std_within_ci"] = mean, [low, high]
    row.update(stability(ref.frames, [c[-last:] for c in ref.test], ref.frames.shape[1]))
    for key, (mean, low, high) in ref.body.real.items():
        row[key], row[f"{key}_ci"] = mean, [low, high]
    return row


# ---- the report ------------------------------------------------------------------------------
def _num(value: float, digits: int) -> str:
    """Fixed decimals; 3 significant digits for values beyond ±1e5 (blown-up motion), and 2
    for values too small for the decimals to show two (a rig in metres: a Fréchet distance of
    0.078 m² is not "0.1", a foot sliding at 0.039 m/s not "0.04")."""
    if abs(value) >= 1e5:
        return f"{value:.3g}"
    if 0 < abs(value) < 10 ** (1 - digits):
        return f"{value:.2g}"
    return f"{value:.{digits}f}"


def _cell(row: Mapping[str, Any], key: str, digits: int) -> str:
    value = row.get(key)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    low, high = row.get(f"{key}_ci", [value, value])
    if low == high:
        return _num(value, digits)
    return f"{_num(value, digits)} [{_num(low, digits)}, {_num(high, digits)}]"


@dataclass
class SequenceEvaluation:
    """Rows (model and baselines) of the sequence evaluation, JSON-serialisable."""

    rows: list[dict[str, Any]]
    settings: dict[str, Any]
    reference: dict[str, Any] = field(default_factory=dict)
    speed_control: list[dict[str, Any]] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)

    def table(self) -> str:
        """One markdown table: the model beside AR (with residual noise), repeat-last-frame
        and, where they exist, the values of real held-out motion; means over clips × seeds
        with bootstrap 95 % intervals."""
        rows = self.rows + ([self.reference] if len(self.reference) > 1 else [])
        keys = [k for k in _COLUMNS if any(k in r for r in rows)]
        head = ["model", "one-step MSE"] + [_COLUMNS[k][0] for k in keys] + ["std ratio, 60 s"]
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for r in rows:
            cells = [str(r["model"]), _cell(r, "one_step_mse", 4)]
            cells += [_cell(r, k, _COLUMNS[k][1]) for k in keys]
            if "std_ratio_median" in r:
                blown = (
                    f"; {r['n_exploded']}/{r['n_generations']} blew up"
                    if r.get("n_exploded")
                    else ""
                )
                cells.append(
                    f"{_num(r['std_ratio_median'], 2)} [{_num(r['std_ratio_min'], 2)}, "
                    f"{_num(r['std_ratio_max'], 2)}] ({r['std_ratio_within']}/{r['n_dims']} "
                    f"dims{blown})"
                )
            else:
                cells.append("—")
            lines.append("| " + " | ".join(cells) + " |")
        s = self.settings
        notes = [
            f"\n{s.get('n_test_clips')} held-out sequences ({s.get('n_test_captured_clips')} "
            f"captured clips and their phase copies) × {s.get('n_seeds')} seeds, "
            f"{s.get('seconds'):g}-s generations from each clip's first {s.get('order')} frames; "
            "mean [95 % bootstrap interval resampling captured clips and seeds]. AR samples "
            "with Gaussian residual noise of its training residual covariance.",
        ]
        if len(self.reference) > 1:
            notes.append(
                f"{REAL_NAME}: the held-out clips' own values (the 60-s stability: each clip's "
                "last 10 s, scored as a generation's are), except NPSS, PSKL and the pooled "
                "Fréchet distance, which score real *training* motion against the held-out clips "
                "as a generation is scored (NPSS and PSKL with training motion of the held-out "
                "clip's kind where the data names kinds; Fréchet with every training frame): "
                "what a model that generated real motion would get. The per-generation Fréchet "
                "distance has no real value: a real clip is shorter than a generation."
            )
        if any("frechet_pooled" in r for r in self.rows):
            notes.append(
                "Fréchet, pooled: every held-out clip's generation of one seed pooled against "
                "every held-out frame, as FID pools a model's samples; the mean over seeds, "
                "its interval resampling the seeds only. Fréchet pose+vel scores each "
                "generation alone, which also rewards wandering over more of the held-out poses."
            )
        if "length_unit" in s:
            notes.append(
                f"Fréchet, foot skating (speed in contact, per s), diversity and distances in "
                f"{s['length_unit']}; copy check: generated 1-s windows must not be "
                "significantly closer to their nearest training window than held-out windows are "
                "(fails when the interval's upper end is below the held-out mean)"
                + (
                    " ("
                    + ", ".join(
                        f"{r['model']}: {'passed' if r['copy_check_passed'] else 'FAILED'}"
                        for r in self.rows
                        if "copy_check_passed" in r
                    )
                    + ")."
                    if any("copy_check_passed" in r for r in self.rows)
                    else "."
                )
            )
        lines.extend(notes)
        if self.speed_control:
            lines.append("\n| segment | requested speed (std units) | measured speed (std units) |")
            lines.append("|---|---|---|")
            for sc in self.speed_control:
                lines.append(f"| {sc['segment']} | {sc['requested']:.2f} | {sc['measured']:.2f} |")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _window_styles(styles: list[np.ndarray] | None, order: int) -> np.ndarray | None:
    if styles is None:
        return None
    return np.concatenate([s[order:] for s in styles])


def model_one_step_mse(model: SequenceRBM, datamodule: Any, gibbs_steps: int, seed: int) -> float:
    """Mean squared error per dimension of the model's next frame (Taylor's sampler, ``k``
    Gibbs steps, seeded) from the true history of every held-out window."""
    order, test = model.order, datamodule.clips("test")
    styles = datamodule.style_clips("test") if model.n_style > 0 else None
    style_w = _window_styles(styles, order)

    def predict(h: np.ndarray) -> np.ndarray:
        seed_frames = torch.from_numpy(np.ascontiguousarray(h[:, ::-1])).to(torch.float64)
        style = None if style_w is None else torch.from_numpy(style_w).to(torch.float64)
        out = model.generate(seed_frames, 1, gibbs_steps, style=style, seed=seed)
        return np.asarray(out[:, 0].double().numpy())

    return one_step_errors(predict, test, order)["mse"]


def evaluate_sequence_model(
    model: SequenceRBM,
    datamodule: Any,
    *,
    seconds: float = 60.0,
    gibbs_steps: int = 30,
    seed: int = 0,
    n_seeds: int = 5,
    n_boot: int = 2000,
    out_dir: str | Path | None = None,
) -> SequenceEvaluation:
    """Evaluate ``model`` on ``datamodule``'s held-out clips beside both baselines.

    Args:
        model: a trained conditional RBM.
        datamodule: a set-up sequence DataModule with ``clips(split)``, ``order``,
            ``target_fps`` (``style_clips(split)`` for models with style; ``features`` and
            ``source_clips(split)`` for the body metrics and pictures of motion).
        seconds: length of the long generations.
        gibbs_steps: ``k`` of the model's sampler.
        seed: the first seed; generations use seeds ``seed … seed + n_seeds - 1`` (sequence
            ``i`` of seed ``s`` draws from ``sequence_rng(s, i)``); one-step prediction uses
            ``seed``.
        n_seeds: seeds per held-out clip (≥ 2 for diversity).
        n_boot: bootstrap resamples of the intervals.
        out_dir: where to write pictures and a generated BVH (motion data only); ``None``: none.
    """
    if n_seeds < 1:
        raise ValueError(f"n_seeds must be >= 1, got {n_seeds}")
    order, fps = model.order, float(datamodule.target_fps)
    train, test = datamodule.clips("train"), datamodule.clips("test")
    has_style = model.n_style > 0
    n_frames = round(seconds * fps)

    hist, _ = history_windows(test, order)
    ar: LinearAR = fit_linear_ar(train, order)
    repeat = RepeatLastFrame(order)
    name = type(model).__name__
    names = {"model": name, "ar": AR_NAME.format(order=order), "repeat": REPEAT_NAME}
    mse = {
        "model": model_one_step_mse(model, datamodule, gibbs_steps, seed),
        "ar": one_step_errors(ar.predict, test, order)["mse"],
        "repeat": one_step_errors(repeat.predict, test, order)["mse"],
    }
    generators: dict[str, Generator] = {
        "model": model_generator(model, datamodule, gibbs_steps),
        "ar": ar.generate,
        "repeat": repeat.generate,
    }
    ref = motion_reference(datamodule)
    starts = np.stack([clip[:order] for clip in test])
    seeds = list(range(seed, seed + n_seeds))
    gens = {k: generate_seeds(g, starts, n_frames, seeds) for k, g in generators.items()}
    rows = [
        score_generations(names[k], gens[k], ref, one_step_mse=mse[k], n_boot=n_boot)
        for k in ("model", "ar", "repeat")
    ]
    settings: dict[str, Any] = {
        "seconds": seconds,
        "gibbs_steps": gibbs_steps,
        "seed": seed,
        "seeds": seeds,
        "n_seeds": n_seeds,
        "fps": fps,
        "order": order,
        "n_test_clips": len(test),
        "n_test_captured_clips": ref.n_groups,
        "n_test_windows": int(hist.shape[0]),
        "spectral_window_frames": ref.window,
    }
    if ref.body is not None:
        settings["length_unit"] = ref.body.length_unit
        settings["feet"] = [ref.body.sources[0].skeleton.names[i] for i in ref.body.feet]
    report = SequenceEvaluation(rows=rows, settings=settings, reference=real_row(ref))
    if has_style and hasattr(datamodule, "features"):
        # the speed test spans the evaluation's length (20-s segments from 60 s on)
        segment = min(20.0, seconds / 3)
        report.speed_control = speed_control(model, datamodule, gibbs_steps, seed, segment)
    gen_model, gen_ar = gens["model"][0], gens["ar"][0]
    if out_dir is not None and ref.body is not None and np.isfinite(gen_model).all():
        report.files = motion_pictures(
            Path(out_dir), datamodule, ref, gen_model, gen_ar, name, seed
        )
    return report


def _generated_speeds(
    model: SequenceRBM, datamodule: Any, style: np.ndarray, gibbs_steps: int, seed: int
) -> np.ndarray | None:
    """``(B, T)`` root speed, in the style's standardised units, of what ``model`` generates
    from each held-out clip's start under the per-frame ``style (B, T, S)`` (features back to a
    clip, ``features.root_speed``); ``None`` if a generation blew up."""
    stats = datamodule.stats()["style"]
    test = datamodule.clips("test")
    starts = torch.from_numpy(np.stack([c[: model.order] for c in test])).double()
    gen = model.generate(
        starts, style.shape[1], gibbs_steps, style=torch.from_numpy(style).double(), seed=seed
    )
    gen_np = gen.double().numpy()
    mf, order = datamodule.features, model.order
    sources = datamodule.source_clips("test")
    speeds = []
    for i, clip in enumerate(test):
        if not np.isfinite(gen_np[i]).all():
            return None
        motion = mf.inverse_transform(
            np.concatenate([clip[:order], gen_np[i]]), mf.initial_state(sources[i])
        )
        speed = mf.root_speed(motion)[order - 1 :]  # speed of the generated frames
        speeds.append((speed - stats["mean"]) / stats["std"])
    return np.stack(speeds)


def _held_out_styles(datamodule: Any, n_frames: int) -> np.ndarray:
    """``(B, n_frames, S)``: each held-out clip's mean style, every frame."""
    base = np.stack([st.mean(0) for st in datamodule.style_clips("test")])  # (B, S)
    return np.repeat(base[:, None, :], n_frames, axis=1)


def speed_control(
    model: SequenceRBM,
    datamodule: Any,
    gibbs_steps: int,
    seed: int,
    segment_seconds: float = 20.0,
) -> list[dict[str, Any]]:
    """Request a low then a high root speed mid-sequence (the 10 % and 90 % quantiles of the
    training speeds; other style columns at each clip's held-out mean) and measure the ground
    speed of what is generated (features back to a clip, ``features.root_speed``), in the
    style's standardised units, over the second half of each segment (low, high, low; 20 s
    each by default)."""
    stats = datamodule.stats().get("style", {})
    if "mean" not in stats or "std" not in stats:
        return []
    fps = float(datamodule.target_fps)
    train_style = np.concatenate(datamodule.style_clips("train"))[:, 0]
    low, high = np.quantile(train_style, [0.1, 0.9])
    seg = max(2, round(segment_seconds * fps))
    schedule = np.concatenate([np.full(seg, low), np.full(seg, high), np.full(seg, low)])
    style = _held_out_styles(datamodule, 3 * seg)
    style[:, :, 0] = schedule
    speed_std = _generated_speeds(model, datamodule, style, gibbs_steps, seed)
    if speed_std is None:
        return [{"segment": "all", "requested": float("nan"), "measured": float("nan")}]
    out: list[dict[str, Any]] = []
    edges = [f"{i * segment_seconds:g}" for i in range(4)]
    labels = [f"{edges[i]}–{edges[i + 1]} s" for i in range(3)]
    for i, (label, requested) in enumerate(zip(labels, [low, high, low], strict=True)):
        tail = speed_std[:, i * seg + seg // 2 : (i + 1) * seg]  # after the change settles
        out.append(
            {"segment": label, "requested": float(requested), "measured": float(tail.mean())}
        )
    return out


def speed_response(
    model: SequenceRBM,
    datamodule: Any,
    levels: Sequence[float],
    gibbs_steps: int,
    seed: int,
    seconds: float = 20.0,
) -> np.ndarray:
    """The root speed ``model`` settles at when its style's first column is held at each of
    ``levels`` (other columns at each clip's held-out mean), from every held-out clip's start:
    the mean over clips of the second half of ``seconds``, in the style's standardised units
    (``(L,)``; NaN where a generation blew up). What the model makes of each value it is given,
    as generated: through :meth:`~seqboltz.models.ResidualCRBM.requested_style` if it has a
    gain or a curve."""
    n = max(2, round(seconds * float(datamodule.target_fps)))
    out = np.full(len(levels), np.nan)
    for k, level in enumerate(levels):
        style = _held_out_styles(datamodule, n)
        style[:, :, 0] = level
        speeds = _generated_speeds(model, datamodule, style, gibbs_steps, seed)
        if speeds is not None:
            out[k] = float(speeds[:, n // 2 :].mean())
    return out


def speed_gain(segments: Sequence[Mapping[str, Any]]) -> float:
    """How far the measured speed follows the request: ``(measured high − mean measured low) /
    (requested high − requested low)`` over the low–high–low segments (1: exactly)."""
    if len(segments) != 3:
        return float("nan")
    lo = (segments[0]["measured"] + segments[2]["measured"]) / 2
    return float(
        (segments[1]["measured"] - lo) / (segments[1]["requested"] - segments[0]["requested"])
    )


def motion_clips_for_pictures(
    ref: MotionReference, generations: Mapping[str, np.ndarray], clip: int = 0
) -> dict[str, Any]:
    """``{"real (held out)": clip, label: generated clip, ...}`` of held-out clip ``clip``:
    every generation ``(T, D)`` continues that clip's first ``order`` frames, placed where
    the real clip starts (for :func:`seqboltz.viz_motion.render_clips`)."""
    body = ref.body
    if body is None:
        raise ValueError("the data has no skeleton to draw")
    source = body.sources[clip]
    initial = body.features.initial_state(source)
    real = body.features.inverse_transform(ref.test[clip], initial, name=REAL_NAME)
    out = {REAL_NAME: real}
    for label, gen in generations.items():
        out[label] = body.features.inverse_transform(
            np.concatenate([ref.test[clip][: ref.order], gen]), initial, name=label
        )
    return out


def motion_pictures(
    out: Path,
    datamodule: Any,
    ref: MotionReference,
    gen_model: np.ndarray,
    gen_ar: np.ndarray,
    name: str,
    seed: int,
) -> dict[str, str]:
    """Joint-angle curves, root trajectories, a generated BVH and pictures of the body."""
    from seqboltz.motion import MotionClip, local_translations, write_bvh
    from seqboltz.viz import plot_curves, plot_trajectories
    from seqboltz.viz_motion import render_clips

    assert ref.body is not None
    fps = ref.fps
    mf = datamodule.features
    names = mf.feature_names()
    real = ref.test[0]
    dims = [int(i) for i in np.argsort(real.std(0))[::-1][:6]]
    n = min(gen_model.shape[1], round(10 * fps))
    files = {
        "curves": str(
            plot_curves(
                out / "curves.png",
                real[:, dims],
                gen_model[0, :n][:, dims],
                [names[i] for i in dims],
                fps,
                "generated (first 10 s) against real held-out motion, standardised units",
            )
        )
    }
    clips = motion_clips_for_pictures(ref, {name: gen_model[0], "linear AR": gen_ar[0]})
    up = "xyz".index(ref.body.up_axis)
    ground = [a for a in range(3) if a != up]
    trajectories = {
        label: local_translations(c.skeleton, c.frames)[:, 0][:, ground]
        for label, c in clips.items()
    }
    files["trajectories"] = str(
        plot_trajectories(out / "root_trajectories.png", trajectories, "root on the ground plane")
    )
    bvh = out / "generated.bvh"
    generated = clips[name]
    write_bvh(
        bvh, MotionClip(generated.skeleton, generated.frames[ref.order :], generated.frame_time)
    )
    files["bvh"] = str(bvh)
    # a generation that left the scene (blown up far beyond real features) is not drawn:
    # the table reports it; the pictures show real motion beside the generations that stay
    scale = 1e3 * max(1.0, float(np.abs(real).max()))
    drawn = {
        label: clip
        for (label, clip), feats in zip(clips.items(), [real, gen_model[0], gen_ar[0]], strict=True)
        if np.abs(feats).max() < scale
    }
    pictures = render_clips(
        out / "body",
        drawn,
        up_axis=ref.body.up_axis,
        seconds=10.0,
        title=f"held-out clip 0: real beside generated (seed {seed}), first 10 s",
    )
    files.update({k: str(v) for k, v in pictures.items()})
    return files
