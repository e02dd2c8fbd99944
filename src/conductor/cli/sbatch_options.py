"""sbatch's options, `#SBATCH` directives and SBATCH_* variables, turned into a submit request.

Pure: no I/O. `sbatch.py` reads the script and talks to the server; this module decides what is
asked. Precedence follows Slurm (src/sbatch/opt.c): script directives, then SBATCH_* input
environment variables, then the command line, each overriding the one before.

Directive rules, as `_opt_batch_script` and `_get_argument` implement them:
- a directive is a line starting exactly with `#SBATCH` (no leading blank, upper case);
- directives are read until the first line that is neither blank nor a comment; `#SBATCH` lines
  after that first command are ignored;
- a directive's words split on blanks, `'` and `"` quote, backslash escapes, and an unquoted `#`
  starts a trailing comment;
- a word that is not an option (e.g. `#SBATCH --nice 5`: `--nice` takes its value only with `=`)
  makes the whole script invalid: "Invalid directive found in batch script: 5".
"""

from __future__ import annotations

import os
import re

# typing is imported only by type checkers: at run time it costs the CLI ~4 ms.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

from conductor.cli.getopt import GetoptError, Option, OptionTable, getopt_long
from conductor.domain.errors import SpecError
from conductor.domain.mail import mail_type_problem
from conductor.domain.text import is_text, printable, variable_name_problem
from conductor.errors import ConductorError

PROG = "sbatch"

# The one cluster's name, as jobs are given it (SLURM_CLUSTER_NAME; conductor.domain.jobfiles'
# CLUSTER_NAME, not imported: sbatch starts fast).
CLUSTER = "conductor"
# Options we parse because tools send them, but whose effect this single-cluster system does not
# have. Each one is accepted with a warning naming what is ignored (Slurm would honour them).
_IGNORED_WITH_WARNING: dict[str, str] = {
    "constraint": "node features are not used here; --constraint is ignored",
    "reservation": "reservations are not supported; --reservation is ignored",
    "licenses": "licenses are not tracked; --licenses is ignored",
    "wckey": "workload characterization keys are not tracked; --wckey is ignored",
    "distribution": "--distribution is ignored (one node per job)",
    "no_kill": "--no-kill is ignored (jobs run on a single node)",
    "overcommit": "--overcommit is ignored",
    "oversubscribe": "--oversubscribe is ignored; CPUs are never shared between jobs",
    "core_spec": "--core-spec is ignored",
    "thread_spec": "--thread-spec is ignored",
    "hint": "--hint is ignored",
    "mem_bind": "--mem-bind is ignored",
    "cpu_freq": "--cpu-freq is ignored",
    "acctg_freq": "--acctg-freq is ignored",
    "profile": "--profile is ignored",
    "time_min": "--time-min is ignored; the time limit is --time",
    "tmp": "--tmp is ignored; temporary disk is not tracked",
    "mincpus": "--mincpus is ignored; use --cpus-per-task",
    "sockets_per_node": "--sockets-per-node is ignored",
    "cores_per_socket": "--cores-per-socket is ignored",
    "threads_per_core": "--threads-per-core is ignored",
    "extra_node_info": "--extra-node-info is ignored",
    "ntasks_per_core": "--ntasks-per-core is ignored",
    "ntasks_per_socket": "--ntasks-per-socket is ignored",
    "get_user_env": "--get-user-env is ignored; the submitting environment is used",
    "export_file": "--export-file is ignored",
    "propagate": "--propagate is ignored; resource limits are not propagated",
    "immediate": "--immediate is ignored",
    "kill_on_invalid_dep": "--kill-on-invalid-dep is ignored; jobs whose dependency can never "
    "be satisfied stay pending with reason DependencyNeverSatisfied",
    "deadline": "--deadline is ignored",
    "delay_boot": "--delay-boot is ignored",
    "reboot": "--reboot is ignored",
    "contiguous": "--contiguous is ignored",
    "network": "--network is ignored",
    "switches": "--switches is ignored",
    "spread_job": "--spread-job is ignored",
    "use_min_nodes": "--use-min-nodes is ignored",
    "wait_all_nodes": "--wait-all-nodes is ignored",
    "power": "--power is ignored",
    "mcs_label": "--mcs-label is ignored",
    "burst_buffer": "burst buffers are not supported; --bb is ignored",
    "container": "containers are not supported; --container is ignored",
    "uid": "--uid is ignored; jobs run as the submitting user",
    "gid": "--gid is ignored; jobs run as the submitting user",
    "batch": "--batch is ignored",
}

