"""The SQLite store's schema, and the migrations that bring older files up to date."""

from __future__ import annotations

import sqlite3

from memlane.store.tokens import TOKENIZER

SCHEMA_VERSION = "1"

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS memories (
    rowid INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    user_id TEXT NOT NULL,
    agent_id TEXT,
    category TEXT NOT NULL,
    node_type TEXT NOT NULL,
    text TEXT NOT NULL,
    embed_text TEXT NOT NULL,
    speaker TEXT,
    session_id TEXT,
    session_date TEXT,
    turn_index INTEGER,
    recorded_at TEXT NOT NULL,
    event_start TEXT,
    event_end TEXT,
    event_dates TEXT NOT NULL DEFAULT '[]',
    metadata TEXT NOT NULL DEFAULT '{}',
    fact_key TEXT,
    valid_from TEXT,
    valid_until TEXT,
    superseded_by TEXT
);
CREATE INDEX IF NOT EXISTS memories_by_user ON memories (user_id, rowid);
-- What each write changed, by generation: a user whose only changes since a process read them are
-- inserts (first_rowid set) is brought up to date from the new rows, not read again. user_id NULL:
-- anything may have changed for anyone. Kept for the last CHANGES_KEPT generations.
CREATE TABLE IF NOT EXISTS changes (generation INTEGER NOT NULL, user_id TEXT, first_rowid INTEGER);
CREATE INDEX IF NOT EXISTS changes_by_generation ON changes (generation);
CREATE INDEX IF NOT EXISTS memories_by_session ON memories (user_id, session_id, turn_index);
CREATE VIRTUAL TABLE IF NOT EXISTS memories_fts USING fts5 (
    embed_text, content='memories', content_rowid='rowid', tokenize='{tokenizer}'
);
CREATE TRIGGER IF NOT EXISTS memories_fts_insert AFTER INSERT ON memories BEGIN
    INSERT INTO memories_fts (rowid, embed_text) VALUES (new.rowid, new.embed_text);
END;
CREATE TRIGGER IF NOT EXISTS memories_fts_delete AFTER DELETE ON memories BEGIN
    INSERT INTO memories_fts (memories_fts, rowid, embed_text) VALUES ('delete', old.rowid, old.embed_text);
END;
CREATE TRIGGER IF NOT EXISTS memories_fts_update AFTER UPDATE OF embed_text ON memories BEGIN
    INSERT INTO memories_fts (memories_fts, rowid, embed_text) VALUES ('delete', old.rowid, old.embed_text);
    INSERT INTO memories_fts (rowid, embed_text) VALUES (new.rowid, new.embed_text);
END;
CREATE TABLE IF NOT EXISTS vector_indexes (
    name TEXT PRIMARY KEY, model TEXT NOT NULL, dims INTEGER NOT NULL, state TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS history (
    seq INTEGER PRIMARY KEY,
    memory_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    event TEXT NOT NULL,
    old_text TEXT,
    new_text TEXT,
    at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS history_by_memory ON history (memory_id, seq);
CREATE TABLE IF NOT EXISTS nodes (
    name TEXT NOT NULL, version INTEGER NOT NULL, spec TEXT NOT NULL, defined_at TEXT NOT NULL,
    removed_at TEXT, PRIMARY KEY (name, version)
);
CREATE TABLE IF NOT EXISTS expired (
    id TEXT PRIMARY KEY, user_id TEXT NOT NULL, record TEXT NOT NULL, index_name TEXT, vec BLOB,
    expired_at TEXT NOT NULL, rule TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS expired_by_user ON expired (user_id);
CREATE TABLE IF NOT EXISTS service_records (
    kind TEXT NOT NULL, id TEXT NOT NULL, body TEXT NOT NULL, created_at TEXT NOT NULL, updated_at TEXT NOT NULL,
    PRIMARY KEY (kind, id)
);
"""
# Per connection: where each indexed term occurs (memory, token offset), and a scratch FTS5 table
# that tokenizes query terms exactly as memories were, for per-user BM25 (see `bm25`).
TERM_TABLES = f"""
CREATE VIRTUAL TABLE temp.memory_terms USING fts5vocab(main, memories_fts, 'instance');
CREATE VIRTUAL TABLE temp.query_text USING fts5 (text, tokenize='{TOKENIZER}');
CREATE VIRTUAL TABLE temp.query_terms USING fts5vocab(temp, query_text, 'instance');
"""
# Columns added after schema version 1, with their types: stores made before get them on open.
ADDED_COLUMNS = {"fact_key": "TEXT", "valid_from": "TEXT", "valid_until": "TEXT", "superseded_by": "TEXT"}
FACT_INDEX = "CREATE INDEX IF NOT EXISTS memories_by_fact ON memories (user_id, node_type, fact_key)"


def migrate(conn: sqlite3.Connection) -> None:
    """Bring a store made by an older memlane up to date (adds columns; never drops data)."""
    present = {row[1] for row in conn.execute("PRAGMA table_info(memories)")}
    for column, kind in ADDED_COLUMNS.items():
        if column not in present:
            conn.execute(f"ALTER TABLE memories ADD COLUMN {column} {kind}")
    conn.execute(FACT_INDEX)
