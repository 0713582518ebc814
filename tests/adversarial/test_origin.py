"""Origin and ownership: nobody speaks for, edits, deletes or undoes what is not theirs.

What the inbox can decide without a fetch is refused there (403, nothing stored); what needs a
fetch or our own rows is accepted (202) and refused by the worker, with the reason recorded and
no domain row changed. Cases in tests/federation/test_inbox_checks.py (actor is not the signer,
Create attributed to someone else, created object on another host) are not repeated.
"""

from __future__ import annotations

import json

from sqlalchemy import select

from fediverse_stories.db.models import Actor, Comment, CommentState, Follow
from tests.adversarial.conftest import (
    SHARED_INBOX,
    Target,
    carried_post,
    know,
    remote_comment,
)
from tests.support.mastodon import MastodonRemote


async def test_403_create_of_an_object_with_an_id_on_our_host(target: Target) -> None:
    note = target.evil.note(target.story.uri, "<p>I am amina's comment.</p>")
    note["id"] = "http://a.test/comments/1"
    response = await target.evil.post(target.client, SHARED_INBOX, target.evil.create(note))
    await target.refused(response, 403, "not on the actor's host")


async def test_403_create_referencing_an_object_on_another_host(target: Target) -> None:
    create = target.evil.activity("Create", "http://victim.test/notes/1")
    response = await target.evil.post(target.client, SHARED_INBOX, create)
    await target.refused(response, 403, "not on the actor's host")


async def test_403_update_of_our_story(target: Target) -> None:
    defaced = {
        "id": target.story.uri,
        "type": "Article",
        "attributedTo": target.evil.actor_id(),
        "name": "Defaced",
        "content": "<p>defaced</p>",
    }
    update = target.evil.activity("Update", defaced)
    response = await target.evil.post(target.client, SHARED_INBOX, update)
    await target.refused(response, 403, "not the actor's")


async def test_403_update_of_an_object_attributed_to_someone_else(target: Target) -> None:
    post = target.evil.note(None, "<p>edited</p>", attributedTo="http://evil.test/users/mallory")
    update = target.evil.activity("Update", post)
    response = await target.evil.post(target.client, SHARED_INBOX, update)
    await target.refused(response, 403, "attributed to someone else")


async def test_update_of_a_neighbours_post_is_refused_by_the_worker(target: Target) -> None:
    # mallory@evil.test's post is on the network page; eve (same host) edits it without naming
    # its author, so only our own rows can tell: the worker refuses, the post stays.
    story = await carried_post(target, "mallory")
    target.pages.append(f"/network/{story.id}")
    await target.mark()
    forged = {"id": story.uri, "type": "Article", "name": "Hijacked", "content": "<p>x</p>"}
    update = target.evil.activity("Update", forged)
    assert (await target.evil.post(target.client, SHARED_INBOX, update)).status_code == 202
    await target.settle()
    assert (await target.outcomes())[-1] == "refused: only the author may update it"
    await target.unchanged(ignore=("inbox_activities", "jobs"))


async def test_update_of_another_actor_is_refused(target: Target) -> None:
    target.evil.add("mallory", name="Mallory")
    await know(target.a, target.evil, "mallory")
    await target.mark()
    hijacked = target.evil.actor("mallory")
    hijacked["name"] = "Mallory (now run by eve)"
    hijacked["publicKey"]["publicKeyPem"] = target.evil.actor("eve")["publicKey"]["publicKeyPem"]
    # Same host: the inbox cannot tell; the worker does.
    same_host = target.evil.activity("Update", hijacked)
    assert (await target.evil.post(target.client, SHARED_INBOX, same_host)).status_code == 202
    await target.settle()
    assert (await target.outcomes())[-1] == "refused: an actor may only update itself"
    # Another host's actor: refused at the door.
    other = dict(hijacked, id="http://mastodon.test/users/alice")
    response = await target.evil.post(
        target.client, SHARED_INBOX, target.evil.activity("Update", other)
    )
    assert response.status_code == 403, response.text
    await target.unchanged(ignore=("inbox_activities", "jobs"))
    async with target.a.ctx.sessions() as session:
        mallory = (
            await session.execute(select(Actor).where(Actor.uri == target.evil.actor_id("mallory")))
        ).scalar_one()
    assert mallory.display_name == "Mallory"


