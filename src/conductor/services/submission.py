"""Turning a validated job description into job rows, and refusing what can never run."""

from __future__ import annotations

import ipaddress
import json
import os
import pwd
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from conductor.domain.arrays import parse_array_spec
from conductor.domain.dependency import format_dependency, parse_dependency
from conductor.domain.errors import SpecError
from conductor.domain.hostlist import expand_hostlist, hostlist_sort_key
from conductor.domain.memory import parse_memory_mb
from conductor.domain.script import EXPLAINED, script_problem
from conductor.domain.signals import parse_signal_spec
from conductor.domain.states import Reason
from conductor.domain.text import printable, variable_name_problem
from conductor.domain.timespec import parse_begin_time, parse_time_limit
from conductor.errors import Forbidden, InvalidNodeName, InvalidPartition, Unsatisfiable
from conductor.scheduler.policy import NodeView
from conductor.services.requests import JobDescription

_SIGNAL_SPEC = re.compile(r"(?:(?:B|R|RB|BR):)?(?:SIG)?[A-Z0-9]+(?:@\d{1,5})?", re.IGNORECASE | re.ASCII)
_NODES = re.compile(r"(\d+)(?:-(\d+))?", re.ASCII)
MAX_NODE_DIGITS = 9  # a count of nodes, not a number Python's int() refuses (over 4,300 digits)
NODE_CONFIG_UNAVAILABLE = "Requested node configuration is not available"
# Credentials an exported environment may carry (sbatch --export=ALL): a job never gets them,
# and the database never stores them. A job that submits jobs finds its user's token file.
SECRET_VARIABLES = frozenset({"CONDUCTOR_TOKEN", "SLURM_JWT"})


def check_privileges(job: JobDescription, *, admin: bool) -> None:
    """As in Slurm, only administrators set a job's priority or a negative nice at submission:
    either puts a job ahead of everyone else's. (PATCH lets a user lower them, as scontrol does.)"""
    if admin:
        return
    if job.priority is not None:
        raise Forbidden("priority: only an administrator may set a job's priority", field="priority")
    if job.nice < 0:
        raise Forbidden("nice: only an administrator may set a negative nice value", field="nice")


@dataclass(frozen=True, slots=True)
class Limits:
    max_script_bytes: int
    max_environment_bytes: int
    max_array_tasks: int
    default_partition: str
    # What an array's tasks store in all (each holds the script and environment): one request
    # of a 4 MiB script and 100,000 tasks stored 400 GB.
    max_array_bytes: int = 1 << 30
    default_time_limit: int | None = None  # seconds, for jobs that give none; None: UNLIMITED


@dataclass(frozen=True, slots=True)
class Submitter:
    user: str
    uid: int | None
    gid: int | None
    home: str | None
    host: str


# A passwd entry is read again after this long: a lookup reads the whole file (or asks a
# directory service), which was 6% of the server's time per submission under load.
PASSWD_CACHE_SECONDS = 10.0
_passwd: dict[str, tuple[float, tuple[int, int, str] | None]] = {}


def submit_host(client_host: str | None, local: str) -> str:
    """The job's SLURM_SUBMIT_HOST: the client's address, or, for a client on this host (a
    loopback address, or none known), this host's name, as sbatch names the host it ran on."""
    if not client_host:
        return local
    try:
        loopback = ipaddress.ip_address(client_host).is_loopback
    except ValueError:  # not an address (a test client's name): taken as given
        return client_host
    return local if loopback else client_host


def submitter_for(user: str, host: str) -> Submitter:
    now = time.monotonic()
    cached = _passwd.get(user)
    if cached is None or cached[0] < now:
        try:
            entry = pwd.getpwnam(user)
            found: tuple[int, int, str] | None = (entry.pw_uid, entry.pw_gid, entry.pw_dir)
        except KeyError:
            found = None
        if len(_passwd) >= 4096:
            _passwd.clear()  # bounded: names come from tokens, but never let them pile up
        cached = _passwd[user] = (now + PASSWD_CACHE_SECONDS, found)
    if cached[1] is None:
        return Submitter(user, None, None, None, host)
    uid, gid, home = cached[1]
    return Submitter(user, uid, gid, home, host)


