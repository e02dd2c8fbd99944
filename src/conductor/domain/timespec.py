"""Slurm's time grammars: job time limits, durations as squeue/sacct print them, --begin.

Sources (Slurm source tree): ``src/common/parse_time.c`` (``time_str2secs``,
``secs2time_str``, ``mins2time_str``, ``parse_time``) and ``src/squeue/print.c``
(``_print_secs``).
"""

from __future__ import annotations

import re

from conductor.domain.errors import SpecError, check_length

# typing is only needed by type checkers; importing it costs the CLI (`sbatch -t`) ~4 ms.
# datetime is needed only by the --begin parser, which imports it itself: `sbatch -t` parses
# a time limit on every submission and should not pay ~2 ms for a module it does not use.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from datetime import date, datetime, time
    from typing import Literal


class _LazyPattern:
    """A regular expression compiled on its first use, not at import.

    `conductor sbatch` imports this module for every `--time`, and compiling all the patterns
    up front cost it ~1.5 ms when usually one of them is needed; `re`'s own cache then keeps
    each compiled pattern for the rest of the process.
    """

    __slots__ = ("_compiled", "_flags", "_source")

    def __init__(self, source: str, flags: int = 0) -> None:
        self._source = source
        self._flags = flags
        self._compiled: re.Pattern[str] | None = None

    def _get(self) -> re.Pattern[str]:
        if self._compiled is None:
            self._compiled = re.compile(self._source, self._flags)
        return self._compiled

    def match(self, text: str, pos: int = 0) -> re.Match[str] | None:
        return self._get().match(text, pos)

    def fullmatch(self, text: str, pos: int = 0) -> re.Match[str] | None:
        return self._get().fullmatch(text, pos)


__all__ = [
    "MAX_TIME_LIMIT_SECONDS",
    "format_duration",
    "format_elapsed",
    "format_time_limit",
    "parse_begin_time",
    "parse_time_limit",
]

# squeue prints INVALID past one year (YEAR_SECONDS in squeue/print.c); refusing longer limits
# up front keeps every limit we accept displayable.
MAX_TIME_LIMIT_SECONDS = 365 * 24 * 3600

_TIME_LIMIT_FORMS = "minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS or UNLIMITED"
_UNLIMITED_WORDS = frozenset({"UNLIMITED", "INFINITE"})

_TIME_LIMIT_PATTERNS: tuple[_LazyPattern, ...] = tuple(
    _LazyPattern(p, re.ASCII)
    for p in (
        r"(?P<m>\d+)",
        r"(?P<m>\d+):(?P<s>\d+)",
        r"(?P<h>\d+):(?P<m>\d+):(?P<s>\d+)",
        r"(?P<d>\d+)-(?P<h>\d+)",
        r"(?P<d>\d+)-(?P<h>\d+):(?P<m>\d+)",
        r"(?P<d>\d+)-(?P<h>\d+):(?P<m>\d+):(?P<s>\d+)",
    )
)
# Only the leading field of a form may overflow its natural range ("90" minutes, "36:00:00"
# hours); an inner field past its range ("1:75:00") is far more likely a typo than intent, so
# we refuse it even though Slurm's sscanf would silently carry it over.
_FIELD_LIMITS = {"d": None, "h": 23, "m": 59, "s": 59}
_FIELD_NAMES = {"d": "days", "h": "hours", "m": "minutes", "s": "seconds"}
_FIELD_SECONDS = {"d": 86400, "h": 3600, "m": 60, "s": 1}