async def test_403_delete_of_someone_elses_comment(target: Target) -> None:
    alice = MastodonRemote.register(target.factory)
    create, response = await alice.reply(target.story.uri or "", SHARED_INBOX)
    assert response.status_code == 202
    await target.settle()
    await target.mark()
    delete = target.evil.activity("Delete", create["object"]["id"])
    response = await target.evil.post(target.client, SHARED_INBOX, delete)
    await target.refused(response, 403, "not the actor's")
    async with target.a.ctx.sessions() as session:
        state = (
            await session.execute(
                select(Comment.state).where(Comment.uri == create["object"]["id"])
            )
        ).scalar_one()
    assert state == CommentState.VISIBLE


async def test_delete_of_a_neighbour_actor_suspends_nobody(target: Target) -> None:
    story = await carried_post(target, "mallory")
    target.pages.append(f"/network/{story.id}")
    await target.mark()
    delete = target.evil.activity("Delete", target.evil.actor_id("mallory"))
    assert (await target.evil.post(target.client, SHARED_INBOX, delete)).status_code == 202
    await target.settle()
    await target.unchanged(ignore=("inbox_activities", "jobs", "tombstones"))
    async with target.a.ctx.sessions() as session:
        mallory = (
            await session.execute(select(Actor).where(Actor.uri == target.evil.actor_id("mallory")))
        ).scalar_one()
        assert not mallory.suspended


async def test_403_undo_of_an_activity_on_another_host(target: Target) -> None:
    undo = target.evil.activity(
        "Undo", {"id": "http://mastodon.test/likes/1", "type": "Like", "actor": "x"}
    )
    response = await target.evil.post(target.client, SHARED_INBOX, undo)
    await target.refused(response, 403, "not the actor's")


async def test_undo_of_a_neighbours_like_keeps_the_count(target: Target) -> None:
    target.evil.add("mallory")
    await know(target.a, target.evil, "mallory")
    like = target.evil.activity("Like", target.story.uri, "mallory")
    assert (
        await target.evil.post(target.client, SHARED_INBOX, like, who="mallory")
    ).status_code == 202
    await target.settle()
    assert (await target.story_row()).like_count == 1
    await target.mark()
    embedded = target.evil.activity("Undo", like)  # names mallory as the Like's actor
    response = await target.evil.post(target.client, SHARED_INBOX, embedded)
    await target.refused(response, 403, "another actor's activity")
    bare = target.evil.activity("Undo", like["id"])  # only the id: the worker must check
    assert (await target.evil.post(target.client, SHARED_INBOX, bare)).status_code == 202
    await target.settle()
    await target.unchanged(ignore=("inbox_activities", "jobs"))
    assert (await target.story_row()).like_count == 1


async def test_accept_of_a_follow_we_never_sent(target: Target) -> None:
    # amina asked mallory (pending); eve "accepts" it, and a Follow that never existed.
    target.evil.add("mallory")
    mallory = await know(target.a, target.evil, "mallory")
    async with target.a.ctx.sessions.begin() as session:
        from fediverse_stories.db.models import FollowState
        from fediverse_stories.services.actors import local_actor

        amina = await local_actor(session, target.a.ctx, "amina")
        assert amina is not None
        session.add(
            Follow(
                follower_id=amina.id,
                followed_id=mallory.id,
                state=FollowState.PENDING,
                activity_uri="http://a.test/activities/follow-1",
                created_at=target.a.ctx.clock(),
            )
        )
    await target.mark()
    for obj in (
        "http://a.test/activities/follow-1",
        {
            "id": "http://a.test/activities/follow-1",
            "type": "Follow",
            "actor": "http://a.test/users/amina",
            "object": target.evil.actor_id("mallory"),
        },
        {
            "id": "http://a.test/activities/never",
            "type": "Follow",
            "actor": "http://a.test/users/amina",
            "object": target.evil.actor_id(),
        },
    ):
        accept = target.evil.activity("Accept", obj)
        assert (await target.evil.post(target.client, SHARED_INBOX, accept)).status_code == 202
    await target.settle()
    assert (await target.outcomes())[-3:] == ["refused: we never followed this actor"] * 3 or all(
        o.startswith("refused:") for o in (await target.outcomes())[-3:]
    )
    await target.unchanged(ignore=("inbox_activities", "jobs"))
    async with target.a.ctx.sessions() as session:
        states = [f.state for f in (await session.execute(select(Follow))).scalars()]
    assert [str(s) for s in states] == ["pending"]


