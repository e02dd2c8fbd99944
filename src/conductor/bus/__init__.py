"""Wake-ups between the API, the scheduler and workers.

In one process (`conductor up`) a publish calls the subscribers at once; between processes the
PostgreSQL bus carries the same topics over LISTEN/NOTIFY. Subscribers must be cheap and
thread-safe (set an event, schedule a callback): they run in the publisher's thread.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable

SCHEDULER = "scheduler"


def node_topic(node: str) -> str:
    return f"node:{node}"


class Bus:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subscribers: dict[str, list[Callable[[], None]]] = defaultdict(list)

    def subscribe(self, topic: str, callback: Callable[[], None]) -> None:
        with self._lock:
            self._subscribers[topic].append(callback)

    def publish(self, topic: str) -> None:
        with self._lock:
            callbacks = list(self._subscribers.get(topic, ()))
        for callback in callbacks:
            callback()

    def keep_local(self, topic: str, while_: Callable[[], bool]) -> None:
        """Say that while `while_()` holds, only this process's subscribers need `topic`: a bus
        between processes then does not carry it. In one process there is nothing to carry."""

    def close(self) -> None:
        pass
