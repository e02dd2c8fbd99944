"""Idempotent submission: the `Idempotency-Key` request header (IETF draft-ietf-httpapi-
idempotency-key-header; Stripe's API is the model).

A client that sends a key with a submission and loses the answer (a timeout, a cut connection)
sends the same request with the same key again and gets the first answer back, with
`Idempotent-Replayed: true`, and no second job. The key is its user's (the token's, or the one an
administrator acts for): two users may use the same key. It is stored on the job the submission
made (an array's first task) with a digest of the request, and lives as long as that row: the
purge of ended jobs removes both, and the key is then free again. (The purge keeps an array's
first task while another task of the array remains: a retry must not make a second array.)

- The same key with the same request: the first answer (201, the same job id and array tasks).
- The same key with another request: refused, 422 naming the header (errors.KeyReused).
- A key that is empty, longer than MAX_LENGTH or holds anything but printable ASCII without the
  space (0x21-0x7E), or a header given twice: refused, 400 naming the header. A key is taken
  byte for byte: the draft's quoted form ("abc", a Structured Field string) is a key with its
  quotes, the same on every retry.
- A test-only submission ignores its key: nothing is stored, nothing looked up.

The digest is SHA-256 over the request as the services see it: the validated model as canonical
JSON (keys sorted, no white space), fields at their default value left out. Two bodies that
differ only in key order, white space or a field given its default are the same request (and a
field a later version adds does not change the digest of a request that leaves it out, so a
retry across an upgrade is still one); `5` and `"5"` are not the same.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence

from conductor.errors import Invalid
from conductor.services.requests import SubmitRequest

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
MAX_LENGTH = 255  # jobs.submit_key is String(255)
PATTERN = r"^[\x21-\x7E]{1,255}$"  # the rule, as the OpenAPI document states it

_VALID = re.compile(r"[\x21-\x7E]{1,255}", re.ASCII)  # with fullmatch: `$` takes "abc\n"
_VALID_BYTES = re.compile(rb"[\x21-\x7E]{1,255}")


def submission_key(values: Sequence[str]) -> str | None:
    """The key of a request's `Idempotency-Key` headers (their values, as the server decoded
    them: Latin-1), None without one; Invalid (400) naming the header for anything else."""
    if not values:
        return None
    if len(values) > 1:
        raise Invalid("the header is given more than once; send it once", field=HEADER)
    value = values[0]
    if _VALID.fullmatch(value):
        return value
    if not value:
        raise Invalid("must not be empty; send a unique value such as a UUID for each submission", field=HEADER)
    if len(value) > MAX_LENGTH:
        raise Invalid(f"is {len(value)} characters long; a key has at most {MAX_LENGTH}", field=HEADER)
    position, char = next((i, c) for i, c in enumerate(value) if not "\x21" <= c <= "\x7e")
    raise Invalid(
        f"character {position + 1} is {_name(char)}; a key holds printable ASCII characters only "
        "(0x21-0x7E: no space, no control character)",
        field=HEADER,
    )


def key_from_bytes(raw: bytes) -> str | None:
    """The key of one header value as it came (the submission fast path), None if it is not
    valid: the fast path then hands the request on, and `submission_key` words the refusal."""
    if _VALID_BYTES.fullmatch(raw):
        return raw.decode("ascii")
    return None


def _name(char: str) -> str:
    if char == " ":
        return "a space"
    return f"U+{ord(char):04X}"


def request_digest(request: SubmitRequest) -> str:
    """SHA-256 (hex) of the request in canonical JSON: what tells a retry from another request."""
    fields = request.model_dump(mode="json", exclude_defaults=True)
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()
