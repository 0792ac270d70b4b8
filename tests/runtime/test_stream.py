"""The one frame loop (FrameStream): torch generation equals it; steering; a stream rebuilt at
frame t from its last frames and change log continues exactly; no non-finite frame leaves it."""

from __future__ import annotations

import copy
import time

import numpy as np
import pytest
import torch

from seqboltz.errors import ResumeMismatch
from seqboltz.models import FactoredConditionalRBM, SequenceRBM
from seqboltz.noise import gibbs_uniforms, sequence_rng
from seqboltz.runtime import (
    BadRequest,
    FrameStream,
    ModelDiverged,
    StepFn,
    StreamSpec,
    load_artifact,
    step_frames,
)

D, ORDER, K = 8, 3, 5


def torch_spec(model: SequenceRBM, gibbs_steps: int) -> StreamSpec:
    return StreamSpec(
        name="torch",
        frame_size=model.n_visible,
        order=model.order,
        gibbs_steps=gibbs_steps,
        noise_width=model.noise_width,
        style_size=model.n_style,
        controls_size=model.n_controls,
    )


def torch_step(model: SequenceRBM) -> StepFn:
    """The torch model's one-frame sampler as a numpy step (float64)."""
    m = copy.deepcopy(model).double()

    def step(history, noise, style, controls) -> np.ndarray:
        cond = {"history": torch.from_numpy(np.array(history))}
        for name, x in (("style", style), ("controls", controls)):
            if x is not None:
                cond[name] = torch.from_numpy(np.array(x))
        with torch.no_grad():
            return m.next_frame(cond, torch.from_numpy(np.array(noise))).numpy()

    return step


def test_torch_generate_is_the_frame_stream() -> None:
    """``SequenceRBM.generate`` and a FrameStream driven by the same model's step give the same
    frames: a styled, controlled model, per-frame style changing mid-sequence, other sequence
    indices, more seed frames than the order."""
    torch.manual_seed(3)
    model = FactoredConditionalRBM(
        D, 10, ORDER, n_style=2, n_factors=6, n_controls=2, init_std=0.3
    ).double()
    rng = np.random.default_rng(0)
    seeds = rng.normal(size=(3, ORDER + 2, D))
    style = np.where(np.arange(25)[None, :, None] < 9, -1.0, 1.2) * np.ones((3, 25, 2))
    controls = rng.normal(size=(3, 2))
    indices = [5, 0, 2]
    expected = model.generate(
        torch.from_numpy(seeds),
        25,
        gibbs_steps=4,
        style=torch.from_numpy(style),
        controls=torch.from_numpy(controls),
        seed=9,
        sequence_indices=indices,
    ).numpy()
    stream = FrameStream(
        torch_spec(model, 4),
        seeds,
        seed=9,
        style=style,
        controls=controls,
        sequence_indices=indices,
    )
    got = stream.run(torch_step(model), 25)
    assert got.diverged == {} and stream.frame == 25
    np.testing.assert_allclose(got.frames, expected, rtol=0, atol=1e-12)


def test_change_and_observe_equal_a_per_frame_schedule(fcrbm_path) -> None:
    """Steering (``change`` at frame 7) is the same as a per-frame style from the start; an
    observed frame replaces the newest history; both are logged with their frame."""
    _, path = fcrbm_path
    art = load_artifact(path)
    style = np.where(np.arange(15) < 7, -1.0, 2.0)[None, :, None]
    scheduled = art.generate(15, seed=4, count=1, style=style)
    stream = art.frame_stream(seed=4, style=[-1.0])
    first = np.stack([stream.advance(art.step) for _ in range(7)], axis=1)
    stream.change(style=[2.0])
    rest = np.stack([stream.advance(art.step) for _ in range(8)], axis=1)
    np.testing.assert_array_equal(np.concatenate([first, rest], axis=1), scheduled)
    observed = np.full((1, D), 0.25)
    stream.observe(observed)
    np.testing.assert_array_equal(stream.window[0, 0], observed[0])
    np.testing.assert_array_equal(stream.window[0, 1], rest[0, -2])  # replaced, not shifted
    assert [(c.frame, c.what) for c in stream.changes] == [(7, "style"), (15, "observe")]
    # a change of one input leaves the other's per-frame schedule running
    torch.manual_seed(3)
    both = FactoredConditionalRBM(D, 10, ORDER, n_style=1, n_factors=6, n_controls=1, init_std=0.3)
    both = both.double()
    ramp = np.linspace(-1, 1, 12)[None, :, None]
    expected = both.generate(
        torch.zeros(1, ORDER, D, dtype=torch.float64),
        12,
        gibbs_steps=3,
        style=torch.from_numpy(ramp),
        controls=torch.from_numpy(np.where(np.arange(12) < 5, 0.0, 2.0)[None, :, None]),
    ).numpy()
    steered = FrameStream(torch_spec(both, 3), np.zeros((ORDER, D)), style=ramp, controls=[0.0])
    step = torch_step(both)
    got = [steered.advance(step) for _ in range(5)]
    steered.change(controls=[2.0])
    got += [steered.advance(step) for _ in range(7)]
    np.testing.assert_allclose(np.stack(got, axis=1), expected, rtol=0, atol=1e-12)
    for bad in (
        lambda: stream.change(style=[1.0, 2.0]),
        lambda: stream.change(controls=[1.0]),
        lambda: stream.observe(np.zeros((1, D + 1))),
        lambda: stream.observe(np.full((1, D), np.nan)),
    ):
        with pytest.raises(BadRequest):
            bad()
    assert len(stream.changes) == 2  # refused changes change nothing


