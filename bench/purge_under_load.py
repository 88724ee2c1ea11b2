"""Figure: the purger's rate and the requests' p99 under steady traffic, by purge floor.

For each ``STEPD_PURGE_FLOOR`` (0: the purger takes only what requests leave; 0.5, the
default: it works at least half the time; 1: it never pauses), a ``--files``-file tree
is deleted (detached at once), then freed while wrk sends no-op deletes on 0, 4 and 16
keep-alive connections for ``--seconds``. The rate is the files freed
(``purgeBacklog.freedFiles`` of /readyz) per second until the trash is empty or wrk
ends; the p99 is wrk's. Runs without a purge give the p99 to compare with. Prints
medians over ``--rounds``, the floors alternating.
Usage: ``python -m bench.purge_under_load [--seconds S] [--rounds N] [--files F]``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
from pathlib import Path

import httpx

from bench.common import copy_tree, header, make_tree, median, need_wrk, server, stepd_command, wrk

NOOP = '{"path": "gone-%d"}'
CONNECTIONS = (0, 4, 16)
FLOORS = ("0", "0.5", "1")


def _freed(url: str) -> int:
    return int(httpx.get(url + "/readyz", timeout=10).json()["purgeBacklog"]["freedFiles"])


def _progress(url: str, trash: Path, start: float, until: float) -> tuple[float, int | None]:
    """Seconds from ``start`` until ``trash`` is empty (polled without HTTP, so as not to
    count as traffic), with None; or, if it is not by ``until``, the files freed by then
    (read while the load still runs: once it stops, the purger runs at full speed)."""
    while time.monotonic() < until:
        if not os.listdir(trash):
            return time.monotonic() - start, None
        time.sleep(0.01)
    return until - start, _freed(url)


def _purge_run(
    url: str, root: Path, source: Path, connections: int, seconds: int
) -> dict[str, float]:
    """Delete a copy of ``source``, then free it under ``connections`` of no-op deletes."""
    copy_tree(source, root / "big")
    before = _freed(url)
    httpx.post(url + "/steps/delete", json={"path": "big"}, timeout=60).raise_for_status()
    start = time.monotonic()
    trash = root / ".stepd" / "trash"
    seen: list[tuple[float, int | None]] = []
    watcher = threading.Thread(
        target=lambda: seen.append(_progress(url, trash, start, start + seconds - 0.2))
    )
    watcher.start()
    load = wrk(url, NOOP, seconds, connections=connections) if connections else None
    watcher.join()
    took, freed = seen[0]
    if freed is None:  # all of it
        freed = _freed(url)
    while os.listdir(trash):  # what is left goes before the next run, at full speed
        time.sleep(0.05)
    return {
        "files_per_s": (freed - before) / took,
        "p99_ms": load["p99_us"] / 1000 if load else 0.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--files", type=int, default=100_000)
    args = parser.parse_args()
    need_wrk()
    header(
        f"purge under load: {args.files}-file tree, wrk -t1 -cN -d{args.seconds}s no-op "
        f"deletes, {args.rounds} rounds"
    )
    runs: dict[tuple[str, int], list[dict[str, float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "source"
        make_tree(source, args.files, large_every=10**9)
        for _ in range(args.rounds):
            for floor in FLOORS:
                root = Path(tmp) / f"root-{floor}"
                root.mkdir(exist_ok=True)
                env = {"STEPD_PURGE_FLOOR": floor}
                with server(stepd_command(root), env=env) as stepd:
                    for connections in CONNECTIONS:
                        runs.setdefault((floor, connections), []).append(
                            _purge_run(stepd.url, root, source, connections, args.seconds)
                        )
                        if connections and floor == FLOORS[0]:
                            load = wrk(stepd.url, NOOP, args.seconds, connections=connections)
                            runs.setdefault(("no purge", connections), []).append(
                                {"files_per_s": 0.0, "p99_ms": load["p99_us"] / 1000}
                            )
    print(f"{'floor':10} {'connections':>11} {'files/s':>9} {'p99 ms':>8}")
    for (floor, connections), samples in sorted(runs.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        rate = median([s["files_per_s"] for s in samples])
        p99 = median([s["p99_ms"] for s in samples])
        print(f"{floor:10} {connections:>11} {rate:>9.0f} {p99:>8.1f}", flush=True)


if __name__ == "__main__":
    main()
