"""examples/kargo: the PromotionTask's ``http`` step, judged by Kargo's own rules.

The task's config is evaluated the way Kargo evaluates it (test values for its vars and
secret); its requests go over a socket to a ``stepd serve`` process, and the step's own
expressions judge each answer as ``http_requester.go`` does. Retries follow upstream
Kargo's orchestrator (``agent.Agent`` with ``extended=False``): a transport error counts
towards ``retry.errorThreshold``, an answer that is neither success nor failure is sent
again until ``retry.timeout``.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import kubernetes_validate
import pytest
import yaml

from app.idempotency.key import parse_key
from tests.examples.agent import Agent, PromotionRun, kargo_context
from tests.examples.kargo import Answer, evaluate_config, http_outcome, http_transport_error
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


def task_env(task: dict[str, Any], promotion: str, **test_vars: Any) -> dict[str, Any]:
    """What the task's expressions see in Promotion ``promotion``: its vars (``test_vars``
    over the defaults, evaluated in order as Kargo does) and the token Secret."""
    env: dict[str, Any] = {"ctx": kargo_context("test", promotion), "vars": {}}
    for var in task["spec"]["vars"]:
        if var["name"] in test_vars:
            env["vars"][var["name"]] = test_vars[var["name"]]
        else:
            assert "value" in var, f"required var {var['name']!r} not given"
            env["vars"][var["name"]] = evaluate_config(var["value"], env)
    env["secrets"] = {env["vars"]["tokenSecret"]: {"token": TOKEN}}
    return env


def http_step(task: dict[str, Any]) -> dict[str, Any]:
    (step,) = [s for s in task["spec"]["steps"] if s["uses"] == "http"]
    return step


def send(config: dict[str, Any]) -> Answer:
    """Kargo's ``http`` step: send the request the config describes, judge the answer."""
    try:
        response = httpx.request(
            config["method"],
            config["url"],
            headers=[(h["name"], h["value"]) for h in config["headers"]],
            content=config["body"].encode(),
            timeout=float(config["timeout"].removesuffix("s")),
        )
    except httpx.TransportError as exc:
        return http_transport_error(exc)
    assert config["responseContentType"] == "application/json"
    body = json.loads(response.content) if response.content else {}
    return http_outcome(config, {"status": response.status_code, "headers": {}, "body": body})


def promote(
    task: dict[str, Any], url: str, *, promotion: str = "", scale: float = 1.0, **test_vars: Any
) -> PromotionRun:
    """Run the task's steps as upstream Kargo runs them in Promotion ``promotion`` (a
    fresh one by default), with stepd at ``url``."""
    promotion = promotion or f"test.{uuid.uuid4().hex[:26]}"
    env = task_env(task, promotion, **test_vars, stepdURL=url)

    def http(_: Path, config: dict[str, Any]) -> Answer:
        return send(config)

    def compose_output(_: Path, config: dict[str, Any]) -> Answer:
        return Answer("Succeeded", output=config)

    agent = Agent(
        None,
        {},
        {"http": http, "compose-output": compose_output},
        time_scale=scale,
        extended=False,
    )
    return agent.promote(
        task["spec"]["steps"],
        work_dir=Path("/nonexistent"),
        ctx=env["ctx"],
        uid=promotion,
        variables=env["vars"],
        secrets=env["secrets"],
    )


def test_the_task_posts_json_to_the_delete_endpoint_with_a_token_and_a_key(
    task: dict[str, Any],
) -> None:
    assert (task["apiVersion"], task["kind"]) == ("kargo.akuity.io/v1alpha1", "PromotionTask")
    env = task_env(task, "test.01j2m3n4p5q6", stepdURL="http://stepd:8080", path="out")
    config = evaluate_config(http_step(task)["config"], env)
    assert (config["method"], config["url"]) == ("POST", "http://stepd:8080/steps/delete")
    headers = {h["name"]: h["value"] for h in config["headers"]}
    assert headers["Authorization"] == f"Bearer {TOKEN}"
    assert headers["Content-Type"] == "application/json"
    assert headers["Idempotency-Key"].startswith("test.01j2m3n4p5q6-")
    assert json.loads(config["body"]) == {
        "apiVersion": "v1",
        "workspace": "test",
        "path": "out",
        "strict": False,
    }
    assert config["successExpression"] == "response.status == 200"


def test_two_uses_in_one_promotion_have_their_own_valid_keys(task: dict[str, Any]) -> None:
    promotion = "test.01j2m3n4p5q6r7s8t9v0w1x2y3.abc1234"
    keys = set()
    for path, strict in (("out", "false"), ("tmp/cache", "false"), ("out", "true")):
        env = task_env(task, promotion, path=path, strict=strict)
        key = evaluate_config(env["vars"]["idempotencyKey"], env)
        assert parse_key([key]) == key
        keys.add(key)
    assert len(keys) == 3
    long_path = "charts/" + "a" * 100 + "/values.yaml"
    env = task_env(task, promotion, path=long_path)
    assert len(evaluate_config(env["vars"]["idempotencyKey"], env)) <= 255


