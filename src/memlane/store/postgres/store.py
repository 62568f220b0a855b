"""memlane's server store: PostgreSQL with pgvector, shared by many processes.

Records live in `memories`, keyed by (user_id, seq), `seq` an insertion-order identity never
reused; each vector index has tables of its own (see `vectors`). Per-user BM25 reads the user's
own postings (term blocks: a term's memories, counts and offsets, tokenized as SQLite's FTS5
tokenizes; see `lexicon`) and scores them with `memlane.store.bm25`, so a user's lexical scores
never move with what other users stored and rank as the SQLite store's. Neighbour context,
names, neighbours and the dense candidates of most users are answered from a `UserView` (the
user's memories as arrays): the same arrays, and so the same answers, as the SQLite store's. A
user with many memories gets dense candidates from pgvector's HNSW index instead, re-scored
exactly (see `_nearest_rows`), and its vectors and texts are read per candidate instead of held
(a lean view).

A view is cached per user generation: every write moves the generation of each user whose
memories it changes, in its transaction, so any process's cached views of those users (and only
those) are read again. Every write is one transaction that first takes the store's advisory lock
(writers queue, as SQLite's BEGIN IMMEDIATE makes them). psycopg's errors never leave this
module: they become `StoreError` (or `InputError` where the data is at fault).
"""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import partial
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np
import psycopg
from psycopg import sql as pgsql
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import ConnectionPool

from memlane.errors import InputError, StoreError
from memlane.filters import Filter
from memlane.records import HistoryEvent, MemoryRecord
from memlane.store.base import CAPABILITIES, IndexInfo, check_dims
from memlane.store.codec import (
    COLUMNS,
    record_from_dict,
    record_params,
    row_to_record,
)
from memlane.store.postgres import lexicon
from memlane.store.postgres.lexicon import remove_postings, write_postings
from memlane.store.postgres.schema import migrate
from memlane.store.postgres.vectors import (
    drop_sql,
    hnsw_build_memory_mb,
    hnsw_sql,
    index_table_sql,
    literal,
    nearest_sql,
    search_settings_sql,
    write_vectors,
)
from memlane.store.sql import filter_sql
from memlane.store.tokens import query_tokens, tokenize_many
from memlane.store.sqlbase import SQLStatements
from memlane.store.view import DENSE_EXACT_BELOW, LeanVectors, UserView, ViewReads, held_filter, held_filter_mask

_MAX_VIEWS = 64  # users whose search arrays stay in memory
_MAX_CACHED_TERMS = 512  # postings kept per view
_AHEAD = ThreadPoolExecutor(max_workers=4, thread_name_prefix="memlane-dense")  # see `dense_candidates_ahead`
_CHUNK = 1_000  # ids bound in one query
_MAX_EF_SEARCH = 1_000  # pgvector's upper bound for hnsw.ef_search
_COLUMN_NAMES = [c.strip() for c in COLUMNS.split(",")]
_PLACEHOLDERS = ", ".join(["%s"] * len(_COLUMN_NAMES))
_ASSIGNMENTS = ", ".join(f"{c} = %s" for c in _COLUMN_NAMES)
_M_COLUMNS = ", ".join("m." + c for c in _COLUMN_NAMES)


class _IndexSwapped(Exception):
    """A vector index table read by a pinned view was dropped by a reindex since."""


def _error(action: str, where: str, exc: psycopg.Error) -> Exception:
    """psycopg's error as memlane's: data PostgreSQL cannot hold is the input's fault."""
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if isinstance(exc, psycopg.DataError):
        return InputError(f"{action} {where} failed: {message}", fix="remove NUL characters and check the values")
    if isinstance(exc, psycopg.OperationalError):
        message += " (is the PostgreSQL server running and reachable? check the store URL)"
    return StoreError(f"{action} {where} failed: {message}")


