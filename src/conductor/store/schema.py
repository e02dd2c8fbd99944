"""Table definitions shared by the store's queries and checked against the migrations in tests.

Column names of `jobs` are the ones users of the system we replace already query (DESIGN 1.5).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()

# SQLite only auto-increments an INTEGER PRIMARY KEY, so BigInteger is INTEGER there.
Id = BigInteger().with_variant(Integer(), "sqlite")

jobs = Table(
    "jobs",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("name", String(256), nullable=False),
    Column("user_name", String(64), nullable=False),
    Column("uid", Integer, nullable=True),
    Column("gid", Integer, nullable=True),
    Column("account", String(64), nullable=True),
    Column("partition", String(64), nullable=False),
    Column("qos", String(64), nullable=True),
    Column("state", String(16), nullable=False),
    Column("reason", String(32), nullable=False, server_default="None"),
    Column("priority", Integer, nullable=False, server_default="0"),
    Column("nice", Integer, nullable=False, server_default="0"),
    Column("cpus_per_task", Integer, nullable=False),
    Column("ntasks", Integer, nullable=False, server_default="1"),
    Column("ntasks_per_node", Integer, nullable=True),
    Column("memory_per_node_mb", Integer, nullable=True),
    Column("memory_per_cpu_mb", Integer, nullable=True),
    Column("exclusive", Boolean, nullable=False, server_default="0"),
    Column("time_limit", Integer, nullable=True),  # seconds; NULL is UNLIMITED
    Column("allocated_cpus", Integer, nullable=False, server_default="0"),
    Column("allocated_memory_mb", Integer, nullable=False, server_default="0"),
    Column("cpu_ids", String(1024), nullable=True),
    Column("node_list", String(256), nullable=True),
    Column("submit_time", DateTime(timezone=True), nullable=False),
    Column("eligible_time", DateTime(timezone=True), nullable=True),
    Column("begin_time", DateTime(timezone=True), nullable=True),
    Column("start_time", DateTime(timezone=True), nullable=True),
    Column("end_time", DateTime(timezone=True), nullable=True),
    Column("exit_code", String(16), nullable=True),
    Column("error_msg", Text, nullable=True),
    Column("work_dir", Text, nullable=False),
    Column("standard_output", Text, nullable=True),
    Column("standard_error", Text, nullable=True),
    Column("standard_input", Text, nullable=True),
    Column("open_mode", String(8), nullable=False, server_default="truncate"),
    Column("script", Text, nullable=False),
    Column("environment", Text, nullable=False),  # JSON object
    Column("array_job_id", BigInteger, nullable=True),
    Column("array_task_id", Integer, nullable=True),
    Column("array_max_running", Integer, nullable=True),
    Column("array_spec", Text, nullable=True),
    Column("dependency", Text, nullable=True),
    Column("held", Boolean, nullable=False, server_default="0"),
    Column("requeue", Boolean, nullable=False, server_default="0"),
    Column("restart_count", Integer, nullable=False, server_default="0"),
    Column("signal_spec", String(32), nullable=True),
    Column("comment", Text, nullable=True),
    Column("extra", Text, nullable=True),  # JSON: accepted options without a column (mail, ...)
    # Worker hand-off: the placement sets node_list; the worker that launches records its pid.
    Column("pid", Integer, nullable=True),
    Column("launched", Boolean, nullable=False, server_default="0"),
    # A kill the API asked for (cancel) or the worker decided (time limit): the target state.
    Column("kill_state", String(16), nullable=True),
    Column("kill_time", DateTime(timezone=True), nullable=True),
    # Signals asked for (scancel --signal) and not yet delivered by the job's worker:
    # comma-separated "[b:|s:]NUMBER" ("b:" = the batch shell only, "s:" = the steps only).
    # Migration 0002.
    Column("pending_signal", Text, nullable=True),
    Column("rusage", Text, nullable=True),  # JSON
    # The backfill plan's estimate for a pending job (squeue --start). Migration 0010.
    Column("expected_start_time", DateTime(timezone=True), nullable=True),
    Column("sched_nodes", String(256), nullable=True),
    # A submission's Idempotency-Key, unique per user, and a digest of the request it came with
    # (0016): a client retrying a submission whose answer it lost gets the same job back.
    # Only on the job the submission made (an array's first task). SUBMISSION_KEY_COLUMNS.
    Column("submit_key", String(255), nullable=True),
    Column("submit_digest", String(64), nullable=True),
    # Who asked for a cancel (the user the API acted for), once one was asked: sacct shows a
    # cancelled job as "CANCELLED by UID", as slurmdbd keeps its requid. Migration 0017.
    Column("cancelled_by", String(64), nullable=True),
    # sbatch --nodelist and --exclude: the node the job must run on, and those it must not, by
    # name, comma-separated (NULL: none). Migration 0018.
    Column("req_nodes", Text, nullable=True),
    Column("exc_nodes", Text, nullable=True),
)
# The columns of `jobs` no job record carries: a key is its submitter's secret handle on a
# submission (a client may derive it from its own identifiers), and every user lists every job,
# so no listing reads them and `Job` has no field for them. Only the submission's own look-up
# reads them (JobQueries.submitted_with); the purge deletes them with their row.
SUBMISSION_KEY_COLUMNS = frozenset({"submit_key", "submit_digest"})
Index("ix_jobs_state_order", jobs.c.state, jobs.c.priority, jobs.c.submit_time, jobs.c.id)
Index("ix_jobs_node_state", jobs.c.node_list, jobs.c.state)
Index("ix_jobs_user", jobs.c.user_name)
# The per-user pending limit counts on every submit: without the state in the index that count
# would visit every job the user ever ran.
Index("ix_jobs_user_state", jobs.c.user_name, jobs.c.state)
Index("ix_jobs_array", jobs.c.array_job_id)
Index("ix_jobs_name", jobs.c.name)
Index("ix_jobs_end_time", jobs.c.end_time)
Index("ix_jobs_state_id", jobs.c.state, jobs.c.id)
# /metrics counts the pending jobs by partition and reason at every scrape: from this index
# alone, without visiting a row (migration 0010). Partial, so that it holds pending jobs only
# and no listing's plan prefers it to ix_jobs_state_id (state is in it to make it covering).
Index(
    "ix_jobs_pending_partition_reason",
    jobs.c.partition,
    jobs.c.reason,
    jobs.c.state,
    sqlite_where=jobs.c.state == "PENDING",
    postgresql_where=jobs.c.state == "PENDING",
)
# A user's Idempotency-Keys, each on one job at most (migration 0016): two submissions racing
# with one key store one job, the other fails on this index and answers as a replay of it.
# Partial: most jobs come without a key, and they cost this index nothing.
Index(
    "ix_jobs_submit_key",
    jobs.c.user_name,
    jobs.c.submit_key,
    unique=True,
    sqlite_where=jobs.c.submit_key.isnot(None),
    postgresql_where=jobs.c.submit_key.isnot(None),
)

job_events = Table(
    "job_events",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("job_id", BigInteger, ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False),
    Column("time", DateTime(timezone=True), nullable=False),
    Column("from_state", String(16), nullable=True),
    Column("to_state", String(16), nullable=False),
    Column("reason", String(64), nullable=True),
    Column("node", String(64), nullable=True),
    Column("message", Text, nullable=True),
)
Index("ix_job_events_job", job_events.c.job_id, job_events.c.id)

nodes = Table(
    "nodes",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("cpus", Integer, nullable=False),
    Column("cpu_ids", Text, nullable=False),  # the ids jobs are given, e.g. "0-63"
    Column("cpu_binding", Boolean, nullable=False),
    Column("memory_mb", Integer, nullable=False),
    Column("partitions", Text, nullable=False),  # comma separated
    Column("state", String(16), nullable=False),  # UP, DOWN, DRAIN
    Column("reason", Text, nullable=True),
    Column("instance", String(64), nullable=True),  # the live worker process that owns the node
    Column("last_heartbeat", DateTime(timezone=True), nullable=True),
    Column("registered_at", DateTime(timezone=True), nullable=False),
    Column("hostname", String(256), nullable=True),
    Column("containment", String(16), nullable=True),  # cgroup-v2, cgroup-v1, polling
    # Drained by an administrator (scontrol update NodeName=... State=DRAIN Reason=...): no new
    # job is placed on it, whatever its worker says, until State=RESUME (0015). None: not drained.
    Column("drain_reason", Text, nullable=True),
    Column("drain_user", String(64), nullable=True),
    Column("drain_time", DateTime(timezone=True), nullable=True),
)

tokens = Table(
    "tokens",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("user_name", String(64), nullable=False),
    Column("token_hash", String(128), nullable=False, unique=True),
    Column("admin", Boolean, nullable=False, server_default="0"),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("revoked_at", DateTime(timezone=True), nullable=True),
    Column("comment", Text, nullable=True),
)

# The cluster's load over time, one row a sample, for the dashboard's chart: a few thousand rows
# at most (the sampler deletes what is older than its retention). Migration 0010.
utilisation_samples = Table(
    "utilisation_samples",
    metadata,
    Column("time", DateTime(timezone=True), primary_key=True),
    Column("total_cpus", Integer, nullable=False),
    Column("used_cpus", Integer, nullable=False),
    Column("running_jobs", Integer, nullable=False),
    Column("pending_jobs", Integer, nullable=False),
)

# The cluster configuration's shared state (migration 0013): a generation every process compares
# with its own to reload the configuration file (`scontrol reconfigure`), and the partition
# states `scontrol update PartitionName=X State=...` set over the file's.
cluster_config = Table(
    "cluster_config",
    metadata,
    Column("id", Integer, primary_key=True),  # one row, id 1
    Column("generation", BigInteger, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    # Until when fairshare_usage holds the decayed usage (None: never computed yet).
    Column("usage_as_of", DateTime(timezone=True), nullable=True),
    # The generation of the last `scontrol reconfigure` (0014): only then is the file reread;
    # sacctmgr's and scontrol's changes bump `generation` alone.
    Column("file_generation", BigInteger, nullable=True),
    # The last job event the transition feed logged and counted (0015): the process that takes
    # over the feed, after a restart or a failover, goes on from there.
    Column("feed_event_id", BigInteger, nullable=True),
)

# CPU-seconds per user and account charged ("" for none), decayed with PriorityDecayHalfLife to
# cluster_config.usage_as_of: the fair-share factor's input, brought forward by the scheduler on
# every full pass (migration 0013; keyed by account since 0014).
fairshare_usage = Table(
    "fairshare_usage",
    metadata,
    Column("user_name", String(64), primary_key=True),
    Column("account", String(64), primary_key=True, server_default=""),
    Column("usage", Float, nullable=False),
)

# Slurm's accounting model, managed with sacctmgr (migration 0014): accounts in a tree under
# root, users' associations with them (shares and limits), each user's default account, and QOS
# beyond the configuration file's. Limits: NULL is not set; max_wall in seconds, memory in MB.
accounts = Table(
    "accounts",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("parent", String(64), nullable=False),  # "root" for a top-level account
    Column("description", Text, nullable=False, server_default=""),
    Column("organization", Text, nullable=False, server_default=""),
    Column("shares", Integer, nullable=False, server_default="1"),
    Column("max_jobs", Integer, nullable=True),
    Column("max_submit_jobs", Integer, nullable=True),
    Column("grp_cpus", Integer, nullable=True),
    Column("grp_memory_mb", Integer, nullable=True),
    Column("max_wall", Integer, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

associations = Table(
    "associations",
    metadata,
    Column("user_name", String(64), primary_key=True),
    Column("account", String(64), ForeignKey("accounts.name", ondelete="CASCADE"), primary_key=True),
    Column("shares", Integer, nullable=False, server_default="1"),
    Column("max_jobs", Integer, nullable=True),
    Column("max_submit_jobs", Integer, nullable=True),
    Column("grp_cpus", Integer, nullable=True),
    Column("grp_memory_mb", Integer, nullable=True),
    Column("max_wall", Integer, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

accounting_users = Table(
    "accounting_users",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("default_account", String(64), nullable=False),
)

qos_records = Table(
    "qos",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("description", Text, nullable=False, server_default=""),
    Column("priority", Integer, nullable=False, server_default="0"),
    Column("max_jobs_per_user", Integer, nullable=True),
    Column("max_submit_jobs_per_user", Integer, nullable=True),
    Column("max_cpus_per_user", Integer, nullable=True),
    Column("max_memory_per_user", Integer, nullable=True),
    Column("grp_cpus", Integer, nullable=True),
    Column("grp_memory_mb", Integer, nullable=True),
    Column("max_wall", Integer, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

partition_states = Table(
    "partition_states",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("state", String(16), nullable=False),  # UP, DOWN, DRAIN, INACTIVE
    Column("updated_at", DateTime(timezone=True), nullable=False),
)
