"""examples/kargo-plugin: promotions run by an emulated Kargo agent against a real stepd.

Each test is one Promotion, so one agent pod: a fresh ``stepd serve`` started with the
environment of ``plugin.yaml``'s sidecar (its paths mapped to temp dirs), sharing a work
dir with the agent. The agent (``agent.py``) follows kargo-extended's rules for calls,
answers, retries and outputs; ``git-clone``, ``git-commit`` and ``git-push`` run with the
``git`` binary on a real repository, as Kargo's built-in steps would.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.examples.agent import (
    Agent,
    Answer,
    PluginClient,
    PromotionRun,
    StepDefaults,
    StepRun,
    _go_duration,
    kargo_context,
)
from tests.support.server import Server, serve

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "kargo-plugin"
# What the agent's init container writes: 32 characters of k8s.io's rand.String.
TOKEN = "b2c4d5f6g7h8j9k2l4m5n6p7q8r9s2t4"
# The sidecar's paths in the pod, and what stands for each in a test.
POD_PATHS = ("/workspace", "/var/run/kargo/token", "/tmp/stepd")
BRANCH = "stage/test"
ORIGIN_FILES = {
    "charts/old-service/Chart.yaml": "name: old-service\n",
    "charts/old-service/templates/deployment.yaml": "kind: Deployment\n",
    "charts/web/values.yaml": "replicas: 2\n",
    "charts/web/values.yaml.bak": "replicas: 1\n",
    "README.md.bak": "old\n",
    "keep.txt": "keep\n",
}
GIT_ENV = {
    **os.environ,
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_AUTHOR_NAME": "Kargo",
    "GIT_AUTHOR_EMAIL": "kargo@example.com",
    "GIT_COMMITTER_NAME": "Kargo",
    "GIT_COMMITTER_EMAIL": "kargo@example.com",
}


def load(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((EXAMPLE / name).read_text())
    return loaded


def git(*args: str, cwd: Path) -> str:
    done = subprocess.run(
        ["git", *args], cwd=cwd, env=GIT_ENV, capture_output=True, text=True, check=True
    )
    return done.stdout


@pytest.fixture
def origin(tmp_path: Path) -> Path:
    """A bare repository whose branch ``stage/test`` holds ``ORIGIN_FILES``."""
    seed = tmp_path / "seed"
    for name, text in ORIGIN_FILES.items():
        (seed / name).parent.mkdir(parents=True, exist_ok=True)
        (seed / name).write_text(text)
    git("init", "--quiet", "--initial-branch", BRANCH, cwd=seed)
    git("add", "-A", cwd=seed)
    git("commit", "--quiet", "-m", "seed", cwd=seed)
    bare = tmp_path / "origin.git"
    git("clone", "--quiet", "--bare", str(seed), str(bare), cwd=tmp_path)
    return bare


# Kargo's built-in steps, as far as these promotions use them: the bare clone lives in the
# work dir and each checkout is a worktree of it, as Kargo's git-clone makes them.
def git_clone(work_dir: Path, config: dict[str, Any]) -> Answer:
    bare = work_dir / f"repo-{uuid.uuid4().hex[:8]}"
    git("clone", "--quiet", "--bare", config["repoURL"], str(bare), cwd=work_dir)
    commits = {}
    for checkout in config["checkout"]:
        path = work_dir / checkout["path"]
        git("worktree", "add", "--quiet", str(path), checkout["branch"], cwd=bare)
        commits[checkout["path"]] = git("rev-parse", "HEAD", cwd=path).strip()
    return Answer("Succeeded", output={"commits": commits})


def git_commit(work_dir: Path, config: dict[str, Any]) -> Answer:
    path = work_dir / config["path"]
    git("add", "-A", cwd=path)
    git("commit", "--quiet", "-m", config["message"], cwd=path)
    return Answer("Succeeded", output={"commit": git("rev-parse", "HEAD", cwd=path).strip()})


def git_push(work_dir: Path, config: dict[str, Any]) -> Answer:
    path = work_dir / config["path"]
    branch = git("rev-parse", "--abbrev-ref", "HEAD", cwd=path).strip()
    git("push", "--quiet", "origin", f"HEAD:{branch}", cwd=path)
    return Answer("Succeeded", output={"branch": branch})


BUILTINS = {"git-clone": git_clone, "git-commit": git_commit, "git-push": git_push}


def sidecar_env(replacements: dict[str, Path]) -> dict[str, str]:
    """``plugin.yaml``'s container environment, its pod paths replaced by test ones."""
    container = load("plugin.yaml")["spec"]["sidecar"]["container"]
    env = {}
    for variable in container["env"]:
        value = variable["value"]
        env[variable["name"]] = str(replacements.get(value, value))
        assert not env[variable["name"]].startswith(POD_PATHS), variable
    return env


