"""The console's jobs pages (admin): start a fine-tune, follow a job's stage and progress live
(the page polls a small JSON route), read the gate's before and after with intervals, cancel."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse, Response

from memlane.errors import ConfigError, InputError
from memlane.server.console import views
from memlane.server.console.web import (
    HEADERS,
    Admin,
    Console,
    check_form,
    redirect,
    render,
)
from memlane.server.jobs import Job, JobConflict, JobManager

JobId = Annotated[str, PathParam(min_length=1, max_length=64)]
Field = Annotated[str, Form(max_length=4096)]


def routes(router: APIRouter) -> None:
    router.get("/jobs")(jobs_page)
    router.post("/jobs/fine-tune")(start_fine_tune)
    router.get("/jobs/{job_id}")(job_page)
    router.get("/jobs/{job_id}/status.json")(job_status)
    router.post("/jobs/{job_id}/cancel")(cancel)


def _manager(request: Request) -> JobManager:
    manager = getattr(request.app.state, "jobs", None)
    if manager is None:
        raise ConfigError("this server runs no jobs (it was built without a job manager); start it with "
                          "`memlane serve`")
    return manager


def jobs_page(request: Request, who: Admin) -> Response:
    return _jobs_page(request)


def _jobs_page(request: Request, *, form: dict[str, str] | None = None, error: str | None = None,
               status: int = 200) -> Response:
    manager = getattr(request.app.state, "jobs", None)
    return render(request, "jobs.html", status=status, title="Jobs", active="jobs",
                  jobs=manager.list(limit=50) if manager is not None else None,
                  form=form or {"source": "synthetic"}, error=error)


def fine_tune_params(form: dict[str, str]) -> dict[str, Any]:
    """`JobManager.fine_tune`'s arguments from the form's text fields; InputError naming the field."""
    def number(name: str, kind: type) -> Any:
        text = form.get(name, "").strip()
        if not text:
            return None
        try:
            return kind(text)
        except ValueError:
            raise InputError(f"{text!r} is not a{'n integer' if kind is int else ' number'}", field=name,
                             fix="write a number, or leave the field empty for the configured value") from None

    synthetic = form.get("source") == "synthetic"
    users = [u.strip() for u in form.get("users", "").split(",") if u.strip()]
    return {"eval_queries": form.get("eval_queries", "").strip(),
            "labels": None if synthetic else (form.get("labels", "").strip() or None),
            "synthetic": synthetic, "users": users or None, "min_gain": number("min_gain", float),
            "epochs": number("epochs", int), "batch_size": number("batch_size", int),
            "learning_rate": number("learning_rate", float)}


def start_fine_tune(request: Request, who: Admin, eval_queries: Field = "", source: Field = "synthetic",
                    labels: Field = "", users: Field = "", min_gain: Field = "", epochs: Field = "",
                    batch_size: Field = "", learning_rate: Field = "",
                    csrf: Annotated[str, Form(max_length=100)] = "") -> Response:
    """Start a fine-tune; a refused request (a missing file, a job already running) is shown
    beside the form, with what was typed."""
    check_form(request, who, csrf)
    form = {"eval_queries": eval_queries, "source": source, "labels": labels, "users": users,
            "min_gain": min_gain, "epochs": epochs, "batch_size": batch_size, "learning_rate": learning_rate}
    manager = _manager(request)
    try:
        job = manager.fine_tune(**fine_tune_params(form))
    except (InputError, JobConflict, ConfigError) as exc:
        return _jobs_page(request, form=form, error=str(exc), status=409 if isinstance(exc, JobConflict) else 422)
    console: Console = request.app.state.console
    console.note(who.principal, f"started fine-tune job {job.id}")
    return redirect(request, f"/jobs/{job.id}")


def job_page(request: Request, who: Admin, job_id: JobId) -> Response:
    return _job_page(request, _manager(request).get(job_id))


def _job_page(request: Request, job: Job, *, error: str | None = None, status: int = 200) -> Response:
    return render(request, "job.html", status=status, title=f"Job {job.id}", active="jobs", job=job, error=error,
                  bars=gate_bars(job.gate))


def gate_bars(gate: dict[str, Any] | None) -> dict[str, dict[str, float]]:
    """Each gate metric's delta and interval placed on one axis, symmetric around zero."""
    deltas = (gate or {}).get("deltas") or {}
    span = 1.1 * max([abs(d[k]) for d in deltas.values() for k in ("ci_low", "ci_high")] or [0.05])
    return {name: views.ci_bar(d["delta"], d["ci_low"], d["ci_high"], span=span) for name, d in deltas.items()}


def job_status(request: Request, who: Admin, job_id: JobId) -> Response:
    """What the job page polls: state, stage, progress and the log's tail."""
    job = _manager(request).get(job_id)
    body = {"id": job.id, "state": job.state, "stage": job.stage, "progress": job.progress,
            "finished": job.finished, "cancel_requested": job.cancel_requested, "log": job.log,
            "error": job.error}
    return JSONResponse(body, headers=HEADERS)


def cancel(request: Request, who: Admin, job_id: JobId, csrf: Annotated[str, Form(max_length=100)] = "") -> Response:
    check_form(request, who, csrf)
    manager = _manager(request)
    try:
        manager.cancel(job_id)
    except JobConflict as exc:
        return _job_page(request, manager.get(job_id), error=str(exc), status=409)
    console: Console = request.app.state.console
    console.note(who.principal, f"asked job {job_id} to cancel")
    return redirect(request, f"/jobs/{job_id}")
