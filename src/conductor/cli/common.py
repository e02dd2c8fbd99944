"""Small helpers shared by the user commands: error reporting, users, Slurm's time and id formats."""

from __future__ import annotations

import os
import sys
from datetime import UTC, datetime

from conductor.cli.client import ApiError, ConnectionFailed
from conductor.cli.getopt import GetoptError
from conductor.domain.numbers import whole_number
from conductor.errors import ConductorError

# typing is imported only by type checkers: at run time it costs every command 2.5 ms.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

# Every state Slurm may show, with squeue's compact code (%t).
STATE_CODES: dict[str, str] = {
    "PENDING": "PD",
    "RUNNING": "R",
    "SUSPENDED": "S",
    "COMPLETING": "CG",
    "COMPLETED": "CD",
    "CONFIGURING": "CF",
    "CANCELLED": "CA",
    "FAILED": "F",
    "TIMEOUT": "TO",
    "PREEMPTED": "PR",
    "BOOT_FAIL": "BF",
    "DEADLINE": "DL",
    "NODE_FAIL": "NF",
    "OUT_OF_MEMORY": "OOM",
    "REQUEUED": "RQ",
    "RESIZING": "RS",
    "REVOKED": "RV",
    "SIGNALING": "SI",
    "SPECIAL_EXIT": "SE",
    "STAGE_OUT": "SO",
    "STOPPED": "ST",
}
CODE_STATES: dict[str, str] = {code: state for state, code in STATE_CODES.items()}
ACTIVE_STATES = ("PENDING", "RUNNING", "SUSPENDED", "COMPLETING", "CONFIGURING")


class UsageError(ConductorError):
    """A user mistake detected by the command itself; printed as '<prog>: error: <message>'."""


# The widest column a format may ask for: squeue's %.20i and -O JobID:20, sinfo's, sprio's,
# sacct's JobID%20, sacctmgr's format=Account%20. Every value of the column is padded to it on
# every line, so an unbounded width turns 15 characters of a command line into gigabytes
# (`%.300000000i`). 10,000 is more than twice the longest value a column holds here (a path,
# at most PATH_MAX = 4096 bytes) and still bounds a column of a 10,000-job listing to 100 MB.
MAX_FIELD_WIDTH = 10_000


def field_width(digits: str, option: str) -> int:
    """The width written in a format (the "20" of %.20i), refused above MAX_FIELD_WIDTH."""
    shown = digits if len(digits) <= 20 else digits[:20] + "..."
    if not (digits.isascii() and digits.isdigit()):
        raise UsageError(f"{option}: field width {shown!r} is not a number")
    width = whole_number(digits, MAX_FIELD_WIDTH)
    if width is None:
        raise UsageError(f"{option}: field width {shown} is too large; the maximum is {MAX_FIELD_WIDTH}")
    return width


def empty_format(option: str) -> UsageError:
    """The error for a format that names no field: `squeue -O "$FIELDS"` with the variable unset
    would otherwise print blank lines, or the default columns the user did not ask for."""
    return UsageError(f"{option}: the format names no field")


# What `--version` prints, the same for every Slurm command we answer for (tools parse it).
SLURM_VERSION = "slurm 23.11.0\n"


def err(prog: str, message: str) -> None:
    sys.stderr.write(f"{prog}: error: {message}\n")


def warn(prog: str, message: str) -> None:
    sys.stderr.write(f"{prog}: warning: {message}\n")


def run(prog: str, body: Callable[[], int]) -> int:
    """Run a command body, turning the expected failures into Slurm-style messages and exit 1."""
    try:
        return body()
    except GetoptError as exc:
        sys.stderr.write(f'{prog}: {exc}\nTry "{prog} --help" for more information\n')
        return 1
    except UsageError as exc:
        err(prog, str(exc))
        return 1
    except ConnectionFailed as exc:
        err(prog, str(exc))
        return 1
    except ApiError as exc:
        err(prog, exc.message)
        return 1
    except ConductorError as exc:
        # The package's other errors are raised on purpose, with a message for people: a domain
        # parser's SpecError (a host list, a time) names the field and the rule it breaks.
        err(prog, str(exc))
        return 1
    except BrokenPipeError:
        # `squeue | head` closes the pipe early; that is not an error worth a traceback.
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:
            pass
        return 0
    except KeyboardInterrupt:
        return 130


