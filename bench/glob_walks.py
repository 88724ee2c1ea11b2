"""Glob walks on hostile patterns and trees: CPU seconds of ``Root.glob_all``.

The shapes that once cost seconds to minutes: a pattern of ``*?`` pairs against one
ordinary name (12 pairs), 256 brace alternatives under ``**`` over 1 100 entries, ``**/x``
down a 3 000-level chain, and ``**/*.yaml`` over 50 000 files in 400 directories (with
the budget it spends, in entries visited). Prints medians of CPU time (``process_time``),
so other work on the machine hardly moves them. Usage: ``python -m bench.glob_walks``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from app.sandbox import Root
from app.sandbox.glob import Budget
from bench.common import header, median

BRACES = "**/{" + ",".join(f"n{i}" for i in range(256)) + "}"


@contextmanager
def _scratch() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="stepd-bench-"))
    try:
        yield path
    finally:
        subprocess.run(["rm", "-rf", str(path)], check=True)


def _files(base: Path, dirs: int, subdirs: int, files: int, suffix: str) -> None:
    for d in range(dirs):
        for s in range(subdirs):
            sub = base / f"d{d}" / f"s{s}"
            sub.mkdir(parents=True)
            for f in range(files):
                (sub / f"f{f}{suffix}").touch()


def _chain(base: Path, depth: int) -> None:
    fd = os.open(base, os.O_RDONLY | os.O_DIRECTORY)
    for _ in range(depth):
        os.mkdir("c", dir_fd=fd)
        child = os.open("c", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
        os.close(fd)
        fd = child
    os.close(os.open("x", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd))
    os.close(fd)


def _cpu(run: Callable[[], object], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        started = time.process_time()
        run()
        times.append(time.process_time() - started)
    return median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    header(f"glob walks: median CPU seconds of {args.rounds} rounds")
    with _scratch() as base:
        (base / "values-production-environment.yaml").touch()
        with Root.open(base) as root:
            hostile = "*?" * 12 + "*#"
            seconds = _cpu(lambda: root.glob(hostile), args.rounds)
        print(f"{hostile!r} against one 35-character name: {seconds:.4f} s")
    with _scratch() as base:
        _files(base, 10, 10, 9, "")
        with Root.open(base) as root:
            seconds = _cpu(lambda: root.glob(BRACES), args.rounds)
        print(f"256 brace alternatives under ** over 1 100 entries: {seconds:.3f} s")
    with _scratch() as base:
        _chain(base, 3000)
        with Root.open(base) as root:
            seconds = _cpu(lambda: root.glob("**/x"), args.rounds)
        print(f"**/x down a 3 000-level chain: {seconds:.3f} s")
    with _scratch() as base:
        _files(base, 200, 2, 125, ".yaml")
        with Root.open(base) as root:
            budget = Budget(10**9)
            seconds = _cpu(lambda: root.glob_all(["**/*.yaml"], budget), 1)
            spent = budget.limit - budget.left
        print(f"**/*.yaml over 50 000 files: {seconds:.3f} s, {spent} entries visited")


if __name__ == "__main__":
    main()
