"""Per-user term indexes: a user's texts in a scratch FTS5 table of the store's connection."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Lexicon:
    """One user's indexed texts in a scratch FTS5 table of this connection, with its term
    positions (`table`_terms): the user's postings then cost what the user's own memories hold.
    FTS5's shared vocabulary can only be searched by term, so there a common term costs its
    occurrences in the whole file, every user's (8 ms per term at the median at 181,000 memories
    of 500 users; 25 ms for "like" even when the user's rows are 100 neighbours). Valid for one
    store generation; a write that adds memories (and at most amends other fields of old ones)
    extends it, a delete or a text update has it rebuilt."""

    table: str
    generation: int

