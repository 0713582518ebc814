"""Likes and boosts from another instance: counted once per actor, undone only by their sender.

b.test's members like and boost a story (and a comment) on a.test through b's real outbound
path, so every request is really signed and verified.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from fediverse_stories.db.models import (
    Comment,
    CommentState,
    InboxActivity,
    Interaction,
    Role,
    Story,
)
from fediverse_stories.outbound import store as outbound
from fediverse_stories.services import interactions, publishing
from fediverse_stories.services.accounts import create_account
from fediverse_stories.services.actors import local_actor
from fediverse_stories.services.stories import StoryDraft
from tests.support.instances import Instance, InstanceFactory, settle

A_INBOX = "http://a.test/inbox"


async def add_user(instance: Instance, name: str, role: Role = Role.MEMBER) -> None:
    async with instance.ctx.sessions.begin() as session:
        await create_account(session, instance.ctx, name, "a-good-password", role=role)


async def send(sender: Instance, name: str, kind: str, obj: Any) -> dict[str, Any]:
    """`name` on `sender` sends a `kind` of `obj` to a.test's shared inbox; the document."""
    async with sender.ctx.sessions.begin() as session:
        actor = await local_actor(session, sender.ctx, name)
        assert actor is not None
        document = outbound.activity(sender.ctx, kind, actor, obj)
        await outbound.send(session, sender.ctx, actor, document, [(A_INBOX, None)])
    return document


async def counts(instance: Instance, uri: str) -> tuple[int, int]:
    async with instance.ctx.sessions() as session:
        target = await interactions.target_of(session, uri)
        assert target is not None
        return target.like_count, target.share_count


async def outcome(instance: Instance, activity_id: str) -> str | None:
    async with instance.ctx.sessions() as session:
        return (
            await session.execute(
                select(InboxActivity.outcome).where(InboxActivity.uri == activity_id)
            )
        ).scalar_one_or_none()


async def start(instances: InstanceFactory) -> tuple[Instance, Instance, str]:
    a = await instances.start("http://a.test")
    b = await instances.start("http://b.test")
    await add_user(a, "amina", Role.AUTHOR)
    await add_user(b, "bob")
    await add_user(b, "carol")
    story = await publishing.publish(
        a.ctx, "amina", StoryDraft(title="Listening first", body_markdown="We listened.")
    )
    assert story.uri is not None
    return a, b, story.uri


async def test_likes_are_counted_once_and_undone_only_by_their_sender(
    instances: InstanceFactory,
) -> None:
    a, b, story = await start(instances)

    like = await send(b, "bob", "Like", story)
    await settle(a, b)
    assert await counts(a, story) == (1, 0)
    assert await outcome(a, like["id"]) == "like counted"

    # The same person liking again (a new activity id) changes nothing.
    again = await send(b, "bob", "Like", story)
    await settle(a, b)
    assert await counts(a, story) == (1, 0)
    assert await outcome(a, again["id"]) == "ignored: this like was already counted"

    # Someone else cannot undo bob's like, by its id or by an embedded Like of their own.
    await send(b, "carol", "Undo", like["id"])
    await send(b, "carol", "Undo", {"id": like["id"] + "-x", "type": "Like", "object": story})
    await settle(a, b)
    assert await counts(a, story) == (1, 0)

    # Carol's own like counts too; bob's Undo (by the Like's id) takes only his away.
    await send(b, "carol", "Like", story)
    await settle(a, b)
    assert await counts(a, story) == (2, 0)
    undo = await send(b, "bob", "Undo", like["id"])
    await settle(a, b)
    assert await counts(a, story) == (1, 0)
    assert await outcome(a, undo["id"]) == "like undone"

    # Like, undo, like again: the count follows the rows, never drifts.
    relike = await send(b, "bob", "Like", story)
    await settle(a, b)
    assert await counts(a, story) == (2, 0)
    await send(b, "bob", "Undo", {"id": relike["id"], "type": "Like", "object": story})
    await settle(a, b)
    assert await counts(a, story) == (1, 0)
    async with a.ctx.sessions() as session:
        rows = list((await session.execute(select(Interaction.type))).scalars())
    assert rows == ["Like"]
    assert interactions.likes_collection(a.ctx, story, 1) == {
        "id": f"{story}/likes",
        "type": "Collection",
        "totalItems": 1,
    }
    assert interactions.shares_collection(a.ctx, story, 0)["totalItems"] == 0


async def test_announces_count_as_shares_and_can_be_undone(instances: InstanceFactory) -> None:
    a, b, story = await start(instances)
    boost = await send(b, "bob", "Announce", story)
    await send(b, "carol", "Like", story)
    await settle(a, b)
    assert await counts(a, story) == (1, 1)
    assert await outcome(a, boost["id"]) == "boost counted"

    await send(b, "bob", "Announce", story)
    await settle(a, b)
    assert await counts(a, story) == (1, 1)

    # An embedded Announce is matched by its sender, type and object.
    await send(b, "bob", "Undo", {"id": boost["id"], "type": "Announce", "object": story})
    await settle(a, b)
    assert await counts(a, story) == (1, 0)


async def test_comments_can_be_liked_and_unknown_objects_are_ignored(
    instances: InstanceFactory,
) -> None:
    a, b, story = await start(instances)
    async with a.ctx.sessions.begin() as session:
        target = (await session.execute(select(Story).where(Story.uri == story))).scalar_one()
        comment = Comment(
            uri="http://a.test/comments/77",
            local=True,
            story_id=target.id,
            in_reply_to=story,
            author_id=target.author_id,
            content_html="<p>First!</p>",
            state=CommentState.VISIBLE,
            published_at=a.ctx.clock(),
        )
        session.add(comment)
    await send(b, "bob", "Like", "http://a.test/comments/77")
    await send(b, "bob", "Announce", "http://a.test/comments/77")
    stranger = await send(b, "bob", "Like", "http://elsewhere.test/notes/1")
    elsewhere = await send(b, "bob", "Announce", "http://b.test/users/bob/statuses/1")
    await settle(a, b)
    assert await counts(a, "http://a.test/comments/77") == (1, 1)
    assert await counts(a, story) == (0, 0)
    assert await outcome(a, stranger["id"]) == "ignored: Like of something we do not carry"
    assert await outcome(a, elsewhere["id"]) == "ignored: Announce of something we do not carry"
