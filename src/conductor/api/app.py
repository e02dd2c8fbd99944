"""The HTTP API (FastAPI). Routes and bodies of the seed are kept exactly (DESIGN 1.3)."""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

import anyio.to_thread
from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from conductor import __version__
from conductor.api import accounting, cluster, control, models, nodes, slurmrestd
from conductor.api.auth import CurrentPrincipal, authenticate, document_public_routes
from conductor.api.bodies import BodyCheck, ErrorResponse
from conductor.api.docs import install_docs
from conductor.api.fastpath import SubmitFastPath, submit_answer, unavailable_answer
from conductor.api.idempotency import REPLAYED_HEADER_DOC, IdempotencyKey
from conductor.api.job_records import (
    columns_of,
    elapsed_seconds,
    iso,
    job_page,
    job_record,
    job_usage,
    selected_fields,
)
from conductor.api.limits import ASGIApp, BodyLimit, reject_repeated_query_parameters
from conductor.api.problems import problems
from conductor.bus import Bus
from conductor.config.live import LiveConfig
from conductor.domain.job import Job
from conductor.domain.jobfiles import job_paths
from conductor.domain.states import JobState
from conductor.domain.text import first_control_character
from conductor.errors import Invalid, Refusal, StoreUnavailable
from conductor.history.archive import ArchiveError, ArchiveQuery, archived_page, merge_pages
from conductor.monitoring.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from conductor.monitoring.metrics import cluster_registry, exposition
from conductor.scheduler.policy import Backfill, PlacementPolicy
from conductor.services import idempotency
from conductor.services.forecast import Forecaster
from conductor.services.jobs import JobService, Submitted
from conductor.services.nodes import NodeService
from conductor.services.principal import Principal, ensure_owner
from conductor.services.submission import Limits
from conductor.settings import Settings
from conductor.store import Store, utcnow
from conductor.userfiles import Reader, reader_for
from conductor.userfiles import read_tail as _read_tail_safely
from conductor.web.dashboard import install_dashboard

log = logging.getLogger("conductor.api")


@dataclass
class AppContext:
    """What every route reaches: the store for reads, the services for every change."""

    store: Store
    bus: Bus
    settings: Settings
    hostname: str = field(default_factory=lambda: socket.gethostname().split(".")[0])
    # None: as settings.allow_root_jobs says (off when unset); `conductor up` as root passes True.
    allow_root_jobs: bool | None = None
    # The cluster configuration, shared with the scheduler of the same process; None: read here.
    live_config: LiveConfig | None = None
    config: LiveConfig = field(init=False)
    priorities: cluster.PriorityView = field(init=False)
    jobs: JobService = field(init=False)
    nodes: NodeService = field(init=False)

    def __post_init__(self) -> None:
        settings = self.settings
        self.config = self.live_config or LiveConfig(settings.config, self.store)
        self.priorities = cluster.PriorityView(self.store, self.config)
        self.nodes = NodeService(self.store, self.bus, heartbeat_timeout=settings.heartbeat_timeout)
        self.jobs = JobService(
            store=self.store,
            bus=self.bus,
            limits=Limits(
                max_script_bytes=settings.max_script_bytes,
                max_environment_bytes=settings.max_environment_bytes,
                max_array_tasks=settings.max_array_tasks,
                max_array_bytes=settings.max_array_bytes,
                default_partition=settings.partition,
                default_time_limit=settings.default_time_limit(),
            ),
            max_pending_per_user=settings.max_pending_per_user,
            hostname=self.hostname,
            root_jobs_allowed=self.root_jobs_allowed(),
            forecaster=Forecaster(
                self.store,
                Backfill(depth=settings.backfill_depth, max_job_test=settings.backfill_max_job_test),
                PlacementPolicy(settings.placement),
                heartbeat_timeout=settings.heartbeat_timeout,
                prioritise=self.priorities.assign,
                limits=self.priorities.limits,
                assign=self.config.assign,
            ),
            config=self.config,
        )

    def root_jobs_allowed(self) -> bool:
        if self.allow_root_jobs is not None:
            return self.allow_root_jobs
        return bool(self.settings.allow_root_jobs)

    def live_after(self) -> datetime:
        return utcnow() - timedelta(seconds=self.settings.heartbeat_timeout)


def refusal_body(exc: Refusal) -> dict[str, Any]:
    """The native API's error body: the message, and the field when one value is at fault."""
    if isinstance(exc, Invalid) and exc.field:
        return {"detail": str(exc), "field": exc.field}
    return {"detail": str(exc)}


