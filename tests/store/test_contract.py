"""The contract every store backend passes: CRUD, all-or-nothing writes, history, filters, paging,
the reindex swap, per-user BM25 and tenant isolation.

Every test takes `store` (a fresh, empty store with an active index) or `new_store` (a factory of
them) from tests/store/conftest.py, which is parametrized over the backends: a new backend joins
by adding a param there. Only methods of the `Store` protocol (and the reindex methods) are used.
"""

from __future__ import annotations

from contextlib import closing
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from memlane.errors import StoreError
from memlane.filters import Filter
from memlane.records import Category, EventDate, HistoryEvent, MemoryRecord
from memlane.retrieve.context import UserContext

DIMS = 4  # the size of the index every store of conftest.py starts with
AT = "2023-01-01T00:00:00Z"


def rec(mid: str, user: str = "ana", text: str | None = None, **fields) -> MemoryRecord:
    text = text or f"note {mid}"
    return MemoryRecord(id=mid, user_id=user, text=text, embed_text=text, recorded_at=AT, **fields)


def unit(*xs: float) -> np.ndarray:
    """A unit vector of the index's size from its first coordinates."""
    v = np.zeros(DIMS, np.float32)
    v[:len(xs)] = xs
    return v / np.linalg.norm(v)


def put(store, *records: MemoryRecord, vectors=None, events=()) -> None:
    """Write `records` in one batch; each gets unit(1) unless `vectors` are given."""
    store.write(list(records), [unit(1)] * len(records) if vectors is None else vectors, list(events))


def added(record: MemoryRecord) -> HistoryEvent:
    return HistoryEvent(record.id, "ADD", None, record.text, AT)


def ids(ranked) -> list[str]:
    return [pair[0] for pair in ranked]


def list_all(store, user: str, filters: Filter | None = None) -> list[MemoryRecord]:
    out, cursor = [], None
    while True:
        page, cursor = store.list(user, 1000, cursor, filters)
        out += page
        if cursor is None:
            return out


def state(store, users=("ana", "bo"), memory_ids=("m1", "m2", "m3", "m4", "b1")) -> tuple:
    """Everything a failed write must leave as it was."""
    stats = store.stats()
    return (stats.memories, stats.users, stats.by_node_type, stats.by_category, store.users(),
            {u: [r.to_dict() for r in list_all(store, u)] for u in users},
            {u: store.dense_candidates(u, unit(1), 100, None) for u in users},
            {u: store.lexical_candidates(u, ["note", "hiking", "rewritten"], 100, None) for u in users},
            {m: store.history(None, m) for m in memory_ids})


# -- 1. CRUD -----------------------------------------------------------------------------------


def test_a_fresh_store_is_empty_with_an_active_index(store):
    assert store.active_index().dims == DIMS
    assert (store.stats().memories, store.users(), list_all(store, "ana")) == (0, [], [])


def test_a_memory_reads_back_exactly_as_written(store):
    record = rec("m1", agent_id="a1", category=Category.SEMANTIC, node_type="fact", speaker="Zoë",
                 session_id="s1", session_date="2023-05-01T10:00:00", turn_index=3,
                 event_dates=[EventDate("last week", "2023-04-24", "2023-04-30", "week")],
                 metadata={"evidence": ["t1"], "ü": 1}, fact_key="ana|pet", valid_from="2023-05-01",
                 valid_until="2023-06-01", superseded_by="m2")
    put(store, record)
    assert store.get("ana", "m1") == record


def test_get_sees_only_the_users_own_memories_and_none_is_the_admin_path(store):
    put(store, rec("m1"), rec("b1", user="bo"))
    assert store.get("ana", "m1").text == "note m1"
    assert store.get("ana", "b1") is None and store.get("ana", "nope") is None
    assert store.get(None, "b1").user_id == "bo"


def test_get_many_keeps_the_order_asked_and_skips_other_users_and_unknown_ids(store):
    put(store, rec("m1"), rec("m2"), rec("b1", user="bo"), rec("m4"))
    assert [r.id for r in store.get_many("ana", ["m4", "b1", "nope", "m1"])] == ["m4", "m1"]
    assert store.get_many("ana", []) == []


def test_stats_count_memories_users_node_types_and_categories(store):
    put(store, rec("m1"), rec("m2", node_type="session"), rec("b1", user="bo", category=Category.SOCIAL))
    stats = store.stats()
    assert (stats.memories, stats.users) == (3, 2)
    assert stats.by_node_type == {"turn": 2, "session": 1}
    assert stats.by_category == {"episodic": 2, "social": 1}
    assert store.users() == ["ana", "bo"]


