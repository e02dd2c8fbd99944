"""Start-up pieces shared by `conductor up`, `server` and `worker`."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from conductor.domain.errors import SpecError
from conductor.domain.memory import parse_memory_mb


def configure_logging(level: str = "INFO") -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def positive_int(flag: str, limit: int = 100_000) -> type:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{flag}: '{text}' is not an integer") from None
        if not 1 <= value <= limit:
            raise argparse.ArgumentTypeError(f"{flag}: must be between 1 and {limit}, got {value}")
        return value

    return parse  # type: ignore[return-value]


def memory_arg(text: str) -> int:
    try:
        value = parse_memory_mb(text, field="--memory")
    except SpecError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if value < 1:
        raise argparse.ArgumentTypeError("--memory: must be at least 1M")
    return value


def port_arg(text: str) -> int:
    return positive_int("--port", 65535)(text)  # type: ignore[no-any-return, operator]


def add_node_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--node-name", help="node name (default: NODE_NAME or the host name)")
    parser.add_argument("--cpus", type=positive_int("--cpus"), help="CPUs (default: TOTAL_CPUS or the machine's)")
    parser.add_argument("--memory", type=memory_arg, help="memory, e.g. 64G (default: the machine's)")
    parser.add_argument("--partition", help="partition(s) of the node, comma separated (default: debug)")


def default_cpus() -> int:
    return len(os.sched_getaffinity(0))


def fail(message: str) -> int:
    sys.stderr.write(f"conductor: error: {message}\n")
    return 1
