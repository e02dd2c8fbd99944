"""The web dashboard over HTTP: sign-in with a token into an HttpOnly, SameSite=Strict cookie,
CSRF on every action, the queue's server-side filters, paging and collapsed arrays, a job's
page, and actions allowed exactly as the API allows them. (test_browser_dashboard.py drives it in Chromium.)"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from support import Api, ConductorProcess, running_up
from users import make_token

SLEEPER = "#!/bin/bash\nsleep 60\n"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConductorProcess]:
    with running_up(tmp_path_factory.mktemp("dash"), "--cpus", "2") as process:
        yield process


def _browser(server: ConductorProcess, token: str) -> httpx.Client:
    client = httpx.Client(base_url=server.url, timeout=10)
    response = client.post("/ui/login", data={"token": token, "next": "/ui/queue"})
    assert response.status_code == 303 and response.headers["location"] == "/ui/queue"
    return client


def _csrf(page: str) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', page)
    assert found, page
    return found.group(1)


def test_pages_need_a_session_and_the_cookie_is_locked_down(server: ConductorProcess) -> None:
    anonymous = httpx.Client(base_url=server.url, timeout=10)
    for path in ("/", "/ui/queue", "/ui/nodes", "/ui/jobs/1"):
        response = anonymous.get(path)
        assert response.status_code == 303 and response.headers["location"].startswith("/ui/login?next=")
    assert anonymous.get("/ui/jobs/1/output").status_code == 401
    refused = anonymous.post("/ui/login", data={"token": "cond_wrong"})
    assert refused.status_code == 401 and "unknown or has been revoked" in refused.text
    cross_site = anonymous.post("/ui/login", data={"token": server.token}, headers={"Origin": "https://evil.example"})
    assert cross_site.status_code == 403 and "set-cookie" not in cross_site.headers
    signed = anonymous.post("/ui/login", data={"token": server.token, "next": "https://evil.example/"})
    assert signed.headers["location"] == "/"  # never an open redirect
    cookie = signed.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "path=/" in cookie
    # The cookie is no credential for the API: only the dashboard reads it.
    assert anonymous.get("/jobs").status_code == 401
    assert anonymous.get("/ui/queue").status_code == 200
    assert "default-src 'self'" in anonymous.get("/ui/queue").headers["content-security-policy"]


def test_queue_filters_pages_and_collapses_arrays(server: ConductorProcess) -> None:
    api = Api(server.url)
    array = api.http.post(
        "/jobs/submit", json={"job": {"name": "sweep", "array": "0-149", "hold": True}, "script": SLEEPER}
    ).json()
    first = int(array["job_id"])
    marked = api.submit(SLEEPER, name="<script>alert(1)</script>", hold=True)
    client = _browser(server, server.token)
    page = client.get("/ui/queue", params={"state": "PENDING"}).text
    # 150 held tasks: one line per page, as squeue collapses them; the page holds 100 jobs.
    assert f"{first}_[0-99]" in page
    assert "(JobHeldUser)" in page
    following = re.search(r'href="(/ui/queue\?[^"]*after=\d+)" id="next-page"', page)
    assert following, page
    second = client.get(following.group(1).replace("&amp;", "&")).text
    assert f"{first}_[100-149]" in second
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in second and "<script>alert(1)" not in second
    only_other = client.get("/ui/queue", params={"user": "nobody-at-all"}).text
    assert "0 jobs match" in only_other and "No job matches." in only_other
    assert client.get("/ui/queue", params={"state": "SLEEPING"}).status_code == 400
    api.http.post(f"/jobs/cancel/{first}_*")
    api.cancel(marked)


def test_actions_follow_the_api_rules(server: ConductorProcess) -> None:
    api = Api(server.url)
    job = api.submit(SLEEPER, name="held-one", hold=True)
    owner = _browser(server, server.token)
    page = owner.get(f"/ui/jobs/{job}").text
    assert 'id="action-release"' in page and 'id="action-cancel"' in page
    csrf = _csrf(page)
    assert owner.post(f"/ui/jobs/{job}/release", data={"csrf": "0" * 64}).status_code == 403
    assert api.job(job)["hold"] is True
    released = owner.post(f"/ui/jobs/{job}/release", data={"csrf": csrf})
    assert released.status_code == 303 and released.headers["location"] == f"/ui/jobs/{job}"
    assert f"job {job} released" in owner.get(f"/ui/jobs/{job}").text
    assert f"job {job} released" not in owner.get(f"/ui/jobs/{job}").text  # shown once
    api.wait_state(job, "RUNNING")

    other = _browser(server, make_token(server.home, "dashboard-visitor"))
    page = other.get(f"/ui/jobs/{job}").text
    assert 'id="action-cancel"' not in page and 'id="not-owner"' in page and 'id="no-tail"' in page
    assert other.get(f"/ui/jobs/{job}/output").status_code == 403
    refused = other.post(f"/ui/jobs/{job}/cancel", data={"csrf": _csrf(page)}, follow_redirects=True)
    assert "only its owner or an administrator may cancel it" in refused.text
    assert api.job(job)["state"] == "RUNNING"

    cancelled = owner.post(f"/ui/jobs/{job}/cancel", data={"csrf": csrf}, follow_redirects=True)
    assert 'id="message"' in cancelled.text
    api.wait_state(job, "CANCELLED")
    assert "CANCELLED" in owner.get(f"/ui/jobs/{job}").text


def test_job_page_shows_fields_events_usage_and_expected_start(server: ConductorProcess, tmp_path: Path) -> None:
    api = Api(server.url)
    done = api.submit("#!/bin/bash\necho finished\n", name="short", current_working_directory=str(tmp_path))
    api.wait_state(done, "COMPLETED")
    later = api.submit(SLEEPER, name="later", begin_time="now+1hour", current_working_directory=str(tmp_path))
    client = _browser(server, server.token)
    page = client.get(f"/ui/jobs/{done}").text
    assert 'id="usage"' in page and "<th>TotalCPU</th>" in page
    events = page.split('id="events"')[1]
    assert events.index("PENDING") < events.index("RUNNING") < events.index("COMPLETED")
    assert "<th>ExitCode</th><td>0:0</td>" in page
    assert client.get(f"/ui/jobs/{done}/output").json() == {
        "state": "COMPLETED", "live": False, "stdout": "finished\n", "stderr": None
    }
    queue = client.get("/ui/queue", params={"state": "PENDING"}).text
    row = queue.split(f'data-job="{later}"')[1].split("</tr>")[0]
    assert "(BeginTime) starts after" in row
    api.cancel(later)
    # A job waiting for the whole node shows the start the scheduler plans for it, and where.
    blocker = api.submit(SLEEPER, cpus_per_task=2, time_limit="10:00", current_working_directory=str(tmp_path))
    api.wait_state(blocker, "RUNNING")
    waiting = api.submit("#!/bin/bash\ntrue\n", cpus_per_task=2, time_limit="1:00", current_working_directory=str(tmp_path))
    deadline = time.monotonic() + 10
    while True:
        queue = client.get("/ui/queue", params={"state": "PENDING"}).text
        row = queue.split(f'data-job="{waiting}"')[1].split("</tr>")[0]
        if "expected" in row or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert "(Resources) expected 20" in row and " on " in row, row
    assert "<th>ExpectedStart</th><td>20" in client.get(f"/ui/jobs/{waiting}").text
    api.cancel(waiting)
    api.cancel(blocker)


def test_overview_nodes_and_sign_out(server: ConductorProcess) -> None:
    client = _browser(server, server.token)
    overview = client.get("/").text
    assert 'id="cpu-chart"' in overview and "<svg" in overview and 'id="used-cpus"' in overview
    nodes = client.get("/ui/nodes").text
    assert "/ 2</td>" in nodes and 'data-node="' in nodes
    out = client.post("/ui/logout", data={"csrf": _csrf(overview)})
    assert out.status_code == 303
    assert client.get("/ui/queue").status_code == 303


def _samples_shown(server: ConductorProcess) -> int:
    page = _browser(server, server.token).get("/").text
    found = re.search(r"From (\d+) samples", page)
    assert found, page
    return int(found.group(1))


def test_utilisation_samples_survive_a_restart(
    start_conductor: Callable[..., ConductorProcess], tmp_path: Path
) -> None:
    home = tmp_path / "restarted"
    first = start_conductor("--cpus", "2", home=home, env={"CONDUCTOR_SAMPLE_INTERVAL": "1"})
    deadline = time.monotonic() + 20
    while _samples_shown(first) < 3 and time.monotonic() < deadline:
        time.sleep(0.3)
    before = _samples_shown(first)
    assert before >= 3
    first.stop()
    second = start_conductor("--cpus", "2", home=home, port=first.port, env={"CONDUCTOR_SAMPLE_INTERVAL": "3600"})
    assert _samples_shown(second) >= before


def test_odd_forms_are_refused_with_a_4xx_never_a_500(server: ConductorProcess) -> None:
    anonymous = httpx.Client(base_url=server.url, follow_redirects=False)
    many = "&".join(f"f{i}=x" for i in range(25))
    for path in ("/ui/login", "/ui/logout", "/ui/jobs/1/cancel"):
        answer = anonymous.post(path, content=many, headers={"content-type": "application/x-www-form-urlencoded"})
        assert 400 <= answer.status_code < 500, (path, answer.status_code, answer.text)
    client = _browser(server, server.token)
    odd = client.post("/ui/jobs/1/cancel", data={"csrf": "\u00e9\u00e9"})
    assert 400 <= odd.status_code < 500 or odd.status_code == 303, odd.status_code
    assert "Traceback" not in server.log()
