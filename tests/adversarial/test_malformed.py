"""Malformed and oversized input: refused cheaply, in DESIGN.md's order, with nothing stored.

Every body here is validly signed by eve (known to a.test), so a 400 proves the parser, not the
signature, refused it. Cases in tests/federation/test_inbox_checks.py (not JSON, duplicate keys,
a top-level array, no id, over the bound, lying Content-Length, chunked) are not repeated.
"""

from __future__ import annotations

import gzip
import json

from tests.adversarial.conftest import SHARED_INBOX, Target


async def test_400_invalid_utf8(target: Target) -> None:
    body = json.dumps(target.evil.activity("Like", target.story.uri)).encode()
    body = body.replace(b'"Like"', b'"Li\xff\xfeke"')
    response = await target.evil.post(target.client, SHARED_INBOX, body)
    await target.refused(response, 400, "malformed JSON")


async def test_400_lone_surrogate_escape(target: Target) -> None:
    activity = target.evil.activity("Like", target.story.uri)
    body = json.dumps(activity).encode().replace(b'"Like"', b'"Like\\ud800"')
    response = await target.evil.post(target.client, SHARED_INBOX, body)
    await target.refused(response, 400, "malformed JSON")


async def test_400_hundred_thousand_deep_nesting(target: Target) -> None:
    for body in (
        b"[" * 100_000 + b"]" * 100_000,
        b'{"a":' * 100_000 + b"1" + b"}" * 100_000,
    ):
        response = await target.evil.post(target.client, SHARED_INBOX, body)
        await target.refused(response, 400, "nested too deeply")


async def test_400_nesting_inside_a_valid_activity(target: Target) -> None:
    note = target.evil.note(target.story.uri, "<p>hi</p>")
    body = json.dumps(target.evil.create(note)).encode()
    deep = b"[" * 10_000 + b"]" * 10_000
    body = body[:-1] + b', "tag": ' + deep + b"}"
    response = await target.evil.post(target.client, SHARED_INBOX, body)
    await target.refused(response, 400, "nested too deeply")


async def test_400_integer_with_a_hundred_thousand_digits(target: Target) -> None:
    body = json.dumps(target.evil.activity("Like", target.story.uri)).encode()
    body = body[:-1] + b', "n": ' + b"9" * 100_000 + b"}"
    response = await target.evil.post(target.client, SHARED_INBOX, body)
    await target.refused(response, 400, "malformed JSON")


async def test_400_actor_as_a_list(target: Target) -> None:
    activity = target.evil.activity("Like", target.story.uri)
    activity["actor"] = [target.evil.actor_id()] * 1000
    response = await target.evil.post(target.client, SHARED_INBOX, activity)
    await target.refused(response, 400, "no valid actor")


async def test_400_id_longer_than_2048(target: Target) -> None:
    activity = target.evil.activity("Like", target.story.uri)
    activity["id"] = target.evil.actor_id() + "/" + "x" * 3000
    response = await target.evil.post(target.client, SHARED_INBOX, activity)
    await target.refused(response, 400, "no valid id")


async def test_400_ids_that_are_not_urls_at_all(target: Target) -> None:
    # urlsplit raises on an unclosed IPv6 literal: a malformed id, not a server error.
    activity = target.evil.activity("Create", target.evil.note(target.story.uri, "<p>Hi</p>"))
    activity["id"] = "http://[::1/activity"
    response = await target.evil.post(target.client, SHARED_INBOX, activity)
    await target.refused(response, 400, "no valid id")
    activity = target.evil.activity("Create", target.evil.note(target.story.uri, "<p>Hi</p>"))
    activity["object"]["id"] = "https://[bad/note"
    response = await target.evil.post(target.client, SHARED_INBOX, activity)
    await target.refused(response, 400, "the created object has no valid id")


async def test_413_ten_mib_body_before_any_key_or_parse(target: Target) -> None:
    body = b'{"pad": "' + b"x" * (10 << 20) + b'"}'
    response = await target.evil.post(target.client, SHARED_INBOX, body)
    await target.refused(response, 413, "body larger than 1048576")


async def test_gzip_bomb_body_is_never_inflated(target: Target) -> None:
    # 10 MiB of JSON whitespace gzipped to ~10 KiB, signed over the compressed bytes.
    inner = json.dumps(target.evil.activity("Like", target.story.uri)).encode()
    bomb = gzip.compress(inner[:-1] + b" " * (10 << 20) + b"}", compresslevel=9)
    assert len(bomb) < 64 << 10
    headers = target.evil.cavage(SHARED_INBOX, bomb)
    headers["Content-Encoding"] = "gzip"
    response = await target.client.post(SHARED_INBOX, content=bomb, headers=headers)
    # The body is taken as sent: compressed bytes are not JSON.
    await target.refused(response, 400, "malformed JSON")


async def test_huge_to_cc_tag_and_attachment_lists_cost_no_fetches(target: Target) -> None:
    note = target.evil.note(target.story.uri, "<p>Many friends.</p>")
    note["to"] = [f"http://h{i}.test/users/u{i}" for i in range(3000)]
    note["cc"] = [f"http://c{i}.test/users/u{i}/followers" for i in range(3000)]
    note["tag"] = [
        {"type": "Mention", "href": f"http://m{i}.test/users/u{i}", "name": f"@u{i}@m{i}.test"}
        for i in range(3000)
    ] + [{"type": "Hashtag", "name": f"#t{i}"} for i in range(2000)]
    note["attachment"] = [
        {"type": "Document", "url": f"http://f{i}.test/{i}.png", "mediaType": "image/png"}
        for i in range(2000)
    ]
    create = target.evil.create(note)
    create["to"], create["cc"] = note["to"], note["cc"]
    response = await target.evil.post(target.client, SHARED_INBOX, create)
    assert response.status_code == 202, response.text
    await target.settle()
    assert (await target.outcomes())[-1] == "comment shown and forwarded"
    assert target.outgoing() == []  # not one mention, follower collection or file fetched
