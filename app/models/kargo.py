"""The wire types of Kargo's step plugin protocol (kargo-extended's ``StepPlugin``).

The agent of a promotion ``POST``s a ``StepExecuteRequest`` to
``/api/v1/step.execute`` and reads a ``StepExecuteResponse``. The request is Kargo's to
shape, so it is read leniently: every field of ``context`` may be absent and fields
stepd does not know are ignored (Kargo adds some). Only ``step.kind`` is required.
The step's ``config`` is any JSON object here: the step kind's own model checks it, so
that a config that does not fit is the step's ``Failed`` answer, not a malformed request.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

# Kargo's step statuses: every answer carries one.
StepStatusWord = Literal["Succeeded", "Failed", "Errored", "Running", "Skipped", "Aborted"]


class StepExecuteContext(BaseModel):
    """What Kargo knows of the promotion; stepd reads `workDir`, `promotionUID` and
    `alias`, and accepts any other field."""

    model_config = ConfigDict(extra="ignore")

    workDir: str | None = Field(
        None,
        description="Where the step runs: the workspace root or a directory beneath it "
        "(absolute, as Kargo's agent sees it). Absent: the root itself.",
        examples=["/workspace"],
    )
    promotionUID: str | None = Field(
        None,
        description="The Promotion's UID: with `step.alias` and the config, what a repeated "
        "request is recognised by. Absent: nothing is replayed.",
    )
    alias: str | None = Field(None, description="The step's alias, when `step.alias` is absent.")
    config: dict[str, Any] | None = Field(
        None, description="The step's config, when `step.config` is absent."
    )
    project: Any = None
    stage: Any = None
    promotion: Any = None
    promotionActor: Any = None
    uiBaseURL: Any = None
    sharedState: Any = None
    freightRequests: Any = None
    freight: Any = None
    targetFreightRef: Any = None


class StepExecuteStep(BaseModel):
    """The step to run."""

    model_config = ConfigDict(extra="ignore")

    kind: str = Field(
        description="stepd's step kind with the configured prefix: `stepd-delete`.",
        examples=["stepd-delete"],
    )
    alias: str | None = Field(None, description="The step's alias in the promotion.")
    config: dict[str, Any] | None = Field(
        None,
        description="The step's config, expressions already evaluated: for `stepd-delete`, "
        "the v1 delete config (`path` or `paths`, `pathsAreGlobs`, `strict`).",
    )


class StepExecuteRequest(BaseModel):
    """A Kargo agent's request to run one step."""

    model_config = ConfigDict(extra="ignore")

    context: StepExecuteContext = Field(default_factory=StepExecuteContext)
    step: StepExecuteStep


class StepExecuteResponse(BaseModel):
    """A step's answer, always with HTTP 200: `Succeeded` with `output`; `Failed` with a
    `message` (final); `Errored` with a `message` (retried within the step's error
    threshold, unless `terminal`); `Running` with `retryAfter` (asked again later)."""

    model_config = ConfigDict(extra="forbid")

    status: StepStatusWord
    message: str | None = Field(
        None, description="Why the step did not succeed: its problem code, then the detail."
    )
    output: dict[str, Any] | None = Field(
        None, description="The step's outputs; Kargo keeps them as `outputs.<alias>`."
    )
    retryAfter: str | None = Field(
        None,
        description="With `Running`: when to ask again, as a Go duration.",
        examples=["5s"],
    )
    terminal: bool | None = Field(
        None, description="With `Errored`: a bug, which no retry can fix."
    )
