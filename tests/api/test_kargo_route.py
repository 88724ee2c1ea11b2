"""``POST /api/v1/step.execute``: Kargo's step plugin protocol over the same steps."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.api.pool import Pool
from app.api.routes.kargo import _replayed, answer_of
from app.idempotency.sqlite import SQLiteStore
from app.main import create_app
from app.models.kargo import StepExecuteResponse
from app.sandbox import Root
from app.sandbox.errors import Busy
from app.settings import ConfigError, Settings
from app.steps.batch import StepResult, StepStatus
from app.steps.delete import DeleteOutcome
from app.steps.errors import TargetNotFound
from app.steps.stop import Stop
from tests.support.problems import assert_problem

PATH = "/api/v1/step.execute"
AGENT_TOKEN = "b2c4d5f6g7h8j9k2l4m5n6p7q8r9s2t4"
STEPD_TOKEN = "stepd-own-token"


def step(config: Any, work_dir: Path | str | None = None, **context: Any) -> dict[str, Any]:
    """A request as Kargo's agent sends it (``kind`` ``stepd-delete`` unless given)."""
    kind = context.pop("kind", "stepd-delete")
    if work_dir is not None:
        context["workDir"] = str(work_dir)
    return {"context": context, "step": {"kind": kind, "alias": "clean", "config": config}}


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


@pytest.fixture
def kargo(root_dir: Path, tmp_path: Path) -> Iterator[TestClient]:
    """The app as a step plugin sidecar: the agent's token, state outside the root."""
    token = tmp_path / "kargo-token"
    token.write_text(AGENT_TOKEN)
    settings = Settings(
        workspace_root=root_dir,
        kargo_token_file=token,
        state_dir=tmp_path / "state",
        purge="inline",
    )
    with TestClient(create_app(settings), headers=bearer(AGENT_TOKEN)) as client:
        yield client


def test_a_delete_succeeds_with_its_outputs(kargo: TestClient, root_dir: Path) -> None:
    (root_dir / "out" / "charts").mkdir(parents=True)
    response = kargo.post(PATH, json=step({"paths": ["out/charts", "gone"]}, root_dir))
    assert response.status_code == 200
    assert response.json() == {
        "status": "Succeeded",
        "output": {"deleted": ["out/charts"], "absent": ["gone"]},
    }
    assert not (root_dir / "out" / "charts").exists()


def test_the_step_runs_in_the_work_dir_beneath_the_root(kargo: TestClient, root_dir: Path) -> None:
    (root_dir / "promo" / "out").mkdir(parents=True)
    (root_dir / "out").mkdir()
    response = kargo.post(PATH, json=step({"path": "out"}, root_dir / "promo" / "."))
    assert response.json()["output"] == {"deleted": ["out"], "absent": []}
    assert not (root_dir / "promo" / "out").exists()
    assert (root_dir / "out").exists()


def test_without_a_work_dir_the_step_runs_at_the_root(kargo: TestClient, root_dir: Path) -> None:
    (root_dir / "out").mkdir()
    assert kargo.post(PATH, json=step({"path": "out"})).json()["status"] == "Succeeded"
    assert not (root_dir / "out").exists()


def test_a_work_dir_that_does_not_exist_holds_nothing(kargo: TestClient, root_dir: Path) -> None:
    response = kargo.post(PATH, json=step({"path": "out"}, root_dir / "not" / "there"))
    assert response.json() == {"status": "Succeeded", "output": {"deleted": [], "absent": ["out"]}}


def test_the_root_may_be_spelled_as_configured(tmp_path: Path, root_dir: Path) -> None:
    link = tmp_path / "link"
    link.symlink_to(root_dir)
    (root_dir / "a").mkdir()
    (root_dir / "b").mkdir()
    with TestClient(create_app(Settings(workspace_root=link))) as client:
        for work_dir, path in ((link, "a"), (root_dir, "b")):
            answer = client.post(PATH, json=step({"path": path}, work_dir)).json()
            assert answer["output"]["deleted"] == [path]


