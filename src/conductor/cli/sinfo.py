"""`conductor sinfo`: partitions and nodes in sinfo's layout."""

from __future__ import annotations

import os
import re
import sys
import time

from conductor.cli.client import Client
from conductor.cli.common import SLURM_VERSION, UsageError, empty_format, field_width, run, split_list
from conductor.cli.getopt import Option, OptionTable, getopt_long
from conductor.domain.text import printable

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Collection
    from typing import Any

    Row = dict[str, Any]

PROG = "sinfo"
DEFAULT_FORMAT = "%#P %.5a %.10l %.6D %.6t %N"
NODE_FORMAT = "%#N %.6D %.#P %6t"
LONG_FORMAT = "%#P %.5a %.10l %.10s %.4r %.8h %.10g %.6D %.11T %N"
LONG_NODE_FORMAT = "%#N %.6D %.#P %.11T %4c %.8z %.6m %.8d %.6w %.8f %20E"
SUMMARIZE_FORMAT = "%#P %.5a %.10l %.16F %N"
# -R/--list-reasons: "reason:20 ,user:9 ,timestamp:19 ,nodelist:0" (with -l: "reason:20
# ,userlong:12 ,timestamp:19 ,statecompact:6 ,nodelist:0") in src/sinfo/opts.c, as -o formats.
REASONS_FORMAT = "%20E %9u %19H %N"
LONG_REASONS_FORMAT = "%20E %12U %19H %6t %N"
# The nodes -R lists unless -t says otherwise (opts.c: "down,fail,drain").
REASONS_STATES = "down,fail,drain"

MIN_COMPUTED_WIDTH = 9

# The node states -t takes: every one sinfo knows (src/sinfo/opts.c, _node_state_id), in the
# order it tries them on an abbreviation. Those no node here is ever in (FUTURE, POWERED_DOWN...)
# are valid and match no node.
NODE_STATES = (
    "UNKNOWN", "DOWN", "IDLE", "ALLOCATED", "MIXED", "FUTURE", "DRAIN", "DRAINED", "DRAINING", "BLOCKED",
    "CLOUD", "COMPLETING", "DYNAMIC_FUTURE", "DYNAMIC_NORM", "EXTERNAL", "INVALID_REG", "FAIL", "MAINTENANCE",
    "POWER_DOWN", "POWER_UP", "POWERED_DOWN", "REBOOT_REQUESTED", "REBOOT_ISSUED", "RESERVED", "NOT_RESPONDING",
    "PLANNED", "POWERING_UP", "POWERING_DOWN",
)
# Other spellings sinfo takes: short forms of its own and older names.
STATE_ALIASES = {
    "NO_RESPOND": "NOT_RESPONDING", "FUTR": "FUTURE", "NPC": "NPC", "PERFCTRS": "PERFCTRS", "BOOT": "BOOT",
}

COMPACT = {
    "IDLE": "idle",
    "MIXED": "mix",
    "ALLOCATED": "alloc",
    "DOWN": "down",
    "DRAIN": "drain",
    "DRAINING": "drng",
    "COMPLETING": "comp",
    "RESERVED": "resv",
    "UNKNOWN": "unk",
}

OPTIONS = OptionTable(
    [
        Option("all", ("all",), "a"),
        Option("dead", ("dead",), "d"),
        Option("exact", ("exact",), "e"),
        Option("noheader", ("noheader",), "h"),
        Option("help", ("help",), None),
        Option("hide", ("hide",), None),
        Option("iterate", ("iterate",), "i", "required"),
        Option("long", ("long",), "l"),
        Option("clusters", ("clusters", "cluster"), "M", "required"),
        Option("nodes", ("nodes",), "n", "required"),
        Option("node", ("Node",), "N"),
        Option("noconvert", ("noconvert",), None),
        Option("format", ("format",), "o", "required"),
        Option("Format", ("Format",), "O", "required"),
        Option("partition", ("partition",), "p", "required"),
        Option("responding", ("responding",), "r"),
        Option("list_reasons", ("list-reasons",), "R"),
        Option("summarize", ("summarize",), "s"),
        Option("sort", ("sort",), "S", "required"),
        Option("states", ("states", "state"), "t", "required"),
        Option("reservation", ("reservation",), "T"),
        Option("usage", ("usage",), None),
        Option("verbose", ("verbose",), "v"),
        Option("version", ("version",), "V"),
        Option("json", ("json",), None, "optional"),
        Option("yaml", ("yaml",), None, "optional"),
    ]
)


