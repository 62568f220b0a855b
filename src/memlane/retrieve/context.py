"""What a search knows about its user beyond the candidate sources: neighbouring turns, speakers,
mentions, sessions, flags and context-weighted dense scores. Computed here, above the store seam,
from the user's search view (`Store.search_view`), so every backend gets them from one place."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from memlane.filters import Filter
from memlane.store import Store
from memlane.store.view import NEAREST_AT_LEAST, UserView, own_vectors, top_k


def context_norms(view: UserView, neighbour_weight: float) -> np.ndarray:
    """1 / the length of each turn's context vector: its own vector plus its session neighbours',
    weighted (other memories' own vectors as they are). With it a context cosine is a sum of
    plain cosines, so a search scans the user's vectors once, not twice. Kept with the view."""
    key = ("context_norms", neighbour_weight)
    cached = view.derived.get(key)
    if cached is None or len(cached) < len(view.ids):  # rows appended since: only theirs are computed
        known = np.zeros(0, np.float32) if cached is None else cached
        rows = slice(len(known), len(view.ids))

        def linked(links: np.ndarray) -> np.ndarray:  # -1 (no neighbour) gives a zero vector
            vectors = view.matrix[np.maximum(links, 0)]
            vectors[links < 0] = 0.0
            return vectors

        summed = view.matrix[rows] + neighbour_weight * (linked(view.previous[rows]) + linked(view.following[rows]))
        norms = np.linalg.norm(summed, axis=1)
        cached = view.derived[key] = np.concatenate([known, 1.0 / np.where(norms > 0, norms, 1.0)])
    return cached


def context_cosines(view: UserView, neighbour_weight: float, query: np.ndarray) -> np.ndarray:
    """Every turn's context cosine to the query: (own + w x (before + after)) / |context vector|,
    from the own-vector cosines the search has already computed."""
    own = np.append(view.own_scores(query), np.float32(0.0))  # -1 (no neighbour) reads the 0
    summed = own[:-1] + neighbour_weight * (own[view.previous] + own[view.following])
    return summed * context_norms(view, neighbour_weight)


def context_scores(view: UserView, rows: np.ndarray, neighbour_weight: float, query: np.ndarray) -> np.ndarray:
    """The cosine of `rows`' context vectors (see `context_norms`) to the query, computed for
    those rows only: what a large user's search needs instead of the whole matrix."""
    before, after = view.previous[rows], view.following[rows]
    needed = np.unique(np.concatenate([rows, before[before >= 0], after[after >= 0]]))
    vectors = np.vstack([own_vectors(view, needed), np.zeros((1, view.dims), np.float32)])
    at = np.searchsorted(needed, rows)
    def linked(links: np.ndarray) -> np.ndarray:  # -1 (no neighbour) reads the zero row
        return vectors[np.where(links >= 0, np.searchsorted(needed, links), len(needed))]

    summed = vectors[at] + neighbour_weight * (linked(before) + linked(after))
    norms = np.linalg.norm(summed, axis=1)
    return (summed @ query) / np.where(norms > 0, norms, 1.0)


class UserContext:
    """One user's memories as a search sees them, pinned to one state by the store's snapshot."""

    def __init__(self, store: Store, user_id: str) -> None:
        self.store = store
        self.user_id = user_id
        self.view = store.search_view(user_id)

    def context_candidates(self, query: np.ndarray, neighbour_weight: float, k: int,
                           filters: Filter | None) -> list[tuple[str, float]]:
        """Top k turns by the cosine of their context vectors (see `context_norms`)."""
        view = self.view
        if not view.ids or k <= 0:
            return []
        query = np.asarray(query, dtype=np.float32)
        mask = self.store.filter_mask(self.user_id, filters)
        drawn = self.store.nearest_rows(self.user_id, query, max(4 * k, NEAREST_AT_LEAST))
        if drawn is not None:  # a large user: the nearest turns and their neighbours, not every turn
            pool = np.unique(np.concatenate([drawn, view.previous[drawn], view.following[drawn]]))
            pool = pool[pool >= 0]
            if mask is not None:
                pool = pool[mask[pool]]
            scores = context_scores(view, pool, neighbour_weight, query)
            top = np.argsort(-scores, kind="stable")[:k]
            return [(view.ids[pool[i]], float(scores[i])) for i in top]
        scores = context_cosines(view, neighbour_weight, query)
        if mask is not None:
            scores = np.where(mask, scores, -np.inf)
        return top_k(scores, view.ids, k)

    def speakers(self) -> list[str]:
        """Every speaker the user's memories name, as written."""
        return sorted(self.view.speaker_names)

    def speakers_of(self, ids: Sequence[str]) -> dict[str, str]:
        """The lower-cased speaker of each of `ids` that has one."""
        view = self.view
        return {mid: view.speakers[view.position[mid]] for mid in ids
                if mid in view.position and view.speakers[view.position[mid]]}

    def mentioning(self, ids: Sequence[str], names: Sequence[str]) -> set[str]:
        """Those of `ids` said by one of `names` or whose text mentions one, case-insensitively."""
        view = self.view
        folded = [n.casefold() for n in names]
        if not folded:
            return set()
        said = {mid for mid in ids if mid in view.position and view.speakers[view.position[mid]].casefold() in folded}
        return said | self.store.texts_holding(self.user_id, [mid for mid in ids if mid not in said], names)

    def turns_around(self, ids: Sequence[str], reach: int) -> dict[str, list[tuple[str, int]]]:
        """For each turn id: the turns at most `reach` before or after it in its session, each
        with its distance (1 = adjacent)."""
        view = self.view
        # Kept with the view: a user's searches ask about the same turns again and again (read-only).
        known: dict[str, list[tuple[str, int]]] = view.derived.setdefault(("turns_around", reach), {})
        out: dict[str, list[tuple[str, int]]] = {}
        for mid in ids:
            nearby = known.get(mid)
            if nearby is None:
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
                known[mid] = nearby
            out[mid] = nearby
        return out

    def session_ids(self, ids: Sequence[str]) -> dict[str, str]:
        """The session of each of `ids` that belongs to one."""
        view = self.view
        return {mid: view.session_ids[view.position[mid]] for mid in ids
                if mid in view.position and view.session_ids[view.position[mid]] is not None}

    def superseded(self, ids: Sequence[str]) -> set[str]:
        """Those of `ids` that a newer memory superseded."""
        return self._flagged(self.view.superseded, ids)

    def dated(self, ids: Sequence[str]) -> set[str]:
        """Those of `ids` that mention a time which ingestion resolved to a date."""
        return self._flagged(self.view.dated, ids)

    def _flagged(self, flags: np.ndarray, ids: Sequence[str]) -> set[str]:
        position = self.view.position
        return {mid for mid in ids if mid in position and flags[position[mid]]}
