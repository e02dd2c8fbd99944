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
import shutil
import stat
import tempfile
from pathlib import Path

from conductor.domain.usage import StepRecord, parse_step

log = logging.getLogger("conductor.worker")

MAX_BYTES = 256 * 1024
ENV = "CONDUCTOR_STEP_RECORDS"
# The running sruns' registrations: files `<records><RUNNING>/<pid>` (cli/srun.py makes them).
RUNNING = ".sruns"
# At most this many sruns of one job are signalled: the directory is everyone's to write in.
MAX_SRUNS = 4096


class StepRecords:
    def __init__(self, node: str, home: Path) -> None:
        # The node and the worker's home in the name: two workers on one machine number their
        # jobs alike.
        tag = hashlib.sha1(os.fsencode(str(home.resolve()))).hexdigest()[:8]
        self._prefix = f"{tempfile.gettempdir()}/conductor-steps.{node}.{tag}."

    def path(self, job_id: int) -> str:
        return f"{self._prefix}{job_id}.jsonl"

    def clear(self, job_id: int) -> str:
        """Before a launch: no earlier run's file (nor one planted by someone else) stays."""
        path = self.path(job_id)
        for name in (path, path + ".next"):  # the records, and srun's step counter
            with contextlib.suppress(FileNotFoundError):
                os.unlink(name)
        _remove_registrations(path + RUNNING)
        return path

    def sruns(self, job_id: int, uid: int | None) -> list[int]:
        """The pids of the sruns running in the job, as each registered itself: an empty file
        named after its pid in a directory beside the records, while its tasks run (cli/srun.py).
        Only the job's user's directory counts, and a pid is only a claim, which the signaller
        checks against the job's process group before it sends anything."""
        directory = self.path(job_id) + RUNNING
        try:
            info = os.lstat(directory)
            if not stat.S_ISDIR(info.st_mode) or (uid is not None and info.st_uid != uid):
                return []
            names = os.listdir(directory)
        except OSError:
            return []
        return sorted(int(name) for name in names if name.isascii() and name.isdigit() and len(name) < 10)[:MAX_SRUNS]

    def collect(self, job_id: int, uid: int | None) -> tuple[StepRecord, ...]:
        path = self.path(job_id)
        with contextlib.suppress(OSError):
            os.unlink(path + ".next")
        _remove_registrations(path + RUNNING)
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


def _remove_registrations(directory: str) -> None:
    """Remove the registrations' directory of a job's earlier run, if any (one stat when none).
    The job's user made it: links inside are removed, never followed (rmtree on a system with
    dir_fd functions)."""
    try:
        info = os.lstat(directory)
    except OSError:
        return
    if stat.S_ISDIR(info.st_mode):
        shutil.rmtree(directory, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            os.unlink(directory)
