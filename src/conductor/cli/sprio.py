"""`conductor sprio`: the factors of pending jobs' multifactor priority, as Slurm 22.05's sprio
prints them (`-l`, `-n`, `-o`, `-j`, `-u`, `-w`, `-h`).

Columns whose weight is 0 are left out of the default formats, as sprio does; SITE, ASSOC and
TRES are 0 here (no site factor, associations or TRES weights).
"""

from __future__ import annotations

import os
import re
import sys

from conductor.cli.client import Client
from conductor.cli.common import SLURM_VERSION, UsageError, empty_format, field_width, run, split_list
from conductor.cli.getopt import Option, OptionTable, getopt_long

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

PROG = "sprio"

OPTIONS = OptionTable(
    [
        Option("noheader", ("noheader",), "h"),
        Option("help", ("help",), None),
        Option("jobs", ("jobs", "job"), "j", "optional"),
        Option("long", ("long",), "l"),
        Option("norm", ("norm",), "n"),
        Option("format", ("format",), "o", "required"),
        Option("user", ("user", "users"), "u", "required"),
        Option("usage", ("usage",), None),
        Option("weights", ("weights",), "w"),
        Option("version", ("version",), "V"),
    ]
)

USAGE = """\
Usage: sprio [-j jid[s]] [-u user_name[s]] [-o format] [--usage] [-hlnvVw]
  -h, --noheader      no headers on output
  -j, --jobs          comma separated list of jobs to view, default is all
  -l, --long          long report
  -n, --norm          display normalized values
  -o, --format        format specification
  -u, --user          comma separated list of users to view
  -w, --weights       show the weights for each priority factor
"""

DEFAULT = "%.15i %9r %.10Y %.10S %.10A %.10B %.10F %.10J %.10P %.10Q %20T"
LONG = "%.15i %9r %.8u %.8o %.10Y %.10S %.10A %.10B %.10F %.10J %.10P %.10n %.10Q %.11N %.20T"
# Factors by format letter: (header, weights key, job key); upper case weighted, lower normalised.
_FACTORS = {
    "a": ("AGE", "age", "age"),
    "f": ("FAIRSHARE", "fairshare", "fairshare"),
    "j": ("JOBSIZE", "job_size", "job_size"),
    "p": ("PARTITION", "partition", "partition_factor"),
    "q": ("QOS", "qos", "qos_factor"),
}
_PCT = re.compile(r"%(\.)?(\d*)(.)")


def main(argv: list[str]) -> int:
    return run(PROG, lambda: _main(argv))


def _main(argv: list[str]) -> int:
    parsed, words = getopt_long(argv, OPTIONS)
    opts = dict(parsed)
    if "help" in opts or "usage" in opts:
        sys.stdout.write(USAGE)
        return 0
    if "version" in opts:
        sys.stdout.write(SLURM_VERSION)
        return 0
    if words:
        raise UsageError(f"Unknown argument: {words[0]}")
    option = "-o/--format"
    if "format" not in opts and "long" not in opts and os.environ.get("SPRIO_FORMAT"):
        # As sprio's opts.c: the variable stands for -o when neither -o nor -l is given (empty
        # is unset).
        opts["format"], option = os.environ["SPRIO_FORMAT"], "SPRIO_FORMAT"
    if "format" in opts:
        _check_format(opts["format"] or "", option)  # before the server is asked anything
    params: dict[str, str] = {}
    if opts.get("jobs"):
        params["jobs"] = ",".join(split_list(opts["jobs"]))
    if opts.get("user"):
        params["users"] = ",".join(split_list(opts["user"]))
    client = Client()
    try:
        answer = client.get("/priority", **params)
    finally:
        client.close()
    if not answer.get("multifactor"):
        sys.stderr.write(
            "You are not running a supported priority plugin\n(priority/basic).\n"
            "Only 'priority/multifactor' is supported.\n"
        )
        return 1
    weights: dict[str, int] = answer["weights"]
    if "format" in opts:
        fmt = opts["format"] or ""
    else:
        fmt = _drop_unweighted(LONG if "long" in opts else DEFAULT, weights)
        if "norm" in opts:
            fmt = re.sub(r"%(\.?\d*)([YSABFJPQ])", lambda m: f"%{m.group(1)}{m.group(2).lower()}", fmt)
    header, weights_only = "noheader" not in opts, "weights" in opts
    sys.stdout.write(report(fmt, weights, answer["jobs"], header=header, weights_only=weights_only))
    return 0


