"""The PostgreSQL store's schema as numbered migrations, recorded in `schema_migrations`.

A store lives in the first schema of the connection's search_path (`public` unless the URL says
otherwise, e.g. `?options=-csearch_path%3Dteam_a,public`). Every index on users' data leads with
`user_id`, so one user's reads never walk another's rows. Text columns that hold dates or are
sorted use the "C" collation, so they compare as SQLite compares them (byte order).

Vector tables are made per index by `index_table_sql` (their size is the embedding model's).
"""

from __future__ import annotations

import psycopg

from memlane.errors import StoreError

# (version, SQL): applied in order, each once, in one transaction with its row in schema_migrations.
MIGRATIONS: list[tuple[int, str]] = [
    (1, """
CREATE TABLE meta (key text PRIMARY KEY, value text NOT NULL);
INSERT INTO meta VALUES ('generation', '0');
CREATE TABLE memories (
    seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id text NOT NULL UNIQUE,
    user_id text COLLATE "C" NOT NULL,
    agent_id text,
    category text NOT NULL,
    node_type text NOT NULL,
    text text NOT NULL,
    embed_text text NOT NULL,
    speaker text,
    session_id text,
    session_date text COLLATE "C",
    turn_index integer,
    recorded_at text COLLATE "C" NOT NULL,
    event_start text COLLATE "C",
    event_end text COLLATE "C",
    event_dates text NOT NULL DEFAULT '[]',
    metadata text NOT NULL DEFAULT '{}',
    fact_key text,
    valid_from text COLLATE "C",
    valid_until text COLLATE "C",
    superseded_by text,
    tokens integer NOT NULL DEFAULT 0
);
CREATE INDEX memories_by_user ON memories (user_id, seq);
CREATE INDEX memories_by_session ON memories (user_id, session_id, turn_index);
CREATE INDEX memories_by_fact ON memories (user_id, node_type, fact_key);
CREATE TABLE postings (
    user_id text COLLATE "C" NOT NULL,
    term text COLLATE "C" NOT NULL,
    seq bigint NOT NULL,
    positions integer[] NOT NULL,
    PRIMARY KEY (user_id, term, seq)
);
CREATE INDEX postings_by_memory ON postings (user_id, seq);
CREATE TABLE vector_indexes (
    name text PRIMARY KEY, model text NOT NULL, dims integer NOT NULL, state text NOT NULL
);
CREATE TABLE history (
    seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    memory_id text NOT NULL,
    user_id text COLLATE "C" NOT NULL,
    event text NOT NULL,
    old_text text,
    new_text text,
    at text NOT NULL
);
CREATE INDEX history_by_memory ON history (user_id, memory_id, seq);
CREATE TABLE nodes (
    name text NOT NULL, version integer NOT NULL, spec text NOT NULL, defined_at text NOT NULL,
    removed_at text, PRIMARY KEY (name, version)
);
CREATE TABLE expired (
    id text PRIMARY KEY, user_id text COLLATE "C" NOT NULL, record text NOT NULL, index_name text,
    vec bytea, expired_at text COLLATE "C" NOT NULL, rule text NOT NULL
);
CREATE INDEX expired_by_user ON expired (user_id, expired_at);
"""),
]
SCHEMA_VERSION = MIGRATIONS[-1][0]


def index_table_sql(name: str, dims: int) -> str:
    """One vector index's table: each memory's own vector as `vector(dims)` (HNSW-indexed for
    cosine), and all its vectors as written (own, then passages') as float32 bytes."""
    return (f"CREATE TABLE {name} (seq bigint PRIMARY KEY REFERENCES memories (seq) ON DELETE CASCADE, "
            f"vec vector({int(dims)}) NOT NULL, vecs bytea NOT NULL);"
            f"CREATE INDEX {name}_hnsw ON {name} USING hnsw (vec vector_cosine_ops)")


def applied_version(conn: psycopg.Connection) -> int:
    """The newest migration applied in the connection's schema, 0 if none."""
    if conn.execute("SELECT to_regclass('schema_migrations')").fetchone()[0] is None:
        return 0
    return conn.execute("SELECT COALESCE(max(version), 0) FROM schema_migrations").fetchone()[0]


def migrate(conn: psycopg.Connection, *, create: bool, where: str) -> None:
    """Bring the store in the connection's schema up to date, creating it when `create` (else a
    schema with no store is an error naming the fix). Migrations run under an advisory lock, so
    two processes opening a new store at once apply each migration once."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('memlane-migrate:' || current_schema()))")
        version = applied_version(conn)
        if version > SCHEMA_VERSION:
            raise StoreError(f"the memlane store in {where} has schema version {version}, newer than this "
                             f"memlane knows ({SCHEMA_VERSION}); upgrade memlane")
        if version == SCHEMA_VERSION:
            return
        if version == 0 and not create:
            raise StoreError(f"no memlane store in {where}: check the URL (--store or $MEMLANE_STORE), "
                             "or create the store by opening it with create=True (the first memlane "
                             "command that adds memories does)")
        if current_schema(conn) is None:
            raise StoreError(f"cannot create a memlane store in {where}: the search_path names no "
                             "existing schema; create the schema first")
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations "
                     "(version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())")
        for number, sql in MIGRATIONS:
            if number > version:
                conn.execute(sql)
                conn.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (number,))


def current_schema(conn: psycopg.Connection) -> str | None:
    return conn.execute("SELECT current_schema()").fetchone()[0]
