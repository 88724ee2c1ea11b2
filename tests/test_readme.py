"""The README's reference tables say what the code defines: every problem code with its
status, every setting with its environment variable and default."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter

from app.api.problems import CATALOG
from app.settings import Settings, state_dir

README = Path(__file__).parent.parent / "README.md"
_CODE = re.compile(r"`([^`]+)`")


def table_after(heading: str) -> list[list[str]]:
    """The cells of the first table after the line ``heading``, header and rule left out."""
    lines = README.read_text().splitlines()
    start = lines.index(heading)
    rows: list[list[str]] = []
    for line in lines[start + 1 :]:
        if line.startswith("|"):
            rows.append([cell.strip() for cell in line.strip("|").split("|")])
        elif rows:
            break
    return rows[2:]


def test_the_error_table_lists_exactly_the_catalog() -> None:
    documented: dict[str, int] = {}
    for status, codes, _ in table_after("### Errors"):
        for code in _CODE.findall(codes):
            assert code not in documented, f"{code} is listed twice"
            documented[code] = int(status)
    assert documented == {code: kind.status for code, kind in CATALOG.items()}


def documented_settings() -> dict[str, str]:
    """Each environment variable of the settings table, with its default column."""
    return {
        _CODE.findall(variable)[0]: default for _, variable, default in table_after("## Running")
    }


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
        text = _CODE.findall(default)[0]
        expected = COMPUTED_DEFAULTS.get(name, field.default)
        assert TypeAdapter(field.annotation).validate_python(text) == expected, (name, text)


def test_the_layout_names_every_module_and_package_of_app() -> None:
    text = README.read_text()
    layout = text[text.index("## Layout") : text.index("Arrows point one way")]
    app = README.parent / "app"
    names = {path.name for path in app.rglob("*.py") if path.name != "__init__.py"}
    names |= {f"{path.name}/" for path in app.rglob("*") if (path / "__init__.py").is_file()}
    assert {name for name in names if name not in layout} == set()
