"""Fixtures shared by every tier: the database backend, migrated templates, running instances."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator

import pytest

from tests.support.databases import DatabaseTemplates, backend_name
from tests.support.instances import Instance, InstanceFactory


def pytest_report_header() -> str:
    return f"fediverse-stories test backend: {backend_name()}"


@pytest.fixture(scope="session")
def database_templates(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DatabaseTemplates]:
    templates = DatabaseTemplates(tmp_path_factory.mktemp("databases"))
    yield templates
    templates.close()


@pytest.fixture
async def instances(
    database_templates: DatabaseTemplates, tmp_path
) -> AsyncIterator[InstanceFactory]:
    """Start instances by base URL: `await instances.start("http://a.test")`."""
    factory = InstanceFactory(database_templates, tmp_path)
    try:
        yield factory
    finally:
        await factory.close()


@pytest.fixture
async def instance(instances: InstanceFactory) -> Instance:
    """One instance at http://a.test, initialised, lifespan entered."""
    return await instances.start("http://a.test")


@pytest.fixture(autouse=True)
def _no_stray_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # Tests build settings from explicit environs; the developer's own settings must not leak in.
    for name in list(os.environ):
        if name.startswith("FEDIVERSE_STORIES_") and name not in (
            "FEDIVERSE_STORIES_TEST_DATABASE_URL",
            "FEDIVERSE_STORIES_TEST_BACKEND",
            "FEDIVERSE_STORIES_REQUIRE_BROWSER",
        ):
            monkeypatch.delenv(name)
