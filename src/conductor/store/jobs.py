"""What the API and the job services read and write about jobs: submission, the per-user
count, node shapes, one job, listings and pages, events, array tasks, statistics and the node
listing. The actions on existing jobs (cancel, hold, requeue, update, signal) are in `control`."""

from __future__ import annotations

import functools
from collections.abc import Collection, Iterator, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ARRAY,
    BigInteger,
    Connection,
    Integer,
    Text,
    and_,
    any_,
    bindparam,
    case,
    cast,
    false,
    func,
    insert,
    literal,
    null,
    or_,
    select,
    true,
    union_all,
    update,
)
from sqlalchemy.sql.elements import ColumnElement

from conductor.domain.cpuset import parse_cpu_list
from conductor.domain.job import Job
from conductor.domain.states import Reason
from conductor.scheduler.policy import NodeView
from conductor.store.allocations import Allocations, is_live
from conductor.store.engine import StoreError, aware, utcnow
from conductor.store.groupcommit import GroupCommit
from conductor.store.records import (
    JobEvent,
    KeyedSubmission,
    NodeDrain,
    NodeInfo,
    Stats,
    SubmissionKey,
    event_from_row,
    job_from_row,
    jobs_from_rows,
    partial_jobs,
)
from conductor.store.schema import SUBMISSION_KEY_COLUMNS, job_events, jobs, nodes
from conductor.store.statements import result_processors
from conductor.store.transitions import PENDING, RUNNING

# Arithmetic runs per INSERT ... SELECT (three bound parameters each).
_ARRAY_RUNS_CHUNK = 2_000
# Jobs per statement of `_submit_statement` (about 40 bound parameters each).
_SUBMIT_CHUNK = 64
# Columns the tasks of an array do not share: each its own, or only on the first task.
_PER_TASK = frozenset({"array_task_id", "array_job_id"}) | SUBMISSION_KEY_COLUMNS
_KEY_INDEX = "ix_jobs_submit_key"  # schema.py: unique on (user_name, submit_key)


class SubmitKeyTaken(StoreError):
    """A submission's Idempotency-Key that its user already used: nothing of it was stored. The
    job that holds the key is `submitted_with(user, key)`."""


