"""The request body limit, as plain ASGI middleware.

A Content-Length over the limit is refused before a byte of the body is read. A body without
Content-Length (chunked transfer encoding) is read up to the limit and refused as soon as it
goes over, so no client can make the server buffer more than `max_bytes`, whatever it declares.
"""

from __future__ import annotations

import json
import types
import typing
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastapi import Request

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def too_large_detail(max_bytes: int, size: int | None = None) -> str:
    said = f"is {size} bytes" if size is not None else "is larger than that"
    return f"request body {said}; the limit is {max_bytes} bytes (CONDUCTOR_MAX_BODY_BYTES)"


class BodyLimit:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length: bytes | None = None
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                length = value
                break
        if length is not None:
            text = length.decode("latin-1").strip()
            if not (text.isascii() and text.isdigit()):
                await _reply(send, 400, "Content-Length: must be a number")
                return
            if int(text) > self.max_bytes:
                await _reply(send, 413, too_large_detail(self.max_bytes, int(text)))
                return
            await self.app(scope, receive, send)
            return
        # No Content-Length: read what comes, up to the limit, then hand it on in one piece.
        chunks: list[bytes] = []
        total = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                await self.app(scope, _replay([message], receive), send)
                return
            body = message.get("body", b"")
            total += len(body)
            if total > self.max_bytes:
                await _reply(send, 413, too_large_detail(self.max_bytes))
                return
            chunks.append(body)
            if not message.get("more_body", False):
                break
        whole: Message = {"type": "http.request", "body": b"".join(chunks), "more_body": False}
        await self.app(scope, _replay([whole], receive), send)


def _replay(messages: list[Message], receive: Receive) -> Receive:
    pending = list(messages)

    async def replay() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replay


async def _reply(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def reject_repeated_query_parameters(request: Request) -> None:
    """422 when a query parameter the route declares as one value is given more than once.

    The framework would silently keep the last one, so `?state=PENDING&state=RUNNING` would
    answer for RUNNING alone; refusing says what happened. An app-wide dependency (after
    authentication), so it covers every route; parameters declared as lists are left alone.
    """
    from fastapi.exceptions import RequestValidationError

    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    if dependant is None or not request.query_params:
        return
    singles = {param.alias for param in _query_params(dependant) if not _is_sequence(param)}
    for name in singles:
        if len(request.query_params.getlist(name)) > 1:
            raise RequestValidationError(
                [{"loc": ("query", name), "msg": "given more than once; give it once", "type": "value_error"}]
            )


def _query_params(dependant: Any) -> list[Any]:
    found = list(getattr(dependant, "query_params", []))
    for sub in getattr(dependant, "dependencies", []):
        found.extend(_query_params(sub))
    return found


_SEQUENCES = (list, tuple, set, frozenset)


def _is_sequence(param: Any) -> bool:
    """Whether a query parameter is declared as a list (then it may be given many times)."""
    return _sequence_annotation(param.field_info.annotation)


def _sequence_annotation(annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_sequence_annotation(arg) for arg in typing.get_args(annotation))
    return origin in _SEQUENCES or annotation in _SEQUENCES
