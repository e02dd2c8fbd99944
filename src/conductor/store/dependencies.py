"""What dependency resolution (`conductor.scheduler.dependencies`) reads: the dependency strings of the
pending jobs, the states of the jobs they name, and what blocks `--dependency=singleton`."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import func, or_, select

from conductor.domain.job import JobSummary
from conductor.store.engine import Database
from conductor.store.records import DependencyTarget, SingletonState, summary_from_row
from conductor.store.schema import jobs
from conductor.store.transitions import PENDING, RUNNING

# Ids per IN (...) of one statement.
_IN_CHUNK = 500


class DependencyQueries(Database):
    def dependency_targets(self) -> dict[int, DependencyTarget]:
        """The dependencies of pending jobs that have one."""
        query = select(jobs.c.id, jobs.c.dependency, jobs.c.array_task_id).where(
            jobs.c.state == PENDING, jobs.c.dependency.is_not(None)
        )
        with self._read() as conn:
            return {r.id: DependencyTarget(r.dependency, r.array_task_id) for r in conn.execute(query)}

    def dependencies_of(self, ids: Iterable[int]) -> dict[int, DependencyTarget | None]:
        """Of the jobs `ids` that exist: the dependency of each that has not started (None for
        one without, or one that started)."""
        id_list = list(set(ids))
        out: dict[int, DependencyTarget | None] = {}
        with self._read() as conn:
            for chunk_start in range(0, len(id_list), _IN_CHUNK):
                chunk = id_list[chunk_start : chunk_start + _IN_CHUNK]
                query = select(jobs.c.id, jobs.c.dependency, jobs.c.array_task_id, jobs.c.start_time).where(
                    jobs.c.id.in_(chunk)
                )
                for r in conn.execute(query):
                    waiting = r.dependency and r.start_time is None
                    out[r.id] = DependencyTarget(r.dependency, r.array_task_id) if waiting else None
        return out

    def job_summaries(self, ids: Iterable[int]) -> dict[int, JobSummary]:
        """State, times, array and owner of the jobs `ids`, and of every task of those that
        are arrays."""
        id_list = list(set(ids))
        out: dict[int, JobSummary] = {}
        with self._read() as conn:
            for chunk_start in range(0, len(id_list), _IN_CHUNK):
                chunk = id_list[chunk_start : chunk_start + _IN_CHUNK]
                query = select(
                    jobs.c.id,
                    jobs.c.state,
                    jobs.c.start_time,
                    jobs.c.end_time,
                    jobs.c.array_job_id,
                    jobs.c.array_task_id,
                    jobs.c.exit_code,
                    jobs.c.user_name,
                    jobs.c.name,
                ).where(or_(jobs.c.id.in_(chunk), jobs.c.array_job_id.in_(chunk)))
                for r in conn.execute(query):
                    out[r.id] = summary_from_row(r._mapping)
        return out

    def singleton_blockers(self, pairs: Iterable[tuple[str, str]]) -> dict[tuple[str, str], SingletonState]:
        """For each (user, name): whether such a job runs, and the lowest pending job id."""
        wanted = set(pairs)
        if not wanted:
            return {}
        query = (
            select(jobs.c.user_name, jobs.c.name, jobs.c.state, func.min(jobs.c.id))
            .where(jobs.c.state.in_([RUNNING, PENDING]), jobs.c.name.in_(sorted({n for _, n in wanted})))
            .group_by(jobs.c.user_name, jobs.c.name, jobs.c.state)
        )
        running: set[tuple[str, str]] = set()
        first_pending: dict[tuple[str, str], int] = {}
        with self._read() as conn:
            for user, name, state, lowest in conn.execute(query):
                if (user, name) not in wanted:
                    continue
                if state == RUNNING:
                    running.add((user, name))
                else:
                    first_pending[(user, name)] = int(lowest)
        return {pair: SingletonState(pair in running, first_pending.get(pair)) for pair in wanted}
