"""Who is asking: the authenticated caller, and the one rule of ownership every action follows."""

from __future__ import annotations

from dataclasses import dataclass

from conductor.errors import Forbidden


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller."""

    user: str
    admin: bool
    token_id: int
    # The token's own user when an administrator's token acts as `user` (X-SLURM-USER-NAME).
    acting_for: str | None = None

    def may_act_on(self, owner: str) -> bool:
        return self.admin or self.user == owner


def ensure_owner(principal: Principal, job_id: int, owner: str, action: str = "act on it") -> None:
    """Forbidden unless `principal` owns the job or is an administrator.

    For every action that changes a job (cancel, hold, release, requeue, update, signal) or shows
    what only its owner should see (output, script, environment). Call it after the existence
    check, so that a job's existence is no secret (squeue lists every job) but its contents are.
    """
    if not principal.may_act_on(owner):
        raise Forbidden(
            f"job {job_id} belongs to user '{owner}'; only its owner or an "
            f"administrator may {action} (you are '{principal.user}')"
        )


def ensure_admin(principal: Principal, action: str) -> None:
    """Forbidden unless the caller's token is an administrator's."""
    if not principal.admin:
        raise Forbidden(f"only an administrator may {action} (you are '{principal.user}')")
