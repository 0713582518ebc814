"""One thread everywhere: replies from three instances and Mastodon, held, refused and removed.

A story lives on a.test; b.test and c.test follow its author (so they carry the story), and a
Mastodon-shaped remote follows too. Every request is really signed and verified.
"""

from __future__ import annotations

import re
from datetime import timedelta

from sqlalchemy import select

from fediverse_stories.db.models import (
    Comment,
    CommentPolicy,
    InboxActivity,
    Role,
    Story,
)
from fediverse_stories.services import comments, follows, publishing
from fediverse_stories.services.accounts import create_account
from fediverse_stories.services.stories import StoryDraft
from tests.support.instances import Instance, InstanceFactory, settle
from tests.support.mastodon import ALICE, MastodonRemote

AMINA = "http://a.test/users/amina"


async def add_user(instance: Instance, name: str, role: Role = Role.MEMBER) -> None:
    async with instance.ctx.sessions.begin() as session:
        await create_account(session, instance.ctx, name, "a-good-password", role=role)


async def story_on(instance: Instance, uri: str) -> Story:
    async with instance.ctx.sessions() as session:
        story = (await session.execute(select(Story).where(Story.uri == uri))).scalar_one()
        return story


async def thread_texts(instance: Instance, uri: str) -> list[str]:
    """The comment texts as the story page shows them, in order."""
    story = await story_on(instance, uri)
    path = f"/stories/{story.id}" if story.local else f"/network/{story.id}"
    page = await instance.client.get(path)
    assert page.status_code == 200, page.text
    section = page.text[page.text.index('id="comments"') :]
    return re.findall(r'<div class="body"><p>(.*?)</p></div>', section)


async def start_network(
    instances: InstanceFactory, policy: CommentPolicy = CommentPolicy.OPEN
) -> tuple[Instance, Instance, Instance, MastodonRemote, str]:
    a = await instances.start("http://a.test")
    b = await instances.start("http://b.test")
    c = await instances.start("http://c.test")
    await add_user(a, "amina", Role.AUTHOR)
    await add_user(b, "bob")
    await add_user(c, "carol")
    await follows.follow(b.ctx, "bob", "amina@a.test")
    await follows.follow(c.ctx, "carol", "amina@a.test")
    alice = MastodonRemote.register(instances)
    await alice.follow(AMINA)
    await settle(a, b, c)
    story = await publishing.publish(
        a.ctx,
        "amina",
        StoryDraft(
            title="Who sets the agenda?",
            body_markdown="Partners did.",
            summary="A partnership story.",
            comment_policy=policy,
        ),
    )
    await settle(a, b, c)
    assert story.uri is not None
    return a, b, c, alice, story.uri


async def local_comment(
    instance: Instance, user: str, story_uri: str, text: str, parent: str | None = None
) -> str:
    story = await story_on(instance, story_uri)
    parent_id = None
    if parent is not None:
        async with instance.ctx.sessions() as session:
            parent_id = (
                await session.execute(select(Comment.id).where(Comment.uri == parent))
            ).scalar_one()
    comment = await comments.post_local(instance.ctx, user, story.id, text, parent_id=parent_id)
    assert comment.uri is not None
    return comment.uri


async def test_every_instance_shows_the_same_thread_and_mastodon_sees_no_boosts(
    instances: InstanceFactory,
) -> None:
    a, b, c, alice, story_uri = await start_network(instances)

    bob_says = await local_comment(b, "bob", story_uri, "From B: we did the same.")
    await settle(a, b, c)
    _, response = await alice.reply(story_uri, "http://a.test/inbox")
    assert response.status_code == 202
    await settle(a, b, c)
    carol_says = await local_comment(c, "carol", story_uri, "From C: to Bob, how?", parent=bob_says)
    await settle(a, b, c)
    await local_comment(a, "amina", story_uri, "From A: thank you all.", parent=carol_says)
    await settle(a, b, c)

    on_a = await thread_texts(a, story_uri)
    assert len(on_a) == 4, on_a
    assert on_a[0] == "From B: we did the same."
    assert on_a[1] == "From C: to Bob, how?"  # threaded under Bob's comment
    assert on_a[2] == "From A: thank you all."
    assert await thread_texts(b, story_uri) == on_a
    assert await thread_texts(c, story_uri) == on_a

    # A's context collection lists every comment of the thread, in published order.
    story_a = await story_on(a, story_uri)
    context = await a.client.get(
        f"/stories/{story_a.id}/context?page=1", headers={"Accept": "application/activity+json"}
    )
    assert context.status_code == 200
    items = context.json()["orderedItems"]
    assert len(items) == 4 and bob_says in items and carol_says in items
    replies = await a.client.get(
        f"/stories/{story_a.id}/replies?page=1", headers={"Accept": "application/activity+json"}
    )
    assert len(replies.json()["orderedItems"]) == 2  # Bob's and Alice's answer the story itself

    # Mastodon got the story, and never an Announce of any comment.
    assert alice.activities("Announce") == []
    assert alice.refusals == []


