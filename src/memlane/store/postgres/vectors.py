"""A vector index of the PostgreSQL store: two tables per embedding model.

`<name>` holds one row per memory, its vectors as written (own, then its passages') as float32
bytes: what a user's view reads. `<name>_points` holds one row per vector (part 0 the memory's
own, 1.. its passages) as pgvector's `vector(dims)`, under an HNSW index for cosine distance:
what dense candidates of a large user are drawn from. Both are keyed by (user_id, seq), and a
memory's deletion cascades to its rows in both. The HNSW index is the one index on users' data
that cannot lead with user_id (HNSW indexes one column); under Citus each shard has its own.
"""

from __future__ import annotations

import struct
from typing import Iterable, Sequence

import numpy as np
import psycopg

from memlane.store.codec import to_blob

# COPY's binary format (PostgreSQL's "Binary Format" of COPY): a header, rows of length-prefixed
# fields, a trailer. Vectors go in pgvector's binary form, so none is printed and parsed as text.
_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
_COPY_TRAILER = struct.pack(">h", -1)
_INT8 = struct.Struct(">q")
_INT4 = struct.Struct(">i")


def index_table_sql(name: str, dims: int) -> str:
    """The tables of index `name` (see the module's docstring). Their HNSW index is left for
    `hnsw_sql`: built once over the filled table when a search first needs it, which is many
    times faster than keeping it row by row through a bulk write."""
    return (f'CREATE TABLE {name} (user_id text COLLATE "C" NOT NULL, seq bigint NOT NULL, vecs bytea NOT NULL, '
            f"PRIMARY KEY (user_id, seq), "
            f"FOREIGN KEY (user_id, seq) REFERENCES memories (user_id, seq) ON DELETE CASCADE);"
            f'CREATE TABLE {name}_points (user_id text COLLATE "C" NOT NULL, seq bigint NOT NULL, '
            f"part integer NOT NULL, embedding vector({int(dims)}) NOT NULL, PRIMARY KEY (user_id, seq, part), "
            f"FOREIGN KEY (user_id, seq) REFERENCES {name} (user_id, seq) ON DELETE CASCADE);")


def hnsw_sql(name: str) -> str:
    return f"CREATE INDEX IF NOT EXISTS {name}_hnsw ON {name}_points USING hnsw (embedding vector_cosine_ops);"


HNSW_BUILD_MEMORY_AT_MOST_MB = 4_096


def hnsw_build_memory_mb(points: int, dims: int) -> int:
    """maintenance_work_mem for building the HNSW index of `points` vectors of `dims`: the whole
    graph in memory (a vector and its neighbour lists, about dims * 4 + 400 bytes, with a quarter
    to spare), at most `HNSW_BUILD_MEMORY_AT_MOST_MB`. A graph that outgrows it is built on disk,
    several times slower."""
    wanted = points * (dims * 4 + 400) * 1.25 / 2**20
    return int(min(HNSW_BUILD_MEMORY_AT_MOST_MB, max(64, wanted)))


def drop_sql(name: str) -> str:
    return f"DROP TABLE IF EXISTS {name}_points, {name}"


def literal(vector: np.ndarray) -> str:
    """A float32 vector as pgvector's text form, exact (each value printed in full)."""
    return "[" + ",".join(map(repr, np.asarray(vector, dtype=np.float32).astype(np.float64).tolist())) + "]"


def write_vectors(conn: psycopg.Connection, name: str, rows: Sequence[tuple[str, int, np.ndarray]]) -> None:
    """Add memories' vectors to index `name`: rows of (user_id, seq, vectors), vectors one
    (dims,) vector or (1 + k, dims), own then passages'. Two COPYs, however many rows."""
    if not rows:
        return
    with conn.cursor() as cur, cur.copy(f"COPY {name} (user_id, seq, vecs) FROM STDIN (FORMAT BINARY)") as copy:
        copy.write(_COPY_HEADER)
        for user_id, seq, vectors in rows:
            copy.write(_binary_row(user_id.encode(), _INT8.pack(seq), to_blob(vectors)))
        copy.write(_COPY_TRAILER)
    _write_points(conn, name, ((user_id, seq, np.atleast_2d(np.asarray(vectors, np.float32)))
                               for user_id, seq, vectors in rows))


def _binary_row(*fields: bytes) -> bytes:
    """One row of a binary COPY: its field count, then each field's length and bytes."""
    return struct.pack(">h", len(fields)) + b"".join(_INT4.pack(len(f)) + f for f in fields)


def _write_points(conn: psycopg.Connection, name: str, rows: Iterable[tuple[str, int, np.ndarray]]) -> None:
    """One row of `<name>_points` per vector of each (user_id, seq, (1 + k, dims) array)."""
    with conn.cursor() as cur, cur.copy(f"COPY {name}_points (user_id, seq, part, embedding) "
                                        "FROM STDIN (FORMAT BINARY)") as copy:
        copy.write(_COPY_HEADER)
        for user_id, seq, vectors in rows:
            user, key = user_id.encode(), _INT8.pack(seq)
            shape = struct.pack(">HH", vectors.shape[1], 0)  # pgvector's binary form: dims, unused, floats
            for part, floats in enumerate(vectors.astype(">f4")):
                copy.write(_binary_row(user, key, _INT4.pack(part), shape + floats.tobytes()))
        copy.write(_COPY_TRAILER)


def nearest_sql(name: str, filter_clause: str | None) -> str:
    """The nearest vectors of one user by cosine distance, drawn through the HNSW index:
    parameters (filter's, user_id, query vector, limit). A memory may come once per vector, so
    the caller takes distinct seqs; the order is approximate (see `relaxed_order`)."""
    join = (f"JOIN memories m ON m.user_id = p.user_id AND m.seq = p.seq AND {filter_clause} "
            if filter_clause else "")
    return (f"SELECT p.seq FROM {name}_points p {join}"
            "WHERE p.user_id = %s ORDER BY p.embedding <=> %s::vector LIMIT %s")


def search_settings_sql(ef_search: int) -> str:
    """Settings for the transaction of one `nearest_sql` read: pgvector 0.8's iterative index
    scan goes on past `ef_search` until the LIMIT is filled with rows that pass the user filter
    (in relaxed order, which the caller's exact re-scoring makes moot)."""
    return ("SELECT set_config('hnsw.iterative_scan', 'relaxed_order', true), "
            f"set_config('hnsw.ef_search', '{int(ef_search)}', true)")


def fill_points(conn: psycopg.Connection, name: str, dims: int, batch: int = 2_000) -> None:
    """Points for every memory row of index `name`, from its vectors as written (a migration
    that fills `<name>` first, then this)."""
    after: tuple[str, int] = ("", -1)
    while True:
        found = conn.execute(f"SELECT user_id, seq, vecs FROM {name} WHERE (user_id, seq) > (%s, %s) "
                             "ORDER BY user_id, seq LIMIT %s", (*after, batch)).fetchall()
        if not found:
            return
        _write_points(conn, name, ((user_id, seq, np.frombuffer(bytes(blob), np.float32).reshape(-1, dims))
                                   for user_id, seq, blob in found))
        after = (found[-1][0], found[-1][1])
