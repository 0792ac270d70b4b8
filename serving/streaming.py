"""The frames of one Generate or Steer call, a message at a time: :class:`FrameProducer`.

A stream's frames are computed a message ahead, in one chunk (:meth:`StepBatcher.chunk`:
``frames_per_message`` frames of many streams per batch, the noise drawn in the worker
thread), from a :class:`Cursor`, the stream's state at its next frame. Paced (``realtime``),
a message leaves when its first frame is due and carries ``frames_per_message − 1`` frames of
look-ahead; the next chunk is computed while the client plays it, in the batcher's lane of
work ahead of time (batches on a cadence, each chunk about a horizon before it is needed); it
may wait there until :data:`AHEAD_MARGIN` before its message is due. The schedule starts when
the first message has left (frames are due from then on, as the client plays them); first
messages leave up to :data:`START_SPREAD` after they are ready, so streams started by one
batch do not send every message at the same moments; and a stream's first chunk yields to
playing streams' chunks when the CPU falls behind (:data:`FIRST_DEFER`): a crowd arriving
delays starts, not frames.

**Steering truncates the look-ahead.** A Steer change (``change``, ``observe``) takes effect
at the first frame that is not yet due to be shown (at least :data:`REVISE_MARGIN` seconds
ahead, so the frames that replace it arrive in time): frames computed but unsent are dropped,
and frames sent as look-ahead from that index on are computed again with the change. The
first :data:`REVISE_FRAMES` of them are computed and sent at once (an urgent chunk that never
waits behind a batch computed ahead: ``StepBatcher``'s urgent lane), the rest as the usual
paced messages; a message whose first frame the client already holds has
``FrameChunk.revises`` set, and the client replaces every frame it holds from that index on.
The change's ``Applied.frame`` is that index.
Unpaced streams have no look-ahead: a change takes effect at the next frame not yet sent.
Either way a stream's frames are those of the runtime's :class:`FrameStream` with the same
seed and the changes at the reported frames (the noise of frame ``t`` is jumped to,
``proto/NOISE.md``).

A chunk's resume token is the stream after the chunk's last frame; a revised chunk's token
supersedes the tokens of the chunks it replaces. "Diverged at frame N" is raised when frame
``N`` would be sent, after the finite frames before it.

Messages are encoded from the frames' bytes (a packed ``repeated double`` is little-endian
float64 on the wire), not value by value.
"""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from seqboltz.errors import BadRequest, ModelDiverged, Unavailable
from seqboltz.noise import sequence_rng
from seqboltz.runtime import FrameStream, StreamSpec
from seqboltz.v1 import generation_pb2 as pb
from serving.batcher import Chunk, ChunkInputs, StepBatcher

__all__ = [
    "AHEAD_MARGIN",
    "FIRST_DEFER",
    "FIRST_WAIT",
    "REVISE_FRAMES",
    "REVISE_MARGIN",
    "SPREAD_STREAMS",
    "START_SPREAD",
    "Cursor",
    "FrameProducer",
    "frames_wire",
    "packed_doubles",
]

#: seconds between a Steer change and the first frame it may revise: that frame is due at
#: least this much later, time to compute and deliver its replacement
REVISE_MARGIN = 0.03
#: a chunk computed ahead of its time waits for batch-mates until this many seconds before
#: its message is due (time to compute its batch and send it)
AHEAD_MARGIN = 0.05
#: most seconds a stream's first chunk waits for batch-mates (streams that start together,
#: e.g. a crowd arriving, share runtime calls)
FIRST_WAIT = 0.03
#: when more work is ready than one batch holds, a stream's first chunk goes after the
#: chunks of playing streams due up to this many seconds after it: a crowd arriving delays
#: new streams' starts, not the frames of those already playing
FIRST_DEFER = 1.0
#: a paced stream's first message leaves up to this many seconds (uniformly at random, with
#: :data:`SPREAD_STREAMS` or more streams open) after it is ready: streams whose first
#: chunks one batch computed would otherwise send every message at the same moments, a
#: burst the event loop sends late
START_SPREAD = 0.1
#: open streams from which the spread is all of :data:`START_SPREAD` (fewer: proportionally
#: less; a lone stream starts at once, and a loop with few streams sends a burst in time)
SPREAD_STREAMS = 500
#: frames of the message sent at once after a revision (computed without waiting for
#: batch-mates); the frames after them follow as a paced message, batched as usual
REVISE_FRAMES = 3


