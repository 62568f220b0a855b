"""What the console computes from library results before a template draws them: pure functions
over hits, records, callers and form fields, tested without a browser or a server."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

from memlane.records import Category, Hit, MemoryRecord
from memlane.server.auth import Principal

# Notes an explanation carries about the question itself (the same on every hit), by their start.
QUERY_NOTES = ("time range from ", "entities: ", "exact strings: ", "routed: ", "router: ")
FILTER_FIELDS = ("node_type", "category", "session_id", "speaker", "date_from", "date_to", "as_of")
LIST_FIELDS = ("node_type", "category", "session_id", "speaker")  # several values, comma-separated
PICKER_LIMIT = 500  # users listed in a picker; more are typed


@dataclass(frozen=True)
class Bar:
    """One strategy's place for a hit: its rank and score, and the bar's length (0..1), which is
    the score over the best score that strategy gave any hit on the page."""

    strategy: str
    rank: int
    score: float
    fraction: float


@dataclass(frozen=True)
class Analysis:
    """How the question was read: the time range ({expression, start, end}), the entities, the
    exact strings looked up, the node routing, and each strategy's weight in the fusion."""

    time_range: dict[str, str] | None
    entities: list[str]
    exact: list[str]
    routing: list[str]
    weights: dict[str, float]


def strategy_bars(hits: Sequence[Hit]) -> list[list[Bar]]:
    """For each hit, a bar per strategy that found it: fraction = score / the strategy's top score
    among `hits` (0 when that top score is not positive)."""
    top: dict[str, float] = {}
    for hit in hits:
        for s in hit.explanation.strategies if hit.explanation else ():
            top[s.strategy] = max(top.get(s.strategy, float("-inf")), s.score)
    bars = []
    for hit in hits:
        row = []
        for s in hit.explanation.strategies if hit.explanation else ():
            best = top[s.strategy]
            fraction = s.score / best if best > 0 and s.score > 0 else 0.0
            row.append(Bar(s.strategy, s.rank, s.score, min(1.0, fraction)))
        bars.append(row)
    return bars


def query_analysis(hits: Sequence[Hit]) -> Analysis | None:
    """The question's analysis, from the first hit's explanation (None without one)."""
    explained = next((h.explanation for h in hits if h.explanation is not None), None)
    if explained is None:
        return None
    read = explained.analysis
    routing = [n for n in explained.notes if n.startswith(("routed: ", "router: "))]
    return Analysis(read.get("time_range"), list(read.get("entities") or ()), list(read.get("needles") or ()),
                    routing, dict(explained.weights))


def hit_notes(hit: Hit) -> list[str]:
    """The notes about this hit alone (why it was boosted or demoted), not about the question."""
    if hit.explanation is None:
        return []
    return [n for n in hit.explanation.notes if not n.startswith(QUERY_NOTES)]


def reachable_users(who: Principal, stored: Iterable[str]) -> list[str]:
    """The users a caller may pick: a tenant's named users (stored or not) and the stored users
    under its prefix; every stored user for an admin."""
    if who.is_admin:
        return sorted(stored)
    users = set(who.users)
    if who.user_prefix is not None:
        users.update(u for u in stored if u.startswith(who.user_prefix))
    return sorted(users)


def pick_user(who: Principal, requested: str | None, users: Sequence[str]) -> str | None:
    """The user a page shows: the one asked for (checked by `Principal.user`), else the first the
    caller may pick, else None (a store with no users yet)."""
    if requested:
        return who.user(requested)
    return users[0] if users else None


def filters_from(params: Mapping[str, str]) -> dict[str, Any]:
    """A `Filter` dict from a form's fields: lists split on commas, empty fields left out."""
    out: dict[str, Any] = {}
    for name in FILTER_FIELDS:
        value = (params.get(name) or "").strip()
        if not value:
            continue
        if name in LIST_FIELDS:
            values = [v.strip() for v in value.split(",") if v.strip()]
            out[name] = values if len(values) > 1 else values[0]
        else:
            out[name] = value
    return out


def record_dates(record: MemoryRecord) -> list[str]:
    """A memory's resolved time expressions, as 'last May = 2023-05-01..2023-05-31'."""
    return [e.render() for e in record.event_dates]


def evidence_ids(record: MemoryRecord) -> list[str]:
    """The turns an extracted memory was drawn from (empty for a verbatim turn)."""
    ids = record.metadata.get("evidence") if isinstance(record.metadata, dict) else None
    return [i for i in ids if isinstance(i, str)] if isinstance(ids, list) else []


def categories() -> list[str]:
    return [c.value for c in Category]


DOCUMENT_CATEGORIES = ("semantic", "procedural")


@dataclass(frozen=True)
class DocumentRow:
    """A document as the documents page lists it, from its document-level memory."""

    path: str
    title: str
    chunks: int
    date: str  # the date the document gives, else the day it was added
    category: str
    format: str


def document_row(record: MemoryRecord) -> DocumentRow:
    meta = record.metadata
    return DocumentRow(path=str(meta.get("source") or record.session_id or record.id),
                       title=str(meta.get("title") or meta.get("source") or ""), chunks=int(meta.get("chunks") or 0),
                       date=(record.session_date or record.recorded_at or "")[:10], category=record.category.value,
                       format=str(meta.get("format") or ""))


def line_range(record: MemoryRecord) -> str:
    """A chunk's lines in its document: 'lines 3–7', 'line 4', or '' when unknown."""
    lines = record.metadata.get("lines")
    if not isinstance(lines, list) or len(lines) != 2:
        return ""
    first, last = lines
    return f"line {first}" if first == last else f"lines {first}–{last}"


@dataclass(frozen=True)
class DocumentSection:
    """Consecutive chunks of a document under one heading path ('' before the first heading)."""

    section: str
    chunks: list[MemoryRecord]


def document_sections(chunks: Iterable[MemoryRecord]) -> list[DocumentSection]:
    """A document's chunks in reading order (their position), grouped by consecutive section."""
    out: list[DocumentSection] = []
    for chunk in sorted(chunks, key=lambda r: (r.turn_index is None, r.turn_index or 0)):
        section = str(chunk.metadata.get("section") or "")
        if out and out[-1].section == section:
            out[-1].chunks.append(chunk)
        else:
            out.append(DocumentSection(section, [chunk]))
    return out


def human_bytes(count: int) -> str:
    """1536 -> '1.5 KiB'."""
    size = float(count)
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{int(size)} bytes" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"


def ci_bar(delta: float, low: float, high: float, *, span: float) -> dict[str, float]:
    """Where to draw a delta and its confidence interval on an axis from -span to +span, as
    fractions of the axis width (0 at the left end, 0.5 at zero)."""
    span = span if span > 0 else 1.0

    def at(x: float) -> float:
        return min(1.0, max(0.0, 0.5 + x / (2 * span)))

    return {"low": at(low), "high": at(high), "delta": at(delta), "zero": 0.5}
