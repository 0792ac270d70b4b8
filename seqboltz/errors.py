"""The errors seqboltz raises on purpose, each with the reason in its message (no torch, no grpc).

They are defined once here and mapped to gRPC status codes in one place
(:mod:`serving.errors`): a caller's mistake is :class:`BadRequest`, an unknown model
:class:`ModelNotFound`, a request over a server limit :class:`LimitExceeded`, a sampler that
produced NaN or infinity :class:`ModelDiverged`, a model not ready yet or a server shutting down
:class:`Unavailable` (:class:`ModelLoading`), a resume token this server cannot continue
exactly :class:`ResumeMismatch`. Any other exception is a bug.

>>> try:
...     raise ModelDiverged(2724, model="motion")
... except SeqboltzError as exc:
...     print(exc)
model diverged at frame 2724 ('motion' produced NaN or infinity)
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "BadRequest",
    "LimitExceeded",
    "ModelDiverged",
    "ModelLoading",
    "ModelNotFound",
    "ResumeMismatch",
    "SeqboltzError",
    "Unavailable",
]


class SeqboltzError(Exception):
    """Base of the errors above; ``str(exc)`` is the one line to show a user or a client."""


class BadRequest(SeqboltzError, ValueError):
    """Input that cannot be used (shape, value, option), with what and where.

    A ``ValueError`` too, so callers that catch ``ValueError`` keep working.
    """


class ModelNotFound(SeqboltzError, LookupError):
    """No model of that name (the message lists the ones there are)."""


class LimitExceeded(SeqboltzError):
    """A request over one of the server's limits (streams, frames, message size)."""


class Unavailable(SeqboltzError):
    """Temporarily unable to serve (shutting down); retrying elsewhere or later may work."""


class ModelLoading(Unavailable):
    """The model's file is there but is still being loaded."""


class ResumeMismatch(SeqboltzError):
    """A stream's saved state (a resume token) made for another model version (sha256) or
    noise rule than this server's: continuing would not give the stream's frames."""


class ModelDiverged(SeqboltzError, ArithmeticError):
    """The sampler produced a non-finite frame; nothing from that frame on is emitted.

    Args:
        frame: index of the first non-finite frame in its sequence (0 = the first generated).
        model: the model's name, for the message.
        rows: rows of the batch that diverged at ``frame`` (empty: not known / one stream).
        sequences: the request's sequence indices of those rows.
    """

    def __init__(
        self,
        frame: int,
        model: str | None = None,
        rows: Sequence[int] = (),
        sequences: Sequence[int] = (),
    ) -> None:
        self.frame = int(frame)
        self.model = model
        self.rows = tuple(int(r) for r in rows)
        self.sequences = tuple(int(s) for s in sequences)
        what = "" if model is None else f" ({model!r} produced NaN or infinity)"
        super().__init__(f"model diverged at frame {self.frame}{what}")

    def __reduce__(
        self,
    ) -> tuple[type[ModelDiverged], tuple[int, str | None, tuple[int, ...], tuple[int, ...]]]:
        """Picklable with its fields (it crosses process pools)."""
        return type(self), (self.frame, self.model, self.rows, self.sequences)
