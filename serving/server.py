"""``seqboltz serve``: the grpc.aio generation server.

Health (``grpc.health.v1``) and reflection (``grpc.reflection.v1`` and ``v1alpha``) are always
on. With ``--token`` (or ``$SEQBOLTZ_TOKEN``) every Generation call needs
``authorization: Bearer <token>`` (the scheme in any letter case); with
``--tls-cert/--tls-key`` the port speaks TLS, and ``--tls-client-ca`` also requires client
certificates. SIGTERM/SIGINT: health turns NOT_SERVING, new streams are refused, running
streams end within ``--grace`` seconds with UNAVAILABLE (the client resumes on another
replica with the last chunk's resume token), and the process exits 0. ``--max-replay-frames``
caps a resume by ``start_frame`` without a token, which recomputes the frames before it.
"""

from __future__ import annotations

import argparse
import asyncio
import hmac
import json
import logging
import os
import signal
import ssl
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from seqboltz.errors import BadRequest
from seqboltz.v1 import generation_pb2 as pb
from seqboltz.v1 import generation_pb2_grpc as pb_grpc
from serving import grpc_log
from serving.config import parse_settings
from serving.health import ClosingHealthServicer
from serving.metrics import Metrics
from serving.reflection import enable_reflection
from serving.repository import ModelRepository
from serving.servicer import GenerationServicer, Limits

__all__ = ["ServerConfig", "StartupError", "main", "run_server"]

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


class StartupError(Exception):
    """The server cannot start as configured (the message is the one line to print)."""


def _bearer_token(value: str | bytes) -> bytes | None:
    """The token of an ``authorization`` value ``<scheme> <token>`` whose scheme is ``Bearer``
    in any letter case (RFC 7235 §2.1), else ``None``."""
    raw = value.encode() if isinstance(value, str) else bytes(value)
    scheme, _, token = raw.strip().partition(b" ")
    if scheme.lower() != b"bearer":
        return None
    return token.strip()


class _TokenAuth(grpc.aio.ServerInterceptor):
    """Bearer-token check on the Generation service (health and reflection stay open)."""

    def __init__(self, token: str) -> None:
        self._expected = token.encode()

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
        given = _bearer_token(metadata.get("authorization", ""))
        if given is not None and hmac.compare_digest(given, self._expected):
            return await continuation(details)
        if details.method.endswith("/Steer"):
            return self._deny_bidi
        if details.method.endswith(("/Generate", "/Speak")):
            return self._deny_stream
        return self._deny_unary


def _check_tls(cert: str, key: str, client_ca: str | None) -> None:
    """Load the files the way an SSL server would, so that a key that does not belong to the
    certificate (or an unreadable file) is named before gRPC reports "Failed to bind"."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(cert, key)
    except ssl.SSLError as exc:
        reason = exc.reason or str(exc)
        if "MISMATCH" in str(reason).upper():
            raise StartupError(
                f"--tls-key {key} is not the private key of --tls-cert {cert} ({reason})"
            ) from None
        raise StartupError(
            f"--tls-cert {cert} / --tls-key {key}: not a PEM certificate and key ({reason})"
        ) from None
    except OSError as exc:
        raise StartupError(f"TLS files: {exc}") from None
    if client_ca:
        try:
            context.load_verify_locations(client_ca)
        except (ssl.SSLError, OSError) as exc:
            raise StartupError(f"--tls-client-ca {client_ca}: {exc}") from None


def _credentials(config: ServerConfig) -> grpc.ServerCredentials | None:
    if not config.tls_cert:
        return None
    if not config.tls_key:
        raise StartupError("--tls-cert needs --tls-key")
    _check_tls(config.tls_cert, config.tls_key, config.tls_client_ca)
    pair = (Path(config.tls_key).read_bytes(), Path(config.tls_cert).read_bytes())
    if config.tls_client_ca:
        return grpc.ssl_server_credentials(
            [pair],
            root_certificates=Path(config.tls_client_ca).read_bytes(),
            require_client_auth=True,
        )
    return grpc.ssl_server_credentials([pair])


async def run_server(config: ServerConfig, ready: Callable[[dict[str, Any]], None]) -> int:
    """Serve until SIGTERM/SIGINT; ``ready`` gets the bound address once listening.

    Raises:
        StartupError: TLS files that do not fit, a taken port (gRPC or metrics), no model.
    """
    credentials = _credentials(config)
    repository = ModelRepository(config.models, threads=config.threads)
    metrics = Metrics()
    metrics_port = None
    if config.metrics_port is not None:
        try:
            metrics_port = metrics.serve_http(config.metrics_port, config.metrics_host)
        except OSError as exc:
            where = f"{config.metrics_host}:{config.metrics_port}"
            raise StartupError(f"cannot serve metrics on {where}: {exc.strerror or exc}") from None
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
    health_servicer = ClosingHealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    enable_reflection(
        (SERVICE_NAME, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name), server
    )
    address = f"{config.host}:{config.port}"
    try:
        port = (
            server.add_secure_port(address, credentials)
            if credentials
            else server.add_insecure_port(address)
        )
    except RuntimeError as exc:  # grpc: "Failed to bind to address ..."
        raise StartupError(f"cannot listen on {address}: {exc}") from None
    await server.start()
    for name in ("", SERVICE_NAME):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
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
    await health_servicer.close()  # NOT_SERVING; health watchers end now, not at the grace
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


def positive_int(text: str) -> int:
    """An argparse type: an integer >= 1 (stream, frame, batch and thread limits)."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text}")
    return value


