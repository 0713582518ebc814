"""Markdown stories rendered to safe HTML: markdown-it-py with raw HTML off, then sanitised."""

from __future__ import annotations

from markdown_it import MarkdownIt

from fediverse_stories.sanitize import story_html

_renderer = MarkdownIt("commonmark", {"html": False, "typographer": True}).enable(
    ["table", "strikethrough", "replacements", "smartquotes"]
)


def render_markdown(source: str) -> str:
    return story_html(_renderer.render(source))
