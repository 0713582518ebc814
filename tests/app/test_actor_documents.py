"""Actor documents and their collections, as a peer fetching them sees them."""

from __future__ import annotations

from datetime import timedelta

import pytest

from fediverse_stories.db.models import (
    Actor,
    CommentPolicy,
    Follow,
    FollowState,
    Role,
    Visibility,
)
from fediverse_stories.services.accounts import create_account, get_account
from fediverse_stories.services.stories import StoryDraft, create_story
from tests.support.instances import Instance

AS_ACCEPT = {"Accept": "application/activity+json"}
LD_ACCEPT = {"Accept": 'application/ld+json; profile="https://www.w3.org/ns/activitystreams"'}
BROWSER_ACCEPT = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
PUBLIC = "https://www.w3.org/ns/activitystreams#Public"


async def get_json(instance: Instance, path: str) -> dict:  # type: ignore[type-arg]
    response = await instance.client.get(path, headers=AS_ACCEPT)
    assert response.status_code == 200, (path, response.text)
    assert response.headers["content-type"] == "application/activity+json; charset=utf-8"
    assert response.headers["vary"] == "Accept"
    return response.json()  # type: ignore[no-any-return]


async def add_account(
    instance: Instance, name: str, *, display_name: str = "", manual_approval: bool = False
) -> int:
    async with instance.ctx.sessions.begin() as session:
        account = await create_account(
            session,
            instance.ctx,
            name,
            "a-good-password",
            role=Role.AUTHOR,
            display_name=display_name,
            manual_approval=manual_approval,
        )
        return account.actor_id


async def publish(instance: Instance, author: str, **fields: object) -> str:
    async with instance.ctx.sessions.begin() as session:
        account = await get_account(session, author)
        draft = StoryDraft(
            title=str(fields.pop("title", "Listening first")),
            body_markdown="We *listened*.",
            summary="How it <started>.",
            tags=["partnership", "Localisation"],
            **fields,  # type: ignore[arg-type]
        )
        story = await create_story(session, instance.ctx, account, draft)
        assert story.uri is not None
        return story.uri


async def remote_actors(instance: Instance, count: int) -> list[int]:
    """Remote actor rows, as the inbox would cache them."""
    ids = []
    async with instance.ctx.sessions.begin() as session:
        for n in range(count):
            actor = Actor(
                uri=f"https://remote.example/users/r{n}",
                local=False,
                type="Person",
                username=f"r{n}",
                domain="remote.example",
                created_at=instance.ctx.clock(),
            )
            session.add(actor)
            await session.flush()
            ids.append(actor.id)
    return ids


async def follow(
    instance: Instance,
    follower_id: int,
    followed_id: int,
    state: FollowState = FollowState.ACCEPTED,
    minutes: int = 0,
) -> None:
    async with instance.ctx.sessions.begin() as session:
        session.add(
            Follow(
                follower_id=follower_id,
                followed_id=followed_id,
                state=state,
                created_at=instance.ctx.clock() + timedelta(minutes=minutes),
            )
        )


# --- Actor documents -------------------------------------------------------------------------


async def test_person_document_has_what_mastodon_reads(instance: Instance) -> None:
    await add_account(instance, "amina", display_name="Amina Y.", manual_approval=True)
    async with instance.ctx.sessions.begin() as session:
        actor = (await get_account(session, "amina")).actor
        actor.summary = "Writes <about> wells.\n\nAnd schools."
        actor.icon_url = "https://cdn.example/amina.png"
        pem = actor.public_key_pem
    doc = await get_json(instance, "/users/amina")
    uri = "http://a.test/users/amina"
    context = doc["@context"]
    assert context[:2] == ["https://www.w3.org/ns/activitystreams", "https://w3id.org/security/v1"]
    terms = context[2]
    assert terms["manuallyApprovesFollowers"] == "as:manuallyApprovesFollowers"
    assert terms["toot"] == "http://joinmastodon.org/ns#"
    assert terms["featured"] == {"@id": "toot:featured", "@type": "@id"}
    for term in ("discoverable", "indexable", "attributionDomains"):
        assert term in terms
    assert doc["id"] == uri
    assert doc["type"] == "Person"
    assert doc["preferredUsername"] == "amina"
    assert doc["name"] == "Amina Y."
    assert doc["summary"] == "<p>Writes &lt;about&gt; wells.</p><p>And schools.</p>"
    assert doc["url"] == uri
    assert doc["icon"] == {"type": "Image", "url": "https://cdn.example/amina.png"}
    assert doc["inbox"] == f"{uri}/inbox"
    assert doc["outbox"] == f"{uri}/outbox"
    assert doc["followers"] == f"{uri}/followers"
    assert doc["following"] == f"{uri}/following"
    assert doc["featured"] == f"{uri}/featured"
    assert doc["endpoints"] == {"sharedInbox": "http://a.test/inbox"}
    assert doc["publicKey"] == {"id": f"{uri}#main-key", "owner": uri, "publicKeyPem": pem}
    assert pem and pem.startswith("-----BEGIN PUBLIC KEY-----")
    assert doc["manuallyApprovesFollowers"] is True
    assert doc["discoverable"] is True and doc["indexable"] is True
    assert doc["attributionDomains"] == ["a.test"]
    assert doc["published"].endswith("Z") and "T" in doc["published"]


