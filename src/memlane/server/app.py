"""The REST server: each route a few lines over `Memory`, run in FastAPI's threadpool (the library
is synchronous and thread-safe; there is no async copy of it). Every request is authenticated to
a `Principal`, whose key decides which users it may name, and held to its key's rate limit.
Errors have one JSON shape (`schemas.ErrorResponse`), with memlane's error tree mapped to status
codes. `ops` adds the probes, the metrics and the access log; `run` serves the app with uvicorn."""

from __future__ import annotations

import collections.abc
import functools
import gc
import logging
import math
import os
import types
import typing
from contextlib import asynccontextmanager
from typing import Annotated, Any, AsyncIterator, Callable, Iterator, Sequence

import anyio.to_thread
from fastapi import Depends, FastAPI, File, Form, Query, Request, UploadFile
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException

from memlane.config import ServerConfig
from memlane.errors import (
    ConfigError,
    InputError,
    LLMError,
    MemlaneError,
    ModelMismatchError,
    NotFoundError,
    RateLimitError,
    StoreError,
)
from memlane.memory import Memory
from memlane.server import ops
from memlane.server.auth import (
    Authenticate,
    AuthenticateCached,
    Caller,
    Forbidden,
    Principal,
    Unauthorized,
    caller,
)
from memlane.server.jobs import JobConflict
from memlane.server.ratelimit import RateLimiter
from memlane.server.uploads import add_uploaded
from memlane.server.schemas import (
    AddRequest,
    AddResponse,
    Count,
    DocumentCategory,
    DocumentReportOut,
    DocumentRequest,
    ErrorResponse,
    HistoryEventOut,
    HitOut,
    MemoryOut,
    NodeOut,
    NodeVersion,
    Page,
    RetentionRequest,
    SearchRequest,
    SearchResponse,
    StatsOut,
    UpdateRequest,
)

__all__ = ["Authenticate", "Caller", "Principal", "caller", "create_app", "error_response"]

# The library's errors, most specific first, as (status, type) of the JSON error body.
STATUS: list[tuple[type[Exception], int, str]] = [
    (Unauthorized, 401, "unauthorized"),
    (Forbidden, 403, "forbidden"),
    (NotFoundError, 404, "not_found"),
    (InputError, 422, "input"),
    (ModelMismatchError, 409, "model_mismatch"),
    (LLMError, 502, "llm"),
    (StoreError, 503, "store"),
    (ConfigError, 500, "config"),
    (RateLimitError, 429, "rate_limited"),
    (JobConflict, 409, "conflict"),
]
LOG = logging.getLogger("memlane.server")
ERRORS = {status: {"model": ErrorResponse} for status in (401, 403, 404, 409, 413, 422, 429, 502, 503)}


def error_response(status: int, kind: str, message: str, *, field: str | None = None, fix: str | None = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    body = {"error": {"type": kind, "message": message, "field": field, "fix": fix}}
    return JSONResponse(body, status_code=status, headers=headers)


class BodyLimit:
    """Refuses a request body past `max_bytes` with 413: by its Content-Length before reading
    anything, else while reading it (a streamed body is read up to the limit, then handed on as
    it came), so an oversized request never sits whole in memory."""

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or ()).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await self._refuse(scope, receive, send)
            return
        messages, size = [], 0
        while True:
            message = await receive()
            messages.append(message)
            size += len(message.get("body", b""))
            if size > self.max_bytes:
                await self._refuse(scope, receive, send)
                return
            if message["type"] != "http.request" or not message.get("more_body"):
                break
        pending = iter(messages)

        async def replay() -> dict:
            return next(pending, None) or await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, scope: dict, receive: Callable, send: Callable) -> None:
        response = error_response(413, "input", f"the request body is larger than {self.max_bytes:,} bytes",
                                  field="body", fix="send less per request (several add calls), or raise "
                                                    "limits.max_request_bytes in the server's config")
        await response(scope, receive, send)


