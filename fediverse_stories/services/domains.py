"""Instance federation policy (domain block/allow, open or allowlist mode) and per-domain health.

A domain is the host as it appears in actor ids, with its port if it has one, normalised: lower
case, one trailing dot removed, IDNA A-labels (`bücher.example` is `xn--bcher-kva.example`).

Matching: an entry (name, optional port) covers a host (name', port') when name' is name or a
subdomain of it (`a.b.example.org` under `example.org`; never `notexample.org` nor
`example.org.evil.test`), and, if the entry has a port, port' is that port. So a block of
`example.org` covers every port of it and of its subdomains; a block of `example.org:8443` covers
only port 8443 (of it and its subdomains). IP literals cover only themselves.

Refusal: a host is refused if any entry covering it is blocked (a block always wins, even over
a more specific allow), or, in allowlist mode, if no entry covering it is allowed.

Health: failures since the last success, and the number of distinct UTC days with a failure since
then; a domain is unavailable from the 7th such day until a success or a verified request.
"""

from __future__ import annotations

import enum
import functools
import ipaddress
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import cast

import httpx
from sqlalchemy import Connection, Table, bindparam, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from activitypub.errors import WebFingerError
from activitypub.webfinger import normalise_host
from fediverse_stories.db.fast import FastStatement
from fediverse_stories.db.models import Domain, DomainPolicy, InstanceValue, Job, JobState
from fediverse_stories.services.errors import Invalid, NotFound

FEDERATION_MODE = "federation_mode"
UNAVAILABLE_AFTER_DAYS = 7
MAX_DOMAIN_LENGTH = 255  # the column's size
DELIVER_JOB = "deliver"


class FederationMode(enum.StrEnum):
    OPEN = "open"  # everyone federates but blocked domains
    ALLOWLIST = "allowlist"  # only allowed domains (and their subdomains) federate


# --- names -------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=4096)
def normalise_domain(text: str) -> str:
    """The canonical form of a domain an operator typed; Invalid with one clear line if it is not
    a bare host (with optional port). Cached: every delivery asks it of its host three times."""
    if not text:
        raise Invalid("no domain given")
    if any(c.isspace() for c in text):
        raise Invalid(f"invalid domain {text!r}: it contains whitespace")
    if "://" in text or "/" in text or "\\" in text:
        raise Invalid(f"invalid domain {text!r}: give the host only (like example.org), not a URL")
    if "*" in text:
        raise Invalid(
            f"invalid domain {text!r}: no wildcards; a domain covers its subdomains already"
        )
    if "@" in text:
        raise Invalid(f"invalid domain {text!r}: give the host only, without a user part")
    try:
        domain = normalise_host(text)
    except WebFingerError as error:
        raise Invalid(f"invalid domain {text!r}: {_reason(error)}") from None
    if len(domain) > MAX_DOMAIN_LENGTH:
        raise Invalid(f"invalid domain {text!r}: longer than {MAX_DOMAIN_LENGTH} characters")
    return domain


def _reason(error: WebFingerError) -> str:
    message = str(error)
    if "port" in message:
        return "the port must be a number from 1 to 65535"
    if "empty label" in message:
        return "an empty label (a leading dot or two dots in a row)"
    if "IPv6" in message:
        return "not an IPv6 address"
    if message.startswith("invalid host name ") and ": " in message:
        return message.rsplit(": ", 1)[1]
    return "not a host name"


def host_of(url: str) -> str:
    """The normalised domain (port kept) of an http(s) URL: an actor id, key id or inbox URL.
    Invalid if it has none."""
    try:
        parsed = httpx.URL(url)
        raw = parsed.raw_host.decode("ascii")
    except (httpx.InvalidURL, UnicodeDecodeError, TypeError):
        raise Invalid(f"invalid URL {url!r}") from None
    if not raw:
        raise Invalid(f"URL {url!r} has no host")
    if ":" in raw:
        raw = f"[{raw}]"
    return normalise_domain(f"{raw}:{parsed.port}" if parsed.port is not None else raw)


