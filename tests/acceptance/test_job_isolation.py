"""What a job's process inherits from the daemon that launched it: nothing but its own stdio."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from support import Api, ConductorProcess

from conductor.worker.identity import signal_group, start_ticks
from conductor.worker.launcher_client import LAUNCHER

# The batch shell's own descriptors, listed by a child so the listing opens nothing in it.
LIST_FDS = "#!/bin/bash\nfind /proc/$$/fd -mindepth 1 -printf '%f %l\\n'\n"


def _descriptors(pid: int) -> dict[int, str]:
    found = {}
    for entry in Path(f"/proc/{pid}/fd").iterdir():
        try:
            found[int(entry.name)] = os.readlink(entry)
        except OSError:
            continue
    return found


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _launcher_pids(home: Path) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                args = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if LAUNCHER.encode() in args and str(home / "run").encode() in args:
                pids.append(int(entry.name))
    return pids


def test_descriptors_the_daemon_inherited_reach_neither_the_launcher_nor_jobs(
    start_conductor: Callable[..., ConductorProcess], tmp_path: Path
) -> None:
    # What a careless starter leaves open: a root-only file and a pipe, not close-on-exec.
    secret = tmp_path / "root-only"
    secret.write_text("secret\n")
    secret.chmod(0o600)
    secret_fd = os.open(secret, os.O_RDONLY)
    pipe_read, pipe_write = os.pipe()
    pipe = os.readlink(f"/proc/self/fd/{pipe_read}")
    home = tmp_path / "h"
    try:
        server = start_conductor("--cpus", "2", home=home, pass_fds=(secret_fd, pipe_read, pipe_write))
    finally:
        for fd in (secret_fd, pipe_read, pipe_write):
            os.close(fd)
    api = Api(server.url)
    job_id = api.submit(LIST_FDS, current_working_directory=str(tmp_path))
    assert api.wait_state(job_id, "COMPLETED")["exit_code"] == "0:0"
    listed = dict(line.split(" ", 1) for line in (tmp_path / f"slurm-{job_id}.out").read_text().splitlines())
    # stdio, and the script bash keeps open (at 255) to read it.
    assert set(listed) - {"255"} == {"0", "1", "2"}, listed
    assert listed["255"].endswith(f"job_{job_id}.sh"), listed
    # The launcher itself holds none of them either (it starts with 0-3 only).
    [launcher] = _launcher_pids(home)
    held = _descriptors(launcher)
    assert str(secret) not in held.values() and pipe not in held.values(), held


def test_a_reused_pid_is_not_signalled(tmp_path: Path) -> None:
    # A process (and group) that has the pid a job had, but not its start time: not the job.
    bystander = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        ticks = start_ticks(bystander.pid)
        assert ticks
        signal_group(bystander.pid, ticks - 1, 9)
        time.sleep(0.1)
        assert bystander.poll() is None
        signal_group(bystander.pid, ticks, 9)
        assert bystander.wait(5) == -9
    finally:
        bystander.kill()
        bystander.wait()


def test_the_group_of_a_job_whose_process_ended_is_still_signalled(tmp_path: Path) -> None:
    # The job's process ended, a process it started lives on in its group (its launcher died
    # and could not end the group): the group, whose id no new process can take, is the job's.
    leader = subprocess.Popen(
        ["bash", "-c", "sleep 60 & echo $!; read -r _ || true"],
        start_new_session=True,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert leader.stdout is not None and leader.stdin is not None
    child = int(leader.stdout.readline())
    ticks = start_ticks(leader.pid)
    assert ticks
    try:
        leader.stdin.close()
        assert leader.wait(5) == 0
        # Members started before the job did cannot be the job's.
        signal_group(leader.pid, start_ticks(child) + 1, 9)  # type: ignore[operator]
        time.sleep(0.1)
        assert _running(child)
        signal_group(leader.pid, ticks, 9)
        deadline = time.monotonic() + 5
        while _running(child):
            assert time.monotonic() < deadline, "the group's member survived"
            time.sleep(0.02)
    finally:
        try:
            os.kill(child, 9)
        except ProcessLookupError:
            pass
