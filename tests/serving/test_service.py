"""The generation service over loopback: streaming, seeds, resume, steering, health,
reflection, limits, bad input, cancellation, concurrency."""

from __future__ import annotations

import asyncio
import json
import math
import time
import urllib.request

import grpc
import numpy as np
import pytest
from google.protobuf import descriptor_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from seqboltz.runtime import load_artifact
from seqboltz.v1 import generation_pb2 as pb
from seqboltz.v1 import generation_pb2_grpc as pb_grpc
from seqboltz.v1 import grpc_reflection_v1_pb2 as v1_pb2
from seqboltz.v1 import grpc_reflection_v1_pb2_grpc as v1_grpc

D = 8


def frames_of(stream) -> tuple[list[int], np.ndarray]:
    idx, vals = [], []
    for chunk in stream:
        for f in chunk.frames:
            idx.append(f.index)
            vals.append(list(f.values))
    return idx, np.asarray(vals)


def metric(server, name: str) -> float:
    """The value of one sample (``name`` with its labels, as Prometheus prints it)."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{server.metrics_port}/metrics").read()
    for line in text.decode().splitlines():
        if line.startswith(f"{name} "):
            return float(line.split()[-1])
    raise AssertionError(f"no sample {name!r}")


def active_streams(server) -> float:
    return metric(server, "seqboltz_active_streams")


def batches_over_one(server) -> float:
    """Runtime calls that stepped more than one stream: all batches less those of size 1."""
    return metric(server, "seqboltz_batch_size_count") - metric(
        server, 'seqboltz_batch_size_bucket{le="1.0"}'
    )


def test_list_and_get_models(server) -> None:
    stub = server.stub()
    names = [m.name for m in stub.ListModels(pb.ListModelsRequest()).models]
    assert names == ["crbm", "fcrbm"]
    info = stub.GetModel(pb.GetModelRequest(name="fcrbm"))
    assert (info.frame_size, info.order, info.gibbs_steps, info.style_size) == (D, 3, 5, 1)
    assert json.loads(info.card_json)["kind"] == "FactoredConditionalRBM"
    with pytest.raises(grpc.RpcError) as err:
        stub.GetModel(pb.GetModelRequest(name="nope"))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND and "nope" in err.value.details()


def test_a_k_outside_1_to_max_is_invalid_argument(server) -> None:
    stub = server.stub()
    info = stub.GetModel(pb.GetModelRequest(name="crbm"))
    assert (info.gibbs_steps, info.max_gibbs_steps) == (5, 5)
    for k in (6, 1000):
        with pytest.raises(grpc.RpcError) as err:
            list(stub.Generate(pb.GenerateRequest(model="crbm", n_frames=2, gibbs_steps=k)))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert err.value.details() == (
            f"model 'crbm' samples with 1 to 5 Gibbs steps per frame (default 5); "
            f"got gibbs_steps={k}"
        )


def test_stream_equals_offline_runtime_and_resumes(server) -> None:
    stub = server.stub()
    request = pb.GenerateRequest(model="crbm", n_frames=120, seed=42, frames_per_message=7)
    chunks = list(stub.Generate(request))
    assert all(c.seed == 42 for c in chunks) and len(chunks) == math.ceil(120 / 7)
    idx, got = frames_of(chunks)
    assert idx == list(range(120))
    art = load_artifact(server.folder / "crbm.onnx")
    offline = art.generate(120, seed=42, count=1)[0]
    assert np.abs(got - offline).max() <= 1e-4
    resumed = pb.GenerateRequest(model="crbm", n_frames=40, seed=42, start_frame=80)
    idx2, tail = frames_of(stub.Generate(resumed))
    assert idx2 == list(range(80, 120))
    np.testing.assert_array_equal(tail, got[80:])
    units = pb.GenerateRequest(model="crbm", n_frames=3, seed=42, data_units=True)
    np.testing.assert_allclose(frames_of(stub.Generate(units))[1], art.to_data_units(got[:3]))


def test_steering_changes_style_at_a_reported_frame(server) -> None:
    """The style change shows in the frames that follow, and the stream is reproducible from
    its seed and the reported change log."""
    stub = server.stub()
    start = pb.GenerateRequest(model="fcrbm", n_frames=60, seed=3, style=[-1.5])
    sent = []

    def requests():
        yield pb.SteerRequest(start=start)
        while len(sent) < 20:
            time.sleep(0.01)
        yield pb.SteerRequest(change=pb.Conditioning(style=[2.0]))

    idx, vals, applied = [], [], []
    for chunk in stub.Steer(requests()):
        for f in chunk.frames:
            idx.append(f.index)
            vals.append(list(f.values))
            sent.append(f.index)
        applied.extend(chunk.applied)
    assert idx == list(range(60))
    assert [a.action for a in applied] == ["change"] and 20 <= applied[0].frame < 60
    at = applied[0].frame
    art = load_artifact(server.folder / "fcrbm.onnx")
    style = np.where(np.arange(60) < at, -1.5, 2.0)[None, :, None]
    offline = art.generate(60, seed=3, count=1, style=style)[0]
    assert np.abs(np.asarray(vals) - offline).max() <= 1e-4
    unsteered = art.generate(60, seed=3, count=1, style=np.array([-1.5]))[0]
    np.testing.assert_array_equal(offline[:at], unsteered[:at])
    assert np.abs(offline[at:] - unsteered[at:]).max() > 1e-3  # the change is visible


def test_steer_more_frames_and_observe(server) -> None:
    stub = server.stub()
    observed = np.linspace(-1, 1, 3 * D)

    def requests():
        yield pb.SteerRequest(start=pb.GenerateRequest(model="crbm", n_frames=5, seed=1))
        yield pb.SteerRequest(observe=pb.ObservedFrames(values=observed))
        yield pb.SteerRequest(more_frames=5)

    chunks = list(stub.Steer(requests()))
    idx = [f.index for c in chunks for f in c.frames]
    actions = [a.action for c in chunks for a in c.applied]
    assert idx == list(range(10)) and sorted(actions) == ["more_frames", "observe"]


def test_health_and_reflection(server) -> None:
    """Health, and reflection in both versions: v1 (what current clients ask for) answers
    like v1alpha, lists both, and serves the descriptors of the Generation service."""
    ch = grpc.insecure_channel(server.address)
    health = health_pb2_grpc.HealthStub(ch)
    for service in ("", "seqboltz.v1.Generation"):
        status = health.Check(health_pb2.HealthCheckRequest(service=service)).status
        assert status == health_pb2.HealthCheckResponse.SERVING
    alpha = reflection_pb2_grpc.ServerReflectionStub(ch)
    reply = next(
        alpha.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
    )
    names = {s.name for s in reply.list_services_response.service}
    expected = {
        "seqboltz.v1.Generation",
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
    }
    assert expected <= names
    v1 = v1_grpc.ServerReflectionStub(ch)
    requests = [
        v1_pb2.ServerReflectionRequest(list_services=""),
        v1_pb2.ServerReflectionRequest(file_containing_symbol="seqboltz.v1.Generation"),
        v1_pb2.ServerReflectionRequest(
            file_containing_symbol="grpc.reflection.v1.ServerReflection"
        ),
        v1_pb2.ServerReflectionRequest(file_containing_symbol="no.such.Symbol"),
    ]
    listed, generation, itself, missing = list(v1.ServerReflectionInfo(iter(requests)))
    assert {s.name for s in listed.list_services_response.service} == names
    files = [
        descriptor_pb2.FileDescriptorProto.FromString(raw)
        for raw in generation.file_descriptor_response.file_descriptor_proto
    ]
    assert files[0].name == "seqboltz/v1/generation.proto"
    assert [m.name for m in files[0].service[0].method] == [
        "ListModels",
        "GetModel",
        "Generate",
        "Steer",
        "Speak",
    ]
    own = descriptor_pb2.FileDescriptorProto.FromString(
        itself.file_descriptor_response.file_descriptor_proto[0]
    )
    assert own.package == "grpc.reflection.v1"
    assert missing.error_response.error_code == grpc.StatusCode.NOT_FOUND.value[0]


@pytest.mark.parametrize(
    ("request_kw", "code"),
    [
        ({"model": "nope", "n_frames": 2}, grpc.StatusCode.NOT_FOUND),
        (
            {"model": "crbm", "n_frames": 2, "seed_frames": [0.0] * 5},
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
        (
            {"model": "crbm", "n_frames": 2, "seed_frames": [math.nan] * 24},
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
        ({"model": "crbm", "n_frames": 2, "style": [1.0]}, grpc.StatusCode.INVALID_ARGUMENT),
        ({"model": "fcrbm", "n_frames": 2}, grpc.StatusCode.INVALID_ARGUMENT),
        ({"model": "fcrbm", "n_frames": 2, "style": [math.inf]}, grpc.StatusCode.INVALID_ARGUMENT),
        ({"model": "crbm", "n_frames": 2, "gibbs_steps": 7}, grpc.StatusCode.INVALID_ARGUMENT),
        ({"model": "crbm", "n_frames": 10**9}, grpc.StatusCode.RESOURCE_EXHAUSTED),
        (
            {"model": "crbm", "n_frames": 2, "frames_per_message": 10**6},
            grpc.StatusCode.RESOURCE_EXHAUSTED,
        ),
    ],
)
def test_bad_requests(server, request_kw, code) -> None:
    with pytest.raises(grpc.RpcError) as err:
        list(server.stub().Generate(pb.GenerateRequest(**request_kw)))
    assert err.value.code() == code
    assert "Traceback" not in err.value.details()


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    model=st.sampled_from(["crbm", "fcrbm", "", "x" * 300]),
    n_frames=st.integers(0, 2**32 - 1),
    seed=st.integers(0, 2**64 - 1),
    seed_frames=st.lists(st.floats(allow_nan=True, allow_infinity=True), max_size=40),
    style=st.lists(st.floats(allow_nan=True, allow_infinity=True), max_size=3),
    start_frame=st.integers(0, 2**40),
    frames_per_message=st.integers(0, 5000),
    gibbs_steps=st.integers(0, 10),
)
def test_fuzzed_requests_get_status_codes(server, **kw) -> None:
    """Whatever the fields, a clear status (or frames) comes back, and the server serves on.

    A legal request costs at most ``max_replay_frames`` (100) replayed frames and one chunk of
    ``max_frames_per_message`` (1000) frames before its first message, a fraction of a second
    for the test models even on a loaded machine, so the deadline is a real check: a timeout
    means a request got the server to do unbounded work (start_frame=14429 once did)."""
    stub = server.stub()
    request = pb.GenerateRequest(**kw)
    try:
        for _ in stub.Generate(request, timeout=10):
            break  # the first chunk (the work before it is bounded by the limits)
    except grpc.RpcError as err:
        assert err.code() in {
            grpc.StatusCode.INVALID_ARGUMENT,
            grpc.StatusCode.NOT_FOUND,
            grpc.StatusCode.RESOURCE_EXHAUSTED,
        }, (err.code(), err.details())
    ok = stub.Generate(pb.GenerateRequest(model="crbm", n_frames=1))
    assert len(frames_of(ok)[0]) == 1


def test_resume_by_start_frame_is_bounded(server) -> None:
    """A resume by start_frame alone recomputes the frames before it: up to the replay limit
    (100 by default) it is served, beyond it a clear RESOURCE_EXHAUSTED comes at once."""
    stub = server.stub()
    start = time.perf_counter()
    with pytest.raises(grpc.RpcError) as err:
        list(stub.Generate(pb.GenerateRequest(model="crbm", n_frames=1, start_frame=10**6)))
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "replay limit 100" in err.value.details()
    assert time.perf_counter() - start < 5  # refused, not computed
    at_limit = pb.GenerateRequest(model="crbm", n_frames=1, start_frame=100)
    idx, got = frames_of(stub.Generate(at_limit))
    art = load_artifact(server.folder / "crbm.onnx")
    assert idx == [100]
    np.testing.assert_array_equal(got[0], art.generate(101, seed=0, count=1)[0, 100])


def test_cancel_and_deadline_free_streams(server) -> None:
    stub = server.stub()
    unbounded = stub.Generate(pb.GenerateRequest(model="crbm", n_frames=0, seed=1))
    for i, _ in enumerate(unbounded):
        if i == 5:
            break
    unbounded.cancel()
    with pytest.raises(grpc.RpcError) as err:
        list(
            stub.Generate(pb.GenerateRequest(model="crbm", n_frames=0, realtime=True), timeout=0.5)
        )
    assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    deadline = time.time() + 10
    while time.time() < deadline and active_streams(server) != 0:
        time.sleep(0.05)
    assert active_streams(server) == 0


def test_paced_messages_leave_when_their_first_frame_is_due(server) -> None:
    """Realtime with 15 frames a message (30 fps): the messages leave at 0 s and 0.5 s, the
    second half a look-ahead played at its times, so 30 frames take ~0.5 s, not 1 s."""
    stub = server.stub()
    request = pb.GenerateRequest(model="crbm", n_frames=30, realtime=True, frames_per_message=15)
    start = time.perf_counter()
    arrivals = [time.perf_counter() - start for _ in stub.Generate(request, timeout=30)]
    assert len(arrivals) == 2
    assert arrivals[0] < 0.3  # the first frame is due at once
    assert 0.45 <= arrivals[1] < 0.85  # frame 15 is due at 0.5 s, and not sent before


def test_200_concurrent_streams(server) -> None:
    before = batches_over_one(server)

    async def run() -> list[int]:
        async with grpc.aio.insecure_channel(server.address) as ch:
            stub = pb_grpc.GenerationStub(ch)

            async def one(seed: int) -> int:
                request = pb.GenerateRequest(
                    model="crbm", n_frames=300, seed=seed, frames_per_message=30
                )
                return sum([len(c.frames) async for c in stub.Generate(request)])

            return await asyncio.gather(*(one(s) for s in range(200)))

    counts = asyncio.run(run())
    assert counts == [300] * 200
    # batching happened (runtime calls with more than one stream's step), and a batched
    # stream equals its offline frames
    assert batches_over_one(server) - before > 0
    art = load_artifact(server.folder / "crbm.onnx")
    _, got = frames_of(
        server.stub().Generate(pb.GenerateRequest(model="crbm", n_frames=30, seed=77))
    )
    assert np.abs(got - art.generate(30, seed=77, count=1)[0]).max() <= 1e-4


def test_oversize_message_is_refused_and_server_serves_on(server) -> None:
    stub = server.stub()
    huge = pb.GenerateRequest(model="crbm", n_frames=1, seed_frames=[0.0] * 600_000)  # 4.8 MB
    with pytest.raises(grpc.RpcError) as err:
        list(stub.Generate(huge))
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert len(frames_of(stub.Generate(pb.GenerateRequest(model="crbm", n_frames=2)))[0]) == 2


def test_a_paced_steer_change_revises_the_look_ahead(server) -> None:
    """Realtime, 30 frames a message (1 s of look-ahead): a style change 0.3 s in takes effect
    at the first frame not yet due, inside the look-ahead already sent; the frames from there
    come again, 3 at once in a message marked ``revises``, then paced, and the frames the
    client plays (dropping what it holds from a revision's first index) are the offline
    stream with the style changed at the reported frame, which the last resume token
    continues."""
    stub = server.stub()
    start = pb.GenerateRequest(
        model="fcrbm", n_frames=60, seed=21, style=[-1.5], realtime=True, frames_per_message=30
    )
    got: dict[int, list[float]] = {}
    sent_at: list[float] = []
    chunks: list[tuple[float, pb.FrameChunk]] = []

    def requests():
        yield pb.SteerRequest(start=start)
        while not chunks:
            time.sleep(0.005)
        time.sleep(max(0.0, 0.3 - (time.perf_counter() - chunks[0][0])))
        sent_at.append(time.perf_counter())
        yield pb.SteerRequest(change=pb.Conditioning(style=[2.0]))

    for chunk in stub.Steer(requests(), timeout=30):
        chunks.append((time.perf_counter(), chunk))
        if chunk.revises:  # drop what is held from its first index on
            got = {i: v for i, v in got.items() if i < chunk.frames[0].index}
        assert not set(got) & {f.index for f in chunk.frames}
        for f in chunk.frames:
            got[f.index] = list(f.values)
    applied = [(t, a) for t, c in chunks for a in c.applied]
    assert [a.action for _, a in applied] == ["change"]
    r = applied[0][1].frame
    assert 9 <= r < 30  # due after the change (0.3 s + 30 ms), inside the first message
    revised = [(t, c) for t, c in chunks if c.revises]
    # the first 3 frames at once (the client drops what it held from r), the rest paced
    assert [c.frames[0].index for _, c in revised] == [r]
    assert len(revised[0][1].frames) == 3 and revised[0][1].applied[0].frame == r
    following = [c for _, c in chunks if c.frames and c.frames[0].index == r + 3]
    assert len(following) == 1 and not following[0].revises
    assert revised[0][0] - sent_at[0] < 0.5  # sent at once, not when the next message is due
    assert sorted(got) == list(range(60))
    art = load_artifact(server.folder / "fcrbm.onnx")
    style = np.where(np.arange(60) < r, -1.5, 2.0)[None, :, None]
    offline = art.generate(60, seed=21, count=1, style=style)[0]
    np.testing.assert_allclose(np.asarray([got[i] for i in range(60)]), offline, atol=1e-9)
    unsteered = art.generate(60, seed=21, count=1, style=np.array([-1.5]))[0]
    assert np.abs(offline[r:] - unsteered[r:]).max() > 1e-3  # the revision is visible
    last = chunks[-1][1].resume
    assert last.frame == 60 and list(last.style) == [2.0]
    more = pb.GenerateRequest(model="fcrbm", n_frames=5, resume=last, frames_per_message=5)
    _, tail = frames_of(stub.Generate(more))
    style = np.where(np.arange(65) < r, -1.5, 2.0)[None, :, None]
    np.testing.assert_allclose(
        tail, art.generate(65, seed=21, count=1, style=style)[0][60:], atol=1e-9
    )
