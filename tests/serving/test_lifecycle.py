"""Server lifecycle: hot reload, SIGTERM mid-stream, auth, TLS, the embedded default model."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from serving_helpers import start_server

from seqboltz.v1 import generation_pb2 as pb
from seqboltz.v1 import generation_pb2_grpc as pb_grpc


def test_hot_reload_good_and_corrupt(model_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "repo"
    folder.mkdir()
    shutil.copy(model_dir / "crbm.onnx", folder / "a.onnx")
    server = start_server(folder)
    try:
        stub = server.stub()
        first = stub.GetModel(pb.GetModelRequest(name="a")).sha256
        # a good new file appears, a good file replaces a, then a corrupt file replaces a
        shutil.copy(model_dir / "fcrbm.onnx", folder / "b.onnx")
        tmp = folder / "a.tmp"
        shutil.copy(model_dir / "fcrbm.onnx", tmp)
        tmp.rename(folder / "a.onnx")
        deadline = time.time() + 10
        names: list[str] = []
        while time.time() < deadline:
            names = [m.name for m in stub.ListModels(pb.ListModelsRequest()).models]
            if names == ["a", "b"] and stub.GetModel(pb.GetModelRequest(name="a")).sha256 != first:
                break
            time.sleep(0.1)
        assert names == ["a", "b"]
        second = stub.GetModel(pb.GetModelRequest(name="a")).sha256
        assert second != first
        (folder / "a.tmp").write_bytes(b"corrupt")
        (folder / "a.tmp").rename(folder / "a.onnx")
        time.sleep(2.5)
        assert stub.GetModel(pb.GetModelRequest(name="a")).sha256 == second  # old one serves
        frames = list(stub.Generate(pb.GenerateRequest(model="a", n_frames=3, style=[0.0])))
        assert sum(len(c.frames) for c in frames) == 3
        # removing a file removes its model; a stream running on it finishes
        slow = pb.GenerateRequest(model="b", n_frames=90, style=[0.0], realtime=True)
        running = stub.Generate(slow)
        first = next(running)
        (folder / "b.onnx").unlink()
        deadline = time.time() + 10
        while time.time() < deadline and "b" in names:
            names = [m.name for m in stub.ListModels(pb.ListModelsRequest()).models]
            time.sleep(0.1)
        assert names == ["a"]
        with pytest.raises(grpc.RpcError) as err:
            list(stub.Generate(pb.GenerateRequest(model="b", n_frames=1, style=[0.0])))
        assert err.value.code() == grpc.StatusCode.NOT_FOUND and "'b'" in err.value.details()
        rest = [f.index for chunk in running for f in chunk.frames]
        assert [f.index for f in first.frames] + rest == list(range(90))
    finally:
        assert server.stop() == 0
    # structured logs: one JSON object per line, the rejection and the removal among them
    assert server.proc.stderr is not None
    records = [json.loads(line) for line in server.proc.stderr.read().splitlines() if line]
    assert any(r["level"] == "WARNING" and "rejected model file" in r["msg"] for r in records)
    assert any("removed model b" in r["msg"] for r in records)


def test_sigterm_mid_stream(model_dir: Path) -> None:
    """SIGTERM with a running stream and an open health Watch: the stream ends UNAVAILABLE
    with its resume frame, the watcher gets NOT_SERVING and its stream ends, and the server
    exits well inside the grace period (an open Watch used to hold it for all of it)."""
    server = start_server(model_dir, "--grace", "5")
    stub = server.stub()
    stream = stub.Generate(pb.GenerateRequest(model="crbm", n_frames=0, realtime=True))
    watch = health_pb2_grpc.HealthStub(grpc.insecure_channel(server.address)).Watch(
        health_pb2.HealthCheckRequest(service="")
    )
    statuses = [next(watch).status]
    watched = threading.Thread(target=lambda: statuses.extend(r.status for r in watch))
    watched.start()
    received = []

    def consume() -> None:
        try:
            for chunk in stream:
                received.extend(f.index for f in chunk.frames)
        except grpc.RpcError as err:
            received.append(err)

    t = threading.Thread(target=consume)
    t.start()
    while len(received) < 5:
        time.sleep(0.01)
    start = time.monotonic()
    assert server.stop() == 0
    elapsed = time.monotonic() - start
    t.join(timeout=10)
    watched.join(timeout=10)
    assert elapsed < 3.0, f"SIGTERM took {elapsed:.1f} s with a 5 s grace"
    serving, not_serving = (
        health_pb2.HealthCheckResponse.SERVING,
        health_pb2.HealthCheckResponse.NOT_SERVING,
    )
    assert statuses[0] == serving and statuses[-1] == not_serving and not watched.is_alive()
    err = received[-1]
    assert isinstance(err, grpc.RpcError) and err.code() == grpc.StatusCode.UNAVAILABLE
    assert "resume token (next frame " in err.details()


def test_token_auth(model_dir: Path) -> None:
    server = start_server(model_dir, "--token", "s3cret")
    try:
        stub = server.stub()
        for metadata in (None, [("authorization", "Bearer wrong")]):
            with pytest.raises(grpc.RpcError) as err:
                stub.ListModels(pb.ListModelsRequest(), metadata=metadata)
            assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
            with pytest.raises(grpc.RpcError) as err:
                list(stub.Generate(pb.GenerateRequest(n_frames=1), metadata=metadata))
            assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        for scheme in ("Bearer", "bearer", "BEARER"):  # RFC 7235: the scheme ignores case
            ok = [("authorization", f"{scheme} s3cret")]
            assert len(stub.ListModels(pb.ListModelsRequest(), metadata=ok).models) == 2
        for value in ("Basic s3cret", "s3cret", "Bearers3cret", "bearer S3CRET"):
            with pytest.raises(grpc.RpcError) as err:
                stub.ListModels(pb.ListModelsRequest(), metadata=[("authorization", value)])
            assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    finally:
        server.stop()


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("certs")
    for name in ("ca", "other_ca"):
        _openssl(
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            f"/CN={name}",
            "-keyout",
            f"{name}.key",
            "-out",
            f"{name}.pem",
            cwd=d,
        )
    ext = d / "san.ext"
    ext.write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    for name in ("server", "client"):
        _openssl(
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            f"/CN={name}",
            "-keyout",
            f"{name}.key",
            "-out",
            f"{name}.csr",
            cwd=d,
        )
        _openssl(
            "x509",
            "-req",
            "-in",
            f"{name}.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "san.ext",
            "-out",
            f"{name}.pem",
            cwd=d,
        )
    return d


def _secure_stub(address: str, ca: Path, cert: Path | None = None, key: Path | None = None):
    creds = grpc.ssl_channel_credentials(
        root_certificates=ca.read_bytes(),
        private_key=key.read_bytes() if key else None,
        certificate_chain=cert.read_bytes() if cert else None,
    )
    return pb_grpc.GenerationStub(grpc.secure_channel(address, creds))


def test_tls_and_client_certificates(model_dir: Path, certs: Path) -> None:
    server = start_server(
        model_dir, "--tls-cert", str(certs / "server.pem"), "--tls-key", str(certs / "server.key")
    )
    try:
        ok = _secure_stub(server.address, certs / "ca.pem")
        assert len(ok.ListModels(pb.ListModelsRequest(), timeout=10).models) == 2
        with pytest.raises(grpc.RpcError) as err:  # a client without the server's CA
            _secure_stub(server.address, certs / "other_ca.pem").ListModels(
                pb.ListModelsRequest(), timeout=5
            )
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        server.stop()
    # the failed handshake is not in the log: gRPC core is silent by default
    assert server.proc.stderr is not None
    lines = [line for line in server.proc.stderr.read().splitlines() if line]
    assert lines and all(line.startswith("{") for line in lines), lines
    mtls = start_server(
        model_dir,
        "--tls-cert",
        str(certs / "server.pem"),
        "--tls-key",
        str(certs / "server.key"),
        "--tls-client-ca",
        str(certs / "ca.pem"),
        "--grpc-log",
    )
    try:
        with_cert = _secure_stub(
            mtls.address, certs / "ca.pem", certs / "client.pem", certs / "client.key"
        )
        assert len(with_cert.ListModels(pb.ListModelsRequest(), timeout=10).models) == 2
        with pytest.raises(grpc.RpcError):
            _secure_stub(mtls.address, certs / "ca.pem").ListModels(
                pb.ListModelsRequest(), timeout=5
            )
    finally:
        mtls.stop()
    # --grpc-log turns gRPC core's lines back on: the refused client's handshake is there
    assert mtls.proc.stderr is not None
    core = [line for line in mtls.proc.stderr.read().splitlines() if not line.startswith("{")]
    assert any("andshake" in line for line in core), core


def test_tls_key_of_another_certificate(model_dir: Path, certs: Path) -> None:
    """A certificate with another certificate's key: one line naming both, exit status 2."""
    import sys

    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "seqboltz.cli",
            "serve",
            "--models",
            str(model_dir),
            "--port",
            "0",
            "--tls-cert",
            str(certs / "server.pem"),
            "--tls-key",
            str(certs / "client.key"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2
    errors = [line for line in out.stderr.splitlines() if not line.startswith("{")]
    assert len(errors) == 1 and "Traceback" not in out.stderr
    assert "client.key is not the private key of --tls-cert" in errors[0]
    assert "server.pem" in errors[0] and "bind" not in errors[0]


def test_embedded_default_model_and_generate_client(tmp_path: Path) -> None:
    """`seqboltz serve` with no --models serves the embedded motion CRBM; `seqboltz generate`
    streams from it and writes NPY, BVH and PNG (with ``--plant-feet``, a BVH whose feet slide
    less)."""
    import sys

    from seqboltz.motion import read_bvh

    server = start_server(None)
    try:
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "seqboltz.cli",
                "generate",
                "--server",
                server.address,
                "--frames",
                "90",
                "--seed",
                "4",
                "--out",
                str(tmp_path / "gen"),
                "--plot",
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert out.returncode == 0, out.stderr[-2000:]
        clip = read_bvh(tmp_path / "gen.bvh")
        assert clip.frames.shape[0] == 90 and np.isfinite(clip.frames).all()
        assert (tmp_path / "gen.png").stat().st_size > 1000
        assert np.load(tmp_path / "gen.npy").shape[0] == 90
        # the same stream with its feet planted on the card's floor: they slide less
        planted = subprocess.run(
            [
                *(sys.executable, "-m", "seqboltz.cli", "generate", "--server", server.address),
                *("--frames", "90", "--seed", "4", "--out", str(tmp_path / "planted")),
                "--plant-feet",
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert planted.returncode == 0, planted.stderr[-2000:]
        from seqboltz.eval._motion_metrics import foot_skating
        from seqboltz.motion import MotionFeatures, foot_joints, forward_kinematics
        from seqboltz.runtime import load_artifact

        embedded = Path(__file__).resolve().parents[2] / "serving" / "models" / "motion_crbm.onnx"
        features = MotionFeatures.from_dict(load_artifact(embedded).card["features"])
        assert features.contact is not None

        def skating(path: Path) -> float:
            c = read_bvh(path)
            pos = forward_kinematics(c.skeleton, c.frames)[:, foot_joints(c.skeleton.names)]
            return foot_skating(pos, c.fps, *features.contact)[0]

        assert skating(tmp_path / "planted.bvh") < 0.7 * skating(tmp_path / "gen.bvh")
    finally:
        assert server.stop() == 0


def test_main_job_demo(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`seqboltz demo` (the README's first command): server up, healthy, a streamed sequence
    saved as BVH + PNG, server stopped cleanly."""
    from seqboltz.cli import main
    from seqboltz.motion import read_bvh

    assert main(["demo", "--frames", "60", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "health SERVING" in out and "exit code 0" in out
    assert read_bvh(tmp_path / "generated.bvh").frames.shape[0] == 60
    assert (tmp_path / "generated.png").stat().st_size > 1000
    # the body, real held-out motion beside the generated
    assert "the body, real beside generated" in out
    for name in ("body_filmstrip.png", "body.gif"):
        assert (tmp_path / name).stat().st_size > 10_000


def test_running_stream_keeps_its_model_version(model_dir: Path, tmp_path: Path) -> None:
    """A reload replaces the model for new streams; a running stream finishes on the version
    it started with (its frames equal that version's offline frames)."""
    from seqboltz.runtime import load_artifact

    folder = tmp_path / "repo"
    folder.mkdir()
    shutil.copy(model_dir / "crbm.onnx", folder / "m.onnx")
    server = start_server(folder)
    try:
        stub = server.stub()
        request = pb.GenerateRequest(model="m", n_frames=150, realtime=True, seed=9)
        got, reloaded_mid_stream = [], False
        for chunk in stub.Generate(request):
            got.extend(list(f.values) for f in chunk.frames)
            if len(got) == 5:  # swap the file mid-stream (same frame size, other weights)
                tmp = folder / "m.tmp"
                shutil.copy(model_dir / "fcrbm.onnx", tmp)
                tmp.rename(folder / "m.onnx")
            if len(got) == 120:  # 4 s in: new streams already get the new version
                info = stub.GetModel(pb.GetModelRequest(name="m"))
                reloaded_mid_stream = info.style_size == 1
        assert reloaded_mid_stream
        expected = load_artifact(model_dir / "crbm.onnx").generate(150, seed=9, count=1)[0]
        assert np.abs(np.asarray(got) - expected).max() <= 1e-4
    finally:
        server.stop()


def test_cli_bad_input(model_dir: Path, tmp_path: Path) -> None:
    """A taken port, a missing model folder and a malformed --style get one clear line."""
    import sys

    server = start_server(model_dir)
    try:
        port = server.address.rsplit(":", 1)[1]
        cli = [sys.executable, "-m", "seqboltz.cli"]
        taken = subprocess.run(
            [*cli, "serve", "--models", str(model_dir), "--port", port],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert taken.returncode == 2 and "seqboltz serve: error:" in taken.stderr
        metrics = str(server.metrics_port)
        metrics_taken = subprocess.run(
            [*cli, "serve", "--models", str(model_dir), "--port", "0", "--metrics-port", metrics],
            capture_output=True,
            text=True,
            timeout=60,
        )
        errors = [line for line in metrics_taken.stderr.splitlines() if not line.startswith("{")]
        assert metrics_taken.returncode == 2 and "Traceback" not in metrics_taken.stderr
        assert errors == [
            f"seqboltz serve: error: cannot serve metrics on 127.0.0.1:{server.metrics_port}: "
            "Address already in use"
        ]
        missing = subprocess.run(
            [*cli, "serve", "--models", str(tmp_path / "nope"), "--port", "0"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert missing.returncode == 2 and "does not exist" in missing.stderr
        bad_style = subprocess.run(
            [
                *cli,
                "generate",
                "--server",
                server.address,
                "--style",
                "fast",
                "--out",
                str(tmp_path / "g"),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert bad_style.returncode == 2 and "--style must be comma-separated" in bad_style.stderr
        assert not list(tmp_path.glob("g*"))  # nothing written
    finally:
        server.stop()


def test_diverged_model_ends_the_stream_with_a_clear_status(diverging_dir: Path) -> None:
    """A real exported model that blows up: the client gets every finite frame, then INTERNAL
    "model diverged at frame N" (N from the runtime), and the metric counts the stream."""
    from seqboltz.runtime import ModelDiverged, load_artifact

    art = load_artifact(diverging_dir / "diverging.onnx")
    with pytest.raises(ModelDiverged) as expected:
        art.generate(400, seed=5, count=1)
    n = expected.value.frame
    server = start_server(diverging_dir)
    try:
        stub = server.stub()
        got: list[list[float]] = []
        request = pb.GenerateRequest(model="diverging", n_frames=400, seed=5, frames_per_message=64)
        with pytest.raises(grpc.RpcError) as err:
            for chunk in stub.Generate(request):
                got.extend(list(f.values) for f in chunk.frames)
        assert err.value.code() == grpc.StatusCode.INTERNAL
        assert f"model diverged at frame {n}" in err.value.details()
        assert len(got) == n and np.isfinite(got).all()
        np.testing.assert_allclose(got, art.generate(n, seed=5, count=1)[0], rtol=1e-9)
        text = urllib.request.urlopen(f"http://127.0.0.1:{server.metrics_port}/metrics").read()
        assert 'seqboltz_diverged_streams_total{model="diverging"} 1.0' in text.decode()
        assert len(list(stub.Generate(pb.GenerateRequest(model="diverging", n_frames=5)))) >= 1
    finally:
        assert server.stop() == 0