def _environment(value: dict[str, str] | list[str] | None, limit: int) -> dict[str, str]:
    if value is None:
        return {}
    if isinstance(value, list):
        pairs: dict[str, str] = {}
        for item in value:
            name, sep, val = item.partition("=")
            if not sep:
                raise SpecError("environment", f"entry '{item[:60]}' is not NAME=value")
            pairs[name] = val
        value = pairs
    size = 0
    for name, val in value.items():
        problem = variable_name_problem(name)
        if problem is not None:
            raise SpecError("environment", f"variable name '{printable(name[:60])}' {problem}")
        if "\x00" in val:
            raise SpecError("environment", f"value of {name} must not contain NUL characters")
        size += len(name.encode()) + len(val.encode()) + 2
    if size > limit:
        raise SpecError("environment", f"is {size} bytes; the limit is {limit} bytes (CONDUCTOR_MAX_ENVIRONMENT_BYTES)")
    return {name: val for name, val in value.items() if name not in SECRET_VARIABLES}


def _check_nodes(value: int | str | None) -> None:
    if value is None:
        return
    text = str(value).strip()
    match = _NODES.fullmatch(text)
    if not match:
        raise SpecError("nodes", f"invalid node count '{text[:40]}'; expected N or MIN-MAX")
    if any(len(count) > MAX_NODE_DIGITS for count in match.groups() if count is not None):
        raise SpecError("nodes", f"a node count has at most {MAX_NODE_DIGITS} digits")
    low = int(match.group(1))
    if low < 1:
        raise SpecError("nodes", "node count must be at least 1")
    # A maximum of 0 is none, as in Slurm (its verify_node_count checks a maximum only when set).
    if match.group(2) is not None and 0 < int(match.group(2)) < low:
        raise SpecError("nodes", f"the maximum node count {match.group(2)} is below the minimum {low}")
    if low > 1:
        raise Unsatisfiable(
            f"{NODE_CONFIG_UNAVAILABLE}: jobs run on a single node here, {low} nodes were requested"
        )


# How many names a host list may expand to: more than any cluster here has nodes.
MAX_NODE_NAMES = 10_000


def _node_names(value: str | list[str] | None, field: str) -> list[str]:
    """The node names of a host list, or of a list of them (slurmrestd's), each once."""
    if value is None:
        return []
    text = value if isinstance(value, str) else ",".join(value)
    names = expand_hostlist(text, field=field, max_hosts=MAX_NODE_NAMES)
    return sorted(set(names), key=hostlist_sort_key)


def _check_node_names(
    required: list[str], excluded: list[str], nodes: Sequence[NodeView], partition: str
) -> list[NodeView]:
    """The nodes of `partition` the job may run on, once --nodelist (`required`) and --exclude
    are checked as slurmctld does: every name a node of the cluster, one node at most (jobs
    run on one), not both required and excluded, and some node left."""
    if len(required) > 1:
        raise Unsatisfiable(
            f"{NODE_CONFIG_UNAVAILABLE}: jobs run on a single node here, required_nodes names {len(required)} nodes"
        )
    members = [n for n in nodes if partition in n.partitions]
    if not nodes or not (required or excluded):
        return members
    known = {n.name for n in nodes}
    for field, names in (("required_nodes", required), ("excluded_nodes", excluded)):
        unknown = [name for name in names if name not in known]
        if unknown:
            raise InvalidNodeName(
                f"Invalid node name specified: '{printable(unknown[0][:64])}' is no node here", field=field
            )
    both = set(required) & set(excluded)
    if both:
        raise SpecError("excluded_nodes", f"node '{sorted(both)[0]}' is both required and excluded")
    if required and not any(n.name == required[0] for n in members):
        raise Unsatisfiable(f"Requested nodes not in this partition: node '{required[0]}' is not in '{partition}'")
    allowed = [n for n in members if (not required or n.name == required[0]) and n.name not in excluded]
    if members and not allowed:
        raise Unsatisfiable(f"{NODE_CONFIG_UNAVAILABLE}: every node of partition '{partition}' is excluded")
    return allowed


