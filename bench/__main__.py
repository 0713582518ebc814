"""`python -m bench`: run the benchmarks and write BENCHMARKS.md at the project root.

Each benchmark is a module with `run(workdir, runs) -> dict` (JSON-serialisable results; a
`serve_hwm_mb` entry is the peak RSS of the `serve` process it drove) and `section(results) ->
str` (its part of BENCHMARKS.md). `--only NAME` runs just those (for working on one; the
report then holds only their sections).
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

from . import bovine, fanout, inbox, pages
from .common import ROOT, machine

BENCHMARKS: dict[str, ModuleType] = {
    "inbox": inbox,
    "fanout": fanout,
    "pages": pages,
    "bovine": bovine,
}


def memory_section(results: dict[str, Any]) -> str:
    peaks = {
        name: r["serve_hwm_mb"]
        for name, r in results.items()
        if name in ("inbox", "fanout", "pages") and "serve_hwm_mb" in r
    }
    lines = ["## 4. Memory", ""]
    if not peaks:
        return "\n".join([*lines, "Not measured in this run.", ""])
    worst = max(peaks.values())
    lines += [
        "Peak RSS (VmHWM from /proc) of each `serve` process at the end of the benchmark that "
        "drove it (benchmarks 1-3 each start their own instance); the goal is <= 150 MB for "
        "every one.",
        "",
        "| benchmark | peak RSS of `serve` (MB) |",
        "| --- | --- |",
        *(f"| {name} | {mb:.0f} |" for name, mb in peaks.items()),
        "",
        f"Highest: {worst:.0f} MB: {'met' if worst <= 150 else '**missed**'}.",
        "",
    ]
    helpers = results.get("fanout", {}).get("signing_hwm_mb")
    if helpers:
        lines += [
            f"Beside it, each of the fan-out's signing processes (children of `serve`, "
            f"FEDIVERSE_STORIES_SIGNING_PROCESSES) peaked at {helpers:.0f} MB at most.",
            "",
        ]
    return "\n".join(lines)


def report(m: dict[str, str], results: dict[str, Any], runs: int, seconds: float) -> str:
    header = [
        "# Benchmarks",
        "",
        "Written by `make bench` (`python -m bench`); every figure is the median of "
        f"{runs} runs with min and max. Ratios are against bare ceilings measured in the "
        "same run, which is what makes them mean something on a shared, noisy machine.",
        "",
        f"- Machine: {m['cpu']}, {m['cores']} cores, {m['ram']} RAM, Python {m['python']}",
        f"- Date: {m['date']}; the whole run took {seconds:.0f} s",
        f"- Load average when the run ended: {Path('/proc/loadavg').read_text().split()[0]} "
        "(other work shares this machine: absolute rates swing, ratios much less)",
        "",
    ]
    sections = [BENCHMARKS[name].section(r) for name, r in results.items() if name != "bovine"]
    sections.append(memory_section(results))  # section 4, then 5
    if "bovine" in results:
        sections.append(BENCHMARKS["bovine"].section(results["bovine"]))
    return "\n".join(header) + "\n".join(sections)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench")
    # Five: on these shared machines one fan-out's ratio swung from 0.42 to 0.84 between the
    # runs of one `make bench`, and a median of three moved by a fifth from one run to the next.
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--out", default=str(ROOT / "BENCHMARKS.md"))
    parser.add_argument("--only", action="append", choices=sorted(BENCHMARKS), default=[])
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args()
    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="fediverse-stories-bench-"))
    try:
        m = machine()
        results: dict[str, Any] = {}
        for name in args.only or list(BENCHMARKS):
            print(f"--- {name}", flush=True)
            results[name] = BENCHMARKS[name].run(workdir, runs=args.runs)
            (workdir / "results.json").write_text(json.dumps(results, indent=1))
        Path(args.out).write_text(report(m, results, args.runs, time.monotonic() - started))
        print(f"wrote {args.out}")
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"kept {workdir}")


if __name__ == "__main__":
    main()
