"""What one full listing costs the server, run by hand: `python bench/listing.py [--tasks N]`.

Starts `conductor up` in a temporary home, submits one held array of N tasks (100,000 by
default), then measures, on the server process:

  slurmrestd  one `GET /slurm/v0.0.40/jobs`: seconds, bytes, and the server's peak RSS during
              the request (its high-water mark is reset just before)
  jobs        every job through `GET /jobs`: pages of 1,000 following `next_after` when the
              server pages, one `?limit=N` request when it does not (older servers)
  start       submit -> RUNNING of a `true` job submitted while a slurmrestd listing is in
              flight (the scheduler and worker are threads of the same process)

Prints figures; asserts nothing. Run it against another checkout by putting that checkout's
`src` first on PYTHONPATH.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def status(pid: int, field: str) -> int:
    """A /proc/<pid>/status figure in kB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def reset_peak(pid: int) -> None:
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # resets VmHWM to the current RSS


def slurmrestd_listing(url: str, token: str) -> tuple[float, int, int]:
    """(seconds, bytes, jobs) of one streamed read of GET /slurm/v0.0.40/jobs."""
    started = time.perf_counter()
    size = 0
    with httpx.stream("GET", url + "/slurm/v0.0.40/jobs", headers={"X-SLURM-USER-TOKEN": token}, timeout=600) as r:
        r.raise_for_status()
        chunks = []
        for chunk in r.iter_bytes():
            size += len(chunk)
            chunks.append(chunk)
    elapsed = time.perf_counter() - started
    jobs = len(json.loads(b"".join(chunks))["jobs"])
    return elapsed, size, jobs


def all_jobs(http: httpx.Client, tasks: int) -> tuple[float, int, int, str]:
    """(seconds, jobs, requests, how) of reading every job through GET /jobs."""
    started = time.perf_counter()
    first = http.get("/jobs", params={"limit": 1000})
    first.raise_for_status()
    page: dict[str, Any] = first.json()
    if "next_after" not in page:  # a server without paging: the one big request it allows
        response = http.get("/jobs", params={"limit": min(tasks, 100_000)})
        response.raise_for_status()
        return time.perf_counter() - started, len(response.json()["jobs"]), 2, f"limit={min(tasks, 100_000)}"
    count, requests = len(page["jobs"]), 1
    while page["next_after"] is not None:
        page = http.get("/jobs", params={"limit": 1000, "after": page["next_after"]}).json()
        count += len(page["jobs"])
        requests += 1
    return time.perf_counter() - started, count, requests, "pages of 1000"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=100_000)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="conductor-listing-"))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONDUCTOR_")}
    env["CONDUCTOR_HOME"] = str(home)
    env["XDG_CONFIG_HOME"] = str(home / "xdg")  # `up` records itself there, not in the user's profile
    env["CONDUCTOR_MAX_PENDING_PER_USER"] = str(args.tasks + 1000)  # room for the job of `start`
    source = subprocess.run(
        [sys.executable, "-c", "import conductor; print(conductor.__file__)"], env=env, capture_output=True, text=True
    ).stdout.strip()
    print(f"conductor from {source}")
    log = open(home / "conductor.log", "wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "conductor", "up", "--cpus", "2", "--port", str(port), "--log-level", "WARNING"],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )
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
        http = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=600)
        work = home / "work"
        work.mkdir()
        started = time.perf_counter()
        response = http.post(
            "/jobs/submit",
            json={
                "job": {"current_working_directory": str(work), "array": f"1-{args.tasks}", "hold": True},
                "script": "#!/bin/bash\ntrue\n",
            },
        )
        response.raise_for_status()
        print(f"submitted {args.tasks} held tasks in {time.perf_counter() - started:.2f} s")

        time.sleep(1)
        rss = status(server.pid, "VmRSS")
        reset_peak(server.pid)
        elapsed, size, jobs = slurmrestd_listing(url, token)
        peak = status(server.pid, "VmHWM")
        print(
            f"slurmrestd: GET /slurm/v0.0.40/jobs: {jobs} jobs, {size / 1e6:.1f} MB in {elapsed:.2f} s; "
            f"server RSS {rss / 1024:.0f} MB before, peak {peak / 1024:.0f} MB during (+{(peak - rss) / 1024:.0f} MB)"
        )

        rss = status(server.pid, "VmRSS")
        reset_peak(server.pid)
        elapsed, count, requests, how = all_jobs(http, args.tasks)
        peak = status(server.pid, "VmHWM")
        print(
            f"jobs: GET /jobs ({how}): {count} jobs in {requests} requests, {elapsed:.2f} s; "
            f"server peak RSS +{(peak - rss) / 1024:.0f} MB"
        )

        listing = threading.Thread(target=slurmrestd_listing, args=(url, token))
        listing.start()
        time.sleep(1.0)
        started = time.perf_counter()
        job_id = http.post(
            "/jobs/submit", json={"job": {"current_working_directory": str(work)}, "script": "#!/bin/bash\ntrue\n"}
        ).json()["job_id"]
        while http.get(f"/jobs/{job_id}").json()["state"] == "PENDING":
            time.sleep(0.005)
        delay = time.perf_counter() - started
        in_flight = listing.is_alive()
        listing.join()
        print(f"start: a job submitted during a listing started {delay * 1000:.0f} ms later (listing still in flight: {in_flight})")
    finally:
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
