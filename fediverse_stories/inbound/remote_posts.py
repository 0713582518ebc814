"""Remote Articles and Notes as rows of ours (the wire -> model direction for posts)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from activitypub.vocab import PUBLIC, addresses, as_list, id_of, primary_type
from fediverse_stories.db.models import CommentPolicy, StoryTag, Visibility
from fediverse_stories.sanitize import plain_text, story_html, text_for_search

MAX_CONTENT = 200_000


def parse_time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _http_url(value: str | None) -> str | None:
    if value and value.startswith(("https://", "http://")) and len(value) <= 2048:
        return value
    return None


def _text(obj: dict[str, Any], field: str) -> str:
    value = obj.get(field)
    return value if isinstance(value, str) else ""


def post_fields(obj: dict[str, Any]) -> dict[str, Any]:
    """Story columns for a remote post: sanitised HTML, plain-text title and summary."""
    content, name, summary = (_text(obj, field) for field in ("content", "name", "summary"))
    audience = addresses(obj)
    visibility = Visibility.PUBLIC if PUBLIC in audience else Visibility.FOLLOWERS
    tags: list[StoryTag] = []
    for tag in as_list(obj.get("tag")):
        if (
            isinstance(tag, dict)
            and tag.get("type") == "Hashtag"
            and isinstance(tag.get("name"), str)
        ):
            clean = tag["name"].lstrip("#")[:100]
            if clean and clean not in [t.name for t in tags]:
                tags.append(StoryTag(name=clean))
    published = parse_time(obj.get("published")) or datetime.now(UTC)
    return {
        "uri": str(obj["id"]),
        "object_type": (primary_type(obj.get("type")) or "Note")[:32],
        "url": _http_url(id_of(obj.get("url"))),
        "title": plain_text(name)[:500],
        "summary": plain_text(summary)[:2000],
        "content_html": story_html(content[:MAX_CONTENT]),
        "search_text": text_for_search(content[:MAX_CONTENT]),
        "language": "en",
        "visibility": visibility,
        "comment_policy": CommentPolicy.OPEN,
        "published_at": published,
        "updated_at": parse_time(obj.get("updated")),
        "tags": tags[:20],
    }