def create_app(memory: Memory, authenticate: Authenticate | None = None, *, records: Any = None,
               on_shutdown: Sequence[Callable[[], None]] = (), workers: int = 1,
               owns_process: bool = False, authenticate_cached: AuthenticateCached | None = None) -> FastAPI:
    """The server over an open `Memory`. `authenticate` maps a request's bearer token to its
    caller (`KeyRing.authenticate`); None serves every request as an admin (only for --no-auth
    on loopback). `records`, a store with the "service" capability, feeds the jobs metric.
    `on_shutdown` runs when the server stops, after the requests in flight have finished.
    `workers`, the server processes sharing this machine, sizes the searches run at once. With
    `owns_process` (`memlane serve`), what is loaded at start-up is frozen out of the garbage
    collector's full passes (`gc.freeze`), a choice for the whole process. `authenticate_cached`
    (`KeyRing.authenticate_cached`) answers known keys on the event loop; others, or all without
    it, are checked in the thread pool."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # Sync routes run in anyio's thread pool; its limiter queues the rest in arrival order.
        anyio.to_thread.current_default_thread_limiter().total_tokens = memory.config.server.threads
        try:  # before the first request, not in it: the first searches of a new worker waited 8 s
            await anyio.to_thread.run_sync(memory.warm_up)
        except Exception as exc:  # noqa: BLE001 - searches will try again and report it themselves
            LOG.warning("the embedding model did not load at start (%s: %s); searches will try again",
                        type(exc).__name__, exc)
        if owns_process:
            # What is loaded by now (the model, its libraries: about 460,000 objects) lives as long
            # as the process. Frozen, it is left out of the cyclic collector's full passes, each of
            # which otherwise stopped every request of the worker for 100-400 ms (measured under load).
            gc.collect()
            gc.freeze()
        yield
        for close in on_shutdown:
            close()

    app = FastAPI(title="memlane", version=_version(), lifespan=lifespan,
                  dependencies=[Depends(refuse_repeated_scalars)],
                  description="Long-term memory for LLM agents: add, search, list, update, delete.")
    app.state.memory = memory
    app.state.search_threads = search_threads(memory.config.server, workers)
    app.state.authenticate = authenticate
    app.state.authenticate_cached = authenticate_cached if authenticate is not None else None
    app.state.limiter = RateLimiter()

    @app.exception_handler(MemlaneError)
    async def library_error(_request: Request, exc: Exception) -> JSONResponse:
        for kind, status, name in STATUS:
            if isinstance(exc, kind):
                headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
                if isinstance(exc, RateLimitError):
                    headers = {"Retry-After": str(max(1, math.ceil(exc.retry_after)))}
                return error_response(status, name, str(exc), field=getattr(exc, "field", None),
                                      fix=getattr(exc, "fix", None), headers=headers)
        return error_response(500, "internal", "internal error")

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(part) for part in first.get("loc", ()) if part != "body")
        return error_response(422, "input", f"{where or 'request'}: {first.get('msg', 'invalid request')}",
                              field=where or None, fix="see the schema of this route at /docs")

    @app.exception_handler(HTTPException)
    async def http_error(_request: Request, exc: HTTPException) -> JSONResponse:
        if exc.status_code == 400:  # a body that is not JSON text at all: invalid input, like malformed JSON
            return error_response(422, "input", f"body: {exc.detail}", field="body",
                                  fix="send a JSON body encoded as UTF-8")
        # A path no route matches is "no_route", apart from a memory that is not there ("not_found"):
        # a client pointed at the wrong URL must not read it as "no such memory".
        kind = {401: "unauthorized", 403: "forbidden", 404: "no_route"}.get(
            exc.status_code, "internal" if exc.status_code >= 500 else "input")
        return error_response(exc.status_code, kind, str(exc.detail), headers=exc.headers)

    @app.exception_handler(Exception)
    async def unexpected(_request: Request, exc: Exception) -> JSONResponse:
        LOG.error("unexpected %s in a request", type(exc).__name__, exc_info=exc)
        return error_response(500, "internal", "internal error; the server log has the details")

    app.add_middleware(BodyLimit, max_bytes=memory.config.limits.max_request_bytes)
    _memory_routes(app)
    _document_routes(app)
    _lifecycle_routes(app)
    _node_routes(app)
    ops.install(app, records)
    return app


async def refuse_repeated_scalars(request: Request) -> None:
    """A query parameter that takes one value but is given several (`user_id=a&user_id=b`) is
    refused: silently keeping one of them would let a caller believe another one was used.
    (Dependencies that do no I/O are async, so they run on the event loop, not in the pool.)"""
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    if dependant is None:
        return
    for field in _query_fields(dependant):
        if not _takes_many(field.field_info.annotation) and len(request.query_params.getlist(field.alias)) > 1:
            raise InputError(f"query parameter {field.alias!r} is given more than once but takes one value",
                             field=field.alias, fix=f"pass {field.alias} once")


def _query_fields(dependant: Any) -> Iterator[Any]:
    yield from dependant.query_params
    for sub in dependant.dependencies:
        yield from _query_fields(sub)


def _takes_many(annotation: Any) -> bool:
    """Whether a parameter's type (through Optional and Annotated) is a list-like of values."""
    origin = typing.get_origin(annotation)
    if origin in (list, set, tuple, frozenset, collections.abc.Sequence):
        return True
    return any(_takes_many(arg) for arg in typing.get_args(annotation)
               if origin in (typing.Union, types.UnionType, typing.Annotated))


