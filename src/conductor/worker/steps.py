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
        return path

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
