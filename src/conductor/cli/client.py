"""The user commands' HTTP client: JSON over a plain socket, nothing heavier.

`conductor sbatch` must answer within a few tens of milliseconds. Importing httpx (or pydantic)
alone costs more than that, and even the stdlib's http.client drags in the email package and ssl
(~20 ms), so this module speaks the little HTTP/1.1 it needs over a socket itself: one request
at a time on a keep-alive connection, Content-Length or chunked bodies. ssl is imported only for
an https:// URL.
"""

from __future__ import annotations

import _socket  # the C module: socket.py's enums and selectors cost ~5 ms at import
import json
import os

from conductor.errors import ConductorError

# typing is imported only by type checkers: at run time it costs the CLI ~4 ms.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

DEFAULT_URL = "http://127.0.0.1:8000"
# Names of this host whose listeners cli/listener.py can tell apart.
_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
TIMEOUT_SECONDS = 60.0
# A submission that gets no answer (no connection, or one lost before the whole answer came) is
# sent again with the same Idempotency-Key: this many attempts in all, the first retry after
# RETRY_DELAY seconds, each next after twice as long (and up to a half more, at random).
SUBMIT_ATTEMPTS = 4
RETRY_DELAY = 0.25


class ApiError(ConductorError):
    """The server answered with an error status; `message` is its explanation, made readable."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class ConnectionFailed(ConductorError):
    """No server answered at the configured URL."""


class Unanswered(ConnectionFailed):
    """The request got no answer: no connection could be made, or it was lost before the whole
    answer came. The server may have done what was asked all the same; only a request it would
    answer again without doing it twice (a submission with its Idempotency-Key) is sent again.
    `reason`: what happened, in a few words."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


def new_key() -> str:
    """A random UUID (version 4), as str(uuid.uuid4()) makes it: importing uuid would cost the
    command about 6 ms (it imports platform)."""
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40  # version 4
    raw[8] = (raw[8] & 0x3F) | 0x80  # the RFC 4122 variant
    text = raw.hex()
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def base_url() -> str:
    """CONDUCTOR_URL, else the URL in the caller's profile (cli/profile.py), else DEFAULT_URL."""
    explicit = os.environ.get("CONDUCTOR_URL", "").strip()
    if explicit:
        return explicit
    return _profile_url() or DEFAULT_URL


def _profile_url() -> str | None:
    from conductor.cli.profile import PROFILE_URL, profile_dir

    return _read_own_file(profile_dir(), PROFILE_URL)


def read_token(url: str | None = None) -> str | None:
    """The token to send to `url` (default: base_url()): CONDUCTOR_TOKEN, else the caller's own
    token file: `$CONDUCTOR_HOME/token` when CONDUCTOR_HOME is set, else the profile's token when
    `url` is the profile's URL (cli/profile.py), else `./.conductor/token` (the default home of
    `conductor up`), else `~/.conductor/token`.

    A token file decides who the CLI acts as, and whoever reads a job's output or environment
    could be the one who planted it: a `.conductor/token` in a shared directory would make the
    caller submit as its author. So a file is read only when it is the caller's: a regular file
    owned by the caller, in a directory owned by the caller or root, neither writable by group or
    others, no symbolic link followed at the file. Anything else is skipped with a warning.
    """
    token = os.environ.get("CONDUCTOR_TOKEN", "").strip()
    if token:
        return token
    configured = os.environ.get("CONDUCTOR_HOME", "").strip()
    if configured:
        return _read_own_file(configured, "token")
    from conductor.cli.profile import PROFILE_TOKEN, profile_dir

    target = (url or base_url()).rstrip("/")
    profile = profile_dir()
    # A profile without a URL is one the user wrote by hand: its token is for whatever server
    # they name (a shim's URL, CONDUCTOR_URL).
    if _read_own_file(profile, "url", quiet=True) in (None, target):
        text = _read_own_file(profile, PROFILE_TOKEN)
        if text:
            return text
    for home in (".conductor", os.path.expanduser("~/.conductor")):
        text = _read_own_file(home, "token")
        if text:
            return text
    return None


def no_token_message(url: str) -> str:
    """The one sentence for a user without a token (another user than the one who started the
    server, typically): where to get one and where to put it."""
    from conductor.cli.profile import PROFILE_TOKEN, profile_dir

    return (
        f"no token for {url}: ask whoever runs the server for one ('conductor token create --user "
        f"{_login()}' on its host) and save it in {os.path.join(profile_dir(), PROFILE_TOKEN)} "
        "(mode 0600) or in CONDUCTOR_TOKEN"
    )