class PostgresStore(SQLStatements, ViewReads):
    """A memlane store in one schema of a PostgreSQL database with pgvector. Thread-safe; any
    number of processes may share it."""

    capabilities = frozenset(CAPABILITIES)
    _row = "seq"
    _chunk = _CHUNK
    _mark = "%s"
    _collate = ' COLLATE "C"'  # ids and node names sort in byte order, as SQLite sorts them

    def __init__(self, url: str, *, create: bool = True, pool_size: int = 8,
                 dense_exact_below: int = DENSE_EXACT_BELOW) -> None:
        """Open the store at `url` (a libpq URL), creating its tables when `create` (else a
        database without a store is an error). Users with `dense_exact_below` memories or more
        get dense candidates from the HNSW index (see `dense_candidates`)."""
        self.url = url
        self.dense_exact_below = dense_exact_below
        self.where = self._describe(url)
        try:
            self._pool = ConnectionPool(url, min_size=1, max_size=pool_size, open=True, timeout=30,
                                        kwargs={"autocommit": True})
        except psycopg.Error as exc:
            raise _error("connecting to", self.where, exc) from None
        try:
            with self._pool.connection() as conn:
                migrate(conn, create=create, where=self.where)
        except psycopg.Error as exc:
            self._pool.close()
            raise _error("opening the store in", self.where, exc) from None
        except BaseException:
            self._pool.close()
            raise
        self._lock = threading.RLock()  # guards the caches
        self._local = threading.local()  # per thread: the connection of an open transaction, pins
        self._views: dict[str, UserView] = {}
        self._hnsw_built: set[str] = set()  # vector indexes whose HNSW index this process saw built

    @staticmethod
    def _describe(url: str) -> str:
        """The URL without its password, for messages."""
        try:
            info = conninfo_to_dict(url)
        except psycopg.Error:
            return "the PostgreSQL store"
        shown = {k: v for k, v in info.items() if k != "password"}
        return "PostgreSQL " + " ".join(f"{k}={v}" for k, v in sorted(shown.items()))

    # -- plumbing ---------------------------------------------------------------------------

    @contextmanager
    def _connection(self) -> Iterator[psycopg.Connection]:
        """This thread's open transaction's connection, else one from the pool."""
        held = getattr(self._local, "conn", None)
        if held is not None:
            yield held
            return
        with self._pool.connection() as conn:
            yield conn

    @contextmanager
    def atomic(self) -> Iterator[psycopg.Connection]:
        """One write transaction for everything inside, reads included: the store's advisory lock
        keeps every other writer (thread or process) out until it commits. Nests: an inner block
        joins the outer one, and only the outermost commits."""
        local = self._local
        if getattr(local, "depth", 0):
            if getattr(local, "reading", False):
                raise StoreError("cannot write inside a reading() block; write after it")
            local.depth += 1
            try:
                yield local.conn
            finally:
                local.depth -= 1
            return
        try:
            with self._pool.connection() as conn:
                local.conn, local.depth = conn, 1
                try:
                    with conn.transaction():
                        conn.execute("SELECT pg_advisory_xact_lock(hashtext('memlane-write:' || current_schema()))")
                        yield conn
                finally:
                    local.conn, local.depth = None, 0
        except psycopg.Error as exc:
            raise _error("write to", self.where, exc) from None

    _transaction = atomic

    def _query(self, sql: str, params: Sequence[Any] = (), *, missing_table_ok: bool = False,
               binary: bool = False) -> list[tuple]:
        """Rows of one statement; `binary` for rows of bytea (vectors, term blocks), which come
        back in PostgreSQL's binary format instead of as hex text to decode."""
        try:
            with self._connection() as conn:
                return conn.execute(sql, params, binary=binary).fetchall()
        except psycopg.errors.UndefinedTable:
            if missing_table_ok:
                raise _IndexSwapped() from None
            raise
        except psycopg.Error as exc:
            raise _error("read from", self.where, exc) from None

    def _query_pages(self, sql: str, params: Sequence[Any] = (), size: int = 50_000) -> Iterator[list[tuple]]:
        """The rows of one statement, `size` at a time, as `_query` reads them (a missing table
        is let through: the index was swapped meanwhile)."""
        try:
            with self._connection() as conn:
                cursor = conn.execute(sql, params)
                while rows := cursor.fetchmany(size):
                    yield rows
        except psycopg.errors.UndefinedTable:
            raise
        except psycopg.Error as exc:
            raise _error("read from", self.where, exc) from None

    @staticmethod
    def _in(column: str, values: Sequence[Any]) -> tuple[str, tuple]:
        return f"{column} = ANY(?)", (list(values),)  # one parameter: one plan whatever the length

    @staticmethod
    def _touch(conn: psycopg.Connection, users: Iterable[str]) -> None:
        """Move on the generation of each of `users`, whose memories this transaction changes: every
        process's cached views of them are read again, and other users' views stay valid."""
        users = sorted(set(users))
        if users:
            conn.execute("INSERT INTO user_generation (user_id, generation) SELECT u, 1 FROM unnest(%s::text[]) AS u "
                         "ON CONFLICT (user_id) DO UPDATE SET generation = user_generation.generation + 1", (users,))

    def _index_and_generation(self, user_id: str) -> tuple[IndexInfo, int]:
        """The active index and the user's generation (0 before the user's first write), in one read."""
        rows = self._query("SELECT name, model, dims, COALESCE((SELECT generation FROM user_generation "
                           "WHERE user_id = %s), 0) FROM vector_indexes WHERE state = 'active'", (user_id,))
        if not rows:
            raise self._no_index()
        return IndexInfo(*rows[0][:3]), rows[0][3]

    # -- vector indexes -----------------------------------------------------------------------

    @staticmethod
    def _index_table_sql(name: str, dims: int) -> str:
        return index_table_sql(name, dims)

    def missing_from_index(self, index: IndexInfo, limit: int, *, sessions: bool) -> list[tuple[int, MemoryRecord]]:
        """(seq, record) of memories with no vector in `index` yet: session memories when
        `sessions`, every other kind otherwise."""
        op = "=" if sessions else "<>"
        rows = self._query(
            f"SELECT m.seq, {_M_COLUMNS} FROM memories m "
            f"LEFT JOIN {index.name} v ON v.user_id = m.user_id AND v.seq = m.seq "
            f"WHERE v.seq IS NULL AND m.node_type {op} 'session' ORDER BY m.seq LIMIT %s", (limit,))
        return [(row[0], row_to_record(row[1:])) for row in rows]

    def index_vectors(self, index: IndexInfo, memory_ids: Sequence[str]) -> np.ndarray:
        """Own vectors of `index` for the given memories that have one (any user: maintenance only)."""
        if not memory_ids:
            return np.zeros((0, index.dims), dtype=np.float32)
        rows = self._query(f"SELECT v.vecs FROM memories m JOIN {index.name} v ON v.user_id = m.user_id "
                           "AND v.seq = m.seq WHERE m.id = ANY(%s) ORDER BY m.seq", (list(memory_ids),))
        return np.stack([np.frombuffer(r[0], np.float32)[:index.dims] for r in rows]) if rows else \
            np.zeros((0, index.dims), dtype=np.float32)

    def put_index_vectors(self, index: IndexInfo, batch: Sequence[tuple[int, MemoryRecord]],
                          vectors: Sequence[np.ndarray]) -> int:
        """Store the vectors a reindex computed for `batch` (what `missing_from_index` gave), where
        the row still holds the same memory with the same text; one deleted or rewritten meanwhile
        is skipped (the reindex embeds it again as missing). Returns how many were written."""
        with self._transaction() as conn:
            rows = []
            for (seq, record), vector in zip(batch, vectors):
                row = conn.execute("SELECT id, embed_text FROM memories WHERE user_id = %s AND seq = %s",
                                   (record.user_id, int(seq))).fetchone()
                if row is None or row[0] != record.id or row[1] != record.embed_text:
                    continue
                check_dims(vector, index, record.id)
                rows.append((record.user_id, int(seq), vector))
            self._replace_vectors(conn, index, rows)
            if index == self.active_index():  # the views of the users of an index being built stay valid
                self._touch(conn, (user_id for user_id, _, _ in rows))
        return len(rows)

    @staticmethod
    def _replace_vectors(conn: psycopg.Connection, index: IndexInfo,
                         rows: Sequence[tuple[str, int, np.ndarray]]) -> None:
        """Memories' vectors in `index`, (user_id, seq, vectors), in place of any they had."""
        if rows:
            conn.execute(f"DELETE FROM {index.name} WHERE (user_id, seq) IN "
                         "(SELECT * FROM unnest(%s::text[], %s::bigint[]))",
                         ([r[0] for r in rows], [r[1] for r in rows]))
            write_vectors(conn, index.name, rows)

    def _put_vector(self, conn: psycopg.Connection, index: IndexInfo, user_id: str, seq: int,
                    vector: np.ndarray) -> None:
        """A rewritten memory's new vector in the active index; an index a reindex is building
        forgets the memory's old vector, so the reindex embeds the new text."""
        check_dims(vector, index, seq)
        self._replace_vectors(conn, index, [(user_id, seq, vector)])
        for (name,) in conn.execute("SELECT name FROM vector_indexes WHERE name <> %s", (index.name,)).fetchall():
            conn.execute(f"DELETE FROM {name} WHERE user_id = %s AND seq = %s", (user_id, seq))

    def activate_index(self, index: IndexInfo) -> None:
        """Swap `index` in as the one searches use, in one transaction, and drop the old one.
        Refuses while any memory lacks a vector in `index`, so the swap never loses a memory."""
        with self._transaction() as conn:
            missing = conn.execute(f"SELECT count(*) FROM memories m LEFT JOIN {index.name} v "
                                   "ON v.user_id = m.user_id AND v.seq = m.seq WHERE v.seq IS NULL").fetchone()[0]
            if missing:
                raise StoreError(f"index {index.name} still lacks {missing} vectors; finish embedding before the swap")
            stale = conn.execute("SELECT name FROM vector_indexes WHERE name <> %s "
                                 "AND (state = 'active' OR state = 'building')", (index.name,)).fetchall()
            for (name,) in stale:
                conn.execute(drop_sql(name))
                conn.execute("DELETE FROM vector_indexes WHERE name = %s", (name,))
            conn.execute("UPDATE vector_indexes SET state = 'active' WHERE name = %s", (index.name,))
        with self._lock:
            self._views.clear()

    # -- writes -----------------------------------------------------------------------------

    def _insert(self, conn: psycopg.Connection, index: IndexInfo, records: Sequence[MemoryRecord],
                vectors: Sequence[np.ndarray]) -> None:
        """Insert records with their vectors and postings (in the caller's transaction): one
        pipelined insert of the rows, then one COPY for each of vectors, points and postings."""
        if not records:
            return
        # Ids are unique across users; the key holds (user_id, id) only (Citus requires the user in
        # it), so other users' are checked here: the write lock keeps this check and the insert one.
        taken = conn.execute("SELECT id FROM memories WHERE id = ANY(%s) LIMIT 3", ([r.id for r in records],)).fetchall()
        if taken:
            raise StoreError(f"memory ids already stored in {self.where}: {sorted(r[0] for r in taken)}")
        tokens = tokenize_many([r.embed_text for r in records])
        with conn.cursor() as cur:
            cur.executemany(f"INSERT INTO memories ({COLUMNS}, tokens) VALUES ({_PLACEHOLDERS}, %s) RETURNING seq",
                            [(*record_params(r), len(t)) for r, t in zip(records, tokens)], returning=True)
            seqs = [row[0] for _ in cur.results() for row in cur.fetchall()]
        write_vectors(conn, index.name, [(r.user_id, seq, v) for r, seq, v in zip(records, seqs, vectors)])
        write_postings(conn, ((r.user_id, seq, t) for r, seq, t in zip(records, seqs, tokens)))
        self._touch(conn, (r.user_id for r in records))

    def _rewrite(self, conn: psycopg.Connection, index: IndexInfo, seq: int, record: MemoryRecord,
                 vector: np.ndarray) -> None:
        """Rewrite the user's memory at `seq`: fields, text, postings and vector."""
        check_dims(vector, index, record.id)
        tokens = tokenize_many([record.embed_text])[0]
        old_text = conn.execute("SELECT embed_text FROM memories WHERE user_id = %s AND seq = %s",
                                (record.user_id, seq)).fetchone()
        conn.execute(f"UPDATE memories SET {_ASSIGNMENTS}, tokens = %s WHERE user_id = %s AND seq = %s",
                     (*record_params(record), len(tokens), record.user_id, seq))
        if old_text is not None:
            remove_postings(conn, record.user_id, [(seq, old_text[0])])
        write_postings(conn, [(record.user_id, seq, tokens)])
        self._put_vector(conn, index, record.user_id, seq, vector)
        self._touch(conn, [record.user_id])

    def write(self, records: Sequence[MemoryRecord], vectors: Sequence[np.ndarray], events: Sequence[HistoryEvent],
              amended: Sequence[MemoryRecord] = ()) -> None:
        """Insert records with their vectors (one vector, or its own and its passages') and history
        events, and rewrite the fields of `amended` existing records (text and vector unchanged),
        all or nothing."""
        if len(records) != len(vectors):
            raise StoreError(f"{len(records)} records but {len(vectors)} vectors")
        if not records and not events and not amended:
            return
        index = self._require_index()
        for record, vector in zip(records, vectors):
            check_dims(vector, index, record.id)
        seen: set[str] = set()
        for record in records:
            if record.id in seen:
                raise StoreError(f"memory id {record.id} appears twice in one write")
            seen.add(record.id)
        with self._transaction() as conn:
            self._insert(conn, index, records, vectors)
            for record in amended:
                conn.execute("UPDATE memories SET metadata = %s, valid_from = %s, valid_until = %s, superseded_by = %s "
                             "WHERE id = %s AND user_id = %s",
                             (json.dumps(record.metadata, ensure_ascii=False), record.valid_from, record.valid_until,
                              record.superseded_by, record.id, record.user_id))
            self._touch(conn, (record.user_id for record in amended))
            self._write_events(conn, events, owners={r.id: r.user_id for r in [*records, *amended]})

    def _delete_rows(self, conn: psycopg.Connection, user_id: str, ids: Sequence[str]) -> list[tuple[int, str]]:
        """Delete the user's memories among `ids` (their vectors go with them); (seq, id) of each."""
        rows = conn.execute("DELETE FROM memories WHERE user_id = %s AND id = ANY(%s) RETURNING seq, id, embed_text",
                            (user_id, list(ids))).fetchall()
        if rows:
            remove_postings(conn, user_id, [(seq, text) for seq, _, text in rows])
            self._touch(conn, [user_id])
        return [(seq, mid) for seq, mid, _ in rows]

    def delete_user(self, user_id: str, at: str) -> int:
        """Forget a user entirely: memories, expired ones, vectors, postings and the words in their
        history (which keeps one DELETE event per memory, without text, as the trace of the erasure)."""
        with self._transaction() as conn:
            rows = conn.execute("DELETE FROM memories WHERE user_id = %s RETURNING seq, id", (user_id,)).fetchall()
            rows.sort()
            conn.execute("DELETE FROM term_blocks WHERE user_id = %s", (user_id,))
            conn.execute("DELETE FROM expired WHERE user_id = %s", (user_id,))
            conn.execute("DELETE FROM history WHERE user_id = %s", (user_id,))
            self._touch(conn, [user_id])
            self._write_events(conn, [HistoryEvent(mid, "DELETE", None, "user deleted", at) for _, mid in rows],
                               user_id=user_id)
        return len(rows)

    def clear(self) -> None:
        """Remove every memory, vector and history event (the vector indexes keep their models)."""
        with self._transaction() as conn:
            conn.execute("DELETE FROM term_blocks")
            conn.execute("DELETE FROM memories")
            conn.execute("DELETE FROM expired")
            conn.execute("DELETE FROM history")
            conn.execute("UPDATE user_generation SET generation = generation + 1")  # every cached view is stale
        with self._lock:
            self._views.clear()

    # -- reads ------------------------------------------------------------------------------

    def _rows_by_ids(self, columns: str, user_id: str, ids: list[str], condition: str = "TRUE") -> list[tuple]:
        rows: list[tuple] = []
        for chunk in self._chunks(ids):
            rows += self._query(f"SELECT {columns} FROM memories WHERE user_id = %s AND {condition} AND id = ANY(%s)",
                                (user_id, chunk))
        return rows

    def list(self, user_id: str, limit: int, cursor: str | None,
             filters: Filter | None) -> tuple[list[MemoryRecord], str | None]:
        """One page of a user's memories matching `filters`, oldest first, and the next page's cursor."""
        clause, params = filter_sql(Filter.parse(filters), postgres=True)
        try:
            after = int(cursor) if cursor else 0
        except ValueError:
            raise InputError(f"cursor {cursor!r} is not one this store gave", field="cursor",
                             fix="pass the cursor of the previous page, or none for the first") from None
        rows = self._query(f"SELECT m.seq, {_M_COLUMNS} FROM memories m WHERE m.user_id = %s AND m.seq > %s "
                           f"AND {clause} ORDER BY m.seq LIMIT %s", (user_id, after, *params, limit + 1))
        page = rows[:limit]
        return [row_to_record(r[1:]) for r in page], (str(page[-1][0]) if len(rows) > limit else None)

    def list_all(self, user_id: str, filters: Filter | None = None) -> list[MemoryRecord]:
        out: list[MemoryRecord] = []
        cursor = None
        while True:
            page, cursor = self.list(user_id, 1000, cursor, Filter.parse(filters))
            out += page
            if cursor is None:
                return out

    def session_memories(self, user_id: str, session_id: str) -> list[MemoryRecord]:
        rows = self._query(f"SELECT {COLUMNS} FROM memories WHERE user_id = %s AND session_id = %s "
                           "ORDER BY turn_index, seq", (user_id, session_id))
        return [row_to_record(r) for r in rows]

    def vacuum(self) -> None:
        """Tidy the store after a bulk load or many small writes: merge each term's small blocks
        (`lexicon.compact`; memories added one by one make a block each), then VACUUM (ANALYZE)
        the store's tables: pages written since are marked all-visible, so a term's count is an
        index-only read, and the planner's statistics are fresh. Not from within a transaction."""
        if getattr(self._local, "depth", 0):
            raise StoreError("cannot vacuum inside a transaction; call vacuum() after it")
        with self._transaction() as conn:  # the same postings, so cached views stay right
            lexicon.compact(conn)
        try:
            with self._pool.connection() as conn:
                tables = [r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = current_schema() "
                                                     "ORDER BY tablename").fetchall()]
                if tables:  # the store's own: the database's other schemas are not this store's to vacuum
                    conn.execute(pgsql.SQL("VACUUM (ANALYZE) {}").format(pgsql.SQL(", ").join(map(pgsql.Identifier, tables))))
        except psycopg.Error as exc:
            raise _error("vacuuming", self.where, exc) from None

    def _stored_bytes(self) -> int:
        return int(self._query("SELECT COALESCE(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
                               "JOIN pg_namespace n ON n.oid = c.relnamespace "
                               "WHERE n.nspname = current_schema() AND c.relkind = 'r'")[0][0])

    def close(self) -> None:
        self._pool.close()

    # -- a user's memories as arrays ------------------------------------------------------------

    @contextmanager
    def reading(self) -> Iterator["PostgresStore"]:
        """The store as it is now, for a long read such as an export: this thread's reads go
        through one REPEATABLE READ transaction until the block ends, while writers go on."""
        local = self._local
        if getattr(local, "depth", 0):  # inside a transaction already: it is one state
            yield self
            return
        try:
            with self._pool.connection() as conn:
                local.conn, local.depth, local.reading = conn, 1, True
                try:
                    with conn.transaction():
                        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                        yield self
                finally:
                    local.conn, local.depth, local.reading = None, 0, False
        except psycopg.Error as exc:
            raise _error("reading", self.where, exc) from None

    @contextmanager
    def snapshot(self, user_id: str) -> Iterator[None]:
        """Within this block, every read of this thread about `user_id` (candidates, vectors,
        speakers, neighbours) sees one state of the user's memories."""
        pins = self._local.__dict__.setdefault("views", {})
        outer = pins.get(user_id)
        pins[user_id] = outer or self._view(user_id)
        try:
            yield
        finally:
            if outer is None:
                pins.pop(user_id, None)

    def _view(self, user_id: str) -> UserView:
        """One user's memories as arrays, cached until the user's generation moves on (or the
        index is swapped). A view read inside a transaction may hold its uncommitted writes, so
        it is not kept. The generation is read before the rows: a write committed in between
        makes the view look older than it is (read again), never newer."""
        pinned = getattr(self._local, "views", {}).get(user_id)
        if pinned is not None:
            return pinned
        index, generation = self._index_and_generation(user_id)
        with self._lock:
            cached = self._views.get(user_id)
            if cached and cached.generation == generation and cached.index == index.name:
                return cached
        # A large user's vectors and texts stay in the database (read per candidate; see `UserView.vectors_from`).
        lean = self._query("SELECT count(*) FROM memories WHERE user_id = %s", (user_id,))[0][0] >= self.dense_exact_below
        sql = (f"SELECT m.seq, m.id, m.node_type, m.speaker, m.session_id, m.turn_index, {'NULL' if lean else 'v.vecs'}, "
               f"m.superseded_by IS NOT NULL, m.event_start IS NOT NULL, m.tokens, {'NULL' if lean else 'm.text'}, "
               f"m.event_start, m.event_end, substr(m.session_date, 1, 10) "
               f"FROM memories m JOIN {index.name} v ON v.user_id = m.user_id AND v.seq = m.seq "
               f"WHERE m.user_id = %s ORDER BY m.seq")
        lengths: list[np.ndarray] = []
        folded: list[str] = []

        def pages() -> Iterator[list[tuple]]:  # the view's rows of each page, its lengths and texts kept aside
            for rows in self._query_pages(sql, (user_id,)):
                lengths.append(np.array([r[9] for r in rows], dtype=np.float64))
                if not lean:
                    folded.extend(r[10].casefold() for r in rows)
                yield [(*r[:6], None if lean else bytes(r[6]), r[7], r[8], *r[11:14]) for r in rows]

        view = UserView.build_paged(generation, index.name, index.dims, pages())
        view.lengths = np.concatenate(lengths) if lengths else np.zeros(0, np.float64)
        if lean:
            view.vectors_from = LeanVectors(partial(self._fetch_vectors, user_id, index.name),
                                            partial(self._stream_vectors, user_id, index.name))
        else:
            view.folded_texts = folded
        if not getattr(self._local, "depth", 0):
            with self._lock:
                if user_id not in self._views and len(self._views) >= _MAX_VIEWS:
                    self._views.pop(next(iter(self._views)))
                self._views[user_id] = view
        return view

    def dense_candidates_ahead(self, user_id: str, query: np.ndarray, k: int,
                               filters: Filter | None) -> Callable[[], list[tuple[str, float]]]:
        """A large user's dense candidates start at once on a worker, with the caller's view
        pinned there, and its HNSW draw runs in the database while the caller reads BM25 on
        another connection. Inside a write transaction (whose writes the worker would not see),
        or for a user scanned exactly in memory, they are computed when taken."""
        view = self._view(user_id)
        if getattr(self._local, "depth", 0) or not self._approximate(view):
            return super().dense_candidates_ahead(user_id, query, k, filters)
        return _AHEAD.submit(self._dense_in_view, user_id, view, query, k, filters).result

    def _dense_in_view(self, user_id: str, view: UserView, query: np.ndarray, k: int,
                       filters: Filter | None) -> list[tuple[str, float]]:
        pins = self._local.__dict__.setdefault("views", {})
        pins[user_id] = view
        try:
            return self.dense_candidates(user_id, query, k, filters)
        finally:
            pins.pop(user_id, None)

    def _allowed_rows(self, user_id: str, view: UserView, filters: Filter, rows: np.ndarray) -> np.ndarray:
        clause, params = filter_sql(filters, postgres=True)
        seqs = [int(r) for r in view.rowids[rows]]
        passed = {r[0] for r in self._query(f"SELECT m.seq FROM memories m WHERE m.user_id = %s AND m.seq = ANY(%s) "
                                            f"AND {clause}", (user_id, seqs, *params))}
        return np.array([r for r, q in zip(rows, seqs) if q in passed], dtype=np.int64)

    def _nearest_rows(self, user_id: str, view: UserView, query: np.ndarray, count: int) -> np.ndarray | None:
        """View rows of the user's `count` nearest vectors in the HNSW index (None: a pinned view
        of an index swapped out since; scan it exactly)."""
        self._build_hnsw(view.index, view.dims)
        try:
            with self._connection() as conn, conn.pipeline(), conn.transaction():
                conn.execute(search_settings_sql(min(2 * count, _MAX_EF_SEARCH)))
                seqs = conn.execute(nearest_sql(view.index, None), (user_id, literal(query), count)).fetchall()
        except psycopg.errors.UndefinedTable:
            return None
        except psycopg.Error as exc:
            raise _error("read from", self.where, exc) from None
        found = np.unique(np.fromiter((r[0] for r in seqs), dtype=np.int64, count=len(seqs)))
        rows, _ = view.rows_of(found, found)
        return rows

    def _build_hnsw(self, name: str, dims: int) -> None:
        """Build the HNSW index of vector index `name` where it is missing. It is derived data,
        built when an approximate search first needs it rather than kept row by row from the
        first write: a bulk write runs several times faster, and a store of small users never
        builds it. One process builds it (an advisory lock; the others read on without it, an
        exact scan of the points); writes wait for the build, reads do not. Built in its own
        transaction, so a crash leaves no index, and the next search builds it again. Not from
        within this thread's write transaction, which the build would wait for."""
        local = self._local
        if name in self._hnsw_built or (getattr(local, "depth", 0) and not getattr(local, "reading", False)):
            return
        try:
            with self._pool.connection() as conn:
                if conn.execute("SELECT to_regclass(%s)", (f"{name}_hnsw",)).fetchone()[0] is None:
                    with conn.transaction():
                        if not conn.execute("SELECT pg_try_advisory_xact_lock(hashtext('memlane-hnsw:' || "
                                            "current_schema() || %s))", (name,)).fetchone()[0]:
                            return  # another process is building it
                        points = conn.execute(f"SELECT count(*) FROM {name}_points").fetchone()[0]
                        conn.execute(f"SET LOCAL maintenance_work_mem = '{hnsw_build_memory_mb(points, dims)}MB'")
                        conn.execute(hnsw_sql(name))
        except psycopg.errors.UndefinedTable:
            return  # swapped out by a reindex meanwhile: the search reads on without it
        except psycopg.Error as exc:
            raise _error(f"building the HNSW index of {name} in", self.where, exc) from None
        self._hnsw_built.add(name)

    def _allowed_mask(self, user_id: str, view: UserView, filters: Filter | None) -> np.ndarray | None:
        """Which of the view's rows `filters` lets through; None when it restricts nothing."""
        filters = Filter.parse(filters)
        if filters.is_empty:
            return None
        if held_filter(filters):  # the common cases, answered from the view
            return held_filter_mask(view, filters)
        clause, params = filter_sql(filters, postgres=True)
        rows = self._query(f"SELECT m.seq FROM memories m WHERE m.user_id = %s AND {clause}", (user_id, *params))
        return np.isin(view.rowids, np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows)))

    def _postings(self, user_id: str, view: UserView, term: str) -> tuple[np.ndarray, np.ndarray]:
        """The view rows whose text holds `term` (as a phrase where it has several tokens) and how
        often each holds it, read from the user's own postings; kept with the view."""
        cached = view.postings.get(term)
        if cached is not None:
            return cached
        tokens = query_tokens(term)
        empty = (np.zeros(0, np.int64), np.zeros(0, np.int64))
        if not tokens or len(view.rowids) == 0:
            found = empty
        elif len(tokens) == 1:
            found = view.rows_of(*lexicon.term_postings(self._query(
                "SELECT first_seq, n, seqs, counts FROM term_blocks WHERE user_id = %s AND term = %s",
                (user_id, tokens[0]), binary=True)))
        else:  # a phrase: its tokens at consecutive offsets of one memory
            found = view.rows_of(*lexicon.phrase_postings(tokens, self._query(
                "SELECT term, first_seq, n, seqs, counts, offsets FROM term_blocks WHERE user_id = %s AND term = ANY(%s)",
                (user_id, sorted(set(tokens))), binary=True)))
        if len(view.postings) >= _MAX_CACHED_TERMS:
            view.postings.clear()
        view.postings[term] = found
        return found

    def _counted_frequency(self, user_id: str, view: UserView, term: str) -> int | None:
        """A large user's memories holding a one-token term: its blocks' counts, summed from the
        key's index (memories written since the view are counted too, at most the view's size);
        None for a phrase (counted from its postings)."""
        tokens = query_tokens(term)
        if len(tokens) != 1:
            return None if tokens else 0
        held = self._query("SELECT COALESCE(sum(n), 0) FROM term_blocks WHERE user_id = %s AND term = %s",
                           (user_id, tokens[0]))[0][0]
        return min(int(held), len(view.ids))

    def _count_frequencies(self, user_id: str, view: UserView, terms: Sequence[str]) -> None:
        """`_counted_frequency` of the one-token terms among `terms`, in one read."""
        single = {t: query_tokens(t)[0] for t in terms if len(query_tokens(t)) == 1}
        if not single:
            return
        held = dict(self._query("SELECT term, sum(n) FROM term_blocks WHERE user_id = %s AND term = ANY(%s) "
                                "GROUP BY term", (user_id, sorted(set(single.values())))))
        known = view.derived.setdefault("frequencies", {})
        for term, token in single.items():
            known[term] = min(int(held.get(token, 0)), len(view.ids))

    def _read_postings(self, user_id: str, view: UserView, terms: Sequence[str]) -> None:
        """`_postings` of the one-token terms among `terms` not read yet, in one read."""
        single = {t: query_tokens(t)[0] for t in terms if t not in view.postings and len(query_tokens(t)) == 1}
        if len(single) < 2 or len(view.rowids) == 0:
            return
        blocks: dict[str, list[tuple]] = {token: [] for token in single.values()}
        for token, *block in self._query("SELECT term, first_seq, n, seqs, counts FROM term_blocks WHERE user_id = %s "
                                         "AND term = ANY(%s)", (user_id, sorted(blocks)), binary=True):
            blocks[token].append(tuple(block))
        if len(view.postings) + len(single) > _MAX_CACHED_TERMS:
            view.postings.clear()
        for term, token in single.items():
            view.postings[term] = view.rows_of(*lexicon.term_postings(blocks[token]))

    def _folded_texts(self, user_id: str, view: UserView) -> list[str]:
        if view.folded_texts is None:  # a lean view's, read on first need
            text_of = dict(self._query("SELECT seq, text FROM memories WHERE user_id = %s", (user_id,)))
            view.folded_texts = [text_of.get(int(r), "").casefold() for r in view.rowids]
        return view.folded_texts  # read with the view (see `_view`)

    def _fetch_vectors(self, user_id: str, index_name: str, seqs: np.ndarray) -> list[bytes | None]:
        """The user's vectors as written (own, then passages') of the given rows (None where gone)."""
        try:
            found = dict(self._query(f"SELECT seq, vecs FROM {index_name} WHERE user_id = %s AND seq = ANY(%s)",
                                     (user_id, [int(q) for q in seqs]), missing_table_ok=True, binary=True))
        except _IndexSwapped:  # a view pinned before a reindex swapped its index out: no vectors to score
            return [None] * len(seqs)
        return [bytes(found[int(q)]) if int(q) in found else None for q in seqs]

    def _stream_vectors(self, user_id: str, index_name: str, page: int = 20_000) -> Iterator[tuple[np.ndarray, list[bytes]]]:
        """All of the user's vectors, in row order, a page at a time."""
        after = -1
        while True:
            try:
                rows = self._query(f"SELECT seq, vecs FROM {index_name} WHERE user_id = %s AND seq > %s ORDER BY seq "
                                   "LIMIT %s", (user_id, after, page), missing_table_ok=True, binary=True)
            except _IndexSwapped:
                return
            if not rows:
                return
            yield np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows)), [bytes(r[1]) for r in rows]
            after = rows[-1][0]

    @staticmethod
    def _lengths(user_id: str, view: UserView) -> np.ndarray:
        return view.lengths  # read with the view

    # -- memory nodes ----------------------------------------------------------------------------

    def citing(self, user_id: str, memory_id: str) -> list[MemoryRecord]:
        """The extracted memories whose evidence cites `memory_id` (a turn)."""
        return [row_to_record(r) for r in self._query(
            f"SELECT {COLUMNS} FROM memories WHERE user_id = %s AND node_type NOT IN ('turn', 'session') "
            "AND jsonb_typeof(metadata::jsonb -> 'evidence') = 'array' "
            "AND (metadata::jsonb -> 'evidence') @> to_jsonb(%s::text) ORDER BY seq", (user_id, memory_id))]

    # -- retention -------------------------------------------------------------------------------

    def expire(self, user_id: str, ids: Sequence[str], at: str, rule: str) -> int:
        """Move memories out of search into the expired table (with their vectors); recoverable until purged."""
        index = self.active_index()
        with self._transaction() as conn:
            moved = 0
            for memory_id in ids:
                row = conn.execute(f"SELECT seq, {COLUMNS} FROM memories WHERE id = %s AND user_id = %s",
                                   (memory_id, user_id)).fetchone()
                if row is None:
                    continue
                record = row_to_record(row[1:])
                vec = (conn.execute(f"SELECT vecs FROM {index.name} WHERE user_id = %s AND seq = %s",
                                    (user_id, row[0])).fetchone() if index else None)
                conn.execute("INSERT INTO expired (id, user_id, record, index_name, vec, expired_at, rule) "
                             "VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (user_id, id) DO UPDATE SET "
                             "record = EXCLUDED.record, index_name = EXCLUDED.index_name, "
                             "vec = EXCLUDED.vec, expired_at = EXCLUDED.expired_at, rule = EXCLUDED.rule",
                             (record.id, user_id, json.dumps(record.to_dict(), ensure_ascii=False),
                              index.name if index else None, vec[0] if vec else None, at, rule))
                self._delete_rows(conn, user_id, [memory_id])
                self._write_events(conn, [HistoryEvent(record.id, "EXPIRE", record.text, None, at)], user_id=user_id)
                moved += 1
        return moved

    def restore(self, user_id: str, ids: Sequence[str], at: str, vectors: dict[str, np.ndarray]) -> int:
        """Put expired memories back, each with its saved vector when the index is unchanged, else
        one from `vectors` (the caller re-embeds those)."""
        index = self._require_index()
        with self._transaction() as conn:
            restored = 0
            for memory_id in ids:
                row = conn.execute("SELECT record, index_name, vec FROM expired WHERE id = %s AND user_id = %s",
                                   (memory_id, user_id)).fetchone()
                if row is None:
                    continue
                record = record_from_dict(json.loads(row[0]))
                if row[1] == index.name and row[2] is not None:
                    vector = np.frombuffer(bytes(row[2]), np.float32).reshape(-1, index.dims)
                elif memory_id in vectors:
                    vector = np.asarray(vectors[memory_id], np.float32)
                else:
                    raise StoreError(f"expired memory {memory_id} needs a new vector for index {index.name}")
                check_dims(vector, index, memory_id)
                conn.execute("DELETE FROM expired WHERE user_id = %s AND id = %s", (user_id, memory_id))
                self._insert(conn, index, [record], [vector])
                self._write_events(conn, [HistoryEvent(record.id, "RESTORE", None, record.text, at)], user_id=user_id)
                restored += 1
        return restored

    def purge(self, user_id: str, at: str) -> int:
        """Delete a user's expired memories for good (their history keeps a PURGE event)."""
        with self._transaction() as conn:
            rows = conn.execute("DELETE FROM expired WHERE user_id = %s RETURNING id, record", (user_id,)).fetchall()
            self._write_events(conn, [HistoryEvent(mid, "PURGE", json.loads(rec)["text"], None, at)
                                      for mid, rec in sorted(rows)], user_id=user_id)
        return len(rows)

    # -- export and import --------------------------------------------------------------------

    def stored_vectors(self, user_id: str, ids: Sequence[str]) -> dict[str, np.ndarray]:
        """Each of the user's memories among `ids` with its vectors in the active index, as written."""
        index = self.active_index()
        if index is None or not ids:
            return {}
        out: dict[str, np.ndarray] = {}
        for chunk in self._chunks(ids):
            for mid, blob in self._query(
                    f"SELECT m.id, v.vecs FROM memories m JOIN {index.name} v ON v.user_id = m.user_id "
                    "AND v.seq = m.seq WHERE m.user_id = %s AND m.id = ANY(%s)", (user_id, chunk)):
                out[mid] = np.frombuffer(bytes(blob), dtype=np.float32).reshape(-1, index.dims)
        return out