@pytest.mark.parametrize(
    ("work_dir", "code"),
    [
        ("relative/dir", "invalid_path"),
        ("{root}/../outside", "path_outside_workspace"),
        ("{parent}", "path_outside_workspace"),
        ("{parent}/outside", "path_outside_workspace"),
        ("{root}/.stepd", "invalid_path"),
        ("{root}/escape", "path_outside_workspace"),
        ("{root}/escape/deeper", "path_outside_workspace"),
    ],
)
def test_a_work_dir_not_beneath_the_root_fails_and_touches_nothing(
    kargo: TestClient, root_dir: Path, work_dir: str, code: str
) -> None:
    (root_dir / "escape").symlink_to(root_dir.parent / "outside")
    spelled = work_dir.format(root=root_dir, parent=root_dir.parent)
    answer = kargo.post(PATH, json=step({"path": "precious.txt"}, spelled)).json()
    assert answer["status"] == "Failed"
    assert answer["message"].startswith(f"{code}: ")
    assert (root_dir.parent / "outside" / "precious.txt").read_text() == "keep me"


@pytest.mark.parametrize(
    ("config", "code", "mentions"),
    [
        ({"path": "never-there", "strict": True}, "not_found", "'never-there'"),
        ({"path": "../outside/precious.txt"}, "path_outside_workspace", "config.path"),
        ({"paths": ["ok", "/etc/passwd"]}, "invalid_path", "config.paths[1]"),
        ({"path": ".stepd"}, "invalid_path", ".stepd"),
        ({"path": "x", "apiVersion": "v1"}, "invalid_request", "config.apiVersion"),
        ({"path": "x", "strict": "yes"}, "invalid_request", "config.strict"),
        ({"path": "x", "paths": ["y"]}, "invalid_request", "exactly one"),
        (None, "invalid_request", "config"),
    ],
)
def test_what_a_retry_cannot_fix_is_failed_with_a_message(
    kargo: TestClient, root_dir: Path, config: Any, code: str, mentions: str
) -> None:
    answer = kargo.post(PATH, json=step(config, root_dir)).json()
    assert set(answer) == {"status", "message"}
    assert answer["status"] == "Failed"
    assert answer["message"].startswith(f"{code}: ")
    assert mentions in answer["message"]
    assert "\n" not in answer["message"]
    assert (root_dir.parent / "outside" / "precious.txt").exists()


@pytest.mark.parametrize("kind", ["delete", "stepd-nothing", "other-delete"])
def test_an_unknown_kind_is_failed(kargo: TestClient, kind: str) -> None:
    answer = kargo.post(PATH, json=step({"path": "x"}, kind=kind)).json()
    assert answer["status"] == "Failed"
    assert answer["message"].startswith("unknown_step: ")
    assert "stepd-delete" in answer["message"]


def test_the_kind_prefix_is_a_setting(root_dir: Path) -> None:
    (root_dir / "out").mkdir()
    app = create_app(Settings(workspace_root=root_dir, kargo_kind_prefix="acme-"))
    with TestClient(app) as client:
        assert client.post(PATH, json=step({"path": "out"})).json()["status"] == "Failed"
        answer = client.post(PATH, json=step({"path": "out"}, kind="acme-delete")).json()
        assert answer["output"]["deleted"] == ["out"]


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b'{"context": {}}',
        b'{"step": {"alias": "x"}}',
        b'{"step": {"kind": "stepd-delete"}, "context": {"workDir": 7}}',
        b'{"step": {"kind": "stepd-delete", "config": ["path"]}}',
    ],
    ids=["not-json", "array", "no-step", "no-kind", "workdir-number", "config-array"],
)
def test_a_body_that_is_not_a_request_is_400(kargo: TestClient, body: bytes) -> None:
    response = kargo.post(PATH, content=body, headers={"content-type": "application/json"})
    assert_problem(response, 400, "invalid_step_request")


def test_unknown_context_fields_are_ignored(kargo: TestClient, root_dir: Path) -> None:
    request = step({"path": "gone"}, root_dir, freight={"items": {"x": {}}}, somethingNew=[1])
    assert kargo.post(PATH, json=request).json()["status"] == "Succeeded"


