"""Resume tokens: every chunk carries the stream's state; any server holding the same model
continues from it without replaying (at frame 10⁶ as at frame 14), a steered stream survives
its server being killed, and a token of another model version or noise rule is refused."""

from __future__ import annotations

import queue
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
from serving_helpers import Server, start_server

from seqboltz.runtime import FrameStream, StreamState, load_artifact
from seqboltz.v1 import generation_pb2 as pb
from seqboltz.v1 import generation_pb2_grpc as pb_grpc

D, ORDER = 8, 3


def values(chunks: list[pb.FrameChunk]) -> tuple[list[int], np.ndarray]:
    frames = [f for c in chunks for f in c.frames]
    return [f.index for f in frames], np.asarray([list(f.values) for f in frames])


def test_every_chunk_carries_a_token_that_resumes_exactly(server: Server) -> None:
    stub = server.stub()
    chunks = list(
        stub.Generate(pb.GenerateRequest(model="crbm", n_frames=30, seed=42, frames_per_message=7))
    )
    idx, got = values(chunks)
    assert idx == list(range(30))
    sha = stub.GetModel(pb.GetModelRequest(name="crbm")).sha256
    for chunk in chunks:
        token, last = chunk.resume, chunk.frames[-1].index
        assert (token.frame, token.seed, token.model_sha256) == (last + 1, 42, sha)
        assert token.noise_rule == FrameStream.NOISE_RULE
        np.testing.assert_array_equal(
            np.reshape(token.history, (ORDER, D)), got[last + 1 - ORDER : last + 1]
        )
    token = chunks[1].resume  # after frame 13
    resumed = list(stub.Generate(pb.GenerateRequest(model="crbm", n_frames=16, resume=token)))
    idx2, tail = values(resumed)
    assert idx2 == list(range(14, 30))
    np.testing.assert_array_equal(tail, got[14:])
    assert resumed[-1].resume == chunks[-1].resume


def test_a_token_at_frame_a_million_continues_without_replay(server: Server) -> None:
    """The frames the server sends from a token at frame 10⁶ are the runtime's FrameStream
    resumed there in-process (its noise jumped to, nothing replayed)."""
    stub = server.stub()
    (chunk,) = stub.Generate(
        pb.GenerateRequest(model="fcrbm", n_frames=3, style=[0.5], seed=9, frames_per_message=3)
    )
    token = pb.ResumeToken()
    token.CopyFrom(chunk.resume)
    token.frame = 10**6
    request = pb.GenerateRequest(model="fcrbm", n_frames=5, resume=token, frames_per_message=5)
    idx, got = values(list(stub.Generate(request, timeout=10)))
    assert idx == list(range(10**6, 10**6 + 5))
    art = load_artifact(server.folder / "fcrbm.onnx")
    state = StreamState(
        frame=10**6,
        recent=np.reshape(token.history, (1, ORDER, D)),
        style=np.array([[0.5]]),
        controls=None,
        seed=9,
        sequence_indices=(0,),
        noise_rule=1,
    )
    np.testing.assert_array_equal(
        got, FrameStream.resume(art.spec, state).run(art.step, 5).frames[0]
    )


