"""Signing in and out."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from fediverse_stories.context import Context
from fediverse_stories.services.accounts import LoginLimited, authenticate
from fediverse_stories.web.current import current_account
from fediverse_stories.web.sessions import checked_form
from fediverse_stories.web.templating import render

FORM_LIMITS = {"max_files": 0, "max_fields": 10, "max_part_size": 4096}


async def login_form(request: Request) -> Response:
    ctx: Context = request.app.state.ctx
    async with ctx.sessions() as session:
        await current_account(request, session)
    return render(request, "login.html", {"error": None, "username": ""})


async def login(request: Request) -> Response:
    ctx: Context = request.app.state.ctx
    form = await checked_form(request, FORM_LIMITS)
    username = form.get("username", "")[:100].strip().lower()
    password = form.get("password", "")
    address = request.client.host if request.client else "unknown"
    try:
        async with ctx.sessions.begin() as session:
            account = await authenticate(session, ctx, username, password, address)
    except LoginLimited as limited:
        response = render(
            request,
            "login.html",
            {
                "error": "Too many failed attempts. Wait a minute and try again.",
                "username": username,
            },
            status_code=429,
        )
        response.headers["Retry-After"] = str(limited.retry_after)
        return response
    if account is None:
        return render(
            request,
            "login.html",
            {"error": "Wrong name or password.", "username": username},
            status_code=401,
        )
    request.session.clear()  # a fresh session and CSRF token on sign-in (no fixation)
    request.session.update({"uid": account.id, "pw": account.password_hash[-16:]})
    return RedirectResponse(_safe_next(request.query_params.get("next")), status_code=303)


async def logout(request: Request) -> Response:
    await checked_form(request, FORM_LIMITS)
    request.session.clear()
    return RedirectResponse("/", status_code=303)


def _safe_next(target: str | None) -> str:
    # Only paths on this site: never an open redirect.
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/"


routes = [
    Route("/login", login_form, methods=["GET"]),
    Route("/login", login, methods=["POST"]),
    Route("/logout", logout, methods=["POST"]),
]
