"""One node's agent: runs every job placed on the node as its own process, many at once.

One asyncio loop supervises all jobs. Every job is a fork of the worker's launcher
(`launcher.py`, a Python fork server started once), in a session and process group of its own.
The launcher is the jobs' parent: it reaps each, writes its exit status (and CPU times) to the
job's status file and tells the worker. Jobs, and the launcher, survive a restart of the
worker, which re-adopts the jobs from their status files.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import itertools
import json
import logging
import os
import pwd
import select
import signal
import socket
import sys
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from conductor.bus import SCHEDULER, Bus, node_topic
from conductor.domain.arrays import parse_array_spec
from conductor.domain.cpuset import parse_cpu_list
from conductor.domain.errors import SpecError
from conductor.domain.signals import parse_signal_spec
from conductor.domain.states import JobState, Reason
from conductor import launch_protocol as protocol
from conductor.launch import job_environment, job_paths
from conductor.launch_protocol import JobStatus
from conductor.store import Finish, Store, aware, is_disconnect, utcnow

log = logging.getLogger("conductor.worker")


class _QuietDisconnects(logging.Filter):
    """An unreachable database is a state the worker rides out (its jobs go on): one line per
    failed call, not a traceback twice a second for the length of the outage."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and is_disconnect(record.exc_info[1]):
            record.msg = f"{record.msg} (database unreachable)"
            record.exc_info = None
            record.exc_text = None
        return True


log.addFilter(_QuietDisconnects())

LAUNCHER = str(Path(__file__).with_name("launcher.py"))
# All the launcher's own environment: it runs as root, and so do its forks until they drop
# privileges.
LAUNCHER_ENVIRONMENT = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
# Whatever the worker's process ignores (Python ignores SIGPIPE and SIGXFSZ) must not stay
# ignored in the launcher and, through it, in the jobs.
_DEFAULT_SIGNALS = frozenset(signal.valid_signals()) - {signal.SIGKILL, signal.SIGSTOP}
# A launch left unanswered this long gives the launcher up: the worker's loop, and with it the
# node's heartbeat, waits for launches, and a silent node is declared dead after 30 s.
LAUNCH_TIMEOUT = 10.0
# A job watched by pidfd whose process ended: how long its exit line is awaited while the
# launcher that is its parent (and writes the line once it has reaped it) lives.
EXIT_LINE_WAIT = 10.0
# How long a user's passwd entry and groups are used before they are looked up again (Slurm
# caches group lists for ten minutes).
USER_CACHE_SECONDS = 10.0
NO_EXIT_STATUS = "job process ended without an exit status (its launcher died)"
# Status files of reported jobs kept for reuse (see launch_protocol.py), at most; and scripts, per
# user. A file reused costs a rename; a new one, on ext4 without a journal, a scan past every
# inode deleted in the last minutes (up to a few hundred microseconds when files come and go).
MAX_SPARES = 1024
MAX_SPARE_SCRIPTS = 256


@dataclass
class NodeConfig:
    name: str
    cpus: int
    memory_mb: int
    partitions: list[str]
    home: Path
    kill_wait: float = 30.0
    check_interval: float = 5.0
    heartbeat_interval: float = 2.0
    heartbeat_timeout: float = 30.0
    # Off unless configured: `conductor up` run by root turns it on for its local admin (root).
    allow_root_jobs: bool = False
    cpu_ids: list[int] = field(default_factory=list)
    cpu_binding: bool = False


def plan_cpus(declared: int) -> tuple[list[int], bool]:
    """The CPU ids a node hands out, and whether jobs can be bound to them.

    When the node declares no more CPUs than this process may use, its ids are the machine's
    real cores and jobs are pinned to them; otherwise they are virtual ids 0..N-1 and binding
    is off (the caller says so at start-up).
    """
    available = sorted(os.sched_getaffinity(0))
    if declared <= len(available):
        return available[:declared], True
    return list(range(declared)), False


@dataclass(frozen=True, slots=True)
class RunAs:
    """The launch request's user fields: uid "" means 'stay the worker's user'."""

    uid: str
    gid: str
    groups: str
    home: str | None
    user: str


@dataclass(slots=True)
class RunningJob:
    job_id: int
    pid: int  # the job's process (its batch script), leader of its session and process group
    status_path: str
    start_time: datetime
    time_limit: int | None
    ticks: int = 0  # with pid, the process's identity (see JobStatus.ticks)
    # While the worker's launcher reports its end: the tag of its launch; 0 when watched by pidfd
    # (re-adopted, or its launcher died).
    tag: int = 0
    launcher: tuple[int, int] | None = None  # watched by pidfd: the launcher to await its exit line from
    status: JobStatus | None = None  # its outcome, as the launcher reported it
    pidfd: int = -1
    kill_state: str | None = None
    term_sent: float | None = None  # monotonic time of the SIGTERM
    kill_sent: bool = False
    # Which run of the job this process is: a job requeued after its node was declared dead
    # runs again with restart_count + 1, and this process then no longer belongs to it.
    restart_count: int = 0
    orphaned: bool = False  # killed because the job no longer runs here: report nothing
    # sbatch --signal=[B:]SIG@TIME, read from the job's row: sent once, TIME s before the limit.
    signal_spec: str | None = None
    warned: bool = False


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
) -> bytes:
    """One request to the launcher without its tag (see launch_protocol.py)."""
    return protocol.encode_request_body(
        os.fspath(status_path), spare, (run_as.uid, run_as.gid, run_as.groups), cwd, stdio, open_mode, command, env
    )


