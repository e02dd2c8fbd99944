"""Pages of many jobs go through orjson on both ends (api/job_records.py, cli/client.py), with
the standard library's json for what orjson refuses: nothing may read or write differently."""

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

from conductor.api.job_records import job_page
from conductor.cli.client import _LARGE_BODY, Client
from conductor.domain.job import Job


def _page(first: int, count: int, next_after: int | None, name: str = "x" * 200) -> dict[str, Any]:
    jobs = [{"job_id": first + n, "name": name, "state": "PENDING", "priority": 2**63 - 1} for n in range(count)]
    return {"jobs": jobs, "total": 3 * count, "next_after": next_after}


# Three large pages; the third holds text orjson refuses (a lone surrogate, escaped).
PAGES = [_page(1, 1000, 1000), _page(1001, 1000, 2000), _page(2001, 1000, None, name="bad \ud800 " + "x" * 200)]


@pytest.fixture(params=["http", "https"])
def server(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A server of PAGES, over plain HTTP and over TLS (large bodies are received straight into
    one buffer, through either socket)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            after = int(parse_qs(urlparse(self.path).query).get("after", ["0"])[0])
            body = json.dumps(PAGES[after // 1000]).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

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
    yield f"{request.param}://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_a_listing_of_large_pages_reads_as_json_reads_it(server: str) -> None:
    assert all(len(json.dumps(page)) >= _LARGE_BODY for page in PAGES)
    client = Client(server, token="t")
    try:
        jobs = client.list_jobs(state="PENDING")
    finally:
        client.close()
    assert jobs == [job for page in PAGES for job in page["jobs"]]
    assert jobs[-1]["name"] == "bad \ud800 " + "x" * 200
    assert client._large_bodies == 3


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
