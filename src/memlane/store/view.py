"""A snapshot of one user's memories as arrays (vectors, ids, speakers, sessions, passages),
which dense search, neighbour context, name checks and BM25 postings read without SQL."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Sequence

import numpy as np

from memlane.errors import StoreError
from memlane.records import MemoryRecord
from memlane.store import bm25

if TYPE_CHECKING:
    from memlane.filters import Filter
from memlane.store.codec import own_rows


def view_row(rowid: int, r: MemoryRecord, blob: bytes) -> tuple:
    """A written memory as the row `UserView.build` reads (what `SQLiteStore._view`'s query returns)."""
    return (rowid, r.id, r.node_type, r.speaker, r.session_id, r.turn_index, blob,
            r.superseded_by is not None, bool(r.event_dates))



def session_links(node_types: np.ndarray, session_ids: list[str | None],
                   turn_index: list[int | None]) -> tuple[np.ndarray, np.ndarray]:
    """For each row, the row of the turn before it and after it in its session (-1 if none)."""
    previous = np.full(len(node_types), -1, dtype=np.int64)
    following = np.full(len(node_types), -1, dtype=np.int64)
    sessions: dict[str, list[tuple[int, int]]] = {}
    for i, (kind, session, index) in enumerate(zip(node_types, session_ids, turn_index)):
        if kind == "turn" and session is not None and index is not None:
            sessions.setdefault(session, []).append((index, i))
    for turns in sessions.values():
        order = [i for _, i in sorted(turns)]
        previous[order[1:]] = order[:-1]
        following[order[:-1]] = order[1:]
    return previous, following



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
    _context: np.ndarray | None = None
    _context_weight: float = 0.0
    _last_scores: dict[float, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)  # context: (query, scores)

    def context_matrix(self, neighbour_weight: float) -> np.ndarray:
        """Each turn's vector plus its neighbours', weighted and renormalized (other rows as they are)."""
        if self._context is None or self._context_weight != neighbour_weight:
            padded = np.vstack([self.matrix, np.zeros((1, self.matrix.shape[1]), np.float32)])
            summed = self.matrix + neighbour_weight * (padded[self.previous] + padded[self.following])
            norms = np.linalg.norm(summed, axis=1, keepdims=True)
            self._context = summed / np.where(norms > 0, norms, 1.0)
            self._context_weight = neighbour_weight
        return self._context

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
        )

    def rows_of(self, rowids: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The view rows among `rowids` (sorted, a backend's row numbers) with their counts: other
        users' memories, and memories written after the view was taken, are left out."""
        if len(self.rowids) == 0 or len(rowids) == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        at = np.minimum(np.searchsorted(self.rowids, rowids), len(self.rowids) - 1)
        known = self.rowids[at] == rowids
        return at[known], counts[known]

    def flagged(self, flags: np.ndarray, ids: Sequence[str]) -> set[str]:
        """Those of `ids` in this view whose entry in `flags` (one bool per row) is set."""
        return {mid for mid in ids if mid in self.position and flags[self.position[mid]]}

    def scores(self, query: np.ndarray, context: float = 0.0) -> np.ndarray:
        """Each memory's cosine to the query: the better of its own vector's and its best passage's;
        with `context` > 0, of its context vector (see `context_matrix`). Read-only.

        One search asks for the same query's scores several times (plain, in a time range, over
        sessions); the last query's are kept per context weight, so a search scans a large store
        once for each."""
        last = self._last_scores.get(context)
        if last is not None and np.array_equal(last[0], query):
            return last[1]
        if context > 0:
            scores = self.context_matrix(context) @ query
        else:
            scores = self.matrix @ query
            if len(self.passage_owners):
                best = np.maximum.reduceat(self.passages @ query, self.passage_starts)
                scores[self.passage_owners] = np.maximum(scores[self.passage_owners], best)
        scores.flags.writeable = False
        self._last_scores[context] = (query.copy(), scores)
        return scores


class ViewReads:
    """The reads every backend answers from a user's view, written once: verbatim matches,
    mentions, speakers, neighbouring turns, sessions, vectors and flags. A backend gives
    `_view(user_id)` (the user's `UserView`), `_folded_texts(user_id, view)` (their texts,
    case-folded, in view order), `_allowed_mask(user_id, view, filters)` (None: all allowed), and
    for BM25 `_postings(user_id, view, term)` (view rows holding the term, and how often) and
    `_lengths(user_id, view)` (each row's length in tokens)."""

    def dense_candidates(self, user_id: str, query: np.ndarray, k: int, filters: Filter | None,
                         *, context: float = 0.0) -> list[tuple[str, float]]:
        """Top k by cosine: a memory scores the better of its own vector and its best passage;
        with `context` > 0 a turn is scored with its session neighbours (see `UserView.scores`)."""
        view = self._view(user_id)
        if len(view.ids) == 0 or k <= 0:
            return []
        scores = view.scores(np.asarray(query, dtype=np.float32), context)
        mask = self._allowed_mask(user_id, view, filters)
        if mask is not None:
            scores = np.where(mask, scores, -np.inf)
        k = min(k, len(scores))
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top], kind="stable")]
        top = top[np.isfinite(scores[top])]
        return [(view.ids[i], float(scores[i])) for i in top]

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
        texts = self._folded_texts(user_id, view)
        mask = self._allowed_mask(user_id, view, filters)
        out: list[tuple[str, str]] = []
        for needle in dict.fromkeys(needles):
            folded = needle.casefold()
            found = 0
            for i, (mid, text) in enumerate(zip(view.ids, texts)):
                if (mid == needle or folded in text) and (mask is None or mask[i]):
                    out.append((mid, needle))
                    found += 1
                    if found >= k:
                        break
        return out

    def mentioning(self, user_id: str, ids: Sequence[str], names: Sequence[str]) -> set[str]:
        """Those of `ids` said by one of `names` or whose text mentions one, case-insensitively."""
        view = self._view(user_id)
        texts = self._folded_texts(user_id, view)
        folded = [n.casefold() for n in names]
        out = set()
        for mid in ids:
            i = view.position.get(mid)
            if i is not None and (view.speakers[i].casefold() in folded
                                  or any(n in texts[i] for n in folded)):
                out.add(mid)
        return out

    def speakers_of(self, user_id: str, ids: Sequence[str]) -> dict[str, str]:
        """The lower-cased speaker of each of `ids` that has one."""
        view = self._view(user_id)
        return {mid: view.speakers[view.position[mid]] for mid in ids
                if mid in view.position and view.speakers[view.position[mid]]}

    def speakers(self, user_id: str) -> list[str]:
        return sorted(self._view(user_id).speaker_names)

    def turns_around(self, user_id: str, ids: Sequence[str], reach: int) -> dict[str, list[tuple[str, int]]]:
        """For each turn id: the turns at most `reach` before or after it in its session, each
        with its distance (1 = adjacent)."""
        view = self._view(user_id)
        out: dict[str, list[tuple[str, int]]] = {}
        for mid in ids:
            i = view.position.get(mid)
            if i is None:
                continue
            nearby = []
            for steps in (view.previous, view.following):
                j = i
                for distance in range(1, reach + 1):
                    j = steps[j]
                    if j < 0:
                        break
                    nearby.append((view.ids[j], distance))
            out[mid] = nearby
        return out

    def session_ids(self, user_id: str, ids: Sequence[str]) -> dict[str, str]:
        view = self._view(user_id)
        return {mid: view.session_ids[view.position[mid]] for mid in ids
                if mid in view.position and view.session_ids[view.position[mid]] is not None}

    def vectors(self, user_id: str, ids: Sequence[str]) -> np.ndarray:
        view = self._view(user_id)
        missing = [i for i in ids if i not in view.position]
        if missing:
            raise StoreError(f"no vector for memories {missing[:3]} of user {user_id}")
        return view.matrix[[view.position[i] for i in ids]] if ids else np.zeros((0, view.matrix.shape[1]), np.float32)

    def superseded(self, user_id: str, ids: Sequence[str]) -> set[str]:
        view = self._view(user_id)
        return view.flagged(view.superseded, ids)

    def dated(self, user_id: str, ids: Sequence[str]) -> set[str]:
        view = self._view(user_id)
        return view.flagged(view.dated, ids)
