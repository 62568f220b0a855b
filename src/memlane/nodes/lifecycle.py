"""What happens to extracted memories over time, as pure planning functions.

Knowledge updates: a new item with the same fact key as a current memory (same node, same
entity and attribute) but another value supersedes it: the old memory gets `valid_until` (the
new one's date) and `superseded_by`, stays searchable, in `history` and for `as_of` searches,
and ranks below the current one. The same value again is no new fact: its evidence is merged
into the existing memory. An item older than the current memory is stored already superseded.

Consolidation: extracted memories of one node whose texts are equal, or whose vectors are within
a cosine threshold, are merged into the oldest, keeping every evidence turn.

Retention: memories older than their category's limit are expired (moved out of search, kept
until purged).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Sequence

import numpy as np

from memlane.nodes.spec import NodeSpec
from memlane.records import HistoryEvent, MemoryRecord


@dataclass
class UpdatePlan:
    insert: list[MemoryRecord] = field(default_factory=list)
    amended: list[MemoryRecord] = field(default_factory=list)
    events: list[HistoryEvent] = field(default_factory=list)


def _normalized(value: object) -> str:
    if isinstance(value, list):
        value = ", ".join(str(v) for v in value)
    return " ".join(str(value or "").lower().split())


def same_value(spec: NodeSpec, a: MemoryRecord, b: MemoryRecord) -> bool:
    fields_a, fields_b = a.metadata.get("fields", {}), b.metadata.get("fields", {})
    return all(_normalized(fields_a.get(f)) == _normalized(fields_b.get(f)) for f in spec.compared_fields())


def merge_evidence(target: MemoryRecord, source: MemoryRecord) -> None:
    for key in ("evidence", "evidence_turn_ids"):
        merged = list(dict.fromkeys(target.metadata.get(key, []) + source.metadata.get(key, [])))
        target.metadata[key] = merged


def plan_updates(new: Sequence[MemoryRecord], current: dict[str, MemoryRecord], specs: dict[str, NodeSpec],
                 at: str) -> UpdatePlan:
    """How to store newly extracted records given the current memory for each fact key.

    `current` maps fact key -> the not-superseded stored memory; it is updated as the plan goes,
    in date order, so a batch holding several sessions applies its facts in the order they held.
    """
    plan = UpdatePlan()
    amended: dict[str, MemoryRecord] = {}
    for record in sorted(new, key=lambda r: r.valid_from or ""):
        existing = current.get(record.fact_key) if record.fact_key else None
        if existing is None:
            plan.insert.append(record)
            plan.events.append(HistoryEvent(record.id, "ADD", None, record.text, at))
            if record.fact_key:
                current[record.fact_key] = record
            continue
        spec = specs[record.node_type]
        if same_value(spec, existing, record):
            merge_evidence(existing, record)
            if existing not in plan.insert:
                amended[existing.id] = existing
            plan.events.append(HistoryEvent(existing.id, "MERGE", None, f"evidence added from {record.session_id}", at))
            continue
        plan.insert.append(record)
        plan.events.append(HistoryEvent(record.id, "ADD", None, record.text, at))
        if (record.valid_from or "") >= (existing.valid_from or ""):
            existing.valid_until, existing.superseded_by = record.valid_from, record.id
            if existing not in plan.insert:
                amended[existing.id] = existing
            plan.events.append(HistoryEvent(existing.id, "SUPERSEDE", existing.text, f"superseded by: {record.text}", at))
            current[record.fact_key] = record
        else:  # an older statement arriving late: it held until the current one
            record.valid_until, record.superseded_by = existing.valid_from, existing.id
            plan.events.append(HistoryEvent(record.id, "SUPERSEDE", record.text, f"superseded by: {existing.text}", at))
    plan.amended = list(amended.values())
    return plan


def duplicate_groups(texts: Sequence[str], vectors: np.ndarray, threshold: float) -> list[list[int]]:
    """Groups (indices, oldest first as given) of equal texts or vectors with cosine >= threshold.

    Greedy single pass: each item joins the first group whose first member it duplicates.
    """
    groups: list[list[int]] = []
    heads: list[int] = []
    seen: dict[str, int] = {}
    for i, text in enumerate(texts):
        key = " ".join(text.lower().split())
        if key in seen:
            groups[seen[key]].append(i)
            continue
        if heads:
            similarity = vectors[heads] @ vectors[i]
            best = int(np.argmax(similarity))
            if similarity[best] >= threshold:
                groups[best].append(i)
                seen[key] = best
                continue
        seen[key] = len(groups)
        groups.append([i])
        heads.append(i)
    return [g for g in groups if len(g) > 1]


def memory_date(record: MemoryRecord) -> str:
    return (record.valid_from or record.session_date or record.recorded_at or "")[:10]


def expired_by_retention(records: Sequence[MemoryRecord], limits: dict[str, int | None], now: datetime) -> list[tuple[MemoryRecord, str]]:
    """(record, rule) for every record older than its category's limit in days (None: kept forever)."""
    out = []
    for record in records:
        days = limits.get(record.category.value)
        if days is None:
            continue
        cutoff = (now - timedelta(days=days)).date().isoformat()
        if memory_date(record) and memory_date(record) < cutoff:
            out.append((record, f"{record.category.value} older than {days} days"))
    return out
