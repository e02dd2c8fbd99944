"""The node's spool: job scripts (`scripts/`) and status files (`run/`), and the spares of both.

A file reused costs a rename; a new one, on ext4 without a journal, a scan past every inode
deleted in the last minutes (up to a few hundred microseconds when files come and go). So the
status file and script of a reported job are kept as spares for later jobs, rather than deleted.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from conductor.worker import protocol
from conductor.worker.protocol import JobStatus

# Status files of reported jobs kept for reuse (see protocol.py), at most; and scripts, per user.
MAX_SPARES = 1024
MAX_SPARE_SCRIPTS = 256


def read_status(path: str | Path) -> JobStatus:
    """What a job's status file says (see protocol.py); empty when there is none."""
    try:
        with open(path, "rb") as f:
            return protocol.parse_status(f.read())
    except FileNotFoundError:
        return JobStatus()


def exit_report(outcome: str, pid: int) -> JobStatus | None:
    """The launcher's "CODE SIG UTIME STIME" as a status; None: read the job's status file."""
    parsed = protocol.parse_exit(outcome)
    if parsed is None or parsed[1] is None:
        return None
    return JobStatus(pid=pid, exit=parsed[0], rusage=parsed[1])


def status_job_id(name: str) -> int | None:
    """The job a file of the status directory is the status file of, if it is one."""
    digits = name[len("job_") : -len(".status")]
    if name.startswith("job_") and name.endswith(".status") and digits.isdigit():
        return int(digits)
    return None


class Spool:
    def __init__(self, home: Path) -> None:
        self.scripts_dir = home / "scripts"
        self.status_dir = home / "run"
        self.steps_dir = home / "steps"  # each job's step records (worker/steps.py)
        # Strings for the paths made per job: pathlib costs more than the system calls.
        self._scripts_prefix = f"{self.scripts_dir}/job_"
        self._status_prefix = f"{self.status_dir}/job_"
        self._spare_prefix = f"{self.status_dir}/spare_"
        self.spares: list[str] = []  # status files to reuse
        # Scripts of reported jobs, by the uid that owns them ("" for the worker's own user), to
        # be reused for that user's jobs only: a process that outlived its job and kept its
        # script open must not read another user's next one.
        self._spare_scripts: dict[str, list[str]] = {}
        self._script_owner: dict[int, str] = {}  # job id -> owner of the script written for it

    def status_path(self, job_id: int) -> str:
        return f"{self._status_prefix}{job_id}.status"

    def make_dirs(self) -> None:
        self.scripts_dir.mkdir(parents=True, exist_ok=True)
        self.status_dir.mkdir(parents=True, exist_ok=True)
        self.steps_dir.mkdir(parents=True, exist_ok=True)
        # Jobs of other users must reach their own script (and step records) by name, and list
        # nothing.
        os.chmod(self.scripts_dir, 0o711)
        os.chmod(self.status_dir, 0o700)
        os.chmod(self.steps_dir, 0o711)

    def find_spares(self) -> None:
        """A predecessor's spare files (its launcher, done with its requests, uses none any more)."""
        with contextlib.suppress(FileNotFoundError):
            names = os.listdir(self.status_dir)
            self.spares = [f"{self.status_dir}/{name}" for name in names if name.startswith("spare_")][:MAX_SPARES]
        self._spare_scripts = {}
        with contextlib.suppress(FileNotFoundError):
            for name in os.listdir(self.scripts_dir):
                kind, _, rest = name.partition("_")
                owner = rest.rpartition("_")[0]  # spare_OWNER_JOBID
                if kind == "spare" and owner:
                    spares = self._spare_scripts.setdefault("" if owner == "self" else owner, [])
                    if len(spares) < MAX_SPARE_SCRIPTS:
                        spares.append(f"{self.scripts_dir}/{name}")

    def take_spare(self) -> str:
        """A spare status file for the launcher to reuse, or "" (it makes a new one)."""
        return self.spares.pop() if self.spares else ""

    def write_script(self, job_id: int, script: str, uid: str, gid: str) -> str:
        """Write the job's script, owned by its user (`uid` "": the worker's); returns its path."""
        script_path = f"{self._scripts_prefix}{job_id}.sh"
        data = script.encode()
        reused = False
        spares = self._spare_scripts.get(uid)
        if spares:
            with contextlib.suppress(FileNotFoundError):
                os.rename(spares.pop(), script_path)
                reused = True
        # A reused file is overwritten, then cut: emptied first, it would give its block back
        # and take another.
        fd = os.open(script_path, os.O_WRONLY | os.O_NOFOLLOW | (0 if reused else os.O_CREAT | os.O_TRUNC), 0o700)
        try:
            # The job's user reads and runs it; no one else reads it (scripts/ is not listable).
            if uid:
                os.fchown(fd, int(uid), int(gid))
            os.fchmod(fd, 0o700)
            os.write(fd, data)
            if reused:
                os.ftruncate(fd, len(data))
        finally:
            os.close(fd)
        self._script_owner[job_id] = uid
        return script_path

    def forget_script(self, job_id: int) -> None:
        """The job's script stays where it is (its processes may hold it): never reuse it."""
        self._script_owner.pop(job_id, None)

    def recycle(self, job_id: int) -> None:
        """A reported job's files become spares (or go, beyond the limits)."""
        spares = self.spares
        with contextlib.suppress(FileNotFoundError):
            if len(spares) < MAX_SPARES:
                spare = f"{self._spare_prefix}{job_id}"
                os.rename(self.status_path(job_id), spare)
                spares.append(spare)
            else:
                os.unlink(self.status_path(job_id))
        # As Slurm's spooled script, the job's script goes with the job (to the next job of
        # its user). Scripts of jobs re-adopted after a restart stay where they are.
        owner = self._script_owner.pop(job_id, None)
        if owner is not None:
            scripts = self._spare_scripts.setdefault(owner, [])
            if len(scripts) < MAX_SPARE_SCRIPTS:
                spare = f"{self.scripts_dir}/spare_{owner or 'self'}_{job_id}"
                with contextlib.suppress(FileNotFoundError):
                    os.rename(f"{self._scripts_prefix}{job_id}.sh", spare)
                    scripts.append(spare)

    def status_files(self) -> list[int]:
        """The jobs that have a status file."""
        found = []
        for name in os.listdir(self.status_dir):
            job_id = status_job_id(name)
            if job_id is not None:
                found.append(job_id)
        return found

    def remove_status(self, job_id: int) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.status_path(job_id))
