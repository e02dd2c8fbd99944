"""The job starter (worker/starter.c, built by worker/starter.py): where it is built and when it
is trusted, what it does with a request it cannot read, `conductor up` with and without it, and
what a restarted worker knows of a job it started. The launch protocol itself runs against it in
test_launcher.py (every test, both ways)."""

from __future__ import annotations

import errno
import os
import re
import shutil
import sqlite3
import stat
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from support import TERMINAL, Api, ConductorProcess, launchers
from test_launcher import Rig, _started, _wait

import conductor.worker
from conductor.worker.spool import read_status
from conductor.worker.starter import job_starter, untrusted_directory


def test_it_is_built_once_per_source_and_reused(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first = job_starter(cache)
    assert first is not None, "the job starter could not be built: is a C compiler installed?"
    built = os.stat(first)
    assert stat.S_IMODE(built.st_mode) == 0o755 and built.st_uid == os.geteuid()
    assert stat.S_IMODE(os.stat(cache).st_mode) == 0o700
    assert job_starter(cache) == first
    assert os.stat(first).st_ino == built.st_ino  # not built again
    assert [p.name for p in cache.iterdir()] == [Path(first).name]  # nothing left behind
    # Another version's starter goes once this one is built.
    older = cache / "job-starter-0123456789abcdef"
    os.rename(first, older)
    assert job_starter(cache) == first
    assert [p.name for p in cache.iterdir()] == [Path(first).name]


def test_a_starter_others_could_have_changed_is_replaced(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first = job_starter(cache)
    assert first is not None
    Path(first).write_bytes(b"#!/bin/sh\necho planted\n")
    os.chmod(first, 0o777)
    again = job_starter(cache)
    assert again == first
    assert stat.S_IMODE(os.stat(again).st_mode) == 0o755
    assert Path(again).read_bytes().startswith(b"\x7fELF")


def test_no_starter_where_others_may_write(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o777)
    assert "writable by others" in untrusted_directory(shared)
    assert job_starter(shared) is None
    assert list(shared.iterdir()) == []
    # Below a directory others may write to (not sticky), nothing is ours alone either.
    inner = shared / "mine"
    inner.mkdir(mode=0o700)
    assert "writable by others" in untrusted_directory(inner)
    assert job_starter(inner) is None
    # A sticky one (as /tmp) above ours is fine: no one may rename what is not theirs in it.
    os.chmod(shared, 0o1777)
    assert untrusted_directory(inner) == ""


def test_no_starter_without_a_compiler(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    assert job_starter(tmp_path / "cache") is None


def _run_starter(starter: str, tmp_path: Path, request: bytes, go: bool) -> tuple[int, str]:
    """The starter run by hand, as the launcher spawns it: (its exit code, its status file)."""
    status = tmp_path / "job.status"
    status_fd = os.open(status, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
    go_read, go_write = os.pipe()
    memfd = os.memfd_create("job-request")
    os.write(memfd, request)
    try:
        process = subprocess.Popen(
            [starter, str(status_fd), str(go_read), str(memfd)],
            env={},
            pass_fds=(status_fd, go_read, memfd),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
        )
        os.close(go_read)
        if go:
            os.write(status_fd, b"start %d 1 1 1\n" % process.pid)
            os.write(go_write, b"g")
        os.close(go_write)
        code = process.wait(10)
    finally:
        for fd in (status_fd, memfd):
            os.close(fd)
    return code, status.read_text()


def test_a_request_it_cannot_read_runs_nothing(built_job_starter: str, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    fields = [str(tmp_path / "job.status"), "", "", "", "", "", str(tmp_path), "/dev/null", "/dev/null", "/dev/null",
              "truncate"]
    touch = ["2", "/bin/touch", str(marker)]
    # Its go given: the failure goes to the status file, below the "start" line.
    for broken in ([*fields, "x", *touch[1:]], [*fields, "3", *touch[1:]], fields[:5], ["garbage"]):
        code, text = _run_starter(built_job_starter, tmp_path, "\0".join(broken).encode(), go=True)
        assert code == 1 and text.splitlines()[1] == "error bad launch request", (broken, text)
    # A whole request without its go (the launcher died first, no "start" line): nothing at all.
    code, text = _run_starter(built_job_starter, tmp_path, "\0".join([*fields, *touch]).encode(), go=False)
    assert (code, text) == (1, "")
    assert not marker.exists()
    # And with it, the job runs.
    code, text = _run_starter(built_job_starter, tmp_path, "\0".join([*fields, *touch]).encode(), go=True)
    assert code == 0 and marker.exists(), text


def test_the_launcher_forks_when_the_starter_may_not_run(built_job_starter: str, tmp_path: Path) -> None:
    loose = tmp_path / "loose-starter"
    shutil.copy(built_job_starter, loose)
    os.chmod(loose, 0o775)  # group-writable
    rig = Rig(tmp_path / "rig", starter=str(loose))
    try:
        started = _started(rig.launcher.launch([rig.request(1, "echo forked\n")]))
        assert started[1].pid
        _wait(lambda: rig.ended(1))
        assert rig.output(1) == "forked\n"
        assert read_status(rig.status_path(1)).exit == (0, 0)
    finally:
        rig.close()
    assert "forking instead" in (tmp_path / "rig" / "launcher.log").read_text()


def _launcher_command(home: Path) -> str:
    pids = launchers(home)
    assert len(pids) == 1, pids
    return Path(f"/proc/{pids[0]}/cmdline").read_bytes().replace(b"\0", b" ").decode()


@pytest.mark.parametrize("setting", ["auto", "python"])
def test_conductor_up_starts_jobs_either_way(
    start_conductor: Callable[..., ConductorProcess], tmp_path: Path, setting: str
) -> None:
    home = tmp_path / f"home-{setting}"
    server = start_conductor("--cpus", "2", home=home, env={"CONDUCTOR_JOB_STARTER": setting})
    api = Api(server.url, server.token)
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    script = '#!/bin/bash\necho "$SLURM_JOB_ID as $(id -un) in $PWD"\nexit 3\n'
    job_id = api.submit(script, current_working_directory=str(work))
    job = api.wait_state(job_id, TERMINAL)
    assert job["state"] == "FAILED" and job["exit_code"] == "3:0", job
    assert (work / f"slurm-{job_id}.out").read_text() == f"{job_id} as root in {work}\n"
    command = _launcher_command(home)
    assert ("--starter" in command) == (setting == "auto"), command
    # A job that cannot start fails either way, its command never run.
    missing = tmp_path / "no-such-dir"
    failed = api.wait_state(api.submit("#!/bin/bash\ntouch ran\n", current_working_directory=str(missing)), TERMINAL)
    # (it would run in /tmp, but its output file is named from the missing directory)
    assert failed["state"] == "FAILED" and "no-such-dir/slurm-" in (failed.get("error_msg") or ""), failed
    assert not missing.exists()


def test_a_running_job_whose_status_file_is_lost_is_never_run_again(
    start_conductor: Callable[..., ConductorProcess], tmp_path: Path
) -> None:
    """The worker records the pid of each job it started and still sees running (not of those
    it already saw end: their status files say it): a restarted worker that finds no status file
    of a job with a pid knows it ran, and does not start it again."""
    home = tmp_path / "home"
    server = start_conductor("--cpus", "2", home=home)
    api = Api(server.url, server.token)
    marker = tmp_path / "runs"
    long = api.submit(f"#!/bin/bash\necho run >> {marker}\nsleep 60\n", current_working_directory=str(tmp_path))
    short = api.submit("#!/bin/bash\ntrue\n", current_working_directory=str(tmp_path))
    api.wait_state(short, "COMPLETED")
    api.wait_state(long, "RUNNING")
    _wait(lambda: marker.exists())

    def recorded_pid() -> int | None:
        with sqlite3.connect(home / "conductor.db") as db:
            found = db.execute("SELECT pid FROM jobs WHERE id = ?", (long,)).fetchone()[0]
        return int(found) if found is not None else None

    _wait(lambda: recorded_pid() is not None)  # written once the launch's replies are read
    pid = recorded_pid()
    assert pid is not None and pid == read_status(home / "run" / f"job_{long}.status").pid, pid
    server.kill()
    os.kill(pid, 9)  # the job's process ends, and its status file is lost with it
    (home / "run" / f"job_{long}.status").unlink()
    server = start_conductor("--cpus", "2", home=home)
    api = Api(server.url, server.token)
    ended = api.wait_state(long, TERMINAL)
    assert ended["state"] == "NODE_FAIL", ended
    time.sleep(0.5)
    assert marker.read_text() == "run\n"


def test_it_words_errors_as_the_c_library(built_job_starter: str, tmp_path: Path) -> None:
    # It has no C library (starter.c says why), so its own table words the errors: as the C
    # library does, so that a job's messages read the same by fork and by the starter.
    source = (Path(conductor.worker.__file__).parent / "starter.c").read_text()
    table = re.findall(r'case (E[A-Z0-9]+): return "([^"]+)";', source)
    assert len(table) >= 30
    for name, text in table:
        assert os.strerror(getattr(errno, name)) == text, name
    # A working directory that is not there, with the output named from it: nothing runs.
    fields = [str(tmp_path / "job.status"), "", "", "", "", "", str(tmp_path / "gone"), "/dev/null",
              "out", "out", "truncate"]
    code, text = _run_starter(built_job_starter, tmp_path, "\0".join([*fields, "1", "/bin/true"]).encode(), go=True)
    assert code == 1
    assert text.splitlines()[1] == f"error working directory '{tmp_path / 'gone'}' is not usable: No such file or directory"
    # With its files named whole, the job runs in /tmp, as slurmstepd runs it, and says so.
    fields[8] = fields[9] = str(tmp_path / "out")
    code, text = _run_starter(built_job_starter, tmp_path, "\0".join([*fields, "1", "/bin/pwd"]).encode(), go=True)
    assert code == 0, text
    assert (tmp_path / "out").read_text() == (
        f"slurmstepd: error: couldn't chdir to `{tmp_path / 'gone'}': No such file or directory: going to /tmp instead\n"
        "/tmp\n"
    )
    fields[6] = str(tmp_path)
    code, text = _run_starter(built_job_starter, tmp_path, "\0".join([*fields, "1", "/no/such/command"]).encode(), go=True)
    assert code == 127 and len(text.splitlines()) == 1
    assert (tmp_path / "out").read_text() == "conductor: cannot execute /no/such/command: No such file or directory\n"


def test_it_is_a_small_static_program(built_job_starter: str) -> None:
    # No dynamic loader and no C library, whose start-up would cost every job more than the
    # rest of the starter (starter.c): an ELF file with no interpreter and no dynamic section,
    # with nothing of glibc in it (which names itself even stripped), a few pages long (a
    # static program with glibc is some 750 KB; pages are 64 KiB on some AArch64 systems).
    data = Path(built_job_starter).read_bytes()
    assert data[:4] == b"\x7fELF" and data[4] == 2  # 64-bit
    phoff, = struct.unpack_from("<Q", data, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    kinds = {struct.unpack_from("<I", data, phoff + i * phentsize)[0] for i in range(phnum)}
    assert not kinds & {2, 3}, kinds  # PT_DYNAMIC, PT_INTERP
    assert b"GLIBC" not in data and b"glibc" not in data
    assert len(data) < 256 * 1024, len(data)


# Python run before the code it prefixes: from then on statx fails with ENOSYS, for this
# process and what it runs (a seccomp filter), as on a kernel or under a container policy
# older than statx. Python and the C library do without it; the starter cannot.
REFUSE_STATX = """
import ctypes, errno, os, platform, struct, sys
from pathlib import Path
number = {"x86_64": 332, "aarch64": 291}[platform.machine()]
program = [(0x20, 0, 0, 0), (0x15, 0, 1, number), (0x06, 0, 0, 0x50000 | errno.ENOSYS), (0x06, 0, 0, 0x7FFF0000)]
code = ctypes.create_string_buffer(b"".join(struct.pack("HBBI", *op) for op in program))
class Program(ctypes.Structure):
    _fields_ = [("length", ctypes.c_ushort), ("filter", ctypes.c_void_p)]
libc = ctypes.CDLL(None, use_errno=True)
filter = Program(len(program), ctypes.addressof(code))
if libc.prctl(38, 1, 0, 0, 0) or libc.prctl(22, 2, ctypes.byref(filter), 0, 0):  # no new privileges; seccomp
    raise OSError(ctypes.get_errno(), "seccomp")
"""


def test_it_checks_that_what_it_needs_works_here(built_job_starter: str) -> None:
    done = subprocess.run([built_job_starter, "--check"], capture_output=True)
    assert (done.returncode, done.stderr) == (0, b"")
    run_without_statx = REFUSE_STATX + "os.execv(sys.argv[1], sys.argv[1:])"
    done = subprocess.run([sys.executable, "-c", run_without_statx, built_job_starter, "--check"], capture_output=True)
    assert (done.returncode, done.stderr) == (3, b"conductor-job-starter: statx: Function not implemented\n")


def test_no_starter_where_it_cannot_work(tmp_path: Path) -> None:
    # Every job it started would fail there: the launcher forks instead.
    cache = tmp_path / "cache"
    assert job_starter(cache) is not None
    find_it = REFUSE_STATX + "from conductor.worker.starter import job_starter\nprint(job_starter(Path(sys.argv[1])))"
    done = subprocess.run([sys.executable, "-c", find_it, str(cache)], capture_output=True, text=True)
    assert done.stdout == "None\n", done.stderr
    assert "does not work here (conductor-job-starter: statx: Function not implemented)" in done.stderr