USAGE = (
    "Usage: sinfo [-adelNRrsTv] [-i seconds] [-t states] [-p partition] [-n nodes]\n"
    "             [-S fields] [-o format] [-O Format] [--usage] [--help]\n"
)

DESCRIBED: dict[str, tuple[str, str]] = {
    "all": ("", "show all partitions (including hidden and those not accessible)"),
    "clusters": ("names", "clusters to view (one cluster here)"),
    "dead": ("", "show only non-responding nodes"),
    "exact": ("", "group nodes only on exact match of configuration"),
    "Format": ("fields", "format specification by field name (e.g. NodeList:20,StateLong)"),
    "format": ("format", "format specification (e.g. \"%#P %.5a %.10l %.6D %.6t %N\")"),
    "help": ("", "show this help message"),
    "hide": ("", "do not show hidden or non-accessible partitions"),
    "iterate": ("seconds", "specify an iteration period"),
    "json": ("v0.0.40", "dump node information as JSON (data_parser v0.0.40): one record per node and partition"),
    "list_reasons": ("", "list reasons nodes are down or drained"),
    "long": ("", "long output - displays more information"),
    "node": ("", "Node-centric format"),
    "noconvert": ("", "don't convert units from their original type"),
    "noheader": ("", "no headers on output"),
    "nodes": ("nodes", "report on specific node(s)"),
    "partition": ("partition", "report on specific partition"),
    "reservation": ("", "show only reservation information (none here)"),
    "responding": ("", "report only responding nodes"),
    "sort": ("fields", "comma separated list of fields to sort on"),
    "states": ("node_state", "specify the what states of nodes to view"),
    "summarize": ("", "report state summary only"),
    "usage": ("", "display brief usage message"),
    "verbose": ("", "verbosity level"),
    "version": ("", "output version information and exit"),
    "yaml": ("data_parser", "Slurm's YAML output (not supported here)"),
}


def help_text() -> str:
    from conductor.cli.helptext import page

    return page(USAGE, OPTIONS, DESCRIBED)


def _limit(seconds: Any) -> str:
    """sinfo prints limits as 'infinite' or days-hours:minutes:seconds."""
    if seconds is None:
        return "infinite"
    from conductor.domain.timespec import format_duration

    return format_duration(int(seconds))


def _hostlist(names: list[str]) -> str:
    from conductor.domain.hostlist import compress_hostlist

    return compress_hostlist(names) if names else ""


