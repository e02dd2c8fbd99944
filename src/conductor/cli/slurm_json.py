"""`squeue --json`, `sinfo --json` and `sacct --json`: Slurm's data_parser v0.0.40 shapes.

squeue prints what slurmrestd's `GET /slurm/v0.0.40/jobs` answers (the server builds those
records, api/slurmrestd.py), restricted to the jobs squeue selected. sinfo and sacct have no
such route here, so their records are built from the native API's, in the shape of the
`v0.0.40_openapi_sinfo_resp` and `v0.0.40_openapi_slurmdbd_jobs_resp` schemas (the fields a
single-node, single-cluster system knows; numbers as `{"set", "infinite", "number"}`).
"""

from __future__ import annotations

import json
import sys

from conductor.cli.common import UsageError, parse_iso

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

DATA_PARSER = "v0.0.40"
RELEASE = ("23", "11", "0")
CLUSTER = "conductor"


def check_parser(prog: str, value: str | None) -> None:
    """`--json[=data_parser]`: only v0.0.40 is spoken (also as `data_parser/v0.0.40`)."""
    if value is None or value.strip() in ("", DATA_PARSER, f"data_parser/{DATA_PARSER}", "latest"):
        return
    raise UsageError(f"--json: data_parser plugin '{value}' is not available here; only {DATA_PARSER} is")


def meta(prog: str, argv: list[str], storage: str = "") -> dict[str, Any]:
    from conductor import __version__

    return {
        "plugin": {"type": "", "name": "", "data_parser": f"data_parser/{DATA_PARSER}", "accounting_storage": storage},
        "client": {"source": "", "user": "", "group": ""},
        "command": [prog, *argv],
        "slurm": {
            "version": {"major": RELEASE[0], "minor": RELEASE[1], "micro": RELEASE[2]},
            "release": ".".join(RELEASE) + f" (conductor {__version__})",
            "cluster": CLUSTER,
        },
    }


def write(document: dict[str, Any]) -> None:
    """Printed as Slurm prints it: indented, keys in order, a final newline."""
    sys.stdout.write(json.dumps(document, indent=2) + "\n")


def number(value: float | None, *, infinite: bool = False) -> dict[str, Any]:
    if infinite:
        return {"set": False, "infinite": True, "number": 0}
    if value is None:
        return {"set": False, "infinite": False, "number": 0}
    return {"set": True, "infinite": False, "number": int(value)}


def _epoch(value: Any) -> int:
    stamp = parse_iso(value)
    return int(stamp.timestamp()) if stamp is not None else 0


# ------------------------------------------------------------------------------- squeue
def squeue_document(rest: Any, selected: list[dict[str, Any]], argv: list[str]) -> dict[str, Any]:
    """slurmrestd's answer for the jobs squeue selected, in squeue's order of selection."""
    records = {int(r["job_id"]): r for r in (rest.get("jobs", []) if isinstance(rest, dict) else [])}
    jobs = [records[int(j["job_id"])] for j in selected if int(j["job_id"]) in records]
    return {
        "jobs": jobs,
        "last_backfill": number(None),
        "last_update": number(_now()),
        "meta": meta("squeue", argv),
        "errors": [],
        "warnings": [],
    }


def _now() -> int:
    import time

    return int(time.time())


# -------------------------------------------------------------------------------- sinfo
def _node_states(node: dict[str, Any]) -> list[str]:
    """The base state, then the flags (DRAIN), as Slurm's JSON lists them."""
    flags = ["DRAIN"] if node.get("drained") else []
    state = str(node.get("state") or "UNKNOWN").upper()
    if state != "UP":
        return [state, *flags]
    alloc, cpus = int(node.get("alloc_cpus") or 0), int(node.get("cpus") or 0)
    if alloc == 0:
        return ["IDLE", *flags]
    return ["ALLOCATED" if alloc >= cpus else "MIXED", *flags]


def _reason(node: dict[str, Any]) -> dict[str, Any]:
    """`reason`: a drain's (with its user and time), else why the node is down."""
    if node.get("drained"):
        from conductor.cli.common import parse_iso

        when = parse_iso(node.get("drain_time"))
        return {
            "description": node.get("drain_reason") or "",
            "time": int(when.timestamp()) if when is not None else 0,
            "user": node.get("drain_user") or "",
        }
    return {"description": node.get("reason") or "", "time": 0, "user": ""}


