import numpy as np
import pytest

from memlane.errors import StoreError
from memlane.records import EventDate, HistoryEvent, MemoryRecord
from memlane.store.sqlite import SQLiteStore


def _record(i, user="ana", text=None):
    return MemoryRecord(id=f"m{i}", user_id=user, text=text or f"memory {i}", embed_text=text or f"memory {i}",
                        recorded_at="2023-01-01T00:00:00Z")


@pytest.fixture
def store(tmp_path):
    s = SQLiteStore(tmp_path / "s.db")
    s.create_index("toy", 2, active=True)
    yield s
    s.close()


def test_a_failed_write_leaves_the_store_as_it_was(store):
    store.write([_record(1)], np.ones((1, 2), np.float32), [])
    with pytest.raises(StoreError, match="rolled back"):
        store.write([_record(2), _record(1)], np.ones((2, 2), np.float32), [])  # duplicate id
    assert store.stats().memories == 1
    assert store.get("ana", "m2") is None


def test_dense_candidates_rank_by_cosine_within_one_user(store):
    vectors = np.array([[1, 0], [0, 1], [0.8, 0.6]], np.float32)
    store.write([_record(1), _record(2), _record(3, user="bo")], vectors, [])
    ranked = store.dense_candidates("ana", np.array([1, 0], np.float32), 5, None)
    assert [mid for mid, _ in ranked] == ["m1", "m2"]
    assert ranked[0][1] == pytest.approx(1.0)


def test_lexical_candidates_use_bm25_and_stemming(store):
    store.write([_record(1, text="we went hiking in the alps"), _record(2, text="a quiet day at home")],
                np.ones((2, 2), np.float32), [])
    assert [mid for mid, _ in store.lexical_candidates("ana", ["hikes"], 5, None)] == ["m1"]


def _fts5_bm25(store, user, terms):
    """FTS5's own bm25() for the user's memories (negated: higher is better), as a reference."""
    match = " OR ".join('"' + t.replace('"', '""') + '"' for t in terms)
    rows = store._conn.execute(
        "SELECT m.id, -bm25(memories_fts) FROM memories_fts JOIN memories m ON m.rowid = memories_fts.rowid "
        "WHERE memories_fts MATCH ? AND m.user_id = ?", (match, user)).fetchall()
    return dict(rows)


LEXICAL_TEXTS = [
    "We went hiking in the Alps, hiking every day",  # a repeated term, stemmed
    "a quiet day at home",
    "Hikes, hikers and more hikes: the hiking club's e-mail list grew and grew and grew",
    "Café Zoë sends an e-mail about the hike, then e-mail after e-mail",  # diacritics, a phrase term twice
    "home",
]

QUERIES = (["hiking"], ["hikes", "home"], ["e-mail", "cafe", "grew"], ["day", "alps", "zoe", "nothing"])


def test_lexical_scores_equal_fts5_bm25_in_a_store_of_one_user(store):
    records = [_record(i, text=t) for i, t in enumerate(LEXICAL_TEXTS)]
    store.write(records, np.ones((len(records), 2), np.float32), [])
    for terms in QUERIES:
        ours = dict(store.lexical_candidates("ana", terms, 10, None))
        reference = _fts5_bm25(store, "ana", terms)
        assert ours.keys() == reference.keys() and ours
        for mid, score in reference.items():
            assert ours[mid] == pytest.approx(score, rel=1e-9), (terms, mid)


def test_lexical_scores_take_no_statistics_from_other_users(tmp_path):
    def lexical(users):
        store = SQLiteStore(tmp_path / f"{len(users)}.db")
        store.create_index("toy", 2, active=True)
        records = [_record(f"{u}{i}", user=u, text=f"{t} {u}") for u in users for i, t in enumerate(LEXICAL_TEXTS)]
        # Another user who says "hiking" everywhere makes it a common word in the file, not for ana.
        records += [_record(f"z{i}", user="zed", text="hiking hiking home") for i in range(40)] if "zed" in users else []
        store.write(records, np.ones((len(records), 2), np.float32), [])
        return store.lexical_candidates("ana", ["hiking", "home", "grew"], 10, None), store

    alone, _ = lexical(["ana"])
    shared, store = lexical(["ana", "zed"])
    assert alone == shared
    # FTS5's own bm25() moved with the other user's words: the file-wide statistics differ.
    assert _fts5_bm25(store, "ana", ["hiking", "home", "grew"]) != pytest.approx(dict(shared))