# code -> (header, getter(row)) where a row is one partition x node-state group (or one node).
FIELDS: dict[str, tuple[str, Callable[[Row], str]]] = {
    "P": ("PARTITION", lambda r: r["partition"] + ("*" if r["default"] else "")),
    "R": ("PARTITION", lambda r: r["partition"]),
    "a": ("AVAIL", lambda r: r["avail"]),
    "l": ("TIMELIMIT", lambda r: _limit(r["max_time"])),
    "L": ("DEFAULTTIME", lambda r: "n/a" if r.get("default_time") is None else _limit(r["default_time"])),
    "D": ("NODES", lambda r: str(len(r["nodes"]))),
    "t": ("STATE", lambda r: r["state_compact"]),
    "T": ("STATE", lambda r: r["state_long"]),
    "N": ("NODELIST", lambda r: _hostlist([n["name"] for n in r["nodes"]])),
    "n": ("HOSTNAMES", lambda r: _hostlist([n["name"] for n in r["nodes"]])),
    "o": ("NODE_ADDR", lambda r: _hostlist([n["name"] for n in r["nodes"]])),
    "c": ("CPUS", lambda r: _span([int(n.get("cpus") or 0) for n in r["nodes"]])),
    "C": ("CPUS(A/I/O/T)", lambda r: _cpu_counts(r["nodes"])),
    "F": ("NODES(A/I/O/T)", lambda r: _node_counts(r["nodes"])),
    "m": (
        "MEMORY",
        lambda r: _span([int(n.get("memory_mb") or 0) for n in r["nodes"]]),
    ),
    "e": (
        "FREE_MEM",
        lambda r: _span(
            [
                int(n.get("memory_mb") or 0) - int(n.get("alloc_memory_mb") or 0)
                for n in r["nodes"]
            ]
        ),
    ),
    "O": ("CPU_LOAD", lambda r: "N/A"),
    # A node declared by its CPUs alone has that many sockets of one core of one thread, as
    # slurm.conf reads a node line without a topology (and as scontrol show node prints it).
    "z": (
        "S:C:T",
        lambda r: _span([int(n.get("cpus") or 0) for n in r["nodes"]]) + ":1:1",
    ),
    "s": ("JOB_SIZE", lambda r: "1"),
    "h": ("OVERSUBSCRIBE", lambda r: "NO"),
    "g": ("GROUPS", lambda r: "all"),
    "r": ("ROOT", lambda r: "no"),
    "f": ("AVAIL_FEATURES", lambda r: "(null)"),
    "G": ("GRES", lambda r: "(null)"),
    "E": ("REASON", lambda r: r.get("reason") or "none"),
    "d": ("TMP_DISK", lambda r: "0"),
    "w": ("WEIGHT", lambda r: "1"),
    # What a node here does not have, printed as sinfo prints an unset value.
    "A": ("NODES(A/I)", lambda r: _node_counts(r["nodes"]).rsplit("/", 2)[0]),
    "b": ("ACTIVE_FEATURES", lambda r: "(null)"),
    "B": ("MAX_CPUS_PER_NODE", lambda r: "UNLIMITED" if r.get("max_cpus_per_node") is None else str(r["max_cpus_per_node"])),
    "H": ("TIMESTAMP", lambda r: _timestamp(r.get("reason_time"))),
    "I": ("PRIO_JOB_FACTOR", lambda r: "1"),
    "M": ("PREEMPT_MODE", lambda r: "OFF"),
    "p": ("PRIO_TIER", lambda r: str(r.get("priority_tier", 1))),
    "S": ("ALLOCNODES", lambda r: "all"),
    "u": ("USER", lambda r: r.get("reason_user") or "Unknown"),
    "U": ("USER", lambda r: _user_long(r.get("reason_user"))),
    "v": ("VERSION", lambda r: "23.11.0"),
    "V": ("CLUSTER", lambda r: "conductor"),
    "X": ("SOCKETS", lambda r: _span([int(n.get("cpus") or 0) for n in r["nodes"]])),
    "Y": ("CORES", lambda r: "1"),
    "Z": ("THREADS", lambda r: "1"),
    # -O names without a letter.
    "allocmem": ("ALLOCMEM", lambda r: str(sum(int(n.get("alloc_memory_mb") or 0) for n in r["nodes"]))),
    "comment": ("COMMENT", lambda r: "(null)"),
    "extra": ("EXTRA", lambda r: "(null)"),
    "gresused": ("GRES_USED", lambda r: "(null)"),
    "port": ("PORT", lambda r: "0"),
    "statecomplete": ("STATECOMPLETE", lambda r: r["state_long"]),
}
# -O/--Format names (case-insensitive) -> their field (a letter of -o, or a name above).
LONG_FIELDS: dict[str, str] = {
    "allocmem": "allocmem",
    "allocnodes": "S",
    "available": "a",
    "cluster": "V",
    "comment": "comment",
    "cpus": "c",
    "cpusload": "O",
    "freemem": "e",
    "cpusstate": "C",
    "cores": "Y",
    "defaulttime": "L",
    "disk": "d",
    "extra": "extra",
    "features": "f",
    "features_act": "b",
    "groups": "g",
    "gres": "G",
    "gresused": "gresused",
    "maxcpuspernode": "B",
    "memory": "m",
    "nodes": "D",
    "nodeaddr": "o",
    "nodeai": "A",
    "nodeaiot": "F",
    "nodehost": "n",
    "nodelist": "N",
    "oversubscribe": "h",
    "partition": "P",
    "partitionname": "R",
    "port": "port",
    "preemptmode": "M",
    "priorityjobfactor": "I",
    "prioritytier": "p",
    "reason": "E",
    "root": "r",
    "share": "h",
    "size": "s",
    "statecompact": "t",
    "statecomplete": "statecomplete",
    "statelong": "T",
    "sockets": "X",
    "socketcorethread": "z",
    "time": "l",
    "timestamp": "H",
    "threads": "Z",
    "user": "u",
    "userlong": "U",
    "version": "v",
    "weight": "w",
}
LONG_DEFAULT_WIDTH = 20  # sinfo's _parse_long_token


