"""The console's benchmark pages: the reports of the results folder and the uploaded ones, one
report's tables and plots, two reports side by side with paired bootstrap intervals, and the
upload of a report (admin)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi.responses import FileResponse, Response

from memlane.errors import InputError
from memlane.server.console import views
from memlane.server.console.web import Admin, Console, Who, check_form, redirect, render
from memlane.server.console.reports import MAX_UPLOAD_BYTES

ReportId = Annotated[str, Query(min_length=1, max_length=1000)]


def routes(router: APIRouter) -> None:
    router.get("/benchmarks")(benchmarks)
    router.get("/benchmarks/report")(report)
    router.get("/benchmarks/plot")(plot)
    router.get("/benchmarks/compare")(compare)
    router.post("/benchmarks/upload")(upload)


def _reports(request: Request):
    console: Console = request.app.state.console
    return console.reports


def benchmarks(request: Request, who: Who) -> Response:
    return _list_page(request)


def _list_page(request: Request, *, error: str | None = None, status: int = 200) -> Response:
    reports = _reports(request)
    found = reports.list()
    return render(request, "benchmarks.html", status=status, title="Benchmarks", active="benchmarks",
                  reports=found, comparable=[r for r in found if r.comparable], error=error,
                  folder=reports.roots["results"], uploads="uploaded" in reports.roots, max_upload=MAX_UPLOAD_BYTES)


def report(request: Request, who: Who, id: ReportId) -> Response:
    shown = _reports(request).get(id)
    return render(request, "report.html", title=f"Report {shown.name}", active="benchmarks", report=shown)


def plot(request: Request, who: Who, id: ReportId,
         name: Annotated[str, Query(min_length=1, max_length=300)]) -> Response:
    return FileResponse(_reports(request).plot(id, name), media_type="image/png",
                        headers={"Cache-Control": "private, max-age=60", "X-Content-Type-Options": "nosniff"})


def compare(request: Request, who: Who, a: ReportId, b: ReportId) -> Response:
    """Report A and report B side by side: their headlines, B - A on the shared questions with a
    95% paired bootstrap interval per metric, and their plots."""
    reports = _reports(request)
    left, right = reports.get(a), reports.get(b)
    rows, error = [], None
    try:
        rows = reports.compare(a, b)
    except InputError as exc:
        error = str(exc)
    span = max([abs(x) for r in rows for x in (r["ci_low"], r["ci_high"])] or [0.05]) * 1.1
    drawn = [{**r, "bar": views.ci_bar(r["delta"], r["ci_low"], r["ci_high"], span=span)} for r in rows]
    metrics = [k for k in left.headline if k in right.headline]
    return render(request, "compare.html", status=422 if error else 200, title="Compare reports",
                  active="benchmarks", a=left, b=right, rows=drawn, span=span, metrics=metrics, error=error)


def upload(request: Request, who: Admin, file: Annotated[UploadFile, File()],
           csrf: Annotated[str, Form(max_length=100)] = "") -> Response:
    check_form(request, who, csrf)
    console: Console = request.app.state.console
    content = file.file.read(MAX_UPLOAD_BYTES + 1)
    try:
        kept = console.reports.upload(file.filename or "report.json", content)
    except InputError as exc:
        return _list_page(request, error=str(exc), status=422)
    console.note(who.principal, f"uploaded benchmark report {kept.name}")
    from urllib.parse import quote

    return redirect(request, f"/benchmarks/report?id={quote(kept.id, safe='')}")
