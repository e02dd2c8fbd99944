"""What the worker needs of the store (the `Store` methods it calls), and of a job signaller.

The agent depends on these rather than on `Store` itself, so its decisions can be tested
against small fakes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Protocol

from conductor.domain.job import Job, JobRun
from conductor.domain.states import JobState
from conductor.store import Finish
from conductor.worker.running import RunningJob


class NodeStore(Protocol):
    """The node agent's queries: its registration and heartbeat, its jobs, their ends."""

    def register_node(
        self,
        *,
        name: str,
        cpus: int,
        cpu_ids: Sequence[int],
        cpu_binding: bool,
        memory_mb: int,
        partitions: Sequence[str],
        instance: str,
        hostname: str,
        stale_before: datetime | None,
        instance_alive: Callable[[str], bool] = ...,
        containment: str | None = None,
    ) -> None: ...

    def heartbeat(self, name: str, instance: str) -> bool: ...

    def set_node_down(self, name: str, instance: str | None, reason: str) -> None: ...

    def claim_for_launch(self, node: str) -> list[Job]: ...

    def record_pids(self, pids: Mapping[int, int]) -> None: ...

    def record_usage(self, usage: Mapping[int, str]) -> None: ...

    def running_on_node(self, node: str) -> list[JobRun]: ...

    def get_job(self, job_id: int) -> Job | None: ...

    def relaunch(self, node: str, job_ids: Sequence[int]) -> list[int]: ...

    def fail_stranded(self, node: str, job_ids: Sequence[int], message: str) -> list[int]: ...

    def kill_states(self, ids: Sequence[int]) -> dict[int, str | None]: ...

    def set_kill(self, job_id: int, kill_state: JobState, now: datetime | None = None) -> bool: ...

    def take_signals(self, node: str) -> dict[int, list[str]]: ...

    def finish(self, results: Sequence[Finish]) -> list[int]: ...


class Signaller(Protocol):
    """Sends signals to a job's processes (identified by pid and start ticks)."""

    def group(self, pid: int, ticks: int, sig: int) -> None:
        """Every process of the job (its process group)."""

    def batch(self, pid: int, ticks: int, sig: int) -> None:
        """The job's own process (its batch script) alone."""

    def steps(self, job: RunningJob, sig: int) -> None:
        """The job's steps alone: each srun running in it, which passes the signal on to its
        tasks (as slurmd signals steps, not the batch script)."""

    def full(self, job: RunningJob, sig: int) -> None:
        """Every process of the job once: the batch script and its children, and the steps'
        tasks through their srun (which would otherwise pass on a second one)."""
