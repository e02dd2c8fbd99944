"""The cluster configuration's shared state: its generation (`scontrol reconfigure`), the
partition states set by `scontrol update`, and the usage per user and QOS that limits count."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, insert, select, update

from conductor.scheduler.limits import Usage
from conductor.store.engine import Database, utcnow
from conductor.store.schema import cluster_config, jobs, partition_states
from conductor.store.transitions import PENDING, RUNNING


class ConfigQueries(Database):
    def config_state(self) -> tuple[int, dict[str, str]]:
        """(the configuration's generation, partition name -> state set by scontrol)."""
        with self._read() as conn:
            generation = conn.execute(select(cluster_config.c.generation).where(cluster_config.c.id == 1)).scalar()
            states = {r.name: r.state for r in conn.execute(select(partition_states.c.name, partition_states.c.state))}
        return int(generation or 0), states

    def bump_config_generation(self, now: datetime | None = None) -> int:
        """A new generation: every process reloads the configuration file when it sees it."""
        with self._write() as conn:
            return self._bump(conn, now or utcnow())

    def set_partition_state(self, name: str, state: str, now: datetime | None = None) -> int:
        """Set a partition's state over the file's (UP clears nothing: it is a state too);
        returns the new generation, which makes every process take it."""
        now = now or utcnow()
        with self._write() as conn:
            changed = conn.execute(
                update(partition_states).where(partition_states.c.name == name).values(state=state, updated_at=now)
            ).rowcount
            if not changed:
                conn.execute(insert(partition_states).values(name=name, state=state, updated_at=now))
            return self._bump(conn, now)

    def _bump(self, conn: object, now: datetime) -> int:
        from sqlalchemy import Connection

        assert isinstance(conn, Connection)
        changed = conn.execute(
            update(cluster_config)
            .where(cluster_config.c.id == 1)
            .values(generation=cluster_config.c.generation + 1, updated_at=now)
        ).rowcount
        if not changed:
            conn.execute(insert(cluster_config).values(id=1, generation=1, updated_at=now))
        return int(conn.execute(select(cluster_config.c.generation).where(cluster_config.c.id == 1)).scalar_one())

    def running_usage(self) -> dict[tuple[str, str | None], Usage]:
        """What the running jobs hold, per (user, QOS as stored; None: the default QOS)."""
        query = (
            select(
                jobs.c.user_name,
                jobs.c.qos,
                func.count(),
                func.sum(jobs.c.allocated_cpus),
                func.sum(jobs.c.allocated_memory_mb),
            )
            .where(jobs.c.state == RUNNING)
            .group_by(jobs.c.user_name, jobs.c.qos)
        )
        with self._read() as conn:
            return {
                (user, qos): Usage(int(count), int(cpus or 0), int(memory or 0))
                for user, qos, count, cpus, memory in conn.execute(query)
            }

    def count_active(self, user_name: str, qos: str | None) -> int:
        """Pending and running jobs of one user under one QOS (Slurm's MaxSubmitJobsPerUser)."""
        condition = jobs.c.qos.is_(None) if qos is None else jobs.c.qos == qos
        query = (
            select(func.count())
            .select_from(jobs)
            .where(jobs.c.user_name == user_name, jobs.c.state.in_((PENDING, RUNNING)), condition)
        )
        with self._read() as conn:
            return int(conn.execute(query).scalar_one())
