"""deploy/: valid Kubernetes objects (kubernetes-validate's bundled schemas, strict
mode) for every Kubernetes minor from 1.30 on, and wired to each other and to the image.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from fastapi.testclient import TestClient
from kubernetes_validate.utils import all_versions

from tests.deploy.image import REPO, read_image

DEPLOY = REPO / "deploy"
OLDEST_SUPPORTED = (1, 30)
VERSIONS = sorted(
    {v for v in all_versions() if tuple(map(int, v.split(".")[:2])) >= OLDEST_SUPPORTED},
    key=lambda v: tuple(map(int, v.split("."))),
)
PLACEHOLDER_TOKEN = "REPLACE-ME-with-a-random-token"


def _manifest_files() -> list[Path]:
    return sorted(p for p in DEPLOY.glob("*.yaml") if p.name != "kustomization.yaml")


def _objects() -> dict[str, dict[str, Any]]:
    """Every object in deploy/, keyed ``Kind/name``."""
    objects: dict[str, dict[str, Any]] = {}
    for path in _manifest_files():
        for document in yaml.safe_load_all(path.read_text()):
            objects[f"{document['kind']}/{document['metadata']['name']}"] = document
    return objects


OBJECTS = _objects()


@pytest.fixture(scope="module")
def pod() -> dict[str, Any]:
    spec: dict[str, Any] = OBJECTS["Deployment/stepd"]["spec"]["template"]["spec"]
    return spec


@pytest.fixture(scope="module")
def container(pod: dict[str, Any]) -> dict[str, Any]:
    (stepd,) = pod["containers"]
    assert isinstance(stepd, dict)
    return stepd


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("key", sorted(OBJECTS))
def test_object_is_valid_for_kubernetes(key: str, version: str) -> None:
    kubernetes_validate.validate(OBJECTS[key], version, strict=True)


def test_validation_is_live_and_rejects_an_unknown_field() -> None:
    broken = yaml.safe_load(yaml.safe_dump(OBJECTS["Deployment/stepd"]))
    broken["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, VERSIONS[-1], strict=True)


def test_kustomization_lists_every_manifest_but_the_placeholder_secret() -> None:
    kustomization = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())
    expected = [p.name for p in _manifest_files() if p.name != "secret.yaml"]
    assert sorted(kustomization["resources"]) == expected
    assert {o["metadata"]["name"] for o in OBJECTS.values() if o["kind"] == "Namespace"} == {
        kustomization["namespace"]
    }


def test_probes_use_health_endpoints_that_answer(
    container: dict[str, Any], client: TestClient
) -> None:
    liveness = container["livenessProbe"]["httpGet"]
    readiness = container["readinessProbe"]["httpGet"]
    assert (liveness["path"], readiness["path"]) == ("/healthz", "/readyz")
    assert client.get(liveness["path"]).status_code == 200
    assert client.get(readiness["path"]).status_code == 200


def test_runs_as_the_image_user_with_nothing_to_escalate(
    pod: dict[str, Any], container: dict[str, Any]
) -> None:
    uid = read_image().uid
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == uid
    assert pod["securityContext"]["fsGroup"] == uid
    security = container["securityContext"]
    assert security["runAsUser"] == uid
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    assert pod["automountServiceAccountToken"] is False


def test_has_resource_requests_and_limits(container: dict[str, Any]) -> None:
    assert {"cpu", "memory"} <= container["resources"]["requests"].keys()
    assert "memory" in container["resources"]["limits"]


def test_volumes_and_settings_fit_together(pod: dict[str, Any], container: dict[str, Any]) -> None:
    env = {e["name"]: e["value"] for e in container["env"]}
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}

    assert env["STEPD_WORKSPACE_ROOT"] == mounts["workspace"] == read_image().volumes[0]
    claim = volumes["workspace"]["persistentVolumeClaim"]["claimName"]
    assert f"PersistentVolumeClaim/{claim}" in OBJECTS

    secret = volumes["tokens"]["secret"]["secretName"]
    assert f"Secret/{secret}" in OBJECTS
    key = Path(env["STEPD_AUTH_TOKENS_FILE"]).name
    assert env["STEPD_AUTH_TOKENS_FILE"] == f"{mounts['tokens']}/{key}"
    assert key in OBJECTS[f"Secret/{secret}"]["stringData"]
    assert mounts["tmp"] == "/tmp"


def test_service_reaches_the_container_port(container: dict[str, Any]) -> None:
    service = OBJECTS["Service/stepd"]["spec"]
    (port,) = service["ports"]
    (container_port,) = container["ports"]
    assert port["targetPort"] == container_port["name"]
    assert str(container_port["containerPort"]) == read_image().env["STEPD_PORT"]
    labels = OBJECTS["Deployment/stepd"]["spec"]["template"]["metadata"]["labels"]
    assert service["selector"].items() <= labels.items()


def test_committed_secret_holds_only_the_placeholder() -> None:
    tokens = OBJECTS["Secret/stepd-tokens"]["stringData"]["tokens"]
    assert tokens.split() == [PLACEHOLDER_TOKEN]
