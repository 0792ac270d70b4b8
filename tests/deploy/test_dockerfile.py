"""The Dockerfile (not built here: no Docker engine, no base-image registry) installs the
torch-free serving extras, runs ``seqboltz serve`` as a non-root user with settings the real
parser takes, copies only what .dockerignore admits, and agrees with the manifests."""

from __future__ import annotations

import argparse
import re
import shlex
import sys

import pytest
from deploy_helpers import (
    REPO,
    dockerfile,
    dockerfile_env,
    dockerfile_exec,
    job_objects,
    one,
    serving_objects,
)

from serving.config import env_name, parse_settings, settable_options
from serving.server import _parser

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    tomllib = pytest.importorskip("tomli")

#: variables of the image that are not seqboltz settings
PLATFORM_ENV = {"PATH", "PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE"}
TRAINING_STACK = {"torch", "torchaudio", "lightning", "onnxscript"}


def _extras_closure(extras: set[str]) -> set[str]:
    """Distribution names an install of ``seqboltz[extras]`` asks for, self-references expanded."""
    table = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    names = {re.split(r"[<>=!~\[; ]", r)[0].lower() for r in table["dependencies"]}
    todo, seen = list(extras), set()
    while todo:
        extra = todo.pop()
        if extra in seen:
            continue
        seen.add(extra)
        for requirement in table["optional-dependencies"][extra]:
            name = re.split(r"[<>=!~\[; ]", requirement)[0].lower()
            if name == "seqboltz":
                todo += re.search(r"\[(.*)\]", requirement)[1].split(",")  # type: ignore[index]
            else:
                names.add(name)
    return names


def _image_settings() -> argparse.Namespace:
    """``seqboltz serve`` with no arguments in the image's environment; the config file is the
    one the Dockerfile copies to where ``$SEQBOLTZ_CONFIG`` points."""
    copies = {
        shlex.split(rest)[-1]: shlex.split(rest)[0]
        for word, rest in dockerfile()
        if word == "COPY" and "--from" not in rest
    }
    environ = dockerfile_env()
    environ[env_name("config")] = str(REPO / copies[environ[env_name("config")]])
    return parse_settings(_parser(), dockerfile_exec("CMD"), environ)


def test_installs_the_serving_extras_without_the_training_stack() -> None:
    installs = [rest for word, rest in dockerfile() if word == "RUN" and "pip install" in rest]
    (line,) = installs
    extras = set(re.search(r"\.\[([a-z,]+)\]", line)[1].split(","))  # type: ignore[index]
    assert extras == {"serve", "speech"}
    closure = _extras_closure(extras)
    assert {"grpcio", "grpcio-health-checking", "onnxruntime", "pyworld", "soundfile"} <= closure
    assert not closure & TRAINING_STACK, closure & TRAINING_STACK
    assert _extras_closure({"all"}) & TRAINING_STACK  # the check sees torch when it is there


def test_runs_seqboltz_serve_as_a_non_root_user() -> None:
    assert dockerfile_exec("ENTRYPOINT") == ["seqboltz", "serve"]
    (user,) = [rest for word, rest in dockerfile() if word == "USER"]
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and int(uid) != 0 and gid.isdigit() and int(gid) != 0
    for obj in [one(serving_objects(), "Deployment"), *job_objects()]:
        security = obj["spec"]["template"]["spec"]["securityContext"]
        assert (security["runAsUser"], security["runAsGroup"]) == (int(uid), int(gid))
        assert security["runAsNonRoot"] is True
    settings = _image_settings()
    assert dockerfile_exec("VOLUME") == [settings.models]  # the model repository is a volume
    assert settings.host == "0.0.0.0" and settings.metrics_host == "0.0.0.0"
    (exposed,) = [rest for word, rest in dockerfile() if word == "EXPOSE"]
    assert sorted(map(int, exposed.split())) == sorted([settings.port, settings.metrics_port])


def test_every_variable_is_a_serve_setting_or_the_platform() -> None:
    accepted = {env_name(dest) for dest in settable_options(_parser())} | {env_name("config")}
    names = set(dockerfile_env())
    assert names - PLATFORM_ENV <= accepted, names - PLATFORM_ENV - accepted


def test_copies_only_what_dockerignore_admits() -> None:
    patterns = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert patterns[0] == "**"  # everything is excluded unless admitted below
    admitted = {p[1:].rstrip("/") for p in patterns if p.startswith("!")}
    for word, rest in dockerfile():
        if word == "COPY" and "--from" not in rest:
            for source in shlex.split(rest)[:-1]:
                assert source.rstrip("/") in admitted, source
                assert (REPO / source).exists(), source
