"""A waiting job's dependency as Slurm's views show it.

slurmctld keeps each condition of a dependency with its state and writes the conditions not
fulfilled yet, each followed by `(unfulfilled)` or `(failed)`; a fulfilled one is dropped, so a
satisfied dependency shows `(null)` (`_depend_list2str`). squeue's `%E` and `scontrol show job`'s
`Dependency=` print that. The server stores the dependency as submitted; the views ask it, once
a page and only when a job they show has one, how each stands (GET /jobs/dependencies).
"""

from __future__ import annotations

# Not imported when run: squeue imports nothing it does not need (tests/unit/test_squeue_keys.py).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Protocol

    class JobSource(Protocol):
        def get(self, path: str, **params: Any) -> Any: ...

# The key of a job record that holds the dependency as shown (None: "(null)").
DESCRIPTION = "_dependency_desc"
# Ids a request names: the server's bound (api/app.py, MAX_DEPENDENCY_IDS).
_CHUNK = 1000


def shown_dependency(job: dict[str, Any]) -> Any:
    """What the views print for a job's dependency: as described, else as submitted."""
    return job[DESCRIPTION] if DESCRIPTION in job else job.get("dependency")


class DependencyStates:
    """Describes the dependencies of the jobs of the pages it is given."""

    def __init__(self, client: JobSource) -> None:
        self._client = client

    def describe(self, jobs: list[dict[str, Any]]) -> None:
        having = [job for job in jobs if job.get("dependency")]
        for start in range(0, len(having), _CHUNK):
            chunk = having[start : start + _CHUNK]
            ids = ",".join(str(job["job_id"]) for job in chunk)
            found = self._client.get("/jobs/dependencies", job_id=ids).get("dependencies", {})
            for job in chunk:
                key = str(job["job_id"])
                if key in found:
                    job[DESCRIPTION] = found[key]
