"""Shift-left time: resolve the relative time expressions of a turn against the session date.

"I went hiking last weekend", said in a session dated Monday 2023-05-08, is stored with the
event date 2023-05-06..2023-05-07, so that a later question about early May can find it
without an LLM having to redo the date arithmetic at query time.

Every range is inclusive. Weeks are ISO weeks (Monday to Sunday), a weekend is the Saturday and
Sunday of an ISO week, months and years run from their first to their last day, and seasons are
meteorological, northern hemisphere: spring March-May, summer June-August, autumn (fall)
September-November, winter December to the end of February of the next year ("winter 2022" is
the winter that starts in December 2022).

Rules for the ambiguous cases, chosen to be simple to predict rather than clever:

- "N days ago" is that day. "N weeks ago", "N weekends ago", "N months ago" and "N years ago"
  are the whole ISO week, weekend, calendar month or calendar year that holds the day N units
  before the anchor ("a week ago" = "last week", "a year ago" = "last year"). "in N units" and
  "N units from now" are the same forwards.
- Fuzzy counts: "a couple (of)" = 2, "a few" = 3, "several" = 3.
- "the past N units" / "the last N units" / "the past week" are rolling windows that end on the
  anchor: "the past two weeks" on 2023-05-08 is 2023-04-24..2023-05-08.
- "the other day" is 2 to 7 days before the anchor.
- "last <weekday>" is the most recent such day strictly before the anchor (on a Monday, "last
  Monday" is 7 days before). "this <weekday>" is that day of the anchor's ISO week; "next
  <weekday>" is that day of the following ISO week; "this coming <weekday>" is the first such day
  after the anchor.
- A bare weekday ("on Tuesday") leans to the past: the most recent such day strictly before the
  anchor, unless its sentence is in the future tense (will, 'll, shall, going to, gonna, plan to,
  about to, looking forward, can't wait), then the first such day after the anchor. The same
  tense rule picks among occurrences of a bare month ("in May": the latest May that starts on or
  before the anchor, or in the future tense the first May that ends on or after it), a bare
  season ("in the summer"), a day of a month without a year ("May 5th") and "on the 5th".
- "last May" / "last summer" is the most recent occurrence that ended before the anchor; "next
  May" / "next summer" is the first occurrence that starts after it. "this May" is May of the
  anchor's year; "this summer" is the summer that holds the anchor, or else the nearest one.
- "last weekend" and "this past weekend" are the weekend of the previous ISO week; "this weekend"
  is the anchor's own week's; "over the weekend" is the most recent weekend that has started
  (in the future tense, the anchor's own week's).
- "the week/month/year before" is the one before the anchor's; "... before last" two before.
- Not resolved, because they name no period: "recently", "lately", "a while ago", "many years
  ago", "on Mondays", "every Monday".
- The word "may" is read as the month only where the modal verb cannot be meant: before a day
  number or a year ("May 5th", "May 2022"), or after in/of/since/during/by/until/from/last/next
  when no verb such as "be" or "have" follows ("in May", but not "this may be" or "I may go").
"""

from __future__ import annotations

import calendar
import re
from bisect import bisect_left
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from memlane.errors import InputError
from memlane.records import EventDate

__all__ = ["TimeRange", "parse_query_range", "render_event_dates", "resolve_expressions"]


@dataclass(frozen=True)
class TimeRange:
    """The span of days a search question asks about (inclusive), and the words that named it."""

    start: date
    end: date
    expression: str


# A resolved period: first day, last day, granularity.
_Period = tuple[date, date, str]
_Resolver = Callable[["re.Match[str]", date, "_Context"], "_Period | None"]


# --- Calendar arithmetic (pure) ---------------------------------------------------------------

def _day(day: date) -> _Period:
    return day, day, "day"


def _monday_of(day: date) -> date:
    return day - timedelta(days=day.weekday())


def _week_of(day: date) -> _Period:
    monday = _monday_of(day)
    return monday, monday + timedelta(days=6), "week"


def _weekend_of(day: date) -> _Period:
    monday = _monday_of(day)
    return monday + timedelta(days=5), monday + timedelta(days=6), "weekend"


def _month(year: int, month: int) -> _Period:
    """The calendar month; `month` may run past 1..12 (month 13 is January of the next year)."""
    year, month_index = divmod(year * 12 + month - 1, 12)
    month = month_index + 1
    last_day = calendar.monthrange(year, month)[1]
    return date(year, month, 1), date(year, month, last_day), "month"


