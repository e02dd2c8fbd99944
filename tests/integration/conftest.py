"""What the integration tests share: a migrated store on each database (`database_url` is
SQLite and PostgreSQL alike); modules that need a node in it define their own."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from conductor.store import Store


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    s = Store(database_url)
    s.migrate()
    yield s
    s.close()
