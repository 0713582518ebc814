"""The Jinja2 environment (autoescaped) and a render helper that adds what every page needs."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.templating import Jinja2Templates

from fediverse_stories.convert import tag_path
from fediverse_stories.web.sessions import csrf_token

TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "templates"

templates = Jinja2Templates(directory=str(TEMPLATES_DIR))
# Templates ship with the package and change only with it: without this, every render stats
# each template file (story.html and base.html) to see whether it changed (bench/pages.py).
templates.env.auto_reload = False


def http_url(value: object) -> str:
    """A link target only if it is http(s); anything else (javascript:, data:, ...) becomes "#".

    Remote URLs are checked when they arrive too; this keeps a page safe whatever is stored.
    """
    if isinstance(value, str) and urlsplit(value.strip()).scheme.lower() in ("http", "https"):
        return value
    return "#"


templates.env.filters["http_url"] = http_url
templates.env.filters["tag_path"] = tag_path


def render(
    request: Request, name: str, context: dict[str, Any], status_code: int = 200
) -> HTMLResponse:
    ctx = request.app.state.ctx
    context = {
        "settings": ctx.settings,
        "account": request.scope.get("account"),
        "csrf_token": lambda: csrf_token(request),
        **context,
    }
    return templates.TemplateResponse(request, name, context, status_code=status_code)
