"""The default store: one SQLite file holding records, an FTS5 index and float32 vectors.

Vectors live in plain tables (one per embedding model) and are scored with numpy, so no
loadable SQLite extension is needed. Every write is one transaction; WAL lets readers go on
while a writer works, which is how a reindex keeps answering searches until its swap.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import threading
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from memlane.errors import StoreError
from memlane.records import HistoryEvent, MemoryRecord
from memlane.store import bm25
from memlane.store.bm25 import COUNTED_AT_MOST
from memlane.store.base import CAPABILITIES, IndexInfo, check_dims
from memlane.filters import Filter
from memlane.store.sql import filter_sql
from memlane.store.codec import (COLUMNS, PLACEHOLDERS, int_list, own_rows, record_from_dict, record_params,
                                  row_to_record, to_blob)
from memlane.store.sqlite.lexicon import Lexicon
from memlane.store.sqlite.schema import SCHEMA, SCHEMA_VERSION, TERM_TABLES, TOKENIZER, migrate
from memlane.store.sqlbase import SQLStatements
from memlane.store.nearest import NearestIndex, index_file, rows_file
from memlane.store.view import (DENSE_EXACT_BELOW, LeanVectors, UserView, ViewReads, held_filter, held_filter_mask,
                                 postings_of, view_row)

_MAX_VIEWS = 64  # users whose search arrays stay in memory: bounds memory on servers with many users
_MAX_CACHED_TERMS = 512  # BM25 postings kept per view
_MAX_NEAREST = 4  # users whose approximate index stays loaded (each a few hundred MB at a million memories)
_SAVE_AFTER = 2_000  # rows added to an approximate index before it is written again (also on close)
_MAX_LEXICONS = _MAX_VIEWS  # users whose own term index is kept (see `_Lexicon`)
CHANGES_KEPT = 4_096  # generations whose changes are kept: a process further behind reads its views again
_FOLLOW_AT_MOST = 2_000  # records of a write that cached views take in; a larger write drops them
# A user holding less than this share of the file's memories gets their own term index; above
# it, FTS5's shared one costs about the same.
_OWN_LEXICON_BELOW = 0.5
# The file's first and last rowid in two subqueries: SQLite answers a lone min() or max() with one
# seek, but both in one SELECT with a scan of every memory (80 ms at 181,000 memories).
_ROWID_BOUNDS = "SELECT (SELECT min(rowid) FROM memories), (SELECT max(rowid) FROM memories)"
_ASSIGNMENTS = ", ".join(f"{c.strip()} = ?" for c in COLUMNS.split(","))




def _reason(exc: sqlite3.Error) -> str:
    """SQLite's message, with what to do where the cause is outside memlane."""
    message = str(exc)
    lowered = message.lower()
    if "disk is full" in lowered or "disk i/o" in lowered:
        return f"{message} (free space on the disk that holds the store, then retry)"
    if "readonly" in lowered or "read-only" in lowered:
        return f"{message} (the store file or its folder is not writable)"
    if "locked" in lowered or "busy" in lowered:
        return f"{message} (another process held the store for longer than 30 s; retry)"
    return message



