"""The one error map: typed errors get their status and message; anything else is INTERNAL,
with its traceback in the server log and not at the client."""

from __future__ import annotations

import logging
from pathlib import Path

import grpc
import pytest

from seqboltz.errors import (
    BadRequest,
    LimitExceeded,
    ModelDiverged,
    ModelLoading,
    ModelNotFound,
    ResumeMismatch,
    Unavailable,
)
from seqboltz.runtime import ArtifactError
from seqboltz.v1 import generation_pb2 as pb
from serving.errors import status_for
from serving.metrics import Metrics
from serving.repository import ModelRepository
from serving.servicer import GenerationServicer, Limits


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (BadRequest("style must have 1 value(s)"), grpc.StatusCode.INVALID_ARGUMENT),
        (ArtifactError("x.onnx: not a readable ONNX file"), grpc.StatusCode.INVALID_ARGUMENT),
        (ModelNotFound("unknown model 'x'"), grpc.StatusCode.NOT_FOUND),
        (LimitExceeded("too many concurrent streams"), grpc.StatusCode.RESOURCE_EXHAUSTED),
        (Unavailable("the server is shutting down"), grpc.StatusCode.UNAVAILABLE),
        (ModelLoading("model 'x' is loading"), grpc.StatusCode.UNAVAILABLE),
        (ModelDiverged(2724, "motion"), grpc.StatusCode.INTERNAL),
        (ResumeMismatch("the token is for another version"), grpc.StatusCode.FAILED_PRECONDITION),
    ],
)
def test_typed_errors_keep_their_message(error: Exception, code: grpc.StatusCode) -> None:
    assert status_for(error) == (code, str(error))


@pytest.mark.parametrize("error", [KeyError("stray"), ValueError("stray"), RuntimeError("x")])
def test_builtin_errors_are_internal_and_logged(
    error: Exception, caplog: pytest.LogCaptureFixture
) -> None:
    try:
        raise error
    except Exception as exc:
        with caplog.at_level(logging.ERROR, logger="seqboltz.serving"):
            code, message = status_for(exc)
    assert code == grpc.StatusCode.INTERNAL
    assert message == "internal error (see the server log)" and "stray" not in message
    (record,) = caplog.records
    assert record.exc_info is not None and record.exc_info[1] is error


def test_raise_sites_raise_typed_errors(model_dir: Path) -> None:
    servicer = GenerationServicer(ModelRepository(model_dir), Limits(max_streams=1), Metrics())
    cases = [
        (pb.GenerateRequest(model="nope"), ModelNotFound),
        (pb.GenerateRequest(model="crbm", gibbs_steps=7), BadRequest),
        (pb.GenerateRequest(model="crbm", seed_frames=[0.0] * 5), BadRequest),
        (pb.GenerateRequest(model="crbm", style=[1.0]), BadRequest),
        (pb.GenerateRequest(model="fcrbm"), BadRequest),
        (pb.GenerateRequest(model="crbm", n_frames=10**9), LimitExceeded),
        (pb.GenerateRequest(model="crbm", start_frame=10**6), LimitExceeded),
        (pb.GenerateRequest(model="crbm", resume=pb.ResumeToken(noise_rule=1)), ResumeMismatch),
    ]
    for request, kind in cases:
        with pytest.raises(kind):
            servicer._open(request)
    servicer._open(pb.GenerateRequest(model="crbm"))
    with pytest.raises(LimitExceeded, match="limit 1"):
        servicer._open(pb.GenerateRequest(model="crbm"))
    servicer.draining.set()
    with pytest.raises(Unavailable, match="shutting down"):
        servicer._open(pb.GenerateRequest(model="crbm"))
