"""`conductor scontrol`: show job/node/partition/config, hold, release, requeue, update, hostnames."""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime, timedelta

from conductor.cli.client import ApiError, Client
from conductor.cli.common import (
    SLURM_VERSION,
    UsageError,
    exit_code,
    hms,
    job_display_id,
    job_reason,
    parse_iso,
    run,
    slurm_time,
)
from conductor.cli.dependency_states import DependencyStates, shown_dependency
from conductor.cli.getopt import Option, OptionTable, getopt_long
from conductor.cli.jobsel import check_min_job_age, fetch_jobs, min_job_age, parse_job_specs, still_held
from conductor.cli.squeue_format import job_priority, start_time
from conductor.cli.unavailable import UnavailableNodes
from conductor.domain.arrays import MAX_ARRAY_INDEX
from conductor.domain.errors import SpecError
from conductor.domain.text import printable
from conductor.domain.timespec import parse_time_limit

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

PROG = "scontrol"

OPTIONS = OptionTable(
    [
        Option("all", ("all",), "a"),
        Option("details", ("details",), "d"),
        Option("help", ("help",), "h"),
        Option("hide", ("hide",), None),
        Option("clusters", ("clusters", "cluster"), "M", "required"),
        Option("oneliner", ("oneliner",), "o"),
        Option("quiet", ("quiet",), "Q"),
        Option("usage", ("usage",), "u"),
        Option("verbose", ("verbose",), "v"),
        Option("version", ("version",), "V"),
        Option("json", ("json",), None, "optional"),
        Option("yaml", ("yaml",), None, "optional"),
    ]
)

USAGE = """\
scontrol [<OPTION>] [<COMMAND>]
    Valid <COMMAND> values here:
     hold <job_list>          prevent specified job from starting.
     reconfigure              reread the cluster configuration file (administrators).
     release <job_list>       permit specified job to start.
     requeue <job_id>         re-queue a batch job.
     show <ENTITY> [<ID>]     display state of identified entity, default is all records.
                              <ENTITY> is job, node, partition, config, hostnames or hostlist.
     update JobId=<id> <SPECIFICATIONS>
                              change TimeLimit, Priority, Nice or JobName of a job
                              (TimeLimit+=<time> and TimeLimit-=<time> change it by an amount).
     update PartitionName=<name> State=UP|DOWN|DRAIN|INACTIVE
                              change a partition's state (administrators).
     update NodeName=<nodes> State=DRAIN Reason=<text> | State=RESUME | State=UNDRAIN
                              drain nodes (no new job; running jobs go on) or
                              resume them (administrators).
     version                  display tool version number.
"""


DESCRIBED: dict[str, tuple[str, str]] = {
    "all": ("", "equivalent to \"all\" command (show hidden partitions)"),
    "clusters": ("names", "clusters to issue commands to (one cluster here)"),
    "details": ("", "make 'show job' more verbose (batch script path, CPU ids)"),
    "help": ("", "show this help message"),
    "hide": ("", "do not show hidden or non-accessible partitions"),
    "json": ("data_parser", "Slurm's JSON output (not supported here)"),
    "oneliner": ("", "print information one line per record"),
    "quiet": ("", "print no warning or informational messages"),
    "usage": ("", "display brief usage message"),
    "verbose": ("", "print detailed event logging"),
    "version": ("", "print version information and exit"),
    "yaml": ("data_parser", "Slurm's YAML output (not supported here)"),
}


def help_text() -> str:
    from conductor.cli.helptext import page

    usage, _, commands = USAGE.partition("\n")
    return page(usage, OPTIONS, DESCRIBED, epilog=commands)


def _s(value: Any, missing: str = "(null)") -> str:
    return missing if value is None or value == "" else str(value)


