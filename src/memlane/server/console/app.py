"""The console's frame: `install_console` mounts it on the server app, with the sign-in routes;
the pages come from `pages`, `documents`, `benchmarks` and `jobs`, the plumbing they share from `web`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

from fastapi import APIRouter, FastAPI, Form, Request
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, select_autoescape

from memlane.errors import NotFoundError
from memlane.server.auth import Unauthorized
from memlane.server.console.reports import Reports
from memlane.server.console.sessions import COOKIE, LIFETIME_S, Sessions
from memlane.server.console.views import human_bytes
from memlane.server.console.web import (
    HERE,
    PREFIX,
    Console,
    ConsoleRoute,
    Who,
    check_form,
    check_same_origin,
    format_number,
    redirect,
    render,
    safe_next,
)

if TYPE_CHECKING:
    from memlane.store import Store


def install_console(app: FastAPI, records: "Store", *, reports_dir: str | Path = "benchmarks/results",
                    upload_dir: str | Path | None = None, session_lifetime_s: float = LIFETIME_S) -> Console:
    """Mount the web console on `app` at /console. `records` is a store with the "service"
    capability (API keys, jobs and console sessions live there). `reports_dir` is the folder of
    benchmark reports shown (relative to the working directory); uploaded reports go to
    `upload_dir` (default: the jobs' folder/reports; with neither, uploads are refused)."""
    from memlane.server.keys import KeyRing

    if upload_dir is None and getattr(app.state, "jobs", None) is not None:
        upload_dir = Path(app.state.jobs.work_dir) / "reports"
    sessions = Sessions(records, KeyRing(records), lifetime_s=session_lifetime_s) if app.state.authenticate else None
    env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(default=True),
                      trim_blocks=True, lstrip_blocks=True)
    env.filters["bytes"] = human_bytes
    env.filters["num"] = lambda value, digits=3: format_number(value, f".{digits}f")
    env.filters["signed"] = lambda value, digits=3: format_number(value, f"+.{digits}f")
    console = Console(records, sessions, Reports(reports_dir, upload_dir), env)
    app.state.console = console
    app.mount(f"{PREFIX}/static", StaticFiles(directory=HERE / "static"), name="console-static")

    from memlane.server.console import benchmarks, documents, jobs, pages

    router = APIRouter(prefix=PREFIX, route_class=ConsoleRoute, include_in_schema=False)
    _sign_in_routes(router)
    pages.routes(router)
    documents.routes(router)
    benchmarks.routes(router)
    jobs.routes(router)

    @router.get("/{path:path}")
    def unknown(request: Request, who: Who, path: str) -> Response:
        raise NotFoundError(f"the console has no page /console/{path}")

    app.include_router(router)
    return console


def _sign_in_routes(router: APIRouter) -> None:
    @router.get("")
    @router.get("/")
    def home(request: Request) -> Response:
        return redirect(request, "/overview")

    @router.get("/sign-in")
    def sign_in_page(request: Request, next: str | None = None) -> Response:
        console: Console = request.app.state.console
        if console.sessions is None or console.sessions.resolve(request.cookies.get(COOKIE)) is not None:
            return redirect(request, safe_next(next))
        return render(request, "sign_in.html", title="Sign in", next=next or "", error=None)

    @router.post("/sign-in")
    def sign_in(request: Request, api_key: Annotated[str, Form(max_length=400)] = "",
                next: Annotated[str, Form(max_length=2000)] = "") -> Response:
        console: Console = request.app.state.console
        check_same_origin(request)
        if console.sessions is None:
            return redirect(request, safe_next(next))
        try:
            principal = request.app.state.authenticate(api_key.strip() or None)
            if principal.key_id is not None:
                request.app.state.limiter.check(principal.key_id, principal.rate)
        except Unauthorized as exc:
            return render(request, "sign_in.html", status=401, title="Sign in", next=next, error=str(exc))
        token = console.sessions.open(principal)
        console.note(principal, f"signed in ({principal.role} key)")
        response = redirect(request, safe_next(next))
        response.set_cookie(COOKIE, token, max_age=int(console.sessions.lifetime_s), path=PREFIX, httponly=True,
                            samesite="strict", secure=request.url.scheme == "https")
        return response

    @router.post("/sign-out")
    def sign_out(request: Request, who: Who, csrf: Annotated[str, Form(max_length=100)] = "") -> Response:
        console: Console = request.app.state.console
        check_form(request, who, csrf)
        if console.sessions is not None:
            console.sessions.close(request.cookies.get(COOKIE))
            console.note(who.principal, "signed out")
        response = redirect(request, "/sign-in")
        response.delete_cookie(COOKIE, path=PREFIX)
        return response
