"""stepd-client: the Python client of stepd.

::

    from stepd_client import DeleteStep, NotFound, StepdClient

``StepdClient`` and ``AsyncStepdClient`` (``client.py``) return ``DeleteResult`` and
``BatchResult`` (``models.py``) and raise the ``StepdError`` hierarchy (``errors.py``);
``RetryPolicy`` (``retry.py``) says how calls are retried.
"""

from __future__ import annotations

from stepd_client.client import AsyncStepdClient, StepdClient
from stepd_client.errors import (
    FAMILIES,
    Conflict,
    FilesystemFailure,
    InternalError,
    InvalidPath,
    InvalidRequest,
    NotFound,
    ProblemError,
    StepdConnectionError,
    StepdError,
    TLSError,
    Unauthorized,
    Unavailable,
    UnexpectedResponse,
    UnsupportedOperation,
)
from stepd_client.models import (
    BatchResult,
    BatchStep,
    DeleteResult,
    DeleteStep,
    StepFailure,
    StepResult,
)
from stepd_client.retry import RetryPolicy

__version__ = "0.1.0"

__all__ = [
    "FAMILIES",
    "AsyncStepdClient",
    "BatchResult",
    "BatchStep",
    "Conflict",
    "DeleteResult",
    "DeleteStep",
    "FilesystemFailure",
    "InternalError",
    "InvalidPath",
    "InvalidRequest",
    "NotFound",
    "ProblemError",
    "RetryPolicy",
    "StepFailure",
    "StepResult",
    "StepdClient",
    "StepdConnectionError",
    "StepdError",
    "TLSError",
    "Unauthorized",
    "Unavailable",
    "UnexpectedResponse",
    "UnsupportedOperation",
]
