"""The multifactor priority of pending jobs, computed for the policy's order.

`Multifactor` holds what changes slowly (the weights, the partitions' and QOS' normalised
factors, each user's fair-share factor from the decayed usage, the cluster's size) and gives
each job its priority from its own fields and the clock. The loop computes it for the whole
backlog on each full snapshot and for each new job as it arrives: a job's priority changes only
through its age and its user's usage, which is what a full pass brings up to date.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from conductor.domain.multifactor import Factors, Weights, age_factor, fairshare_factor, job_size_factor
from conductor.scheduler.policy import PendingJob


@dataclass(frozen=True, slots=True)
class PriorityConfig:
    """The configuration's part: weights and each partition's and QOS' normalised factor."""

    weights: Weights
    half_life: float | None = 7 * 86400.0
    partitions: Mapping[str, float] = field(default_factory=dict)
    qos: Mapping[str, float] = field(default_factory=dict)
    default_qos: str = "normal"


class Multifactor:
    """Priorities for one state of usage and cluster size."""

    __slots__ = ("_fairshare", "_total", "cluster_cpus", "cluster_nodes", "config", "usage")

    def __init__(
        self, config: PriorityConfig, usage: Mapping[str, float], *, cluster_cpus: int, cluster_nodes: int
    ) -> None:
        self.config = config
        self.usage = dict(usage)
        self.cluster_cpus = cluster_cpus
        self.cluster_nodes = cluster_nodes
        self._total = sum(self.usage.values())
        self._fairshare: dict[str, float] = {}

    def fairshare(self, user: str) -> float:
        factor = self._fairshare.get(user)
        if factor is None:
            # One share per user with recorded usage (as associations would each hold one): the
            # count depends on the usage alone, so the scheduler and the API agree on it. A user
            # without usage has factor 1 whatever the count.
            shares = max(len(self.usage), 1)
            factor = self._fairshare[user] = fairshare_factor(self.usage.get(user, 0.0), self._total, 1, shares)
        return factor

    def factors(self, job: PendingJob, now: float) -> Factors:
        c = self.config
        w = c.weights
        return Factors(
            age=age_factor(now - job.eligible_time, w.max_age) if w.age else 0.0,
            fairshare=self.fairshare(job.user) if w.fairshare else 0.0,
            job_size=job_size_factor(job.cpus, self.cluster_cpus, self.cluster_nodes, w.favor_small)
            if w.job_size else 0.0,
            partition=c.partitions.get(job.partition, 0.0),
            qos=c.qos.get(job.qos or c.default_qos, 0.0),
            nice=job.nice,
        )

    def assign(self, jobs: Iterable[PendingJob], now: float) -> None:
        """Set each job's priority: its explicit one (less nice) when set, else the multifactor.

        What depends on the job's shape alone (size, partition, QOS) is computed once per shape,
        the fair share once per user: per job remain an addition and the age, which is what
        keeps 100,000 jobs well under a second.
        """
        c = self.config
        w = c.weights
        shapes: dict[tuple[str, str | None, int], float] = {}
        users: dict[str, float] = {}
        age_rate = w.age / w.max_age if w.age and w.max_age else 0.0
        age_cap = float(w.age)
        for job in jobs:
            if job.explicit_priority > 0:
                job.priority = max(job.explicit_priority - job.nice, 1)
                continue
            shape = (job.partition, job.qos, job.cpus)
            static = shapes.get(shape)
            if static is None:
                f = Factors(
                    job_size=job_size_factor(job.cpus, self.cluster_cpus, self.cluster_nodes, w.favor_small)
                    if w.job_size else 0.0,
                    partition=c.partitions.get(job.partition, 0.0),
                    qos=c.qos.get(job.qos or c.default_qos, 0.0),
                )
                static = shapes[shape] = sum(f.weighted(w))
            share = users.get(job.user)
            if share is None:
                share = users[job.user] = w.fairshare * self.fairshare(job.user) if w.fairshare else 0.0
            age = (now - job.eligible_time) * age_rate
            if age > age_cap:
                age = age_cap
            elif age < 0:
                age = 0.0
            value = int(static + share + age - job.nice)
            job.priority = value if value > 1 else 1
