"""sbatch's option and #SBATCH directive parsing, on scripts written the way users write them."""

from __future__ import annotations

import os

import pytest

from conductor.cli.getopt import GetoptError, Option, OptionTable, getopt_long
from conductor.cli.sbatch_options import (
    SbatchError,
    build_plan,
    check_script,
    directive_words,
    first_pass,
    wrap_script,
)
from tests.startup import heavy_imports

ENV = {"PATH": "/usr/bin:/bin", "HOME": "/home/alice", "USER": "alice", "FOO": "bar"}


def plan_for(
    script: str,
    argv: list[str] | None = None,
    environ: dict[str, str] | None = None,
    path: str | None = "job.sh",
):
    args = list(argv or []) + ([path] if path else [])
    first = first_pass(args)
    return build_plan(
        first, script, script_path=path, environ=environ or ENV, cwd="/work/dir"
    )


# ---- directives ------------------------------------------------------------------------------


def test_typical_header_with_comments_and_blank_lines() -> None:
    script = """#!/bin/bash
# Simulation run
#
#SBATCH --job-name=sim
#SBATCH --partition=debug

#SBATCH --time=1-00:00:00
#SBATCH -n 4 -c 2
#SBATCH --mem=4G
#SBATCH --output=logs/%x-%j.out

module load foo
srun ./sim
"""
    job = plan_for(script).job
    assert job["name"] == "sim"
    assert job["partition"] == "debug"
    assert job["time_limit"] == "1-00:00:00"
    assert job["ntasks"] == 4
    assert job["cpus_per_task"] == 2
    assert job["memory_per_node"] == "4096"
    assert job["standard_output"] == "logs/%x-%j.out"
    assert job["current_working_directory"] == "/work/dir"


def test_directive_after_first_command_is_ignored() -> None:
    script = (
        "#!/bin/sh\n#SBATCH -J first\necho hi\n#SBATCH -J second\n#SBATCH --mem=1G\n"
    )
    job = plan_for(script).job
    assert job["name"] == "first"
    assert "memory_per_node" not in job


def test_indented_or_lowercase_directives_are_comments() -> None:
    script = (
        "#!/bin/sh\n  #SBATCH -J indented\n#sbatch -J lower\n# SBATCH -J spaced\ntrue\n"
    )
    assert directive_words(script) == []
    assert plan_for(script).job["name"] == "job.sh"


def test_leading_whitespace_only_lines_do_not_stop_parsing() -> None:
    script = "#!/bin/sh\n   \n\t\n#SBATCH -J later\ntrue\n"
    assert plan_for(script).job["name"] == "later"


def test_quotes_escapes_and_trailing_comment() -> None:
    script = (
        "#!/bin/bash\n"
        '#SBATCH --job-name="my job"   # why: readable name\n'
        "#SBATCH --comment 'a # not a comment'\n"
        "#SBATCH -o out\\ file.txt\n"
        "true\n"
    )
    job = plan_for(script).job
    assert job["name"] == "my job"
    assert job["comment"] == "a # not a comment"
    assert job["standard_output"] == "out file.txt"


def test_unmatched_quote_is_an_error() -> None:
    with pytest.raises(SbatchError, match="Unmatched"):
        plan_for('#!/bin/sh\n#SBATCH -J "oops\ntrue\n')


def test_glued_short_forms_and_space_separated_long_forms() -> None:
    script = (
        "#!/bin/sh\n#SBATCH -Jglued\n#SBATCH -n2\n#SBATCH --partition batch\ntrue\n"
    )
    job = plan_for(script).job
    assert (job["name"], job["ntasks"], job["partition"]) == ("glued", 2, "batch")


def test_optional_argument_needs_equals_like_slurm() -> None:
    # "--nice 5" leaves "5" as a stray word: Slurm refuses the script.
    with pytest.raises(SbatchError, match="Invalid directive found in batch script: 5"):
        plan_for("#!/bin/sh\n#SBATCH --nice 5\ntrue\n")
    assert plan_for("#!/bin/sh\n#SBATCH --nice=5\ntrue\n").job["nice"] == 5
    assert plan_for("#!/bin/sh\n#SBATCH --nice\ntrue\n").job["nice"] == 100


def test_unknown_directive_is_refused() -> None:
    with pytest.raises(SbatchError) as info:
        plan_for("#!/bin/sh\n#SBATCH --frobnicate=1\ntrue\n")
    assert info.value.preamble == "unrecognized option '--frobnicate'"
    assert "Invalid directive" in info.value.message


def test_long_option_prefixes_are_accepted() -> None:
    job = plan_for("#!/bin/sh\n#SBATCH --part=debug --job=x\ntrue\n").job
    assert job["partition"] == "debug"
    assert job["name"] == "x"


