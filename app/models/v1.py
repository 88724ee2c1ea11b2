"""API version ``v1``: Kargo's delete step configuration since Kargo 1.11. Frozen."""

from __future__ import annotations

from typing import Annotated, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.models import internal
from app.models.common import NonEmptyPath, WorkspaceName

API_VERSION: Final = "v1"
MAX_PATHS = 1000


class DeleteRequestV1(BaseModel):
    """Delete one path, or several paths or glob patterns (Kargo >= 1.11)."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={
            "examples": [
                {"apiVersion": "v1", "path": "out"},
                {
                    "apiVersion": "v1",
                    "workspace": "promo-42",
                    "paths": ["charts/*/values-dev.yaml", "tmp/**"],
                    "pathsAreGlobs": True,
                    "strict": True,
                },
            ]
        },
    )

    apiVersion: Literal["v1"] = API_VERSION
    workspace: WorkspaceName | None = None
    path: NonEmptyPath | None = Field(
        None, description="One path relative to the workspace. Exactly one of `path`, `paths`."
    )
    paths: Annotated[list[NonEmptyPath], Field(min_length=1, max_length=MAX_PATHS)] | None = Field(
        None, description="Paths (or patterns) relative to the workspace, at most 1000."
    )
    pathsAreGlobs: bool = Field(
        False, description="Treat entries as doublestar glob patterns (`*`, `?`, `[]`, `{}`, `**`)."
    )
    strict: bool = Field(
        False, description="Fail with 404 `not_found` when an entry or pattern matches nothing."
    )

    @model_validator(mode="after")
    def _exactly_one_target(self) -> DeleteRequestV1:
        if (self.path is None) == (self.paths is None):
            raise ValueError("exactly one of 'path' or 'paths' must be given")
        return self

    def to_internal(self) -> internal.DeleteRequest:
        paths = (self.path,) if self.path is not None else tuple(self.paths or ())
        return internal.DeleteRequest(
            api_version=self.apiVersion,
            workspace=self.workspace,
            config=internal.DeleteConfig(paths=paths, globs=self.pathsAreGlobs, strict=self.strict),
        )


class DeleteResultV1(BaseModel):
    """The outcome of a successful delete step."""

    model_config = ConfigDict(extra="forbid")

    apiVersion: Literal["v1"] = API_VERSION
    kind: Literal["DeleteResult"] = "DeleteResult"
    status: Literal["Succeeded"] = "Succeeded"
    deleted: list[str] = Field(
        description="Entries that existed and are now gone (for globs, each top-most match)."
    )
    absent: list[str] = Field(description="Entries or patterns that matched nothing.")
