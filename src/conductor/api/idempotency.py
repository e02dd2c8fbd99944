"""The `Idempotency-Key` request header and the `Idempotent-Replayed` answer header of the
submission routes (`POST /jobs/submit`, slurmrestd's `POST job/submit`), as the OpenAPI
document shows them. What they mean: conductor.services.idempotency."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Header

from conductor.services import idempotency

# The submission's Idempotency-Key (services/idempotency.py), as /docs shows it. Its rule is in
# the schema but checked by the route, which refuses a bad key with a 400 naming the header
# (FastAPI's own check would answer 422, the status of a body that does not validate).
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias=idempotency.HEADER,
        description="A unique value (a UUID, say) for this submission, at most 255 printable ASCII characters "
        "(0x21-0x7E). Retrying a submission whose answer was lost with the same key and the same request "
        "answers what the first did (the same status and job ids) with `Idempotent-Replayed: true`, and "
        "stores nothing; the same key with another request is refused (422). Keys are per user, and last as "
        "long as the job the first submission made (an array's first task). Ignored by test_only.",
        json_schema_extra={"minLength": 1, "maxLength": idempotency.MAX_LENGTH, "pattern": idempotency.PATTERN},
    ),
]
REPLAYED_HEADER_DOC: dict[str, Any] = {
    idempotency.REPLAYED_HEADER: {
        "description": "`true` when the answer is a replay: an earlier submission with the same Idempotency-Key "
        "and request stored these jobs",
        "schema": {"type": "string", "enum": ["true"]},
    }
}
