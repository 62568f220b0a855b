"""The console's pages over the memories: the overview, a user's memories page by page, one
memory with its evidence and history, search with explanations, and the memory nodes."""

from __future__ import annotations

import json
from collections import Counter
from typing import Annotated, Any
from urllib.parse import quote

import yaml
from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import Response

from memlane.errors import InputError, NotFoundError
from memlane.records import MemoryRecord, NodeType
from memlane.server.console import views
from memlane.server.console.web import (
    Admin,
    Console,
    Signed,
    Who,
    check_form,
    current,
    memory_of,
    redirect,
    render,
)

Text = Annotated[str, Query(max_length=512)]
PAGE_SIZES = (20, 50, 100, 200)
SUMMARY_USERS = 20  # a tenant's overview counts the memories of this many users at most
SUMMARY_RECORDS = 50_000


def routes(router: APIRouter) -> None:
    router.get("/overview")(overview)
    router.get("/memories")(memories)
    router.get("/memories/{memory_id}")(memory_page)
    router.get("/search")(search)
    router.get("/nodes")(nodes)
    router.post("/nodes")(save_node)


# -- who may pick which users -----------------------------------------------------------------------


def users_of(request: Request, who: Signed) -> list[str]:
    console: Console = request.app.state.console
    return views.reachable_users(who.principal, console.records.users())


def node_types(request: Request) -> list[str]:
    names = [spec.name for spec, _ in memory_of(request).node_versions()]
    return [NodeType.TURN.value, NodeType.SESSION.value, NodeType.DOCUMENT.value, NodeType.CHUNK.value, *names]


# -- overview ---------------------------------------------------------------------------------------


def overview(request: Request, who: Who) -> Response:
    """Admins: the store's counts by kind and category, users, model and index, size, jobs and
    recent activity. Tenants: their users, each with its memories by kind and category."""
    memory = memory_of(request)
    users = users_of(request, who)
    embedder = current(memory).embedder
    context: dict[str, Any] = {"title": "Overview", "active": "overview", "users": users,
                               "model": embedder.name, "dims": embedder.dims}
    if who.principal.is_admin:
        from memlane.store import backend_name

        jobs = _jobs(request)
        context.update(stats=memory.stats(), backend=backend_name(current(memory).path),
                       nodes=memory.node_versions(), activity=_activity(request, jobs)[:15],
                       jobs=None if jobs is None else jobs[:5])
    else:
        context.update(summaries=_summaries(memory, users))
    return render(request, "overview.html", **context)


def _jobs(request: Request) -> list | None:
    manager = getattr(request.app.state, "jobs", None)
    return None if manager is None else manager.list(limit=20)


def _activity(request: Request, jobs: list | None) -> list[dict[str, Any]]:
    """Recent changes, newest first: memories added, updated and deleted (what changed, never
    what was said), node definitions, jobs, and actions taken in this console."""
    console: Console = request.app.state.console
    events = list(console.activity())
    for user, memory_id, event, at in console.records.recent_history(15):
        events.append({"at": at, "what": "memory", "text": f"{event} of memory {memory_id} of user {user}"})
    for job in jobs or ():
        events.append({"at": job.created_at, "what": "job", "text": f"{job.kind} job {job.id} submitted"})
        if job.finished_at:
            events.append({"at": job.finished_at, "what": "job", "text": f"{job.kind} job {job.id} {job.state}"})
    if "transfer" in console.records.capabilities:
        for name, version, _spec, defined_at, removed_at in console.records.node_rows():
            events.append({"at": defined_at, "what": "node", "text": f"node {name} version {version} defined"})
            if removed_at:
                events.append({"at": removed_at, "what": "node", "text": f"node {name} removed"})
    return sorted(events, key=lambda e: _sortable(e["at"]), reverse=True)


def _sortable(stamp: str) -> str:
    """ISO times written in different styles ('Z' or '+00:00', with or without fractions), comparable."""
    return (stamp or "").replace("+00:00", "").rstrip("Z").ljust(26, "0")


