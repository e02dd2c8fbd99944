"""squeue's output: % field codes, -O long field names, array collapsing. Pure functions.

Follows src/squeue/print.c and opts.c: a field is `%[.][width]code`; `.` right-aligns; the value
is cut to the width (squeue truncates, it does not widen), except the run times and node lists
a right-aligned field prints whole (see WHOLE); text between fields is printed as is.
"""

from __future__ import annotations

import functools
import re
import time as _time

from conductor.cli.common import STATE_CODES, clock, empty_format, field_width, job_display_id, job_reason, slurm_time
from conductor.cli.dependency_states import shown_dependency
from conductor.domain.text import printable
from conductor.errors import ConductorError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import Any

    Getter = Callable[[dict[str, Any], float], str]

DEFAULT_FORMAT = "%.18i %.9P %.8j %.8u %.2t %.10M %.6D %R"
LONG_FORMAT = "%.18i %.9P %.8j %.8u %.8T %.10M %.9l %.6D %R"
# squeue --start: pending jobs by expected start, with the nodes the plan chose.
START_FORMAT = "%.18i %.9P %.8j %.8u %.2t %.19S %.6D %20Y %R"
STEP_FORMAT = "%.15i %.8j %.9P %.8u %.9M %N"

# %R shows "(reason)" for these states and the node list otherwise (squeue's
# _print_job_reason_list).
_REASON_STATES = frozenset(
    {"PENDING", "FAILED", "TIMEOUT", "OUT_OF_MEMORY", "DEADLINE"}
)


def _s(value: Any, missing: str = "(null)") -> str:
    if value is None or value == "":
        return missing
    return str(value)


def _elapsed(job: dict[str, Any], now: float) -> int:
    """Run time: recorded for ended jobs, counted from the start for running ones."""
    state = job.get("state")
    if state == "PENDING":
        return 0
    # A completing job's run time stopped when its end was asked for (its elapsed says so).
    if state in ("RUNNING", "SUSPENDED"):
        from conductor.cli.common import parse_iso

        start = parse_iso(job.get("start_time"))
        if start is not None:
            return max(int(now - start.timestamp()), 0)
    return int(job.get("elapsed") or 0)


def _cpus(job: dict[str, Any]) -> int:
    allocated = job.get("allocated_cpus")
    if allocated:
        return int(allocated)
    ntasks = int(job.get("ntasks") or 1)
    return ntasks * int(job.get("cpus_per_task") or 1)


def _memory(job: dict[str, Any]) -> str:
    from conductor.domain.memory import format_memory_mb

    per_cpu = job.get("memory_per_cpu_mb")
    if per_cpu:
        return format_memory_mb(int(per_cpu))
    per_node = job.get("memory_per_node_mb")
    return format_memory_mb(int(per_node)) if per_node else "0"


def _reason(job: dict[str, Any]) -> str:
    return job_reason(job)


def _reason_list(job: dict[str, Any]) -> str:
    if str(job.get("state")) in _REASON_STATES:  # str: whatever the record holds, never a TypeError
        return f"({_reason(job)})"
    return _s(job.get("node_list"), "")


def _time_left(job: dict[str, Any], now: float) -> str:
    limit = job.get("time_limit")
    if limit is None:
        return "UNLIMITED"
    return clock(max(int(limit) - _elapsed(job, now), 0))


def _end_time(job: dict[str, Any]) -> str:
    if job.get("end_time"):
        return slurm_time(job["end_time"])
    if job.get("time_limit") is None and job.get("state") in ("RUNNING", "SUSPENDED"):
        # squeue's _print_job_time_end: no time limit and an end still ahead (slurmctld sets a
        # live job's end a year on) print NONE; an end never set (a pending job's) prints N/A.
        return "NONE"
    if (
        job.get("state") == "RUNNING"
        and job.get("start_time")
        and job.get("time_limit")
    ):
        from conductor.cli.common import parse_iso

        start = parse_iso(job["start_time"])
        if start is not None:
            end = start.timestamp() + int(job["time_limit"])
            return _time.strftime("%Y-%m-%dT%H:%M:%S", _time.localtime(end))
    return "N/A"


def _uid(job: dict[str, Any]) -> str:
    try:
        import pwd

        return str(pwd.getpwnam(str(job.get("user"))).pw_uid)
    except (ImportError, KeyError):
        return "4294967294"


def _group(job: dict[str, Any], numeric: bool) -> str:
    try:
        import grp
        import pwd

        gid = pwd.getpwnam(str(job.get("user"))).pw_gid
        return str(gid) if numeric else grp.getgrgid(gid).gr_name
    except (ImportError, KeyError):
        return "4294967294" if numeric else "(null)"


def _array_job_id(job: dict[str, Any]) -> str:
    return str(
        job["array_job_id"]
        if job.get("array_job_id") is not None
        else job.get("job_id")
    )


