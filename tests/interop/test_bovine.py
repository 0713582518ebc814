"""Must show 1 and 2 of issue 9, against bovine-herd 0.5.19 (a strict peer: it answers 401 to
unsigned, tampered or stale requests and wants signed GETs of its actors).

The bovine user `milan` acts through its outbox with bovine's own client library
(peers/bovine_act.py); bovine-herd signs and delivers. "bovine verified our signature" is shown
by the activity being in milan's inbox: bovine stores an inbox POST only after verifying it.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.interop.helpers import step

pytestmark = pytest.mark.slow


def test_a_bovine_user_follows_our_author_and_is_accepted(scenario: dict[str, Any]) -> None:
    facts = step(scenario, "bovine_follows_us")
    assert facts["follow_outbox_status"] == 201
    [follow] = facts["our_inbox_follow"]
    assert follow["actor_uri"] == scenario["peers"]["bovine_actor"]
    assert follow["signer_key_id"] == follow["actor_uri"] + "#serverKey"
    assert follow["outcome"] == "follow accepted"
    assert facts["our_follower_state"] == "accepted"
    # bovine processed our Accept (signed by us, verified by bovine): amina is in its following.
    assert facts["bovine_following_us"]


def test_our_story_reaches_the_bovine_user_and_bovine_verifies_it(
    scenario: dict[str, Any],
) -> None:
    facts = step(scenario, "bovine_follows_us")
    assert facts["story_reached_bovine"], facts["bovine_inbox_types"]
    deliveries = [job for job in facts["our_jobs"] if job["kind"] == "deliver"]
    assert deliveries
    assert all(job["state"] == "done" and job["attempts"] == 1 for job in deliveries), deliveries


def test_the_bovine_users_reply_shows_as_a_comment_on_our_story(scenario: dict[str, Any]) -> None:
    facts = step(scenario, "bovine_follows_us")
    assert facts["reply_outbox_status"] == 201
    [create] = facts["our_inbox_reply"]
    assert create["processed_at"] is not None
    assert [c["in_reply_to"] for c in facts["comments"]] == [facts["story_url"]]
    assert facts["comments"][0]["state"] == "visible"
    assert facts["story_page_status"] == 200
    assert facts["reply_on_story_page"]


def test_our_author_follows_a_bovine_user_and_bovine_accepts(scenario: dict[str, Any]) -> None:
    facts = step(scenario, "we_follow_bovine")
    assert facts["follow_reached_bovine"]  # bovine verified our signed Follow and stored it
    assert facts["accept_outbox_statuses"] == [201]
    [accept] = facts["our_inbox_accept"]
    assert accept["outcome"] == "our follow was accepted"
    assert str(facts["our_follow_state"]).lower() == "accepted"
    assert "http://a.test/users/amina" in [
        f.get("id") if isinstance(f, dict) else f for f in facts["bovine_followers"]
    ]


def test_the_bovine_users_post_arrives_and_is_verified_by_us(scenario: dict[str, Any]) -> None:
    facts = step(scenario, "we_follow_bovine")
    assert facts["post_outbox_status"] == 201
    [create] = facts["post_in_our_inbox"]
    bovine_actor = scenario["peers"]["bovine_actor"]
    # Stored in inbox_activities only after our inbox verified bovine's signature (with
    # bovine's `sha-256=` Digest) against the key fetched, signed, from bovine.
    assert create["actor_uri"] == bovine_actor
    assert create["signer_key_id"] == bovine_actor + "#serverKey"
    assert create["processed_at"] is not None
    assert create["outcome"] == "stored for /network"
    assert facts["network_status"] == 200
    assert facts["post_on_network_page"]