def _ids(job: dict[str, Any]) -> tuple[str, str]:
    """(uid, gid) names as scontrol shows them: user(uid)."""
    user = str(job.get("user") or "")
    try:
        import grp
        import pwd

        entry = pwd.getpwnam(user)
        group = grp.getgrgid(entry.pw_gid).gr_name
        return f"{user}({entry.pw_uid})", f"{group}({entry.pw_gid})"
    except (ImportError, KeyError):
        return f"{user}(4294967294)", "(null)(4294967294)"


def _mem(mb: Any) -> str:
    from conductor.domain.memory import format_memory_mb

    return format_memory_mb(int(mb or 0))


def _end_time(job: dict[str, Any]) -> str | None:
    """The end, or for a pending job with a planned start the end its time limit implies."""
    if job.get("state") == "PENDING":
        start = parse_iso(job.get("expected_start_time"))
        limit = job.get("time_limit")
        if start is None or limit is None:
            return None
        return (start + timedelta(seconds=int(limit))).isoformat()
    return job.get("end_time") or None


def format_config(config: dict[str, Any], min_job_age: int) -> str:
    """`scontrol show config`, as slurm_print_ctl_conf prints it: a title, then `Key = value`
    lines, the keys padded to 23, for what the cluster has of Slurm's settings."""
    limit = config.get("default_time_limit")
    pairs = {
        "AccountingStorageType": "accounting_storage/conductor",
        "ClusterName": str(config.get("cluster_name") or ""),
        "DefaultTime": hms(int(limit)) if isinstance(limit, int) else "UNLIMITED",
        "DefMemPerNode": "UNLIMITED",
        "KillWait": f"{int(float(config.get('kill_wait') or 0))} sec",
        # One above the largest task index taken, as Slurm's (the count is bounded apart).
        "MaxArraySize": str(MAX_ARRAY_INDEX + 1),
        "MinJobAge": f"{min_job_age} sec",
        "PriorityType": str(config.get("priority_type") or "priority/basic"),
        "SchedulerType": "sched/backfill",
        "SelectType": "select/cons_tres",
        "SLURM_CONF": str(config.get("config_file") or "(null)"),
        "SLURM_VERSION": SLURM_VERSION.split()[-1],
        "SlurmdTimeout": f"{int(float(config.get('heartbeat_timeout') or 0))} sec",
    }
    title = f"Configuration data as of {datetime.now().strftime('%Y-%m-%dT%H:%M:%S')}\n"
    return title + "".join(f"{key:<23} = {value}\n" for key, value in pairs.items())


def _run_time(job: dict[str, Any]) -> int:
    if job.get("state") == "RUNNING":
        start = parse_iso(job.get("start_time"))
        if start is not None:
            return max(int(time.time() - start.timestamp()), 0)
    return int(job.get("elapsed") or 0)