def _array_task_id(job: dict[str, Any]) -> str:
    if job.get("_task_str"):
        return str(job["_task_str"])
    task = job.get("array_task_id")
    return "N/A" if task is None else str(task)


def _job_id(job: dict[str, Any]) -> str:
    if job.get("_task_str"):
        return f"{job['array_job_id']}_[{job['_task_str']}]"
    return job_display_id(job)


def job_priority(job: dict[str, Any]) -> int:
    """The priority the scheduler orders by (0 only when held), as the API reports it."""
    if job.get("scheduling_priority") is not None:
        return int(job["scheduling_priority"])
    from conductor.domain.priority import scheduling_priority

    return scheduling_priority(int(job.get("priority") or 0), int(job.get("nice") or 0), bool(job.get("hold")))


def _priority_float(job: dict[str, Any]) -> str:
    """%p: the priority as a fraction of 2^32-1, printed as squeue's "%16.14f" prints it."""
    return f"{job_priority(job) / 4294967295:16.14f}"


def start_time(job: dict[str, Any]) -> str | None:
    """When the job started, or for a pending job when the scheduler's plan expects it to."""
    if job.get("state") == "PENDING":
        return job.get("expected_start_time") or None
    return job.get("start_time") or None


# code -> (header, getter(job, now))
FIELDS: dict[str, tuple[str, Getter]] = {
    "a": ("ACCOUNT", lambda j, n: _s(j.get("account"))),
    "A": (
        "JOBID",
        lambda j, n: str(j["array_job_id"]) if j.get("_task_str") else str(j["job_id"]),
    ),
    "b": ("TRES_PER_NODE", lambda j, n: "N/A"),
    "B": ("EXEC_HOST", lambda j, n: _s(j.get("node_list"), "n/a")),
    "c": ("MIN_CPUS", lambda j, n: str(int(j.get("cpus_per_task") or 1))),
    "C": ("CPUS", lambda j, n: str(_cpus(j))),
    "d": ("MIN_TMP_DISK", lambda j, n: "0"),
    "D": ("NODES", lambda j, n: "1"),
    "e": ("END_TIME", lambda j, n: _end_time(j)),
    "E": ("DEPENDENCY", lambda j, n: _s(shown_dependency(j))),
    "f": ("FEATURES", lambda j, n: "(null)"),
    "F": ("ARRAY_JOB_ID", lambda j, n: _array_job_id(j)),
    "g": ("GROUP", lambda j, n: _group(j, False)),
    "G": ("GROUP", lambda j, n: _group(j, True)),
    "h": ("OVER_SUBSCRIBE", lambda j, n: "NO" if j.get("exclusive") else "OK"),
    "H": ("S:C:T", lambda j, n: "*"),
    "i": ("JOBID", lambda j, n: _job_id(j)),
    "I": ("CORES_PER_SOCKET", lambda j, n: "*"),
    "j": ("NAME", lambda j, n: _s(j.get("name"), "")),
    "J": ("THREADS_PER_CORE", lambda j, n: "*"),
    "k": ("COMMENT", lambda j, n: _s(j.get("comment"))),
    "K": ("ARRAY_TASK_ID", lambda j, n: _array_task_id(j)),
    "l": ("TIME_LIMIT", lambda j, n: clock(j.get("time_limit"))),
    "L": ("TIME_LEFT", _time_left),
    "m": ("MIN_MEMORY", lambda j, n: _memory(j)),
    "M": ("TIME", lambda j, n: clock(_elapsed(j, n))),
    "n": ("REQ_NODES", lambda j, n: _s(j.get("required_nodes"), "")),
    "N": ("NODELIST", lambda j, n: _s(j.get("node_list"), "")),
    "o": ("COMMAND", lambda j, n: _s(j.get("command"))),
    "O": ("CONTIGUOUS", lambda j, n: "0"),
    "p": ("PRIORITY", lambda j, n: _priority_float(j)),
    "P": ("PARTITION", lambda j, n: _s(j.get("partition"), "")),
    "q": ("QOS", lambda j, n: _s(j.get("qos"), "normal")),
    "Q": ("PRIORITY", lambda j, n: str(job_priority(j))),
    "r": ("REASON", lambda j, n: _reason(j)),
    "R": ("NODELIST(REASON)", lambda j, n: _reason_list(j)),
    "s": ("SELECT_JOBINFO", lambda j, n: "(null)"),
    "S": ("START_TIME", lambda j, n: slurm_time(start_time(j), "N/A")),
    "t": ("ST", lambda j, n: STATE_CODES.get(str(j.get("state")), str(j.get("state")))),
    "T": ("STATE", lambda j, n: str(j.get("state"))),
    "u": ("USER", lambda j, n: _s(j.get("user"), "")),
    "U": ("UID", lambda j, n: _uid(j)),
    "v": ("RESERVATION", lambda j, n: "(null)"),
    "V": ("SUBMIT_TIME", lambda j, n: slurm_time(j.get("submit_time"), "N/A")),
    "w": ("WCKEY", lambda j, n: "(null)"),
    "W": ("LICENSES", lambda j, n: "(null)"),
    "x": ("EXC_NODES", lambda j, n: _s(j.get("excluded_nodes"), "")),
    "X": ("CORE_SPEC", lambda j, n: "N/A"),
    "y": ("NICE", lambda j, n: str(int(j.get("nice") or 0))),
    "Y": ("SCHEDNODES", lambda j, n: _s(j.get("sched_nodes") if j.get("state") == "PENDING" else None)),
    "z": ("S:C:T", lambda j, n: "*:*:*"),
    "Z": ("WORK_DIR", lambda j, n: _s(j.get("work_dir"))),
}