def parse_time_limit(value: str | int | None, *, field: str = "time_limit") -> int | None:
    """Parse a Slurm ``--time`` value into seconds; ``None`` means no limit.

    Accepted: ``minutes``, ``minutes:seconds``, ``hours:minutes:seconds``, ``days-hours``,
    ``days-hours:minutes``, ``days-hours:minutes:seconds``, and ``UNLIMITED``/``INFINITE``
    (any case). An ``int`` is minutes, as a bare number is. Zero means "no limit", as in
    Slurm ("A time limit of zero requests that no time limit be imposed"), and so does
    ``-1``, which Slurm's ``time_str2secs`` also maps to INFINITE. ``None`` (nothing given)
    passes through as ``None``.

    Unlike Slurm, which keeps limits in whole minutes and rounds seconds up, the result keeps
    second precision: the worker enforces limits itself and short limits make tests fast.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        # bool is an int subclass; True as "1 minute" would hide a caller bug.
        raise SpecError(field, f"invalid time {value!r}; expected {_TIME_LIMIT_FORMS}")
    if isinstance(value, int):
        if value == -1:
            return None
        if value < 0:
            raise SpecError(field, f"invalid time {value}; a time limit cannot be negative")
        return _check_limit(value * 60, str(value), field)
    if not isinstance(value, str):
        raise SpecError(field, f"invalid time {value!r}; expected {_TIME_LIMIT_FORMS}")

    text = value.strip()
    if not text:
        raise SpecError(field, f"empty time; expected {_TIME_LIMIT_FORMS}")
    check_length(text, field, "time")
    if text.upper() in _UNLIMITED_WORDS or text == "-1":
        return None
    for pattern in _TIME_LIMIT_PATTERNS:
        match = pattern.fullmatch(text)
        if match is None:
            continue
        parts = {k: int(v) for k, v in match.groupdict().items() if v is not None}
        leading = next(iter(match.groupdict()))
        for name, number in parts.items():
            limit = _FIELD_LIMITS[name]
            if name != leading and limit is not None and number > limit:
                raise SpecError(
                    field,
                    f"invalid time {text!r}: {_FIELD_NAMES[name]} field is {number}, "
                    f"must be 0-{limit} when it is not the first field",
                )
        seconds = sum(number * _FIELD_SECONDS[name] for name, number in parts.items())
        return _check_limit(seconds, text, field)
    if text.startswith("-"):
        raise SpecError(field, f"invalid time {text!r}; a time limit cannot be negative")
    raise SpecError(field, f"invalid time {text!r}; expected {_TIME_LIMIT_FORMS}")


def _check_limit(seconds: int, shown: str, field: str) -> int | None:
    if seconds == 0:
        return None
    if seconds > MAX_TIME_LIMIT_SECONDS:
        raise SpecError(
            field,
            f"time {shown!r} is longer than the maximum of 365 days (365-00:00:00); "
            "use UNLIMITED for no limit",
        )
    return seconds


def format_duration(seconds: int) -> str:
    """Format like squeue's TIME/TIME_LIMIT columns: ``M:SS``, ``H:MM:SS``, ``D-HH:MM:SS``.

    Mirrors ``_print_secs`` in ``src/squeue/print.c``, including ``INVALID`` for negative
    values and values beyond 365 days.
    """
    if seconds < 0 or seconds > MAX_TIME_LIMIT_SECONDS:
        return "INVALID"
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}-{hours:02d}:{minutes:02d}:{secs:02d}"
    if hours:
        return f"{hours}:{minutes:02d}:{secs:02d}"
    return f"{minutes}:{secs:02d}"


def format_elapsed(seconds: int) -> str:
    """Format like sacct's Elapsed column: ``HH:MM:SS`` or ``D-HH:MM:SS``.

    Mirrors ``secs2time_str`` in ``src/common/parse_time.c``; negative values print
    ``INVALID``. There is no upper bound, as in sacct.
    """
    if seconds < 0:
        return "INVALID"
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}-{hours:02d}:{minutes:02d}:{secs:02d}"
    return f"{hours:02d}:{minutes:02d}:{secs:02d}"


def format_time_limit(seconds: int | None, *, style: Literal["squeue", "sacct"] = "squeue") -> str:
    """Format a time limit (``None`` = unlimited) as squeue/sinfo or sacct show it.

    squeue's ``%l`` prints ``UNLIMITED`` or ``_print_secs(limit)`` (``5:00``, ``1:00:00``,
    ``1-00:00:00``); sacct's Timelimit prints ``UNLIMITED`` or ``mins2time_str``
    (``00:05:00``, ``1-00:00:00``).
    """
    if seconds is None:
        return "UNLIMITED"
    if style == "sacct":
        return format_elapsed(seconds)
    return format_duration(seconds)


# --- --begin -------------------------------------------------------------------------------

_BEGIN_FORMS = (
    "now[+count[seconds|minutes|hours|days|weeks]], HH:MM[:SS] [AM|PM], "
    "YYYY-MM-DD[THH:MM[:SS]], MM/DD[/YY][-HH:MM[:SS]], MMDD[YY], midnight, noon, "
    "elevenses, fika, teatime, today or tomorrow"
)
# Longest names first so "minutes" is not read as "minute" + "s"; Slurm's table has no other
# abbreviations, so neither do we.
_UNIT_SECONDS: dict[str, int] = {
    "seconds": 1,
    "second": 1,
    "minutes": 60,
    "minute": 60,
    "hours": 3600,
    "hour": 3600,
    "days": 86400,
    "day": 86400,
    "weeks": 604800,
    "week": 604800,
}
_NOW_RE = _LazyPattern(
    r"now(?:\s*(?P<sign>[+-])\s*(?P<count>\d+)\s*(?P<unit>[a-z]+)?)?", re.IGNORECASE | re.ASCII
)
# name -> (hour, minute)
_NAMED_TIMES: dict[str, tuple[int, int]] = {
    "midnight": (0, 0),
    "noon": (12, 0),
    "elevenses": (11, 0),
    "fika": (15, 0),
    "teatime": (16, 0),
}
_CLOCK_RE = _LazyPattern(
    r"(?P<h>\d{1,2}):(?P<m>\d{2})(?::(?P<s>\d{2}))?(?:\s*(?P<ampm>[ap]m))?",
    re.IGNORECASE | re.ASCII,
)
_ISO_DATE_RE = _LazyPattern(r"(?P<y>\d{4})-(?P<mo>\d{1,2})-(?P<d>\d{1,2})", re.ASCII)
_US_DATE_RE = _LazyPattern(
    r"(?P<mo>\d{1,2})(?P<sep>[/.])(?P<d>\d{1,2})(?:(?P=sep)(?P<y>\d{2}))?", re.ASCII
)
_PACKED_DATE_RE = _LazyPattern(r"(?P<mo>\d{2})(?P<d>\d{2})(?P<y>\d{2})?", re.ASCII)
_DIGITS = frozenset("0123456789")
_UTS_RE = _LazyPattern(r"uts(?P<epoch>\d+)", re.IGNORECASE | re.ASCII)


def parse_begin_time(
    value: str, *, now: datetime, field: str = "begin", past: bool = False
) -> datetime:
    """Parse an sbatch ``--begin`` value relative to ``now`` (timezone-aware).

    Follows ``parse_time`` in Slurm's ``src/common/parse_time.c``:

    * ``now[{+|-}count[seconds|minutes|hours|days|weeks]]`` (singular or plural unit, any
      case; bare count = seconds);
    * a clock time ``HH:MM[:SS] [AM|PM]``, or ``midnight``/``noon``/``elevenses`` (11:00)/
      ``fika`` (15:00)/``teatime`` (16:00): without a date this is the next occurrence —
      today if its hour:minute is later than now's, otherwise tomorrow;
    * a date ``YYYY-MM-DD``, ``MM/DD[/YY]``, ``MM.DD[.YY]``, ``MMDD[YY]``, ``today`` or
      ``tomorrow``, optionally joined to a clock time by ``T``, ``-`` or spaces; a date alone
      means 00:00; a date without a year is this year if still ahead, else next year;
    * ``uts<epoch seconds>``.

    The result is in ``now``'s timezone. A past result is returned as is: the job is simply
    eligible at once.

    ``past=True`` is ``parse_time(str, 1)``, as sacct reads ``-S``/``-E``: a clock time
    without a date is today (even if still ahead), and a date without a year is this year
    unless its month is after the current month, then last year (the day is not compared,
    so on Dec 7 ``12/20`` is this year's Dec 20).
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("parse_begin_time needs a timezone-aware 'now'")
    if not isinstance(value, str):
        raise SpecError(field, f"invalid time {value!r}; expected {_BEGIN_FORMS}")
    text = value.strip()
    if not text:
        raise SpecError(field, f"empty time; expected {_BEGIN_FORMS}")

    uts = _UTS_RE.fullmatch(text)
    if uts is not None:
        epoch = int(uts.group("epoch"))
        # Slurm refuses small numbers here to catch "uts" typos that would mean 1970.
        if epoch < 1_000_000:
            raise SpecError(field, f"invalid time {text!r}; uts needs epoch seconds >= 1000000")
        from datetime import datetime

        try:
            return datetime.fromtimestamp(epoch, tz=now.tzinfo)
        except (OverflowError, OSError, ValueError):
            raise SpecError(field, f"invalid time {text!r}; epoch out of range") from None

    try:
        return _resolve_begin(text, now, field, past)
    except OverflowError:
        # Only reachable with a "now" near datetime's year-1/9999 edges.
        raise SpecError(field, f"invalid time {text!r}; date out of range") from None


def _resolve_begin(text: str, now: datetime, field: str, past: bool = False) -> datetime:
    from datetime import datetime, time, timedelta

    rel = _NOW_RE.fullmatch(text)
    if rel is not None:
        return now + timedelta(seconds=_now_offset(rel, text, field))

    day, clock, year_given = _parse_date_and_clock(text, now, field, past)
    if day is None and clock is None:
        raise SpecError(field, f"invalid time {text!r}; expected {_BEGIN_FORMS}")
    if day is None:
        assert clock is not None
        # Slurm compares hour and minute only, so "10:30" at 10:30:15 means tomorrow; looking
        # into the past, a time of day alone is always today's.
        if past or (clock.hour, clock.minute) > (now.hour, now.minute):
            day = now.date()
        else:
            day = now.date() + timedelta(days=1)
    elif not year_given and not past:
        candidate = clock or time(0, 0)
        if (day.month, day.day, candidate.hour, candidate.minute) <= (
            now.month,
            now.day,
            now.hour,
            now.minute,
        ):
            day = _replace_year(day, now.year + 1, text, field)
    return datetime.combine(day, clock or time(0, 0), tzinfo=now.tzinfo)


def _now_offset(match: re.Match[str], text: str, field: str) -> int:
    if match.group("sign") is None:
        return 0
    count = int(match.group("count"))
    unit = (match.group("unit") or "seconds").lower()
    if unit not in _UNIT_SECONDS:
        raise SpecError(
            field,
            f"invalid time {text!r}: unknown unit {match.group('unit')!r}; "
            "expected seconds, minutes, hours, days or weeks",
        )
    offset = count * _UNIT_SECONDS[unit]
    # Beyond ~a century datetime arithmetic overflows; no real --begin is that far out.
    if offset > 100 * 366 * 86400:
        raise SpecError(field, f"invalid time {text!r}: offset is more than 100 years")
    return -offset if match.group("sign") == "-" else offset


def _parse_date_and_clock(
    text: str, now: datetime, field: str, past: bool = False
) -> tuple[date | None, time | None, bool]:
    """Split ``text`` into an optional date and an optional clock time, like Slurm's loop."""
    from datetime import time, timedelta

    day: date | None = None
    clock: time | None = None
    year_given = False
    pos = 0
    while pos < len(text):
        char = text[pos]
        word = next((w for w in ("today", "tomorrow") if _word_at(text, pos, w)), None)
        if word is not None:
            if day is not None:
                raise SpecError(field, f"invalid time {text!r}: more than one date")
            day = now.date() if word == "today" else now.date() + timedelta(days=1)
            year_given = True
            pos += len(word)
            continue
        named = next((n for n in _NAMED_TIMES if _word_at(text, pos, n)), None)
        if named is not None:
            if clock is not None:
                raise SpecError(field, f"invalid time {text!r}: more than one time of day")
            clock = time(*_NAMED_TIMES[named])
            pos += len(named)
            continue
        if char.isspace() or char in "-T":
            # Separators between date and time ("2024-06-01T08:00", "05/11-10:00"). Checked
            # after the words, unlike Slurm, so "Today" and "TeaTime" are not read as "T"+...
            pos += 1
            continue
        if char not in _DIGITS:
            raise SpecError(field, f"invalid time {text!r}; expected {_BEGIN_FORMS}")
        clock_match = _CLOCK_RE.match(text, pos)
        if clock_match is not None:
            if clock is not None:
                raise SpecError(field, f"invalid time {text!r}: more than one time of day")
            clock = _clock_from_match(clock_match, text, field)
            pos = clock_match.end()
            continue
        for regex in (_ISO_DATE_RE, _US_DATE_RE, _PACKED_DATE_RE):
            date_match = regex.match(text, pos)
            if date_match is not None:
                break
        else:
            raise SpecError(field, f"invalid time {text!r}; expected {_BEGIN_FORMS}")
        if day is not None:
            raise SpecError(field, f"invalid time {text!r}: more than one date")
        day, year_given = _date_from_match(date_match, now, text, field, past)
        pos = date_match.end()
        if pos < len(text) and text[pos] in _DIGITS:
            # e.g. "2024-01-011": a date must be followed by a separator or the end.
            raise SpecError(field, f"invalid time {text!r}; expected {_BEGIN_FORMS}")
    return day, clock, year_given


def _word_at(text: str, pos: int, word: str) -> bool:
    # Slice before lower-casing: str.lower() can change the length of non-ASCII text, which
    # would shift positions if the whole string were lowered once.
    return text[pos : pos + len(word)].lower() == word


def _clock_from_match(match: re.Match[str], text: str, field: str) -> time:
    from datetime import time

    hour = int(match.group("h"))
    minute = int(match.group("m"))
    second = int(match.group("s") or 0)
    ampm = (match.group("ampm") or "").lower()
    if hour > 23 or minute > 59 or second > 59:
        raise SpecError(field, f"invalid time {text!r}: hour must be 0-23, minute and second 0-59")
    if ampm == "pm":
        # Slurm: 12 PM stays noon, 1-11 PM add twelve, 13+ PM is an error.
        if hour > 12:
            raise SpecError(field, f"invalid time {text!r}: {hour} PM is not an hour")
        if hour < 12:
            hour += 12
    elif ampm == "am":
        if hour > 12:
            raise SpecError(field, f"invalid time {text!r}: {hour} AM is not an hour")
        if hour == 12:
            hour = 0
    return time(hour, minute, second)


def _date_from_match(
    match: re.Match[str], now: datetime, text: str, field: str, past: bool = False
) -> tuple[date, bool]:
    from datetime import date

    groups = match.groupdict()
    month, day_of_month = int(groups["mo"]), int(groups["d"])
    year_text = groups.get("y")
    if year_text is None:
        # Looking into the past (Slurm's parse_time with `past` set) only the month decides:
        # a later month than now's is last year's.
        year = now.year - 1 if past and month > now.month else now.year
        year_given = False
    elif len(year_text) == 2:
        # Slurm's two-digit years are 20YY.
        year, year_given = 2000 + int(year_text), True
    else:
        year, year_given = int(year_text), True
    if not 1 <= month <= 12:
        raise SpecError(field, f"invalid time {text!r}: month must be 1-12")
    try:
        return date(year, month, day_of_month), year_given
    except ValueError:
        raise SpecError(
            field, f"invalid time {text!r}: {year:04d}-{month:02d} has no day {day_of_month}"
        ) from None


def _replace_year(day: date, year: int, text: str, field: str) -> date:
    try:
        return day.replace(year=year)
    except ValueError:
        # Feb 29 already passed this year and next year has none.
        raise SpecError(
            field, f"invalid time {text!r}: {year} has no {day.strftime('%b')} {day.day}"
        ) from None
