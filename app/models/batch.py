"""The versioned batch request and result.

Each API version has an envelope (``apiVersion``, ``workspace``, ``atomic``, ``steps``)
whose steps are a union on ``uses``: one member per registered step kind, with that
version's config model for the kind (``app.steps.registry``). The envelopes are a union on
``apiVersion`` (default ``v1``), as for ``/steps/delete``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal, Union

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    StringConstraints,
    Tag,
    create_model,
    field_validator,
)

from app.models import internal, v1, v1alpha1
from app.models.common import WorkspaceName
from app.models.delete import VERSION_DISCRIMINATOR
from app.steps.registry import KINDS, StepKind

STEP_ALIAS_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$"

StepAlias = Annotated[
    str,
    StringConstraints(pattern=STEP_ALIAS_PATTERN),
    Field(examples=["clean-out"]),
]

StepStatusWord = Literal["Succeeded", "Failed", "Errored", "Skipped"]


def default_alias(index: int) -> str:
    return f"step-{index}"


class BatchStep(BaseModel):
    """One step; ``uses`` selects its kind and so the model of ``config``."""

    model_config = ConfigDict(extra="forbid", strict=True, populate_by_name=False)

    uses: str
    alias: StepAlias | None = Field(
        None,
        alias="as",
        description="The step's name in results, unique in the batch; default `step-<index>` "
        "(from 0).",
    )
    config: Any
    continueOnError: bool = Field(
        False, description="When this step fails, record it and go on with the next one."
    )


class BatchRequestBase(BaseModel):
    """Steps run in order in one workspace; `atomic`: all or nothing."""

    model_config = ConfigDict(extra="forbid", strict=True)

    apiVersion: str
    workspace: WorkspaceName | None = None
    atomic: bool = Field(
        False,
        description="If the batch fails, undo every step that ran: the workspace is left "
        "exactly as before the request.",
    )
    steps: list[Any]

    @field_validator("steps", check_fields=False)
    @classmethod
    def _unique_aliases(cls, steps: list[BatchStep]) -> list[BatchStep]:
        first: dict[str, int] = {}
        for index, step in enumerate(steps):
            alias = step.alias or default_alias(index)
            if alias in first:
                raise ValueError(
                    f"steps[{index}].as {alias!r} is already the name of steps[{first[alias]}]"
                )
            first[alias] = index
        return steps

    def to_internal(self) -> internal.BatchRequest:
        return internal.BatchRequest(
            api_version=self.apiVersion,
            workspace=self.workspace,
            atomic=self.atomic,
            steps=tuple(
                internal.BatchStep(
                    alias=step.alias or default_alias(index),
                    uses=step.uses,
                    config=step.config.to_internal(),
                    continue_on_error=step.continueOnError,
                )
                for index, step in enumerate(self.steps)
            ),
        )


def _uses(step: Any) -> Any:
    return step.get("uses") if isinstance(step, dict) else getattr(step, "uses", None)


def _step_model(version: str, kind: StepKind, suffix: str) -> type[BatchStep]:
    return create_model(
        f"{kind.uses.capitalize()}Step{suffix}",
        __base__=BatchStep,
        __doc__=f"A `{kind.uses}` step; `config` as in {version}.",
        uses=(str, Field(json_schema_extra={"const": kind.uses})),
        config=(kind.configs[version], ...),
    )


def _request_model(version: str, suffix: str, default: bool) -> type[BatchRequestBase]:
    members = tuple(
        Annotated[_step_model(version, kind, suffix), Tag(kind.uses)] for kind in KINDS.values()
    )
    union: Any = Union.__getitem__(members)
    step: Any = Annotated[
        union,
        Discriminator(
            _uses,
            custom_error_type="unknown_step",
            custom_error_message=f"uses must be one of: {', '.join(KINDS)}",
        ),
    ]
    api_version: Any = (Literal[version], version) if default else (Literal[version], ...)
    return create_model(
        f"BatchRequest{suffix}",
        __base__=BatchRequestBase,
        __doc__=BatchRequestBase.__doc__,
        apiVersion=api_version,
        steps=(list[step], Field(min_length=1, description="The steps, run in order.")),
    )


BatchRequestV1 = _request_model(v1.API_VERSION, "V1", default=True)
BatchRequestV1Alpha1 = _request_model(v1alpha1.API_VERSION, "V1Alpha1", default=False)


if TYPE_CHECKING:
    # The envelopes are built at run time; to a type checker each is a BatchRequestBase.
    BatchRequest = BatchRequestBase
else:
    BatchRequest = Annotated[
        Annotated[BatchRequestV1, Tag(v1.API_VERSION)]
        | Annotated[BatchRequestV1Alpha1, Tag(v1alpha1.API_VERSION)],
        VERSION_DISCRIMINATOR,
    ]


class StepFailure(BaseModel):
    """Why a step failed: the problem `code` it would have answered alone, and a detail."""

    code: str
    detail: str


class BatchStepResult(BaseModel):
    """One step's result. `deleted`/`absent` are a `delete` step's outputs: what it deleted,
    even when it failed partway (then `error` says why it stopped), and what matched
    nothing; empty when it was skipped or failed before deleting. `error` is set when it is
    `Failed` or `Errored`."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    alias: str = Field(alias="as")
    uses: str
    status: StepStatusWord
    deleted: list[str] = Field(default_factory=list)
    absent: list[str] = Field(default_factory=list)
    error: StepFailure | None = None


class BatchResultV1(BaseModel):
    """The outcome of a batch that succeeded (steps with `continueOnError` may have failed)."""

    model_config = ConfigDict(extra="forbid")

    apiVersion: Literal["v1"] = v1.API_VERSION
    kind: Literal["BatchResult"] = "BatchResult"
    status: Literal["Succeeded"] = "Succeeded"
    rolledBack: Literal[False] = False
    steps: list[BatchStepResult]


class BatchResultV1Alpha1(BatchResultV1):
    """The outcome of a batch that succeeded, in v1alpha1."""

    apiVersion: Literal["v1alpha1"] = v1alpha1.API_VERSION  # type: ignore[assignment]


BatchResult = BatchResultV1 | BatchResultV1Alpha1

_RESULTS: dict[str, type[BatchResultV1]] = {
    v1.API_VERSION: BatchResultV1,
    v1alpha1.API_VERSION: BatchResultV1Alpha1,
}


def batch_result(api_version: str, steps: list[BatchStepResult]) -> BatchResultV1:
    """The result model of ``api_version``."""
    return _RESULTS[api_version](steps=steps)
