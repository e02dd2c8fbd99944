"""Idempotent submission without a database: the `Idempotency-Key` header's rule, the request's
digest (what tells a retry from another request), and the submission fast path, which takes the
header from its one scan of the headers and answers a replay itself."""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from typing import Any

import pytest
from test_job_service import ALICE, LIMITS, USER, FakeBus, FakeStore

from conductor.api.fastpath import SubmitFastPath, _plain_bearer
from conductor.api.models import SubmitRequest
from conductor.errors import Invalid, KeyReused
from conductor.services.idempotency import HEADER, key_from_bytes, request_digest, submission_key
from conductor.services.jobs import JobService, Submitted
from conductor.services.tokens import hash_token
from conductor.store.records import Token

VALID = [
    str(uuid.uuid4()),
    "a",
    "~" * 255,
    '"8e03978e-40d5-43e8-bc93-6894a57f9324"',  # the draft's quoted form: a key with its quotes
    "!#$%&'()*+,-./0123456789:;<=>?@[\\]^_`{|}",
]
REFUSED = {
    "": "must not be empty",
    "a" * 256: "is 256 characters long; a key has at most 255",
    "two words": "character 4 is a space",
    "tab\there": "character 4 is U+0009",
    "caf\u00e9": "character 4 is U+00E9",
    "del\x7f": "character 4 is U+007F",
    "nul\x00": "character 4 is U+0000",
    "line\n": "character 5 is U+000A",
}


# ------------------------------------------------------------------ the key's rule
@pytest.mark.parametrize("key", VALID)
def test_a_key_is_1_to_255_printable_ascii_characters(key: str) -> None:
    assert submission_key([key]) == key
    assert key_from_bytes(key.encode("latin-1")) == key


@pytest.mark.parametrize(("key", "why"), REFUSED.items())
def test_anything_else_is_refused_naming_the_header(key: str, why: str) -> None:
    with pytest.raises(Invalid) as refused:
        submission_key([key])
    assert refused.value.field == HEADER and refused.value.status == 400
    assert str(refused.value).startswith(f"{HEADER}: {why}"), str(refused.value)
    assert key_from_bytes(key.encode("latin-1")) is None  # the fast path hands it on


def test_no_header_is_no_key_and_two_are_refused() -> None:
    assert submission_key([]) is None
    with pytest.raises(Invalid, match="Idempotency-Key: the header is given more than once"):
        submission_key(["a", "a"])


def test_the_fast_paths_check_is_the_same_rule_for_every_byte() -> None:
    for byte in range(256):
        raw = b"k" + bytes([byte])
        text = raw.decode("latin-1")
        try:
            expected: str | None = submission_key([text])
        except Invalid:
            expected = None
        assert key_from_bytes(raw) == expected, byte


def test_a_key_used_for_another_request_is_a_422_naming_the_header() -> None:
    refusal = KeyReused("used for another request", field=HEADER)
    assert refusal.status == 422 and isinstance(refusal, Invalid) and str(refusal).startswith(f"{HEADER}: ")


# ------------------------------------------------------------------ the digest
def _parsed(body: str) -> SubmitRequest:
    """The request as FastAPI and the fast path make it of a body."""
    return SubmitRequest.model_validate(json.loads(body))


BODY = '{"job": {"name": "a", "current_working_directory": "/tmp", "environment": {"A": "1", "B": "2"}}, "script": "#!/bin/sh\\n"}'


def test_key_order_white_space_and_explicit_defaults_do_not_change_the_digest() -> None:
    same = [
        BODY,
        '{"script":"#!/bin/sh\\n","job":{"environment":{"B":"2","A":"1"},"current_working_directory":"/tmp","name":"a"}}',
        '{\n  "job": {\n    "name": "a",\n    "current_working_directory": "/tmp",\n    "environment": {"A": "1", "B": "2"},'
        '\n    "ntasks": 1, "hold": false, "nice": 0, "open_mode": "truncate", "partition": null\n  },\n'
        '  "script": "#!/bin/sh\\n"\n}',
    ]
    digests = {request_digest(_parsed(body)) for body in same}
    assert len(digests) == 1
    (digest,) = digests
    assert len(digest) == 64 and int(digest, 16) >= 0


@pytest.mark.parametrize(
    "change",
    [
        {"name": "b"},
        {"ntasks": 2},
        {"time_limit": 5},
        {"time_limit": "5"},  # another value than 5 as parsed: a string, not a number
        {"environment": {"A": "1"}},
        {"hold": True},
        {"array": "1-3"},
    ],
)
def test_any_other_field_value_changes_it(change: dict[str, Any]) -> None:
    body = json.loads(BODY)
    changed = {**body, "job": {**body["job"], **change}}
    assert request_digest(SubmitRequest.model_validate(changed)) != request_digest(_parsed(BODY))


def test_another_script_or_type_changes_it() -> None:
    body = json.loads(BODY)
    other_script = {**body, "script": "#!/bin/sh\ntrue\n"}
    assert request_digest(SubmitRequest.model_validate(other_script)) != request_digest(_parsed(BODY))
    number, text = ({**body, "job": {**body["job"], "time_limit": limit}} for limit in (5, "5"))
    assert request_digest(SubmitRequest.model_validate(number)) != request_digest(SubmitRequest.model_validate(text))


def test_the_digest_is_sha256_of_the_canonical_json() -> None:
    # Pinned: a digest that changed between versions would refuse a retry across an upgrade.
    canonical = (
        '{"job":{"current_working_directory":"/tmp","environment":{"A":"1","B":"2"},"name":"a"},'
        '"script":"#!/bin/sh\\n"}'
    )
    assert request_digest(_parsed(BODY)) == hashlib.sha256(canonical.encode()).hexdigest()


