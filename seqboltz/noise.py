"""The one rule that turns a seed into sampling noise (numpy only; no torch).

Sequence ``i`` of a request with seed ``S`` draws from its own stream,
``numpy.random.Generator(PCG64(SeedSequence([S, i])))``, in a fixed order: frame, then
Gibbs step, then hidden unit. Torch generation, the exported runtime, offline synthesis and
the service all use these functions, so a sequence's frames never depend on what else shares
its batch, its shard or its machine.

Each uniform is one 64-bit draw of the PCG64 stream (``Generator.random`` in float64), so the
noise of frame ``t`` starts at draw ``t·k·H``. :func:`sequence_rng` with ``frame=t`` jumps
there with ``PCG64.advance`` (O(log t) multiplications, microseconds for any ``t``): a stream
can be rebuilt at any frame without replaying the frames before it.
"""

from __future__ import annotations

import numpy as np

from seqboltz.errors import BadRequest

__all__ = ["gibbs_uniforms", "sequence_rng"]


def sequence_rng(
    seed: int, index: int, frame: int = 0, gibbs_steps: int = 0, n_hidden: int = 0
) -> np.random.Generator:
    """The noise stream of sequence ``index`` of a request with seed ``seed`` (both ≥ 0).

    Args:
        seed: the request's seed ``S``.
        index: the sequence's index ``i`` in the request.
        frame: start at this frame's noise, as if ``frame`` frames of
            ``gibbs_steps × n_hidden`` uniforms had been drawn (0: the stream's start).
        gibbs_steps: ``k``, uniforms per frame = ``k × H`` (only with ``frame``).
        n_hidden: ``H``.

    >>> a = sequence_rng(7, 0)
    >>> _ = gibbs_uniforms(a, 5, 3, 4)
    >>> b = sequence_rng(7, 0, frame=5, gibbs_steps=3, n_hidden=4)
    >>> bool((gibbs_uniforms(a, 1, 3, 4) == gibbs_uniforms(b, 1, 3, 4)).all())
    True
    """
    if seed < 0 or index < 0 or frame < 0:
        raise BadRequest(
            f"seed, sequence index and frame must be >= 0, got {seed}, {index} and {frame}"
        )
    bits = np.random.PCG64(np.random.SeedSequence([seed, index]))
    if frame:
        if gibbs_steps < 1 or n_hidden < 1:
            raise BadRequest("jumping to a frame needs gibbs_steps and n_hidden >= 1")
        bits.advance(frame * gibbs_steps * n_hidden)  # one 64-bit draw per float64 uniform
    return np.random.Generator(bits)


def gibbs_uniforms(
    rng: np.random.Generator, n_frames: int, gibbs_steps: int, n_hidden: int
) -> np.ndarray:
    """The next ``n_frames`` frames' uniforms from ``rng``, ``(n_frames, gibbs_steps, n_hidden)``.

    Float64 in [0, 1). Drawing frames one call at a time or all at once gives the same numbers.
    """
    return rng.random((n_frames, gibbs_steps, n_hidden))