# The keys of a job record each field's value comes from: squeue asks the server for these
# alone (`GET /jobs?fields=`), which makes a view of many jobs several times cheaper. A test
# renders every field from whole records and from records cut to these keys, and compares.
_ID = ("job_id", "array_job_id", "array_task_id")
_PRIORITY = ("scheduling_priority", "priority", "nice", "hold")
_CPUS = ("allocated_cpus", "ntasks", "cpus_per_task")
_MEMORY = ("memory_per_cpu_mb", "memory_per_node_mb")
_RUN_TIME = ("state", "start_time", "elapsed")
KEYS: dict[str, tuple[str, ...]] = {
    **dict.fromkeys("bdDfHIJsOvwWXz", ()),
    "n": ("required_nodes",), "x": ("excluded_nodes",),
    "o": ("command",),
    "a": ("account",), "A": _ID, "B": ("node_list",), "c": ("cpus_per_task",), "C": _CPUS,
    "e": ("end_time", "state", "start_time", "time_limit"), "E": ("dependency",), "F": _ID,
    "g": ("user",), "G": ("user",), "h": ("exclusive",), "i": _ID, "j": ("name",), "k": ("comment",),
    "K": _ID, "l": ("time_limit",), "L": ("time_limit", *_RUN_TIME), "m": _MEMORY, "M": _RUN_TIME,
    "N": ("node_list",), "p": _PRIORITY, "P": ("partition",), "q": ("qos",), "Q": _PRIORITY,
    "r": ("state", "reason", "error_msg"), "R": ("state", "reason", "error_msg", "node_list"),
    "S": ("state", "start_time", "expected_start_time"), "t": ("state",), "T": ("state",), "u": ("user",),
    "U": ("user",), "V": ("submit_time",), "y": ("nice",), "Y": ("state", "sched_nodes"), "Z": ("work_dir",),
}
# What the -O names without a % code read (those printing a constant read nothing).
LONG_KEYS: dict[str, tuple[str, ...]] = {
    "exit_code": ("exit_code",), "stdout": ("standard_output",), "stderr": ("standard_error",),
    "stdin": ("standard_input",), "eligibletime": ("eligible_time",), "restartcnt": ("restart_count",),
    "cpus-per-task": ("cpus_per_task",), "requeue": ("requeue",), "numtasks": ("ntasks",),
    "tasks-per-node": ("ntasks_per_node",), "hold": ("hold",), "accruetime": ("eligible_time",),
    "maxcpus": _CPUS, "ntpernode": ("ntasks_per_node",), "pendingtime": ("submit_time", "start_time"),
    "tres-alloc": (*_CPUS, *_MEMORY),
}
# What filtering, array collapsing and the default order ("P,t,-p") read. The order's priority
# is the server's scheduling_priority, which every record has (priority, nice and hold are what
# job_priority falls back on without it).
BASE_KEYS = (*_ID, "array_max_running", "state", "reason", "user", "name", "partition", "scheduling_priority")
# What each -S sort key reads.
SORT_KEYS: dict[str, tuple[str, ...]] = {
    "i": _ID, "A": _ID, "j": ("name",), "P": ("partition",), "p": _PRIORITY, "Q": _PRIORITY, "t": ("state",),
    "T": ("state",), "u": ("user",), "V": ("submit_time",), "S": ("state", "start_time", "expected_start_time"),
    "e": ("end_time",), "M": ("elapsed",), "l": ("time_limit",), "C": _CPUS, "y": ("nice",), "r": ("reason",),
}