async def test_an_answer_mentions_whom_it_answers_so_mastodon_notifies_them(
    instances: InstanceFactory,
) -> None:
    a, b, c, alice, story_uri = await start_network(instances)
    alice_create, _ = await alice.reply(story_uri, "http://a.test/inbox")
    await settle(a, b, c)
    alice_note = alice_create["object"]["id"]

    # Amina answers Alice's comment on her story: Mastodon notifies only tagged Mentions.
    await local_comment(a, "amina", story_uri, "Thank you, Alice.", parent=alice_note)
    await settle(a, b, c)
    answers = [
        create["object"]
        for create in alice.activities("Create")
        if create["object"].get("inReplyTo") == alice_note
    ]
    assert len(answers) == 1, alice.activities("Create")
    answer = answers[0]
    assert answer["tag"] == [{"type": "Mention", "href": ALICE, "name": "@alice@mastodon.test"}]
    assert ALICE in answer["cc"]
    assert answer["to"] == ["https://www.w3.org/ns/activitystreams#Public"]

    # Bob's comment on the story mentions the story's author; the Note as served says the same.
    bob_says = await local_comment(b, "bob", story_uri, "From B: a question for Amina.")
    await settle(a, b, c)
    served = await b.client.get(bob_says, headers={"Accept": "application/activity+json"})
    assert served.json()["tag"] == [{"type": "Mention", "href": AMINA, "name": "@amina@a.test"}]
    assert AMINA in served.json()["cc"]

    # An author answering the story itself mentions nobody.
    own = await local_comment(a, "amina", story_uri, "A note from the author.")
    served = await a.client.get(own, headers={"Accept": "application/activity+json"})
    assert "tag" not in served.json()
    assert served.json()["cc"] == [f"{AMINA}/followers"]


async def test_handles_in_a_comment_become_mentions_that_reach_the_named(
    instances: InstanceFactory,
) -> None:
    a, b, c, alice, story_uri = await start_network(instances)
    text = (
        "Thanks! @alice@mastodon.test and @Bob@b.test, see this.\n"
        "Not @nobody@nowhere.test, nor mail to x@example.org."
    )
    carol_says = await local_comment(c, "carol", story_uri, text)
    await settle(a, b, c)

    # Alice's server got Carol's Create, tagging her: Mastodon notifies her.
    creates = [x for x in alice.activities("Create") if x["object"]["id"] == carol_says]
    assert creates, alice.activities("Create")
    note = creates[0]["object"]
    mentions = {(t["href"], t["name"]) for t in note["tag"]}
    assert mentions == {
        (AMINA, "@amina@a.test"),  # what the comment answers: the story
        (ALICE, "@alice@mastodon.test"),
        ("http://b.test/users/bob", "@bob@b.test"),
    }
    assert {AMINA, ALICE, "http://b.test/users/bob"} <= set(note["cc"])
    # Resolved handles are links (Mastodon's h-card markup); the rest stays text.
    assert (
        '<span class="h-card" translate="no"><a href="http://mastodon.test/@alice" '
        'class="u-url mention">@<span>alice</span></a></span>'
    ) in note["content"]
    assert "Not @nobody@nowhere.test, nor mail to x@example.org." in note["content"]
    # Each instance's story page shows the links.
    for instance in (a, b, c):
        (shown,) = await thread_texts(instance, story_uri)
        assert '<a href="http://mastodon.test/@alice"' in shown, shown
    # The Note as served later says the same.
    served = await c.client.get(carol_says, headers={"Accept": "application/activity+json"})
    assert {(t["href"], t["name"]) for t in served.json()["tag"]} == mentions
    assert served.json()["content"] == note["content"]

    # A bare @name is a local account; the commenter's own name is a link but not a Mention.
    own = await local_comment(a, "amina", story_uri, "Over to @admin, and @amina signs off.")
    served = await a.client.get(own, headers={"Accept": "application/activity+json"})
    assert served.json()["tag"] == [
        {"type": "Mention", "href": "http://a.test/users/admin", "name": "@admin@a.test"}
    ]
    assert f'<a href="{AMINA}" class="u-url mention">' in served.json()["content"]


async def test_a_comment_removed_on_the_home_instance_disappears_everywhere(
    instances: InstanceFactory,
) -> None:
    a, b, c, _alice, story_uri = await start_network(instances)
    bob_says = await local_comment(b, "bob", story_uri, "Spam from B.")
    await local_comment(c, "carol", story_uri, "A fair point from C.")
    await settle(a, b, c)
    assert len(await thread_texts(c, story_uri)) == 2

    await comments.remove(a.ctx, bob_says)
    await settle(a, b, c)
    for instance in (a, b, c):
        assert await thread_texts(instance, story_uri) == ["A fair point from C."]


