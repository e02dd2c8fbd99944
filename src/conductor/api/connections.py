"""HTTP connections: a deadline for every connection that owes a request, and a bound on how
many are open at once.

uvicorn closes a keep-alive connection left idle after a response, but nothing else: a client
that connects and sends half a request line, or headers announcing a body it never sends, is
held for ever, and enough of them use up the process's descriptors, after which nobody is
answered (not even `GET /health`). Its `limit_concurrency` does not help: it counts such
connections but answers 503 to whoever completes a request, the attacker never does.

Here a connection is either *waiting* (for a request, between requests, or for the rest of
a body) or *busy* (a complete request in the application). A waiting connection has a
deadline: `request_timeout` after the first byte of a request (or after connecting) for the
headers and the first bytes of the body, then `request_timeout` after each later piece of the
body; `keep_alive_timeout` after a response when it is idle. A busy connection has none: the
application's own time is not the client's fault.

Except where the client stops reading its answer. A response the client does not read fills
the socket's buffers, then the transport's, and the application waits to send more (asyncio
pauses its writing): such a connection is *stalled*, and it has `request_timeout` to read
something (writing resumes) before it is aborted. Without this, anyone could open enough
listings of many jobs, never read them, and hold every connection for as long as they liked.

Beyond `max_connections`, a new connection closes the oldest waiting one (the longest idle or
the slowest to send its request), or else the oldest stalled one, so a flood of connections
that never finish a request, or never read an answer, cycles through the bound while clients
that behave are served. Only when every connection is busy is the newcomer refused (503, then
closed).

Cost: one timer per process, a sweep over the waiting connections every quarter of the
shortest timeout, which also refreshes a coarse clock; per request a few attribute writes and
two O(1) operations on an ordered dict, no timers and no clock reads: about a microsecond,
against half a millisecond for a whole submission.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import resource
import socket
import struct
from collections import OrderedDict
from typing import Any, ClassVar

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger("conductor.connections")

# Descriptors kept for the process's own use beyond its connections: database connections,
# SQLite's files, the worker's launcher and job status files in `conductor up`, logs.
OWN_DESCRIPTORS = 512

_BUSY_BODY = b'{"detail": "too many connections: every one is busy (CONDUCTOR_MAX_CONNECTIONS)"}'
REFUSAL = (
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n"
    b"content-length: " + str(len(_BUSY_BODY)).encode() + b"\r\nconnection: close\r\n\r\n" + _BUSY_BODY
)


_RESET = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 seconds: close() resets the connection


class ConnectionGuard:
    """The live connections of one server, their deadlines and the bound on their number."""

    def __init__(self, *, max_connections: int, request_timeout: float, keep_alive_timeout: float) -> None:
        self.max_connections = max_connections
        self.request_timeout = request_timeout
        self.keep_alive_timeout = keep_alive_timeout
        self.tick = min(max(min(request_timeout, keep_alive_timeout) / 4, 0.05), 1.0)
        self.live: set[GuardedHttpToolsProtocol] = set()
        # Oldest first: the order in which connections began to wait.
        self.waiting: OrderedDict[GuardedHttpToolsProtocol, None] = OrderedDict()
        # Busy ones whose client does not read the answer, oldest first, each with its deadline.
        self.stalled: OrderedDict[GuardedHttpToolsProtocol, float] = OrderedDict()
        # A clock read once per sweep: deadlines are coarse by a tick, and requests read no clock.
        self.now = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self.evicted = 0
        self.refused = 0

    def admit(self, conn: GuardedHttpToolsProtocol) -> bool:
        """Count a new connection in; False when it must be refused (every other one is busy)."""
        if self._timer is None:
            self.now = conn.loop.time()
            self._timer = conn.loop.call_later(self.tick, self._sweep, conn.loop)
        if len(self.live) >= self.max_connections:
            if not self.waiting and not self.stalled:
                self.refused += 1
                return False
            oldest = next(iter(self.waiting or self.stalled))
            self.evicted += 1
            if self.evicted in (1, 1000) or self.evicted % 100_000 == 0:
                log.warning(
                    "%d connections open (CONDUCTOR_MAX_CONNECTIONS): closing the oldest waiting ones "
                    "for new ones (%d so far)",
                    len(self.live),
                    self.evicted,
                )
            self.close(oldest)
        self.live.add(conn)
        conn.deadline = self.now + self.request_timeout
        self.waiting[conn] = None
        return True

    def close(self, conn: GuardedHttpToolsProtocol) -> None:
        stalled = conn in self.stalled
        self.forget(conn)
        if stalled:
            # Closing would wait for the unread answer to be sent: it never would be. A reset
            # (linger 0) rather than a close: the kernel would otherwise keep the socket, and
            # megabytes of its buffers, trying to deliver them.
            with contextlib.suppress(OSError, AttributeError):
                conn.transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET)
            conn.transport.abort()
        elif not conn.transport.is_closing():
            conn.transport.close()

    def forget(self, conn: GuardedHttpToolsProtocol) -> None:
        self.live.discard(conn)
        self.waiting.pop(conn, None)
        self.stalled.pop(conn, None)

    def _sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        now = self.now = loop.time()
        for conn in [c for c in self.waiting if c.deadline <= now]:
            self.close(conn)
        for conn in [c for c, deadline in self.stalled.items() if deadline <= now]:
            self.close(conn)
        self._timer = loop.call_later(self.tick, self._sweep, loop) if self.live else None


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, with the guard's deadlines and bound (module docstring)."""

    guard: ClassVar[ConnectionGuard]
    deadline: float = math.inf
    in_message: bool = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if not self.guard.admit(self):
            transport.write(REFUSAL)
            transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.guard.forget(self)
        super().connection_lost(exc)

    def pause_writing(self) -> None:
        super().pause_writing()
        if self in self.guard.live:
            self.guard.stalled[self] = self.guard.now + self.guard.request_timeout

    def resume_writing(self) -> None:
        super().resume_writing()
        self.guard.stalled.pop(self, None)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.in_message = True
        self.deadline = self.guard.now + self.guard.request_timeout

    def on_body(self, body: bytes) -> None:
        super().on_body(body)
        if not self.cycle.response_complete:  # a body still wanted: it may not stall
            self.deadline = self.guard.now + self.guard.request_timeout

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self.in_message = False
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            self.guard.waiting.pop(self, None)  # busy: the application has the whole request

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.transport.is_closing() or self not in self.guard.live:
            return
        guard = self.guard
        cycle = self.cycle
        if cycle.response_complete:
            # Nothing queued behind this response: idle, unless the next request has begun
            # (its deadline already runs).
            if not self.in_message:
                self.deadline = guard.now + guard.keep_alive_timeout
        elif cycle.more_body:
            # A pipelined request whose body we stopped reading while the one before ran:
            # its client was not stalling, so its time starts now.
            self.deadline = guard.now + guard.request_timeout
        else:
            return  # a pipelined request, whole, now in the application: busy
        guard.waiting[self] = None


