"""squeue, sacct, sinfo and scontrol output, rendered from JobRecord dicts (no server)."""

from __future__ import annotations

from datetime import datetime

import pytest

from conductor.cli.common import UsageError, clock, hms
from conductor.cli.jobsel import parse_job_spec, parse_job_specs
from conductor.cli.sacct_format import DEFAULT_FIELDS, expand_rows, parse_fields
from conductor.cli.sacct_format import render as sacct_render
from conductor.cli.scontrol import format_job, layout
from conductor.cli.sinfo import build_rows
from conductor.cli.sinfo import render as sinfo_render
from conductor.cli.squeue_format import (
    DEFAULT_FORMAT,
    START_FORMAT,
    FormatError,
    collapse_pending_arrays,
    default_sort,
    parse_format,
    parse_long_format,
    render,
    sort_jobs,
)


def job(job_id: int, **fields: object) -> dict[str, object]:
    record: dict[str, object] = {
        "job_id": job_id,
        "array_job_id": None,
        "array_task_id": None,
        "array_max_running": None,
        "name": "wrap",
        "user": "alice",
        "account": None,
        "partition": "debug",
        "state": "PENDING",
        "reason": "Priority",
        "priority": 100,
        "nice": 0,
        "cpus_per_task": 1,
        "ntasks": 1,
        "ntasks_per_node": None,
        "memory_per_node_mb": 1024,
        "memory_per_cpu_mb": None,
        "allocated_cpus": 0,
        "node_list": None,
        "submit_time": "2026-11-29T07:00:00+00:00",
        "eligible_time": "2026-11-29T07:00:00+00:00",
        "start_time": None,
        "end_time": None,
        "elapsed": 0,
        "time_limit": 3600,
        "exit_code": None,
        "work_dir": "/w",
        "standard_output": "/w/slurm-1.out",
        "standard_error": "/w/slurm-1.out",
        "standard_input": "/dev/null",
        "dependency": None,
        "hold": False,
        "requeue": False,
        "restart_count": 0,
        "comment": None,
        "qos": None,
        "exclusive": False,
    }
    record.update(fields)
    return record


RUNNING = job(
    7,
    state="RUNNING",
    reason="None",
    allocated_cpus=2,
    node_list="vm",
    start_time="2026-11-29T07:00:01+00:00",
    elapsed=65,
    name="a-very-long-name",
)


def test_durations() -> None:
    assert clock(0) == "0:00"
    assert clock(65) == "1:05"
    assert clock(3600) == "1:00:00"
    assert clock(90061) == "1-01:01:01"
    assert clock(None) == "UNLIMITED"
    assert hms(65) == "00:01:05"
    assert hms(90061) == "1-01:01:01"


def test_default_squeue_layout_matches_slurm() -> None:
    items = parse_format(DEFAULT_FORMAT)
    now = 1795935726.0  # fixed so running time is deterministic
    pending = job(8, reason="Resources")
    text = render(items, [pending], header=True, now=now)
    lines = text.splitlines()
    assert lines[0] == (
        "             JOBID PARTITION     NAME     USER ST       TIME  NODES NODELIST(REASON)"
    )
    assert lines[1] == (
        "                 8     debug     wrap    alice PD       0:00      1 (Resources)"
    )


def test_fields_are_cut_to_width_and_right_aligned_with_dot() -> None:
    items = parse_format("%.4i|%5j|%t|%T")
    finished = dict(RUNNING, state="COMPLETED", elapsed=65)
    assert render(items, [finished], header=False) == "   7|a-ver|CD|COMPLETED\n"


def test_reason_list_shows_nodes_when_running_and_reason_otherwise() -> None:
    items = parse_format("%R")
    failed = job(9, state="FAILED", reason="NonZeroExitCode", node_list="vm")
    out = render(items, [RUNNING, failed, job(10, reason="Dependency")], header=False)
    assert out.splitlines() == ["vm", "(NonZeroExitCode)", "(Dependency)"]


def test_literal_text_and_percent_escape() -> None:
    items = parse_format("id=%i %% %u")
    assert render(items, [job(3)], header=False) == "id=3 % alice\n"