@pytest.mark.parametrize(
    ("change", "code", "words"),
    [
        ({"model_sha256": "0" * 64}, grpc.StatusCode.FAILED_PRECONDITION, "another version"),
        ({"noise_rule": 2}, grpc.StatusCode.FAILED_PRECONDITION, "noise rule version 2"),
        ({"history": [0.0] * 5}, grpc.StatusCode.INVALID_ARGUMENT, "resume.history"),
        ({"history": [0.0] * D}, grpc.StatusCode.INVALID_ARGUMENT, "at least 3 seed frames"),
        ({"style": [1.0]}, grpc.StatusCode.INVALID_ARGUMENT, "style"),
    ],
)
def test_a_token_that_does_not_fit_is_refused(server: Server, change, code, words) -> None:
    stub = server.stub()
    (chunk,) = stub.Generate(
        pb.GenerateRequest(model="crbm", n_frames=3, seed=1, frames_per_message=3)
    )
    token = pb.ResumeToken()
    token.CopyFrom(chunk.resume)
    for field, value in change.items():
        if isinstance(value, list):
            getattr(token, field)[:] = value
        else:
            setattr(token, field, value)
    with pytest.raises(grpc.RpcError) as err:
        list(stub.Generate(pb.GenerateRequest(model="crbm", n_frames=2, resume=token)))
    assert err.value.code() == code and words in err.value.details(), err.value.details()


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"style": [1.0]}, "leave style empty"),
        ({"seed": 2}, "seed=2 contradicts"),
        ({"start_frame": 5}, "start_frame=5 contradicts"),
    ],
)
def test_a_request_that_contradicts_its_token_is_refused(server: Server, fields, words) -> None:
    stub = server.stub()
    (chunk,) = stub.Generate(
        pb.GenerateRequest(model="crbm", n_frames=3, seed=1, frames_per_message=3)
    )
    request = pb.GenerateRequest(model="crbm", n_frames=2, resume=chunk.resume, **fields)
    with pytest.raises(grpc.RpcError) as err:
        list(stub.Generate(request))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert words in err.value.details(), err.value.details()


def test_a_token_records_its_k_and_the_stream_resumes_at_it(server: Server) -> None:
    """A stream at k = 2 (the model's k is 5): its frames are the runtime's at k = 2, its
    tokens say k = 2, a resume continues at k = 2 (named or not), another k is refused, and a
    token without a k (from before k could vary) resumes at the model's k."""
    stub = server.stub()
    request = pb.GenerateRequest(
        model="crbm", n_frames=20, seed=8, gibbs_steps=2, frames_per_message=10
    )
    chunks = list(stub.Generate(request))
    _, got = values(chunks)
    art = load_artifact(server.folder / "crbm.onnx")
    assert np.abs(got - art.generate(20, seed=8, count=1, gibbs_steps=2)[0]).max() <= 1e-4
    assert np.abs(got - art.generate(20, seed=8, count=1)[0]).max() > 1e-3
    token = chunks[0].resume
    assert token.gibbs_steps == 2 and token.frame == 10
    for k in (0, 2):
        again = pb.GenerateRequest(model="crbm", n_frames=10, resume=token, gibbs_steps=k)
        idx, tail = values(list(stub.Generate(again)))
        assert idx == list(range(10, 20))
        np.testing.assert_array_equal(tail, got[10:])
    with pytest.raises(grpc.RpcError) as err:
        list(stub.Generate(pb.GenerateRequest(model="crbm", resume=token, gibbs_steps=5)))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "gibbs_steps=5 contradicts the resume token's 2" in err.value.details()
    at_k5 = list(stub.Generate(pb.GenerateRequest(model="crbm", n_frames=12, seed=8)))
    old = pb.ResumeToken()
    old.CopyFrom(at_k5[0].resume)
    assert old.gibbs_steps == 5
    old.gibbs_steps = 0
    _, tail = values(list(stub.Generate(pb.GenerateRequest(model="crbm", n_frames=2, resume=old))))
    np.testing.assert_array_equal(tail, values(at_k5)[1][old.frame : old.frame + 2])


class Steering:
    """A Steer call whose requests the test sends one by one."""

    def __init__(self, stub: pb_grpc.GenerationStub, start: pb.GenerateRequest) -> None:
        self._queue: queue.Queue[pb.SteerRequest | None] = queue.Queue()
        self._queue.put(pb.SteerRequest(start=start))
        self.call = stub.Steer(self._requests(), timeout=30)
        self.chunks: list[pb.FrameChunk] = []

    def _requests(self) -> Iterator[pb.SteerRequest]:
        while (message := self._queue.get()) is not None:
            yield message

    def send(self, **action: object) -> None:
        self._queue.put(pb.SteerRequest(**action))

    def read_until(self, n_frames: int) -> None:
        while sum(len(c.frames) for c in self.chunks) < n_frames:
            self.chunks.append(next(self.call))

    def finish(self) -> None:
        self._queue.put(None)
        self.chunks.extend(self.call)


