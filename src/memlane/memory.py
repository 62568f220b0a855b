"""Memory: the public face of memlane, in the shape mem0 users know."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from memlane.config import EmbedderConfig, MemoryConfig
from memlane.documents.model import DocumentReport
from memlane.embed import Embedder, make_embedders
from memlane.errors import InputError, ModelMismatchError, NotFoundError, describe
from memlane.filters import Filter
from memlane.ingest.build import (
    build_session_records,
    embed_records,
    new_id,
    own_vector,
    session_vector,
    turn_embed_text,
)
from memlane.ingest.dates import parse_session_date
from memlane.ingest.formats import Conversation, check_metadata, check_text, parse_messages
from memlane.ingest.temporal import resolve_expressions
from memlane.nodes.spec import NodeSpec, load_specs, parse_spec
from memlane.records import Category, HistoryEvent, Hit, MemoryRecord, NodeType, Session
from memlane.retrieve.fusion import document_scores
from memlane.retrieve.pipeline import Retriever
from memlane.store import Store, StoreStats, open_store, require, scan

Progress = Callable[[int, int], None]  # (done, total)


def _utc_now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


@dataclass
class Page:
    """One page of get_all; pass `next_cursor` back to get the next."""

    records: list[MemoryRecord]
    next_cursor: str | None


@dataclass
class IngestReport:
    sessions: int
    turns: int
    memories: int
    seconds: float
    embed_seconds: float
    embedded_texts: int
    extracted: int = 0  # memories the LLM's nodes produced
    failures: list = field(default_factory=list)  # ExtractionFailure per failed node call or invalid item

    @property
    def turns_per_second(self) -> float:
        return self.turns / self.seconds if self.seconds else 0.0


@dataclass
class ReindexReport:
    model: str
    dims: int
    memories: int
    seconds: float
    resumed: bool


_MAX_ID_CHARS = 512  # user, agent, session and memory ids


def _check_id(value: Any, field: str, *, required: bool = True) -> str | None:
    """An id argument: non-empty text (None allowed when not `required`)."""
    if value is None and not required:
        return None
    fix = "pass user_id='alice' (every memory belongs to exactly one user)" if field == "user_id" else None
    return check_text(value, field=field, max_chars=_MAX_ID_CHARS, fix=fix)


def _require_user(user_id: Any) -> str:
    return _check_id(user_id, "user_id")  # type: ignore[return-value]


GROUP_POOL = 8  # hits searched per document returned when grouping by document
GROUP_POOL_MIN = 50
_DOCUMENT_KINDS = (NodeType.CHUNK.value, NodeType.DOCUMENT.value)


def _document_filter(group_by: Any, wanted: Filter) -> Filter:
    """The filter of a search grouped by document: its node types narrowed to document memories."""
    if group_by != "document":
        raise InputError(f"group_by must be 'document' or None, got {describe(group_by)}", field="group_by",
                         fix="pass group_by='document', or leave it out for memories one by one")
    kinds = tuple(k for k in (wanted.node_type or _DOCUMENT_KINDS) if k in _DOCUMENT_KINDS)
    if not kinds:
        raise InputError("group_by='document' finds chunks and documents, and the filter's node_type allows neither",
                         field="filters", fix="drop node_type from the filters, or use 'chunk'")
    return wanted.only(node_type=kinds)


def _check_int(value: Any, field: str, low: int, high: int, example: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InputError(f"{field} must be a whole number from {low} to {high:,}, got {describe(value)}",
                         field=field, fix=f"pass {example}")
    return value


def _check_cursor(cursor: Any) -> str | None:
    """A get_all cursor: None, or what an earlier page's `next_cursor` gave (a row number)."""
    if cursor is None:
        return None
    if not isinstance(cursor, str) or not cursor.isascii() or not cursor.isdigit() or len(cursor) > 19 \
            or int(cursor) >= 2**63:
        raise InputError(f"cursor {describe(cursor)} is not a cursor of this store", field="cursor",
                         fix="pass None for the first page, then the next_cursor of the page before")
    return cursor


