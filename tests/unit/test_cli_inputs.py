"""What a user may type at the Slurm commands is checked before anything is asked of the server:
a bad value is an error that names the option and its rule, with exit status 1, never a Python
traceback, a silently wrong answer or an allocation without bound (found by fuzzing the CLI)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from conductor.cli import sacct, sacctmgr, sbatch, scontrol, shims, sinfo, sprio, squeue
from conductor.cli.common import MAX_FIELD_WIDTH, UsageError, field_width
from conductor.cli.jobsel import min_job_age
from conductor.cli.sacct_format import parse_fields
from conductor.cli.squeue_format import Field, parse_format, parse_long_format

Main = Callable[[list[str]], int]

TOO_WIDE = "99999999999999"


@pytest.fixture(autouse=True)
def no_server(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing listens at the URL: a value the command let through would end in 'cannot
    connect' instead of the error each test expects."""
    monkeypatch.setenv("CONDUCTOR_URL", "http://127.0.0.1:9")
    for name in ("SQUEUE_FORMAT", "SQUEUE_FORMAT2", "SACCT_FORMAT", "SLURM_JOB_NODELIST", "SLURM_EXIT_ERROR"):
        monkeypatch.delenv(name, raising=False)


def refused(main: Main, argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """Run a command that must fail on its input; its stderr."""
    status = main(argv)
    err = capsys.readouterr().err
    assert status == 1, err
    assert "Traceback" not in err
    assert "cannot connect" not in err, "the input reached the server unchecked"
    return err


# ---- field widths ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("main", "argv", "option"),
    [
        (squeue.main, [f"--format=%.{TOO_WIDE}i"], "-o/--format"),
        (squeue.main, ["--format=%.300000000i"], "-o/--format"),
        (squeue.main, ["-O", f"jobid:{TOO_WIDE}"], "-O/--Format"),
        (sacct.main, ["-o", f"jobid%{TOO_WIDE}"], "-o/--format"),
        (sacct.main, ["-o", f"jobid%-{TOO_WIDE}"], "-o/--format"),
        (sinfo.main, ["-o", f"%.{TOO_WIDE}P"], "-o/--format"),
        (sinfo.main, ["-O", f"partition:{TOO_WIDE}"], "-O/--Format"),
        (sprio.main, ["-o", f"%.{TOO_WIDE}i"], "-o/--format"),
        (sacctmgr.main, ["show", "assoc", f"format=account%{TOO_WIDE}"], "format"),
    ],
)
def test_a_field_width_above_the_limit_is_refused(
    main: Main, argv: list[str], option: str, capsys: pytest.CaptureFixture[str]
) -> None:
    err = refused(main, argv, capsys)
    assert re.search(rf"{option}: field width \d+ is too large; the maximum is {MAX_FIELD_WIDTH}\n", err), err


def test_the_width_limit_itself_is_accepted_and_printed() -> None:
    (field,) = parse_format(f"%.{MAX_FIELD_WIDTH}i")
    assert isinstance(field, Field) and field.width == MAX_FIELD_WIDTH
    (long,) = parse_long_format(f"jobid:{MAX_FIELD_WIDTH}")
    assert isinstance(long, Field) and long.width == MAX_FIELD_WIDTH
    assert parse_fields(f"jobid%-{MAX_FIELD_WIDTH}")[0].width == -MAX_FIELD_WIDTH
    row = sinfo.render(sinfo.parse_format(f"%{MAX_FIELD_WIDTH}a"), [], header=True)
    assert row == "AVAIL".ljust(MAX_FIELD_WIDTH) + "\n"


def test_width_digits_are_judged_before_any_conversion() -> None:
    # Past 4300 digits int() raises a ValueError of its own; zeros in front change nothing.
    with pytest.raises(UsageError, match=r"field width 9{20}\.\.\. is too large"):
        field_width("9" * 5000, "-o/--format")
    assert field_width("0" * 5000 + "12", "-o/--format") == 12
    with pytest.raises(UsageError, match="not a number"):
        field_width("²", "format")


