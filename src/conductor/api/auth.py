"""Who is calling, and what they may do: bearer tokens, users and job ownership.

Every route of the API is authenticated except `GET /health` (a load balancer's probe) and the
OpenAPI document with its viewer (`/openapi.json`, `/docs`, `/redoc`): the document describes
routes, not data, and tools such as schemathesis and client generators need it before they
hold a token. `GET /metrics` joins them when CONDUCTOR_METRICS_PUBLIC says so (a Prometheus
scraper holds no token), and the web dashboard's pages (`/`, `/ui/...`) check their own session
cookie instead (conductor.web.session). `create_app` installs `authenticate` as a dependency
of the whole application, so a route added later, on the app or on an included router, is
authenticated without doing anything.

A route that needs the caller declares a parameter `principal: CurrentPrincipal` (FastAPI
evaluates `authenticate` once per request and hands the cached result to both) and passes it
to the services, which hold the ownership rule (conductor.services.principal): only a job's
owner or an administrator acts on it or sees its output. Listing jobs (what squeue shows) is
open to every authenticated user, as in Slurm.

Tokens themselves (making, hashing, looking up) are conductor.services.tokens.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from conductor.services.principal import Principal
from conductor.services.tokens import hash_token, lookup, new_token

TOKEN_PREFIX = "cond_"
# Routes that answer without a token. The OpenAPI document and /docs are not API routes (FastAPI
# serves them outside the dependency system), so they need no entry here.
PUBLIC_PATHS = frozenset({"/health"})
# Public only when the settings say so (CONDUCTOR_METRICS_PUBLIC): a scraper may hold no token.
METRICS_PATH = "/metrics"


def is_dashboard(path: str | None) -> bool:
    """The web dashboard's routes (conductor.web): they check their session cookie themselves
    and never accept the cookie on an API route, which keeps the API free of CSRF."""
    return path is not None and (path == "/" or path.startswith("/ui/"))


_USER_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.@-]{0,63}", re.ASCII)  # with fullmatch: `$` takes "bob\n"
# The headers that say who calls. Each is read once (the first), so a second one would be
# ignored without a word: which wins must never be a guess, so two of one are refused.
SINGLE_HEADERS = ("Authorization", "X-SLURM-USER-TOKEN", "X-SLURM-USER-NAME")

bearer_scheme = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    description="A token from `conductor token create` (or $CONDUCTOR_HOME/token): `Authorization: Bearer <token>`.",
)
slurm_token_scheme = APIKeyHeader(
    name="X-SLURM-USER-TOKEN",
    auto_error=False,
    scheme_name="slurm_user_token",
    description="slurmrestd's header; the same tokens as the bearer scheme. X-SLURM-USER-NAME, when sent, "
    "must name the token's user (an administrator's token may name any user and acts as that user).",
)


def unauthorized(detail: str) -> HTTPException:
    return HTTPException(status_code=401, detail=detail, headers={"WWW-Authenticate": "Bearer"})


def forbidden(detail: str) -> HTTPException:
    return HTTPException(status_code=403, detail=detail)


def check_single_headers(request: Request) -> None:
    """400 naming the first of SINGLE_HEADERS the request repeats."""
    for name in SINGLE_HEADERS:
        if len(request.headers.getlist(name)) > 1:
            raise HTTPException(status_code=400, detail=f"{name}: the header is given more than once; send it once")


async def authenticate(
    request: Request,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(bearer_scheme)],
    slurm_token: Annotated[str | None, Security(slurm_token_scheme)],
) -> Principal | None:
    """The app-wide dependency: 401 without a valid token, except on PUBLIC_PATHS.

    `async` although a cache miss reads the database: tokens are cached for a second, so that
    read is rare, and every plain `def` dependency would cost each request a hop to the thread
    pool (they add up to most of the time of a cheap request).
    """
    # The matched route's template, not the raw path: "//health" or a root_path prefix must not
    # turn a private route public, nor a public one private.
    route = request.scope.get("route")
    path = getattr(route, "path", None)
    if path in PUBLIC_PATHS or is_dashboard(path):
        return None
    if path == METRICS_PATH and request.app.state.ctx.settings.metrics_public:
        return None
    check_single_headers(request)
    token = bearer.credentials.strip() if bearer is not None else (slurm_token or "").strip()
    if bearer is not None and slurm_token is not None and slurm_token.strip() != token:
        # Two credentials: using one and ignoring the other would act as a user the client
        # may not have meant. Not authenticated, then (a 401, as every route documents it).
        raise unauthorized("authentication failed: Authorization and X-SLURM-USER-TOKEN carry different tokens; "
                           "send one of them")
    if not token:
        if request.headers.get("authorization"):
            raise unauthorized("authentication failed: the Authorization header must be 'Bearer <token>'")
        raise unauthorized(
            "authentication required: send 'Authorization: Bearer <token>' (or slurmrestd's X-SLURM-USER-TOKEN); "
            "an administrator creates tokens with 'conductor token create --user NAME'"
        )
    principal = lookup(request.app.state.ctx.store, token)
    if principal is None:
        raise unauthorized("authentication failed: the token is unknown or has been revoked")
    named = request.headers.get("x-slurm-user-name")
    if named is not None and named.strip() and named.strip() != principal.user:
        named = named.strip()
        valid = _USER_NAME.fullmatch(named) is not None
        # Echoed only when valid: the header arrives decoded as Latin-1, so UTF-8 text would be
        # shown garbled, and a long one would fill the answer.
        shown = f" '{named}'" if valid else ""
        if not principal.admin:
            raise forbidden(
                f"X-SLURM-USER-NAME{shown} does not match the token's user '{principal.user}'; "
                "only an administrator's token may act for another user"
            )
        if not valid:
            raise HTTPException(
                status_code=400,
                detail="X-SLURM-USER-NAME is not a valid user name: 1 to 64 ASCII letters, digits, "
                "'_', '.', '@' or '-', not starting with '.', '@' or '-'",
            )
        principal = Principal(user=named, admin=False, token_id=principal.token_id, acting_for=principal.user)
    request.state.principal = principal
    return principal


def document_public_routes(app: Any) -> None:
    """Say in the OpenAPI document that PUBLIC_PATHS need no token (`security: []`).

    FastAPI lists the app-wide dependency's schemes on every operation and merges an
    operation's own `security` into them rather than replacing them, so this edits the
    generated document instead.
    """
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        fresh = app.openapi_schema is None
        schema: dict[str, Any] = generate()
        if fresh:
            for path in PUBLIC_PATHS:
                for operation in schema.get("paths", {}).get(path, {}).values():
                    operation["security"] = []
        return schema

    app.openapi = openapi


async def require_principal(principal: Annotated[Principal | None, Depends(authenticate)]) -> Principal:
    """The caller of a route that is not public (the value `authenticate` already computed)."""
    if principal is None:  # only on a public path, whose routes do not ask for a principal
        raise unauthorized("authentication required")
    return principal


CurrentPrincipal = Annotated[Principal, Depends(require_principal)]


__all__ = [
    "CurrentPrincipal",
    "PUBLIC_PATHS",
    "Principal",
    "authenticate",
    "document_public_routes",
    "hash_token",
    "lookup",
    "new_token",
    "require_principal",
]
