"""The servicer in-process: stream accounting and batchers across hot reloads."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from seqboltz.errors import ModelLoading, ModelNotFound
from seqboltz.v1 import generation_pb2 as pb
from serving import repository
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


def test_removed_model_file_removes_the_model(
    model_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """New streams get ModelNotFound (NOT_FOUND); a running stream finishes; a log line."""
    shutil.copy(model_dir / "crbm.onnx", tmp_path / "a.onnx")
    shutil.copy(model_dir / "crbm.onnx", tmp_path / "b.onnx")
    repo = ModelRepository(tmp_path)
    servicer = GenerationServicer(repo, Limits(), Metrics())

    async def scenario() -> None:
        running = servicer._open(pb.GenerateRequest(model="b", seed=2))
        first = await running.next()
        (tmp_path / "b.onnx").unlink()
        with caplog.at_level(logging.INFO, logger="seqboltz.serving"):
            assert await repo.scan_async() == ["b"]
        assert sorted(repo.models) == ["a"]
        with pytest.raises(ModelNotFound, match="unknown model 'b'"):
            servicer._open(pb.GenerateRequest(model="b"))
        rest = [await running.next() for _ in range(3)]
        expected = running.model.artifact.generate(4, seed=2, count=1)[0]
        np.testing.assert_array_equal(np.stack([first, *rest]), expected)
        servicer._release(running)
        assert servicer._batchers == {}  # the removed model's batcher went with its stream

    asyncio.run(scenario())
    assert any("removed model b" in r.getMessage() for r in caplog.records)


def test_reload_runs_off_the_event_loop(
    model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Loading a (slow) new model file does not block the loop; meanwhile the name is
    ModelLoading (UNAVAILABLE), then it serves."""
    shutil.copy(model_dir / "crbm.onnx", tmp_path / "a.onnx")
    repo = ModelRepository(tmp_path)
    real_load = repository._load

    def slow_load(path: Path, threads: int) -> repository.Model:
        time.sleep(0.8)  # a large ONNX file
        return real_load(path, threads)

    monkeypatch.setattr(repository, "_load", slow_load)
    shutil.copy(model_dir / "fcrbm.onnx", tmp_path / "big.onnx")

    async def scenario() -> tuple[float, int, list[str]]:
        loop = asyncio.get_running_loop()
        scan = loop.create_task(repo.scan_async())
        worst, last, loading = 0.0, loop.time(), 0
        while not scan.done():
            await asyncio.sleep(0.01)
            now = loop.time()
            worst, last = max(worst, now - last), now
            if not scan.done() and "big" in repo.loading:
                with pytest.raises(ModelLoading, match="'big' is loading"):
                    repo.get("big")
                loading += 1
        return worst, loading, await scan

    worst, loading, changed = asyncio.run(scenario())
    assert loading > 10  # the loop kept turning while the file loaded
    assert changed == ["big"] and repo.get("big").artifact.style_size == 1
    assert worst < 0.3, f"the event loop stalled {worst:.2f} s during a reload"
