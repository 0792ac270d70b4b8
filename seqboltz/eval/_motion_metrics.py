"""Motion-quality metrics a motion researcher accepts, as pure numpy functions (no torch).

Spectral realism (on feature sequences ``(B, T, D)``, e.g. standardised model features):

* :func:`~seqboltz.eval._sequence.npss` (Gopalakrishnan et al. 2019), re-exported here;
* :func:`power_spectra`, :func:`ps_entropy` and :func:`ps_kl`: the power-spectrum entropy and
  the power-spectrum KL divergence in both directions of Hernandez, Gall & Moreno-Noguer
  (2019, "Human Motion Prediction via Spatio-Temporal Inpainting", ICCV).

Distribution and physical realism (on joint positions from forward kinematics):

* :func:`body_frame` turns world joint positions ``(T, J, 3)`` into heading-free,
  root-relative positions and per-frame velocities; :func:`pose_velocity_features` stacks
  them into one feature vector per frame;
* :func:`frechet_distance`: the Fréchet distance between Gaussians fitted to two sets of
  feature vectors (Heusel et al. 2017's FID formula, here on pose + velocity features);
* :func:`foot_joints` finds the feet of a skeleton by name and :func:`foot_skating` measures
  horizontal foot speed while a foot is at floor height (foot sliding; e.g. Holden, Saito &
  Komura 2016, Zhang et al. 2018);
* :func:`std_within`: the 60-s stability check (dimensions whose generated standard deviation
  stays within 0.5–2× of real motion), on :func:`~seqboltz.eval._sequence.std_ratio`;
* :func:`pose_jitter`: frame-to-frame roughness (the RMS second difference of the body-frame
  joints), beside the held-out clips' own;
* :func:`mean_pairwise_distance`: diversity across seeds, the average pairwise distance
  (APD) of Yuan & Kitani (2020, "DLow", ECCV) between generations of the same start, and
  :func:`pose_spread` the same quantity for real frames;
* :func:`nearest_window_distances`: the copy check, the distance from each window to its
  nearest training window (generated windows must not sit closer to the training data than
  held-out real windows do).

Uncertainty: :func:`bootstrap_ci` gives a percentile bootstrap 95 % interval of the mean of a
``(clips, seeds)`` table, resampling clips and seeds independently (a two-way bootstrap;
Efron & Tibshirani 1993).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from seqboltz.eval._sequence import npss, std_ratio
from seqboltz.motion._contact import contact_speed, foot_contacts, foot_joints, ground_axes

__all__ = [
    "FrechetReference",
    "body_frame",
    "bootstrap_ci",
    "foot_joints",
    "foot_skating",
    "frechet_distance",
    "mean_pairwise_distance",
    "nearest_window_distances",
    "npss",
    "pose_jitter",
    "pose_spread",
    "pose_velocity_features",
    "power_spectra",
    "ps_entropy",
    "ps_kl",
    "sliding_windows",
    "std_within",
]

_EPS = 1e-12


def _as_batch(x: np.ndarray, what: str) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    a = a[None] if a.ndim == 2 else a
    if a.ndim != 3 or a.shape[1] < 2:
        raise ValueError(f"{what} must be (T, D) or (B, T, D) with T >= 2; got shape {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError(f"{what} contains NaN or infinite values")
    return a


# ---- spectra (Hernandez, Gall & Moreno-Noguer 2019) -------------------------------------------
def power_spectra(x: np.ndarray) -> np.ndarray:
    """Normalised power spectrum of every dimension, averaged over sequences.

    Args:
        x: ``(T, D)`` or ``(B, T, D)`` sequences of equal length.

    Returns:
        ``(T // 2 + 1, D)``: for each dimension, the mean over sequences of ``|rfft|²`` of the
        mean-removed signal, normalised to sum to 1 over frequencies (a dimension with no
        power gets the uniform spectrum).
    """
    a = _as_batch(x, "x")
    power = np.abs(np.fft.rfft(a - a.mean(1, keepdims=True), axis=1)) ** 2  # (B, F, D)
    mean = power.mean(0)  # (F, D)
    total = mean.sum(0, keepdims=True)
    uniform = np.full_like(mean, 1.0 / mean.shape[0])
    return np.where(total > _EPS, mean / np.maximum(total, _EPS), uniform)


def ps_entropy(x: np.ndarray) -> float:
    """Power-spectrum entropy (nats), averaged over dimensions (Hernandez et al. 2019).

    Args:
        x: ``(T, D)`` or ``(B, T, D)`` sequences.

    Returns:
        ``mean_d −Σ_f p_fd log p_fd`` with ``p = power_spectra(x)``: low for motion that
        repeats one rhythm (or freezes into a slow drift), high for noise-like motion.
    """
    p = power_spectra(x)
    return float(np.mean(-(p * np.log(np.maximum(p, _EPS))).sum(0)))


def ps_kl(p_from: np.ndarray, q_to: np.ndarray, eps: float = 1e-8) -> float:
    """Power-spectrum KL divergence ``KL(p ‖ q)``, averaged over dimensions (Hernandez et al.
    2019 report both directions: ``ps_kl(real, gen)`` and ``ps_kl(gen, real)``).

    Args:
        p_from: ``(B, T, D)`` (or ``(T, D)``) sequences whose spectrum is ``p``.
        q_to: ``(B', T, D)`` sequences of the same length ``T`` and width ``D``.
        eps: added to every spectral bin (then renormalised) so empty bins stay finite.

    Returns:
        ``mean_d Σ_f p_fd log(p_fd / q_fd)`` in nats (0 for equal spectra).
    """
    p, q = power_spectra(p_from), power_spectra(q_to)
    if p.shape != q.shape:
        raise ValueError(
            f"both sets need the same length and width: spectra {p.shape} and {q.shape}"
        )
    p = (p + eps) / (1.0 + eps * p.shape[0])
    q = (q + eps) / (1.0 + eps * q.shape[0])
    return float(np.mean((p * np.log(p / q)).sum(0)))


# ---- poses from forward kinematics ------------------------------------------------------------


def body_frame(
    positions: np.ndarray, root_rotations: np.ndarray, up_axis: str = "y"
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Heading-free, root-relative joint positions and velocities.

    The heading ``ψ_t`` is the ground-plane direction of the root's rotated first ground axis
    (any fixed horizontal axis gives the same features up to one constant rotation), so the
    result does not depend on which way the rig calls forward.

    Args:
        positions: ``(T, J, 3)`` world joint positions (joint 0 the root).
        root_rotations: ``(T, 3, 3)`` global rotations of the root.
        up_axis: the vertical axis.

    Returns:
        ``pose (T, J, 3)``: joint positions minus the root's ground position, turned by
        ``−ψ_t`` about the up axis (the up coordinate keeps the height above the origin);
        ``velocity (T-1, J, 3)``: ``p_{t+1} − p_t`` in world units per frame, turned by
        ``−ψ_{t+1}``; ``heading (T,)`` in radians.
    """
    p = np.asarray(positions, dtype=np.float64)
    r = np.asarray(root_rotations, dtype=np.float64)
    if p.ndim != 3 or p.shape[2] != 3 or r.shape != (p.shape[0], 3, 3):
        raise ValueError(
            f"positions (T, J, 3) and root_rotations (T, 3, 3); got {p.shape}, {r.shape}"
        )
    g1, g2, _up = ground_axes(up_axis)
    heading = np.arctan2(r[:, g2, g1], r[:, g1, g1])  # rotated e_g1, seen in the ground plane
    c, s = np.cos(heading)[:, None], np.sin(heading)[:, None]

    def unturn(v: np.ndarray, cc: np.ndarray, ss: np.ndarray) -> np.ndarray:
        out = v.copy()
        out[..., g1] = cc * v[..., g1] + ss * v[..., g2]
        out[..., g2] = -ss * v[..., g1] + cc * v[..., g2]
        return out

    rel = p.copy()
    rel[..., g1] -= p[:, :1, g1]
    rel[..., g2] -= p[:, :1, g2]
    pose = unturn(rel, c, s)
    velocity = unturn(np.diff(p, axis=0), c[1:], s[1:])
    return pose, velocity, heading


def pose_velocity_features(pose: np.ndarray, velocity: np.ndarray) -> np.ndarray:
    """One feature vector per frame: ``[pose_{t+1}, velocity_t]`` flattened.

    Args:
        pose: ``(T, J, 3)`` from :func:`body_frame`.
        velocity: ``(T-1, J, 3)`` from :func:`body_frame`.

    Returns:
        ``(T-1, 6J)``.
    """
    pose, velocity = np.asarray(pose), np.asarray(velocity)
    if velocity.shape[0] != pose.shape[0] - 1:
        raise ValueError(
            f"velocity {velocity.shape} must have one frame fewer than pose {pose.shape}"
        )
    t = velocity.shape[0]
    return np.concatenate([pose[1:].reshape(t, -1), velocity.reshape(t, -1)], axis=1)


# ---- Fréchet distance ------------------------------------------------------------------------
def _psd_sqrt(a: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh((a + a.T) / 2)
    return np.asarray((v * np.sqrt(np.clip(w, 0.0, None))) @ v.T)


@dataclass(frozen=True)
class FrechetReference:
    """The real side of :func:`frechet_distance`, computed once: mean ``(K,)``, covariance
    ``(K, K)`` and its symmetric square root."""

    mean: np.ndarray
    cov: np.ndarray
    sqrt_cov: np.ndarray

    @classmethod
    def from_features(cls, real: np.ndarray) -> FrechetReference:
        """Fit the Gaussian of ``real (N, K)`` feature vectors (N ≥ 2)."""
        r = _features(real, "real")
        cov = np.atleast_2d(np.cov(r, rowvar=False))
        return cls(r.mean(0), cov, _psd_sqrt(cov))

    def distance(self, generated: np.ndarray) -> float:
        """:func:`frechet_distance` of ``generated (M, K)`` from this reference."""
        g = _features(generated, "generated")
        if g.shape[1] != self.mean.shape[0]:
            raise ValueError(
                f"generated has {g.shape[1]} features, the reference {self.mean.shape[0]}"
            )
        mu = self.mean - g.mean(0)
        cg = np.atleast_2d(np.cov(g, rowvar=False))
        cross = np.linalg.eigvalsh(self.sqrt_cov @ cg @ self.sqrt_cov)
        trace_sqrt = float(np.sqrt(np.clip(cross, 0.0, None)).sum())
        return float(max(mu @ mu + np.trace(self.cov) + np.trace(cg) - 2.0 * trace_sqrt, 0.0))


def _features(x: np.ndarray, what: str) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 2 or a.shape[0] < 2:
        raise ValueError(f"{what} features must be (N >= 2, K); got shape {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError(f"{what} features contain NaN or infinite values")
    return a


def frechet_distance(real: np.ndarray, generated: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two sets of feature vectors.

    ``‖μ_r − μ_g‖² + tr(Σ_r + Σ_g − 2 (Σ_r^{1/2} Σ_g Σ_r^{1/2})^{1/2})`` (Dowson & Landau
    1982; the FID of Heusel et al. 2017 without the Inception network). Computed with
    symmetric eigendecompositions, so singular covariances (constant features) are fine.
    Finite samples bias it upwards: compare models on equal numbers of frames. To score many
    generated sets against one real set, build :class:`FrechetReference` once.

    Args:
        real: ``(N, K)`` real feature vectors (e.g. :func:`pose_velocity_features`).
        generated: ``(M, K)`` generated ones.

    Returns:
        The distance in squared feature units (0 for identical sets).
    """
    return FrechetReference.from_features(real).distance(generated)


# ---- feet ------------------------------------------------------------------------------------
def foot_skating(
    feet: np.ndarray,
    fps: float,
    floor: np.ndarray,
    threshold: float,
    up_axis: str = "y",
) -> tuple[float, float]:
    """Horizontal foot speed while the foot is at floor height (foot sliding).

    A foot joint is in contact in frame ``t`` when its height is below ``floor + threshold``
    in both ``t`` and ``t+1``; its skating is its ground-plane speed over that step.

    Args:
        feet: ``(T, F, 3)`` or ``(B, T, F, 3)`` world positions of ``F`` foot joints.
        fps: frames per second.
        floor: ``(F,)`` floor height of each foot joint (e.g. a low percentile of the joint's
            height in real motion: ankles rest higher than toes).
        threshold: contact tolerance above the floor, in length units.
        up_axis: the vertical axis.

    Returns:
        ``(mean horizontal speed in contact, length units per second; contact fraction)``.
        With no contact step the speed is 0 and the fraction 0 (a floating figure does not
        skate: read the fraction beside the speed).
    """
    f = np.asarray(feet, dtype=np.float64)
    f = f[None] if f.ndim == 3 else f
    if f.ndim != 4 or f.shape[3] != 3 or f.shape[1] < 2:
        raise ValueError(f"feet must be (T, F, 3) or (B, T, F, 3) with T >= 2; got {f.shape}")
    fl = np.asarray(floor, dtype=np.float64).reshape(-1)
    if fl.shape != (f.shape[2],):
        raise ValueError(
            f"floor must give one height per foot joint ({f.shape[2]}); got {fl.shape}"
        )
    if not threshold > 0 or not fps > 0:
        raise ValueError(f"threshold and fps must be > 0, got {threshold}, {fps}")
    g1, g2, up = ground_axes(up_axis)
    contact = foot_contacts(f[..., up], fl, threshold)  # (B, T-1, F)
    return contact_speed(f, contact, (g1, g2), fps), float(contact.sum() / contact.size)


# ---- stability, diversity, copying -----------------------------------------------------------
def std_within(
    real: np.ndarray, generated: np.ndarray, low: float = 0.5, high: float = 2.0
) -> float:
    """Fraction of moving dimensions whose generated std is within ``[low, high]`` × real.

    Args:
        real: ``(N, D)`` real frames.
        generated: ``(M, D)`` generated frames (e.g. the last 10 s of a 60-s generation).

    Returns:
        A fraction in [0, 1] (see :func:`~seqboltz.eval._sequence.std_ratio` for which
        dimensions count as moving); 0 if ``generated`` is not finite.
    """
    g = np.asarray(generated, dtype=np.float64)
    if not np.isfinite(g).all():
        return 0.0
    ratio = std_ratio(real, g)
    return float(((ratio >= low) & (ratio <= high)).mean())


def pose_jitter(pose: np.ndarray) -> float:
    """Frame-to-frame roughness of a motion: the root-mean-square length of the joints'
    second difference (acceleration times the frame time squared), in length units.

    Real capture at 30 fps is smooth; a sampler that adds white noise to every frame makes
    the body tremble, which a spectrum averaged over seconds hardly shows. Compare with the
    held-out clips' value.

    Args:
        pose: ``(T, J, 3)`` joint positions in the body frame (:func:`body_frame`), T ≥ 3.

    Returns:
        ``sqrt(mean over frames and joints of ‖p_{t+1} − 2 p_t + p_{t−1}‖²)``.
    """
    p = np.asarray(pose, dtype=np.float64)
    if p.ndim != 3 or p.shape[0] < 3 or p.shape[2] != 3:
        raise ValueError(f"pose must be (T >= 3, J, 3); got {p.shape}")
    return float(np.sqrt((np.diff(p, 2, axis=0) ** 2).sum(-1).mean()))


def mean_pairwise_distance(samples: np.ndarray) -> float:
    """Average pairwise distance (APD; Yuan & Kitani 2020) between samples of the same start.

    Args:
        samples: ``(S, T, J, 3)`` S ≥ 2 generations (e.g. seeds) of ``T`` poses of ``J`` joints.

    Returns:
        Mean over pairs ``s < s'``, frames and joints of ``‖x_s − x_s'‖`` (length units).
    """
    x = np.asarray(samples, dtype=np.float64)
    if x.ndim != 4 or x.shape[0] < 2 or x.shape[3] != 3:
        raise ValueError(f"samples must be (S >= 2, T, J, 3); got {x.shape}")
    s = x.shape[0]
    dists = [np.linalg.norm(x[i] - x[j], axis=-1).mean() for i in range(s) for j in range(i + 1, s)]
    return float(np.mean(dists))


def pose_spread(poses: np.ndarray, max_frames: int = 2000, seed: int = 0) -> float:
    """Mean distance between two real poses drawn at random: the diversity that fully
    decorrelated generations of real-looking motion would have.

    Args:
        poses: ``(N, J, 3)`` poses (e.g. every held-out frame, body frame).
        max_frames: at most this many frames are used (a fixed random subset).
        seed: seed of that subset.

    Returns:
        Mean over pairs of distinct frames of the mean joint distance (length units).
    """
    p = np.asarray(poses, dtype=np.float64)
    if p.ndim != 3 or p.shape[0] < 2 or p.shape[2] != 3:
        raise ValueError(f"poses must be (N >= 2, J, 3); got {p.shape}")
    if p.shape[0] > max_frames:
        p = p[np.sort(np.random.default_rng(seed).choice(p.shape[0], max_frames, replace=False))]
    n = p.shape[0]
    total = 0.0
    for i in range(n - 1):
        total += float(np.linalg.norm(p[i + 1 :] - p[i], axis=-1).mean(1).sum())
    return total / (n * (n - 1) / 2)


def sliding_windows(x: np.ndarray, length: int, stride: int) -> np.ndarray:
    """``(T, K)`` → ``(N, length, K)`` windows starting every ``stride`` frames."""
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 2 or length < 1 or stride < 1:
        raise ValueError(
            f"x must be (T, K), length and stride >= 1; got {a.shape}, {length}, {stride}"
        )
    starts = range(0, a.shape[0] - length + 1, stride)
    if not starts:
        return np.empty((0, length, a.shape[1]))
    return np.stack([a[s : s + length] for s in starts])


def nearest_window_distances(
    queries: np.ndarray, reference: np.ndarray, chunk: int = 256
) -> np.ndarray:
    """Distance from each query window to its nearest reference window (the copy check).

    Args:
        queries: ``(N, W, K)`` windows (generated, or held-out real).
        reference: ``(M, W, K)`` training windows.
        chunk: queries per block (bounds memory at ``chunk × M`` floats).

    Returns:
        ``(N,)`` root-mean-square per frame of the Euclidean distance to the nearest reference
        window: ``min_m sqrt(Σ_{w,k} (q − r_m)² / W)``.
    """
    q = np.asarray(queries, dtype=np.float64)
    r = np.asarray(reference, dtype=np.float64)
    if q.ndim != 3 or r.ndim != 3 or q.shape[1:] != r.shape[1:] or r.shape[0] == 0:
        raise ValueError(
            f"queries (N, W, K) and reference (M >= 1, W, K); got {q.shape}, {r.shape}"
        )
    width = q.shape[1]
    qf, rf = q.reshape(q.shape[0], -1), r.reshape(r.shape[0], -1)
    rn = (rf**2).sum(1)
    out = np.empty(q.shape[0])
    for s in range(0, q.shape[0], chunk):
        block = qf[s : s + chunk]
        d2 = (block**2).sum(1)[:, None] + rn[None] - 2.0 * block @ rf.T
        out[s : s + chunk] = np.sqrt(np.clip(d2.min(1), 0.0, None) / width)
    return out


# ---- uncertainty -----------------------------------------------------------------------------
def bootstrap_ci(
    values: np.ndarray, n_boot: int = 2000, level: float = 0.95, seed: int = 0
) -> tuple[float, float, float]:
    """Mean and percentile bootstrap interval of a ``(clips, seeds)`` table of a metric.

    Clips and seeds are resampled independently with replacement (two-way bootstrap), so
    the interval covers both which clips were held out and which seeds were drawn. A
    ``(runs, clips, seeds)`` table (the same clips and seeds scored for several training
    runs) is resampled three ways, so the interval also covers which training seed was drawn.
    NaN cells (e.g. a generation that blew up) are dropped from each resampled mean.

    Args:
        values: ``(C, S)`` metric of clip ``c`` generated with seed ``s`` (or ``(C,)``), or
            ``(R, C, S)`` with a leading axis of training runs.
        n_boot: bootstrap resamples.
        level: coverage of the interval.
        seed: seed of the resampling.

    Returns:
        ``(mean, low, high)``; with one clip and one seed the interval is the point.
    """
    v = np.asarray(values, dtype=np.float64)
    v = v[:, None] if v.ndim == 1 else v
    if v.ndim not in (2, 3) or v.size == 0:
        raise ValueError(
            f"values must be (clips, seeds) or (runs, clips, seeds) and non-empty; "
            f"got shape {v.shape}"
        )
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    mean = float(np.nanmean(v)) if np.isfinite(v).any() else float("nan")
    rng = np.random.default_rng(seed)
    lead = () if v.ndim == 2 else (rng.integers(0, v.shape[0], size=(n_boot, v.shape[0])),)
    c, s = v.shape[-2:]
    ci = rng.integers(0, c, size=(n_boot, c))
    si = rng.integers(0, s, size=(n_boot, s))
    if lead:
        picked = v[lead[0][:, :, None, None], ci[:, None, :, None], si[:, None, None, :]]
    else:
        picked = v[ci[:, :, None], si[:, None, :]]  # (n_boot, C, S)
    axes = tuple(range(1, picked.ndim))
    with np.errstate(invalid="ignore"):
        finite = np.isfinite(picked)
        counts = finite.sum(axes)
        sums = np.where(finite, picked, 0.0).sum(axes)
    means = sums[counts > 0] / counts[counts > 0]
    if means.size == 0:
        return mean, float("nan"), float("nan")
    alpha = (1 - level) / 2
    low, high = np.quantile(means, [alpha, 1 - alpha])
    return mean, float(low), float(high)
