"""The launch protocol: what the worker and its launcher (launcher.py) say to each other, and
what the launcher writes in each job's status file. Specified here once, for both sides.

Standard library only, and only `os`: the launcher runs this file outside the package (see
launcher.py), and every module it imports is in the memory each of its forks copies.

The launcher's fixed descriptors: 0 the worker's requests, 1 the replies, 2 a log, LOCK_FD the
worker's launch lock (held until the requests end). It starts with nothing else open.

A request is a 4-byte big-endian length and a NUL-separated frame:
  TAG STATUS_FILE SPARE UID GID GROUPS CWD STDIN STDOUT STDERR OPEN_MODE CGROUP NPROC LIMIT ARGC ARGV... NAME=VALUE...
SPARE, if not empty, is a status file the worker is done with, to be rewritten and renamed to
STATUS_FILE: making files costs more than reusing them (ext4 without a journal scans past every
recently deleted inode for each new one). UID empty means: do not change user; GROUPS is a
comma-separated list. OPEN_MODE is "append" or "truncate", for STDOUT and STDERR. CPU binding is
the launcher's own affinity at the fork, which the worker sets before the request. CGROUP is
a colon-separated list of files (control groups' cgroup.procs) the launcher writes the job's
pid to before the job may run (empty: none); NPROC, if not empty, the job's RLIMIT_NPROC.
LIMIT is "DEADLINE KILL_WAIT" (wall-clock seconds) or empty: once its requests have ended (the
worker is gone), the launcher itself ends a job past its deadline, as the worker would: SIGCONT
and SIGTERM to its process group, SIGKILL KILL_WAIT seconds later. A frame
  TAG "limit" DEADLINE KILL_WAIT
(TAG: the job's launch) changes a job's limit (empty DEADLINE: none).

Replies, one line each (written in batches):
  "TAG PID STARTTIME"              the job's process was started
  "TAG error MESSAGE"              no process was made
  "exit TAG CODE SIG UTIME STIME MAXRSS END"  the process ended (as its status file says)
  "exit TAG"                       it ended and its status file says why (a setup failure)
  "bye"                            the requests ended and the launch lock is let go

STATUS_FILE, made by the launcher (as root, 0600) before the job may run, holds, in order:
  "start PID STARTTIME LAUNCHER_PID LAUNCHER_STARTTIME"  written first, before the job may run
  "error MESSAGE"                  the job's setup failed; its command never ran
  "timeout TIME"                   the launcher ended it at its deadline (the worker was gone)
  "exit CODE SIG UTIME STIME MAXRSS END"  written once the launcher reaped it (CPU times in
                                   seconds, MAXRSS: wait4's, in KiB, END: when it was reaped, in
                                   wall-clock seconds; older launchers wrote neither)
STARTTIME is field 22 of /proc/PID/stat: with the pid, a process's identity (pids are reused).

What "started" means: the job's process makes itself a session and waits for the launcher's go
(a byte on a pipe of its own), which comes once it is in its control groups and its "start" line is in the status file under the
job's name; only then does it drop privileges, set the job's environment, enter CWD, open its
files (a failure is an "error" line) and run the command. A process whose launcher died without
the go runs only if that line is in place all the same, and gives up otherwise. So a job runs if
and only if its status file has its "start" line: once the launcher is gone, or the launch lock
free (it read its last request and dealt with it), a claimed job without the line may be
launched again, and one with it is never sent again.
"""

from __future__ import annotations

import os

LOCK_FD = 3
BYE = b"bye"
# The launch lock, in the status directory: held by the worker and its launcher (launcher.py).
LOCK_FILE = b"launcher.lock"
GO = b"g"
APPEND = b"append"  # OPEN_MODE that appends; anything else truncates


class LaunchSpec:
    """One request's fields, as bytes (paths, arguments and variables are the system's bytes)."""

    __slots__ = ("status_path", "spare", "uid", "gid", "groups", "cwd", "stdin", "stdout", "stderr", "open_mode",
                 "cgroup", "nproc", "limit", "argv", "env")

    def __init__(
        self,
        status_path: bytes,
        spare: bytes,
        uid: bytes,
        gid: bytes,
        groups: bytes,
        cwd: bytes,
        stdin: bytes,
        stdout: bytes,
        stderr: bytes,
        open_mode: bytes,
        cgroup: bytes,
        nproc: bytes,
        limit: bytes,
        argv: list[bytes],
        env: list[bytes],
    ) -> None:
        self.status_path = status_path
        self.spare = spare
        self.uid = uid
        self.gid = gid
        self.groups = groups
        self.cwd = cwd
        self.stdin = stdin
        self.stdout = stdout
        self.stderr = stderr
        self.open_mode = open_mode
        self.cgroup = cgroup  # b"PROCS:PROCS..." or b""
        self.nproc = nproc
        self.limit = limit  # b"DEADLINE KILL_WAIT" or b""
        self.argv = argv
        self.env = env  # b"NAME=VALUE"


