"""The Slurm user commands as subprocesses against a real `conductor up`.

One server (4 CPUs, node `cn01`) serves the whole module: starting one per test would cost more
than the tests themselves. Each test gets its own working directory, and after each test every
job still pending or running is cancelled, so the next one starts on an idle node.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from support import TERMINAL, Api, ConductorProcess, clean_env, free_port, running_up

NODE = "cn01"
USER = pwd.getpwuid(os.getuid()).pw_name
STAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d"


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
        env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [sys.executable, "-m", "conductor", *args],
            input=stdin,
            capture_output=True,
            text=True,
            cwd=self.cwd,
            env={**self.env, **(env or {})},
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"{args} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
        return result

    def submit(self, *args: str, stdin: str | None = None) -> int:
        out = self("sbatch", "--parsable", *args, stdin=stdin).stdout
        assert re.fullmatch(r"\d+\n", out), out  # --parsable: the id alone (one cluster)
        return int(out)

    def state(self, job: str | int) -> str:
        out = self("sacct", "-j", str(job), "-X", "-n", "-P", "-o", "State").stdout.split()
        return out[0] if out else ""

    def wait_state(self, job: str | int, states: set[str] | str, timeout: float = 30) -> str:
        wanted = {states} if isinstance(states, str) else states
        deadline = time.monotonic() + timeout
        state = ""
        while time.monotonic() < deadline:
            state = self.state(job)
            if state in wanted:
                return state
            time.sleep(0.1)
        raise AssertionError(f"job {job} stayed {state!r}, wanted {wanted}")

    def wait_text(self, path: Path, text: str, timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        content = ""
        while time.monotonic() < deadline:
            content = path.read_text() if path.exists() else ""
            if text in content:
                return content
            time.sleep(0.05)
        raise AssertionError(f"{path} never contained {text!r}: {content!r}")

    def ids(self, *args: str) -> list[str]:
        """squeue -h -o %i with extra filters, one id per line."""
        return self("squeue", "-h", "-o", "%i", *args).stdout.split()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConductorProcess]:
    with running_up(tmp_path_factory.mktemp("cli") / "home", "--cpus", "4", "--node-name", NODE) as process:
        yield process


@pytest.fixture
def cli(server: ConductorProcess, tmp_path: Path) -> Iterator[Cli]:
    work = tmp_path / "work"
    work.mkdir()
    yield Cli(server, work)
    # Leave the node idle for the next test, whatever this one left behind.
    api = Api(server.url)
    try:
        live = api.jobs(state="PENDING,RUNNING")
        for job in live:
            api.http.post(f"/jobs/cancel/{job['job_id']}")
        api.wait_all([int(j["job_id"]) for j in live], timeout=30)
    finally:
        api.close()


# ------------------------------------------------------------------------------------- sbatch
def test_sbatch_script_with_directives_runs_and_writes_default_output(cli: Cli) -> None:
    script = cli.cwd / "hello.sh"
    script.write_text(
        "#!/bin/bash\n# a job\n\n#SBATCH --job-name=greeter\n#SBATCH -t 1:00 # one minute\n"
        "echo hello-stdout $SLURM_JOB_NAME; echo hello-stderr >&2\n#SBATCH -J ignored\n"
    )
    out = cli("sbatch", str(script)).stdout
    assert re.fullmatch(r"Submitted batch job \d+\n", out), out
    job_id = int(out.split()[-1])
    assert cli.wait_state(job_id, TERMINAL) == "COMPLETED"
    # #SBATCH after the first command is ignored; stdout and stderr share slurm-%j.out.
    assert (cli.cwd / f"slurm-{job_id}.out").read_text() == "hello-stdout greeter\nhello-stderr\n"
    rows = cli("sacct", "-j", str(job_id), "-P", "-n", "-o", "JobID,JobName,State,ExitCode,Timelimit")
    assert rows.stdout.splitlines()[0] == f"{job_id}|greeter|COMPLETED|0:0|00:01:00"


def test_sbatch_stdin_wrap_and_command_line_overrides(cli: Cli) -> None:
    job_id = cli.submit("-J", "fromcli", stdin="#!/bin/sh\n#SBATCH -J fromscript\necho in\n")
    wrap_id = cli.submit("--wrap", "echo wrapped", "-o", "w-%j.txt")
    plain_id = cli.submit(stdin="#!/bin/sh\necho plain\n")
    for job in (job_id, wrap_id, plain_id):
        cli.wait_state(job, TERMINAL)
    names = cli("sacct", "-j", f"{job_id},{wrap_id},{plain_id}", "-X", "-n", "-P", "-o", "JobName").stdout
    # A script read from stdin is named "sbatch", a wrapped command "wrap", as in Slurm.
    assert names.split() == ["fromcli", "wrap", "sbatch"]
    assert (cli.cwd / f"w-{wrap_id}.txt").read_text() == "wrapped\n"


def test_sbatch_precedence_directives_then_environment_then_command_line(cli: Cli) -> None:
    script = "#!/bin/sh\n#SBATCH -J fromscript\n#SBATCH -t 7\ntrue\n"
    directive = cli.submit("-H", stdin=script)
    cli.env["SBATCH_JOB_NAME"] = "fromenv"
    from_env = cli.submit("-H", stdin=script)
    from_cli = cli.submit("-H", "-J", "fromcli", "-t", "8", stdin=script)
    rows = cli("sacct", "-j", f"{directive},{from_env},{from_cli}", "-X", "-n", "-P", "-o", "JobName,Timelimit")
    assert rows.stdout.splitlines() == ["fromscript|00:07:00", "fromenv|00:07:00", "fromcli|00:08:00"]


def test_sbatch_passes_script_arguments(cli: Cli) -> None:
    script = cli.cwd / "args.sh"
    script.write_text('#!/bin/bash\necho "$#|$1|$2"\n')
    job_id = cli.submit("-o", "args.out", str(script), "one", "two words")
    assert cli.wait_state(job_id, TERMINAL) == "COMPLETED"
    assert (cli.cwd / "args.out").read_text() == "2|one|two words\n"
    refused = cli("sbatch", "--wrap", "true", "extra", check=False)
    assert refused.returncode == 1
    assert refused.stderr == "sbatch: error: Script arguments not permitted with --wrap option\n"


def test_sbatch_refusals_and_warnings_look_like_slurm(cli: Cli) -> None:
    unknown = cli("sbatch", "--frobnicate", "--wrap", "true", check=False)
    assert unknown.returncode == 1 and unknown.stdout == ""
    assert unknown.stderr == "sbatch: unrecognized option '--frobnicate'\nTry \"sbatch --help\" for more information\n"
    short = cli("sbatch", "-y", "--wrap", "true", check=False)
    assert short.returncode == 1 and short.stderr.startswith("sbatch: invalid option -- 'y'\n")
    bad_time = cli("sbatch", "-t", "soon", "--wrap", "true", check=False)
    assert bad_time.returncode == 1 and bad_time.stderr.startswith("sbatch: error: Invalid --time")
    too_big = cli("sbatch", "-c", "64", "--wrap", "true", check=False)
    assert too_big.returncode == 1
    assert too_big.stderr.startswith("sbatch: error: Batch job submission failed: ")
    nodes = cli("sbatch", "-N", "2", "--wrap", "true", check=False)
    assert nodes.returncode == 1 and "sbatch: error: " in nodes.stderr
    not_a_script = cli("sbatch", stdin="echo no shebang\n", check=False)
    assert not_a_script.returncode == 1
    assert not_a_script.stderr.startswith("sbatch: error: This does not look like a batch script.")
    # Accepted with a warning naming what is not honoured here; the job is still submitted.
    for option in ("--mail-type=END", "--constraint=fast"):
        warned = cli("sbatch", "--parsable", "-H", option, "--wrap", "true")
        assert warned.stderr.startswith("sbatch: warning: "), warned.stderr
        assert warned.stdout.strip().isdigit()
    # SLURM_EXIT_ERROR changes the exit code of a refusal, as in Slurm.
    cli.env["SLURM_EXIT_ERROR"] = "7"
    assert cli("sbatch", "--frobnicate", "--wrap", "true", check=False).returncode == 7


def test_sbatch_wait_returns_the_exit_code(cli: Cli) -> None:
    failed = cli("sbatch", "-W", "-o", "f.out", "--wrap", "echo ran; exit 3", check=False)
    assert failed.returncode == 3
    assert re.fullmatch(r"Submitted batch job \d+\n", failed.stdout)
    assert (cli.cwd / "f.out").read_text() == "ran\n"
    assert cli("sbatch", "--wait", "--parsable", "--wrap", "true").returncode == 0
    # An array waits for all its tasks and returns the largest exit code.
    array = cli("sbatch", "-W", "-a", "1-3", "--wrap", "exit $SLURM_ARRAY_TASK_ID", check=False)
    assert array.returncode == 3


def test_sbatch_export_semantics(cli: Cli) -> None:
    cli.env["MY_SECRET"] = "visible"
    cli.env["OTHER"] = "other"
    show = "echo [$MY_SECRET][$OTHER][$FOO][${SLURM_JOB_ID:+jobid}]"

    def run(export: str | None) -> str:
        out = cli.cwd / f"export-{len(list(cli.cwd.iterdir()))}.out"
        args = ["sbatch", "-W", "-o", str(out), "--wrap", show]
        if export is not None:
            args.insert(1, f"--export={export}")
        cli(*args)
        return out.read_text().strip()

    assert run(None) == "[visible][other][][jobid]"  # ALL by default
    assert run("NONE") == "[][][][jobid]"  # only SLURM_* (and the job's own) variables
    assert run("MY_SECRET") == "[visible][][][jobid]"  # named variables only
    assert run("FOO=bar") == "[][][bar][jobid]"
    assert run("ALL,FOO=bar") == "[visible][other][bar][jobid]"
    cli.env["SBATCH_EXPORT"] = "NONE"  # the input variable sets the default
    assert run(None) == "[][][][jobid]"


def test_test_only_submits_nothing(cli: Cli) -> None:
    before = cli("sacct", "-a", "-X", "-n", "-P", "-o", "JobID").stdout
    result = cli("sbatch", "--test-only", "--wrap", "true")
    assert result.stdout == "" and result.stderr.startswith("sbatch: ")
    refused = cli("sbatch", "--test-only", "-c", "64", "--wrap", "true", check=False)
    assert refused.returncode == 1 and refused.stderr.startswith("sbatch: error: ")
    assert cli("sacct", "-a", "-X", "-n", "-P", "-o", "JobID").stdout == before


# ------------------------------------------------------------------------------------- squeue
def test_squeue_default_columns_array_collapse_and_held_reason(cli: Cli) -> None:
    blocker = cli.submit("-c", "4", "-J", "blocker", "--wrap", "sleep 30")
    array = cli.submit("-a", "0-5%2", "--wrap", "sleep 30")
    held = cli.submit("-H", "-J", "a-long-held-name", "--wrap", "true")
    cli.wait_state(blocker, "RUNNING")
    out = cli("squeue").stdout.splitlines()
    assert out[0] == "             JOBID PARTITION     NAME     USER ST       TIME  NODES NODELIST(REASON)"
    lines = {line.split()[0]: line for line in out[1:]}
    # Pending tasks of one array collapse into one line; the name is cut to 8 columns.
    assert re.fullmatch(rf" *{array}_\[0-5%2\]     debug     wrap {USER:>8} PD       0:00      1 \(\w+\)", lines[f"{array}_[0-5%2]"])
    assert lines[str(held)] == f"{held:>18}     debug a-long-h {USER:>8} PD       0:00      1 (JobHeldUser)"
    assert re.fullmatch(rf"{blocker:>18}     debug  blocker {USER:>8}  R +\d:\d\d      1 {NODE}", lines[str(blocker)])
    # Pending jobs first, then running ones (squeue's default sort).
    assert list(lines).index(str(blocker)) > list(lines).index(str(held))
    tasks = cli("squeue", "-h", "-r", "-j", str(array), "-o", "%i %t").stdout.splitlines()
    assert tasks == [f"{array}_{i} PD" for i in range(6)]
    assert cli("scancel", str(blocker), str(array), str(held)).returncode == 0
    assert cli.wait_state(blocker, TERMINAL) == "CANCELLED"
    # An ended job is left out, not an error, once it is known.
    assert cli("squeue", "-h", "-j", str(held)).stdout == ""
    unknown = cli("squeue", "-j", "999999", check=False)
    assert unknown.returncode == 1 and "Invalid job id specified" in unknown.stderr


def test_squeue_formats_and_filters(cli: Cli) -> None:
    running = cli.submit("-J", "runner", "-t", "10", "--wrap", "sleep 30")
    held = cli.submit("-H", "-J", "held-job", "-t", "1-00:00:00", "--wrap", "true")
    array = cli.submit("-H", "-a", "1-4", "-J", "arr", "--wrap", "true")
    cli.wait_state(running, "RUNNING")

    # -o: '.' right-aligns, a width pads and cuts, text between fields is kept.
    assert cli("squeue", "-h", "-j", str(held), "-o", "%.10i|%5j|%t|%.5P|%l|%T").stdout == (
        f"{held:>10}|held-|PD|debug|1-00:00:00|PENDING\n"
    )
    assert cli("squeue", "-h", "-j", str(running), "-o", "%i %t %N %C %D %l %u").stdout == (
        f"{running} R {NODE} 1 1 10:00 {USER}\n"
    )
    # -O: name[:[.]size]; no separator but the padding (20 by default).
    assert cli("squeue", "-h", "-j", str(held), "-O", "JobID:8,Name:.10,StateCompact:4,Partition").stdout == (
        f"{held:<8}  held-jobPD  {'debug':<20}\n"
    )
    header = cli("squeue", "-j", str(held), "-O", "JobID:8,Name:.10,StateCompact:4").stdout.splitlines()[0]
    assert header == "JOBID         NAMEST  "

    # -t by name or compact code; -u, --me, -n.
    assert cli.ids("-t", "R") == [str(running)]
    pending = cli.ids("-t", "PD")
    assert str(held) in pending and f"{array}_[1-4]" in pending and str(running) not in pending
    assert cli.ids("-t", "pending,running", "-n", "runner,held-job") == [str(held), str(running)]
    assert set(cli.ids("-u", USER)) == {str(running), str(held), f"{array}_[1-4]"}
    assert cli.ids("--me", "-t", "R") == [str(running)]
    assert cli.ids("-u", "nobody") == []
    bad_state = cli("squeue", "-t", "sleeping", check=False)
    assert bad_state.returncode == 1 and bad_state.stderr.startswith("squeue: error: Invalid job state")

    # -j takes array tasks (123_4), whole arrays, and lists; -r expands arrays.
    assert cli("squeue", "-h", "-j", f"{array}_3", "-o", "%i %K %F %t").stdout == f"{array}_3 3 {array} PD\n"
    assert cli.ids("-j", str(array)) == [f"{array}_[1-4]"]
    assert cli.ids("-r", "-j", f"{array},{held}") == [str(held)] + [f"{array}_{i}" for i in range(1, 5)]
    assert cli("squeue", "-h", "-j", f"{array}_[2-3]", "-r", "-o", "%i").stdout.split() == [
        f"{array}_2",
        f"{array}_3",
    ]


# ------------------------------------------------------------------------------------ scancel
def test_scancel_array_task_whole_array_and_unknown_job(cli: Cli) -> None:
    array = cli.submit("-H", "-a", "1-3", "--wrap", "true")
    cli("scancel", f"{array}_2")
    states = cli("sacct", "-j", str(array), "-X", "-n", "-P", "--array", "-o", "JobID,State").stdout.splitlines()
    # sacct says who cancelled (its requid), by uid: the token's user here.
    by = f"CANCELLED by {os.getuid()}"
    assert states == [f"{array}_1|PENDING", f"{array}_2|{by}", f"{array}_3|PENDING"]
    steps = cli("sacct", "-j", f"{array}_2", "-n", "-P", "-o", "JobID,State").stdout.splitlines()
    assert steps == [f"{array}_2|{by}"]  # never started: no batch step
    # Ids alone: an id nobody knows, or a job that already ended, is not an error (scancel's
    # _cancel_job_id ignores both for SIGKILL), and is said with -v only.
    missing = cli("scancel", "999999", check=False)
    assert (missing.returncode, missing.stdout, missing.stderr) == (0, "", "")
    told = cli("scancel", "-v", "999999", check=False)
    assert told.returncode == 0
    assert told.stderr == "scancel: error: Kill job error on job id 999999: Invalid job id specified\n"
    cli("scancel", str(array))  # the whole array: its remaining tasks
    states = cli("sacct", "-j", str(array), "-X", "-n", "-P", "--array", "-o", "State").stdout.splitlines()
    assert states == [by] * 3
    # Fixed width, as sacct cuts a value: "CANCELLED+".
    assert cli("sacct", "-j", f"{array}_1", "-X", "-n", "-o", "State").stdout.split() == ["CANCELLED+"]
    again = cli("scancel", f"{array}_1", check=False)
    assert (again.returncode, again.stderr) == (0, "")
    whole = cli("scancel", "-v", str(array), check=False)  # every task has ended: one request
    assert whole.returncode == 0
    assert whole.stderr == f"scancel: error: Kill job error on job id {array}: Job/step already completing or completed\n"
    # With an option the jobs are read and filtered first: a named id that is not a live job
    # is an error (_verify_job_ids), ended or unknown alike.
    for args in (["-s", "USR1", f"{array}_1"], ["-t", "PENDING", "999999"], ["-b", str(array)]):
        refused = cli("scancel", *args, check=False)
        assert refused.returncode == 1, args
        assert refused.stderr.endswith(f"Kill job error on job id {args[-1]}: Invalid job id specified\n"), refused.stderr


def test_scancel_nodelist_interactive_and_filters_no_job_matches(cli: Cli) -> None:
    """-w selects the jobs running on those nodes; -R and --wckey match no job here (none has a
    reservation or a wckey), so they cancel nothing rather than everything; -i asks for each
    job, pending ones first, and cancels only what is confirmed."""
    runner = cli.submit("-J", "wfilter", "--wrap", "sleep 30")
    held = cli.submit("-H", "-J", "wfilter", "--wrap", "true")
    cli.wait_state(runner, "RUNNING")
    node, partition = cli("squeue", "-h", "-j", str(runner), "-o", "%N %P").stdout.split()
    for args in (["-w", "nosuchnode"], ["-R", "maint"], ["--wckey=nokey"], ["-w", ""]):
        cli("scancel", "-n", "wfilter", *args)
        assert (cli.state(runner), cli.state(held)) == ("RUNNING", "PENDING"), args
    bad = cli("scancel", "-n", "wfilter", "-w", "n[1-", check=False)
    assert bad.returncode == 1 and bad.stderr.startswith("scancel: error: Invalid node list")

    prompt = "Cancel job_id={} name=wfilter partition=" + partition + " [y/n]? "
    ended_input = cli("scancel", "-i", "-n", "wfilter", stdin="")  # no answer: nothing cancelled
    assert ended_input.stdout == prompt.format(held) + "\n"
    assert (cli.state(runner), cli.state(held)) == ("RUNNING", "PENDING")
    asked = cli("scancel", "-i", "-n", "wfilter", stdin="maybe\nn\nn\n")
    assert asked.stdout == prompt.format(held) * 2 + prompt.format(runner)
    assert (cli.state(runner), cli.state(held)) == ("RUNNING", "PENDING")

    # A named live job that a filter leaves out is passed over without a word (scancel checks
    # ids against the live jobs before it filters).
    passed = cli("scancel", "-w", node, str(held))
    assert (passed.returncode, passed.stderr, cli.state(held)) == (0, "", "PENDING")
    cli("scancel", "-n", "wfilter", "-w", node)  # the running job alone: the pending one has no node
    assert cli.wait_state(runner, TERMINAL) == "CANCELLED" and cli.state(held) == "PENDING"
    cli("scancel", "-i", "-n", "wfilter", stdin="Y\n")
    assert cli.state(held) == "CANCELLED"
    # -i asks once for the pending tasks of an array, as squeue shows them.
    array = cli.submit("-H", "-J", "wfilter", "-a", "1-3,5", "--wrap", "true")
    asked = cli("scancel", "-i", str(array), stdin="y\n")
    assert asked.stdout == f"Cancel job_id={array}_[1-3,5] name=wfilter partition={partition} [y/n]? "
    assert [cli.state(f"{array}_{t}") for t in (1, 2, 3, 5)] == ["CANCELLED"] * 4


def test_the_submit_directory_is_where_sbatch_ran_whatever_chdir_says(cli: Cli) -> None:
    """sbatch.c sets SLURM_SUBMIT_DIR from its own current directory; --chdir only moves the
    job. It was the --chdir directory here."""
    (cli.cwd / "elsewhere").mkdir(exist_ok=True)
    job = cli.submit("-D", "elsewhere", "-o", "dirs.out", "--wrap", "echo $SLURM_SUBMIT_DIR; pwd")
    assert cli.wait_state(job, TERMINAL) == "COMPLETED"
    assert (cli.cwd / "elsewhere" / "dirs.out").read_text().splitlines() == [str(cli.cwd), str(cli.cwd / "elsewhere")]


def test_scontrol_shows_the_script_a_job_was_submitted_from(cli: Cli) -> None:
    """Command= is the script's full path, as sbatch resolves it; (null) for --wrap and for a
    script read from standard input."""
    (cli.cwd / "scripts").mkdir(exist_ok=True)
    (cli.cwd / "scripts" / "run.sh").write_text("#!/bin/bash\ntrue\n")
    from_file = cli.submit("-H", "scripts/run.sh")
    wrapped = cli.submit("-H", "--wrap", "true")
    piped = cli.submit("-H", stdin="#!/bin/bash\ntrue\n")
    try:
        for job, command in ((from_file, str(cli.cwd / "scripts" / "run.sh")), (wrapped, "(null)"), (piped, "(null)")):
            shown = cli("scontrol", "show", "job", str(job)).stdout
            assert f"\n   Command={command}\n" in shown, shown
        record = httpx.get(f"{cli.server.url}/jobs/{from_file}", headers={"Authorization": f"Bearer {cli.server.token}"})
        assert record.json()["command"] == str(cli.cwd / "scripts" / "run.sh")
    finally:
        cli("scancel", str(from_file), str(wrapped), str(piped))


def test_a_job_list_naming_no_job_is_refused(cli: Cli) -> None:
    """`scontrol hold ''`, `scontrol update JobId= ...`, `conductor wait ''`: an empty list
    used to select every job of the cluster."""
    held = cli.submit("-H", "-J", "emptylist", "--wrap", "true")
    for args in (
        ["scontrol", "release", ""],
        ["scontrol", "release", " , "],
        ["scontrol", "update", "JobId=", "TimeLimit=1"],
        ["scontrol", "requeue", ""],
        ["scancel", ""],
        ["wait", ""],
    ):
        refused = cli(*args, check=False)
        assert refused.returncode != 0 and "Invalid job id specified" in refused.stderr, (args, refused.stderr)
    # A view takes it as Slurm's does: no job selected, the header alone.
    assert cli("squeue", "-j", ",", "-o", "%i").stdout == "JOBID\n"
    assert cli("sacct", "-j", "", "-X", "-o", "JobID").stdout.splitlines()[0].split() == ["JobID"]
    assert len(cli("sacct", "-j", "", "-X", "-o", "JobID").stdout.splitlines()) == 2  # header and its rule
    job = cli("scontrol", "show", "job", str(held)).stdout
    assert "JobState=PENDING Reason=JobHeldUser" in job and "TimeLimit=UNLIMITED" in job, job
    cli("scancel", str(held))


def test_scancel_by_name_user_and_state(cli: Cli) -> None:
    victims = [cli.submit("-H", "-J", "victim", "--wrap", "true") for _ in range(2)]
    survivor = cli.submit("-H", "-J", "survivor", "--wrap", "true")
    runner = cli.submit("-J", "runner", "--wrap", "sleep 30")
    cli.wait_state(runner, "RUNNING")
    cli("scancel", "-n", "victim")
    assert [cli.state(v) for v in victims] == ["CANCELLED", "CANCELLED"]
    assert cli.state(survivor) == "PENDING"
    cli("scancel", "-u", USER, "-t", "PENDING")  # pending only: the running job stays
    assert cli.state(survivor) == "CANCELLED"
    assert cli.state(runner) == "RUNNING"
    cli("scancel", "--me")
    assert cli.wait_state(runner, TERMINAL) == "CANCELLED"
    nothing = cli("scancel", check=False)
    assert nothing.returncode == 1 and nothing.stderr == "scancel: error: No job identification provided\n"


TASK = """import os, signal, sys, time
name = sys.argv[1]
count = [0]
def got(signum, frame):
    count[0] += 1
    print(f"task-got-{name} {count[0]}", flush=True)
    if name == "USR2":  # a checkpoint before the time limit, as submitit's handler makes
        print("task-checkpointed", flush=True)
        sys.exit(0)
