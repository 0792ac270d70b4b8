"""The Generation servicer: thin handlers over :class:`SequenceState` and the batchers."""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import grpc
import numpy as np

from seqboltz.noise import gibbs_uniforms, sequence_rng
from seqboltz.v1 import generation_pb2 as pb
from seqboltz.v1 import generation_pb2_grpc as pb_grpc
from serving.batcher import StepBatcher, StepRequest
from serving.errors import ServiceError, grpc_errors, grpc_stream_errors
from serving.metrics import Metrics
from serving.repository import Model, ModelRepository

__all__ = ["GenerationServicer", "Limits", "SequenceState"]


@dataclass(frozen=True)
class Limits:
    """What one server accepts."""

    max_streams: int = 1000
    max_frames: int = 1_000_000
    max_frames_per_message: int = 1000
    max_batch: int = 256
    max_wait: float = 0.002


def _vector(values: Any, size: int, name: str) -> np.ndarray | None:
    if size == 0:
        if len(values):
            raise ValueError(f"this model takes no {name}; got {len(values)} values")
        return None
    arr = np.asarray(values, dtype=np.float64)
    if arr.shape != (size,):
        raise ValueError(f"{name} must have {size} values; got {arr.size}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr


class SequenceState:
    """One stream: its seed's noise stream, history window, conditioning and next index."""

    def __init__(self, model: Model, request: pb.GenerateRequest, batcher: StepBatcher) -> None:
        art = model.artifact
        self.model, self.batcher = model, batcher
        self.seed = int(request.seed)
        if request.gibbs_steps not in (0, art.gibbs_steps):
            raise ValueError(
                f"model {model.name!r} samples with k = {art.gibbs_steps} Gibbs steps "
                f"(fixed in the artifact); got gibbs_steps={request.gibbs_steps}"
            )
        if len(request.seed_frames):
            empty = np.zeros((art.order, art.frame_size))
            self.window = self._frames(request.seed_frames, "seed_frames", empty)
        else:
            self.window = art.default_seed_frames[::-1].copy()
        self.style = _vector(request.style, art.style_size, "style")
        self.controls = _vector(request.controls, art.controls_size, "controls")
        self.rng = sequence_rng(self.seed, 0)
        self.index = 0

    def _frames(self, values: Any, name: str, window: np.ndarray) -> np.ndarray:
        """``k × D`` values oldest first, laid over ``window`` → the new window ``(order, D)``,
        most recent first."""
        art = self.model.artifact
        arr = np.asarray(values, dtype=np.float64)
        d = art.frame_size
        if arr.size % d or arr.size // d < 1:
            raise ValueError(f"{name} must hold whole frames of {d} values; got {arr.size}")
        arr = arr.reshape(-1, d)
        if not np.isfinite(arr).all():
            raise ValueError(f"{name} contain NaN or infinite values")
        if name == "seed_frames" and arr.shape[0] < art.order:
            raise ValueError(f"seed_frames need {art.order} frames (the order); got {arr.shape[0]}")
        window = window.copy()
        recent = arr[::-1][: art.order]
        window[: recent.shape[0]] = recent
        return window

    def observe(self, values: Any) -> None:
        """Use observed frames (oldest first) as the most recent history."""
        self.window = self._frames(values, "observed frames", self.window)

    def change(self, style: Any, controls: Any) -> None:
        art = self.model.artifact
        if len(style):
            self.style = _vector(style, art.style_size, "style")
        if len(controls):
            self.controls = _vector(controls, art.controls_size, "controls")

    async def next(self) -> np.ndarray:
        """The next frame ``(D,)``, standardised."""
        art = self.model.artifact
        noise = gibbs_uniforms(self.rng, 1, art.gibbs_steps, art.n_hidden)[0]
        v = await self.batcher.step(StepRequest(self.window, noise, self.style, self.controls))
        self.window = np.concatenate([v[None], self.window[:-1]], axis=0)
        self.index += 1
        return v


class GenerationServicer(pb_grpc.GenerationServicer):
    """gRPC handlers; everything stateful lives in :class:`SequenceState` and the batchers."""

    def __init__(self, repository: ModelRepository, limits: Limits, metrics: Metrics) -> None:
        self.repository = repository
        self.limits = limits
        self.metrics = metrics
        self.active = 0
        self.draining = asyncio.Event()
        self._batchers: dict[tuple[str, str], StepBatcher] = {}

    # ---- models ------------------------------------------------------------------------------
    def _info(self, model: Model) -> pb.ModelInfo:
        art, card = model.artifact, model.artifact.card
        return pb.ModelInfo(
            name=model.name,
            kind=str(card["kind"]),
            frame_size=art.frame_size,
            order=art.order,
            gibbs_steps=art.gibbs_steps,
            frame_rate=art.frame_rate or 0.0,
            style_size=art.style_size,
            controls_size=art.controls_size,
            domain=str(card.get("domain", "generic")),
            sha256=model.sha256,
            card_json=json.dumps(card, sort_keys=True),
        )

    @grpc_errors
    async def ListModels(
        self, request: pb.ListModelsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListModelsResponse:
        models = [self._info(self.repository.models[n]) for n in sorted(self.repository.models)]
        return pb.ListModelsResponse(models=models)

    @grpc_errors
    async def GetModel(
        self, request: pb.GetModelRequest, context: grpc.aio.ServicerContext
    ) -> pb.ModelInfo:
        return self._info(self.repository.get(request.name))

    # ---- streams -----------------------------------------------------------------------------
    def _batcher(self, model: Model) -> StepBatcher:
        key = (model.name, model.sha256)
        if key not in self._batchers:
            self._batchers[key] = StepBatcher(
                model.artifact,
                max_batch=self.limits.max_batch,
                max_wait=self.limits.max_wait,
                observe=self.metrics.observe_batch,
            )
        return self._batchers[key]

    def _release(self, state: SequenceState) -> None:
        """A stream ends: drop its batcher if it is idle and its model version was replaced
        (hot reload) or removed, so old artifacts do not stay in memory."""
        state.batcher.close()
        self.active -= 1
        self.metrics.active.dec()
        for key, batcher in list(self._batchers.items()):
            current = self.repository.models.get(key[0])
            if batcher.streams == 0 and (current is None or current.sha256 != key[1]):
                batcher.shutdown()
                del self._batchers[key]

    def _open(self, request: pb.GenerateRequest) -> SequenceState:
        if self.draining.is_set():
            raise ServiceError(grpc.StatusCode.UNAVAILABLE, "the server is shutting down")
        if self.active >= self.limits.max_streams:
            raise ServiceError(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"too many concurrent streams (limit {self.limits.max_streams})",
            )
        if request.n_frames > self.limits.max_frames:
            raise ServiceError(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"n_frames {request.n_frames} exceeds the limit {self.limits.max_frames}",
            )
        if request.frames_per_message > self.limits.max_frames_per_message:
            raise ServiceError(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"frames_per_message {request.frames_per_message} exceeds the limit "
                f"{self.limits.max_frames_per_message}",
            )
        if request.start_frame > self.limits.max_frames:
            raise ServiceError(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"start_frame {request.start_frame} exceeds the limit {self.limits.max_frames}",
            )
        model = self.repository.get(request.model)
        if request.realtime and not model.artifact.frame_rate:
            raise ValueError(
                f"model {model.name!r} has no frame rate: realtime pacing is unavailable"
            )
        state = SequenceState(model, request, self._batcher(model))
        state.batcher.open()
        self.active += 1
        self.metrics.active.inc()
        return state

    def _frame(self, state: SequenceState, v: np.ndarray, data_units: bool) -> pb.Frame:
        values = state.model.artifact.to_data_units(v) if data_units else v
        return pb.Frame(index=state.index - 1, values=values.tolist())

    async def _frames(
        self,
        state: SequenceState,
        request: pb.GenerateRequest,
        budget: list[float],
        pending: list[pb.Applied] | None = None,
        apply: Any = None,
    ) -> AsyncIterator[pb.FrameChunk]:
        """Chunks of frames while ``budget[0]`` (frames still to send) is positive."""
        for _ in range(int(request.start_frame)):  # resume: replay the stream up to there
            await state.next()
        per = max(1, int(request.frames_per_message))
        rate = state.model.artifact.frame_rate if request.realtime else None
        loop = asyncio.get_running_loop()
        t0, first = loop.time(), state.index
        while budget[0] > 0:
            if self.draining.is_set():
                raise ServiceError(
                    grpc.StatusCode.UNAVAILABLE,
                    f"the server is shutting down; resume with start_frame={state.index}",
                )
            frames = []
            for _ in range(int(min(per, budget[0]))):
                if apply is not None:
                    apply(state)
                v = await state.next()
                frames.append(self._frame(state, v, request.data_units))
                budget[0] -= 1
            self.metrics.frames.inc(len(frames))
            if rate:
                delay = t0 + (state.index - first) / rate - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
            applied = list(pending or [])
            if pending:
                pending.clear()
            yield pb.FrameChunk(seed=state.seed, frames=frames, applied=applied)

    @grpc_stream_errors
    async def Generate(
        self, request: pb.GenerateRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.FrameChunk]:
        state = self._open(request)
        try:
            budget = [float(request.n_frames) if request.n_frames else math.inf]
            async for chunk in self._frames(state, request, budget):
                yield chunk
        finally:
            self._release(state)

    @grpc_stream_errors
    async def Steer(
        self, request_iterator: AsyncIterator[pb.SteerRequest], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.FrameChunk]:
        first = await anext(aiter(request_iterator), None)
        if first is None or first.WhichOneof("action") != "start":
            raise ValueError("the first Steer message must be 'start'")
        request = first.start
        state = self._open(request)
        budget = [float(request.n_frames) if request.n_frames else math.inf]
        changes: list[pb.SteerRequest] = []
        applied: list[pb.Applied] = []
        more = asyncio.Event()
        closed = asyncio.Event()

        async def read() -> None:
            async for message in request_iterator:
                changes.append(message)
                more.set()
            closed.set()
            more.set()

        def apply(s: SequenceState) -> None:
            while changes:
                message = changes.pop(0)
                action = message.WhichOneof("action")
                if action == "change":
                    s.change(message.change.style, message.change.controls)
                elif action == "observe":
                    s.observe(message.observe.values)
                elif action == "more_frames":
                    budget[0] += message.more_frames
                else:
                    raise ValueError(f"a Steer stream takes one 'start'; got {action!r} again")
                applied.append(pb.Applied(action=str(action), frame=s.index))

        reader = asyncio.get_running_loop().create_task(read())
        try:
            while True:
                async for chunk in self._frames(state, request, budget, applied, apply):
                    yield chunk
                request = pb.GenerateRequest(
                    frames_per_message=request.frames_per_message,
                    realtime=request.realtime,
                    data_units=request.data_units,
                )  # later rounds: no replay
                # a bounded stream waits for more frames or for the client to finish
                more.clear()
                apply(state)
                if budget[0] > 0:
                    continue
                if closed.is_set():
                    break
                await more.wait()
                apply(state)
                if budget[0] <= 0 and closed.is_set():
                    break
            if applied:
                yield pb.FrameChunk(seed=state.seed, applied=list(applied))
        finally:
            reader.cancel()
            self._release(state)
