"""The Slurm user commands as subprocesses against a real `conductor up`."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from support import TERMINAL, ConductorProcess, clean_env


class Cli:
    """Runs `python -m conductor <cmd> ...` the way a user's shell would."""

    def __init__(self, server: ConductorProcess, cwd: Path) -> None:
        self.server = server
        self.cwd = cwd
        self.env = clean_env(CONDUCTOR_URL=server.url, CONDUCTOR_HOME=str(server.home))

    def __call__(
        self,
        *args: str,
        stdin: str | None = None,
        check: bool = True,
        timeout: float = 60,
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [sys.executable, "-m", "conductor", *args],
            input=stdin,
            capture_output=True,
            text=True,
            cwd=self.cwd,
            env=self.env,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"{args} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
            )
        return result

    def submit(self, *args: str, stdin: str | None = None) -> int:
        return int(self("sbatch", "--parsable", *args, stdin=stdin).stdout.strip())

    def state(self, job: str | int) -> str:
        out = self(
            "sacct", "-j", str(job), "-X", "-n", "-P", "-o", "State"
        ).stdout.split()
        return out[0] if out else ""

    def wait_state(self, job: str | int, states: set[str], timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        state = ""
        while time.monotonic() < deadline:
            state = self.state(job)
            if state in states:
                return state
            time.sleep(0.1)
        raise AssertionError(f"job {job} stayed {state!r}, wanted {states}")


@pytest.fixture
def cli(conductor_server: ConductorProcess, tmp_path: Path) -> Cli:
    work = tmp_path / "work"
    work.mkdir()
    return Cli(conductor_server, work)


def test_sbatch_script_with_directives_runs_and_writes_default_output(cli: Cli) -> None:
    script = cli.cwd / "hello.sh"
    script.write_text(
        "#!/bin/bash\n# a job\n\n#SBATCH --job-name=greeter\n#SBATCH -t 1:00\n"
        "echo hello-stdout $SLURM_JOB_NAME; echo hello-stderr >&2\n#SBATCH -J ignored\n"
    )
    out = cli("sbatch", str(script)).stdout
    assert out.startswith("Submitted batch job ")
    job_id = int(out.split()[-1])
    assert cli.wait_state(job_id, TERMINAL) == "COMPLETED"
    assert (
        cli.cwd / f"slurm-{job_id}.out"
    ).read_text() == "hello-stdout greeter\nhello-stderr\n"
    rows = cli(
        "sacct",
        "-j",
        str(job_id),
        "-P",
        "-n",
        "-o",
        "JobID,JobName,State,ExitCode,Timelimit",
    )
    assert rows.stdout.splitlines()[0] == f"{job_id}|greeter|COMPLETED|0:0|00:01:00"


def test_sbatch_stdin_wrap_and_command_line_overrides(cli: Cli) -> None:
    job_id = cli.submit(
        "-J", "fromcli", stdin="#!/bin/sh\n#SBATCH -J fromscript\necho in\n"
    )
    wrap_id = cli.submit("--wrap", "echo wrapped", "-o", "w-%j.txt")
    cli.wait_state(job_id, TERMINAL)
    cli.wait_state(wrap_id, TERMINAL)
    names = cli(
        "sacct", "-j", f"{job_id},{wrap_id}", "-X", "-n", "-P", "-o", "JobName"
    ).stdout
    assert names.split() == ["fromcli", "wrap"]
    assert (cli.cwd / f"w-{wrap_id}.txt").read_text() == "wrapped\n"


def test_sbatch_refusals_look_like_slurm(cli: Cli) -> None:
    unknown = cli("sbatch", "--frobnicate", "--wrap", "true", check=False)
    assert unknown.returncode == 1
    assert unknown.stderr == (
        "sbatch: unrecognized option '--frobnicate'\nTry \"sbatch --help\" for more information\n"
    )
    bad_time = cli("sbatch", "-t", "soon", "--wrap", "true", check=False)
    assert bad_time.returncode == 1 and bad_time.stderr.startswith(
        "sbatch: error: Invalid --time"
    )
    too_big = cli("sbatch", "-c", "64", "--wrap", "true", check=False)
    assert too_big.returncode == 1
    assert too_big.stderr.startswith("sbatch: error: Batch job submission failed: ")
    nodes = cli("sbatch", "-N", "2", "--wrap", "true", check=False)
    assert nodes.returncode == 1 and "sbatch: error: " in nodes.stderr
    mail = cli("sbatch", "--parsable", "--mail-type=END", "--wrap", "true")
    assert "sbatch: warning: " in mail.stderr and mail.stdout.strip().isdigit()


def test_sbatch_wait_returns_the_exit_code_and_export_none(cli: Cli) -> None:
    cli.env["MY_SECRET"] = "visible"
    waited = cli(
        "sbatch",
        "-W",
        "--export=NONE",
        "-o",
        "e.out",
        "--wrap",
        "echo [$MY_SECRET]; exit 3",
        check=False,
    )
    assert waited.returncode == 3
    assert (cli.cwd / "e.out").read_text() == "[]\n"
    shown = cli("sbatch", "-W", "-o", "a.out", "--wrap", "echo [$MY_SECRET]")
    assert shown.returncode == 0
    assert (cli.cwd / "a.out").read_text() == "[visible]\n"


def test_test_only_submits_nothing(cli: Cli) -> None:
    before = cli("sacct", "-a", "-X", "-n", "-P", "-o", "JobID").stdout
    result = cli("sbatch", "--test-only", "--wrap", "true")
    assert result.stdout == "" and result.stderr.startswith("sbatch: ")
    assert cli("sacct", "-a", "-X", "-n", "-P", "-o", "JobID").stdout == before


def test_squeue_default_columns_array_collapse_and_held_reason(cli: Cli) -> None:
    blocker = cli.submit("-c", "4", "--wrap", "sleep 30")
    array = cli.submit("-a", "0-5%2", "--wrap", "sleep 30")
    held = cli.submit("-H", "--wrap", "true")
    cli.wait_state(blocker, {"RUNNING"})
    out = cli("squeue").stdout.splitlines()
    assert out[0] == (
        "             JOBID PARTITION     NAME     USER ST       TIME  NODES NODELIST(REASON)"
    )
    lines = {line.split()[0]: line for line in out[1:]}
    assert f"{array}_[0-5%2]" in lines
    assert lines[str(held)].split()[4] == "PD"
    assert lines[str(held)].endswith("(JobHeldUser)")
    assert lines[str(blocker)].split()[4] == "R"
    ids = cli("squeue", "-h", "-r", "-j", str(array), "-o", "%i %t").stdout.split("\n")
    assert f"{array}_3 PD" in ids
    assert cli("scancel", str(blocker), str(array), str(held)).returncode == 0
    assert cli.wait_state(blocker, TERMINAL) == "CANCELLED"
    assert cli("squeue", "-h", "-j", str(held)).stdout == ""


def test_scancel_array_task_and_unknown_job(cli: Cli) -> None:
    array = cli.submit("-H", "-a", "1-3", "--wrap", "true")
    cli("scancel", f"{array}_2")
    states = cli(
        "sacct", "-j", str(array), "-X", "-n", "-P", "--array", "-o", "JobID,State"
    )
    assert f"{array}_2|CANCELLED" in states.stdout.splitlines()
    assert f"{array}_1|PENDING" in states.stdout.splitlines()
    missing = cli("scancel", "999999", check=False)
    assert missing.returncode == 1
    assert "Invalid job id specified" in missing.stderr
    cli("scancel", str(array))


def test_scontrol_show_job_and_update(cli: Cli) -> None:
    job_id = cli.submit("-H", "-J", "shown", "--wrap", "true")
    shown = cli("scontrol", "show", "job", str(job_id)).stdout
    assert shown.startswith(f"JobId={job_id} JobName=shown\n")
    assert "   JobState=PENDING Reason=JobHeldUser Dependency=(null)\n" in shown
    cli("scontrol", "update", f"JobId={job_id}", "TimeLimit=10:00")
    assert "TimeLimit=00:10:00" in cli("scontrol", "show", "job", str(job_id)).stdout
    unknown = cli("scontrol", "show", "job", "999999", check=False)
    assert unknown.returncode == 1
    cli("scancel", str(job_id))


def test_sinfo_and_stats(cli: Cli) -> None:
    lines = cli("sinfo").stdout.splitlines()
    assert lines[0] == "PARTITION AVAIL  TIMELIMIT  NODES  STATE NODELIST"
    assert lines[1].split()[0].endswith("*")
    assert "Total CPUs" in cli("stats").stdout


def test_srun_inside_a_job_runs_ntasks_with_ranks(cli: Cli) -> None:
    shims = cli.cwd / "bin"
    cli("slurm-shims", str(shims))
    cli.env["PATH"] = f"{shims}:{cli.env['PATH']}"
    script = (
        "#!/bin/bash\n#SBATCH -n 3\n"
        "srun -l bash -c 'echo rank $SLURM_PROCID of $SLURM_NTASKS'\n"
        "srun -n 2 -o 'task-%t.out' bash -c 'echo $SLURM_PROCID'\n"
        "srun -n 1 false; echo srun-rc=$?\n"
    )
    job_id = cli.submit("-o", "srun.out", stdin=script)
    assert cli.wait_state(job_id, TERMINAL) == "COMPLETED"
    out = (cli.cwd / "srun.out").read_text().splitlines()
    assert sorted(line for line in out if "rank" in line) == [
        "0: rank 0 of 3",
        "1: rank 1 of 3",
        "2: rank 2 of 3",
    ]
    assert "srun-rc=1" in out
    assert (cli.cwd / "task-0.out").read_text() == "0\n"
    assert (cli.cwd / "task-1.out").read_text() == "1\n"
    outside = cli("srun", "true", check=False)
    assert outside.returncode == 1 and "inside a batch job" in outside.stderr


def test_connection_refused_names_the_url(cli: Cli) -> None:
    cli.env["CONDUCTOR_URL"] = "http://127.0.0.1:9"
    result = cli("sbatch", "--wrap", "true", check=False)
    assert result.returncode == 1
    assert "http://127.0.0.1:9" in result.stderr and result.stderr.startswith(
        "sbatch: error: "
    )
