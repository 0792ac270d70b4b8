"""``seqboltz view`` against a real service: the bridge over HTTP and WebSocket, and the page in
a real headless Chromium (Debian's ``/usr/bin/chromium``, software WebGL through SwiftShader)
driven by Playwright. One service (holding the embedded models), one browser and the bridges are
shared by the module.

The slider test steers the embedded speed-steerable model (``serving/models/motion_speed.onnx``,
a residual CRBM with the root speed as its style; ``serving/models/README.md``). The resume
tests break a live stream (a dropped WebSocket, a killed service) and check that the frames after
the resume are the unbroken stream's.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from serving_helpers import Server, start_server

from seqboltz.motion import forward_kinematics, read_bvh, write_bvh
from seqboltz.runtime import load_artifact
from seqboltz.v1 import generation_pb2 as pb
from serving.viewer.pose import PoseStream, motion_features

CHROMIUM = Path("/usr/bin/chromium")
EMBEDDED = Path(__file__).resolve().parents[2] / "serving" / "models"
CHROMIUM_ARGS = [
    "--use-gl=angle",
    "--use-angle=swiftshader",
    "--enable-unsafe-swiftshader",
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
ROOT = [0, 1, 2]
SEED = 7


@dataclass
class Bridge:
    proc: subprocess.Popen[str]
    url: str

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=30)


def start_bridge(server: str, *extra: str) -> Bridge:
    proc = subprocess.Popen(
        [sys.executable, "-m", "seqboltz.cli", "view", "--port", "0", "--server", server, *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("{"):
        proc.kill()
        raise RuntimeError(f"seqboltz view did not start: {line}{proc.stderr.read()}")
    return Bridge(proc, json.loads(line)["listening"]["url"])


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A model folder holding the embedded models: the plain one and the speed-steerable one."""
    folder = tmp_path_factory.mktemp("viewer_models")
    for path in EMBEDDED.glob("*.onnx"):
        shutil.copy(path, folder / path.name)
    styled = load_artifact(folder / "motion_speed.onnx")
    assert styled.card["domain"] == "motion" and styled.card["conditioning"]["style"]["size"] == 1
    return {
        "folder": str(folder),
        "plain": load_artifact(folder / "motion_crbm.onnx").name,
        "styled": styled.name,
    }


@pytest.fixture(scope="module")
def service(models: dict[str, str]) -> Iterator[Server]:
    s = start_server(Path(models["folder"]))
    yield s
    s.stop()


@pytest.fixture(scope="module")
def bridge(service: Server) -> Iterator[Bridge]:
    b = start_bridge(service.address)
    yield b
    b.stop()


