"""Dense candidates of a large user come from pgvector's HNSW index, re-scored exactly: the same
memories as the exact scan of the user's view (recall@10), the same scores, the user's own only,
filters applied. The threshold is forced to 0 here so a few hundred memories take that path, and
sorting is disabled in the test's sessions, so the planner cannot answer by an exact sort (which
it prefers at this size) and the HNSW index is what is read."""

from __future__ import annotations

import threading
from contextlib import contextmanager
from urllib.parse import quote

import numpy as np
import psycopg
import pytest
from _support import toy_memory, unit_vectors
from _postgres import postgres_schema

from memlane.errors import StoreError
from memlane.filters import Filter
from memlane.records import Category, MemoryRecord
from memlane.store.postgres import PostgresStore
from memlane.store.postgres.vectors import (
    HNSW_BUILD_MEMORY_AT_MOST_MB,
    hnsw_build_memory_mb,
    literal,
    nearest_sql,
    search_settings_sql,
)
from memlane.store.view import top_k

DIMS = 16
K = 10


def units(rng: np.random.Generator, *shape: int) -> np.ndarray:
    return unit_vectors(rng, DIMS, *shape)


memory = toy_memory


@pytest.fixture(scope="module")
def filled(postgres_url):
    """ana: 300 memories, a third with two passages each; bo: a copy of every query (nearer to
    it than anything of ana's). Returns (store, queries)."""
    rng = np.random.default_rng(7)
    queries = units(rng, 20)
    with postgres_schema(postgres_url) as url:
        store = PostgresStore(url + quote(" -cenable_sort=off"), dense_exact_below=0)
        try:
            store.create_index("toy", DIMS, active=True)
            ana = [memory(f"a{i}", "ana", i) for i in range(300)]
            store.write(ana, [units(rng, 3) if i % 3 == 0 else units(rng, 1)[0] for i in range(300)], [])
            store.write([memory(f"b{i}", "bo", i) for i in range(len(queries))], list(queries), [])
            yield store, queries
        finally:
            store.close()


def exact(store, user, query, k, filters=None):
    """The exact scan: every row of the user's view scored, the filter applied."""
    scores = store._view(user).scores(query)
    mask = store.filter_mask(user, filters)
    return top_k(scores if mask is None else np.where(mask, scores, -np.inf), store._view(user).ids, k)


@contextmanager
def large_user_store(postgres_url):
    """A new store whose every user is searched through the HNSW index, its vector index made."""
    with postgres_schema(postgres_url) as url:
        store = PostgresStore(url, dense_exact_below=0)
        try:
            store.create_index("toy", DIMS, active=True)
            yield store
        finally:
            store.close()


def hnsw_exists(store) -> bool:
    with psycopg.connect(store.url) as conn:
        return conn.execute("SELECT to_regclass(%s)", (f"{store.active_index().name}_hnsw",)).fetchone()[0] is not None


def test_the_hnsw_index_is_built_by_the_first_approximate_search_and_answers(filled):
    store, queries = filled
    assert not hnsw_exists(store)  # writes never keep it: a bulk write would pay for it row by row
    store.dense_candidates("ana", units(np.random.default_rng(99), 1)[0], K, None)
    assert hnsw_exists(store)
    with psycopg.connect(store.url) as conn:
        conn.execute(search_settings_sql(200))
        plan = " ".join(r[0] for r in conn.execute("EXPLAIN " + nearest_sql(store.active_index().name, None),
                                                     ("ana", literal(queries[0]), 100)))
    assert f"Index Scan using {store.active_index().name}_hnsw" in plan


def test_a_search_while_another_process_builds_reads_the_points_exactly(postgres_url):
    rng = np.random.default_rng(5)
    with large_user_store(postgres_url) as store:
        store.write([memory(f"a{i}", "ana", i) for i in range(300)], list(units(rng, 300)), [])
        name, query = store.active_index().name, units(rng, 1)[0]
        drawn = []
        nearest = store._nearest_rows
        store._nearest_rows = lambda *a: drawn.append(nearest(*a)) or drawn[-1]
        with psycopg.connect(store.url, autocommit=True) as builder:  # holds the build's lock, as a builder would
            builder.execute("SELECT pg_advisory_lock(hashtext('memlane-hnsw:' || current_schema() || %s))", (name,))
            found = store.dense_candidates("ana", query, 5, None)
            assert not hnsw_exists(store)  # left to the process holding the lock
            assert [m for m, _ in found] == [m for m, _ in exact(store, "ana", query, 5)]
            assert len(drawn) == 1  # drawn from the points, not answered from the view
            # Released here, not by closing: a closed connection's backend lets go a moment later.
            builder.execute("SELECT pg_advisory_unlock(hashtext('memlane-hnsw:' || current_schema() || %s))", (name,))
        store.dense_candidates("ana", units(rng, 1)[0], 5, None)
        assert hnsw_exists(store)  # the lock is free: the next search built it


def test_no_hnsw_build_inside_a_write_transaction(postgres_url):
    rng = np.random.default_rng(6)
    with large_user_store(postgres_url) as store, store.atomic():  # the build would wait for this very transaction
        store.write([memory(f"a{i}", "ana", i) for i in range(300)], list(units(rng, 300)), [])
        assert store.nearest_rows("ana", units(rng, 1)[0], 100) is not None
        assert len(store.dense_candidates("ana", units(rng, 1)[0], 5, None)) == 5
        assert not hnsw_exists(store)


