"""One node's agent: runs every job placed on the node as its own process, many at once.

One asyncio loop supervises all jobs. Every job is a child of the worker's launcher
(`launcher.py`, started once: it spawns each through the job starter, or forks), in a session
and process group of its own. The loop hands the launcher its jobs and goes on; the launcher
says as it starts each. It is the jobs' parent: it reaps each, writes its exit status (and CPU
times) to the job's status file and tells the worker. Jobs, and the launcher, survive a restart of the
worker, which re-adopts the jobs from their status files.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta

from conductor.bus import SCHEDULER, Bus, node_topic
from conductor.domain.arrays import parse_array_spec
from conductor.domain.cpuset import parse_cpu_list
from conductor.domain.job import Job, JobRun
from conductor.domain.jobfiles import job_environment, job_paths
from conductor.domain.states import JobState
from conductor.domain.usage import Usage
from conductor.store import Finish, aware, is_disconnect, utcnow
from conductor.worker import adoption, enforcement, notices
from conductor.worker.accounts import Accounts
from conductor.worker.config import NodeConfig
from conductor.worker.containment import Limits
from conductor.worker.detection import detect
from conductor.worker.identity import (
    instance_may_be_alive,
    is_process,
    launcher_alive,
    signal_group,
    signal_process,
    signal_steps,
)
from conductor.worker.launcher_client import Launcher, LaunchRequest, Started, launch_frame
from conductor.worker.outcome import OPEN_KILL_STATES, decide_outcome, launch_failure, report, settled_kill_state
from conductor.worker.ports import NodeStore
from conductor.worker.protocol import LOCK_FILE, JobStatus
from conductor.worker.running import RunningJob
from conductor.worker.spool import Spool, exit_report, read_status
from conductor.worker.starter import job_starter
from conductor.worker.steps import ENV as STEP_RECORDS
from conductor.worker.steps import StepRecords

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

# A launch left unanswered this long gives the launcher up (it is killed; the jobs it did not
# start fail, see Launcher). The worker's loop does not wait for launches, but for room in the
# launcher's pipe, and at its stop.
LAUNCH_TIMEOUT = 10.0
# A job watched by pidfd whose process ended: how long its exit line is awaited while the
# launcher that is its parent (and writes the line once it has reaped it) lives.
EXIT_LINE_WAIT = 10.0


class ProcSignaller:
    """Signals jobs' processes, checking first that they are still the jobs' (see identity.py).
    `sruns`: the (pid, start ticks) a job's sruns registered (StepRecords.sruns)."""

    def __init__(self, sruns: Callable[[int, int | None], list[tuple[int, int]]]) -> None:
        self._sruns = sruns

    def group(self, pid: int, ticks: int, sig: int) -> None:
        signal_group(pid, ticks, sig)

    def batch(self, pid: int, ticks: int, sig: int) -> None:
        signal_process(pid, ticks, sig)

    def steps(self, job: RunningJob, sig: int) -> None:
        sruns = self._sruns(job.job_id, job.uid)
        if sruns:
            signal_steps(job.pid, job.ticks, sig, sruns)

    def full(self, job: RunningJob, sig: int) -> None:
        sruns = self._sruns(job.job_id, job.uid)
        if sruns:
            signal_steps(job.pid, job.ticks, sig, sruns, everything=True)
        else:
            signal_group(job.pid, job.ticks, sig)


