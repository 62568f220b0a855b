"""Documents through `Memory.add_documents`: stored as document and chunk memories, kept in sync
by content hash (only changed chunks embedded, removed files forgotten, renamed files keep their
vectors), all or nothing, and found by search, alone or grouped by document."""

from __future__ import annotations

import numpy as np
import pytest

from memlane.errors import InputError
from memlane.store import scan

GUIDE = """---
title: Kitchen guide
date: 2024-03-05
---

# Kitchen guide

## Kettle

The blue kettle lives in the left cupboard. Descale it with vinegar every month.

## Knives

Sharpen the knives on Sundays. Never put them in the dishwasher.
"""

POLICY = """Travel policy
=============

Booking
-------

Book trains rather than flights for trips under five hundred kilometres.

Expenses
--------

Claim expenses within thirty days with a photo of the receipt.
"""


@pytest.fixture
def notes(tmp_path):
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "kitchen.md").write_text(GUIDE, encoding="utf-8")
    (folder / "travel.rst").write_text(POLICY, encoding="utf-8")
    return folder


def _docs(memory, user="ana"):
    return scan(memory._store, user, {"node_type": ["document", "chunk"]})


def test_files_become_a_document_memory_and_chunk_memories_with_where_they_came_from(memory, notes):
    report = memory.add_documents(notes, user_id="ana")
    assert (report.documents, report.skipped) == (2, [])
    records = _docs(memory)
    documents = {r.metadata["source"]: r for r in records if r.node_type == "document"}
    assert set(documents) == {"notes/kitchen.md", "notes/travel.rst"}
    assert documents["notes/kitchen.md"].session_date.startswith("2024-03-05")  # the front matter's date
    chunks = [r for r in records if r.node_type == "chunk"]
    assert report.chunks == len(chunks) == report.added - 2 == report.embedded
    kettle = next(c for c in chunks if "kettle" in c.text)
    assert kettle.metadata["section"].endswith("Kettle") and kettle.category.value == "semantic"
    first, last = kettle.metadata["lines"]
    assert "blue kettle" in "\n".join(GUIDE.splitlines()[first - 1:last])
    assert "Kitchen guide" in kettle.embed_text and "Kettle" in kettle.embed_text  # title and section are indexed
    assert kettle.session_id == documents["notes/kitchen.md"].session_id
    assert kettle.metadata["document_id"] == documents["notes/kitchen.md"].id
    assert [e.event for e in memory.history(kettle.id, user_id="ana")] == ["ADD"]


def test_adding_the_same_folder_again_embeds_nothing_and_changes_nothing(memory, notes):
    first = memory.add_documents(notes, user_id="ana")
    before = {r.id: r.to_dict() for r in _docs(memory)}
    again = memory.add_documents(notes, user_id="ana")
    assert (again.embedded, again.added, again.changed, again.removed) == (0, 0, 0, 0)
    assert again.unchanged == first.added
    assert {r.id: r.to_dict() for r in _docs(memory)} == before


def test_an_edited_section_is_the_only_text_embedded_again(memory, notes):
    memory.add_documents(notes, user_id="ana")
    (notes / "kitchen.md").write_text(GUIDE.replace("every month", "every second month"), encoding="utf-8")
    report = memory.add_documents(notes, user_id="ana")
    assert report.embedded == 1 and report.added == 1 and report.removed == 1
    assert report.changed == 1  # the document memory, rewritten from its chunks
    texts = [r.text for r in _docs(memory)]
    assert any("every second month" in t for t in texts) and not any("every month" in t for t in texts)


def test_a_removed_file_and_a_removed_section_are_forgotten_completely(memory, notes):
    memory.add_documents(notes, user_id="ana")
    (notes / "travel.rst").unlink()
    (notes / "kitchen.md").write_text(GUIDE.split("## Knives")[0], encoding="utf-8")
    report = memory.add_documents(notes, user_id="ana")
    assert report.removed >= 3 and report.embedded == 0
    for word in ("receipt", "dishwasher"):
        assert not [h for h in memory.search(word, user_id="ana", limit=20) if word in h.record.text.lower()]
        assert not [r for r in scan(memory._store, "ana") if word in r.text.lower()]
    assert {r.metadata["source"] for r in _docs(memory)} == {"notes/kitchen.md"}