def plugin_steps() -> dict[str, StepDefaults]:
    return {
        step["kind"]: StepDefaults(
            timeout=_go_duration(step["defaultTimeout"]),
            error_threshold=step["defaultErrorThreshold"],
        )
        for step in load("plugin.yaml")["spec"]["steps"]
    }


@dataclass
class Pod:
    """One Promotion's agent pod: the shared work dir, stepd, and the agent."""

    work_dir: Path
    state_dir: Path
    stepd: Server
    agent: Agent
    origin: Path
    uid: str

    def promote(
        self, steps: list[dict[str, Any]], after_step: Callable[[StepRun], None] = lambda _: None
    ) -> PromotionRun:
        return self.agent.promote(
            steps,
            work_dir=self.work_dir,
            ctx=kargo_context("test", f"test.{self.uid[:8]}"),
            uid=self.uid,
            variables={"gitRepo": str(self.origin)},
            after_step=after_step,
        )

    def plugin_requests(self, count: int) -> list[dict[str, Any]]:
        """stepd's access log lines of the step plugin route, once ``count`` are written
        (a line is written when its response is done, maybe after the agent read it)."""
        deadline = time.monotonic() + 30

        def lines() -> list[dict[str, Any]]:
            return [
                line
                for line in list(self.stepd.lines)
                if line.get("logger") == "stepd.access"
                and line.get("path") == "/api/v1/step.execute"
            ]

        while len(lines()) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return lines()


@pytest.fixture
def pod_factory(tmp_path: Path, origin: Path) -> Iterator[Callable[..., Pod]]:
    """Starts the test's Promotion pod: ``token`` is what the agent sends, ``env`` is
    added to the sidecar's environment."""
    with ExitStack() as stack:

        def start(token: str = TOKEN, time_scale: float = 1.0, **env: str) -> Pod:
            work_dir = tmp_path / "workspace"
            work_dir.mkdir()
            token_file = tmp_path / "kargo" / "token"
            token_file.parent.mkdir(mode=0o770)
            token_file.write_text(TOKEN)
            token_file.chmod(0o400)
            state_dir = tmp_path / "stepd-state"
            paths = dict(zip(POD_PATHS, (work_dir, token_file, state_dir), strict=True))
            stepd = stack.enter_context(serve(work_dir, env=sidecar_env(paths) | env))
            client = PluginClient(stepd.base_url, token, sleep=lambda _: None)
            agent = Agent(client, plugin_steps(), BUILTINS, time_scale=time_scale)
            return Pod(work_dir, state_dir, stepd, agent, origin, str(uuid.uuid4()))

        yield start


def clone_then(*steps: dict[str, Any]) -> list[dict[str, Any]]:
    """A promotion: the example's git-clone, then ``steps``."""
    clone = load("stage.yaml")["spec"]["promotionTemplate"]["spec"]["steps"][0]
    return [clone, *steps]


def delete(config: dict[str, Any], alias: str = "clean") -> dict[str, Any]:
    return {"uses": "stepd-delete", "as": alias, "config": config}


def porcelain(checkout: Path) -> set[str]:
    return set(git("status", "--porcelain", "--untracked-files=all", cwd=checkout).splitlines())


def deleted_files(entries: list[str], checkout: str = "out/") -> set[str]:
    """``git status --porcelain`` lines for the tracked files under deleted ``entries``."""
    prefixes = [entry.removeprefix(checkout) for entry in entries]
    return {
        f" D {name}"
        for name in ORIGIN_FILES
        if any(name == prefix or name.startswith(prefix + "/") for prefix in prefixes)
    }


def assert_nothing_of_stepd_in(work_dir: Path) -> None:
    """The work dir holds only what the steps made, and stepd's reserved ``.stepd`` at its
    top (beside the checkouts, never in one) holds only its lock, its instances' locks and
    an empty trash."""
    top = {entry.name for entry in work_dir.iterdir()}
    assert {name for name in top if not name.startswith("repo-")} == {"out", ".stepd"}
    reserved = work_dir / ".stepd"
    assert sorted(entry.name for entry in reserved.iterdir()) == ["lock", "owners", "trash"]
    assert list((reserved / "trash").iterdir()) == []