def protocol_class(guard: ConnectionGuard) -> type[GuardedHttpToolsProtocol]:
    """The protocol class uvicorn is given (Config(http=...)): one guard per server."""
    return type("ConnectionGuardedProtocol", (GuardedHttpToolsProtocol,), {"guard": guard})


def fit_descriptor_limit(max_connections: int) -> int:
    """Raise the soft RLIMIT_NOFILE as far as `max_connections` needs (never beyond the hard
    limit); the bound of connections that fits the limit then in force.

    Only as far as needed, not to the hard limit: the worker's jobs in `conductor up` inherit
    the limit, and programs that close every possible descriptor or use select() suffer
    from a huge one.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = max_connections + OWN_DESCRIPTORS
    if soft != resource.RLIM_INFINITY and soft < wanted:
        raised = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (raised, hard))
            soft = raised
        except (ValueError, OSError) as exc:
            log.warning("cannot raise the descriptor limit from %d to %d: %s", soft, raised, exc)
    if soft == resource.RLIM_INFINITY or soft >= wanted:
        return max_connections
    fitting = max(soft - OWN_DESCRIPTORS, soft // 2, 1)
    log.warning(
        "the descriptor limit (%d, hard %s) fits %d connections, fewer than CONDUCTOR_MAX_CONNECTIONS=%d: "
        "the bound is %d (raise `ulimit -n` or LimitNOFILE= to allow more)",
        soft,
        hard,
        fitting,
        max_connections,
        fitting,
    )
    return fitting


def uvicorn_options(settings: Any) -> dict[str, Any]:
    """uvicorn.Config options that install the guard as `settings` say, fitting the process's
    descriptor limit (raised when needed, see fit_descriptor_limit)."""
    guard = ConnectionGuard(
        max_connections=fit_descriptor_limit(settings.max_connections),
        request_timeout=settings.request_timeout,
        keep_alive_timeout=settings.keep_alive_timeout,
    )
    return {
        "http": protocol_class(guard),
        # The API has no WebSocket route: an upgrade would leave the guard's protocol behind.
        "ws": "none",
        # uvicorn's own idle timer, armed after each response, agrees with the guard's.
        "timeout_keep_alive": settings.keep_alive_timeout,
    }
