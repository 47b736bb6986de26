"""CSRF protection of the console: every request that changes something (any method but GET and
HEAD) carries the session's CSRF token in an ``X-CSRF-Token`` header, which a page of another site
can neither read nor set on a same-site request; and when the browser says where a request comes
from (``Origin``, ``Sec-Fetch-Site``) it must be this console's own origin. Sign-in has no session
yet: it gets the origin check (against login CSRF). The session cookie is ``SameSite=Strict`` on
top of both."""
from __future__ import annotations

import hmac
from typing import Any

from gateway.leader import is_https

SAFE_METHODS = frozenset({"GET", "HEAD"})
HEADER = "X-CSRF-Token"


class CsrfRefused(Exception):
    code = "InvalidCsrfToken"
    status = 403

    def __init__(self, message: str = "The request lacks this session's CSRF token.") -> None:
        super().__init__(message)
        self.message = message


def same_origin(request: Any) -> bool:
    """False when the browser says the request comes from another site or origin."""
    fetch_site = request.headers.get("Sec-Fetch-Site")
    if fetch_site and fetch_site not in ("same-origin", "none"):
        return False
    origin = request.headers.get("Origin")
    if origin and origin != "null":
        scheme = "https" if is_https(request) else "http"
        return origin == f"{scheme}://{request.headers.get('Host', '')}"
    return origin != "null"


def check_origin(request: Any) -> None:
    if not same_origin(request):
        raise CsrfRefused("The request comes from another site.")


def check(request: Any, session: Any) -> None:
    """Raise CsrfRefused unless a changing request carries the session's token from this origin."""
    if request.method in SAFE_METHODS:
        return
    check_origin(request)
    sent = request.headers.get(HEADER, "")
    if not sent or not hmac.compare_digest(sent.encode(), session.csrf_token.encode()):
        raise CsrfRefused()
