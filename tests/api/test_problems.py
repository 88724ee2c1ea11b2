"""Every error is RFC 9457 problem+json with a stable ``code``, never a traceback."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.api.problems import CATALOG
from app.main import create_app
from app.settings import Settings
from tests.support.mounts import bind_mount, remount, skip_if_not_permitted
from tests.support.problems import assert_problem
from tests.support.snapshot import snapshot

DELETE = "/steps/delete"


class TestInvalidRequest:
    @pytest.mark.parametrize(
        ("body", "field"),
        [
            ({"path": "x", "strict": "true"}, "strict"),
            ({"path": "x", "strict": 1}, "strict"),
            ({"path": "x", "pathsAreGlobs": "yes"}, "pathsAreGlobs"),
            ({"path": 5}, "path"),
            ({"path": None}, "body"),
            ({"paths": ["a", 5]}, "paths.1"),
            ({"paths": "a"}, "paths"),
            ({"path": ""}, "path"),
            ({"paths": [""]}, "paths.0"),
            ({"paths": []}, "paths"),
            ({"paths": ["x"] * 1001}, "paths"),
            ({"path": "x", "force": True}, "force"),
            ({"path": "x", "paths": ["y"]}, "body"),
            ({}, "body"),
            ({"strict": True}, "body"),
            ({"path": "x", "workspace": 5}, "workspace"),
            ({"apiVersion": "v1alpha1"}, "path"),
            ({"apiVersion": "v1alpha1", "path": "x", "paths": ["y"]}, "paths"),
            ({"apiVersion": "v1alpha1", "path": "x", "pathsAreGlobs": True}, "pathsAreGlobs"),
            ({"apiVersion": "v1alpha1", "path": "x", "strict": "false"}, "strict"),
            ({"apiVersion": "v1alpha1", "path": 5}, "path"),
        ],
    )
    def test_the_body_must_fit_the_model(
        self, client: TestClient, body: dict[str, Any], field: str
    ) -> None:
        problem = assert_problem(client.post(DELETE, json=body), 422, "invalid_request")
        assert field in [error["field"] for error in problem["errors"]]
        assert field in problem["detail"]

    def test_a_thousand_paths_are_accepted(self, client: TestClient) -> None:
        response = client.post(DELETE, json={"paths": [f"p{i}" for i in range(1000)]})
        assert response.status_code == 200
        assert len(response.json()["absent"]) == 1000

    @pytest.mark.parametrize("version", ["v2", "V1", "", 1, None, [], {}])
    def test_an_unknown_version_names_the_supported_ones(
        self, client: TestClient, version: object
    ) -> None:
        response = client.post(DELETE, json={"apiVersion": version, "path": "x"})
        problem = assert_problem(response, 422, "invalid_request")
        assert "v1, v1alpha1" in problem["detail"]

    @pytest.mark.parametrize(
        ("content", "content_type"),
        [
            (b"{", "application/json"),
            (b"[]", "application/json"),
            (b'"x"', "application/json"),
            (b"", "application/json"),
        ],
    )
    def test_a_body_that_is_not_a_json_object_is_invalid(
        self, client: TestClient, content: bytes, content_type: str
    ) -> None:
        response = client.post(DELETE, content=content, headers={"content-type": content_type})
        problem = assert_problem(response, 422, "invalid_request")
        assert [error["field"] for error in problem["errors"]] == ["body"]


class TestInvalidPath:
    @pytest.mark.parametrize(
        "body",
        [
            {"path": "/etc/passwd"},
            {"path": "a\x00b"},
            {"path": "."},
            {"path": "./"},
            {"path": "a/.."},
            {"paths": ["ok", "/abs"]},
            {"apiVersion": "v1alpha1", "path": "/abs"},
            {"path": ".stepd"},
        ],
    )
    def test_paths_that_can_never_name_an_entry(
        self, client: TestClient, body: dict[str, Any]
    ) -> None:
        assert_problem(client.post(DELETE, json=body), 422, "invalid_path")

    @pytest.mark.parametrize(
        "workspace", ["..", ".", ".stepd", "a/b", "-x", "_x", "", "x" * 129, "é", "a b"]
    )
    def test_a_bad_workspace_name(self, client: TestClient, workspace: str) -> None:
        response = client.post(DELETE, json={"workspace": workspace, "path": "x"})
        problem = assert_problem(response, 422, "invalid_path")
        assert "workspace" in problem["detail"]

    @pytest.mark.parametrize("workspace", ["a", "A.b_c-9", "x" * 128, "9"])
    def test_a_good_workspace_name(self, client: TestClient, workspace: str) -> None:
        response = client.post(DELETE, json={"workspace": workspace, "path": "x"})
        assert response.status_code == 200


class TestOutsideWorkspace:
    @pytest.mark.parametrize(
        "path", ["..", "../outside/precious.txt", "a/../../x", "out/precious.txt", "abs/x"]
    )
    def test_escapes_are_refused(self, client: TestClient, root_dir: Path, path: str) -> None:
        (root_dir / "out").symlink_to("../outside")
        (root_dir / "abs").symlink_to(root_dir.parent / "outside")
        before = snapshot(root_dir.parent)
        response = client.post(DELETE, json={"path": path})
        problem = assert_problem(response, 422, "path_outside_workspace")
        assert str(root_dir) not in response.text
        assert problem["path"] == path
        assert snapshot(root_dir.parent) == before

    def test_a_mount_point_is_refused(self, client: TestClient, root_dir: Path) -> None:
        (root_dir / "m").mkdir()
        (root_dir / "keep").write_text("x")
        with skip_if_not_permitted(), bind_mount(root_dir.parent / "outside", root_dir / "m"):
            response = client.post(DELETE, json={"paths": ["keep", "m"]})
            assert_problem(response, 422, "path_outside_workspace")
            assert (root_dir / "m" / "precious.txt").exists()
        assert (root_dir / "keep").exists()


class TestOtherDomainErrors:
    @pytest.mark.parametrize("pattern", ["[abc", "{a,b", "a\\"])
    def test_an_invalid_glob(self, client: TestClient, pattern: str) -> None:
        response = client.post(DELETE, json={"paths": [pattern], "pathsAreGlobs": True})
        assert_problem(response, 422, "invalid_glob")

    def test_a_symlink_loop(self, client: TestClient, root_dir: Path) -> None:
        (root_dir / "loop").symlink_to("loop")
        assert_problem(client.post(DELETE, json={"path": "loop/x"}), 422, "symlink_loop")

    def test_a_name_too_long(self, client: TestClient) -> None:
        response = client.post(DELETE, json={"path": "x" * 300})
        assert_problem(response, 422, "name_too_long")

    def test_strict_and_absent_is_not_found(self, client: TestClient, root_dir: Path) -> None:
        (root_dir / "here").write_text("x")
        response = client.post(DELETE, json={"paths": ["here", "./gone/"], "strict": True})
        problem = assert_problem(response, 404, "not_found")
        assert problem["missing"] == ["gone"]
        assert (root_dir / "here").exists()

    def test_permission_denied(self, client: TestClient, root_dir: Path) -> None:
        target = root_dir / "immutable"
        target.write_text("x")
        made = subprocess.run(["chattr", "+i", str(target)], capture_output=True, check=False)
        if made.returncode != 0:
            pytest.skip(f"chattr +i is not permitted here: {made.stderr.decode().strip()}")
        try:
            response = client.post(DELETE, json={"path": "immutable"})
            assert_problem(response, 403, "permission_denied")
        finally:
            subprocess.run(["chattr", "-i", str(target)], check=True)
        assert target.exists()


@pytest.fixture
def read_only_client(root_dir: Path, tmp_path: Path) -> Iterator[TestClient]:
    """The application over ``root_dir`` (bind-mounted onto itself), which turns read-only
    once the service has started: start-up writes the root's private ``.stepd`` area."""
    (root_dir / "f").write_text("x")
    with skip_if_not_permitted(), bind_mount(root_dir, root_dir):
        # State elsewhere: a file open for writing (SQLite's) would keep the remount from
        # succeeding.
        app = create_app(Settings(workspace_root=root_dir, state_dir=tmp_path / "state"))
        with TestClient(app) as client:
            remount(root_dir, "bind,ro")
            try:
                yield client
            finally:
                remount(root_dir, "bind,rw")


