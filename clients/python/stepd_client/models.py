"""What the client sends and receives, in API version ``v1``.

Steps of a batch are typed (``DeleteStep``). The request bodies are checked here only
for what makes a request at all (types, at least one path, at least one step); whether a
path or a workspace name can be used is the server's call, answered as ``InvalidPath``
the same way for every call. Results ignore fields they do not know, so that a newer
server's additions never break this client.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Final, Literal

from pydantic import BaseModel, ConfigDict, Field

API_VERSION: Final = "v1"


@dataclass(frozen=True)
class DeleteStep:
    """A ``delete`` step of a batch: ``DeleteStep("out")``,
    ``DeleteStep(["charts/*/values-dev.yaml", "tmp/**"], globs=True, name="clean")``.

    ``paths`` is one path or several, relative to the batch's workspace (patterns with
    ``globs``); ``strict`` fails the step when an entry matches nothing; ``name`` is the
    step's name in results (default ``step-<index>``); ``continue_on_error`` lets the
    batch go on when this step fails.
    """

    paths: str | Sequence[str]
    globs: bool = False
    strict: bool = False
    name: str | None = None
    continue_on_error: bool = False

    uses: ClassVar[str] = "delete"

    def wire(self) -> dict[str, Any]:
        """The step as the batch request's JSON has it."""
        paths: Any = self.paths  # neither a path nor paths: the request check names it
        if isinstance(self.paths, str):
            paths = [self.paths]
        elif isinstance(self.paths, Sequence):
            paths = list(self.paths)
        step: dict[str, Any] = {
            "uses": self.uses,
            "config": {"paths": paths, "pathsAreGlobs": self.globs, "strict": self.strict},
            "continueOnError": self.continue_on_error,
        }
        if self.name is not None:
            step["as"] = self.name
        return step


# Every kind of step a batch can hold (one today).
BatchStep = DeleteStep


class _Wire(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class DeleteConfigBody(_Wire):
    """A delete step's configuration, as sent."""

    paths: list[str] = Field(min_length=1)
    pathsAreGlobs: bool = False
    strict: bool = False


class DeleteBody(DeleteConfigBody):
    """The body of ``POST /steps/delete``."""

    apiVersion: Literal["v1"] = API_VERSION
    workspace: str | None = None


class StepBody(_Wire):
    """One step of a batch, as sent."""

    model_config = ConfigDict(populate_by_name=True)

    uses: Literal["delete"]
    as_: str | None = Field(None, alias="as")
    config: DeleteConfigBody
    continueOnError: bool = False


class BatchBody(_Wire):
    """The body of ``POST /steps/batch``."""

    apiVersion: Literal["v1"] = API_VERSION
    workspace: str | None = None
    atomic: bool = False
    steps: list[StepBody] = Field(min_length=1)


class _Result(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)


class DeleteResult(_Result):
    """What a delete step did: ``deleted`` entries (for globs, each top-most match) and
    ``absent`` entries or patterns that matched nothing."""

    status: str = "Succeeded"
    deleted: list[str]
    absent: list[str]


class StepFailure(_Result):
    """Why a step failed: the problem ``code`` it would have answered alone, and a detail."""

    code: str
    detail: str


class StepResult(_Result):
    """One step of a batch: ``Succeeded``, ``Failed``, ``Errored`` or ``Skipped``."""

    name: str = Field(alias="as")
    uses: str
    status: str
    deleted: list[str] = Field(default_factory=list)
    absent: list[str] = Field(default_factory=list)
    error: StepFailure | None = None


class BatchResult(_Result):
    """A batch that succeeded (steps with ``continue_on_error`` may have failed)."""

    status: str = "Succeeded"
    rolled_back: bool = Field(False, alias="rolledBack")
    steps: list[StepResult]

    def step(self, name: str) -> StepResult:
        """The result of the step called ``name``; ``KeyError`` if there is none."""
        for step in self.steps:
            if step.name == name:
                return step
        raise KeyError(name)