# -O/--Format names (case-insensitive) -> % code, plus a few that have no % code.
LONG_FIELDS: dict[str, str] = {
    "account": "a",
    "arrayjobid": "F",
    "arraytaskid": "K",
    "command": "o",
    "comment": "k",
    "dependency": "E",
    "endtime": "e",
    "exechost": "B",
    "feature": "f",
    "groupid": "G",
    "groupname": "g",
    "jobarrayid": "i",
    "jobid": "A",
    "licenses": "W",
    "mincpus": "c",
    "minmemory": "m",
    "mintmpdisk": "d",
    "name": "j",
    "nice": "y",
    "nodelist": "N",
    "numcpus": "C",
    "numnodes": "D",
    "oversubscribe": "h",
    "partition": "P",
    "priority": "p",
    "prioritylong": "Q",
    "qos": "q",
    "reason": "r",
    "reasonlist": "R",
    "reqnodes": "n",
    "reservation": "v",
    "schednodes": "Y",
    "starttime": "S",
    "state": "T",
    "statecompact": "t",
    "submittime": "V",
    "timeleft": "L",
    "timelimit": "l",
    "timeused": "M",
    "userid": "U",
    "username": "u",
    "wckey": "w",
    "workdir": "Z",
    "excnodes": "x",
    "corespec": "X",
    "contiguous": "O",
}
EXTRA_LONG_FIELDS: dict[str, tuple[str, Getter]] = {
    "exit_code": ("EXIT_CODE", lambda j, n: _s(j.get("exit_code"), "0:0")),
    "stdout": ("STDOUT", lambda j, n: _s(j.get("standard_output"))),
    "stderr": ("STDERR", lambda j, n: _s(j.get("standard_error"))),
    "stdin": ("STDIN", lambda j, n: _s(j.get("standard_input"), "/dev/null")),
    "eligibletime": (
        "ELIGIBLE_TIME",
        lambda j, n: slurm_time(j.get("eligible_time"), "N/A"),
    ),
    "restartcnt": ("RESTART_COUNT", lambda j, n: str(int(j.get("restart_count") or 0))),
    "cpus-per-task": ("CPUS_PER_TASK", lambda j, n: str(int(j.get("cpus_per_task") or 1))),
    "requeue": ("REQUEUE", lambda j, n: "1" if j.get("requeue") else "0"),
    "cluster": ("CLUSTER", lambda j, n: "conductor"),
    "numtasks": ("NUM_TASKS", lambda j, n: str(int(j.get("ntasks") or 1))),
    "tasks-per-node": (
        "TASKS_PER_NODE",
        lambda j, n: str(int(j.get("ntasks_per_node") or 0)),
    ),
    "hold": ("HOLD", lambda j, n: "1" if j.get("hold") else "0"),
    # The rest of squeue's -O names (Slurm 22.05). What a job here does not have prints as
    # squeue prints an unset value: "(null)" for a string, "N/A" for a time or count, "*" for
    # a socket/core/thread count, "NA" for federation fields.
    "accruetime": ("ACCRUE_TIME", lambda j, n: slurm_time(j.get("eligible_time"), "N/A")),
    "admin_comment": ("ADMIN_COMMENT", lambda j, n: "(null)"),
    "allocnodes": ("ALLOC_NODES", lambda j, n: "(null)"),
    "allocsid": ("ALLOC_SID", lambda j, n: "0"),
    "associd": ("ASSOC_ID", lambda j, n: "0"),
    "batchflag": ("BATCH_FLAG", lambda j, n: "1"),
    "boardspernode": ("BOARDS_PER_NODE", lambda j, n: "N/A"),
    "burstbuffer": ("BURST_BUFFER", lambda j, n: "(null)"),
    "burstbufferstate": ("BURST_BUFFER_STATE", lambda j, n: "(null)"),
    "clusterfeature": ("CLUSTER_FEATURES", lambda j, n: "(null)"),
    "container": ("CONTAINER", lambda j, n: "(null)"),
    "cores": ("CORES_PER_SOCKET", lambda j, n: "*"),
    "cpus-per-tres": ("CPUS_PER_TRES", lambda j, n: "N/A"),
    "deadline": ("DEADLINE", lambda j, n: "N/A"),
    "delayboot": ("DELAY_BOOT", lambda j, n: "0:00"),
    "derivedec": ("DERIVED_EC", lambda j, n: "0"),
    "hetjobid": ("HET_JOB_ID", lambda j, n: "N/A"),
    "hetjobidset": ("HET_JOB_ID_SET", lambda j, n: "N/A"),
    "hetjoboffset": ("HET_JOB_OFFSET", lambda j, n: "N/A"),
    "lastschedeval": ("LAST_SCHED_EVAL", lambda j, n: "N/A"),
    "maxcpus": ("MAX_CPUS", lambda j, n: FIELDS["C"][1](j, n)),
    "maxnodes": ("MAX_NODES", lambda j, n: "1"),
    "mcslabel": ("MCSLABEL", lambda j, n: "(null)"),
    "mem-per-tres": ("MEM_PER_TRES", lambda j, n: "N/A"),
    "mintime": ("TIME_MIN", lambda j, n: "0:00"),
    "network": ("NETWORK", lambda j, n: "(null)"),
    "ntperboard": ("NTASKS_PER_BOARD", lambda j, n: "N/A"),
    "ntpercore": ("NTASKS_PER_CORE", lambda j, n: "N/A"),
    "ntpernode": ("NTASKS_PER_NODE", lambda j, n: _s(j.get("ntasks_per_node"), "N/A")),
    "ntpersocket": ("NTASKS_PER_SOCKET", lambda j, n: "N/A"),
    "origin": ("ORIGIN", lambda j, n: "NA"),
    "originraw": ("ORIGIN_RAW", lambda j, n: "NA"),
    "pendingtime": ("PENDING_TIME", lambda j, n: str(_pending_seconds(j, n))),
    "preempttime": ("PREEMPT_TIME", lambda j, n: "N/A"),
    "prefer": ("PREFER", lambda j, n: "(null)"),
    "profile": ("PROFILE", lambda j, n: "NotSet"),
    "reboot": ("REBOOT", lambda j, n: "0"),
    "reqswitch": ("REQ_SWITCH", lambda j, n: "0"),
    "resizetime": ("RESIZE_TIME", lambda j, n: "N/A"),
    "sct": ("S:C:T", lambda j, n: "*:*:*"),
    "selectjobinfo": ("SELECT_JOBINFO", lambda j, n: "(null)"),
    "siblingsactive": ("ACTIVE_SIBLINGS", lambda j, n: "NA"),
    "siblingsactiveraw": ("ACTIVE_SIBLINGS_RAW", lambda j, n: "NA"),
    "siblingsviable": ("VIABLE_SIBLINGS", lambda j, n: "NA"),
    "siblingsviableraw": ("VIALBLE_SIBLINGS_RAW", lambda j, n: "NA"),  # sic, as squeue spells it
    "sockets": ("SOCKETS_PER_NODE", lambda j, n: "*"),
    "sperboard": ("SOCKETS_PER_BOARD", lambda j, n: "0"),
    "system_comment": ("SYSTEM_COMMENT", lambda j, n: "(null)"),
    "threads": ("THREADS_PER_CORE", lambda j, n: "*"),
    "tres-alloc": ("TRES_ALLOC", lambda j, n: _tres_alloc(j)),
    "tres-bind": ("TRES_BIND", lambda j, n: "N/A"),
    "tres-freq": ("TRES_FREQ", lambda j, n: "N/A"),
    "tres-per-job": ("TRES_PER_JOB", lambda j, n: "N/A"),
    "tres-per-node": ("TRES_PER_NODE", lambda j, n: "N/A"),
    "tres-per-socket": ("TRES_PER_SOCKET", lambda j, n: "N/A"),
    "tres-per-task": ("TRES_PER_TASK", lambda j, n: "N/A"),
    "wait4switch": ("WAIT4SWITCH", lambda j, n: "0:00"),
}
# Other names squeue takes for the same fields.
LONG_ALIASES: dict[str, str] = {
    "batchhost": "exechost",
    "shared": "oversubscribe",
    "cpuspertask": "cpus-per-task",
    "gres": "tres-per-node",
    "packjobid": "hetjobid",
    "packjoboffset": "hetjoboffset",
    "packjobidset": "hetjobidset",
}