def test_a_memory_with_passages_scores_by_its_best_passage_and_reads_back_its_own_vector(store):
    packed = np.stack([unit(0, 1), unit(1, 1), unit(1)])  # its own vector, then two passages'
    put(store, rec("m1"), rec("m2"), vectors=[packed, unit(1, 1)])
    assert store.dense_candidates("ana", unit(1), 5, None) == [("m1", pytest.approx(1.0)),
                                                              ("m2", pytest.approx(0.7071, abs=1e-4))]
    assert np.allclose(store.vectors("ana", ["m1"]), [unit(0, 1)])


def test_delete_removes_the_users_memories_from_every_read_and_counts_them(store):
    put(store, rec("m1", text="hiking alps"), rec("m2", text="hiking home"), rec("b1", user="bo", text="hiking"))
    assert store.delete("bo", ["m1"], []) == 0  # not bo's
    assert store.delete("ana", ["m1", "nope"], []) == 1
    assert store.get("ana", "m1") is None and [r.id for r in list_all(store, "ana")] == ["m2"]
    assert ids(store.dense_candidates("ana", unit(1), 10, None)) == ["m2"]
    assert ids(store.lexical_candidates("ana", ["hiking"], 10, None)) == ["m2"]
    assert store.substring_matches("ana", ["alps", "m1"], 10, None) == []
    assert store.document_frequencies("ana", ["hiking", "alps"]) == ({"hiking": 1, "alps": 0}, 1)
    assert store.get("bo", "b1") is not None


def test_delete_rewrites_other_memories_in_the_same_call(store):
    put(store, rec("m1", text="old words"), rec("m2"), vectors=[unit(1), unit(1)])
    assert store.delete("ana", ["m2"], [], rewrite=[(rec("m1", text="fresh words"), unit(0, 1))]) == 1
    assert store.get("ana", "m1").text == "fresh words"
    assert ids(store.lexical_candidates("ana", ["fresh"], 10, None)) == ["m1"]
    assert store.lexical_candidates("ana", ["old"], 10, None) == []
    assert store.dense_candidates("ana", unit(0, 1), 10, None) == [("m1", pytest.approx(1.0))]


def test_replace_many_rewrites_texts_fields_and_vectors(store):
    put(store, rec("m1", text="old one"), rec("m2", text="old two"))
    new = [rec("m1", text="new one", speaker="Ana"), rec("m2", text="new two", node_type="fact")]
    store.replace_many(new, [unit(0, 1), unit(0, 0, 1)], [])
    assert store.get_many("ana", ["m1", "m2"]) == new
    assert store.dense_candidates("ana", unit(0, 1), 1, None) == [("m1", pytest.approx(1.0))]
    assert store.lexical_candidates("ana", ["old"], 10, None) == []
    assert ids(store.lexical_candidates("ana", ["new"], 10, None)) == ["m1", "m2"]


def test_delete_user_forgets_one_user_and_the_words_of_their_history(store):
    records = [rec("m1", text="ana's secret"), rec("m2"), rec("b1", user="bo")]
    put(store, *records, events=[added(r) for r in records])
    assert store.delete_user("ana", AT) == 2
    assert store.users() == ["bo"] and list_all(store, "ana") == []
    assert store.dense_candidates("ana", unit(1), 10, None) == []
    assert store.lexical_candidates("ana", ["secret", "note"], 10, None) == []
    assert not [e for e in store.history("ana", "m1") if "secret" in f"{e.old_text} {e.new_text}"]
    assert store.history("bo", "b1") == [added(records[2])] and store.get("bo", "b1") is not None


def test_clear_empties_the_store_and_keeps_its_index(store):
    put(store, rec("m1"), rec("b1", user="bo"), events=[added(rec("m1"))])
    index = store.active_index()
    store.clear()
    assert (store.stats().memories, store.users(), store.history(None, "m1")) == (0, [], [])
    assert store.active_index() == index
    put(store, rec("m1"))  # usable again, and the id is free
    assert ids(store.dense_candidates("ana", unit(1), 10, None)) == ["m1"]


# -- 2. All or nothing -------------------------------------------------------------------------