def _split(domain: str) -> tuple[str, str | None]:
    """(name, port) of a normalised domain."""
    if domain.startswith("["):
        end = domain.index("]") + 1
        return domain[:end], domain[end + 1 :] or None
    name, colon, port = domain.partition(":")
    return name, port if colon else None


def _is_ip(name: str) -> bool:
    if name.startswith("["):
        return True
    try:
        ipaddress.IPv4Address(name)
    except ValueError:
        return False
    return True


def covering_entries(domain: str) -> list[str]:
    """Every entry that would cover a normalised domain, most specific first:
    `a.example.org:8443` -> a.example.org:8443, a.example.org, example.org:8443, example.org, ..."""
    name, port = _split(domain)
    if _is_ip(name):
        names = [name]
    else:
        labels = name.split(".")
        names = [".".join(labels[i:]) for i in range(len(labels))]
    entries: list[str] = []
    for candidate in names:
        if port is not None:
            entries.append(f"{candidate}:{port}")
        entries.append(candidate)
    return entries


# --- policy ------------------------------------------------------------------------------------


async def get_mode(session: AsyncSession) -> FederationMode:
    return await session.run_sync(mode_in)


def mode_in(session: Session | Connection) -> FederationMode:
    """The federation mode, read in a synchronous session (the inbox's one-hop step)."""
    found = _MODE.rows(_connection(session), {})
    return mode_from(found[0][0] if found else None)


def _connection(session: Session | Connection) -> Connection:
    """The Core connection to run a `FastStatement` on, in `session`'s transaction."""
    return session if isinstance(session, Connection) else session.connection()


def mode_from(stored: str | None) -> FederationMode:
    """The mode a stored value means (none stored: open)."""
    if stored is None:
        return FederationMode.OPEN
    try:
        return FederationMode(stored)
    except ValueError:
        # An unknown stored value: fail closed rather than federate with everyone.
        return FederationMode.ALLOWLIST


def parse_mode(mode: str) -> FederationMode:
    try:
        return FederationMode(mode)
    except ValueError:
        choices = " or ".join(m.value for m in FederationMode)
        raise Invalid(f"unknown federation mode {mode!r}: choose {choices}") from None


async def set_mode(session: AsyncSession, mode: str) -> FederationMode:
    """Set the federation mode; returns the previous one."""
    wanted = parse_mode(mode)
    previous = await get_mode(session)
    row = await session.get(InstanceValue, FEDERATION_MODE)
    if row is None:
        session.add(InstanceValue(key=FEDERATION_MODE, value=wanted.value))
    else:
        row.value = wanted.value
    await session.flush()
    return previous


async def set_policy(session: AsyncSession, domain: str, policy: DomainPolicy) -> DomainPolicy:
    """Set a domain's policy (normalising it); returns the previous policy."""
    row = await _row(session, normalise_domain(domain))
    previous = row.policy
    row.policy = policy
    await session.flush()
    return previous


async def unblock(session: AsyncSession, domain: str) -> str:
    """Remove a domain's block; NotFound (one line) if that very domain is not blocked.
    Returns the normalised domain."""
    name = normalise_domain(domain)
    row = await session.get(Domain, name, with_for_update=True)
    if row is None or row.policy != DomainPolicy.BLOCKED:
        parent = await _blocking_entry(session, name)
        if parent is not None:
            raise NotFound(f"{name} is not blocked itself; it is covered by the block of {parent}")
        raise NotFound(f"{name} is not blocked")
    row.policy = DomainPolicy.NONE
    await session.flush()
    return name


async def _blocking_entry(session: AsyncSession, domain: str) -> str | None:
    entries = covering_entries(domain)
    found = await session.execute(
        select(Domain.domain).where(
            Domain.domain.in_(entries), Domain.policy == DomainPolicy.BLOCKED
        )
    )
    blocked = set(found.scalars())
    return next((entry for entry in entries if entry in blocked), None)


