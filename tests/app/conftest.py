"""Fixtures of the app tier."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.databases import DatabaseTemplates


@pytest.fixture
async def operator_env(database_templates: DatabaseTemplates, tmp_path: Path) -> dict[str, str]:
    """The settings of a fresh, initialised instance at http://a.test, as an operator sets them."""
    url = await database_templates.new_database("http://a.test")
    return database_templates.settings_environ("http://a.test", url, tmp_path / "data")