def test_invalid_code_is_refused() -> None:
    with pytest.raises(FormatError):
        parse_format("%i %!")


def test_pending_array_tasks_collapse_running_ones_do_not() -> None:
    tasks = [
        job(
            100 + i,
            array_job_id=100,
            array_task_id=i,
            array_max_running=4,
            reason="JobArrayTaskLimit",
        )
        for i in range(5, 12)
    ]
    running = job(
        99,
        array_job_id=100,
        array_task_id=4,
        state="RUNNING",
        reason="None",
        node_list="vm",
        allocated_cpus=1,
    )
    rows = collapse_pending_arrays([running, *tasks])
    out = render(parse_format("%i %K %F %A"), default_sort(rows), header=False)
    assert out.splitlines() == ["100_[5-11%4] 5-11%4 100 100", "100_4 4 100 99"]


def test_array_tasks_waiting_on_resources_and_priority_stay_one_line() -> None:
    # The first task is the one resources are kept for, the rest wait behind it: one record in Slurm.
    tasks = [job(200 + i, array_job_id=200, array_task_id=i, reason="Resources" if i == 0 else "Priority") for i in range(4)]
    rows = collapse_pending_arrays(tasks)
    assert render(parse_format("%i %r"), rows, header=False) == "200_[0-3] Resources\n"


def test_start_format_shows_the_plan_for_pending_jobs() -> None:
    planned = job(7, expected_start_time="2026-12-05T10:00:00+00:00", sched_nodes="cn01", reason="Resources")
    unknown = job(8, reason="Priority")
    out = render(parse_format(START_FORMAT), sort_jobs([unknown, planned], "S"), header=True).splitlines()
    assert out[0] == (
        "             JOBID PARTITION     NAME     USER ST          START_TIME  NODES SCHEDNODES           NODELIST(REASON)"
    )
    local = datetime.fromisoformat("2026-12-05T10:00:00+00:00").astimezone().strftime("%Y-%m-%dT%H:%M:%S")
    assert out[1] == "                 8     debug     wrap    alice PD                 N/A      1 (null)               (Priority)"
    assert out[2] == f"                 7     debug     wrap    alice PD {local}      1 cn01                 (Resources)"


def test_priority_shown_is_the_scheduling_priority_and_zero_only_when_held() -> None:
    assert render(parse_format("%Q"), [job(1, priority=0, nice=-100)], header=False) == "10101\n"
    assert render(parse_format("%Q"), [job(1, priority=0, nice=0)], header=False) == "10001\n"
    assert render(parse_format("%Q"), [job(1, priority=0, nice=0, hold=True)], header=False) == "0\n"
    assert render(parse_format("%Q"), [job(1, scheduling_priority=77)], header=False) == "77\n"
    # An explicit priority replaces the computed one, as `scontrol update Priority=5` does in Slurm.
    assert render(parse_format("%Q"), [job(1, priority=5, nice=0)], header=False) == "5\n"


def test_single_pending_task_keeps_its_own_id() -> None:
    rows = collapse_pending_arrays([job(5, array_job_id=5, array_task_id=0)])
    assert render(parse_format("%i"), rows, header=False) == "5_0\n"


def test_long_format_names_and_widths() -> None:
    items = parse_long_format("JobID:6,State:.10,Name:|")
    out = render(items, [job(12)], header=True)
    # "Name:|": a ':' with no size is width 0 (Slurm's strtol), so the suffix follows at once.
    assert out.splitlines() == [
        "JOBID      STATENAME|",
        "12       PENDINGwrap|",
    ]


def test_default_sort_pending_first_then_priority() -> None:
    jobs = [RUNNING, job(2, priority=5), job(3, priority=50)]
    assert [j["job_id"] for j in default_sort(jobs)] == [3, 2, 7]


# ---- job ids ---------------------------------------------------------------------------------


def test_job_specs() -> None:
    plain = parse_job_spec("123")
    assert plain.base == 123 and plain.tasks is None
    assert parse_job_spec("123_4").tasks == frozenset({4})
    assert parse_job_spec("123_[1-3,7]").tasks == frozenset({1, 2, 3, 7})
    assert parse_job_spec("123.batch").base == 123
    assert [s.text for s in parse_job_specs(["1,2_[3-4]", "5"])] == [
        "1",
        "2_[3-4]",
        "5",
    ]
    with pytest.raises(UsageError):
        parse_job_spec("abc")
    array_task = job(124, array_job_id=123, array_task_id=4)
    assert plain.matches(array_task)
    assert parse_job_spec("124").matches(array_task)
    assert not parse_job_spec("123_5").matches(array_task)


