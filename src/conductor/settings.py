"""One typed settings object, read from CONDUCTOR_* environment variables and flags.

Nothing reads configuration at import time: callers build `Settings()` when they start, so tests
and subcommands can give their own values.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from conductor.domain.retention import parse_retention
from conductor.errors import Invalid


class Settings(BaseSettings):
    # allow_inf_nan: "nan" would pass every bound but say "less than or equal to 3600" for "inf".
    model_config = SettingsConfigDict(env_prefix="CONDUCTOR_", extra="ignore", populate_by_name=True, allow_inf_nan=False)

    home: Path = Field(default=Path(".conductor"), description="State directory (database, scripts, token).")
    database_url: str | None = Field(
        default=None, description="postgresql:// URL or a SQLite path; default: SQLite under home."
    )
    url: str = Field(default="http://127.0.0.1:8000", description="API address the CLI talks to.")
    token: str | None = Field(default=None, description="Bearer token for the CLI.")
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    check_interval: float = Field(default=5.0, gt=0, le=3600, description="Fallback scheduler tick (s).")
    kill_wait: float = Field(default=30.0, ge=0, le=3600, description="Seconds between SIGTERM and SIGKILL.")
    heartbeat_interval: float = Field(default=2.0, gt=0, le=600)
    heartbeat_timeout: float = Field(default=30.0, gt=0, le=86400)
    # Seed deployment names: NODE_NAME and TOTAL_CPUS, also accepted with the prefix.
    node_name: str | None = Field(
        default=None, validation_alias=AliasChoices("CONDUCTOR_NODE_NAME", "NODE_NAME", "node_name")
    )
    total_cpus: int | None = Field(
        default=None, ge=1, le=100_000, validation_alias=AliasChoices("CONDUCTOR_CPUS", "TOTAL_CPUS", "total_cpus")
    )
    memory_mb: int | None = Field(
        default=None, ge=1, le=2**40, description="Node memory in MB; default: the machine's."
    )  # at most 1 EiB: what the database's integers hold with room
    # The node's partitions, a comma list of names as the configuration file has them
    # (config/model.py). pydantic's patterns are Rust regular expressions: `$` is the end of the
    # text, never before a final newline.
    partition: str = Field(
        default="debug",
        max_length=4096,
        pattern=r"^ *[A-Za-z0-9][A-Za-z0-9_.-]{0,63} *(, *[A-Za-z0-9][A-Za-z0-9_.-]{0,63} *)*$",
    )
    placement: str = Field(default="spread", pattern="^(spread|pack)$")
    # Backfill (issue 12): Slurm's reservation depth and bf_max_job_test, and a partition's DefaultTime.
    backfill_depth: int = Field(
        default=1, ge=0, le=100_000, description="Jobs given a reservation per pass: 1 is EASY backfill, more is "
        "conservative, 0 reserves nothing (a large job can then wait for ever)."
    )
    backfill_max_job_test: int = Field(
        default=500, ge=1, le=1_000_000, description="Waiting jobs tested per scheduler pass (Slurm's bf_max_job_test)."
    )
    default_time: str | None = Field(
        default=None, description="Time limit of jobs submitted without one (Slurm grammar, e.g. 1:00:00). "
        "Unset: UNLIMITED, as a Slurm partition without DefaultTime; such jobs cannot be backfilled around."
    )
    # Sharing (issue 13): the cluster configuration file (partitions, QOS, priority, backfill).
    config: Path | None = Field(
        default=None, description="Cluster configuration file (TOML). Unset: the partitions the workers declare, "
        "one QOS `normal` without limits."
    )
    max_script_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)
    max_environment_bytes: int = Field(default=1024 * 1024, ge=1024)
    max_array_tasks: int = Field(default=100_000, ge=1)
    max_array_bytes: int = Field(
        default=1 << 30, ge=1 << 20, description="Bytes an array's tasks store in all: tasks x (script + environment)."
    )
    max_body_bytes: int = Field(default=16 * 1024 * 1024, ge=4096)
    log_tail_bytes: int = Field(default=64 * 1024, ge=0, le=16 * 1024 * 1024)
    # Security (issue 5).
    max_pending_per_user: int = Field(default=100_000, ge=1, description="Pending jobs one user may have.")
    # Connections (issue 9): a client has this long to send its headers, and its body may not
    # stall longer; an idle keep-alive connection is closed after keep_alive_timeout.
    request_timeout: float = Field(
        default=10.0, ge=0.1, le=3600, description="Seconds to send a request's headers; longest stall of a body."
    )
    keep_alive_timeout: float = Field(
        default=5.0, ge=0.1, le=3600, description="Seconds an idle keep-alive connection is kept."
    )
    max_connections: int = Field(
        default=1024, ge=8, le=1_000_000, description="Connections one API process keeps open at once."
    )
    max_page_size: int = Field(
        default=1000, ge=10, le=100_000, description="Jobs in one page of GET /jobs (a larger limit is a 422)."
    )
    allow_root_jobs: bool | None = Field(
        default=None,
        description="Whether jobs may run as root. Unset: only when `conductor up` itself runs as root "
        "(its local admin is root); `conductor server`/`worker` refuse them.",
    )
    # Per-job containment (issue 11): control groups or, without them, polling.
    containment: str = Field(
        default="auto",
        pattern="^(auto|cgroup-v2|cgroup-v1|none)$",
        description="Per-job containment: auto (cgroup v2, else v1, else polling), cgroup-v2, cgroup-v1 or none.",
    )
    cgroup_root: Path = Field(default=Path("/sys/fs/cgroup"), description="Where the control groups are mounted.")
    max_job_pids: int | None = Field(
        default=None, ge=1, le=4_194_304, description="Processes one job may have at once (unset: no cap)."
    )
    acct_interval: float = Field(
        default=30.0, gt=0, le=86400, description="Seconds between samples of running jobs' usage."
    )
    cgroup_warm: bool = Field(
        default=True,
        description="With control groups: the job launcher moves itself into its own group every 10 ms, so "
        "that a job joining its groups never waits for an RCU grace period (about 10 ms) after an idle spell.",
    )
    job_starter: str = Field(
        default="auto",
        pattern="^(auto|python)$",
        description="How the job launcher starts each job: auto (a small C program built once with the "
        "machine's C compiler, else a fork of the launcher) or python (always the fork: slower).",
    )
    kill_over_memory: bool = Field(
        default=False, description="Without control groups: kill a job whose processes use more than its memory."
    )
    ssl_certfile: Path | None = Field(default=None, description="TLS certificate (PEM) for the API.")
    ssl_keyfile: Path | None = Field(default=None, description="TLS private key (PEM) for the API.")
    # History: Slurm's PurgeJobAfter and ArchiveJobs/ArchiveDir.
    purge_job_after: str | None = Field(
        default=None,
        description="Ended jobs older than this leave the database (e.g. 30days, 12hours, 6months; a bare "
        "number is months). Unset: every job is kept.",
    )
    archive_dir: Path | None = Field(
        default=None, description="Purged jobs are written here first, as compressed JSON lines."
    )
    purge_interval: float = Field(default=60.0, gt=0, le=86400, description="Seconds between two purges.")
    purge_batch: int = Field(default=500, ge=1, le=10_000, description="Jobs deleted per transaction.")

    # Observability (issue 14).
    metrics_public: bool = Field(
        default=False, description="Whether GET /metrics answers without a token (for a Prometheus scraper)."
    )
    log_format: str = Field(
        default="text", pattern="^(text|json)$", description="Server logs as plain text lines or JSON lines."
    )
    sample_interval: float = Field(
        default=60.0, ge=1, le=3600, description="Seconds between two samples of the utilisation chart."
    )
    sample_keep: float = Field(
        default=48 * 3600.0, ge=60, le=90 * 86400, description="Seconds the utilisation samples are kept."
    )

    @field_validator("purge_job_after")
    @classmethod
    def _purge_job_after(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                parse_retention(value)
            except Invalid as exc:
                raise ValueError(exc.message) from None
        return value

    @field_validator("default_time")
    @classmethod
    def _default_time(cls, value: str | None) -> str | None:
        if value is not None:
            from conductor.domain.timespec import parse_time_limit

            try:
                parse_time_limit(value, field="default_time")
            except Invalid as exc:
                raise ValueError(exc.message) from None
        return value

    def default_time_limit(self) -> int | None:
        """`default_time` in seconds (None: UNLIMITED)."""
        from conductor.domain.timespec import parse_time_limit

        return parse_time_limit(self.default_time, field="default_time")

    @field_validator("config", mode="before")
    @classmethod
    def _config(cls, value: object) -> object:
        # Path("") is the directory `.`, which the loader would refuse as "not a regular file".
        if isinstance(value, str) and not value:
            raise ValueError("CONDUCTOR_CONFIG is set but empty: give the configuration file's path, or unset it")
        return value

    @field_validator("node_name")
    @classmethod
    def _node_name(cls, value: str | None) -> str | None:
        if value is not None and (not value or len(value) > 64 or not all(c.isalnum() or c in "-_." for c in value)):
            raise ValueError("node_name must be 1-64 characters of letters, digits, '-', '_' or '.'")
        return value

    def resolved_home(self) -> Path:
        return self.home.expanduser().resolve()

    def resolved_database_url(self) -> str:
        url = self.database_url
        if not url:
            return "sqlite:///" + str(self.resolved_home() / "conductor.db")
        if "://" not in url:  # a bare path means SQLite
            return "sqlite:///" + str(Path(url).expanduser().resolve())
        return url

    def resolved_node_name(self) -> str:
        return self.node_name or os.uname().nodename.split(".")[0]
