"""Start a real ``seqboltz serve`` process over loopback (shared by the serving tests)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import grpc

from seqboltz.v1 import generation_pb2_grpc as pb_grpc


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
