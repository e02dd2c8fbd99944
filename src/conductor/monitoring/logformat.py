"""How the server's log lines look: plain text or JSON lines (CONDUCTOR_LOG_FORMAT), and the
filter that keeps secrets out of every line whatever its source.

The code logs no token on purpose; the filter is the second line of defence against a
library, an exception's text or a driver's message quoting one (an API token, a database
URL's password, a libpq `password=`).
"""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime
from typing import Any

# What conductor.services.tokens makes: the prefix and 43 URL-safe characters.
_TOKEN = re.compile(r"\bcond_[A-Za-z0-9_-]{8,}")
_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^:/@\s]*:)[^@\s]+@")
_CONNINFO_PASSWORD = re.compile(r"\bpassword\s*=\s*('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)
_BEARER = re.compile(r"(Bearer\s+)\S+", re.IGNORECASE)

# Attributes a record carries that are structure, not text: the JSON line keeps them as fields.
_FIELDS = ("job_id", "user", "from_state", "state", "node", "reason", "event_time")


def redact(text: str) -> str:
    text = _TOKEN.sub("cond_***", text)
    text = _URL_PASSWORD.sub(lambda m: m.group("head") + "***@", text)
    text = _CONNINFO_PASSWORD.sub("password=***", text)
    return _BEARER.sub(r"\1***", text)


class RedactSecrets(logging.Filter):
    """Rewrites a record's message (arguments merged in) and exception text without secrets."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, and a job transition's fields."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in _FIELDS:
            if hasattr(record, name):
                line[name] = getattr(record, name)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line["exception"] = redact(record.exc_text)
        return json.dumps(line, default=str)


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def formatter(kind: str) -> logging.Formatter:
    return JsonFormatter() if kind == "json" else logging.Formatter(TEXT_FORMAT)


def install(handler: logging.Handler, kind: str) -> None:
    """Give `handler` the format `kind` ("text" or "json") and the secrets filter."""
    handler.setFormatter(formatter(kind))
    if not any(isinstance(f, RedactSecrets) for f in handler.filters):
        handler.addFilter(RedactSecrets())
