"""The reliability recorder: figures recorded by the tests themselves, written to RELIABILITY.md.

A test records what it measured with `record(case, outcome=None, **figures)`; the recorder
remembers which test was running (pytest's PYTEST_CURRENT_TEST), so a record needs no nodeid.
The standard figures are `lost`, `duplicated`, `retries` and `time_to_recover_s`; any other
keyword is listed as it is (numbers, short strings).

Outcomes (passed, failed, xfailed, skipped with its reason) are not recorded by hand: at the end
of the session they are read from pytest's own reports (the terminal reporter's, or this
module's collector when there is no terminal reporter). Every test under tests/adversarial is
listed: the fault scenarios of test_faults.py with their figures, every battery case with its
outcome (and its figures if it recorded any).

RELIABILITY.md is written only when every fault scenario ran in the session (a `-k` run leaves
it alone). It holds one section per database backend: the section of this run's backend is
replaced, the other backend's section is kept, so the SQLite and PostgreSQL passes of
`make test` end with both in one file. Each section states its date, backend and commit.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
REPORT = ROOT / "RELIABILITY.md"
ADVERSARIAL = "tests/adversarial/"
FAULTS = "tests/adversarial/test_faults.py"

SCENARIOS = {
    1: "A peer down for six hours (503, then refused connections), then back",
    2: "A peer answering 500, 429 with Retry-After, 401, 410 and other 4xx",
    3: "The same incoming activity delivered 20 times at once",
    4: "A worker killed while it holds a claimed job, or between a peer's 2xx and our record",
    5: "An inbox flood of valid and junk requests",
    6: "One slow peer among healthy ones",
    7: "Out-of-order arrival",
}
STANDARD = ("lost", "duplicated", "retries", "time_to_recover_s")
_SCENARIO_TEST = re.compile(r"::test_fault_(\d+)")


@dataclass
class Record:
    nodeid: str
    case: str
    outcome: str | None
    figures: dict[str, Any]


@dataclass
class _State:
    records: list[Record] = field(default_factory=list)
    reports: dict[str, str] = field(default_factory=dict)  # nodeid -> outcome (own collector)


_state = _State()


def record(case: str, outcome: str | None = None, **figures: Any) -> None:
    """Record `figures` for `case` in the running test (callable from any test)."""
    current = os.environ.get("PYTEST_CURRENT_TEST", "?").rsplit(" (", 1)[0]
    _state.records.append(Record(current, case, outcome, dict(figures)))


def records() -> list[Record]:
    return list(_state.records)


# ------------------------------------------------------------------------------- outcomes


def _outcome(report: pytest.TestReport) -> str | None:
    """The outcome a report adds for its test, or None when it adds nothing."""
    if hasattr(report, "wasxfail"):
        return "xfailed" if report.skipped else "xpassed"
    if report.when == "call":
        if report.skipped:
            return _skip_reason(report)
        return report.outcome
    if report.failed:
        return "error" if report.when == "setup" else "error in teardown"
    if report.skipped and report.when == "setup":
        return _skip_reason(report)
    return None


def _skip_reason(report: pytest.TestReport) -> str:
    longrepr = report.longrepr
    reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr or "")
    return f"skipped ({reason.removeprefix('Skipped: ')})"


class _Collector:
    """Collects outcomes when no terminal reporter keeps them (e.g. `-p no:terminal`)."""

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        outcome = _outcome(report)
        if outcome is not None and report.nodeid.startswith(ADVERSARIAL):
            previous = _state.reports.get(report.nodeid)
            if previous in (None, "passed") or outcome.startswith("error"):
                _state.reports[report.nodeid] = outcome


_COLLECTOR = _Collector()


def start(config: pytest.Config) -> None:
    if not config.pluginmanager.is_registered(_COLLECTOR):
        config.pluginmanager.register(_COLLECTOR, "fediverse-stories-reliability")


def _outcomes(config: pytest.Config) -> dict[str, str]:
    terminal = config.pluginmanager.get_plugin("terminalreporter")
    if terminal is None:
        return dict(_state.reports)
    outcomes: dict[str, str] = {}
    for reports in terminal.stats.values():
        for report in reports:
            if not isinstance(report, pytest.TestReport):
                continue
            if not report.nodeid.startswith(ADVERSARIAL):
                continue
            outcome = _outcome(report)
            if outcome is None:
                continue
            previous = outcomes.get(report.nodeid)
            if previous in (None, "passed") or outcome.startswith("error"):
                outcomes[report.nodeid] = outcome
    # Tests the terminal reporter has not seen yet (none, normally) from the own collector.
    for nodeid, outcome in _state.reports.items():
        outcomes.setdefault(nodeid, outcome)
    return outcomes


# ------------------------------------------------------------------------------- writing


def _commit() -> str:
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10
        )
        commit = done.stdout.strip() or "unknown"
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{commit} (with uncommitted changes)" if dirty else commit


def _value(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"
    if isinstance(value, list | tuple):
        return ", ".join(_value(v) for v in value)
    return str(value).replace("|", "\\|").replace("\n", " ")


def _test_name(nodeid: str) -> str:
    return nodeid.split("::", 1)[1] if "::" in nodeid else nodeid


def _section(backend: str, outcomes: dict[str, str]) -> str:
    by_test: dict[str, list[Record]] = defaultdict(list)
    for item in _state.records:
        by_test[item.nodeid].append(item)
    lines = [
        f"## Backend: {backend}",
        "",
        f"- date: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M:%S UTC')}",
        f"- backend: {backend}",
        f"- commit: {_commit()}",
        "",
        "### Fault scenarios",
        "",
    ]
    scenario_tests: dict[int, list[str]] = defaultdict(list)
    for nodeid in sorted(outcomes):
        found = _SCENARIO_TEST.search(nodeid)
        if nodeid.startswith(FAULTS) and found:
            scenario_tests[int(found.group(1))].append(nodeid)
    for number, title in SCENARIOS.items():
        lines += [f"#### {number}. {title}", ""]
        lines += [
            "| test / case | outcome | lost | duplicated | retries | time to recover (s) | other |",
            "|---|---|---|---|---|---|---|",
        ]
        for nodeid in scenario_tests.get(number, []):
            outcome = outcomes[nodeid]
            rows = by_test.get(nodeid) or [Record(nodeid, "", None, {})]
            for row in rows:
                name = _test_name(nodeid) + (f" / {row.case}" if row.case else "")
                standard = [_value(row.figures.get(key)) for key in STANDARD]
                other = "; ".join(
                    f"{key}={_value(value)}"
                    for key, value in row.figures.items()
                    if key not in STANDARD
                )
                shown = outcome if row.outcome is None else f"{outcome} ({row.outcome})"
                lines.append(f"| {name} | {shown} | {' | '.join(standard)} | {other or '-'} |")
        lines.append("")
    battery = sorted(n for n in outcomes if not n.startswith(FAULTS))
    lines += ["### Adversarial battery", ""]
    if not battery:
        lines += ["Not run in this session.", ""]
    else:
        counts: dict[str, int] = defaultdict(int)
        for nodeid in battery:
            counts[outcomes[nodeid].split(" ", 1)[0]] += 1
        summary = ", ".join(f"{n} {outcome}" for outcome, n in sorted(counts.items()))
        lines += [f"{len(battery)} cases: {summary}.", ""]
        lines += ["| case | outcome | figures |", "|---|---|---|"]
        for nodeid in battery:
            figures = "; ".join(
                (f"{row.case}: " if row.case else "")
                + ", ".join(f"{k}={_value(v)}" for k, v in row.figures.items())
                + (f" ({row.outcome})" if row.outcome else "")
                for row in by_test.get(nodeid, [])
            )
            lines.append(
                f"| {_value(nodeid.removeprefix(ADVERSARIAL))} | {_value(outcomes[nodeid])} "
                f"| {figures or '-'} |"
            )
        lines.append("")
    return "\n".join(lines)


HEADER = """# Reliability

