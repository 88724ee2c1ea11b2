"""Field types shared by the API versions. Changing one changes every version that uses
it, which the frozen-schema tests catch: add a new type instead."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StringConstraints

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
