"""examples/kargo-custom-step: the CustomPromotionStep's command, run as Kargo runs it.

The step's ``config`` is evaluated from the example Stage as Kargo evaluates step config;
the command's template is rendered with expr-lang (its Go implementation, through the
``golem`` binding) against that ``config`` and a ``ctx``; the resulting argv runs in a
temp work dir as UID 65532, the user the Akuity Platform runs custom steps as, with
``$KARGO_OUTPUT`` naming the output file.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.examples.agent import kargo_context
from tests.examples.kargo import evaluate_config, render_string

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "kargo-custom-step"
STEP_USER = 65532
CHECKOUT = {
    "out/charts/old-service/Chart.yaml": "name: old-service\n",
    "out/charts/web/values.yaml": "replicas: 2\n",
    "out/charts/web/values.yaml.bak": "replicas: 1\n",
    "out/README.md.bak": "old\n",
}


@pytest.fixture(scope="module")
def documents() -> dict[str, dict[str, Any]]:
    loaded = yaml.safe_load_all((EXAMPLE / "custom-promotion-step.yaml").read_text())
    return {document["kind"]: document for document in loaded}


def step_config(documents: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The example Stage's ``stepd-delete`` config, evaluated as Kargo evaluates it."""
    steps = documents["Stage"]["spec"]["promotionTemplate"]["spec"]["steps"]
    (step,) = [step for step in steps if step["uses"] == "stepd-delete"]
    config: dict[str, Any] = evaluate_config(step["config"], {"ctx": ctx(), "vars": {}})
    return config


def ctx() -> dict[str, Any]:
    context = kargo_context("test", "test.01j2m3n4p5")
    context["meta"]["step"] = {"alias": "clean"}
    return context


def argv(documents: dict[str, dict[str, Any]], config: dict[str, Any]) -> list[str]:
    """The command with each template rendered against ``config`` and ``ctx``."""
    command = documents["CustomPromotionStep"]["spec"]["command"]
    return [render_string(part, {"config": config, "ctx": ctx()}) for part in command]


@pytest.fixture(scope="module")
def step_path() -> Iterator[str]:
    """A ``PATH`` on which UID 65532 finds ``stepd``: the virtualenv's, or, where its
    interpreter is out of that user's reach (a home directory of 0700), a launcher that
    runs this checkout with the system's Python of the same version and the
    virtualenv's packages."""
    venv_bin = Path(sys.executable).parent
    system_path = "/usr/bin:/bin"
    try:
        usable = _as_step_user([str(venv_bin / "python"), "-c", ""], Path("/"), system_path)
    except PermissionError:
        usable = None
    if usable is not None and usable.returncode == 0:
        yield f"{venv_bin}:{system_path}"
        return
    python = shutil.which(
        f"python{sys.version_info.major}.{sys.version_info.minor}", path=system_path
    )
    if python is None:
        pytest.skip(f"no Python UID {STEP_USER} may run: {sys.executable} is out of its reach")
    with tempfile.TemporaryDirectory() as launcher:
        os.chmod(launcher, 0o755)
        packages = os.pathsep.join([str(EXAMPLE.parents[1]), sysconfig.get_paths()["purelib"]])
        script = Path(launcher) / "stepd"
        script.write_text(f'#!/bin/sh\nPYTHONPATH={packages} exec {python} -m app "$@"\n')
        script.chmod(0o755)
        yield f"{launcher}:{system_path}"


@pytest.fixture
def work_dir() -> Iterator[Path]:
    """A promotion's work dir with a checkout, owned by the step's user, and a root-owned
    directory that user cannot change. Under the system's temp dir: the test's own temp
    dirs are 0700, which that user could not enter."""
    with tempfile.TemporaryDirectory() as top:
        os.chmod(top, 0o755)
        work = Path(top) / "promotion"
        for name, text in CHECKOUT.items():
            (work / name).parent.mkdir(parents=True, exist_ok=True)
            (work / name).write_text(text)
        for path in [work, *work.rglob("*")]:
            os.chown(path, STEP_USER, STEP_USER)
        (work / "locked").mkdir()
        (work / "locked" / "file").write_text("root's")
        yield work


def run_step(command: list[str], work: Path, path: str) -> tuple[int, str, str, str]:
    """``command`` in ``work`` as UID/GID 65532 with an empty ``$KARGO_OUTPUT`` file, as
    the platform's executor runs it: exit status, stdout, stderr, the output file."""
    output = work.parent / "executor" / "output"
    output.parent.mkdir(exist_ok=True)
    output.touch()
    os.chown(output.parent, STEP_USER, STEP_USER)
    os.chown(output, STEP_USER, STEP_USER)
    done = _as_step_user(command, work, path, {"KARGO_OUTPUT": str(output)})
    return done.returncode, done.stdout, done.stderr, output.read_text()


def _as_step_user(
    command: list[str], cwd: Path, path: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command,
        cwd=cwd,
        env={"PATH": path, "PYTHONDONTWRITEBYTECODE": "1", **(env or {})},
        user=STEP_USER,
        group=STEP_USER,
        extra_groups=[],
        capture_output=True,
        text=True,
        check=False,
    )


def test_the_step_deletes_and_writes_json_outputs(
    documents: dict[str, dict[str, Any]], work_dir: Path, step_path: str
) -> None:
    spec = documents["CustomPromotionStep"]["spec"]
    assert spec["output"]["source"] == {"type": "Pipe", "format": "JSON"}
    command = argv(documents, step_config(documents))
    assert command[:4] == ["stepd", "step", "delete", "--config"]
    assert json.loads(command[4]) == {
        "paths": ["out/charts/old-service", "out/**/*.bak"],
        "pathsAreGlobs": True,
    }

    status, out, err, output = run_step(command, work_dir, step_path)

    assert (status, out, err) == (0, "", "")
    outputs = json.loads(output)
    assert sorted(outputs["deleted"]) == [
        "out/README.md.bak",
        "out/charts/old-service",
        "out/charts/web/values.yaml.bak",
    ]
    assert outputs["absent"] == []
    left = sorted(str(path.relative_to(work_dir)) for path in work_dir.rglob("*"))
    assert left == [
        "locked",
        "locked/file",
        "out",
        "out/charts",
        "out/charts/web",
        "out/charts/web/values.yaml",
    ]


@pytest.mark.parametrize(
    ("config", "expected_status", "code"),
    [
        ({"path": "out/never-there", "strict": True}, 1, "not_found"),
        ({"path": "../outside"}, 1, "path_outside_workspace"),
        ({"path": "locked/file"}, 1, "permission_denied"),
        ({"path": "out", "recursive": True}, 2, "invalid_request"),
        ({"path": ["out"]}, 2, "invalid_request"),
    ],
    ids=["strict", "outside", "not-the-users", "unknown-field", "wrong-type"],
)
def test_a_step_that_cannot_succeed_exits_non_zero_with_one_line(
    documents: dict[str, dict[str, Any]],
    work_dir: Path,
    step_path: str,
    config: dict[str, Any],
    expected_status: int,
    code: str,
) -> None:
    before = sorted(work_dir.rglob("*"))

    status, out, err, output = run_step(argv(documents, config), work_dir, step_path)

    assert (status, out, output) == (expected_status, "", "")
    assert err.startswith(f"stepd: {code}: ")
    assert err.count("\n") == 1
    assert sorted(work_dir.rglob("*")) == before
