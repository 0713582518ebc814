"""Issue 7, must show 1: many web and worker processes on one database lose no job.

Two `serve --no-worker` and three `worker` processes share one fresh database (PostgreSQL, or
one SQLite file: both backends run it). A story goes to 2,000 remote followers on 200 hosts
(200 shared inboxes, one per host; every host is a distinct loopback address 127.0.0.N served
by one sink process that verifies every signature with the key it fetches from our web
processes). One worker is killed with SIGKILL while it holds claimed deliveries; once their
lease expires another worker takes them. Every inbox gets a valid signed delivery, only the
killed worker's jobs may arrive twice, the queue drains, nothing stays claimed.
"""

from __future__ import annotations

import os
import signal
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests.scale.cluster import cluster, payload_of, sink, wait_for
from tests.support.databases import DatabaseTemplates
from tests.support.servers import free_port

pytestmark = pytest.mark.slow

HOSTS = 200
FOLLOWERS_PER_HOST = 10
LEASE_SECONDS = 5
SINK_DELAY = 1.0  # every delivery takes a second: the kill reliably finds jobs in hand
# Jobs each worker runs at once: well below a third of the deliveries, so the first two
# workers to claim cannot take them all and leave the victim none.
WORKER_JOBS = 32


def test_a_story_reaches_2000_followers_on_200_inboxes_despite_a_killed_worker(
    database_templates: DatabaseTemplates, tmp_path: Path
) -> None:
    with (
        sink(tmp_path, first=2, count=HOSTS, delay=SINK_DELAY) as peers,
        cluster(
            database_templates,
            tmp_path,
            job_lease_seconds=str(LEASE_SECONDS),
            worker_jobs=str(WORKER_JOBS),
        ) as site,
    ):
        site.cli("user", "add", "amina", "--role", "author")
        site.add_followers(
            "amina",
            [
                (netloc, f"f{i}", True)
                for netloc in peers.netlocs
                for i in range(FOLLOWERS_PER_HOST)
            ],
        )
        assert site.sql("SELECT count(*) AS n FROM follows")[0]["n"] == HOSTS * FOLLOWERS_PER_HOST

        # Two interchangeable web processes and three workers.
        workers = site.start([site.base_port, free_port()], workers=3)
        documents = [
            httpx.get(
                f"http://127.0.0.1:{port}/users/amina",
                headers={"Accept": "application/activity+json"},
                timeout=10,
            ).json()
            for port in site.web_ports
        ]
        assert documents[0]["publicKey"] == documents[1]["publicKey"]  # the same actor and key
        key_id = documents[0]["publicKey"]["id"]

        victim = workers[0]
        url = site.publish("amina", "Water committees")

        # Kill the first worker while it holds claimed deliveries.
        prefix = site.worker_prefix(victim)
        wait_for(
            lambda: site.sql(
                "SELECT id FROM jobs WHERE state = 'claimed' AND claimed_by LIKE :prefix",
                prefix=prefix + "%",
            ),
            "the first worker to hold a claimed delivery",
        )
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait()
        # Right after its death (well within the lease) what it held is still claimed by it.
        held = site.sql(
            "SELECT id, payload FROM jobs WHERE state = 'claimed' AND claimed_by LIKE :prefix",
            prefix=prefix + "%",
        )
        assert held, "the killed worker held no job"
        held_hosts = {urlsplit(payload_of(r)["inbox"]).netloc for r in held}

        wait_for(
            lambda: (
                site.sql("SELECT count(*) AS n FROM jobs WHERE state IN ('queued', 'claimed')")[0][
                    "n"
                ]
                == 0
            ),
            "the queue to drain",
            seconds=40,
        )
        site.stop_workers()
        assert [w.returncode for w in workers[1:]] == [0, 0]

        entries = peers.entries()
        assert [e for e in entries if not e["ok"]] == [], "a delivery failed verification"
        creates = [e for e in entries if e["type"] == "Create"]
        assert {e["object"] for e in creates} == {url}
        assert {e["key_id"] for e in creates} == {key_id}
        assert {e["path"] for e in creates} == {"/inbox"}  # shared inboxes only
        copies = Counter(e["host"] for e in creates)
        assert set(copies) == set(peers.netlocs), "some inbox received nothing"
        twice = {host for host, n in copies.items() if n > 1}
        assert twice <= held_hosts, (
            f"a second copy of a job the killed worker did not hold: {twice - held_hosts}"
        )
        assert max(copies.values()) <= 2

        # The queue drained and nothing is left claimed: every delivery is done, once.
        states = site.sql("SELECT kind, state, count(*) AS n FROM jobs GROUP BY kind, state")
        assert {(r["kind"], r["state"]): r["n"] for r in states} == {("deliver", "done"): HOSTS}
        assert site.sql("SELECT id FROM jobs WHERE lease_until IS NOT NULL") == []
        reclaimed = site.sql(
            "SELECT id FROM jobs WHERE id IN :ids AND attempts = 2",
            ids=[r["id"] for r in held],
        )
        assert len(reclaimed) == len(held)  # each job the victim held ran again, elsewhere
