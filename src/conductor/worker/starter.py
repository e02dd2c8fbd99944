"""The job starter (starter.c): built with the machine's C compiler, once per version of its
source, into the user's cache directory.

The launcher spawns it for each job instead of forking itself (launcher.py, Launcher.spawn):
a fork of a Python process copies its page tables, and the child and then the launcher fault
in every page either writes, and the exec tears the copy down again. Measured on a 2-core machine
with 2,000 trivial jobs: 1.04 ms of CPU per job's process and 0.33 ms of the launcher's by
fork, 0.78 and 0.16 by the starter. Without a compiler, or without a directory only this user
can write to, there is no starter and the launcher forks as before: slower, the same jobs.

It runs as root until it drops privileges, so where it lies is checked as strictly as what it
is: a directory no other user can write to (nor any directory above it), a regular file owned
by this user or root that no other user can write. The launcher opens it once and checks the
open file again (it then runs that file, whatever later happens to the path). And where it is
built is not always where it can run: it is tried once (`--check`) before it is given to the
launcher.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

log = logging.getLogger("conductor.worker")

SOURCE = Path(__file__).with_name("starter.c")
COMPILERS = ("cc", "gcc", "clang")
# No C library (see starter.c), so no start-up of one: a static program of its own.
FLAGS = ("-O2", "-static", "-nostdlib", "-ffreestanding", "-fno-stack-protector", "-fno-pie", "-no-pie")


def default_cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or ""
    return (Path(base) if os.path.isabs(base) else Path.home() / ".cache") / "conductor"


def job_starter(cache: Path | None = None) -> str | None:
    """The path of the built job starter, building it when needed; None when it cannot be
    (the reason is logged): jobs then start by fork."""
    try:
        source = SOURCE.read_bytes()
    except OSError as exc:
        log.warning("no job starter (%s): jobs start by fork, more slowly", exc)
        return None
    compiler = next((path for name in COMPILERS if (path := shutil.which(name))), None)
    if compiler is None:
        log.info("no C compiler (%s) for the job starter: jobs start by fork, more slowly", ", ".join(COMPILERS))
        return None
    try:
        directory = cache if cache is not None else default_cache()
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    except (OSError, RuntimeError, KeyError) as exc:  # RuntimeError, KeyError: no home directory
        log.warning("no directory for the job starter (%s): jobs start by fork, more slowly", exc)
        return None
    why = untrusted_directory(directory)
    if why:
        log.warning("the job starter is not built in %s (%s): jobs start by fork, more slowly", directory, why)
        return None
    digest = hashlib.sha256(source + b"\0" + os.fsencode(compiler)).hexdigest()[:16]
    target = directory / f"job-starter-{digest}"
    if os.path.lexists(target):
        why = untrusted_file(target)
        if not why:
            return _usable(str(target))
        log.warning("replacing the job starter %s (%s)", target, why)
    built = _build(compiler, directory, target)
    return _usable(built) if built is not None else None


def _usable(path: str) -> str | None:
    """`path`, when the starter there can start jobs on this machine (`starter --check`);
    None otherwise, with why logged. It may not: a cache directory mounted noexec, or a kernel
    or seccomp policy without statx, would fail every job it started."""
    try:
        done = subprocess.run([path, "--check"], env={}, stdin=subprocess.DEVNULL, capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        why = str(exc)
    else:
        if done.returncode == 0:
            return path
        why = done.stderr.decode(errors="replace").strip()[-500:] or f"exit status {done.returncode}"
    log.warning("the job starter %s does not work here (%s): jobs start by fork, more slowly", path, why)
    return None


def _build(compiler: str, directory: Path, target: Path) -> str | None:
    fd, temporary = tempfile.mkstemp(prefix=".job-starter-", dir=directory)
    os.close(fd)
    try:
        try:
            done = subprocess.run(
                [compiler, *FLAGS, "-o", temporary, str(SOURCE)], capture_output=True, text=True, timeout=120
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            errors = str(exc)
        else:
            if done.returncode == 0:
                os.chmod(temporary, 0o755)
                os.replace(temporary, target)
                log.info("built the job starter %s", target)
                _forget_others(directory, target)
                return str(target)
            errors = done.stderr.strip()[-2000:]
        log.warning("could not build the job starter with %s (%s): jobs start by fork, more slowly", compiler, errors)
        return None
    finally:
        if os.path.lexists(temporary):
            os.unlink(temporary)


def _forget_others(directory: Path, kept: Path) -> None:
    """Remove the starters of other versions: a launcher running one holds it open (it runs
    that open file), and a worker of that version builds it again if it starts."""
    for other in directory.glob("job-starter-*"):
        if other != kept:
            with contextlib.suppress(OSError):
                other.unlink()


def _owner_ok(st: os.stat_result) -> bool:
    return st.st_uid in (0, os.geteuid())


def untrusted_directory(directory: Path) -> str:
    """Why another user could put a program in `directory`, or "" when none can."""
    path = Path(os.path.realpath(directory))
    for level in (path, *path.parents):
        try:
            st = os.lstat(level)
        except OSError as exc:
            return f"{level}: {exc.strerror}"
        if not _owner_ok(st):
            return f"{level} belongs to uid {st.st_uid}"
        writable = st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
        # Above our own directory a sticky one (as /tmp) is fine: no one else may rename in it
        # what they do not own. Our directory itself must be ours alone.
        if writable and (level == path or not st.st_mode & stat.S_ISVTX):
            return f"{level} is writable by others (mode {stat.S_IMODE(st.st_mode):o})"
    return ""


def untrusted_file(path: Path) -> str:
    """Why the program at `path` may not be run as root, or "" when it may."""
    try:
        st = os.lstat(path)
    except OSError as exc:
        return exc.strerror or str(exc)
    if not stat.S_ISREG(st.st_mode):
        return "not a regular file"
    if not _owner_ok(st):
        return f"it belongs to uid {st.st_uid}"
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return f"it is writable by others (mode {stat.S_IMODE(st.st_mode):o})"
    if not st.st_mode & stat.S_IXUSR:
        return "it is not executable"
    return ""
