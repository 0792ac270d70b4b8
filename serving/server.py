"""``seqboltz serve``: the grpc.aio generation server.

Health (``grpc.health.v1``) and reflection are always on. With ``--token`` (or
``$SEQBOLTZ_TOKEN``) every Generation call needs ``authorization: Bearer <token>``; with
``--tls-cert/--tls-key`` the port speaks TLS, and ``--tls-client-ca`` also requires client
certificates. SIGTERM/SIGINT: health turns NOT_SERVING, new streams are refused, running
streams end within ``--grace`` seconds with UNAVAILABLE and the frame to resume from, and the
process exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import hmac
import json
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from seqboltz.v1 import generation_pb2 as pb
from seqboltz.v1 import generation_pb2_grpc as pb_grpc
from serving.config import parse_settings
from serving.metrics import Metrics
from serving.repository import ModelRepository
from serving.servicer import GenerationServicer, Limits

__all__ = ["ServerConfig", "main", "run_server"]

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["Generation"].full_name
log = logging.getLogger("seqboltz.serving")


@dataclass
class ServerConfig:
    models: str | None = None
    host: str = "127.0.0.1"
    port: int = 50051
    metrics_port: int | None = None
    metrics_host: str = "127.0.0.1"
    token: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_client_ca: str | None = None
    grace: float = 5.0
    reload_interval: float = 1.0
    max_message_bytes: int = 4 * 1024 * 1024
    limits: Limits = field(default_factory=Limits)
    threads: int = 1


class _TokenAuth(grpc.aio.ServerInterceptor):
    """Bearer-token check on the Generation service (health and reflection stay open)."""

    def __init__(self, token: str) -> None:
        self._expected = f"Bearer {token}".encode()

        async def deny(request: Any, context: grpc.aio.ServicerContext) -> None:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong token")

        self._deny_unary = grpc.unary_unary_rpc_method_handler(deny)
        self._deny_stream = grpc.unary_stream_rpc_method_handler(deny)
        self._deny_bidi = grpc.stream_stream_rpc_method_handler(deny)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        if not details.method.startswith(f"/{SERVICE_NAME}/"):
            return await continuation(details)
        metadata = dict(details.invocation_metadata or ())
        given = metadata.get("authorization", "")
        given_bytes = given.encode() if isinstance(given, str) else bytes(given)
        if hmac.compare_digest(given_bytes, self._expected):
            return await continuation(details)
        if details.method.endswith("/Steer"):
            return self._deny_bidi
        if details.method.endswith("/Generate"):
            return self._deny_stream
        return self._deny_unary


def _credentials(config: ServerConfig) -> grpc.ServerCredentials | None:
    if not config.tls_cert:
        return None
    if not config.tls_key:
        raise ValueError("--tls-cert needs --tls-key")
    pair = (Path(config.tls_key).read_bytes(), Path(config.tls_cert).read_bytes())
    if config.tls_client_ca:
        return grpc.ssl_server_credentials(
            [pair],
            root_certificates=Path(config.tls_client_ca).read_bytes(),
            require_client_auth=True,
        )
    return grpc.ssl_server_credentials([pair])


async def run_server(config: ServerConfig, ready: Callable[[dict[str, Any]], None]) -> int:
    """Serve until SIGTERM/SIGINT; ``ready`` gets the bound address once listening."""
    repository = ModelRepository(config.models, threads=config.threads)
    metrics = Metrics()
    servicer = GenerationServicer(repository, config.limits, metrics)
    interceptors = [_TokenAuth(config.token)] if config.token else []
    server = grpc.aio.server(
        interceptors=interceptors,
        options=[
            ("grpc.max_receive_message_length", config.max_message_bytes),
            ("grpc.max_send_message_length", config.max_message_bytes),
            ("grpc.so_reuseport", 0),  # a taken port is an error, not a second listener
        ],
    )
    pb_grpc.add_GenerationServicer_to_server(servicer, server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (
            SERVICE_NAME,
            health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
            reflection.SERVICE_NAME,
        ),
        server,
    )
    address = f"{config.host}:{config.port}"
    credentials = _credentials(config)
    port = (
        server.add_secure_port(address, credentials)
        if credentials
        else server.add_insecure_port(address)
    )
    await server.start()
    for name in ("", SERVICE_NAME):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    metrics_port = (
        metrics.serve_http(config.metrics_port, config.metrics_host)
        if config.metrics_port is not None
        else None
    )
    watcher = asyncio.get_running_loop().create_task(repository.watch(config.reload_interval))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    ready(
        {
            "address": f"{config.host}:{port}",
            "port": port,
            "metrics_port": metrics_port,
            "models": sorted(repository.models),
            "tls": credentials is not None,
        }
    )
    await stop.wait()
    log.info("shutting down: refusing new streams, %d running", servicer.active)
    for name in ("", SERVICE_NAME):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
    servicer.draining.set()
    watcher.cancel()
    await server.stop(config.grace)
    return 0


class _JsonFormatter(logging.Formatter):
    """One JSON object per log line (time, level, logger, message, exception)."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="seqboltz serve", description=__doc__.split("\n\n")[0])
    p.add_argument("--models", help="folder of .onnx artifacts (default: the embedded model)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=50051, help="0: a free port (printed)")
    p.add_argument("--metrics-port", type=int, help="Prometheus /metrics on this port")
    p.add_argument("--metrics-host", default="127.0.0.1", help="0.0.0.0: scrapeable by other hosts")
    p.add_argument("--token", default=os.environ.get("SEQBOLTZ_TOKEN"), help="bearer token")
    p.add_argument("--tls-cert")
    p.add_argument("--tls-key")
    p.add_argument("--tls-client-ca", help="require client certificates signed by this CA")
    p.add_argument("--grace", type=float, default=5.0, help="seconds for streams at shutdown")
    p.add_argument("--max-streams", type=int, default=Limits.max_streams)
    p.add_argument("--max-frames", type=int, default=Limits.max_frames)
    p.add_argument("--max-batch", type=int, default=Limits.max_batch, help="1: no batching")
    p.add_argument("--max-wait-ms", type=float, default=Limits.max_wait * 1000)
    p.add_argument("--threads", type=int, default=1, help="onnxruntime threads per model")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``seqboltz serve``; prints one JSON line when listening."""
    args = parse_settings(_parser(), argv)  # flags > SEQBOLTZ_* variables > --config file
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_JsonFormatter())
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)
    config = ServerConfig(
        models=args.models,
        host=args.host,
        port=args.port,
        metrics_port=args.metrics_port,
        metrics_host=args.metrics_host,
        token=args.token,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        tls_client_ca=args.tls_client_ca,
        grace=args.grace,
        limits=Limits(
            max_streams=args.max_streams,
            max_frames=args.max_frames,
            max_batch=args.max_batch,
            max_wait=args.max_wait_ms / 1000,
        ),
        threads=args.threads,
    )

    def ready(info: dict[str, Any]) -> None:
        print(json.dumps({"listening": info}), flush=True)

    try:
        return asyncio.run(run_server(config, ready))
    except (FileNotFoundError, ValueError, RuntimeError) as exc:  # bad folder, TLS files, port
        print(f"seqboltz serve: error: {exc}", file=sys.stderr)
        return 2