# ---- empty formats -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("main", "argv", "option"),
    [
        (squeue.main, ["-O", ""], "-O/--Format"),
        (squeue.main, ["-O", ","], "-O/--Format"),
        (squeue.main, ["-o", ""], "-o/--format"),
        (sacct.main, ["-o", ""], "-o/--format"),
        (sacct.main, ["-o", ","], "-o/--format"),
        (sinfo.main, ["-o", ""], "-o/--format"),
        (sinfo.main, ["-O", ""], "-O/--Format"),
        (sprio.main, ["-o", ""], "-o/--format"),
        (sacctmgr.main, ["show", "assoc", "format="], "format"),
    ],
)
def test_a_format_naming_no_field_is_refused(
    main: Main, argv: list[str], option: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert f"{option}: the format names no field" in refused(main, argv, capsys)


def test_an_empty_squeue_format_variable_means_unset(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SQUEUE_FORMAT2", "")
    assert squeue.main(["-h"]) == 1
    assert "cannot connect" in capsys.readouterr().err  # the default format, then the server
    monkeypatch.setenv("SQUEUE_FORMAT2", f"jobid:{TOO_WIDE}")
    assert "SQUEUE_FORMAT2: field width" in refused(squeue.main, ["-h"], capsys)


# ---- host lists --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["show", "hostnames", "vm[5-1]"], "hostnames: invalid host list 'vm[5-1]': range '5-1' ends before it starts"),
        (["show", "hostnames", "vm["], "hostnames: invalid host list 'vm[': '[' without ']'"),
        (["show", "hostnames", "vm[1-99999999999]"], "more than the maximum of 100000 hosts"),
        (["show", "hostlist", "vm["], "hostlist: invalid host list 'vm[': '[' without ']'"),
        (["show", "hostlist"], "show hostlist: give the host names"),
    ],
)
def test_scontrol_refuses_a_bad_host_list_in_words(
    argv: list[str], fragment: str, capsys: pytest.CaptureFixture[str]
) -> None:
    err = refused(scontrol.main, argv, capsys)
    assert err.startswith("scontrol: error: ") and fragment in err


def test_scontrol_hostlist_takes_names_and_ranges(capsys: pytest.CaptureFixture[str]) -> None:
    assert scontrol.main(["show", "hostlist", "vm3,vm[1-2],vm7"]) == 0
    assert capsys.readouterr().out == "vm[1-3,7]\n"


@pytest.mark.parametrize(
    ("main", "argv", "fragment"),
    [
        (sinfo.main, ["-n", "vm[1-999999999999]"], "-n/--nodes: invalid host list 'vm[1-999999999999]'"),
        (sinfo.main, ["-n", "vm["], "-n/--nodes: invalid host list 'vm[': '[' without ']'"),
        (sacct.main, ["-N", "vm[2-1]"], "-N/--nodelist: invalid host list 'vm[2-1]'"),
    ],
)
def test_node_filters_refuse_a_bad_host_list(
    main: Main, argv: list[str], fragment: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert fragment in refused(main, argv, capsys)


# ---- sinfo -t ----------------------------------------------------------------------------------


def test_sinfo_refuses_an_unknown_state_naming_the_valid_ones(capsys: pytest.CaptureFixture[str]) -> None:
    err = refused(sinfo.main, ["-t", "idle,garbage"], capsys)
    assert 'sinfo: error: -t/--states: Bad state string: "garbage"' in err
    assert "sinfo: error: valid states: unknown,down,idle,allocated,mixed," in err


def test_sinfo_states_take_names_compact_forms_and_abbreviations() -> None:
    def states(text: str) -> set[str]:
        groups = sinfo.parse_states(text)
        assert groups is not None and all(len(group) == 1 for group in groups)
        return {state for group in groups for state in group}

    assert states("IDLE,mix,alloc,drng") == {"IDLE", "MIXED", "ALLOCATED", "DRAINING"}
    assert states("down,drain,maint") == {"DOWN", "DRAIN", "MAINTENANCE"}
    assert states("no_respond,futr,npc,perfctrs,boot") == {"NOT_RESPONDING", "FUTURE", "NPC", "PERFCTRS", "BOOT"}
    assert sinfo.parse_states("all") is None
    # Inside a list `all` is an abbreviation (of ALLOCATED), as in sinfo; '&' joins states.
    assert sinfo.parse_states("idle,all") == [frozenset({"IDLE"}), frozenset({"ALLOCATED"})]
    assert sinfo.parse_states("idle&drain") == [frozenset({"IDLE", "DRAIN"})]
    with pytest.raises(UsageError, match="no state given"):
        sinfo.parse_states(",")
    with pytest.raises(UsageError, match='Bad state string: ""'):
        sinfo.parse_states("idle&")


# ---- sbatch --chdir ----------------------------------------------------------------------------


@pytest.mark.parametrize("argv", [["--chdir=", "--wrap=true"], ["-D", "", "--wrap=true"]])
def test_sbatch_refuses_an_empty_working_directory(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    err = refused(sbatch.main, argv, capsys)
    assert "sbatch: error: --chdir: the working directory is empty" in err


# ---- slurm-shims -------------------------------------------------------------------------------


def test_shims_refuse_a_file_as_their_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "file"
    target.write_text("x")
    err = refused(shims.main, ["--url", "http://h:1", str(target)], capsys)
    assert f"slurm-shims: error: {target}: not a directory" in err
    assert target.read_text() == "x"


def test_shims_refuse_a_directory_that_cannot_be_made(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "file").write_text("x")
    target = tmp_path / "file" / "shims"
    err = refused(shims.main, ["--url", "http://h:1", str(target)], capsys)
    assert f"slurm-shims: error: {target}: cannot write the shims there: Not a directory" in err


def test_shims_make_a_missing_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "a" / "b"
    assert shims.main(["--url", "http://h:1", str(target)]) == 0
    assert sorted(os.listdir(target)) == sorted(shims.COMMANDS)


# ---- end to end ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["squeue", "-O", ""], "squeue: error: -O/--Format: the format names no field"),
        (["scontrol", "show", "hostnames", "vm["], "scontrol: error: hostnames: invalid host list"),
        (["slurm-shims", "/proc/nope"], "slurm-shims: error: /proc/nope: cannot write the shims there"),
    ],
)
def test_the_command_prints_one_error_line_and_no_traceback(argv: list[str], message: str) -> None:
    env = {**os.environ, "CONDUCTOR_URL": "http://127.0.0.1:9"}
    env.pop("SQUEUE_FORMAT2", None)
    result = subprocess.run(
        [sys.executable, "-m", "conductor", *argv], capture_output=True, text=True, timeout=60, check=False, env=env
    )
    assert result.returncode == 1
    assert result.stderr.startswith(message) and "Traceback" not in result.stderr


