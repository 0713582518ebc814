"""The `fediverse-stories` command. It never prompts; failures are one line on stderr, exit 1."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
import tempfile
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, NoReturn

from sqlalchemy.exc import DBAPIError, OperationalError

from fediverse_stories.cli_comments import add_comment_commands
from fediverse_stories.cli_domain import add_domain_commands
from fediverse_stories.cli_federation import add_federation_commands
from fediverse_stories.cli_ops import add_ops_commands
from fediverse_stories.cli_reports import add_report_commands
from fediverse_stories.context import Context
from fediverse_stories.services.accounts import create_account, parse_role, set_password
from fediverse_stories.services.errors import ServiceError
from fediverse_stories.services.instance import initialise
from fediverse_stories.services.passwords import generate_password
from fediverse_stories.settings import Settings, SettingsError

MAX_PASSWORD_INPUT = 10_000


class CommandError(Exception):
    """A command failed; the message is the one line printed to stderr."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # One line, not argparse's usage block: scripts read stderr.
        self.exit(2, f"fediverse-stories: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="fediverse-stories", description="A federated story-sharing server.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    commands.add_parser("init", help="create or migrate the database, keys, organisation and admin")

    serve = commands.add_parser("serve", help="serve the web and federation endpoints")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--no-worker", action="store_true", help="do not run the worker in-process")
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="web processes on this machine (PostgreSQL only; each also runs a job worker "
        "unless --no-worker)",
    )

    commands.add_parser("worker", help="run only the background worker")

    user = commands.add_parser("user", help="manage local accounts")
    user_commands = user.add_subparsers(dest="user_command", required=True, parser_class=_Parser)
    add = user_commands.add_parser("add", help="create a local account")
    add.add_argument("name")
    add.add_argument("--role", default="member", help="admin, moderator, author or member")
    add.add_argument("--display-name", default="")
    add.add_argument("--manual-approval", action="store_true")
    add.add_argument(
        "--hide-followers", action="store_true", help="show only the follower and following counts"
    )
    add.add_argument("--password-stdin", action="store_true")
    password = user_commands.add_parser("password", help="set an account's password")
    password.add_argument("name")
    password.add_argument("--password-stdin", action="store_true", required=True)
    add_federation_commands(commands, _Parser)
    add_domain_commands(commands, _Parser)
    add_comment_commands(commands, _Parser)
    add_report_commands(commands, _Parser)
    add_ops_commands(commands, _Parser)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if args.command in ("serve", "worker"):
        logging.getLogger("fediverse_stories").setLevel(logging.INFO)
    try:
        settings = Settings.from_environ()
        check_data_dir(settings)
        _all_commands()[_command_name(args)](settings, args)
    except SettingsError as error:
        for problem in error.problems:
            print(f"fediverse-stories: {problem}", file=sys.stderr)
        sys.exit(1)
    except (CommandError, ServiceError) as error:
        print(f"fediverse-stories: {error}", file=sys.stderr)
        sys.exit(1)


def _all_commands() -> dict[str, Callable[[Settings, argparse.Namespace], None]]:
    from fediverse_stories import cli_comments, cli_domain, cli_federation, cli_ops, cli_reports

    return {
        **COMMANDS,
        **cli_federation.COMMANDS,
        **cli_domain.COMMANDS,
        **cli_comments.COMMANDS,
        **cli_reports.COMMANDS,
        **cli_ops.COMMANDS,
    }


def _command_name(args: argparse.Namespace) -> str:
    sub = getattr(args, f"{args.command}_command", None)
    return f"{args.command} {sub}" if sub else str(args.command)


def check_data_dir(settings: Settings) -> None:
    """The data dir exists (made if missing) and is writable, or a clear CommandError."""
    directory = settings.data_dir
    try:
        directory.mkdir(parents=True, exist_ok=True)
        # A probe of its own: processes starting together share the directory, and one
        # fixed name let one process unlink another's probe between its write and unlink.
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".write-test-"):
            pass
    except OSError as error:
        raise CommandError(
            f"the data directory {str(directory)!r} is not writable: {error.strerror or error}"
        ) from None


def run_with_context(
    settings: Settings, work: Callable[[Context], Awaitable[Any]], *, uvloop: bool = False
) -> Any:
    """Run `work` with a Context, turning an unreachable database into one clear line. With
    `uvloop`, on uvloop's event loop, as `serve` runs under uvicorn (a long-running worker)."""

    async def runner() -> Any:
        ctx = Context.build(settings)
        try:
            return await work(ctx)
        finally:
            await ctx.close()

    try:
        return _run_loop(runner(), uvloop)
    except (OperationalError, DBAPIError, OSError) as error:
        raise CommandError(
            f"cannot use the database {_redacted(settings.database_url)}: {_reason(error)}"
        ) from None