class JobQueries(Allocations):
    # ------------------------------------------------------------- submission
    def submit(self, rows: Sequence[dict[str, Any]], *, key: SubmissionKey | None = None) -> list[int]:
        """Insert new PENDING jobs (one, or the tasks of an array) in one transaction.

        For an array, every task's `array_job_id` becomes the id of its first task, as in Slurm.

        `key`: the submission's Idempotency-Key and its request's digest, stored on the first
        row (the job the submission is known by, an array's first task). The unique index on
        (user, key) decides between submissions racing with one key, on every path (alone, in
        a savepoint of batched_writes, in a group commit): the loser stores nothing and raises
        SubmitKeyTaken, and its caller answers with the winner's jobs (`submitted_with`).
        """
        if key is None:
            return self._submit(rows, None)
        try:
            return self._submit(rows, {"submit_key": key.key, "submit_digest": key.digest})
        except Exception as exc:
            if _key_taken(exc):
                user = rows[0].get("user_name") if rows else None
                raise SubmitKeyTaken(f"user '{user}' already submitted with this Idempotency-Key") from exc
            raise

    def submitted_with(self, user_name: str, key: str) -> KeyedSubmission | None:
        """The submission `user_name` made with Idempotency-Key `key`: its request's digest and
        its job ids (an array's tasks in id order, as its answer listed them); None if there is
        none (never made, or its job purged). From the partial unique index, one look-up."""
        with self._raw_read() as cursor:
            found = self._query(cursor, _keyed_job, user_name=user_name, submit_key=key)
            if not found:
                return None
            job_id, digest, task = found[0]
            if task is None:
                return KeyedSubmission(str(digest), [int(job_id)], array=False)
            tasks = [int(row[0]) for row in self._query(cursor, _array_tasks, array_job_id=job_id)]
        return KeyedSubmission(str(digest), tasks, array=True)

    def _submit(self, rows: Sequence[dict[str, Any]], keyed: dict[str, str] | None) -> list[int]:
        now = utcnow()
        ids: list[int] = []
        prepared = []
        for row in rows:
            values = dict(row)
            values.setdefault("submit_time", now)
            values.setdefault("eligible_time", values.get("begin_time") or now)
            values["state"] = PENDING
            values.setdefault("reason", Reason.NONE.value)
            prepared.append(values)
        if not prepared:
            return []
        if keyed is not None:
            prepared[0].update(keyed)  # on the first row alone: the unique index holds it once
        if len(prepared) == 1 and prepared[0].get("array_task_id") is None:
            # One plain job (nearly every REST or sbatch submission): the fast path. On
            # PostgreSQL, concurrent ones share a transaction (groupcommit.py).
            values = prepared[0]
            if self.dialect == "postgresql":
                return [self._group_commit.submit(values)]
            with self._raw_write() as cursor:
                job_id = self._insert(cursor, jobs, values)
                event_row = {"job_id": job_id, "time": now, "from_state": None, "to_state": PENDING, "reason": "submit"}
                self._insert(cursor, job_events, event_row)
            return [job_id]
        with self._write() as conn:
            first = conn.execute(insert(jobs).values(**prepared[0]).returning(jobs.c.id)).scalar_one()
            ids.append(first)
            if prepared[0].get("array_task_id") is not None:
                conn.execute(update(jobs).where(jobs.c.id == first).values(array_job_id=first))
                if len(prepared) > 1:
                    if _differ_only_in_task(prepared):
                        _copy_array_tasks(conn, first, [v["array_task_id"] for v in prepared[1:]])
                    else:
                        for values in prepared[1:]:
                            values["array_job_id"] = first
                        conn.execute(insert(jobs), prepared[1:])
                    ids = [
                        r[0]
                        for r in conn.execute(
                            select(jobs.c.id).where(jobs.c.array_job_id == first).order_by(jobs.c.id)
                        )
                    ]
                # The events of all tasks in one statement, without a Python row per task.
                conn.execute(
                    insert(job_events).from_select(
                        ["job_id", "time", "from_state", "to_state", "reason"],
                        select(
                            jobs.c.id,
                            literal(now, job_events.c.time.type),
                            null(),
                            literal(PENDING, job_events.c.to_state.type),
                            literal("submit", job_events.c.reason.type),
                        ).where(jobs.c.array_job_id == first),
                    )
                )
                return ids
            else:
                for values in prepared[1:]:
                    ids.append(conn.execute(insert(jobs).values(**values).returning(jobs.c.id)).scalar_one())
            conn.execute(
                insert(job_events),
                [{"job_id": i, "time": now, "from_state": None, "to_state": PENDING, "reason": "submit"} for i in ids],
            )
        return ids

    @functools.cached_property
    def _group_commit(self) -> GroupCommit:
        return GroupCommit(self._submit_batch)

    def _submit_batch(self, rows: Sequence[dict[str, Any]]) -> list[int]:
        """Plain jobs of several submitters, with their submit events, in one transaction
        (PostgreSQL): their ids, in order.

        Rows naming the same columns (nearly always all of them) go in one statement, sent with
        the connection in autocommit: the statement is the transaction, one round trip in all.
        A transaction with BEGIN, an INSERT per table and COMMIT took three, and as many calls
        through the driver, which cost the server's CPU more than the database's."""
        order = list(range(len(rows)))
        first = tuple(rows[0]) if rows else ()
        keyed = sum(1 for values in rows if values.get("submit_key") is not None)
        if keyed > 1 or any(tuple(values) != first for values in rows):
            # Rows naming the same columns together, and keys in one order in every batch: two
            # batches holding the same two keys, inserted in opposite orders, would each wait on
            # the other's entry in the unique index (a deadlock that PostgreSQL breaks by failing
            # one batch). In one order, the second batch waits for the first and goes on.
            order.sort(key=lambda index: _insert_order(rows[index]))
        runs: list[list[int]] = []  # consecutive rows of `order` naming the same columns
        for index in order:
            if runs and len(runs[-1]) < _SUBMIT_CHUNK and tuple(rows[runs[-1][0]]) == tuple(rows[index]):
                runs[-1].append(index)
            else:
                runs.append([index])
        ids: list[int | None] = [None] * len(rows)
        if len(runs) == 1:
            with self._raw_autocommit() as cursor:
                for index, job_id in zip(order, self._insert_submitted(cursor, [rows[i] for i in order]), strict=True):
                    ids[index] = job_id
            return [int(i) for i in ids if i is not None]
        with self._raw_write() as cursor:
            for run in runs:
                for index, job_id in zip(run, self._insert_submitted(cursor, [rows[i] for i in run]), strict=True):
                    ids[index] = job_id
        return [int(i) for i in ids if i is not None]

    def _insert_submitted(self, cursor: Any, rows: Sequence[dict[str, Any]]) -> list[int]:
        """INSERT `rows` (naming the same columns) and their submit events in one statement
        (`_submit_statement`); their ids, in the order of `rows`."""
        import psycopg  # only here: this is PostgreSQL's path

        keys = tuple(rows[0])
        compiled = self._statements.native(_submit_statement, keys, len(rows))
        params = {f"{key}_{index}": value for index, row in enumerate(rows) for key, value in row.items()}
        with psycopg.RawCursor(cursor.connection) as raw:
            raw.execute(compiled.sql, compiled.parameters(params))
            returned = raw.fetchall()
        # The ids come from the sequence in the order of the VALUES list (as SQLAlchemy's own
        # "insertmanyvalues" relies on): sorted, they are the rows' in order, whatever the
        # order in which RETURNING hands them back.
        ids = sorted(int(row[0]) for row in returned)
        if len(ids) != len(rows):
            raise RuntimeError(f"{len(rows)} jobs submitted but {len(ids)} ids returned")
        return ids

    def count_pending(self, user_name: str) -> int:
        """PENDING jobs of one user (the per-user submission limit)."""
        query = select(func.count()).select_from(jobs).where(jobs.c.user_name == user_name, jobs.c.state == PENDING)
        with self._read() as conn:
            return int(conn.execute(query).scalar_one())

    def node_shapes(self) -> list[NodeView]:
        """Every node's size and partitions, without its load: what submission checks need.

        Cheaper than `node_views` (no scan of running jobs) because it runs on every submit.
        """
        with self._read() as conn:
            rows = list(conn.execute(select(nodes.c.name, nodes.c.cpu_ids, nodes.c.memory_mb, nodes.c.partitions)))
        return [
            NodeView(
                name=n.name,
                cpu_ids=tuple(parse_cpu_list(n.cpu_ids)),
                free_cpu_ids=[],
                memory_mb=n.memory_mb,
                free_memory_mb=0,
                partitions=frozenset(n.partitions.split(",")),
            )
            for n in rows
        ]

    # ------------------------------------------------------------------- reads
    def get_job(self, job_id: int) -> Job | None:
        with self._read() as conn:
            row = conn.execute(select(jobs).where(jobs.c.id == job_id)).first()
        return None if row is None else job_from_row(row._mapping)

    def list_jobs(
        self,
        *,
        states: Sequence[str] | None = None,
        users: Sequence[str] | None = None,
        names: Sequence[str] | None = None,
        partitions: Sequence[str] | None = None,
        job_ids: Sequence[int] | None = None,
        array_job_ids: Sequence[int] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        after: int | None = None,
        offset: int = 0,
        limit: int = 1000,
        with_script: bool = False,
        count: bool = True,
        columns: Collection[str] | None = None,
    ) -> tuple[list[Job], int]:
        """Matching jobs in id order, from the first id above `after` (keyset paging: a page
        costs the same wherever it starts), skipping `offset` of them, at most `limit`; and
        how many match in all, `after` aside (-1 unless `count`).

        `columns`: read only these (and `id`); every other field of the jobs returned is unset
        (reading it raises AttributeError), so they are only for a view that shows what those
        columns hold."""
        if columns is None:
            selected = [
                c
                for c in jobs.c
                if (with_script or c.name not in ("script", "environment")) and c.name not in SUBMISSION_KEY_COLUMNS
            ]
        else:
            # A submission's key is its submitter's: never listed (schema.SUBMISSION_KEY_COLUMNS).
            selected = [c for c in jobs.c if c.name == "id" or c.name in columns and c.name not in SUBMISSION_KEY_COLUMNS]
        # The state condition first: _page_query (on PostgreSQL) and _legs_since put legs in its place.
        conditions: list[ColumnElement[bool]] = []
        if states:
            # The states written into the statement, not bound: see _state.
            conditions.append(jobs.c.state.in_([_state(state) for state in states]))
        if users:
            conditions.append(jobs.c.user_name.in_(users))
        if names:
            conditions.append(jobs.c.name.in_(names))
        if partitions:
            conditions.append(jobs.c.partition.in_(partitions))
        if job_ids:
            conditions.append(or_(jobs.c.id.in_(job_ids), jobs.c.array_job_id.in_(job_ids)))
        if array_job_ids:
            conditions.append(jobs.c.array_job_id.in_(array_job_ids))
        if until is not None:
            conditions.append(jobs.c.submit_time <= until)
        # The conditions but the states and `since`, for the legs of _legs_since.
        others = conditions[1:] if states else conditions[:]
        if since is not None:
            # A job counts when it was alive at any point after `since`, as in sacct.
            conditions.append(or_(jobs.c.end_time.is_(None), jobs.c.end_time >= since))
        count_query = select(func.count()).select_from(jobs)
        if conditions:
            count_query = count_query.where(and_(*conditions))
        if after is not None:
            conditions.append(jobs.c.id > after)
            others.append(jobs.c.id > after)
        with self._read() as conn:
            # When no other condition filters the jobs that ended since, only the first of them
            # can be on the page.
            unfiltered = len(others) == (after is not None)
            legs = None if since is None else _legs_since(conn, since, after, states, offset + limit if unfiltered else 0)
            if legs is not None:
                query = _page_of_legs(selected, legs, others, self.dialect, offset, limit)
            else:
                query = _page_query(selected, conditions, states, self.dialect, offset, limit)
            result = conn.execute(query)
            if columns is None:
                found = jobs_from_rows(result.keys(), result)
            else:
                # The driver's rows as they are: each value is converted (SQLite's text
                # times parsed) only if a view reads it.
                processors = tuple(result_processors(self.engine.dialect, query))
                found = partial_jobs(tuple(result.keys()), processors, result.cursor.fetchall())
                result.close()
            total = int(conn.execute(count_query).scalar_one()) if count else -1
        return found, total

    def job_pages(self, *, page_size: int = 500, **filters: Any) -> Iterator[list[Job]]:
        """Every job matching `filters` (those of list_jobs), a page at a time in id order.

        Each page is its own short read, so a listing of any size holds neither a page's worth
        more memory nor a long transaction (which would keep SQLite's WAL from being
        checkpointed); a job is in exactly one page."""
        after: int | None = None
        while True:
            rows, _ = self.list_jobs(after=after, limit=page_size, count=False, **filters)
            if rows:
                yield rows
            if len(rows) < page_size:
                return
            after = rows[-1].id

    def events(self, job_id: int) -> list[JobEvent]:
        query = select(job_events).where(job_events.c.job_id == job_id).order_by(job_events.c.id)
        with self._read() as conn:
            rows = list(conn.execute(query))
        return [event_from_row(r._mapping) for r in rows]

    def resolve_task(self, array_job_id: int, task_id: int) -> int | None:
        """The job id of task `task_id` of array `array_job_id` (Slurm's `123_4`)."""
        query = select(jobs.c.id).where(jobs.c.array_job_id == array_job_id, jobs.c.array_task_id == task_id)
        with self._read() as conn:
            return conn.execute(query).scalar_one_or_none()

    def array_task_ids(self, job_id: int) -> list[int]:
        """All task ids when `job_id` is an array's id (its first task), else []."""
        query = select(jobs.c.id).where(jobs.c.array_job_id == job_id).order_by(jobs.c.id)
        with self._read() as conn:
            return [r[0] for r in conn.execute(query)]

    def stats(self, *, live_after: datetime | None = None) -> Stats:
        """The CPUs of the live nodes, those running jobs hold and those free for new jobs.

        A drained node's CPUs count in the total, and those its running jobs hold in the used;
        the rest of them are not available (sinfo counts them as "other", neither allocated
        nor idle), so used + available falls short of the total by them."""
        drained = nodes.c.drain_reason.is_not(None)
        with self._read() as conn:
            node_query = select(
                func.coalesce(func.sum(nodes.c.cpus), 0),
                func.coalesce(func.sum(case((drained, nodes.c.cpus), else_=0)), 0),
            ).where(nodes.c.state == "UP")
            if live_after is not None:
                node_query = node_query.where(nodes.c.last_heartbeat >= live_after)
            total, drained_total = (int(v) for v in conn.execute(node_query).one())
            # Two queries, not one over both states: the pending count comes from the index alone.
            used, running = conn.execute(
                select(func.coalesce(func.sum(jobs.c.allocated_cpus), 0), func.count()).where(jobs.c.state == RUNNING)
            ).one()
            pending = conn.execute(select(func.count()).select_from(jobs).where(jobs.c.state == PENDING)).scalar_one()
            drained_used = 0
            if drained_total:  # only then: the common case costs no join
                held = (
                    select(func.coalesce(func.sum(jobs.c.allocated_cpus), 0))
                    .select_from(jobs.join(nodes, jobs.c.node_list == nodes.c.name))
                    .where(jobs.c.state == RUNNING, drained, nodes.c.state == "UP")
                )
                if live_after is not None:
                    held = held.where(nodes.c.last_heartbeat >= live_after)
                drained_used = int(conn.execute(held).scalar_one())
        used, running, pending = int(used), int(running), int(pending)
        other = max(drained_total - drained_used, 0)
        return Stats(total, used, max(total - used - other, 0), running, pending)

    def list_nodes(self, *, live_after: datetime | None = None) -> list[NodeInfo]:
        with self._read() as conn:
            rows = list(conn.execute(select(nodes).order_by(nodes.c.name)))
        views = {v.name: v for v in self.node_views(live_after=live_after)}
        out = []
        for n in rows:
            # Two reads: a node that went between them has no allocations read, and is left
            # out of this listing rather than failing it (read the other way round, one that
            # registered between them made GET /nodes answer a 500).
            view = views.get(n.name)
            if view is None:
                continue
            state = n.state
            if state == "UP" and not is_live(state, n.last_heartbeat, live_after):
                state = "DOWN"
            drain = None
            if n.drain_reason is not None:
                drain = NodeDrain(n.drain_reason, n.drain_user or "", aware(n.drain_time) or utcnow())
            out.append(
                NodeInfo(
                    name=n.name,
                    cpus=n.cpus,
                    cpu_ids=n.cpu_ids,
                    cpu_binding=n.cpu_binding,
                    memory_mb=n.memory_mb,
                    partitions=n.partitions.split(","),
                    state=state,
                    reason=n.reason,
                    last_heartbeat=aware(n.last_heartbeat),
                    alloc_cpus=len(view.cpu_ids) - len(view.free_cpu_ids),
                    alloc_memory_mb=view.memory_mb - view.free_memory_mb,
                    running_jobs=view.running_jobs,
                    instance=n.instance,
                    containment=n.containment,
                    drain=drain,
                )
            )
        return out


