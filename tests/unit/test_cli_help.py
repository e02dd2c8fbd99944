"""Every command and subcommand answers --help with each option it accepts, one line each, and
--usage where Slurm's command has it. The pages are built from the option tables themselves; this
walks every command as a user would (a subprocess) and checks each accepted option is listed."""

from __future__ import annotations

import argparse
import importlib
import subprocess
import sys

import pytest

from conductor.__main__ import COMMANDS, SUMMARIES
from conductor.cli.getopt import OptionTable

# Slurm commands: module, and whether the command answers --usage (Slurm's own do; seff too, as
# the README promises of every command).
SLURM = {"sbatch": True, "squeue": True, "sacct": True, "sinfo": True, "scontrol": True, "scancel": True, "srun": True,
         "sacctmgr": True, "seff": True}
ARGPARSE = ("up", "server", "worker", "token", "backup")


def _conductor(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "conductor", *args], capture_output=True, text=True, timeout=60, check=False
    )


def _table(command: str) -> OptionTable:
    if command == "sbatch":
        from conductor.cli.sbatch_options import OPTIONS

        return OPTIONS
    table: OptionTable = importlib.import_module(COMMANDS[command]).OPTIONS
    return table


def test_conductor_help_lists_every_command_with_a_line() -> None:
    result = _conductor("--help")
    assert result.returncode == 0
    for name in COMMANDS:
        assert f"  {name} " in result.stdout and SUMMARIES[name] in result.stdout, name


@pytest.mark.parametrize("command", sorted(SLURM))
def test_slurm_command_help_lists_every_option_on_its_own_line(command: str) -> None:
    table = _table(command)
    module = importlib.import_module(COMMANDS[command])
    # The descriptions cover exactly the options accepted: none unlisted, none invented.
    assert set(module.DESCRIBED) == {opt.key for opt in table.options}
    result = _conductor(command, "--help")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    for opt in table.options:
        flag = f"--{opt.longs[0]}" if opt.longs else f"-{opt.short}"
        listed = [i for i, line in enumerate(lines) if line.lstrip().startswith((f"-{opt.short}, {flag}", flag))]
        assert listed, f"{command} --help does not list {flag}"
        text = module.DESCRIBED[opt.key][1]
        here = lines[listed[0]] + (lines[listed[0] + 1] if listed[0] + 1 < len(lines) else "")
        assert text in here, f"{command} --help: {flag} lacks its description"
        if opt.short and opt.longs:
            assert lines[listed[0]].lstrip().startswith(f"-{opt.short}, --{opt.longs[0]}"), flag


@pytest.mark.parametrize("command", sorted(c for c, has in SLURM.items() if has))
def test_slurm_command_usage_is_brief(command: str) -> None:
    result = _conductor(command, "--usage")
    assert result.returncode == 0, result.stderr
    assert result.stdout.lower().startswith(("usage:", f"{command} ")), result.stdout
    assert "Options:" not in result.stdout
    assert len(result.stdout.splitlines()) < len(_conductor(command, "--help").stdout.splitlines())


def test_sbatch_help_writes_the_signal_flags_one_way() -> None:
    out = _conductor("sbatch", "--help").stdout
    assert out.count("--signal=[[R][B]:]num[@time]") == 2  # usage and option line
    assert "[R:]" not in out and "[B:]" not in out


def _argparse_parsers(command: str) -> list[tuple[list[str], argparse.ArgumentParser]]:
    parser: argparse.ArgumentParser = importlib.import_module(COMMANDS[command]).build_parser()
    found = [([command], parser)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            found += [([command, name], sub) for name, sub in action.choices.items()]
    return found


@pytest.mark.parametrize("command", ARGPARSE)
def test_server_commands_describe_every_option(command: str) -> None:
    for words, parser in _argparse_parsers(command):
        result = _conductor(*words, "--help")
        assert result.returncode == 0, result.stderr
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                continue
            for flag in action.option_strings:
                assert flag in result.stdout, f"{' '.join(words)} --help lacks {flag}"
            if action.option_strings or action.dest != "help":
                assert action.help, f"{' '.join(words)}: {action.option_strings or action.dest} has no description"
    # run_command adds --log-level when it parses: it is on the page too.
    if command in ("up", "server", "worker"):
        assert "--log-level" in _conductor(command, "--help").stdout


@pytest.mark.parametrize(
    ("command", "options"),
    [
        ("stats", ["--json", "--help"]),
        ("slurm-shims", ["--url", "--help"]),
        ("wait", ["--interval", "--quiet", "--help"]),
        ("explain", ["--json", "--help"]),
    ],
)
def test_small_commands_describe_their_options(command: str, options: list[str]) -> None:
    result = _conductor(command, "--help")
    assert result.returncode == 0, result.stderr
    for option in options:
        assert any(line.lstrip().startswith(("-", option)) and option in line for line in result.stdout.splitlines())


def test_seff_answers_usage_and_help_before_any_job_id() -> None:
    usage = _conductor("seff", "--usage")
    assert (usage.returncode, usage.stdout, usage.stderr) == (0, "Usage: seff [Options] <Jobid>\n", "")
    for flag in ("-h", "--help"):
        helped = _conductor("seff", flag)
        assert helped.returncode == 0 and helped.stdout.startswith("Usage: seff [Options] <Jobid>\n"), flag
    # A job id that looks like an option is an unknown option, not "not a job id".
    bogus = _conductor("seff", "--bogus")
    assert bogus.returncode == 1 and "unrecognized option '--bogus'" in bogus.stderr
