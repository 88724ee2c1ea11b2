"""Figure 2: small requests over keep-alive, stepd against a bare FastAPI endpoint.

Scenarios, each ``--rounds`` times, alternating the servers, with wrk on loopback:
(a) a no-op delete of an absent path, (b) deleting one small file (a fresh one per
request), both against the bare endpoint served with the same uvicorn options; and (c)
the no-op delete while the purger frees a 100 000-file tree, against (a), to show what
the purger costs requests. Prints median requests/s, p50/p99 latency and the ratios.
Usage: ``python -m bench.small_requests [--seconds S] [--rounds N]``.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import httpx

from bench.common import (
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
GOAL = 0.70


def files(root: Path, count: int) -> None:
    """Files f1..f<count> in workspace ``files``, one per request of a round."""
    d = root / "files"
    d.mkdir(exist_ok=True)
    for n in range(1, count + 1):
        (d / f"f{n}").write_bytes(b"x" * 64)


def row(name: str, runs: list[dict[str, float]]) -> dict[str, float]:
    """Print and return the medians of ``runs`` (and their errors summed)."""
    figures = {
        "rps": median([r["rps"] for r in runs]),
        "p50_ms": median([r["p50_us"] for r in runs]) / 1000,
        "p99_ms": median([r["p99_us"] for r in runs]) / 1000,
        "errors": sum(r["errors"] for r in runs),
    }
    print(
        f"  {name:24} {figures['rps']:7.0f} req/s  p50 {figures['p50_ms']:6.2f} ms  "
        f"p99 {figures['p99_ms']:6.2f} ms  errors {figures['errors']:.0f}",
        flush=True,
    )
    return figures


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--files", type=int, default=40_000, help="files per one-file round")
    parser.add_argument("--purge-files", type=int, default=100_000)
    args = parser.parse_args()
    need_wrk()
    header(f"small requests: wrk -t1 -c16 -d{args.seconds}s, {args.rounds} rounds, alternating")
    samples: dict[str, list[dict[str, float]]] = {
        k: [] for k in ("noop", "bare-noop", "file", "bare-file", "noop-purging")
    }
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "root"
        root.mkdir()
        source = Path(tmp) / "source"
        make_tree(source, args.purge_files)
        with server(stepd_command(root)) as stepd, server(bare_command()) as bare:
            for _ in range(args.rounds):
                samples["noop"].append(wrk(stepd.url, NOOP, args.seconds))
                samples["bare-noop"].append(wrk(bare.url, NOOP, args.seconds))
                files(root, args.files)
                samples["file"].append(wrk(stepd.url, ONE_FILE, args.seconds))
                samples["bare-file"].append(wrk(bare.url, ONE_FILE, args.seconds))
                copy_tree(source, root / "big")
                answer = httpx.post(stepd.url + "/steps/delete", json={"path": "big"}, timeout=60)
                answer.raise_for_status()
                samples["noop-purging"].append(wrk(stepd.url, NOOP, args.seconds))
                backlog = httpx.get(stepd.url + "/readyz").json()["purgeBacklog"]["entries"]
                print(f"  (purge backlog after the purging run: {backlog} entries)", flush=True)
                wait_until_empty(root / ".stepd" / "trash")
        rows = {name: row(name, runs) for name, runs in samples.items()}
    for scenario in ("noop", "file"):
        ratio = rows[scenario]["rps"] / rows[f"bare-{scenario}"]["rps"]
        print(
            f"ratio stepd/bare, {scenario}: {ratio:.2f} "
            f"(goal >= {GOAL:.2f}: {verdict(ratio >= GOAL)})"
        )
    ratio = rows["noop-purging"]["rps"] / rows["noop"]["rps"]
    print(f"ratio no-op while purging / no-op idle: {ratio:.2f}")


if __name__ == "__main__":
    main()
