"""Stories: writing them and reading them back for pages and feeds."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol, TypeVar

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from fediverse_stories.context import Context
from fediverse_stories.db.models import (
    Account,
    Comment,
    CommentPolicy,
    CommentState,
    Story,
    StoryTag,
    Visibility,
)
from fediverse_stories.markdown import render_markdown
from fediverse_stories.sanitize import text_for_search
from fediverse_stories.services.errors import Forbidden, Invalid, NotFound

MAX_TITLE = 300
MAX_SUMMARY = 2000
MAX_BODY = 500_000
MAX_TAGS = 20
TAG_RE = re.compile(r"^\w{1,60}$")
LANGUAGE_RE = re.compile(r"^[a-zA-Z]{2,3}(-[a-zA-Z0-9]{2,8})*$")


@dataclass
class StoryDraft:
    """What an author gives to publish a story; checked by `validate`."""

    title: str
    body_markdown: str
    summary: str = ""
    tags: Sequence[str] = field(default_factory=list)
    language: str = "en"
    visibility: Visibility = Visibility.PUBLIC
    comment_policy: CommentPolicy = CommentPolicy.OPEN

    def validate(self) -> None:
        self.title = " ".join(self.title.split())
        if not self.title:
            raise Invalid("a story needs a title")
        if len(self.title) > MAX_TITLE:
            raise Invalid(f"the title must be at most {MAX_TITLE} characters")
        if len(self.summary) > MAX_SUMMARY:
            raise Invalid(f"the summary must be at most {MAX_SUMMARY} characters")
        if not self.body_markdown.strip():
            raise Invalid("the story body is empty")
        if len(self.body_markdown) > MAX_BODY:
            raise Invalid(f"the story body must be at most {MAX_BODY} characters")
        if not LANGUAGE_RE.match(self.language):
            raise Invalid(f"invalid language code {self.language!r} (use e.g. en, fr, pt-BR)")
        tags: list[str] = []
        for raw in self.tags:
            tag = raw.lstrip("#").strip()
            if not TAG_RE.match(tag):
                raise Invalid(f"invalid tag {raw!r}: letters, digits and _ only")
            if tag.lower() not in (t.lower() for t in tags):
                tags.append(tag)
        if len(tags) > MAX_TAGS:
            raise Invalid(f"at most {MAX_TAGS} tags")
        self.tags = tags


class Policed(Protocol):
    """What the comment policy depends on: a Story, or the story page's view of one."""

    @property
    def comment_policy(self) -> CommentPolicy: ...
    @property
    def published_at(self) -> datetime: ...


def effective_policy(ctx: Context, story: Policed) -> CommentPolicy:
    """The story's own comment policy, closed once the instance's close-after-days has passed."""
    days = ctx.settings.comments_close_after_days
    if days is not None and ctx.clock() - story.published_at > timedelta(days=days):
        return CommentPolicy.CLOSED
    return story.comment_policy


async def create_story(
    session: AsyncSession, ctx: Context, author: Account, draft: StoryDraft
) -> Story:
    """A new local story in the caller's transaction (federation is added by the outbound layer)."""
    if not author.role.can_publish:
        raise Forbidden(f"{author.username} is a {author.role.value} and cannot publish stories")
    draft.validate()
    now = ctx.clock()
    content_html = render_markdown(draft.body_markdown)
    story = Story(
        local=True,
        author_id=author.actor_id,
        title=draft.title,
        summary=draft.summary.strip(),
        source_markdown=draft.body_markdown,
        content_html=content_html,
        search_text=text_for_search(content_html),
        language=draft.language,
        visibility=draft.visibility,
        comment_policy=draft.comment_policy,
        published_at=now,
        tags=[StoryTag(name=tag) for tag in draft.tags],
    )
    session.add(story)
    await session.flush()
    story.uri = story_uri(ctx, story.id)
    await session.flush()
    return story


def story_uri(ctx: Context, story_id: int) -> str:
    return ctx.settings.url(f"/stories/{story_id}")