def _copy_array_tasks(conn: Connection, first: int, task_ids: Sequence[int]) -> None:
    """Insert the other tasks of an array as copies of its first row, in the database.

    The task ids are handed over as arithmetic runs (`0-9999` is one) that a recursive CTE
    unfolds, joined with the first row in one INSERT ... SELECT: binding 50 parameters per
    task in Python is what made a 10,000-task array slow.
    """
    # Not the submission's key: the first task alone holds it (the unique index takes it once).
    copied = [c for c in jobs.c if c.name != "id" and c.name not in _PER_TASK]
    runs = _arithmetic_runs(task_ids)
    for start in range(0, len(runs), _ARRAY_RUNS_CHUNK):
        seeds = [
            select(
                literal(lo, Integer).label("task"), literal(hi, Integer).label("hi"), literal(step, Integer).label("step")
            )
            for lo, hi, step in runs[start : start + _ARRAY_RUNS_CHUNK]
        ]
        if len(seeds) == 1:
            seed = seeds[0]
        else:
            # A recursive CTE's base must be a plain SELECT: wrap the UNION of the seeds.
            union = union_all(*seeds).subquery()
            seed = select(union.c.task, union.c.hi, union.c.step)
        tasks = seed.cte("array_tasks", recursive=True)
        tasks = tasks.union_all(
            select(tasks.c.task + tasks.c.step, tasks.c.hi, tasks.c.step).where(
                tasks.c.task + tasks.c.step <= tasks.c.hi
            )
        )
        query = (
            select(*copied, literal(first, jobs.c.array_job_id.type), tasks.c.task)
            .select_from(jobs)
            .join(tasks, true())
            .where(jobs.c.id == first)
            .order_by(tasks.c.task)
        )
        conn.execute(insert(jobs).from_select([c.name for c in copied] + ["array_job_id", "array_task_id"], query))


