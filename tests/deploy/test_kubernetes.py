"""The Kubernetes manifests validate offline against the Kubernetes schema, and agree with
``seqboltz serve`` and with each other: every setting they pass (args, SEQBOLTZ_* variables,
the ConfigMap's file) is one the real parser takes, the probes, ports and metrics match what
the server then binds, and the grace period outlasts preStop plus the stream drain."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
from deploy_helpers import (
    KUBERNETES,
    dockerfile_env,
    job_objects,
    kustomization,
    one,
    serving_objects,
)

from serving.config import env_name, parse_settings, settable_options
from serving.server import SERVICE_NAME, _parser

#: the oldest Kubernetes these manifests need (preStop `sleep` and `backoffLimitPerIndex` are on
#: by default from 1.30) and kubernetes-validate's newest schema
VERSIONS = ("1.30.0", kubernetes_validate.latest_version())


@pytest.mark.parametrize("version", VERSIONS)
def test_manifests_validate_against_the_schema(version: str) -> None:
    objects = serving_objects() + job_objects()
    kinds = sorted(o["kind"] for o in objects)
    assert kinds == [
        "ConfigMap",
        "Deployment",
        "HorizontalPodAutoscaler",
        "Job",
        "PersistentVolumeClaim",
        "PodDisruptionBudget",
        "Service",
    ]
    for obj in objects:
        kubernetes_validate.validate(obj, version, strict=True)
    # the check can fail: a misspelt field is refused
    broken = copy.deepcopy(one(objects, "Deployment"))
    broken["spec"]["template"]["spec"]["terminationGracePeriod"] = 45
    with pytest.raises(kubernetes_validate.ValidationError, match="terminationGracePeriod"):
        kubernetes_validate.validate(broken, version, strict=True)


def test_kustomization_lists_every_serving_manifest() -> None:
    listed = set(kustomization()["resources"])
    on_disk = {p.name for p in KUBERNETES.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == on_disk


def _container(deployment: dict[str, Any]) -> dict[str, Any]:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return container


def _serve_settings(objects: list[dict[str, Any]], tmp_path: Path) -> Any:
    """Parse the container's args with the real ``seqboltz serve`` parser, in its environment
    (image ENV + container env), with the ConfigMap-mounted file read from this repository."""
    deployment = one(objects, "Deployment")
    pod, container = deployment["spec"]["template"]["spec"], _container(deployment)
    config_maps = {o["metadata"]["name"]: o for o in objects if o["kind"] == "ConfigMap"}
    files: dict[str, str] = {}  # path in the container -> text
    volumes = {v["name"]: v for v in pod["volumes"]}
    for mount in container["volumeMounts"]:
        source = volumes[mount["name"]].get("configMap")
        if source:
            for key, text in config_maps[source["name"]]["data"].items():
                files[f"{mount['mountPath']}/{key}"] = text

    def local(value: str) -> str:
        if value in files:
            path = tmp_path / value.strip("/").replace("/", "_")
            path.write_text(files[value])
            return str(path)
        return value

    environ = {k: local(v) for k, v in dockerfile_env().items()}
    for entry in container.get("env", []):
        environ[entry["name"]] = entry.get("value", "from-a-secret")
    args = [local(a) for a in container.get("args", [])]
    return parse_settings(_parser(), args, environ)


def test_every_variable_is_a_serve_setting() -> None:
    accepted = {env_name(dest) for dest in settable_options(_parser())} | {env_name("config")}
    container = _container(one(serving_objects(), "Deployment"))
    names = {entry["name"] for entry in container.get("env", [])}
    assert names and names <= accepted, names - accepted
    image = {k for k in dockerfile_env() if k.startswith("SEQBOLTZ_")}
    assert image and image <= accepted, image - accepted


def test_the_server_binds_what_the_manifests_expect(tmp_path: Path) -> None:
    objects = serving_objects()
    settings = _serve_settings(objects, tmp_path)
    deployment = one(objects, "Deployment")
    pod, container = deployment["spec"]["template"]["spec"], _container(deployment)
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert settings.host == "0.0.0.0" and settings.metrics_host == "0.0.0.0"
    assert settings.port == ports["grpc"]
    assert settings.metrics_port == ports["metrics"]
    assert settings.token == "from-a-secret"
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(settings.metrics_port)
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert settings.models == mounts["models"]
    # gRPC probes: the standard health service, on the server's port, for names it registers
    probes = {k: container[k] for k in ("startupProbe", "readinessProbe", "livenessProbe")}
    for name, probe in probes.items():
        assert probe["grpc"]["port"] == settings.port, name
        assert probe["grpc"].get("service", "") in ("", SERVICE_NAME), name
    assert probes["readinessProbe"]["grpc"]["service"] == SERVICE_NAME
    # termination: preStop sleep, then SIGTERM and up to `grace` seconds of draining streams
    pre_stop = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    shutdown = pre_stop + settings.grace
    assert pod["terminationGracePeriodSeconds"] > shutdown + 5
    live = probes["livenessProbe"]
    assert live["periodSeconds"] * live["failureThreshold"] > shutdown  # drain is not a restart
    assert pod["securityContext"]["runAsNonRoot"] is True


def test_service_pdb_and_autoscaler_select_the_deployment() -> None:
    objects = serving_objects()
    deployment = one(objects, "Deployment")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    service = one(objects, "Service")
    assert service["spec"]["clusterIP"] == "None"  # headless: client-side balancing
    assert service["spec"]["selector"].items() <= labels.items()
    port_names = {p["name"] for p in _container(deployment)["ports"]}
    assert {p["targetPort"] for p in service["spec"]["ports"]} <= port_names
    pdb = one(objects, "PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    hpa = one(objects, "HorizontalPodAutoscaler")
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])
    assert pdb["spec"]["maxUnavailable"] < hpa["spec"]["minReplicas"]
    (metric,) = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu"
    assert "cpu" in _container(deployment)["resources"]["requests"]  # utilisation needs it
    claims = {o["metadata"]["name"] for o in objects if o["kind"] == "PersistentVolumeClaim"}
    for volume in deployment["spec"]["template"]["spec"]["volumes"]:
        if "persistentVolumeClaim" in volume:
            assert volume["persistentVolumeClaim"]["claimName"] in claims
