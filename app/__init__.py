"""stepd: sandboxed, idempotent file steps for GitOps promotion pipelines, over HTTP."""

from __future__ import annotations

__version__ = "0.1.0"
