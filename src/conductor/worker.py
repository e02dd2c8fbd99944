"""One node's agent: runs every job placed on the node as its own process, many at once.

One asyncio loop supervises all jobs. Each job runs under a shepherd (`shepherd.pl`) in a new
session and process group; shepherds are forks of the worker's launcher, a Perl fork server
started once. The worker learns of a job's end through a pidfd and reads the exact exit status
(and the job's CPU times) the shepherd wrote. Jobs survive a restart of the worker, which
re-adopts them from those status files.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import pwd
import select
import shutil
import signal
import socket
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
from conductor.launch import job_environment, job_paths
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

SHEPHERD = str(Path(__file__).with_name("shepherd.pl"))
# Signals the shepherd catches (shepherd.pl): these may go to the whole process group.
SHEPHERD_SURVIVES = frozenset(
    {signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2, signal.SIGQUIT,
     signal.SIGALRM, signal.SIGCONT, signal.SIGSTOP, signal.SIGTSTP}
)
# All the launcher's own environment: it and the shepherds run as root until they drop privileges.
SHEPHERD_ENVIRONMENT = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
# Perl has no O_NOFOLLOW without Fcntl, so the launcher is handed this platform's open(2) flags.
OPEN_FLAGS = f"{os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW},{os.O_TRUNC},{os.O_APPEND}"
# A shepherd's process title is this and its status file: how a live shepherd is told apart
# from a process that got its pid since.
SHEPHERD_TITLE = "conductor-shepherd "
# Perl rewrites $0 within the launcher's original argv: room for the longest title beyond the
# status directory, which the argv holds already (shepherd.pl checks at start that it fits).
TITLE_PADDING = "-" * 64
# A launch left unanswered this long gives the launcher up: the worker's loop, and with it the
# node's heartbeat, waits for launches, and a silent node is declared dead after 30 s.
LAUNCH_TIMEOUT = 10.0


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
    """The shepherd's user arguments: uid "" means 'stay the worker's user'."""

    uid: str
    gid: str
    groups: str
    home: str | None
    user: str


@dataclass
class RunningJob:
    job_id: int
    pid: int  # the shepherd, leader of the job's process group
    status_path: Path
    start_time: datetime
    time_limit: int | None
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
    status_path: Path
    frame: bytes  # length-prefixed, as the launcher reads it
    cpus: frozenset[int] | None  # what the job is bound to, if it is


def launch_frame(
    job_id: int,
    status_path: Path,
    run_as: RunAs,
    cwd: str,
    stdio: tuple[str, str, str],
    open_mode: str,
    command: list[str],
    env: dict[str, str],
) -> bytes:
    """One request to the launcher (the format is described in shepherd.pl)."""
    fields = [
        str(job_id), str(status_path), run_as.uid, run_as.gid, run_as.groups, cwd, *stdio, open_mode,
        str(len(command)), *command, *(f"{name}={value}" for name, value in env.items()),
    ]
    payload = b"\0".join(os.fsencode(f) for f in fields)
    if payload.count(b"\0") != len(fields) - 1:
        # Every later field would shift: a path could become the command, a value a variable.
        raise ValueError("a path, argument or environment variable contains a NUL character")
    return len(payload).to_bytes(4, "big") + payload


class Launcher:
    """The worker's fork server (`shepherd.pl --serve`): every job's shepherd is a fork of it.

    One perl start per worker instead of one per job. The launcher is the worker's child; the
    shepherds are not (they are the launcher's, and outlive it), so the worker watches them by
    pidfd. A request answered by no reply never started (see shepherd.pl), which makes a dead
    launcher safe to replace and its unanswered requests safe to send again.
    """

    def __init__(self, perl: str, status_dir: Path, lock_fd: int, log_path: Path, timeout: float) -> None:
        self._perl = perl
        self._status_dir = status_dir
        self._lock_fd = lock_fd
        self._log_path = log_path
        self._timeout = timeout
        self.pid = 0
        self._requests = -1
        self._replies = -1
        self._mask: set[int] | None = None
        # Jobs without CPUs of their own may use what the worker may, as they did as its children.
        self._free_mask = os.sched_getaffinity(0)

    def start(self) -> None:
        request_read, request_write = os.pipe()
        reply_read, reply_write = os.pipe()
        try:
            log_fd = os.open(self._log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o600)
            try:
                # A fixed environment: the launcher is root, and whatever the worker's environment
                # holds (LD_PRELOAD, PERL5OPT) must not act in it.
                self.pid = os.posix_spawn(
                    self._perl,
                    ["conductor-launcher", SHEPHERD, "--serve", str(self._status_dir), OPEN_FLAGS, TITLE_PADDING],
                    SHEPHERD_ENVIRONMENT,
                    file_actions=[
                        (os.POSIX_SPAWN_DUP2, request_read, 0),
                        (os.POSIX_SPAWN_DUP2, reply_write, 1),
                        (os.POSIX_SPAWN_DUP2, log_fd, 2),
                        (os.POSIX_SPAWN_DUP2, self._lock_fd, 3),
                    ],
                    # Out of the worker's process group: a ^C to the worker's terminal is not for it.
                    setsid=True,
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
        self._mask = None
        log.info("job launcher started (pid %d)", self.pid)

    def close(self) -> None:
        """End the launcher (EOF on its requests); the shepherds it made keep their jobs running."""
        if not self.pid:
            return
        os.close(self._requests)
        self._requests = -1
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            with contextlib.suppress(ChildProcessError):
                if os.waitpid(self.pid, os.WNOHANG)[0] == 0:
                    time.sleep(0.01)
                    continue
            break
        else:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(self.pid, 0)
        os.close(self._replies)
        self._replies = -1
        self.pid = 0

    def launch(self, requests: list[LaunchRequest]) -> dict[int, int | str]:
        """Start the jobs' shepherds: for each job its shepherd's pid, or why none was started."""
        results: dict[int, int | str] = {}
        groups: dict[frozenset[int] | None, list[LaunchRequest]] = {}
        for request in requests:
            groups.setdefault(request.cpus, []).append(request)
        for cpus, group in groups.items():
            unanswered = self._launch_group(cpus, group, results)
            if unanswered:
                # Provably never started: safe to send again, once, to a new launcher.
                log.warning("the job launcher died; relaunching jobs %s", [r.job_id for r in unanswered])
                for request in self._launch_group(cpus, unanswered, results):
                    results[request.job_id] = f"the job launcher died before starting the job (see {self._log_path})"
        return results

    def _launch_group(
        self, cpus: frozenset[int] | None, group: list[LaunchRequest], results: dict[int, int | str]
    ) -> list[LaunchRequest]:
        """Launch jobs of one CPU set; returns those the launcher died without starting."""
        waiting = {request.job_id: request for request in group}
        try:
            if not self.pid:
                self.start()
            mask = set(cpus) if cpus is not None else self._free_mask
            if mask != self._mask:
                # A fork inherits it, and so the shepherd and the job are bound before they run.
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
            if self._exchange(b"".join(request.frame for request in group), waiting, results):
                return []
            self._reap()
            return list(waiting.values())
        except Exception as exc:  # noqa: BLE001 - whatever it was, nothing may run unsupervised
            log.exception("job launcher failed")
            self._abandon(waiting.values())
            for job_id in waiting:
                results[job_id] = f"job launcher failed: {exc}"
            return []

    def _exchange(self, data: bytes, waiting: dict[int, LaunchRequest], results: dict[int, int | str]) -> bool:
        """Send the requests and collect replies until all came (True) or the launcher ended."""
        view = memoryview(data)
        poller = select.poll()  # not select(): a worker with many jobs holds fds beyond 1024
        poller.register(self._replies, select.POLLIN)
        poller.register(self._requests, select.POLLOUT)
        pending = b""
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
                    # Every writer is gone: the launcher and each shepherd that had yet to reply.
                    return False
                *lines, pending = (pending + chunk).split(b"\n")
                for line in lines:
                    tag, _, answer = line.decode(errors="replace").partition(" ")
                    request = waiting.pop(int(tag), None) if tag.isdigit() else None
                    if request is None:
                        log.warning("unexpected reply from the job launcher: %r", line)
                    elif answer.isdigit():
                        results[request.job_id] = int(answer)
                    else:
                        results[request.job_id] = answer.removeprefix("error ")
        return True

    def _reap(self) -> None:
        """Forget a launcher whose replies ended (it is dead, or dying)."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self.pid, 0)
        for fd in (self._requests, self._replies):
            if fd >= 0:
                os.close(fd)
        self._requests = self._replies = -1
        self.pid = 0
        self._mask = None

    def _abandon(self, unanswered: Iterable[LaunchRequest]) -> None:
        """Give the launcher up with requests in flight, and make sure none of those runs."""
        if self.pid:
            # The launcher, and the shepherds not yet in sessions of their own.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGKILL)
            # Closing the replies turns a late reply into EPIPE, which is that shepherd's no-go.
            self._reap()
        # A shepherd whose reply got into the pipe just before has its title: end it and its job.
        titles = {(SHEPHERD_TITLE + str(request.status_path)).encode() for request in unanswered}
        for pid in _pids_with_title(titles):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)


