"""What happened to a member's work: comments, replies, mentions, follows, likes and boosts.

Read from the rows the federation already keeps (no table of its own): a comment removed by a
moderator or an interaction undone disappears from the list as it does from the site, and
nothing has to be written per recipient when a story reaches many followers.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from fediverse_stories.db.models import (
    Account,
    Actor,
    Comment,
    CommentMention,
    CommentState,
    Follow,
    FollowState,
    Interaction,
    Story,
)

LIMIT = 50


class Kind(enum.StrEnum):
    MENTION = "mentioned you on"
    REPLY = "replied to your comment on"
    COMMENT = "commented on your story"
    FOLLOW = "followed you"
    FOLLOW_REQUEST = "asked to follow you"
    LIKE = "liked"
    SHARE = "boosted"


@dataclass(frozen=True)
class Notification:
    kind: Kind
    at: datetime  # when it reached us, by our clock
    actor: Actor  # who did it
    story: Story | None = None  # the story commented on, liked or boosted (or its comment's)
    comment: Comment | None = None  # the comment, or the comment liked or boosted
    follow: Follow | None = None  # a follow, or a request the member may approve or reject


async def for_account(session: AsyncSession, account: Account) -> list[Notification]:
    """The latest LIMIT notifications of an account, newest first; a comment that is several
    things at once (a reply that mentions you) is listed once, as the most personal."""
    me = account.actor_id
    found: dict[tuple[str, int], Notification] = {}
    for kind, query in (
        (Kind.MENTION, _mentions(me)),
        (Kind.REPLY, _replies(me)),
        (Kind.COMMENT, _comments_on_stories(me)),
    ):
        for comment, story in await session.execute(query.limit(LIMIT)):
            note = Notification(kind, comment.received_at, comment.author, story, comment)
            found.setdefault(("comment", comment.id), note)
    for follow, actor in await session.execute(_follows(me)):
        kind = Kind.FOLLOW if follow.state == FollowState.ACCEPTED else Kind.FOLLOW_REQUEST
        found[("follow", follow.id)] = Notification(kind, follow.created_at, actor, follow=follow)
    for interaction, actor, on_story, on_comment in await _interactions(session, me):
        kind = Kind.LIKE if interaction.type == "Like" else Kind.SHARE
        note = Notification(kind, interaction.created_at, actor, on_story, on_comment)
        found[("interaction", interaction.id)] = note
    return sorted(found.values(), key=lambda n: n.at, reverse=True)[:LIMIT]


def count_since(notifications: list[Notification], seen_at: datetime | None) -> int:
    """How many of the notifications came after the account's last look at them."""
    return sum(1 for n in notifications if seen_at is None or n.at > seen_at)


def _shown_comments() -> Select[Comment, Story]:
    return (
        select(Comment, Story)
        .join(Story, Story.id == Comment.story_id)
        .where(Comment.state == CommentState.VISIBLE, Story.deleted_at.is_(None))
        .order_by(Comment.received_at.desc(), Comment.id.desc())
    )


def _mentions(me: int) -> Select[Comment, Story]:
    mentioned = select(CommentMention.comment_id).where(CommentMention.actor_id == me)
    return _shown_comments().where(Comment.id.in_(mentioned), Comment.author_id != me)


def _replies(me: int) -> Select[Comment, Story]:
    parent = aliased(Comment)
    mine = select(parent.id).where(parent.author_id == me)
    return _shown_comments().where(Comment.parent_id.in_(mine), Comment.author_id != me)


def _comments_on_stories(me: int) -> Select[Comment, Story]:
    return _shown_comments().where(Story.author_id == me, Comment.author_id != me)


def _follows(me: int) -> Select[Follow, Actor]:
    return (
        select(Follow, Actor)
        .join(Actor, Actor.id == Follow.follower_id)
        .where(
            Follow.followed_id == me,
            Follow.state.in_((FollowState.ACCEPTED, FollowState.PENDING)),
        )
        .order_by(Follow.created_at.desc())
        .limit(LIMIT)
    )


async def _interactions(
    session: AsyncSession, me: int
) -> list[tuple[Interaction, Actor, Story, Comment | None]]:
    """Likes and boosts of my stories and of my comments (with the story each is on)."""
    on_stories = (
        select(Interaction, Actor, Story)
        .join(Actor, Actor.id == Interaction.actor_id)
        .join(Story, Story.uri == Interaction.object_uri)
        .where(Story.author_id == me, Story.deleted_at.is_(None), Interaction.actor_id != me)
        .order_by(Interaction.created_at.desc())
        .limit(LIMIT)
    )
    on_comments = (
        select(Interaction, Actor, Comment, Story)
        .join(Actor, Actor.id == Interaction.actor_id)
        .join(Comment, Comment.uri == Interaction.object_uri)
        .join(Story, Story.id == Comment.story_id)
        .where(
            Comment.author_id == me,
            Comment.state == CommentState.VISIBLE,
            Interaction.actor_id != me,
        )
        .order_by(Interaction.created_at.desc())
        .limit(LIMIT)
    )
    rows: list[tuple[Interaction, Actor, Story, Comment | None]] = [
        (interaction, actor, story, None)
        for interaction, actor, story in (await session.execute(on_stories))
    ]
    rows += [
        (interaction, actor, story, comment)
        for interaction, actor, comment, story in (await session.execute(on_comments))
    ]
    return rows
