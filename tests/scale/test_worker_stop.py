"""SIGTERM lets a `worker` process finish what it holds, or release it: it never stays claimed."""

from __future__ import annotations

import signal
from collections import Counter
from pathlib import Path

import pytest

from tests.scale.cluster import Cluster, SinkProcess, cluster, payload_of, sink, wait_for
from tests.support.databases import DatabaseTemplates

pytestmark = pytest.mark.slow

HOSTS = 4


def _setup(site: Cluster, peers: SinkProcess) -> None:
    site.cli("user", "add", "amina", "--role", "author")
    site.add_followers("amina", [(netloc, "f", True) for netloc in peers.netlocs])


def test_sigterm_mid_delivery_finishes_the_jobs_in_hand_and_exits_0(
    database_templates: DatabaseTemplates, tmp_path: Path
) -> None:
    with (
        sink(tmp_path, first=220, count=HOSTS, delay=3.0) as peers,
        cluster(database_templates, tmp_path) as site,
    ):
        _setup(site, peers)
        (worker,) = site.start([site.base_port], workers=1)
        site.publish("amina", "Stopping politely")
        # Every delivery has reached its inbox, whose answer takes 3 s: the worker is mid-request.
        wait_for(lambda: len(peers.entries()) == HOSTS, "the deliveries to arrive")
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=20) == 0
        prefix = site.worker_prefix(worker)
        rows = site.sql("SELECT state, claimed_by, lease_until FROM jobs")
        assert [r["state"] for r in rows] == ["done"] * HOSTS
        assert all(r["claimed_by"].startswith(prefix) for r in rows)
        assert all(r["lease_until"] is None for r in rows)
        assert Counter(e["host"] for e in peers.entries() if e["ok"]) == dict.fromkeys(
            peers.netlocs, 1
        )


def test_sigterm_releases_jobs_that_outlast_the_stop_grace(
    database_templates: DatabaseTemplates, tmp_path: Path
) -> None:
    with (
        sink(tmp_path, first=230, count=HOSTS, delay=60.0) as peers,
        cluster(database_templates, tmp_path, fetch_timeout_seconds="60") as site,
    ):
        _setup(site, peers)
        (worker,) = site.start(
            [site.base_port], workers=1, FEDIVERSE_STORIES_WORKER_STOP_GRACE_SECONDS="1"
        )
        site.publish("amina", "Stopping firmly")
        wait_for(lambda: len(peers.entries()) == HOSTS, "the deliveries to arrive")
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=15) == 0
        rows = site.sql("SELECT state, claimed_by, lease_until, attempts, payload FROM jobs")
        # Released, not left claimed until the lease ends: the next worker takes them at once.
        assert [(r["state"], r["claimed_by"], r["lease_until"], r["attempts"]) for r in rows] == [
            ("queued", None, None, 0)
        ] * HOSTS
        assert {payload_of(r)["inbox"] for r in rows} == {
            f"http://{netloc}/inbox" for netloc in peers.netlocs
        }