class Worker:
    """Registration and heartbeats, wake-ups, the run loop, claiming and launching placed jobs,
    and following them to their end (the decisions live in outcome, enforcement and adoption)."""

    def __init__(self, store: NodeStore, bus: Bus, config: NodeConfig) -> None:
        self.store = store
        self.bus = bus
        self.config = config
        # host:pid:random, so a restart on the same host can tell a dead predecessor apart.
        self.instance = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
        self.spool = Spool(config.home)
        self.scripts_dir = self.spool.scripts_dir
        self.status_dir = self.spool.status_dir
        self.signaller = ProcSignaller(lambda job_id, uid: self.steps.sruns(job_id, uid))
        self.jobs: dict[int, RunningJob] = {}
        # The jobs whose end the current launcher reports, by the tag of their launch.
        self._tagged: dict[int, RunningJob] = {}
        # Claimed jobs sent to the launcher, until it says it started them (or could not).
        self._launching: dict[int, Job] = {}
        self._unrecorded: dict[int, int] = {}  # started jobs whose pid is yet to be recorded
        self._wake_at = 0.0  # when the loop wakes by itself next (time.monotonic())
        self._finished: list[Finish] = []
        # Ended processes whose outcome is decided at the next flush, with one query for all of
        # them: whether a cancel or time limit was asked for that this worker has not yet seen.
        self._exited: list[RunningJob] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._stopping = False
        self.taken_over = False  # another instance claimed the node: this one must not go on
        self._is_root = os.geteuid() == 0
        self._array_bounds: dict[int | None, tuple[int, int, int, int]] = {}
        self.users = Accounts(self._is_root, config)
        self._lock_fd = -1
        self._launcher: Launcher | None = None
        # Each job's group of processes: its limits, its containment, its usage (containment.py).
        self.containment = detect(
            config.containment, config.cgroup_root, config.name, config.home, config.kill_over_memory
        )
        log.info("node %s: containment %s: %s", config.name, self.containment.mode, self.containment.describe())
        self._limits: dict[int, Limits] = {}
        self.steps = StepRecords(self.spool.steps_dir)
        self._notice_paths: dict[int, tuple[str, int]] = {}  # job -> (error file, owner's uid)

    def _status_path(self, job_id: int) -> str:
        return self.spool.status_path(job_id)

    # --------------------------------------------------------------- lifecycle
    def register(self) -> None:
        """Claim the node; raises NodeConflict when a live worker already has the name."""
        self.spool.make_dirs()
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
            containment=self.containment.mode,
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
            self.spool.find_spares()
            self._launcher = Launcher(
                self.status_dir,
                self._lock_fd,
                self.config.home / "launcher.log",
                min(LAUNCH_TIMEOUT, max(self.config.heartbeat_timeout / 2, 1.0)),
                watch=self._watch_launcher,
                warm=self._launcher_group(),
                starter=job_starter() if self.config.job_starter == "auto" else None,
                fence=self.config.fence_after,
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
        sampler = asyncio.create_task(self._sample_loop())
        try:
            while not self._stopping:
                self._wake.clear()
                self._tick()
                timeout = self._next_timeout()
                self._wake_at = time.monotonic() + timeout
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout)
        finally:
            for task in (heartbeat, sampler):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if self._launcher is not None:
                # The jobs it is starting run here: known, and recorded, before the worker goes.
                try:
                    self._launcher.drain()
                    self._launcher_events()
                except Exception:
                    log.warning("could not settle the last launches", exc_info=True)
            self._flush()
            for job in self.jobs.values():
                if job.pidfd >= 0:
                    self._loop.remove_reader(job.pidfd)
                    os.close(job.pidfd)
            if self._launcher is not None:
                self._launcher.close()
            if not self.taken_over:
                # The node's groups are another instance's now: it runs its jobs in them.
                with contextlib.suppress(Exception):
                    self.containment.close()
            if self._lock_fd >= 0:
                os.close(self._lock_fd)
                self._lock_fd = -1
            # The jobs keep running, and their launcher with them: a restarted worker re-adopts them.
            with contextlib.suppress(Exception):
                self.store.set_node_down(self.config.name, self.instance, "worker stopped")
            self.bus.publish(SCHEDULER)

    def _launcher_group(self) -> str | None:
        if not self.config.cgroup_warm:
            return None
        try:
            return self.containment.launcher_group()
        except OSError as exc:
            log.warning("no control group for the job launcher (%s): jobs may start up to an RCU grace period later", exc)
            return None

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
            fd = os.open(self.status_dir / os.fsdecode(LOCK_FILE), os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
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
        if self._launcher is not None and self._launcher.pending():
            self._launcher.expire()  # a launcher that stopped answering is given up
            self._launcher_events()
        self._flush()
        self.containment.tidy()
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
        timeout = enforcement.next_due(
            self.jobs.values(), time.time(), time.monotonic(), self.config.check_interval, self.config.kill_wait
        )
        due = self.containment.due()
        if due is not None:
            timeout = min(timeout, due)
        unanswered = self._launcher.deadline() if self._launcher is not None else None
        if unanswered is not None:
            timeout = min(timeout, max(unanswered - time.monotonic(), 0.0))
        return timeout

    async def _sample_loop(self) -> None:
        """Sample the running jobs' usage (AveRSS, MaxVMSize; the polling fallback's everything)."""
        while True:
            await asyncio.sleep(self.config.acct_interval)
            try:
                self.sample()
            except Exception:
                log.warning("usage sampling failed", exc_info=True)

    def sample(self) -> None:
        """Read the running jobs' usage so far, and record it (GET /jobs/{id} shows it)."""
        samples = self.containment.sample(list(self.jobs))
        usage = {job_id: s.usage.to_json() for job_id, s in samples.items() if s.usage is not None}
        if usage:
            try:
                self.store.record_usage(usage)
            except Exception:  # noqa: BLE001 - the next sample, or the end, records it
                log.warning("could not record the usage of %d running jobs", len(usage))

    async def _heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.heartbeat_interval)
            try:
                if not self.store.heartbeat(self.config.name, self.instance):
                    log.error("node %s was taken over by another worker; stopping", self.config.name)
                    self.taken_over = True
                    self.stop()
                    return
            except Exception:
                log.warning("heartbeat failed; retrying", exc_info=True)

    # ------------------------------------------------------------------ launch
    def _launch_placed(self) -> None:
        if self._launcher is None:
            return  # run() has yet to see a predecessor's launcher gone
        try:
            rows = self.store.claim_for_launch(self.config.name)
        except Exception:
            log.warning("could not claim placed jobs; retrying", exc_info=True)
            return
        if not rows:
            return
        requests: list[LaunchRequest] = []
        by_id: dict[int, Job] = {}
        for row in rows:
            try:
                request = self._prepare(row)
            except Exception as exc:
                log.exception("launch of job %s failed", row.id)
                self._launch_failed(row, str(exc))
                continue
            requests.append(request)
            by_id[request.job_id] = row
        self._launching.update(by_id)
        # Their outcomes come as the launcher replies (_on_launcher_output): this loop goes on
        # meanwhile, recording the ends of jobs and taking new placements while it starts these.
        self._launcher.submit(requests)
        self._launcher_events()

    def _started(self, outcomes: dict[int, Started | str]) -> tuple[list[RunningJob], list[RunningJob]]:
        """Take the launches settled: each job started now runs here, or failed to launch.
        Returns the jobs started, and those of them to follow by pid (started by a launcher
        that died before replying)."""
        started: list[RunningJob] = []
        unwatched: list[RunningJob] = []
        for job_id, outcome in outcomes.items():
            row = self._launching.pop(job_id, None)
            if row is None:
                continue
            if isinstance(outcome, str):
                log.error("launch of job %s failed: %s", job_id, outcome)
                self._launch_failed(row, outcome)
                continue
            job = RunningJob(
                job_id=job_id,
                pid=outcome.pid,
                status_path=self._status_path(job_id),
                start_time=aware(row.start_time) or utcnow(),
                time_limit=row.time_limit,
                ticks=outcome.ticks,
                tag=outcome.tag,
                kill_state=row.kill_state,
                restart_count=row.restart_count or 0,
                requeue=bool(row.requeue),
            )
            self.jobs[job_id] = job
            job.stderr, job.uid = self._notice_paths.pop(job_id, (None, None))
            self.containment.started(job_id, job.pid, job.ticks, self._limits.pop(job_id, Limits()))
            if outcome.tag:
                self._tagged[outcome.tag] = job
            else:
                unwatched.append(job)
            started.append(job)
            self._unrecorded[job_id] = job.pid
        return started, unwatched

    def _record_pids(self) -> None:
        """Record the pids of started jobs, only of those still running: a job seen to end has
        its end recorded next, and until then its status file keeps the "start" line that tells
        a restarted worker it ran. (Most of a burst of short jobs: a write of every row less.)"""
        pids = {job_id: pid for job_id, pid in self._unrecorded.items() if job_id in self.jobs}
        self._unrecorded.clear()
        if pids:
            try:
                self.store.record_pids(pids)
            except Exception:
                log.warning("could not record pids", exc_info=True)

    def _launch_failed(self, row: Job, message: str) -> None:
        self._limits.pop(row.id, None)
        self._notice_paths.pop(row.id, None)
        with contextlib.suppress(Exception):
            self.containment.finish(row.id)  # its group, if it got one
        self._finished.append(launch_failure(row.id, message, self.config.name, row.restart_count or 0))
        if self._wake is not None:
            self._wake.set()  # recorded at the next tick, now (it may come between ticks)

    @staticmethod
    def _notice_target(row: Job, stderr: str, uid: str) -> tuple[str, int]:
        """Where slurmstepd's notices about the job go (its error file) and whose file that
        must be (the user it runs as: `uid`, "" for the worker's own)."""
        path = stderr if os.path.isabs(stderr) else os.path.join(row.work_dir, stderr)
        return path, int(uid) if uid else os.geteuid()

    def _adopted_notice_target(self, job_id: int) -> tuple[str | None, int | None]:
        """The notice target of a job re-adopted after a restart, from its row as at its launch:
        never from its process, whose descriptors and owner the job controls (its standard
        error reopened on a file it may only read, a setuid program making /proc/PID root's)."""
        try:
            row = self.store.get_job(job_id)
            if row is None:
                return None, None
            return self._notice_target(row, job_paths(row, self.config.name).stderr, self.users.run_as(row).uid)
        except Exception as exc:  # noqa: BLE001 - no notice rather than no adoption
            log.warning("job %s: where its notices go is unknown (%s): none will be written", job_id, exc)
            return None, None

    def _bounds(self, row: Job) -> tuple[int, int, int, int] | None:
        array_job: int | None = row.array_job_id
        if row.array_task_id is None or not row.array_spec:
            return None
        if array_job not in self._array_bounds:
            indices = parse_array_spec(row.array_spec).indices
            steps = {b - a for a, b in zip(indices, indices[1:], strict=False)}
            step = steps.pop() if len(steps) == 1 else 1
            self._array_bounds[array_job] = (len(indices), indices[0], indices[-1], step)
        return self._array_bounds[array_job]

    def _prepare(self, row: Job) -> LaunchRequest:
        """Write the job's script and make its request to the launcher."""
        job_id = int(row.id)
        run_as = self.users.run_as(row)
        uid, gid, home = run_as.uid, run_as.gid, run_as.home
        script = row.script
        if script is None:  # the claim reads every column: a job without its script is a bug
            raise ValueError(f"job {job_id} was claimed without its script")
        script_path = self.spool.write_script(job_id, script, uid, gid)
        command = [script_path] if script.startswith("#!") else ["/bin/bash", script_path]
        extra = row.extra
        if extra and "argv" in extra:
            command += json.loads(extra).get("argv") or []
        paths = job_paths(row, self.config.name)
        env = job_environment(
            row, node=self.config.name, cpu_ids=row.cpu_ids or "", home=home, array_bounds=self._bounds(row),
            bound=bool(self.config.cpu_binding and row.cpu_ids),
        )
        # The account the process really runs as, whatever the submitted environment said.
        env["USER"] = env["LOGNAME"] = run_as.user
        # Where its sruns say what they ran (and run), made as the job's user's.
        env[STEP_RECORDS] = self.steps.clear(
            job_id, int(uid) if uid and uid.isdigit() else None, int(gid) if gid and gid.isdigit() else None
        )
        if home:
            env["HOME"] = home
        status_path = self._status_path(job_id)
        # The job's environment travels in the request and is set only after the job's process
        # has dropped privileges: a user's LD_PRELOAD or PERL5OPT must not run code as root.
        cpus = None
        if self.config.cpu_binding and row.cpu_ids:
            cpus = frozenset(parse_cpu_list(row.cpu_ids))
        limits = Limits(
            memory_bytes=row.allocated_memory_mb * 1024 * 1024 if row.allocated_memory_mb else None,
            cpus=cpus,
            max_pids=self.config.max_job_pids,
        )
        # Before the request: the launcher puts the job's process into the group before its go.
        procs = self.containment.create(job_id, limits)
        self._limits[job_id] = limits
        self._notice_paths[job_id] = self._notice_target(row, paths.stderr, uid)
        nproc = self.config.max_job_pids if not procs else None
        body = launch_frame(
            status_path,
            run_as,
            row.work_dir,
            (paths.stdin, paths.stdout, paths.stderr),
            row.open_mode or "truncate",
            command,
            env,
            self.spool.take_spare(),
            procs,
            nproc,
            self._deadline((aware(row.start_time) or utcnow()).timestamp(), row.time_limit),
        )
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
        """Take the launches settled, the ends the launcher reported, and the jobs it died
        before reporting (in that order: a job's end may come in the same read as its start)."""
        assert self._launcher is not None
        started, unwatched = self._started(self._launcher.outcomes())
        exits, lost = self._launcher.events()
        for tag, outcome in exits:
            job = self._tagged.pop(tag, None)
            if job is not None:
                self._ended(job, exit_report(outcome, job.pid))
        for tag in lost:
            job = self._tagged.pop(tag, None)
            if job is None:
                continue
            job.tag = 0
            if job.orphaned:
                continue  # killed already, and no longer this worker's to report
            # Its launcher is gone: its end shows by pidfd, and comes without an exit status.
            self._watch_pid(job)
        for job in unwatched:
            self._watch_pid(job)
        self._record_pids()
        self._retime(started)

    def _retime(self, started: list[RunningJob]) -> None:
        """Jobs started since the loop last chose how long to sleep: wake it sooner if one of
        them is due sooner (a time limit, a warning signal)."""
        running = [job for job in started if job.job_id in self.jobs]
        if not running or self._wake is None:
            return
        now = time.monotonic()
        due = enforcement.next_due(running, time.time(), now, self.config.check_interval, self.config.kill_wait)
        if now + due < self._wake_at:
            self._wake.set()

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
        if not is_process(job.pid, job.ticks):
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
            if now < deadline and launcher_alive(job.launcher):
                assert self._loop is not None
                self._loop.call_later(0.02, self._await_exit_line, job, deadline)
                return
        self._ended(job, status)

    def _ended(self, job: RunningJob, status: JobStatus | None) -> None:
        if self.jobs.get(job.job_id) is job:
            self.jobs.pop(job.job_id)
        # Its figures, then nothing it started survives it (setsid, double forks: the group
        # holds them all).
        try:
            job.usage = self.containment.finish(job.job_id)
        except Exception:
            log.warning("could not read or end the group of job %s", job.job_id, exc_info=True)
        steps = self.steps.collect(job.job_id, job.uid)
        if steps:
            job.usage = replace(job.usage or Usage(), steps=steps)
        if job.orphaned:
            return  # the job's state is no longer this process's to report
        job.status = status
        self._exited.append(job)
        if self._wake is not None:
            self._wake.set()

    def _outcome(self, job: RunningJob) -> Finish:
        status = job.status if job.status is not None else read_status(job.status_path)
        finish = decide_outcome(job.job_id, status, job.kill_state, job.usage, requeue=job.requeue)
        # Once the job is over: written while it runs, its own writes at its offset in the same
        # file (opened without O_APPEND) would overwrite them.
        if job.notice is not None:
            notices.write_notice(job.stderr, job.uid, job.notice)
        if finish.state == JobState.OUT_OF_MEMORY and job.usage is not None:
            notices.write_notice(job.stderr, job.uid, notices.oom_notice(job.job_id, job.usage.oom_kills))
        return report(finish, self.config.name, job.restart_count)

    def _notify(self, job: RunningJob, kind: str) -> None:
        """slurmstepd's line for the job's error file as its time limit or a cancel ends it."""
        if kind == "timeout":
            job.notice = notices.time_limit_notice(job.job_id, self.config.name)
        else:
            job.notice = notices.cancel_notice(job.job_id, self.config.name)

    def _decide_exited(self) -> None:
        if not self._exited:
            return
        # A requeue (PENDING) may since have been overridden by a cancel: read that too.
        unknown = [job.job_id for job in self._exited if job.kill_state in OPEN_KILL_STATES]
        try:
            requested = self.store.kill_states(unknown) if unknown else {}
        except Exception:  # noqa: BLE001 - decide once the database answers again
            log.warning("could not read kill requests of %d ended jobs; will retry", len(unknown))
            return
        exited, self._exited = self._exited, []
        for job in exited:
            job.kill_state = settled_kill_state(job.kill_state, job.job_id, requested)
            self._finished.append(self._outcome(job))

    def _flush(self) -> None:
        self._decide_exited()
        if not self._finished:
            return
        batch, self._finished = self._finished, []
        try:
            self.store.finish(batch)
        except Exception:
            log.warning("could not record %d finished jobs; will retry", len(batch), exc_info=True)
            self._finished = batch + self._finished
            return
        jobs, spool = self.jobs, self.spool
        for finish in batch:
            job_id = finish.job_id
            if job_id in jobs:
                continue  # a report about an earlier run; the files are the new run's
            # Kept for a later job rather than deleted: reusing a file costs less than making one.
            spool.recycle(job_id)
        self.bus.publish(SCHEDULER)

    # ------------------------------------------------------------------- kills
    def _enforce_kills(self, rows: list[JobRun] | None = None) -> None:
        changed = enforcement.enforce(
            self.jobs,
            rows,
            self.config.name,
            self.store,
            self.signaller,
            self.config.kill_wait,
            time.time(),
            time.monotonic(),
            self._notify,
        )
        if self._launcher is not None:
            for job in changed:
                if job.tag:
                    self._launcher.set_limit(job.tag, self._deadline(job.start_time.timestamp(), job.time_limit))

    def _deadline(self, start: float, time_limit: int | None) -> tuple[float, float] | None:
        """What the launcher enforces once the worker is gone: the job's deadline, the kill wait."""
        return None if time_limit is None else (start + time_limit, self.config.kill_wait)

    def _signal_group(self, job: RunningJob, sig: int) -> None:
        self.signaller.group(job.pid, job.ticks, sig)

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
        adoption.kill_strays({row.id for row in rows if row.launched}, self.spool, self.signaller, is_process)
        plan = adoption.plan_adoption(rows, self._status_path, read_status, _is_running, utcnow())
        adoption.settle(plan, adoption.wait_for_exit_line)
        for job in plan.running:
            self.jobs[job.job_id] = job
            job.stderr, job.uid = self._adopted_notice_target(job.job_id)
            timed_out = read_status(job.status_path).timed_out
            if timed_out is not None and job.kill_state is None:
                # Its launcher ended it at its limit while no worker was there (it may be
                # running its SIGTERM trap): it ends TIMEOUT, with the notice of that moment.
                job.kill_state = JobState.TIMEOUT.value
                job.notice = notices.time_limit_notice(job.job_id, self.config.name, datetime.fromtimestamp(timed_out))
            self.containment.started(job.job_id, job.pid, job.ticks, Limits())
            self._watch_pid(job)
            log.info("re-adopted job %s (pid %s)", job.job_id, job.pid)
        for job in plan.ended:
            with contextlib.suppress(Exception):
                job.usage = self.containment.finish(job.job_id)
        # Groups of jobs that ended (or left this node) while no worker watched: whatever is
        # left in them is killed.
        adoption.kill_leftovers(self.containment, {job.job_id for job in plan.running})
        self._exited.extend(plan.ended)
        adoption.hand_back(plan, self.config.name, self.store)
        self._flush()
        return True

    # ---------------------------------------------------- jobs taken from this node
    def _rows_of_node(self) -> list[JobRun] | None:
        """What the database says runs on this node; None without jobs or without a database."""
        if not self.jobs:
            return None
        try:
            return self.store.running_on_node(self.config.name)
        except Exception as exc:  # noqa: BLE001 - no news is no reason to kill anything
            log.warning("could not read this node's jobs (%s)", exc)
            return None

    def _kill_orphans(self, rows: list[JobRun]) -> None:
        before = set(self.jobs)
        adoption.kill_orphans(self.jobs, rows, self.spool, self.signaller)
        for job_id in before - set(self.jobs):
            with contextlib.suppress(Exception):
                self.containment.finish(job_id)


def _is_running(pid: int, ticks: int) -> bool:
    return is_process(pid, ticks, running=True)


def run_in_thread(worker: Worker, on_error: Callable[[BaseException], None]) -> threading.Thread:
    """Run the worker's loop in a thread of its own (the all-in-one process)."""

    def target() -> None:
        try:
            asyncio.run(worker.run())
        except BaseException as exc:
            log.exception("worker stopped with an error")
            on_error(exc)

    thread = threading.Thread(target=target, name=f"worker-{worker.config.name}", daemon=True)
    thread.start()
    return thread
