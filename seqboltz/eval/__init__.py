"""Evaluation that tells the truth: exact ``log Z`` for small models, AIS otherwise."""

from seqboltz.eval._partition import (
    AISResult,
    ais_log_partition,
    default_betas,
    exact_log_partition,
    log_likelihood,
)

__all__ = [
    "AISResult",
    "ais_log_partition",
    "default_betas",
    "exact_log_partition",
    "log_likelihood",
]
