"""The `story`, `follow`, `unfollow` and `follower` commands (CONTRACT.md)."""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from fediverse_stories.context import Context
from fediverse_stories.db.models import CommentPolicy, Visibility
from fediverse_stories.services import follows, publishing
from fediverse_stories.services.stories import MAX_BODY, StoryDraft
from fediverse_stories.settings import Settings


def add_federation_commands(commands: Any, parser_class: type[argparse.ArgumentParser]) -> None:
    story = commands.add_parser("story", help="publish, edit and delete stories")
    story_sub = story.add_subparsers(dest="story_command", required=True, parser_class=parser_class)
    publish = story_sub.add_parser("publish", help="publish a Markdown file as a story")
    publish.add_argument("--author", required=True)
    publish.add_argument("--title", required=True)
    publish.add_argument("--summary", default="")
    publish.add_argument("--tag", action="append", default=[])
    publish.add_argument("--language", default="en")
    publish.add_argument("--visibility", choices=[v.value for v in Visibility], default="public")
    publish.add_argument("--comments", choices=[c.value for c in CommentPolicy], default="open")
    publish.add_argument("file", metavar="FILE.md")
    update = story_sub.add_parser("update", help="edit a story and federate the Update")
    update.add_argument("url", metavar="URL")
    update.add_argument("--title")
    update.add_argument("--summary")
    update.add_argument("file", metavar="FILE.md", nargs="?")
    delete = story_sub.add_parser("delete", help="delete a story and federate the Delete")
    delete.add_argument("url", metavar="URL")

    for name, text in (("follow", "follow a remote actor"), ("unfollow", "stop following one")):
        command = commands.add_parser(name, help=text)
        command.add_argument("target", metavar="HANDLE_OR_URL")
        command.add_argument("--as", dest="as_name", metavar="NAME", required=True)

    follower = commands.add_parser("follower", help="a local actor's followers")
    follower_sub = follower.add_subparsers(
        dest="follower_command", required=True, parser_class=parser_class
    )
    follower_sub.add_parser("list").add_argument("name", metavar="NAME")
    for name in ("approve", "reject", "remove"):
        command = follower_sub.add_parser(name)
        command.add_argument("name", metavar="NAME")
        command.add_argument("target", metavar="HANDLE_OR_URL")


def _run(settings: Settings, work: Callable[[Context], Awaitable[Any]]) -> Any:
    from fediverse_stories.cli import _after_migrated, run_with_context

    return run_with_context(settings, _after_migrated(work))


def _read_markdown(path: str) -> str:
    from fediverse_stories.cli import CommandError

    file = Path(path)
    try:
        if file.stat().st_size > MAX_BODY * 4:
            raise CommandError(f"{path} is too large for a story")
        return file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CommandError(f"no such file: {path}") from None
    except UnicodeDecodeError:
        raise CommandError(f"{path} is not UTF-8 text") from None
    except OSError as error:
        raise CommandError(f"cannot read {path}: {error.strerror}") from None


def cmd_story_publish(settings: Settings, args: argparse.Namespace) -> None:
    draft = StoryDraft(
        title=args.title,
        body_markdown=_read_markdown(args.file),
        summary=args.summary,
        tags=args.tag,
        language=args.language,
        visibility=Visibility(args.visibility),
        comment_policy=CommentPolicy(args.comments),
    )
    story = _run(settings, lambda ctx: publishing.publish(ctx, args.author, draft))
    print(story.uri)


def cmd_story_update(settings: Settings, args: argparse.Namespace) -> None:
    body = _read_markdown(args.file) if args.file else None
    story = _run(
        settings,
        lambda ctx: publishing.update(
            ctx, args.url, title=args.title, summary=args.summary, body=body
        ),
    )
    print(story.uri)


def cmd_story_delete(settings: Settings, args: argparse.Namespace) -> None:
    story = _run(settings, lambda ctx: publishing.delete(ctx, args.url))
    print(f"Deleted {story.uri}")


def cmd_follow(settings: Settings, args: argparse.Namespace) -> None:
    _run(settings, lambda ctx: follows.follow(ctx, args.as_name, args.target))
    print(f"{args.as_name} asked to follow {args.target}")


def cmd_unfollow(settings: Settings, args: argparse.Namespace) -> None:
    _run(settings, lambda ctx: follows.unfollow(ctx, args.as_name, args.target))
    print(f"{args.as_name} no longer follows {args.target}")


def cmd_follower_list(settings: Settings, args: argparse.Namespace) -> None:
    rows = _run(settings, lambda ctx: follows.followers(ctx, args.name))
    for actor, row in rows:
        print(f"{actor.handle}\t{actor.uri}\t{row.state.value}")


def _follower_command(action: Callable[[Context, str, str], Awaitable[None]], verb: str) -> Any:
    def command(settings: Settings, args: argparse.Namespace) -> None:
        _run(settings, lambda ctx: action(ctx, args.name, args.target))
        print(f"{verb} {args.target} for {args.name}")

    return command


COMMANDS: dict[str, Callable[[Settings, argparse.Namespace], None]] = {
    "story publish": cmd_story_publish,
    "story update": cmd_story_update,
    "story delete": cmd_story_delete,
    "follow": cmd_follow,
    "unfollow": cmd_unfollow,
    "follower list": cmd_follower_list,
    "follower approve": _follower_command(follows.approve, "Approved"),
    "follower reject": _follower_command(follows.reject, "Rejected"),
    "follower remove": _follower_command(follows.reject, "Removed"),
}
