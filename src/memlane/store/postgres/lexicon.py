"""The PostgreSQL store's postings: each memory's terms with their offsets, per user, tokenized by
`memlane.store.tokens` (SQLite FTS5's own tokenizer, Porter stemming included), so per-user BM25
scores and ranks as the SQLite store's does. A query term of several tokens ("e-mail") matches
as a phrase: its tokens at consecutive offsets of one memory.

They are kept as term blocks: one row of `term_blocks` per user, term and write, holding the
memories of that write with the term as three packed arrays (their seqs after the block's first,
how often each holds the term, and those offsets). A memory has about a hundred distinct terms,
and a row per (term, memory) with its keys cost about 180 bytes: 20 of the 30 GB of a million
memories, more than the machine's page cache holds. A block costs about 9 bytes a (term,
memory), and a term's postings are a few rows to read instead of one per memory.

A memory is in one block per term. Deleting or rewriting one takes its seq out of the blocks of
its old terms (found by tokenizing its old text), so no block keeps a trace of a deleted memory.
Writers hold the store's write lock, so two never rewrite one block at once. `compact` merges a
term's small blocks (memories added one by one make a block each).
"""

from __future__ import annotations

import sys
from array import array
from typing import Iterable, Iterator, Sequence

import numpy as np
import psycopg

from memlane.store.tokens import positions, tokenize_many

_BATCH = 2_000  # memories re-tokenized at once by `rebuild`
_OFFSETS = 1 << 32  # a key per (memory, offset): seq * _OFFSETS + offset, for phrase matching
# `compact` merges a user's term's small blocks (under SMALL_BLOCK memories) once it has more than
# COMPACT_OVER of them, into blocks of at most BLOCK_AT_MOST. A bulk write's blocks are left as
# they are: rewriting them would cost a second copy of most postings for few rows saved.
SMALL_BLOCK = 256
COMPACT_OVER = 16
BLOCK_AT_MOST = 65_536

TERM_BLOCKS = """
CREATE TABLE term_blocks (
    user_id text COLLATE "C" NOT NULL,
    term text COLLATE "C" NOT NULL,
    block bigint GENERATED ALWAYS AS IDENTITY,
    first_seq bigint NOT NULL,
    last_seq bigint NOT NULL,
    n integer NOT NULL,
    seqs bytea NOT NULL,
    counts bytea NOT NULL,
    offsets bytea NOT NULL,
    PRIMARY KEY (user_id, term, block) INCLUDE (n)
);
"""


def packed(values: Sequence[int]) -> bytes:
    """Non-negative integers as little-endian 2-byte words where all fit, else 4-byte ones (the
    width is read back from the length: see `unpacked`)."""
    words = array("H" if not values or max(values) < 1 << 16 else "I", values)  # "I": 4 bytes wherever CPython runs
    if sys.byteorder == "big":  # pragma: no cover
        words.byteswap()
    return words.tobytes()


def unpacked(blob: bytes, count: int) -> np.ndarray:
    """The `count` integers of a `packed` blob, as int64."""
    if count == 0:
        return np.zeros(0, np.int64)
    width = len(blob) // count
    if width not in (2, 4) or width * count != len(blob):
        raise ValueError(f"a packed array of {len(blob)} bytes cannot hold {count} integers")
    return np.frombuffer(blob, "<u2" if width == 2 else "<u4").astype(np.int64)


def block_row(user_id: str, term: str, seqs: Sequence[int], counts: Sequence[int],
              offsets: Sequence[int]) -> tuple:
    """A row of `term_blocks` (user_id, term, first_seq, last_seq, n, seqs, counts, offsets) for
    memories `seqs` (ascending) holding `term` `counts` times, at `offsets` (each memory's in turn)."""
    first = seqs[0]
    return (user_id, term, first, seqs[-1], len(seqs), packed([s - first for s in seqs]), packed(counts),
            packed(offsets))


