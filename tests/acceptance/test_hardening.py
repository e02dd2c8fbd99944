"""Inputs and races found in review: each once gave root, a 500, or a job that ran again."""

from __future__ import annotations

import time
from pathlib import Path

from support import Api


def test_perl_and_loader_variables_reach_only_the_job(api: Api, tmp_path: Path) -> None:
    # Were the job's environment the launcher's, a root process would read these.
    job_id = api.submit(
        "#!/bin/bash\necho \"opt=$PERL5OPT lib=$PERL5LIB\"\n",
        current_working_directory=str(tmp_path),
        environment={"PERL5OPT": "-MNo::Such::Module", "PERL5LIB": str(tmp_path), "LD_PRELOAD": ""},
    )
    job = api.wait_state(job_id, {"COMPLETED", "FAILED"})
    assert job["state"] == "COMPLETED", job
    out = (tmp_path / f"slurm-{job_id}.out").read_text()
    assert out == f"opt=-MNo::Such::Module lib={tmp_path}\n"


def test_unrepresentable_numbers_are_refused(api: Api, tmp_path: Path) -> None:
    for dependency in ("afterany:1+99999999999999999", "afterok:99999999999999999999999"):
        response = api.http.post(
            "/jobs/submit",
            json={"job": {"dependency": dependency, "current_working_directory": str(tmp_path)}, "script": "#!/bin/sh\ntrue"},
        )
        assert response.status_code == 400, response.text
        assert "dependency" in response.json()["detail"]
    assert api.http.get("/jobs/query/\u00b2").status_code == 400
    assert api.http.get("/jobs", params={"job_id": "\u00b2"}).status_code == 400
    job_id = api.submit("#!/bin/bash\nsleep 30\n", current_working_directory=str(tmp_path))
    api.wait_state(job_id, "RUNNING")
    response = api.http.post(f"/jobs/{job_id}/signal", json={"signal": "\u00b2"})
    assert response.status_code == 400, response.text
    response = api.http.patch(f"/jobs/{job_id}", json={"comment": "a\u0000b"})
    assert response.status_code == 422, response.text
    api.cancel(job_id)
    # Scheduling goes on for everyone.
    other = api.submit("#!/bin/bash\ntrue\n", current_working_directory=str(tmp_path))
    assert api.wait_state(other, "COMPLETED")["exit_code"] == "0:0"


def test_cancel_during_requeue_ends_the_job(api: Api, tmp_path: Path) -> None:
    # The trap makes the stop take a while: the cancel lands while the requeue is in progress.
    script = "#!/bin/bash\ntrap 'sleep 1; exit 0' TERM\necho ready\nsleep 60 &\nwait\n"
    job_id = api.submit(script, current_working_directory=str(tmp_path))
    api.wait_state(job_id, "RUNNING")
    out = tmp_path / f"slurm-{job_id}.out"
    deadline = time.monotonic() + 10
    while (not out.exists() or "ready" not in out.read_text()) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert api.http.post(f"/jobs/{job_id}/requeue").status_code == 200
    api.cancel(job_id)
    job = api.wait_state(job_id, {"CANCELLED", "PENDING"}, timeout=15)
    assert job["state"] == "CANCELLED", job
    time.sleep(0.5)
    assert api.job(job_id)["state"] == "CANCELLED"
