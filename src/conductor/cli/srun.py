"""`conductor srun`: run a job step's tasks inside a batch job, as srun does there.

Inside a job (SLURM_JOB_ID set) the allocation already exists on this node, so a step is just
`ntasks` local copies of the command, each with its SLURM_PROCID/LOCALID/NODEID and step
variables, their output sent where -o/-e/--label say. Outside a job srun would first ask for an
allocation; that is not supported here and says so.
"""

from __future__ import annotations

import os
import signal
import stat
import sys

from conductor.cli.common import SLURM_VERSION, UsageError, run
from conductor.cli.getopt import Option, OptionTable, getopt_long

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

PROG = "srun"

# Options we act on, and the many we accept so that scripts written for Slurm run unchanged.
OPTIONS = OptionTable(
    [
        Option("ntasks", ("ntasks",), "n", "required"),
        Option("nodes", ("nodes",), "N", "required"),
        Option("cpus_per_task", ("cpus-per-task",), "c", "required"),
        Option("output", ("output",), "o", "required"),
        Option("error", ("error",), "e", "required"),
        Option("input", ("input",), "i", "required"),
        Option("label", ("label",), "l"),
        Option("unbuffered", ("unbuffered",), "u"),
        Option("job_name", ("job-name",), "J", "required"),
        Option("chdir", ("chdir", "workdir"), "D", "required"),
        Option("export", ("export",), None, "required"),
        Option("kill_on_bad_exit", ("kill-on-bad-exit",), "K", "optional"),
        Option("wait", ("wait",), "W", "required"),
        Option("quiet", ("quiet",), "Q"),
        Option("verbose", ("verbose",), "v"),
        Option("version", ("version",), "V"),
        Option("help", ("help",), "h"),
        Option("usage", ("usage",), None),
        Option("jobid", ("jobid",), None, "required"),
        Option("ntasks_per_node", ("ntasks-per-node",), None, "required"),
        Option("time", ("time",), "t", "required"),
        Option("mem", ("mem",), None, "required"),
        Option("mem_per_cpu", ("mem-per-cpu",), None, "required"),
        Option("partition", ("partition",), "p", "required"),
        Option("account", ("account",), "A", "required"),
        Option("exclusive", ("exclusive",), None, "optional"),
        Option("overlap", ("overlap",), None),
        Option("oversubscribe", ("oversubscribe",), "s"),
        Option("mpi", ("mpi",), None, "required"),
        Option("cpu_bind", ("cpu-bind", "cpu_bind"), None, "required"),
        Option("mem_bind", ("mem-bind",), None, "required"),
        Option("distribution", ("distribution",), "m", "required"),
        Option("gres", ("gres",), None, "required"),
        Option("gpus", ("gpus",), "G", "required"),
        Option("gpus_per_task", ("gpus-per-task",), None, "required"),
        Option("gpus_per_node", ("gpus-per-node",), None, "required"),
        Option("nodelist", ("nodelist",), "w", "required"),
        Option("exclude", ("exclude",), "x", "required"),
        Option("constraint", ("constraint",), "C", "required"),
        Option("pty", ("pty",), None),
        Option("propagate", ("propagate",), None, "optional"),
        Option("hint", ("hint",), None, "required"),
        Option("threads_per_core", ("threads-per-core",), None, "required"),
        Option("signal", ("signal",), None, "required"),
        Option("qos", ("qos",), "q", "required"),
        Option("open_mode", ("open-mode",), None, "required"),
        Option("het_group", ("het-group",), None, "required"),
        Option("multi_prog", ("multi-prog",), None),
        Option("slurmd_debug", ("slurmd-debug",), None, "required"),
        Option("immediate", ("immediate",), "I", "optional"),
    ]
)

USAGE = "Usage: srun [OPTIONS(0)... [executable(0) [args(0)...]]]\n"

