"""Seeding benchmark 3's instance: 100,000 published stories and one 20-comment thread.

Stories go in by bulk inserts (SQLAlchemy core, a synchronous engine, batches) but carry every
row publishing writes: the story, its tags, the author's Create (the Article inside, as
`convert` builds it) and the Organization's Announce. Bodies are Markdown rendered by the app's
own renderer, a few KB of HTML each. The thread is made by the app's comment services, so its
rows are exactly what a real reply or member comment leaves.
"""

from __future__ import annotations

import asyncio
import functools
import json
import random
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

from sqlalchemy import Connection, create_engine, insert, select

from activitypub.vocab import AS_CONTEXT, PUBLIC
from fediverse_stories import convert
from fediverse_stories.db.models import (
    Activity,
    Actor,
    Comment,
    CommentPolicy,
    Story,
    StoryTag,
    Visibility,
)
from fediverse_stories.markdown import render_markdown
from fediverse_stories.sanitize import text_for_search

from .common import Instance, remote_actor_row

BATCH = 5000
BODY_POOL = 64  # distinct bodies, rendered once each, shared round-robin by the stories
FIRST_PUBLISHED = datetime(2021, 1, 4, 8, 0, tzinfo=UTC)
STEP = timedelta(minutes=23)

SENTENCES = [
    "The water committee met in the school yard because the hall roof had fallen in.",
    "Nobody expected the women who kept the accounts to become the ones everyone trusted.",
    "When the ledger was read aloud at each meeting, arrears fell within three months.",
    "The district office sent forms in a language that half the village could not read.",
    "We walked four hours to the clinic and found the refrigerator had been off for a week.",
    "Prices at the market doubled after the bridge washed out in the second rains.",
    "Teachers were paid late again, and again the older girls stayed home to help.",
    "A cooperative of eleven farmers bought one solar pump and shared it by rota.",
    "The radio programme on land rights drew more calls than any football broadcast.",
    "Young people told us they wanted training, not workshops with a free lunch.",
    "Our field notes from that season are mostly about waiting: for permits, rain, fuel.",
    "The midwife kept a notebook of every birth since 1998, in pencil, in a tin box.",
    "Mobile money changed who held savings in the household, though not always for the better.",
    "The survey said forty percent; the headman said everyone; the truth was somewhere else.",
    "What worked was boring: a fixed meeting day, minutes, and a phone tree for absentees.",
    "Donors asked for results in twelve months for a problem that took a generation to make.",
    "A borehole without a caretaker is a monument, not a water point.",
    "The seed bank lent out sorghum in March and was repaid, with interest, in grain.",
    "Every map we were given showed a road that had not existed for ten years.",
    "She said the hardest part of running the clinic was not medicine but paperwork.",
]
HEADINGS = ["What we found", "Why it matters", "The numbers", "What changed", "Next season"]
SUBJECTS = [
    "Water committees",
    "Seed banks",
    "Village savings groups",
    "Rural clinics",
    "Girls' schooling",
    "Land titles",
    "Solar pumps",
    "Market roads",
    "Community radio",
    "Midwives",
]
PLACES = ["Kasese", "Gulu", "Mopti", "Tamale", "Kisumu", "Mzuzu", "Tete", "Kayes", "Lira"]
ANGLES = ["a year on", "in the dry season", "after the floods", "and the ledger", "revisited"]
TAGS = [
    "water",
    "health",
    "education",
    "agriculture",
    "microfinance",
    "gender",
    "climate",
    "governance",
    "fieldnotes",
    "evaluation",
    "radio",
    "landrights",
]


def markdown_body(rng: random.Random) -> str:
    """About 2.5 KB of Markdown: paragraphs under a few headings, one list, one quote."""
    parts = []
    for heading in rng.sample(HEADINGS, 3):
        parts.append(f"## {heading}")
        for _ in range(2):
            parts.append(" ".join(rng.sample(SENTENCES, 4)))
    parts.insert(3, "\n".join(f"- {s}" for s in rng.sample(SENTENCES, 3)))
    parts.insert(6, "> " + rng.choice(SENTENCES))
    return "\n\n".join(parts)


def body_pool(rng: random.Random) -> list[tuple[str, str]]:
    """(markdown, html) pairs, each rendered by the app's own Markdown pipeline."""
    out = []
    for _ in range(BODY_POOL):
        source = markdown_body(rng)
        out.append((source, render_markdown(source)))
    return out


def title(rng: random.Random, n: int) -> str:
    """A plausible, unique title (its number at the end: the benchmark finds its story by it)."""
    return f"{rng.choice(SUBJECTS)} in {rng.choice(PLACES)}, {rng.choice(ANGLES)} ({n})"


@functools.cache
def _words(content_html: str) -> str:
    """What `create_story` stores for search, once per distinct body (there are few)."""
    return text_for_search(content_html)


