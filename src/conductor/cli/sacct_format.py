"""sacct's fields and layout (src/sacct/sacct.c, src/common/print_fields.c). Pure functions.

Layout: in the default mode each field is padded to its width and followed by one space;
the header is right-aligned, a line of dashes follows it; a negative width (JobID, JobIDRaw)
left-aligns values and header; a value longer than the width is cut and ends with '+'. With -p/-P fields
are joined with '|' (-p also ends the line with it) and never cut.
"""

from __future__ import annotations

from conductor.cli.common import empty_format, exit_code, field_width, hms, job_reason, recorded_exit_code, slurm_time
from conductor.domain.text import printable
from conductor.errors import ConductorError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    Getter = Callable[[dict[str, Any]], str]

DEFAULT_FIELDS = "JobID,JobName,Partition,Account,AllocCPUS,State,ExitCode"
BRIEF_FIELDS = "JobID,State,ExitCode"
LONG_FIELDS = (
    "JobID,JobIDRaw,JobName,Partition,MaxVMSize,MaxVMSizeNode,MaxVMSizeTask,AveVMSize,MaxRSS,"
    "MaxRSSNode,MaxRSSTask,AveRSS,MaxPages,MaxPagesNode,MaxPagesTask,AvePages,MinCPU,"
    "MinCPUNode,MinCPUTask,AveCPU,NTasks,AllocCPUS,Elapsed,State,ExitCode,AveCPUFreq,"
    "ReqCPUFreqMin,ReqCPUFreqMax,ReqCPUFreqGov,ReqMem,ConsumedEnergy,MaxDiskRead,"
    "MaxDiskReadNode,MaxDiskReadTask,AveDiskRead,MaxDiskWrite,MaxDiskWriteNode,"
    "MaxDiskWriteTask,AveDiskWrite,ReqTRES,AllocTRES,TRESUsageInAve,TRESUsageInMax,"
    "TRESUsageInMaxNode,TRESUsageInMaxTask,TRESUsageInMin,TRESUsageInMinNode,"
    "TRESUsageInMinTask,TRESUsageInTot,TRESUsageOutMax,TRESUsageOutMaxNode,"
    "TRESUsageOutMaxTask,TRESUsageOutAve,TRESUsageOutTot"
)

