"""A real server process over loopback, serving tiny exported models."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
import torch

from seqboltz.export import build_card, export_onnx
from seqboltz.models import ConditionalRBM, FactoredConditionalRBM
from seqboltz.v1 import generation_pb2_grpc as pb_grpc

D, H, ORDER, K = 8, 12, 3, 5


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    crbm = ConditionalRBM(D, H, ORDER, init_std=0.1).double()
    export_onnx(crbm, folder / "crbm.onnx", build_card(crbm, name="crbm", gibbs_steps=K), K)
    torch.manual_seed(1)
    fcrbm = FactoredConditionalRBM(D, H, ORDER, n_style=1, n_factors=6, init_std=0.3).double()
    export_onnx(fcrbm, folder / "fcrbm.onnx", build_card(fcrbm, name="fcrbm", gibbs_steps=K), K)
    return folder


@dataclass
class Server:
    proc: subprocess.Popen[str]
    address: str
    metrics_port: int | None
    folder: Path

    def stub(self, **kw: object) -> pb_grpc.GenerationStub:
        return pb_grpc.GenerationStub(grpc.insecure_channel(self.address))

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=30)


def start_server(folder: Path | None, *extra: str, env: dict[str, str] | None = None) -> Server:
    cmd = [sys.executable, "-m", "seqboltz.cli", "serve", "--port", "0", "--metrics-port", "0"]
    if folder is not None:
        cmd += ["--models", str(folder)]
    proc = subprocess.Popen(
        [*cmd, *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore", **(env or {})},
    )
    assert proc.stdout is not None
    deadline = time.time() + 60
    line = ""
    while time.time() < deadline:
        line = proc.stdout.readline()
        if line.startswith("{"):
            break
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {proc.stderr.read() if proc.stderr else ''}")
    info = json.loads(line)["listening"]
    return Server(proc, info["address"], info["metrics_port"], folder or Path())


@pytest.fixture(scope="module")
def server(model_dir: Path) -> Iterator[Server]:
    s = start_server(model_dir)
    yield s
    s.stop()