def _summaries(memory: Any, users: list[str]) -> list[dict[str, Any]]:
    """Memories by kind and category for each of a tenant's first users (a bounded scan)."""
    out, budget = [], SUMMARY_RECORDS
    for user in users[:SUMMARY_USERS]:
        kinds: Counter[str] = Counter()
        categories: Counter[str] = Counter()
        cursor, complete = None, True
        while True:
            page = memory.get_all(user, limit=2000, cursor=cursor)
            for record in page.records:
                kinds[record.node_type] += 1
                categories[record.category.value] += 1
            budget -= len(page.records)
            cursor = page.next_cursor
            if cursor is None:
                break
            if budget <= 0:
                complete = False
                break
        out.append({"user": user, "memories": sum(kinds.values()), "kinds": dict(kinds),
                    "categories": dict(categories), "complete": complete})
        if budget <= 0:
            break
    return out


# -- memories ---------------------------------------------------------------------------------------


def memories(request: Request, who: Who, user: Text = "", node_type: Text = "", category: Text = "",
             session_id: Text = "", speaker: Text = "", date_from: Text = "", date_to: Text = "",
             cursor: Annotated[str, Query(max_length=32)] = "", limit: Annotated[int, Query(ge=1, le=500)] = 50,
             page: Annotated[int, Query(ge=1, le=10**9)] = 1) -> Response:
    """One page of a user's memories, oldest first, filtered; a cursor leads to the next page."""
    memory = memory_of(request)
    users = users_of(request, who)
    chosen = views.pick_user(who.principal, user.strip() or None, users)
    fields = {"node_type": node_type, "category": category, "session_id": session_id, "speaker": speaker,
              "date_from": date_from, "date_to": date_to}
    records: list[MemoryRecord] = []
    next_cursor, error = None, None
    if chosen is not None:
        try:
            found = memory.get_all(chosen, limit=limit, cursor=cursor or None, filters=views.filters_from(fields))
            records, next_cursor = found.records, found.next_cursor
        except InputError as exc:
            error = str(exc)
    query = {k: v for k, v in {"user": chosen or "", **fields, "limit": str(limit)}.items() if v}
    return render(request, "memories.html", status=422 if error else 200, title="Memories", active="memories",
                  users=users, user=chosen, fields=fields, records=records, next_cursor=next_cursor,
                  cursor=cursor, page=page, limit=limit, page_sizes=PAGE_SIZES, query=query, error=error,
                  node_types=node_types(request), categories=views.categories(), dates=views.record_dates)


def memory_page(request: Request, who: Who, memory_id: str, user: Text = "") -> Response:
    """One memory: its text, resolved dates, evidence turns, node, supersession and history."""
    memory = memory_of(request)
    console: Console = request.app.state.console
    if not user and who.principal.is_admin:
        record = memory.get(memory_id, admin=True)
    else:
        record = memory.get(memory_id, user_id=who.principal.user(user.strip() or None))
    if record is None:
        raise NotFoundError(f"no memory with id {memory_id}" + (f" for user '{user}'" if user else ""))
    owner = record.user_id
    evidence = [(mid, memory.get(mid, user_id=owner)) for mid in views.evidence_ids(record)]
    successor = memory.get(record.superseded_by, user_id=owner) if record.superseded_by else None
    cited_by: list[MemoryRecord] = []
    if record.node_type == NodeType.TURN.value and "nodes" in console.records.capabilities:
        cited_by = console.records.citing(owner, record.id)[:50]
    return render(request, "memory.html", title=f"Memory {record.id}", active="memories", record=record,
                  dates=views.record_dates(record), evidence=evidence, successor=successor, cited_by=cited_by,
                  history=memory.history(record.id, user_id=owner),
                  metadata=json.dumps(record.metadata, indent=2, ensure_ascii=False, default=str))


# -- search -----------------------------------------------------------------------------------------


def search(request: Request, who: Who, q: Annotated[str, Query(max_length=10_000)] = "", user: Text = "",
           now: Text = "", as_of: Text = "", node_type: Text = "", category: Text = "", session_id: Text = "",
           speaker: Text = "", date_from: Text = "", date_to: Text = "", group: Text = "",
           limit: Annotated[int, Query(ge=1, le=100)] = 10) -> Response:
    """A question asked of a user's memories: each hit with why it was found (each strategy's
    rank and score as bars) and how the question was read (time range, entities, weights). With
    group=document, documents instead, each with its sections that matched."""
    memory = memory_of(request)
    users = users_of(request, who)
    chosen = views.pick_user(who.principal, user.strip() or None, users)
    fields = {"node_type": node_type, "category": category, "session_id": session_id, "speaker": speaker,
              "date_from": date_from, "date_to": date_to, "as_of": as_of}
    hits, error = [], None
    if q.strip() and chosen is not None:
        try:
            hits = memory.search(q, user_id=chosen, limit=limit, filters=views.filters_from(fields),
                                 now=now.strip() or None, explain=True, group_by=group.strip() or None)
        except InputError as exc:
            error = str(exc)
    bars = views.strategy_bars(hits)
    rows = [{"hit": h, "bars": b, "notes": views.hit_notes(h)} for h, b in zip(hits, bars, strict=True)]
    parts = [p for h in hits for p in h.parts]
    return render(request, "search.html", status=422 if error else 200, title="Search", active="search",
                  users=users, user=chosen, q=q, now=now, fields=fields, limit=limit, rows=rows, error=error,
                  analysis=views.query_analysis(parts or hits), asked=bool(q.strip()), node_types=node_types(request),
                  categories=views.categories(), group=group.strip(), document=views.document_row,
                  lines=views.line_range)


