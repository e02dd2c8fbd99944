"""The output view's rule on real files: shown only what the job's user could read.

Files and directories are made with owners and modes of arbitrary uids and gids (no user
needs to exist for the kernel's rule, which conductor.userfiles emulates), so these tests
need root to chown, as the security suite does.
"""

from __future__ import annotations

import os
import select
import shutil
import struct
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from conductor.userfiles import Reader, read_tail, reader_for

USER, GROUP, OTHER_GROUP = 424_242, 434_343, 444_444
ME = Reader(USER, frozenset({USER, GROUP}))


@pytest.fixture
def base() -> Iterator[Path]:
    """A directory every user may search (pytest's tmp_path is root's alone)."""
    if os.geteuid() != 0:
        if os.environ.get("CI", "").lower() in ("true", "1", "yes"):
            pytest.fail("these tests chown files to other users: CI must run them as root")
        pytest.skip("these tests chown files to other users, which needs root")
    path = Path(tempfile.mkdtemp(prefix="cdt_outputs_", dir="/tmp"))
    os.chmod(path, 0o711)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def make_dir(path: Path, uid: int, gid: int, mode: int) -> Path:
    path.mkdir()
    os.chown(path, uid, gid)
    os.chmod(path, mode)
    return path


def make_file(path: Path, uid: int = USER, mode: int = 0o600, text: str = "data\n") -> Path:
    path.write_text(text)
    os.chown(path, uid, GROUP)
    os.chmod(path, mode)
    return path


def shown(path: Path, reader: Reader | None = ME) -> str | None:
    return read_tail(str(path), 100, reader)


@pytest.mark.parametrize(
    ("uid", "gid", "mode", "expected"),
    [
        (USER, OTHER_GROUP, 0o700, True),  # the user's own
        (USER, GROUP, 0o070, False),  # the owner class counts for the owner, not the group's
        (0, GROUP, 0o710, True),  # a group of the user
        (0, GROUP, 0o701, False),  # the group class counts for a member, not the others'
        (0, OTHER_GROUP, 0o701, True),  # anyone may search it
        (0, OTHER_GROUP, 0o750, False),  # someone else's group
        (0, OTHER_GROUP, 0o700, False),  # the API's (root's) private directory
        (0, OTHER_GROUP, 0o744, False),  # readable is not searchable
    ],
)
def test_directories_must_be_searchable_by_the_jobs_user(base: Path, uid: int, gid: int, mode: int, expected: bool) -> None:
    directory = make_dir(base / "d", uid, gid, mode)
    out = make_file(directory / "out.txt")
    assert (shown(out) == "data\n") is expected
    # Deeper down the same: every component counts, not only the last directory.
    inner = make_dir(directory / "inner", USER, GROUP, 0o700)
    assert (shown(make_file(inner / "out.txt")) == "data\n") is expected


def test_the_file_must_be_the_users_and_readable_by_them(base: Path) -> None:
    open_dir = make_dir(base / "d", 0, 0, 0o755)
    assert shown(make_file(open_dir / "mine", mode=0o400)) == "data\n"
    assert shown(make_file(open_dir / "unreadable", mode=0o200)) is None
    assert shown(make_file(open_dir / "others-bits-only", mode=0o044)) is None
    # Not the user's, however open: the API's own files (root's here), another user's.
    assert shown(make_file(open_dir / "apis", uid=os.geteuid(), mode=0o644)) is None
    assert shown(make_file(open_dir / "anothers", uid=USER + 1, mode=0o666)) is None
    # A job with no uid shows nothing.
    assert shown(open_dir / "mine", None) is None
    assert reader_for(None) is None


def test_root_reads_its_own_files_anywhere(base: Path) -> None:
    private = make_dir(base / "d", USER, GROUP, 0o700)
    root = Reader(0, frozenset({0}))
    assert shown(make_file(private / "roots", uid=0, mode=0o000), root) == "data\n"
    assert shown(make_file(private / "users", mode=0o644), root) is None


def _acl(*entries: tuple[int, int, int]) -> bytes:
    """A POSIX access ACL as the kernel stores it (version 2, then tag, permissions, id)."""
    return struct.pack("<I", 2) + b"".join(struct.pack("<HHI", *e) for e in entries)


_UNDEFINED = 0xFFFFFFFF
_USER_OBJ, _USER, _GROUP_OBJ, _MASK, _OTHER = 0x01, 0x02, 0x04, 0x10, 0x20


def _set_acl(path: Path, *named_users: tuple[int, int]) -> None:
    entries = [(_USER_OBJ, 7, _UNDEFINED), *((_USER, perm, uid) for uid, perm in named_users)]
    entries += [(_GROUP_OBJ, 5, _UNDEFINED), (_MASK, 5, _UNDEFINED), (_OTHER, 5, _UNDEFINED)]
    try:
        os.setxattr(path, "system.posix_acl_access", _acl(*entries))
    except OSError as exc:
        pytest.skip(f"this file system takes no POSIX ACLs: {exc}")


