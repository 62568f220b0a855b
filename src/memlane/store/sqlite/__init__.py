"""The default store: one SQLite file (see `store.py`), split by concept: `schema` (tables and
migrations), `codec` (rows to records), `lexicon` (per-user term indexes), `view` (a user's
memories as arrays)."""

from memlane.store.sqlite.store import SQLiteStore

__all__ = ["SQLiteStore"]
