"""NUL characters, which PostgreSQL text cannot hold: each is a 400 with its reason, never a 500.

Before these guards, a NUL in an activity's id, in an actor's name or a tag in the URL, or in
the login form was a server error on PostgreSQL (asyncpg refuses the string)."""

from __future__ import annotations

import json

import pytest

from tests.adversarial.conftest import SHARED_INBOX, Target
from tests.support.instances import Instance, csrf_from, sign_in


async def test_400_a_nul_anywhere_in_an_activity(target: Target) -> None:
    like = target.evil.activity("Like", target.story.uri)
    like["id"] += "\x00"
    note = target.evil.note(target.story.uri, "<p>hi\x00there</p>")
    for activity in (like, target.evil.create(note)):
        response = await target.evil.post(target.client, SHARED_INBOX, activity)
        await target.refused(response, 400, "NUL character")


async def test_an_escaped_backslash_before_u0000_is_text_not_a_nul(target: Target) -> None:
    note = target.evil.note(target.story.uri, "<p>C:\\u0000 is a path</p>")
    body = json.dumps(target.evil.create(note)).encode()
    assert b"\\\\u0000" in body
    response = await target.evil.post(target.client, SHARED_INBOX, body)
    assert response.status_code == 202, response.text


@pytest.mark.parametrize(
    "path",
    [
        "/users/%00",
        "/users/%00/outbox",
        "/users/a%00/followers",
        "/tags/%00",
        "/activities/%00",
        "/search?q=a%00b",
        "/login?next=%00",
    ],
)
async def test_400_a_nul_in_the_url(instance: Instance, path: str) -> None:
    for accept in ("text/html", "application/activity+json"):
        response = await instance.client.get(path, headers={"Accept": accept})
        assert response.status_code == 400, (path, response.status_code)
        assert response.json()["error"] == "NUL character in the URL"


async def test_400_a_nul_in_a_form_field(instance: Instance) -> None:
    token = csrf_from((await instance.client.get("/login")).text)
    response = await instance.client.post(
        "/login", data={"username": "ad\x00min", "password": "x", "csrf_token": token}
    )
    assert response.status_code == 400
    assert "The form holds a NUL character." in response.text
    assert (await sign_in(instance, "admin", instance.admin_password)).status_code == 303