def one_story(
    n: int, rng: random.Random, bodies: list[tuple[str, str]], author: Any, base_url: str
) -> SimpleNamespace:
    """Story number n as the attributes `convert` and the row need (not an ORM object: fast)."""
    source, content = bodies[n % len(bodies)]
    return SimpleNamespace(
        id=n,
        uri=f"{base_url}/stories/{n}",
        local=True,
        author_id=author.id,
        author=author,
        title=title(rng, n),
        summary=" ".join(rng.sample(SENTENCES, 2)),
        source_markdown=source,
        content_html=content,
        search_text=_words(content),
        language="en",
        visibility=Visibility.PUBLIC,
        comment_policy=CommentPolicy.OPEN,
        sensitive=False,
        content_warning="",
        published_at=FIRST_PUBLISHED + STEP * n,
        updated_at=None,
        deleted_at=None,
        object_type="Article",
        url=None,
        like_count=0,
        share_count=0,
        tags=[SimpleNamespace(name=t) for t in sorted(rng.sample(TAGS, rng.randint(1, 4)))],
    )


STORY_COLUMNS = [c.key for c in Story.__table__.columns]


def story_row(story: SimpleNamespace) -> dict[str, Any]:
    """The `stories` row of a story made by `one_story`."""
    return {key: getattr(story, key) for key in STORY_COLUMNS}


def create_row(ctx: Any, story: SimpleNamespace) -> dict[str, Any]:
    """The author's Create, stored as `publishing.publish` stores it."""
    document = convert.with_context(convert.story_to_create(ctx, story), convert.OBJECT_CONTEXT)
    return {
        "uri": document["id"],
        "actor_id": story.author_id,
        "type": "Create",
        "object_uri": story.uri,
        "raw": json.dumps(document),
        "public": True,
        "created_at": story.published_at,
    }


def announce_row(ctx: Any, org: Any, story: SimpleNamespace) -> dict[str, Any]:
    """The Organization's Announce of the story, as `publishing._fan_out` stores it."""
    document = {
        "@context": AS_CONTEXT,
        "id": ctx.settings.url(f"/activities/{uuid.UUID(int=story.id)}"),
        "type": "Announce",
        "actor": org.uri,
        "object": story.uri,
        "to": [PUBLIC],
        "cc": [convert.followers_url(org)],
        "published": convert.iso8601(story.published_at),
    }
    return {
        "uri": document["id"],
        "actor_id": org.id,
        "type": "Announce",
        "object_uri": story.uri,
        "raw": json.dumps(document),
        "public": True,
        "created_at": story.published_at,
    }


def batches(count: int) -> Iterator[range]:
    for start in range(1, count + 1, BATCH):
        yield range(start, min(start + BATCH, count + 1))


def _load_actor(conn: Connection, username: str, host: str) -> Any:
    row = conn.execute(
        select(Actor.id, Actor.uri, Actor.followers_url).where(
            Actor.local.is_(True), Actor.username == username, Actor.domain == host
        )
    ).one()
    return SimpleNamespace(id=row.id, uri=row.uri, followers_url=row.followers_url)


def seed_stories(instance: Instance, count: int, author: str = "writer") -> None:
    """`count` published stories by `author`, ids 1..count, oldest first."""
    settings = instance.settings()
    ctx = SimpleNamespace(settings=settings, clock=lambda: datetime.now(UTC))
    rng = random.Random(3)
    bodies = body_pool(rng)
    engine = create_engine(f"sqlite:///{instance.db_path}")
    try:
        with engine.connect() as conn:
            # A throwaway database: no journal while loading (the app turns WAL back on).
            conn.exec_driver_sql("PRAGMA journal_mode=OFF")
            conn.exec_driver_sql("PRAGMA synchronous=OFF")
            writer = _load_actor(conn, author, settings.host)
            org = _load_actor(conn, settings.org_handle, settings.host)
            for ids in batches(count):
                stories = [one_story(n, rng, bodies, writer, settings.base_url) for n in ids]
                conn.execute(insert(Story), [story_row(s) for s in stories])
                conn.execute(
                    insert(StoryTag),
                    [{"story_id": s.id, "name": t.name} for s in stories for t in s.tags],
                )
                conn.execute(
                    insert(Activity),
                    [create_row(ctx, s) for s in stories]
                    + [announce_row(ctx, org, s) for s in stories],
                )
                conn.commit()
            conn.exec_driver_sql("ANALYZE")
            conn.commit()
    finally:
        engine.dispose()


# --------------------------------------------------------------------------------------------
# The thread: 20 comments through the app's own services
# --------------------------------------------------------------------------------------------

