"""Signatures: every broken, stale, replayed or rotated signature is 401, and nothing is stored.

eve@evil.test is already known to a.test (her key cached), so a refusal that needs no refetch
makes no outgoing request at all. Cases already in tests/federation/test_inbox_checks.py
(missing signature, flipped signature bytes, body changed, Date two hours old) are not repeated.
"""

from __future__ import annotations

import json
import time
from datetime import timedelta

from sqlalchemy import select

from fediverse_stories.db.models import Actor, InboxActivity, Role
from fediverse_stories.services.remote_actors import KEY_REFETCH_INTERVAL
from tests.adversarial.attacker import Attacker
from tests.adversarial.conftest import (
    AMINA_INBOX,
    SHARED_INBOX,
    Target,
    add_user,
    know,
    publish,
)
from tests.app.test_queue import Clock
from tests.support.instances import InstanceFactory


def like(t: Target) -> dict[str, object]:
    return t.evil.activity("Like", t.story.uri)


def body_of(activity: object) -> bytes:
    return json.dumps(activity).encode()


async def test_401_garbled_signature_header(target: Target) -> None:
    body = body_of(like(target))
    headers = target.evil.cavage(SHARED_INBOX, body)
    headers["Signature"] = 'keyId="' + target.evil.key_id() + '",,headers=(request-target" sig'
    response = await target.client.post(SHARED_INBOX, content=body, headers=headers)
    await target.refused(response, 401, "signature")


async def test_401_duplicate_signature_parameters(target: Target) -> None:
    # A second keyId naming our own actor must not be read by anyone as the signer.
    body = body_of(like(target))
    response = await target.evil.post(
        target.client, SHARED_INBOX, body, params=',keyId="http://a.test/users/amina#main-key"'
    )
    await target.refused(response, 401, "duplicate parameter")


async def test_401_two_signature_headers(target: Target) -> None:
    body = body_of(like(target))
    headers = target.evil.cavage(SHARED_INBOX, body)
    pairs = [*headers.items(), ("Signature", headers["Signature"])]
    response = await target.client.post(SHARED_INBOX, content=body, headers=pairs)
    await target.refused(response, 401, "signature")


async def test_401_signed_with_another_key_than_the_actors(target: Target) -> None:
    response = await target.evil.post(
        target.client, SHARED_INBOX, like(target), key=target.evil.spare_key()
    )
    # The cached key fails; it was fetched just now, so no refetch either: no request at all.
    await target.refused(response, 401, "does not verify")


async def test_401_date_two_hours_in_the_future(target: Target) -> None:
    response = await target.evil.post(
        target.client, SHARED_INBOX, like(target), date=time.time() + 2 * 3600
    )
    await target.refused(response, 401, "Date")


async def test_401_expired_hs2019_signature(target: Target) -> None:
    now = int(time.time())
    response = await target.evil.post(
        target.client,
        SHARED_INBOX,
        like(target),
        algorithm="hs2019",
        covered=("(request-target)", "host", "(created)", "(expires)", "digest"),
        created=now - 600,
        expires=now - 300,
    )
    await target.refused(response, 401, "expired")


async def test_401_rsa_sha256_with_created_pseudo_header(target: Target) -> None:
    now = int(time.time())
    response = await target.evil.post(
        target.client,
        SHARED_INBOX,
        like(target),
        covered=("(request-target)", "host", "(created)", "digest"),
        created=now,
    )
    await target.refused(response, 401, "not allowed with rsa-sha256")


async def test_401_digest_not_covered(target: Target) -> None:
    response = await target.evil.post(
        target.client, SHARED_INBOX, like(target), covered=("(request-target)", "host", "date")
    )
    await target.refused(response, 401, "does not cover digest")


async def test_401_host_not_covered(target: Target) -> None:
    response = await target.evil.post(
        target.client, SHARED_INBOX, like(target), covered=("(request-target)", "date", "digest")
    )
    await target.refused(response, 401, "does not cover host")


async def test_401_request_target_not_covered(target: Target) -> None:
    response = await target.evil.post(
        target.client, SHARED_INBOX, like(target), covered=("host", "date", "digest")
    )
    await target.refused(response, 401, "does not cover (request-target)")


async def test_401_unknown_or_weak_algorithms(target: Target) -> None:
    for algorithm in ("hmac-sha256", "rsa-sha1", "rsa-sha512", "ecdsa-sha256", "none", "ed25519"):
        response = await target.evil.post(
            target.client, SHARED_INBOX, like(target), algorithm=algorithm
        )
        await target.refused(response, 401, "is not accepted")


async def test_401_replayed_to_another_inbox(target: Target) -> None:
    # Signed for the shared inbox, replayed to amina's personal inbox.
    activity = like(target)
    body = body_of(activity)
    headers = target.evil.cavage(SHARED_INBOX, body)
    response = await target.client.post(AMINA_INBOX, content=body, headers=headers)
    await target.refused(response, 401, "does not verify")


