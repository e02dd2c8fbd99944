"""Backup while jobs run, restore from it, and an upgrade in place from the previous release.

The previous release is built from the repository's own history (PREVIOUS_RELEASE below): its
`src/` is exported with `git archive` and run with this suite's interpreter. A checkout without
that history fails here, saying so: the test is not skipped.
"""

from __future__ import annotations

import sqlite3
import subprocess
import tarfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from support import Api, ConductorProcess

# The last release before purge and archive (schema revision 0003): its database, its worker's
# status files and its launcher must all carry over.
PREVIOUS_RELEASE = "ef14b5b"
PREVIOUS_SCHEMA = "0003"
REPOSITORY = Path(__file__).resolve().parents[2]
WAIT_FOR_GO = "end=$((SECONDS + 60)); while [ ! -e go ] && [ $SECONDS -lt $end ]; do sleep 0.05; done\n"
ENDED = {"COMPLETED", "FAILED", "NODE_FAIL", "CANCELLED", "TIMEOUT"}


def _schema(database: Path) -> str:
    with sqlite3.connect(database) as db:
        return str(db.execute("SELECT version_num FROM alembic_version").fetchone()[0])


def test_backup_while_jobs_run_then_restore(start_conductor: Callable[..., ConductorProcess], tmp_path: Path) -> None:
    server = start_conductor("--cpus", "2", home=tmp_path / "h")
    api = Api(server.url)
    done = [api.submit("#!/bin/bash\necho done\n", current_working_directory=str(tmp_path)) for _ in range(5)]
    for job_id in done:
        api.wait_state(job_id, "COMPLETED")
    held = api.submit("#!/bin/bash\necho restored\n", current_working_directory=str(tmp_path), hold=True, name="held")
    running = api.submit("#!/bin/bash\n" + WAIT_FOR_GO, current_working_directory=str(tmp_path))
    api.wait_state(running, "RUNNING")
    # Submissions go on while the copy is taken: neither waits for the other.
    stop = threading.Event()
    submitted: list[int] = []

    def submit_steadily() -> None:
        client = Api(server.url)
        while not stop.is_set():
            submitted.append(client.submit("#!/bin/bash\ntrue\n", current_working_directory=str(tmp_path), hold=True))
        client.close()

    submitter = threading.Thread(target=submit_steadily)
    submitter.start()
    copy = tmp_path / "backup.db"
    try:
        time.sleep(0.3)
        made = server.run("backup", str(copy))
        during = len(submitted)
        time.sleep(0.3)
    finally:
        stop.set()
        submitter.join()
    assert made.returncode == 0, made.stderr
    assert made.stdout.startswith("backup of ") and str(copy) in made.stdout
    assert len(submitted) > during > 0  # submissions were served before, while and after it ran
    assert copy.stat().st_mode & 0o777 == 0o600
    with sqlite3.connect(copy) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        in_copy = {row[0] for row in db.execute("SELECT id FROM jobs")}
    assert {*done, held, running} <= in_copy
    again = server.run("backup", str(copy))
    assert again.returncode == 1
    assert again.stderr == f"conductor: error: backup: {copy} exists; give another path, or --force to replace it\n"
    (tmp_path / "go").touch()
    api.wait_state(running, "COMPLETED")
    api.close()
    server.stop()

    # Restore: a server on the copy has every job the copy had, and runs what was pending.
    restored = start_conductor("--cpus", "2", home=tmp_path / "r", env={"CONDUCTOR_DATABASE_URL": str(copy)})
    back = Api(restored.url)
    for job_id in done:
        job = back.job(job_id)
        assert job["state"] == "COMPLETED" and job["exit_code"] == "0:0", job
    assert back.job(held)["state"] == "PENDING"
    back.http.post(f"/jobs/{held}/release").raise_for_status()
    assert back.wait_state(held, ENDED, timeout=20)["exit_code"] == "0:0"
    # The job running when the copy was taken is, in the copy, running on a node whose
    # processes this server never had: it is recorded as lost, never run a second time.
    assert back.wait_state(running, ENDED, timeout=30)["state"] == "NODE_FAIL"
    back.close()


def _previous_release(tmp_path: Path) -> Path:
    """The previous release's source tree, from the repository's history."""
    found = subprocess.run(["git", "-C", str(REPOSITORY), "cat-file", "-e", f"{PREVIOUS_RELEASE}^{{commit}}"], capture_output=True)
    if found.returncode != 0:
        pytest.fail(f"the upgrade test needs commit {PREVIOUS_RELEASE} in the repository's history (a clone without --depth)")
    archive = tmp_path / "previous.tar"
    subprocess.run(["git", "-C", str(REPOSITORY), "archive", "-o", str(archive), PREVIOUS_RELEASE, "src"], check=True)
    tree = tmp_path / "previous"
    with tarfile.open(archive) as tar:
        tar.extractall(tree, filter="data")
    return tree / "src"


def test_upgrade_in_place_from_the_previous_release_with_jobs_running(
    start_conductor: Callable[..., ConductorProcess], tmp_path: Path
) -> None:
    home, work = tmp_path / "h", tmp_path / "w"
    work.mkdir()
    old = start_conductor("--cpus", "4", home=home, env={"PYTHONPATH": str(_previous_release(tmp_path))})
    api = Api(old.url)
    finished = api.submit("#!/bin/bash\necho before\n", current_working_directory=str(work))
    api.wait_state(finished, "COMPLETED")
    running = [api.submit("#!/bin/bash\n" + WAIT_FOR_GO + "echo ran\n", current_working_directory=str(work)) for _ in range(2)]
    for job_id in running:
        api.wait_state(job_id, "RUNNING")
    held = [api.submit("#!/bin/bash\necho later\n", current_working_directory=str(work), hold=True) for _ in range(2)]
    answer = api.http.post(
        "/jobs/submit",
        json={"job": {"current_working_directory": str(work), "hold": True, "array": "1-3"}, "script": "#!/bin/bash\ntrue\n"},
    ).json()
    tasks = [int(task) for task in answer["array_task_ids"]]
    api.close()
    # The previous release ran: it left the schema it knew.
    assert _schema(home / "conductor.db") == PREVIOUS_SCHEMA

    # The upgrade: stop the old server (its jobs run on under their launcher), start the new
    # code on the same home: it migrates the database in place and adopts the running jobs.
    assert old.stop() is not None
    new = start_conductor("--cpus", "4", home=home)
    assert _schema(home / "conductor.db") != PREVIOUS_SCHEMA
    api = Api(new.url)
    for job_id in running:
        assert api.job(job_id)["state"] == "RUNNING"
    for job_id in held:
        api.http.post(f"/jobs/{job_id}/release").raise_for_status()
    api.http.post(f"/jobs/{tasks[0]}_*/release").raise_for_status()
    (work / "go").touch()
    ended = [api.wait_state(job_id, ENDED, timeout=30) for job_id in [*running, *held, *tasks]]
    assert [(job["state"], job["exit_code"]) for job in ended] == [("COMPLETED", "0:0")] * 7, ended
    for job_id in running:
        assert (work / f"slurm-{job_id}.out").read_text() == "ran\n"  # ran once, to its end
    assert api.job(finished)["state"] == "COMPLETED"
    assert api.stats()["used_cpus"] == 0
    api.close()
