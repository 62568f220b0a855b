"""The PostgreSQL the tests start has what a memlane store there is built on: pgvector's HNSW
index for cosine distance, and full-text search whose per-document term counts give BM25."""

import psycopg
import pytest

from _postgres import postgres_schema


@pytest.fixture
def conn(postgres_url):
    with postgres_schema(postgres_url) as url, psycopg.connect(url, autocommit=True) as connection:
        yield connection  # each test in its own schema: a shared server stays clean


def test_pgvector_hnsw_ranks_one_users_vectors_by_cosine(conn):
    conn.execute("CREATE TABLE m (id text PRIMARY KEY, user_id text NOT NULL, v vector(3) NOT NULL)")
    conn.execute("INSERT INTO m VALUES ('a1', 'ana', '[1,0,0]'), ('a2', 'ana', '[0.6,0.8,0]'), "
                 "('a3', 'ana', '[0,0,1]'), ('b1', 'bo', '[1,0,0]')")
    conn.execute("CREATE INDEX ON m USING hnsw (v vector_cosine_ops)")
    rows = conn.execute("SELECT id, 1 - (v <=> '[1,0,0]') FROM m WHERE user_id = 'ana' "
                        "ORDER BY v <=> '[1,0,0]' LIMIT 2").fetchall()
    assert [r[0] for r in rows] == ["a1", "a2"]
    assert rows[1][1] == pytest.approx(0.6)
    version = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()[0]
    assert tuple(int(x) for x in version.split(".")[:2]) >= (0, 8)


def test_full_text_gives_each_documents_term_counts_for_bm25(conn):
    conn.execute("CREATE TABLE m (id text PRIMARY KEY, user_id text, body tsvector)")
    conn.execute("INSERT INTO m VALUES ('a1', 'ana', to_tsvector('simple', 'hiking hiking in the alps')), "
                 "('b1', 'bo', to_tsvector('simple', 'hiking'))")
    counts = conn.execute("SELECT word, nentry FROM ts_stat($$SELECT body FROM m WHERE user_id = 'ana'$$) "
                          "ORDER BY word").fetchall()
    assert dict(counts) == {"alps": 1, "hiking": 2, "in": 1, "the": 1}  # per user: bo's hiking not counted
