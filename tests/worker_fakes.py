"""Small fakes of the worker's ports (conductor.worker.ports): the store and the signaller.

They keep what they were told, in order, so a test can say what the worker did; the store's
answers are set by the test, and any of its methods can be made to fail like a lost database.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from conductor.domain.job import Job, JobRun
from conductor.domain.states import JobState
from conductor.store import Finish
from conductor.worker.running import RunningJob


class DatabaseDown(Exception):
    pass


class FakeStore:
    def __init__(self) -> None:
        self.rows: list[JobRun] = []  # running_on_node's answer
        self.requested: dict[int, str | None] = {}  # kill_states' answer
        self.signals: dict[int, list[str]] = {}  # take_signals' answer (taken once)
        self.failing: set[str] = set()  # names of methods that raise DatabaseDown
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        self.finished: list[Finish] = []

    def _call(self, name: str, *args: Any) -> None:
        self.calls.append((name, args))
        if name in self.failing:
            raise DatabaseDown(name)

    def called(self, name: str) -> list[tuple[Any, ...]]:
        return [args for called, args in self.calls if called == name]

    def register_node(self, **fields: Any) -> None:
        self._call("register_node", fields)

    def heartbeat(self, name: str, instance: str) -> bool:
        self._call("heartbeat", name, instance)
        return True

    def set_node_down(self, name: str, instance: str | None, reason: str) -> None:
        self._call("set_node_down", name, instance, reason)

    def claim_for_launch(self, node: str) -> list[Job]:
        self._call("claim_for_launch", node)
        return []

    def record_pids(self, pids: Mapping[int, int]) -> None:
        self._call("record_pids", dict(pids))

    def record_usage(self, usage: Mapping[int, str]) -> None:
        self._call("record_usage", dict(usage))

    def get_job(self, job_id: int) -> Job | None:
        self._call("get_job", job_id)
        return None

    def running_on_node(self, node: str) -> list[JobRun]:
        self._call("running_on_node", node)
        return self.rows

    def relaunch(self, node: str, job_ids: Sequence[int]) -> list[int]:
        self._call("relaunch", node, list(job_ids))
        return list(job_ids)

    def fail_stranded(self, node: str, job_ids: Sequence[int], message: str) -> list[int]:
        self._call("fail_stranded", node, list(job_ids), message)
        return list(job_ids)

    def kill_states(self, ids: Sequence[int]) -> dict[int, str | None]:
        self._call("kill_states", list(ids))
        return {i: self.requested[i] for i in ids if i in self.requested}

    def set_kill(self, job_id: int, kill_state: JobState, now: datetime | None = None) -> bool:
        self._call("set_kill", job_id, kill_state)
        return True

    def take_signals(self, node: str) -> dict[int, list[str]]:
        self._call("take_signals", node)
        taken, self.signals = self.signals, {}
        return taken

    def finish(self, results: Sequence[Finish]) -> list[int]:
        self._call("finish", list(results))
        self.finished.extend(results)
        return [r.job_id for r in results]


class FakeSignaller:
    def __init__(self) -> None:
        self.sent: list[tuple[str, int, int]] = []  # ("group", "batch", "steps" or "full", pid, signal)

    def group(self, pid: int, ticks: int, sig: int) -> None:
        self.sent.append(("group", pid, int(sig)))

    def batch(self, pid: int, ticks: int, sig: int) -> None:
        self.sent.append(("batch", pid, int(sig)))

    def steps(self, job: RunningJob, sig: int) -> None:
        self.sent.append(("steps", job.pid, int(sig)))

    def full(self, job: RunningJob, sig: int) -> None:
        self.sent.append(("full", job.pid, int(sig)))


def running_row(job_id: int, **fields: Any) -> JobRun:
    """A record of running_on_node, as the store returns it."""
    values: dict[str, Any] = {
        "id": job_id,
        "launched": True,
        "pid": 100 + job_id,
        "start_time": None,
        "time_limit": None,
        "kill_state": None,
        "kill_time": None,
        "restart_count": 0,
        "signal_spec": None,
        "pending_signal": None,
        "requeue": False,
    }
    values.update(fields)
    return JobRun(**values)


def job_record(job_id: int, **fields: Any) -> Job:
    """A whole job as the store returns it (a pending job of root's, unless `fields` say else)."""
    values: dict[str, Any] = {name: None for name in Job.__dataclass_fields__}
    values.update(
        id=job_id, name="job", user_name="root", partition="debug", state="PENDING", reason="None", priority=0,
        nice=0, cpus_per_task=1, ntasks=1, exclusive=False, allocated_cpus=0, allocated_memory_mb=0,
        submit_time=datetime(2026, 1, 1, tzinfo=UTC), work_dir="/tmp", open_mode="truncate", held=False,
        requeue=False, restart_count=0, launched=False,
    )
    values.update(fields)
    return Job(**values)
