"""Reading the configuration file: TOML syntax, then the schema, each error with its line.

tomllib gives no positions for values, so the line of a key is found by a scan of the text
that follows table headers and `key =` lines: enough to point at the line to fix.
"""

from __future__ import annotations

import os
import re
import stat
import tomllib
from pathlib import Path

from pydantic import ValidationError

from conductor.config.model import ClusterConfig
from conductor.errors import Invalid


class ConfigError(Invalid):
    """The configuration file is unreadable or breaks a rule; the message names line and key."""


_HEADER = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(?:#.*)?$")
_KEY = re.compile(r"""^\s*("[^"]*"|'[^']*'|[A-Za-z0-9_.-]+)\s*=""")


def _split_key(text: str) -> list[str]:
    parts = re.findall(r'"[^"]*"|\'[^\']*\'|[^.]+', text)
    return [p.strip().strip("\"'") for p in parts if p.strip()]


def key_lines(text: str) -> dict[tuple[str, ...], int]:
    """Each key path (table path + key) -> the line (1-based) that sets it or opens its table."""
    lines: dict[tuple[str, ...], int] = {}
    table: tuple[str, ...] = ()
    for number, line in enumerate(text.splitlines(), 1):
        header = _HEADER.match(line)
        if header:
            table = tuple(_split_key(header.group(1)))
            lines.setdefault(table, number)
            continue
        key = _KEY.match(line)
        if key:
            lines.setdefault((*table, *_split_key(key.group(1))), number)
    return lines


def parse_config(text: str, source: str = "<config>") -> ClusterConfig:
    """The configuration in `text`, or ConfigError naming the line, the key and the rule."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None
    except RecursionError:  # tomllib parses nested arrays and tables by recursion
        raise ConfigError(f"{source}: not valid TOML: arrays or tables nested too deeply") from None
    try:
        return ClusterConfig.model_validate(data)
    except ValidationError as exc:
        lines = key_lines(text)
        problems = []
        for error in exc.errors():
            loc = tuple(str(p) for p in error["loc"])
            line = None
            for end in range(len(loc), 0, -1):
                line = lines.get(loc[:end])
                if line is not None:
                    break
            where = f"line {line}: " if line is not None else ""
            key = ".".join(loc) or "(top level)"
            message = _message(error["type"], error["msg"], error.get("input"))
            problems.append(f"{source}: {where}{key}: {message}")
        raise ConfigError("; ".join(problems)) from None


def _message(kind: str, text: str, value: object) -> str:
    """pydantic's message for an error, said in the file's terms where pydantic's own would not
    tell what to write instead (the models are strict: `true` or "8" is no number)."""
    if kind == "extra_forbidden":
        return "unknown key (see the documented keys; a typo?)"
    if kind == "int_type":
        return f"must be a whole number written as a TOML integer (e.g. 1000 or 1_000, without quotes), not {_what(value)}"
    if kind == "bool_type":
        return f"must be a TOML boolean (true or false, without quotes), not {_what(value)}"
    return text.removeprefix("Value error, ")


def _what(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f"the string {value[:40]!r}"
    if isinstance(value, float):
        return f"the float {value!r}"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    return f"a {type(value).__name__}"  # a date or a time


# A configuration of thousands of partitions and QOS is a few MB.
MAX_CONFIG_BYTES = 16 * 1024 * 1024


def config_setting(value: str | None, name: str = "CONDUCTOR_CONFIG") -> Path | None:
    """The configuration file a setting names (None: unset). Set but empty, it is said so:
    Path("") is the directory `.`, which load_config refused as 'not a regular file'."""
    if value is None:
        return None
    if value == "":
        raise ConfigError(f"{name} is set but empty: give the configuration file's path, or unset it")
    return Path(value)


def load_config(path: Path) -> ClusterConfig:
    """The configuration in the file at `path`: a regular file of at most MAX_CONFIG_BYTES.

    A reload reads it while requests wait for the configuration, so nothing may block or grow
    without bound: a FIFO would wait for a writer for ever (opened without blocking, it is
    refused), /dev/zero would fill memory."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise ConfigError(f"{path}: cannot read the configuration file: not a regular file")
        with os.fdopen(fd, "rb") as handle:
            data = handle.read(MAX_CONFIG_BYTES + 1)
        if len(data) > MAX_CONFIG_BYTES:
            raise ConfigError(f"{path}: the configuration file is larger than {MAX_CONFIG_BYTES // 2**20} MiB")
        text = data.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the configuration file: {exc}") from None
    return parse_config(text, str(path))
