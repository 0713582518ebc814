"""A Mastodon-shaped remote follows our author and our Organization, and sees a story published.

The remote (tests/support/mastodon.py) checks everything we send it the way Mastodon does:
signature coverage, Digest, Date window, keyId resolution and the key itself.
"""

from __future__ import annotations

from html.parser import HTMLParser

import nh3
import pytest
from sqlalchemy import select

from fediverse_stories.db.models import InboxActivity, Role
from fediverse_stories.services import publishing
from fediverse_stories.services.accounts import create_account
from fediverse_stories.services.stories import StoryDraft
from tests.support.instances import Instance, InstanceFactory
from tests.support.mastodon import (
    ACTIVITY_JSON,
    ALICE,
    HEADER_ORDERS,
    MASTODON_ATTRIBUTES,
    MASTODON_TAGS,
    MastodonRemote,
)

AMINA = "http://a.test/users/amina"
ORG = "http://a.test/users/stories"


async def add_author(instance: Instance, name: str) -> None:
    async with instance.ctx.sessions.begin() as session:
        await create_account(session, instance.ctx, name, "a-good-password", role=Role.AUTHOR)


def mastodon_text(html: str) -> str:
    """What Mastodon keeps of remote HTML, as text."""
    cleaned = nh3.clean(html, tags=MASTODON_TAGS, attributes=MASTODON_ATTRIBUTES)
    return nh3.clean(cleaned, tags=set()).strip()


class MetaTags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.meta: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "meta":
            found = dict(attrs)
            name = found.get("property") or found.get("name")
            if name and found.get("content") is not None:
                self.meta.setdefault(name, found["content"] or "")


def meta_of(html: str) -> dict[str, str]:
    parser = MetaTags()
    parser.feed(html)
    return parser.meta


@pytest.mark.parametrize("order", list(HEADER_ORDERS), ids=list(HEADER_ORDERS))
async def test_mastodon_follow_is_accepted_with_the_follow_embedded(
    instances: InstanceFactory, order: str
) -> None:
    a = await instances.start("http://a.test")
    await add_author(a, "amina")
    alice = MastodonRemote.register(instances)

    follow, response = await alice.follow(AMINA, covered=HEADER_ORDERS[order])
    assert response.status_code == 202, response.text
    await a.run_worker()

    accepts = alice.activities("Accept")
    assert len(accepts) == 1, (alice.received, alice.refusals)
    accept = accepts[0]
    assert accept["actor"] == AMINA
    assert isinstance(accept["object"], dict)
    assert accept["object"]["id"] == follow["id"]
    assert accept["object"]["type"] == "Follow"
    assert accept["object"]["actor"] == ALICE
    assert accept["object"]["object"] == AMINA
    assert alice.refusals == []
    # Our signature, as received, covered what Mastodon requires.
    (received,) = [r for r in alice.received if r.activity is accept]
    assert {"(request-target)", "host", "date", "digest"} <= set(received.covered)
    assert received.headers["digest"].startswith("SHA-256=")


async def test_mastodon_sees_announce_and_article_of_a_published_story(
    instances: InstanceFactory,
) -> None:
    a = await instances.start("http://a.test")
    await add_author(a, "amina")
    alice = MastodonRemote.register(instances)

    for target in (ORG, AMINA):
        _, response = await alice.follow(target)
        assert response.status_code == 202, response.text
    await a.run_worker()
    assert len(alice.activities("Accept")) == 2, alice.refusals

    story = await publishing.publish(
        a.ctx,
        "amina",
        StoryDraft(
            title="Listening first",
            body_markdown="We *listened* before we built anything.",
            summary="How the partnership began.",
            tags=["partnership"],
        ),
    )
    await a.run_worker()
    assert alice.refusals == []

    announces = alice.activities("Announce")
    assert len(announces) == 1
    assert announces[0]["actor"] == ORG
    assert announces[0]["object"] == story.uri

    creates = alice.activities("Create")
    assert len(creates) == 1
    create = creates[0]
    assert create["actor"] == AMINA
    article = create["object"]
    assert article["type"] == "Article"
    assert article["id"] == story.uri
    assert article["name"] == "Listening first"
    assert article["attributedTo"] == AMINA
    assert mastodon_text(article["summary"]) != ""
    assert "partnership began" in mastodon_text(article["summary"])

    # Mastodon fetches an announced object from its origin: the Article, id == URL.
    fetched = await instances.http.get(story.uri, headers={"Accept": ACTIVITY_JSON})
    assert fetched.status_code == 200
    assert fetched.headers["content-type"].startswith(ACTIVITY_JSON)
    assert fetched.json()["id"] == story.uri
    assert fetched.json()["type"] == "Article"

    # The link Mastodon shows answers HTML with the preview card's fields.
    page = await a.client.get(article["url"], headers={"Accept": "text/html"})
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    meta = meta_of(page.text)
    assert meta["og:title"] == article["name"]
    assert meta["fediverse:creator"] == "amina@a.test"

    # The creator handle leads back to the same actor.
    finger = await a.client.get(
        "/.well-known/webfinger",
        params={"resource": "acct:amina@a.test"},
        headers={"Accept": "application/json"},
    )
    assert finger.status_code == 200
    selves = [
        link["href"]
        for link in finger.json()["links"]
        if link.get("rel") == "self" and link.get("type") == ACTIVITY_JSON
    ]
    assert selves == [article["attributedTo"]]

    assert alice.refusals == []
    assert all(
        {"(request-target)", "host", "date", "digest"} <= set(r.covered) for r in alice.received
    )


async def test_mastodon_reply_reaches_the_shared_inbox(instances: InstanceFactory) -> None:
    a = await instances.start("http://a.test")
    await add_author(a, "amina")
    alice = MastodonRemote.register(instances)
    story = await publishing.publish(
        a.ctx, "amina", StoryDraft(title="A story", body_markdown="Body.", summary="S.")
    )
    for covered in HEADER_ORDERS.values():
        _, response = await alice.reply(
            story.uri or "", "http://a.test/inbox", mention=AMINA, covered=covered
        )
        assert response.status_code == 202, response.text
    await a.run_worker()
    assert alice.refusals == []
    async with a.ctx.sessions() as session:
        outcomes = list(
            (await session.execute(select(InboxActivity.type, InboxActivity.outcome))).all()
        )
    # Both stored once and processed by the worker, with a recorded outcome.
    assert [kind for kind, _ in outcomes] == ["Create", "Create"]
    assert all(outcome for _, outcome in outcomes)


def test_a_story_without_a_summary_sends_an_excerpt_for_mastodon_to_show() -> None:
    from fediverse_stories.convert import excerpt

    body = "<p>" + "Partners set the agenda. " * 30 + "</p>"
    text = excerpt(body)
    assert text.startswith("Partners set the agenda.")
    assert text.endswith("…") and len(text) <= 281
    assert excerpt("<p>Short <b>story</b>.</p>") == "Short story."