# Every field sacct knows, with its default width, in sacct's table order (prefix matching
# picks the first). Fields we have no data for (energy, disk, memory high-water marks...)
# print empty, as sacct does when accounting did not gather them.
WIDTHS: dict[str, int] = {
    "Account": 10,
    "AdminComment": 15,
    "AllocCPUS": 10,
    "AllocNodes": 10,
    "AllocTRES": 10,
    "AssocID": 7,
    "AveCPU": 10,
    "AveCPUFreq": 10,
    "AveDiskRead": 14,
    "AveDiskWrite": 14,
    "AvePages": 10,
    "AveRSS": 10,
    "AveVMSize": 10,
    "BlockID": 16,
    "Cluster": 10,
    "Comment": 14,
    "Constraints": 19,
    "ConsumedEnergy": 14,
    "ConsumedEnergyRaw": 17,
    "Container": 19,
    "CPUTime": 10,
    "CPUTimeRAW": 10,
    "DBIndex": -21,
    "DerivedExitCode": 15,
    "Elapsed": 10,
    "ElapsedRaw": 10,
    "Eligible": 19,
    "End": 19,
    "ExitCode": 8,
    "Extra": 14,
    "FailedNode": 8,
    "Flags": 19,
    "GID": 6,
    "Group": 9,
    "JobID": -12,
    "JobIDRaw": -12,
    "JobName": 10,
    "Layout": 9,
    "Licenses": 10,
    "MaxDiskRead": 12,
    "MaxDiskReadNode": 15,
    "MaxDiskReadTask": 15,
    "MaxDiskWrite": 12,
    "MaxDiskWriteNode": 16,
    "MaxDiskWriteTask": 16,
    "MaxPages": 8,
    "MaxPagesNode": 12,
    "MaxPagesTask": 14,
    "MaxRSS": 10,
    "MaxRSSNode": 10,
    "MaxRSSTask": 10,
    "MaxVMSize": 10,
    "MaxVMSizeNode": 14,
    "MaxVMSizeTask": 14,
    "McsLabel": 12,
    "MinCPU": 10,
    "MinCPUNode": 10,
    "MinCPUTask": 10,
    "NCPUS": 10,
    "NNodes": 8,
    "NodeList": 15,
    "NTasks": 8,
    "Partition": 10,
    "Planned": 10,
    "PlannedCPU": 10,
    "PlannedCPURAW": 13,
    # Slurm 22.05's names of the three above.
    "Reserved": 10,
    "ResvCPU": 10,
    "ResvCPURAW": 10,
    "Priority": 10,
    "QOS": 10,
    "QOSRAW": 6,
    "QOSREQ": 10,
    "Reason": 22,
    "ReqCPUFreq": 10,
    "ReqCPUFreqGov": 13,
    "ReqCPUFreqMax": 13,
    "ReqCPUFreqMin": 13,
    "ReqCPUS": 8,
    "ReqMem": 10,
    "ReqNodes": 8,
    "ReqTRES": 10,
    "Reservation": 20,
    "ReservationId": 8,
    "Restarts": 8,
    "SegmentSize": 11,
    "SLUID": 14,
    "Start": 19,
    "State": 10,
    "StdErr": 20,
    "StdIn": 20,
    "StdOut": 20,
    "Submit": 19,
    "SubmitLine": 20,
    "Suspended": 10,
    "SystemComment": 15,
    "SystemCPU": 10,
    "Timelimit": 10,
    "TimelimitRaw": 10,
    "TotalCPU": 10,
    "TRESUsageInAve": 14,
    "TRESUsageInMax": 14,
    "TRESUsageInMaxNode": 18,
    "TRESUsageInMaxTask": 18,
    "TRESUsageInMin": 14,
    "TRESUsageInMinNode": 18,
    "TRESUsageInMinTask": 18,
    "TRESUsageInTot": 14,
    "TRESUsageOutAve": 15,
    "TRESUsageOutMax": 15,
    "TRESUsageOutMaxNode": 19,
    "TRESUsageOutMaxTask": 19,
    "TRESUsageOutMin": 15,
    "TRESUsageOutMinNode": 19,
    "TRESUsageOutMinTask": 19,
    "TRESUsageOutTot": 15,
    "UID": 6,
    "User": 9,
    "UserCPU": 10,
    "WCKey": 10,
    "WCKeyID": 10,
    "WorkDir": 20,
}


def _started(job: dict[str, Any]) -> bool:
    return bool(job.get("start_time"))


def _alloc_cpus(job: dict[str, Any]) -> int:
    return int(job.get("allocated_cpus") or 0) if _started(job) else 0


def _req_cpus(job: dict[str, Any]) -> int:
    return int(job.get("ntasks") or 1) * int(job.get("cpus_per_task") or 1)


# --units: Slurm's unit types (UNIT_NONE, UNIT_KILO... in slurm_protocol_api.h) by letter.
UNIT_LETTERS = "KMGTP"
_UNIT_NONE = 0
_UNIT_MEGA = 2
# --noconvert (and no --units): each figure in the unit it is counted in, bytes or megabytes,
# as convert_num_unit2 leaves it with CONVERT_NUM_UNIT_NO.
NO_CONVERT = -1


def unit_type(text: str) -> int:
    """sacct --units: the unit's index (K=1 ... P=5), from the value's first letter, any case,
    as get_unit_type() reads it; FieldError for anything else."""
    letter = text[:1].upper()
    if not letter or letter not in UNIT_LETTERS:
        raise FieldError(
            f"Invalid unit type '{text[:1]}'. Possible options are '{UNIT_LETTERS}'"
        )
    return UNIT_LETTERS.index(letter) + 1


def convert_units(number: float, orig: int, spec: int) -> str:
    """convert_num_unit(num, orig_type, spec_type) with --units set (spec_type overrides every
    other flag): the number moved by factors of 1024 to `spec`, "%d<unit>" when whole, else
    "%.2f<unit>" (262144 bytes in M: "0.25M"); zero is "0"."""
    if int(number) == 0:
        return "0"
    value = float(number)
    while spec < orig:
        value *= 1024
        orig -= 1
    while spec > orig:
        value /= 1024
        orig += 1
    suffix = UNIT_LETTERS[orig - 1] if orig > _UNIT_NONE else ""
    whole = int(value)
    if float(whole) == value:
        return f"{whole}{suffix}"
    return f"{value:.2f}{suffix}"


