"""Figure 2: small requests over keep-alive, stepd against a bare FastAPI endpoint.

Servers, all up at once, each run ``--rounds`` times in turn with wrk on loopback:

* ``bare``: a FastAPI endpoint returning a constant, served with stepd's uvicorn options;
* ``cluster``: stepd as a cluster runs it: bearer tokens (a file of 5), the JSON access
  line at ``info``, metrics on (wrk sends one of the tokens);
* ``off``: stepd with every optional feature off (no tokens, ``warning`` level, no metrics);
* ``+auth``, ``+logs``, ``+metrics``: ``off`` with that one feature on, for its cost.

Scenarios: (a) a no-op delete of an absent path on every server; (b) deleting one small
file (a fresh one per request) on ``bare``, ``cluster`` and ``off``; (c) the no-op delete
on ``cluster`` while the purger frees a ``--purge-files`` tree, to show what the purger
costs requests. Prints median requests/s, p50/p99 latency, the ratios to ``bare`` against
the goals, and each feature's cost in µs per request (1/rate with it, less 1/rate of
``off``). wrk: ``apt-get install wrk`` (Debian).
Usage: ``python -m bench.small_requests [--seconds S] [--rounds N] [--no-purging]``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
from pathlib import Path

import httpx

from bench.common import (
    Running,
    bare_command,
    copy_tree,
    header,
    make_tree,
    median,
    need_wrk,
    server,
    stepd_command,
    verdict,
    wait_until_empty,
    wrk,
)

NOOP = '{"path": "gone-%d"}'
ONE_FILE = '{"workspace": "files", "path": "f%d"}'
NOOP_GOAL = 0.80
FILE_GOAL = 0.60
P99_GOAL = 2.0
TOKENS = 5
# The token wrk sends: one in the middle of the file.
TOKEN = "bench-token-3"
OFF = ("--log-level", "warning", "--no-metrics")
# Server name -> stepd options (None: the bare endpoint).
SERVERS: dict[str, tuple[str, ...] | None] = {
    "bare": None,
    "cluster": (),
    "off": OFF,
    "+auth": OFF,
    "+logs": ("--no-metrics",),
    "+metrics": ("--log-level", "warning"),
}
AUTHENTICATED = ("cluster", "+auth")
FILE_SERVERS = ("bare", "cluster", "off")
FEATURES = ("+auth", "+logs", "+metrics")


def files(root: Path, count: int) -> None:
    """Files f1..f<count> in workspace ``files``, one per request of a round."""
    d = root / "files"
    d.mkdir(exist_ok=True)
    for n in range(1, count + 1):
        (d / f"f{n}").write_bytes(b"x" * 64)


def _tokens(path: Path) -> Path:
    path.write_text("".join(f"caller-{n}:bench-token-{n}\n" for n in range(1, TOKENS + 1)))
    return path


def _cpu_seconds(pid: int) -> float:
    """CPU time (user and system, all threads) the process ``pid`` has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def row(name: str, runs: list[dict[str, float]]) -> dict[str, float]:
    """Print and return the medians of ``runs`` (and their errors summed); the server's
    CPU per request too when the runs measured it."""
    figures = {
        "rps": median([r["rps"] for r in runs]),
        "p50_ms": median([r["p50_us"] for r in runs]) / 1000,
        "p99_ms": median([r["p99_us"] for r in runs]) / 1000,
        "errors": sum(r["errors"] for r in runs),
    }
    cpu = ""
    if all("cpu_us" in r for r in runs):
        figures["cpu_us"] = median([r["cpu_us"] for r in runs])
        cpu = f"  CPU {figures['cpu_us']:5.0f} µs/req"
    print(
        f"  {name:24} {figures['rps']:7.0f} req/s  p50 {figures['p50_ms']:6.2f} ms  "
        f"p99 {figures['p99_ms']:6.2f} ms{cpu}  errors {figures['errors']:.0f}",
        flush=True,
    )
    return figures


def _cost_us(rows: dict[str, dict[str, float]], name: str, base: str) -> tuple[float, float]:
    """Microseconds per request that ``name`` spends over ``base``: from the request
    rates (1/rate: what one saturated process takes per request) and from the servers'
    own CPU time per request (less disturbed by other work on the machine)."""
    by_rate = 1e6 / rows[name]["rps"] - 1e6 / rows[base]["rps"]
    return by_rate, rows[name]["cpu_us"] - rows[base]["cpu_us"]