class Launcher:
    """The worker's launcher (`launcher.py --serve`): every job is a fork of it, and its child.

    One Python start per worker, one fork per job. The launcher reaps its jobs and reports each
    end on its replies (`exit TAG ...`), which the owner takes with events(): a job it started
    needs no pidfd, no poll, and no status file read. When a launcher dies (its replies end),
    the jobs it had yet to report are `lost`: the owner then watches them by pidfd, and they end
    without an exit status unless the launcher had written one.

    Nothing runs unsupervised, still: a job runs only once its status file has the "start" line
    naming it and its launcher (the launcher's go, see launch_protocol.py), so a request the launcher
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
    ) -> None:
        self._python = python
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
        self._retired: list[int] = []  # launchers told to end, not yet waited for

    def start(self) -> None:
        self._wait_retired()
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
                    [self._python, "-I", "-S", LAUNCHER, "--serve", str(self._status_dir)],
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
        self._identity = (self.pid, _start_ticks(self.pid) or 0)  # see _settle
        self._mask = None
        self._partial = b""
        self._bye = False
        if self._watch is not None:
            self._watch(self._replies, True)
        log.info("job launcher started (pid %d)", self.pid)

    def close(self) -> None:
        """No more requests: the launcher lets go of the launch lock (its goodbye says so) and
        lives on, reaping and recording, until its last job has ended."""
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
            self._take(chunk, None, None)
        # Its jobs are for the next worker to adopt.
        self._live.clear()
        self._retired.append(self.pid)
        self._forget()
        self._wait_retired()

    def events(self) -> tuple[list[tuple[int, str]], list[int]]:
        """The ends reported, and the tags lost, since the last call."""
        exits, lost = self.exits, self.lost
        self.exits, self.lost = [], []
        return exits, lost

    def poll(self) -> None:
        """Read what the launcher said, without waiting; its end (EOF) makes its jobs lost."""
        while self._replies >= 0:
            try:
                chunk = os.read(self._replies, 65536)
            except BlockingIOError:
                return
            if not chunk:
                log.warning("the job launcher (pid %d) died", self.pid)
                self._reap()
                return
            self._take(chunk, None, None)

    def launch(self, requests: list[LaunchRequest]) -> dict[int, Started | str]:
        """Start the jobs: for each job its process, or why none was started."""
        results: dict[int, Started | str] = {}
        groups: dict[frozenset[int] | None, list[LaunchRequest]] = {}
        for request in requests:
            groups.setdefault(request.cpus, []).append(request)
        for cpus, group in groups.items():
            unstarted = self._launch_group(cpus, group, results)
            if unstarted:
                # Provably never started: safe to send again, once, to a new launcher.
                log.warning("the job launcher died; relaunching jobs %s", [r.job_id for r in unstarted])
                for request in self._launch_group(cpus, unstarted, results):
                    results[request.job_id] = f"the job launcher died before starting the job (see {self._log_path})"
        return results

    def _launch_group(
        self, cpus: frozenset[int] | None, group: list[LaunchRequest], results: dict[int, Started | str]
    ) -> list[LaunchRequest]:
        """Launch jobs of one CPU set; returns those the launcher died without starting."""
        waiting: dict[int, LaunchRequest] = {}
        frames = []
        for request in group:
            tag = next(self._tags)
            waiting[tag] = request
            frames.append(protocol.frame(tag, request.body))
        try:
            if not self.pid:
                self.start()
            mask = set(cpus) if cpus is not None else self._free_mask
            if mask != self._mask:
                # A fork inherits it, and so the job is bound before it runs.
                try:
                    os.sched_setaffinity(self.pid, mask)
                except ProcessLookupError:
                    self._reap()
                    return group
                except OSError as exc:
                    self._mask = None
                    for request in group:
                        results[request.job_id] = f"cannot bind to CPUs {sorted(mask)}: {exc}"
                    return []
                self._mask = mask
            if self._exchange(b"".join(frames), waiting, results):
                return []
            dead = self._identity
            self._reap()
        except Exception as exc:  # noqa: BLE001 - whatever it was, nothing may run unsupervised
            log.exception("job launcher failed")
            dead = self._identity
            if self.pid:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.pid, signal.SIGKILL)
                self._reap()
            for request in self._settle(waiting.values(), dead, results):
                results[request.job_id] = f"job launcher failed: {exc}"
            return []
        return self._settle(waiting.values(), dead, results)

    def _settle(
        self, unanswered: Iterable[LaunchRequest], dead: tuple[int, int] | None, results: dict[int, Started | str]
    ) -> list[LaunchRequest]:
        """After the launcher's death: which requests it left without a reply started (their
        status files have its "start" line; they are watched by pid), and which never did."""
        never: list[LaunchRequest] = []
        for request in unanswered:
            status = read_status(request.status_path)
            if status.pid and dead is not None and status.launcher is not None and _same_launcher(status.launcher, dead):
                results[request.job_id] = Started(status.pid, status.ticks, 0)
            else:
                never.append(request)
        return never

    def _exchange(self, data: bytes, waiting: dict[int, LaunchRequest], results: dict[int, Started | str]) -> bool:
        """Send the requests and collect replies until all came (True) or the launcher ended."""
        view = memoryview(data)
        poller = select.poll()  # not select(): a worker with many jobs holds fds beyond 1024
        poller.register(self._replies, select.POLLIN)
        poller.register(self._requests, select.POLLOUT)
        deadline = time.monotonic() + self._timeout
        while waiting:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no reply within {self._timeout:g} s")
            for fd, _ in poller.poll(remaining * 1000):
                if fd == self._requests:
                    try:
                        view = view[os.write(fd, view) :]
                    except BlockingIOError:
                        pass
                    except BrokenPipeError:
                        # Gone: the replies up to the end of its pipe tell which jobs started.
                        view = view[:0]
                    if not view:
                        poller.unregister(fd)
                    continue
                try:
                    chunk = os.read(fd, 65536)
                except BlockingIOError:
                    continue
                if not chunk:
                    return False  # the launcher is gone
                self._take(chunk, waiting, results)
        return True

    def _take(
        self, chunk: bytes, waiting: dict[int, LaunchRequest] | None, results: dict[int, Started | str] | None
    ) -> None:
        """Sort the launcher's lines: replies to `waiting` into `results`, ends into `exits`."""
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
            request = waiting.pop(reply.tag, None) if waiting is not None and reply.kind != "unknown" else None
            if request is None or results is None:
                log.warning("unexpected reply from the job launcher: %r", raw)
                continue
            if reply.kind == "started":
                self._live.add(reply.tag)
                results[request.job_id] = Started(reply.pid, reply.ticks, reply.tag)
            else:
                results[request.job_id] = reply.text

    def _reap(self) -> None:
        """Forget a launcher that is gone, or given up: its jobs not yet reported are lost."""
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

    def _wait_retired(self) -> None:
        """Collect launchers that were told to end and have (their jobs over)."""
        for pid in list(self._retired):
            try:
                done = os.waitpid(pid, os.WNOHANG)[0] != 0
            except ChildProcessError:
                done = True
            if done:
                self._retired.remove(pid)


