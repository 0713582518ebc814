"""Signing in and out: sessions, CSRF tokens and rate limits."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fediverse_stories.db.models import Role
from fediverse_stories.services.accounts import create_account
from tests.support.instances import Instance, InstanceFactory, csrf_from, sign_in


async def test_admin_signs_in_and_out_with_the_generated_password(instance: Instance) -> None:
    response = await sign_in(instance, "admin", instance.admin_password)
    assert response.status_code == 303
    cookie = response.headers["set-cookie"]
    assert "httponly" in cookie.lower() and "samesite=lax" in cookie.lower()
    home = await instance.client.get("/")
    assert "Sign out" in home.text
    token = csrf_from(home.text)
    out = await instance.client.post("/logout", data={"csrf_token": token})
    assert out.status_code == 303
    assert "Sign in" in (await instance.client.get("/")).text


async def test_wrong_password_is_refused_with_401(instance: Instance) -> None:
    response = await sign_in(instance, "admin", "not-the-password")
    assert response.status_code == 401
    assert "Wrong name or password." in response.text
    assert "Sign out" not in (await instance.client.get("/")).text


async def test_login_form_without_a_valid_csrf_token_is_refused(instance: Instance) -> None:
    await instance.client.get("/login")  # a session exists, but the token is not sent
    missing = await instance.client.post(
        "/login", data={"username": "admin", "password": instance.admin_password}
    )
    assert missing.status_code == 403
    forged = await instance.client.post(
        "/login",
        data={"username": "admin", "password": instance.admin_password, "csrf_token": "forged"},
    )
    assert forged.status_code == 403
    assert "Sign out" not in (await instance.client.get("/")).text


async def test_logout_without_a_valid_csrf_token_is_refused(instance: Instance) -> None:
    await sign_in(instance, "admin", instance.admin_password)
    response = await instance.client.post("/logout", data={"csrf_token": "wrong"})
    assert response.status_code == 403
    assert "Sign out" in (await instance.client.get("/")).text


async def test_eleventh_wrong_password_in_a_minute_is_refused_without_checking(
    instances: InstanceFactory,
) -> None:
    now = [datetime(2026, 6, 1, 12, 0, tzinfo=UTC)]
    instance = await instances.start("http://a.test", clock=lambda: now[0])
    for _ in range(10):
        assert (await sign_in(instance, "admin", "wrong-password")).status_code == 401
    # The right password now: refused without being checked, with Retry-After.
    limited = await sign_in(instance, "admin", instance.admin_password)
    assert limited.status_code == 429
    assert int(limited.headers["retry-after"]) > 0
    assert "Sign out" not in (await instance.client.get("/")).text
    # A minute later the account may try again.
    now[0] += timedelta(seconds=61)
    assert (await sign_in(instance, "admin", instance.admin_password)).status_code == 303


async def test_failures_are_limited_per_address_across_accounts(instances: InstanceFactory) -> None:
    instance = await instances.start(
        "http://a.test", env={"FEDIVERSE_STORIES_LOGIN_LIMIT_PER_ADDRESS": "5"}
    )
    async with instance.ctx.sessions.begin() as session:
        await create_account(session, instance.ctx, "bea", "a-good-password", role=Role.MEMBER)
    for name in ["x1", "x2", "x3", "x4", "x5"]:
        assert (await sign_in(instance, name, "wrong-password")).status_code == 401
    assert (await sign_in(instance, "bea", "a-good-password")).status_code == 429


async def test_changing_the_password_ends_other_sessions(instance: Instance) -> None:
    from fediverse_stories.services.accounts import set_password

    await sign_in(instance, "admin", instance.admin_password)
    assert "Sign out" in (await instance.client.get("/")).text
    async with instance.ctx.sessions.begin() as session:
        await set_password(session, "admin", "a-brand-new-password")
    assert "Sign out" not in (await instance.client.get("/")).text


async def test_next_parameter_never_redirects_off_site(instance: Instance) -> None:
    page = await instance.client.get("/login")
    response = await instance.client.post(
        "/login?next=//evil.example/",
        data={
            "username": "admin",
            "password": instance.admin_password,
            "csrf_token": csrf_from(page.text),
        },
    )
    assert response.headers["location"] == "/"
