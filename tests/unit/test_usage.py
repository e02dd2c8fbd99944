"""Usage figures: Slurm's formats (sacct, seff), their JSON on the job, and how an ended job's
usage decides its state (out of memory)."""

from __future__ import annotations

from conductor.cli.seff import kbytes, report
from conductor.domain.states import JobState, Reason
from conductor.domain.usage import Usage, format_cpu, format_memory, merge, parse_usage
from conductor.worker.outcome import OOM_EXIT_CODE, decide_outcome, final_usage
from conductor.worker.protocol import JobStatus, exit_outcome, parse_exit


def test_memory_as_sacct_prints_it() -> None:
    assert format_memory(None) == ""
    assert format_memory(0) == "0"
    assert format_memory(123456 * 1024) == "123456K"
    assert format_memory(200 * 1024 * 1024) == "200M"  # exact: a larger unit
    assert format_memory(200 * 1024 * 1024 + 4096) == "204804K"
    assert format_memory(2 * 1024**3) == "2G"
    # convert_num_unit2 with CONVERT_NUM_UNIT_EXACT: half units are exact too, and what is no
    # multiple of 512 stays as it is counted (bytes).
    assert format_memory(1536 * 1024) == "1.50M"
    assert format_memory(1000) == "1000"
    assert format_memory(1024) == "1K"


def test_cpu_time_as_sacct_prints_it() -> None:
    assert format_cpu(None) == ""
    assert format_cpu(2.0034) == "00:02.003"
    assert format_cpu(125.5) == "02:05.500"
    assert format_cpu(3723) == "01:02:03"
    assert format_cpu(90061) == "1-01:01:01"


def test_usage_round_trips_and_reads_older_rows() -> None:
    usage = Usage(user_cpu=1.5, system_cpu=0.5, max_rss=1024, ave_rss=1024, oom_kills=1, source="cgroup-v1")
    assert parse_usage(usage.to_json()) == usage
    assert usage.total_cpu == 2.0
    assert parse_usage('{"utime": 1.25, "stime": 0.5}') == Usage(user_cpu=1.25, system_cpu=0.5)
    assert parse_usage("not json") is None
    assert parse_usage(None) is None


def test_merge_keeps_the_larger_high_water_mark() -> None:
    merged = merge(Usage(user_cpu=1.0, max_rss=10), Usage(user_cpu=2.0, max_rss=5, source="cgroup-v2"))
    assert merged == Usage(user_cpu=2.0, max_rss=10, source="cgroup-v2")


def test_the_launcher_reports_maxrss() -> None:
    outcome = exit_outcome(0, 1.5, 0.25, 2048, 1700000000.125).decode()
    assert parse_exit(outcome) == ((0, 0), {"utime": 1.5, "stime": 0.25, "maxrss": 2048.0, "end": 1700000000.125})
    assert parse_exit("0 0 1.5 0.25") == ((0, 0), {"utime": 1.5, "stime": 0.25})


def test_an_oom_kill_ends_the_job_out_of_memory() -> None:
    status = JobStatus(pid=10, ticks=5, exit=(0, 9))
    finish = decide_outcome(3, status, None, Usage(max_rss=100, oom_kills=2, source="cgroup-v1"))
    assert (finish.state, finish.exit_code, finish.reason) == (
        JobState.OUT_OF_MEMORY, OOM_EXIT_CODE, Reason.OUT_OF_MEMORY.value,
    )
    assert finish.rusage is not None and finish.rusage["oom_kills"] == 2
    # A cancel or a time limit says why it ended, whatever the memory did.
    assert decide_outcome(3, status, "CANCELLED", Usage(oom_kills=1)).state == JobState.CANCELLED
    assert decide_outcome(3, status, "TIMEOUT", Usage(oom_kills=1)).state == JobState.TIMEOUT