def _span(values: list[int]) -> str:
    if not values:
        return "0"
    low, high = min(values), max(values)
    return str(low) if low == high else f"{low}-{high}"


def _cpu_counts(nodes: list[dict[str, Any]]) -> str:
    """%C, allocated/idle/other/total as sinfo's _update_sinfo counts them: the CPUs jobs hold
    are allocated; the rest of a drained or down node's are other, of any other node idle."""
    alloc = idle = other = total = 0
    for n in nodes:
        cpus, used = int(n.get("cpus") or 0), int(n.get("alloc_cpus") or 0)
        total += cpus
        alloc += used
        if n.get("drained") or _base(n) == "DOWN":
            other += max(cpus - used, 0)
        else:
            idle += max(cpus - used, 0)
    return f"{alloc}/{idle}/{other}/{total}"


def _node_counts(nodes: list[dict[str, Any]]) -> str:
    """%F: a node running jobs is allocated (drained or not), else a drained or down one other."""
    alloc = sum(1 for n in nodes if _base(n) in ("ALLOCATED", "MIXED"))
    other = sum(1 for n in nodes if _base(n) not in ("ALLOCATED", "MIXED") and (n.get("drained") or _base(n) == "DOWN"))
    idle = len(nodes) - alloc - other
    return f"{alloc}/{idle}/{other}/{len(nodes)}"


# ---- a node's state and reason, as sinfo words them ------------------------------------------
def _base(node: dict[str, Any]) -> str:
    """The base state: IDLE, MIXED, ALLOCATED or DOWN (a drain is a flag beside it)."""
    return str(node.get("state") or "UNKNOWN").upper()


def _busy(node: dict[str, Any]) -> bool:
    return _base(node) in ("ALLOCATED", "MIXED")


def node_state_long(node: dict[str, Any]) -> str:
    """%T (node_state_string): a drained node is `draining` while jobs still run on it, then
    `drained`; `*` when its worker is not heard from either (Slurm's not-responding flag)."""
    if node.get("drained"):
        return ("draining" if _busy(node) else "drained") + ("*" if _base(node) == "DOWN" else "")
    return _base(node).lower()


def node_state_compact(node: dict[str, Any]) -> str:
    """%t (node_state_string_compact): `drng` while jobs still run on a drained node, then `drain`."""
    if node.get("drained"):
        return ("drng" if _busy(node) else "drain") + ("*" if _base(node) == "DOWN" else "")
    base = _base(node)
    return COMPACT.get(base, base.lower())


def node_states(node: dict[str, Any]) -> set[str]:
    """What -t matches a node by (src/sinfo/sinfo.c, _filter_out): its base state, and when
    drained DRAIN with DRAINING or DRAINED."""
    states = {_base(node)}
    if node.get("drained"):
        states |= {"DRAIN", "DRAINING" if _busy(node) else "DRAINED"}
    return states


def node_reason(node: dict[str, Any]) -> tuple[str | None, str | None, str | None]:
    """(reason, user, time) of %E, %u and %H: a drain's, else a down node's reason (no user or
    time is kept for it), else none."""
    if node.get("drained"):
        return node.get("drain_reason"), node.get("drain_user"), node.get("drain_time")
    if _base(node) == "DOWN" and node.get("reason"):
        return str(node["reason"]), None, None
    return None, None, None


def _timestamp(value: Any) -> str:
    from conductor.cli.common import slurm_time

    return slurm_time(value)


def _user_long(user: Any) -> str:
    """%U: user(uid), the uid looked up here; the name alone when this host does not know it."""
    if not user:
        return "Unknown"
    try:
        import pwd

        return f"{user}({pwd.getpwnam(str(user)).pw_uid})"
    except (ImportError, KeyError):
        return str(user)


_PCT_RE = re.compile(r"%(\.)?(#|\d*)([A-Za-z%])")

