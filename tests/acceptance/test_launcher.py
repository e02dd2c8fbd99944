"""The worker's job launcher (worker/launcher.py --serve), the parent of every job: its protocol driven
directly, and its life inside a real `conductor up` (killed, outlived by its worker, its jobs
re-adopted)."""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support import Api, ConductorProcess, is_live_process, launchers

from conductor.worker.identity import is_process, signal_group, start_ticks
from conductor.worker.launcher_client import Launcher, LaunchRequest, RunAs, Started, launch_frame
from conductor.worker.outcome import NO_EXIT_STATUS
from conductor.worker.spool import read_status

ME = RunAs("", "", "", None, "me")
# Until the test says go, or for 30 s should the test fail first: no job is left behind.
WAIT_FOR_GO = "end=$((SECONDS + 30)); while [ ! -e go ] && [ $SECONDS -lt $end ]; do sleep 0.02; done\n"


def _wait(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


class Rig:
    """A launcher of its own in a status directory, as a worker runs it."""

    def __init__(self, root: Path, timeout: float = 10.0, starter: str | None = None) -> None:
        self.root = root
        self.starter = starter
        self.status_dir = root / "run"
        self.status_dir.mkdir(parents=True)
        self.lock_path = self.status_dir / "launcher.lock"
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        self.lock_fd = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
        os.close(fd)
        fcntl.flock(self.lock_fd, fcntl.LOCK_EX)
        self.launcher = Launcher(self.status_dir, self.lock_fd, root / "launcher.log", timeout, starter=starter)
        self.exits: dict[int, str] = {}  # tag -> what the launcher said of the end
        self.lost: set[int] = set()

    def status_path(self, job_id: int) -> str:
        return str(self.status_dir / f"job_{job_id}.status")

    def request(
        self,
        job_id: int,
        script: str,
        cpus: frozenset[int] | None = None,
        env: dict[str, str] | None = None,
        spare: str = "",
        cwd: str | None = None,
        out: str | None = None,
    ) -> LaunchRequest:
        path = self.root / f"job_{job_id}.sh"
        path.write_text("#!/bin/bash\n" + script)
        path.chmod(0o755)
        status = self.status_path(job_id)
        out = out or str(self.root / f"job_{job_id}.out")
        body = launch_frame(
            status,
            ME,
            cwd or str(self.root),
            ("/dev/null", out, out),
            "truncate",
            [str(path)],
            env or {"PATH": "/usr/bin:/bin"},
            spare,
        )
        return LaunchRequest(job_id, status, body, cpus)

    def output(self, job_id: int) -> str:
        return (self.root / f"job_{job_id}.out").read_text()

    def ended(self, job_id: int) -> bool:
        return read_status(self.status_path(job_id)).exit is not None

    def events(self) -> None:
        self.launcher.poll()
        exits, lost = self.launcher.events()
        self.exits.update(exits)
        self.lost.update(lost)

    def lock_free(self) -> bool:
        fd = os.open(self.lock_path, os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        finally:
            os.close(fd)
        return True

    def close(self) -> None:
        self.launcher.close()
        if self.lock_fd >= 0:
            os.close(self.lock_fd)
            self.lock_fd = -1


@pytest.fixture(params=["fork", "starter"])
def rig(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Rig]:
    """A rig whose launcher forks each job, or spawns it by the job starter (starter.c)."""
    starter = request.getfixturevalue("built_job_starter") if request.param == "starter" else None
    made = Rig(tmp_path, starter=starter)
    yield made
    made.close()


def _started(results: dict[int, Started | str]) -> dict[int, Started]:
    assert all(isinstance(outcome, Started) for outcome in results.values()), results
    return results  # type: ignore[return-value]


def test_jobs_start_and_report_exit_status_and_cpu_times(rig: Rig) -> None:
    busy = "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done\nexit 4\n"
    big = "python3 -c 'block = bytearray(60 << 20); block[::4096] = b\"x\" * len(block[::4096])'\n"
    requests = [rig.request(1, "echo one $FOO\n", env={"FOO": "bar"}), rig.request(2, busy), rig.request(3, big)]
    started = _started(rig.launcher.launch(requests))

    def reported() -> bool:
        rig.events()
        return all(started[i].tag in rig.exits for i in (1, 2, 3))

    _wait(reported)
    assert rig.output(1) == "one bar\n"
    first = read_status(rig.status_path(1))
    # The job's own process: its pid and start time are its identity.
    assert first.pid == started[1].pid and first.ticks == started[1].ticks and first.exit == (0, 0)
    assert first.launcher == (rig.launcher.pid, start_ticks(rig.launcher.pid))
    second = read_status(rig.status_path(2))
    assert second.exit == (4, 0)
    assert second.rusage is not None and second.rusage["utime"] + second.rusage["stime"] > 0
    # The launcher's report says what the file says.
    code, sig, utime, stime, maxrss, end = rig.exits[started[2].tag].split()
    assert (int(code), int(sig)) == (4, 0)
    assert {"utime": float(utime), "stime": float(stime), "maxrss": float(maxrss), "end": float(end)} == second.rusage
    # wait4's maximum RSS counts the launcher's memory the job's process started in: no more
    # than the launcher's own, it says nothing of the job (0); beyond it, it is the job's.
    assert second.rusage["maxrss"] == 0
    third = read_status(rig.status_path(3))
    assert third.exit == (0, 0) and third.rusage is not None
    assert 60 * 1024 <= third.rusage["maxrss"] < 200 * 1024  # KiB, as wait4 says
    assert abs(second.rusage["end"] - time.time()) < 30  # when it was reaped, wall clock


def test_exit_codes_stay_right_in_a_burst(rig: Rig) -> None:
    count = 300
    requests = [rig.request(i, f"exit {i % 7}\n") for i in range(1, count + 1)]
    started = _started(rig.launcher.launch(requests))

    def reported() -> bool:
        rig.events()
        return len(rig.exits) == count

    _wait(reported, timeout=30)
    for i in range(1, count + 1):
        assert rig.exits[started[i].tag].split()[:2] == [str(i % 7), "0"], i
        assert read_status(rig.status_path(i)).exit == (i % 7, 0)


def test_the_job_is_its_own_group_with_signals_as_a_shell_leaves_them(rig: Rig) -> None:
    script = "grep -E '^Sig(Blk|Ign)' /proc/self/status\nread -r pid comm state ppid pgrp sid rest < /proc/$$/stat\necho $pid $pgrp $sid\n"
    started = _started(rig.launcher.launch([rig.request(1, script)]))
    _wait(lambda: rig.ended(1))
    lines = rig.output(1).split("\n")
    # Nothing the launcher (or the worker's Python, which ignores SIGPIPE and SIGXFSZ) changed.
    assert lines[0].split() == ["SigBlk:", "0000000000000000"]
    ignored = int(lines[1].split()[1], 16)
    # Nor the C library's own signals 32 and 33, which posix_spawn leaves ignored: the starter,
    # which has no C library, resets them; a forked child cannot (glibc refuses them to sigaction).
    assert ignored == 0 if rig.starter else ignored & ~(1 << 31 | 1 << 32) == 0, lines[1]
    assert lines[2].split() == [str(started[1].pid)] * 3


def test_a_job_signalled_as_soon_as_it_is_started_gets_the_signal(rig: Rig) -> None:
    # The reply may come before the job's process has made itself a group: the signal must not
    # be lost (a cancel right after the launch would then wait for the kill).
    count = 200
    started = _started(rig.launcher.launch([rig.request(i, "sleep 30\n") for i in range(1, count + 1)]))
    for outcome in started.values():
        signal_group(outcome.pid, outcome.ticks, signal.SIGTERM)

    def reported() -> bool:
        rig.events()
        return len(rig.exits) == count

    _wait(reported, timeout=5)
    for i in range(1, count + 1):
        assert rig.exits[started[i].tag].split()[:2] == ["0", str(int(signal.SIGTERM))], i


def test_identity_is_pid_and_start_time(rig: Rig) -> None:
    started = _started(rig.launcher.launch([rig.request(1, WAIT_FOR_GO)]))[1]
    assert is_process(started.pid, started.ticks) and is_process(started.pid, started.ticks, running=True)
    # The same pid with another start time is another process.
    assert not is_process(started.pid, started.ticks + 1)
    (rig.root / "go").touch()
    _wait(lambda: rig.ended(1))
    assert not is_process(started.pid, started.ticks)


def test_the_job_is_told_its_own_pid_as_slurm_tells_a_task(rig: Rig) -> None:
    # SLURM_TASK_PID, as slurmstepd sets it; one inherited from a job it was submitted from is replaced.
    script = "echo $SLURM_TASK_PID $$ ${#SLURM_TASK_PID}\nenv | grep -c '^SLURM_TASK_PID='\n"
    requests = [rig.request(1, script), rig.request(2, script, env={"PATH": "/usr/bin:/bin", "SLURM_TASK_PID": "7"})]
    started = _started(rig.launcher.launch(requests))
    _wait(lambda: rig.ended(1) and rig.ended(2))
    for job_id in (1, 2):
        pid = started[job_id].pid
        assert rig.output(job_id) == f"{pid} {pid} {len(str(pid))}\n1\n"


def test_spare_status_file_is_emptied_and_reused(rig: Rig) -> None:
    spare = rig.status_dir / "spare_7"
    spare.write_text("start 1 2 3 4\nexit 9 0 0.00 0.00\n")
    inode = spare.stat().st_ino
    _started(rig.launcher.launch([rig.request(1, "exit 3\n", spare=str(spare))]))
    _wait(lambda: rig.ended(1))
    assert not spare.exists()
    assert Path(rig.status_path(1)).stat().st_ino == inode
    status = read_status(rig.status_path(1))
    assert status.exit == (3, 0) and status.launcher is not None and status.launcher[0] == rig.launcher.pid
    # A spare that is gone is no failure: the file is made anew.
    _started(rig.launcher.launch([rig.request(2, "exit 4\n", spare=str(spare))]))
    _wait(lambda: rig.ended(2))
    assert read_status(rig.status_path(2)).exit == (4, 0)


def test_binding_per_job_in_one_batch(rig: Rig) -> None:
    machine = sorted(os.sched_getaffinity(0))
    script = "grep Cpus_allowed_list /proc/self/status\n"
    requests = [rig.request(1, script, frozenset({machine[-1]})), rig.request(2, script), rig.request(3, script, frozenset({machine[0]}))]
    rig.launcher.launch(requests)
    _wait(lambda: all(rig.ended(i) for i in (1, 2, 3)))

    def allowed(job_id: int) -> set[int]:
        text = rig.output(job_id).split(":")[1].strip()
        cpus: set[int] = set()
        for part in text.split(","):
            low, _, high = part.partition("-")
            cpus.update(range(int(low), int(high or low) + 1))
        return cpus

    assert allowed(1) == {machine[-1]}
    assert allowed(2) == set(machine)
    assert allowed(3) == {machine[0]}


def test_a_killed_launcher_is_replaced(rig: Rig) -> None:
    rig.launcher.launch([rig.request(1, "true\n")])
    first = rig.launcher.pid
    os.kill(first, signal.SIGKILL)
    time.sleep(0.1)
    started = _started(rig.launcher.launch([rig.request(2, "echo again\n")]))
    assert started[2].tag
    assert rig.launcher.pid not in (0, first)
    _wait(lambda: rig.ended(2))
    assert rig.output(2) == "again\n"


def test_jobs_of_a_killed_launcher_are_lost_to_it_and_live_on(rig: Rig) -> None:
    started = _started(rig.launcher.launch([rig.request(1, WAIT_FOR_GO + "exit 2\n"), rig.request(2, "exit 0\n")]))
    _wait(lambda: rig.ended(2))
    os.kill(rig.launcher.pid, signal.SIGKILL)

    def dead() -> bool:
        rig.events()
        return rig.launcher.pid == 0

    _wait(dead)
    # The one it reported is not lost; the one it was running is, and runs on without it.
    assert started[2].tag in rig.exits and rig.lost == {started[1].tag}
    assert is_live_process(started[1].pid)
    (rig.root / "go").touch()
    _wait(lambda: not is_live_process(started[1].pid))
    assert read_status(rig.status_path(1)).exit is None  # no one was left to record it


def test_launcher_killed_mid_batch_runs_every_job_exactly_once(rig: Rig) -> None:
    count = 300
    rig.launcher.start()
    victim = rig.launcher.pid
    # Spare status files whose old lines name this very launcher: none may pass for a new job's.
    stale = f"start 1 1 {victim} {start_ticks(victim)}\nexit 9 0 0.00 0.00\n"
    spares = []
    for i in range(1, count + 1):
        spare = rig.status_dir / f"spare_{i}"
        spare.write_text(stale)
        spares.append(str(spare))
    requests = [rig.request(i, f"echo ran >> {rig.root}/ran.{i}\n", spare=spares[i - 1]) for i in range(1, count + 1)]

    def kill_once_jobs_run() -> None:
        deadline = time.monotonic() + 10
        while not Path(rig.status_path(2)).exists() and time.monotonic() < deadline:
            time.sleep(0.0005)
        os.kill(victim, signal.SIGKILL)

    killer = threading.Thread(target=kill_once_jobs_run)
    killer.start()
    results = rig.launcher.launch(requests)
    killer.join()
    # Requests it had not started went to a new launcher; jobs it started without replying
    # were found by their status files. None was lost, none ran twice.
    assert rig.launcher.pid not in (0, victim)
    assert sorted(results) == list(range(1, count + 1))
    assert all(started.pid != 1 for started in _started(results).values())
    _wait(lambda: all((rig.root / f"ran.{i}").exists() for i in range(1, count + 1)))
    time.sleep(0.2)
    for i in range(1, count + 1):
        assert (rig.root / f"ran.{i}").read_text() == "ran\n"
        assert read_status(rig.status_path(i)).exit in ((0, 0), None), i  # None: its launcher died


@contextlib.contextmanager
def stopped_launcher(tmp_path: Path, timeout: float) -> Iterator[tuple[Rig, int]]:
    """A rig whose launcher is started and stopped (SIGSTOP): it reads no request."""
    rig = Rig(tmp_path, timeout=timeout)
    try:
        rig.launcher.start()
        os.kill(rig.launcher.pid, signal.SIGSTOP)
        yield rig, rig.launcher.pid
    finally:
        rig.close()


def test_unanswered_launch_is_given_up_and_never_runs(tmp_path: Path) -> None:
    with stopped_launcher(tmp_path, 1.0) as (rig, stuck):
        results = rig.launcher.launch([rig.request(1, "touch ran\n")])
        assert isinstance(results[1], str) and "no reply" in results[1]
        assert not is_live_process(stuck)
        time.sleep(0.5)
        assert not (tmp_path / "ran").exists()
        assert not Path(rig.status_path(1)).exists()
        # The next launch gets a new launcher.
        assert isinstance(rig.launcher.launch([rig.request(2, "true\n")])[2], Started)


def test_submit_does_not_wait_for_the_launcher(tmp_path: Path) -> None:
    # The worker's loop goes on while its launcher starts jobs: the outcomes come with poll().
    with stopped_launcher(tmp_path, 30.0) as (rig, stuck):
        began = time.monotonic()
        rig.launcher.submit([rig.request(1, "echo ran\n"), rig.request(2, "exit 3\n")])
        # Waiting for the stopped launcher would take its 30 s: the bounds leave room for a busy host.
        assert time.monotonic() - began < 10
        assert rig.launcher.pending() and rig.launcher.outcomes() == {}
        due = rig.launcher.deadline()
        assert due is not None and 20 < due - time.monotonic() <= 30
        os.kill(stuck, signal.SIGCONT)
        outcomes: dict[int, Started | str] = {}

        def settled() -> bool:
            rig.launcher.poll()
            outcomes.update(rig.launcher.outcomes())
            return len(outcomes) == 2

        _wait(settled)
        started = _started(outcomes)
        assert not rig.launcher.pending() and rig.launcher.deadline() is None

        def reported() -> bool:
            rig.events()
            return started[1].tag in rig.exits and started[2].tag in rig.exits

        _wait(reported)
        assert rig.output(1) == "ran\n"
        assert rig.exits[started[2].tag].split()[:2] == ["3", "0"]


def test_a_stalled_launcher_is_given_up_at_its_deadline(tmp_path: Path) -> None:
    with stopped_launcher(tmp_path, 1.0) as (rig, stuck):
        rig.launcher.submit([rig.request(1, "touch ran\n")])
        due = rig.launcher.deadline()
        assert due is not None
        rig.launcher.expire(due - 0.1)  # not yet
        assert rig.launcher.pid == stuck and rig.launcher.outcomes() == {}
        rig.launcher.expire(due)
        outcome = rig.launcher.outcomes()[1]
        assert isinstance(outcome, str) and "no reply within 1 s" in outcome, outcome
        assert not rig.launcher.pending() and rig.launcher.pid == 0
        _wait(lambda: not is_live_process(stuck))
        time.sleep(0.3)
        assert not (tmp_path / "ran").exists()


def test_a_request_unreadable_after_a_launchers_death_fails_alone(tmp_path: Path) -> None:
    # Whether it started cannot be told from its status file: it fails (never sent again, it
    # might run twice), and the others of the batch go on as ever.
    with stopped_launcher(tmp_path, 30.0) as (rig, stuck):
        Path(rig.status_path(1)).mkdir()  # a directory where its status file would be
        rig.launcher.submit([rig.request(1, "true\n"), rig.request(2, "echo ran\n")])
        os.kill(stuck, signal.SIGKILL)
        rig.launcher.drain()
        outcomes = rig.launcher.outcomes()
        assert isinstance(outcomes[1], str) and "unreadable" in outcomes[1], outcomes
        assert isinstance(outcomes[2], Started) and rig.launcher.pid not in (0, stuck)
        _wait(lambda: rig.ended(2))
        assert rig.output(2) == "ran\n"


def test_groups_bound_to_other_cpus_wait_for_the_last_to_start(rig: Rig) -> None:
    # The launcher's affinity is what a job inherits: a group bound elsewhere is sent only once
    # every job of the group before it has started, however the submissions came.
    machine = sorted(os.sched_getaffinity(0))
    script = "grep Cpus_allowed_list /proc/self/status\n"
    rig.launcher.submit([rig.request(i, script, frozenset({machine[-1]})) for i in range(1, 21)])
    rig.launcher.submit([rig.request(21, script)])
    rig.launcher.submit([rig.request(22, script, frozenset({machine[0]}))])
    rig.launcher.drain()
    assert len(_started(rig.launcher.outcomes())) == 22
    _wait(lambda: all(rig.ended(i) for i in range(1, 23)))
    for i in range(1, 21):
        assert rig.output(i).split(":")[1].strip() == str(machine[-1]), i
    assert rig.output(22).split(":")[1].strip() == str(machine[0])
    assert rig.output(21).split(":")[1].strip() == (
        str(machine[0]) if len(machine) == 1 else f"{machine[0]}-{machine[-1]}"
    )


def test_a_stalled_launcher_fails_its_jobs_and_the_worker_goes_on(
    start_conductor: Callable[..., ConductorProcess], tmp_path: Path
) -> None:
    home = tmp_path / "h"
    # A launch is given up after half the heartbeat timeout (at most 10 s).
    server = start_conductor("--cpus", "2", home=home, env={"CONDUCTOR_HEARTBEAT_TIMEOUT": "4"})
    api = Api(server.url)
    first = api.submit("#!/bin/bash\necho first\n", current_working_directory=str(tmp_path))
    assert api.wait_state(first, "COMPLETED")["exit_code"] == "0:0"
    [launcher] = launchers(home)
    os.kill(launcher, signal.SIGSTOP)
    try:
        stuck = api.submit(f"#!/bin/bash\ntouch {tmp_path / 'ran'}\n", current_working_directory=str(tmp_path))
        failed = api.wait_state(stuck, "FAILED", timeout=30)
        assert "no reply within 2 s" in (failed["error_msg"] or ""), failed
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(launcher, signal.SIGCONT)
    # The worker's loop went on meanwhile: its node stayed up, and the next job gets a new launcher.
    after = api.submit("#!/bin/bash\necho after\n", current_working_directory=str(tmp_path))
    assert api.wait_state(after, "COMPLETED")["exit_code"] == "0:0"
    assert (tmp_path / f"slurm-{after}.out").read_text() == "after\n"
    assert not is_live_process(launcher)
    assert not (tmp_path / "ran").exists()


def test_launcher_outlives_its_worker_until_its_jobs_end(rig: Rig) -> None:
    started = _started(rig.launcher.launch([rig.request(1, WAIT_FOR_GO + "exit 5\n")]))[1]
    launcher = rig.launcher.pid
    # The lock is the worker's and its launcher's, and no job's.
    assert not rig.lock_free()
    rig.close()  # what a worker's exit does: EOF on the launcher's requests
    # It let go of the lock (a new worker may start) and stays the parent of its job. (Its
    # job's process holds the lock too, from its fork until its first steps: on a busy
    # machine, a moment after the launcher's goodbye.)
    _wait(rig.lock_free, timeout=5)
    assert is_live_process(launcher) and is_live_process(started.pid)
    (rig.root / "go").touch()
    _wait(lambda: rig.ended(1))
    assert read_status(rig.status_path(1)).exit == (5, 0)
    # It ends with its last job, and its parent (the worker's process) reaps it: no zombie.
    _wait(lambda: not Path(f"/proc/{launcher}").exists())


def test_a_launch_failure_is_reported_per_job(rig: Rig) -> None:
    status = rig.status_path(1)
    # An unknown command is the job's failure (exit 127), not the launcher's.
    body = launch_frame(status, ME, str(rig.root), ("/dev/null",) * 3, "truncate", ["/no/such/command"], {})
    requests = [
        LaunchRequest(1, status, body, None),
        rig.request(2, "true\n"),
        # Its output named from a working directory that is not there (named whole, the job
        # would run in /tmp, as slurmstepd runs it).
        rig.request(3, "touch ran\n", cwd=str(rig.root / "missing"), out="job_3.out"),
    ]
    started = _started(rig.launcher.launch(requests))

    def reported() -> bool:
        rig.events()
        return all(started[i].tag in rig.exits for i in (1, 2, 3))

    _wait(reported)
    assert read_status(status).exit == (127, 0)
    # A setup failure: the command never ran, the status file says why, and the report says
    # to read it.
    third = read_status(rig.status_path(3))
    assert third.error is not None and "working directory" in third.error and "missing" in third.error
    assert rig.exits[started[3].tag] == ""
    assert not (rig.root / "ran").exists()
    with pytest.raises(ValueError, match="NUL"):
        launch_frame(status, ME, str(rig.root), ("/dev/null",) * 3, "truncate", ["true"], {"A": "x\0y"})


def test_a_privilege_drop_that_fails_runs_nothing(rig: Rig) -> None:
    status = rig.status_path(1)
    # More supplementary groups than the kernel takes: setgroups fails, the job must not run.
    nobody = RunAs("65534", "65534", ",".join(str(70000 + i) for i in range(70000)), None, "nobody")
    body = launch_frame(status, nobody, "/", ("/dev/null",) * 3, "truncate", ["/bin/touch", str(rig.root / "ran")], {})
    started = _started(rig.launcher.launch([LaunchRequest(1, status, body, None)]))

    def reported() -> bool:
        rig.events()
        return started[1].tag in rig.exits

    _wait(reported)
    failed = read_status(status)
    assert failed.error is not None and "could not set the" in failed.error and "groups" in failed.error, failed.error
    assert failed.exit == (1, 0) and rig.exits[started[1].tag] == ""
    assert not (rig.root / "ran").exists()


def test_the_launcher_holds_and_passes_on_nothing_else(rig: Rig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Modules planted where the worker runs, or named by its environment, are never imported
    # by the launcher (it runs isolated, with a fixed environment).
    planted = tmp_path / "planted"
    planted.mkdir()
    for module in ("fcntl", "gc", "signal", "protocol", "sitecustomize"):
        (planted / f"{module}.py").write_text(f"open({str(tmp_path / 'imported')!r}, 'a').write('{module} ')\n")
    monkeypatch.chdir(planted)
    monkeypatch.setenv("PYTHONPATH", str(planted))
    # A descriptor the worker's process holds without close-on-exec.
    leaked = os.open(tmp_path / "leaked", os.O_WRONLY | os.O_CREAT, 0o600)
    os.set_inheritable(leaked, True)
    try:
        started = _started(rig.launcher.launch([rig.request(1, "find /proc/$$/fd -mindepth 1 -printf '%f '\n")]))
    finally:
        os.close(leaked)
    _wait(lambda: rig.ended(1))
    assert not (tmp_path / "imported").exists()
    assert sorted(rig.output(1).split()) == ["0", "1", "2", "255"], rig.output(1)
    held = {os.readlink(f"/proc/{rig.launcher.pid}/fd/{fd}") for fd in os.listdir(f"/proc/{rig.launcher.pid}/fd")}
    assert str(tmp_path / "leaked") not in held, held
    assert started[1].pid


def test_status_file_formats(tmp_path: Path) -> None:
    path = tmp_path / "s"
    path.write_text("start 10\nexit 3 0\n")
    short = read_status(path)
    assert (short.pid, short.ticks, short.exit, short.rusage) == (10, 0, (3, 0), None)
    path.write_text("start 10\nnoise 11\nexit 0 9 1.25 0.50\n")
    timed = read_status(path)
    assert timed.exit == (0, 9) and timed.rusage == {"utime": 1.25, "stime": 0.5}
    path.write_text("start 10 500 8 400\nexit 1 0 0.01 0.00\n")
    new = read_status(str(path))
    assert (new.pid, new.ticks, new.launcher, new.exit) == (10, 500, (8, 400), (1, 0))
    path.write_text("error working directory '/x' is not usable: No such file or directory\nstart 10 500 8 400\n")
    failed = read_status(path)
    assert failed.pid == 10 and failed.error is not None and failed.exit is None


# ------------------------------------------------------------------ in conductor up
def _status(home: Path, job_id: int) -> Path:
    return home / "run" / f"job_{job_id}.status"


def test_jobs_still_launch_after_the_launcher_is_killed(start_conductor: Callable[..., ConductorProcess], tmp_path: Path) -> None:
    home = tmp_path / "h"
    server = start_conductor("--cpus", "2", home=home)
    api = Api(server.url)
    first = api.submit("#!/bin/bash\necho first\n", current_working_directory=str(tmp_path))
    assert api.wait_state(first, "COMPLETED")["exit_code"] == "0:0"
    [launcher] = launchers(home)
    os.kill(launcher, signal.SIGKILL)
    ids = [api.submit(f"#!/bin/bash\necho after {i}\n", current_working_directory=str(tmp_path)) for i in range(5)]
    for i, job_id in enumerate(ids):
        assert api.wait_state(job_id, "COMPLETED")["exit_code"] == "0:0"
        assert (tmp_path / f"slurm-{job_id}.out").read_text() == f"after {i}\n"
    assert [pid for pid in launchers(home) if pid != launcher]
    assert not is_live_process(launcher)


def test_jobs_of_a_killed_launcher_end_failed_and_nothing_hangs(
    start_conductor: Callable[..., ConductorProcess], tmp_path: Path
) -> None:
    home = tmp_path / "h"
    server = start_conductor("--cpus", "4", home=home)
    api = Api(server.url)
    running = [api.submit("#!/bin/bash\n" + WAIT_FOR_GO + "exit 0\n", current_working_directory=str(tmp_path)) for _ in range(2)]
    for job_id in running:
        api.wait_state(job_id, "RUNNING")
        _wait(lambda job_id=job_id: read_status(_status(home, job_id)).pid is not None)
    [launcher] = launchers(home)
    os.kill(launcher, signal.SIGKILL)
    # They end: no one is left to record their exit status, and their records say so, claiming
    # neither an exit code nor a signal.
    (tmp_path / "go").touch()
    for job_id in running:
        job = api.wait_state(job_id, {"NODE_FAIL", "FAILED", "COMPLETED"}, timeout=15)
        assert job["state"] == "NODE_FAIL" and job["error_msg"] == NO_EXIT_STATUS, job
        assert job["exit_code"] == "0:0" and job["reason"] == "NodeDown", job
    (tmp_path / "go").unlink()
    other = api.submit("#!/bin/bash\n" + WAIT_FOR_GO, current_working_directory=str(tmp_path))
    api.wait_state(other, "RUNNING")
    _wait(lambda: read_status(_status(home, other)).pid is not None)
    # A new launcher started it; killed too, its job is still the worker's to cancel.
    [launcher] = launchers(home)
    os.kill(launcher, signal.SIGKILL)
    time.sleep(0.2)
    api.cancel(other)
    cancelled = api.wait_state(other, "CANCELLED", timeout=15)
    assert cancelled["exit_code"] == "0:0" and cancelled["error_msg"] == NO_EXIT_STATUS, cancelled
    later = api.submit("#!/bin/bash\nexit 3\n", current_working_directory=str(tmp_path))
    assert api.wait_state(later, "FAILED")["exit_code"] == "3:0"
    assert api.stats()["used_cpus"] == 0


def test_exit_codes_of_a_burst_through_the_worker(api: Api, tmp_path: Path) -> None:
    response = api.http.post(
        "/jobs/submit",
        json={
            "job": {"current_working_directory": str(tmp_path), "array": "0-299", "standard_output": "/dev/null"},
            "script": "#!/bin/bash\nexit $((SLURM_ARRAY_TASK_ID % 7))\n",
        },
    )
    assert response.status_code == 201, response.text
    array_id = response.json()["job_id"]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        jobs = api.http.get("/jobs", params={"array_job_id": array_id, "limit": 1000}).json()["jobs"]
        if len(jobs) == 300 and all(j["state"] in ("COMPLETED", "FAILED") for j in jobs):
            break
        time.sleep(0.2)
    else:
        raise AssertionError("the array did not end")
    for job in jobs:
        code = job["array_task_id"] % 7
        assert job["exit_code"] == f"{code}:0", job
        assert job["state"] == ("COMPLETED" if code == 0 else "FAILED"), job


def test_job_outlives_a_killed_worker_and_is_readopted(start_conductor: Callable[..., ConductorProcess], tmp_path: Path) -> None:
    home = tmp_path / "h"
    server = start_conductor("--cpus", "2", home=home)
    api = Api(server.url)
    job_id = api.submit("#!/bin/bash\n" + WAIT_FOR_GO + "exit 3\n", current_working_directory=str(tmp_path))
    api.wait_state(job_id, "RUNNING")
    status_path = _status(home, job_id)
    _wait(lambda: read_status(status_path).pid is not None)
    status = read_status(status_path)
    [launcher] = launchers(home)
    assert status.launcher is not None and status.launcher[0] == launcher
    server.kill()
    # The launcher outlives its worker as the parent of its job, and records its end.
    time.sleep(0.3)
    assert is_live_process(launcher) and is_live_process(status.pid or 0)
    server2 = start_conductor("--cpus", "2", home=home, port=server.port)
    api2 = Api(server2.url)
    assert api2.job(job_id)["state"] == "RUNNING"
    (tmp_path / "go").touch()
    job = api2.wait_state(job_id, "FAILED", timeout=15)
    assert job["exit_code"] == "3:0" and job["reason"] == "NonZeroExitCode"
    _wait(lambda: not is_live_process(launcher))
    later = api2.submit("#!/bin/bash\ntrue\n", current_working_directory=str(tmp_path))
    assert api2.wait_state(later, "COMPLETED")["exit_code"] == "0:0"


def test_a_status_file_naming_another_process_is_not_adopted(
    start_conductor: Callable[..., ConductorProcess], tmp_path: Path
) -> None:
    home = tmp_path / "h"
    server = start_conductor("--cpus", "2", home=home)
    api = Api(server.url)
    job_id = api.submit("#!/bin/bash\nsleep 60\n", current_working_directory=str(tmp_path))
    api.wait_state(job_id, "RUNNING")
    status_path = _status(home, job_id)
    _wait(lambda: read_status(status_path).pid is not None)
    status = read_status(status_path)
    assert status.pid and status.launcher
    server.kill()
    os.kill(status.launcher[0], signal.SIGKILL)
    os.killpg(status.pid, signal.SIGKILL)
    # A live process now has the pid the status file names, with another start time: a reused pid.
    bystander = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        ticks = start_ticks(bystander.pid)
        assert ticks
        status_path.write_text(f"start {bystander.pid} {ticks - 1} {status.launcher[0]} {status.launcher[1]}\n")
        server2 = start_conductor("--cpus", "2", home=home, port=server.port)
        api2 = Api(server2.url)
        job = api2.wait_state(job_id, "NODE_FAIL", timeout=15)
        assert "gone" in job["error_msg"]
        assert bystander.poll() is None  # neither adopted nor killed
    finally:
        bystander.kill()
        bystander.wait()