def _year(year: int) -> _Period:
    return date(year, 1, 1), date(year, 12, 31), "year"


def _shift_months(day: date, months: int) -> date:
    """The same day `months` later (or earlier), clamped to the month's end (Feb 29 -> Feb 28)."""
    first, last, _ = _month(day.year, day.month + months)
    return first.replace(day=min(day.day, last.day))


_SEASON_FIRST_MONTH = {"spring": 3, "summer": 6, "autumn": 9, "fall": 9, "winter": 12}


def _season(name: str, year: int) -> _Period:
    first_month = _SEASON_FIRST_MONTH[name]
    return date(year, first_month, 1), _month(year, first_month + 2)[1], "season"


def _offset_period(unit: str, count: int, anchor: date) -> _Period:
    """The day, week, weekend, month or year that holds the day `count` units from the anchor."""
    if unit == "day":
        return _day(anchor + timedelta(days=count))
    if unit == "week":
        return _week_of(anchor + timedelta(weeks=count))
    if unit == "weekend":
        return _weekend_of(anchor + timedelta(weeks=count))
    if unit == "month":
        return _month(anchor.year, anchor.month + count)
    return _year(anchor.year + count)


# --- Choosing among repeating periods (every May, every summer) -------------------------------

def _latest_ended_before(periods: list[_Period], anchor: date) -> _Period | None:
    past = [p for p in periods if p[1] < anchor]
    return max(past) if past else None


def _first_starting_after(periods: list[_Period], anchor: date) -> _Period | None:
    future = [p for p in periods if p[0] > anchor]
    return min(future) if future else None


def _by_tense(periods: list[_Period], anchor: date, future: bool) -> _Period | None:
    """Past: the latest period that has started by the anchor. Future: the first not yet over."""
    if future:
        candidates = [p for p in periods if p[1] >= anchor]
        return min(candidates) if candidates else None
    candidates = [p for p in periods if p[0] <= anchor]
    return max(candidates) if candidates else None


def _nearest(periods: list[_Period], anchor: date) -> _Period:
    def distance(period: _Period) -> int:
        if period[0] > anchor:
            return (period[0] - anchor).days
        return max(0, (anchor - period[1]).days)

    # On a tie the later one wins: "this summer" in mid-January is the coming one.
    return min(periods, key=lambda p: (distance(p), -p[0].toordinal()))


# --- Reading the text around a match ---------------------------------------------------------

_FUTURE_MARKER = re.compile(
    r"\b(?:will|shall|gonna|going\s+to|plan(?:s|ning)?\s+to|about\s+to|looking\s+forward"
    r"|can['’]t\s+wait|won['’]t)\b|['’]ll\b",
    re.IGNORECASE,
)
_SENTENCE_MARK = re.compile(r"[.!?\n]")


