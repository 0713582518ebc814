"""SSRF: no request of ours ever reaches a private or special address, however it is named.

a.test runs with FEDIVERSE_STORIES_ALLOW_PRIVATE_ADDRESSES off and the real guarded client; DNS is
injected (`evil.test` answers a global address) and the guard's inner transport is a recording
connector that serves evil.test's app in-process and asserts every connection it is handed goes
to that one global address. Nothing opens a socket: a refused address is proven by the
connector's record, not by a timeout.
"""

from __future__ import annotations

import asyncio
import copy
import gzip
import json
from typing import Any

from sqlalchemy import select

from fediverse_stories.db.models import Actor, Role
from tests.adversarial.attacker import Attacker
from tests.adversarial.conftest import (
    PUBLIC_ADDRESS,
    SHARED_INBOX,
    Guarded,
    add_user,
    counts,
    publish,
    start_guarded,
)
from tests.support.instances import InstanceFactory

PUBLIC = str(PUBLIC_ADDRESS)
PRIVATE_HOSTS = [
    "127.0.0.1",
    "127.1",
    "2130706433",  # 127.0.0.1 as one number
    "0x7f000001",
    "0177.0.0.1",
    "0.0.0.0",
    "10.0.0.1",
    "172.16.5.4",
    "192.168.1.1",
    "169.254.169.254",  # cloud metadata
    "100.64.0.1",  # carrier-grade NAT
    "198.18.0.1",  # benchmarking
    "224.0.0.1",  # multicast
    "255.255.255.255",
    "[::1]",
    "[::]",
    "[fd00::1]",
    "[fe80::1]",
    "[::ffff:10.0.0.1]",  # IPv4-mapped
    "[::ffff:127.0.0.1]",
    "[64:ff9b::a00:1]",  # NAT64 of 10.0.0.1
    "[2001:db8::1]",  # documentation
    "localhost",
    "metadata.internal",
    "intranet.evil.test",
]
DNS: dict[str, Any] = {
    "evil.test": [PUBLIC],
    "localhost": ["127.0.0.1", "::1"],
    "metadata.internal": ["169.254.169.254"],
    "intranet.evil.test": ["10.1.2.3"],
    "split.evil.test": [PUBLIC, "10.0.0.7"],  # one good answer and one private one
    "rebind.evil.test": [[PUBLIC], ["10.0.0.8"]],  # public first, private on the next question
}


async def guarded(instances: InstanceFactory, **env: str) -> tuple[Guarded, Attacker, str]:
    g = await start_guarded(
        instances,
        copy.deepcopy(DNS),  # the resolver pops answers: each test gets its own
        env={f"FEDIVERSE_STORIES_{k}": v for k, v in env.items()},
    )
    await add_user(g.a, "amina", Role.AUTHOR)
    story = await publish(g.a)
    evil = Attacker()
    g.connector.add("evil.test", evil.app)
    for host in ("split.evil.test", "rebind.evil.test"):
        g.connector.add(host, Attacker(host).app)
    return g, evil, story.uri or ""


def like_from(evil: Attacker, host: str, story_uri: str) -> tuple[dict[str, Any], dict[str, str]]:
    actor = f"http://{host}/users/eve"
    activity: dict[str, Any] = {
        "@context": "https://www.w3.org/ns/activitystreams",
        "id": f"{actor}/likes/1",
        "type": "Like",
        "actor": actor,
        "object": story_uri,
    }
    body = json.dumps(activity).encode()
    return activity, evil.cavage(SHARED_INBOX, body, key_id=f"{actor}#main-key")


async def test_ssrf_key_ids_at_private_and_special_addresses_are_never_connected(
    instances: InstanceFactory,
) -> None:
    g, evil, story_uri = await guarded(instances)
    before = await counts(g.a)
    for host in PRIVATE_HOSTS:
        activity, headers = like_from(evil, host, story_uri)
        body = json.dumps(activity).encode()
        response = await g.a.client.post(SHARED_INBOX, content=body, headers=headers)
        assert response.status_code in (401, 403), (host, response.status_code, response.text)
    assert g.connector.connections == []
    assert await counts(g.a) == before


async def test_ssrf_the_control_a_public_peer_is_reached_through_its_checked_address(
    instances: InstanceFactory,
) -> None:
    g, evil, story_uri = await guarded(instances)
    response = await evil.post(g.a.client, SHARED_INBOX, evil.activity("Like", story_uri))
    assert response.status_code == 202, response.text
    assert g.connector.connections == [(PUBLIC, "evil.test")]


async def test_ssrf_dns_with_one_private_answer_refuses_the_whole_name(
    instances: InstanceFactory,
) -> None:
    g, evil, story_uri = await guarded(instances)
    activity, headers = like_from(evil, "split.evil.test", story_uri)
    response = await g.a.client.post(
        SHARED_INBOX, content=json.dumps(activity).encode(), headers=headers
    )
    assert response.status_code == 401, response.text
    assert g.connector.connections == []