def _login() -> str:
    try:
        import pwd

        return pwd.getpwuid(os.geteuid()).pw_name
    except (ImportError, KeyError):
        return "<you>"


_WRITABLE_BY_OTHERS = 0o022
_S_IFMT, _S_IFREG, _S_IFDIR = 0o170000, 0o100000, 0o040000


def _read_own_file(home: str, name: str, *, quiet: bool = False) -> str | None:
    """The text of `home/name` if that file and directory are the caller's alone (see
    read_token); `quiet`: skip a file that is not without a warning (it was warned about)."""
    me = os.geteuid()

    def skip(home: str, why: str) -> None:
        if not quiet:
            _skip(name, os.path.join(home, name), why)

    try:
        dir_fd = os.open(home, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        info = os.fstat(dir_fd)
        if info.st_uid not in (me, 0):
            skip(home, f"its directory belongs to uid {info.st_uid}, not to you (uid {me})")
            return None
        if info.st_mode & _WRITABLE_BY_OTHERS:
            skip(home, "its directory is writable by others")
            return None
        try:
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC, dir_fd=dir_fd)
        except FileNotFoundError:
            return None
        except OSError as exc:
            skip(home, exc.strerror or "cannot be opened")
            return None
    finally:
        os.close(dir_fd)
    try:
        info = os.fstat(fd)
        if (info.st_mode & _S_IFMT) != _S_IFREG:
            skip(home, "it is not a regular file")
            return None
        if info.st_uid != me:
            skip(home, f"it belongs to uid {info.st_uid}, not to you (uid {me})")
            return None
        if info.st_mode & _WRITABLE_BY_OTHERS:
            skip(home, "it is writable by others (make it mode 0600)")
            return None
        return os.read(fd, 4096).decode("utf-8", "replace").strip() or None
    finally:
        os.close(fd)


def _skip(name: str, path: str, why: str) -> None:
    os.write(2, f"conductor: not using the {name} in {path}: {why}\n".encode())


def quote(value: str) -> str:
    """Percent-encode a query value or a path segment (as urllib.parse.quote with only ',' and
    ':' safe besides letters, digits and '_.-~', without importing it)."""
    safe = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-~,:"
    return "".join(
        # surrogateescape: a value read from the environment may hold bytes that are not UTF-8;
        # they go as they are, and match nothing.
        c if c in safe else "".join(f"%{b:02X}" for b in c.encode("utf-8", "surrogateescape")) for c in value
    )


