"""Discovery as peers use it: WebFinger, host-meta and NodeInfo against a running instance."""

from __future__ import annotations

from datetime import timedelta

import pytest

from activitypub.webfinger import parse_jrd
from fediverse_stories.db.models import Role
from fediverse_stories.services.accounts import create_account, get_account
from fediverse_stories.services.comments import post_local
from fediverse_stories.services.stories import StoryDraft, create_story
from tests.app.test_queue import Clock
from tests.support.instances import Instance, InstanceFactory, sign_in

WEBFINGER = "/.well-known/webfinger"
AS_ACCEPT = {"Accept": "application/activity+json"}


async def finger(instance: Instance, resource: str, **headers: str):  # type: ignore[no-untyped-def]
    return await instance.client.get(WEBFINGER, params={"resource": resource}, headers=headers)


async def add_account(instance: Instance, name: str, role: Role = Role.AUTHOR) -> None:
    async with instance.ctx.sessions.begin() as session:
        await create_account(session, instance.ctx, name, "a-good-password", role=role)


async def publish(instance: Instance, author: str = "admin") -> int:
    async with instance.ctx.sessions.begin() as session:
        account = await get_account(session, author)
        story = await create_story(
            session, instance.ctx, account, StoryDraft(title="A story", body_markdown="Body.")
        )
        await session.flush()
        return story.id


# --- WebFinger -------------------------------------------------------------------------------


async def test_webfinger_finds_a_person_with_self_and_profile_links(instance: Instance) -> None:
    response = await finger(instance, "acct:admin@a.test")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/jrd+json")
    assert response.headers["access-control-allow-origin"] == "*"
    jrd = response.json()
    assert jrd["subject"] == "acct:admin@a.test"
    assert "http://a.test/users/admin" in jrd["aliases"]
    links = {link["rel"]: link for link in jrd["links"]}
    assert links["self"] == {
        "rel": "self",
        "type": "application/activity+json",
        "href": "http://a.test/users/admin",
    }
    profile = links["http://webfinger.net/rel/profile-page"]
    assert profile["type"] == "text/html" and profile["href"] == "http://a.test/users/admin"


async def test_webfinger_finds_the_organisation(instance: Instance) -> None:
    response = await finger(instance, "acct:stories@a.test")
    assert response.status_code == 200
    assert parse_jrd(response.json()).actor_id == "http://a.test/users/stories"


async def test_webfinger_finds_the_instance_actor_under_its_name_and_as_mastodon_spells_it(
    instance: Instance,
) -> None:
    for resource in (
        "acct:instance.actor@a.test",
        "acct:a.test@a.test",
        "http://a.test/",
        "http://a.test/actor",
    ):
        response = await finger(instance, resource)
        assert response.status_code == 200, resource
        jrd = parse_jrd(response.json())
        assert jrd.actor_id == "http://a.test/actor"
        assert jrd.subject == "acct:instance.actor@a.test"
        assert jrd.names("acct:a.test@a.test")


async def test_webfinger_accepts_the_actor_url_and_bare_handles(instance: Instance) -> None:
    for resource in ("http://a.test/users/admin", "admin@a.test", "@admin@a.test"):
        response = await finger(instance, resource)
        assert response.status_code == 200, resource
        assert response.json()["subject"] == "acct:admin@a.test"


async def test_webfinger_normalises_case_and_trailing_dot(instance: Instance) -> None:
    for resource in ("acct:ADMIN@A.TEST", "acct:admin@a.test.", "ACCT:Admin@A.Test."):
        response = await finger(instance, resource)
        assert response.status_code == 200, resource
        assert response.json()["subject"] == "acct:admin@a.test"


async def test_webfinger_answers_plain_json_clients(instance: Instance) -> None:
    response = await finger(instance, "acct:admin@a.test", Accept="application/json")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["subject"] == "acct:admin@a.test"


async def test_webfinger_filters_links_by_rel(instance: Instance) -> None:
    response = await instance.client.get(
        WEBFINGER, params={"resource": "acct:admin@a.test", "rel": "self"}
    )
    assert [link["rel"] for link in response.json()["links"]] == ["self"]


@pytest.mark.parametrize(
    "resource",
    [
        "acct:admin@b.test",
        "acct:admin@a.test:8123",
        "https://b.test/users/admin",
        "acct:nobody@a.test",
        "http://a.test/users/nobody",
        "http://a.test/stories/1",
        "http://a.test/users/instance.actor",
    ],
)
async def test_webfinger_is_404_for_foreign_hosts_and_unknown_accounts(
    instance: Instance, resource: str
) -> None:
    response = await finger(instance, resource)
    assert response.status_code == 404
    assert response.headers["access-control-allow-origin"] == "*"


@pytest.mark.parametrize(
    "resource",
    [
        "",
        "admin",
        "acct:admin",
        "acct:@a.test",
        "acct:admin@",
        "acct:admin@a.test/x",
        "acct:ad min@a.test",
        "acct:admin@a.test\r\nX-Injected: 1",
        "acct:admin@a..test",
        "http://a.test/users/admin?x=1",
        "http://a.test/users/<script>",
        "mailto:admin@a.test",
    ],
)
async def test_webfinger_is_400_with_a_reason_for_malformed_resources(
    instance: Instance, resource: str
) -> None:
    response = await finger(instance, resource)
    assert response.status_code == 400
    assert response.json()["error"]


async def test_webfinger_without_resource_is_400(instance: Instance) -> None:
    response = await instance.client.get(WEBFINGER)
    assert response.status_code == 400
    assert "resource" in response.json()["error"]


