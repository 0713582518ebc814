"""The moderation page: who may use it, CSRF, and approve / reject / remove of single comments."""

from __future__ import annotations

from sqlalchemy import select

from fediverse_stories.context import Context
from fediverse_stories.db.models import Account, Actor, Comment, CommentState, Role, Story
from fediverse_stories.services.accounts import create_account
from fediverse_stories.services.stories import StoryDraft, create_story
from tests.support.instances import Instance, csrf_from, sign_in

PASSWORD = "a-good-password"


async def add_user(instance: Instance, name: str, role: Role) -> None:
    async with instance.ctx.sessions.begin() as session:
        await create_account(session, instance.ctx, name, PASSWORD, role=role)


async def comment_on_new_story(
    ctx: Context,
    *,
    state: CommentState = CommentState.PENDING,
    html: str = "<p>A thoughtful reply.</p>",
    author_name: str = "Rita",
    title: str = "Listening first",
) -> tuple[str, int]:
    """A local story by admin with one remote reply in `state`: (the comment's URL, its id)."""
    async with ctx.sessions.begin() as session:
        admin = (
            await session.execute(select(Account).where(Account.username == "admin"))
        ).scalar_one()
        draft = StoryDraft(title=title, body_markdown="Hi.")
        story = await create_story(session, ctx, admin, draft)
        remote = (
            await session.execute(
                select(Actor).where(Actor.uri == "https://remote.example/users/rita")
            )
        ).scalar_one_or_none()
        if remote is None:
            remote = Actor(
                uri="https://remote.example/users/rita",
                local=False,
                type="Person",
                username="rita",
                domain="remote.example",
                display_name=author_name,
                inbox_url="https://remote.example/users/rita/inbox",
                created_at=ctx.clock(),
            )
            session.add(remote)
            await session.flush()
        count = len(list((await session.execute(select(Comment.id))).scalars()))
        uri = f"https://remote.example/users/rita/statuses/{count + 1}"
        comment = Comment(
            uri=uri,
            local=False,
            story_id=story.id,
            in_reply_to=str(story.uri),
            author_id=remote.id,
            content_html=html,
            state=state,
            published_at=ctx.clock(),
        )
        session.add(comment)
        await session.flush()
        return uri, comment.id


async def state_of(instance: Instance, comment_id: int) -> CommentState:
    async with instance.ctx.sessions() as session:
        comment = await session.get(Comment, comment_id)
        assert comment is not None
        return comment.state


async def moderate(instance: Instance, comment_id: int, action: str) -> int:
    """Press a button on the page as a signed-in moderator would; the response status."""
    page = await instance.client.get("/admin/comments")
    assert page.status_code == 200, page.text
    response = await instance.client.post(
        f"/admin/comments/{comment_id}/{action}", data={"csrf_token": csrf_from(page.text)}
    )
    if response.status_code == 303:
        assert response.headers["location"] == "/admin/comments"
    return response.status_code


async def test_anonymous_visitors_are_sent_to_sign_in(instance: Instance) -> None:
    _, comment_id = await comment_on_new_story(instance.ctx)
    page = await instance.client.get("/admin/comments")
    assert page.status_code == 303
    assert page.headers["location"] == "/login?next=/admin/comments"
    await instance.client.get("/login")
    posted = await instance.client.post(f"/admin/comments/{comment_id}/approve")
    assert posted.status_code == 403  # no CSRF token: refused before anything else
    assert await state_of(instance, comment_id) == CommentState.PENDING


async def test_members_and_authors_get_403(instance: Instance) -> None:
    _, comment_id = await comment_on_new_story(instance.ctx)
    for name, role in (("mel", Role.MEMBER), ("ada", Role.AUTHOR)):
        await add_user(instance, name, role)
        assert (await sign_in(instance, name, PASSWORD)).status_code == 303
        page = await instance.client.get("/admin/comments")
        assert page.status_code == 403
        assert "A thoughtful reply." not in page.text
        token = csrf_from((await instance.client.get("/")).text)
        posted = await instance.client.post(
            f"/admin/comments/{comment_id}/approve", data={"csrf_token": token}
        )
        assert posted.status_code == 403
        assert await state_of(instance, comment_id) == CommentState.PENDING