def _pending_seconds(job: dict[str, Any], now: float) -> int:
    """PENDING_TIME: start - submit once started, now - submit before."""
    from conductor.cli.common import parse_iso

    submit = parse_iso(job.get("submit_time"))
    if submit is None:
        return 0
    start = parse_iso(job.get("start_time"))
    end = start.timestamp() if start is not None and start.timestamp() < now else now
    return max(int(end - submit.timestamp()), 0)


def _tres_alloc(job: dict[str, Any]) -> str:
    """TRES_ALLOC: what was allocated (requested, before the start), as cpu=,mem=,node=,billing=."""
    from conductor.domain.memory import format_memory_mb

    cpus = _cpus(job)
    per_cpu, per_node = job.get("memory_per_cpu_mb"), job.get("memory_per_node_mb")
    memory = int(per_cpu) * cpus if per_cpu else int(per_node or 0)
    return f"cpu={cpus},mem={format_memory_mb(memory)},node=1,billing={cpus}"
LONG_DEFAULT_WIDTH = 20


def _always_whole(job: dict[str, Any], value: str) -> bool:
    return True


def _whole_unless_unlimited(job: dict[str, Any], value: str) -> bool:
    return value not in ("UNLIMITED", "NOT_SET")


def _whole_unless_reason(job: dict[str, Any], value: str) -> bool:
    return str(job.get("state")) not in _REASON_STATES