@pytest.fixture
def seeded(store):
    """ana's m1 and m2 and bo's b1, each written with its ADD event."""
    records = [rec("m1", text="hiking alps"), rec("m2", text="quiet home"), rec("b1", user="bo")]
    put(store, *records, vectors=[unit(1), unit(0, 1), unit(1)], events=[added(r) for r in records])
    return store


FAILED_WRITES = {
    "a duplicate id in the batch": ([rec("m3"), rec("m3")], [unit(1)] * 2),
    "an id already stored": ([rec("m3"), rec("m1")], [unit(1)] * 2),
    "the id of another user's memory": ([rec("m3"), rec("b1")], [unit(1)] * 2),
    "fewer vectors than records": ([rec("m3"), rec("m4")], [unit(1)]),
    "more vectors than records": ([rec("m3")], [unit(1)] * 2),
    "a vector of the wrong size": ([rec("m3"), rec("m4")], [unit(1), np.ones(DIMS + 1, np.float32)]),
}


@pytest.mark.parametrize("batch, vectors", FAILED_WRITES.values(), ids=FAILED_WRITES.keys())
def test_a_failed_write_changes_nothing(seeded, batch, vectors):
    before = state(seeded)
    with pytest.raises(StoreError):
        seeded.write(batch, vectors, [added(r) for r in batch])
    assert state(seeded) == before


FAILED_DELETES = {
    "a rewrite with a vector of the wrong size": ([], [(rec("m2", text="rewritten"), np.ones(DIMS + 1, np.float32))]),
    "an event for a memory never stored": ([HistoryEvent("nope", "DELETE", "x", None, AT)],
                                          [(rec("m2", text="rewritten"), unit(1))]),
}


@pytest.mark.parametrize("events, rewrite", FAILED_DELETES.values(), ids=FAILED_DELETES.keys())
def test_a_delete_with_a_rewrite_that_fails_part_way_changes_nothing(seeded, events, rewrite):
    before = state(seeded)
    with pytest.raises(StoreError):
        seeded.delete("ana", ["m1"], events, rewrite=rewrite)
    assert state(seeded) == before


def test_a_replace_many_with_one_memory_missing_changes_nothing(seeded):
    before = state(seeded)
    with pytest.raises(StoreError):
        seeded.replace_many([rec("m1", text="rewritten"), rec("b1", text="not ana's")], [unit(1)] * 2,
                            [HistoryEvent("m1", "UPDATE", "hiking alps", "rewritten", AT)])
    assert state(seeded) == before


# -- 3. History --------------------------------------------------------------------------------


def test_history_lists_a_memorys_events_in_order_and_keeps_them_after_delete(store):
    first = rec("m1", text="v1")
    put(store, first, events=[added(first)])
    update = HistoryEvent("m1", "UPDATE", "v1", "v2", "2023-01-02T00:00:00Z")
    store.replace_many([rec("m1", text="v2")], [unit(1)], [update])
    delete = HistoryEvent("m1", "DELETE", "v2", None, "2023-01-03T00:00:00Z")
    store.delete("ana", ["m1"], [delete])
    assert store.history("ana", "m1") == [added(first), update, delete]


def test_history_is_scoped_by_user_and_none_is_the_admin_path(store):
    records = [rec("m1"), rec("b1", user="bo")]
    put(store, *records, events=[added(r) for r in records])
    assert store.history("bo", "m1") == [] and store.history("ana", "b1") == []
    assert store.history(None, "b1") == store.history("bo", "b1") == [added(records[1])]


def test_a_delete_event_needs_no_earlier_history(store):
    put(store, rec("m1"))  # written without events
    store.delete("ana", ["m1"], [HistoryEvent("m1", "DELETE", "note m1", None, AT)])
    assert [e.event for e in store.history("ana", "m1")] == ["DELETE"]


def test_a_reused_memory_id_keeps_each_users_history_apart(store):
    ana, bo = rec("x1", text="ana's words"), rec("x1", user="bo", text="bo's secret")
    for record in (ana, bo):  # bo's memory takes the id of ana's deleted one
        put(store, record, events=[added(record)])
        store.delete(record.user_id, ["x1"], [HistoryEvent("x1", "DELETE", record.text, None, AT)])
    assert [(e.event, e.new_text or e.old_text) for e in store.history("ana", "x1")] == \
        [("ADD", "ana's words"), ("DELETE", "ana's words")]
    assert [(e.event, e.new_text or e.old_text) for e in store.history("bo", "x1")] == \
        [("ADD", "bo's secret"), ("DELETE", "bo's secret")]


