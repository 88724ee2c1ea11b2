"""The baseline: a bare FastAPI endpoint returning a constant, served like stepd.

Run as ``python -m bench.bare_app --port N``: the uvicorn options are ``stepd serve``'s own
(``app.cli.uvicorn_options``), so the comparison isolates stepd's own work per request.
"""

from __future__ import annotations

import argparse
import tempfile

import uvicorn
from fastapi import FastAPI

from app.cli import uvicorn_options
from app.settings import Settings

app = FastAPI()
RESULT = {
    "apiVersion": "v1",
    "kind": "DeleteResult",
    "status": "Succeeded",
    "deleted": [],
    "absent": ["gone"],
}


@app.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@app.post("/steps/delete")
def delete() -> dict[str, object]:
    return RESULT


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    port = parser.parse_args().port
    with tempfile.TemporaryDirectory() as root:
        settings = Settings(workspace_root=root, port=port)
        uvicorn.run(app, **uvicorn_options(settings))
