"""What the running jobs hold on each node: the one running-allocations query, read by
placement (`scheduling`) and by node listings (`jobs`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select

from conductor.domain.cpuset import parse_cpu_list
from conductor.scheduler.policy import NodeView, Release
from conductor.scheduler.timeline import INF
from conductor.store.engine import Database, aware
from conductor.store.schema import jobs, nodes
from conductor.store.transitions import RUNNING


def running_allocations(_dialect: str) -> Any:
    """(node, CPU ids, memory) of every RUNNING job: a job holds its allocation exactly then."""
    return select(jobs.c.node_list, jobs.c.cpu_ids, jobs.c.allocated_memory_mb).where(jobs.c.state == RUNNING)


def _running_releases(_dialect: str) -> Any:
    """Running allocations with what tells when they end: the backfill plan's input."""
    return select(
        jobs.c.node_list,
        jobs.c.cpu_ids,
        jobs.c.allocated_memory_mb,
        jobs.c.id,
        jobs.c.start_time,
        jobs.c.time_limit,
        jobs.c.partition,
    ).where(jobs.c.state == RUNNING)


def _node_rows(_dialect: str) -> Any:
    return select(
        nodes.c.name,
        nodes.c.cpu_ids,
        nodes.c.memory_mb,
        nodes.c.partitions,
        nodes.c.state,
        nodes.c.last_heartbeat,
        nodes.c.drain_reason.is_not(None),
    )


def is_live(state: str, last_heartbeat: datetime | None, live_after: datetime | None) -> bool:
    """Whether a node's worker is alive: UP, and heard from since `live_after` (None: any time)."""
    heartbeat = aware(last_heartbeat)
    return state == "UP" and (live_after is None or (heartbeat is not None and heartbeat >= live_after))


class Allocations(Database):
    def node_views(self, *, live_after: datetime | None = None) -> list[NodeView]:
        """Every node with the CPUs and memory its RUNNING jobs leave free, and when each of
        them gives its share back (start time + time limit; never, when UNLIMITED).

        `up`: the node takes new jobs, its worker alive (`is_live`) and not drained; a drained
        node is listed with its running jobs, as any other, for what they hold and release."""
        with self._raw_read() as cursor:
            node_rows = self._query(cursor, _node_rows)
            running = self._query(cursor, _running_releases)
        used: dict[str, set[int]] = {}
        used_mem: dict[str, int] = {}
        counts: dict[str, int] = {}
        releases: dict[str, list[Release]] = {}
        by_partition: dict[str, dict[str, int]] = {}
        for node_list, cpu_ids, memory, job_id, start_time, time_limit, partition in running:
            cpus = parse_cpu_list(cpu_ids)
            held = by_partition.setdefault(node_list, {})
            held[partition] = held.get(partition, 0) + len(cpus)
            used.setdefault(node_list, set()).update(cpus)
            used_mem[node_list] = used_mem.get(node_list, 0) + (memory or 0)
            counts[node_list] = counts.get(node_list, 0) + 1
            started = aware(start_time)
            end = started.timestamp() + time_limit if started is not None and time_limit else INF
            releases.setdefault(node_list, []).append(Release(job_id, len(cpus), memory or 0, end))
        views = []
        for name, node_cpu_ids, memory_mb, partitions, state, last_heartbeat, drained in node_rows:
            ids = tuple(parse_cpu_list(node_cpu_ids))
            taken = used.get(name, set())
            live = is_live(state, last_heartbeat, live_after)
            views.append(
                NodeView(
                    name=name,
                    cpu_ids=ids,
                    free_cpu_ids=[i for i in ids if i not in taken],
                    memory_mb=memory_mb,
                    free_memory_mb=memory_mb - used_mem.get(name, 0),
                    partitions=frozenset(partitions.split(",")),
                    running_jobs=counts.get(name, 0),
                    up=live and not drained,
                    releases=releases.get(name, []),
                    partition_cpus=by_partition.get(name, {}),
                    drained=bool(drained),
                )
            )
        return views
