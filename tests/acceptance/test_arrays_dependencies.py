"""Acceptance tests of issue 3's server side: arrays, dependencies, hold/release, begin, requeue,
update, signals. One `conductor up` serves the whole module (starting one costs seconds); each
test uses its own jobs, names and working directory."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from support import Api, ConductorProcess, clean_env, running_up


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConductorProcess]:
    with running_up(tmp_path_factory.mktemp("home"), "--cpus", "8") as process:
        yield process


@pytest.fixture
def api(server: ConductorProcess) -> Iterator[Api]:
    client = Api(server.url)
    yield client
    client.close()


def ts(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()


def tasks_of(api: Api, array_id: int) -> list[dict[str, Any]]:
    return api.jobs(array_job_id=array_id)


def wait_file(path: Path, text: str, timeout: float = 10.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and text in (content := path.read_text()):
            return content
        time.sleep(0.02)
    raise AssertionError(f"{path} never contained {text!r}: {path.read_text() if path.exists() else '(missing)'}")


# ------------------------------------------------------------------ arrays
ENV_SCRIPT = (
    "#!/bin/bash\n"
    "echo $SLURM_ARRAY_JOB_ID $SLURM_ARRAY_TASK_ID $SLURM_ARRAY_TASK_COUNT "
    "$SLURM_ARRAY_TASK_MIN $SLURM_ARRAY_TASK_MAX $SLURM_ARRAY_TASK_STEP $SLURM_JOB_ID\n"
)


@pytest.mark.parametrize(
    ("spec", "indices", "step"),
    [("0-3", [0, 1, 2, 3], 1), ("1,3,5", [1, 3, 5], 2), ("0-15:4", [0, 4, 8, 12], 4)],
)
def test_array_forms_environment_and_patterns(api: Api, tmp_path: Path, spec: str, indices: list[int], step: int) -> None:
    response = api.http.post(
        "/jobs/submit",
        json={
            "job": {"array": spec, "name": "arr", "current_working_directory": str(tmp_path), "standard_output": "out-%A_%a-%x.txt"},
            "script": ENV_SCRIPT,
        },
    )
    assert response.status_code == 201, response.text
    body = response.json()
    array_id = int(body["job_id"])
    assert len(body["array_task_ids"]) == len(indices)
    api.wait_all([int(i) for i in body["array_task_ids"]], timeout=20)
    tasks = tasks_of(api, array_id)
    assert [t["array_task_id"] for t in tasks] == indices
    assert all(t["state"] == "COMPLETED" and t["array_job_id"] == array_id for t in tasks)
    for task in tasks:
        index = task["array_task_id"]
        out = (tmp_path / f"out-{array_id}_{index}-arr.txt").read_text().split()
        assert out == [
            str(array_id), str(index), str(len(indices)), str(indices[0]), str(indices[-1]), str(step), str(task["job_id"])
        ]


def test_default_array_output_name(api: Api, tmp_path: Path) -> None:
    response = api.http.post(
        "/jobs/submit", json={"job": {"array": "2-3", "current_working_directory": str(tmp_path)}, "script": ENV_SCRIPT}
    )
    array_id = int(response.json()["job_id"])
    api.wait_all([int(i) for i in response.json()["array_task_ids"]])
    assert (tmp_path / f"slurm-{array_id}_2.out").exists() and (tmp_path / f"slurm-{array_id}_3.out").exists()


def test_array_max_running_limit(api: Api, tmp_path: Path) -> None:
    response = api.http.post(
        "/jobs/submit",
        json={"job": {"array": "0-7%2", "current_working_directory": str(tmp_path)}, "script": "#!/bin/bash\nsleep 0.4\n"},
    )
    assert response.status_code == 201, response.text
    array_id = int(response.json()["job_id"])
    most_running, limited = 0, False
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        tasks = tasks_of(api, array_id)
        running = sum(t["state"] == "RUNNING" for t in tasks)
        most_running = max(most_running, running)
        limited |= any(t["state"] == "PENDING" and t["reason"] == "JobArrayTaskLimit" for t in tasks)
        if all(t["state"] == "COMPLETED" for t in tasks):
            break
        time.sleep(0.03)
    assert all(t["state"] == "COMPLETED" for t in tasks_of(api, array_id))
    assert most_running == 2, f"at most 2 tasks at once were expected to run, saw {most_running}"
    assert limited, "pending tasks never showed reason JobArrayTaskLimit"


def test_ten_thousand_task_array(api: Api, tmp_path: Path) -> None:
    started = time.perf_counter()
    response = api.http.post(
        "/jobs/submit",
        json={"job": {"array": "0-9999", "hold": True, "current_working_directory": str(tmp_path)}, "script": "#!/bin/bash\ntrue\n"},
    )
    elapsed = time.perf_counter() - started
    print(f"\n10,000-task array accepted in {elapsed * 1000:.0f} ms (POST /jobs/submit, round trip)")
    assert response.status_code == 201, response.text
    array_id = int(response.json()["job_id"])
    assert len(response.json()["array_task_ids"]) == 10_000
    tasks = tasks_of(api, array_id)
    assert len(tasks) == 10_000 and tasks[-1]["array_task_id"] == 9999
    # One request cancels the whole array.
    started = time.perf_counter()
    cancelled = api.http.post(f"/jobs/cancel/{array_id}_*")
    print(f"10,000 tasks cancelled in {(time.perf_counter() - started) * 1000:.0f} ms")
    assert cancelled.status_code == 200, cancelled.text
    assert {t["state"] for t in tasks_of(api, array_id)} == {"CANCELLED"}


def test_cancel_one_task_a_plain_id_or_the_whole_array(api: Api, tmp_path: Path) -> None:
    response = api.http.post(
        "/jobs/submit",
        json={"job": {"array": "0-3", "current_working_directory": str(tmp_path)}, "script": "#!/bin/bash\nsleep 30\n"},
    )
    array_id = int(response.json()["job_id"])
    ids = [int(i) for i in response.json()["array_task_ids"]]
    for job_id in ids:
        api.wait_state(job_id, "RUNNING")
    assert api.http.post(f"/jobs/cancel/{array_id}_2").status_code == 200
    api.wait_state(ids[2], "CANCELLED")
    # A plain id is that job only, even when it is the array's id (the CLI fans out by task).
    assert api.http.post(f"/jobs/cancel/{array_id}").status_code == 200
    api.wait_state(ids[0], "CANCELLED")
    assert [api.job(i)["state"] for i in (ids[1], ids[3])] == ["RUNNING", "RUNNING"]
    assert api.http.post(f"/jobs/cancel/{array_id}_*").status_code == 200
    api.wait_all(ids, {"CANCELLED"})
    assert api.http.post(f"/jobs/cancel/{array_id}_9").status_code == 404
    assert api.http.post("/jobs/cancel/12x").status_code == 400


def test_task_addressed_by_array_index(api: Api, tmp_path: Path) -> None:
    response = api.http.post(
        "/jobs/submit",
        json={"job": {"array": "5,7", "hold": True, "current_working_directory": str(tmp_path)}, "script": "#!/bin/bash\ntrue\n"},
    )
    array_id = int(response.json()["job_id"])
    task = api.http.get(f"/jobs/{array_id}_7").json()
    assert task["array_task_id"] == 7 and task["job_id"] == int(response.json()["array_task_ids"][1])
    assert api.http.get(f"/jobs/query/{array_id}_5").json()["detail"]["array_task_id"] == 5
    assert api.http.get(f"/jobs/{array_id}_6").status_code == 404
    assert api.http.post(f"/jobs/{array_id}_7/release").status_code == 200
    api.wait_state(task["job_id"], "COMPLETED")
    assert api.job(array_id)["state"] == "PENDING"
    api.http.post(f"/jobs/cancel/{array_id}_*")


# ------------------------------------------------------------ dependencies
def submit(api: Api, tmp_path: Path, script: str, **job: Any) -> int:
    return api.submit(script, current_working_directory=str(tmp_path), **job)


def test_dependency_kinds(api: Api, tmp_path: Path) -> None:
    ok = submit(api, tmp_path, "#!/bin/bash\nsleep 0.5\n")
    bad = submit(api, tmp_path, "#!/bin/bash\nsleep 0.5\nexit 3\n")
    after_ok = submit(api, tmp_path, "#!/bin/bash\ntrue\n", dependency=f"afterok:{ok}")
    never_ok = submit(api, tmp_path, "#!/bin/bash\ntrue\n", dependency=f"afterok:{bad}")
    after_not_ok = submit(api, tmp_path, "#!/bin/bash\ntrue\n", dependency=f"afternotok:{bad}")
    never_not_ok = submit(api, tmp_path, "#!/bin/bash\ntrue\n", dependency=f"afternotok:{ok}")
    after_any = submit(api, tmp_path, "#!/bin/bash\ntrue\n", dependency=f"afterany:{ok}:{bad}")
    either = submit(api, tmp_path, "#!/bin/bash\ntrue\n", dependency=f"afterok:{bad}?afterok:{ok}")
    both = submit(api, tmp_path, "#!/bin/bash\ntrue\n", dependency=f"afterok:{ok},afternotok:{bad}")
    neither = submit(api, tmp_path, "#!/bin/bash\ntrue\n", dependency=f"afterok:{bad}?afternotok:{ok}")
    waiting = api.job(after_ok)
    assert waiting["state"] == "PENDING" and waiting["reason"] == "Dependency"

    api.wait_all([after_ok, after_not_ok, after_any, either, both], {"COMPLETED"}, timeout=20)
    end_ok = ts(api.job(ok)["end_time"])
    delay = ts(api.job(after_ok)["start_time"]) - end_ok
    print(f"\nafterok dependent started {delay * 1000:.1f} ms after its dependency ended")
    assert 0 <= delay < 0.5
    for job_id in (never_ok, never_not_ok, neither):
        job = api.wait_state(job_id, "PENDING")
        deadline = time.monotonic() + 5
        while job["reason"] != "DependencyNeverSatisfied" and time.monotonic() < deadline:
            time.sleep(0.05)
            job = api.job(job_id)
        assert job["reason"] == "DependencyNeverSatisfied", job
    for job_id in (never_ok, never_not_ok, neither):
        api.cancel(job_id)


def test_dependency_after_start(api: Api, tmp_path: Path) -> None:
    first = submit(api, tmp_path, "#!/bin/bash\nsleep 2\n", begin_time="now+1")
    second = submit(api, tmp_path, "#!/bin/bash\ntrue\n", dependency=f"after:{first}")
    assert api.job(second)["reason"] in ("Dependency", "None")
    api.wait_state(second, "COMPLETED", timeout=10)
    started_first = ts(api.job(first)["start_time"])
    started_second = ts(api.job(second)["start_time"])
    assert 0 <= started_second - started_first < 0.5
    assert api.job(first)["state"] == "RUNNING"  # `after` waits for a start, not an end
    api.wait_state(first, "COMPLETED")


def test_dependency_on_a_whole_array_and_on_one_task(api: Api, tmp_path: Path) -> None:
    response = api.http.post(
        "/jobs/submit",
        json={"job": {"array": "0-2", "current_working_directory": str(tmp_path)}, "script": "#!/bin/bash\nsleep 0.$SLURM_ARRAY_TASK_ID\n"},
    )
    array_id = int(response.json()["job_id"])
    on_array = submit(api, tmp_path, "#!/bin/bash\ntrue\n", dependency=f"afterok:{array_id}")
    on_task = submit(api, tmp_path, "#!/bin/bash\ntrue\n", dependency=f"afterok:{array_id}_0")
    api.wait_all([on_array, on_task], {"COMPLETED"})
    last_end = max(ts(t["end_time"]) for t in tasks_of(api, array_id))
    assert ts(api.job(on_array)["start_time"]) >= last_end
    task0_end = ts(tasks_of(api, array_id)[0]["end_time"])
    assert ts(api.job(on_task)["start_time"]) >= task0_end


def test_aftercorr_pairs_array_tasks(api: Api, tmp_path: Path) -> None:
    """Task N of the second array waits for task N of the first, and only for it: task 1 of
    the first fails, so task 1 of the second never starts, while the others run."""
    first = api.http.post(
        "/jobs/submit",
        json={"job": {"array": "0-2", "current_working_directory": str(tmp_path)},
              "script": "#!/bin/bash\nsleep 0.$((3 - SLURM_ARRAY_TASK_ID))\n[ $SLURM_ARRAY_TASK_ID != 1 ]\n"},
    ).json()
    array_id = int(first["job_id"])
    second = api.http.post(
        "/jobs/submit",
        json={"job": {"array": "0-2", "dependency": f"aftercorr:{array_id}",
                      "current_working_directory": str(tmp_path)}, "script": "#!/bin/bash\ntrue\n"},
    ).json()
    then = [int(i) for i in second["array_task_ids"]]
    api.wait_all([then[0], then[2]], {"COMPLETED"}, timeout=20)
    tasks = tasks_of(api, array_id)
    for index in (0, 2):
        assert ts(api.job(then[index])["start_time"]) >= ts(tasks[index]["end_time"])
    # Task 0 of the first array ends last: task 2 of the second started before it, which
    # afterok on the whole array would not have let it.
    assert ts(api.job(then[2])["start_time"]) < ts(tasks[0]["end_time"])
    deadline = time.monotonic() + 5
    job = api.job(then[1])
    while job["reason"] != "DependencyNeverSatisfied" and time.monotonic() < deadline:
        time.sleep(0.05)
        job = api.job(then[1])
    assert job["state"] == "PENDING" and job["reason"] == "DependencyNeverSatisfied", job
    told = api.http.get(f"/jobs/{then[1]}/explain").json()["lines"]
    assert f"  aftercorr:{array_id} - its task {array_id}_1 is FAILED." in told, told
    api.cancel(then[1])


def test_views_show_each_condition_as_slurmctld_does(server: ConductorProcess, api: Api, tmp_path: Path) -> None:
    """squeue %E, scontrol's Dependency= and slurmrestd's dependency: the conditions not
    fulfilled yet, (unfulfilled) or (failed); a fulfilled one drops out; (null) once satisfied."""
    blocker = submit(api, tmp_path, "#!/bin/bash\nsleep 300\n")
    failed = submit(api, tmp_path, "#!/bin/bash\nexit 2\n")
    api.wait_state(failed, "FAILED")
    array = int(api.http.post("/jobs/submit", json={
        "job": {"array": "0-1", "hold": True, "current_working_directory": str(tmp_path)}, "script": "#!/bin/bash\ntrue\n",
    }).json()["job_id"])
    both = submit(api, tmp_path, "#!/bin/bash\ntrue\n", dependency=f"afterok:{blocker}:{array},afterany:{failed}")
    never = submit(api, tmp_path, "#!/bin/bash\ntrue\n", dependency=f"afterok:{failed}")
    env = clean_env(CONDUCTOR_URL=server.url, CONDUCTOR_TOKEN=server.token)

    def run(*args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "conductor", *args], cwd=tmp_path, env=env,
                              capture_output=True, text=True, check=False, timeout=60)
        assert done.returncode == 0, done.stderr
        return done.stdout

    try:
        squeue = run("squeue", "-h", "-o", "%i %E", "-j", f"{both},{never},{blocker}").splitlines()
        assert sorted(squeue) == sorted([
            f"{blocker} (null)",
            f"{both} afterok:{blocker}(unfulfilled),afterok:{array}_*(unfulfilled)",
            f"{never} afterok:{failed}(failed)",
        ]), squeue
        shown = run("scontrol", "show", "job", str(both))
        assert f" Dependency=afterok:{blocker}(unfulfilled),afterok:{array}_*(unfulfilled)\n" in shown, shown
        rest = api.http.get(f"/slurm/v0.0.40/job/{never}").json()["jobs"][0]
        assert rest["dependency"] == f"afterok:{failed}(failed)"
        assert run("squeue", "-h", "-O", "JobID:8,Dependency:60", "-j", str(never)).split()[1] == f"afterok:{failed}(failed)"
        # The blocker is cancelled: its afterok can never be met.
        api.cancel(blocker)
        api.wait_state(blocker, "CANCELLED")
        assert run("squeue", "-h", "-o", "%E", "-j", str(both)).strip() == (
            f"afterok:{blocker}(failed),afterok:{array}_*(unfulfilled)"
        )
        for bad in ("x", "0", "1 2", "", "-3", "9" * 5000, str(2**63), ",".join(str(i) for i in range(1, 1003))):
            refused = api.http.get("/jobs/dependencies", params={"job_id": bad})
            assert refused.status_code in (400, 422) and "job_id" in refused.text, refused.text
        found = api.http.get("/jobs/dependencies", params={"job_id": f"{never},{blocker},999999999"}).json()
        assert found == {"dependencies": {str(never): f"afterok:{failed}(failed)", str(blocker): None}}
    finally:
        for job_id in (both, never):
            api.cancel(job_id)
        api.http.post(f"/jobs/cancel/{array}_*")


def test_dependency_on_a_job_that_does_not_exist_is_refused(api: Api, tmp_path: Path) -> None:
    for dependency in ("afterok:999999", "afterany:1:999999", "after:999999_3"):
        response = api.http.post(
            "/jobs/submit",
            json={"job": {"dependency": dependency, "current_working_directory": str(tmp_path)}, "script": "#!/bin/bash\ntrue\n"},
        )
        assert response.status_code == 400, response.text
        assert "Job dependency problem" in response.json()["detail"]
        assert response.json()["detail"].startswith("dependency:")


def test_singleton(api: Api, tmp_path: Path) -> None:
    name = f"single-{time.time_ns()}"
    ids = [submit(api, tmp_path, "#!/bin/bash\nsleep 0.4\n", name=name, dependency="singleton") for _ in range(3)]
    most = 0
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        # One request, one snapshot: three reads could see a job before its end and the next
        # after its start, milliseconds apart, as running together.
        listed = api.http.get("/jobs", params={"job_id": ",".join(map(str, ids))})
        assert listed.status_code == 200, listed.text
        jobs = listed.json()["jobs"]
        assert len(jobs) == 3
        most = max(most, sum(j["state"] == "RUNNING" for j in jobs))
        if all(j["state"] == "COMPLETED" for j in jobs):
            break
        time.sleep(0.03)
    jobs = [api.job(i) for i in ids]
    assert all(j["state"] == "COMPLETED" for j in jobs)
    assert most == 1
    starts = [ts(j["start_time"]) for j in jobs]
    assert starts == sorted(starts), "singleton jobs ran out of submission order"
    for earlier, later in zip(jobs, jobs[1:], strict=False):
        assert ts(later["start_time"]) >= ts(earlier["end_time"])


# ------------------------------------------------- hold, begin, requeue...
def test_hold_and_release(api: Api, tmp_path: Path) -> None:
    held = submit(api, tmp_path, "#!/bin/bash\nsleep 0.3\n", hold=True)
    job = api.job(held)
    assert job["state"] == "PENDING" and job["reason"] == "JobHeldUser" and job["hold"] is True
    assert api.http.post(f"/jobs/{held}/hold").status_code == 200  # holding a held job: no error
    released = api.http.post(f"/jobs/{held}/release")
    assert released.status_code == 200, released.text
    assert released.json()["job_ids"] == [held]
    api.wait_state(held, "RUNNING")
    conflict = api.http.post(f"/jobs/{held}/hold")
    assert conflict.status_code == 409 and "RUNNING" in conflict.json()["detail"]
    api.wait_state(held, "COMPLETED")
    again = api.http.post(f"/jobs/{held}/release")
    assert again.status_code == 409 and "finished" in again.json()["detail"]
    pending = submit(api, tmp_path, "#!/bin/bash\ntrue\n", hold=True)
    assert api.http.post(f"/jobs/{pending}/release").status_code == 200
    api.wait_state(pending, "COMPLETED")
    later = submit(api, tmp_path, "#!/bin/bash\ntrue\n", begin_time="now+60")
    hold = api.http.post(f"/jobs/{later}/hold")
    assert hold.status_code == 200 and api.job(later)["reason"] == "JobHeldUser"
    not_held = submit(api, tmp_path, "#!/bin/bash\ntrue\n", begin_time="now+60")
    refused = api.http.post(f"/jobs/{not_held}/release")
    assert refused.status_code == 409 and "not held" in refused.json()["detail"]
    assert api.http.post("/jobs/999999/hold").status_code == 404
    for job_id in (later, not_held):
        api.cancel(job_id)


def test_begin_time(api: Api, tmp_path: Path) -> None:
    submitted = time.time()
    job_id = submit(api, tmp_path, "#!/bin/bash\ntrue\n", begin_time="now+2")
    deadline = time.monotonic() + 2
    job = api.job(job_id)
    while job["reason"] != "BeginTime" and time.monotonic() < deadline:
        time.sleep(0.02)
        job = api.job(job_id)
    assert job["state"] == "PENDING" and job["reason"] == "BeginTime"
    job = api.wait_state(job_id, "COMPLETED", timeout=10)
    begin = ts(job["begin_time"])
    assert begin >= submitted + 1.9
    print(f"\n--begin job started {(ts(job['start_time']) - begin) * 1000:.1f} ms after its begin time")
    assert 0 <= ts(job["start_time"]) - begin < 0.5


def test_explain_gives_no_start_before_what_the_job_waits_for(api: Api, tmp_path: Path) -> None:
    """Explain plans a waiting job as if its wait were over (to say what it would then face);
    its expected start is still not before its --begin time, and none for a held job."""
    later = submit(api, tmp_path, "#!/bin/bash\ntrue\n", begin_time="now+3600")
    held = submit(api, tmp_path, "#!/bin/bash\ntrue\n", hold=True)
    try:
        explained = api.http.get(f"/jobs/{later}/explain").json()
        begin = ts(api.job(later)["begin_time"])
        assert explained["expected_start_time"] is not None and ts(explained["expected_start_time"]) >= begin
        assert api.http.get(f"/jobs/{held}/explain").json()["expected_start_time"] is None
    finally:
        api.cancel(later)
        api.cancel(held)


def test_requeue_running_and_finished_job(api: Api, tmp_path: Path) -> None:
    log = tmp_path / "runs.txt"
    script = f"#!/bin/bash\necho run $SLURM_RESTART_COUNT >> {log}\nsleep 30\n"
    job_id = submit(api, tmp_path, script)
    api.wait_state(job_id, "RUNNING")
    wait_file(log, "run 0")
    assert api.http.post(f"/jobs/{job_id}/requeue").status_code == 200
    content = wait_file(log, "run 1", timeout=15)
    assert content.splitlines() == ["run 0", "run 1"]
    job = api.wait_state(job_id, "RUNNING")
    assert job["restart_count"] == 1
    events = [e["to_state"] for e in api.http.get(f"/jobs/{job_id}/events").json()["events"]]
    assert events.count("PENDING") == 2 and events.count("RUNNING") >= 2
    api.cancel(job_id)
    api.wait_state(job_id, "CANCELLED")
    # A finished job goes back to the queue at once.
    again = api.http.post(f"/jobs/{job_id}/requeue", json={"hold": True})
    assert again.status_code == 200, again.text
    job = api.job(job_id)
    assert job["state"] == "PENDING" and job["reason"] == "JobHeldUser" and job["restart_count"] == 2
    assert job["exit_code"] is None and job["node_list"] is None
    conflict = api.http.post(f"/jobs/{job_id}/requeue")
    assert conflict.status_code == 409 and "PENDING" in conflict.json()["detail"]
    api.http.post(f"/jobs/{job_id}/release")
    wait_file(log, "run 2", timeout=15)
    api.cancel(job_id)
    api.wait_state(job_id, "CANCELLED")


def test_update_pending_and_running_jobs(api: Api, tmp_path: Path) -> None:
    pending = submit(api, tmp_path, "#!/bin/bash\ntrue\n", hold=True, name="before")
    response = api.http.patch(f"/jobs/{pending}", json={"name": "after", "priority": 7, "nice": 3, "time_limit": "1:00:00"})
    assert response.status_code == 200, response.text
    job = api.job(pending)
    assert (job["name"], job["priority"], job["nice"], job["time_limit"]) == ("after", 7, 3, 3600)
    bad = api.http.patch(f"/jobs/{pending}", json={"time_limit": "soon"})
    assert bad.status_code == 400 and bad.json()["detail"].startswith("time_limit:")
    empty = api.http.patch(f"/jobs/{pending}", json={})
    assert empty.status_code == 400
    unknown = api.http.patch(f"/jobs/{pending}", json={"colour": "red"})
    assert unknown.status_code == 422 and "colour" in unknown.json()["detail"]
    api.cancel(pending)
    assert api.http.patch(f"/jobs/{pending}", json={"name": "x"}).status_code == 409

    # A running job's new time limit is enforced by its worker.
    running = submit(api, tmp_path, "#!/bin/bash\nsleep 30\n", time_limit="10:00")
    job = api.wait_state(running, "RUNNING")
    changed = api.http.patch(f"/jobs/{running}", json={"time_limit": "0:03"})
    assert changed.status_code == 200, changed.text
    job = api.wait_state(running, "TIMEOUT", timeout=15)
    ran = ts(job["end_time"]) - ts(job["start_time"])
    assert 3 <= ran < 6, f"ran {ran:.2f}s with a limit lowered to 3s"


def test_signal_is_delivered_and_trapped(api: Api, tmp_path: Path) -> None:
    log = tmp_path / "signals.txt"
    script = (
        "#!/bin/bash\n"
        f"trap 'echo got USR1 >> {log}' USR1\n"
        f"trap 'echo got USR2 >> {log}' USR2\n"
        f"echo ready >> {log}\n"
        "for i in $(seq 1 100); do sleep 0.05; done\n"
    )
    job_id = submit(api, tmp_path, script)
    api.wait_state(job_id, "RUNNING")
    wait_file(log, "ready")
    response = api.http.post(f"/jobs/{job_id}/signal", json={"signal": "USR1"})
    assert response.status_code == 200, response.text
    wait_file(log, "got USR1", timeout=5)
    assert api.http.post(f"/jobs/{job_id}/signal", json={"signal": 12, "batch_only": True}).status_code == 200
    wait_file(log, "got USR2", timeout=5)
    assert api.job(job_id)["state"] == "RUNNING"
    bad = api.http.post(f"/jobs/{job_id}/signal", json={"signal": "NOPE"})
    assert bad.status_code == 400 and bad.json()["detail"].startswith("signal:")
    both = api.http.post(f"/jobs/{job_id}/signal", json={"signal": "USR1", "batch_only": True, "steps_only": True})
    assert both.status_code == 400 and both.json()["field"] == "steps_only"
    # The steps alone: this job has none (no srun), so its shell's trap hears nothing.
    assert api.http.post(f"/jobs/{job_id}/signal", json={"signal": "USR1", "steps_only": True}).status_code == 200
    job = api.wait_state(job_id, "COMPLETED", timeout=15)
    assert job["exit_code"] == "0:0"
    assert log.read_text().count("got USR1") == 1
    ended = api.http.post(f"/jobs/{job_id}/signal", json={"signal": "USR1"})
    assert ended.status_code == 409
    pending = submit(api, tmp_path, "#!/bin/bash\ntrue\n", hold=True)
    assert api.http.post(f"/jobs/{pending}/signal", json={"signal": "USR1"}).status_code == 409
    killed = api.http.post(f"/jobs/{pending}/signal", json={"signal": "KILL"})
    assert killed.status_code == 200 and api.job(pending)["state"] == "CANCELLED"


def test_signal_before_the_time_limit(api: Api, tmp_path: Path) -> None:
    log = tmp_path / "warned.txt"
    script = (
        "#!/bin/bash\n"
        f"trap 'date +%s.%N >> {log}; exit 0' USR1\n"
        "for i in $(seq 1 200); do sleep 0.05; done\n"
    )
    job_id = submit(api, tmp_path, script, time_limit="0:04", signal="B:USR1@2")
    job = api.wait_state(job_id, "COMPLETED", timeout=15)
    warned_at = float(log.read_text().split()[0])
    lead = ts(job["start_time"]) + 4 - warned_at
    assert 1.5 <= lead <= 2.5, f"USR1 came {lead:.2f}s before the limit; 2s was asked"
    assert job["exit_code"] == "0:0"


def test_open_mode_append(api: Api, tmp_path: Path) -> None:
    out = tmp_path / "appended.txt"
    out.write_text("before\n")
    job_id = submit(api, tmp_path, "#!/bin/bash\necho after\n", standard_output=str(out), open_mode="append")
    api.wait_state(job_id, "COMPLETED")
    assert out.read_text() == "before\nafter\n"
    truncated = submit(api, tmp_path, "#!/bin/bash\necho only\n", standard_output=str(out))
    api.wait_state(truncated, "COMPLETED")
    assert out.read_text() == "only\n"


def test_an_array_limit_or_a_dependency_too_large_is_refused(api: Api, tmp_path: Path) -> None:
    # Each was a 500 (an integer no database column holds) or minutes of the server's loop
    # spent expanding task lists; now a 4xx naming the field, and nothing stored.
    before = api.http.get("/jobs/stats").json()["pending_jobs"]
    held = submit(api, tmp_path, "#!/bin/bash\ntrue\n", hold=True)
    script = "#!/bin/bash\ntrue\n"
    cases = [
        ("/jobs/submit", {"array": "0-1%9223372036854775808"}, "array: ", "%N must be at most 2147483647"),
        ("/jobs/submit?x=1", {"array": "0-1%2147483648"}, "", "%N must be at most 2147483647"),
        ("/jobs/submit", {"dependency": f"afterok:{held}_[0-99999]"}, "dependency: ", "maximum of 1000 tasks"),
        (
            "/jobs/submit",
            {"dependency": "afterok:" + ":".join(f"{held}_[{k}000-{k}999]" for k in range(1, 100))},
            "dependency: ",
            "names more than 1000 jobs and array tasks",
        ),
    ]
    for path, fields, prefix, rule in cases:
        job = {"current_working_directory": str(tmp_path), **fields}
        response = api.http.post(path, json={"job": job, "script": script})
        assert response.status_code in (400, 422), response.text
        assert rule in response.text, response.text
        if prefix:
            assert response.json()["detail"].startswith(prefix), response.text
    assert api.http.get("/health").status_code == 200
    assert api.http.get("/jobs/stats").json()["pending_jobs"] == before + 1  # the held job alone