def test_a_read_only_filesystem(read_only_client: TestClient, root_dir: Path) -> None:
    response = read_only_client.post(DELETE, json={"path": "f"})
    assert_problem(response, 409, "read_only_filesystem")
    assert (root_dir / "f").exists()


def test_readiness_fails_on_a_read_only_root(read_only_client: TestClient) -> None:
    assert_problem(read_only_client.get("/readyz"), 503, "not_ready")
    assert read_only_client.get("/healthz").status_code == 200


class TestHttpErrors:
    def test_an_unknown_route(self, client: TestClient) -> None:
        assert_problem(client.get("/nope"), 404, "route_not_found")

    def test_a_wrong_method(self, client: TestClient) -> None:
        response = client.get(DELETE)
        assert_problem(response, 405, "method_not_allowed")
        assert "POST" in response.headers["allow"]


def test_an_unexpected_error_is_internal_and_leaks_nothing(
    root_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(Settings(workspace_root=root_dir))

    def broken() -> None:
        raise RuntimeError(f"secret detail in {root_dir}")

    app.add_api_route("/broken", broken)
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/broken")
    assert_problem(response, 500, "internal")
    assert "secret" not in response.text
    assert str(root_dir) not in response.text
    assert any("secret detail" in str(r.exc_info) for r in caplog.records if r.exc_info)


def test_every_catalogued_status_is_an_error_status() -> None:
    assert all(kind.status >= 400 for kind in CATALOG.values())
