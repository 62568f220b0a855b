"""memlane's memory as MCP tools (the official `mcp` SDK, 2.x), for an LLM agent to call.

Nine tools over `Memory`: add_memory, search_memories, get_memory, list_memories,
update_memory, delete_memory and memory_history over conversations, and add_document and
search_documents over documents. Each is a few lines over the library; what they return is
shaped for a model to read (a memory's date, speaker and text; a search hit's one-line reason; a
document's matching sections with their lines), and the library's errors come back as tool
errors carrying its message.

The user a call acts for is never a tool argument the model fills in:

- over stdio (`memlane mcp --user ana`) it is the user the command was started for;
- over streamable HTTP (`/mcp` in `memlane serve`) it comes from the request's API key: a
  tenant key with exactly one user acts for that user; any other key names one of the users
  it reaches in the `X-Memlane-User` header, set in the MCP client's configuration.

`install_mcp` mounts the HTTP endpoint in the REST app: the same keys, rate limits and access
log as the REST routes, stateless (any worker answers any request), with JSON responses.
"""

from __future__ import annotations

import re
from contextlib import asynccontextmanager, contextmanager
from typing import TYPE_CHECKING, Annotated, Any, AsyncIterator, Callable, Iterator, Literal

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import ToolAnnotations
from pydantic import BaseModel, Field

from memlane.errors import MemlaneError, NotFoundError
from memlane.records import Hit, MemoryRecord
from memlane.server.schemas import HistoryEventOut, Message

if TYPE_CHECKING:
    from fastapi import FastAPI

    from memlane.memory import Memory

__all__ = ["USER_HEADER", "build_mcp", "http_user", "install_mcp", "reason", "serve_stdio"]

USER_HEADER = "X-Memlane-User"
PRINCIPAL = "memlane.principal"  # the ASGI scope key where the /mcp endpoint leaves the caller
MAX_HITS = 100
MAX_PAGE = 200
MAX_DOCUMENTS = 20
SECTIONS = 3  # a found document's best sections shown
EXCERPT_CHARS = 300

INSTRUCTIONS = """\
Long-term memory of one user: what was said in earlier conversations, with dates.
Search it (search_memories) before answering anything that may depend on the user's past: \
their facts, preferences, plans, people, or "when did ...". Remember new things worth keeping \
with add_memory, passing the conversation's date when it is not today. Memories are returned \
with ids: pass an id to get_memory, update_memory, delete_memory or memory_history.
Documents the user keeps here (notes, specs, manuals, how-tos) are searched with \
search_documents, which names each document's matching sections and lines; add_document \
remembers a new one or replaces one."""


# -- what the tools return --------------------------------------------------------------------------


class MemoryItem(BaseModel):
    """One memory, as a model needs it."""

    id: str = Field(description="Pass to get_memory, update_memory, delete_memory or memory_history.")
    date: str | None = Field(description="When it was said (the conversation's date), else the date it is about.")
    speaker: str | None = Field(description="Who said it (null for a whole conversation or an extracted fact).")
    text: str
    kind: str = Field(description="turn (one message), session (a whole conversation), or the name of the node "
                                  "that extracted it (e.g. a fact).")
    session_id: str | None
    dates_mentioned: list[str] = Field(description="Times the text mentions, resolved: \"last month = "
                                                   "2023-04-01..2023-04-30\".")

    @classmethod
    def of(cls, record: MemoryRecord) -> "MemoryItem":
        return cls(id=record.id, date=record_date(record), speaker=record.speaker, text=record.text,
                   kind=record.node_type, session_id=record.session_id,
                   dates_mentioned=[e.render() for e in record.event_dates])


class SearchHit(MemoryItem):
    score: float = Field(description="Higher is more relevant; only comparable within one search.")
    reason: str = Field(description="Why it was found, in one line.")


class Added(BaseModel):
    memories: list[MemoryItem] = Field(description="Each message as a memory, and the conversation as a whole "
                                                   "when it has several messages.")


class Found(BaseModel):
    results: list[SearchHit] = Field(description="Most relevant first.")


class Listed(BaseModel):
    memories: list[MemoryItem] = Field(description="Oldest first.")
    next_cursor: str | None = Field(description="Pass as cursor for the next page; null on the last page.")


class Deleted(BaseModel):
    deleted: str = Field(description="The id of the memory that was forgotten.")


class History(BaseModel):
    events: list[HistoryEventOut] = Field(description="ADD, UPDATE, DELETE, ... of the memory, oldest first.")