def test_a_renamed_file_keeps_its_memories_and_vectors(memory, notes):
    memory.add_documents(notes, user_id="ana")
    chunks = {r.text: r for r in _docs(memory) if r.metadata.get("source") == "notes/travel.rst" and r.node_type == "chunk"}
    vectors = memory._store.vectors("ana", [r.id for r in chunks.values()])
    (notes / "travel.rst").rename(notes / "travel-2024.rst")
    report = memory.add_documents(notes, user_id="ana")
    assert report.embedded == 0
    moved = {r.text: r for r in _docs(memory) if r.metadata.get("source") == "notes/travel-2024.rst" and r.node_type == "chunk"}
    assert {t: r.id for t, r in moved.items()} == {t: r.id for t, r in chunks.items()}
    assert np.array_equal(memory._store.vectors("ana", [moved[t].id for t in chunks]), vectors)
    assert not [r for r in _docs(memory) if r.metadata.get("source") == "notes/travel.rst"]


def test_bad_files_are_skipped_by_name_and_the_good_ones_stored(memory, notes):
    (notes / "empty.md").write_text("   \n", encoding="utf-8")
    (notes / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))
    (notes / "blob.md").write_bytes(b"\x00\x01\x02")
    report = memory.add_documents(notes, user_id="ana")
    assert {s.path: s.reason.split(" (")[0] for s in report.skipped} == {
        "notes/empty.md": "empty", "notes/latin1.txt": "not UTF-8 text", "notes/blob.md": "a binary file"}
    assert report.documents == 2


def test_a_failed_write_leaves_the_store_as_it_was(memory, notes, monkeypatch):
    memory.add_documents(notes, user_id="ana")
    before = {r.id: r.to_dict() for r in scan(memory._store, "ana")}
    (notes / "travel.rst").unlink()
    (notes / "new.md").write_text("# New\n\nA brand new note about gardening.", encoding="utf-8")

    def broken_write(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(memory._store, "write", broken_write)
    with pytest.raises(OSError):
        memory.add_documents(notes, user_id="ana")
    monkeypatch.undo()
    assert {r.id: r.to_dict() for r in scan(memory._store, "ana")} == before  # the deletes were rolled back too


def test_each_user_has_their_own_copy_and_never_sees_another_users(memory, notes):
    memory.add_documents(notes, user_id="ana")
    memory.add_documents(notes, user_id="bob", category="procedural")
    assert {r.category.value for r in _docs(memory, "bob")} == {"procedural"}
    (notes / "travel.rst").unlink()
    memory.add_documents(notes, user_id="bob")
    assert {r.metadata["source"] for r in _docs(memory, "ana")} == {"notes/kitchen.md", "notes/travel.rst"}
    for hit in memory.search("receipt expenses", user_id="bob", limit=20):
        assert hit.record.user_id == "bob" and "receipt" not in hit.record.text


def test_search_grouped_by_document_ranks_documents_with_their_matching_chunks(memory, notes):
    memory.add_documents(notes, user_id="ana")
    memory.add("I had pasta for dinner with Bob", user_id="ana")
    hits = memory.search("where does the kettle live", user_id="ana", limit=2, group_by="document", explain=True)
    assert [h.record.node_type for h in hits] == ["document", "document"]
    assert hits[0].record.metadata["source"] == "notes/kitchen.md"
    assert hits[0].parts and all(p.record.node_type == "chunk" for p in hits[0].parts)
    assert "kettle" in hits[0].parts[0].record.text and hits[0].parts[0].explanation is not None
    assert hits[0].score >= hits[1].score


def test_search_mixes_documents_and_conversations_and_filters_by_source(memory, notes):
    memory.add_documents(notes, user_id="ana")
    memory.add("My kettle broke this morning", user_id="ana")
    kinds = {h.record.node_type for h in memory.search("kettle", user_id="ana", limit=10)}
    assert {"turn", "chunk"} <= kinds
    only = memory.search("kettle", user_id="ana", limit=10, filters={"source": "notes/travel.rst"})
    assert only and {h.record.metadata["source"] for h in only} == {"notes/travel.rst"}


def test_grouping_by_anything_but_documents_is_refused(memory):
    with pytest.raises(InputError, match="group_by"):
        memory.search("x", user_id="ana", group_by="session")
    with pytest.raises(InputError, match="allows neither"):
        memory.search("x", user_id="ana", group_by="document", filters={"node_type": "turn"})


def test_time_filters_use_the_documents_dates(memory, notes):
    memory.add_documents(notes, user_id="ana")
    march = memory.search("kettle knives", user_id="ana", limit=10, filters={"date_from": "2024-03-01", "date_to": "2024-03-31"})
    assert march and {h.record.metadata["source"] for h in march} == {"notes/kitchen.md"}
    assert memory.search("kettle knives", user_id="ana", filters={"date_from": "2025-01-01"}) == []