def sinfo_document(partitions: list[dict[str, Any]], nodes: list[dict[str, Any]], argv: list[str]) -> dict[str, Any]:
    """One `v0.0.40_sinfo` record per node of each partition (what `sinfo -N` lists)."""
    by_name = {n["name"]: n for n in nodes}
    entries = []
    for partition in partitions:
        members = [by_name[name] for name in partition.get("nodes", []) if name in by_name]
        for node in members:
            cpus, alloc = int(node.get("cpus") or 0), int(node.get("alloc_cpus") or 0)
            memory, alloc_memory = int(node.get("memory_mb") or 0), int(node.get("alloc_memory_mb") or 0)
            states = _node_states(node)
            # Taking jobs: neither down nor drained. A node that is not counts what its jobs do
            # not hold as "other" (sinfo's %C), never as idle.
            up = states[0] in ("IDLE", "MIXED", "ALLOCATED") and not node.get("drained")
            max_time = partition.get("max_time")
            entries.append(
                {
                    "port": 0,
                    "node": {"state": states},
                    "nodes": {
                        "allocated": 1 if alloc else 0,
                        "idle": 1 if up and not alloc else 0,
                        "other": 1 if not up and not alloc else 0,
                        "total": 1,
                        "hostnames": [node["name"]],
                        "addresses": [node["name"]],
                        "nodes": [node["name"]],
                    },
                    "cpus": {
                        "allocated": alloc,
                        "idle": cpus - alloc if up else 0,
                        "other": 0 if up else max(cpus - alloc, 0),
                        "total": cpus,
                        "minimum": cpus,
                        "maximum": cpus,
                        "load": {"minimum": 0, "maximum": 0},
                        "per_node": {"max": number(None, infinite=True)},
                    },
                    "sockets": {"minimum": 1, "maximum": 1},
                    "cores": {"minimum": cpus, "maximum": cpus},
                    "threads": {"minimum": 1, "maximum": 1},
                    "disk": {"minimum": 0, "maximum": 0},
                    "memory": {
                        "minimum": memory,
                        "maximum": memory,
                        "free": {"minimum": number(memory - alloc_memory), "maximum": number(memory - alloc_memory)},
                        "allocated": alloc_memory,
                    },
                    "weight": {"minimum": 1, "maximum": 1},
                    "features": {"total": "", "active": ""},
                    "gres": {"total": "", "used": ""},
                    "cluster": CLUSTER,
                    "comment": "",
                    "extra": "",
                    "reason": _reason(node),
                    "reservation": "",
                    "partition": {
                        "nodes": {
                            "allowed_allocation": "",
                            "configured": ",".join(partition.get("nodes", [])),
                            "total": len(partition.get("nodes", [])),
                        },
                        "accounts": {"allowed": "", "deny": ""},
                        "groups": {"allowed": ""},
                        "qos": {"allowed": "", "deny": "", "assigned": ""},
                        "cluster": CLUSTER,
                        "name": partition["name"],
                        "cpus": {"task_binding": 0, "total": int(partition.get("total_cpus") or 0)},
                        "maximums": {
                            "time": number(None, infinite=True)
                            if max_time is None
                            else number((int(max_time) + 59) // 60),
                        },
                        "partition": {"state": [str(partition.get("state") or "UP").upper()]},
                        "defaults": {"time": number(None)},
                    },
                }
            )
    return {"sinfo": entries, "meta": meta("sinfo", argv), "errors": [], "warnings": []}


# -------------------------------------------------------------------------------- sacct
def _exit_code(value: Any, state: str) -> dict[str, Any]:
    """`v0.0.40_process_exit_code_verbose` from "code:signal"."""
    if not value or state in ("PENDING", "RUNNING"):
        return {"status": ["PENDING"], "return_code": number(None), "signal": {"id": number(None), "name": ""}}
    code_text, _, sig_text = str(value).partition(":")
    code = int(code_text) if code_text.isdigit() else 0
    sig = int(sig_text) if sig_text.isdigit() else 0
    if sig:
        import signal

        try:
            name = signal.Signals(sig).name.removeprefix("SIG")
        except ValueError:
            name = ""
        return {"status": ["SIGNALED"], "return_code": number(code), "signal": {"id": number(sig), "name": name}}
    return {
        "status": ["SUCCESS" if code == 0 else "ERROR"],
        "return_code": number(code),
        "signal": {"id": number(None), "name": ""},
    }


def _tres(kind: str, count: int, tres_id: int) -> dict[str, Any]:
    return {"type": kind, "name": "", "id": tres_id, "count": count}


def sacct_job(job: dict[str, Any]) -> dict[str, Any]:
    """One `v0.0.40_job` (slurmdbd's record) from a native job record."""
    from conductor.cli.common import job_reason, recorded_exit_code

    state = str(job.get("state") or "PENDING")
    started = bool(job.get("start_time"))
    cpus = int(job.get("allocated_cpus") or 0) if started else 0
    requested = int(job.get("ntasks") or 1) * int(job.get("cpus_per_task") or 1)
    memory = int(job.get("memory_per_node_mb") or 0) or int(job.get("memory_per_cpu_mb") or 0) * requested
    elapsed = int(job.get("elapsed") or 0)
    limit = job.get("time_limit")
    start, end = _epoch(job.get("start_time")), _epoch(job.get("end_time"))
    submit, eligible = _epoch(job.get("submit_time")), _epoch(job.get("eligible_time"))
    time_block = {
        "elapsed": elapsed,
        "eligible": eligible,
        "end": end,
        "planned": number(max(start - eligible, 0) if start else None),
        "start": start,
        "submission": submit,
        "suspended": 0,
        "limit": number(None, infinite=True) if limit is None else number((int(limit) + 59) // 60),
        # What the job used in all (its control group's figures), as its steps' sum in slurmdbd.
        **_cpu_times(job.get("usage")),
    }
    array_job, task = job.get("array_job_id"), job.get("array_task_id")
    tres_requested = [_tres("cpu", requested, 1), _tres("mem", memory, 2), _tres("node", 1, 4), _tres("billing", requested, 5)]
    tres_allocated = (
        [_tres("cpu", cpus, 1), _tres("mem", memory, 2), _tres("node", 1, 4), _tres("billing", cpus, 5)] if started else []
    )
    # As the text view (sacct_format): the job's record says recorded_exit_code; its batch step
    # the script's status, CANCELLED after a time limit or a cancel, or RUNNING while its
    # processes live out the kill-wait.
    step_exit_code = _exit_code(job.get("exit_code"), state)
    exit_code = _exit_code(recorded_exit_code(job) if started else job.get("exit_code"), state)
    step_state, step_elapsed, step_end = state, elapsed, end or None
    if "_step_running_for" in job:
        step_state, step_elapsed, step_end = "RUNNING", int(job["_step_running_for"] or 0), None
    elif started and state in ("TIMEOUT", "CANCELLED"):
        step_state = "CANCELLED"
    record: dict[str, Any] = {
        "account": job.get("account") or "",
        "comment": {"administrator": "", "job": job.get("comment") or "", "system": ""},
        "allocation_nodes": 1 if started else 0,
        "array": {
            "job_id": int(array_job) if array_job is not None and task is not None else 0,
            "limits": {"max": {"running": {"tasks": int(job.get("array_max_running") or 0)}}},
            "task_id": number(task),
            "task": job.get("array_spec") or "",
        },
        "association": {"account": job.get("account") or "", "cluster": CLUSTER, "partition": "", "user": job.get("user") or "", "id": 0},
        "block": "",
        "cluster": CLUSTER,
        "constraints": "",
        "container": "",
        "derived_exit_code": exit_code,
        "time": time_block,
        "exit_code": exit_code,
        "extra": "",
        "failed_node": "",
        "flags": [],
        "group": "",
        "het": {"job_id": 0, "job_offset": number(None)},
        "job_id": int(job["job_id"]),
        "name": job.get("name") or "",
        "licenses": "",
        "mcs": {"label": ""},
        "nodes": job.get("node_list") or "None assigned",
        "partition": job.get("partition") or "",
        "hold": bool(job.get("hold")),
        "priority": number(int(job.get("priority") or 0)),
        "qos": job.get("qos") or "normal",
        "qosreq": job.get("qos") or "normal",
        "required": {
            "CPUs": requested,
            "memory_per_cpu": number(job.get("memory_per_cpu_mb")),
            "memory_per_node": number(job.get("memory_per_node_mb")),
        },
        "kill_request_user": "",
        "reservation": {"id": 0, "name": ""},
        "script": "",
        "stdin": job.get("standard_input") or "",
        "stdout": job.get("standard_output") or "",
        "stderr": job.get("standard_error") or "",
        "state": {"current": [state], "reason": job_reason(job)},
        "steps": [],
        "submit_line": "",
        "tres": {"allocated": tres_allocated, "requested": tres_requested},
        "used_gres": "",
        "user": job.get("user") or "",
        "wckey": {"wckey": "", "flags": []},
        "working_directory": job.get("work_dir") or "",
    }
    if started:
        batch = _json_step(
            f"{job['job_id']}.batch", "batch", step_state, step_exit_code, start, step_end, step_elapsed, 1,
            job.get("node_list") or "", job.get("usage"),
        )
        batch["tres"]["allocated"] = tres_allocated
        record["steps"] = [batch, *_srun_json_steps(job)]
    return record


def _cpu_time(seconds: Any) -> dict[str, int]:
    value = float(seconds) if isinstance(seconds, int | float) else 0.0
    whole = int(value)
    return {"seconds": whole, "microseconds": int(round((value - whole) * 1_000_000)) % 1_000_000}


def _cpu_times(usage: Any) -> dict[str, dict[str, int]]:
    figures = usage if isinstance(usage, dict) else {}
    user, system = figures.get("user_cpu"), figures.get("system_cpu")
    numbers = [value for value in (user, system) if isinstance(value, int | float)]
    return {"system": _cpu_time(system), "total": _cpu_time(sum(numbers)), "user": _cpu_time(user)}


def _json_step(
    step_id: str, name: str, state: str, exit_code: dict[str, Any], start: int, end: int | None, elapsed: int,
    tasks: int, nodes: str, usage: Any,
) -> dict[str, Any]:
    """One `v0.0.40_step`: the batch step or an srun's, with the CPU time its figures give."""
    return {
        "time": {
            "elapsed": elapsed,
            "end": number(end),
            "start": number(start),
            "suspended": 0,
            "limit": number(None),
            **_cpu_times(usage),
        },
        "exit_code": exit_code,
        "nodes": {"count": 1, "range": nodes, "list": [nodes]},
        "tasks": {"count": tasks},
        "pid": "",
        "CPU": {"requested_frequency": {"min": number(None), "max": number(None)}, "governor": ""},
        "kill_request_user": "",
        "state": [state],
        "statistics": {"CPU": {"actual_frequency": 0}, "energy": {"consumed": number(None)}},
        "step": {"id": step_id, "name": name},
        "task": {"distribution": ""},
        "tres": {"requested": {"max": [], "min": [], "average": [], "total": []},
                 "consumed": {"max": [], "min": [], "average": [], "total": []},
                 "allocated": []},
    }


def _srun_json_steps(job: dict[str, Any]) -> list[dict[str, Any]]:
    """The job's srun steps (JOBID.0, JOBID.1...), after its batch step, as in the text view."""
    usage = job.get("usage")
    steps = usage.get("steps") if isinstance(usage, dict) else None
    out = []
    for step in steps if isinstance(steps, list) else []:
        if not isinstance(step, dict):
            continue
        state = str(step.get("state") or "COMPLETED")
        start, end = _epoch(step.get("start_time")), _epoch(step.get("end_time"))
        out.append(
            _json_step(
                f"{job['job_id']}.{step.get('step_id')}", str(step.get("name") or ""), state,
                _exit_code(step.get("exit_code"), state), start, end, int(step.get("elapsed") or 0),
                int(step.get("ntasks") or 1), job.get("node_list") or "", step,
            )
        )
    return out


def sacct_document(
    jobs: list[dict[str, Any]], argv: list[str], steps: Callable[[dict[str, Any], str], bool] | None = None
) -> dict[str, Any]:
    """sacct --json of `jobs`; `steps(job, "batch")`: whether a step of a job is listed (None:
    all), as `sacct -j 12.0` names one: the job's record then holds that step alone."""
    records = [sacct_job(j) for j in jobs]
    if steps is not None:
        for job, record in zip(jobs, records, strict=True):
            record["steps"] = [st for st in record["steps"] if steps(job, st["step"]["id"].partition(".")[2])]
    return {
        "jobs": records,
        "meta": meta("sacct", argv, storage="conductor"),
        "errors": [],
        "warnings": [],
    }
