"""Tools written for Slurm run unchanged against conductor, through `conductor slurm-shims`.

submitit (sbatch of a generated script with #SBATCH lines, job arrays, sacct --parsable2,
scancel, and srun inside the job) and dask-jobqueue (sbatch of a generated #SBATCH script,
scancel on close) each run in a child Python with the shims first on PATH. Neither tool is
patched: only their public options are set, to poll faster than their cluster-friendly
defaults.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

# Test dependencies (pyproject's `test` extra): a missing one must fail, never skip.
import dask_jobqueue  # noqa: F401
import pytest
import submitit  # noqa: F401
from support import ConductorProcess, clean_env


def _run_tool(server: ConductorProcess, tmp_path: Path, code: str, timeout: float = 120) -> str:
    """Run `code` in a fresh Python whose PATH starts with the shims; return its stdout."""
    shims = tmp_path / "shims"
    env = clean_env(CONDUCTOR_URL=server.url, CONDUCTOR_HOME=str(server.home))
    subprocess.run(
        [sys.executable, "-m", "conductor", "slurm-shims", str(shims)],
        check=True,
        env=env,
        capture_output=True,
    )
    env["PATH"] = f"{shims}:{env.get('PATH', '/usr/bin:/bin')}"
    script = tmp_path / "tool.py"
    script.write_text(textwrap.dedent(code))
    result = subprocess.run(
        [sys.executable, str(script)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.mark.slow
def test_submitit_executors_arrays_and_cancel(conductor_server: ConductorProcess, tmp_path: Path) -> None:
    out = _run_tool(
        conductor_server,
        tmp_path,
        f"""
        import os, time
        import submitit

        def add(a, b):
            return a + b

        def where():
            return os.environ["SLURM_JOB_ID"], os.environ.get("SLURM_ARRAY_TASK_ID"), os.environ["SLURM_PROCID"]

        def final_state(job, wanted):
            # The result file appears before the job has ended; ask sacct until it has.
            deadline = time.time() + 30
            state = job.watcher.get_state(job.job_id, mode="force")
            while state != wanted and time.time() < deadline:
                time.sleep(0.2)
                state = job.watcher.get_state(job.job_id, mode="force")
            return state

        auto = submitit.AutoExecutor(folder={str(tmp_path / "auto")!r})
        assert auto.cluster == "slurm", auto.cluster
        auto.update_parameters(timeout_min=5, cpus_per_task=1, mem_gb=1, slurm_array_parallelism=8)
        job = auto.submit(add, 2, 3)
        assert job.result() == 5
        print("auto", final_state(job, "COMPLETED"))

        jobs = auto.map_array(add, list(range(20)), list(range(100, 120)))
        assert len({{j.job_id.split("_")[0] for j in jobs}}) == 1, [j.job_id for j in jobs]
        assert [j.job_id.split("_")[1] for j in jobs] == [str(i) for i in range(20)]
        print("array", [j.result() for j in jobs] == [a + b for a, b in zip(range(20), range(100, 120))])

        slurm = submitit.SlurmExecutor(folder={str(tmp_path / "slurm")!r}, max_num_timeout=0)
        slurm.update_parameters(time=5, cpus_per_task=1, mem="1G", ntasks_per_node=1, job_name="plain")
        job = slurm.submit(add, 2, 3)
        assert job.result() == 5
        print("slurm", final_state(job, "COMPLETED"))
        job = slurm.submit(where)
        job_id, task, rank = job.result()
        print("where", job_id == job.job_id, task, rank)
        slurm.update_parameters(array_parallelism=2)  # sbatch --array=0-3%2
        tasks = slurm.map_array(add, [1, 2, 3, 4], [10, 20, 30, 40])
        print("throttled", [t.result() for t in tasks])

        sleeper = auto.submit(time.sleep, 120)
        deadline = time.time() + 30
        while sleeper.watcher.get_state(sleeper.job_id, mode="force") != "RUNNING" and time.time() < deadline:
            time.sleep(0.2)
        sleeper.cancel()
        print("cancelled", final_state(sleeper, "CANCELLED"))
        """,
    )
    assert "auto COMPLETED" in out
    assert "array True" in out
    assert "slurm COMPLETED" in out
    assert "where True None 0" in out
    assert "throttled [11, 22, 33, 44]" in out
    assert "cancelled CANCELLED" in out


@pytest.mark.slow
def test_dask_jobqueue_slurm_cluster(conductor_server: ConductorProcess, tmp_path: Path) -> None:
    out = _run_tool(
        conductor_server,
        tmp_path,
        f"""
        import os, subprocess, time
        import dask
        from dask_jobqueue import SLURMCluster
        from distributed import Client

        # Public settings only: workers give up quickly on a lost scheduler, the cluster
        # checks its jobs often.
        dask.config.set({{"distributed.comm.timeouts.connect": "10s"}})
        cluster = SLURMCluster(
            cores=1, memory="1GB", processes=1, walltime="00:10:00",
            log_directory={str(tmp_path / "dask-logs")!r},
            scheduler_options={{"host": "127.0.0.1"}},
            death_timeout=20,
        )
        assert "#SBATCH" in cluster.job_script()
        cluster.scale(jobs=2)
        with Client(cluster) as client:
            client.wait_for_workers(2, timeout=60)
            print("sum", sum(client.gather(client.map(lambda x: x * x, range(10)))))
            job_ids = sorted(set(client.run(lambda: os.environ["SLURM_JOB_ID"]).values()))
            print("jobs", len(job_ids))
        cluster.close()
        # Closing the cluster scancels its jobs.
        deadline = time.time() + 30
        states = []
        while time.time() < deadline:
            out = subprocess.run(
                ["sacct", "-X", "-n", "-P", "-o", "State", "-j", ",".join(job_ids)],
                capture_output=True, text=True, check=True,
            ).stdout.splitlines()
            # "CANCELLED by UID", as Slurm's sacct says who cancelled.
            states = sorted({{line.split()[0] for line in out if line}})
            if states and all(s not in ("PENDING", "RUNNING") for s in states):
                break
            time.sleep(0.2)
        # A worker told to close by its scheduler may exit before its scancel arrives.
        print("closed", bool(states) and set(states) <= {{"CANCELLED", "COMPLETED"}}, states)
        """,
    )
    assert "sum 285" in out
    assert "jobs 2" in out
    assert "closed True" in out