def write_postings(conn: psycopg.Connection, memories: Iterable[tuple[str, int, Sequence[str]]]) -> None:
    """The postings of memories (user_id, seq, tokens), seqs ascending per user, in one COPY: a
    block per user and term."""
    blocks: dict[tuple[str, str], tuple[list[int], list[int], list[int]]] = {}
    for user_id, seq, tokens in memories:
        for term, offsets in positions(tokens).items():
            seqs, counts, flat = blocks.setdefault((user_id, term), ([], [], []))
            seqs.append(seq)
            counts.append(len(offsets))
            flat.extend(offsets)
    write_blocks(conn, (block_row(user, term, *arrays) for (user, term), arrays in blocks.items()))


def write_blocks(conn: psycopg.Connection, rows: Iterable[tuple]) -> None:
    with conn.cursor() as cur, cur.copy("COPY term_blocks (user_id, term, first_seq, last_seq, n, seqs, counts, "
                                        "offsets) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def decoded(first_seq: int, n: int, seqs: bytes, counts: bytes,
            offsets: bytes | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """A block's (seqs, counts, offsets or None) as arrays."""
    held = unpacked(bytes(counts), n)
    at = None if offsets is None else unpacked(bytes(offsets), int(held.sum()))
    return first_seq + unpacked(bytes(seqs), n), held, at


def term_postings(blocks: Sequence[tuple]) -> tuple[np.ndarray, np.ndarray]:
    """The (seqs ascending, counts) of a term from its blocks' (first_seq, n, seqs, counts)."""
    if not blocks:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    parts = [decoded(*b[:4]) for b in blocks]
    seqs = np.concatenate([p[0] for p in parts])
    counts = np.concatenate([p[1] for p in parts])
    order = np.argsort(seqs, kind="stable")
    return seqs[order], counts[order]


def phrase_postings(tokens: Sequence[str], blocks: Sequence[tuple]) -> tuple[np.ndarray, np.ndarray]:
    """Memories holding `tokens` at consecutive offsets, and how often, from the blocks' rows
    (term, first_seq, n, seqs, counts, offsets) of those tokens."""
    keys: dict[str, list[np.ndarray]] = {}
    for term, first_seq, n, seqs, counts, offsets in blocks:
        held, times, at = decoded(first_seq, n, seqs, counts, offsets)
        keys.setdefault(term, []).append(np.repeat(held, times) * _OFFSETS + at)
    starts: np.ndarray | None = None
    for shift, token in enumerate(tokens):  # one key per (memory, offset the phrase starts at)
        found = np.sort(np.concatenate(keys[token])) - shift if token in keys else np.zeros(0, np.int64)
        starts = found if starts is None else np.intersect1d(starts, found, assume_unique=True)
    seqs, hits = np.unique((starts if starts is not None else np.zeros(0, np.int64)) // _OFFSETS, return_counts=True)
    return seqs, hits.astype(np.int64)


def remove_postings(conn: psycopg.Connection, user_id: str, gone: Sequence[tuple[int, str]]) -> None:
    """Take memories (seq, their indexed text as it was) of one user out of their terms' blocks;
    a block left empty is deleted."""
    if not gone:
        return
    seqs_of: dict[str, list[int]] = {}
    for (seq, _), tokens in zip(gone, tokenize_many([text for _, text in gone])):
        for term in set(tokens):
            seqs_of.setdefault(term, []).append(seq)
    low, high = min(s for s, _ in gone), max(s for s, _ in gone)
    rows = conn.execute("SELECT block, term, first_seq, n, seqs, counts, offsets FROM term_blocks WHERE user_id = %s "
                        "AND term = ANY(%s) AND first_seq <= %s AND last_seq >= %s",
                        (user_id, list(seqs_of), high, low)).fetchall()
    emptied, rewritten = [], []
    for block, term, first_seq, n, seqs, counts, offsets in rows:
        held, times, at = decoded(first_seq, n, seqs, counts, offsets)
        keep = ~np.isin(held, seqs_of[term])
        if keep.all():
            continue
        if not keep.any():
            emptied.append(block)
            continue
        kept = held[keep].tolist()
        first = kept[0]
        rewritten.append((first, kept[-1], len(kept), packed([s - first for s in kept]), packed(times[keep].tolist()),
                          packed(at[np.repeat(keep, times)].tolist()), user_id, term, block))
    if emptied:
        conn.execute("DELETE FROM term_blocks WHERE user_id = %s AND block = ANY(%s)", (user_id, emptied))
    if rewritten:
        with conn.cursor() as cur:
            cur.executemany("UPDATE term_blocks SET first_seq = %s, last_seq = %s, n = %s, seqs = %s, counts = %s, "
                            "offsets = %s WHERE user_id = %s AND term = %s AND block = %s", rewritten)


def compact(conn: psycopg.Connection, terms_at_once: int = 2_000) -> int:
    """Merge the small blocks of every user's term that has more than `COMPACT_OVER` of them
    (see `SMALL_BLOCK`) into blocks of up to `BLOCK_AT_MOST` memories, in the caller's
    transaction, `terms_at_once` terms a statement; how many terms were merged."""
    many = conn.execute("SELECT user_id, term FROM term_blocks WHERE n < %s GROUP BY user_id, term "
                        "HAVING count(*) > %s", (SMALL_BLOCK, COMPACT_OVER)).fetchall()
    for start in range(0, len(many), terms_at_once):
        chosen = many[start:start + terms_at_once]
        rows = conn.execute("DELETE FROM term_blocks WHERE (user_id, term) IN "
                            "(SELECT * FROM unnest(%s::text[], %s::text[])) AND n < %s "
                            "RETURNING user_id, term, first_seq, n, seqs, counts, offsets",
                            ([u for u, _ in chosen], [t for _, t in chosen], SMALL_BLOCK), binary=True).fetchall()
        grouped: dict[tuple[str, str], list[tuple]] = {}
        for user_id, term, *block in rows:
            grouped.setdefault((user_id, term), []).append(decoded(*block))
        write_blocks(conn, (row for (user_id, term), parts in grouped.items()
                            for row in _merged(user_id, term, parts)))
    return len(many)


def _merged(user_id: str, term: str, parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> Iterator[tuple]:
    """One term's blocks (decoded) as rows of at most `BLOCK_AT_MOST` memories, in seq order."""
    parts = sorted(parts, key=lambda p: int(p[0][0]))
    seqs = np.concatenate([p[0] for p in parts])
    counts = np.concatenate([p[1] for p in parts])
    offsets = np.concatenate([p[2] for p in parts])
    order = np.argsort(seqs, kind="stable")
    if not np.array_equal(order, np.arange(len(seqs))):  # blocks' spans overlap: offsets move with their memory
        rank = np.empty_like(order)
        rank[order] = np.arange(len(order))
        offsets = offsets[np.argsort(rank[np.repeat(np.arange(len(seqs)), counts)], kind="stable")]
        seqs, counts = seqs[order], counts[order]
    ends = np.cumsum(counts)
    for i in range(0, len(seqs), BLOCK_AT_MOST):
        last = min(i + BLOCK_AT_MOST, len(seqs)) - 1
        yield block_row(user_id, term, seqs[i:last + 1].tolist(), counts[i:last + 1].tolist(),
                        offsets[ends[i] - counts[i]:ends[last]].tolist())


def rebuild(conn: psycopg.Connection) -> None:
    """Every memory's postings and length again, with the current tokenizer (a migration: the
    store's tokens change in place, in the caller's transaction)."""
    conn.execute("DELETE FROM term_blocks")
    after = 0
    while True:
        batch = conn.execute("SELECT user_id, seq, embed_text FROM memories WHERE seq > %s ORDER BY seq LIMIT %s",
                             (after, _BATCH)).fetchall()
        if not batch:
            return
        tokens = tokenize_many([text for _, _, text in batch])
        write_postings(conn, ((user_id, seq, terms) for (user_id, seq, _), terms in zip(batch, tokens)))
        conn.execute("UPDATE memories m SET tokens = t.tokens FROM unnest(%s::bigint[], %s::int[]) AS t (seq, tokens) "
                     "WHERE m.seq = t.seq AND m.tokens <> t.tokens", ([seq for _, seq, _ in batch], [len(terms) for terms in tokens]))
        after = batch[-1][1]