async def list_policies(session: AsyncSession) -> list[tuple[str, DomainPolicy]]:
    """Every domain with a policy (blocked or allowed), by name."""
    rows = await session.execute(
        select(Domain.domain, Domain.policy)
        .where(Domain.policy != DomainPolicy.NONE)
        .order_by(Domain.domain)
    )
    return [(domain, DomainPolicy(policy)) for domain, policy in rows.all()]


async def is_refused(session: AsyncSession, host: str) -> str | None:
    """A short reason if traffic from or to `host` (any spelling, port kept) must be refused,
    else None."""
    return await session.run_sync(refusal, host)


def refusal(session: Session, host: str) -> str | None:
    """`is_refused` in a synchronous session (the inbox's one-hop step). Two primary-key
    queries: the mode, and the entries that could cover the host."""
    return refusals(session, [host])[host]


def refusals(session: Session | Connection, hosts: Iterable[str]) -> dict[str, str | None]:
    """`refusal` for many hosts at once (a batch of deliveries), in two queries whatever their
    number: the entries that could cover any of them, and the mode."""
    reasons: dict[str, str | None] = {}
    covering: dict[str, tuple[str, list[str]]] = {}
    for host in hosts:
        try:
            domain = normalise_domain(host)
        except Invalid:
            reasons[host] = f"invalid host {host[:100]!r}"
            continue
        covering[host] = (domain, covering_entries(domain))
    policies = _policies_in(session, {e for _, entries in covering.values() for e in entries})
    allowlist: bool | None = None  # read once, and only if some host is not blocked
    for host, (domain, entries) in covering.items():
        blocked = next((e for e in entries if policies.get(e) == DomainPolicy.BLOCKED), None)
        if blocked is None and allowlist is None:
            allowlist = mode_in(session) == FederationMode.ALLOWLIST
        allowed = any(policies.get(e) == DomainPolicy.ALLOWED for e in entries)
        reasons[host] = verdict(domain, blocked, allowed, bool(allowlist))
    return reasons


def verdict(domain: str, blocked_by: str | None, allowed: bool, allowlist: bool) -> str | None:
    """Why traffic with `domain` is refused, or None: the most specific entry blocking it, or
    allowlist mode with no entry allowing it."""
    if blocked_by is not None:
        return f"domain {blocked_by} is blocked"
    if allowlist and not allowed:
        return f"domain {domain} is not on the allowlist"
    return None


def _policies_in(session: Session | Connection, entries: set[str]) -> dict[str, DomainPolicy]:
    """The policy of each of `entries` that has one."""
    if not entries:
        return {}
    rows = _POLICIES.rows(_connection(session), {"entries": sorted(entries)})
    return {name: DomainPolicy(policy) for name, policy in rows}


# Built once, and run on the DBAPI cursor on SQLite (db/fast.py): every batch of deliveries
# runs them, and building a statement, or Core's execution around it, cost more than the SQL.
_DOMAINS = cast(Table, Domain.__table__)
_POLICIES = FastStatement(
    select(_DOMAINS.c.domain, _DOMAINS.c.policy).where(
        _DOMAINS.c.domain.in_(bindparam("entries", expanding=True)),
        _DOMAINS.c.policy != DomainPolicy.NONE,
    )
)
_UNAVAILABLE = FastStatement(
    select(_DOMAINS.c.domain).where(
        _DOMAINS.c.domain.in_(bindparam("domains", expanding=True)),
        _DOMAINS.c.unavailable.is_(True),
    )
)
_VALUES = cast(Table, InstanceValue.__table__)
_MODE = FastStatement(select(_VALUES.c.value).where(_VALUES.c.key == FEDERATION_MODE))


# --- health ------------------------------------------------------------------------------------