def _differ_only_in_task(rows: Sequence[dict[str, Any]]) -> bool:
    """Whether the rows of an array are one row repeated but for `array_task_id` (as
    `build_rows` makes them), so the database can copy the first instead of binding each."""
    first = rows[0]
    keys = first.keys() - _PER_TASK
    for row in rows[1:]:
        if row.keys() - _PER_TASK != keys:
            return False
        for key in keys:
            value, expected = row[key], first[key]
            if value is not expected and value != expected:
                return False
    return True


def _arithmetic_runs(ids: Sequence[int]) -> list[tuple[int, int, int]]:
    """Sorted ids as (first, last, step) runs: [0..9999] is one run, [1, 3, 5, 10] two."""
    runs: list[tuple[int, int, int]] = []
    i, n = 0, len(ids)
    while i < n:
        if i + 1 == n:
            runs.append((ids[i], ids[i], 1))
            break
        step = ids[i + 1] - ids[i]
        j = i + 1
        while j + 1 < n and ids[j + 1] - ids[j] == step:
            j += 1
        runs.append((ids[i], ids[j], step))
        i = j + 1
    return runs


def _insert_order(values: dict[str, Any]) -> tuple[bool, str, str, tuple[str, ...]]:
    """Where a row goes in a group commit's inserts: keyed rows first, by (user, key); the others
    after, grouped by the columns they name."""
    key = values.get("submit_key")
    if key is None:
        return (True, "", "", tuple(values))
    return (False, str(values.get("user_name")), str(key), ())


