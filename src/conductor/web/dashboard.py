"""The dashboard's routes: sign-in, the overview with the utilisation chart, the queue, the
nodes, a page per job with its output's live tail, and the actions on a job.

Pages are rendered on the server (Jinja2, autoescaped); the only script polls a job's output.
Every action goes through the same job services as the API, with the signed-in token's
principal, so a page allows exactly what the API allows. The routes sit outside the API's
bearer authentication (api/auth.py) and check the session cookie themselves.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Protocol
from urllib.parse import parse_qs, quote, urlencode

from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.concurrency import run_in_threadpool

from conductor.domain.job import Job
from conductor.domain.jobfiles import job_paths
from conductor.domain.states import JobState
from conductor.errors import Invalid, Refusal
from conductor.services.jobs import JobService
from conductor.services.principal import Principal, ensure_owner
from conductor.services.tokens import lookup
from conductor.settings import Settings
from conductor.store import Store, utcnow
from conductor.userfiles import read_tail, reader_for
from conductor.web import views
from conductor.web.charts import CPU_SERIES, JOB_SERIES, line_chart
from conductor.web.session import COOKIE, FLASH, MAX_AGE, same_origin, signed_in, valid_csrf

HERE = Path(__file__).resolve().parent
PAGE_SIZE = 100
LIVE = [JobState.PENDING.value, JobState.RUNNING.value]
ACTIONS = ("cancel", "hold", "release")
SECURITY_HEADERS = {
    # Our own scripts, styles and images only; never framed; forms post only here.
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

ENV = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)


class DashboardContext(Protocol):
    """What the pages reach (conductor.api.app.AppContext provides it)."""

    store: Store
    jobs: JobService
    settings: Settings

    def live_after(self) -> datetime: ...


Session = tuple[Principal, str]


def render(request: Request, template: str, session: Session | None, status: int = 200, **values: Any) -> HTMLResponse:
    flash = read_flash(request)
    html = ENV.get_template(template).render(
        path=request.url.path,
        principal=session[0] if session else None,
        csrf=session[1] if session else "",
        message=flash[1] if flash and flash[0] == "ok" else None,
        error=flash[1] if flash and flash[0] == "err" else None,
        **values,
    )
    response = HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)
    if flash is not None:
        response.delete_cookie(FLASH, path="/", httponly=True, samesite="strict")
    return response


def with_flash(response: Response, kind: str, text: str) -> Response:
    """What an action did, shown once by the next page. In a cookie the server sets rather than
    in the URL, so that no link from elsewhere can make our page say what it likes."""
    value = base64.urlsafe_b64encode(f"{kind}:{text[:1000]}".encode()).decode()
    response.set_cookie(FLASH, value, max_age=60, path="/", httponly=True, samesite="strict")
    return response


def read_flash(request: Request) -> tuple[str, str] | None:
    try:
        kind, _, text = base64.urlsafe_b64decode(request.cookies.get(FLASH, "")).decode().partition(":")
    except ValueError:
        return None
    return (kind, text) if kind in ("ok", "err") and text else None


def to_sign_in(request: Request) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/ui/login?next={quote(target)}", status_code=303, headers=SECURITY_HEADERS)


def _local(target: str | None) -> str:
    """Only a path of this site: never an open redirect."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


async def _form(request: Request) -> dict[str, str]:
    body = (await request.body()).decode("utf-8", "replace")
    try:
        return {k: v[0] for k, v in parse_qs(body, max_num_fields=20).items()}
    except ValueError:  # more fields than any form of ours has
        raise Invalid("form: more than 20 fields; the dashboard's forms have a few", field="form") from None


def install_dashboard(app: FastAPI, ctx: DashboardContext) -> None:
    app.mount("/static/ui", StaticFiles(directory=HERE / "static"), name="ui-assets")
    router = APIRouter(include_in_schema=False)
    _session_routes(router, ctx)
    _page_routes(router, ctx)
    _job_routes(router, ctx)
    app.include_router(router)