def _units(row: dict[str, Any]) -> int | None:
    units = row.get("_units")
    return int(units) if units is not None else None


def _mem_mb(job: dict[str, Any], cpus: int) -> int:
    """The job's memory in MiB as its TRES count it (job_get_tres_mem in slurmctld's
    job_mgr.c): --mem-per-cpu times the CPUs, or --mem per node times the (one) node."""
    per_cpu = job.get("memory_per_cpu_mb")
    if per_cpu:
        return int(per_cpu) * cpus
    return int(job.get("memory_per_node_mb") or 0)


def _format_mb(row: dict[str, Any], mb: int) -> str:
    from conductor.domain.memory import format_memory_mb

    units = _units(row)
    if units == NO_CONVERT:
        return f"{mb}M" if mb else "0"
    if units is not None:
        return convert_units(mb, _UNIT_MEGA, units)
    return format_memory_mb(mb)


def _req_mem(job: dict[str, Any]) -> str:
    """PRINT_REQ_MEM (Slurm 22.05): the mem count of the job's tres_req_str, on job rows only."""
    if job.get("_step"):
        return ""
    return _format_mb(job, _mem_mb(job, _req_cpus(job)))


def _elapsed(job: dict[str, Any]) -> int:
    return int(job.get("elapsed") or 0)


def _tres(job: dict[str, Any], allocated: bool) -> str:
    if allocated and not _started(job):
        return ""
    if not allocated and job.get("_step"):
        return ""  # PRINT_TRESR: a job's tres_req_str; steps have none
    cpus = _alloc_cpus(job) if allocated else _req_cpus(job)
    tres = f"cpu={cpus},mem={_format_mb(job, _mem_mb(job, cpus))},node=1"
    # A step's allocation (slurmctld's step tres_alloc_str) has no billing; its job's has.
    return tres if job.get("_step") else f"billing={cpus},{tres}"


def _req_nodes(job: dict[str, Any]) -> str:
    # convert_num_unit(nodes, UNIT_NONE, params.units): --units converts even a node count.
    units = _units(job)
    return "1" if units is None or units == NO_CONVERT else convert_units(1, _UNIT_NONE, units)


def _exit_code(job: dict[str, Any]) -> str:
    """PRINT_EXITCODE: "status:signal", and an exit status of 128 or more shows 128 less
    (src/sacct/print.c: `if (tmp_int >= 128) tmp_int -= 128`), on job and step rows; a job's
    line is its accounting record's (recorded_exit_code), its batch step's the script's."""
    recorded = exit_code(job) if job.get("_step") else recorded_exit_code(job)
    code, sep, signal = recorded.partition(":")
    if sep and code.isdigit() and int(code) >= 128:
        return f"{int(code) - 128}:{signal}"
    return recorded


def _derived_exit_code(job: dict[str, Any]) -> str:
    """PRINT_DERIVED_EC, on job rows only (step rows print it empty): the highest exit code of
    the job's srun steps, the batch step left out (step_mgr.c), 0:0 without any."""
    if job.get("_step"):
        return ""
    usage = job.get("usage")
    steps = usage.get("steps") if isinstance(usage, dict) else None
    highest = (0, 0)
    for step in steps or []:
        code, _, signal = str(step.get("exit_code") or "0:0").partition(":")
        if code.isdigit() and signal.isdigit():
            # A wait status compares as (status << 8 | signal): the status first.
            highest = max(highest, (int(code), int(signal)))
    return f"{highest[0]}:{highest[1]}"


def _state(job: dict[str, Any]) -> str:
    """A cancelled job's line says by whom, as sacct prints a job's requid ("CANCELLED by
    1000"): the uid of the user who asked, or the name where this host knows no such user.
    Its steps' lines say CANCELLED alone."""
    state = job.get("state")
    by = job.get("cancelled_by")
    if state != "CANCELLED" or not by or job.get("_step"):
        return _s(state)
    try:
        import pwd

        return f"CANCELLED by {pwd.getpwnam(str(by)).pw_uid}"
    except (ImportError, KeyError):
        return f"CANCELLED by {by}"


def _uid(job: dict[str, Any]) -> str:
    try:
        import pwd

        return str(pwd.getpwnam(str(job.get("user"))).pw_uid)
    except (ImportError, KeyError):
        return ""


