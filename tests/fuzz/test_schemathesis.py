"""The running service, fuzzed from its own OpenAPI document with schemathesis.

Every operation of the committed ``openapi/openapi.json`` (which a test keeps equal to
what the server serves) is exercised against a real server over the seeded tree of
``conftest.py``: schemathesis's explicit examples, its coverage phase (boundary values,
wrong types, missing and unknown fields, other HTTP methods) and random fuzzing, with
``derandomize`` so that CI runs the same cases every time. Each response must be no 5xx,
have a documented status, a documented content type and a body matching the schema; and
nothing outside the workspace may change.
"""

from __future__ import annotations

import httpx
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import Case
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from app.api.spec import SPEC_DIR
from tests.fuzz.conftest import REQUESTS_SENT, Tree, seed_workspace
from tests.support.server import Server

SPEC = SPEC_DIR / "openapi.json"
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
# Per operation and phase; with derandomize the run is the same on every machine.
MAX_EXAMPLES = 1000
# The Kargo step plugin route checks its step's config with the models /steps/delete
# has (fuzzed with MAX_EXAMPLES); its own envelope needs fewer cases.
KARGO_PATH = "/api/v1/step.execute"
KARGO_MAX_EXAMPLES = 250

schema = schemathesis.openapi.from_path(SPEC)


def test_served_document_is_the_committed_one(server: Server) -> None:
    served = httpx.get(f"{server.base_url}/openapi.json", timeout=30).json()
    assert served == schema.raw_schema, "openapi/openapi.json is stale: run `make openapi`"


def _fuzz(examples: int) -> settings:
    return settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )


@schema.exclude(path=KARGO_PATH).parametrize()
@_fuzz(MAX_EXAMPLES)
def test_operation_conforms_to_spec(case: Case, tree: Tree, server: Server) -> None:
    _call(case, tree, server)


@schema.include(path=KARGO_PATH).parametrize()
@_fuzz(KARGO_MAX_EXAMPLES)
def test_kargo_step_plugin_conforms_to_spec(case: Case, tree: Tree, server: Server) -> None:
    _call(case, tree, server)


def _call(case: Case, tree: Tree, server: Server) -> None:
    seed_workspace(tree)
    before = tree.protected()
    case.call_and_validate(base_url=server.base_url, checks=CHECKS)
    tree.assert_protected_unchanged(before, case.as_curl_command())
    REQUESTS_SENT[f"schemathesis {case.operation.label}"] += 1
