"""`conductor config import-slurm`: a configuration file from a site's slurm.conf.

Carried over: `PartitionName` lines (Nodes, Default, MaxTime, DefaultTime, PriorityTier,
PriorityJobFactor, MaxCPUsPerNode, AllowAccounts, State; `PartitionName=DEFAULT` lines as defaults of those that
follow), `NodeName` lines (CPUs, RealMemory, Features, Weight; `NodeName=DEFAULT` likewise),
`PriorityWeight*`, `PriorityMaxAge`, `PriorityDecayHalfLife`, `PriorityFavorSmall`,
`SchedulerType`, `SchedulerParameters` (bf_max_job_test), `EnforcePartLimits` and
`AccountingStorageEnforce`. Every other
line, and every key of a carried line that has no equivalent, is reported with the reason.
Pure: text in, TOML text and notes out; the output is checked by the loader before it is given.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from conductor.config.loader import ConfigError, parse_config
from conductor.domain.hostlist import expand_hostlist
from conductor.domain.numbers import whole_number
from conductor.errors import Invalid


@dataclass(frozen=True, slots=True)
class Note:
    """A line (or a key of one) not carried over, and why."""

    line: int
    text: str
    why: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.text}: {self.why}"


@dataclass(slots=True)
class Imported:
    toml: str
    notes: list[Note] = field(default_factory=list)
    carried: int = 0  # lines carried over, whole or in part


_PARTITION_KEYS = {
    "nodes": "Nodes", "default": "Default", "maxtime": "MaxTime", "defaulttime": "DefaultTime",
    "prioritytier": "PriorityTier", "priorityjobfactor": "PriorityJobFactor", "maxcpuspernode": "MaxCPUsPerNode", "allowaccounts": "AllowAccounts",
    "state": "State",
}
_NODE_KEYS = {"cpus": "CPUs", "procs": "CPUs", "realmemory": "RealMemory", "features": "Features", "weight": "Weight"}
# Node keys that describe the hardware's shape: the worker finds it itself.
_NODE_SHAPE = {"sockets", "corespersocket", "threadspercore", "boards", "socketsperboard", "cpuspec", "corespeccount",
               "memspeclimit", "tmpdisk", "gres", "state", "nodeaddr", "nodehostname", "port", "reason"}
_PRIORITY_KEYS = {
    "priorityweightage": "PriorityWeightAge", "priorityweightfairshare": "PriorityWeightFairshare",
    "priorityweightjobsize": "PriorityWeightJobSize", "priorityweightpartition": "PriorityWeightPartition",
    "priorityweightqos": "PriorityWeightQOS", "prioritymaxage": "PriorityMaxAge",
    "prioritydecayhalflife": "PriorityDecayHalfLife", "priorityfavorsmall": "PriorityFavorSmall",
}
_WHY = [
    (re.compile(r"^(slurmctld|slurmd|slurmdbd|slurmuser|slurmduser|slurmctldhost|controlmachine|backupcontroller|"
                r"controladdr|statesave|slurmdspool|authtype|authinfo|credtype|cryptotype|munge|clustername|"
                r"slurmdparameters|slurmctldparameters|returntoservice|mailprog|plugindir|plugstackconfig|"
                r"tmpfs|sluid|communicationparameters|messagetimeout|tcptimeout|launchparameters|epilog|prolog|"
                r"healthcheck|srunportrange|unkillable|killwait|waittime|inactivelimit|minjobage|maxjobcount|"
                r"firstjobid|maxarraysize|treewidth|"
                r"reconfigflags|rebootprogram|resumeprogram|suspendprogram|resvoverrun|debugflags|"
                r"dependencyparameters|usepam|propagate|jobsubmitplugins|jobcredential|"
                r"schedulertimeslice|maxstepcount|maxtaskspernode)", re.IGNORECASE),
     "daemon setting: there is no slurmctld/slurmd here (CONDUCTOR_* settings cover what applies)"),
    (re.compile(r"^(select|proctrack|task|gres|cgroup|cpufreq|acctgather|nodefeatures|burstbuffer|"
                r"preempt|power|topology|switchtype|mpi)", re.IGNORECASE),
     "plugin setting: conductor places jobs itself and confines them with cpusets/cgroups"),
    (re.compile(r"^(accountingstorage|jobacct|jobcomp)", re.IGNORECASE),
     "accounting setting: job history is kept in conductor's own database"),
    (re.compile(r"^priority", re.IGNORECASE),
     "priority setting without an equivalent (PriorityWeight{Age,Fairshare,JobSize,Partition,QOS}, "
     "PriorityMaxAge, PriorityDecayHalfLife and PriorityFavorSmall are carried over)"),
    (re.compile(r"^(def|max)mem(per)?(cpu|node|gpu)", re.IGNORECASE),
     "memory defaults and caps are not configured per cluster here: jobs give --mem, nodes their memory"),
]


@dataclass(slots=True)
class _Found:
    """What the lines said so far."""

    notes: list[Note] = field(default_factory=list)
    carried: int = 0
    top: dict[str, object] = field(default_factory=dict)
    priority: dict[str, object] = field(default_factory=dict)
    nodes: dict[str, dict[str, object]] = field(default_factory=dict)
    partitions: dict[str, dict[str, object]] = field(default_factory=dict)
    node_default: dict[str, object] = field(default_factory=dict)
    part_default: dict[str, object] = field(default_factory=dict)
    scheduler_type: str | None = None
    max_job_test: int | None = None


def import_slurm_conf(text: str) -> Imported:
    """The configuration file for slurm.conf `text`, and what was not carried over."""
    found = _Found()
    for number, line in _logical_lines(text):
        try:
            pairs = _pairs(line)
            if pairs and pairs[0][0].lower() == "schedulerparameters":
                # A long option list is often continued over lines: its spaces mean nothing.
                pairs = [(pairs[0][0], re.sub(r"\s+", "", line.partition("=")[2]))]
        except ValueError as exc:
            found.notes.append(Note(number, _short(line), f"not carried over: {exc}"))
            continue
        if not pairs:
            found.notes.append(Note(number, _short(line), "not carried over: not a Key=Value line"))
            continue
        key, value = pairs[0]
        lowered = key.lower()
        if lowered == "nodename":
            found.carried += _node_line(number, value, pairs[1:], found.nodes, found.node_default, found.notes)
        elif lowered == "partitionname":
            found.carried += _partition_line(
                number, value, pairs[1:], found.partitions, found.part_default, found.notes
            )
        elif len(pairs) > 1:
            found.notes.append(Note(number, _short(line), "not carried over: several keys on a line that is not "
                                                          "a NodeName or PartitionName line"))
        else:
            _single(number, key, value, found)

    backfill: dict[str, object] = {}
    if found.scheduler_type == "sched/builtin":
        backfill["Enabled"] = False
    else:
        # Slurm's sched/backfill plans every job it tests (bf_max_job_test, 500 by default in
        # 22.05): a reservation for each, which is conservative backfill at that depth.
        backfill["Enabled"] = True
        backfill["MaxJobTest"] = found.max_job_test or 500
        backfill["Depth"] = found.max_job_test or 500
    found.top.setdefault("EnforcePartLimits", "NO")  # Slurm's default: over MaxTime, a job waits
    toml = _write(found.top, found.nodes, found.partitions, found.priority, backfill)
    try:
        parse_config(toml, "the written configuration")
    except ConfigError as exc:
        raise ConfigError(f"slurm.conf cannot be carried over as it is: {exc}") from None
    return Imported(toml, found.notes, found.carried)


def _single(number: int, key: str, value: str, found: _Found) -> None:
    """A line of one Key=Value."""
    lowered = key.lower()
    notes = found.notes
    if lowered in _PRIORITY_KEYS:
        name = _PRIORITY_KEYS[lowered]
        found.priority[name] = _number_or_text(value) if name.startswith("PriorityWeight") else value
    elif lowered == "prioritytype":
        if value.lower() != "priority/multifactor":
            notes.append(Note(number, f"PriorityType={value}", "carried over as the multifactor weights given "
                                                                "(none given: every weight 0, priority order only)"))
    elif lowered == "schedulertype":
        found.scheduler_type = value.lower()
        if found.scheduler_type not in ("sched/backfill", "sched/builtin"):
            notes.append(Note(number, f"SchedulerType={value}", "unknown scheduler: backfill kept"))
    elif lowered == "schedulerparameters":
        for item in value.split(","):
            option, eq, amount = item.strip().partition("=")
            if option == "bf_max_job_test" and eq and (tests := _count(amount)):
                found.max_job_test = tests
            elif option:
                notes.append(Note(number, f"SchedulerParameters {item.strip()}",
                                  "not carried over: no equivalent here (the backfill pass is bounded by "
                                  "bf_max_job_test alone, and runs on every change)"))
    elif lowered == "enforcepartlimits":
        found.top["EnforcePartLimits"] = value.upper()
    elif lowered == "accountingstorageenforce":
        # Accounts and associations live in the database (sacctmgr); whether a job needs one
        # is this setting. Words without an equivalent (wckeys, nojobs, nosteps) are dropped.
        words = [w.strip().lower() for w in value.split(",") if w.strip()]
        kept = [w for w in words if w in ("associations", "limits", "qos", "safe", "all")]
        if len(kept) < len(words):
            notes.append(Note(number, f"AccountingStorageEnforce={value}",
                              f"carried over as '{','.join(kept)}': wckeys, nojobs and nosteps have no equivalent"))
        found.top["AccountingStorageEnforce"] = ",".join(kept)
    else:
        notes.append(Note(number, _short(f"{key}={value}"), "not carried over: " + _why(key)))
        return
    found.carried += 1


# ------------------------------------------------------------------ lines
def _logical_lines(text: str) -> list[tuple[int, str]]:
    """(first line number, text) of each non-empty line, comments cut, continuations joined."""
    out: list[tuple[int, str]] = []
    pending, start = "", 0
    for number, raw in enumerate(text.splitlines(), 1):
        line = re.sub(r"(?<!\\)#.*", "", raw).replace("\\#", "#").rstrip()
        if not pending:
            start = number
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = (pending + line).strip()
        pending = ""
        if line:
            out.append((start, line))
    if pending.strip():
        out.append((start, pending.strip()))
    return out


# A piece of a word, as shlex.split (POSIX) reads it: unquoted characters, a backslash and the
# character it escapes, a single-quoted or a double-quoted string; or the whitespace between
# words (shlex's: space, tab, CR, LF; not Unicode's), or an opening quote (or a final backslash)
# without its end.
_PIECE = re.compile(
    r"""(?P<space>[ \t\r\n]+)|(?P<plain>[^ \t\r\n'"\\]+)|\\(?P<escaped>.)|'(?P<single>[^']*)'"""
    r"""|"(?P<double>[^"\\]*(?:\\.[^"\\]*)*)"|(?P<open>['"])|(?P<final>\\)""",
    re.DOTALL,
)
# In double quotes a backslash escapes only a backslash or a double quote, and is kept otherwise.
_DOUBLE_ESCAPE = re.compile(r'\\([\\"])')


def _words(line: str) -> list[str]:
    """shlex.split(line) in one pass: shlex builds each word by string concatenation on an
    attribute, which is quadratic (16 s for a line of 1 MB)."""
    words: list[str] = []
    word: list[str] | None = None  # None: between words
    for piece in _PIECE.finditer(line):
        kind = piece.lastgroup
        if kind == "space":
            if word is not None:
                words.append("".join(word))
            word = None
            continue
        if kind == "open":
            raise ValueError("No closing quotation")
        if kind == "final":
            raise ValueError("No escaped character")
        text = piece.group(kind or "plain")
        word = [] if word is None else word
        # split keeps the escaped characters (its group) and drops their backslashes.
        word.append("".join(_DOUBLE_ESCAPE.split(text)) if kind == "double" else text)
    if word is not None:
        words.append("".join(word))
    return words


def _pairs(line: str) -> list[tuple[str, str]]:
    words = _words(line)
    pairs: list[tuple[str, str]] = []
    for word in words:
        key, eq, value = word.partition("=")
        if not eq or not key:
            if pairs:
                raise ValueError(f"'{word}' is not Key=Value")
            return []
        pairs.append((key, value))
    return pairs


def _short(line: str) -> str:
    return line if len(line) <= 60 else line[:57] + "..."


def _why(key: str) -> str:
    for pattern, why in _WHY:
        if pattern.match(key):
            return why
    return "no equivalent in conductor's configuration"


def _count(value: str) -> int | None:
    """`value` as a whole number to carry over as one (domain/numbers.py), None otherwise: it is
    then carried over as text, for the configuration's own check to refuse."""
    return whole_number(value, 2**63 - 1)


def _number_or_text(value: str) -> object:
    count = _count(value)
    return value if count is None else count


def _node_line(number: int, name: str, pairs: list[tuple[str, str]], nodes: dict[str, dict[str, object]],
               default: dict[str, object], notes: list[Note]) -> int:
    values: dict[str, object] = dict(default)
    for key, value in pairs:
        lowered = key.lower()
        if lowered in _NODE_KEYS:
            target = _NODE_KEYS[lowered]
            values[target] = _number_or_text(value) if target in ("CPUs", "RealMemory", "Weight") else value
        elif lowered in _NODE_SHAPE:
            notes.append(Note(number, f"NodeName={name} {key}={value}",
                              "not carried over: a worker finds its node's shape and state itself"))
        else:
            notes.append(Note(number, f"NodeName={name} {key}={value}", "not carried over: " + _why(key)))
    if name.upper() == "DEFAULT":
        default.clear()
        default.update(values)
        return 1
    try:
        hosts = expand_hostlist(name, field="NodeName")
    except Invalid as exc:
        notes.append(Note(number, f"NodeName={name}", f"not carried over: {exc.message}"))
        return 0
    if not hosts:
        notes.append(Note(number, "NodeName=", "not carried over: the line names no node"))
        return 0
    nodes[name] = values
    return 1


def _partition_line(number: int, name: str, pairs: list[tuple[str, str]], partitions: dict[str, dict[str, object]],
                    default: dict[str, object], notes: list[Note]) -> int:
    values: dict[str, object] = dict(default)
    for key, value in pairs:
        lowered = key.lower()
        target = _PARTITION_KEYS.get(lowered)
        if target is None:
            notes.append(Note(number, f"PartitionName={name} {key}={value}", "not carried over: " + _partition_why(key)))
            continue
        if target in ("MaxTime", "DefaultTime") and value.upper() in ("INFINITE", "UNLIMITED"):
            value = "UNLIMITED"
        if target in ("PriorityTier", "PriorityJobFactor", "MaxCPUsPerNode") and (count := _count(value)) is not None:
            values[target] = count
        elif target == "MaxCPUsPerNode" and value.upper() == "UNLIMITED":
            values.pop(target, None)
        elif target == "Default":
            values[target] = value.upper() == "YES"
        elif target == "AllowAccounts":
            values[target] = [a for a in value.split(",") if a] if value.upper() != "ALL" else "ALL"
        else:
            values[target] = value.upper() if target == "State" else value
    if name.upper() == "DEFAULT":
        default.clear()
        default.update(values)
        return 1
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", name):  # fullmatch: `$` also takes "p\n"
        notes.append(Note(number, _short(f"PartitionName={name}"), "not carried over: a partition name is 1-64 "
                                                                   "letters, digits, '_', '.' or '-'"))
        return 0
    if name in partitions:
        # Slurm's slurmctld stops on such a file ("duplicate entry for partition"); versions
        # before logged "duplicate entry for partition ..., ignoring" and kept the first line.
        notes.append(Note(number, f"PartitionName={name}", "not carried over: the partition is defined on an "
                                                           "earlier line, which is kept (Slurm refuses a "
                                                           "partition defined twice)"))
        return 0
    partitions[name] = values
    return 1


def _partition_why(key: str) -> str:
    lowered = key.lower()
    if lowered in ("maxnodes", "minnodes"):
        return "jobs run on one node here"
    if lowered in ("allowgroups", "denyaccounts", "allowqos", "denyqos", "allocnodes", "rootonly", "exclusiveuser"):
        return "access is limited by AllowAccounts alone here"
    if lowered in ("oversubscribe", "shared", "preemptmode", "gracetime", "overtimelimit"):
        return "jobs never share CPUs nor are preempted here"
    if lowered in ("qos", "tresbillingweights", "hidden", "lln", "reqresv", "suspendtime",
                   "resumetimeout", "suspendtimeout", "selecttypeparameters", "jobdefaults", "cpubind"):
        return "no equivalent in conductor's configuration"
    return _why(key)


# ------------------------------------------------------------------ TOML
def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(str(value))


def _table(header: str, values: dict[str, object]) -> list[str]:
    return [f"[{header}]", *(f"{key} = {_toml_value(v)}" for key, v in values.items()), ""]


def _write(top: dict[str, object], nodes: dict[str, dict[str, object]], partitions: dict[str, dict[str, object]],
           priority: dict[str, object], backfill: dict[str, object]) -> str:
    out = ["# Cluster configuration written by `conductor config import-slurm` from a slurm.conf.", ""]
    out += [f"{key} = {_toml_value(v)}" for key, v in top.items()] + [""]
    for name, values in nodes.items():
        out += _table(f"nodes.{json.dumps(name)}", values)
    for name, values in partitions.items():
        out += _table(f"partitions.{json.dumps(name)}", values)
    if priority:
        out += _table("priority", priority)
    out += _table("backfill", backfill)
    return "\n".join(out)
