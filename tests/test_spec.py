"""The committed API description: current, and frozen for released versions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.api.spec import SPEC_DIR, VERSIONED_MODELS, openapi_document, render, version_schemas
from app.main import create_app
from app.models.delete import SUPPORTED_VERSIONS
from app.settings import Settings

STALE = "openapi/openapi.json is stale: run `make openapi` and commit the result"


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return openapi_document()


def test_the_committed_spec_is_the_generated_one(document: dict[str, Any]) -> None:
    committed = (SPEC_DIR / "openapi.json").read_text()
    assert committed == render(document), STALE


@pytest.mark.parametrize("version", sorted(VERSIONED_MODELS))
def test_released_schemas_never_change(version: str) -> None:
    for name, text in version_schemas(version).items():
        frozen = SPEC_DIR / name
        assert frozen.exists(), f"{name} is missing: freeze {version} with app.api.spec freeze"
        assert frozen.read_text() == text, (
            f"{name} changed: a released version is frozen; add a new version instead"
        )


def test_every_supported_version_is_frozen() -> None:
    assert set(SUPPORTED_VERSIONS) == set(VERSIONED_MODELS)


@pytest.mark.parametrize("schema", ["DeleteRequestV1", "DeleteRequestV1Alpha1"])
def test_each_version_is_a_named_schema_with_examples(
    document: dict[str, Any], schema: str
) -> None:
    schemas = document["components"]["schemas"]
    assert schema in schemas
    examples = schemas[schema]["examples"]
    assert examples
    version = "v1alpha1" if schema.endswith("Alpha1") else "v1"
    assert all(example["apiVersion"] == version for example in examples)


def test_the_request_body_offers_examples_of_both_versions(document: dict[str, Any]) -> None:
    body = document["paths"]["/steps/delete"]["post"]["requestBody"]["content"]["application/json"]
    versions = {example["value"].get("apiVersion") for example in body["examples"].values()}
    assert versions == {"v1", "v1alpha1"}
    refs = json.dumps(body["schema"])
    assert "DeleteRequestV1" in refs
    assert "DeleteRequestV1Alpha1" in refs


def test_operation_ids_are_stable(document: dict[str, Any]) -> None:
    ids = {
        path: {method: op["operationId"] for method, op in item.items()}
        for path, item in document["paths"].items()
    }
    assert ids == {
        "/steps/delete": {"post": "runDeleteStep"},
        "/steps/batch": {"post": "runBatch"},
        "/healthz": {"get": "getHealth"},
        "/readyz": {"get": "getReadiness"},
        "/api/v1/step.execute": {"post": "executeKargoStep"},
    }


def test_error_responses_are_problems(document: dict[str, Any]) -> None:
    responses = document["paths"]["/steps/delete"]["post"]["responses"]
    for status in ("404", "422", "500"):
        content = responses[status]["content"]
        assert list(content) == ["application/problem+json"]
        assert content["application/problem+json"]["schema"] == {
            "$ref": "#/components/schemas/Problem"
        }


def test_every_response_documents_the_request_id_header(document: dict[str, Any]) -> None:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            for status, response in operation["responses"].items():
                assert response["headers"]["X-Request-ID"] == {
                    "$ref": "#/components/headers/X-Request-ID"
                }, (path, method, status)
    assert "schema" in document["components"]["headers"]["X-Request-ID"]


def _request_examples(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, name, example)
        for path, item in document["paths"].items()
        for operation in item.values()
        for content in operation.get("requestBody", {}).get("content", {}).values()
        for name, example in content.get("examples", {}).items()
    ]


EXAMPLES = _request_examples(openapi_document())


@pytest.mark.parametrize(
    ("path", "name", "example"), EXAMPLES, ids=[f"{p}:{n}" for p, n, _ in EXAMPLES]
)
def test_each_example_succeeds_on_a_fresh_workspace_or_says_it_will_not(
    root_dir: Path, path: str, name: str, example: dict[str, Any]
) -> None:
    """What Swagger UI's "Try it out" sends first: 200, unless the summary says 404."""
    with TestClient(create_app(Settings(workspace_root=root_dir))) as client:
        response = client.post(path, json=example["value"])
    expected = 404 if "404" in example["summary"] else 200
    assert response.status_code == expected, (example["summary"], response.json())


def test_the_spec_names_the_root_path_as_its_server(root_dir: Path) -> None:
    settings = Settings(workspace_root=root_dir, root_path="/tools/stepd")
    assert create_app(settings).openapi()["servers"] == [{"url": "/tools/stepd"}]
    assert "servers" not in openapi_document()
