"""Opening a job's files on its user's behalf: the API reads its output, the worker appends
slurmstepd's notices to its error file; only what the job's user could read, or write.

A job's output path is whatever its submitter wrote, and the API may run as root, or, in a
split deployment, as an unprivileged service account that owns the server's token and its
database. The submitter could point the path at a file they cannot read (`/etc/shadow`, the
server's `$CONDUCTOR_HOME/token`), at a file inside a directory they cannot enter, at a
device (a terminal the daemon would then take as its controlling terminal), or plant a
symbolic link at the path or at any directory above it. So the output is shown only when the
job's user could read it themselves:

- every component is opened relative to its parent with O_PATH|O_NOFOLLOW: no symbolic link
  is followed (a check of `realpath(path) == path` would race with a rename), and O_PATH
  opens nothing for real, so no device driver, FIFO or terminal sees an open;
- every directory on the way must be searchable by the job's user: the kernel's rule from
  the mode bits of each directory's fstat, for the user's uid, primary gid and supplementary
  groups on this host. A directory carrying a POSIX access ACL is refused unless the user
  owns it (the owner's ACL entry is the mode's owner bits; the other entries are not
  evaluated here: refusing is the safe side);
- the last component must be a regular file owned by the job's user, with its owner's read
  bit, and no kernel interface (procfs, sysfs...: what those give depends on who reads them); never a file of the API's own user unless that is the job's user too; a job with no
  uid shows nothing;
- only then is it opened for reading (or, for the worker's notices, appending, which needs the
  owner's write bit instead), through /proc/self/fd/N of the O_PATH descriptor with
  O_NOCTTY|O_NONBLOCK (so the very inode checked is the one read), and the descriptor read is
  checked to be that inode.

The worker, root, appends to the job's error file after the job has ended, at a path the user
chose and may have changed since (a directory above it swapped for a link to where root alone
may go): the same walk keeps root from opening anything there, a device or a FIFO included.

Uid 0 may read everything (the kernel's DAC override), but the file must still be its own.

Why emulate the kernel's check rather than read as the user: an unprivileged API cannot
switch users at all, so the emulation is needed there anyway; in a root API, switching the
file-system ids of one thread of a threaded server (setfsuid, and setgroups, which the C
library applies to every thread) risks another request running with the wrong ids, and a
helper process per query (the query is polled) costs a fork and an exec, over ten
milliseconds of Python start-up, against under a tenth of a millisecond for this walk. The
API's own rights still apply on top (it opens everything itself), so nothing shown is beyond
either.
"""

from __future__ import annotations

import errno
import os
import pwd
import stat
import time
from dataclasses import dataclass

_DIR_FLAGS = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_LEAF_FLAGS = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC
_READ_FLAGS = os.O_RDONLY | os.O_NOCTTY | os.O_NONBLOCK | os.O_CLOEXEC
_APPEND_FLAGS = os.O_WRONLY | os.O_APPEND | os.O_NOCTTY | os.O_NONBLOCK | os.O_CLOEXEC
_ACCESS_ACL = "system.posix_acl_access"
_SEARCH = 0o1


@dataclass(frozen=True, slots=True)
class Reader:
    """The user whose rights decide what is shown: a uid and every group the kernel checks."""

    uid: int
    groups: frozenset[int]


def reader_for(uid: int | None) -> Reader | None:
    """The job user's rights on this host (None for a job with no uid: nothing is shown).

    Looked up at each query (some tens of microseconds from /etc/group), so a change of
    membership counts at once. A uid this host does not know keeps only its own rights (no
    group), the safe side."""
    if uid is None:
        return None
    try:
        entry = pwd.getpwuid(uid)
        groups = frozenset(os.getgrouplist(entry.pw_name, entry.pw_gid))
    except (KeyError, OSError):
        groups = frozenset()
    return Reader(uid, groups)


def _allows(info: os.stat_result, reader: Reader, want: int) -> bool:
    """Whether the kernel grants `reader` the `want` bits on a file with these mode bits
    (no ACL): the owner's class if the uid owns it, else the group's if a group matches, else
    the others'; exactly one class counts, as in the kernel."""
    if reader.uid == 0:
        return True
    if info.st_uid == reader.uid:
        bits = info.st_mode >> 6
    elif info.st_gid in reader.groups:
        bits = info.st_mode >> 3
    else:
        bits = info.st_mode
    return bits & want == want


def _has_access_acl(fd: int) -> bool:
    """Whether the inode of O_PATH descriptor `fd` carries a POSIX access ACL beyond its mode.

    Read through /proc/self/fd (the xattr calls do not take O_PATH descriptors). An error
    other than "no such attribute" or "not supported here" counts as an ACL: the safe side."""
    try:
        os.getxattr(f"/proc/self/fd/{fd}", _ACCESS_ACL)
    except OSError as exc:
        return exc.errno not in (errno.ENODATA, errno.ENOTSUP, errno.EOPNOTSUPP)
    return True


