"""Step kinds by their ``uses`` name: each kind's config model per API version, and how it
runs. Adding a kind is a module with its run function, a config model per version, and
one entry in ``KINDS``; the batch models and the runner pick it up from here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from app.models import v1, v1alpha1
from app.steps.context import StepContext
from app.steps.delete import run_delete


@dataclass(frozen=True)
class StepKind:
    """One kind of step.

    ``configs`` maps each API version to the pydantic model of its ``config`` (whose
    ``to_internal()`` gives what ``run`` takes); ``run`` returns a dataclass of outputs.
    """

    uses: str
    configs: Mapping[str, type[BaseModel]]
    run: Callable[[StepContext, Any], Any]


DELETE = StepKind(
    uses="delete",
    configs={
        v1.API_VERSION: v1.DeleteConfigV1,
        v1alpha1.API_VERSION: v1alpha1.DeleteConfigV1Alpha1,
    },
    run=run_delete,
)

KINDS: dict[str, StepKind] = {kind.uses: kind for kind in (DELETE,)}