Written by the test run itself (tests/adversarial/reliability.py), never by hand: each fault
scenario of tests/adversarial/test_faults.py records its figures while it runs, and every case
of the adversarial battery is listed with the outcome pytest gave it. Long scenarios run on a
fake clock, so "time to recover" is time on that clock. "lost" counts activities that never
arrived, "duplicated" extra copies a receiver got (a receiver deduplicates by activity id),
"retries" delivery attempts after the first. One section per database backend; each is replaced
by the next complete run of the suite on that backend.
"""

_BEGIN = "<!-- reliability:begin {} -->"
_END = "<!-- reliability:end {} -->"
BACKENDS = ("sqlite", "postgresql")


def _existing_sections(text: str) -> dict[str, str]:
    sections: dict[str, str] = {}
    for backend in BACKENDS:
        begin, end = _BEGIN.format(backend), _END.format(backend)
        if begin in text and end in text:
            start = text.index(begin) + len(begin)
            sections[backend] = text[start : text.index(end, start)].strip("\n")
    return sections


def all_scenarios_ran(session: pytest.Session, outcomes: dict[str, str]) -> bool:
    """Every scenario has a test that reported, and every collected scenario test reported."""
    collected = [item.nodeid for item in session.items if item.nodeid.startswith(FAULTS)]
    ran = {
        int(m.group(1))
        for n in outcomes
        if n.startswith(FAULTS) and (m := _SCENARIO_TEST.search(n))
    }
    return set(SCENARIOS) <= ran and all(nodeid in outcomes for nodeid in collected)


def finish(session: pytest.Session, backend: str, path: Path = REPORT) -> bool:
    """Write this backend's section of RELIABILITY.md if every scenario ran; whether it did."""
    outcomes = _outcomes(session.config)
    if not all_scenarios_ran(session, outcomes):
        return False
    sections = _existing_sections(path.read_text(encoding="utf-8")) if path.exists() else {}
    sections[backend] = _section(backend, outcomes)
    parts = [HEADER]
    for name in BACKENDS:
        if name in sections:
            parts.append(f"{_BEGIN.format(name)}\n{sections[name]}\n{_END.format(name)}\n")
    path.write_text("\n".join(parts), encoding="utf-8")
    return True
