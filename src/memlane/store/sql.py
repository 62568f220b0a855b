"""SQL built by pure functions, so tests can read exactly what a query asks for."""

from __future__ import annotations

import re
from typing import Any, Sequence

from memlane.errors import InputError

FILTER_FIELDS = ("node_type", "category", "agent_id", "session_id", "speaker", "date_from", "date_to", "as_of")
_LIST_FIELDS = ("node_type", "category", "agent_id", "session_id", "speaker")
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}")


def filter_sql(filters: dict[str, Any] | None, alias: str = "m") -> tuple[str, list[Any]]:
    """Translate search filters into a SQL condition (always true when empty) and its parameters.

    Equality fields take a value or a list of values. `date_from`/`date_to` (ISO dates, inclusive)
    keep a memory when its resolved event range or its session date overlaps the range. `as_of`
    keeps what was stated by that day and not superseded before it.
    """
    if not filters:
        return "1", []
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
        values = list(value) if isinstance(value, (list, tuple, set)) else [value]
        values = [v.value if hasattr(v, "value") else v for v in values]
        clauses.append(f"{alias}.{name} IN ({', '.join('?' * len(values))})")
        params.extend(values)
    start, end = filters.get("date_from"), filters.get("date_to")
    for key, value in (("date_from", start), ("date_to", end)):
        if value is not None and not (isinstance(value, str) and _ISO_DATE.match(value)):
            raise InputError(f"filter {key}={value!r} is not an ISO date", field=key, fix="write it as YYYY-MM-DD")
    if start is not None or end is not None:
        lo = (start or "0000-01-01")[:10]
        hi = (end or "9999-12-31")[:10]
        clauses.append(
            f"((COALESCE({alias}.event_start, '9999') <= ? AND COALESCE({alias}.event_end, '0000') >= ?)"
            f" OR (substr({alias}.session_date, 1, 10) BETWEEN ? AND ?))"
        )
        params.extend([hi, lo, lo, hi])
    as_of = filters.get("as_of")
    if as_of is not None:
        if not (isinstance(as_of, str) and _ISO_DATE.match(as_of)):
            raise InputError(f"filter as_of={as_of!r} is not an ISO date", field="as_of", fix="write it as YYYY-MM-DD")
        # What was known and still held on that day: stated by then, not yet superseded.
        clauses.append(
            f"substr(COALESCE({alias}.valid_from, {alias}.session_date, {alias}.recorded_at), 1, 10) <= ? "
            f"AND ({alias}.valid_until IS NULL OR substr({alias}.valid_until, 1, 10) > ?)"
        )
        params.extend([as_of[:10], as_of[:10]])
    return (" AND ".join(clauses) or "1"), params
