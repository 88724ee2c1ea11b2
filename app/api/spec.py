"""The committed API description: ``openapi/openapi.json`` and the frozen version schemas.

``python -m app.api.spec openapi`` rewrites ``openapi.json`` (what ``make openapi`` runs);
``python -m app.api.spec freeze VERSION`` writes a version's schemas that are not yet
frozen, and refuses to run when a frozen one would change: a released schema never does.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from app.models import v1, v1alpha1

SPEC_DIR = Path(__file__).resolve().parents[2] / "openapi"

# Each released version's models, by the file name its schema is frozen under.
VERSIONED_MODELS: dict[str, dict[str, type[BaseModel]]] = {
    v1alpha1.API_VERSION: {
        "DeleteRequest": v1alpha1.DeleteRequestV1Alpha1,
        "DeleteResult": v1alpha1.DeleteResultV1Alpha1,
        "DeleteConfig": v1alpha1.DeleteConfigV1Alpha1,
    },
    v1.API_VERSION: {
        "DeleteRequest": v1.DeleteRequestV1,
        "DeleteResult": v1.DeleteResultV1,
        "DeleteConfig": v1.DeleteConfigV1,
    },
}


def render(document: Any) -> str:
    """The canonical text form of a JSON document we commit."""
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def openapi_document() -> dict[str, Any]:
    """The OpenAPI document of the application as configured by default."""
    from app.main import create_app
    from app.settings import Settings

    with tempfile.TemporaryDirectory() as root:
        return create_app(Settings(workspace_root=Path(root))).openapi()


def version_schemas(version: str) -> dict[str, str]:
    """Rendered JSON schemas of ``version``'s models, by relative file name."""
    return {
        f"schemas/{version}/{name}.json": render(model.model_json_schema(mode="validation"))
        if name.endswith(("Request", "Config"))
        else render(model.model_json_schema(mode="serialization"))
        for name, model in VERSIONED_MODELS[version].items()
    }


def _read(name: str) -> str:
    return (SPEC_DIR / name).read_text()


def main(argv: list[str]) -> int:
    if argv == ["openapi"]:
        (SPEC_DIR / "openapi.json").write_text(render(openapi_document()))
        return 0
    if len(argv) == 2 and argv[0] == "freeze":
        schemas = version_schemas(argv[1])
        changed = [n for n, t in schemas.items() if (SPEC_DIR / n).exists() and _read(n) != t]
        if changed:
            print(f"{', '.join(changed)}: released schemas never change", file=sys.stderr)
            return 1
        for name, text in schemas.items():
            target = SPEC_DIR / name
            if not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(text)
        return 0
    print("usage: python -m app.api.spec openapi | freeze VERSION", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