def memory_of(request: Request) -> Memory:
    return request.app.state.memory


def search_threads(server: ServerConfig, workers: int) -> int:
    """Searches one worker runs at once: `server.search_threads`, else its share of the cores."""
    if server.search_threads is not None:
        return server.search_threads
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, cores // max(1, workers))


def _search_slots(app: FastAPI) -> anyio.CapacityLimiter:
    """The searches' own share of the thread pool, made on first use (on the event loop)."""
    slots = getattr(app.state, "search_slots", None)
    if slots is None:
        slots = app.state.search_slots = anyio.CapacityLimiter(app.state.search_threads)
    return slots


async def _memory_dependency(request: Request) -> Memory:  # async: no trip through the thread pool
    return memory_of(request)


Mem = Annotated[Memory, Depends(_memory_dependency)]


def _memory_routes(app: FastAPI) -> None:
    @app.post("/v1/memories", status_code=201, response_model=AddResponse, responses=ERRORS,
              operation_id="add_memories", tags=["memories"])
    def add(body: AddRequest, who: Caller, memory: Mem) -> AddResponse:
        """Remember messages of one conversation (or one text): each turn becomes a memory."""
        messages: Any = body.messages if isinstance(body.messages, str) else [
            m.model_dump(exclude_none=True) for m in body.messages]
        records = memory.add(messages, user_id=who.user(body.user_id), agent_id=body.agent_id,
                             session_id=body.session_id, session_date=body.session_date,
                             metadata=body.metadata, category=body.category)
        return AddResponse(results=[MemoryOut.of(r) for r in records])

    @app.post("/v1/memories/search", response_model=SearchResponse, responses=ERRORS,
              operation_id="search_memories", tags=["memories"])
    async def search(body: SearchRequest, who: Caller, memory: Mem, request: Request) -> SearchResponse:
        """A user's memories most relevant to a question, each optionally with why it was found."""
        # Searches are CPU work with a pool of their own, sized to the cores: more at once only
        # makes each wait longer, and other requests (an add waiting on an LLM) keep their own pool.
        run = functools.partial(memory.search, body.query, user_id=who.user(body.user_id), limit=body.limit,
                                filters=body.filters, now=body.now, explain=body.explain, as_of=body.as_of,
                                group_by=body.group_by)
        hits = await anyio.to_thread.run_sync(run, limiter=_search_slots(request.app))
        return SearchResponse(results=[HitOut.of(h) for h in hits])

    @app.get("/v1/memories", response_model=Page, responses=ERRORS, operation_id="list_memories",
             tags=["memories"])
    def list_memories(who: Caller, memory: Mem,
                      user_id: Annotated[str | None, Query(min_length=1, max_length=512)] = None,
                      limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
                      cursor: Annotated[str | None, Query(max_length=32)] = None,
                      node_type: Annotated[list[str] | None, Query(max_length=100)] = None,
                      category: Annotated[list[str] | None, Query(max_length=10)] = None,
                      agent_id: Annotated[list[str] | None, Query(max_length=100)] = None,
                      session_id: Annotated[list[str] | None, Query(max_length=1000)] = None,
                      speaker: Annotated[list[str] | None, Query(max_length=100)] = None,
                      date_from: Annotated[str | None, Query(max_length=64)] = None,
                      date_to: Annotated[str | None, Query(max_length=64)] = None,
                      as_of: Annotated[str | None, Query(max_length=64)] = None) -> Page:
        """One page of a user's memories, oldest first; pass next_cursor back for the next. A filter
        given several times (node_type=turn&node_type=fact) keeps memories matching any value."""
        filters = {k: v for k, v in {"node_type": node_type, "category": category, "agent_id": agent_id,
                                     "session_id": session_id, "speaker": speaker, "date_from": date_from,
                                     "date_to": date_to, "as_of": as_of}.items()
                   if v is not None}
        page = memory.get_all(who.user(user_id), limit=limit, cursor=cursor, filters=filters or None)
        return Page(results=[MemoryOut.of(r) for r in page.records], next_cursor=page.next_cursor)

    @app.get("/v1/memories/{memory_id}", response_model=MemoryOut, responses=ERRORS, operation_id="get_memory",
             tags=["memories"])
    def get(memory_id: str, who: Caller, memory: Mem,
            user_id: Annotated[str | None, Query(min_length=1, max_length=512)] = None) -> MemoryOut:
        """One memory by id (404 when the user has none with it)."""
        record = memory.get(memory_id, user_id=who.user(user_id))
        if record is None:
            raise NotFoundError(f"no memory with id {memory_id} for this user")
        return MemoryOut.of(record)

    @app.put("/v1/memories/{memory_id}", response_model=MemoryOut, responses=ERRORS,
             operation_id="update_memory", tags=["memories"])
    def update(memory_id: str, body: UpdateRequest, who: Caller, memory: Mem) -> MemoryOut:
        """Replace a memory's text (re-embedded; the old text stays in its history)."""
        return MemoryOut.of(memory.update(memory_id, body.text, user_id=who.user(body.user_id)))

    @app.delete("/v1/memories/{memory_id}", status_code=204, responses=ERRORS, operation_id="delete_memory",
                tags=["memories"])
    def delete(memory_id: str, who: Caller, memory: Mem,
               user_id: Annotated[str | None, Query(min_length=1, max_length=512)] = None) -> Response:
        """Forget one memory (its history keeps a DELETE event)."""
        memory.delete(memory_id, user_id=who.user(user_id))
        return Response(status_code=204)

    @app.get("/v1/memories/{memory_id}/history", response_model=list[HistoryEventOut], responses=ERRORS,
             operation_id="memory_history", tags=["memories"])
    def history(memory_id: str, who: Caller, memory: Mem,
                user_id: Annotated[str | None, Query(min_length=1, max_length=512)] = None) -> list[HistoryEventOut]:
        """Every add, update and delete of one memory, oldest first."""
        return [HistoryEventOut.of(e) for e in memory.history(memory_id, user_id=who.user(user_id))]

    @app.delete("/v1/users/{user_id:path}/memories", response_model=Count, responses=ERRORS,
                operation_id="delete_user_memories", tags=["users"])
    def delete_user(user_id: str, who: Caller, memory: Mem) -> Count:
        """Forget every memory of a user."""
        return Count(count=memory.delete_all(who.user(user_id)))

    @app.get("/v1/stats", response_model=StatsOut, responses=ERRORS, operation_id="store_stats", tags=["admin"])
    def stats(who: Caller, memory: Mem) -> StatsOut:
        """Counts across the whole store (admin)."""
        who.require_admin()
        return StatsOut.of(memory.stats())


