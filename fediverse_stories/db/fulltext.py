"""Full-text search over stories: SQLite FTS5 and PostgreSQL text search behind one query.

The index covers a story's title, summary and `search_text` (its body's words). Neither engine's
index can be described by the models' metadata, so migration 0010 makes them by hand and
`include_object` keeps autogenerate (and the drift test) from seeing them:
- SQLite: `stories_fts`, an FTS5 table with `stories` as its external content, kept in step by
  three triggers (a later migration that rebuilds `stories` in batch mode must remake them);
- PostgreSQL: `ix_stories_search`, a GIN index on the same words as a `tsvector`.
Both use no stemming and no stop words ('simple' / unicode61): stories come in many languages,
and a search for a word should find that word in any of them. Terms must all match.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import TextClause, text

FTS_TABLE = "stories_fts"
PG_INDEX = "ix_stories_search"

MAX_QUERY = 200
RANK_WITHIN = 1000  # PostgreSQL: a common word ranked over every story costs tens of ms
MAX_TERMS = 10
_WORD = re.compile(r"\w+")


# Written out whole (the names above, literally): nothing of a request is ever formatted in.
SQLITE_MATCHING = text(
    "SELECT s.id FROM stories_fts JOIN stories AS s ON s.id = stories_fts.rowid "
    "WHERE stories_fts MATCH :match AND s.deleted_at IS NULL AND s.visibility = 'public' "
    "ORDER BY rank, s.published_at DESC LIMIT :limit OFFSET :offset"
)
# plainto_tsquery ANDs the words and ignores any operator characters. ts_rank recomputes each
# row's tsvector, so only the newest RANK_WITHIN matches are ranked.
PG_MATCHING = text(
    "SELECT id FROM ("
    "SELECT id, to_tsvector('simple', title || ' ' || summary || ' ' || search_text) AS document,"
    " published_at FROM stories "
    "WHERE to_tsvector('simple', title || ' ' || summary || ' ' || search_text)"
    " @@ plainto_tsquery('simple', :words) "
    "AND deleted_at IS NULL AND visibility = 'public' "
    "ORDER BY published_at DESC LIMIT :rank_within) AS recent "
    "ORDER BY ts_rank(document, plainto_tsquery('simple', :words)) DESC, published_at DESC "
    "LIMIT :limit OFFSET :offset"
)


def include_object(
    obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
) -> bool:
    """Alembic's filter: the search index's tables and index are made by migration, not models."""
    return not (name and (name.startswith(FTS_TABLE) or name == PG_INDEX))


def terms(query: str) -> list[str]:
    """The words of a search, lower case, each once, at most MAX_TERMS: what both engines match
    (punctuation and operators are not syntax here, just separators)."""
    words = dict.fromkeys(word.lower() for word in _WORD.findall(query[:MAX_QUERY]))
    return list(words)[:MAX_TERMS]


def matching_ids(
    dialect: str, words: list[str], limit: int, offset: int
) -> tuple[TextClause, dict[str, Any]]:
    """A statement giving the ids of the public stories whose words include every one of
    `words`, best match first (then newest), and its parameters."""
    page = {"limit": limit, "offset": offset}
    if dialect == "sqlite":
        # Each word quoted: FTS5 reads it as a plain string, never as query syntax.
        match = " ".join('"' + word.replace('"', '""') + '"' for word in words)
        return SQLITE_MATCHING, {"match": match, **page}
    return PG_MATCHING, {"words": " ".join(words), "rank_within": RANK_WITHIN, **page}
