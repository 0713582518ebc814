"""Two instances follow each other's authors and see stories published, edited and deleted.

Both run in this process on their own databases, joined by a host-routed client; every request
between them is really signed and really verified.
"""

from __future__ import annotations

from sqlalchemy import select

from fediverse_stories.db.models import Follow, FollowState, InboxActivity, Role, Story
from fediverse_stories.services import follows, publishing
from fediverse_stories.services.accounts import create_account
from fediverse_stories.services.stories import StoryDraft
from tests.support.instances import Instance, InstanceFactory, settle


async def add_user(instance: Instance, name: str, role: Role = Role.AUTHOR) -> None:
    async with instance.ctx.sessions.begin() as session:
        await create_account(session, instance.ctx, name, "a-good-password", role=role)


async def follow_state(instance: Instance) -> list[FollowState]:
    async with instance.ctx.sessions() as session:
        return list((await session.execute(select(Follow.state))).scalars())


async def remote_story(instance: Instance, uri: str) -> Story | None:
    async with instance.ctx.sessions() as session:
        return (await session.execute(select(Story).where(Story.uri == uri))).scalar_one_or_none()


async def test_follow_accept_publish_edit_delete_unfollow(instances: InstanceFactory) -> None:
    a = await instances.start("http://a.test")
    b = await instances.start("http://b.test")
    await add_user(a, "amina")
    await add_user(b, "bob", Role.MEMBER)

    await follows.follow(b.ctx, "bob", "amina@a.test")
    assert await follow_state(b) == [FollowState.PENDING]
    await settle(a, b)
    assert await follow_state(a) == [FollowState.ACCEPTED]
    assert await follow_state(b) == [FollowState.ACCEPTED]

    story = await publishing.publish(
        a.ctx,
        "amina",
        StoryDraft(
            title="Listening first",
            body_markdown="We *listened*.",
            summary="How it began.",
            tags=["partnership"],
        ),
    )
    await settle(a, b)
    copy = await remote_story(b, story.uri or "")
    assert copy is not None
    assert copy.title == "Listening first"
    assert "<em>listened</em>" in copy.content_html
    network = await b.client.get("/network")
    assert network.status_code == 200
    assert "Listening first" in network.text and "@amina@a.test" in network.text

    await publishing.update(a.ctx, story.uri or "", title="Listening, first")
    await settle(a, b)
    copy = await remote_story(b, story.uri or "")
    assert copy is not None and copy.title == "Listening, first"

    await publishing.delete(a.ctx, story.uri or "")
    await settle(a, b)
    copy = await remote_story(b, story.uri or "")
    assert copy is not None and copy.deleted_at is not None
    assert "Listening" not in (await b.client.get("/network")).text
    gone = await a.client.get(story.uri or "", headers={"Accept": "application/activity+json"})
    assert gone.status_code == 410
    assert gone.json()["type"] == "Tombstone"

    await follows.unfollow(b.ctx, "bob", "amina@a.test")
    await settle(a, b)
    assert await follow_state(a) == []
    assert await follow_state(b) == []
    async with a.ctx.sessions() as session:
        outcomes = list(
            (await session.execute(select(InboxActivity.type, InboxActivity.outcome))).all()
        )
    assert ("Undo", "follow undone") in outcomes


async def test_followers_only_story_reaches_followers_and_answers_only_their_signed_gets(
    instances: InstanceFactory,
) -> None:
    from fediverse_stories.db.models import Visibility
    from fediverse_stories.services.actors import INSTANCE_ACTOR_USERNAME, local_actor
    from fediverse_stories.services.signing import auth_for

    a = await instances.start("http://a.test")
    b = await instances.start("http://b.test")
    await add_user(a, "amina")
    await add_user(b, "bob", Role.MEMBER)
    await follows.follow(b.ctx, "bob", "amina@a.test")
    await settle(a, b)
    story = await publishing.publish(
        a.ctx,
        "amina",
        StoryDraft(
            title="Only for followers", body_markdown="Inside.", visibility=Visibility.FOLLOWERS
        ),
    )
    await settle(a, b)
    copy = await remote_story(b, story.uri or "")
    assert copy is not None and copy.visibility == Visibility.FOLLOWERS
    assert "Only for followers" not in (await b.client.get("/network")).text
    assert "Only for followers" not in (await a.client.get("/")).text
    outbox = await a.client.get(
        "/users/amina/outbox?page=1", headers={"Accept": "application/activity+json"}
    )
    assert "Only for followers" not in outbox.text

    accept = {"Accept": "application/activity+json"}
    assert (await a.client.get(story.uri or "", headers=accept)).status_code == 404
    async with b.ctx.sessions() as session:
        bob = await local_actor(session, b.ctx, "bob")
        stranger = await local_actor(session, b.ctx, INSTANCE_ACTOR_USERNAME)
    assert bob is not None and stranger is not None
    signed = await instances.http.get(story.uri or "", headers=accept, auth=auth_for(b.ctx, bob))
    assert signed.status_code == 200
    assert signed.json()["to"] == ["http://a.test/users/amina/followers"]
    not_follower = await instances.http.get(
        story.uri or "", headers=accept, auth=auth_for(b.ctx, stranger)
    )
    assert not_follower.status_code == 404


async def test_signed_fetch_only_mode_answers_only_signed_gets(instances: InstanceFactory) -> None:
    from fediverse_stories.services.actors import local_actor
    from fediverse_stories.services.signing import auth_for

    a = await instances.start("http://a.test", env={"FEDIVERSE_STORIES_SIGNED_FETCH_ONLY": "1"})
    b = await instances.start("http://b.test")
    await add_user(a, "amina")
    await add_user(b, "bob", Role.MEMBER)
    accept = {"Accept": "application/activity+json"}
    assert (await a.client.get("/users/amina", headers=accept)).status_code == 401
    assert (await a.client.get("/actor", headers=accept)).status_code == 200  # our key stays public
    assert (await a.client.get("/users/amina")).status_code == 200  # pages are not affected
    async with b.ctx.sessions() as session:
        bob = await local_actor(session, b.ctx, "bob")
    assert bob is not None
    signed = await instances.http.get(
        "http://a.test/users/amina", headers=accept, auth=auth_for(b.ctx, bob)
    )
    assert signed.status_code == 200
    assert signed.json()["id"] == "http://a.test/users/amina"
    # Federation still works: b follows a (a fetches b's key with its own signed GETs).
    await follows.follow(b.ctx, "bob", "amina@a.test")
    await settle(a, b)
    assert await follow_state(a) == [FollowState.ACCEPTED]
