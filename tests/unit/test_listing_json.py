"""Pages of many jobs (api/job_records.py, cli/client.py): written with orjson and read with
orjson or json, the standard library's json taking what orjson refuses; the client asks for
the next page while it decodes this one. Nothing may read or write differently."""

from __future__ import annotations

import json
import ssl
import subprocess
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast
from urllib.parse import parse_qs, urlparse

import pytest

from conductor.api.job_records import job_page, selected_fields
from conductor.cli.client import _LARGE_BODY, ApiError, Client, ConnectionFailed, known_fields
from conductor.domain.job import Job
from conductor.errors import Invalid


def _page(first: int, count: int, next_after: int | None, name: str = "x" * 200) -> dict[str, Any]:
    jobs = [{"job_id": first + n, "name": name, "state": "PENDING", "priority": 2**63 - 1} for n in range(count)]
    return {"jobs": jobs, "total": 3 * count, "next_after": next_after}


# Three large pages; the third holds text orjson refuses (a lone surrogate, escaped).
PAGES = [_page(1, 1000, 1000), _page(1001, 1000, 2000), _page(2001, 1000, None, name="bad \ud800 " + "x" * 200)]


class Pages:
    """A server of PAGES: over plain HTTP or TLS, keeping connections alive (HTTP/1.1) or not
    (HTTP/1.0), writing each page's `next_after` first (as the API does, so that the client asks
    for the next page ahead) or last. It notes when each page is asked for, and can answer one
    page with an error."""

    def __init__(self) -> None:
        self.url = ""
        self.next_after_first = True
        self.keep_alive = True
        self.failing_page: int | None = None
        self.asked: list[threading.Event] = [threading.Event() for _ in PAGES]
        self.queries: list[dict[str, list[str]]] = []  # each request's query, in order
        # Pages as rows (layout=rows); broken ones: "short" rows missing a value, "no job_id"
        # among the fields, "strings" for rows.
        self.rows: bool | str = False
        # The fields of a job record this server knows (None: any): an older server refuses
        # others as the API does.
        self.known: set[str] | None = None


@pytest.fixture(params=["http", "https"])
def pages(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Pages]:
    """Over plain HTTP and over TLS (large bodies are received straight into one buffer,
    through either socket)."""
    state = Pages()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.protocol_version = "HTTP/1.1" if state.keep_alive else "HTTP/1.0"
            query = parse_qs(urlparse(self.path).query)
            state.queries.append(query)
            index = int(query.get("after", ["0"])[0]) // 1000
            state.asked[index].set()
            page = PAGES[index]
            if state.rows:
                fields = list(page["jobs"][0])
                rows: list[Any] = [[job[name] for name in fields] for job in page["jobs"]]
                if state.rows == "short":
                    rows = [row[:-1] for row in rows]
                elif state.rows == "strings":
                    rows = ["x" * len(fields) for _ in rows]
                elif state.rows == "no job_id":
                    fields[fields.index("job_id")] = "id"
                page = {"total": page["total"], "fields": fields, "rows": rows, "next_after": page["next_after"]}
            if state.next_after_first:
                page = {"next_after": page["next_after"], **{k: v for k, v in page.items() if k != "next_after"}}
            status = 200
            asked = query.get("fields", [""])[0].split(",")
            if state.known is not None and any(name not in state.known for name in asked):
                unknown = next(name for name in asked if name not in state.known)
                with pytest.raises(Invalid) as refused:
                    selected_fields("no_such_field")  # the API's own words, for a field it lacks
                head = str(refused.value).split(" (one of: ")[0].replace("'no_such_field'", repr(unknown))
                page = {"detail": f"{head} (one of: {', '.join(sorted(state.known))})"}
                status = 400
            elif index == state.failing_page:
                status, page = 400, {"detail": "page refused"}
            body = json.dumps(page).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    Handler.protocol_version = "HTTP/1.1"
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    if request.param == "https":
        cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
             "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1"],
            check=True, capture_output=True,
        )
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # what the client trusts
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    state.url = f"{request.param}://127.0.0.1:{httpd.server_address[1]}"
    yield state
    httpd.shutdown()
    httpd.server_close()


@pytest.mark.parametrize("next_after_first", [True, False])
@pytest.mark.parametrize("keep_alive", [True, False])
def test_a_listing_of_large_pages_reads_as_json_reads_it(pages: Pages, next_after_first: bool, keep_alive: bool) -> None:
    pages.next_after_first, pages.keep_alive = next_after_first, keep_alive
    assert all(len(json.dumps(page)) >= _LARGE_BODY for page in PAGES)
    client = Client(pages.url, token="t")
    try:
        jobs = client.list_jobs(state="PENDING")
        assert jobs == [job for page in PAGES for job in page["jobs"]]
        assert jobs[-1]["name"] == "bad \ud800 " + "x" * 200
        assert client._large_bodies == 3
        # The connection is left fit for the next request.
        assert client.list_jobs(state="PENDING") == jobs
    finally:
        client.close()


def test_the_next_page_is_asked_for_before_this_one_is_decoded(pages: Pages, monkeypatch: pytest.MonkeyPatch) -> None:
    client = Client(pages.url, token="t")
    decoded = Client._payload
    ahead: list[bool] = []

    def payload(self: Client, status: int, reason: str, raw: bytes) -> Any:
        page = len(ahead)
        if page + 1 < len(PAGES):
            # Asked for already, or never while this page waits: then the wait runs out.
            ahead.append(pages.asked[page + 1].wait(5))
        else:
            ahead.append(True)
        return decoded(self, status, reason, raw)

    monkeypatch.setattr(Client, "_payload", payload)
    try:
        assert len(client.list_jobs(state="PENDING")) == 3000
    finally:
        client.close()
    assert ahead == [True, True, True]