def test_polled_figures_are_lower_bounds() -> None:
    status = JobStatus(pid=1, ticks=1, exit=(0, 0), rusage={"utime": 2.0, "stime": 0.1, "maxrss": 50_000.0})
    polled = Usage(user_cpu=1.5, system_cpu=0.3, max_rss=40_000 * 1024, source="polling")
    usage = final_usage(status, polled)
    assert usage == Usage(
        user_cpu=2.0, system_cpu=0.3, max_rss=50_000 * 1024, ave_rss=50_000 * 1024, source="polling"
    )
    # A control group's figures stand.
    grouped = Usage(user_cpu=1.0, system_cpu=0.2, max_rss=60_000 * 1024, source="cgroup-v1")
    assert final_usage(status, grouped) == grouped


def test_seff_report() -> None:
    job = {
        "job_id": 12, "user": "nobody-such-user", "state": "COMPLETED", "exit_code": "0:0", "allocated_cpus": 2,
        "elapsed": 10, "memory_per_cpu_mb": 512, "memory_per_node_mb": None,
        "usage": {"total_cpu": 15.0, "max_rss": 256 * 1024 * 1024},
    }
    assert report(job) == (
        "Job ID: 12\nCluster: conductor\nUser/Group: nobody-such-user/nobody-such-user\n"
        "State: COMPLETED (exit code 0)\nNodes: 1\nCores per node: 2\n"
        "CPU Utilized: 00:00:15\nCPU Efficiency: 75.00% of 00:00:20 core-walltime\n"
        "Job Wall-clock time: 00:00:10\nMemory Utilized: 256.00 MB\n"
        "Memory Efficiency: 25.00% of 1.00 GB (512.00 MB/core)\n"
    )
    assert kbytes(0) == "0.00 MB"


def test_seff_reports_as_slurms_seff_for_each_state() -> None:
    base = {
        "job_id": 12, "user": "nobody-such-user", "allocated_cpus": 1, "elapsed": 100, "memory_per_node_mb": 1024,
        "usage": {"total_cpu": 12.6, "max_rss": 0},
    }
    head = "Job ID: 12\nCluster: conductor\nUser/Group: nobody-such-user/nobody-such-user\n"
    pending = report({**base, "state": "PENDING", "exit_code": "0:0", "elapsed": 0, "usage": None})
    assert pending == head + "State: PENDING\nCores: 1\nEfficiency not available for jobs in the PENDING state.\n"
    running = report({**base, "state": "RUNNING", "exit_code": "0:0"})
    assert running.startswith(head + "State: RUNNING\nCores: 1\n")
    assert running.endswith("WARNING: Efficiency statistics may be misleading for RUNNING jobs.\n")
    # CPU time in whole seconds, the fraction rounded (12.6 s is 13), the efficiency from them.
    assert "CPU Utilized: 00:00:13\nCPU Efficiency: 13.00% of 00:01:40 core-walltime\n" in running
    # A job ended by its time limit or a cancel: exit code 0, as its accounting record says.
    assert "State: TIMEOUT (exit code 0)\n" in report({**base, "state": "TIMEOUT", "exit_code": "0:15"})
    assert "State: FAILED (exit code 3)\n" in report({**base, "state": "FAILED", "exit_code": "3:0"})


def test_the_launcher_says_when_and_whether_it_ended_a_job() -> None:
    from datetime import UTC, datetime

    from conductor.worker.protocol import parse_status

    status = parse_status(b"start 10 5 1 1\ntimeout 1700000000.500\nexit 0 15 0.01 0.00 1024 1700000001.250\n")
    assert status.timed_out == 1700000000.5
    finish = decide_outcome(4, status, None)
    assert finish.state == JobState.TIMEOUT
    assert finish.end_time == datetime.fromtimestamp(1700000001.25, UTC)
    # A cancel the worker knew of still says why it ended.
    assert decide_outcome(4, status, "CANCELLED").state == JobState.CANCELLED
