"""deploy/: valid Kubernetes objects (kubernetes-validate's bundled schemas, strict
mode) for every Kubernetes minor from 1.30 on, and wired to each other and to the image;
rendered by kustomize (kubectl's own) with an overlay pinning the image and with the TLS
component; and deploy/tokens.sh, which makes both Secrets of one token.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx
import kubernetes_validate
import pytest
import trustme
import yaml
from fastapi.testclient import TestClient
from kubernetes_validate.utils import all_versions

from app import __version__
from app.api.tokens import TokenFile
from tests.deploy.image import REPO, read_image
from tests.support.server import serve

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


KUBECTL = shutil.which("kubectl")
needs_kubectl = pytest.mark.skipif(
    KUBECTL is None, reason="needs kubectl (its built-in kustomize renders deploy/ offline)"
)
DIGEST = "sha256:" + "0123456789abcdef" * 4


def render(overlay: Path, **kustomization: Any) -> list[dict[str, Any]]:
    """``kubectl kustomize`` of an overlay in ``overlay`` with ``kustomization``'s fields;
    a path given as ``DEPLOY/...`` is made relative, as kustomize requires."""
    overlay.mkdir(parents=True, exist_ok=True)

    def relative(value: Any) -> Any:
        if isinstance(value, Path):
            return os.path.relpath(value, overlay)
        if isinstance(value, list):
            return [relative(item) for item in value]
        return value

    document = {key: relative(value) for key, value in kustomization.items()}
    (overlay / "kustomization.yaml").write_text(yaml.safe_dump(document))
    assert KUBECTL is not None
    result = subprocess.run(
        [KUBECTL, "kustomize", str(overlay)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    return list(yaml.safe_load_all(result.stdout))


def deployment_of(objects: list[dict[str, Any]]) -> dict[str, Any]:
    (deployment,) = [o for o in objects if o["kind"] == "Deployment"]
    return deployment


@needs_kubectl
def test_the_kustomization_names_the_image_of_this_version(tmp_path: Path) -> None:
    objects = render(tmp_path / "plain", resources=[DEPLOY])
    (container,) = deployment_of(objects)["spec"]["template"]["spec"]["containers"]
    assert container["image"] == f"stepd:{__version__}"
    for document in objects:
        kubernetes_validate.validate(document, VERSIONS[-1], strict=True)


@needs_kubectl
def test_an_overlay_pins_the_image_by_digest(tmp_path: Path) -> None:
    image = {"name": "stepd", "newName": "registry.example.com/platform/stepd", "digest": DIGEST}
    objects = render(tmp_path / "pinned", resources=[DEPLOY], images=[image])
    (container,) = deployment_of(objects)["spec"]["template"]["spec"]["containers"]
    assert container["image"] == f"registry.example.com/platform/stepd@{DIGEST}"


@needs_kubectl
def test_the_tls_component_serves_https_and_probes_it(tmp_path: Path, ca: trustme.CA) -> None:
    objects = render(tmp_path / "tls", resources=[DEPLOY], components=[DEPLOY / "tls"])
    for document in objects:
        kubernetes_validate.validate(document, VERSIONS[-1], strict=True)
    pod = deployment_of(objects)["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    probes = [container[p]["httpGet"] for p in ("startupProbe", "livenessProbe", "readinessProbe")]
    assert {probe["scheme"] for probe in probes} == {"HTTPS"}
    assert [probe["path"] for probe in probes] == ["/healthz", "/healthz", "/readyz"]

    env = {e["name"]: e["value"] for e in container["env"]}
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["tls"]["secret"]["secretName"] == "stepd-tls"
    assert env["STEPD_TLS_CERT_FILE"] == f"{mounts['tls']}/tls.crt"
    assert env["STEPD_TLS_KEY_FILE"] == f"{mounts['tls']}/tls.key"
    assert {"workspace", "tokens", "tmp"} <= mounts.keys()

    # The keys of a kubernetes.io/tls Secret, at those paths: stepd serves HTTPS and the
    # probes' paths answer there, as the kubelet would ask (without verifying).
    secret = tmp_path / "secret"
    secret.mkdir()
    cert = ca.issue_cert("stepd.stepd.svc.cluster.local")
    cert.cert_chain_pems[0].write_to_path(str(secret / "tls.crt"))
    cert.private_key_pem.write_to_path(str(secret / "tls.key"))
    args = ["--tls-cert-file", str(secret / "tls.crt"), "--tls-key-file", str(secret / "tls.key")]
    root = tmp_path / "root"
    root.mkdir()
    with serve(root, *args) as server:
        for probe in probes:
            url = server.url(probe["path"], probe["scheme"].lower())
            assert httpx.get(url, verify=False).status_code == 200


TOKENS_SH = DEPLOY / "tokens.sh"


def run_tokens_sh(*args: str) -> list[dict[str, Any]]:
    result = subprocess.run(
        [str(TOKENS_SH), *args], capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 0, result.stderr
    return list(yaml.safe_load_all(result.stdout))


def secret_value(secret: dict[str, Any], key: str) -> str:
    return base64.b64decode(secret["data"][key]).decode()


@needs_kubectl
def test_one_generated_token_makes_both_secrets(tmp_path: Path) -> None:
    stepd_tokens, kargo_token = run_tokens_sh("kargo-demo")
    for secret in (stepd_tokens, kargo_token):
        secret["metadata"].pop("creationTimestamp")
        kubernetes_validate.validate(secret, VERSIONS[-1], strict=True)

    pod = OBJECTS["Deployment/stepd"]["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert stepd_tokens["metadata"]["name"] == volumes["tokens"]["secret"]["secretName"]
    assert stepd_tokens["metadata"]["namespace"] == "stepd"
    assert (kargo_token["metadata"]["name"], kargo_token["metadata"]["namespace"]) == (
        "stepd-token",
        "kargo-demo",
    )
    assert set(stepd_tokens["data"]) == set(OBJECTS["Secret/stepd-tokens"]["stringData"])

    token = secret_value(kargo_token, "token")
    assert re.fullmatch(r"[0-9a-f]{64}", token)
    (tmp_path / "tokens").write_text(secret_value(stepd_tokens, "tokens"))
    assert TokenFile(tmp_path / "tokens").match(token) == "kargo-demo"


@needs_kubectl
def test_a_second_project_keeps_the_tokens_there_were(tmp_path: Path) -> None:
    first, first_token = run_tokens_sh("team-a")
    (tmp_path / "current").write_text(secret_value(first, "tokens"))
    second, second_token = run_tokens_sh("team-b", str(tmp_path / "current"))
    (tmp_path / "tokens").write_text(secret_value(second, "tokens"))
    tokens = TokenFile(tmp_path / "tokens")
    assert tokens.match(secret_value(first_token, "token")) == "team-a"
    assert tokens.match(secret_value(second_token, "token")) == "team-b"
    assert secret_value(first_token, "token") != secret_value(second_token, "token")


def test_tokens_sh_refuses_a_name_stepd_cannot_log() -> None:
    result = subprocess.run(
        [str(TOKENS_SH), "team b"], capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 2
    assert result.stdout == ""


HA = DEPLOY / "ha"


@needs_kubectl
def test_the_ha_component_runs_three_replicas_on_one_shared_root(tmp_path: Path) -> None:
    objects = render(tmp_path / "ha", resources=[DEPLOY], components=[HA])
    for version in (VERSIONS[0], VERSIONS[-1]):
        for document in objects:
            kubernetes_validate.validate(document, version, strict=True)
    by_kind = {o["kind"]: o for o in objects}
    deployment = by_kind["Deployment"]["spec"]
    assert deployment["replicas"] == 3
    assert deployment["strategy"]["type"] == "RollingUpdate"
    assert deployment["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    labels = deployment["template"]["metadata"]["labels"]

    budget = by_kind["PodDisruptionBudget"]
    assert budget["metadata"]["namespace"] == "stepd"
    assert budget["spec"]["maxUnavailable"] == 1
    assert budget["spec"]["selector"]["matchLabels"].items() <= labels.items()

    pod = deployment["template"]["spec"]
    spread = pod["topologySpreadConstraints"]
    assert {c["topologyKey"] for c in spread} == {
        "kubernetes.io/hostname",
        "topology.kubernetes.io/zone",
    }
    assert all(c["labelSelector"]["matchLabels"].items() <= labels.items() for c in spread)

    claim = by_kind["PersistentVolumeClaim"]
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["workspace"]["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]

    (container,) = pod["containers"]
    env = {e["name"]: e for e in container["env"]}
    assert env["STEPD_INSTANCE_ID"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    store = env["STEPD_IDEMPOTENCY_STORE"]["valueFrom"]["secretKeyRef"]
    (shape,) = yaml.safe_load_all((HA / "store-secret.yaml").read_text())
    kubernetes_validate.validate(shape, VERSIONS[-1], strict=True)
    assert (shape["metadata"]["name"], store["key"]) == (store["name"], "url")
    assert shape["stringData"]["url"].startswith("postgresql://")
    assert "Secret" not in by_kind  # its shape only: never applied with a placeholder
    assert env["STEPD_WORKSPACE_ROOT"]["value"] == "/workspace"
