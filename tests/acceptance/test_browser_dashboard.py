"""The dashboard in a real browser: headless Chromium (Debian's `chromium`) driven by Playwright
through sign-in, the queue, a job page whose output tail grows while the job runs, a cancel, a
refused action on another user's job, the nodes and the offline API docs; every request stays
on our own server. Screenshots land in test-artifacts/browser/ (CONDUCTOR_TEST_ARTIFACTS) for a
person to look at.

Chromium missing is a failure under CI (`.ci/run` installs it) and a skip elsewhere.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support import Api, ConductorProcess
from users import make_token

ARTIFACTS = Path(os.environ.get("CONDUCTOR_TEST_ARTIFACTS", Path(__file__).resolve().parents[2] / "test-artifacts"))
TICKER = "#!/bin/bash\nfor i in $(seq 1 120); do echo \"tick $i\"; sleep 0.25; done\n"
SLEEPER = "#!/bin/bash\nsleep 120\n"


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        message = "headless Chromium is needed for the browser tests (apt-get install chromium)"
        if os.environ.get("CI", "").lower() in ("true", "1", "yes"):
            pytest.fail(message + ": CI must have it")
        pytest.skip(message)
    return found


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    executable = _chromium()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:  # pragma: no cover - a declared test dependency
        pytest.fail("playwright is a test dependency (pip install -e '.[test]')")
    with sync_playwright() as playwright:
        args = ["--no-sandbox"] if os.geteuid() == 0 else []  # Chromium's sandbox refuses root
        launched = playwright.chromium.launch(executable_path=executable, headless=True, args=args)
        yield launched
        launched.close()


@pytest.fixture
def shots(request: pytest.FixtureRequest) -> Callable[[object, str], None]:
    folder = ARTIFACTS / "browser"
    folder.mkdir(parents=True, exist_ok=True)

    def shot(page: object, name: str) -> None:
        page.screenshot(path=str(folder / f"{name}.png"), full_page=True)  # type: ignore[attr-defined]

    return shot


def _sign_in(browser: object, server: ConductorProcess, token: str, foreign: list[str]) -> object:
    context = browser.new_context(viewport={"width": 1280, "height": 860})  # type: ignore[attr-defined]
    page = context.new_page()
    page.on("request", lambda r: None if r.url.startswith((server.url, "data:", "blob:" + server.url)) else foreign.append(r.url))
    page.goto(server.url + "/ui/queue")
    assert "/ui/login" in page.url
    page.fill("#token", token)
    page.click("button[type=submit]")
    page.wait_for_url(server.url + "/ui/queue")
    return page


def test_dashboard_in_chromium(
    browser: object,
    start_conductor: Callable[..., ConductorProcess],
    shots: Callable[[object, str], None],
    tmp_path: Path,
) -> None:
    from playwright.sync_api import expect

    server = start_conductor("--cpus", "2", env={"CONDUCTOR_SAMPLE_INTERVAL": "1"})
    api = Api(server.url)
    where = {"current_working_directory": str(tmp_path)}
    sweep = api.http.post(
        "/jobs/submit", json={"job": {"name": "sweep", "array": "0-29", "hold": True, **where}, "script": SLEEPER}
    )
    sweep_id = int(sweep.json()["job_id"])
    ticker = api.submit(TICKER, name="ticker", **where)
    foreign: list[str] = []

    # Sign in, and the queue: the held array is one line, as squeue shows it.
    page = _sign_in(browser, server, server.token, foreign)
    api.wait_state(ticker, "RUNNING")
    page.reload()
    expect(page.locator("#signed-in-as")).to_contain_text("(admin)")
    expect(page.locator("#queue")).to_contain_text(f"{sweep_id}_[0-29]")
    expect(page.locator(f"#queue tr[data-job='{ticker}']")).to_contain_text("RUNNING")
    shots(page, "01-queue")

    # The job's page follows its output while it runs.
    page.click(f"#queue tr[data-job='{ticker}'] a")
    expect(page.locator("#tail")).to_contain_text("tick 2", timeout=15_000)
    first = page.locator("#tail").inner_text()
    seen = first.count("tick ")
    # Lines written after the page first showed its tail appear on it (on a busy machine the
    # first read may already be well past tick 2).
    expect(page.locator("#tail")).to_contain_text(f"tick {seen + 2}", timeout=15_000)
    assert len(page.locator("#tail").inner_text()) > len(first)
    shots(page, "02-job-tail")

    # The nodes, with the job running on one of them.
    page.click("nav >> text=Nodes")
    expect(page.locator("#nodes")).to_contain_text("1 / 2")
    expect(page.locator(f"#nodes a[href='/ui/jobs/{ticker}']")).to_be_visible()
    shots(page, "03-nodes")

    # Cancel from the job's page: the job ends CANCELLED and the page says so.
    page.click(f"#nodes a[href='/ui/jobs/{ticker}']")
    page.click("#action-cancel")
    expect(page.locator("#message")).to_contain_text("cancel requested")
    expect(page.locator("#job-state")).to_have_text("CANCELLED", timeout=15_000)
    expect(page.locator("#events")).to_contain_text("CANCELLED", timeout=15_000)  # reloaded once ended
    api.wait_state(ticker, "CANCELLED")
    shots(page, "04-cancelled")
    page.click("nav >> text=Overview")
    expect(page.locator("#cpu-chart svg")).to_be_visible()
    expect(page.locator("#job-chart polyline").first).to_be_attached(timeout=10_000)
    shots(page, "05-overview")

    # Another user: sees the job, gets no buttons, and a forged POST is refused by the rules.
    visitor = _sign_in(browser, server, make_token(server.home, "visitor"), foreign)
    visitor.goto(f"{server.url}/ui/jobs/{sweep_id}")
    expect(visitor.locator("#not-owner")).to_be_visible()
    expect(visitor.locator("#action-cancel")).to_have_count(0)
    expect(visitor.locator("#no-tail")).to_be_visible()
    visitor.evaluate(
        """(jobId) => {
            const form = document.createElement("form");
            form.method = "post";
            form.action = "/ui/jobs/" + jobId + "/cancel";
            const csrf = document.querySelector("input[name=csrf]").cloneNode();
            form.appendChild(csrf);
            document.body.appendChild(form);
            form.submit();
        }""",
        sweep_id,
    )
    expect(visitor.locator("#error")).to_contain_text("only its owner or an administrator may cancel it")
    assert api.job(sweep_id)["state"] == "PENDING"
    shots(visitor, "06-refused")

    # The API's docs, offline: Swagger UI and ReDoc render from our own assets.
    page.goto(server.url + "/docs")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("SCNS-Conductor", timeout=15_000)
    shots(page, "07-docs")
    page.goto(server.url + "/redoc")
    expect(page.locator("h1").first).to_contain_text("SCNS-Conductor", timeout=15_000)
    shots(page, "08-redoc")

    assert foreign == [], f"requests left our server: {foreign[:5]}"
    api.http.post(f"/jobs/cancel/{sweep_id}_*")
    api.close()
