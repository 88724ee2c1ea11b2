"""The versioned delete request: a union selected by ``apiVersion`` (default ``v1``)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Discriminator, Tag

from app.models import v1, v1alpha1
from app.models.v1 import DeleteRequestV1, DeleteResultV1
from app.models.v1alpha1 import DeleteRequestV1Alpha1, DeleteResultV1Alpha1

SUPPORTED_VERSIONS = (v1.API_VERSION, v1alpha1.API_VERSION)


def api_version_tag(body: Any) -> Any:
    """The ``apiVersion`` a request body asks for (default ``v1``): the unions' discriminator."""
    if isinstance(body, dict):
        return body.get("apiVersion", v1.API_VERSION)
    return getattr(body, "apiVersion", v1.API_VERSION)


# What selects a member of a versioned union (delete requests, batch requests).
VERSION_DISCRIMINATOR = Discriminator(
    api_version_tag,
    custom_error_type="unsupported_api_version",
    custom_error_message=f"apiVersion must be one of: {', '.join(SUPPORTED_VERSIONS)}",
)

DeleteRequest = Annotated[
    Annotated[DeleteRequestV1, Tag(v1.API_VERSION)]
    | Annotated[DeleteRequestV1Alpha1, Tag(v1alpha1.API_VERSION)],
    VERSION_DISCRIMINATOR,
]

DeleteResult = DeleteResultV1 | DeleteResultV1Alpha1

_RESULTS: dict[str, type[DeleteResultV1] | type[DeleteResultV1Alpha1]] = {
    v1.API_VERSION: DeleteResultV1,
    v1alpha1.API_VERSION: DeleteResultV1Alpha1,
}


def delete_result(api_version: str, deleted: list[str], absent: list[str]) -> DeleteResult:
    """The result model of ``api_version`` (one of ``SUPPORTED_VERSIONS``)."""
    return _RESULTS[api_version](deleted=deleted, absent=absent)