DESCRIBED: dict[str, tuple[str, str]] = {
    "account": ("name", "charge job to specified account (inside a job: ignored)"),
    "chdir": ("path", "change remote current working directory"),
    "constraint": ("list", "specify a list of constraints (ignored here)"),
    "cpu_bind": ("type", "task to cpu binding (ignored: the job's CPUs are bound)"),
    "cpus_per_task": ("ncpus", "number of cpus required per task"),
    "distribution": ("type", "distribution method for processes to nodes (ignored here)"),
    "error": ("err", "location of stderr redirection"),
    "exclude": ("hosts...", "exclude a specific list of hosts (ignored here)"),
    "exclusive": ("user|mcs", "allocate nodes in exclusive mode (ignored inside a job)"),
    "export": ("env_vars|NONE", "environment variables passed to the tasks"),
    "gpus": ("n", "count of GPUs required for the job (no GPUs here)"),
    "gpus_per_node": ("n", "number of GPUs required per node (no GPUs here)"),
    "gpus_per_task": ("n", "number of GPUs required per task (no GPUs here)"),
    "gres": ("list", "required generic resources (no GPUs here)"),
    "help": ("", "show this help message"),
    "het_group": ("value", "hetjob component allocation(s) in which to launch application"),
    "hint": ("hint", "bind tasks according to application hints (ignored here)"),
    "immediate": ("secs", "exit if resources not available in \"secs\" (ignored here)"),
    "input": ("in", "location of stdin redirection"),
    "job_name": ("jobname", "name of job step"),
    "jobid": ("id", "run under already allocated job (SLURM_JOB_ID is required here)"),
    "kill_on_bad_exit": ("0|1", "kill the step if any task terminates with a non-zero exit code"),
    "label": ("", "prepend task number to lines of stdout/err"),
    "mem": ("MB", "minimum amount of real memory (within the job's)"),
    "mem_bind": ("type", "bind memory to locality domains (ignored here)"),
    "mem_per_cpu": ("MB", "maximum amount of real memory per allocated cpu"),
    "mpi": ("type", "type of MPI being used (ignored here)"),
    "multi_prog": ("", "if set the program name specified is the configuration specification "
                   "for multiple programs"),
    "nodelist": ("hosts...", "request a specific list of hosts (ignored here)"),
    "nodes": ("N", "number of nodes on which to run (this cluster: 1)"),
    "ntasks": ("ntasks", "number of tasks to run"),
    "ntasks_per_node": ("n", "number of tasks to invoke on each node"),
    "open_mode": ("append|truncate", "output file open mode"),
    "output": ("out", "location of stdout redirection"),
    "overlap": ("", "allow the step to share the job's resources with other steps"),
    "oversubscribe": ("", "over-subscribe resources with other jobs (ignored here)"),
    "partition": ("partition", "partition requested (inside a job: ignored)"),
    "propagate": ("rlimits", "propagate all [or specific list of] rlimits (ignored here)"),
    "pty": ("", "run task zero in pseudo terminal"),
    "qos": ("qos", "quality of service (inside a job: ignored)"),
    "quiet": ("", "quiet mode (suppress informational messages)"),
    "signal": ("[R:]num[@time]", "send signal when time limit within time seconds (ignored here)"),
    "slurmd_debug": ("level", "slurmd debug level (ignored here)"),
    "threads_per_core": ("T", "number of threads per core to allocate (ignored here)"),
    "time": ("minutes", "time limit of the step"),
    "unbuffered": ("", "do not line-buffer stdout/err"),
    "usage": ("", "display brief usage message"),
    "verbose": ("", "verbose mode (multiple -v's increase verbosity)"),
    "version": ("", "output version information and exit"),
    "wait": ("sec", "seconds to wait after first task exits before killing job"),
}


def help_text() -> str:
    from conductor.cli.helptext import page

    return page(
        USAGE, OPTIONS, DESCRIBED, epilog="srun runs inside a batch job here (sbatch); it launches the job's tasks."
    )


SIGNAL_NAMES = {
    signal.SIGTERM: "Terminated",
    signal.SIGKILL: "Killed",
    signal.SIGINT: "Interrupt",
    signal.SIGSEGV: "Segmentation fault",
    signal.SIGABRT: "Aborted",
    signal.SIGUSR1: "User defined signal 1",
    signal.SIGUSR2: "User defined signal 2",
    signal.SIGHUP: "Hangup",
    signal.SIGBUS: "Bus error",
}


def _open_own(path: str, flags: int = os.O_RDWR) -> int | None:
    """`path` opened (made if missing), or None where it is anything but a regular file of this
    user's: a link, or another user's file, must neither receive what srun writes nor pass off
    as the job's (the node's directory of step files lets nobody else make one; the name used
    outside a node's job is in the shared temporary directory)."""
    try:
        fd = os.open(path, flags | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY, 0o600)
    except OSError:
        return None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode) or info.st_uid != os.getuid():
        os.close(fd)
        return None
    return fd


