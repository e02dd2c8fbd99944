"""Signal names and ``--signal`` specifications, as scancel and sbatch accept them.

Sources: ``scancel(1)`` (``--signal``: a name with or without ``SIG``, or a number) and
``sbatch(1)`` (``--signal=[{R|B}:]<sig_num>[@sig_time]``: ``sig_time`` defaults to 60 seconds,
``B`` signals only the batch shell, ``R`` concerns reservations and is accepted and ignored).
"""

from __future__ import annotations

import re
import signal
from dataclasses import dataclass

from conductor.domain.errors import SpecError, check_length
from conductor.domain.numbers import whole_number

__all__ = ["DEFAULT_WARN_SECONDS", "SignalSpec", "parse_signal", "parse_signal_spec", "signal_name"]

# sbatch: "Due to the resolution of event handling by Slurm, the signal may be sent up to 60
# seconds earlier than specified"; we are exact, and keep Slurm's default lead time.
DEFAULT_WARN_SECONDS = 60
# Slurm caps sig_time at 0xffff.
_MAX_WARN_SECONDS = 65535
# ASCII: \d alone takes every script's digits, which int() reads ("USR1@١٠" was ten seconds).
_SPEC_RE = re.compile(r"(?:(?P<flags>[A-Za-z]+):)?(?P<sig>[A-Za-z0-9]+)(?:@(?P<time>\d+))?", re.ASCII)

# Signals that cannot be caught make no sense as a "warning" and SIGKILL/SIGSTOP are handled
# as cancel/suspend by Slurm itself; they stay valid for scancel --signal.
_NAMES: dict[str, int] = {
    s.name[3:]: int(s)
    for s in signal.Signals
    if s.name.startswith("SIG") and not s.name.startswith("SIG_") and s.name not in ("SIGRTMIN", "SIGRTMAX")
}


def signal_name(number: int) -> str:
    """``USR1`` for 10; the number itself for signals without a name."""
    try:
        return signal.Signals(number).name.removeprefix("SIG")
    except ValueError:
        return str(number)


def parse_signal(value: str | int, *, field: str = "signal") -> int:
    """A signal given as a name (``USR1``, ``SIGUSR1``, any case) or a number (``10``)."""
    if isinstance(value, bool):
        raise SpecError(field, f"invalid signal {value!r}; expected a name such as USR1 or a number")
    if isinstance(value, int):
        number = value
    else:
        text = value.strip().upper()
        if not text:
            raise SpecError(field, "empty signal; expected a name such as USR1 or a number")
        check_length(text, field, "signal")
        if text.isascii() and text.isdigit():
            number = int(text)
        else:
            name = text.removeprefix("SIG")
            if name not in _NAMES:
                raise SpecError(field, f"unknown signal '{value.strip()[:20]}'; expected a name such as USR1, TERM, INT or a number")
            return _NAMES[name]
    if not 1 <= number < signal.NSIG:
        raise SpecError(field, f"signal number {number} is out of range 1-{signal.NSIG - 1}")
    return number


@dataclass(frozen=True, slots=True)
class SignalSpec:
    """A parsed ``--signal``: which signal, how many seconds before the time limit, to whom."""

    signal: int
    seconds: int = DEFAULT_WARN_SECONDS
    batch_only: bool = False

    def __str__(self) -> str:
        prefix = "B:" if self.batch_only else ""
        return f"{prefix}{signal_name(self.signal)}@{self.seconds}"


def parse_signal_spec(value: str, *, field: str = "signal") -> SignalSpec:
    """Parse sbatch's ``[{R|B}:]SIG[@seconds]`` (``RB``/``BR`` combine both flags)."""
    text = value.strip()
    match = _SPEC_RE.fullmatch(text)
    if match is None:
        raise SpecError(field, f"invalid value '{text[:32]}'; expected [{{R|B}}:]SIG[@seconds], e.g. B:USR1@120")
    flags = (match.group("flags") or "").upper()
    if flags and (set(flags) - {"R", "B"} or len(flags) != len(set(flags))):
        raise SpecError(field, f"invalid flags '{match.group('flags')}' in '{text[:32]}'; expected R, B or RB")
    number = parse_signal(match.group("sig"), field=field)
    seconds = DEFAULT_WARN_SECONDS
    if match.group("time") is not None:
        given = whole_number(match.group("time"), _MAX_WARN_SECONDS)
        if given is None:
            shown = match.group("time").lstrip("0")[:12]
            raise SpecError(
                field, f"time {shown} in '{text[:32]}' is above the maximum of {_MAX_WARN_SECONDS} seconds"
            )
        seconds = given
    return SignalSpec(signal=number, seconds=seconds, batch_only="B" in flags)
