"""Figure 3: 1 000 single-file deletes as one batch against 1 000 sequential
``POST /steps/delete`` calls (one keep-alive connection), alternating which goes first.

Prints the median wall time of each and the speed-up (goal >= 20x).
Usage: ``python -m bench.batch_vs_single [--rounds N] [--files N]``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import httpx

from bench.common import header, median, server, stepd_command, verdict

GOAL = 20.0


def _files(workspace: Path, count: int) -> list[str]:
    workspace.mkdir(exist_ok=True)
    names = [f"f{n}.yaml" for n in range(count)]
    for name in names:
        (workspace / name).write_bytes(b"x" * 100)
    return names


def _batch(client: httpx.Client, names: list[str]) -> float:
    steps = [{"uses": "delete", "config": {"path": name}} for name in names]
    started = time.perf_counter()
    answer = client.post("/steps/batch", json={"workspace": "ws", "steps": steps})
    elapsed = time.perf_counter() - started
    answer.raise_for_status()
    return elapsed


def _singles(client: httpx.Client, names: list[str]) -> float:
    started = time.perf_counter()
    for name in names:
        client.post("/steps/delete", json={"workspace": "ws", "path": name}).raise_for_status()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--files", type=int, default=1000)
    args = parser.parse_args()
    header(f"batch vs single: {args.files} one-file deletes, {args.rounds} rounds, alternating")
    batches, singles = [], []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "root"
        root.mkdir()
        with (
            server(stepd_command(root)) as stepd,
            httpx.Client(base_url=stepd.url, timeout=120) as client,
        ):
            client.get("/healthz")
            for round_ in range(args.rounds):
                order = (_batch, _singles) if round_ % 2 == 0 else (_singles, _batch)
                for run in order:
                    elapsed = run(client, _files(root / "ws", args.files))
                    (batches if run is _batch else singles).append(elapsed)
    batch_s, single_s = median(batches), median(singles)
    speedup = single_s / batch_s
    print(f"one batch of {args.files}:      {batch_s * 1000:8.1f} ms")
    print(f"{args.files} sequential calls: {single_s * 1000:8.1f} ms")
    print(f"speed-up: {speedup:.1f}x (goal >= {GOAL:.0f}x: {verdict(speedup >= GOAL)})")


if __name__ == "__main__":
    main()
