"""The worker's side of its launcher (launcher.py, see protocol.py): starting it, sending it
launch requests, and reading its replies and its reports of jobs' ends."""

from __future__ import annotations

import collections
import contextlib
import fcntl
import itertools
import logging
import os
import select
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from conductor.worker import protocol
from conductor.worker.identity import same_launcher, start_ticks
from conductor.worker.spool import read_status

log = logging.getLogger("conductor.worker")

LAUNCHER = str(Path(__file__).with_name("launcher.py"))
# All the launcher's own environment: it runs as root, and so do its forks until they drop
# privileges.
LAUNCHER_ENVIRONMENT = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
# Whatever the worker's process ignores (Python ignores SIGPIPE and SIGXFSZ) must not stay
# ignored in the launcher and, through it, in the jobs.
_DEFAULT_SIGNALS = frozenset(signal.valid_signals()) - {signal.SIGKILL, signal.SIGSTOP}


@dataclass(frozen=True, slots=True)
class RunAs:
    """The launch request's user fields: uid "" means 'stay the worker's user'."""

    uid: str
    gid: str
    groups: str
    home: str | None
    user: str



@dataclass(frozen=True, slots=True)
class LaunchRequest:
    job_id: int
    status_path: str
    body: bytes  # the request without its tag (launch_frame)
    cpus: frozenset[int] | None  # what the job is bound to, if it is


@dataclass(frozen=True, slots=True)
class Started:
    """A job's process, as its launcher reported it."""

    pid: int
    ticks: int
    # The launcher reports its end as `exit TAG ...`; 0: it will not (it died), watch the pid.
    tag: int


def launch_frame(
    status_path: str | Path,
    run_as: RunAs,
    cwd: str,
    stdio: tuple[str, str, str],
    open_mode: str,
    command: list[str],
    env: dict[str, str],
    spare: str = "",
    cgroup_procs: list[str] | None = None,
    nproc: int | None = None,
    limit: tuple[float, float] | None = None,
) -> bytes:
    """One request to the launcher without its tag (see protocol.py): `cgroup_procs`, the files
    the job's pid goes into before it runs; `nproc`, its RLIMIT_NPROC; `limit`, its deadline and
    kill wait, for the launcher to enforce once the worker is gone."""
    return protocol.encode_request_body(
        os.fspath(status_path), spare, (run_as.uid, run_as.gid, run_as.groups), cwd, stdio, open_mode, command, env,
        (cgroup_procs or [], nproc), limit,
    )