def format_job(job: dict[str, Any]) -> list[str]:
    """The records of `scontrol show job`, one list item per output line."""
    uid, gid = _ids(job)
    cpus = int(job.get("allocated_cpus") or 0) or (
        int(job.get("ntasks") or 1) * int(job.get("cpus_per_task") or 1)
    )
    mem_cpu = job.get("memory_per_cpu_mb")
    mem = (
        f"MinMemoryCPU={_mem(mem_cpu)}"
        if mem_cpu
        else f"MinMemoryNode={_mem(job.get('memory_per_node_mb'))}"
    )
    limit = job.get("time_limit")
    first = f"JobId={job['job_id']}"
    if job.get("array_job_id") is not None and job.get("array_task_id") is not None:
        task = job.get("_task_str") or job["array_task_id"]  # "1-20%4": the pending tasks' record
        first += f" ArrayJobId={job['array_job_id']} ArrayTaskId={task}"
        if job.get("array_max_running"):
            first += f" ArrayTaskThrottle={job['array_max_running']}"
    first += f" JobName={_s(job.get('name'), '')}"
    node = job.get("node_list")
    state = str(job.get("state"))
    pending = state == "PENDING"
    tres = f"cpu={cpus},mem={_mem(job.get('memory_per_node_mb') or (mem_cpu or 0) * cpus)},node=1"
    return [
        first,
        f"UserId={uid} GroupId={gid} MCS_label=N/A",
        (
            f"Priority={job_priority(job)} Nice={int(job.get('nice') or 0)} "
            f"Account={_s(job.get('account'))} QOS={_s(job.get('qos'), 'normal')}"
        ),
        (
            # Whitespace as underscores, as scontrol prints a state_desc: one word per field.
            f"JobState={state} Reason={'_'.join(job_reason(job).split())} "
            f"Dependency={_s(shown_dependency(job))}"
        ),
        (
            f"Requeue={1 if job.get('requeue') else 0} Restarts={int(job.get('restart_count') or 0)} "
            f"BatchFlag=1 Reboot=0 ExitCode={exit_code(job)}"
        ),
        (
            f"RunTime={hms(_run_time(job))} TimeLimit={hms(limit) if limit is not None else 'UNLIMITED'} "
            "TimeMin=N/A"
        ),
        (
            f"SubmitTime={slurm_time(job.get('submit_time'))} "
            f"EligibleTime={slurm_time(job.get('eligible_time'))}"
        ),
        f"AccrueTime={slurm_time(job.get('eligible_time'))}",
        (
            f"StartTime={slurm_time(start_time(job))} EndTime={slurm_time(_end_time(job))} "
            "Deadline=N/A"
        ),
        "SuspendTime=None SecsPreSuspend=0 LastSchedEval="
        + slurm_time(job.get("start_time") or job.get("submit_time"))
        + " Scheduler=Main",
        f"Partition={_s(job.get('partition'))} AllocNode:Sid={_s(node, 'localhost')}:0",
        f"ReqNodeList={_s(job.get('required_nodes'))} ExcNodeList={_s(job.get('excluded_nodes'))}",
        f"NodeList={_s(None if pending else node)}"
        + (f" SchedNodeList={job['sched_nodes']}" if pending and job.get("sched_nodes") else ""),
        f"BatchHost={_s(None if pending else node)}" if not pending else "",
        (
            f"NumNodes=1 NumCPUs={cpus} NumTasks={int(job.get('ntasks') or 1)} "
            f"CPUs/Task={int(job.get('cpus_per_task') or 1)} ReqB:S:C:T=0:0:*:*"
        ),
        f"TRES={tres}",
        f"Socks/Node=* NtasksPerN:B:S:C={int(job.get('ntasks_per_node') or 0)}:0:*:* CoreSpec=*",
        f"MinCPUsNode={int(job.get('cpus_per_task') or 1)} {mem} MinTmpDiskNode=0",
        "Features=(null) DelayBoot=00:00:00",
        (
            f"OverSubscribe={'NO' if job.get('exclusive') else 'OK'} Contiguous=0 Licenses=(null) "
            "Network=(null)"
        ),
        f"Command={_s(job.get('command'))}",
        f"WorkDir={_s(job.get('work_dir'))}",
        f"Comment={job['comment']}" if job.get("comment") else "",
        f"StdErr={_s(job.get('standard_error'))}",
        f"StdIn={_s(job.get('standard_input'), '/dev/null')}",
        f"StdOut={_s(job.get('standard_output'))}",
        _usage_line(job),
        "Power=",
    ]


def _usage_line(job: dict[str, Any]) -> str:
    """Ours: what the job used, in sacct's formats (Slurm's scontrol has no such line; "" until
    the job's node measured it)."""
    from conductor.domain.usage import format_cpu, format_memory

    usage = job.get("usage")
    if not isinstance(usage, dict):
        return ""
    rss = usage.get("max_rss")
    return (
        f"MaxRSS={format_memory(int(rss)) if rss is not None else ''} "
        f"TotalCPU={format_cpu(usage.get('total_cpu'))} UserCPU={format_cpu(usage.get('user_cpu'))} "
        f"SystemCPU={format_cpu(usage.get('system_cpu'))}"
    )