def _key_taken(exc: BaseException) -> bool:
    """Whether `exc` is the unique index on (user, submit_key) refusing a row: the driver's
    IntegrityError (raw, or wrapped by SQLAlchemy) naming the index (PostgreSQL's diagnostics)
    or its columns (SQLite: "UNIQUE constraint failed: jobs.user_name, jobs.submit_key"). Not
    read from PostgreSQL's text, whose detail quotes the row's values (the key among them)."""
    cause = getattr(exc, "orig", None) or exc
    if not any(kind.__name__ == "IntegrityError" for kind in type(cause).__mro__):
        return False
    diag = getattr(cause, "diag", None)
    if diag is not None:  # psycopg
        return getattr(diag, "constraint_name", None) == _KEY_INDEX
    text = str(cause)
    return text.startswith("UNIQUE constraint failed:") and "jobs.submit_key" in text


def _keyed_job(_dialect: str) -> Any:
    """The job a user's submission with a key made: from the partial unique index (its
    condition, submit_key IS NOT NULL, follows from the equality, on both databases)."""
    return select(jobs.c.id, jobs.c.submit_digest, jobs.c.array_task_id).where(
        jobs.c.user_name == bindparam("user_name"), jobs.c.submit_key == bindparam("submit_key")
    )


def _array_tasks(_dialect: str) -> Any:
    return select(jobs.c.id).where(jobs.c.array_job_id == bindparam("array_job_id")).order_by(jobs.c.id)