def encode_request_body(
    status_path: str,
    spare: str,
    user: tuple[str, str, str],
    cwd: str,
    stdio: tuple[str, str, str],
    open_mode: str,
    argv: list[str],
    env: dict[str, str],
    cgroup: tuple[list[str], int | None] = ([], None),
    limit: tuple[float, float] | None = None,
) -> bytes:
    """A request without its tag: `user` is (uid, gid, groups), all "" to stay the worker's user;
    `cgroup` the cgroup.procs files to join and the RLIMIT_NPROC (None: unchanged); `limit` the
    deadline and kill wait the launcher enforces once the worker is gone."""
    procs, nproc = cgroup
    if any(":" in path for path in procs):
        raise ValueError("a control group's path contains ':'")
    fields = [status_path, spare, *user, cwd, *stdio, open_mode, ":".join(procs), "" if nproc is None else str(nproc),
              limit_text(limit), str(len(argv)), *argv,
              *(f"{name}={value}" for name, value in env.items())]
    text = "\0".join(fields)
    if text.count("\0") != len(fields) - 1:
        # Every later field would shift: a path could become the command, a value a variable.
        raise ValueError("a path, argument or environment variable contains a NUL character")
    return os.fsencode(text)


def limit_text(limit: tuple[float, float] | None) -> str:
    return "" if limit is None else f"{limit[0]:.3f} {limit[1]:.3f}"


def limit_frame(tag: int, limit: tuple[float, float] | None) -> bytes:
    """A job's new deadline (see LIMIT): for the launcher that started it with `tag`."""
    return frame(tag, b"limit\0" + limit_text(limit).encode())


def parse_limit(text: bytes) -> tuple[float, float] | None:
    deadline, _, kill_wait = text.partition(b" ")
    try:
        return float(deadline), float(kill_wait)
    except ValueError:
        return None


def frame(tag: int, body: bytes) -> bytes:
    head = b"%d\0" % tag
    return (len(head) + len(body)).to_bytes(4, "big") + head + body


def split_frames(buffer: bytes) -> tuple[list[bytes], bytes]:
    """The complete frames at the start of `buffer`, and what is left of it."""
    frames = []
    pos, end = 0, len(buffer)
    while end - pos >= 4:
        size = int.from_bytes(buffer[pos : pos + 4], "big")
        if end - pos - 4 < size:
            break
        frames.append(buffer[pos + 4 : pos + 4 + size])
        pos += 4 + size
    return frames, buffer[pos:]


def decode_request(data: bytes) -> tuple[bytes, LaunchSpec | None]:
    """A frame's tag, and its fields (None: malformed)."""
    fields = data.split(b"\0")
    tag = fields[0]
    if len(fields) < 15 or not tag.isdigit() or not fields[14].isdigit():
        return tag, None
    argc = int(fields[14])
    if argc < 1 or len(fields) - 15 < argc:
        return tag, None
    status_path, spare, uid, gid, groups, cwd, stdin, stdout, stderr, open_mode, cgroup, nproc, limit = fields[1:14]
    if nproc and not nproc.isdigit():
        return tag, None
    return tag, LaunchSpec(
        status_path, spare, uid, gid, groups, cwd, stdin, stdout, stderr, open_mode, cgroup, nproc, limit,
        fields[15 : 15 + argc], fields[15 + argc :],
    )


# ------------------------------------------------------------------ replies
def started_reply(tag: bytes, pid: int, ticks: int) -> bytes:
    return b"%s %d %d\n" % (tag, pid, ticks)


def error_reply(tag: bytes, message: str) -> bytes:
    return tag + b" error " + one_line(message) + b"\n"


def exit_reply(tag: bytes, outcome: bytes | None) -> bytes:
    """`outcome` as the exit line has it; None: the status file says why (a setup failure)."""
    return b"exit " + tag + (b" " + outcome if outcome is not None else b"") + b"\n"


class Reply:
    """One line of the launcher's replies. kind: "started", "error", "exit", "bye" or "unknown"."""

    __slots__ = ("kind", "tag", "pid", "ticks", "text")

    def __init__(self, kind: str, tag: int = 0, pid: int = 0, ticks: int = 0, text: str = "") -> None:
        self.kind = kind
        self.tag = tag
        self.pid = pid
        self.ticks = ticks
        self.text = text  # the error's message, or the exit's "CODE SIG UTIME STIME MAXRSS" ("" if none)


def parse_reply(line: bytes) -> Reply:
    head, _, rest_bytes = line.partition(b" ")
    rest = rest_bytes.decode(errors="replace")
    if head == b"exit":
        tag_text, _, outcome = rest.partition(" ")
        return Reply("exit", int(tag_text) if tag_text.isdigit() else 0, text=outcome)
    if head == BYE:
        return Reply("bye")
    if not head.isdigit():
        return Reply("unknown", text=line.decode(errors="replace"))
    pid, _, ticks = rest.partition(" ")
    if pid.isdigit() and ticks.isdigit():
        return Reply("started", int(head), int(pid), int(ticks))
    return Reply("error", int(head), text=rest.removeprefix("error "))


