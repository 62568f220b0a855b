"""SQL built by pure functions, so tests can read exactly what a query asks for."""

from __future__ import annotations

from typing import Any

from memlane.filters import LIST_FIELDS, Filter


def filter_sql(f: Filter, alias: str = "m", *, postgres: bool = False) -> tuple[str, list[Any]]:
    """Translate a Filter into a SQL condition (always true when it restricts nothing) and its parameters.

    List fields become `IN (...)` (an empty tuple matches nothing). `date_from`/`date_to`
    (inclusive) keep a memory when its resolved event range or its session date overlaps the
    range. `as_of` keeps what was stated by that day and not superseded before it. The Filter
    was validated when it was built; nothing is checked here. With `postgres` the SQL is
    PostgreSQL's: `%s` placeholders and boolean literals (the same conditions otherwise).
    """
    assert isinstance(f, Filter), f"filter_sql takes a Filter, got {type(f).__name__}"
    clauses: list[str] = []
    params: list[Any] = []
    for name in LIST_FIELDS:
        values = getattr(f, name)
        if values is None:
            continue
        if not values:
            clauses.append("FALSE" if postgres else "0")  # no allowed value: nothing matches
            continue
        clauses.append(f"{alias}.{name} IN ({', '.join('?' * len(values))})")
        params.extend(values)
    if f.date_from is not None or f.date_to is not None:
        lo = f.date_from if f.date_from is not None else "0000-01-01"
        hi = f.date_to if f.date_to is not None else "9999-12-31"
        clauses.append(
            f"((COALESCE({alias}.event_start, '9999') <= ? AND COALESCE({alias}.event_end, '0000') >= ?)"
            f" OR (substr({alias}.session_date, 1, 10) BETWEEN ? AND ?))"
        )
        params.extend([hi, lo, lo, hi])
    if f.as_of is not None:
        # What was known and still held on that day: stated by then, not yet superseded.
        clauses.append(
            f"substr(COALESCE({alias}.valid_from, {alias}.session_date, {alias}.recorded_at), 1, 10) <= ? "
            f"AND ({alias}.valid_until IS NULL OR substr({alias}.valid_until, 1, 10) > ?)"
        )
        params.extend([f.as_of, f.as_of])
    sql = " AND ".join(clauses) or ("TRUE" if postgres else "1")
    return (sql.replace("?", "%s") if postgres else sql), params


def utc_now() -> str:
    """Now as the stores write times: ISO 8601 UTC to the microsecond, so they sort as written."""
    from datetime import datetime, timezone

    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
