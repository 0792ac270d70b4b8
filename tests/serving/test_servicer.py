"""The servicer in-process: stream accounting and batchers across hot reloads."""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path

from seqboltz.v1 import generation_pb2 as pb
from serving.metrics import Metrics
from serving.repository import ModelRepository
from serving.servicer import GenerationServicer, Limits


def test_replaced_model_versions_release_their_batchers(model_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "models"
    folder.mkdir()
    shutil.copy(model_dir / "crbm.onnx", folder / "crbm.onnx")
    repo = ModelRepository(folder)
    servicer = GenerationServicer(repo, Limits(), Metrics())

    async def scenario() -> None:
        old = servicer._open(pb.GenerateRequest(model="crbm", n_frames=2, seed=1))
        first = await old.next()  # starts the batcher's worker task
        worker = old.batcher._worker
        assert first.shape == (old.model.artifact.frame_size,) and worker is not None
        assert servicer.active == 1 and len(servicer._batchers) == 1
        # hot reload: a new version of the same name (another model's file under this name)
        shutil.copy(model_dir / "fcrbm.onnx", folder / "crbm.onnx")
        os.utime(folder / "crbm.onnx", ns=(1, 1))
        assert repo.scan() == ["crbm"]
        new = servicer._open(pb.GenerateRequest(model="crbm", n_frames=2, seed=1, style=[0.5]))
        assert len(servicer._batchers) == 2 and new.batcher is not old.batcher
        servicer._release(new)  # the current version's batcher stays for the next stream
        assert len(servicer._batchers) == 2
        servicer._release(old)  # the last stream on the old version: its batcher goes
        assert list(servicer._batchers.values()) == [new.batcher]
        assert servicer.active == 0
        await asyncio.sleep(0)
        assert worker.cancelled() and old.batcher._worker is None

    asyncio.run(scenario())
