"""`conductor up`: API, scheduler and one worker in one process, on embedded SQLite."""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import sys
import threading
from pathlib import Path

from conductor.commands.common import (
    add_node_arguments,
    add_tls_arguments,
    api_url,
)
from conductor.commands.runtime import (
    add_listen_arguments,
    bind_api,
    load_cluster_config,
    open_store,
    run_command,
    serve_api,
    start_monitor,
    start_purger,
    start_worker,
)
from conductor.settings import Settings

log = logging.getLogger("conductor.up")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="conductor up", description="Run API, scheduler and one worker in one process (embedded SQLite)."
    )
    add_listen_arguments(parser)
    add_node_arguments(parser)
    add_tls_arguments(parser)
    return parser


def main(argv: list[str]) -> int:
    return run_command(build_parser(), argv, run_all_in_one)


def root_jobs_allowed(settings: Settings) -> bool:
    """Root's jobs: as CONDUCTOR_ALLOW_ROOT_JOBS says; unset, allowed when `up` runs as root,
    whose local admin token (commands/token.py) is then root's own."""
    if settings.allow_root_jobs is not None:
        return settings.allow_root_jobs
    if os.geteuid() != 0:
        return False
    log.warning(
        "running as root: jobs run as their users, and jobs of root (the local admin token's user) are "
        "allowed; set CONDUCTOR_ALLOW_ROOT_JOBS=false to refuse them"
    )
    return True


def run_all_in_one(settings: Settings) -> int:
    from conductor.bus import Bus
    from conductor.scheduler.loop import Scheduler
    from conductor.scheduler.policy import Backfill
    from conductor.worker import run_in_thread

    listener = bind_api(settings)  # a busy port fails here, before anything starts
    store = open_store(settings)
    config = load_cluster_config(settings, store)
    bus = Bus()
    worker = start_worker(settings, store, bus)
    allow_root = root_jobs_allowed(settings)
    worker.config.allow_root_jobs = allow_root
    scheduler = Scheduler(
        store,
        bus,
        check_interval=settings.check_interval,
        heartbeat_timeout=settings.heartbeat_timeout,
        policy=settings.placement,
        backfill=Backfill(depth=settings.backfill_depth, max_job_test=settings.backfill_max_job_test),
        config=config,
    )
    failed = threading.Event()
    worker_thread = run_in_thread(worker, lambda _exc: failed.set())
    scheduler.start()
    purger = start_purger(settings, store)
    monitor = start_monitor(settings, store)
    url = api_url(settings)
    home = settings.resolved_home()

    def announce(token: str) -> None:
        log.info(
            "conductor up: node %s with %d CPUs, containment %s, listening on %s",
            worker.config.name,
            worker.config.cpus,
            worker.containment.mode,
            url,
        )
        profile = remember_server(url, token)
        if settings.log_format == "json":
            log.info("%s", welcome(url, profile, home).rstrip())  # JSON lines only: the welcome is one record
        else:
            sys.stdout.write(welcome(url, profile, home))
            sys.stdout.flush()

    started = False
    try:
        started = serve_api(
            store, bus, settings, allow_root_jobs=allow_root, listener=listener, on_started=announce,
            config=config,
        )
    finally:
        log.info("shutting down")
        if purger is not None:
            purger.stop()
        monitor.stop()
        scheduler.stop()
        worker.stop()
        worker_thread.join(timeout=15)
        store.close()
    if failed.is_set():
        return 1
    return 0 if started else 1


def remember_server(url: str, token: str) -> str | None:
    """Record the server and its local token in the user's profile (cli/profile.py), so the
    CLI finds them from any directory; the profile's directory, or None when it cannot be
    written (the CLI then needs CONDUCTOR_URL and CONDUCTOR_TOKEN, which is said)."""
    from conductor.cli.profile import record

    if not token:
        return None
    try:
        return record(url, token)
    except OSError as exc:
        log.warning("cannot record the server in the user's profile (%s): set CONDUCTOR_URL and CONDUCTOR_TOKEN", exc)
        return None


def welcome(url: str, profile: str | None, home: Path) -> str:
    """The lines a user needs to start, printed once the API listens. The token command opens
    the database itself: it is given the home, so that it works from any directory too."""
    from conductor.services.tokens import local_user

    shims = "~/.local/bin/conductor-slurm"
    lines = [
        f"conductor is up at {url}: dashboard {url}/ (sign in with a token), API documentation {url}/docs",
        f"As {local_user()}, from any directory:"
        if profile
        else f"Set CONDUCTOR_URL={shlex.quote(url)} and CONDUCTOR_TOKEN, then:",
        "  conductor sbatch job.sh | conductor squeue | conductor sacct | conductor scancel ID | conductor stats",
        f"  conductor slurm-shims {shims} && export PATH={shims}:$PATH   # then plain sbatch, squeue, ...",
        f"Other users need a token: conductor token --home {shlex.quote(str(home))} create --user NAME "
        "(they save it in ~/.config/conductor/token)",
    ]
    if profile:
        lines.append(f"(server and token recorded in {profile}; CONDUCTOR_URL and CONDUCTOR_TOKEN override them)")
    return "\n".join(lines) + "\n"
