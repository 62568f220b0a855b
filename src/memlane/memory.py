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
from memlane.embed import Embedder, make_embedders
from memlane.errors import InputError, ModelMismatchError, NotFoundError
from memlane.ingest.build import (
    build_session_records,
    embed_records,
    new_id,
    own_vector,
    session_vector,
    turn_embed_text,
)
from memlane.ingest.dates import parse_session_date
from memlane.ingest.formats import Conversation, parse_messages
from memlane.ingest.temporal import resolve_expressions
from memlane.nodes.spec import NodeSpec, load_specs, parse_spec
from memlane.records import Category, HistoryEvent, Hit, MemoryRecord, NodeType, Session
from memlane.retrieve.pipeline import Retriever
from memlane.store import StoreStats
from memlane.store.sqlite import SQLiteStore

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


def _require_user(user_id: Any) -> str:
    if not isinstance(user_id, str) or not user_id.strip():
        raise InputError(f"user_id must be a non-empty string, got {user_id!r}", field="user_id",
                         fix="pass user_id='alice' (every memory belongs to exactly one user)")
    return user_id


class Memory:
    """A long-term memory store in one SQLite file.

    >>> m = Memory("memories.db")
    >>> m.add([{"role": "user", "content": "I moved to Lisbon last month"}], user_id="ana")
    >>> m.search("Where does Ana live?", user_id="ana")
    """

    def __init__(self, path: str | Path = "memlane.db", config: MemoryConfig | None = None, *,
                 embedder: Embedder | None = None) -> None:
        self.config = config or MemoryConfig()
        self.path = str(path)
        if embedder is not None:
            self._embedder, rescorer = embedder, None
        else:
            self._embedder, rescorer = make_embedders(self.config.active_embedder())
        self._store = SQLiteStore(self.path)
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
        if isinstance(messages, Session):
            session = messages
            if session_id or session_date:
                session = Session(turns=session.turns, session_id=session_id or session.session_id,
                                  date=_iso(session_date) or session.date, metadata=session.metadata)
        else:
            if isinstance(messages, str):
                messages = [{"role": "user", "content": messages}]
            session = Session(turns=parse_messages(list(messages)), session_id=session_id, date=_iso(session_date))
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
        for user_id, _ in batches:
            _require_user(user_id)
        category = Category.parse(category)
        if metadata is not None and not isinstance(metadata, dict):
            raise InputError(f"metadata must be a dict, got {type(metadata).__name__}", field="metadata",
                             fix="pass metadata={'key': 'value'}")
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
        rows = self._store.node_definitions()
        if not rows and install_defaults and not self._store.nodes_ever_defined():
            for spec in self._topology():
                self._store.define_node(spec.name, spec.fingerprint(), _now_iso())
            rows = self._store.node_definitions()
        cache = self._parsed_nodes
        out = []
        for name, version, spec in rows:
            if (name, version) not in cache:  # parsing checks the JSON Schema: once per version, not per search
                cache[(name, version)] = parse_spec(json.loads(spec), f"store node {name}")
            out.append((cache[(name, version)], version))
        return out

    def _topology(self) -> list[NodeSpec]:
        from memlane.nodes.spec import default_topology

        source = self.config.extraction.nodes
        return default_topology() if source == "default" else load_specs(source)

    def nodes(self) -> list[NodeSpec]:
        """The memory nodes this store runs at ingestion (latest version of each)."""
        return [spec for spec, _ in self._node_versions()]

    def define_node(self, node: NodeSpec | dict | str | Path) -> list[tuple[str, int]]:
        """Add or change memory nodes: a NodeSpec, a dict, or a YAML/JSON file of one or more.

        Returns (name, version) for each. A changed template re-embeds that node's memories (and
        only those); a changed prompt or schema applies to sessions ingested from now on.
        """
        if isinstance(node, NodeSpec):
            specs = [node]
        elif isinstance(node, dict):
            specs = [parse_spec(node)]
        else:
            specs = load_specs(node)
        out = []
        for spec in specs:
            version, previous = self._store.define_node(spec.name, spec.fingerprint(), _now_iso())
            if previous is not None and json.loads(previous).get("template") != spec.template:
                self._reembed_node(spec)
            out.append((spec.name, version))
        return out

    def remove_node(self, name: str) -> None:
        """Stop running a node. Its memories stay (delete them by id or with delete_all)."""
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
            records = [r for r in self._store.list_all(user_id, {"node_type": spec.name}) if r.current]
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

        limits = self.config.retention.limits()
        if not any(limits.values()):
            return 0
        anchor = parse_session_date(now) if now is not None else _utc_now()
        users = [_require_user(user_id)] if user_id else self._store.users()
        total = 0
        for user in users:
            due = expired_by_retention(self._store.list_all(user, None), limits, anchor)
            for rule in sorted({r for _, r in due}):
                total += self._store.expire(user, [rec.id for rec, r in due if r == rule], _now_iso(), rule)
        return total

    def expired(self, user_id: str) -> list[MemoryRecord]:
        """A user's expired memories, recoverable with restore() until purge()."""
        _require_user(user_id)
        return [record for record, _, _ in self._store.expired(user_id)]

    def restore(self, memory_id: str, *, user_id: str) -> MemoryRecord:
        """Bring an expired memory back into search."""
        _require_user(user_id)
        found = {r.id: r for r, _, _ in self._store.expired(user_id)}
        if memory_id not in found:
            raise NotFoundError(f"no expired memory with id {memory_id} for user '{user_id}'")
        vector = self._embed([found[memory_id]], None)[0]
        self._store.restore(user_id, [memory_id], _now_iso(), {memory_id: vector})
        return found[memory_id]

    def purge(self, user_id: str) -> int:
        """Delete a user's expired memories for good; returns how many."""
        _require_user(user_id)
        return self._store.purge(user_id, _now_iso())


    def _embed(self, records: list[MemoryRecord], on_progress: Progress | None) -> list[np.ndarray]:
        """Each record's vectors (see `embed_records`), in batches, reporting progress."""
        return embed_records(self._embedder, records, max(self.config.embedder.batch_size * 4, 1), on_progress,
                             passages=self.config.ingest.passages)

    def update(self, memory_id: str, text: str, *, user_id: str | None = None) -> MemoryRecord:
        """Replace a memory's text (dates are resolved again, the vector recomputed); kept in history."""
        if not isinstance(text, str) or not text.strip():
            raise InputError("the new text is empty", field="text", fix="pass the memory's new, non-empty text")
        record = self._require(memory_id, user_id)
        old_text = record.text
        anchor = parse_session_date(record.session_date) if record.session_date else _utc_now()
        record.text = text
        record.event_dates = resolve_expressions(text, anchor) if self.config.ingest.resolve_dates else []
        if record.node_type == NodeType.TURN.value:
            record.embed_text = turn_embed_text(record.speaker or "user", text, anchor.date().isoformat(), record.event_dates)
        else:
            record.embed_text = text
        vector = self._embed([record], None)[0]
        at = _now_iso()
        records, vectors = [record], [vector]
        events = [HistoryEvent(record.id, "UPDATE", old_text, text, at)]
        if record.node_type == NodeType.TURN.value:
            refreshed = self._refreshed_session(record.user_id, record.session_id, changed={record.id: (record, vector)})
            if refreshed and refreshed[0] == "rewrite":
                _, session, session_vec, old_session_text = refreshed
                records.append(session)
                vectors.append(session_vec)
                events.append(HistoryEvent(session.id, "UPDATE", old_session_text, session.text, at))
        self._store.replace_many(records, vectors, events)
        return record

    def delete(self, memory_id: str, *, user_id: str | None = None) -> None:
        """Forget one memory. Deleting a turn also rewrites its session memory from the turns that remain
        (or deletes it when fewer than two remain), and drops it from the evidence of extracted memories
        (deleting those it was the only evidence of), so the deleted words leave search entirely."""
        record = self._require(memory_id, user_id)
        at = _now_iso()
        ids = [record.id]
        events = [HistoryEvent(record.id, "DELETE", record.text, None, at)]
        rewrite = []
        if record.node_type == NodeType.TURN.value:
            refreshed = self._refreshed_session(record.user_id, record.session_id, removed={record.id})
            if refreshed and refreshed[0] == "rewrite":
                _, session, session_vec, old_session_text = refreshed
                rewrite.append((session, session_vec))
                events.append(HistoryEvent(session.id, "UPDATE", old_session_text, session.text, at))
            elif refreshed:
                _, session = refreshed
                ids.append(session.id)
                events.append(HistoryEvent(session.id, "DELETE", session.text, "fewer than two turns remain", at))
            # Facts an LLM extracted from this turn lose it as evidence; with none left they go too.
            for cited in self._store.citing(record.user_id, record.id):
                cited.metadata["evidence"] = [e for e in cited.metadata.get("evidence", []) if e != record.id]
                if cited.metadata["evidence"]:
                    rewrite.append((cited, self._store.vectors(record.user_id, [cited.id])[0]))
                else:
                    ids.append(cited.id)
                    events.append(HistoryEvent(cited.id, "DELETE", cited.text, "its evidence was deleted", at))
        self._store.delete(record.user_id, ids, events, rewrite=rewrite)

    def _refreshed_session(self, user_id: str, session_id: str | None, *, removed: set[str] = frozenset(),
                           changed: dict | None = None):
        """The session memory of a changed turn, rebuilt as at ingestion from its turns as they will be:
        ("rewrite", record, vector, old text), ("delete", record) when under two turns remain, or None."""
        if session_id is None:
            return None
        members = self._store.session_memories(user_id, session_id)
        session = next((r for r in members if r.node_type == NodeType.SESSION.value), None)
        if session is None:
            return None
        changed = changed or {}
        turns = [changed[r.id][0] if r.id in changed else r for r in members
                 if r.node_type == NodeType.TURN.value and r.id not in removed]
        if len(turns) < 2:
            return ("delete", session)
        stored = {t.id: v for t, v in zip(turns, self._store.vectors(user_id, [t.id for t in turns]))}
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

    # -- reading ---------------------------------------------------------------------------

    def search(
        self,
        query: str,
        *,
        user_id: str,
        limit: int = 10,
        filters: dict[str, Any] | None = None,
        now: str | date | datetime | None = None,
        explain: bool = False,
        as_of: str | date | datetime | None = None,
    ) -> list[Hit]:
        """Find a user's memories relevant to `query`. `now` anchors times in the question ("last week");
        `as_of` searches the state of that day: what had been said by then and was not yet superseded."""
        _require_user(user_id)
        if not isinstance(query, str) or not query.strip():
            raise InputError("the query is empty", field="query", fix="pass the question to search for")
        if not isinstance(limit, int) or limit < 1:
            raise InputError(f"limit must be a positive integer, got {limit!r}", field="limit", fix="pass limit=10")
        if filters is not None and not isinstance(filters, dict):
            raise InputError("filters must be a dict", field="filters", fix="pass filters={'node_type': 'turn'}")
        anchor = parse_session_date(now) if now is not None else _utc_now()
        if self._store.active_index() is None:
            return []
        filters = dict(filters or {})
        if as_of is not None:
            filters["as_of"] = parse_session_date(as_of).date().isoformat()
        notes = self._route(query, filters)
        return self._retriever.search(user_id, query, limit=limit, filters=filters or None, now=anchor,
                                      explain=explain, notes=notes)

    def _route(self, query: str, filters: dict[str, Any]) -> list[str]:
        """Restrict the search to the nodes the question is about (turns and sessions always count)."""
        from memlane.nodes.router import route_by_llm, route_by_rules

        if "node_type" in filters or self.config.extraction.router == "off":
            return []
        specs = self.nodes()
        if not specs:
            return []
        if self.config.extraction.router == "llm" and self.config.llm.configured:
            route = route_by_llm(query, specs, self._llm_client())
        else:
            route = route_by_rules(query, specs)
        if len(route.nodes) < len(specs):
            filters["node_type"] = [NodeType.TURN.value, NodeType.SESSION.value, *route.nodes]
        return [f"routed: {route.reason}", *route.notes]

    def get(self, memory_id: str, *, user_id: str | None = None) -> MemoryRecord | None:
        """One memory by id, or None. With `user_id`, only that user's memory is returned."""
        return self._store.get(user_id, memory_id)

    def get_all(self, user_id: str, limit: int = 100, cursor: str | None = None,
                filters: dict[str, Any] | None = None) -> Page:
        _require_user(user_id)
        records, next_cursor = self._store.list(user_id, limit, cursor, filters)
        return Page(records, next_cursor)

    def history(self, memory_id: str, *, user_id: str | None = None) -> list[HistoryEvent]:
        """Every ADD, UPDATE and DELETE of a memory, oldest first (kept after deletion)."""
        return self._store.history(user_id, memory_id)

    def stats(self) -> StoreStats:
        return self._store.stats()

    @property
    def embedder(self) -> Embedder:
        return self._embedder

    def _require(self, memory_id: str, user_id: str | None) -> MemoryRecord:
        record = self._store.get(user_id, memory_id)
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
    store = SQLiteStore(path)
    try:
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
                store.put_index_vectors(index, [rowid for rowid, _ in batch], vectors)
                done += len(batch)
                if on_progress:
                    on_progress(min(done, total), total)
        store.activate_index(index)
        return ReindexReport(embedder.name, embedder.dims, total, time.perf_counter() - started, resumed_index is not None)
    finally:
        store.close()


def _session_vector_from(store: SQLiteStore, index, embedder: Embedder, text: str, metadata: dict) -> np.ndarray:
    turn_vectors = store.index_vectors(index, metadata.get("turn_ids", []))
    if len(turn_vectors):
        return session_vector(turn_vectors)
    return embedder.encode([text], purpose="document")[0]