# GPU requests: no node here has GPUs, so asking for any is refused as Slurm refuses a GRES the
# cluster does not have; asking for zero is harmless and accepted.
_GPU_OPTIONS = frozenset(
    {
        "gres",
        "gpus",
        "gpus_per_node",
        "gpus_per_task",
        "gpus_per_socket",
        "cpus_per_gpu",
        "mem_per_gpu",
        "gpu_bind",
        "gpu_freq",
        "tres_per_task",
    }
)


def _o(
    key: str,
    longs: str | tuple[str, ...] = (),
    short: str | None = None,
    arg: str = "required",
) -> Option:
    names = (longs,) if isinstance(longs, str) else longs
    return Option(key, names, short, arg)  # type: ignore[arg-type]


OPTIONS = OptionTable(
    [
        _o("account", "account", "A"),
        _o("array", "array", "a"),
        _o("batch", "batch", None),
        _o("extra_node_info", "extra-node-info", "B"),
        _o("cpus_per_task", "cpus-per-task", "c"),
        _o("constraint", ("constraint", "cluster-constraint"), "C"),
        _o("dependency", "dependency", "d"),
        _o("chdir", ("chdir", "workdir"), "D"),
        _o("error", "error", "e"),
        _o("nodefile", "nodefile", "F"),
        _o("gpus", "gpus", "G"),
        _o("help", "help", "h", "none"),
        _o("hold", "hold", "H", "none"),
        _o("input", "input", "i"),
        _o("immediate", "immediate", "I", "none"),
        _o("job_name", "job-name", "J"),
        _o("no_kill", "no-kill", "k", "optional"),
        _o("licenses", "licenses", "L"),
        _o("distribution", "distribution", "m"),
        _o("clusters", ("clusters", "cluster"), "M"),
        _o("ntasks", ("ntasks", "tasks"), "n"),
        _o("nodes", "nodes", "N"),
        _o("output", "output", "o"),
        _o("overcommit", "overcommit", "O", "none"),
        _o("partition", "partition", "p"),
        _o("qos", "qos", "q"),
        _o("quiet", "quiet", "Q", "none"),
        _o("oversubscribe", ("oversubscribe", "share"), "s", "none"),
        _o("core_spec", "core-spec", "S"),
        _o("time", "time", "t"),
        _o("usage", "usage", "u", "none"),
        _o("verbose", "verbose", "v", "none"),
        _o("version", "version", "V", "none"),
        _o("nodelist", "nodelist", "w"),
        _o("wait", "wait", "W", "none"),
        _o("exclude", "exclude", "x"),
        _o("acctg_freq", "acctg-freq"),
        _o("begin", "begin", "b"),
        _o("burst_buffer", ("bb", "bbf")),
        _o("comment", "comment"),
        _o("container", "container"),
        _o("contiguous", "contiguous", None, "none"),
        _o("cores_per_socket", "cores-per-socket"),
        _o("cpu_freq", "cpu-freq"),
        _o("cpus_per_gpu", "cpus-per-gpu"),
        _o("deadline", "deadline"),
        _o("delay_boot", "delay-boot"),
        _o("exclusive", "exclusive", None, "optional"),
        _o("export", "export"),
        _o("export_file", "export-file"),
        _o("get_user_env", "get-user-env", None, "optional"),
        _o("gid", "gid"),
        _o("gpu_bind", "gpu-bind"),
        _o("gpu_freq", "gpu-freq"),
        _o("gpus_per_node", "gpus-per-node"),
        _o("gpus_per_socket", "gpus-per-socket"),
        _o("gpus_per_task", "gpus-per-task"),
        _o("gres", "gres"),
        _o("gres_flags", "gres-flags"),
        _o("hint", "hint"),
        _o("ignore_pbs", "ignore-pbs", None, "none"),
        _o("kill_on_invalid_dep", "kill-on-invalid-dep"),
        _o("mail_type", "mail-type"),
        _o("mail_user", "mail-user"),
        _o("mcs_label", "mcs-label"),
        _o("mem", "mem"),
        _o("mem_bind", "mem-bind"),
        _o("mem_per_cpu", "mem-per-cpu"),
        _o("mem_per_gpu", "mem-per-gpu"),
        _o("mincpus", "mincpus"),
        _o("network", "network"),
        _o("nice", "nice", None, "optional"),
        _o("no_requeue", "no-requeue", None, "none"),
        _o("ntasks_per_core", "ntasks-per-core"),
        _o("ntasks_per_node", ("ntasks-per-node", "tasks-per-node")),
        _o("ntasks_per_socket", "ntasks-per-socket"),
        _o("open_mode", "open-mode"),
        _o("parsable", "parsable", None, "none"),
        _o("power", "power"),
        _o("priority", "priority"),
        _o("profile", "profile"),
        _o("propagate", "propagate", None, "optional"),
        _o("reboot", "reboot", None, "none"),
        _o("requeue", "requeue", None, "none"),
        _o("reservation", "reservation"),
        _o("signal", "signal"),
        _o("sockets_per_node", "sockets-per-node"),
        _o("spread_job", "spread-job", None, "none"),
        _o("switches", "switches"),
        _o("test_only", "test-only", None, "none"),
        _o("thread_spec", "thread-spec"),
        _o("threads_per_core", "threads-per-core"),
        _o("time_min", "time-min"),
        _o("tmp", "tmp"),
        _o("tres_per_task", "tres-per-task"),
        _o("uid", "uid"),
        _o("use_min_nodes", "use-min-nodes", None, "none"),
        _o("wait_all_nodes", "wait-all-nodes"),
        _o("wckey", "wckey"),
        _o("wrap", "wrap"),
    ]
)

