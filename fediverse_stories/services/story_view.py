"""The story page's read model: a story, its author, tags and shown thread as plain objects.

The story page is the most read page. Loaded as ORM instances (an identity-mapped object and
its state for the story, each tag, each comment and each author) its reads took about six
times the CPU of the same columns read as rows (BENCHMARKS.md, section 3). So the page reads
named columns with three core SELECTs, in one synchronous step (`Context.on_connection`), into
named tuples holding what templates/story.html shows and nothing else: no private keys, no
raw activities.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import Connection, bindparam, select

from fediverse_stories.db.fast import FastStatement
from fediverse_stories.db.models import (
    Actor,
    Comment,
    CommentPolicy,
    CommentState,
    Story,
    StoryTag,
    Visibility,
)
from fediverse_stories.services.stories import as_thread

# Named tuples: built straight from a row's values (`_make`), about as cheap as a tuple.
# Each view's fields, in order, name the model's columns it is read from (see `_columns`).


class AuthorView(NamedTuple):
    """A story's or a comment's author, as the page shows them (`Actor`'s columns)."""

    uri: str
    local: bool
    username: str
    domain: str
    display_name: str
    url: str | None

    # As `Actor.handle` and `Actor.name` (tests/app/test_story_view.py compares the pages).
    @property
    def handle(self) -> str:
        return f"@{self.username}@{self.domain}"

    @property
    def name(self) -> str:
        return self.display_name or self.username


class TagView(NamedTuple):
    """One of the story's tags."""

    name: str


class CommentView(NamedTuple):
    """One shown comment of the thread (`Comment`'s columns, then its author)."""

    id: int
    uri: str | None
    parent_id: int | None
    url: str | None
    content_html: str
    like_count: int
    share_count: int
    published_at: datetime
    author: AuthorView


class StoryView(NamedTuple):
    """A story with what its page and the checks before it need (`Story`'s columns, then its
    author and tags)."""

    id: int
    uri: str | None
    url: str | None
    local: bool
    title: str
    summary: str
    content_html: str
    language: str
    visibility: Visibility
    comment_policy: CommentPolicy
    published_at: datetime
    updated_at: datetime | None
    deleted_at: datetime | None
    author: AuthorView
    tags: list[TagView]


Thread = list[tuple[CommentView, int]]


def _columns(names: tuple[str, ...], model: type[Any]) -> list[Any]:
    """The model's columns named by a view's fields, in order, up to its `author`."""
    own = names[: names.index("author")] if "author" in names else names
    return [getattr(model, name) for name in own]


_AUTHOR = _columns(AuthorView._fields, Actor)
_STORY_OWN = _columns(StoryView._fields, Story)
_COMMENT_OWN = _columns(CommentView._fields, Comment)
# Built once and run on the DBAPI cursor on SQLite (db/fast.py): the result layer around
# Core's execution cost more than these three reads' SQL.
_STORY = FastStatement(
    select(*_STORY_OWN, *_AUTHOR)
    .join(Actor, Actor.id == Story.author_id)
    .where(Story.id == bindparam("story_id"))
)
_TAGS = FastStatement(
    select(StoryTag.name).where(StoryTag.story_id == bindparam("story_id")).order_by(StoryTag.name)
)
_COMMENTS = FastStatement(
    select(*_COMMENT_OWN, *_AUTHOR)
    .join(Actor, Actor.id == Comment.author_id)
    .where(Comment.story_id == bindparam("story_id"), Comment.state == CommentState.VISIBLE)
)
_LOCAL = StoryView._fields.index("local")


def read_story_page(
    connection: Connection, story_id: int, *, local: bool
) -> tuple[StoryView | None, Thread]:
    """The story (None unless it exists and is local, or remote when `local` is False) and,
    when everyone may see it (not deleted, not followers-only), its thread; else no comments.
    """
    params = {"story_id": story_id}
    found = _STORY.rows(connection, params)
    if not found or found[0][_LOCAL] != local:
        return None, []
    # Rows unpack by position: each view's fields are the columns selected, in their order.
    row, n = found[0], len(_STORY_OWN)
    tags = [TagView(name) for (name,) in _TAGS.rows(connection, params)]
    story = StoryView._make((*row[:n], AuthorView._make(row[n:]), tags))
    if story.deleted_at is not None or story.visibility == Visibility.FOLLOWERS:
        return story, []
    n = len(_COMMENT_OWN)
    rows = _COMMENTS.rows(connection, params)
    return story, as_thread([CommentView._make((*c[:n], AuthorView._make(c[n:]))) for c in rows])
