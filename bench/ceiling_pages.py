"""The story page ceiling: a bare starlette app rendering the app's story template from memory.

At start-up it reads the story and its shown comments once from the instance's database, with
the app's own read function (`story_view.read_story_page`), and keeps them. Each request then
only renders templates/story.html (a Jinja2 environment of its own on the same directory, with
the app's `http_url` and `tag_path` filters) with the context the app gives an anonymous visitor: no
database, no middleware, no session. Served by uvicorn the way `serve` is (1 worker, uvloop,
httptools, log level info).

    python -m bench.ceiling_pages PORT ENV.json STORY_ID
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.templating import Jinja2Templates

from fediverse_stories.context import Context
from fediverse_stories.services.stories import effective_policy
from fediverse_stories.services.story_view import read_story_page
from fediverse_stories.settings import Settings
from fediverse_stories.web.templating import TEMPLATES_DIR, http_url, tag_path


async def load(settings: Settings, story_id: int) -> dict[str, Any]:
    """The story page's template context, read once (story, author, tags, comments, policy)."""
    ctx = Context.build(settings)
    try:
        story, comments = await ctx.on_connection(
            lambda connection: read_story_page(connection, story_id, local=True)
        )
        assert story is not None, f"no story {story_id}"
        return {"story": story, "comments": comments, "policy": effective_policy(ctx, story).value}
    finally:
        await ctx.close()


def build(settings: Settings, page: dict[str, Any]) -> Starlette:
    templates = Jinja2Templates(directory=str(TEMPLATES_DIR))
    templates.env.filters["http_url"] = http_url
    templates.env.filters["tag_path"] = tag_path
    templates.env.auto_reload = False  # as the app's environment
    # What `render` adds for a visitor who is not signed in.
    context = {"settings": settings, "account": None, "csrf_token": lambda: "", **page}

    async def story_page(request: Request) -> Response:
        # A copy: TemplateResponse puts the request into the context it is given.
        return templates.TemplateResponse(request, "story.html", {**context})

    async def healthz(request: Request) -> Response:
        return Response("ok")

    return Starlette(
        routes=[
            Route("/stories/{story_id:int}", story_page, methods=["GET"]),
            Route("/healthz", healthz),
        ]
    )


def main() -> None:
    port, env_path, story_id = sys.argv[1:4]
    environ = json.loads(Path(env_path).read_text())
    settings = Settings.from_environ(environ, env_file=None)
    page = asyncio.run(load(settings, int(story_id)))
    uvicorn.run(
        build(settings, page),
        host="127.0.0.1",
        port=int(port),
        loop="uvloop",
        http="httptools",
        log_level="info",
    )


if __name__ == "__main__":
    main()