def nonnegative_int(text: str) -> int:
    """An argparse type: an integer >= 0 (``--max-replay-frames 0`` allows no replay)."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text}")
    return value


def nonnegative_float(text: str) -> float:
    """An argparse type: a finite number >= 0."""
    value = float(text)
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text}")
    return value


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="seqboltz serve", description=__doc__.split("\n\n")[0])
    p.add_argument("--models", help="folder of .onnx artifacts (default: the embedded models)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=50051, help="0: a free port (printed)")
    p.add_argument("--metrics-port", type=int, help="Prometheus /metrics on this port")
    p.add_argument("--metrics-host", default="127.0.0.1", help="0.0.0.0: scrapeable by other hosts")
    p.add_argument("--token", default=os.environ.get("SEQBOLTZ_TOKEN"), help="bearer token")
    p.add_argument("--tls-cert")
    p.add_argument("--tls-key")
    p.add_argument("--tls-client-ca", help="require client certificates signed by this CA")
    p.add_argument(
        "--grace", type=nonnegative_float, default=5.0, help="seconds for streams at shutdown"
    )
    p.add_argument("--max-streams", type=positive_int, default=Limits.max_streams)
    p.add_argument("--max-frames", type=positive_int, default=Limits.max_frames)
    p.add_argument(
        "--max-replay-frames",
        type=nonnegative_int,
        default=Limits.max_replay_frames,
        help="most frames a resume by start_frame alone may recompute",
    )
    p.add_argument(
        "--max-batch", type=positive_int, default=Limits.max_batch, help="1: no batching"
    )
    p.add_argument("--max-wait-ms", type=nonnegative_float, default=Limits.max_wait * 1000)
    p.add_argument("--threads", type=positive_int, default=1, help="onnxruntime threads per model")
    p.add_argument(
        "--grpc-log",
        action="store_true",
        help="let gRPC core write its own log lines (handshake failures etc.) to stderr; off "
        "by default so that stderr is one JSON object per line (GRPC_VERBOSITY is honoured)",
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``seqboltz serve``; prints one JSON line when listening."""
    args = parse_settings(_parser(), argv)  # flags > SEQBOLTZ_* variables > --config file
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_JsonFormatter())
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)
    if args.grpc_log and grpc_log.GRPC_LOG_SET_BY_US:
        log.warning(
            "grpc_log from the config file comes too late (gRPC is already loaded); "
            "pass --grpc-log or set SEQBOLTZ_GRPC_LOG=1"
        )
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
            max_replay_frames=args.max_replay_frames,
            max_batch=args.max_batch,
            max_wait=args.max_wait_ms / 1000,
        ),
        threads=args.threads,
    )

    def ready(info: dict[str, Any]) -> None:
        print(json.dumps({"listening": info}), flush=True)

    try:
        return asyncio.run(run_server(config, ready))
    except (StartupError, FileNotFoundError, BadRequest) as exc:  # TLS, ports, model folder
        print(f"seqboltz serve: error: {exc}", file=sys.stderr)
        return 2
