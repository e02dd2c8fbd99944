"""`scontrol reconfigure` and `scontrol update PartitionName=X State=...`: administrators'
commands on the cluster configuration (api/cluster.py does the work, in every server)."""

from __future__ import annotations

import sys
from urllib.parse import quote

from conductor.cli.client import ApiError, Client
from conductor.cli.common import UsageError

_STATES = ("UP", "DOWN", "DRAIN", "INACTIVE")


def reconfigure(quiet: bool) -> int:
    """Silent on success, as Slurm's; a bad file is refused with its line and rule."""
    client = Client()
    try:
        client.post("/config/reconfigure")
    except ApiError as exc:
        if not quiet:
            sys.stderr.write(f"slurm_reconfigure error: {exc.message}\n")
        return 1
    finally:
        client.close()
    return 0


def update_partition(args: list[str], quiet: bool) -> int:
    name: str | None = None
    state: str | None = None
    for arg in args:
        key, eq, value = arg.partition("=")
        lowered = key.lower()
        if not eq:
            raise UsageError(f"Invalid input: {arg}\nRequest aborted")
        if lowered in ("partitionname", "partition"):
            name = value
        elif lowered == "state":
            state = value.upper()
            if state not in _STATES:
                raise UsageError(f"Invalid input: {arg}\nAcceptable State values are UP, DOWN, DRAIN and INACTIVE")
        else:
            raise UsageError(f"Update of this parameter is not supported: {arg}\nRequest aborted")
    if not name:
        raise UsageError("No partition name given (PartitionName=<name>)\nRequest aborted")
    if state is None:
        raise UsageError("No changes specified\nRequest aborted")
    client = Client()
    try:
        client.post(f"/partitions/{quote(name, safe='')}/state", {"state": state})
    except ApiError as exc:
        if not quiet:
            sys.stderr.write(f"slurm_update error: {exc.message}\n")
        return 1
    finally:
        client.close()
    return 0
