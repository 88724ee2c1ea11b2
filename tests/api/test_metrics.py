"""``/metrics``: Prometheus metrics of requests, latencies, delete entries and the purge
backlog, labelled by route template, and served only when the setting says so."""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from app.main import create_app
from app.observability.metrics import Backlog, Freed, Metrics
from app.settings import Settings

FREED = ("entries", "files", "bytes")


def sample(client: TestClient, name: str, **labels: str) -> float | None:
    """The value of the sample ``name`` with exactly ``labels``, None when absent."""
    response = client.get("/metrics")
    assert response.status_code == 200
    for family in text_string_to_metric_families(response.text):
        for found in family.samples:
            if found.name == name and found.labels == labels:
                return float(found.value)
    return None


def label_values(client: TestClient, label: str) -> set[str]:
    """Every value of ``label`` in the exposition."""
    text = client.get("/metrics").text
    return {
        found.labels[label]
        for family in text_string_to_metric_families(text)
        for found in family.samples
        if label in found.labels
    }


DOCS = Path(__file__).parents[2] / "docs" / "OBSERVABILITY.md"
REQUESTS = "stepd_http_requests_total"
DELETE_200 = {"method": "POST", "route": "/steps/delete", "status": "200"}


@pytest.fixture
def app(root_dir: Path) -> FastAPI:
    return create_app(Settings(workspace_root=root_dir))


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as test_client:
        yield test_client


def test_request_counter_moves(client: TestClient) -> None:
    assert sample(client, REQUESTS, **DELETE_200) is None
    client.post("/steps/delete", json={"path": "gone"})
    assert sample(client, REQUESTS, **DELETE_200) == 1
    client.post("/steps/delete", json={"path": "gone"})
    assert sample(client, REQUESTS, **DELETE_200) == 2


def test_requests_are_counted_by_status(client: TestClient) -> None:
    client.post("/steps/delete", json={"path": "gone", "strict": True})
    assert sample(client, REQUESTS, **{**DELETE_200, "status": "404"}) == 1
    assert sample(client, REQUESTS, **DELETE_200) is None


def test_latency_histogram_is_present(client: TestClient) -> None:
    client.post("/steps/delete", json={"path": "gone"})
    labels = {"method": "POST", "route": "/steps/delete"}
    assert sample(client, "stepd_http_request_duration_seconds_count", **labels) == 1
    assert sample(client, "stepd_http_request_duration_seconds_bucket", **labels, le="+Inf") == 1
    total = sample(client, "stepd_http_request_duration_seconds_sum", **labels)
    assert total is not None
    assert total > 0


def test_routes_are_labelled_by_template_not_path(app: FastAPI, client: TestClient) -> None:
    def item(name: str) -> dict[str, str]:
        return {"name": name}

    app.add_api_route("/items/{name}", item)
    client.get("/items/first")
    client.get("/items/second")
    client.get("/no/such/thing")
    routes = label_values(client, "route")
    assert {"/items/{name}", "<unmatched>"} <= routes
    assert not {"/items/first", "/items/second", "/no/such/thing"} & routes
    by_template = {"method": "GET", "route": "/items/{name}", "status": "200"}
    assert sample(client, REQUESTS, **by_template) == 2


def test_method_not_allowed_is_labelled_with_its_route(client: TestClient) -> None:
    client.get("/steps/delete")
    labels = {"method": "GET", "route": "/steps/delete", "status": "405"}
    assert sample(client, REQUESTS, **labels) == 1


@pytest.mark.parametrize(
    ("content", "headers", "status"),
    [
        (b'{"path": "x"}', {"content-type": "text/plain"}, "415"),
        (b"x" * (2 * 1024 * 1024), {"content-type": "application/json"}, "413"),
        ('{"path": "x"}'.encode("utf-16"), {"content-type": "application/json"}, "415"),
    ],
    ids=["media-type", "too-large", "utf-16"],
)
def test_answers_before_routing_are_labelled_with_their_route(
    client: TestClient, content: bytes, headers: dict[str, str], status: str
) -> None:
    assert client.post("/steps/delete", content=content, headers=headers).status_code == int(status)
    labels = {"method": "POST", "route": "/steps/delete", "status": status}
    assert sample(client, REQUESTS, **labels) == 1
    assert sample(client, REQUESTS, **{**labels, "route": "<unmatched>"}) is None


def test_a_401_is_labelled_with_its_route(root_dir: Path, tmp_path: Path) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text("secret-token\n")
    settings = Settings(workspace_root=root_dir, auth_tokens_file=tokens)
    with TestClient(create_app(settings)) as client:
        assert client.post("/steps/batch", json={"steps": []}).status_code == 401
        labels = {"method": "POST", "route": "/steps/batch", "status": "401"}
        assert sample(client, REQUESTS, **labels) == 1


