"""Figure 6: what an ``Idempotency-Key`` costs a request.

One-file deletes (a fresh file per request) with wrk on loopback, each round once without
a key and once with a key of its own per request (so every keyed request claims, runs and
completes a new record), alternating which goes first; ``--rounds`` times. Prints median
requests/s, p50/p99 latency, the server's CPU time per request (steadier than requests/s
on a shared machine), the ratio keyed / unkeyed (goal >= 0.8), and the bytes the store
holds per record after the run.
Usage: ``python -m bench.keyed_requests [--seconds S] [--rounds N] [--files N]``.
"""

from __future__ import annotations

import argparse
import os
import secrets
import tempfile
from pathlib import Path

from bench.common import header, median, need_wrk, server, stepd_command, verdict, wrk
from bench.small_requests import ONE_FILE, files, row

GOAL = 0.80


def cpu_seconds(pid: int) -> float:
    """CPU time (user and system) process ``pid`` used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--files", type=int, default=40_000, help="files per run")
    args = parser.parse_args()
    need_wrk()
    header(f"keyed requests: wrk -t1 -c16 -d{args.seconds}s, {args.rounds} rounds, alternating")
    samples: dict[str, list[dict[str, float]]] = {"unkeyed": [], "keyed": []}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "root"
        root.mkdir()
        with server(stepd_command(root)) as stepd:
            for n in range(args.rounds):
                order = ["unkeyed", "keyed"] if n % 2 == 0 else ["keyed", "unkeyed"]
                for name in order:
                    files(root, args.files)
                    prefix = f"{secrets.token_hex(4)}-" if name == "keyed" else None
                    before = cpu_seconds(stepd.pid)
                    run = wrk(stepd.url, ONE_FILE, args.seconds, prefix)
                    run["cpu_us"] = (cpu_seconds(stepd.pid) - before) / run["requests"] * 1e6
                    samples[name].append(run)
        state = root / ".stepd" / "state"
        size = sum(p.stat().st_size for p in state.iterdir())
        records = sum(r["requests"] for r in samples["keyed"])
    rows = {name: row(name, runs) for name, runs in samples.items()}
    cpu = {name: median([r["cpu_us"] for r in runs]) for name, runs in samples.items()}
    print(f"server CPU per request: unkeyed {cpu['unkeyed']:.0f} us, keyed {cpu['keyed']:.0f} us")
    ratio = rows["keyed"]["rps"] / rows["unkeyed"]["rps"]
    print(f"ratio keyed/unkeyed: {ratio:.2f} (goal >= {GOAL:.2f}: {verdict(ratio >= GOAL)})")
    print(f"store after {records:.0f} keyed requests: {size} bytes, {size / records:.0f} B/record")


if __name__ == "__main__":
    main()
