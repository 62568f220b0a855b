"""A large SQLite user's dense candidates come from a usearch index beside the file, re-scored
exactly: the same memories as the exact scan (recall@10), exact scores, the user's own only,
filters applied, deletes and rewrites honoured at once, and a missing, stale or damaged file
rebuilt rather than trusted. The threshold is forced to 0 so a few hundred memories take that path."""

from __future__ import annotations

import numpy as np
import pytest
from _support import toy_memory, unit_vectors

from memlane.filters import Filter
from memlane.records import Category, HistoryEvent, MemoryRecord
from memlane.store.nearest import NearestIndex, blob_checksum, index_file, rows_file
from memlane.store import scan
from memlane.store.sqlite import SQLiteStore
from memlane.store.view import top_k

DIMS = 16
K = 10


def units(rng: np.random.Generator, *shape: int) -> np.ndarray:
    return unit_vectors(rng, DIMS, *shape)


memory = toy_memory


def exact(store, user, query, k, filters=None):
    """The exact scan: every row of the user's view scored, the filter applied."""
    view = store._view(user)
    scores = view.scores(query)
    mask = store.filter_mask(user, filters)
    return top_k(scores if mask is None else np.where(mask, scores, -np.inf), view.ids, k)


def fill(store: SQLiteStore, rng, count: int = 600) -> np.ndarray:
    """ana: `count` memories, a third with two passages each; bo: a copy of every query (nearer
    to it than anything of ana's). Returns the queries."""
    queries = units(rng, 20)
    store.create_index("toy", DIMS, active=True)
    store.write([memory(f"a{i}", "ana", i) for i in range(count)],
                [units(rng, 3) if i % 3 == 0 else units(rng, 1)[0] for i in range(count)], [])
    store.write([memory(f"b{i}", "bo", i) for i in range(len(queries))], list(queries), [])
    return queries


def sqlite_filled(tmp_path):
    store = SQLiteStore(tmp_path / "s.db", dense_exact_below=0)
    queries = fill(store, np.random.default_rng(7))
    yield store, queries
    store.close()


@pytest.fixture
def filled(tmp_path):
    yield from sqlite_filled(tmp_path)


@pytest.fixture(params=["sqlite", "postgresql"])
def either(request, tmp_path):
    """`filled`, on each backend: the index is usearch's on SQLite, pgvector's HNSW on PostgreSQL."""
    if request.param == "sqlite":
        yield from sqlite_filled(tmp_path)
        return
    from _postgres import postgres_schema
    from memlane.store.postgres import PostgresStore

    with postgres_schema(request.getfixturevalue("postgres_url")) as url:
        store = PostgresStore(url, dense_exact_below=0)
        try:
            yield store, fill(store, np.random.default_rng(7))
        finally:
            store.close()


def recall(store, user, queries, filters=None) -> float:
    found = [{m for m, _ in store.dense_candidates(user, q, K, filters)} for q in queries]
    return float(np.mean([len(f & {m for m, _ in exact(store, user, q, K, filters)}) / K for f, q in zip(found, queries)]))


def test_candidates_come_from_the_index_with_exact_scores(filled, monkeypatch):
    store, queries = filled
    drawn = []
    nearest = store._nearest_rows
    monkeypatch.setattr(store, "_nearest_rows", lambda *a: drawn.append(nearest(*a)) or drawn[-1])
    view = store._view("ana")
    for query in queries:
        found = store.dense_candidates("ana", query, K, None)
        scores = view.scores(query)
        assert [s for _, s in found] == pytest.approx([float(scores[view.position[m]]) for m, _ in found], abs=1e-6)
    assert len(drawn) == len(queries) and all(len(rows) < len(view.ids) for rows in drawn)  # drawn, not scanned
    assert recall(store, "ana", queries) >= 0.95
    assert index_file(store.path, view.index, "ana") is not None


def test_another_users_nearer_vectors_never_appear(either):
    store, queries = either
    for query in queries:
        assert all(m.startswith("a") for m, _ in store.dense_candidates("ana", query, K, None))
    assert store.dense_candidates("bo", queries[3], 1, None) == [("b3", pytest.approx(1.0, abs=1e-5))]


