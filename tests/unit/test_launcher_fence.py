"""A launcher whose worker is gone (launcher.py, fencing): it kills its jobs when no worker has
held the node's launch lock for its fence time, before the scheduler could declare the node
dead and run them elsewhere; a worker back in time (holding the lock) keeps them alive."""

from __future__ import annotations

import fcntl
import os
import subprocess
import time
from pathlib import Path

from conductor.worker import launcher as launcher_module
from conductor.worker.config import NodeConfig
from conductor.worker.outcome import FENCED, decide_outcome
from conductor.worker.protocol import parse_status


def _job(tmp_path: Path, name: str) -> tuple[subprocess.Popen[bytes], launcher_module.Job, Path]:
    process = subprocess.Popen(["sleep", "60"], start_new_session=True)
    status = tmp_path / f"{name}.status"
    fd = os.open(status, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    return process, launcher_module.Job(b"1", fd, 0, None), status


def test_the_jobs_of_a_worker_gone_too_long_are_killed_unless_a_worker_is_back(tmp_path: Path) -> None:
    lock = tmp_path / "launcher.lock"
    lock.touch()
    launcher = launcher_module.Launcher(fence=0.3, lock_path=os.fsencode(lock))
    process, job, status = _job(tmp_path, "a")
    launcher.jobs[process.pid] = job
    try:
        launcher.worker_seen = time.monotonic()
        # A worker is back (it holds the lock): however long, nothing is killed.
        held = os.open(lock, os.O_RDWR)
        fcntl.flock(held, fcntl.LOCK_EX)
        time.sleep(0.4)
        assert launcher.fence_check(time.monotonic()) is not None
        assert process.poll() is None and not launcher.fenced
        # It goes again: the fence time counts from the last look that found it.
        os.close(held)
        wait = launcher.fence_check(time.monotonic())
        assert wait is not None and 0 < wait <= 0.3
        assert process.poll() is None
        time.sleep(0.35)
        assert launcher.fence_check(time.monotonic()) is None
        assert process.wait(5) == -9 and launcher.fenced and job.killed
        fenced = parse_status(status.read_bytes()).fenced
        assert fenced is not None and abs(fenced - time.time()) < 5
    finally:
        process.kill()
        process.wait()
        os.close(job.status_fd)


def test_a_fenced_job_is_its_nodes_failure() -> None:
    status = parse_status(b"start 123 456\nfenced 1700000000.000\nexit 0 9\n")
    finish = decide_outcome(7, status, None)
    assert (finish.state, finish.reason, finish.error_msg) == ("NODE_FAIL", "NodeDown", FENCED)
    assert decide_outcome(7, status, "CANCELLED").state == "CANCELLED"  # asked for before: as asked


def test_a_fenced_job_that_asked_for_requeue_goes_back_to_the_queue() -> None:
    # As the scheduler does with the jobs of a node it declares dead: a worker back in time to
    # report the run must not end a job the scheduler would have run again.
    status = parse_status(b"start 123 456\nfenced 1700000000.000\nexit 0 9\n")
    finish = decide_outcome(7, status, None, requeue=True)
    assert (finish.state, finish.exit_code, finish.error_msg) == ("PENDING", "0:9", FENCED)
    assert decide_outcome(7, status, "CANCELLED", requeue=True).state == "CANCELLED"  # a cancel still wins
    # Not fenced: a --requeue job's own failure ends it, as in Slurm.
    assert decide_outcome(7, parse_status(b"start 123 456\nexit 0 9\n"), None, requeue=True).state == "FAILED"


def test_only_a_node_among_many_is_fenced_and_before_it_is_declared_dead() -> None:
    config = NodeConfig(name="n", cpus=1, memory_mb=1, partitions=["p"], home=Path("/nonexistent"))
    assert config.fence_after is None  # `conductor up`: its jobs wait for it
    config.fenced = True
    for timeout, interval, expected in ((30.0, 2.0, 27.0), (5.0, 0.5, 3.5), (2.0, 1.0, 0.5), (15.0, 10.0, 4.0)):
        config.heartbeat_timeout, config.heartbeat_interval = timeout, interval
        fence = config.fence_after
        assert fence == expected and 0 < fence < timeout - interval