async def test_closed_story_shows_no_reply_and_the_replier_gets_a_reject(
    instances: InstanceFactory,
) -> None:
    a, b, c, alice, story_uri = await start_network(instances, CommentPolicy.CLOSED)
    create, _ = await alice.reply(story_uri, "http://a.test/inbox")
    await settle(a, b, c)
    for instance in (a, b, c):
        assert await thread_texts(instance, story_uri) == []
    rejects = alice.activities("Reject")
    assert [r["object"] for r in rejects] == [create["object"]["id"]]


async def test_moderated_story_shows_a_reply_only_once_approved_everywhere(
    instances: InstanceFactory,
) -> None:
    a, b, c, alice, story_uri = await start_network(instances, CommentPolicy.MODERATED)
    create, _ = await alice.reply(story_uri, "http://a.test/inbox")
    await settle(a, b, c)
    for instance in (a, b, c):
        assert await thread_texts(instance, story_uri) == []
    held = await comments.pending(a.ctx)
    assert [comment.uri for comment, _ in held] == [create["object"]["id"]]

    await comments.approve(a.ctx, create["object"]["id"])
    await settle(a, b, c)
    for instance in (a, b, c):
        assert len(await thread_texts(instance, story_uri)) == 1
    assert [
        r["object"] for r in alice.activities("Accept") if r["object"] == create["object"]["id"]
    ]


async def test_a_duplicate_create_makes_one_comment_and_an_early_delete_leaves_nothing(
    instances: InstanceFactory,
) -> None:
    a, b, c, alice, story_uri = await start_network(instances)
    create, first = await alice.reply(story_uri, "http://a.test/inbox")
    again = await alice.post("http://a.test/inbox", create)
    assert first.status_code == again.status_code == 202
    await settle(a, b, c)
    assert len(await thread_texts(a, story_uri)) == 1

    # A reply whose Delete arrives before its Create never appears.
    note = alice.note_create(story_uri)
    delete = {
        "@context": "https://www.w3.org/ns/activitystreams",
        "id": note["object"]["id"] + "#delete",
        "type": "Delete",
        "actor": alice.actor_id if hasattr(alice, "actor_id") else note["actor"],
        "object": note["object"]["id"],
    }
    assert (await alice.post("http://a.test/inbox", delete)).status_code == 202
    await settle(a, b, c)
    assert (await alice.post("http://a.test/inbox", note)).status_code == 202
    await settle(a, b, c)
    assert len(await thread_texts(a, story_uri)) == 1
    async with a.ctx.sessions() as session:
        outcomes = list((await session.execute(select(InboxActivity.outcome))).scalars())
    assert "ignored: already deleted" in outcomes


async def test_comments_close_after_the_configured_days(instances: InstanceFactory) -> None:
    from tests.app.test_queue import Clock

    clock = Clock()
    a = await instances.start(
        "http://a.test", clock=clock, env={"FEDIVERSE_STORIES_COMMENTS_CLOSE_AFTER_DAYS": "7"}
    )
    await add_user(a, "amina", Role.AUTHOR)
    alice = MastodonRemote.register(instances)
    alice.clock = lambda: clock.now.timestamp()  # both sides agree on the (fake) time
    story = await publishing.publish(
        a.ctx, "amina", StoryDraft(title="Old story", body_markdown="Text.", summary="S.")
    )
    clock.now += timedelta(days=8)
    await alice.reply(story.uri or "", "http://a.test/inbox")
    await settle(a)
    assert await thread_texts(a, story.uri or "") == []
    article = await a.client.get(story.uri or "", headers={"Accept": "application/activity+json"})
    assert article.json()["interactionPolicy"]["canReply"] == {}
    assert len(alice.activities("Reject")) == 1


async def test_a_reply_whose_type_is_a_list_becomes_a_comment(instances: InstanceFactory) -> None:
    a = await instances.start("http://a.test")
    await add_user(a, "amina", Role.AUTHOR)
    alice = MastodonRemote.register(instances)
    story = await publishing.publish(
        a.ctx, "amina", StoryDraft(title="Types", body_markdown="Text.", summary="S.")
    )
    create = alice.note_create(story.uri or "", text="Typed twice.")
    create["type"] = ["Create"]
    create["object"]["type"] = ["Note", "Article"]
    assert (await alice.post("http://a.test/inbox", create)).status_code == 202
    await settle(a)
    assert await thread_texts(a, story.uri or "") == ["Typed twice."]
