"""Start-up of the long-running commands (`up`, `server`, `worker`): settings, the store, the
node, the HTTP server. Each command assembles the pieces it runs from these."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import gc
import logging
import os
import signal
import socket
import stat
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from conductor.commands.common import default_cpus
from conductor.errors import ConductorError, StoreUnavailable
from conductor.settings import Settings

if TYPE_CHECKING:
    from conductor.bus import Bus
    from conductor.config.live import LiveConfig
    from conductor.history.purger import Leadership, Purger
    from conductor.monitoring.monitor import Monitor
    from conductor.store import Store
    from conductor.worker import NodeConfig, Worker

log = logging.getLogger("conductor.runtime")

# argparse destination -> Settings field, for the flags the commands share.
_FLAG_FIELDS = {
    "host": "host",
    "port": "port",
    "home": "home",
    "node_name": "node_name",
    "cpus": "total_cpus",
    "memory": "memory_mb",
    "partition": "partition",
    "ssl_certfile": "ssl_certfile",
    "ssl_keyfile": "ssl_keyfile",
}


class StartupError(ConductorError):
    """A start-up problem to report in one line (exit status 1)."""


def load_settings(args: argparse.Namespace) -> Settings:
    """Settings from the environment, overridden by the flags that were given."""
    overrides = {
        field: getattr(args, dest)
        for dest, field in _FLAG_FIELDS.items()
        if getattr(args, dest, None) is not None
    }
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        raise StartupError(settings_error(exc)) from None
    from conductor.commands.common import check_tls

    try:
        check_tls(settings)  # before anything starts, not when the API is about to listen
    except ValueError as exc:
        raise StartupError(str(exc)) from None
    return settings


def settings_error(exc: ValidationError) -> str:
    # pydantic starts a validator's own message with "Value error, ": noise to a reader.
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc'])}: {e['msg'].removeprefix('Value error, ')}" for e in exc.errors()
    )


def open_store(settings: Settings, *, patient: bool = False, make_home: bool = True) -> Store:
    """The store, schema migrated. `patient`: wait for a database that is not up yet (a
    worker may well start before its PostgreSQL) instead of failing. `make_home`: create the
    home (a command that only reads and writes the database has none to make)."""
    from conductor.commands.common import database_error
    from conductor.store import Store, redact_url

    home = settings.resolved_home()
    if make_home:
        home.mkdir(parents=True, exist_ok=True)
        # 0711: jobs of other users reach their scripts (scripts/job_<id>.sh, their own, 0700)
        # by name; nobody else lists the home or reads the database and token (0600 below).
        os.chmod(home, 0o711)
        refuse_unowned(home)
    url = settings.resolved_database_url()
    log.info("database %s", redact_url(url))
    logging.getLogger("alembic").setLevel(logging.WARNING)  # one line per plugin otherwise
    try:
        from conductor.store import protect_sqlite_files

        files = protect_sqlite_files(url)
        if make_home:
            # Those in its own home (which is its user's, above); a database elsewhere may be a
            # service account's on purpose (an unprivileged server beside a root worker).
            for path in files:
                if path.resolve().parent == home.resolve():
                    refuse_unowned(path)
        store = Store(url)
        retry(store.migrate, "migrate the database", patient=patient)
    except StartupError as exc:
        raise StartupError(database_error(exc, url)) from None
    except Exception as exc:  # noqa: BLE001 - a driver's message may quote the URL with its password
        raise StartupError(f"cannot open the database {redact_url(url)}: {database_error(exc, url)}") from None
    return store


def refuse_unowned(path: Path) -> None:
    """Refuse a home or database file another user made: the one who made a home before the
    server (a `--home` under /tmp, a shared project directory) keeps owning it and what is made
    in it, and with the database in hand writes themselves an administrator's token, or changes
    the scripts jobs run, as root. A directory above the home that others may write to, without
    the sticky bit, lets them swap the home itself."""
    from conductor.worker.starter import untrusted_directory

    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    if info.st_uid != os.geteuid():
        raise StartupError(
            f"{path} belongs to uid {info.st_uid}, not to this process's user (uid {os.geteuid()}): "
            "whoever owns it could change what the server reads and runs; choose another home "
            "(--home, CONDUCTOR_HOME), or make it this user's"
        )
    if stat.S_ISDIR(info.st_mode):
        why = untrusted_directory(path)
        if why:
            raise StartupError(f"{path} is not safe for the server's home: {why}; choose another home")


def retry(action: Callable[[], Any], what: str, *, patient: bool, limit: float = 5.0) -> Any:
    """Run `action`; when `patient`, retry it with backoff while the database is unreachable."""
    from conductor.store import unavailable

    delay = 0.2
    while True:
        try:
            with unavailable():
                return action()
        except StoreUnavailable as exc:
            if not patient:
                raise StartupError(f"cannot {what}: {exc}") from None
            log.warning("cannot %s yet (%s: %s); retrying in %.1fs", what, exc.kind, exc, delay)
            time.sleep(delay)
            delay = min(delay * 2, limit)


def node_config(settings: Settings) -> NodeConfig:
    from conductor.worker import NodeConfig, machine_memory_mb, plan_cpus

    cpus = settings.total_cpus or default_cpus()
    cpu_ids, binding = plan_cpus(cpus)
    if binding:
        log.info("node has %d CPUs; jobs are bound to their CPUs (%s)", cpus, ",".join(map(str, cpu_ids)))
    else:
        log.warning(
            "node declares %d CPUs but this machine offers %d: CPU binding is off, CPU ids are virtual",
            cpus,
            default_cpus(),
        )
    return NodeConfig(
        name=settings.resolved_node_name(),
        cpus=cpus,
        memory_mb=settings.memory_mb or machine_memory_mb(),
        partitions=[p.strip() for p in settings.partition.split(",") if p.strip()],
        home=settings.resolved_home(),
        kill_wait=settings.kill_wait,
        check_interval=settings.check_interval,
        heartbeat_interval=settings.heartbeat_interval,
        heartbeat_timeout=settings.heartbeat_timeout,
        cpu_ids=cpu_ids,
        cpu_binding=binding,
        allow_root_jobs=bool(settings.allow_root_jobs),
        containment=settings.containment,
        cgroup_root=settings.cgroup_root,
        max_job_pids=settings.max_job_pids,
        acct_interval=settings.acct_interval,
        kill_over_memory=settings.kill_over_memory,
        cgroup_warm=settings.cgroup_warm,
        job_starter=settings.job_starter,
    )


def start_worker(
    settings: Settings, store: Store, bus: Bus, *, patient: bool = False, fenced: bool = False
) -> Worker:
    """A worker that has claimed its node; a live worker of the same name is a StartupError.
    `fenced`: a node among many, whose jobs are killed when its worker is gone too long."""
    from conductor.store import NodeConflict
    from conductor.worker import Worker
    from conductor.worker.containment import ContainmentError

    try:
        config = node_config(settings)
        config.fenced = fenced
        worker = Worker(store, bus, config)
    except ContainmentError as exc:
        raise StartupError(str(exc)) from None
    try:
        retry(worker.register, f"register node {worker.config.name}", patient=patient)
    except NodeConflict as exc:
        raise StartupError(str(exc)) from None
    return worker


def start_purger(settings: Settings, store: Store, leader: Leadership | None = None) -> Purger | None:
    """The purge of old jobs, when `purge_job_after` asks for one (see conductor.history)."""
    if settings.purge_job_after is None:
        return None
    from conductor.domain.retention import parse_retention
    from conductor.history.purger import Purger

    keep_for = parse_retention(settings.purge_job_after)
    archive = settings.archive_dir
    purger = Purger(
        store,
        keep_for=keep_for,
        archive_dir=archive.expanduser().resolve() if archive is not None else None,
        batch=settings.purge_batch,
        interval=settings.purge_interval,
        leader=leader,
    )
    purger.start()
    log.info(
        "purging jobs ended over %s ago, every %gs%s",
        keep_for,
        settings.purge_interval,
        f", archived first in {purger.archive_dir}" if purger.archive_dir else " (no archive)",
    )
    return purger


def start_monitor(settings: Settings, store: Store, leader: Leadership | None = None) -> Monitor:
    """The transition log, its counters and the utilisation samples (conductor.monitoring)."""
    from conductor.monitoring.monitor import Monitor

    return Monitor(
        store,
        sample_interval=settings.sample_interval,
        sample_keep=settings.sample_keep,
        heartbeat_timeout=settings.heartbeat_timeout,
        leader=leader,
    ).start()


def run_worker_in_foreground(worker: Worker) -> None:
    """Run the worker's loop in this (main) thread until SIGTERM or SIGINT."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, worker.stop)
        await worker.run()

    asyncio.run(main())