@pytest.mark.parametrize(("directory", "rule"), [("", "the working directory is empty"), ("/no/such/dir", "cannot enter")])
def test_srun_refuses_a_working_directory_it_cannot_use(
    directory: str, rule: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # An empty one was ignored (the step ran where srun stood), a missing one a traceback.
    from conductor.cli import srun

    monkeypatch.setenv("SLURM_JOB_ID", "5")
    here = os.getcwd()
    err = refused(srun.main, ["-D", directory, "true"], capsys)
    assert f"--chdir: {rule}" in err
    assert os.getcwd() == here


# ---- numbers past int()'s own limit ------------------------------------------------------------

THOUSANDS = "1" * 5000


@pytest.mark.parametrize(
    ("main", "argv", "fragment"),
    [
        (sbatch.main, ["-N", THOUSANDS, "--wrap=true"], "invalid node count"),
        (sbatch.main, ["-N", "\u0662", "--wrap=true"], "invalid node count"),
        (sbatch.main, ["-n", THOUSANDS, "--wrap=true"], "Invalid numeric value"),
        (sbatch.main, ["-c", "\u0662", "--wrap=true"], "Invalid numeric value"),
        (sbatch.main, [f"--priority={THOUSANDS}", "--wrap=true"], "Invalid --priority value"),
        (sbatch.main, [f"--signal={THOUSANDS}", "--wrap=true"], "Invalid --signal specification"),
        (sbatch.main, [f"--time={THOUSANDS}", "--wrap=true"], "longer than 64 characters"),
        (squeue.main, ["-j", THOUSANDS], "Invalid job id"),
        (squeue.main, ["-j", "\u0662"], "Invalid job id"),
        (sacct.main, ["-j", THOUSANDS], "Invalid job id"),
    ],
)
def test_numbers_of_any_length_are_refused_in_words(
    main: Main, argv: list[str], fragment: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # int() refuses over 4,300 digits with a ValueError of its own (a traceback), and \d alone
    # takes digits of every script.
    assert fragment in refused(main, argv, capsys)


# ---- what sbatch reads besides its options -----------------------------------------------------


def test_sbatch_refuses_a_script_that_is_not_utf8(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Replaced, the bytes made the job run another script than the one written.
    script = tmp_path / "job.sh"
    script.write_bytes(b"#!/bin/bash\n#SBATCH -J caf\xe9\necho caf\xe9\n")
    err = refused(sbatch.main, [str(script)], capsys)
    assert f"{script}: line 2: byte 0xe9 is not UTF-8 text" in err


@pytest.mark.parametrize(("value", "status"), [("0", 1), ("256", 1), ("9" * 5000, 1), ("\u0663", 1), ("7", 7), ("255", 255)])
def test_slurm_exit_error_is_a_failure_status(
    value: str, status: int, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # 0, or 256 that the shell sees as 0, made a failure look like success; 5,000 digits were a
    # traceback.
    monkeypatch.setenv("SLURM_EXIT_ERROR", value)
    assert sbatch.main(["--nice=x", "--wrap=true"]) == status
    assert "Traceback" not in capsys.readouterr().err


@pytest.mark.parametrize("value", ["9" * 5000, "-" + "9" * 5000, "\u0663"])
def test_sbatch_flag_variables_of_any_value_do_not_fail(value: str) -> None:
    from conductor.cli.sbatch_options import env_options

    options = dict(env_options({"SBATCH_REQUEUE": value, "SBATCH_WAIT": value}))
    assert ("requeue" in options) == value.lstrip("-").isascii()  # a number other than 0 is true
    assert env_options({"SBATCH_WAIT": "000"}) == []


def test_squeue_refuses_a_min_job_age_it_cannot_read(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    # It was read with int() when squeue was imported: a traceback before any option; then
    # taken silently as 300.
    for value, seconds in (("abc", 300), ("9" * 5000, 300), ("-5", 300), ("60", 60)):
        monkeypatch.setenv("CONDUCTOR_MIN_JOB_AGE", value)
        assert min_job_age() == seconds  # importing squeue never fails
        if value != "60":
            assert "CONDUCTOR_MIN_JOB_AGE=" in refused(squeue.main, [], capsys)


# ---- SQUEUE_FORMAT and SQUEUE_FORMAT2 ----------------------------------------------------------


def _header(items: list[str | Field]) -> str:
    from conductor.cli.squeue_format import render

    return render(items, [], header=True)


def test_squeue_format_wins_over_squeue_format2_as_in_slurm(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Slurm 22.05's squeue (src/squeue/opts.c) reads SQUEUE_FORMAT, and SQUEUE_FORMAT2 only without it.
    monkeypatch.setenv("SQUEUE_FORMAT", "%i %j")
    monkeypatch.setenv("SQUEUE_FORMAT2", "jobid,name,state")
    short, long = _header(parse_format("%i %j")), _header(parse_long_format("jobid,name,state"))
    assert short != long
    assert _header(squeue._columns({}, False)) == short
    assert _header(squeue._columns({"long": None}, True)) == short  # over -l's and --start's defaults too
    # -o and -O set aside both.
    assert _header(squeue._columns({"format": "%u"}, False)) == _header(parse_format("%u"))
    assert _header(squeue._columns({"Format": "username"}, False)) == _header(parse_long_format("username"))
    # An empty SQUEUE_FORMAT is unset: SQUEUE_FORMAT2 then.
    monkeypatch.setenv("SQUEUE_FORMAT", "")
    assert _header(squeue._columns({}, False)) == long
    # Through the command: the variable read is the one judged.
    monkeypatch.setenv("SQUEUE_FORMAT", f"%.{TOO_WIDE}i")
    assert "SQUEUE_FORMAT: field width" in refused(squeue.main, ["-h"], capsys)
    monkeypatch.setenv("SQUEUE_FORMAT", "%i")
    monkeypatch.setenv("SQUEUE_FORMAT2", f"jobid:{TOO_WIDE}")
    assert squeue.main(["-h"]) == 1
    assert "cannot connect" in capsys.readouterr().err  # SQUEUE_FORMAT's view, then the server


# ---- what squeue -j sends: the server's job-list filters (GET /jobs) -----------------------------


@pytest.mark.parametrize(
    ("param", "value"),
    [("job_id", "1\n"), ("job_id", "1,\t2"), ("job_id", "1\x00"), ("user", "ann\x1b]0;x\x07"), ("state", "PD\r"),
     ("partition", "debug\x85"), ("name", "\x7fjob")],
)
def test_the_job_list_filters_refuse_control_characters_naming_the_parameter(param: str, value: str) -> None:
    from conductor.api import app
    from conductor.errors import Invalid

    with pytest.raises(Invalid) as refusal:
        app._states(value) if param == "state" else app._csv(value, param)
    assert refusal.value.status == 400 and refusal.value.field == param
    assert str(refusal.value).startswith(f"{param}: must not contain control characters (U+")


def test_the_job_id_filter_takes_spaces_around_ids_and_nothing_else() -> None:
    from conductor.api import app
    from conductor.errors import Invalid

    assert [app._parse_job_id(j) for j in app._csv(" 1, 2 ,,3", "job_id") or []] == [1, 2, 3]
    for value in ("1\u00a0", "\u20031"):  # white space, but not an ordinary space
        with pytest.raises(Invalid) as refusal:
            [app._parse_job_id(j) for j in app._csv(value, "job_id") or []]
        assert refusal.value.field == "job_id"


@pytest.mark.parametrize(("argv", "said"), [
    ([""], "Invalid job id "),
    (["a b"], "Invalid job id a b"),
    (["../1"], "Invalid job id ../1"),
    (["7_[1-3]"], "give one job or one array task"),
])
def test_explain_checks_its_job_id_before_asking(argv: list[str], said: str, capsys: pytest.CaptureFixture[str]) -> None:
    # In the URL, '' got the server's "Not Found" and 'a b' its "Invalid HTTP request".
    from conductor.cli import explain

    assert said in refused(explain.main, argv, capsys)


@pytest.mark.parametrize(
    ("variable", "value", "rule"),
    [
        *[("CONDUCTOR_URL", url, "the port must be a number from 1 to 65535")
          for url in ("http://127.0.0.1:99999", "http://127.0.0.1:-1", "http://127.0.0.1:0", "http://h:\u0661")],
        *[("CONDUCTOR_TOKEN", token, "invalid token (CONDUCTOR_TOKEN or the token file)")
          for token in ("caf\udce9", "tok\r\nX-Admin: 1", "a b", "t\u00e9")],
    ],
)
def test_a_url_or_token_the_request_cannot_carry_is_refused_in_words(
    variable: str, value: str, rule: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # A port out of range was an OverflowError, a token of bytes that are not UTF-8 a
    # UnicodeEncodeError; a line break in a token would have added a header of its own.
    monkeypatch.setenv(variable, value)
    assert rule in refused(squeue.main, [], capsys)


def test_arguments_that_are_not_utf8_are_refused_by_name_before_anything_runs() -> None:
    for argv in (["squeue", "-p", "a\udcff"], ["scontrol", "update", "PartitionName=\udcff", "State=DOWN"]):
        done = subprocess.run(
            [sys.executable, "-m", "conductor", *argv], capture_output=True, text=True, errors="backslashreplace"
        )
        assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
        assert "is not UTF-8 text" in done.stderr and "\\xff" in done.stderr


@pytest.mark.parametrize(
    ("name", "value"),
    [("SLURM_NTASKS", "abc"), ("SLURM_NTASKS", "1\n2"), ("SLURM_NPROCS", "\u0663"), ("SLURM_NTASKS", "9" * 20)],
)
def test_srun_refuses_a_task_count_in_its_environment_it_cannot_read(
    name: str, value: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # A traceback from int(), or, for 10^20 tasks with no CPU count beside it, a loop that
    # started processes until the machine gave out.
    from conductor.cli import srun

    monkeypatch.setenv("SLURM_JOB_ID", "5")
    monkeypatch.delenv("SLURM_NTASKS", raising=False)
    monkeypatch.delenv("SLURM_CPUS_ON_NODE", raising=False)
    monkeypatch.delenv("SLURM_JOB_CPUS_PER_NODE", raising=False)
    monkeypatch.setenv(name, value)
    assert f"for {name} (1 to 100000)" in refused(srun.main, ["true"], capsys)


def test_format_variables_are_checked_before_the_server_is_asked(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SPRIO_FORMAT", f"%{TOO_WIDE}i")
    assert "SPRIO_FORMAT" in refused(sprio.main, [], capsys)
    monkeypatch.setenv("SINFO_FORMAT", f"%{TOO_WIDE}c")
    assert "SINFO_FORMAT" in refused(sinfo.main, [], capsys)


def test_the_utf8_check_leaves_local_paths_to_their_commands() -> None:
    # `config check` reads a local file: any bytes name one (it is missing here, and says so).
    done = subprocess.run(
        [sys.executable, "-m", "conductor", "config", "check", "/nonexistent/caf\udce9.toml"],
        capture_output=True, text=True, errors="backslashreplace",
    )
    assert done.returncode != 0 and "Traceback" not in done.stderr, done.stderr
    assert "is not UTF-8 text" not in done.stderr


def test_sbatch_leaves_out_what_the_api_would_refuse_of_its_environment() -> None:
    from conductor.cli.sbatch_options import unreadable_variables

    env = {"": "x", "A\x01": "y", "LATIN": "caf\udce9", "BASH_FUNC_f%%": "() {  :\n}", "PATH": "/bin"}
    assert unreadable_variables(env) == ["", "A?", "LATIN"]
    assert env == {"BASH_FUNC_f%%": "() {  :\n}", "PATH": "/bin"}


def test_sprio_long_view_ignores_the_format_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # As sprio's opts.c: -l, like -o, keeps SPRIO_FORMAT out (a bad one is then no error).
    monkeypatch.setenv("SPRIO_FORMAT", f"%{TOO_WIDE}i")
    assert sprio.main(["-l"]) == 1
    assert "cannot connect" in capsys.readouterr().err  # past the format, on to the server
