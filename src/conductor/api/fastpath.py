"""A fast path for the hottest route, `POST /jobs/submit`, as plain ASGI in front of FastAPI.

Why: a submission's own work (validation, one transaction) costs about 0.3 ms of CPU, but the
framework's per-request machinery around it (dependency solving for authentication and
query checks, body and response handling through several layers) cost twice that again, and
everything in one process shares one GIL. The fast path takes only the ordinary case: a valid
bearer token, a JSON body that validates, no query string. It runs the same submission
function with the same models and writes the bytes FastAPI would have written.

On SQLite, where submissions run on the event loop, the plain jobs that arrive in one turn of
the loop are stored together, in one transaction (JobService.submit_many): each in a savepoint
of its own, each answered alone, the scheduler woken once they are committed. A commit writes
every page an insert touched to the WAL, and jobs of a batch share their pages: REST
submissions alone went from 2,640-3,029/s to 3,002-3,328/s on a 2-core machine.

A valid `Idempotency-Key` header (services/idempotency.py) is taken here too: it is found in the
one scan of the headers the token needs already, so a request without it pays one comparison a
header. A replay is answered here with `Idempotent-Replayed: true`; a key that is not valid, or
a header given twice, is handed on, for FastAPI to refuse with a 400 naming the header.

Everything else (no or bad token, slurmrestd headers, a body that does not parse or validate,
a refused submission) is handed, with the body it already read, to the FastAPI application
unchanged, which answers exactly as it always did. A refusal can be decided again there at no
risk: the services refuse only before anything is stored. Any other failure is never handed
on: the job may have been stored already, and a second try would store it twice.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import math
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, Protocol

from pydantic import ValidationError
from starlette.responses import JSONResponse, Response

from conductor.api import models
from conductor.api.auth import lookup
from conductor.api.limits import ASGIApp, Message, Receive, Scope, Send, _replay
from conductor.domain.states import Reason
from conductor.errors import Refusal, StoreUnavailable
from conductor.scheduler.limits import LIMIT_REASONS
from conductor.services.idempotency import key_from_bytes
from conductor.services.jobs import Submitted, WouldSubmit
from conductor.services.principal import Principal

PATH = "/jobs/submit"
log = logging.getLogger("conductor.api")


class Submitter(Protocol):
    """The submit use case (conductor.services.jobs.JobService)."""

    def submit(
        self,
        principal: Principal,
        request: models.SubmitRequest,
        *,
        client_host: str | None = None,
        key: str | None = None,
    ) -> Submitted | WouldSubmit: ...

    def submit_many(
        self,
        submissions: Sequence[tuple[Principal, models.SubmitRequest, str | None]],
        keys: Sequence[str | None] | None = None,
    ) -> list[Submitted | WouldSubmit | Exception]: ...


def submit_answer(result: Submitted | WouldSubmit) -> Response | models.SubmitResponse:
    """The native answer to a submission: 201 with the job id (and an array's task ids)."""
    if isinstance(result, WouldSubmit):
        return JSONResponse(test_only_answer(result), status_code=200)
    task_ids = [str(i) for i in result.job_ids] if result.array else None
    return models.SubmitResponse(job_id=str(result.job_ids[0]), array_task_ids=task_ids)


def unavailable_answer(exc: StoreUnavailable) -> Response:
    """503: the database failed (unreachable, disk full, out of connections); try again later."""
    return JSONResponse({"detail": f"the database is unavailable ({exc}); try again"}, status_code=503)


_BLOCKED = frozenset(
    {Reason.JOB_HELD_USER.value, Reason.DEPENDENCY.value, Reason.DEPENDENCY_NEVER_SATISFIED.value, Reason.BEGIN_TIME.value}
)

_LIMITED = LIMIT_REASONS | {Reason.ARRAY_TASK_LIMIT.value}


def test_only_answer(result: WouldSubmit) -> dict[str, Any]:
    """Slurm's `--test-only` line, from the scheduler's plan: "Job N to start at TIME using C
    processors on nodes X in partition P"; nothing was stored."""
    forecast = result.forecast
    if forecast is None:
        return {"job_id": None, "message": f"Job would be accepted: {result.count} job(s), not submitted (test only)"}
    answer: dict[str, Any] = {
        "job_id": None,
        "expected_start_time": None,
        "sched_nodes": forecast.node,
        "processors": forecast.cpus,
        "partition": result.partition,
    }
    if forecast.reason in _BLOCKED:
        answer["message"] = (
            f"Job {result.job_id} would be accepted; it would wait with reason {forecast.reason} "
            "(its hold, dependency or --begin time) before the scheduler plans its start"
        )
        return answer
    if forecast.reason in _LIMITED:
        answer["message"] = (
            f"Job {result.job_id} would be accepted; it would wait with reason {forecast.reason} (a limit on what "
            "runs at once) until running jobs that count against it end"
        )
        return answer
    if forecast.reason == Reason.REQ_NODE_NOT_AVAIL.value:
        nodes = ",".join(name for name, _ in forecast.unavailable)
        answer["message"] = (
            f"Job {result.job_id} would be accepted; it would wait with reason ReqNodeNotAvail: only nodes of its "
            f"partition that take no new job now (drained or down: {nodes}) could run it"
        )
        return answer
    if forecast.start == math.inf or forecast.node is None:
        answer["message"] = (
            f"Job {result.job_id} would be accepted, but no start can be foreseen: the resources it needs are "
            "held by jobs without a time limit, or no node of its partition is up"
        )
        return answer
    start = datetime.fromtimestamp(forecast.start)
    answer["expected_start_time"] = start.astimezone(UTC).isoformat()
    answer["message"] = (
        f"Job {result.job_id} to start at {start:%Y-%m-%dT%H:%M:%S} using {forecast.cpus} processors on nodes "
        f"{forecast.node} in partition {result.partition}"
    )
    return answer


# Threads for the submissions on a database over the network, one pool per process (threads
# start only when used). The group commit (store/groupcommit.py) batches what arrives while
# one batch is written: it needs concurrent submissions in threads of their own.
SUBMIT_THREADS = 32
_SUBMITS = ThreadPoolExecutor(SUBMIT_THREADS, thread_name_prefix="conductor-submit")


class SubmitFastPath:
    def __init__(self, app: ASGIApp, *, store: Any, jobs: Submitter, in_thread: bool) -> None:
        self.app = app
        self.store = store
        self.jobs = jobs
        # A database over the network may stall: run the submission off the event loop then,
        # in threads of its own. Not anyio's (run_in_threadpool): its hop costs the event loop
        # about 70 µs of CPU per request under load against 30 µs for a plain executor's, a
        # tenth of a whole submission on PostgreSQL.
        self.in_thread = in_thread
        # On the event loop (SQLite), the plain jobs that arrive in one turn of the loop are
        # submitted together, in one transaction (JobService.submit_many): what _flush takes.
        self._batch: list[tuple[Principal, models.SubmitRequest, str | None, str | None, asyncio.Future[Any]]] = []

    def _submit(
        self, principal: Principal, request: models.SubmitRequest, host: str | None, key: str | None
    ) -> Submitted | WouldSubmit:
        return self.jobs.submit(principal, request, client_host=host, key=key)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["path"] != PATH
            or scope["method"] != "POST"
            or scope.get("query_string")
            or scope.get("root_path")
        ):
            await self.app(scope, receive, send)
            return
        credentials = _plain_bearer(scope["headers"])
        if credentials is None:
            await self.app(scope, receive, send)
            return
        token, raw_key = credentials
        key = None
        if raw_key is not None:
            key = key_from_bytes(raw_key)
            if key is None:  # not a valid key: FastAPI refuses it, naming the header
                await self.app(scope, receive, send)
                return
        body, messages = await _read_body(receive)
        try:
            principal = lookup(self.store, token) if body is not None else None
        except StoreUnavailable as exc:
            # The token's check reads the database too: 503 naming the cause, as every route
            # answers then (outside FastAPI, nothing else would turn it into an answer).
            await unavailable_answer(exc)(scope, receive, send)
            return
        request = _request(body) if body is not None and principal is not None else None
        if request is None or principal is None:
            await self.app(scope, _replay(messages, receive), send)
            return
        client = scope.get("client")
        host = client[0] if client else None
        try:
            if self.in_thread:
                context = contextvars.copy_context()
                result = await asyncio.get_running_loop().run_in_executor(
                    _SUBMITS, context.run, self._submit, principal, request, host, key
                )
            elif request.job.array:
                result = self.jobs.submit(principal, request, client_host=host, key=key)
            else:
                result = await self._batched(principal, request, host, key)
        except Refusal:
            # Refused before anything was stored: FastAPI decides again and says why.
            await self.app(scope, _replay(messages, receive), send)
            return
        except StoreUnavailable as exc:
            # Answered here, never handed on: a second try could store the job twice.
            await unavailable_answer(exc)(scope, receive, send)
            return
        answer = submit_answer(result)
        if isinstance(answer, Response):
            await answer(scope, receive, send)
            return
        content = answer.model_dump_json(by_alias=True).encode()
        headers = [(b"content-length", str(len(content)).encode()), (b"content-type", b"application/json")]
        if isinstance(result, Submitted) and result.replayed:
            headers.append((b"idempotent-replayed", b"true"))
        await send({"type": "http.response.start", "status": 201, "headers": headers})
        await send({"type": "http.response.body", "body": content})


    def _batched(
        self, principal: Principal, request: models.SubmitRequest, host: str | None, key: str | None
    ) -> asyncio.Future[Any]:
        """The submission's outcome, once the submissions of this turn of the loop are stored."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        if not self._batch:
            # After the callbacks ready now: the requests read in the same turn join it.
            loop.call_soon(self._flush)
        self._batch.append((principal, request, host, key, future))
        return future

    def _flush(self) -> None:
        batch, self._batch = self._batch, []
        results: list[Submitted | WouldSubmit | Exception] = []
        try:
            submissions = [(principal, request, host) for principal, request, host, _, _ in batch]
            keys = [key for _, _, _, key, _ in batch]
            results = self.jobs.submit_many(submissions, keys if any(keys) else None)
        except Exception as exc:  # noqa: BLE001 - every submitter must get an answer
            results = [exc] * len(batch)
        finally:
            # Every submitter gets an answer, whatever happened: a future left unset would
            # hang its request for good.
            missing = RuntimeError("the submission got no outcome")
            for index, (_, _, _, _, future) in enumerate(batch):
                if future.done():
                    continue  # cancelled: the client went away (its job is stored all the same)
                result = results[index] if index < len(results) else missing
                if isinstance(result, Exception):
                    future.set_exception(result)
                else:
                    future.set_result(result)


def _plain_bearer(headers: list[tuple[bytes, bytes]]) -> tuple[str, bytes | None] | None:
    """The token of a lone `Authorization: Bearer` header, and the value of a lone
    `Idempotency-Key` header (None without one); None for anything else (slurmrestd's headers,
    another scheme, a JSON body sent as something else, a repeated key), which FastAPI handles."""
    token: str | None = None
    key: bytes | None = None
    json_body = False
    for name, value in headers:
        if name == b"authorization":
            scheme, _, credentials = value.decode("latin-1").partition(" ")
            if token is not None or scheme.lower() != "bearer":
                return None
            token = credentials.strip()
        elif name.startswith(b"x-slurm-"):
            return None
        elif name == b"content-type":
            json_body = value.split(b";")[0].strip().lower() == b"application/json"
        elif name == b"idempotency-key":  # ASGI servers give header names in lower case
            if key is not None:
                return None
            key = value
    return (token, key) if token and json_body else None


async def _read_body(receive: Receive) -> tuple[bytes | None, list[Message]]:
    """The whole body (None if the client left first) and the messages it came in, to replay."""
    messages: list[Message] = []
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            return None, messages
        if not message.get("more_body", False):
            break
    if len(messages) == 1:
        return messages[0].get("body", b""), messages
    return b"".join(m.get("body", b"") for m in messages), messages


def _request(body: bytes) -> models.SubmitRequest | None:
    """The body as FastAPI would see it (json.loads, then the model in Python mode), or None."""
    try:
        return models.SubmitRequest.model_validate(json.loads(body))
    except (ValueError, ValidationError, RecursionError):  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        return None
