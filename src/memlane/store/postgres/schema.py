"""The PostgreSQL store's schema as numbered migrations, recorded in `schema_migrations`.

A store lives in the first schema of the connection's search_path (`public` unless the URL says
otherwise, e.g. `?options=-csearch_path%3Dteam_a,public`). Every table of users' data is keyed by
`user_id` first, and every index on it leads with `user_id`, so one user's reads never walk
another's rows and `user_id` can be the distribution column of Citus (see below). The exceptions
are lookups without a user (`memories_by_id`, `expired_by_id`: a memory id is unique across
users) and a vector index's HNSW index (see `vectors`). Text columns that hold dates or are
sorted use the "C" collation, so they compare as SQLite compares them (byte order).

A migration is SQL, or a function of the connection where rows must be rewritten in Python
(re-tokenizing). All pending ones run in one transaction under an advisory lock; memlane
processes of an older version should be stopped before a newer one upgrades the store.

Sharding with Citus (not tested here)
-------------------------------------
Per-user tables are distributed on `user_id` and colocated, so one user's reads and writes stay
on one worker; the small shared tables are reference tables. Once a store is created (its
migrations applied and its vector index made by the first memlane command that adds memories):

    SELECT create_reference_table('schema_migrations');
    SELECT create_reference_table('meta');
    SELECT create_reference_table('nodes');
    SELECT create_reference_table('vector_indexes');
    SELECT create_reference_table('service_records');
    SELECT create_distributed_table('memories', 'user_id');
    SELECT create_distributed_table('term_blocks', 'user_id', colocate_with => 'memories');
    SELECT create_distributed_table('history', 'user_id', colocate_with => 'memories');
    SELECT create_distributed_table('expired', 'user_id', colocate_with => 'memories');
    SELECT create_distributed_table('user_generation', 'user_id', colocate_with => 'memories');
    -- for each row of vector_indexes (its tables reference memories, so they come after it):
    SELECT create_distributed_table('<name>', 'user_id', colocate_with => 'memories');
    SELECT create_distributed_table('<name>_points', 'user_id', colocate_with => 'memories');

Every primary key and unique constraint of a distributed table includes `user_id`, and the
foreign keys from a vector index's tables to `memories` are on (user_id, seq), as Citus requires.
Writes never touch a reference table except when nodes or vector indexes change. A reindex makes
a new vector index's two tables as plain tables with foreign keys to `memories`, which Citus
refuses once `memories` is distributed: memlane does not distribute tables itself yet, so on a
distributed store the new tables would have to be created and distributed by hand.
"""

from __future__ import annotations

from typing import Callable

import psycopg

from memlane.errors import StoreError
from memlane.store.postgres import lexicon
from memlane.store.postgres.vectors import fill_points, index_table_sql

Migration = str | Callable[[psycopg.Connection], None]

_CREATE = """
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
"""

# Each user's memories change their generation, so a cached view of one user outlives the
# writes of others; the store-wide generation is gone (an index swap renames the index, which
# views check too).
_USER_GENERATIONS = """
CREATE TABLE user_generation (user_id text COLLATE "C" PRIMARY KEY, generation bigint NOT NULL);
INSERT INTO user_generation SELECT DISTINCT user_id, 1 FROM memories;
DELETE FROM meta WHERE key = 'generation';
"""

_KEYS_WITH_USER = """
ALTER TABLE memories DROP CONSTRAINT memories_pkey, ADD PRIMARY KEY (user_id, seq);
ALTER TABLE memories DROP CONSTRAINT memories_id_key, ADD CONSTRAINT memories_user_id_id_key UNIQUE (user_id, id);
DROP INDEX memories_by_user;
CREATE INDEX memories_by_id ON memories (id);
ALTER TABLE history DROP CONSTRAINT history_pkey, ADD PRIMARY KEY (user_id, seq);
ALTER TABLE expired DROP CONSTRAINT expired_pkey, ADD PRIMARY KEY (user_id, id);
CREATE INDEX expired_by_id ON expired (id);
"""


def _keys_with_user(conn: psycopg.Connection) -> None:
    """Primary keys and unique constraints led by user_id (Citus distributes no table otherwise),
    and vector indexes in their present form (see `vectors`): one row per memory keyed by
    (user_id, seq), and one row per vector, own and passages' (HNSW-indexed once searched). Version 1's vector
    tables held the own vector only, keyed by seq, so each is copied aside and rebuilt."""
    indexes = conn.execute("SELECT name, dims FROM vector_indexes ORDER BY name").fetchall()
    for name, _ in indexes:
        conn.execute(f"CREATE TEMP TABLE {name}_v1 ON COMMIT DROP AS "
                     f"SELECT m.user_id, v.seq, v.vecs FROM {name} v JOIN memories m ON m.seq = v.seq")
        conn.execute(f"DROP TABLE {name}")
    conn.execute(_KEYS_WITH_USER)
    for name, dims in indexes:
        conn.execute(index_table_sql(name, dims))
        conn.execute(f"INSERT INTO {name} (user_id, seq, vecs) SELECT user_id, seq, vecs FROM {name}_v1")
        fill_points(conn, name, dims)  # its HNSW index is built by the first search that needs it


# (version, migration): applied in order, each once, in one transaction with its row in
# schema_migrations. A store made by an older memlane is brought up to date in place.
# Small JSON documents a server keeps beside the memories (API keys, jobs): not per user, so on
# Citus a reference table.
_SERVICE_RECORDS = """
CREATE TABLE service_records (
    kind text COLLATE "C" NOT NULL, id text COLLATE "C" NOT NULL, body text NOT NULL,
    created_at text COLLATE "C" NOT NULL, updated_at text COLLATE "C" NOT NULL, PRIMARY KEY (kind, id)
);
"""

# (Superseded by term blocks, migration 7.) Each posting's count of offsets, kept in the key's index: BM25 of a large user reads a term's
# memories and counts by an index-only scan, not a heap read per memory (26 -> 1 ms for a term in
# 4,000 memories).
_POSTING_HITS = """
ALTER TABLE postings ADD COLUMN hits integer GENERATED ALWAYS AS (cardinality(positions)) STORED;
ALTER TABLE postings DROP CONSTRAINT postings_pkey, ADD PRIMARY KEY (user_id, term, seq) INCLUDE (hits);
"""


def _term_blocks(conn: psycopg.Connection) -> None:
    """Postings as term blocks (see `lexicon`): rebuilt from the memories' texts, which also
    brings their lengths to the current tokenizer; the row-per-posting table goes."""
    conn.execute(lexicon.TERM_BLOCKS)
    lexicon.rebuild(conn)
    conn.execute("DROP TABLE postings")


MIGRATIONS: list[tuple[int, Migration]] = [
    (1, _CREATE),
    (2, "DELETE FROM postings"),  # were re-tokenized with FTS5's stemming tokenizer; now migration 7 rebuilds them
    (3, _USER_GENERATIONS),
    (4, _keys_with_user),
    (5, _SERVICE_RECORDS),
    (6, _POSTING_HITS),
    (7, _term_blocks),
]
SCHEMA_VERSION = MIGRATIONS[-1][0]


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
        for number, migration in MIGRATIONS:
            if number > version:
                if isinstance(migration, str):
                    conn.execute(migration)
                else:
                    migration(conn)
                conn.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (number,))


def current_schema(conn: psycopg.Connection) -> str | None:
    return conn.execute("SELECT current_schema()").fetchone()[0]
