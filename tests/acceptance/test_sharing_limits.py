"""Partitions and QOS from a cluster configuration file, with real jobs on a 4-CPU node:
defaults and limits at submission with Slurm's messages, each pending reason of a limit,
partition states, a reconfigure that changes a limit, and a bad file refused."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import Api, ConductorProcess, clean_env, free_port

CONFIG = """\
EnforcePartLimits = "ALL"

[partitions.debug]
Nodes = "sh[01-02]"
Default = true
MaxTime = "1:00:00"
DefaultTime = "10:00"

[partitions.short]
Nodes = "sh*"
MaxTime = "{short_max}"
MaxCPUsPerNode = 3

[qos.normal]

[qos.one]
MaxJobsPerUser = 1

[qos.cpus]
MaxTRESPerUser = "cpu=2"

[qos.wall]
MaxWall = "1:00"

[qos.submit]
MaxSubmitJobsPerUser = {max_submit}
"""


def write_config(path: Path, short_max: str = "5:00", max_submit: int = 3) -> None:
    path.write_text(CONFIG.format(short_max=short_max, max_submit=max_submit))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConductorProcess]:
    home = tmp_path_factory.mktemp("sharing") / "home"
    home.mkdir()
    config = home / "cluster.toml"
    write_config(config)
    process = ConductorProcess(
        home, ["up", "--cpus", "4", "--node-name", "sh01"],
        env={"CONDUCTOR_KILL_WAIT": "2", "CONDUCTOR_CONFIG": str(config)}, port=free_port(),
    )
    process.start()
    try:
        yield process
    finally:
        process.kill()


@pytest.fixture
def api(server: ConductorProcess) -> Iterator[Api]:
    client = Api(server.url)
    yield client
    write_config(server.home / "cluster.toml")
    assert cli(server, server.home, "scontrol", "reconfigure").returncode == 0
    for name in ("debug", "short"):
        cli(server, server.home, "scontrol", "update", f"PartitionName={name}", "State=UP")
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


def submit(api: Api, tmp: Path, cpus: int = 1, **extra: object) -> int:
    return api.submit(
        "#!/bin/sh\nsleep 300\n", cpus_per_task=cpus, current_working_directory=str(tmp), standard_output="/dev/null",
        **extra,
    )


def sbatch(server: ConductorProcess, tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return cli(server, tmp, "sbatch", "-o", "/dev/null", *args, "--wrap", "sleep 300")


def wait_reason(api: Api, job_id: int, reason: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = api.job(job_id)
        if job["state"] == "PENDING" and job["reason"] == reason:
            return
        time.sleep(0.05)
    raise AssertionError(f"job {job_id}: {api.job(job_id)['state']} {api.job(job_id)['reason']}, not {reason}")


def test_partitions_come_from_the_file_with_their_default_time(server: ConductorProcess, api: Api, tmp_path: Path) -> None:
    job = submit(api, tmp_path)
    record = api.wait_state(job, "RUNNING")
    assert record["partition"] == "debug" and record["time_limit"] == 600  # DefaultTime
    show = cli(server, tmp_path, "scontrol", "show", "partition", "debug").stdout
    assert "Default=YES" in show and "DefaultTime=00:10:00" in show and "MaxTime=01:00:00" in show
    assert "Nodes=sh01" in show
    nodes = api.http.get("/nodes").json()["nodes"]
    assert nodes[0]["partitions"] == ["debug", "short"]


def test_partition_max_time_is_refused_at_submission_with_slurms_message(
    server: ConductorProcess, api: Api, tmp_path: Path
) -> None:
    done = sbatch(server, tmp_path, "--time=2:00:00")
    assert done.returncode == 1
    assert done.stderr.strip() == (
        "sbatch: error: Batch job submission failed: Requested time limit is invalid (missing or exceeds some limit)"
    )
    done = sbatch(server, tmp_path, "-p", "nosuch")
    assert done.returncode == 1 and "Invalid partition name specified" in done.stderr
    assert sbatch(server, tmp_path, "--qos=gold").stderr.strip().endswith("Invalid qos specification")


def test_qos_limits_keep_jobs_pending_with_slurms_reasons(server: ConductorProcess, api: Api, tmp_path: Path) -> None:
    first = submit(api, tmp_path, qos="one")
    second = submit(api, tmp_path, qos="one")
    api.wait_state(first, "RUNNING")
    wait_reason(api, second, "QOSMaxJobsPerUserLimit")
    told = cli(server, tmp_path, "explain", str(second)).stdout
    assert f"Job {second} is PENDING, reason QOSMaxJobsPerUserLimit." in told, told
    assert "QOS one allows 1 running jobs per user (MaxJobsPerUser); " in told and " has 1 running" in told
    # Not blamed on the nodes: the job ahead, and when its time limit (DefaultTime 10:00) ends it.
    assert "It waits for a limit (QOSMaxJobsPerUserLimit), not for a node." in told, told
    assert "no node" not in told and f"end by their time limits: {first} at " in told, told
    big = submit(api, tmp_path, cpus=2, qos="cpus")
    api.wait_state(big, "RUNNING")
    more = submit(api, tmp_path, cpus=1, qos="cpus")
    wait_reason(api, more, "QOSMaxCpuPerUserLimit")
    told = cli(server, tmp_path, "explain", str(more)).stdout
    assert "QOS cpus allows 2 CPUs per user (MaxTRESPerUser=cpu);" in told and "hold 2 and it needs 1" in told
    long = submit(api, tmp_path, qos="wall", time_limit="5:00")
    wait_reason(api, long, "QOSMaxWallDurationPerJobLimit")
    squeue = cli(server, tmp_path, "squeue", "-h", "-t", "PD", "-o", "%i %r").stdout.split("\n")
    assert f"{second} QOSMaxJobsPerUserLimit" in squeue and f"{more} QOSMaxCpuPerUserLimit" in squeue
    # The job that held the limit ends: the one waiting for it starts.
    api.cancel(first)
    api.wait_state(second, "RUNNING")


def test_submit_limit_refuses_then_a_lowered_limit_holds_pending_jobs(
    server: ConductorProcess, api: Api, tmp_path: Path
) -> None:
    jobs = [submit(api, tmp_path, cpus=4, qos="submit") for _ in range(3)]
    api.wait_state(jobs[0], "RUNNING")
    done = sbatch(server, tmp_path, "--qos=submit")
    assert done.returncode == 1
    assert done.stderr.strip() == (
        "sbatch: error: Batch job submission failed: "
        "Job violates accounting/QOS policy (job submit limit, user's size and/or time limits)"
    )
    write_config(server.home / "cluster.toml", max_submit=1)
    assert cli(server, tmp_path, "scontrol", "reconfigure").returncode == 0
    for job in jobs[1:]:
        wait_reason(api, job, "QOSMaxSubmitJobPerUserLimit")


def test_partition_states_down_drain_up(server: ConductorProcess, api: Api, tmp_path: Path) -> None:
    assert cli(server, tmp_path, "scontrol", "update", "PartitionName=short", "State=DOWN").returncode == 0
    job = submit(api, tmp_path, partition="short", time_limit="1:00")
    wait_reason(api, job, "PartitionDown")
    assert "State=DOWN" in cli(server, tmp_path, "scontrol", "show", "partition", "short").stdout
    assert cli(server, tmp_path, "sinfo", "-h", "-p", "short", "-o", "%P %a").stdout == "short down\n"
    assert cli(server, tmp_path, "scontrol", "update", "PartitionName=short", "State=DRAIN").returncode == 0
    api.wait_state(job, "RUNNING")  # a draining partition runs what it has
    assert cli(server, tmp_path, "sinfo", "-h", "-p", "short", "-o", "%P %a").stdout == "short drain\n"
    refused = sbatch(server, tmp_path, "-p", "short", "-t", "1:00")
    assert refused.returncode == 1
    assert refused.stderr.strip().endswith("Required partition not available (inactive or drain)")
    assert cli(server, tmp_path, "scontrol", "update", "PartitionName=short", "State=UP").returncode == 0
    assert sbatch(server, tmp_path, "-p", "short", "-t", "1:00").returncode == 0
    bad = cli(server, tmp_path, "scontrol", "update", "PartitionName=nosuch", "State=DOWN")
    assert bad.returncode == 1 and "Invalid partition name specified" in bad.stderr


def test_reconfigure_changes_a_partitions_limit_for_new_and_waiting_jobs(
    server: ConductorProcess, api: Api, tmp_path: Path
) -> None:
    assert sbatch(server, tmp_path, "-p", "short", "-t", "10:00").returncode == 1
    write_config(server.home / "cluster.toml", short_max="20:00")
    assert cli(server, tmp_path, "scontrol", "reconfigure").returncode == 0
    filler = submit(api, tmp_path, cpus=4)
    api.wait_state(filler, "RUNNING")
    waiting = submit(api, tmp_path, partition="short", time_limit="10:00")
    wait_reason(api, waiting, "Resources")
    write_config(server.home / "cluster.toml", short_max="5:00")
    assert cli(server, tmp_path, "scontrol", "reconfigure").returncode == 0
    wait_reason(api, waiting, "PartitionTimeLimit")
    told = cli(server, tmp_path, "explain", str(waiting)).stdout
    assert "Its time limit (10:00) exceeds partition short's MaxTime (5:00)" in told


def test_a_bad_file_is_refused_and_the_configuration_in_force_stays(
    server: ConductorProcess, api: Api, tmp_path: Path
) -> None:
    path = server.home / "cluster.toml"
    path.write_text(path.read_text().replace('MaxTime = "1:00:00"', 'MaxTime = "an hour"'))
    done = cli(server, tmp_path, "scontrol", "reconfigure")
    assert done.returncode == 1
    assert "line 6: partitions.debug.MaxTime: invalid time 'an hour'" in done.stderr
    assert sbatch(server, tmp_path, "--time=2:00:00").returncode == 1  # the old MaxTime still holds
    # A server does not start on it at all.
    other = subprocess.run(
        [sys.executable, "-m", "conductor", "up", "--port", str(free_port()), "--home", str(tmp_path / "h")],
        env=clean_env(CONDUCTOR_CONFIG=str(path)), capture_output=True, text=True, timeout=60, check=False,
    )
    assert other.returncode == 1
    assert "line 6: partitions.debug.MaxTime" in other.stderr


def test_only_an_administrator_reconfigures_or_changes_a_partition(server: ConductorProcess, api: Api) -> None:
    import getpass

    made = server.run("token", "create", "--user", getpass.getuser())
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip().split()[-1]
    user = Api(server.url, token=token)
    try:
        response = user.http.post("/config/reconfigure")
        assert response.status_code == 403 and "administrator" in response.json()["detail"]
        response = user.http.post("/partitions/short/state", json={"state": "DOWN"})
        assert response.status_code == 403
        response = api.http.post("/partitions/short/state", json={"state": "ASLEEP"})
        assert response.status_code in (400, 422) and "UP, DOWN, DRAIN, INACTIVE" in response.text
    finally:
        user.close()


def test_max_cpus_per_node_caps_a_partitions_jobs_together(server: ConductorProcess, api: Api, tmp_path: Path) -> None:
    held = [submit(api, tmp_path, cpus=1, partition="short", time_limit="1:00") for _ in range(3)]
    for job in held:
        api.wait_state(job, "RUNNING")
    fourth = submit(api, tmp_path, cpus=1, partition="short", time_limit="1:00")
    wait_reason(api, fourth, "Resources")  # a CPU is free, but short's jobs hold their 3 there
    other = submit(api, tmp_path, cpus=1)  # debug's job takes it
    api.wait_state(other, "RUNNING")
    api.cancel(other)
    api.cancel(held[0])
    api.wait_state(fourth, "RUNNING")
    assert sbatch(server, tmp_path, "-p", "short", "-t", "1:00", "-c", "4").returncode == 1  # never fits
