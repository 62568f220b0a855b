"""Export a store's memories to JSON Lines and import them back, with no re-embedding when the
vectors travel along: to back a store up, or move it to another backend.

The file (`.jsonl`, or gzip-compressed `.jsonl.gz`) holds one JSON object a line:

    {"format": "memlane-export", "version": 1, "model": M, "dims": D, "vectors": bool, "exported_at": T}
    {"type": "node", "name": N, "version": V, "spec": "<spec JSON>", "defined_at": T, "removed_at": T | null}
    {"type": "memory", "record": {MemoryRecord.to_dict()}, "history": [event, ...], "vector": [float, ...] | null}
    {"type": "expired", "record": {...}, "expired_at": T, "rule": R, "history": [event, ...]}
    {"type": "history", "user_id": U, "memory_id": I, "event": E, "old_text": ..., "new_text": ..., "at": T}
    {"type": "end", "memories": N, "expired": N, "history": N}

An event is {"memory_id", "event", "old_text", "new_text", "at"}. A memory's "vector" is its
vectors in the exporting store's index, flattened: its own vector, then its passages' (so its
length is a multiple of "dims"). "history" lines are the events of memories that no longer exist
(deleted or purged). Expired memories travel without vectors: a restore embeds them again. The
"end" line makes a truncated file an error instead of a partial import.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

import numpy as np

from memlane.errors import InputError
from memlane.ingest.build import embed_records, own_vector, session_vector
from memlane.ingest.formats import check_text
from memlane.records import Category, EventDate, HistoryEvent, MemoryRecord, NodeType
from memlane.store import require

if TYPE_CHECKING:
    from memlane.memory import Memory
    from memlane.store import Store

FORMAT = "memlane-export"
VERSION = 1
BATCH = 1_000  # memories read, and written, at a time

Progress = Callable[[int, int], None]  # (done, total)

_RECORD_FIELDS = tuple(MemoryRecord("", "", "", "").to_dict())
_DATE_FIELDS = ("expression", "start", "end", "granularity")
_EVENT_FIELDS = ("memory_id", "event", "old_text", "new_text", "at")
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


@dataclass
class ExportReport:
    path: str
    users: int
    memories: int
    expired: int
    history: int  # events of memories that no longer exist
    nodes: int
    vectors: bool
    file_bytes: int
    seconds: float


@dataclass
class ImportReport:
    path: str
    users: int
    memories: int
    expired: int
    history: int
    nodes: int  # node definitions added (ones the store had already are skipped)
    embedded: int  # memories embedded again (no vector in the file, or another model's)
    seconds: float


def _now() -> str:
    return datetime.now(timezone.utc).replace(tzinfo=None).isoformat(timespec="seconds") + "Z"


def _store(memory: "Memory") -> "Store":
    require(memory._store, "transfer")
    return memory._store  # the facade's store: export and import are store-level operations


# -- export ----------------------------------------------------------------------------------------


def export_memories(memory: "Memory", out_path: str | Path, *, users: Sequence[str] | None = None,
                    vectors: bool = False, on_progress: Progress | None = None) -> ExportReport:
    """Write the memories of `users` (default: every user) to `out_path` as JSON Lines, gzip-
    compressed when the name ends in `.gz`: each memory with its history (and with `vectors`, its
    vectors), expired memories, history of deleted ones, and the store's node definitions.

    Streams: a page of memories at a time, all from one state of the store (writes made meanwhile
    are not in it). The file appears under its name only once complete."""
    with _store(memory).reading() as store:
        return export_store(store, out_path, users=users, vectors=vectors, on_progress=on_progress)


def export_store(store: "Store", out_path: str | Path, *, users: Sequence[str] | None = None,
                 vectors: bool = False, on_progress: Progress | None = None) -> ExportReport:
    """`export_memories` from a store itself (pass `store.reading()`'s for one state of it)."""
    require(store, "transfer")
    started = time.perf_counter()
    if users is not None:
        if isinstance(users, str) or not isinstance(users, (list, tuple)):
            raise InputError(f"users must be a list of user ids, got {type(users).__name__}", field="users",
                             fix="pass users=['alice']")
        users = list(dict.fromkeys(check_text(u, field="users", max_chars=512) for u in users))
    chosen = store.export_users() if users is None else users
    index = store.active_index()
    with_vectors = bool(vectors) and index is not None
    out = Path(out_path).expanduser()
    if not out.parent.is_dir():
        raise InputError(f"folder {out.parent} does not exist", file=str(out_path), fix="create the folder first")
    partial = out.with_name(out.name + ".partial")
    total = store.stats().memories if users is None else 0
    counts = {"memories": 0, "expired": 0, "history": 0, "nodes": 0}
    try:
        with _writer(partial, gz=out.name.endswith(".gz")) as write:
            write({"format": FORMAT, "version": VERSION, "model": index.model if index else None,
                   "dims": index.dims if index else None, "vectors": with_vectors, "exported_at": _now()})
            for name, version, spec, defined_at, removed_at in store.node_rows():
                write({"type": "node", "name": name, "version": version, "spec": spec,
                       "defined_at": defined_at, "removed_at": removed_at})
                counts["nodes"] += 1
            for user_id in chosen:
                _export_user(store, user_id, with_vectors, write, counts, on_progress, total)
            write({"type": "end", "memories": counts["memories"], "expired": counts["expired"],
                   "history": counts["history"]})
        os.replace(partial, out)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return ExportReport(str(out), len(chosen), counts["memories"], counts["expired"], counts["history"],
                        counts["nodes"], with_vectors, out.stat().st_size, time.perf_counter() - started)


def _export_user(store: "Store", user_id: str, vectors: bool, write: Callable[[dict], None],
                 counts: dict[str, int], on_progress: Progress | None, total: int) -> None:
    cursor = None
    while True:
        page, cursor = store.list(user_id, BATCH, cursor, None)
        ids = [r.id for r in page]
        history = store.history_of(user_id, ids)
        stored = store.stored_vectors(user_id, ids) if vectors else {}
        for record in page:
            vector = stored.get(record.id)
            write({"type": "memory", "record": record.to_dict(),
                   "history": [_event_dict(e) for e in history.get(record.id, [])],
                   "vector": vector.reshape(-1).tolist() if vector is not None else None})
        counts["memories"] += len(page)
        if on_progress:
            on_progress(counts["memories"], max(total, counts["memories"]))
        if cursor is None:
            break
    expired = store.expired(user_id)
    for start in range(0, len(expired), BATCH):
        chunk = expired[start:start + BATCH]
        history = store.history_of(user_id, [r.id for r, _, _ in chunk])
        for record, at, rule in chunk:
            write({"type": "expired", "record": record.to_dict(), "expired_at": at, "rule": rule,
                   "history": [_event_dict(e) for e in history.get(record.id, [])]})
    counts["expired"] += len(expired)
    cursor = None
    while True:
        events, cursor = store.orphan_history(user_id, BATCH, cursor)
        for event in events:
            write({"type": "history", "user_id": user_id, **_event_dict(event)})
        counts["history"] += len(events)
        if cursor is None:
            break


def _event_dict(event: HistoryEvent) -> dict[str, Any]:
    return {"memory_id": event.memory_id, "event": event.event, "old_text": event.old_text,
            "new_text": event.new_text, "at": event.at}


@contextmanager
def _writer(path: Path, *, gz: bool) -> Iterator[Callable[[dict], None]]:
    stream = gzip.open(path, "wt", encoding="utf-8", newline="\n") if gz else \
        open(path, "w", encoding="utf-8", newline="\n")
    with stream:
        def write(obj: dict) -> None:
            stream.write(json.dumps(obj, ensure_ascii=False, allow_nan=False) + "\n")

        yield write


# -- import ----------------------------------------------------------------------------------------


def import_memories(memory: "Memory", in_path: str | Path, *, on_progress: Progress | None = None) -> ImportReport:
    """Add the memories of an export file to this store, all or nothing (one transaction).

    Records keep their ids, texts, dates and fields, and their history is restored as it was.
    Vectors in the file are used as they are when they come from this store's embedding model;
    otherwise texts are embedded again. An id the store already holds, a file that is not an
    export, a truncated one (no end line) or a malformed line is an InputError naming the file
    and line, and the store is left as it was."""
    started = time.perf_counter()
    if not isinstance(in_path, (str, Path)) or not str(in_path).strip():
        raise InputError(f"expected a file path, got {type(in_path).__name__}", field="in_path",
                         fix="pass the path of a file written by `memlane export`")
    path = Path(in_path).expanduser()
    if not path.is_file():
        raise InputError("no such file", file=str(in_path), fix="pass the path of a file written by `memlane export`")
    store = _store(memory)
    with _reader(path, memory.config.limits.max_import_bytes, on_progress) as lines:
        importer = _Importer(memory, store, str(in_path))
        with store.atomic():
            importer.run(lines)
    r = importer
    return ImportReport(str(path), len(r.users), r.counts["memories"], r.counts["expired"], r.counts["history"],
                        r.nodes_added, r.embedded, time.perf_counter() - started)


@contextmanager
def _reader(path: Path, max_line: int, on_progress: Progress | None) -> Iterator[Iterator[tuple[int, dict]]]:
    """(line number, object) for each non-blank line, each line at most `max_line` bytes."""
    raw = open(path, "rb")
    try:
        gz = raw.read(2) == b"\x1f\x8b"
        raw.seek(0)
        stream = gzip.GzipFile(fileobj=raw, mode="rb") if gz else raw
        size = max(path.stat().st_size, 1)

        def lines() -> Iterator[tuple[int, dict]]:
            number = 0
            while True:
                try:
                    line = stream.readline(max_line + 1)
                except (OSError, EOFError) as exc:  # a broken or truncated gzip stream
                    raise InputError(f"cannot read line {number + 1}: {exc}", file=str(path),
                                     fix="the file is damaged or truncated; export again") from None
                if not line:
                    return
                number += 1
                if len(line) > max_line:
                    raise InputError(f"line {number} is over {max_line:,} bytes", file=str(path),
                                     fix="raise limits.max_import_bytes, or check that this is a memlane export")
                if not line.strip():
                    continue
                yield number, _parse(line, number, path)
                if on_progress and number % BATCH == 0:
                    on_progress(min(raw.tell(), size), size)

        yield lines()
        if on_progress:
            on_progress(size, size)
    finally:
        raw.close()


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not a number JSON allows")


def _parse(line: bytes, number: int, path: Path) -> dict:
    where = {"file": str(path), "fix": "check that this is a file written by `memlane export`, complete and unedited"}
    try:
        text = line.decode("utf-8")
        obj = json.loads(text, parse_constant=_reject_constant)
    except UnicodeDecodeError as exc:
        raise InputError(f"line {number} is not UTF-8 text ({exc.reason} at byte {exc.start})", **where) from None
    except RecursionError:
        raise InputError(f"line {number} nests too deeply", **where) from None
    except ValueError as exc:
        raise InputError(f"line {number} is not valid JSON: {exc}", **where) from None
    if not isinstance(obj, dict):
        raise InputError(f"line {number} is a JSON {type(obj).__name__}, not an object", **where)
    if _SURROGATE_ESCAPE.search(text):  # a lone surrogate would only fail inside the store
        try:
            json.dumps(obj, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise InputError(f"line {number} holds a lone surrogate escape (\\ud800-\\udfff)", **where) from None
    return obj


class _Importer:
    """One import: the file's lines checked and written in batches inside the caller's transaction."""

    def __init__(self, memory: "Memory", store: "Store", file: str) -> None:
        self.memory = memory
        self.store = store
        self.file = file
        self.limits = memory.config.limits
        self.counts = {"memories": 0, "expired": 0, "history": 0}
        self.users: set[str] = set()
        self.nodes_added = 0
        self.embedded = 0
        self.use_vectors = False
        self.dims: int | None = None
        self.index_ready = False

    def fail(self, number: int, problem: str, *, record: str | None = None, field: str | None = None,
             fix: str | None = None) -> InputError:
        return InputError(f"line {number}: {problem}", file=self.file, record=record, field=field,
                          fix=fix or "check that this is a file written by `memlane export`, complete and unedited")

    def run(self, lines: Iterator[tuple[int, dict]]) -> None:
        first = next(lines, None)
        if first is None:
            raise InputError("the file is empty", file=self.file, fix="pass a file written by `memlane export`")
        self.header(*first)
        memories: list[tuple[int, MemoryRecord, np.ndarray | None, list[HistoryEvent]]] = []
        expired: list[tuple[int, MemoryRecord, str, str, list[HistoryEvent]]] = []
        orphans: list[tuple[int, str, HistoryEvent]] = []
        ended = None
        for number, obj in lines:
            if ended is not None:
                raise self.fail(number, f"data after the end line (line {ended})")
            kind = obj.get("type")
            if kind == "memory":
                memories.append(self.memory_line(number, obj))
                if len(memories) >= BATCH:
                    self.write_memories(memories)
                    memories = []
            elif kind == "expired":
                expired.append(self.expired_line(number, obj))
                if len(expired) >= BATCH:
                    self.write_expired(expired)
                    expired = []
            elif kind == "history":
                orphans.append(self.history_line(number, obj))
                if len(orphans) >= BATCH:
                    self.write_orphans(orphans)
                    orphans = []
            elif kind == "node":
                self.node_line(number, obj)
            elif kind == "end":
                self.write_memories(memories)
                self.write_expired(expired)
                self.write_orphans(orphans)
                memories, expired, orphans = [], [], []
                self.end_line(number, obj)
                ended = number
            else:
                raise self.fail(number, f"unknown line type {str(kind)[:40]!r}", field="type",
                                fix="a line's type is one of: node, memory, expired, history, end")
        if ended is None:
            raise InputError("the file ends before its end line: it is truncated", file=self.file,
                             fix="export again, and copy the whole file; nothing was imported")

    # -- lines

    def header(self, number: int, obj: dict) -> None:
        if obj.get("format") != FORMAT:
            raise self.fail(number, f"not a memlane export (the first line's format is {str(obj.get('format'))[:40]!r},"
                                    f" not {FORMAT!r})")
        if obj.get("version") != VERSION:
            raise self.fail(number, f"export format version {obj.get('version')!r} is not supported (this memlane "
                                    f"reads version {VERSION})", field="version",
                            fix="import it with the memlane version that wrote it, or export again")
        model, dims, vectors = obj.get("model"), obj.get("dims"), obj.get("vectors")
        if not isinstance(vectors, bool) or (model is not None and not isinstance(model, str)) \
                or (dims is not None and (isinstance(dims, bool) or not isinstance(dims, int) or dims < 1)):
            raise self.fail(number, "the header's model, dims or vectors field is malformed")
        if vectors and (model is None or dims is None):
            raise self.fail(number, "the header says vectors but names no model and dims")
        embedder = self.memory.embedder
        self.dims = dims
        self.use_vectors = vectors and model == embedder.name and dims == embedder.dims

    def memory_line(self, number: int, obj: dict) -> tuple[int, MemoryRecord, np.ndarray | None, list[HistoryEvent]]:
        record = self.record(number, obj.get("record"))
        history = self.events(number, obj.get("history"), record.id)
        vector = obj.get("vector")
        if vector is not None:
            vector = self.vector(number, vector, record.id)
        return number, record, vector if self.use_vectors else None, history

    def expired_line(self, number: int, obj: dict) -> tuple[int, MemoryRecord, str, str, list[HistoryEvent]]:
        record = self.record(number, obj.get("record"))
        at = self.text(number, obj.get("expired_at"), "expired_at", record.id)
        rule = self.text(number, obj.get("rule"), "rule", record.id)
        return number, record, at, rule, self.events(number, obj.get("history"), record.id)

    def history_line(self, number: int, obj: dict) -> tuple[int, str, HistoryEvent]:
        user_id = self.text(number, obj.get("user_id"), "user_id", None, max_chars=512)
        event = self.events(number, [{k: obj.get(k) for k in _EVENT_FIELDS}], None)[0]
        return number, user_id, event

    def node_line(self, number: int, obj: dict) -> None:
        name = self.text(number, obj.get("name"), "name", None, max_chars=512)
        version = obj.get("version")
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise self.fail(number, f"node {name}: version must be a whole number from 1", field="version")
        spec = self.text(number, obj.get("spec"), "spec", None)
        try:
            if not isinstance(json.loads(spec), dict):
                raise ValueError("not an object")
        except (ValueError, RecursionError):
            raise self.fail(number, f"node {name}: spec is not a JSON object", field="spec") from None
        defined_at = self.text(number, obj.get("defined_at"), "defined_at", None)
        removed_at = obj.get("removed_at")
        if removed_at is not None:
            removed_at = self.text(number, removed_at, "removed_at", None)
        have = {(n, v): s for n, v, s, _, _ in self.store.node_rows()}
        if have.get((name, version), spec) != spec:
            raise self.fail(number, f"node {name} version {version} is defined differently in this store",
                            fix="import into another store, or remove the node there first")
        self.nodes_added += self.store.write_nodes([(name, version, spec, defined_at, removed_at)])

    def end_line(self, number: int, obj: dict) -> None:
        for key in ("memories", "expired", "history"):
            if key in obj and obj[key] != self.counts[key]:
                raise self.fail(number, f"the end line counts {obj[key]!r} {key} but the file holds "
                                        f"{self.counts[key]}", field=key)
        if "memories" not in obj:
            raise self.fail(number, "the end line has no memories count", field="memories")

    # -- fields

    def text(self, number: int, value: Any, field: str, record: str | None, *, max_chars: int | None = None,
             optional: bool = False) -> Any:
        if value is None and optional:
            return None
        try:
            return check_text(value, field=field, allow_blank=field in ("text", "embed_text", "old_text", "new_text"),
                              max_chars=max_chars)
        except InputError as exc:
            raise self.fail(number, exc.problem, record=record, field=field) from None

    def record(self, number: int, data: Any) -> MemoryRecord:
        if not isinstance(data, dict):
            raise self.fail(number, "the line has no record object", field="record")
        mid = data.get("id")
        rid = mid if isinstance(mid, str) else None
        unknown = set(data) - set(_RECORD_FIELDS)
        if unknown:
            raise self.fail(number, f"unknown record fields: {', '.join(sorted(map(str, unknown))[:5])}", record=rid)
        required = ("id", "user_id", "text", "embed_text", "recorded_at")
        out: dict[str, Any] = {}
        for field in ("id", "user_id", "agent_id", "node_type", "text", "embed_text", "speaker", "session_id",
                      "session_date", "recorded_at", "fact_key", "valid_from", "valid_until", "superseded_by"):
            if field in data or field in required:
                ids = field in ("id", "user_id", "agent_id", "session_id", "node_type", "superseded_by")
                out[field] = self.text(number, data.get(field), field, rid, max_chars=512 if ids else None,
                                       optional=field not in required + ("node_type",))
        try:
            out["category"] = Category.parse(data.get("category", "episodic"))
        except (InputError, TypeError, AttributeError):
            raise self.fail(number, f"unknown category {str(data.get('category'))[:40]!r}", record=rid,
                            field="category", fix="use one of: " + ", ".join(c.value for c in Category)) from None
        index = data.get("turn_index")
        if index is not None and (isinstance(index, bool) or not isinstance(index, int) or abs(index) >= 2**63):
            raise self.fail(number, "turn_index must be a whole number or null", record=rid, field="turn_index")
        out["turn_index"] = index
        metadata = data.get("metadata", {})
        if not isinstance(metadata, dict):
            raise self.fail(number, "metadata must be an object", record=rid, field="metadata")
        if _depth(metadata) > self.limits.max_json_depth:
            raise self.fail(number, f"metadata nests deeper than {self.limits.max_json_depth}", record=rid,
                            field="metadata", fix="raise limits.max_json_depth")
        out["metadata"] = metadata
        dates = data.get("event_dates", [])
        if not isinstance(dates, list) or not all(isinstance(e, dict) and set(e) == set(_DATE_FIELDS) for e in dates):
            raise self.fail(number, "event_dates must be a list of {expression, start, end, granularity}",
                            record=rid, field="event_dates")
        out["event_dates"] = [EventDate(**{k: self.text(number, e[k], "event_dates", rid) for k in _DATE_FIELDS})
                              for e in dates]
        return MemoryRecord(**out)

    def events(self, number: int, data: Any, memory_id: str | None) -> list[HistoryEvent]:
        if data is None:
            return []
        if not isinstance(data, list):
            raise self.fail(number, "history must be a list of events", record=memory_id, field="history")
        out = []
        for item in data:
            if not isinstance(item, dict) or set(item) != set(_EVENT_FIELDS):
                raise self.fail(number, "a history event is {memory_id, event, old_text, new_text, at}",
                                record=memory_id, field="history")
            mid = self.text(number, item["memory_id"], "memory_id", memory_id, max_chars=512)
            if memory_id is not None and mid != memory_id:
                raise self.fail(number, f"a history event of memory {mid} is filed under {memory_id}",
                                record=memory_id, field="history")
            out.append(HistoryEvent(mid, self.text(number, item["event"], "event", mid, max_chars=64),
                                    self.text(number, item["old_text"], "old_text", mid, optional=True),
                                    self.text(number, item["new_text"], "new_text", mid, optional=True),
                                    self.text(number, item["at"], "at", mid, max_chars=64)))
        return out

    def vector(self, number: int, data: Any, memory_id: str) -> np.ndarray:
        dims = self.dims or 0
        if not isinstance(data, list) or not data or dims < 1 or len(data) % dims \
                or not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in data):
            raise self.fail(number, f"the vector must be a list of numbers, a multiple of {dims} long",
                            record=memory_id, field="vector")
        vector = np.asarray(data, dtype=np.float32).reshape(-1, dims)
        if not np.isfinite(vector).all():
            raise self.fail(number, "the vector holds a value out of float32 range", record=memory_id, field="vector")
        return vector

    # -- writes (inside the caller's transaction)

    def check_new(self, items: Sequence[tuple[int, MemoryRecord]]) -> None:
        seen: dict[str, int] = {}
        for number, record in items:
            if record.id in seen:
                raise self.fail(number, f"memory {record.id} appears twice in the file (also on line "
                                        f"{seen[record.id]})", record=record.id, field="id")
            seen[record.id] = number
        taken = self.store.existing_ids(list(seen))
        if taken:
            first = min(taken, key=seen.__getitem__)
            raise self.fail(seen[first], f"memory {first} already exists in this store", record=first, field="id",
                            fix="import into another store, or delete those memories there first; nothing was imported")

    def write_memories(self, batch: list[tuple[int, MemoryRecord, np.ndarray | None, list[HistoryEvent]]]) -> None:
        if not batch:
            return
        self.check_new([(n, r) for n, r, _, _ in batch])
        if not self.index_ready:
            self.memory._ensure_index()  # the embedder's index, as the first add makes it
            self.index_ready = True
        records = [r for _, r, _, _ in batch]
        vectors: list[np.ndarray | None] = [(v[0] if len(v) == 1 else v) if v is not None else None
                                            for _, _, v, _ in batch]
        self.fill_vectors(records, vectors)
        events = [e for _, _, _, history in batch for e in history]
        self.store.write(records, vectors, events)  # type: ignore[arg-type]
        self.counts["memories"] += len(records)
        self.users.update(r.user_id for r in records)

    def fill_vectors(self, records: list[MemoryRecord], vectors: list[np.ndarray | None]) -> None:
        """Embed the records that came without a usable vector, as ingestion and reindex do: a
        session's vector is the mean of its turns' (in this batch, or written before)."""
        missing = [i for i, v in enumerate(vectors) if v is None and records[i].node_type != NodeType.SESSION.value]
        if missing:
            config = self.memory.config
            embedded = embed_records(self.memory.embedder, [records[i] for i in missing],
                                     max(config.embedder.batch_size * 4, 1), passages=config.ingest.passages)
            for i, vector in zip(missing, embedded):
                vectors[i] = vector
            self.embedded += len(missing)
        own = {r.id: own_vector(v) for r, v in zip(records, vectors) if v is not None}
        index = self.store.active_index()
        for i, record in enumerate(records):
            if vectors[i] is not None:
                continue
            turn_ids = [t for t in record.metadata.get("turn_ids", []) if isinstance(t, str)]
            here = [own[t] for t in turn_ids if t in own]
            elsewhere = [t for t in turn_ids if t not in own]
            stored = self.store.index_vectors(index, elsewhere) if elsewhere and index else []
            turns = [*here, *stored]
            vectors[i] = session_vector(np.stack(turns)) if len(turns) else \
                self.memory.embedder.encode([record.embed_text], purpose="document")[0]
            self.embedded += 1

    def write_expired(self, batch: list[tuple[int, MemoryRecord, str, str, list[HistoryEvent]]]) -> None:
        if not batch:
            return
        self.check_new([(n, r) for n, r, _, _, _ in batch])
        self.store.write_expired([(r, at, rule) for _, r, at, rule, _ in batch])
        for _, record, _, _, history in batch:
            if history:
                self.store.write_history(record.user_id, history)
        self.counts["expired"] += len(batch)
        self.users.update(r.user_id for _, r, _, _, _ in batch)

    def write_orphans(self, batch: list[tuple[int, str, HistoryEvent]]) -> None:
        start = 0
        while start < len(batch):  # runs of one user, in file order
            user_id = batch[start][1]
            end = start
            while end < len(batch) and batch[end][1] == user_id:
                end += 1
            self.store.write_history(user_id, [e for _, _, e in batch[start:end]])
            self.users.add(user_id)
            start = end
        self.counts["history"] += len(batch)


def _depth(value: Any) -> int:
    """How deeply lists and objects nest in `value` (a scalar is 0), without recursion."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            items = item.values()
        elif isinstance(item, list):
            items = item
        else:
            continue
        deepest = max(deepest, level)
        stack.extend((child, level + 1) for child in items)
    return deepest
