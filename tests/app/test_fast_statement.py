"""FastStatement (db/fast.py) reads and writes exactly what Core would, on the real database.

On SQLite it runs on the DBAPI cursor, with SQLAlchemy's compiled SQL and value processors; on
PostgreSQL it is Core itself, so these tests hold it to the same answers on both.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from typing import cast as typing_cast

import pytest
from sqlalchemy import (
    Connection,
    String,
    Table,
    bindparam,
    cast,
    func,
    insert,
    literal,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from fediverse_stories.db.fast import FastStatement
from fediverse_stories.db.models import Domain, DomainPolicy, Job, JobState
from fediverse_stories.queue import INSERT_JOB
from tests.support.instances import InstanceFactory

_DOMAINS = typing_cast(Table, Domain.__table__)
_JOBS = typing_cast(Table, Job.__table__)
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)

BLOCKED_AMONG = select(_DOMAINS.c.domain, _DOMAINS.c.policy).where(
    _DOMAINS.c.domain.in_(bindparam("names", expanding=True)),
    _DOMAINS.c.policy == DomainPolicy.BLOCKED,  # a value bound in the statement itself
)
ADD_DOMAIN = insert(_DOMAINS).values(
    domain=bindparam("domain"), policy=bindparam("policy"), unavailable=bindparam("unavailable")
)
CLAIM = (
    update(_JOBS)
    .where(_JOBS.c.id.in_(bindparam("ids", expanding=True)), _JOBS.c.state == JobState.QUEUED)
    .values(state=JobState.CLAIMED, lease_until=bindparam("lease"), attempts=_JOBS.c.attempts + 1)
    .returning(_JOBS.c.id, _JOBS.c.payload, _JOBS.c.lease_until, _JOBS.c.attempts)
)
CLOSE = (
    update(_JOBS)
    .where(_JOBS.c.id == bindparam("job_id"))
    .values(state=bindparam("state"), lease_until=None, finished_at=bindparam("at"))
)


def add_domains(connection: Connection) -> None:
    FastStatement(ADD_DOMAIN).many(
        connection,
        [
            {"domain": f"d{n}.example", "policy": policy, "unavailable": n % 2 == 0}
            for n, policy in enumerate(
                [
                    DomainPolicy.BLOCKED,
                    DomainPolicy.NONE,
                    DomainPolicy.BLOCKED,
                    DomainPolicy.ALLOWED,
                ]
            )
        ],
    )


async def test_a_select_with_lists_of_every_length_reads_what_core_reads(
    instances: InstanceFactory,
) -> None:
    ctx = (await instances.start("http://a.test")).ctx
    await ctx.on_connection(add_domains)
    fast = FastStatement(BLOCKED_AMONG)
    # Lengths in turn, and back again: each length is its own expanded form, kept and reused.
    for names in (
        ["d0.example", "d1.example", "d2.example"],
        [],
        ["d2.example"],
        ["d0.example", "d3.example", "nowhere.example"],
        ["d0.example"],
    ):

        def both(connection: Connection, names: list[str] = names) -> tuple[Any, Any]:
            core = [tuple(row) for row in connection.execute(BLOCKED_AMONG, {"names": names})]
            return fast.rows(connection, {"names": names}), core

        got, core = await ctx.on_connection(both)
        assert sorted(got) == sorted(core)
        assert {name for name, _ in got} == {"d0.example", "d2.example"} & set(names)
        assert all(DomainPolicy(policy) is DomainPolicy.BLOCKED for _, policy in got)


async def test_an_update_returning_gives_decoded_json_and_aware_datetimes(
    instances: InstanceFactory,
) -> None:
    ctx = (await instances.start("http://a.test")).ctx
    payloads = [
        {"inbox": f"https://h{n}.example/inbox", "n": n, "nested": [n, None]} for n in range(4)
    ]

    def add_jobs(connection: Connection) -> list[int]:
        rows = [
            {
                "kind": "k",
                "payload": p,
                "state": JobState.QUEUED,
                "attempts": 0,
                "run_at": NOW,
                "created_at": NOW,
                "host": None,
            }
            for p in payloads
        ]
        return [row[0] for row in connection.execute(insert(_JOBS).returning(_JOBS.c.id), rows)]

    ids = await ctx.on_connection(add_jobs)
    lease = NOW + timedelta(minutes=5)
    claimed = await ctx.on_connection(
        lambda c: FastStatement(CLAIM).rows(c, {"ids": ids[:3], "lease": lease})
    )
    assert sorted(claimed) == sorted(
        (job_id, payload, lease, 1) for job_id, payload in zip(ids[:3], payloads, strict=False)
    )
    # Claimed once only: the guarded UPDATE finds nothing the second time.
    again = await ctx.on_connection(
        lambda c: FastStatement(CLAIM).rows(c, {"ids": ids, "lease": lease})
    )
    assert [row[0] for row in again] == [ids[3]]


async def test_many_closes_each_job_with_the_values_bound_in_the_statement(
    instances: InstanceFactory,
) -> None:
    ctx = (await instances.start("http://a.test")).ctx

    def add_claimed(connection: Connection) -> list[int]:
        row = {
            "kind": "k",
            "payload": {},
            "state": JobState.CLAIMED,
            "attempts": 1,
            "run_at": NOW,
            "created_at": NOW,
            "host": None,
            "lease_until": NOW,
        }
        return [r[0] for r in connection.execute(insert(_JOBS).returning(_JOBS.c.id), [row] * 3)]

    ids = await ctx.on_connection(add_claimed)
    closing = [
        {"job_id": ids[0], "state": JobState.DONE, "at": NOW + timedelta(seconds=1)},
        {"job_id": ids[1], "state": JobState.FAILED, "at": NOW + timedelta(seconds=2)},
    ]
    await ctx.on_connection(lambda c: FastStatement(CLOSE).many(c, closing))
    rows = await ctx.on_connection(
        lambda c: c.execute(
            select(_JOBS.c.id, _JOBS.c.state, _JOBS.c.lease_until, _JOBS.c.finished_at)
            .where(_JOBS.c.id.in_(ids))
            .order_by(_JOBS.c.id)
        ).all()
    )
    assert [tuple(row) for row in rows] == [
        (ids[0], JobState.DONE, None, NOW + timedelta(seconds=1)),
        (ids[1], JobState.FAILED, None, NOW + timedelta(seconds=2)),
        (ids[2], JobState.CLAIMED, NOW, None),  # not in the batch: untouched
    ]


async def test_a_failing_batch_raises_sqlalchemys_error_and_writes_nothing(
    instances: InstanceFactory,
) -> None:
    ctx = (await instances.start("http://a.test")).ctx
    await ctx.on_connection(add_domains)

    def add_with_a_duplicate(connection: Connection) -> None:
        FastStatement(ADD_DOMAIN).many(
            connection,
            [
                {"domain": "new.example", "policy": DomainPolicy.NONE, "unavailable": False},
                {"domain": "d1.example", "policy": DomainPolicy.NONE, "unavailable": False},
            ],
        )

    with pytest.raises(IntegrityError):
        await ctx.on_connection(add_with_a_duplicate)
    names = await ctx.on_connection(
        lambda c: [row[0] for row in c.execute(select(_DOMAINS.c.domain)).all()]
    )
    assert "new.example" not in names  # the step's transaction rolled back as a whole


async def test_a_literal_rendered_into_the_sql_reads_what_core_reads(
    instances: InstanceFactory,
) -> None:
    # aggregate_strings' separator is rendered into the SQL, not bound: FastStatement renders
    # it when it expands the statement, beside an expanding list.
    policies = (
        select(
            func.aggregate_strings(cast(_DOMAINS.c.policy, String) + ":" + _DOMAINS.c.domain, "|")
        )
        .where(_DOMAINS.c.domain.in_(bindparam("names", expanding=True)))
        .scalar_subquery()
    )
    statement = select(policies.label("policies"), literal(7).label("seven"))
    ctx = (await instances.start("http://a.test")).ctx
    await ctx.on_connection(add_domains)
    fast = FastStatement(statement)
    for names in (["d0.example", "d1.example", "d3.example"], ["d2.example"], []):

        def both(connection: Connection, names: list[str] = names) -> tuple[Any, Any]:
            core = [tuple(row) for row in connection.execute(statement, {"names": names})]
            return fast.rows(connection, {"names": names}), core

        got, core = await ctx.on_connection(both)
        assert got == core
        ((listed, seven),) = got
        assert seven == 7
        assert sorted((listed or "").split("|") if names else []) == sorted(
            f"{policy}:{name}"
            for name, policy in [
                ("d0.example", "blocked"),
                ("d1.example", "none"),
                ("d2.example", "blocked"),
                ("d3.example", "allowed"),
            ]
            if name in names
        )


async def test_a_literal_given_only_at_execution_is_refused(instances: InstanceFactory) -> None:
    # A form is kept per list length: a literal given per call would be frozen at its first
    # value, so FastStatement refuses it rather than run it wrong.
    statement = select(_DOMAINS.c.domain).limit(bindparam("n", literal_execute=True))
    ctx = (await instances.start("http://a.test")).ctx
    if ctx.inline_sessions is None:
        pytest.skip("on PostgreSQL FastStatement is Core itself")
    with pytest.raises(TypeError, match="literal parameter n"):
        await ctx.on_connection(lambda c: FastStatement(statement).rows(c, {"n": 1}))


async def test_timestamps_bound_again_and_again_are_each_written_as_given(
    instances: InstanceFactory,
) -> None:
    # Timestamp processing remembers its last value (a step binds one timestamp to several
    # columns): the same objects alternating, and equal but distinct ones, are all kept apart.
    ctx = (await instances.start("http://a.test")).ctx
    first, second = NOW, NOW + timedelta(microseconds=1)
    stamps = [first, second, first, first, second, NOW + timedelta(0)]
    rows = [
        {
            "kind": "k",
            "payload": {"n": n},
            "state": JobState.QUEUED,
            "attempts": 0,
            "run_at": at,
            "created_at": stamps[-1 - n],
            "host": None,
        }
        for n, at in enumerate(stamps)
    ]
    await ctx.on_connection(lambda c: INSERT_JOB.many(c, rows))
    stored = await ctx.on_connection(
        lambda c: c.execute(
            select(_JOBS.c.payload, _JOBS.c.run_at, _JOBS.c.created_at).where(_JOBS.c.kind == "k")
        ).all()
    )
    assert sorted((p["n"], run_at, created) for p, run_at, created in stored) == [
        (n, at, stamps[-1 - n]) for n, at in enumerate(stamps)
    ]