@pytest.fixture(scope="module")
def styled(bridge: Bridge, models: dict[str, str]) -> tuple[Bridge, str]:
    """The module's bridge and the name of the embedded speed-steerable model."""
    return bridge, models["styled"]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.fail("the browser tests need Debian's chromium: apt-get install -y chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


def _page(browser: Any, url: str, size: tuple[int, int] = (960, 640)) -> Any:
    page = browser.new_page(viewport={"width": size[0], "height": size[1]})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.errors = errors
    page.goto(url)
    return page


def _run(coro: Any) -> Any:
    """Run a coroutine on its own loop in a thread (Playwright's sync API holds this one's)."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result(timeout=120)


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def _server_positions(service: Server, model: str, n_frames: int) -> np.ndarray:
    """Server-side joints of frames 0 … n_frames-1 of the unsteered stream with SEED."""
    stub = service.stub()
    info = stub.GetModel(pb.GetModelRequest(name=model), timeout=30)
    request = pb.GenerateRequest(model=model, n_frames=n_frames, seed=SEED, frames_per_message=50)
    frames = [list(f.values) for c in stub.Generate(request, timeout=120) for f in c.frames]
    return PoseStream.from_card(json.loads(info.card_json)).push(np.asarray(frames)).positions


def _ground_speed(roots: dict[int, list[float]], frames: range, fps: float) -> float:
    p = np.asarray([roots[i] for i in frames])
    step = np.diff(p[:, [0, 2]], axis=0)  # the CMU rigs are Y-up
    return float(np.linalg.norm(step, axis=1).mean() * fps)


# ---- the page in a real browser ---------------------------------------------------------------


def test_page_draws_the_joints_the_server_computes(
    browser: Any, bridge: Bridge, service: Server, models: dict[str, str], tmp_path: Path
) -> None:
    page = _page(browser, f"{bridge.url}?model={models['plain']}&seed={SEED}&autoplay=1")
    page.wait_for_function("window.viewer && viewer.drawnIndex >= 30", timeout=60_000)
    gl = page.evaluate(
        "({ok: viewer.webgl, renderer: viewer.glRenderer, version: viewer.glVersion})"
    )
    assert gl["ok"] is True and "WebGL" in gl["version"], gl
    drawn = page.evaluate("[...viewer.drawn.keys()]")
    n = max(i for i in drawn if i >= 20)
    shown = np.asarray(page.evaluate(f"viewer.drawn.get({n})")).reshape(-1, 3)
    expected = _server_positions(service, models["plain"], n + 1)[n]
    assert shown.shape == expected.shape
    np.testing.assert_allclose(shown, expected, atol=1e-6)
    status = page.evaluate("viewer.statuses.map(s => s.call + ':' + s.code)")
    assert "ListModels:OK" in status and "GetModel:OK" in status and "Steer:OK" in status
    # fps and lateness are shown
    assert page.evaluate("viewer.fps") > 0
    assert page.locator("#fps").inner_text() != "–"
    assert page.locator("#lateness").inner_text().endswith("ms")

    shot = tmp_path / "viewer.png"
    page.screenshot(path=str(shot))
    print(f"screenshot: {shot}")
    _assert_body_visible_and_upright(shot)

    page.click("#play")  # pause: the body stops; play: it goes on from where it stopped
    assert page.locator("#play").inner_text() == "Play"
    paused = page.evaluate("viewer.drawnIndex")
    page.wait_for_timeout(1000)
    assert page.evaluate("viewer.drawnIndex") == paused
    page.click("#play")
    page.wait_for_function(f"viewer.drawnIndex > {paused}", timeout=30_000)
    assert not page.errors
    page.close()


def _assert_body_visible_and_upright(path: Path) -> None:
    """The limbs' blue (#4fc3f7) and joints' orange (#ffb74d) cover a region that stands up:
    at least 0.6 as tall as wide."""
    from PIL import Image

    rgb = np.asarray(Image.open(path).convert("RGB")).astype(int)
    blue = (np.abs(rgb - [0x4F, 0xC3, 0xF7]).sum(-1) < 120) & (rgb[..., 2] > 150)
    orange = (np.abs(rgb - [0xFF, 0xB7, 0x4D]).sum(-1) < 120) & (rgb[..., 0] > 150)
    body = blue | orange
    assert blue.sum() > 300 and orange.sum() > 100, (blue.sum(), orange.sum())
    rows, cols = np.nonzero(body)
    height, width = np.ptp(rows), np.ptp(cols)
    # a body that fell over is several times wider than tall (its height is a limb's
    # thickness); an upright one with a side-on stride or arms out in a karate or dance pose
    # (the CMU selection's) is about as wide as tall: 1.24 and 0.99 (328 x 330 px) were seen
    assert height > 0.6 * width and height > 100, (height, width)


@pytest.mark.slow
def test_speed_slider_steers_the_live_stream(browser: Any, styled: tuple[Bridge, str]) -> None:
    """Same seed three times: unsteered, slider up by 1.5, slider down by 1 (standard units of
    the speed style; -1 is still a forward speed in the data). The root's measured ground speed
    moves the way the slider asked."""
    bridge, model = styled
    pages = {
        target: _page(browser, f"{bridge.url}?model={model}&seed={SEED}&autoplay=1", (480, 360))
        for target in (0.0, 1.5, -1.0)
    }
    for target, page in pages.items():
        page.wait_for_function("window.viewer && viewer.lastReceived >= 3", timeout=60_000)
        if target:
            page.evaluate(
                """v => { const s = document.getElementById('style-0');
                          s.value = String(v); s.dispatchEvent(new Event('input')); }""",
                target,
            )
    for target, page in pages.items():
        if target:
            page.wait_for_function(
                "viewer.applied.some(a => a.action === 'change')", timeout=30_000
            )
    applied = max(
        next(a["frame"] for a in page.evaluate("viewer.applied") if a["action"] == "change")
        for target, page in pages.items()
        if target
    )
    window = range(applied + 20, applied + 80)
    for page in pages.values():
        page.wait_for_function(f"viewer.lastReceived >= {window.stop}", timeout=60_000)
    fps = pages[0.0].evaluate("viewer.model.frame_rate")
    roots = {
        t: {int(k): v for k, v in p.evaluate("Object.fromEntries(viewer.roots)").items()}
        for t, p in pages.items()
    }
    speed = {t: _ground_speed(r, window, fps) for t, r in roots.items()}
    print("root speed by slider value:", speed)
    # The embedded model over this 2-s window (the runtime's frames from the 16 held-out
    # clips' starts x 3 seeds, the change at frame 60): up 1.44x unsteered (median; > 1.2x in
    # 48/48), down 0.79x (< 1 in 48/48; below up / 1.5 in 48/48). Down's effect also depends
    # on the frame the change lands on (timing), so for down the test checks that the change
    # reached the stream (its frames leave the unsteered ones of the same seed) and that the
    # body is clearly slower than with the slider up. The speed control itself is measured in
    # benchmarks/motion_quality.py (serving/models/README.md).
    assert speed[1.5] > 1.2 * speed[0.0], speed
    assert speed[-1.0] < speed[1.5] / 1.5, speed
    down = np.asarray([roots[-1.0][i] for i in window])
    unsteered = np.asarray([roots[0.0][i] for i in window])
    assert np.abs(down - unsteered).max() > 1e-3, "the slider change did not reach the stream"
    assert "1.50" in pages[1.5].locator("#styles label").first.inner_text()
    for page in pages.values():
        assert not page.errors
        page.close()


def test_page_opens_and_plays_a_bvh_file(
    browser: Any, bridge: Bridge, service: Server, models: dict[str, str], tmp_path: Path
) -> None:
    """A generated take written as BVH plays in the page; a paused frame shows the joints of
    the file's own forward kinematics."""
    stub = service.stub()
    info = stub.GetModel(pb.GetModelRequest(name=models["plain"]), timeout=30)
    request = pb.GenerateRequest(model=info.name, n_frames=60, seed=3, frames_per_message=60)
    z = np.asarray([list(f.values) for c in stub.Generate(request, timeout=60) for f in c.frames])
    path = tmp_path / "take.bvh"
    write_bvh(path, motion_features(json.loads(info.card_json)).inverse_transform(z))
    clip = read_bvh(path)
    joints = forward_kinematics(clip.skeleton, clip.frames)

    page = _page(browser, bridge.url)
    page.wait_for_function("window.viewer && viewer.ready", timeout=30_000)
    page.set_input_files("#bvh", str(path))
    page.wait_for_function("viewer.mode === 'bvh' && viewer.drawnIndex >= 5", timeout=30_000)
    assert page.evaluate("viewer.bvh.frames") == clip.n_frames
    assert page.evaluate("viewer.lastStatus.code") == "OK"
    names = page.evaluate("viewer.boneNames")
    for k in (0, 41):
        assert page.evaluate(f"viewer.seekBvh({k})") is True
        shown = np.asarray(page.evaluate(f"viewer.drawn.get({k})")).reshape(-1, 3)
        for i, name in enumerate(clip.skeleton.names):
            np.testing.assert_allclose(shown[names.index(name)], joints[k, i], atol=1e-4)
    assert not page.errors
    page.close()


def test_page_says_when_the_model_is_unknown(browser: Any, bridge: Bridge) -> None:
    page = _page(browser, f"{bridge.url}?model=no_such_model&autoplay=1")
    page.wait_for_function("viewer.message !== ''", timeout=30_000)
    assert page.evaluate("viewer.lastStatus") == {
        "call": "GetModel",
        "code": "NOT_FOUND",
        "details": page.evaluate("viewer.lastStatus.details"),
    }
    text = page.locator("#message").inner_text()
    assert page.locator("#message").is_visible()
    assert '"no_such_model" is unknown to the service' in text and "NOT_FOUND" in text
    page.close()


def test_page_says_when_the_service_is_down(browser: Any) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    down = start_bridge(f"127.0.0.1:{port}")
    try:
        page = _page(browser, down.url)
        page.wait_for_function("viewer.message !== ''", timeout=30_000)
        text = page.locator("#message").inner_text()
        assert page.locator("#message").is_visible()
        assert f"service at 127.0.0.1:{port} is down or unreachable" in text
        assert page.evaluate("viewer.lastStatus.code") == "UNAVAILABLE"
        page.close()
    finally:
        down.stop()


# ---- the bridge over HTTP and WebSocket ---------------------------------------------------------


def test_bridge_passes_status_codes_through(bridge: Bridge, models: dict[str, str]) -> None:
    status, body = _get(f"{bridge.url}api/models")
    assert status == 200 and body["code"] == "OK"
    assert models["plain"] in {m["name"] for m in body["models"]}
    status, body = _get(f"{bridge.url}api/models/{models['plain']}")
    assert status == 200 and body["skeleton"]["joints"][0]["parent"] == -1
    status, body = _get(f"{bridge.url}api/models/no_such_model")
    assert (status, body["code"]) == (404, "NOT_FOUND") and "no_such_model" in body["details"]


def test_bridge_checks_origin_and_host(bridge: Bridge) -> None:
    port = bridge.url.rstrip("/").rsplit(":", 1)[1]
    ok, _ = _get(f"{bridge.url}api/models", {"Origin": f"http://localhost:{port}"})
    assert ok == 403  # Host is 127.0.0.1: localhost is another origin
    ok, _ = _get(f"{bridge.url}api/models", {"Origin": f"http://127.0.0.1:{port}"})
    assert ok == 200
    status, body = _get(f"{bridge.url}api/models", {"Origin": "http://evil.example"})
    assert (status, body["code"]) == (403, "PERMISSION_DENIED") and "evil.example" in body[
        "details"
    ]
    status, body = _get(f"{bridge.url}api/models", {"Host": f"evil.example:{port}"})
    assert (status, body["code"]) == (403, "PERMISSION_DENIED")
    # the WebSocket upgrade is refused the same way
    import aiohttp

    async def upgrade(origin: str) -> int:
        async with aiohttp.ClientSession() as session:
            try:
                async with session.ws_connect(f"{bridge.url}ws", origin=origin):
                    return 101
            except aiohttp.WSServerHandshakeError as err:
                return err.status

    assert _run(upgrade("http://evil.example")) == 403
    assert _run(upgrade(f"http://127.0.0.1:{port}")) == 101


def test_bridge_passes_the_bearer_token_through(models: dict[str, str]) -> None:
    import aiohttp

    secured = start_server(Path(models["folder"]), "--token", "s3cret")
    plain = start_bridge(secured.address)
    configured = start_bridge(secured.address, "--token", "s3cret")
    try:
        status, body = _get(f"{plain.url}api/models")
        assert (status, body["code"]) == (401, "UNAUTHENTICATED")
        status, body = _get(f"{plain.url}api/models", {"Authorization": "Bearer s3cret"})
        assert (status, body["code"]) == (200, "OK")
        status, body = _get(f"{plain.url}api/models", {"Authorization": "Bearer wrong"})
        assert status == 401
        status, body = _get(f"{configured.url}api/models")
        assert (status, body["code"]) == (200, "OK")

        async def start(token: str | None) -> list[dict[str, Any]]:
            got: list[dict[str, Any]] = []
            async with aiohttp.ClientSession() as session:
                async with session.ws_connect(f"{plain.url}ws") as ws:
                    msg: dict[str, Any] = {"type": "start", "model": models["plain"], "frames": 3}
                    if token:
                        msg["token"] = token
                    await ws.send_str(json.dumps(msg))
                    async for m in ws:
                        got.append(json.loads(m.data))
                        if got[-1]["type"] == "status" and got[-1]["call"] == "GetModel":
                            if got[-1]["code"] != "OK":
                                break
                        if got[-1]["type"] == "frames" and got[-1]["frames"]:
                            break
            return got

        refused = _run(start(None))
        assert refused[-1]["code"] == "UNAUTHENTICATED"
        accepted = _run(start("s3cret"))
        assert accepted[0]["type"] == "model"
        frame = accepted[-1]["frames"][0]
        assert frame["index"] == 0 and len(frame["q"]) == 4 * len(accepted[0]["skeleton"]["joints"])
    finally:
        configured.stop()
        plain.stop()
        secured.stop()


def test_bridge_answers_bad_messages_with_one_line(bridge: Bridge) -> None:
    import aiohttp

    async def send(raw: str) -> dict[str, Any]:
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(f"{bridge.url}ws") as ws:
                await ws.send_str(raw)
                return json.loads((await ws.receive()).data)

    bad = _run(send('{"type": "start", "seed": -1}'))
    assert bad["code"] == "INVALID_ARGUMENT" and "seed must be an integer" in bad["details"]
    bad = _run(send('{"type": "change", "style": [1]}'))
    assert bad["code"] == "FAILED_PRECONDITION" and "start one first" in bad["details"]
    bad = _run(send("not json"))
    assert bad["code"] == "INVALID_ARGUMENT"
    bad = _run(send('{"type": "start", "resume": {"token": "%%%", "root": {}}}'))
    assert (
        bad["code"] == "INVALID_ARGUMENT" and "resume.token is not a resume token" in bad["details"]
    )
    bad = _run(send('{"type": "start", "resume": {"token": "", "root": {"position": [0, 0]}}}'))
    assert "resume.root.position must have 3 values" in bad["details"]


def test_view_cli_rejects_a_bad_origin_in_one_line() -> None:
    r = subprocess.run(
        [sys.executable, "-m", "seqboltz.cli", "view", "--allow-origin", "evil.example"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    assert r.returncode == 2
    assert (
        r.stderr.strip()
        .splitlines()[-1]
        .endswith("--allow-origin must look like http://host:port, got 'evil.example'")
    )


def test_view_is_listed_by_the_cli() -> None:
    from seqboltz.cli import _USAGE

    assert "  view [--server ADDR]" in _USAGE


def test_view_embedded_starts_and_stops_its_own_service() -> None:
    """`seqboltz view --embedded`: one command, both embedded models, both processes stop."""
    b = start_bridge("unused:1", "--embedded")
    try:
        status, body = _get(f"{b.url}api/models")
        assert status == 200 and {m["name"] for m in body["models"]} == {
            "motion_crbm",
            "motion_speed",
        }
        assert {m["name"]: m["style_size"] for m in body["models"]}["motion_speed"] == 1
        assert body["server"].startswith("127.0.0.1:")
    finally:
        b.stop()
    assert b.proc.returncode == 0
    with pytest.raises(OSError):  # the service went with it
        socket.create_connection(tuple(body["server"].rsplit(":", 1)), timeout=5).close()


# ---- resume: a broken stream continues where it was ----------------------------------------------


async def _messages(ws: Any, timeout: float = 30.0) -> AsyncIterator[dict[str, Any]]:
    """The bridge's messages, each within ``timeout`` seconds (a stuck stream fails the test
    instead of hanging it)."""
    import aiohttp

    while True:
        msg = await asyncio.wait_for(ws.receive(), timeout)
        if msg.type != aiohttp.WSMsgType.TEXT:
            raise AssertionError(f"the bridge's WebSocket closed: {msg}")
        yield json.loads(msg.data)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_bridge_resumes_a_steered_stream_after_the_service_restarts(
    models: dict[str, str],
) -> None:
    """The speed-steerable model, seed 7, steered from style 0 to 1.5 mid-stream; the service is
    killed and started again on its port; a new WebSocket starts from the last ``resume`` the
    bridge sent. The frames after it are the unbroken, steered stream's (the runtime's frames
    with the same style schedule), converted from the same root position and heading."""
    import aiohttp

    folder = Path(models["folder"])
    port = _free_port()
    first = start_server(folder, "--port", str(port))
    bridge = start_bridge(f"127.0.0.1:{port}")
    second: Server | None = None
    name = models["styled"]
    received: dict[int, dict[str, Any]] = {}

    async def until_broken() -> tuple[dict[str, Any], int]:
        resume, changed_at = None, None
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(f"{bridge.url}ws") as ws:
                start = {"type": "start", "model": name, "seed": SEED, "style": [0.0]}
                await ws.send_json({**start, "frames": 90})
                async for m in _messages(ws):
                    if m["type"] == "frames":
                        received.update({f["index"]: f for f in m["frames"]})
                        resume = m["resume"]
                        if len(received) == 5:
                            await ws.send_json({"type": "change", "style": [1.5]})
                        for a in m["applied"]:
                            if a["action"] == "change":
                                changed_at = a["frame"]
                        if changed_at is not None and resume["frame"] >= changed_at + 5:
                            if first.proc.poll() is None:
                                first.proc.kill()  # the service goes away mid-stream
                    elif m["type"] == "status" and m["code"] != "OK":
                        assert (m["call"], m["code"]) == ("Steer", "UNAVAILABLE"), m
                        break
        assert resume is not None and changed_at is not None
        return resume, changed_at

    async def resumed(resume: dict[str, Any]) -> tuple[list[dict[str, Any]], list[str]]:
        frames: list[dict[str, Any]] = []
        said: list[str] = []
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(f"{bridge.url}ws") as ws:
                for _ in range(40):  # the bridge's channel reconnects within its backoff
                    await ws.send_json(
                        {"type": "start", "model": name, "frames": 20, "resume": resume}
                    )
                    async for m in _messages(ws):
                        if m["type"] == "status":
                            said.append(f"{m['call']}:{m['code']}:{m['details']}")
                            if m["code"] != "OK":
                                break
                        elif m["type"] == "frames":
                            frames += m["frames"]
                            if len(frames) >= 20:  # the credit (Steer then waits for more)
                                return frames, said
                    await asyncio.sleep(0.25)
        raise AssertionError(f"the stream did not resume: {said[-3:]}")

    try:
        resume, changed_at = _run(until_broken())
        assert resume["style"] == [1.5] and resume["frame"] >= changed_at + 5
        second = start_server(folder, "--port", str(port))
        frames, said = _run(resumed(resume))
    finally:
        bridge.stop()
        for server in (first, second):
            if server is not None:
                server.stop()
    r = resume["frame"]
    assert [f["index"] for f in frames] == list(range(r, r + 20))
    assert f"Steer:OK:resumed at frame {r}" in said
    # the unbroken stream: the runtime's frames with the same steering, one pose conversion
    art = load_artifact(folder / "motion_speed.onnx")
    style = np.zeros((1, r + 20, 1))
    style[0, changed_at:] = 1.5
    poses = PoseStream.from_card(art.card).push(art.generate(r + 20, seed=SEED, style=style)[0])
    for f in [*(received[i] for i in range(r)), *frames]:  # before the break, and after it
        i = f["index"]
        np.testing.assert_allclose(f["t"], poses.local_translations[i].ravel(), atol=1e-9)
        np.testing.assert_allclose(f["q"], poses.local_quaternions[i].ravel(), atol=1e-12)


def test_page_resumes_its_stream_when_the_connection_drops(
    browser: Any, bridge: Bridge, service: Server, models: dict[str, str]
) -> None:
    """The page's WebSocket closes mid-stream: the page reconnects, starts from the last
    resume state and draws the joints of the unbroken stream."""
    page = _page(
        browser, f"{bridge.url}?model={models['plain']}&seed={SEED}&autoplay=1", (320, 240)
    )
    page.wait_for_function("window.viewer && viewer.drawnIndex >= 10", timeout=60_000)
    cut = page.evaluate("(() => { const f = viewer.resume.frame; viewer.ws.close(); return f; })()")
    page.wait_for_function(
        f"viewer.resumes >= 1 && viewer.drawnIndex >= {cut + 15}", timeout=30_000
    )
    drawn = page.evaluate("[...viewer.drawn.keys()]")
    n = max(drawn)
    assert page.evaluate("viewer.resumes") == 1 and n >= cut + 15
    shown = np.asarray(page.evaluate(f"viewer.drawn.get({n})")).reshape(-1, 3)
    expected = _server_positions(service, models["plain"], n + 1)[n]
    np.testing.assert_allclose(shown, expected, atol=1e-6)
    statuses = page.evaluate("viewer.statuses.map(s => s.call + ':' + s.code + ':' + s.details)")
    assert any(
        s.startswith("resume:UNAVAILABLE:the connection to the viewer bridge dropped")
        for s in statuses
    )
    assert any(s.startswith("Steer:OK:resumed at frame ") for s in statuses)
    assert page.evaluate("viewer.message") == ""
    assert not page.errors
    page.close()