def split_url(url: str) -> tuple[str, str, int, str]:
    """(scheme, host, port, path prefix) of an http(s) URL."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in ("http", "https"):
        raise ConnectionFailed(
            f"invalid CONDUCTOR_URL '{url}' (expected http://host:port)"
        )
    hostport, slash, path = rest.partition("/")
    host, port_text = hostport, ""
    if hostport.startswith("["):  # IPv6 literal
        host, _, tail = hostport[1:].partition("]")
        port_text = tail.lstrip(":")
    elif ":" in hostport:
        host, _, port_text = hostport.rpartition(":")
    if not host:
        raise ConnectionFailed(f"invalid CONDUCTOR_URL '{url}' (no host)")
    if port_text and not (port_text.isascii() and port_text.isdigit() and 0 < int(port_text) < 65536):
        raise ConnectionFailed(f"invalid CONDUCTOR_URL '{url}' (the port must be a number from 1 to 65535)")
    port = int(port_text) if port_text else (443 if scheme == "https" else 80)
    return scheme, host, port, ("/" + path).rstrip("/") if slash else ""


def error_text(payload: Any, fallback: str) -> str:
    """Turn a FastAPI error body ({"detail": str | [{"loc", "msg"}, ...]}) into one line."""
    if isinstance(payload, dict) and "detail" in payload:
        detail = payload["detail"]
        if isinstance(detail, str):
            return detail
        if isinstance(detail, list):
            parts = []
            for item in detail:
                if isinstance(item, dict):
                    loc = [
                        str(p) for p in item.get("loc", []) if p not in ("body", "job")
                    ]
                    msg = str(item.get("msg", item))
                    parts.append(f"{'.'.join(loc)}: {msg}" if loc else msg)
                else:
                    parts.append(str(item))
            return "; ".join(parts)
        if isinstance(detail, dict):
            return str(detail.get("message") or detail.get("msg") or json.dumps(detail))
        return str(detail)
    if isinstance(payload, dict) and "message" in payload:
        return str(payload["message"])
    return fallback


def _sleep(seconds: float) -> None:
    import time  # a built-in module: nothing to load

    time.sleep(seconds)


def _is_ipv4(host: str) -> bool:
    parts = host.split(".")
    return len(parts) == 4 and all(p.isdigit() and int(p) < 256 for p in parts)


def _page_jobs(page: dict[str, Any], url: str) -> list[dict[str, Any]]:
    """The jobs of a page of `GET /jobs`, as records: its `jobs`, or its rows (`layout=rows`:
    `fields`, then each job's values in that order); none in a page that has neither."""
    jobs, fields, rows = page.get("jobs"), page.get("fields"), page.get("rows")
    if jobs is None and fields is None and rows is None:
        return []
    if jobs is not None:
        if isinstance(jobs, list) and all(isinstance(job, dict) for job in jobs):
            return jobs
        raise ConnectionFailed(f"{url} answered a page whose jobs are not records")
    if (
        isinstance(fields, list)
        and "job_id" in fields
        and isinstance(rows, list)
        and all(isinstance(row, list) and len(row) == len(fields) for row in rows)
    ):
        return [dict(zip(fields, row, strict=True)) for row in rows]
    raise ConnectionFailed(f"{url} answered a page of rows that does not match its fields")


class _Closed(ConductorError):
    """The server closed a kept-alive connection before answering; worth one retry."""


# orjson decodes a page of 1,000 jobs (300 KB) in 40% of json's time, but importing it costs
# the command about 8 ms, more than it saves on one such page: bodies this large are decoded by
# orjson from the second on (a listing of many pages), by json before.
_LARGE_BODY = 128 * 1024
# How the server begins a page of chosen fields: the next page's `after` first (Client.list_jobs).
_NEXT_AFTER = b'{"next_after":'
# How a server refuses a `fields` name it does not know, listing those it does: a server older
# than this client knows fewer (GET /jobs?fields=).
_UNKNOWN_FIELD = b" is not a field of a job record (one of: "


def known_fields(status: int, raw: bytes, fields: str) -> str | None:
    """`fields` without the names a server refused as no field of its job records (its 400
    lists those it has), or None: the answer is no such refusal, or nothing would change."""
    start = raw.find(_UNKNOWN_FIELD) if status == 400 else -1
    if start < 0:
        return None
    listed = raw[start + len(_UNKNOWN_FIELD) :]
    end = listed.find(b")")
    if end < 0:
        return None
    known = {name.strip() for name in listed[:end].decode(errors="replace").split(",")}
    asked = fields.split(",")
    kept = [name for name in asked if name in known]
    return ",".join(kept) if kept and len(kept) < len(asked) else None


def _decode(raw: bytes, fast: bool) -> Any:
    if fast:
        import orjson

        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass  # what orjson refuses and JSON allows (a lone surrogate): json decides
    return json.loads(raw)


class Client:
    """One keep-alive connection to the API; every call returns the decoded JSON body."""

    def __init__(self, url: str | None = None, token: str | None = None) -> None:
        self.url = (url or base_url()).rstrip("/")
        self._scheme, self._host, self._port, self._prefix = split_url(self.url)
        self._token = token if token is not None else read_token(self.url)
        # A server on this host the caller did not name for this run (the default address, or
        # the profile's, where `conductor up` listened and may be down now): whoever listens
        # there must be one the token may go to (cli/listener.py), checked at every connection.
        # CONDUCTOR_URL names one the caller chose, another user's server included.
        self._vet = (
            url is None
            and self._token is not None
            and not os.environ.get("CONDUCTOR_URL", "").strip()
            and self._host.lower() in _LOOPBACK
        )
        if self._token is not None and not all("!" <= c <= "~" for c in self._token):
            # It goes into a header line: a space, a line break or a byte beyond ASCII would
            # break the request (or add a header of its own).
            raise ConnectionFailed(
                "invalid token (CONDUCTOR_TOKEN or the token file): it must be printable ASCII without spaces, "
                "as `conductor token create` prints it"
            )
        self._sock: Any = None
        self._buffer = b""
        self._large_bodies = 0  # bodies of _LARGE_BODY or more decoded so far

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        self._buffer = b""

    def _connect(self) -> None:
        if self._vet:
            from conductor.cli.listener import untrusted_listener

            if (owner := untrusted_listener(self._host, self._port)) is not None:
                raise ConnectionFailed(
                    f"not sending your token to {self.url}: the program listening there is run by {owner}, "
                    "neither you, root nor a system account; if it is the server you mean, name it in CONDUCTOR_URL"
                )
        try:
            if _is_ipv4(self._host) and self._scheme == "http":
                sock: Any = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM)
                sock.settimeout(TIMEOUT_SECONDS)
                try:
                    sock.connect((self._host, self._port))
                except OSError:
                    sock.close()
                    raise
            else:
                import socket

                sock = socket.create_connection(
                    (self._host, self._port), timeout=TIMEOUT_SECONDS
                )
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise Unanswered(
                f"cannot connect to the conductor API at {self.url}: {reason}"
                " (is `conductor up` running? CONDUCTOR_URL names the server)",
                f"cannot connect: {reason}",
            ) from exc
        sock.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)
        if self._scheme == "https":
            sock = self._handshake(sock)
        self._sock = sock
        self._buffer = b""

    def _tls_hint(self) -> str:
        if self._scheme != "http":
            return ""
        return f" (if the server speaks TLS, use CONDUCTOR_URL=https://{self.url.partition('://')[2]})"

    def _handshake(self, sock: Any) -> Any:
        """TLS over `sock`; a server that does not speak it, or a certificate not trusted, is
        one line naming the URL and what to change."""
        import ssl

        try:
            return ssl.create_default_context().wrap_socket(sock, server_hostname=self._host)
        except ssl.SSLCertVerificationError as exc:
            sock.close()
            raise ConnectionFailed(
                f"the TLS certificate of {self.url} is not trusted ({exc.verify_message}); "
                "install its CA on this host, or set SSL_CERT_FILE to it"
            ) from None
        except (ssl.SSLError, OSError) as exc:
            sock.close()
            plain = "http://" + self.url.partition("://")[2]
            raise ConnectionFailed(
                f"TLS handshake with {self.url} failed ({getattr(exc, 'reason', None) or exc}): "
                f"the server seems to speak plain HTTP; use CONDUCTOR_URL={plain}"
            ) from None

    def _fill(self) -> bool:
        assert self._sock is not None
        chunk = self._sock.recv(65536)
        if not chunk:
            return False
        self._buffer += chunk
        return True

    def _readline(self) -> bytes:
        while b"\n" not in self._buffer:
            if not self._fill():
                line, self._buffer = self._buffer, b""
                return line
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line + b"\n"

    def _read(self, size: int) -> bytes:
        if len(self._buffer) < size:
            return self._read_large(size)
        data, self._buffer = self._buffer[:size], self._buffer[size:]
        return data

    def _read_large(self, size: int) -> bytes:
        """`size` bytes, more than the buffer holds: received straight into one buffer of that
        size (a page of 1,000 jobs is 300 KB; growing a bytes object chunk by chunk copied it
        over and over)."""
        assert self._sock is not None
        body = bytearray(size)
        view = memoryview(body)
        have = len(self._buffer)
        view[:have] = self._buffer
        self._buffer = b""
        while have < size:
            received = self._sock.recv_into(view[have:], size - have)
            if not received:
                break
            have += received
        view.release()
        del body[have:]
        return bytes(body)

    def _read_to_end(self) -> bytes:
        while self._fill():
            pass
        data, self._buffer = self._buffer, b""
        return data

    def _exchange(self, request: bytes) -> tuple[int, str, bytes]:
        assert self._sock is not None
        try:
            self._sock.sendall(request)
        except OSError as exc:
            raise _Closed(str(exc)) from exc
        return self._receive()

    def _receive(self) -> tuple[int, str, bytes]:
        """The next response on the connection: status, reason and body."""
        assert self._sock is not None
        try:
            status_line = self._readline()
        except OSError as exc:
            raise _Closed(str(exc)) from exc
        if not status_line:
            raise _Closed("connection closed")
        parts = status_line.decode("latin-1").split(None, 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/"):
            raise ConnectionFailed(f"{self.url} did not answer in HTTP: {status_line[:80]!r}{self._tls_hint()}")
        status = int(parts[1])
        reason = parts[2].strip() if len(parts) > 2 else ""
        headers: dict[str, str] = {}
        while True:
            line = self._readline()
            if line in (b"\r\n", b"\n", b""):
                break
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        if headers.get("transfer-encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self._readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self._readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(self._read(size))
                self._readline()
            body = b"".join(chunks)
        elif "content-length" in headers:
            body = self._read(int(headers["content-length"]))
        else:
            body = self._read_to_end()
            self.close()
        if headers.get("connection", "").lower() == "close":
            self.close()
        return status, reason, body

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        query: dict[str, Any] | None = None,
    ) -> Any:
        return self._payload(*self._roundtrip(self._encode(method, path, body, query)))

    def submit(
        self,
        body: Any,
        *,
        key: str | None = None,
        on_retry: Callable[[Unanswered, int, float], object] | None = None,
    ) -> Any:
        """POST /jobs/submit with an Idempotency-Key (`key`, else a fresh random one): when the
        request gets no answer (Unanswered: no connection, a timeout, a connection lost before
        the whole answer), it is sent again, the same request with the same key, up to
        SUBMIT_ATTEMPTS times in all with growing pauses. The server stores the job once and
        answers a retry as it answered the first, so a flaky network neither makes two jobs nor
        loses one. An answer, whatever its status, is final: an error is raised as ApiError.
        `on_retry(error, next attempt, pause)` is told before each pause."""
        request = self._encode("POST", "/jobs/submit", body, headers={"Idempotency-Key": key or new_key()})
        delay = RETRY_DELAY
        attempt = 1
        while True:
            try:
                response = self._roundtrip(request)
            except Unanswered as exc:
                if attempt >= SUBMIT_ATTEMPTS:
                    raise
                pause = delay * (1 + os.urandom(1)[0] / 510)  # up to half as long again: retries spread out
                attempt += 1
                if on_retry is not None:
                    on_retry(exc, attempt, pause)
                _sleep(pause)
                delay *= 2
                continue
            return self._payload(*response)

    def _encode(
        self,
        method: str,
        path: str,
        body: Any = None,
        query: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> bytes:
        target = self._prefix + path
        if query:
            pairs = [
                f"{quote(str(k))}={quote(str(v))}"
                for k, v in query.items()
                if v is not None and v != ""
            ]
            if pairs:
                target += "?" + "&".join(pairs)
        data = b"" if body is None else json.dumps(body).encode()
        host = self._host if ":" not in self._host else f"[{self._host}]"
        lines = [
            f"{method} {target} HTTP/1.1",
            f"Host: {host}:{self._port}",
            "Accept: application/json",
            "User-Agent: conductor-cli",
        ]
        if body is not None:
            lines.append("Content-Type: application/json")
        if body is not None or method in ("POST", "PUT", "PATCH"):
            lines.append(f"Content-Length: {len(data)}")
        if self._token:
            lines.append(f"Authorization: Bearer {self._token}")
        if headers:
            lines += [f"{name}: {value}" for name, value in headers.items()]
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + data

    def _roundtrip(self, request: bytes) -> tuple[int, str, bytes]:
        """The answer to `request`; Unanswered when none came.

        One retry at once: a kept-alive connection may have been closed by the server meanwhile.
        (A POST the server received before it closed would then be sent twice: only a
        submission, the one POST that creates, makes a second job so, and it carries an
        Idempotency-Key that makes the second a replay of the first.)"""
        for attempt in (0, 1):
            if self._sock is None:
                self._connect()
            try:
                return self._exchange(request)
            except _Closed as exc:
                self.close()
                if attempt:
                    raise Unanswered(
                        f"the conductor API at {self.url} closed the connection: {exc}{self._tls_hint()}",
                        f"the connection was closed: {exc}",
                    ) from exc
            except OSError as exc:  # a timeout too (socket.timeout is an OSError)
                self.close()
                raise Unanswered(
                    f"lost the conductor API at {self.url}: {exc or type(exc).__name__}",
                    f"the connection was lost: {exc or type(exc).__name__}",
                ) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def _payload(self, status: int, reason: str, raw: bytes) -> Any:
        """The decoded body of a response, or ApiError for an error status."""
        payload: Any = None
        if raw:
            large = len(raw) >= _LARGE_BODY
            try:
                payload = _decode(raw, large and self._large_bodies > 0)
            except ValueError:
                payload = raw.decode(errors="replace").strip()
            self._large_bodies += large
        if status == 401 and not self._token:
            raise ApiError(status, no_token_message(self.url))
        if status >= 400:
            fallback = payload if isinstance(payload, str) and payload else reason
            raise ApiError(status, error_text(payload, f"HTTP {status} {fallback}"))
        return payload

    def get(self, path: str, **query: Any) -> Any:
        return self.request("GET", path, query=query)

    def post(self, path: str, body: Any = None) -> Any:
        return self.request("POST", path, body=body)

    def patch(self, path: str, body: Any) -> Any:
        return self.request("PATCH", path, body=body)

    def list_jobs(
        self, *, each_page: Callable[[list[dict[str, Any]]], object] | None = None, **filters: Any
    ) -> list[dict[str, Any]]:
        """All jobs matching the filters, in pages of the server's own size, each following
        the last (`next_after`; a server without it is paged by offset).

        `each_page` is called with each page's jobs as soon as they are decoded: what it does
        runs while the server makes the next page (squeue makes the page's lines there).

        When a page's body starts with its `next_after` (as the server writes a page of chosen
        fields), the next page is asked for before this one is decoded: the server reads and
        writes it on one core while this process decodes on the other (squeue's 11 pages of
        1,000 jobs each waited for the other's work before).

        Every page is asked for with `total=false`: following `next_after` needs no count (on
        PostgreSQL counting the live jobs cost each page of them more than reading them). A
        server without `next_after` does not know the parameter either, and counts: its
        pages are followed by offset up to that count."""
        jobs: list[dict[str, Any]] = []
        after: int | None = None
        response = self._roundtrip(self._encode("GET", "/jobs", query=dict(filters, offset=0, total="false")))
        if isinstance(filters.get("fields"), str):
            # A server older than this client lacks some fields: those it has are asked again
            # (a record without a field reads as without a value: views show what they can).
            kept = known_fields(response[0], response[2], filters["fields"])
            if kept is not None:
                filters = dict(filters, fields=kept)
                response = self._roundtrip(self._encode("GET", "/jobs", query=dict(filters, offset=0, total="false")))
        while True:
            ahead = self._ask_ahead(response, filters)
            try:
                page = self._payload(*response)
                batch = _page_jobs(page, self.url) if isinstance(page, dict) else None
                if each_page is not None and batch:
                    each_page(batch)
            except BaseException:
                if ahead is not None:
                    self.close()  # an answer is on its way: the connection cannot serve another
                raise
            if not batch:  # not a page (None), or an empty one
                return self._settle(ahead, jobs)
            jobs.extend(batch)
            if "next_after" in page:
                after = page["next_after"]
                if after is None:
                    return self._settle(ahead, jobs)
            elif len(jobs) >= (page.get("total") or 0):
                return self._settle(ahead, jobs)
            if ahead is not None and ahead[0] == after:
                try:
                    response = self._receive()
                except (_Closed, OSError):
                    self.close()
                    response = self._roundtrip(ahead[1])  # a GET: asking again is harmless
            else:
                self._settle(ahead, jobs)
                query = dict(filters, after=after, total="false") if after is not None else dict(filters, offset=len(jobs))
                response = self._roundtrip(self._encode("GET", "/jobs", query=query))

    def _ask_ahead(self, response: tuple[int, str, bytes], filters: dict[str, Any]) -> tuple[int, bytes] | None:
        """Send the request for the page after `response` now, if its body names it first:
        (its `after`, the request), or None."""
        status, _, raw = response
        if status != 200 or self._sock is None or not raw.startswith(_NEXT_AFTER):
            return None
        end = raw.find(b",", len(_NEXT_AFTER), len(_NEXT_AFTER) + 24)
        digits = raw[len(_NEXT_AFTER) : end].strip() if end > 0 else b""
        if not digits.isdigit():
            return None  # null: the last page
        after = int(digits)
        request = self._encode("GET", "/jobs", query=dict(filters, after=after, total="false"))
        try:
            self._sock.sendall(request)
        except OSError:
            self.close()
            return None
        return after, request

    def _settle(self, ahead: tuple[int, bytes] | None, jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """`jobs`, with no answer left in flight (a page asked for ahead that is not needed)."""
        if ahead is not None:
            self.close()
        return jobs