@pytest.mark.parametrize("filters", [{"node_type": ["fact"]}, {"category": ["semantic"]},
                                     {"session_id": ["s1", "s2"], "node_type": ["turn"]}])
def test_filters_apply_to_drawn_candidates(either, filters):
    store, queries = either
    f = Filter.parse(filters)
    allowed = {r.id for r in scan(store, "ana", f)}
    for query in queries[:8]:
        found = store.dense_candidates("ana", query, K, f)
        assert len(found) == K and {m for m, _ in found} <= allowed
    assert recall(store, "ana", queries[:8], f) >= 0.95


def test_a_narrow_filter_is_answered_exactly(either):
    store, queries = either
    f = Filter.parse({"session_id": ["s3"], "node_type": ["turn"], "category": ["semantic"]})
    found = store.dense_candidates("ana", queries[0], 100, f)
    expected = exact(store, "ana", queries[0], 100, f)
    assert [m for m, _ in found] == [m for m, _ in expected] and 0 < len(found) < 100
    assert [s for _, s in found] == pytest.approx([s for _, s in expected], abs=1e-6)


def test_a_deleted_memory_leaves_the_index_and_its_file(filled):
    store, queries = filled
    best = store.dense_candidates("ana", queries[0], 1, None)[0][0]
    store.close()  # saves the index
    store = SQLiteStore(store.path, dense_exact_below=0)
    path = index_file(store.path, store.active_index().name, "ana")
    assert path.exists()
    store.dense_candidates("ana", queries[0], 1, None)  # loaded
    store.delete("ana", [best], [HistoryEvent(best, "DELETE", None, None, "2024-01-01T00:00:00Z")])
    assert not path.exists() and not rows_file(path).exists()  # no copy of a forgotten vector stays on disk
    rowid = store._query("SELECT max(rowid) FROM memories")[0][0]
    assert all(best not in {m for m, _ in store.dense_candidates("ana", q, K, None)} for q in queries)
    index = store._nearest[("ana", store.active_index().name)]
    assert len(index) == len(store._view("ana").ids) and rowid > 0
    store.close()
    assert path.exists()


def test_a_stale_file_is_brought_up_to_date(tmp_path):
    rng = np.random.default_rng(11)
    store = SQLiteStore(tmp_path / "s.db", dense_exact_below=0)
    queries = fill(store, rng, 300)
    store.dense_candidates("ana", queries[0], K, None)
    store.close()
    path = index_file(store.path, _active_name(tmp_path / "s.db"), "ana")
    saved = path.read_bytes()
    # Another process (no index loaded) rewrites one memory, deletes one and adds some ...
    other = SQLiteStore(tmp_path / "s.db")
    rewritten = memory("a5", "ana", 5)
    other.replace(rewritten, queries[1], HistoryEvent("a5", "UPDATE", "note 5", "note 5", "2024-01-01T00:00:00Z"))
    other.delete("ana", ["a7"], [HistoryEvent("a7", "DELETE", None, None, "2024-01-01T00:00:00Z")])
    other.write([memory(f"n{i}", "ana", 1000 + i) for i in range(5)], list(units(rng, 5)), [])
    other.close()
    path.write_bytes(saved)  # ... and the old graph comes back (a copy, a crash between saves)
    assert len(NearestIndex.load(DIMS, path)) == 0  # it does not match its rows file: not trusted
    store = SQLiteStore(tmp_path / "s.db", dense_exact_below=0)
    try:
        assert store.dense_candidates("ana", queries[1], 1, None)[0][0] == "a5"  # its new vector is found
        for query in queries:
            assert "a7" not in {m for m, _ in store.dense_candidates("ana", query, K, None)}
        index = store._nearest[("ana", store.active_index().name)]
        view = store._view("ana")
        assert np.array_equal(index.keys, view.rowids.astype(np.uint64))
        blobs = store._fetch_vectors(view.index, view.rowids)
        assert np.array_equal(index.sums, np.array([blob_checksum(b) for b in blobs], dtype=np.uint64))
        assert view.vectors_from is not None and len(view.matrix) == 0  # a lean view: vectors stay in the store
    finally:
        store.close()