def collect_options(parsed: list[tuple[str, str | None]]) -> tuple[dict[str, str | None], dict[str, list[str]]]:
    """Parsed options as (last value of each, every value of each): squeue and sacct accept
    repeated -j/-u/-t and join them, other options take their last value, as in Slurm."""
    opts: dict[str, str | None] = {}
    multi: dict[str, list[str]] = {}
    for key, value in parsed:
        opts[key] = value
        if value is not None:
            multi.setdefault(key, []).append(value)
    return opts, multi


def current_user() -> str:
    """The submitting user's name, as the server records it for tokens issued to this login."""
    explicit = os.environ.get("CONDUCTOR_USER", "").strip()
    if explicit:
        return explicit
    try:
        import pwd

        return pwd.getpwuid(os.getuid()).pw_name
    except (ImportError, KeyError):
        return os.environ.get("USER") or os.environ.get("LOGNAME") or "unknown"


def split_list(value: str | None) -> list[str]:
    """Slurm's comma-separated option lists (`-u a,b`, `-t PD,R`), ignoring empty items."""
    return [item.strip() for item in (value or "").split(",") if item.strip()]


# ---- durations -------------------------------------------------------------------------------


def clock(seconds: float | None) -> str:
    """squeue's compact duration (%M, %l): 'M:SS', 'H:MM:SS' or 'D-HH:MM:SS'."""
    if seconds is None:
        return "UNLIMITED"
    total = max(int(seconds), 0)
    if total < 3600:  # nearly every line of a queue (a pending job's is 0:00): no divmods
        return f"{total // 60}:{total % 60:02d}"
    days, rem = divmod(total, 86400)
    hours, rem = divmod(rem, 3600)
    minutes, secs = divmod(rem, 60)
    if days:
        return f"{days}-{hours:02d}:{minutes:02d}:{secs:02d}"
    if hours:
        return f"{hours}:{minutes:02d}:{secs:02d}"
    return f"{minutes}:{secs:02d}"


def hms(seconds: float | None) -> str:
    """Slurm's secs2time_str (sacct Elapsed, scontrol RunTime/TimeLimit): 'HH:MM:SS' or 'D-HH:MM:SS'."""
    if seconds is None:
        return "UNLIMITED"
    total = max(int(seconds), 0)
    days, rem = divmod(total, 86400)
    hours, rem = divmod(rem, 3600)
    minutes, secs = divmod(rem, 60)
    if days:
        return f"{days}-{hours:02d}:{minutes:02d}:{secs:02d}"
    return f"{hours:02d}:{minutes:02d}:{secs:02d}"


# ---- timestamps ------------------------------------------------------------------------------


def parse_iso(value: Any) -> datetime | None:
    if not value or not isinstance(value, str):
        return None
    try:
        stamp = datetime.fromisoformat(value)
    except ValueError:
        return None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    return stamp


def recorded_exit_code(job: dict[str, Any]) -> str:
    """The exit code of the job's accounting record ("code:signal"): 0:0 for a job that ran and
    was ended by its time limit or a cancel, as slurmctld records it when it ends it
    (`_job_signal`, `job_completion_logger`), before the batch script returns, whose status
    only its batch step's record shows; the job's own otherwise."""
    if job.get("state") in ("TIMEOUT", "CANCELLED") and job.get("start_time"):
        return "0:0"
    return exit_code(job)


def stop_at_end_request(job: dict[str, Any], state: str) -> bool:
    """Show a running job whose end was asked for (its `ending_state`: a cancel, its time limit)
    in `state` from that moment, its end and run time stopped there: slurmctld sets such a job's
    end time when it signals it, and its processes' last seconds (the kill-wait) are not run
    time. In place; a job without such a request is left as it is (False)."""
    if job.get("state") != "RUNNING" or not job.get("ending_state"):
        return False
    ended = parse_iso(job.get("ending_time"))
    started = parse_iso(job.get("start_time"))
    job["state"] = state
    if ended is not None:
        job["end_time"] = job["ending_time"]
        if started is not None and "elapsed" in job:
            job["elapsed"] = max(int((ended - started).total_seconds()), 0)
    if job["ending_state"] == "TIMEOUT" and "reason" in job:
        job["reason"] = "TimeLimit"
    return True


