"""`scontrol update NodeName=LIST State=DRAIN Reason="..."`, `State=RESUME` and `State=UNDRAIN`:
an administrator drains nodes before maintenance and resumes them after (api/nodes.py).

Parsed as Slurm's scontrol parses it (src/scontrol/update_node.c): keys and state names case-
insensitive and abbreviated (`State=dra`, `Reason=`, `Node=`), the reason's surrounding double
quotes dropped, NodeName a host list (`n[1-4],gpu1`). One difference: every name is checked
before anything changes, so a list with an unknown name changes no node (Slurm updates the
names before it).
"""

from __future__ import annotations

import sys
from urllib.parse import quote

from conductor.cli.client import ApiError, Client
from conductor.cli.common import UsageError

# What State= takes here, each abbreviated to 3 letters or more (as Slurm's MAX(val_len, 3)).
STATES = ("DRAIN", "RESUME", "UNDRAIN")
# Slurm's words for the refusals (slurm_strerror of ESLURM_ACCESS_DENIED, ESLURM_INVALID_NODE_NAME
# and ESLURM_INVALID_NODE_STATE), by the API's status.
_SLURM_ERRORS = {
    403: "Access/permission denied",
    404: "Invalid node name specified",
    409: "Invalid node state specified",
}


def is_node_key(key: str) -> bool:
    """Whether `key` names NodeName, as scontrol's update tells its entity: 3 letters or more."""
    lowered = key.lower()
    return len(lowered) >= 3 and "nodename".startswith(lowered)


def _abbreviates(value: str, word: str, least: int) -> bool:
    lowered = value.lower()
    return len(lowered) >= least and word.lower().startswith(lowered)


def parse_update(args: list[str]) -> tuple[str, str, str | None]:
    """(the host list, the state, the reason) of `update NodeName=... State=... [Reason=...]`."""
    names: str | None = None
    state: str | None = None
    reason: str | None = None
    for arg in args:
        key, eq, value = arg.partition("=")
        if not eq:
            raise UsageError(f"Invalid input: {arg}  Request aborted")
        if _abbreviates(key, "NodeAddr", 5) or _abbreviates(key, "NodeHostName", 5):
            raise UsageError(f"Update of this parameter is not supported: {arg}\nRequest aborted")
        if _abbreviates(key, "NodeName", 1):
            names = value
        elif _abbreviates(key, "Reason", 1):
            reason = value[1:] if value.startswith('"') else value
            if reason.endswith('"'):
                reason = reason[:-1]
        elif _abbreviates(key, "State", 1):
            state = next((s for s in STATES if _abbreviates(value, s, 3)), None)
            if state is None:
                raise UsageError(
                    f"Invalid input: {arg}\nRequest aborted\nValid states are: {' '.join(STATES)}\n"
                    "Not all states are valid given a node's prior state"
                )
        else:
            raise UsageError(f"Update of this parameter is not supported: {arg}\nRequest aborted")
    if state == "DRAIN" and not (reason or "").strip():
        raise UsageError("You must specify a reason when DOWNING or DRAINING a node. Request denied")
    if state is None:
        raise UsageError("No changes specified" if reason is None else
                         "No changes specified: Reason= goes with State=DRAIN\nRequest aborted")
    if not (names or "").strip():
        raise UsageError("No node name given (NodeName=<name>)\nRequest aborted")
    return names or "", state, reason


def update_node(args: list[str], quiet: bool) -> int:
    """Drain, resume or undrain every node of the NodeName= host list; silent on success."""
    from conductor.domain.hostlist import expand_hostlist

    text, state, reason = parse_update(args)
    names = expand_hostlist(text, field="NodeName")
    body: dict[str, str] = {"state": state}
    if reason is not None and state == "DRAIN":
        body["reason"] = reason
    client = Client()
    try:
        known = {n["name"] for n in client.get("/nodes").get("nodes", [])}
        unknown = [n for n in names if n not in known]
        if unknown:
            if not quiet:
                sys.stderr.write(f"slurm_update error: {_SLURM_ERRORS[404]}\n")
            return 1
        rc = 0
        for name in names:
            try:
                client.post(f"/nodes/{quote(name, safe='')}/state", body)
            except ApiError as exc:
                if not quiet:
                    sys.stderr.write(f"slurm_update error: {_SLURM_ERRORS.get(exc.status, exc.message)}\n")
                rc = 1
                if exc.status in (401, 403):  # the same for every node: said once
                    break
        return rc
    finally:
        client.close()
