"""Typed dependencies for the routes.

All ``async def``: they only read the application's state, and FastAPI would run a plain
``def`` dependency in a worker thread of its own, a thread hop per dependency per request.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from app.api.pool import Pool
from app.idempotency.deferred import DeferredStore
from app.observability.record import RequestRecord, current_record
from app.sandbox import Root
from app.settings import Settings
from app.steps.purger import Purger
from app.steps.staging import Staging


async def get_root(request: Request) -> Root:
    """The workspace root the application opened at start-up."""
    root: Root = request.app.state.root
    return root


WorkspaceRoot = Annotated[Root, Depends(get_root)]


async def get_request_record() -> RequestRecord:
    """The record of this request, opened by the request observer."""
    record = current_record()
    if record is None:
        raise RuntimeError("no request record: the request observer is not installed")
    return record


CurrentRequest = Annotated[RequestRecord, Depends(get_request_record)]


async def get_staging(request: Request) -> Staging:
    """The root's staging area (recovered before the first step runs)."""
    staging: Staging = request.app.state.staging
    return staging


async def get_purger(request: Request) -> Purger:
    """The purger of the root's trash (started once the trash exists)."""
    purger: Purger = request.app.state.purger
    return purger


async def get_idempotency(request: Request) -> DeferredStore:
    """The Idempotency-Key records, opened when first needed."""
    store: DeferredStore = request.app.state.idempotency
    return store


async def get_settings(request: Request) -> Settings:
    """The settings the application was created with."""
    settings: Settings = request.app.state.settings
    return settings


RootStaging = Annotated[Staging, Depends(get_staging)]
TrashPurger = Annotated[Purger, Depends(get_purger)]
AppSettings = Annotated[Settings, Depends(get_settings)]
IdempotencyRecords = Annotated[DeferredStore, Depends(get_idempotency)]


async def get_step_pool(request: Request) -> Pool:
    """The threads step work runs on."""
    pool: Pool = request.app.state.step_pool
    return pool


async def get_probe_pool(request: Request) -> Pool:
    """The threads readiness is checked on, apart from step work."""
    pool: Pool = request.app.state.probe_pool
    return pool


StepPool = Annotated[Pool, Depends(get_step_pool)]
ProbePool = Annotated[Pool, Depends(get_probe_pool)]


@dataclass(frozen=True)
class StepServices:
    """What a step route uses, as one dependency: FastAPI resolves each dependency of a
    route on every request, and one costs less than five."""

    root: Root
    purger: Purger
    settings: Settings
    pool: Pool
    record: RequestRecord


async def get_step_services(request: Request) -> StepServices:
    """The workspace root, purger, settings, step pool and this request's record."""
    state = request.app.state
    return StepServices(
        state.root, state.purger, state.settings, state.step_pool, await get_request_record()
    )


StepRoute = Annotated[StepServices, Depends(get_step_services)]
