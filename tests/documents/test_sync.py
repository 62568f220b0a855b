"""Sync planning as plain data: which stored chunk a new chunk takes over, what is copied,
embedded, rewritten or deleted."""

from __future__ import annotations

from memlane.documents.build import BuiltDocument, content_hash, session_of
from memlane.documents.model import Chunk, ParsedDocument
from memlane.documents.sync import plan_sync
from memlane.records import Category, MemoryRecord

ROOT = "/data/notes"


def _built(path, texts, root=ROOT):
    chunks = tuple(Chunk(("Section",), t, i + 1, i + 1, i) for i, t in enumerate(texts))
    return BuiltDocument(root=root, parsed=ParsedDocument(path=path, format="markdown", title="T"), chunks=chunks,
                         texts=tuple(texts), hashes=tuple(content_hash(t) for t in texts), summary="T",
                         file_hash=content_hash("".join(texts)))


def _stored(doc, prefix):
    """The memories a first sync of `doc` stores, with ids `prefix`0, `prefix`1, ..."""
    plan = plan_sync([], [doc], {doc.root}, user_id="ana", category=Category.SEMANTIC, recorded_at="2024-01-01T00:00:00Z")
    records = [p.record for p in plan.insert]
    renamed = {record.id: f"{prefix}{i}" for i, record in enumerate(records)}
    for record in records:
        record.id = renamed[record.id]
        if "document_id" in record.metadata:
            record.metadata["document_id"] = renamed[record.metadata["document_id"]]
    return records


def _plan(existing, built, roots=(ROOT,)):
    return plan_sync(existing, built, set(roots), user_id="ana", category=Category.SEMANTIC,
                     recorded_at="2024-02-01T00:00:00Z")


def test_a_first_sync_inserts_every_chunk_to_embed_and_the_document():
    plan = _plan([], [_built("notes/a.md", ["one", "two"])])
    assert [(p.record.node_type, p.vector_of) for p in plan.insert] == [("chunk", None), ("chunk", None), ("document", None)]
    assert {p.record.session_id for p in plan.insert} == {session_of("notes/a.md")}
    assert plan.chunks_of == {plan.insert[2].record.id: [plan.insert[0].record.id, plan.insert[1].record.id]}


def test_an_unchanged_document_plans_nothing():
    stored = _stored(_built("notes/a.md", ["one", "two"]), "m")
    plan = _plan(stored, [_built("notes/a.md", ["one", "two"])])
    assert (plan.insert, plan.rewrite, plan.delete, plan.unchanged) == ([], [], [], 3)


def test_a_chunk_that_moved_keeps_its_memory_and_vector_and_a_new_one_is_embedded():
    stored = _stored(_built("notes/a.md", ["one", "two"]), "m")
    plan = _plan(stored, [_built("notes/a.md", ["zero", "one", "two"])])
    assert [(p.record.text, p.vector_of) for p in plan.insert] == [("zero", None)]
    moved = {p.record.id: (p.record.turn_index, p.vector_of) for p in plan.rewrite if p.record.node_type == "chunk"}
    assert moved == {"m0": (1, "m0"), "m1": (2, "m1")}
    assert [p.record.id for p in plan.rewrite if p.record.node_type == "document"] == ["m2"]  # its chunks changed
    assert plan.delete == []


def test_chunks_and_documents_no_file_claims_are_deleted_only_under_the_roots_synced():
    mine = _stored(_built("notes/a.md", ["one"]), "a")
    other = _stored(_built("elsewhere/b.md", ["two"], root="/other"), "b")
    plan = _plan(mine + other, [])
    assert sorted(r.id for r in plan.delete) == ["a0", "a1"]


def test_a_text_stored_under_another_root_is_copied_not_embedded():
    other = _stored(_built("elsewhere/b.md", ["shared words"], root="/other"), "b")
    plan = _plan(other, [_built("notes/a.md", ["shared words"])])
    chunk = next(p for p in plan.insert if p.record.node_type == "chunk")
    assert chunk.vector_of == "b0" and plan.delete == []


def test_history_has_an_event_per_change():
    stored = _stored(_built("notes/a.md", ["one", "two"]), "m")
    plan = _plan(stored, [_built("notes/a.md", ["one", "three"])])
    events = {(e.memory_id, e.event) for e in plan.events("2024-02-01T00:00:00Z")}
    added = next(p.record.id for p in plan.insert)
    assert events == {(added, "ADD"), ("m1", "DELETE"), ("m2", "UPDATE")}


def test_the_same_path_from_a_new_root_takes_the_document_over():
    stored = _stored(_built("notes/a.md", ["one"]), "m")
    plan = _plan(stored, [_built("notes/a.md", ["one"], root="/moved/notes")], roots=("/moved/notes",))
    assert plan.insert == [] and plan.delete == []
    assert {p.record.metadata["root"] for p in plan.rewrite} == {"/moved/notes"}
