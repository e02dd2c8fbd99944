"""Control characters: refused in the text users submit, printed as '?' by the user commands."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from conductor.api.control import JobUpdate
from conductor.api.models import JobDescription
from conductor.cli.scontrol import layout
from conductor.cli.sinfo import DEFAULT_FORMAT, build_rows, render
from conductor.domain.text import control_character_problem, first_control_character, printable

CONTROLS = [chr(c) for c in [*range(0x20), 0x7F, *range(0x80, 0xA0)]]


@given(st.text())
def test_printable_replaces_exactly_the_control_characters(text: str) -> None:
    shown = printable(text)
    assert len(shown) == len(text) and first_control_character(shown) is None
    assert all(s == c or (c in CONTROLS and s == "?") for s, c in zip(shown, text, strict=True))


def test_ordinary_text_is_untouched() -> None:
    for text in ("plain", "a|b,c;d", "ünïcödé ✓ 名前", "\u00a0nbsp", "x" * 300):
        assert printable(text) == text and control_character_problem(text) is None
    for char in CONTROLS:
        assert control_character_problem(f"ab{char}") == (
            f"must not contain control characters (U+{ord(char):04X} at position 3): other users' terminals would obey them"
        )


@pytest.mark.parametrize(
    "field", ["name", "account", "partition", "qos", "comment", "current_working_directory", "standard_output",
              "standard_error", "standard_input", "mail_type", "mail_user", "begin_time", "dependency", "array", "signal"]
)
def test_every_free_text_field_refuses_them(field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        JobDescription(**{field: "x\x1b[2Jy"})
    (error,) = caught.value.errors()
    assert error["loc"] == (field,) and "control characters" in error["msg"]
    # Arguments and environment values may hold anything but NUL (a script's business).
    JobDescription(argv=["a\tb", "\x1b"], environment={"PS1": "\x1b[32m$\x1b[0m\n"})


@pytest.mark.parametrize("field", ["name", "comment"])
def test_updates_refuse_them(field: str) -> None:
    with pytest.raises(ValidationError, match="control characters"):
        JobUpdate(**{field: "a\x07"})


def test_views_print_them_as_question_marks() -> None:
    assert layout([["JobId=1 JobName=a\x1b]0;t\x07", "Comment=x\ny"]], oneliner=True) == "JobId=1 JobName=a?]0;t? Comment=x?y\n"
    rows = build_rows(
        [{"name": "p\x1b[31m", "default": True, "state": "UP", "nodes": ["n1"], "max_time": None}],
        [{"name": "n1", "state": "IDLE"}],
        per_node=False,
        summarize=False,
    )
    shown = render(DEFAULT_FORMAT, rows, header=True)
    assert "p?[31m*" in shown and "\x1b" not in shown