def test_rebuilt_stream_continues_exactly(fcrbm_path) -> None:
    """A stream rebuilt at frame 25 from its last ``order`` frames, the frame index and the
    change log continues with the same frames, and its noise is jumped to, not replayed."""
    _, path = fcrbm_path
    art = load_artifact(path)
    a = art.frame_stream(seed=11, count=2, style=[0.5], sequence_indices=[3, 8])
    frames = []
    for t in range(40):
        if t == 10:
            a.change(style=[[-1.5], [1.0]])
        if t == 18:
            a.observe(np.linspace(-1, 1, 2 * D).reshape(2, D))
        if t == 25:
            b = FrameStream.rebuild(
                art.spec,
                np.stack(frames[-ORDER:], axis=1),
                25,
                seed=11,
                style=[0.5],
                changes=a.changes,
                sequence_indices=[3, 8],
            )
        frames.append(a.advance(art.step))
    continued = b.run(art.step, 15).frames
    np.testing.assert_array_equal(continued, np.stack(frames[25:], axis=1))
    # the noise cursor: frame t's uniforms directly, equal to drawing every frame before it
    rng = sequence_rng(11, 3)
    gibbs_uniforms(rng, 1000, K, art.noise_width)
    start = time.perf_counter()
    jumped = art.frame_stream(seed=11, style=[0.5], sequence_indices=[3], start_frame=1000)
    far = art.frame_stream(seed=11, style=[0.5], start_frame=10**15)
    assert time.perf_counter() - start < 0.5 and far.frame == 10**15
    np.testing.assert_array_equal(
        jumped.inputs().noise[0], gibbs_uniforms(rng, 1, K, art.noise_width)[0]
    )


def test_state_resumes_exactly(fcrbm_path) -> None:
    """``state()`` after steering (a style change, observed frames) is all a stream needs:
    ``resume`` continues it with the same frames, at any frame index in O(1), and refuses a
    state of another noise rule."""
    _, path = fcrbm_path
    art = load_artifact(path)
    a = art.frame_stream(seed=5, count=2, style=[0.5], sequence_indices=[0, 4])
    a.run(art.step, 6)
    a.change(style=[[-1.5], [1.0]])
    a.run(art.step, 4)
    a.observe(np.linspace(-1, 1, 2 * D).reshape(2, D))
    state = a.state()
    assert state.frame == 10 and state.sequence_indices == (0, 4)
    assert state.noise_rule == FrameStream.NOISE_RULE == 1
    np.testing.assert_array_equal(state.style, [[-1.5], [1.0]])
    expected = a.run(art.step, 12).frames  # the state is a copy: running `a` leaves it as it was
    np.testing.assert_array_equal(
        FrameStream.resume(art.spec, state).run(art.step, 12).frames, expected
    )
    start = time.perf_counter()
    far = FrameStream.resume(art.spec, state._replace(frame=10**15))
    assert time.perf_counter() - start < 0.5
    np.testing.assert_array_equal(
        far.inputs().noise[1],
        gibbs_uniforms(sequence_rng(5, 4, 10**15, K, art.noise_width), 1, K, art.noise_width)[0],
    )
    with pytest.raises(ResumeMismatch, match="noise rule version 2"):
        FrameStream.resume(art.spec, state._replace(noise_rule=2))


