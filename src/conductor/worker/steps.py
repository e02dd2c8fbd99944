"""Job steps: what each `srun` inside a batch job reports of itself (see cli/srun.py), read by
the worker when the job ends.

srun runs as the job's user, so it writes its records where that user can: a file the worker
makes for each run of a job, as that user's, in the node's `steps/` directory (under its home,
the worker's own: nobody else may make, link or replace anything there; each job's user
reaches its own files by name), given to the job as CONDUCTOR_STEP_RECORDS; its sruns number
their steps there too. A directory everyone may write to, as the system's temporary one, let
another user plant a link there for a job's srun to write through, or a directory that made
every launch fail. The worker, root, trusts nothing of the records: a regular file of the job's
user, opened without following links, bounded in size, each record checked
(domain.usage.parse_step), then removed.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from conductor.domain.usage import StepRecord, parse_step

log = logging.getLogger("conductor.worker")

MAX_BYTES = 256 * 1024
ENV = "CONDUCTOR_STEP_RECORDS"
# What is read of the records for the sruns still running (a signal for the job's steps): more
# than the records alone, since a job may register many sruns over its life.
MAX_REGISTRATION_BYTES = 4 * 1024 * 1024


@dataclass(slots=True)
class _Registrations:
    """What was read of a job's records for its sruns so far: a signal reads only what was
    written since (each read of megabytes of a job's own making would hold the worker)."""

    inode: tuple[int, int]
    offset: int = 0
    partial: bytes = b""
    running: dict[int, int] = field(default_factory=dict)


class StepRecords:
    def __init__(self, directory: Path) -> None:
        self._prefix = f"{directory}/job_"
        self._read: dict[int, _Registrations] = {}

    def path(self, job_id: int) -> str:
        return f"{self._prefix}{job_id}.jsonl"

    def clear(self, job_id: int, uid: int | None = None, gid: int | None = None) -> str:
        """Before a launch: no earlier run's records stay, and, given the job's user, they are
        made anew as that user's (its sruns number their steps in them: from 0 for each run).
        One file a launch: a file made and removed costs a launch more than anything else here.
        Never fails the launch: without its records the job's sruns number steps elsewhere."""
        path = self.path(job_id)
        self._read.pop(job_id, None)
        try:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            if uid is not None:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
                try:
                    if os.geteuid() == 0:
                        os.fchown(fd, uid, gid if gid is not None else -1)
                finally:
                    os.close(fd)
        except OSError as exc:
            log.warning("job %s: cannot make %s: %s", job_id, path, exc.strerror)
        return path

    def sruns(self, job_id: int, uid: int | None) -> list[tuple[int, int]]:
        """The sruns running in the job, (pid, start ticks) each, as each one registered itself
        in the job's records (a line {"srun": PID, "ticks": T} as it starts its tasks, and
        {"srun_ended": PID} as it ends: cli/srun.py). Only the job's user's regular file counts
        (none when the user is not known), read without following a link nor waiting on a
        pipe, and only what was written since the last look; a claim is only a claim, which
        the signaller checks against the job's processes."""
        if uid is None:
            return []
        try:
            fd = os.open(self.path(job_id), os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError:
            return []
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode) or info.st_uid != uid:
                return []
            seen = self._read.get(job_id)
            if seen is None or seen.inode != (info.st_dev, info.st_ino) or info.st_size < seen.offset:
                seen = self._read[job_id] = _Registrations((info.st_dev, info.st_ino))
            wanted = min(info.st_size, MAX_REGISTRATION_BYTES) - seen.offset
            data = os.pread(fd, wanted, seen.offset) if wanted > 0 else b""
        except OSError:
            return []
        finally:
            os.close(fd)
        seen.offset += len(data)
        lines = (seen.partial + data).split(b"\n")
        seen.partial = lines.pop()
        running = seen.running
        for line in lines:
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
        self._read.pop(job_id, None)
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
