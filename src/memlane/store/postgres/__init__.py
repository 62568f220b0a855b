"""The server store: PostgreSQL with pgvector (see `store.py`), split by concept: `schema`
(versioned migrations), `lexicon` (the tokenizer behind per-user BM25). A user's memories as
arrays are the SQLite package's `UserView`, so both stores answer searches alike."""

from memlane.store.postgres.store import PostgresStore

__all__ = ["PostgresStore"]