MEMBERS = ["amina", "tomas", "wanjiru"]
REMOTES = 8
# (who, index of the comment it answers or None): members by name, remote actors by number.
THREAD: list[tuple[str | int, int | None]] = [
    (0, None),
    ("amina", None),
    (1, 0),
    (2, None),
    ("tomas", 2),
    (3, None),
    (0, 5),
    ("wanjiru", None),
    (4, 7),
    (5, None),
    ("amina", 9),
    (6, None),
    (7, 11),
    ("tomas", None),
    (1, 13),
    (2, 14),
    ("wanjiru", None),
    (3, None),
    (4, 17),
    (5, None),
]
REPLIES = [
    "This matches what we saw in the northern districts, almost to the month.",
    "Could you share the template you used for the meeting minutes? We would like to try it.",
    "The point about caretakers is the one funders never want to hear. Thank you.",
    "We had the same trouble with forms: translating them ourselves took two weeks.",
    "How did the committee handle members who stopped paying after the first season?",
]


def remote_uri(n: int) -> str:
    # Loopback hosts with nothing listening: even a stray fetch could not leave the machine.
    return f"http://127.0.2.{n + 1}:9/users/reader{n}"


def remote_reader(n: int, now: datetime) -> dict[str, Any]:
    """A cached remote Person, as fetching its actor document would have stored it."""
    uri = remote_uri(n)
    return remote_actor_row(
        uri,
        now,
        display_name=f"Reader {n}",
        summary="<p>Fieldworker, occasional writer.</p>",
        url=uri.replace("/users/", "/@"),
        followers_url=None,
        public_key_pem=None,
    )


def remote_reply(
    n: int, serial: int, in_reply_to: str, writer_uri: str, published: datetime
) -> tuple[str, dict[str, Any]]:
    """A Mastodon-style Create{Note} reply from remote actor n, and its Note."""
    uri = remote_uri(n)
    text = REPLIES[serial % len(REPLIES)]
    note = {
        "id": f"{uri}/statuses/{serial}",
        "type": "Note",
        "attributedTo": uri,
        "inReplyTo": in_reply_to,
        "published": convert.iso8601(published),
        "url": f"{uri.replace('/users/', '/@')}/{serial}",
        "to": [PUBLIC],
        "cc": [f"{uri}/followers", writer_uri],
        "content": f'<p><span class="h-card"><a href="{writer_uri}" class="u-url mention">'
        f"@<span>writer</span></a></span> {text} {text}</p>",
        "tag": [{"type": "Mention", "href": writer_uri, "name": "@writer"}],
    }
    create = {
        "@context": AS_CONTEXT,
        "id": f"{note['id']}/activity",
        "type": "Create",
        "actor": uri,
        "published": note["published"],
        "to": note["to"],
        "cc": note["cc"],
        "object": note,
    }
    return json.dumps(create), note


async def _make_thread(instance: Instance, story_id: int) -> None:
    from fediverse_stories.context import Context
    from fediverse_stories.db.models import Role
    from fediverse_stories.services import comments
    from fediverse_stories.services.accounts import create_account

    clock_now = [FIRST_PUBLISHED + STEP * story_id]
    ctx = Context.build(instance.settings(), clock=lambda: clock_now[0])
    try:
        async with ctx.sessions.begin() as session:
            for name in MEMBERS:
                await create_account(
                    session, ctx, name, "pw-" * 6, role=Role.MEMBER, display_name=name.title()
                )
            await session.execute(
                insert(Actor), [remote_reader(n, clock_now[0]) for n in range(REMOTES)]
            )
        story_uri = instance.settings().url(f"/stories/{story_id}")
        writer_uri = instance.settings().url("/users/writer")
        made: list[Any] = []
        for serial, (who, parent) in enumerate(THREAD):
            clock_now[0] += timedelta(minutes=37)
            parent_comment = made[parent] if parent is not None else None
            if isinstance(who, str):
                text = f"{REPLIES[(serial + 2) % len(REPLIES)]}\n\nFrom our side: {REPLIES[0]}"
                made.append(
                    await comments.post_local(
                        ctx,
                        who,
                        story_id,
                        text,
                        parent_id=parent_comment.id if parent_comment else None,
                    )
                )
                continue
            in_reply_to = parent_comment.uri if parent_comment else story_uri
            raw, note = remote_reply(who, serial, in_reply_to, writer_uri, clock_now[0])
            async with ctx.sessions() as session:
                author = (
                    await session.execute(select(Actor).where(Actor.uri == remote_uri(who)))
                ).scalar_one()
            outcome = await comments.receive(ctx, raw, note, author, signer_uri=author.uri)
            assert outcome.startswith("comment shown"), outcome
            async with ctx.sessions() as session:
                shown = select(Comment).where(Comment.uri == note["id"])
                made.append((await session.execute(shown)).scalar_one())
    finally:
        await ctx.close()


def make_thread(instance: Instance, story_id: int) -> None:
    """20 shown comments on one story: member comments and fediverse replies, some nested."""
    asyncio.run(_make_thread(instance, story_id))
