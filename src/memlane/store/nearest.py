"""An approximate nearest-neighbour index over one user's vectors, for users too large to scan:
usearch's HNSW graph over int8-quantized copies of their vectors (own and passages'), keyed by row
number. Dense candidates are drawn from it and re-scored exactly from the user's view, so the
quantization only decides which memories are looked at, never their scores.

It is derived data. The store's vectors stay the only real copy; the index is checked against the
user's view before use (its keys and a checksum of each memory's vectors), so a missing, stale or
damaged file is rebuilt or brought up to date, never trusted. A deleted memory leaves the index
at once (and the file is removed until saved again), and a search only ever re-scores rows of
the asking user's own view: another user's or a deleted memory cannot come back through it.

Parameters measured on 2 cores (benchmarks/results/scale-sqlite.md): int8 needs 384 bytes a
vector instead of 1,536. At a million memories of one user (100 questions, the exact top 10 as
truth), connectivity 16 kept 0.956 / 0.960 / 0.974 / 0.984 of it with expansion 512 / 1,024 /
2,048 / 4,096 at search; connectivity 24 kept 0.965 / 0.979 / 0.983 / 0.988 with 1,024 / 1,536 /
1,792 / 2,048, for about 4 ms more a search than 16 with 1,024 and 60 MB more memory. The misses
are whole groups of equal vectors (the store repeats each real text about five times): a
search's candidate list fills with copies of a few texts, so it needs a deeper one.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import zlib
from pathlib import Path

import numpy as np

from memlane.store.view import LeanVectors, UserView

CONNECTIVITY = 24  # graph edges per vector
EXPANSION_ADD = 128  # candidates examined when linking a new vector
EXPANSION_SEARCH = 2048  # candidates examined per search (at least the count asked for)
_MAGIC = b"memlane-nearest-v1\n"
_SERIALS = iter(range(1, 1 << 62))  # the view each index last matched (see `NearestIndex.follow`)


def blob_checksum(blob: bytes) -> int:
    """A memory's vectors as written, summed up: its length and CRC-32. A rewritten memory keeps
    its row number, not its checksum."""
    return (len(blob) << 32) | zlib.crc32(blob)


def _checksums(blobs: list[bytes]) -> np.ndarray:
    return np.fromiter((blob_checksum(b) for b in blobs), dtype=np.uint64, count=len(blobs))


def lineage(view: UserView) -> int:
    """A serial for the view as read from the store, kept by the views merged from it (they only
    add rows): an index that matched an ancestor needs only the rows added since."""
    serial = view.derived.get("lineage")
    if serial is None:
        serial = view.derived["lineage"] = next(_SERIALS)
    return serial


def _vectors(rowids: np.ndarray, blobs: list[bytes], dims: int) -> tuple[np.ndarray, np.ndarray]:
    """(keys, vectors): every vector of each BLOB (own, then passages') under its row number."""
    vectors = np.frombuffer(b"".join(blobs), dtype=np.float32).reshape(-1, dims)
    counts = [len(b) // (4 * dims) for b in blobs]
    return np.repeat(rowids.astype(np.uint64), counts), vectors


class NearestIndex:
    """One user's approximate index. Thread-safe; `follow` brings it up to date with a view."""

    def __init__(self, dims: int, path: Path | None = None) -> None:
        from usearch.index import Index

        self.dims = dims
        self.path = path
        self._index = Index(ndim=dims, metric="cos", dtype="i8", connectivity=CONNECTIVITY,
                            expansion_add=EXPANSION_ADD, expansion_search=EXPANSION_SEARCH, multi=True)
        self.keys = np.zeros(0, np.uint64)  # row numbers held, ascending
        self.sums = np.zeros(0, np.uint64)  # their checksums (see `blob_checksum`)
        self.matched: int | None = None  # lineage of the view last matched; None: check in full
        self.unsaved = 0  # rows added or removed since the file was written
        self._lock = threading.RLock()

    def __len__(self) -> int:
        return len(self.keys)

    # -- keeping it true ------------------------------------------------------------------------

    def follow(self, view: UserView, reads: LeanVectors) -> None:
        """Make the index hold exactly the view's rows with their current vectors (read through
        `reads`, the store's reads of the view's vector index). A view merged from the one last matched only adds rows:
        those are added. Any other view is checked in full, page by page (row numbers and
        checksums): stale and deleted rows leave, missing ones are added."""
        with self._lock:
            serial = lineage(view)
            if self.matched == serial:
                newest = int(self.keys[-1]) if len(self.keys) else -1
                fresh = view.rowids[view.rowids > newest]
                if len(fresh):
                    blobs = reads.fetch(fresh)
                    kept = [i for i, b in enumerate(blobs) if b]
                    self._add(fresh[kept], [blobs[i] for i in kept])
            else:
                self._reconcile(view, reads)
            self.matched = serial

    def _reconcile(self, view: UserView, reads: LeanVectors) -> None:
        seen_keys, seen_sums = [], []
        for rowids, blobs in reads.stream():
            keep = np.isin(rowids, view.rowids)  # rows written after the view wait for the next one
            rowids, blobs = rowids[keep], [b for b, k in zip(blobs, keep) if k]
            sums = _checksums(blobs)
            if len(self.keys):
                at = np.minimum(np.searchsorted(self.keys, rowids.astype(np.uint64)), len(self.keys) - 1)
                same = (self.keys[at] == rowids.astype(np.uint64)) & (self.sums[at] == sums)
            else:
                same = np.zeros(len(rowids), bool)
            seen_keys.append(rowids.astype(np.uint64)[same])
            seen_sums.append(sums[same])
            changed = np.flatnonzero(~same)
            if len(changed):
                held = rowids[changed].astype(np.uint64)
                stale = held[np.isin(held, self.keys)]
                if len(stale):
                    self._index.remove(stale)
                self._insert(rowids[changed], [blobs[i] for i in changed])
                seen_keys.append(held)
                seen_sums.append(sums[changed])
        keys = np.concatenate(seen_keys) if seen_keys else np.zeros(0, np.uint64)
        sums = np.concatenate(seen_sums) if seen_sums else np.zeros(0, np.uint64)
        order = np.argsort(keys, kind="stable")
        keys, sums = keys[order], sums[order]
        gone = self.keys[~np.isin(self.keys, keys)]
        if len(gone):
            self._index.remove(gone)
            self.unsaved += len(gone)
        self.keys, self.sums = keys, sums

    def _insert(self, rowids: np.ndarray, blobs: list[bytes]) -> None:
        """Every vector of these rows into the graph (their keys and checksums are the caller's)."""
        keys, vectors = _vectors(rowids, blobs, self.dims)
        self._index.add(keys, vectors, threads=os.cpu_count() or 1)
        self.unsaved += len(rowids)

    def _add(self, rowids: np.ndarray, blobs: list[bytes]) -> None:
        """Rows newer than every row held."""
        if not len(rowids):
            return
        self._insert(rowids, blobs)
        self.keys = np.concatenate([self.keys, rowids.astype(np.uint64)])
        self.sums = np.concatenate([self.sums, _checksums(blobs)])

    def forget(self, rowids) -> None:
        """Drop deleted rows now (a search must not meet them, and neither may the file): the
        next `follow` checks the index in full."""
        with self._lock:
            rowids = np.asarray(sorted(rowids), dtype=np.uint64)
            held = rowids[np.isin(rowids, self.keys)]
            if len(held):
                self._index.remove(held)
                keep = ~np.isin(self.keys, held)
                self.keys, self.sums = self.keys[keep], self.sums[keep]
                self.unsaved += len(held)
            self.matched = None

    # -- searching ------------------------------------------------------------------------------

    def nearest(self, query: np.ndarray, count: int) -> np.ndarray:
        """Row numbers of up to `count` nearest vectors (own or passages', so a row may come
        twice), nearest first."""
        with self._lock:
            if not len(self.keys):
                return np.zeros(0, np.int64)
            self._index.expansion_search = max(EXPANSION_SEARCH, count)
            found = self._index.search(np.asarray(query, dtype=np.float32), count, threads=1)
            return np.asarray(found.keys, dtype=np.int64)

    # -- the file -------------------------------------------------------------------------------

    def save(self) -> None:
        """Write the index beside the store: the graph in usearch's own file, then the rows file
        (row numbers, checksums, and the graph file's size and CRC), each atomically. A crash
        between the two leaves a pair that does not match, which `load` refuses: rebuilt, never
        trusted."""
        if self.path is None:
            return
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            scratch = self.path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
            self._index.save(str(scratch))
            with open(scratch, "rb+") as graph:
                os.fsync(graph.fileno())
            size, crc = _file_crc(scratch)
            os.replace(scratch, self.path)
            header = json.dumps({"dims": self.dims, "rows": len(self.keys), "graph_size": size,
                                 "graph_crc": crc}).encode() + b"\n"
            rows = rows_file(self.path)
            scratch = rows.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
            with open(scratch, "wb") as out:
                out.write(_MAGIC + header + self.keys.tobytes() + self.sums.tobytes())
                out.flush()
                os.fsync(out.fileno())
            os.replace(scratch, rows)
            self.unsaved = 0

    @classmethod
    def load(cls, dims: int, path: Path) -> "NearestIndex":
        """The index saved at `path`, or an empty one where there is none, or it is damaged, of
        other dimensions, or its two files do not match (it is rebuilt from the store then).
        The graph is read by usearch straight from its file. Must be `follow`ed before use."""
        from usearch.index import Index

        index = cls(dims, path)
        try:
            data = rows_file(path).read_bytes()
            if not data.startswith(_MAGIC):
                raise ValueError("not an index file")
            end = data.index(b"\n", len(_MAGIC))
            header = json.loads(data[len(_MAGIC):end])
            body = memoryview(data)[end + 1:]
            count = header["rows"]
            if header["dims"] != dims or len(body) != 16 * count:
                raise ValueError("damaged or of other dimensions")
            if _file_crc(path) != (header["graph_size"], header["graph_crc"]):
                raise ValueError("the graph is not the one these rows were saved with")
            keys = np.frombuffer(body[:8 * count], np.uint64).copy()
            sums = np.frombuffer(body[8 * count:], np.uint64).copy()
            restored = Index.restore(str(path))
            if restored is None or restored.ndim != dims:
                raise ValueError("unreadable graph")
        except (OSError, ValueError, KeyError, TypeError, RuntimeError):
            return index
        restored.expansion_add = EXPANSION_ADD
        index._index, index.keys, index.sums = restored, keys, sums
        return index


def _file_crc(path: Path) -> tuple[int, int]:
    """A file's size and CRC-32, read a few megabytes at a time."""
    crc, size = 0, 0
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 22):
            crc, size = zlib.crc32(chunk, crc), size + len(chunk)
    return size, crc


def rows_file(graph: Path) -> Path:
    """The file beside a saved graph holding its row numbers and their checksums."""
    return graph.with_suffix(".rows")


def index_file(store_path: str, index_name: str, user_id: str) -> Path | None:
    """Where a user's index is kept beside a store file (None for an in-memory store). The name
    is a digest of the user id: ids may hold any character, and a listing should not show them."""
    if store_path == ":memory:":
        return None
    digest = hashlib.sha256(user_id.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    return Path(f"{store_path}.nearest") / index_name / f"{digest}.usearch"
