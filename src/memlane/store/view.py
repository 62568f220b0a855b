"""A snapshot of one user's memories as arrays (vectors, ids, speakers, sessions, passages),
which dense search, neighbour context, name checks and BM25 postings read without SQL."""

from __future__ import annotations

import bisect
import itertools
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np

from memlane.errors import StoreError
from memlane.filters import Filter
from memlane.records import MemoryRecord
from memlane.store import bm25
from memlane.store.codec import own_rows


def view_row(rowid: int, r: MemoryRecord, blob: bytes) -> tuple:
    """A written memory as the row `UserView.build` reads (what `SQLiteStore._view`'s query returns)."""
    return (rowid, r.id, r.node_type, r.speaker, r.session_id, r.turn_index, blob,
            r.superseded_by is not None, bool(r.event_dates),
            min((e.start for e in r.event_dates), default=None), max((e.end for e in r.event_dates), default=None),
            (r.session_date or "")[:10] or None)


# A memory's days as a time filter compares them (see `memlane.store.sql.filter_sql`), as bytes:
# ISO days compare as strings do. Where none is known, the value no range reaches.
_NO_START, _NO_END, _NO_DAY = b"9999", b"0000", b""


def _days(values: Sequence[str | None], missing: bytes) -> np.ndarray:
    return np.array([v.encode() if v else missing for v in values], dtype=bytes) if len(values) else np.zeros(0, "S1")


def held_filter(filters: Filter) -> bool:
    """Whether the view answers `filters` itself: node types and time ranges only."""
    return set(filters.restricted) <= {"node_type", "date_from", "date_to"}


def _node_types_alone(filters: Filter | None) -> tuple[str, ...] | None:
    """The node types a filter restricts to, where it restricts nothing else; else None."""
    f = Filter.parse(filters)
    return tuple(f.node_type) if f.restricted == ("node_type",) else None


def held_filter_mask(view: "UserView", filters: Filter) -> np.ndarray | None:
    """Which rows pass a filter the view answers (`held_filter`); None when it restricts nothing.
    The time range keeps a memory whose resolved event range or session day overlaps it, as
    `filter_sql` does, without a read per row: a large user's time filter read every drawn row."""
    mask = node_type_mask(view, filters.node_type) if filters.node_type is not None else None
    if filters.date_from is not None or filters.date_to is not None:
        lo = (filters.date_from or "0000-01-01").encode()
        hi = (filters.date_to or "9999-12-31").encode()
        last = view.derived.get("last_time_range")  # one search filters by its range several times
        if last is not None and last[0] == (lo, hi):
            in_range = last[1]
        else:
            days = view.session_days
            in_range = ((view.event_starts <= hi) & (view.event_ends >= lo)) | ((days >= lo) & (days <= hi))
            view.derived["last_time_range"] = ((lo, hi), in_range)
        mask = in_range if mask is None else mask & in_range
    return mask



def plain_words(needle: str) -> bool:
    """Whether `needle` is words alone (letters and digits, separated by spaces). For a large
    user the word index's phrase match stands for finding such a needle in a text: they agree but
    for case, diacritics and word endings ('Caroline' matches "Caroline's"; 'hikes' matches
    'hiking'), where reading every matched text back cost a random read each (290 ms a search at a
    million memories). Needles with other characters (emails, ids, paths) are checked in the text."""
    return any(c.isalnum() for c in needle) and all(c.isalnum() or c.isspace() for c in needle)


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
    kept = set(own).intersection(*pending)
    out = {term: own[term] for term in kept}
    for term in set().union(*({t for t, (rows, _) in part.items() if len(rows)} for part in pending)) & kept:
        rows, counts = own[term]
        extra = [part[term] for part in pending]
        out[term] = (np.concatenate([rows, *(e[0] + o for e, o in zip(extra, offsets))]),
                     np.concatenate([counts, *(e[1] for e in extra)]))
    return out


_ORDERED_KINDS = ("turn", "chunk")


def node_type_mask(view: "UserView", kinds: Sequence[str]) -> np.ndarray:
    """Which of the view's rows are of one of `kinds`: the common filter, answered from the view
    and kept with it (a grouped search asks for it several times)."""
    key = ("node_type_mask", tuple(kinds))
    mask = view.derived.get(key)
    if mask is None or len(mask) < len(view.ids):  # rows appended since (see `UserView.merged`)
        known = np.zeros(0, bool) if mask is None else mask
        mask = view.derived[key] = np.concatenate([known, np.isin(view.node_types[len(known):], list(kinds))])
        mask.flags.writeable = False
    return mask


def _extended_position(position: dict[str, int], ids: list[str]) -> dict[str, int]:
    """Row of each of `ids`, given the rows of its first `len(position)` (a copy in C, not a rebuild)."""
    out = dict(position)
    out.update(zip(ids[len(position):], range(len(position), len(ids))))
    return out


