"""What every store backend offers: the `Store` protocol and the plain types it returns."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ContextManager, Protocol, Sequence

import numpy as np

from memlane.records import HistoryEvent, MemoryRecord

if TYPE_CHECKING:
    from memlane.filters import Filter


@dataclass(frozen=True)
class IndexInfo:
    """The embedding model a vector index was built with."""

    name: str
    model: str
    dims: int


@dataclass(frozen=True)
class StoreStats:
    memories: int
    users: int
    by_node_type: dict[str, int]
    by_category: dict[str, int]
    index: IndexInfo | None
    file_bytes: int


class Store(Protocol):
    """The handful of operations memlane needs from a backend."""

    def active_index(self) -> IndexInfo | None: ...

    def create_index(self, model: str, dims: int) -> IndexInfo: ...

    def write(self, records: Sequence[MemoryRecord], vectors: Sequence[np.ndarray], events: Sequence[HistoryEvent]) -> None:
        """Insert records with their vectors and history events, all or nothing. Each record's
        vectors are one (dims,) vector, or a (1 + k, dims) array: its own vector, then its k
        passages' (dense search scores the memory by the better of its own and its best passage)."""

    def replace(self, record: MemoryRecord, vector: np.ndarray, event: HistoryEvent) -> None: ...

    def delete(self, user_id: str, ids: Sequence[str], events: Sequence[HistoryEvent],
               rewrite: Sequence[tuple[MemoryRecord, np.ndarray]] = ()) -> int:
        """Delete memories and rewrite others (text, fields, vector) in one transaction."""

    def delete_user(self, user_id: str, at: str) -> int: ...

    def snapshot(self, user_id: str) -> ContextManager[None]:
        """Within the block, this thread's reads about the user see one state of their memories."""

    def reading(self) -> ContextManager["Store"]:
        """The store as one state for a long read (an export), while writers go on."""

    def atomic(self) -> ContextManager[Any]:
        """One write transaction around reads and writes: nothing else writes in between."""

    def get(self, user_id: str | None, memory_id: str) -> MemoryRecord | None: ...

    def get_many(self, user_id: str, ids: Sequence[str]) -> list[MemoryRecord]: ...

    def turn_texts(self, user_id: str, ids: Sequence[str]) -> dict[str, str]:
        """The embedding text of each of `ids` that is a turn (what a re-scoring model reads)."""

    def list(self, user_id: str, limit: int, cursor: str | None, filters: "Filter | None") -> tuple[list[MemoryRecord], str | None]: ...

    def dense_candidates(self, user_id: str, query: np.ndarray, k: int, filters: "Filter | None") -> list[tuple[str, float]]: ...

    def lexical_candidates(self, user_id: str, terms: Sequence[str], k: int, filters: "Filter | None") -> list[tuple[str, float]]: ...

    def document_frequencies(self, user_id: str, terms: Sequence[str]) -> tuple[dict[str, int], int]: ...

    def substring_matches(self, user_id: str, needles: Sequence[str], k: int, filters: "Filter | None") -> list[tuple[str, str]]: ...

    def mentioning(self, user_id: str, ids: Sequence[str], names: Sequence[str]) -> set[str]: ...

    def speakers_of(self, user_id: str, ids: Sequence[str]) -> dict[str, str]: ...

    def speakers(self, user_id: str) -> list[str]: ...

    def users(self) -> list[str]: ...

    def superseded(self, user_id: str, ids: Sequence[str]) -> set[str]:
        """Those of `ids` that a newer memory superseded."""

    def dated(self, user_id: str, ids: Sequence[str]) -> set[str]:
        """Those of `ids` that mention a time which ingestion resolved to a date."""

    def turns_around(self, user_id: str, ids: Sequence[str], reach: int) -> dict[str, list[tuple[str, int]]]:
        """For each turn id: the turns at most `reach` before or after it in its session, with their distance."""

    def session_ids(self, user_id: str, ids: Sequence[str]) -> dict[str, str]: ...

    def vectors(self, user_id: str, ids: Sequence[str]) -> np.ndarray: ...

    def history(self, user_id: str | None, memory_id: str) -> list[HistoryEvent]: ...

    def stats(self) -> StoreStats: ...

    def close(self) -> None: ...

    # -- export and import (memlane.transfer) --

    def export_users(self) -> list[str]:
        """Every user id with memories, expired memories or history, sorted."""

    def stored_vectors(self, user_id: str, ids: Sequence[str]) -> dict[str, np.ndarray]:
        """Each memory's vectors in the active index as written: (1 + k, dims), own then passages'."""

    def history_of(self, user_id: str, ids: Sequence[str]) -> dict[str, list[HistoryEvent]]: ...

    def orphan_history(self, user_id: str, limit: int, cursor: str | None) -> tuple[list[HistoryEvent], str | None]:
        """One page of history events of the user's memories no longer stored (deleted, purged)."""

    def node_rows(self) -> list[tuple[str, int, str, str, str | None]]:
        """Every node definition ever made: (name, version, spec JSON, defined_at, removed_at)."""

    def existing_ids(self, ids: Sequence[str]) -> set[str]:
        """Those of `ids` that any user holds, as a memory or an expired one."""

    def expired(self, user_id: str) -> list[tuple[MemoryRecord, str, str]]:
        """(record, expired_at, rule) of a user's expired memories."""

    def write_nodes(self, rows: Sequence[tuple[str, int, str, str, str | None]]) -> int: ...

    def write_expired(self, rows: Sequence[tuple[MemoryRecord, str, str]]) -> None: ...

    def write_history(self, user_id: str, events: Sequence[HistoryEvent]) -> None:
        """Append history events as they were, whether or not their memories exist."""