# -- 4. Filters, the same for every source ------------------------------------------------------

# ana's memories in insertion order; bo holds a copy of each ("bo-" + id) that no ana read may return.
CORPUS = [
    rec("t1", node_type="turn", agent_id="a1", session_id="s1", speaker="Ana",
        session_date="2023-05-01T10:00:00", turn_index=0),
    rec("t2", node_type="turn", agent_id="a1", session_id="s1", speaker="Bo",
        session_date="2023-05-01T10:00:00", turn_index=1),
    rec("s1", node_type="session", session_id="s1", session_date="2023-05-01T10:00:00"),
    rec("f1", node_type="fact", category=Category.SEMANTIC, agent_id="a2", valid_from="2023-06-01",
        valid_until="2023-07-01", event_dates=[EventDate("mid June", "2023-06-10", "2023-06-12", "day")]),
    rec("f2", node_type="fact", category=Category.SEMANTIC, agent_id="a2", valid_from="2023-07-01"),
    rec("t3", node_type="turn", session_id="s2", speaker="Ana", session_date="2023-08-15T09:00:00", turn_index=0,
        event_dates=[EventDate("May 20", "2023-05-20", "2023-05-20", "day")]),
    rec("p1", node_type="fact", category=Category.PROCEDURAL),  # recorded 2023-01-01, no other date
]
ORDER = [r.id for r in CORPUS]

FILTER_CASES = {
    "nothing restricted": (Filter(), ORDER),
    "one node type": (Filter(node_type="turn"), ["t1", "t2", "t3"]),
    "two node types": (Filter(node_type=("fact", "session")), ["s1", "f1", "f2", "p1"]),
    "no node type allowed": (Filter(node_type=()), []),
    "category": (Filter(category="semantic"), ["f1", "f2"]),
    "two categories": (Filter(category=("procedural", "episodic")), ["t1", "t2", "s1", "t3", "p1"]),
    "agent": (Filter(agent_id="a1"), ["t1", "t2"]),
    "session": (Filter(session_id="s1"), ["t1", "t2", "s1"]),
    "speaker": (Filter(speaker="Ana"), ["t1", "t3"]),
    "two speakers": (Filter(speaker=("Ana", "Bo")), ["t1", "t2", "t3"]),
    # date ranges keep a memory whose event range or session day overlaps them (inclusive)
    "a month: session days and an event": (Filter(date_from="2023-05-01", date_to="2023-05-31"),
                                           ["t1", "t2", "s1", "t3"]),
    "from a day: an event running over it, a later session": (Filter(date_from="2023-06-11"), ["f1", "t3"]),
    "up to a day: an event starting on it": (Filter(date_to="2023-06-10"), ["t1", "t2", "s1", "f1", "t3"]),
    "one day: an event ending on it": (Filter(date_from="2023-06-12", date_to="2023-06-12"), ["f1"]),
    "a range between events and sessions": (Filter(date_from="2023-06-13", date_to="2023-08-14"), []),
    # as_of keeps what was stated by then (valid_from, else session day, else recorded) and still held
    "as of mid June": (Filter(as_of="2023-06-15"), ["t1", "t2", "s1", "f1", "p1"]),
    "as of the day a fact was superseded": (Filter(as_of="2023-07-01"), ["t1", "t2", "s1", "f2", "p1"]),
    "as of before any session": (Filter(as_of="2023-04-30"), ["p1"]),
    "several fields at once": (Filter(node_type="turn", speaker="Ana", date_from="2023-05-01",
                                      date_to="2023-05-31"), ["t1", "t3"]),
}

SOURCES = {
    "list": lambda s, f: [r.id for r in list_all(s, "ana", f)],
    "dense_candidates": lambda s, f: ids(s.dense_candidates("ana", unit(1, 1, 1, 1), 100, f)),
    "lexical_candidates": lambda s, f: ids(s.lexical_candidates("ana", ["note"], 100, f)),
    "substring_matches": lambda s, f: ids(s.substring_matches("ana", ["note"], 100, f)),
}


@pytest.fixture
def corpus(store):
    """CORPUS written one memory a write, each followed by bo's copy of it."""
    for r in CORPUS:
        put(store, r)
        put(store, replace(r, id="bo-" + r.id, user_id="bo"))
    return store


