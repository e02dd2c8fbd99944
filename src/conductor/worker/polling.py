"""The containment without control groups: the job's processes are found and read from /proc
every sampling interval, as Slurm's jobacct_gather/linux does (see containment.py).

A job's processes: its session and process group (the job's process leads both), and every
process whose parent was one of them when last looked at (a `setsid` child is found when its
parent was seen; a double fork between two samples escapes). Each is known by pid and start
time, so a reused pid is never taken for it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from dataclasses import dataclass, field

import psutil

from conductor.domain.usage import Usage
from conductor.worker import protocol
from conductor.worker.containment import Limits, Sample

log = logging.getLogger("conductor.worker")

PAGE = os.sysconf("SC_PAGE_SIZE")
# What ended jobs left behind is looked for at most this often: one pass over /proc costs a few
# milliseconds with a few hundred processes, which a drain of short jobs would pay at every tick.
SWEEP_INTERVAL = 0.25
TICK = os.sysconf("SC_CLK_TCK")


@dataclass(slots=True)
class _Proc:
    ppid: int
    pgid: int
    sid: int
    ticks: int
    cpu: float  # user + system seconds
    user: float
    system: float
    rss: int
    vmsize: int


@dataclass(slots=True)
class _Job:
    pid: int
    ticks: int
    memory_bytes: int | None
    members: dict[int, int] = field(default_factory=dict)  # pid -> start ticks
    # CPU of processes seen once and gone since: their last reading.
    gone_user: float = 0.0
    gone_system: float = 0.0
    last: dict[int, tuple[float, float]] = field(default_factory=dict)
    samples: int = 0
    max_rss: int = 0
    max_vmsize: int = 0
    over_memory: bool = False


def _read(pid: int) -> _Proc | None:
    fields = protocol.proc_stat(pid)
    if fields is None or len(fields) <= 21 or fields[0] == b"Z":
        return None
    user, system = int(fields[11]) / TICK, int(fields[12]) / TICK
    return _Proc(
        ppid=int(fields[1]),
        pgid=int(fields[2]),
        sid=int(fields[3]),
        ticks=int(fields[19]),
        cpu=user + system,
        user=user,
        system=system,
        rss=int(fields[21]) * PAGE,
        vmsize=int(fields[20]),
    )


class Polling:
    """No control groups: polls the jobs' processes (see the module's docstring)."""

    mode = "polling"

    def __init__(self, kill_over_memory: bool = False) -> None:
        self.kill_over_memory = kill_over_memory
        self._jobs: dict[int, _Job] = {}
        # Ended jobs whose leftovers are yet to be killed: one pass over /proc for all of them
        # (tidy), not one per job end, which would cost a drain of short jobs dearly.
        self._ended: dict[int, _Job] = {}
        self._swept = 0.0

    def describe(self) -> str:
        memory = "jobs over their memory are killed" if self.kill_over_memory else "memory limits not enforced"
        return (
            "no control groups: jobs' processes are polled for memory and CPU "
            f"({memory}; the process cap is RLIMIT_NPROC)"
        )

    def create(self, job_id: int, limits: Limits) -> list[str]:
        return []

    def started(self, job_id: int, pid: int, ticks: int, limits: Limits) -> None:
        self._jobs[job_id] = _Job(pid, ticks, limits.memory_bytes, {pid: ticks})

    def _scan(self, jobs: dict[int, _Job]) -> dict[int, dict[int, _Proc]]:
        """Every live process of each job, found in one pass over /proc."""
        table: dict[int, _Proc] = {}
        for pid in psutil.pids():
            proc = _read(pid)
            if proc is not None:
                table[pid] = proc
        found: dict[int, dict[int, _Proc]] = {}
        for job_id, job in jobs.items():
            mine: dict[int, _Proc] = {}
            for pid, proc in table.items():
                if proc.ticks < job.ticks:
                    continue
                known = job.members.get(pid)
                if known == proc.ticks or proc.sid == job.pid or proc.pgid == job.pid:
                    mine[pid] = proc
            # Children of members, however far they went (setsid): until nothing is added.
            added = True
            while added:
                added = False
                for pid, proc in table.items():
                    if pid not in mine and proc.ppid in mine and proc.ticks >= job.ticks:
                        mine[pid] = proc
                        added = True
            found[job_id] = mine
        return found

    def sample(self, job_ids: list[int]) -> dict[int, Sample]:
        jobs = {job_id: self._jobs[job_id] for job_id in job_ids if job_id in self._jobs}
        if not jobs:
            return {}
        out = {}
        for job_id, procs in self._scan(jobs).items():
            job = jobs[job_id]
            for pid, (user, system) in list(job.last.items()):
                if pid not in procs:
                    job.gone_user += user
                    job.gone_system += system
                    del job.last[pid]
            job.members = {pid: proc.ticks for pid, proc in procs.items()} or job.members
            job.last = {pid: (proc.user, proc.system) for pid, proc in procs.items()}
            rss = sum(proc.rss for proc in procs.values())
            vmsize = sum(proc.vmsize for proc in procs.values())
            job.samples += 1
            job.max_rss = max(job.max_rss, rss)
            job.max_vmsize = max(job.max_vmsize, vmsize)
            over = self.kill_over_memory and job.memory_bytes is not None and rss > job.memory_bytes
            if over and not job.over_memory:
                log.warning("job %s uses %d bytes, over its %d: killing it", job_id, rss, job.memory_bytes)
                job.over_memory = True
                self._signal(procs, signal.SIGKILL)
            so_far = Usage(
                user_cpu=job.gone_user + sum(proc.user for proc in procs.values()),
                system_cpu=job.gone_system + sum(proc.system for proc in procs.values()),
                max_rss=job.max_rss,
                ave_rss=job.max_rss,
                max_vmsize=job.max_vmsize,
                oom_kills=1 if job.over_memory else 0,
                source=self.mode,
            )
            out[job_id] = Sample(rss, vmsize, over, so_far)
        return out

    def _signal(self, procs: dict[int, _Proc], sig: int) -> None:
        for pid, proc in procs.items():
            # Still the process that was read (pids are reused).
            if protocol.start_ticks(pid) == proc.ticks:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, sig)

    def signal(self, job_id: int, sig: int) -> None:
        job = self._jobs.get(job_id)
        if job is not None:
            self._signal(self._scan({job_id: job})[job_id], sig)

    def finish(self, job_id: int) -> Usage:
        job = self._jobs.pop(job_id, None)
        if job is None:
            return Usage(source=self.mode)
        self._ended[job_id] = job
        # Its processes as last sampled (the batch script's own figures come with its exit).
        user = job.gone_user + sum(user for user, _ in job.last.values())
        system = job.gone_system + sum(system for _, system in job.last.values())
        sampled = job.samples > 0
        return Usage(
            # The batch script's own figures (wait4) come with its exit and are merged in: they
            # count what it waited for, which a sample may have missed.
            user_cpu=user if sampled else None,
            system_cpu=system if sampled else None,
            max_rss=job.max_rss if sampled else None,
            ave_rss=job.max_rss if sampled else None,  # Slurm's: the mean over tasks; one here
            max_vmsize=job.max_vmsize if sampled else None,
            oom_kills=1 if job.over_memory else 0,
            source=self.mode,
        )

    def due(self) -> float | None:
        if not self._ended:
            return None
        return max(self._swept + SWEEP_INTERVAL - time.monotonic(), 0.0)

    def tidy(self, now: float | None = None) -> None:
        """Kill what ended jobs left behind (their sessions, groups and descendants)."""
        if not self._ended:
            return
        now = time.monotonic() if now is None else now
        if now < self._swept + SWEEP_INTERVAL:
            return
        self._swept = now
        ended, self._ended = self._ended, {}
        for procs in self._scan(ended).values():
            self._signal(procs, signal.SIGKILL)

    def leftovers(self) -> list[int]:
        return []

    def launcher_group(self) -> str | None:
        return None

    def close(self) -> None:
        self.tidy(float("inf"))
