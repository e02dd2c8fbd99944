"""`conductor worker`: one node's agent, against CONDUCTOR_DATABASE_URL.

It claims its node name (refused while another live worker holds it), heartbeats, runs the jobs
placed on the node and re-adopts them after its own restart. It waits for a database that is
not up yet, and rides out one that restarts: its jobs keep running meanwhile.
"""

from __future__ import annotations

import argparse
import logging

from conductor.commands.common import add_node_arguments
from conductor.commands.runtime import (
    freeze_startup_heap,
    open_store,
    run_command,
    run_worker_in_foreground,
    start_worker,
)
from conductor.settings import Settings

log = logging.getLogger("conductor.worker")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="conductor worker", description="Run one node's agent against CONDUCTOR_DATABASE_URL."
    )
    parser.add_argument("--home", help="state directory: scripts, job status files (default: CONDUCTOR_HOME)")
    add_node_arguments(parser)
    return parser


def main(argv: list[str]) -> int:
    return run_command(build_parser(), argv, run_worker)


def run_worker(settings: Settings) -> int:
    from conductor.bus.postgres import bus_for

    store = open_store(settings, patient=True)
    bus = bus_for(store, f"worker-{settings.resolved_node_name()}")
    try:
        worker = start_worker(settings, store, bus, patient=True, fenced=True)
        log.info(
            "conductor worker: node %s with %d CPUs, containment %s",
            worker.config.name,
            worker.config.cpus,
            worker.containment.mode,
        )
        freeze_startup_heap()
        run_worker_in_foreground(worker)
    finally:
        bus.close()
        store.close()
    return 1 if worker.taken_over else 0
