"""The `fediverse-stories report ...` commands: reports (Flags) from other servers.

cli.py registers them with `add_report_commands(commands, _Parser)` and merges `COMMANDS`.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any

from fediverse_stories.cli_comments import _run, terminal_safe
from fediverse_stories.context import Context
from fediverse_stories.services import reports
from fediverse_stories.services.errors import Invalid
from fediverse_stories.settings import Settings
from fediverse_stories.whole_numbers import whole_number


def add_report_commands(commands: Any, parser_class: type[argparse.ArgumentParser]) -> None:
    """Add `report list|resolve` to the top-level subparsers."""
    report = commands.add_parser("report", help="reports other servers sent about us")
    sub = report.add_subparsers(dest="report_command", required=True, parser_class=parser_class)
    sub.add_parser("list", help="open reports: id, received, reporter, what they name, their words")
    sub.add_parser("resolve", help="mark a report dealt with").add_argument(
        "id", metavar="ID", help="the report's id, as `report list` prints it"
    )


def cmd_report_list(settings: Settings, args: argparse.Namespace) -> None:
    async def work(ctx: Context) -> list[list[str]]:
        async with ctx.sessions() as session:
            waiting, _ = await reports.for_moderators(session)
        return [
            [
                str(view.report.id),
                view.report.created_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
                view.report.reporter.handle,
                " ".join(json.loads(view.report.objects)),
                view.report.comment,
            ]
            for view in waiting
        ]

    for line in _run(settings, work):
        print("\t".join(terminal_safe(field) for field in line))


def cmd_report_resolve(settings: Settings, args: argparse.Namespace) -> None:
    report_id = whole_number(args.id)
    if report_id is None:
        raise Invalid(f"{args.id!r} is not a report id (see `report list`)")
    _run(settings, lambda ctx: reports.resolve(ctx, report_id, "the command line"))
    print(f"Resolved report {report_id}")


COMMANDS: dict[str, Callable[[Settings, argparse.Namespace], None]] = {
    "report list": cmd_report_list,
    "report resolve": cmd_report_resolve,
}