def _interleaved(tmp_path, name="mixed.db"):
    """ana's memories written one at a time between other users', so they are spread over the file."""
    store = SQLiteStore(tmp_path / name)
    store.create_index("toy", 2, active=True)
    for i, text in enumerate(LEXICAL_TEXTS):
        store.write([_record(f"ana{i}", text=text)], np.ones((1, 2), np.float32), [])
        others = [_record(f"{u}{i}", user=u, text="hiking hiking home e-mail") for u in ("bo", "cy", "di")]
        store.write(others, np.ones((3, 2), np.float32), [])
    return store


def test_a_user_spread_over_the_file_gets_their_own_term_index_with_the_same_scores(tmp_path):
    alone = SQLiteStore(tmp_path / "alone.db")
    alone.create_index("toy", 2, active=True)
    alone.write([_record(f"ana{i}", text=t) for i, t in enumerate(LEXICAL_TEXTS)], np.ones((5, 2), np.float32), [])
    mixed = _interleaved(tmp_path)
    for terms in QUERIES:
        assert mixed.document_frequencies("ana", terms) == alone.document_frequencies("ana", terms)
        ours = mixed.lexical_candidates("ana", terms, 10, None)
        assert [mid for mid, _ in ours] == [mid for mid, _ in alone.lexical_candidates("ana", terms, 10, None)]
        assert dict(ours) == pytest.approx(_fts5_bm25(alone, "ana", terms), rel=1e-9)
    assert "ana" in mixed._lexicons  # read from ana's own index, not the file's
    assert "ana" not in alone._lexicons  # one user fills the file: the shared index serves


def test_a_user_written_in_one_block_among_others_also_gets_their_own_term_index(tmp_path):
    store = SQLiteStore(tmp_path / "blocks.db")
    store.create_index("toy", 2, active=True)
    store.write([_record(f"ana{i}", text=t) for i, t in enumerate(LEXICAL_TEXTS)], np.ones((5, 2), np.float32), [])
    store.write([_record(f"bo{i}", user="bo", text="hiking home") for i in range(20)], np.ones((20, 2), np.float32), [])
    assert store.document_frequencies("ana", ["hiking", "home"]) == ({"hiking": 3, "home": 2}, 5)
    assert "ana" in store._lexicons  # 5 of 25 memories: the shared index would read bo's as well


def test_a_users_term_index_follows_inserts_and_is_rebuilt_after_other_writes(tmp_path):
    store = _interleaved(tmp_path)
    assert store.lexical_candidates("ana", ["alps"], 10, None)
    table = store._lexicons["ana"].table
    store.write([_record("ana9", text="back to the alps in winter")], np.ones((1, 2), np.float32), [])
    store.write([_record("bo9", user="bo", text="the alps the alps")], np.ones((1, 2), np.float32), [])
    assert {mid for mid, _ in store.lexical_candidates("ana", ["alps"], 10, None)} == {"mana0", "mana9"}
    assert store._lexicons["ana"].table == table  # followed the inserts, not rebuilt
    replaced = store.get("ana", "mana9")
    replaced.superseded_by = "mana10"  # a knowledge update: the old fact's fields change, not its text
    store.write([_record("ana10", text="the alps again, by train")], np.ones((1, 2), np.float32), [],
                amended=[replaced])
    assert {mid for mid, _ in store.lexical_candidates("ana", ["alps"], 10, None)} == {"mana0", "mana9", "mana10"}
    assert store._lexicons["ana"].table == table
    store.delete("ana", ["mana0"], [])
    assert {mid for mid, _ in store.lexical_candidates("ana", ["alps"], 10, None)} == {"mana9", "mana10"}
    assert store._lexicons["ana"].table != table  # a delete is not followed: rebuilt


