"""The standard health service (``grpc.health.v1``), with watchers that end at shutdown.

grpcio-health-checking's ``Watch`` streams never end by themselves, so a server stopping with
an open ``Watch`` waits its whole grace period for them. :meth:`ClosingHealthServicer.close`
turns every service NOT_SERVING (as ``enter_graceful_shutdown`` does), sends that to each
watcher and ends its stream at once (status OK), so shutdown waits only for real work.
"""

from __future__ import annotations

import asyncio
import contextlib

import grpc
from grpc_health.v1 import health, health_pb2

__all__ = ["ClosingHealthServicer"]


class ClosingHealthServicer(health.aio.HealthServicer):
    """``grpc_health``'s asyncio servicer whose ``Watch`` streams end on :meth:`close`."""

    def __init__(self) -> None:
        super().__init__()
        self._closing = asyncio.Event()

    async def Watch(
        self, request: health_pb2.HealthCheckRequest, context: grpc.aio.ServicerContext
    ) -> None:
        watch = asyncio.ensure_future(super().Watch(request, context))
        closing = asyncio.ensure_future(self._closing.wait())
        try:
            await asyncio.wait({watch, closing}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (watch, closing):
                task.cancel()
            await asyncio.gather(watch, closing, return_exceptions=True)
        if self._closing.is_set():  # the last word, whether or not the watcher sent it yet
            with contextlib.suppress(Exception):
                await context.write(
                    health_pb2.HealthCheckResponse(
                        status=health_pb2.HealthCheckResponse.NOT_SERVING
                    )
                )

    async def close(self) -> None:
        """Every service NOT_SERVING from now on; open ``Watch`` streams get it and end."""
        await self.enter_graceful_shutdown()
        self._closing.set()
