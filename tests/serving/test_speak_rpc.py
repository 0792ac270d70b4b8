"""``Speak``: a text's audio streamed chunk by chunk from a real server, the same samples as
the runtime's stream (16-bit), as long as the predicted durations say; phones in the first
chunk; a text or a model that cannot be spoken is INVALID_ARGUMENT in one line."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
from serving_helpers import Server, start_server

from seqboltz.runtime import load_voice
from seqboltz.v1 import generation_pb2 as pb

TEXT = "Press one, then Zorblax."


@pytest.fixture(scope="module")
def speech_server(
    tiny_tts_artifact: Path, model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("speech_models")
    shutil.copy(tiny_tts_artifact, folder / "voice.onnx")
    shutil.copy(model_dir / "crbm.onnx", folder / "crbm.onnx")
    server = start_server(folder)
    yield server
    server.stop()


def test_speak_streams_the_runtime_audio(speech_server: Server, tiny_tts_artifact: Path) -> None:
    chunks = list(speech_server.stub().Speak(pb.SpeakRequest(model="voice", text=TEXT, seed=4)))
    assert len(chunks) > 1
    tts = load_voice(tiny_tts_artifact)
    plan = tts.plan(TEXT)
    expected = np.concatenate(list(tts.stream(TEXT, seed=4)))
    first = chunks[0]
    assert first.sample_rate == 8000 and first.total_samples == plan.n_frames * 40
    assert [p.phone for p in first.phones] == plan.utterance.symbols
    assert {p.word for p in first.phones} >= {"zorblax", ""}
    assert all(not c.phones for c in chunks[1:])
    starts = np.cumsum([0] + [len(c.pcm) // 2 for c in chunks])
    assert [c.first_sample for c in chunks] == starts[:-1].tolist()
    audio = np.concatenate([np.frombuffer(c.pcm, dtype="<i2") for c in chunks]) / 32767
    assert audio.shape == expected.shape  # the whole utterance, no more
    np.testing.assert_allclose(audio, expected, atol=1 / 32767)


def test_speak_refuses_what_it_cannot_say(speech_server: Server) -> None:
    stub = speech_server.stub()
    for request, message in (
        (pb.SpeakRequest(model="voice", text="  "), "text is empty"),
        (pb.SpeakRequest(model="crbm", text="hello"), "is not a text-to-speech model"),
    ):
        with pytest.raises(grpc.RpcError) as err:
            list(stub.Speak(request))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert message in err.value.details() and "\n" not in err.value.details()
    with pytest.raises(grpc.RpcError) as err:
        list(stub.Speak(pb.SpeakRequest(model="nobody", text="hello")))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