def test_docs_assets_are_labelled_with_their_mount(client: TestClient) -> None:
    assert client.get("/docs/assets/swagger-ui.css").status_code == 200
    labels = {"method": "GET", "route": "/docs/assets", "status": "200"}
    assert sample(client, REQUESTS, **labels) == 1


def test_only_paths_no_route_matches_are_unmatched(client: TestClient) -> None:
    client.post("/steps/nope", content=b"{}", headers={"content-type": "text/plain"})
    labels = {"method": "POST", "route": "<unmatched>", "status": "415"}
    assert sample(client, REQUESTS, **labels) == 1


def test_unknown_methods_share_one_label(client: TestClient) -> None:
    client.request("BREW", "/healthz")
    assert "BREW" not in label_values(client, "method")
    assert "other" in label_values(client, "method")


def test_delete_entries_are_counted_by_outcome(client: TestClient, root_dir: Path) -> None:
    (root_dir / "a").write_text("x")
    (root_dir / "b").mkdir()
    entries = "stepd_delete_entries_total"
    assert sample(client, entries, outcome="deleted") == 0
    client.post("/steps/delete", json={"paths": ["a", "b", "c"]})
    client.post("/steps/delete", json={"paths": ["x", "y"], "strict": True})
    client.post("/steps/delete", json={"path": "../outside"})
    assert sample(client, entries, outcome="deleted") == 2
    assert sample(client, entries, outcome="absent") == 1
    assert sample(client, entries, outcome="failed") == 3


def test_purge_backlog_is_zero_until_a_purger_reports(app: FastAPI, client: TestClient) -> None:
    assert sample(client, "stepd_purge_backlog_entries") == 0
    assert sample(client, "stepd_purge_backlog_bytes") == 0
    assert sample(client, "stepd_purge_freed_files_total") == 0
    metrics: Metrics = app.state.metrics
    metrics.watch_purge_backlog(
        lambda: Backlog(
            entries=7, bytes=None, files=None, freed=Freed(2, 30, 5), files_per_second=12.5
        )
    )
    assert sample(client, "stepd_purge_backlog_entries") == 7
    for name in ("stepd_purge_backlog_bytes", "stepd_purge_backlog_files"):
        unknown = sample(client, name)
        assert unknown is not None
        assert math.isnan(unknown)
    assert sample(client, "stepd_purge_files_per_second") == 12.5
    freed = {kind: sample(client, f"stepd_purge_freed_{kind}_total") for kind in FREED}
    assert freed == {"entries": 2, "files": 30, "bytes": 5}


def test_in_progress_counts_the_scrape_itself(client: TestClient) -> None:
    assert sample(client, "stepd_http_requests_in_progress") == 1


def test_openmetrics_is_served_on_request(client: TestClient) -> None:
    response = client.get("/metrics", headers={"Accept": "application/openmetrics-text"})
    assert response.headers["content-type"].startswith("application/openmetrics-text")
    assert response.text.endswith("# EOF\n")


def test_metrics_are_not_part_of_the_api_document(client: TestClient) -> None:
    assert "/metrics" not in client.get("/openapi.json").json()["paths"]


def test_each_app_has_its_own_registry(root_dir: Path, client: TestClient) -> None:
    client.post("/steps/delete", json={"path": "gone"})
    with TestClient(create_app(Settings(workspace_root=root_dir))) as other:
        assert sample(other, REQUESTS, **DELETE_200) is None


def test_disabled_metrics_are_not_served(root_dir: Path) -> None:
    app = create_app(Settings(workspace_root=root_dir, metrics=False))
    with TestClient(app) as client:
        response = client.get("/metrics")
    assert response.status_code == 404
    assert response.json()["code"] == "route_not_found"


def test_metrics_setting_is_read_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, root_dir: Path
) -> None:
    monkeypatch.setenv("STEPD_METRICS", "false")
    assert Settings(workspace_root=root_dir).metrics is False


def test_documented_metrics_are_exactly_the_exposed_ones(client: TestClient) -> None:
    client.post("/steps/delete", json={"path": "gone"})
    families = list(text_string_to_metric_families(client.get("/metrics").text))
    names = {family.name for family in families} | {
        found.name for family in families for found in family.samples
    }
    # A labelled counter with no sample yet shows only its family's name.
    counters = {f"{family.name}_total" for family in families if family.type == "counter"}
    exposed = {name for name in names | counters if name.startswith("stepd_")}
    documented = set(re.findall(r"`(stepd_[a-z_]+)`", DOCS.read_text()))
    assert documented <= exposed
    assert {family.name for family in families if family.name.startswith("stepd_")} <= {
        name.removesuffix("_total") for name in documented
    }