def test_the_example_promotion_deletes_commits_and_pushes(pod_factory: Callable[..., Pod]) -> None:
    pod = pod_factory()
    stage = load("stage.yaml")
    statuses: dict[str, set[str]] = {}

    def look(step: StepRun) -> None:
        if step.alias == "clean":
            statuses["after clean"] = porcelain(pod.work_dir / "out")

    run = pod.promote(stage["spec"]["promotionTemplate"]["spec"]["steps"], look)

    assert run.phase == "Succeeded", run
    assert [(step.kind, step.status) for step in run.steps] == [
        ("git-clone", "Succeeded"),
        ("stepd-delete", "Succeeded"),
        ("git-commit", "Succeeded"),
        ("git-push", "Succeeded"),
    ]
    deleted = ["out/charts/old-service", "out/README.md.bak", "out/charts/web/values.yaml.bak"]
    assert sorted(run.outputs["clean"]["deleted"]) == sorted(deleted)
    assert run.outputs["clean"]["absent"] == []
    # Exactly the deleted files, and nothing of stepd's, in the checkout's status.
    assert statuses["after clean"] == deleted_files(deleted)
    assert_nothing_of_stepd_in(pod.work_dir)
    assert (pod.state_dir / "idempotency.sqlite3").is_file()
    # The later step read the output under the alias; the push carried the deletions.
    message = git("log", "-1", "--format=%s", BRANCH, cwd=pod.origin).strip()
    assert message == "Remove " + ", ".join(run.outputs["clean"]["deleted"])
    pushed = set(git("ls-tree", "-r", "--name-only", BRANCH, cwd=pod.origin).splitlines())
    assert pushed == {"charts/web/values.yaml", "keep.txt"}


def test_a_missing_target_is_success_and_listed_absent(pod_factory: Callable[..., Pod]) -> None:
    pod = pod_factory()

    run = pod.promote(clone_then(delete({"paths": ["out/charts/never-there", "out/keep.txt"]})))

    assert run.phase == "Succeeded"
    assert run.outputs["clean"] == {
        "deleted": ["out/keep.txt"],
        "absent": ["out/charts/never-there"],
    }
    assert porcelain(pod.work_dir / "out") == {" D keep.txt"}


def test_a_strict_target_missing_fails_the_promotion_with_its_reason(
    pod_factory: Callable[..., Pod],
) -> None:
    pod = pod_factory()
    commit = {"uses": "git-commit", "config": {"path": "./out", "message": "never"}}

    run = pod.promote(clone_then(delete({"path": "out/never-there", "strict": True}), commit))

    assert run.phase == "Failed"
    clean = run.step("clean")
    assert clean.status == "Failed"
    assert clean.message.startswith("not_found: ")
    assert "out/never-there" in clean.message
    # Final at the first answer: no retry, and the steps after it do not run.
    assert [len(attempt.calls) for attempt in clean.attempts] == [1]
    assert run.steps[-1].status == "Skipped"
    assert porcelain(pod.work_dir / "out") == set()


@pytest.mark.parametrize(
    "path", ["../outside/precious.txt", "out/escape/precious.txt"], ids=["dotdot", "symlink"]
)
def test_a_path_leading_out_fails_and_touches_nothing(
    pod_factory: Callable[..., Pod], tmp_path: Path, path: str
) -> None:
    pod = pod_factory()
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious.txt").write_text("keep me")

    def plant_symlink(step: StepRun) -> None:
        if step.kind == "git-clone":
            (pod.work_dir / "out" / "escape").symlink_to(outside)

    run = pod.promote(clone_then(delete({"path": path})), plant_symlink)

    assert run.phase == "Failed"
    assert run.step("clean").status == "Failed"
    assert run.step("clean").message.startswith("path_outside_workspace: ")
    assert (outside / "precious.txt").read_text() == "keep me"


def test_a_wrong_token_is_refused_with_403_a_final_error(pod_factory: Callable[..., Pod]) -> None:
    pod = pod_factory(token="the-wrong-token-of-32-characters")

    run = pod.promote(clone_then(delete({"path": "out/keep.txt"})))

    clean = run.step("clean")
    assert (run.phase, clean.status) == ("Errored", "Errored")
    assert clean.message.startswith("an unrecoverable error occurred: 403 Forbidden: ")
    assert "kargo_token_rejected" in clean.message
    assert [call.status_code for call in clean.attempts[0].calls] == [403]
    assert (pod.work_dir / "out" / "keep.txt").exists()


def test_a_retry_after_a_timed_out_call_gets_the_first_answer(
    pod_factory: Callable[..., Pod],
) -> None:
    pod = pod_factory()
    # The first call gives up before stepd answers; the agent tries again at once.
    pod.agent.client.read_timeouts = [0.001]

    run = pod.promote(clone_then(delete({"path": "out/charts/old-service"})))

    clean = run.step("clean")
    assert clean.status == "Succeeded", clean
    calls = clean.attempts[0].calls
    assert calls[0].status_code is None
    assert "Timeout" in calls[0].failure
    assert calls[-1].status_code == 200
    # The retry found the directory gone, yet reports it deleted: the first answer.
    assert run.outputs["clean"] == {"deleted": ["out/charts/old-service"], "absent": []}
    requests = pod.plugin_requests(len(calls))
    assert len(requests) == len(calls)
    assert [line.get("deleted") for line in requests].count(1) == 1
    assert porcelain(pod.work_dir / "out") == deleted_files(["out/charts/old-service"])
    assert_nothing_of_stepd_in(pod.work_dir)


