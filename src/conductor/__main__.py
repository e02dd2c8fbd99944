"""The `conductor` command: dispatches to a subcommand module, importing only that one.

User commands (sbatch, squeue, ...) must start fast, so nothing here imports the server stack;
each subcommand module exposes `main(argv: list[str]) -> int`.
"""

from __future__ import annotations

import importlib
import sys

from conductor.domain.text import is_text, printable

# name -> module; the module's main(argv) does the work.
COMMANDS: dict[str, str] = {
    "up": "conductor.commands.up",
    "server": "conductor.commands.server",
    "worker": "conductor.commands.worker",
    "stats": "conductor.cli.stats",
    "explain": "conductor.cli.explain",
    "token": "conductor.commands.token",
    "backup": "conductor.commands.backup",
    "config": "conductor.commands.config",
    "sbatch": "conductor.cli.sbatch",
    "squeue": "conductor.cli.squeue",
    "scancel": "conductor.cli.scancel",
    "sinfo": "conductor.cli.sinfo",
    "sacct": "conductor.cli.sacct",
    "scontrol": "conductor.cli.scontrol",
    "sprio": "conductor.cli.sprio",
    "sshare": "conductor.cli.sshare",
    "sacctmgr": "conductor.cli.sacctmgr",
    "srun": "conductor.cli.srun",
    "seff": "conductor.cli.seff",
    "slurm-shims": "conductor.cli.shims",
    "wait": "conductor.cli.wait",
}

USAGE = "usage: conductor {" + ",".join(COMMANDS) + "} [options]\n"

# Commands whose arguments may be local paths of any bytes and go to no server as text (srun
# runs its command here); the others' arguments that are not UTF-8 are refused by name.
_LOCAL_PATHS = frozenset({"up", "server", "worker", "backup", "config", "slurm-shims", "srun"})

# One line per command, for `conductor --help`.
SUMMARIES: dict[str, str] = {
    "up": "run API, scheduler and one worker in one process (embedded SQLite)",
    "server": "run the API and the scheduler against CONDUCTOR_DATABASE_URL",
    "worker": "run one node's agent against CONDUCTOR_DATABASE_URL",
    "stats": "the cluster's CPU and job counts",
    "explain": "why a job waits, in plain words, and when it should start",
    "token": "create, list and revoke API tokens",
    "backup": "copy the SQLite database while the system runs (conductor backup PATH)",
    "config": "the cluster configuration file: import-slurm SLURM_CONF, check FILE",
    "sbatch": "submit a batch script (Slurm's sbatch)",
    "squeue": "view pending and running jobs (Slurm's squeue)",
    "scancel": "cancel or signal jobs (Slurm's scancel)",
    "sinfo": "view partitions and nodes (Slurm's sinfo)",
    "sacct": "view jobs, running and ended (Slurm's sacct)",
    "scontrol": "show, hold, release, requeue and update jobs (Slurm's scontrol)",
    "srun": "run parallel tasks inside a batch job (Slurm's srun)",
    "sprio": "view the factors of pending jobs' priorities (Slurm's sprio)",
    "sshare": "view users' shares, usage and fair-share factors (Slurm's sshare)",
    "sacctmgr": "add, modify, delete and show accounts, users and QOS (Slurm's sacctmgr)",
    "slurm-shims": "write sbatch, squeue, ... executables into a directory for PATH",
    "wait": "wait until jobs end; exit with their status, as sbatch --wait",
    "seff": "a job's CPU and memory efficiency (Slurm's seff)",
}


def help_text() -> str:
    lines = [USAGE, "Commands:"]
    lines += [f"  {name:<13}{SUMMARIES[name]}" for name in COMMANDS]
    lines += [
        "",
        "Options:",
        "  -h, --help     show this help and exit",
        "  -V, --version  show the version and exit",
        "",
        "'conductor COMMAND --help' describes a command's options. The user commands talk to the server",
        "at CONDUCTOR_URL with CONDUCTOR_TOKEN, else to the one `conductor up` recorded for you.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help"):
        sys.stdout.write(help_text() if args else USAGE)
        return 0 if args else 2
    if args[0] in ("-V", "--version"):
        from conductor import __version__

        sys.stdout.write(f"scns-conductor {__version__}\n")
        return 0
    name = args[0]
    module_name = COMMANDS.get(name)
    if module_name is None:
        sys.stderr.write(f"conductor: unknown command '{name}'\n{USAGE}")
        return 2
    if name not in _LOCAL_PATHS:
        for arg in args[1:]:
            if not is_text(arg):
                shown = printable(arg.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace"))
                sys.stderr.write(
                    f"{name}: error: argument '{shown}' is not UTF-8 text: names, paths and filters go to the "
                    "server as text\n"
                )
                return 1
    module = importlib.import_module(module_name)
    result: int = module.main(args[1:])
    return result


if __name__ == "__main__":
    sys.exit(main())
