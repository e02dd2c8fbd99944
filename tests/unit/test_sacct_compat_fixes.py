"""sacct (and the shared time printing) against Slurm 22.05's behaviour, as read in its source:
src/common/parse_time.c (parse_time with `past`, slurm_make_time_str), src/sacct/options.c,
src/sacct/print.c (PRINT_EXITCODE, PRINT_DERIVED_EC, PRINT_REQ_MEM, PRINT_TRESR, --units) and
src/common/slurmdb_defs.c (slurmdb_job_cond_def_start_end, str_2_slurmdb_qos)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

import pytest

from conductor.cli import common, sacct
from conductor.cli.common import UsageError, slurm_time
from conductor.cli.sacct_format import (
    FieldError,
    convert_units,
    expand_rows,
    parse_fields,
    render,
    unit_type,
)
from conductor.domain.errors import SpecError
from conductor.domain.timespec import parse_begin_time

# Sunday 2025-12-07 10:00:00 UTC: the day of the review's report, before noon.
DEC_7 = datetime(2025, 12, 7, 10, 0, 0, tzinfo=UTC)


@pytest.fixture()
def utc_zone(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Local time is UTC, so printed times are predictable."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.fixture()
def time_format(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """SLURM_TIME_FORMAT is read once per process, as in Slurm: each setenv below clears what
    was worked out (`_TIME_FORMATS`), as a new process would start."""
    monkeypatch.delenv("SLURM_TIME_FORMAT", raising=False)
    common._TIME_FORMATS.clear()
    yield monkeypatch
    common._TIME_FORMATS.clear()


def job(job_id: int = 7, **fields: object) -> dict[str, Any]:
    record: dict[str, Any] = {
        "job_id": job_id,
        "array_job_id": None,
        "array_task_id": None,
        "name": "wrap",
        "user": "alice",
        "account": None,
        "partition": "debug",
        "state": "COMPLETED",
        "reason": "None",
        "priority": 100,
        "cpus_per_task": 1,
        "ntasks": 1,
        "memory_per_node_mb": 1024,
        "memory_per_cpu_mb": None,
        "allocated_cpus": 1,
        "node_list": "vm",
        "submit_time": "2025-12-07T09:00:00+00:00",
        "eligible_time": "2025-12-07T09:00:00+00:00",
        "start_time": "2025-12-07T09:00:01+00:00",
        "end_time": "2025-12-07T09:01:06+00:00",
        "elapsed": 65,
        "time_limit": 3600,
        "exit_code": "0:0",
        "qos": None,
        "usage": None,
    }
    record.update(fields)
    return record


def cells(spec: str, jobs: list[dict[str, Any]], units: int | None = None) -> list[list[str]]:
    rows = expand_rows(jobs, with_steps=True, units=units)
    text = render(parse_fields(spec), rows, header=False, parsable="no_ending")
    return [line.split("|") for line in text.splitlines()]


# ---- a whole `sacct` run, with the server's answer faked ----------------------------------------


class FakeClient:
    def close(self) -> None:
        pass


def run_sacct(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    jobs: list[dict[str, Any]],
    now: datetime = DEC_7,
) -> tuple[int, str, str, dict[str, Any]]:
    """sacct's main at `now` (local time UTC); returns (status, stdout, stderr, fetch's kwargs)."""

    class FixedNow(datetime):
        @classmethod
        def now(cls, tz: tzinfo | None = None) -> FixedNow:
            stamp = cls.fromtimestamp(now.timestamp(), tz=UTC)
            return stamp if tz is None else stamp.astimezone(tz)

    asked: dict[str, Any] = {}

    def fake_fetch(client: object, specs: object = None, **kwargs: Any) -> list[dict[str, Any]]:
        asked.update(kwargs, specs=specs)
        return [dict(j) for j in jobs]

    monkeypatch.setattr(sacct, "datetime", FixedNow)
    monkeypatch.setattr(sacct, "Client", FakeClient)
    monkeypatch.setattr(sacct, "fetch_jobs", fake_fetch)
    status = sacct.main(argv)
    out, err = capsys.readouterr()
    return status, out, err, asked


# ---- 1. -S/-E look into the past (parse_time(optarg, 1)) ---------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("11/01", datetime(2025, 11, 1, tzinfo=UTC)),
        ("1101", datetime(2025, 11, 1, tzinfo=UTC)),
        ("11.01", datetime(2025, 11, 1, tzinfo=UTC)),
        ("12/07", datetime(2025, 12, 7, tzinfo=UTC)),
        ("11/01-08:30", datetime(2025, 11, 1, 8, 30, tzinfo=UTC)),
        # Only the month decides: a later day of this month is still this year's (Slurm).
        ("12/20", datetime(2025, 12, 20, tzinfo=UTC)),
        # A time of day alone is today's, even when still ahead (Slurm's `if (past || ...)`).
        ("noon", datetime(2025, 12, 7, 12, 0, tzinfo=UTC)),
        ("09:00", datetime(2025, 12, 7, 9, 0, tzinfo=UTC)),
        ("23:00", datetime(2025, 12, 7, 23, 0, tzinfo=UTC)),
        # A year, "today", "now-...": as before.
        ("2024-11-01", datetime(2024, 11, 1, tzinfo=UTC)),
        ("11/01/24", datetime(2024, 11, 1, tzinfo=UTC)),
        ("now-1hours", datetime(2025, 12, 7, 9, 0, tzinfo=UTC)),
        ("today", datetime(2025, 12, 7, tzinfo=UTC)),
    ],
)
def test_past_mode_reads_dates_as_slurms_parse_time_with_past(text: str, expected: datetime) -> None:
    assert parse_begin_time(text, now=DEC_7, past=True) == expected
    assert sacct.parse_sacct_time(text, DEC_7) == expected


def test_past_mode_puts_a_later_month_in_last_year() -> None:
    jan = datetime(2026, 1, 15, 10, 0, tzinfo=UTC)
    assert parse_begin_time("12/07", now=jan, past=True) == datetime(2025, 12, 7, tzinfo=UTC)
    assert parse_begin_time("01/20", now=jan, past=True) == datetime(2026, 1, 20, tzinfo=UTC)
    # Feb 29 of last year's leap year, asked for in a year without one.
    jan_2029 = datetime(2029, 1, 10, tzinfo=UTC)
    assert parse_begin_time("02/29", now=jan_2029, past=True) == datetime(2028, 2, 29, tzinfo=UTC)


def test_forward_mode_for_begin_is_unchanged() -> None:
    assert parse_begin_time("11/01", now=DEC_7) == datetime(2026, 11, 1, tzinfo=UTC)
    assert parse_begin_time("12/07", now=DEC_7) == datetime(2026, 12, 7, tzinfo=UTC)
    assert parse_begin_time("12/20", now=DEC_7) == datetime(2025, 12, 20, tzinfo=UTC)
    assert parse_begin_time("09:00", now=DEC_7) == datetime(2025, 12, 8, 9, 0, tzinfo=UTC)
    assert parse_begin_time("noon", now=DEC_7) == datetime(2025, 12, 7, 12, 0, tzinfo=UTC)


def test_sacct_time_errors_are_still_usage_errors() -> None:
    with pytest.raises(UsageError, match="Invalid time specification"):
        sacct.parse_sacct_time("13/01", DEC_7)
    with pytest.raises(SpecError):
        parse_begin_time("nonsense", now=DEC_7, past=True)


def test_sacct_start_without_a_year_selects_the_past(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], utc_zone: None
) -> None:
    status, out, err, asked = run_sacct(
        monkeypatch, capsys, ["-a", "-X", "-n", "-P", "-S", "11/01", "-o", "JobID"], [job()]
    )
    assert (status, err) == (0, "")
    assert out == "7\n"
    assert asked["since"] == "2025-11-01T00:00:00+00:00"
    status, out, err, asked = run_sacct(
        monkeypatch, capsys, ["-a", "-X", "-n", "-P", "-S", "11/01", "-E", "12/07", "-o", "JobID"], []
    )
    assert (status, err) == (0, "")
    assert asked["until"] == "2025-12-07T00:00:00+00:00"


def test_sacct_start_later_today_is_after_the_end(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], utc_zone: None, time_format: Any
) -> None:
    # Slurm: -S noon at 10:00 is today's noon, -E defaults to now (+1 s), so the window is
    # refused, naming both times (options.c after slurmdb_job_cond_def_start_end).
    status, out, err, _ = run_sacct(monkeypatch, capsys, ["-a", "-S", "noon"], [job()])
    assert status == 1 and out == ""
    assert err == (
        "sacct: error: Start time (2025-12-07T12:00:00) requested is after end time "
        "(2025-12-07T10:00:01).\n"
    )
    # One second apart is refused too (only E == S gets the extra second).
    status, _, err, _ = run_sacct(
        monkeypatch, capsys, ["-a", "-S", "09:00:01", "-E", "09:00:00"], [job()]
    )
    assert status == 1 and "requested is after end time" in err


# ---- 2. SLURM_TIME_FORMAT ----------------------------------------------------------------------

STAMP = "2026-11-29T07:00:07+00:00"


def test_time_format_standard_empty_and_unset(utc_zone: None, time_format: pytest.MonkeyPatch) -> None:
    assert slurm_time(STAMP) == "2026-11-29T07:00:07"
    for value in ("", "standard"):
        time_format.setenv("SLURM_TIME_FORMAT", value)
        common._TIME_FORMATS.clear()
        assert slurm_time(STAMP) == "2026-11-29T07:00:07"
    assert slurm_time(None) == "Unknown" and slurm_time(None, "N/A") == "N/A"


def test_time_format_strftime(utc_zone: None, time_format: pytest.MonkeyPatch) -> None:
    time_format.setenv("SLURM_TIME_FORMAT", "%d/%m %H:%M")
    common._TIME_FORMATS.clear()
    assert slurm_time(STAMP) == "29/11 07:00"
    time_format.setenv("SLURM_TIME_FORMAT", "%s")
    common._TIME_FORMATS.clear()
    assert slurm_time(STAMP) == str(int(datetime.fromisoformat(STAMP).timestamp()))


def test_time_format_invalid_is_reported_once_and_ignored(
    utc_zone: None, time_format: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    time_format.setattr("sys.argv", ["/usr/bin/conductor", "sacct", "-j", "1"])
    for bad in ("Relative", "YYYY", "%Y" + "x" * 30):  # no '%', or 32 bytes and more
        time_format.setenv("SLURM_TIME_FORMAT", bad)
        common._TIME_FORMATS.clear()
        assert slurm_time(STAMP) == "2026-11-29T07:00:07"
        assert slurm_time(STAMP) == "2026-11-29T07:00:07"
        assert capsys.readouterr().err == f"sacct: error: invalid SLURM_TIME_FORMAT = '{bad}'\n"
    time_format.setenv("SLURM_TIME_FORMAT", "%Y" + "x" * 29)  # 31 bytes: accepted
    common._TIME_FORMATS.clear()
    assert slurm_time(STAMP) == "2026" + "x" * 29


def test_time_format_relative(utc_zone: None, time_format: pytest.MonkeyPatch) -> None:
    time_format.setenv("SLURM_TIME_FORMAT", "relative")
    common._TIME_FORMATS.clear()
    now = datetime.now(UTC).replace(microsecond=0)

    def shown(delta: timedelta) -> str:
        return slurm_time((now + delta).isoformat())

    assert shown(timedelta()) == now.strftime("%H:%M:%S")
    assert shown(timedelta(days=-1)) == "Ystday " + (now - timedelta(days=1)).strftime("%H:%M")
    assert shown(timedelta(days=1)) == "Tomorr " + (now + timedelta(days=1)).strftime("%H:%M")
    three = now + timedelta(days=3)
    assert shown(timedelta(days=3)) == three.strftime("%a %H:%M")
    ten = now - timedelta(days=10)
    assert shown(timedelta(days=-10)) == f"{ten.day} {ten.strftime('%b %H:%M')}"
    far = now - timedelta(days=800)
    assert shown(timedelta(days=-800)) == f"{far.day} {far.strftime('%b %Y')}"


def test_sacct_columns_follow_slurm_time_format(utc_zone: None, time_format: pytest.MonkeyPatch) -> None:
    time_format.setenv("SLURM_TIME_FORMAT", "%H:%M:%S")
    common._TIME_FORMATS.clear()
    assert cells("Submit,Start,End", [job()])[0] == ["09:00:00", "09:00:01", "09:01:06"]


# ---- 3. -q matches the QOS shown ---------------------------------------------------------------


def test_sacct_qos_filter_matches_the_shown_default(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    jobs = [job(7), job(8, qos="high")]
    argv = ["-j", "7,8", "-X", "-n", "-P", "-o", "JobID,QOS"]
    assert run_sacct(monkeypatch, capsys, [*argv, "-q", "normal"], jobs)[1] == "7|normal\n"
    assert run_sacct(monkeypatch, capsys, [*argv, "-q", "NORMAL"], jobs)[1] == "7|normal\n"
    assert run_sacct(monkeypatch, capsys, [*argv, "-q", "high"], jobs)[1] == "8|high\n"
    assert run_sacct(monkeypatch, capsys, [*argv, "-q", "normal,high"], jobs)[1] == "7|normal\n8|high\n"


# ---- 4. --units ---------------------------------------------------------------------------------


def test_convert_units_is_convert_num_unit_with_a_unit() -> None:
    assert convert_units(262144, 0, 2) == "0.25M"
    assert convert_units(262144, 0, 1) == "256K"
    assert convert_units(262144, 0, 3) == "0.00G"
    assert convert_units(2048, 2, 2) == "2048M"
    assert convert_units(2048, 2, 3) == "2G"
    assert convert_units(1000, 2, 3) == "0.98G"
    assert convert_units(1, 2, 1) == "1024K"
    assert convert_units(1, 0, 1) == "0.00K"
    assert convert_units(0, 2, 3) == "0"


def test_unit_type_letters() -> None:
    assert [unit_type(u) for u in ("K", "m", "G", "t", "P", "Mb")] == [1, 2, 3, 4, 5, 2]
    for bad in ("", "X", "b"):
        with pytest.raises(FieldError, match="Invalid unit type"):
            unit_type(bad)


def test_sacct_units_option(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    measured = job(usage={"max_rss": 262144, "ave_rss": 262144, "max_vmsize": 1 << 30})
    argv = ["-j", "7", "-n", "-P", "-o", "JobID,MaxRSS,AveRSS,MaxVMSize,ReqMem,ReqTRES,ReqNodes"]
    _, out, _, _ = run_sacct(monkeypatch, capsys, argv, [measured])
    assert out.splitlines() == [
        "7||||1G|billing=1,cpu=1,mem=1G,node=1|1",
        "7.batch|256K|256K|1G|||1",
    ]
    _, out, _, _ = run_sacct(monkeypatch, capsys, [*argv, "--units=M"], [measured])
    assert out.splitlines() == [
        "7||||1024M|billing=1,cpu=1,mem=1024M,node=1|0.00M",
        "7.batch|0.25M|0.25M|1024M|||0.00M",
    ]
    _, out, _, _ = run_sacct(monkeypatch, capsys, [*argv, "--units", "g"], [measured])
    assert out.splitlines()[1] == "7.batch|0.00G|0.00G|1G|||0.00G"
    status, out, err, _ = run_sacct(monkeypatch, capsys, [*argv, "--units=X"], [measured])
    assert (status, out) == (1, "")
    assert err == "sacct: error: Invalid unit type 'X'. Possible options are 'KMGTP'\n"


def test_sacct_noconvert_prints_each_figure_in_its_own_unit(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """--noconvert (CONVERT_NUM_UNIT_NO): memory in bytes, requests in megabytes; --units wins."""
    measured = job(usage={"max_rss": 262144, "ave_rss": 1572864, "max_vmsize": 1 << 30})
    argv = ["-j", "7", "-n", "-P", "-o", "JobID,MaxRSS,AveRSS,MaxVMSize,ReqMem,ReqTRES,ReqNodes"]
    _, out, _, _ = run_sacct(monkeypatch, capsys, [*argv, "--noconvert"], [measured])
    assert out.splitlines() == [
        "7||||1024M|billing=1,cpu=1,mem=1024M,node=1|1",
        "7.batch|262144|1572864|1073741824|||1",
    ]
    _, out, _, _ = run_sacct(monkeypatch, capsys, [*argv, "--noconvert", "--units=K"], [measured])
    assert out.splitlines()[1] == "7.batch|256K|1536K|1048576K|||0.00K"


# ---- 5. ExitCode of 128 and more -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("stored", "shown"),
    [("130:0", "2:0"), ("128:0", "0:0"), ("255:0", "127:0"), ("127:0", "127:0"), ("0:9", "0:9"), (None, "0:0")],
)
def test_exit_code_of_128_and_more_shows_128_less(stored: str | None, shown: str) -> None:
    steps = {"steps": [{"step_id": 0, "name": "srun", "state": "FAILED", "exit_code": stored or "0:0",
                        "ntasks": 1, "start_time": None, "end_time": None, "elapsed": 1}]}
    rows = cells("JobID,ExitCode", [job(exit_code=stored, state="FAILED", usage=steps)])
    assert rows == [["7", shown], ["7.batch", shown], ["7.0", shown]]


# ---- 6. ReqMem / ReqTRES with --mem-per-cpu --------------------------------------------------------


def test_req_mem_is_the_jobs_total_with_mem_per_cpu() -> None:
    per_cpu = job(cpus_per_task=2, memory_per_cpu_mb=1024, memory_per_node_mb=None, allocated_cpus=2)
    rows = cells("JobID,ReqMem,ReqTRES,AllocTRES", [per_cpu])
    assert rows == [
        ["7", "2G", "billing=2,cpu=2,mem=2G,node=1", "billing=2,cpu=2,mem=2G,node=1"],
        # PRINT_REQ_MEM and PRINT_TRESR print nothing on steps; a step's allocation has no billing.
        ["7.batch", "", "", "cpu=2,mem=2G,node=1"],
    ]
    tasks = job(ntasks=3, memory_per_cpu_mb=500, memory_per_node_mb=None, allocated_cpus=4)
    assert cells("ReqMem,ReqTRES,AllocTRES", [tasks])[0] == [
        "1500M",
        "billing=3,cpu=3,mem=1500M,node=1",
        "billing=4,cpu=4,mem=2000M,node=1",
    ]
    # --mem per node: unchanged.
    assert cells("ReqMem", [job(memory_per_node_mb=100)])[0] == ["100M"]


# ---- 7. DerivedExitCode on job rows only ----------------------------------------------------------


def test_derived_exit_code_is_the_highest_of_the_srun_steps_on_job_rows_only() -> None:
    """step_mgr.c: the highest exit code of the job's srun steps, the batch step left out; the
    job's own exit code is not it (a batch script that exits 3 after steps that succeed)."""
    rows = cells("JobID,DerivedExitCode,ExitCode", [job(exit_code="3:0", state="FAILED")])
    assert rows == [["7", "0:0", "3:0"], ["7.batch", "", "3:0"]]
    steps = [{"step_id": 0, "exit_code": "0:9"}, {"step_id": 1, "exit_code": "130:0"}, {"step_id": 2, "exit_code": "2:0"}]
    found = cells("JobID,DerivedExitCode", [job(exit_code="0:0", usage={"steps": steps})])
    # No 128 subtraction there (PRINT_DERIVED_EC has none); a status outranks a signal.
    assert found[0] == ["7", "130:0"] and [row[1] for row in found[1:]] == ["", "", "", ""]


