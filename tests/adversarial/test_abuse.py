"""Abuse and policy: floods, counting games, replies where none are allowed, reports, blocks.

Every request is signed by a real key of a real (attacker-run) actor; the assertions are on the
status and on what a.test stored, showed and sent afterwards.
"""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from fediverse_stories.db.models import (
    Comment,
    CommentState,
    DomainPolicy,
    Interaction,
    Visibility,
)
from fediverse_stories.services import domains, publishing
from tests.adversarial.attacker import Attacker
from tests.adversarial.conftest import AMINA, AMINA_INBOX, SHARED_INBOX, Target, know, publish


async def test_follow_flood_is_answered_429_with_retry_after(target: Target) -> None:
    statuses = []
    retry_after = None
    for _ in range(60):
        follow = target.evil.activity("Follow", AMINA)
        response = await target.evil.post(target.client, AMINA_INBOX, follow)
        statuses.append(response.status_code)
        if response.status_code == 429:
            retry_after = response.headers.get("retry-after")
    assert 429 in statuses, statuses
    assert retry_after is not None and retry_after.isdigit() and int(retry_after) > 0


async def test_follow_flood_from_one_actor_makes_one_follow(target: Target) -> None:
    for _ in range(30):
        follow = target.evil.activity("Follow", AMINA)
        assert (await target.evil.post(target.client, AMINA_INBOX, follow)).status_code == 202
    await target.settle()
    async with target.a.ctx.sessions() as session:
        from fediverse_stories.db.models import Follow

        assert (await session.execute(select(func.count(Follow.id)))).scalar_one() == 1


async def test_like_and_undo_games_keep_the_counts_right(target: Target) -> None:
    evil = target.evil
    evil.add("mallory")
    await know(target.a, evil, "mallory")

    async def send(activity: dict[str, object], who: str = "eve") -> None:
        response = await evil.post(target.client, SHARED_INBOX, activity, who=who)
        assert response.status_code == 202, response.text

    first = evil.activity("Like", target.story.uri)
    await send(first)
    await send(first)  # the same Like again
    await send(evil.activity("Like", target.story.uri))  # another id, same actor
    boost = evil.activity("Announce", target.story.uri)
    await send(boost)
    mallory_like = evil.activity("Like", target.story.uri, "mallory")
    await send(mallory_like, "mallory")
    await target.settle()
    assert ((await target.story_row()).like_count, (await target.story_row()).share_count) == (2, 1)
    await send(evil.activity("Undo", mallory_like["id"]))  # eve undoing mallory's: nothing
    await send(evil.activity("Undo", first))
    await send(evil.activity("Undo", first))  # twice
    await send(
        evil.activity("Undo", {"type": "Announce", "object": target.story.uri, "id": boost["id"]})
    )
    await target.settle()
    story = await target.story_row()
    assert (story.like_count, story.share_count) == (1, 0)
    await send(evil.activity("Like", target.story.uri))  # and back again
    await target.settle()
    story = await target.story_row()
    async with target.a.ctx.sessions() as session:
        rows = (await session.execute(select(func.count(Interaction.id)))).scalar_one()
    assert (story.like_count, story.share_count, rows) == (2, 0, 2)


async def test_reply_to_a_followers_only_story_is_not_shown(target: Target) -> None:
    private = await publish(target.a, "Members only", visibility=Visibility.FOLLOWERS)
    await target.mark()
    note = target.evil.note(private.uri, "<p>I can see this?</p>")
    assert (
        await target.evil.post(target.client, SHARED_INBOX, target.evil.create(note))
    ).status_code == 202
    await target.settle()
    async with target.a.ctx.sessions() as session:
        shown = (
            await session.execute(
                select(func.count(Comment.id)).where(Comment.state == CommentState.VISIBLE)
            )
        ).scalar_one()
    assert shown == 0
    assert (await target.client.get(f"/stories/{private.id}")).status_code == 404
    assert {r.url.host for r in target.outgoing()} <= {"evil.test"}  # a Reject at most


async def test_reply_to_a_deleted_story_is_not_shown(target: Target) -> None:
    await publishing.delete(target.a.ctx, target.story.uri or "")
    await target.settle()
    await target.mark()
    note = target.evil.note(target.story.uri, "<p>Too late.</p>")
    assert (
        await target.evil.post(target.client, SHARED_INBOX, target.evil.create(note))
    ).status_code == 202
    await target.settle()
    assert (await target.outcomes())[-1] == "ignored: the story was deleted"
    await target.unchanged(ignore=("inbox_activities", "jobs"))


