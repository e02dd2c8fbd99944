"""The lines slurmstepd writes into a job's standard error when it ends it: time limit, cancel,
out-of-memory kills. Written by the worker (as root, usually): only into a regular file the
job's user owns, opened without following a symbolic link, so a job cannot make the worker
write elsewhere.
"""

from __future__ import annotations

import logging
import os
import stat
from datetime import datetime

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
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY)
    except OSError as exc:
        log.debug("no notice in %s: %s", path, exc)
        return False
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or (uid is not None and info.st_uid != uid):
            return False
        os.write(fd, (line + "\n").encode())
        return True
    except OSError as exc:
        log.debug("no notice in %s: %s", path, exc)
        return False
    finally:
        os.close(fd)
