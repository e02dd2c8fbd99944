"""The CLI's submission over a flaky network (Client.submit, used by sbatch): each submission
carries a fresh Idempotency-Key, and one that gets no answer (no connection, a timeout, a
connection lost before the whole answer) is sent again, the same request with the same key, a
few times with growing pauses. An answer, whatever its status, is final.

Against a tiny scripted HTTP server on a socket: each connection does what the test says."""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator

import pytest
from support import read_http_message

from conductor.cli import client as client_module
from conductor.cli.client import SUBMIT_ATTEMPTS, ApiError, Client, Unanswered, new_key


def _http(status: bytes, body: bytes) -> bytes:
    return b"HTTP/1.1 %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (status, len(body), body)


CREATED = _http(b"201 Created", b'{"job_id": "7"}')
UNAVAILABLE = _http(b"503 Service Unavailable", b'{"detail": "the database is unavailable; try again"}')


def _key_of(request: bytes) -> str:
    for line in request.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.lower() == b"idempotency-key":
            return value.strip().decode()
    raise AssertionError(f"no Idempotency-Key in {request[:300]!r}")


Step = Callable[[socket.socket], None]


def cut(conn: socket.socket) -> None:
    """The request reached the server (which may have stored the job); no answer comes back."""
    conn.close()


def stall(conn: socket.socket) -> None:
    """No answer until the client gives up."""
    conn.recv(1)  # returns when the client closes its end
    conn.close()


def answer(response: bytes) -> Step:
    def step(conn: socket.socket) -> None:
        conn.sendall(response)
        conn.close()

    return step


@pytest.fixture
def server() -> Iterator[tuple[str, list[bytes], list[Step]]]:
    """(its URL, the requests it received, what to do with each connection in turn)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    requests: list[bytes] = []
    steps: list[Step] = []

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            requests.append(read_http_message(conn))
            steps.pop(0)(conn)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}", requests, steps
    listener.close()


@pytest.fixture(autouse=True)
def quick(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(client_module, "RETRY_DELAY", 0.01)


BODY = {"job": {"name": "x"}, "script": "#!/bin/sh\n"}


def test_a_cut_connection_is_retried_with_the_same_key(server: tuple[str, list[bytes], list[Step]]) -> None:
    url, requests, steps = server
    # The first two cuts are the connection's own one retry; the third is the next attempt's.
    steps += [cut, cut, cut, answer(CREATED)]
    retries: list[tuple[int, float]] = []
    client = Client(url, token="tok")
    try:
        assert client.submit(BODY, on_retry=lambda error, attempt, pause: retries.append((attempt, pause))) == {"job_id": "7"}
    finally:
        client.close()
    assert len(requests) == 4 and len({_key_of(r) for r in requests}) == 1
    assert {r.split(b"\r\n\r\n", 1)[1] for r in requests} == {b'{"job": {"name": "x"}, "script": "#!/bin/sh\\n"}'}
    assert [attempt for attempt, _ in retries] == [2]


def test_a_timeout_is_retried_with_the_same_key(
    server: tuple[str, list[bytes], list[Step]], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, requests, steps = server
    monkeypatch.setattr(client_module, "TIMEOUT_SECONDS", 0.3)
    steps += [stall, stall, answer(CREATED)]
    client = Client(url, token="tok")
    try:
        assert client.submit(BODY, key="mine") == {"job_id": "7"}
    finally:
        client.close()
    assert [_key_of(r) for r in requests] == ["mine"] * 3


def test_an_error_answer_is_final(server: tuple[str, list[bytes], list[Step]]) -> None:
    url, requests, steps = server
    steps += [answer(UNAVAILABLE), answer(CREATED)]
    client = Client(url, token="tok")
    try:
        with pytest.raises(ApiError) as refused:
            client.submit(BODY)
    finally:
        client.close()
    assert refused.value.status == 503 and len(requests) == 1


def test_no_server_is_tried_a_few_times_then_said() -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    retries: list[int] = []
    started = time.monotonic()
    client = Client(f"http://127.0.0.1:{port}", token="tok")
    with pytest.raises(Unanswered, match="cannot connect"):
        client.submit(BODY, on_retry=lambda error, attempt, pause: retries.append(attempt))
    assert retries == list(range(2, SUBMIT_ATTEMPTS + 1))
    assert time.monotonic() - started < 5


def test_each_submission_gets_a_fresh_uuid4() -> None:
    keys = {new_key() for _ in range(1000)}
    assert len(keys) == 1000
    for key in list(keys)[:50]:
        assert str(uuid.UUID(key)) == key and uuid.UUID(key).version == 4
