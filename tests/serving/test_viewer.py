"""``seqboltz view`` against a real service: the bridge over HTTP and WebSocket, and the page in
a real headless Chromium (Debian's ``/usr/bin/chromium``, software WebGL through SwiftShader)
driven by Playwright. One service, one browser and the bridges are shared by the module.

The slider test needs a model with a speed style. If no such model is embedded in
``serving/models``, the fixture builds one (:func:`_speed_fcrbm`): a small
``FactoredConditionalRBM`` fitted in closed form on the project's motion data (the committed CMU
fixture) with the ``root_speed`` style: its autoregressive factors and its style→visible biases
are the ridge least-squares fit of each frame on its 3 past frames and the clip's standardised
speed; its hidden units are small and random. The speed it walks at is therefore what the data
say about speed, and the test measures whether the page's slider reaches it.
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
from collections.abc import Iterator
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


def _speed_fcrbm(folder: Path) -> None:
    """Fit and export the speed-steerable FCRBM described in the module docstring."""
    import torch

    from seqboltz.data import MotionDataModule
    from seqboltz.export import build_card, export_onnx
    from seqboltz.models import FactoredConditionalRBM

    order = 3
    dm = MotionDataModule(order=order, style="root_speed", style_window=30, batch_size=1 << 20)
    dm.prepare_data()
    dm.setup("fit")
    batches = list(dm.train_dataloader())
    v = torch.cat([b["v"] for b in batches]).double().numpy()  # (N, D)
    history = torch.cat([b["cond"]["history"] for b in batches]).double()  # (N, order, D)
    style = torch.cat([b["cond"]["style"] for b in batches]).double().numpy()  # (N, 1)
    n, d = v.shape
    x = np.concatenate([history.reshape(n, -1).numpy(), style, np.ones((n, 1))], axis=1)
    coef = np.linalg.solve(x.T @ x + 1e-3 * n * np.eye(x.shape[1]), x.T @ v)  # ridge
    torch.manual_seed(0)
    model = FactoredConditionalRBM(
        d, 8, order, n_style=1, n_factors=d, init_std=0.01, gated_autoregressive=False
    ).double()
    with torch.no_grad():
        model.past_factor_v.copy_(torch.from_numpy(coef[: order * d]))
        model.visible_factor_a.copy_(torch.eye(d, dtype=torch.float64))
        model.style_to_visible.copy_(torch.from_numpy(coef[order * d : order * d + 1]))
        model.visible_bias.copy_(torch.from_numpy(coef[-1]))
        # the model's dynamic visible bias is the fitted linear prediction
        cond = {"history": history[:5], "style": torch.from_numpy(style[:5])}
        np.testing.assert_allclose(
            model.frame_params(cond).visible_bias.numpy(), x[:5] @ coef, atol=1e-9
        )
    seed = np.asarray(v[:order], dtype=np.float64)
    card = build_card(
        model,
        name="fcrbm_speed",
        gibbs_steps=2,
        data={"stats": dm.stats()},
        default_seed_frames=seed,
        frame_rate=30.0,
    )
    export_onnx(model, folder / "fcrbm_speed.onnx", card, 2)


def _embedded_style_model() -> Path | None:
    for path in sorted(EMBEDDED.glob("*.onnx")):
        card = load_artifact(path).card
        if card.get("domain") == "motion" and (card.get("conditioning") or {}).get("style"):
            return path
    return None


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A model folder holding the embedded models."""
    folder = tmp_path_factory.mktemp("viewer_models")
    for path in EMBEDDED.glob("*.onnx"):
        shutil.copy(path, folder / path.name)
    return {"folder": str(folder), "plain": load_artifact(folder / "motion_crbm.onnx").name}


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
def styled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Bridge, str]]:
    """A bridge to a service holding a speed-steerable motion model (the embedded one if there
    is one, else the fitted FCRBM of the module docstring) and that model's name."""
    path = _embedded_style_model()
    if path is None:
        folder = tmp_path_factory.mktemp("viewer_styled")
        _speed_fcrbm(folder)
        path = folder / "fcrbm_speed.onnx"
    s = start_server(path.parent)
    b = start_bridge(s.address)
    yield b, load_artifact(path).name
    b.stop()
    s.stop()


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
    """The limbs' blue (#4fc3f7) and joints' orange (#ffb74d) cover a region taller than wide."""
    from PIL import Image

    rgb = np.asarray(Image.open(path).convert("RGB")).astype(int)
    blue = (np.abs(rgb - [0x4F, 0xC3, 0xF7]).sum(-1) < 120) & (rgb[..., 2] > 150)
    orange = (np.abs(rgb - [0xFF, 0xB7, 0x4D]).sum(-1) < 120) & (rgb[..., 0] > 150)
    body = blue | orange
    assert blue.sum() > 300 and orange.sum() > 100, (blue.sum(), orange.sum())
    rows, cols = np.nonzero(body)
    height, width = np.ptp(rows), np.ptp(cols)
    assert height > 1.5 * width and height > 100, (height, width)


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
    # Up is strong (2.4-2.8x unsteered over six runs). Down's speed effect over this 2-s
    # window depends on the frame the change lands on, i.e. on timing (six runs: 0.17x to
    # 1.12x unsteered), so for down the test checks that the change reached
    # the stream (its frames leave the unsteered ones of the same seed) and that the body is
    # clearly slower than with the slider up. The speed control itself is measured in
    # benchmarks/motion_quality.py.
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
    """`seqboltz view --embedded`: one command, the embedded models, both processes stop."""
    b = start_bridge("unused:1", "--embedded")
    try:
        status, body = _get(f"{b.url}api/models")
        assert status == 200 and "motion_crbm" in {m["name"] for m in body["models"]}
        assert body["server"].startswith("127.0.0.1:")
    finally:
        b.stop()
    assert b.proc.returncode == 0
    with pytest.raises(OSError):  # the service went with it
        socket.create_connection(tuple(body["server"].rsplit(":", 1)), timeout=5).close()
