"""What the dashboard's pages and a /metrics scrape cost with many jobs stored, run by hand:
`python bench/dashboard.py [--live N] [--ended N]`.

Starts `conductor up` in a temporary home, submits one held array of `--ended` tasks (100,000
by default) and cancels it whole (history), then one held array of `--live` tasks (100,000:
the pending backlog), signs in to the dashboard, and times each page (median of 5 requests,
milliseconds, as the client sees it). Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def held_array(api: httpx.Client, tasks: int, name: str, work_dir: str) -> int:
    body = {
        "job": {"name": name, "array": f"0-{tasks - 1}", "hold": True, "current_working_directory": work_dir},
        "script": "#!/bin/bash\ntrue\n",
    }
    response = api.post("/jobs/submit", json=body, timeout=600)
    response.raise_for_status()
    return int(response.json()["job_id"])


def settle(pid: int, timeout: float = 300.0) -> float:
    """Wait until the server is idle (under 5% of a CPU over a second): the transition log of
    the jobs just stored is written first. The seconds waited."""
    tick = os.sysconf("SC_CLK_TCK")

    def cpu() -> float:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / tick

    started = time.monotonic()
    while time.monotonic() - started < timeout:
        before = cpu()
        time.sleep(1.0)
        if cpu() - before < 0.05:
            break
    return time.monotonic() - started


def median_ms(client: httpx.Client, path: str, runs: int = 5) -> tuple[float, int]:
    times = []
    size = 0
    for _ in range(runs):
        started = time.perf_counter()
        response = client.get(path, timeout=120)
        times.append((time.perf_counter() - started) * 1000)
        response.raise_for_status()
        size = len(response.content)
    return statistics.median(times), size


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--live", type=int, default=100_000)
    parser.add_argument("--ended", type=int, default=100_000)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="conductor-dash-bench-"))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONDUCTOR_")}
    env.update(CONDUCTOR_HOME=str(home), CONDUCTOR_MAX_PENDING_PER_USER="1000000")
    log = open(home / "server.log", "wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "conductor", "up", "--cpus", "4", "--port", str(port)], env=env, stdout=log, stderr=log
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        token = (home / "token").read_text().strip()
        api = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"})
        started = time.perf_counter()
        if args.ended:
            old = held_array(api, args.ended, "history", str(home))
            api.post(f"/jobs/cancel/{old}_*", timeout=600).raise_for_status()
        live = held_array(api, args.live, "backlog", str(home)) if args.live else 0
        print(f"stored {args.ended} ended and {args.live} pending jobs in {time.perf_counter() - started:.1f}s")
        print(f"server idle after {settle(server.pid):.0f}s more (logging the transitions)")
        browser = httpx.Client(base_url=url)
        assert browser.post("/ui/login", data={"token": token}).status_code == 303
        middle = live + args.live // 2
        pages = [
            "/",
            "/ui/queue",
            f"/ui/queue?state=PENDING&after={middle}",
            "/ui/queue?state=all",
            "/ui/queue?state=CANCELLED&user=root",
            "/ui/queue?partition=debug&state=live",
            "/ui/queue?user=nobody",
            "/ui/nodes",
            f"/ui/jobs/{middle}",
        ]
        print(f"{'page':45} {'median ms':>10} {'bytes':>9}")
        for page in pages:
            ms, size = median_ms(browser, page)
            print(f"{page:45} {ms:10.1f} {size:9d}")
        ms, size = median_ms(api, "/metrics")
        print(f"{'/metrics (token)':45} {ms:10.1f} {size:9d}")
    finally:
        server.terminate()
        server.wait(30)
        log.close()
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
