"""What a job used: its memory high-water mark, CPU times and out-of-memory kills, and how Slurm
prints them (sacct's MaxRSS "123456K", TotalCPU "00:02.003", seff's report).

Recorded by the node's agent when the job ends (from the job's control group, or from polling
its processes where there are none), kept on the job as JSON.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields

_BYTE_UNITS = ("", "K", "M", "G", "T", "P")  # convert_num_unit2's, from bytes


@dataclass(frozen=True, slots=True)
class StepRecord:
    """One job step (an `srun` inside the batch script): JOBID.<step_id> in sacct."""

    step_id: int
    name: str
    state: str  # COMPLETED, FAILED, CANCELLED
    exit_code: str  # "code:signal"
    ntasks: int
    start: float  # wall-clock seconds
    end: float
    user_cpu: float | None = None
    system_cpu: float | None = None
    max_rss: int | None = None  # the largest task's, bytes

    @property
    def total_cpu(self) -> float | None:
        if self.user_cpu is None and self.system_cpu is None:
            return None
        return (self.user_cpu or 0.0) + (self.system_cpu or 0.0)


STEP_STATES = ("COMPLETED", "FAILED", "CANCELLED")


def parse_step(data: object) -> StepRecord | None:
    """A step as srun reported it (untrusted: the job's own user wrote it); None if malformed."""
    if not isinstance(data, dict):
        return None
    try:
        step = StepRecord(
            step_id=int(data["step_id"]),
            name=str(data.get("name", ""))[:64],
            state=str(data["state"]),
            exit_code=str(data["exit_code"]),
            ntasks=int(data.get("ntasks", 1)),
            start=float(data["start"]),
            end=float(data["end"]),
            user_cpu=float(data["user_cpu"]) if data.get("user_cpu") is not None else None,
            system_cpu=float(data["system_cpu"]) if data.get("system_cpu") is not None else None,
            max_rss=int(data["max_rss"]) if data.get("max_rss") is not None else None,
        )
    except (KeyError, TypeError, ValueError):
        return None
    code, _, sig = step.exit_code.partition(":")
    if (
        step.state not in STEP_STATES
        or not (code.isdigit() and sig.isdigit())
        or not 0 <= step.step_id < 1_000_000
        or not 1 <= step.ntasks <= 100_000
        or step.end < step.start
    ):
        return None
    return step


@dataclass(frozen=True, slots=True)
class Usage:
    """Memory in bytes, CPU in seconds; None where the node could not measure it."""

    user_cpu: float | None = None
    system_cpu: float | None = None
    max_rss: int | None = None  # the memory high-water mark
    ave_rss: int | None = None  # Slurm's: the mean over the step's tasks of their largest RSS
    max_vmsize: int | None = None
    oom_kills: int = 0  # processes the out-of-memory killer ended
    # How it was measured: "cgroup-v2", "cgroup-v1" or "polling".
    source: str | None = None
    steps: tuple[StepRecord, ...] = ()  # its job steps (srun), as srun reported them

    @property
    def total_cpu(self) -> float | None:
        if self.user_cpu is None and self.system_cpu is None:
            return None
        return (self.user_cpu or 0.0) + (self.system_cpu or 0.0)

    def to_json(self) -> str:
        return json.dumps({k: v for k, v in asdict(self).items() if v is not None and v != ()})

    def as_dict(self) -> dict[str, object]:
        """The figures as the API shows them (CPU in seconds, memory in bytes)."""
        out: dict[str, object] = dict(asdict(self))
        out["total_cpu"] = self.total_cpu
        out["steps"] = [asdict(step) for step in self.steps]
        return out


_KNOWN = {f.name for f in fields(Usage)}


def parse_usage(text: str | None) -> Usage | None:
    """The usage kept on a job; older rows kept only `utime`/`stime` (the batch script's)."""
    if not text:
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    if "user_cpu" not in data and "utime" in data:
        data["user_cpu"] = data.get("utime")
        data["system_cpu"] = data.get("stime")
    values = {k: v for k, v in data.items() if k in _KNOWN}
    steps = values.pop("steps", None)
    if isinstance(steps, list):
        values["steps"] = tuple(step for step in map(parse_step, steps) if step is not None)
    try:
        return Usage(**values)
    except TypeError:
        return None


def merge(base: Usage | None, more: Usage | None) -> Usage | None:
    """The figures of `more` where it has them, else `base`'s; the larger high-water marks."""
    if base is None or more is None:
        return more if base is None else base
    return Usage(
        user_cpu=more.user_cpu if more.user_cpu is not None else base.user_cpu,
        system_cpu=more.system_cpu if more.system_cpu is not None else base.system_cpu,
        max_rss=_larger(base.max_rss, more.max_rss),
        ave_rss=more.ave_rss if more.ave_rss is not None else base.ave_rss,
        max_vmsize=_larger(base.max_vmsize, more.max_vmsize),
        oom_kills=max(base.oom_kills, more.oom_kills),
        source=more.source or base.source,
        steps=more.steps or base.steps,
    )


def _larger(a: int | None, b: int | None) -> int | None:
    if a is None or b is None:
        return b if a is None else a
    return max(a, b)


def format_memory(value: int | None) -> str:
    """sacct's memory figures (MaxRSS, AveRSS, MaxVMSize) from bytes, as convert_num_unit2 with
    sacct's CONVERT_NUM_UNIT_EXACT: a larger unit while it loses no precision (a multiple of
    512, so half units stay: 1536K is "1.50M"), two decimals when not whole; 204800 KiB is
    "200M", 204801 KiB "204801K", 1000 bytes "1000"."""
    if value is None:
        return ""
    if value == 0:
        return "0"
    number: float = value
    unit = 0
    while number >= 1024 and int(number) % 512 == 0 and unit < len(_BYTE_UNITS) - 1:
        number /= 1024
        unit += 1
    if number == int(number):
        return f"{int(number)}{_BYTE_UNITS[unit]}"
    return f"{number:.2f}{_BYTE_UNITS[unit]}"


def format_cpu(seconds: float | None) -> str:
    """sacct's TotalCPU/UserCPU/SystemCPU: MM:SS.mmm under an hour, [D-]HH:MM:SS beyond."""
    if seconds is None:
        return ""
    millis = round(seconds * 1000)
    whole, ms = divmod(millis, 1000)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}-{hours:02d}:{minutes:02d}:{secs:02d}"
    if hours:
        return f"{hours:02d}:{minutes:02d}:{secs:02d}"
    return f"{minutes:02d}:{secs:02d}.{ms:03d}"