def _session_routes(router: APIRouter, ctx: DashboardContext) -> None:
    store = ctx.store

    @router.get("/ui/login")
    def login_page(request: Request, next: str | None = None) -> Response:
        return render(request, "login.html", None, next=_local(next))

    @router.post("/ui/login")
    async def login(request: Request) -> Response:
        form = await _form(request)
        target = _local(form.get("next"))
        if not same_origin(request):
            return render(request, "login.html", None, status=403, next=target, failed="cross-site sign-in refused")
        token = form.get("token", "").strip()
        principal = await run_in_threadpool(lookup, store, token) if token else None
        if principal is None:
            failed = "the token is unknown or has been revoked" if token else "paste an API token"
            return render(request, "login.html", None, status=401, next=target, failed=failed)
        response = RedirectResponse(target, status_code=303, headers=SECURITY_HEADERS)
        response.set_cookie(
            COOKIE,
            token,
            max_age=MAX_AGE,
            path="/",
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
        return response

    @router.post("/ui/logout")
    async def logout(request: Request) -> Response:
        form = await _form(request)
        session = await run_in_threadpool(signed_in, request, store)
        if session is not None and not valid_csrf(request, request.cookies[COOKIE], form.get("csrf")):
            return render(request, "error.html", session, status=403, problem="the form's CSRF token is missing or wrong")
        response = RedirectResponse("/ui/login", status_code=303, headers=SECURITY_HEADERS)
        response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
        return response


def _page_routes(router: APIRouter, ctx: DashboardContext) -> None:
    store = ctx.store

    @router.get("/")
    def overview(request: Request, hours: Annotated[int, Query(ge=1, le=720)] = 6) -> Response:
        session = signed_in(request, store)
        if session is None:
            return to_sign_in(request)
        now = utcnow()
        since = now - timedelta(hours=hours)
        samples = store.samples(since)
        return render(
            request,
            "overview.html",
            session,
            stats=store.stats(live_after=ctx.live_after()),
            hours=hours,
            cpu_chart=line_chart("CPUs", samples, CPU_SERIES, since, now),
            job_chart=line_chart("Jobs", samples, JOB_SERIES, since, now),
            samples=len(samples),
            interval=ctx.settings.sample_interval,
        )

    @router.get("/ui/queue")
    def queue(
        request: Request,
        user: Annotated[str, Query(max_length=64)] = "",
        state: Annotated[str, Query(max_length=16)] = "live",
        partition: Annotated[str, Query(max_length=64)] = "",
        after: Annotated[int | None, Query(ge=0, le=2**63 - 1)] = None,
    ) -> Response:
        session = signed_in(request, store)
        if session is None:
            return to_sign_in(request)
        known = {s.value for s in JobState}
        state = state.strip().upper() if state.strip().lower() not in ("live", "all") else state.strip().lower()
        if state not in known and state not in ("live", "all"):
            problem = f"state: unknown state '{state[:16]}'; expected live, all or one of {', '.join(sorted(known))}"
            return render(request, "error.html", session, status=400, problem=problem)
        for name, value in (("user", user), ("partition", partition)):
            if "\x00" in value:  # as /jobs refuses it: PostgreSQL cannot compare text holding NUL
                return render(request, "error.html", session, status=400, problem=f"{name}: must not contain NUL characters")
        states = LIVE if state == "live" else None if state == "all" else [state]
        found, total = store.list_jobs(
            states=states,
            users=[user.strip()] if user.strip() else None,
            partitions=[partition.strip()] if partition.strip() else None,
            after=after,
            limit=PAGE_SIZE + 1,
        )
        page = found[:PAGE_SIZE]
        next_after = page[-1].id if len(found) > PAGE_SIZE else None
        filters = {"user": user.strip(), "state": state, "partition": partition.strip()}
        partitions = sorted({p for n in store.list_nodes(live_after=ctx.live_after()) for p in n.partitions})
        return render(
            request,
            "queue.html",
            session,
            rows=views.queue_rows(page, utcnow()),
            shown=len(page),
            total=total,
            filters=filters,
            states=["live", "all", *sorted(known)],
            partitions=partitions,
            next_link=f"/ui/queue?{urlencode({**filters, 'after': next_after})}" if next_after is not None else None,
            first_link=f"/ui/queue?{urlencode(filters)}" if after is not None else None,
        )

    @router.get("/ui/nodes")
    def nodes(request: Request) -> Response:
        session = signed_in(request, store)
        if session is None:
            return to_sign_in(request)
        running, _ = store.list_jobs(states=[JobState.RUNNING.value], limit=5000, count=False)
        on_node: dict[str, list[Job]] = {}
        for job in running:
            on_node.setdefault(job.node_list or "", []).append(job)
        listed = store.list_nodes(live_after=ctx.live_after())
        return render(
            request, "nodes.html", session, nodes=listed, on_node=on_node, memory=views.memory, label=views.job_label,
            when=views.when,
        )


def _job_routes(router: APIRouter, ctx: DashboardContext) -> None:
    store, settings = ctx.store, ctx.settings

    @router.get("/ui/jobs/{job_id}")
    def job_page(request: Request, job_id: str) -> Response:
        session = signed_in(request, store)
        if session is None:
            return to_sign_in(request)
        principal = session[0]
        try:
            job = ctx.jobs.find(job_id)
        except Refusal as exc:
            return render(request, "error.html", session, status=exc.status, problem=str(exc))
        owner = principal.may_act_on(job.user_name)
        live = job.state in LIVE
        actions = []
        if owner and live and job.kill_state is None:
            actions.append("cancel")
        if owner and job.state == JobState.PENDING.value:
            actions.append("release" if job.held else "hold")
        return render(
            request,
            "job.html",
            session,
            job=job,
            label=views.job_label(job),
            state=views.shown_state(job),
            fields=views.job_fields(job, utcnow()),
            usage=views.usage(job),
            events=store.events(job.id),
            owner=owner,
            live=live,
            actions=actions,
            when=views.when,
        )

    @router.get("/ui/jobs/{job_id}/output")
    def output(request: Request, job_id: str) -> Response:
        """The tail of the job's output, for its owner: what the job page polls."""
        session = signed_in(request, store)
        if session is None:
            return JSONResponse({"detail": "sign in first"}, status_code=401)
        try:
            job = ctx.jobs.find(job_id)
            ensure_owner(session[0], job.id, job.user_name, "read its output")
        except Refusal as exc:
            return JSONResponse({"detail": str(exc)}, status_code=exc.status)
        paths = job_paths(job)
        reader = reader_for(job.uid)
        stdout = read_tail(paths.stdout, settings.log_tail_bytes, reader)
        stderr = read_tail(paths.stderr, settings.log_tail_bytes, reader) if paths.stderr != paths.stdout else None
        return JSONResponse(
            {"state": views.shown_state(job), "live": job.state in LIVE, "stdout": stdout, "stderr": stderr},
            headers={"Cache-Control": "no-store"},
        )

    @router.post("/ui/jobs/{job_id}/{action}")
    async def act(request: Request, job_id: str, action: str) -> Response:
        form = await _form(request)
        session = await run_in_threadpool(signed_in, request, store)
        if session is None:
            return to_sign_in(request)
        if not valid_csrf(request, request.cookies[COOKIE], form.get("csrf")):
            return render(request, "error.html", session, status=403, problem="the form's CSRF token is missing or wrong")
        if action not in ACTIONS:
            return render(request, "error.html", session, status=404, problem=f"no action '{action[:20]}'")
        run: Callable[[Principal, str], Any] = getattr(ctx.jobs, action)
        page = f"/ui/jobs/{quote(job_id)}"
        try:
            result = await run_in_threadpool(run, session[0], job_id)
        except Refusal as exc:
            return with_flash(RedirectResponse(page, status_code=303, headers=SECURITY_HEADERS), "err", str(exc))
        return with_flash(RedirectResponse(page, status_code=303, headers=SECURITY_HEADERS), "ok", result.message)