# ---- precedence --------------------------------------------------------------------------------


def test_command_line_overrides_directives() -> None:
    script = "#!/bin/sh\n#SBATCH -J fromscript\n#SBATCH -t 10\ntrue\n"
    job = plan_for(script, ["-J", "fromcli"]).job
    assert job["name"] == "fromcli"
    assert job["time_limit"] == "10"


def test_environment_variables_sit_between_script_and_command_line() -> None:
    script = "#!/bin/sh\n#SBATCH -p script\n#SBATCH -J script\ntrue\n"
    env = dict(
        ENV, SBATCH_PARTITION="env", SBATCH_JOB_NAME="env", SBATCH_TIMELIMIT="5:00"
    )
    job = plan_for(script, ["-J", "cli"], environ=env).job
    assert job["partition"] == "env"
    assert job["name"] == "cli"
    assert job["time_limit"] == "5:00"


def test_requeue_flags_last_one_wins() -> None:
    script = "#!/bin/sh\n#SBATCH --requeue\ntrue\n"
    assert plan_for(script).job["requeue"] is True
    assert plan_for(script, ["--no-requeue"]).job["requeue"] is False


# ---- names, files, environment ---------------------------------------------------------------


def test_default_names() -> None:
    assert plan_for("#!/bin/sh\ntrue\n", path="/x/y/run.sh").job["name"] == "run.sh"
    assert plan_for("#!/bin/sh\ntrue\n", path=None).job["name"] == "sbatch"
    first = first_pass(["--wrap", "echo hi"])
    plan = build_plan(
        first, wrap_script("echo hi"), script_path=None, environ=ENV, cwd="/w"
    )
    assert plan.job["name"] == "wrap"
    assert plan.script.startswith("#!/bin/sh\n") and plan.script.endswith("echo hi\n")


def test_wrap_refuses_script_arguments() -> None:
    with pytest.raises(SbatchError, match="not permitted with --wrap"):
        first_pass(["--wrap", "true", "extra"])


def test_script_arguments_after_the_script_are_not_options() -> None:
    first = first_pass(["-J", "n", "job.sh", "-J", "arg"])
    assert first.operands == ["job.sh", "-J", "arg"]
    plan = build_plan(
        first, "#!/bin/sh\ntrue\n", script_path="job.sh", environ=ENV, cwd="/w"
    )
    assert plan.job["name"] == "n"
    assert plan.job["argv"] == ["-J", "arg"]


def test_none_output_is_dev_null_and_chdir_is_absolute() -> None:
    job = plan_for("#!/bin/sh\ntrue\n", ["-o", "none", "-e", "NONE", "-D", "sub"]).job
    assert job["standard_output"] == "/dev/null"
    assert job["standard_error"] == "/dev/null"
    assert job["current_working_directory"] == "/work/dir/sub"


def test_export_default_all_and_variants() -> None:
    mask = os.umask(0o027)
    try:
        # The submitter's file mode mask goes along whatever is exported, as sbatch sends it.
        assert plan_for("#!/bin/sh\ntrue\n").job["environment"] == dict(ENV, SLURM_UMASK="0027")
        none = plan_for("#!/bin/sh\ntrue\n", ["--export=NONE"]).job["environment"]
        assert "FOO" not in none and none["HOME"] == "/home/alice" and none["SLURM_UMASK"] == "0027"
        kept = plan_for("#!/bin/sh\ntrue\n", environ=dict(ENV, SLURM_UMASK="0077")).job["environment"]
        assert kept["SLURM_UMASK"] == "0077"  # one already set is kept (_set_umask_env)
    finally:
        os.umask(mask)
    listed = plan_for("#!/bin/sh\ntrue\n", ["--export=FOO,X=1"]).job["environment"]
    assert listed["FOO"] == "bar" and listed["X"] == "1" and "PATH" in listed
    all_plus = plan_for("#!/bin/sh\ntrue\n", ["--export=ALL,X=2"]).job["environment"]
    assert all_plus == dict(ENV, X="2", SLURM_UMASK=all_plus["SLURM_UMASK"])
    env = dict(ENV, SBATCH_EXPORT="NONE", SLURM_FOO="1")
    from_env = plan_for("#!/bin/sh\ntrue\n", environ=env).job["environment"]
    assert "FOO" not in from_env and from_env["SLURM_FOO"] == "1"
    # SLURM_EXPORT_ENV is srun's input, not sbatch's (opt.c reads SBATCH_EXPORT).
    srun_only = plan_for("#!/bin/sh\ntrue\n", environ=dict(ENV, SLURM_EXPORT_ENV="NONE")).job["environment"]
    assert srun_only["FOO"] == "bar"


