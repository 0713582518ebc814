"""Reports from Mastodon: a Flag about one of our authors and their comment reaches moderators.

The Flag is shaped and signed as Mastodon sends one (ActivityPub::FlagSerializer): from its
instance actor, the reported account and posts as `object`, the reporter's words as `content`.
"""

from __future__ import annotations

import re

from sqlalchemy import func, select

from fediverse_stories.db.models import InboxActivity, Report, Role
from fediverse_stories.services import publishing
from fediverse_stories.services.stories import StoryDraft
from tests.federation.test_threads import AMINA, add_user, local_comment
from tests.support.instances import Instance, InstanceFactory, csrf_from, settle, sign_in
from tests.support.mastodon import BASE, INSTANCE_ACTOR, MastodonRemote


def flag(objects: list[str], content: str, number: int) -> dict[str, object]:
    return {
        "@context": "https://www.w3.org/ns/activitystreams",
        "id": f"{BASE}/0f3c9a5e-report-{number}",
        "type": "Flag",
        "actor": INSTANCE_ACTOR,
        "content": content,
        "object": objects,
    }


async def outcome(instance: Instance, activity_id: str) -> str | None:
    async with instance.ctx.sessions() as session:
        query = select(InboxActivity.outcome).where(InboxActivity.uri == activity_id)
        return (await session.execute(query)).scalar_one_or_none()


async def test_a_report_from_mastodon_reaches_moderators_who_resolve_it(
    instances: InstanceFactory,
) -> None:
    a = await instances.start("http://a.test")
    await add_user(a, "amina", Role.AUTHOR)
    await add_user(a, "bob")
    alice = MastodonRemote.register(instances)
    story = await publishing.publish(
        a.ctx, "amina", StoryDraft(title="Who sets the agenda?", body_markdown="Partners did.")
    )
    assert story.uri is not None
    said = await local_comment(a, "amina", story.uri, "Buy cheap followers at example.com!")

    reported = flag(
        [AMINA, said, f"{BASE}/users/alice/statuses/1"], "Spam <b>links</b> in replies", 1
    )
    assert (await alice.post("http://a.test/inbox", reported, as_instance=True)).status_code == 202
    nothing_ours = flag([f"{BASE}/users/alice"], "Not about a.test", 2)
    response = await alice.post("http://a.test/inbox", nothing_ours, as_instance=True)
    assert response.status_code == 202
    await settle(a)
    assert await outcome(a, reported["id"]) == "report recorded (2 of ours named)"  # type: ignore[arg-type]
    assert await outcome(a, nothing_ours["id"]) == "ignored: the report names nothing of ours"  # type: ignore[arg-type]
    async with a.ctx.sessions() as session:
        assert (await session.execute(select(func.count(Report.id)))).scalar_one() == 1

    # Members cannot see reports; moderators and admins can.
    assert (await sign_in(a, "bob", "a-good-password")).status_code == 303
    assert (await a.client.get("/admin/reports")).status_code == 403
    assert (await sign_in(a, "admin", a.admin_password)).status_code == 303
    page = await a.client.get("/admin/reports")
    assert page.status_code == 200
    assert "Open (1)" in page.text
    assert "@mastodon.test@mastodon.test" in page.text  # Mastodon reports as its server
    assert "Spam links in replies" in page.text  # the reporter's words, as plain text
    items = re.findall(r"<li>(\w+): <a href=\"([^\"]+)\">([^<]+)</a></li>", page.text)
    assert items == [
        ("account", "/users/amina", "@amina@a.test"),
        ("comment", f"/stories/{story.id}#comment-{said.rsplit('/', 1)[1]}",
         "@amina@a.test: Buy cheap followers at example.com!"),
    ]  # fmt: skip

    (action,) = re.findall(r'action="(/admin/reports/\d+/resolve)"', page.text)
    token = csrf_from(page.text)
    resolved = await a.client.post(action, data={"csrf_token": token})
    assert (resolved.status_code, resolved.headers["location"]) == (303, "/admin/reports")
    page = await a.client.get("/admin/reports")
    assert "No reports are open." in page.text and "resolved by admin" in page.text
    assert (await a.client.post(action, data={"csrf_token": token})).status_code == 409

    # Mastodon retrying the same Flag records nothing new.
    assert (await alice.post("http://a.test/inbox", reported, as_instance=True)).status_code == 202
    await settle(a)
    async with a.ctx.sessions() as session:
        assert (await session.execute(select(func.count(Report.id)))).scalar_one() == 1
