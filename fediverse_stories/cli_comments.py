"""The `fediverse-stories comment ...` commands: the moderation queue and single comments.

cli.py registers them with `add_comment_commands(commands, _Parser)` and merges `COMMANDS`.
"""

from __future__ import annotations

import argparse
import unicodedata
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import select

from fediverse_stories.context import Context
from fediverse_stories.db.models import Actor, Comment, CommentState
from fediverse_stories.sanitize import plain_text
from fediverse_stories.services import comments
from fediverse_stories.services.errors import Invalid, NotFound
from fediverse_stories.settings import Settings

EXCERPT = 80


def add_comment_commands(commands: Any, parser_class: type[argparse.ArgumentParser]) -> None:
    """Add `comment pending|approve|reject|remove` to the top-level subparsers."""
    comment = commands.add_parser("comment", help="the moderation queue and single comments")
    sub = comment.add_subparsers(dest="comment_command", required=True, parser_class=parser_class)
    sub.add_parser(
        "pending", help="held comments: comment URL, story URL, author, start of the text"
    )
    hint = "the comment's id (its URL), as `comment pending` prints it"
    for name, purpose in (
        ("approve", "show a held comment and tell its author's server"),
        ("reject", "refuse a held comment and tell its author's server"),
        ("remove", "take a comment down here and on every instance the thread reached"),
    ):
        sub.add_parser(name, help=purpose).add_argument("url", metavar="COMMENT_URL", help=hint)


def _run(settings: Settings, work: Callable[[Context], Awaitable[Any]]) -> Any:
    # Imported here: cli imports this module to register the commands.
    from fediverse_stories.cli import _after_migrated, run_with_context

    return run_with_context(settings, _after_migrated(work))


def terminal_safe(text: str) -> str:
    """Remote text fit for one terminal line: no control, format or escape characters."""
    return "".join(
        " " if unicodedata.category(c).startswith("C") else c for c in " ".join(text.split())
    )


def excerpt(html: str) -> str:
    text = plain_text(html)
    return terminal_safe(text if len(text) <= EXCERPT else text[: EXCERPT - 1] + "…")


def cmd_comment_pending(settings: Settings, args: argparse.Namespace) -> None:
    async def work(ctx: Context) -> list[tuple[str, str, str, str]]:
        held = await comments.pending(ctx)
        lines = []
        async with ctx.sessions() as session:
            for comment, story in held:
                author = await session.get(Actor, comment.author_id)
                handle = author.handle if author is not None else "?"
                lines.append(
                    (str(comment.uri), str(story.uri), handle, excerpt(comment.content_html))
                )
        return lines

    for line in _run(settings, work):
        print("\t".join(terminal_safe(field) for field in line))


async def _comment_state(ctx: Context, url: str) -> CommentState:
    async with ctx.sessions() as session:
        state = (
            await session.execute(select(Comment.state).where(Comment.uri == url))
        ).scalar_one_or_none()
    if state is None:
        raise NotFound(f"no comment at {url}")
    return state


def cmd_comment_approve(settings: Settings, args: argparse.Namespace) -> None:
    _run(settings, lambda ctx: comments.approve(ctx, args.url))
    print(f"Approved {args.url}")


def cmd_comment_reject(settings: Settings, args: argparse.Namespace) -> None:
    _run(settings, lambda ctx: comments.reject(ctx, args.url))
    print(f"Rejected {args.url}")


def cmd_comment_remove(settings: Settings, args: argparse.Namespace) -> None:
    async def work(ctx: Context) -> None:
        state = await _comment_state(ctx, args.url)
        if state in (CommentState.REMOVED, CommentState.DELETED):
            raise Invalid(f"the comment is already {state.value}")
        await comments.remove(ctx, args.url)

    _run(settings, work)
    print(f"Removed {args.url}")


COMMANDS: dict[str, Callable[[Settings, argparse.Namespace], None]] = {
    "comment pending": cmd_comment_pending,
    "comment approve": cmd_comment_approve,
    "comment reject": cmd_comment_reject,
    "comment remove": cmd_comment_remove,
}
