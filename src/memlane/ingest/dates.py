"""Parsing the absolute dates that sources attach to sessions and messages."""

from __future__ import annotations

import re
from datetime import date, datetime

from dateutil import parser as dateutil_parser

from memlane.errors import InputError

# LongMemEval writes "2023/05/30 (Tue) 23:40"; the weekday in brackets confuses generic parsers.
_WEEKDAY_IN_BRACKETS = re.compile(r"\(\s*[A-Za-z]{3,9}\s*\)")
# LoCoMo writes "1:56 pm on 8 May, 2023".
_TIME_ON_DATE = re.compile(r"^\s*(\d{1,2}:\d{2}\s*[ap]\.?m\.?)\s+on\s+(.+)$", re.IGNORECASE)


def parse_session_date(value: str | date | datetime) -> datetime:
    """Parse a session or message date in the formats memlane's sources use.

    Accepts ISO 8601, LoCoMo's "1:56 pm on 8 May, 2023" and LongMemEval's "2023/05/30 (Tue) 23:40".
    Raises InputError when the value is not a date, never guesses a default.
    """
    if isinstance(value, datetime):
        return value.replace(tzinfo=None)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day)
    if not isinstance(value, str) or not value.strip():
        raise InputError(
            f"session date {value!r} is not a date",
            field="date",
            fix="give an ISO date such as 2023-05-08 or 2023-05-08T13:56",
        )
    text = value.strip()
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).replace(tzinfo=None)
    except ValueError:
        pass
    cleaned = _WEEKDAY_IN_BRACKETS.sub(" ", text)
    match = _TIME_ON_DATE.match(cleaned)
    if match:
        cleaned = f"{match.group(2)} {match.group(1)}"
    try:
        # A fixed default makes missing parts visible (and never today's date).
        parsed = dateutil_parser.parse(cleaned, default=datetime(1900, 1, 1))
    except (ValueError, OverflowError):
        parsed = None
    if parsed is None or parsed.year == 1900:
        raise InputError(
            f"cannot parse session date {value!r}",
            field="date",
            fix="use an ISO date such as 2023-05-08 or 2023-05-08T13:56",
        )
    return parsed.replace(tzinfo=None)