# A step number taken, in the job's step records: `{"step_taken": N}`.
_TAKEN = b'{"step_taken": '


def _next_step_id(job_id: str) -> int:
    """Steps of one job are numbered 0, 1, 2... across srun calls. Each srun takes the next in
    the step records the node made for this run of the job (so numbering starts at 0 for each
    run), locked while it counts those taken and writes its own; where there are none, in a
    counter file of this user's."""
    import fcntl
    import tempfile

    records = os.environ.get("CONDUCTOR_STEP_RECORDS")
    fd = _open_own(records, os.O_RDWR | os.O_APPEND) if records else None
    if fd is not None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            chunks = []
            while chunk := os.read(fd, 1 << 20):
                chunks.append(chunk)
            step = b"".join(chunks).count(_TAKEN)
            os.write(fd, _TAKEN + b"%d}\n" % step)
            return step
        finally:
            os.close(fd)
    fallback = os.path.join(tempfile.gettempdir(), f"conductor-steps-{os.getuid()}-{job_id}")
    fd = _open_own(fallback)
    if fd is None:
        raise UsageError(
            f"no step counter for the job: {fallback} is not a regular file of yours (someone else "
            "made it, or it cannot be made); no step is run"
        )
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        raw = os.read(fd, 32).decode().strip()
        step = int(raw) if raw.isdigit() else 0
        os.lseek(fd, 0, os.SEEK_SET)
        os.ftruncate(fd, 0)
        os.write(fd, str(step + 1).encode())
        return step
    finally:
        os.close(fd)


def _register_step(ended: bool = False) -> None:
    """Tell the node this srun runs (or, `ended`, no longer does), in the job's step records:
    a signal for the job's steps (sbatch --signal without B:, scancel --signal) goes to the
    processes this srun started, and one for every process skips this srun (see
    worker/steps.py). Outside a job of a node (CONDUCTOR_STEP_RECORDS unset), nothing."""
    import json

    path = os.environ.get("CONDUCTOR_STEP_RECORDS")
    if not path:
        return
    pid = os.getpid()
    if ended:
        line = {"srun_ended": pid}
    else:
        try:
            with open(f"/proc/{pid}/stat", "rb") as stat_file:
                # Field 22, the start time: after the command name, which may hold anything.
                ticks = int(stat_file.read().rsplit(b")", 1)[1].split()[19])
        except (OSError, IndexError, ValueError):
            return
        line = {"srun": pid, "ticks": ticks}
    fd = _open_own(path, os.O_WRONLY | os.O_APPEND)
    if fd is None:
        return
    try:
        os.write(fd, (json.dumps(line) + "\n").encode())
    finally:
        os.close(fd)


def _appends(option: str | None, env: dict[str, str]) -> bool:
    """--open-mode, else the job's (SLURM_OPEN_MODE, "a" or "t", which sbatch --open-mode set):
    whether the step's files are appended to. Slurm reads the first letter."""
    if option is not None:
        if option[:1] not in ("a", "A", "t", "T"):
            raise UsageError(f"Invalid --open-mode argument: {option} (append or truncate)")
        return option[:1] in ("a", "A")
    return env.get("SLURM_OPEN_MODE", "")[:1] in ("a", "A")


