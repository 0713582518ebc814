"""HTML sanitising (nh3) for everything we show: local Markdown output and remote HTML alike."""

from __future__ import annotations

from html import unescape

import nh3

# Mastodon's allowlist for remote posts (app/lib/sanitize_config.rb, RELAXED-ish "MASTODON_STRICT").
COMMENT_TAGS = frozenset(
    {
        "p",
        "br",
        "span",
        "a",
        "del",
        "s",
        "pre",
        "blockquote",
        "code",
        "b",
        "strong",
        "u",
        "i",
        "em",
        "ul",
        "ol",
        "li",
    }
)
# Stories are long-form: headings, tables, images and rules too.
STORY_TAGS = COMMENT_TAGS | frozenset(
    {
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "hr",
        "img",
        "table",
        "thead",
        "tbody",
        "tr",
        "th",
        "td",
        "figure",
        "figcaption",
        "sup",
        "sub",
    }
)
# Dropped with their contents, not unwrapped to text.
DROP_WITH_CONTENT = frozenset(
    {
        "script",
        "style",
        "iframe",
        "svg",
        "math",
        "object",
        "embed",
        "noscript",
        "template",
        "textarea",
        "select",
        "title",
        "head",
        "frame",
        "frameset",
        "applet",
        "canvas",
        "audio",
        "video",
        "form",
        "button",
        "input",
        "base",
        "meta",
        "link",
    }
)
URL_SCHEMES = frozenset({"http", "https"})


def _attributes(tags: frozenset[str]) -> dict[str, set[str]]:
    attributes: dict[str, set[str]] = {"a": {"href", "title"}, "span": {"class"}}
    if "img" in tags:
        attributes["img"] = {"src", "alt", "title", "width", "height"}
    if "th" in tags:
        attributes["th"] = {"align"}
        attributes["td"] = {"align"}
    attributes["ol"] = {"start"}
    return attributes


def _clean(html: str, tags: frozenset[str]) -> str:
    return nh3.clean(
        html,
        tags=set(tags),
        clean_content_tags=set(DROP_WITH_CONTENT),
        attributes=_attributes(tags),
        url_schemes=set(URL_SCHEMES),
        link_rel="nofollow noopener ugc",
        strip_comments=True,
    )


def comment_html(html: str) -> str:
    """Remote or local comment HTML reduced to Mastodon's allowlist; links only http(s)."""
    return _clean(html, COMMENT_TAGS)


def story_html(html: str) -> str:
    """Story HTML (rendered Markdown or a remote Article) reduced to the long-form allowlist."""
    return _clean(html, STORY_TAGS)


MAX_SEARCH_TEXT = 100_000


def text_for_search(html: str) -> str:
    """What full-text search indexes of a story's body: its words, without markup, bounded."""
    return plain_text(html)[:MAX_SEARCH_TEXT]


def plain_text(html: str) -> str:
    """Only the text of some HTML (for titles, names, meta tags); escape it where it is shown."""
    text = nh3.clean(html, tags=set(), clean_content_tags=set(DROP_WITH_CONTENT))
    return " ".join(unescape(text).split())