@pytest.mark.parametrize("spread", [False, True], ids=["shared index", "own index"])
def test_cached_postings_follow_inserts_as_a_fresh_read_finds_them(tmp_path, spread):
    store = _interleaved(tmp_path) if spread else SQLiteStore(tmp_path / "one.db")
    if not spread:
        store.create_index("toy", 2, active=True)
        store.write([_record(f"ana{i}", text=t) for i, t in enumerate(LEXICAL_TEXTS)], np.ones((5, 2), np.float32), [])
    for terms in QUERIES:
        store.lexical_candidates("ana", terms, 10, None)  # their postings are now cached with ana's view
    cached = set(store._view("ana").postings)
    store.write([_record("ana7", text="An e-mail from the hiking club: hikes at home, e-mail me")],
                np.ones((1, 2), np.float32), [])
    store.write([_record("ana8", text="grew up near the Alps")], np.ones((1, 2), np.float32), [])
    followed = store._view("ana")
    assert set(followed.postings) == cached  # carried over the writes, not dropped
    fresh = SQLiteStore(store.path)
    try:
        for terms in QUERIES:
            ours, theirs = store.lexical_candidates("ana", terms, 10, None), fresh.lexical_candidates("ana", terms, 10, None)
            assert [mid for mid, _ in ours] == [mid for mid, _ in theirs], terms
            assert dict(ours) == pytest.approx(dict(theirs), rel=1e-12), terms
            assert store.document_frequencies("ana", terms) == fresh.document_frequencies("ana", terms)
    finally:
        fresh.close()
        store.close()


def test_the_share_of_the_file_is_read_without_scanning_the_memories(store):
    from memlane.store.sqlite.store import _ROWID_BOUNDS

    steps = [row[-1].upper() for row in store._conn.execute("EXPLAIN QUERY PLAN " + _ROWID_BOUNDS)]
    assert not [s for s in steps if s.startswith("SCAN MEMORIES")]  # min() and max() together scan
    assert sum(s.startswith("SEARCH MEMORIES") for s in steps) == 2


def test_term_indexes_kept_are_bounded_and_dropped_when_evicted(tmp_path, monkeypatch):
    monkeypatch.setattr("memlane.store.sqlite.store._MAX_LEXICONS", 2)
    store = _interleaved(tmp_path)
    for user in ("bo", "cy", "di", "ana"):
        assert store.lexical_candidates(user, ["home"], 10, None)
    assert list(store._lexicons) == ["di", "ana"]
    tables = {r[0] for r in store._conn.execute("SELECT name FROM sqlite_temp_master WHERE type = 'table'")}
    assert {f"{l.table}{end}" for l in store._lexicons.values() for end in ("", "_terms")} <= tables
    assert sum(1 for t in tables if t.startswith("user_terms_") and t.endswith("_terms")) == 2


def test_lexical_candidates_respect_filters_and_k(store):
    records = [_record(i, text=t) for i, t in enumerate(LEXICAL_TEXTS)]
    records[2].node_type = "session"
    store.write(records, np.ones((len(records), 2), np.float32), [])
    everything = store.lexical_candidates("ana", ["hiking", "home"], 10, None)
    assert [mid for mid, _ in store.lexical_candidates("ana", ["hiking", "home"], 2, None)] == \
        [mid for mid, _ in everything[:2]]
    sessions = store.lexical_candidates("ana", ["hiking", "home"], 10, {"node_type": "session"})
    assert [mid for mid, _ in sessions] == ["m2"] and dict(everything)["m2"] == sessions[0][1]
    assert store.lexical_candidates("ana", ["nowhere"], 10, None) == []


def test_history_keeps_events_after_delete(store):
    store.write([_record(1)], np.ones((1, 2), np.float32), [HistoryEvent("m1", "ADD", None, "memory 1", "t0")])
    store.delete("ana", ["m1"], [HistoryEvent("m1", "DELETE", "memory 1", None, "t1")])
    assert [e.event for e in store.history("ana", "m1")] == ["ADD", "DELETE"]


def test_opening_a_file_that_is_not_a_store_is_a_clear_error(tmp_path):
    bad = tmp_path / "not-a-db.db"
    bad.write_bytes(b"hello, this is no database" * 100)
    with pytest.raises(StoreError, match="memlane SQLite file"):
        SQLiteStore(bad)


def test_a_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(StoreError, match="does not exist"):
        SQLiteStore(tmp_path / "nope" / "s.db")


def test_document_frequencies_count_one_users_memories_as_fts5_matches_them(store):
    records = [_record(i, text=t) for i, t in enumerate(LEXICAL_TEXTS)] + [_record(9, user="bo", text="hiking")]
    store.write(records, np.ones((len(records), 2), np.float32), [])
    frequencies, total = store.document_frequencies("ana", ["hiking", "e-mail", "homes", "nowhere", "-"])
    assert total == len(LEXICAL_TEXTS)
    assert frequencies == {"hiking": 3, "e-mail": 2, "homes": 2, "nowhere": 0, "-": 0}


