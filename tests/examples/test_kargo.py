"""examples/kargo: the request the PromotionTask describes, sent to a real stepd.

The task's ``http`` step config is evaluated the way Kargo evaluates it (test values
for its vars and secret), the resulting request goes over a socket to a ``stepd serve``
process, and the step's own expressions judge the answer.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import kubernetes_validate
import pytest
import yaml

from tests.examples.kargo import HttpOutcome, evaluate_config, http_outcome
from tests.support.server import serve

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "kargo"
TOKEN = "kargo-example-test-token"
SECRET_NAME = "stepd-token"


@pytest.fixture(scope="module")
def task() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((EXAMPLE / "promotion-task.yaml").read_text())
    return loaded


@pytest.fixture(scope="module")
def stepd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A ``stepd serve`` on loopback that accepts TOKEN; yields its URL and root."""
    home = tmp_path_factory.mktemp("kargo")
    root = home / "root"
    root.mkdir()
    (home / "tokens").write_text(f"{TOKEN}\n")
    with serve(root, env={"STEPD_AUTH_TOKENS_FILE": str(home / "tokens")}) as server:
        yield server.base_url, root


def _promote(
    task: dict[str, Any], stepd_url: str, promotion: str = "", **test_vars: str
) -> tuple[httpx.Response, HttpOutcome]:
    """Run the task's http step as Kargo would in Promotion ``promotion`` (a fresh one by
    default), with ``test_vars`` over the defaults; stepd's answer and what the step made
    of it."""
    promotion = promotion or f"test.{uuid.uuid4().hex}"
    env: dict[str, Any] = {
        "ctx": {"stage": "test", "project": "kargo-demo", "promotion": promotion}
    }
    env["vars"] = {}
    for var in task["spec"]["vars"]:
        if var["name"] in test_vars:
            env["vars"][var["name"]] = test_vars[var["name"]]
        else:
            assert "value" in var, f"required var {var['name']!r} not given"
            env["vars"][var["name"]] = evaluate_config(var["value"], env)
    env["vars"]["stepdURL"] = stepd_url
    env["secrets"] = {env["vars"]["tokenSecret"]: {"token": TOKEN}}

    (step,) = [s for s in task["spec"]["steps"] if s["uses"] == "http"]
    config = evaluate_config(step["config"], env)
    assert config["responseContentType"] == "application/json"
    response = httpx.request(
        config["method"],
        config["url"],
        headers=[(h["name"], h["value"]) for h in config["headers"]],
        content=config["body"].encode(),
        timeout=float(config["timeout"].removesuffix("s")),
    )
    body = json.loads(response.content) if response.content else {}
    response_env = {"status": response.status_code, "headers": {}, "body": body}
    return response, http_outcome(config, response_env)


def test_task_is_an_http_post_to_the_delete_endpoint_with_a_bearer_token(
    task: dict[str, Any],
) -> None:
    assert (task["apiVersion"], task["kind"]) == ("kargo.akuity.io/v1alpha1", "PromotionTask")
    env = {
        "vars": {"stepdURL": "http://stepd:8080", "tokenSecret": SECRET_NAME},
        "secrets": {SECRET_NAME: {"token": TOKEN}},
    }
    env["vars"] |= {"workspace": "dev", "path": "out", "strict": "false"}
    env["vars"]["idempotencyKey"] = "promotion-1"
    config = evaluate_config(task["spec"]["steps"][0]["config"], env)
    assert (config["method"], config["url"]) == ("POST", "http://stepd:8080/steps/delete")
    headers = {h["name"]: h["value"] for h in config["headers"]}
    assert headers == {
        "Authorization": f"Bearer {TOKEN}",
        "Content-Type": "application/json",
        "Idempotency-Key": "promotion-1",
    }
    assert json.loads(config["body"]) == {
        "apiVersion": "v1",
        "workspace": "dev",
        "path": "out",
        "strict": False,
    }
    assert config["successExpression"] == "response.status == 200"


def test_200_succeeds_and_outputs_what_was_deleted(
    task: dict[str, Any], stepd: tuple[str, Path]
) -> None:
    url, root = stepd
    (root / "promo-1" / "out").mkdir(parents=True)
    (root / "promo-1" / "out" / "values.yaml").write_text("x")

    response, outcome = _promote(task, url, workspace="promo-1", path="out/", strict="false")

    assert response.status_code == 200
    assert outcome.status == "Succeeded"
    assert outcome.outputs == {"deleted": ["out"], "absent": []}
    assert not (root / "promo-1" / "out").exists()


def test_task_outputs_are_composed_from_the_http_step(task: dict[str, Any]) -> None:
    (http_step,) = [s for s in task["spec"]["steps"] if s["uses"] == "http"]
    (compose,) = [s for s in task["spec"]["steps"] if s["uses"] == "compose-output"]
    step_outputs = {"deleted": ["out"], "absent": ["gone"]}
    env = {"task": {"outputs": {http_step["as"]: step_outputs}}}
    assert evaluate_config(compose["config"], env) == step_outputs


def test_strict_404_fails_the_promotion_terminally(
    task: dict[str, Any], stepd: tuple[str, Path]
) -> None:
    url, root = stepd
    (root / "promo-2").mkdir()

    response, outcome = _promote(task, url, workspace="promo-2", path="never-there", strict="true")

    assert response.status_code == 404
    assert outcome.status == "Failed"
    assert outcome.message is not None
    assert "never-there" in outcome.message


def test_422_fails_the_promotion_terminally_and_touches_nothing(
    task: dict[str, Any], stepd: tuple[str, Path]
) -> None:
    url, root = stepd
    (root.parent / "outside.txt").write_text("keep me")

    response, outcome = _promote(
        task, url, workspace="promo-3", path="../../outside.txt", strict="false"
    )

    assert response.status_code == 422
    assert outcome.status == "Failed"
    assert (root.parent / "outside.txt").read_text() == "keep me"


def test_a_retried_step_gets_the_first_answer_again(
    task: dict[str, Any], stepd: tuple[str, Path]
) -> None:
    url, root = stepd
    (root / "promo-4" / "out").mkdir(parents=True)
    promote = {"promotion": "promo-4.retried", "workspace": "promo-4", "path": "out"}

    first, first_outcome = _promote(task, url, **promote)
    retry, retry_outcome = _promote(task, url, **promote)
    again, again_outcome = _promote(task, url, **{**promote, "promotion": "promo-4.next"})

    assert (first.status_code, retry.status_code) == (200, 200)
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert retry_outcome.outputs == first_outcome.outputs == {"deleted": ["out"], "absent": []}
    assert "Idempotent-Replayed" not in again.headers
    assert again_outcome.outputs == {"deleted": [], "absent": ["out"]}


@pytest.mark.parametrize(("status", "expected"), [(503, "Running"), (500, "Running")])
def test_5xx_is_retried_not_terminal(task: dict[str, Any], status: int, expected: str) -> None:
    config = task["spec"]["steps"][0]["config"]
    outcome = http_outcome(config, {"status": status, "headers": {}, "body": {}})
    assert outcome.status == expected


def test_example_secret_is_a_valid_placeholder_secret() -> None:
    secret = yaml.safe_load((EXAMPLE / "secret.yaml").read_text())
    kubernetes_validate.validate(secret, "1.37.0", strict=True)
    assert secret["metadata"]["name"] == SECRET_NAME
    assert secret["stringData"]["token"].startswith("REPLACE-ME")
