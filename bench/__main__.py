"""`python -m bench [name ...]`: run every benchmark module (or the named ones) and print a report.

A benchmark is a module ``bench/<name>.py`` with ``async def run(env) -> list[Figure]``;
``env`` gives it a fresh Azurite and the raw rates measured at the start of the run.
Each figure is printed as soon as it is measured (a benchmark appends it to
``env.figures()``), so a run stopped midway keeps what it measured; the
report of every benchmark's figures follows at the end.
"""

from __future__ import annotations

import asyncio
import importlib
import pkgutil
import sys

import bench
from bench.common import BenchEnv, print_report

SKIP = {"common"}


def discover() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules(bench.__path__) if not m.ispkg and m.name not in SKIP)


async def main(names: list[str]) -> None:
    async with BenchEnv() as env:
        print(env.describe(), flush=True)
        reports: list[tuple[str, list]] = []
        for name in names or discover():
            module = importlib.import_module(f"bench.{name}")
            print(f"\n== {name} ==", flush=True)
            reports.append((name, await module.run(env)))
        print("\n== report ==", flush=True)
        for name, figures in reports:
            print(f"{name}:", flush=True)
            print_report(figures, env)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
