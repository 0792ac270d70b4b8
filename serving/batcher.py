"""Batching across streams: pending work of every active stream of one model runs as one
runtime call per Gibbs-step count (bounded batch size and wait).

Two kinds of work share a batcher: a *step* (one frame of a stream's ``B`` rows,
:meth:`StepBatcher.step`, e.g. Speak) and a *chunk* (the next ``n`` frames of one stream,
:meth:`StepBatcher.chunk`: the paced and unpaced frame streams, which compute a message's
frames ahead in one go). A chunk brings its history window, conditioning and noise generator;
its noise is drawn in the worker thread, and the chunks of a batch run through the runtime's
multi-frame step, :func:`seqboltz.runtime.step_frames` (the same frames as each stream
alone).

Every step is computed in float64, so a stream's frames are the same whatever else shares its
batch. Streams may run at different ``k`` (Gibbs steps per frame, the noise's second
dimension): the work of one ``k`` runs as one call, each ``k`` its own call, so no stream's
frame is computed with another's number of steps.

Each request says how long it may wait for batch-mates: steps and urgent chunks
``max_wait``, a chunk computed ahead of its time longer (the producer passes the time until
its message is due, less a margin), so that batches fill while every stream still gets its
frames in time. Urgent work and work ahead of time run in two lanes, each its own worker and
thread, so an urgent chunk (a Steer change's revision) never waits behind a batch computed
ahead. The lane ahead of time starts a batch on a cadence (:data:`AHEAD_CADENCE`) with the
chunks whose deadline is within a horizon (:data:`AHEAD_HORIZON`), most urgent first, at
most :data:`AHEAD_ROWS` of them: work is done shortly before it is needed, in batches of
tens of streams, a burst of requests spreads over time, and a chunk superseded before its
turn (a Steer change) is never computed. Its frames come from the runtime in one call per
distinct chunk length (:meth:`~seqboltz.runtime.Artifact.steps`, a loop over frames inside
the graph), so a batch does not return to Python, and wait for the GIL, between frames.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import Any, NamedTuple

import numpy as np

from seqboltz.runtime import Artifact, StepInputs, step_frames

__all__ = [
    "AHEAD_CADENCE",
    "AHEAD_HORIZON",
    "AHEAD_ROWS",
    "Chunk",
    "ChunkInputs",
    "StepBatcher",
]

#: seconds between batches of chunks computed ahead of their time (at 1,000 paced streams of
#: 30-frame messages: about 30 chunks and the follow-ups of 6 Steer revisions a batch)
AHEAD_CADENCE = 0.03
#: most chunks in one batch computed ahead of time (a batch takes about 25 ms of CPU at 30
#: frames a chunk, so a chunk due soon never waits long behind a backlog)
AHEAD_ROWS = 64
#: a chunk computed ahead of time joins a batch once its deadline is this close: work is
#: done about this long before it is needed, not as soon as it is asked for, so a burst of
#: requests (a crowd of streams starting) spreads over time, and a chunk that a Steer change
#: supersedes before then is never computed
AHEAD_HORIZON = 0.3


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
    rank: float  # its place in line when there is more work than a batch: deadline + defer


class _Lane:
    """Pending work of one kind (urgent, or ahead of time), its worker task and the thread its
    batches run in. A lane with a ``cadence`` (ahead of time) starts a batch at most every
    ``cadence`` seconds with the items within ``horizon`` of their deadline, unless an item's
    deadline comes first or the batch is full."""

    def __init__(self, name: str, cadence: float | None = None, horizon: float = 0.0) -> None:
        self.name = name
        self._thread: ThreadPoolExecutor | None = None
        self.cadence = cadence
        self.horizon = horizon  # items whose deadline is this close may start a batch
        self.next_run = -float("inf")  # loop time of the next batch by cadence
        self.pending: list[_Item] = []
        self.kick: asyncio.Future[None] | None = None  # the worker waits on it
        self.wake_at = float("inf")  # the earliest deadline the worker is waiting for
        self.worker: asyncio.Task[None] | None = None

    def thread(self) -> ThreadPoolExecutor:
        """The lane's thread (started on first use, again after :meth:`stop`)."""
        if self._thread is None:
            self._thread = ThreadPoolExecutor(1, f"seqboltz-{self.name}")
        return self._thread

    def stop(self) -> None:
        """Stop the worker task and let the thread end once its batch is done."""
        if self.worker is not None and not self.worker.done():
            self.worker.cancel()
        self.worker = None
        if self._thread is not None:
            self._thread.shutdown(wait=False)
            self._thread = None

    def wake(self) -> None:
        if self.kick is not None and not self.kick.done():
            self.kick.set_result(None)