async def test_organisation_document(instance: Instance) -> None:
    doc = await get_json(instance, "/users/stories")
    assert doc["type"] == "Organization"
    assert doc["preferredUsername"] == "stories"
    assert doc["name"] == "Stories"
    assert doc["manuallyApprovesFollowers"] is False
    assert doc["followers"] == "http://a.test/users/stories/followers"
    assert doc["publicKey"]["id"] == "http://a.test/users/stories#main-key"


async def test_instance_actor_document(instance: Instance) -> None:
    doc = await get_json(instance, "/actor")
    assert doc["id"] == "http://a.test/actor"
    assert doc["type"] == "Application"
    assert doc["preferredUsername"] == "instance.actor"
    assert doc["inbox"] == "http://a.test/actor/inbox"
    assert doc["outbox"] == "http://a.test/actor/outbox"
    assert doc["publicKey"]["id"] == "http://a.test/actor#main-key"
    assert doc["publicKey"]["owner"] == "http://a.test/actor"
    assert doc["endpoints"]["sharedInbox"] == "http://a.test/inbox"
    assert "followers" not in doc
    outbox = await get_json(instance, "/actor/outbox")
    assert outbox["totalItems"] == 0


async def test_ld_json_with_and_without_profile_gets_the_document(instance: Instance) -> None:
    for accept in (LD_ACCEPT["Accept"], "application/ld+json", "application/activity+json, */*"):
        response = await instance.client.get("/users/admin", headers={"Accept": accept})
        assert response.headers["content-type"].startswith("application/activity+json"), accept
        assert response.json()["id"] == "http://a.test/users/admin"


async def test_same_url_answers_html_to_browsers(instance: Instance) -> None:
    page = await instance.client.get("/users/admin", headers=BROWSER_ACCEPT)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "Accept" in page.headers["vary"]
    assert "@admin@a.test" in page.text
    plain = await instance.client.get("/users/admin")
    assert plain.headers["content-type"].startswith("text/html")
    refused = await instance.client.get(
        "/users/admin", headers={"Accept": "application/activity+json;q=0, text/html"}
    )
    assert refused.headers["content-type"].startswith("text/html")


async def test_instance_actor_sends_browsers_home(instance: Instance) -> None:
    response = await instance.client.get("/actor", headers=BROWSER_ACCEPT)
    assert response.status_code == 302
    assert response.headers["location"] == "/"


async def test_unknown_actor_is_404_json(instance: Instance) -> None:
    for path in ("/users/nobody", "/users/instance.actor", "/users/ADMIN"):
        response = await instance.client.get(path, headers=AS_ACCEPT)
        assert response.status_code == 404, path
        assert response.json()["error"]
    for path in ("/users/nobody/followers", "/users/nobody/outbox", "/users/nobody/featured"):
        assert (await instance.client.get(path, headers=AS_ACCEPT)).status_code == 404


# --- Followers and following -----------------------------------------------------------------


async def test_followers_are_paged_newest_first(instance: Instance) -> None:
    amina = await add_account(instance, "amina")
    remotes = await remote_actors(instance, 23)
    for n, remote in enumerate(remotes):
        await follow(instance, remote, amina, minutes=n)
    pending = (await remote_actors_named(instance, "pending"))[0]
    await follow(instance, pending, amina, state=FollowState.PENDING, minutes=99)

    collection = await get_json(instance, "/users/amina/followers")
    base = "http://a.test/users/amina/followers"
    assert collection["type"] == "OrderedCollection"
    assert collection["id"] == base
    assert collection["totalItems"] == 23
    assert collection["first"] == f"{base}?page=1"
    assert "orderedItems" not in collection

    first = await get_json(instance, collection["first"])
    assert first["type"] == "OrderedCollectionPage"
    assert first["id"] == f"{base}?page=1"
    assert first["partOf"] == base
    assert first["totalItems"] == 23
    assert len(first["orderedItems"]) == 20
    assert first["orderedItems"][0] == "https://remote.example/users/r22"
    assert first["next"] == f"{base}?page=2"
    assert "prev" not in first

    second = await get_json(instance, first["next"])
    assert second["orderedItems"] == [f"https://remote.example/users/r{n}" for n in (2, 1, 0)]
    assert second["prev"] == f"{base}?page=1"
    assert "next" not in second
    everyone = set(first["orderedItems"]) | set(second["orderedItems"])
    assert "https://remote.example/users/pending" not in everyone

    beyond = await get_json(instance, f"{base}?page=9")
    assert beyond["orderedItems"] == []


