"""Which handles a comment's text mentions, and how a resolved one is linked."""

from __future__ import annotations

import pytest

from fediverse_stories.db.models import Actor
from fediverse_stories.services.mentions import MENTION, linked_line

HOST = "a.test"


@pytest.mark.parametrize(
    ("text", "handles"),
    [
        ("hi @alice@mastodon.social!", [("alice", "mastodon.social")]),
        ("@alice@host.example.", [("alice", "host.example")]),  # the full stop ends the sentence
        ("dev: @bob@127.0.0.1:8123, thanks", [("bob", "127.0.0.1:8123")]),
        ("@amina and @Bob_2", [("amina", None), ("Bob_2", None)]),
        ("mail x@example.org", []),  # an e-mail address is no mention
        ("see https://mastodon.social/@alice", []),  # nor a profile URL
        ("a=@b", []),
    ],
)
def test_mentions_are_found_as_mastodon_finds_them(
    text: str, handles: list[tuple[str, str | None]]
) -> None:
    assert [(m["user"], m["host"]) for m in MENTION.finditer(text)] == handles


def test_only_resolved_handles_are_linked_and_everything_else_is_escaped() -> None:
    alice = Actor(
        uri="https://m.example/users/alice", username="alice", url="https://m.example/@alice"
    )
    line = linked_line(
        '<b>@Alice@M.example</b> & "@nobody@m.example"', {"alice@m.example": alice}, HOST
    )
    assert line == (
        '&lt;b&gt;<span class="h-card" translate="no"><a href="https://m.example/@alice" '
        'class="u-url mention">@<span>alice</span></a></span>&lt;/b&gt; &amp; '
        "&quot;@nobody@m.example&quot;"
    )