class _Context:
    """The text the expressions are read from, with what is learnt about its sentences kept: a
    text of many expressions is not scanned again for each (one 100,000-character sentence full
    of dates took quadratic time when every match looked for its sentence's ends and tense)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self._marks: list[int] | None = None
        self._future: dict[int, bool] = {}

    def in_future_tense(self, position: int) -> bool:
        """Whether the sentence around `position` (up to the nearest . ! ? or line break on each
        side) speaks of the future: a cheap marker check, made once per sentence."""
        if self._marks is None:
            self._marks = [mark.start() for mark in _SENTENCE_MARK.finditer(self.text)]
        sentence = bisect_left(self._marks, position)  # the marks before `position`
        if sentence not in self._future:
            start = self._marks[sentence - 1] + 1 if sentence else 0
            end = self._marks[sentence] if sentence < len(self._marks) else len(self.text)
            self._future[sentence] = _FUTURE_MARKER.search(self.text, start, end) is not None
        return self._future[sentence]


def _previous_word(text: str, position: int) -> str:
    words = text[max(0, position - 20):position].split()
    return _key(words[-1]) if words else ""


# Words after "may" that show the modal verb, not the month ("in May be ..." is never the month).
_MODAL_FOLLOWER = re.compile(
    r"\s+(?:be|been|not|have|also|still|just|well|even|never|only|need|want|seem|look|feel"
    r"|help|come|go|get|take|make|work|find|know|think|say|do|let|change|happen)\b",
    re.IGNORECASE,
)


def _is_modal_may(match: re.Match[str], text: str) -> bool:
    return _key(match.group("month")) == "may" and _MODAL_FOLLOWER.match(text, match.end()) is not None


# --- Vocabulary ------------------------------------------------------------------------------

_NUMBER_WORDS = {
    "a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "fifteen": 15, "twenty": 20,
    "thirty": 30, "couple": 2, "few": 3, "several": 3,
}
# The digits may not continue a bigger number ("1,000 years", "1.5 years").
_COUNT = (
    r"(?<![\d.,])(?P<count>\d{1,3}|a\s+couple(?:\s+of)?|couple\s+of|a\s+few|few|several|an?|one|two"
    r"|three|four|five|six|seven|eight|nine|ten|eleven|twelve|fifteen|twenty|thirty)"
)
_UNIT = r"(?P<unit>days?|weeks?|weekends?|months?|years?)"

_WEEKDAYS = {name: i for i, name in enumerate(
    ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"])}
_WEEKDAY = r"(?P<weekday>monday|tuesday|wednesday|thursday|friday|saturday|sunday)"

_MONTH_NUMBERS = {name: i for i, name in enumerate(
    ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"], start=1)}
_MONTH_FULL = (r"(?P<month>january|february|march|april|may|june|july|august|september|october"
               r"|november|december)")
# Abbreviations only where a day or a year follows: alone, "Jan" is a name and "mar" a verb.
# The patterns take an abbreviation's dot ("Sept. 5") only before a day or a year, never at the
# end, where it would be the sentence's full stop.
_MONTH_ANY = (r"(?P<month>january|february|march|april|may|june|july|august|september|october"
              r"|november|december|jan|feb|mar|apr|jun|jul|aug|sept|sep|oct|nov|dec)\b")
_DAY = r"(?P<day>[12]\d|3[01]|0?[1-9])"
_ORDINAL = r"(?:st|nd|rd|th)"
_YEAR = r"(?P<year>(?:19|20)\d\d)\b"
_SEASON = r"(?P<season>spring|summer|autumn|fall|winter)"
_RELATIVE = r"(?P<which>last|this\s+past|this\s+coming|this|next)"

# Any time expression holds one of these; a turn whose case-folded text has none is skipped at
# once. Looked for in lower case: an IGNORECASE search cost a tenth of an import's date
# resolution. "ı" and U+0307 ("İ" folds to "i̇") stand for the letters whose folding breaks a word
# that the patterns match ("nıght").
_TRIGGER = re.compile(
    r"\d|day|night|morning|afternoon|evening|tomorrow|week|month|year|spring|summer|autumn|fall"
    r"|winter|jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec|\u0131|\u0307"
)


def _key(word: str) -> str:
    """A matched word as the lookup tables spell it. The patterns match case-insensitively, which
    also takes "ſ" for "s", the Kelvin sign for "k" and "ı" for "i"; `lower()` keeps those, so a
    lookup would fail ("ſeptember")."""
    return word.casefold().replace("ı", "i").replace("\u0307", "")


def _words(match: re.Match[str], group: str) -> str:
    """A group's text, lower case, with runs of whitespace as one space."""
    return " ".join(_key(match.group(group)).split())


def _count_of(match: re.Match[str]) -> int:
    text = _words(match, "count")
    if text.isdigit():
        return int(text)
    meaningful = [w for w in text.split() if w not in ("a", "of")] or [text]
    return _NUMBER_WORDS[meaningful[0]]


def _unit_of(match: re.Match[str]) -> str:
    return _key(match.group("unit")).rstrip("s")


def _month_of(match: re.Match[str]) -> int:
    return _MONTH_NUMBERS[_key(match.group("month"))[:3]]


# --- Resolvers: one per pattern; each returns a period or None to drop the match -----------

def _resolve_fixed_day(offset: int) -> _Resolver:
    return lambda match, anchor, context: _day(anchor + timedelta(days=offset))


def _resolve_other_day(match: re.Match[str], anchor: date, context: _Context) -> _Period:
    return anchor - timedelta(days=7), anchor - timedelta(days=2), "week"


def _resolve_ago(match: re.Match[str], anchor: date, context: _Context) -> _Period:
    return _offset_period(_unit_of(match), -_count_of(match), anchor)


def _resolve_ahead(match: re.Match[str], anchor: date, context: _Context) -> _Period:
    return _offset_period(_unit_of(match), _count_of(match), anchor)