# SBATCH_* input environment variables (sbatch(1), "INPUT ENVIRONMENT VARIABLES") -> option key.
ENV_OPTIONS: dict[str, str] = {
    "SBATCH_ACCOUNT": "account",
    "SBATCH_ARRAY_INX": "array",
    "SBATCH_CLUSTERS": "clusters",
    "SLURM_CLUSTERS": "clusters",  # opt.c reads both for -M
    "SBATCH_CONSTRAINT": "constraint",
    "SBATCH_ERROR": "error",
    "SBATCH_EXCLUSIVE": "exclusive",
    "SBATCH_GRES": "gres",
    "SBATCH_GPUS": "gpus",
    "SBATCH_GPUS_PER_NODE": "gpus_per_node",
    "SBATCH_GPUS_PER_TASK": "gpus_per_task",
    "SBATCH_INPUT": "input",
    "SBATCH_JOB_NAME": "job_name",
    "SBATCH_MEM_PER_CPU": "mem_per_cpu",
    "SBATCH_MEM_PER_NODE": "mem",
    "SBATCH_NO_REQUEUE": "no_requeue",
    "SBATCH_OPEN_MODE": "open_mode",
    "SBATCH_OUTPUT": "output",
    "SBATCH_PARTITION": "partition",
    "SBATCH_QOS": "qos",
    "SBATCH_REQUEUE": "requeue",
    "SBATCH_RESERVATION": "reservation",
    "SBATCH_SIGNAL": "signal",
    "SBATCH_TIMELIMIT": "time",
    "SBATCH_WAIT": "wait",
    "SBATCH_WCKEY": "wckey",
}
# Flags whose variable is a boolean in Slurm's sense: set empty, "yes" or a non-zero number.
_ENV_FLAGS = frozenset({"no_requeue", "requeue", "wait"})

_SIGNAL_NAMES = frozenset(
    [
        "HUP",
        "INT",
        "QUIT",
        "ILL",
        "TRAP",
        "ABRT",
        "BUS",
        "FPE",
        "KILL",
        "USR1",
        "SEGV",
        "USR2",
        "PIPE",
        "ALRM",
        "TERM",
        "STKFLT",
        "CHLD",
        "CONT",
        "STOP",
        "TSTP",
        "TTIN",
        "TTOU",
        "URG",
        "XCPU",
        "XFSZ",
        "VTALRM",
        "PROF",
        "WINCH",
        "IO",
        "PWR",
        "SYS",
    ]
)
_SIGNAL_RE = re.compile(
    r"(?:(?P<flags>[RB]+):)?(?P<sig>[A-Za-z0-9]+)(?:@(?P<time>\d+))?"
)
WRAP_HEADER = "#!/bin/sh\n# This script was created by sbatch --wrap.\n\n"