def test_a_repeated_call_while_the_first_still_runs_is_running_then_replayed(
    pod_factory: Callable[..., Pod],
) -> None:
    pod = pod_factory(time_scale=0.1, STEPD_KARGO_DUPLICATE_WAIT="0.3")
    pod.agent.client.read_timeouts = [0.3]
    clone, clean = clone_then(delete({"path": "out/keep.txt"}))
    assert pod.promote([clone]).phase == "Succeeded"

    # An atomic batch's lock held elsewhere keeps the first call's delete waiting.
    with _held(pod.work_dir / ".stepd" / "lock") as release:
        threading.Timer(1.5, release).start()
        run = pod.promote([clean])

    attempts = run.step("clean").attempts
    first = attempts[0]
    assert first.answer.status == "Running"
    assert first.answer.retry_after == 5.0
    assert "still running" in first.answer.message
    assert [call.status_code for call in first.calls] == [None, 200]
    assert attempts[-1].answer.status == "Succeeded"
    assert run.outputs["clean"] == {"deleted": ["out/keep.txt"], "absent": []}
    calls = sum(len(attempt.calls) for attempt in attempts)
    requests = pod.plugin_requests(calls)
    assert len(requests) == calls
    assert [line.get("deleted") for line in requests].count(1) == 1


@contextmanager
def _held(lock_file: Path) -> Iterator[Callable[[], None]]:
    """``lock_file`` flocked exclusively until the returned function is called."""
    fd = os.open(lock_file, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)
    released = threading.Event()

    def release() -> None:
        if not released.is_set():
            released.set()
            fcntl.flock(fd, fcntl.LOCK_UN)

    try:
        yield release
    finally:
        release()
        os.close(fd)


def test_the_configmap_is_what_plugin_yaml_builds_into() -> None:
    plugin = load("plugin.yaml")
    configmap = load("stepd-step-plugin-configmap.yaml")
    assert configmap["apiVersion"] == "v1"
    assert configmap["kind"] == "ConfigMap"
    assert configmap["metadata"] == {
        "name": plugin["metadata"]["name"] + "-step-plugin",
        "namespace": plugin["metadata"]["namespace"],
        "labels": {"kargo-extended.code.org/configmap-type": "StepPlugin"},
    }
    sidecar = plugin["spec"]["sidecar"]
    data = configmap["data"]
    assert (
        data["sidecar.automountServiceAccountToken"]
        == str(sidecar["automountServiceAccountToken"]).lower()
    )
    assert yaml.safe_load(data["sidecar.container"]) == sidecar["container"]
    steps = yaml.safe_load(data["steps.yaml"])
    assert [step["kind"] for step in steps] == [step["kind"] for step in plugin["spec"]["steps"]]
    for built, declared in zip(steps, plugin["spec"]["steps"], strict=True):
        assert _go_duration(built["defaultTimeout"]) == _go_duration(declared["defaultTimeout"])
        assert built["defaultErrorThreshold"] == declared["defaultErrorThreshold"]


def test_the_sidecar_is_a_valid_container_the_step_plugin_accepts() -> None:
    plugin = load("plugin.yaml")
    assert (plugin["apiVersion"], plugin["kind"]) == (
        "kargo-extended.code.org/v1alpha1",
        "StepPlugin",
    )
    container = plugin["spec"]["sidecar"]["container"]
    # kargo-extended's own checks: a port, requests, limits and a securityContext.
    assert container["ports"]
    assert container["resources"]["requests"]
    assert container["resources"]["limits"]
    assert container["securityContext"]["runAsNonRoot"] is True
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "promotion-agent-test"},
        "spec": {
            "containers": [container],
            "volumes": [{"name": "tmp-data", "emptyDir": {}}],
        },
    }
    kubernetes_validate.validate(pod, "1.37.0", strict=True)
    # Kinds never clash with Kargo's built-ins, and each is one of stepd's.
    env = {item["name"]: item["value"] for item in container["env"]}
    kinds = [step["kind"] for step in plugin["spec"]["steps"]]
    assert all(kind.startswith(env["STEPD_KARGO_KIND_PREFIX"]) for kind in kinds)
    assert "stepd-delete" in kinds
