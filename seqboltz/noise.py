"""The one rule that turns a seed into sampling noise (numpy only; no torch).

Sequence ``i`` of a request with seed ``S`` draws from its own stream,
``numpy.random.Generator(PCG64(SeedSequence([S, i])))``, in a fixed order: frame, then
Gibbs step, then hidden unit. Torch generation, the exported runtime, offline synthesis and
the service all use these functions, so a sequence's frames never depend on what else shares
its batch, its shard or its machine.
"""

from __future__ import annotations

import numpy as np

__all__ = ["gibbs_uniforms", "sequence_rng"]


def sequence_rng(seed: int, index: int) -> np.random.Generator:
    """The noise stream of sequence ``index`` of a request with seed ``seed`` (both ≥ 0)."""
    if seed < 0 or index < 0:
        raise ValueError(f"seed and sequence index must be >= 0, got {seed} and {index}")
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, index])))


def gibbs_uniforms(
    rng: np.random.Generator, n_frames: int, gibbs_steps: int, n_hidden: int
) -> np.ndarray:
    """The next ``n_frames`` frames' uniforms from ``rng``, ``(n_frames, gibbs_steps, n_hidden)``.

    Float64 in [0, 1). Drawing frames one call at a time or all at once gives the same numbers.
    """
    return rng.random((n_frames, gibbs_steps, n_hidden))
