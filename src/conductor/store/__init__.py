"""The one package that holds SQL: jobs, their events, nodes and tokens, on SQLite or PostgreSQL.

Every change of a job's state is one transaction: a compare-and-set on the state, the allocation
change carried by the same row, and an event row. CPU accounting is never kept in a counter: a
job holds its CPUs exactly while its row says RUNNING, so releasing them happens once, with the
state change that ends the job, and `/jobs/stats` is one query over the table.

Cut by who asks: `scheduling` (the scheduler loop), `nodes` (a node's agent), `jobs` and
`control` (the API and the job services), `drains` (administrators draining and resuming
nodes), `dependencies`, `tokens`, `config` (the cluster
configuration's generation, partition states, fair-share usage), `accounting` (sacctmgr's
accounts, associations and QOS), `history` (the purge of old jobs), `monitoring` (metrics, the
transition log, utilisation samples) and `coordination` (LISTEN/NOTIFY and the scheduler's
lock), over `engine` (the database) and `statements` (the pre-compiled statements). `Store` is
all of them over one engine.
"""

from __future__ import annotations

from conductor.store.accounting import AccountingQueries
from conductor.store.config import ConfigQueries
from conductor.store.control import ControlQueries
from conductor.store.coordination import (
    NOTIFY_CHANNEL,
    SCHEDULER_LOCK_KEY,
    Coordination,
    is_disconnect,
    pg_connect,
    pg_listen,
    pg_notify_many,
    pg_ping,
    pg_try_scheduler_lock,
)
from conductor.store.dependencies import DependencyQueries
from conductor.store.drains import DrainQueries
from conductor.store.engine import (
    PG_CONNECT_ARGS,
    StoreError,
    aware,
    protect_sqlite_files,
    redact_secrets,
    redact_url,
    unavailable,
    utcnow,
)
from conductor.store.history import HistoryQueries
from conductor.store.jobs import JobQueries, SubmitKeyTaken
from conductor.store.monitoring import MonitoringQueries
from conductor.store.nodes import NodeConflict, NodeQueries
from conductor.store.records import (
    BEING_STOPPED,
    NOT_HELD,
    CancelOutcome,
    ControlOutcome,
    DependencyTarget,
    DrainOutcome,
    Finish,
    KeyedSubmission,
    NodeDrain,
    NodeInfo,
    QueueCount,
    Reaped,
    SingletonState,
    Stats,
    SubmissionKey,
    Transition,
    UtilisationSample,
)
from conductor.store.scheduling import SchedulingQueries
from conductor.store.tokens import TokenQueries

__all__ = [
    "BEING_STOPPED",
    "NOTIFY_CHANNEL",
    "NOT_HELD",
    "PG_CONNECT_ARGS",
    "SCHEDULER_LOCK_KEY",
    "CancelOutcome",
    "ControlOutcome",
    "DrainOutcome",
    "Finish",
    "KeyedSubmission",
    "NodeConflict",
    "NodeDrain",
    "NodeInfo",
    "QueueCount",
    "Reaped",
    "SingletonState",
    "DependencyTarget",
    "Stats",
    "SubmissionKey",
    "SubmitKeyTaken",
    "Transition",
    "UtilisationSample",
    "Store",
    "StoreError",
    "aware",
    "is_disconnect",
    "pg_connect",
    "pg_listen",
    "pg_notify_many",
    "pg_ping",
    "pg_try_scheduler_lock",
    "protect_sqlite_files",
    "redact_secrets",
    "redact_url",
    "unavailable",
    "utcnow",
]


class Store(
    SchedulingQueries,
    NodeQueries,
    JobQueries,
    ControlQueries,
    DrainQueries,
    DependencyQueries,
    TokenQueries,
    HistoryQueries,
    MonitoringQueries,
    AccountingQueries,
    ConfigQueries,
    Coordination,
):
    """The database with every consumer's queries: one object for every caller."""