def test_a_store_from_before_knowledge_updates_gains_the_new_columns(tmp_path):
    import sqlite3

    path = tmp_path / "old.db"
    s = SQLiteStore(path)
    s.create_index("toy", 2, active=True)
    s.write([_record(1)], np.ones((1, 2), np.float32), [])
    s.close()
    conn = sqlite3.connect(path)  # make it look like a schema-1 store
    conn.execute("DROP INDEX memories_by_fact")
    for column in ("fact_key", "valid_from", "valid_until", "superseded_by"):
        conn.execute(f"ALTER TABLE memories DROP COLUMN {column}")
    conn.commit()
    conn.close()
    reopened = SQLiteStore(path)
    record = reopened.get("ana", "m1")
    assert record.text == "memory 1" and record.superseded_by is None and record.current
    reopened.close()


def test_a_memory_with_passages_scores_by_its_best_passage(store):
    # m1's own vector points away from the query, one of its passages straight at it.
    packed = np.array([[0, 1], [0.6, 0.8], [1, 0]], np.float32)
    store.write([_record(1), _record(2)], [packed, np.array([0.8, 0.6], np.float32)], [])
    ranked = store.dense_candidates("ana", np.array([1, 0], np.float32), 5, None)
    assert [mid for mid, _ in ranked] == ["m1", "m2"]
    assert ranked[0][1] == pytest.approx(1.0)
    # Everything else that reads vectors sees the memory's own vector only.
    assert np.allclose(store.vectors("ana", ["m1"]), [[0, 1]])
    index = store.active_index()
    assert np.allclose(store.index_vectors(index, ["m1", "m2"]), [[0, 1], [0.8, 0.6]])


def test_passages_leave_with_their_memory(store):
    store.write([_record(1), _record(2)], [np.array([[0, 1], [1, 0], [1, 0]], np.float32),
                                           np.array([0, 1], np.float32)], [])
    store.delete("ana", ["m1"], [])
    ranked = store.dense_candidates("ana", np.array([1, 0], np.float32), 5, None)
    assert [mid for mid, _ in ranked] == ["m2"] and ranked[0][1] == pytest.approx(0.0)


def test_substring_matches_fold_case_beyond_ascii_and_stay_within_one_user(store):
    store.write([_record(1, text="Dinner with ZOË at the Straße café"), _record(2, text="order AB-1234 shipped"),
                 _record(3, user="bo", text="zoë again")], np.ones((3, 2), np.float32), [])
    assert store.substring_matches("ana", ["zoë"], 5, None) == [("m1", "zoë")]
    assert store.substring_matches("ana", ["STRAßE"], 5, None) == [("m1", "STRAßE")]
    assert store.substring_matches("ana", ["ab-1234", "m1"], 5, None) == [("m2", "ab-1234"), ("m1", "m1")]
    assert store.substring_matches("ana", ["nowhere"], 5, None) == []


def test_turn_texts_reads_the_embedding_text_of_turns_only(store):
    turn = MemoryRecord(id="t1", user_id="ana", text="raw", embed_text="[2023-01-01] Ana: raw", node_type="turn",
                        recorded_at="2023-01-01T00:00:00Z")
    fact = MemoryRecord(id="m2", user_id="ana", text="Ana has a dog", embed_text="Ana has a dog", node_type="fact",
                        recorded_at="2023-01-01T00:00:00Z")
    store.write([turn, fact], np.ones((2, 2), np.float32), [])
    assert store.turn_texts("ana", ["m2", "t1", "missing"]) == {"t1": "[2023-01-01] Ana: raw"}
    assert store.turn_texts("bo", ["t1"]) == {}


def _views_equal(followed, rebuilt):
    for field in ("rowids", "node_types", "matrix", "previous", "following", "superseded", "dated", "passages",
                  "passage_starts", "passage_owners", "event_starts", "event_ends", "session_days"):
        assert np.array_equal(getattr(followed, field), getattr(rebuilt, field)), field
    for field in ("generation", "index", "ids", "position", "speakers", "speaker_names", "session_ids", "turn_index"):
        assert getattr(followed, field) == getattr(rebuilt, field), field


