"""The Generation servicer: thin handlers that decode a request into a
:class:`~seqboltz.runtime.FrameStream` (the runtime's frame loop and steering rules) and hand it
to a :class:`~serving.streaming.FrameProducer`, which computes each message's frames as one
chunk through the model's batcher, paces them and truncates the look-ahead on a Steer change.

Every :class:`FrameChunk` carries a :class:`ResumeToken`, the stream's state after the chunk
plus the model's sha256: a request with it continues the stream on any replica holding the
same artifact, in O(1) in the frame index (:meth:`FrameStream.resume`). Its size is
``order × frame_size`` values plus the conditioning, once per chunk; clients that want fewer
bytes ask for more frames per message."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import grpc
import numpy as np

from seqboltz.errors import BadRequest, LimitExceeded, ModelDiverged, ResumeMismatch, Unavailable
from seqboltz.runtime import FrameStream, StreamState, TextToSpeech
from seqboltz.runtime._tts import AudioChunker
from seqboltz.speech._voice import TextPlan
from seqboltz.v1 import generation_pb2 as pb
from seqboltz.v1 import generation_pb2_grpc as pb_grpc
from serving.batcher import StepBatcher
from serving.errors import grpc_errors, grpc_stream_errors
from serving.metrics import Metrics
from serving.repository import Model, ModelRepository
from serving.streaming import FrameProducer

__all__ = ["GenerationServicer", "Limits", "Stream"]


@dataclass(frozen=True)
class Limits:
    """What one server accepts.

    ``max_replay_frames`` bounds a resume by ``start_frame`` alone, which recomputes every
    frame before it: the embedded motion model takes 1.5–3.6 ms a frame on a shared 2-core
    machine (benchmarks/resume.py), so 100 frames stay well under a second; a resume token
    continues at any frame without replaying.
    """

    max_streams: int = 1000
    max_frames: int = 1_000_000
    max_replay_frames: int = 100
    max_frames_per_message: int = 1000
    max_batch: int = 256
    max_wait: float = 0.002


def _frames_of(values: Any, frame_size: int, name: str) -> np.ndarray:
    """Flat ``k × D`` values (oldest first) → ``(k, D)`` frames."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.size % frame_size or arr.size // frame_size < 1:
        raise BadRequest(f"{name} must hold whole frames of {frame_size} values; got {arr.size}")
    return arr.reshape(-1, frame_size)


def _vector(values: Any) -> np.ndarray | None:
    """A repeated field: ``None`` when empty (not given)."""
    return np.asarray(values, dtype=np.float64) if len(values) else None


@dataclass
class Stream:
    """One client's stream: the model version it started on, its batcher and its frames."""

    model: Model
    batcher: StepBatcher
    frames: FrameStream

    @classmethod
    def open(cls, model: Model, request: pb.GenerateRequest, batcher: StepBatcher) -> Stream:
        """Decode a request into a :class:`FrameStream` (``BadRequest`` for what it can't use,
        e.g. a ``gibbs_steps`` outside ``1..max_gibbs_steps``; ``ResumeMismatch`` for a token
        of another model version or noise rule). ``gibbs_steps = 0``: the card's ``k``."""
        art = model.artifact
        if request.HasField("resume"):
            return cls(model, batcher, _resumed(model, request))
        seed_frames = None
        if len(request.seed_frames):
            seed_frames = _frames_of(request.seed_frames, art.frame_size, "seed_frames")
        frames = art.frame_stream(
            seed=int(request.seed),
            seed_frames=seed_frames,
            style=_vector(request.style),
            controls=_vector(request.controls),
            gibbs_steps=int(request.gibbs_steps) or None,
        )
        return cls(model, batcher, frames)

    @property
    def index(self) -> int:
        """Index of the next frame."""
        return self.frames.frame

    async def next(self) -> np.ndarray:
        """The next frame ``(D,)``, standardised (its step batched with other streams').

        Raises:
            ModelDiverged: the frame is not finite (nothing is emitted).
        """
        v = await self.batcher.step(self.frames.inputs())
        return self.frames.push(v)[0]


