"""BM25 from one user's own statistics, scored the way FTS5's bm25() scores.

FTS5 takes a term's document frequency, the memory count and the average length from the whole
file, so in a shared store one user's lexical scores would move with what other users stored.
The store reads the term counts and lengths from FTS5 and scores them here, per user: in a store
that holds one user the result equals FTS5's own bm25() (negated).
"""

from __future__ import annotations

import math

import numpy as np

K1 = 1.2  # FTS5's term-frequency saturation
B = 0.75  # FTS5's length normalization


def idf(document_frequency: int, total_documents: int) -> float:
    """FTS5's idf: ln((N - n + 0.5) / (n + 0.5)), floored at 1e-6 for terms in over half the memories."""
    value = math.log((total_documents - document_frequency + 0.5) / (document_frequency + 0.5))
    return value if value > 0 else 1e-6


def term_scores(counts: np.ndarray, lengths: np.ndarray, average_length: float, weight: float) -> np.ndarray:
    """One term's BM25 contribution to each memory holding it: `counts` of the term in each,
    their `lengths` in tokens, the user's `average_length`, the term's idf as `weight`."""
    counts = np.asarray(counts, dtype=np.float64)
    norm = 1.0 - B + B * np.asarray(lengths, dtype=np.float64) / (average_length or 1.0)
    return weight * counts * (K1 + 1.0) / (counts + K1 * norm)


def first_varint(blob: bytes) -> int:
    """The first of the SQLite varints in `blob`: FTS5 stores each memory's token count so."""
    value = 0
    for i, byte in enumerate(blob[:9]):
        if i == 8:  # a ninth byte carries all eight bits
            return (value << 8) | byte
        value = (value << 7) | (byte & 0x7F)
        if byte < 0x80:
            return value
    return value


# A large user's term is counted to this many memories; past it, its count is estimated from how
# far into the user's rows those reach (`spread_count`). Counting to the end reads a term's whole
# list: 10-60 ms a common word at a million memories on SQLite's FTS5, 150 ms a search at 100,000
# on PostgreSQL's postings, against under 1 ms for this many.
COUNTED_AT_MOST = 1_000


def spread_count(rowids: np.ndarray, bounds: tuple[int, int], counted_at_most: int) -> int:
    """How many memories in the rowid span `bounds` hold a term, from its first matches there in
    rowid order (`rowids`, at most `counted_at_most` + 1 of them): exact when there are no more,
    else their count scaled by the share of the span they reach, as if the term were spread
    evenly over time (a common word nearly is; a word of one period is over- or underestimated)."""
    if len(rowids) <= counted_at_most:
        return len(rowids)
    first, last = bounds
    reached = (int(rowids[-1]) - first + 1) / max(last - first + 1, 1)
    return round(len(rowids) / reached) if reached > 0 else len(rowids)