async def _row(session: AsyncSession, domain: str) -> Domain:
    """The domain's row, created if missing (safe against a concurrent insert), locked for update
    on PostgreSQL so that counters are not lost between workers."""
    return await session.run_sync(_row_in, domain)


def _row_in(session: Session, domain: str) -> Domain:
    """`_row` in a synchronous session."""
    row = session.get(Domain, domain, with_for_update=True, populate_existing=True)
    if row is not None:
        return row
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    session.execute(
        insert(Domain)
        .values(
            domain=domain,
            policy=DomainPolicy.NONE,
            failures_since=0,
            failure_days=0,
            unavailable=False,
        )
        .on_conflict_do_nothing(index_elements=["domain"])
    )
    row = session.get(Domain, domain, with_for_update=True, populate_existing=True)
    assert row is not None
    return row


def _reset(row: Domain) -> None:
    row.failures_since = 0
    row.failure_days = 0
    row.first_failure_at = None
    row.unavailable = False


async def record_success(session: AsyncSession, host: str, now: datetime) -> None:
    """A delivery to `host` succeeded: it is healthy again."""
    await session.run_sync(success_in, host, now)


def success_in(session: Session, host: str, now: datetime) -> None:
    """`record_success` in a synchronous session (the delivery's one-hop step)."""
    row = _row_in(session, normalise_domain(host))
    row.last_success_at = now
    _reset(row)
    session.flush()


_HEALTHY = {"failures_since": 0, "failure_days": 0, "first_failure_at": None}
_SUCCESS_COLUMNS = ("domain", "policy", "last_success_at", *_HEALTHY, "unavailable")


@functools.cache
def _success_upsert(dialect: str) -> FastStatement:
    """The upsert `successes_in` runs, built once per dialect."""
    insert = pg_insert(_DOMAINS) if dialect == "postgresql" else sqlite_insert(_DOMAINS)
    insert = insert.values({name: bindparam(name) for name in _SUCCESS_COLUMNS})
    return FastStatement(
        insert.on_conflict_do_update(
            index_elements=["domain"],
            set_={
                "last_success_at": insert.excluded.last_success_at,
                **_HEALTHY,
                "unavailable": False,
            },
        )
    )


def successes_in(connection: Connection, successes: Iterable[tuple[str, datetime]]) -> None:
    """`record_success` for many deliveries at once (a batch): one upsert, executed per domain.

    The upsert resets the counters atomically, so no row lock is needed even between workers.
    """
    latest: dict[str, datetime] = {}
    for host, now in successes:
        domain = normalise_domain(host)
        if domain not in latest or now > latest[domain]:
            latest[domain] = now
    if not latest:
        return
    _success_upsert(connection.dialect.name).many(
        connection,
        [
            {
                "domain": domain,
                "policy": DomainPolicy.NONE,
                "last_success_at": now,
                **_HEALTHY,
                "unavailable": False,
            }
            for domain, now in sorted(latest.items())
        ],
    )


async def record_failure(session: AsyncSession, host: str, now: datetime) -> None:
    """A delivery to `host` failed (after its own retries are counted, once per attempt)."""
    await session.run_sync(failure_in, host, now)


def failure_in(session: Session, host: str, now: datetime) -> None:
    """`record_failure` in a synchronous session (the delivery's one-hop step)."""
    row = _row_in(session, normalise_domain(host))
    last = row.last_failure_at
    today = now.astimezone(UTC).date()
    # A new day counts if there is no failure yet since the last success (failure_days == 0) or
    # the previous failure was on an earlier UTC day. A late report stamped earlier adds nothing.
    if row.failure_days == 0 or last is None or today > last.astimezone(UTC).date():
        row.failure_days += 1
    row.failures_since += 1
    if row.first_failure_at is None:
        row.first_failure_at = now
    if last is None or now > last:
        row.last_failure_at = now
    row.unavailable = row.failure_days >= UNAVAILABLE_AFTER_DAYS
    session.flush()