def bind_api(settings: Settings) -> socket.socket:
    """The API's listening socket, bound before anything else starts: a busy port or a foreign
    address is one line and exit 1, before any log says the API is listening and before a
    worker starts jobs."""
    host, port = settings.host, settings.port
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise StartupError(f"--host: cannot resolve '{host}': {exc.strerror}") from None
    # IPv4 first when a name has both (localhost): what clients of 127.0.0.1 reach.
    infos.sort(key=lambda info: info[0] != socket.AF_INET)
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind(address)
    except OSError as exc:
        sock.close()
        hint = " (another server listens there: choose another --port)" if exc.errno == errno.EADDRINUSE else ""
        raise StartupError(f"cannot listen on {host}:{port}: {exc.strerror or exc}{hint}") from None
    return sock


def _make_quiet_server() -> type:
    import uvicorn

    class _QuietServer(uvicorn.Server):
        """Uvicorn re-raises SIGTERM after shutting down, so the process would die of the signal;
        we want a clean exit 0. The handlers only set flags: the loops act on them.

        `on_started` runs once the API accepts connections (the log line saying so, the
        user's profile)."""

        on_started: Callable[[], None] | None = None

        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets)
            if self.started and self.on_started is not None:
                self.on_started()

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            def handle(sig: int, _frame: object) -> None:
                if self.should_exit:
                    self.force_exit = True  # a second signal stops without draining
                self.should_exit = True

            previous = {s: signal.signal(s, handle) for s in (signal.SIGINT, signal.SIGTERM)}
            try:
                yield
            finally:
                for s, handler in previous.items():
                    signal.signal(s, handler)

    return _QuietServer