def _searchable(fd: int, reader: Reader) -> bool:
    info = os.fstat(fd)
    if reader.uid == 0:
        return True
    if info.st_uid != reader.uid and _has_access_acl(fd):
        return False
    return _allows(info, reader, _SEARCH)


# Kernel interfaces that look like regular files: what they give depends on who opens them
# (/proc/PID/pagemap's page frames and /proc/PID/stack only to an administrator), not on their
# owner and mode, so the rule above cannot answer for them. Never opened for a job's user.
_PSEUDO_FILE_SYSTEMS = frozenset({
    "proc", "sysfs", "debugfs", "tracefs", "securityfs", "cgroup", "cgroup2", "bpf", "configfs",
    "efivarfs", "pstore", "fusectl", "binfmt_misc", "selinuxfs", "rpc_pipefs", "nsfs", "mqueue",
})
_MOUNTS_CACHE_SECONDS = 10.0
_mounts: list[tuple[float, frozenset[int]]] = []


def _pseudo_devices() -> frozenset[int]:
    """The device numbers of the kernel interfaces mounted here (read again after a while:
    mounts change)."""
    now = time.monotonic()
    if _mounts and now - _mounts[0][0] < _MOUNTS_CACHE_SECONDS:
        return _mounts[0][1]
    devices = set()
    try:
        with open("/proc/self/mountinfo", "rb") as mountinfo:
            for line in mountinfo:
                fields, _, rest = line.partition(b" - ")
                parts = fields.split()
                if len(parts) > 2 and rest.split(b" ", 1)[0].decode(errors="replace") in _PSEUDO_FILE_SYSTEMS:
                    major, _, minor = parts[2].partition(b":")
                    devices.add(os.makedev(int(major), int(minor)))
    except (OSError, ValueError):
        pass
    found = frozenset(devices)
    _mounts[:] = [(now, found)]
    return found


def open_for(path: str, reader: Reader, *, append: bool = False) -> int:
    """A read-only descriptor of the regular file at absolute `path`, if `reader` may read it
    (`append`: one that appends, if `reader` may write it).

    No symbolic link is followed, no device, FIFO or terminal is opened. Raises OSError
    (EACCES, ELOOP, ENOTDIR, EINVAL...) when the file is not to be shown.
    """
    if not os.path.isabs(path):
        raise OSError(errno.EINVAL, "not an absolute path", path)
    parts = [p for p in path.split("/") if p and p != "."]
    if not parts:
        raise OSError(errno.EISDIR, "is a directory", path)
    # Appending to the user's own file (a notice) shows nothing: whether the user could reach
    # it (the emulation refuses a directory with an ACL) does not matter there.
    def check(directory: int) -> bool:
        return append or _searchable(directory, reader)

    fd = os.open("/", _DIR_FLAGS)
    try:
        if not check(fd):
            raise OSError(errno.EACCES, "a directory on the path is not searchable by the job's user", path)
        for part in parts[:-1]:
            next_fd = os.open(part, _DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = next_fd
            if not check(fd):
                raise OSError(errno.EACCES, "a directory on the path is not searchable by the job's user", path)
        leaf = os.open(parts[-1], _LEAF_FLAGS, dir_fd=fd)
    finally:
        os.close(fd)
    try:
        info = os.fstat(leaf)
        if not stat.S_ISREG(info.st_mode):
            raise OSError(errno.EINVAL, "not a regular file", path)  # also a symbolic link itself
        if info.st_dev in _pseudo_devices():
            raise OSError(errno.EINVAL, "a kernel interface, not a file", path)
        owner_bit, verb = (stat.S_IWUSR, "write") if append else (stat.S_IRUSR, "read")
        if info.st_uid != reader.uid or not (reader.uid == 0 or info.st_mode & owner_bit):
            raise OSError(errno.EACCES, f"not a file the job's user owns and may {verb}", path)
        readable = os.open(f"/proc/self/fd/{leaf}", _APPEND_FLAGS if append else _READ_FLAGS)
    finally:
        os.close(leaf)
    opened = os.fstat(readable)
    if (opened.st_dev, opened.st_ino) != (info.st_dev, info.st_ino):  # cannot happen; checked anyway
        os.close(readable)
        raise OSError(errno.ESTALE, "the file changed while it was opened", path)
    return readable


def read_tail(path: str, limit: int, reader: Reader | None) -> str | None:
    """The last `limit` bytes of the job's output file at `path` if `reader` (the job's user)
    may read it, else None."""
    if reader is None:
        return None
    try:
        fd = open_for(path, reader)
    except OSError:
        return None
    try:
        size = os.fstat(fd).st_size
        start = max(size - limit, 0)
        data = os.pread(fd, limit, start) if limit > 0 else b""
    except OSError:
        return None
    finally:
        os.close(fd)
    return data.decode(errors="replace")
