"""The PostgreSQL store's schema: keyed by user_id wherever data is per user (what Citus needs to
distribute it), documented for Citus, and brought up to date in place from version 1 (tokens
rebuilt with the stemming tokenizer, vectors into the HNSW-indexed points table)."""

from __future__ import annotations

import re
import unicodedata
from contextlib import closing

import numpy as np
import psycopg
import pytest
from _postgres import postgres_schema

from memlane.filters import Filter
from memlane.records import HistoryEvent, MemoryRecord
from memlane.store.codec import COLUMNS, record_params, to_blob
from memlane.store.postgres import PostgresStore, schema
from memlane.store.postgres.vectors import literal
from memlane.store.view import ViewReads

AT = "2023-01-01T00:00:00Z"
SHARED_TABLES = {"meta", "nodes", "vector_indexes", "schema_migrations", "service_records"}
NOT_LED_BY_USER = {"memories_by_id", "expired_by_id"}  # lookups by memory id alone (plus each HNSW index)
TEXTS = [("ana", "I was running late"), ("ana", "She runs every morning"), ("ana", "Send an e-mail to Zoë"),
         ("bo", "bo runs too"), ("bo", "Café near the e-mail office")]


def vectors_of(i: int) -> np.ndarray:
    """Memory i's vectors: its own, and two passages for every other memory."""
    rng = np.random.default_rng(i)
    v = rng.normal(size=(3 if i % 2 else 1, 4)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def records() -> list[MemoryRecord]:
    return [MemoryRecord(id=f"m{i}", user_id=user, text=text, embed_text=text, recorded_at=AT, session_id="s1",
                         turn_index=i) for i, (user, text) in enumerate(TEXTS)]


def v1_tokens(text: str) -> list[str]:
    """Version 1's tokenizer: folded and unaccented, not stemmed."""
    plain = "".join(c for c in unicodedata.normalize("NFKD", text.casefold()) if not unicodedata.combining(c))
    return re.findall(r"[^\W_]+", plain)


def write_v1_store(url: str, monkeypatch) -> None:
    """A store as memlane's schema version 1 made it, rows and all."""
    with monkeypatch.context() as patch, psycopg.connect(url, autocommit=True) as conn:
        patch.setattr(schema, "MIGRATIONS", schema.MIGRATIONS[:1])
        patch.setattr(schema, "SCHEMA_VERSION", 1)
        schema.migrate(conn, create=True, where="the test")
        conn.execute("CREATE TABLE vectors_v1 (seq bigint PRIMARY KEY REFERENCES memories (seq) ON DELETE CASCADE, "
                     "vec vector(4) NOT NULL, vecs bytea NOT NULL);"
                     "CREATE INDEX vectors_v1_hnsw ON vectors_v1 USING hnsw (vec vector_cosine_ops)")
        conn.execute("INSERT INTO vector_indexes VALUES ('vectors_v1', 'toy', 4, 'active')")
        for i, record in enumerate(records()):
            tokens = v1_tokens(record.embed_text)
            (seq,) = conn.execute(f"INSERT INTO memories ({COLUMNS}, tokens) VALUES ({', '.join(['%s'] * 21)}) "
                                  "RETURNING seq", (*record_params(record), len(tokens))).fetchone()
            conn.execute("INSERT INTO vectors_v1 VALUES (%s, %s::vector, %s)",
                         (seq, literal(vectors_of(i)[0]), to_blob(vectors_of(i))))
            for term in set(tokens):
                conn.execute("INSERT INTO postings VALUES (%s, %s, %s, %s)",
                             (record.user_id, term, seq, [k for k, t in enumerate(tokens) if t == term]))
            conn.execute("INSERT INTO history (memory_id, user_id, event, new_text, at) VALUES (%s, %s, 'ADD', %s, %s)",
                         (record.id, record.user_id, record.text, AT))


def write_fresh_store(url: str) -> None:
    with closing(PostgresStore(url)) as store:
        store.create_index("toy", 4, active=True)
        store.write(records(), [vectors_of(i) for i in range(len(TEXTS))],
                    [HistoryEvent(r.id, "ADD", None, r.text, AT) for r in records()])


@pytest.fixture
def upgraded_and_fresh(postgres_url, monkeypatch):
    """(a version 1 store opened by this memlane, a store this memlane wrote) with the same memories."""
    with postgres_schema(postgres_url) as old_url, postgres_schema(postgres_url) as new_url:
        write_v1_store(old_url, monkeypatch)
        write_fresh_store(new_url)
        upgraded, fresh = PostgresStore(old_url, dense_exact_below=0), PostgresStore(new_url, dense_exact_below=0)
        try:
            yield upgraded, fresh
        finally:
            upgraded.close()
            fresh.close()


def test_a_version_1_store_is_upgraded_in_place(upgraded_and_fresh):
    upgraded, fresh = upgraded_and_fresh
    with psycopg.connect(upgraded.url) as conn:
        assert schema.applied_version(conn) == schema.SCHEMA_VERSION
    query = vectors_of(1)[2]  # a passage of m1: found through the points table
    for user in ("ana", "bo"):
        for terms in (["runs"], ["running", "e-mail"], ["cafe"], ["zoe"]):
            assert upgraded.lexical_candidates(user, terms, 10, None) == fresh.lexical_candidates(user, terms, 10, None)
        assert upgraded.dense_candidates(user, query, 10, None) == fresh.dense_candidates(user, query, 10, None)
        assert upgraded.dense_candidates(user, query, 3, None) == ViewReads.dense_candidates(upgraded, user, query, 3, None)
        assert upgraded.list_all(user) == fresh.list_all(user)
        ids = [r.id for r in upgraded.list_all(user)]
        assert upgraded.history_of(user, ids) == fresh.history_of(user, ids)
        stored, expected = upgraded.stored_vectors(user, ids), fresh.stored_vectors(user, ids)
        assert stored.keys() == expected.keys() and all(np.array_equal(stored[m], expected[m]) for m in ids)
    assert [m for m, _ in upgraded.lexical_candidates("ana", ["runs"], 10, None)] == ["m0", "m1"]  # stemmed now


def test_an_upgraded_store_takes_writes_and_keeps_ids_unique_across_users(upgraded_and_fresh):
    upgraded, _ = upgraded_and_fresh
    record = MemoryRecord(id="m9", user_id="ana", text="running again", embed_text="running again", recorded_at=AT)
    upgraded.write([record], [vectors_of(9)], [])
    assert {m for m, _ in upgraded.lexical_candidates("ana", ["run"], 10, None)} == {"m0", "m1", "m9"}
    assert upgraded.existing_ids(["m3", "m9", "nope"]) == {"m3", "m9"}  # across users
    with pytest.raises(Exception, match="already stored"):
        upgraded.write([MemoryRecord(id="m3", user_id="ana", text="x", embed_text="x", recorded_at=AT)], [vectors_of(0)], [])
    upgraded.expire("ana", ["m9"], AT, "test")
    assert upgraded.restore("ana", ["m9"], AT, {}) == 1
    assert upgraded.dense_candidates("ana", vectors_of(9)[0], 1, Filter.parse({"session_id": None}))[0][0] == "m9"


def layout(url: str) -> list[tuple]:
    """Each index of the store's schema: (table, index, its columns in order, unique), vector
    indexes' tables named by kind."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT c.relname, i.relname, x.indisunique, (SELECT array_agg(a.attname ORDER BY k.n) "
            "FROM unnest(x.indkey) WITH ORDINALITY AS k (attnum, n) "
            "JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum) "
            "FROM pg_index x JOIN pg_class c ON c.oid = x.indrelid JOIN pg_class i ON i.oid = x.indexrelid "
            "WHERE c.relnamespace = current_schema()::regnamespace").fetchall()
    return sorted((_generic(table), _generic(index), tuple(columns), unique) for table, index, unique, columns in rows)


def _generic(name: str) -> str:
    """A vector index's table or index name with the index's own name as `<index>`."""
    return re.sub(r"vectors_[0-9a-z]+", "<index>", name)


def test_every_key_and_index_on_users_data_leads_with_user_id(upgraded_and_fresh):
    upgraded, fresh = upgraded_and_fresh
    assert layout(upgraded.url) == layout(fresh.url)
    for table, index, columns, _ in layout(fresh.url):
        if table in SHARED_TABLES or index in NOT_LED_BY_USER or index.endswith("_hnsw"):
            continue
        assert columns[0] == "user_id", (table, index, columns)
    with psycopg.connect(fresh.url) as conn:
        foreign = conn.execute("SELECT conrelid::regclass::text, pg_get_constraintdef(oid) FROM pg_constraint "
                               "WHERE contype = 'f' AND connamespace = current_schema()::regnamespace").fetchall()
    assert foreign and all(d.startswith("FOREIGN KEY (user_id, seq) REFERENCES") for _, d in foreign)


def test_the_citus_commands_name_every_table(upgraded_and_fresh):
    _, fresh = upgraded_and_fresh
    doc = schema.__doc__
    block = doc[doc.index("Sharding with Citus (not tested here)"):]
    for table in {t.replace("<index>", "<name>") for t, _, _, _ in layout(fresh.url)}:
        call = "create_reference_table" if table in SHARED_TABLES else "create_distributed_table"
        assert f"{call}('{table}'" in block, table
