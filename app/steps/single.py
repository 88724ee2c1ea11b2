"""One step run on its own, as Kargo runs a step: what Kargo's two doors into stepd share.

The step plugin route and the ``stepd step`` command both get a step kind, a ``config``
object (Kargo's, so the current API version's config model, without ``apiVersion``) and
a directory to run in. ``parse_config`` checks the config with the kind's model,
``run_alone`` runs the step through the batch runner as a batch of one, ``outputs`` are
its outputs as a JSON object, and ``summary`` says in one line why a step did not
succeed: its problem code, then the detail.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, is_dataclass
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from app.models import internal, v1
from app.sandbox import Root
from app.sandbox.errors import SandboxError
from app.sandbox.glob import Budget
from app.steps.batch import StepResult, run_batch, status_of
from app.steps.errors import InvalidConfig, StepError
from app.steps.purger import Purger
from app.steps.registry import StepKind
from app.steps.stop import NEVER, Stop

API_VERSION = v1.API_VERSION


def _codes(cls: type[SandboxError]) -> frozenset[str]:
    return frozenset({cls.code}).union(*(_codes(sub) for sub in cls.__subclasses__()))


# The codes a config model gives a target the sandbox refuses before anything runs.
REFUSED_CODES = _codes(SandboxError)


def parse_config(kind: StepKind, config: Any) -> Any:
    """``config`` checked by ``kind``'s model of the current version: what the kind runs.

    Raises ``InvalidConfig``, naming every field that does not fit.
    """
    try:
        parsed: Any = kind.configs[API_VERSION].model_validate(config)
    except ValidationError as exc:
        raise _invalid(exc.errors()) from None
    return parsed.to_internal()


def run_alone(
    root: Root,
    purger: Purger,
    kind: StepKind,
    config: Any,
    workspace: str | None,
    alias: str,
    stop: Stop = NEVER,
    budget: Budget | None = None,
) -> StepResult:
    """Run one step of ``kind`` (``config`` from ``parse_config``) in ``workspace``;
    ``stop`` and ``budget`` as for ``run_batch``.

    Never raises for what a step can meet: a failure to even start (a staging area left
    unrecovered) is the step's result too.
    """
    step = internal.BatchStep(alias=alias, uses=kind.uses, config=config)
    request = internal.BatchRequest(API_VERSION, workspace, atomic=False, steps=(step,))
    try:
        return run_batch(root, purger, request, stop, budget).steps[0]
    except (SandboxError, StepError) as exc:
        return StepResult(alias, kind.uses, status_of(exc), error=exc)


def outputs(output: Any) -> dict[str, Any]:
    """A step kind's outcome (a dataclass) as the JSON object of its outputs."""
    if is_dataclass(output) and not isinstance(output, type):
        return asdict(output)
    return {}


def summary(exc: Exception) -> str:
    """Why a step did not succeed, in one line: ``<code>: <detail>``."""
    if isinstance(exc, SandboxError | StepError):
        detail = exc.message
        if isinstance(exc, SandboxError) and exc.path and repr(exc.path) not in detail:
            detail = f"{detail}: {exc.path!r}"
        return f"{exc.code}: {detail}"
    return f"internal: unexpected {type(exc).__name__}, logged by stepd"


def _invalid(errors: Sequence[ErrorDetails]) -> InvalidConfig:
    refused = [error["type"] for error in errors if error["type"] in REFUSED_CODES]
    detail = "; ".join(_describe(error) for error in errors)
    if errors and len(refused) == len(errors):
        return InvalidConfig(refused[0], detail, refused=True)
    return InvalidConfig("invalid_request", detail)


def _describe(error: ErrorDetails) -> str:
    field = "config"
    for part in error["loc"]:
        field += f"[{part}]" if isinstance(part, int) else f".{part}"
    value = error.get("input")
    shown = f" {value!r}" if isinstance(value, str) else ""
    return f"{field}{shown}: {error['msg']}"