def _check_exclusive(value: bool | str) -> bool:
    if isinstance(value, bool):
        return value
    text = value.strip().lower()
    if text in ("", "true", "yes", "1", "exclusive", "user", "mcs"):
        return True
    if text in ("false", "no", "0", "oversubscribe"):
        return False
    raise SpecError("exclusive", f"invalid value '{value}'; expected true, false, user or mcs")


def build_rows(
    job: JobDescription,
    script: str,
    *,
    submitter: Submitter,
    limits: Limits,
    nodes: Sequence[NodeView],
    now: datetime,
) -> list[dict[str, Any]]:
    """Validate the request against Slurm's grammars and the cluster; return the rows to insert."""
    script_size = len(script.encode())
    if script_size > limits.max_script_bytes:
        raise SpecError(
            "script", f"is {script_size} bytes; the limit is {limits.max_script_bytes} bytes (CONDUCTOR_MAX_SCRIPT_BYTES)"
        )
    problem = script_problem(script)
    if problem is not None:
        raise SpecError("script", EXPLAINED[problem])
    environment = _environment(job.environment, limits.max_environment_bytes)
    time_limit = parse_time_limit(job.time_limit, field="time_limit")
    if job.time_limit is None:
        # Slurm's partition DefaultTime: the job runs, and is planned, with it.
        time_limit = limits.default_time_limit
    memory_per_node = parse_memory_mb(job.memory_per_node, field="memory_per_node") if job.memory_per_node is not None else None
    memory_per_cpu = parse_memory_mb(job.memory_per_cpu, field="memory_per_cpu") if job.memory_per_cpu is not None else None
    if memory_per_node and memory_per_cpu:
        raise SpecError("memory_per_cpu", "memory_per_node and memory_per_cpu are mutually exclusive")
    _check_nodes(job.nodes)
    exclusive = _check_exclusive(job.exclusive)
    if job.ntasks_per_node is not None and job.ntasks_per_node < job.ntasks:
        raise Unsatisfiable(
            f"{NODE_CONFIG_UNAVAILABLE}: {job.ntasks} tasks at {job.ntasks_per_node} per node need "
            "more than one node"
        )
    if job.signal is not None and not _SIGNAL_SPEC.fullmatch(job.signal):
        raise SpecError("signal", f"invalid value '{job.signal}'; expected [{{R|B}}:]SIG[@seconds]")
    signal_spec = str(parse_signal_spec(job.signal, field="signal")) if job.signal is not None else None
    # An empty begin_time is refused as sbatch --begin= is, not taken for none (leave it out).
    begin = parse_begin_time(job.begin_time, now=now, field="begin_time") if job.begin_time is not None else None
    dependency = format_dependency(parse_dependency(job.dependency, field="dependency")) if job.dependency else None
    array = (
        parse_array_spec(job.array, field="array", max_tasks=limits.max_array_tasks) if job.array else None
    )
    required = _node_names(job.required_nodes, "required_nodes")
    excluded = _node_names(job.excluded_nodes, "excluded_nodes")
    if array is not None:
        # The environment as stored, and the node names (unchecked before any node registered).
        each = script_size + len(json.dumps(environment)) + sum(len(name) + 1 for name in (*required, *excluded))
        stored = len(array.indices) * each
        if stored > limits.max_array_bytes:
            raise SpecError(
                "array",
                f"{len(array.indices)} tasks of {each} bytes each (script, environment, nodes) would store {stored} "
                f"bytes; the limit is {limits.max_array_bytes} bytes (CONDUCTOR_MAX_ARRAY_BYTES): fewer tasks, "
                "or a smaller script or environment",
            )
    # None given: /tmp, where slurmstepd runs a job whose working directory it cannot use (a
    # home would be root's /root for jobs of the local admin, and nothing Slurm does).
    work_dir = job.current_working_directory or "/tmp"
    if not os.path.isabs(work_dir):
        raise SpecError("current_working_directory", f"'{work_dir}' must be an absolute path")
    work_dir = os.path.normpath(work_dir)
    partition = job.partition or limits.default_partition

    # job.ntasks: given, or ntasks_per_node x nodes (JobDescription._tasks_per_node).
    cpus = job.cpus_per_task * job.ntasks
    memory = memory_per_node or (memory_per_cpu or 0) * cpus
    if nodes and not any(partition in n.partitions for n in nodes):
        raise InvalidPartition(f"Invalid partition name specified: '{partition}'", field="partition")
    members = _check_node_names(required, excluded, nodes, partition)
    if members:
        most_cpus = max(len(n.cpu_ids) for n in members)
        most_memory = max(n.memory_mb for n in members)
        which = f"partition '{partition}'" + (" it may use" if required or excluded else "")
        if cpus > most_cpus:
            raise Unsatisfiable(
                f"{NODE_CONFIG_UNAVAILABLE}: {cpus} CPUs requested, the largest node of {which} has {most_cpus}"
            )
        if memory > most_memory:
            raise Unsatisfiable(
                f"{NODE_CONFIG_UNAVAILABLE}: {memory} MB of memory requested, the largest node of {which} has "
                f"{most_memory} MB"
            )

    extra = {
        k: v
        for k, v in {
            "mail_type": job.mail_type,
            "mail_user": job.mail_user,
            "submit_host": submitter.host,
            "submit_dir": _submit_directory(job, work_dir),
            "command": job.command,
            "argv": job.argv,
        }.items()
        if v
    }
    base: dict[str, Any] = {
        "name": job.name or "sbatch",
        "user_name": submitter.user,
        "uid": submitter.uid,
        "gid": submitter.gid,
        "account": job.account,
        "partition": partition,
        "qos": job.qos,
        "priority": job.priority if job.priority is not None else 0,
        "nice": job.nice,
        "cpus_per_task": job.cpus_per_task,
        "ntasks": job.ntasks,
        "ntasks_per_node": job.ntasks_per_node,
        "memory_per_node_mb": memory_per_node,
        "memory_per_cpu_mb": memory_per_cpu,
        "exclusive": exclusive,
        "req_nodes": required[0] if required else None,
        "exc_nodes": ",".join(excluded) or None,
        "time_limit": time_limit,
        "work_dir": work_dir,
        "standard_output": job.standard_output or None,
        "standard_error": job.standard_error or None,
        "standard_input": job.standard_input or None,
        "open_mode": job.open_mode,
        "script": script,
        "environment": json.dumps(environment),
        "dependency": dependency,
        "held": job.hold,
        # Why it waits, from the first moment (squeue right after sbatch); the scheduler's
        # policy keeps it up to date from its first pass on, in the same order of precedence.
        "reason": (
            Reason.JOB_HELD_USER.value
            if job.hold
            else Reason.DEPENDENCY.value
            if dependency
            else Reason.BEGIN_TIME.value
            if begin is not None and begin > now
            else Reason.NONE.value
        ),
        "requeue": job.requeue,
        "signal_spec": signal_spec,  # canonical "[B:]NAME@SECONDS" (the worker reads it)
        "comment": job.comment,
        "begin_time": begin,
        "eligible_time": begin or now,
        "submit_time": now,
        "extra": json.dumps(extra),
        "array_job_id": None,
        "array_task_id": None,
        "array_max_running": None,
        "array_spec": None,
    }
    if array is None:
        return [base]
    spec = str(array)
    return [
        {**base, "array_task_id": index, "array_max_running": array.max_running, "array_spec": spec}
        for index in array.indices
    ]


def _submit_directory(job: JobDescription, work_dir: str) -> str:
    """The job's SLURM_SUBMIT_DIR: where sbatch ran (it says so), else the working directory."""
    given = job.submit_directory
    if given is None:
        return work_dir
    if not given.startswith("/"):
        raise SpecError("submit_directory", f"'{given[:200]}' must be an absolute path")
    return os.path.normpath(given)