async def test_ssrf_dns_that_answers_public_then_private_is_checked_every_time(
    instances: InstanceFactory,
) -> None:
    g, _, story_uri = await guarded(instances)
    evil = Attacker("rebind.evil.test")
    g.connector.add("rebind.evil.test", evil.app)
    # First question: public, so eve's key is fetched from the public address.
    activity, headers = like_from(evil, "rebind.evil.test", story_uri)
    body = json.dumps(activity).encode()
    assert (await g.a.client.post(SHARED_INBOX, content=body, headers=headers)).status_code == 202
    # Next question answers 10.0.0.8: an object fetched from that name now is refused.
    note_id = "http://rebind.evil.test/users/eve/notes/1"
    create = {
        "@context": "https://www.w3.org/ns/activitystreams",
        "id": f"{note_id}/activity",
        "type": "Create",
        "actor": "http://rebind.evil.test/users/eve",
        "object": note_id,
    }
    body = json.dumps(create).encode()
    headers = evil.cavage(SHARED_INBOX, body, key_id="http://rebind.evil.test/users/eve#main-key")
    assert (await g.a.client.post(SHARED_INBOX, content=body, headers=headers)).status_code == 202
    await g.a.run_worker()
    assert {address for address, _ in g.connector.connections} == {PUBLIC}
    assert g.resolver.asked.count("rebind.evil.test") >= 2


async def test_ssrf_object_references_to_private_addresses_are_not_fetched(
    instances: InstanceFactory,
) -> None:
    g, evil, _story_uri = await guarded(instances)
    for obj in (
        "http://127.0.0.1/notes/1",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]:8080/admin",
        "http://localhost/notes/1",
    ):
        for kind in ("Create", "Announce", "Like"):
            response = await evil.post(g.a.client, SHARED_INBOX, evil.activity(kind, obj))
            assert response.status_code in (202, 403), (kind, obj, response.text)
    await g.a.run_worker()
    assert {address for address, _ in g.connector.connections} == {PUBLIC}


async def test_ssrf_an_actor_icon_at_a_private_address_is_never_fetched(
    instances: InstanceFactory,
) -> None:
    g, evil, _story_uri = await guarded(instances)
    evil.personas["eve"].extra.update(
        icon={"type": "Image", "url": "http://169.254.169.254/latest/meta-data/iam"},
        image={"type": "Image", "url": "http://10.0.0.1/header.png"},
    )
    follow = evil.activity("Follow", "http://a.test/users/amina")
    assert (await evil.post(g.a.client, SHARED_INBOX, follow)).status_code == 202
    await g.a.run_worker()
    assert {address for address, _ in g.connector.connections} == {PUBLIC}
    page = await g.a.client.get("/users/amina")
    assert "169.254.169.254" not in page.text


async def test_ssrf_a_redirect_to_a_private_address_is_not_followed(
    instances: InstanceFactory,
) -> None:
    g, evil, story_uri = await guarded(instances)
    evil.add("red")
    evil.redirect("/users/red", "http://10.0.0.1/users/red")
    evil.add("red2")
    evil.redirect("/users/red2", "http://169.254.169.254/users/red2", status=307)
    for who in ("red", "red2"):
        response = await evil.post(
            g.a.client, SHARED_INBOX, evil.activity("Like", story_uri, who), who=who
        )
        assert response.status_code == 401, response.text
    assert g.connector.connections == [(PUBLIC, "evil.test"), (PUBLIC, "evil.test")]
    async with g.a.ctx.sessions() as session:
        assert (
            await session.execute(select(Actor).where(Actor.domain == "10.0.0.1"))
        ).first() is None


async def test_a_slow_remote_is_cut_off_without_holding_up_a_healthy_peer(
    instances: InstanceFactory,
) -> None:
    g, evil, story_uri = await guarded(instances, FETCH_TIMEOUT_SECONDS="1")
    evil.add("slow")
    evil.delays["/users/slow"] = 30.0
    finished: list[str] = []

    async def slow() -> int:
        like = evil.activity("Like", story_uri, "slow")
        response = await evil.post(g.a.client, SHARED_INBOX, like, who="slow")
        finished.append("slow")
        return response.status_code

    async def healthy() -> int:
        await asyncio.sleep(0.05)
        response = await evil.post(g.a.client, SHARED_INBOX, evil.activity("Like", story_uri))
        finished.append("healthy")
        return response.status_code

    slow_status, healthy_status = await asyncio.gather(slow(), healthy())
    # Served after its 30 s delay, the slow actor's key would verify (202): 401 says the fetch
    # was cut at its deadline, and the healthy peer was answered while it hung.
    assert (slow_status, healthy_status) == (401, 202)
    assert finished == ["healthy", "slow"]


async def test_a_huge_remote_document_is_cut_at_the_cap(instances: InstanceFactory) -> None:
    g, evil, story_uri = await guarded(instances)
    evil.add("huge")
    document = evil.actor("huge")
    document["summary"] = "x" * (3 << 20)
    evil.serve("/users/huge", document)
    evil.add("bomb")
    bomb = evil.actor("bomb")
    bomb["padding"] = " " * (50 << 20)
    evil.serve(
        "/users/bomb",
        gzip.compress(json.dumps(bomb).encode()),
        headers={"Content-Encoding": "gzip"},
    )
    for who in ("huge", "bomb"):
        response = await evil.post(
            g.a.client, SHARED_INBOX, evil.activity("Like", story_uri, who), who=who
        )
        assert response.status_code == 401, response.text
    async with g.a.ctx.sessions() as session:
        assert (
            await session.execute(select(Actor).where(Actor.domain == "evil.test"))
        ).first() is None
