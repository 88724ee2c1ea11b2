"""Field types shared by the API versions. Changing one changes every version that uses
it, which the frozen-schema tests catch: add a new type instead."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field, StringConstraints, ValidationInfo
from pydantic_core import PydanticCustomError

from app.sandbox.errors import SandboxError
from app.sandbox.glob import compile_patterns
from app.sandbox.paths import split

WORKSPACE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"

WorkspaceName = Annotated[
    str,
    StringConstraints(pattern=WORKSPACE_PATTERN),
    Field(
        description="One path segment naming the directory `<root>/<workspace>`; "
        "absent means the workspace root itself.",
        examples=["promo-42"],
    ),
]

NonEmptyPath = Annotated[str, StringConstraints(min_length=1)]


def _check_target(value: str, info: ValidationInfo) -> str:
    """Refuse, before anything runs, a target that can never name an entry in a workspace.

    Lexical only (absolute, NUL, the root itself, ``..`` climbing out, a glob that cannot
    be parsed): symlinks and mounts can only be judged when the step runs. Globs are
    checked as globs when an earlier-declared ``pathsAreGlobs`` field says so.
    """
    try:
        if info.data.get("pathsAreGlobs"):
            compile_patterns([value])
        else:
            split(value)
    except SandboxError as exc:
        raise PydanticCustomError(exc.code, exc.message) from None
    return value


CheckedTarget = Annotated[str, StringConstraints(min_length=1), AfterValidator(_check_target)]
