"""A member's notifications: what Mastodon and other members did to their stories and comments.

amina publishes on a.test; alice (a Mastodon-shaped remote, every request really signed) follows,
replies, mentions and likes; bob on b.test boosts; carol on a.test comments. amina reads it all
on /notifications, signed in through the real login form.
"""

from __future__ import annotations

import re

from sqlalchemy import select

from fediverse_stories.db.models import Comment, Follow, Role
from fediverse_stories.services import comments, follows, publishing
from fediverse_stories.services.accounts import create_account
from fediverse_stories.services.stories import StoryDraft
from tests.federation.test_interactions import send
from tests.federation.test_threads import AMINA, add_user, local_comment
from tests.support.instances import Instance, InstanceFactory, csrf_from, settle, sign_in
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


async def test_a_member_answers_follow_requests_from_their_notifications(
    instances: InstanceFactory,
) -> None:
    a = await instances.start("http://a.test")
    b = await instances.start("http://b.test")
    async with a.ctx.sessions.begin() as session:
        await create_account(session, a.ctx, "mo", "a-good-password", manual_approval=True)
    await add_user(a, "carol")
    await add_user(b, "bob")
    alice = MastodonRemote.register(instances)
    await alice.follow("http://a.test/users/mo")
    await settle(a, b)
    await follows.follow(b.ctx, "bob", "mo@a.test")
    await settle(a, b)

    assert (await sign_in(a, "mo", "a-good-password")).status_code == 303
    page = (await a.client.get("/notifications")).text
    assert [text for _, text in entries(page)] == [
        "bob @bob@b.test asked to follow you",
        "Alice @alice@mastodon.test asked to follow you",
    ]
    approve, reject = request_forms(page)

    # Only the followed member may answer, and only with a valid CSRF token.
    assert (await a.client.post(approve[1], data={"csrf_token": "forged"})).status_code == 403
    assert (await sign_in(a, "carol", "a-good-password")).status_code == 303
    carol_token = csrf_from((await a.client.get("/notifications")).text)
    refused = await a.client.post(approve[1], data={"csrf_token": carol_token})
    assert refused.status_code == 404
    assert (await sign_in(a, "mo", "a-good-password")).status_code == 303
    token = csrf_from((await a.client.get("/notifications")).text)

    answered = await a.client.post(approve[1], data={"csrf_token": token})  # Alice's request
    assert (answered.status_code, answered.headers["location"]) == (303, "/notifications")
    again = await a.client.post(approve[1], data={"csrf_token": token})
    assert again.status_code == 409
    assert (await a.client.post(reject[0], data={"csrf_token": token})).status_code == 303
    await settle(a, b)

    # Alice's server got an Accept of her Follow; bob's instance a Reject, and forgot the follow.
    assert [x["object"]["actor"] for x in alice.activities("Accept")] == [ALICE]
    async with b.ctx.sessions() as session:
        assert list((await session.execute(select(Follow))).scalars()) == []
    page = (await a.client.get("/notifications")).text
    assert [text for _, text in entries(page)] == ["Alice @alice@mastodon.test followed you"]
    assert "Approve" not in page


def request_forms(page: str) -> tuple[list[str], list[str]]:
    """The approve and the reject form actions, in the page's order."""
    actions = re.findall(r'action="(/notifications/follow-requests/\d+/(?:approve|reject))"', page)
    return (
        [action for action in actions if action.endswith("/approve")],
        [action for action in actions if action.endswith("/reject")],
    )
