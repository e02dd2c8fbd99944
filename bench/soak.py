"""Soak, run by hand: `python bench/soak.py [--minutes 30] [--rate 60] [--cpus 32] [--purge-after 10minutes]`.

Steady load on one `conductor up` (SQLite) for a long time: RATE submissions a second through
the REST API, paced, 95% short jobs (`true`) and 5% long ones (sleeping 2 to 10 s), with ended
jobs purged after PURGE_AFTER as a production site would set it. Every minute it prints what
must stay flat: the resident memory and open descriptors of the server process (API,
scheduler and worker in one) and of its job launcher, the database's size (file and WAL),
and submit-to-start latency (p50, p95) of the jobs submitted in that minute. Asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

import httpx
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as common  # bench/run.py: the shared helpers


def _process_figures(proc: psutil.Process | None) -> tuple[float, int]:
    """(RSS in MB, open descriptors) of `proc`; zeros if it is gone."""
    if proc is None:
        return 0.0, 0
    try:
        return proc.memory_info().rss / 1e6, proc.num_fds()
    except psutil.Error:
        return 0.0, 0


def _server_and_launcher(home: Path) -> tuple[psutil.Process | None, psutil.Process | None]:
    server = launcher = None
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = proc.info["cmdline"] or []
        if "conductor" in cmdline and "up" in cmdline and "-m" in cmdline:
            if proc.environ().get("CONDUCTOR_HOME") == str(home):
                server = proc
        elif any(arg.endswith("launcher.py") for arg in cmdline) and str(home / "run") in cmdline:
            launcher = proc
    return server, launcher


def _latencies(http: httpx.Client, ids: list[int]) -> list[float]:
    """Submit-to-start seconds of those of `ids` that have started."""
    found = []
    for job_id in ids:
        job = http.get(f"/jobs/{job_id}").json()
        start, submit = job.get("start_time"), job.get("submit_time")
        if start and submit:
            found.append((datetime.fromisoformat(start) - datetime.fromisoformat(submit)).total_seconds())
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--rate", type=float, default=60, help="submissions per second")
    parser.add_argument("--cpus", type=int, default=32, help="CPUs the node declares")
    parser.add_argument("--purge-after", default="10minutes", help="CONDUCTOR_PURGE_JOB_AFTER")
    args = parser.parse_args()
    print(
        f"soak: {args.minutes:g} min at {args.rate:g} jobs/s on {args.cpus} declared CPUs "
        f"({os.cpu_count()} real), purge after {args.purge_after}; Python {sys.version.split()[0]}"
    )
    env = {"CONDUCTOR_PURGE_JOB_AFTER": args.purge_after, "CONDUCTOR_PURGE_INTERVAL": "30"}
    with common.conductor(cpus=args.cpus, extra_env=env) as (url, home, headers):
        work = home / "work"
        work.mkdir()
        http = common.client(url, headers)
        job = {"current_working_directory": str(work), "standard_output": "/dev/null"}
        short = json.dumps({"job": job, "script": "#!/bin/bash\ntrue\n"}).encode()
        rng = random.Random(1)
        submitted: list[tuple[float, int]] = []
        failures = 0
        lock = threading.Lock()
        stop = threading.Event()

        def load() -> None:
            nonlocal failures
            raw = common.RawHttp(url, headers)
            requests = {
                "short": raw.encode("POST", "/jobs/submit", short),
                **{
                    f"long{s}": raw.encode(
                        "POST", "/jobs/submit", json.dumps({"job": job, "script": f"#!/bin/bash\nsleep {s}\n"}).encode()
                    )
                    for s in range(2, 11)
                },
            }
            began = time.monotonic()
            n = 0
            while not stop.is_set():
                n += 1
                due = began + n / args.rate
                pause = due - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
                kind = "short" if rng.random() < 0.95 else f"long{rng.randint(2, 10)}"
                status, body = raw.send(requests[kind])
                with lock:
                    if status == 201:
                        submitted.append((time.monotonic(), int(json.loads(body)["job_id"])))
                    else:
                        failures += 1
            raw.close()

        loader = threading.Thread(target=load, daemon=True)
        loader.start()
        started = time.monotonic()
        server, launcher = _server_and_launcher(home)
        print(
            f"{'min':>4} {'jobs':>7} {'rate/s':>7} {'fail':>4} {'srv MB':>7} {'srv fd':>6} "
            f"{'lnch MB':>7} {'lnch fd':>7} {'db MB':>6} {'wal MB':>6} {'pend':>5} {'run':>4} "
            f"{'p50 ms':>7} {'p95 ms':>7}",
            flush=True,
        )
        minute = 0
        while time.monotonic() - started < args.minutes * 60:
            minute += 1
            time.sleep(max(0.0, started + minute * 60 - time.monotonic()))
            now = time.monotonic()
            with lock:
                recent = [job_id for at, job_id in submitted if now - 60 <= at]
                total = len(submitted)
            if launcher is None or not launcher.is_running():
                server, launcher = _server_and_launcher(home)
            srv_mb, srv_fd = _process_figures(server)
            lnch_mb, lnch_fd = _process_figures(launcher)
            db = home / "conductor.db"
            wal = home / "conductor.db-wal"
            stats = http.get("/jobs/stats").json()
            sample = random.Random(minute).sample(recent, min(100, len(recent)))
            waits = sorted(_latencies(http, sample))
            p50 = statistics.median(waits) * 1000 if waits else float("nan")
            p95 = common.percentile(waits, 95) * 1000 if waits else float("nan")
            print(
                f"{minute:>4} {total:>7} {len(recent) / 60:>7.1f} {failures:>4} {srv_mb:>7.1f} {srv_fd:>6} "
                f"{lnch_mb:>7.1f} {lnch_fd:>7} {db.stat().st_size / 1e6:>6.1f} "
                f"{(wal.stat().st_size if wal.exists() else 0) / 1e6:>6.1f} {stats['pending_jobs']:>5} "
                f"{stats['running_jobs']:>4} {p50:>7.1f} {p95:>7.1f}",
                flush=True,
            )
        stop.set()
        loader.join(10)
        http.close()


if __name__ == "__main__":
    main()