# ---- values ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["-t", "abc"], "Invalid --time specification"),
        (["-n", "0"], 'Invalid numeric value "0" for number of tasks.'),
        (["-c", "x"], 'Invalid numeric value "x" for cpus-per-task.'),
        (["--mem", "lots"], "Invalid --mem specification"),
        (["--mem=1G", "--mem-per-cpu=1G"], "mutually exclusive"),
        (["--signal", "FOO@10"], "Invalid --signal specification"),
        (["--open-mode", "sideways"], "Invalid --open-mode"),
        (["--gres=gpu:1"], "Invalid generic resource"),
        (["--mail-type=SOMETIMES"], "--mail-type=SOMETIMES invalid"),
        (["-N", "0"], "invalid node count"),
        (["--exclusive=bogus"], "invalid exclusive option"),
    ],
)
def test_invalid_values_are_refused(argv: list[str], message: str) -> None:
    with pytest.raises(SbatchError) as info:
        plan_for("#!/bin/sh\ntrue\n", argv)
    assert message in info.value.message


def test_submitit_style_header() -> None:
    script = """#!/bin/bash

# Parameters
#SBATCH --cpus-per-task=2
#SBATCH --error=/tmp/logs/%j_0_log.err
#SBATCH --job-name=submitit
#SBATCH --mem=4GB
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=1
#SBATCH --open-mode=append
#SBATCH --output=/tmp/logs/%j_0_log.out
#SBATCH --signal=USR2@90
#SBATCH --time=5
#SBATCH --wckey=submitit

# command
export SUBMITIT_EXECUTOR=slurm
srun --unbuffered --output /tmp/logs/%j_%t_log.out python -u -m submitit.core._submit /tmp/logs
"""
    plan = plan_for(script, path="/tmp/logs/submission.sh")
    job = plan.job
    assert job["memory_per_node"] == "4096"
    assert job["nodes"] == 1
    assert job["ntasks_per_node"] == 1
    assert job["open_mode"] == "append"
    assert job["signal"] == "USR2@90"
    assert job["time_limit"] == "5"
    assert any("wckey" in w for w in plan.warnings)


def test_dask_jobqueue_style_header() -> None:
    script = """#!/usr/bin/env bash

#SBATCH -J dask-worker
#SBATCH -e /tmp/dask/dask-worker-%J.err
#SBATCH -o /tmp/dask/dask-worker-%J.out
#SBATCH -n 1
#SBATCH --cpus-per-task=1
#SBATCH --mem=954M
#SBATCH -t 00:30:00

/usr/bin/python -m distributed.cli.dask_worker tcp://127.0.0.1:8786 --nthreads 1
"""
    job = plan_for(script).job
    assert job["name"] == "dask-worker"
    assert job["standard_error"] == "/tmp/dask/dask-worker-%J.err"
    assert job["memory_per_node"] == "954"
    assert job["time_limit"] == "00:30:00"


def test_mail_options_warn_and_ignored_options_warn() -> None:
    plan = plan_for(
        "#!/bin/sh\ntrue\n", ["--mail-type=END,FAIL", "--mail-user=a@b", "-C", "x"]
    )
    assert plan.job["mail_type"] == "END,FAIL"
    assert plan.job["mail_user"] == "a@b"
    assert any("mail" in w for w in plan.warnings)
    assert any("constraint" in w for w in plan.warnings)


def test_flags_parsable_wait_test_only_hold() -> None:
    plan = plan_for("#!/bin/sh\ntrue\n", ["--parsable", "-W", "--test-only", "-H"])
    assert plan.parsable and plan.wait and plan.test_only
    assert plan.job["hold"] is True and plan.job["test_only"] is True


def test_array_dependency_begin_priority_nodes_range() -> None:
    job = plan_for(
        "#!/bin/sh\ntrue\n",
        [
            "-a",
            "0-9%2",
            "-d",
            "afterok:12",
            "--begin=now+60",
            "--priority=10",
            "-N",
            "1-2",
            "--exclusive",
            "-q",
            "normal",
            "-A",
            "proj",
        ],
    ).job
    assert job["array"] == "0-9%2"
    assert job["dependency"] == "afterok:12"
    assert job["begin_time"] == "now+60"
    assert job["priority"] == 10
    assert job["nodes"] == 1
    assert job["exclusive"] is True
    assert job["qos"] == "normal" and job["account"] == "proj"


# ---- script checks ---------------------------------------------------------------------------


