"""The admin routes of the server's jobs (see `memlane.server.jobs`): start a fine-tune, a reindex
or an import (202 with the job), list jobs, read one, cancel one. Every route needs an admin."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from fastapi import Depends, FastAPI, Query, Request, Response
from fastapi import Path as PathParam

from memlane.memory import Memory
from memlane.server.auth import Principal, caller
from memlane.server.jobs import JobConflict, JobManager, LiveMemory
from memlane.server.schemas import (
    ErrorResponse,
    FineTuneRequest,
    ImportRequest,
    JobList,
    JobOut,
    ReindexRequest,
)

Caller = Annotated[Principal, Depends(caller)]
ERRORS = {status: {"model": ErrorResponse} for status in (401, 403, 404, 409, 422, 429, 503)}
JobId = Annotated[str, PathParam(min_length=1, max_length=64)]
State = Literal["queued", "running", "succeeded", "refused", "failed", "cancelled"]


def install_jobs(app: FastAPI, memory: Memory | LiveMemory, work_dir: str | Path, *,
                 config_path: str | Path | None = None, workers: int = 1) -> JobManager:
    """Give `app` its jobs: a `JobManager` over `memory`'s store (on app.state.jobs), the routes,
    and a `LiveMemory` as app.state.memory, which a model swap replaces in one step. Jobs that
    a previous server left running are marked failed first (`JobManager.recover`)."""
    from memlane.server import app as server

    manager = JobManager(memory, work_dir, config_path=config_path, workers=workers)
    manager.recover()
    app.state.memory = manager.live
    app.state.jobs = manager
    if not any(issubclass(JobConflict, kind) for kind, _, _ in server.STATUS):
        @app.exception_handler(JobConflict)
        async def conflict(_request: Request, exc: Exception) -> Response:
            return server.error_response(409, "conflict", str(exc), fix=getattr(exc, "fix", None))
    job_routes(app)
    return manager


async def jobs_of(request: Request) -> JobManager:
    return request.app.state.jobs


Jobs = Annotated[JobManager, Depends(jobs_of)]


def job_routes(app: FastAPI) -> None:
    def accepted(job, response: Response) -> JobOut:
        response.headers["Location"] = f"/admin/jobs/{job.id}"
        return JobOut.of(job)

    @app.post("/admin/memory/fine-tune", status_code=202, response_model=JobOut, responses=ERRORS,
              operation_id="start_fine_tune", tags=["jobs"])
    def fine_tune(body: FineTuneRequest, who: Caller, jobs: Jobs, response: Response) -> JobOut:
        """Fine-tune the embedder on this store in the background (labels or synthetic queries);
        the checkpoint replaces the model only if held-out retrieval improves (the gate)."""
        who.require_admin()
        return accepted(jobs.fine_tune(**body.model_dump()), response)

    @app.post("/admin/memory/reindex", status_code=202, response_model=JobOut, responses=ERRORS,
              operation_id="start_reindex", tags=["jobs"])
    def reindex(body: ReindexRequest, who: Caller, jobs: Jobs, response: Response) -> JobOut:
        """Re-embed every memory (with another model, or the configured one) and swap the index in."""
        who.require_admin()
        return accepted(jobs.reindex(model=body.model), response)

    @app.post("/admin/memory/import", status_code=202, response_model=JobOut, responses=ERRORS,
              operation_id="start_import", tags=["jobs"])
    def import_(body: ImportRequest, who: Caller, jobs: Jobs, response: Response) -> JobOut:
        """Add the memories of an export file on the server, all or nothing."""
        who.require_admin()
        return accepted(jobs.import_file(body.path), response)

    @app.get("/admin/jobs", response_model=JobList, responses=ERRORS, operation_id="list_jobs", tags=["jobs"])
    def list_jobs(who: Caller, jobs: Jobs, state: State | None = None,
                  limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> JobList:
        """The store's jobs, newest first."""
        who.require_admin()
        return JobList(results=[JobOut.of(j) for j in jobs.list(state=state, limit=limit)])

    @app.get("/admin/jobs/{job_id}", response_model=JobOut, responses=ERRORS, operation_id="get_job",
             tags=["jobs"])
    def get_job(job_id: JobId, who: Caller, jobs: Jobs) -> JobOut:
        """One job: its state, stage, progress with the time left, log tail, and result."""
        who.require_admin()
        return JobOut.of(jobs.get(job_id))

    @app.delete("/admin/jobs/{job_id}", status_code=202, response_model=JobOut, responses=ERRORS,
                operation_id="cancel_job", tags=["jobs"])
    def cancel_job(job_id: JobId, who: Caller, jobs: Jobs) -> JobOut:
        """Cancel a job: a queued one at once, a running one at its next safe point (409 once it ended)."""
        who.require_admin()
        return JobOut.of(jobs.cancel(job_id))
