"""Hostile bytes on every route: no request, whatever its bytes, gets a 5xx or an answer that
does not render.

schemathesis (test_schemathesis.py) generates requests from the schema; these strategies
generate what a schema cannot describe and what broke the server before: JSON nested far too
deep, lone UTF-16 surrogates as `\\ud800` escapes in every place a string goes, bytes that are
not UTF-8, numbers too long to convert, odd content types and headers, and path and query
values that decode to nothing printable. Every route the OpenAPI document lists gets them, the
submission fast path (POST /jobs/submit with a bearer token and a JSON body) included.
"""

from __future__ import annotations

import http.client
import json
import os
import re
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import ConductorProcess

EXAMPLES = int(os.environ.get("CONDUCTOR_FUZZ_HOSTILE_EXAMPLES", "400"))

SUBMISSION: dict[str, Any] = {
    "job": {
        "name": "fuzz",
        "current_working_directory": "/tmp",
        "time_limit": "1:00",
        "environment": {"A": "1"},
        "argv": ["x"],
        "hold": True,
    },
    "script": "#!/bin/sh\ntrue\n",
}


def _strings_of(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """The paths of every string and every key in a document (a key's path ends with a marker)."""
    found: list[tuple[Any, ...]] = []
    if isinstance(value, str):
        found.append(path)
    elif isinstance(value, dict):
        for key, item in value.items():
            found.append((*path, ("key", key)))
            found.extend(_strings_of(item, (*path, key)))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found.extend(_strings_of(item, (*path, index)))
    return found


def _with_surrogate(document: Any, path: tuple[Any, ...], surrogate: str) -> Any:
    """A copy of `document` whose string (or key) at `path` holds a lone surrogate."""
    doc = json.loads(json.dumps(document))
    *parents, last = path
    target = doc
    for step in parents:
        target = target[step]
    if isinstance(last, tuple):
        target[last[1] + surrogate] = target.pop(last[1])
    else:
        target[last] = target[last] + surrogate
    return doc


@st.composite
def surrogate_documents(draw: st.DrawFn) -> bytes:
    paths = _strings_of(SUBMISSION)
    path = draw(st.sampled_from(paths))
    surrogate = chr(draw(st.integers(0xD800, 0xDFFF)))
    # ensure_ascii writes the surrogate as its \\uXXXX escape: valid JSON text.
    return json.dumps(_with_surrogate(SUBMISSION, path, surrogate)).encode()


@st.composite
def deep_documents(draw: st.DrawFn) -> bytes:
    depth = draw(st.integers(65, 5000))
    opener, closer = draw(st.sampled_from([("[", "]"), ('{"a":', "}"), ('{"job":', "}")]))
    inner = opener * depth + "1" + closer * depth
    if draw(st.booleans()):
        inner = json.dumps(SUBMISSION)[:-1] + ', "extra": ' + inner + "}"
    return inner.encode()


@st.composite
def invalid_utf8(draw: st.DrawFn) -> bytes:
    bad = draw(
        st.sampled_from([b"\xff", b"\xfe\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\x80", b"\xe2\x82"])
    )
    text = json.dumps(SUBMISSION).encode()
    at = draw(st.integers(0, len(text)))
    return text[:at] + bad + text[at:]


@st.composite
def huge_numbers(draw: st.DrawFn) -> bytes:
    number = draw(
        st.sampled_from(["1" + "0" * 5000, "-" + "9" * 400, "1e999", "-1e999", "NaN", "Infinity", "-0", "1" * 101, "2" * 20])
    )
    field = draw(st.sampled_from(["minimum_cpus", "cpus_per_task", "memory_per_node", "nice", "priority", "time_limit"]))
    doc = json.dumps(SUBMISSION)
    return doc.replace('"name": "fuzz"', f'"name": "fuzz", "{field}": {number}').encode()


BODIES = st.one_of(
    surrogate_documents(),
    deep_documents(),
    invalid_utf8(),
    huge_numbers(),
    st.binary(max_size=200),
    st.just(b""),
    st.just(json.dumps(SUBMISSION).encode()),
)

CONTENT_TYPES = st.sampled_from(
    [
        "application/json",
        "application/json; charset=utf-8",
        "application/json; charset=latin-1",
        "application/problem+json",
        "text/plain",
        "multipart/form-data",
        "application/x-www-form-urlencoded",
        "",
        "\u00ff/\u00fe",
        None,
    ]
)

ODD_VALUES = st.sampled_from(["%ff", "%ed%a0%80", "%00", "%c0%af", "1%2F..%2F2", "9" * 400, "-1", "1_%2A", "%E2%80%AE"])


def _routes(server: ConductorProcess) -> list[tuple[str, str]]:
    document = httpx.get(server.url + "/openapi.json").json()
    return [(method.upper(), path) for path, item in document["paths"].items() for method in item if method != "parameters"]


@pytest.fixture(scope="module")
def routes(fuzz_server: ConductorProcess) -> list[tuple[str, str]]:
    found = _routes(fuzz_server)
    assert ("POST", "/jobs/submit") in found and len(found) >= 12
    return found


def _send(
    server: ConductorProcess, method: str, target: str, headers: list[tuple[str, bytes]], body: bytes
) -> tuple[int, bytes, str]:
    parts = urlsplit(server.url)
    connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=30)
    try:
        connection.putrequest(method, target, skip_accept_encoding=True)
        for name, value in headers:
            connection.putheader(name, value)
        connection.putheader("Content-Length", str(len(body)))
        connection.endheaders(body)
        response = connection.getresponse()
        return response.status, response.read(), response.getheader("content-type") or ""
    finally:
        connection.close()


