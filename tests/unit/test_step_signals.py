"""Signals for a job's steps (worker/identity.signal_steps) on real processes: a job's process
group led by its batch script, an "srun" that registered itself, its task, and another child
of the script. And the registrations as the worker reads them (worker/steps.StepRecords.sruns),
from a file the job's user wrote."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conductor.worker.identity import signal_steps
from conductor.worker.protocol import start_ticks
from conductor.worker.steps import StepRecords

# Each process counts the SIGUSR1 it gets in a file named after its role.
MARK = """
import os, signal, sys, time
where, role = sys.argv[1], sys.argv[2]
def got(signum, frame):
    with open(os.path.join(where, role), "a") as f:
        f.write("x")
signal.signal(signal.SIGUSR1, got)
"""
TASK = MARK + "open(os.path.join(where, role + '.pid'), 'w').write(str(os.getpid()))\ntime.sleep(60)\n"
SRUN = MARK + f"""
import subprocess
task = subprocess.Popen([sys.executable, "-c", {TASK!r}, where, "task"])
open(os.path.join(where, "srun.pid"), "w").write(str(os.getpid()))
time.sleep(60)
"""
LEADER = MARK + f"""
import subprocess
srun = subprocess.Popen([sys.executable, "-c", {SRUN!r}, where, "srun"])
other = subprocess.Popen([sys.executable, "-c", {TASK!r}, where, "other"])
time.sleep(60)
"""


@pytest.fixture
def job(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    leader = subprocess.Popen([sys.executable, "-c", LEADER, str(tmp_path), "leader"], start_new_session=True)
    deadline = time.monotonic() + 20
    while not all((tmp_path / f"{role}.pid").exists() for role in ("srun", "task", "other")):
        assert time.monotonic() < deadline, "the processes did not start"
        time.sleep(0.05)
    time.sleep(0.2)  # their handlers are in place before they write their pid
    try:
        yield leader, tmp_path
    finally:
        os.killpg(leader.pid, signal.SIGKILL)
        leader.wait()


def counts(where: Path) -> dict[str, int]:
    time.sleep(0.5)  # the handlers run
    return {role: len((where / role).read_text()) if (where / role).exists() else 0
            for role in ("leader", "srun", "task", "other")}


def pid(where: Path, role: str) -> int:
    return int((where / f"{role}.pid").read_text())


def test_steps_get_it_through_nothing_but_their_srun_and_everything_once(
    job: tuple[subprocess.Popen[bytes], Path],
) -> None:
    leader, where = job
    ticks = start_ticks(leader.pid) or 0
    srun = pid(where, "srun")
    sruns = [(srun, start_ticks(srun) or 0)]
    signal_steps(leader.pid, ticks, signal.SIGUSR1, sruns)
    assert counts(where) == {"leader": 0, "srun": 0, "task": 1, "other": 0}
    signal_steps(leader.pid, ticks, signal.SIGUSR1, sruns, everything=True)
    assert counts(where) == {"leader": 1, "srun": 0, "task": 2, "other": 1}


def test_a_claim_counts_only_for_a_process_of_the_job_with_its_start_time(
    job: tuple[subprocess.Popen[bytes], Path],
) -> None:
    leader, where = job
    ticks = start_ticks(leader.pid) or 0
    srun = pid(where, "srun")
    outsider = subprocess.Popen([sys.executable, "-c", TASK, str(where), "outsider"])
    try:
        time.sleep(1)
        claims = [
            (srun, (start_ticks(srun) or 0) + 1),  # a reused pid: not the process that registered
            (outsider.pid, start_ticks(outsider.pid) or 0),  # not in the job's group
            (leader.pid, ticks),  # the batch script itself
            (os.getpid(), start_ticks(os.getpid()) or 0),
        ]
        signal_steps(leader.pid, ticks, signal.SIGUSR1, claims)
        assert counts(where) == {"leader": 0, "srun": 0, "task": 0, "other": 0}
        assert not (where / "outsider").exists()
        # Not the job's group at all (its leader's start time is another): nothing.
        signal_steps(leader.pid, ticks + 1, signal.SIGUSR1, [(srun, start_ticks(srun) or 0)], everything=True)
        assert counts(where) == {"leader": 0, "srun": 0, "task": 0, "other": 0}
    finally:
        outsider.kill()
        outsider.wait()


def test_registrations_are_read_from_the_users_own_file_only(tmp_path: Path) -> None:
    records = StepRecords(tmp_path)
    path = Path(records.clear(7))
    lines = [{"srun": 101, "ticks": 5}, {"step_id": 0, "state": "COMPLETED"}, {"srun": 102, "ticks": 6},
             {"srun_ended": 101}, {"srun": "103", "ticks": 1}, ["srun"], {"srun": 104, "ticks": 7}]
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\nnot json \"srun\n")
    try:
        me = os.getuid()
        assert records.sruns(7, me) == [(102, 6), (104, 7)]
        assert records.sruns(7, me + 1) == []  # another user's file
        assert records.sruns(7, None) == []  # the job's user not known: nothing trusted
        path.unlink()
        os.mkfifo(path)  # a pipe is not read (nor waited on)
        assert records.sruns(7, me) == []
        path.unlink()
        target = tmp_path / "elsewhere"
        target.write_text(json.dumps({"srun": 1, "ticks": 1}))
        path.symlink_to(target)  # nor followed through a link
        assert records.sruns(7, me) == []
    finally:
        path.unlink(missing_ok=True)


def test_the_records_file_is_made_anew_for_the_jobs_user_at_launch(tmp_path: Path) -> None:
    """Nobody else can make it first and have the job's sruns write where the worker will not
    trust them: what was at the path goes (a link included, never followed), and the file is
    made again, the user's, 0600."""
    records = StepRecords(tmp_path)
    path = Path(records.path(8))
    target = tmp_path / "victim"
    target.write_text("kept")
    path.unlink(missing_ok=True)
    path.symlink_to(target)
    try:
        assert records.clear(8, os.getuid(), os.getgid()) == str(path)
        info = path.lstat()
        assert not path.is_symlink() and info.st_uid == os.getuid() and info.st_mode & 0o777 == 0o600
        assert path.read_text() == "" and target.read_text() == "kept"
    finally:
        path.unlink(missing_ok=True)