def test_cached_views_follow_inserts_exactly_as_a_rebuild_would_read_them(store):
    rng = np.random.default_rng(7)

    def turns(user, session, indexes, speaker):
        return [MemoryRecord(id=f"{user}-{session}-{i}", user_id=user, text=f"Turn {i} ZOË", embed_text=f"turn {i}",
                             speaker=speaker, session_id=session, turn_index=i, node_type="turn",
                             recorded_at="2023-01-01T00:00:00Z") for i in indexes]

    def vectors(n):  # some memories carry passage vectors after their own
        return [rng.normal(size=(int(rng.integers(1, 4)), 2)).astype(np.float32) for _ in range(n)]

    store.write(turns("ana", "s1", [0, 2], "Ana"), vectors(2), [])  # a user's first memories start a view
    assert "ana" in store._views
    store.substring_matches("ana", ["zoë"], 5, None)  # texts read: later appends must carry them too
    store.lexical_candidates("ana", ["turn"], 5, None)  # so were the lengths BM25 needs
    store.write(turns("bo", "s9", [0], "Bo"), vectors(1), [])  # another user's write leaves ana's view current
    later = turns("ana", "s1", [1, 3], "Zoë") + turns("ana", "s2", [0], "Ana")
    later[0].event_dates = [EventDate("yesterday", "2023-01-01", "2023-01-01", "day")]
    later[2].superseded_by = "ana-s1-1"
    store.write(later[:2], vectors(2), [])
    store.write(later[2:], vectors(1), [])
    assert len(store._views["ana"].pending) == 2  # small writes wait, to be joined in once
    followed = {user: store._view(user) for user in ("ana", "bo")}
    assert not followed["ana"].pending and store._views["ana"] is followed["ana"]
    for user, view in followed.items():
        store._views.clear()
        rebuilt = store._view(user)
        assert rebuilt is not view
        _views_equal(view, rebuilt)
    assert followed["ana"].folded_texts == store._read_folded_texts("ana", followed["ana"].rowids)
    assert list(followed["ana"].lengths) == list(store._read_lengths("ana", followed["ana"].rowids)) == [2] * 5
    ana = followed["ana"]
    assert [ana.ids[j] for j in ana.following[:2]] == ["ana-s1-1", "ana-s1-3"]
    assert list(ana.dated) == [False, False, True, False, False] and ana.superseded[-1]


def test_a_view_that_was_stale_before_a_write_is_rebuilt_not_followed(store):
    store.write([_record(1)], [np.array([1, 0], np.float32)], [])
    store._view("ana")
    store.delete("ana", ["m1"], [])  # moves the generation on; the cached view is now stale
    store.write([_record(2)], [np.array([0, 1], np.float32)], [])
    assert [mid for mid, _ in store.dense_candidates("ana", np.array([1, 0], np.float32), 5, None)] == ["m2"]


def test_a_view_scans_once_per_query_and_never_serves_another_querys_scores(store):
    store.write([_record(1), _record(2)], np.array([[1, 0], [0, 1]], np.float32), [])
    view = store._view("ana")
    first = view.scores(np.array([1, 0], np.float32))
    assert view.scores(np.array([1, 0], np.float32)) is first and not first.flags.writeable
    assert list(view.scores(np.array([0, 1], np.float32))) == [0, 1]
    plain = view.scores(np.array([0, 1], np.float32))
    assert view.scores(np.array([0, 1], np.float32)) is plain


def test_a_bulk_write_of_new_users_never_evicts_a_view_in_use(store, monkeypatch):
    monkeypatch.setattr("memlane.store.sqlite.store._MAX_VIEWS", 3)
    store.write([_record(1)], [np.array([1, 0], np.float32)], [])
    searched = store._view("ana")
    store.write([_record(i, user=f"u{i}") for i in range(2, 7)], np.ones((5, 2), np.float32), [])
    assert len(store._views) == 3 and store._views["ana"] is searched
    assert [mid for mid, _ in store.dense_candidates("u6", np.array([1, 0], np.float32), 5, None)] == ["m6"]


