"""What the pages show, computed from the store's records: queue rows with arrays collapsed as
squeue collapses them, a job's fields, durations and sizes as Slurm prints them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from conductor.domain.arrays import format_array_indices
from conductor.domain.job import Job, ending_state
from conductor.domain.jobfiles import job_paths
from conductor.domain.priority import scheduling_priority
from conductor.domain.usage import format_cpu, format_memory, parse_usage


@dataclass(frozen=True, slots=True)
class QueueRow:
    job_id: int  # the page to open: the job, or an array's first pending task
    label: str  # 42, 40_3, or 40_[4-99%5] for pending tasks collapsed
    name: str
    user: str
    partition: str
    state: str
    cpus: int
    node_or_reason: str
    time: str
    tasks: int


def when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value is not None else ""


def duration(seconds: int | float | None) -> str:
    """Slurm's [D-]HH:MM:SS; UNLIMITED for None."""
    if seconds is None:
        return "UNLIMITED"
    total = max(int(seconds), 0)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    text = f"{hours:02d}:{minutes:02d}:{secs:02d}"
    return f"{days}-{text}" if days else text


def memory(mb: int | None) -> str:
    if not mb:
        return "0"
    return f"{mb / 1024:.1f}G" if mb >= 1024 else f"{mb}M"


def job_label(job: Job) -> str:
    if job.array_job_id is not None and job.array_task_id is not None:
        return f"{job.array_job_id}_{job.array_task_id}"
    return str(job.id)


def requested_cpus(job: Job) -> int:
    return job.allocated_cpus or job.cpus_per_task * job.ntasks


def shown_state(job: Job) -> str:
    """The state the pages show: COMPLETING for a running job whose end was asked for, as
    squeue shows it."""
    return "COMPLETING" if ending_state(job) else job.state


def _run_end(job: Job, now: datetime) -> datetime:
    """Where a running job's run time stops: now, or the moment its end was asked for."""
    return job.kill_time if ending_state(job) and job.kill_time is not None else now


def _row(job: Job, now: datetime, label: str | None = None, tasks: int = 1) -> QueueRow:
    if job.state == "RUNNING":
        run = (_run_end(job, now) - job.start_time).total_seconds() if job.start_time else 0
        detail, time = job.node_list or "", duration(run)
    elif job.state == "PENDING":
        detail = f"({job.reason})"
        if job.expected_start_time is not None:
            # The scheduler's plan (backfill): when and where it expects the job to start.
            detail += f" expected {when(job.expected_start_time)}" + (f" on {job.sched_nodes}" if job.sched_nodes else "")
        elif job.begin_time is not None and job.begin_time > now:
            detail += f" starts after {when(job.begin_time)}"
        time = "0:00"
    else:
        detail, time = job.node_list or "", when(job.end_time)
    return QueueRow(
        job_id=job.id,
        label=label or job_label(job),
        name=job.name,
        user=job.user_name,
        partition=job.partition,
        state=shown_state(job),
        cpus=requested_cpus(job),
        node_or_reason=detail,
        time=time,
        tasks=tasks,
    )


def queue_rows(jobs: Sequence[Job], now: datetime) -> list[QueueRow]:
    """One row per job, except an array's pending tasks with one reason: one row, `40_[4-99]`."""
    groups: dict[tuple[int, str], list[Job]] = {}
    order: list[Job | tuple[int, str]] = []
    for job in jobs:
        if job.state == "PENDING" and job.array_job_id is not None and job.array_task_id is not None:
            key = (job.array_job_id, job.reason)
            if key not in groups:
                groups[key] = []
                order.append(key)
            groups[key].append(job)
        else:
            order.append(job)
    rows: list[QueueRow] = []
    for entry in order:
        if isinstance(entry, Job):
            rows.append(_row(entry, now))
            continue
        members = groups[entry]
        first = min(members, key=lambda j: j.array_task_id or 0)
        if len(members) == 1:
            rows.append(_row(first, now))
            continue
        tasks = format_array_indices([j.array_task_id or 0 for j in members], max_running=first.array_max_running)
        rows.append(_row(first, now, label=f"{first.array_job_id}_[{tasks}]", tasks=len(members)))
    return rows


def job_fields(job: Job, now: datetime) -> list[tuple[str, str]]:
    """A job's fields as `scontrol show job` names them."""
    paths = job_paths(job)
    elapsed = 0.0
    if job.start_time is not None:
        elapsed = ((job.end_time or _run_end(job, now)) - job.start_time).total_seconds()
    fields = [
        ("JobId", job_label(job)),
        ("JobName", job.name),
        ("UserId", job.user_name),
        ("Account", job.account or ""),
        ("Partition", job.partition),
        ("JobState", shown_state(job)),
        ("Reason", "TimeLimit" if ending_state(job) == "TIMEOUT" else job.reason),
        ("Priority", str(scheduling_priority(job.priority, job.nice, bool(job.held)))),  # as squeue shows it
        ("Nice", str(job.nice)),
        ("NumCPUs", str(requested_cpus(job))),
        ("NumTasks", str(job.ntasks)),
        ("CPUs/Task", str(job.cpus_per_task)),
        ("Memory", memory(job.allocated_memory_mb or job.memory_per_node_mb)),
        ("NodeList", job.node_list or ""),
        ("CPU_IDs", job.cpu_ids or ""),
        ("SubmitTime", when(job.submit_time)),
        ("EligibleTime", when(job.eligible_time)),
        ("BeginTime", when(job.begin_time)),
        ("StartTime", when(job.start_time)),
        ("ExpectedStart", when(job.expected_start_time) + (f" on {job.sched_nodes}" if job.sched_nodes else "")),
        ("EndTime", when(job.end_time or (job.kill_time if ending_state(job) else None))),
        ("RunTime", duration(elapsed)),
        ("TimeLimit", duration(job.time_limit)),
        ("ExitCode", job.exit_code or ""),
        ("Dependency", job.dependency or ""),
        ("Hold", "yes" if job.held else "no"),
        ("Restarts", str(job.restart_count)),
        ("WorkDir", job.work_dir),
        ("StdOut", paths.stdout),
        ("StdErr", paths.stderr),
        ("Comment", job.comment or ""),
    ]
    if job.error_msg:
        fields.append(("Error", job.error_msg))
    return fields


def usage(job: Job) -> list[tuple[str, str]]:
    """The resources the run used, as its node measured them, in sacct's names and formats."""
    measured = parse_usage(job.rusage)
    if measured is None:
        return []
    rows = [
        ("MaxRSS", format_memory(measured.max_rss)),
        ("AveRSS", format_memory(measured.ave_rss)),
        ("MaxVMSize", format_memory(measured.max_vmsize)),
        ("TotalCPU", format_cpu(measured.total_cpu)),
        ("UserCPU", format_cpu(measured.user_cpu)),
        ("SystemCPU", format_cpu(measured.system_cpu)),
        ("OOM kills", str(measured.oom_kills) if measured.oom_kills else ""),
        ("Measured by", measured.source or ""),
    ]
    return [(name, value) for name, value in rows if value]