class Memory:
    """Long-term memory over one store: a SQLite file by default, or a PostgreSQL database
    (`store.url` in the config, or `path`: a file path or a postgresql:// URL).

    >>> m = Memory("memories.db")
    >>> m.add([{"role": "user", "content": "I moved to Lisbon last month"}], user_id="ana")
    >>> m.search("Where does Ana live?", user_id="ana")
    """

    def __init__(self, path: str | Path | None = None, config: MemoryConfig | None = None, *,
                 embedder: Embedder | None = None, create: bool = True) -> None:
        """Open the store at `path` (a file path, `~` expanded, or a store URL; default: the
        config's `store.url`). With `create=False` a missing store is an error instead of a new
        empty file (for commands that only read)."""
        self.config = config or MemoryConfig()
        location = self.config.store.url if path is None else path
        if not isinstance(location, (str, Path)) or not str(location).strip():
            raise InputError(f"the store path must be a file path, got {describe(location)}", field="path",
                             fix="pass a path such as 'memories.db'")
        text = str(location)
        self.path = text if "://" in text or text == ":memory:" else str(Path(text).expanduser())
        if embedder is not None:
            self._embedder, rescorer = embedder, None
        else:
            self._embedder, rescorer = make_embedders(self.config.active_embedder())
        self._store = open_store(self.path, create=create, dense_exact_below=self.config.store.dense_exact_below)
        try:
            self._check_model()
        except Exception:
            self._store.close()
            raise
        self._retriever = Retriever(self._store, self._embedder, self.config.retrieval, rescorer=rescorer)
        self._llm: Any = None  # the LLM client, made on first use
        self._parsed_nodes: dict[tuple[str, int], NodeSpec] = {}

    def _check_model(self) -> None:
        index = self._store.active_index()
        if index is None:
            return
        if index.model == self._embedder.name and index.dims == self._embedder.dims:
            return
        if self._store.stats().memories == 0:
            return  # nothing to mix; the first write re-creates the index
        raise ModelMismatchError(index.model, index.dims, self._embedder.name, self._embedder.dims)

    def _ensure_index(self) -> None:
        index = self._store.active_index()
        if index is not None and index.model == self._embedder.name and index.dims == self._embedder.dims:
            return
        with self._store.atomic():  # two processes adding to a new store make one index, not two
            index = self._store.active_index()
            if index is not None and index.model == self._embedder.name and index.dims == self._embedder.dims:
                return
            if index is not None:  # an empty store switching models
                new = self._store.create_index(self._embedder.name, self._embedder.dims)
                self._store.activate_index(new)
            else:
                self._store.create_index(self._embedder.name, self._embedder.dims, active=True)

    # -- writing ---------------------------------------------------------------------------

    def add(
        self,
        messages: str | Sequence[dict[str, Any]] | Session,
        *,
        user_id: str,
        agent_id: str | None = None,
        session_id: str | None = None,
        session_date: str | date | datetime | None = None,
        metadata: dict[str, Any] | None = None,
        category: str | Category = Category.EPISODIC,
    ) -> list[MemoryRecord]:
        """Remember a conversation (a list of chat messages, a string, or a Session).

        Every turn becomes a memory, and a multi-turn session also becomes one memory as a whole.
        Relative times ("yesterday") are resolved against `session_date` (default: now).
        Returns the new records; nothing is stored if anything is invalid.
        """
        limits = self.config.limits
        session_id = _check_id(session_id, "session_id", required=False)
        if isinstance(messages, Session):
            session = messages
            if session_id or session_date:
                session = Session(turns=session.turns, session_id=session_id or session.session_id,
                                  date=_iso(session_date) or session.date, metadata=session.metadata)
        elif isinstance(messages, str):
            session = Session(turns=parse_messages([{"role": "user", "content": messages}], limits=limits),
                              session_id=session_id, date=_iso(session_date))
        elif isinstance(messages, (list, tuple)):
            if len(messages) > limits.max_messages:
                raise InputError(f"{len(messages):,} messages in one add call; at most {limits.max_messages:,} are "
                                 "accepted", field="messages", fix="import them with ingest(), or in several calls")
            session = Session(turns=parse_messages(list(messages), limits=limits), session_id=session_id,
                              date=_iso(session_date))
        else:
            raise InputError(
                f"messages must be a string, a list of chat messages or a Session, got {describe(messages)}",
                field="messages",
                fix="pass [{'role': 'user', 'content': '...'}]"
                    + (", decoding bytes first (data.decode('utf-8'))" if isinstance(messages, (bytes, bytearray)) else ""))
        report_records: list[MemoryRecord] = []
        self.ingest([session], user_id=user_id, agent_id=agent_id, metadata=metadata, category=category,
                    collect=report_records)
        return report_records

    def ingest(
        self,
        sessions: Iterable[Session],
        *,
        user_id: str,
        agent_id: str | None = None,
        metadata: dict[str, Any] | None = None,
        category: str | Category = Category.EPISODIC,
        on_progress: Progress | None = None,
        collect: list[MemoryRecord] | None = None,
    ) -> IngestReport:
        """Remember many sessions of one user in one transaction: all of them are stored, or none."""
        if isinstance(sessions, (str, bytes, Session)) or not isinstance(sessions, Iterable):
            raise InputError(f"sessions must be a list of Session, got {describe(sessions)}", field="sessions",
                             fix="pass [Session(...)], or use add() for chat messages")
        return self._ingest([(user_id, list(sessions))], agent_id=agent_id, metadata=metadata,
                            category=category, on_progress=on_progress, collect=collect)

    def ingest_conversations(
        self,
        conversations: Iterable[Conversation],
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        on_progress: Progress | None = None,
    ) -> IngestReport:
        """Remember conversations read by `load_conversations`, in one transaction. Each goes to
        `user_id`, or, when it is None, to a user named after the conversation's id."""
        batches = [(user_id or c.conversation_id, c.sessions) for c in conversations]
        return self._ingest(batches, agent_id=agent_id, on_progress=on_progress)

    def add_documents(
        self,
        paths: str | Path | Sequence[str | Path],
        *,
        user_id: str,
        category: str | Category = Category.SEMANTIC,
        root: str | None = None,
        on_progress: Progress | None = None,
    ) -> DocumentReport:
        """Remember files: Markdown, reStructuredText, plain text and HTML, given as files, folders
        (walked, leaving out `documents.ignore`) or .tar/.zip archives (read in place).

        Each file becomes a document-level memory and one memory per chunk (a section's paragraphs,
        at most `documents.chunk_chars` long, with the title and heading path embedded and indexed
        with it). Adding the same paths again syncs them: only changed chunks are embedded, the
        memories of removed files and sections are deleted, a renamed file keeps its vectors, and
        every change is in history. All of it is one transaction. Files that cannot be read as text
        (binary, undecodable, empty, too large) are skipped and listed in the report's `skipped`.

        What is synced together is a root: each path's absolute location, or `root` when given (a
        name for documents that arrive another way, such as an upload)."""
        from memlane.documents.ingest import add_documents

        _require_user(user_id)
        if not isinstance(category, (str, Category)):
            raise InputError(f"category must be a string, got {describe(category)}", field="category",
                             fix="pass 'semantic' (knowledge) or 'procedural' (how to do things)")
        if root is not None:
            check_text(root, field="root", max_chars=_MAX_ID_CHARS)
        self._ensure_index()
        return add_documents(self._store, self._embedder, self.config, paths, user_id=user_id,
                             category=Category.parse(category), recorded_at=_now_iso(), root=root,
                             on_progress=on_progress)

    def add_document(
        self,
        path: str,
        content: str | bytes,
        *,
        user_id: str,
        category: str | Category = Category.SEMANTIC,
    ) -> DocumentReport:
        """Remember one document given as its content: `path` names it ("notes/plan.md"; its
        extension gives the format) and adding the same path again replaces it, re-embedding only
        the chunks that changed."""
        from memlane.documents.build import build_document
        from memlane.documents.ingest import sync_built
        from memlane.documents.model import SkippedFile, SourceFile

        _require_user(user_id)
        check_text(path, field="path", max_chars=_MAX_ID_CHARS)
        data = content.encode("utf-8") if isinstance(content, str) else content
        if not isinstance(data, (bytes, bytearray)):
            raise InputError(f"content must be text or bytes, got {describe(content)}", field="content",
                             fix="pass the document's text")
        if len(data) > self.config.documents.max_file_bytes:
            raise InputError(f"the document is {len(data):,} bytes; at most {self.config.documents.max_file_bytes:,} "
                             "are accepted", field="content", fix="split it, or raise documents.max_file_bytes")
        root = f"document:{path}"
        file = SourceFile(root, path, bytes(data))
        built = build_document(file, self.config.documents.chunk_chars)
        if isinstance(built, SkippedFile):  # refused before anything is written
            raise InputError(f"{path}: {built.reason}", field="content",
                             fix="pass UTF-8 text of a Markdown (.md), reStructuredText (.rst), text (.txt) or "
                                 "HTML (.html) document, named with its extension")
        self._ensure_index()
        return sync_built(self._store, self._embedder, self.config, [built], {root}, user_id=user_id,
                          category=Category.parse(category), recorded_at=_now_iso())

    def _ingest(
        self,
        batches: list[tuple[str, list[Session]]],
        *,
        agent_id: str | None = None,
        metadata: dict[str, Any] | None = None,
        category: str | Category = Category.EPISODIC,
        on_progress: Progress | None = None,
        collect: list[MemoryRecord] | None = None,
    ) -> IngestReport:
        self._check_batches(batches)
        agent_id = _check_id(agent_id, "agent_id", required=False)
        if not isinstance(category, (str, Category)):
            raise InputError(f"category must be a string, got {describe(category)}", field="category",
                             fix="pass one of: " + ", ".join(c.value for c in Category))
        category = Category.parse(category)
        metadata = check_metadata(metadata, limits=self.config.limits) if metadata is not None else None
        started = time.perf_counter()
        now = _utc_now()
        recorded_at = now.isoformat(timespec="seconds") + "Z"
        built = [
            build_session_records(
                s, user_id=user_id, agent_id=agent_id, category=category, recorded_at=recorded_at,
                default_date=now, metadata=metadata, resolve_dates=self.config.ingest.resolve_dates,
                session_memory=self.config.ingest.session_memories,
            )
            for user_id, sessions in batches
            for s in sessions
        ]
        turn_records = [r for b in built for r in b.turns]
        if not turn_records:
            raise InputError("nothing to remember: no turns were given", field="messages",
                             fix="pass at least one message with non-empty content")
        plan, failures = self._extract(built, recorded_at)
        embed_started = time.perf_counter()
        turn_vectors = self._embed(turn_records, on_progress)
        node_vectors = self._embed(plan.insert, None)
        embed_seconds = time.perf_counter() - embed_started

        records: list[MemoryRecord] = []
        vectors: list[np.ndarray] = []
        offset = 0
        for b in built:
            block = turn_vectors[offset:offset + len(b.turns)]
            offset += len(b.turns)
            records.extend(b.turns)
            vectors.extend(block)
            if b.session is not None:
                records.append(b.session)
                vectors.append(session_vector(np.stack([own_vector(v) for v in block])))
        events = [HistoryEvent(r.id, "ADD", None, r.text, recorded_at) for r in records] + plan.events
        records += plan.insert
        vectors += list(node_vectors)
        self._ensure_index()
        self._store.write(records, vectors, events, amended=plan.amended)
        if collect is not None:
            collect.extend(records)
        return IngestReport(
            sessions=len(built), turns=len(turn_records), memories=len(records),
            seconds=time.perf_counter() - started, embed_seconds=embed_seconds,
            embedded_texts=len(turn_records) + len(plan.insert), extracted=len(plan.insert), failures=failures,
        )

    def _check_batches(self, batches: list[tuple[str, list[Session]]]) -> None:
        """Every session to ingest, checked before anything is built: ids, texts and their sizes."""
        limits = self.config.limits
        turns = 0
        for user_id, sessions in batches:
            _require_user(user_id)
            for session in sessions:
                if not isinstance(session, Session):
                    raise InputError(f"expected a Session, got {describe(session)}", field="sessions",
                                     fix="build sessions with memlane.Session or load_conversations()")
                _check_id(session.session_id, "session_id", required=False)
                if session.metadata:
                    check_metadata(session.metadata, field="session.metadata", limits=limits)
                turns += len(parse_messages(session, source="session", limits=limits))  # checks every turn
        if turns > limits.max_import_turns:
            raise InputError(f"{turns:,} turns in one call; at most {limits.max_import_turns:,} are accepted",
                             field="sessions", fix="import them in several calls")

    # -- memory nodes (LLM extraction) -------------------------------------------------------

    def _extract(self, built: list, recorded_at: str):
        """Run the store's nodes over the new sessions; (update plan, failures). No LLM: nothing to do."""
        from memlane.nodes.extract import SessionInput, extract
        from memlane.nodes.lifecycle import UpdatePlan, plan_updates

        if not (self.config.llm.configured and self.config.extraction.enabled):
            return UpdatePlan(), []
        nodes = self._node_versions(install_defaults=True)
        if not nodes:
            return UpdatePlan(), []
        inputs = [SessionInput(b.turns[0].user_id, b.turns[0].session_id, parse_session_date(b.turns[0].session_date), b.turns)
                  for b in built if b.turns]
        extracted, failures = extract(self._llm_client(), nodes, inputs, new_id=new_id, recorded_at=recorded_at)
        specs = {spec.name: spec for spec, _ in nodes}
        plan = UpdatePlan()
        for user in dict.fromkeys(r.user_id for r in extracted):
            mine = [r for r in extracted if r.user_id == user]
            current: dict[str, MemoryRecord] = {}
            for node in {r.node_type for r in mine}:
                keys = sorted({r.fact_key for r in mine if r.node_type == node and r.fact_key})
                current.update((r.fact_key, r) for r in self._store.current_facts(user, node, keys))
            part = plan_updates(mine, current, specs, recorded_at)
            plan.insert += part.insert
            plan.amended += part.amended
            plan.events += part.events
        return plan, failures

    def _llm_client(self):
        if self._llm is None:
            from memlane.llm import LLMClient

            self._llm = LLMClient(self.config.llm)
        return self._llm

    def _node_versions(self, install_defaults: bool = False) -> list[tuple[NodeSpec, int]]:
        require(self._store, "nodes")
        rows = self._store.node_definitions()
        if not rows and install_defaults and not self._store.nodes_ever_defined():
            for spec in self._topology():
                self._store.define_node(spec.name, spec.fingerprint(), _now_iso())
            rows = self._store.node_definitions()
        cache = self._parsed_nodes
        out = []
        for name, version, spec in rows:
            if (name, version) not in cache:  # parsing checks the JSON Schema: once per version, not per search
                cache[(name, version)] = parse_spec(json.loads(spec), f"store node {name}", stored=True)
            out.append((cache[(name, version)], version))
        return out

    def _topology(self) -> list[NodeSpec]:
        from memlane.nodes.spec import default_topology

        source = self.config.extraction.nodes
        return default_topology() if source == "default" else load_specs(source)

    def nodes(self) -> list[NodeSpec]:
        """The memory nodes this store runs at ingestion (latest version of each)."""
        return [spec for spec, _ in self._node_versions()]

    def node_versions(self) -> list[tuple[NodeSpec, int]]:
        """Each node this store runs with the version of its definition (1 for the first)."""
        return self._node_versions()

    def define_node(self, node: NodeSpec | dict | str | Path) -> list[tuple[str, int]]:
        """Add or change memory nodes: a NodeSpec, a dict, or a YAML/JSON file of one or more.

        Returns (name, version) for each. A changed template re-embeds that node's memories (and
        only those); a changed prompt or schema applies to sessions ingested from now on.
        """
        if isinstance(node, NodeSpec):
            specs = [node]
        elif isinstance(node, dict):
            specs = [parse_spec(node)]
        elif isinstance(node, (str, Path)) and str(node).strip():
            path = Path(node).expanduser()
            if not path.is_file():
                raise InputError("no such file", file=str(node), fix="pass a YAML or JSON file of node definitions")
            if path.stat().st_size > self.config.limits.max_metadata_bytes * 16:
                raise InputError(f"the file is {path.stat().st_size:,} bytes; node definitions are small",
                                 file=str(node), fix="check that this is a node definition file")
            specs = load_specs(path)
        else:
            raise InputError(f"a node is a NodeSpec, a dict or a YAML/JSON file, got {describe(node)}",
                             field="node", fix="pass a path such as 'nodes.yaml'")
        out = []
        for spec in specs:
            version, previous = self._store.define_node(spec.name, spec.fingerprint(), _now_iso())
            if previous is not None and json.loads(previous).get("template") != spec.template:
                self._reembed_node(spec)
            out.append((spec.name, version))
        return out

    def remove_node(self, name: str) -> None:
        """Stop running a node. Its memories stay (delete them by id or with delete_all)."""
        _check_id(name, "name")
        if not self._store.remove_node(name, _now_iso()):
            known = ", ".join(s.name for s in self.nodes()) or "none"
            raise NotFoundError(f"no memory node named '{name}' (defined: {known})")

    def _reembed_node(self, spec: NodeSpec) -> int:
        from memlane.nodes.spec import render

        records = self._store.records_of_node(spec.name)
        if not records:
            return 0
        at = _now_iso()
        events = []
        for record in records:
            day = (record.session_date or record.recorded_at or "")[:10]
            builtins = {"session_date": day, "absolute_date": record.event_dates[0].start if record.event_dates else day}
            old_text = record.text
            record.text = record.embed_text = render(spec.template, record.metadata.get("fields", {}), builtins)
            events.append(HistoryEvent(record.id, "UPDATE", old_text, record.text, at))
        self._store.replace_many(records, self._embed(records, None), events)
        return len(records)

    # -- lifecycle: consolidation and retention ----------------------------------------------

    def consolidate(self, user_id: str) -> int:
        """Merge a user's duplicate and near-duplicate node memories (verbatim turns are left as said),
        keeping every evidence turn on the oldest; returns how many memories were merged away."""
        from memlane.nodes.lifecycle import duplicate_groups, merge_evidence

        _require_user(user_id)
        merged = 0
        at = _now_iso()
        for spec in self.nodes():
            records = [r for r in scan(self._store, user_id, Filter(node_type=spec.name)) if r.current]
            if len(records) < 2:
                continue
            vectors = self._store.vectors(user_id, [r.id for r in records])
            for group in duplicate_groups([r.text for r in records], vectors, self.config.extraction.consolidate_threshold):
                keep, rest = records[group[0]], [records[i] for i in group[1:]]
                for other in rest:
                    merge_evidence(keep, other)
                events = [HistoryEvent(keep.id, "MERGE", None, f"merged {len(rest)} duplicate(s)", at)]
                events += [HistoryEvent(o.id, "DELETE", o.text, f"merged into {keep.id}", at) for o in rest]
                self._store.merge(keep, [o.id for o in rest], events)
                merged += len(rest)
        return merged

    def apply_retention(self, *, now: str | date | datetime | None = None, user_id: str | None = None) -> int:
        """Expire memories older than their category's `retention` limit; returns how many.
        Expired memories leave search but stay recoverable (restore) until purged."""
        from memlane.nodes.lifecycle import expired_by_retention

        anchor = parse_session_date(now, field="now") if now is not None else _utc_now()
        users = [_require_user(user_id)] if user_id is not None else None
        limits = self.config.retention.limits()
        if not any(limits.values()):
            return 0
        require(self._store, "retention")
        users = users or self._store.users()
        total = 0
        for user in users:
            due = expired_by_retention(scan(self._store, user), limits, anchor)
            for rule in sorted({r for _, r in due}):
                total += self._store.expire(user, [rec.id for rec, r in due if r == rule], _now_iso(), rule)
        return total

    def expired(self, user_id: str) -> list[MemoryRecord]:
        """A user's expired memories, recoverable with restore() until purge()."""
        _require_user(user_id)
        require(self._store, "retention")
        return [record for record, _, _ in self._store.expired(user_id)]

    def restore(self, memory_id: str, *, user_id: str) -> MemoryRecord:
        """Bring an expired memory back into search."""
        _require_user(user_id)
        _check_id(memory_id, "memory_id")
        require(self._store, "retention")
        found = {r.id: r for r, _, _ in self._store.expired(user_id)}
        if memory_id not in found:
            raise NotFoundError(f"no expired memory with id {memory_id} for user '{user_id}'")
        vector = self._embed([found[memory_id]], None)[0]
        self._store.restore(user_id, [memory_id], _now_iso(), {memory_id: vector})
        return found[memory_id]

    def purge(self, user_id: str) -> int:
        """Delete a user's expired memories for good; returns how many."""
        _require_user(user_id)
        require(self._store, "retention")
        return self._store.purge(user_id, _now_iso())


    def _embed(self, records: list[MemoryRecord], on_progress: Progress | None) -> list[np.ndarray]:
        """Each record's vectors (see `embed_records`), in batches, reporting progress."""
        return embed_records(self._embedder, records, max(self.config.embedder.batch_size * 4, 1), on_progress,
                             passages=self.config.ingest.passages)

    def update(self, memory_id: str, text: str, *, user_id: str | None = None, admin: bool = False) -> MemoryRecord:
        """Replace a memory's text (dates are resolved again, the vector recomputed); kept in history.

        The old words leave search entirely: a turn's session memory is rewritten from its turns,
        and facts an LLM extracted from the old text lose it as evidence (those with no other
        evidence are deleted)."""
        check_text(text, field="text", max_chars=self.config.limits.max_text_chars, allow_blank=True,
                   limit_name="limits.max_text_chars")
        if not text.strip():
            raise InputError("the new text is empty", field="text", fix="pass the memory's new, non-empty text")
        record = self._require(memory_id, user_id, admin)
        self._rewrite_text(record, text)
        vector = self._embed([record], None)[0]  # the slow part, before the store is held
        at = _now_iso()
        with self._store.atomic():  # what is read from here on cannot change before the write
            current = self._require(memory_id, record.user_id, True)
            old_text = current.text
            self._rewrite_text(current, text)
            events = [HistoryEvent(current.id, "UPDATE", old_text, text, at)]
            removed, rewrite = self._forget_derived(current, at, events, changed=(current, vector))
            self._store.delete(current.user_id, removed, events, rewrite=[(current, vector), *rewrite])
        return current

    def _rewrite_text(self, record: MemoryRecord, text: str) -> None:
        """Set a record's new text, with its dates resolved again and its embedded text rebuilt."""
        anchor = parse_session_date(record.session_date) if record.session_date else _utc_now()
        record.text = text
        record.event_dates = resolve_expressions(text, anchor) if self.config.ingest.resolve_dates else []
        if record.node_type == NodeType.TURN.value:
            record.embed_text = turn_embed_text(record.speaker or "user", text, anchor.date().isoformat(), record.event_dates)
        else:
            record.embed_text = text

    def delete(self, memory_id: str, *, user_id: str | None = None, admin: bool = False) -> None:
        """Forget one memory. Deleting a turn also rewrites its session memory from the turns that remain
        (or deletes it when fewer than two remain), and drops it from the evidence of extracted memories
        (deleting those it was the only evidence of), so the deleted words leave search entirely."""
        at = _now_iso()
        with self._store.atomic():  # no other writer changes the session between our read and write
            record = self._require(memory_id, user_id, admin)
            events = [HistoryEvent(record.id, "DELETE", record.text, None, at)]
            removed, rewrite = self._forget_derived(record, at, events)
            self._store.delete(record.user_id, [record.id, *removed], events, rewrite=rewrite)

    def _forget_derived(self, record: MemoryRecord, at: str, events: list[HistoryEvent], *,
                        changed: tuple[MemoryRecord, np.ndarray] | None = None):
        """What else must change when a turn is deleted or (with `changed`: its new record and
        vector) rewritten, so that its old words are found nowhere: its session memory rewritten
        from its turns as they will be (deleted under two turns), and the memories extracted from
        it losing it as evidence (deleted with none left). Appends their history events; returns
        (ids to delete, [(record, vector)] to rewrite)."""
        removed: list[str] = []
        rewrite: list[tuple[MemoryRecord, np.ndarray]] = []
        if record.node_type != NodeType.TURN.value:
            return removed, rewrite
        refreshed = self._refreshed_session(record.user_id, record.id, record.session_id,
                                            changed={record.id: changed} if changed else None)
        if refreshed and refreshed[0] == "rewrite":
            _, session, session_vec, old_session_text = refreshed
            rewrite.append((session, session_vec))
            events.append(HistoryEvent(session.id, "UPDATE", old_session_text, session.text, at))
        elif refreshed:
            _, session = refreshed
            removed.append(session.id)
            events.append(HistoryEvent(session.id, "DELETE", session.text, "fewer than two turns remain", at))
        # Facts an LLM extracted from this turn lose it as evidence; with none left they go too.
        for cited in self._store.citing(record.user_id, record.id):
            cited.metadata["evidence"] = [e for e in cited.metadata.get("evidence", []) if e != record.id]
            if cited.metadata["evidence"]:
                rewrite.append((cited, self._store.vectors(record.user_id, [cited.id])[0]))
            else:
                removed.append(cited.id)
                reason = "its evidence was changed" if changed else "its evidence was deleted"
                events.append(HistoryEvent(cited.id, "DELETE", cited.text, reason, at))
        return removed, rewrite

    def _refreshed_session(self, user_id: str, turn_id: str, session_id: str | None, *,
                           changed: dict | None = None):
        """The session memory holding turn `turn_id`, rebuilt as at ingestion from its turns as
        they will be (without the turn, or with its `changed` record and vector):
        ("rewrite", record, vector, old text), ("delete", record) when under two turns remain, or
        None. Several add() calls with one session_id make one session memory each; each holds
        only its own turns (`turn_ids`)."""
        if session_id is None:
            return None
        members = sorted(scan(self._store, user_id, Filter(session_id=(session_id,))),
                         key=lambda r: (r.turn_index is not None, r.turn_index or 0))  # stable: insertion order
        sessions = [r for r in members if r.node_type == NodeType.SESSION.value]
        session = next((r for r in sessions if turn_id in r.metadata.get("turn_ids", ())), None)
        if session is None:  # written before sessions listed their turns: the session's only one
            legacy = [r for r in sessions if "turn_ids" not in r.metadata]
            session = legacy[0] if len(legacy) == 1 else None
        if session is None:
            return None
        changed = changed or {}
        by_id = {r.id: r for r in members if r.node_type == NodeType.TURN.value}
        order = session.metadata.get("turn_ids") or list(by_id)
        turns = [changed[t][0] if t in changed else by_id[t] for t in order
                 if t in by_id and (t != turn_id or t in changed)]
        if len(turns) < 2:
            return ("delete", session)
        kept = [t.id for t in turns if t.id not in changed]
        stored = dict(zip(kept, self._store.vectors(user_id, kept))) if kept else {}
        vectors = np.stack([own_vector(changed[t.id][1]) if t.id in changed else stored[t.id] for t in turns])
        old_text = session.text
        transcript = "\n".join(f"{t.speaker}: {t.text}" for t in turns)
        day = (session.session_date or "")[:10]
        session.text = transcript
        session.embed_text = f"[{day}]\n{transcript}" if day else transcript
        session.event_dates = [e for t in turns for e in t.event_dates]
        session.metadata = {**session.metadata, "turns": len(turns), "turn_ids": [t.id for t in turns]}
        return ("rewrite", session, session_vector(vectors), old_text)

    def delete_all(self, user_id: str) -> int:
        """Forget every memory of one user; returns how many were deleted."""
        _require_user(user_id)
        return self._store.delete_user(user_id, _utc_now().isoformat(timespec="seconds") + "Z")

    def reset(self) -> None:
        """Forget everything, for every user."""
        self._store.clear()

    def delete_document(self, path: str, *, user_id: str) -> int:
        """Forget one document of a user (as `add_documents` named it, "notes/plan.md"): its
        document-level memory and every chunk of it, each with a DELETE event in its history.
        Returns how many memories were deleted; NotFoundError when the user has no such document."""
        _require_user(user_id)
        check_text(path, field="path", max_chars=_MAX_ID_CHARS)
        at = _now_iso()
        with self._store.atomic():
            records = scan(self._store, user_id, Filter.parse({"source": path, "node_type": list(_DOCUMENT_KINDS)}))
            if not records:
                raise NotFoundError(f"no document {path!r} for user '{user_id}'")
            events = [HistoryEvent(r.id, "DELETE", r.text, None, at) for r in records]
            self._store.delete(user_id, [r.id for r in records], events)
        return len(records)

    # -- reading ---------------------------------------------------------------------------

    def search(
        self,
        query: str,
        *,
        user_id: str,
        limit: int = 10,
        filters: Filter | dict[str, Any] | None = None,
        now: str | date | datetime | None = None,
        explain: bool = False,
        as_of: str | date | datetime | None = None,
        group_by: str | None = None,
    ) -> list[Hit]:
        """Find a user's memories relevant to `query`. `filters` (a `Filter` or its dict form) restrict
        what may be found; `now` anchors times in the question ("last week"); `as_of` searches the
        state of that day: what had been said by then and was not yet superseded.

        `group_by="document"` searches document memories and returns documents instead, ranked by
        their best chunks: each hit's record is the document-level memory and its `parts` are the
        document's chunks that were found, best first."""
        _require_user(user_id)
        limits = self.config.limits
        if not isinstance(query, str) or not query.strip():
            raise InputError(f"the query is empty or not text ({describe(query)})", field="query",
                             fix="pass the question to search for")
        if len(query) > limits.max_query_chars:
            raise InputError(f"the query is {len(query):,} characters long; at most {limits.max_query_chars:,} are "
                             "accepted", field="query", fix="ask a shorter question, or raise limits.max_query_chars")
        check_text(query, field="query")
        _check_int(limit, "limit", 1, limits.max_results, "limit=10")
        if not isinstance(explain, bool):
            raise InputError(f"explain must be True or False, got {describe(explain)}", field="explain",
                             fix="pass explain=True")
        wanted = Filter.parse(filters)
        if as_of is not None:
            wanted = wanted.with_(as_of=as_of)
        if group_by is not None:
            wanted = _document_filter(group_by, wanted)
        anchor = parse_session_date(now, field="now") if now is not None else _utc_now()
        if self._store.active_index() is None:
            return []
        wanted, notes = self._route(query, wanted)
        if group_by is None:
            return self._retriever.search(user_id, query, limit=limit, filters=wanted, now=anchor,
                                          explain=explain, notes=notes)
        pool = min(max(limit * GROUP_POOL, GROUP_POOL_MIN), limits.max_results)
        hits = self._retriever.search(user_id, query, limit=pool, filters=wanted, now=anchor, explain=explain,
                                      notes=notes)
        return self._documents_of(user_id, hits, limit)

    def _documents_of(self, user_id: str, hits: list[Hit], limit: int) -> list[Hit]:
        """`hits` (chunks and documents) as documents, ranked by `document_scores`."""
        groups: dict[str, list[Hit]] = {}
        for hit in hits:
            if hit.record.session_id is not None:
                groups.setdefault(hit.record.session_id, []).append(hit)
        scores = document_scores({key: [h.score for h in group] for key, group in groups.items()})
        top = sorted(scores, key=lambda key: -scores[key])[:limit]
        documents = {key: h.record for key in top for h in groups[key] if h.record.node_type == NodeType.DOCUMENT.value}
        # The others by the id their chunks name, not by scanning for the session.
        missing = {h.record.metadata["document_id"] for key in top if key not in documents for h in groups[key]
                   if h.record.metadata.get("document_id")}
        documents.update((r.session_id, r) for r in self._store.get_many(user_id, sorted(missing)))
        out = []
        for key in top:
            parts = [h for h in groups[key] if h.record.node_type != NodeType.DOCUMENT.value]
            record = documents.get(key) or groups[key][0].record
            out.append(Hit(record=record, score=scores[key], parts=parts))
        return out

    def _route(self, query: str, wanted: Filter) -> tuple[Filter, list[str]]:
        """Restrict the search to the nodes the question is about (turns and sessions always count),
        unless the filter already names node types: the filter to search with, and notes on why."""
        from memlane.nodes.router import route_by_llm, route_by_rules

        if wanted.node_type is not None or self.config.extraction.router == "off":
            return wanted, []
        specs = self.nodes()
        if not specs:
            return wanted, []
        if self.config.extraction.router == "llm" and self.config.llm.configured:
            route = route_by_llm(query, specs, self._llm_client())
        else:
            route = route_by_rules(query, specs)
        if len(route.nodes) < len(specs):
            wanted = wanted.only(node_type=[NodeType.TURN, NodeType.SESSION, NodeType.CHUNK, NodeType.DOCUMENT,
                                                 *route.nodes])
        return wanted, [f"routed: {route.reason}", *route.notes]

    def get(self, memory_id: str, *, user_id: str | None = None, admin: bool = False) -> MemoryRecord | None:
        """One of the user's memories by id, or None (also when it belongs to another user).
        `admin=True` without `user_id` looks across every user (for operators, never tenants)."""
        return self._store.get(_scope(user_id, admin), _check_id(memory_id, "memory_id"))

    def get_all(self, user_id: str, limit: int = 100, cursor: str | None = None,
                filters: Filter | dict[str, Any] | None = None) -> Page:
        """One page of a user's memories matching `filters` (a `Filter` or its dict form), oldest
        first; pass `next_cursor` back for the next."""
        _require_user(user_id)
        _check_int(limit, "limit", 1, self.config.limits.max_page, "limit=100")
        records, next_cursor = self._store.list(user_id, limit, _check_cursor(cursor), Filter.parse(filters))
        return Page(records, next_cursor)

    def history(self, memory_id: str, *, user_id: str | None = None, admin: bool = False) -> list[HistoryEvent]:
        """Every ADD, UPDATE and DELETE of one of the user's memories, oldest first (kept after
        deletion). `admin=True` without `user_id` looks across every user."""
        return self._store.history(_scope(user_id, admin), _check_id(memory_id, "memory_id"))

    def warm_up(self) -> None:
        """Load now what the first search would load (the embedding model and its ONNX export,
        seconds on a CPU): a server calls this before taking requests, so none waits for it."""
        self._embedder.encode(["warm up"], purpose="query")

    def stats(self) -> StoreStats:
        return self._store.stats()

    @property
    def embedder(self) -> Embedder:
        return self._embedder

    def _require(self, memory_id: str, user_id: str | None, admin: bool = False) -> MemoryRecord:
        record = self._store.get(_scope(user_id, admin), _check_id(memory_id, "memory_id"))
        if record is None:
            owner = f" for user '{user_id}'" if user_id else ""
            raise NotFoundError(f"no memory with id {memory_id}{owner}")
        return record

    def close(self) -> None:
        self._store.close()

    def __enter__(self) -> "Memory":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _scope(user_id: Any, admin: bool) -> str | None:
    """The user a call by id acts for: `user_id`, or every user only when the caller says
    `admin=True`. A tenant call never reaches another user's memory by leaving user_id out."""
    if user_id is not None or not admin:
        if user_id is None:
            raise InputError("user_id is required", field="user_id",
                             fix="pass user_id='alice' (or admin=True to act on any user's memory)")
        return _require_user(user_id)
    if admin is not True:
        raise InputError(f"admin must be True or False, got {describe(admin)}", field="admin", fix="pass admin=True")
    return None