def test_the_build_memory_holds_the_graph_within_a_bound():
    assert hnsw_build_memory_mb(0, 384) == 64
    assert hnsw_build_memory_mb(100_000, 384) == int(100_000 * (384 * 4 + 400) * 1.25 / 2**20)
    assert hnsw_build_memory_mb(10_000_000, 384) == HNSW_BUILD_MEMORY_AT_MOST_MB


def test_hnsw_candidates_are_the_exact_top_with_exact_scores(filled, monkeypatch):
    store, queries = filled
    answered = []
    nearest = store._nearest_rows
    monkeypatch.setattr(store, "_nearest_rows", lambda *a: answered.append(nearest(*a)) or answered[-1])
    recalls = []
    for query in queries:
        found = store.dense_candidates("ana", query, K, None)
        scores = store._view("ana").scores(query)
        position = store._view("ana").position
        assert [s for _, s in found] == pytest.approx([float(scores[position[m]]) for m, _ in found], abs=1e-5)
        assert [s for _, s in found] == sorted((s for _, s in found), reverse=True)
        recalls.append(len({m for m, _ in found} & {m for m, _ in exact(store, "ana", query, K)}) / K)
    assert all(a is not None for a in answered) and len(answered) == len(queries)  # drawn from the index
    assert np.mean(recalls) >= 0.95, recalls


def test_points_hold_each_vector_exactly(filled):
    store, _ = filled
    name = store.active_index().name
    vectors = store.stored_vectors("ana", ["a0", "a1"])
    with psycopg.connect(store.url) as conn:
        for mid, expected in vectors.items():
            rows = conn.execute(f"SELECT p.part, p.embedding = %s::vector, p.embedding = %s::vector FROM {name}_points p "
                                "JOIN memories m ON m.user_id = p.user_id AND m.seq = p.seq WHERE m.id = %s ORDER BY p.part",
                                (literal(expected[0]), literal(expected[-1]), mid)).fetchall()
            assert [r[0] for r in rows] == list(range(len(expected)))  # own, then each passage
            assert rows[0][1] and rows[-1][2]


def test_the_nearest_query_reads_one_users_points():
    assert nearest_sql("v", None) == ("SELECT p.seq FROM v_points p WHERE p.user_id = %s "
                                      "ORDER BY p.embedding <=> %s::vector LIMIT %s")
    assert nearest_sql("v", "m.node_type IN (%s)") == (
        "SELECT p.seq FROM v_points p JOIN memories m ON m.user_id = p.user_id AND m.seq = p.seq "
        "AND m.node_type IN (%s) WHERE p.user_id = %s ORDER BY p.embedding <=> %s::vector LIMIT %s")


def test_a_search_pinned_before_an_index_swap_still_answers(postgres_url):
    rng = np.random.default_rng(3)
    with postgres_schema(postgres_url) as url:
        store, other = PostgresStore(url, dense_exact_below=0), PostgresStore(url)
        try:
            store.create_index("toy", DIMS, active=True)
            store.write([memory(f"a{i}", "ana", i) for i in range(20)], list(units(rng, 20)), [])
            query = units(rng, 1)[0]
            with store.snapshot("ana"):
                new = other.create_index("toy-2", DIMS)
                batch = other.missing_from_index(new, 100, sessions=False)
                other.put_index_vectors(new, batch, list(units(rng, len(batch))))
                other.activate_index(new)  # drops the tables of the index the pinned view was read from
                # A large user's view reads its vectors from the index: gone, so nothing is scored
                # (the search still answers, from its other sources); nothing fails.
                assert store.dense_candidates("ana", query, 5, None) == []
            assert [m for m, _ in store.dense_candidates("ana", query, 5, None)] == [
                m for m, _ in exact(store, "ana", query, 5)]  # the next search reads the new index
        finally:
            store.close()
            other.close()


def test_dense_candidates_started_ahead_run_in_the_callers_snapshot(postgres_url, monkeypatch):
    rng = np.random.default_rng(11)
    query = units(rng, 1)[0]
    with large_user_store(postgres_url) as store:
        store.write([memory(f"a{i}", "ana", i) for i in range(40)], list(units(rng, 40)), [])
        other = PostgresStore(store.url, dense_exact_below=0)
        written, workers = threading.Event(), set()
        plain = store.dense_candidates

        def after_the_write(*args):  # the worker reads only once the other store has written
            workers.add(threading.get_ident())
            written.wait(10)
            return plain(*args)

        try:
            with store.snapshot("ana"):
                monkeypatch.setattr(store, "dense_candidates", after_the_write)
                taken = store.dense_candidates_ahead("ana", query, 5, None)
                other.write([memory("near", "ana", 99)], [query], [])  # after the snapshot: not seen
                written.set()
                assert taken() == plain("ana", query, 5, None)
                assert workers and threading.get_ident() not in workers
                monkeypatch.undo()
                assert "near" not in [m for m, _ in taken()]
            assert store.dense_candidates_ahead("ana", query, 1, None)()[0][0] == "near"
            with store.atomic():  # inside a write transaction: computed when taken, seeing its writes
                store.write([memory("nearer", "ana", 98)], [query], [])
                taken = store.dense_candidates_ahead("ana", query, 2, None)
                assert {m for m, _ in taken()} == {"near", "nearer"}
        finally:
            other.close()