class DocumentAdded(BaseModel):
    path: str = Field(description="The document's path: pass it again to replace the document.")
    title: str | None = Field(description="The title read from the document (its first heading, or its name).")
    chunks: int = Field(description="Sections of the document remembered for search.")
    added: int = Field(description="Memories added (its sections and the document itself).")
    changed: int = Field(description="Memories changed, when the document replaced an earlier version.")
    unchanged: int = Field(description="Memories an earlier version already held as they are.")
    removed: int = Field(description="Memories of sections the earlier version had and this one has not.")


class Section(BaseModel):
    section: str = Field(description="Its headings, outermost first: \"Install > Linux\" (empty before the first).")
    lines: list[int] = Field(description="[first, last] line of the document it spans (1-based, inclusive).")
    excerpt: str = Field(description="The start of the section's text.")


class DocumentHit(BaseModel):
    path: str = Field(description="The document's path, as it was added.")
    title: str | None
    score: float = Field(description="Higher is more relevant; only comparable within one search.")
    reason: str = Field(description="Why it was found, in one line (from its best section).")
    sections: list[Section] = Field(description="Its sections that match the query, best first.")


class FoundDocuments(BaseModel):
    results: list[DocumentHit] = Field(description="Most relevant document first.")


def excerpt(text: str, limit: int = EXCERPT_CHARS) -> str:
    """`text` on one line, cut at a word boundary to at most `limit` characters (with '…')."""
    flat = " ".join(text.split())
    if len(flat) <= limit:
        return flat
    cut = flat[:limit - 1]
    return (cut.rsplit(" ", 1)[0] if " " in cut else cut) + "…"


def document_hit(hit: Hit) -> DocumentHit:
    """A search hit grouped by document as a model reads it: the document, why it was found, and
    its best sections with their headings and lines."""
    meta = hit.record.metadata
    sections = [Section(section=str(p.record.metadata.get("section") or ""),
                        lines=list(p.record.metadata.get("lines") or []), excerpt=excerpt(p.record.text))
                for p in hit.parts[:SECTIONS]]
    why = reason(hit.parts[0]) if hit.parts else "the document as a whole (its title and opening)"
    return DocumentHit(path=str(meta.get("source") or hit.record.session_id or hit.id), title=meta.get("title"),
                       score=round(hit.score, 6), reason=why, sections=sections)


def record_date(record: MemoryRecord) -> str | None:
    """The date a memory is shown with: its conversation's date, else the first date it
    mentions, else the day it was recorded."""
    if record.session_date:
        return record.session_date
    if record.event_dates:
        return record.event_dates[0].start
    return record.recorded_at[:10] if record.recorded_at else None


# -- why a hit was found -------------------------------------------------------------------------------

# What each strategy matched, in words; the first group is shown before the second (context).
_STRATEGY_WORDS = {"dense": "meaning", "dense_static": "meaning", "bm25": "keywords", "entity": "names",
                   "lookup": "exact text", "temporal": "date"}
_CONTEXT_WORDS = {"dense_context": "nearby messages", "bm25_context": "nearby messages", "session": "its conversation"}
_SCORE_FACTOR = re.compile(r"\s*\(score x [^)]*\)")
_HIT_NOTES = ("said by ", "says when", "superseded")  # notes about one hit, not about the question


def reason(hit: Hit) -> str:
    """One line on why a search found `hit`, from its explanation: the strategies that ranked it
    (best rank first), the question's names or exact strings its text contains, whether it falls
    in the question's time range, and what raised or lowered it. E.g. "meaning #1, keywords #3;
    mentions 'Lisbon'; in the question's time range (last week = 2023-05-01..2023-05-07)"."""
    explanation = hit.explanation
    if explanation is None:
        return "found by search"
    ranks: dict[str, int] = {}
    for s in sorted(explanation.strategies, key=lambda s: (s.strategy not in _STRATEGY_WORDS, s.rank)):
        ranks.setdefault(_STRATEGY_WORDS.get(s.strategy) or _CONTEXT_WORDS.get(s.strategy, s.strategy), s.rank)
    parts = [", ".join(f"{word} #{rank}" for word, rank in list(ranks.items())[:3]) or "found by search"]
    text = hit.record.text.lower()
    asked = explanation.analysis
    wanted: list[str] = [*asked.get("entities", ()), *asked.get("needles", ())]
    mentioned = [w for w in dict.fromkeys(wanted) if w.lower() in text]
    if mentioned:
        parts.append("mentions " + ", ".join(f"'{w}'" for w in mentioned[:3]))
    speaker = (hit.record.speaker or "").lower()
    if speaker and any(w.lower() == speaker for w in wanted) and not any(n.startswith("said by ") for n in explanation.notes):
        parts.append(f"said by {hit.record.speaker}")
    span = asked.get("time_range")
    if span and any(s.strategy == "temporal" for s in explanation.strategies):
        parts.append(f"in the question's time range ({span['expression']} = {span['start']}..{span['end']})")
    for note in explanation.notes:
        if note.startswith(_HIT_NOTES):
            parts.append(_SCORE_FACTOR.sub("", note))
    return "; ".join(parts)


