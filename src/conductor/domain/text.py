"""Control characters in text users set and other users' terminals print.

A job's name, comment, account... are printed by squeue, sacct and scontrol to everyone's
terminal. An ESC or BEL in them is a command to that terminal (a new window title, a cleared
screen, keys re-mapped on some), so the API refuses them in every free-text field, and the
commands print any that are stored anyway as '?', one for one (column widths stay right,
and ordinary text, including any delimiter a machine-readable format uses, is unchanged).

Control characters here are C0 (U+0000-U+001F, with tab and newline), DEL (U+007F) and C1
(U+0080-U+009F: some terminals take U+009B as ESC '[').
"""

from __future__ import annotations

import re

# A regular expression: the check runs on every submission's fields, where a loop in Python
# costs several times more.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
_AS_PRINTABLE = dict.fromkeys([*range(0x20), 0x7F, *range(0x80, 0xA0)], "?")


def first_control_character(text: str) -> int | None:
    """The index of the first control character in `text`, None if there is none."""
    match = _CONTROL.search(text)
    return match.start() if match else None


def control_character_problem(text: str) -> str | None:
    """Why `text` is refused as a free-text field (a message without the text), or None."""
    index = first_control_character(text)
    if index is None:
        return None
    return (
        f"must not contain control characters (U+{ord(text[index]):04X} at position {index + 1}): "
        "other users' terminals would obey them"
    )


def printable(text: str) -> str:
    """`text` with every control character replaced by '?'."""
    return text.translate(_AS_PRINTABLE)


def variable_name_problem(name: str) -> str | None:
    """Why `name` cannot be an environment variable's name (a message without the name), or
    None: any name execve can pass is one (exported shell functions such as BASH_FUNC_module%%,
    how Lmod and Environment Modules give jobs `module`, and names bash cannot expand alike)."""
    if not name:
        return "must not be empty"
    if "=" in name:
        return "must not contain '='"
    return control_character_problem(name)


def is_text(value: str) -> bool:
    """Whether `value` is text: Python decodes bytes of argv and the environment that are not
    UTF-8 as lone surrogates, which no UTF-8 encoding takes."""
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return True
