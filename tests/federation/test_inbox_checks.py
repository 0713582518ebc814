"""The inbox's checks, in DESIGN.md's order ("One inbound activity"), one test each.

Every request comes from the Mastodon-shaped remote at mastodon.test (alice), against a.test's
shared inbox and a personal inbox. A refusal must answer its status with a JSON "error" and
store nothing.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from fediverse_stories.db.models import DomainPolicy, InboxActivity, Role
from fediverse_stories.services import domains
from fediverse_stories.services.accounts import create_account
from tests.support.instances import Instance, InstanceFactory
from tests.support.mastodon import ALICE, BASE, HOST, MASTODON_43, MastodonRemote, sha256_digest

MAX_BODY = 2048
INBOXES = {"shared": "http://a.test/inbox", "personal": "http://a.test/users/amina/inbox"}


@dataclass
class Setup:
    a: Instance
    alice: MastodonRemote
    inbox: str
    factory: InstanceFactory

    async def stored(self) -> int:
        async with self.a.ctx.sessions() as session:
            return (await session.execute(select(func.count(InboxActivity.id)))).scalar_one()

    async def send(self, body: bytes, headers: dict[str, str], **kwargs: Any) -> httpx.Response:
        return await self.factory.http.post(self.inbox, content=body, headers=headers, **kwargs)

    async def refused(self, response: httpx.Response, status: int, because: str) -> str:
        assert response.status_code == status, (response.status_code, response.text)
        reason = response.json()["error"]
        assert isinstance(reason, str) and because in reason, reason
        assert await self.stored() == 0
        return reason


@pytest.fixture(params=list(INBOXES), ids=list(INBOXES))
async def setup(instances: InstanceFactory, request: pytest.FixtureRequest) -> AsyncIterator[Setup]:
    a = await instances.start(
        "http://a.test", env={"FEDIVERSE_STORIES_MAX_BODY_BYTES": str(MAX_BODY)}
    )
    async with a.ctx.sessions.begin() as session:
        await create_account(session, a.ctx, "amina", "a-good-password", role=Role.AUTHOR)
    alice = MastodonRemote.register(instances)
    yield Setup(a, alice, INBOXES[request.param], instances)


def note(**changes: Any) -> dict[str, Any]:
    """A valid Create{Note} by alice (ids on her host), with `changes` applied to the Create."""
    activity: dict[str, Any] = {
        "@context": "https://www.w3.org/ns/activitystreams",
        "id": f"{ALICE}/statuses/1/activity",
        "type": "Create",
        "actor": ALICE,
        "to": ["https://www.w3.org/ns/activitystreams#Public"],
        "object": {
            "id": f"{ALICE}/statuses/1",
            "type": "Note",
            "attributedTo": ALICE,
            "content": "<p>Hello</p>",
            "to": ["https://www.w3.org/ns/activitystreams#Public"],
        },
    }
    activity.update(changes)
    return activity


def encode(document: Any) -> bytes:
    return json.dumps(document).encode()


# 1. Size ------------------------------------------------------------------------------------


async def test_413_body_over_the_bound(setup: Setup) -> None:
    big = note(padding="x" * (MAX_BODY + 100))
    response = await setup.alice.post(setup.inbox, big)
    await setup.refused(response, 413, "body larger than 2048")


async def test_413_lying_content_length(setup: Setup) -> None:
    body = encode(note(padding="x" * (MAX_BODY + 100)))
    headers = setup.alice.headers_for(setup.inbox, body)
    headers["Content-Length"] = "100"
    await setup.refused(await setup.send(body, headers), 413, "body larger than 2048")


async def test_413_chunked_stream_cut_at_the_bound(setup: Setup) -> None:
    body = encode(note(padding="x" * (MAX_BODY + 100)))
    headers = setup.alice.headers_for(setup.inbox, body)

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 512):
            yield body[start : start + 512]

    response = await setup.factory.http.post(setup.inbox, content=chunks(), headers=headers)
    await setup.refused(response, 413, "body larger than 2048")


# 2. Content type ----------------------------------------------------------------------------


async def test_415_text_plain(setup: Setup) -> None:
    response = await setup.alice.post(setup.inbox, note(), content_type="text/plain")
    await setup.refused(response, 415, "content type")


# 3. Blocked signer domain, with no key fetched ------------------------------------------------


async def test_403_blocked_key_domain_fetches_no_key(setup: Setup) -> None:
    async with setup.a.ctx.sessions.begin() as session:
        await domains.set_policy(session, HOST, DomainPolicy.BLOCKED)
    before = len(setup.factory.transport.requests)
    response = await setup.alice.post(setup.inbox, note())
    await setup.refused(response, 403, "mastodon.test is blocked")
    later = setup.factory.transport.requests[before:]
    assert [r.url.host for r in later] == ["a.test"]  # our POST only, nothing to mastodon.test
    assert setup.alice.key_fetches == []


# 4. Signature -------------------------------------------------------------------------------


async def test_401_no_signature(setup: Setup) -> None:
    body = encode(note())
    headers = setup.alice.headers_for(setup.inbox, body)
    del headers["Signature"]
    await setup.refused(await setup.send(body, headers), 401, "not signed")


async def test_401_bad_signature(setup: Setup) -> None:
    body = encode(note())
    headers = setup.alice.headers_for(setup.inbox, body)
    # Same length, valid base64, wrong bytes.
    start = headers["Signature"].index('signature="') + len('signature="')
    first = headers["Signature"][start]
    headers["Signature"] = (
        headers["Signature"][:start]
        + ("B" if first != "B" else "C")
        + headers["Signature"][start + 1 :]
    )
    await setup.refused(await setup.send(body, headers), 401, "does not verify")


async def test_401_body_changed_after_signing(setup: Setup) -> None:
    body = encode(note())
    headers = setup.alice.headers_for(setup.inbox, body)
    changed = encode(note(id=f"{ALICE}/statuses/2/activity"))
    await setup.refused(await setup.send(changed, headers), 401, "Digest")


async def test_401_body_and_digest_changed_after_signing(setup: Setup) -> None:
    body = encode(note())
    headers = setup.alice.headers_for(setup.inbox, body)
    changed = encode(note(id=f"{ALICE}/statuses/2/activity"))
    headers["Digest"] = sha256_digest(changed)
    await setup.refused(await setup.send(changed, headers), 401, "does not verify")


async def test_401_date_two_hours_old(setup: Setup) -> None:
    response = await setup.alice.post(setup.inbox, note(), date=time.time() - 2 * 3600)
    await setup.refused(response, 401, "Date")


# 5. Well-formed (each signed validly) --------------------------------------------------------


async def test_400_not_json(setup: Setup) -> None:
    response = await setup.alice.post(setup.inbox, b'{"id": "not json')
    await setup.refused(response, 400, "malformed JSON")


async def test_400_duplicate_keys(setup: Setup) -> None:
    body = encode(note())
    body = body[:-1] + b', "actor": "' + ALICE.encode() + b'"}'
    response = await setup.alice.post(setup.inbox, body)
    await setup.refused(response, 400, "duplicate key")


async def test_400_top_level_array(setup: Setup) -> None:
    response = await setup.alice.post(setup.inbox, encode([note()]))
    await setup.refused(response, 400, "not a JSON object")


async def test_400_no_id(setup: Setup) -> None:
    activity = note()
    del activity["id"]
    response = await setup.alice.post(setup.inbox, activity)
    await setup.refused(response, 400, "no valid id")


# 6. Origin ----------------------------------------------------------------------------------


async def test_403_actor_is_not_the_signer(setup: Setup) -> None:
    bob = f"{BASE}/users/bob"
    activity = note(actor=bob)
    activity["object"]["attributedTo"] = bob
    response = await setup.alice.post(setup.inbox, activity)
    await setup.refused(response, 403, "actor is not the signer")


async def test_403_create_attributed_to_someone_else(setup: Setup) -> None:
    activity = note()
    activity["object"]["attributedTo"] = f"{BASE}/users/bob"
    response = await setup.alice.post(setup.inbox, activity)
    await setup.refused(response, 403, "attributed to someone else")


async def test_403_created_object_on_another_host(setup: Setup) -> None:
    activity = note()
    activity["object"]["id"] = "http://elsewhere.test/notes/1"
    response = await setup.alice.post(setup.inbox, activity)
    await setup.refused(response, 403, "not on the actor's host")


# 7. Stored once, then 202 --------------------------------------------------------------------


async def test_202_good_activity_is_stored(setup: Setup) -> None:
    response = await setup.alice.post(setup.inbox, note(), covered=MASTODON_43)
    assert response.status_code == 202, response.text
    assert await setup.stored() == 1
    async with setup.a.ctx.sessions() as session:
        row = (await session.execute(select(InboxActivity))).scalar_one()
    assert row.uri == f"{ALICE}/statuses/1/activity"
    assert row.actor_uri == ALICE
    assert row.signer_key_id == f"{ALICE}#main-key"


async def test_202_duplicate_delivery_stores_one_row(setup: Setup) -> None:
    first = await setup.alice.post(setup.inbox, note())
    second = await setup.alice.post(setup.inbox, note())
    assert (first.status_code, second.status_code) == (202, 202)
    assert await setup.stored() == 1


async def test_202_signature_over_the_path_exactly_as_sent(instances: InstanceFactory) -> None:
    # Peers sign the request target as they send it, percent-encoding included (Mastodon signs
    # the raw path); the check must use those bytes, not the path decoded for routing.
    a = await instances.start("http://a.test")
    async with a.ctx.sessions.begin() as session:
        await create_account(session, a.ctx, "amina", "a-good-password", role=Role.AUTHOR)
    alice = MastodonRemote.register(instances)
    response = await alice.post("http://a.test/users/am%69na/inbox", note(), covered=MASTODON_43)
    assert response.status_code == 202, response.text
    assert response.request.url.raw_path == b"/users/am%69na/inbox"
