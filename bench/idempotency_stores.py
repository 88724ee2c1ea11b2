"""Figure 7: one-file deletes with an Idempotency-Key, the SQLite store against the
PostgreSQL one, side by side.

Scenarios, each ``--rounds`` times, alternating, with wrk on loopback (16 connections):
deleting one small file (a fresh one per request) (a) without a key, (b) with a fresh key
per request and the records in SQLite (the default, in ``.stepd/state``), (c) the same
with the records in a PostgreSQL server on this machine (started by the script, with
PostgreSQL's default durability: fsync and synchronous commit on). Prints median
requests/s, p50/p99 latency and each store's cost against no key.
Usage: ``python -m bench.idempotency_stores [--seconds S] [--rounds N]``.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from bench.common import header, need_wrk, server, stepd_command, wrk
from bench.small_requests import ONE_FILE, files, row
from tests.support.postgres import running_postgres


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--files", type=int, default=30_000, help="files per round")
    args = parser.parse_args()
    need_wrk()
    header(f"keyed one-file deletes: wrk -t1 -c16 -d{args.seconds}s, {args.rounds} rounds")
    samples: dict[str, list[dict[str, float]]] = {k: [] for k in ("no key", "sqlite", "postgresql")}
    with tempfile.TemporaryDirectory() as tmp, running_postgres(durable=True) as pg:
        roots = {name: Path(tmp) / name.replace(" ", "-") for name in samples}
        for root in roots.values():
            root.mkdir()
        store = {"STEPD_IDEMPOTENCY_STORE": pg.database()}
        with (
            server(stepd_command(roots["no key"])) as plain,
            server(stepd_command(roots["sqlite"])) as sqlite,
            server(stepd_command(roots["postgresql"]), env=store) as postgres,
        ):
            for n in range(args.rounds):
                for name, running in (
                    ("no key", plain),
                    ("sqlite", sqlite),
                    ("postgresql", postgres),
                ):
                    files(roots[name], args.files)
                    prefix = None if name == "no key" else f"round-{n}-"
                    samples[name].append(wrk(running.url, ONE_FILE, args.seconds, prefix))
    rows = {name: row(name, runs) for name, runs in samples.items()}
    for store_name in ("sqlite", "postgresql"):
        ratio = rows[store_name]["rps"] / rows["no key"]["rps"]
        print(f"ratio {store_name}/no key: {ratio:.2f}")
    print(f"ratio postgresql/sqlite: {rows['postgresql']['rps'] / rows['sqlite']['rps']:.2f}")


if __name__ == "__main__":
    main()
