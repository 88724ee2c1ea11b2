"""Smoke test: a real ``python -m app serve`` answers the basic delete examples."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.support.server import serve


def test_the_acceptance_examples_against_a_real_server(root_dir: Path) -> None:
    with serve(root_dir) as server:
        base = server.base_url
        absent = httpx.post(f"{base}/steps/delete", json={"path": "gone"}, timeout=10)
        assert absent.status_code == 200
        assert absent.json() == {
            "apiVersion": "v1",
            "kind": "DeleteResult",
            "status": "Succeeded",
            "deleted": [],
            "absent": ["gone"],
        }

        strict = httpx.post(
            f"{base}/steps/delete", json={"path": "gone", "strict": True}, timeout=10
        )
        assert strict.status_code == 404
        assert strict.headers["content-type"] == "application/problem+json"
        assert strict.json()["code"] == "not_found"

        (root_dir / "out").mkdir()
        deleted = httpx.post(f"{base}/steps/delete", json={"path": "out"}, timeout=10)
        assert deleted.json()["deleted"] == ["out"]
        assert not (root_dir / "out").exists()
        assert httpx.get(f"{base}/readyz", timeout=10).status_code == 200
