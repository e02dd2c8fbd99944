"""The lines slurmstepd writes into a job's standard error when it ends it: time limit, cancel,
out-of-memory kills. Written by the worker (as root, usually): only into a regular file the
job's user owns and may write, reached without following a symbolic link anywhere on its path
(conductor.userfiles), so a job cannot make the worker open, or write, anything else.
"""

from __future__ import annotations

import logging
import os
from datetime import datetime

from conductor.userfiles import open_for, reader_for

log = logging.getLogger("conductor.worker")


def _stamp(when: datetime | None) -> str:
    return (when or datetime.now()).astimezone().strftime("%Y-%m-%dT%H:%M:%S")


def time_limit_notice(job_id: int, node: str, when: datetime | None = None) -> str:
    return f"slurmstepd: error: *** JOB {job_id} ON {node} CANCELLED AT {_stamp(when)} DUE TO TIME LIMIT ***"


def cancel_notice(job_id: int, node: str, when: datetime | None = None) -> str:
    return f"slurmstepd: error: *** JOB {job_id} ON {node} CANCELLED AT {_stamp(when)} ***"


def oom_notice(job_id: int, events: int) -> str:
    return (
        f"slurmstepd: error: Detected {events} oom-kill event(s) in StepId={job_id}.batch. "
        "Some of your processes may have been killed by the cgroup out-of-memory handler."
    )


def write_notice(path: str | None, uid: int | None, line: str) -> bool:
    """Append `line` to the job's error file; False when it is not one to write to."""
    if not path:
        return False
    # A job without a uid of its own runs as the worker's user.
    writer = reader_for(os.geteuid() if uid is None else uid)
    assert writer is not None
    try:
        fd = open_for(path, writer, append=True)
    except OSError as exc:
        log.debug("no notice in %s: %s", path, exc)
        return False
    try:
        os.write(fd, (line + "\n").encode())
        return True
    except OSError as exc:
        log.debug("no notice in %s: %s", path, exc)
        return False
    finally:
        os.close(fd)
