"""Remote HTML never runs: every dangerous construct is removed from content, names and titles,
on every page that shows them, in titles and meta tags, and in the JSON we serve."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from html.parser import HTMLParser

import pytest

from fediverse_stories.db.models import Actor, Comment, CommentState, Role, Story
from fediverse_stories.inbound.remote_posts import post_fields
from fediverse_stories.sanitize import comment_html, plain_text, story_html
from fediverse_stories.services.accounts import create_account
from fediverse_stories.services.stories import StoryDraft, create_story
from tests.support.instances import Instance, sign_in

PAYLOADS = {
    "script": '<script>alert("x")</script>',
    "script-upper": "<SCRIPT SRC=//evil.test/x.js></SCRIPT>",
    "onerror": '<img src=x onerror="alert(1)">',
    "onmouseover": '<a href="https://ok.test" onmouseover="alert(1)">hover</a>',
    "javascript-link": '<a href="javascript:alert(1)">j</a>',
    "javascript-entity": '<a href="jav&#x61;script:alert(1)">j</a>',
    "javascript-tab": '<a href="java\tscript:alert(1)">j</a>',
    "javascript-decimal": '<a href="&#106;avascript:alert(1)">j</a>',
    "data-link": '<a href="data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==">d</a>',
    "vbscript-link": '<a href="vbscript:msgbox(1)">v</a>',
    "iframe": '<iframe src="https://evil.test"></iframe>',
    "style": "<style>body{display:none}</style>",
    "style-attr": '<p style="background:url(javascript:alert(1))">s</p>',
    "svg": "<svg><script>alert(1)</script><animate onbegin=alert(1) /></svg>",
    "form": '<form action="https://evil.test"><input name="password"></form>',
    "base": '<base href="https://evil.test/">',
    "meta-refresh": '<meta http-equiv="refresh" content="0;url=https://evil.test">',
    "object": '<object data="https://evil.test/x.swf"></object>',
    "math": "<math><mtext><script>alert(1)</script></mtext></math>",
}

DANGER = re.compile(
    r"<\s*(script|style|iframe|svg|math|form|input|base|meta\s+http-equiv|object|embed)\b"
    r"|\son[a-z]+\s*=|(?:href|src)\s*=\s*[\"']?\s*(?:javascript|vbscript|data):"
    r"|style\s*=",
    re.IGNORECASE,
)


def assert_inert(html: str) -> None:
    """For sanitiser output: no dangerous construct even as text-looking markup."""
    found = DANGER.search(html)
    assert found is None, html[max(0, found.start() - 80) : found.end() + 80]


FORBIDDEN_TAGS = {"script", "style", "iframe", "svg", "math", "object", "embed", "base", "frame"}
OUR_FORM_ACTIONS = re.compile(r"^/(login|logout|stories/\d+/comments|admin/comments/\d+/\w+)")


class PageChecker(HTMLParser):
    """Walks a page as a browser would parse it and collects anything that could run."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.problems: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if tag in FORBIDDEN_TAGS:
            self.problems.append(f"<{tag}>")
        if tag == "meta" and "http-equiv" in values:
            self.problems.append("<meta http-equiv>")
        if tag == "form" and not OUR_FORM_ACTIONS.match(values.get("action", "")):
            self.problems.append(f"<form action={values.get('action')!r}>")
        for name, value in values.items():
            if name.startswith("on") or name == "style":
                self.problems.append(f"<{tag} {name}=...>")
            if name in ("href", "src", "action", "formaction"):
                scheme = "".join(value.split()).lower().split(":", 1)
                if len(scheme) == 2 and scheme[0] not in ("http", "https"):
                    self.problems.append(f"<{tag} {name}={value!r}>")


def assert_page_inert(html: str) -> None:
    checker = PageChecker()
    checker.feed(html)
    assert checker.problems == []


@pytest.mark.parametrize("name", list(PAYLOADS))
def test_comment_html_removes(name: str) -> None:
    assert_inert(comment_html(f"<p>before {PAYLOADS[name]} after</p>"))


@pytest.mark.parametrize("name", list(PAYLOADS))
def test_story_html_removes(name: str) -> None:
    assert_inert(story_html(f"<p>before {PAYLOADS[name]} after</p>"))


