"""Containment: each job's group of processes on its node, which limits its memory, CPUs and
process count, holds every process the job starts, measures what it used, and kills all of it.

Three kinds, chosen once when the worker starts (`detect`), as Slurm's task/cgroup and
jobacct_gather plugins do:
- cgroup v2 (cgroups.CgroupV2): a writable unified hierarchy with the memory controller;
- cgroup v1 (cgroups.CgroupV1): the memory, cpuacct, freezer, cpuset (and pids) hierarchies;
- polling (polling.Polling): no control groups (not root, nothing writable). The job's
  processes are found by session, process group and parentage and read from /proc every
  sampling interval, as jobacct_gather/linux does; a job over its memory is killed when
  configured to; the process cap is RLIMIT_NPROC. What escapes (a process that left the job's
  session and lost its parent between two samples) is not held.

The job's process joins its group before it runs anything: the worker makes the group, the
launcher writes the forked process's pid into the group's `cgroup.procs` files before it gives
the go (see protocol.py).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Protocol

from conductor.domain.usage import Usage
from conductor.errors import ConductorError

log = logging.getLogger("conductor.worker")



class ContainmentError(ConductorError):
    """The containment asked for cannot be had on this machine."""


@dataclass(frozen=True, slots=True)
class Limits:
    """What one job may use."""

    memory_bytes: int | None = None  # RAM (and RAM plus swap: swap must not help)
    cpus: frozenset[int] | None = None  # the cpuset (None: the node's)
    max_pids: int | None = None  # processes (and threads) at once


@dataclass(frozen=True, slots=True)
class Sample:
    """One reading of a running job's processes."""

    rss: int
    vmsize: int | None
    over_memory: bool = False  # the polling fallback killed it for its memory
    usage: Usage | None = None  # its figures so far (CPU, memory high-water mark)


class Containment(Protocol):
    """One node's job groups. Jobs are named by id; methods never raise for a job whose group
    is already gone."""

    mode: str  # "cgroup-v2", "cgroup-v1" or "polling"

    def describe(self) -> str:
        """One line for the start-up log: the mode and what it enforces."""

    def create(self, job_id: int, limits: Limits) -> list[str]:
        """Make the job's group, before its launch; returns the files its process's pid is to
        be written to (cgroup.procs), none for the polling fallback. Raises OSError."""

    def started(self, job_id: int, pid: int, ticks: int, limits: Limits) -> None:
        """The job's process runs (pid, start ticks): the polling fallback follows it from here."""

    def sample(self, job_ids: list[int]) -> dict[int, Sample]:
        """Read the running jobs' usage now (kept for AveRSS/MaxVMSize); the polling fallback also
        kills those over their memory here."""

    def signal(self, job_id: int, sig: int) -> None:
        """Signal every process of the job's group."""

    def finish(self, job_id: int) -> Usage:
        """The job's process ended: its figures, then every process left in its group is killed
        and the group removed (later, if it cannot be yet)."""

    def tidy(self) -> None:
        """Retry removing the groups that still had processes (polling: kill what ended jobs
        left, at most every few tenths of a second)."""

    def due(self) -> float | None:
        """Seconds until tidy() has something to do; None: nothing pending."""

    def leftovers(self) -> list[int]:
        """The jobs that have a group on this node (at start: those of a previous worker)."""

    def launcher_group(self) -> str | None:
        """The cgroup.procs file of a group for the launcher itself (see WARM_INTERVAL in
        launcher.py), made now; None: none (polling, or not wanted)."""

    def close(self) -> None:
        """The worker stops: remove what no job needs (kept spare groups, an empty node group)."""


def job_of(name: str) -> int | None:
    """The job a group is named after (job_<id>), if it is one."""
    prefix, _, number = name.partition("_")
    return int(number) if prefix == "job" and number.isdigit() else None


def write_text(path: str, value: str, create: bool = False) -> None:
    flags = os.O_WRONLY | (os.O_CREAT | os.O_TRUNC if create else 0)
    fd = os.open(path, flags, 0o644)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


def read_text(path: str) -> str | None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        return os.read(fd, 65536).decode(errors="replace")
    except OSError:
        return None
    finally:
        os.close(fd)


def read_int(path: str) -> int | None:
    text = read_text(path)
    if text is None:
        return None
    try:
        return int(text.split()[0])
    except (ValueError, IndexError):
        return None


def read_keyed(path: str) -> dict[str, int]:
    """A flat keyed file ("key value" lines: memory.stat, cpu.stat, memory.events, oom_control)."""
    out: dict[str, int] = {}
    for line in (read_text(path) or "").splitlines():
        key, _, value = line.partition(" ")
        if value.strip().lstrip("-").isdigit():
            out[key] = int(value)
    return out


def read_pids(path: str) -> list[int]:
    return [int(word) for word in (read_text(path) or "").split() if word.isdigit()]
