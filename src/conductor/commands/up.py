"""`conductor up`: API, scheduler and one worker in one process, on embedded SQLite."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import threading
from collections.abc import Iterator

from pydantic import ValidationError

from conductor.commands.common import add_node_arguments, configure_logging, default_cpus, fail, port_arg
from conductor.settings import Settings

log = logging.getLogger("conductor.up")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="conductor up", description="Run API, scheduler and one worker in one process (embedded SQLite)."
    )
    parser.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=port_arg, help="port to listen on (default 8000)")
    parser.add_argument("--home", help="state directory (default: CONDUCTOR_HOME or ./.conductor)")
    add_node_arguments(parser)
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return parser


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args.log_level)
    overrides = {
        k: v
        for k, v in {
            "host": args.host,
            "port": args.port,
            "home": args.home,
            "node_name": args.node_name,
            "total_cpus": args.cpus,
            "memory_mb": args.memory,
            "partition": args.partition,
        }.items()
        if v is not None
    }
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        return fail(_settings_error(exc))
    return run_all_in_one(settings)


def _settings_error(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())


def _make_quiet_server() -> type:
    import uvicorn

    class _QuietServer(uvicorn.Server):
        """Uvicorn re-raises SIGTERM after shutting down, so the process would die of the signal;
        we want a clean exit 0. The handlers only set flags: the loops act on them."""

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


def run_all_in_one(settings: Settings) -> int:
    import uvicorn

    QuietServer = _make_quiet_server()
    from conductor.api.app import AppContext, create_app
    from conductor.bus import Bus
    from conductor.scheduler import Scheduler
    from conductor.store import NodeConflict, Store, redact_url
    from conductor.worker import NodeConfig, Worker, machine_memory_mb, plan_cpus, run_in_thread

    home = settings.resolved_home()
    home.mkdir(parents=True, exist_ok=True)
    os.chmod(home, 0o700)
    url = settings.resolved_database_url()
    log.info("database %s", redact_url(url))
    store = Store(url)
    store.migrate()
    bus = Bus()

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
    config = NodeConfig(
        name=settings.resolved_node_name(),
        cpus=cpus,
        memory_mb=settings.memory_mb or machine_memory_mb(),
        partitions=[p.strip() for p in settings.partition.split(",") if p.strip()],
        home=home,
        kill_wait=settings.kill_wait,
        check_interval=settings.check_interval,
        heartbeat_interval=settings.heartbeat_interval,
        heartbeat_timeout=settings.heartbeat_timeout,
        cpu_ids=cpu_ids,
        cpu_binding=binding,
    )
    worker = Worker(store, bus, config)
    try:
        worker.register()
    except NodeConflict as exc:
        return fail(str(exc))
    scheduler = Scheduler(
        store,
        bus,
        check_interval=settings.check_interval,
        heartbeat_timeout=settings.heartbeat_timeout,
        policy=settings.placement,
    )
    failed = threading.Event()
    worker_thread = run_in_thread(worker, lambda _exc: failed.set())
    scheduler.start()

    app = create_app(AppContext(store=store, bus=bus, settings=settings))
    server = QuietServer(
        uvicorn.Config(app, host=settings.host, port=settings.port, log_level="warning", access_log=False)
    )
    log.info(
        "conductor up: node %s with %d CPUs, listening on http://%s:%d", config.name, cpus, settings.host, settings.port
    )
    try:
        server.run()
    finally:
        log.info("shutting down")
        scheduler.stop()
        worker.stop()
        worker_thread.join(timeout=15)
        store.close()
    if failed.is_set():
        return 1
    return 0 if server.started else 1


