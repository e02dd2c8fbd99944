"""The job launcher: the parent of every job a worker starts, and the one that reports their ends.

The worker starts this file once, as `python -I -S launcher.py --serve STATUS_DIR` (isolated:
no environment variables, no site-packages, nothing of the package but protocol.py, which
says what goes over the wire and into status files), and sends it requests; each job is one fork
of it, which execs the job's command, or, where the worker could build it, one spawn of the job
starter (starter.c), which does what the fork's child would. It imports little, and its heap
stays small, since each fork copies it.

Why the launcher, not the worker, is the jobs' parent: a job must outlive its worker (a restart
re-adopts it), and only a process's parent learns its exact wait status. The launcher outlives
its worker too: when its requests end (the worker stopped or died) it launches nothing more,
lets go of the launch lock, and goes on reaping and recording until its last job has ended.
Its own environment is a fixed minimal one: it runs as root.

Fencing (`--fence SECONDS`, given by a worker of a node among many): once its worker is gone,
the launcher looks every second whether a worker holds the node's launch lock again (a restarted
one, which re-adopts the jobs); when none has for SECONDS, it kills every job it still has. The
scheduler declares a node dead when it has not heard from it for the heartbeat timeout, and runs
its requeueable jobs elsewhere: the worker sets SECONDS so that its jobs are gone by then, and
never run beside their next run. `conductor up`, the only node, gives none: its jobs wait for
it to come back.
"""

from __future__ import annotations

import fcntl
import gc
import os
import resource
import sys
import time

# The C module under `signal`: the Python one wraps each call in enum conversions, run in every
# job's process between fork and exec, and every page they touch is copied for it (measured:
# 40 page faults and about 0.1 ms of system time per job fewer), and it imports enum and more,
# which every fork copies too.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import signal
else:
    import _signal as signal

if __package__:
    from conductor.worker import protocol
else:
    # Run as a script, isolated: the package is not importable, the protocol module beside it is.
    sys.path.append(os.path.dirname(os.path.abspath(__file__)))
    import protocol  # type: ignore[import-not-found, no-redef]

# Waiting is sigwaitinfo with both blocked at every other moment: a job ended (SIGCHLD), a
# request came (SIGIO, see O_ASYNC below). Neither can slip in between looking and waiting.
WAKE_SIGNALS = {signal.SIGCHLD, signal.SIGIO}
# Descriptors are closed up to here (one close_range call where the C library has it).
MAX_FD = max(os.sysconf("SC_OPEN_MAX"), 1 << 16)
# With --warm: how often the launcher moves itself into its own control group again (a move that
# changes nothing). Moving a process into a group takes a kernel lock whose writers, after an
# idle spell, wait for an RCU grace period (measured on a 2-core VM: 10-12 ms after 30 ms or
# more without a move; 0.1 ms when moves come every 15 ms or closer). A job's process joining
# its groups is such a move: without this, a job started on an idle node would wait that long.
# The kernel's own remedy is the `favordynmods` mount option; this one costs a wake-up and a
# write every 10 ms (under 1% of a core).
WARM_INTERVAL = 0.01
# Within a long batch of requests, the replies (and the ends of the jobs started so far) go to
# the worker after every so many launches, not only at its end: the worker records those ends,
# and takes the jobs placed in their stead, while the launcher starts the rest. At every launch,
# the worker would wake, and record, for each job alone: measured slower.
REPLY_EVERY = 16
S_IFMT, S_IFREG = 0o170000, 0o100000


class Job:
    __slots__ = ("tag", "status_fd", "written", "deadline", "kill_wait", "term_at", "killed")

    def __init__(self, tag: bytes, status_fd: int, written: int, limit: tuple[float, float] | None) -> None:
        self.tag = tag
        self.status_fd = status_fd
        self.written = written  # bytes the launcher wrote to the status file
        # Enforced by the launcher once the worker is gone (see protocol.py, LIMIT).
        self.deadline, self.kill_wait = limit if limit is not None else (0.0, 0.0)
        self.term_at = 0.0  # when it sent the SIGTERM
        self.killed = False


