"""SQL built by pure functions, so tests can read exactly what a query asks for."""

from __future__ import annotations

from typing import Any

from memlane.errors import InputError
from memlane.ingest.dates import parse_iso_day

FILTER_FIELDS = ("node_type", "category", "agent_id", "session_id", "speaker", "date_from", "date_to", "as_of")
_LIST_FIELDS = ("node_type", "category", "agent_id", "session_id", "speaker")


def filter_sql(filters: dict[str, Any] | None, alias: str = "m") -> tuple[str, list[Any]]:
    """Translate search filters into a SQL condition (always true when empty) and its parameters.

    Equality fields take a string or a list of strings (an empty list matches nothing).
    `date_from`/`date_to` (ISO dates, inclusive) keep a memory when its resolved event range or its
    session date overlaps the range. `as_of` keeps what was stated by that day and not superseded
    before it. Dates are checked by `parse_iso_day`: YYYY-MM-DD or an ISO date-time of a real day.
    """
    if not filters:
        return "1", []
    if not isinstance(filters, dict):
        raise InputError(f"filters must be a dict, got {type(filters).__name__}", field="filters",
                         fix="pass filters={'node_type': 'turn'}")
    unknown = sorted(set(filters) - set(FILTER_FIELDS))
    if unknown:
        raise InputError(
            f"unknown filter {', '.join(repr(u) for u in unknown)}",
            field="filters",
            fix="use any of: " + ", ".join(FILTER_FIELDS),
        )
    clauses: list[str] = []
    params: list[Any] = []
    for name in _LIST_FIELDS:
        if name not in filters or filters[name] is None:
            continue
        value = filters[name]
        values = _text_values(name, value)
        if not values:
            clauses.append("0")  # no allowed value: nothing matches
            continue
        clauses.append(f"{alias}.{name} IN ({', '.join('?' * len(values))})")
        params.extend(values)
    start, end = filters.get("date_from"), filters.get("date_to")
    if start is not None or end is not None:
        lo = parse_iso_day(start, "date_from") if start is not None else "0000-01-01"
        hi = parse_iso_day(end, "date_to") if end is not None else "9999-12-31"
        clauses.append(
            f"((COALESCE({alias}.event_start, '9999') <= ? AND COALESCE({alias}.event_end, '0000') >= ?)"
            f" OR (substr({alias}.session_date, 1, 10) BETWEEN ? AND ?))"
        )
        params.extend([hi, lo, lo, hi])
    as_of = filters.get("as_of")
    if as_of is not None:
        day = parse_iso_day(as_of, "as_of")
        # What was known and still held on that day: stated by then, not yet superseded.
        clauses.append(
            f"substr(COALESCE({alias}.valid_from, {alias}.session_date, {alias}.recorded_at), 1, 10) <= ? "
            f"AND ({alias}.valid_until IS NULL OR substr({alias}.valid_until, 1, 10) > ?)"
        )
        params.extend([day, day])
    return (" AND ".join(clauses) or "1"), params


def _text_values(name: str, value: Any) -> list[str]:
    """The strings an equality filter allows; enums give their value."""
    values = list(value) if isinstance(value, (list, tuple, set, frozenset)) else [value]
    values = [getattr(v, "value", v) for v in values]
    wrong = [v for v in values if not isinstance(v, str)]
    if wrong:
        raise InputError(f"filter {name} takes strings, got {type(wrong[0]).__name__} {wrong[0]!r:.60}",
                         field=name, fix=f"pass {name}='...' or a list of strings")
    return values
