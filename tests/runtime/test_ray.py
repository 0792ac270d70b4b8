"""``seqboltz synthesize --ray`` on a local Ray cluster that this module starts (2 CPUs): the
files equal a one-machine run byte for byte, a task whose worker dies is retried without
rewriting or duplicating a file, an interrupted run ends the chunks still running with their
workers, and it resumes to the same files."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from seqboltz.cli import main
from seqboltz.runtime._synthesize import SynthesisJob, _run_chunk, run_synthesis

ray = pytest.importorskip("ray")
from seqboltz.runtime._ray import run_synthesis_ray  # noqa: E402

# the failing tasks below travel to the workers by value (this module is not importable there)
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])

COMMON: dict[str, Any] = {"count": 10, "frames": 20, "seed": 3, "chunk": 2}


@pytest.fixture(scope="module")
def cluster() -> Iterator[None]:
    """A local Ray cluster of 2 CPUs (starting it takes most of this module's time)."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="WARNING")
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def reference(crbm_path: tuple[Any, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("one-machine")
    job = SynthesisJob(model=str(crbm_path[1]), out=str(out), **COMMON)
    run_synthesis(job, workers=1, progress=False)
    return out


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.glob("seq_*"))}


def _die_once(job: SynthesisJob, indices: list[int]) -> dict[str, list[Any]]:
    """The real chunk; the first time chunk 0 runs, its worker dies after writing the files."""
    result = _run_chunk(job, indices)
    marker = Path(job.out).parent / "died"
    if indices[0] == 0 and not marker.exists():
        marker.touch()
        os._exit(1)
    return result


def _fail_at_4(job: SynthesisJob, indices: list[int]) -> dict[str, list[Any]]:
    """The real chunk, except that the chunk holding sequence 4 always fails."""
    if 4 in indices:
        raise OSError("the shared disk went away")
    return _run_chunk(job, indices)


def _fail_at_4_beside_a_long_chunk(job: SynthesisJob, indices: list[int]) -> dict[str, list[Any]]:
    """The real chunk, except: the chunk of sequence 6 runs for a minute (it writes its
    worker's pid to ``long-started``, and ``interrupted`` if something raises inside it), and
    the chunk of sequence 4 fails once that one is running."""
    folder = Path(job.out).parent
    if 6 in indices:
        (folder / "long-starting").write_text(str(os.getpid()))
        (folder / "long-starting").rename(folder / "long-started")
        try:
            time.sleep(60)
        except BaseException:
            (folder / "interrupted").touch()
            raise
    if 4 in indices:
        deadline = time.monotonic() + 60
        while not (folder / "long-started").exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        raise OSError("the shared disk went away")
    return _run_chunk(job, indices)


@pytest.mark.slow
def test_cli_on_ray_equals_one_machine(
    cluster: None, crbm_path: tuple[Any, Path], reference: Path, tmp_path: Path
) -> None:
    out = tmp_path / "ray"
    args = [f"--{k}={v}" for k, v in COMMON.items()]
    code = main(["synthesize", f"--model={crbm_path[1]}", f"--out={out}", *args, "--ray"])
    assert code == 0
    assert _files(out) == _files(reference) and len(_files(out)) == COMMON["count"]
    manifest = json.loads((out / "manifest.shard-0-of-1.json").read_text())
    expected = json.loads((reference / "manifest.shard-0-of-1.json").read_text())
    for m in (manifest, expected):
        del m["seconds"], m["model"]
    assert manifest == expected


@pytest.mark.slow
def test_a_dead_worker_is_retried_without_rewriting(
    cluster: None, crbm_path: tuple[Any, Path], reference: Path, tmp_path: Path
) -> None:
    out = tmp_path / "ray"
    job = SynthesisJob(model=str(crbm_path[1]), out=str(out), **COMMON)
    manifest = run_synthesis_ray(job, progress=False, task=_die_once)
    died = tmp_path / "died"
    assert died.exists(), "the fault was not injected"
    assert _files(out) == _files(reference)
    assert [f["index"] for f in manifest["files"]] == list(range(COMMON["count"]))
    # chunk 0 was written before its worker died and not rewritten by the retry
    for name in ("seq_000000.npy", "seq_000001.npy"):
        assert (out / name).stat().st_mtime_ns <= died.stat().st_mtime_ns
    names = {p.name for p in out.iterdir()}  # nothing half-written or extra
    assert names == set(_files(reference)) | {"manifest.shard-0-of-1.json"}


@pytest.mark.slow
def test_an_interrupted_run_resumes(
    cluster: None, crbm_path: tuple[Any, Path], reference: Path, tmp_path: Path
) -> None:
    out = tmp_path / "ray"
    job = SynthesisJob(model=str(crbm_path[1]), out=str(out), **COMMON)
    with pytest.raises(RuntimeError, match=r"sequences 4\.\.5 failed after 1 retries: OSError"):
        run_synthesis_ray(job, progress=False, task=_fail_at_4, max_retries=1)
    first = {p.name: p.stat().st_mtime_ns for p in out.glob("seq_*")}
    assert "seq_000004.npy" not in first and not list(out.glob("manifest*"))
    run_synthesis_ray(job, progress=False)
    assert _files(out) == _files(reference)
    assert {n: (out / n).stat().st_mtime_ns for n in first} == first  # kept, not recomputed


def test_without_ray_the_flag_is_one_line(
    crbm_path: tuple[Any, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` fails as if not installed
    args = ["synthesize", f"--model={crbm_path[1]}", f"--out={tmp_path}", "--count=1"]
    with pytest.raises(SystemExit) as exit_info:
        main([*args, "--frames=2", "--ray"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    needs = "--ray needs Ray: pip install 'seqboltz[distributed]'"
    assert err == f"seqboltz synthesize: error: {needs}\n"


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_a_stopped_run_ends_its_running_chunks_with_their_workers(
    cluster: None, crbm_path: tuple[Any, Path], tmp_path: Path
) -> None:
    """A chunk still running when the run stops is ended with its worker, not interrupted
    inside it: Ray's KeyboardInterrupt lands wherever the task is (in the middle of a first
    ``import onnx``, say), and the worker, reused with that module half-initialised, fails
    every chunk it runs after that, a resume's included."""
    out = tmp_path / "ray"
    job = SynthesisJob(model=str(crbm_path[1]), out=str(out), **COMMON)
    with pytest.raises(RuntimeError, match=r"sequences 4\.\.5 failed after 0 retries: OSError"):
        run_synthesis_ray(job, progress=False, task=_fail_at_4_beside_a_long_chunk, max_retries=0)
    worker = int((tmp_path / "long-started").read_text())
    deadline = time.monotonic() + 10  # its exit is reported as it closes its sockets
    while _alive(worker) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not _alive(worker), "the long chunk's worker lives on"
    assert not (tmp_path / "interrupted").exists()
    assert not list(out.glob("seq_00000[67].npy"))


def _alive(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie, exited but not yet reaped, does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")
