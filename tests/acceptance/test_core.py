"""Acceptance tests of the single-node scheduler: `conductor up` as a real subprocess over HTTP."""

from __future__ import annotations

import os
import re
import signal
import socket
import sqlite3
import threading
import time
from datetime import datetime
from pathlib import Path

import httpx
from support import Api, ConductorProcess


def ts(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()


def test_five_jobs_on_four_cpus(api: Api, tmp_path: Path) -> None:
    ids = [api.submit("#!/bin/bash\nsleep 3\n", name=f"s{i}", current_working_directory=str(tmp_path)) for i in range(5)]
    for job_id in ids[:4]:
        api.wait_state(job_id, "RUNNING", timeout=10)
    fifth = api.job(ids[4])
    assert fifth["state"] == "PENDING"
    assert fifth["reason"] == "Resources"
    assert api.stats() == {"total_cpus": 4, "used_cpus": 4, "available_cpus": 0, "running_jobs": 4, "pending_jobs": 1}

    api.wait_state(ids[4], "RUNNING", timeout=15)
    first_end = min(ts(api.wait_state(i, "COMPLETED", timeout=15)["end_time"]) for i in ids[:4])
    started = ts(api.job(ids[4])["start_time"])
    assert 0 <= started - first_end < 0.1, f"fifth job started {started - first_end:.3f}s after a slot freed"
    final = api.wait_state(ids[4], "COMPLETED", timeout=15)
    assert final["exit_code"] == "0:0"
    assert api.stats()["used_cpus"] == 0


def test_exit_code_and_output(api: Api, tmp_path: Path) -> None:
    job_id = api.submit("#!/bin/bash\necho out-line\necho err-line >&2\nexit 3\n", current_working_directory=str(tmp_path))
    job = api.wait_state(job_id, "FAILED")
    assert job["exit_code"] == "3:0"
    assert job["reason"] == "NonZeroExitCode"
    # Default output: slurm-%j.out in the working directory, stderr joined to it.
    out = (tmp_path / f"slurm-{job_id}.out").read_text()
    assert out == "out-line\nerr-line\n"
    query = api.query(job_id)
    assert query["state"] == "FAILED"
    assert "out-line" in query["job_log"]["stdout"]
    assert query["detail"]["exit_code"] == "3:0"
    assert query["detail"]["work_dir"] == str(tmp_path)


def test_output_patterns_and_separate_error(api: Api, tmp_path: Path) -> None:
    job_id = api.submit(
        "#!/bin/bash\necho to-out\necho to-err >&2\n",
        name="pat",
        current_working_directory=str(tmp_path),
        standard_output="logs-%x-%j.out",
        standard_error=str(tmp_path / "e-%j-%u-%%.err"),
    )
    api.wait_state(job_id, "COMPLETED")
    user = api.job(job_id)["user"]
    assert (tmp_path / f"logs-pat-{job_id}.out").read_text() == "to-out\n"
    assert (tmp_path / f"e-{job_id}-{user}-%.err").read_text() == "to-err\n"


def test_missing_working_directory_fails_clearly(api: Api, tmp_path: Path) -> None:
    job_id = api.submit("#!/bin/bash\ntrue\n", current_working_directory=str(tmp_path / "nope"))
    job = api.wait_state(job_id, "FAILED")
    # Its output is named from the missing directory (slurmstepd would run it in /tmp otherwise).
    assert job["error_msg"] == f"cannot open output file '{tmp_path / 'nope'}/slurm-{job_id}.out': No such file or directory"


def test_unwritable_output_fails_clearly(api: Api, tmp_path: Path) -> None:
    job_id = api.submit(
        "#!/bin/bash\ntrue\n", current_working_directory=str(tmp_path), standard_output="/no/such/dir/out.txt"
    )
    job = api.wait_state(job_id, "FAILED")
    assert "/no/such/dir/out.txt" in job["error_msg"]


def test_timeout_sends_sigterm_and_runs_trap(api: Api, tmp_path: Path) -> None:
    script = (
        "#!/bin/bash\n"
        "trap 'echo trapped-term; exit 0' TERM\n"
        "echo started\n"
        "sleep 60 &\n"
        "wait\n"
    )
    job_id = api.submit(script, time_limit="0:02", current_working_directory=str(tmp_path))
    job = api.wait_state(job_id, "TIMEOUT", timeout=20)
    assert job["reason"] == "TimeLimit"
    lines = (tmp_path / f"slurm-{job_id}.out").read_text().splitlines()
    assert lines[:2] == ["started", "trapped-term"]
    # slurmstepd's notice, once the job is over (written earlier, the job's own writes at its
    # offset in the file would overwrite it).
    assert re.fullmatch(
        rf"slurmstepd: error: \*\*\* JOB {job_id} ON \S+ CANCELLED AT \d{{4}}-\d\d-\d\dT\d\d:\d\d:\d\d "
        r"DUE TO TIME LIMIT \*\*\*",
        lines[2],
    )
    assert len(lines) == 3
    assert 1.9 <= job["elapsed"] <= 6


def test_timeout_escalates_to_sigkill(api: Api, tmp_path: Path) -> None:
    # Ignores SIGTERM: only the SIGKILL after kill_wait (2 s in the fixture) ends it.
    script = "#!/bin/bash\ntrap '' TERM\nwhile true; do sleep 0.1; done\n"
    began = time.monotonic()
    job_id = api.submit(script, time_limit="0:01", current_working_directory=str(tmp_path))
    job = api.wait_state(job_id, "TIMEOUT", timeout=20)
    assert job["exit_code"] == "0:9"
    took = time.monotonic() - began
    assert took >= 3  # its limit, then the whole kill-wait
    # Its run ended at its limit, as slurmctld records it: the kill-wait (2 s) is not run time.
    assert 1 <= job["elapsed"] <= took - 2


def test_cancel_pending_never_runs(api: Api, tmp_path: Path) -> None:
    blockers = [api.submit("#!/bin/bash\nsleep 30\n", current_working_directory=str(tmp_path)) for _ in range(4)]
    for job_id in blockers:
        api.wait_state(job_id, "RUNNING")
    marker = tmp_path / "ran"
    pending = api.submit(f"#!/bin/bash\ntouch {marker}\n", current_working_directory=str(tmp_path))
    assert api.job(pending)["state"] == "PENDING"
    answer = api.cancel(pending)
    assert answer["state"] == "CANCELLED"
    for job_id in blockers:
        api.cancel(job_id)
    for job_id in blockers:
        assert api.wait_state(job_id, "CANCELLED", timeout=15)["state"] == "CANCELLED"
    time.sleep(0.5)
    job = api.job(pending)
    assert job["state"] == "CANCELLED" and job["start_time"] is None
    assert not marker.exists()
    # Cancelling again says it had already ended.
    again = api.cancel(pending)
    assert "already" in again["message"]
    assert api.stats()["used_cpus"] == 0


def test_cancel_running_kills_process_group(api: Api, tmp_path: Path) -> None:
    script = "#!/bin/bash\nsleep 300 &\necho $! > child.pid\necho $$ > main.pid\nwait\n"
    job_id = api.submit(script, current_working_directory=str(tmp_path))
    api.wait_state(job_id, "RUNNING")
    deadline = time.monotonic() + 5
    while not (tmp_path / "child.pid").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    child = int((tmp_path / "child.pid").read_text())
    api.cancel(job_id)
    job = api.wait_state(job_id, "CANCELLED", timeout=10)
    assert job["end_time"] is not None
    time.sleep(0.2)
    assert not Path(f"/proc/{child}").exists() or "zombie" in Path(f"/proc/{child}/status").read_text().lower()
    events = api.http.get(f"/jobs/{job_id}/events").json()["events"]
    assert [e["to_state"] for e in events] == ["PENDING", "RUNNING", "RUNNING", "CANCELLED"]


def test_affinity_seen_from_inside_the_job(start_conductor: object, tmp_path: Path) -> None:
    machine = sorted(os.sched_getaffinity(0))
    server: ConductorProcess = start_conductor("--cpus", str(len(machine)), home=tmp_path / "h")  # type: ignore[operator]
    api = Api(server.url)
    script = "#!/bin/bash\ngrep Cpus_allowed_list /proc/self/status\necho ids=$CONDUCTOR_CPU_IDS\n"
    job_id = api.submit(script, cpus_per_task=1, current_working_directory=str(tmp_path))
    job = api.wait_state(job_id, "COMPLETED")
    out = (tmp_path / f"slurm-{job_id}.out").read_text().split("\n")
    allowed = out[0].split(":")[1].strip()
    assert allowed == job["cpu_ids"]
    assert out[1] == f"ids={job['cpu_ids']}"
    assert int(allowed) in machine
    assert api.query(job_id)["detail"]["cpu_ids"] == allowed


def test_binding_off_when_declaring_more_cpus_than_machine(start_conductor: object, tmp_path: Path) -> None:
    declared = len(os.sched_getaffinity(0)) + 2
    server: ConductorProcess = start_conductor("--cpus", str(declared), home=tmp_path / "h")  # type: ignore[operator]
    api = Api(server.url)
    node = api.http.get("/nodes").json()["nodes"][0]
    assert node["cpu_binding"] is False
    assert node["cpus"] == declared and node["cpu_ids"] == f"0-{declared - 1}"
    assert "CPU binding is off" in server.log()


def test_job_environment_is_clean(start_conductor: object, tmp_path: Path) -> None:
    server: ConductorProcess = start_conductor(  # type: ignore[operator]
        "--cpus", "2", home=tmp_path / "h", env={"WORKER_SECRET": "s3cr3t", "CONDUCTOR_TOKEN": "tok-xyz"}
    )
    api = Api(server.url)
    job_id = api.submit(
        "#!/bin/bash\nenv\n",
        name="envjob",
        cpus_per_task=2,
        environment={"MY_VAR": "mine"},
        current_working_directory=str(tmp_path),
    )
    api.wait_state(job_id, "COMPLETED")
    env = dict(
        line.split("=", 1) for line in (tmp_path / f"slurm-{job_id}.out").read_text().splitlines() if "=" in line
    )
    assert "WORKER_SECRET" not in env
    # The job's own variables only (its CPUs, where its sruns record their steps).
    assert not any(k.startswith("CONDUCTOR_") and k not in ("CONDUCTOR_CPU_IDS", "CONDUCTOR_STEP_RECORDS") for k in env)
    assert "s3cr3t" not in str(env.values()) and "tok-xyz" not in str(env.values())
    assert env["MY_VAR"] == "mine"
    assert env["SLURM_JOB_ID"] == str(job_id)
    assert env["SLURM_JOB_NAME"] == "envjob"
    assert env["SLURM_CPUS_PER_TASK"] == "2"
    assert env["SLURM_NTASKS"] == "1"
    assert env["SLURM_SUBMIT_DIR"] == str(tmp_path)
    # Bound to its CPUs, threaded libraries count them, and OMP_NUM_THREADS is left alone as
    # Slurm leaves it; unbound, it is the task's share.
    (node,) = api.http.get("/nodes").json()["nodes"]
    if node["cpu_binding"]:
        assert "OMP_NUM_THREADS" not in env
    else:
        assert env["OMP_NUM_THREADS"] == "2"
    assert env["SLURM_JOB_NODELIST"] == api.job(job_id)["node_list"]
    # Submitted from this host (a loopback address): the host's name, as sbatch gives it.
    assert env["SLURM_SUBMIT_HOST"] == socket.gethostname().split(".")[0]


def test_burst_of_500_never_overallocates(start_conductor: object, tmp_path: Path) -> None:
    home = tmp_path / "h"
    server: ConductorProcess = start_conductor("--cpus", "8", home=home)  # type: ignore[operator]
    api = Api(server.url)
    samples: list[dict[str, int]] = []
    db_samples: list[tuple[int, int]] = []
    stop = threading.Event()

    def sample() -> None:
        db = sqlite3.connect(str(home / "conductor.db"))
        while not stop.is_set():
            samples.append(httpx.get(server.url + "/jobs/stats", headers=server.headers()).json())
            row = db.execute("SELECT COALESCE(SUM(allocated_cpus),0), COUNT(*) FROM jobs WHERE state='RUNNING'").fetchone()
            db_samples.append((int(row[0]), int(row[1])))
            time.sleep(0.01)
        db.close()

    sampler = threading.Thread(target=sample)
    sampler.start()
    ids: list[int] = []
    lock = threading.Lock()

    def submit(n: int) -> None:
        client = Api(server.url)
        for i in range(n):
            job_id = client.submit(
                "#!/bin/bash\nsleep 0.0$((RANDOM % 5))\n",
                cpus_per_task=1 + (i % 3),
                current_working_directory=str(tmp_path),
            )
            with lock:
                ids.append(job_id)
        client.close()

    threads = [threading.Thread(target=submit, args=(125,)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    api.wait_all(ids, {"COMPLETED"}, timeout=240)
    stop.set()
    sampler.join()
    assert len(ids) == 500
    assert samples and all(s["used_cpus"] <= s["total_cpus"] == 8 for s in samples)
    assert all(s["used_cpus"] + s["available_cpus"] == s["total_cpus"] for s in samples)
    assert all(used <= 8 for used, _ in db_samples)
    jobs = api.http.get("/jobs", params={"limit": 1000}).json()["jobs"]
    assert sum(1 for j in jobs if j["state"] == "COMPLETED") == 500
    assert api.stats() == {"total_cpus": 8, "used_cpus": 0, "available_cpus": 8, "running_jobs": 0, "pending_jobs": 0}


def test_restart_loses_no_job(start_conductor: object, tmp_path: Path) -> None:
    home = tmp_path / "h"
    server: ConductorProcess = start_conductor("--cpus", "2", home=home)  # type: ignore[operator]
    api = Api(server.url)
    running_ok = api.submit("#!/bin/bash\nsleep 3\nexit 0\n", current_working_directory=str(tmp_path))
    running_bad = api.submit("#!/bin/bash\nsleep 3\nexit 7\n", current_working_directory=str(tmp_path))
    pending = [api.submit("#!/bin/bash\necho done\n", current_working_directory=str(tmp_path)) for _ in range(3)]
    api.wait_state(running_ok, "RUNNING")
    api.wait_state(running_bad, "RUNNING")
    assert all(api.job(j)["state"] == "PENDING" for j in pending)
    api.close()

    assert server.stop(signal.SIGTERM) == 0

    # Both jobs finish while the server is down; the restarted one reads their true exit codes.
    time.sleep(3.5)
    server2: ConductorProcess = start_conductor("--cpus", "2", home=home, port=server.port)  # type: ignore[operator]
    api2 = Api(server2.url)
    assert api2.wait_state(running_ok, "COMPLETED", timeout=15)["exit_code"] == "0:0"
    assert api2.wait_state(running_bad, "FAILED", timeout=15)["exit_code"] == "7:0"
    for job_id in pending:
        assert api2.wait_state(job_id, "COMPLETED", timeout=20)["state"] == "COMPLETED"
    assert api2.stats()["used_cpus"] == 0


def test_restart_with_vanished_job_ends_node_fail(start_conductor: object, tmp_path: Path) -> None:
    home = tmp_path / "h"
    server: ConductorProcess = start_conductor("--cpus", "2", home=home)  # type: ignore[operator]
    api = Api(server.url)
    job_id = api.submit("#!/bin/bash\nsleep 60\n", current_working_directory=str(tmp_path))
    api.wait_state(job_id, "RUNNING")
    status_file = home / "run" / f"job_{job_id}.status"
    deadline = time.monotonic() + 5
    while (not status_file.exists() or "start" not in status_file.read_text()) and time.monotonic() < deadline:
        time.sleep(0.02)
    # "start PID STARTTIME LAUNCHER_PID LAUNCHER_STARTTIME"
    _, pid, _, launcher, _ = status_file.read_text().split("\n")[0].split()
    server.kill()
    # The job dies with its worker down, and with the launcher that would have recorded its end.
    os.kill(int(launcher), signal.SIGKILL)
    os.killpg(int(pid), signal.SIGKILL)
    time.sleep(0.2)
    server2: ConductorProcess = start_conductor("--cpus", "2", home=home, port=server.port)  # type: ignore[operator]
    api2 = Api(server2.url)
    job = api2.wait_state(job_id, "NODE_FAIL", timeout=15)
    assert "gone" in job["error_msg"]
    assert api2.stats()["used_cpus"] == 0


def test_readopted_job_still_obeys_cancel(start_conductor: object, tmp_path: Path) -> None:
    home = tmp_path / "h"
    server: ConductorProcess = start_conductor("--cpus", "2", home=home)  # type: ignore[operator]
    api = Api(server.url)
    # Its standard error reopened on another file: the notice of its cancel goes to the error
    # file it was launched with, never where its process points (a job could point it at a
    # root file it may only read, and have the restarted worker append to it as root).
    job_id = api.submit(
        "#!/bin/bash\nexec 2>>elsewhere.txt\necho ready > ready.txt\nsleep 120\n",
        current_working_directory=str(tmp_path), standard_error=str(tmp_path / "declared.err"),
    )
    api.wait_state(job_id, "RUNNING")
    deadline = time.monotonic() + 15
    while not (tmp_path / "ready.txt").exists():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    server.kill()
    server2: ConductorProcess = start_conductor("--cpus", "2", home=home, port=server.port)  # type: ignore[operator]
    api2 = Api(server2.url)
    assert api2.job(job_id)["state"] == "RUNNING"
    api2.cancel(job_id)
    job = api2.wait_state(job_id, "CANCELLED", timeout=15)
    assert job["exit_code"] == "0:15"
    assert f"*** JOB {job_id} ON " in (tmp_path / "declared.err").read_text()
    assert "slurmstepd" not in (tmp_path / "elsewhere.txt").read_text()