# -- the tools -------------------------------------------------------------------------------------------

MemoryOf = Callable[[], "Memory"]
UserOf = Callable[[Context], str]  # the user a tool call acts for; raises when there is none

_READ = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False)


@contextmanager
def _tool_errors() -> Iterator[None]:
    """memlane's errors end the call as a tool error with the library's message."""
    try:
        yield
    except MemlaneError as exc:
        raise ToolError(" ".join(str(exc).split())) from exc


MemoryId = Annotated[str, Field(min_length=1, max_length=512, description="A memory's id, as a tool returned it.")]


def build_mcp(memory_of: MemoryOf, user_of: UserOf) -> MCPServer:
    """The MCP server: nine tools over the Memory `memory_of()` gives at each call (a server's
    may be swapped by a model change), acting for the user `user_of(ctx)` names. Tools are sync:
    the SDK runs each in a worker thread, so a slow search never blocks the event loop."""
    server = MCPServer("memlane", title="memlane memory", instructions=INSTRUCTIONS, version=_version(),
                       log_level="WARNING")

    @server.tool(annotations=ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=False,
                                             open_world_hint=False))
    def add_memory(
        ctx: Context,
        text: Annotated[str | None, Field(max_length=1_000_000, description=(
            "One thing to remember, in the user's words (said by the user). Give this or messages."))] = None,
        messages: Annotated[list[Message] | None, Field(max_length=1000, description=(
            "A conversation to remember: [{\"role\": \"user\", \"content\": \"...\"}, {\"role\": \"assistant\", "
            "\"content\": \"...\"}]. Give this or text."))] = None,
        session_date: Annotated[str | None, Field(max_length=64, description=(
            "When the conversation took place (ISO date or datetime, e.g. 2024-05-08 or 2024-05-08T14:30). "
            "Relative times in it (\"yesterday\") are resolved against it. Default: now."))] = None,
    ) -> Added:
        """Remember something about the user for later conversations: a fact, a preference, a plan, an
        event, or a whole conversation. Store what the user said, as they said it; each message becomes a
        memory that search_memories can find later. Do not store what is already in memory."""
        if (text is None) == (messages is None):
            raise ToolError("give either text (one thing to remember) or messages (a conversation), not "
                            + ("both" if text is not None else "neither"))
        with _tool_errors():
            payload: Any = text if text is not None else [m.model_dump(exclude_none=True) for m in messages or ()]
            records = memory_of().add(payload, user_id=user_of(ctx), session_date=session_date)
        return Added(memories=[MemoryItem.of(r) for r in records])

    @server.tool(annotations=_READ)
    def search_memories(
        ctx: Context,
        query: Annotated[str, Field(min_length=1, max_length=10_000, description=(
            "What to look for, as a question or keywords: \"Where does the user live?\", \"dentist appointment\"."
            " Times in it (\"last week\", \"in May\") narrow the search to that period."))],
        limit: Annotated[int, Field(ge=1, le=MAX_HITS, description="How many memories to return.")] = 10,
        date_from: Annotated[str | None, Field(max_length=64, description=(
            "Only memories from or about this day or later (ISO date, e.g. 2024-05-01)."))] = None,
        date_to: Annotated[str | None, Field(max_length=64, description=(
            "Only memories from or about this day or earlier (ISO date, inclusive)."))] = None,
    ) -> Found:
        """Search the user's long-term memory: what they said in earlier conversations. Use it before
        answering anything that may depend on their past (facts about them, preferences, people, plans,
        "when did I ..."). Returns the most relevant memories first, each with its date, speaker, text and
        why it was found. Dates matter: a later memory may correct an earlier one."""
        filters = {k: v for k, v in {"date_from": date_from, "date_to": date_to}.items() if v is not None}
        with _tool_errors():
            hits = memory_of().search(query, user_id=user_of(ctx), limit=limit, filters=filters or None,
                                      explain=True)
        return Found(results=[SearchHit(**MemoryItem.of(h.record).model_dump(), score=round(h.score, 6),
                                        reason=reason(h)) for h in hits])

    @server.tool(annotations=_READ)
    def get_memory(ctx: Context, memory_id: MemoryId) -> MemoryItem:
        """One memory by its id (as search_memories or list_memories returned it)."""
        with _tool_errors():
            record = memory_of().get(memory_id, user_id=user_of(ctx))
            if record is None:
                raise NotFoundError(f"no memory with id {memory_id} for this user")
        return MemoryItem.of(record)

    @server.tool(annotations=_READ)
    def list_memories(
        ctx: Context,
        cursor: Annotated[str | None, Field(max_length=32, description=(
            "Leave out for the first page; then pass the next_cursor of the page before."))] = None,
        limit: Annotated[int, Field(ge=1, le=MAX_PAGE, description="Memories per page.")] = 50,
    ) -> Listed:
        """Page through everything remembered about the user, oldest first. To find something, use
        search_memories instead; this is for reviewing or cleaning up memory."""
        with _tool_errors():
            page = memory_of().get_all(user_of(ctx), limit=limit, cursor=cursor)
        return Listed(memories=[MemoryItem.of(r) for r in page.records], next_cursor=page.next_cursor)

    @server.tool(annotations=ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=True,
                                             open_world_hint=False))
    def update_memory(
        ctx: Context,
        memory_id: MemoryId,
        text: Annotated[str, Field(min_length=1, max_length=1_000_000, description="The memory's corrected text.")],
    ) -> MemoryItem:
        """Correct a memory's text when the user says it is wrong or it has changed. The old text is kept
        in its history (memory_history) and leaves search. To record something new, use add_memory."""
        with _tool_errors():
            record = memory_of().update(memory_id, text, user_id=user_of(ctx))
        return MemoryItem.of(record)

    @server.tool(annotations=ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=False,
                                             open_world_hint=False))
    def delete_memory(ctx: Context, memory_id: MemoryId) -> Deleted:
        """Forget one memory, when the user asks you to forget it or it is plainly wrong. Its words leave
        search for good; its history keeps a DELETE event."""
        with _tool_errors():
            memory_of().delete(memory_id, user_id=user_of(ctx))
        return Deleted(deleted=memory_id)

    @server.tool(annotations=_READ)
    def memory_history(ctx: Context, memory_id: MemoryId) -> History:
        """Every change to one memory, oldest first: when it was added, updated (with the old and new
        text) or deleted. Works for deleted memories too."""
        with _tool_errors():
            events = memory_of().history(memory_id, user_id=user_of(ctx))
        return History(events=[HistoryEventOut.of(e) for e in events])

    @server.tool(annotations=ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=True,
                                             open_world_hint=False))
    def add_document(
        ctx: Context,
        path: Annotated[str, Field(min_length=1, max_length=512, description=(
            "The document's name, with the extension that gives its format: \"notes/launch-plan.md\" (Markdown), "
            "\"guide.rst\", \"faq.txt\", \"page.html\". The same path again replaces that document."))],
        content: Annotated[str, Field(min_length=1, description="The document's full text, as written.")],
        category: Annotated[Literal["semantic", "procedural"], Field(description=(
            "semantic for knowledge (notes, specs, facts, reference); procedural for how to do things "
            "(steps, runbooks, checklists)."))] = "semantic",
    ) -> DocumentAdded:
        """Remember a whole document for later: notes, a spec, a manual, a how-to the user wants kept.
        Its headings split it into sections, each searchable with search_documents, which points back
        to the section and its lines. Use add_memory instead for things said in conversation. Adding
        the same path again replaces the document (only what changed is re-read)."""
        with _tool_errors():
            user, memory = user_of(ctx), memory_of()
            report = memory.add_document(path, content, user_id=user, category=category)
            stored = memory.get_all(user, limit=1, filters={"source": path, "node_type": "document"}).records
        return DocumentAdded(path=path, title=stored[0].metadata.get("title") if stored else None,
                             chunks=report.chunks, added=report.added, changed=report.changed,
                             unchanged=report.unchanged, removed=report.removed)

    @server.tool(annotations=_READ)
    def search_documents(
        ctx: Context,
        query: Annotated[str, Field(min_length=1, max_length=10_000, description=(
            "What to look for in the user's documents, as a question or keywords: \"How do we roll back a "
            "release?\", \"budget for the launch\"."))],
        limit: Annotated[int, Field(ge=1, le=MAX_DOCUMENTS, description="How many documents to return.")] = 5,
    ) -> FoundDocuments:
        """Search the documents the user keeps in memory (notes, specs, manuals, how-tos) and get the
        most relevant documents first, each with its path, title, why it was found, and its best
        matching sections (heading path, line range and an excerpt). Use it for questions the user's
        documents may answer; cite the path and section. For what was said in conversations, use
        search_memories."""
        with _tool_errors():
            hits = memory_of().search(query, user_id=user_of(ctx), limit=limit, group_by="document", explain=True)
        return FoundDocuments(results=[document_hit(h) for h in hits])

    return server