signal.signal(getattr(signal, "SIG" + name), got)
print("task-ready", flush=True)
for _ in range(600):
    if os.path.exists("stop"):
        break
    time.sleep(0.05)
print("task-done", flush=True)
"""


def test_scancel_signal_goes_to_the_steps_and_full_to_every_process_once(cli: Cli) -> None:
    """scancel --signal without --batch or --full reaches the job's steps alone (scancel(1):
    "signals other than SIGKILL are not sent to the batch step"): srun's tasks, once each;
    --full every process, the tasks once (not again through their srun); --batch the shell."""
    (cli.cwd / "task.py").write_text(TASK)
    script = (
        "#!/bin/bash\n"
        "trap 'echo batch-got-usr1' USR1\n"
        f"{sys.executable} -m conductor srun {sys.executable} task.py USR1\n"
        "echo batch-done\n"
    )
    job_id = cli.submit("-o", "sig.out", stdin=script)
    out = cli.cwd / "sig.out"
    cli.wait_text(out, "task-ready")
    cli("scancel", "--signal=USR1", str(job_id))
    cli.wait_text(out, "task-got-USR1 1")
    time.sleep(0.5)  # a second one (the batch shell's trap, a forwarded copy) would be in by now
    cli("scancel", "-f", "--signal=USR1", str(job_id))
    cli.wait_text(out, "task-got-USR1 2")
    assert cli.state(job_id) == "RUNNING"  # a signal is not a cancel
    time.sleep(0.5)
    (cli.cwd / "stop").touch()
    assert cli.wait_state(job_id, TERMINAL) == "COMPLETED"
    # The shell runs its trap once srun, its foreground command, has ended: one USR1, from -f.
    assert out.read_text().splitlines() == [
        "task-ready", "task-got-USR1 1", "task-got-USR1 2", "task-done", "batch-got-usr1", "batch-done",
    ]
    bad = cli("scancel", "--signal=NOPE", "1", check=False)
    assert bad.returncode == 1 and bad.stderr.startswith("scancel: error: ")


def test_the_time_limit_warning_without_b_goes_to_the_steps(cli: Cli) -> None:
    """sbatch --signal=USR2@T (no B:), as submitit asks for: the step's handler checkpoints,
    and the batch shell, which has no trap, lives on (it was killed by the signal, and the job
    with it)."""
    (cli.cwd / "task.py").write_text(TASK)
    script = (
        "#!/bin/bash\n"
        "#SBATCH -t 1 --signal=USR2@57\n"
        f"{sys.executable} -m conductor srun {sys.executable} task.py USR2\n"
        "echo batch-done\n"
    )
    job_id = cli.submit("-o", "warned.out", stdin=script)
    assert cli.wait_state(job_id, TERMINAL, timeout=45) == "COMPLETED"
    assert (cli.cwd / "warned.out").read_text().splitlines() == [
        "task-ready", "task-got-USR2 1", "task-checkpointed", "batch-done",
    ]


# -------------------------------------------------------------------------------------- sinfo
def test_sinfo_formats_and_stats(cli: Cli) -> None:
    assert cli("sinfo").stdout == (
        f"PARTITION AVAIL  TIMELIMIT  NODES  STATE NODELIST\ndebug*       up   infinite      1   idle {NODE}\n"
    )
    runner = cli.submit("--wrap", "sleep 30")
    cli.wait_state(runner, "RUNNING")
    assert cli("sinfo", "-h").stdout == f"debug*       up   infinite      1    mix {NODE}\n"
    assert cli("sinfo", "-N").stdout == (
        f"NODELIST   NODES PARTITION STATE \n{NODE:<9}      1    debug* mix   \n"
    )
    assert cli("sinfo", "-h", "-o", "%n %c %C %t %P").stdout == f"{NODE} 4 1/3/0/4 mix debug*\n"
    assert cli("sinfo", "-h", "-p", "nosuch").stdout == ""
    # SINFO_FORMAT stands for -o, after -N; SINFO_PARTITION for -p (sinfo's opts.c); empty is unset.
    cli.env.update(SINFO_FORMAT="%P %c", SINFO_PARTITION="")
    assert cli("sinfo", "-h").stdout == "debug* 4\n"
    assert cli("sinfo", "-h", "-o", "%c").stdout == "4\n"
    assert cli("sinfo", "-h", "-N").stdout == f"{NODE:<9}      1    debug* mix   \n"
    cli.env["SINFO_PARTITION"] = "nosuch"
    assert cli("sinfo", "-h").stdout == ""
    cli.env.update(SINFO_FORMAT="%99999999999c", SINFO_PARTITION="")
    wide = cli("sinfo", check=False)
    assert wide.returncode == 1 and "SINFO_FORMAT" in wide.stderr and "Traceback" not in wide.stderr
    stats = cli("stats", "--json").stdout
    assert '"running_jobs": 1' in stats and '"total_cpus": 4' in stats
    assert "Total CPUs" in cli("stats").stdout


# -------------------------------------------------------------------------------------- sacct
def test_sacct_fields_steps_and_array_ids(cli: Cli) -> None:
    failed = cli.submit("-J", "acct", "-t", "2:00", "-c", "2", "--mem=100M", "-o", "acct.out", "--wrap", "exit 3")
    array = cli.submit("-a", "1-3", "-J", "arr", "--wrap", "true")
    assert cli.wait_state(failed, TERMINAL) == "FAILED"
    for task in (1, 2, 3):
        cli.wait_state(f"{array}_{task}", TERMINAL)

    fields = "JobID,JobIDRaw,JobName,Partition,AllocCPUS,State,ExitCode,Timelimit,ReqMem,NodeList,User,WorkDir"
    rows = cli("sacct", "-j", str(failed), "-P", "-n", "-o", fields).stdout.splitlines()
    assert rows[0] == f"{failed}|{failed}|acct|debug|2|FAILED|3:0|00:02:00|100M|{NODE}|{USER}|{cli.cwd}"
    assert rows[1].startswith(f"{failed}.batch|{failed}.batch|batch||2|FAILED|3:0|")  # its batch step
    assert len(rows) == 2
    times = cli("sacct", "-j", str(failed), "-X", "-P", "-n", "-o", "Submit,Start,End,Elapsed").stdout.strip()
    assert re.fullmatch(rf"{STAMP}\|{STAMP}\|{STAMP}\|\d\d:\d\d:\d\d", times), times
    # -p ends each line with the delimiter; the header names the fields as given.
    assert cli("sacct", "-j", str(failed), "-X", "-p", "-o", "jobid,state").stdout == (
        f"JobID|State|\n{failed}|FAILED|\n"
    )
    # The aligned default layout.
    table = cli("sacct", "-j", str(failed), "-X").stdout.splitlines()
    assert table[:2] == [
        "JobID           JobName  Partition    Account  AllocCPUS      State ExitCode ",
        "------------ ---------- ---------- ---------- ---------- ---------- -------- ",
    ]
    assert table[2] == f"{failed:<12}       acct      debug                     2     FAILED      3:0 "

    # Array tasks are N_T, their own ids in JobIDRaw; a task is selected by N_T.
    tasks = cli("sacct", "-j", str(array), "-X", "-P", "-n", "-o", "JobID,JobIDRaw,JobName,State").stdout.splitlines()
    assert [t.split("|")[0] for t in tasks] == [f"{array}_1", f"{array}_2", f"{array}_3"]
    assert [t.split("|")[2:] for t in tasks] == [["arr", "COMPLETED"]] * 3
    assert len({t.split("|")[1] for t in tasks}) == 3
    one = cli("sacct", "-j", f"{array}_2", "-X", "-P", "-n", "-o", "JobID,State").stdout
    assert one == f"{array}_2|COMPLETED\n"
    # -s selects jobs in that state within the -S/-E window.
    window = ("-S", "now-1hours", "-E", "now")
    listed = cli("sacct", "-a", "-X", "-n", "-P", "-s", "F", *window, "-o", "JobID").stdout.split()
    assert str(failed) in listed and f"{array}_1" not in listed
    # As reference.sh recorded from Slurm: the ended job through squeue -t all, and the
    # default output names of array tasks (slurm-%A_%a.out).
    line = cli("squeue", "-h", "-t", "all", "-j", str(failed), "-o", "%i %T %r exit=%e").stdout
    assert re.fullmatch(rf"{failed} FAILED NonZeroExitCode exit={STAMP}\n", line), line
    assert sorted(p.name for p in cli.cwd.glob(f"slurm-{array}_*.out")) == [
        f"slurm-{array}_{t}.out" for t in (1, 2, 3)
    ]
    bad = cli("sacct", "-o", "NoSuchField", check=False)
    assert bad.returncode == 1 and 'Invalid field requested: "NoSuchField"' in bad.stderr


# ----------------------------------------------------------------------------------- scontrol
def test_scontrol_show_job_and_node(cli: Cli) -> None:
    job_id = cli.submit("-H", "-J", "shown", "-t", "5", "--wrap", "true")
    shown = cli("scontrol", "show", "job", str(job_id)).stdout
    assert shown.startswith(f"JobId={job_id} JobName=shown\n")
    assert "   JobState=PENDING Reason=JobHeldUser Dependency=(null)\n" in shown
    assert "   RunTime=00:00:00 TimeLimit=00:05:00 TimeMin=N/A\n" in shown
    assert f"   WorkDir={cli.cwd}\n" in shown
    assert shown.endswith("\n\n")
    one = cli("scontrol", "-o", "show", "job", str(job_id)).stdout
    assert one.count("\n") == 1 and one.startswith(f"JobId={job_id} JobName=shown UserId={USER}(")
    unknown = cli("scontrol", "show", "job", "999999", check=False)
    assert unknown.returncode == 1 and "Invalid job id specified" in unknown.stderr

    node = cli("scontrol", "show", "node", NODE).stdout
    assert node.startswith(f"NodeName={NODE} ")
    assert "CPUAlloc=0 CPUEfctv=4 CPUTot=4" in node and "Partitions=debug" in node
    assert cli("scontrol", "show", "node", "nosuch", check=False).returncode == 1
    assert "PartitionName=debug" in cli("scontrol", "show", "partition").stdout
    assert cli("scontrol", "show", "hostnames", "cn[01-03]").stdout == "cn01\ncn02\ncn03\n"


def test_scontrol_show_config_gives_what_tools_read(cli: Cli) -> None:
    # Snakemake reads MinJobAge there (it was "invalid entity:config", and it gave up its
    # squeue status command for it); others read ClusterName, MaxArraySize, KillWait.
    shown = cli("scontrol", "show", "config").stdout.splitlines()
    assert re.fullmatch(r"Configuration data as of \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", shown[0])
    pairs = dict(line.split(" = ", 1) for line in shown[1:])
    assert all(len(line.split(" = ", 1)[0]) == 23 for line in shown[1:])  # keys padded as Slurm's
    assert {key: value for key, value in pairs.items() if key.strip() in
            ("ClusterName", "MinJobAge", "MaxArraySize", "PriorityType")} == {
        "ClusterName            ": "conductor",
        "MaxArraySize           ": "4000001",  # the largest task index + 1, as Slurm's
        "MinJobAge              ": "300 sec",
        "PriorityType           ": "priority/basic",
    }
    assert pairs["KillWait               "] == "2 sec"  # the server's own (running_up's), not the default 30
    aged = cli("scontrol", "show", "conf", env={"CONDUCTOR_MIN_JOB_AGE": "60"}).stdout
    assert "MinJobAge               = 60 sec\n" in aged


def test_scontrol_hold_release_and_update(cli: Cli) -> None:
    blocker = cli.submit("-c", "4", "--wrap", "sleep 30")
    cli.wait_state(blocker, "RUNNING")
    waiting = cli.submit("-t", "5", "-o", "waiting.out", "--wrap", "echo done")
    cli("scontrol", "hold", str(waiting))
    reason = cli("squeue", "-h", "-j", str(waiting), "-o", "%r").stdout.strip()
    assert reason.startswith("JobHeld"), reason
    cli("scontrol", "release", str(waiting))
    assert not cli("squeue", "-h", "-j", str(waiting), "-o", "%r").stdout.startswith("JobHeld")

    cli("scontrol", "update", f"JobId={waiting}", "TimeLimit=10:00", "Priority=5")
    shown = cli("scontrol", "show", "job", str(waiting)).stdout
    assert "TimeLimit=00:10:00" in shown and "   Priority=5 " in shown
    cli("scontrol", "update", f"jobid={waiting}", "JobName=renamed")
    assert cli("squeue", "-h", "-j", str(waiting), "-o", "%j %l %Q").stdout == "renamed 10:00 5\n"
    # An increment or decrement of the current limit, as scontrol's update_job.c reads it.
    cli("scontrol", "update", f"JobId={waiting}", "TimeLimit+=5")
    cli("scontrol", "update", f"JobId={waiting}", "TimeLimit=-1:30")
    assert cli("squeue", "-h", "-j", str(waiting), "-o", "%l").stdout == "13:30\n"
    for change, said in (("TimeLimit-=1:00:00", "TimeLimit decrement leaves no time"),
                         ("TimeLimit+=+5", "Invalid syntax, variations of +=- are not accepted."),
                         ("TimeLimit=+soon", "Invalid TimeLimit value")):
        wrong = cli("scontrol", "update", f"JobId={waiting}", change, check=False)
        assert wrong.returncode == 1 and said in wrong.stderr, (change, wrong.stderr)
    assert cli("squeue", "-h", "-j", str(waiting), "-o", "%l").stdout == "13:30\n"
    unlimited = cli.submit("-H", "-t", "UNLIMITED", "--wrap", "true")
    wrong = cli("scontrol", "update", f"JobId={unlimited}", "TimeLimit+=5", check=False)
    assert wrong.returncode == 1 and "its TimeLimit is UNLIMITED" in wrong.stderr
    cli("scancel", str(unlimited))
    refused = cli("scontrol", "update", f"JobId={waiting}", "Frobs=2", check=False)
    assert refused.returncode == 1 and "Update of this parameter is not supported" in refused.stderr
    # A JobId anywhere makes the line a job's update, a partition named in it included.
    moved = cli("scontrol", "update", "Partition=nope", f"JobId={waiting}", check=False)
    assert moved.returncode == 1 and "Update of this parameter is not supported: Partition=nope" in moved.stderr
    nothing = cli("scontrol", "update", "TimeLimit=5", check=False)
    assert nothing.returncode == 1 and "No valid entity in update command" in nothing.stderr
    unknown = cli("scontrol", "hold", "999999", check=False)
    assert unknown.returncode == 1 and "Invalid job id specified" in unknown.stderr

    cli("scancel", str(blocker))
    assert cli.wait_state(waiting, TERMINAL) == "COMPLETED"
    assert (cli.cwd / "waiting.out").read_text() == "done\n"
    ended = cli("scontrol", "update", f"JobId={waiting}", "TimeLimit=20", check=False)
    assert ended.returncode == 1 and ended.stderr.startswith(f"Error updating job {waiting}: ")


def test_scontrol_requeue_runs_the_job_again(cli: Cli) -> None:
    job_id = cli.submit("-o", "requeue.out", "--open-mode=append", "--wrap", "echo run-$SLURM_RESTART_COUNT")
    assert cli.wait_state(job_id, TERMINAL) == "COMPLETED"
    cli("scontrol", "requeue", str(job_id))
    cli.wait_text(cli.cwd / "requeue.out", "run-1")
    assert cli.wait_state(job_id, TERMINAL) == "COMPLETED"
    assert "Restarts=1 " in cli("scontrol", "show", "job", str(job_id)).stdout

    sleeper = cli.submit("--wrap", "sleep 30")
    cli.wait_state(sleeper, "RUNNING")
    cli("scontrol", "requeuehold", str(sleeper))
    cli.wait_state(sleeper, "PENDING")
    assert cli("squeue", "-h", "-j", str(sleeper), "-o", "%r").stdout.strip().startswith("JobHeld")


def test_sbatch_passes_exported_functions_and_leaves_out_what_is_not_text(cli: Cli) -> None:
    # Lmod and Environment Modules export `module` as a bash function: the job has it, as in
    # Slurm. A variable the API cannot take (bytes that are not UTF-8) is left out with a
    # warning, not a refusal of every submission.
    cli.env["BASH_FUNC_greet%%"] = "() {  echo hi-from-greet\n}"
    cli.env["LATIN"] = "caf\udce9"  # the byte 0xe9, as the process environment holds it
    script = "#!/bin/bash\ngreet\necho latin=${LATIN-unset}\n"
    done = cli("sbatch", "--parsable", "-o", "functions.out", stdin=script)
    assert "environment variable LATIN not passed to the job: not UTF-8 text" in done.stderr
    job_id = int(done.stdout)
    assert cli.wait_state(job_id, TERMINAL) == "COMPLETED"
    assert (cli.cwd / "functions.out").read_text() == "hi-from-greet\nlatin=unset\n"


def test_filters_of_bytes_that_are_not_text_match_nothing_or_are_refused(cli: Cli) -> None:
    cli.env["SQUEUE_PARTITION"] = "\udcff"  # from the environment: sent as it is, it matches nothing
    done = cli("squeue", "-h")
    assert done.stdout == "" and done.stderr == ""
    del cli.env["SQUEUE_PARTITION"]
    for argv in (["squeue", "-n", "x\udcff"], ["sacct", "-u", "\udcff"], ["sacctmgr", "-i", "delete", "account", "a\udcff"]):
        refused = cli(*argv, check=False)
        assert refused.returncode == 1 and "Traceback" not in refused.stderr, refused.stderr
        assert f"{argv[0]}: error: argument '" in refused.stderr and "\\xff' is not UTF-8 text" in refused.stderr


@pytest.fixture
def slow_kill(tmp_path: Path) -> Iterator[Cli]:
    """A Cli on a server of its own whose kill-wait (60 s) outlasts a test's looks at a job
    between its SIGTERM and its SIGKILL."""
    process = ConductorProcess(tmp_path / "slow", ["up", "--cpus", "2"], env={"CONDUCTOR_KILL_WAIT": "60"},
                               port=free_port())
    process.start()
    work = tmp_path / "slow-work"
    work.mkdir()
    try:
        yield Cli(process, work)
    finally:
        process.kill()


def test_a_cancelled_job_is_completing_until_its_processes_are_gone(slow_kill: Cli) -> None:
    # As slurmctld: from the cancel on, squeue and scontrol say COMPLETING (CG) and sacct
    # CANCELLED, the run time stopped at the cancel; it was RUNNING for the whole kill-wait.
    cli = slow_kill
    script = "#!/bin/bash\ntrap '' TERM\necho $$ > stubborn.pid\nwhile true; do sleep 0.2; done\n"
    job_id = cli.submit("-o", "/dev/null", stdin=script)
    cli.wait_state(job_id, "RUNNING")
    pid_file = cli.cwd / "stubborn.pid"
    deadline = time.monotonic() + 30
    while not pid_file.exists() or not pid_file.read_text().strip():
        assert time.monotonic() < deadline, "the job never started its loop"
        time.sleep(0.05)
    pid = int(pid_file.read_text())
    try:
        cli("scancel", str(job_id))
        deadline = time.monotonic() + 30
        while (shown := cli("squeue", "-h", "-j", str(job_id), "-o", "%t %T").stdout) != "CG COMPLETING\n":
            assert time.monotonic() < deadline, shown
            time.sleep(0.1)
        assert str(job_id) in cli("squeue", "-h", "-t", "CG", "-o", "%i").stdout.split()
        assert str(job_id) not in cli("squeue", "-h", "-t", "R", "-o", "%i").stdout.split()
        assert "JobState=COMPLETING " in cli("scontrol", "show", "job", str(job_id)).stdout
        # squeue --json (slurmrestd's records) agrees: the end state, with the COMPLETING flag.
        [record] = json.loads(cli("squeue", "--json", "-j", str(job_id)).stdout)["jobs"]
        assert record["job_state"] == ["CANCELLED", "COMPLETING"] and record["end_time"]["number"] > 0
        run_time = cli("squeue", "-h", "-j", str(job_id), "-o", "%M").stdout
        time.sleep(1.5)
        assert cli("squeue", "-h", "-j", str(job_id), "-o", "%M").stdout == run_time  # stopped at the cancel
        lines = cli("sacct", "-j", str(job_id), "-n", "-P", "-o", "JobID,State,ExitCode,End").stdout.splitlines()
        job_line, step_line = (line.split("|") for line in lines[:2])
        assert job_line[:3] == [str(job_id), job_line[1], "0:0"] and job_line[1].startswith("CANCELLED by ")
        assert step_line[:4] == [f"{job_id}.batch", "RUNNING", "0:0", "Unknown"]
        cancelled_at = job_line[3]
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, 9)  # as the kill-wait's end would
    deadline = time.monotonic() + 30
    while (shown := cli("squeue", "-h", "-j", str(job_id), "-t", "all", "-o", "%T").stdout) != "CANCELLED\n":
        assert time.monotonic() < deadline, shown
        time.sleep(0.1)
    lines = cli("sacct", "-j", str(job_id), "-n", "-P", "-o", "JobID,State,ExitCode,End").stdout.splitlines()
    assert lines[0].split("|")[2:] == ["0:0", cancelled_at]
    assert lines[1].split("|")[:3] == [f"{job_id}.batch", "CANCELLED", "0:9"]


# --------------------------------------------------------------------------------------- srun
def test_srun_inside_a_job_runs_ntasks_with_ranks(cli: Cli) -> None:
    shims = cli.cwd / "bin"
    cli("slurm-shims", str(shims))
    cli.env["PATH"] = f"{shims}:{cli.env['PATH']}"
    script = (
        "#!/bin/bash\n#SBATCH -n 3\n"
        "srun -l bash -c 'echo rank $SLURM_PROCID of $SLURM_NTASKS'\n"
        "srun bash -c 'echo ids $SLURM_PROCID $SLURM_LOCALID $SLURM_NODEID $SLURMD_NODENAME'\n"
        "srun -n 2 -o 'task-%t.out' bash -c 'echo $SLURM_PROCID'\n"
        "srun --ntasks=1 false; echo srun-rc=$?\n"
    )
    job_id = cli.submit("-o", "srun.out", stdin=script)
    assert cli.wait_state(job_id, TERMINAL) == "COMPLETED"
    out = (cli.cwd / "srun.out").read_text().splitlines()
    assert sorted(line for line in out if "rank" in line) == ["0: rank 0 of 3", "1: rank 1 of 3", "2: rank 2 of 3"]
    assert sorted(line for line in out if line.startswith("ids")) == [f"ids {i} {i} 0 {NODE}" for i in range(3)]
    assert "srun-rc=1" in out
    assert (cli.cwd / "task-0.out").read_text() == "0\n"
    assert (cli.cwd / "task-1.out").read_text() == "1\n"
    assert not (cli.cwd / "task-2.out").exists()
    outside = cli("srun", "true", check=False)
    assert outside.returncode == 1 and "inside a batch job" in outside.stderr


# -------------------------------------------------------------------------------- slurm-shims
def test_slurm_shims_run_the_commands_from_path(cli: Cli) -> None:
    shims = cli.cwd / "shims"
    written = cli("slurm-shims", str(shims)).stdout.split()
    names = ["sbatch", "squeue", "scancel", "sinfo", "sacct", "scontrol", "srun", "seff", "sprio", "sshare", "sacctmgr"]
    assert written == [str(shims / n) for n in names]
    assert all(os.access(shims / n, os.X_OK) for n in names)
    env = dict(cli.env, PATH=f"{shims}:/usr/bin:/bin")

    def shell(command: str) -> str:
        return subprocess.run(
            ["sh", "-c", command], env=env, cwd=cli.cwd, capture_output=True, text=True, check=True
        ).stdout

    job_id = int(shell("sbatch --parsable -H --wrap true"))
    assert shell(f"squeue -h -j {job_id} -o '%i %t'") == f"{job_id} PD\n"
    shell(f"scancel {job_id}")
    assert shell(f"sacct -j {job_id} -X -n -P -o State") == f"CANCELLED by {os.getuid()}\n"
    assert shell("sinfo -h -o %P") == "debug*\n"
    assert shell(f"seff {job_id}").startswith(f"Job ID: {job_id}\n")


def test_connection_refused_names_the_url(cli: Cli) -> None:
    cli.env["CONDUCTOR_URL"] = "http://127.0.0.1:9"
    for command in ("sbatch", "squeue", "sacct"):
        args = [command, "--wrap", "true"] if command == "sbatch" else [command]
        result = cli(*args, check=False)
        assert result.returncode == 1
        assert "http://127.0.0.1:9" in result.stderr
        *retries, last = result.stderr.splitlines()
        assert last.startswith(f"{command}: error: cannot connect to the conductor API at http://127.0.0.1:9")
        # sbatch tries again, with the same Idempotency-Key, before it gives up; the others do not.
        assert len(retries) == (3 if command == "sbatch" else 0), result.stderr
        assert all(r.startswith("sbatch: no answer from http://127.0.0.1:9 (cannot connect") for r in retries)


# --------------------------------------------------------------------- --nodelist, --exclude
def test_sbatch_nodelist_and_exclude_are_held_to_and_shown(cli: Cli) -> None:
    job_id = cli.submit("-w", NODE, "--wrap", "true")
    assert cli.wait_state(job_id, TERMINAL) == "COMPLETED"
    assert f"ReqNodeList={NODE} ExcNodeList=(null)" in cli("scontrol", "show", "job", str(job_id)).stdout
    # As slurmctld: a name no node has, and a list that leaves no node, are refused.
    unknown = cli("sbatch", "-w", "cn99", "--wrap", "true", check=False)
    assert unknown.returncode != 0 and "Invalid node name specified: 'cn99'" in unknown.stderr, unknown.stderr
    nothing = cli("sbatch", "-x", NODE, "--wrap", "true", check=False)
    assert nothing.returncode != 0 and "every node of partition" in nothing.stderr, nothing.stderr
    # Its node drained: it waits for that node, and squeue names it.
    cli("scontrol", "update", f"NodeName={NODE}", "State=DRAIN", "Reason=test")
    try:
        waiting = cli.submit("-w", NODE, "--wrap", "true")
        deadline = time.monotonic() + 30
        while (line := cli("squeue", "-h", "-j", str(waiting), "-o", "%i|%n|%x|%R").stdout.strip()).endswith("(None)"):
            assert time.monotonic() < deadline, line
            time.sleep(0.1)
        assert line == f"{waiting}|{NODE}||(ReqNodeNotAvail, UnavailableNodes:{NODE})"
    finally:
        cli("scontrol", "update", f"NodeName={NODE}", "State=RESUME")
    assert cli.wait_state(waiting, TERMINAL) == "COMPLETED"