# ---- wire encoding --------------------------------------------------------------------------
def _varint(n: int) -> bytes:
    if n < 0x80:
        return bytes((n,))
    if n < 0x4000:
        return bytes((n & 0x7F | 0x80, n >> 7))
    out = bytearray()
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def packed_doubles(field: int, values: np.ndarray) -> bytes:
    """A packed ``repeated double`` field's encoding (empty for no values)."""
    data = np.ascontiguousarray(values, dtype="<f8").tobytes()
    if not data:
        return b""
    return _varint(field << 3 | 2) + _varint(len(data)) + data


def frames_wire(first: int, values: np.ndarray) -> bytes:
    """``FrameChunk.frames`` (field 2) of frames ``first, first + 1, …`` with rows of
    ``values`` ``(n, D)``, encoded: ``pb.FrameChunk.FromString`` of it equals the chunk built
    from ``pb.Frame`` messages."""
    v = np.ascontiguousarray(values, dtype="<f8")
    if v.ndim != 2 or not v.size:
        return b""
    size = 8 * v.shape[1]
    data = memoryview(v.tobytes())
    head = b"\x12" + _varint(size)  # Frame.values, packed
    parts: list[bytes | memoryview] = []
    for i in range(v.shape[0]):
        index = first + i
        frame_head = (b"\x08" + _varint(index) if index else b"") + head  # Frame.index
        parts.append(b"\x12" + _varint(len(frame_head) + size) + frame_head)
        parts.append(data[i * size : (i + 1) * size])
    return b"".join(parts)


# ---- the stream's state ---------------------------------------------------------------------
@dataclass
class Cursor:
    """A stream at its next frame: everything the next frames depend on."""

    frame: int
    window: np.ndarray  # (order, D), most recent first
    style: np.ndarray | None  # (S,) of the next frames
    controls: np.ndarray | None  # (C,)
    rng: np.random.Generator  # the noise at ``frame`` (advanced by a chunk computed from it)

    @classmethod
    def of(cls, frames: FrameStream) -> Cursor:
        """The cursor of a one-sequence :class:`FrameStream` (its noise jumped to)."""
        spec = frames.spec

        def row(x: np.ndarray | None) -> np.ndarray | None:
            return None if x is None else np.array(x[0], dtype=np.float64)

        rng = sequence_rng(
            frames.seed, frames.indices[0], frames.frame, spec.gibbs_steps, spec.noise_width
        )
        return cls(
            frames.frame,
            np.array(frames.window[0]),
            row(frames.style),
            row(frames.controls),
            rng,
        )