def _group(job: dict[str, Any], numeric: bool) -> str:
    try:
        import grp
        import pwd

        gid = pwd.getpwnam(str(job.get("user"))).pw_gid
        return str(gid) if numeric else grp.getgrgid(gid).gr_name
    except (ImportError, KeyError):
        return ""


def _limit(job: dict[str, Any]) -> str:
    from conductor.domain.timespec import format_time_limit

    return format_time_limit(job.get("time_limit"), style="sacct")


def _limit_raw(job: dict[str, Any]) -> str:
    limit = job.get("time_limit")
    return "UNLIMITED" if limit is None else str((int(limit) + 59) // 60)


def _planned(job: dict[str, Any]) -> int:
    from conductor.cli.common import parse_iso

    eligible = parse_iso(job.get("eligible_time") or job.get("submit_time"))
    start = parse_iso(job.get("start_time"))
    if eligible is None:
        return 0
    if start is None:
        import time

        return max(int(time.time() - eligible.timestamp()), 0)
    return max(int(start.timestamp() - eligible.timestamp()), 0)


def _usage(job: dict[str, Any], key: str) -> Any:
    usage = job.get("usage")
    return usage.get(key) if isinstance(usage, dict) else None


def _step_memory(job: dict[str, Any], key: str) -> str:
    """MaxRSS, AveRSS, MaxVMSize: as Slurm, on the job's steps (JobID.batch), not its allocation."""
    from conductor.domain.usage import format_memory

    if not job.get("_step"):
        return ""
    value = _usage(job, key)
    if value is None:
        return ""
    units = _units(job)
    if units == NO_CONVERT:
        return str(int(value))
    if units is not None:
        return convert_units(int(value), _UNIT_NONE, units)
    return format_memory(int(value))


def _cpu(job: dict[str, Any], key: str) -> str:
    from conductor.domain.usage import format_cpu

    value = _usage(job, key)
    return format_cpu(float(value)) if value is not None else ""


def _s(value: Any) -> str:
    return "" if value is None else str(value)


def _job_only(getter: Getter) -> Getter:
    """A field of the job's line that sacct leaves blank on its steps' (src/sacct/print.c has
    no JOBSTEP case for it): the user, limits, directory, priority, QOS, reason..."""
    return lambda j: "" if j.get("_step") else getter(j)


def _layout(job: dict[str, Any]) -> str:
    """PRINT_LAYOUT: a step's task distribution, none (Unknown) for the batch step, Block for
    an srun's (its default); blank on the job's line."""
    if not job.get("_step"):
        return ""
    return "Unknown" if str(job.get("_sacct_id") or "").endswith(".batch") else "Block"


GETTERS: dict[str, Getter] = {
    "Account": lambda j: _s(j.get("account")),
    "AveRSS": lambda j: _step_memory(j, "ave_rss"),
    "MaxRSS": lambda j: _step_memory(j, "max_rss"),
    "MaxRSSNode": lambda j: _s(j.get("node_list")) if j.get("_step") and _usage(j, "max_rss") is not None else "",
    "MaxRSSTask": lambda j: "0" if j.get("_step") and _usage(j, "max_rss") is not None else "",
    "MaxVMSize": lambda j: _step_memory(j, "max_vmsize"),
    "SystemCPU": lambda j: _cpu(j, "system_cpu"),
    "TotalCPU": lambda j: _cpu(j, "total_cpu"),
    "UserCPU": lambda j: _cpu(j, "user_cpu"),
    "AllocCPUS": lambda j: str(_alloc_cpus(j)),
    "AllocNodes": lambda j: "1" if _started(j) else "0",
    "AllocTRES": lambda j: _tres(j, True),
    "Cluster": lambda j: "conductor",
    "Comment": _job_only(lambda j: _s(j.get("comment"))),
    "CPUTime": lambda j: hms(_elapsed(j) * _alloc_cpus(j)),
    "CPUTimeRAW": lambda j: str(_elapsed(j) * _alloc_cpus(j)),
    "DerivedExitCode": _derived_exit_code,
    "Elapsed": lambda j: hms(_elapsed(j)),
    "ElapsedRaw": lambda j: str(_elapsed(j)),
    "Eligible": lambda j: slurm_time(j.get("eligible_time")),
    "End": lambda j: slurm_time(j.get("end_time")),
    "ExitCode": _exit_code,
    "GID": _job_only(lambda j: _group(j, True)),
    "Group": _job_only(lambda j: _group(j, False)),
    "JobID": lambda j: _s(j.get("_sacct_id")),
    "JobIDRaw": lambda j: _s(j.get("_sacct_raw_id")),
    "JobName": lambda j: _s(j.get("name")),
    "Layout": _layout,
    "NCPUS": lambda j: str(_alloc_cpus(j)),
    "NNodes": lambda j: "1",
    "NodeList": lambda j: _s(j.get("node_list")) if _started(j) else "None assigned",
    "NTasks": lambda j: _s(j.get("_ntasks")),
    "Partition": lambda j: _s(j.get("partition")),
    "Planned": _job_only(lambda j: hms(_planned(j))),
    "PlannedCPU": _job_only(lambda j: hms(_planned(j) * _req_cpus(j))),
    "PlannedCPURAW": _job_only(lambda j: str(_planned(j) * _req_cpus(j))),
    "Reserved": _job_only(lambda j: hms(_planned(j))),
    "ResvCPU": _job_only(lambda j: hms(_planned(j) * _req_cpus(j))),
    "ResvCPURAW": _job_only(lambda j: str(_planned(j) * _req_cpus(j))),
    "Priority": _job_only(lambda j: str(int(j.get("priority") or 0))),
    "QOS": _job_only(lambda j: _s(j.get("qos") or "normal")),
    "QOSREQ": _job_only(lambda j: _s(j.get("qos") or "normal")),
    "Reason": _job_only(job_reason),
    "ReqCPUS": lambda j: str(_alloc_cpus(j) if j.get("_step") else _req_cpus(j)),
    "ReqMem": _req_mem,
    "ReqNodes": _req_nodes,
    "ReqTRES": lambda j: _tres(j, False),
    "Restarts": _job_only(lambda j: str(int(j.get("restart_count") or 0))),
    "Start": lambda j: slurm_time(j.get("start_time")),
    "State": lambda j: _state(j),
    "StdErr": lambda j: _s(j.get("standard_error")),
    "StdIn": lambda j: _s(j.get("standard_input")),
    "StdOut": lambda j: _s(j.get("standard_output")),
    "Submit": lambda j: slurm_time(j.get("submit_time")),
    "Suspended": lambda j: "00:00:00",
    "Timelimit": _job_only(_limit),
    "TimelimitRaw": _job_only(_limit_raw),
    "UID": _job_only(_uid),
    "User": _job_only(lambda j: _s(j.get("user"))),
    "WorkDir": _job_only(lambda j: _s(j.get("work_dir"))),
}


class Column:
    __slots__ = ("getter", "name", "width")

    def __init__(self, name: str, width: int, getter: Getter) -> None:
        self.name = name
        self.width = width
        self.getter = getter


class FieldError(ConductorError, ValueError):
    pass


def parse_fields(spec: str, option: str = "-o/--format") -> list[Column]:
    """A --format list: names matched case-insensitively by prefix, optional '%width';
    `option` names the list in errors."""
    columns: list[Column] = []
    for raw in spec.split(","):
        raw = raw.strip()
        if not raw:
            continue
        name, pct, width_text = raw.partition("%")
        lowered = name.lower()
        if lowered == "all":
            for real in WIDTHS:
                columns.append(_column(real, width_text if pct else None, option))
            continue
        match = next((real for real in WIDTHS if real.lower() == lowered), None)
        if match is None:
            match = next(
                (real for real in WIDTHS if real.lower().startswith(lowered)), None
            )
        if match is None or not lowered:
            raise FieldError(f'Invalid field requested: "{name}"')
        columns.append(_column(match, width_text if pct else None, option))
    if not columns:
        raise empty_format(option)
    return columns


def _column(name: str, width_text: str | None, option: str) -> Column:
    width = WIDTHS[name]
    if width_text:
        # A negative width left-aligns (JobID%-20); what is not a number keeps the default.
        digits = width_text.strip()
        sign = -1 if digits.startswith("-") else 1
        if digits.startswith(("+", "-")):
            digits = digits[1:]
        if digits.isdecimal():
            width = sign * field_width(digits, option)
    return Column(name, width, GETTERS.get(name, lambda j: ""))


def render(
    columns: list[Column],
    rows: list[dict[str, Any]],
    *,
    header: bool,
    parsable: str | None,
    delimiter: str = "|",
) -> str:
    """parsable: None (aligned), 'ending' (-p) or 'no_ending' (-P)."""
    out: list[str] = []

    def line(values: list[str]) -> str:
        if parsable == "no_ending":
            return delimiter.join(values)
        if parsable == "ending":
            return "".join(v + delimiter for v in values)
        return "".join(values)

    if header:
        if parsable:
            out.append(line([c.name for c in columns]))
        else:
            # printf("%*.*s ", len, abs(len), name): a negative width (JobID) left-aligns
            # the header as it does the values (print_fields_header in print_fields.c).
            out.append(
                line(
                    [
                        f"{c.name[: abs(c.width)]:{'<' if c.width < 0 else '>'}{abs(c.width)}} "
                        for c in columns
                    ]
                )
            )
            out.append(line(["-" * abs(c.width) + " " for c in columns]))
    for row in rows:
        # Stored text may hold control characters (domain/text.py): never print them raw.
        values = [printable(c.getter(row)) for c in columns]
        if parsable:
            out.append(line(values))
        else:
            cells = []
            for column, value in zip(columns, values, strict=True):
                size = abs(column.width)
                if len(value) > size:
                    value = value[: size - 1] + "+" if size > 0 else value
                cells.append(
                    (value.ljust(size) if column.width < 0 else value.rjust(size)) + " "
                )
            out.append(line(cells))
    return "".join(text + "\n" for text in out)


def expand_rows(
    jobs: list[dict[str, Any]], *, with_steps: bool, units: int | None = None
) -> list[dict[str, Any]]:
    """One row per job (JobID '123' or '123_4'), then its batch step unless -X.
    `units`: --units' unit type (unit_type()), or NO_CONVERT, for the memory figures."""
    rows: list[dict[str, Any]] = []
    for job in jobs:
        row = dict(job)
        row["_units"] = units
        if job.get("_task_str"):
            row["_sacct_id"] = f"{job['array_job_id']}_[{job['_task_str']}]"
            row["_sacct_raw_id"] = str(job["array_job_id"])
        else:
            from conductor.cli.common import job_display_id

            row["_sacct_id"] = job_display_id(job)
            row["_sacct_raw_id"] = str(job["job_id"])
        rows.append(row)
        if with_steps and _started(job):
            step = dict(row)
            step["_sacct_id"] = f"{row['_sacct_id']}.batch"
            step["_sacct_raw_id"] = f"{row['_sacct_raw_id']}.batch"
            step["name"] = "batch"
            step["_step"] = True
            step["partition"] = None
            step["_ntasks"] = 1
            if "_step_running_for" in job:  # the job's end was asked for; its processes live on
                step.update(state="RUNNING", end_time=None, elapsed=job["_step_running_for"], exit_code="0:0")
            elif job.get("state") in ("CANCELLED", "TIMEOUT"):
                # The batch step was ended by a signal, whatever ended the job (sacct shows a
                # timed-out job's step CANCELLED).
                step["state"] = "CANCELLED"
            _step_times(step)
            rows.append(step)
            rows.extend(_srun_steps(row))
    return rows


def _step_times(step: dict[str, Any]) -> None:
    """A step was submitted and eligible when it started (sacct prints its start for both)."""
    step["submit_time"] = step["eligible_time"] = step.get("start_time")


def _srun_steps(row: dict[str, Any]) -> list[dict[str, Any]]:
    """The job's steps (srun), JOBID.0, JOBID.1..., after its batch step, as sacct lists them."""
    usage = row.get("usage")
    steps = usage.get("steps") if isinstance(usage, dict) else None
    out = []
    for step in steps or []:
        line = dict(row)
        line["_sacct_id"] = f"{row['_sacct_id']}.{step['step_id']}"
        line["_sacct_raw_id"] = f"{row['_sacct_raw_id']}.{step['step_id']}"
        line["_step"] = True
        line["_ntasks"] = step.get("ntasks")
        line["partition"] = None
        for key in ("name", "state", "exit_code", "start_time", "end_time", "elapsed"):
            line[key] = step.get(key)
        line["usage"] = step
        _step_times(line)
        out.append(line)
    return out
