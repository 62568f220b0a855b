"""What every store backend offers: the `Store` protocol and the plain types it returns."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, ContextManager, Protocol, Sequence

import numpy as np

from memlane.errors import StoreError
from memlane.records import HistoryEvent, MemoryRecord

if TYPE_CHECKING:
    from memlane.filters import Filter
    from memlane.store.view import UserView


@dataclass(frozen=True)
class IndexInfo:
    """The embedding model a vector index was built with."""

    name: str
    model: str
    dims: int


def check_dims(vector: np.ndarray, index: IndexInfo, memory: object) -> None:
    """A memory's vectors fit the index: one (dims,) vector, or (1 + k, dims) with passages."""
    shape = np.shape(vector)
    if not (shape == (index.dims,) or (len(shape) == 2 and shape[0] >= 1 and shape[1] == index.dims)):
        raise StoreError(f"memory {memory}: vectors of shape {shape} do not fit index {index.name} "
                         f"({index.model}, {index.dims} dims)")


@dataclass(frozen=True)
class StoreStats:
    memories: int
    users: int
    by_node_type: dict[str, int]
    by_category: dict[str, int]
    index: IndexInfo | None
    file_bytes: int


class Store(Protocol):
    """The seam between memlane and a backend: batched writes with their history, rewrites,
    deletes, fetches by id, a filtered scan with a cursor, history, users and stats, plus the
    candidate sources retrieval fuses (dense, lexical with the user's own BM25 statistics,
    document frequencies, verbatim lookup) and the user's search view. Everything a search
    derives from them (neighbours, speakers, mentions, context) is computed above the seam, in
    `memlane.retrieve.context`. What only some backends do is a capability (see `CAPABILITIES`)."""

    capabilities: frozenset[str]

    def active_index(self) -> IndexInfo | None: ...

    def create_index(self, model: str, dims: int, *, active: bool = False) -> IndexInfo: ...

    # -- writes: each call one transaction, all or nothing --

    def write(self, records: Sequence[MemoryRecord], vectors: Sequence[np.ndarray], events: Sequence[HistoryEvent]) -> None:
        """Insert records with their vectors and history events, all or nothing. Each record's
        vectors are one (dims,) vector, or a (1 + k, dims) array: its own vector, then its k
        passages' (dense search scores the memory by the better of its own and its best passage)."""

    def replace(self, record: MemoryRecord, vector: np.ndarray, event: HistoryEvent) -> None: ...

    def replace_many(self, records: Sequence[MemoryRecord], vectors: Sequence[np.ndarray],
                     events: Sequence[HistoryEvent]) -> None: ...

    def merge(self, keep: MemoryRecord, remove_ids: Sequence[str], events: Sequence[HistoryEvent]) -> None:
        """Consolidation: rewrite the kept memory's fields and delete the merged ones."""

    def delete(self, user_id: str, ids: Sequence[str], events: Sequence[HistoryEvent],
               rewrite: Sequence[tuple[MemoryRecord, np.ndarray]] = ()) -> int:
        """Delete memories and rewrite others (text, fields, vector) in one transaction."""

    def delete_user(self, user_id: str, at: str) -> int: ...

    def clear(self) -> None:
        """Remove every memory, vector and history event (the vector index keeps its model)."""

    def atomic(self) -> ContextManager[Any]:
        """One write transaction around reads and writes: nothing else writes in between."""

    # -- reads --

    def snapshot(self, user_id: str) -> ContextManager[None]:
        """Within the block, this thread's reads about the user see one state of their memories."""

    def reading(self) -> ContextManager["Store"]:
        """The store as one state for a long read (an export), while writers go on."""

    def get(self, user_id: str | None, memory_id: str) -> MemoryRecord | None: ...

    def get_many(self, user_id: str, ids: Sequence[str]) -> list[MemoryRecord]: ...

    def vectors(self, user_id: str, ids: Sequence[str]) -> np.ndarray:
        """Each of `ids`' own vector in the active index, (len(ids), dims); another user's is an error."""

    def turn_texts(self, user_id: str, ids: Sequence[str]) -> dict[str, str]:
        """The embedding text of each of `ids` that is a turn (what a re-scoring model reads)."""

    def list(self, user_id: str, limit: int, cursor: str | None, filters: "Filter | None") -> tuple[list[MemoryRecord], str | None]:
        """One page of the user's memories matching `filters`, in insertion order, and the cursor of the next."""

    def history(self, user_id: str | None, memory_id: str) -> list[HistoryEvent]: ...

    def recent_history(self, limit: int, users: Sequence[str] | None = None) -> list[tuple[str, str, str, str]]:
        """The newest history events (of `users` when given), newest first: (user_id, memory_id, event, at)."""

    def users(self) -> list[str]: ...

    def stats(self) -> StoreStats: ...

    def close(self) -> None: ...

    # -- candidate sources, each for one user, at most k, within a typed filter --

    def dense_candidates(self, user_id: str, query: np.ndarray, k: int, filters: "Filter | None") -> list[tuple[str, float]]:
        """Top k by cosine, best first; a memory scores the better of its own vector and its best passage."""

    def dense_candidates_ahead(self, user_id: str, query: np.ndarray, k: int,
                               filters: "Filter | None") -> Callable[[], list[tuple[str, float]]]:
        """`dense_candidates`, started now and taken by calling what is returned: a backend whose
        reads can run beside the caller's starts them on a worker, in the caller's snapshot."""

    def lexical_candidates(self, user_id: str, terms: Sequence[str], k: int, filters: "Filter | None") -> list[tuple[str, float]]:
        """Top k by BM25 from the user's own term statistics (`memlane.store.bm25`), best first."""

    def document_frequencies(self, user_id: str, terms: Sequence[str]) -> tuple[dict[str, int], int]:
        """How many of the user's memories hold each term, and how many memories the user has."""

    def substring_matches(self, user_id: str, needles: Sequence[str], k: int, filters: "Filter | None") -> list[tuple[str, str]]:
        """(memory id, needle): memories whose id is a needle or whose text contains one, oldest first."""

    def texts_holding(self, user_id: str, ids: Sequence[str], needles: Sequence[str]) -> set[str]:
        """Those of `ids` whose text contains one of `needles`, case-insensitively."""

    def search_view(self, user_id: str) -> "UserView":
        """The user's search columns (ids, kinds, speakers, sessions, turn order, flags) and
        vectors as arrays, in insertion order; pinned within `snapshot`."""

    def search_texts(self, user_id: str) -> list[str]:
        """The user's texts, case-folded, in `search_view` order."""

    def filter_mask(self, user_id: str, filters: "Filter | None") -> np.ndarray | None:
        """Which `search_view` rows `filters` lets through; None when it restricts nothing."""

    def nearest_rows(self, user_id: str, query: np.ndarray, count: int) -> np.ndarray | None:
        """Rows of `search_view` whose vectors are among the `count` nearest to `query` in an
        approximate index (unscored, unfiltered), or None where the user is small enough to be
        scanned exactly. Callers score the rows themselves, exactly."""