# One column: (field key, width: "#" computed | "" none | digits, right-justified, suffix).
Column = tuple[str, str, bool, str]


def parse_format(fmt: str, option: str = "-o/--format") -> list[str | Column]:
    """-o: literal text and `%[.][size]letter` columns; `%all` is every field, '|' between.
    `option` names the format in errors."""
    if not fmt.strip():
        raise empty_format(option)
    if fmt.strip().lower() == "%all":
        # As sinfo builds it: "%a|%b|...|%z|%A |%B |...|%Z " (a blank after the capitals).
        letters = [c for c in "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ" if c in FIELDS]
        items: list[str | Column] = []
        for i, code in enumerate(letters):
            items += ([] if i == 0 else ["|"]) + [(code, "", False, " " if code.isupper() else "")]
        return items
    items = []
    pos = 0
    for match in _PCT_RE.finditer(fmt):
        items.append(fmt[pos : match.start()])
        pos = match.end()
        right, width_text, code = match.groups()
        if code == "%":
            items.append("%")
            continue
        if code not in FIELDS:
            raise UsageError(f"Invalid node format specification: {code}")
        if width_text not in ("", "#"):  # "#" is computed from the values: bounded by them
            width_text = str(field_width(width_text, option))
        items.append((code, width_text, bool(right), ""))
    items.append(fmt[pos:])
    return items


def parse_long_format(spec: str, option: str = "-O/--Format") -> list[str | Column]:
    """-O/--Format: `name[:[.][size][suffix]]` items separated by commas; `all` is %all.
    `option` names the list in errors."""
    items: list[str | Column] = []
    for raw in spec.split(","):
        raw = raw.strip()
        if not raw:
            continue
        name, colon, layout = raw.partition(":")
        if name.lower() == "all":
            items += parse_format("%all")
            continue
        key = LONG_FIELDS.get(name.lower())
        if key is None:
            raise UsageError(f"Invalid node format specification: {name}")
        match = re.fullmatch(r"(\.)?(\d*)(.*)", layout)
        assert match is not None
        width = match.group(2) if colon else str(LONG_DEFAULT_WIDTH)
        if width:
            width = str(field_width(width, option))
        items.append((key, width or "0", bool(match.group(1)), match.group(3)))
    if not items:
        raise empty_format(option)
    return items


def render(items: str | list[str | Column], rows: list[Row], header: bool) -> str:
    """The rows in the layout of `items` (parsed columns, or a -o format string)."""
    if isinstance(items, str):
        items = parse_format(items)
    # `#` (our notation) is the width sinfo computes for its default formats: the longest
    # value, at least 9 (MIN_NODE_FIELD_SIZE / MIN_PART_FIELD_SIZE in src/sinfo/print.c).
    widths: dict[str, int] = {}
    for code in ("P", "R", "N", "n"):
        values = [printable(FIELDS[code][1](r)) for r in rows]
        widths[code] = max([MIN_COMPUTED_WIDTH] + [len(v) for v in values])
    lines = []
    for row in ([None] if header else []) + list(rows):
        parts: list[str] = []
        for item in items:
            if isinstance(item, str):
                parts.append(item)
                continue
            code, width_text, right, suffix = item
            name, getter = FIELDS[code]
            # Stored text may hold control characters (domain/text.py): never print them raw.
            value = name if row is None else printable(getter(row))
            width = (
                widths.get(code, len(name))
                if width_text == "#"
                else (int(width_text) if width_text else 0)
            )
            if width and row is not None and code == "P" and row["default"] and len(value) > width:
                # A cut default partition keeps its '*' in the last column (_print_partition).
                value = value[: width - 1] + "*"
            if width:
                value = value[:width]
                value = value.rjust(width) if right else value.ljust(width)
            parts.append(value + suffix)
        lines.append("".join(parts))
    return "".join(line + "\n" for line in lines)


def _node_fields(node: dict[str, Any]) -> dict[str, Any]:
    """What a row shows of its (first) node: its state and its reason."""
    reason, user, when = node_reason(node)
    return {
        "state_compact": node_state_compact(node),
        "state_long": node_state_long(node),
        "reason": reason,
        "reason_user": user,
        "reason_time": when,
    }