async def test_announce_embedding_a_forged_copy_of_our_story_changes_no_text(
    target: Target,
) -> None:
    forged = {
        "id": target.story.uri,
        "type": "Article",
        "attributedTo": "http://a.test/users/amina",
        "name": "We endorse evil.test",
        "content": "<p>forged</p>",
    }
    announce = target.evil.activity("Announce", forged)
    assert (await target.evil.post(target.client, SHARED_INBOX, announce)).status_code == 202
    await target.settle()
    story = await target.story_row()
    assert story.title == "Who sets the agenda?"
    assert "forged" not in story.content_html
    page = await target.client.get(f"/stories/{story.id}")
    assert "We endorse" not in page.text and "forged" not in page.text
    assert target.outgoing() == []


async def test_announce_embedding_a_forged_post_of_another_host_stores_and_fetches_nothing(
    target: Target,
) -> None:
    forged = {
        "id": "http://mastodon.test/users/alice/statuses/1",
        "type": "Note",
        "attributedTo": "http://mastodon.test/users/alice",
        "content": "<p>alice never said this</p>",
        "inReplyTo": target.story.uri,
        "to": ["https://www.w3.org/ns/activitystreams#Public"],
    }
    announce = target.evil.activity("Announce", forged)
    assert (await target.evil.post(target.client, SHARED_INBOX, announce)).status_code == 202
    await target.settle()
    await target.unchanged(ignore=("inbox_activities", "jobs"))


async def test_a_forwarded_reply_is_taken_from_its_origin_not_from_the_forwarder(
    target: Target,
) -> None:
    # eve owns a thread a.test carries, so she may forward replies to it; what alice's reply
    # says is fetched from alice's server, whatever eve embeds.
    story = await carried_post(target)
    alice = MastodonRemote.register(target.factory)
    create = alice.note_create(story.uri or "", text="The real words.")
    forged = json.loads(json.dumps(create))
    forged["object"]["content"] = "<p>Words put in alice's mouth.</p>"
    response = await target.evil.post(target.client, SHARED_INBOX, forged)
    assert response.status_code == 202, response.text
    await target.settle()
    async with target.a.ctx.sessions() as session:
        shown = list(
            (
                await session.execute(
                    select(Comment.content_html).where(Comment.story_id == story.id)
                )
            ).scalars()
        )
    assert shown == ["<p>The real words.</p>"]
    assert [str(r.url) for r in target.outgoing() if r.url.host == "mastodon.test"] == [
        create["object"]["id"],
        "http://mastodon.test/users/alice",
    ]


async def _reply_by_reference(target: Target, note_id: str) -> None:
    create = target.evil.activity("Create", note_id, id=f"{note_id}/activity")
    assert (await target.evil.post(target.client, SHARED_INBOX, create)).status_code == 202
    await target.settle()


async def test_a_fetched_object_whose_id_is_not_its_url_is_refused(target: Target) -> None:
    note = target.evil.note(target.story.uri, "<p>swapped</p>")
    target.evil.serve("/notes/served-here", dict(note))  # its id names another URL
    await _reply_by_reference(target, "http://evil.test/notes/served-here")
    await target.unchanged(ignore=("inbox_activities", "jobs"), outgoing=False)


async def test_a_fetched_object_with_a_non_activitystreams_type_is_refused(target: Target) -> None:
    note = target.evil.note(target.story.uri, "<p>html</p>")
    target.evil.serve(note["id"], note, content_type="text/html")
    await _reply_by_reference(target, note["id"])
    await target.unchanged(ignore=("inbox_activities", "jobs"), outgoing=False)


