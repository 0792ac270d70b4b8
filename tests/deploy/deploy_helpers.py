"""Readers of the deployment files (Kubernetes YAML, kustomize, Dockerfile) for the tests."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
KUBERNETES = DEPLOY / "kubernetes"


def load_yaml(path: Path) -> list[dict[str, Any]]:
    """Every document of a YAML file."""
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def kustomization() -> dict[str, Any]:
    (doc,) = load_yaml(KUBERNETES / "kustomization.yaml")
    return doc


def serving_objects() -> list[dict[str, Any]]:
    """What ``kubectl apply -k deploy/kubernetes`` creates: the listed resources and the
    generated ConfigMaps (without kustomize's name hash, which it rewrites consistently)."""
    kust = kustomization()
    objects = [doc for name in kust["resources"] for doc in load_yaml(KUBERNETES / name)]
    for gen in kust.get("configMapGenerator", []):
        data = {Path(f).name: (KUBERNETES / f).read_text() for f in gen["files"]}
        meta = {"name": gen["name"]}
        objects.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": data})
    return objects


def job_objects() -> list[dict[str, Any]]:
    return [doc for path in sorted((DEPLOY / "jobs").glob("*.yaml")) for doc in load_yaml(path)]


def one(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    (found,) = [o for o in objects if o["kind"] == kind]
    return found


def dockerfile() -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` of the Dockerfile, continuation lines joined."""
    text = re.sub(r"\\\n", " ", (REPO / "Dockerfile").read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def dockerfile_env() -> dict[str, str]:
    """The final stage's ``ENV`` (``KEY=VALUE`` form)."""
    stages: list[dict[str, str]] = []
    for word, rest in dockerfile():
        if word == "FROM":
            stages.append({})
        elif word == "ENV":
            for item in shlex.split(rest):
                key, _, value = item.partition("=")
                stages[-1][key] = value
    return stages[-1]


def dockerfile_exec(word: str) -> list[str]:
    """The exec form (JSON array) of the last ENTRYPOINT/CMD/VOLUME."""
    values = [rest for w, rest in dockerfile() if w == word]
    return list(json.loads(values[-1])) if values else []
