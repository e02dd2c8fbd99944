"""`conductor server`: the HTTP API and the scheduler, against CONDUCTOR_DATABASE_URL.

Any number may run against one database: all serve the API, and the one holding the scheduler
lock schedules (and declares silent nodes dead) while the others stand by to take over.
"""

from __future__ import annotations

import argparse
import logging

from conductor.commands.common import add_tls_arguments, configure_logging, fail, port_arg
from conductor.commands.runtime import StartupError, load_settings, open_store, serve_api
from conductor.settings import Settings

log = logging.getLogger("conductor.server")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="conductor server",
        description="Run the API and the scheduler against CONDUCTOR_DATABASE_URL (PostgreSQL or SQLite).",
    )
    parser.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=port_arg, help="port to listen on (default 8000)")
    parser.add_argument("--home", help="state directory (default: CONDUCTOR_HOME or ./.conductor)")
    add_tls_arguments(parser)
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return parser


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args.log_level)
    try:
        return run_server(load_settings(args))
    except StartupError as exc:
        return fail(str(exc))


def run_server(settings: Settings) -> int:
    from conductor.leader import SchedulerLock
    from conductor.pgbus import bus_for
    from conductor.scheduler import Scheduler

    store = open_store(settings)
    bus = bus_for(store, "server")
    lock = SchedulerLock(store, interval=min(1.0, settings.heartbeat_timeout / 3))
    scheduler = Scheduler(
        store,
        bus,
        check_interval=settings.check_interval,
        heartbeat_timeout=settings.heartbeat_timeout,
        policy=settings.placement,
        leader=lock,
    )
    lock.on_change = lambda _active: scheduler.wake()
    lock.start()
    scheduler.start()
    log.info("conductor server: listening on http://%s:%d (scheduler: %s)", settings.host, settings.port, lock.identity)
    started = False
    try:
        started = serve_api(store, bus, settings)
    finally:
        log.info("shutting down")
        scheduler.stop()
        lock.stop()
        bus.close()
        store.close()
    return 0 if started else 1