class FrameProducer:
    """The messages of one Generate or Steer call.

    Args:
        frames: the stream, at its first frame to send (after any replay).
        sha256: of the model's artifact (for resume tokens).
        batcher: where chunks are computed.
        request: its ``frames_per_message``, ``realtime``, ``data_units`` and ``n_frames``.
        frame_rate: the model's, for pacing.
        draining: set when the server is shutting down.
        steered: a Steer call (changes come through :meth:`push`).
        to_data_units: ``frames -> data units`` for ``request.data_units``.
    """

    def __init__(
        self,
        frames: FrameStream,
        sha256: str,
        batcher: StepBatcher,
        request: pb.GenerateRequest,
        frame_rate: float | None,
        draining: asyncio.Event,
        steered: bool = False,
        to_data_units: Any = None,
    ) -> None:
        self.spec: StreamSpec = frames.spec
        self.seed = frames.seed
        self.sequence = frames.indices[0]
        self.sha256 = sha256
        self.batcher = batcher
        self.per = max(1, int(request.frames_per_message))
        self.rate = frame_rate if request.realtime else None
        self.to_data_units = to_data_units if request.data_units else None
        self.draining = draining
        self.steered = steered
        self.cursor = Cursor.of(frames)
        first = self.cursor.frame
        #: index past the last frame to send (``n_frames`` from the first; ``more_frames``)
        self.end: float = first + request.n_frames if request.n_frames else math.inf
        # the last sent chunk and the ``order`` frames before it (oldest first): a revision
        # rewinds to any frame in it
        self.recent = self.cursor.window[::-1].copy()
        self.recent_from = first - self.spec.order
        self.chunk_style, self.chunk_controls = self.cursor.style, self.cursor.controls
        self.pending: asyncio.Future[Chunk] | None = None  # the next chunk, from the cursor
        self.revising = False  # the next message is a revision: computed and sent at once
        self.held_end = first  # index past the last frame the client holds
        self.applied: list[pb.Applied] = []
        self.changes: list[pb.SteerRequest] = []
        self.closed = False  # a Steer client finished sending
        self._waiter: asyncio.Future[None] | None = None
        self._t0: float | None = None  # pacing: frame ``_first`` is due at ``_t0``
        self._start_at: float | None = None  # pacing: when the first message may leave
        self._first = first
        self.start = first  # the first frame index of this call

    # ---- events ------------------------------------------------------------------------------
    def push(self, message: pb.SteerRequest) -> None:
        """A Steer message (not ``start``): applied at the next turn of :meth:`messages`."""
        self.changes.append(message)
        self._wake()

    def close_input(self) -> None:
        """The Steer client sent its last message."""
        self.closed = True
        self._wake()

    def _wake(self, *_: Any) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def _sleep(self, until: float | None) -> None:
        """Until loop time ``until`` (``None``: no timer), a change, or a computed chunk."""
        loop = asyncio.get_running_loop()
        self._waiter = loop.create_future()
        timer = None if until is None else loop.call_at(until, self._wake)
        try:
            await self._waiter
        finally:
            if timer is not None:
                timer.cancel()

    def close(self) -> None:
        """Drop the chunk being computed (the call ended)."""
        if self.pending is not None:
            self.pending.cancel()
            self.pending = None

    # ---- pacing ------------------------------------------------------------------------------
    def _due(self, frame: int) -> float:
        """Loop time at which ``frame`` is due (``now`` before the first message)."""
        assert self.rate
        if self._t0 is None:
            return asyncio.get_running_loop().time()
        return self._t0 + (frame - self._first) / self.rate

    def _rewind_point(self, now: float) -> int:
        """The first frame a change may still revise: not due before ``now`` +
        :data:`REVISE_MARGIN`, nor before the last sent chunk, nor after the next unsent."""
        sent_end = self.cursor.frame
        if not self.rate or self._t0 is None:
            return sent_end
        ahead = (now + REVISE_MARGIN - self._t0) * self.rate + self._first
        r = math.floor(ahead) + 1
        return max(self.recent_from + self.spec.order, min(sent_end, r))

    # ---- steering ----------------------------------------------------------------------------
    def _apply(self) -> None:
        loop = asyncio.get_running_loop()
        while self.changes:
            message = self.changes.pop(0)
            action = message.WhichOneof("action")
            if action == "more_frames":
                self.end += message.more_frames
                self.applied.append(pb.Applied(action="more_frames", frame=self.cursor.frame))
                continue
            if action not in ("change", "observe"):
                raise BadRequest(f"a Steer stream takes one 'start'; got {action!r} again")
            r = self._rewind_point(loop.time())
            stream = self._stream_at(r)
            if action == "change":
                style, controls = message.change.style, message.change.controls
                stream.change(
                    style=np.asarray(style, dtype=np.float64) if len(style) else None,
                    controls=np.asarray(controls, dtype=np.float64) if len(controls) else None,
                )
            else:
                values = np.asarray(message.observe.values, dtype=np.float64)
                d = self.spec.frame_size
                if values.size % d or values.size < d:
                    raise BadRequest(
                        f"observed frames must hold whole frames of {d} values; got {values.size}"
                    )
                stream.observe(values.reshape(-1, d))
            self.close()  # the chunk computed ahead did not have the change
            if r < self.cursor.frame:
                self.revising = True
                self.recent = self.recent[: r - self.recent_from]
            self.cursor = Cursor.of(stream)
            self.applied.append(pb.Applied(action=str(action), frame=r))

    def _stream_at(self, r: int) -> FrameStream:
        """The stream at frame ``r`` (a sent frame of the last chunk, or the next unsent), as
        a :class:`FrameStream` whose steering checks and applies a change."""
        at = r - self.recent_from
        recent = self.recent[at - self.spec.order : at]
        unsent = r == self.cursor.frame
        style = self.cursor.style if unsent else self.chunk_style
        controls = self.cursor.controls if unsent else self.chunk_controls
        return FrameStream.rebuild(
            self.spec,
            recent[None],
            r,
            seed=self.seed,
            style=None if style is None else style[None],
            controls=None if controls is None else controls[None],
            sequence_indices=[self.sequence],
        )

    # ---- chunks ------------------------------------------------------------------------------
    def _compute(self, urgent: bool) -> asyncio.Future[Chunk]:
        c = self.cursor
        wait: float | None = None
        lane: bool | None = urgent  # the urgent lane, ahead of time (False), or by the wait
        defer = 0.0
        if self.held_end == self.start and not self.revising:  # the stream's first chunk
            wait, lane, defer = FIRST_WAIT, None, FIRST_DEFER
        elif not urgent and self.rate:
            loop = asyncio.get_running_loop()
            wait = max(0.0, self._due(c.frame) - loop.time() - AHEAD_MARGIN)
            lane = None  # ahead of time, unless its wait is too short
        per = min(self.per, REVISE_FRAMES) if self.revising else self.per
        future = self.batcher.chunk(
            ChunkInputs(
                c.window,
                c.rng,
                int(min(per, self.end - c.frame)),
                self.spec.gibbs_steps,
                c.style,
                c.controls,
            ),
            wait,
            lane,
            defer,
        )
        future.add_done_callback(self._wake)
        return future

    def token(self) -> pb.ResumeToken:
        """The stream's resume token after the frames sent (or computed into the cursor)."""
        c = self.cursor
        token = pb.ResumeToken(
            noise_rule=FrameStream.NOISE_RULE,
            model_sha256=self.sha256,
            seed=self.seed,
            frame=c.frame,
            style=[] if c.style is None else c.style.tolist(),
            controls=[] if c.controls is None else c.controls.tolist(),
            gibbs_steps=self.spec.gibbs_steps,
        )
        token.MergeFromString(packed_doubles(5, c.window[::-1]))
        return token

    def _message(self, chunk: Chunk) -> pb.FrameChunk:
        """The message of a computed chunk; the cursor moves past its frames."""
        c, v = self.cursor, chunk.frames
        m = v.shape[0]
        values = self.to_data_units(v) if self.to_data_units is not None else v
        message = pb.FrameChunk.FromString(frames_wire(c.frame, values))
        if m:
            self.recent = np.concatenate([c.window[::-1], v])
            self.recent_from = c.frame - self.spec.order
            self.chunk_style, self.chunk_controls = c.style, c.controls
            window = np.ascontiguousarray(self.recent[-self.spec.order :][::-1])
            self.cursor = Cursor(c.frame + m, window, c.style, c.controls, c.rng)
        message.seed = self.seed
        message.applied.extend(self.applied)
        self.applied.clear()
        message.resume.CopyFrom(self.token())
        if m:
            message.revises = c.frame < self.held_end  # the client holds frames from there
            self.held_end = c.frame + m
        self.revising = False
        return message

    async def messages(self) -> AsyncIterator[pb.FrameChunk]:
        """The call's messages until its frames are sent (a Steer call: and its client has
        finished), then, for Steer, one last message with changes not yet reported."""
        loop = asyncio.get_running_loop()
        waited_for_more = False
        while True:
            if self.draining.is_set():
                raise Unavailable(
                    "the server is shutting down; resume on another server with the last "
                    f"chunk's resume token (next frame {self.cursor.frame})"
                )
            self._apply()
            c = self.cursor
            if c.frame >= self.end:
                if not self.steered or self.closed:
                    break
                waited_for_more = True
                await self._sleep(None)
                continue
            if self.rate and waited_for_more and self._due(c.frame) < loop.time():
                self._t0 = None  # a paused stream starts again when its next frame is ready
            waited_for_more = False
            if self.pending is None:
                self.pending = self._compute(urgent=True)
            if not self.pending.done():
                await self._sleep(None)
                continue
            if self.rate and self._t0 is None:  # spread the starts of streams ready together
                if self._start_at is None:  # the spread grows with the streams open
                    crowd = min(1.0, self.batcher.streams / SPREAD_STREAMS)
                    self._start_at = loop.time() + crowd * START_SPREAD * random.random()
                if self._start_at > loop.time():
                    await self._sleep(self._start_at)
                    continue
                self._start_at = None
            starting = bool(self.rate) and self._t0 is None
            if starting:  # the schedule starts with the first message
                self._t0, self._first = loop.time(), c.frame
            if self.rate and not self.revising:
                due = self._due(c.frame)
                if due > loop.time():
                    await self._sleep(due)
                    continue
            chunk = self.pending.result()
            self.pending = None
            message = self._message(chunk)
            if chunk.diverged:
                if len(message.frames):
                    yield message
                raise ModelDiverged(self.cursor.frame, self.spec.name, rows=[0], sequences=[0])
            if self.cursor.frame < self.end:
                self.pending = self._compute(urgent=not self.rate)
            yield message
            if starting:  # frames are due from when the first message left, not was built
                self._t0 = loop.time()
        if self.steered and self.applied:
            message = pb.FrameChunk(seed=self.seed, applied=list(self.applied))
            message.resume.CopyFrom(self.token())
            self.applied.clear()
            yield message