def load_cluster_config(settings: Settings, store: Store) -> LiveConfig:
    """The cluster configuration file (CONDUCTOR_CONFIG), checked: a bad one stops the start
    with its line and the rule."""
    from conductor.config.live import LiveConfig
    from conductor.config.loader import ConfigError

    try:
        config = LiveConfig(settings.config, store)
    except ConfigError as exc:
        raise StartupError(f"CONDUCTOR_CONFIG: {exc}") from None
    if settings.config is not None:
        log.info("cluster configuration %s (generation %d)", settings.config, config.generation())
    return config


def serve_api(
    store: Store,
    bus: Bus,
    settings: Settings,
    *,
    allow_root_jobs: bool | None = None,
    config: LiveConfig | None = None,
    listener: socket.socket | None = None,
    on_started: Callable[[str], None] | None = None,
) -> bool:
    """Serve the HTTP API until SIGTERM or SIGINT; True when it had started.

    `allow_root_jobs`: whether root may submit jobs; None leaves it to CONDUCTOR_ALLOW_ROOT_JOBS.
    `listener`: the socket from bind_api (bound here when not given). `on_started(token)` runs
    once the API accepts connections, with the local admin token.
    Before serving, the home gets a token of the local user (services/tokens.py), so the CLI
    on this host needs no set-up.
    """
    from conductor.api.app import AppContext, serve
    from conductor.commands.common import uvicorn_config
    from conductor.services.tokens import ensure_local_token

    token_path, _ = ensure_local_token(store, settings.resolved_home())
    app = serve(
        AppContext(store=store, bus=bus, settings=settings, allow_root_jobs=allow_root_jobs, live_config=config)
    )
    try:
        config = uvicorn_config(app, settings)
    except ValueError as exc:
        raise StartupError(str(exc)) from None
    if listener is None:
        listener = bind_api(settings)
    server = _make_quiet_server()(config)
    if on_started is not None:
        from conductor.services.tokens import read_token_file

        token = read_token_file(token_path) or ""
        server.on_started = lambda: on_started(token)
    # The API, scheduler and worker threads share one GIL, and SQLite calls release it: with
    # the default 5 ms switch interval a thread holding the database's write lock waits that
    # long to get the GIL back after every statement, and every other writer queues behind it.
    sys.setswitchinterval(0.0005)
    freeze_startup_heap()
    try:
        server.run(sockets=[listener])
    finally:
        listener.close()
    return bool(server.started)


def freeze_startup_heap() -> None:
    """Keep the garbage collector off what a long-running process made while starting.

    That (modules, the application, the ORM's metadata: a few hundred thousand objects in the
    server) lives as long as the process. Left to the collector, every full collection walked
    all of it, 70-100 ms with the GIL held in which no request moved (a listing of the live
    jobs stalled once or twice a run); frozen, a full collection walks only what was made
    since (9-14 ms). What is garbage at that moment stays for good: about 20 objects, as the
    collections during start-up took the rest (a collection first would cost 70 ms)."""
    gc.freeze()


def add_listen_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of a command that serves the API (`up`, `server`)."""
    from conductor.commands.common import port_arg

    parser.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=port_arg, help="port to listen on (default 8000)")
    parser.add_argument("--home", help="state directory (default: CONDUCTOR_HOME or ./.conductor)")


def run_command(parser: argparse.ArgumentParser, argv: list[str], run: Callable[[Settings], int]) -> int:
    """Parse, configure logging, build the settings and run; a start-up failure is one line and exit 1."""
    from conductor.commands.common import configure_logging, fail

    parser.add_argument(
        "--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="log verbosity (default INFO)"
    )
    args = parser.parse_args(argv)
    configure_logging(args.log_level)
    try:
        return run(load_settings(args))
    except StartupError as exc:
        return fail(str(exc))

