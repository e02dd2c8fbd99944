"""Signing in to the dashboard: the API's own tokens, kept in a session cookie.

The cookie holds the token itself, `HttpOnly` (no script reads it), `SameSite=Strict` (no other
site's page sends it) and `Secure` over TLS. Keeping no session state on the server means
every API process accepts the cookie, and revoking the token (`conductor token revoke`) ends
the session at once, as it ends API access. Each changing request (POST) must also carry a
CSRF token derived from the session token by HMAC, which a page of another site cannot know,
and, when the browser says where it comes from, an `Origin` of this very site.
"""

from __future__ import annotations

import hashlib
import hmac

from starlette.requests import Request

from conductor.services.principal import Principal
from conductor.services.tokens import lookup
from conductor.store import Store

COOKIE = "conductor_session"
FLASH = "conductor_flash"  # what the last action did, shown once
MAX_AGE = 12 * 3600
_CSRF_CONTEXT = b"conductor dashboard csrf v1"


def csrf_for(token: str) -> str:
    return hmac.new(token.encode(), _CSRF_CONTEXT, hashlib.sha256).hexdigest()


def session_token(request: Request) -> str | None:
    token = request.cookies.get(COOKIE, "").strip()
    return token or None


def signed_in(request: Request, store: Store) -> tuple[Principal, str] | None:
    """The caller and their CSRF token, when the cookie holds a valid, unrevoked token."""
    token = session_token(request)
    if token is None:
        return None
    principal = lookup(store, token)
    return None if principal is None else (principal, csrf_for(token))


def same_origin(request: Request) -> bool:
    """False when the browser says the request comes from another site's page."""
    origin = request.headers.get("origin")
    if origin is None:  # not every client sends it; the CSRF token still decides
        return True
    host = request.headers.get("host", "")
    return origin in (f"http://{host}", f"https://{host}")


def valid_csrf(request: Request, token: str, given: str | None) -> bool:
    # Bytes: compare_digest refuses a str that is not ASCII, and a form may hold anything.
    return (
        given is not None
        and same_origin(request)
        and hmac.compare_digest(csrf_for(token).encode(), given.encode("utf-8", "surrogateescape"))
    )