DocumentPath = Annotated[str, PathParam(min_length=1, max_length=512, description=(
    "The document's path as it was added: 'notes/plan.md', or the member path inside an uploaded archive."))]


def _document_routes(app: FastAPI) -> None:
    @app.post("/v1/documents", response_model=DocumentReportOut, responses=ERRORS, operation_id="add_documents",
              tags=["documents"])
    def add_documents(who: Caller, memory: Mem,
                      files: Annotated[list[UploadFile], File(description=(
                          "One or more documents (.md, .rst, .txt, .html), or one archive of them (.tar, .tar.gz, "
                          ".tar.xz, .zip). Each is named by its file name, or its path inside the archive."))],
                      user_id: Annotated[str | None, Form(min_length=1, max_length=512)] = None,
                      category: Annotated[DocumentCategory, Form()] = "semantic",
                      collection: Annotated[str | None, Form(min_length=1, max_length=256, description=(
                          "What the upload is synced as: uploading the same collection again adds, changes and "
                          "removes its documents. Default: the file's name (several files must name one)."))]
                      = None) -> DocumentReportOut:
        """Remember uploaded documents: each becomes a document memory and one memory per section
        chunk. Only changed chunks are embedded again; files it cannot read are listed as skipped."""
        return DocumentReportOut.of(add_uploaded(memory, files, user_id=who.user(user_id), category=category,
                                                 collection=collection))

    @app.get("/v1/documents", response_model=Page, responses=ERRORS, operation_id="list_documents",
             tags=["documents"])
    def list_documents(who: Caller, memory: Mem,
                       user_id: Annotated[str | None, Query(min_length=1, max_length=512)] = None,
                       limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
                       cursor: Annotated[str | None, Query(max_length=32)] = None) -> Page:
        """One page of a user's documents (their document-level memories: title, path in
        metadata.source, chunk count), oldest first; pass next_cursor back for the next."""
        page = memory.get_all(who.user(user_id), limit=limit, cursor=cursor, filters={"node_type": "document"})
        return Page(results=[MemoryOut.of(r) for r in page.records], next_cursor=page.next_cursor)

    @app.put("/v1/documents/{path:path}", response_model=DocumentReportOut, responses=ERRORS,
             operation_id="put_document", tags=["documents"])
    def put_document(path: DocumentPath, body: DocumentRequest, who: Caller, memory: Mem) -> DocumentReportOut:
        """Remember one document given as its text, under this path (its extension gives the format);
        sending the same path again replaces it, re-embedding only the chunks that changed."""
        return DocumentReportOut.of(memory.add_document(path, body.content, user_id=who.user(body.user_id),
                                                        category=body.category))

    @app.delete("/v1/documents/{path:path}", response_model=Count, responses=ERRORS, operation_id="delete_document",
                tags=["documents"])
    def delete_document(path: DocumentPath, who: Caller, memory: Mem,
                        user_id: Annotated[str | None, Query(min_length=1, max_length=512)] = None) -> Count:
        """Forget one document: its document memory and every chunk of it (404 when the user has none)."""
        return Count(count=memory.delete_document(path, user_id=who.user(user_id)))