# What a backend may offer beyond `Store`, each a protocol below; a store lists its own in
# `capabilities`, and callers ask with `require` before relying on one.
CAPABILITIES = ("reindex", "nodes", "retention", "transfer", "service")


def require(store: Store, capability: str) -> None:
    """Refuse, by name, an operation the store's backend does not offer."""
    from memlane.errors import ConfigError

    if capability not in CAPABILITIES:
        raise ValueError(f"unknown capability {capability!r}; capabilities are {', '.join(CAPABILITIES)}")
    if capability not in getattr(store, "capabilities", frozenset()):
        raise ConfigError(f"the {type(store).__name__} backend does not support {capability}; "
                          f"it offers {', '.join(sorted(store.capabilities)) or 'no optional capability'}")


def scan(store: Store, user_id: str, filters: "Filter | None" = None, *, page: int = 1000) -> list[MemoryRecord]:
    """Every memory of a user matching `filters`, in insertion order (all pages of `Store.list`)."""
    from memlane.filters import Filter

    filters = Filter.parse(filters)
    out: list[MemoryRecord] = []
    cursor = None
    while True:
        rows, cursor = store.list(user_id, page, cursor, filters)
        out += rows
        if cursor is None:
            return out


class Reindexing(Protocol):
    """Capability "reindex": build a second vector index beside the live one, then swap it in."""

    def building_index(self, model: str, dims: int) -> IndexInfo | None:
        """An unfinished index for this model (left by an interrupted reindex), to resume."""

    def missing_from_index(self, index: IndexInfo, limit: int, *, sessions: bool) -> list[tuple[int, MemoryRecord]]:
        """(row, record) of memories with no vector in `index` yet."""

    def index_vectors(self, index: IndexInfo, memory_ids: Sequence[str]) -> np.ndarray: ...

    def put_index_vectors(self, index: IndexInfo, batch: Sequence[tuple[int, MemoryRecord]],
                          vectors: Sequence[np.ndarray]) -> int:
        """Store vectors for a `missing_from_index` batch, only where the memory is unchanged since."""

    def activate_index(self, index: IndexInfo) -> None:
        """Swap `index` in, in one transaction; refused while any memory lacks a vector in it."""


