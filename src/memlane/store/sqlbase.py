"""What the SQLite and PostgreSQL stores do with the same SQL, written once: service records,
the node registry, history, export and import, fetches by id, users and stats, and the writes
whose row work is a backend's own (merge, rewrite, delete).

SQL here is written with `?` placeholders; a backend names its own in `_mark`. A backend gives:
`_query(sql, params)` (rows of a read), `_transaction()` (a write transaction, yielding a
connection whose `execute(sql, params)` returns a cursor with fetchone, fetchall and rowcount),
`_row` (its memories' insertion-order column), `_chunk` (ids bound in one query), `where` (the
store, for messages), `_rows_by_ids`, `_index_table_sql`, `_stored_bytes`, and for the shared
writes `_delete_rows`, `_rewrite` and `_touch`. Where its SQL differs only in how a list is
bound or a text sorts, it overrides `_in` or `_collate`.
"""

from __future__ import annotations

import json
import uuid
from typing import Any, ContextManager, Sequence

import numpy as np

from memlane.errors import StoreError
from memlane.records import HistoryEvent, MemoryRecord
from memlane.store.base import IndexInfo, StoreStats
from memlane.store.codec import COLUMNS, record_from_dict, row_to_record
from memlane.store.sql import utc_now


class SQLStatements:
    """The methods both SQL stores answer with the same statements (see the module's docstring)."""

    where: str  # the store, as messages name it
    _row: str  # memories' insertion-order column: SQLite's "rowid", PostgreSQL's "seq"
    _chunk: int  # ids bound in one query
    _mark = "?"  # the driver's placeholder
    _collate = ""  # what makes a text column sort in byte order, as SQLite's do

    # -- the dialect ------------------------------------------------------------------------

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        raise NotImplementedError

    def _transaction(self) -> ContextManager[Any]:
        raise NotImplementedError

    def _sql(self, sql: str) -> str:
        """`sql`, written with `?`, in the driver's placeholders."""
        return sql if self._mark == "?" else sql.replace("?", self._mark)

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        return self._query(self._sql(sql), params)

    def _exec(self, conn: Any, sql: str, params: Sequence[Any] = ()) -> Any:
        """One statement in the caller's transaction; its cursor."""
        return conn.execute(self._sql(sql), params)

    def _exec_many(self, conn: Any, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """One statement for each of `rows`, in the caller's transaction."""
        if rows:
            cursor = conn.cursor()
            try:
                cursor.executemany(self._sql(sql), rows)
            finally:
                cursor.close()

    def _in(self, column: str, values: Sequence[Any]) -> tuple[str, tuple]:
        """`column` is one of `values`: the condition and its parameters."""
        return f"{column} IN ({', '.join('?' * len(values))})", tuple(values)

    def _chunks(self, ids: Sequence[str]) -> list[list[str]]:
        ids = list(ids)
        return [ids[start:start + self._chunk] for start in range(0, len(ids), self._chunk)]

    # -- vector indexes -----------------------------------------------------------------------

    def active_index(self) -> IndexInfo | None:
        rows = self._read("SELECT name, model, dims FROM vector_indexes WHERE state = 'active'")
        return IndexInfo(*rows[0]) if rows else None

    def building_index(self, model: str, dims: int) -> IndexInfo | None:
        """An unfinished index for this model (left by an interrupted reindex), to resume."""
        rows = self._read("SELECT name, model, dims FROM vector_indexes "
                          "WHERE state = 'building' AND model = ? AND dims = ?", (model, dims))
        return IndexInfo(*rows[0]) if rows else None

    def create_index(self, model: str, dims: int, *, active: bool = False) -> IndexInfo:
        name = "vectors_" + uuid.uuid4().hex[:12]
        with self._transaction() as conn:
            if active and self.active_index() is not None:
                raise StoreError("this store already has an active vector index")
            conn.execute(self._index_table_sql(name, dims))
            self._exec(conn, "INSERT INTO vector_indexes VALUES (?, ?, ?, ?)",
                       (name, model, dims, "active" if active else "building"))
        return IndexInfo(name, model, dims)

    def _index_table_sql(self, name: str, dims: int) -> str:
        """The backend's DDL for the tables of a new vector index."""
        raise NotImplementedError

    def _require_index(self) -> IndexInfo:
        index = self.active_index()
        if index is None:
            raise self._no_index()
        return index

    def _no_index(self) -> StoreError:
        return StoreError(f"store {self.where} has no vector index yet; add memories first")

    # -- writes -------------------------------------------------------------------------------

    def merge(self, keep: MemoryRecord, remove_ids: Sequence[str], events: Sequence[HistoryEvent]) -> None:
        """Consolidation in one transaction: rewrite the kept memory's fields, delete the merged ones."""
        with self._transaction() as conn:
            self._exec(conn, "UPDATE memories SET metadata = ? WHERE id = ? AND user_id = ?",
                       (json.dumps(keep.metadata, ensure_ascii=False), keep.id, keep.user_id))
            self._touch(conn, [keep.user_id])
            self._delete_rows(conn, keep.user_id, remove_ids)
            self._write_events(conn, events, user_id=keep.user_id)

    def replace(self, record: MemoryRecord, vector: np.ndarray, event: HistoryEvent) -> None:
        self.replace_many([record], [vector], [event])

    def replace_many(self, records: Sequence[MemoryRecord], vectors: Sequence[np.ndarray],
                     events: Sequence[HistoryEvent]) -> None:
        """Rewrite existing records (text, embedded text, fields) and their vectors in one transaction."""
        index = self._require_index()
        with self._transaction() as conn:
            for record, vector in zip(records, vectors):
                row = self._exec(conn, f"SELECT {self._row} FROM memories WHERE id = ? AND user_id = ?",
                                 (record.id, record.user_id)).fetchone()
                if row is None:
                    raise StoreError(f"memory {record.id} vanished before its update")
                self._rewrite(conn, index, row[0], record, vector)
            self._write_events(conn, events, owners={r.id: r.user_id for r in records})

    def delete(self, user_id: str, ids: Sequence[str], events: Sequence[HistoryEvent],
               rewrite: Sequence[tuple[MemoryRecord, np.ndarray]] = ()) -> int:
        """Delete memories and, in the same transaction, rewrite others (a session whose turn left)."""
        index = self.active_index()
        named = set(ids) | {record.id for record, _ in rewrite}
        stray = sorted({e.memory_id for e in events} - named)
        if stray:
            raise StoreError(f"history events for memories this delete does not touch: {stray[:3]}")
        with self._transaction() as conn:
            deleted = self._delete_rows(conn, user_id, ids)
            for record, vector in rewrite:
                row = self._exec(conn, f"SELECT {self._row} FROM memories WHERE id = ? AND user_id = ?",
                                 (record.id, user_id)).fetchone()
                if row is None or index is None:
                    continue
                self._rewrite(conn, index, row[0], record, vector)
            self._write_events(conn, events, user_id=user_id)
        return len(deleted)

    def _delete_rows(self, conn: Any, user_id: str, ids: Sequence[str]) -> list[tuple[int, str]]:
        """Delete the user's memories among `ids` with all that hangs on them (vectors, terms);
        (row, id) of each deleted."""
        raise NotImplementedError

    def _rewrite(self, conn: Any, index: IndexInfo, row: int, record: MemoryRecord, vector: np.ndarray) -> None:
        """Rewrite the memory at `row`: its fields, text and vector."""
        raise NotImplementedError

    def _touch(self, conn: Any, users: Sequence[str]) -> None:
        """Note that this transaction changes the memories of `users` (for cached views)."""
        raise NotImplementedError

    def _write_events(self, conn: Any, events: Sequence[HistoryEvent], user_id: str | None = None,
                      owners: dict[str, str] | None = None) -> None:
        """History rows for `events`, each owned by `user_id`, else by its memory's user in
        `owners`, else by the user whose memory it is now. Never by an older history row: an id
        seen before (an import keeps ids) may have been another user's."""
        owners = dict(owners or {})
        rows = []
        for e in events:
            owner = user_id or owners.get(e.memory_id)
            if owner is None:
                found = self._exec(conn, "SELECT user_id FROM memories WHERE id = ?", (e.memory_id,)).fetchone()
                if found is None:
                    raise StoreError(f"history event for unknown memory {e.memory_id}")
                owner = owners[e.memory_id] = found[0]
            rows.append((e.memory_id, owner, e.event, e.old_text, e.new_text, e.at))
        self._exec_many(conn, "INSERT INTO history (memory_id, user_id, event, old_text, new_text, at) "
                              "VALUES (?, ?, ?, ?, ?, ?)", rows)

    # -- reads --------------------------------------------------------------------------------

    def get(self, user_id: str | None, memory_id: str) -> MemoryRecord | None:
        if user_id is None:
            rows = self._read(f"SELECT {COLUMNS} FROM memories WHERE id = ?", (memory_id,))
        else:
            rows = self._read(f"SELECT {COLUMNS} FROM memories WHERE id = ? AND user_id = ?", (memory_id, user_id))
        return row_to_record(rows[0]) if rows else None

    def get_many(self, user_id: str, ids: Sequence[str]) -> list[MemoryRecord]:
        """Records in the order of `ids`; ids of other users or unknown ids are skipped."""
        ids = list(ids)
        found = {r[0]: row_to_record(r) for r in self._rows_by_ids(COLUMNS, user_id, ids)}
        return [found[i] for i in ids if i in found]

    def turn_texts(self, user_id: str, ids: Sequence[str]) -> dict[str, str]:
        ids = list(ids)
        found = dict(self._rows_by_ids("id, embed_text", user_id, ids, "node_type = 'turn'"))
        return {mid: found[mid] for mid in ids if mid in found}

    def _rows_by_ids(self, columns: str, user_id: str, ids: list[str], condition: str = "TRUE") -> list[tuple]:
        """`columns` of the user's memories among `ids` that meet `condition`."""
        raise NotImplementedError

    def users(self) -> list[str]:
        """Every user id with at least one memory, sorted."""
        return [r[0] for r in self._read("SELECT DISTINCT user_id FROM memories ORDER BY user_id")]

    def history(self, user_id: str | None, memory_id: str) -> list[HistoryEvent]:
        sql = "SELECT memory_id, event, old_text, new_text, at FROM history WHERE memory_id = ?"
        params: tuple = (memory_id,)
        if user_id is not None:
            sql += " AND user_id = ?"
            params += (user_id,)
        return [HistoryEvent(*r) for r in self._read(sql + " ORDER BY seq", params)]

    def recent_history(self, limit: int, users: Sequence[str] | None = None) -> list[tuple[str, str, str, str]]:
        """The newest history events, newest first, as (user_id, memory_id, event, at): of `users`
        only when given. Texts are left out: a feed of what changed, not of what was said."""
        sql = "SELECT user_id, memory_id, event, at FROM history"
        params: tuple = ()
        if users is not None:
            if not users:
                return []
            condition, params = self._in("user_id", list(users))
            sql += " WHERE " + condition
        return [tuple(r) for r in self._read(sql + " ORDER BY seq DESC LIMIT ?", (*params, int(limit)))]

    def stats(self) -> StoreStats:
        by_node = dict(self._read("SELECT node_type, count(*) FROM memories GROUP BY node_type"))
        by_category = dict(self._read("SELECT category, count(*) FROM memories GROUP BY category"))
        users = self._read("SELECT count(DISTINCT user_id) FROM memories")[0][0]
        return StoreStats(sum(by_node.values()), users, by_node, by_category, self.active_index(),
                          self._stored_bytes())

    def _stored_bytes(self) -> int:
        """What the store takes on disk."""
        raise NotImplementedError

    # -- service records (API keys, jobs) --------------------------------------------------------

    def put_service_record(self, kind: str, record_id: str, body: dict[str, Any], *,
                           create_only: bool = False) -> bool:
        now = utc_now()
        text = json.dumps(body, sort_keys=True)
        with self._transaction() as conn:
            if create_only:
                return self._exec(conn, "INSERT INTO service_records VALUES (?, ?, ?, ?, ?) "
                                        "ON CONFLICT (kind, id) DO NOTHING",
                                  (kind, record_id, text, now, now)).rowcount == 1
            self._exec(conn, "INSERT INTO service_records VALUES (?, ?, ?, ?, ?) ON CONFLICT (kind, id) DO UPDATE "
                             "SET body = excluded.body, updated_at = excluded.updated_at",
                       (kind, record_id, text, now, now))
        return True

    def service_record(self, kind: str, record_id: str) -> dict[str, Any] | None:
        rows = self._service_rows("SELECT body FROM service_records WHERE kind = ? AND id = ?", (kind, record_id))
        return json.loads(rows[0][0]) if rows else None

    def service_records(self, kind: str) -> list[dict[str, Any]]:
        rows = self._service_rows("SELECT body FROM service_records WHERE kind = ? ORDER BY created_at, id", (kind,))
        return [json.loads(r[0]) for r in rows]

    def delete_service_record(self, kind: str, record_id: str) -> bool:
        with self._transaction() as conn:
            return self._exec(conn, "DELETE FROM service_records WHERE kind = ? AND id = ?",
                              (kind, record_id)).rowcount == 1

    def _service_rows(self, sql: str, params: tuple) -> list[tuple]:
        """A read of service_records (a backend whose older stores may lack the table overrides it)."""
        return self._read(sql, params)

    # -- memory nodes ----------------------------------------------------------------------------

    def node_definitions(self) -> list[tuple[str, int, str]]:
        """(name, version, spec JSON) of the latest version of every node not removed."""
        return [tuple(r) for r in self._read(
            "SELECT n.name, n.version, n.spec FROM nodes n WHERE n.removed_at IS NULL AND n.version = "
            "(SELECT max(version) FROM nodes WHERE name = n.name) ORDER BY n.name")]

    def define_node(self, name: str, spec: str, at: str) -> tuple[int, str | None]:
        """Record a node definition; returns (its version, the previous version's spec or None).
        An unchanged definition keeps its version."""
        with self._transaction() as conn:
            row = self._exec(conn, "SELECT version, spec, removed_at FROM nodes WHERE name = ? "
                                   "ORDER BY version DESC LIMIT 1", (name,)).fetchone()
            if row is not None and row[1] == spec and row[2] is None:
                return row[0], row[1]
            version = (row[0] + 1) if row else 1
            self._exec(conn, "INSERT INTO nodes (name, version, spec, defined_at) VALUES (?, ?, ?, ?)",
                       (name, version, spec, at))
        return version, (row[1] if row is not None and row[2] is None else None)

    def nodes_ever_defined(self) -> bool:
        return bool(self._read("SELECT 1 FROM nodes LIMIT 1"))

    def remove_node(self, name: str, at: str) -> bool:
        with self._transaction() as conn:
            return self._exec(conn, "UPDATE nodes SET removed_at = ? WHERE name = ? AND removed_at IS NULL",
                              (at, name)).rowcount > 0

    def records_of_node(self, node_type: str) -> list[MemoryRecord]:
        """Every memory (all users) a node produced: for re-embedding after its template changed."""
        return [row_to_record(r) for r in self._read(
            f"SELECT {COLUMNS} FROM memories WHERE node_type = ? ORDER BY {self._row}", (node_type,))]

    def current_facts(self, user_id: str, node_type: str, keys: Sequence[str]) -> list[MemoryRecord]:
        """The not-superseded memories of a node whose fact key is one of `keys`."""
        if not keys:
            return []
        condition, params = self._in("fact_key", keys)
        return [row_to_record(r) for r in self._read(
            f"SELECT {COLUMNS} FROM memories WHERE user_id = ? AND node_type = ? AND superseded_by IS NULL "
            f"AND {condition} ORDER BY {self._row}", (user_id, node_type, *params))]

    # -- retention -------------------------------------------------------------------------------

    def expired(self, user_id: str) -> list[tuple[MemoryRecord, str, str]]:
        """(record, expired_at, rule) of a user's expired memories, oldest expiry first."""
        rows = self._read(f"SELECT record, expired_at, rule FROM expired WHERE user_id = ? "
                          f"ORDER BY expired_at, id{self._collate}", (user_id,))
        return [(record_from_dict(json.loads(r[0])), r[1], r[2]) for r in rows]

    # -- export and import --------------------------------------------------------------------

    def export_users(self) -> list[str]:
        """Every user id with memories, expired memories or history (deleted memories), sorted."""
        return [r[0] for r in self._read(
            "SELECT user_id FROM memories UNION SELECT user_id FROM expired UNION SELECT user_id FROM history "
            "ORDER BY 1")]

    def history_of(self, user_id: str, ids: Sequence[str]) -> dict[str, list[HistoryEvent]]:
        """The history of each of `ids` (the user's), oldest first; ids with none are left out."""
        out: dict[str, list[HistoryEvent]] = {}
        for chunk in self._chunks(ids):
            condition, params = self._in("memory_id", chunk)
            for row in self._read("SELECT memory_id, event, old_text, new_text, at FROM history "
                                  f"WHERE user_id = ? AND {condition} ORDER BY seq", (user_id, *params)):
                out.setdefault(row[0], []).append(HistoryEvent(*row))
        return out

    def orphan_history(self, user_id: str, limit: int, cursor: str | None) -> tuple[list[HistoryEvent], str | None]:
        """One page of the user's history events of memories the user no longer holds (deleted or
        purged, neither current nor expired), oldest first, and the cursor of the next page."""
        rows = self._read(
            "SELECT h.seq, h.memory_id, h.event, h.old_text, h.new_text, h.at FROM history h "
            "WHERE h.user_id = ? AND h.seq > ? "
            "AND NOT EXISTS (SELECT 1 FROM memories m WHERE m.user_id = h.user_id AND m.id = h.memory_id) "
            "AND NOT EXISTS (SELECT 1 FROM expired x WHERE x.user_id = h.user_id AND x.id = h.memory_id) "
            "ORDER BY h.seq LIMIT ?",
            (user_id, int(cursor) if cursor else 0, limit + 1))
        page = rows[:limit]
        return [HistoryEvent(*r[1:]) for r in page], (str(page[-1][0]) if len(rows) > limit else None)

    def node_rows(self) -> list[tuple[str, int, str, str, str | None]]:
        """Every node definition ever made: (name, version, spec JSON, defined_at, removed_at)."""
        return [tuple(r) for r in self._read(
            f"SELECT name, version, spec, defined_at, removed_at FROM nodes ORDER BY name{self._collate}, version")]

    def existing_ids(self, ids: Sequence[str]) -> set[str]:
        """Those of `ids` held by any user, as a memory or an expired memory."""
        found: set[str] = set()
        for chunk in self._chunks(ids):
            condition, params = self._in("id", chunk)
            found.update(r[0] for r in self._read(
                f"SELECT id FROM memories WHERE {condition} UNION SELECT id FROM expired WHERE {condition}",
                (*params, *params)))
        return found

    def write_nodes(self, rows: Sequence[tuple[str, int, str, str, str | None]]) -> int:
        """Insert node definitions as they were (rows of `node_rows`); one this store already has,
        identical, is skipped, and a different one under the same name and version is an error.
        Returns how many were inserted."""
        written = 0
        with self._transaction() as conn:
            for name, version, spec, defined_at, removed_at in rows:
                have = self._exec(conn, "SELECT spec FROM nodes WHERE name = ? AND version = ?",
                                  (name, version)).fetchone()
                if have is not None:
                    if have[0] != spec:
                        raise StoreError(f"node {name} version {version} is already defined differently in {self.where}")
                    continue
                self._exec(conn, "INSERT INTO nodes (name, version, spec, defined_at, removed_at) "
                                 "VALUES (?, ?, ?, ?, ?)", (name, version, spec, defined_at, removed_at))
                written += 1
        return written

    def write_expired(self, rows: Sequence[tuple[MemoryRecord, str, str]]) -> None:
        """Insert expired memories as they were (record, expired_at, rule), with no vector: a
        restore embeds them again."""
        with self._transaction() as conn:
            self._exec_many(conn, "INSERT INTO expired (id, user_id, record, index_name, vec, expired_at, rule) "
                                  "VALUES (?, ?, ?, NULL, NULL, ?, ?)",
                            [(r.id, r.user_id, json.dumps(r.to_dict(), ensure_ascii=False), at, rule)
                             for r, at, rule in rows])

    def write_history(self, user_id: str, events: Sequence[HistoryEvent]) -> None:
        """Append history events of the user's memories as they were (no memory need exist)."""
        with self._transaction() as conn:
            self._write_events(conn, events, user_id=user_id)
