"""``seqboltz view``: a web page and a small bridge from it to a running generation service.

The bridge (aiohttp, no torch) serves the page and its pinned three.js copy, and forwards the
page's calls to the gRPC service: ``ListModels`` and ``GetModel`` as JSON over HTTP, and one
``Steer`` stream per WebSocket. It turns each standardised motion frame into joint rotations and
translations with the model card's features and skeleton (:class:`~serving.viewer.pose.PoseStream`)
and sends those to the page, which poses a three.js bone hierarchy with them.

Status codes pass through: an HTTP answer carries the service's code name in its JSON body
(``{"code": "NOT_FOUND", "details": …}``) and an HTTP status of the same meaning; a WebSocket
gets ``{"type": "status", "call": …, "code": …, "details": …}`` for every call.

Security: it binds to 127.0.0.1 unless told otherwise; it refuses requests whose ``Host`` is
not one of its own names (DNS rebinding) and browser requests whose ``Origin`` is neither its
own nor allowed with ``--allow-origin``. The bearer token passes through: a request's
``Authorization`` header, else the token the page sends with ``start``, else ``--token`` /
``$SEQBOLTZ_TOKEN`` goes to the service as ``authorization: Bearer …``.

WebSocket messages (JSON), page → bridge::

    {"type": "start", "model": NAME, "seed": S, "style": [..], "frames": CREDIT, "token": T?,
     "resume": RESUME?}                      # RESUME: continue a stream (seed, style: its own)
    {"type": "change", "style": [..]}        # steer the live stream from its next frame on
    {"type": "more", "frames": N}            # more credit (the page asks as it plays)
    {"type": "stop"}

bridge → page::

    {"type": "model", "info": {...}, "skeleton": {...}}
    {"type": "frames", "frames": [{"index": i, "t": [J*3], "q": [J*4]}], "applied": [...],
     "resume": RESUME}
    {"type": "status", "call": "GetModel"|"Steer"|"change", "code": "OK"|..., "details": ...}
    {"type": "end"}

Resume: every ``frames`` message carries the stream's state after its frames, ``RESUME =
{"token": BASE64, "frame": N, "style": [..], "root": {"position": [x, y, z], "heading": h}}``:
the service's :class:`ResumeToken` (the last chunk's, serialised: opaque to the page, and
checked by the service against its model and noise rule) with its next frame index and style
for the page to read, and the body's root position and heading after those frames (the pose
converter's state, which the token does not hold, since the service sends features). A
``start`` with that ``resume`` (on a new WebSocket after a dropped one, or after the service
came back) continues the same stream: the next frames and the joints drawn from them are those
of the unbroken stream. A style change the page sent that ``applied`` had not yet reported is
not in the token; the page sends it again.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import contextlib
import ipaddress
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import grpc
import numpy as np
from aiohttp import WSCloseCode, WSMsgType, web
from google.protobuf.message import DecodeError

from seqboltz.motion import RootState
from seqboltz.v1 import generation_pb2 as pb
from seqboltz.v1 import generation_pb2_grpc as pb_grpc
from serving.viewer.pose import PoseStream, motion_features

__all__ = ["STATIC_DIR", "ViewerConfig", "create_app", "main", "run"]

STATIC_DIR = Path(__file__).parent / "static"
_LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
#: gRPC status → HTTP status of the same meaning
_HTTP_STATUS = {
    "OK": 200,
    "INVALID_ARGUMENT": 400,
    "FAILED_PRECONDITION": 400,
    "OUT_OF_RANGE": 400,
    "UNAUTHENTICATED": 401,
    "PERMISSION_DENIED": 403,
    "NOT_FOUND": 404,
    "RESOURCE_EXHAUSTED": 429,
    "CANCELLED": 499,
    "UNIMPLEMENTED": 501,
    "UNAVAILABLE": 503,
    "DEADLINE_EXCEEDED": 504,
}
_UNARY_TIMEOUT = 10.0
_MAX_CREDIT = 100_000
#: reconnect soon after the service comes back (gRPC's default backoff grows to 120 s), so a
#: page resuming after a service restart waits seconds, not minutes
_CHANNEL_OPTIONS = (
    ("grpc.initial_reconnect_backoff_ms", 250),
    ("grpc.max_reconnect_backoff_ms", 2000),
)


@dataclass
class ViewerConfig:
    """Settings of one bridge.

    Args:
        server: the gRPC service's address ``host:port``.
        host: interface to bind (loopback by default).
        port: HTTP port (0: any free one).
        token: bearer token used when a request brings none.
        allow_origins: extra browser origins allowed besides the bridge's own
            (e.g. ``http://localhost:3000``).
        allow_hosts: extra ``Host`` names the bridge answers to besides loopback and ``host``.
        tls_ca, tls_cert, tls_key: TLS to the service (as ``seqboltz generate``).
    """

    server: str = "127.0.0.1:50051"
    host: str = "127.0.0.1"
    port: int = 8765
    token: str | None = None
    allow_origins: tuple[str, ...] = ()
    allow_hosts: tuple[str, ...] = ()
    tls_ca: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    hosts: frozenset[str] = field(init=False)

    def __post_init__(self) -> None:
        names = set(_LOOPBACK_NAMES) | {self.host.strip("[]")} | set(self.allow_hosts)
        self.hosts = frozenset(n.lower() for n in names if n not in ("0.0.0.0", "::", ""))

    def channel(self) -> grpc.aio.Channel:
        """An asyncio channel to the service (TLS when ``tls_ca`` is set)."""
        if self.tls_ca is None:
            return grpc.aio.insecure_channel(self.server, options=_CHANNEL_OPTIONS)
        creds = grpc.ssl_channel_credentials(
            root_certificates=Path(self.tls_ca).read_bytes(),
            private_key=Path(self.tls_key).read_bytes() if self.tls_key else None,
            certificate_chain=Path(self.tls_cert).read_bytes() if self.tls_cert else None,
        )
        return grpc.aio.secure_channel(self.server, creds, options=_CHANNEL_OPTIONS)


_CONFIG = web.AppKey("config", ViewerConfig)
_STUB = web.AppKey("stub", pb_grpc.GenerationStub)
_CHANNEL = web.AppKey("channel", grpc.aio.Channel)
_SOCKETS = web.AppKey("sockets", set[web.WebSocketResponse])


def _metadata(config: ViewerConfig, header: str | None, token: str | None = None) -> Any:
    """Call metadata carrying the request's bearer token (header, then page, then config)."""
    if header:
        return (("authorization", header),)
    value = token or config.token
    return (("authorization", f"Bearer {value}"),) if value else None


def _status(err: grpc.RpcError) -> tuple[str, str]:
    code = err.code() if hasattr(err, "code") else grpc.StatusCode.UNKNOWN
    details = err.details() if hasattr(err, "details") else str(err)
    return code.name, details or ""


def _error_response(code: str, details: str) -> web.Response:
    return web.json_response({"code": code, "details": details}, status=_HTTP_STATUS.get(code, 502))


@web.middleware
async def _guard(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Refuse unknown ``Host`` names (DNS rebinding) and foreign browser ``Origin`` s."""
    config = request.app[_CONFIG]
    host = (urlsplit(f"//{request.host}").hostname or "").lower()
    if host not in config.hosts:
        return _error_response(
            "PERMISSION_DENIED", f"host {request.host!r} is not one of this viewer's names"
        )
    origin = request.headers.get("Origin")
    if origin is not None and origin not in config.allow_origins:
        parts = urlsplit(origin)
        same = parts.scheme == request.scheme and parts.netloc.lower() == request.host.lower()
        if not same:
            return _error_response(
                "PERMISSION_DENIED",
                f"origin {origin!r} is not allowed (start the viewer with --allow-origin)",
            )
    return await handler(request)


async def _index(request: web.Request) -> web.StreamResponse:
    return web.FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-store"})


async def _config(request: web.Request) -> web.Response:
    return web.json_response({"server": request.app[_CONFIG].server})


def _model_json(info: pb.ModelInfo) -> dict[str, Any]:
    card = json.loads(info.card_json) if info.card_json else {}
    style = (card.get("conditioning") or {}).get("style") or {}
    return {
        "name": info.name,
        "kind": info.kind,
        "domain": info.domain,
        "frame_rate": info.frame_rate,
        "frame_size": info.frame_size,
        "order": info.order,
        "style_size": info.style_size,
        "style_meaning": style.get("meaning", ""),
        "style_stats": style.get("stats"),
    }


async def _models(request: web.Request) -> web.Response:
    config = request.app[_CONFIG]
    try:
        reply = await request.app[_STUB].ListModels(
            pb.ListModelsRequest(),
            metadata=_metadata(config, request.headers.get("Authorization")),
            timeout=_UNARY_TIMEOUT,
        )
    except grpc.RpcError as err:
        return _error_response(*_status(err))
    return web.json_response(
        {"code": "OK", "server": config.server, "models": [_model_json(m) for m in reply.models]}
    )


async def _model(request: web.Request) -> web.Response:
    config = request.app[_CONFIG]
    try:
        info = await request.app[_STUB].GetModel(
            pb.GetModelRequest(name=request.match_info["name"]),
            metadata=_metadata(config, request.headers.get("Authorization")),
            timeout=_UNARY_TIMEOUT,
        )
    except grpc.RpcError as err:
        return _error_response(*_status(err))
    body = {"code": "OK", "info": _model_json(info)}
    try:
        body["skeleton"] = PoseStream.from_card(json.loads(info.card_json)).skeleton_json()
    except ValueError as err:
        return _error_response("FAILED_PRECONDITION", str(err))
    return web.json_response(body)


def _floats(value: Any, what: str) -> list[float]:
    if not isinstance(value, list) or not all(
        isinstance(v, int | float) and not isinstance(v, bool) and np.isfinite(v) for v in value
    ):
        raise ValueError(f"{what} must be a list of finite numbers, got {value!r}")
    return [float(v) for v in value]


def _count(value: Any, what: str, lo: int, hi: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        raise ValueError(f"{what} must be an integer in [{lo}, {hi}], got {value!r}")
    return value


def _resume_json(token: pb.ResumeToken, root: RootState) -> dict[str, Any]:
    """The page's copy of a stream's state (see the module): the token, opaque, and what the
    page reads of it, with the body's root after the same frames."""
    return {
        "token": base64.b64encode(token.SerializeToString()).decode("ascii"),
        "frame": int(token.frame),
        "style": list(token.style),
        "root": {"position": list(root.position), "heading": root.heading},
    }


def _parse_resume(value: Any) -> tuple[pb.ResumeToken, RootState]:
    """A page's ``resume`` back into a token and a root state (``ValueError``: one line)."""
    if not isinstance(value, dict) or not isinstance(value.get("token"), str):
        raise ValueError(
            "resume must be the object a frames message carried, with its token string"
        )
    try:
        token = pb.ResumeToken.FromString(base64.b64decode(value["token"], validate=True))
    except (binascii.Error, DecodeError) as err:
        raise ValueError(f"resume.token is not a resume token: {err}") from None
    root = value.get("root")
    if not isinstance(root, dict):
        raise ValueError(
            f"resume.root must be {{'position': [x, y, z], 'heading': h}}, got {root!r}"
        )
    position = _floats(root.get("position"), "resume.root.position")
    if len(position) != 3:
        raise ValueError(f"resume.root.position must have 3 values, got {len(position)}")
    heading = root.get("heading")
    if (
        not isinstance(heading, int | float)
        or isinstance(heading, bool)
        or not np.isfinite(heading)
    ):
        raise ValueError(f"resume.root.heading must be a finite number, got {heading!r}")
    return token, RootState((position[0], position[1], position[2]), float(heading))


class _Session:
    """One WebSocket: at most one live ``Steer`` stream, its pose converter and its sender."""

    def __init__(self, request: web.Request, ws: web.WebSocketResponse) -> None:
        self.config = request.app[_CONFIG]
        self.stub = request.app[_STUB]
        self.header = request.headers.get("Authorization")
        self.ws = ws
        self.requests: asyncio.Queue[pb.SteerRequest | None] | None = None
        self.task: asyncio.Task[None] | None = None

    async def send(self, message: dict[str, Any]) -> None:
        if not self.ws.closed:
            await self.ws.send_str(json.dumps(message, allow_nan=False))

    async def status(self, call: str, code: str, details: str = "") -> None:
        await self.send({"type": "status", "call": call, "code": code, "details": details})

    async def stop(self) -> None:
        if self.requests is not None:
            self.requests.put_nowait(None)
            self.requests = None
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.task
            self.task = None

    async def handle(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "start":
            await self.stop()
            await self.start(message)
        elif kind in ("change", "more"):
            if self.requests is None:
                await self.status(kind, "FAILED_PRECONDITION", "no live stream: start one first")
            elif kind == "change":
                style = _floats(message.get("style", []), "style")
                self.requests.put_nowait(pb.SteerRequest(change=pb.Conditioning(style=style)))
            else:
                n = _count(message.get("frames"), "frames", 1, _MAX_CREDIT)
                self.requests.put_nowait(pb.SteerRequest(more_frames=n))
        elif kind == "stop":
            await self.stop()
        else:
            raise ValueError(f"unknown message type {kind!r}")

    async def start(self, message: dict[str, Any]) -> None:
        name = message.get("model", "")
        if not isinstance(name, str):
            raise ValueError(f"model must be a string, got {name!r}")
        seed = _count(message.get("seed", 0), "seed", 0, 2**63 - 1)
        credit = _count(message.get("frames", 0), "frames", 0, _MAX_CREDIT)
        style = _floats(message.get("style", []), "style")
        resume = None if message.get("resume") is None else _parse_resume(message["resume"])
        token = message.get("token") or None
        metadata = _metadata(self.config, self.header, token if isinstance(token, str) else None)
        try:
            info = await self.stub.GetModel(
                pb.GetModelRequest(name=name), metadata=metadata, timeout=_UNARY_TIMEOUT
            )
        except grpc.RpcError as err:
            await self.status("GetModel", *_status(err))
            return
        try:
            features = motion_features(json.loads(info.card_json))
            poses = PoseStream(features, None if resume is None else resume[1])
        except ValueError as err:
            await self.status("GetModel", "FAILED_PRECONDITION", str(err))
            return
        await self.send(
            {"type": "model", "info": _model_json(info), "skeleton": poses.skeleton_json()}
        )
        await self.status("GetModel", "OK", f"model {info.name!r}")
        start = pb.GenerateRequest(
            model=info.name, n_frames=credit, frames_per_message=1, realtime=True
        )
        if resume is None:
            start.seed, start.style[:] = seed, style
        else:  # the token sets the seed, history, style and next frame
            start.resume.CopyFrom(resume[0])
        queue: asyncio.Queue[pb.SteerRequest | None] = asyncio.Queue()
        queue.put_nowait(pb.SteerRequest(start=start))
        self.requests = queue
        started = "streaming" if resume is None else f"resumed at frame {resume[0].frame}"
        self.task = asyncio.get_running_loop().create_task(
            self.stream(queue, poses, metadata, started)
        )

    async def stream(
        self,
        queue: asyncio.Queue[pb.SteerRequest | None],
        poses: PoseStream,
        metadata: Any,
        started: str,
    ) -> None:
        async def requests() -> AsyncIterator[pb.SteerRequest]:
            while (item := await queue.get()) is not None:
                yield item

        call = self.stub.Steer(requests(), metadata=metadata)
        chunks: asyncio.Queue[pb.FrameChunk | None] = asyncio.Queue()

        async def read() -> None:
            try:
                async for chunk in call:
                    chunks.put_nowait(chunk)
            finally:
                chunks.put_nowait(None)

        reader = asyncio.get_running_loop().create_task(read())
        first = True
        try:
            while True:
                batch = [await chunks.get()]
                while not chunks.empty():  # convert what has piled up in one go
                    batch.append(chunks.get_nowait())
                done = batch[-1] is None
                got = [c for c in batch if c is not None]
                if got:
                    if first:
                        await self.status("Steer", "OK", started)
                        first = False
                    await self.send_frames(got, poses)
                if done:
                    break
            await reader  # raises the call's error, if any
            await self.send({"type": "end"})
            await self.status("Steer", "OK", "stream finished")
        except grpc.RpcError as err:
            await self.status("Steer", *_status(err))
        except asyncio.CancelledError:
            call.cancel()
            reader.cancel()
            raise

    async def send_frames(self, chunks: list[pb.FrameChunk], poses: PoseStream) -> None:
        frames = [f for c in chunks for f in c.frames]
        applied = [{"action": a.action, "frame": int(a.frame)} for c in chunks for a in c.applied]
        out: list[dict[str, Any]] = []
        if frames:
            values = np.asarray([list(f.values) for f in frames], dtype=np.float64)
            pose = await asyncio.to_thread(poses.push, values)
            t = pose.local_translations.reshape(len(frames), -1)
            q = pose.local_quaternions.reshape(len(frames), -1)
            out = [
                {"index": int(f.index), "t": t[k].tolist(), "q": q[k].tolist()}
                for k, f in enumerate(frames)
            ]
        message: dict[str, Any] = {"type": "frames", "frames": out, "applied": applied}
        tokens = [c.resume for c in chunks if c.HasField("resume")]
        if tokens:  # the state after these frames: the last chunk's token, the root after them
            message["resume"] = _resume_json(tokens[-1], poses.state)
        await self.send(message)
        for a in applied:  # credit (more_frames) is the page's flow control, not a user's call
            if a["action"] != "more_frames":
                await self.status(a["action"], "OK", f"applied at frame {a['frame']}")


async def _websocket(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(heartbeat=30.0, max_msg_size=1 << 20)
    await ws.prepare(request)
    session = _Session(request, ws)
    request.app[_SOCKETS].add(ws)
    try:
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                continue
            try:
                message = json.loads(msg.data)
                if not isinstance(message, dict):
                    raise ValueError("a message must be a JSON object")
                await session.handle(message)
            except ValueError as err:  # json.JSONDecodeError is a ValueError
                await session.status("bridge", "INVALID_ARGUMENT", str(err))
    finally:
        request.app[_SOCKETS].discard(ws)
        await session.stop()
    return ws


def create_app(config: ViewerConfig) -> web.Application:
    """The bridge as an aiohttp application (its gRPC channel opens and closes with it)."""
    app = web.Application(middlewares=[_guard])
    app[_CONFIG] = config

    async def channel_context(app: web.Application) -> AsyncIterator[None]:
        channel = config.channel()
        app[_CHANNEL] = channel
        app[_STUB] = pb_grpc.GenerationStub(channel)
        yield
        await channel.close()

    async def close_sockets(app: web.Application) -> None:  # shutdown: end the live streams
        open_sockets = app[_SOCKETS]
        for ws in list(open_sockets):
            await ws.close(code=WSCloseCode.GOING_AWAY, message=b"the viewer is shutting down")

    sockets: set[web.WebSocketResponse] = set()
    app[_SOCKETS] = sockets
    app.on_shutdown.append(close_sockets)
    app.cleanup_ctx.append(channel_context)
    app.router.add_get("/", _index)
    app.router.add_get("/api/config", _config)
    app.router.add_get("/api/models", _models)
    app.router.add_get("/api/models/{name}", _model)
    app.router.add_get("/ws", _websocket)
    app.router.add_static("/static/", STATIC_DIR)
    return app


async def run(config: ViewerConfig, ready: Callable[[str], None] | None = None) -> None:
    """Serve until SIGTERM/SIGINT; ``ready(url)`` once the port is bound."""
    runner = web.AppRunner(create_app(config), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, config.host, config.port)
    await site.start()
    port = int(runner.addresses[0][1]) if runner.addresses else config.port
    host = f"[{config.host}]" if ":" in config.host else config.host
    url = f"http://{host}:{port}/"
    if ready is not None:
        ready(url)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def main(argv: Sequence[str] | None = None) -> int:
    """``seqboltz view``: serve the viewer page and bridge it to a running service."""
    p = argparse.ArgumentParser(
        prog="seqboltz view",
        description="Watch and steer generated motion in a browser: serves a page and bridges "
        "it to a running `seqboltz serve`.",
    )
    p.add_argument("--server", default=os.environ.get("SEQBOLTZ_SERVER", "127.0.0.1:50051"))
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (default loopback)")
    p.add_argument("--port", type=int, default=8765, help="HTTP port (0: any free port)")
    p.add_argument("--token", default=os.environ.get("SEQBOLTZ_TOKEN"), help="bearer token")
    p.add_argument("--allow-origin", action="append", default=[], metavar="ORIGIN")
    p.add_argument("--allow-host", action="append", default=[], metavar="NAME")
    p.add_argument("--tls-ca")
    p.add_argument("--tls-cert")
    p.add_argument("--tls-key")
    p.add_argument("--open", action="store_true", help="open the page in a web browser")
    p.add_argument(
        "--embedded",
        action="store_true",
        help="also start `seqboltz serve` on its embedded models (any free port) and view it",
    )
    args = p.parse_args(None if argv is None else list(argv))
    if not 0 <= args.port <= 65535:
        p.error(f"--port must be in 0..65535, got {args.port}")
    for origin in args.allow_origin:
        parts = urlsplit(origin)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.path not in ("", "/"):
            p.error(f"--allow-origin must look like http://host:port, got {origin!r}")
    service = _start_embedded() if args.embedded else None
    if args.embedded and service is None:
        print("seqboltz view: the embedded service did not start", file=sys.stderr)
        return 1
    config = ViewerConfig(
        server=service[1] if service else args.server,
        host=args.host,
        port=args.port,
        token=args.token,
        allow_origins=tuple(o.rstrip("/") for o in args.allow_origin),
        allow_hosts=tuple(args.allow_host),
        tls_ca=args.tls_ca,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
    )
    if not _is_loopback(args.host):
        print(
            f"seqboltz view: binding to {args.host} lets other machines use the service "
            "(and the token) through this viewer",
            file=sys.stderr,
        )

    def ready(url: str) -> None:
        print(json.dumps({"listening": {"url": url, "server": config.server}}), flush=True)
        if args.open:
            import webbrowser

            webbrowser.open(url)

    try:
        asyncio.run(run(config, ready))
    except OSError as err:
        print(f"seqboltz view: cannot listen on {args.host}:{args.port}: {err}", file=sys.stderr)
        return 1
    finally:
        if service is not None:
            service[0].send_signal(signal.SIGTERM)
            service[0].wait(timeout=60)
    return 0


def _start_embedded() -> tuple[subprocess.Popen[str], str] | None:
    """``seqboltz serve`` on its embedded models, loopback, any free port: (process, address)."""
    cmd = [sys.executable, "-m", "seqboltz.cli", "serve", "--host", "127.0.0.1", "--port", "0"]
    proc = subprocess.Popen([*cmd, "--metrics-port", "0"], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("{"):
            # keep reading what it prints, so that a full pipe never blocks it
            threading.Thread(target=proc.stdout.read, daemon=True).start()
            return proc, str(json.loads(line)["listening"]["address"])
    proc.wait()
    return None
