"""The worker's job launcher (shepherd.pl --serve): its protocol driven directly, and its life
inside a real `conductor up` (killed, restarted, outlived by its jobs)."""

from __future__ import annotations

import fcntl
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support import Api, ConductorProcess

from conductor.worker import (
    SHEPHERD_TITLE,
    Launcher,
    LaunchRequest,
    RunAs,
    _is_shepherd,
    launch_frame,
    read_status,
)

ME = RunAs("", "", "", None, "me")
# Until the test says go, or for 30 s should the test fail first: no job is left behind.
WAIT_FOR_GO = "end=$((SECONDS + 30)); while [ ! -e go ] && [ $SECONDS -lt $end ]; do sleep 0.02; done\n"


def _alive(pid: int) -> bool:
    try:
        return "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()
    except OSError:
        return False


def _wait(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


class Rig:
    """A launcher of its own in a status directory, as a worker runs it."""

    def __init__(self, root: Path, timeout: float = 10.0) -> None:
        self.root = root
        self.status_dir = root / "run"
        self.status_dir.mkdir(parents=True)
        self.lock_path = self.status_dir / "launcher.lock"
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        self.lock_fd = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
        os.close(fd)
        fcntl.flock(self.lock_fd, fcntl.LOCK_EX)
        self.launcher = Launcher("/usr/bin/perl", self.status_dir, self.lock_fd, root / "launcher.log", timeout)

    def request(
        self, job_id: int, script: str, cpus: frozenset[int] | None = None, env: dict[str, str] | None = None
    ) -> LaunchRequest:
        path = self.root / f"job_{job_id}.sh"
        path.write_text("#!/bin/bash\n" + script)
        path.chmod(0o755)
        status = self.status_dir / f"job_{job_id}.status"
        out = str(self.root / f"job_{job_id}.out")
        frame = launch_frame(
            job_id, status, ME, str(self.root), ("/dev/null", out, out), "truncate", [str(path)], env or {"PATH": "/usr/bin:/bin"}
        )
        return LaunchRequest(job_id, status, frame, cpus)

    def output(self, job_id: int) -> str:
        return (self.root / f"job_{job_id}.out").read_text()

    def ended(self, job_id: int) -> bool:
        return read_status(self.status_dir / f"job_{job_id}.status").exit is not None

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


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    made = Rig(tmp_path)
    yield made
    made.close()


def test_jobs_start_and_report_exit_status_and_cpu_times(rig: Rig) -> None:
    busy = "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done\nexit 4\n"
    requests = [rig.request(1, "echo one $FOO\n", env={"FOO": "bar"}), rig.request(2, busy)]
    pids = rig.launcher.launch(requests)
    assert all(isinstance(pid, int) for pid in pids.values()), pids
    _wait(lambda: rig.ended(1) and rig.ended(2))
    assert rig.output(1) == "one bar\n"
    first = read_status(rig.status_dir / "job_1.status")
    assert first.pid == pids[1] and first.child and first.exit == (0, 0)
    second = read_status(rig.status_dir / "job_2.status")
    assert second.exit == (4, 0)
    assert second.rusage is not None and second.rusage["utime"] + second.rusage["stime"] > 0


def test_shepherd_title_holds_a_long_status_path(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60) / ("f" * 60)
    rig = Rig(deep)
    try:
        pids = rig.launcher.launch([rig.request(123456789012, "sleep 30\n")])
        pid = pids[123456789012]
        assert isinstance(pid, int)
        status_path = rig.status_dir / "job_123456789012.status"
        _wait(lambda: read_status(status_path).child is not None)
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        assert cmdline.split(b"\0")[0] == f"{SHEPHERD_TITLE}{status_path}".encode()
        assert _is_shepherd(pid, status_path)
        assert not _is_shepherd(pid, rig.status_dir / "job_12345678901.status")
        os.killpg(pid, signal.SIGKILL)
    finally:
        rig.close()


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
    pids = rig.launcher.launch([rig.request(2, "echo again\n")])
    assert isinstance(pids[2], int)
    assert rig.launcher.pid not in (0, first)
    _wait(lambda: rig.ended(2))
    assert rig.output(2) == "again\n"


def test_launcher_killed_mid_batch_runs_every_job_exactly_once(rig: Rig) -> None:
    count = 300
    requests = [rig.request(i, f"echo ran >> {rig.root}/ran.{i}\n") for i in range(1, count + 1)]
    rig.launcher.start()
    victim = rig.launcher.pid

    def kill_once_shepherds_run() -> None:
        deadline = time.monotonic() + 10
        while not (rig.status_dir / "job_2.status").exists() and time.monotonic() < deadline:
            time.sleep(0.0005)
        os.kill(victim, signal.SIGKILL)

    killer = threading.Thread(target=kill_once_shepherds_run)
    killer.start()
    results = rig.launcher.launch(requests)
    killer.join()
    # The requests it had not answered went to a new launcher; none was lost, none ran twice.
    assert rig.launcher.pid not in (0, victim)
    assert sorted(results) == list(range(1, count + 1))
    assert all(isinstance(pid, int) for pid in results.values()), results
    _wait(lambda: all(rig.ended(i) for i in range(1, count + 1)))
    for i in range(1, count + 1):
        assert (rig.root / f"ran.{i}").read_text() == "ran\n"


def test_unanswered_launch_is_given_up_and_never_runs(tmp_path: Path) -> None:
    rig = Rig(tmp_path, timeout=1.0)
    try:
        rig.launcher.start()
        stuck = rig.launcher.pid
        os.kill(stuck, signal.SIGSTOP)
        results = rig.launcher.launch([rig.request(1, "touch ran\n")])
        assert isinstance(results[1], str) and "no reply" in results[1]
        assert not _alive(stuck)
        time.sleep(0.5)
        assert not (tmp_path / "ran").exists()
        assert not (rig.status_dir / "job_1.status").exists()
        # The next launch gets a new launcher.
        assert isinstance(rig.launcher.launch([rig.request(2, "true\n")])[2], int)
    finally:
        rig.close()


def test_launcher_exits_when_the_worker_goes_and_its_jobs_live_on(rig: Rig) -> None:
    pids = rig.launcher.launch([rig.request(1, WAIT_FOR_GO + "exit 5\n")])
    launcher = rig.launcher.pid
    shepherd = pids[1]
    assert isinstance(shepherd, int)
    _wait(lambda: read_status(rig.status_dir / "job_1.status").child is not None)
    # The lock is the launcher's (and the worker's) alone: a shepherd lets go once it has its status.
    assert not rig.lock_free()
    rig.close()  # what a worker's exit does: EOF on the launcher's requests
    assert not _alive(launcher)
    assert rig.lock_free()
    assert _alive(shepherd)
    (rig.root / "go").touch()
    _wait(lambda: rig.ended(1))
    assert read_status(rig.status_dir / "job_1.status").exit == (5, 0)


def test_a_launch_failure_is_reported_per_job(rig: Rig) -> None:
    bad = rig.request(1, "true\n")
    # An unknown command is the job's failure (exit 127), not the launcher's.
    frame = launch_frame(1, bad.status_path, ME, str(rig.root), ("/dev/null",) * 3, "truncate", ["/no/such/command"], {})
    results = rig.launcher.launch([LaunchRequest(1, bad.status_path, frame, None), rig.request(2, "true\n")])
    assert isinstance(results[1], int) and isinstance(results[2], int)
    _wait(lambda: rig.ended(1) and rig.ended(2))
    assert read_status(bad.status_path).exit == (127, 0)
    with pytest.raises(ValueError, match="NUL"):
        launch_frame(3, bad.status_path, ME, str(rig.root), ("/dev/null",) * 3, "truncate", ["true"], {"A": "x\0y"})


def test_status_file_formats(tmp_path: Path) -> None:
    path = tmp_path / "s"
    path.write_text("start 10\nchild 11\nexit 3 0\n")
    old = read_status(path)
    assert (old.pid, old.child, old.exit, old.rusage) == (10, 11, (3, 0), None)
    path.write_text("start 10\nchild 11\nexit 0 9 1.25 0.50\n")
    new = read_status(path)
    assert new.exit == (0, 9) and new.rusage == {"utime": 1.25, "stime": 0.5}


# ------------------------------------------------------------------ in conductor up
def _launchers(home: Path) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                first = (entry / "cmdline").read_bytes().split(b"\0")[0]
            except OSError:
                continue
            if first.startswith(b"conductor-launcher ") and str(home).encode() in first and _alive(int(entry.name)):
                found.append(int(entry.name))
    return found


def test_jobs_still_launch_after_the_launcher_is_killed(start_conductor: Callable[..., ConductorProcess], tmp_path: Path) -> None:
    home = tmp_path / "h"
    server = start_conductor("--cpus", "2", home=home)
    api = Api(server.url)
    first = api.submit("#!/bin/bash\necho first\n", current_working_directory=str(tmp_path))
    assert api.wait_state(first, "COMPLETED")["exit_code"] == "0:0"
    [launcher] = _launchers(home)
    os.kill(launcher, signal.SIGKILL)
    ids = [api.submit(f"#!/bin/bash\necho after {i}\n", current_working_directory=str(tmp_path)) for i in range(5)]
    for i, job_id in enumerate(ids):
        assert api.wait_state(job_id, "COMPLETED")["exit_code"] == "0:0"
        assert (tmp_path / f"slurm-{job_id}.out").read_text() == f"after {i}\n"
    assert [pid for pid in _launchers(home) if pid != launcher]
    assert not _alive(launcher)


def test_job_outlives_a_killed_worker_and_is_readopted(start_conductor: Callable[..., ConductorProcess], tmp_path: Path) -> None:
    home = tmp_path / "h"
    server = start_conductor("--cpus", "2", home=home)
    api = Api(server.url)
    job_id = api.submit("#!/bin/bash\n" + WAIT_FOR_GO + "exit 3\n", current_working_directory=str(tmp_path))
    api.wait_state(job_id, "RUNNING")
    status_path = home / "run" / f"job_{job_id}.status"
    _wait(lambda: read_status(status_path).child is not None)
    shepherd = read_status(status_path).pid
    assert shepherd and _is_shepherd(shepherd, status_path)
    [launcher] = _launchers(home)
    server.kill()
    # EOF on its requests: the launcher goes with its worker, the job does not.
    _wait(lambda: not _alive(launcher))
    assert _alive(shepherd)
    (tmp_path / "go").touch()
    server2 = start_conductor("--cpus", "2", home=home, port=server.port)
    api2 = Api(server2.url)
    job = api2.wait_state(job_id, "FAILED", timeout=15)
    assert job["exit_code"] == "3:0" and job["reason"] == "NonZeroExitCode"
    later = api2.submit("#!/bin/bash\ntrue\n", current_working_directory=str(tmp_path))
    assert api2.wait_state(later, "COMPLETED")["exit_code"] == "0:0"
