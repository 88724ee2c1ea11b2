"""Figure 4: stepd's resident memory, idle and over 100 000 requests.

Starts ``stepd serve``; RSS right after start-up ("idle"), after a warm-up of about
2 000 requests, then after ``--requests`` more (wrk runs of 10 s: no-op deletes of
ever-new absent paths, each with a fresh request id); the growth is the difference from
the warm state (pools that fill once are not leaks). Goals: idle < 80 MiB, growth < 10 MiB.
Usage: ``python -m bench.memory [--requests N]``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from bench.common import header, need_wrk, rss_kib, server, stepd_command, verdict, wrk

IDLE_GOAL_MIB = 80
GROWTH_GOAL_MIB = 10
NOOP = '{"path": "gone-%d"}'


def _until(url: str, count: int) -> tuple[int, int]:
    """Run wrk in 10-second pieces until ``count`` requests were answered."""
    requests = errors = 0
    while requests < count:
        done = wrk(url, NOOP, min(10, max(1, (count - requests) // 1000)))
        requests += int(done["requests"])
        errors += int(done["errors"])
    return requests, errors


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=100_000)
    args = parser.parse_args()
    need_wrk()
    header(f"memory: RSS idle and over {args.requests} requests")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "root"
        root.mkdir()
        with server(stepd_command(root)) as stepd:
            time.sleep(1)
            idle = rss_kib(stepd.pid) / 1024
            _until(stepd.url, 2000)
            warm = rss_kib(stepd.pid) / 1024
            requests, errors = _until(stepd.url, args.requests)
            after = rss_kib(stepd.pid) / 1024
    growth = after - warm
    print(f"idle RSS: {idle:.1f} MiB (goal < {IDLE_GOAL_MIB}: {verdict(idle < IDLE_GOAL_MIB)})")
    print(f"warm RSS (after 2 000 requests): {warm:.1f} MiB")
    print(
        f"after {requests} more requests ({errors} errors): {after:.1f} MiB;"
        f" growth {growth:+.1f} MiB (goal < {GROWTH_GOAL_MIB}: "
        f"{verdict(growth < GROWTH_GOAL_MIB)}); from idle {after - idle:+.1f} MiB"
    )


if __name__ == "__main__":
    main()