class Worker:
    def __init__(self, store: Store, bus: Bus, config: NodeConfig) -> None:
        self.store = store
        self.bus = bus
        self.config = config
        # host:pid:random, so a restart on the same host can tell a dead predecessor apart.
        self.instance = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
        self.scripts_dir = config.home / "scripts"
        self.status_dir = config.home / "run"
        self.jobs: dict[int, RunningJob] = {}
        self._finished: list[Finish] = []
        # Ended processes whose outcome is decided at the next flush, with one query for all of
        # them: whether a cancel or time limit was asked for that this worker has not yet seen.
        self._exited: list[RunningJob] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._stopping = False
        self.taken_over = False  # another instance claimed the node: this one must not go on
        self._perl = shutil.which("perl") or "/usr/bin/perl"
        self._is_root = os.geteuid() == 0
        self._array_bounds: dict[int, tuple[int, int, int, int]] = {}
        self._lock_fd = -1
        self._launcher: Launcher | None = None

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
            self._launcher = Launcher(
                self._perl,
                self.status_dir,
                self._lock_fd,
                self.config.home / "launcher.log",
                min(LAUNCH_TIMEOUT, max(self.config.heartbeat_timeout / 2, 1.0)),
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
            # The jobs keep running: a restarted worker re-adopts them.
            with contextlib.suppress(Exception):
                self.store.set_node_down(self.config.name, self.instance, "worker stopped")
            self.bus.publish(SCHEDULER)

    async def _wait_for_launch_lock(self) -> bool:
        """Wait for the launch lock; False when stopped first (then nothing may be adopted)."""
        waited_since = time.monotonic()
        while not self._take_launch_lock():
            if self._stopping:
                return False
            if time.monotonic() - waited_since > 5:
                log.warning("waiting for the job launcher of a previous worker of this home to exit")
                waited_since = time.monotonic()
            await asyncio.sleep(0.05)
        return True

    def _take_launch_lock(self) -> bool:
        """Hold the lock the launcher and its shepherds share until each has its status file.

        A predecessor's launcher may still be making shepherds for the requests it had read; once
        the lock is free, every job it started has a status file, so a claimed job without one
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
        for row in rows:
            try:
                requests.append(self._prepare(row))
            except Exception as exc:  # noqa: BLE001 - one bad job must not stop the node
                log.exception("launch of job %s failed", row["id"])
                self._launch_failed(row, str(exc))
        results = self._launcher.launch(requests)
        by_id = {int(row["id"]): row for row in rows}
        pids: dict[int, int] = {}
        for request in requests:
            row = by_id[request.job_id]
            outcome = results.get(request.job_id, "no reply from the job launcher")
            if isinstance(outcome, str):
                log.error("launch of job %s failed: %s", request.job_id, outcome)
                self._launch_failed(row, outcome)
                continue
            job = RunningJob(
                job_id=request.job_id,
                pid=outcome,
                status_path=request.status_path,
                start_time=aware(row["start_time"]) or utcnow(),
                time_limit=row["time_limit"],
                kill_state=row.get("kill_state"),
                restart_count=row.get("restart_count") or 0,
            )
            try:
                self._watch(job)
            except OSError as exc:
                # Nothing may run unsupervised.
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(job.pid, signal.SIGKILL)
                log.error("launch of job %s failed: cannot watch its process: %s", job.job_id, exc)
                self._launch_failed(row, f"cannot watch the job's process: {exc}")
                continue
            if job.pidfd >= 0:
                self.jobs[job.job_id] = job
            pids[job.job_id] = job.pid
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
        rather than run as anyone else.
        """
        if not self._is_root:
            try:
                me = pwd.getpwuid(os.geteuid())
            except KeyError:
                return RunAs("", "", "", None, str(os.geteuid()))
            return RunAs("", "", "", me.pw_dir, me.pw_name)
        name = str(row["user_name"])
        try:
            entry = pwd.getpwnam(name)
        except KeyError as exc:
            raise RuntimeError(f"user '{name}' does not exist on node {self.config.name}") from exc
        if row.get("uid") is not None and int(row["uid"]) != entry.pw_uid:
            raise RuntimeError(
                f"user '{name}' has uid {entry.pw_uid} on node {self.config.name} but uid {row['uid']} "
                "where the job was submitted"
            )
        if entry.pw_uid == 0 and not self.config.allow_root_jobs:
            raise RuntimeError(
                f"jobs as root are not allowed on node {self.config.name} (CONDUCTOR_ALLOW_ROOT_JOBS is off)"
            )
        groups = os.getgrouplist(name, entry.pw_gid)
        gid = int(row["gid"]) if row.get("gid") is not None and int(row["gid"]) in groups else entry.pw_gid
        return RunAs(str(entry.pw_uid), str(gid), ",".join(str(g) for g in groups), entry.pw_dir, name)

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
        script_path = self.scripts_dir / f"job_{job_id}.sh"
        script: str = row["script"]
        fd = os.open(script_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o700)
        try:
            # The job's user reads and runs it; no one else reads it (scripts/ is not listable).
            if uid:
                os.fchown(fd, int(uid), int(gid))
            os.fchmod(fd, 0o700)
            os.write(fd, script.encode())
        finally:
            os.close(fd)
        command = [str(script_path)] if script.startswith("#!") else ["/bin/bash", str(script_path)]
        command += json.loads(row.get("extra") or "{}").get("argv") or []
        paths = job_paths(row, self.config.name)
        env = job_environment(
            row, node=self.config.name, cpu_ids=row["cpu_ids"] or "", home=home, array_bounds=self._bounds(row)
        )
        # The account the process really runs as, whatever the submitted environment said.
        env["USER"] = env["LOGNAME"] = run_as.user
        if home:
            env["HOME"] = home
        status_path = self.status_dir / f"job_{job_id}.status"
        # The job's environment travels in the request and is set only after the shepherd has
        # dropped privileges: a user's LD_PRELOAD or PERL5OPT must not run code as root.
        frame = launch_frame(
            job_id,
            status_path,
            run_as,
            row["work_dir"],
            (paths.stdin, paths.stdout, paths.stderr),
            row.get("open_mode") or "truncate",
            command,
            env,
        )
        cpus = None
        if self.config.cpu_binding and row.get("cpu_ids"):
            cpus = frozenset(parse_cpu_list(row["cpu_ids"]))
        return LaunchRequest(job_id, status_path, frame, cpus)

    def _watch(self, job: RunningJob) -> None:
        """Follow the job's shepherd; one already gone is reported at once (its status file has
        the outcome)."""
        assert self._loop is not None
        try:
            job.pidfd = os.pidfd_open(job.pid)
        except ProcessLookupError:
            self._on_exit(job)
            return
        # Shepherds are reaped by the kernel as they end: by now the pid may be another's.
        if not _is_shepherd(job.pid, job.status_path):
            self._on_exit(job)
            return
        self._loop.add_reader(job.pidfd, self._on_exit, job)

    # ---------------------------------------------------------------- endings
    def _on_exit(self, job: RunningJob) -> None:
        assert self._loop is not None
        if job.pidfd >= 0:
            self._loop.remove_reader(job.pidfd)
            os.close(job.pidfd)
            job.pidfd = -1
        # Slurm ends every process of a job when its batch script ends.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(job.pid, signal.SIGKILL)
        if self.jobs.get(job.job_id) is job:
            self.jobs.pop(job.job_id)
        if job.orphaned:
            return  # the job's state is no longer this process's to report
        self._exited.append(job)
        if self._wake is not None:
            self._wake.set()

    def _outcome(self, job: RunningJob) -> Finish:
        status = read_status(job.status_path)
        rusage = status.rusage
        kill_state = job.kill_state
        if status.error is not None:
            return Finish(job.job_id, JobState.FAILED, "1:0", Reason.NONE.value, status.error, rusage)
        if status.exit is None:
            # Only a SIGKILL keeps a shepherd from writing the status (it survives the rest).
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
            message = f"job process ended without an exit status (signal {sig})"
            return Finish(job.job_id, JobState.FAILED, exit_code, Reason.RAISED_SIGNAL.value, message, rusage)
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
        for finish in batch:
            if finish.job_id in self.jobs:
                continue  # a report about an earlier run; the status file is the new run's
            with contextlib.suppress(FileNotFoundError):
                finish_status = self.status_dir / f"job_{finish.job_id}.status"
                finish_status.unlink()
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
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(job.pid, sig)

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
        """Signal a job without ending it: the batch shell alone (`B:`), or every process of
        the job but its shepherd, which must survive to report the exit status."""
        if batch_only:
            child = read_status(job.status_path).child
            if child:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(child, sig)
            return
        if sig in SHEPHERD_SURVIVES:
            self._signal_group(job, sig)
            return
        for pid in _group_members(job.pid):
            if pid != job.pid:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, sig)

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
            status_path = self.status_dir / f"job_{row['id']}.status"
            status = read_status(status_path)
            job = RunningJob(
                job_id=row["id"],
                # Killed between spawn and both records, the worker left a shepherd nobody
                # knows the pid of: find it by its command line rather than call the job gone.
                pid=status.pid or row["pid"] or _find_shepherd(status_path),
                status_path=status_path,
                start_time=aware(row["start_time"]) or utcnow(),
                time_limit=row["time_limit"],
                kill_state=row["kill_state"],
                restart_count=row.get("restart_count") or 0,
            )
            if status.exit is not None or status.error is not None:
                self._exited.append(job)
            elif job.pid and _is_shepherd(job.pid, status_path):
                self.jobs[job.job_id] = job
                self._watch(job)
                log.info("re-adopted job %s (pid %s)", job.job_id, job.pid)
            elif status.pid is None and not status_path.exists():
                # Every shepherd given its go has its status file once the launch lock is ours
                # (run() waited for it) and no shepherd lives: the predecessor died between
                # claiming the job and starting it. The script never ran, so it may run now, once.
                never_started.append(job.job_id)
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

    def _kill_strays(self, ours: set[int]) -> None:
        """At start: kill every live job process of this home that is not one of `ours`."""
        for status_path in self.status_dir.glob("job_*.status"):
            digits = status_path.name[len("job_") : -len(".status")]
            if not digits.isdigit() or int(digits) in ours:
                continue
            status = read_status(status_path)
            if status.pid and _is_shepherd(status.pid, status_path):
                log.warning("job %s no longer runs on this node (its node was declared dead): killing it", digits)
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(status.pid, signal.SIGKILL)
            status_path.unlink(missing_ok=True)