def _submit_statement(_dialect: str, keys: tuple[str, ...], count: int) -> Any:
    """PostgreSQL: `count` new jobs naming `keys` (bound as `<key>_<n>`) and their submit events,
    in one statement: the events' INSERT reads the jobs' from a data-modifying CTE. Returns
    the new jobs' ids."""
    new = (
        insert(jobs)
        .values([{key: bindparam(f"{key}_{index}") for key in keys} for index in range(count)])
        .returning(jobs.c.id, jobs.c.submit_time)
        .cte("new")
    )
    return insert(job_events).from_select(
        ["job_id", "time", "from_state", "to_state", "reason"],
        select(
            new.c.id,
            new.c.submit_time,
            null(),
            literal(PENDING, job_events.c.to_state.type),
            literal("submit", job_events.c.reason.type),
        ),
    ).returning(job_events.c.job_id)


def _state(state: str) -> Any:
    """A state in a listing's condition, written into the SQL at execution (a state is one of a
    few known words). Bound, it let PostgreSQL plan a statement it has prepared (psycopg prepares
    one run five times on a connection) for any state: that generic plan walked the primary key
    from the first id, filtering, since a state holds a fifth of the jobs on average. The live
    jobs are all at the end, behind the history: the first page of live jobs over a million
    ended ones took 350-450 ms on a connection that had switched to it, 15-25 ms on another."""
    return literal(state, literal_execute=True)


