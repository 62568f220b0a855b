"""What adding documents changes in a user's store, planned from what is stored and what the
files hold now, as plain data (no store, no model): the chunks to insert, to rewrite, to keep and
to delete.

A chunk is known by the hash of its embedded text. A new chunk takes over a stored chunk with the
same hash, preferring one of the same document at the same position, then one of the same
document, then any under the roots being added (a renamed or moved file): it keeps that memory's
id and vector, and is rewritten only if its fields (position, lines, source) changed. A chunk
whose text is stored elsewhere for the user copies that vector. Only the rest are embedded. Every
stored chunk and document under the given roots that no file claims is deleted: a file removed,
or the sections a file lost."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

from memlane.documents.build import CHUNK, DOCUMENT, BuiltDocument
from memlane.ingest.build import new_id
from memlane.records import Category, HistoryEvent, MemoryRecord

_MAX_FIELD_CHARS = 500  # a header field kept in metadata (a long Post-History is cut, not refused)


@dataclass
class Planned:
    """A record to store, and where its vector comes from: an existing memory's (`vector_of`), or,
    when None, the model (a chunk's embed_text) or its chunks' mean (a document)."""

    record: MemoryRecord
    vector_of: str | None = None


@dataclass
class SyncPlan:
    insert: list[Planned] = field(default_factory=list)
    rewrite: list[Planned] = field(default_factory=list)
    delete: list[MemoryRecord] = field(default_factory=list)
    unchanged: int = 0
    chunks_of: dict[str, list[str]] = field(default_factory=dict)  # document record id: its chunk ids, in order

    def events(self, at: str) -> list[HistoryEvent]:
        """History of the plan: an ADD per new memory, an UPDATE per rewrite, a DELETE per deletion."""
        return ([HistoryEvent(p.record.id, "ADD", None, p.record.text, at) for p in self.insert]
                + [HistoryEvent(p.record.id, "UPDATE", None, p.record.text, at) for p in self.rewrite]
                + [HistoryEvent(r.id, "DELETE", r.text, "its document changed or was removed", at)
                   for r in self.delete])


def plan_sync(existing: Sequence[MemoryRecord], built: Sequence[BuiltDocument], roots: set[str], *,
              user_id: str, category: Category, recorded_at: str) -> SyncPlan:
    """The plan that makes the user's stored documents under `roots` (and any stored document
    with the path of a new one) equal to `built`. `existing` is every document and chunk memory
    of the user."""
    paths = {doc.path for doc in built}
    in_scope = [r for r in existing if r.metadata.get("root") in roots or r.metadata.get("source") in paths]
    scoped_ids = {r.id for r in in_scope}
    pool: dict[str, list[MemoryRecord]] = {}
    for record in in_scope:
        if record.node_type == CHUNK and record.metadata.get("content_hash"):
            pool.setdefault(record.metadata["content_hash"], []).append(record)
    elsewhere = {r.metadata["content_hash"]: r for r in existing
                 if r.node_type == CHUNK and r.id not in scoped_ids and r.metadata.get("content_hash")}
    stored_documents = {r.metadata.get("source"): r for r in in_scope if r.node_type == DOCUMENT}
    plan = SyncPlan()
    claimed: set[str] = set()
    for doc in built:
        old_document = stored_documents.get(doc.path)
        document_id = old_document.id if old_document else new_id()
        changed = old_document is None
        chunk_ids = []
        for position, chunk in enumerate(doc.chunks):
            digest = doc.hashes[position]
            previous = _take(pool.get(digest, []), doc.path, position)
            record = _chunk_record(doc, position, previous.id if previous else new_id(), document_id,
                                   user_id=user_id, category=category, recorded_at=recorded_at)
            chunk_ids.append(record.id)
            if previous is not None:
                claimed.add(previous.id)
                record.recorded_at = previous.recorded_at
                if _same(record, previous):
                    plan.unchanged += 1
                else:
                    plan.rewrite.append(Planned(record, vector_of=previous.id))
                    changed = True
            else:
                copy = elsewhere.get(digest)
                plan.insert.append(Planned(record, vector_of=copy.id if copy else None))
                changed = True
        record = _document_record(doc, document_id, user_id=user_id, category=category, recorded_at=recorded_at)
        plan.chunks_of[document_id] = chunk_ids
        if old_document is not None:
            claimed.add(old_document.id)
            record.recorded_at = old_document.recorded_at
            if changed or not _same(record, old_document):
                plan.rewrite.append(Planned(record))
            else:
                plan.unchanged += 1
        else:
            plan.insert.append(Planned(record))
    plan.delete = [r for r in in_scope if r.id not in claimed]
    return plan


def _take(candidates: list[MemoryRecord], path: str, position: int) -> MemoryRecord | None:
    """Remove and return the best stored chunk for a new one of the same text: same document and
    position, then same document, then any."""
    if not candidates:
        return None
    for test in (lambda r: r.metadata.get("source") == path and r.turn_index == position,
                 lambda r: r.metadata.get("source") == path,
                 lambda r: True):
        for i, record in enumerate(candidates):
            if test(record):
                return candidates.pop(i)
    return None


def _same(new: MemoryRecord, old: MemoryRecord) -> bool:
    ignore = {"recorded_at"}
    a, b = new.to_dict(), old.to_dict()
    return all(a[k] == b.get(k) for k in a if k not in ignore)


def _chunk_record(doc: BuiltDocument, position: int, record_id: str, document_id: str, *, user_id: str,
                  category: Category, recorded_at: str) -> MemoryRecord:
    chunk = doc.chunks[position]
    return MemoryRecord(
        id=record_id, user_id=user_id, text=chunk.text, embed_text=doc.texts[position], category=category,
        node_type=CHUNK, session_id=doc.session_id, session_date=doc.parsed.date, turn_index=position,
        recorded_at=recorded_at,
        metadata={"source": doc.path, "root": doc.root, "title": doc.parsed.title,
                  "section": " > ".join(chunk.heading_path), "lines": [chunk.first_line, chunk.last_line],
                  "content_hash": doc.hashes[position], "document_id": document_id},
    )


def _document_record(doc: BuiltDocument, record_id: str, *, user_id: str, category: Category,
                     recorded_at: str) -> MemoryRecord:
    fields = {name: value[:_MAX_FIELD_CHARS] for name, value in doc.parsed.fields.items()}
    return MemoryRecord(
        id=record_id, user_id=user_id, text=doc.summary, embed_text=doc.summary, category=category,
        node_type=DOCUMENT, session_id=doc.session_id, session_date=doc.parsed.date, recorded_at=recorded_at,
        metadata={"source": doc.path, "root": doc.root, "title": doc.parsed.title, "format": doc.parsed.format,
                  "fields": fields, "file_hash": doc.file_hash, "chunks": len(doc.chunks)},
    )