class SQLiteStore(SQLStatements, ViewReads):
    """memlane's embedded store. Thread-safe for one process; other processes may read concurrently."""

    capabilities = frozenset(CAPABILITIES)
    _row = "rowid"
    _chunk = 500  # under SQLite's limit on bound parameters

    def __init__(self, path: str | Path, *, create: bool = True, dense_exact_below: int = DENSE_EXACT_BELOW) -> None:
        """Open the store at `path`, creating it when `create` (else a missing file is an error).
        A store the process cannot write (a read-only file or folder) opens read-only: searches
        work, writes raise StoreError. Users with `dense_exact_below` memories or more get dense
        candidates from an approximate index kept beside the file (see `memlane.store.nearest`)."""
        self.path = str(path)
        self.dense_exact_below = dense_exact_below
        self._nearest: dict[tuple[str, str], NearestIndex] = {}  # (user, vector index): least recently used first
        self.read_only = False
        if self.path != ":memory:":
            resolved = Path(self.path).expanduser()
            self.path = str(resolved)
            parent = resolved.resolve().parent
            if not parent.is_dir():
                raise StoreError(f"cannot open store {self.path}: folder {parent} does not exist")
            if not resolved.exists():
                if not create:
                    raise StoreError(f"no store at {self.path}: check the path (--store or $MEMLANE_STORE); "
                                     "a store is created by the first command that adds memories")
                if not os.access(parent, os.W_OK):
                    raise StoreError(f"cannot create store {self.path}: folder {parent} is not writable")
            self.read_only = resolved.exists() and not (os.access(resolved, os.W_OK) and os.access(parent, os.W_OK))
        try:
            self._conn = self._connect()
        except sqlite3.DatabaseError as exc:
            hint = (" Is it a memlane SQLite file?" if "not a database" in str(exc) or "malformed" in str(exc) else "")
            raise StoreError(f"cannot open store {self.path}: {_reason(exc)}.{hint}") from None
        self._lock = threading.RLock()
        self._depth = 0  # nesting of `atomic` blocks on this connection (under the lock)
        self._changed: dict[str, int | None] = {}  # the open transaction's changes (see `_note`)
        self._pins = threading.local()  # per thread: user views a search holds (see `snapshot`)
        self._views: dict[str, UserView] = {}
        self._term_tokens: dict[str, tuple[str, ...]] = {}
        self._lexicons: dict[str, Lexicon] = {}  # by user, least recently used first
        self._lexicon_serial = 0

    def _connect(self) -> sqlite3.Connection:
        if self.read_only:
            # WAL readers need the -shm file beside the store; where the folder cannot hold one,
            # nobody can be writing the file either, so it is read as immutable.
            folder_writable = os.access(Path(self.path).resolve().parent, os.W_OK)
            uri = Path(self.path).resolve().as_uri() + ("?mode=ro" if folder_writable else "?immutable=1")
            conn = sqlite3.connect(uri, uri=True, check_same_thread=False, isolation_level=None, timeout=30)
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
            conn.executescript(TERM_TABLES)
            return conn
        conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        # Deleted text is overwritten in the file, not left in free pages for a copy to carry.
        conn.execute("PRAGMA secure_delete=ON")
        conn.executescript(SCHEMA.replace("{tokenizer}", TOKENIZER))
        migrate(conn)
        conn.executescript(TERM_TABLES)
        conn.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (SCHEMA_VERSION,))
        return conn

    # -- plumbing ---------------------------------------------------------------------------

    @contextmanager
    def atomic(self) -> Iterator[sqlite3.Connection]:
        """One write transaction for everything inside, reads included: no other writer (thread or
        process) comes between what a caller reads and what it writes from it. Nests: an inner
        block joins the outer one, and only the outermost commits."""
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    yield self._conn
                finally:
                    self._depth -= 1
                return
            if self.read_only:
                raise StoreError(f"store {self.path} is read-only (the file or its folder is not writable); "
                                 "open a writable copy to change it")
            try:
                self._conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise StoreError(f"cannot start a write to {self.path}: {_reason(exc)}") from None
            self._depth = 1
            self._changed = {}
            try:
                yield self._conn
                self._conn.execute(
                    "INSERT INTO meta VALUES ('generation', '1') ON CONFLICT(key) "
                    "DO UPDATE SET value = CAST(value AS INTEGER) + 1"
                )
                self._note_changes(self._conn)
                self._conn.execute("COMMIT")
            except BaseException as exc:
                self._rollback()
                if isinstance(exc, sqlite3.Error):
                    raise StoreError(f"write to {self.path} failed and was rolled back: {_reason(exc)}") from None
                raise
            finally:
                self._depth = 0

    _transaction = atomic

    def _note_changes(self, conn: sqlite3.Connection) -> None:
        """Record what this transaction changed under its generation (see the `changes` table):
        the users it inserted for, and from which rowid; any other write, or one that said
        nothing, as a change of anything for anyone."""
        generation = int(conn.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()[0])
        notes = [(generation, user, first) for user, first in self._changed.items()] or [(generation, None, None)]
        conn.executemany("INSERT INTO changes (generation, user_id, first_rowid) VALUES (?, ?, ?)", notes)
        if generation % 256 == 0:
            conn.execute("DELETE FROM changes WHERE generation <= ?", (generation - CHANGES_KEPT,))

    def _note(self, user_id: str, first_rowid: int | None) -> None:
        """Note, in the open transaction, an insert for `user_id` from `first_rowid` on (None: any change)."""
        if user_id in self._changed:
            known = self._changed[user_id]
            first_rowid = None if known is None or first_rowid is None else min(known, first_rowid)
        self._changed[user_id] = first_rowid

    def _rollback(self) -> None:
        """Undo the open transaction, if SQLite has not already (it does itself on a full disk or
        an I/O error), and drop what the caches learnt from it."""
        try:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
        except sqlite3.Error:  # the connection is broken; the file itself is intact (journal)
            pass
        # Views and term indexes may have followed writes that are now undone.
        self._views.clear()
        for user_id in list(self._lexicons):
            self._drop_lexicon(self._lexicons.pop(user_id))

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        with self._lock:
            try:
                return self._conn.execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                raise StoreError(f"read from {self.path} failed: {_reason(exc)}") from None

    def _query_pages(self, sql: str, params: Sequence[Any] = (), size: int = 50_000) -> Iterator[list[tuple]]:
        """The rows of one statement (one snapshot of the file), `size` at a time; the caller
        holds the store's lock until it has read them all."""
        try:
            cursor = self._conn.execute(sql, params)
            while rows := cursor.fetchmany(size):
                yield rows
        except sqlite3.Error as exc:
            raise StoreError(f"read from {self.path} failed: {_reason(exc)}") from None

    @property
    def where(self) -> str:
        """The store's file, as messages name it."""
        return self.path

    def _meta(self, key: str) -> str | None:
        row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def _generation(self) -> int:
        rows = self._query("SELECT value FROM meta WHERE key = 'generation'")
        return int(rows[0][0]) if rows else 0

    # -- vector indexes -----------------------------------------------------------------------

    @staticmethod
    def _index_table_sql(name: str, dims: int) -> str:
        return f"CREATE TABLE {name} (rowid INTEGER PRIMARY KEY, vec BLOB NOT NULL)"

    def missing_from_index(self, index: IndexInfo, limit: int, *, sessions: bool) -> list[tuple[int, MemoryRecord]]:
        """(rowid, record) of memories with no vector in `index` yet: session memories when
        `sessions`, every other kind otherwise."""
        op = "=" if sessions else "!="
        columns = ", ".join(f"m.{c.strip()}" for c in COLUMNS.split(","))
        rows = self._query(
            f"SELECT m.rowid, {columns} FROM memories m LEFT JOIN {index.name} v ON v.rowid = m.rowid "
            f"WHERE v.rowid IS NULL AND m.node_type {op} 'session' ORDER BY m.rowid LIMIT ?",
            (limit,),
        )
        return [(row[0], row_to_record(row[1:])) for row in rows]

    def index_vectors(self, index: IndexInfo, memory_ids: Sequence[str]) -> np.ndarray:
        """Vectors of `index` for the given memories that have one (any user: for maintenance only)."""
        if not memory_ids:
            return np.zeros((0, index.dims), dtype=np.float32)
        rows = self._query(
            f"SELECT v.vec FROM memories m JOIN {index.name} v ON v.rowid = m.rowid "
            f"WHERE m.id IN ({', '.join('?' * len(memory_ids))})",
            tuple(memory_ids),
        )
        return own_rows([r[0] for r in rows], index.dims)

    def put_index_vectors(self, index: IndexInfo, batch: Sequence[tuple[int, MemoryRecord]],
                          vectors: Sequence[np.ndarray]) -> int:
        """Store the vectors a reindex computed for `batch` (what `missing_from_index` gave).

        Vectors are keyed by rowid, which SQLite gives again after the newest row is deleted; so a
        vector is written only where the row still holds the same memory with the same text. One
        deleted or rewritten meanwhile is skipped, and the reindex embeds it again as missing.
        Returns how many were written."""
        with self._transaction() as conn:
            written = 0
            for (rowid, record), vector in zip(batch, vectors):
                row = conn.execute("SELECT id, embed_text FROM memories WHERE rowid = ?", (int(rowid),)).fetchone()
                if row is None or row[0] != record.id or row[1] != record.embed_text:
                    continue
                check_dims(vector, index, record.id)
                conn.execute(f"INSERT OR REPLACE INTO {index.name} (rowid, vec) VALUES (?, ?)",
                             (int(rowid), to_blob(vector)))
                written += 1
        return written

    def _put_vector(self, conn: sqlite3.Connection, index: IndexInfo, rowid: int, vector: np.ndarray) -> None:
        """A rewritten memory's new vector in the active index. An index a reindex is building
        forgets the memory's old vector, so the reindex embeds the new text."""
        check_dims(vector, index, rowid)
        conn.execute(f"INSERT OR REPLACE INTO {index.name} (rowid, vec) VALUES (?, ?)", (rowid, to_blob(vector)))
        owner = conn.execute("SELECT user_id FROM memories WHERE rowid = ?", (rowid,)).fetchone()
        self._forget_nearest(owner[0] if owner else None, [rowid])
        for (name,) in conn.execute("SELECT name FROM vector_indexes WHERE name != ?", (index.name,)).fetchall():
            conn.execute(f"DELETE FROM {name} WHERE rowid = ?", (rowid,))

    def activate_index(self, index: IndexInfo) -> None:
        """Swap `index` in as the one searches use, in one transaction, and drop the old one.

        Refuses while any memory lacks a vector in `index`, so the swap never loses a memory.
        """
        with self._transaction() as conn:
            missing = conn.execute(
                f"SELECT COUNT(*) FROM memories m LEFT JOIN {index.name} v ON v.rowid = m.rowid WHERE v.rowid IS NULL"
            ).fetchone()[0]
            if missing:
                raise StoreError(f"index {index.name} still lacks {missing} vectors; finish embedding before the swap")
            old = conn.execute("SELECT name FROM vector_indexes WHERE state = 'active'").fetchall()
            for (name,) in old:
                conn.execute(f"DROP TABLE IF EXISTS {name}")
                conn.execute("DELETE FROM vector_indexes WHERE name = ?", (name,))
            # Unfinished indexes of other models are stale now.
            for (name,) in conn.execute("SELECT name FROM vector_indexes WHERE state = 'building' AND name != ?", (index.name,)).fetchall():
                conn.execute(f"DROP TABLE IF EXISTS {name}")
                conn.execute("DELETE FROM vector_indexes WHERE name = ?", (name,))
            conn.execute("UPDATE vector_indexes SET state = 'active' WHERE name = ?", (index.name,))
            for (name,) in old:  # the approximate indexes of the old vectors go with them
                shutil.rmtree(Path(f"{self.path}.nearest") / name, ignore_errors=True)
                for key in [k for k in self._nearest if k[1] == name]:
                    del self._nearest[key]
        self._views.clear()

    # -- writes -----------------------------------------------------------------------------

    def write(self, records: Sequence[MemoryRecord], vectors: Sequence[np.ndarray], events: Sequence[HistoryEvent],
              amended: Sequence[MemoryRecord] = ()) -> None:
        """Insert records with their vectors (see the Store protocol: one vector, or its own and its
        passages') and history events, and rewrite the fields of `amended` existing records
        (superseded facts, merged evidence; text and vector unchanged), all or nothing."""
        if len(records) != len(vectors):
            raise StoreError(f"{len(records)} records but {len(vectors)} vectors")
        if not records and not events and not amended:
            return
        index = self._require_index()
        with self._lock:  # held until the views follow, so no other write of this store comes between
            nested = self._depth > 0
            with self._transaction() as conn:
                before = self._generation()  # the transaction moves it on by one
                users = {r.user_id for r in records}
                new_users = {uid for uid in users if conn.execute(
                    "SELECT 1 FROM memories WHERE user_id = ? LIMIT 1", (uid,)).fetchone() is None}
                # Rowids given here, as SQLite would (the write lock is held), so that the rows and
                # their vectors go in with one executemany each.
                for record, vector in zip(records, vectors):
                    check_dims(vector, index, record.id)
                first = conn.execute("SELECT COALESCE(max(rowid), 0) + 1 FROM memories").fetchone()[0]
                rowids = range(first, first + len(records))
                conn.executemany(f"INSERT INTO memories (rowid, {COLUMNS}) VALUES (?, {PLACEHOLDERS})",
                                 ((rowid, *record_params(r)) for rowid, r in zip(rowids, records)))
                conn.executemany(f"INSERT INTO {index.name} (rowid, vec) VALUES (?, ?)",
                                 ((rowid, to_blob(v)) for rowid, v in zip(rowids, vectors)))
                for rowid, record in zip(rowids, records):
                    self._note(record.user_id, rowid)
                for record in amended:
                    self._note(record.user_id, None)
                    conn.execute(
                        "UPDATE memories SET metadata = ?, valid_from = ?, valid_until = ?, superseded_by = ? "
                        "WHERE id = ? AND user_id = ?",
                        (json.dumps(record.metadata, ensure_ascii=False), record.valid_from, record.valid_until,
                         record.superseded_by, record.id, record.user_id),
                    )
                self._write_events(conn, events)
            if nested or len(records) > _FOLLOW_AT_MOST:
                # Not committed yet, or a bulk write: these users' views and term indexes are read
                # again when next used (holding a bulk import's vectors twice would double its memory).
                self._forget_users(users, before, current=not nested)
                return
            rows: dict[str, list[tuple]] = {}
            texts: dict[str, list[str]] = {}
            indexed: dict[str, list[tuple[int, str]]] = {}
            for rowid, record, vector in zip(rowids, records, vectors):
                rows.setdefault(record.user_id, []).append(view_row(rowid, record, to_blob(vector)))
                texts.setdefault(record.user_id, []).append(record.text)
                indexed.setdefault(record.user_id, []).append((rowid, record.embed_text))
            if not amended:  # amended facts change flags the views hold: those are read again
                self._follow_insert(before, index, rows, texts, new_users, indexed)
            self._follow_lexicons(before, indexed)  # amended records keep their text

    def _forget_users(self, users: set[str], before: int, *, current: bool) -> None:
        """Drop the views and term indexes of `users`; with `current` (the write committed), the
        other users' ones that were current before it stay current."""
        for user_id in users:
            self._views.pop(user_id, None)
            if user_id in self._lexicons:
                self._drop_lexicon(self._lexicons.pop(user_id))
        if current:
            for cached in [*self._views.values(), *self._lexicons.values()]:
                if cached.generation == before:
                    cached.generation = before + 1

    def _follow_insert(self, before: int, index: IndexInfo, rows: dict[str, list[tuple]],
                       texts: dict[str, list[str]], new_users: set[str],
                       indexed: dict[str, list[tuple[int, str]]]) -> None:
        """Bring the cached views up to date with an insert-only write instead of dropping them, so
        the next search needs no re-read: the new rows (vectors in hand) join their user's view
        (as a pending part, merged on next use), a user's first memories start one, and other
        users' views are unchanged. Only views that were current before the write follow it;
        others are rebuilt when next used."""
        after = before + 1
        for user_id, view in list(self._views.items()):
            if view.generation != before or view.index != index.name:
                continue
            added = rows.get(user_id)
            if added and view.vectors_from is None and len(view.ids) + sum(len(p.ids) for p in view.pending) \
                    + len(added) >= self.dense_exact_below:
                del self._views[user_id]  # grown large: read again as a lean view, its vectors left in the store
                continue
            if added:  # joined in when next searched: many small writes cost one merge, not one each
                self._append_part(view, user_id, after, index, added, texts[user_id], indexed[user_id])
            view.generation = after
        for user_id in new_users - set(self._views):
            if len(self._views) >= _MAX_VIEWS:  # a view nobody has searched yet never evicts one in use
                break
            if len(rows[user_id]) >= self.dense_exact_below:  # read as a lean view when first searched
                continue
            self._views[user_id] = UserView.build(after, index.name, index.dims, rows[user_id])

    def _append_part(self, view: "UserView", user_id: str, generation: int, index: IndexInfo, rows: list[tuple],
                     texts: list[str], indexed: list[tuple[int, str]]) -> None:
        """New rows of the user (as `UserView.build` takes them, with their texts and indexed
        texts) as a pending part of `view`, carrying what the view holds already: folded texts,
        lengths, and the postings of the terms searched so far (no re-read of each after a write)."""
        part = UserView.build(generation, index.name, index.dims, rows)
        if view.folded_texts is not None:
            part.folded_texts = [text.casefold() for text in texts]
        if view.lengths is not None:
            part.lengths = self._read_lengths(user_id, part.rowids)
        if view.postings:
            known = {t: self._term_tokens[t] for t in list(view.postings) if t in self._term_tokens}
            try:
                part.postings = postings_of(self._index_tokens(indexed), known)
            except sqlite3.Error:  # these terms are read again when next searched
                part.postings = {}
        view.pending.append(part)

    def _follow_lexicons(self, before: int, indexed: dict[str, list[tuple[int, str]]]) -> None:
        """Add a write's new (rowid, indexed text) rows to the term indexes of their users that
        were current before it (a write that only amends other fields leaves texts as they were);
        the others are rebuilt when next used."""
        for user_id, lexicon in list(self._lexicons.items()):
            if lexicon.generation == before:
                self._extend_lexicon(user_id, lexicon, indexed.get(user_id, []), before + 1)

    def _extend_lexicon(self, user_id: str, lexicon: Lexicon, indexed: list[tuple[int, str]], generation: int) -> None:
        """Add (rowid, indexed text) rows to the user's term index and move it to `generation`;
        if that fails (the write itself is committed), the index is dropped and rebuilt when next used."""
        try:
            if indexed:
                self._conn.executemany(f"INSERT INTO temp.{lexicon.table} (rowid, embed_text) VALUES (?, ?)", indexed)
            lexicon.generation = generation
        except sqlite3.Error:
            self._drop_lexicon(self._lexicons.pop(user_id))

    def _delete_rows(self, conn: sqlite3.Connection, user_id: str, ids: Sequence[str]) -> list[tuple[int, str]]:
        """Delete the user's memories among `ids` and their vectors; (rowid, id) of each."""
        rows = []
        for memory_id in ids:
            row = conn.execute("SELECT rowid, id FROM memories WHERE id = ? AND user_id = ?", (memory_id, user_id)).fetchone()
            if row is not None:
                conn.execute("DELETE FROM memories WHERE rowid = ?", (row[0],))
                rows.append(tuple(row))
        self._delete_vectors(conn, [rowid for rowid, _ in rows], user_id)
        return rows

    def _rewrite(self, conn: sqlite3.Connection, index: IndexInfo, rowid: int, record: MemoryRecord,
                 vector: np.ndarray) -> None:
        """Rewrite the memory at `rowid`: its fields and text (FTS5 follows by trigger) and its vector."""
        conn.execute(f"UPDATE memories SET {_ASSIGNMENTS} WHERE rowid = ?", (*record_params(record), rowid))
        self._put_vector(conn, index, rowid, vector)

    def _touch(self, conn: sqlite3.Connection, users: Sequence[str]) -> None:
        """These users' memories changed in other ways than inserts (see `_note_changes`)."""
        for user_id in users:
            self._note(user_id, None)

    def delete_user(self, user_id: str, at: str) -> int:
        """Forget a user entirely: memories, expired ones, vectors, and the words in their history
        (which keeps one DELETE event per memory, without text, as the trace of the erasure)."""
        with self._transaction() as conn:
            rows = conn.execute("SELECT rowid, id FROM memories WHERE user_id = ?", (user_id,)).fetchall()
            conn.execute("DELETE FROM memories WHERE user_id = ?", (user_id,))
            conn.execute("DELETE FROM expired WHERE user_id = ?", (user_id,))
            conn.execute("DELETE FROM history WHERE user_id = ?", (user_id,))
            # Their notes too (a generation left without one makes other processes read views again).
            conn.execute("DELETE FROM changes WHERE user_id = ?", (user_id,))
            self._delete_vectors(conn, [r[0] for r in rows], user_id)
            self._write_events(conn, [HistoryEvent(mid, "DELETE", None, "user deleted", at) for _, mid in rows],
                               user_id=user_id)
        return len(rows)

    def _delete_vectors(self, conn: sqlite3.Connection, rowids: list[int], user_id: str) -> None:
        """Drop these rows of the user from every vector index, the one being built by a reindex
        included, and from the user's approximate index, in memory and on disk."""
        names = [r[0] for r in conn.execute("SELECT name FROM vector_indexes").fetchall()]
        for name in names:
            conn.executemany(f"DELETE FROM {name} WHERE rowid = ?", [(r,) for r in rowids])
        self._forget_nearest(user_id, rowids)

    def _forget_nearest(self, user_id: str | None, rowids: Sequence[int]) -> None:
        """Deleted or rewritten vectors leave the approximate indexes at once: the loaded ones
        drop the rows (and check themselves in full when next used), and the files are removed
        until saved again, so no copy of a forgotten vector stays on disk. None: every user."""
        with self._lock:
            for (owner, _), index in self._nearest.items():
                if user_id is None or owner == user_id:
                    index.forget(rowids)
        folder = Path(f"{self.path}.nearest")
        if self.path == ":memory:" or not folder.is_dir():
            return
        if user_id is None:
            shutil.rmtree(folder, ignore_errors=True)
            return
        for name in os.listdir(folder):
            target = index_file(self.path, name, user_id)
            if target is not None:
                target.unlink(missing_ok=True)
                rows_file(target).unlink(missing_ok=True)

    def _nearest_rows(self, user_id: str, view: "UserView", query: np.ndarray, count: int) -> np.ndarray:
        """Rows of the user's view drawn from their approximate index, which is loaded (or built)
        on first use, follows the view, and is saved beside the store as it grows."""
        key = (user_id, view.index)
        with self._lock:
            index = self._nearest.pop(key, None)
            if index is None:
                path = index_file(self.path, view.index, user_id)
                index = NearestIndex.load(view.dims, path) if path is not None else NearestIndex(view.dims)
            self._nearest[key] = index
            while len(self._nearest) > _MAX_NEAREST:
                self._save_nearest(self._nearest.pop(next(iter(self._nearest))))
        index.follow(view, view.vectors_from or self._lean_vectors(user_id, view.index))
        if index.unsaved >= max(_SAVE_AFTER, len(index) // 10):
            self._save_nearest(index)
        drawn = np.unique(index.nearest(query, count))
        rows, _ = view.rows_of(drawn, drawn)  # another user's rows cannot be in it; deleted ones are not in the view
        return rows

    def _lean_vectors(self, user_id: str, index_name: str) -> LeanVectors:
        return LeanVectors(partial(self._fetch_vectors, index_name), partial(self._stream_vectors, user_id, index_name))

    def _fetch_vectors(self, index_name: str, rowids: np.ndarray) -> list[bytes | None]:
        """The vectors as written of the given rows of index `index_name` (None where gone)."""
        found: dict[int, bytes] = {}
        wanted = [int(r) for r in rowids]
        for chunk in self._chunks(wanted):
            among, params = self._in("rowid", chunk)
            found.update(self._query(f"SELECT rowid, vec FROM {index_name} WHERE {among}", params))
        return [found.get(r) for r in wanted]

    def _stream_vectors(self, user_id: str, index_name: str, page: int = 20_000) -> Iterator[tuple[np.ndarray, list[bytes]]]:
        """All of the user's vectors in index `index_name`, in row order, a page at a time."""
        after = -1
        while True:
            rows = self._query(f"SELECT m.rowid, v.vec FROM memories m JOIN {index_name} v ON v.rowid = m.rowid "
                               "WHERE m.user_id = ? AND m.rowid > ? ORDER BY m.rowid LIMIT ?", (user_id, after, page))
            if not rows:
                return
            yield np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows)), [r[1] for r in rows]
            after = rows[-1][0]

    def _save_nearest(self, index: NearestIndex) -> None:
        """Keep an index's work for the next process (not for a read-only store, nor in memory)."""
        if self.read_only or index.path is None or not index.unsaved:
            return
        try:
            index.save()
        except OSError:  # derived data: the next process rebuilds what it cannot read
            pass

    def clear(self) -> None:
        """Remove every memory, vector and history event (the vector index keeps its model)."""
        with self._transaction() as conn:
            conn.execute("DELETE FROM memories")
            conn.execute("DELETE FROM expired")
            conn.execute("DELETE FROM history")
            for (name,) in conn.execute("SELECT name FROM vector_indexes").fetchall():
                conn.execute(f"DELETE FROM {name}")
            self._forget_nearest(None, [])
            self._nearest.clear()
        self._views.clear()

    # -- reads ------------------------------------------------------------------------------

    def _rows_by_ids(self, columns: str, user_id: str, ids: list[str], condition: str = "1") -> list[tuple]:
        """`columns` of the user's memories among `ids` that meet `condition`, in chunks that stay
        under SQLite's parameter limit. `+user_id` keeps SQLite on the id index."""
        rows: list[tuple] = []
        for chunk in self._chunks(ids):
            among, params = self._in("id", chunk)
            rows += self._query(f"SELECT {columns} FROM memories WHERE +user_id = ? AND {condition} AND {among}",
                                (user_id, *params))
        return rows

    def list(self, user_id: str, limit: int, cursor: str | None,
             filters: Filter | None) -> tuple[list[MemoryRecord], str | None]:
        """One page of a user's memories matching `filters` (a Filter, or its dict form), oldest first."""
        clause, params = filter_sql(Filter.parse(filters))
        after = int(cursor) if cursor else 0
        rows = self._query(
            f"SELECT m.rowid, {', '.join('m.' + c.strip() for c in COLUMNS.split(','))} FROM memories m "
            f"WHERE m.user_id = ? AND m.rowid > ? AND {clause} ORDER BY m.rowid LIMIT ?",
            (user_id, after, *params, limit + 1),
        )
        page = rows[:limit]
        next_cursor = str(page[-1][0]) if len(rows) > limit else None
        return [row_to_record(r[1:]) for r in page], next_cursor

    # -- service records (API keys, jobs) --------------------------------------------------------

    def _service_rows(self, sql: str, params: tuple) -> list[tuple]:
        if self.read_only and not self._query("SELECT 1 FROM sqlite_master WHERE name = 'service_records'"):
            return []  # a read-only file made before service records: it has none
        return super()._service_rows(sql, params)

    # -- memory nodes ----------------------------------------------------------------------------

    def citing(self, user_id: str, memory_id: str) -> list[MemoryRecord]:
        """The extracted memories whose evidence cites `memory_id` (a turn)."""
        rows = self._query(
            f"SELECT {COLUMNS} FROM memories m WHERE m.user_id = ? AND m.node_type NOT IN ('turn', 'session') "
            "AND EXISTS (SELECT 1 FROM json_each(m.metadata, '$.evidence') e WHERE e.value = ?)",
            (user_id, memory_id))
        return [row_to_record(r) for r in rows]

    # -- retention -------------------------------------------------------------------------------

    def expire(self, user_id: str, ids: Sequence[str], at: str, rule: str) -> int:
        """Move memories out of search into the expired table (with their vectors); recoverable until purged."""
        index = self.active_index()
        with self._transaction() as conn:
            moved = 0
            for memory_id in ids:
                row = conn.execute(f"SELECT rowid, {COLUMNS} FROM memories WHERE id = ? AND user_id = ?",
                                   (memory_id, user_id)).fetchone()
                if row is None:
                    continue
                record = row_to_record(row[1:])
                vec = (conn.execute(f"SELECT vec FROM {index.name} WHERE rowid = ?", (row[0],)).fetchone()
                       if index else None)
                conn.execute("INSERT OR REPLACE INTO expired (id, user_id, record, index_name, vec, expired_at, rule) "
                             "VALUES (?, ?, ?, ?, ?, ?, ?)",
                             (record.id, user_id, json.dumps(record.to_dict(), ensure_ascii=False),
                              index.name if index else None, vec[0] if vec else None, at, rule))
                conn.execute("DELETE FROM memories WHERE rowid = ?", (row[0],))
                self._delete_vectors(conn, [row[0]], user_id)
                self._write_events(conn, [HistoryEvent(record.id, "EXPIRE", record.text, None, at)], user_id=user_id)
                moved += 1
        return moved

    def restore(self, user_id: str, ids: Sequence[str], at: str, vectors: dict[str, np.ndarray]) -> int:
        """Put expired memories back. Each needs its vector for the active index: the saved one when
        the index is unchanged, else one from `vectors` (the caller re-embeds those)."""
        index = self._require_index()
        with self._transaction() as conn:
            restored = 0
            for memory_id in ids:
                row = conn.execute("SELECT record, index_name, vec FROM expired WHERE id = ? AND user_id = ?",
                                   (memory_id, user_id)).fetchone()
                if row is None:
                    continue
                record = record_from_dict(json.loads(row[0]))
                blob = row[2] if row[1] == index.name and row[2] is not None else None
                if blob is None:
                    if memory_id not in vectors:
                        raise StoreError(f"expired memory {memory_id} needs a new vector for index {index.name}")
                    blob = to_blob(vectors[memory_id])
                cur = conn.execute(f"INSERT INTO memories ({COLUMNS}) VALUES ({PLACEHOLDERS})", record_params(record))
                conn.execute(f"INSERT INTO {index.name} (rowid, vec) VALUES (?, ?)", (cur.lastrowid, blob))
                conn.execute("DELETE FROM expired WHERE id = ?", (memory_id,))
                self._write_events(conn, [HistoryEvent(record.id, "RESTORE", None, record.text, at)], user_id=user_id)
                restored += 1
        return restored

    def purge(self, user_id: str, at: str) -> int:
        """Delete a user's expired memories for good (their history keeps a PURGE event)."""
        with self._transaction() as conn:
            rows = conn.execute("SELECT id, record FROM expired WHERE user_id = ?", (user_id,)).fetchall()
            conn.execute("DELETE FROM expired WHERE user_id = ?", (user_id,))
            self._write_events(conn, [HistoryEvent(mid, "PURGE", json.loads(rec)["text"], None, at) for mid, rec in rows],
                               user_id=user_id)
        return len(rows)

    @contextmanager
    def reading(self) -> Iterator["SQLiteStore"]:
        """The store as it is now, for a long read such as an export: a second connection held in
        one read transaction, so everything read through it is one state while writers (this
        process's too) go on. WAL keeps that state readable until the block ends."""
        if self.path == ":memory:":  # one connection only: reads go through it as they are
            yield self
            return
        reader = SQLiteStore(self.path, create=False)
        try:
            reader._conn.execute("BEGIN")
            reader._conn.execute("SELECT COUNT(*) FROM meta").fetchone()  # the snapshot starts here
            yield reader
        finally:
            try:
                reader._conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            reader.close()

    @contextmanager
    def snapshot(self, user_id: str) -> Iterator[None]:
        """Within this block, every read of this thread about `user_id` (candidates, vectors,
        speakers, neighbours) sees one state of the user's memories, whatever other threads or
        processes write meanwhile: a search never meets a memory in one step that is gone in the
        next. Records are still fetched fresh, so a memory deleted meanwhile is left out."""
        pins = self._pins.__dict__.setdefault("views", {})
        outer = pins.get(user_id)
        pins[user_id] = outer or self._view(user_id)
        try:
            yield
        finally:
            if outer is None:
                pins.pop(user_id, None)

    def _view(self, user_id: str) -> "UserView":
        """One user's memories as arrays (vectors, ids, speakers, sessions), cached until the store
        changes: dense search, vector fetches and name checks then need no SQL."""
        pinned = getattr(self._pins, "views", {}).get(user_id)
        if pinned is not None:
            return pinned
        with self._lock:  # writes add to a cached view's pending parts
            index = self._require_index()
            generation = self._generation()
            cached = self._views.get(user_id)
            if cached and cached.index == index.name and cached.generation != generation:
                self._catch_up(user_id, cached, index, generation)
            if cached and cached.generation == generation and cached.index == index.name:
                if cached.pending:
                    cached = cached.merged()
                    self._views[user_id] = cached
                return cached
            # A large user's vectors stay in the store (read per candidate; see `UserView.vectors_from`).
            lean = self._query("SELECT count(*) FROM memories WHERE user_id = ?", (user_id,))[0][0] >= self.dense_exact_below
            # (Every memory has a vector in the active index; a lean view does not read them to
            # know it: a vector gone since is scored as missing.)
            view = UserView.build_paged(generation, index.name, index.dims,
                                        self._query_pages(_view_rows_sql(index.name, lean), (user_id,)))
            if lean:
                view.vectors_from = self._lean_vectors(user_id, index.name)
            self._keep_view(user_id, view)
            return view

    def _catch_up(self, user_id: str, view: "UserView", index: IndexInfo, generation: int) -> None:
        """Bring a view taken at an older generation up to `generation` where the `changes` table
        shows every write since then and, for this user, inserts only (other processes' adds):
        the new rows join it as a pending part, as this process's own inserts do. Otherwise the
        view stays behind and is read again. Rows written after `generation` may come in too;
        the next catch-up starts past them (new rows are those past the view's last rowid)."""
        behind = generation - view.generation
        if self._depth > 0 or not 0 < behind <= CHANGES_KEPT:
            return
        try:
            notes = self._query("SELECT generation, user_id, first_rowid FROM changes "
                                "WHERE generation > ? AND generation <= ?", (view.generation, generation))
        except StoreError:  # a file from before the table, opened read-only
            return
        if len({g for g, _, _ in notes}) != behind:  # a write left no note (an older memlane wrote it)
            return
        if any(user is None or (user == user_id and first is None) for _, user, first in notes):
            return
        mine = any(user == user_id for _, user, _ in notes)
        found: list[tuple] = []
        if mine:
            held_parts = [part for part in (view, *view.pending) if len(part.rowids)]
            last = max(int(part.rowids[-1]) for part in held_parts) if held_parts else 0
            lean = view.vectors_from is not None
            found = self._query(_view_rows_sql(index.name, lean, newer=True), (user_id, last))
            held = len(view.ids) + sum(len(p.ids) for p in view.pending)
            if not lean and held + len(found) >= self.dense_exact_below:
                return  # grown large: read again as a lean view
            if found:
                self._append_part(view, user_id, generation, index, [row[:12] for row in found],
                                  [row[12] for row in found], [(row[0], row[13]) for row in found])
        self._catch_up_lexicon(user_id, view.generation, generation, [(row[0], row[13]) for row in found])
        view.generation = generation

    def _catch_up_lexicon(self, user_id: str, before: int, generation: int, indexed: list[tuple[int, str]]) -> None:
        """The user's term index follows its view from `before` to `generation` with the view's
        new (rowid, indexed text) rows, as this process's own writes do (`_follow_lexicons`): a
        rebuild would re-index every memory of the user after each add of another process. One
        behind its view is left, as there: `_lexicon` rebuilds it when next used."""
        lexicon = self._lexicons.get(user_id)
        if lexicon is not None and lexicon.generation == before:
            self._extend_lexicon(user_id, lexicon, indexed, generation)

    def _keep_view(self, user_id: str, view: "UserView") -> None:
        if user_id not in self._views and len(self._views) >= _MAX_VIEWS:
            self._views.pop(next(iter(self._views)))
        self._views[user_id] = view

    def _allowed_mask(self, user_id: str, view: "UserView", filters: Filter | None) -> np.ndarray | None:
        """Which of the view's rows `filters` lets through; None when it restricts nothing."""
        filters = Filter.parse(filters)
        if filters.is_empty:
            return None
        if held_filter(filters):  # the common cases, answered from the view
            return held_filter_mask(view, filters)
        clause, params = filter_sql(filters)
        rows = self._query(f"SELECT m.rowid FROM memories m WHERE m.user_id = ? AND {clause}", (user_id, *params))
        return np.isin(view.rowids, np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows)))

    def _postings(self, user_id: str, view: "UserView", term: str) -> tuple[np.ndarray, np.ndarray]:
        """The view rows whose indexed text holds `term` (as FTS5 matches it: stemmed, and as a
        phrase where it has several tokens) and how often each holds it. Read from FTS5's term
        positions, which is several times faster than marking matches in each text; kept with the
        view, since one search asks for the same terms several times."""
        cached = view.postings.get(term)
        if cached is not None:
            return cached
        tokens = self._tokens(term)
        with self._lock:  # the user's term index stays in place while it is read
            terms, where, bounds = self._term_positions(user_id, view) if tokens else ("", "", ())
            if not tokens:
                found = (np.zeros(0, np.int64), np.zeros(0, np.int64))
            elif len(tokens) == 1:
                docs = int_list(self._query(f"SELECT group_concat(doc) FROM {terms} WHERE term = ?{where}",
                                             (tokens[0], *bounds))[0][0])
                found = view.rows_of(*_counted(docs))
            elif view.vectors_from is not None and terms == "temp.memory_terms":
                # A large user's phrase: FTS5's phrase query, each memory counted once. Its words'
                # positions would be every occurrence of each (47 ms a phrase at a million).
                rows = self._phrase_rows(user_id, view, term, -1)
                found = (rows, np.ones(len(rows), np.int64))
            else:  # a phrase: its tokens at consecutive offsets of one memory
                starts = None
                for shift, token in enumerate(tokens):
                    docs, offsets = (int_list(v) for v in self._query(
                        f"SELECT group_concat(doc), group_concat(offset) FROM {terms} WHERE term = ?{where}",
                        (token, *bounds))[0])
                    here = docs * _OFFSETS + (offsets - shift)  # one key per (memory, start), ascending
                    starts = here if starts is None else _sorted_common(starts, here)
                found = view.rows_of(*_counted(starts // _OFFSETS))
        if len(view.postings) >= _MAX_CACHED_TERMS:
            view.postings.clear()
        view.postings[term] = found
        return found

    def _phrase_docs(self, text: str, bounds: tuple[int, ...], limit: int = -1) -> np.ndarray:
        """Row numbers (ascending, at most `limit`; -1: all) within `bounds` whose indexed text
        holds `text`'s words as a phrase; StoreError where FTS5 cannot parse the phrase."""
        found = self._query("SELECT rowid FROM memories_fts WHERE memories_fts MATCH ? AND rowid BETWEEN ? AND ? "
                            "ORDER BY rowid LIMIT ?", (_fts_phrase(text), *bounds, limit))
        return np.fromiter((r[0] for r in found), dtype=np.int64, count=len(found))

    def _allowed_rows(self, user_id: str, view: "UserView", filters: Filter, rows: np.ndarray) -> np.ndarray:
        clause, params = filter_sql(filters)
        rowids = [int(r) for r in view.rowids[rows]]
        passed = {r[0] for r in self._query(  # the rows as one JSON parameter: one statement, however many
            f"SELECT m.rowid FROM memories m WHERE m.rowid IN (SELECT value FROM json_each(?)) "
            f"AND m.user_id = ? AND {clause}", (json.dumps(rowids), user_id, *params))}
        return np.array([r for r, rowid in zip(rows, rowids) if rowid in passed], dtype=np.int64)

    def _phrase_rows(self, user_id: str, view: "UserView", text: str, limit: int) -> np.ndarray:
        """View rows whose indexed text holds `text`'s words as a phrase, oldest first (FTS5's
        own phrase query: no term's postings cross into Python)."""
        if len(view.rowids) == 0:
            return np.zeros(0, np.int64)
        try:
            table, _, bounds = self._term_positions(user_id, view)
            if table == "temp.memory_terms":  # the user holds most of the file
                # Their rowid span, no join: the few other users' rows in it are dropped below.
                rowids = self._phrase_docs(text, bounds, limit)
            else:
                found = self._query("SELECT f.rowid FROM memories_fts f JOIN memories m ON m.rowid = f.rowid "
                                    "WHERE memories_fts MATCH ? AND m.user_id = ? ORDER BY f.rowid LIMIT ?",
                                    (_fts_phrase(text), user_id, limit))
                rowids = np.array([r[0] for r in found], dtype=np.int64)
        except StoreError:  # a phrase FTS5 cannot parse finds nothing
            return np.zeros(0, np.int64)
        return view.rows_of(rowids, rowids)[0]

    def _counted_frequency(self, user_id: str, view: "UserView", term: str) -> int | None:
        """A term's memories within the user's rowid span, counted by FTS5 where the user holds
        most of the file (see `_term_positions`); None for a user among many. A common term is
        estimated, not counted to the end (see `bm25.spread_count`)."""
        tokens = self._tokens(term)
        table, _, bounds = self._term_positions(user_id, view)
        if not tokens or table != "temp.memory_terms":
            return None
        try:
            rowids = self._phrase_docs(term, bounds, COUNTED_AT_MOST + 1)
        except StoreError:  # a phrase FTS5 cannot parse finds nothing
            return 0
        return min(bm25.spread_count(rowids, bounds, COUNTED_AT_MOST), len(view.ids))

    def _term_positions(self, user_id: str, view: "UserView") -> tuple[str, str, tuple[int, ...]]:
        """Where to read the user's term positions: (table, extra condition, its parameters).
        FTS5's shared table, bounded by the user's rowid span, where the user holds most of the
        file's memories (a store of one user); else the user's own term index (see `Lexicon`):
        the shared table is read term by term over every user's memories, whatever the bounds."""
        if len(view.rowids) == 0:
            return "temp.memory_terms", " AND doc BETWEEN ? AND ?", (0, -1)
        first, last = self._query(_ROWID_BOUNDS)[0]
        if first is not None and len(view.rowids) >= _OWN_LEXICON_BELOW * (last - first + 1):
            return "temp.memory_terms", " AND doc BETWEEN ? AND ?", (int(view.rowids[0]), int(view.rowids[-1]))
        return f"temp.{self._lexicon(user_id, view.generation).table}_terms", "", ()

    def _lexicon(self, user_id: str, generation: int) -> Lexicon:
        """The user's term index for this generation, built from the user's memories if needed."""
        with self._lock:
            lexicon = self._lexicons.pop(user_id, None)
            if lexicon is not None and lexicon.generation != generation:
                self._drop_lexicon(lexicon)
                lexicon = None
            if lexicon is None:
                while len(self._lexicons) >= _MAX_LEXICONS:
                    self._drop_lexicon(self._lexicons.pop(next(iter(self._lexicons))))
                self._lexicon_serial += 1
                lexicon = Lexicon(f"user_terms_{self._lexicon_serial}", generation)
                try:
                    self._conn.execute(
                        f"CREATE VIRTUAL TABLE temp.{lexicon.table} USING fts5 (embed_text, tokenize='{TOKENIZER}')")
                    self._conn.execute(
                        f"CREATE VIRTUAL TABLE temp.{lexicon.table}_terms USING fts5vocab(temp, {lexicon.table}, 'instance')")
                    self._conn.execute(f"INSERT INTO temp.{lexicon.table} (rowid, embed_text) "
                                       "SELECT rowid, embed_text FROM memories WHERE user_id = ?", (user_id,))
                except sqlite3.Error as exc:
                    self._drop_lexicon(lexicon)
                    raise StoreError(f"cannot index the terms of user {user_id!r} in {self.path}: {exc}") from None
            self._lexicons[user_id] = lexicon  # most recently used last
            return lexicon

    def _drop_lexicon(self, lexicon: Lexicon) -> None:
        try:
            self._conn.execute(f"DROP TABLE IF EXISTS temp.{lexicon.table}_terms")
            self._conn.execute(f"DROP TABLE IF EXISTS temp.{lexicon.table}")
        except sqlite3.Error:  # a scratch table of this connection: left behind, it only takes space
            pass

    def _tokens(self, term: str) -> tuple[str, ...]:
        """`term` as FTS5 tokenizes it for the index (case-folded, no diacritics, Porter-stemmed)."""
        with self._lock:
            tokens = self._term_tokens.get(term)
            if tokens is None:
                try:
                    self._conn.execute("INSERT OR REPLACE INTO temp.query_text (rowid, text) VALUES (1, ?)", (term,))
                    tokens = tuple(r[0] for r in self._conn.execute("SELECT term FROM temp.query_terms ORDER BY offset"))
                    self._conn.execute("DELETE FROM temp.query_text")
                except sqlite3.Error as exc:
                    raise StoreError(f"cannot tokenize the query in {self.path}: {_reason(exc)}") from None
                if len(self._term_tokens) >= _MAX_CACHED_TERMS * 8:
                    self._term_tokens.clear()
                self._term_tokens[term] = tokens
            return tokens

    def _index_tokens(self, rows: Sequence[tuple[int, str]]) -> list[list[str]]:
        """The tokens of each (rowid, indexed text), in order, as the term index holds them."""
        out: list[list[str]] = [[] for _ in rows]
        with self._lock:
            try:
                self._conn.executemany("INSERT OR REPLACE INTO temp.query_text (rowid, text) VALUES (?, ?)",
                                       ((i, text) for i, (_, text) in enumerate(rows, 1)))
                for doc, term in self._conn.execute("SELECT doc, term FROM temp.query_terms ORDER BY doc, offset"):
                    out[doc - 1].append(term)
            finally:
                self._conn.execute("DELETE FROM temp.query_text")
        return out

    def _lengths(self, user_id: str, view: "UserView") -> np.ndarray:
        """Each view row's indexed text length in tokens, as FTS5 counted it; read on first need."""
        if view.lengths is None:
            view.lengths = self._read_lengths(user_id, view.rowids)
        return view.lengths

    def _read_lengths(self, user_id: str, rowids: np.ndarray) -> np.ndarray:
        if len(rowids) == 0:
            return np.zeros(0, dtype=np.float64)
        size = dict(self._query(
            "SELECT d.id, d.sz FROM memories m JOIN memories_fts_docsize d ON d.id = m.rowid "
            "WHERE m.user_id = ? AND m.rowid BETWEEN ? AND ?", (user_id, int(rowids.min()), int(rowids.max()))))
        return np.array([bm25.first_varint(size.get(int(r), b"")) for r in rowids], dtype=np.float64)

    def _folded_texts(self, user_id: str, view: "UserView") -> list[str]:
        """The view's texts, case-folded, read on first need: most searches never look at them,
        and reading them with every view would cost a long-history store megabytes per write."""
        if view.folded_texts is None:
            view.folded_texts = self._read_folded_texts(user_id, view.rowids)
        return view.folded_texts

    def _read_folded_texts(self, user_id: str, rowids: np.ndarray) -> list[str]:
        text_of = dict(self._query("SELECT rowid, text FROM memories WHERE user_id = ?", (user_id,)))
        return [text_of.get(int(r), "").casefold() for r in rowids]

    def _stored_bytes(self) -> int:
        return os.path.getsize(self.path) if self.path != ":memory:" and os.path.exists(self.path) else 0

    def close(self) -> None:
        with self._lock:
            for index in self._nearest.values():
                self._save_nearest(index)
            self._nearest.clear()
            self._conn.close()

    # -- export and import --------------------------------------------------------------------

    def stored_vectors(self, user_id: str, ids: Sequence[str]) -> dict[str, np.ndarray]:
        """Each of the user's memories among `ids` with its vectors in the active index, as written:
        a (1 + k, dims) array, its own vector then its k passages'."""
        index = self.active_index()
        if index is None or not ids:
            return {}
        out: dict[str, np.ndarray] = {}
        for chunk in self._chunks(ids):
            among, params = self._in("m.id", chunk)
            for mid, blob in self._query(
                    f"SELECT m.id, v.vec FROM memories m JOIN {index.name} v ON v.rowid = m.rowid "
                    f"WHERE m.user_id = ? AND {among}", (user_id, *params)):
                out[mid] = np.frombuffer(blob, dtype=np.float32).reshape(-1, index.dims)
        return out


_OFFSETS = 1 << 32  # more token offsets than any memory has: (memory, offset) as one integer


def _fts_phrase(text: str) -> str:
    """`text` as one FTS5 phrase (its double quotes doubled)."""
    return '"' + text.replace('"', '""') + '"'


def _sorted_common(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The values of ascending `a` also in ascending `b`: a binary search each, where sorting
    both together (`np.intersect1d`) took seconds for common words at a million memories."""
    if not len(a) or not len(b):
        return a[:0]
    if np.any(b[1:] < b[:-1]):  # the term tables list positions in order; never assumed
        b = np.sort(b)
    at = np.minimum(np.searchsorted(b, a), len(b) - 1)
    return a[b[at] == a]


def _counted(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct values, ascending, and how often each occurs."""
    if len(values) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    if len(values) > 1 and (np.diff(values) < 0).any():  # FTS5 gives a term's matches in row order; checked, not assumed
        values = np.sort(values)
    edges = np.flatnonzero(np.diff(values)) + 1
    starts = np.concatenate(([0], edges))
    return values[starts], np.diff(np.concatenate((starts, [len(values)])))


def _view_rows_sql(index_name: str, lean: bool, *, newer: bool = False) -> str:
    """A user's rows (parameter: the user) as `UserView.build` takes them, a lean view's without
    their vectors. With `newer`, only those past a rowid (a second parameter), each followed by
    its text and indexed text (what a view's pending part carries)."""
    return (f"SELECT m.rowid, m.id, m.node_type, m.speaker, m.session_id, m.turn_index, {'NULL' if lean else 'v.vec'}, "
            f"m.superseded_by IS NOT NULL, m.event_start IS NOT NULL, m.event_start, m.event_end, "
            f"substr(m.session_date, 1, 10){', m.text, m.embed_text' if newer else ''} "
            f"FROM memories m {'' if lean else f'JOIN {index_name} v ON v.rowid = m.rowid '}"
            f"WHERE m.user_id = ?{' AND m.rowid > ?' if newer else ''} ORDER BY m.rowid")
