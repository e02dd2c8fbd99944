"""`conductor up`: API, scheduler and one worker in one process, on embedded SQLite."""

from __future__ import annotations

import argparse
import logging
import os
import threading

from conductor.commands.common import (
    add_node_arguments,
    add_tls_arguments,
    api_scheme,
)
from conductor.commands.runtime import (
    add_listen_arguments,
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
    log.info(
        "conductor up: node %s with %d CPUs, listening on %s://%s:%d",
        worker.config.name,
        worker.config.cpus,
        api_scheme(settings),
        settings.host,
        settings.port,
    )
    started = False
    try:
        started = serve_api(store, bus, settings, allow_root_jobs=allow_root, config=config)
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