def _print_cost(what: str, cost: tuple[float, float]) -> None:
    print(f"  {what:34} {cost[0]:7.1f} by rate  {cost[1]:7.1f} by CPU")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--files", type=int, default=40_000, help="files per one-file round")
    parser.add_argument("--purge-files", type=int, default=100_000)
    parser.add_argument("--no-purging", action="store_true", help="skip scenario (c)")
    args = parser.parse_args()
    need_wrk()
    header(f"small requests: wrk -t1 -c16 -d{args.seconds}s, {args.rounds} rounds, in turn")
    samples: dict[str, list[dict[str, float]]] = {}
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        tokens = _tokens(Path(tmp) / "tokens")
        roots: dict[str, Path] = {}
        running: dict[str, Running] = {}
        for name, options in SERVERS.items():
            roots[name] = Path(tmp) / name
            roots[name].mkdir()
            if options is None:
                command = bare_command()
            else:
                auth = ("--auth-tokens-file", str(tokens)) if name in AUTHENTICATED else ()
                command = stepd_command(roots[name], *options, *auth)
            running[name] = stack.enter_context(server(command))
        source = Path(tmp) / "source"
        if not args.no_purging:
            make_tree(source, args.purge_files)

        def run(name: str, scenario: str, template: str) -> None:
            headers = {"Authorization": f"Bearer {TOKEN}"} if name in AUTHENTICATED else {}
            before = _cpu_seconds(running[name].pid)
            result = wrk(running[name].url, template, args.seconds, headers=headers)
            used = _cpu_seconds(running[name].pid) - before
            result["cpu_us"] = 1e6 * used / max(result["requests"], 1)
            samples.setdefault(f"{scenario} {name}", []).append(result)

        for _ in range(args.rounds):
            for name in SERVERS:
                run(name, "noop", NOOP)
            for name in FILE_SERVERS:
                files(roots[name], args.files)
                run(name, "file", ONE_FILE)
            if not args.no_purging:
                copy_tree(source, roots["cluster"] / "big")
                url = running["cluster"].url + "/steps/delete"
                bearer = {"Authorization": f"Bearer {TOKEN}"}
                answer = httpx.post(url, json={"path": "big"}, headers=bearer, timeout=60)
                answer.raise_for_status()
                run("cluster", "noop-purging", NOOP)
                wait_until_empty(roots["cluster"] / ".stepd" / "trash")
        rows = {name: row(name, runs) for name, runs in samples.items()}
    print("goals (cluster configuration against bare):")
    for scenario, goal in (("noop", NOOP_GOAL), ("file", FILE_GOAL)):
        ratio = rows[f"{scenario} cluster"]["rps"] / rows[f"{scenario} bare"]["rps"]
        print(f"  {scenario} ratio {ratio:.2f} (goal >= {goal:.2f}: {verdict(ratio >= goal)})")
        off = rows[f"{scenario} off"]["rps"] / rows[f"{scenario} bare"]["rps"]
        print(f"  {scenario} ratio, everything off: {off:.2f}")
    p99 = rows["noop cluster"]["p99_ms"] / rows["noop bare"]["p99_ms"]
    print(f"  noop p99 / bare p99: {p99:.2f} (goal <= {P99_GOAL:.1f}: {verdict(p99 <= P99_GOAL)})")
    for scenario in ("noop", "file"):
        ratio = rows[f"{scenario} bare"]["cpu_us"] / rows[f"{scenario} cluster"]["cpu_us"]
        print(f"  {scenario} ratio by CPU per request (bare / cluster): {ratio:.2f}")
    print("cost per request, µs (no-op delete unless said):")
    _print_cost("stepd, everything off, over bare", _cost_us(rows, "noop off", "noop bare"))
    for feature in FEATURES:
        _print_cost(f"{feature} over off", _cost_us(rows, f"noop {feature}", "noop off"))
    _print_cost("cluster over off", _cost_us(rows, "noop cluster", "noop off"))
    _print_cost("cluster over bare", _cost_us(rows, "noop cluster", "noop bare"))
    _print_cost("one file over no-op (cluster)", _cost_us(rows, "file cluster", "noop cluster"))
    if not args.no_purging:
        ratio = rows["noop-purging cluster"]["rps"] / rows["noop cluster"]["rps"]
        print(f"ratio no-op while purging / no-op idle (cluster): {ratio:.2f}")


if __name__ == "__main__":
    main()
