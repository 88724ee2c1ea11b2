"""The client and the server agree on the wire: what the client sends is what the
server's models accept, what the server documents as answers is what the client reads,
and the client installs and imports without anything of the server."""

from __future__ import annotations

import importlib.metadata
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import stepd_client
from pydantic import BaseModel
from stepd_client import BatchResult, DeleteResult, DeleteStep
from stepd_client.client import batch_body, delete_body

from app import __version__
from app.api.spec import openapi_document
from app.models.batch import BatchRequestV1
from app.models.v1 import DeleteRequestV1

SERVER_ONLY = {
    "app",
    "fastapi",
    "fastapi_offline",
    "prometheus_client",
    "pydantic_settings",
    "starlette",
    "structlog",
    "uvicorn",
    "uvloop",
}


@pytest.mark.parametrize(
    ("paths", "workspace", "globs", "strict"),
    [(["out"], None, False, False), (["charts/*/values-dev.yaml", "tmp/**"], "p-42", True, True)],
)
def test_delete_bodies_are_valid_server_requests(
    paths: list[str], workspace: str | None, globs: bool, strict: bool
) -> None:
    request = DeleteRequestV1.model_validate(delete_body(paths, workspace, globs, strict))
    internal = request.to_internal()
    assert (internal.workspace, internal.config.paths) == (workspace, tuple(paths))
    assert (internal.config.globs, internal.config.strict) == (globs, strict)


@pytest.mark.parametrize(
    "steps",
    [
        [DeleteStep("out")],
        [
            DeleteStep("out", name="clean-out", strict=True),
            DeleteStep(["tmp/**", "*.bak"], globs=True, continue_on_error=True),
        ],
    ],
)
def test_batch_bodies_are_valid_server_requests(steps: list[DeleteStep]) -> None:
    body = batch_body(steps, "promo-42", atomic=True)
    request = BatchRequestV1.model_validate(body)
    internal = request.to_internal()
    names = [step.name or f"step-{index}" for index, step in enumerate(steps)]
    assert [step.alias for step in internal.steps] == names
    assert [step.config.globs for step in internal.steps] == [step.globs for step in steps]
    assert [step.config.strict for step in internal.steps] == [step.strict for step in steps]
    assert [step.continue_on_error for step in internal.steps] == [
        step.continue_on_error for step in steps
    ]


def _ok_examples(path: str) -> list[dict[str, Any]]:
    operation = openapi_document()["paths"][path]["post"]
    examples = operation["responses"]["200"]["content"]["application/json"]["examples"]
    return [example["value"] for example in examples.values()]


@pytest.mark.parametrize(
    ("path", "model"), [("/steps/delete", DeleteResult), ("/steps/batch", BatchResult)]
)
def test_documented_answers_are_read_by_the_client(path: str, model: type[BaseModel]) -> None:
    for example in _ok_examples(path):
        model.model_validate(example)


def test_the_client_imports_nothing_of_the_server(tmp_path: Path) -> None:
    code = "import sys, stepd_client; print(' '.join(sys.modules))"
    loaded = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True
    ).stdout.split()
    assert {name.split(".")[0] for name in loaded} & SERVER_ONLY == set()


def test_the_client_distribution_requires_only_httpx_pydantic_and_tenacity() -> None:
    requires = importlib.metadata.requires("stepd-client") or []
    assert {re.split(r"[<>=!~ ;\[]", requirement)[0].lower() for requirement in requires} == {
        "httpx",
        "pydantic",
        "tenacity",
    }


def test_the_client_is_released_with_the_server_it_speaks_to() -> None:
    assert stepd_client.__version__ == importlib.metadata.version("stepd-client") == __version__
