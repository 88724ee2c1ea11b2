"""``Idempotency-Key`` on both step endpoints, through HTTP."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.api.auth import ANONYMOUS
from app.idempotency.store import ClaimOutcome, fingerprint
from app.main import create_app
from app.settings import Settings

BATCH = {"steps": [{"uses": "delete", "config": {"path": "a.txt", "strict": True}}]}


def _app_client(root_dir: Path, **settings: object) -> TestClient:
    return TestClient(create_app(Settings(workspace_root=root_dir, **settings)))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("endpoint", "body"),
    [("/steps/delete", {"path": "a.txt", "strict": True}), ("/steps/batch", BATCH)],
)
def test_retry_replays_first_answer(
    client: TestClient, root_dir: Path, endpoint: str, body: dict[str, object]
) -> None:
    (root_dir / "a.txt").write_text("x")
    first = client.post(endpoint, json=body, headers={"Idempotency-Key": "k-1"})
    assert first.status_code == 200
    assert "Idempotent-Replayed" not in first.headers
    # Without the key the strict retry is a 404; with it, the first answer again.
    assert client.post(endpoint, json=body).status_code == 404
    again = client.post(endpoint, json=body, headers={"Idempotency-Key": '"k-1"'})
    assert again.status_code == 200
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()


def test_error_answers_are_replayed_too(client: TestClient) -> None:
    headers = {"Idempotency-Key": "k-2"}
    first = client.post("/steps/delete", json={"path": "/abs"}, headers=headers)
    again = client.post("/steps/delete", json={"path": "/abs"}, headers=headers)
    assert (first.status_code, again.status_code) == (422, 422)
    assert again.headers["content-type"] == "application/problem+json"
    assert again.headers["Idempotent-Replayed"] == "true"


def test_a_body_that_fails_validation_is_not_kept(client: TestClient, root_dir: Path) -> None:
    """The same body would fail the same way and nothing ran: the key stays free."""
    headers = {"Idempotency-Key": "k-3"}
    first = client.post("/steps/delete", json={"path": "a.txt", "nope": 1}, headers=headers)
    assert first.json()["code"] == "invalid_request"
    again = client.post("/steps/delete", json={"path": "a.txt", "nope": 1}, headers=headers)
    assert again.json()["code"] == "invalid_request"
    assert "Idempotent-Replayed" not in again.headers
    (root_dir / "a.txt").write_text("x")
    fixed = client.post("/steps/delete", json={"path": "a.txt"}, headers=headers)
    assert fixed.json()["deleted"] == ["a.txt"]


def test_same_key_other_body_is_422(client: TestClient) -> None:
    client.post("/steps/delete", json={"path": "a"}, headers={"Idempotency-Key": "k"})
    response = client.post("/steps/delete", json={"path": "b"}, headers={"Idempotency-Key": "k"})
    assert response.status_code == 422
    assert response.json()["code"] == "idempotency_key_reused"
    # Another endpoint with the same key is another request too.
    other = client.post("/steps/batch", json=BATCH, headers={"Idempotency-Key": "k"})
    assert other.json()["code"] == "idempotency_key_reused"


def test_key_order_and_spacing_do_not_matter(client: TestClient) -> None:
    headers = {"Idempotency-Key": "k", "content-type": "application/json"}
    client.post("/steps/delete", content='{"path": "a", "strict": false}', headers=headers)
    response = client.post("/steps/delete", content='{"strict":false,"path":"a"}', headers=headers)
    assert response.headers["Idempotent-Replayed"] == "true"


def test_key_in_flight_is_409(client: TestClient) -> None:
    body = b'{"path":"a"}'
    store = client.app.state.idempotency  # type: ignore[attr-defined]
    store.claim(ANONYMOUS, "busy-key", fingerprint("POST", "/steps/delete", body))
    response = client.post(
        "/steps/delete",
        content=body,
        headers={"Idempotency-Key": "busy-key", "content-type": "application/json"},
    )
    assert response.status_code == 409
    assert response.json()["code"] == "idempotency_key_in_flight"


@pytest.mark.parametrize(
    "key", ["", '""', "has space", '"unterminated', "a" * 256, '"\x7f"', "a,b"]
)
def test_malformed_key_is_400(client: TestClient, key: str) -> None:
    response = client.post("/steps/delete", json={"path": "a"}, headers={"Idempotency-Key": key})
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_idempotency_key"


def test_two_key_headers_are_400(client: TestClient) -> None:
    headers = [("Idempotency-Key", "a"), ("Idempotency-Key", "b")]
    response = client.post("/steps/delete", json={"path": "a"}, headers=headers)
    assert response.status_code == 400


def test_records_survive_a_restart(root_dir: Path) -> None:
    (root_dir / "a.txt").write_text("x")
    headers = {"Idempotency-Key": "k"}
    with _app_client(root_dir) as first:
        answer = first.post("/steps/batch", json=BATCH, headers=headers)
        assert answer.status_code == 200
    with _app_client(root_dir) as second:
        again = second.post("/steps/batch", json=BATCH, headers=headers)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == answer.json()


def test_records_expire(root_dir: Path) -> None:
    with _app_client(root_dir, idempotency_ttl=timedelta(0)) as client:
        headers = {"Idempotency-Key": "k"}
        client.post("/steps/delete", json={"path": "a"}, headers=headers)
        again = client.post("/steps/delete", json={"path": "a"}, headers=headers)
    assert "Idempotent-Replayed" not in again.headers


def _claim(client: TestClient, body: bytes) -> None:
    """Claim key ``k`` for ``body`` in ``client``'s store, as its running request would."""
    store = client.app.state.idempotency  # type: ignore[attr-defined]
    claim = store.claim(ANONYMOUS, "k", fingerprint("POST", "/steps/delete", body))
    assert claim.outcome is ClaimOutcome.NEW


