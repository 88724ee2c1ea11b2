"""Typed dependencies for the routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from app.sandbox import Root
from app.settings import Settings
from app.steps.staging import Staging


def get_root(request: Request) -> Root:
    """The workspace root the application opened at start-up."""
    root: Root = request.app.state.root
    return root


WorkspaceRoot = Annotated[Root, Depends(get_root)]


def get_staging(request: Request) -> Staging:
    """The root's staging area (recovered at start-up)."""
    staging: Staging = request.app.state.staging
    return staging


def get_settings(request: Request) -> Settings:
    """The settings the application was created with."""
    settings: Settings = request.app.state.settings
    return settings


RootStaging = Annotated[Staging, Depends(get_staging)]
AppSettings = Annotated[Settings, Depends(get_settings)]
