"""The JSON body check that stands before every route (api/bodies.py)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conductor.api.bodies import MAX_DEPTH, BodyRefused, ErrorResponse, check


def refusal(body: bytes) -> str:
    with pytest.raises(BodyRefused) as caught:
        check(body)
    return str(caught.value)


def test_an_ordinary_submission_passes() -> None:
    body = {"job": {"name": "hé ✓ \U0001f600", "environment": {"A": "1"}, "argv": ["x", "[{"]}, "script": "#!/bin/sh\n"}
    check(json.dumps(body).encode())
    check(json.dumps(body, ensure_ascii=False).encode())


def test_nesting_is_bounded_and_brackets_in_strings_do_not_count() -> None:
    check(("[" * MAX_DEPTH + "]" * MAX_DEPTH).encode())
    assert refusal(("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1)).encode()) == (
        f"body: JSON nested deeper than {MAX_DEPTH} levels"
    )
    assert "nested deeper" in refusal(b'{"a":' * 1000 + b"1" + b"}" * 1000)
    check(json.dumps({"script": "[{" * 5000, "q": "\\\"[[[["}).encode())


def test_lone_surrogates_are_refused_naming_the_field() -> None:
    assert refusal(b'{"job": {"name": "a\\ud800"}}').startswith("job.name: contains a lone UTF-16 surrogate")
    assert refusal(b'{"job": {"environment": {"A\\uDC80": "1"}}}').startswith("job.environment.A\\udc80: ")
    assert refusal(b'{"job": {"argv": ["ok", "\\udfff"]}}').startswith("job.argv[1]: ")
    assert refusal(b'"\\ud800"').startswith("body: ")
    check(b'{"job": {"name": "\\ud83d\\ude00"}}')  # a pair is one character
    check(b'{"job": {"name": "\\\\ud800"}}')  # an escaped backslash: the text \ud800, not an escape
    check(b'{"job": "\\ud800" ')  # not JSON: left to the route's decoder


def test_bytes_that_are_not_utf8_are_refused_with_their_offset() -> None:
    assert refusal(b'{"a": "\xff"}') == "body: not valid UTF-8 (byte 0xff at offset 7); JSON bodies must be UTF-8"
    assert "not valid UTF-8" in refusal(b'{"a": "\xed\xa0\x80"}')  # a surrogate encoded as UTF-8


def test_numbers_too_long_for_any_field_are_refused() -> None:
    assert refusal(b'{"cpus": 1' + b"0" * 5000 + b"}") == "body: a number with more than 100 digits; no field takes one"
    check(json.dumps({"script": "1" * 5000}).encode())


@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(), lambda c: st.lists(c) | st.dictionaries(st.text(), c), max_leaves=30))
def test_any_encodable_document_within_the_bounds_passes(value: object) -> None:
    check(json.dumps(value).encode())


@given(st.text(st.characters(exclude_categories=())))
def test_an_error_response_renders_any_text_even_lone_surrogates(text: str) -> None:
    rendered = ErrorResponse({"detail": text}, status_code=400).body
    # Valid JSON whatever the text: a lone surrogate goes out as its \uXXXX escape, which a
    # JSON reader turns back into the same text.
    assert json.loads(rendered)["detail"] == text
