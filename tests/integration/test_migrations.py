"""The schema the code uses is exactly what the migrations build, on both backends."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from conductor.store import Store
from conductor.store.schema import metadata


def test_migrations_build_the_declared_schema(database_url: str) -> None:
    store = Store(database_url)
    store.migrate()
    store.migrate()  # a second run is a no-op, as at every restart
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    store.close()
    assert diff == [], f"schema differs from the migrations: {diff}"