async def test_webfinger_host_with_port(instances) -> None:  # type: ignore[no-untyped-def]
    instance = await instances.start("http://a.test:8123")
    response = await finger(instance, "acct:admin@a.test:8123")
    assert response.status_code == 200
    assert response.json()["subject"] == "acct:admin@a.test:8123"
    assert (await finger(instance, "acct:admin@a.test")).status_code == 404


@pytest.mark.parametrize("handle", ["acct:admin@a.test", "acct:stories@a.test"])
async def test_webfinger_round_trip_through_the_actor_document(
    instance: Instance, handle: str
) -> None:
    jrd = parse_jrd((await finger(instance, handle)).json())
    actor = await instance.client.get(jrd.actor_id, headers=AS_ACCEPT)
    assert actor.status_code == 200
    document = actor.json()
    assert document["id"] == jrd.actor_id
    assert f"acct:{document['preferredUsername']}@a.test" == jrd.subject == handle
    back = parse_jrd(
        (await finger(instance, f"acct:{document['preferredUsername']}@a.test")).json()
    )
    assert back.actor_id == document["id"]


async def test_suspended_actor_is_not_found(instance: Instance) -> None:
    await add_account(instance, "gone")
    async with instance.ctx.sessions.begin() as session:
        account = await get_account(session, "gone")
        account.actor.suspended = True
    assert (await finger(instance, "acct:gone@a.test")).status_code == 404
    actor = await instance.client.get("/users/gone", headers=AS_ACCEPT)
    assert actor.status_code == 404


# --- host-meta -------------------------------------------------------------------------------


async def test_host_meta_points_at_webfinger(instance: Instance) -> None:
    response = await instance.client.get("/.well-known/host-meta")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/xrd+xml")
    assert response.headers["access-control-allow-origin"] == "*"
    assert (
        '<Link rel="lrdd" template="http://a.test/.well-known/webfinger?resource={uri}"/>'
        in response.text
    )
    assert 'xmlns="http://docs.oasis-open.org/ns/xri/xrd-1.0"' in response.text


# --- NodeInfo --------------------------------------------------------------------------------


async def test_nodeinfo_index_links_both_versions(instance: Instance) -> None:
    response = await instance.client.get("/.well-known/nodeinfo")
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "*"
    assert response.json() == {
        "links": [
            {
                "rel": "http://nodeinfo.diaspora.software/ns/schema/2.0",
                "href": "http://a.test/nodeinfo/2.0",
            },
            {
                "rel": "http://nodeinfo.diaspora.software/ns/schema/2.1",
                "href": "http://a.test/nodeinfo/2.1",
            },
        ]
    }


@pytest.mark.parametrize("version", ["2.0", "2.1"])
async def test_nodeinfo_document_describes_the_instance(instance: Instance, version: str) -> None:
    response = await instance.client.get(f"/nodeinfo/{version}")
    assert response.status_code == 200
    assert response.headers["content-type"] == (
        f'application/json; profile="http://nodeinfo.diaspora.software/ns/schema/{version}#"'
    )
    assert response.headers["access-control-allow-origin"] == "*"
    info = response.json()
    assert info["version"] == version
    assert info["software"]["name"] == "fediverse-stories"
    assert info["software"]["version"]
    assert info["protocols"] == ["activitypub"]
    assert info["services"] == {"inbound": [], "outbound": []}
    assert info["openRegistrations"] is False
    assert info["metadata"]["nodeName"] == "Stories"
    # The admin account exists but has neither signed in nor published.
    assert info["usage"]["users"] == {"total": 1, "activeMonth": 0, "activeHalfyear": 0}
    assert info["usage"]["localPosts"] == 0


async def test_nodeinfo_counts_follow_the_database(instance: Instance) -> None:
    await add_account(instance, "amina")
    await publish(instance, "amina")
    await publish(instance, "admin")
    info = (await instance.client.get("/nodeinfo/2.1")).json()
    assert info["usage"]["users"]["total"] == 2
    assert info["usage"]["localPosts"] == 2


async def test_nodeinfo_counts_as_active_who_signed_in_or_published_in_the_window(
    instances: InstanceFactory,
) -> None:
    clock = Clock()
    instance = await instances.start("http://a.test", clock=clock)
    for name in ("amina", "bob", "idle", "gone"):
        await add_account(instance, name)
    story_id = await publish(instance, "amina")  # from the command line, never signs in
    assert (await sign_in(instance, "bob", "a-good-password")).status_code == 303
    assert (await sign_in(instance, "gone", "a-good-password")).status_code == 303
    async with instance.ctx.sessions.begin() as session:
        (await get_account(session, "gone")).disabled = True

    async def active() -> dict[str, int]:
        users: dict[str, int] = (await instance.client.get("/nodeinfo/2.1")).json()["usage"][
            "users"
        ]
        return users

    assert await active() == {"total": 5, "activeMonth": 2, "activeHalfyear": 2}
    clock.now += timedelta(days=31)
    assert await active() == {"total": 5, "activeMonth": 0, "activeHalfyear": 2}
    await post_local(instance.ctx, "idle", story_id, "A comment counts as activity too.")
    assert await active() == {"total": 5, "activeMonth": 1, "activeHalfyear": 3}
    clock.now += timedelta(days=181)
    assert await active() == {"total": 5, "activeMonth": 0, "activeHalfyear": 0}


async def test_unknown_nodeinfo_version_is_404(instance: Instance) -> None:
    assert (await instance.client.get("/nodeinfo/1.0")).status_code == 404