def build_rows(
    partitions: list[dict[str, Any]],
    nodes: list[dict[str, Any]],
    *,
    per_node: bool,
    summarize: bool,
    fields: Collection[str] = (),
    reasons: bool = False,
) -> list[Row]:
    """One row per partition and group of nodes (per node with `per_node`; per partition with
    `summarize`). Nodes group as sinfo's _match_node_data groups them: by their state (its long
    form: drained and draining nodes apart from the partition's others), and by their reason,
    its user and time when the format shows them (`fields`: the codes it prints). `reasons`
    (-R): groups span the partitions, and by state only when the format shows it."""
    by_name = {n["name"]: n for n in nodes}
    shown = set(fields)
    by_state = not reasons or bool(shown & {"t", "T", "statecomplete"})

    def key(node: dict[str, Any]) -> tuple[Any, ...]:
        reason, user, when = node_reason(node)
        return (
            node_state_long(node) if by_state else None,
            reason if "E" in shown else None,
            user if shown & {"u", "U"} else None,
            when if "H" in shown else None,
        )

    rows: list[Row] = []
    spanning: dict[tuple[Any, ...], Row] = {}  # -R: one row per group, whatever the partition
    seen: set[str] = set()
    for part in partitions:
        members = [by_name[name] for name in part.get("nodes", []) if name in by_name]
        base = {
            "partition": part["name"],
            "default": bool(part.get("default")),
            # sinfo's words for a partition's state: up, down, drain, inact.
            "avail": {"UP": "up", "DRAIN": "drain", "INACTIVE": "inact"}.get(str(part.get("state", "UP")).upper(), "down"),
            "max_time": part.get("max_time"),
            # The configuration file's (their Slurm defaults without one).
            "default_time": part.get("default_time"),
            "priority_tier": part.get("priority_tier", 1),
            "max_cpus_per_node": part.get("max_cpus_per_node"),
        }
        if summarize:
            rows.append(dict(base, nodes=members, state_compact="", state_long=""))
            continue
        if per_node:
            rows.extend(dict(base, nodes=[node], **_node_fields(node)) for node in members)
            continue
        groups: dict[tuple[Any, ...], Row] = spanning if reasons else {}
        for node in members:
            if reasons and node["name"] in seen:
                continue  # a node of two partitions is listed once
            seen.add(node["name"])
            group = groups.get(key(node))
            if group is None:
                group = groups[key(node)] = dict(base, nodes=[], **_node_fields(node))
                rows.append(group)
            group["nodes"].append(node)
    if per_node:
        rows.sort(key=lambda r: r["nodes"][0]["name"])
    return rows


def _codes(items: list[str | Column]) -> set[str]:
    """The fields a parsed format prints."""
    return {item[0] for item in items if not isinstance(item, str)}


def parse_states(text: str) -> list[frozenset[str]] | None:
    """-t values: node state names, their compact forms or abbreviations, any case, separated
    by ',' (any of them) or joined by '&' (all of them at once); `all` alone means no filter
    (None). A node matches when it is in every state of one of the returned groups.

    A name sinfo does not know is refused with the list of those it does, as sinfo does: taken,
    it would silently match no node."""
    if text.strip().upper() == "ALL":
        return None
    groups: list[frozenset[str]] = []
    for item in split_list(text):
        groups.append(frozenset(_state(part.strip()) for part in item.split("&")))
    if not groups:
        raise UsageError("-t/--states: no state given")
    return groups


def _state(name: str) -> str:
    upper = name.upper()
    compact = {v.upper(): k for k, v in COMPACT.items()}
    state = (
        compact.get(upper)
        or STATE_ALIASES.get(upper)
        or next((s for s in NODE_STATES if upper and s.startswith(upper)), None)
    )
    if state is None:
        raise UsageError(
            f'-t/--states: Bad state string: "{name}"\n'
            f"{PROG}: error: valid states: " + ",".join(s.lower() for s in NODE_STATES)
        )
    return state


def _node_names(text: str) -> set[str]:
    """-n: the node names of a host list (refused when malformed, or more than expand_hostlist's bound)."""
    from conductor.domain.hostlist import expand_hostlist

    return set(expand_hostlist(text, field="-n/--nodes"))


