"""Offline batch synthesis on a Ray cluster: ``seqboltz synthesize … --ray [ADDRESS]``.

The chunks of a job (or of its ``--shard``) run as Ray tasks, each one the same per-chunk
function as a one-machine run (:func:`seqboltz.runtime._synthesize._run_chunk`), so the files
are byte-identical to one machine's. A chunk writes each file by an atomic rename and skips the
files that exist, so a task that Ray retries (its worker died, or it raised) and a rerun of an
interrupted job finish the missing files without rewriting or duplicating any; the driver
writes the shard's manifest as a one-machine run does.

Every Ray node needs ``seqboltz[runtime]`` (the writers of the chosen format too) and must see
the model and the output folder at the same paths as the driver (a shared filesystem). Ray is
imported only here and only when asked for: ``pip install 'seqboltz[distributed]'``.

>>> job = SynthesisJob(model="motion.onnx", out="gen", count=10_000, frames=900)  # doctest: +SKIP
>>> run_synthesis_ray(job, address="auto")  # an existing cluster  # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

from seqboltz.errors import BadRequest
from seqboltz.runtime._synthesize import SynthesisJob, _run_chunk, run_synthesis

__all__ = ["ChunkTask", "ray_map_chunks", "run_synthesis_ray"]

#: a per-chunk function: ``(job, sequence indices) -> {"written": [...], "diverged": [...]}``
ChunkTask = Callable[[SynthesisJob, list[int]], dict[str, list[Any]]]
ChunkResults = Iterator[dict[str, list[Any]]]

#: seconds an interrupted run waits for its cancelled tasks to end
_CANCEL_WAIT_S = 60.0


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise BadRequest("--ray needs Ray: pip install 'seqboltz[distributed]'") from None
    return ray


def ray_map_chunks(
    *, task: ChunkTask = _run_chunk, max_retries: int = 3, num_cpus: float = 1.0
) -> Callable[[SynthesisJob, list[list[int]]], ChunkResults]:
    """A ``map_chunks`` for :func:`~seqboltz.runtime._synthesize.run_synthesis` that runs
    every chunk as a Ray task on the cluster ``ray`` is connected to, yielding each chunk's
    result as it finishes.

    Args:
        task: the per-chunk function (the one-machine one by default).
        max_retries: times Ray reruns a chunk whose worker died or which raised; after that the
            run stops with :class:`RuntimeError` (a rerun resumes it). The chunks still running
            then are ended with their workers (a file being written is left as a hidden
            temporary file, ``.seq_….tmp``, which a rerun ignores).
        num_cpus: CPUs a task holds (each chunk runs one single-threaded ONNX session).
    """
    ray = _import_ray()
    remote = ray.remote(num_cpus=num_cpus, max_retries=max_retries, retry_exceptions=True)(task)

    def map_chunks(job: SynthesisJob, chunks: list[list[int]]) -> ChunkResults:
        pending = {remote.remote(job, chunk): chunk for chunk in chunks}
        try:
            while pending:
                (ready,), _ = ray.wait(list(pending), num_returns=1)
                chunk = pending.pop(ready)
                try:
                    yield ray.get(ready)
                except ray.exceptions.RayError as exc:
                    cause = getattr(exc, "cause", None) or exc
                    raise RuntimeError(
                        f"synthesis of sequences {chunk[0]}..{chunk[-1]} failed after "
                        f"{max_retries} retries: {type(cause).__name__}: {cause}; "
                        "rerun the same command to resume"
                    ) from None
        finally:  # an interrupted run leaves no task behind
            for ref in pending:
                # force: a running chunk ends with its worker. Without it Ray raises
                # KeyboardInterrupt wherever the task happens to be, say halfway through its
                # first `import onnx`, and reuses the worker with that module half-initialised:
                # every chunk it runs after that fails, a resume in this process included.
                ray.cancel(ref, force=True)
            if pending:  # and nothing of this run writes once it has returned
                ray.wait(list(pending), num_returns=len(pending), timeout=_CANCEL_WAIT_S)

    return map_chunks


def run_synthesis_ray(
    job: SynthesisJob,
    address: str | None = None,
    progress: bool = True,
    *,
    task: ChunkTask = _run_chunk,
    max_retries: int = 3,
) -> dict[str, Any]:
    """Run (or resume) a synthesis job with its chunks as Ray tasks; returns the manifest.

    Args:
        job: what to synthesise (its ``shard`` too: the tasks cover that shard's chunks).
        address: the cluster (``"auto"``, ``"HOST:6379"``, ``"ray://HOST:10001"``); ``None``:
            ``$RAY_ADDRESS`` if set, else a local cluster on this machine. A process already
            connected (``ray.init`` called) keeps its cluster.
        progress: a progress bar on stderr.
        task: the per-chunk function (tests inject failures here).
        max_retries: see :func:`ray_map_chunks`.

    Raises:
        BadRequest: Ray is not installed, or the cluster cannot be reached.
        RuntimeError: a chunk still failed after ``max_retries`` retries.
    """
    ray = _import_ray()
    started = not ray.is_initialized()
    if started:
        try:
            ray.init(
                address=address or os.environ.get("RAY_ADDRESS") or None,
                include_dashboard=False,
                logging_level="WARNING",
                log_to_driver=False,
            )
        except ConnectionError as exc:
            raise BadRequest(f"--ray: cannot reach the Ray cluster at {address!r}: {exc}") from None
    try:
        map_chunks = ray_map_chunks(task=task, max_retries=max_retries)
        return run_synthesis(job, progress=progress, map_chunks=map_chunks)
    finally:
        if started:
            ray.shutdown()