def test_a_search_sees_one_state_while_another_process_deletes(tmp_path, config):
    """The deletion lands between the search's candidate step and its MMR step (which asks for
    the candidates' vectors): the search must neither raise nor return the deleted memories."""
    from memlane import Memory
    from memlane.embed import HashEmbedder

    path = tmp_path / "race.db"
    with Memory(path, config, embedder=HashEmbedder(dims=256)) as m:
        added = [m.add(f"I planted tomato seedling number {i} in the garden.", user_id="ana")[0] for i in range(30)]

    with Memory(path, config, embedder=HashEmbedder(dims=256)) as m:
        asked = m._store.vectors  # what MMR reads, after the candidate step

        def vectors_after_a_delete(user_id, ids):
            with Memory(path, config, embedder=HashEmbedder(dims=256)) as other:
                for record in added[::2]:
                    other.delete(record.id, user_id="ana")
            return asked(user_id, ids)

        m._store.vectors = vectors_after_a_delete
        hits = m.search("tomato seedling garden", user_id="ana", limit=10)
    deleted = {r.id for r in added[::2]}
    assert hits and not deleted & {h.id for h in hits}


def test_a_full_disk_is_reported_as_such_and_loses_nothing(store):
    store.write([_record(1)], np.ones((1, 2), np.float32), [])
    pages = store._conn.execute("PRAGMA page_count").fetchone()[0]
    store._conn.execute(f"PRAGMA max_page_count = {pages}")  # the file cannot grow: as a full disk
    big = [_record(i, text="word " * 20_000) for i in range(2, 6)]
    with pytest.raises(StoreError, match="full.*free space"):
        store.write(big, np.ones((4, 2), np.float32), [])
    assert store.stats().memories == 1
    store._conn.execute("PRAGMA max_page_count = 1073741823")
    store.write([_record(9)], np.ones((1, 2), np.float32), [])  # the store is usable afterwards
    assert store.get("ana", "m9") is not None


def test_a_bulk_write_drops_its_users_views_and_keeps_the_others(store):
    from memlane.store.sqlite.store import _FOLLOW_AT_MOST

    store.write([_record("a0", text="first note"), _record("b0", user="bo", text="bo's note")],
                np.ones((2, 2), np.float32), [])
    store.search_view("ana"), store.search_view("bo")  # both views cached
    bo_view = store._views["bo"]
    many = [_record(f"a{i}", text=f"bulk note {i}") for i in range(1, _FOLLOW_AT_MOST + 2)]
    store.write(many, np.ones((len(many), 2), np.float32), [])
    assert "ana" not in store._views and store._views["bo"] is bo_view  # bo's is still current
    assert len(store.dense_candidates("ana", np.ones(2, np.float32), 10_000, None)) == len(many) + 1
    last = f"ma{_FOLLOW_AT_MOST + 1}"
    assert store.lexical_candidates("ana", [str(_FOLLOW_AT_MOST + 1)], 5, None)[0][0] == last
    assert store.dense_candidates("bo", np.ones(2, np.float32), 10, None)[0][0] == "mb0"


def _two_processes(tmp_path):
    """Two stores on one file: each its own connection and caches, as two processes have."""
    writer = SQLiteStore(tmp_path / "shared.db")
    writer.create_index("toy", 2, active=True)
    return writer, SQLiteStore(tmp_path / "shared.db")


def test_another_process_adding_memories_is_followed_not_read_again(tmp_path):
    writer, reader = _two_processes(tmp_path)
    try:
        writer.write([_record(1, text="we went hiking"), _record(2, text="a quiet day")],
                     np.array([[1, 0], [0, 1]], np.float32), [])
        view = reader._view("ana")
        assert [m for m, _ in reader.lexical_candidates("ana", ["hiking"], 5, None)] == ["m1"]  # a term's postings held
        writer.write([_record(3, text="hiking again, in the rain"), _record(4, user="bo", text="hiking")],
                     np.array([[0.6, 0.8], [1, 0]], np.float32), [])
        followed = reader._view("ana")
        # Brought up to date, not read again: the postings of the term searched before carry the new row.
        assert followed.ids == ["m1", "m2", "m3"] and followed.generation == reader._generation()
        assert followed.postings["hiking"][0].tolist() == [0, 2] and followed.derived is not view.derived
        writer.write([_record(5, user="bo")], np.array([[1, 0]], np.float32), [])  # another user only
        assert reader._view("ana") is followed and followed.generation == reader._generation()
        assert [m for m, _ in reader.lexical_candidates("ana", ["hiking"], 5, None)] == ["m1", "m3"]
        assert [m for m, _ in reader.dense_candidates("ana", np.array([0.6, 0.8], np.float32), 1, None)] == ["m3"]
        assert [m for m, _ in reader.lexical_candidates("bo", ["hiking"], 5, None)] == ["m4"]  # never ana's
    finally:
        writer.close()
        reader.close()


