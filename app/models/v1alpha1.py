"""API version ``v1alpha1``: Kargo's delete step configuration up to Kargo 1.10. Frozen."""

from __future__ import annotations

from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.models import internal
from app.models.common import CheckedTarget, NonEmptyPath, WorkspaceName

API_VERSION: Final = "v1alpha1"


class DeleteRequestV1Alpha1(BaseModel):
    """Delete one path (Kargo <= 1.10)."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={
            "examples": [{"apiVersion": "v1alpha1", "path": "out/manifests.yaml", "strict": False}]
        },
    )

    apiVersion: Literal["v1alpha1"]
    workspace: WorkspaceName | None = None
    path: NonEmptyPath = Field(description="Path relative to the workspace.")
    strict: bool = Field(False, description="Fail with 404 `not_found` when the path is absent.")

    def to_internal(self) -> internal.DeleteRequest:
        return internal.DeleteRequest(
            api_version=self.apiVersion,
            workspace=self.workspace,
            config=internal.DeleteConfig(paths=(self.path,), strict=self.strict),
        )


class DeleteConfigV1Alpha1(BaseModel):
    """A batch step's `delete` config in v1alpha1: a delete request without `apiVersion` and
    `workspace` (the batch's own). The path is checked before any step runs."""

    model_config = ConfigDict(extra="forbid", strict=True)

    path: CheckedTarget = Field(description="Path relative to the workspace.")
    strict: bool = Field(False, description="Fail with 404 `not_found` when the path is absent.")

    def to_internal(self) -> internal.DeleteConfig:
        return internal.DeleteConfig(paths=(self.path,), strict=self.strict)


class DeleteResultV1Alpha1(BaseModel):
    """The outcome of a successful delete step."""

    model_config = ConfigDict(extra="forbid")

    apiVersion: Literal["v1alpha1"] = API_VERSION
    kind: Literal["DeleteResult"] = "DeleteResult"
    status: Literal["Succeeded"] = "Succeeded"
    deleted: list[str] = Field(description="Entries that existed and are now gone.")
    absent: list[str] = Field(description="Entries that did not exist.")
