"""Under load: health never waits behind step work, and what is over a limit (requests,
connections, the step queue) is answered at once with a problem, and counted.

Run with ``-s`` to see the figures (probe latencies under load, over-limit answer times).
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.support.problems import assert_raw_problem
from tests.support.server import Server, read_response, serve

# The slow deletes: each a tree of empty directories (costlier to remove than to make).
DELETES = 50
SUBDIRS = 600  # enough that the deletes outlast ten probes on a quiet machine too
PROBE_EVERY = 0.1


def timed(server: Server, request: bytes) -> tuple[tuple[int, dict[str, str], bytes], float]:
    """``request`` on a new connection: the answer, and the seconds from sending it to
    the server closing the connection."""
    with server.connect() as sock:
        start = time.perf_counter()
        sock.sendall(request)
        answer = read_response(sock)
        return answer, time.perf_counter() - start


def get(path: str, headers: bytes = b"") -> bytes:
    return b"GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n%s\r\n" % (path.encode(), headers)


def post(path: str, body: bytes) -> bytes:
    return (
        b"POST %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (path.encode(), len(body), body)
    )


def sample(server: Server, name: str, **labels: str) -> float:
    """A sample of the server's metrics, once it is no longer at its limit (the scrape is
    a request too); 0 when absent."""
    deadline = time.monotonic() + 10
    while (response := httpx.get(server.url("/metrics"))).status_code != 200:
        assert time.monotonic() < deadline, response.text
        time.sleep(0.05)
    for family in text_string_to_metric_families(response.text):
        for found in family.samples:
            if found.name == name and found.labels == labels:
                return found.value
    return 0.0


def requests_total(server: Server, **labels: str) -> float:
    return sample(server, "stepd_http_requests_total", **labels)


def test_health_answers_at_once_while_slow_deletes_run(root_dir: Path) -> None:
    """Every probe is answered within 100 ms of reaching the application (its access
    line's duration: where waiting for a thread behind step work would show) and is
    never kept waiting on the wire; the client-side figures are printed, as they also
    hold what the shared host's scheduler adds."""
    for n in range(DELETES):
        for sub in range(SUBDIRS):
            (root_dir / f"tree{n}" / f"s{sub}").mkdir(parents=True)
    with serve(root_dir, env={"STEPD_PURGE": "inline"}) as server:
        statuses: list[int] = []

        def delete(n: int) -> None:
            body = json.dumps({"path": f"tree{n}"}).encode()
            answer, _ = timed(server, post("/steps/delete", body))
            statuses.append(answer[0])

        # Raw sockets: the load generator must not compete with the probes for this
        # process's interpreter (an httpx client costs milliseconds of CPU to make).
        deleting = [threading.Thread(target=delete, args=(n,)) for n in range(DELETES)]
        for thread in deleting:
            thread.start()
        probes = []
        while any(thread.is_alive() for thread in deleting):
            answer, seconds = timed(
                server, get("/healthz", b"X-Request-ID: probe-%d\r\n" % len(probes))
            )
            assert answer[0] == 200
            probes.append(seconds)
            time.sleep(PROBE_EVERY)
        for thread in deleting:
            thread.join()
        served = [server.access_lines(f"probe-{n}")[0]["duration_ms"] for n in range(len(probes))]
    assert statuses == [200] * DELETES
    assert not any(root_dir.glob("tree*"))
    probes_ms = sorted(seconds * 1000 for seconds in probes)
    print(
        f"\n/healthz under {DELETES} slow deletes: {len(probes)} probes; on the wire median "
        f"{statistics.median(probes_ms):.1f} ms, max {probes_ms[-1]:.1f} ms; in the "
        f"application max {max(served):.1f} ms"
    )
    assert len(probes) >= 10
    assert max(served) < 100
    assert statistics.median(probes_ms) < 100
    assert probes_ms[-1] < 1000


def wait_for(condition: Callable[[], bool]) -> None:
    """Poll ``condition`` until it holds; the bound only keeps a broken test from hanging."""
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, "the condition never held"
        time.sleep(0.01)


@contextmanager
def held_requests(server: Server, count: int) -> Iterator[list[socket.socket]]:
    """``count`` requests in progress: each sent its headers and holds back its body."""
    held = []
    try:
        for n in range(count):
            sock = server.connect()
            sock.sendall(
                b"POST /steps/delete HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: 100\r\nX-Request-ID: held-%d\r\n\r\n" % n
            )
            held.append(sock)
        yield held
    finally:
        for sock in held:
            sock.close()


def test_past_max_concurrency_a_request_is_refused_at_once(root_dir: Path) -> None:
    with serve(root_dir, env={"STEPD_MAX_CONCURRENCY": "2"}) as server:
        with held_requests(server, 2):
            # Wait until both are being served (a probe never counts: it is exempt).
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                answer, seconds = timed(server, post("/steps/delete", b'{"path": "x"}'))
                if answer[0] == 503:
                    break
            health, health_seconds = timed(server, get("/healthz"))
        assert_raw_problem(answer, 503, "overloaded")
        assert answer[1]["retry-after"] == "1"
        assert answer[1]["connection"] == "close"
        assert health[0] == 200
        [access] = server.access_lines(answer[1]["x-request-id"])
        assert (access["route"], access["status"]) == ("/steps/delete", 503)
        labels = {"method": "POST", "route": "/steps/delete", "status": "503"}
        assert requests_total(server, **labels) >= 1
    print(
        f"\nover max concurrency: 503 in {seconds * 1000:.1f} ms; /healthz 200 in "
        f"{health_seconds * 1000:.1f} ms"
    )
    assert seconds < 0.5


def test_past_max_connections_a_request_is_refused_at_once(root_dir: Path) -> None:
    with serve(root_dir, env={"STEPD_MAX_CONNECTIONS": "3"}) as server:
        idle = [server.connect() for _ in range(3)]
        try:
            answer, seconds = timed(server, get("/readyz"))
            health, _ = timed(server, get("/healthz"))
        finally:
            for sock in idle:
                sock.close()
        assert_raw_problem(answer, 503, "overloaded")
        assert answer[1]["retry-after"] == "1"
        assert health[0] == 200
        [access] = server.access_lines(answer[1]["x-request-id"])
        assert (access["route"], access["status"]) == ("/readyz", 503)
    print(f"\nover max connections: 503 in {seconds * 1000:.1f} ms")
    assert seconds < 0.5


@contextmanager
def workspace_locked(root_dir: Path) -> Iterator[None]:
    """Hold the workspace lock exclusively, as an atomic batch of another process would:
    every delete waits for it, holding its step thread."""
    fd = os.open(root_dir / ".stepd" / "lock", os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def test_past_the_step_queue_a_step_request_is_refused_at_once(root_dir: Path) -> None:
    env = {"STEPD_STEP_WORKERS": "1", "STEPD_STEP_QUEUE": "1"}
    (root_dir / "a").write_text("a")
    (root_dir / "b").write_text("b")
    with serve(root_dir, env=env) as server:
        results: dict[str, int] = {}

        def delete(name: str) -> None:
            response = httpx.post(server.url("/steps/delete"), json={"path": name}, timeout=30)
            results[name] = response.status_code

        with workspace_locked(root_dir):
            running = threading.Thread(target=delete, args=("a",))
            running.start()
            wait_for(lambda: sample(server, "stepd_step_threads_busy") == 1)
            queued = threading.Thread(target=delete, args=("b",))
            queued.start()
            wait_for(lambda: sample(server, "stepd_step_queue_length") == 1)
            answer, seconds = timed(server, post("/steps/delete", b'{"path": "c"}'))
            health, _ = timed(server, get("/healthz"))
            ready, _ = timed(server, get("/readyz"))
        running.join()
        queued.join()
        assert_raw_problem(answer, 503, "overloaded")
        assert answer[1]["retry-after"] == "1"
        assert (health[0], ready[0]) == (200, 200)
        assert results == {"a": 200, "b": 200}
        labels = {"method": "POST", "route": "/steps/delete", "status": "503"}
        assert requests_total(server, **labels) == 1
    assert not (root_dir / "a").exists()
    assert not (root_dir / "b").exists()
    print(f"\nover the step queue: 503 in {seconds * 1000:.1f} ms")
    assert seconds < 0.5
