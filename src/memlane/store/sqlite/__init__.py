"""The default store: one SQLite file (see `store.py`), split by concept: `schema` (tables and
migrations) and `lexicon` (per-user term indexes); the row codec and a user's view as arrays are
shared with the other backends (`memlane.store.codec`, `memlane.store.view`)."""

from memlane.store.sqlite.store import SQLiteStore

__all__ = ["SQLiteStore"]
