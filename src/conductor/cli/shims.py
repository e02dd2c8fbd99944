"""`conductor slurm-shims DIR`: write sbatch, squeue, ... executables that call our commands.

With DIR first on PATH, tools written for Slurm (submitit, dask-jobqueue, shell scripts) run
unchanged. Each shim execs this Python interpreter by absolute path, so it works from any
environment, virtualenv activated or not.

A shim remembers a server only when one was named as it was made (`--url`, else CONDUCTOR_URL
set then); a CONDUCTOR_URL set when it runs still wins. Otherwise it remembers none and finds
the server at each run as the CLI does (the profile `conductor up` writes, then the default):
a URL read from the profile would go stale when `conductor up` restarts on another port.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import sys

from conductor.cli.common import UsageError, run

PROG = "slurm-shims"
COMMANDS = (
    "sbatch", "squeue", "scancel", "sinfo", "sacct", "scontrol", "srun", "seff", "sprio", "sshare", "sacctmgr",
)


USAGE = "usage: conductor slurm-shims [--url URL] DIR\n"
HELP = (
    USAGE
    + "Write executables sbatch squeue scancel sinfo sacct scontrol srun seff sprio sshare sacctmgr into DIR,\n"
    "each running the conductor command of that name; put DIR first on PATH to use them.\n"
    "\n"
    "  -u, --url=URL   server the shims talk to unless CONDUCTOR_URL is set when they run\n"
    "                  (default: CONDUCTOR_URL if set now; else they find the server when\n"
    "                  they run, as the CLI does: the profile 'conductor up' writes)\n"
    "  -h, --help      show this help\n"
)


def shim_text(command: str, python: str, url: str | None = None) -> str:
    remember = (
        f'CONDUCTOR_URL="${{CONDUCTOR_URL:-{url}}}"\nexport CONDUCTOR_URL\n' if url else ""
    )
    return (
        "#!/bin/sh\n"
        f"# Slurm-compatible '{command}' provided by scns-conductor (conductor slurm-shims).\n"
        + remember
        + f'exec {shlex.quote(python)} -m conductor {command} "$@"\n'
    )


def write_shims(directory: str, python: str | None = None, url: str | None = None) -> list[str]:
    interpreter = os.path.abspath(python or sys.executable)
    os.makedirs(directory, exist_ok=True)
    written = []
    for command in COMMANDS:
        path = os.path.join(directory, command)
        tmp = path + ".tmp"
        try:
            with open(tmp, "w", encoding="utf-8") as handle:
                handle.write(shim_text(command, interpreter, url))
            os.chmod(tmp, 0o755)
            os.replace(tmp, path)  # atomic: a tool running meanwhile never sees half a shim
        except OSError:
            with contextlib.suppress(OSError):  # no half-written file left behind (disk full...)
                os.unlink(tmp)
            raise
        written.append(path)
    return written


def _write_into(directory: str, url: str | None) -> list[str]:
    """write_shims, with a target that cannot hold them refused in words: it must be a directory,
    or a path where one can be made, that this user may write into."""
    if os.path.exists(directory) and not os.path.isdir(directory):
        raise UsageError(f"{directory}: not a directory; give a directory to write the shims into")
    try:
        return write_shims(directory, url=url)
    except OSError as exc:
        # A parent that is missing and cannot be made (/proc/x), is a file, or is not writable.
        raise UsageError(f"{directory}: cannot write the shims there: {exc.strerror or exc}") from None


def main(argv: list[str]) -> int:
    return run(PROG, lambda: _main(argv))


def _main(argv: list[str]) -> int:
    from conductor.cli.getopt import Option, OptionTable, getopt_long

    table = OptionTable([Option("help", ("help",), "h"), Option("url", ("url",), "u", "required")])
    parsed, operands = getopt_long(argv, table)
    url: str | None = None
    for key, value in parsed:
        if key == "help":
            sys.stdout.write(HELP)
            return 0
        url = value
    if len(operands) != 1:
        raise UsageError(USAGE.strip())
    directory = os.path.abspath(operands[0])
    for path in _write_into(directory, _remembered(url)):
        sys.stdout.write(f"{path}\n")
    sys.stderr.write(
        f"Put {directory} first on PATH: export PATH={shlex.quote(directory)}:$PATH\n"
    )
    return 0


def _remembered(given: str | None) -> str | None:
    """The URL the shims embed: the one named by --url, else by CONDUCTOR_URL now; None when
    neither is, and never the profile's, which the CLI reads afresh at each run."""
    source, url = "--url", (given or "").strip()
    if not url:
        source, url = "CONDUCTOR_URL", os.environ.get("CONDUCTOR_URL", "").strip()
    url = url.rstrip("/")
    if not url:
        return None
    from conductor.cli.client import split_url

    split_url(url)  # a malformed URL is refused now, not when a shim runs
    if any(c in url for c in "\"$`\\\n"):
        raise UsageError(f"{source}: '{url}' may not contain quotes, '$', '`', '\\' or newlines")
    return url