# ---- sacct -----------------------------------------------------------------------------------


def test_sacct_default_layout_with_batch_step() -> None:
    done = dict(
        RUNNING,
        state="COMPLETED",
        exit_code="0:0",
        end_time="2026-11-29T07:01:06+00:00",
        account="proj",
        name="wrap",
    )
    text = sacct_render(
        parse_fields(DEFAULT_FIELDS),
        expand_rows([done], with_steps=True),
        header=True,
        parsable=None,
    )
    assert text.splitlines() == [
        "JobID           JobName  Partition    Account  AllocCPUS      State ExitCode ",
        "------------ ---------- ---------- ---------- ---------- ---------- -------- ",
        "7                  wrap      debug       proj          2  COMPLETED      0:0 ",
        "7.batch           batch                  proj          2  COMPLETED      0:0 ",
    ]


def test_sacct_parsable_forms_and_array_ids() -> None:
    task = job(
        11,
        array_job_id=10,
        array_task_id=1,
        state="FAILED",
        exit_code="3:0",
        start_time="2026-11-29T07:00:01+00:00",
        allocated_cpus=1,
        node_list="vm",
    )
    columns = parse_fields("JobID,JobIDRaw,State,ExitCode")
    rows = expand_rows([task], with_steps=False)
    assert sacct_render(columns, rows, header=True, parsable="no_ending") == (
        "JobID|JobIDRaw|State|ExitCode\n10_1|11|FAILED|3:0\n"
    )
    assert (
        sacct_render(columns, rows, header=False, parsable="ending")
        == "10_1|11|FAILED|3:0|\n"
    )


def test_sacct_field_names_are_case_insensitive_prefixes_with_widths() -> None:
    columns = parse_fields("jobid%5,state,elapsed,nodel,reqmem,timelimit,submit")
    assert [c.name for c in columns] == [
        "JobID",
        "State",
        "Elapsed",
        "NodeList",
        "ReqMem",
        "Timelimit",
        "Submit",
    ]
    assert columns[0].width == 5
    long_name = dict(RUNNING, job_id=1234567)
    out = sacct_render(
        columns[:1],
        expand_rows([long_name], with_steps=False),
        header=False,
        parsable=None,
    )
    assert out == "1234+ \n"


def test_sacct_values_for_pending_job() -> None:
    columns = parse_fields(
        "Start,End,NodeList,Elapsed,AllocCPUS,ReqCPUS,ReqMem,Timelimit"
    )
    out = sacct_render(
        columns,
        expand_rows([job(3)], with_steps=True),
        header=False,
        parsable="no_ending",
    )
    assert out == "Unknown|Unknown|None assigned|00:00:00|0|1|1G|01:00:00\n"


# ---- sinfo and scontrol ------------------------------------------------------------------------


def test_sinfo_default_layout() -> None:
    partitions = [
        {
            "name": "debug",
            "default": True,
            "state": "UP",
            "max_time": None,
            "nodes": ["vm"],
            "total_cpus": 4,
        }
    ]
    nodes = [
        {
            "name": "vm",
            "state": "IDLE",
            "cpus": 4,
            "alloc_cpus": 0,
            "free_cpus": 4,
            "memory_mb": 1000,
            "alloc_memory_mb": 0,
            "partitions": ["debug"],
        }
    ]
    rows = build_rows(partitions, nodes, per_node=False, summarize=False)
    assert sinfo_render(
        "%#P %.5a %.10l %.6D %.6t %N", rows, header=True
    ).splitlines() == [
        "PARTITION AVAIL  TIMELIMIT  NODES  STATE NODELIST",
        "debug*       up   infinite      1   idle vm",
    ]
    # The partition's settings from the configuration file, Slurm's defaults without them.
    assert sinfo_render("%B %L %p", rows, header=False) == "UNLIMITED n/a 1\n"
    configured = [dict(partitions[0], max_cpus_per_node=2, default_time=600, priority_tier=3)]
    rows = build_rows(configured, nodes, per_node=False, summarize=False)
    assert sinfo_render("%B %L %p", rows, header=False) == "2 10:00 3\n"
    # A node declared by its CPUs alone: that many sockets of one core, as scontrol show node says.
    assert sinfo_render("%z %X %Y %Z", rows, header=False) == "4:1:1 4 1 1\n"


