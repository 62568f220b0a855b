"""Parsing the absolute dates that sources, searches and filters give: one strict parser, no guessing.

Accepted (surrounding whitespace is ignored, month names in any case):

- ISO 8601: `2023-05-08`, `2023-05-08T13:56`, `2023-05-08T13:56:07.5`, with `T` or a space
  before the time, optionally ending in `Z` or an offset (`+02:00`, `-0500`), which is
  converted to UTC;
- LoCoMo's `1:56 pm on 8 May, 2023`;
- LongMemEval's `2023/05/30 (Tue) 23:40` (the weekday and the time may be left out);
- a written day: `8 May 2023`, `8 May, 2023`, `May 8, 2023`, `May 8 2023` (`8th`, `Sept` too).

Every form has a four-digit year and a day and month that cannot be swapped; anything else
("99", "1/2/3", "-2023-01-01", "2023-02-30", "2023-05-07xyz") is an InputError naming the
field, the value and these formats. Results are naive datetimes in UTC.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone

from memlane.errors import InputError

ACCEPTED_FORMATS = (
    "ISO 8601 (2023-05-08, 2023-05-08T13:56, 2023-05-08T13:56:00Z, 2023-05-08T13:56+02:00), "
    "'1:56 pm on 8 May, 2023', '2023/05/08 (Mon) 13:56', '8 May 2023' or 'May 8, 2023'"
)
ISO_DAY_FORMATS = "YYYY-MM-DD (2023-05-08) or an ISO date-time (2023-05-08T13:56, 2023-05-08T13:56:00Z)"

_MONTHS = {
    name: number
    for number, names in enumerate(
        (("jan", "january"), ("feb", "february"), ("mar", "march"), ("apr", "april"), ("may",),
         ("jun", "june"), ("jul", "july"), ("aug", "august"), ("sep", "sept", "september"),
         ("oct", "october"), ("nov", "november"), ("dec", "december")),
        start=1,
    )
    for name in names
}
_WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")

# re.ASCII: \d is 0-9 only, not every script's digits.
_FLAGS = re.ASCII | re.IGNORECASE
_ISO_DAY = re.compile(r"(?P<year>\d{4})-(?P<month>\d{2})-(?P<day>\d{2})", _FLAGS)
_ISO_DATE_TIME = re.compile(
    r"(?P<year>\d{4})-(?P<month>\d{2})-(?P<day>\d{2})[T ](?P<hour>\d{2}):(?P<minute>\d{2})"
    r"(?::(?P<second>\d{2})(?:[.,](?P<fraction>\d{1,9}))?)?"
    r"(?:(?P<utc>Z)|(?P<sign>[+-])(?P<offset_hours>\d{2}):?(?P<offset_minutes>\d{2}))?",
    _FLAGS,
)
_LONGMEMEVAL = re.compile(
    r"(?P<year>\d{4})/(?P<month>\d{2})/(?P<day>\d{2})(?:\s*\(\s*(?P<weekday>[a-z]{3,9})\s*\))?"
    r"(?:\s+(?P<hour>\d{2}):(?P<minute>\d{2}))?",
    _FLAGS,
)
_DAY = r"(?P<day>\d{1,2})(?:st|nd|rd|th)?"
_MONTH = r"(?P<month_name>[a-z]{3,9})\.?"
_WRITTEN_DAY = (
    re.compile(rf"{_DAY}\s+{_MONTH},?\s+(?P<year>\d{{4}})", _FLAGS),
    re.compile(rf"{_MONTH}\s+{_DAY},?\s+(?P<year>\d{{4}})", _FLAGS),
)
_LOCOMO = re.compile(r"(?P<hour>\d{1,2}):(?P<minute>\d{2})\s*(?P<half>[ap])\.?m\.?\s+on\s+(?P<rest>.+)", _FLAGS)


def parse_session_date(value: str | date | datetime, *, field: str = "session_date") -> datetime:
    """A session, message or search date as a naive UTC datetime.

    Takes a `date`, a `datetime` (an aware one is converted to UTC) or a string in one of the
    formats of this module's docstring. Raises InputError naming `field`, the value and the
    accepted formats when the value is none of them; never guesses a missing part.
    """
    if isinstance(value, datetime):
        return _to_naive_utc(value, value, field)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day)
    if not isinstance(value, str):
        raise _not_a_date(value, field, f"expected a date string, got {type(value).__name__}")
    text = value.strip()
    if not text:
        raise _not_a_date(value, field, "the date is empty")
    match = _ISO_DAY.fullmatch(text)
    if match:
        return _build(value, field, match["year"], match["month"], match["day"])
    match = _ISO_DATE_TIME.fullmatch(text)
    if match:
        return _iso_date_time(value, field, match)
    match = _LONGMEMEVAL.fullmatch(text)
    if match:
        parsed = _build(value, field, match["year"], match["month"], match["day"], match["hour"], match["minute"])
        weekday = match["weekday"]
        if weekday is not None and weekday.lower() not in (_WEEKDAYS[parsed.weekday()],
                                                           _WEEKDAYS[parsed.weekday()][:3]):
            raise _not_a_date(value, field, f"{parsed.date().isoformat()} is a {parsed.strftime('%A')}, "
                                            f"not a {weekday}")
        return parsed
    match = _LOCOMO.fullmatch(text)
    if match:
        day = _written_day(value, field, match["rest"])
        hour = int(match["hour"])
        if not 1 <= hour <= 12:
            raise _not_a_date(value, field, f"hour {hour} is not a 12-hour clock hour (1-12)")
        hour = hour % 12 + (12 if match["half"].lower() == "p" else 0)
        return _build(value, field, day.year, day.month, day.day, hour, match["minute"])
    day = _written_day(value, field, text)
    return datetime(day.year, day.month, day.day)


def parse_iso_day(value: str | date | datetime, field: str) -> str:
    """The calendar day of a filter date, as 'YYYY-MM-DD'.

    Takes exactly YYYY-MM-DD or a full ISO date-time (an offset or `Z` is converted to UTC
    first), or a `date`/`datetime`. The day must exist ("2023-02-30" does not). Raises InputError
    naming `field`, the value and the accepted formats otherwise.
    """
    if isinstance(value, datetime):
        return _to_naive_utc(value, value, field).date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if not isinstance(value, str):
        raise _not_a_date(value, field, f"expected a date string, got {type(value).__name__}",
                          accepted=ISO_DAY_FORMATS)
    text = value.strip()
    match = _ISO_DAY.fullmatch(text)
    if match:
        return _build(value, field, match["year"], match["month"], match["day"],
                      accepted=ISO_DAY_FORMATS).date().isoformat()
    match = _ISO_DATE_TIME.fullmatch(text)
    if match:
        return _iso_date_time(value, field, match, accepted=ISO_DAY_FORMATS).date().isoformat()
    raise _not_a_date(value, field, "not an ISO date", accepted=ISO_DAY_FORMATS)


# ---------------------------------------------------------------------------------------------
# Helpers


def _iso_date_time(value: str, field: str, match: re.Match[str], accepted: str = ACCEPTED_FORMATS) -> datetime:
    fraction = (match["fraction"] or "").ljust(6, "0")[:6]  # below microseconds is dropped
    parsed = _build(value, field, match["year"], match["month"], match["day"], match["hour"], match["minute"],
                    match["second"], fraction, accepted=accepted)
    if match["utc"]:
        return parsed
    if match["sign"]:
        hours, minutes = int(match["offset_hours"]), int(match["offset_minutes"])
        if hours > 23 or minutes > 59:
            raise _not_a_date(value, field, f"offset {match['sign']}{hours:02d}:{minutes:02d} is not a UTC offset",
                              accepted=accepted)
        offset = timedelta(hours=hours, minutes=minutes) * (-1 if match["sign"] == "-" else 1)
        return _to_naive_utc(parsed.replace(tzinfo=timezone(offset)), value, field, accepted)
    return parsed


def _written_day(value: str, field: str, text: str) -> date:
    for pattern in _WRITTEN_DAY:
        match = pattern.fullmatch(text.strip())
        if match:
            month = _MONTHS.get(match["month_name"].lower())
            if month is None:
                raise _not_a_date(value, field, f"{match['month_name']!r} is not a month name")
            return _build(value, field, match["year"], month, match["day"]).date()
    raise _not_a_date(value, field, "not a date in a known format")


def _build(value: object, field: str, year: object, month: object, day: object, hour: object = 0,
           minute: object = 0, second: object = 0, microsecond: object = 0, *,
           accepted: str = ACCEPTED_FORMATS) -> datetime:
    try:
        return datetime(int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0),
                        int(microsecond or 0))
    except ValueError as exc:  # year 0, month 13, February 30, hour 24, ...
        raise _not_a_date(value, field, f"no such date or time ({exc})", accepted=accepted) from None


def _to_naive_utc(moment: datetime, value: object, field: str, accepted: str = ACCEPTED_FORMATS) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        return moment.replace(tzinfo=None)
    try:
        return moment.astimezone(timezone.utc).replace(tzinfo=None)
    except OverflowError:  # 0001-01-01T00:00+01:00 is before year 1 in UTC
        raise _not_a_date(value, field, "it lies outside years 1-9999 in UTC", accepted=accepted) from None


def _not_a_date(value: object, field: str, reason: str, *, accepted: str = ACCEPTED_FORMATS) -> InputError:
    shown = repr(value) if len(repr(value)) <= 80 else repr(value)[:77] + "..."
    return InputError(f"{field.replace('_', ' ')} {shown} is not a date: {reason}", field=field,
                      fix=f"write it as {accepted}")
