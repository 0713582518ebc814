"""The public pages, as a browser without JavaScript sees them."""

from __future__ import annotations

import re

from fediverse_stories.db.models import Role, Visibility
from fediverse_stories.services.accounts import create_account
from fediverse_stories.services.stories import StoryDraft, create_story
from tests.support.instances import Instance


async def publish(instance: Instance, author: str = "amina", **fields: object) -> int:
    ctx = instance.ctx
    async with ctx.sessions.begin() as session:
        from fediverse_stories.services.accounts import get_account
        from fediverse_stories.services.errors import NotFound

        try:
            account = await get_account(session, author)
        except NotFound:
            account = await create_account(
                session, ctx, author, "a-good-password", role=Role.AUTHOR, display_name="Amina Y."
            )
        draft = StoryDraft(
            title=str(fields.get("title", "Listening first")),
            body_markdown=str(
                fields.get("body", "We *listened* before we funded.\n\n- one\n- two")
            ),
            summary=str(fields.get("summary", "How a partnership started with listening.")),
            tags=list(fields.get("tags", ["partnership", "Localisation"])),  # type: ignore[call-overload]
            visibility=fields.get("visibility", Visibility.PUBLIC),  # type: ignore[arg-type]
        )
        story = await create_story(session, ctx, account, draft)
        return story.id


async def test_home_lists_the_latest_public_stories(instance: Instance) -> None:
    empty = await instance.client.get("/")
    assert empty.status_code == 200
    assert "No stories yet." in empty.text
    await publish(instance, title="First story")
    await publish(instance, title="Second story")
    await publish(instance, title="Only for followers", visibility=Visibility.FOLLOWERS)
    page = await instance.client.get("/")
    assert page.status_code == 200
    assert page.text.index("Second story") < page.text.index("First story")
    assert "Only for followers" not in page.text


async def test_story_page_shows_title_author_date_tags_body_and_comments_area(
    instance: Instance,
) -> None:
    story_id = await publish(instance)
    page = await instance.client.get(f"/stories/{story_id}")
    assert page.status_code == 200
    html = page.text
    assert "<h1>Listening first</h1>" in html
    assert "Amina Y." in html and "@amina@a.test" in html
    assert "#partnership" in html and "#Localisation" in html
    assert "<em>listened</em>" in html
    assert 'id="comments-heading"' in html and "No comments yet." in html
    assert re.search(r'<time datetime="\d{4}-\d\d-\d\dT', html)


async def test_story_page_carries_alternate_link_opengraph_and_fediverse_creator(
    instance: Instance,
) -> None:
    story_id = await publish(instance)
    html = (await instance.client.get(f"/stories/{story_id}")).text
    uri = f"http://a.test/stories/{story_id}"
    assert f'<link rel="alternate" type="application/activity+json" href="{uri}">' in html
    assert '<meta property="og:title" content="Listening first">' in html
    assert f'<meta property="og:url" content="{uri}">' in html
    assert '<meta name="fediverse:creator" content="amina@a.test">' in html


async def test_author_profile_lists_their_stories_with_alternate_link(instance: Instance) -> None:
    await publish(instance, title="Profile story")
    page = await instance.client.get("/users/amina")
    assert page.status_code == 200
    assert "Profile story" in page.text
    assert (
        '<link rel="alternate" type="application/activity+json" href="http://a.test/users/amina">'
        in page.text
    )
    assert '<meta name="fediverse:creator" content="amina@a.test">' in page.text
    assert (await instance.client.get("/users/nobody")).status_code == 404


async def test_markdown_raw_html_is_not_rendered(instance: Instance) -> None:
    body = (
        "Hello <script>alert(1)</script> [x](javascript:alert(2)) "
        '<img src=x onerror="alert(3)">\n\n<iframe src="https://evil.example"></iframe>'
    )
    story_id = await publish(
        instance, title="<b>Bold</b> title", body=body, summary='"><script>alert(4)</script>'
    )
    html = (await instance.client.get(f"/stories/{story_id}")).text
    assert "<script>" not in html
    assert "<iframe" not in html and "<img src=x" not in html
    assert 'href="javascript:' not in html
    assert "&lt;b&gt;Bold&lt;/b&gt; title" in html
    assert 'content="&#34;&gt;&lt;script&gt;' in html


async def test_followers_only_and_missing_stories_are_404(instance: Instance) -> None:
    hidden = await publish(instance, visibility=Visibility.FOLLOWERS)
    assert (await instance.client.get(f"/stories/{hidden}")).status_code == 404
    assert (await instance.client.get("/stories/999999")).status_code == 404


async def test_healthz_answers_200_when_the_database_is_reachable(instance: Instance) -> None:
    response = await instance.client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_pages_send_security_headers(instance: Instance) -> None:
    response = await instance.client.get("/")
    assert "default-src 'none'" in response.headers["content-security-policy"]
    assert response.headers["x-content-type-options"] == "nosniff"


async def test_a_hashtag_links_to_its_page_of_stories_here_and_from_the_network(
    instance: Instance,
) -> None:
    from tests.app.test_search import from_the_network

    tagged = await publish(instance, title="Tagged here", tags=["Localisation"])
    await publish(instance, title="Other tag", tags=["funding"])
    await publish(instance, title="Hidden", tags=["localisation"], visibility=Visibility.FOLLOWERS)
    await from_the_network(instance, "<p>Our take on #localisation.</p>", ("LOCALISATION",))

    # The Article's Hashtag points at a page that answers, whatever the case of the link.
    article = await instance.client.get(
        f"/stories/{tagged}", headers={"Accept": "application/activity+json"}
    )
    (hashtag,) = article.json()["tag"]
    assert hashtag["href"] == "http://a.test/tags/localisation"
    story_page = await instance.client.get(f"/stories/{tagged}")
    assert '<a href="/tags/localisation" rel="tag">#Localisation</a>' in story_page.text
    for path in ("/tags/localisation", "/tags/LocalISATION"):
        page = await instance.client.get(path)
        assert page.status_code == 200
        assert "<h1>#localisation</h1>" in page.text
        assert "Tagged here" in page.text and "Our take on #localisation." in page.text
        assert "Other tag" not in page.text and "Hidden" not in page.text
    nothing = await instance.client.get("/tags/nothing-here")
    assert nothing.status_code == 200
    assert "No story here is tagged #nothing-here yet." in nothing.text
    assert (await instance.client.get("/tags/" + "x" * 101)).status_code == 404
