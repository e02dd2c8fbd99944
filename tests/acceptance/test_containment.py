"""Per-job containment on a real kernel: cgroup v1 as root (memory limits and the out-of-memory
killer, a setsid grandchild, cpusets, the pids cap, usage figures, notices), and the polling
fallback without control groups. The cgroup v2 logic is tested against a tree laid out as v2
(test_cgroup_v2_tree.py): this machine's kernel offers no delegable v2 controllers.

The cgroup tests need root and cgroup v1's memory hierarchy: under CI=true their absence is a
failure, elsewhere they are skipped saying why.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support import Api, ConductorProcess, running_up

from conductor.worker.cgroups import v1_usable

StartConductor = Callable[..., ConductorProcess]
CGROUP_ROOT = Path("/sys/fs/cgroup")
MB = 1024 * 1024

# Touches `MB` megabytes (every page), then burns `CPU` seconds of CPU, then sleeps `REST`; says
# what it used by its own account (CPU seconds, largest RSS in bytes).
TOUCH_AND_BURN = """#!/usr/bin/env python3
import os, resource, time
size = int(os.environ.get("MB", "0")) * 1024 * 1024
block = bytearray(size)
for i in range(0, size, 4096):
    block[i] = 1
start = time.process_time()
while time.process_time() - start < float(os.environ.get("CPU", "0")):
    pass
