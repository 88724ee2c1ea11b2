"""What every benchmark needs: servers in subprocesses, trees, wrk, medians, the machine.

Other work may run on the machine at the same time: every script interleaves what it
compares, reports medians and ratios, and prints the load average it ran under.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Running:
    """A server under test: its base URL and process id."""

    url: str
    pid: int


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def server(command: Sequence[str], env: dict[str, str] | None = None) -> Iterator[Running]:
    """Run ``command`` (``{port}`` in it is replaced by a free port) until /healthz answers;
    stop it with SIGTERM after."""
    port = free_port()
    argv = [part.replace("{port}", str(port)) for part in command]
    clean = {k: v for k, v in os.environ.items() if not k.startswith("STEPD_")}
    proc = subprocess.Popen(
        argv,
        cwd=REPO,
        env={**clean, **(env or {})},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                    break
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"server {argv} did not start")
            time.sleep(0.05)
        yield Running(base, proc.pid)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def stepd_command(root: Path, *options: str) -> list[str]:
    """``stepd serve`` with its default settings (JSON access log at info and metrics
    included) but for ``options``."""
    return [
        sys.executable,
        "-m",
        "app",
        "serve",
        "--port",
        "{port}",
        "--workspace-root",
        str(root),
        *options,
    ]


def bare_command() -> list[str]:
    return [sys.executable, "-m", "bench.bare_app", "--port", "{port}"]


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def make_tree(base: Path, files: int, *, fanout: int = 20, large_every: int = 1000) -> None:
    """A nested tree of ``files`` files: ``fanout`` files per directory, directories nested
    ``fanout`` wide; every ``large_every``-th file is 1 MiB, the others 100 bytes."""
    base.mkdir(parents=True)
    small = b"x" * 100
    large = b"y" * (1 << 20)
    for index in range(files):
        d = base
        n = index // fanout
        while n:
            d = d / f"d{n % fanout}"
            n //= fanout
        d.mkdir(parents=True, exist_ok=True)
        (d / f"f{index}").write_bytes(large if index % large_every == 0 else small)


def copy_tree(src: Path, dst: Path) -> None:
    """An identical copy (``cp -a``: much faster than shutil for 100 000 files)."""
    subprocess.run(["cp", "-a", str(src), str(dst)], check=True)


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def machine() -> str:
    mem_kib = int(Path("/proc/meminfo").read_text().split()[1])
    return (
        f"nproc={os.cpu_count()}, memory={mem_kib / 1024 / 1024:.1f} GiB, "
        f"python={sys.version.split()[0]}"
    )


def load() -> str:
    """The load averages now (other work on the machine makes absolute numbers noisy)."""
    one, five, fifteen = Path("/proc/loadavg").read_text().split()[:3]
    return f"load average {one} {five} {fifteen}"


def header(title: str) -> None:
    print(f"# {title}\n# {machine()}; {load()}", flush=True)


def verdict(met: bool) -> str:
    return "met" if met else "MISSED"


def need_wrk() -> None:
    if shutil.which("wrk") is None:
        raise SystemExit("bench: wrk is not installed: apt-get install wrk (Debian package)")


# Requests numbered per connection thread; ``done`` prints one JSON line of figures.
_WRK_LUA = """
local counter = 0
local template = %(template)s
local headers = %(headers)s
headers["Content-Type"] = "application/json"
local key_prefix = %(key_prefix)s
function request()
  counter = counter + 1
  local body = string.format(template, counter)
  if key_prefix then headers["Idempotency-Key"] = key_prefix .. counter end
  return wrk.format("POST", "/steps/delete", headers, body)
end
function done(summary, latency, requests)
  io.write(string.format(
    '{"requests": %%d, "seconds": %%f, "p50_us": %%d, "p99_us": %%d, ' ..
    '"errors": %%d, "non2xx": %%d}\\n',
    summary.requests, summary.duration / 1e6, latency:percentile(50), latency:percentile(99),
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.errors.status))
end
"""

WRK_CONNECTIONS = 16


def wrk(
    base: str,
    template: str,
    seconds: int,
    key_prefix: str | None = None,
    headers: dict[str, str] | None = None,
    connections: int = WRK_CONNECTIONS,
) -> dict[str, float]:
    """wrk (one thread, ``connections`` keep-alive connections) POSTing to
    /steps/delete the JSON ``template``, whose ``%d`` numbers the requests, with
    ``headers`` besides the content type; with ``key_prefix``, each request has an
    ``Idempotency-Key`` of its own (the prefix and its number). Returns requests, rps,
    p50_us, p99_us, errors."""
    lua_prefix = "nil" if key_prefix is None else json.dumps(key_prefix)
    pairs = ", ".join(f"[{json.dumps(k)}] = {json.dumps(v)}" for k, v in (headers or {}).items())
    values = {"template": json.dumps(template), "headers": f"{{{pairs}}}", "key_prefix": lua_prefix}
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(_WRK_LUA % values)
    try:
        out = subprocess.run(
            ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "-s", script.name, base],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    finally:
        Path(script.name).unlink()
    result: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    result["rps"] = result["requests"] / result["seconds"]
    result["errors"] += result.pop("non2xx")
    return result


def wait_until_empty(directory: Path, timeout: float = 600) -> None:
    """Poll (every 5 ms, without HTTP, so as not to count as activity) until empty."""
    deadline = time.monotonic() + timeout
    while os.listdir(directory):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{directory} still not empty after {timeout}s")
        time.sleep(0.005)