def steered(stub: pb_grpc.GenerationStub, more: int) -> Steering:
    """fcrbm from seed 5 with style -1.5; after frame 20 its style becomes 2.0 (the change is
    sent once the first 20 frames have arrived, so it takes effect at frame 20 exactly)."""
    start = pb.GenerateRequest(
        model="fcrbm", n_frames=20, seed=5, style=[-1.5], frames_per_message=4
    )
    s = Steering(stub, start)
    s.read_until(20)
    s.send(change=pb.Conditioning(style=[2.0]))
    s.send(more_frames=more)
    return s


def test_a_steered_stream_resumes_on_another_server_after_a_kill(
    server: Server, model_dir: Path
) -> None:
    """Two server processes on loopback: a steered stream on the first is killed (SIGKILL) in
    the middle; the second continues it from the last token, and the frames are those of an
    uninterrupted run."""
    reference = steered(server.stub(), more=40)
    reference.read_until(60)
    reference.finish()
    idx_ref, ref = values(reference.chunks)
    applied = [a for c in reference.chunks for a in c.applied]
    assert idx_ref == list(range(60)) and [(a.action, a.frame) for a in applied] == [
        ("change", 20),
        ("more_frames", 20),
    ]

    doomed = start_server(model_dir)
    try:
        first = steered(doomed.stub(), more=10**5)  # still running when it is killed
        first.read_until(36)
        assert doomed.proc.poll() is None
        doomed.proc.kill()
        doomed.proc.wait(timeout=30)
        with pytest.raises(grpc.RpcError) as err:
            first.read_until(10**5)
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        doomed.stop()
    received = first.chunks  # all that arrived before the connection broke
    token = received[-1].resume
    idx_a, before = values(received)
    assert token.frame == len(idx_a) >= 36 and list(token.style) == [2.0]

    second = Steering(
        server.stub(),
        pb.GenerateRequest(
            model="fcrbm", n_frames=60 - token.frame, resume=token, frames_per_message=4
        ),
    )
    second.finish()
    idx_b, after = values(second.chunks)
    assert idx_a + idx_b == list(range(60))
    np.testing.assert_array_equal(np.concatenate([before, after]), ref)


def test_generate_client_saves_and_resumes_a_token(server: Server, tmp_path: Path) -> None:
    """`seqboltz generate --save-token` keeps the last token, also when the stream breaks (here
    at its deadline, with the frames received so far); `--resume` continues from it, and the
    parts put together are the uninterrupted stream."""
    from serving.client import load_token, main

    common = ["--server", server.address, "--model", "crbm"]
    assert main([*common, "--frames", "90", "--seed", "3", "--out", str(tmp_path / "whole")]) == 0
    broken = [*common, "--frames", "300", "--seed", "3", "--realtime", "--timeout", "1.5"]
    assert (
        main([*broken, "--out", str(tmp_path / "a"), "--save-token", str(tmp_path / "a.json")]) == 1
    )
    token = load_token(tmp_path / "a.json")
    first = np.load(tmp_path / "a.npy")
    assert 0 < token.frame == first.shape[0] <= 50 and token.seed == 3  # 30 fps for 1.5 s
    rest = ["--frames", str(90 - token.frame), "--resume", str(tmp_path / "a.json")]
    assert (
        main(
            [*common, *rest, "--out", str(tmp_path / "b"), "--save-token", str(tmp_path / "b.json")]
        )
        == 0
    )
    assert load_token(tmp_path / "b.json").frame == 90
    whole = np.load(tmp_path / "whole.npy")
    np.testing.assert_array_equal(np.concatenate([first, np.load(tmp_path / "b.npy")]), whole)
    (tmp_path / "bad.json").write_text("not a token")
    for bad in ("nope.json", "bad.json"):  # one line on stderr (argparse), exit 2, no output
        with pytest.raises(SystemExit) as exit_:
            main([*common, "--resume", str(tmp_path / bad), "--out", str(tmp_path / "c")])
        assert exit_.value.code == 2
    assert not list(tmp_path.glob("c*"))
