"""Reading a job's output files for the API without being tricked into reading anything else.

The API may run as root while a job's output path is whatever its submitter wrote. The
submitter could point it at a file they cannot read (`/etc/shadow`), or plant a symbolic
link at the path or at any directory above it, and ask the API for the "output". So:
- every component of the path is opened relative to its parent with O_NOFOLLOW, so no
  symbolic link is followed, neither the last component nor a directory on the way
  (a check of `realpath(path) == path` would race with a rename);
- only a regular file is read (no FIFO that blocks, no device);
- only a file owned by the user the job ran as is read: what the job itself could have
  written, nothing another user owns.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Collection

# O_PATH needs only search permission on directories and opens nothing for reading.
_DIR_FLAGS = getattr(os, "O_PATH", os.O_RDONLY) | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


def open_nofollow(path: str) -> int:
    """A read-only descriptor of the absolute `path`, no symbolic link followed on the way.

    Raises OSError (ELOOP or ENOTDIR for a link) like os.open.
    """
    if not os.path.isabs(path):
        raise OSError(22, "not an absolute path", path)
    parts = [p for p in path.split("/") if p and p != "."]
    if not parts:
        raise OSError(21, "is a directory", path)
    fd = os.open("/", _DIR_FLAGS)
    try:
        for part in parts[:-1]:
            next_fd = os.open(part, _DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = next_fd
        return os.open(parts[-1], _FILE_FLAGS, dir_fd=fd)
    finally:
        os.close(fd)


def output_owners(job_uid: int | None) -> set[int]:
    """The uids whose files may be shown as a job's output.

    A root API shows only files of the job's user. An unprivileged API can read only what its
    own user can, which is also the user every job runs as when the worker is not root.
    """
    me = os.geteuid()
    owners = {job_uid} if job_uid is not None else set()
    if me != 0 or job_uid is None:
        owners.add(me)
    return owners


def read_tail(path: str, limit: int, owners: Collection[int] | None = None) -> str | None:
    """The last `limit` bytes of a regular file at `path` owned by one of `owners`, else None."""
    try:
        fd = open_nofollow(path)
    except OSError:
        return None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return None
        if owners is not None and info.st_uid not in owners:
            return None
        start = max(info.st_size - limit, 0)
        data = os.pread(fd, limit, start) if limit > 0 else b""
    finally:
        os.close(fd)
    return data.decode(errors="replace")
