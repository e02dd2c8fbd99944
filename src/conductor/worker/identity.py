"""Process identity: whether a pid is still the process it was (pids are reused), and signalling
a job's process group only while the group is still the job's.

A process is known by its pid and its start time (field 22 of /proc/PID/stat, "ticks"), as the
launcher records it in the job's status file.
"""

from __future__ import annotations

import contextlib
import os
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


def signal_members(pid: int, ticks: int, sig: int, claimed: Iterable[int], *, others: bool = False) -> None:
    """Signal processes of the job's group `pid`: those `claimed` (pids a process of the job
    said are its sruns), or with `others` every member but those. A claimed pid is signalled
    only if it is a member of the group (not its leader, the batch script), checked here: the
    claim comes from a file the job's user wrote."""
    leader = process_info(pid)
    members = processes_in_group(pid)
    if not group_is_the_jobs(pid, ticks, leader, members if leader is None else []):
        return
    wanted = set(claimed)
    for member in members:
        if (member.pid in wanted) != others and (others or member.pid != pid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(member.pid, sig)


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
    return ProcessInfo(pid, fields[0].decode(), int(fields[2]), int(fields[3]), int(fields[19]))


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