def test_scontrol_and_squeue_times_follow_slurm_time_format(
    utc_zone: None, time_format: pytest.MonkeyPatch
) -> None:
    from conductor.cli.scontrol import format_job
    from conductor.cli.squeue_format import parse_format
    from conductor.cli.squeue_format import render as squeue_render

    time_format.setenv("SLURM_TIME_FORMAT", "%m%d-%H%M")
    common._TIME_FORMATS.clear()
    shown = " ".join(format_job(job(state="COMPLETED")))
    assert "SubmitTime=1207-0900 " in shown and "StartTime=1207-0900 " in shown
    assert squeue_render(parse_format("%V|%S"), [job()], header=False) == "1207-0900|1207-0900\n"


def test_a_job_ended_by_its_time_limit_or_a_cancel_says_0_0_and_its_batch_step_the_signal() -> None:
    # sacct on Slurm: `12 TIMEOUT 0:0` then `12.batch CANCELLED 0:15` (slurmctld records the
    # job with ExitCode=0:0 when it ends it, before the script returns).
    timed = job(12, state="TIMEOUT", exit_code="0:15")
    cancelled = job(13, state="CANCELLED", exit_code="0:15", cancelled_by="1000")
    handled = job(14, state="CANCELLED", exit_code="3:0", cancelled_by="1000")  # the script trapped SIGTERM
    queued = job(15, state="CANCELLED", exit_code="0:0", start_time=None, end_time=None)  # never ran
    failed = job(16, state="FAILED", exit_code="2:0")
    assert cells("JobID,State,ExitCode", [timed, cancelled, handled, queued, failed]) == [
        ["12", "TIMEOUT", "0:0"], ["12.batch", "CANCELLED", "0:15"],
        ["13", "CANCELLED by 1000", "0:0"], ["13.batch", "CANCELLED", "0:15"],
        ["14", "CANCELLED by 1000", "0:0"], ["14.batch", "CANCELLED", "3:0"],
        ["15", "CANCELLED", "0:0"],
        ["16", "FAILED", "2:0"], ["16.batch", "FAILED", "2:0"],
    ]