def serve_stdio(memory: "Memory", user_id: str) -> None:
    """Serve the tools over stdin/stdout for one user until the client closes them (blocking)."""
    build_mcp(lambda: memory, lambda _ctx: user_id).run("stdio")


# -- over HTTP, inside the REST server --------------------------------------------------------------------


def http_user(ctx: Context) -> str:
    """The user of a tool call that came over HTTP: the single user of its API key, or the user
    its `X-Memlane-User` header names, if the key reaches that user. Raises otherwise."""
    from memlane.server.auth import Forbidden, Unauthorized

    request = ctx.request_context.request
    who = getattr(request, "scope", {}).get(PRINCIPAL)
    if who is None:
        raise Unauthorized("this call did not come through memlane's /mcp endpoint, so it has no API key")
    named = request.headers.get(USER_HEADER)
    if named is None:
        if not who.is_admin and len(who.users) == 1 and who.user_prefix is None:
            return who.users[0]
        reach = "every user" if who.is_admin else "more than one user"
        raise Forbidden(f"this API key reaches {reach}, so the MCP client must name the user: add the header "
                        f"'{USER_HEADER}: <user id>' to this server's entry in the MCP client's configuration")
    return who.user(named.strip())


class _Endpoint:
    """The ASGI app at /mcp: authenticates each request as the REST routes do (`auth.caller`:
    bearer key, rate limit, key id for the access log), then hands it to the SDK's session
    manager with the caller in the scope, where `http_user` reads it."""

    def __init__(self) -> None:
        self.manager: Any = None  # the SDK's StreamableHTTPSessionManager while the app runs
        self.route: Any = None  # its Route, which the access log and the metrics name requests by

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        from starlette.requests import Request

        from memlane.server.auth import caller

        scope["route"] = self.route
        try:
            scope[PRINCIPAL] = await caller(Request(scope))
        except MemlaneError as exc:
            await _refusal(exc)(scope, receive, send)
            return
        if self.manager is None:
            from memlane.server.app import error_response

            await error_response(503, "internal", "the MCP endpoint is not running (the app's lifespan has not "
                                 "started)")(scope, receive, send)
            return
        await self.manager.handle_request(scope, receive, send)