# While fencing: how often the launcher looks whether a worker is back.
FENCE_LOOK = 1.0


class Launcher:
    def __init__(self, warm: bytes = b"", starter: bytes = b"", fence: float = 0.0, lock_path: bytes = b"") -> None:
        self.null = os.open("/dev/null", os.O_RDWR)
        self.starter = starter  # the job starter's path (see spawn), or b"": fork
        # The cgroup.procs file of the launcher's own group (see WARM_INTERVAL), or -1.
        self.warm_fd = os.open(warm, os.O_WRONLY) if warm else -1
        self.warmed = 0.0
        self.me = b"%d %d" % (os.getpid(), protocol.start_ticks(os.getpid()) or 0)
        self.jobs: dict[int, Job] = {}
        self.replies: list[bytes] = []  # written once per round
        self.unanswered = 0  # launches since the last reply (REPLY_EVERY), across reads
        self.fence = fence  # seconds without a worker after which its jobs are killed; 0: never
        self.lock_path = lock_path  # the node's launch lock, which a worker holds
        self.worker_seen = 0.0  # monotonic time a worker was last known to be there
        self.fenced = False

    def serve(self) -> None:
        buffer = b""
        open_ = True
        while True:
            while open_:
                try:
                    chunk = os.read(0, 65536)
                except BlockingIOError:
                    break
                except OSError:
                    chunk = b""  # unreadable: as good as closed
                if not chunk:
                    # No request can come any more: a worker started next may take the lock and
                    # decide, from the status files, which of its claimed jobs never started.
                    open_ = False
                    os.close(protocol.LOCK_FD)
                    self.replies.append(protocol.BYE + b"\n")
                    self.worker_seen = time.monotonic()
                    break
                frames, buffer = protocol.split_frames(buffer + chunk)
                for data in frames:
                    self.launch(data)
                    self.unanswered += 1
                    if self.unanswered >= REPLY_EVERY:
                        self.answer()
            self.answer()
            if not open_ and not self.jobs:
                return
            # While the worker is there, time limits are its to enforce; once it is gone, the
            # launcher's: a job's limit holds, whatever happened to the worker.
            wait = self.enforce(time.time()) if not open_ else None
            if not open_ and self.fence:
                look = self.fence_check(time.monotonic())
                if look is not None:
                    wait = look if wait is None else min(wait, look)
            if open_ and self.warm_fd >= 0:
                now = time.monotonic()
                if now - self.warmed >= WARM_INTERVAL:
                    self.warm(now)
                wait = max(self.warmed + WARM_INTERVAL - now, 0.0005)
            if wait is None:
                signal.sigwaitinfo(WAKE_SIGNALS)
            else:
                signal.sigtimedwait(WAKE_SIGNALS, wait)

    def warm(self, now: float) -> None:
        """Move the launcher into the group it is in (see WARM_INTERVAL)."""
        self.warmed = now
        try:
            os.pwrite(self.warm_fd, self.me.partition(b" ")[0], 0)
        except OSError:
            os.close(self.warm_fd)  # no more of it: launches still work, only slower
            self.warm_fd = -1

    def enforce(self, now: float) -> float | None:
        """End the jobs past their deadline; seconds until the next has to be acted on."""
        wait = None
        for pid, job in self.jobs.items():
            if not job.deadline or job.killed:
                continue
            if not job.term_at:
                if now >= job.deadline:
                    job.term_at = now
                    try:
                        os.write(job.status_fd, protocol.timeout_line(now))
                    except OSError:
                        pass
                    signal_group(pid, signal.SIGCONT)
                    signal_group(pid, signal.SIGTERM)
                    due = job.kill_wait
                else:
                    due = job.deadline - now
            elif now >= job.term_at + job.kill_wait:
                job.killed = True
                signal_group(pid, signal.SIGKILL)
                continue
            else:
                due = job.term_at + job.kill_wait - now
            wait = due if wait is None else min(wait, due)
        return None if wait is None else max(wait, 0.01)

    def fence_check(self, now: float) -> float | None:
        """Once the worker is gone: kill every job when no worker has held the launch lock for
        `fence` seconds (module docstring); seconds until the next look."""
        if self.fenced or not self.jobs:
            return None
        if self.worker_back():
            self.worker_seen = now
        elif now - self.worker_seen >= self.fence:
            self.fenced = True
            os.write(2, b"launcher: no worker for %.0f s: killing its %d job(s), as its node is failed\n"
                     % (now - self.worker_seen, len(self.jobs)))
            when = time.time()
            for pid, job in self.jobs.items():
                try:
                    os.write(job.status_fd, protocol.fenced_line(when))
                except OSError:
                    pass
                job.killed = True
                signal_group(pid, signal.SIGCONT)
                signal_group(pid, signal.SIGKILL)
            return None
        return min(FENCE_LOOK, max(self.worker_seen + self.fence - now, 0.01))

    def worker_back(self) -> bool:
        """Whether a worker holds the node's launch lock (a look: the lock is let go at once)."""
        try:
            fd = os.open(self.lock_path, os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        except OSError:
            return False
        finally:
            os.close(fd)  # closing lets go of the look's lock
        return False

    def answer(self) -> None:
        """Reap the jobs that ended, and tell the worker what happened since the last answer."""
        self.unanswered = 0
        if self.jobs:
            self.reap()
        if self.replies:
            self.reply()

    def reply(self) -> None:
        # The worker's pipe is the launcher's alone (jobs never hold it): no write interleaves.
        data = memoryview(b"".join(self.replies))
        self.replies = []
        while data:
            try:
                written = os.write(1, data)
            except OSError:
                return  # the worker is gone: the status files say it all
            data = data[written:]

    def reap(self) -> None:
        # A job's process starts as a copy of the launcher (fork) or in its memory (spawn), and
        # the kernel counts that memory into the maximum RSS wait4 gives: a figure no larger
        # than the launcher's own says nothing of the job (its control group's peak does).
        floor = -1  # read once a job has ended
        while self.jobs:
            try:
                pid, status, usage = os.wait4(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid <= 0:
                return
            job = self.jobs.pop(pid, None)
            if job is None:
                continue
            # Slurm ends every process of a job when its batch script ends. Right away, while the
            # group's id cannot yet belong to anyone else.
            try:
                os.killpg(pid, signal.SIGKILL)
            except OSError:
                pass
            if floor < 0:
                floor = peak_rss()
            maxrss = usage.ru_maxrss if usage.ru_maxrss > floor else 0
            outcome = protocol.exit_outcome(status, usage.ru_utime, usage.ru_stime, maxrss, time.time())
            # More in the file than the launcher wrote: the job's setup failure, for the worker.
            try:
                clean = os.lseek(job.status_fd, 0, os.SEEK_CUR) == job.written
            except OSError:
                clean = False
            try:
                os.write(job.status_fd, protocol.exit_line(outcome))
            except OSError:
                pass
            os.close(job.status_fd)
            self.replies.append(protocol.exit_reply(job.tag, outcome if clean else None))

    def launch(self, data: bytes) -> None:
        if data.split(b"\0", 2)[1:2] == [b"limit"]:
            self.set_limit(data)
            return
        tag, spec = protocol.decode_request(data)
        if spec is None:
            self.replies.append(protocol.error_reply(tag if tag.isdigit() else b"", "bad launch request"))
            return
        status_fd, spare = self.open_status(tag, spec)
        if status_fd < 0:
            return
        # Open only until this job's fork has them (and not inherited: no other job gets them).
        go_read = go_write = -1
        try:
            go_read, go_write = os.pipe()
            pid = self.spawn(spec, status_fd, go_read) if self.starter else os.fork()
        except OSError as exc:
            what = "fork" if not self.starter else "spawn"
            self.replies.append(protocol.error_reply(tag, f"{what}: {exc.strerror}"))
            for fd in (status_fd, go_read, go_write):
                if fd >= 0:
                    os.close(fd)
            if not spare:
                try:
                    os.unlink(spec.status_path)
                except OSError:
                    pass
            return
        if pid == 0:
            os.close(go_write)
            self.child(spec, status_fd, go_read)  # never returns
        os.close(go_read)
        ticks = protocol.start_ticks(pid) or 0
        # Written at the offset the launcher and the job's process share: lines follow one another.
        start = protocol.start_line(pid, ticks, self.me)
        os.write(status_fd, start)
        if spare:
            # Cut rather than emptied when opened (O_TRUNC): a file cut to nothing gives its block
            # back and the next write takes one again, which costs more than the rest together.
            try:
                os.truncate(spare, len(start))
                os.rename(spare, spec.status_path)
            except OSError as exc:
                self.abandon(pid, go_write, status_fd)
                self.replies.append(
                    protocol.error_reply(tag, f"cannot make {os.fsdecode(spec.status_path)}: {exc.strerror}")
                )
                return
        os.write(go_write, protocol.GO)
        os.close(go_write)
        self.jobs[pid] = Job(tag, status_fd, len(start), protocol.parse_limit(spec.limit) if spec.limit else None)
        self.replies.append(protocol.started_reply(tag, pid, ticks))

    def spawn(self, spec: protocol.LaunchSpec, status_fd: int, go_read: int) -> int:
        """The job's process as the starter (starter.c), which does what child() does.

        posix_spawn, unlike fork, copies none of the launcher's memory: the new process borrows
        it until the starter runs (measured: a third of a trivial job's CPU time, and most of
        the launcher's own per job)."""
        fields = [spec.status_path, spec.cgroup, spec.nproc, spec.uid, spec.gid, spec.groups, spec.cwd, spec.stdin,
                  spec.stdout, spec.stderr, spec.open_mode, b"%d" % len(spec.argv), *spec.argv]
        fields += [name + b"=" + value for name, value in environment(spec.env).items()]
        # The request in a file of its own, not in arguments: an argument may not pass 128 KiB,
        # which a list of groups can, and it would fail the spawn, not the job's setup.
        request = os.memfd_create("job-request")
        try:
            data = memoryview(b"\0".join(fields))
            while data:
                data = data[os.write(request, data) :]
            # Inherited by this spawn alone: the launcher makes one process at a time.
            for fd in (status_fd, go_read, request):
                os.set_inheritable(fd, True)
            try:
                return os.posix_spawn(
                    self.starter,
                    [b"conductor-job-starter", b"%d" % status_fd, b"%d" % go_read, b"%d" % request],
                    {},
                    file_actions=[(os.POSIX_SPAWN_DUP2, self.null, 0), (os.POSIX_SPAWN_DUP2, self.null, 1)],
                    setsid=True,
                    setsigmask=(),
                    setsigdef=(signal.SIGPIPE,),
                )
            finally:
                os.set_inheritable(status_fd, False)
        finally:
            os.close(request)

    def set_limit(self, data: bytes) -> None:
        """A running job's new limit (a "limit" frame)."""
        tag, _, text = data.split(b"\0", 2)
        for job in self.jobs.values():
            if job.tag == tag:
                job.deadline, job.kill_wait = protocol.parse_limit(text) or (0.0, 0.0)
                return

    def open_status(self, tag: bytes, spec: protocol.LaunchSpec) -> tuple[int, bytes]:
        """The job's status file, and the spare it is (b"" when new); -1 after an error reply.

        Never the file of an earlier run, which a process of that run might still hold: a new
        one, or a spare (a reported job's, whose old lines must never pass for this job's: it
        takes the name only once its first line is this job's, and the rest is cut off).
        """
        spare = spec.spare
        if spare:
            try:
                return os.open(spare, os.O_WRONLY | os.O_NOFOLLOW), spare
            except OSError:
                pass
        try:
            os.unlink(spec.status_path)
        except OSError:
            pass
        try:
            return os.open(spec.status_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600), b""
        except OSError as exc:
            self.replies.append(
                protocol.error_reply(tag, f"cannot create {os.fsdecode(spec.status_path)}: {exc.strerror}")
            )
            return -1, b""

    def abandon(self, pid: int, go_write: int, status_fd: int) -> None:
        """Kill a job's process before its go: it never ran."""
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        os.close(status_fd)
        os.close(go_write)

    def child(self, spec: protocol.LaunchSpec, status_fd: int, go: int) -> None:
        """The job's process, from the fork to the exec: never returns."""
        try:
            self.prepare(spec, status_fd, go)
        except Failure as failure:
            message = str(failure)
        except BaseException as exc:  # noqa: BLE001 - whatever it is, the job must not run
            message = f"launch failed: {exc!r}"
        else:
            # What the launcher changed must not reach the job: exec keeps ignored signals and
            # the mask; and it gets its stdio and nothing else the launcher holds.
            try:
                signal.signal(signal.SIGPIPE, signal.SIG_DFL)
                signal.pthread_sigmask(signal.SIG_SETMASK, ())
                os.closerange(3, MAX_FD)
                env = environment(spec.env)
                env[b"SLURM_TASK_PID"] = b"%d" % os.getpid()  # as starter.c: the task's own pid
                env.pop(b"SLURM_UMASK", None)  # applied (prepare), and gone, as slurmstepd does
                os.execve(spec.argv[0], spec.argv, env)
            except BaseException as exc:  # noqa: BLE001
                why = exc.strerror if isinstance(exc, OSError) else repr(exc)
                try:
                    os.write(2, b"conductor: cannot execute %s: %s\n" % (spec.argv[0], os.fsencode(str(why))))
                finally:
                    os._exit(127)
        try:
            os.write(status_fd, protocol.error_line(message))
        finally:
            os._exit(1)

    def prepare(self, spec: protocol.LaunchSpec, status_fd: int, go: int) -> None:
        # Its own session and process group: the worker's signals to the job reach it alone.
        os.setsid()
        # Let go of the worker's pipes and lock at once: the worker knows the launcher died by
        # the end of its replies, and a restarted worker waits for the lock.
        os.dup2(self.null, 0)
        os.dup2(self.null, 1)
        os.close(protocol.LOCK_FD)

        # The go: the "start" line is written, and nothing happened before it. A launcher that
        # died before giving it may have written the line all the same, which makes the job
        # started for the worker (it will never send it again): run then, and only then.
        if os.read(go, 1) != protocol.GO and not started_all_the_same(status_fd, spec.status_path):
            os._exit(1)
        os.close(go)

        if spec.cgroup:
            # Into its control groups before anything of the job runs. By the job's process, not
            # the launcher: the kernel may make a move wait for an RCU grace period (about 1 ms),
            # which would hold up every launch behind it; jobs starting together wait together.
            failed = join_cgroups(os.getpid(), spec.cgroup)
            if failed:
                raise Failure(failed)

        if spec.nproc:
            # The process cap without a pids controller (it counts the user's processes; set
            # while still root, who may lower it).
            resource.setrlimit(resource.RLIMIT_NPROC, (int(spec.nproc), int(spec.nproc)))

        if spec.uid:
            drop_privileges(spec.uid, spec.gid, spec.groups)

        # The submitter's file mode mask, as slurmstepd sets it (and takes from the batch
        # script's environment): before the output files are made.
        for pair in spec.env:
            if pair.startswith(protocol.UMASK_VARIABLE):
                mask = protocol.job_umask(pair[len(protocol.UMASK_VARIABLE) :])
                if mask is not None:
                    os.umask(mask)

        moved = b""
        try:
            os.chdir(spec.cwd)
        except OSError as exc:
            # As slurmstepd: the job runs in /tmp, and its error file says so; unless a file of
            # its own is named from the working directory, which is then not to be found.
            if not all(path.startswith(b"/") for path in (spec.stdin, spec.stdout, spec.stderr)):
                raise Failure(f"working directory '{os.fsdecode(spec.cwd)}' is not usable: {exc.strerror}") from None
            os.chdir(b"/tmp")
            moved = b"slurmstepd: error: couldn't chdir to `%s': %s: going to /tmp instead\n" % (
                spec.cwd, os.fsencode(exc.strerror or "error"))

        # Opened as the job's user. NOFOLLOW: a symbolic link planted at the output path must not
        # redirect the job's writes.
        flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | (
            os.O_APPEND if spec.open_mode == protocol.APPEND else os.O_TRUNC
        )
        try:
            in_fd = os.open(spec.stdin, os.O_RDONLY)
        except OSError as exc:
            raise Failure(f"cannot open input file '{os.fsdecode(spec.stdin)}': {exc.strerror}") from None
        out_fd = open_output(spec.stdout, "output", flags)
        err_fd = out_fd if spec.stderr == spec.stdout else open_output(spec.stderr, "error", flags)
        os.dup2(in_fd, 0)
        os.dup2(out_fd, 1)
        os.dup2(err_fd, 2)
        if moved:
            os.write(2, moved)


class Failure(Exception):
    """The job's setup failed: its status file's "error" line says this."""


def peak_rss() -> int:
    """The launcher's own largest resident size in KiB (VmHWM: not wait4's figure for itself,
    which counts the memory of the worker that spawned it)."""
    try:
        with open("/proc/self/status", "rb") as status:
            for line in status:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except OSError:
        pass


def join_cgroups(pid: int, files: bytes) -> str:
    """Write `pid` into each cgroup.procs file; the error, or "" once in all of them."""
    text = b"%d" % pid
    for path in files.split(b":"):
        try:
            # O_CREAT changes nothing on a cgroup file system (the kernel made the file with the
            # directory); a directory tree laid out as cgroup v2 has no kernel to make it.
            fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
            try:
                os.write(fd, text)
            finally:
                os.close(fd)
        except OSError as exc:
            return f"cannot put the job in its control group {os.fsdecode(path)}: {exc.strerror}"
    return ""


def drop_privileges(uid_text: bytes, gid_text: bytes, groups_text: bytes) -> None:
    """Become the job's user for good, and check it: real, effective and saved ids, and groups."""
    try:
        uid, gid = int(uid_text), int(gid_text)
        groups = [gid] + [int(group) for group in groups_text.split(b",") if group and int(group) != gid]
    except ValueError:
        raise Failure("bad user or group ids in the launch request") from None
    try:
        os.setgroups(groups)
    except (OSError, ValueError) as exc:  # ValueError: more than the system allows
        why = exc.strerror if isinstance(exc, OSError) else str(exc)
        raise Failure(f"could not set the {len(groups)} groups of gid {gid}: {why}") from None
    try:
        os.setresgid(gid, gid, gid)
    except OSError as exc:
        raise Failure(f"could not set gid {gid}: {exc.strerror}") from None
    try:
        os.setresuid(uid, uid, uid)
    except OSError as exc:
        raise Failure(f"could not drop privileges to uid {uid}: {exc.strerror}") from None
    # Trust nothing: what the kernel says now is what the job runs with.
    if os.getresuid() != (uid, uid, uid) or os.getresgid() != (gid, gid, gid) or set(os.getgroups()) != set(groups):
        raise Failure(
            f"privileges not dropped to uid {uid} gid {gid}: ids are {os.getresuid()} {os.getresgid()} "
            f"groups {sorted(os.getgroups())}"
        )


def open_output(path: bytes, what: str, flags: int) -> int:
    try:
        fd = os.open(path, flags, 0o644)
    except OSError as exc:
        raise Failure(f"cannot open {what} file '{os.fsdecode(path)}': {exc.strerror}") from None
    # /dev/null is the one non-regular file a job may write to, as users often ask for it.
    info = os.fstat(fd)
    if info.st_mode & S_IFMT != S_IFREG and path != b"/dev/null":
        raise Failure(f"{what} file '{os.fsdecode(path)}' is not a regular file")
    if info.st_mode & S_IFMT == S_IFREG and planted(path, info.st_uid):
        raise Failure(f"{what} file '{os.fsdecode(path)}' belongs to another user, in a directory everyone may write to")
    return fd


def planted(path: bytes, owner: int) -> bool:
    """Whether an output file of another user sits in a sticky directory others may write to,
    such as /tmp: one made there ahead, under a name anyone can work out (slurm-<id>.out), would
    receive the job's output. The kernel's fs.protected_regular rule, whatever the sysctl."""
    if owner == os.getuid():
        return False
    try:
        parent = os.stat(os.path.dirname(path) or b".")
    except OSError:
        return False
    return bool(parent.st_mode & 0o1000 and parent.st_mode & 0o022 and parent.st_uid != owner)


def environment(pairs: list[bytes]) -> dict[bytes, bytes]:
    env = {}
    for pair in pairs:
        name, _, value = pair.partition(b"=")
        if name:
            env[name] = value
    return env


def started_all_the_same(status_fd: int, status_path: bytes) -> bool:
    """Whether the status file under the job's name is this process's and starts with its line."""
    try:
        mine = os.fstat(status_fd)
        named = os.lstat(status_path)
        if (mine.st_dev, mine.st_ino) != (named.st_dev, named.st_ino):
            return False
        fd = os.open(b"/proc/self/fd/%d" % status_fd, os.O_RDONLY)
        try:
            head = os.read(fd, 64)
        finally:
            os.close(fd)
    except OSError:
        return False
    return head.startswith(b"start %d " % os.getpid())


def open_starter(path: bytes) -> bytes:
    """The job starter, opened and checked once (see starter.py): the path the launcher spawns,
    which names that open file whatever later becomes of `path`; b"" (fork) if it may not run."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)  # close-on-exec: no job holds it
        st = os.fstat(fd)
    except OSError as exc:
        os.write(2, b"launcher: no job starter %s: %s; forking instead\n" % (path, os.fsencode(str(exc.strerror))))
        return b""
    if (
        st.st_mode & S_IFMT != S_IFREG
        or st.st_uid not in (0, os.geteuid())
        or st.st_mode & 0o022
        or not st.st_mode & 0o100
    ):
        os.close(fd)
        os.write(2, b"launcher: the job starter %s may not run as this user's; forking instead\n" % path)
        return b""
    return b"/proc/self/fd/%d" % fd


def main(argv: list[str]) -> int:
    options = dict(zip(argv[3::2], argv[4::2], strict=False))
    known = {"--warm", "--starter", "--fence"}
    try:
        fence = float(options.get("--fence", "0"))
    except ValueError:
        fence = -1.0
    if len(argv) < 3 or argv[1] != "--serve" or len(argv) % 2 == 0 or not set(options) <= known or not fence >= 0:
        os.write(2, b"launcher: usage: launcher.py --serve STATUS_DIR [--warm CGROUP_PROCS] [--starter PATH] "
                 b"[--fence SECONDS]\n")
        return 2
    # Whatever the worker's process held without close-on-exec (and what its own starter left
    # open) came along: none of it is the launcher's, nor may reach a job.
    os.closerange(protocol.LOCK_FD + 1, MAX_FD)
    signal.pthread_sigmask(signal.SIG_BLOCK, WAKE_SIGNALS)
    # A write to a gone worker must fail (EPIPE), not kill; Python ignores SIGPIPE already. It
    # also ignores SIGXFSZ and turns SIGINT into an exception: as any process, here, and in jobs.
    signal.signal(signal.SIGXFSZ, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    fcntl.fcntl(0, fcntl.F_SETOWN, os.getpid())
    fcntl.fcntl(0, fcntl.F_SETFL, fcntl.fcntl(0, fcntl.F_GETFL) | os.O_NONBLOCK | os.O_ASYNC)
    # The lock is the launcher's alone: a job started by spawn must not hold it (see child()).
    try:
        os.set_inheritable(protocol.LOCK_FD, False)
    except OSError:
        pass  # started without one (as tests may): nothing to keep from the jobs
    starter = open_starter(os.fsencode(options["--starter"])) if "--starter" in options else b""
    lock_path = os.path.join(os.fsencode(argv[2]), protocol.LOCK_FILE)
    launcher = Launcher(os.fsencode(options.get("--warm", "")), starter, fence, lock_path)
    # Every fork copies the heap, and CPython's reference counts write to what they touch: no
    # collector runs to walk (and so copy) all of it, and what exists now is left alone for good.
    gc.disable()
    gc.freeze()
    launcher.serve()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
