"""The one root of every error the package raises on purpose, and the kinds of refusal.

A *refusal* is a request turned down before anything was stored: the services raise one, and
each transport chooses its answer from the refusal's kind alone (the native API an HTTP status,
slurmrestd a Slurm error number, the CLI an exit code), never from its text. The text is for
people: it names the field and the rule.
"""

from __future__ import annotations

# The CLI imports this module: typing alone would cost it milliseconds at every start.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import ClassVar


class ConductorError(Exception):
    """Root of the package's own errors: `except ConductorError` catches every one of them."""


class Refusal(ConductorError):
    """A request that was refused; nothing it asked for was stored or done."""

    status: ClassVar[int] = 400

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def __str__(self) -> str:
        return self.message


class Invalid(Refusal):
    """A value breaks its rule (grammar, range, a combination of fields); `field` names it."""

    def __str__(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message


class UnknownUser(Invalid):
    """The caller's user has no account on this host, so no job of theirs could run here."""


class InvalidPartition(Invalid):
    """The request names a partition no node belongs to."""


class InvalidNodeName(Invalid):
    """The request names a node the cluster does not have (--nodelist, --exclude)."""


class DependencyProblem(Invalid):
    """The request depends on a job that does not exist."""


class KeyReused(Invalid):
    """An Idempotency-Key its user already sent with another request (a different job or
    script). 422, as the IETF draft on the header says (draft-ietf-httpapi-idempotency-key-
    header, "Error Scenarios"): the request is well-formed but cannot be processed with that
    key; its 409 means "the first request is still being processed", which never happens here."""

    status = 422


class Unsatisfiable(Refusal):
    """No node could ever run the request (Slurm refuses it at submission)."""


class Forbidden(Refusal):
    """The caller may not do this (not the job's owner, not an administrator, ...)."""

    status = 403


class NotFound(Refusal):
    """The request names a job (or array, or task) that does not exist."""

    status = 404


class Conflict(Refusal):
    """None of the jobs addressed is in a state that allows the action."""

    status = 409


class AlreadyDone(Conflict):
    """Every job addressed has already ended (or is being stopped)."""


class LimitExceeded(Refusal):
    """Accepting the request would exceed a configured limit."""

    status = 429


class StoreUnavailable(ConductorError):
    """The database could not be reached or failed; the request may be retried.

    `kind` names the driver's error (OperationalError, ConnectionRefused...) for logs."""

    def __init__(self, message: str, kind: str = "error") -> None:
        super().__init__(message)
        self.kind = kind