class Worker:
    def __init__(self, store: Store, bus: Bus, config: NodeConfig) -> None:
        self.store = store
        self.bus = bus
        self.config = config
        # host:pid:random, so a restart on the same host can tell a dead predecessor apart.
        self.instance = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
        self.scripts_dir = config.home / "scripts"
        self.status_dir = config.home / "run"
        # Strings for the paths made per job: pathlib costs more than the system calls.
        self._scripts_prefix = f"{self.scripts_dir}/job_"
        self._status_prefix = f"{self.status_dir}/job_"
        self._spare_prefix = f"{self.status_dir}/spare_"
        self._spares: list[str] = []  # status files to reuse
        # Scripts of reported jobs, by the uid that owns them ("" for the worker's own user), to
        # be reused for that user's jobs only: a process that outlived its job and kept its
        # script open must not read another user's next one.
        self._spare_scripts: dict[str, list[str]] = {}
        self._script_owner: dict[int, str] = {}  # job id -> owner of the script written for it
        self.jobs: dict[int, RunningJob] = {}
        # The jobs whose end the current launcher reports, by the tag of their launch.
        self._tagged: dict[int, RunningJob] = {}
        self._finished: list[Finish] = []
        # Ended processes whose outcome is decided at the next flush, with one query for all of
        # them: whether a cancel or time limit was asked for that this worker has not yet seen.
        self._exited: list[RunningJob] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._stopping = False
        self.taken_over = False  # another instance claimed the node: this one must not go on
        self._is_root = os.geteuid() == 0
        self._array_bounds: dict[int, tuple[int, int, int, int]] = {}
        # User name -> (until when, passwd entry or None, groups as the launcher takes them).
        self._users: dict[str, tuple[float, Any, list[int], str]] = {}
        self._me: tuple[float, RunAs] | None = None
        self._lock_fd = -1
        self._launcher: Launcher | None = None

    def _status_path(self, job_id: int) -> str:
        return f"{self._status_prefix}{job_id}.status"

    # --------------------------------------------------------------- lifecycle
    def register(self) -> None:
        """Claim the node; raises NodeConflict when a live worker already has the name."""
        self.scripts_dir.mkdir(parents=True, exist_ok=True)
        self.status_dir.mkdir(parents=True, exist_ok=True)
        # Jobs of other users must reach their own script by name, and list nothing.
        os.chmod(self.scripts_dir, 0o711)
        os.chmod(self.status_dir, 0o700)
        if self._is_root:
            for directory in self.scripts_dir.resolve().parents:
                if not os.stat(directory).st_mode & 0o001:
                    log.warning(
                        "%s is not searchable by other users: jobs that run as their users cannot reach "
                        "their scripts under %s (chmod o+x it, or choose another CONDUCTOR_HOME)",
                        directory,
                        self.scripts_dir,
                    )
                    break
        stale_before = utcnow() - timedelta(seconds=self.config.heartbeat_timeout)
        self.store.register_node(
            name=self.config.name,
            cpus=self.config.cpus,
            cpu_ids=self.config.cpu_ids,
            cpu_binding=self.config.cpu_binding,
            memory_mb=self.config.memory_mb,
            partitions=self.config.partitions,
            instance=self.instance,
            hostname=socket.gethostname(),
            stale_before=stale_before,
            instance_alive=instance_may_be_alive,
        )

    def wake(self) -> None:
        """Thread-safe: ask the loop to look for new placements and cancels."""
        loop, event = self._loop, self._wake
        if loop is not None and event is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(event.set)

    def stop(self) -> None:
        self._stopping = True
        self.wake()

    async def run(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self.bus.subscribe(node_topic(self.config.name), self.wake)
        if await self._wait_for_launch_lock():
            self._find_spares()
            self._launcher = Launcher(
                self.status_dir,
                self._lock_fd,
                self.config.home / "launcher.log",
                min(LAUNCH_TIMEOUT, max(self.config.heartbeat_timeout / 2, 1.0)),
                watch=self._watch_launcher,
            )
            try:
                self._launcher.start()  # now rather than at the first job: it shortens that job's start
            except OSError:
                log.warning("could not start the job launcher; retrying at the next launch", exc_info=True)
            delay = 0.1
            while not self._adopt() and not self._stopping:
                # Without the database we cannot tell our jobs from orphans: wait, launch nothing.
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
        heartbeat = asyncio.create_task(self._heartbeat_loop())
        try:
            while not self._stopping:
                self._wake.clear()
                self._tick()
                timeout = self._next_timeout()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout)
        finally:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat
            self._flush()
            for job in self.jobs.values():
                if job.pidfd >= 0:
                    self._loop.remove_reader(job.pidfd)
                    os.close(job.pidfd)
            if self._launcher is not None:
                self._launcher.close()
            if self._lock_fd >= 0:
                os.close(self._lock_fd)
                self._lock_fd = -1
            # The jobs keep running, and their launcher with them: a restarted worker re-adopts them.
            with contextlib.suppress(Exception):
                self.store.set_node_down(self.config.name, self.instance, "worker stopped")
            self.bus.publish(SCHEDULER)

    def _find_spares(self) -> None:
        """A predecessor's spare files (its launcher, done with its requests, uses none any more)."""
        with contextlib.suppress(FileNotFoundError):
            names = os.listdir(self.status_dir)
            self._spares = [f"{self.status_dir}/{name}" for name in names if name.startswith("spare_")][:MAX_SPARES]
        self._spare_scripts = {}
        with contextlib.suppress(FileNotFoundError):
            for name in os.listdir(self.scripts_dir):
                kind, _, rest = name.partition("_")
                owner = rest.rpartition("_")[0]  # spare_OWNER_JOBID
                if kind == "spare" and owner:
                    spares = self._spare_scripts.setdefault("" if owner == "self" else owner, [])
                    if len(spares) < MAX_SPARE_SCRIPTS:
                        spares.append(f"{self.scripts_dir}/{name}")

    async def _wait_for_launch_lock(self) -> bool:
        """Wait for the launch lock; False when stopped first (then nothing may be adopted)."""
        waited_since = time.monotonic()
        while not self._take_launch_lock():
            if self._stopping:
                return False
            if time.monotonic() - waited_since > 5:
                log.warning("waiting for the job launcher of a previous worker of this home to take its last requests")
                waited_since = time.monotonic()
            await asyncio.sleep(0.05)
        return True

    def _take_launch_lock(self) -> bool:
        """Hold the lock the worker shares with its launcher, which lets go once its requests end.

        A predecessor's launcher may still be starting jobs it had read requests for; once the
        lock is free it has dealt with all of them, and each job it started has the "start" line
        in its status file (written before the job may run), so a claimed job without one
        provably never started (_adopt).
        """
        if self._lock_fd < 0:
            fd = os.open(self.status_dir / "launcher.lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
            # Away from 0-3, where the launcher gets its descriptors: a dup2 onto itself keeps
            # close-on-exec with older C libraries.
            self._lock_fd = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
            os.close(fd)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def _tick(self) -> None:
        self._flush()
        rows = self._rows_of_node()
        if rows is not None:
            # Before any launch: a process of a job taken from this node must not share the
            # CPUs with new work (nor run beside a new run of the same job).
            self._kill_orphans(rows)
        if not self._stopping:
            self._launch_placed()
        self._enforce_kills(rows)
        self._flush()

    def _next_timeout(self) -> float:
        now_wall = time.time()
        now_mono = time.monotonic()
        timeout = self.config.check_interval
        for job in self.jobs.values():
            if job.kill_state is None and job.time_limit is not None:
                timeout = min(timeout, job.start_time.timestamp() + job.time_limit - now_wall)
                warn_at = self._warn_time(job)
                if warn_at is not None:
                    timeout = min(timeout, warn_at - now_wall)
            elif job.term_sent is not None and not job.kill_sent:
                timeout = min(timeout, job.term_sent + self.config.kill_wait - now_mono)
        return max(timeout, 0.0)

    async def _heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.heartbeat_interval)
            try:
                if not self.store.heartbeat(self.config.name, self.instance):
                    log.error("node %s was taken over by another worker; stopping", self.config.name)
                    self.taken_over = True
                    self.stop()
                    return
            except Exception:  # noqa: BLE001 - a database outage must not stop the jobs
                log.warning("heartbeat failed; retrying", exc_info=True)

    # ------------------------------------------------------------------ launch
    def _launch_placed(self) -> None:
        if self._launcher is None:
            return  # run() has yet to see a predecessor's launcher gone
        try:
            rows = self.store.claim_for_launch(self.config.name)
        except Exception:  # noqa: BLE001
            log.warning("could not claim placed jobs; retrying", exc_info=True)
            return
        if not rows:
            return
        requests: list[LaunchRequest] = []
        by_id: dict[int, dict[str, Any]] = {}
        for row in rows:
            try:
                request = self._prepare(row)
            except Exception as exc:  # noqa: BLE001 - one bad job must not stop the node
                log.exception("launch of job %s failed", row["id"])
                self._launch_failed(row, str(exc))
                continue
            requests.append(request)
            by_id[request.job_id] = row
        results = self._launcher.launch(requests)
        pids: dict[int, int] = {}
        unwatched: list[RunningJob] = []
        for request in requests:
            row = by_id[request.job_id]
            outcome = results.get(request.job_id, "no reply from the job launcher")
            if isinstance(outcome, str):
                log.error("launch of job %s failed: %s", request.job_id, outcome)
                self._launch_failed(row, outcome)
                continue
            job = RunningJob(
                job_id=request.job_id,
                pid=outcome.pid,
                status_path=request.status_path,
                start_time=aware(row["start_time"]) or utcnow(),
                time_limit=row["time_limit"],
                ticks=outcome.ticks,
                tag=outcome.tag,
                kill_state=row.get("kill_state"),
                restart_count=row.get("restart_count") or 0,
            )
            self.jobs[job.job_id] = job
            if outcome.tag:
                self._tagged[outcome.tag] = job
            else:
                unwatched.append(job)  # started by a launcher that died before replying
            pids[job.job_id] = job.pid
        # Jobs may have ended already (short ones do); the launcher may have died meanwhile.
        self._launcher_events()
        for job in unwatched:
            self._watch_pid(job)
        if pids:
            try:
                self.store.record_pids(pids)
            except Exception:  # noqa: BLE001 - pids are informative; status files are the truth
                log.warning("could not record pids", exc_info=True)

    def _launch_failed(self, row: dict[str, Any], message: str) -> None:
        failed = Finish(row["id"], JobState.FAILED, "1:0", Reason.NONE.value, f"launch failed: {message}")
        # Tied to this run: if the node is declared dead before the report gets through,
        # it must not end the job's next run elsewhere.
        failed.node = self.config.name
        failed.restart_count = row.get("restart_count") or 0
        self._finished.append(failed)

    def _user_ids(self, row: dict[str, Any]) -> RunAs:
        """Whom the job runs as: its user when the worker is root, else the worker's own user.

        The user is found by name in this node's passwd database; a job whose user the node
        does not know, or knows under another uid than the submitting host did, fails here
        rather than run as anyone else. Entries are looked up again after USER_CACHE_SECONDS.
        """
        now = time.monotonic()
        if not self._is_root:
            if self._me is None or self._me[0] < now:
                try:
                    me = pwd.getpwuid(os.geteuid())
                    run_as = RunAs("", "", "", me.pw_dir, me.pw_name)
                except KeyError:
                    run_as = RunAs("", "", "", None, str(os.geteuid()))
                self._me = (now + USER_CACHE_SECONDS, run_as)
            return self._me[1]
        name = str(row["user_name"])
        cached = self._users.get(name)
        if cached is None or cached[0] < now:
            try:
                entry = pwd.getpwnam(name)
            except KeyError:
                entry = None
            groups = os.getgrouplist(name, entry.pw_gid) if entry is not None else []
            cached = (now + USER_CACHE_SECONDS, entry, groups, ",".join(map(str, groups)))
            self._users[name] = cached
        _, entry, groups, groups_text = cached
        if entry is None:
            raise RuntimeError(f"user '{name}' does not exist on node {self.config.name}")
        if row.get("uid") is not None and int(row["uid"]) != entry.pw_uid:
            raise RuntimeError(
                f"user '{name}' has uid {entry.pw_uid} on node {self.config.name} but uid {row['uid']} "
                "where the job was submitted"
            )
        if entry.pw_uid == 0 and not self.config.allow_root_jobs:
            raise RuntimeError(
                f"jobs as root are not allowed on node {self.config.name} (CONDUCTOR_ALLOW_ROOT_JOBS is off)"
            )
        gid = int(row["gid"]) if row.get("gid") is not None and int(row["gid"]) in groups else entry.pw_gid
        return RunAs(str(entry.pw_uid), str(gid), groups_text, entry.pw_dir, name)

    def _bounds(self, row: dict[str, Any]) -> tuple[int, int, int, int] | None:
        array_job = row.get("array_job_id")
        if row.get("array_task_id") is None or not row.get("array_spec"):
            return None
        if array_job not in self._array_bounds:
            indices = parse_array_spec(row["array_spec"]).indices
            steps = {b - a for a, b in zip(indices, indices[1:], strict=False)}
            step = steps.pop() if len(steps) == 1 else 1
            self._array_bounds[array_job] = (len(indices), indices[0], indices[-1], step)
        return self._array_bounds[array_job]

    def _prepare(self, row: dict[str, Any]) -> LaunchRequest:
        """Write the job's script and make its request to the launcher."""
        job_id = int(row["id"])
        run_as = self._user_ids(row)
        uid, gid, home = run_as.uid, run_as.gid, run_as.home
        script_path = f"{self._scripts_prefix}{job_id}.sh"
        script: str = row["script"]
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
        command = [script_path] if script.startswith("#!") else ["/bin/bash", script_path]
        extra = row.get("extra")
        if extra and "argv" in extra:
            command += json.loads(extra).get("argv") or []
        paths = job_paths(row, self.config.name)
        env = job_environment(
            row, node=self.config.name, cpu_ids=row["cpu_ids"] or "", home=home, array_bounds=self._bounds(row)
        )
        # The account the process really runs as, whatever the submitted environment said.
        env["USER"] = env["LOGNAME"] = run_as.user
        if home:
            env["HOME"] = home
        status_path = self._status_path(job_id)
        # The job's environment travels in the request and is set only after the job's process
        # has dropped privileges: a user's LD_PRELOAD or PERL5OPT must not run code as root.
        body = launch_frame(
            status_path,
            run_as,
            row["work_dir"],
            (paths.stdin, paths.stdout, paths.stderr),
            row.get("open_mode") or "truncate",
            command,
            env,
            self._spares.pop() if self._spares else "",
        )
        cpus = None
        if self.config.cpu_binding and row.get("cpu_ids"):
            cpus = frozenset(parse_cpu_list(row["cpu_ids"]))
        return LaunchRequest(job_id, status_path, body, cpus)

    # ---------------------------------------------------------------- endings
    def _watch_launcher(self, fd: int, on: bool) -> None:
        assert self._loop is not None
        if on:
            self._loop.add_reader(fd, self._on_launcher_output)
        else:
            self._loop.remove_reader(fd)

    def _on_launcher_output(self) -> None:
        if self._launcher is not None:
            self._launcher.poll()
            self._launcher_events()

    def _launcher_events(self) -> None:
        """Take the ends the launcher reported, and the jobs it died before reporting."""
        assert self._launcher is not None
        exits, lost = self._launcher.events()
        for tag, outcome in exits:
            job = self._tagged.pop(tag, None)
            if job is not None:
                self._ended(job, _exit_report(outcome, job.pid))
        for tag in lost:
            job = self._tagged.pop(tag, None)
            if job is None:
                continue
            job.tag = 0
            if job.orphaned:
                continue  # killed already, and no longer this worker's to report
            # Its launcher is gone: its end shows by pidfd, and comes without an exit status.
            self._watch_pid(job)

    def _watch_pid(self, job: RunningJob) -> None:
        """Follow a job whose launcher does not report its end (gone, or a predecessor's)."""
        assert self._loop is not None
        try:
            job.pidfd = os.pidfd_open(job.pid)
        except ProcessLookupError:
            self._await_exit_line(job)
            return
        except OSError as exc:
            # Nothing may run unsupervised.
            log.error("cannot watch job %s (pid %s): %s; killing it", job.job_id, job.pid, exc)
            self._signal_group(job, signal.SIGKILL)
            self._await_exit_line(job)
            return
        if not _is_job_process(job):
            # The pid was reaped, and may be another process's by now.
            os.close(job.pidfd)
            job.pidfd = -1
            self._await_exit_line(job)
            return
        self._loop.add_reader(job.pidfd, self._on_pid_exit, job)

    def _on_pid_exit(self, job: RunningJob) -> None:
        assert self._loop is not None
        if job.pidfd >= 0:
            self._loop.remove_reader(job.pidfd)
            os.close(job.pidfd)
            job.pidfd = -1
        # Slurm ends every process of a job when its batch script ends (a launcher does, but
        # this one's may be gone).
        self._signal_group(job, signal.SIGKILL)
        self._await_exit_line(job)

    def _await_exit_line(self, job: RunningJob, deadline: float | None = None) -> None:
        """The job's process ended: report it once its status file has the exit line, or once
        the launcher that would write it is gone (it then has none)."""
        status = read_status(job.status_path)
        if status.exit is None and status.error is None and job.launcher is not None:
            now = time.monotonic()
            deadline = deadline if deadline is not None else now + EXIT_LINE_WAIT
            if now < deadline and _launcher_alive(job.launcher):
                assert self._loop is not None
                self._loop.call_later(0.02, self._await_exit_line, job, deadline)
                return
        self._ended(job, status)

    def _ended(self, job: RunningJob, status: JobStatus | None) -> None:
        if self.jobs.get(job.job_id) is job:
            self.jobs.pop(job.job_id)
        if job.orphaned:
            return  # the job's state is no longer this process's to report
        job.status = status
        self._exited.append(job)
        if self._wake is not None:
            self._wake.set()

    def _outcome(self, job: RunningJob) -> Finish:
        status = job.status if job.status is not None else read_status(job.status_path)
        rusage = status.rusage
        kill_state = job.kill_state
        if status.error is not None:
            return Finish(job.job_id, JobState.FAILED, "1:0", Reason.NONE.value, status.error, rusage)
        if status.exit is None:
            # Its launcher died before it could learn and record the job's end.
            code, sig = 0, signal.SIGKILL
        else:
            code, sig = status.exit
        exit_code = f"{code}:{sig}"
        if kill_state == JobState.PENDING.value:
            # scontrol requeue: the run is over, the job goes back to the queue (store.finish).
            return Finish(job.job_id, JobState.PENDING, exit_code, Reason.NONE.value, None, rusage)
        if kill_state == JobState.TIMEOUT.value:
            return Finish(job.job_id, JobState.TIMEOUT, exit_code, Reason.TIME_LIMIT.value, None, rusage)
        if kill_state == JobState.CANCELLED.value:
            return Finish(job.job_id, JobState.CANCELLED, exit_code, Reason.NONE.value, None, rusage)
        if status.exit is None:
            return Finish(job.job_id, JobState.FAILED, exit_code, Reason.RAISED_SIGNAL.value, NO_EXIT_STATUS, rusage)
        if code == 0 and sig == 0:
            return Finish(job.job_id, JobState.COMPLETED, exit_code, Reason.NONE.value, None, rusage)
        reason = Reason.RAISED_SIGNAL.value if sig else Reason.NON_ZERO_EXIT_CODE.value
        return Finish(job.job_id, JobState.FAILED, exit_code, reason, None, rusage)

    def _decide_exited(self) -> None:
        if not self._exited:
            return
        # A requeue (PENDING) may since have been overridden by a cancel: read that too.
        unknown = [job.job_id for job in self._exited if job.kill_state in (None, JobState.PENDING.value)]
        try:
            requested = self.store.kill_states(unknown) if unknown else {}
        except Exception:  # noqa: BLE001 - decide once the database answers again
            log.warning("could not read kill requests of %d ended jobs; will retry", len(unknown))
            return
        exited, self._exited = self._exited, []
        for job in exited:
            if job.kill_state in (None, JobState.PENDING.value):
                job.kill_state = requested.get(job.job_id, job.kill_state)
            self._finished.append(self._report(job, self._outcome(job)))

    def _flush(self) -> None:
        self._decide_exited()
        if not self._finished:
            return
        batch, self._finished = self._finished, []
        try:
            self.store.finish(batch)
        except Exception:  # noqa: BLE001 - keep them and report when the database is back
            log.warning("could not record %d finished jobs; will retry", len(batch), exc_info=True)
            self._finished = batch + self._finished
            return
        jobs, spares = self.jobs, self._spares
        for finish in batch:
            job_id = finish.job_id
            if job_id in jobs:
                continue  # a report about an earlier run; the files are the new run's
            # Kept for a later job rather than deleted: reusing a file costs less than making one.
            with contextlib.suppress(FileNotFoundError):
                if len(spares) < MAX_SPARES:
                    spare = f"{self._spare_prefix}{job_id}"
                    os.rename(self._status_path(job_id), spare)
                    spares.append(spare)
                else:
                    os.unlink(self._status_path(job_id))
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
        self.bus.publish(SCHEDULER)

    # ------------------------------------------------------------------- kills
    def _enforce_kills(self, rows: list[dict[str, Any]] | None = None) -> None:
        if not self.jobs:
            return
        now_wall = time.time()
        now_mono = time.monotonic()
        requested: dict[int, str] = {}
        current: dict[int, dict[str, Any]] = {}
        try:
            for row in rows if rows is not None else self.store.running_on_node(self.config.name):
                current[row["id"]] = row
                if row["kill_state"]:
                    requested[row["id"]] = row["kill_state"]
        except Exception:  # noqa: BLE001
            log.warning("could not read cancel requests", exc_info=True)
        if any(row.get("pending_signal") for row in current.values()):
            self._deliver_signals()
        for job in list(self.jobs.values()):
            row = current.get(job.job_id)
            if row is not None:
                # scontrol update may have changed the limit of the running job.
                job.time_limit = row["time_limit"]
                job.signal_spec = row.get("signal_spec")
            if job.kill_state in (None, JobState.PENDING.value) and job.job_id in requested:
                job.kill_state = requested[job.job_id]  # a cancel may override a requeue
            self._warn_before_limit(job, now_wall)
            if (
                job.kill_state is None
                and job.time_limit is not None
                and now_wall >= job.start_time.timestamp() + job.time_limit
            ):
                with contextlib.suppress(Exception):
                    self.store.set_kill(job.job_id, JobState.TIMEOUT)
                job.kill_state = JobState.TIMEOUT.value
            if job.kill_state is not None and job.term_sent is None:
                # As slurmstepd: SIGCONT so a stopped job can act on the SIGTERM that follows.
                self._signal_group(job, signal.SIGCONT)
                self._signal_group(job, signal.SIGTERM)
                job.term_sent = now_mono
            elif job.term_sent is not None and not job.kill_sent and now_mono >= job.term_sent + self.config.kill_wait:
                self._signal_group(job, signal.SIGKILL)
                job.kill_sent = True

    def _signal_group(self, job: RunningJob, sig: int) -> None:
        signal_group(job.pid, job.ticks, sig)

    def signal_job(self, job_id: int, sig: int) -> bool:
        job = self.jobs.get(job_id)
        if job is None:
            return False
        self._signal_group(job, sig)
        return True

    # ----------------------------------------------------------------- signals
    def _deliver_signals(self) -> None:
        """Deliver what `scancel --signal` asked for (through the store: the API may be on
        another host). Taken and cleared in one transaction, so each is delivered once."""
        try:
            taken = self.store.take_signals(self.config.name)
        except Exception:  # noqa: BLE001 - they stay in the database for the next wake-up
            log.warning("could not read signal requests", exc_info=True)
            return
        for job_id, entries in taken.items():
            job = self.jobs.get(job_id)
            if job is None:
                continue
            for entry in entries:
                batch_only, _, number = entry.rpartition(":")
                if number.isdigit():
                    self._send_signal(job, int(number), batch_only=batch_only == "b")

    def _warn_time(self, job: RunningJob) -> float | None:
        """When --signal's warning is due (wall clock), or None (none asked, or already sent)."""
        if job.warned or not job.signal_spec or job.time_limit is None:
            return None
        try:
            spec = parse_signal_spec(job.signal_spec)
        except SpecError:
            return None
        return job.start_time.timestamp() + job.time_limit - spec.seconds

    def _warn_before_limit(self, job: RunningJob, now_wall: float) -> None:
        warn_at = self._warn_time(job)
        if warn_at is None or job.kill_state is not None or now_wall < warn_at:
            return
        spec = parse_signal_spec(job.signal_spec or "")
        job.warned = True
        self._send_signal(job, spec.signal, batch_only=spec.batch_only)

    def _send_signal(self, job: RunningJob, sig: int, *, batch_only: bool) -> None:
        """Signal a job without ending it: the batch shell alone (`B:`), or every process of it."""
        if batch_only:
            if _is_job_process(job):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(job.pid, sig)
        else:
            self._signal_group(job, sig)

    # ----------------------------------------------------------------- restart
    def _adopt(self) -> bool:
        """Take back the jobs this node was running before the worker restarted, and kill the
        processes of jobs that no longer run here (their node was declared dead meanwhile).

        False when the database could not be read; the caller retries.
        """
        try:
            rows = self.store.running_on_node(self.config.name)
        except Exception as exc:  # noqa: BLE001
            log.warning("could not read running jobs at start (%s); retrying", exc)
            return False
        self._kill_strays({row["id"] for row in rows if row["launched"]})
        gone: list[int] = []
        never_started: list[int] = []
        for row in rows:
            if not row["launched"]:
                continue  # placed but never started: the launch path takes it
            status_path = self._status_path(row["id"])
            status = read_status(status_path)
            job = RunningJob(
                job_id=row["id"],
                pid=status.pid or 0,
                status_path=status_path,
                start_time=aware(row["start_time"]) or utcnow(),
                time_limit=row["time_limit"],
                ticks=status.ticks,
                launcher=status.launcher,
                kill_state=row["kill_state"],
                restart_count=row.get("restart_count") or 0,
            )
            if status.exit is not None or status.error is not None:
                job.status = status
                self._exited.append(job)
            elif status.pid is None:
                if row["pid"]:
                    # It started (its launcher replied), yet its status file is gone.
                    gone.append(job.job_id)
                else:
                    # The launch lock is ours (run() waited for it): whatever launcher had this
                    # job's request is done with its requests, and would have written the "start"
                    # line before letting the job run. The script never ran: it may run now, once.
                    never_started.append(job.job_id)
            elif _is_job_process(job, running=True):
                self.jobs[job.job_id] = job
                self._watch_pid(job)
                log.info("re-adopted job %s (pid %s)", job.job_id, job.pid)
            else:
                # Ended (gone, or a zombie its launcher has yet to reap, or an orphan's its new
                # parent has yet to): what its launcher recorded, if it could.
                status = self._wait_for_exit_line(job)
                if status.exit is not None or status.error is not None:
                    job.status = status
                    self._exited.append(job)
                else:
                    gone.append(job.job_id)
        if never_started:
            try:
                self.store.relaunch(self.config.name, never_started)
                log.info("jobs %s were claimed but never started: launching them", never_started)
            except Exception:  # noqa: BLE001 - they stay claimed; a later restart retries
                log.warning("could not hand back unstarted jobs", exc_info=True)
        if gone:
            try:
                self.store.fail_stranded(
                    self.config.name, gone, "job process was gone when the worker restarted"
                )
            except Exception:  # noqa: BLE001
                log.warning("could not mark stranded jobs", exc_info=True)
        self._flush()
        return True

    @staticmethod
    def _wait_for_exit_line(job: RunningJob, timeout: float = 2.0) -> JobStatus:
        """The status of a job whose process is gone: its launcher, when it lives, writes the
        exit line right after reaping it."""
        deadline = time.monotonic() + timeout
        while True:
            status = read_status(job.status_path)
            if status.exit is not None or status.error is not None or job.launcher is None:
                return status
            if time.monotonic() >= deadline or not _launcher_alive(job.launcher):
                # Read once more: it may have written the line just before it went.
                return read_status(job.status_path)
            time.sleep(0.01)

    # ---------------------------------------------------- jobs taken from this node
    def _report(self, job: RunningJob, finish: Finish) -> Finish:
        """Tie a report to the run it is about, so it cannot end a later run of the job."""
        finish.node = self.config.name
        finish.restart_count = job.restart_count
        return finish

    def _rows_of_node(self) -> list[dict[str, Any]] | None:
        """What the database says runs on this node; None without jobs or without a database."""
        if not self.jobs:
            return None
        try:
            return self.store.running_on_node(self.config.name)
        except Exception as exc:  # noqa: BLE001 - no news is no reason to kill anything
            log.warning("could not read this node's jobs (%s)", exc)
            return None

    def _kill_orphans(self, rows: list[dict[str, Any]]) -> None:
        """Kill the processes of jobs the scheduler took from this node while it was silent."""
        current = {row["id"]: row for row in rows}
        for job in list(self.jobs.values()):
            row = current.get(job.job_id)
            if row is not None and row["launched"] and (row.get("restart_count") or 0) == job.restart_count:
                continue
            log.warning("job %s no longer runs on this node (its node was declared dead): killing it", job.job_id)
            job.orphaned = True
            self.jobs.pop(job.job_id)
            self._signal_group(job, signal.SIGKILL)
            # A later run here gets a new status file; this one must not pass for it meanwhile.
            with contextlib.suppress(FileNotFoundError):
                os.unlink(job.status_path)
            self._script_owner.pop(job.job_id, None)  # its script stays: its processes may hold it

    def _kill_strays(self, ours: set[int]) -> None:
        """At start: kill every live job process of this home that is not one of `ours`."""
        for name in os.listdir(self.status_dir):
            digits = name[len("job_") : -len(".status")]
            if not (name.startswith("job_") and name.endswith(".status") and digits.isdigit()) or int(digits) in ours:
                continue
            status_path = self._status_path(int(digits))
            status = read_status(status_path)
            if status.pid:
                stray = RunningJob(int(digits), status.pid, status_path, utcnow(), None, ticks=status.ticks)
                if _is_job_process(stray):
                    log.warning("job %s no longer runs on this node (its node was declared dead): killing it", digits)
                    self._signal_group(stray, signal.SIGKILL)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(status_path)


