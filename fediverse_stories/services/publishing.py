"""Publishing, editing and deleting stories, federated: the story's activities and their audience.

The author's Create/Update/Delete goes to the author's followers; the Organization announces
public and unlisted stories to its own followers, so following one handle brings them all.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from activitypub.vocab import PUBLIC
from fediverse_stories import convert
from fediverse_stories.context import Context
from fediverse_stories.db.models import Actor, Story, Visibility
from fediverse_stories.markdown import render_markdown
from fediverse_stories.outbound import store as outbound
from fediverse_stories.sanitize import text_for_search
from fediverse_stories.services.accounts import get_account
from fediverse_stories.services.actors import local_actor
from fediverse_stories.services.errors import Invalid, NotFound
from fediverse_stories.services.stories import (
    MAX_BODY,
    MAX_SUMMARY,
    MAX_TITLE,
    StoryDraft,
    create_story,
)
from fediverse_stories.whole_numbers import whole_number


async def _organization(session: AsyncSession, ctx: Context) -> Actor | None:
    return await local_actor(session, ctx, ctx.settings.org_handle)


async def _fan_out(
    session: AsyncSession, ctx: Context, story: Story, document: dict[str, Any]
) -> None:
    """The author's followers get the activity; the Organization's an Announce (or the Delete)."""
    author = story.author
    await outbound.send(
        session, ctx, author, document, await outbound.follower_inboxes(session, author)
    )
    org = await _organization(session, ctx)
    if org is None or org.id == author.id or story.visibility == Visibility.FOLLOWERS:
        return
    targets = await outbound.follower_inboxes(session, org)
    if document["type"] == "Create":
        announce = outbound.activity(
            ctx,
            "Announce",
            org,
            story.uri,
            to=[PUBLIC],
            cc=[convert.followers_url(org)],
            published=convert.iso8601(ctx.clock()),
        )
        await outbound.send(session, ctx, org, announce, targets)
    elif targets:
        # Update and Delete go to the Organization's followers too, so their copies stay true.
        await outbound.enqueue_deliveries(
            session,
            ctx,
            outbound.store(session, ctx, author, {**document, "id": document["id"] + "#org"}),
            targets,
        )


async def publish(ctx: Context, author_name: str, draft: StoryDraft) -> Story:
    """Create a story and queue its Create (and the Organization's Announce), in one transaction."""
    async with ctx.sessions.begin() as session:
        account = await get_account(session, author_name)
        story = await create_story(session, ctx, account, draft)
        await session.refresh(story, ["author", "tags"])
        create = convert.with_context(convert.story_to_create(ctx, story), convert.OBJECT_CONTEXT)
        await _fan_out(session, ctx, story, create)
        return story


async def find_local_story(session: AsyncSession, ctx: Context, url: str) -> Story:
    prefix = ctx.settings.url("/stories/")
    tail = url[len(prefix) :] if url.startswith(prefix) else ""
    story_id = whole_number(tail)
    if story_id is None:
        raise NotFound(f"{url} is not a story of this instance ({prefix}ID)")
    story = await session.get(Story, story_id)
    if story is None or not story.local or story.deleted_at is not None:
        raise NotFound(f"no story at {url}")
    return story


async def update(
    ctx: Context,
    url: str,
    *,
    title: str | None = None,
    summary: str | None = None,
    body: str | None = None,
) -> Story:
    """Edit a story; its Update carries a newer `updated` to the same audience."""
    async with ctx.sessions.begin() as session:
        story = await find_local_story(session, ctx, url)
        if title is not None:
            title = " ".join(title.split())
            if not title or len(title) > MAX_TITLE:
                raise Invalid(f"the title must be 1-{MAX_TITLE} characters")
            story.title = title
        if summary is not None:
            if len(summary) > MAX_SUMMARY:
                raise Invalid(f"the summary must be at most {MAX_SUMMARY} characters")
            story.summary = summary.strip()
        if body is not None:
            if not body.strip() or len(body) > MAX_BODY:
                raise Invalid(f"the story body must be 1-{MAX_BODY} characters")
            story.source_markdown = body
            story.content_html = render_markdown(body)
            story.search_text = text_for_search(story.content_html)
        if title is None and summary is None and body is None:
            raise Invalid("nothing to change: give --title, --summary or a file")
        story.updated_at = ctx.clock()
        await session.flush()
        await session.refresh(story, ["author", "tags"])
        article = convert.story_to_article(ctx, story)
        document = outbound.activity(
            ctx,
            "Update",
            story.author,
            article,
            to=article["to"],
            cc=article["cc"],
            published=convert.iso8601(story.updated_at),
        )
        document["@context"] = convert.OBJECT_CONTEXT
        await _fan_out(session, ctx, story, document)
        return story


async def delete(ctx: Context, url: str) -> Story:
    """Delete a story: its URL answers 410 with a Tombstone, and a Delete goes to its audience."""
    async with ctx.sessions.begin() as session:
        story = await find_local_story(session, ctx, url)
        story.deleted_at = ctx.clock()
        await session.refresh(story, ["author", "tags"])
        to, cc = convert.story_addressing(story)
        tombstone = {
            "id": story.uri,
            "type": "Tombstone",
            "formerType": "Article",
            "deleted": convert.iso8601(story.deleted_at),
        }
        document = outbound.activity(ctx, "Delete", story.author, tombstone, to=to, cc=cc)
        await _fan_out(session, ctx, story, document)
        return story