@dataclass
class ShepherdStatus:
    pid: int | None = None
    exit: tuple[int, int] | None = None
    error: str | None = None
    child: int | None = None  # the batch shell (what `--signal=B:` reaches)
    rusage: dict[str, float] | None = None  # the job's CPU times, from the shepherd's `times`


def read_status(path: Path) -> ShepherdStatus:
    status = ShepherdStatus()
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return status
    for line in text.splitlines():
        kind, _, rest = line.partition(" ")
        if kind == "start" and rest.isdigit():
            status.pid = int(rest)
        elif kind == "child" and rest.isdigit():
            status.child = int(rest)
        elif kind == "exit":
            # "exit CODE SIG", or with the job's user and system CPU seconds after them.
            parts = rest.split()
            if len(parts) in (2, 4) and parts[0].isdigit() and parts[1].isdigit():
                status.exit = (int(parts[0]), int(parts[1]))
                with contextlib.suppress(ValueError):
                    if len(parts) == 4:
                        status.rusage = {"utime": float(parts[2]), "stime": float(parts[3])}
        elif kind == "error":
            status.error = rest
    return status


def _group_members(pgid: int) -> list[int]:
    """The processes of a process group (a job), read from /proc."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            # Field 5 of stat is the pgrp; the command name (field 2) may contain spaces.
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if len(fields) > 2 and fields[2] == str(pgid):
            members.append(int(entry.name))
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


def _is_shepherd(pid: int, status_path: Path) -> bool:
    """Whether `pid` is still the shepherd of this job (and not a reused pid)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    path = os.fsencode(status_path)
    # The bare path is the argument of a shepherd started by an earlier version (before the
    # launcher), which a worker upgraded while jobs run must still re-adopt.
    return (SHEPHERD_TITLE.encode() + path) in cmdline or path in cmdline


def _pids_with_title(titles: set[bytes]) -> list[int]:
    """The processes whose command line is one of `titles` (shepherds, see SHEPHERD_TITLE)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            first = Path(f"/proc/{entry}/cmdline").read_bytes().partition(b"\0")[0]
        except OSError:
            continue
        if first in titles:
            found.append(int(entry))
    return found


def _find_shepherd(status_path: Path) -> int:
    """The pid of the live shepherd writing `status_path`, or 0."""
    for entry in os.listdir("/proc"):
        if entry.isdigit() and _is_shepherd(int(entry), status_path):
            return int(entry)
    return 0


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