async def test_moderator_sees_held_comments_escaped_with_their_story(instance: Instance) -> None:
    _, comment_id = await comment_on_new_story(
        instance.ctx,
        html="<p>Held <strong>reply</strong></p>",
        author_name="<script>alert(1)</script>Rita",
        title="Listening <first>",
    )
    await add_user(instance, "mona", Role.MODERATOR)
    await sign_in(instance, "mona", PASSWORD)
    page = await instance.client.get("/admin/comments")
    assert page.status_code == 200
    text = page.text
    assert "<p>Held <strong>reply</strong></p>" in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;Rita" in text and "<script>" not in text
    assert "@rita@remote.example" in text
    assert '<a href="/stories/1">Listening &lt;first&gt;</a>' in text
    assert f'action="/admin/comments/{comment_id}/approve"' in text
    assert f'action="/admin/comments/{comment_id}/reject"' in text


async def test_approve_without_a_csrf_token_is_refused(instance: Instance) -> None:
    _, comment_id = await comment_on_new_story(instance.ctx)
    await sign_in(instance, "admin", instance.admin_password)
    missing = await instance.client.post(f"/admin/comments/{comment_id}/approve")
    assert missing.status_code == 403
    forged = await instance.client.post(
        f"/admin/comments/{comment_id}/approve", data={"csrf_token": "forged"}
    )
    assert forged.status_code == 403
    assert await state_of(instance, comment_id) == CommentState.PENDING


async def test_approve_shows_the_comment(instance: Instance) -> None:
    _, comment_id = await comment_on_new_story(instance.ctx)
    await add_user(instance, "mona", Role.MODERATOR)
    await sign_in(instance, "mona", PASSWORD)
    assert await moderate(instance, comment_id, "approve") == 303
    assert await state_of(instance, comment_id) == CommentState.VISIBLE
    story_page = await instance.client.get("/stories/1")
    assert "A thoughtful reply." in story_page.text
    # It has left the queue and is now among the shown comments, with a Remove button.
    page = await instance.client.get("/admin/comments")
    assert f'action="/admin/comments/{comment_id}/approve"' not in page.text
    assert f'action="/admin/comments/{comment_id}/remove"' in page.text
    # Approving twice is refused, and changes nothing.
    assert await moderate(instance, comment_id, "approve") == 409
    assert await state_of(instance, comment_id) == CommentState.VISIBLE


async def test_reject_refuses_the_comment(instance: Instance) -> None:
    _, comment_id = await comment_on_new_story(instance.ctx)
    await sign_in(instance, "admin", instance.admin_password)
    assert await moderate(instance, comment_id, "reject") == 303
    assert await state_of(instance, comment_id) == CommentState.REJECTED
    assert "A thoughtful reply." not in (await instance.client.get("/stories/1")).text
    assert "A thoughtful reply." not in (await instance.client.get("/admin/comments")).text


async def test_remove_takes_a_shown_comment_down(instance: Instance) -> None:
    _, comment_id = await comment_on_new_story(instance.ctx, state=CommentState.VISIBLE)
    await sign_in(instance, "admin", instance.admin_password)
    assert "A thoughtful reply." in (await instance.client.get("/stories/1")).text
    assert await moderate(instance, comment_id, "remove") == 303
    assert await state_of(instance, comment_id) == CommentState.REMOVED
    assert "A thoughtful reply." not in (await instance.client.get("/stories/1")).text
    assert await moderate(instance, comment_id, "remove") == 409


async def test_an_unknown_comment_is_404(instance: Instance) -> None:
    await sign_in(instance, "admin", instance.admin_password)
    assert await moderate(instance, 999, "approve") == 404


async def test_only_our_own_threads_are_listed(instance: Instance) -> None:
    """A held comment on a story we only carry is its home's to moderate, not ours."""
    await comment_on_new_story(instance.ctx, state=CommentState.PENDING)
    async with instance.ctx.sessions.begin() as session:
        story = await session.get(Story, 1)
        assert story is not None
        story.local = False
    await sign_in(instance, "admin", instance.admin_password)
    page = await instance.client.get("/admin/comments")
    assert "A thoughtful reply." not in page.text
    assert "No comments are waiting." in page.text