# What each of stepd's answers makes of the step (upstream Kargo's http step rules).
VERDICTS = [
    (200, {"deleted": ["out"], "absent": []}, "Succeeded", False),
    (404, {"code": "not_found", "detail": "strict mode: nothing matches 'out'"}, "Failed", True),
    (422, {"code": "path_outside_workspace", "detail": "climbs out"}, "Failed", True),
    (401, {"code": "unauthorized", "detail": "no token"}, "Failed", True),
    (400, {"code": "invalid_idempotency_key", "detail": "bad key"}, "Failed", True),
    (409, {"code": "read_only_filesystem", "detail": "read-only"}, "Failed", True),
    (422, {"code": "idempotency_key_reused", "detail": "reused"}, "Failed", True),
    (413, {"code": "payload_too_large", "detail": "too large"}, "Failed", True),
    (409, {"code": "busy", "detail": "busy"}, "Running", False),
    (409, {"code": "idempotency_key_in_flight", "detail": "running"}, "Running", False),
    (408, {"code": "request_timeout", "detail": "slow body"}, "Running", False),
    (429, {}, "Running", False),
    (500, {"code": "internal", "detail": "logged"}, "Running", False),
    (503, {"code": "io_error", "detail": "EIO"}, "Running", False),
    (507, {"code": "no_space", "detail": "full"}, "Running", False),
]


@pytest.mark.parametrize(("status", "body", "verdict", "final"), VERDICTS)
def test_only_answers_a_retry_cannot_fix_are_final(
    task: dict[str, Any], status: int, body: dict[str, Any], verdict: str, final: bool
) -> None:
    answer = http_outcome(
        http_step(task)["config"], {"status": status, "headers": {}, "body": body}
    )
    assert answer.status == verdict
    assert answer.terminal is final
    if final:
        assert answer.error == f'HTTP ({status}) response met failure criteria: "{body["detail"]}"'


def test_200_succeeds_with_what_was_deleted_as_the_tasks_output(
    task: dict[str, Any], stepd: tuple[str, Path]
) -> None:
    url, root = stepd
    (root / "promo-1" / "out").mkdir(parents=True)
    (root / "promo-1" / "out" / "values.yaml").write_text("x")

    run = promote(task, url, workspace="promo-1", path="out/")

    assert run.phase == "Succeeded"
    assert run.outputs["call-stepd"] == {"deleted": ["out"], "absent": []}
    assert run.outputs["result"] == {"deleted": ["out"], "absent": []}
    assert not (root / "promo-1" / "out").exists()


def test_a_strict_404_fails_the_promotion_at_once(
    task: dict[str, Any], stepd: tuple[str, Path]
) -> None:
    url, root = stepd
    (root / "promo-2").mkdir()

    run = promote(task, url, workspace="promo-2", path="never-there", strict="true")

    step = run.step("call-stepd")
    assert (run.phase, step.status, len(step.attempts)) == ("Errored", "Errored", 1)
    assert step.message.startswith("an unrecoverable error occurred: HTTP (404) ")
    assert "never-there" in step.message
    assert run.step("result").status == "Skipped"


def test_a_path_leading_out_fails_at_once_and_touches_nothing(
    task: dict[str, Any], stepd: tuple[str, Path]
) -> None:
    url, root = stepd
    (root.parent / "outside.txt").write_text("keep me")

    run = promote(task, url, workspace="promo-3", path="../../outside.txt")

    assert len(run.step("call-stepd").attempts) == 1
    assert "HTTP (422)" in run.step("call-stepd").message
    assert (root.parent / "outside.txt").read_text() == "keep me"


def test_a_step_retried_in_its_promotion_gets_the_first_answer(
    task: dict[str, Any], stepd: tuple[str, Path]
) -> None:
    url, root = stepd
    (root / "promo-4" / "out").mkdir(parents=True)
    same = {"promotion": "test.retried", "workspace": "promo-4", "path": "out"}

    first = promote(task, url, **same)
    retry = promote(task, url, **same)
    other = promote(task, url, **{**same, "promotion": "test.next"})

    assert first.outputs["result"] == retry.outputs["result"] == {"deleted": ["out"], "absent": []}
    assert other.outputs["result"] == {"deleted": [], "absent": ["out"]}


def test_two_uses_in_one_promotion_both_run(task: dict[str, Any], stepd: tuple[str, Path]) -> None:
    url, root = stepd
    (root / "promo-5" / "a").mkdir(parents=True)
    (root / "promo-5" / "b").mkdir()
    same = {"promotion": "test.two-uses", "workspace": "promo-5"}

    runs = [promote(task, url, **same, path=path) for path in ("a", "b")]

    assert [run.outputs["result"]["deleted"] for run in runs] == [["a"], ["b"]]