def test_a_users_own_term_index_follows_another_process_adds_without_a_rebuild(tmp_path):
    writer, reader = _two_processes(tmp_path)
    try:
        others = [_record(f"b{i}", user="bo", text=f"bo's note {i}") for i in range(10)]  # ana holds a small share
        writer.write([_record(1, text="we went hiking"), *others], np.ones((11, 2), np.float32), [])
        assert [m for m, _ in reader.lexical_candidates("ana", ["hiking"], 5, None)] == ["m1"]
        lexicon = reader._lexicons["ana"]  # her own term index, not the file's
        writer.write([_record(2, text="kayaking at the lake")], np.ones((1, 2), np.float32), [])
        # A term first searched after the add is read from the same index, which now holds the new row.
        assert [m for m, _ in reader.lexical_candidates("ana", ["kayaking"], 5, None)] == ["m2"]
        assert reader._lexicons["ana"] is lexicon and lexicon.generation == reader._generation()
        assert reader.lexical_candidates("bo", ["kayaking"], 5, None) == []  # never ana's
        writer.delete("ana", ["m2"], [])  # anything but an add: the index is made again
        assert reader.lexical_candidates("ana", ["kayaking"], 5, None) == []
        assert reader._lexicons["ana"] is not lexicon
    finally:
        writer.close()
        reader.close()


def test_another_process_deleting_or_amending_makes_the_view_read_again(tmp_path):
    writer, reader = _two_processes(tmp_path)
    try:
        writer.write([_record(1, text="hiking"), _record(2, text="hiking home")], np.ones((2, 2), np.float32), [])
        view = reader._view("ana")
        assert writer.delete("ana", ["m1"], []) == 1
        again = reader._view("ana")
        assert again is not view and again.ids == ["m2"]
        assert [m for m, _ in reader.lexical_candidates("ana", ["hiking"], 5, None)] == ["m2"]
        writer.delete_user("ana", "2023-01-02T00:00:00Z")  # forgotten: their change notes too
        assert writer._query("SELECT count(*) FROM changes WHERE user_id = 'ana'") == [(0,)]
        assert reader._view("ana").ids == []
        # A writer that leaves no note (an older memlane): every view is read again.
        writer._conn.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation'")
        assert reader._view("ana") is not again and reader._view("ana").ids == []
    finally:
        writer.close()
        reader.close()


def test_every_write_notes_what_it_changed_and_old_notes_are_dropped(tmp_path, monkeypatch):
    from memlane.store.sqlite import store as sqlite_store

    monkeypatch.setattr(sqlite_store, "CHANGES_KEPT", 3)
    writer, reader = _two_processes(tmp_path)
    try:
        for i in range(1, 300):
            writer.write([_record(i)], np.ones((1, 2), np.float32), [])
        notes = writer._query("SELECT generation, user_id, first_rowid FROM changes ORDER BY generation")
        generation = writer._generation()
        assert notes[-1] == (generation, "ana", 299) and len(notes) < 300  # pruned every 256 generations
        view = reader._view("ana")
        for i in range(300, 305):  # further behind than the notes kept: read again, not followed
            writer.write([_record(i)], np.ones((1, 2), np.float32), [])
        assert reader._view("ana") is not view and len(reader._view("ana").ids) == 304
    finally:
        writer.close()
        reader.close()


@pytest.mark.parametrize("among_others", [False, True], ids=["holding the file", "among others"])
def test_a_phrase_is_counted_at_each_start_of_its_words_in_a_row(store, among_others):
    texts = ["ha ha ha, said Ana", "e-mail after e-mail, e-mail", "New York new-york", "the New-York times",
             "nothing", "ha ha", "a b a b a", "york new"]
    store.write([MemoryRecord(id=f"m{i}", user_id="ana", text=t, embed_text=t, node_type="fact",
                              recorded_at="2023-01-01T00:00:00Z") for i, t in enumerate(texts)],
                np.ones((len(texts), 2), np.float32), [])
    if among_others:  # the user's own term index instead of the file's
        store.write([MemoryRecord(id=f"o{i}", user_id="bo", text="ha ha new york", embed_text="ha ha new york",
                                  node_type="fact", recorded_at="2023-01-01T00:00:00Z") for i in range(20)],
                    np.ones((20, 2), np.float32), [])
    view = store._view("ana")
    expected = {"ha ha": {0: 2, 5: 1}, "e-mail": {1: 3}, "new york": {2: 2, 3: 1}, "a b a": {6: 2}, "not there": {}}
    for phrase, counts in expected.items():
        rows, found = store._postings("ana", view, phrase)
        assert dict(zip(rows.tolist(), found.tolist())) == counts, phrase