def test_sacct_json_says_as_the_text_view_how_a_job_ended_as_asked() -> None:
    from conductor.cli.slurm_json import sacct_job

    timed = sacct_job(job(12, state="TIMEOUT", exit_code="0:15"))
    assert timed["exit_code"]["status"] == ["SUCCESS"] and timed["exit_code"]["return_code"]["number"] == 0
    (step,) = timed["steps"]
    assert step["state"] == ["CANCELLED"] and step["exit_code"]["signal"]["id"]["number"] == 15
    # Its end asked for, its processes still there (what sacct.py makes of a RUNNING record).
    ending = job(13, state="CANCELLED", exit_code=None, _step_running_for=40, elapsed=5)
    (step,) = sacct_job(ending)["steps"]
    assert step["state"] == ["RUNNING"] and step["time"]["elapsed"] == 40 and step["time"]["end"]["set"] is False
    failed = sacct_job(job(14, state="FAILED", exit_code="2:0"))
    assert failed["exit_code"]["return_code"]["number"] == 2 and failed["steps"][0]["state"] == ["FAILED"]


# ---- -j JOB.STEP names that step alone -----------------------------------------------------------


def test_a_step_named_with_j_shows_that_step_alone(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    # Snakemake asks `sacct -j N.0 ... N.9 --format=Reason` of a failed job: every line came back
    # for each, a step 0 it never had included.
    steps = {"steps": [{"step_id": 0, "name": "hostname", "state": "COMPLETED", "exit_code": "0:0", "ntasks": 1,
                        "start": 1.0, "end": 2.0}]}
    jobs = [job(7, usage=steps), job(8)]
    argv = ["-n", "-P", "-o", "JobID,JobName", "-S", "2025-12-01"]

    def shown(*ids: str) -> list[str]:
        named = {int(i.partition(".")[0]) for i in ids}  # what the server sends for these ids
        status, out, _, _ = run_sacct(monkeypatch, capsys, [*argv, "-j", ",".join(ids)],
                                      [j for j in jobs if j["job_id"] in named])
        assert status == 0
        return out.splitlines()

    assert shown("7") == ["7|wrap", "7.batch|batch", "7.0|hostname"]
    assert shown("7.batch") == ["7.batch|batch"]
    assert shown("7.0") == ["7.0|hostname"]
    assert shown("7.5", "8.0") == []  # steps they never had
    assert shown("7.0", "8") == ["7.0|hostname", "8|wrap", "8.batch|batch"]


def test_sacct_json_lists_srun_steps_and_a_step_named_with_j_alone(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    steps = {"user_cpu": 1.25, "system_cpu": 0.5,
             # As the API records a step (api/job_records.py).
             "steps": [{"step_id": 0, "name": "hostname", "state": "FAILED", "exit_code": "3:0", "ntasks": 2,
                        "start_time": "2025-12-07T09:00:02+00:00", "end_time": "2025-12-07T09:00:06+00:00",
                        "elapsed": 4, "user_cpu": 0.75}]}
    jobs = [job(7, usage=steps), job(8)]

    def listed(*ids: str) -> dict[int, list[str]]:
        named = {int(i.partition(".")[0]) for i in ids}
        status, out, _, _ = run_sacct(monkeypatch, capsys, ["--json", "-S", "2025-12-01", "-j", ",".join(ids)],
                                      [j for j in jobs if j["job_id"] in named])
        assert status == 0
        return {r["job_id"]: [s["step"]["id"] for s in r["steps"]] for r in json.loads(out)["jobs"]}

    assert listed("7", "8") == {7: ["7.batch", "7.0"], 8: ["8.batch"]}
    assert listed("7.0") == {7: ["7.0"]}
    assert listed("7.batch", "8.0") == {7: ["7.batch"], 8: []}
    from conductor.cli.slurm_json import sacct_job

    record = sacct_job(job(7, usage=steps))
    assert record["time"]["total"] == {"seconds": 1, "microseconds": 750000}  # the job's, in all
    batch, srun = record["steps"]
    assert batch["time"]["user"] == {"seconds": 1, "microseconds": 250000}
    assert batch["time"]["total"] == {"seconds": 1, "microseconds": 750000}
    assert (srun["step"]["name"], srun["state"], srun["tasks"]["count"], srun["time"]["elapsed"]) == (
        "hostname", ["FAILED"], 2, 4,
    )
    assert srun["exit_code"]["return_code"]["number"] == 3 and srun["time"]["user"]["microseconds"] == 750000


def test_step_lines_leave_the_jobs_own_fields_blank() -> None:
    # As Slurm's sacct: the job's user, limit, directory, priority, QOS, reason, restarts and
    # waits are on its line alone; a step was submitted and eligible when it started.
    steps = {"steps": [{"step_id": 0, "name": "hostname", "state": "COMPLETED", "exit_code": "0:0", "ntasks": 1,
                        "start_time": "2025-12-07T09:00:10+00:00", "end_time": "2025-12-07T09:00:11+00:00",
                        "elapsed": 1}]}
    ran = job(7, usage=steps, user="root", comment="note", priority=5, qos="high", restart_count=1, time_limit=600,
              allocated_cpus=2)
    fields = ("JobID,User,UID,Timelimit,TimelimitRaw,WorkDir,Comment,Priority,QOS,Reason,Restarts,Reserved,"
              "ResvCPURAW,Layout,Account,Partition,Submit,Eligible,ReqCPUS")
    job_line, batch, srun = cells(fields, [ran])
    assert job_line[1:4] == ["root", "0", "00:10:00"] and job_line[6:9] == ["note", "5", "high"]
    assert job_line[10] == "1" and job_line[13] == ""  # restarts; no layout on the job's line
    for line in (batch, srun):
        assert line[1:13] == [""] * 12, line
        assert line[14:16] == [job_line[14], ""]  # the job's account; no partition
        assert line[16] == line[17] and line[16] != job_line[16]  # submitted and eligible at its start
        assert (job_line[18], line[18]) == ("1", "2")  # its CPUs: those its job holds on its one node
    assert (batch[13], srun[13]) == ("Unknown", "Block")
    assert (batch[16], srun[16]) == ("2025-12-07T09:00:01", "2025-12-07T09:00:10")
