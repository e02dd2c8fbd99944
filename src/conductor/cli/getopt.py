"""A GNU getopt_long work-alike, so our commands accept and refuse options exactly as Slurm's do.

Slurm's tools parse with glibc's getopt_long; users and tools rely on its quirks: glued short
options (`-Jname`, `-n4`), clustered flags (`-HW`), `--opt=value` or `--opt value`, unambiguous
prefixes of long names (`--part=debug`), optional arguments only with `=` (`--nice=5`; `--nice 5`
leaves `5` as an operand), and a leading `+` in the option string (sbatch) that stops at the first
operand so the rest goes to the script. Python's argparse differs on several of these.
"""

from __future__ import annotations

from conductor.errors import ConductorError

# typing is imported only by type checkers: at run time it costs the CLI ~4 ms.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Literal

    ArgKind = Literal["none", "required", "optional"]


class GetoptError(ConductorError):
    """A command-line error, worded as glibc's getopt words it (without the program prefix)."""


class Option:
    """One option: its canonical key, its long names, its short letter and its argument kind.

    A plain class, not a dataclass: importing dataclasses costs milliseconds the CLI has not.
    """

    __slots__ = ("arg", "key", "longs", "short")

    def __init__(
        self,
        key: str,
        longs: tuple[str, ...] = (),
        short: str | None = None,
        arg: ArgKind = "none",
    ) -> None:
        self.key = key
        self.longs = longs
        self.short = short
        self.arg = arg


class OptionTable:
    def __init__(self, options: list[Option]) -> None:
        self.options = options
        self._by_short: dict[str, Option] = {}
        self._by_long: dict[str, Option] = {}
        for opt in options:
            if opt.short:
                self._by_short[opt.short] = opt
            for name in opt.longs:
                self._by_long[name] = opt

    def find_long(self, name: str) -> Option:
        """Exact match first, then a unique prefix (or several prefixes naming one option)."""
        exact = self._by_long.get(name)
        if exact is not None:
            return exact
        matches = [n for n in self._by_long if n.startswith(name)]
        owners = {self._by_long[n].key for n in matches}
        if not matches:
            raise GetoptError(f"unrecognized option '--{name}'")
        if len(owners) > 1:
            shown = " ".join(f"'--{n}'" for n in sorted(matches))
            raise GetoptError(f"option '--{name}' is ambiguous; possibilities: {shown}")
        return self._by_long[matches[0]]

    def find_short(self, letter: str) -> Option:
        opt = self._by_short.get(letter)
        if opt is None:
            raise GetoptError(f"invalid option -- '{letter}'")
        return opt


def getopt_long(  # noqa: C901 - GNU getopt_long's rules, kept in one place
    argv: list[str], table: OptionTable, stop_at_operand: bool = False
) -> tuple[list[tuple[str, str | None]], list[str]]:
    """Parse argv (without the program name) into ((key, value) in order, operands).

    With stop_at_operand (getopt's leading '+'), everything from the first operand on is returned
    as operands untouched; otherwise operands may be interleaved with options (GNU permutation).
    """
    parsed: list[tuple[str, str | None]] = []
    operands: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if arg == "--":
            operands.extend(argv[i:])
            break
        if arg.startswith("--"):
            body = arg[2:]
            name, eq, value = body.partition("=")
            opt = table.find_long(name)
            shown = opt.longs[0] if name not in opt.longs else name
            if opt.arg == "none":
                if eq:
                    raise GetoptError(f"option '--{shown}' doesn't allow an argument")
                parsed.append((opt.key, None))
            elif opt.arg == "optional":
                parsed.append((opt.key, value if eq else None))
            elif eq:
                parsed.append((opt.key, value))
            elif i < len(argv):
                parsed.append((opt.key, argv[i]))
                i += 1
            else:
                raise GetoptError(f"option '--{shown}' requires an argument")
            continue
        if arg.startswith("-") and len(arg) > 1:
            j = 1
            while j < len(arg):
                opt = table.find_short(arg[j])
                j += 1
                if opt.arg == "none":
                    parsed.append((opt.key, None))
                    continue
                rest = arg[j:]
                if rest:
                    parsed.append((opt.key, rest))
                elif opt.arg == "optional":
                    parsed.append((opt.key, None))
                elif i < len(argv):
                    parsed.append((opt.key, argv[i]))
                    i += 1
                else:
                    raise GetoptError(f"option requires an argument -- '{opt.short}'")
                break
            continue
        if stop_at_operand:
            operands.append(arg)
            operands.extend(argv[i:])
            break
        operands.append(arg)
    return parsed, operands