def read_tail(path: str, limit: int, reader: Reader | None) -> str | None:
    """The last `limit` bytes of a job's output file if the job's user (`reader`) could read
    it: a regular file of theirs, reached through directories they may search, without
    following any symbolic link (conductor.userfiles says why)."""
    return _read_tail_safely(path, limit, reader)


def _parse_job_id(job_id: str) -> int:
    # Not stripped again: `_csv` took the spaces off, and no other white space is part of an id.
    if not (job_id.isascii() and job_id.isdigit()) or len(job_id) > 18:
        raise Invalid(f"'{job_id[:40]}' is not a job id (a positive integer)", field="job_id")
    return int(job_id)


# Job ids one GET /jobs/dependencies may name: a page of squeue's (the CLI asks per page).
MAX_DEPENDENCY_IDS = 1000


def _csv(value: str | None, name: str) -> list[str] | None:
    """A comma-separated filter's items, without the spaces around them ("1, 2"); a 400 naming
    the parameter `name` for a control character anywhere in it. A newline or tab is not a
    space to drop: stripped, `job_id=1%0A` was taken for job 1 (and PostgreSQL cannot even
    compare text with a NUL in it)."""
    if not value:
        return None
    index = first_control_character(value)
    if index is not None:
        raise Invalid(
            f"must not contain control characters (U+{ord(value[index]):04X} at position {index + 1})", field=name
        )
    return [v.strip(" ") for v in value.split(",") if v.strip(" ")]


@contextlib.asynccontextmanager
async def _lifespan(_app: FastAPI) -> AsyncIterator[None]:
    # Few threads for blocking handlers: they share one GIL and one SQLite writer, and a
    # crowd of them only adds switching (AnyIO's default is 40).
    anyio.to_thread.current_default_thread_limiter().total_tokens = 6
    yield


