"""full-text search over stories: search_text, and the index of each engine

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03 08:00:00.000000

The index is not in the models' metadata (fediverse_stories/db/fulltext.py says why and what
keeps autogenerate from dropping it). The SQL here is written out, not imported: a migration
must not change when application code does.
"""
from __future__ import annotations

from collections.abc import Sequence
from html import unescape
from html.parser import HTMLParser

import sqlalchemy as sa
from alembic import op


revision: str = '0010'
down_revision: str | None = '0009'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = "title, summary, search_text"
SQLITE_UP = [
    "CREATE VIRTUAL TABLE stories_fts USING fts5(title, summary, search_text, "
    "content='stories', content_rowid='id', tokenize='unicode61 remove_diacritics 2')",
    f"CREATE TRIGGER stories_fts_insert AFTER INSERT ON stories BEGIN "
    f"INSERT INTO stories_fts(rowid, {COLUMNS}) VALUES (new.id, new.title, new.summary, new.search_text); END",
    f"CREATE TRIGGER stories_fts_delete AFTER DELETE ON stories BEGIN "
    f"INSERT INTO stories_fts(stories_fts, rowid, {COLUMNS}) "
    f"VALUES ('delete', old.id, old.title, old.summary, old.search_text); END",
    f"CREATE TRIGGER stories_fts_update AFTER UPDATE OF {COLUMNS} ON stories BEGIN "
    f"INSERT INTO stories_fts(stories_fts, rowid, {COLUMNS}) "
    f"VALUES ('delete', old.id, old.title, old.summary, old.search_text); "
    f"INSERT INTO stories_fts(rowid, {COLUMNS}) VALUES (new.id, new.title, new.summary, new.search_text); END",
    "INSERT INTO stories_fts(stories_fts) VALUES ('rebuild')",
]
SQLITE_DOWN = [
    "DROP TRIGGER stories_fts_update",
    "DROP TRIGGER stories_fts_delete",
    "DROP TRIGGER stories_fts_insert",
    "DROP TABLE stories_fts",
]
PG_UP = [
    "CREATE INDEX ix_stories_search ON stories USING gin "
    "(to_tsvector('simple', title || ' ' || summary || ' ' || search_text))",
]
PG_DOWN = ["DROP INDEX ix_stories_search"]


class _Text(HTMLParser):
    """The words of stored HTML, for the rows that predate search_text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def _words(html: str) -> str:
    parser = _Text()
    parser.feed(html)
    parser.close()
    return " ".join(unescape(" ".join(parser.parts)).split())[:100_000]


def upgrade() -> None:
    with op.batch_alter_table('stories', schema=None) as batch_op:
        batch_op.add_column(sa.Column('search_text', sa.Text(), nullable=False, server_default=''))
    connection = op.get_bind()
    stories = sa.table('stories', sa.column('id', sa.Integer()), sa.column('content_html', sa.Text()), sa.column('search_text', sa.Text()))
    rows = connection.execute(sa.select(stories.c.id, stories.c.content_html)).all()
    for story_id, html in rows:
        connection.execute(stories.update().where(stories.c.id == story_id).values(search_text=_words(html or '')))
    for statement in SQLITE_UP if connection.dialect.name == 'sqlite' else PG_UP:
        op.execute(statement)


def downgrade() -> None:
    connection = op.get_bind()
    for statement in SQLITE_DOWN if connection.dialect.name == 'sqlite' else PG_DOWN:
        op.execute(statement)
    with op.batch_alter_table('stories', schema=None) as batch_op:
        batch_op.drop_column('search_text')
