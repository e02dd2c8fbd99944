"""The `conductor` command: dispatches to a subcommand module, importing only that one.

User commands (sbatch, squeue, ...) must start fast, so nothing here imports the server stack;
each subcommand module exposes `main(argv: list[str]) -> int`.
"""

from __future__ import annotations

import importlib
import sys

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
    "srun": "conductor.cli.srun",
    "slurm-shims": "conductor.cli.shims",
}

USAGE = "usage: conductor {" + ",".join(COMMANDS) + "} [options]\n"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help"):
        sys.stdout.write(USAGE)
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
    module = importlib.import_module(module_name)
    result: int = module.main(args[1:])
    return result


if __name__ == "__main__":
    sys.exit(main())