def _time_param(value: str | None, name: str) -> datetime | None:
    """An ISO 8601 time (UTC when it names no zone) or UNIX seconds; 400 naming `name` else.

    Parsed here rather than by the framework so the OpenAPI document says what is accepted."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        if text.isascii() and text.replace(".", "", 1).isdigit():  # isdigit alone takes "١" (Arabic-Indic 1)
            return datetime.fromtimestamp(float(text), UTC)
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
        return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
    except (ValueError, OverflowError, OSError):
        raise Invalid(f"'{text[:40]}' is not a time (ISO 8601, e.g. 2026-01-31T12:00:00, or UNIX seconds)", field=name) from None


def _check_layout(layout: str, selected: tuple[str, ...] | None) -> None:
    if layout == "rows" and selected is None:
        raise Invalid("layout=rows lists the fields named in `fields`: name them", field="layout")


def _check_page(limit: int, bound: int) -> None:
    if limit > bound:
        raise RequestValidationError(
            [
                {
                    "loc": ("query", "limit"),
                    "msg": f"at most {bound} jobs per page (CONDUCTOR_MAX_PAGE_SIZE), got {limit}; "
                    "follow `next_after` for the rest",
                    "type": "value_error",
                }
            ]
        )


def _states(text: str | None) -> list[str] | None:
    """The `state` filter: Slurm's state names, any case; 400 naming an unknown one."""
    states = _csv(text, "state")
    if not states:
        return None
    valid = {s.value for s in JobState}
    bad = [s for s in states if s.upper() not in valid]
    if bad:
        raise Invalid(f"unknown state '{bad[0]}'; expected one of {', '.join(sorted(valid))}", field="state")
    return [s.upper() for s in states]


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(Refusal)
    async def _refusal(_: Request, exc: Refusal) -> ErrorResponse:
        # The status comes from the refusal's kind, never from its text.
        return ErrorResponse(refusal_body(exc), status_code=exc.status)

    @app.exception_handler(StoreUnavailable)
    async def _unavailable(_: Request, exc: StoreUnavailable) -> Response:
        return unavailable_answer(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> ErrorResponse:
        errors = []
        fields = []
        for err in exc.errors():
            if err.get("type") == "json_invalid":  # its location is a character offset, not a field
                where = err.get("loc", ())[-1]
                cause = (err.get("ctx") or {}).get("error", "")
                errors.append({"field": "body", "message": f"not valid JSON at character {where}: {cause}".rstrip(": ")})
                continue
            fields.append(err)
        errors.extend({"field": p.field or "body", "message": p.message} for p in problems(fields))
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors) or "invalid request"
        return ErrorResponse({"detail": detail, "errors": errors}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> ErrorResponse:
        return ErrorResponse({"detail": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(ClientDisconnect)
    async def _client_left(request: Request, _: ClientDisconnect) -> Response:
        # The client closed the connection before its whole body came (a route that reads the
        # body itself: a dashboard form, slurmrestd's submission). Nobody is left to answer,
        # and it is no fault of ours: no traceback. The server drops what is sent now.
        log.debug("%s %s: the client left before sending the whole body", request.method, request.url.path)
        return Response(status_code=400)


def create_app(ctx: AppContext) -> FastAPI:
    app = FastAPI(
        lifespan=_lifespan,
        title="SCNS-Conductor",
        # Served by api/docs.py with our own copies of their scripts: no CDN.
        docs_url=None,
        redoc_url=None,
        version=__version__,
        description="A batch job scheduler with Slurm's way of working. Every route but /health needs "
        "a token (`Authorization: Bearer <token>`); this document itself is public.",
        # Every route, including those other modules add later, is authenticated (api/auth.py).
        dependencies=[Depends(authenticate), Depends(reject_repeated_query_parameters)],
        responses={
            401: {"model": models.ErrorBody, "description": "No token, or an unknown or revoked one"},
            403: {"model": models.ErrorBody, "description": "The token's user may not do this"},
            413: {"model": models.ErrorBody, "description": "Request body over CONDUCTOR_MAX_BODY_BYTES"},
        },
    )
    app.state.ctx = ctx
    store, settings = ctx.store, ctx.settings

    _install_error_handlers(app)
    document_public_routes(app)
    install_docs(app)

    error_responses: dict[int | str, dict[str, Any]] = {
        400: {"model": models.ErrorBody},
        404: {"model": models.ErrorBody},
        422: {"model": models.ErrorBody},
    }

    # ------------------------------------------------------------------ jobs
    _submit_route(app, ctx, error_responses)
    _dependency_route(app, ctx, error_responses)  # before /jobs/{job_id}, which would take its path

    @app.get("/jobs/stats", response_model=models.StatsResponse)
    def stats() -> Any:
        s = store.stats(live_after=ctx.live_after())
        return models.StatsResponse(
            total_cpus=s.total_cpus,
            used_cpus=s.used_cpus,
            available_cpus=s.available_cpus,
            running_jobs=s.running_jobs,
            pending_jobs=s.pending_jobs,
        )

    @app.get("/jobs/query/{job_id}", response_model=models.QueryResponse, responses=error_responses)
    def query(job_id: str, principal: CurrentPrincipal) -> Any:
        job = _get(job_id)
        # The seed's query carries the output tails: the owner's (or an admin's) only.
        ensure_owner(principal, job.id, job.user_name, "read its output")
        now = utcnow()
        paths = job_paths(job)
        tail = settings.log_tail_bytes
        reader = reader_for(job.uid)
        stdout = read_tail(paths.stdout, tail, reader)
        # One file for both (Slurm's default): its tail is stdout's; stderr has none of its own.
        stderr = read_tail(paths.stderr, tail, reader) if paths.stderr != paths.stdout else None
        return models.QueryResponse(
            job_id=str(job.id),
            state=job.state,
            error_msg=job.error_msg,
            time=models.QueryTime(
                submit_time=iso(job.submit_time),
                start_time=iso(job.start_time),
                end_time=iso(job.end_time),
                eligible_time=iso(job.eligible_time),
                elapsed_time=elapsed_seconds(job, now),
                limit_time=job.time_limit,
            ),
            job_log=models.QueryLog(stdout=stdout, stderr=stderr),
            detail=models.QueryDetail(
                job_name=job.name,
                user=job.user_name,
                partition=job.partition,
                allocated_cpus=job.allocated_cpus,
                allocated_nodes=1 if job.node_list else 0,
                node_list=job.node_list,
                exit_code=job.exit_code,
                work_dir=job.work_dir,
                account=job.account,
                reason=job.reason,
                cpu_ids=job.cpu_ids,
                priority=job.priority,
                array_job_id=job.array_job_id,
                array_task_id=job.array_task_id,
            ),
            usage=job_usage(job),
        )

    @app.post("/jobs/cancel/{job_id}", response_model=models.CancelResponse, responses=error_responses)
    def cancel(job_id: str, request: Request, principal: CurrentPrincipal) -> Any:
        # One job, one array task (123_4) or a whole array (`123_*`).
        result = ctx.jobs.cancel(principal, job_id)
        return models.CancelResponse(job_id=result.job_id, state=result.state, message=result.message)

    page_bound = settings.max_page_size
    default_page = min(1000, page_bound)

    @app.get("/jobs", response_model=models.JobList | models.JobRows, responses=error_responses)
    def list_jobs(
        state: Annotated[str | None, Query(description="Comma separated states")] = None,
        user: Annotated[str | None, Query(description="Comma separated users")] = None,
        name: Annotated[str | None, Query(description="Comma separated job names")] = None,
        partition: Annotated[str | None, Query(description="Comma separated partitions")] = None,
        job_id: Annotated[str | None, Query(description="Comma separated job ids (an array's id selects its tasks)")] = None,
        array_job_id: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
        since: Annotated[
            str | None, Query(description="Jobs still alive at or after this time (ISO 8601, or UNIX seconds)")
        ] = None,
        until: Annotated[
            str | None, Query(description="Jobs submitted at or before this time (ISO 8601, or UNIX seconds)")
        ] = None,
        after: Annotated[
            int | None, Query(ge=0, le=2**63 - 1, description="Only jobs with a larger id: the previous page's `next_after`")
        ] = None,
        offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
        archived: Annotated[
            bool, Query(description="Also the purged jobs kept in the archive (CONDUCTOR_ARCHIVE_DIR): reads its files")
        ] = False,
        total: Annotated[
            bool,
            Query(
                description="Whether to count the matching jobs: false leaves `total` null, for a client "
                "following `next_after`, which needs no count (on PostgreSQL the count of the live jobs "
                "was the larger part of each page of them)",
            ),
        ] = True,
        layout: Annotated[
            Literal["objects", "rows"],
            Query(
                description="With `fields`: `rows` gives each job as a list of its fields' values, in the "
                "order of the page's `fields` (`{\"fields\": [...], \"rows\": [[...], ...]}` in place of "
                "`jobs`), a third of the bytes of objects and less work to write and read",
            ),
        ] = "objects",
        # A default rather than an annotation: the bound is a setting, known only here.
        fields: Annotated[
            str | None,
            Query(
                description="Comma separated fields of a job record: each job then holds only these and "
                "`job_id` (a view that shows a few fields of many jobs reads only what it shows)",
            ),
        ] = None,
        limit: int = Query(
            default_page,
            ge=1,
            description=f"Jobs in this page, at most {page_bound} (CONDUCTOR_MAX_PAGE_SIZE); "
            "follow `next_after` for the rest",
            json_schema_extra={"maximum": page_bound},  # checked below, to name the setting
        ),
    ) -> Any:
        _check_page(limit, page_bound)
        selected = selected_fields(fields)
        _check_layout(layout, selected)
        archive_dir = ctx.settings.archive_dir
        filters: dict[str, Any] = {
            "states": _states(state),
            "users": _csv(user, "user"),
            "names": _csv(name, "name"),
            "partitions": _csv(partition, "partition"),
            "job_ids": [_parse_job_id(j) for j in _csv(job_id, "job_id") or []] if job_id else None,
            "since": _time_param(since, "since"),
            "until": _time_param(until, "until"),
        }
        # The weights read once: the columns read for the priorities and their computation agree.
        # Not read for a page that cannot hold a pending job (a listing of ended ones).
        wants_priority = selected is None or "scheduling_priority" in selected
        pending_listed = not filters["states"] or JobState.PENDING.value in filters["states"]
        multifactor = ctx.priorities.current() if wants_priority and pending_listed else None
        if not archived:
            rows, matching = store.list_jobs(
                **filters,
                array_job_ids=[array_job_id] if array_job_id else None,
                after=after,
                offset=offset,
                limit=limit + 1,  # one more tells whether a next page exists
                columns=columns_of(selected, multifactor=multifactor is not None),
                count=total,
            )
        elif archive_dir is None:
            raise Invalid("no archive of purged jobs is kept here (CONDUCTOR_ARCHIVE_DIR is unset)", field="archived")
        else:
            if array_job_id:
                filters["job_ids"] = [*(filters["job_ids"] or []), array_job_id]
            # Both sources up to the end of this page, merged in id order, then the page.
            live, live_total = store.list_jobs(**filters, after=after, limit=offset + limit + 1, count=total)
            try:
                old, old_total = archived_page(
                    archive_dir.expanduser().resolve(), ArchiveQuery(**filters, after=after), skip=0, take=offset + limit + 1
                )
            except ArchiveError as exc:
                raise StoreUnavailable(str(exc)) from None
            rows = merge_pages(live, old, offset + limit + 1)[offset:]
            matching = live_total + old_total
        next_after = rows[limit - 1].id if len(rows) > limit else None
        now = utcnow()
        page = rows[:limit]
        return job_page(
            page,
            now,
            selected,
            functools.partial(cluster.PriorityView.computed, multifactor=multifactor),
            total=matching if total else None,
            next_after=next_after,
            rows=layout == "rows",
        )

    def _get(job_id: str) -> Job:
        return ctx.jobs.find(job_id)  # 123 or 123_4

    @app.get("/jobs/{job_id}", response_model=models.JobRecord, responses=error_responses)
    def get_job(job_id: str) -> Any:
        job = _get(job_id)
        return job_record(job, utcnow(), ctx.priorities.of([job]).get(job.id))

    @app.get("/jobs/{job_id}/events", response_model=models.JobEvents, responses=error_responses)
    def job_events(job_id: str) -> Any:
        job = _get(job_id)
        return models.JobEvents(
            job_id=str(job.id),
            events=[
                models.JobEvent(
                    id=e.id,
                    time=e.time.isoformat(),
                    from_state=e.from_state,
                    to_state=e.to_state,
                    reason=e.reason,
                    node=e.node,
                    message=e.message,
                )
                for e in store.events(job.id)
            ],
        )

    _explain_routes(app, ctx, error_responses)
    _node_routes(app, ctx)
    _system_routes(app, ctx)
    app.include_router(control.router)
    app.include_router(cluster.router)
    app.include_router(nodes.router)
    app.include_router(accounting.router)
    app.include_router(slurmrestd.router)
    install_dashboard(app, ctx)  # the web pages at / and /ui/ (conductor.web)
    return app


def _submit_route(app: FastAPI, ctx: AppContext, error_responses: dict[int | str, dict[str, Any]]) -> None:
    store = ctx.store

    @app.post(
        "/jobs/submit",
        status_code=201,
        response_model=models.SubmitResponse,
        responses={
            **error_responses,
            201: {"headers": REPLAYED_HEADER_DOC},
            200: {"model": models.SubmitResponse, "description": "test_only: the job would be accepted"},
            422: {"model": models.ErrorBody, "description": "Invalid body, or Idempotency-Key used for another request"},
            429: {"model": models.ErrorBody, "description": "Pending-job limit reached"},
        },
    )
    async def submit(
        body: models.SubmitRequest,
        request: Request,
        response: Response,
        principal: CurrentPrincipal,
        idempotency_key: IdempotencyKey = None,
    ) -> Any:
        # The ordinary submission takes api/fastpath.py; this route answers all the others.
        # FastAPI read the header's first value: a second one is refused here, with a bad key.
        key = None
        if idempotency_key is not None:
            key = idempotency.submission_key(request.headers.getlist(idempotency.HEADER))
        host = request.client.host if request.client else None
        if store.dialect == "sqlite":
            # SQLite has a single writer, so a hop to the thread pool buys no parallelism and
            # costs about a third of a submission's time (measured: 270/s with it, 420/s without).
            return _submit(body, host, principal, key, response)
        # A database over the network may stall: keep the event loop free for other requests.
        return await run_in_threadpool(_submit, body, host, principal, key, response)

    def _submit(
        body: models.SubmitRequest, client_host: str | None, principal: Principal, key: str | None, response: Response
    ) -> Any:
        result = ctx.jobs.submit(principal, body, client_host=client_host, key=key)
        if isinstance(result, Submitted) and result.replayed:
            response.headers[idempotency.REPLAYED_HEADER] = "true"
        return submit_answer(result)


def _dependency_route(app: FastAPI, ctx: AppContext, error_responses: dict[int | str, dict[str, Any]]) -> None:
    @app.get("/jobs/dependencies", response_model=models.DependencyStates, responses=error_responses)
    def dependency_states(
        job_id: Annotated[str, Query(description=f"Comma separated job ids, at most {MAX_DEPENDENCY_IDS}")],
    ) -> Any:
        """Each job's dependency as squeue's %E and scontrol's Dependency= show it: the
        conditions not fulfilled yet, `(unfulfilled)` or `(failed)`, as slurmctld writes them."""
        names = _csv(job_id, "job_id") or []
        ids = []
        for name in names:
            if not name.isascii() or not name.isdigit() or len(name) > 19 or not 0 < int(name) < 2**63:
                raise Invalid(f"'{name[:40]}' is not a job id (a whole number from 1)", field="job_id")
            ids.append(int(name))
        if not ids or len(set(ids)) > MAX_DEPENDENCY_IDS:
            raise Invalid(f"give from 1 to {MAX_DEPENDENCY_IDS} job ids", field="job_id")
        found = ctx.jobs.dependency_states(ids)
        return models.DependencyStates(dependencies={str(i): text for i, text in found.items()})


def _explain_routes(app: FastAPI, ctx: AppContext, error_responses: dict[int | str, dict[str, Any]]) -> None:
    @app.get("/jobs/{job_id}/explain", response_model=models.Explanation, responses=error_responses)
    def explain_job(job_id: str) -> Any:
        """Why a job waits and what would change it, in plain words, from the scheduler's plan."""
        found = ctx.jobs.explain(job_id)
        job, forecast = found.job, found.forecast
        foreseen = forecast is not None and forecast.start != math.inf
        return models.Explanation(
            job_id=str(job.id),
            state=job.state,
            reason=job.reason,
            expected_start_time=(
                datetime.fromtimestamp(forecast.start, UTC).isoformat() if forecast is not None and foreseen else None
            ),
            sched_nodes=forecast.node if forecast is not None and foreseen else None,
            reserved=bool(forecast is not None and forecast.reserved),
            waits_for=[job_id for job_id, _ in forecast.must_end] if forecast is not None else [],
            jobs_ahead=forecast.waiting_ahead if forecast is not None else 0,
            lines=found.lines,
        )


def _node_routes(app: FastAPI, ctx: AppContext) -> None:
    # ----------------------------------------------------------------- nodes
    # GET /nodes and the drain are api/nodes.py's.
    @app.get("/partitions", response_model=models.PartitionList)
    def list_partitions() -> Any:
        return models.PartitionList(partitions=cluster.partition_list(ctx))


def _system_routes(app: FastAPI, ctx: AppContext) -> None:
    store = ctx.store

    # ---------------------------------------------------------------- system
    # Public (api/auth.PUBLIC_PATHS): probes carry no token. It says nothing but "up".
    @app.get("/health", response_model=models.Health, responses={503: {"model": models.Health}})
    def health() -> Any:
        try:
            store.ping()
        except Exception as exc:  # noqa: BLE001 - any failure is "unhealthy", said plainly
            return JSONResponse(
                {"status": "unhealthy", "database": "unreachable", "detail": type(exc).__name__}, status_code=503
            )
        return models.Health(status="ok", database="ok")

    cluster = cluster_registry(store, ctx.live_after)

    # Needs a token unless CONDUCTOR_METRICS_PUBLIC is set (api/auth.py): what it shows (node
    # names, users' pending counts by reason) is no secret to a user, but may be to the world.
    # Its refusals are JSON, as every route's: said here, or the document would give them the
    # route's own text/plain.
    refusal = {"application/json": {"schema": {"type": "object", "properties": {"detail": {"type": "string"}},
                                               "required": ["detail"]}}}
    refusals: dict[int | str, dict[str, Any]] = {
        401: {"description": "No token, or an unknown or revoked one", "content": refusal},
        403: {"description": "The token's user may not do this", "content": refusal},
    }

    @app.get("/metrics", response_class=PlainTextResponse, responses=refusals)
    def metrics() -> Response:
        return Response(exposition(cluster), media_type=METRICS_CONTENT_TYPE)


def serve(ctx: AppContext) -> ASGIApp:
    """The application as served: FastAPI behind three plain ASGI layers.

    The body limit comes first, for every route, and also bounds what the fast path reads;
    chunked bodies without Content-Length are counted too (api/limits.py). Then JSON bodies
    that no decoder should see (too deep, not UTF-8, lone surrogates) are refused with a 400
    naming the field (api/bodies.py). The fast path
    (api/fastpath.py) sits outside FastAPI's own middleware stack, whose layers would cost
    the ordinary submission more than its own work; whatever it does not take goes on to
    FastAPI unchanged.
    """
    app = create_app(ctx)
    fast = SubmitFastPath(app, store=ctx.store, jobs=ctx.jobs, in_thread=ctx.store.dialect != "sqlite")
    return BodyLimit(BodyCheck(fast), max_bytes=ctx.settings.max_body_bytes)
