"""Which nodes keep a `ReqNodeNotAvail` job waiting, as Slurm's views name them.

slurmctld words the wait of such a job "ReqNodeNotAvail, UnavailableNodes:cn[01-02]": the nodes
of its partition that take no job (node_scheduler.c, where it sets the job's state_desc), and
squeue's `%r`/`%R` and `scontrol show job`'s `Reason=` print that description in place of the
bare reason. The server stores the reason alone (a short column, written by every pass); the
views ask for the nodes, once, when a job they show waits for this reason, and describe it the
same way.
"""

from __future__ import annotations

from conductor.domain.hostlist import compress_hostlist, expand_hostlist

# Not imported when run: squeue imports nothing it does not need (tests/unit/test_squeue_keys.py).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Protocol

    class NodeSource(Protocol):
        def get(self, path: str, **params: Any) -> Any: ...

REASON = "ReqNodeNotAvail"
# The key of a job record that holds its description (cli/common.job_reason prints it).
DESCRIPTION = "_state_desc"
_TAKING_JOBS = frozenset({"IDLE", "MIXED", "ALLOCATED"})
# The fields of a job record that keep it to some nodes, and how many jobs one request asks about.
_REQUESTS = ("required_nodes", "excluded_nodes")
_IDS_PER_REQUEST = 200


class UnavailableNodes:
    """Describes the ReqNodeNotAvail jobs of the pages it is given; asks for the nodes once."""

    def __init__(self, client: NodeSource) -> None:
        self._client = client
        self._by_partition: dict[str, list[str]] | None = None

    def describe(self, jobs: list[dict[str, Any]]) -> None:
        waiting = [job for job in jobs if job.get("reason") == REASON and job.get("state") == "PENDING"]
        if not waiting:
            return
        requests = self._node_requests([job for job in waiting if _REQUESTS[0] not in job])
        for job in waiting:
            names = self._unavailable().get(str(job.get("partition")), [])
            # Kept to some nodes (--nodelist, --exclude): those of them that take no job.
            required, excluded = requests.get(job.get("job_id"), (job.get(_REQUESTS[0]), job.get(_REQUESTS[1])))
            if required:
                allowed = set(expand_hostlist(str(required)))
                names = [name for name in names if name in allowed]
            if excluded:
                kept_off = set(expand_hostlist(str(excluded)))
                names = [name for name in names if name not in kept_off]
            if names:  # none now (a node came back since the pass): the bare reason
                job[DESCRIPTION] = f"{REASON}, UnavailableNodes:{compress_hostlist(names)}"

    def _node_requests(self, jobs: list[dict[str, Any]]) -> dict[Any, tuple[Any, Any]]:
        """The nodes these jobs are kept to, asked for when a view's records lack them (squeue
        asks only for the fields it prints; such jobs are few)."""
        found: dict[Any, tuple[Any, Any]] = {}
        ids = [str(job.get("job_id")) for job in jobs]
        for start in range(0, len(ids), _IDS_PER_REQUEST):
            page = self._client.get(
                "/jobs", job_id=",".join(ids[start : start + _IDS_PER_REQUEST]), state="PENDING",
                fields=",".join(("job_id", *_REQUESTS)), limit=_IDS_PER_REQUEST * 2,
            )
            for record in page.get("jobs") or [] if isinstance(page, dict) else []:
                if isinstance(record, dict):
                    found[record.get("job_id")] = (record.get(_REQUESTS[0]), record.get(_REQUESTS[1]))
        return found

    def _unavailable(self) -> dict[str, list[str]]:
        if self._by_partition is None:
            found: dict[str, list[str]] = {}
            for node in self._client.get("/nodes").get("nodes", []):
                if node.get("drained") or node.get("state") not in _TAKING_JOBS:
                    for partition in node.get("partitions") or []:
                        found.setdefault(str(partition), []).append(str(node["name"]))
            self._by_partition = found
        return self._by_partition
