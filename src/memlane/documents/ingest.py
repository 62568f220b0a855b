"""Adding documents to a store: read the files, build their chunks, embed only the texts no
stored memory holds (outside the write lock: a cold import embeds for minutes), then plan and
write the changes in one transaction against the store as it is at that moment."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from memlane.config import MemoryConfig
from memlane.documents.build import CHUNK, DOCUMENT, BuiltDocument, build_document
from memlane.documents.model import DocumentReport, SkippedFile, SourceFile
from memlane.documents.sources import read_sources
from memlane.documents.sync import Planned, SyncPlan, plan_sync
from memlane.embed import Embedder
from memlane.filters import Filter
from memlane.ingest.build import session_vector
from memlane.records import Category, MemoryRecord
from memlane.store import Store
from memlane.store.base import scan

Progress = Callable[[int, int], None]


def add_documents(store: Store, embedder: Embedder, config: MemoryConfig, paths: Sequence[str | os.PathLike[str]],
                  *, user_id: str, category: Category, recorded_at: str, root: str | None = None,
                  on_progress: Progress | None = None) -> DocumentReport:
    """Read `paths` (see `read_sources`) and sync their documents into the user's memories."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    files, skipped = read_sources(paths, ignore=config.documents.ignore, root=root,
                                  max_file_bytes=config.documents.max_file_bytes,
                                  max_total_bytes=config.limits.max_import_bytes)
    roots = {root} if root else {str(Path(os.fspath(p)).expanduser().resolve()) for p in paths}
    return sync_files(store, embedder, config, files, roots, skipped=skipped, user_id=user_id, category=category,
                      recorded_at=recorded_at, on_progress=on_progress)


def sync_files(store: Store, embedder: Embedder, config: MemoryConfig, files: Sequence[SourceFile], roots: set[str],
               *, skipped: Sequence[SkippedFile] = (), user_id: str, category: Category, recorded_at: str,
               on_progress: Progress | None = None) -> DocumentReport:
    """Make the user's documents under `roots` what `files` hold now (see `plan_sync`)."""
    started = time.perf_counter()
    skipped = list(skipped)
    built: list[BuiltDocument] = []
    for file in files:
        result = build_document(file, config.documents.chunk_chars)
        (skipped if isinstance(result, SkippedFile) else built).append(result)
    return sync_built(store, embedder, config, built, roots, skipped=skipped, user_id=user_id, category=category,
                      recorded_at=recorded_at, on_progress=on_progress, started=started)


def sync_built(store: Store, embedder: Embedder, config: MemoryConfig, built: Sequence[BuiltDocument],
               roots: set[str], *, skipped: Sequence[SkippedFile] = (), user_id: str, category: Category,
               recorded_at: str, on_progress: Progress | None = None, started: float | None = None) -> DocumentReport:
    """`sync_files` for documents already built (`build_document`); `started` is when the call
    began, for the report's time (default: now)."""
    started = time.perf_counter() if started is None else started
    report = DocumentReport(documents=len(built), chunks=sum(len(d.chunks) for d in built), skipped=list(skipped))

    known = {r.metadata.get("content_hash") for r in _stored(store, user_id)}
    todo = {h: t for doc in built for h, t in zip(doc.hashes, doc.texts) if h not in known}
    embed_started = time.perf_counter()
    fresh = _embed(embedder, todo, config.embedder.batch_size * 4, on_progress)
    report.embed_seconds = time.perf_counter() - embed_started

    with store.atomic():  # planned against the store as it is now: a writer may have come meanwhile
        plan = plan_sync(_stored(store, user_id), built, roots, user_id=user_id, category=category,
                         recorded_at=recorded_at)
        missing = {p.record.metadata["content_hash"]: p.record.embed_text for p in plan.insert + plan.rewrite
                   if p.record.node_type == CHUNK and p.vector_of is None
                   and p.record.metadata["content_hash"] not in fresh}
        fresh.update(_embed(embedder, missing, config.embedder.batch_size * 4, None))
        vectors = _resolve_vectors(store, user_id, plan, fresh)
        events = plan.events(recorded_at)
        deleted = {r.id for r in plan.delete}
        if plan.delete or plan.rewrite:
            store.delete(user_id, sorted(deleted), [e for e in events if e.event != "ADD"],
                         rewrite=[(p.record, vectors[p.record.id]) for p in plan.rewrite])
        if plan.insert:
            store.write([p.record for p in plan.insert], [vectors[p.record.id] for p in plan.insert],
                        [e for e in events if e.event == "ADD"])
    report.added, report.changed = len(plan.insert), len(plan.rewrite)
    report.unchanged, report.removed = plan.unchanged, len(plan.delete)
    report.embedded = len(fresh)
    report.seconds = time.perf_counter() - started
    return report


def _stored(store: Store, user_id: str) -> list[MemoryRecord]:
    return scan(store, user_id, Filter(node_type=(DOCUMENT, CHUNK)))


def _embed(embedder: Embedder, texts: dict[str, str], batch: int, on_progress: Progress | None) -> dict[str, np.ndarray]:
    """hash: vector for each text, longest first (like lengths pad least), in batches with progress."""
    if not texts:
        return {}
    order = sorted(texts, key=lambda h: -len(texts[h]))
    out: dict[str, np.ndarray] = {}
    for start in range(0, len(order), batch):
        part = order[start:start + batch]
        for digest, vector in zip(part, embedder.encode([texts[h] for h in part], purpose="document")):
            out[digest] = np.asarray(vector, dtype=np.float32)
        if on_progress:
            on_progress(min(start + batch, len(order)), len(order))
    return out


def _resolve_vectors(store: Store, user_id: str, plan: SyncPlan, fresh: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Each planned record's vector: kept from a stored memory, embedded, or (a document) the
    normalized mean of its chunks' vectors, whether those were written now or kept."""
    planned: list[Planned] = plan.insert + plan.rewrite
    vectors: dict[str, np.ndarray] = {}
    reused = [p for p in planned if p.vector_of is not None]
    if reused:
        for p, vector in zip(reused, store.vectors(user_id, [p.vector_of for p in reused])):
            vectors[p.record.id] = vector
    for p in planned:
        if p.record.node_type == CHUNK and p.vector_of is None:
            vectors[p.record.id] = fresh[p.record.metadata["content_hash"]]
    kept = [cid for p in planned if p.record.node_type == DOCUMENT
            for cid in plan.chunks_of[p.record.id] if cid not in vectors]
    if kept:
        vectors.update(zip(kept, store.vectors(user_id, kept)))
    for p in planned:
        if p.record.node_type == DOCUMENT:
            vectors[p.record.id] = session_vector(np.stack([vectors[c] for c in plan.chunks_of[p.record.id]]))
    return vectors