@pytest.mark.parametrize("source", SOURCES.values(), ids=SOURCES.keys())
@pytest.mark.parametrize("filters, expected", FILTER_CASES.values(), ids=FILTER_CASES.keys())
def test_every_source_allows_exactly_what_the_filter_allows(corpus, source, filters, expected):
    assert sorted(source(corpus, filters)) == sorted(expected)


# -- 5. Cursor paging --------------------------------------------------------------------------


def pages(store, user: str, size: int, filters: Filter | None) -> list[list[str]]:
    out, cursor = [], None
    for _ in range(100):
        page, cursor = store.list(user, size, cursor, filters)
        out.append([r.id for r in page])
        if cursor is None:
            return out
    raise AssertionError("the cursor never ran out")


@pytest.mark.parametrize("filters, expected", FILTER_CASES.values(), ids=FILTER_CASES.keys())
def test_pages_cover_every_matching_memory_once_in_insertion_order(corpus, filters, expected):
    for size in range(1, len(ORDER) + 2):
        got = pages(corpus, "ana", size, filters)
        assert sum(got, []) == expected, size
        assert all(len(page) == size for page in got[:-1]) and len(got[-1]) <= size
        assert got[-1] or not expected  # no empty last page after a full one


# -- 6. Reindex with an atomic swap ------------------------------------------------------------


def test_a_reindex_answers_from_the_old_index_until_the_swap(store):
    put(store, rec("t1"), rec("s1", node_type="session"))
    old = store.active_index()
    new = store.create_index("toy-2", DIMS)
    assert store.building_index("toy-2", DIMS) == new and store.active_index() == old
    turns = store.missing_from_index(new, 10, sessions=False)
    sessions = store.missing_from_index(new, 10, sessions=True)
    assert [r.id for _, r in turns] == ["t1"] and [r.id for _, r in sessions] == ["s1"]
    assert store.put_index_vectors(new, turns, [unit(0, 1)]) == 1
    with pytest.raises(StoreError):  # s1 has no vector in the new index yet
        store.activate_index(new)
    assert dict(store.dense_candidates("ana", unit(1), 10, None)) == pytest.approx({"t1": 1.0, "s1": 1.0})
    assert store.put_index_vectors(new, sessions, [unit(0, 1)]) == 1
    store.activate_index(new)
    assert store.active_index() == new and store.building_index("toy-2", DIMS) is None
    assert dict(store.dense_candidates("ana", unit(0, 1), 10, None)) == pytest.approx({"t1": 1.0, "s1": 1.0})
    assert dict(store.dense_candidates("ana", unit(1), 10, None)) == pytest.approx({"t1": 0.0, "s1": 0.0})


def test_memories_written_or_rewritten_during_a_reindex_are_missing_from_the_new_index(store):
    put(store, rec("m1"))
    new = store.create_index("toy-2", DIMS)
    store.put_index_vectors(new, store.missing_from_index(new, 10, sessions=False), [unit(0, 1)])
    put(store, rec("m2"))
    store.replace_many([rec("m1", text="changed")], [unit(1)], [])
    assert sorted(r.id for _, r in store.missing_from_index(new, 10, sessions=False)) == ["m1", "m2"]
    with pytest.raises(StoreError):
        store.activate_index(new)


def test_a_vector_computed_for_a_memory_deleted_meanwhile_is_not_written(store):
    put(store, rec("m1"), rec("m2"))
    new = store.create_index("toy-2", DIMS)
    batch = store.missing_from_index(new, 10, sessions=False)
    store.delete("ana", ["m2"], [])
    put(store, rec("m3"))  # may take the deleted memory's place in the backend
    assert store.put_index_vectors(new, batch, [unit(0, 1), unit(0, 1)]) == 1
    assert [r.id for _, r in store.missing_from_index(new, 10, sessions=False)] == ["m3"]


# -- 7. Per-user BM25 --------------------------------------------------------------------------

LEXICAL_TEXTS = [
    "We went hiking in the Alps, hiking every day",
    "a quiet day at home",
    "Hikes, hikers and more hikes: the hiking club's e-mail list grew and grew",
    "Café Zoë sends an e-mail about the hike, then e-mail after e-mail",
    "home",
]
TERM_SETS = [["hiking"], ["hikes", "home"], ["e-mail", "cafe", "grew"], ["day", "alps", "zoe", "nothing"]]
OTHERS_TEXT = "hiking hiking home e-mail day grew"  # makes ana's words common in the store at large