def _resumed(model: Model, request: pb.GenerateRequest) -> FrameStream:
    """The stream a request's resume token describes, at the token's frame (no replay), at
    the token's ``k`` (a request that names another is refused)."""
    token, art = request.resume, model.artifact
    if token.model_sha256 != model.sha256:
        raise ResumeMismatch(
            f"the resume token is for another version of model {model.name!r} (sha256 "
            f"{token.model_sha256[:12] or '(none)'}…; this server has {model.sha256[:12]}…, "
            "e.g. after a reload): its frames cannot be continued here; start a new stream"
        )
    given = [f for f in ("seed_frames", "style", "controls") if len(getattr(request, f))]
    if given:
        raise BadRequest(
            "a resumed stream takes its history and conditioning from the token; leave "
            f"{', '.join(given)} empty (steer after resuming)"
        )
    gibbs_steps = int(token.gibbs_steps) or art.gibbs_steps  # 0: from before k could vary
    for field, value in (
        ("seed", token.seed),
        ("start_frame", token.frame),
        ("gibbs_steps", gibbs_steps),
    ):
        if getattr(request, field) not in (0, value):
            raise BadRequest(
                f"{field}={getattr(request, field)} contradicts the resume token's {value}"
                + (
                    " (a stream continues at the k, Gibbs steps per frame, it ran at)"
                    if field == "gibbs_steps"
                    else ""
                )
            )
    state = StreamState(
        frame=int(token.frame),
        recent=_frames_of(token.history, art.frame_size, "resume.history")[None],
        style=_vector(token.style),
        controls=_vector(token.controls),
        seed=int(token.seed),
        sequence_indices=(0,),
        noise_rule=int(token.noise_rule),
        gibbs_steps=gibbs_steps,
    )
    return FrameStream.resume(art.stream_spec(gibbs_steps), state)


def _speech_plan(model: Model, text: str) -> tuple[TextToSpeech, TextPlan]:
    """The model's voice and what it will say (``BadRequest``: not a text-to-speech model,
    empty text)."""
    tts = TextToSpeech(model.artifact)
    return tts, tts.plan(text)


def _audio(chunker: AudioChunker, frames: list[np.ndarray], last: bool) -> list[np.ndarray]:
    """Push frames into the chunker (and finish it after the last): the chunks now ready."""
    out = [c for f in frames for c in chunker.push(f)]
    return out + chunker.finish() if last else out


def _replayed(request: pb.GenerateRequest) -> int:
    """Frames to recompute before the first one sent: ``start_frame`` without a token."""
    return 0 if request.HasField("resume") else int(request.start_frame)