def node_state_complete(node: dict[str, Any]) -> str:
    """The state as `scontrol show node` prints it: the base state, then its flags
    (node_state_string_complete): IDLE+DRAIN, MIXED+DRAIN, ALLOCATED+DRAIN, DOWN+DRAIN."""
    state = str(node.get("state") or "UNKNOWN")
    return state + "+DRAIN" if node.get("drained") else state


def node_reason_line(node: dict[str, Any]) -> str:
    """`Reason=TEXT [USER@TIME]` as scontrol prints it (src/api/node_info.c): a drain's reason,
    else why the node is down (no user or time is kept for that); "" when there is none."""
    if node.get("drained"):
        return (
            f"Reason={node.get('drain_reason') or ''} "
            f"[{node.get('drain_user') or 'Unknown'}@{slurm_time(node.get('drain_time'))}]"
        )
    if node.get("reason") and node.get("state") == "DOWN":
        return f"Reason={node['reason']}"
    return ""


def format_node(node: dict[str, Any]) -> list[str]:
    import platform

    cpus = int(node.get("cpus") or 0)
    memory = int(node.get("memory_mb") or 0)
    alloc_mem = int(node.get("alloc_memory_mb") or 0)
    name = node["name"]
    return [
        f"NodeName={name} Arch={platform.machine()} CoresPerSocket=1",
        f"CPUAlloc={int(node.get('alloc_cpus') or 0)} CPUEfctv={cpus} CPUTot={cpus} CPULoad=N/A",
        "AvailableFeatures=(null)",
        "ActiveFeatures=(null)",
        "Gres=(null)",
        f"NodeAddr={name} NodeHostName={name} Version=conductor",
        f"OS={platform.system()} {platform.release()}",
        (
            f"RealMemory={memory} AllocMem={alloc_mem} FreeMem={memory - alloc_mem} "
            f"Sockets={cpus} Boards=1"
        ),
        f"State={node_state_complete(node)} ThreadsPerCore=1 TmpDisk=0 Weight=1 Owner=N/A MCS_label=N/A",
        "Partitions=" + ",".join(node.get("partitions") or []),
        f"LastHeartbeat={slurm_time(node.get('last_heartbeat'))}",
        f"CfgTRES=cpu={cpus},mem={_mem(memory)},billing={cpus}",
        f"AllocTRES=cpu={int(node.get('alloc_cpus') or 0)},mem={_mem(alloc_mem)}"
        if node.get("alloc_cpus")
        else "AllocTRES=",
        f"CpuBinding={'YES' if node.get('cpu_binding') else 'NO'}",
        node_reason_line(node),
    ]


def format_partition(part: dict[str, Any]) -> list[str]:
    from conductor.domain.hostlist import compress_hostlist

    max_time = part.get("max_time")
    default_time = part.get("default_time")
    max_cpus = part.get("max_cpus_per_node")
    accounts = part.get("allow_accounts")
    nodes = part.get("nodes") or []
    return [
        f"PartitionName={part['name']}",
        f"AllowGroups=ALL AllowAccounts={','.join(accounts) if accounts else 'ALL'} AllowQos=ALL",
        f"AllocNodes=ALL Default={'YES' if part.get('default') else 'NO'} QoS=N/A",
        (
            f"DefaultTime={hms(default_time) if default_time is not None else 'NONE'} "
            "DisableRootJobs=NO ExclusiveUser=NO GraceTime=0 Hidden=NO"
        ),
        (
            f"MaxNodes=1 MaxTime={hms(max_time) if max_time is not None else 'UNLIMITED'} "
            f"MinNodes=0 LLN=NO MaxCPUsPerNode={max_cpus if max_cpus is not None else 'UNLIMITED'}"
        ),
        f"Nodes={compress_hostlist(nodes) if nodes else '(null)'}",
        (
            f"PriorityJobFactor=1 PriorityTier={part.get('priority_tier', 1)} RootOnly=NO ReqResv=NO "
            "OverSubscribe=NO"
        ),
        "OverTimeLimit=NONE PreemptMode=OFF",
        (
            f"State={part.get('state', 'UP')} TotalCPUs={int(part.get('total_cpus') or 0)} "
            f"TotalNodes={len(nodes)} SelectTypeParameters=NONE"
        ),
        "JobDefaults=(null)",
        "DefMemPerNode=UNLIMITED MaxMemPerNode=UNLIMITED",
    ]


