"""Signed-cookie sessions and CSRF tokens, keyed by the instance's shared secret."""

from __future__ import annotations

import hmac
import secrets

from starlette.exceptions import HTTPException
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from fediverse_stories.context import Context

SESSION_COOKIE = "fs_session"
SESSION_MAX_AGE = 14 * 24 * 3600


class InstanceSessionMiddleware:
    """Starlette's signed-cookie sessions, built once the secret is loaded from the database."""

    def __init__(self, app: ASGIApp, ctx: Context) -> None:
        self.app = app
        self.ctx = ctx
        self._sessions: SessionMiddleware | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["method"] == "POST" and scope["path"].endswith("/inbox"):
            # Inbox POSTs come from servers, which carry no session: skip the cookie work on
            # the hot path, with an empty session that is never sent back.
            scope["session"] = {}
            await self.app(scope, receive, send)
            return
        if self._sessions is None:
            self._sessions = SessionMiddleware(
                self.app,
                secret_key=self.ctx.secret_key,
                session_cookie=SESSION_COOKIE,
                max_age=SESSION_MAX_AGE,
                same_site="lax",
                https_only=self.ctx.settings.base_url.startswith("https://"),
            )
        await self._sessions(scope, receive, send)


def csrf_token(request: Request) -> str:
    """The session's CSRF token, made on first use; every state-changing form carries it."""
    token = request.session.get("csrf")
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        request.session["csrf"] = token
    return token


async def checked_form(request: Request, limits: dict[str, int]) -> dict[str, str]:
    """A posted form's text fields, once its CSRF token is this session's (403 otherwise); a
    field holding a NUL character is a 400 (PostgreSQL text cannot hold one)."""
    async with request.form(**limits) as form:
        check_csrf(request, form.get("csrf_token"))
        fields = {name: value for name, value in form.items() if isinstance(value, str)}
    if any("\x00" in value for value in fields.values()):
        raise HTTPException(400, "The form holds a NUL character.")
    return fields


def check_csrf(request: Request, submitted: object) -> None:
    """Refuse (403) a form whose token is missing or not this session's."""
    expected = request.session.get("csrf")
    if (
        not isinstance(expected, str)
        or not isinstance(submitted, str)
        or not hmac.compare_digest(expected.encode(), submitted.encode())
    ):
        raise HTTPException(
            403, "The form expired or did not come from this site. Reload and try again."
        )