def ana_memories() -> list[MemoryRecord]:
    return [rec(f"ana{i}", text=t) for i, t in enumerate(LEXICAL_TEXTS)]


def others(user: str, n: int) -> list[MemoryRecord]:
    return [rec(f"{user}{i}", user=user, text=OTHERS_TEXT) for i in range(n)]


LAYOUTS = {  # ana's memories among other users', as the writes arrive
    "interleaved": lambda: [batch for r in ana_memories() for batch in ([r], others(f"bo-{r.id}-", 3))],
    "in blocks": lambda: [others("bo", 10), ana_memories(), others("cy", 10)],
    "ana holding most": lambda: [ana_memories(), others("bo", 2)],
}


@pytest.mark.parametrize("terms", TERM_SETS, ids=" ".join)
@pytest.mark.parametrize("layout", LAYOUTS.values(), ids=LAYOUTS.keys())
def test_lexical_scores_and_frequencies_of_a_user_ignore_other_users(new_store, layout, terms):
    alone, shared = new_store(), new_store()
    put(alone, *ana_memories())
    for batch in layout():
        put(shared, *batch)
    assert shared.document_frequencies("ana", terms) == alone.document_frequencies("ana", terms)
    reference = alone.lexical_candidates("ana", terms, 10, None)
    ours = shared.lexical_candidates("ana", terms, 10, None)
    assert reference and ids(ours) == ids(reference)
    assert dict(ours) == pytest.approx(dict(reference), rel=1e-9)


@pytest.mark.parametrize("large", [False, True], ids=["texts held", "large user"])
def test_texts_holding_a_name_are_found_among_the_ids_asked_about(store, large):
    store.dense_exact_below = 0 if large else 10**9  # a large user's texts stay in the store
    texts = ["I met Zoë at the café", "zoë again, ZOË!", "Bo said hi", "a bluebird", "nothing here", "Zoë"]
    put(store, *[rec(f"m{i}", text=t) for i, t in enumerate(texts)], rec("b1", user="bo", text="Zoë"))
    assert (store.search_view("ana").vectors_from is not None) == large
    asked = ["m0", "m1", "m2", "m3", "m4", "b1", "unknown"]  # not m5: only the ids asked about
    assert store.texts_holding("ana", asked, ["ZOË"]) == {"m0", "m1"}
    assert store.texts_holding("ana", asked, ["bo", "nobody"]) == {"m2"}
    # A needle inside a longer word is found by a scan of held texts, not through the word index.
    assert store.texts_holding("ana", asked, ["bird"]) == (set() if large else {"m3"})
    assert store.texts_holding("bo", ["b1", "m0"], ["zoë"]) == {"b1"}


@pytest.mark.parametrize("large", [False, True], ids=["texts held", "large user"])
def test_a_large_user_trusts_the_word_index_for_plain_words_and_reads_texts_for_the_rest(store, large):
    store.dense_exact_below = 0 if large else 10**9
    texts = ["Caroline's new job", "ana at example dot com", "mail ana@example.com today", "hiking trips"]
    put(store, *[rec(f"m{i}", text=t) for i, t in enumerate(texts)])
    asked = [f"m{i}" for i in range(len(texts))]
    assert store.texts_holding("ana", asked, ["caroline"]) == {"m0"}
    # Other characters: the words match in m1 and m2, and the text is read to find the address.
    assert store.texts_holding("ana", asked, ["ana@example.com"]) == {"m2"}
    assert [m for m, _ in store.substring_matches("ana", ["ana@example.com"], 5, None)] == ["m2"]
    # Plain words at a large user: the word index decides, word endings aside.
    assert store.texts_holding("ana", asked, ["hikes"]) == ({"m3"} if large else set())
    assert [m for m, _ in store.substring_matches("ana", ["hikes"], 5, None)] == (["m3"] if large else [])


# -- 8. Tenant isolation, as properties ---------------------------------------------------------

USERS = ("ana", "bo", "cy")
WORDS = ("hiking", "home", "alps", "dog", "e-mail", "zoë", "Ana", "Bo")  # no two share a stem
NODE_TYPES = ("turn", "session", "fact")
SPEAKERS = ("Ana", "Bo")
SESSIONS = ("s1", "s2")
DAYS = ("2023-05-01", "2023-06-01", "2023-07-01")