def test_scontrol_show_job_layout() -> None:
    failed = job(
        24546,
        name="named",
        user="nobody-here",
        state="FAILED",
        reason="NonZeroExitCode",
        exit_code="3:0",
        requeue=True,
        start_time="2026-11-29T07:00:07+00:00",
        end_time="2026-11-29T07:00:07+00:00",
        node_list="vm",
        allocated_cpus=1,
        time_limit=None,
    )
    text = layout([format_job(failed)], oneliner=False)
    lines = text.splitlines()
    assert lines[0] == "JobId=24546 JobName=named"
    assert "   JobState=FAILED Reason=NonZeroExitCode Dependency=(null)" in lines
    assert "   Requeue=1 Restarts=0 BatchFlag=1 Reboot=0 ExitCode=3:0" in lines
    assert "   RunTime=00:00:00 TimeLimit=UNLIMITED TimeMin=N/A" in lines
    assert text.endswith("\n\n")
    one = layout([format_job(failed)], oneliner=True)
    assert one.count("\n") == 1 and one.startswith("JobId=24546 JobName=named UserId=")


# ---- exact machine-readable forms, as tools parse them and as Slurm prints them ---------------
# Reference: the output of real Slurm 22.05 and its man pages.


def _local(*fields: int) -> str:
    """An ISO instant for a local wall-clock time: Slurm prints instants in local time."""
    from datetime import datetime

    return datetime(*fields).astimezone().isoformat()  # type: ignore[arg-type]


def test_squeue_noheader_id_and_state_codes() -> None:
    """`squeue -h -o "%i %t"`: what dask-jobqueue and scripts poll."""
    array_tasks = [
        job(20 + i, array_job_id=20, array_task_id=i, reason="Resources") for i in range(3)
    ]
    running_task = dict(
        job(30, array_job_id=20, array_task_id=7),
        state="RUNNING",
        reason="None",
        node_list="vm",
        allocated_cpus=1,
    )
    rows = default_sort(collapse_pending_arrays([RUNNING, *array_tasks, running_task, job(8)]))
    assert render(parse_format("%i %t"), rows, header=False) == "8 PD\n20_[0-2] PD\n7 R\n20_7 R\n"


def test_squeue_reference_lines() -> None:
    """The lines reference.sh recorded from Slurm, rendered from equivalent jobs."""
    failed = job(
        24546,
        state="FAILED",
        reason="NonZeroExitCode",
        end_time=_local(2026, 11, 29, 7, 0, 7),
        exit_code="3:0",
    )
    assert render(parse_format("%i %T %r exit=%e"), [failed], header=False) == (
        "24546 FAILED NonZeroExitCode exit=2026-11-29T07:00:07\n"
    )
    fmt = parse_format("%i %T %t reason=%r")
    assert render(fmt, [job(24550, reason="PartitionDown")], header=False) == (
        "24550 PENDING PD reason=PartitionDown\n"
    )
    cancelled = job(24550, state="CANCELLED", reason="PartitionDown")
    assert render(fmt, [cancelled], header=False) == "24550 CANCELLED CA reason=PartitionDown\n"
    assert render(fmt, [job(24551, reason="JobHeldUser", hold=True)], header=False) == (
        "24551 PENDING PD reason=JobHeldUser\n"
    )