def _lifecycle_routes(app: FastAPI) -> None:
    @app.post("/v1/users/{user_id:path}/consolidate", response_model=Count, responses=ERRORS,
              operation_id="consolidate_memories", tags=["users"])
    def consolidate(user_id: str, who: Caller, memory: Mem) -> Count:
        """Merge a user's duplicate extracted memories; returns how many were merged away."""
        return Count(count=memory.consolidate(who.user(user_id)))

    @app.post("/v1/retention/expire", response_model=Count, responses=ERRORS, operation_id="expire_memories",
              tags=["retention"])
    def expire(body: RetentionRequest, who: Caller, memory: Mem) -> Count:
        """Expire memories older than their category's retention limit (every user's: admin only)."""
        user = who.user(body.user_id) if body.user_id is not None or not who.is_admin else None
        return Count(count=memory.apply_retention(now=body.now, user_id=user))

    @app.get("/v1/users/{user_id:path}/expired", response_model=list[MemoryOut], responses=ERRORS,
             operation_id="list_expired", tags=["retention"])
    def expired(user_id: str, who: Caller, memory: Mem) -> list[MemoryOut]:
        """A user's expired memories, recoverable until purged."""
        return [MemoryOut.of(r) for r in memory.expired(who.user(user_id))]

    @app.post("/v1/users/{user_id:path}/expired/{memory_id}/restore", response_model=MemoryOut, responses=ERRORS,
              operation_id="restore_memory", tags=["retention"])
    def restore(user_id: str, memory_id: str, who: Caller, memory: Mem) -> MemoryOut:
        """Bring an expired memory back into search."""
        return MemoryOut.of(memory.restore(memory_id, user_id=who.user(user_id)))

    @app.delete("/v1/users/{user_id:path}/expired", response_model=Count, responses=ERRORS,
                operation_id="purge_expired", tags=["retention"])
    def purge(user_id: str, who: Caller, memory: Mem) -> Count:
        """Delete a user's expired memories for good."""
        return Count(count=memory.purge(who.user(user_id)))


def _node_routes(app: FastAPI) -> None:
    @app.get("/v1/nodes", response_model=list[NodeOut], responses=ERRORS, operation_id="list_nodes", tags=["nodes"])
    def nodes(who: Caller, memory: Mem) -> list[NodeOut]:
        """The memory nodes run at ingestion, each at its latest version."""
        return [NodeOut(name=spec.name, version=version, spec=spec.to_data())
                for spec, version in memory.node_versions()]

    @app.get("/v1/nodes/{name}", response_model=NodeOut, responses=ERRORS, operation_id="get_node", tags=["nodes"])
    def node(name: str, who: Caller, memory: Mem) -> NodeOut:
        """One memory node's definition."""
        for spec, version in memory.node_versions():
            if spec.name == name:
                return NodeOut(name=spec.name, version=version, spec=spec.to_data())
        raise NotFoundError(f"no memory node named '{name}'")

    @app.put("/v1/nodes", response_model=list[NodeVersion], responses=ERRORS, operation_id="define_node",
             tags=["nodes"])
    def define(body: dict[str, Any], who: Caller, memory: Mem) -> list[NodeVersion]:
        """Add or replace a memory node (admin): its name, category, prompt, schema and template."""
        who.require_admin()
        return [NodeVersion(name=n, version=v) for n, v in memory.define_node(body)]

    @app.delete("/v1/nodes/{name}", status_code=204, responses=ERRORS, operation_id="remove_node", tags=["nodes"])
    def remove(name: str, who: Caller, memory: Mem) -> Response:
        """Stop running a memory node (admin); its memories stay."""
        who.require_admin()
        memory.remove_node(name)
        return Response(status_code=204)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("memlane")
    except PackageNotFoundError:
        return "0"
