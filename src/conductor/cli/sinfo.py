"""`conductor sinfo`: partitions and nodes in sinfo's layout."""

from __future__ import annotations

import re
import sys
import time

from conductor.cli.client import Client
from conductor.cli.common import SLURM_VERSION, UsageError, empty_format, field_width, run, split_list
from conductor.cli.getopt import Option, OptionTable, getopt_long
from conductor.domain.text import printable

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    Row = dict[str, Any]

PROG = "sinfo"
DEFAULT_FORMAT = "%#P %.5a %.10l %.6D %.6t %N"
NODE_FORMAT = "%#N %.6D %.#P %6t"
LONG_FORMAT = "%#P %.5a %.10l %.10s %.4r %.8h %.10g %.6D %.11T %N"
LONG_NODE_FORMAT = "%#N %.6D %.#P %.11T %4c %.8z %.6m %.8d %.6w %.8f %20E"
SUMMARIZE_FORMAT = "%#P %.5a %.10l %.16F %N"

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
    "L": ("DEFAULTTIME", lambda r: "n/a"),
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
    "z": (
        "S:C:T",
        lambda r: "1:" + _span([int(n.get("cpus") or 0) for n in r["nodes"]]) + ":1",
    ),
    "s": ("JOB_SIZE", lambda r: "1"),
    "h": ("OVERSUBSCRIBE", lambda r: "NO"),
    "g": ("GROUPS", lambda r: "all"),
    "r": ("ROOT", lambda r: "no"),
    "f": ("AVAIL_FEATURES", lambda r: "(null)"),
    "G": ("GRES", lambda r: "(null)"),
    "E": ("REASON", lambda r: "none"),
    "d": ("TMP_DISK", lambda r: "0"),
    "w": ("WEIGHT", lambda r: "1"),
    # What a node here does not have, printed as sinfo prints an unset value.
    "A": ("NODES(A/I)", lambda r: _node_counts(r["nodes"]).rsplit("/", 2)[0]),
    "b": ("ACTIVE_FEATURES", lambda r: "(null)"),
    "B": ("MAX_CPUS_PER_NODE", lambda r: "UNLIMITED"),
    "H": ("TIMESTAMP", lambda r: "Unknown"),
    "I": ("PRIO_JOB_FACTOR", lambda r: "1"),
    "M": ("PREEMPT_MODE", lambda r: "OFF"),
    "p": ("PRIO_TIER", lambda r: "1"),
    "S": ("ALLOCNODES", lambda r: "all"),
    "u": ("USER", lambda r: "Unknown"),
    "U": ("USER", lambda r: "Unknown"),
    "v": ("VERSION", lambda r: "23.11.0"),
    "V": ("CLUSTER", lambda r: "conductor"),
    "X": ("SOCKETS", lambda r: "1"),
    "Y": ("CORES", lambda r: _span([int(n.get("cpus") or 0) for n in r["nodes"]])),
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
    total = sum(int(n.get("cpus") or 0) for n in nodes)
    alloc = sum(int(n.get("alloc_cpus") or 0) for n in nodes)
    other = sum(
        int(n.get("cpus") or 0) for n in nodes if n.get("state") in ("DOWN", "DRAIN")
    )
    idle = max(total - alloc - other, 0)
    return f"{alloc}/{idle}/{other}/{total}"


def _node_counts(nodes: list[dict[str, Any]]) -> str:
    alloc = sum(1 for n in nodes if n.get("state") in ("ALLOCATED", "MIXED"))
    idle = sum(1 for n in nodes if n.get("state") == "IDLE")
    other = len(nodes) - alloc - idle
    return f"{alloc}/{idle}/{other}/{len(nodes)}"


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


def build_rows(
    partitions: list[dict[str, Any]],
    nodes: list[dict[str, Any]],
    *,
    per_node: bool,
    summarize: bool,
) -> list[Row]:
    by_name = {n["name"]: n for n in nodes}
    rows: list[Row] = []
    for part in partitions:
        members = [by_name[name] for name in part.get("nodes", []) if name in by_name]
        base = {
            "partition": part["name"],
            "default": bool(part.get("default")),
            # sinfo's words for a partition's state: up, down, drain, inact.
            "avail": {"UP": "up", "DRAIN": "drain", "INACTIVE": "inact"}.get(str(part.get("state", "UP")).upper(), "down"),
            "max_time": part.get("max_time"),
        }
        if summarize:
            rows.append(dict(base, nodes=members, state_compact="", state_long=""))
            continue
        groups: dict[str, list[dict[str, Any]]] = {}
        for node in members:
            groups.setdefault(str(node.get("state") or "UNKNOWN").upper(), []).append(
                node
            )
        if per_node:
            for node in members:
                state = str(node.get("state") or "UNKNOWN").upper()
                rows.append(
                    dict(
                        base,
                        nodes=[node],
                        state_compact=COMPACT.get(state, state.lower()),
                        state_long=state.lower(),
                    )
                )
        else:
            for state, group in groups.items():
                rows.append(
                    dict(
                        base,
                        nodes=group,
                        state_compact=COMPACT.get(state, state.lower()),
                        state_long=state.lower(),
                    )
                )
    if per_node:
        rows.sort(key=lambda r: r["nodes"][0]["name"])
    return rows


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
        # A node here is in one state: a group of several (idle&drain) matches none.
        nodes = [n for n in nodes if any(group <= {str(n.get("state")).upper()} for group in states)]
    return partitions, nodes


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
    per_node = "node" in opts
    summarize = "summarize" in opts
    # An option given empty (`-o "$FORMAT"` with the variable unset) is refused by the parsers:
    # it is a mistake, not a request for the default.
    if "Format" in opts:
        items = parse_long_format(opts["Format"] or "")
    else:
        if "format" in opts:
            fmt = opts["format"] or ""
        elif summarize:
            fmt = SUMMARIZE_FORMAT
        elif per_node:
            fmt = LONG_NODE_FORMAT if "long" in opts else NODE_FORMAT
        else:
            fmt = LONG_FORMAT if "long" in opts else DEFAULT_FORMAT
        items = parse_format(fmt)
    # -n and -t are checked before the server is asked anything.
    names = _node_names(opts["nodes"] or "") if opts.get("nodes") else None
    states = parse_states(opts["states"] or "") if "states" in opts else None
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
    rows = build_rows(partitions, nodes, per_node=per_node, summarize=summarize)
    if "responding" in opts or "dead" in opts:
        dead = "dead" in opts
        rows = [r for r in rows if (r["state_compact"] == "down") == dead]
    out = []
    if "long" in opts:
        out.append(time.strftime("%a %b %d %H:%M:%S %Y") + "\n")
    out.append(render(items, rows, header="noheader" not in opts))
    sys.stdout.write("".join(out))
    return 0