def appended_links(view: "UserView", pending: Sequence["UserView"]) -> tuple[np.ndarray, np.ndarray] | None:
    """`view`'s turn links extended over its pending parts when those parts' turns are all in
    sessions `view` does not hold (a new conversation, a note): its own rows' links stay as they
    are. None when a part continues one of `view`'s sessions; its links are then recomputed."""
    ordered = {sid for p in pending for kind, sid in zip(p.node_types, p.session_ids)
               if kind in _ORDERED_KINDS and sid is not None}
    if ordered and not ordered.isdisjoint(view.session_ids):
        return None
    previous, following = session_links(np.concatenate([p.node_types for p in pending]),
                                        [sid for p in pending for sid in p.session_ids],
                                        [t for p in pending for t in p.turn_index])
    start = len(view.ids)
    return (np.concatenate([view.previous, np.where(previous >= 0, previous + start, -1)]),
            np.concatenate([view.following, np.where(following >= 0, following + start, -1)]))


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



def best_rows(scores: np.ndarray, k: int) -> np.ndarray:
    """Positions of the k highest scores, best first, ties in position order: exactly
    `np.argsort(-scores, kind="stable")[:k]`, without sorting every score (a full sort of a
    large user's 90,000 session scores took 6 ms, this takes a few tenths of one)."""
    count = len(scores)
    if k <= 0 or count == 0:
        return np.zeros(0, np.int64)
    if 4 * k >= count:
        return np.argsort(-scores, kind="stable")[:k]
    kth = scores[np.argpartition(-scores, k - 1)[k - 1]]  # the k-th highest score
    contenders = np.flatnonzero(scores >= kth)  # every score tied with it too, in position order
    return contenders[np.argsort(-scores[contenders], kind="stable")[:k]]