def _active_name(path) -> str:
    store = SQLiteStore(path)
    try:
        return store.active_index().name
    finally:
        store.close()


@pytest.mark.parametrize("damage", [b"", b"memlane-nearest-v1\n{}\n", b"not an index"])
def test_a_damaged_file_is_rebuilt(tmp_path, damage):
    rng = np.random.default_rng(5)
    store = SQLiteStore(tmp_path / "s.db", dense_exact_below=0)
    queries = fill(store, rng, 200)
    path = index_file(store.path, store.active_index().name, "ana")
    path.parent.mkdir(parents=True)
    path.write_bytes(damage)
    try:
        assert recall(store, "ana", queries) >= 0.95
    finally:
        store.close()
    loaded = NearestIndex.load(DIMS, path)
    assert len(loaded) == 200  # written again, whole, on close


def test_a_rewritten_memory_is_found_by_its_new_vector(filled):
    store, queries = filled
    store.dense_candidates("ana", queries[0], K, None)
    store.replace(memory("a10", "ana", 10), queries[2], HistoryEvent("a10", "UPDATE", "note 10", "note 10", "2024-01-01T00:00:00Z"))
    assert store.dense_candidates("ana", queries[2], 1, None)[0] == ("a10", pytest.approx(1.0, abs=1e-5))


def test_new_memories_join_the_index_as_they_are_written(filled):
    store, queries = filled
    store.dense_candidates("ana", queries[0], K, None)
    index = store._nearest[("ana", store.active_index().name)]
    before = len(index)
    for i in range(3):
        store.write([memory(f"c{i}", "ana", 2000 + i)], [queries[4 + i]], [])
        assert store.dense_candidates("ana", queries[4 + i], 1, None)[0][0] == f"c{i}"
    assert len(index) == before + 3


def test_deleting_a_user_removes_their_index_files(filled):
    store, queries = filled
    store.dense_candidates("ana", queries[0], K, None)
    store.close()
    store = SQLiteStore(store.path, dense_exact_below=0)
    path = index_file(store.path, store.active_index().name, "ana")
    assert path.exists()
    store.delete_user("ana", "2024-01-01T00:00:00Z")
    assert not path.exists()
    store.close()
    assert not path.exists()


def test_a_user_growing_past_the_threshold_switches_to_the_index(tmp_path):
    rng = np.random.default_rng(13)
    store = SQLiteStore(tmp_path / "s.db", dense_exact_below=150)
    try:
        store.create_index("toy", DIMS, active=True)
        queries = units(rng, 10)
        for start in range(0, 300, 30):  # searched between writes: the cached view follows them
            store.write([memory(f"a{i}", "ana", i) for i in range(start, start + 30)], list(units(rng, 30)), [])
            for query in queries[:2]:
                found = store.dense_candidates("ana", query, K, None)
                assert [m for m, _ in found] == [m for m, _ in exact(store, "ana", query, K)]
        assert store.nearest_rows("ana", queries[0], 100) is not None
        fresh = SQLiteStore(tmp_path / "s.db", dense_exact_below=150)
        try:
            assert fresh._view("ana").vectors_from is not None  # read again: lean
            assert recall(fresh, "ana", queries) >= 0.95
        finally:
            fresh.close()
    finally:
        store.close()