def test_links_keep_only_http_and_get_rel() -> None:
    html = comment_html('<a href="https://ok.test/x">ok</a><a href="ftp://x.test">ftp</a>')
    assert '<a href="https://ok.test/x" rel="nofollow noopener ugc">ok</a>' in html
    assert "ftp://" not in html


def test_plain_text_keeps_only_text() -> None:
    assert plain_text("<b>Bold</b> <script>alert(1)</script>&amp; more") == "Bold & more"


ALL = " ".join(PAYLOADS.values())


async def seed_hostile_thread(instance: Instance) -> Story:
    """A local story, a hostile remote commenter, and a hostile remote post on /network."""
    ctx = instance.ctx
    now = datetime.now(UTC)
    async with ctx.sessions.begin() as session:
        author = await create_account(session, ctx, "amina", "a-good-password", role=Role.AUTHOR)
        story = await create_story(
            session,
            ctx,
            author,
            StoryDraft(title="Hostile guests", body_markdown="Text.", summary="S."),
        )
        evil = Actor(
            uri="https://evil.test/users/eve",
            local=False,
            type="Person",
            username='eve"><script>alert(1)</script>',
            domain="evil.test",
            display_name=f'Eve {PAYLOADS["script"]}"><img src=x onerror=alert(1)>',
            summary=comment_html(ALL),
            url="javascript:alert(1)",
            inbox_url="https://evil.test/inbox",
            created_at=now,
        )
        session.add(evil)
        await session.flush()
        session.add(
            Comment(
                uri="https://evil.test/notes/1",
                local=False,
                story_id=story.id,
                in_reply_to=story.uri or "",
                author_id=evil.id,
                url="javascript:alert(2)",
                content_html=comment_html(ALL),
                state=CommentState.VISIBLE,
                published_at=now,
            )
        )
        fields = post_fields(
            {
                "id": "https://evil.test/posts/1",
                "type": "Article",
                "name": f"Title {PAYLOADS['script']}",
                "summary": f"Summary {ALL}",
                "content": ALL,
                "url": "javascript:alert(3)",
                "to": ["https://www.w3.org/ns/activitystreams#Public"],
            }
        )
        session.add(Story(local=False, author_id=evil.id, **fields))
        return story


async def test_no_page_title_meta_tag_or_json_lets_anything_through(instance: Instance) -> None:
    story = await seed_hostile_thread(instance)
    async with instance.ctx.sessions.begin() as session:
        await create_account(session, instance.ctx, "mod", "a-good-password", role=Role.MODERATOR)
    await sign_in(instance, "mod", "a-good-password")
    pages = ["/", f"/stories/{story.id}", "/network", "/users/amina", "/admin/comments"]
    async with instance.ctx.sessions() as session:
        from sqlalchemy import select

        remote = (await session.execute(select(Story).where(Story.local.is_(False)))).scalar_one()
    pages.append(f"/network/{remote.id}")
    for path in pages:
        page = await instance.client.get(path)
        assert page.status_code == 200, path
        assert_page_inert(page.text)
        title = re.search(r"<title>(.*?)</title>", page.text, re.S)
        assert title is not None and "<" not in title.group(1), path
        for meta in re.findall(r"<meta [^>]*>", page.text):
            assert_page_inert(meta)
    comment_page = await instance.client.get(f"/stories/{story.id}")
    assert "Eve &lt;script&gt;" in comment_page.text or "Eve alert" in comment_page.text
    assert 'href="javascript:' not in comment_page.text
    accept = {"Accept": "application/activity+json"}
    for path in [
        f"/stories/{story.id}",
        f"/stories/{story.id}/context?page=1",
        "/users/amina/outbox?page=1",
    ]:
        document = await instance.client.get(path, headers=accept)
        assert document.status_code == 200, path
        assert_inert(document.text)


async def test_remote_post_on_network_is_sanitised(instance: Instance) -> None:
    await seed_hostile_thread(instance)
    page = await instance.client.get("/network")
    assert "Title" in page.text
    assert_page_inert(page.text)