def _check(
    server: ConductorProcess,
    failures: list[str],
    route: tuple[str, str],
    *,
    body: bytes = b"",
    content_type: str | None = "application/json",
    path_value: str = "1",
    query: str = "",
    auth: str = "plain",
) -> None:
    """Send one request; note it in `failures` if it got a 5xx or an answer that does not render."""
    method, template = route
    target = re.sub(r"\{[^}]+\}", path_value, template) + query
    token = server.token.encode()
    headers: list[tuple[str, bytes]] = []
    if auth == "slurm":
        headers += [("X-SLURM-USER-NAME", os.environ.get("USER", "root").encode()), ("X-SLURM-USER-TOKEN", token)]
    else:
        headers.append(("Authorization", b"Bearer " + token))
    if auth == "twice":
        headers.append(("Authorization", b"Bearer " + token))
    if auth == "latin1":
        headers.append(("X-Odd", b"\xff\xfe caf\xe9"))
    if content_type is not None:
        headers.append(("Content-Type", content_type.encode("latin-1")))
    status, answer, answer_type = _send(server, method, quote(target, safe="/?&=%_-."), headers, body)
    if status >= 500 or ("json" in answer_type and answer and not _renders(answer)):
        failures.append(f"{method} {target} [{content_type!r}, {auth}] {body[:120]!r} -> {status} {answer[:200]!r}")


def _fuzz_settings() -> Any:
    return settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        # The same cases on every run; CONDUCTOR_FUZZ_SEED=random explores new ones.
        derandomize=os.environ.get("CONDUCTOR_FUZZ_SEED") != "random",
        suppress_health_check=list(HealthCheck),
    )


def test_hostile_bodies_on_every_route_that_takes_one(
    fuzz_server: ConductorProcess, routes: list[tuple[str, str]]
) -> None:
    failures: list[str] = []
    with_body = [route for route in routes if route[0] in ("POST", "PUT", "PATCH", "DELETE")]
    assert ("POST", "/jobs/submit") in with_body and ("POST", "/slurm/v0.0.40/job/submit") in with_body

    @_fuzz_settings()
    @given(
        route=st.sampled_from(with_body),
        body=BODIES,
        content_type=st.one_of(st.just("application/json"), CONTENT_TYPES),
        auth=st.sampled_from(["plain", "slurm", "twice"]),
    )
    def run(route: tuple[str, str], body: bytes, content_type: str | None, auth: str) -> None:
        _check(fuzz_server, failures, route, body=body, content_type=content_type, auth=auth)

    run()
    # And each body kind once on each submission route, whatever the draw above chose.
    for route in (("POST", "/jobs/submit"), ("POST", "/slurm/v0.0.40/job/submit")):
        for body in (
            json.dumps(_with_surrogate(SUBMISSION, ("script",), "\ud800")).encode(),
            json.dumps(_with_surrogate(SUBMISSION, ("job", ("key", "name")), "\udc80")).encode(),
            json.dumps(_with_surrogate(SUBMISSION, ("job", "environment", ("key", "A")), "\udfff")).encode(),
            b"[" * 3000 + b"]" * 3000,
            json.dumps(SUBMISSION).replace('"name": "fuzz"', '"name": "fuzz", "nice": 1' + "0" * 5000).encode(),
            json.dumps(SUBMISSION).encode()[:-1] + b"\xff}",
        ):
            _check(fuzz_server, failures, route, body=body, auth="slurm" if "slurm" in route[1] else "plain")
    assert not failures, "\n".join(failures[:20])
    assert httpx.get(fuzz_server.url + "/health").status_code == 200


def test_hostile_paths_queries_and_headers_on_every_route(
    fuzz_server: ConductorProcess, routes: list[tuple[str, str]]
) -> None:
    failures: list[str] = []

    @_fuzz_settings()
    @given(
        route=st.sampled_from(routes),
        content_type=CONTENT_TYPES,
        path_value=st.one_of(st.just("1"), ODD_VALUES),
        query=st.one_of(st.just(""), ODD_VALUES.map(lambda v: f"?user={v}&state={v}&limit={v}&job_id={v}")),
        auth=st.sampled_from(["plain", "twice", "latin1", "slurm"]),
    )
    def run(route: tuple[str, str], content_type: str | None, path_value: str, query: str, auth: str) -> None:
        _check(fuzz_server, failures, route, content_type=content_type, path_value=path_value, query=query, auth=auth)

    run()
    assert not failures, "\n".join(failures[:20])
    assert httpx.get(fuzz_server.url + "/health").status_code == 200


def _renders(answer: bytes) -> bool:
    try:
        json.loads(answer)
    except ValueError:
        return False
    return True
