"""Real Unix users and servers they can reach, for the security tests (a plugin of tests/conftest.py).

The `unix_users` fixture creates two throw-away users (and a group) with useradd for the run and
removes them at the end. That needs root, as CI has; without root the tests that use it fail under
CI=true and are skipped, saying why, elsewhere.
"""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from support import ConductorProcess, clean_env

StartConductor = Callable[..., ConductorProcess]


@dataclass(frozen=True)
class User:
    name: str
    uid: int
    gid: int
    home: Path


@dataclass(frozen=True)
class UnixUsers:
    base: Path  # 0711, where servers' homes go: users must reach their scripts
    a: User
    b: User
    group: str  # a supplementary group of `a`
    group_gid: int


def run_root(*argv: str) -> None:
    subprocess.run(list(argv), check=True, capture_output=True)


def _kill_processes_of(uids: set[int]) -> None:
    """End leftover processes of the test users (their jobs), found by uid in /proc."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            owner = entry.stat().st_uid
        except OSError:
            continue
        if owner in uids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(int(entry.name), signal.SIGKILL)


@pytest.fixture(scope="session")
def unix_users() -> Iterator[UnixUsers]:
    if os.geteuid() != 0:
        message = "tests with real Unix users need root (useradd, and a worker that switches users)"
        if os.environ.get("CI", "").lower() in ("true", "1", "yes"):
            pytest.fail(message + ": CI must run them as root")
        pytest.skip(message)
    tag = uuid.uuid4().hex[:8]
    base = Path(tempfile.mkdtemp(prefix=f"cdt_{tag}_", dir="/tmp"))
    os.chmod(base, 0o711)
    group = f"cdt_{tag}_g"
    names = [f"cdt_{tag}_a", f"cdt_{tag}_b"]
    created: list[str] = []
    group_made = False
    try:
        run_root("groupadd", group)
        group_made = True
        for name in names:
            home = base / name
            extra = ["-G", group] if name == names[0] else []
            run_root("useradd", "--no-create-home", "--home-dir", str(home), "--shell", "/bin/bash", "--user-group", *extra, name)
            created.append(name)
            entry = pwd.getpwnam(name)
            home.mkdir()
            os.chown(home, entry.pw_uid, entry.pw_gid)
            os.chmod(home, 0o700)
        users = [pwd.getpwnam(n) for n in names]
        yield UnixUsers(
            base=base,
            a=User(names[0], users[0].pw_uid, users[0].pw_gid, base / names[0]),
            b=User(names[1], users[1].pw_uid, users[1].pw_gid, base / names[1]),
            group=group,
            group_gid=grp.getgrnam(group).gr_gid,
        )
    finally:
        uids = set()
        for name in created:
            with contextlib.suppress(KeyError):
                uids.add(pwd.getpwnam(name).pw_uid)
        _kill_processes_of(uids)
        for name in created:
            subprocess.run(["userdel", name], capture_output=True, check=False)
            # --user-group made a group of the same name; userdel removes it unless still used.
            subprocess.run(["groupdel", name], capture_output=True, check=False)
        if group_made:
            subprocess.run(["groupdel", group], capture_output=True, check=False)
        shutil.rmtree(base, ignore_errors=True)


def conductor_cli(home: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "conductor", *args],
        env=clean_env(CONDUCTOR_HOME=str(home)),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if check:
        assert result.returncode == 0, result.stderr
    return result


def make_token(home: Path, user: str, *, admin: bool = False) -> str:
    result = conductor_cli(home, "token", "create", "--user", user, *(["--admin"] if admin else []))
    return result.stdout.strip()


def user_server(start_conductor: StartConductor, users: UnixUsers, *args: str, env: dict[str, str] | None = None) -> ConductorProcess:
    """A server whose home the test users can traverse (pytest's tmp_path is root's alone)."""
    home = users.base / f"srv-{uuid.uuid4().hex[:8]}"
    return start_conductor("--cpus", "2", *args, home=home, env=env)


# ------------------------------------------------------------ conductor run by another user
@dataclass(frozen=True)
class PortablePython:
    """How any user runs `python -m conductor`: an interpreter and a PYTHONPATH they can all reach."""

    argv: list[str]
    pythonpath: str


def _reachable_by_others(path: Path) -> bool:
    """Whether users other than root can reach `path` (search on every directory above it, read on it)."""
    path = path.resolve()
    for parent in path.parents:
        if not parent.stat().st_mode & stat.S_IXOTH:
            return False
    return bool(path.stat().st_mode & stat.S_IROTH)


@pytest.fixture(scope="session")
def portable_python(tmp_path_factory: pytest.TempPathFactory) -> PortablePython:
    """An interpreter and packages that the test users (and a service user) can run conductor with.

    The suite's interpreter may live under root's home, where no other user can
    reach it. The machine's own python3 of the same version runs the same packages (the same
    ABI): that is what a service user is given, with the virtual environment's packages and our
    sources copied somewhere everyone can read when their own place is not.
    """
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    candidates = [Path(sys.executable), *(Path(p) for p in (shutil.which(version), f"/usr/bin/{version}") if p)]
    interpreter = next((c for c in candidates if c.exists() and _reachable_by_others(c)), None)
    if interpreter is None:
        pytest.fail(f"no {version} that other users can run (install Debian's {version} package)")
    import conductor

    sources = Path(conductor.__file__).parent.parent
    packages = Path(next(p for p in sys.path if p.endswith("site-packages") and Path(p, "fastapi").exists()))
    paths = []
    for tree in (sources, packages):
        if not _reachable_by_others(tree):
            copy = tmp_path_factory.mktemp("portable") / tree.name
            shutil.copytree(tree, copy, symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
            os.chmod(copy.parent, 0o755)
            for parent in copy.parents:
                if parent == Path(tempfile.gettempdir()):
                    break
                os.chmod(parent, os.stat(parent).st_mode | 0o755)
            tree = copy
        paths.append(str(tree))
    return PortablePython([str(interpreter), "-m", "conductor"], os.pathsep.join(paths))
