"""The server store: PostgreSQL with pgvector (see `store.py`), split by concept: `schema`
(versioned migrations, and how to shard with Citus), `lexicon` (postings for per-user BM25,
tokenized as SQLite's FTS5 does, by `memlane.store.tokens`), `vectors` (a vector index's tables,
HNSW-indexed), `scratch` (throwaway schemas). A user's memories as arrays are the shared
`UserView` (`memlane.store.view`), so both stores answer searches alike."""

from memlane.store.postgres.store import PostgresStore

__all__ = ["PostgresStore"]