def _rolling(unit: str, count: int, anchor: date) -> _Period | None:
    if unit == "day":
        return anchor - timedelta(days=count), anchor, "day"
    if unit == "week":
        return anchor - timedelta(weeks=count), anchor, "week"
    if unit == "month":
        return _shift_months(anchor, -count), anchor, "month"
    if unit == "year":
        return _shift_months(anchor, -12 * count), anchor, "year"
    return None  # "the past two weekends" is not a window of days


def _resolve_rolling_counted(match: re.Match[str], anchor: date, context: _Context) -> _Period | None:
    return _rolling(_unit_of(match), _count_of(match), anchor)


def _resolve_rolling_one(match: re.Match[str], anchor: date, context: _Context) -> _Period | None:
    return _rolling(_unit_of(match), 1, anchor)


_WHICH_OFFSET = {"last": -1, "this": 0, "next": 1}


def _resolve_relative_unit(match: re.Match[str], anchor: date, context: _Context) -> _Period | None:
    which, unit = _words(match, "which"), _unit_of(match)
    if which == "this past":
        # Only "this past weekend" is clear; "this past week" is left to the rolling pattern.
        return _offset_period(unit, -1, anchor) if unit == "weekend" else None
    if which == "this coming":
        if unit != "weekend":
            return None
        # The first weekend that starts after the anchor.
        return _offset_period(unit, 0 if anchor.weekday() < 5 else 1, anchor)
    return _offset_period(unit, _WHICH_OFFSET[which], anchor)


_BEFORE_AFTER_OFFSET = {"before last": -2, "before": -1, "after next": 2}


def _resolve_unit_before(match: re.Match[str], anchor: date, context: _Context) -> _Period:
    return _offset_period(_unit_of(match), _BEFORE_AFTER_OFFSET[_words(match, "relation")], anchor)


def _resolve_previous_unit(match: re.Match[str], anchor: date, context: _Context) -> _Period:
    return _offset_period(_unit_of(match), -1, anchor)


def _resolve_bare_weekend(match: re.Match[str], anchor: date, context: _Context) -> _Period:
    this_weekend = _weekend_of(anchor)
    if context.in_future_tense(match.start()) or anchor >= this_weekend[0]:
        return this_weekend
    return _weekend_of(anchor - timedelta(weeks=1))


def _resolve_weekday(match: re.Match[str], anchor: date, context: _Context) -> _Period | None:
    target = _WEEKDAYS[_key(match.group("weekday"))]
    which = _words(match, "which") if match.group("which") else ""
    if not which and _previous_word(context.text, match.start()) in ("every", "each"):
        return None  # a habit, not a day
    days_back = (anchor.weekday() - target - 1) % 7 + 1  # 1..7, never the anchor itself
    days_ahead = (target - anchor.weekday() - 1) % 7 + 1
    if which in ("last", "this past"):
        return _day(anchor - timedelta(days=days_back))
    if which == "this":
        return _day(_monday_of(anchor) + timedelta(days=target))
    if which == "next":
        return _day(_monday_of(anchor) + timedelta(days=7 + target))
    if which == "this coming" or context.in_future_tense(match.start()):
        return _day(anchor + timedelta(days=days_ahead))
    return _day(anchor - timedelta(days=days_back))


def _month_occurrences(month: int, anchor: date) -> list[_Period]:
    return [_month(year, month) for year in range(anchor.year - 1, anchor.year + 2)]


def _resolve_named_month(match: re.Match[str], anchor: date, context: _Context) -> _Period | None:
    if _is_modal_may(match, context.text):
        return None
    month = _month_of(match)
    which = _words(match, "which") if match.group("which") else ""
    if which == "this" and month == 5:
        return None  # "this may ..." is nearly always the verb
    occurrences = _month_occurrences(month, anchor)
    if which in ("last", "this past"):
        return _latest_ended_before(occurrences, anchor)
    if which in ("next", "this coming"):
        return _first_starting_after(occurrences, anchor)
    if which == "this":
        return _month(anchor.year, month)
    return _by_tense(occurrences, anchor, context.in_future_tense(match.start()))


def _resolve_month_year(match: re.Match[str], anchor: date, context: _Context) -> _Period:
    return _month(int(match.group("year")), _month_of(match))


