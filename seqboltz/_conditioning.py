"""The one rule for per-frame conditioning (style, controls) of sequence generation (numpy only).

Torch generation (:meth:`seqboltz.models.SequenceRBM.generate`) and the runtime's frame loop
(:class:`seqboltz.runtime.FrameStream`) both read style and controls through
:func:`per_frame`, so they accept the same shapes and refuse the same mistakes.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from seqboltz.errors import BadRequest

__all__ = ["per_frame"]


def per_frame(
    x: Any,
    size: int,
    name: str,
    batch: int,
    n_frames: int | None = None,
    owner: str = "this model",
) -> np.ndarray | None:
    """Conditioning of every sequence and frame, ``(B, T, size)`` float64, or ``None``.

    Args:
        x: ``None``, ``(size,)`` shared by every sequence, ``(B, size)`` per sequence, or
            ``(B, T, size)`` per frame (the value may change mid-sequence).
        size: the model's width for it; ``0`` means the model takes none.
        name: ``"style"`` or ``"controls"`` (for messages).
        batch: ``B``.
        n_frames: ``T`` that a per-frame array must have; ``None``: any ``T ≥ 1``.
        owner: who takes it, for messages (``"model 'motion'"``).

    Returns:
        ``None`` when the model takes none; otherwise a read-only ``(B, T, size)`` view with
        ``T = n_frames`` (or the array's ``T``, or 1 for a constant when ``n_frames`` is None).

    Raises:
        BadRequest: given to a model that takes none, missing, of another shape, or
            not finite.
    """
    if size == 0:
        if x is not None and np.size(x):
            raise BadRequest(f"{owner} takes no {name}")
        return None
    if x is None:
        raise BadRequest(f"{owner} needs {name} of size {size} per sequence")
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim == 1 and arr.shape != (size,):
        raise BadRequest(f"{owner} takes {name} of {size} value(s); got {arr.size}")
    frames = 1 if n_frames is None else n_frames
    if arr.shape == (size,):
        arr = np.broadcast_to(arr, (batch, size))
    if arr.ndim == 2 and arr.shape == (batch, size):
        arr = np.broadcast_to(arr[:, None], (batch, frames, size))
    ok = arr.ndim == 3 and arr.shape[0] == batch and arr.shape[2] == size and arr.shape[1] >= 1
    if not ok or (n_frames is not None and arr.shape[1] != n_frames):
        per = "T" if n_frames is None else str(n_frames)
        raise BadRequest(
            f"{name} must have shape ({size},), ({batch}, {size}) or ({batch}, {per}, {size}); "
            f"got {np.shape(x)}"
        )
    if not np.isfinite(arr).all():
        raise BadRequest(f"{name} contains NaN or infinite values")
    return arr
