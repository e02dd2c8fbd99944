"""Process identity: whether a pid is still the process it was (pids are reused), and signalling
a job's process group only while the group is still the job's.

A process is known by its pid and its start time (field 22 of /proc/PID/stat, "ticks"), as the
launcher records it in the job's status file.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from conductor.worker import protocol


@dataclass(frozen=True, slots=True)
class ProcessInfo:
    """What /proc/PID/stat says of a process that signal_group needs."""

    pid: int
    state: str
    pgid: int
    sid: int
    ticks: int  # start time (field 22)
    ppid: int = 0


def group_is_the_jobs(pid: int, ticks: int, leader: ProcessInfo | None, members: Iterable[ProcessInfo]) -> bool:
    """Whether process group `pid` is still the job's whose process was `pid`, started at `ticks`.

    A process with that pid is the job's exactly when its start time is the job's (a zombie
    too: its pid and group are not free until it is reaped). A process with that pid and
    another start time means the pid was reused, which the kernel does only once no process
    is left in the old group: whatever group `pid` is now is someone else's.

    No process with that pid: the job's process ended, and its group may live on (its launcher
    ends the group at once, but a launcher that died cannot). A pid is not handed out while
    a process group or session of that id has a member, so members of group `pid` and of
    session `pid` (the job made itself both) are the job's, as long as the group never emptied
    meanwhile: then the pid could have gone to a new process that made a session of its own
    and left its children in it. Those started after that new process, which started after
    the job's group emptied; the job's started after the job. The start-time check below
    (no member older than the job) is what can be checked; the rest of that sequence needs
    the pid space to wrap around between the job's end and this signal.
    """
    if not ticks:
        return False
    if leader is not None:
        return leader.ticks == ticks
    return any(m.pgid == pid and m.sid == pid and m.ticks >= ticks and m.state != "Z" for m in members)


def signal_group(pid: int, ticks: int, sig: int) -> None:
    """Signal a job: its process group, led by its process (`ticks`: that process's start time),
    once group_is_the_jobs says the group is still the job's.

    The launcher replies as soon as the job's process is forked, which makes itself a session
    (and group) first thing, but may not have yet: without a group, it is signalled alone (it
    is all there is of the job until it runs the command).
    """
    leader = process_info(pid)
    members = processes_in_group(pid) if leader is None and ticks else []
    if not group_is_the_jobs(pid, ticks, leader, members):
        return
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        if leader is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)
    except PermissionError:
        pass


def signal_steps(pid: int, ticks: int, sig: int, sruns: Iterable[tuple[int, int]], *, everything: bool = False) -> None:
    """Signal the job's steps: every process its sruns started (their tasks, and what those
    started), as slurmd signals a step's processes, never the batch script nor srun itself.
    With `everything`, every process of the job but its sruns, once each (the steps' tasks get
    it directly; srun, not signalled, passes nothing on).

    `sruns`: (pid, start ticks) as each srun registered itself, in a file the job's user
    wrote. A claim only counts for a member of the job's process group with that start time,
    and only members of the group are ever signalled, each through a pidfd opened and checked
    first, so a pid reused meanwhile is never signalled."""
    leader = process_info(pid)
    members = processes_in_group(pid)
    if not group_is_the_jobs(pid, ticks, leader, members if leader is None else []):
        return
    by_pid = {member.pid: member for member in members}
    claimed = {p for p, t in sruns if p != pid and p in by_pid and by_pid[p].ticks == t}
    if everything:
        targets = [m for m in members if m.pid not in claimed]
    else:
        children: dict[int, list[ProcessInfo]] = {}
        for member in members:
            children.setdefault(member.ppid, []).append(member)
        targets, seen, queue = [], set(claimed), list(claimed)
        while queue:  # the sruns' descendants within the group
            for child in children.get(queue.pop(), []):
                if child.pid not in seen:
                    seen.add(child.pid)
                    queue.append(child.pid)
                    if child.pid not in claimed:
                        targets.append(child)
    for target in targets:
        _send_checked(target, pid, sig)


def _send_checked(target: ProcessInfo, pgid: int, sig: int) -> None:
    """Signal `target` if it is still the process that was read (its start time) and still in
    group `pgid`: checked through a pidfd, which stays that process whatever happens to the pid."""
    try:
        fd = os.pidfd_open(target.pid)
    except OSError:
        return  # gone
    try:
        now = process_info(target.pid)
        if now is not None and now.ticks == target.ticks and now.pgid == pgid:
            signal.pidfd_send_signal(fd, sig)
    except OSError:
        pass
    finally:
        os.close(fd)


def signal_process(pid: int, ticks: int, sig: int) -> None:
    """Signal the job's process alone (`scancel --batch`, `--signal=B:`), if it is still the job's."""
    if is_process(pid, ticks):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def start_ticks(pid: int) -> int | None:
    """When the process started (field 22 of /proc/PID/stat, in clock ticks since boot)."""
    return protocol.start_ticks(pid)


def same_launcher(recorded: tuple[int, int], launcher: tuple[int, int]) -> bool:
    return recorded[0] == launcher[0] and (not recorded[1] or not launcher[1] or recorded[1] == launcher[1])


def launcher_alive(launcher: tuple[int, int]) -> bool:
    """Whether the launcher of that pid and start time still runs (it may yet write exit lines)."""
    fields = protocol.proc_stat(launcher[0])
    return (
        fields is not None and len(fields) > 19 and fields[0] != b"Z" and (not launcher[1] or int(fields[19]) == launcher[1])
    )


def is_process(pid: int, ticks: int, *, running: bool = False) -> bool:
    """Whether `pid` is still the process that started at `ticks`, and not a reused pid (with
    `running`: and not a zombie)."""
    if not pid:
        return False
    fields = protocol.proc_stat(pid)
    return (
        ticks != 0
        and fields is not None
        and len(fields) > 19
        and int(fields[19]) == ticks
        and not (running and fields[0] == b"Z")
    )


def process_info(pid: int) -> ProcessInfo | None:
    fields = protocol.proc_stat(pid)
    if fields is None or len(fields) <= 19:
        return None
    # From the third field on: state, ppid, pgrp, session, ... starttime (22nd).
    return ProcessInfo(pid, fields[0].decode(), int(fields[2]), int(fields[3]), int(fields[19]), int(fields[1]))


def processes_in_group(pgid: int) -> list[ProcessInfo]:
    """The processes of a process group, read from /proc."""
    members = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            process = process_info(int(entry))
            if process is not None and process.pgid == pgid:
                members.append(process)
    return members


def instance_may_be_alive(instance: str) -> bool:
    """False only when the instance ran on this host and its process is gone."""
    host, _, rest = instance.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return True
    pid = int(pid_text)
    if pid == os.getpid():
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"conductor" in cmdline
