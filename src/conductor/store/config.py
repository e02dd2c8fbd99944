"""The cluster configuration's shared state: its generation (`scontrol reconfigure`), the
partition states set by `scontrol update`, and the usage per user and QOS that limits count."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, delete, func, insert, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from conductor.domain.multifactor import accrued, decay
from conductor.scheduler.limits import Usage, add_usage
from conductor.store.engine import Database, aware, utcnow
from conductor.store.schema import cluster_config, fairshare_usage, jobs, partition_states
from conductor.store.transitions import PENDING, RUNNING


class ConfigQueries(Database):
    def config_state(self) -> tuple[int, dict[str, str]]:
        """(the configuration's generation, partition name -> state set by scontrol)."""
        with self._read() as conn:
            generation = conn.execute(select(cluster_config.c.generation).where(cluster_config.c.id == 1)).scalar()
            states = {r.name: r.state for r in conn.execute(select(partition_states.c.name, partition_states.c.state))}
        return int(generation or 0), states

    def bump_config_generation(self, now: datetime | None = None, *, keep_partition_states: bool = False) -> int:
        """A new generation that rereads the file (`scontrol reconfigure`): every process
        reloads the configuration file when it sees it. The partition states `scontrol update`
        set are cleared, the file's in force again, as Slurm's reconfigure does unless
        ReconfigFlags=KeepPartState (`keep_partition_states`)."""
        with self._write() as conn:
            if not keep_partition_states:
                conn.execute(delete(partition_states))
            generation = self._bump(conn, now or utcnow())
            conn.execute(update(cluster_config).where(cluster_config.c.id == 1).values(file_generation=generation))
            return generation

    def file_generation(self) -> int:
        """The generation of the last reconfigure (0: none since the database was made)."""
        with self._read() as conn:
            found = conn.execute(select(cluster_config.c.file_generation).where(cluster_config.c.id == 1)).scalar()
        return int(found or 0)

    def set_partition_state(self, name: str, state: str, now: datetime | None = None) -> int:
        """Set a partition's state over the file's until the next reconfigure (UP too: it is a
        state); returns the new generation, which makes every process take it."""
        now = now or utcnow()
        with self._write() as conn:
            changed = conn.execute(
                update(partition_states).where(partition_states.c.name == name).values(state=state, updated_at=now)
            ).rowcount
            if not changed:
                conn.execute(insert(partition_states).values(name=name, state=state, updated_at=now))
            return self._bump(conn, now)

    def _bump(self, conn: Connection, now: datetime) -> int:
        ensure_config_row(conn, self.dialect, now)
        conn.execute(
            update(cluster_config)
            .where(cluster_config.c.id == 1)
            .values(generation=cluster_config.c.generation + 1, updated_at=now)
        )
        return int(conn.execute(select(cluster_config.c.generation).where(cluster_config.c.id == 1)).scalar_one())

    def running_holdings(self) -> tuple[dict[tuple[str, str | None], Usage], dict[tuple[str, str], Usage]]:
        """What the running jobs hold, per (user, QOS as stored; None: the default QOS) for QOS
        limits and per (user, account charged; "" for none) for association limits: one read
        grouped by all three, summed both ways."""
        query = (
            select(
                jobs.c.user_name,
                jobs.c.qos,
                jobs.c.account,
                func.count(),
                func.sum(jobs.c.allocated_cpus),
                func.sum(jobs.c.allocated_memory_mb),
            )
            .where(jobs.c.state == RUNNING)
            .group_by(jobs.c.user_name, jobs.c.qos, jobs.c.account)
        )
        by_qos: dict[tuple[str, str | None], Usage] = {}
        by_account: dict[tuple[str, str], Usage] = {}
        with self._read() as conn:
            for user, qos, account, count, cpus, memory in conn.execute(query):
                for held in (by_qos.setdefault((user, qos), Usage()), by_account.setdefault((user, account or ""), Usage())):
                    add_usage(held, int(count), int(cpus or 0), int(memory or 0))
        return by_qos, by_account

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

    # ------------------------------------------------------------ fair share
    def refresh_usage(self, half_life: float | None, now: datetime | None = None) -> dict[tuple[str, str], float]:
        """Bring the decayed CPU-seconds of each (user, account charged; "" for none) forward to
        `now` and return them.

        Incremental: what was stored (as of `usage_as_of`) decays by the time since, and only the
        jobs that ran since then add to it (running ones, and those ended after it), each piece
        decayed from when it was used. The first call reads the whole history once.
        """
        now = now or utcnow()
        t1 = now.timestamp()
        with self._write() as conn:
            as_of = conn.execute(select(cluster_config.c.usage_as_of).where(cluster_config.c.id == 1)).scalar()
            t0 = aware(as_of).timestamp() if as_of is not None else None  # type: ignore[union-attr]
            usage = {
                (r.user_name, r.account): decay(r.usage, t1 - t0, half_life) if t0 is not None else r.usage
                for r in conn.execute(select(fairshare_usage.c.user_name, fairshare_usage.c.account, fairshare_usage.c.usage))
            }
            ran = select(
                jobs.c.user_name, jobs.c.account, jobs.c.allocated_cpus, jobs.c.start_time, jobs.c.end_time
            ).where(
                jobs.c.start_time.is_not(None), jobs.c.allocated_cpus.is_not(None)
            )
            if as_of is not None:
                ran = ran.where(or_(jobs.c.end_time.is_(None), jobs.c.end_time > as_of))
            for user, account, cpus, start, end in conn.execute(ran):
                begin = aware(start).timestamp()  # type: ignore[union-attr]
                finish = min(aware(end).timestamp(), t1) if end is not None else t1  # type: ignore[union-attr]
                if t0 is not None:
                    begin = max(begin, t0)
                if finish > begin:
                    key = (user, account or "")
                    usage[key] = usage.get(key, 0.0) + accrued(int(cpus), begin, finish, t1, half_life)
            conn.execute(delete(fairshare_usage))
            if usage:
                conn.execute(
                    insert(fairshare_usage), [{"user_name": u, "account": a, "usage": v} for (u, a), v in usage.items()]
                )
            ensure_config_row(conn, self.dialect, now)
            conn.execute(update(cluster_config).where(cluster_config.c.id == 1).values(usage_as_of=now))
        return usage

    def usage_snapshot(self, half_life: float | None, now: datetime | None = None) -> dict[tuple[str, str], float]:
        """The decayed usage per (user, account) as last stored, decayed on to `now` (a read:
        sprio, sshare)."""
        t1 = (now or utcnow()).timestamp()
        with self._read() as conn:
            as_of = conn.execute(select(cluster_config.c.usage_as_of).where(cluster_config.c.id == 1)).scalar()
            rows = list(conn.execute(select(fairshare_usage.c.user_name, fairshare_usage.c.account, fairshare_usage.c.usage)))
        elapsed = t1 - aware(as_of).timestamp() if as_of is not None else 0.0  # type: ignore[union-attr]
        return {(r.user_name, r.account): decay(r.usage, elapsed, half_life) for r in rows}

    def pending_users(self) -> set[str]:
        """The users with pending jobs (sshare lists them with those that have usage)."""
        query = select(jobs.c.user_name).where(jobs.c.state == PENDING).distinct()
        with self._read() as conn:
            return {r[0] for r in conn.execute(query)}


def ensure_config_row(conn: Connection, dialect: str, now: datetime) -> None:
    """The one row of cluster_config, made at generation 0 if missing. Two processes may make it
    at once (a reconfigure, the feed saving its position): the second one's insert is skipped,
    not an error."""
    row = {"id": 1, "generation": 0, "updated_at": now}
    if dialect == "postgresql":
        conn.execute(pg_insert(cluster_config).values(row).on_conflict_do_nothing(index_elements=["id"]))
    else:
        conn.execute(sqlite_insert(cluster_config).values(row).on_conflict_do_nothing(index_elements=["id"]))