def test_a_large_users_bm25_with_a_filter_checks_its_best_rows(tmp_path):
    rng = np.random.default_rng(17)
    records = [MemoryRecord(id=f"a{i}", user_id="ana", text=f"note {i} about {'tea' if i % 4 else 'coffee'} and cake",
                            embed_text=f"note {i} about {'tea' if i % 4 else 'coffee'} and cake",
                            recorded_at="2023-01-01T00:00:00Z", node_type="turn",
                            category=(Category.EPISODIC, Category.SEMANTIC)[i % 3 == 0], session_id=f"s{i % 7}", turn_index=i)
               for i in range(400)]
    vectors = list(units(rng, 400))
    lean, exact_store = SQLiteStore(tmp_path / "lean.db", dense_exact_below=0), SQLiteStore(tmp_path / "exact.db")
    try:
        for store in (lean, exact_store):
            store.create_index("toy", DIMS, active=True)
            store.write(records, vectors, [])
        f = Filter.parse({"category": ["semantic"], "session_id": ["s1", "s2", "s3"]})
        assert lean._view("ana").vectors_from is not None and exact_store._view("ana").vectors_from is None
        found = lean.lexical_candidates("ana", ["coffee"], 10, f)
        assert found == exact_store.lexical_candidates("ana", ["coffee"], 10, f) and found
        allowed = {r.id for r in scan(exact_store, "ana", f)}
        assert {m for m, _ in found} <= allowed
        dense = lean.dense_candidates("ana", vectors[9], 5, f)
        assert {m for m, _ in dense} <= allowed and dense[0][0] == ("a9" if "a9" in allowed else dense[0][0])
    finally:
        lean.close()
        exact_store.close()


def test_the_index_library_loaded_first_leaves_the_model_runtime_loadable():
    """A search of a large user can load usearch before the embedding model's runtime: that order
    must not crash the process (usearch 2.26 with onnxruntime 1.32 did)."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", "import usearch.index, onnxruntime, torch; print('loaded')"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "loaded" in done.stdout, done.stderr[-500:]


def test_another_processs_adds_join_a_large_users_index_without_a_full_check(filled, tmp_path, monkeypatch):
    writer, queries = filled
    reader = SQLiteStore(tmp_path / "s.db", dense_exact_below=0)
    try:
        rng = np.random.default_rng(11)
        assert reader.dense_candidates("ana", queries[0], K, None)  # the reader's index is built and matched
        checks = []
        monkeypatch.setattr(NearestIndex, "_reconcile", lambda self, view, reads: checks.append(view))
        near = queries[1] * 0.999 + units(rng, 1)[0] * 0.001
        writer.write([memory("new", "ana", 9_999)], [near / np.linalg.norm(near)], [])  # another process adds
        found = reader.dense_candidates("ana", queries[1], K, None)
        assert found[0][0] == "new" and checks == []  # followed from the new row alone
        assert all(mid.startswith("a") or mid == "new" for mid, _ in found)  # never bo's
    finally:
        reader.close()


def test_a_draw_of_every_row_is_every_row_whatever_the_index_reaches(filled, monkeypatch):
    store, queries = filled
    view = store._view("ana")
    monkeypatch.setattr(store, "_nearest_rows", lambda *a: np.arange(5, dtype=np.int64))  # a graph reaching 5 rows
    assert store.nearest_rows("ana", queries[0], len(view.ids)).tolist() == list(range(len(view.ids)))
    assert store.nearest_rows("ana", queries[1], len(view.ids) - 1).tolist() == list(range(5))  # asked for fewer


def test_a_node_type_asked_for_alone_is_scanned_exactly_from_vectors_held_with_the_view(either, monkeypatch):
    store, queries = either
    f = Filter.parse({"node_type": ["fact"]})
    drawn = []
    nearest = store._nearest_rows
    monkeypatch.setattr(store, "_nearest_rows", lambda *a: drawn.append(a) or nearest(*a))
    for query in queries[:5]:
        found = store.dense_candidates("ana", query, K, f)
        expected = exact(store, "ana", query, K, f)
        assert [m for m, _ in found] == [m for m, _ in expected]
        assert [s for _, s in found] == pytest.approx([s for _, s in expected], abs=1e-6)
    assert drawn == []  # no draw from the index of every memory
    store.write([memory("a-new", "ana", 1)], [queries[0]], [])  # a fact written since: held too
    assert store.dense_candidates("ana", queries[0], 1, f) == [("a-new", pytest.approx(1.0, abs=1e-5))]