def test_directories_with_access_acls_are_refused_unless_the_user_owns_them(base: Path) -> None:
    # Mode 0755 says "anyone may search", but an ACL entry denies the user: the kernel would refuse.
    denied = make_dir(base / "denied", 0, 0, 0o755)
    _set_acl(denied, (USER, 0))
    assert shown(make_file(denied / "out.txt")) is None
    # An ACL granting the user is refused too: only the owner's entry is evaluated.
    granted = make_dir(base / "granted", 0, 0, 0o755)
    _set_acl(granted, (USER, 5))
    assert shown(make_file(granted / "out.txt")) is None
    # The user's own directory with an ACL: the owner's entry is the mode's owner bits.
    own = make_dir(base / "own", USER, GROUP, 0o755)
    _set_acl(own, (USER + 1, 0))
    assert shown(make_file(own / "out.txt")) == "data\n"


def test_devices_and_terminals_are_never_opened(base: Path) -> None:
    """A root API and a job of root: /dev/null and a pty are root's, yet not regular files; the
    pty must not even be opened (it would become the controlling terminal of a process with
    none, as a daemon is). Checked in a child that is a session leader without one."""
    root = Reader(0, frozenset({0}))
    assert shown(Path("/dev/null"), root) is None
    master, slave = os.openpty()
    pty_path = os.ttyname(slave)
    os.close(slave)
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through the pipe
        try:
            os.setsid()
            result = read_tail(pty_path, 100, root)
            stat_line = Path("/proc/self/stat").read_text()
            tty_nr = stat_line[stat_line.rindex(")") + 2 :].split()[4]
            os.write(write_end, f"{result!r} {tty_nr}".encode())
        finally:
            os._exit(0)
    os.close(write_end)
    report = os.read(read_end, 100).decode()
    os.waitpid(pid, 0)
    os.close(read_end)
    os.close(master)
    assert report == "None 0"


def test_readers_are_the_users_uid_and_groups() -> None:
    root = reader_for(0)
    assert root is not None and root.uid == 0 and 0 in root.groups
    unknown = reader_for(USER)
    assert unknown == Reader(USER, frozenset())  # no passwd entry here: no group counts


def test_the_worker_appends_a_notice_only_where_the_jobs_user_could_write(base: Path) -> None:
    """slurmstepd's notice goes to the job's error file after the job, at a path its user may
    have changed since: a directory above it swapped for a link to where root alone goes made
    the worker, root, open what lies there (a FIFO, a device) before any check."""
    from conductor.worker.notices import write_notice

    own = make_dir(base / "own", USER, GROUP, 0o755)
    err = make_file(own / "err", text="")
    assert write_notice(str(err), USER, "slurmstepd: error: *** JOB 1 ***")
    assert err.read_text() == "slurmstepd: error: *** JOB 1 ***\n"
    assert not write_notice(str(make_file(own / "read-only", mode=0o400, text="")), USER, "x")
    assert not write_notice(str(make_file(own / "anothers", uid=USER + 1, mode=0o666, text="")), USER, "x")

    # The directory swapped for a link to root's private one, holding a FIFO and a file of the
    # user's: neither is opened (a FIFO opened with a reader waiting would be written to).
    private = make_dir(base / "private", 0, 0, 0o700)
    os.mkfifo(private / "err")
    behind = make_file(private / "err2", text="")
    os.rename(own, base / "own.old")
    os.symlink(private, own)
    reader = os.open(private / "err", os.O_RDONLY | os.O_NONBLOCK)  # a reader is waiting
    try:
        assert not write_notice(str(own / "err"), USER, "x")
        assert not write_notice(str(own / "err2"), USER, "x")
        # Linux tells a FIFO's reader of a writer come and gone (POLLHUP): none came.
        poll = select.poll()
        poll.register(reader, select.POLLIN)
        assert poll.poll(0) == []
    finally:
        os.close(reader)
    assert behind.read_text() == ""
    # Nor a link at the file itself, nor a device.
    os.unlink(own)
    (base / "own.old").rename(own)
    os.symlink(err, own / "link")
    assert not write_notice(str(own / "link"), USER, "x")
    assert not write_notice("/dev/null", USER, "x")


def test_kernel_interfaces_are_never_read_for_a_user() -> None:
    """/proc/PID/stack and /proc/PID/pagemap are the process owner's, mode 0400, but what they
    give depends on the reader's privileges: the API, root, showed a user kernel stacks and page
    frames of their own processes that the user cannot read."""
    import subprocess

    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        me = Reader(os.geteuid(), frozenset({os.getegid()}))
        for name in ("stat", "stack", "environ"):
            assert read_tail(f"/proc/{sleeper.pid}/{name}", 100, me) is None, name
        assert read_tail("/sys/kernel/mm/transparent_hugepage/enabled", 100, me) is None
    finally:
        sleeper.kill()
        sleeper.wait()