def _now_iso() -> str:
    return _utc_now().isoformat(timespec="seconds") + "Z"


def _iso(value: str | date | datetime | None) -> str | None:
    if value is None:
        return None
    return parse_session_date(value).isoformat()


def reindex(
    path: str | Path,
    embedder_config: EmbedderConfig | None = None,
    *,
    embedder: Embedder | None = None,
    batch_size: int = 256,
    on_progress: Progress | None = None,
    passages: bool = True,
) -> ReindexReport:
    """Embed every memory of a store with another model into a new index, then swap atomically.

    Until the swap the old index keeps answering searches; an interrupted run leaves the old index
    active and is resumed by running reindex again with the same model.
    """
    started = time.perf_counter()
    embedder = embedder or make_embedders(embedder_config or EmbedderConfig())[0]
    store = open_store(path)
    try:
        require(store, "reindex")
        resumed_index = store.building_index(embedder.name, embedder.dims)
        index = resumed_index or store.create_index(embedder.name, embedder.dims)
        total = store.stats().memories
        done = 0
        # Turns first; a session's vector is then the mean of its turns' new vectors, as at ingest.
        for sessions in (False, True):
            while batch := store.missing_from_index(index, batch_size, sessions=sessions):
                records = [record for _, record in batch]
                if sessions:
                    vectors = [_session_vector_from(store, index, embedder, r.embed_text, r.metadata) for r in records]
                else:
                    vectors = embed_records(embedder, records, batch_size, passages=passages)
                store.put_index_vectors(index, batch, vectors)
                done += len(batch)
                if on_progress:
                    on_progress(min(done, total), total)
        store.activate_index(index)
        return ReindexReport(embedder.name, embedder.dims, total, time.perf_counter() - started, resumed_index is not None)
    finally:
        store.close()


def _session_vector_from(store: Store, index, embedder: Embedder, text: str, metadata: dict) -> np.ndarray:
    turn_vectors = store.index_vectors(index, metadata.get("turn_ids", []))
    if len(turn_vectors):
        return session_vector(turn_vectors)
    return embedder.encode([text], purpose="document")[0]