@pytest.mark.parametrize("next_after_first", [True, False])
def test_pages_of_rows_are_read_as_records(pages: Pages, next_after_first: bool) -> None:
    pages.rows, pages.next_after_first = True, next_after_first
    client = Client(pages.url, token="t")
    try:
        assert client.list_jobs(state="PENDING") == [job for page in PAGES for job in page["jobs"]]
        # Rows that do not match their fields are the server's fault, said in one line; the
        # next page, asked for already, does not stay in the way of the next listing.
        for broken in ("short", "no job_id", "strings"):
            pages.rows = broken
            with pytest.raises(ConnectionFailed, match="a page of rows that does not match its fields"):
                client.list_jobs(state="PENDING")
            pages.rows = True
            assert len(client.list_jobs(state="PENDING")) == 3000
    finally:
        client.close()


def test_a_page_whose_jobs_are_not_records_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    from conductor.cli.client import _page_jobs

    assert _page_jobs({"jobs": [{"job_id": 1}], "total": 1}, "u") == [{"job_id": 1}]
    assert _page_jobs({"total": 0}, "u") == []
    for bad in ({"jobs": "x"}, {"jobs": [[1, 2]]}, {"fields": ["job_id"], "rows": "ab"}, {"rows": [[1]]}):
        with pytest.raises(ConnectionFailed, match="u answered a page"):
            _page_jobs(bad, "u")


def test_pages_are_asked_for_without_their_count(pages: Pages) -> None:
    client = Client(pages.url, token="t")
    try:
        assert len(client.list_jobs(state="PENDING")) == 3000
    finally:
        client.close()
    assert [query.get("total") for query in pages.queries] == [["false"]] * 3
    assert all(query["state"] == ["PENDING"] for query in pages.queries)


def test_each_page_is_handed_over_as_decoded_while_the_next_is_on_its_way(pages: Pages) -> None:
    client = Client(pages.url, token="t")
    seen: list[tuple[int, bool]] = []

    def each_page(batch: list[dict[str, Any]]) -> None:
        page = len(seen)
        # The next page was asked for before this one reached the caller.
        seen.append((len(batch), page + 1 == len(PAGES) or pages.asked[page + 1].wait(5)))
        for job in batch:
            job["seen"] = page

    try:
        jobs = client.list_jobs(state="PENDING", each_page=each_page)
        assert seen == [(1000, True)] * 3
        assert [job["seen"] for job in jobs] == [0] * 1000 + [1] * 1000 + [2] * 1000

        def failing(batch: list[dict[str, Any]]) -> None:
            raise RuntimeError("a bad page")

        # What the caller's handler raises is the caller's error, and the answer asked for ahead
        # does not stay in the way of the next request.
        with pytest.raises(RuntimeError, match="a bad page"):
            client.list_jobs(state="PENDING", each_page=failing)
        assert len(client.list_jobs(state="PENDING")) == 3000
    finally:
        client.close()


@pytest.mark.parametrize("failing_page", [1, 2])
def test_a_page_refused_mid_listing_is_the_error_and_the_client_goes_on(pages: Pages, failing_page: int) -> None:
    pages.failing_page = failing_page
    client = Client(pages.url, token="t")
    try:
        with pytest.raises(ApiError, match="page refused"):
            client.list_jobs(state="PENDING")
        pages.failing_page = None
        assert len(client.list_jobs(state="PENDING")) == 3000
    finally:
        client.close()


def test_a_server_older_than_the_client_is_asked_again_for_the_fields_it_has(pages: Pages) -> None:
    # A new squeue asks an older server for a field it does not have yet: the server's 400
    # lists those it has, and the listing goes on without the others.
    pages.known = {"job_id", "name", "state", "priority"}
    client = Client(pages.url, token="t")
    try:
        jobs = client.list_jobs(state="PENDING", fields="name,ending_state")
        assert len(jobs) == 3000 and "ending_state" not in jobs[0]
        assert [q.get("fields") for q in pages.queries] == [["name,ending_state"], ["name"], ["name"], ["name"]]
        # A refusal of every field asked for is the error.
        with pytest.raises(ApiError, match="is not a field of a job record"):
            client.list_jobs(state="PENDING", fields="ending_state")
    finally:
        client.close()


def test_only_a_refusal_of_unknown_fields_drops_fields() -> None:
    body = b'{"detail": "fields: \'x\' is not a field of a job record (one of: job_id, name, state)"}'
    assert known_fields(400, body, "name,x,state") == "name,state"
    assert known_fields(400, body, "x") is None  # nothing left to ask for
    assert known_fields(400, body, "name") is None  # nothing to drop: another refusal
    assert known_fields(200, body, "name,x") is None
    assert known_fields(400, b'{"detail": "page refused"}', "name,x") is None
    assert known_fields(400, b"is not a field of a job record (one of: name", "name,x") is None


def test_a_page_with_text_orjson_refuses_is_written_by_json() -> None:
    page = [
        cast(Job, SimpleNamespace(id=7, name="bad \ud800 name", state="PENDING")),
        cast(Job, SimpleNamespace(id=8, name="élan", state="RUNNING")),
    ]
    response = job_page(
        page, datetime.now(UTC), ("job_id", "name", "state"), lambda jobs: {}, total=2, next_after=None
    )
    assert not isinstance(response, dict)
    body = json.loads(bytes(cast(Any, response).body))
    assert body == {
        "jobs": [
            {"job_id": 7, "name": "bad \ud800 name", "state": "PENDING"},
            {"job_id": 8, "name": "élan", "state": "RUNNING"},
        ],
        "total": 2,
        "next_after": None,
    }