async def test_a_fetched_object_redirected_to_another_host_is_refused(target: Target) -> None:
    alice = MastodonRemote.register(target.factory)
    real = alice.note_create(target.story.uri or "")["object"]
    note_id = "http://evil.test/notes/redirected"
    target.evil.redirect(note_id, real["id"])
    await _reply_by_reference(target, note_id)
    await target.unchanged(ignore=("inbox_activities", "jobs"), outgoing=False)
    assert [r.url.host for r in target.outgoing()] == ["evil.test"]  # never followed


async def test_a_refused_fetch_is_recorded_at_once_not_retried(target: Target) -> None:
    # DESIGN: a check that needs a fetch happens in the worker and "a refusal here is recorded
    # with its reason". A forged document will not become genuine on a later attempt.
    note = target.evil.note(target.story.uri, "<p>swapped</p>")
    target.evil.serve("/notes/served-here", dict(note))
    await _reply_by_reference(target, "http://evil.test/notes/served-here")
    outcome = (await target.outcomes())[-1]
    assert outcome.startswith("refused: FetchIdMismatch"), outcome


async def test_401_key_document_whose_id_is_not_its_url(target: Target) -> None:
    target.evil.add("ghost")
    target.evil.serve("/users/ghost", target.evil.actor("eve"))  # eve's document at ghost's URL
    like = target.evil.activity("Like", target.story.uri, "ghost")
    response = await target.evil.post(target.client, SHARED_INBOX, like, who="ghost")
    await target.refused(response, 401, "could not be obtained", outgoing=False)


async def test_401_key_document_served_as_html(target: Target) -> None:
    target.evil.add("ghost")
    target.evil.serve("/users/ghost", target.evil.actor("ghost"), content_type="text/html")
    like = target.evil.activity("Like", target.story.uri, "ghost")
    response = await target.evil.post(target.client, SHARED_INBOX, like, who="ghost")
    await target.refused(response, 401, "could not be obtained", outgoing=False)


async def test_401_key_owned_by_an_actor_on_another_host(target: Target) -> None:
    target.evil.add("ghost")
    document = target.evil.actor("ghost")
    document["publicKey"]["owner"] = "http://a.test/users/amina"
    target.evil.serve("/users/ghost", document)
    like = target.evil.activity("Like", target.story.uri, "ghost")
    response = await target.evil.post(target.client, SHARED_INBOX, like, who="ghost")
    await target.refused(response, 401, "could not be obtained", outgoing=False)


async def test_403_suspended_actor(target: Target) -> None:
    async with target.a.ctx.sessions.begin() as session:
        eve = (
            await session.execute(select(Actor).where(Actor.uri == target.evil.actor_id()))
        ).scalar_one()
        eve.suspended = True
    await target.mark()
    for activity in (
        target.evil.activity("Like", target.story.uri),
        target.evil.create(target.evil.note(target.story.uri, "<p>still here</p>")),
        target.evil.activity("Follow", "http://a.test/users/amina"),
    ):
        response = await target.evil.post(target.client, SHARED_INBOX, activity)
        await target.refused(response, 403, "suspended")


async def test_remote_comment_helper_makes_a_visible_comment(target: Target) -> None:
    # The control for the refusals above: the same attacker, behaving, is heard.
    comment = await remote_comment(target)
    assert comment.state == CommentState.VISIBLE


async def test_a_neighbour_cannot_pre_delete_someone_elses_reply(target: Target) -> None:
    target.evil.add("mallory")
    await know(target.a, target.evil, "mallory")
    note = target.evil.note(target.story.uri, "<p>My reply.</p>")
    pre_delete = target.evil.activity("Delete", note["id"], "mallory")
    response = await target.evil.post(target.client, SHARED_INBOX, pre_delete, who="mallory")
    assert response.status_code == 202
    await target.settle()
    response = await target.evil.post(target.client, SHARED_INBOX, target.evil.create(note))
    assert response.status_code == 202
    await target.settle()
    async with target.a.ctx.sessions() as session:
        shown = list((await session.execute(select(Comment.uri))).scalars())
    assert shown == [note["id"]]