def test_a_time_filter_answered_from_the_view_lets_through_what_the_sql_filter_does(store):
    from memlane.filters import Filter
    from memlane.store.sql import filter_sql
    from memlane.store.view import held_filter, held_filter_mask

    days = [None, "2023-05-01", "2023-05-20", "2023-06-30", "2024-01-01"]
    records = []
    for i in range(40):
        start, end = days[i % 5], days[(i // 5) % 5]
        events = [EventDate("then", start, max(start, end or start), "day")] if start else []
        records.append(MemoryRecord(id=f"m{i}", user_id="ana", text=f"memory {i}", embed_text=f"memory {i}",
                                    node_type=("turn", "fact")[i % 2], event_dates=events,
                                    session_date=(days[(i // 3) % 5] + "T10:00:00") if days[(i // 3) % 5] else None,
                                    recorded_at="2023-01-01T00:00:00Z"))
    store.write(records, np.ones((40, 2), np.float32), [])
    view = store._view("ana")
    for lo, hi, kinds in [("2023-05-02", "2023-06-30", None), (None, "2023-05-01", ["turn"]), ("2023-07-01", None, None),
                          ("2023-05-20", "2023-05-20", ["fact"])]:
        f = Filter.parse({k: v for k, v in {"date_from": lo, "date_to": hi, "node_type": kinds}.items() if v})
        assert held_filter(f)
        clause, params = filter_sql(f)
        passed = {r[0] for r in store._query(f"SELECT m.id FROM memories m WHERE m.user_id = ? AND {clause}",
                                             ("ana", *params))}
        mask = held_filter_mask(view, f)
        assert {view.ids[i] for i in np.flatnonzero(mask)} == passed and 0 < len(passed) < 40
    assert not held_filter(Filter.parse({"category": ["x"]})) and not held_filter(Filter.parse({"as_of": "2023-05-01"}))


def test_a_large_users_common_word_is_estimated_and_a_rare_one_counted(tmp_path, monkeypatch):
    from memlane.store.sqlite import store as sqlite_store

    monkeypatch.setattr(sqlite_store, "COUNTED_AT_MOST", 50)
    s = SQLiteStore(tmp_path / "lean.db", dense_exact_below=0)  # every user large: counted by FTS5
    try:
        s.create_index("toy", 2, active=True)
        texts = [("tea and " if i % 3 == 0 else "") + ("kiwi " if i % 100 == 7 else "") + f"note {i}" for i in range(3000)]
        s.write([_record(i, text=t) for i, t in enumerate(texts)], np.ones((len(texts), 2), np.float32), [])
        assert s._view("ana").vectors_from is not None
        frequencies, total = s.document_frequencies("ana", ["tea", "kiwi", "tea and"])
        assert total == 3000 and frequencies["kiwi"] == 30  # under the cap: counted
        assert frequencies["tea"] == pytest.approx(1000, rel=0.05)  # past it: 51 matches scaled to the span
        assert frequencies["tea and"] == pytest.approx(1000, rel=0.05)  # a phrase alike
    finally:
        s.close()


def test_a_large_users_phrase_is_found_by_fts5s_phrase_query_once_a_memory(tmp_path):
    texts = ["the blue kettle and the blue kettle", "a kettle that is blue", "blue kettles boil", "nothing"]
    stores = {lean: SQLiteStore(tmp_path / f"{lean}.db", dense_exact_below=0 if lean else 10**9) for lean in (True, False)}
    try:
        found = {}
        for lean, s in stores.items():
            s.create_index("toy", 2, active=True)
            s.write([_record(i, text=t) for i, t in enumerate(texts)], np.ones((len(texts), 2), np.float32), [])
            view = s._view("ana")
            assert (view.vectors_from is not None) == lean
            rows, counts = s._postings("ana", view, "blue kettle")
            found[lean] = ([view.ids[r] for r in rows], counts.tolist())
        assert found[False] == (["m0", "m2"], [2, 1])  # positions read: each occurrence counted
        assert found[True] == (["m0", "m2"], [1, 1])  # the same memories, each once
    finally:
        for s in stores.values():
            s.close()