def report(fmt: str, weights: dict[str, int], jobs: list[dict[str, Any]], *, header: bool, weights_only: bool) -> str:
    """The header, then the jobs' lines, or with -w the Weights line instead of them: sprio's man
    page says "Actual job data is suppressed" (print_jobs_array in src/sprio/print.c returns
    after that line)."""
    out = [_line(fmt, None, weights)] if header else []
    if weights_only:
        out.append(_line(fmt, {"weights": True}, weights))
    else:
        out.extend(_line(fmt, job, weights) for job in jobs)
    return "".join(line.rstrip() + "\n" for line in out)


def _drop_unweighted(fmt: str, weights: dict[str, int]) -> str:
    """sprio leaves out the factors whose weight is 0 (ASSOC and TRES always, here)."""
    gone = {"B", "T"} | {letter.upper() for letter, (_, key, _) in _FACTORS.items() if not weights.get(key)}
    return re.sub(r" ?%\.?\d*([A-Za-z])", lambda m: "" if m.group(1).upper() in gone else m.group(0), fmt)


def _check_format(fmt: str, option: str = "-o/--format") -> None:
    """-o: refused when empty (`-o "$FORMAT"` with the variable unset) or a width is too large."""
    if not fmt.strip():
        raise empty_format(option)
    for match in _PCT.finditer(fmt):
        if match.group(2):
            field_width(match.group(2), option)


def _line(fmt: str, job: dict[str, Any] | None, weights: dict[str, int]) -> str:
    parts = []
    pos = 0
    for match in _PCT.finditer(fmt):
        parts.append(fmt[pos:match.start()])
        pos = match.end()
        # '.' right-justifies, as in squeue and in sprio's own output (its man page says the reverse).
        right = bool(match.group(1))
        width = field_width(match.group(2), "-o/--format") if match.group(2) else 0
        code = match.group(3)
        text = _header(code) if job is None else _value(code, job, weights)
        if width:
            text = text[:width]
            text = text.rjust(width) if right else text.ljust(width)
        parts.append(text)
    parts.append(fmt[pos:])
    return "".join(parts)


def _header(code: str) -> str:
    if code == "N":
        return "NICE"
    lower = code.lower()
    if lower in _FACTORS:
        return _FACTORS[lower][0]
    return {
        "i": "JOBID", "r": "PARTITION", "u": "USER", "o": "ACCOUNT", "y": "PRIORITY", "s": "SITE",
        "b": "ASSOC", "n": "QOSNAME", "t": "TRES", "c": "CLUSTER",
    }.get(lower, "")


def _weight(code: str, weights: dict[str, int]) -> str:
    """A field of the -w line, as src/sprio/print.c prints it: each factor's weight, 1 under SITE
    (the site factor is added as it is), 0 under ASSOC (no association weight here), and nothing
    under the fields that are not factors (PRIORITY, USER, NICE...)."""
    lower = code.lower()
    if lower in _FACTORS:
        return str(weights.get(_FACTORS[lower][1], 0))
    return {"i": "Weights", "S": "1", "B": "0", "b": "0"}.get(code, "")


def _value(code: str, job: dict[str, Any], weights: dict[str, int]) -> str:
    if job.get("weights"):  # the -w line
        return _weight(code, weights)
    lower = code.lower()
    if lower in _FACTORS:
        _, weight_key, job_key = _FACTORS[lower]
        norm = float(job[job_key])
        return f"{norm:.7f}" if code.islower() else str(int(round(norm * weights.get(weight_key, 0))))
    values = {
        "i": str(job["job_id"]), "r": job["partition"], "u": job["user"], "o": job.get("account") or "(null)",
        "Y": str(job["priority"]), "S": "0", "s": f"{0:.7f}", "B": "0", "b": f"{0:.7f}",
        "n": job["qos"], "N": str(job["nice"]), "t": "", "T": "", "c": "cluster",
    }
    if code == "y":
        return f"{job['priority'] / 4294967295:.10f}"  # over the largest priority, as Slurm
    if code not in values:
        raise UsageError(f"Invalid job format specification: {code}")
    return str(values[code])