def task_environment(
    base: dict[str, str],
    *,
    rank: int,
    ntasks: int,
    step_id: int,
    cpus_per_task: int | None,
    job_name: str | None,
) -> dict[str, str]:
    """The SLURM_* variables one task of a step sees, on top of the job's environment."""
    env = dict(base)
    # The batch script's own pid, which Popen cannot replace with the task's before the exec:
    # wrong for a task, so not given (slurmstepd gives each task its own).
    env.pop("SLURM_TASK_PID", None)
    node_list = (
        base.get("SLURM_JOB_NODELIST") or base.get("SLURM_NODELIST") or "localhost"
    )
    env.update(
        {
            "SLURM_PROCID": str(rank),
            "SLURM_LOCALID": str(rank),
            "SLURM_NODEID": "0",
            "SLURM_STEP_ID": str(step_id),
            "SLURM_STEPID": str(step_id),
            "SLURM_NTASKS": str(ntasks),
            "SLURM_NPROCS": str(ntasks),
            "SLURM_STEP_NUM_TASKS": str(ntasks),
            "SLURM_STEP_NUM_NODES": "1",
            "SLURM_STEP_NODELIST": node_list,
            "SLURM_STEP_TASKS_PER_NODE": str(ntasks),
            "SLURM_TASKS_PER_NODE": str(ntasks),
            "SLURM_NNODES": "1",
            "SLURM_GTIDS": ",".join(str(i) for i in range(ntasks)),
            "SLURM_LAUNCH_NODE_IPADDR": "127.0.0.1",
            "SLURM_SRUN_COMM_HOST": "127.0.0.1",
            "SLURM_UMASK": f"{_umask():04o}",
        }
    )
    if cpus_per_task is not None:
        env["SLURM_CPUS_PER_TASK"] = str(cpus_per_task)
    if job_name:
        env["SLURM_JOB_NAME"] = job_name
    return env


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def expand_step_pattern(
    pattern: str, env: dict[str, str], *, rank: int, step_id: int
) -> str:
    """srun's --output/--error patterns (%j %J %A %a %s %t %n %N %u %x %%)."""
    from conductor.domain.patterns import expand_output_pattern

    def number(name: str) -> int | None:
        value = env.get(name)
        return int(value) if value and value.isdigit() else None

    return expand_output_pattern(
        pattern,
        job_id=number("SLURM_JOB_ID") or 0,
        job_name=env.get("SLURM_JOB_NAME", ""),
        user=env.get("SLURM_JOB_USER") or env.get("USER", ""),
        node=env.get("SLURMD_NODENAME") or env.get("SLURM_JOB_NODELIST", "localhost"),
        array_job_id=number("SLURM_ARRAY_JOB_ID"),
        array_task_id=number("SLURM_ARRAY_TASK_ID"),
        step_id=step_id,
        task_id=rank,
        node_index=0,
    )


def main(argv: list[str]) -> int:
    return run(PROG, lambda: _main(argv))


MAX_COUNT = 100_000  # tasks or CPUs a task: the API's bound on a job's tasks


def _task_count(env: dict[str, str]) -> tuple[str, str]:
    """The job's task count as srun reads it, and the variable it came from."""
    for name in ("SLURM_NTASKS", "SLURM_NPROCS"):
        if env.get(name):
            return env[name], name
    return "1", "SLURM_NTASKS"


def _positive(value: str | None, what: str) -> int:
    text = (value or "").strip()
    if not (text.isascii() and text.isdigit()) or not 0 < int(text) <= MAX_COUNT:
        raise UsageError(f'Invalid numeric value "{value}" for {what} (1 to {MAX_COUNT}).')
    return int(text)