def _resolve_month_day(match: re.Match[str], anchor: date, context: _Context) -> _Period | None:
    month, day = _month_of(match), int(match.group("day"))
    if match.group("year"):
        return _day(date(int(match.group("year")), month, day))
    future = context.in_future_tense(match.start())
    # Walk years away from the anchor until the date exists (Feb 29) and lies on the right side.
    for step in range(9):
        year = anchor.year + step if future else anchor.year - step
        try:
            candidate = date(year, month, day)
        except ValueError:
            continue
        if (candidate >= anchor) if future else (candidate <= anchor):
            return _day(candidate)
    return None


def _resolve_day_month(match: re.Match[str], anchor: date, context: _Context) -> _Period | None:
    plain = not match.group("ordinal_or_of") and not match.group("year")
    if plain and _key(match.group("month")) in ("may", "march") and match.group("month").islower():
        return None  # "these 2 may help", "we 3 march": numbers before a verb
    return _resolve_month_day(match, anchor, context)


def _resolve_day_of_month(match: re.Match[str], anchor: date, context: _Context) -> _Period | None:
    day = int(match.group("day"))
    future = context.in_future_tense(match.start())
    # Walk months away from the anchor until one has this day on the right side of the anchor.
    for step in range(13):
        first, last, _ = _month(anchor.year, anchor.month + (step if future else -step))
        if day > last.day:
            continue
        candidate = first.replace(day=day)
        if (candidate >= anchor) if future else (candidate <= anchor):
            return _day(candidate)
    return None


def _resolve_year(match: re.Match[str], anchor: date, context: _Context) -> _Period:
    return _year(int(match.group("year")))


def _resolve_iso_date(match: re.Match[str], anchor: date, context: _Context) -> _Period:
    return _day(date(int(match.group("year")), int(match.group("month_number")), int(match.group("day"))))


def _season_occurrences(name: str, anchor: date) -> list[_Period]:
    return [_season(name, year) for year in range(anchor.year - 2, anchor.year + 2)]


def _resolve_season_year(match: re.Match[str], anchor: date, context: _Context) -> _Period:
    return _season(_key(match.group("season")), int(match.group("year")))


def _resolve_relative_season(match: re.Match[str], anchor: date, context: _Context) -> _Period | None:
    which = _words(match, "which")
    occurrences = _season_occurrences(_key(match.group("season")), anchor)
    if which in ("last", "this past"):
        return _latest_ended_before(occurrences, anchor)
    if which in ("next", "this coming"):
        return _first_starting_after(occurrences, anchor)
    return _nearest(occurrences, anchor)


def _resolve_bare_season(match: re.Match[str], anchor: date, context: _Context) -> _Period | None:
    occurrences = _season_occurrences(_key(match.group("season")), anchor)
    return _by_tense(occurrences, anchor, context.in_future_tense(match.start()))


# --- The patterns ----------------------------------------------------------------------------

@dataclass(frozen=True)
class _Rule:
    pattern: re.Pattern[str]
    resolve: _Resolver
    # Every match holds one of these (case-folded): a text without any skips the rule. Scanning a
    # long text with every pattern cost ~1.4 ms per LongMemEval turn; substring checks cost little.
    needs: tuple[str, ...]
    # The same check as one scan for any of `needs`, done by the regex engine (a Python loop over
    # the words cost a quarter of an import's date resolution).
    needs_any: re.Pattern[str]
    # A part of the pattern that every match holds, in lower case, found in the case-folded text:
    # only the text near its occurrences is scanned with `pattern` (see _matches). Each of its
    # matches holds one of `needs`. By default, `needs_any`.
    anchor: re.Pattern[str]


def _rule(pattern: str, resolve: _Resolver, needs: tuple[str, ...] | str, anchor: str | None = None) -> _Rule:
    words = (needs,) if isinstance(needs, str) else needs
    needs_any = re.compile("|".join(map(re.escape, words)))
    return _Rule(re.compile(pattern, re.IGNORECASE), resolve, words, needs_any,
                 re.compile(anchor) if anchor else needs_any)


_UNIT_WORDS = ("day", "week", "month", "year")
_MONTH_PREFIXES = tuple(_MONTH_NUMBERS)
_WEEKDAY_NAMES = tuple(_WEEKDAYS)
_SEASON_NAMES = tuple(_SEASON_FIRST_MONTH)
_CENTURIES = ("19", "20")