@dataclass(frozen=True, slots=True)
class ProcessInfo:
    """What /proc/PID/stat says of a process that signal_group needs."""

    pid: int
    state: str
    pgid: int
    sid: int
    ticks: int  # start time (field 22)


def group_is_the_jobs(pid: int, ticks: int, leader: ProcessInfo | None, members: Iterable[ProcessInfo]) -> bool:
    """Whether process group `pid` is still the job's whose process was `pid`, started at `ticks`.

    A process with that pid is the job's exactly when its start time is the job's (a zombie
    too: its pid and group are not free until it is reaped). A process with that pid and
    another start time means the pid was reused, which the kernel does only once no process
    is left in the old group: whatever group `pid` is now is someone else's.

    No process with that pid: the job's process ended, and its group may live on (its launcher
    ends the group at once, but a launcher that died cannot). A pid is not handed out while
    a process group or session of that id has a member, so members of group `pid` and of
    session `pid` (the job made itself both) are the job's, as long as the group never emptied
    meanwhile: then the pid could have gone to a new process that made a session of its own
    and left its children in it. Those started after that new process, which started after
    the job's group emptied; the job's started after the job. The start-time check below
    (no member older than the job) is what can be checked; the rest of that sequence needs
    the pid space to wrap around between the job's end and this signal.
    """
    if not ticks:
        return False
    if leader is not None:
        return leader.ticks == ticks
    return any(m.pgid == pid and m.sid == pid and m.ticks >= ticks and m.state != "Z" for m in members)