def test_script_checks() -> None:
    with pytest.raises(SbatchError, match="empty"):
        check_script("")
    with pytest.raises(SbatchError, match="does not look like a batch script"):
        check_script("echo hi\n")
    with pytest.raises(SbatchError, match="DOS line breaks"):
        check_script("#!/bin/sh\r\necho hi\r\n")
    check_script("#!/bin/sh\necho hi\n")


# ---- getopt ----------------------------------------------------------------------------------


def test_getopt_behaves_like_gnu() -> None:
    table = OptionTable(
        [
            Option("name", ("name",), "n", "required"),
            Option("verbose", ("verbose",), "v"),
            Option("very", ("very",), None),
            Option("level", ("level",), "l", "optional"),
        ]
    )
    parsed, rest = getopt_long(["-vnfoo", "x", "--name", "bar", "--level", "y"], table)
    assert parsed == [
        ("verbose", None),
        ("name", "foo"),
        ("name", "bar"),
        ("level", None),
    ]
    assert rest == ["x", "y"]
    with pytest.raises(GetoptError, match="ambiguous"):
        getopt_long(["--ve"], table)
    with pytest.raises(GetoptError, match="unrecognized option '--nope'"):
        getopt_long(["--nope"], table)
    with pytest.raises(GetoptError, match="invalid option -- 'z'"):
        getopt_long(["-z"], table)
    with pytest.raises(GetoptError, match="requires an argument"):
        getopt_long(["--name"], table)
    with pytest.raises(GetoptError, match="doesn't allow an argument"):
        getopt_long(["--verbose=1"], table)
    parsed, rest = getopt_long(["a", "-v", "--", "-n"], table, stop_at_operand=False)
    assert parsed == [("verbose", None)] and rest == ["a", "-n"]


# ---- start-up cost -----------------------------------------------------------------------------


def test_typical_submission_imports_nothing_heavy() -> None:
    """`sbatch -t ... -a ... -d ...` must not import typing, dataclasses or datetime: each costs
    milliseconds of the ~40 ms a submission may take (they are checked in a fresh interpreter)."""
    code = (
        "from conductor.cli.sbatch_options import build_plan, first_pass\n"
        "argv = ['-t', '1-00:00:00', '-a', '0-19%4', '-d', 'afterok:12:13_2,aftercorr:14', '--mem=1G',\n"
        "        '-J', 'x', '--wrap', 'true']\n"
        "plan = build_plan(first_pass(argv), '#!/bin/sh\\ntrue\\n', script_path=None,\n"
        "                  environ={'PATH': '/bin'}, cwd='/tmp')\n"
        "assert plan.job['time_limit'] == '1-00:00:00' and plan.job['array'] == '0-19%4'\n"
    )
    heavy = {"typing", "dataclasses", "datetime", "inspect", "conductor.domain.arrays", "conductor.domain.dependency"}
    assert heavy_imports(code, heavy) == []


def test_unusual_array_and_dependency_values_still_get_a_precise_message() -> None:
    with pytest.raises(SbatchError, match=r"^Invalid job array specification: "):
        plan_for("#!/bin/sh\n", ["--array=1-x"])
    with pytest.raises(SbatchError, match=r"Job dependency problem"):
        plan_for("#!/bin/sh\n", ["--dependency=afterwards:12"])
    with pytest.raises(SbatchError, match=r"dependency type 'expand' is not supported"):
        plan_for("#!/bin/sh\n", ["--dependency=expand:12"])
    # Well-formed values go to the server as written (it checks ranges and job ids).
    job = plan_for("#!/bin/sh\n", ["--array=5-3", "-d", "afterok:1?singleton"]).job
    assert job["array"] == "5-3" and job["dependency"] == "afterok:1?singleton"


def test_the_command_is_the_scripts_full_path() -> None:
    assert plan_for("#!/bin/sh\n", path="sub/../jobs/run.sh").job["command"] == "/work/dir/jobs/run.sh"
    assert plan_for("#!/bin/sh\n", path="/abs/run.sh").job["command"] == "/abs/run.sh"
    assert "command" not in plan_for("#!/bin/sh\n", path=None).job  # standard input
    assert "command" not in plan_for("", ["--wrap", "true"], path=None).job


def test_the_cluster_variables_are_m() -> None:
    for name in ("SBATCH_CLUSTERS", "SLURM_CLUSTERS"):
        plan = plan_for("#!/bin/sh\n", environ={**ENV, name: "conductor"})
        assert plan.cluster == "conductor" and plan.warnings == [], name
    other = plan_for("#!/bin/sh\n", environ={**ENV, "SBATCH_CLUSTERS": "far"})
    assert other.warnings == ["there is one cluster, conductor; --clusters=far is ignored"]
    assert plan_for("#!/bin/sh\n").cluster is None
