"""`conductor server`: the HTTP API and the scheduler, against CONDUCTOR_DATABASE_URL.

Any number may run against one database: all serve the API, and the one holding the scheduler
lock schedules (and declares silent nodes dead) while the others stand by to take over.
"""

from __future__ import annotations

import argparse
import logging

from conductor.commands.common import add_tls_arguments, api_url
from conductor.commands.runtime import (
    add_listen_arguments,
    bind_api,
    load_cluster_config,
    open_store,
    run_command,
    serve_api,
    start_monitor,
    start_purger,
)
from conductor.settings import Settings

log = logging.getLogger("conductor.server")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="conductor server",
        description="Run the API and the scheduler against CONDUCTOR_DATABASE_URL (PostgreSQL or SQLite).",
    )
    add_listen_arguments(parser)
    add_tls_arguments(parser)
    return parser


def main(argv: list[str]) -> int:
    return run_command(build_parser(), argv, run_server)


def run_server(settings: Settings) -> int:
    from conductor.bus import SCHEDULER
    from conductor.bus.postgres import bus_for
    from conductor.scheduler.leader import SchedulerLock
    from conductor.scheduler.loop import Scheduler
    from conductor.scheduler.policy import Backfill

    listener = bind_api(settings)  # a busy port fails here, before anything starts
    # A server of a cluster waits for its database as a worker does: PostgreSQL may be starting,
    # restarting or out of connections, and each of those passes.
    store = open_store(settings, patient=settings.resolved_database_url().startswith("postgresql"))
    bus = bus_for(store, "server")
    config = load_cluster_config(settings, store)
    lock = SchedulerLock(store, interval=min(1.0, settings.heartbeat_timeout / 3))
    scheduler = Scheduler(
        store,
        bus,
        check_interval=settings.check_interval,
        heartbeat_timeout=settings.heartbeat_timeout,
        policy=settings.placement,
        backfill=Backfill(depth=settings.backfill_depth, max_job_test=settings.backfill_max_job_test),
        config=config,
        leader=lock,
    )
    lock.on_change = lambda _active: scheduler.wake()
    # Wake-ups for the scheduler go to other servers only while another one schedules.
    bus.keep_local(SCHEDULER, lock.is_active)
    lock.start()
    scheduler.start()
    purger = start_purger(settings, store, leader=lock)
    monitor = start_monitor(settings, store, leader=lock)
    url = api_url(settings)

    def announce(_token: str) -> None:
        log.info("conductor server: listening on %s (scheduler: %s)", url, lock.identity)

    started = False
    try:
        started = serve_api(store, bus, settings, listener=listener, on_started=announce, config=config)
    finally:
        log.info("shutting down")
        if purger is not None:
            purger.stop()
        monitor.stop()
        scheduler.stop()
        lock.stop()
        bus.close()
        store.close()
    return 0 if started else 1
