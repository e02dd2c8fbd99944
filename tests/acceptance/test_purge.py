"""The purge of old jobs in a running `conductor up`: ended jobs leave the database, the
archive keeps them for `sacct --archived`, and the database stays bounded under steady load."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from support import Api, ConductorProcess, clean_env, free_port

PURGE = {"CONDUCTOR_PURGE_JOB_AFTER": "1second", "CONDUCTOR_PURGE_INTERVAL": "0.2"}


def wait_for(check: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def test_ended_jobs_move_to_the_archive_and_sacct_finds_them(
    start_conductor: Callable[..., ConductorProcess], tmp_path: Path
) -> None:
    archive = tmp_path / "archive"
    server = start_conductor("--cpus", "4", env={**PURGE, "CONDUCTOR_ARCHIVE_DIR": str(archive)})
    api = Api(server.url)
    work = tmp_path / "work"
    work.mkdir()
    try:
        ended = [api.submit("#!/bin/bash\necho $SLURM_JOB_ID\n", current_working_directory=str(work)) for _ in range(3)]
        long = api.submit("#!/bin/bash\nsleep 60\n", current_working_directory=str(work))
        api.wait_all(ended)
        api.wait_state(long, "RUNNING")

        def live_ids() -> set[int]:
            return {j["job_id"] for j in api.jobs()}

        wait_for(lambda: not set(ended) & live_ids(), "the ended jobs to be purged")
        assert long in live_ids()  # a running job is never purged
        archived = {j["job_id"]: j for j in api.jobs(archived="true")}
        assert set(ended) <= set(archived) and long in archived
        assert {archived[i]["state"] for i in ended} == {"COMPLETED"}
        # A selection of fields reads the archive too, each field as the whole record has it.
        selected = api.jobs(archived="true", fields="state,standard_output,usage")
        assert selected == [
            {k: archived[j["job_id"]][k] for k in ("job_id", "state", "standard_output", "usage")} for j in selected
        ]
        assert set(ended) <= {j["job_id"] for j in selected}
        assert list(archive.glob("jobs-*.jsonl.gz"))
        assert "purged 3 job(s)" in server.log() or "purged 1 job(s)" in server.log()

        env = clean_env(CONDUCTOR_URL=server.url, CONDUCTOR_HOME=str(server.home))

        def sacct(*args: str) -> str:
            result = subprocess.run(
                [sys.executable, "-m", "conductor", "sacct", *args], capture_output=True, text=True, env=env, timeout=60
            )
            assert result.returncode == 0, result.stderr
            return result.stdout

        assert sacct("-j", str(ended[0]), "-X", "-n", "-P", "-o", "JobID,State") == ""
        assert sacct("-j", str(ended[0]), "--archived", "-X", "-n", "-P", "-o", "JobID,State,ExitCode") == (
            f"{ended[0]}|COMPLETED|0:0\n"
        )
        api.cancel(long)
    finally:
        api.close()


def test_asking_for_the_archive_of_a_server_that_keeps_none(api: Api) -> None:
    response = api.http.get("/jobs", params={"archived": "true"})
    assert response.status_code == 400, response.text
    assert "archived" in response.text and "CONDUCTOR_ARCHIVE_DIR" in response.text


def test_a_bad_retention_is_refused_at_start(tmp_path: Path) -> None:
    env = clean_env(CONDUCTOR_HOME=str(tmp_path / "home"), CONDUCTOR_PURGE_JOB_AFTER="3weeks")
    result = subprocess.run(
        [sys.executable, "-m", "conductor", "up", "--port", str(free_port())],
        capture_output=True, text=True, env=env, timeout=60,
    )
    assert result.returncode != 0
    assert "purge_job_after" in result.stderr and "unknown unit 'weeks'" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_database_stays_bounded_under_steady_load(
    start_conductor: Callable[..., ConductorProcess], tmp_path: Path
) -> None:
    server = start_conductor("--cpus", "8", env=PURGE)
    api = Api(server.url)
    work = tmp_path / "work"
    work.mkdir()
    database = server.home / "conductor.db"

    def size() -> tuple[int, int]:
        wal = database.with_name("conductor.db-wal")
        return database.stat().st_size, wal.stat().st_size if wal.exists() else 0

    sizes: list[tuple[int, int]] = []
    try:
        for _ in range(5):
            # Scripts of some size, as real ones: what purging must give back.
            api.submit("#!/bin/bash\ntrue\n" + "# padding\n" * 200, current_working_directory=str(work),
                       standard_output="/dev/null", array="0-299")
            wait_for(lambda: api.stats()["pending_jobs"] + api.stats()["running_jobs"] == 0, "the array to drain", 120)
            # Every one but the newest, which holds the ids' high mark (store/history.py).
            wait_for(lambda: len(api.jobs()) == 1, "every ended job to be purged")
            sizes.append(size())
    finally:
        api.close()
    # 1,800 jobs went through; what the file holds is what 300 of them needed, reused since.
    print("database and WAL sizes after each round:", sizes)
    files = [s[0] for s in sizes]
    # 1,500 jobs (over 3 MB of scripts) went through: the file holds what about 300 of them
    # needed, its pages reused since.
    assert files[-1] <= files[1] * 1.25, sizes
