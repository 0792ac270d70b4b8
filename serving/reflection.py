"""Server reflection, ``grpc.reflection.v1`` beside ``v1alpha``.

grpcio-reflection ships only ``v1alpha``; current clients (grpcurl, Postman, grpc-js tools) ask
for ``v1`` first. The two protocols have the same messages in another package, so the v1
service here re-encodes each request as v1alpha, lets grpcio-reflection's servicer answer it,
and re-encodes the answer. The v1 messages come from the vendored
``proto/seqboltz/v1/grpc_reflection_v1.proto`` (built by ``python -m serving.codegen``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from typing import Any

import grpc
from grpc_reflection.v1alpha import reflection
from grpc_reflection.v1alpha import reflection_pb2 as alpha_pb2

from seqboltz.v1 import grpc_reflection_v1_pb2 as v1_pb2
from seqboltz.v1 import grpc_reflection_v1_pb2_grpc as v1_grpc

__all__ = ["V1ALPHA_SERVICE_NAME", "V1_SERVICE_NAME", "enable_reflection"]

V1_SERVICE_NAME = v1_pb2.DESCRIPTOR.services_by_name["ServerReflection"].full_name
V1ALPHA_SERVICE_NAME = reflection.SERVICE_NAME


class _ReflectionV1(v1_grpc.ServerReflectionServicer):
    """``grpc.reflection.v1.ServerReflection`` answered by the v1alpha implementation."""

    def __init__(self, service_names: Iterable[str]) -> None:
        self._alpha = reflection.aio.ReflectionServicer(tuple(service_names))

    async def ServerReflectionInfo(
        self,
        request_iterator: AsyncIterator[v1_pb2.ServerReflectionRequest],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[v1_pb2.ServerReflectionResponse]:
        async def as_alpha() -> AsyncIterator[Any]:
            async for request in request_iterator:
                yield alpha_pb2.ServerReflectionRequest.FromString(request.SerializeToString())

        async for answer in self._alpha.ServerReflectionInfo(as_alpha(), context):
            yield v1_pb2.ServerReflectionResponse.FromString(answer.SerializeToString())


def enable_reflection(service_names: Iterable[str], server: grpc.aio.Server) -> None:
    """Serve reflection v1 and v1alpha on ``server`` for ``service_names`` (both reflection
    services are added to the list)."""
    names = (*service_names, V1_SERVICE_NAME, V1ALPHA_SERVICE_NAME)
    reflection.enable_server_reflection(names, server)
    v1_grpc.add_ServerReflectionServicer_to_server(_ReflectionV1(names), server)
