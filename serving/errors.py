"""The one place where errors become gRPC status codes. No traceback reaches a client."""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import grpc

from seqboltz.runtime import ArtifactError

__all__ = ["ServiceError", "grpc_errors", "grpc_stream_errors", "status_for"]

log = logging.getLogger("seqboltz.serving")
T = TypeVar("T")


class ServiceError(Exception):
    """An error with the status code the client should get."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def status_for(exc: BaseException) -> tuple[grpc.StatusCode, str]:
    """``(code, client-facing message)`` of an exception raised while serving."""
    if isinstance(exc, ServiceError):
        return exc.code, exc.message
    if isinstance(exc, ArtifactError | ValueError):
        return grpc.StatusCode.INVALID_ARGUMENT, str(exc)
    if isinstance(exc, KeyError):
        return grpc.StatusCode.NOT_FOUND, str(exc.args[0]) if exc.args else "not found"
    log.exception("internal error while serving")
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