_STANDARD_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S"  # Slurm's "%FT%T"
# The strftime format SLURM_TIME_FORMAT means (None: "relative"), worked out once per process as
# Slurm works it out (an invalid one is reported once): reading the variable cost each time
# printed a fifth of its cost. Empty until then; tests clear it.
_TIME_FORMATS: list[str | None] = []


def _command_name() -> str:
    """The command for an error message: `sacct` of `conductor sacct ...` or of a shim."""
    argv = sys.argv
    base = os.path.basename(argv[0]) if argv and argv[0] else "conductor"
    if base in ("conductor", "__main__.py") and len(argv) > 1:
        return argv[1]
    return base


def _time_format() -> str | None:
    """slurm_make_time_str's format (src/common/parse_time.c): SLURM_TIME_FORMAT unset, empty or
    `standard` is the ISO-like default, `relative` the relative form; any other value is a
    strftime(3) format if it has a '%' and is under 32 bytes, else an error and the default."""
    if _TIME_FORMATS:
        return _TIME_FORMATS[0]
    env = os.environ.get("SLURM_TIME_FORMAT")
    chosen: str | None = _STANDARD_TIME_FORMAT
    if not env or env == "standard":
        pass
    elif env == "relative":
        chosen = None
    elif "%" not in env or len(env.encode(errors="surrogateescape")) >= 32:
        sys.stderr.write(f"{_command_name()}: error: invalid SLURM_TIME_FORMAT = '{env}'\n")
    else:
        chosen = env
    _TIME_FORMATS.append(chosen)
    return chosen


def _relative_time_format(stamp: datetime) -> str:
    """_relative_date_fmt (parse_time.c): the format by the distance in days from today, with
    days counted as 1000 * year + day of the year, as Slurm counts them."""
    today = datetime.now().astimezone().timetuple()
    when = stamp.timetuple()
    distance = (1000 * when.tm_year + when.tm_yday) - (1000 * today.tm_year + today.tm_yday)
    if distance == -1:
        return "Ystday %H:%M"
    if distance == 0:
        return "%H:%M:%S"
    if distance == 1:
        return "Tomorr %H:%M"
    if distance < -365 or distance > 365:
        return "%-d %b %Y"
    if distance < -1 or distance > 6:
        return "%-d %b %H:%M"
    return "%a %H:%M"


def slurm_time(value: Any, missing: str = "Unknown") -> str:
    """An instant as Slurm prints it (slurm_make_time_str): in local time without zone,
    2026-11-29T07:00:07, or as SLURM_TIME_FORMAT asks (`relative`, or a strftime format)."""
    stamp = parse_iso(value)
    if stamp is None:
        return missing
    local = stamp.astimezone()
    fmt = _time_format()
    if fmt is None:
        fmt = _relative_time_format(local)
    try:
        return local.strftime(fmt)
    except (ValueError, UnicodeError):
        return local.strftime(_STANDARD_TIME_FORMAT)


# ---- job ids ---------------------------------------------------------------------------------


def job_display_id(job: dict[str, Any]) -> str:
    """'123' for a plain job, '<array job id>_<task>' for an array task."""
    array_job = job.get("array_job_id")
    task = job.get("array_task_id")
    if array_job is not None and task is not None:
        return f"{array_job}_{task}"
    return str(job.get("job_id"))


def job_reason(job: dict[str, Any]) -> str:
    """Why a job waits, or why it ended, as Slurm's views show it: an ended job the server
    explains (its `error_msg`: a working directory or output file that could not be used, a node
    that died) shows that explanation in place of the reason code, as Slurm shows a job's
    state_desc in place of its state_reason; otherwise the code (Resources, NonZeroExitCode...)."""
    message = job.get("error_msg")
    if message and job.get("state") not in ACTIVE_STATES and job.get("state") != "COMPLETED":
        return str(message)
    described = job.get("_state_desc")  # a view's own description (cli/unavailable.py)
    if described:
        return str(described)
    return str(job.get("reason") or "None")


def exit_code(job: dict[str, Any]) -> str:
    value = job.get("exit_code")
    return str(value) if value else "0:0"
