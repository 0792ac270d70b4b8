"""The frame loop of sequence generation, once, in numpy: :class:`FrameStream`.

A stream holds everything that decides the next frames of ``B`` sequences except the model's
step itself: the history window, the per-frame conditioning (style, controls), the noise cursor
(seed, sequence index, frame index; :mod:`seqboltz.noise`) and the log of steering changes.
Whoever computes the step drives it: :meth:`Artifact.stream` / :meth:`Artifact.generate` with
onnxruntime, offline synthesis, and the service, whose batcher runs the steps of many streams
as one call (:meth:`FrameStream.inputs` → step → :meth:`FrameStream.push`). Torch generation
(:meth:`seqboltz.models.SequenceRBM.generate`) is tested against it. Several frames of many
independent sequences at once (the service computes each message's frames ahead that way) are
:func:`step_frames`: the same noise rule and window shift, one step call per frame over the
rows. :meth:`FrameStream.run` with a multi-frame step advances a stream in blocks the same way
(:meth:`Artifact.generate`, offline synthesis).

A stream never emits a non-finite frame: :meth:`FrameStream.push` raises
:class:`~seqboltz.errors.ModelDiverged` and leaves the stream as it was.

Because the noise of frame ``t`` can be reached directly (``sequence_rng(..., frame=t)``), a
stream can be rebuilt at frame ``t`` from its last ``order`` frames, ``t`` and its change log
(:meth:`FrameStream.rebuild`) in O(1), on any machine, and continue exactly as the original;
:meth:`FrameStream.state` is that state as one value (the service's resume token) and
:meth:`FrameStream.resume` the stream again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, NamedTuple

import numpy as np

from seqboltz._conditioning import per_frame
from seqboltz.errors import BadRequest, ModelDiverged, ResumeMismatch
from seqboltz.noise import gibbs_uniforms, sequence_rng

__all__ = [
    "Change",
    "FrameStream",
    "Generated",
    "StepFn",
    "StepInputs",
    "StepsFn",
    "StreamSpec",
    "StreamState",
    "step_frames",
]


@dataclass(frozen=True)
class StreamSpec:
    """What the frame loop needs to know of a model (an artifact's card, or a torch model)."""

    name: str
    frame_size: int
    order: int
    gibbs_steps: int
    noise_width: int
    style_size: int = 0
    controls_size: int = 0


class StepInputs(NamedTuple):
    """One step's inputs for ``B`` sequences.

    Attributes:
        history: ``(B, order, D)``, most recent frame first.
        noise: ``(B, k, W)`` uniforms (``W`` the spec's ``noise_width``).
        style: ``(B, S)`` or ``None``.
        controls: ``(B, C)`` or ``None``.
    """

    history: np.ndarray
    noise: np.ndarray
    style: np.ndarray | None
    controls: np.ndarray | None


#: ``step(history, noise, style, controls) -> (B, D)`` next frames (e.g. :meth:`Artifact.step`)
StepFn = Callable[[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None], np.ndarray]
#: ``steps(history, noise (B, n, k, W), style, controls) -> (B, n, D)``: ``n`` frames at once,
#: the window shifted by each (e.g. :meth:`Artifact.steps`)
StepsFn = StepFn


@dataclass(frozen=True)
class Change:
    """One steering change: from frame ``frame`` on, ``what`` is ``values``.

    ``what`` is ``"style"`` or ``"controls"`` (``(B, size)`` values) or ``"observe"`` (observed
    frames ``(B, n, D)``, oldest first, laid over the most recent history before ``frame``).
    """

    frame: int
    what: Literal["style", "controls", "observe"]
    values: np.ndarray


class Generated(NamedTuple):
    """:meth:`FrameStream.run`'s result.

    Attributes:
        frames: ``(B, n_frames, D)``; a diverged row holds NaN from its divergence on.
        diverged: row → the :class:`ModelDiverged` that stopped it (empty: none did).
    """

    frames: np.ndarray
    diverged: dict[int, ModelDiverged]


class StreamState(NamedTuple):
    """Everything a stream's next frames depend on besides the model (:meth:`FrameStream.state`;
    :meth:`FrameStream.resume` continues from it in O(1), on any machine).

    Attributes:
        frame: index of the next frame.
        recent: ``(B, order, D)`` the last ``order`` frames, oldest first (float64).
        style: ``(B, S)`` the next frame's style (after steering), or ``None``.
        controls: ``(B, C)`` the next frame's controls, or ``None``.
        seed: the request's seed ``S``.
        sequence_indices: each row's sequence index ``i`` (noise ``sequence_rng(S, i)``).
        noise_rule: the version of the noise rule (:attr:`FrameStream.NOISE_RULE`).
        gibbs_steps: ``k``, the stream's Gibbs steps per frame (its noise stride); ``0``:
            not recorded (whatever ``k`` the resuming spec has, as before ``k`` could vary).
    """

    frame: int
    recent: np.ndarray
    style: np.ndarray | None
    controls: np.ndarray | None
    seed: int
    sequence_indices: tuple[int, ...]
    noise_rule: int
    gibbs_steps: int = 0


class FrameStream:
    """``B`` sequences being generated frame by frame (numpy; no model inside).

    Args:
        spec: the model's sizes.
        seed_frames: ``(B, T0, D)`` or ``(T0, D)`` standardised frames to continue, oldest
            first, ``T0 ≥ order`` (only the last ``order`` are used).
        seed: the request's seed ``S``.
        count: ``B`` when one ``(T0, D)`` seed is shared (default: the seeds' batch).
        style: ``(S,)``, ``(B, S)`` or ``(B, T, S)`` per frame from ``start_frame`` (after
            ``T`` frames the last value holds); required iff the model has style.
        controls: like ``style``.
        sequence_indices: index ``i`` of each sequence in its request (default ``0..B-1``):
            sequence ``i`` draws its noise from ``sequence_rng(S, i)``.
        start_frame: index of the next frame; its noise is jumped to, not replayed.

    >>> spec = StreamSpec("toy", frame_size=2, order=1, gibbs_steps=1, noise_width=3)
    >>> s = FrameStream(spec, np.zeros((1, 2)), seed=7, count=2)
    >>> s.run(lambda h, u, z, c: h[:, 0] + u.mean(axis=(1, 2))[:, None], 4).frames.shape
    (2, 4, 2)
    """

    #: version of the noise rule the loop follows (:mod:`seqboltz.noise`; ``proto/NOISE.md``):
    #: frame ``t`` of sequence ``i`` uses draws ``t·k·W … (t+1)·k·W − 1`` of
    #: ``PCG64(SeedSequence([S, i]))`` as ``(k, W)`` uniforms, ``k`` the stream's Gibbs steps
    #: (``spec.gibbs_steps``). A change to it is a new version.
    NOISE_RULE: ClassVar[int] = 1

    def __init__(
        self,
        spec: StreamSpec,
        seed_frames: Any,
        *,
        seed: int = 0,
        count: int | None = None,
        style: Any = None,
        controls: Any = None,
        sequence_indices: Sequence[int] | None = None,
        start_frame: int = 0,
    ) -> None:
        self.spec = spec
        self.seed = int(seed)
        frames = _seed_frames(spec, seed_frames, count)
        batch = frames.shape[0]
        indices = list(range(batch)) if sequence_indices is None else list(sequence_indices)
        if len(indices) != batch:
            raise BadRequest(f"{len(indices)} sequence indices for a batch of {batch}")
        if start_frame < 0:
            raise BadRequest(f"start_frame must be >= 0, got {start_frame}")
        self.indices = indices
        #: index of the next frame to emit
        self.frame = int(start_frame)
        #: ``(B, order, D)``, most recent first
        self.window = np.ascontiguousarray(frames[:, -spec.order :][:, ::-1])
        self._style = self._conditioning(style, spec.style_size, "style")
        self._controls = self._conditioning(controls, spec.controls_size, "controls")
        self._from = self.frame  # frame of index 0 of the conditioning schedules
        self._rngs = [
            sequence_rng(self.seed, i, self.frame, spec.gibbs_steps, spec.noise_width)
            for i in indices
        ]
        self._noise: np.ndarray | None = None  # drawn for self.frame, not yet used
        #: the steering changes so far, in order
        self.changes: list[Change] = []

    @classmethod
    def rebuild(
        cls,
        spec: StreamSpec,
        recent: Any,
        frame: int,
        *,
        seed: int,
        style: Any = None,
        controls: Any = None,
        changes: Sequence[Change] = (),
        sequence_indices: Sequence[int] | None = None,
    ) -> FrameStream:
        """A stream at frame ``frame`` from its last ``order`` frames ``recent`` (oldest first),
        its conditioning at frame 0 (a ``(B, T, S)`` schedule is read from ``frame`` on) and its
        change log: it continues exactly as the original. Costs O(1) in ``frame`` (the noise is
        jumped to, nothing is replayed)."""
        style, controls = (_from_frame(x, frame) for x in (style, controls))
        for change in changes:
            if change.frame > frame:
                break
            if change.what == "style":
                style = change.values
            elif change.what == "controls":
                controls = change.values
        stream = cls(
            spec,
            recent,
            seed=seed,
            style=style,
            controls=controls,
            sequence_indices=sequence_indices,
            start_frame=frame,
        )
        stream.changes = [c for c in changes if c.frame <= frame]
        return stream

    @classmethod
    def resume(cls, spec: StreamSpec, state: StreamState) -> FrameStream:
        """The stream that :meth:`state` described, at its frame (O(1) in the frame index).

        Raises:
            ResumeMismatch: ``state`` follows another noise rule than :attr:`NOISE_RULE`.
            BadRequest: its history or conditioning do not fit ``spec``, or it ran at another
                ``k`` (Gibbs steps per frame) than ``spec``'s.
        """
        if state.noise_rule != cls.NOISE_RULE:
            raise ResumeMismatch(
                f"the stream follows noise rule version {state.noise_rule}; this runtime "
                f"implements version {cls.NOISE_RULE}, so it cannot continue it exactly"
            )
        if state.gibbs_steps not in (0, spec.gibbs_steps):
            raise BadRequest(
                f"the stream ran at k = {state.gibbs_steps} Gibbs steps per frame; it cannot "
                f"continue at k = {spec.gibbs_steps} (its frames would not be the same): "
                f"resume it at k = {state.gibbs_steps}"
            )
        return cls.rebuild(
            spec,
            state.recent,
            state.frame,
            seed=state.seed,
            style=state.style,
            controls=state.controls,
            sequence_indices=state.sequence_indices,
        )

    # ---- state -------------------------------------------------------------------------------
    def state(self) -> StreamState:
        """The stream's state before its next frame: :meth:`resume` continues it exactly (the
        rest of a ``(B, T, S)`` conditioning schedule is not part of it, only the next frame's
        value; steer the resumed stream for later values)."""

        def copy(x: np.ndarray | None) -> np.ndarray | None:
            return None if x is None else x.copy()

        return StreamState(
            frame=self.frame,
            recent=np.ascontiguousarray(self.window[:, ::-1]),
            style=copy(self.style),
            controls=copy(self.controls),
            seed=self.seed,
            sequence_indices=tuple(self.indices),
            noise_rule=self.NOISE_RULE,
            gibbs_steps=self.spec.gibbs_steps,
        )

    @property
    def batch(self) -> int:
        return len(self.indices)

    def _owner(self) -> str:
        return f"model {self.spec.name!r}"

    def _conditioning(self, x: Any, size: int, name: str) -> np.ndarray | None:
        return per_frame(x, size, name, self.batch, owner=self._owner())

    def _at(self, schedule: np.ndarray | None) -> np.ndarray | None:
        if schedule is None:
            return None
        t = min(self.frame - self._from, schedule.shape[1] - 1)
        return np.ascontiguousarray(schedule[:, t])

    @property
    def style(self) -> np.ndarray | None:
        """``(B, S)`` style of the next frame."""
        return self._at(self._style)

    @property
    def controls(self) -> np.ndarray | None:
        """``(B, C)`` controls of the next frame."""
        return self._at(self._controls)

    # ---- steering ----------------------------------------------------------------------------
    def change(self, style: Any = None, controls: Any = None) -> None:
        """From the next frame on, use this style and/or these controls (``(S,)`` or
        ``(B, S)``; ``None``: unchanged)."""
        new = {}
        for name, x, size in (
            ("style", style, self.spec.style_size),
            ("controls", controls, self.spec.controls_size),
        ):
            if x is None:
                continue
            arr = np.asarray(x, dtype=np.float64)
            if arr.ndim > 2:
                raise BadRequest(f"a {name} change is ({size},) or ({self.batch}, {size})")
            value = self._conditioning(arr, size, name)
            assert value is not None  # a model without it raised above
            new[name] = value
        for name, value in new.items():  # all checked: apply together
            self._rebase()
            setattr(self, f"_{name}", value)
            self.changes.append(Change(self.frame, name, value[:, 0].copy()))  # type: ignore[arg-type]

    def _rebase(self) -> None:
        """Start both schedules at the next frame (what is left of each; a change then
        replaces one of them)."""
        for attr in ("_style", "_controls"):
            schedule = getattr(self, attr)
            if schedule is not None:
                t = min(self.frame - self._from, schedule.shape[1] - 1)
                setattr(self, attr, schedule[:, t:])
        self._from = self.frame

    def observe(self, frames: Any) -> None:
        """Use observed frames ``(B, n, D)`` or ``(n, D)`` (oldest first, ``n ≥ 1``) as the most
        recent history (the newest ``min(n, order)`` replace the window's newest)."""
        arr = np.asarray(frames, dtype=np.float64)
        d = self.spec.frame_size
        if arr.ndim == 2:
            arr = np.broadcast_to(arr[None], (self.batch, *arr.shape))
        if arr.ndim != 3 or arr.shape[0] != self.batch or arr.shape[2] != d or arr.shape[1] < 1:
            raise BadRequest(
                f"observed frames must have shape (n, {d}) or ({self.batch}, n, {d}); "
                f"got {np.shape(frames)}"
            )
        if not np.isfinite(arr).all():
            raise BadRequest("observed frames contain NaN or infinite values")
        recent = arr[:, ::-1][:, : self.spec.order]
        window = self.window.copy()
        window[:, : recent.shape[1]] = recent
        self.window = window
        self.changes.append(Change(self.frame, "observe", arr.copy()))

    # ---- the loop ----------------------------------------------------------------------------
    def inputs(self) -> StepInputs:
        """The inputs of the next frame's step (its noise is drawn once, on the first call)."""
        if self._noise is None:
            k, h = self.spec.gibbs_steps, self.spec.noise_width
            noise = np.empty((self.batch, 1, k, h))
            for row, rng in enumerate(self._rngs):
                noise[row] = gibbs_uniforms(rng, 1, k, h)
            self._noise = noise[:, 0]
        return StepInputs(self.window, self._noise, self.style, self.controls)

    def push(self, frames: np.ndarray) -> np.ndarray:
        """Accept the step's output ``(B, D)`` as the next frame and return it.

        Raises:
            ModelDiverged: a row is not finite; the stream is unchanged (:meth:`drop` the
                rows named in the error to go on with the others).
        """
        v = np.asarray(frames, dtype=np.float64)
        if v.shape != (self.batch, self.spec.frame_size):
            raise ValueError(
                f"a step must return ({self.batch}, {self.spec.frame_size}); got {v.shape}"
            )
        if self._noise is None:
            raise RuntimeError("push() before inputs(): the frame's noise was not drawn")
        if not np.isfinite(v).all():
            bad = np.flatnonzero(~np.isfinite(v).all(axis=1))
            raise ModelDiverged(
                self.frame,
                self.spec.name,
                rows=bad.tolist(),
                sequences=[self.indices[r] for r in bad],
            )
        window = self.window.copy()
        _shift(window, v)
        self.window = window
        self.frame += 1
        self._noise = None
        return v

    def drop(self, rows: Sequence[int]) -> None:
        """Remove sequences (rows of the batch) from the stream, e.g. those that diverged."""
        keep = [r for r in range(self.batch) if r not in set(rows)]
        self.indices = [self.indices[r] for r in keep]
        self._rngs = [self._rngs[r] for r in keep]
        self.window = self.window[keep]
        if self._noise is not None:
            self._noise = self._noise[keep]
        if self._style is not None:
            self._style = self._style[keep]
        if self._controls is not None:
            self._controls = self._controls[keep]

    def advance(self, step: StepFn) -> np.ndarray:
        """Compute and accept the next frame ``(B, D)`` with ``step``."""
        return self.push(step(*self.inputs()))

    def frames(self, step: StepFn, n_frames: int) -> Iterator[np.ndarray]:
        """Yield the next ``n_frames`` frames ``(B, D)``; raises :class:`ModelDiverged`."""
        for _ in range(n_frames):
            yield self.advance(step)

    def run(
        self,
        step: StepFn,
        n_frames: int,
        *,
        stop_diverged: bool = False,
        steps: StepsFn | None = None,
        block: int = 16,
    ) -> Generated:
        """The next ``n_frames`` frames of every sequence, ``(B, n_frames, D)``.

        Args:
            step: computes a step.
            n_frames: frames to generate.
            stop_diverged: a sequence that diverges stops there (its frames from then on are
                NaN in the result and it is named in ``diverged``) and the others go on;
                ``False``: raise :class:`ModelDiverged`.
            steps: computes several frames in one call (:data:`StepsFn`, e.g.
                :meth:`Artifact.steps`, the frames of ``step`` called frame by frame): then
                the stream advances in blocks of up to ``block`` frames over which the
                conditioning holds, each block's noise drawn in one call per sequence
                (:func:`~seqboltz.noise.gibbs_uniforms`, the same numbers); the frames, the
                divergences and the stream afterwards are those of ``step`` alone.
            block: the most frames of one ``steps`` call.
        """
        if block < 1:
            raise ValueError(f"block must be >= 1, got {block}")
        rows = list(range(self.batch))  # original row of each row still running
        out = np.empty((self.batch, n_frames, self.spec.frame_size))
        every: slice | list[int] = slice(None)  # rows as an index (a slice while all run)
        diverged: dict[int, ModelDiverged] = {}
        t = 0
        while t < n_frames and rows:
            n = 1 if steps is None else self._block_length(min(block, n_frames - t))
            if n > 1:
                assert steps is not None
                done = self._advance_block(steps, n)
                out[every, t : t + done.shape[1]] = done
                t += done.shape[1]
                if done.shape[1] == n:
                    continue  # else: the next frame is not finite in some row, frame by frame
            v = step(*self.inputs())
            try:
                self.push(v)
            except ModelDiverged as exc:
                if not stop_diverged:
                    raise
                for r, seq in zip(exc.rows, exc.sequences, strict=True):
                    diverged[rows[r]] = ModelDiverged(exc.frame, exc.model, [rows[r]], [seq])
                    out[rows[r], t:] = np.nan
                keep = [r for r in range(len(rows)) if r not in exc.rows]
                self.drop(exc.rows)
                rows = every = [rows[r] for r in keep]
                if not rows:
                    break
                v = self.push(np.asarray(v)[keep])
            out[every, t] = v
            t += 1
        return Generated(out, diverged)

    def _block_length(self, n: int) -> int:
        """How many of the next ``n`` frames share the next frame's style and controls (1
        when its noise is drawn already: :meth:`inputs` was called)."""
        if self._noise is not None:
            return 1
        for schedule in (self._style, self._controls):
            if schedule is None:
                continue
            t = self.frame - self._from
            ahead = schedule[:, t : t + n]  # past the schedule's end its last value holds
            same = (ahead == ahead[:, :1]).all(axis=(0, 2))
            n = min(n, int(np.argmin(same)) if not same.all() else n)
        return n

    def _advance_block(self, steps: StepsFn, n: int) -> np.ndarray:
        """Compute and accept the next ``n`` frames ``(B, n, D)`` with one ``steps`` call
        (the conditioning holds over them, no noise drawn yet). Only the frames before the
        first non-finite one are accepted and returned (fewer than ``n``: the stream is then
        at that frame, its noise not drawn, as if those frames had been pushed one by one)."""
        k, w = self.spec.gibbs_steps, self.spec.noise_width
        if self.batch == 1:  # no copy into a batch
            noise = gibbs_uniforms(self._rngs[0], n, k, w)[None]
        else:
            noise = np.empty((self.batch, n, k, w))
            for row, rng in enumerate(self._rngs):
                noise[row] = gibbs_uniforms(rng, n, k, w)
        frames = np.asarray(steps(self.window, noise, self.style, self.controls))
        if frames.shape != (self.batch, n, self.spec.frame_size):
            raise ValueError(
                f"steps must return ({self.batch}, {n}, {self.spec.frame_size}); got {frames.shape}"
            )
        good = n
        if not np.isfinite(frames).all():
            good = int(np.argmin(np.isfinite(frames).all(axis=(0, 2))))
            frames = frames[:, :good]
        window = self.window.copy()
        _shift(window, frames)
        self.window = window
        self.frame += good
        if good < n:  # the generators drew n frames: back to the next frame's noise
            self._rngs = [sequence_rng(self.seed, i, self.frame, k, w) for i in self.indices]
        return frames


def step_frames(
    step: StepFn,
    history: np.ndarray,
    rngs: Sequence[np.random.Generator],
    n_frames: Sequence[int],
    gibbs_steps: int,
    noise_width: int,
    style: np.ndarray | None = None,
    controls: np.ndarray | None = None,
    *,
    steps: StepsFn | None = None,
) -> list[np.ndarray]:
    """The next frames of ``B`` independent sequences, several each, computed together: the
    multi-frame step of :class:`FrameStream`'s loop (the same noise rule, the same window
    shift), for callers that batch many streams' frames ahead (the service's batcher).

    Step ``t`` is one ``step`` call over the rows that still need a frame (with ``steps``, one
    call computes every frame up to the next row's last); row ``b``'s noise
    is the next ``n_frames[b]`` frames of ``rngs[b]`` (:func:`~seqboltz.noise.gibbs_uniforms`,
    which advances it by exactly those frames) and its window is shifted by its own frames
    only, so a row's frames are those of its sequence generated alone.

    Args:
        step: computes a step (:data:`StepFn`, e.g. :meth:`Artifact.step`).
        history: ``(B, order, D)`` each row's window, most recent frame first (not modified).
        rngs: each row's noise generator at its next frame (advanced by its frames).
        n_frames: frames to compute per row (each ``≥ 1``).
        gibbs_steps: ``k``, Gibbs steps per frame, the same for every row.
        noise_width: ``W``, uniforms per Gibbs step.
        style: ``(B, S)`` each row's style for all its frames, or ``None``.
        controls: ``(B, C)``, or ``None``.
        steps: computes several frames in one call (:data:`StepsFn`, e.g.
            :meth:`Artifact.steps`, which returns what ``n`` calls of ``step`` would): then
            one call per distinct row length instead of one per frame.

    Returns:
        Each row's frames ``(m_b, D)``, ``m_b = n_frames[b]`` unless frame ``m_b`` of the row
        was not finite (a stream never emits a non-finite frame: it and the frames after it
        are dropped).

    >>> toy = lambda h, u, z, c: h[:, 0] + u.mean(axis=(1, 2))[:, None]
    >>> rngs = [np.random.default_rng(i) for i in range(2)]
    >>> [f.shape for f in step_frames(toy, np.zeros((2, 1, 3)), rngs, [4, 2], 1, 5)]
    [(4, 3), (2, 3)]
    """
    b = history.shape[0]
    if len(rngs) != b or len(n_frames) != b or min(n_frames, default=1) < 1:
        raise ValueError(f"need one generator and n_frames >= 1 per row of {b}")
    order = sorted(range(b), key=lambda i: -n_frames[i])  # rows running at step t: a prefix
    lengths = [n_frames[i] for i in order]
    longest = lengths[0] if b else 0
    noise = np.empty((b, longest, gibbs_steps, noise_width))  # (B, n, k, W), rows by length
    for j, i in enumerate(order):
        noise[j, : lengths[j]] = gibbs_uniforms(rngs[i], lengths[j], gibbs_steps, noise_width)
    window = np.ascontiguousarray(history[order], dtype=np.float64)  # (B, order, D)
    style = None if style is None else style[order]
    controls = None if controls is None else controls[order]
    out = np.empty((b, longest, history.shape[2]))  # (B, n, D)
    active, t = b, 0
    while t < longest:
        while lengths[active - 1] <= t:
            active -= 1
        a = slice(0, active)
        z = None if style is None else style[a]
        c = None if controls is None else controls[a]
        if steps is None:
            end = t + 1
            out[a, t] = step(window[a], noise[a, t], z, c)
        else:
            end = lengths[active - 1]  # every row of ``a`` needs these frames
            out[a, t:end] = steps(window[a], noise[a, t:end], z, c)
        _shift(window[a], out[a, t:end])
        t = end
    result: list[np.ndarray] = [out[j, :0] for j in range(b)]
    for j, i in enumerate(order):
        frames = out[j, : lengths[j]]
        finite = np.isfinite(frames).all(axis=1)
        result[i] = frames if finite.all() else frames[: int(np.argmin(finite))]
    return result


def _shift(window: np.ndarray, frames: np.ndarray) -> None:
    """Push ``frames``, ``(B, D)`` or ``(B, n, D)`` oldest first, into ``window (B, order, D)``
    (most recent first), in place."""
    if frames.ndim == 2:
        frames = frames[:, None]
    n, order = frames.shape[1], window.shape[1]
    if n < order:
        window[:, n:] = window[:, : order - n].copy()
    newest = frames[:, ::-1][:, :order]  # (B, min(n, order), D), most recent first
    window[:, : newest.shape[1]] = newest


def _from_frame(x: Any, frame: int) -> Any:
    """A ``(B, T, S)`` schedule that starts at frame 0, from ``frame`` on (the last value
    holds); anything else unchanged."""
    if x is None or np.ndim(x) != 3:
        return x
    arr = np.asarray(x)
    return arr[:, min(frame, arr.shape[1] - 1) :]


def _seed_frames(spec: StreamSpec, seed_frames: Any, count: int | None) -> np.ndarray:
    """``(B, T0, D)`` checked seed frames."""
    frames = np.asarray(seed_frames, dtype=np.float64)
    frames = frames[None] if frames.ndim == 2 else frames
    if count is not None and frames.ndim == 3 and frames.shape[0] == 1:
        frames = np.broadcast_to(frames, (count, *frames.shape[1:]))
    d, order = spec.frame_size, spec.order
    if frames.ndim != 3 or frames.shape[2] != d:
        raise BadRequest(
            f"seed frames must have shape (batch, >= {order}, {d}) or (>= {order}, {d}); "
            f"got {np.shape(seed_frames)}"
        )
    if frames.shape[1] < order:
        raise BadRequest(
            f"need at least {order} seed frames (the model's order); got {frames.shape[1]}"
        )
    if count is not None and frames.shape[0] != count:
        raise BadRequest(f"{frames.shape[0]} seed sequences for count={count}")
    if frames.shape[0] < 1:
        raise BadRequest("no sequences: the batch is empty")
    if not np.isfinite(frames).all():
        raise BadRequest("seed frames contain NaN or infinite values")
    return frames