def _main(argv: list[str]) -> int:
    parsed, command = getopt_long(argv, OPTIONS, stop_at_operand=True)
    opts: dict[str, str | None] = dict(parsed)
    if "help" in opts:
        sys.stdout.write(help_text())
        return 0
    if "usage" in opts:
        sys.stdout.write(USAGE)
        return 0
    if "version" in opts:
        sys.stdout.write(SLURM_VERSION)
        return 0
    env = dict(os.environ)
    job_id = env.get("SLURM_JOB_ID") or opts.get("jobid")
    if not job_id or not env.get("SLURM_JOB_ID"):
        raise UsageError(
            "srun is supported only inside a batch job here (SLURM_JOB_ID is not set); "
            "submit the command with `sbatch --wrap` (add -W to wait for it)"
        )
    if not command:
        raise UsageError("No command given to execute.")
    if "nodes" in opts:
        low = (opts["nodes"] or "1").split("-")[0]
        if low != "1":
            raise UsageError(
                "Unable to create step for job "
                f"{job_id}: Requested node configuration is not available"
            )
    ntasks = (
        _positive(opts["ntasks"], "number of tasks")
        if opts.get("ntasks")
        else _positive(*_task_count(env))
    )
    cpus_per_task = (
        _positive(opts["cpus_per_task"], "cpus-per-task")
        if opts.get("cpus_per_task")
        else (
            int(env["SLURM_CPUS_PER_TASK"])
            if env.get("SLURM_CPUS_PER_TASK", "").isdigit()
            else None
        )
    )
    available = (
        env.get("SLURM_CPUS_ON_NODE") or env.get("SLURM_JOB_CPUS_PER_NODE") or ""
    )
    if available.split("(")[0].isdigit() and ntasks * (cpus_per_task or 1) > int(
        available.split("(")[0]
    ):
        raise UsageError(
            f"Unable to create step for job {job_id}: More processors requested than permitted"
        )
    if "chdir" in opts:
        target = opts["chdir"] or ""
        if not target.strip():  # `-D "$DIR"` with the variable unset: not "stay here"
            raise UsageError("--chdir: the working directory is empty; give a directory path")
        try:
            os.chdir(target)
        except OSError as exc:
            raise UsageError(f"--chdir: cannot enter '{target}': {exc.strerror or exc}") from None
    if opts.get("export") and opts["export"] and opts["export"].upper() not in ("ALL",):
        env = _exported(opts["export"] or "", env)
    append = _appends(opts.get("open_mode"), env)
    step_id = _next_step_id(job_id)
    import resource
    import time

    started, before = time.time(), resource.getrusage(resource.RUSAGE_CHILDREN)
    status = launch(
        command,
        ntasks=ntasks,
        env=env,
        step_id=step_id,
        cpus_per_task=cpus_per_task,
        job_name=opts.get("job_name"),
        output=opts.get("output"),
        error=opts.get("error"),
        stdin_path=opts.get("input"),
        label="label" in opts,
        kill_on_bad_exit="kill_on_bad_exit" in opts,
        quiet="quiet" in opts,
        append=append,
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    record_step(env, step_id, command, ntasks, started, time.time(), status, before, after)
    return status


def record_step(
    env: dict[str, str],
    step_id: int,
    command: list[str],
    ntasks: int,
    started: float,
    ended: float,
    status: int,
    before: Any,
    after: Any,
) -> None:
    """Tell the node what this step ran (it records JOBID.<step_id> when the job ends)."""
    import json

    path = os.environ.get("CONDUCTOR_STEP_RECORDS")
    if not path:
        return
    # The largest status of the tasks: 128 + N is signal N, as the shell says it.
    signal_number = status - 128 if status > 128 else 0
    state = "COMPLETED" if status == 0 else (
        "CANCELLED" if signal_number in (signal.SIGTERM, signal.SIGKILL) else "FAILED"
    )
    record = {
        "step_id": step_id,
        "name": os.path.basename(command[0]),
        "state": state,
        "exit_code": f"0:{signal_number}" if signal_number else f"{status}:0",
        "ntasks": ntasks,
        "start": round(started, 3),
        "end": round(ended, 3),
        "user_cpu": round(after.ru_utime - before.ru_utime, 3),
        "system_cpu": round(after.ru_stime - before.ru_stime, 3),
        "max_rss": after.ru_maxrss * 1024,  # the largest task's (children, in KiB)
    }
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    except OSError:
        return  # accounting only: the step ran all the same
    try:
        os.write(fd, (json.dumps(record) + "\n").encode())
    finally:
        os.close(fd)


def _exported(spec: str, env: dict[str, str]) -> dict[str, str]:
    items = [i for i in spec.split(",") if i]
    keep = {k: v for k, v in env.items() if k.startswith("SLURM")}
    if any(i.upper() == "ALL" for i in items):
        keep = dict(env)
    for item in items:
        name, eq, value = item.partition("=")
        if name.upper() in ("ALL", "NONE", "NIL"):
            continue
        if eq:
            keep[name] = value
        elif name in env:
            keep[name] = env[name]
    return keep


def launch(  # noqa: C901 - one branch per srun option
    command: list[str],
    *,
    ntasks: int,
    env: dict[str, str],
    step_id: int,
    cpus_per_task: int | None,
    job_name: str | None,
    output: str | None,
    error: str | None,
    stdin_path: str | None,
    label: bool,
    kill_on_bad_exit: bool,
    quiet: bool,
    append: bool = False,
) -> int:
    """Start the tasks, relay their output, and return the largest exit status. `append`: the
    output and error files are appended to, else truncated."""
    import subprocess
    import threading

    node = env.get("SLURMD_NODENAME") or env.get("SLURM_JOB_NODELIST") or "localhost"
    procs: list[tuple[int, Any]] = []
    relays: list[threading.Thread] = []
    opened: list[Any] = []
    out_lock = threading.Lock()

    def open_target(pattern: str | None, rank: int, shared: dict[str, Any]) -> Any:
        if pattern is None:
            return None
        if pattern.lower() == "none":
            return subprocess.DEVNULL
        path = expand_step_pattern(pattern, env, rank=rank, step_id=step_id)
        if path not in shared:
            # Truncated unless the open mode says append, as slurmstepd opens them: a job that
            # points its steps at its own output file asks for append (submitit does).
            handle = open(path, "ab" if append else "wb")
            opened.append(handle)
            shared[path] = handle
        return shared[path]

    def relay(stream: Any, sink: Any, rank: int) -> None:
        prefix = f"{rank}: ".encode()
        for line in iter(stream.readline, b""):
            with out_lock:
                sink.write(prefix + line if label else line)
                sink.flush()
        stream.close()

    shared_files: dict[str, Any] = {}
    _register_step()  # before the tasks start: from their start on, a signal for the steps reaches them
    try:
        for rank in range(ntasks):
            task_env = task_environment(
                env,
                rank=rank,
                ntasks=ntasks,
                step_id=step_id,
                cpus_per_task=cpus_per_task,
                job_name=job_name,
            )
            stdout_target = open_target(output, rank, shared_files)
            stderr_target = open_target(error, rank, shared_files)
            if stdin_path and stdin_path.lower() != "none":
                stdin_path_expanded = expand_step_pattern(
                    stdin_path, env, rank=rank, step_id=step_id
                )
                stdin_target: Any = open(stdin_path_expanded, "rb")
                opened.append(stdin_target)
            else:
                stdin_target = None if rank == 0 else subprocess.DEVNULL
            pipe_out = label and stdout_target is None
            pipe_err = label and stderr_target is None
            try:
                proc = subprocess.Popen(
                    command,
                    env=task_env,
                    stdin=stdin_target,
                    stdout=subprocess.PIPE if pipe_out else stdout_target,
                    stderr=subprocess.PIPE
                    if pipe_err
                    else (
                        stderr_target
                        if stderr_target is not None
                        else (
                            stdout_target
                            if output is not None and error is None
                            else None
                        )
                    ),
                )
            except OSError as exc:
                sys.stderr.write(
                    f"{PROG}: error: {node}: task {rank}: {exc.strerror}: "
                    f"{command[0]}\n"
                )
                for _, running in procs:
                    running.terminate()
                return 2
            procs.append((rank, proc))
            if pipe_out:
                t = threading.Thread(
                    target=relay,
                    args=(proc.stdout, sys.stdout.buffer, rank),
                    daemon=True,
                )
                t.start()
                relays.append(t)
            if pipe_err:
                t = threading.Thread(
                    target=relay,
                    args=(proc.stderr, sys.stderr.buffer, rank),
                    daemon=True,
                )
                t.start()
                relays.append(t)

        def forward(signum: int, _frame: Any) -> None:
            for _, running in procs:
                if running.poll() is None:
                    running.send_signal(signum)

        for sig in (
            signal.SIGINT,
            signal.SIGTERM,
            signal.SIGUSR1,
            signal.SIGUSR2,
            signal.SIGHUP,
            signal.SIGCONT,
        ):
            signal.signal(sig, forward)

        worst = 0
        remaining = dict(procs)
        import time

        while remaining:
            for rank, proc in list(remaining.items()):
                code = proc.poll()
                if code is None:
                    continue
                del remaining[rank]
                status = code if code >= 0 else 128 + (-code)
                if code != 0 and not quiet:
                    if code > 0:
                        sys.stderr.write(
                            f"{PROG}: error: {node}: task {rank}: "
                            f"Exited with exit code {code}\n"
                        )
                    else:
                        name = SIGNAL_NAMES.get(
                            signal.Signals(-code), f"Signal {-code}"
                        )
                        sys.stderr.write(
                            f"{PROG}: error: {node}: task {rank}: {name}\n"
                        )
                worst = max(worst, status)
                if code != 0 and kill_on_bad_exit:
                    for other in remaining.values():
                        other.terminate()
            if remaining:
                time.sleep(0.02)
        for t in relays:
            t.join(timeout=5)
        return worst
    finally:
        _register_step(ended=True)
        for handle in opened:
            handle.close()
