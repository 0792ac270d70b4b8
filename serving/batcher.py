"""Batching across streams: pending work of every active stream of one model runs as one
runtime call per Gibbs-step count (bounded batch size and wait).

Two kinds of work share a batcher: a *step* (one frame of a stream's ``B`` rows,
:meth:`StepBatcher.step`, e.g. Speak) and a *chunk* (the next ``n`` frames of one stream,
:meth:`StepBatcher.chunk`: the paced and unpaced frame streams, which compute a message's
frames ahead in one go). A chunk brings its history window, conditioning and noise generator;
its noise is drawn in the worker thread, and the ``n`` steps of every chunk in a batch run as
``n`` runtime calls over the batch's rows: the runtime's multi-frame step,
:func:`seqboltz.runtime.step_frames` (the same frames as each stream alone).

Every step is computed in float64, so a stream's frames are the same whatever else shares its
batch. Streams may run at different ``k`` (Gibbs steps per frame, the noise's second
dimension): the work of one ``k`` runs as one call, each ``k`` its own call, so no stream's
frame is computed with another's number of steps.

Each request says how long it may wait for batch-mates: steps and urgent chunks
``max_wait``, a chunk computed ahead of its time longer (the servicer passes part of its
look-ahead), so that batches fill while every stream still gets its frames in time. Urgent
work and work ahead of time run in two lanes, each its own worker and runtime calls (in
parallel threads), so an urgent chunk (a Steer change's revision) never waits behind a
large batch computed ahead.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import Executor
from typing import Any, NamedTuple

import numpy as np

from seqboltz.runtime import Artifact, StepInputs, step_frames

__all__ = ["Chunk", "ChunkInputs", "StepBatcher"]


class ChunkInputs(NamedTuple):
    """The next ``n_frames`` frames of one stream (one row).

    Attributes:
        history: ``(order, D)``, most recent frame first.
        rng: the stream's noise generator at the chunk's first frame (advanced by the chunk).
        n_frames: frames to compute (``≥ 1``).
        gibbs_steps: ``k``, Gibbs steps per frame.
        style: ``(S,)`` for every frame of the chunk, or ``None``.
        controls: ``(C,)``, or ``None``.
    """

    history: np.ndarray
    rng: np.random.Generator
    n_frames: int
    gibbs_steps: int
    style: np.ndarray | None
    controls: np.ndarray | None


class Chunk(NamedTuple):
    """A computed chunk: its finite frames ``(m, D)``; ``m < n_frames`` only when frame ``m``
    of the chunk was not finite (``diverged``), and the frames after it were dropped."""

    frames: np.ndarray
    diverged: bool


class _Item(NamedTuple):
    request: StepInputs | ChunkInputs
    future: asyncio.Future[Any]
    deadline: float  # loop time by which its batch starts


class _Lane:
    """Pending work of one kind (urgent, or ahead of time) and its worker task."""

    def __init__(self) -> None:
        self.pending: list[_Item] = []
        self.kick: asyncio.Future[None] | None = None  # the worker waits on it
        self.wake_at = float("inf")  # the earliest deadline the worker is waiting for
        self.worker: asyncio.Task[None] | None = None

    def wake(self) -> None:
        if self.kick is not None and not self.kick.done():
            self.kick.set_result(None)


class StepBatcher:
    """Collects steps and chunks for one artifact and runs them together.

    Args:
        artifact: the model.
        max_batch: most rows (streams) per runtime call (1: batching off).
        max_wait: seconds a step (or an urgent chunk) waits for others.
        executor: where the runtime calls run (off the event loop).
        observe: ``observe(rows, seconds)`` after every batch (metrics).
    """

    def __init__(
        self,
        artifact: Artifact,
        max_batch: int = 256,
        max_wait: float = 0.002,
        executor: Executor | None = None,
        observe: object | None = None,
    ) -> None:
        if max_batch < 1 or max_wait < 0:
            raise ValueError(f"need max_batch >= 1 and max_wait >= 0; got {max_batch}, {max_wait}")
        self.artifact = artifact
        self.max_batch = max_batch
        self.max_wait = max_wait
        self.executor = executor
        self.observe = observe
        self._lanes = (_Lane(), _Lane())  # urgent, ahead of time
        self.streams = 0  # open streams: once each has work pending, nothing is worth waiting

    def open(self) -> None:
        """A stream starts using this batcher."""
        self.streams += 1

    def close(self) -> None:
        """A stream ends."""
        self.streams = max(0, self.streams - 1)

    @property
    def _worker(self) -> asyncio.Task[None] | None:
        """The urgent lane's worker task (``None`` before the first step)."""
        return self._lanes[0].worker

    def shutdown(self) -> None:
        """Stop the worker tasks (once no stream uses this batcher any more)."""
        for lane in self._lanes:
            if lane.worker is not None and not lane.worker.done():
                lane.worker.cancel()
            lane.worker = None

    async def step(self, request: StepInputs) -> np.ndarray:
        """The next frames ``(B, D)`` of one stream's ``B`` rows (usually 1)."""
        result: np.ndarray = await self._enqueue(self._lanes[0], request, self.max_wait)
        return result

    def chunk(self, request: ChunkInputs, wait: float | None = None) -> asyncio.Future[Chunk]:
        """A future of the stream's next ``request.n_frames`` frames; the request waits at
        most ``wait`` seconds for batch-mates (``None``: ``max_wait``). Cancel the future to
        drop a chunk that is no longer wanted (e.g. a Steer change superseded it)."""
        if request.n_frames < 1:
            raise ValueError(f"a chunk has at least one frame; got {request.n_frames}")
        if wait is None or wait <= self.max_wait:
            return self._enqueue(self._lanes[0], request, self.max_wait)
        return self._enqueue(self._lanes[1], request, wait)

    def _enqueue(
        self, lane: _Lane, request: StepInputs | ChunkInputs, wait: float
    ) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        if lane.worker is None or lane.worker.done():
            lane.worker = loop.create_task(self._run(lane))
        future: asyncio.Future[Any] = loop.create_future()
        deadline = loop.time() + wait
        lane.pending.append(_Item(request, future, deadline))
        if len(lane.pending) >= self._target() or deadline < lane.wake_at:
            lane.wake()
        return future

    def _target(self) -> int:
        return min(self.max_batch, max(1, self.streams))

    async def _collect(self, lane: _Lane) -> list[_Item]:
        """A lane's next batch: at most ``max_batch`` items, once the batch is full (every
        open stream has work pending) or its most urgent item's deadline has come."""
        loop = asyncio.get_running_loop()
        while True:
            lane.pending = [i for i in lane.pending if not i.future.done()]  # cancelled
            if lane.pending:
                deadline = min(i.deadline for i in lane.pending)
                if len(lane.pending) >= self._target() or deadline <= loop.time():
                    break
            else:
                deadline = float("inf")
            lane.kick = loop.create_future()
            lane.wake_at = deadline
            timer = loop.call_at(deadline, lane.wake) if deadline < float("inf") else None
            try:
                await lane.kick
            finally:
                lane.wake_at = float("inf")
                if timer is not None:
                    timer.cancel()
        lane.pending.sort(key=lambda i: i.deadline)
        batch, lane.pending = lane.pending[: self.max_batch], lane.pending[self.max_batch :]
        return batch

    def _compute(self, requests: list[StepInputs | ChunkInputs]) -> list[Any]:
        """One runtime call per ``k`` (and kind) among the pending work; each request's
        result."""
        groups: dict[tuple[bool, int], list[int]] = {}
        for i, r in enumerate(requests):
            if isinstance(r, ChunkInputs):
                groups.setdefault((True, r.gibbs_steps), []).append(i)
            else:
                groups.setdefault((False, r.noise.shape[1]), []).append(i)
        out: list[Any] = [None] * len(requests)
        for (chunked, _), group in groups.items():
            batch: list[Any] = [requests[i] for i in group]
            results = self._chunks(batch) if chunked else self._call(batch)
            for i, result in zip(group, results, strict=True):
                out[i] = result
        return out

    def _call(self, requests: list[StepInputs]) -> list[np.ndarray]:
        """One runtime call for steps of one ``k``; each request's rows of the result."""
        art = self.artifact

        def joined(parts: list[np.ndarray | None]) -> np.ndarray | None:
            given = [p for p in parts if p is not None]
            return np.concatenate(given) if given else None

        frames = art.step(
            np.concatenate([r.history for r in requests]),
            np.concatenate([r.noise for r in requests]),
            joined([r.style for r in requests]),
            joined([r.controls for r in requests]),
        )
        bounds = np.cumsum([r.history.shape[0] for r in requests])[:-1]
        return np.split(frames, bounds)

    def _chunks(self, requests: list[ChunkInputs]) -> list[Chunk]:
        """The chunks of one ``k``: the runtime's multi-frame step over their rows
        (:func:`~seqboltz.runtime.step_frames`)."""
        first = requests[0]

        def stacked(parts: list[np.ndarray | None]) -> np.ndarray | None:
            return None if parts[0] is None else np.stack(parts)  # type: ignore[arg-type]

        frames = step_frames(
            self.artifact.step,
            np.stack([r.history for r in requests]),
            [r.rng for r in requests],
            [r.n_frames for r in requests],
            first.gibbs_steps,
            self.artifact.noise_width,
            stacked([r.style for r in requests]),
            stacked([r.controls for r in requests]),
            steps=self.artifact.steps,
        )
        return [Chunk(f, f.shape[0] < r.n_frames) for f, r in zip(frames, requests, strict=True)]

    async def _run(self, lane: _Lane) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._collect(lane)
            if not batch:
                continue
            start = time.perf_counter()
            try:
                results = await loop.run_in_executor(
                    self.executor, self._compute, [i.request for i in batch]
                )
            except Exception as exc:  # every waiting stream gets the error
                for item in batch:
                    if not item.future.done():
                        item.future.set_exception(exc)
                continue
            if callable(self.observe):
                rows = sum(
                    1 if isinstance(i.request, ChunkInputs) else i.request.history.shape[0]
                    for i in batch
                )
                self.observe(rows, time.perf_counter() - start)
            for item, result in zip(batch, results, strict=True):
                if not item.future.done():
                    item.future.set_result(result)
