"""`conductor config`: `import-slurm SLURM_CONF [-o OUT]` writes a cluster configuration file
from a slurm.conf and says what it did not carry over; `check FILE` validates one."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="conductor config", description="The cluster configuration file.")
    sub = parser.add_subparsers(dest="action", required=True)
    imp = sub.add_parser("import-slurm", help="write a configuration file from a slurm.conf")
    imp.add_argument("slurm_conf", help="the slurm.conf to read")
    imp.add_argument("-o", "--output", help="file to write (default: standard output)")
    check = sub.add_parser("check", help="validate a configuration file (default: CONDUCTOR_CONFIG)")
    check.add_argument("file", nargs="?", help="the file to check")
    return parser


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    from conductor.config.loader import ConfigError, config_setting

    try:
        if args.action == "import-slurm":
            return _import(Path(args.slurm_conf), Path(args.output) if args.output else None)
        if args.file is not None:
            if not args.file:
                sys.stderr.write("conductor config: error: the file to check is empty: give its path\n")
                return 2
            return _check(Path(args.file))
        return _check(config_setting(os.environ.get("CONDUCTOR_CONFIG")))
    except ConfigError as exc:
        sys.stderr.write(f"conductor config: error: {exc}\n")
        return 1


def _import(source: Path, output: Path | None) -> int:
    from conductor.config.slurmconf import import_slurm_conf

    try:
        text = source.read_text(encoding="utf-8")
    except OSError as exc:
        sys.stderr.write(f"conductor config: error: cannot read {source}: {exc.strerror}\n")
        return 1
    except UnicodeDecodeError as exc:
        # Replaced, a name or a value would be carried over as something else than written.
        sys.stderr.write(f"conductor config: error: {source}: byte {exc.start} is not UTF-8 text\n")
        return 1
    imported = import_slurm_conf(text)
    if output is None:
        sys.stdout.write(imported.toml)
    else:
        try:
            output.write_text(imported.toml, encoding="utf-8")
        except OSError as exc:
            sys.stderr.write(f"conductor config: error: cannot write {output}: {exc.strerror}\n")
            return 1
    sys.stderr.write(
        f"import-slurm: {imported.carried} line(s) of {source.name} carried over"
        + (f", written to {output}" if output is not None else "")
        + (f"; not carried over ({len(imported.notes)}):\n" if imported.notes else "\n")
    )
    for note in imported.notes:
        sys.stderr.write(f"  {note}\n")
    return 0


def _check(file: Path | None) -> int:
    from conductor.config.loader import load_config

    if file is None:
        sys.stderr.write("conductor config: error: no file given and CONDUCTOR_CONFIG is unset\n")
        return 2
    config = load_config(file)
    sys.stdout.write(
        f"{file}: OK ({len(config.partitions)} partition(s), {len(config.qos) or 1} QOS, {len(config.nodes)} node "
        "line(s))\n"
    )
    return 0