def layout(records: list[list[str]], oneliner: bool) -> str:
    out = []
    for lines in records:
        # Each line is "Key=Value ..." of stored text, which may hold control characters
        # (domain/text.py): never print them raw, nor let a newline start a false record.
        lines = [printable(line) for line in lines if line]
        if oneliner:
            out.append(" ".join(lines) + "\n")
        else:
            out.append(
                lines[0] + "\n" + "".join(f"   {line}\n" for line in lines[1:]) + "\n"
            )
    return "".join(out)


def main(argv: list[str]) -> int:
    return run(PROG, lambda: _main(argv))


def _main(argv: list[str]) -> int:
    parsed, words = getopt_long(argv, OPTIONS)
    opts = dict(parsed)
    if "help" in opts:
        sys.stdout.write(help_text())
        return 0
    if "usage" in opts or not words:
        sys.stdout.write(USAGE)
        return 0 if ("help" in opts or "usage" in opts) else 1
    if "version" in opts or words[0].lower() == "version":
        sys.stdout.write(SLURM_VERSION)
        return 0
    command, args = words[0].lower(), words[1:]
    oneliner = "oneliner" in opts
    quiet = "quiet" in opts

    if command == "show":
        return _show(args, oneliner)
    if command in ("hold", "uhold", "release", "requeue", "requeuehold"):
        return _job_action(command, args, quiet)
    if command in ("reconfigure", "reconfig"):
        from conductor.cli.scontrol_cluster import reconfigure

        return reconfigure(quiet)
    if command == "update":
        # The entity, as scontrol's _update_it tells it: a JobId or JobName anywhere makes it a
        # job's update (a job's line may name a partition), else NodeName, else PartitionName.
        from conductor.cli.scontrol_nodes import is_node_key, update_node

        if any(_is_job_key(a) for a in args):
            return _update(args, quiet)
        if any(is_node_key(a.partition("=")[0]) for a in args):
            return update_node(args, quiet)
        if any(_is_partition_key(a) for a in args):
            from conductor.cli.scontrol_cluster import update_partition

            return update_partition(args, quiet)
        raise UsageError(
            'No valid entity in update command\nInput line must include "NodeName", "PartitionName" or "JobId"'
        )
    raise UsageError(f"Invalid command: {words[0]}\n{USAGE.rstrip()}")


