"""The console's document pages: a user's documents with the upload form (files or an archive,
remembered by `Memory.add_documents` as the REST route does), one document's chunks by section
with their line ranges, and forgetting a document (`Memory.delete_document`)."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi.responses import Response

from memlane.documents.model import DocumentReport
from memlane.errors import InputError, NotFoundError
from memlane.filters import Filter
from memlane.records import MemoryRecord, NodeType
from memlane.server.console import views
from memlane.server.console.pages import PAGE_SIZES, Text, users_of
from memlane.server.console.web import Console, Signed, Who, check_form, memory_of, redirect, render
from memlane.server.uploads import add_uploaded

MAX_CHUNKS = 20_000  # chunks one document page reads at most


def routes(router: APIRouter) -> None:
    router.get("/documents")(documents)
    router.post("/documents")(upload)
    router.post("/documents/delete")(delete)
    router.get("/document")(document_page)


def documents(request: Request, who: Who, user: Text = "", cursor: Annotated[str, Query(max_length=32)] = "",
              limit: Annotated[int, Query(ge=1, le=500)] = 50,
              page: Annotated[int, Query(ge=1, le=10**9)] = 1) -> Response:
    """A user's documents, page by page (oldest first), with the upload form."""
    return _documents_page(request, who, user=user, cursor=cursor, limit=limit, page=page)


def upload(request: Request, who: Who, files: Annotated[list[UploadFile], File()],
           user: Annotated[str, Form(max_length=512)] = "", category: Annotated[str, Form(max_length=32)] = "semantic",
           collection: Annotated[str, Form(max_length=256)] = "",
           csrf: Annotated[str, Form(max_length=100)] = "") -> Response:
    """Remember uploaded files or an archive for a user; the page shows what was added, changed,
    removed and skipped, or why the upload was refused."""
    check_form(request, who, csrf)
    chosen = who.principal.user(user.strip() or None)
    try:
        report = add_uploaded(memory_of(request), files, user_id=chosen, category=category,
                              collection=collection.strip() or None)
    except InputError as exc:
        return _documents_page(request, who, user=chosen, error=str(exc), status=422)
    console: Console = request.app.state.console
    console.note(who.principal, f"uploaded {report.documents} document(s) for user {chosen}")
    return _documents_page(request, who, user=chosen, report=report)


def delete(request: Request, who: Who, path: Annotated[str, Form(min_length=1, max_length=512)],
           user: Annotated[str, Form(max_length=512)] = "",
           csrf: Annotated[str, Form(max_length=100)] = "") -> Response:
    """Forget a document and its chunks, then show the user's documents."""
    check_form(request, who, csrf)
    chosen = who.principal.user(user.strip() or None)
    count = memory_of(request).delete_document(path, user_id=chosen)
    console: Console = request.app.state.console
    console.note(who.principal, f"deleted document {path} of user {chosen} ({count} memories)")
    return redirect(request, "/documents?" + urlencode({"user": chosen, "deleted": path}))


def document_page(request: Request, who: Who, path: Annotated[str, Query(min_length=1, max_length=512)],
                  user: Text = "") -> Response:
    """One document: its title, format, header fields and dates, and its chunks by section with
    the lines of the file each one spans."""
    chosen = who.principal.user(user.strip() or None)
    records = _document_records(memory_of(request), chosen, path)
    document = next((r for r in records if r.node_type == NodeType.DOCUMENT.value), None)
    chunks = [r for r in records if r.node_type == NodeType.CHUNK.value]
    if document is None and not chunks:
        raise NotFoundError(f"no document {path!r} for user '{chosen}'")
    row = views.document_row(document or chunks[0])
    return render(request, "document.html", title=row.title or path, active="documents", user=chosen, path=path,
                  document=document, row=row, sections=views.document_sections(chunks), chunks=len(chunks),
                  fields=(document.metadata.get("fields") or {}) if document else {}, lines=views.line_range)


def _document_records(memory, user: str, path: str) -> list[MemoryRecord]:
    """The document memory and the chunks of one document (at most MAX_CHUNKS)."""
    wanted = Filter.parse({"source": path, "node_type": [NodeType.DOCUMENT.value, NodeType.CHUNK.value]})
    out: list[MemoryRecord] = []
    cursor = None
    while len(out) < MAX_CHUNKS:
        page = memory.get_all(user, limit=1000, cursor=cursor, filters=wanted)
        out += page.records
        cursor = page.next_cursor
        if cursor is None:
            break
    return out


def _documents_page(request: Request, who: Signed, *, user: str, cursor: str = "", limit: int = 50, page: int = 1,
                    report: DocumentReport | None = None, error: str | None = None, status: int = 200) -> Response:
    memory = memory_of(request)
    users = users_of(request, who)
    chosen = views.pick_user(who.principal, user.strip() or None, users)
    records: list[MemoryRecord] = []
    next_cursor = None
    if chosen is not None:
        try:
            found = memory.get_all(chosen, limit=limit, cursor=cursor or None,
                                   filters={"node_type": NodeType.DOCUMENT.value})
            records, next_cursor = found.records, found.next_cursor
        except InputError as exc:
            error, status = error or str(exc), 422
    query = {k: v for k, v in {"user": chosen or "", "limit": str(limit)}.items() if v}
    return render(request, "documents.html", status=status, title="Documents", active="documents", users=users,
                  user=chosen, rows=[views.document_row(r) for r in records], next_cursor=next_cursor, cursor=cursor,
                  page=page, limit=limit, page_sizes=PAGE_SIZES, query=query, report=report, error=error,
                  deleted=request.query_params.get("deleted"), categories=views.DOCUMENT_CATEGORIES)