async def test_reply_to_a_closed_story_from_a_comment_thread_is_refused(target: Target) -> None:
    # A reply to a reply (not to the story itself) on a story closed since: still refused.
    from fediverse_stories.db.models import CommentPolicy, Story

    first = target.evil.note(target.story.uri, "<p>First.</p>")
    await target.evil.post(target.client, SHARED_INBOX, target.evil.create(first))
    await target.settle()
    async with target.a.ctx.sessions.begin() as session:
        story = await session.get(Story, target.story.id)
        assert story is not None
        story.comment_policy = CommentPolicy.CLOSED
    nested = target.evil.note(first["id"], "<p>Second.</p>")
    await target.evil.post(target.client, SHARED_INBOX, target.evil.create(nested))
    await target.settle()
    async with target.a.ctx.sessions() as session:
        uris = list((await session.execute(select(Comment.uri))).scalars())
    assert uris == [first["id"]]


async def test_flag_with_huge_text_is_bounded(target: Target) -> None:
    flag = target.evil.activity(
        "Flag",
        [target.story.uri, AMINA],
        content="Spam! " * 150_000,  # ~900 KB
    )
    response = await target.evil.post(target.client, SHARED_INBOX, flag)
    assert response.status_code == 202, response.text
    await target.settle()
    await target.unchanged(ignore=("inbox_activities", "jobs"))
    outcome = (await target.outcomes())[-1]
    assert len(outcome) < 2100


BLOCKED_SPELLINGS = {
    "subdomain": ("evil.test", "http://deep.sub.evil.test/users/eve"),
    "upper-case": ("evil.test", "http://EVIL.TEST/users/eve"),
    "trailing-dot": ("evil.test", "http://evil.test./users/eve"),
    "port": ("evil.test", "http://evil.test:8443/users/eve"),
    "punycode-of-a-unicode-block": ("bücher.test", "http://xn--bcher-kva.test/users/eve"),
    "upper-case-punycode": ("xn--bcher-kva.test", "http://XN--BCHER-KVA.test/users/eve"),
    "block-typed-upper-case": ("EVIL.TEST.", "http://evil.test/users/eve"),
}


@pytest.mark.parametrize("spelling", list(BLOCKED_SPELLINGS))
async def test_403_blocked_domain_in_every_spelling_fetches_no_key(
    target: Target, spelling: str
) -> None:
    blocked, actor = BLOCKED_SPELLINGS[spelling]
    async with target.a.ctx.sessions.begin() as session:
        await domains.set_policy(session, domains.normalise_domain(blocked), DomainPolicy.BLOCKED)
    await target.mark()
    like = {
        "@context": "https://www.w3.org/ns/activitystreams",
        "id": f"{actor}/likes/1",
        "type": "Like",
        "actor": actor,
        "object": target.story.uri,
    }
    response = await target.evil.post(target.client, SHARED_INBOX, like, key_id=f"{actor}#main-key")
    await target.refused(response, 403, "blocked")


@pytest.mark.parametrize("host", ["notevil.test", "evil.test.example.test", "evil-test.test"])
async def test_lookalike_hosts_are_not_blocked(target: Target, host: str) -> None:
    async with target.a.ctx.sessions.begin() as session:
        await domains.set_policy(session, "evil.test", DomainPolicy.BLOCKED)
    lookalike = Attacker(host).register(target.factory)
    response = await lookalike.post(
        target.client, SHARED_INBOX, lookalike.activity("Like", target.story.uri)
    )
    assert response.status_code == 202, response.text


WEBFINGER_RESOURCES = [
    "acct:eve@evil.test",
    "acct:amina@evil.test",
    "acct:amina@a.test@evil.test",
    "acct:amina@evil.test#@a.test",
    "acct:amina@a.test.evil.test",
    "acct:amina%0d%0aSet-Cookie:%20x=1@a.test",
    "acct:amina\r\nSet-Cookie: x=1@a.test",
    "acct:amina\x00@a.test",
    "acct:../../etc/passwd@a.test",
    "acct:amina@a.test/../../admin",
    "http://evil.test/users/amina",
    "http://a.test@evil.test/users/amina",
    "http://a.test/users/amina?@evil.test",
    "http://169.254.169.254/latest/meta-data",
    "acct:amina@[::1]",
    "acct:amina@localhost",
    "acct:" + "a" * 5000 + "@a.test",
]


async def test_webfinger_for_foreign_hosts_and_injected_characters_fetches_nothing(
    target: Target,
) -> None:
    for resource in WEBFINGER_RESOURCES:
        response = await target.client.get("/.well-known/webfinger", params={"resource": resource})
        assert response.status_code in (400, 404), (resource, response.status_code)
        assert "set-cookie" not in {k.lower() for k in response.headers}, resource
        assert "\r" not in response.text and "\n" not in response.text.strip(), resource
    await target.unchanged()
