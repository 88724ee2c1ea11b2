"""Typed dependencies for the routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from app.observability.record import RequestRecord, current_record
from app.sandbox import Root


def get_root(request: Request) -> Root:
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