def test_a_repeated_request_gets_the_first_answer(kargo: TestClient, root_dir: Path) -> None:
    (root_dir / "out").mkdir()
    request = step({"path": "out"}, root_dir, promotionUID=str(uuid.uuid4()))
    first = kargo.post(PATH, json=request).json()
    again = kargo.post(PATH, json=request).json()
    assert first == again == {"status": "Succeeded", "output": {"deleted": ["out"], "absent": []}}
    other_config = step({"path": "out", "strict": False}, root_dir, promotionUID="other")
    assert kargo.post(PATH, json=other_config).json()["output"]["absent"] == ["out"]


def test_a_failed_answer_is_given_again_too(kargo: TestClient, root_dir: Path) -> None:
    request = step({"path": "late", "strict": True}, root_dir, promotionUID="u-failed")
    assert kargo.post(PATH, json=request).json()["status"] == "Failed"
    (root_dir / "late").mkdir()
    assert kargo.post(PATH, json=request).json()["status"] == "Failed"
    assert (root_dir / "late").exists()


def test_a_new_promotion_alias_or_config_runs_again(kargo: TestClient, root_dir: Path) -> None:
    (root_dir / "out").mkdir()
    kargo.post(PATH, json=step({"path": "out"}, root_dir, promotionUID="one"))
    (root_dir / "out").mkdir()
    answer = kargo.post(PATH, json=step({"path": "out"}, root_dir, promotionUID="two")).json()
    assert answer["output"]["deleted"] == ["out"]


def test_without_a_promotion_uid_nothing_is_replayed(kargo: TestClient, root_dir: Path) -> None:
    (root_dir / "out").mkdir()
    assert kargo.post(PATH, json=step({"path": "out"})).json()["output"]["deleted"] == ["out"]
    assert kargo.post(PATH, json=step({"path": "out"})).json()["output"]["absent"] == ["out"]


def test_a_store_that_cannot_keep_the_record_is_errored_and_runs_nothing(
    root_dir: Path, tmp_path: Path
) -> None:
    (tmp_path / "a-file").write_text("")
    settings = Settings(workspace_root=root_dir, state_dir=tmp_path / "a-file" / "state")
    (root_dir / "out").mkdir()
    with TestClient(create_app(settings)) as client:
        answer = client.post(PATH, json=step({"path": "out"}, promotionUID="u")).json()
        assert answer["status"] == "Errored"
        assert "terminal" not in answer
        assert answer["message"].startswith("io_error: ")
        assert (root_dir / "out").exists()
        # Without a UID there is nothing to record: the step runs.
        assert client.post(PATH, json=step({"path": "out"})).json()["status"] == "Succeeded"


def _store(directory: Path) -> SQLiteStore:
    return SQLiteStore(
        Root.open(directory),
        timedelta(hours=1),
        owner="kargo-test",
        lease=timedelta(seconds=30),
        max_records=100,
    )


def replayed(store: SQLiteStore, run: Callable[[Stop], StepExecuteResponse]) -> bytes:
    """The body ``_replayed`` answers for key ``key``, on a pool of its own, not waiting."""

    async def answer() -> bytes:
        pool = Pool("test", workers=1, queue=4)
        try:
            response = await _replayed(pool, store, "kargo-agent", "key", "fp", run, wait=0)
        finally:
            await pool.close(1.0)
        return bytes(response.body)

    return asyncio.run(answer())


def test_errored_answers_are_not_kept_final_ones_are(tmp_path: Path) -> None:
    store = _store(tmp_path)
    answers = iter(
        [
            StepExecuteResponse(status="Errored", message="busy: try again"),
            StepExecuteResponse(status="Succeeded", output={"deleted": ["x"]}),
            StepExecuteResponse(status="Succeeded", output={"deleted": []}),
        ]
    )
    given = [replayed(store, lambda _: next(answers)) for _ in range(3)]
    store.close()
    assert [StepExecuteResponse.model_validate_json(body).status for body in given] == [
        "Errored",
        "Succeeded",
        "Succeeded",
    ]
    assert given[2] == given[1]


def test_a_request_already_running_is_answered_running(tmp_path: Path) -> None:
    store = _store(tmp_path)
    store.claim("kargo-agent", "key", "fp")
    body = replayed(store, lambda _: pytest.fail("ran"))
    store.close()
    assert StepExecuteResponse.model_validate_json(body) == StepExecuteResponse(
        status="Running",
        message="this step is still running for an earlier request",
        retryAfter="5s",
    )


