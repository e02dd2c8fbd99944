"""What a job used: its memory high-water mark, CPU times and out-of-memory kills, and how Slurm
prints them (sacct's MaxRSS "123456K", TotalCPU "00:02.003", seff's report).

Recorded by the node's agent when the job ends (from the job's control group, or from polling
its processes where there are none), kept on the job as JSON.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields

_UNITS = "KMGTP"


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

    @property
    def total_cpu(self) -> float | None:
        if self.user_cpu is None and self.system_cpu is None:
            return None
        return (self.user_cpu or 0.0) + (self.system_cpu or 0.0)

    def to_json(self) -> str:
        return json.dumps({k: v for k, v in asdict(self).items() if v is not None})

    def as_dict(self) -> dict[str, float | int | str | None]:
        """The figures as the API shows them (CPU in seconds, memory in bytes)."""
        out: dict[str, float | int | str | None] = dict(asdict(self))
        out["total_cpu"] = self.total_cpu
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
    )


def _larger(a: int | None, b: int | None) -> int | None:
    if a is None or b is None:
        return b if a is None else a
    return max(a, b)


def format_memory(value: int | None) -> str:
    """sacct's memory figures (MaxRSS, AveRSS, MaxVMSize): kibibytes, in a larger unit only when
    exact (sacct's default: 204800 KiB is "200M", 204801 KiB "204801K")."""
    if value is None:
        return ""
    number = value // 1024
    if number == 0:
        return "0"
    unit = 0
    while number % 1024 == 0 and unit < len(_UNITS) - 1:
        number //= 1024
        unit += 1
    return f"{number}{_UNITS[unit]}"


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