# The states of jobs that have not ended. Such a job has no end time (a requeue clears its
# earlier run's), and a job in any other state has one (each transition into it sets it).
_LIVE_STATES = (PENDING, RUNNING)
# A listing bounded by a time reads the jobs that ended since by their ids, up to this many.
_ENDED_SINCE_CAP = 5_000


def _legs_since(
    conn: Connection, since: datetime, after: int | None, states: Sequence[str] | None, first: int = 0
) -> list[list[ColumnElement[bool]]] | None:
    """A listing of the jobs alive at any point after `since` (of `states`, if any) as legs that
    each give their ids in id order: the live jobs, a leg for each state; the jobs that ended
    since, by their ids, found first. None when more than _ENDED_SINCE_CAP ended since.
    `first`: when not 0, only the first so many of those can be on the page (no other
    condition filters them), and only those are given.

    The bound as one condition (`end_time IS NULL OR end_time >= since`) is one that no index
    serves in id order: a page walked the primary key (or the index on state and id) from the
    first id, through the whole history, to find jobs that are all at its end. squeue's views
    of ended jobs (`-t all`, `-t CD`) ask for those that ended in the last MinJobAge, a few
    among a million: 300-500 ms a view. A bound far back (sacct's weeks) matches most of the
    history, and the walk, which finds matches all along, is then the right plan."""
    wanted = list(dict.fromkeys(states)) if states else None
    live = [state for state in (wanted or _LIVE_STATES) if state in _LIVE_STATES]
    ended = None if wanted is None else [state for state in wanted if state not in _LIVE_STATES]
    legs = [[jobs.c.state == _state(state)] for state in live]
    if ended is None or ended:
        # From the index on end_time alone (no order, no other condition a planner might
        # rather walk an index for): at most the cap and one more. On PostgreSQL the time is
        # written into the statement, as the states are (see _state): a plan made for any time
        # expects a third of the table and reads it whole (200 ms, where this takes 2).
        bound: Any = since
        if conn.dialect.name == "postgresql":
            bound = literal(since, jobs.c.end_time.type, literal_execute=True)
        # Their states are checked here, for the same reason.
        query = select(jobs.c.id, jobs.c.state).where(jobs.c.end_time >= bound).limit(_ENDED_SINCE_CAP + 1)
        result = conn.execute(query)
        rows = result.cursor.fetchall()  # the driver's rows: 3,000 in 0.3 ms, where SQLAlchemy's took 6
        result.close()
        if len(rows) > _ENDED_SINCE_CAP:
            return None
        recent = sorted(
            job_id for job_id, state in rows if (after is None or job_id > after) and (not ended or state in ended)
        )
        if recent:
            legs.append([_one_of(conn.dialect.name, recent[:first] if first else recent)])
    return legs


