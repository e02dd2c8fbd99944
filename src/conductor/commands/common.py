"""Start-up pieces shared by `conductor up`, `server` and `worker`."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from conductor.domain.errors import SpecError
from conductor.domain.memory import parse_memory_mb


def configure_logging(level: str = "INFO", kind: str | None = None) -> None:
    """Log to stderr as text, or as JSON lines when `kind` (or CONDUCTOR_LOG_FORMAT) says
    json; every line passes the secrets filter (conductor.monitoring.logformat)."""
    from conductor.monitoring.logformat import install

    logging.basicConfig(level=getattr(logging, level.upper(), logging.INFO), stream=sys.stderr)
    kind = kind or os.environ.get("CONDUCTOR_LOG_FORMAT", "text").strip().lower()
    for handler in logging.getLogger().handlers:
        install(handler, "json" if kind == "json" else "text")


def positive_int(flag: str, limit: int = 100_000) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{flag}: '{text}' is not an integer") from None
        if not 1 <= value <= limit:
            raise argparse.ArgumentTypeError(f"{flag}: must be between 1 and {limit}, got {value}")
        return value

    return parse


def memory_arg(text: str) -> int:
    try:
        value = parse_memory_mb(text, field="--memory")
    except SpecError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if value < 1:
        raise argparse.ArgumentTypeError("--memory: must be at least 1M")
    return value


def port_arg(text: str) -> int:
    return positive_int("--port", 65535)(text)


def add_node_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--node-name", help="node name (default: NODE_NAME or the host name)")
    parser.add_argument("--cpus", type=positive_int("--cpus"), help="CPUs (default: TOTAL_CPUS or the machine's)")
    parser.add_argument("--memory", type=memory_arg, help="memory, e.g. 64G (default: the machine's)")
    parser.add_argument("--partition", help="partition(s) of the node, comma separated (default: debug)")


def default_cpus() -> int:
    return len(os.sched_getaffinity(0))


def fail(message: str) -> int:
    sys.stderr.write(f"conductor: error: {message}\n")
    return 1


# ----------------------------------------------------------------- security (issue 5)
# The HTTP server's configuration, shared by every command that serves the API (`up`,
# `server`): one place decides the address, TLS and the warnings about them.

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})


def add_tls_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ssl-certfile", help="TLS certificate (PEM); with --ssl-keyfile the API speaks HTTPS")
    parser.add_argument("--ssl-keyfile", help="TLS private key (PEM)")


def is_loopback(host: str) -> bool:
    return host in LOOPBACK_HOSTS or host.startswith("127.")


def check_tls(settings: Any) -> None:
    """ValueError unless the TLS settings are both absent or both present and files."""
    certfile, keyfile = settings.ssl_certfile, settings.ssl_keyfile
    if (certfile is None) != (keyfile is None):
        raise ValueError("--ssl-certfile and --ssl-keyfile (CONDUCTOR_SSL_CERTFILE/KEYFILE) go together")
    for path in (certfile, keyfile):
        if path is not None and not Path(path).is_file():
            raise ValueError(f"TLS file '{path}' does not exist")


def uvicorn_config(app: Any, settings: Any, **extra: Any) -> Any:
    """The uvicorn.Config serving `app` as `settings` say (host, port, TLS, connection limits:
    api/connections.py, which may raise the process's descriptor limit).

    Raises ValueError when only one of the certificate and key is given, or a file is
    missing. Listening beyond loopback without TLS works but is warned about: tokens then
    cross the network in clear text.
    """
    import uvicorn

    check_tls(settings)
    certfile, keyfile = settings.ssl_certfile, settings.ssl_keyfile
    tls = certfile is not None
    if not tls and not is_loopback(settings.host):
        logging.getLogger("conductor").warning(
            "listening on %s without TLS: tokens and job scripts cross the network in clear text; "
            "give --ssl-certfile and --ssl-keyfile, or listen on 127.0.0.1 behind a TLS proxy",
            settings.host,
        )
    from conductor.api.connections import uvicorn_options

    options: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "log_level": "warning",
        # Off: an access log line would carry query strings, and nothing here needs it.
        "access_log": False,
        # Uvicorn's own lines go through the root logger: one format (text or JSON), one filter.
        "log_config": None,
        # Timeouts for incomplete requests and idle connections, and a bound on connections.
        **uvicorn_options(settings),
        **extra,
    }
    if tls:
        options["ssl_certfile"] = str(certfile)
        options["ssl_keyfile"] = str(keyfile)
    return uvicorn.Config(app, **options)


def api_scheme(settings: Any) -> str:
    return "https" if settings.ssl_certfile is not None else "http"


def api_url(settings: Any) -> str:
    """The URL a client on this host uses to reach the API: a wildcard listening address is
    reached at loopback; an IPv6 literal is bracketed."""
    host = settings.host
    if host in ("0.0.0.0", ""):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    return f"{api_scheme(settings)}://{host}:{settings.port}"


def database_error(exc: BaseException, url: str) -> str:
    """A database failure fit for the terminal: no password, even when the driver quotes the URL."""
    from conductor.store import redact_secrets

    return redact_secrets(str(exc), url)
