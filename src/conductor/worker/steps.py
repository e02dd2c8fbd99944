"""Job steps: what each `srun` inside a batch job reports of itself (see cli/srun.py), read by
the worker when the job ends.

srun runs as the job's user, so it writes its records where that user can: a file in the
system's temporary directory whose name the worker gives the job (CONDUCTOR_STEP_RECORDS). The
worker, root, trusts nothing of it: a regular file of the job's user, opened without following
links, bounded in size, each record checked (domain.usage.parse_step), then removed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import stat
import tempfile
from pathlib import Path

from conductor.domain.usage import StepRecord, parse_step

log = logging.getLogger("conductor.worker")

MAX_BYTES = 256 * 1024
ENV = "CONDUCTOR_STEP_RECORDS"
# What is read of the records for the sruns still running (a signal for the job's steps): more
# than the records alone, since a job may register many sruns over its life.
MAX_REGISTRATION_BYTES = 4 * 1024 * 1024


class StepRecords:
    def __init__(self, node: str, home: Path) -> None:
        # The node and the worker's home in the name: two workers on one machine number their
        # jobs alike.
        tag = hashlib.sha1(os.fsencode(str(home.resolve()))).hexdigest()[:8]
        self._prefix = f"{tempfile.gettempdir()}/conductor-steps.{node}.{tag}."

    def path(self, job_id: int) -> str:
        return f"{self._prefix}{job_id}.jsonl"

    def clear(self, job_id: int, uid: int | None = None, gid: int | None = None) -> str:
        """Before a launch: no earlier run's file (nor one planted by someone else) stays, and,
        given the job's user, the records file is made anew as that user's, so that nobody else
        can make it first (the directory is everyone's) and have the job's sruns write there."""
        path = self.path(job_id)
        for name in (path, path + ".next"):  # the records, and srun's step counter
            with contextlib.suppress(FileNotFoundError):
                os.unlink(name)
            if uid is not None:
                _make_own(name, job_id, uid, gid)
        return path

    def sruns(self, job_id: int, uid: int | None) -> list[tuple[int, int]]:
        """The sruns running in the job, (pid, start ticks) each, as each one registered itself
        in the job's records (a line {"srun": PID, "ticks": T} as it starts its tasks, and
        {"srun_ended": PID} as it ends: cli/srun.py). Only the job's user's regular file counts
        (none when the user is not known), read without following a link nor waiting on a
        pipe; a claim is only a claim, which the signaller checks against the job's processes."""
        if uid is None:
            return []
        data = _read_own(self.path(job_id), uid, MAX_REGISTRATION_BYTES)
        running: dict[int, int] = {}
        for line in data.splitlines():
            if b'"srun' not in line:
                continue
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if not isinstance(entry, dict):
                continue
            pid, ticks, ended = entry.get("srun"), entry.get("ticks"), entry.get("srun_ended")
            if type(pid) is int and type(ticks) is int and pid > 0:
                running[pid] = ticks
            elif type(ended) is int:
                running.pop(ended, None)
        return sorted(running.items())

    def collect(self, job_id: int, uid: int | None) -> tuple[StepRecord, ...]:
        path = self.path(job_id)
        with contextlib.suppress(OSError):
            os.unlink(path + ".next")
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError:
            return ()
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode) or (uid is not None and info.st_uid != uid):
                log.warning("job %s: step records at %s are not its user's: ignored", job_id, path)
                return ()
            data = os.read(fd, MAX_BYTES)
        except OSError:
            return ()
        finally:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(path)
        steps: dict[int, StepRecord] = {}
        for line in data.splitlines():
            try:
                step = parse_step(json.loads(line))
            except ValueError:
                step = None
            if step is not None:
                steps[step.step_id] = step
        return tuple(steps[key] for key in sorted(steps))


def _read_own(path: str, uid: int, limit: int) -> bytes:
    """Up to `limit` bytes of `path` if it is a regular file of `uid` ("" else), opened without
    following a link nor blocking on a pipe."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return b""
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_uid != uid:
            return b""
        chunks, left = [], limit
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)
    except OSError:
        return b""
    finally:
        os.close(fd)


def _make_own(path: str, job_id: int, uid: int, gid: int | None) -> None:
    """Make `path` anew, empty, as the job's user's: nobody else can then have made it first
    (the directory is everyone's), and srun, which trusts only a file of its own user (cli/srun.py),
    writes there. Someone's file planted between the unlink and the creation is unlinked again
    (root may, in a sticky directory), a few times; past those the job's sruns refuse it."""
    for _ in range(3):
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        except FileExistsError:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            continue
        except OSError as exc:
            log.warning("job %s: cannot make %s: %s", job_id, path, exc.strerror)
            return
        try:
            if os.geteuid() == 0:
                os.fchown(fd, uid, gid if gid is not None else -1)
        except OSError:
            pass
        finally:
            os.close(fd)
        return
    log.warning("job %s: someone keeps making %s first: the job's sruns will not trust it", job_id, path)
