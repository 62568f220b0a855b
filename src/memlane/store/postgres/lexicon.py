"""The PostgreSQL store's postings: each memory's terms with their offsets, per user, tokenized by
`memlane.store.tokens` (SQLite FTS5's own tokenizer, Porter stemming included), so per-user BM25
scores and ranks as the SQLite store's does. A query term of several tokens ("e-mail") matches
as a phrase: its tokens at consecutive offsets of one memory."""

from __future__ import annotations

from typing import Iterable, Sequence

import psycopg

from memlane.store.tokens import positions, tokenize_many

_BATCH = 2_000  # memories re-tokenized at once by `rebuild`


def write_postings(conn: psycopg.Connection, memories: Iterable[tuple[str, int, Sequence[str]]]) -> None:
    """The postings of memories (user_id, seq, tokens), not indexed yet, in one COPY: an ingest
    writes thousands at once. A row per distinct term of a memory: (user_id, term, seq, offsets)."""
    with conn.cursor() as cur, cur.copy("COPY postings (user_id, term, seq, positions) FROM STDIN") as copy:
        for user_id, seq, tokens in memories:
            for term, offsets in positions(tokens).items():
                copy.write_row((user_id, term, seq, offsets))


def rebuild(conn: psycopg.Connection) -> None:
    """Every memory's postings and length again, with the current tokenizer (a migration: the
    store's tokens change in place, in the caller's transaction)."""
    conn.execute("DELETE FROM postings")
    after = 0
    while True:
        batch = conn.execute("SELECT user_id, seq, embed_text FROM memories WHERE seq > %s ORDER BY seq LIMIT %s",
                             (after, _BATCH)).fetchall()
        if not batch:
            return
        tokens = tokenize_many([text for _, _, text in batch])
        write_postings(conn, ((user_id, seq, terms) for (user_id, seq, _), terms in zip(batch, tokens)))
        conn.execute("UPDATE memories m SET tokens = t.tokens FROM unnest(%s::bigint[], %s::int[]) AS t (seq, tokens) "
                     "WHERE m.seq = t.seq", ([seq for _, seq, _ in batch], [len(terms) for terms in tokens]))
        after = batch[-1][1]
