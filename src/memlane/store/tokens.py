"""Tokens as SQLite's FTS5 index makes them, for every store: case-folded runs of letters and
digits, diacritics removed, Porter-stemmed ('Running runs ran Café e-mail' -> ['run', 'run',
'ran', 'cafe', 'e', 'mail']).

The tokenizer is FTS5's own, from the standard library's sqlite3: each thread keeps an in-memory
database with a scratch FTS5 table, inserts the texts in one transaction, reads every token with
its offset back through an `fts5vocab` instance table, and rolls back. So the PostgreSQL store
indexes exactly the terms the SQLite store does, and per-user BM25 ranks alike in both.
"""

from __future__ import annotations

import sqlite3
import threading
from functools import lru_cache
from typing import Sequence

TOKENIZER = "porter unicode61 remove_diacritics 2"

_local = threading.local()  # per thread: its scratch database (a connection serves one thread)


def _scratch() -> sqlite3.Connection:
    conn = getattr(_local, "conn", None)
    if conn is None:
        conn = sqlite3.connect(":memory:", isolation_level=None)
        conn.execute(f"CREATE VIRTUAL TABLE scratch USING fts5 (text, tokenize='{TOKENIZER}')")
        conn.execute("CREATE VIRTUAL TABLE scratch_terms USING fts5vocab(scratch, 'instance')")
        _local.conn = conn
    return conn


def tokenize_many(texts: Sequence[str]) -> list[list[str]]:
    """Each text's tokens, in order (a token's index in its list is FTS5's offset). One insert
    and one read for the whole batch: an ingest tokenizes thousands of memories at once."""
    if not texts:
        return []
    conn = _scratch()
    conn.execute("BEGIN")
    try:
        conn.executemany("INSERT INTO scratch (rowid, text) VALUES (?, ?)", enumerate(texts, start=1))
        rows = conn.execute("SELECT doc, offset, term FROM scratch_terms").fetchall()
    finally:
        conn.execute("ROLLBACK")  # the scratch table stays empty between batches
    rows.sort()  # fts5vocab lists by term; each text's tokens are wanted in offset order
    out: list[list[str]] = [[] for _ in texts]
    for doc, _, term in rows:
        out[doc - 1].append(term)
    return out


@lru_cache(maxsize=4096)
def query_tokens(term: str) -> tuple[str, ...]:
    """A query term's tokens, cached (a search asks for the same terms several times). A term of
    several tokens ('e-mail' -> ('e', 'mail')) matches as a phrase."""
    return tuple(tokenize_many([term])[0])


def positions(tokens: Sequence[str]) -> dict[str, list[int]]:
    """Each distinct token with its offsets in `tokens` (what a store's postings hold per memory)."""
    out: dict[str, list[int]] = {}
    for offset, token in enumerate(tokens):
        out.setdefault(token, []).append(offset)
    return out
