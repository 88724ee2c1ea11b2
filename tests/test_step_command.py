"""``stepd step delete``: one step in a directory, for Kargo's custom steps."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from app.cli import main
from tests.support.snapshot import snapshot


def run(
    capsys: pytest.CaptureFixture[str], *args: str, workdir: Path | None = None
) -> tuple[int, str, str]:
    """``stepd step delete args...`` in this process: exit status, stdout, stderr."""
    extra = ["--workdir", str(workdir)] if workdir is not None else []
    status = main(["step", "delete", *args, *extra])
    out, err = capsys.readouterr()
    return status, out, err


def test_a_delete_writes_its_outputs_to_stdout(
    capsys: pytest.CaptureFixture[str], root_dir: Path
) -> None:
    (root_dir / "out").mkdir()
    (root_dir / "out" / "a.yaml").write_text("a")
    status, out, err = run(capsys, "--config", '{"paths": ["out", "gone"]}', workdir=root_dir)
    assert (status, err) == (0, "")
    assert json.loads(out) == {"deleted": ["out"], "absent": ["gone"]}
    assert not (root_dir / "out").exists()


def test_kargo_output_names_the_output_file(
    capsys: pytest.CaptureFixture[str],
    root_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KARGO_OUTPUT", str(tmp_path / "output"))
    (root_dir / "a.bak").write_text("a")
    config = '{"paths": ["**/*.bak"], "pathsAreGlobs": true}'
    status, out, _ = run(capsys, "--config", config, workdir=root_dir)
    assert (status, out) == (0, "")
    assert json.loads((tmp_path / "output").read_text()) == {"deleted": ["a.bak"], "absent": []}


def test_the_work_dir_is_the_current_directory_by_default(
    capsys: pytest.CaptureFixture[str], root_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (root_dir / "here").write_text("x")
    monkeypatch.chdir(root_dir)
    status, out, _ = run(capsys, "--config", '{"path": "here"}')
    assert status == 0
    assert json.loads(out)["deleted"] == ["here"]


def test_nothing_is_left_in_the_work_dir(
    capsys: pytest.CaptureFixture[str], root_dir: Path
) -> None:
    (root_dir / "big").mkdir()
    for index in range(50):
        (root_dir / "big" / f"{index}.bin").write_bytes(b"x" * 4096)
    (root_dir / "keep").write_text("keep")
    before = snapshot(root_dir)
    status, _, _ = run(capsys, "--config", '{"path": "big"}', workdir=root_dir)
    assert status == 0
    assert snapshot(root_dir) == {k: v for k, v in before.items() if not k.startswith("big")}
    assert sorted(path.name for path in root_dir.iterdir()) == ["keep"]


@pytest.mark.parametrize(
    ("config", "code"),
    [
        ('{"path": "never-there", "strict": true}', "not_found"),
        ('{"path": "../outside/precious.txt"}', "path_outside_workspace"),
        ('{"paths": ["/etc/passwd"]}', "invalid_path"),
        ('{"path": ".stepd"}', "invalid_path"),
        ('{"path": "escape/precious.txt"}', "path_outside_workspace"),
    ],
)
def test_a_failed_step_exits_1_with_one_line(
    capsys: pytest.CaptureFixture[str], root_dir: Path, config: str, code: str
) -> None:
    (root_dir / "escape").symlink_to(root_dir.parent / "outside")
    status, out, err = run(capsys, "--config", config, workdir=root_dir)
    assert (status, out) == (1, "")
    assert err.startswith(f"stepd: {code}: ")
    assert err.count("\n") == 1
    assert (root_dir.parent / "outside" / "precious.txt").read_text() == "keep me"


@pytest.mark.parametrize(
    "config",
    [
        "{path",
        '{"path": "x", "unknown": 1}',
        '{"path": true}',
        '{"apiVersion": "v1", "path": "x"}',
        '{"path": "x", "paths": ["y"]}',
        "[]",
        '{"path": "../x", "strict": "no"}',
    ],
)
def test_a_usage_error_exits_2(
    capsys: pytest.CaptureFixture[str], root_dir: Path, config: str
) -> None:
    (root_dir / "x").write_text("x")
    status, out, err = run(capsys, "--config", config, workdir=root_dir)
    assert (status, out) == (2, "")
    assert err.startswith("stepd: invalid_request: ")
    assert (root_dir / "x").exists()


def test_a_work_dir_that_cannot_be_a_root_exits_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    status, _, err = run(capsys, "--config", '{"path": "x"}', workdir=tmp_path / "missing")
    assert status == 2
    assert "does not exist" in err


def test_a_missing_config_is_argparses_usage_error(root_dir: Path) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["step", "delete", "--workdir", str(root_dir)])
    assert exited.value.code == 2


def test_the_console_script_runs_it(root_dir: Path) -> None:
    (root_dir / "out").mkdir()
    done = subprocess.run(
        [sys.executable, "-m", "app", "step", "delete", "--config", '{"path": "out"}'],
        cwd=root_dir,
        env={k: v for k, v in os.environ.items() if not k.startswith(("STEPD_", "KARGO_"))},
        capture_output=True,
        text=True,
        check=False,
    )
    assert (done.returncode, done.stderr) == (0, "")
    assert json.loads(done.stdout) == {"deleted": ["out"], "absent": []}
    assert list(root_dir.iterdir()) == []
