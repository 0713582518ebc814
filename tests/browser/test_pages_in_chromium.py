"""The pages in real headless Chromium against a real `serve` process: no JavaScript needed."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, async_playwright

from fediverse_stories.context import Context
from fediverse_stories.db.models import Role
from fediverse_stories.services.accounts import create_account, get_account
from fediverse_stories.services.stories import StoryDraft, create_story
from fediverse_stories.settings import Settings
from tests.support.databases import DatabaseTemplates
from tests.support.servers import free_port, serving

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"

pytestmark = pytest.mark.browser


def _require_chromium() -> None:
    if not Path(CHROMIUM).exists():
        if os.environ.get("FEDIVERSE_STORIES_REQUIRE_BROWSER"):
            pytest.fail("Debian's chromium is required here (apt-get install chromium)")
        pytest.skip("Debian's chromium is not installed (CI installs it)")


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    _require_chromium()
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        try:
            yield browser
        finally:
            await browser.close()


@pytest.fixture
def site(
    database_templates: DatabaseTemplates, tmp_path: Path
) -> Iterator[tuple[str, str, Settings]]:
    """A real server with one author and one story; (base URL, admin password, settings)."""
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    database_url = asyncio.run(database_templates.new_database(base_url))
    env = database_templates.settings_environ(base_url, database_url, tmp_path)
    settings = Settings.from_environ(env, env_file=None)

    async def seed() -> None:
        ctx = Context.build(settings)
        try:
            async with ctx.sessions.begin() as session:
                await create_account(
                    session,
                    ctx,
                    "amina",
                    "a-good-password",
                    role=Role.AUTHOR,
                    display_name="Amina Yusuf",
                )
                author = await get_account(session, "amina")
                await create_story(
                    session,
                    ctx,
                    author,
                    StoryDraft(
                        title="Listening before funding",
                        summary="What a partnership learnt by listening first.",
                        body_markdown="## What we did\n\nWe **listened**.",
                        tags=["partnership"],
                    ),
                )
        finally:
            await ctx.close()

    asyncio.run(seed())
    with serving(env, port):
        yield base_url, database_templates.admin_password(base_url), settings
    asyncio.run(database_templates.drop(database_url))


async def test_a_reader_opens_a_story_from_the_home_page(browser: Browser, site) -> None:  # type: ignore[no-untyped-def]
    base_url, _, _ = site
    page = await browser.new_page(java_script_enabled=False)
    await page.goto(base_url + "/")
    await page.get_by_role("link", name="Listening before funding").click()
    assert await page.title() == "Listening before funding · Stories"
    assert await page.get_by_role("heading", level=1).inner_text() == "Listening before funding"
    assert await page.get_by_role("heading", name="What we did").is_visible()
    assert "Amina Yusuf" in await page.locator(".story .meta").inner_text()
    assert await page.get_by_role("heading", name="Comments (0)").is_visible()
    await page.get_by_role("link", name="Amina Yusuf").first.click()
    assert await page.get_by_role("heading", level=1).inner_text() == "Amina Yusuf"


async def test_admin_signs_in_and_out_through_the_form(browser: Browser, site) -> None:  # type: ignore[no-untyped-def]
    base_url, admin_password, _ = site
    page = await browser.new_page(java_script_enabled=False)
    await page.goto(base_url + "/login")
    await page.get_by_label("Name").fill("admin")
    await page.get_by_label("Password").fill("wrong-password")
    await page.get_by_role("button", name="Sign in").click()
    assert await page.get_by_role("alert").inner_text() == "Wrong name or password."
    await page.get_by_label("Password").fill(admin_password)
    await page.get_by_role("button", name="Sign in").click()
    assert page.url == base_url + "/"
    await page.get_by_role("button", name="Sign out").click()
    assert await page.get_by_role("link", name="Sign in").is_visible()


async def test_a_mention_in_a_comment_reaches_the_named_members_notifications(
    browser: Browser,
    site,  # type: ignore[no-untyped-def]
) -> None:
    base_url, admin_password, _ = site
    page = await browser.new_page(java_script_enabled=False)

    async def sign_in(name: str, password: str) -> None:
        await page.goto(base_url + "/login")
        await page.get_by_label("Name").fill(name)
        await page.get_by_label("Password").fill(password)
        await page.get_by_role("button", name="Sign in").click()

    await sign_in("admin", admin_password)
    await page.get_by_role("link", name="Listening before funding").click()
    await page.get_by_label("Your comment").fill("Thank you, @amina: we will try this.")
    await page.get_by_role("button", name="Post comment").click()
    comment = page.locator(".comment").first
    assert await comment.get_by_role("link", name="@amina").get_attribute("href") == (
        base_url + "/users/amina"
    )
    await page.get_by_role("button", name="Sign out").click()

    await sign_in("amina", "a-good-password")
    await page.get_by_role("link", name="Notifications").click()
    assert await page.get_by_role("heading", level=1).inner_text() == "Notifications"
    assert await page.get_by_text("1 new since your last visit.").is_visible()
    item = page.locator(".notification.new")
    assert "admin @admin@127.0.0.1" in await item.inner_text()
    assert "mentioned you on Listening before funding" in await item.inner_text()
    assert "we will try this." in await item.inner_text()
    await item.get_by_role("link", name="Listening before funding").click()
    assert await page.get_by_role("heading", level=1).inner_text() == "Listening before funding"
    await page.get_by_role("link", name="Notifications").click()
    assert await page.get_by_text("Nothing new since your last visit.").is_visible()
