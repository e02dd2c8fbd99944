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

from conductor.domain.accounting import NO_ACCOUNT, Accounting, fair_share_factors, fair_share_tree
from conductor.domain.multifactor import PRIORITY_MAX, Factors, Weights, age_factor, job_size_factor
from conductor.scheduler.policy import PendingJob


@dataclass(frozen=True, slots=True)
class PriorityConfig:
    """The configuration's part: weights and each partition's and QOS' normalised factor."""

    weights: Weights
    half_life: float | None = 7 * 86400.0
    partitions: Mapping[str, float] = field(default_factory=dict)
    qos: Mapping[str, float] = field(default_factory=dict)
    default_qos: str = "normal"
    # The accounts and associations whose shares fair share divides (empty: one share per user).
    accounting: Accounting = field(default_factory=Accounting)


class Multifactor:
    """Priorities for one state of usage and cluster size."""

    __slots__ = ("_factors", "_keys", "cluster_cpus", "cluster_nodes", "config", "usage")

    def __init__(
        self, config: PriorityConfig, usage: Mapping[tuple[str, str], float], *, cluster_cpus: int,
        cluster_nodes: int,
    ) -> None:
        self.config = config
        accounting = config.accounting
        # Usage as the fair-share tree keys it: jobs charged to no association count for their
        # user alone, under root.
        self.usage: dict[tuple[str, str], float] = {}
        for (user, account), value in usage.items():
            key = accounting.usage_key(user, account)
            self.usage[key] = self.usage.get(key, 0.0) + value
        self.cluster_cpus = cluster_cpus
        self.cluster_nodes = cluster_nodes
        # Users charged to no association hold one share each under root, counted from the
        # usage alone so that the scheduler and the API agree; one without usage has factor 1.
        self._factors = fair_share_factors(fair_share_tree(accounting, self.usage))
        self._keys: dict[tuple[str, str | None], tuple[str, str]] = {}

    def fairshare(self, user: str, account: str | None = None) -> float:
        key = self._keys.get((user, account))
        if key is None:
            key = self._keys[(user, account)] = self.config.accounting.usage_key(user, account)
        factor = self._factors.get(key)
        if factor is None:
            return 1.0 if key[1] == NO_ACCOUNT else 0.0
        return factor

    def factors(self, job: PendingJob, now: float) -> Factors:
        c = self.config
        w = c.weights
        return Factors(
            age=age_factor(now - job.eligible_time, w.max_age) if w.age else 0.0,
            fairshare=self.fairshare(job.user, job.account) if w.fairshare else 0.0,
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
        users: dict[tuple[str, str | None], float] = {}
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
            who = (job.user, job.account)
            share = users.get(who)
            if share is None:
                share = users[who] = w.fairshare * self.fairshare(job.user, job.account) if w.fairshare else 0.0
            age = (now - job.eligible_time) * age_rate
            if age > age_cap:
                age = age_cap
            elif age < 0:
                age = 0.0
            value = int(static + share + age - job.nice)
            # clamp_priority, inline: this loop runs over the whole backlog.
            job.priority = PRIORITY_MAX if value > PRIORITY_MAX else value if value > 1 else 1
