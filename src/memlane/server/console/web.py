"""The console's request plumbing, shared by its pages: the signed-in caller (`signed`, rate-
limited like an API request), admin pages, form checks, rendering a Jinja2 template with the
security headers, and the HTML error page a library error becomes (with the status the REST API
would answer)."""

from __future__ import annotations

import hmac
import secrets
import threading
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Callable
from urllib.parse import quote, urlsplit

from fastapi import Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from jinja2 import Environment
from starlette.exceptions import HTTPException

from memlane.errors import MemlaneError
from memlane.server.auth import OPEN, Forbidden, Principal
from memlane.server.console.reports import Reports
from memlane.server.console.sessions import COOKIE, Sessions

if TYPE_CHECKING:
    from memlane.memory import Memory
    from memlane.store import Store


PREFIX = "/console"
HERE = Path(__file__).resolve().parent
HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self'; style-src 'self'; script-src 'self'; "
                               "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
NAV = (("overview", "Overview"), ("memories", "Memories"), ("documents", "Documents"), ("search", "Search"),
       ("nodes", "Nodes"),
       ("benchmarks", "Benchmarks"), ("jobs", "Jobs"))
ACTIVITY = 200  # console actions kept in memory for the overview


class SignInFirst(Exception):
    """The browser has no live session: it is sent to the sign-in page."""


@dataclass(frozen=True)
class Signed:
    """The caller of a console request and the token its forms must carry."""

    principal: Principal
    csrf: str


class Console:
    """What the console's routes share: the store's service records, sessions, reports, templates,
    and a log of the actions taken through the console (sign-ins, node edits, jobs, uploads)."""

    def __init__(self, records: "Store", sessions: Sessions | None, reports: Reports, env: Environment) -> None:
        self.records = records
        self.sessions = sessions
        self.reports = reports
        self.env = env
        self.open_csrf = secrets.token_hex(16)  # the form token under --no-auth (no sessions)
        self._activity: deque[dict[str, Any]] = deque(maxlen=ACTIVITY)
        self._lock = threading.Lock()

    def note(self, who: Principal, text: str) -> None:
        """Remember an action for the overview's recent activity (key id, never a token)."""
        with self._lock:
            self._activity.appendleft({"at": utc_now(), "what": "console", "key_id": who.key_id or "no-auth",
                                       "text": text})

    def activity(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._activity)


def format_number(value: Any, spec: str) -> str:
    """A number for a table cell; a dash for a value that is missing or not a number."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "–"
    return format(value, spec)


# -- the caller -------------------------------------------------------------------------------------


def signed(request: Request) -> Signed:
    """The caller of a console request: its session's key (every request is an admin under
    --no-auth), after one token of that key's rate limit. Sends the browser to sign in otherwise."""
    console: Console = request.app.state.console
    if console.sessions is None:
        who = Signed(OPEN, console.open_csrf)
    else:
        session = console.sessions.resolve(request.cookies.get(COOKIE))
        if session is None:
            raise SignInFirst()
        who = Signed(session.principal, session.csrf)
        request.state.key_id = who.principal.key_id  # for the access log
    request.state.console_who = who
    if who.principal.key_id is not None:
        request.app.state.limiter.check(who.principal.key_id, who.principal.rate)
    return who


Who = Annotated[Signed, Depends(signed)]


def admin(request: Request) -> Signed:
    """`signed`, for an admin page: a tenant key gets the 403 page."""
    who = signed(request)
    if not who.principal.is_admin:
        raise Forbidden("this page needs an admin API key; sign in with one (`memlane keys create --role admin`)")
    return who


Admin = Annotated[Signed, Depends(admin)]


def check_form(request: Request, who: Signed, token: str) -> None:
    """A form posted by a console page of this session: its token matches, and it comes from this
    site. Refused otherwise (a stale page, or a form on another site posting here)."""
    check_same_origin(request)
    if not isinstance(token, str) or not hmac.compare_digest(token.encode(), who.csrf.encode()):
        raise Forbidden("this form is stale or did not come from this console: reload the page and send it again")


def check_same_origin(request: Request) -> None:
    origin = request.headers.get("origin")
    if origin and origin != "null" and urlsplit(origin).netloc != request.headers.get("host"):
        raise Forbidden("a form from another site was refused")


# -- pages ------------------------------------------------------------------------------------------


def render(request: Request, template: str, *, status: int = 200, **context: Any) -> HTMLResponse:
    """A console page: `template` with the caller, the navigation and the form token."""
    console: Console = request.app.state.console
    who: Signed | None = getattr(request.state, "console_who", None)
    base = request.scope.get("root_path", "") + PREFIX
    html = console.env.get_template(template).render(
        request=request, base=base, who=who.principal if who else None, csrf=who.csrf if who else "",
        nav=NAV, signs_in=console.sessions is not None, **context)
    return HTMLResponse(html, status_code=status, headers=HEADERS)


def redirect(request: Request, path: str) -> RedirectResponse:
    """See other: a console path (after a form, or to sign in)."""
    return RedirectResponse(request.scope.get("root_path", "") + PREFIX + path, status_code=303)


def memory_of(request: Request) -> "Memory":
    return request.app.state.memory


def current(memory: Any) -> "Memory":
    """The Memory behind a server's `LiveMemory` (for plain attributes such as its embedder)."""
    return getattr(memory, "current", memory)


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class ConsoleRoute(APIRoute):
    """A console route: errors become HTML pages (or JSON for a .json route), and a browser
    without a session is sent to sign in and brought back."""

    def get_route_handler(self) -> Callable:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except SignInFirst:
                if request.url.path.endswith(".json"):
                    return JSONResponse({"error": {"type": "unauthorized", "message": "sign in again"}}, 401)
                back = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                return redirect(request, f"/sign-in?next={quote(back, safe='')}")
            except (MemlaneError, RequestValidationError, HTTPException) as exc:
                return error_page(request, exc)

        return route


def error_page(request: Request, exc: Exception) -> Response:
    from memlane.server.app import STATUS, error_response

    status, kind = 500, "internal"
    message = str(exc)
    if isinstance(exc, RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("query", "body", "path"))
        status, kind, message = 422, "input", f"{where or 'request'}: {first.get('msg', 'invalid request')}"
    elif isinstance(exc, HTTPException):
        status, kind, message = exc.status_code, "input", str(exc.detail)
    else:
        for error, code, name in STATUS:
            if isinstance(exc, error):
                status, kind = code, name
                break
    if request.url.path.endswith(".json"):
        return error_response(status, kind, message)
    titles = {401: "Sign in again", 403: "Not for this key", 404: "Not found", 409: "Conflict",
              422: "Invalid input", 429: "Too many requests"}
    response = render(request, "error.html", status=status, title=titles.get(status, "Error"), message=message,
                      kind=kind)
    if status == 429 and hasattr(exc, "retry_after"):
        response.headers["Retry-After"] = str(max(1, round(exc.retry_after)))
    return response


# -- signing in and out -----------------------------------------------------------------------------


def safe_next(target: str | None) -> str:
    """Where to go after signing in: a console path of this site, never another site."""
    if not target or not target.startswith(PREFIX + "/") or "\\" in target or target.startswith(PREFIX + "/sign-"):
        return "/overview"
    return target.removeprefix(PREFIX)