vectors = st.lists(st.integers(-2, 2), min_size=DIMS, max_size=DIMS).filter(any).map(lambda xs: unit(*xs))
memories = st.lists(st.fixed_dictionaries({
    "user": st.sampled_from(USERS),
    "words": st.lists(st.sampled_from(WORDS), min_size=1, max_size=5),
    "vector": vectors,
    "node_type": st.sampled_from(NODE_TYPES),
    "speaker": st.sampled_from((None, *SPEAKERS)),
    "session": st.sampled_from((None, *SESSIONS)),
    "day": st.sampled_from((None, *DAYS)),
}), min_size=1, max_size=12)


def some(values) -> st.SearchStrategy:
    return st.none() | st.lists(st.sampled_from(values), max_size=2).map(tuple)


filters = st.none() | st.builds(
    Filter, node_type=some(NODE_TYPES), speaker=some(SPEAKERS), session_id=some(SESSIONS),
    date_from=st.none() | st.sampled_from(DAYS), date_to=st.none() | st.sampled_from(DAYS),
    as_of=st.none() | st.sampled_from(DAYS))
terms = st.lists(st.sampled_from(WORDS), min_size=1, max_size=3)

isolation = settings(derandomize=True, deadline=None, max_examples=60,
                     suppress_health_check=[HealthCheck.function_scoped_fixture])  # a fresh store per example


def build(drawn: list[dict]) -> list[tuple[MemoryRecord, np.ndarray]]:
    return [(rec(f"m{i}", user=m["user"], text=" ".join(m["words"]), node_type=m["node_type"], speaker=m["speaker"],
                 session_id=m["session"], session_date=m["day"], turn_index=i), m["vector"])
            for i, m in enumerate(drawn)]


def fill(store, written: list[tuple[MemoryRecord, np.ndarray]], chunk: int):
    """Write (record, vector) pairs in batches of `chunk`, the users' memories mixed."""
    for start in range(0, len(written), chunk):
        batch = written[start:start + chunk]
        put(store, *[r for r, _ in batch], vectors=[v for _, v in batch])
    return store


@isolation
@given(drawn=memories, chunk=st.integers(1, 4), filters=filters, query=vectors, terms=terms)
def test_no_read_returns_or_counts_another_users_memory(new_store, drawn, chunk, filters, query, terms):
    written = build(drawn)
    all_ids = [r.id for r, _ in written]
    with closing(fill(new_store(), written, chunk)) as store:
        for user in (*USERS, "zed"):
            own = [(r, v) for r, v in written if r.user_id == user]
            mine = {r.id for r, _ in own}
            holding = {t: {r.id for r, _ in own if t in r.text.split()} for t in terms}
            assert set(ids(store.dense_candidates(user, query, 100, None))) == mine
            assert set(ids(store.dense_candidates(user, query, 100, filters))) <= mine
            assert set(ids(store.lexical_candidates(user, terms, 100, None))) == set().union(*holding.values())
            assert set(ids(store.lexical_candidates(user, terms, 100, filters))) <= mine
            assert set(ids(store.substring_matches(user, [*terms, *all_ids], 100, filters))) <= mine
            assert store.document_frequencies(user, terms) == ({t: len(h) for t, h in holding.items()}, len(own))
            assert {r.id for r in list_all(store, user, filters)} <= mine
            assert [r.id for r in store.get_many(user, all_ids)] == [r.id for r, _ in own]
            assert np.allclose(store.vectors(user, [r.id for r, _ in own]), [v for _, v in own] or np.zeros((0, DIMS)))
            assert list(store.search_view(user).ids) == [r.id for r, _ in own]
            assert len(store.search_texts(user)) == len(own)
            mask = store.filter_mask(user, filters)
            assert mask is None or len(mask) == len(own)
            context = UserContext(store, user)  # what retrieval computes above the seam, from the view
            assert context.speakers() == sorted({r.speaker for r, _ in own if r.speaker})
            assert context.mentioning(all_ids, SPEAKERS) <= mine
            around = context.turns_around(all_ids, 3)
            assert set(around) <= mine and {n for near in around.values() for n, _ in near} <= mine
            assert context.session_ids(all_ids) == {r.id: r.session_id for r, _ in own if r.session_id}
            assert set(ids(context.context_candidates(query, 0.5, 100, filters))) <= mine


