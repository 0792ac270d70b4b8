"""Evaluation that tells the truth: exact ``log Z`` for small models, AIS otherwise, and the
motion-quality metrics of generated sequences.

The motion metrics (:mod:`seqboltz.eval._motion_metrics`, numpy only) import without torch;
the likelihood tools (exact ``log Z``, AIS) load torch on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from seqboltz.eval._motion_metrics import (
    FrechetReference,
    body_frame,
    bootstrap_ci,
    foot_joints,
    foot_skating,
    frechet_distance,
    mean_pairwise_distance,
    nearest_window_distances,
    npss,
    pose_jitter,
    pose_spread,
    pose_velocity_features,
    power_spectra,
    ps_entropy,
    ps_kl,
    sliding_windows,
    std_within,
)

if TYPE_CHECKING:
    from seqboltz.eval._partition import (
        AISResult,
        ais_log_partition,
        default_betas,
        exact_log_partition,
        log_likelihood,
    )

_PARTITION = (
    "AISResult",
    "ais_log_partition",
    "default_betas",
    "exact_log_partition",
    "log_likelihood",
)

__all__ = [
    "AISResult",
    "FrechetReference",
    "ais_log_partition",
    "body_frame",
    "bootstrap_ci",
    "default_betas",
    "exact_log_partition",
    "foot_joints",
    "foot_skating",
    "frechet_distance",
    "log_likelihood",
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


def __getattr__(name: str) -> Any:
    """Load the torch-based likelihood tools on first use."""
    if name in _PARTITION:
        from seqboltz.eval import _partition

        return getattr(_partition, name)
    raise AttributeError(f"module 'seqboltz.eval' has no attribute {name!r}")
