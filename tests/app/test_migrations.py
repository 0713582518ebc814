"""The migrations are the only way the schema is made: they must match the models exactly."""

from __future__ import annotations

from sqlalchemy import Column, MetaData, String

from fediverse_stories.db.engine import make_engine
from fediverse_stories.db.migrate import is_current, migrate, schema_drift
from fediverse_stories.db.models import Base
from tests.support.databases import DatabaseTemplates


async def migrated_engine(database_templates: DatabaseTemplates):  # type: ignore[no-untyped-def]
    url = await database_templates.empty_database()
    engine = make_engine(url)
    assert not await is_current(engine)
    assert await migrate(engine) is True
    assert await migrate(engine) is False  # idempotent
    assert await is_current(engine)
    return engine


async def test_autogenerate_finds_no_difference_between_models_and_migrations(
    database_templates: DatabaseTemplates,
) -> None:
    engine = await migrated_engine(database_templates)
    try:
        async with engine.connect() as connection:
            drift = await connection.run_sync(schema_drift, Base.metadata)
    finally:
        await engine.dispose()
    assert drift == [], f"models and migrations differ; add a migration: {drift}"


async def test_drift_check_fails_when_a_model_changes_without_a_migration(
    database_templates: DatabaseTemplates,
) -> None:
    # The same models plus one column no migration creates: the check must see it.
    changed = MetaData(naming_convention=Base.metadata.naming_convention)
    for table in Base.metadata.sorted_tables:
        copy = table.to_metadata(changed)
        if table.name == "stories":
            copy.append_column(Column("reading_minutes", String(10)))
    engine = await migrated_engine(database_templates)
    try:
        async with engine.connect() as connection:
            drift = await connection.run_sync(schema_drift, changed)
    finally:
        await engine.dispose()
    assert [(d[0], d[2], d[3].name) for d in drift] == [
        ("add_column", "stories", "reading_minutes")
    ]