def has_failures(
    failures_since: int | None, unavailable: bool | None, failure_days: int | None
) -> bool:
    """A domain row with failures a verified request from it resets (None: no row)."""
    return bool(failures_since or unavailable or failure_days)


async def record_verified_request(session: AsyncSession, host: str, now: datetime) -> None:
    """A request from `host` passed signature verification: the domain is alive.

    Resets the failure counters (not last_success_at, which is about our deliveries). Writes
    only when there is something to reset, so the inbox path costs one primary-key read.
    """
    domain = normalise_domain(host)
    row = await session.get(Domain, domain)
    if row is None or not has_failures(row.failures_since, row.unavailable, row.failure_days):
        return
    row = await _row(session, domain)
    _reset(row)
    await session.flush()


async def is_unavailable(session: AsyncSession, host: str) -> bool:
    """True if deliveries to `host` should be skipped: failures on 7 distinct days, no success."""
    return await session.run_sync(unavailable_in, host)


def unavailable_in(session: Session, host: str) -> bool:
    """`is_unavailable` in a synchronous session (the delivery's one-hop step)."""
    try:
        domain = normalise_domain(host)
    except Invalid:
        return False
    row = session.get(Domain, domain)
    return row is not None and row.unavailable


def unavailable_among(session: Session | Connection, hosts: Iterable[str]) -> set[str]:
    """The hosts among `hosts` that `is_unavailable` (a batch of deliveries), in one query."""
    domains: dict[str, str] = {}
    for host in hosts:
        try:
            domains[host] = normalise_domain(host)
        except Invalid:
            continue
    if not domains:
        return set()
    found = _UNAVAILABLE.rows(_connection(session), {"domains": sorted(set(domains.values()))})
    unavailable = {domain for (domain,) in found}
    return {host for host, domain in domains.items() if domain in unavailable}


@dataclass(frozen=True)
class DomainHealth:
    domain: str
    policy: DomainPolicy
    last_success_at: datetime | None
    first_failure_at: datetime | None
    last_failure_at: datetime | None
    failures_since: int
    failure_days: int
    unavailable: bool
    queued: int  # delivery jobs queued or claimed whose inbox is on this domain


async def queued_deliveries(session: AsyncSession) -> Counter[str]:
    """Queued or claimed delivery jobs per inbox domain.

    Counted in Python from the payloads (JSON): fine while the queue is small; a `domain`
    column on jobs would let the database count.
    """
    payloads = await session.execute(
        select(Job.payload).where(
            Job.kind == DELIVER_JOB, Job.state.in_((JobState.QUEUED, JobState.CLAIMED))
        )
    )
    counts: Counter[str] = Counter()
    for payload in payloads.scalars():
        inbox = payload.get("inbox") if isinstance(payload, dict) else None
        if not isinstance(inbox, str):
            continue
        try:
            counts[host_of(inbox)] += 1
        except Invalid:
            continue
    return counts


async def health(session: AsyncSession) -> list[DomainHealth]:
    """Every known domain (a row, or a queued delivery) with its health, by name."""
    queued = await queued_deliveries(session)
    rows = {row.domain: row for row in (await session.execute(select(Domain))).scalars()}
    result: list[DomainHealth] = []
    for domain in sorted(set(rows) | set(queued)):
        row = rows.get(domain)
        if row is None:
            result.append(
                DomainHealth(
                    domain, DomainPolicy.NONE, None, None, None, 0, 0, False, queued[domain]
                )
            )
            continue
        result.append(
            DomainHealth(
                domain=domain,
                policy=DomainPolicy(row.policy),
                last_success_at=row.last_success_at,
                first_failure_at=row.first_failure_at,
                last_failure_at=row.last_failure_at,
                failures_since=row.failures_since,
                failure_days=row.failure_days,
                unavailable=row.unavailable,
                queued=queued[domain],
            )
        )
    return result
