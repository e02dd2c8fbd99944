"""Slurm's multifactor priority and classic fair share, as pure functions.

Priority = PriorityWeightAge x age + PriorityWeightFairshare x fair share + PriorityWeightJobSize
x job size + PriorityWeightPartition x partition + PriorityWeightQOS x QOS - nice, each factor in
[0, 1] (Slurm's priority/multifactor page and priority_multifactor.c):

- age: the time since the job became eligible over PriorityMaxAge, at most 1;
- fair share (classic): 2^(-U/S), U the user's share of the decayed usage of all users, S the
  user's share of the shares (one share for each user with recorded usage: there are no
  associations yet);
- job size: the mean of its node fraction and CPU fraction of the cluster (one node here), or
  one minus each with PriorityFavorSmall;
- partition: its PriorityJobFactor over the largest one; QOS: its Priority over the largest one.

Usage is CPU-seconds decayed with a half-life H: what a job used at time t counts 2^(-(now-t)/H)
at `now` (Slurm's PriorityDecayHalfLife; None: no decay).

The priority is a uint32, as in Slurm: each weight may be 2^32-1, so the sum can pass it;
Slurm's _get_priority_internal then logs "priority exceeds 32 bits" and uses 0xffffffff.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# Slurm's job priority is a uint32; 0 means held.
PRIORITY_MAX = 2**32 - 1


def clamp_priority(value: float) -> int:
    """A weighted sum less nice as Slurm makes it a priority: truncated, at least 1, at most
    PRIORITY_MAX (what squeue's %p divides by)."""
    if value >= PRIORITY_MAX:
        return PRIORITY_MAX
    return max(int(value), 1)


@dataclass(frozen=True, slots=True)
class Weights:
    age: int = 0
    fairshare: int = 0
    job_size: int = 0
    partition: int = 0
    qos: int = 0
    max_age: float | None = 7 * 86400.0
    favor_small: bool = False

    @property
    def active(self) -> bool:
        return any((self.age, self.fairshare, self.job_size, self.partition, self.qos))


@dataclass(frozen=True, slots=True)
class Factors:
    """A job's normalised factors, each in [0, 1], and its nice."""

    age: float = 0.0
    fairshare: float = 0.0
    job_size: float = 0.0
    partition: float = 0.0
    qos: float = 0.0
    nice: int = 0

    def weighted(self, w: Weights) -> tuple[float, float, float, float, float]:
        return (w.age * self.age, w.fairshare * self.fairshare, w.job_size * self.job_size,
                w.partition * self.partition, w.qos * self.qos)

    def priority(self, w: Weights) -> int:
        """Slurm's sum, less nice, truncated; from 1 (0 means held) to PRIORITY_MAX."""
        return clamp_priority(sum(self.weighted(w)) - self.nice)


def age_factor(age: float, max_age: float | None) -> float:
    if not max_age or age <= 0:
        return 0.0
    return min(age / max_age, 1.0)


def job_size_factor(cpus: int, cluster_cpus: int, cluster_nodes: int, favor_small: bool) -> float:
    """Slurm's: the mean of the node fraction (one node) and, for more than one CPU, the CPU fraction."""
    if cluster_cpus <= 0 or cluster_nodes <= 0:
        return 0.0
    if favor_small:
        size = (cluster_nodes - 1) / cluster_nodes
        if cpus > 1:
            size += (cluster_cpus - cpus) / cluster_cpus
    else:
        size = 1 / cluster_nodes
        if cpus > 1:
            size += cpus / cluster_cpus
    return min(max(size / 2, 0.0), 1.0)


def fairshare_factor(usage: float, total_usage: float, shares: float, total_shares: float) -> float:
    """Classic fair share: 2^(-U/S) with U = usage/total_usage and S = shares/total_shares."""
    if shares <= 0 or total_shares <= 0:
        return 0.0
    used = usage / total_usage if total_usage > 0 else 0.0
    return float(2.0 ** (-used / (shares / total_shares)))


def decay(value: float, elapsed: float, half_life: float | None) -> float:
    """`value` after `elapsed` seconds of decay."""
    if not half_life or elapsed <= 0:
        return value
    return float(value * 2.0 ** (-elapsed / half_life))


def accrued(cpus: int, start: float, end: float, now: float, half_life: float | None) -> float:
    """The usage, decayed to `now`, of `cpus` CPUs used over [start, end] (end <= now):
    the integral of cpus x 2^(-(now - t)/H) over the interval."""
    if end <= start:
        return 0.0
    if not half_life:
        return cpus * (end - start)
    k = math.log(2) / half_life
    return float(cpus * (math.exp(-k * (now - end)) - math.exp(-k * (now - start))) / k)
