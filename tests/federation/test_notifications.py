"""A member's notifications: what Mastodon and other members did to their stories and comments.

amina publishes on a.test; alice (a Mastodon-shaped remote, every request really signed) follows,
replies, mentions and likes; bob on b.test boosts; carol on a.test comments. amina reads it all
on /notifications, signed in through the real login form.
"""

from __future__ import annotations

import re

from sqlalchemy import select

from fediverse_stories.db.models import Comment, Role
from fediverse_stories.services import comments, follows, publishing
from fediverse_stories.services.stories import StoryDraft
from tests.federation.test_interactions import send
from tests.federation.test_threads import AMINA, add_user, local_comment
from tests.support.instances import Instance, InstanceFactory, settle, sign_in
from tests.support.mastodon import ALICE, MastodonRemote


def entries(page: str) -> list[tuple[bool, str]]:
    """(marked new, the sentence) for each notification, in the page's order."""
    found = []
    for item in re.findall(r'<li class="notification( new)?"[^>]*>(.*?)</li>', page, re.S):
        new, body = item
        meta = re.search(r'<p class="meta">(.*?)</p>', body, re.S)
        assert meta is not None
        text = re.sub(r"<[^>]+>", "", meta.group(1))
        text = re.sub(r"\s+", " ", text).replace("New ", "", 1).split(" · ")[0].strip()
        found.append((bool(new), text))
    return found


async def comment_uri_by_text(instance: Instance, text: str) -> str:
    async with instance.ctx.sessions() as session:
        comment = (
            await session.execute(select(Comment).where(Comment.content_html.contains(text)))
        ).scalar_one()
        assert comment.uri is not None
        return comment.uri


async def test_a_member_sees_what_happened_to_their_work_once_as_new(
    instances: InstanceFactory,
) -> None:
    a = await instances.start("http://a.test")
    b = await instances.start("http://b.test")
    await add_user(a, "amina", Role.AUTHOR)
    await add_user(a, "carol")
    await add_user(b, "bob")
    alice = MastodonRemote.register(instances)

    assert (await a.client.get("/notifications")).headers["location"] == (
        "/login?next=/notifications"
    )

    # One thing at a time, so that the order they reached a.test is the order written here.
    await alice.follow(AMINA)
    await settle(a, b)
    await follows.follow(b.ctx, "bob", "amina@a.test")
    await settle(a, b)
    story = await publishing.publish(
        a.ctx, "amina", StoryDraft(title="Who sets the agenda?", body_markdown="Partners did.")
    )
    assert story.uri is not None
    await settle(a, b)
    await alice.reply(story.uri, "http://a.test/inbox")  # a comment on her story
    await settle(a, b)
    await local_comment(a, "carol", story.uri, "Carol asks @amina a question.")  # a mention
    alice_comment = await comment_uri_by_text(a, "Thank you.")
    amina_says = await local_comment(a, "amina", story.uri, "Amina answers.", parent=alice_comment)
    await settle(a, b)
    # Alice answers Amina's comment as Mastodon does: tagging her.
    answer = alice.note_create(amina_says, mention=AMINA, text="Alice again.")
    assert (await alice.post("http://a.test/inbox", answer)).status_code == 202
    await settle(a, b)
    like = {
        "@context": "https://www.w3.org/ns/activitystreams",
        "id": f"{ALICE}#likes/1",
        "type": "Like",
        "actor": ALICE,
        "object": story.uri,
    }
    assert (await alice.post("http://a.test/inbox", like)).status_code == 202
    await settle(a, b)
    await send(b, "bob", "Announce", amina_says)  # bob boosts Amina's comment
    await settle(a, b)

    assert (await sign_in(a, "amina", "a-good-password")).status_code == 303
    page = await a.client.get("/notifications")
    assert page.status_code == 200
    assert '<a href="/notifications">Notifications</a>' in page.text
    assert "7 new since your last visit." in page.text
    seen = entries(page.text)
    assert [text for _, text in seen] == [
        "bob @bob@b.test boosted your comment on Who sets the agenda?",
        "Alice @alice@mastodon.test liked your story Who sets the agenda?",
        "Alice @alice@mastodon.test mentioned you on Who sets the agenda?",  # a reply, tagging her
        "carol @carol@a.test mentioned you on Who sets the agenda?",  # on her story, listed once
        "Alice @alice@mastodon.test commented on your story Who sets the agenda?",
        "bob @bob@b.test followed you",
        "Alice @alice@mastodon.test followed you",
    ], seen
    assert all(new for new, _ in seen)
    assert "Alice again." in page.text and "Carol asks" in page.text

    # Seen once: nothing is new on the next visit; a new reply is the only new one after it.
    again = await a.client.get("/notifications")
    assert "Nothing new since your last visit." in again.text
    assert not any(new for new, _ in entries(again.text))
    carol_reply = await local_comment(a, "carol", story.uri, "Carol replies.", parent=amina_says)
    later = entries((await a.client.get("/notifications")).text)
    assert later[0] == (True, "carol @carol@a.test replied to your comment on Who sets the agenda?")
    assert [new for new, _ in later[1:]] == [False] * 7

    # A comment a moderator removes leaves the notifications with it.
    await comments.remove(a.ctx, carol_reply)
    await settle(a, b)
    assert "Carol replies." not in (await a.client.get("/notifications")).text
