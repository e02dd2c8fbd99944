"""Why a job failed, where Slurm users look: `scontrol show job` (Reason=), `sacct` (State and
Reason) and `squeue` (%R, %r), against a real `conductor up`."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support import TERMINAL, Api, ConductorProcess, clean_env, running_up


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConductorProcess]:
    with running_up(tmp_path_factory.mktemp("reasons") / "home", "--cpus", "2") as process:
        yield process


class Cli:
    def __init__(self, server: ConductorProcess, cwd: Path) -> None:
        self.cwd = cwd
        self.env = clean_env(CONDUCTOR_URL=server.url, CONDUCTOR_TOKEN=server.token)
        self.api = Api(server.url)

    def __call__(self, *args: str) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [sys.executable, "-m", "conductor", *args],
            capture_output=True, text=True, cwd=self.cwd, env=self.env, timeout=60, check=False,
        )
        assert result.returncode == 0, f"{args}: {result.stderr}"
        return result

    def ended(self, *sbatch: str) -> tuple[int, str]:
        """Submit, wait for the end; (job id, sbatch's stderr)."""
        result = self("sbatch", "--parsable", *sbatch)
        job_id = int(result.stdout)
        self.api.wait_state(job_id, TERMINAL)
        return job_id, result.stderr

    def views(self, job_id: int) -> tuple[str, str, str, str]:
        """(scontrol's Reason=, sacct's State|Reason, squeue's %R, squeue's %r)."""
        shown = self("scontrol", "show", "job", str(job_id)).stdout
        reason = next(w for w in shown.split() if w.startswith("Reason="))
        sacct = self("sacct", "-j", str(job_id), "-X", "-n", "-P", "-o", "State,Reason").stdout.strip()
        squeue = self("squeue", "-h", "-t", "all", "-j", str(job_id), "-o", "%R|%r").stdout.strip()
        reason_list, _, bare = squeue.partition("|")
        return reason, sacct, reason_list, bare


@pytest.fixture
def cli(server: ConductorProcess, tmp_path: Path) -> Iterator[Cli]:
    client = Cli(server, tmp_path)
    yield client
    client.api.close()


def test_a_missing_working_directory_is_warned_about_and_explained_in_every_view(cli: Cli, tmp_path: Path) -> None:
    missing = tmp_path / "not-yet"
    job_id, warning = cli.ended("-D", str(missing), "--wrap", "echo hi")
    # Accepted, as Slurm accepts it (a job before it may create the directory), with a warning.
    # The job would run in /tmp, but its output file is named from the missing directory.
    assert f"--chdir: working directory '{missing}' does not exist" in warning
    why = f"cannot open output file '{missing}/slurm-{job_id}.out': No such file or directory"
    reason, sacct, reason_list, bare = cli.views(job_id)
    assert reason == "Reason=" + why.replace(" ", "_")  # one word, as scontrol prints a state_desc
    assert sacct == f"FAILED|{why}"
    assert reason_list == f"({why})" and bare == why
    assert cli.api.job(job_id)["reason"] == "JobLaunchFailure"


@pytest.mark.parametrize("starter", ["auto", "python"])
def test_a_missing_working_directory_with_whole_file_names_runs_in_tmp(
    start_conductor: Callable[..., ConductorProcess], tmp_path: Path, starter: str
) -> None:
    # As slurmstepd: the job runs in /tmp and its error file says why (a tool that names its
    # files whole, as psij does, saw the job fail instead).
    server = start_conductor("--cpus", "1", env={"CONDUCTOR_JOB_STARTER": starter})
    cli = Cli(server, tmp_path)
    missing, out = tmp_path / "not-there", tmp_path / "job.out"
    job_id, warning = cli.ended("-D", str(missing), "-o", str(out), "--wrap", "pwd; echo ran")
    assert "the job runs in /tmp unless it is usable when it starts" in warning
    assert cli.api.job(job_id)["state"] == "COMPLETED"
    assert out.read_text() == (
        f"slurmstepd: error: couldn't chdir to `{missing}': No such file or directory: going to /tmp instead\n"
        "/tmp\nran\n"
    )


def test_an_unusable_output_path_is_explained(cli: Cli, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    target = blocker / "out.txt"  # its "directory" is a regular file: nobody can create it
    job_id, warning = cli.ended("-o", str(target), "--wrap", "echo hi")
    assert f"--output: directory '{blocker}' is not a directory" in warning
    reason, sacct, reason_list, _ = cli.views(job_id)
    why = f"cannot open output file '{target}': Not a directory"
    assert reason == "Reason=" + why.replace(" ", "_")
    assert sacct == f"FAILED|{why}"
    assert reason_list == f"({why})"


def test_exit_codes_signals_and_success_show_slurms_reason_codes(cli: Cli) -> None:
    failed, warning = cli.ended("--wrap", "exit 3")
    assert warning == ""
    assert cli.views(failed)[:3] == ("Reason=NonZeroExitCode", "FAILED|NonZeroExitCode", "(NonZeroExitCode)")
    killed, _ = cli.ended("--wrap", "kill -9 $$")
    assert cli.views(killed)[:2] == ("Reason=RaisedSignal", "FAILED|RaisedSignal")
    done, _ = cli.ended("--wrap", "true")
    reason, sacct, reason_list, _ = cli.views(done)
    assert (reason, sacct) == ("Reason=None", "COMPLETED|None")
    assert not reason_list.startswith("(")  # the node list, as for any job that did not fail
