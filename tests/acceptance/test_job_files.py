"""The files a job makes: with its submitter's file mode mask (sbatch sends SLURM_UMASK), and never
into a file another user planted in a shared directory. The mask: its files, its output
included, are made with it, as slurmstepd makes them; the batch script no longer sees the variable.
A user with `umask 077` had their job's output readable by everyone (0644)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from support import TERMINAL, Api, ConductorProcess, clean_env


@pytest.mark.parametrize("starter", ["auto", "python"])
def test_a_jobs_files_are_made_with_its_submitters_umask(
    start_conductor: Callable[..., ConductorProcess], tmp_path: Path, starter: str
) -> None:
    server = start_conductor("--cpus", "1", env={"CONDUCTOR_JOB_STARTER": starter})
    api = Api(server.url)
    script = "#!/bin/bash\necho \"umask=$(umask) variable=${SLURM_UMASK-unset}\"\ntouch made\nmkdir dir\n"
    for mask, file_mode, dir_mode in ((0o077, 0o600, 0o700), (0o022, 0o644, 0o755)):
        work = tmp_path / f"work-{mask:o}"
        work.mkdir()
        result = subprocess.run(
            [sys.executable, "-c", f"import os, sys; os.umask({mask}); sys.argv[0] = 'sbatch';"
             "from conductor.__main__ import main; sys.exit(main(['sbatch', '--parsable']))"],
            input=script, capture_output=True, text=True, cwd=work, timeout=60, check=False,
            env=clean_env(CONDUCTOR_URL=server.url, CONDUCTOR_TOKEN=server.token),
        )
        assert result.returncode == 0, result.stderr
        job_id = int(result.stdout)
        assert api.wait_state(job_id, TERMINAL)["state"] == "COMPLETED"
        output = work / f"slurm-{job_id}.out"
        assert output.read_text() == f"umask=0{mask:03o} variable=unset\n"
        assert stat.S_IMODE(output.stat().st_mode) == file_mode
        assert stat.S_IMODE((work / "made").stat().st_mode) == file_mode
        assert stat.S_IMODE((work / "dir").stat().st_mode) == dir_mode
    # Without the variable (a REST submission), the node's own mask, as before.
    plain = api.submit("#!/bin/bash\numask\n", current_working_directory=str(tmp_path))
    assert api.wait_state(plain, TERMINAL)["state"] == "COMPLETED"
    assert (tmp_path / f"slurm-{plain}.out").read_text().strip() == f"{os.umask(0o022):04o}"
    os.umask(0o022)


def test_only_a_mask_is_applied() -> None:
    from conductor.worker.protocol import job_umask

    assert [job_umask(v) for v in (b"0077", b"077", b"0", b"0022", b"7777")] == [0o77, 0o77, 0, 0o22, 0o777]
    assert [job_umask(v) for v in (b"", b"0o77", b"x", b"00777", b"99", b" 022")] == [None] * 6


@pytest.mark.parametrize("starter", ["auto", "python"])
def test_an_output_file_planted_in_a_shared_directory_receives_nothing(
    start_conductor: Callable[..., ConductorProcess], tmp_path: Path, starter: str
) -> None:
    """A job with no working directory writes slurm-<id>.out in /tmp; anyone could make that
    file first, and own what the job wrote to it. In a sticky directory everyone may write to, a
    file of another user is refused (the kernel's fs.protected_regular, whatever the sysctl)."""
    server = start_conductor("--cpus", "1", env={"CONDUCTOR_JOB_STARTER": starter})
    api = Api(server.url)
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o1777)
    next_id = api.submit("#!/bin/bash\ntrue\n", current_working_directory=str(tmp_path)) + 1
    planted = shared / f"slurm-{next_id}.out"
    planted.write_text("")
    os.chown(planted, 65534, 65534)
    os.chmod(planted, 0o666)
    job_id = api.submit("#!/bin/bash\necho secret\n", current_working_directory=str(shared))
    assert job_id == next_id
    failed = api.wait_state(job_id, TERMINAL)
    assert failed["state"] == "FAILED" and "belongs to another user" in (failed.get("error_msg") or ""), failed
    assert planted.read_text() == ""
    # The job's own user's file there is written as ever.
    own = api.submit("#!/bin/bash\necho mine\n", current_working_directory=str(shared))
    assert api.wait_state(own, TERMINAL)["state"] == "COMPLETED"
    assert (shared / f"slurm-{own}.out").read_text() == "mine\n"