def test_step_frames_equals_each_stream_alone(fcrbm_path) -> None:
    """The multi-frame step over rows of different lengths, windows and styles: each row's
    frames are those of a FrameStream of its sequence alone (bit for bit), and its noise
    generator ends where that stream's next frame starts."""
    _, path = fcrbm_path
    art = load_artifact(path)
    rows = [(0, 7, -1.0), (3, 2, 0.5), (1, 1, 2.0), (5, 7, 0.0), (2, 4, 1.5)]  # (i, n, style)
    seeds = np.random.default_rng(2).normal(size=(len(rows), ORDER, D))
    rngs = [sequence_rng(6, i, 40, K, art.noise_width) for i, _, _ in rows]
    got = step_frames(
        art.step,
        seeds[:, ::-1],
        rngs,
        [n for _, n, _ in rows],
        K,
        art.noise_width,
        style=np.array([[z] for _, _, z in rows]),
    )
    for (i, n, z), seed, frames, rng in zip(rows, seeds, got, rngs, strict=True):
        alone = FrameStream(art.spec, seed, seed=6, style=[z], sequence_indices=[i], start_frame=40)
        np.testing.assert_array_equal(frames, alone.run(art.step, n).frames[0])
        jumped = sequence_rng(6, i, 40 + n, K, art.noise_width)
        np.testing.assert_array_equal(rng.random(3), jumped.random(3))


def test_step_frames_cuts_a_row_before_its_first_non_finite_frame() -> None:
    """A row whose step goes non-finite at its frame 2 keeps frames 0 and 1; the others all."""

    def step(history, noise, style, controls):  # type: ignore[no-untyped-def]
        v = history[:, 0] + 1.0
        v[np.isclose(history[:, 0, 0], 2.0) & (noise[:, 0, 0] >= 0)] = np.nan  # row 1 only
        return v

    history = np.zeros((3, 1, 2))  # (B, order, D)
    history[[0, 2]] = 10.0
    rngs = [np.random.default_rng(i) for i in range(3)]
    got = step_frames(step, history, rngs, [5, 5, 3], gibbs_steps=1, noise_width=2)
    assert [f.shape[0] for f in got] == [5, 2, 3]
    np.testing.assert_array_equal(got[1], [[1.0, 1.0], [2.0, 2.0]])
    assert all(np.isfinite(f).all() for f in got)


def first_non_finite(frames: np.ndarray) -> list[int | None]:
    """Per sequence, the first frame with a NaN or inf (``None``: all finite)."""
    ok = np.isfinite(frames).all(axis=2)
    return [None if row.all() else int(np.argmin(row)) for row in ok]


def test_a_diverging_model_emits_no_non_finite_frame(diverging_path) -> None:
    """A real exported model whose weights blow up: the runtime stops each sequence at the
    frame where torch's unchecked generation first goes non-finite; the others go on."""
    model, path = diverging_path
    art = load_artifact(path)
    n = 345
    torch_frames = model.generate(
        torch.zeros(8, ORDER, D, dtype=torch.float64), n, gibbs_steps=art.gibbs_steps, seed=0
    ).numpy()
    where = first_non_finite(torch_frames)
    assert all(w is not None for w in where) and len(set(where)) > 1  # they differ
    with pytest.raises(ModelDiverged, match=f"model diverged at frame {min(where)}") as err:
        art.generate(n, seed=0, count=8)
    assert set(err.value.sequences) == {i for i, w in enumerate(where) if w == min(where)}
    assert list(err.value.rows) == list(err.value.sequences)
    # streamed: every frame before the divergence comes out, then the error
    stream = art.frame_stream(seed=0, sequence_indices=[int(np.argmax(where))])
    good = []
    with pytest.raises(ModelDiverged) as err:
        for _ in range(n):
            good.append(stream.advance(art.step))
    assert len(good) == max(where) == err.value.frame == stream.frame
    assert np.isfinite(np.concatenate(good)).all()
    window = stream.window.copy()
    with pytest.raises(ModelDiverged):  # refused again, and the stream did not move
        stream.advance(art.step)
    assert stream.frame == max(where) and np.array_equal(stream.window, window)
    # stop_diverged: each sequence stops at its own frame, the rest equals torch
    run = art.frame_stream(seed=0, count=8).run(art.step, n, stop_diverged=True)
    assert {r: e.frame for r, e in run.diverged.items()} == dict(enumerate(where))
    for r, w in enumerate(where):
        assert np.isnan(run.frames[r, w:]).all()
        np.testing.assert_allclose(run.frames[r, :w], torch_frames[r, :w], rtol=1e-6)