class Scripted:
    """A stand-in for stepd's address: each request is handled by the next action of a
    script: forwarded to the real stepd (``"forward"``), forwarded with its answer lost
    (``"lose"``: the connection closes without one), or answered ``(status, body)``."""

    def __init__(self, upstream: str, script: list[Any]) -> None:
        self.script = script
        self.seen: list[Any] = []
        scripted = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                action = scripted.script.pop(0) if scripted.script else "forward"
                scripted.seen.append(action)
                if action in ("forward", "lose"):
                    headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                    answer = httpx.post(upstream + self.path, content=body, headers=headers)
                    if action == "lose":
                        self.close_connection = True
                        return
                    status, payload = answer.status_code, answer.content
                else:
                    status, payload = action[0], json.dumps(action[1]).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def scripted(stepd: tuple[str, Path]) -> Iterator[Callable[[list[Any]], Scripted]]:
    made: list[Scripted] = []

    def make(script: list[Any]) -> Scripted:
        made.append(Scripted(stepd[0], script))
        return made[-1]

    yield make
    for server in made:
        server.close()


def test_a_lost_answer_is_retried_and_replayed(
    task: dict[str, Any], stepd: tuple[str, Path], scripted: Callable[[list[Any]], Scripted]
) -> None:
    _, root = stepd
    (root / "promo-6" / "out").mkdir(parents=True)
    network = scripted(["lose"])

    run = promote(task, network.url, scale=0.01, workspace="promo-6", path="out")

    step = run.step("call-stepd")
    assert network.seen == ["lose", "forward"]
    assert [attempt.answer.status for attempt in step.attempts] == ["Errored", "Succeeded"]
    # stepd deleted at the first request; the retry reports it, through the key.
    assert run.outputs["result"] == {"deleted": ["out"], "absent": []}


def test_without_the_retry_block_one_lost_answer_fails_the_promotion(
    task: dict[str, Any], stepd: tuple[str, Path], scripted: Callable[[list[Any]], Scripted]
) -> None:
    _, root = stepd
    (root / "promo-7" / "out").mkdir(parents=True)
    network = scripted(["lose"])
    bare = json.loads(json.dumps(task))
    del http_step(bare)["retry"]

    run = promote(bare, network.url, scale=0.01, workspace="promo-7", path="out")

    assert (run.phase, len(run.step("call-stepd").attempts)) == ("Errored", 1)
    assert "met error threshold of 1" in run.step("call-stepd").message


def test_a_busy_answer_is_sent_again_until_it_succeeds(
    task: dict[str, Any], stepd: tuple[str, Path], scripted: Callable[[list[Any]], Scripted]
) -> None:
    _, root = stepd
    (root / "promo-8" / "out").mkdir(parents=True)
    busy = (409, {"code": "busy", "title": "busy", "status": 409, "detail": "busy"})
    in_flight = (409, {"code": "idempotency_key_in_flight", "detail": "still running"})
    network = scripted([busy, in_flight, (503, {"code": "io_error", "detail": "EIO"})])

    run = promote(task, network.url, scale=0.001, workspace="promo-8", path="out")

    statuses = [attempt.answer.status for attempt in run.step("call-stepd").attempts]
    assert statuses == ["Running", "Running", "Running", "Succeeded"]
    assert run.outputs["result"] == {"deleted": ["out"], "absent": []}


def test_a_5xx_that_persists_ends_at_the_step_timeout(
    task: dict[str, Any], stepd: tuple[str, Path], scripted: Callable[[list[Any]], Scripted]
) -> None:
    network = scripted([(503, {"code": "io_error", "detail": "EIO"})] * 100_000)
    step = http_step(task)
    assert step["retry"]["timeout"] == "10m"

    # Ten minutes of polls every 30 s, at a ten-thousandth of the pace.
    run = promote(task, network.url, scale=0.0001, workspace="promo-9", path="out")

    assert run.phase == "Errored"
    assert "timed out" in run.step("call-stepd").message
    assert len(run.step("call-stepd").attempts) > 1


def test_example_secret_is_a_valid_placeholder_secret() -> None:
    secret = yaml.safe_load((EXAMPLE / "secret.yaml").read_text())
    kubernetes_validate.validate(secret, "1.37.0", strict=True)
    assert secret["metadata"]["name"] == SECRET_NAME
    assert secret["stringData"]["token"].startswith("REPLACE-ME")


def test_no_answer_at_all_is_an_error_not_a_verdict(task: dict[str, Any]) -> None:
    env = task_env(task, "test.down", stepdURL="http://127.0.0.1:9", path="out")
    answer = send(evaluate_config(http_step(task)["config"], env))
    assert (answer.status, answer.terminal) == ("Errored", False)
    assert answer.error.startswith("error sending HTTP request: ")
