"""Follow requests awaiting approval, removals that send Reject, Blocks from remote actors."""

from __future__ import annotations

from sqlalchemy import select

from fediverse_stories.db.models import Follow, FollowState, Role
from fediverse_stories.outbound import store as outbound
from fediverse_stories.services import follows
from fediverse_stories.services.accounts import create_account
from fediverse_stories.services.actors import local_actor
from tests.support.instances import Instance, InstanceFactory, settle


async def add_user(instance: Instance, name: str, *, manual: bool = False) -> None:
    async with instance.ctx.sessions.begin() as session:
        await create_account(
            session, instance.ctx, name, "a-good-password", role=Role.AUTHOR, manual_approval=manual
        )


async def states(instance: Instance) -> list[FollowState]:
    async with instance.ctx.sessions() as session:
        return list((await session.execute(select(Follow.state))).scalars())


async def test_manual_approval_waits_then_approve_sends_accept(instances: InstanceFactory) -> None:
    a = await instances.start("http://a.test")
    b = await instances.start("http://b.test")
    await add_user(a, "amina", manual=True)
    await add_user(b, "bob")
    await follows.follow(b.ctx, "bob", "amina@a.test")
    await settle(a, b)
    assert await states(a) == [FollowState.PENDING]
    assert await states(b) == [FollowState.PENDING]
    listed = await follows.followers(a.ctx, "amina")
    assert [(actor.handle, row.state) for actor, row in listed] == [
        ("@bob@b.test", FollowState.PENDING)
    ]
    await follows.approve(a.ctx, "amina", "bob@b.test")
    await settle(a, b)
    assert await states(a) == [FollowState.ACCEPTED]
    assert await states(b) == [FollowState.ACCEPTED]


async def test_removing_a_follower_sends_reject_and_both_sides_forget(
    instances: InstanceFactory,
) -> None:
    a = await instances.start("http://a.test")
    b = await instances.start("http://b.test")
    await add_user(a, "amina")
    await add_user(b, "bob")
    await follows.follow(b.ctx, "bob", "amina@a.test")
    await settle(a, b)
    assert await states(b) == [FollowState.ACCEPTED]
    await follows.reject(a.ctx, "amina", "http://b.test/users/bob")
    await settle(a, b)
    assert await states(a) == []
    assert await states(b) == []


async def test_a_block_from_a_remote_actor_removes_follows_both_ways(
    instances: InstanceFactory,
) -> None:
    a = await instances.start("http://a.test")
    b = await instances.start("http://b.test")
    await add_user(a, "amina")
    await add_user(b, "bob")
    await follows.follow(b.ctx, "bob", "amina@a.test")
    await follows.follow(a.ctx, "amina", "bob@b.test")
    await settle(a, b)
    assert sorted(await states(a)) == [FollowState.ACCEPTED, FollowState.ACCEPTED]
    # bob blocks amina: b.test sends a Block (Mastodon does the same).
    async with b.ctx.sessions.begin() as session:
        bob = await local_actor(session, b.ctx, "bob")
        assert bob is not None
        block = outbound.activity(b.ctx, "Block", bob, "http://a.test/users/amina")
        await outbound.send(session, b.ctx, bob, block, [("http://a.test/users/amina/inbox", None)])
    await settle(a, b)
    assert await states(a) == []


async def test_undo_of_someone_elses_follow_changes_nothing(instances: InstanceFactory) -> None:
    a = await instances.start("http://a.test")
    b = await instances.start("http://b.test")
    await add_user(a, "amina")
    await add_user(b, "bob")
    await add_user(b, "mallory")
    await follows.follow(b.ctx, "bob", "amina@a.test")
    await settle(a, b)
    async with b.ctx.sessions() as session:
        row = (await session.execute(select(Follow))).scalar_one()
        follow_id = row.activity_uri
    async with b.ctx.sessions.begin() as session:
        mallory = await local_actor(session, b.ctx, "mallory")
        assert mallory is not None
        undo = outbound.activity(
            b.ctx,
            "Undo",
            mallory,
            {
                "id": follow_id,
                "type": "Follow",
                "actor": "http://b.test/users/bob",
                "object": "http://a.test/users/amina",
            },
        )
        await outbound.send(session, b.ctx, mallory, undo, [("http://a.test/inbox", None)])
    await settle(a, b)
    assert await states(a) == [FollowState.ACCEPTED]
