"""Comments: replies from the fediverse and from members, the story's policy, and one thread.

The story's home instance owns its thread. It shows, holds or refuses each reply by the story's
policy, and forwards every accepted reply (the original Create, unchanged) to the story's
audience. Other instances carrying the story show a comment only once its home has forwarded
it, and verify it by fetching it from its own origin: they never trust the forwarder.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from activitypub.vocab import PUBLIC, id_of
from fediverse_stories import convert
from fediverse_stories.context import Context
from fediverse_stories.db.models import (
    Activity,
    Actor,
    Comment,
    CommentPolicy,
    CommentState,
    Story,
    Tombstone,
    Visibility,
)
from fediverse_stories.inbound.remote_posts import parse_time
from fediverse_stories.outbound import store as outbound
from fediverse_stories.sanitize import comment_html
from fediverse_stories.services import mentions
from fediverse_stories.services.actors import local_actor
from fediverse_stories.services.errors import Forbidden, Invalid, NotFound
from fediverse_stories.services.stories import effective_policy

MAX_COMMENT_HTML = 50_000
MAX_LOCAL_COMMENT = 5_000


async def thread_of(session: AsyncSession, uri: str) -> tuple[Story, Comment | None] | None:
    """The story a reply belongs to, and the comment it answers (None for the story itself)."""
    story = (await session.execute(select(Story).where(Story.uri == uri))).scalar_one_or_none()
    if story is not None:
        return story, None
    parent = (await session.execute(select(Comment).where(Comment.uri == uri))).scalar_one_or_none()
    if parent is None:
        return None
    found = await session.get(Story, parent.story_id)
    return (found, parent) if found is not None else None


def _comment_fields(note: dict[str, Any], ctx: Context) -> dict[str, Any]:
    content = note.get("content") if isinstance(note.get("content"), str) else ""
    url = id_of(note.get("url"))
    return {
        "uri": str(note["id"]),
        "local": False,
        "in_reply_to": str(id_of(note.get("inReplyTo"))),
        "url": url if isinstance(url, str) and url.startswith(("http://", "https://")) else None,
        "content_html": comment_html(str(content)[:MAX_COMMENT_HTML]),
        "published_at": parse_time(note.get("published")) or ctx.clock(),
        "updated_at": parse_time(note.get("updated")),
    }


async def receive(
    ctx: Context, raw_activity: str, note: dict[str, Any], author: Actor, *, signer_uri: str | None
) -> str:
    """A verified reply (`note`, by `author`) arrived, signed by `signer_uri` (the author, or
    the thread's owner forwarding it). Returns the outcome recorded on the inbox row.
    """
    note_id = str(note["id"])
    async with ctx.sessions.begin() as session:
        tombstone = await session.get(Tombstone, note_id)
        if tombstone is not None and tombstone.actor_uri in (None, author.uri):
            return "ignored: this reply was deleted"
        if (await session.execute(select(Comment.id).where(Comment.uri == note_id))).scalar():
            return "ignored: already have this comment"
        thread = await thread_of(session, str(id_of(note.get("inReplyTo"))))
        if thread is None:
            return "ignored: not a reply to a story we carry"
        story, parent = thread
        if story.deleted_at is not None:
            return "ignored: the story was deleted"
        comment = Comment(
            story_id=story.id,
            parent_id=parent.id if parent else None,
            author_id=author.id,
            activity_raw=raw_activity,
            received_at=ctx.clock(),
            **_comment_fields(note, ctx),
        )
        if not story.local:
            # Someone else's thread: its home decides; we show what its owner sends us.
            owner = await session.get(Actor, story.author_id)
            if owner is None or signer_uri != owner.uri:
                return "ignored: waiting for the story's home to forward it"
            comment.state = CommentState.VISIBLE
            session.add(comment)
            await mentions.record_tagged(session, comment, note)
            return "comment shown (forwarded by the story's home)"
        policy = effective_policy(ctx, story)
        if story.visibility == Visibility.FOLLOWERS:
            policy = CommentPolicy.CLOSED
        if policy == CommentPolicy.CLOSED:
            await _answer_replier(session, ctx, story, author, note_id, "Reject")
            return "refused: comments are closed (Reject sent)"
        session.add(comment)
        await mentions.record_tagged(session, comment, note)
        if policy == CommentPolicy.MODERATED:
            comment.state = CommentState.PENDING
            return "comment held for moderation"
        comment.state = CommentState.VISIBLE
        await session.flush()
        await forward(session, ctx, story, comment, author)
        return "comment shown and forwarded"


async def _answer_replier(
    session: AsyncSession, ctx: Context, story: Story, replier: Actor, note_id: str, kind: str
) -> None:
    """Accept or Reject a reply (GoToSocial's interaction-policy answers)."""
    owner = await session.get(Actor, story.author_id)
    assert owner is not None
    if replier.local or not replier.inbox_url:
        return
    document = outbound.activity(ctx, kind, owner, note_id, to=[replier.uri], target=story.uri)
    await outbound.send(session, ctx, owner, document, [outbound.inbox_of(replier)])


async def story_audience(
    session: AsyncSession, ctx: Context, story: Story
) -> list[tuple[str, int | None]]:
    """Where a thread's news goes: followers of the author and of the Organization."""
    author = await session.get(Actor, story.author_id)
    assert author is not None
    targets = await outbound.follower_inboxes(session, author)
    org = await local_actor(session, ctx, ctx.settings.org_handle)
    if org is not None and org.id != author.id and story.visibility != Visibility.FOLLOWERS:
        targets += await outbound.follower_inboxes(session, org)
    return targets


async def forward(
    session: AsyncSession, ctx: Context, story: Story, comment: Comment, author: Actor
) -> None:
    """Send the reply's original Create, unchanged and signed by the thread's owner, to the
    story's audience (ActivityPub 7.1.2 inbox forwarding). Receivers fetch it from its origin."""
    if comment.activity_raw is None:
        return
    owner = await session.get(Actor, story.author_id)
    assert owner is not None
    origin = author.domain
    targets = [
        (inbox, follower)
        for inbox, follower in await story_audience(session, ctx, story)
        if urlsplit(inbox).netloc.lower() != origin
    ]
    if not targets:
        return
    row = Activity(
        uri=None,  # not ours: it must not dereference here
        actor_id=owner.id,
        type="Create",
        object_uri=comment.uri,
        raw=comment.activity_raw,
        public=False,
        created_at=ctx.clock(),
    )
    session.add(row)
    await outbound.enqueue_deliveries(session, ctx, row, targets)


async def _comment_by_url(session: AsyncSession, ctx: Context, url: str) -> Comment:
    comment = (
        await session.execute(select(Comment).where(Comment.uri == url))
    ).scalar_one_or_none()
    if comment is None:
        raise NotFound(f"no comment at {url}")
    return comment


async def pending(ctx: Context) -> list[tuple[Comment, Story]]:
    async with ctx.sessions() as session:
        rows = (
            await session.execute(
                select(Comment, Story)
                .join(Story, Story.id == Comment.story_id)
                .where(Comment.state == CommentState.PENDING, Story.local.is_(True))
                .order_by(Comment.published_at)
            )
        ).all()
    return [(comment, story) for comment, story in rows]


async def approve(ctx: Context, url: str) -> Comment:
    """Show a held comment, Accept it to its author's server, and forward it to the thread."""
    async with ctx.sessions.begin() as session:
        comment, story, author = await _pending(session, ctx, url)
        comment.state = CommentState.VISIBLE
        if comment.local and comment.activity_raw:
            parent = await session.get(Comment, comment.parent_id) if comment.parent_id else None
            await session.refresh(story, ["author"])
            create = json.loads(comment.activity_raw)
            mentioned = await mentions.of_comment(session, comment.id)
            await _publish_local(session, ctx, story, comment, author, parent, create, mentioned)
        else:
            await _answer_replier(session, ctx, story, author, str(comment.uri), "Accept")
            await forward(session, ctx, story, comment, author)
        return comment


async def reject(ctx: Context, url: str) -> Comment:
    """Refuse a held comment: it is never shown, and a Reject goes to its author's server."""
    async with ctx.sessions.begin() as session:
        comment, story, author = await _pending(session, ctx, url)
        comment.state = CommentState.REJECTED
        await _answer_replier(session, ctx, story, author, str(comment.uri), "Reject")
        return comment


async def _pending(session: AsyncSession, ctx: Context, url: str) -> tuple[Comment, Story, Actor]:
    """The held comment at `url` with its story and author; Invalid if it is not held."""
    comment = await _comment_by_url(session, ctx, url)
    if comment.state != CommentState.PENDING:
        raise Invalid(f"the comment is {comment.state.value}, not pending")
    story = await session.get(Story, comment.story_id)
    author = await session.get(Actor, comment.author_id)
    assert story is not None and author is not None
    return comment, story, author


async def remove(ctx: Context, url: str) -> Comment:
    """Take a shown comment down here and on every instance the thread reached.

    The thread's owner sends a Delete of the comment to the story's audience; peers accept the
    removal of someone else's comment only from the thread's owner.
    """
    async with ctx.sessions.begin() as session:
        comment = await _comment_by_url(session, ctx, url)
        story = await session.get(Story, comment.story_id)
        assert story is not None
        if not story.local:
            raise Forbidden("only the story's home instance can remove its comments")
        if comment.state in (CommentState.REMOVED, CommentState.DELETED):
            raise Invalid(f"the comment is already {comment.state.value}")
        was_visible = comment.state == CommentState.VISIBLE
        comment.state = CommentState.REMOVED
        if was_visible:
            await _send_removal(session, ctx, story, comment)
        return comment


async def removal_by_thread_owner(ctx: Context, actor_uri: str, object_uri: str) -> str | None:
    """Hide a comment on a remote story when its thread's owner removed it; None if not that."""
    async with ctx.sessions.begin() as session:
        comment = (
            await session.execute(select(Comment).where(Comment.uri == object_uri))
        ).scalar_one_or_none()
        if comment is None:
            return None
        story = await session.get(Story, comment.story_id)
        owner = await session.get(Actor, story.author_id) if story else None
        if story is None or story.local or owner is None or owner.uri != actor_uri:
            return None
        comment.state = CommentState.REMOVED
        return "comment removed by the thread's owner"


async def deleted_by_author(ctx: Context, author_uri: str, object_uri: str) -> str | None:
    """The author deleted their reply: hide it, keep a tombstone, and if the thread is ours tell
    the instances it reached. None when `object_uri` is no comment we have."""
    async with ctx.sessions.begin() as session:
        comment = (
            await session.execute(select(Comment).where(Comment.uri == object_uri))
        ).scalar_one_or_none()
        if comment is None:
            return None
        author = await session.get(Actor, comment.author_id)
        if author is None or author.uri != author_uri:
            return "refused: only the author may delete it"
        if await session.get(Tombstone, object_uri) is None:
            session.add(Tombstone(uri=object_uri, actor_uri=author_uri, deleted_at=ctx.clock()))
        was_visible = comment.state == CommentState.VISIBLE
        comment.state = CommentState.DELETED
        story = await session.get(Story, comment.story_id)
        if story is not None and story.local and was_visible:
            await _send_removal(session, ctx, story, comment)
        return "comment deleted by its author"


async def _send_removal(
    session: AsyncSession, ctx: Context, story: Story, comment: Comment
) -> None:
    owner = await session.get(Actor, story.author_id)
    assert owner is not None
    document = outbound.activity(ctx, "Delete", owner, comment.uri, to=[PUBLIC], target=story.uri)
    await outbound.send(session, ctx, owner, document, await story_audience(session, ctx, story))


async def thread_owner_of(session: AsyncSession, comment_uri: str) -> str | None:
    """The actor id of the owner of the thread a comment we carry belongs to."""
    comment = (
        await session.execute(select(Comment).where(Comment.uri == comment_uri))
    ).scalar_one_or_none()
    if comment is None:
        return None
    story = await session.get(Story, comment.story_id)
    owner = await session.get(Actor, story.author_id) if story else None
    return owner.uri if owner else None


def comment_uri(ctx: Context, comment_id: int) -> str:
    return ctx.settings.url(f"/comments/{comment_id}")


def comment_to_note(
    ctx: Context,
    comment: Comment,
    story: Story,
    author: Actor,
    answered: Actor,
    mentioned: Sequence[Actor] = (),
) -> dict[str, Any]:
    """A local comment as the Note that federates it (no `@context`).

    `answered` wrote what the comment replies to (the parent comment, else the story);
    `mentioned` are the actors its text names (services.mentions). The Note tags them all as
    Mentions: Mastodon and its peers notify only the actors a post tags, so without the tag the
    person answered would never learn of the answer.
    """
    tagged = _others(author, [answered, *mentioned])
    assert comment.uri is not None and story.uri is not None
    note: dict[str, Any] = {
        "id": comment.uri,
        "type": "Note",
        "attributedTo": author.uri,
        "inReplyTo": comment.in_reply_to,
        "content": comment.content_html,
        "published": comment.published_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "url": f"{story.uri}#comment-{comment.id}",
        "to": [PUBLIC],
        "cc": [a.uri for a in _others(author, [story.author, *tagged])]
        + [f"{author.uri}/followers"],
        "context": f"{story.uri}/context",
    }
    if tagged:
        note["tag"] = [{"type": "Mention", "href": a.uri, "name": a.handle} for a in tagged]
    return note


def _others(author: Actor, actors: Iterable[Actor]) -> list[Actor]:
    """The actors other than the author, each once, in order."""
    by_uri = {actor.uri: actor for actor in actors if actor.uri != author.uri}
    return list(by_uri.values())


async def answered_by(session: AsyncSession, story: Story, comment: Comment) -> Actor:
    """Who wrote what a comment answers: the parent comment's author, else the story's."""
    parent = await session.get(Comment, comment.parent_id) if comment.parent_id else None
    return parent.author if parent is not None else story.author


async def post_local(
    ctx: Context, username: str, story_id: int, text: str, *, parent_id: int | None = None
) -> Comment:
    """A signed-in member's comment: shown (or held), then federated as a Note from their actor."""
    from fediverse_stories.services.accounts import get_account

    text = text.strip()
    if not text:
        raise Invalid("the comment is empty")
    if len(text) > MAX_LOCAL_COMMENT:
        raise Invalid(f"a comment may have at most {MAX_LOCAL_COMMENT} characters")
    # Before the transaction: resolving an unknown handle is a WebFinger lookup and a fetch.
    named = await mentions.resolve(ctx, text)
    host = ctx.settings.host
    async with ctx.sessions.begin() as session:
        account = await get_account(session, username)
        story = await session.get(Story, story_id)
        if (
            story is None
            or story.deleted_at is not None
            or story.visibility == Visibility.FOLLOWERS
        ):
            raise NotFound("no such story")
        policy = effective_policy(ctx, story) if story.local else CommentPolicy.OPEN
        if policy == CommentPolicy.CLOSED:
            raise Forbidden("comments are closed on this story")
        parent = await session.get(Comment, parent_id) if parent_id else None
        if parent_id and (parent is None or parent.story_id != story.id):
            raise NotFound("no such comment to reply to")
        author = account.actor
        now = ctx.clock().replace(microsecond=0)  # what the wire carries: one order everywhere
        comment = Comment(
            local=True,
            story_id=story.id,
            parent_id=parent.id if parent else None,
            in_reply_to=str(parent.uri if parent else story.uri),
            author_id=author.id,
            content_html=convert.plain_text_to_html(
                text, lambda line: mentions.linked_line(line, named, host)
            ),
            state=CommentState.PENDING
            if policy == CommentPolicy.MODERATED
            else CommentState.VISIBLE,
            published_at=now,
            received_at=ctx.clock(),
        )
        session.add(comment)
        await session.flush()
        comment.uri = comment_uri(ctx, comment.id)
        comment.url = f"{story.uri}#comment-{comment.id}"
        await session.refresh(story, ["author"])
        mentioned = sorted(named.values(), key=lambda actor: actor.id)
        mentions.record(session, comment.id, mentioned)
        answered = await answered_by(session, story, comment)  # the parent is in the session
        note = comment_to_note(ctx, comment, story, author, answered, mentioned)
        create = outbound.activity(ctx, "Create", author, note, to=note["to"], cc=note["cc"])
        create["@context"] = convert.OBJECT_CONTEXT
        comment.activity_raw = json.dumps(create)
        if comment.state == CommentState.VISIBLE:
            await _publish_local(session, ctx, story, comment, author, parent, create, mentioned)
        return comment


async def _publish_local(
    session: AsyncSession,
    ctx: Context,
    story: Story,
    comment: Comment,
    author: Actor,
    parent: Comment | None,
    create: dict[str, Any],
    mentioned: Sequence[Actor],
) -> None:
    """The commenter's Create goes to the thread's audience, their followers and the people they
    answer or mention; for a remote story, to its home, which decides and forwards it."""
    targets = await story_audience(session, ctx, story) if story.local else []
    targets += await outbound.follower_inboxes(session, author)
    replied = await session.get(Actor, parent.author_id) if parent else None
    for addressed in (story.author, replied, *mentioned):
        if addressed is not None and not addressed.local and addressed.inbox_url:
            targets.append(outbound.public_inbox_of(addressed))
    row = outbound.store(session, ctx, author, create)
    await outbound.enqueue_deliveries(session, ctx, row, targets)
