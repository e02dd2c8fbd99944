"""Backfill with real jobs on a small node: reservations, start estimates and their views.

A 4-CPU node runs two jobs with time limits (they sleep past them and are ended at their
limits). A whole-node job behind them gets a reservation at the later limit and starts then; a
short 1-CPU job backfills at once into the free CPU; a long one would delay the reservation
and waits with reason Priority.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from support import Api, ConductorProcess, clean_env, running_up

NODE = "bf01"
STAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConductorProcess]:
    with running_up(tmp_path_factory.mktemp("backfill") / "home", "--cpus", "4", "--node-name", NODE) as process:
        yield process


@pytest.fixture
def api(server: ConductorProcess) -> Iterator[Api]:
    client = Api(server.url)
    yield client
    live = client.jobs(state="PENDING,RUNNING")
    for job in live:
        client.http.post(f"/jobs/cancel/{job['job_id']}")
    client.wait_all([int(j["job_id"]) for j in live], timeout=30)
    client.close()


def cli(server: ConductorProcess, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = clean_env(CONDUCTOR_URL=server.url, CONDUCTOR_HOME=str(server.home))
    return subprocess.run(
        [sys.executable, "-m", "conductor", *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=60, check=False
    )


def submit(api: Api, cpus: int, limit: str, tmp: Path, **extra: object) -> int:
    return api.submit(
        "#!/bin/sh\nsleep 300\n",
        cpus_per_task=cpus,
        time_limit=limit,
        current_working_directory=str(tmp),
        standard_output="/dev/null",
        **extra,
    )


def stamp(value: str | None) -> float:
    assert value is not None
    return datetime.fromisoformat(value).timestamp()


def wait_for(predicate: object, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def test_whole_node_job_starts_at_its_reservation_short_job_backfills_long_one_waits(
    server: ConductorProcess, api: Api, tmp_path: Path
) -> None:
    first = submit(api, 2, "0:06", tmp_path)  # ends at its limit, 6 s from its start
    second = submit(api, 1, "0:10", tmp_path)  # and this one 10 s from its start
    wait_for(lambda: api.job(first)["state"] == api.job(second)["state"] == "RUNNING")
    whole = submit(api, 4, "1:00", tmp_path, name="whole")
    wait_for(lambda: api.job(whole)["expected_start_time"] is not None)
    planned = api.job(whole)
    assert planned["state"] == "PENDING" and planned["reason"] == "Resources"
    assert planned["sched_nodes"] == NODE
    second_end = stamp(api.job(second)["start_time"]) + 10
    assert abs(stamp(planned["expected_start_time"]) - second_end) <= 1.0

    # One CPU is free until the reservation: a 2-second job fits before it, a 1-minute one does not.
    short = submit(api, 1, "0:02", tmp_path, name="short")
    long = submit(api, 1, "1:00", tmp_path, name="long")
    wait_for(lambda: api.job(short)["state"] != "PENDING" and api.job(long)["reason"] == "Priority")
    started = api.job(short)["start_time"]
    assert stamp(started) < stamp(api.job(first)["start_time"]) + 6  # it did not wait for CPUs to free
    assert api.job(long)["state"] == "PENDING"

    # The views show the plan.
    out = cli(server, tmp_path, "squeue", "--start").stdout.splitlines()
    assert out[0].split() == ["JOBID", "PARTITION", "NAME", "USER", "ST", "START_TIME", "NODES", "SCHEDNODES", "NODELIST(REASON)"]
    assert out[0] == (
        "             JOBID PARTITION     NAME     USER ST          START_TIME  NODES SCHEDNODES           NODELIST(REASON)"
    )
    line = next(row for row in out if row.split()[0] == str(whole))
    assert re.search(rf" PD +{STAMP} +1 {NODE} +\(Resources\)$", line), line
    assert next(row for row in out if row.split()[0] == str(long)).endswith("(Priority)")
    show = cli(server, tmp_path, "scontrol", "show", "job", str(whole)).stdout
    assert re.search(rf"StartTime={STAMP} EndTime={STAMP}", show), show
    assert f"SchedNodeList={NODE}" in show
    explained = cli(server, tmp_path, "explain", str(long)).stdout
    assert f"Job {whole} (higher priority) has 4 CPU(s) of {NODE} reserved" in explained, explained
    assert f"It starts after the reservation(s) ahead of it on {NODE} end: job {whole}." in explained
    reasons = api.http.get(f"/jobs/{whole}/explain").json()
    assert reasons["reserved"] is True and second in reasons["waits_for"], reasons

    # The reservation holds: the whole-node job starts when it said, within a second.
    wait_for(lambda: api.job(whole)["state"] == "RUNNING", timeout=30)
    assert abs(stamp(api.job(whole)["start_time"]) - stamp(planned["expected_start_time"])) <= 1.0
    assert api.job(long)["state"] == "PENDING"


def test_sbatch_test_only_prints_the_plan_without_submitting(server: ConductorProcess, api: Api, tmp_path: Path) -> None:
    busy = submit(api, 4, "0:30", tmp_path)
    wait_for(lambda: api.job(busy)["state"] == "RUNNING")
    before = len(api.jobs())
    result = cli(server, tmp_path, "sbatch", "--test-only", "-c", "2", "-t", "5", "--wrap", "true")
    assert result.returncode == 0, result.stderr
    match = re.fullmatch(
        rf"sbatch: Job (\d+) to start at ({STAMP}) using 2 processors on nodes {NODE} in partition debug\n", result.stderr
    )
    assert match, result.stderr
    expected = datetime.strptime(match.group(2), "%Y-%m-%dT%H:%M:%S").timestamp()
    assert abs(expected - (stamp(api.job(busy)["start_time"]) + 30)) <= 1.0
    held = cli(server, tmp_path, "sbatch", "--test-only", "-H", "--wrap", "true")
    assert held.returncode == 0 and "would wait with reason JobHeldUser" in held.stderr, held.stderr
    after = cli(server, tmp_path, "sbatch", "--test-only", f"--dependency=afterok:{busy}", "--wrap", "true")
    assert after.returncode == 0 and "would wait with reason Dependency" in after.stderr, after.stderr
    assert len(api.jobs()) == before  # nothing was submitted


def test_test_only_judges_the_dependency_as_the_first_pass_would(api: Api, tmp_path: Path) -> None:
    # It said "would wait with reason Dependency" for a dependency already met.
    done = api.submit("#!/bin/sh\ntrue\n", current_working_directory=str(tmp_path), standard_output="/dev/null")
    failed = api.submit("#!/bin/sh\nexit 3\n", current_working_directory=str(tmp_path), standard_output="/dev/null")
    assert api.wait_state(done, "COMPLETED")["state"] == "COMPLETED"
    assert api.wait_state(failed, "FAILED")["state"] == "FAILED"
    busy = submit(api, 1, "10:00", tmp_path)
    before = len(api.jobs())
    for dependency, said in (
        (f"afterok:{done}", "to start at"),
        (f"afterany:{done}:{failed}", "to start at"),
        (f"afterok:{failed}", "would wait with reason DependencyNeverSatisfied"),
        (f"afterok:{done}:{busy}", "would wait with reason Dependency "),
        (f"afterok:{busy}?afterok:{done}", "to start at"),
    ):
        answer = api.http.post(
            "/jobs/submit",
            json={"job": {"test_only": True, "dependency": dependency, "current_working_directory": str(tmp_path)},
                  "script": "#!/bin/sh\ntrue\n"},
        )
        assert answer.status_code == 200 and said in answer.json()["message"], (dependency, answer.text)
    assert len(api.jobs()) == before  # nothing was submitted


def test_squeue_priority_is_never_zero_unless_held(server: ConductorProcess, api: Api, tmp_path: Path) -> None:
    later = "now+1hour"
    favoured = submit(api, 1, "1:00", tmp_path, nice=-100, begin_time=later)
    plain = submit(api, 1, "1:00", tmp_path, begin_time=later)
    held = submit(api, 1, "1:00", tmp_path, hold=True)
    out = cli(server, tmp_path, "squeue", "-h", "-o", "%i %Q", "-j", f"{favoured},{plain},{held}").stdout
    shown = dict(line.split() for line in out.splitlines())
    assert int(shown[str(favoured)]) == int(shown[str(plain)]) + 100
    assert int(shown[str(plain)]) > 0 and shown[str(held)] == "0"


def test_explain_an_unknown_job_is_a_clear_error(server: ConductorProcess, tmp_path: Path) -> None:
    result = cli(server, tmp_path, "explain", "999999")
    assert result.returncode == 1 and "999999" in result.stderr and "Traceback" not in result.stderr
    assert cli(server, tmp_path, "explain").returncode == 1


