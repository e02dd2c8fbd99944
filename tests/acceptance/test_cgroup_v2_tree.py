"""The cgroup v2 containment against a directory tree laid out as cgroup v2 (this machine's kernel
has no delegable v2 controllers): what it writes, what the launcher writes (the job's pid, before
the job runs), and how it reads a group's figures and out-of-memory kills.

No kernel stands behind the files: the test plays its part (memory.peak, memory.events, cpu.stat)."""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from pathlib import Path

import pytest

from conductor.domain.states import JobState
from conductor.worker.cgroups import CgroupV1, CgroupV2, node_dir_name
from conductor.worker.containment import Limits
from conductor.worker.detection import detect
from conductor.worker.launcher_client import Launcher, LaunchRequest, RunAs, Started, launch_frame
from conductor.worker.outcome import OOM_EXIT_CODE, decide_outcome
from conductor.worker.polling import Polling
from conductor.worker.protocol import JobStatus
from conductor.worker.spool import read_status

MB = 1024 * 1024


def _tree(root: Path) -> Path:
    root.mkdir()
    (root / "cgroup.controllers").write_text("cpuset cpu io memory hugetlb pids rdma misc\n")
    (root / "cgroup.subtree_control").write_text("")
    return root


def test_detection_takes_v2_where_it_is_and_polls_where_nothing_is(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert isinstance(detect("auto", _tree(tmp_path / "v2"), "n1", home), CgroupV2)
    (tmp_path / "none").mkdir()
    assert isinstance(detect("auto", tmp_path / "none", "n1", home), Polling)
    assert isinstance(detect("none", tmp_path / "v2", "n1", home), Polling)


@pytest.mark.parametrize("how", ["fork", "starter"])
def test_v2_groups_limits_pid_figures_and_kill(tmp_path: Path, how: str, request: pytest.FixtureRequest) -> None:
    root = _tree(tmp_path / "cg")
    home = tmp_path / "home"
    groups = CgroupV2(root, "n1", home)
    base = root / "conductor" / node_dir_name("n1", home)
    for level in (root, root / "conductor", base):
        assert (level / "cgroup.subtree_control").read_text() == "+memory +cpu +cpuset +pids"

    procs = groups.create(7, Limits(memory_bytes=100 * MB, cpus=frozenset({0, 1}), max_pids=50))
    job = base / "job_7"
    assert procs == [str(job / "cgroup.procs")]
    assert (job / "memory.max").read_text() == str(100 * MB)
    assert (job / "memory.swap.max").read_text() == "0"  # swap does not help it past its limit
    assert (job / "cpuset.cpus").read_text() == "0,1"
    assert (job / "pids.max").read_text() == "50"
    assert groups.leftovers() == [7]

    # The job's process writes its pid into its group before it runs anything of the job.
    status_dir = tmp_path / "run"
    status_dir.mkdir()
    fd = os.open(status_dir / "launcher.lock", os.O_RDWR | os.O_CREAT, 0o600)
    lock = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    fcntl.flock(lock, fcntl.LOCK_EX)
    starter = request.getfixturevalue("built_job_starter") if how == "starter" else None
    launcher = Launcher(status_dir, lock, tmp_path / "launcher.log", 10.0, starter=starter)
    try:
        script = tmp_path / "job.sh"
        script.write_text("#!/bin/bash\nsleep 30\n")
        script.chmod(0o755)
        status = str(status_dir / "job_7.status")
        me = RunAs("", "", "", None, "me")
        body = launch_frame(
            status, me, str(tmp_path), ("/dev/null", "/dev/null", "/dev/null"), "truncate", [str(script)], {},
            cgroup_procs=procs,
        )
        started = launcher.launch([LaunchRequest(7, status, body, None)])[7]
        assert isinstance(started, Started)
        deadline = time.monotonic() + 10
        procs_file = job / "cgroup.procs"
        while not procs_file.exists() or procs_file.read_text() != str(started.pid):
            assert time.monotonic() < deadline, "the job's process did not join its group"
            time.sleep(0.01)
        assert read_status(status).pid == started.pid

        # What the kernel would have counted.
        (job / "memory.peak").write_text(f"{99 * MB}\n")
        (job / "memory.events").write_text("low 0\nhigh 0\nmax 12\noom 1\noom_kill 1\noom_group_kill 0\n")
        (job / "cpu.stat").write_text("usage_usec 2500000\nuser_usec 2000000\nsystem_usec 500000\n")
        usage = groups.finish(7)
        # The kill: every process of the group at once.
        assert (job / "cgroup.kill").read_text() == "1"
        with contextlib.suppress(ProcessLookupError):
            os.kill(started.pid, 9)  # no kernel acted on cgroup.kill
    finally:
        launcher.close()
    assert (usage.max_rss, usage.oom_kills, usage.user_cpu, usage.system_cpu) == (99 * MB, 1, 2.0, 0.5)
    assert usage.source == "cgroup-v2"
    finish = decide_outcome(7, JobStatus(pid=started.pid, ticks=1, exit=(0, 9)), None, usage)
    assert (finish.state, finish.exit_code) == (JobState.OUT_OF_MEMORY, OOM_EXIT_CODE)


@pytest.mark.parametrize("how", ["fork", "starter"])
def test_a_job_whose_group_cannot_be_joined_never_runs(tmp_path: Path, how: str, request: pytest.FixtureRequest) -> None:
    status_dir = tmp_path / "run"
    status_dir.mkdir()
    fd = os.open(status_dir / "launcher.lock", os.O_RDWR | os.O_CREAT, 0o600)
    lock = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    fcntl.flock(lock, fcntl.LOCK_EX)
    starter = request.getfixturevalue("built_job_starter") if how == "starter" else None
    launcher = Launcher(status_dir, lock, tmp_path / "launcher.log", 10.0, starter=starter)
    marker = tmp_path / "ran"
    try:
        script = tmp_path / "job.sh"
        script.write_text(f"#!/bin/bash\ntouch {marker}\n")
        script.chmod(0o755)
        status = str(status_dir / "job_8.status")
        body = launch_frame(
            status, RunAs("", "", "", None, "me"), str(tmp_path), ("/dev/null", "/dev/null", "/dev/null"),
            "truncate", [str(script)], {}, cgroup_procs=[str(tmp_path / "no-such-group" / "cgroup.procs")],
        )
        started = launcher.launch([LaunchRequest(8, status, body, None)])[8]
        assert isinstance(started, Started)
        deadline = time.monotonic() + 10
        while read_status(status).error is None:
            assert time.monotonic() < deadline, "no setup failure recorded"
            time.sleep(0.01)
    finally:
        launcher.close()
    # A setup failure, as an unusable working directory is: the command never ran.
    error = read_status(status).error
    assert error is not None and "cannot put the job in its control group" in error
    assert not marker.exists()
    finish = decide_outcome(8, read_status(status), None, None)
    assert finish.state == JobState.FAILED and "control group" in (finish.error_msg or "")


def test_v1_is_not_taken_for_v2(tmp_path: Path) -> None:
    # A v1 hierarchy has no cgroup.controllers: never mistaken for v2, whatever else is there.
    root = tmp_path / "v1"
    (root / "memory").mkdir(parents=True)
    assert not isinstance(detect("auto", root, "n1", tmp_path / "home"), CgroupV2 | CgroupV1)