def _refusal(exc: MemlaneError) -> Any:
    """The REST server's JSON error for a request /mcp refuses before MCP sees it."""
    import math

    from memlane.errors import RateLimitError
    from memlane.server.app import STATUS, error_response

    for kind, status, name in STATUS:
        if isinstance(exc, kind):
            headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
            if isinstance(exc, RateLimitError):
                headers = {"Retry-After": str(max(1, math.ceil(exc.retry_after)))}
            return error_response(status, name, str(exc), headers=headers)
    return error_response(500, "internal", "internal error")


def install_mcp(app: "FastAPI", path: str = "/mcp") -> MCPServer:
    """Serve the tools at `path` of the REST app, over streamable HTTP, authenticated by the
    app's `authenticate` (its API keys; with none, under --no-auth, every call must name its
    user in the X-Memlane-User header). Runs the SDK's session manager within the app's lifespan."""
    from mcp.server.transport_security import TransportSecuritySettings
    from starlette.routing import Route

    server = build_mcp(lambda: app.state.memory, http_user)
    endpoint = _Endpoint()
    endpoint.route = Route(path, endpoint=endpoint)
    app.router.routes.append(endpoint.route)
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(running: Any) -> AsyncIterator[Any]:
        if app.state.authenticate is None:
            # No key: only this machine may call, and a web page it visits must not reach the
            # server by DNS rebinding (the SDK checks Host and Origin).
            security = TransportSecuritySettings(
                enable_dns_rebinding_protection=True, allowed_hosts=["127.0.0.1:*", "localhost:*", "[::1]:*"],
                allowed_origins=["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"])
        else:
            security = TransportSecuritySettings(enable_dns_rebinding_protection=False)  # the key guards it
        # A session manager runs once: each start of the app makes a new one. Stateless, so any
        # worker process answers any request; JSON answers, as no tool streams.
        server.streamable_http_app(stateless_http=True, json_response=True, transport_security=security)
        async with inner(running) as state:
            endpoint.manager = server.session_manager
            try:
                async with endpoint.manager.run():
                    yield state
            finally:
                endpoint.manager = None

    app.router.lifespan_context = lifespan
    return server


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("memlane")
    except PackageNotFoundError:
        return "0"
