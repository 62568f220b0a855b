"""A snapshot of one user's memories as arrays (vectors, ids, speakers, sessions, passages),
which dense search, neighbour context, name checks and BM25 postings read without SQL."""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from memlane.errors import StoreError
from memlane.filters import Filter
from memlane.records import MemoryRecord
from memlane.store import bm25
from memlane.store.codec import own_rows


def view_row(rowid: int, r: MemoryRecord, blob: bytes) -> tuple:
    """A written memory as the row `UserView.build` reads (what `SQLiteStore._view`'s query returns)."""
    return (rowid, r.id, r.node_type, r.speaker, r.session_id, r.turn_index, blob,
            r.superseded_by is not None, bool(r.event_dates))



def postings_of(tokens: Sequence[Sequence[str]], terms: dict[str, tuple[str, ...]]
                ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """For each term (by its index tokens): the rows among `tokens` (each row's index tokens, in
    order) that hold it, as a phrase where it has several tokens, and how often each does."""
    out = {}
    for term, phrase in terms.items():
        rows, counts = [], []
        for row, words in enumerate(tokens):
            n = len(phrase)
            found = sum(1 for i in range(len(words) - n + 1) if tuple(words[i:i + n]) == phrase) if n else 0
            if found:
                rows.append(row)
                counts.append(found)
        out[term] = (np.array(rows, dtype=np.int64), np.array(counts, dtype=np.int64))
    return out


def merged_postings(own: dict[str, tuple[np.ndarray, np.ndarray]],
                    pending: Sequence[dict[str, tuple[np.ndarray, np.ndarray]]], offsets: Sequence[int]
                    ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """A view's cached postings joined with those of its pending parts (their rows start at
    `offsets`): the terms every part has, so no term's rows are missing a part."""
    out = {}
    for term, (rows, counts) in own.items():
        extra = [part.get(term) for part in pending]
        if all(e is not None for e in extra):
            out[term] = (np.concatenate([rows, *(e[0] + o for e, o in zip(extra, offsets))]),
                         np.concatenate([counts, *(e[1] for e in extra)]))
    return out


_ORDERED_KINDS = ("turn", "chunk")


def node_type_mask(view: "UserView", kinds: Sequence[str]) -> np.ndarray:
    """Which of the view's rows are of one of `kinds`: the common filter, answered from the view
    and kept with it (a grouped search asks for it several times)."""
    key = ("node_type_mask", tuple(kinds))
    mask = view.derived.get(key)
    if mask is None:
        mask = view.derived[key] = np.isin(view.node_types, list(kinds))
        mask.flags.writeable = False
    return mask


def session_links(node_types: np.ndarray, session_ids: list[str | None],
                   turn_index: list[int | None]) -> tuple[np.ndarray, np.ndarray]:
    """For each row, the row of the turn before it and after it in its session, or of the chunk
    before and after it in its document (-1 if none)."""
    previous = np.full(len(node_types), -1, dtype=np.int64)
    following = np.full(len(node_types), -1, dtype=np.int64)
    sessions: dict[str, list[tuple[int, int]]] = {}
    for i, (kind, session, index) in enumerate(zip(node_types, session_ids, turn_index)):
        if kind in _ORDERED_KINDS and session is not None and index is not None:
            sessions.setdefault(session, []).append((index, i))
    for turns in sessions.values():
        order = [i for _, i in sorted(turns)]
        previous[order[1:]] = order[:-1]
        following[order[:-1]] = order[1:]
    return previous, following



def top_k(scores: np.ndarray, ids: Sequence[str], k: int) -> list[tuple[str, float]]:
    """The k highest finite scores with their ids, best first; ties keep row order (older first)."""
    k = min(k, len(scores))
    if k <= 0:
        return []
    top = np.argpartition(-scores, k - 1)[:k]
    top = top[np.argsort(-scores[top], kind="stable")]
    top = top[np.isfinite(scores[top])]
    return [(ids[i], float(scores[i])) for i in top]


@dataclass
class UserView:
    """A snapshot of one user's memories for searching, valid for one store generation."""

    generation: int
    index: str
    rowids: np.ndarray
    ids: list[str]
    position: dict[str, int]
    node_types: np.ndarray
    speakers: list[str]  # lower-cased
    speaker_names: set[str]
    session_ids: list[str | None]
    turn_index: list[int | None]
    matrix: np.ndarray
    previous: np.ndarray  # index of the turn before each turn in its session, -1 if none
    following: np.ndarray  # index of the turn after, -1 if none
    superseded: np.ndarray  # True where a newer memory replaced this fact
    dated: np.ndarray  # True where a time expression in the memory was resolved to a date
    passages: np.ndarray  # passage vectors of all memories, grouped by memory in row order
    passage_starts: np.ndarray  # where each memory with passages starts in `passages`
    passage_owners: np.ndarray  # the row of each of those memories
    folded_texts: list[str] | None = None  # case-folded texts, read on first need (see SQLiteStore)
    lengths: np.ndarray | None = None  # tokens in each memory's indexed text, read on first lexical search
    postings: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)  # term: (rows, counts)
    pending: list["UserView"] = field(default_factory=list)  # written since, merged on next use
    derived: dict = field(default_factory=dict)  # arrays computed from this view by its readers, kept with it
    _last_scores: tuple[np.ndarray, np.ndarray] | None = None  # (query, scores)

    @classmethod
    def build(cls, generation: int, index: str, dims: int, rows: list[tuple]) -> "UserView":
        """From rows of (rowid, id, node_type, speaker, session_id, turn_index, vector BLOB,
        superseded, dated), in rowid order."""
        ids = [r[1] for r in rows]
        node_types = np.array([r[2] for r in rows], dtype=object)
        session_ids = [r[4] for r in rows]
        turn_index = [r[5] for r in rows]
        previous, following = session_links(node_types, session_ids, turn_index)
        matrix = own_rows([r[6] for r in rows], dims)
        width = dims * 4
        extra = [(i, r[6][width:]) for i, r in enumerate(rows) if len(r[6]) > width]
        passages = (np.frombuffer(b"".join(b for _, b in extra), dtype=np.float32).reshape(-1, dims)
                    if extra else np.zeros((0, dims), dtype=np.float32))
        counts = np.array([len(b) // width for _, b in extra], dtype=np.int64)
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64) if extra else np.zeros(0, np.int64)
        return cls(
            generation=generation, index=index,
            rowids=np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows)),
            ids=ids, position={mid: i for i, mid in enumerate(ids)},
            node_types=node_types,
            speakers=[(r[3] or "").lower() for r in rows],
            speaker_names={r[3] for r in rows if r[3]},
            session_ids=session_ids, turn_index=turn_index,
            matrix=matrix,
            previous=previous, following=following,
            superseded=np.array([bool(r[7]) for r in rows], dtype=bool),
            dated=np.array([bool(r[8]) for r in rows], dtype=bool),
            passages=passages, passage_starts=starts,
            passage_owners=np.array([i for i, _ in extra], dtype=np.int64),
        )

    def merged(self) -> "UserView":
        """This view with its pending parts (memories written since, larger rowids) joined in, in
        one pass however many writes there were."""
        parts = [self, *self.pending]
        offsets = np.cumsum([0] + [len(p.ids) for p in parts])
        passage_offsets = np.cumsum([0] + [len(p.passages) for p in parts])
        ids = [mid for p in parts for mid in p.ids]
        node_types = np.concatenate([p.node_types for p in parts])
        session_ids = [sid for p in parts for sid in p.session_ids]
        turn_index = [t for p in parts for t in p.turn_index]
        previous, following = session_links(node_types, session_ids, turn_index)
        return UserView(
            generation=self.generation, index=self.index,
            rowids=np.concatenate([p.rowids for p in parts]),
            ids=ids, position={mid: i for i, mid in enumerate(ids)},
            node_types=node_types,
            speakers=[sp for p in parts for sp in p.speakers],
            speaker_names=set().union(*(p.speaker_names for p in parts)),
            session_ids=session_ids, turn_index=turn_index,
            matrix=np.vstack([p.matrix for p in parts]),
            previous=previous, following=following,
            superseded=np.concatenate([p.superseded for p in parts]),
            dated=np.concatenate([p.dated for p in parts]),
            passages=np.vstack([p.passages for p in parts]),
            passage_starts=np.concatenate([p.passage_starts + o for p, o in zip(parts, passage_offsets)]),
            passage_owners=np.concatenate([p.passage_owners + o for p, o in zip(parts, offsets)]),
            folded_texts=([t for p in parts for t in p.folded_texts]
                          if all(p.folded_texts is not None for p in parts) else None),
            lengths=(np.concatenate([p.lengths for p in parts])
                     if all(p.lengths is not None for p in parts) else None),
            postings=merged_postings(self.postings, [p.postings for p in self.pending], offsets[1:-1]),
        )

    def rows_of(self, rowids: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The view rows among `rowids` (sorted, a backend's row numbers) with their counts: other
        users' memories, and memories written after the view was taken, are left out."""
        if len(self.rowids) == 0 or len(rowids) == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        at = np.minimum(np.searchsorted(self.rowids, rowids), len(self.rowids) - 1)
        known = self.rowids[at] == rowids
        return at[known], counts[known]

    def scores(self, query: np.ndarray) -> np.ndarray:
        """Each memory's cosine to the query: the better of its own vector's and its best passage's
        (a long memory is found by the passage that matches). Read-only.

        One search asks for the same query's scores several times (plain, in a time range, over
        sessions); the last query's are kept, so a search scans a large store once."""
        last = self._last_scores
        if last is not None and np.array_equal(last[0], query):
            return last[1]
        scores = self.matrix @ query
        if len(self.passage_owners):
            best = np.maximum.reduceat(self.passages @ query, self.passage_starts)
            scores[self.passage_owners] = np.maximum(scores[self.passage_owners], best)
        scores.flags.writeable = False
        self._last_scores = (query.copy(), scores)
        return scores


class ViewReads:
    """The candidate sources and reads every backend answers from a user's view, written once:
    dense, BM25, document frequencies, verbatim matches, vectors, and the view itself for the
    retrieval layer (`memlane.retrieve.context`). A backend gives `_view(user_id)` (the user's
    `UserView`), `_folded_texts(user_id, view)` (their texts, case-folded, in view order),
    `_allowed_mask(user_id, view, filters)` (None: all allowed), and for BM25
    `_postings(user_id, view, term)` (view rows holding the term, and how often) and
    `_lengths(user_id, view)` (each row's length in tokens)."""

    def search_view(self, user_id: str) -> UserView:
        """The user's search columns and vectors as arrays (pinned within `snapshot`)."""
        return self._view(user_id)

    def search_texts(self, user_id: str) -> list[str]:
        """The user's texts, case-folded, in the order of `search_view`'s rows."""
        view = self._view(user_id)
        return self._folded_texts(user_id, view)

    def filter_mask(self, user_id: str, filters: Filter | None) -> np.ndarray | None:
        """Which rows of `search_view` the filter lets through; None when it restricts nothing."""
        view = self._view(user_id)
        return self._allowed_mask(user_id, view, Filter.parse(filters))

    def dense_candidates(self, user_id: str, query: np.ndarray, k: int,
                         filters: Filter | None) -> list[tuple[str, float]]:
        """Top k by cosine: a memory scores the better of its own vector and its best passage."""
        view = self._view(user_id)
        if len(view.ids) == 0 or k <= 0:
            return []
        scores = view.scores(np.asarray(query, dtype=np.float32))
        mask = self._allowed_mask(user_id, view, filters)
        if mask is not None:
            scores = np.where(mask, scores, -np.inf)
        return top_k(scores, view.ids, k)

    def lexical_candidates(self, user_id: str, terms: Sequence[str], k: int,
                           filters: Filter | None) -> list[tuple[str, float]]:
        """Top k by BM25 over the user's memories, with the user's own term statistics (see `bm25`)."""
        terms = [t for t in dict.fromkeys(terms) if t]
        if not terms:
            return []
        view = self._view(user_id)
        total = len(view.ids)
        if total == 0:
            return []
        lengths = self._lengths(user_id, view)
        average = float(lengths.mean())
        scores = np.zeros(total)
        for term in terms:
            rows, counts = self._postings(user_id, view, term)
            if len(rows):
                scores[rows] += bm25.term_scores(counts, lengths[rows], average, bm25.idf(len(rows), total))
        mask = self._allowed_mask(user_id, view, filters)
        if mask is not None:
            scores = np.where(mask, scores, 0.0)
        found = np.flatnonzero(scores > 0)
        top = found[np.argsort(-scores[found], kind="stable")[:k]]  # ties: the older memory first
        return [(view.ids[i], float(scores[i])) for i in top]

    def document_frequencies(self, user_id: str, terms: Sequence[str]) -> tuple[dict[str, int], int]:
        """How many of the user's memories contain each term, and how many memories the user has."""
        view = self._view(user_id)
        return {term: len(self._postings(user_id, view, term)[0]) for term in dict.fromkeys(terms)}, len(view.ids)

    def substring_matches(self, user_id: str, needles: Sequence[str], k: int,
                          filters: Filter | None) -> list[tuple[str, str]]:
        """(memory id, needle) for memories whose id equals a needle or whose text contains it,
        case-insensitively, oldest first."""
        view = self._view(user_id)
        joined, starts = self._joined_texts(user_id, view)
        mask = self._allowed_mask(user_id, view, filters)
        out: list[tuple[str, str]] = []
        for needle in dict.fromkeys(needles):
            folded = needle.casefold()
            rows: list[int] = []
            if "\x00" not in folded:  # one C-speed scan of all texts instead of a test per memory
                at = joined.find(folded)
                while at != -1 and len(rows) < k:
                    row = bisect.bisect_right(starts, at) - 1
                    if mask is None or mask[row]:
                        rows.append(row)
                    at = joined.find(folded, starts[row + 1]) if row + 1 < len(starts) else -1
            own = view.position.get(needle)  # a memory's id named in the question
            if own is not None and own not in rows and (mask is None or mask[own]):
                rows = sorted(rows + [own])[:k]
            out += [(view.ids[row], needle) for row in rows]
        return out

    def _joined_texts(self, user_id: str, view: "UserView") -> tuple[str, list[int]]:
        """The user's folded texts joined by NUL (which no text holds), and where each starts; kept with the view."""
        cached = view.derived.get("joined_texts")
        if cached is None:
            texts = self._folded_texts(user_id, view)
            starts, at = [], 0
            for text in texts:
                starts.append(at)
                at += len(text) + 1
            cached = view.derived["joined_texts"] = ("\x00".join(texts), starts)
        return cached

    def vectors(self, user_id: str, ids: Sequence[str]) -> np.ndarray:
        view = self._view(user_id)
        missing = [i for i in ids if i not in view.position]
        if missing:
            raise StoreError(f"no vector for memories {missing[:3]} of user {user_id}")
        return view.matrix[[view.position[i] for i in ids]] if ids else np.zeros((0, view.matrix.shape[1]), np.float32)
