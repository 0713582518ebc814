"""The inbox's hot path in the database: one read and, for a new activity, two inserts.

A signed activity from an actor whose key we hold needs, before its 202: the signer's domain
policy, the key, the domain's health (failures to reset?), and whether the activity is already
stored. `read` gets all of it in one statement, inside the inbox's one hop
(`Context.on_connection`); `store_new` writes the rows and jobs of a batch of concurrent
requests' new activities in one transaction (the inbox's group commit). All of it goes through
`FastStatement`, because on SQLite SQLAlchemy's per-statement overhead, not SQL, was the cost
(BENCHMARKS.md, "Inbox").
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    BindParameter,
    Connection,
    String,
    bindparam,
    cast,
    func,
    insert,
    literal,
    select,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import aliased

from activitypub.keys import PublicKey, load_public_pem
from activitypub.vocab import id_of, primary_type
from fediverse_stories.db.fast import FastStatement
from fediverse_stories.db.models import (
    Actor,
    Domain,
    DomainPolicy,
    InboxActivity,
    InstanceValue,
)
from fediverse_stories.inbound.origin import NEEDS_OBJECT
from fediverse_stories.queue import INSERT_JOB, new_job
from fediverse_stories.services import domains
from fediverse_stories.services.errors import Invalid
from fediverse_stories.wakeup import announce

# Entries that can cover one host (itself, with and without port, and its parent domains); a
# host with more labels than this fits takes the inbox's general path.
MAX_ENTRIES = 8

_health = aliased(Domain)
_one = select(literal(1).label("one")).subquery()


def _read_statement(entries: int) -> FastStatement:
    """The reading for a host with `entries` covering entries (bound as e0, e1, ...)."""
    covering: list[BindParameter[Any]] = [bindparam(f"e{n}") for n in range(entries)]
    return FastStatement(
        select(
            select(InstanceValue.value)
            .where(InstanceValue.key == domains.FEDERATION_MODE)
            .scalar_subquery(),
            # Every covering entry with a policy, as "policy domain,...": one scan of domains
            # (a scan per policy cost a third of the whole read).
            select(func.aggregate_strings(cast(Domain.policy, String) + " " + Domain.domain, ","))
            .where(Domain.domain.in_(covering), Domain.policy != DomainPolicy.NONE)
            .scalar_subquery(),
            select(InboxActivity.id)
            .where(
                InboxActivity.uri == bindparam("uri"),
                InboxActivity.signer_key_id == bindparam("key_id"),
            )
            .scalar_subquery(),
            Actor.uri,
            Actor.public_key_pem,
            Actor.suspended,
            _health.failures_since,
            _health.unavailable,
            _health.failure_days,
        )
        .select_from(_one)
        .outerjoin(Actor, Actor.key_id == bindparam("key_id"))
        .outerjoin(_health, _health.domain == Actor.domain)
        .limit(1)
    )


# One statement per number of covering entries (a host and its parents: usually 2 or 3), so
# no entry is bound or looked up twice.
_READS = {entries: _read_statement(entries) for entries in range(1, MAX_ENTRIES + 1)}

_STORED = FastStatement(
    select(InboxActivity.id).where(
        InboxActivity.uri == bindparam("uri"), InboxActivity.signer_key_id == bindparam("key_id")
    )
)

_INSERT_ACTIVITY = FastStatement(
    insert(InboxActivity).values(
        uri=bindparam("uri"),
        type=bindparam("type"),
        actor_uri=bindparam("actor_uri"),
        signer_key_id=bindparam("signer_key_id"),
        raw=bindparam("raw"),
        received_at=bindparam("received_at"),
    )
)


@dataclass(frozen=True)
class Reading:
    """What the inbox needs to know about one request, read in one statement."""

    refused: str | None
    stored: bool  # this activity from this signer is already here
    actor_uri: str | None  # the actor holding the key, if we know it
    public_key_pem: str | None
    suspended: bool
    health_to_reset: bool  # the signer's domain has failures a verified request resets


def read(connection: Connection, key_host: str, key_id: str, activity_id: str) -> Reading | None:
    """The reading, or None when the host cannot be read this way (invalid, too many labels)."""
    covering = _covering(key_host)
    if covering is None:
        return None
    domain, entries = covering
    params: dict[str, Any] = dict(entries)
    params.update(uri=activity_id, key_id=key_id)
    (mode, policies, seen, uri, pem, suspended, *health), *_ = _READS[len(entries)].rows(
        connection, params
    )
    blocked_by, allowed = _policy_entries(policies)
    refused = domains.verdict(
        domain, blocked_by, allowed, domains.mode_from(mode) == domains.FederationMode.ALLOWLIST
    )
    failures_since, unavailable, failure_days = health
    return Reading(
        refused=refused,
        stored=seen is not None,
        actor_uri=uri,
        public_key_pem=pem,
        suspended=bool(suspended),
        health_to_reset=domains.has_failures(failures_since, unavailable, failure_days),
    )


def _policy_entries(policies: str | None) -> tuple[str | None, bool]:
    """From the read's "policy domain,..." list: the most specific blocking entry (the longest:
    a host is longer than its parent domains), and whether any entry allows."""
    blocked_by: str | None = None
    allowed = False
    for item in policies.split(",") if policies else ():
        policy, _, entry = item.partition(" ")
        if policy == DomainPolicy.BLOCKED and (blocked_by is None or len(entry) > len(blocked_by)):
            blocked_by = entry
        allowed = allowed or policy == DomainPolicy.ALLOWED
    return blocked_by, allowed


def stored(connection: Connection, activity_id: str, key_id: str) -> bool:
    """Whether this activity from this signer is already here (a retry or a replay)."""
    return bool(_STORED.rows(connection, {"uri": activity_id, "key_id": key_id}))


def store(
    connection: Connection, activity: dict[str, Any], key_id: str, body: bytes, now: datetime
) -> None:
    """The new activity's row and the job that processes it, in the caller's transaction."""
    row_id = _INSERT_ACTIVITY.insert(
        connection,
        {
            "uri": activity["id"],
            "type": (primary_type(activity["type"], NEEDS_OBJECT) or "?")[:64],
            "actor_uri": str(id_of(activity["actor"])),
            "signer_key_id": key_id,
            "raw": body.decode("utf-8"),
            "received_at": now,
        },
    )
    INSERT_JOB.insert(connection, new_job(now, "inbox", {"id": row_id}))
    announce(connection)


# What `store_new` stores for one request: the activity, its signer's keyId, the body as
# received, and when it was received.
NewActivity = tuple[dict[str, Any], str, bytes, datetime]


def store_new(connection: Connection, batch: list[NewActivity]) -> list[bool]:
    """Each new activity of a batch stored once, with its job, in the caller's transaction;
    False for one already stored (a replay that raced in, or twice in the batch).

    A duplicate that slips past the check (another process storing it meanwhile) fails its
    own insert only: SQLite aborts just the failing statement, and on PostgreSQL, where a
    failed statement aborts the whole transaction, each activity goes in under a savepoint.
    """
    savepoints = connection.dialect.name != "sqlite"
    results: list[bool] = []
    for activity, key_id, body, received_at in batch:
        if stored(connection, activity["id"], key_id):
            results.append(False)
            continue
        try:
            if savepoints:
                with connection.begin_nested():
                    store(connection, activity, key_id, body, received_at)
            else:
                store(connection, activity, key_id, body, received_at)
        except IntegrityError:
            results.append(False)
            continue
        results.append(True)
    return results


@lru_cache(maxsize=4096)
def _covering(key_host: str) -> tuple[str, tuple[tuple[str, str], ...]] | None:
    """The normalised domain and the `e0, e1, ...` entries that could cover it (parsing a host
    costs more than the query; a busy inbox hears from the same hosts again and again)."""
    try:
        domain = domains.normalise_domain(key_host)
    except Invalid:
        return None
    entries = domains.covering_entries(domain)
    if not entries or len(entries) > MAX_ENTRIES:
        return None
    return domain, tuple((f"e{n}", entry) for n, entry in enumerate(entries))


@lru_cache(maxsize=1024)
def public_key(pem: str) -> PublicKey:
    """A loaded public key (parsing PEM costs more than verifying with it)."""
    return load_public_pem(pem)
