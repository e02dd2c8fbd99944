"""Fixtures shared by every test layer: real processes, real databases, no mocks."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from support import Api, ConductorProcess, PostgresCluster, free_port, postgres_cluster

# The `unix_users` fixture, for every test file that needs real Unix users.
pytest_plugins = ["users"]


@pytest.fixture
def conductor_home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    return home


def _root_jobs_default(command: str) -> dict[str, str]:
    """`server` and `worker` refuse jobs of root unless told; the suite runs as root in CI, so
    they are told. `up` decides by itself (it allows them when run by root, as the tests check)."""
    return {} if command == "up" else {"CONDUCTOR_ALLOW_ROOT_JOBS": "true"}


@pytest.fixture
def start_conductor(tmp_path: Path) -> Iterator[Callable[..., ConductorProcess]]:
    """Start `conductor up` (or another command) as a real subprocess on a free port."""
    started: list[ConductorProcess] = []

    def start(
        *args: str,
        home: Path | None = None,
        env: dict[str, str] | None = None,
        command: str = "up",
        wait: bool = True,
        port: int | None = None,
        pass_fds: tuple[int, ...] = (),
    ) -> ConductorProcess:
        process = ConductorProcess(
            home or tmp_path / "home",
            [command, *args],
            env={"CONDUCTOR_KILL_WAIT": "2", **_root_jobs_default(command), **(env or {})},
            port=port if port is not None else (free_port() if command in ("up", "server") else None),
            pass_fds=pass_fds,
        )
        started.append(process)
        return process.start(wait=wait)

    yield start
    for process in reversed(started):
        process.kill()


@pytest.fixture
def conductor_server(start_conductor: Callable[..., ConductorProcess]) -> ConductorProcess:
    """A running `conductor up --cpus 4` in a temporary home."""
    return start_conductor("--cpus", "4")


@pytest.fixture
def api(conductor_server: ConductorProcess) -> Iterator[Api]:
    client = Api(conductor_server.url)
    yield client
    client.close()


@pytest.fixture(scope="session")
def built_job_starter(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The C job starter, built as a worker builds it: without a C compiler this fails (the
    launcher's tests run with it and without it)."""
    from conductor.worker.starter import job_starter

    path = job_starter(tmp_path_factory.mktemp("starter"))
    assert path is not None, "the job starter could not be built: is a C compiler installed?"
    return path


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PostgresCluster]:
    """Our own PostgreSQL cluster for the whole run. Never skipped: a missing server fails."""
    with postgres_cluster() as cluster:
        yield cluster


@pytest.fixture
def pg_url(pg_cluster: PostgresCluster) -> str:
    """A fresh, empty database for one test."""
    return pg_cluster.create_database(f"t_{uuid.uuid4().hex[:12]}")


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Both backends, for the store's contract tests."""
    if request.param == "sqlite":
        return "sqlite:///" + str(tmp_path / "store.db")
    cluster: PostgresCluster = request.getfixturevalue("pg_cluster")
    return cluster.create_database(f"t_{uuid.uuid4().hex[:12]}")