def _one_of(dialect: str, ids: list[int]) -> ColumnElement[bool]:
    """`jobs.id IN ids` for a few thousand ids: on PostgreSQL one parameter, an array's text
    (psycopg converts a statement's placeholders at each run when it has many, and dumps a list
    for an array parameter with a regular expression an item: 4 ms for 3,000); on SQLite one
    parameter each, which its C binding takes quickly (written into the statement, SQLAlchemy
    took 3 us a number to render them)."""
    if dialect == "postgresql":
        text = "{" + ",".join(map(str, ids)) + "}"
        return jobs.c.id == any_(cast(bindparam("ended_since", text, type_=Text), ARRAY(BigInteger)))
    # One expanding parameter: a list given to in_() is coerced value by value.
    return jobs.c.id.in_(bindparam("ended_since", ids, expanding=True))


def _page_of_legs(
    selected: list[Any],
    legs: list[list[ColumnElement[bool]]],
    others: list[ColumnElement[bool]],
    dialect: str,
    offset: int,
    limit: int,
) -> Any:
    """Jobs matching any leg of `legs` and all `others`, in id order (see _page_query)."""
    if not legs:
        return select(*selected).where(false())
    if len(legs) == 1:
        return select(*selected).where(*legs[0], *others).order_by(jobs.c.id).offset(offset).limit(limit)
    if dialect == "postgresql":
        parts = [select(jobs.c.id).where(*leg, *others).order_by(jobs.c.id).limit(offset + limit) for leg in legs]
        merged = union_all(*(select(part.subquery()) for part in parts)).subquery()
    else:
        merged = union_all(*(select(jobs.c.id).where(*leg, *others) for leg in legs)).subquery()
    ids = select(merged.c.id).order_by(merged.c.id).offset(offset).limit(limit)
    return select(*selected).where(jobs.c.id.in_(ids)).order_by(jobs.c.id)


def _page_query(
    selected: list[Any],
    conditions: list[ColumnElement[bool]],
    states: Sequence[str] | None,
    dialect: str,
    offset: int,
    limit: int,
) -> Any:
    """Jobs matching `conditions` in id order, `offset` skipped, at most `limit`.

    Several `states` (squeue's live jobs: pending and running): no index gives jobs of several
    states in id order, and a page would sort every matching job, whichever page it is. The
    page's ids are found first, from the index on state and id, and only then its rows read.
    - PostgreSQL: each state's ids are read in id order on their own (the index gives them so)
      and merged. As one `state IN (...) ORDER BY id`, PostgreSQL with up-to-date statistics
      walked the primary key from the first id, filtering, since the live jobs it looked for
      were 1% of the table, but they were all at its end: 195 ms for the first page of live
      jobs over a million ended ones, 42 ms merged. Merging whole rows rather than ids read up
      to a page of rows of each state for each page (squeue's 11 pages: 89 ms, 72 by ids).
    - SQLite: the ids are sorted, from the index alone when the states (and the cursor) are all
      the view filters on. Sorting whole rows, it read every matching job's row for each page:
      11,000 for each of squeue's pages of 1,000 over 11,000 live jobs (1.8-5.2 ms a page,
      against 1.7-2.5 by ids; a merge as above took 2.7-4.3). Other filters (a user, a time)
      are checked on each matching job's row either way."""
    if not states or len(states) < 2:
        query = select(*selected).order_by(jobs.c.id).offset(offset).limit(limit)
        return query.where(and_(*conditions)) if conditions else query
    if dialect == "postgresql":
        # A leg a state; the first condition is `state IN (...)` (list_jobs puts it there).
        legs = [[jobs.c.state == _state(state)] for state in dict.fromkeys(states)]
        return _page_of_legs(selected, legs, conditions[1:], dialect, offset, limit)
    ids = select(jobs.c.id).where(*conditions).order_by(jobs.c.id).offset(offset).limit(limit)
    return select(*selected).where(jobs.c.id.in_(ids)).order_by(jobs.c.id)
