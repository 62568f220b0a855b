"""The search and list filter: parsed and validated once, then translated by each store.

Users pass the public dict form (`filters={"node_type": "turn", "date_from": "2023-05-01"}`);
`Filter.parse` checks it once and gives a `Filter`, the only form that flows past `Memory`.
A store translates a Filter into its own query (SQLite: `memlane.store.sql.filter_sql`) and
never validates it again.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Mapping

from memlane.errors import InputError, describe
from memlane.ingest.dates import parse_iso_day
from memlane.ingest.formats import check_text
from memlane.records import DOCUMENT_SESSION

LIST_FIELDS = ("node_type", "category", "agent_id", "session_id", "speaker")
DATE_FIELDS = ("date_from", "date_to", "as_of")
FIELDS = LIST_FIELDS + DATE_FIELDS
MAX_VALUES = 1_000  # values of one list field (SQLite binds each as a parameter)
_MAX_VALUE_CHARS = 512  # as long as an id may be

Day = str | date | datetime


@dataclass(frozen=True)
class Filter:
    """Which memories a search or a listing may return; every field set must hold.

    The list fields keep a memory whose field equals one of the values: `None` allows any value,
    an empty tuple allows none (the filter matches nothing). `date_from`/`date_to` (ISO days,
    inclusive) keep a memory whose resolved event range or session date overlaps the range;
    `as_of` keeps what had been stated by that day and was not yet superseded.

    Built by `Filter.parse` (the public dict form) or directly, `Filter(node_type="turn")`; either
    way each value is checked and normalized on construction: a string or an enum (its `.value`)
    becomes a one-value tuple, dates become 'YYYY-MM-DD' strings. Invalid values raise
    `InputError` naming the field.
    """

    node_type: tuple[str, ...] | None = None
    category: tuple[str, ...] | None = None
    agent_id: tuple[str, ...] | None = None
    session_id: tuple[str, ...] | None = None
    speaker: tuple[str, ...] | None = None
    date_from: str | None = None
    date_to: str | None = None
    as_of: str | None = None

    def __post_init__(self) -> None:
        for name in LIST_FIELDS:
            object.__setattr__(self, name, _values(name, getattr(self, name)))
        for name in DATE_FIELDS:
            object.__setattr__(self, name, _day(name, getattr(self, name)))

    @classmethod
    def parse(cls, value: "Filter | Mapping[str, Any] | None") -> "Filter":
        """A Filter from None (no restriction), a Filter (returned as is) or the public dict form:
        the field names above, a string or a list of strings for the list fields, a string, date
        or datetime for the dates, and `source`: the paths of documents (as `add_documents` names
        them, "peps/pep-0008.rst"), which keeps those documents' memories. Unknown names, non-string values, lone surrogates, more than
        1,000 values in one field and dates that are not real ISO days raise `InputError`."""
        if value is None:
            return _ANY
        if isinstance(value, Filter):
            return value
        if not isinstance(value, Mapping):
            raise InputError(f"filters must be a dict or a Filter, got {describe(value)}", field="filters",
                             fix="pass filters={'node_type': 'turn'}")
        fields = dict(value)
        source = fields.pop("source", None)
        _check_names(fields)
        parsed = cls(**fields)
        if source is None:
            return parsed
        # A document's memories share the session "doc:<path>": a source is that session.
        sessions = tuple(DOCUMENT_SESSION + path for path in _values("source", source) or ())
        if parsed.session_id is not None:
            sessions = tuple(s for s in parsed.session_id if s in sessions)
        return parsed.with_(session_id=sessions)

    def with_(self, **changes: Any) -> "Filter":
        """This filter with some fields replaced (checked like the rest: `with_(as_of=date(...))`)."""
        _check_names(changes)
        return dataclasses.replace(self, **changes)

    def only(self, *, node_type: str | Any) -> "Filter":
        """This filter restricted to `node_type` (a name or several) instead of the node types it
        asked for, if any; every other field is kept."""
        return self.with_(node_type=node_type)

    def narrowed_to(self, date_from: Day, date_to: Day) -> "Filter":
        """This filter with its date range intersected with `date_from`..`date_to` (inclusive);
        without a range of its own, the range is just that one."""
        start, end = _day("date_from", date_from), _day("date_to", date_to)
        return self.with_(date_from=max(start, self.date_from or ""),
                          date_to=min(end, self.date_to or "9999-12-31"))

    def allows_node_type(self, name: str) -> bool:
        """Whether memories of node type `name` may pass."""
        return self.node_type is None or name in self.node_type

    @property
    def restricted(self) -> tuple[str, ...]:
        """The names of the fields that restrict anything, in field order."""
        return tuple(name for name in FIELDS if getattr(self, name) is not None)

    @property
    def is_empty(self) -> bool:
        """True when nothing is restricted (every memory passes)."""
        return not self.restricted

    def to_dict(self) -> dict[str, Any]:
        """The public dict form (lists and ISO days, restricted fields only), for explanations
        and JSON; `Filter.parse(f.to_dict()) == f`."""
        out: dict[str, Any] = {}
        for name in self.restricted:
            value = getattr(self, name)
            out[name] = list(value) if name in LIST_FIELDS else value
        return out


def _check_names(value: Mapping[Any, Any]) -> None:
    for name in value:
        if not isinstance(name, str):
            raise InputError(f"filter names must be strings, got {describe(name)}", field="filters",
                             fix="use any of: " + ", ".join(FIELDS + ("source",)))
    unknown = sorted(set(value) - set(FIELDS))
    if unknown:
        raise InputError(f"unknown filter {', '.join(repr(u) for u in unknown)}", field="filters",
                         fix="use any of: " + ", ".join(FIELDS + ("source",)))


def _values(name: str, value: Any) -> tuple[str, ...] | None:
    """The strings a list field allows; enums give their value. Sets are sorted, so a filter
    (and the SQL built from it) does not depend on hash order."""
    if value is None:
        return None
    if isinstance(value, (set, frozenset)):
        items = sorted((getattr(v, "value", v) for v in value), key=repr)
    elif isinstance(value, (list, tuple)):
        items = [getattr(v, "value", v) for v in value]
    else:
        items = [getattr(value, "value", value)]
    if len(items) > MAX_VALUES:
        raise InputError(f"filter {name} lists {len(items):,} values; at most {MAX_VALUES:,} are accepted",
                         field=name, fix="filter on fewer values, or on a broader field")
    for item in items:
        if not isinstance(item, str):
            raise InputError(f"filter {name} takes a string or a list of strings, got {describe(item)}",
                             field=name, fix=f"pass filters={{'{name}': '...'}}")
        check_text(item, field=name, allow_blank=True, max_chars=_MAX_VALUE_CHARS)
    return tuple(items)


def _day(name: str, value: Any) -> str | None:
    """A date field as 'YYYY-MM-DD' (see `parse_iso_day`), or None."""
    if value is None:
        return None
    if isinstance(value, str):
        check_text(value, field=name, allow_blank=True, max_chars=_MAX_VALUE_CHARS)
    return parse_iso_day(value, name)


_ANY = Filter()