def _select(
    opts: dict[str, str | None],
    partitions: list[Row],
    nodes: list[Row],
    names: set[str] | None,
    states: list[frozenset[str]] | None,
) -> tuple[list[Row], list[Row]]:
    """The partitions and nodes -p, -n (`names`, expanded) and -t (`states`, parsed) ask for."""
    if opts.get("partition"):
        wanted = set(split_list(opts["partition"] or ""))
        partitions = [p for p in partitions if p["name"] in wanted]
    if names is not None:
        nodes = [n for n in nodes if n["name"] in names]
    if states is not None:
        # A node matches a group (idle&drain) when it is in every state of it.
        nodes = [n for n in nodes if any(group <= node_states(n) for group in states)]
    if "responding" in opts or "dead" in opts:
        dead = "dead" in opts  # not heard from: DOWN, drained or not
        nodes = [n for n in nodes if (_base(n) == "DOWN") == dead]
    return partitions, nodes


def _format(opts: dict[str, str | None]) -> list[str | Column]:
    """The columns -O or -o asks for, else the default of the view (-s, -N, -R, -l). An option
    given empty (`-o "$FORMAT"` with the variable unset) is refused by the parsers: it is a
    mistake, not a request for the default."""
    if "Format" in opts:
        return parse_long_format(opts["Format"] or "")
    long = "long" in opts
    if "format" in opts:
        fmt = opts["format"] or ""
    elif "summarize" in opts:
        fmt = SUMMARIZE_FORMAT
    elif "node" in opts:
        fmt = LONG_NODE_FORMAT if long else NODE_FORMAT
    elif "list_reasons" in opts:
        fmt = LONG_REASONS_FORMAT if long else REASONS_FORMAT
    elif os.environ.get("SINFO_FORMAT"):
        # After -s, -N and -R, before -l, as in sinfo's opts.c (empty is unset).
        return parse_format(os.environ["SINFO_FORMAT"], "SINFO_FORMAT")
    else:
        fmt = LONG_FORMAT if long else DEFAULT_FORMAT
    return parse_format(fmt)


def main(argv: list[str]) -> int:
    return run(PROG, lambda: _main(argv))


def _main(argv: list[str]) -> int:
    parsed, operands = getopt_long(argv, OPTIONS)
    opts: dict[str, str | None] = dict(parsed)
    if operands:
        raise UsageError(f"Unknown arguments: {' '.join(operands)}")
    if "help" in opts:
        sys.stdout.write(help_text())
        return 0
    if "usage" in opts:
        sys.stdout.write(USAGE)
        return 0
    if "version" in opts:
        sys.stdout.write(SLURM_VERSION)
        return 0
    if "yaml" in opts:
        raise UsageError("--yaml is not supported; use --json or -o/-O")
    if "json" in opts:
        from conductor.cli.slurm_json import check_parser

        check_parser(PROG, opts["json"])
    if "partition" not in opts and os.environ.get("SINFO_PARTITION"):
        opts["partition"] = os.environ["SINFO_PARTITION"]  # as -p (sinfo's opts.c)
    per_node = "node" in opts
    summarize = "summarize" in opts
    items = _format(opts)
    # -n and -t are checked before the server is asked anything.
    names = _node_names(opts["nodes"] or "") if opts.get("nodes") else None
    if "states" in opts:
        states = parse_states(opts["states"] or "")
    elif "list_reasons" in opts:
        states = parse_states(REASONS_STATES)
    else:
        states = None
    client = Client()
    try:
        partitions = client.get("/partitions").get("partitions", [])
        nodes = client.get("/nodes").get("nodes", [])
    finally:
        client.close()
    partitions, nodes = _select(opts, partitions, nodes, names, states)
    if "json" in opts:
        from conductor.cli.slurm_json import sinfo_document, write

        write(sinfo_document(partitions, nodes, argv))
        return 0
    rows = build_rows(
        partitions, nodes, per_node=per_node, summarize=summarize, fields=_codes(items),
        reasons="list_reasons" in opts and not per_node and not summarize,
    )
    out = []
    if "long" in opts:
        out.append(time.strftime("%a %b %d %H:%M:%S %Y") + "\n")
    out.append(render(items, rows, header="noheader" not in opts))
    sys.stdout.write("".join(out))
    return 0