def signal_group(pid: int, ticks: int, sig: int) -> None:
    """Signal a job: its process group, led by its process (`ticks`: that process's start time),
    once group_is_the_jobs says the group is still the job's.

    The launcher replies as soon as the job's process is forked, which makes itself a session
    (and group) first thing, but may not have yet: without a group, it is signalled alone (it
    is all there is of the job until it runs the command).
    """
    leader = _process_info(pid)
    members = _processes_in_group(pid) if leader is None and ticks else []
    if not group_is_the_jobs(pid, ticks, leader, members):
        return
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        if leader is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)
    except PermissionError:
        pass


def _exit_report(outcome: str, pid: int) -> JobStatus | None:
    """The launcher's "CODE SIG UTIME STIME" as a status; None: read the job's status file."""
    parsed = protocol.parse_exit(outcome)
    if parsed is None or parsed[1] is None:
        return None
    return JobStatus(pid=pid, exit=parsed[0], rusage=parsed[1])


def read_status(path: str | Path) -> JobStatus:
    """What a job's status file says (see launch_protocol.py); empty when there is none."""
    try:
        with open(path, "rb") as f:
            return protocol.parse_status(f.read())
    except FileNotFoundError:
        return JobStatus()


def _proc_stat(pid: int) -> list[bytes] | None:
    """The fields of /proc/PID/stat from the third (state) on; None when there is no such process."""
    return protocol.proc_stat(pid)


