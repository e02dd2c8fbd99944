"""`--help` pages made from a command's own option table, so no option goes unlisted.

Each command keeps a table of descriptions, option key -> (argument name, one line); the page
lists every option of its OptionTable in Slurm's layout (`  -A, --account=name   text`), sorted
by name as Slurm's own pages mostly are. An option without a description is a KeyError: the
test that walks every command finds it before a user does.

Built only when asked for: the commands import this module inside their `--help` branch.
"""

from __future__ import annotations

from conductor.cli.getopt import OptionTable

COLUMN = 30  # where the descriptions start, as in sbatch --help


def _flags(short: str | None, longs: tuple[str, ...], arg: str, metavar: str) -> str:
    if longs:
        text = f"-{short}, --{longs[0]}" if short else f"    --{longs[0]}"
        if arg == "optional":
            text += f"[={metavar}]" if metavar else ""
        elif arg == "required":
            text += f"={metavar or 'value'}"
        return text
    text = f"-{short}"
    if arg != "none":
        text += f" {metavar or 'value'}"
    return text


def option_lines(table: OptionTable, described: dict[str, tuple[str, str]]) -> str:
    """One line per option of `table` (aliases after the description, in parentheses)."""
    lines = []

    def order(key: str) -> str:
        opt = by_key[key]
        return (opt.longs[0] if opt.longs else opt.short or "").lower()

    by_key = {opt.key: opt for opt in table.options}
    for key in sorted(by_key, key=order):
        opt = by_key[key]
        metavar, text = described[key]
        flags = _flags(opt.short, opt.longs, opt.arg, metavar)
        aliases = [f"--{name}" for name in opt.longs[1:]]
        if aliases:
            text += f" (also {', '.join(aliases)})"
        if len(flags) + 2 < COLUMN:
            lines.append(f"  {flags:<{COLUMN - 2}}{text}")
        else:
            lines.append(f"  {flags}\n{'':<{COLUMN}}{text}")
    return "\n".join(lines) + "\n"


def page(usage: str, table: OptionTable, described: dict[str, tuple[str, str]], *, epilog: str = "") -> str:
    """The whole `--help` page: usage, the options, then `epilog` (notes, sub-commands)."""
    text = usage.rstrip("\n") + "\n\nOptions:\n" + option_lines(table, described)
    if epilog:
        text += "\n" + epilog.rstrip("\n") + "\n"
    return text
