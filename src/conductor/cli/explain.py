"""`conductor explain JOBID`: why a job waits and what would change it, in plain words.

The server answers from the scheduler's own plan (GET /jobs/{id}/explain): the reason, the jobs
and reservations ahead, the resources it needs and where, its expected start and which running
jobs' time limits that start is computed from.
"""

from __future__ import annotations

import json
import sys

from conductor.cli.client import Client
from conductor.cli.common import UsageError, run
from conductor.cli.jobsel import parse_job_spec

PROG = "explain"
USAGE = "usage: conductor explain [--json] JOBID\n"
HELP = (
    USAGE
    + "Why a job waits and what would change it: its reason, what is ahead of it, what it needs\n"
    "and where, and when it should start.\n"
    "\n"
    "Options:\n"
    "  --json       print the server's answer (GET /jobs/{id}/explain) as JSON\n"
    "  -h, --help   show this help and exit\n"
)


def main(argv: list[str]) -> int:
    return run(PROG, lambda: _main(argv))


def _main(argv: list[str]) -> int:
    as_json = False
    ids: list[str] = []
    for arg in argv:
        if arg in ("-h", "--help"):
            sys.stdout.write(HELP)
            return 0
        if arg == "--json":
            as_json = True
        elif arg.startswith("-"):
            raise UsageError(f"unrecognized option '{arg}'\n{USAGE.rstrip()}")
        else:
            ids.append(arg)
    if len(ids) != 1:
        raise UsageError(f"give exactly one job id\n{USAGE.rstrip()}")
    # Checked here: in the URL, '' or 'a b' got the HTTP layer's "Not Found" or "Invalid HTTP
    # request" in place of a word on the id.
    spec = parse_job_spec(ids[0])
    if spec.tasks is not None and len(spec.tasks) != 1:
        raise UsageError(f"Invalid job id {ids[0]}: give one job or one array task (123 or 123_4)")
    client = Client()
    try:
        named = str(spec.base) if spec.tasks is None else f"{spec.base}_{min(spec.tasks)}"
        answer = client.get(f"/jobs/{named}/explain")
    finally:
        client.close()
    if as_json:
        sys.stdout.write(json.dumps(answer, indent=2) + "\n")
    else:
        sys.stdout.write("".join(f"{line}\n" for line in answer.get("lines", [])))
    return 0