def _show(args: list[str], oneliner: bool) -> int:  # noqa: C901 - one branch per entity
    if not args:
        raise UsageError("too few arguments for keyword:show")
    entity = args[0].lower()
    target = args[1] if len(args) > 1 else None
    if entity in ("hostnames", "hostname"):
        import os

        from conductor.domain.hostlist import expand_hostlist

        # A malformed or too long list is refused by expand_hostlist (a SpecError naming the
        # list, which run() prints), never expanded without bound.
        field = entity if target else "SLURM_JOB_NODELIST"
        text = target or os.environ.get("SLURM_JOB_NODELIST", "")
        sys.stdout.write("".join(f"{name}\n" for name in expand_hostlist(text, field=field)))
        return 0
    if entity in ("hostlist", "hostlistsorted"):
        from conductor.domain.hostlist import compress_hostlist, expand_hostlist

        if not (target or "").strip():
            raise UsageError(f"show {entity}: give the host names, e.g. node1,node2,node[3-5]")
        # Names or ranged expressions (node1,node[2-5]), as Slurm takes them: expanded first,
        # so a malformed or too long list is refused as `show hostnames` refuses it.
        names = expand_hostlist(target or "", field=entity)
        sys.stdout.write(compress_hostlist(names, field=entity) + "\n")
        return 0
    client = Client()
    try:
        if "jobs".startswith(entity) and entity:
            check_min_job_age()
            specs = parse_job_specs([target]) if target else None
            # Only the jobs slurmctld would still hold: alive, or ended within MinJobAge (the
            # whole history is sacct's; asking for it cost a listing every ended job).
            now, age = time.time(), min_job_age()
            since = None if specs else datetime.fromtimestamp(now - age, tz=UTC).isoformat()
            jobs = [j for j in fetch_jobs(client, specs, since=since, completing=True) if still_held(j, now, age)]
            UnavailableNodes(client).describe(jobs)
            DependencyStates(client).describe(jobs)
            if target and not jobs:
                sys.stderr.write("slurm_load_jobs error: Invalid job id specified\n")
                return 1
            if not jobs:
                sys.stdout.write("No jobs in the system\n")
                return 0
            if not (specs and any(spec.tasks is not None for spec in specs)):
                # The tasks of an array not started yet are one record, as slurmctld keeps
                # them (ArrayTaskId=1-20%4); a task named by its id shows alone.
                from conductor.cli.squeue_format import collapse_pending_arrays

                jobs = collapse_pending_arrays(jobs)
            sys.stdout.write(layout([format_job(j) for j in jobs], oneliner))
            return 0
        if "nodes".startswith(entity) and entity:
            nodes = client.get("/nodes").get("nodes", [])
            if target:
                nodes = [n for n in nodes if n["name"] == target]
                if not nodes:
                    sys.stderr.write(f"Node {target} not found\n")
                    return 1
            sys.stdout.write(layout([format_node(n) for n in nodes], oneliner))
            return 0
        if "config".startswith(entity) and entity:
            sys.stdout.write(format_config(client.get("/config"), min_job_age()))
            return 0
        if "partitions".startswith(entity) and entity:
            parts = client.get("/partitions").get("partitions", [])
            if target:
                parts = [p for p in parts if p["name"] == target]
                if not parts:
                    sys.stderr.write(f"Partition {target} not found\n")
                    return 1
            sys.stdout.write(layout([format_partition(p) for p in parts], oneliner))
            return 0
    finally:
        client.close()
    raise UsageError(f"invalid entity:{args[0]} for keyword:show")


def _job_action(command: str, args: list[str], quiet: bool) -> int:
    if not args:
        raise UsageError(f"too few arguments for keyword:{command}")
    client = Client()
    rc = 0
    try:
        specs = parse_job_specs(args)
        jobs = fetch_jobs(client, specs)
        for spec in specs:
            if not any(spec.matches(j) for j in jobs):
                sys.stderr.write(f"Invalid job id specified for job {spec.text}\n")
                rc = 1
        action = {
            "hold": "hold",
            "uhold": "hold",
            "release": "release",
            "requeue": "requeue",
            "requeuehold": "requeue",
        }[command]
        for job in jobs:
            named = any(
                spec.matches(job)
                and (spec.tasks is not None or job.get("array_job_id") is None)
                for spec in specs
            )
            if (
                action in ("hold", "release")
                and job.get("state") != "PENDING"
                and not named
            ):
                continue  # a whole array: only its pending tasks can be held or released
            try:
                if command == "requeuehold":
                    # One request: a running job is requeued held without a window in
                    # which the scheduler could start it again.
                    client.post(f"/jobs/{job['job_id']}/requeue", {"hold": True})
                else:
                    client.post(f"/jobs/{job['job_id']}/{action}")
            except ApiError as exc:
                if not quiet:
                    sys.stderr.write(
                        f"{command} error on job {job_display_id(job)}: {exc.message}\n"
                    )
                rc = 1
    finally:
        client.close()
    return rc


# update keys (case-insensitive) -> PATCH body keys
_UPDATE_KEYS = {
    "timelimit": "time_limit",
    "priority": "priority",
    "nice": "nice",
    "jobname": "name",
    "name": "name",
    "comment": "comment",
}


def _is_partition_key(arg: str) -> bool:
    key = arg.partition("=")[0].lower()
    return len(key) >= 3 and "partitionname".startswith(key)