class NodeRegistry(Protocol):
    """Capability "nodes": versioned memory-node definitions and the facts nodes keep current."""

    def node_definitions(self) -> list[tuple[str, int, str]]: ...

    def define_node(self, name: str, spec: str, at: str) -> tuple[int, str | None]: ...

    def nodes_ever_defined(self) -> bool: ...

    def remove_node(self, name: str, at: str) -> bool: ...

    def records_of_node(self, node_type: str) -> list[MemoryRecord]: ...

    def current_facts(self, user_id: str, node_type: str, keys: Sequence[str]) -> list[MemoryRecord]: ...

    def citing(self, user_id: str, memory_id: str) -> list[MemoryRecord]: ...


class Retention(Protocol):
    """Capability "retention": expire memories out of search, restore them, purge them for good."""

    def expire(self, user_id: str, ids: Sequence[str], at: str, rule: str) -> int: ...

    def expired(self, user_id: str) -> list[tuple[MemoryRecord, str, str]]:
        """(record, expired_at, rule) of a user's expired memories."""

    def restore(self, user_id: str, ids: Sequence[str], at: str, vectors: dict[str, np.ndarray]) -> int: ...

    def purge(self, user_id: str, at: str) -> int: ...


class Transfer(Protocol):
    """Capability "transfer": what `memlane.transfer` reads and writes to move a store as it is."""

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

    def write_nodes(self, rows: Sequence[tuple[str, int, str, str, str | None]]) -> int: ...

    def write_expired(self, rows: Sequence[tuple[MemoryRecord, str, str]]) -> None: ...

    def write_history(self, user_id: str, events: Sequence[HistoryEvent]) -> None:
        """Append history events as they were, whether or not their memories exist."""


class ServiceRecords(Protocol):
    """Capability "service": small JSON documents a server keeps beside the memories (API keys,
    jobs), by kind and id, so every server process on the store sees the same ones."""

    def put_service_record(self, kind: str, record_id: str, body: dict[str, Any], *,
                           create_only: bool = False) -> bool:
        """Write a record; with `create_only`, only if none has this id (False then, atomically)."""

    def service_record(self, kind: str, record_id: str) -> dict[str, Any] | None: ...

    def service_records(self, kind: str) -> list[dict[str, Any]]:
        """Every record of a kind, oldest first."""

    def delete_service_record(self, kind: str, record_id: str) -> bool: ...
