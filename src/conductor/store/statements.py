"""The store's pre-compiled statements: built and compiled by SQLAlchemy once per database,
then run by the driver alone.

SQLAlchemy Core spends about 100 µs of CPU per statement on building, caching and processing;
the driver needs a few. The statements that run for every job (submit, placement, claim, end,
the change feed) therefore go through here. A statement is known by its *builder*, the
module-level function that makes it, called as `build(dialect_name, *args)` with named
`bindparam`s; one `Statements` per engine keeps each compiled once. Values pass through the
columns' own bind and result processors, so rows look exactly as Core would write and read them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ARRAY, BigInteger, Table, bindparam, func, insert, literal_column, select
from sqlalchemy.engine import Dialect

# (dialect name, *args) -> a SQLAlchemy statement with named bindparams.
Builder = Callable[..., Any]
Processor = Callable[[Any], Any]


@dataclass(frozen=True, slots=True)
class Compiled:
    """One statement compiled for one database: its SQL and how to bind and read values."""

    sql: str
    order: list[str] | None  # bind names in order, for positional paramstyles (SQLite)
    defaults: dict[str, Any]  # literal values of the statement (`state == 'RUNNING'`)
    binds: dict[str, Processor | None]
    results: list[Processor | None]
    processes_results: bool

    def parameters(self, params: Mapping[str, Any]) -> list[Any] | dict[str, Any]:
        values = {**self.defaults, **params}
        values = {k: (v if (p := self.binds.get(k)) is None else p(v)) for k, v in values.items()}
        return [values[name] for name in self.order] if self.order is not None else values


class Statements:
    """The cache of compiled statements of one engine, keyed by (builder, builder arguments)."""

    def __init__(self, dialect: Dialect) -> None:
        self._dialect = dialect
        self._compiled: dict[tuple[Builder, tuple[Hashable, ...]], Compiled] = {}
        self._native_dialect: Dialect | None = None
        self._native: dict[tuple[Builder, tuple[Hashable, ...]], Compiled] = {}

    def get(self, build: Builder, *args: Hashable) -> Compiled:
        key = (build, args)
        compiled = self._compiled.get(key)
        if compiled is None:
            compiled = self._compiled.setdefault(key, self._compile(build(self._dialect.name, *args), self._dialect))
        return compiled

    def native(self, build: Builder, *args: Hashable) -> Compiled:
        """PostgreSQL: `build`'s statement with the server's own placeholders ($1, $2...), its
        parameters a list, for a `psycopg.RawCursor`.

        psycopg rewrites `%(name)s` placeholders into `$n` at every execution of a statement
        longer than 4 KB or with over 50 parameters (it caches only the rewriting of shorter
        ones): a batch of submissions is one INSERT of 38 parameters a job, and rewriting it
        was about a third of the server's CPU per submission under a burst."""
        key = (build, args)
        compiled = self._native.get(key)
        if compiled is None:
            if self._native_dialect is None:
                self._native_dialect = type(self._dialect)(paramstyle="numeric_dollar")  # type: ignore[call-arg]
            statement = build(self._dialect.name, *args)
            compiled = self._native.setdefault(key, self._compile(statement, self._native_dialect))
        return compiled

    def _compile(self, statement: Any, dialect: Dialect) -> Compiled:
        compiled = statement.compile(dialect=dialect)
        # Literal values of the statement are anonymous binds that carry their value.
        defaults = {name: bind.effective_value for name, bind in compiled.binds.items() if not bind.required}
        binds = {name: bind.type.dialect_impl(dialect).bind_processor(dialect) for name, bind in compiled.binds.items()}
        order = list(compiled.positiontup) if compiled.positional else None
        results = result_processors(dialect, statement)
        return Compiled(
            compiled.string, order, defaults, binds, results, any(p is not None for p in results)
        )

    def rows(self, cursor: Any, build: Builder, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        """Rows of the SELECT `build` makes, with `params` bound."""
        compiled = self.get(build)
        cursor.execute(compiled.sql, compiled.parameters(params))
        rows: list[tuple[Any, ...]] = cursor.fetchall()
        if compiled.processes_results:
            processors = compiled.results
            rows = [tuple(v if p is None else p(v) for p, v in zip(processors, row, strict=True)) for row in rows]
        return rows

    def driver_rows(self, cursor: Any, build: Builder, params: Mapping[str, Any]) -> Iterator[tuple[Any, ...]]:
        """Rows of the SELECT `build` makes as the driver returns them, one at a time, to be read
        before `cursor` closes: for reads so large (the scheduler's backlog, 100,000 rows) that
        the caller converts each row itself and keeps only the result.

        No result processor runs (on SQLite a DateTime is still its text, a Boolean 0 or 1):
        the caller converts the few values it needs, only when present. And the rows are not
        first gathered in a list: each can go as soon as it is converted, so that 100,000 row
        tuples never live at once, for the garbage collector to traverse again and again.
        """
        compiled = self.get(build)
        cursor.execute(compiled.sql, compiled.parameters(params))
        return iter(cursor)

    def execute_many(self, cursor: Any, build: Builder, rows: Sequence[Mapping[str, Any]]) -> None:
        """The INSERT/UPDATE `build` makes, for each of `rows`, in one executemany."""
        if not rows:
            return
        compiled = self.get(build)
        cursor.executemany(compiled.sql, [compiled.parameters(row) for row in rows])

    def insert_many(self, cursor: Any, table: Table, rows: Sequence[Mapping[str, Any]]) -> list[int]:
        """INSERT each of `rows` (all naming the same columns) into `table`, pipelined in one
        executemany (PostgreSQL: one round trip); the new rows' ids, in order."""
        compiled = self.get(insert_returning_id, table, tuple(rows[0]))
        cursor.executemany(compiled.sql, [compiled.parameters(row) for row in rows], returning=True)
        ids = []
        while True:
            ids.append(int(cursor.fetchone()[0]))
            if not cursor.nextset():
                return ids

    def insert(self, cursor: Any, table: Table, values: Mapping[str, Any]) -> int:
        """INSERT `values` (the columns they name) into `table`; the new row's id."""
        compiled = self.get(insert_returning_id, table, tuple(values))
        cursor.execute(compiled.sql, compiled.parameters(values))
        return int(cursor.fetchone()[0])


def insert_returning_id(_dialect: str, table: Table, keys: tuple[str, ...]) -> Any:
    return insert(table).values({k: bindparam(k) for k in keys}).returning(table.c.id)


def result_processors(dialect: Dialect, statement: Any) -> list[Processor | None]:
    """What SQLAlchemy does to the driver's value of each column `statement` selects when it
    reads it (None: nothing; on SQLite a DateTime's text is parsed, a Boolean's 0/1 made bool)."""
    return [
        c.type.dialect_impl(dialect).result_processor(dialect, None)
        for c in getattr(statement, "selected_columns", ())
    ]


def id_in(dialect: str, column: Any) -> Any:
    """`column IN (:ids)` for a pre-compiled statement, whatever the number of ids: a JSON
    array unfolded by json_each on SQLite, an array with = ANY on PostgreSQL. `id_list` makes
    the value."""
    if dialect == "sqlite":
        return column.in_(select(literal_column("value")).select_from(func.json_each(bindparam("ids"))))
    return column == func.any(bindparam("ids", type_=ARRAY(BigInteger)))


def id_list(dialect: str, ids: Iterable[int]) -> Any:
    """The value of `id_in`'s :ids."""
    return json.dumps([int(i) for i in ids]) if dialect == "sqlite" else [int(i) for i in ids]


def for_update(dialect: str, query: Any, *, skip_locked: bool = False) -> Any:
    """`query` locking its rows on PostgreSQL (SQLite has one writer: nothing to lock)."""
    return query.with_for_update(skip_locked=skip_locked) if dialect == "postgresql" else query
