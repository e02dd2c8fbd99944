"""Whole numbers as users write them: ASCII digits, read only once they are known to fit.

`int()` alone takes the digits of every script ('٣' is 3, '²' is refused with its own error) and
refuses more than 4,300 digits with a ValueError of its own: a parser that calls it on a user's
text ends in a traceback or reads a number nobody meant. Each parser checks its text here first.
"""

from __future__ import annotations

__all__ = ["whole_number"]


def whole_number(text: str, maximum: int) -> int | None:
    """`text` as a number from 0 to `maximum` (leading zeros allowed); None when it is not ASCII
    digits, or is larger. The size is judged on the text before any conversion."""
    if not (text.isascii() and text.isdigit()):
        return None
    digits = text.lstrip("0")
    if len(digits) > len(str(maximum)):
        return None
    value = int(digits or "0")
    return value if value <= maximum else None
