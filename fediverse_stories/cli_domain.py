"""The `fediverse-stories domain ...` commands: federation policy and per-domain delivery health.

cli.py registers them with `add_domain_commands(commands, _Parser)` and merges `COMMANDS`.
"""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from fediverse_stories.context import Context
from fediverse_stories.db.models import DomainPolicy
from fediverse_stories.services import domains
from fediverse_stories.settings import Settings


def add_domain_commands(commands: Any, parser_class: type[argparse.ArgumentParser]) -> None:
    """Add `domain block|unblock|allow|mode|list|health` to the top-level subparsers."""
    domain = commands.add_parser(
        "domain", help="federation policy (block, allow, mode) and per-domain delivery health"
    )
    sub = domain.add_subparsers(dest="domain_command", required=True, parser_class=parser_class)
    hint = "the host as in actor ids, with its port if it has one; covers its subdomains"
    sub.add_parser("block", help="refuse traffic from and deliveries to a domain").add_argument(
        "domain", metavar="DOMAIN", help=hint
    )
    sub.add_parser("unblock", help="lift a domain's block").add_argument(
        "domain", metavar="DOMAIN", help=hint
    )
    sub.add_parser("allow", help="allow a domain (used in allowlist mode)").add_argument(
        "domain", metavar="DOMAIN", help=hint
    )
    sub.add_parser("mode", help="federate with everyone not blocked, or only allowed").add_argument(
        "mode", choices=[m.value for m in domains.FederationMode]
    )
    sub.add_parser("list", help="the mode and every blocked or allowed domain")
    sub.add_parser("health", help="per-domain delivery health and queued deliveries")


def _run(settings: Settings, work: Callable[[Context], Awaitable[Any]]) -> Any:
    # Imported here: cli imports this module to register the commands.
    from fediverse_stories.cli import _after_migrated, run_with_context

    return run_with_context(settings, _after_migrated(work))


def cmd_domain_block(settings: Settings, args: argparse.Namespace) -> None:
    name = domains.normalise_domain(args.domain)

    async def work(ctx: Context) -> DomainPolicy:
        async with ctx.sessions.begin() as session:
            return await domains.set_policy(session, name, DomainPolicy.BLOCKED)

    previous = _run(settings, work)
    if previous == DomainPolicy.BLOCKED:
        print(f"{name} is already blocked")
    elif previous == DomainPolicy.ALLOWED:
        print(f"Blocked {name} (it was allowed)")
    else:
        print(f"Blocked {name} and its subdomains")


def cmd_domain_unblock(settings: Settings, args: argparse.Namespace) -> None:
    name = domains.normalise_domain(args.domain)

    async def work(ctx: Context) -> str:
        async with ctx.sessions.begin() as session:
            return await domains.unblock(session, name)

    print(f"Unblocked {_run(settings, work)}")


def cmd_domain_allow(settings: Settings, args: argparse.Namespace) -> None:
    name = domains.normalise_domain(args.domain)

    async def work(ctx: Context) -> tuple[DomainPolicy, domains.FederationMode]:
        async with ctx.sessions.begin() as session:
            previous = await domains.set_policy(session, name, DomainPolicy.ALLOWED)
            return previous, await domains.get_mode(session)

    previous, mode = _run(settings, work)
    if previous == DomainPolicy.ALLOWED:
        print(f"{name} is already allowed")
    elif previous == DomainPolicy.BLOCKED:
        print(f"Allowed {name} and its subdomains (it was blocked)")
    else:
        print(f"Allowed {name} and its subdomains")
    if mode == domains.FederationMode.OPEN:
        print("The mode is open: allowed domains matter once `domain mode allowlist` is set.")


def cmd_domain_mode(settings: Settings, args: argparse.Namespace) -> None:
    mode = domains.parse_mode(args.mode)

    async def work(ctx: Context) -> int:
        async with ctx.sessions.begin() as session:
            await domains.set_mode(session, mode)
            policies = await domains.list_policies(session)
            return sum(1 for _, policy in policies if policy == DomainPolicy.ALLOWED)

    allowed = _run(settings, work)
    print(f"mode: {mode.value}")
    if mode == domains.FederationMode.ALLOWLIST and allowed == 0:
        print("No domain is allowed yet: all remote traffic is refused until `domain allow`.")


def cmd_domain_list(settings: Settings, args: argparse.Namespace) -> None:
    async def work(ctx: Context) -> tuple[domains.FederationMode, list[tuple[str, DomainPolicy]]]:
        async with ctx.sessions() as session:
            return await domains.get_mode(session), await domains.list_policies(session)

    mode, policies = _run(settings, work)
    print(f"mode: {mode.value}")
    for name, policy in policies:
        print(f"{name}\t{policy.value}")


def _when(moment: datetime | None) -> str:
    return moment.isoformat(timespec="seconds") if moment is not None else "never"


HEALTH_HEADER = "domain\tlast success\tfailures since\tfailure days\tunavailable\tqueued"


def cmd_domain_health(settings: Settings, args: argparse.Namespace) -> None:
    async def work(ctx: Context) -> list[domains.DomainHealth]:
        async with ctx.sessions() as session:
            return await domains.health(session)

    rows = _run(settings, work)
    print(HEALTH_HEADER)
    for row in rows:
        print(
            "\t".join(
                (
                    row.domain,
                    _when(row.last_success_at),
                    str(row.failures_since),
                    str(row.failure_days),
                    "yes" if row.unavailable else "no",
                    str(row.queued),
                )
            )
        )


COMMANDS: dict[str, Callable[[Settings, argparse.Namespace], None]] = {
    "domain block": cmd_domain_block,
    "domain unblock": cmd_domain_unblock,
    "domain allow": cmd_domain_allow,
    "domain mode": cmd_domain_mode,
    "domain list": cmd_domain_list,
    "domain health": cmd_domain_health,
}
