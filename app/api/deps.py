"""Typed dependencies for the routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from app.sandbox import Root


def get_root(request: Request) -> Root:
    """The workspace root the application opened at start-up."""
    root: Root = request.app.state.root
    return root


WorkspaceRoot = Annotated[Root, Depends(get_root)]