class Launcher:
    """The worker's launcher (`launcher.py --serve`): every job is its child (by the job
    starter, or a fork of it).

    One Python start per worker, one spawn per job. Launches are asynchronous: submit() sends
    the requests and returns, and each job's outcome (its process, or why it has none) comes
    with the launcher's replies, read by poll() when they are readable, into outcomes(). The
    owner's loop goes on meanwhile (the worker records the ends of jobs and takes new
    placements while the launcher starts the last ones); launch() is submit() and drain(). A
    request unanswered for `timeout` gives the launcher up (expire(), at deadline()).

    The launcher reaps its jobs and reports each end on its replies (`exit TAG ...`), which the
    owner takes with events(): a job it started needs no pidfd, no poll, and no status file
    read. When a launcher dies (its replies end),
    the jobs it had yet to report are `lost`: the owner then watches them by pidfd, and they end
    without an exit status unless the launcher had written one.

    Nothing runs unsupervised, still: a job runs only once its status file has the "start" line
    naming it and its launcher (the launcher's go, see protocol.py), so a request the launcher
    died without answering is settled by that file. No such line: it never ran, and goes to a
    new launcher. A line naming the dead launcher: it runs or ran, and is watched by pid. The
    go costs a pipe per job, which did not show in the measurements.
    """

    def __init__(
        self,
        status_dir: Path,
        lock_fd: int,
        log_path: Path,
        timeout: float,
        watch: Callable[[int, bool], None] | None = None,
        python: str = sys.executable,
        warm: str | None = None,
        starter: str | None = None,
        fence: float | None = None,
    ) -> None:
        self._python = python
        # Seconds without a worker after which the launcher kills its jobs (launcher.py); None: never.
        self._fence = fence
        # The launcher's own control group's cgroup.procs, which it keeps moving into (see
        # WARM_INTERVAL in launcher.py); None: it stays where it is.
        self._warm = warm
        # The job starter (starter.py) the launcher spawns jobs with; None: it forks them.
        self._starter = starter
        self._status_dir = status_dir
        self._lock_fd = lock_fd
        self._log_path = log_path
        self._timeout = timeout
        # Told (fd, True) when a launcher's replies open and (fd, False) before they close: the
        # owner's loop reads them between launches (poll()).
        self._watch = watch
        self.pid = 0
        self._identity: tuple[int, int] | None = None  # pid and start time, as status files name it
        self._requests = -1
        self._replies = -1
        self._mask: set[int] | None = None
        # Jobs without CPUs of their own may use what the worker may, as they did as its children.
        self._free_mask = os.sched_getaffinity(0)
        self._tags = itertools.count(1)
        self._live: set[int] = set()  # tags of this launcher's jobs whose end it has yet to report
        self._partial = b""
        self._bye = False
        self.exits: list[tuple[int, str]] = []  # (tag, "CODE SIG UTIME STIME", or "": see the file)
        self.lost: list[int] = []  # tags whose launcher died before reporting their end
        # Launches: groups of one CPU set yet to send; requests sent, by tag, with when; what
        # became of them (outcomes()); the jobs sent again once already, after a death.
        self._queue: collections.deque[tuple[frozenset[int] | None, list[LaunchRequest]]] = collections.deque()
        self._pending: dict[int, tuple[LaunchRequest, float]] = {}
        self._outcomes: dict[int, Started | str] = {}
        self._retried: set[int] = set()

    def start(self) -> None:
        request_read, request_write = os.pipe()
        reply_read, reply_write = os.pipe()
        try:
            log_fd = os.open(self._log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o600)
            try:
                # A fixed environment: the launcher is root, and whatever the worker's environment
                # holds (LD_PRELOAD, PYTHONPATH) must not act in it. Isolated (-I: no PYTHON*
                # variables, no script directory on the path) and without site-packages (-S): it
                # imports only the standard library and the protocol module beside it. Whatever
                # else the worker holds open it closes first thing.
                self.pid = os.posix_spawn(
                    self._python,
                    [self._python, "-I", "-S", LAUNCHER, "--serve", str(self._status_dir),
                     *(["--warm", self._warm] if self._warm else []),
                     *(["--starter", self._starter] if self._starter else []),
                     *(["--fence", f"{self._fence:.3f}"] if self._fence else [])],
                    LAUNCHER_ENVIRONMENT,
                    file_actions=[
                        (os.POSIX_SPAWN_DUP2, request_read, 0),
                        (os.POSIX_SPAWN_DUP2, reply_write, 1),
                        (os.POSIX_SPAWN_DUP2, log_fd, 2),
                        (os.POSIX_SPAWN_DUP2, self._lock_fd, protocol.LOCK_FD),
                    ],
                    # Out of the worker's process group: a ^C to the worker's terminal is not for it.
                    setsid=True,
                    setsigmask=(),
                    setsigdef=_DEFAULT_SIGNALS,
                )
            finally:
                os.close(log_fd)
        except BaseException:
            os.close(request_write)
            os.close(reply_read)
            raise
        finally:
            os.close(request_read)
            os.close(reply_write)
        self._requests, self._replies = request_write, reply_read
        os.set_blocking(self._requests, False)
        os.set_blocking(self._replies, False)
        # Room for a whole placement's requests (each about a kilobyte): submit() then need not
        # wait for the launcher to read them.
        with contextlib.suppress(OSError):
            fcntl.fcntl(self._requests, fcntl.F_SETPIPE_SZ, 1 << 20)
        self._identity = (self.pid, start_ticks(self.pid) or 0)  # see _died
        self._mask = None
        self._partial = b""
        self._bye = False
        if self._watch is not None:
            self._watch(self._replies, True)
        log.info("job launcher started (pid %d)", self.pid)

    def close(self) -> None:
        """No more requests: the launcher lets go of the launch lock (its goodbye says so) and
        lives on, reaping and recording, until its last job has ended. Requests still queued
        are never sent (their outcome says so); the owner drains the sent ones first."""
        for _, group in self._queue:
            for request in group:
                self._outcomes[request.job_id] = "the worker stopped before the job was launched"
        self._queue.clear()
        if not self.pid:
            return
        os.close(self._requests)
        self._requests = -1
        deadline = time.monotonic() + 2.0
        poller = select.poll()
        poller.register(self._replies, select.POLLIN)
        while not self._bye:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                log.warning("the job launcher (pid %d) did not acknowledge the end of its requests", self.pid)
                break
            if not poller.poll(remaining * 1000):
                continue
            try:
                chunk = os.read(self._replies, 65536)
            except BlockingIOError:
                continue
            if not chunk:
                break
            self._take(chunk)
        # Its jobs are for the next worker to adopt. It ends with the last of them, maybe hours
        # from now, and this process may live on (a worker stopped inside a bigger process):
        # a thread waits for it then, so it never lingers as a zombie.
        self._live.clear()
        threading.Thread(target=_reap_when_done, args=(self.pid,), name=f"reap-launcher-{self.pid}", daemon=True).start()
        self._forget()

    def set_limit(self, tag: int, limit: tuple[float, float] | None) -> None:
        """Tell the launcher a job's new deadline (it enforces it once the worker is gone)."""
        if self._requests < 0 or tag not in self._live:
            return
        try:
            os.write(self._requests, protocol.limit_frame(tag, limit))
        except OSError:
            # A full pipe (the launcher busy) or a gone launcher: the worker enforces the limit
            # while it lives; one lost update is what the launcher would then not know.
            log.debug("could not send job %s's new limit to the launcher", tag)

    def events(self) -> tuple[list[tuple[int, str]], list[int]]:
        """The ends reported, and the tags lost, since the last call."""
        exits, lost = self.exits, self.lost
        self.exits, self.lost = [], []
        return exits, lost

    def outcomes(self) -> dict[int, Started | str]:
        """The launches settled since the last call: for each job its process, or why none was
        started. Take them before events(): a job's end may come in the same read."""
        outcomes, self._outcomes = self._outcomes, {}
        return outcomes

    def poll(self) -> None:
        """Read what the launcher said, without waiting; its end (EOF) makes its jobs lost."""
        while self._replies >= 0:
            try:
                chunk = os.read(self._replies, 65536)
            except BlockingIOError:
                break
            if not chunk:
                log.warning("the job launcher (pid %d) died", self.pid)
                self._died(None)
                break
            self._take(chunk)
        self._pump()

    def submit(self, requests: list[LaunchRequest]) -> None:
        """Send the jobs to the launcher without waiting for it: their outcomes come later, by
        poll() (or drain()) into outcomes(). Waits only while the launcher's pipe is full."""
        groups: dict[frozenset[int] | None, list[LaunchRequest]] = {}
        for request in requests:
            groups.setdefault(request.cpus, []).append(request)
        self._queue.extend(groups.items())
        self._pump()

    def launch(self, requests: list[LaunchRequest]) -> dict[int, Started | str]:
        """Start the jobs and wait: for each job its process, or why none was started."""
        self.submit(requests)
        self.drain()
        return {request.job_id: self._outcomes.pop(request.job_id, "no reply from the job launcher") for request in requests}

    def pending(self) -> bool:
        return bool(self._pending or self._queue)

    def deadline(self) -> float | None:
        """When the oldest unanswered request is given up (time.monotonic()), if there is one."""
        for _, sent in self._pending.values():
            return sent + self._timeout
        return None

    def expire(self, now: float | None = None) -> None:
        """Give the launcher up if it left a request unanswered for too long (see deadline())."""
        due = self.deadline()
        if due is not None and (time.monotonic() if now is None else now) >= due:
            log.error("the job launcher (pid %d) left a request unanswered for %g s; killing it", self.pid, self._timeout)
            self._died(f"no reply within {self._timeout:g} s")
            self._pump()

    def drain(self) -> None:
        """Wait until every request sent has its outcome (or was given up)."""
        poller = select.poll()
        registered = -1
        while self._pending or self._queue:
            if self._replies != registered:
                if registered >= 0:
                    poller.unregister(registered)
                registered = self._replies
                if registered < 0:
                    self._pump()  # a launcher died: what it never started goes to the next
                    continue
                poller.register(registered, select.POLLIN)
            due = self.deadline()
            wait = max(due - time.monotonic(), 0.0) if due is not None else self._timeout
            if poller.poll(wait * 1000):
                self.poll()
            else:
                self.expire()

    def _pump(self) -> None:
        """Send queued requests. A group bound to other CPUs waits until the launcher has
        started every job of the last one: the launcher's affinity is what its jobs inherit."""
        while self._queue:
            cpus, group = self._queue[0]
            mask = set(cpus) if cpus is not None else self._free_mask
            if self._pending and mask != self._mask:
                return
            self._queue.popleft()
            self._send(mask, group)

    def _send(self, mask: set[int], group: list[LaunchRequest]) -> None:
        try:
            if not self.pid:
                self.start()
            if mask != self._mask:
                # A fork or spawn inherits it, and so the job is bound before it runs.
                try:
                    os.sched_setaffinity(self.pid, mask)
                except ProcessLookupError:
                    self._died(None)
                    self._never_started(group, None)
                    return
                except OSError as exc:
                    self._mask = None
                    for request in group:
                        self._retried.discard(request.job_id)
                        self._outcomes[request.job_id] = f"cannot bind to CPUs {sorted(mask)}: {exc}"
                    return
                self._mask = mask
            now = time.monotonic()
            frames = []
            for request in group:
                tag = next(self._tags)
                self._pending[tag] = (request, now)
                frames.append(protocol.frame(tag, request.body))
            self._write(b"".join(frames))
        except Exception as exc:
            log.exception("job launcher failed")
            sent = {id(request) for request, _ in self._pending.values()}
            for request in group:
                if id(request) not in sent:
                    self._retried.discard(request.job_id)
                    self._outcomes[request.job_id] = f"job launcher failed: {exc}"
            if self._pending:
                self._died(str(exc))

    def _write(self, data: bytes) -> None:
        """All of `data` to the launcher, reading its replies meanwhile (it may be waiting for
        room to write them); a launcher gone meanwhile is _died()."""
        view = memoryview(data)
        poller: select.poll | None = None
        while view:
            try:
                view = view[os.write(self._requests, view) :]
                continue
            except BlockingIOError:
                pass
            except BrokenPipeError:
                # Gone: the replies up to the end of its pipe tell which jobs started.
                view = view[:0]
                break
            if poller is None:
                poller = select.poll()  # not select(): a worker with many jobs holds fds beyond 1024
                poller.register(self._replies, select.POLLIN)
                poller.register(self._requests, select.POLLOUT)
            due = self.deadline()
            remaining = (due if due is not None else time.monotonic() + self._timeout) - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no reply within {self._timeout:g} s")
            for fd, _ in poller.poll(remaining * 1000):
                if fd == self._replies:
                    try:
                        chunk = os.read(fd, 65536)
                    except BlockingIOError:
                        continue
                    if not chunk:
                        self._died(None)
                        return
                    self._take(chunk)

    def _died(self, why: str | None) -> None:
        """The launcher is gone (or given up, `why`): its unreported jobs are lost, and of the
        requests it left unanswered, those it started are found by their status files (their
        "start" line names it: they are watched by pid), and those it provably never started
        go, once, to a new launcher (given up: they fail)."""
        dead = self._identity
        self._reap()
        unanswered, self._pending = self._pending, {}
        never: list[LaunchRequest] = []
        for request, _ in unanswered.values():
            try:
                status = read_status(request.status_path)
            except OSError as exc:
                # Whether it started cannot be told: it is not sent again (it might run twice).
                self._retried.discard(request.job_id)
                self._outcomes[request.job_id] = f"the job launcher died; its status file is unreadable: {exc}"
                continue
            if status.pid and dead is not None and status.launcher is not None and same_launcher(status.launcher, dead):
                self._retried.discard(request.job_id)
                self._outcomes[request.job_id] = Started(status.pid, status.ticks, 0)
            else:
                never.append(request)
        self._never_started(never, why)

    def _never_started(self, requests: list[LaunchRequest], why: str | None) -> None:
        """Requests a launcher provably never started: sent again, once, to a new launcher
        (queued first); the second time, or when it was given up (`why`), they fail."""
        retry: list[LaunchRequest] = []
        for request in requests:
            if why is None and request.job_id not in self._retried:
                retry.append(request)
                continue
            self._retried.discard(request.job_id)
            self._outcomes[request.job_id] = (
                f"job launcher failed: {why}"
                if why is not None
                else f"the job launcher died before starting the job (see {self._log_path})"
            )
        if retry:
            log.warning("the job launcher died; relaunching jobs %s", [r.job_id for r in retry])
            self._retried.update(r.job_id for r in retry)
            groups: dict[frozenset[int] | None, list[LaunchRequest]] = {}
            for request in retry:
                groups.setdefault(request.cpus, []).append(request)
            self._queue.extendleft(reversed(groups.items()))

    def _take(self, chunk: bytes) -> None:
        """Sort the launcher's lines: replies to requests into `results`, ends into `exits`."""
        *lines, self._partial = (self._partial + chunk).split(b"\n")
        for raw in lines:
            reply = protocol.parse_reply(raw)
            if reply.kind == "exit":
                if reply.tag in self._live:
                    self._live.discard(reply.tag)
                    self.exits.append((reply.tag, reply.text))
                continue
            if reply.kind == "bye":
                self._bye = True
                continue
            entry = self._pending.pop(reply.tag, None) if reply.kind != "unknown" else None
            if entry is None:
                log.warning("unexpected reply from the job launcher: %r", raw)
                continue
            request = entry[0]
            self._retried.discard(request.job_id)
            if reply.kind == "started":
                self._live.add(reply.tag)
                self._outcomes[request.job_id] = Started(reply.pid, reply.ticks, reply.tag)
            else:
                self._outcomes[request.job_id] = reply.text

    def _reap(self) -> None:
        """Forget a launcher that is gone, or given up: its jobs not yet reported are lost."""
        if self.pid > 0:  # (a pid of 0 would name this process's whole group)
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(self.pid, 0)
        self._forget()
        self.lost.extend(self._live)
        self._live.clear()

    def _forget(self) -> None:
        if self._replies >= 0:
            if self._watch is not None:
                self._watch(self._replies, False)
            os.close(self._replies)
        if self._requests >= 0:
            os.close(self._requests)
        self._requests = self._replies = -1
        self.pid = 0
        self._identity = None
        self._mask = None


def _reap_when_done(pid: int) -> None:
    """Wait for a launcher told to end (it lives until its last job ends)."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)
