"""`conductor slurm-shims DIR`: write sbatch, squeue, ... executables that call our commands.

With DIR first on PATH, tools written for Slurm (submitit, dask-jobqueue, shell scripts) run
unchanged. Each shim execs this Python interpreter by absolute path, so it works from any
environment, virtualenv activated or not.
"""

from __future__ import annotations

import os
import shlex
import sys

from conductor.cli.common import UsageError, run

PROG = "slurm-shims"
COMMANDS = ("sbatch", "squeue", "scancel", "sinfo", "sacct", "scontrol", "srun", "sprio", "sshare")


def shim_text(command: str, python: str) -> str:
    return (
        "#!/bin/sh\n"
        f"# Slurm-compatible '{command}' provided by scns-conductor (conductor slurm-shims).\n"
        f'exec {shlex.quote(python)} -m conductor {command} "$@"\n'
    )


def write_shims(directory: str, python: str | None = None) -> list[str]:
    interpreter = os.path.abspath(python or sys.executable)
    os.makedirs(directory, exist_ok=True)
    written = []
    for command in COMMANDS:
        path = os.path.join(directory, command)
        tmp = path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(shim_text(command, interpreter))
        os.chmod(tmp, 0o755)
        os.replace(tmp, path)  # atomic: a tool running meanwhile never sees half a shim
        written.append(path)
    return written


def main(argv: list[str]) -> int:
    return run(PROG, lambda: _main(argv))


def _main(argv: list[str]) -> int:
    if any(a in ("-h", "--help") for a in argv):
        sys.stdout.write(
            "usage: conductor slurm-shims DIR\n"
            "Write sbatch squeue scancel sinfo sacct scontrol srun sprio sshare into DIR.\n"
        )
        return 0
    if len(argv) != 1:
        raise UsageError("usage: conductor slurm-shims DIR")
    directory = os.path.abspath(argv[0])
    for path in write_shims(directory):
        sys.stdout.write(f"{path}\n")
    sys.stderr.write(
        f"Put {directory} first on PATH: export PATH={shlex.quote(directory)}:$PATH\n"
    )
    return 0