class GenerationServicer(pb_grpc.GenerationServicer):
    """gRPC handlers; everything stateful lives in each :class:`Stream` and the batchers."""

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
            max_gibbs_steps=art.max_gibbs_steps,
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

    def _release(self, state: Stream) -> None:
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

    def _open(self, request: pb.GenerateRequest) -> Stream:
        if self.draining.is_set():
            raise Unavailable("the server is shutting down")
        limits = self.limits
        if self.active >= limits.max_streams:
            raise LimitExceeded(f"too many concurrent streams (limit {limits.max_streams})")
        for field, limit in (
            ("n_frames", limits.max_frames),
            ("frames_per_message", limits.max_frames_per_message),
        ):
            value = getattr(request, field)
            if value > limit:
                raise LimitExceeded(f"{field} {value} exceeds the limit {limit}")
        if _replayed(request) > limits.max_replay_frames:
            raise LimitExceeded(
                f"start_frame {request.start_frame} exceeds the replay limit "
                f"{limits.max_replay_frames} (a resume by start_frame recomputes every frame "
                "before it); pass the stream's last resume token (FrameChunk.resume) instead: "
                "it continues at any frame without replaying"
            )
        model = self.repository.get(request.model)
        if request.realtime and not model.artifact.frame_rate:
            raise BadRequest(
                f"model {model.name!r} has no frame rate: realtime pacing is unavailable"
            )
        state = Stream.open(model, request, self._batcher(model))
        state.batcher.open()
        self.active += 1
        self.metrics.active.inc()
        return state

    async def _replay(self, state: Stream, n_frames: int) -> None:
        """Recompute the first ``n_frames`` frames (a resume by ``start_frame``): one runtime
        call per frame in a worker thread, not through the batcher (3.5x cheaper a frame for
        a small model, the same for the embedded one)."""
        if n_frames <= 0:
            return
        art = state.model.artifact
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(None, state.frames.run, art.step, n_frames)
        except ModelDiverged:
            self.metrics.diverged.labels(model=state.model.name).inc()
            raise

    async def _next(self, state: Stream) -> np.ndarray:
        try:
            return await state.next()
        except ModelDiverged:
            self.metrics.diverged.labels(model=state.model.name).inc()
            raise

    def _producer(
        self, state: Stream, request: pb.GenerateRequest, steered: bool = False
    ) -> FrameProducer:
        art = state.model.artifact
        return FrameProducer(
            state.frames,
            state.model.sha256,
            state.batcher,
            request,
            art.frame_rate,
            self.draining,
            steered=steered,
            to_data_units=art.to_data_units,
        )

    async def _messages(
        self, state: Stream, producer: FrameProducer
    ) -> AsyncIterator[pb.FrameChunk]:
        """The producer's messages (counting frames sent and diverged streams)."""
        try:
            async for message in producer.messages():
                self.metrics.frames.inc(len(message.frames))
                yield message
        except ModelDiverged:
            self.metrics.diverged.labels(model=state.model.name).inc()
            raise
        finally:
            producer.close()

    @grpc_stream_errors
    async def Generate(
        self, request: pb.GenerateRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.FrameChunk]:
        state = self._open(request)
        try:
            await self._replay(state, _replayed(request))
            async for chunk in self._messages(state, self._producer(state, request)):
                yield chunk
        finally:
            self._release(state)

    @grpc_stream_errors
    async def Speak(
        self, request: pb.SpeakRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.AudioChunk]:
        """Text → phones, durations, controls (:class:`~seqboltz.runtime.TextToSpeech`); the
        frames through the model's batcher like any stream's; audio chunks as they are ready
        (:class:`~seqboltz.runtime._tts.AudioChunker`, run off the event loop)."""
        model = self.repository.get(request.model)
        loop = asyncio.get_running_loop()
        tts, plan = await loop.run_in_executor(None, _speech_plan, model, request.text)
        if plan.n_frames > self.limits.max_frames:
            raise LimitExceeded(
                f"the text takes {plan.n_frames} frames, over the limit {self.limits.max_frames}"
            )
        chunker = AudioChunker(tts.voice, plan.n_frames)
        frames = tts.frame_stream(plan, int(request.seed))
        state = self._admit(Stream(model, self._batcher(model), frames))
        rate, total, sent = tts.sample_rate, plan.n_frames * chunker.hop, 0
        phones = [
            pb.PhoneTime(
                phone=p.symbol,
                start=float(a),
                end=float(b),
                word=plan.utterance.words[p.word].text if p.word >= 0 else "",
            )
            for p, a, b in zip(
                plan.utterance.phones, plan.alignment.starts, plan.alignment.ends, strict=True
            )
        ]
        try:
            pending = [tts.seed_frames]
            for last in [False] * (plan.n_frames - tts.voice.order) + [True]:
                chunks = await loop.run_in_executor(None, _audio, chunker, pending, last)
                for chunk in chunks:
                    pcm = np.round(chunk * 32767).astype("<i2").tobytes()
                    yield pb.AudioChunk(
                        sample_rate=rate,
                        pcm=pcm,
                        first_sample=sent,
                        total_samples=total,
                        phones=phones if sent == 0 else [],
                    )
                    sent += chunk.shape[0]
                if not last:
                    pending = [(await self._next(state))[None]]
                    self.metrics.frames.inc()
        finally:
            self._release(state)

    def _admit(self, state: Stream) -> Stream:
        """Count a stream that is not opened from a GenerateRequest (Speak)."""
        if self.draining.is_set():
            raise Unavailable("the server is shutting down")
        if self.active >= self.limits.max_streams:
            raise LimitExceeded(f"too many concurrent streams (limit {self.limits.max_streams})")
        state.batcher.open()
        self.active += 1
        self.metrics.active.inc()
        return state

    @grpc_stream_errors
    async def Steer(
        self, request_iterator: AsyncIterator[pb.SteerRequest], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.FrameChunk]:
        first = await anext(aiter(request_iterator), None)
        if first is None or first.WhichOneof("action") != "start":
            raise BadRequest("the first Steer message must be 'start'")
        request = first.start
        state = self._open(request)
        reader: asyncio.Task[None] | None = None
        try:
            await self._replay(state, _replayed(request))
            producer = self._producer(state, request, steered=True)

            async def read() -> None:
                async for message in request_iterator:
                    producer.push(message)
                producer.close_input()

            reader = asyncio.get_running_loop().create_task(read())
            async for chunk in self._messages(state, producer):
                yield chunk
        finally:
            if reader is not None:
                reader.cancel()
            self._release(state)
