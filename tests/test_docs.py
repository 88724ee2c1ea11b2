"""The documents say what the code does: the reference tables list what the code defines
(every problem code with its status, every setting with its option, variable and default, every
module of app/), every relative link leads somewhere, and the README's quick start,
run word for word against a real server, answers what it shows."""

from __future__ import annotations

import itertools
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from pydantic import TypeAdapter

from app.api.problems import CATALOG
from app.settings import Settings, option, state_dir, variable
from tests.support.server import serve

TOP = Path(__file__).parent.parent
README = TOP / "README.md"
DOCS = sorted((TOP / "docs").glob("*.md"))
_CODE = re.compile(r"`([^`]+)`")


def table_after(document: Path, heading: str) -> list[list[str]]:
    """The cells of the first table after the line ``heading``, header and rule left out."""
    lines = document.read_text().splitlines()
    start = lines.index(heading)
    rows: list[list[str]] = []
    for line in lines[start + 1 :]:
        if line.startswith("|"):
            rows.append([cell.strip() for cell in line.strip("|").split("|")])
        elif rows:
            break
    return rows[2:]


def section(document: Path, heading: str) -> str:
    """The text under ``heading`` (a ``## `` line), up to the next heading of that level."""
    text = document.read_text()
    start = text.index(f"\n{heading}\n") + 1
    end = text.find("\n## ", start + len(heading))
    return text[start : end if end != -1 else len(text)]


def test_the_error_table_lists_exactly_the_catalog() -> None:
    documented: dict[str, int] = {}
    for status, codes, _ in table_after(TOP / "docs" / "API.md", "### Errors"):
        for code in _CODE.findall(codes):
            assert code not in documented, f"{code} is listed twice"
            documented[code] = int(status)
    assert documented == {code: kind.status for code, kind in CATALOG.items()}


def settings_rows() -> list[list[str]]:
    return table_after(TOP / "docs" / "CONFIGURATION.md", "## Settings")


def documented_settings() -> dict[str, str]:
    """Each environment variable of the settings table, with its default column."""
    return {_CODE.findall(variable)[0]: default for _, variable, default, _ in settings_rows()}


def test_the_settings_table_gives_each_option_with_its_variable() -> None:
    documented = {_CODE.findall(variable)[0]: flag for flag, variable, _, _ in settings_rows()}
    assert documented == {variable(name): f"`{option(name)}`" for name in Settings.model_fields}


def test_the_settings_table_lists_every_setting() -> None:
    prefix = Settings.model_config["env_prefix"]
    fields = {prefix + name.upper() for name in Settings.model_fields}
    assert set(documented_settings()) == fields


# Settings whose None default stands for a value worked out at start-up.
COMPUTED_DEFAULTS: dict[str, Any] = {
    "state_dir": state_dir(Settings(), Path("<root>")),
}


def test_the_settings_table_gives_each_default() -> None:
    prefix = Settings.model_config["env_prefix"]
    documented = documented_settings()
    for name, field in Settings.model_fields.items():
        default = documented[prefix + name.upper()]
        if field.default is None and name not in COMPUTED_DEFAULTS:
            assert default.startswith("unset"), (name, default)
            continue
        if field.default == "":
            assert default.startswith("empty"), (name, default)
            continue
        text = _CODE.findall(default)[0]
        expected = COMPUTED_DEFAULTS.get(name, field.default)
        assert TypeAdapter(field.annotation).validate_python(text) == expected, (name, text)


def test_the_layout_names_every_module_and_package_of_app() -> None:
    layout = section(TOP / "docs" / "ARCHITECTURE.md", "## Layout")
    app = TOP / "app"
    names = {path.name for path in app.rglob("*.py") if path.name != "__init__.py"}
    names |= {f"{path.name}/" for path in app.rglob("*") if (path / "__init__.py").is_file()}
    assert {name for name in names if name not in layout} == set()


_FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)
_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
_HEADING = re.compile(r"^#{1,6} (.+)$", re.MULTILINE)


def prose(document: Path) -> str:
    """The document without its code blocks and code spans (where brackets are not links)."""
    return _CODE.sub("", _FENCE.sub("", document.read_text()))


def anchors(document: Path) -> set[str]:
    """The fragments GitHub gives the document's headings."""
    found: set[str] = set()
    for heading in _HEADING.findall(_FENCE.sub("", document.read_text())):
        slug = re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
        candidate, n = slug, 0
        while candidate in found:
            n += 1
            candidate = f"{slug}-{n}"
        found.add(candidate)
    return found


@pytest.mark.parametrize("document", [README, *DOCS], ids=lambda path: path.name)
def test_every_relative_link_leads_to_a_file_and_heading_that_exist(document: Path) -> None:
    broken = []
    for target in _LINK.findall(prose(document)):
        if re.match(r"[a-z]+:", target):
            continue  # http:, https:, mailto:: not ours to check
        path, _, fragment = target.partition("#")
        linked = (document.parent / path).resolve() if path else document
        if not linked.exists() or (
            fragment and linked.suffix == ".md" and fragment not in anchors(linked)
        ):
            broken.append(target)
    assert broken == []


def quick_start() -> list[tuple[str, str]]:
    """The quick start's shell blocks that show their output, each with that output."""
    text = section(README, "## Quick start")
    blocks = re.findall(r"^```(\w*)\n(.*?)^```", text, re.MULTILINE | re.DOTALL)
    return [
        (commands, shown)
        for (kind, commands), (next_kind, shown) in itertools.pairwise(blocks)
        if kind == "sh" and next_kind == "json"
    ]


def values(output: str) -> list[Any]:
    """The JSON documents and plain lines of ``output``, in order, whatever the layout."""
    decoder = json.JSONDecoder()
    found: list[Any] = []
    rest = output.strip()
    while rest:
        if rest.startswith("{"):
            value, end = decoder.raw_decode(rest)
        else:
            value, _, after = rest.partition("\n")
            end = len(rest) - len(after)
        found.append(value)
        rest = rest[end:].strip()
    return found


@pytest.mark.skipif(shutil.which("curl") is None, reason="the quick start uses curl")
def test_the_quick_start_answers_what_it_shows(tmp_path: Path) -> None:
    steps = quick_start()
    assert len(steps) >= 3, "the quick start shows a delete, a strict miss and a batch"
    workspace = tmp_path / "workspace"  # what `make run` serves, beside the commands' cwd
    workspace.mkdir()
    with serve(workspace) as server:
        for commands, shown in steps:
            script = commands.replace("localhost:8080", f"127.0.0.1:{server.port}")
            ran = subprocess.run(
                ["bash", "-euo", "pipefail", "-c", script],
                cwd=tmp_path,
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            assert ran.returncode == 0, (commands, ran.stderr)
            assert values(ran.stdout) == values(shown), commands
    assert not (workspace / "old.yaml").exists()