time.sleep(float(os.environ.get("REST", "0")))
own = resource.getrusage(resource.RUSAGE_SELF)
print("done", own.ru_utime + own.ru_stime, own.ru_maxrss * 1024, flush=True)
"""


def _need_v1() -> None:
    why = "not root" if os.geteuid() != 0 else v1_usable(CGROUP_ROOT)
    if why is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"cgroup v1 tests need root and cgroup v1: {why}")
    pytest.skip(f"cgroup v1 tests need root and cgroup v1: {why}")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConductorProcess]:
    _need_v1()
    with running_up(tmp_path_factory.mktemp("containment") / "home", "--cpus", "2") as process:
        yield process


@pytest.fixture
def api(server: ConductorProcess) -> Iterator[Api]:
    client = Api(server.url)
    yield client
    client.close()


def _processes_with(argument: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                args = (entry / "cmdline").read_bytes().split(b"\0")
                state = (entry / "stat").read_text().rpartition(")")[2].split()[0]
            except (OSError, IndexError):
                continue
            if argument.encode() in args and state != "Z":
                found.append(int(entry.name))
    return found


def _wait(predicate: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _group_of(pid: int, controller: str) -> Path:
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, names, path = line.split(":", 2)
        if controller in names.split(","):
            return CGROUP_ROOT / controller / path.lstrip("/")
    raise AssertionError(f"process {pid} has no {controller} group")


def test_the_node_says_how_it_contains_jobs(server: ConductorProcess, api: Api) -> None:
    nodes = api.http.get("/nodes").json()["nodes"]
    assert [node["containment"] for node in nodes] == ["cgroup-v1"]
    assert "containment cgroup-v1" in server.log()
    # Its launcher lives in a group of its own, which it keeps moving into (see launcher.py's
    # WARM_INTERVAL): a job's first move into its groups then never waits for the kernel.
    launchers = _processes_with(str(server.home / "run"))
    assert len(launchers) == 1
    group = _group_of(launchers[0], "freezer")
    assert group.name == "launcher" and group.parent.parent.name == "conductor"


def test_a_job_over_its_memory_ends_out_of_memory(api: Api, tmp_path: Path) -> None:
    (tmp_path / "touch.py").write_text(TOUCH_AND_BURN)
    job_id = api.submit(
        "#!/bin/bash\nMB=800 python3 touch.py\necho after\n",
        memory_per_node="100M",
        current_working_directory=str(tmp_path),
    )
    job = api.wait_state(job_id, "OUT_OF_MEMORY", timeout=60)
    assert job["exit_code"] == "0:125"
    assert job["reason"] == "OutOfMemory"
    assert job["usage"]["oom_kills"] >= 1
    # Neither swap nor anything else let it past its limit: its group's high-water mark is the
    # limit, give or take the kernel's accounting slack (a few pages per CPU), not 800 MB.
    assert job["usage"]["max_rss"] <= 110 * MB
    out = (tmp_path / f"slurm-{job_id}.out").read_text()
    assert (
        f"slurmstepd: error: Detected {job['usage']['oom_kills']} oom-kill event(s) in StepId={job_id}.batch. "
        "Some of your processes may have been killed by the cgroup out-of-memory handler."
    ) in out
    assert "done" not in out


def test_a_group_kept_for_later_jobs_carries_nothing_of_its_last(api: Api, tmp_path: Path) -> None:
    # The groups of a job that ended clean are kept for the next (renamed, their figures reset):
    # an out-of-memory kill, a limit or a high-water mark must not pass to the job after.
    (tmp_path / "touch.py").write_text(TOUCH_AND_BURN)
    over = api.submit(
        "#!/bin/bash\nMB=300 python3 touch.py\n", memory_per_node="50M", current_working_directory=str(tmp_path)
    )
    api.wait_state(over, "OUT_OF_MEMORY", timeout=60)
    big = api.submit("#!/bin/bash\nMB=150 python3 touch.py\n", current_working_directory=str(tmp_path))
    assert api.wait_state(big, "COMPLETED", timeout=60)["usage"]["max_rss"] >= 150 * MB
    after = [api.submit("#!/bin/bash\ntrue\n", current_working_directory=str(tmp_path)) for _ in range(4)]
    for job_id in after:
        job = api.wait_state(job_id, "COMPLETED", timeout=30)
        assert job["exit_code"] == "0:0" and job["usage"]["oom_kills"] == 0
        assert job["usage"]["max_rss"] < 8 * MB
    # No limit left behind either: an unlimited job may use what the 50M one could not.
    free = api.submit("#!/bin/bash\nMB=120 python3 touch.py\n", current_working_directory=str(tmp_path))
    assert api.wait_state(free, "COMPLETED", timeout=60)["usage"]["max_rss"] >= 120 * MB


def test_a_running_job_is_in_its_groups_with_its_limits(api: Api, tmp_path: Path) -> None:
    job_id = api.submit(
        "#!/bin/bash\necho $$ > pid\nsleep 60\n",
        memory_per_node="64M",
        cpus_per_task=1,
        current_working_directory=str(tmp_path),
    )
    job = api.wait_state(job_id, "RUNNING")
    _wait(lambda: (tmp_path / "pid").exists() and (tmp_path / "pid").read_text().strip() != "")
    pid = int((tmp_path / "pid").read_text())
    memory = _group_of(pid, "memory")
    assert memory.name == f"job_{job_id}"
    assert int((memory / "memory.limit_in_bytes").read_text()) == 64 * MB
    if (memory / "memory.memsw.limit_in_bytes").exists():
        assert int((memory / "memory.memsw.limit_in_bytes").read_text()) == 64 * MB
    assert _group_of(pid, "freezer").name == f"job_{job_id}"
    assert _group_of(pid, "cpuacct").name == f"job_{job_id}"
    cpuset = _group_of(pid, "cpuset")
    assert cpuset.name == f"job_{job_id}"
    assert (cpuset / "cpuset.cpus").read_text().strip() == job["cpu_ids"]

    api.cancel(job_id)
    api.wait_state(job_id, "CANCELLED")
    out = (tmp_path / f"slurm-{job_id}.out").read_text()
    assert f"slurmstepd: error: *** JOB {job_id} ON " in out and " CANCELLED AT " in out
    assert "DUE TO TIME LIMIT" not in out
    # Its groups are gone with it.
    _wait(lambda: not memory.exists() and not cpuset.exists())


def test_nothing_a_job_started_survives_it(api: Api, tmp_path: Path) -> None:
    marker = f"{random.randint(100000, 999999)}.5"
    # A new session and a double fork: neither its process group nor its session is the job's.
    script = f"#!/bin/bash\n( setsid sleep {marker} & )\nsetsid sleep {marker} &\nsleep 0.5\necho started\n"
    job_id = api.submit(script, current_working_directory=str(tmp_path))
    assert api.wait_state(job_id, "COMPLETED", timeout=30)["exit_code"] == "0:0"
    _wait(lambda: _processes_with(marker) == [], timeout=5)


def test_a_job_cannot_widen_its_cpus(api: Api, tmp_path: Path) -> None:
    script = "#!/bin/bash\ntaskset -pc 0-1 $$ >/dev/null 2>&1\ngrep Cpus_allowed_list /proc/self/status\n"
    job_id = api.submit(script, cpus_per_task=1, current_working_directory=str(tmp_path))
    job = api.wait_state(job_id, "COMPLETED", timeout=30)
    allowed = (tmp_path / f"slurm-{job_id}.out").read_text().split(":")[1].strip()
    assert allowed == job["cpu_ids"]


def test_usage_is_measured(api: Api, server: ConductorProcess, tmp_path: Path) -> None:
    (tmp_path / "touch.py").write_text(TOUCH_AND_BURN)
    job_id = api.submit(
        "#!/bin/bash\nMB=200 CPU=2 python3 touch.py\n", memory_per_node="1G", current_working_directory=str(tmp_path)
    )
    job = api.wait_state(job_id, "COMPLETED", timeout=60)
    usage = job["usage"]
    assert usage["source"] == "cgroup-v1"
    # Within 10% of what it really used, by its own account: 200 MB touched (and an interpreter
    # of about 10 MB), 2 s of CPU burnt (and its start and the page faults).
    _, cpu, rss = (tmp_path / f"slurm-{job_id}.out").read_text().split()
    assert 200 * MB <= usage["max_rss"] and abs(usage["max_rss"] - int(rss)) <= 0.1 * int(rss)
    assert 2.0 <= usage["total_cpu"] and abs(usage["total_cpu"] - float(cpu)) <= 0.1 * float(cpu)
    assert abs(usage["user_cpu"] + usage["system_cpu"] - usage["total_cpu"]) < 0.01
    assert api.query(job_id)["usage"] == usage

    env = {**os.environ, "CONDUCTOR_URL": server.url, "CONDUCTOR_TOKEN": server.token}
    sacct = subprocess.run(
        [sys.executable, "-m", "conductor", "sacct", "-j", str(job_id), "--parsable2", "-n",
         "--format=JobID,State,MaxRSS,AveRSS,TotalCPU,UserCPU,SystemCPU"],
        env=env, capture_output=True, text=True, check=True,
    ).stdout.splitlines()
    job_line, batch_line = (line.split("|") for line in sacct)
    assert job_line[0] == str(job_id) and job_line[2] == ""  # memory is the steps'
    assert batch_line[0] == f"{job_id}.batch"
    assert batch_line[2] == f"{usage['max_rss'] // 1024}K" or batch_line[2].endswith("M")
    minutes, seconds = batch_line[4].split(":")
    assert minutes == "00" and abs(float(seconds) - usage["total_cpu"]) < 0.001

    show = subprocess.run(
        [sys.executable, "-m", "conductor", "scontrol", "show", "job", str(job_id)],
        env=env, capture_output=True, text=True, check=True,
    ).stdout
    assert f"MaxRSS={batch_line[2]} TotalCPU={batch_line[4]} " in show

    seff = subprocess.run(
        [sys.executable, "-m", "conductor", "seff", str(job_id)], env=env, capture_output=True, text=True, check=True
    ).stdout
    assert f"Job ID: {job_id}" in seff
    assert "State: COMPLETED (exit code 0)" in seff
    # Whole seconds, the fraction rounded, as seff adds up its steps' seconds and microseconds.
    assert f"CPU Utilized: 00:00:{int(usage['total_cpu'] + 0.5):02d}" in seff
    missing = subprocess.run(
        [sys.executable, "-m", "conductor", "seff", "999999"], env=env, capture_output=True, text=True, check=False
    )
    assert (missing.returncode, missing.stdout, missing.stderr) == (2, "", "Job not found.\n")
    assert "Memory Efficiency: " in seff and "of 1.00 GB" in seff


def test_a_time_limit_leaves_its_notice(api: Api, tmp_path: Path) -> None:
    job_id = api.submit("#!/bin/bash\nsleep 30\n", time_limit="0:01", current_working_directory=str(tmp_path))
    api.wait_state(job_id, "TIMEOUT", timeout=30)
    out = (tmp_path / f"slurm-{job_id}.out").read_text()
    assert f"slurmstepd: error: *** JOB {job_id} ON " in out and " DUE TO TIME LIMIT ***" in out


def test_a_job_cannot_have_more_processes_than_the_cap(start_conductor: StartConductor, tmp_path: Path) -> None:
    _need_v1()
    server = start_conductor("--cpus", "1", home=tmp_path / "h", env={"CONDUCTOR_MAX_JOB_PIDS": "8"})
    api = Api(server.url)
    script = (
        "#!/usr/bin/env python3\nimport os, time\nn = 0\n"
        "for _ in range(30):\n"
        "    try:\n        pid = os.fork()\n    except OSError:\n        break\n"
        "    if pid == 0:\n        time.sleep(3)\n        os._exit(0)\n    n += 1\n"
        "print(n, flush=True)\n"
    )
    job_id = api.submit(script, current_working_directory=str(tmp_path))
    api.wait_state(job_id, "COMPLETED", timeout=30)
    assert int((tmp_path / f"slurm-{job_id}.out").read_text()) < 8


def test_leftovers_of_a_job_that_ended_while_the_worker_was_down_are_killed(
    start_conductor: StartConductor, tmp_path: Path
) -> None:
    _need_v1()
    home = tmp_path / "h"
    server = start_conductor("--cpus", "1", home=home)
    api = Api(server.url)
    marker = f"{random.randint(100000, 999999)}.25"
    job_id = api.submit(
        f"#!/bin/bash\nsetsid sleep {marker} &\nsleep 1\n", current_working_directory=str(tmp_path)
    )
    api.wait_state(job_id, "RUNNING")
    _wait(lambda: len(_processes_with(marker)) == 1)
    server.kill()  # its launcher lives on, and reaps the job, but cannot end what it left
    time.sleep(2)
    assert len(_processes_with(marker)) == 1
    again = start_conductor("--cpus", "1", home=home, port=server.port)
    assert Api(again.url).wait_state(job_id, "COMPLETED", timeout=20)["exit_code"] == "0:0"
    _wait(lambda: _processes_with(marker) == [], timeout=5)


# ------------------------------------------------------------------ no cgroups
def test_without_cgroups_the_fallback_polls_and_holds(start_conductor: StartConductor, tmp_path: Path) -> None:
    server = start_conductor(
        "--cpus",
        "1",
        home=tmp_path / "h",
        env={"CONDUCTOR_CONTAINMENT": "none", "CONDUCTOR_KILL_OVER_MEMORY": "true", "CONDUCTOR_ACCT_INTERVAL": "0.2"},
    )
    assert "containment polling" in server.log()
    api = Api(server.url)
    assert [node["containment"] for node in api.http.get("/nodes").json()["nodes"]] == ["polling"]
    (tmp_path / "touch.py").write_text(TOUCH_AND_BURN)

    over = api.submit(
        "#!/bin/bash\nMB=300 REST=20 python3 touch.py\n", memory_per_node="100M", current_working_directory=str(tmp_path)
    )
    job = api.wait_state(over, "OUT_OF_MEMORY", timeout=30)
    assert job["exit_code"] == "0:125"
    assert "oom-kill event(s) in StepId=" in (tmp_path / f"slurm-{over}.out").read_text()

    marker = f"{random.randint(100000, 999999)}.75"
    measured = api.submit(
        f"#!/bin/bash\nsetsid sleep {marker} &\nMB=100 CPU=1 REST=0.6 python3 touch.py\n",
        memory_per_node="1G",
        current_working_directory=str(tmp_path),
    )
    job = api.wait_state(measured, "COMPLETED", timeout=30)
    usage = job["usage"]
    assert usage["source"] == "polling"
    _, cpu, rss = (tmp_path / f"slurm-{measured}.out").read_text().split()
    assert 1.0 <= usage["total_cpu"] and abs(usage["total_cpu"] - float(cpu)) <= 0.1 * float(cpu)
    assert 100 * MB <= usage["max_rss"] and abs(usage["max_rss"] - int(rss)) <= 0.1 * int(rss)
    _wait(lambda: _processes_with(marker) == [], timeout=5)


def test_signals_reach_nothing_outside_the_job(api: Api, tmp_path: Path) -> None:
    # A process outside any job, in the worker's way: a cancel must not touch it.
    bystander = subprocess.Popen(["sleep", "30"])
    try:
        job_id = api.submit("#!/bin/bash\nsleep 30\n", current_working_directory=str(tmp_path))
        api.wait_state(job_id, "RUNNING")
        api.cancel(job_id)
        api.wait_state(job_id, "CANCELLED")
        assert bystander.poll() is None
    finally:
        bystander.send_signal(signal.SIGKILL)
        bystander.wait()


# ------------------------------------------------------------ the worker away
def test_time_is_kept_while_the_worker_is_down(start_conductor: StartConductor, tmp_path: Path) -> None:
    from datetime import datetime

    home = tmp_path / "h"
    server = start_conductor("--cpus", "2", home=home)
    api = Api(server.url)
    over = api.submit("#!/bin/bash\necho $$ > over.pid\nsleep 60\n", time_limit="0:03",
                      current_working_directory=str(tmp_path))
    ends = api.submit("#!/bin/bash\nsleep 2\nexit 3\n", current_working_directory=str(tmp_path))
    started = {job_id: api.wait_state(job_id, "RUNNING")["start_time"] for job_id in (over, ends)}
    _wait(lambda: (tmp_path / "over.pid").exists() and (tmp_path / "over.pid").read_text().strip() != "")
    pid = int((tmp_path / "over.pid").read_text())
    assert server.stop(signal.SIGTERM) == 0

    # No worker: the launcher, the jobs' parent, ends the job at its limit all the same.
    _wait(lambda: not Path(f"/proc/{pid}").exists(), timeout=10)
    time.sleep(1)
    again = start_conductor("--cpus", "2", home=home, port=server.port)
    api = Api(again.url)
    timed_out = api.wait_state(over, "TIMEOUT", timeout=20)
    failed = api.wait_state(ends, "FAILED", timeout=20)
    assert failed["exit_code"] == "3:0"

    def lasted(job: dict[str, object], job_id: int) -> float:
        return (datetime.fromisoformat(str(job["end_time"])) - datetime.fromisoformat(started[job_id])).total_seconds()

    # Their true end times, not the restart's.
    assert 2.5 <= lasted(timed_out, over) <= 4.5
    assert 1.5 <= lasted(failed, ends) <= 3.0


# ------------------------------------------------------------------ job steps
def test_sruns_are_recorded_as_steps(api: Api, server: ConductorProcess, tmp_path: Path) -> None:
    (tmp_path / "touch.py").write_text(TOUCH_AND_BURN)
    srun = f"{sys.executable} -m conductor srun"
    script = (
        "#!/bin/bash\n"
        f"MB=20 CPU=0.5 {srun} -n 2 python3 touch.py\n"
        f"{srun} false\n"
        "exit 0\n"
    )
    job_id = api.submit(script, ntasks=2, current_working_directory=str(tmp_path))
    job = api.wait_state(job_id, "COMPLETED", timeout=60)
    first, second = job["usage"]["steps"]
    assert (first["step_id"], first["state"], first["exit_code"], first["ntasks"]) == (0, "COMPLETED", "0:0", 2)
    assert 1.0 <= first["total_cpu"] <= 1.5  # two tasks, half a second each, and their interpreters
    assert first["max_rss"] >= 20 * MB
    assert (second["step_id"], second["name"], second["state"], second["exit_code"]) == (1, "false", "FAILED", "1:0")

    env = {**os.environ, "CONDUCTOR_URL": server.url, "CONDUCTOR_TOKEN": server.token}

    def sacct(*args: str) -> list[list[str]]:
        out = subprocess.run(
            [sys.executable, "-m", "conductor", "sacct", "-j", str(job_id), "--parsable2", "-n",
             "--format=JobID,JobName,State,ExitCode,NTasks", *args],
            env=env, capture_output=True, text=True, check=True,
        ).stdout
        return [line.split("|") for line in out.splitlines()]

    assert sacct() == [
        [str(job_id), job["name"], "COMPLETED", "0:0", ""],
        [f"{job_id}.batch", "batch", "COMPLETED", "0:0", "1"],
        [f"{job_id}.0", "python3", "COMPLETED", "0:0", "2"],
        [f"{job_id}.1", "false", "FAILED", "1:0", "2"],  # the job's two tasks, as srun defaults to
    ]
    assert sacct("-X") == [[str(job_id), job["name"], "COMPLETED", "0:0", ""]]


def test_a_running_jobs_usage_is_sampled(start_conductor: StartConductor, tmp_path: Path) -> None:
    _need_v1()
    server = start_conductor("--cpus", "1", home=tmp_path / "h", env={"CONDUCTOR_ACCT_INTERVAL": "0.3"})
    api = Api(server.url)
    (tmp_path / "touch.py").write_text(TOUCH_AND_BURN)
    job_id = api.submit("#!/bin/bash\nMB=60 CPU=1 REST=30 python3 touch.py\n", current_working_directory=str(tmp_path))
    api.wait_state(job_id, "RUNNING")

    def sampled() -> bool:
        usage = api.job(job_id)["usage"]
        return usage is not None and (usage["total_cpu"] or 0) >= 1.0 and (usage["max_rss"] or 0) >= 60 * MB

    _wait(sampled, timeout=20)
    assert api.job(job_id)["state"] == "RUNNING"
    assert api.job(job_id)["usage"]["max_vmsize"] >= 60 * MB
    api.cancel(job_id)
    job = api.wait_state(job_id, "CANCELLED")
    assert job["usage"]["max_vmsize"] >= 60 * MB  # MaxVMSize comes from the samples


def test_a_limit_enforced_while_the_worker_was_down_leaves_its_notice(
    start_conductor: StartConductor, tmp_path: Path
) -> None:
    home = tmp_path / "h"
    slow_kill = {"CONDUCTOR_KILL_WAIT": "20"}
    server = start_conductor("--cpus", "1", home=home, env=slow_kill)
    api = Api(server.url)
    script = "#!/bin/bash\ntrap 'echo term; sleep 6; exit 0' TERM\nsleep 60 &\nwait\n"
    job_id = api.submit(script, time_limit="0:03", current_working_directory=str(tmp_path))
    api.wait_state(job_id, "RUNNING")
    assert server.stop(signal.SIGTERM) == 0
    out = tmp_path / f"slurm-{job_id}.out"
    _wait(lambda: out.exists() and "term" in out.read_text(), timeout=15)  # the launcher's SIGTERM
    again = start_conductor("--cpus", "1", home=home, port=server.port, env=slow_kill)
    job = Api(again.url).wait_state(job_id, "TIMEOUT", timeout=30)
    assert job["reason"] == "TimeLimit"
    assert f"slurmstepd: error: *** JOB {job_id} ON " in out.read_text() and "DUE TO TIME LIMIT" in out.read_text()