class StepBatcher:
    """Collects steps and chunks for one artifact and runs them together.

    Args:
        artifact: the model.
        max_batch: most rows (streams) per runtime call (1: batching off).
        max_wait: seconds a step (or an urgent chunk) waits for others.
        cadence: seconds between batches of chunks computed ahead of their time (each batch
            takes the chunks within ``horizon`` of their deadline, so batches hold tens of
            streams; a chunk whose deadline comes first starts its batch then); 0: no
            cadence, a batch at the earliest start.
        horizon: a chunk computed ahead of time joins a batch only once its deadline is this
            close (:data:`AHEAD_HORIZON`).
        executor: where the runtime calls run (off the event loop; default: a thread of each
            lane's own).
        observe: ``observe(rows, seconds)`` after every batch (metrics).
    """

    def __init__(
        self,
        artifact: Artifact,
        max_batch: int = 256,
        max_wait: float = 0.002,
        cadence: float = AHEAD_CADENCE,
        horizon: float = AHEAD_HORIZON,
        executor: Executor | None = None,
        observe: object | None = None,
    ) -> None:
        if max_batch < 1 or max_wait < 0 or cadence < 0 or horizon < 0:
            raise ValueError(
                "need max_batch >= 1 and max_wait, cadence, horizon >= 0; got "
                f"{max_batch}, {max_wait}, {cadence}, {horizon}"
            )
        self.artifact = artifact
        self.max_batch = max_batch
        self.max_wait = max_wait
        self.executor = executor
        self.observe = observe
        self._lanes = (_Lane("urgent"), _Lane("ahead", cadence or None, horizon))
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
        """Stop the worker tasks and threads (once no stream uses this batcher any more)."""
        for lane in self._lanes:
            lane.stop()

    async def step(self, request: StepInputs) -> np.ndarray:
        """The next frames ``(B, D)`` of one stream's ``B`` rows (usually 1)."""
        result: np.ndarray = await self._enqueue(self._lanes[0], request, self.max_wait)
        return result

    def chunk(
        self,
        request: ChunkInputs,
        wait: float | None = None,
        urgent: bool | None = None,
        defer: float = 0.0,
    ) -> asyncio.Future[Chunk]:
        """A future of the stream's next ``request.n_frames`` frames; the request waits at
        most ``wait`` seconds for batch-mates (``None``: ``max_wait``), in the urgent lane if
        ``urgent`` (``None``: when ``wait`` is at most ``max_wait``), else in the lane of work
        ahead of time. When more work is ready than one batch holds, it goes after work
        whose deadline is less than ``defer`` seconds after its own (a stream's first chunk:
        a new stream waits rather than a playing one). Cancel the future to drop a chunk that
        is no longer wanted (e.g. a Steer change superseded it)."""
        if request.n_frames < 1:
            raise ValueError(f"a chunk has at least one frame; got {request.n_frames}")
        wait = self.max_wait if wait is None else max(wait, 0.0)
        if urgent is None:
            urgent = wait <= self.max_wait
        return self._enqueue(self._lanes[0 if urgent else 1], request, wait, defer)

    def _enqueue(
        self, lane: _Lane, request: StepInputs | ChunkInputs, wait: float, defer: float = 0.0
    ) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        if lane.worker is None or lane.worker.done():
            lane.worker = loop.create_task(self._run(lane))
        future: asyncio.Future[Any] = loop.create_future()
        deadline = loop.time() + wait
        lane.pending.append(_Item(request, future, deadline, deadline + defer))
        starts = min(deadline, max(lane.next_run, deadline - lane.horizon))
        if len(lane.pending) >= self._full(lane) or starts < lane.wake_at:
            lane.wake()
        return future

    def _full(self, lane: _Lane) -> int:
        """Rows of a full batch of ``lane``: one per open stream, at most ``max_batch`` (and
        :data:`AHEAD_ROWS` ahead of time)."""
        rows = min(self.max_batch, max(1, self.streams))
        return rows if lane.cadence is None else min(rows, AHEAD_ROWS)

    def _start_at(self, lane: _Lane, now: float) -> float:
        """Loop time at which ``lane``'s next batch starts (``inf``: nothing pending): at once
        when full; else at its most urgent item's deadline, or, ahead of time, at the next
        tick of the cadence once an item is within the horizon of its deadline."""
        if not lane.pending:
            return float("inf")
        first = min(i.deadline for i in lane.pending)
        if self._ready(lane, now) >= self._full(lane):
            return now
        return min(first, max(lane.next_run, first - lane.horizon))

    def _ready(self, lane: _Lane, now: float) -> int:
        """How many of ``lane``'s pending items a batch starting ``now`` may take: all, or
        ahead of time those within the horizon by the next tick of the cadence."""
        if lane.cadence is None:
            return len(lane.pending)
        until = now + lane.horizon + lane.cadence  # the items ready before the next tick
        return sum(1 for i in lane.pending if i.deadline <= until)

    async def _collect(self, lane: _Lane) -> list[_Item]:
        """A lane's next batch (:meth:`_start_at`): its most urgent items, at most a full
        batch of them, and ahead of time only those within the horizon."""
        loop = asyncio.get_running_loop()
        while True:
            lane.pending = [i for i in lane.pending if not i.future.done()]  # cancelled
            start = self._start_at(lane, loop.time())
            if start <= loop.time():
                break
            lane.kick = loop.create_future()
            lane.wake_at = start
            timer = loop.call_at(start, lane.wake) if start < float("inf") else None
            try:
                await lane.kick
            finally:
                lane.wake_at = float("inf")
                if timer is not None:
                    timer.cancel()
        now = loop.time()
        lane.pending.sort(key=lambda i: i.deadline)
        ready = lane.pending[: self._ready(lane, now)]  # by deadline: those it may take
        ready.sort(key=lambda i: i.rank)
        batch = ready[: self._full(lane) if lane.cadence is not None else self.max_batch]
        taken = {id(i) for i in batch}
        lane.pending = [i for i in lane.pending if id(i) not in taken]
        if lane.cadence is not None:
            lane.next_run = now + lane.cadence
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
                    self.executor or lane.thread(), self._compute, [i.request for i in batch]
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
