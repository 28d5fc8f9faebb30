"""The deployment examples in ``deploy/`` parse, hang together, and give every node only
settings that sluicegate takes (they are documentation: nothing here starts them)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sluicegate.config import load_settings

yaml = pytest.importorskip("yaml")

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
#: Values for what the examples take from the platform (secrets, the pod's name and IP).
_PLATFORM = {
    "metadata.name": "sluicegate-7c9f8d6b5-x2x4q",
    "status.podIP": "10.1.2.3",
    "cluster-secret": "a-cluster-secret-for-the-examples-test-0123456789",
    "admin-key": "sg_examples_admin_key_0123456789abcdef",
}


def _load(name: str) -> Any:
    return yaml.safe_load((DEPLOY / name).read_text())


def _settings_from(environ: dict[str, str]) -> None:
    """Load the settings a node would get from ``environ``: unknown names are refused."""
    load_settings(environ={k: v for k, v in environ.items() if k.startswith("SLUICEGATE_")})


def _pod_environ(container: dict[str, Any]) -> dict[str, str]:
    environ: dict[str, str] = {}
    for entry in container["env"]:
        if "value" in entry:
            value = str(entry["value"])
            for name, known in environ.items():  # Kubernetes' $(VAR) expansion
                value = value.replace(f"$({name})", known)
            environ[entry["name"]] = value
        elif "fieldRef" in entry["valueFrom"]:
            environ[entry["name"]] = _PLATFORM[entry["valueFrom"]["fieldRef"]["fieldPath"]]
        else:
            environ[entry["name"]] = _PLATFORM[entry["valueFrom"]["secretKeyRef"]["key"]]
    return environ


def test_the_kubernetes_deployment_and_service() -> None:
    deployment = _load("kubernetes/deployment.yaml")
    service = _load("kubernetes/service.yaml")
    secret = _load("kubernetes/secret.yaml")
    assert deployment["kind"] == "Deployment"
    assert deployment["spec"]["replicas"] >= 2
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert service["spec"]["selector"].items() <= labels.items()
    assert service["spec"]["sessionAffinity"] == "None"
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    environ = _pod_environ(container)
    assert environ["SLUICEGATE_CLUSTER__NODE_ID"] == _PLATFORM["metadata.name"]
    assert environ["SLUICEGATE_CLUSTER__ADVERTISED_URL"] == "http://10.1.2.3:8080"
    refs = {
        e["valueFrom"]["secretKeyRef"]["key"]
        for e in container["env"]
        if "secretKeyRef" in e.get("valueFrom", {})
    }
    assert refs <= set(secret["stringData"])
    _settings_from(environ)


def test_the_compose_file() -> None:
    compose = _load("compose.yaml")
    services = compose["services"]
    nodes = [name for name in services if name.startswith("node-")]
    assert len(nodes) == 3
    kafka = services["kafka"]["environment"]
    assert kafka["KAFKA_PROCESS_ROLES"] == "broker,controller"  # KRaft, no ZooKeeper
    ids = set()
    for name in nodes:
        environ = {k: str(v) for k, v in services[name]["environment"].items()}
        # Both come from the shell's environment (``${...}``) when compose runs.
        environ["SLUICEGATE_CLUSTER__SECRET"] = _PLATFORM["cluster-secret"]
        environ["SLUICEGATE_ADMIN_KEY"] = _PLATFORM["admin-key"]
        assert environ["SLUICEGATE_CLUSTER__ADVERTISED_URL"] == f"http://{name}:8080"
        ids.add(environ["SLUICEGATE_CLUSTER__NODE_ID"])
        _settings_from(environ)
    assert len(ids) == 3
    proxy = (DEPLOY / "nginx.conf").read_text()
    for name in nodes:
        assert f"server {name}:8080;" in proxy
    assert "ip_hash" not in proxy
    assert "sticky" not in proxy
