"""A persistent vector cache: never embed the same text with the same weights twice.

`VectorCache` is one SQLite file (WAL mode, so readers never wait on the writer) holding
float32 vectors keyed by (embedder fingerprint, sha256 of the text as it is embedded). Several
stores and several processes may share it. `CachedEmbedder` puts it in front of any embedder.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Mapping, Sequence

import numpy as np

from memlane.embed._common import Purpose, check_purpose
from memlane.errors import LLMError, StoreError

if TYPE_CHECKING:
    from memlane.embed import Embedder

BUSY_TIMEOUT_S = 30.0
_SQL_VARIABLES = 500  # keys per SELECT ... IN (...), well under SQLite's limit

_SCHEMA = """
CREATE TABLE IF NOT EXISTS vectors (
    fingerprint TEXT NOT NULL,
    key TEXT NOT NULL,
    vector BLOB NOT NULL,
    PRIMARY KEY (fingerprint, key)
) WITHOUT ROWID
"""


def cache_key(text: str, purpose: Purpose, prefix: str = "") -> str:
    """sha256 hex of the purpose and the text exactly as the model sees it (prefix included).

    The purpose is part of the key even when no prefix is set, so an embedder that treats queries
    and documents differently inside never gets one served for the other.
    """
    return hashlib.sha256(f"{purpose}\x00{prefix}{text}".encode("utf-8")).hexdigest()


def read_ahead(path: str | Path, limit_bytes: int = 1 << 30) -> int:
    """Read a cache file (and its write-ahead log) once, front to back, so the OS holds it in
    memory: a search's look-ups are random reads, and on a cold disk each costs a read from the
    device (~0.5 ms on a cloud VM, ~25 ms per search). Files over `limit_bytes` are left alone.
    Returns the bytes read."""
    main = Path(path).expanduser()
    total = 0
    for part in (main, main.with_name(main.name + "-wal")):
        try:
            if part.stat().st_size > limit_bytes:
                continue
            with open(part, "rb", buffering=0) as handle:
                while chunk := handle.read(4 << 20):
                    total += len(chunk)
        except OSError:  # absent or unreadable: the cache will say so when it is opened
            continue
    return total


class VectorCache:
    """float32 vectors in a SQLite file, keyed by (fingerprint, key). Safe across threads and processes."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).expanduser()
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(
                str(self.path), timeout=BUSY_TIMEOUT_S, check_same_thread=False, isolation_level=None
            )
            self._conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
            self._conn.execute("PRAGMA journal_mode = WAL")
            self._conn.execute("PRAGMA synchronous = NORMAL")
            self._conn.execute(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(
                f"cannot open the vector cache {self.path}: {exc}. Fix: make the directory writable, "
                "point embedder.cache_path elsewhere, or set it to 'off'."
            ) from None

    def get_many(self, fingerprint: str, keys: Iterable[str]) -> dict[str, np.ndarray]:
        """The cached vectors among `keys`, as {key: float32 vector}; missing keys are absent."""
        wanted = list(dict.fromkeys(keys))
        found: dict[str, np.ndarray] = {}
        with self._lock:
            try:
                for start in range(0, len(wanted), _SQL_VARIABLES):
                    chunk = wanted[start : start + _SQL_VARIABLES]
                    marks = ",".join("?" * len(chunk))
                    rows = self._conn.execute(
                        f"SELECT key, vector FROM vectors WHERE fingerprint = ? AND key IN ({marks})",
                        [fingerprint, *chunk],
                    )
                    for key, blob in rows:
                        found[key] = np.frombuffer(blob, dtype="<f4").astype(np.float32)
            except sqlite3.Error as exc:
                raise StoreError(f"cannot read the vector cache {self.path}: {exc}") from None
        return found

    def put_many(self, fingerprint: str, items: Mapping[str, np.ndarray] | Iterable[tuple[str, np.ndarray]]) -> None:
        """Store {key: vector} (or (key, vector) pairs) in one transaction; existing keys are replaced."""
        pairs = items.items() if isinstance(items, Mapping) else items
        rows = [(fingerprint, key, np.asarray(vec, dtype="<f4").tobytes()) for key, vec in pairs]
        if not rows:
            return
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                self._conn.executemany(
                    "INSERT OR REPLACE INTO vectors (fingerprint, key, vector) VALUES (?, ?, ?)", rows
                )
                self._conn.execute("COMMIT")
            except BaseException as exc:
                try:  # SQLite has already rolled back after a full disk or an I/O error
                    if self._conn.in_transaction:
                        self._conn.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
                if isinstance(exc, sqlite3.Error):
                    hint = " (free space on its disk, or set embedder.cache_path = 'off')" if "full" in str(exc) else ""
                    raise StoreError(f"cannot write the vector cache {self.path}: {exc}{hint}") from None
                raise

    def count(self, fingerprint: str | None = None) -> int:
        """Number of cached vectors, for one fingerprint or in all."""
        with self._lock:
            if fingerprint is None:
                return self._conn.execute("SELECT count(*) FROM vectors").fetchone()[0]
            return self._conn.execute(
                "SELECT count(*) FROM vectors WHERE fingerprint = ?", (fingerprint,)
            ).fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> "VectorCache":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"VectorCache({str(self.path)!r})"


class CachedEmbedder:
    """An embedder in front of a `VectorCache`: same name, dims and fingerprint as `inner`.

    Within one call identical texts are embedded once; texts already cached are not embedded at all;
    new vectors are stored batch by batch, so an interrupted bulk job keeps what it finished.
    `hits` and `misses` count distinct texts per call, summed over calls.
    """

    def __init__(self, inner: Embedder, cache: VectorCache, *, cache_queries: bool = False) -> None:
        self.inner = inner
        self.cache = cache
        # Questions are rarely asked twice; caching them would only flatter search latency.
        self.cache_queries = cache_queries
        self.hits = 0
        self.misses = 0

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def dims(self) -> int:
        return self.inner.dims

    @property
    def fingerprint(self) -> str:
        return self.inner.fingerprint

    @property
    def batch_size(self) -> int:
        return int(getattr(self.inner, "batch_size", 64))

    def _prefix(self, purpose: Purpose) -> str:
        return str(getattr(self.inner, f"{purpose}_prefix", "") or "")

    def encode(self, texts: Sequence[str], purpose: Purpose = "document") -> np.ndarray:
        check_purpose(purpose)
        dims = self.dims
        if len(texts) == 0:
            return np.zeros((0, dims), dtype=np.float32)
        if purpose == "query" and not self.cache_queries:
            return np.asarray(self.inner.encode(texts, purpose=purpose), dtype=np.float32)
        fingerprint = self.fingerprint
        prefix = self._prefix(purpose)
        key_of = {text: cache_key(text, purpose, prefix) for text in dict.fromkeys(texts)}

        vectors = {k: v for k, v in self.cache.get_many(fingerprint, key_of.values()).items() if v.shape == (dims,)}
        missing = [text for text, key in key_of.items() if key not in vectors]
        self.hits += len(key_of) - len(missing)
        self.misses += len(missing)

        step = self.batch_size
        for start in range(0, len(missing), step):
            batch = missing[start : start + step]
            encoded = np.asarray(self.inner.encode(batch, purpose=purpose), dtype=np.float32)
            if encoded.shape != (len(batch), dims):
                raise LLMError(
                    f"embedder '{self.name}' returned shape {encoded.shape} for {len(batch)} texts; "
                    f"expected ({len(batch)}, {dims})"
                )
            fresh = {key_of[text]: row for text, row in zip(batch, encoded)}
            self.cache.put_many(fingerprint, fresh)
            vectors.update(fresh)

        return np.stack([vectors[key_of[text]] for text in texts]).astype(np.float32, copy=False)

    def __repr__(self) -> str:
        return f"CachedEmbedder({self.inner!r}, {self.cache!r})"
