"""Records and vectors as a store's rows hold them, and back (the same columns in every backend)."""

from __future__ import annotations

import json
import sqlite3
from typing import Any, Sequence

import numpy as np

from memlane.records import Category, EventDate, MemoryRecord

COLUMNS = (
    "id, user_id, agent_id, category, node_type, text, embed_text, speaker, session_id, "
    "session_date, turn_index, recorded_at, event_start, event_end, event_dates, metadata, "
    "fact_key, valid_from, valid_until, superseded_by"
)
PLACEHOLDERS = ", ".join("?" * len(COLUMNS.split(",")))


def row_to_record(row: sqlite3.Row | tuple) -> MemoryRecord:
    (mid, user_id, agent_id, category, node_type, text, embed_text, speaker, session_id,
     session_date, turn_index, recorded_at, _start, _end, event_dates, metadata,
     fact_key, valid_from, valid_until, superseded_by) = tuple(row)
    return MemoryRecord(
        id=mid, user_id=user_id, agent_id=agent_id, category=Category(category), node_type=node_type,
        text=text, embed_text=embed_text, speaker=speaker, session_id=session_id,
        session_date=session_date, turn_index=turn_index, recorded_at=recorded_at,
        event_dates=[EventDate(**e) for e in json.loads(event_dates)], metadata=json.loads(metadata),
        fact_key=fact_key, valid_from=valid_from, valid_until=valid_until, superseded_by=superseded_by,
    )


def record_from_dict(data: dict[str, Any]) -> MemoryRecord:
    """A record from its `to_dict` form, as the stores keep it in JSON (see `MemoryRecord.from_dict`)."""
    return MemoryRecord.from_dict(data)


def record_params(r: MemoryRecord) -> tuple:
    starts = [e.start for e in r.event_dates]
    ends = [e.end for e in r.event_dates]
    return (
        r.id, r.user_id, r.agent_id, r.category.value, r.node_type, r.text, r.embed_text, r.speaker,
        r.session_id, r.session_date, r.turn_index, r.recorded_at,
        min(starts) if starts else None, max(ends) if ends else None,
        json.dumps([vars(e) for e in r.event_dates]), json.dumps(r.metadata, ensure_ascii=False),
        r.fact_key, r.valid_from, r.valid_until, r.superseded_by,
    )



def to_blob(vectors: np.ndarray) -> bytes:
    """A memory's vectors as one BLOB: its own vector, then its passages' when it has some."""
    return np.ascontiguousarray(vectors, dtype=np.float32).tobytes()


def own_rows(blobs: Sequence[bytes], dims: int) -> np.ndarray:
    """The first vector of each BLOB (the memory's own), as a matrix."""
    width = dims * 4
    return (np.frombuffer(b"".join(b[:width] for b in blobs), dtype=np.float32).reshape(len(blobs), dims)
            if blobs else np.zeros((0, dims), dtype=np.float32))


def int_list(text: str | None) -> np.ndarray:
    """Integers joined by commas in SQL (SQLite's group_concat, PostgreSQL's string_agg) as an
    array. One string crosses into Python instead of a row per match: about 4x faster for a
    term in thousands of memories."""
    if not text:
        return np.zeros(0, np.int64)
    return np.fromstring(text, dtype=np.int64, sep=",")