# -------------------------------------------------------------- status files
def start_line(pid: int, ticks: int, launcher: bytes) -> bytes:
    """`launcher`: b"PID STARTTIME" of the launcher."""
    return b"start %d %d %s\n" % (pid, ticks, launcher)


def error_line(message: str) -> bytes:
    return b"error " + one_line(message) + b"\n"


def exit_outcome(status: int, utime: float, stime: float, maxrss: int = 0, end: float = 0.0) -> bytes:
    """A wait status, CPU times, largest resident size (KiB) and the time it was reaped as
    "CODE SIG UTIME STIME MAXRSS END"."""
    return b"%d %d %.2f %.2f %d %.3f" % ((status >> 8) & 255, status & 127, utime, stime, maxrss, end)


def timeout_line(when: float) -> bytes:
    return b"timeout %.3f\n" % when


UMASK_VARIABLE = b"SLURM_UMASK="


def job_umask(value: bytes) -> int | None:
    """The file mode mask SLURM_UMASK gives (what sbatch read of its submitter's, in octal, as
    0022), or None for anything else: a mask nobody meant is not applied (strtol would make
    garbage 0, every file open to all)."""
    if not 1 <= len(value) <= 4 or value.strip(b"01234567"):
        return None
    return int(value, 8) & 0o777


def fenced_line(when: float) -> bytes:
    """Its launcher killed it, its worker gone too long (launcher.py, FENCE)."""
    return b"fenced %.3f\n" % when


def exit_line(outcome: bytes) -> bytes:
    return b"exit " + outcome + b"\n"


def one_line(message: str) -> bytes:
    return os.fsencode(message).replace(b"\n", b" ")


def parse_exit(text: str) -> tuple[tuple[int, int], dict[str, float] | None] | None:
    """ "CODE SIG", "CODE SIG UTIME STIME", "... MAXRSS" or "... MAXRSS END": the exit and the
    usage (CPU seconds, maxrss in KiB, and "end", when it was reaped); None if none of these."""
    parts = text.split()
    if len(parts) not in (2, 4, 5, 6) or not (parts[0].isdigit() and parts[1].isdigit()):
        return None
    rusage = None
    if len(parts) >= 4:
        try:
            rusage = {"utime": float(parts[2]), "stime": float(parts[3])}
            if len(parts) >= 5:
                rusage["maxrss"] = float(int(parts[4]))
            if len(parts) == 6:
                rusage["end"] = float(parts[5])
        except ValueError:
            return None
    return (int(parts[0]), int(parts[1])), rusage


class JobStatus:
    """What a job's status file says, or the launcher's exit report."""

    __slots__ = ("pid", "ticks", "launcher", "exit", "error", "rusage", "timed_out", "fenced")

    def __init__(
        self,
        pid: int | None = None,
        ticks: int = 0,
        launcher: tuple[int, int] | None = None,
        exit: tuple[int, int] | None = None,
        error: str | None = None,
        rusage: dict[str, float] | None = None,
    ) -> None:
        self.pid = pid
        self.ticks = ticks  # the process's start time (/proc/PID/stat field 22)
        self.launcher = launcher  # pid and start time of the launcher, its parent
        self.exit = exit
        self.error = error
        self.rusage = rusage  # the job's CPU times (and "end": when it was reaped)
        self.timed_out: float | None = None  # when its launcher ended it at its deadline
        self.fenced: float | None = None  # when its launcher killed it, its worker gone too long


def parse_status(data: bytes) -> JobStatus:
    status = JobStatus()
    for line in data.decode(errors="replace").splitlines():
        kind, _, rest = line.partition(" ")
        if kind == "start":
            parts = rest.split()
            if parts and all(part.isdigit() for part in parts):
                status.pid = int(parts[0])
                if len(parts) >= 2:
                    status.ticks = int(parts[1])
                if len(parts) >= 4:
                    status.launcher = (int(parts[2]), int(parts[3]))
        elif kind == "exit":
            parsed = parse_exit(rest)
            if parsed is not None:
                status.exit, status.rusage = parsed
        elif kind == "error":
            status.error = rest
        elif kind == "timeout":
            try:
                status.timed_out = float(rest)
            except ValueError:
                status.timed_out = 0.0
        elif kind == "fenced":
            try:
                status.fenced = float(rest)
            except ValueError:
                status.fenced = 0.0
    return status


# ---------------------------------------------------------- process identity
def proc_stat(pid: int) -> list[bytes] | None:
    """The fields of /proc/PID/stat from the third (state) on; None when there is no such process."""
    try:
        fd = os.open(b"/proc/%d/stat" % pid, os.O_RDONLY)
    except OSError:
        return None
    try:
        data = os.read(fd, 1024)
    except OSError:
        return None
    finally:
        os.close(fd)
    # The command name (field 2) may contain spaces and parentheses: count from the last ")".
    return data.rpartition(b")")[2].split()


def start_ticks(pid: int) -> int | None:
    """When the process started (field 22 of /proc/PID/stat, in clock ticks since boot)."""
    fields = proc_stat(pid)
    return int(fields[19]) if fields is not None and len(fields) > 19 else None