class SbatchError(ConductorError):
    """Refusal before submission; printed as 'sbatch: error: <message>'.

    `preamble` is a line printed before it without the "error:" tag, as getopt prints
    "sbatch: unrecognized option '--foo'" before sbatch's own error.
    """

    def __init__(self, message: str, preamble: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.preamble = preamble


class FirstPass:
    """What sbatch needs before reading the script: the options and the script's operands."""

    def __init__(
        self,
        options: list[tuple[str, str | None]],
        operands: list[str],
        wrap: str | None = None,
    ) -> None:
        self.options = options
        self.operands = operands
        self.wrap = wrap

    def has(self, key: str) -> bool:
        return any(k == key for k, _ in self.options)


class SbatchPlan:
    """The submit request and the client-side behaviour sbatch was asked for."""

    def __init__(self, job: dict[str, Any], script: str) -> None:
        self.job = job
        self.script = script
        self.parsable = False
        self.wait = False
        self.test_only = False
        self.quiet = False
        # -M given: sbatch names the cluster it submitted to, as Slurm's does for a
        # working cluster ("Submitted batch job 7 on cluster X", "7;X" with --parsable).
        self.cluster: str | None = None
        self.warnings: list[str] = []


def first_pass(argv: list[str]) -> FirstPass:
    """Parse the command line up to the script name (sbatch's '+' getopt: stop at an operand)."""
    options, operands = getopt_long(argv, OPTIONS, stop_at_operand=True)
    wrap = None
    for key, value in options:
        if key == "wrap":
            wrap = value
    if wrap is not None and operands:
        raise SbatchError("Script arguments not permitted with --wrap option")
    return FirstPass(options, operands, wrap)


def wrap_script(command: str) -> str:
    return f"{WRAP_HEADER}{command}\n"


def check_script(script: str) -> None:
    """The checks sbatch makes on the script body itself before parsing it."""
    from conductor.domain import script as rule

    problem = rule.script_problem(script)
    if problem == rule.EMPTY:
        raise SbatchError("Batch script is empty!")
    if problem == rule.BLANK:
        raise SbatchError("Batch script contains only whitespace!")
    if problem == rule.NO_SHEBANG:
        raise SbatchError(
            "This does not look like a batch script.  The first\n"
            "sbatch: error: line must start with #! followed by the path to an interpreter.\n"
            "sbatch: error: For instance: #!/bin/sh"
        )
    if problem == rule.DOS_LINE_BREAKS:
        raise SbatchError(
            "Batch script contains DOS line breaks (\\r\\n)\n"
            "sbatch: error: instead of expected UNIX line breaks (\\n)."
        )
    if problem == rule.NUL:
        raise SbatchError("The Slurm controller does not allow scripts that contain a NULL character '\\0'.")


def directive_words(script: str) -> list[str]:
    """The words of the `#SBATCH` directives before the first command, in order."""
    words: list[str] = []
    for lineno, line in enumerate(script.split("\n"), start=1):
        if line.startswith("#SBATCH"):
            words.extend(_split_directive(line[len("#SBATCH") :], lineno, line))
            continue
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            break  # the first command: later directives are ignored, as in Slurm
    return words


def _split_directive(text: str, lineno: int, line: str) -> list[str]:
    """Slurm's _get_argument: blanks separate, quotes group, backslash escapes, # comments."""
    words: list[str] = []
    i = 0
    n = len(text)
    while i < n:
        while i < n and text[i].isspace():
            i += 1
        if i >= n:
            break
        current: list[str] = []
        quote = ""
        started = False
        while i < n and (quote or not text[i].isspace()):
            char = text[i]
            if char == "\\" and i + 1 < n:
                current.append(text[i + 1])
                started = True
                i += 2
                continue
            if quote:
                if char == quote:
                    quote = ""
                else:
                    current.append(char)
                i += 1
                continue
            if char in "\"'":
                quote = char
                started = True
                i += 1
                continue
            if char == "#":
                i = n  # the rest of the line is a comment
                break
            current.append(char)
            started = True
            i += 1
        if quote:
            raise SbatchError(f"line {lineno}: Unmatched `{quote}` in [{line}]")
        if started:
            words.append("".join(current))
    return words


def _host_list(value: str, option: str, *, file: bool = False) -> str:
    """A --nodelist or --exclude value: a host list, or, named by a path (it holds a '/', or
    `file`: --nodefile), the file that lists the nodes (by lines or commas), as sbatch reads it.
    The names are checked by the server, against the cluster's nodes."""
    if "/" not in value and not file:
        return value
    try:
        with open(value, encoding="utf-8", errors="replace") as listed:
            text = listed.read(1 << 20)
    except OSError as exc:
        raise SbatchError(f"{option}: cannot read the node list file {value}: {exc.strerror}") from None
    # As Slurm reads a host file: a '#' begins a comment, to the end of its line.
    lines = (line.partition("#")[0] for line in text.splitlines())
    return ",".join(part.strip() for line in lines for part in line.split(",") if part.strip())


def parse_directives(script: str) -> list[tuple[str, str | None]]:
    words = directive_words(script)
    try:
        options, operands = getopt_long(words, OPTIONS, stop_at_operand=True)
    except GetoptError as exc:
        bad = str(exc).split("'")[1] if "'" in str(exc) else str(exc)
        raise SbatchError(
            f"Invalid directive found in batch script: {bad}", preamble=str(exc)
        ) from exc
    if operands:
        raise SbatchError(f"Invalid directive found in batch script: {operands[0]}")
    return options


def env_options(environ: Mapping[str, str]) -> list[tuple[str, str | None]]:
    options: list[tuple[str, str | None]] = []
    for var, key in ENV_OPTIONS.items():
        value = environ.get(var)
        if value is None:
            continue
        if key in _ENV_FLAGS:
            lowered = value.strip().lower()
            # A number is true unless it is zero (any number of zeros); ASCII digits only.
            digits = lowered.removeprefix("-")
            truthy = lowered in ("", "yes") or (digits.isascii() and digits.isdigit() and digits.strip("0") != "")
            if truthy:
                options.append((key, None))
        elif key == "exclusive":
            options.append((key, value or None))
        else:
            options.append((key, value))
    return options


# ---- turning options into the job description --------------------------------------------------


# Counts are ASCII digits (\d alone takes every script's, which int() reads) and at most 9 of
# them: int() refuses over 4,300 with an error of its own.
_COUNT = re.compile(r"\d{1,9}", re.ASCII)
_NODE_COUNT = re.compile(r"(\d{1,9})(?:-(\d{1,9}))?", re.ASCII)


def _positive_int(value: str | None, what: str) -> int:
    text = (value or "").strip()
    if not _COUNT.fullmatch(text) or int(text) <= 0:
        raise SbatchError(f'Invalid numeric value "{value}" for {what}.')
    return int(text)


def _node_count(value: str | None) -> int:
    text = (value or "").strip()
    match = _NODE_COUNT.fullmatch(text)
    if not match or int(match.group(1)) <= 0:
        raise SbatchError(f"invalid node count `{value}'")
    low = int(match.group(1))
    high = int(match.group(2)) if match.group(2) else low
    if high < low:
        raise SbatchError(f"invalid node count `{value}'")
    return low


def _memory(value: str | None, option: str) -> str:
    from conductor.domain.memory import parse_memory_mb

    try:
        megabytes = parse_memory_mb(value or "", field=option)
    except SpecError as exc:
        raise SbatchError(f"Invalid {option} specification: {exc.message}") from exc
    # Normalised to a bare number of MB: the server's grammar is then never in question.
    return str(megabytes)


def _signal(value: str | None) -> str:
    text = (value or "").strip()
    match = _SIGNAL_RE.fullmatch(text)
    if match:
        sig = match.group("sig").upper()
        sig = sig.removeprefix("SIG")
        if (sig.isascii() and sig.isdigit() and len(sig) <= 2 and 0 < int(sig) < 65) or sig in _SIGNAL_NAMES:
            return text
    raise SbatchError(f"Invalid --signal specification: {value}")


def _wants_gpus(value: str | None) -> bool:
    """True unless the request is for zero devices ('0', 'gpu:0', 'gpu:a100:0', 'none')."""
    text = (value or "").strip().lower()
    if text in ("", "none"):
        return False
    for item in text.split(","):
        count = item.rsplit(":", 1)[-1] if ":" in item else item
        if not (count.isdigit() and int(count) == 0):
            return True
    return False


def _export_environment(spec: str, environ: Mapping[str, str]) -> dict[str, str]:
    """Slurm's --export: ALL (default), NONE/NIL, [ALL,]VAR[=value],... ."""
    items = [item for item in spec.split(",") if item != ""]
    if not items:
        raise SbatchError("Invalid --export specification: empty")
    upper = [item.upper() for item in items]
    if "ALL" in upper:
        env = dict(environ)
    else:
        # NONE, NIL or an explicit list: the job gets no copy of the submitting environment
        # beyond SLURM_* variables and the identity a login shell would have (Slurm loads the
        # user's login environment in this case, as --get-user-env does).
        env = {k: v for k, v in environ.items() if k.startswith("SLURM_")}
        for name in ("HOME", "USER", "LOGNAME", "SHELL"):
            if name in environ:
                env[name] = environ[name]
        env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    for item, up in zip(items, upper, strict=True):
        if up in ("ALL", "NONE", "NIL"):
            continue
        name, eq, value = item.partition("=")
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise SbatchError(f"Invalid --export specification: {item}")
        if eq:
            env[name] = value
        elif name in environ:
            env[name] = environ[name]
    return env


def _current_umask() -> str:
    mask = os.umask(0)
    os.umask(mask)
    return f"0{mask & 0o777:03o}"


def unreadable_variables(env: dict[str, str]) -> list[str]:
    """Take out of `env` the variables the API would refuse: a name or value that is not UTF-8
    (bytes of the process environment, decoded as surrogates; the API takes text), an empty
    name (an entry `=x`) or a name with a control character. Their names, as shown on a
    terminal."""
    dropped = [
        name for name, value in env.items()
        if not is_text(name) or not is_text(value) or variable_name_problem(name) is not None
    ]
    for name in dropped:
        del env[name]
    return sorted(
        printable(name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")) for name in dropped
    )


def build_plan(  # noqa: C901 - one branch per sbatch option
    first: FirstPass,
    script: str,
    *,
    script_path: str | None,
    environ: Mapping[str, str],
    cwd: str,
) -> SbatchPlan:
    """Combine directives, SBATCH_* variables and the command line into the request."""
    layered: list[tuple[str, str | None]] = []
    layered += parse_directives(script)
    layered += env_options(environ)
    layered += first.options

    plan = SbatchPlan(job={}, script=script)
    job = plan.job
    values: dict[str, str | None] = {}
    mail_types: list[str] = []
    for key, value in layered:
        if key == "mail_type":
            mail_types.append(value or "")
        values[key] = value

    def say(message: str) -> None:
        if message and message not in plan.warnings:
            plan.warnings.append(message)

    for key, value in values.items():
        if key in _GPU_OPTIONS and _wants_gpus(value):
            raise SbatchError(
                "Batch job submission failed: Invalid generic resource (gres) specification"
                " (this cluster has no GPUs)"
            )
        message = _IGNORED_WITH_WARNING.get(key)
        if message:
            say(message)
    if "clusters" in values and (values["clusters"] or "").strip().lower() != CLUSTER:
        say(f"there is one cluster, {CLUSTER}; --clusters={values['clusters']} is ignored")
    if "gres_flags" in values:
        say("--gres-flags is ignored")

    # Name: explicit, else the script's file name, else "wrap" or "sbatch" (stdin).
    if values.get("job_name") is not None:
        job["name"] = values["job_name"]
    elif first.wrap is not None:
        job["name"] = "wrap"
    elif script_path:
        job["name"] = os.path.basename(script_path)
    else:
        job["name"] = "sbatch"
    if script_path:
        # scontrol's Command=: the script's full path, as sbatch resolves its argv[0].
        job["command"] = os.path.normpath(os.path.join(cwd, script_path))

    for key, api in (
        ("account", "account"),
        ("partition", "partition"),
        ("qos", "qos"),
        ("comment", "comment"),
        ("mail_user", "mail_user"),
    ):
        if values.get(key) is not None:
            job[api] = values[key]

    # Both given: the file wins, as in sbatch.
    if "nodelist" in values:
        job["required_nodes"] = _host_list(values["nodelist"] or "", "--nodelist")
    if "nodefile" in values:
        job["required_nodes"] = _host_list(values["nodefile"] or "", "--nodefile", file=True)
    if "exclude" in values:
        job["excluded_nodes"] = _host_list(values["exclude"] or "", "--exclude")

    if "begin" in values:
        begin = values["begin"] or ""
        if not begin.strip():
            # `--begin="$WHEN"` with the variable unset: Slurm's parse_time("") is 0, which
            # arg_set_begin refuses ("Invalid --begin specification"), as --time= and --mem= are.
            raise SbatchError(
                "Invalid --begin specification: the time is empty; give one such as now+1hour, "
                "16:00, tomorrow or 2030-01-31T08:00:00"
            )
        job["begin_time"] = begin  # its grammar is checked by the server (parse_begin_time)

    if "time" in values:
        text = values["time"] or ""
        from conductor.domain.timespec import parse_time_limit

        try:
            parse_time_limit(text, field="--time")
        except SpecError as exc:
            raise SbatchError(f"Invalid --time specification: {exc.message}") from exc
        job["time_limit"] = text.strip()

    if "ntasks" in values:
        job["ntasks"] = _positive_int(values["ntasks"], "number of tasks")
    if "ntasks_per_node" in values:
        job["ntasks_per_node"] = _positive_int(
            values["ntasks_per_node"], "ntasks-per-node"
        )
    if "cpus_per_task" in values:
        job["cpus_per_task"] = _positive_int(values["cpus_per_task"], "cpus-per-task")
    if "nodes" in values:
        job["nodes"] = _node_count(values["nodes"])
    if "mem" in values and "mem_per_cpu" in values:
        raise SbatchError("--mem and --mem-per-cpu are mutually exclusive.")
    if "mem" in values:
        job["memory_per_node"] = _memory(values["mem"], "--mem")
    if "mem_per_cpu" in values:
        job["memory_per_cpu"] = _memory(values["mem_per_cpu"], "--mem-per-cpu")

    if "array" in values:
        job["array"] = _array(values["array"])
    if "dependency" in values:
        job["dependency"] = _dependency(values["dependency"])

    if "exclusive" in values:
        mode = (values["exclusive"] or "").lower()
        if mode not in ("", "user", "mcs"):
            raise SbatchError(f"invalid exclusive option {values['exclusive']}")
        if mode:
            say(f"--exclusive={mode} is treated as --exclusive")
        job["exclusive"] = True
    if "hold" in values:
        job["hold"] = True
    # --requeue and --no-requeue: the last one given wins, in precedence order.
    for key, _ in reversed(layered):
        if key in ("requeue", "no_requeue"):
            job["requeue"] = key == "requeue"
            break

    if "nice" in values:
        raw = values["nice"]
        try:
            nice = int(raw) if raw is not None else 100
        except ValueError:
            raise SbatchError(f"Invalid --nice value: {raw}") from None
        if abs(nice) > 2147483645:
            raise SbatchError("Nice value out of range (+/- 2147483645)")
        job["nice"] = nice
    if "priority" in values:
        raw = (values["priority"] or "").strip()
        if raw.upper() == "TOP":
            job["priority"] = 4294967293
        elif re.fullmatch(r"\d{1,10}", raw, re.ASCII):
            job["priority"] = int(raw)
        else:
            raise SbatchError(
                "Priority must be >= 0"
                if raw.startswith("-")
                else f"Invalid --priority value: {raw}"
            )

    if "signal" in values:
        job["signal"] = _signal(values["signal"])
    if "open_mode" in values:
        mode = (values["open_mode"] or "").strip().lower()
        if mode.startswith("a"):
            job["open_mode"] = "append"
        elif mode.startswith("t"):
            job["open_mode"] = "truncate"
        else:
            raise SbatchError(f"Invalid --open-mode argument: {values['open_mode']}")

    if mail_types:
        for entry in mail_types:
            # The server checks the same list (domain/mail.py); refused here first, as Slurm's
            # sbatch does, naming the option as the user wrote it.
            problem = mail_type_problem(entry)
            if problem is not None:
                raise SbatchError(f"--mail-type={entry} invalid: {problem}")
        job["mail_type"] = ",".join(t for t in mail_types if t)
    if mail_types or "mail_user" in values:
        say(
            "mail is not sent by this cluster; --mail-type/--mail-user are recorded only"
        )

    # Files: "none" means /dev/null; relative paths are resolved by the server against the
    # job's working directory, as slurmd does, so they are sent as written.
    for key, api in (
        ("output", "standard_output"),
        ("error", "standard_error"),
        ("input", "standard_input"),
    ):
        if values.get(key) is not None:
            path = values[key] or ""
            job[api] = "/dev/null" if path.lower() == "none" else path

    work_dir = values.get("chdir")
    if work_dir is not None:
        if not work_dir.strip():
            # `--chdir="$DIR"` with the variable unset: running in the submission directory
            # instead would put the job's files where the user did not ask.
            raise SbatchError("--chdir: the working directory is empty; give a directory path")
        work_dir = os.path.normpath(os.path.join(cwd, os.path.expanduser(work_dir)))
    job["current_working_directory"] = work_dir or cwd
    job["submit_directory"] = cwd  # the job's SLURM_SUBMIT_DIR, whatever --chdir says (sbatch.c)

    export = values.get("export")
    if export is None:
        # SBATCH_EXPORT alone: SLURM_EXPORT_ENV is srun's input (and what sbatch sets for the
        # job), not sbatch's.
        export = environ.get("SBATCH_EXPORT") or "ALL"
    # The submitter's file mode mask, which the job's files are made with (as sbatch's
    # _set_umask_env: one already set is kept).
    job["environment"] = _export_environment(export, {"SLURM_UMASK": _current_umask(), **environ})
    dropped = unreadable_variables(job["environment"])
    if dropped:
        # Not a refusal: one variable of the login environment nobody thinks of (a Latin-1
        # value) would otherwise stop every submission.
        say(f"environment variable{'s' if len(dropped) > 1 else ''} {', '.join(dropped)} not passed to the job: "
            "not UTF-8 text, or a control character in the name")

    script_args = first.operands[1:]
    if script_args:
        job["argv"] = script_args

    plan.parsable = "parsable" in values
    plan.wait = "wait" in values
    plan.test_only = "test_only" in values
    plan.quiet = "quiet" in values
    if "clusters" in values:
        plan.cluster = CLUSTER
    if plan.test_only:
        job["test_only"] = True
    return plan


# The usual --array and --dependency values only need a syntax check here: the server
# validates ranges, limits and job ids anyway (Slurm too leaves those to slurmctld), and the
# full parsers import dataclasses/enum/datetime, ~10-20 ms that every `sbatch --array` from
# submitit would pay. Anything else goes through the full parser for a precise message.
_SIMPLE_ARRAY = r"\d+(?:-\d+(?::\d+)?)?(?:,\d+(?:-\d+(?::\d+)?)?)*(?:%\d+)?"
_SIMPLE_DEPENDENCY = (
    r"(?:(?:after|afterany|afterok|afternotok|aftercorr):\d+(?:_\d+)?(?::\d+(?:_\d+)?)*|singleton)"
    r"(?:[,?](?:(?:after|afterany|afterok|afternotok|aftercorr):\d+(?:_\d+)?(?::\d+(?:_\d+)?)*|singleton))*"
)


def _array(value: str | None) -> str:
    text = (value or "").strip()
    if re.fullmatch(_SIMPLE_ARRAY, text):
        return text
    try:
        from conductor.domain.arrays import parse_array_spec
    except ImportError:  # the parser module is not there yet: the server validates
        if not re.fullmatch(r"[0-9,\-:%]+", text):
            raise SbatchError("Invalid job array specification") from None
        return text
    try:
        parse_array_spec(text)
    except SpecError as exc:
        raise SbatchError(f"Invalid job array specification: {exc.message}") from exc
    return text


def _dependency(value: str | None) -> str:
    text = (value or "").strip()
    if re.fullmatch(_SIMPLE_DEPENDENCY, text):
        return text
    try:
        from conductor.domain.dependency import parse_dependency
    except ImportError:
        return text
    try:
        parse_dependency(text)
    except SpecError as exc:
        raise SbatchError(
            f"Batch job submission failed: Job dependency problem ({exc.message})"
        ) from exc
    return text