# The fields squeue prints whole when right-aligned (print.c passes cut_output=false to
# _print_str for them): a run time (_print_secs: %l and %L, not their UNLIMITED, and %M), a node
# list (_print_nodes: %N, and %R's nodes, not its "(reason)"), %Y, and -O ResizeTime's N/A. A
# left-aligned field is cut whatever it holds ("%.Ws" has a precision). code or -O name -> when
# the value is printed whole.
WHOLE: dict[str, Callable[[dict[str, Any], str], bool]] = {
    "l": _whole_unless_unlimited,
    "L": _whole_unless_unlimited,
    "M": _always_whole,
    "N": _always_whole,
    "R": _whole_unless_reason,
    "Y": _always_whole,
    "resizetime": _always_whole,
}
# Of those, the ones whose header is printed whole too (the times' headers are cut).
_WHOLE_HEADERS = frozenset("NRY")


class FormatError(ConductorError, ValueError):
    pass


class Field:
    """One output column: where its value comes from and how it is laid out."""

    __slots__ = ("getter", "header", "keys", "right", "suffix", "whole", "width")

    def __init__(
        self,
        header: str,
        getter: Getter,
        width: int,
        right: bool,
        suffix: str = "",
        keys: tuple[str, ...] = (),
        kind: str = "",
    ):
        # A right-aligned field of a kind squeue prints whole (WHOLE): its value is padded, and
        # cut only when `whole` says so; its header is cut here unless printed whole.
        whole = WHOLE.get(kind) if right and width > 0 else None
        self.header = header if whole is None or kind in _WHOLE_HEADERS else header[:width]
        self.getter = getter
        self.width = width
        self.right = right
        self.suffix = suffix
        self.keys = keys  # what the getter reads of a job record (KEYS)
        self.whole = whole


_PCT_RE = re.compile(r"%(\.)?(\d*)(.)", re.DOTALL)