def _is_job_key(arg: str) -> bool:
    """JobId= or JobName= (3 letters or more): scontrol's update is of a job then, whatever
    else the line names (src/scontrol/scontrol.c, _update_it)."""
    key = arg.partition("=")[0].lower()
    return len(key) >= 3 and ("jobid".startswith(key) or "jobname".startswith(key))


def _time_change(key: str, value: str) -> tuple[str, int]:
    """`TimeLimit+=T`, `TimeLimit-=T` or `TimeLimit=+T`/`=-T`: (sign, seconds), as scontrol's
    update_job.c reads an increment or decrement of the current limit."""
    sign, text = (key[-1], value) if key[-1] in "+-" else (value[0], value[1:])
    if key[-1] in "+-" and value[:1] in ("+", "-"):
        raise UsageError("Invalid syntax, variations of +=- are not accepted.")
    try:
        seconds = parse_time_limit(text, field="TimeLimit")
    except SpecError:
        seconds = None
    if seconds is None:
        raise UsageError("Invalid TimeLimit value")
    return sign, seconds


def _changed_limit(job: dict[str, Any], change: tuple[str, int]) -> str:
    """The new TimeLimit of `job` after an increment or decrement (UsageError when it has none
    to change, or would have none left)."""
    sign, seconds = change
    current = job.get("time_limit")
    if current is None:
        raise UsageError("its TimeLimit is UNLIMITED: set one (TimeLimit=T) before changing it by an amount")
    if sign == "+":
        return hms(int(current) + seconds)
    if seconds >= int(current):
        raise UsageError(
            f"TimeLimit decrement leaves no time (as large as the current limit: {hms(seconds)} >= {hms(current)})"
        )
    return hms(int(current) - seconds)


def _update(args: list[str], quiet: bool) -> int:  # noqa: C901 - one branch per key
    job_text: str | None = None
    body: dict[str, Any] = {}
    change: tuple[str, int] | None = None
    for arg in args:
        key, eq, value = arg.partition("=")
        lowered = key.lower()
        if not eq:
            raise UsageError(f"Invalid input: {arg}\nRequest aborted")
        if lowered in ("jobid", "job"):
            job_text = value
        elif lowered in ("timelimit+", "timelimit-") or (lowered == "timelimit" and value[:1] in ("+", "-")):
            change = _time_change(key, value)
            body.pop("time_limit", None)
        elif lowered in _UPDATE_KEYS:
            api_key = _UPDATE_KEYS[lowered]
            if api_key in ("priority", "nice"):
                try:
                    body[api_key] = int(value)
                except ValueError:
                    raise UsageError(f"Invalid {key} value: {value}") from None
            else:
                body[api_key] = value
                if api_key == "time_limit":
                    change = None  # the last TimeLimit given wins
        else:
            raise UsageError(
                f"Update of this parameter is not supported: {arg}\nRequest aborted"
            )
    if job_text is None:
        raise UsageError("No job id given (JobId=<id>)\nRequest aborted")
    if not body and change is None:
        raise UsageError("No changes specified\nRequest aborted")
    client = Client()
    rc = 0
    try:
        specs = parse_job_specs([job_text])
        jobs = fetch_jobs(client, specs)
        if not jobs:
            sys.stderr.write(f"Invalid job id specified for job {job_text}\n")
            return 1
        for job in jobs:
            try:
                # Read, then set, as scontrol's _get_job_time does: each job from its own limit.
                changed = {**body, "time_limit": _changed_limit(job, change)} if change else body
                client.patch(f"/jobs/{job['job_id']}", changed)
            except UsageError as exc:
                if not quiet:
                    sys.stderr.write(f"Error updating job {job_display_id(job)}: {exc}\n")
                rc = 1
            except ApiError as exc:
                if not quiet:
                    sys.stderr.write(
                        f"Error updating job {job_display_id(job)}: {exc.message}\n"
                    )
                rc = 1
    finally:
        client.close()
    return rc
