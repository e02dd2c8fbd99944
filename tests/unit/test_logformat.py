"""Log lines: JSON when asked, and never a token or a password, whatever logs it."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from conductor.monitoring.logformat import install
from conductor.services.tokens import new_token


@pytest.fixture
def captured() -> Iterator[tuple[logging.Logger, io.StringIO, logging.Handler]]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger = logging.getLogger("conductor.test_logformat")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    yield logger, stream, handler
    logger.removeHandler(handler)


@pytest.mark.parametrize("kind", ["text", "json"])
def test_no_secret_reaches_a_line(kind: str, captured: tuple[logging.Logger, io.StringIO, logging.Handler]) -> None:
    logger, stream, handler = captured
    install(handler, kind)
    token = new_token()
    logger.info("token %s from a careless library", token)
    logger.warning("header Authorization: Bearer %s", "opaque-secret-value")
    logger.error("cannot connect to postgresql://conductor:hunter2@db.example.org/conductor")
    logger.error("libpq: host=db password=hunter2 dbname=x")
    try:
        raise RuntimeError(f"boom with {token}")
    except RuntimeError:
        logger.exception("failed")
    text = stream.getvalue()
    for secret in (token, token[5:], "hunter2", "opaque-secret-value"):
        assert secret not in text
    assert "cond_***" in text and "conductor:***@db.example.org" in text
    if kind == "json":
        lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
        assert len(lines) == 5
        assert lines[-1]["exception"].startswith("Traceback")


def test_json_lines_carry_a_transitions_fields(captured: tuple[logging.Logger, io.StringIO, logging.Handler]) -> None:
    logger, stream, handler = captured
    install(handler, "json")
    logger.info("job 7 PENDING -> RUNNING", extra={"job_id": 7, "user": "alice", "state": "RUNNING", "node": "n1"})
    line = json.loads(stream.getvalue())
    assert line["level"] == "INFO" and line["logger"] == "conductor.test_logformat"
    assert (line["job_id"], line["user"], line["state"], line["node"]) == (7, "alice", "RUNNING", "n1")


def test_ordinary_words_are_left_alone() -> None:
    from conductor.monitoring.logformat import redact

    text = "job 4 second_attempt_after_failure: host=db dbname=conductor user=alice"
    assert redact(text) == text
    assert redact(f"token={new_token()}") == "token=cond_***"
