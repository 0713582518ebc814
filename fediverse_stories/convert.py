"""Wire <-> models: every ActivityStreams document we emit or read is built or parsed here.

Sections, in order:
  shared helpers     timestamps, plain text as HTML, URLs derived from models
  contexts           the JSON-LD @context of each kind of document
  actors             Actor -> Person / Organization / Application
  collections        OrderedCollection and OrderedCollectionPage
  stories            Story -> Article, and the Create that wraps it
(Comments, and the wire -> model direction, are added beside these with symmetric names:
`story_to_article` / `article_to_story`, ...)

Functions here build plain dicts and never touch the database: callers load what is needed.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlsplit

from activitypub import vocab
from fediverse_stories.context import Context
from fediverse_stories.db.models import Actor, CommentPolicy, Story, Visibility
from fediverse_stories.sanitize import plain_text
from fediverse_stories.services.stories import effective_policy

# --------------------------------------------------------------------------------------------
# Shared helpers
# --------------------------------------------------------------------------------------------


def iso8601(moment: datetime) -> str:
    """A timestamp as peers expect it: UTC, whole seconds, `Z` (`2024-05-01T12:00:00Z`)."""
    return moment.astimezone(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def plain_text_to_html(text: str, line_html: Callable[[str], str] = html.escape) -> str:
    """Plain text (a bio, a story summary) as escaped HTML: blank lines part `<p>`, newlines `<br>`.

    Empty text stays empty, as Mastodon sends it. `line_html` renders one line (a comment's
    links its mentions).
    """
    paragraphs = [p.strip() for p in text.replace("\r\n", "\n").split("\n\n")]
    return "".join(
        "<p>" + "<br>".join(line_html(line) for line in p.split("\n")) + "</p>"
        for p in paragraphs
        if p
    )


def host_name(ctx: Context) -> str:
    """Our host without its port: the domain Mastodon's `attributionDomains` compares against."""
    return urlsplit(ctx.settings.base_url).hostname or ctx.settings.host


def is_instance_actor(actor: Actor) -> bool:
    return actor.local and actor.type == "Application"


def profile_url(ctx: Context, actor: Actor) -> str:
    """The HTML page of an actor; the instance actor has none of its own, so the home page."""
    if is_instance_actor(actor):
        return ctx.settings.url("/")
    return actor.url or actor.uri


def inbox_url(actor: Actor) -> str:
    return actor.inbox_url or f"{actor.uri}/inbox"


def outbox_url(actor: Actor) -> str:
    return actor.outbox_url or f"{actor.uri}/outbox"


def followers_url(actor: Actor) -> str:
    return actor.followers_url or f"{actor.uri}/followers"


def following_url(actor: Actor) -> str:
    return f"{actor.uri}/following"


def featured_url(actor: Actor) -> str:
    return f"{actor.uri}/featured"


def shared_inbox_url(ctx: Context) -> str:
    return ctx.settings.url("/inbox")


def tag_path(name: str) -> str:
    """The path of a hashtag's page; tags compare case-insensitively, so it is lower case."""
    return f"/tags/{quote(name.lower(), safe='')}"


def tag_url(ctx: Context, name: str) -> str:
    return ctx.settings.url(tag_path(name))


# --------------------------------------------------------------------------------------------
# Contexts
# --------------------------------------------------------------------------------------------

TOOT = "http://joinmastodon.org/ns#"
GOTOSOCIAL_CONTEXT = "https://gotosocial.org/ns"

# The terms Mastodon defines for actors (app/lib/activitypub/adapter.rb), inline so no processor
# has to fetch anything.
ACTOR_CONTEXT: list[Any] = [
    vocab.AS_CONTEXT,
    vocab.SECURITY_CONTEXT,
    {
        "manuallyApprovesFollowers": "as:manuallyApprovesFollowers",
        "toot": TOOT,
        "featured": {"@id": "toot:featured", "@type": "@id"},
        "discoverable": "toot:discoverable",
        "indexable": "toot:indexable",
        "attributionDomains": {"@id": "toot:attributionDomains", "@type": "@id"},
        "webfinger": "https://purl.archive.org/socialweb/webfinger#webfinger",
    },
]

COLLECTION_CONTEXT: Any = vocab.AS_CONTEXT

# Stories and the activities carrying them: Hashtag and sensitive as Mastodon spells them, and
# GoToSocial's interaction policy (canReply) vocabulary.
OBJECT_CONTEXT: list[Any] = [
    vocab.AS_CONTEXT,
    GOTOSOCIAL_CONTEXT,
    {"Hashtag": "as:Hashtag", "sensitive": "as:sensitive"},
]


def with_context(document: dict[str, Any], context: Any) -> dict[str, Any]:
    """The document as a top-level JSON-LD document: `@context` first."""
    return {"@context": context, **document}


# --------------------------------------------------------------------------------------------
# Actors
# --------------------------------------------------------------------------------------------