# -- nodes ------------------------------------------------------------------------------------------


def nodes(request: Request, who: Who, name: Text = "", version: Annotated[int | None, Query(ge=1)] = None,
          saved: Text = "") -> Response:
    """The memory nodes; one node's YAML (edited in place by an admin) with its versions, or an
    earlier version of it."""
    return _nodes_page(request, who, name=name or None, version=version, saved=saved or None)


def save_node(request: Request, who: Admin, text: Annotated[str, Form(max_length=200_000)] = "",
              editing: Annotated[str, Form(max_length=100)] = "",
              csrf: Annotated[str, Form(max_length=100)] = "") -> Response:
    """Define or change nodes from YAML (one node, a list, or {nodes: [...]}); the validation
    error, if any, is shown beside the form with the text as sent."""
    check_form(request, who, csrf)
    console: Console = request.app.state.console
    memory = memory_of(request)
    try:
        items = _node_items(text)
        defined = [pair for item in items for pair in memory.define_node(item)]
    except InputError as exc:
        return _nodes_page(request, who, name=None if editing in ("", "new") else editing, status=422,
                           failed={"form": editing or "new", "text": text, "error": str(exc)})
    for node, version in defined:
        console.note(who.principal, f"node {node} saved as version {version}")
    saved = ", ".join(f"{n} v{v}" for n, v in defined)
    return redirect(request, f"/nodes?name={quote(defined[0][0])}&saved={quote(saved)}")


def _node_items(text: str) -> list[dict[str, Any]]:
    """The node definitions in a YAML text, each a mapping; InputError naming what is wrong."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InputError(f"cannot parse the YAML: {exc}", field="yaml", fix="write valid YAML") from None
    if isinstance(data, dict) and "nodes" in data:
        data = data["nodes"]
    items = data if isinstance(data, list) else [data]
    if not items or not all(isinstance(item, dict) for item in items):
        raise InputError("a node definition is a mapping of name, category, prompt, schema and template",
                         field="yaml", fix="write one node, a list of nodes, or {nodes: [...]}")
    return items


def _nodes_page(request: Request, who: Signed, *, name: str | None = None, version: int | None = None,
                saved: str | None = None, failed: dict[str, str] | None = None, status: int = 200) -> Response:
    console: Console = request.app.state.console
    specs = [{"name": spec.name, "version": version, "category": spec.category.value,
              "description": spec.description, "yaml": _yaml(spec.to_data())}
             for spec, version in memory_of(request).node_versions()]
    versions: dict[str, list[dict[str, Any]]] = {}
    old = None
    if "transfer" in console.records.capabilities:
        for node, number, spec, defined_at, removed_at in console.records.node_rows():
            versions.setdefault(node, []).append({"version": number, "defined_at": defined_at,
                                                  "removed_at": removed_at})
            if (node, number) == (name, version):
                old = {"name": node, "version": number, "yaml": _yaml(json.loads(spec)), "defined_at": defined_at}
    if version is not None and old is None:
        raise NotFoundError(f"no version {version} of a node named '{name}'")
    chosen = next((s for s in specs if s["name"] == name), None)
    if name and chosen is None and old is None:
        known = ", ".join(s["name"] for s in specs) or "none"
        raise NotFoundError(f"no memory node named '{name}' (defined: {known})")
    return render(request, "nodes.html", status=status, title="Nodes", active="nodes", specs=specs, versions=versions,
                  chosen=chosen, old=old, saved=saved, failed=failed)


def _yaml(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100)
