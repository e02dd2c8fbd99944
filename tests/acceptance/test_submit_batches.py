"""Submissions that reach `conductor up` together (SQLite) are stored in one transaction
(api/fastpath.py, JobService.submit_many): each client still gets its own answer, a refused
one among them is refused alone, and every accepted job runs."""

from __future__ import annotations

import getpass
import threading
from collections.abc import Callable
from pathlib import Path

import httpx
from support import TOKENS, Api, ConductorProcess


def test_a_burst_from_many_clients_gets_each_its_answer(start_conductor: Callable[..., ConductorProcess], tmp_path: Path) -> None:
    server = start_conductor("--cpus", "2")
    api = Api(server.url)
    clients, each = 8, 25
    answers: dict[tuple[int, int], httpx.Response] = {}
    start = threading.Barrier(clients)

    def client(number: int) -> None:
        with httpx.Client(base_url=server.url, timeout=60, headers={"Authorization": f"Bearer {TOKENS[server.url]}"}) as http:
            start.wait()
            for i in range(each):
                # Every fifth asks for more CPUs than the node has: refused, alone.
                job = {"current_working_directory": str(tmp_path), "name": f"c{number}-{i}", "cpus_per_task": 64 if i % 5 == 4 else 1}
                answers[number, i] = http.post("/jobs/submit", json={"job": job, "script": f"#!/bin/bash\necho {number}-{i}\n"})

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    accepted: dict[int, tuple[int, int]] = {}
    for (number, i), answer in answers.items():
        if i % 5 == 4:
            assert answer.status_code == 400 and "64 CPUs" in answer.json()["detail"], answer.text
            continue
        assert answer.status_code == 201, answer.text
        accepted[int(answer.json()["job_id"])] = (number, i)
    assert len(accepted) == clients * each * 4 // 5  # every id its own
    for job_id, (number, i) in accepted.items():
        job = api.wait_state(job_id, "COMPLETED", timeout=60)
        assert job["name"] == f"c{number}-{i}"
        assert (tmp_path / f"slurm-{job_id}.out").read_text() == f"{number}-{i}\n"


def test_limits_hold_across_submissions_that_arrive_together(
    start_conductor: Callable[..., ConductorProcess], tmp_path: Path
) -> None:
    # Jobs of one batch are committed together, after every check: each check counts those
    # before it in the batch, or a burst would pass a limit many times over.
    server = start_conductor("--cpus", "2", env={"CONDUCTOR_MAX_PENDING_PER_USER": "5"})
    api = Api(server.url)
    me = getpass.getuser()
    response = api.http.post("/accounting/accounts", json={"accounts": [{"name": "physics"}]})
    assert response.status_code == 201, response.text
    response = api.http.post("/accounting/users", json={"users": [me], "accounts": ["physics"], "default_account": "physics"})
    assert response.status_code == 201, response.text
    response = api.http.patch(f"/accounting/users/{me}", params={"account": "physics"}, json={"max_submit_jobs": 3})
    assert response.status_code == 200, response.text

    def burst(job: dict[str, object]) -> list[httpx.Response]:
        answers: list[httpx.Response] = []
        start = threading.Barrier(8)

        def client() -> None:
            with httpx.Client(base_url=server.url, timeout=60, headers={"Authorization": f"Bearer {TOKENS[server.url]}"}) as http:
                start.wait()
                for _ in range(2):
                    body = {"job": {"current_working_directory": str(tmp_path), "hold": True, **job}, "script": "#!/bin/sh\ntrue\n"}
                    answers.append(http.post("/jobs/submit", json=body))

        threads = [threading.Thread(target=client) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return answers

    # The association's MaxSubmitJobs=3.
    answers = burst({})
    assert sorted(a.status_code for a in answers) == [201] * 3 + [429] * 13, [a.text for a in answers]
    assert api.stats()["pending_jobs"] == 3
    # Without an account (none is enforced), the per-user pending limit of 5: two more.
    api.http.patch(f"/accounting/users/{me}", params={"account": "physics"}, json={"max_submit_jobs": 100})
    answers = burst({})
    assert sorted(a.status_code for a in answers) == [201] * 2 + [429] * 14, [a.text for a in answers]
    assert api.stats()["pending_jobs"] == 5