def _run_loop(main: Coroutine[Any, Any, Any], uvloop: bool) -> Any:
    if uvloop:
        try:
            import uvloop as loops  # with uvicorn[standard], except on Windows
        except ImportError:
            pass
        else:
            # A fan-out's worker spent about 5% less CPU on it than on asyncio's own loop.
            return loops.run(main)
    return asyncio.run(main)


def _redacted(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def _reason(error: BaseException) -> str:
    original = getattr(error, "orig", None) or error
    text = str(original).strip().splitlines()
    return text[0] if text else type(original).__name__


def read_password_stdin() -> str:
    data = sys.stdin.read(MAX_PASSWORD_INPUT + 1)
    if len(data) > MAX_PASSWORD_INPUT:
        raise CommandError("the password on stdin is too long")
    password = data.rstrip("\r\n")
    if not password:
        raise CommandError("no password on stdin")
    return password


def cmd_init(settings: Settings, args: argparse.Namespace) -> None:
    result = run_with_context(settings, initialise)
    if result.admin_password:
        print(f"Created the admin account. Name: admin  Password: {result.admin_password}")
        print("This password is shown only once; change it with `fediverse-stories user password`.")
    print(f"Instance ready at {settings.base_url}")


def cmd_user_add(settings: Settings, args: argparse.Namespace) -> None:
    role = parse_role(args.role)
    generated = not args.password_stdin
    password = generate_password() if generated else read_password_stdin()

    async def work(ctx: Context) -> None:
        async with ctx.sessions.begin() as session:
            await create_account(
                session,
                ctx,
                args.name,
                password,
                role=role,
                display_name=args.display_name,
                manual_approval=args.manual_approval,
                hide_followers=args.hide_followers,
            )

    run_with_context(settings, _after_migrated(work))
    print(f"Created {role.value} {args.name}: {settings.url('/users/' + args.name)}")
    if generated:
        print(f"Password: {password}")


def cmd_user_password(settings: Settings, args: argparse.Namespace) -> None:
    password = read_password_stdin()

    async def work(ctx: Context) -> None:
        async with ctx.sessions.begin() as session:
            await set_password(session, args.name, password)

    run_with_context(settings, _after_migrated(work))
    print(f"Password changed for {args.name}")


def _after_migrated(
    work: Callable[[Context], Awaitable[Any]],
) -> Callable[[Context], Awaitable[Any]]:
    """Commands other than init need an initialised instance; say so instead of a SQL error."""

    async def checked(ctx: Context) -> Any:
        from fediverse_stories.db.migrate import is_current

        if not await is_current(ctx.engine):
            raise CommandError(
                "the database is not initialised or not migrated: run `fediverse-stories init`"
            )
        return await work(ctx)

    return checked


def cmd_serve(settings: Settings, args: argparse.Namespace) -> None:
    import uvicorn

    from fediverse_stories.app import create_app

    if args.workers < 1:
        raise CommandError("--workers must be 1 or more")
    if args.workers > 1 and not settings.database_url.startswith("postgresql"):
        # SQLite has one writer and keeps a single in-process worker (DESIGN.md).
        raise CommandError(
            "--workers above 1 needs PostgreSQL (FEDIVERSE_STORIES_DATABASE_URL="
            "postgresql+asyncpg://...); on SQLite run one serve process"
        )
    result = run_with_context(settings, lambda ctx: initialise(ctx, create_admin=False))
    if result.migrated:
        print("Database migrated.", file=sys.stderr)
    served: dict[str, Any] = {
        "host": args.host,
        "port": args.port,
        "loop": "uvloop",
        "http": "httptools",
        "proxy_headers": True,
        "forwarded_allow_ips": os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1"),
        "log_level": "info",
    }
    if args.workers == 1:
        app = create_app(settings, run_worker=not args.no_worker, server_process=True)
        uvicorn.run(app, **served)
        return
    # Several processes share the listening socket; each builds its app from the environment
    # (the same settings), and everything they share lives in the database.
    factory = "web_app_from_environ" if args.no_worker else "app_with_worker_from_environ"
    uvicorn.run(f"fediverse_stories.app:{factory}", factory=True, workers=args.workers, **served)


def cmd_worker(settings: Settings, args: argparse.Namespace) -> None:
    from fediverse_stories import jobs  # noqa: F401 - registers the job handlers
    from fediverse_stories.app import keep_startup_out_of_gc
    from fediverse_stories.worker import Worker

    async def work(ctx: Context) -> None:
        from fediverse_stories.services.instance import load_secret

        await load_secret(ctx)
        keep_startup_out_of_gc()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        print("Worker running; SIGTERM stops it after the jobs in hand.", file=sys.stderr)
        await Worker(ctx).run_forever(stop)

    run_with_context(settings, _after_migrated(work), uvloop=True)


COMMANDS: dict[str, Callable[[Settings, argparse.Namespace], None]] = {
    "init": cmd_init,
    "serve": cmd_serve,
    "worker": cmd_worker,
    "user add": cmd_user_add,
    "user password": cmd_user_password,
}


if __name__ == "__main__":  # pragma: no cover
    main()