@isolation
@given(drawn=memories, chunk=st.integers(1, 4), filters=filters, query=vectors, terms=terms)
def test_a_users_answers_equal_those_of_a_store_holding_only_that_user(new_store, drawn, chunk, filters, query,
                                                                        terms):
    written = build(drawn)
    with closing(fill(new_store(), written, chunk)) as shared:
        for user in sorted({r.user_id for r, _ in written}):
            with closing(fill(new_store(), [(r, v) for r, v in written if r.user_id == user], chunk)) as alone:
                for read in (lambda s: dict(s.dense_candidates(user, query, 100, filters)),
                             lambda s: dict(s.lexical_candidates(user, terms, 100, filters))):
                    assert read(shared) == pytest.approx(read(alone), rel=1e-9)
                assert shared.document_frequencies(user, terms) == alone.document_frequencies(user, terms)
                assert shared.substring_matches(user, terms, 100, filters) == \
                    alone.substring_matches(user, terms, 100, filters)
                assert list_all(shared, user, filters) == list_all(alone, user, filters)


def test_asking_for_another_users_vectors_is_an_error_not_an_answer(store):
    put(store, rec("m1"), rec("b1", user="bo"))
    with pytest.raises(StoreError):
        store.vectors("ana", ["m1", "b1"])


# -- service records (API keys, jobs) ------------------------------------------------------------


def test_service_records_are_written_read_listed_and_deleted_by_kind(store):
    assert store.put_service_record("job", "j2", {"state": "queued", "n": 1})
    assert store.put_service_record("job", "j1", {"state": "queued"})
    store.put_service_record("api_key", "k1", {"role": "admin"})
    store.put_service_record("job", "j2", {"state": "running", "n": 2})  # an update keeps its place
    assert store.service_record("job", "j2") == {"state": "running", "n": 2}
    assert store.service_records("job") == [{"state": "running", "n": 2}, {"state": "queued"}]
    assert store.service_record("job", "k1") is None and store.service_records("nothing") == []
    assert store.delete_service_record("job", "j2") and not store.delete_service_record("job", "j2")
    assert store.service_records("job") == [{"state": "queued"}]


def test_a_create_only_service_record_is_taken_once(new_store):
    first = new_store()
    assert first.put_service_record("lock", "mutating", {"job": "a"}, create_only=True)
    assert not first.put_service_record("lock", "mutating", {"job": "b"}, create_only=True)
    assert first.service_record("lock", "mutating") == {"job": "a"}
    assert first.delete_service_record("lock", "mutating")
    assert first.put_service_record("lock", "mutating", {"job": "c"}, create_only=True)


def test_recent_history_is_newest_first_without_texts_and_keeps_to_the_users_asked(store):
    put(store, rec("m1"), events=[added(rec("m1"))])
    put(store, rec("b1", user="bo"), events=[added(rec("b1", user="bo"))])
    store.delete("ana", ["m1"], [HistoryEvent("m1", "DELETE", "note m1", None, "2023-01-02T00:00:00Z")])
    assert [(u, m, e) for u, m, e, _ in store.recent_history(10)] == [
        ("ana", "m1", "DELETE"), ("bo", "b1", "ADD"), ("ana", "m1", "ADD")]
    assert [m for _, m, _, _ in store.recent_history(10, users=["bo"])] == ["b1"]
    assert store.recent_history(1) == [("ana", "m1", "DELETE", "2023-01-02T00:00:00Z")]
    assert store.recent_history(10, users=[]) == []


def test_a_users_verbatim_lookup_through_the_word_index_finds_what_the_scan_finds_in_whole_words(store, monkeypatch):
    from memlane.store import view as view_module

    put(store, rec("m1", text="Ana flew to Lisbon on the 3rd"), rec("m2", text="a bluebird sang at the window"),
        rec("m3", text="Lisbon again, then PORTO"), rec("b1", user="bo", text="Lisbon trip"))
    needles = ["lisbon", "Porto", "flew to lisbon", "bird", "m2"]
    scanned = store.substring_matches("ana", needles, 10, None)
    monkeypatch.setattr(view_module, "SCAN_TEXTS_BELOW", 10)  # characters: every store here is past it
    indexed = store.substring_matches("ana", needles, 10, None)
    assert ("m2", "bird") in scanned and ("m2", "bird") not in indexed  # inside a longer word: the scan only
    assert [m for m in scanned if m[1] != "bird"] == indexed
    assert ("m1", "flew to lisbon") in indexed and ("m3", "Porto") in indexed and ("m2", "m2") in indexed
    assert all(mid != "b1" for mid, _ in indexed)
