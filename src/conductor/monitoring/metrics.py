"""Prometheus metrics (the official client library), in the standard exposition format.

Two kinds, two registries:
- what this process counts as it works (`PROCESS`): submissions it accepted, jobs whose end
  its transition feed saw, submit-to-start latencies, scheduler pass times, and the process's
  own figures (CPU, memory, file descriptors, garbage collection). Summed over the processes
  of a deployment they give the cluster's figures, because each event is counted by one
  process only (see README, "Metrics").
- what the database says at scrape time (`ClusterCollector`): CPUs and memory per node,
  pending jobs by reason, queue depth per partition. Each scrape costs a few indexed counts,
  whatever the number of jobs stored.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from conductor.store.records import NodeInfo, QueueCount, Stats

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

PROCESS = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=PROCESS)
PlatformCollector(registry=PROCESS)
GCCollector(registry=PROCESS)

JOBS_SUBMITTED = Counter(
    "conductor_jobs_submitted",
    "Jobs accepted by this API process (an array counts each of its tasks).",
    registry=PROCESS,
)
JOBS_ENDED = Counter(
    "conductor_jobs_ended",
    "Jobs that ended, by final state (counted by the process that schedules).",
    ["state"],
    registry=PROCESS,
)
SUBMIT_TO_START = Histogram(
    "conductor_job_submit_to_start_seconds",
    "Time from a job's submission to the start of its run (counted by the process that schedules).",
    buckets=(0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600, 24 * 3600),
    registry=PROCESS,
)
SCHEDULER_PASS = Histogram(
    "conductor_scheduler_pass_seconds",
    "Duration of one scheduling pass of the active scheduler.",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
    registry=PROCESS,
)


class ClusterSource(Protocol):
    """What the scrape-time figures are read from (conductor.store.Store provides it)."""

    def stats(self, *, live_after: datetime | None = None) -> Stats: ...

    def list_nodes(self, *, live_after: datetime | None = None) -> list[NodeInfo]: ...

    def queue_counts(self) -> list[QueueCount]: ...


class ClusterCollector(Collector):
    """The figures of the whole cluster, read from the database when Prometheus scrapes."""

    def __init__(self, source: ClusterSource, live_after: Callable[[], datetime]) -> None:
        self.source = source
        self.live_after = live_after

    def collect(self) -> Iterator[Metric]:
        live_after = self.live_after()
        stats = self.source.stats(live_after=live_after)
        yield _gauge("conductor_cpus_total", "CPUs of live nodes.", stats.total_cpus)
        yield _gauge("conductor_cpus_used", "CPUs allocated to running jobs.", stats.used_cpus)
        yield from _node_metrics(self.source.list_nodes(live_after=live_after))
        yield from _queue_metrics(self.source.queue_counts())


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


def _node_metrics(nodes: Sequence[NodeInfo]) -> Iterator[Metric]:
    cpus = GaugeMetricFamily("conductor_node_cpus", "CPUs of a node.", labels=["node"])
    cpus_used = GaugeMetricFamily("conductor_node_cpus_used", "CPUs of a node allocated to jobs.", labels=["node"])
    memory = GaugeMetricFamily("conductor_node_memory_bytes", "Memory of a node.", labels=["node"])
    memory_used = GaugeMetricFamily(
        "conductor_node_memory_used_bytes", "Memory of a node allocated to jobs.", labels=["node"]
    )
    running = GaugeMetricFamily("conductor_node_running_jobs", "Jobs running on a node.", labels=["node"])
    up = GaugeMetricFamily("conductor_node_up", "1 when a node is UP and heartbeating, else 0.", labels=["node", "state"])
    drained = GaugeMetricFamily(
        "conductor_node_drained", "1 when an administrator drained a node (it takes no new job), else 0.",
        labels=["node"],
    )
    for n in nodes:
        cpus.add_metric([n.name], n.cpus)
        cpus_used.add_metric([n.name], n.alloc_cpus)
        memory.add_metric([n.name], n.memory_mb * 1024 * 1024)
        memory_used.add_metric([n.name], n.alloc_memory_mb * 1024 * 1024)
        running.add_metric([n.name], n.running_jobs)
        up.add_metric([n.name, n.state], 1 if n.state == "UP" else 0)
        drained.add_metric([n.name], 1 if n.drain is not None else 0)
    yield from (cpus, cpus_used, memory, memory_used, running, up, drained)


def _queue_metrics(counts: Sequence[QueueCount]) -> Iterator[Metric]:
    by_state: dict[str, int] = {"PENDING": 0, "RUNNING": 0}
    by_reason: dict[str, int] = {}
    by_partition: dict[tuple[str, str], int] = {}
    for c in counts:
        by_state[c.state] = by_state.get(c.state, 0) + c.jobs
        if c.state == "PENDING":
            by_reason[c.reason] = by_reason.get(c.reason, 0) + c.jobs
        key = (c.partition, c.state)
        by_partition[key] = by_partition.get(key, 0) + c.jobs
    jobs = GaugeMetricFamily("conductor_jobs", "Live jobs by state.", labels=["state"])
    for state, value in sorted(by_state.items()):
        jobs.add_metric([state], value)
    reasons = GaugeMetricFamily("conductor_pending_jobs", "Pending jobs by reason.", labels=["reason"])
    for reason, value in sorted(by_reason.items()):
        reasons.add_metric([reason], value)
    depth = GaugeMetricFamily(
        "conductor_queue_depth", "Pending and running jobs per partition.", labels=["partition", "state"]
    )
    for (partition, state), value in sorted(by_partition.items()):
        depth.add_metric([partition, state], value)
    yield from (jobs, reasons, depth)


def cluster_registry(source: ClusterSource, live_after: Callable[[], datetime]) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ClusterCollector(source, live_after))
    return registry


def exposition(cluster: CollectorRegistry) -> bytes:
    """This process's metrics, then the cluster's: one text in the exposition format."""
    return generate_latest(PROCESS) + generate_latest(cluster)