@pytest.mark.parametrize(
    ("result", "expected"),
    [
        (
            StepResult("s", "delete", StepStatus.SUCCEEDED, output=DeleteOutcome(["a"], ["b"])),
            {"status": "Succeeded", "output": {"deleted": ["a"], "absent": ["b"]}},
        ),
        (
            StepResult("s", "delete", StepStatus.FAILED, error=TargetNotFound(["a"])),
            {
                "status": "Failed",
                "message": "not_found: strict mode: nothing matches 'a'; nothing was deleted",
            },
        ),
        (
            StepResult("s", "delete", StepStatus.ERRORED, error=Busy("target busy", path="a")),
            {"status": "Errored", "message": "busy: target busy: 'a'"},
        ),
        (
            StepResult("s", "delete", StepStatus.ERRORED, error=RuntimeError("bug")),
            {
                "status": "Errored",
                "message": "internal: unexpected RuntimeError, logged by stepd",
                "terminal": True,
            },
        ),
    ],
    ids=["succeeded", "failed", "errored", "bug"],
)
def test_each_result_has_its_answer(result: StepResult, expected: dict[str, Any]) -> None:
    assert answer_of(result).model_dump(exclude_none=True) == expected


# Authentication: the agent's token file, or stepd's usual rules without it.


def test_the_agent_token_is_required_403_otherwise(kargo: TestClient, root_dir: Path) -> None:
    (root_dir / "keep").mkdir()
    for headers in (bearer("wrong"), {"authorization": ""}, bearer(STEPD_TOKEN)):
        response = kargo.post(PATH, json=step({"path": "keep"}), headers=headers)
        assert_problem(response, 403, "kargo_token_rejected")
    assert (root_dir / "keep").exists()


def test_a_rewritten_token_file_is_read_again(
    kargo: TestClient, root_dir: Path, tmp_path: Path
) -> None:
    (tmp_path / "kargo-token").write_text("z9y8x7w6v5t4s3r2q9p8n7m6l5k4j3h2\n")
    response = kargo.post(PATH, json=step({"path": "x"}))
    assert_problem(response, 403, "kargo_token_rejected")
    rotated = bearer("z9y8x7w6v5t4s3r2q9p8n7m6l5k4j3h2")
    assert kargo.post(PATH, json=step({"path": "x"}), headers=rotated).status_code == 200


def test_the_agent_token_opens_no_other_route_of_its_own(root_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "kargo-token").write_text(AGENT_TOKEN)
    (tmp_path / "tokens").write_text(f"ci:{STEPD_TOKEN}\n")
    settings = Settings(
        workspace_root=root_dir,
        kargo_token_file=tmp_path / "kargo-token",
        auth_tokens_file=tmp_path / "tokens",
    )
    with TestClient(create_app(settings)) as client:
        delete = client.post("/steps/delete", json={"path": "x"}, headers=bearer(AGENT_TOKEN))
        assert_problem(delete, 401, "unauthorized")
        plugin = client.post(PATH, json=step({"path": "x"}), headers=bearer(STEPD_TOKEN))
        assert_problem(plugin, 403, "kargo_token_rejected")
        assert client.post(PATH, json=step({"path": "x"}), headers=bearer(AGENT_TOKEN)).is_success


def test_without_a_kargo_token_file_the_usual_tokens_apply(root_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "tokens").write_text(f"ci:{STEPD_TOKEN}\n")
    settings = Settings(workspace_root=root_dir, auth_tokens_file=tmp_path / "tokens")
    with TestClient(create_app(settings)) as client:
        assert_problem(client.post(PATH, json=step({"path": "x"})), 401, "unauthorized")
        answer = client.post(PATH, json=step({"path": "x"}), headers=bearer(STEPD_TOKEN))
        assert answer.json()["status"] == "Succeeded"


@pytest.mark.parametrize("content", [None, "  \n"], ids=["missing", "blank"])
def test_a_kargo_token_file_that_cannot_serve_keeps_stepd_from_starting(
    root_dir: Path, tmp_path: Path, content: str | None
) -> None:
    token = tmp_path / "kargo-token"
    if content is not None:
        token.write_text(content)
    with pytest.raises(ConfigError, match="token file"):
        create_app(Settings(workspace_root=root_dir, kargo_token_file=token))