# Anchors (see _Rule) more telling than `needs`. _MONTH_ANY, spelt as a tree (as 24 alternatives it
# took twice as long to find); a day with its ordinal (_DAY starts with an ASCII digit; \d is any
# digit, "1٣th" too); a year.
_MONTH_ANCHOR = (r"(?:j(?:an(?:uary)?|une?|uly?)|feb(?:ruary)?|ma(?:r(?:ch)?|y)|a(?:pr(?:il)?|ug(?:ust)?)"
                 r"|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\b")
_ORDINAL_ANCHOR = rf"[0-9]\d?{_ORDINAL}\b"
_YEAR_ANCHOR = r"(?:19|20)\d\d"


# A group named "context" holds a word that is needed to recognise the expression but is left
# out of its span ("since May" is stored as "May").
_CONTEXT = r"(?P<context>since|of|by|until|till|from)"

_RULES: tuple[_Rule, ...] = (
    _rule(r"\bthe\s+day\s+before\s+yesterday\b", _resolve_fixed_day(-2), "yesterday"),
    _rule(r"\bthe\s+day\s+after\s+tomorrow\b", _resolve_fixed_day(2), "tomorrow"),
    _rule(r"\byesterday(?:\s+(?:morning|afternoon|evening|night))?\b", _resolve_fixed_day(-1), "yesterday"),
    _rule(r"\blast\s+night\b", _resolve_fixed_day(-1), "night"),
    _rule(r"\b(?:today|tonight|this\s+(?:morning|afternoon|evening))\b", _resolve_fixed_day(0),
          ("today", "tonight", "morning", "afternoon", "evening")),
    _rule(r"\btomorrow(?:\s+(?:morning|afternoon|evening|night))?\b", _resolve_fixed_day(1), "tomorrow"),
    _rule(r"\bthe\s+other\s+day\b", _resolve_other_day, "other"),
    _rule(rf"{_COUNT}\s+{_UNIT}\s+ago\b", _resolve_ago, "ago"),
    _rule(rf"{_COUNT}\s+{_UNIT}\s+from\s+(?:now|today)\b", _resolve_ahead, "from", r"from\s+(?:now|today)\b"),
    _rule(rf"\bin\s+{_COUNT}\s+{_UNIT}(?:['’]s?\s+time)?\b", _resolve_ahead, _UNIT_WORDS),
    _rule(rf"\b(?:the\s+)?(?:past|last)\s+{_COUNT}\s+{_UNIT}\b", _resolve_rolling_counted, ("past", "last")),
    _rule(r"\b(?:the|this)\s+past\s+(?P<unit>day|week|month|year)\b", _resolve_rolling_one, "past"),
    # "last week of May" is a week of May, not last week.
    _rule(rf"\b{_RELATIVE}\s+(?P<unit>weekend|week|month|year)\b(?!\s+of\b)", _resolve_relative_unit, _UNIT_WORDS),
    _rule(r"\bthe\s+(?P<unit>weekend|week|month|year)\s+(?P<relation>before\s+last|before|after\s+next)\b",
          _resolve_unit_before, _UNIT_WORDS),
    _rule(r"\bthe\s+previous\s+(?P<unit>weekend|week|month|year)\b", _resolve_previous_unit, "previous"),
    _rule(r"\b(?:over|on|at|during)\s+the\s+weekend\b", _resolve_bare_weekend, "weekend"),
    _rule(rf"\b(?:(?P<which>last|this\s+past|this\s+coming|this|next|on)\s+)?{_WEEKDAY}\b",
          _resolve_weekday, _WEEKDAY_NAMES),
    _rule(rf"\b{_MONTH_ANY}\.?\s+(?:the\s+)?{_DAY}{_ORDINAL}?\b(?:,?\s+{_YEAR})?", _resolve_month_day, _MONTH_PREFIXES,
          _MONTH_ANCHOR),
    _rule(rf"\b(?:the\s+)?{_DAY}(?P<ordinal_or_of>{_ORDINAL}(?:\s+of)?|\s+of)?\s+{_MONTH_ANY}"
          rf"(?:,?\s+{_YEAR})?", _resolve_day_month, _MONTH_PREFIXES, _MONTH_ANCHOR),
    _rule(rf"\b(?:(?:in|during|throughout)\s+)?(?:(?:early|late|mid)[\s-]+)?{_MONTH_ANY}\.?,?\s+(?:of\s+)?{_YEAR}",
          _resolve_month_year, _MONTH_PREFIXES, _MONTH_ANCHOR),
    _rule(rf"\b(?:{_CONTEXT}|{_RELATIVE}|in|during|throughout|early|late|mid)[\s-]+"
          rf"(?:(?:early|late|mid)[\s-]+)?{_MONTH_FULL}\b", _resolve_named_month, _MONTH_PREFIXES, _MONTH_ANCHOR),
    # "on the 5th", but not "on the 5th floor".
    _rule(rf"\bon\s+the\s+{_DAY}{_ORDINAL}\b(?!\s+(?:floor|storey|story|try|attempt|time|round"
          rf"|day|week|grade|place|page|level|step|lap|hole|row|street|avenue|anniversary|birthday))",
          _resolve_day_of_month, tuple("0123456789"), _ORDINAL_ANCHOR),
    _rule(rf"\b(?:{_CONTEXT}\s+|(?:in(?:\s+the\s+year)?|during|throughout)\s+)(?:(?:early|late|mid)[\s-]+)?"
          rf"{_YEAR}", _resolve_year, _CENTURIES, _YEAR_ANCHOR),
    _rule(rf"\b(?:early|late|mid)[\s-]+{_YEAR}", _resolve_year, _CENTURIES, _YEAR_ANCHOR),
    _rule(r"\b(?P<year>(?:19|20)\d\d)(?P<sep>[-/])(?P<month_number>0?[1-9]|1[0-2])(?P=sep)"
          r"(?P<day>[12]\d|3[01]|0?[1-9])\b", _resolve_iso_date, _CENTURIES, _YEAR_ANCHOR),
    _rule(rf"\b(?:(?:in|during|throughout)\s+)?(?:the\s+)?(?:(?:early|late|mid)[\s-]+)?{_SEASON}\s+(?:of\s+)?"
          rf"{_YEAR}", _resolve_season_year, _SEASON_NAMES),
    _rule(rf"\b{_RELATIVE}\s+{_SEASON}\b", _resolve_relative_season, _SEASON_NAMES),
    # "in spring water" is not a season.
    _rule(rf"\b(?:in|during|over|through|throughout)\s+(?:the\s+)?(?:(?:early|late)\s+)?{_SEASON}\b"
          r"(?!\s+(?:water|rolls?|onions?|chicken|mattress))", _resolve_bare_season, _SEASON_NAMES),
)


