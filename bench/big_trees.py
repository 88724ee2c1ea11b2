"""Figure 1: deleting big trees: stepd's HTTP response time and its purger's throughput,
against ``rm -rf`` of an identical tree.

For 1 000, 10 000 and 100 000 files (nested 20 wide, every 1 000th file 1 MiB, the rest
100 bytes), each round copies the tree twice, then times ``rm -rf`` of one copy and the
HTTP delete of the other (alternating which goes first), then how long the purger takes to
empty the trash after the answer (polling the trash directory, not HTTP, so that the
polling does not count as request activity that the purger yields to). Prints medians and
the ratios: response / rm -rf (goal at 100 000 files: <= 2%) and purger files/s / rm -rf
files/s (goal >= 0.7). Usage: ``python -m bench.big_trees [--rounds N] [--sizes ...]``.
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import time
from pathlib import Path

import httpx

from bench.common import (
    copy_tree,
    header,
    make_tree,
    median,
    server,
    stepd_command,
    verdict,
    wait_until_empty,
)

RESPONSE_GOAL = 0.02
PURGE_GOAL = 0.7


def _rm(path: Path) -> float:
    started = time.perf_counter()
    subprocess.run(["rm", "-rf", str(path)], check=True)
    return time.perf_counter() - started


def _delete(client: httpx.Client, trash: Path, name: str) -> tuple[float, float]:
    """The HTTP response time, and the time from the answer until the trash is empty."""
    started = time.perf_counter()
    answer = client.post("/steps/delete", json={"workspace": "ws", "path": name})
    answered = time.perf_counter()
    answer.raise_for_status()
    assert answer.json()["deleted"] == [name], answer.text
    wait_until_empty(trash)
    return answered - started, time.perf_counter() - answered


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    args = parser.parse_args()
    header(f"big trees: HTTP delete and purge vs rm -rf, {args.rounds} rounds, alternating")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "root"
        (root / "ws").mkdir(parents=True)
        trash = root / ".stepd" / "trash"
        with (
            server(stepd_command(root)) as stepd,
            httpx.Client(base_url=stepd.url, timeout=600) as client,
        ):
            client.get("/healthz")
            for files in args.sizes:
                source = Path(tmp) / f"source-{files}"
                make_tree(source, files)
                rm_times, responses, purges = [], [], []
                for round_ in range(args.rounds):
                    copy_tree(source, Path(tmp) / "for-rm")
                    copy_tree(source, root / "ws" / "tree")
                    if round_ % 2:
                        response, purge = _delete(client, trash, "tree")
                        rm_times.append(_rm(Path(tmp) / "for-rm"))
                    else:
                        rm_times.append(_rm(Path(tmp) / "for-rm"))
                        response, purge = _delete(client, trash, "tree")
                    responses.append(response)
                    purges.append(purge)
                _rm(source)
                rm_s, response_s, purge_s = median(rm_times), median(responses), median(purges)
                share = response_s / rm_s
                speed = rm_s / purge_s
                print(
                    f"{files:>7} files: rm -rf {rm_s * 1000:9.1f} ms ({files / rm_s:8.0f} files/s)"
                    f" | HTTP response {response_s * 1000:7.2f} ms = {share:7.2%} of rm -rf"
                    f" | purge {purge_s * 1000:9.1f} ms ({files / purge_s:8.0f} files/s)"
                    f" = {speed:.2f}x rm -rf",
                    flush=True,
                )
                if files == 100_000:
                    print(
                        f"goals at 100 000 files: response <= {RESPONSE_GOAL:.0%} of rm -rf: "
                        f"{verdict(share <= RESPONSE_GOAL)}; purger >= "
                        f"{PURGE_GOAL}x rm -rf: {verdict(speed >= PURGE_GOAL)}"
                    )


if __name__ == "__main__":
    main()