async def test_401_replayed_to_another_host(target: Target) -> None:
    # A request eve sent to b.test (Host: b.test signed) replayed to a.test, Host header and all.
    body = body_of(like(target))
    headers = target.evil.cavage("http://b.test/inbox", body)
    response = await target.client.post(SHARED_INBOX, content=body, headers=headers)
    await target.refused(response, 401, "does not verify")


async def test_401_rfc9421_without_method(target: Target) -> None:
    body = body_of(like(target))
    headers = target.evil.rfc9421(SHARED_INBOX, body, components=("@target-uri", "content-digest"))
    response = await target.client.post(SHARED_INBOX, content=body, headers=headers)
    await target.refused(response, 401, "@method")


async def test_401_rfc9421_without_target_uri(target: Target) -> None:
    body = body_of(like(target))
    headers = target.evil.rfc9421(SHARED_INBOX, body, components=("@method", "content-digest"))
    response = await target.client.post(SHARED_INBOX, content=body, headers=headers)
    await target.refused(response, 401, "@target-uri")


async def test_401_rfc9421_without_content_digest(target: Target) -> None:
    body = body_of(like(target))
    headers = target.evil.rfc9421(SHARED_INBOX, body, components=("@method", "@target-uri"))
    response = await target.client.post(SHARED_INBOX, content=body, headers=headers)
    await target.refused(response, 401, "content-digest")


async def test_401_rfc9421_without_created(target: Target) -> None:
    body = body_of(like(target))
    headers = target.evil.rfc9421(SHARED_INBOX, body, created=None)
    response = await target.client.post(SHARED_INBOX, content=body, headers=headers)
    await target.refused(response, 401, "created")


async def test_rfc9421_complete_signature_is_accepted(target: Target) -> None:
    # The control for the four cases above: the same signer, every component, is accepted.
    body = body_of(like(target))
    headers = target.evil.rfc9421(SHARED_INBOX, body)
    response = await target.client.post(SHARED_INBOX, content=body, headers=headers)
    assert response.status_code == 202, response.text


async def _rotation_setup(instances: InstanceFactory) -> tuple[Target, Clock]:
    clock = Clock()
    a = await instances.start("http://a.test", clock=clock)
    await add_user(a, "amina", Role.AUTHOR)
    story = await publish(a)
    evil = Attacker(clock=lambda: clock.now.timestamp()).register(instances)
    await know(a, evil)
    t = Target(a=a, evil=evil, factory=instances, story=story, pages=[f"/stories/{story.id}"])
    return t, clock


def key_fetches(t: Target) -> list[str]:
    return [str(r.url) for r in t.outgoing() if r.url.host == "evil.test"]


async def test_key_rotation_new_key_accepted_after_exactly_one_refetch(
    instances: InstanceFactory,
) -> None:
    t, clock = await _rotation_setup(instances)
    clock.now += KEY_REFETCH_INTERVAL + timedelta(seconds=1)  # the cached key is not brand new
    t.evil.rotate()
    await t.mark()
    response = await t.evil.post(t.client, SHARED_INBOX, t.evil.activity("Like", t.story.uri))
    assert response.status_code == 202, response.text
    assert key_fetches(t) == ["http://evil.test/users/eve"]
    async with t.a.ctx.sessions() as session:
        eve = (
            await session.execute(select(Actor).where(Actor.uri == t.evil.actor_id()))
        ).scalar_one()
    assert eve.public_key_pem is not None and "BEGIN PUBLIC KEY" in eve.public_key_pem
    assert eve.key_fetched_at == clock.now


async def test_key_rotation_old_key_refused_afterwards(instances: InstanceFactory) -> None:
    t, clock = await _rotation_setup(instances)
    clock.now += KEY_REFETCH_INTERVAL + timedelta(seconds=1)
    old = t.evil.rotate()
    first = await t.evil.post(t.client, SHARED_INBOX, t.evil.activity("Like", t.story.uri))
    assert first.status_code == 202
    await t.mark()
    # A replay-capable attacker who kept the old private key: the new key is cached, it fails,
    # and the refetch that just happened is too recent to repeat.
    stale = await t.evil.post(t.client, SHARED_INBOX, t.evil.activity("Like", t.story.uri), key=old)
    await t.refused(stale, 401, "does not verify")


async def test_key_refetches_are_rate_limited(instances: InstanceFactory) -> None:
    t, clock = await _rotation_setup(instances)
    clock.now += KEY_REFETCH_INTERVAL + timedelta(seconds=1)
    await t.mark()
    wrong = t.evil.spare_key()
    statuses = []
    for _ in range(20):
        response = await t.evil.post(
            t.client, SHARED_INBOX, t.evil.activity("Like", t.story.uri), key=wrong
        )
        statuses.append(response.status_code)
    assert statuses == [401] * 20
    assert len(key_fetches(t)) == 1  # one refetch for twenty failures
    clock.now += KEY_REFETCH_INTERVAL + timedelta(seconds=1)
    await t.evil.post(t.client, SHARED_INBOX, t.evil.activity("Like", t.story.uri), key=wrong)
    assert len(key_fetches(t)) == 2  # and one more once the interval has passed
    async with t.a.ctx.sessions() as session:
        assert list((await session.execute(select(InboxActivity))).scalars()) == []
