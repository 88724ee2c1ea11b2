"""API version ``v1``: Kargo's delete step configuration since Kargo 1.11. Frozen."""

from __future__ import annotations

from typing import Annotated, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.models import internal
from app.models.common import CheckedTarget, NonEmptyPath, WorkspaceName

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
        _check_exactly_one(self.path, self.paths)
        return self

    def to_internal(self) -> internal.DeleteRequest:
        return internal.DeleteRequest(
            api_version=self.apiVersion,
            workspace=self.workspace,
            config=_config(self.path, self.paths, self.pathsAreGlobs, self.strict),
        )


class DeleteConfigV1(BaseModel):
    """A batch step's `delete` config in v1: a delete request without `apiVersion` and
    `workspace` (the batch's own). Targets are checked before any step runs."""

    model_config = ConfigDict(extra="forbid", strict=True)

    # Declared before the targets: their check depends on it.
    pathsAreGlobs: bool = Field(
        False, description="Treat entries as doublestar glob patterns (`*`, `?`, `[]`, `{}`, `**`)."
    )
    path: CheckedTarget | None = Field(
        None, description="One path relative to the workspace. Exactly one of `path`, `paths`."
    )
    paths: Annotated[list[CheckedTarget], Field(min_length=1, max_length=MAX_PATHS)] | None = Field(
        None, description="Paths (or patterns) relative to the workspace, at most 1000."
    )
    strict: bool = Field(
        False, description="Fail with 404 `not_found` when an entry or pattern matches nothing."
    )

    @model_validator(mode="after")
    def _exactly_one_target(self) -> DeleteConfigV1:
        _check_exactly_one(self.path, self.paths)
        return self

    def to_internal(self) -> internal.DeleteConfig:
        return _config(self.path, self.paths, self.pathsAreGlobs, self.strict)


def _check_exactly_one(path: str | None, paths: list[str] | None) -> None:
    if (path is None) == (paths is None):
        raise ValueError("exactly one of 'path' or 'paths' must be given")


def _config(
    path: str | None, paths: list[str] | None, globs: bool, strict: bool
) -> internal.DeleteConfig:
    targets = (path,) if path is not None else tuple(paths or ())
    return internal.DeleteConfig(paths=targets, globs=globs, strict=strict)


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
