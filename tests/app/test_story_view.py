"""The story page's read model renders exactly what the ORM objects it replaced rendered."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from fediverse_stories.db.models import (
    Actor,
    Comment,
    CommentState,
    Role,
    Story,
    StoryTag,
    Visibility,
)
from fediverse_stories.services.accounts import create_account
from fediverse_stories.services.stories import (
    StoryDraft,
    create_story,
    effective_policy,
    visible_comments,
)
from fediverse_stories.services.story_view import read_story_page
from fediverse_stories.web.templating import templates
from tests.support.instances import Instance

T0 = datetime(2025, 3, 1, 9, 30, tzinfo=UTC)


def remote_actor(n: int, *, display_name: str = "") -> Actor:
    return Actor(
        uri=f"https://peer{n}.test/users/p{n}",
        local=False,
        type="Person",
        username=f"p{n}",
        domain=f"peer{n}.test",
        display_name=display_name,
        url=f"https://peer{n}.test/@p{n}" if n % 2 else None,
        inbox_url=f"https://peer{n}.test/inbox",
        created_at=T0,
    )


def comment(story: Story, author: Actor, n: int, **fields: Any) -> Comment:
    values: dict[str, Any] = {
        "uri": f"{author.uri}/notes/{story.id}-{n}",
        "local": False,
        "story_id": story.id,
        "in_reply_to": story.uri or "",
        "author_id": author.id,
        "url": f"{author.uri}/@{story.id}-{n}" if n % 3 else None,
        "content_html": f"<p>Reply {n} &amp; more</p>",
        "state": CommentState.VISIBLE,
        "published_at": T0 + timedelta(minutes=n % 4),  # ties: ordered by uri after time
        "like_count": n % 3,
        "share_count": n % 2,
    }
    values.update(fields)
    return Comment(**values)


async def thread(session: AsyncSession, story: Story, authors: list[Actor]) -> None:
    """Nested replies, ties in time, and comments in every state that must not show."""
    made: list[Comment] = []
    for n in range(12):
        parent = made[n // 2] if n % 3 == 2 else None
        row = comment(story, authors[n % len(authors)], n, parent_id=parent.id if parent else None)
        session.add(row)
        await session.flush()
        made.append(row)
    not_shown = [s for s in CommentState if s != CommentState.VISIBLE]
    hidden = [comment(story, authors[0], 100 + n, state=s) for n, s in enumerate(not_shown)]
    session.add_all(hidden)
    await session.flush()
    # A shown reply to a comment that is not shown goes to the top level.
    session.add(comment(story, authors[1], 200, parent_id=hidden[2].id))


async def seed(instance: Instance) -> tuple[int, int]:
    """A local story (tags, edited, a thread of 13) and a remote one with a short thread."""
    ctx = instance.ctx
    async with ctx.sessions.begin() as session:
        author = await create_account(
            session, ctx, "amina", "a-good-password", role=Role.AUTHOR, display_name="Amina Y."
        )
        draft = StoryDraft(
            title="Listening <first>",
            body_markdown="We *listened*.\n\n- one\n- two",
            summary="How it started & why.",
            tags=["water", "Zeta", "alpha"],
        )
        story = await create_story(session, ctx, author, draft)
        story.updated_at = T0 + timedelta(days=2)
        peers = [remote_actor(1, display_name="Peer <One>"), remote_actor(2), remote_actor(3)]
        session.add_all(peers)
        await session.flush()
        await thread(session, story, [*peers, author.actor])
        remote = Story(
            uri="https://peer1.test/articles/9",
            local=False,
            author_id=peers[0].id,
            title="From afar",
            summary="",
            content_html="<p>Far.</p>",
            url="https://peer1.test/@p1/9",
            published_at=T0,
            tags=[StoryTag(name="far")],
        )
        session.add(remote)
        await session.flush()
        await thread(session, remote, peers)
        return story.id, remote.id


def render(instance: Instance, story: Any, comments: Any, **extra: Any) -> str:
    context = {
        "settings": instance.settings,
        "account": None,
        "csrf_token": lambda: "token",
        "story": story,
        "comments": comments,
        **extra,
    }
    return templates.get_template("story.html").render(context)


async def orm_page(instance: Instance, story_id: int, **extra: Any) -> str:
    async with instance.ctx.sessions() as session:
        story = await session.get(Story, story_id)
        assert story is not None
        comments = await visible_comments(session, story_id)
        return render(instance, story, comments, **extra)


async def test_the_read_model_renders_the_same_page_as_the_orm(instance: Instance) -> None:
    local_id, remote_id = await seed(instance)
    ctx = instance.ctx
    story, comments = await ctx.on_connection(lambda c: read_story_page(c, local_id, local=True))
    assert story is not None and len(comments) == 13
    policy = effective_policy(ctx, story).value
    expected = await orm_page(instance, local_id, policy=policy)
    assert render(instance, story, comments, policy=policy) == expected
    assert "#alpha" in expected and "Peer &lt;One&gt;" in expected

    remote, thread = await ctx.on_connection(lambda c: read_story_page(c, remote_id, local=False))
    assert remote is not None and len(thread) == 13
    expected = await orm_page(instance, remote_id, policy="open", remote=True)
    assert render(instance, remote, thread, policy="open", remote=True) == expected


async def test_the_read_model_finds_only_what_the_page_may_show(instance: Instance) -> None:
    local_id, remote_id = await seed(instance)
    ctx = instance.ctx

    async def read(story_id: int, local: bool) -> tuple[Any, Any]:
        return await ctx.on_connection(lambda c: read_story_page(c, story_id, local=local))

    assert await read(remote_id, True) == (None, [])
    assert await read(local_id, False) == (None, [])
    assert await read(999_999, True) == (None, [])
    async with ctx.sessions.begin() as session:
        story = await session.get(Story, local_id)
        assert story is not None
        story.visibility = Visibility.FOLLOWERS
    hidden, comments = await read(local_id, True)
    assert hidden is not None and hidden.visibility == Visibility.FOLLOWERS and comments == []
    async with ctx.sessions.begin() as session:
        story = await session.get(Story, local_id)
        assert story is not None
        story.visibility, story.deleted_at = Visibility.PUBLIC, T0
    gone, comments = await read(local_id, True)
    assert gone is not None and gone.deleted_at == T0 and comments == []
