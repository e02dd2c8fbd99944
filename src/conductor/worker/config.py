"""What a node offers and how its worker behaves: its CPUs, memory, partitions and timings."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class NodeConfig:
    name: str
    cpus: int
    memory_mb: int
    partitions: list[str]
    home: Path
    kill_wait: float = 30.0
    check_interval: float = 5.0
    heartbeat_interval: float = 2.0
    heartbeat_timeout: float = 30.0
    # Off unless configured: `conductor up` run by root turns it on for its local admin (root).
    allow_root_jobs: bool = False
    cpu_ids: list[int] = field(default_factory=list)
    cpu_binding: bool = False
    # Per-job containment (containment.py): "auto" takes cgroup v2, else v1, else polling.
    containment: str = "auto"
    cgroup_root: Path = Path("/sys/fs/cgroup")
    max_job_pids: int | None = None  # processes one job may have at once (None: no cap)
    acct_interval: float = 30.0  # seconds between usage samples (Slurm's JobAcctGatherFrequency)
    kill_over_memory: bool = False  # polling fallback: kill a job over its memory
    cgroup_warm: bool = True  # the launcher keeps the kernel's cgroup lock warm (launcher.py)
    job_starter: str = "auto"  # "auto": the C job starter where it can be built (starter.py); "python"
    # A node among many (`conductor worker`): once its worker is gone, its launcher kills its
    # jobs before the scheduler could declare the node dead and run them elsewhere (launcher.py).
    fenced: bool = False

    @property
    def fence_after(self) -> float | None:
        """Seconds without a worker after which the launcher kills the node's jobs: the node is
        declared dead `heartbeat_timeout` after its last heartbeat, which came up to an interval
        before the worker went, so always under the timeout less an interval; a second is left
        for the kill where there is room (a worker restarted at once comes back well before)."""
        if not self.fenced:
            return None
        room = self.heartbeat_timeout - self.heartbeat_interval
        return max(room - 1.0, room / 2)


def plan_cpus(declared: int) -> tuple[list[int], bool]:
    """The CPU ids a node hands out, and whether jobs can be bound to them.

    When the node declares no more CPUs than this process may use, its ids are the machine's
    real cores and jobs are pinned to them; otherwise they are virtual ids 0..N-1 and binding
    is off (the caller says so at start-up).
    """
    available = sorted(os.sched_getaffinity(0))
    if declared <= len(available):
        return available[:declared], True
    return list(range(declared)), False


def machine_memory_mb() -> int:
    import psutil

    return int(psutil.virtual_memory().total // (1024 * 1024))