async def remote_actors_named(instance: Instance, name: str) -> list[int]:
    async with instance.ctx.sessions.begin() as session:
        actor = Actor(
            uri=f"https://remote.example/users/{name}",
            local=False,
            type="Person",
            username=name,
            domain="remote.example",
            created_at=instance.ctx.clock(),
        )
        session.add(actor)
        await session.flush()
        return [actor.id]


async def test_following_lists_who_the_actor_follows(instance: Instance) -> None:
    amina = await add_account(instance, "amina")
    followed = await remote_actors(instance, 2)
    await follow(instance, amina, followed[0], minutes=1)
    await follow(instance, amina, followed[1], state=FollowState.PENDING)
    # Someone following amina is not someone amina follows.
    other = (await remote_actors_named(instance, "fan"))[0]
    await follow(instance, other, amina)

    collection = await get_json(instance, "/users/amina/following")
    assert collection["id"] == "http://a.test/users/amina/following"
    assert collection["totalItems"] == 1
    page = await get_json(instance, collection["first"])
    assert page["orderedItems"] == ["https://remote.example/users/r0"]


async def test_hidden_followers_show_only_a_count(instance: Instance) -> None:
    amina = await add_account(instance, "amina")
    for remote in await remote_actors(instance, 3):
        await follow(instance, remote, amina)
    async with instance.ctx.sessions.begin() as session:
        (await get_account(session, "amina")).actor.hide_followers = True
    for path in ("/users/amina/followers", "/users/amina/followers?page=1"):
        collection = await get_json(instance, path)
        assert collection["type"] == "OrderedCollection"
        assert collection["totalItems"] == 3
        assert "first" not in collection and "orderedItems" not in collection
    following = await get_json(instance, "/users/amina/following?page=1")
    assert "orderedItems" not in following


@pytest.mark.parametrize("page", ["0", "-1", "abc", "1.5", "true", "99999999999"])
async def test_invalid_page_numbers_are_400(instance: Instance, page: str) -> None:
    for collection in ("followers", "following", "outbox"):
        response = await instance.client.get(
            f"/users/admin/{collection}", params={"page": page}, headers=AS_ACCEPT
        )
        assert response.status_code == 400, (collection, page)
        assert response.json()["error"]


# --- Outbox and featured ---------------------------------------------------------------------


async def test_outbox_lists_stories_as_create_article(instance: Instance) -> None:
    await add_account(instance, "amina")
    uri = await publish(instance, "amina", comment_policy=CommentPolicy.MODERATED)
    await publish(instance, "amina", title="Hidden", visibility=Visibility.FOLLOWERS)

    outbox = await get_json(instance, "/users/amina/outbox")
    assert outbox["type"] == "OrderedCollection"
    assert outbox["totalItems"] == 1
    page = await get_json(instance, outbox["first"])
    assert page["partOf"] == "http://a.test/users/amina/outbox"
    [create] = page["orderedItems"]
    assert create["type"] == "Create"
    assert create["id"] == f"{uri}/activity"
    assert create["actor"] == "http://a.test/users/amina"
    article = create["object"]
    assert article["type"] == "Article"
    assert article["id"] == uri and article["url"] == uri
    assert article["name"] == "Listening first"
    assert article["summary"] == "<p>How it &lt;started&gt;.</p>"
    assert "<em>listened</em>" in article["content"]
    assert article["contentMap"] == {"en": article["content"]}
    assert article["attributedTo"] == "http://a.test/users/amina"
    assert article["published"].endswith("Z")
    assert "updated" not in article
    assert article["to"] == [PUBLIC] == create["to"]
    assert article["cc"] == ["http://a.test/users/amina/followers"] == create["cc"]
    assert {
        "type": "Hashtag",
        "name": "#Localisation",
        "href": "http://a.test/tags/localisation",
    } in (article["tag"])
    assert article["replies"] == f"{uri}/replies"
    assert article["context"] == f"{uri}/context"
    assert article["interactionPolicy"] == {"canReply": {"manualApproval": [PUBLIC]}}
    assert "Hidden" not in str(page)


async def test_outbox_excludes_deleted_stories_and_other_authors(instance: Instance) -> None:
    await add_account(instance, "amina")
    await publish(instance, "admin")
    gone = await publish(instance, "amina")
    async with instance.ctx.sessions.begin() as session:
        from fediverse_stories.services.stories import get_local_story

        story = await get_local_story(session, int(gone.rsplit("/", 1)[1]))
        story.deleted_at = instance.ctx.clock()
    outbox = await get_json(instance, "/users/amina/outbox")
    assert outbox["totalItems"] == 0
    assert (await get_json(instance, "/users/admin/outbox"))["totalItems"] == 1


async def test_featured_is_an_empty_ordered_collection(instance: Instance) -> None:
    for name in ("admin", "stories"):
        featured = await get_json(instance, f"/users/{name}/featured")
        assert featured["id"] == f"http://a.test/users/{name}/featured"
        assert featured["type"] == "OrderedCollection"
        assert featured["totalItems"] == 0
        assert featured["orderedItems"] == []