async def latest_public(
    session: AsyncSession, *, limit: int = 20, before_id: int | None = None
) -> list[Story]:
    query = (
        select(Story)
        .where(
            Story.local.is_(True), Story.deleted_at.is_(None), Story.visibility == Visibility.PUBLIC
        )
        .order_by(Story.published_at.desc(), Story.id.desc())
        .limit(limit)
    )
    if before_id is not None:
        query = query.where(Story.id < before_id)
    return list((await session.execute(query)).scalars())


MAX_TAG = 100  # as StoryTag.name


async def tagged(session: AsyncSession, tag: str, *, local: bool, limit: int = 50) -> list[Story]:
    """Public stories we carry with this hashtag (any case), ours or the network's, newest first."""
    with_tag = select(StoryTag.story_id).where(func.lower(StoryTag.name) == tag.lower())
    query = (
        select(Story)
        .where(
            Story.id.in_(with_tag),
            Story.local.is_(local),
            Story.deleted_at.is_(None),
            Story.visibility == Visibility.PUBLIC,
        )
        .order_by(Story.published_at.desc(), Story.id.desc())
        .limit(limit)
    )
    return list((await session.execute(query)).scalars())


async def by_author(session: AsyncSession, actor_id: int, *, limit: int = 50) -> list[Story]:
    query = (
        select(Story)
        .where(
            Story.author_id == actor_id,
            Story.deleted_at.is_(None),
            Story.visibility == Visibility.PUBLIC,
        )
        .order_by(Story.published_at.desc())
        .limit(limit)
    )
    return list((await session.execute(query)).scalars())


async def get_local_story(session: AsyncSession, story_id: int) -> Story:
    story = await session.get(Story, story_id)
    if story is None or not story.local:
        raise NotFound(f"no story {story_id}")
    return story


MAX_DEPTH_SHOWN = 4


class Threaded(Protocol):
    """What ordering a thread needs of a comment: an ORM Comment, or the story page's view."""

    @property
    def id(self) -> int: ...
    @property
    def uri(self) -> str | None: ...
    @property
    def parent_id(self) -> int | None: ...
    @property
    def published_at(self) -> datetime: ...


C = TypeVar("C", bound=Threaded)


def as_thread(shown: Iterable[C]) -> list[tuple[C, int]]:
    """Shown comments as a thread: (comment, depth), replies under their parent.

    Siblings are ordered by `published` then id URI, which every instance carrying the thread
    shares, so every instance shows the same order.
    """
    rows = sorted(shown, key=lambda c: (c.published_at, c.uri or ""))
    ids = {c.id for c in rows}
    children: dict[int | None, list[C]] = {}
    for comment in rows:
        parent = comment.parent_id if comment.parent_id in ids else None
        children.setdefault(parent, []).append(comment)
    ordered: list[tuple[C, int]] = []

    def walk(parent: int | None, depth: int) -> None:
        for comment in children.get(parent, []):
            ordered.append((comment, min(depth, MAX_DEPTH_SHOWN)))
            walk(comment.id, depth + 1)

    walk(None, 0)
    return ordered


async def visible_comments(session: AsyncSession, story_id: int) -> list[tuple[Comment, int]]:
    """The shown comments of a story as a thread (see `as_thread`)."""
    query = select(Comment).where(
        Comment.story_id == story_id, Comment.state == CommentState.VISIBLE
    )
    return as_thread((await session.execute(query)).scalars())


async def network_stories(session: AsyncSession, *, limit: int = 40) -> list[Story]:
    """Stories and posts from remote actors our accounts follow (public ones only), newest first."""
    query = (
        select(Story)
        .where(
            Story.local.is_(False),
            Story.deleted_at.is_(None),
            Story.visibility == Visibility.PUBLIC,
        )
        .order_by(Story.published_at.desc(), Story.id.desc())
        .limit(limit)
    )
    return list((await session.execute(query)).scalars())