def _post(client: TestClient, body: bytes) -> int:
    headers = {"Idempotency-Key": "k", "content-type": "application/json"}
    return client.post("/steps/delete", content=body, headers=headers).status_code


def test_a_second_process_on_the_root_keeps_the_first_ones_claims(root_dir: Path) -> None:
    body = b'{"path":"a"}'
    with _app_client(root_dir) as first:
        _claim(first, body)  # a request of the first process is running
        with _app_client(root_dir) as second:
            assert _post(second, body) == 409  # idempotency_key_in_flight
        assert _post(first, body) == 409


def test_a_dead_process_claim_is_taken_over_once_its_lease_lapsed(root_dir: Path) -> None:
    body = b'{"path":"a"}'
    lease = timedelta(seconds=0.2)
    with _app_client(root_dir, idempotency_lease=lease) as first:
        _claim(first, body)  # then the process "dies": nobody renews the claim
    with _app_client(root_dir) as second:
        time.sleep(lease.total_seconds())
        assert _post(second, body) == 200


@pytest.fixture
def state_client(root_dir: Path, tmp_path: Path) -> Iterator[TestClient]:
    with _app_client(root_dir, state_dir=tmp_path / "state") as client:
        yield client


def test_state_dir_is_a_setting(state_client: TestClient, tmp_path: Path) -> None:
    state_client.post("/steps/delete", json={"path": "a"}, headers={"Idempotency-Key": "k"})
    assert (tmp_path / "state" / "idempotency.sqlite3").is_file()


def test_the_record_is_kept_before_the_answer_ends(client: TestClient, root_dir: Path) -> None:
    """A caller that retries the moment it has read the answer gets it replayed, never a
    409 ``in flight``: the record is complete before the answer's last byte is sent."""
    (root_dir / "a.txt").write_text("x")
    body = b'{"path":"a.txt","strict":true}'
    store = client.app.state.idempotency  # type: ignore[attr-defined]
    seen: list[tuple[bool, ClaimOutcome]] = []

    async def call() -> None:
        sent = False

        async def receive() -> dict[str, object]:
            nonlocal sent
            if sent:
                return {"type": "http.disconnect"}
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: dict[str, object]) -> None:
            if message["type"] == "http.response.body":
                last = not message.get("more_body", False)
                claim = store.claim(ANONYMOUS, "k-end", fingerprint("POST", "/steps/delete", body))
                seen.append((last, claim.outcome))

        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": "/steps/delete",
            "raw_path": b"/steps/delete",
            "root_path": "",
            "query_string": b"",
            "headers": [
                (b"host", b"testserver"),
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"idempotency-key", b"k-end"),
            ],
            "client": ("127.0.0.1", 50000),
            "server": ("testserver", 80),
        }
        await client.app(scope, receive, send)  # type: ignore[arg-type]

    assert client.portal is not None
    client.portal.call(call)
    assert seen[-1:] == [(True, ClaimOutcome.REPLAY)]
    assert not (root_dir / "a.txt").exists()