def actor_to_wire(ctx: Context, actor: Actor) -> dict[str, Any]:
    """A local actor's document, as served at its id (with its `@context`).

    Persons and the Organization carry the full set of collections Mastodon reads; the instance
    actor (Application) only what it needs to sign fetches and receive, as Mastodon's does.
    """
    document: dict[str, Any] = {
        "id": actor.uri,
        "type": actor.type,
        "preferredUsername": actor.username,
        "name": actor.name,
        "summary": plain_text_to_html(actor.summary),
        "url": profile_url(ctx, actor),
        "inbox": inbox_url(actor),
        "outbox": outbox_url(actor),
    }
    if not is_instance_actor(actor):
        document |= {
            "followers": followers_url(actor),
            "following": following_url(actor),
            "featured": featured_url(actor),
        }
    document |= {
        "endpoints": {"sharedInbox": shared_inbox_url(ctx)},
        "publicKey": {
            "id": actor.key_id or f"{actor.uri}#main-key",
            "owner": actor.uri,
            "publicKeyPem": actor.public_key_pem or "",
        },
        "manuallyApprovesFollowers": actor.manually_approves_followers,
        "published": iso8601(actor.created_at),
        "webfinger": f"{actor.username}@{ctx.settings.host}",
    }
    if not is_instance_actor(actor):
        document |= {
            "discoverable": True,
            "indexable": True,
            "attributionDomains": [host_name(ctx)],
        }
    if actor.icon_url:
        document["icon"] = {"type": "Image", "url": actor.icon_url}
    return with_context(document, ACTOR_CONTEXT)


# --------------------------------------------------------------------------------------------
# Collections
# --------------------------------------------------------------------------------------------


def page_url(collection_id: str, page: int) -> str:
    return f"{collection_id}?page={page}"


def ordered_collection(
    collection_id: str, total: int, *, paged: bool = True, items: list[Any] | None = None
) -> dict[str, Any]:
    """An OrderedCollection: its count and, Mastodon style, a link to its first page.

    `paged=False` gives the count alone (a hidden social graph); `items` embeds the items
    instead of paging (a small collection such as `featured`).
    """
    document: dict[str, Any] = {
        "id": collection_id,
        "type": "OrderedCollection",
        "totalItems": total,
    }
    if items is not None:
        document["orderedItems"] = items
    elif paged:
        document["first"] = page_url(collection_id, 1)
    return with_context(document, COLLECTION_CONTEXT)


def ordered_collection_page(
    collection_id: str,
    page: int,
    items: list[Any],
    *,
    total: int,
    page_size: int,
    context: Any = COLLECTION_CONTEXT,
) -> dict[str, Any]:
    """Page `page` (from 1) of a collection; `next` while items remain, `prev` after page 1."""
    document: dict[str, Any] = {
        "id": page_url(collection_id, page),
        "type": "OrderedCollectionPage",
        "partOf": collection_id,
        "totalItems": total,
        "orderedItems": items,
    }
    if page * page_size < total:
        document["next"] = page_url(collection_id, page + 1)
    if page > 1:
        document["prev"] = page_url(collection_id, page - 1)
    return with_context(document, context)


# --------------------------------------------------------------------------------------------
# Stories
# --------------------------------------------------------------------------------------------


def story_addressing(story: Story) -> tuple[list[str], list[str]]:
    """(to, cc) of a story: public, unlisted (public in cc, as Mastodon does) or followers only."""
    followers = followers_url(story.author)
    if story.visibility == Visibility.PUBLIC:
        return [vocab.PUBLIC], [followers]
    if story.visibility == Visibility.UNLISTED:
        return [followers], [vocab.PUBLIC]
    return [followers], []


def reply_policy(ctx: Context, story: Story) -> dict[str, Any]:
    """GoToSocial's `interactionPolicy.canReply` for the story's comment policy."""
    policy = effective_policy(ctx, story)
    if story.visibility == Visibility.FOLLOWERS:
        policy = CommentPolicy.CLOSED
    if policy == CommentPolicy.OPEN:
        return {"automaticApproval": [vocab.PUBLIC]}
    if policy == CommentPolicy.MODERATED:
        return {"manualApproval": [vocab.PUBLIC]}
    return {}


EXCERPT_LENGTH = 280


def excerpt(html: str) -> str:
    """The opening of a story's text: Mastodon shows title, summary and link, never the body."""
    text = plain_text(html)
    if len(text) <= EXCERPT_LENGTH:
        return text
    return text[:EXCERPT_LENGTH].rsplit(" ", 1)[0] + "…"


def story_to_article(ctx: Context, story: Story) -> dict[str, Any]:
    """A local story as an Article (no `@context`: embed it, or wrap with `with_context`).

    `story.author` and `story.tags` must be loaded (both are eager on the model).
    """
    uri = story.uri or ctx.settings.url(f"/stories/{story.id}")
    to, cc = story_addressing(story)
    article: dict[str, Any] = {
        "id": uri,
        "type": "Article",
        "name": story.title,
        "summary": plain_text_to_html(story.summary or excerpt(story.content_html)),
        "content": story.content_html,
        "contentMap": {story.language: story.content_html},
        "url": uri,
        "attributedTo": story.author.uri,
        "published": iso8601(story.published_at),
        "to": to,
        "cc": cc,
        "tag": [
            {"type": "Hashtag", "name": f"#{tag.name}", "href": tag_url(ctx, tag.name)}
            for tag in story.tags
        ],
        "replies": f"{uri}/replies",
        "context": f"{uri}/context",
        "interactionPolicy": {"canReply": reply_policy(ctx, story)},
    }
    if story.updated_at is not None:
        article["updated"] = iso8601(story.updated_at)
    if story.sensitive:
        article["sensitive"] = True
    return article


def story_activity_id(story_uri: str) -> str:
    return f"{story_uri}/activity"


def story_to_create(ctx: Context, story: Story) -> dict[str, Any]:
    """The Create that published a story (no `@context`), as listed in the author's outbox."""
    article = story_to_article(ctx, story)
    return {
        "id": story_activity_id(article["id"]),
        "type": "Create",
        "actor": article["attributedTo"],
        "published": article["published"],
        "to": article["to"],
        "cc": article["cc"],
        "object": article,
    }
