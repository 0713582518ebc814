"""Search as a reader uses it: /search over the stories here and from the network, both backends."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from fediverse_stories.db.models import Actor, Role, Story, Visibility
from fediverse_stories.inbound.remote_posts import post_fields
from fediverse_stories.services import publishing
from fediverse_stories.services.accounts import create_account
from fediverse_stories.services.stories import StoryDraft
from tests.support.instances import Instance


async def author(instance: Instance) -> None:
    async with instance.ctx.sessions.begin() as session:
        await create_account(session, instance.ctx, "amina", "a-good-password", role=Role.AUTHOR)


async def publish(instance: Instance, title: str, body: str, **fields: object) -> str:
    draft = StoryDraft(title=title, body_markdown=body, **fields)  # type: ignore[arg-type]
    story = await publishing.publish(instance.ctx, "amina", draft)
    assert story.uri is not None
    return story.uri


async def from_the_network(
    instance: Instance, content: str, hashtags: tuple[str, ...] = ()
) -> None:
    """A remote post as the inbox stores one (through the same wire -> model conversion)."""
    async with instance.ctx.sessions.begin() as session:
        kofi = Actor(
            uri="https://peer.example/users/kofi",
            type="Person",
            username="kofi",
            domain="peer.example",
            created_at=datetime.now(UTC),
        )
        session.add(kofi)
        await session.flush()
        note = {
            "id": "https://peer.example/notes/1",
            "type": "Note",
            "content": content,
            "to": ["https://www.w3.org/ns/activitystreams#Public"],
            "tag": [{"type": "Hashtag", "name": f"#{name}"} for name in hashtags],
        }
        session.add(Story(local=False, author_id=kofi.id, **post_fields(note)))


async def titles(instance: Instance, query: str, page: int = 1) -> list[str]:
    """Each result's title, or for an untitled network post its author's handle."""
    response = await instance.client.get("/search", params={"q": query, "page": page})
    assert response.status_code == 200
    found = []
    for card in re.findall(r'<article class="card">(.*?)</article>', response.text, re.S):
        title = re.search(r"<h2><a [^>]*>(.*?)</a></h2>", card)
        handle = re.search(r'<span class="handle">(.*?)</span>', card)
        assert title is not None or handle is not None, card
        found.append(title.group(1) if title else handle.group(1))  # type: ignore[union-attr]
    return found


async def test_search_finds_every_word_in_public_stories_here_and_from_the_network(
    instance: Instance,
) -> None:
    await author(instance)
    await publish(
        instance,
        "Listening first",
        "We met the **women's cooperative** before we wrote a budget.",
        summary="How a partnership started.",
    )
    budget = await publish(instance, "Budget lines", "Core funding, paid on time.")
    await publish(
        instance,
        "Only for followers",
        "The cooperative again.",
        visibility=Visibility.FOLLOWERS,
    )
    gone = await publish(instance, "Deleted", "A cooperative story we took down.")
    await publishing.delete(instance.ctx, gone)
    await from_the_network(instance, "<p>Our <b>Cooperative</b> answered.</p>")

    assert sorted(await titles(instance, "cooperative")) == [
        "@kofi@peer.example",
        "Listening first",
    ]
    assert await titles(instance, "COOPERATIVE women") == ["Listening first"]  # every word
    assert await titles(instance, "partnership") == ["Listening first"]  # the summary
    assert await titles(instance, "budget lines") == ["Budget lines"]  # the title
    assert await titles(instance, "nothing-like-this") == []

    # An edit changes what is found.
    await publishing.update(instance.ctx, budget, body="Flexible grants, paid on time.")
    assert await titles(instance, "core") == []
    assert await titles(instance, "flexible") == ["Budget lines"]

    # Query syntax of either engine is just text here.
    for query in ['"cooperative', "cooperative OR budget", "-women NEAR(x*", "title:budget", "'"]:
        response = await instance.client.get("/search", params={"q": query})
        assert response.status_code == 200, query
    assert await titles(instance, "cooperative OR budget") == []  # every word must match
    page = await instance.client.get("/search", params={"q": "   "})
    assert page.status_code == 200 and "Stories with" not in page.text


async def test_search_pages_through_many_results(instance: Instance) -> None:
    await author(instance)
    for n in range(25):
        await publish(instance, f"Mango harvest {n}", "The mango season.")
    first = await instance.client.get("/search", params={"q": "mango"})
    assert len(re.findall(r'<article class="card">', first.text)) == 20
    assert 'rel="next"' in first.text and 'rel="prev"' not in first.text
    second = await titles(instance, "mango", page=2)
    assert len(second) == 5
    assert not set(second) & set(await titles(instance, "mango"))
