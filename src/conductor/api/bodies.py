"""What a JSON request body may hold, checked before any route or decoder sees it.

Three kinds of body broke the server with a 500 before this layer existed, each from deep inside
a library: JSON nested a thousand deep (the standard decoder recurses and raises RecursionError),
a lone UTF-16 surrogate written as `\\ud800` (a valid JSON escape that decodes to a Python string
nothing can encode, so the failure came later, while storing it or while rendering the refusal
that quoted it), and bytes that are not UTF-8. This layer refuses each with a 400 naming the
field and the rule, for every route, the submission fast path included.

It costs the ordinary body two scans in C (a count of brackets, a search for `\\u` escapes of
surrogates); only a body that could be hostile is looked at more closely.
"""

from __future__ import annotations

import json
import re
from typing import Any

from starlette.responses import JSONResponse

from conductor.api.limits import ASGIApp, Message, Receive, Scope, Send, _replay, _reply
from conductor.errors import ConductorError

MAX_DEPTH = 64
"""Deeper than any request of ours needs (a submission is three levels deep)."""

_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKETS = re.compile(rb"[\[\]{}]")
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
MAX_DIGITS = 100
"""More digits than any count, size or time of ours can have; Python's decoder refuses over
4,300 with a message about a position, not a number."""
_LONG_NUMBER = re.compile(rb"[0-9]{%d,}" % (MAX_DIGITS + 1))


class BodyRefused(ConductorError):
    """A body this layer refuses; its text names the field and the rule."""


def check(body: bytes) -> None:
    """Raise BodyRefused if `body`, read as JSON, could not be decoded or stored safely."""
    if not body.isascii():
        try:
            body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise BodyRefused(
                f"body: not valid UTF-8 (byte 0x{body[exc.start]:02x} at offset {exc.start}); "
                "JSON bodies must be UTF-8"
            ) from None
    if body.count(b"[") + body.count(b"{") > MAX_DEPTH and _depth(body) > MAX_DEPTH:
        raise BodyRefused(f"body: JSON nested deeper than {MAX_DEPTH} levels")
    if _LONG_NUMBER.search(body) and _LONG_NUMBER.search(_STRING.sub(b'""', body)):
        raise BodyRefused(f"body: a number with more than {MAX_DIGITS} digits; no field takes one")
    if _SURROGATE_ESCAPE.search(body):
        try:
            value = json.loads(body)
        except ValueError:
            return  # not JSON at all: the route's own decoder says so, with its position
        path = _lone_surrogate(value, "")
        if path is not None:
            raise BodyRefused(
                f"{path or 'body'}: contains a lone UTF-16 surrogate (a \\uD800-\\uDFFF escape "
                "not part of a pair), which is not a character; send valid Unicode text"
            )


def _depth(body: bytes) -> int:
    """The deepest nesting of brackets outside JSON strings."""
    depth = deepest = 0
    for match in _BRACKETS.finditer(_STRING.sub(b'""', body)):
        if match.group() in (b"[", b"{"):
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def _printable(text: str) -> str:
    return text.encode("utf-8", "backslashreplace").decode("utf-8")[:40]


def _lone_surrogate(value: Any, path: str) -> str | None:
    """The dotted path of the first string (or key) holding a lone surrogate, else None."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return path
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            here = f"{path}.{_printable(key)}" if path else _printable(key)
            if _lone_surrogate(key, here) is not None:
                return here
            found = _lone_surrogate(item, here)
            if found is not None:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = _lone_surrogate(item, f"{path}[{index}]")
            if found is not None:
                return found
    return None


_FORMS = (b"application/x-www-form-urlencoded", b"multipart/form-data")
DASHBOARD_FORMS = "/ui/"  # the only routes that take forms: the dashboard's


def _is_form(headers: list[tuple[bytes, bytes]]) -> bool:
    for name, value in headers:
        if name == b"content-type":
            return value.split(b";")[0].strip().lower() in _FORMS
    return False


class BodyCheck:
    """The plain ASGI layer that applies `check` to every request body but the dashboard's web
    forms (decoded leniently there): every other route that takes a body takes JSON, and
    slurmrestd's decodes it whatever type the client declared, as Slurm's does."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] in ("GET", "HEAD", "OPTIONS")
            or (scope["path"].startswith(DASHBOARD_FORMS) and _is_form(scope["headers"]))
        ):
            await self.app(scope, receive, send)
            return
        messages: list[Message] = []
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request" or not message.get("more_body", False):
                break
        if messages[-1]["type"] == "http.request":
            body = b"".join(m.get("body", b"") for m in messages)
            try:
                check(body)
            except BodyRefused as exc:
                await _reply(send, 400, str(exc))
                return
            messages = [{"type": "http.request", "body": body, "more_body": False}]
        await self.app(scope, _replay(messages, receive), send)


class ErrorResponse(JSONResponse):
    """A JSON error answer that renders whatever its text holds: a refusal may quote the input it
    refuses, and an unencodable character there must not turn a 4xx into a 500."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "backslashreplace")
