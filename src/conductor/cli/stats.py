"""`conductor stats`: the cluster's CPU and job counts from /jobs/stats, as a table."""

from __future__ import annotations

import sys

from conductor.cli.client import Client
from conductor.cli.common import UsageError, run

PROG = "stats"
ROWS = (
    ("total_cpus", "Total CPUs"),
    ("used_cpus", "Used CPUs"),
    ("available_cpus", "Available CPUs"),
    ("running_jobs", "Running jobs"),
    ("pending_jobs", "Pending jobs"),
)


HELP = (
    "usage: conductor stats [--json]\n"
    "The cluster's CPUs (total, used, available) and jobs (running, pending), counted over live nodes.\n"
    "\n"
    "Options:\n"
    "  --json       print GET /jobs/stats's JSON object instead of the table\n"
    "  -h, --help   show this help and exit\n"
)


def main(argv: list[str]) -> int:
    return run(PROG, lambda: _main(argv))


def _main(argv: list[str]) -> int:
    as_json = False
    for arg in argv:
        if arg in ("-h", "--help"):
            sys.stdout.write(HELP)
            return 0
        if arg == "--json":
            as_json = True
        else:
            raise UsageError(f"unrecognized argument '{arg}'")
    client = Client()
    try:
        stats = client.get("/jobs/stats")
    finally:
        client.close()
    if as_json:
        import json

        sys.stdout.write(json.dumps(stats) + "\n")
        return 0
    # rich is a dependency of the package, but this must still work without a terminal.
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:  # pragma: no cover - rich is installed with the package
        width = max(len(label) for _, label in ROWS)
        for key, label in ROWS:
            sys.stdout.write(f"{label:<{width}}  {stats.get(key, 0)}\n")
        return 0
    table = Table(title="Conductor cluster")
    table.add_column("Metric")
    table.add_column("Value", justify="right")
    for key, label in ROWS:
        table.add_row(label, str(stats.get(key, 0)))
    Console().print(table)
    return 0
