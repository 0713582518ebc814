"""Numbers people and peers type into URLs and forms: a clear 4xx, never a 500.

`str.isdigit` admits "²"; `int` refuses more than 4,300 digits; a database key refuses more than
64 bits (PostgreSQL says so with an error). Each of these was a server error somewhere before.
"""

from __future__ import annotations

import pytest

from tests.support.instances import Instance, csrf_from, sign_in

HUGE = "9" * 5000
PAST_64_BITS = "99999999999999999999"


@pytest.mark.parametrize("page", ["²", HUGE, PAST_64_BITS, "0", "-1"])
@pytest.mark.parametrize(
    "path", ["/users/admin/outbox", "/users/admin/followers", "/stories/{story}/replies"]
)
async def test_a_page_that_is_no_page_is_a_400(
    instance: Instance, story_id: int, path: str, page: str
) -> None:
    response = await instance.client.get(
        path.format(story=story_id),
        params={"page": page},
        headers={"Accept": "application/activity+json"},
    )
    assert response.status_code == 400, (path, page, response.status_code)


@pytest.mark.parametrize("page", ["²", HUGE, PAST_64_BITS])
async def test_a_search_page_that_is_no_page_is_the_first(instance: Instance, page: str) -> None:
    response = await instance.client.get("/search", params={"q": "x", "page": page})
    assert response.status_code == 200


@pytest.mark.parametrize("story", [HUGE, PAST_64_BITS])
async def test_an_id_past_any_key_is_a_404(instance: Instance, story: str) -> None:
    for path in (f"/stories/{story}", f"/network/{story}", f"/comments/{story}"):
        response = await instance.client.get(path)
        assert response.status_code == 404, (path, response.status_code)


@pytest.mark.parametrize("parent", ["²", HUGE, PAST_64_BITS])
async def test_a_reply_to_no_comment_is_a_plain_comment(
    instance: Instance, story_id: int, parent: str
) -> None:
    assert (await sign_in(instance, "admin", instance.admin_password)).status_code == 303
    page = await instance.client.get(f"/stories/{story_id}")
    response = await instance.client.post(
        f"/stories/{story_id}/comments",
        data={"content": "Hello.", "in_reply_to": parent, "csrf_token": csrf_from(page.text)},
    )
    assert response.status_code == 303, response.text


@pytest.fixture
async def story_id(instance: Instance) -> int:
    from fediverse_stories.services.accounts import get_account
    from fediverse_stories.services.stories import StoryDraft, create_story

    async with instance.ctx.sessions.begin() as session:
        admin = await get_account(session, "admin")
        draft = StoryDraft(title="A story", body_markdown="Text.")
        story = await create_story(session, instance.ctx, admin, draft)
        await session.flush()
        return story.id
