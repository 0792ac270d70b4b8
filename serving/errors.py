"""The one place where errors become gRPC status codes. No traceback reaches a client.

Only the typed errors of :mod:`seqboltz.errors` carry a status of their own; a built-in
``KeyError`` or ``ValueError`` raised by accident is a bug like any other: INTERNAL to the
client, its traceback in the server log.

=====================  ====================  ========================================
error                  status                meaning
=====================  ====================  ========================================
``BadRequest``         INVALID_ARGUMENT      the request cannot be served as sent
``ModelNotFound``      NOT_FOUND             no model of that name
``LimitExceeded``      RESOURCE_EXHAUSTED    over a server limit
``Unavailable``        UNAVAILABLE           shutting down, or the model still loading
``ResumeMismatch``     FAILED_PRECONDITION   a resume token of another model version or
                                             noise rule (this server cannot continue it)
``ModelDiverged``      INTERNAL              the model produced a NaN/inf frame at N
anything else          INTERNAL              a bug: "internal error (see the server log)"
=====================  ====================  ========================================
"""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import grpc

from seqboltz.errors import (
    BadRequest,
    LimitExceeded,
    ModelDiverged,
    ModelNotFound,
    ResumeMismatch,
    SeqboltzError,
    Unavailable,
)

__all__ = ["STATUS", "grpc_errors", "grpc_stream_errors", "status_for"]

log = logging.getLogger("seqboltz.serving")
T = TypeVar("T")

#: typed error → status code (the first matching class wins)
STATUS: tuple[tuple[type[SeqboltzError], grpc.StatusCode], ...] = (
    (BadRequest, grpc.StatusCode.INVALID_ARGUMENT),
    (ModelNotFound, grpc.StatusCode.NOT_FOUND),
    (LimitExceeded, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (Unavailable, grpc.StatusCode.UNAVAILABLE),
    (ResumeMismatch, grpc.StatusCode.FAILED_PRECONDITION),
    (ModelDiverged, grpc.StatusCode.INTERNAL),
)


def status_for(exc: BaseException) -> tuple[grpc.StatusCode, str]:
    """``(code, client-facing message)`` of an exception raised while serving."""
    for kind, code in STATUS:
        if isinstance(exc, kind):
            if isinstance(exc, ModelDiverged):
                log.warning("stream ended: %s", exc)
            return code, str(exc)
    log.error("internal error while serving", exc_info=exc)
    return grpc.StatusCode.INTERNAL, "internal error (see the server log)"


def grpc_errors(
    handler: Callable[..., Awaitable[T]],
) -> Callable[..., Awaitable[T]]:
    """Unary handlers: map exceptions to a status with :func:`status_for`."""

    @functools.wraps(handler)
    async def wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext) -> T:
        try:
            return await handler(self, request, context)
        except grpc.aio.AbortError:
            raise
        except Exception as exc:
            code, message = status_for(exc)
            await context.abort(code, message)
            raise AssertionError("unreachable") from None

    return wrapper


def grpc_stream_errors(
    handler: Callable[..., AsyncIterator[T]],
) -> Callable[..., AsyncIterator[T]]:
    """Streaming handlers: the same mapping for errors raised while streaming."""

    @functools.wraps(handler)
    async def wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            async for item in handler(self, request, context):
                yield item
        except grpc.aio.AbortError:
            raise
        except Exception as exc:
            code, message = status_for(exc)
            await context.abort(code, message)

    return wrapper
