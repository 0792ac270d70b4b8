"""Batching across streams: pending steps of every active stream of one model run as one
runtime call (bounded batch size and wait).

Each stream brings its :class:`~seqboltz.runtime.StepInputs` (its history window and its own
noise, drawn from its own seed, from its :class:`~seqboltz.runtime.FrameStream`), and the step is
computed in float64, so a stream's frames are the same whatever else shares its batch. Streams
may run at different ``k`` (Gibbs steps per frame, the noise's second dimension): the steps of
one ``k`` run as one call, each ``k`` its own call, so no stream's frame is computed with
another's number of steps.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import Executor

import numpy as np

from seqboltz.runtime import Artifact, StepInputs

__all__ = ["StepBatcher"]


class StepBatcher:
    """Collects steps for one artifact and runs them together.

    Args:
        artifact: the model.
        max_batch: most steps per runtime call (1: batching off).
        max_wait: seconds the first pending step waits for others.
        executor: where the runtime call runs (off the event loop).
        observe: ``observe(batch_size, seconds)`` after every call (metrics).
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
        self._queue: asyncio.Queue[tuple[StepInputs, asyncio.Future[np.ndarray]]] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None
        self.streams = 0  # open streams: once each has a step pending, nothing is worth waiting

    def open(self) -> None:
        """A stream starts using this batcher."""
        self.streams += 1

    def close(self) -> None:
        """A stream ends."""
        self.streams = max(0, self.streams - 1)

    def shutdown(self) -> None:
        """Stop the worker task (once no stream uses this batcher any more)."""
        if self._worker is not None and not self._worker.done():
            self._worker.cancel()
        self._worker = None

    async def step(self, request: StepInputs) -> np.ndarray:
        """The next frames ``(B, D)`` of one stream's ``B`` rows (usually 1)."""
        loop = asyncio.get_running_loop()
        if self._worker is None or self._worker.done():
            self._worker = loop.create_task(self._run())
        future: asyncio.Future[np.ndarray] = loop.create_future()
        self._queue.put_nowait((request, future))
        return await future

    async def _collect(self) -> list[tuple[StepInputs, asyncio.Future[np.ndarray]]]:
        batch = [await self._queue.get()]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.max_wait
        while len(batch) < min(self.max_batch, max(1, self.streams)):
            try:
                batch.append(self._queue.get_nowait())
                continue
            except asyncio.QueueEmpty:
                pass
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            try:
                batch.append(await asyncio.wait_for(self._queue.get(), remaining))
            except TimeoutError:
                break
        return [(r, f) for r, f in batch if not f.done()]  # cancelled streams drop out

    def _compute(self, requests: list[StepInputs]) -> list[np.ndarray]:
        """One runtime call per ``k`` among the pending steps; each request's rows."""
        by_k: dict[int, list[int]] = {}
        for i, r in enumerate(requests):
            by_k.setdefault(r.noise.shape[1], []).append(i)
        out: list[np.ndarray] = [np.empty(0)] * len(requests)
        for group in by_k.values():
            for i, frames in zip(group, self._call([requests[i] for i in group]), strict=True):
                out[i] = frames
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

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._collect()
            if not batch:
                continue
            start = time.perf_counter()
            try:
                frames = await loop.run_in_executor(
                    self.executor, self._compute, [r for r, _ in batch]
                )
            except Exception as exc:  # every waiting stream gets the error
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(exc)
                continue
            if callable(self.observe):
                self.observe(sum(r.history.shape[0] for r, _ in batch), time.perf_counter() - start)
            for row, (_, fut) in enumerate(batch):
                if not fut.done():
                    fut.set_result(frames[row])