# squeue -o %all (any case): every field, a to z then A to Z, each unpadded, separated by "|"
# (opts.c parse_format).
ALL_FORMAT = "|".join(f"%{code}" for code in "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


def parse_format(fmt: str, option: str = "-o/--format") -> list[str | Field]:
    """Split a -o format into literal text and fields; `option` names it in errors."""
    if not fmt.strip():
        raise empty_format(option)
    if fmt.lower() == "%all":
        fmt = ALL_FORMAT
    items: list[str | Field] = []
    pos = 0
    for match in _PCT_RE.finditer(fmt):
        if match.start() > pos:
            items.append(fmt[pos : match.start()])
        right, width_text, code = match.groups()
        pos = match.end()
        if code == "%":
            items.append("%")
            continue
        if code not in FIELDS:
            raise FormatError(f"Invalid job format specification: {code}")
        header, getter = FIELDS[code]
        width = field_width(width_text, option) if width_text else 0
        items.append(Field(header, getter, width, bool(right), keys=KEYS[code], kind=code))
    if pos < len(fmt):
        items.append(fmt[pos:])
    return items


def parse_long_format(spec: str, option: str = "-O/--Format") -> list[str | Field]:
    """-O/--Format: 'name[:[.][size][suffix]]' items separated by commas; `option` names it in errors."""
    items: list[str | Field] = []
    for raw in spec.split(","):
        raw = raw.strip()
        if not raw:
            continue
        name, colon, layout = raw.partition(":")
        key = LONG_ALIASES.get(name.lower(), name.lower())
        if key in LONG_FIELDS:
            kind = LONG_FIELDS[key]
            header, getter = FIELDS[kind]
            keys = KEYS[kind]
            if key == "jobarrayid":
                header = "JOBID"
        elif key in EXTRA_LONG_FIELDS:
            kind = key
            header, getter = EXTRA_LONG_FIELDS[key]
            keys = LONG_KEYS.get(key, ())
        else:
            raise FormatError(f"Invalid job format specification: {name}")
        match = re.fullmatch(r"(\.)?(\d*)(.*)", layout)
        assert match is not None
        right = bool(match.group(1))
        # opts.c _parse_long_token: the default width is for a name alone; after a ':' the width
        # is what strtol reads there, 0 (unpadded) when no digits follow (`State:|`).
        width = field_width(match.group(2), option) if match.group(2) else 0 if colon else LONG_DEFAULT_WIDTH
        suffix = match.group(3)
        # -O columns are separated only by their padding (the width includes it), as squeue
        # prints them; a suffix is printed right after the padded value.
        items.append(Field(header, getter, width, right, suffix, keys, kind))
    if not items:
        raise empty_format(option)
    return items


def record_keys(
    items: list[str | Field], sort_spec: str | None, *, live_only: bool = False, filtered: Sequence[str] = ()
) -> list[str]:
    """The keys of a job record that printing `items` in the order `sort_spec` reads, with
    what array collapsing, the default order and the `filtered` keys (account, qos) read.

    `live_only`: every job shown is pending or running (the server was asked for those states
    alone). Then neither the fading out of ended jobs (end_time) nor an ended job's explanation
    in place of its reason (error_msg) is read: a listing of many live jobs costs the server a
    column less for each."""
    wanted = dict.fromkeys(BASE_KEYS)
    wanted.update(dict.fromkeys(filtered))
    if not live_only:
        wanted["end_time"] = None
    for item in items:
        if isinstance(item, Field):
            wanted.update(dict.fromkeys(item.keys))
    for code in (sort_spec or "").split(","):
        wanted.update(dict.fromkeys(SORT_KEYS.get(code.strip().lstrip("+-"), ())))
    if live_only:
        wanted.pop("error_msg", None)  # job_reason shows it for ended jobs alone
    return list(wanted)


def _template(items: list[str | Field]) -> tuple[str, list[Getter]]:
    """One str.format template for a line, and the getter of each of its fields in order: a
    spec `>W.W` pads and cuts a value to W in one step (squeue truncates, it does not widen);
    a field printed whole (its `whole`) is only padded (`>W`), and cut by the line maker."""
    parts: list[str] = []
    getters: list[Getter] = []
    for item in items:
        if isinstance(item, str):
            parts.append(item.replace("{", "{{").replace("}", "}}"))
            continue
        if item.width <= 0:
            spec = ""
        elif item.whole is not None:
            spec = f":>{item.width}"
        else:
            spec = f":{'>' if item.right else '<'}{item.width}.{item.width}"
        parts.append(f"{{{len(getters)}{spec}}}" + item.suffix.replace("{", "{{").replace("}", "}}"))
        getters.append(item.getter)
    return "".join(parts), getters


# A job's line, when it was made as its page arrived (`line_maker`): squeue makes each page's
# lines while the server makes the next page, so that only sorting is left once the last arrives.
LINE = "_line"


def line_maker(items: list[str | Field], now: float) -> Callable[[dict[str, Any]], str]:
    """The line of one job for `items`, as of `now` (without its newline)."""
    generic = generic_line_maker(items, now)
    if _template(items) == _default_layout():
        return _default_line_maker(now, generic)
    return generic


def generic_line_maker(items: list[str | Field], now: float) -> Callable[[dict[str, Any]], str]:
    """line_maker for any format: a getter per field, and a template."""
    template, getters = _template(items)
    line = template.format
    # The fields printed whole, but for some values (WHOLE): (place, when whole, width).
    fields = [item for item in items if isinstance(item, Field)]
    # (A field always printed whole has nothing to decide: left out, it costs a line nothing.)
    cuts = [
        (place, item.whole, item.width)
        for place, item in enumerate(fields)
        if item.whole is not None and item.whole is not _always_whole
    ]

    def make(job: dict[str, Any]) -> str:
        values = [getter(job, now) for getter in getters]
        for place, whole, width in cuts:
            if not whole(job, values[place]):
                values[place] = values[place][:width]
        # Stored text may hold control characters (domain/text.py): never print them raw.
        # isprintable() is false for each of them, and checks the whole line at once in C.
        if not "".join(values).isprintable():
            values = [printable(value) for value in values]
        return line(*values)

    return make


@functools.cache
def _default_layout() -> tuple[str, list[Getter]]:
    """The default format's template and getters: a format that has them is the default one."""
    return _template(parse_format(DEFAULT_FORMAT))


def _default_line_maker(now: float, generic: Callable[[dict[str, Any]], str]) -> Callable[[dict[str, Any]], str]:
    """The line of DEFAULT_FORMAT, the one nearly every squeue prints, in one f-string.

    The same text as the generic maker (a test compares them over records of every state and
    shape), in about half the time: the generic one calls a getter per field and formats a list
    (measured over a queue of 10,000 pending and 1,000 running jobs: 4.7 µs a line, 52 ms in
    all, against 2.6 µs and 28 ms). A
    line with a character that is not printable is left to the generic maker, which replaces it
    field by field."""
    codes = STATE_CODES
    reason_states = _REASON_STATES

    def make(job: dict[str, Any]) -> str:
        state = job.get("state")
        state_text = state if type(state) is str else str(state)
        task_str = job.get("_task_str")
        if task_str:
            job_id = f"{job['array_job_id']}_[{task_str}]"
        else:
            array_job, task = job.get("array_job_id"), job.get("array_task_id")
            job_id = f"{array_job}_{task}" if array_job is not None and task is not None else str(job.get("job_id"))
        partition, name, user = job.get("partition"), job.get("name"), job.get("user")
        if state_text in reason_states:
            where = f"({job_reason(job)})"
        else:
            nodes = job.get("node_list")
            where = "" if nodes is None else str(nodes)
        text = (
            f"{job_id:>18.18} {'' if partition is None else str(partition):>9.9} "
            f"{'' if name is None else str(name):>8.8} {'' if user is None else str(user):>8.8} "
            f"{codes.get(state_text, state_text):>2.2} "
            f"{'0:00' if state_text == 'PENDING' else clock(_elapsed(job, now)):>10}      1 {where}"
        )
        return text if text.isprintable() else generic(job)

    return make


def render(
    items: list[str | Field],
    jobs: list[dict[str, Any]],
    *,
    header: bool,
    now: float | None = None,
) -> str:
    """The lines of `jobs` in their order; a job's line made earlier (its LINE) is taken as it is."""
    make = line_maker(items, _time.time() if now is None else now)
    fields = [item for item in items if isinstance(item, Field)]
    lines = [_template(items)[0].format(*[item.header for item in fields])] if header else []
    lines.extend(job.get(LINE) or make(job) for job in jobs)
    return "".join(text + "\n" for text in lines)


def collapse_pending_arrays(jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Pending tasks of one array show as one line, `123_[5-99%4]`, as squeue shows them.

    Tasks that already run (or ended) keep their own lines (`123_4`). Pending tasks group by
    array and reason, since Slurm splits out the tasks whose situation differs. Resources and
    Priority are one situation: Slurm keeps the array's unsplit tasks in one record whose reason
    is its first task's (here, the first task waits with Resources and the rest behind it with
    Priority).
    """
    from conductor.domain.arrays import format_array_indices

    groups: dict[tuple[int, str], list[dict[str, Any]]] = {}
    out: list[dict[str, Any]] = []
    for job in jobs:
        if (
            job.get("state") == "PENDING"
            and job.get("array_job_id") is not None
            and job.get("array_task_id") is not None
        ):
            reason = str(job.get("reason"))
            key = (int(job["array_job_id"]), "Resources" if reason == "Priority" else reason)
            if key not in groups:
                groups[key] = []
                out.append({"_group": key})
            groups[key].append(job)
        else:
            out.append(job)
    result: list[dict[str, Any]] = []
    for entry in out:
        if "_group" not in entry:
            result.append(entry)
            continue
        members = groups[entry["_group"]]
        if len(members) == 1:
            result.append(members[0])
            continue
        first = min(members, key=lambda j: int(j["array_task_id"]))
        merged = dict(first)
        merged.pop(LINE, None)  # the first task's own line: the group's differs
        merged.pop(SORT_KEY, None)
        limit = first.get("array_max_running")
        merged["_task_str"] = format_array_indices(
            [int(j["array_task_id"]) for j in members],
            max_running=int(limit) if limit else None,
        )
        merged["job_id"] = first["array_job_id"]
        result.append(merged)
    return result


# A job's place in the default order, when it was worked out with its line (see LINE).
SORT_KEY = "_sort_key"


def _state_compact(job: dict[str, Any]) -> str:
    """The state as %t shows it, which -S t (and the default order) sorts by, as text."""
    state = str(job.get("state"))
    return STATE_CODES.get(state, state)


def default_key(job: dict[str, Any]) -> tuple[str, str, int, int, int]:
    """squeue's default order "P,t,-p": partition, state as %t shows it (sort.c compares the
    compact state strings: CG before PD before R), then descending priority."""
    return (
        str(job.get("partition") or ""),
        _state_compact(job),
        -job_priority(job),
        int(job.get("array_job_id") or job.get("job_id") or 0),
        int(job.get("array_task_id") or 0),
    )


def default_sort(jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The jobs in the default order; a job's key worked out earlier (its SORT_KEY) is taken as it is."""
    return sorted(jobs, key=lambda j: j.get(SORT_KEY) or default_key(j))