def test_squeue_default_output_with_running_and_array_lines() -> None:
    now = 1795935726.0
    tasks = [
        job(100 + i, array_job_id=100, array_task_id=i, array_max_running=2, reason="JobArrayTaskLimit")
        for i in range(6)
    ]
    completed = dict(RUNNING, state="COMPLETED", elapsed=65)
    rows = default_sort(collapse_pending_arrays([*tasks, completed]))
    text = render(parse_format(DEFAULT_FORMAT), rows, header=True, now=now)
    # The default order compares the %t strings (Slurm's sort.c): CD before PD.
    assert text == (
        "             JOBID PARTITION     NAME     USER ST       TIME  NODES NODELIST(REASON)\n"
        "                 7     debug a-very-l    alice CD       1:05      1 vm\n"
        "       100_[0-5%2]     debug     wrap    alice PD       0:00      1 (JobArrayTaskLimit)\n"
    )


def test_sacct_parsable2_noheader_and_submitit_form() -> None:
    """`sacct --parsable2 -n -o ...` and submitit's `sacct -o JobID,State,NodeList --parsable2`."""
    running_task = dict(
        job(31, array_job_id=30, array_task_id=1),
        state="RUNNING",
        reason="None",
        node_list="vm",
        allocated_cpus=1,
        start_time="2026-11-29T07:00:01+00:00",
    )
    pending_tasks = [job(32 + i, array_job_id=30, array_task_id=2 + i) for i in range(3)]
    finished = dict(RUNNING, state="COMPLETED", exit_code="0:0")
    rows = expand_rows(
        collapse_pending_arrays([finished, running_task, *pending_tasks]), with_steps=True
    )
    assert sacct_render(
        parse_fields("JobID,State,ExitCode"), rows, header=False, parsable="no_ending"
    ) == (
        "7|COMPLETED|0:0\n7.batch|COMPLETED|0:0\n30_1|RUNNING|0:0\n30_1.batch|RUNNING|0:0\n"
        "30_[2-4]|PENDING|0:0\n"
    )
    assert sacct_render(
        parse_fields("JobID,State,NodeList"), rows[:2], header=True, parsable="no_ending"
    ) == ("JobID|State|NodeList\n7|COMPLETED|vm\n7.batch|COMPLETED|vm\n")
    assert sacct_render(
        parse_fields("JobID,State"), rows[:1], header=True, parsable="ending"
    ) == "JobID|State|\n7|COMPLETED|\n"


def test_sinfo_node_oriented_and_computed_widths() -> None:
    from conductor.cli.sinfo import NODE_FORMAT, SUMMARIZE_FORMAT

    partitions = [
        {"name": "debug", "default": True, "state": "UP", "max_time": None, "nodes": ["vm"], "total_cpus": 4},
        {"name": "long-jobs", "default": False, "state": "UP", "max_time": 172800, "nodes": ["vm"], "total_cpus": 4},
    ]
    node = {
        "name": "vm",
        "state": "MIXED",
        "cpus": 4,
        "alloc_cpus": 1,
        "memory_mb": 1000,
        "alloc_memory_mb": 0,
        "partitions": ["debug", "long-jobs"],
    }
    rows = build_rows(partitions, [node], per_node=False, summarize=False)
    # Partition and node columns are as wide as the longest value, at least 9 (sinfo's
    # MIN_PART_FIELD_SIZE/MIN_NODE_FIELD_SIZE).
    assert sinfo_render("%#P %.5a %.10l %.6D %.6t %N", rows, header=True) == (
        "PARTITION AVAIL  TIMELIMIT  NODES  STATE NODELIST\n"
        "debug*       up   infinite      1    mix vm\n"
        "long-jobs    up 2-00:00:00      1    mix vm\n"
    )
    per_node = build_rows(partitions, [node], per_node=True, summarize=False)
    assert sinfo_render(NODE_FORMAT, per_node, header=True) == (
        "NODELIST   NODES PARTITION STATE \n"
        "vm             1    debug* mix   \n"
        "vm             1 long-jobs mix   \n"
    )
    summary = build_rows(partitions, [node], per_node=False, summarize=True)
    assert sinfo_render(SUMMARIZE_FORMAT, summary, header=True).splitlines()[:2] == [
        "PARTITION AVAIL  TIMELIMIT   NODES(A/I/O/T) NODELIST",
        "debug*       up   infinite          1/0/0/1 vm",
    ]
    # A cut default partition keeps its '*' last, as _print_partition does.
    assert sinfo_render("%5P|", rows[:1], header=False) == "debu*|\n"