# --- Public API ------------------------------------------------------------------------------

def _as_date(anchor: date | datetime) -> date:
    if isinstance(anchor, datetime):
        return anchor.date()
    if isinstance(anchor, date):
        return anchor
    raise InputError(
        f"anchor {anchor!r} is not a date",
        field="anchor",
        fix="pass a datetime.date or datetime.datetime; parse strings with "
            "memlane.ingest.dates.parse_session_date",
    )


def _span_start(match: re.Match[str], text: str) -> int:
    """Where the expression starts: after a context word such as "since", if there is one."""
    if "context" not in match.re.groupindex or match.group("context") is None:
        return match.start()
    position = match.end("context")
    while text[position] in " \t\r\n-":
        position += 1
    return position


def _longest_non_overlapping(found: list[tuple[int, int, _Period]], length: int) -> list[tuple[int, int, _Period]]:
    """Keep the longest matches that do not overlap, in text order (earlier wins a tie).

    `length` is the text's: a match is checked against the characters already taken, not against
    every match kept before it (32,000 "yesterday"s took half a minute that way). Each rule's
    matches do not overlap one another, so the checks cost at most the rules times the length."""
    taken = bytearray(length)
    kept: list[tuple[int, int, _Period]] = []
    for start, end, period in sorted(found, key=lambda f: (f[0] - f[1], f[0])):
        if taken.find(1, start, end) == -1:
            taken[start:end] = b"\x01" * (end - start)
            kept.append((start, end, period))
    return sorted(kept, key=lambda f: f[0])


# Only runs of whitespace and hyphens (`\s+`, `[\s-]+`) make a match's length unbounded. In a
# text whose runs are at most _MAX_GAP long, a match and the characters its lookarounds read
# span at most _REACH characters (tests/ingest/test_temporal.py checks this for every rule).
_MAX_GAP = 8
_LONG_GAP = re.compile(r"[\s-]" * (_MAX_GAP + 1))  # spelt out: a third faster than {9}
_REACH = 80
# The characters whose case folding disagrees with re.IGNORECASE about an anchor: "ı" matches
# "i" but folds to itself; U+0345 is no word character, but folds to one (İ and ß change the
# length, which is checked apart).
_UNFOLDED = re.compile("[\u0131\u0345]")