def summed_postings(parts: Sequence[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """(rows, sums): each row found in any part, ascending, and the sum of its values over the
    parts, added part by part in the given order (so each sum is bit for bit what adding the parts
    into a zeroed array of every row gives). Costs the parts' length, not the user's memories:
    a million-row array per search took about 4 ms of a large user's BM25."""
    parts = [(rows, values) for rows, values in parts if len(rows)]
    if not parts:
        return np.zeros(0, np.int64), np.zeros(0, np.float64)
    every = np.concatenate([rows for rows, _ in parts])
    order = np.argsort(every, kind="stable")
    ordered = every[order]
    first = np.empty(len(every), dtype=bool)
    first[:1] = True
    np.not_equal(ordered[1:], ordered[:-1], out=first[1:])
    slot = np.empty(len(every), dtype=np.int64)
    slot[order] = np.cumsum(first) - 1
    sums = np.zeros(int(first.sum()), dtype=np.float64)
    at = 0
    for rows, values in parts:
        sums[slot[at:at + len(rows)]] += values  # a part's rows are distinct, so no add is lost
        at += len(rows)
    return ordered[first], sums


def top_k(scores: np.ndarray, ids: Sequence[str], k: int) -> list[tuple[str, float]]:
    """The k highest finite scores with their ids, best first; ties keep row order (older first)."""
    top = best_rows(scores, k)
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
    event_starts: np.ndarray  # each memory's first resolved event day (bytes; see `held_filter_mask`)
    event_ends: np.ndarray  # ... its last
    session_days: np.ndarray  # ... and the day of its session
    folded_texts: list[str] | None = None  # case-folded texts, read on first need (see SQLiteStore)
    lengths: np.ndarray | None = None  # tokens in each memory's indexed text, read on first lexical search
    postings: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)  # term: (rows, counts)
    pending: list["UserView"] = field(default_factory=list)  # written since, merged on next use
    # What readers computed from this view, kept with it. Tuple keys hold arrays by row (a reader
    # extends one shorter than the view over the rows appended since) or answers by memory id:
    # `merged` carries them over when the old rows keep their turn links. Other keys are answers
    # about the whole view, computed again for each new view.
    derived: dict = field(default_factory=dict)
    # A large user's view holds no vectors (`matrix` and `passages` are empty): they are read from
    # the store when needed, `fetch` for given row numbers (each row's vectors as written, None
    # where gone), `stream` for all of them in row order, page by page. See `LeanVectors`.
    vectors_from: "LeanVectors | None" = None
    _last_scores: tuple[np.ndarray, np.ndarray] | None = None  # (query, scores)
    _last_own: tuple[np.ndarray, np.ndarray] | None = None  # (query, own-vector scores)

    @property
    def dims(self) -> int:
        return self.matrix.shape[1]

    @classmethod
    def build(cls, generation: int, index: str, dims: int, rows: list[tuple]) -> "UserView":
        """From rows of (rowid, id, node_type, speaker, session_id, turn_index, vector BLOB,
        superseded, dated, first event day, last event day, session day), in rowid order."""
        return cls.build_paged(generation, index, dims, [rows])

    @classmethod
    def build_paged(cls, generation: int, index: str, dims: int, pages: Iterable[list[tuple]]) -> "UserView":
        """As `build`, from the rows a page at a time (a cursor's `fetchmany`). Each page becomes
        columns before the next is read: a million rows read at once held about 600 MB of row
        tuples, and the ids kept from them pinned most of that memory after it was freed."""
        ids: list[str] = []
        shared: dict = {}  # one object per distinct value: a million rows repeat few kinds, speakers, sessions
        node_types: list[str] = []
        session_ids: list[str | None] = []
        turn_index: list[int | None] = []
        speakers: list[str] = []
        speaker_names: set[str] = set()
        rowids, own, flags, days, extra_rows, extra_blobs = [], [], [], [], [], []
        width = dims * 4
        lean = None
        for rows in pages:
            if not rows:
                continue
            if lean is None:
                lean = rows[0][6] is None  # a lean view: vectors stay in the store
            offset = len(ids)
            rowids.append(np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows)))
            ids += [r[1] for r in rows]
            node_types += [shared.setdefault(r[2], r[2]) for r in rows]
            speakers += [shared.setdefault(("speaker", r[3]), (r[3] or "").lower()) for r in rows]
            speaker_names.update(r[3] for r in rows if r[3])
            session_ids += [shared.setdefault(r[4], r[4]) for r in rows]
            turn_index += [r[5] for r in rows]
            if not lean:
                own.append(own_rows([r[6] for r in rows if r[6]], dims))
                for i, r in enumerate(rows):
                    if len(r[6]) > width:
                        extra_rows.append(offset + i)
                        extra_blobs.append(r[6][width:])
            flags.append(np.array([(bool(r[7]), bool(r[8])) for r in rows], dtype=bool).reshape(-1, 2))
            days.append((_days([r[9] for r in rows], _NO_START), _days([r[10] for r in rows], _NO_END),
                         _days([r[11] for r in rows], _NO_DAY)))
        kinds = np.array(node_types, dtype=object)
        del node_types
        previous, following = session_links(kinds, session_ids, turn_index)
        passages = (np.frombuffer(b"".join(extra_blobs), dtype=np.float32).reshape(-1, dims)
                    if extra_blobs else np.zeros((0, dims), dtype=np.float32))
        counts = np.array([len(b) // width for b in extra_blobs], dtype=np.int64)
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64) if extra_blobs else np.zeros(0, np.int64)
        flag = np.concatenate(flags) if flags else np.zeros((0, 2), dtype=bool)

        def day_column(at: int, missing: bytes) -> np.ndarray:
            return np.concatenate([d[at] for d in days]) if days else _days([], missing)

        return cls(
            generation=generation, index=index,
            rowids=np.concatenate(rowids) if rowids else np.zeros(0, np.int64),
            ids=ids, position={mid: i for i, mid in enumerate(ids)},
            node_types=kinds, speakers=speakers, speaker_names=speaker_names,
            session_ids=session_ids, turn_index=turn_index,
            matrix=np.concatenate(own) if own else np.zeros((0, dims), dtype=np.float32),
            previous=previous, following=following,
            superseded=flag[:, 0].copy(), dated=flag[:, 1].copy(),
            passages=passages, passage_starts=starts,
            passage_owners=np.array(extra_rows, dtype=np.int64),
            event_starts=day_column(0, _NO_START), event_ends=day_column(1, _NO_END),
            session_days=day_column(2, _NO_DAY),
        )

    def merged(self) -> "UserView":
        """This view with its pending parts (memories written since, larger rowids) joined in, in
        one pass however many writes there were."""
        parts = [self, *self.pending]
        lean = self.vectors_from is not None  # written parts bring vectors; a lean view leaves them in the store
        offsets = np.cumsum([0] + [len(p.ids) for p in parts])
        passage_offsets = np.cumsum([0] + [len(p.passages) for p in parts])
        ids = [mid for p in parts for mid in p.ids]
        node_types = np.concatenate([p.node_types for p in parts])
        session_ids = [sid for p in parts for sid in p.session_ids]
        turn_index = [t for p in parts for t in p.turn_index]
        appended = appended_links(self, self.pending)
        previous, following = appended or session_links(node_types, session_ids, turn_index)
        # Where every old row keeps its links, what readers derived row by row stays true of the
        # old rows: arrays are carried over and extended by their readers over the new rows, and
        # per-id answers kept. Otherwise only the index's lineage is (see below).
        carried = ({key: value for key, value in self.derived.items() if isinstance(key, tuple)}
                   if appended is not None else {})
        if "lineage" in self.derived:
            # what was read from the store stays the same rows, more appended: an approximate index
            # that matched this view takes only the new rows (see `memlane.store.nearest.lineage`)
            carried["lineage"] = self.derived["lineage"]
        return UserView(
            generation=self.generation, index=self.index,
            rowids=np.concatenate([p.rowids for p in parts]),
            ids=ids, position=_extended_position(self.position, ids),
            node_types=node_types,
            speakers=[sp for p in parts for sp in p.speakers],
            speaker_names=set().union(*(p.speaker_names for p in parts)),
            session_ids=session_ids, turn_index=turn_index,
            matrix=self.matrix if lean else np.vstack([p.matrix for p in parts]),
            previous=previous, following=following,
            superseded=np.concatenate([p.superseded for p in parts]),
            dated=np.concatenate([p.dated for p in parts]),
            event_starts=np.concatenate([p.event_starts for p in parts]),
            event_ends=np.concatenate([p.event_ends for p in parts]),
            session_days=np.concatenate([p.session_days for p in parts]),
            passages=self.passages if lean else np.vstack([p.passages for p in parts]),
            passage_starts=(self.passage_starts if lean else
                            np.concatenate([p.passage_starts + o for p, o in zip(parts, passage_offsets)])),
            passage_owners=(self.passage_owners if lean else
                            np.concatenate([p.passage_owners + o for p, o in zip(parts, offsets)])),
            vectors_from=self.vectors_from,
            folded_texts=([t for p in parts for t in p.folded_texts]
                          if all(p.folded_texts is not None for p in parts) else None),
            lengths=(np.concatenate([p.lengths for p in parts])
                     if all(p.lengths is not None for p in parts) else None),
            postings=merged_postings(self.postings, [p.postings for p in self.pending], offsets[1:-1]),
            derived=carried,
        )

    def rows_of(self, rowids: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The view rows among `rowids` (sorted, a backend's row numbers) with their counts: other
        users' memories, and memories written after the view was taken, are left out."""
        if len(self.rowids) == 0 or len(rowids) == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        first, count = int(self.rowids[0]), len(self.rowids)
        if int(self.rowids[-1]) - first + 1 == count:  # no gaps (a file of one user): rows by subtraction
            at = np.asarray(rowids, dtype=np.int64) - first
            known = (at >= 0) & (at < count)
            return at[known], counts[known]
        at = np.minimum(np.searchsorted(self.rowids, rowids), count - 1)
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
        if self.vectors_from is not None:  # every vector read from the store, page by page
            scores = np.full(len(self.ids), -np.inf, dtype=np.float32)
            for rowids, blobs in self.vectors_from.stream():
                rows, _ = self.rows_of(rowids, rowids)
                known = np.isin(rowids, self.rowids[rows])
                scores[rows] = blob_scores([b for b, k in zip(blobs, known) if k], self.dims, query)
            scores.flags.writeable = False
            self._last_scores = (query.copy(), scores)
            return scores
        scores = self.own_scores(query)
        if len(self.passage_owners):
            scores = scores.copy()
            best = np.maximum.reduceat(self.passages @ query, self.passage_starts)
            scores[self.passage_owners] = np.maximum(scores[self.passage_owners], best)
            scores.flags.writeable = False
        self._last_scores = (query.copy(), scores)
        return scores

    def own_scores(self, query: np.ndarray) -> np.ndarray:
        """Each memory's own vector's cosine to the query (no passages), for a view that holds its
        matrix; the last query's are kept, as for `scores`. Read-only."""
        last = self._last_own
        if last is not None and np.array_equal(last[0], query):
            return last[1]
        scores = _matrix_times(self.matrix, query)
        scores.flags.writeable = False
        self._last_own = (query.copy(), scores)
        return scores


# From this many rows a view's own-vector scan is split in two halves run at once: numpy releases
# the interpreter lock in BLAS, and the scan is bound by memory reads (22,000 x 384 floats: 2.9 ms
# on one core, 1.8 on two). Searches run BLAS on one thread each (`_single_threaded_blas`).
SPLIT_SCAN_FROM = 8_192
_HALVES: ThreadPoolExecutor | None = None


def _forget_halves() -> None:  # a forked child has no copy of the pool's thread
    global _HALVES
    _HALVES = None


os.register_at_fork(after_in_child=_forget_halves)


def _matrix_times(matrix: np.ndarray, query: np.ndarray) -> np.ndarray:
    global _HALVES
    if len(matrix) < SPLIT_SCAN_FROM or (os.cpu_count() or 1) < 2:
        return matrix @ query
    if _HALVES is None:
        _HALVES = ThreadPoolExecutor(1, thread_name_prefix="memlane-scan")
    middle = len(matrix) // 2
    out = np.empty(len(matrix), dtype=np.result_type(matrix, query))
    other = _HALVES.submit(np.matmul, matrix[middle:], query, out=out[middle:])
    np.matmul(matrix[:middle], query, out=out[:middle])
    other.result()
    return out


class LeanVectors:
    """Where a lean view's vectors are read from: the backend's reads of one vector index. The
    rows read last are kept (up to `RECENT_AT_MOST`): one search reads the candidates it drew
    again with their neighbours. A view read again gets new `LeanVectors`, so what is kept is
    never older than the view that reads it."""

    RECENT_AT_MOST = 8_192

    def __init__(self, fetch: Callable[[np.ndarray], list[bytes | None]],
                 stream: Callable[[], Iterator[tuple[np.ndarray, list[bytes]]]]) -> None:
        self._read = fetch  # rowids -> each row's BLOB (own vector, then passages'), None where gone
        self.stream = stream  # -> pages of (rowids ascending, BLOBs) covering the user
        self._recent: dict[int, bytes] = {}

    def fetch(self, rowids: np.ndarray) -> list[bytes | None]:
        """Each row's BLOB (own vector, then passages'), None where gone."""
        recent = self._recent
        wanted = [int(r) for r in rowids]
        missing = [r for r in wanted if r not in recent]
        found = dict(zip(missing, self._read(np.asarray(missing, dtype=np.int64)))) if missing else {}
        blobs = [found[r] if r in found else recent[r] for r in wanted]
        kept = {r: b for r, b in found.items() if b}  # a row gone is asked for again
        if len(recent) + len(kept) > self.RECENT_AT_MOST:
            # Replaced, never emptied: another thread may be reading the old one. A read larger
            # than the bound (the held session vectors) is not kept at all.
            self._recent = kept if len(kept) <= self.RECENT_AT_MOST else {}
        else:
            recent.update(kept)
        return blobs


def stacked_blobs(blobs: Sequence[bytes | None], dims: int) -> tuple[list[int], np.ndarray, np.ndarray]:
    """Of vector BLOBs (own vector, then passages'; None where gone): which are present, all
    their vectors stacked, and where each present one's vectors start."""
    kept = [i for i, b in enumerate(blobs) if b]
    if not kept:
        return kept, np.zeros((0, dims), dtype=np.float32), np.zeros(0, dtype=np.int64)
    vectors = np.frombuffer(b"".join(blobs[i] for i in kept), dtype=np.float32).reshape(-1, dims)
    counts = np.array([len(blobs[i]) // (4 * dims) for i in kept], dtype=np.int64)
    return kept, vectors, np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)


def blob_scores(blobs: Sequence[bytes | None], dims: int, query: np.ndarray) -> np.ndarray:
    """Each BLOB's best cosine to the query over its vectors (own and passages'); -inf for None."""
    scores = np.full(len(blobs), -np.inf, dtype=np.float32)
    kept, vectors, starts = stacked_blobs(blobs, dims)
    if kept:
        scores[kept] = np.maximum.reduceat(vectors @ query, starts)
    return scores


def own_vectors(view: UserView, rows: np.ndarray) -> np.ndarray:
    """The own vectors of the view's `rows` (zeros for a memory gone from the store since)."""
    if view.vectors_from is None:
        return view.matrix[rows]
    out = np.zeros((len(rows), view.dims), dtype=np.float32)
    width = 4 * view.dims
    for i, blob in enumerate(view.vectors_from.fetch(view.rowids[rows])):
        if blob:
            out[i] = np.frombuffer(blob[:width], dtype=np.float32)
    return out


def scores_of_rows(view: UserView, rows: np.ndarray, query: np.ndarray) -> np.ndarray:
    """The cosine of each of the view's `rows` to `query` as `UserView.scores` gives it: the
    better of the memory's own vector and its best passage. Costs the rows, not the view."""
    if view.vectors_from is not None:
        return blob_scores(view.vectors_from.fetch(view.rowids[rows]), view.dims, query)
    scores = view.matrix[rows] @ query
    owners = view.passage_owners
    if len(owners) and len(rows):
        ends = np.append(view.passage_starts[1:], len(view.passages))
        at = np.minimum(np.searchsorted(owners, rows), len(owners) - 1)
        for i in np.flatnonzero(owners[at] == rows):
            start, end = view.passage_starts[at[i]], ends[at[i]]
            scores[i] = max(scores[i], float((view.passages[start:end] @ query).max()))
    return scores


@dataclass
class HeldVectors:
    """Some rows of a lean view with their vectors in memory: `rows` (ascending), every vector
    of them (own, then passages') in `vectors`, and where each row's start (`starts`). `through`:
    the view rows it has looked at (rows appended after it are read in when asked)."""

    rows: np.ndarray
    vectors: np.ndarray
    starts: np.ndarray
    through: int

    @classmethod
    def read(cls, view: "UserView", rows: np.ndarray, through: int) -> "HeldVectors":
        """The vectors of `rows` from the store; a row gone since the view was taken is left out."""
        blobs = view.vectors_from.fetch(view.rowids[rows]) if len(rows) else []
        kept, vectors, starts = stacked_blobs(blobs, view.dims)
        return cls(rows=rows[kept], vectors=vectors, starts=starts, through=through)

    def extended(self, more: "HeldVectors") -> "HeldVectors":
        return HeldVectors(rows=np.concatenate([self.rows, more.rows]), vectors=np.vstack([self.vectors, more.vectors]),
                           starts=np.concatenate([self.starts, more.starts + len(self.vectors)]), through=more.through)

    def top(self, view: "UserView", query: np.ndarray, k: int) -> list[tuple[str, float]]:
        """The k rows nearest to `query`, each scoring the best of its vectors, as `UserView.scores`."""
        if not len(self.rows):
            return []
        scores = _matrix_times(self.vectors, query)
        if len(self.starts) < len(self.vectors):  # some rows have passages: each row its best vector
            scores = np.maximum.reduceat(scores, self.starts)
        best = best_rows(scores, k)  # ties: the older memory first
        return [(view.ids[self.rows[i]], float(scores[i])) for i in best]


def held_vectors(view: "UserView", kinds: tuple[str, ...]) -> HeldVectors:
    """The vectors of a lean view's rows of node types `kinds`, held with the view (see
    HELD_AT_MOST) and extended over rows appended since (see `UserView.merged`)."""
    key = ("held_vectors", kinds)
    held = view.derived.get(key)
    if held is None or held.through < len(view.ids):
        start = 0 if held is None else held.through
        rows = start + np.flatnonzero(node_type_mask(view, kinds)[start:])
        more = HeldVectors.read(view, rows.astype(np.int64), len(view.ids))
        held = view.derived[key] = more if held is None else held.extended(more)
    return held


# Below this many memories a user's dense candidates come from an exact scan of the view; from it
# on, from the backend's approximate index, re-scored exactly (measured: benchmarks/results/scale.md).
DENSE_EXACT_BELOW = 50_000
NEAREST_AT_LEAST = 100  # candidates wanted from an approximate index, at least (4 per candidate asked for) ...
NEAREST_DRAW = 400  # ... and the vectors drawn for them, at least: at a million memories, 100 missed a tenth of the top 10
# A large user's memories of a node type (their sessions, say) this few, asked for alone, have
# their vectors held with the view and are scanned exactly: sessions are about a twentieth of the
# memories, and drawing them from the one index of all memories took a draw twenty times deeper.
# At a million memories: 50,000 sessions, 77 MB held, a scan of 13-20 ms (memory-bound), and the
# mean search 12 ms faster.
HELD_AT_MOST = 100_000
_MOST_DRAWN = 8_000  # past this, a filter's own rows are scored exactly instead ...
_EXACT_AT_MOST = 20_000  # ... where they are this few; more: the candidates the draw found
# A large user's BM25 leaves out terms found in more than this share of their memories: reading
# such a term's postings costs more than the rest of the search, and its weight is small (idf
# under 3.9, against 7 to 12 for the words that find things). At a million memories, the words in
# 2-5% of them took 26 ms a search.
LEXICAL_MOST_SHARE = 0.02
LEXICAL_MOST_POSTINGS = 20_000  # ... and in more memories than this: below it, a read costs a few ms
# From this many characters of text, a user's verbatim lookups (a quoted string, an id, a name)
# start from the word index instead of scanning every text: a scan of the 22,000 PEP chunks (14
# MB) costs about 7 ms a needle. Either way a memory is returned only if its text holds the
# needle; through the index, a needle inside a longer word ("bird" in "bluebird") is not found.
SCAN_TEXTS_BELOW = 4_000_000


def top_of_rows(view: UserView, rows: np.ndarray, query: np.ndarray, k: int,
                mask: np.ndarray | None, *, short: bool = False) -> list[tuple[str, float]] | None:
    """The top k of some view rows (as an approximate index drew them) that `mask` lets
    through, scored exactly; None where fewer than k (or all allowed) remain, so the caller
    scans exactly instead: a narrow filter is never answered with a short list, unless `short`."""
    rows = np.unique(rows)
    if mask is not None:
        rows = rows[mask[rows]]
    wanted = min(k, len(view.ids) if mask is None else int(np.count_nonzero(mask)))
    if len(rows) < wanted and not short:
        return None
    scores = scores_of_rows(view, rows, query)
    top = best_rows(scores, k)
    return [(view.ids[rows[i]], float(scores[i])) for i in top if np.isfinite(scores[i])]  # -inf: gone since


class ViewReads:
    """The candidate sources and reads every backend answers from a user's view, written once:
    dense, BM25, document frequencies, verbatim matches, vectors, and the view itself for the
    retrieval layer (`memlane.retrieve.context`). A backend sets `dense_exact_below` and gives
    `_nearest_rows(user_id, view, query, count)` (rows from its approximate index, None when it
    has none), `_view(user_id)` (the user's
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
        """Top k by cosine: a memory scores the better of its own vector and its best passage.
        A large user's candidates are drawn from the approximate index and scored exactly; a
        filter that lets few rows through has those rows scored exactly instead."""
        view = self._view(user_id)
        if len(view.ids) == 0 or k <= 0:
            return []
        query = np.asarray(query, dtype=np.float32)
        if self._filtered_late(view, filters):  # a large user: the filter checks the drawn rows only
            draw = min(len(view.ids), _MOST_DRAWN, 4 * max(4 * k, NEAREST_AT_LEAST))
            while True:
                rows = self._allowed_rows(user_id, view, Filter.parse(filters), self.nearest_rows(user_id, query, draw))
                if len(rows) >= k or draw >= min(len(view.ids), _MOST_DRAWN):
                    break
                draw = min(len(view.ids), _MOST_DRAWN, 4 * draw)
            return top_of_rows(view, rows, query, k, None, short=True)
        mask = self._allowed_mask(user_id, view, filters)
        if self._approximate(view):
            allowed = len(view.ids) if mask is None else int(np.count_nonzero(mask))
            kinds = _node_types_alone(filters)
            if view.vectors_from is not None and kinds is not None and allowed <= HELD_AT_MOST:
                return held_vectors(view, kinds).top(view, query, k)
            wanted = max(4 * k, NEAREST_AT_LEAST)
            if allowed > wanted:  # a filter letting a share through needs about 1/share times the draw
                draw = min(len(view.ids), _MOST_DRAWN, max(NEAREST_DRAW, wanted * len(view.ids) // max(allowed, 1)))
                drawn = self.nearest_rows(user_id, query, draw)
                found = top_of_rows(view, drawn, query, k, mask)
                if found is not None:
                    return found
                if mask is None or allowed > _EXACT_AT_MOST:  # too many to score one by one: what was drawn
                    return top_of_rows(view, drawn, query, k, mask, short=True)
            if mask is not None:  # few rows allowed (or too few drawn): those rows, scored exactly
                return top_of_rows(view, np.flatnonzero(mask), query, k, None, short=True)
        scores = view.scores(query)
        if mask is not None:
            scores = np.where(mask, scores, -np.inf)
        return top_k(scores, view.ids, k)

    def dense_candidates_ahead(self, user_id: str, query: np.ndarray, k: int,
                               filters: Filter | None) -> Callable[[], list[tuple[str, float]]]:
        """`dense_candidates`, computed here when taken (a backend whose reads can run beside the
        caller's overrides this to start them at once)."""
        return partial(self.dense_candidates, user_id, query, k, filters)

    @staticmethod
    def _filtered_late(view: UserView, filters: Filter | None) -> bool:
        """Whether a filter is checked on candidates instead of over all the user's memories: for
        a large user, whose every row a date or category filter would otherwise read (the node
        type alone is answered from the view, whatever the size)."""
        f = Filter.parse(filters)
        return view.vectors_from is not None and not f.is_empty and not held_filter(f)

    def _allowed_rows(self, user_id: str, view: UserView, filters: Filter, rows: np.ndarray) -> np.ndarray:
        """Those of the view's `rows` the filter lets through (the backend reads their fields)."""
        raise NotImplementedError

    def _approximate(self, view: UserView) -> bool:
        """Whether the user's dense candidates come from the approximate index."""
        return view.vectors_from is not None or len(view.ids) >= self.dense_exact_below

    def nearest_rows(self, user_id: str, query: np.ndarray, count: int) -> np.ndarray | None:
        """Rows drawn from the backend's approximate index (`_nearest_rows`), None: scan exactly."""
        view = self._view(user_id)
        if not self._approximate(view):
            return None
        if count <= 0:
            return np.zeros(0, np.int64)
        query = np.asarray(query, dtype=np.float32)
        last = view.derived.get("last_draw")  # one search draws for the same query several times
        if last is not None and last[1] >= count and np.array_equal(last[0], query):
            return last[2]  # a superset: callers score what they get
        rows = self._nearest_rows(user_id, view, query, count)
        if rows is not None and count >= len(view.ids) > len(rows):
            # A draw of every row is every row, as a perfect index answers it: an HNSW graph built
            # by several threads can leave a row unreachable.
            rows = np.arange(len(view.ids), dtype=np.int64)
        view.derived["last_draw"] = (query.copy(), count, rows)
        return rows

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
        if view.vectors_from is not None:  # a large user: a term in many memories costs a long read and ranks little
            rarest = sorted(terms, key=lambda t: self._frequency(user_id, view, t))[:1]  # all common: the least
            most = max(LEXICAL_MOST_SHARE * total, LEXICAL_MOST_POSTINGS)
            terms = [t for t in terms if self._frequency(user_id, view, t) <= most] or rarest
        last = view.derived.get("last_bm25")  # one search ranks the same terms again, filtered
        if last is not None and last[0] == tuple(terms):
            found, scores = last[1], last[2]
        else:
            lengths = self._lengths(user_id, view)
            average = float(lengths.mean())
            self._read_postings(user_id, view, terms)
            parts = []
            for term in terms:
                rows, counts = self._postings(user_id, view, term)
                if len(rows):
                    parts.append((rows, bm25.term_scores(counts, lengths[rows], average, bm25.idf(len(rows), total))))
            found, scores = summed_postings(parts)  # matching rows, ascending, and their scores
            kept = scores > 0
            found, scores = found[kept], scores[kept]
            view.derived["last_bm25"] = (tuple(terms), found, scores)  # read-only from here on
        if self._filtered_late(view, filters):  # the best-scoring rows checked, not every row
            best = found[best_rows(scores, _MOST_DRAWN)]
            allowed = self._allowed_rows(user_id, view, Filter.parse(filters), best)
            allowed_scores = scores[np.searchsorted(found, allowed)]
            top = best_rows(allowed_scores, k)
            return [(view.ids[allowed[i]], float(allowed_scores[i])) for i in top]
        mask = self._allowed_mask(user_id, view, filters)
        if mask is not None:
            kept = mask[found]
            found, scores = found[kept], scores[kept]
        top = best_rows(scores, k)  # ties: the older memory first
        return [(view.ids[found[i]], float(scores[i])) for i in top]

    def document_frequencies(self, user_id: str, terms: Sequence[str]) -> tuple[dict[str, int], int]:
        """How many of the user's memories contain each term, and how many memories the user has."""
        view = self._view(user_id)
        if view.vectors_from is not None:
            self._count_frequencies(user_id, view, [t for t in dict.fromkeys(terms)
                                                    if t not in view.derived.get("frequencies", {})])
        return {term: self._frequency(user_id, view, term) for term in dict.fromkeys(terms)}, len(view.ids)

    def _frequency(self, user_id: str, view: UserView, term: str) -> int:
        """How many of the view's memories hold `term`: counted by the backend for a large user
        (`_counted_frequency`, None where it cannot), else from the term's postings. Kept with the view."""
        known = view.derived.setdefault("frequencies", {})
        if term not in known:
            counted = self._counted_frequency(user_id, view, term) if view.vectors_from is not None else None
            known[term] = len(self._postings(user_id, view, term)[0]) if counted is None else counted
        return known[term]

    def _counted_frequency(self, user_id: str, view: UserView, term: str) -> int | None:
        return None

    def _count_frequencies(self, user_id: str, view: UserView, terms: Sequence[str]) -> None:
        """Count several terms of a large user's at once into the view's frequencies, where the
        backend can in one read (else `_frequency` counts them one by one)."""

    def _read_postings(self, user_id: str, view: UserView, terms: Sequence[str]) -> None:
        """Read several terms' postings at once into the view's cache, where the backend can in
        one read (else `_postings` reads them one by one)."""

    def texts_holding(self, user_id: str, ids: Sequence[str], needles: Sequence[str]) -> set[str]:
        """Those of `ids` whose text contains one of `needles`, case-insensitively. A large user's
        texts are not held: the word index keeps those of `ids` that hold a needle's words, which
        for a needle of plain words is the answer (see `plain_words`); for another, only their
        texts are read and checked. (A needle inside a longer word is not found that way, as in
        `substring_matches`.)"""
        view = self._view(user_id)
        folded = [n.casefold() for n in needles if n]
        rows = np.array(sorted({view.position[mid] for mid in ids if mid in view.position}), dtype=np.int64)
        if not folded or not len(rows):
            return set()
        if view.vectors_from is None:
            texts = self._folded_texts(user_id, view)
            return {view.ids[i] for i in rows if any(n in texts[i] for n in folded)}
        found: set[str] = set()
        for plain in (True, False):
            group = [n for n in needles if any(c.isalnum() for c in n) and plain_words(n) == plain]
            if not group:
                continue
            held = rows[np.isin(rows, np.concatenate([self._phrase_rows(user_id, view, n, len(view.ids)) for n in group]))]
            if plain:
                found.update(view.ids[i] for i in held)
                continue
            wanted = [n.casefold() for n in group]
            found.update(r.id for r in self.get_many(user_id, [view.ids[i] for i in held if view.ids[i] not in found])
                         if any(n in r.text.casefold() for n in wanted))
        return found

    def substring_matches(self, user_id: str, needles: Sequence[str], k: int,
                          filters: Filter | None) -> list[tuple[str, str]]:
        """(memory id, needle) for memories whose id equals a needle or whose text contains it,
        case-insensitively, oldest first."""
        view = self._view(user_id)
        lean = view.vectors_from is not None  # a large user: their texts are not held in memory
        indexed = lean or self._scanned_chars(user_id, view) >= SCAN_TEXTS_BELOW
        joined, starts = ("", []) if indexed else self._joined_texts(user_id, view)
        mask = self._allowed_mask(user_id, view, filters)
        out: list[tuple[str, str]] = []
        for needle in dict.fromkeys(needles):
            folded = needle.casefold()
            rows: list[int] = []
            if indexed:
                rows = self._indexed_matches(user_id, view, needle, k, mask)
            elif "\x00" not in folded:  # one C-speed scan of all texts instead of a test per memory
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

    def _indexed_matches(self, user_id: str, view: UserView, needle: str, k: int,
                         mask: np.ndarray | None) -> list[int]:
        """Rows whose text holds `needle`, oldest first, for a user too large to scan: the rows
        whose indexed words hold the needle's (BM25's postings), each then checked for the needle
        itself, unless the user is large and the needle plain words (see `plain_words`). A needle
        inside a longer word ("bird" in "bluebird") is not found this way."""
        folded = needle.casefold()
        rows = (self._phrase_rows(user_id, view, needle, 50 * k) if any(c.isalnum() for c in folded)
                else np.zeros(0, np.int64))
        if mask is not None:
            rows = rows[mask[rows]]
        if view.vectors_from is None:  # the texts are held with the view
            texts = self._folded_texts(user_id, view)
            return list(itertools.islice((int(i) for i in rows if folded in texts[i]), k))
        if plain_words(needle):  # what the word index matches is the answer: no text is read
            return [int(i) for i in rows[:k]]
        found: list[int] = []
        start, step = 0, max(2 * k, 16)  # most rows holding the words hold the needle: read a few first
        while start < len(rows) and len(found) < k:
            chunk = [int(i) for i in rows[start:start + step]]
            texts = {r.id: r.text.casefold() for r in self.get_many(user_id, [view.ids[i] for i in chunk])}
            found += [i for i in chunk if folded in texts.get(view.ids[i], "")]
            start, step = start + step, min(2 * step, 256)
        return found[:k]

    def _phrase_rows(self, user_id: str, view: UserView, text: str, limit: int) -> np.ndarray:
        """View rows whose indexed text holds `text`'s words as a phrase, oldest first: from its
        postings here; a backend with a phrase query of its own answers it there (at most `limit`)."""
        return self._postings(user_id, view, text)[0]

    def _scanned_chars(self, user_id: str, view: "UserView") -> int:
        """How long the joined texts a scan reads are (see `_joined_texts`), without joining
        them: a user past SCAN_TEXTS_BELOW never needs the joined copy. Kept with the view."""
        known = view.derived.get("scanned_chars")
        if known is None:
            texts = self._folded_texts(user_id, view)
            known = view.derived["scanned_chars"] = sum(map(len, texts)) + max(len(texts) - 1, 0)
        return known

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
        return own_vectors(view, np.array([view.position[i] for i in ids], dtype=np.int64))