def _start_ticks(pid: int) -> int | None:
    """When the process started (field 22 of /proc/PID/stat, in clock ticks since boot)."""
    return protocol.start_ticks(pid)


def _same_launcher(recorded: tuple[int, int], launcher: tuple[int, int]) -> bool:
    return recorded[0] == launcher[0] and (not recorded[1] or not launcher[1] or recorded[1] == launcher[1])


def _launcher_alive(launcher: tuple[int, int]) -> bool:
    """Whether the launcher of that pid and start time still runs (it may yet write exit lines)."""
    fields = _proc_stat(launcher[0])
    return (
        fields is not None and len(fields) > 19 and fields[0] != b"Z" and (not launcher[1] or int(fields[19]) == launcher[1])
    )


def _is_job_process(job: RunningJob, *, running: bool = False) -> bool:
    """Whether job.pid is still the job's process, and not a reused pid (with `running`: and
    not a zombie)."""
    if not job.pid:
        return False
    fields = _proc_stat(job.pid)
    return (
        job.ticks != 0
        and fields is not None
        and len(fields) > 19
        and int(fields[19]) == job.ticks
        and not (running and fields[0] == b"Z")
    )


def _process_info(pid: int) -> ProcessInfo | None:
    fields = _proc_stat(pid)
    if fields is None or len(fields) <= 19:
        return None
    # From the third field on: state, ppid, pgrp, session, ... starttime (22nd).
    return ProcessInfo(pid, fields[0].decode(), int(fields[2]), int(fields[3]), int(fields[19]))


def _processes_in_group(pgid: int) -> list[ProcessInfo]:
    """The processes of a process group, read from /proc."""
    members = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            process = _process_info(int(entry))
            if process is not None and process.pgid == pgid:
                members.append(process)
    return members


def instance_may_be_alive(instance: str) -> bool:
    """False only when the instance ran on this host and its process is gone."""
    host, _, rest = instance.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return True
    pid = int(pid_text)
    if pid == os.getpid():
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"conductor" in cmdline


def machine_memory_mb() -> int:
    import psutil

    return int(psutil.virtual_memory().total // (1024 * 1024))


def run_in_thread(worker: Worker, on_error: Callable[[BaseException], None]) -> Any:
    """Run the worker's loop in a thread of its own (the all-in-one process)."""
    import threading

    def target() -> None:
        try:
            asyncio.run(worker.run())
        except BaseException as exc:  # noqa: BLE001
            log.exception("worker stopped with an error")
            on_error(exc)

    thread = threading.Thread(target=target, name=f"worker-{worker.config.name}", daemon=True)
    thread.start()
    return thread