def _can_scan_near_anchors(text: str, folded: str) -> bool:
    """Whether _matches may be used: the anchors found in `folded` (text.casefold()) are found
    where the patterns see them in `text`, and no gap in `text` is longer than _MAX_GAP."""
    return (len(folded) == len(text) and (text.isascii() or _UNFOLDED.search(text) is None)
            and _LONG_GAP.search(text) is None)


def _windows(anchor: re.Pattern[str], folded: str) -> list[tuple[int, int, int]]:
    """The stretches of the text to scan near `anchor`'s occurrences in `folded`, in text order:
    (first start, end of the starts, endpos); see _matches."""
    windows: list[tuple[int, int, int]] = []
    for found in anchor.finditer(folded):
        first, last, endpos = max(0, found.start() - _REACH), found.end(), found.end() + _REACH
        if windows and first <= windows[-1][2]:  # overlaps the previous one's scan: one scan
            first = windows.pop()[0]
        windows.append((first, last, endpos))
    return windows


def _matches(pattern: re.Pattern[str], text: str, windows: list[tuple[int, int, int]]) -> Iterator[re.Match[str]]:
    """`pattern.finditer(text)`, match for match, scanning only the `windows` of its rule's anchor
    (where _can_scan_near_anchors): scanning the whole text with every pattern took half the time
    of an import of long chat turns.

    A match holds an anchor, so it starts at most _REACH before one that finditer found (or inside
    it: finditer skips anchors that overlap the one it found) and reads nothing _REACH past its end.
    So a window's scan, cut at `endpos`, finds every match that starts before the end of its last
    anchor, as the whole-text scan does; what it finds beyond is cut short by `endpos`, and is
    dropped. Windows whose scans would overlap are one window, so no match crosses into the next
    window, and none is found twice."""
    for first, last, endpos in windows:
        for match in pattern.finditer(text, first, endpos):
            if match.start() >= last:
                break
            yield match


def resolve_expressions(text: str, anchor: date | datetime) -> list[EventDate]:
    """Find the time expressions in `text` and resolve each against `anchor`, the session date.

    Returns them in text order, without overlaps (the longest match wins), each with its span
    exactly as written. The rules for ambiguous expressions are in this module's docstring.
    """
    anchor_day = _as_date(anchor)
    folded = text.casefold()
    if not _TRIGGER.search(folded):
        return []
    context = _Context(text)
    found: list[tuple[int, int, _Period]] = []
    near_anchors = _can_scan_near_anchors(text, folded)
    windows: dict[re.Pattern[str], list[tuple[int, int, int]]] = {}  # rules share anchors
    for rule in _RULES:
        if near_anchors:
            # An anchor holds one of `needs`: where the rule would be skipped, it has no windows.
            if rule.anchor not in windows:
                windows[rule.anchor] = _windows(rule.anchor, folded)
            matches = _matches(rule.pattern, text, windows[rule.anchor])
        elif rule.needs_any.search(folded):
            matches = rule.pattern.finditer(text)
        else:
            continue
        for match in matches:
            try:
                period = rule.resolve(match, anchor_day, context)
            except (ValueError, OverflowError):
                period = None  # no such day ("February 30th") or a year out of range
            if period is not None:
                found.append((_span_start(match, text), match.end(), period))
    return [
        EventDate(expression=text[start:end], start=period[0].isoformat(),
                  end=period[1].isoformat(), granularity=period[2])
        for start, end, period in _longest_non_overlapping(found, len(text))
    ]


def parse_query_range(query: str, now: date | datetime) -> TimeRange | None:
    """The span of days a search question asks about, or None when it names no time.

    Uses the same expressions as ingestion, resolved against `now`. When the question names
    several times, the range runs from the earliest start to the latest end.
    """
    events = resolve_expressions(query, now)
    if not events:
        return None
    return TimeRange(
        start=min(date.fromisoformat(e.start) for e in events),
        end=max(date.fromisoformat(e.end) for e in events),
        expression=", ".join(e.expression for e in events),
    )


def render_event_dates(events: list[EventDate]) -> str:
    """A compact suffix for a memory's embedding text: "[yesterday = 2023-05-07; ...]", or ""."""
    if not events:
        return ""
    return "[" + "; ".join(event.render() for event in events) + "]"