# ------------------------------------------------------------------ the fast path
def _headers(*extra: tuple[bytes, bytes]) -> list[tuple[bytes, bytes]]:
    return [(b"authorization", b"Bearer tok"), (b"content-type", b"application/json"), *extra]


def test_the_header_scan_takes_a_lone_key_and_hands_on_two() -> None:
    assert _plain_bearer(_headers()) == ("tok", None)
    assert _plain_bearer(_headers((b"idempotency-key", b"k1"))) == ("tok", b"k1")
    assert _plain_bearer(_headers((b"idempotency-key", b"k1"), (b"idempotency-key", b"k1"))) is None


class _Downstream:
    """FastAPI's place: records what it was handed, answers 400."""

    def __init__(self) -> None:
        self.handed: list[list[tuple[bytes, bytes]]] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.handed.append(scope["headers"])
        await send({"type": "http.response.start", "status": 400, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})


def _post(app: SubmitFastPath, bodies: list[bytes], *extra: tuple[bytes, bytes]) -> list[list[dict[str, Any]]]:
    """POST each body at once (one turn of the loop: one batch on SQLite); what each was sent."""

    async def one(body: bytes) -> list[dict[str, Any]]:
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        scope = {
            "type": "http",
            "method": "POST",
            "path": "/jobs/submit",
            "query_string": b"",
            "headers": _headers(*extra),
            "client": ("127.0.0.1", 1),
        }
        await app(scope, receive, send)
        return sent

    async def all_of() -> list[list[dict[str, Any]]]:
        return list(await asyncio.gather(*(one(body) for body in bodies)))

    return asyncio.run(all_of())


def _fast_path(in_thread: bool) -> tuple[SubmitFastPath, FakeStore, _Downstream]:
    store = FakeStore()
    store.tokens[hash_token("tok")] = Token(1, USER, False, token_hash=hash_token("tok"))
    jobs = JobService(store=store, bus=FakeBus(), limits=LIMITS, max_pending_per_user=100, hostname="h")
    downstream = _Downstream()
    return SubmitFastPath(downstream, store=store, jobs=jobs, in_thread=in_thread), store, downstream


SUBMISSION = json.dumps({"job": {"current_working_directory": "/tmp"}, "script": "#!/bin/sh\ntrue\n"}).encode()


@pytest.mark.parametrize("in_thread", [False, True], ids=["batched", "in-thread"])
def test_the_fast_path_replays_a_keyed_submission(in_thread: bool) -> None:
    fast, store, downstream = _fast_path(in_thread)
    key = (b"idempotency-key", b"retry-me")
    # Three at once with one key (one batch on the loop), then once more.
    answers = [*_post(fast, [SUBMISSION] * 3, key), *_post(fast, [SUBMISSION], key)]
    assert downstream.handed == [] and len(store.jobs) == 1
    assert {a[0]["status"] for a in answers} == {201}
    assert {a[1]["body"] for a in answers} == {b'{"job_id":"1","array_task_ids":null,"message":null}'}
    replayed = [(b"idempotent-replayed", b"true") in a[0]["headers"] for a in answers]
    assert replayed.count(False) == 1 and replayed[-1]
    # Another request with the key: handed on for FastAPI to refuse (decided again there).
    other = json.dumps({"job": {"current_working_directory": "/tmp", "name": "other"}, "script": "#!/bin/sh\n"})
    assert _post(fast, [other.encode()], key)[0][0]["status"] == 400 and len(downstream.handed) == 1
    # Without a key: a job each, no replay header.
    plain = _post(fast, [SUBMISSION, SUBMISSION])
    assert [(b"idempotent-replayed", b"true") in a[0]["headers"] for a in plain] == [False, False]
    assert len(store.jobs) == 3


@pytest.mark.parametrize(
    "headers",
    [
        [(b"idempotency-key", b"")],
        [(b"idempotency-key", b"two words")],
        [(b"idempotency-key", b"x" * 256)],
        [(b"idempotency-key", b"caf\xc3\xa9")],
        [(b"idempotency-key", b"a"), (b"idempotency-key", b"a")],
    ],
)
def test_a_bad_or_repeated_key_is_handed_to_fastapi(headers: list[tuple[bytes, bytes]]) -> None:
    fast, store, downstream = _fast_path(False)
    assert _post(fast, [SUBMISSION], *headers)[0][0]["status"] == 400
    assert len(downstream.handed) == 1 and store.jobs == {}


def test_a_test_only_submission_ignores_its_key() -> None:
    store = FakeStore()
    jobs = JobService(store=store, bus=FakeBus(), limits=LIMITS, max_pending_per_user=100, hostname="h")
    job = {"current_working_directory": "/tmp"}
    test_only = SubmitRequest.model_validate({"job": {**job, "test_only": True}, "script": "#!/bin/sh\n"})
    assert type(jobs.submit(ALICE, test_only, key="k")).__name__ == "WouldSubmit" and store.jobs == {}
    # The key is still free for a real submission, then bound to it; a test-only one after it
    # is not "another request".
    real = SubmitRequest.model_validate({"job": job, "script": "#!/bin/sh\n"})
    stored = jobs.submit(ALICE, real, key="k")
    assert isinstance(stored, Submitted) and not stored.replayed
    assert type(jobs.submit(ALICE, test_only, key="k")).__name__ == "WouldSubmit" and len(store.jobs) == 1