_SORT_KEYS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "i": lambda j: (
        int(j.get("array_job_id") or j["job_id"]),
        int(j.get("array_task_id") or 0),
    ),
    "A": lambda j: int(j["job_id"]),
    "j": lambda j: str(j.get("name") or ""),
    "P": lambda j: str(j.get("partition") or ""),
    "p": job_priority,
    "Q": job_priority,
    # sort.c _sort_job_by_state_compact / _sort_job_by_state: the state strings shown by %t / %T.
    "t": _state_compact,
    "T": lambda j: str(j.get("state")),
    "u": lambda j: str(j.get("user") or ""),
    "V": lambda j: str(j.get("submit_time") or ""),
    "S": lambda j: str(start_time(j) or ""),
    "e": lambda j: str(j.get("end_time") or ""),
    "M": lambda j: int(j.get("elapsed") or 0),
    "l": lambda j: j.get("time_limit") if j.get("time_limit") is not None else 1 << 62,
    "C": _cpus,
    "y": lambda j: int(j.get("nice") or 0),
    "r": lambda j: str(j.get("reason") or ""),
}


def sort_jobs(jobs: list[dict[str, Any]], spec: str) -> list[dict[str, Any]]:
    """squeue -S: comma-separated codes, '-' for descending, '+' (default) ascending."""
    ordered = list(jobs)
    for item in reversed([s.strip() for s in spec.split(",") if s.strip()]):
        descending = item.startswith("-")
        code = item.lstrip("+-")
        key = _SORT_KEYS.get(code)
        if key is None:
            raise FormatError(f"Invalid sort specification: {item}")
        ordered.sort(key=key, reverse=descending)
    return ordered
