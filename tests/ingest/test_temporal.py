"""Shift-left time: relative expressions resolved against the session date.

Expected dates are checked by hand against the calendar. Useful landmarks:
2023-05-08 is a Monday (so 2023-05-01..07 is the ISO week before it), 2023-05-14 a Sunday,
2023-01-15 a Sunday, 2024-02-29 a Thursday, 2024-03-01 a Friday.
"""

from __future__ import annotations

from datetime import date, datetime

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from memlane.errors import InputError
from memlane.ingest.temporal import (
    TimeRange,
    parse_query_range,
    render_event_dates,
    resolve_expressions,
)
from memlane.records import EventDate

MONDAY = date(2023, 5, 8)

# sentence, anchor (session date), expression as written, expected start, expected end
TABLE = [
    # Days
    ("I went to a support group yesterday.", "2023-05-08", "yesterday", "2023-05-07", "2023-05-07"),
    ("I'm so tired today!", "2023-05-08", "today", "2023-05-08", "2023-05-08"),
    ("We're having pizza tonight.", "2023-05-08", "tonight", "2023-05-08", "2023-05-08"),
    ("I went for a run this morning.", "2023-05-08", "this morning", "2023-05-08", "2023-05-08"),
    ("My sister arrives tomorrow.", "2023-05-08", "tomorrow", "2023-05-09", "2023-05-09"),
    ("I called her the day before yesterday.", "2023-05-08", "the day before yesterday", "2023-05-06", "2023-05-06"),
    ("The party is the day after tomorrow.", "2023-05-08", "the day after tomorrow", "2023-05-10", "2023-05-10"),
    ("I lost my keys yesterday evening.", "2023-05-08", "yesterday evening", "2023-05-07", "2023-05-07"),
    ("I went to the gym last night.", "2023-05-08", "last night", "2023-05-07", "2023-05-07"),
    ("I started journaling yesterday.", "2024-03-01", "yesterday", "2024-02-29", "2024-02-29"),
    # N units ago / ahead
    ("I finished the painting three days ago.", "2023-05-08", "three days ago", "2023-05-05", "2023-05-05"),
    ("I adopted a puppy 10 days ago.", "2023-05-08", "10 days ago", "2023-04-28", "2023-04-28"),
    ("We met a couple of days ago at the cafe.", "2023-05-08", "a couple of days ago", "2023-05-06", "2023-05-06"),
    ("We met a week ago.", "2023-05-08", "a week ago", "2023-05-01", "2023-05-07"),
    ("I started the course a few weeks ago.", "2023-05-08", "a few weeks ago", "2023-04-17", "2023-04-23"),
    ("I moved here two months ago.", "2023-05-08", "two months ago", "2023-03-01", "2023-03-31"),
    ("I moved out a month ago.", "2023-03-31", "a month ago", "2023-02-01", "2023-02-28"),
    ("I graduated five years ago.", "2023-05-08", "five years ago", "2018-01-01", "2018-12-31"),
    ("A year ago I was in Lisbon.", "2024-02-29", "A year ago", "2023-01-01", "2023-12-31"),
    ("I'll see you in two weeks.", "2023-05-08", "in two weeks", "2023-05-22", "2023-05-28"),
    ("The exam is three weeks from now.", "2023-05-08", "three weeks from now", "2023-05-29", "2023-06-04"),
    ("I'll be back in 3 days.", "2023-05-08", "in 3 days", "2023-05-11", "2023-05-11"),
    # Rolling windows and fuzzy ranges
    ("I've run every morning for the last two weeks.", "2023-05-08", "the last two weeks", "2023-04-24", "2023-05-08"),
    ("I've been training for the past year.", "2024-02-29", "the past year", "2023-02-28", "2024-02-29"),
    ("I bumped into Sam the other day.", "2023-05-08", "the other day", "2023-05-01", "2023-05-06"),
    # Weekdays
    ("I saw him last Tuesday.", "2023-05-08", "last Tuesday", "2023-05-02", "2023-05-02"),
    ("Last Monday I painted a sunset.", "2023-05-08", "Last Monday", "2023-05-01", "2023-05-01"),
    ("I quit smoking last Sunday.", "2023-05-08", "last Sunday", "2023-05-07", "2023-05-07"),
    ("I got a promotion last Friday!", "2023-05-14", "last Friday", "2023-05-12", "2023-05-12"),
    ("I went hiking on Saturday.", "2023-05-08", "on Saturday", "2023-05-06", "2023-05-06"),
    ("On Sunday I went to church.", "2023-05-14", "On Sunday", "2023-05-07", "2023-05-07"),
    ("I'm seeing the dentist this Friday.", "2023-05-08", "this Friday", "2023-05-12", "2023-05-12"),
    ("I'll start the new job next Monday.", "2023-05-08", "next Monday", "2023-05-15", "2023-05-15"),
    ("My cousin visits next Friday.", "2023-05-10", "next Friday", "2023-05-19", "2023-05-19"),
    ("I will call you on Thursday.", "2023-05-08", "on Thursday", "2023-05-11", "2023-05-11"),
    # Weeks and weekends
    ("It rained all last week.", "2023-05-08", "last week", "2023-05-01", "2023-05-07"),
    ("I'm swamped this week.", "2023-05-10", "this week", "2023-05-08", "2023-05-14"),
    ("We fly to Rome next week.", "2023-05-08", "next week", "2023-05-15", "2023-05-21"),
    ("I was in Boston the week before.", "2023-05-10", "the week before", "2023-05-01", "2023-05-07"),
    ("I had the flu the week before last.", "2023-05-08", "the week before last", "2023-04-24", "2023-04-30"),
    ("We camped by the lake last weekend.", "2023-05-08", "last weekend", "2023-05-06", "2023-05-07"),
    ("We camped by the lake last weekend.", "2023-05-13", "last weekend", "2023-05-06", "2023-05-07"),
    ("We went camping two weekends ago.", "2023-05-08", "two weekends ago", "2023-04-29", "2023-04-30"),
    ("Any plans for this weekend?", "2023-05-08", "this weekend", "2023-05-13", "2023-05-14"),
    ("Next weekend we're hiking.", "2023-05-08", "Next weekend", "2023-05-20", "2023-05-21"),
    # Months
    ("My rent went up last month.", "2023-05-08", "last month", "2023-04-01", "2023-04-30"),
    ("Last month I started pottery.", "2023-01-15", "Last month", "2022-12-01", "2022-12-31"),
    ("Last month was short.", "2024-03-15", "Last month", "2024-02-01", "2024-02-29"),
    ("This month has been hectic.", "2023-05-08", "This month", "2023-05-01", "2023-05-31"),
    ("I'm starting a new job next month.", "2023-12-10", "next month", "2024-01-01", "2024-01-31"),
    ("I went to the beach in May.", "2023-08-20", "in May", "2023-05-01", "2023-05-31"),
    ("We went skiing in March.", "2023-02-10", "in March", "2022-03-01", "2022-03-31"),
    ("I'm going to Spain in June.", "2023-02-10", "in June", "2023-06-01", "2023-06-30"),
    ("We met in May 2022.", "2023-05-08", "in May 2022", "2022-05-01", "2022-05-31"),
    ("We went to Tokyo last December.", "2023-05-08", "last December", "2022-12-01", "2022-12-31"),
    # Days of a month
    ("My birthday party was on May 5th.", "2023-05-08", "May 5th", "2023-05-05", "2023-05-05"),
    ("My birthday party was on May 20th.", "2023-05-08", "May 20th", "2022-05-20", "2022-05-20"),
    ("We got married on February 29th.", "2023-05-08", "February 29th", "2020-02-29", "2020-02-29"),
    ("I met her on 8 May, 2023.", "2023-06-01", "8 May, 2023", "2023-05-08", "2023-05-08"),
    ("The concert was on the 5th of May.", "2023-06-01", "the 5th of May", "2023-05-05", "2023-05-05"),
    ("The recital was on the 5th.", "2023-05-08", "on the 5th", "2023-05-05", "2023-05-05"),
    ("The payment went out on the 31st.", "2023-05-08", "on the 31st", "2023-03-31", "2023-03-31"),
    ("It happened on the 29th.", "2023-03-10", "on the 29th", "2023-01-29", "2023-01-29"),
    ("The store opened on 2023-04-12.", "2023-05-08", "2023-04-12", "2023-04-12", "2023-04-12"),
    # Years
    ("I ran a marathon last year.", "2023-05-08", "last year", "2022-01-01", "2022-12-31"),
    ("This year I want to learn piano.", "2023-05-08", "This year", "2023-01-01", "2023-12-31"),
    ("Next year we're going to Japan.", "2023-05-08", "Next year", "2024-01-01", "2024-12-31"),
    ("I visited Paris in 2022.", "2023-05-08", "in 2022", "2022-01-01", "2022-12-31"),
    # Seasons
    ("We went to the lake last summer.", "2023-05-08", "last summer", "2022-06-01", "2022-08-31"),
    ("I planted tulips this spring.", "2023-05-08", "this spring", "2023-03-01", "2023-05-31"),
    ("It was freezing last winter.", "2023-05-08", "last winter", "2022-12-01", "2023-02-28"),
    ("This winter has been mild.", "2024-01-20", "This winter", "2023-12-01", "2024-02-29"),
    ("We took that trip in the summer of 2021.", "2023-05-08", "in the summer of 2021", "2021-06-01", "2021-08-31"),
    ("In the fall we'll go apple picking.", "2023-05-08", "In the fall", "2023-09-01", "2023-11-30"),
]


@pytest.mark.parametrize("sentence, anchor, expression, start, end", TABLE)
def test_resolves_expression_in_sentence(sentence, anchor, expression, start, end):
    events = resolve_expressions(sentence, date.fromisoformat(anchor))
    assert [(e.expression, e.start, e.end) for e in events] == [(expression, start, end)]


@pytest.mark.parametrize("sentence", [
    "I may go to the party if I feel better.",
    "The Mayday parade was loud.",
    "Maybe we should try the new place.",
    "This may take a while.",
    "These 2 may help you out.",
    "I've been reading a lot recently.",
    "It took a lot of time.",
    "I spent many years abroad.",
    "We live on the 5th floor.",
    "I go to yoga on Mondays.",
    "Every Monday I swim before work.",
    "He marched all the way home.",
    "I drank some spring water.",
    "",
])
def test_finds_nothing_where_no_time_is_named(sentence):
    assert resolve_expressions(sentence, MONDAY) == []


def test_expressions_come_in_text_order():
    events = resolve_expressions("Yesterday I planned what to do next week.", MONDAY)
    assert [e.expression for e in events] == ["Yesterday", "next week"]


def test_longest_match_wins_over_contained_match():
    events = resolve_expressions("I called her the day before yesterday.", MONDAY)
    assert [e.expression for e in events] == ["the day before yesterday"]


def test_expression_keeps_original_casing_and_span():
    text = "Honestly, LAST WEEK was a blur."
    [event] = resolve_expressions(text, MONDAY)
    assert event.expression == "LAST WEEK"
    assert event.expression in text


def test_context_word_is_left_out_of_the_span():
    [event] = resolve_expressions("I've lived here since May.", MONDAY)
    assert (event.expression, event.start, event.end) == ("May", "2023-05-01", "2023-05-31")


def test_may_after_in_is_the_month():
    [event] = resolve_expressions("In May we went to the coast.", MONDAY)
    assert (event.expression, event.granularity) == ("In May", "month")


def test_last_week_of_a_month_is_not_last_week():
    events = resolve_expressions("The last week of May was busy.", MONDAY)
    assert [e.expression for e in events] == ["May"]


@pytest.mark.parametrize("sentence, granularity", [
    ("I went out yesterday.", "day"),
    ("It rained last week.", "week"),
    ("We camped last weekend.", "weekend"),
    ("My rent went up last month.", "month"),
    ("We went to the lake last summer.", "season"),
    ("I visited Paris in 2022.", "year"),
    ("I saw Sam the other day.", "week"),
])
def test_granularity_names_the_period(sentence, granularity):
    [event] = resolve_expressions(sentence, MONDAY)
    assert event.granularity == granularity


def test_fuzzy_counts_have_fixed_meanings():
    few, = resolve_expressions("It broke a few days ago.", MONDAY)
    several, = resolve_expressions("It broke several days ago.", MONDAY)
    assert few.start == several.start == "2023-05-05"


def test_bare_weekday_leans_to_the_past_unless_the_sentence_is_future():
    past, = resolve_expressions("I baked bread on Friday.", MONDAY)
    future, = resolve_expressions("I'm going to bake bread on Friday.", MONDAY)
    assert (past.start, future.start) == ("2023-05-05", "2023-05-12")


def test_datetime_anchor_uses_its_date():
    events = resolve_expressions("I went out yesterday.", datetime(2023, 5, 8, 23, 59))
    assert events[0].start == "2023-05-07"


def test_string_anchor_is_an_input_error():
    with pytest.raises(InputError, match="parse_session_date"):
        resolve_expressions("I went out yesterday.", "2023-05-08")


# --- parse_query_range ---

def test_query_range_for_last_week():
    assert parse_query_range("What did I do last week?", MONDAY) == TimeRange(
        date(2023, 5, 1), date(2023, 5, 7), "last week")


def test_query_range_for_a_month_and_year():
    found = parse_query_range("What happened in May 2023?", date(2023, 8, 1))
    assert (found.start, found.end) == (date(2023, 5, 1), date(2023, 5, 31))


def test_query_range_for_a_year():
    found = parse_query_range("Where did I travel in 2022?", MONDAY)
    assert (found.start, found.end) == (date(2022, 1, 1), date(2022, 12, 31))


def test_query_range_for_days_ago():
    found = parse_query_range("What did I eat three days ago?", datetime(2023, 5, 8, 9, 30))
    assert (found.start, found.end) == (date(2023, 5, 5), date(2023, 5, 5))


def test_query_range_takes_the_union_of_several_expressions():
    found = parse_query_range("What did I do last month and yesterday?", MONDAY)
    assert found == TimeRange(date(2023, 4, 1), date(2023, 5, 7), "last month, yesterday")


def test_query_without_a_time_has_no_range():
    assert parse_query_range("When did I adopt the dog?", MONDAY) is None


def test_time_range_is_frozen():
    found = parse_query_range("What did I do last week?", MONDAY)
    with pytest.raises(AttributeError):
        found.start = date(2020, 1, 1)


# --- render_event_dates ---

def test_render_no_events_is_empty():
    assert render_event_dates([]) == ""


def test_render_days_and_ranges():
    events = [
        EventDate("yesterday", "2023-05-07", "2023-05-07", "day"),
        EventDate("last week", "2023-05-01", "2023-05-07", "week"),
    ]
    assert render_event_dates(events) == "[yesterday = 2023-05-07; last week = 2023-05-01..2023-05-07]"


def test_render_what_was_resolved():
    events = resolve_expressions("Yesterday was better than last week.", MONDAY)
    assert render_event_dates(events) == "[Yesterday = 2023-05-07; last week = 2023-05-01..2023-05-07]"


def test_every_match_of_every_rule_holds_one_of_the_words_that_let_the_rule_run():
    # resolve_expressions skips a rule when the text holds none of its `needs`: that is only
    # safe if no match can do without them, in any letter case.
    from memlane.ingest.temporal import _RULES

    sentences = [row[0] for row in TABLE] + [
        "The previous month was busy.", "We hiked over the weekend.", "It happened in mid-2019."]
    texts = sentences + [s.upper() for s in sentences]
    exercised = set()
    for i, rule in enumerate(_RULES):
        for text in texts:
            for match in rule.pattern.finditer(text):
                exercised.add(i)
                assert any(word in match.group(0).casefold() for word in rule.needs), (i, match.group(0))
    assert exercised == set(range(len(_RULES)))


def test_every_match_of_every_rule_holds_its_anchor_and_every_anchor_one_of_its_needs():
    # Where resolve_expressions scans only near a rule's anchors, a match without one would be
    # lost, and an anchor without any of `needs` would let a rule run that the whole-text scan skips.
    # A match without a word of _TRIGGER would be lost by the turns skipped at once.
    from memlane.ingest.temporal import _RULES, _TRIGGER

    sentences = [row[0] for row in TABLE] + [
        "The previous month was busy.", "We hiked over the weekend.", "It happened in mid-2019.",
        "It's due on the 3rd.", "It's due on the 1\u0663th.", "Back on 2021-04-03.", "On Sept. 5, 2020 we met.",
        "The 1st of Jan 2022.", "It was 20\u0662\u0662-04-03, paſt ſeven."]
    texts = sentences + [s.upper() for s in sentences]
    for i, rule in enumerate(_RULES):
        for text in texts:
            folded = text.casefold()
            for match in rule.pattern.finditer(text):
                assert rule.anchor.search(folded, match.start(), match.end()), (i, match.group(0))
                assert _TRIGGER.search(match.group(0).casefold()), (i, match.group(0))
            for found in rule.anchor.finditer(folded):
                assert any(word in found.group(0) for word in rule.needs), (i, found.group(0))


# Long texts full of expressions: each of these once took quadratic time (the overlap check of
# every match against every earlier one; the search for each match's sentence). The tests check
# the result; if the regression came back they would run for minutes.

def test_thirty_two_thousand_expressions_in_one_text_are_all_resolved():
    events = resolve_expressions("I went to the market yesterday. " * 32_000, MONDAY)
    assert len(events) == 32_000
    assert {(e.expression, e.start, e.end) for e in events} == {("yesterday", "2023-05-07", "2023-05-07")}


def test_many_overlapping_matches_keep_the_longest_each_time():
    events = resolve_expressions("the day before yesterday " * 20_000, MONDAY)
    assert len(events) == 20_000
    assert {(e.expression, e.start) for e in events} == {("the day before yesterday", "2023-05-06")}


def test_one_long_sentence_of_dates_takes_its_tense_from_the_whole_sentence():
    past = resolve_expressions("in may on the 5th " * 5_000, MONDAY)
    assert len(past) == 10_000
    assert {(e.expression, e.start) for e in past} == {("in may", "2023-05-01"), ("on the 5th", "2023-05-05")}
    future = resolve_expressions("in may on the 5th " * 5_000 + "I will go. Then on the 5th again.", MONDAY)
    assert {(e.expression, e.start) for e in future[:-1]} == {("in may", "2023-05-01"), ("on the 5th", "2023-06-05")}
    assert (future[-1].expression, future[-1].start) == ("on the 5th", "2023-05-05")  # its own sentence: past


# Scanning only near anchors (temporal._matches) must find what a scan of the whole text finds.

def _assert_scans_near_anchors_like_the_whole_text(text):
    from memlane.ingest.temporal import (
        _RULES,
        _can_scan_near_anchors,
        _matches,
        _windows,
    )

    folded = text.casefold()
    assert _can_scan_near_anchors(text, folded)
    for rule in _RULES:
        whole = [m.span() for m in rule.pattern.finditer(text)] if rule.needs_any.search(folded) else []
        near = [m.span() for m in _matches(rule.pattern, text, _windows(rule.anchor, folded))]
        assert near == whole, rule.pattern.pattern


def test_a_match_and_what_its_lookarounds_read_fit_in_the_reach_of_an_anchor():
    import re._parser

    from memlane.ingest.temporal import _MAX_GAP, _REACH, _RULES

    for rule in _RULES:
        bounded = (rule.pattern.pattern.replace(r"[\s-]+", rf"[\s-]{{1,{_MAX_GAP}}}")
                   .replace(r"\s+", rf"\s{{1,{_MAX_GAP}}}"))
        # Lookarounds read as if they matched; a final \b reads one character more.
        read = bounded.replace("(?<!", "(?:").replace("(?<=", "(?:").replace("(?!", "(?:").replace("(?=", "(?:")
        assert re._parser.parse(read, rule.pattern.flags).getwidth()[1] + 1 <= _REACH, rule.pattern.pattern


@pytest.mark.parametrize("filler", [0, 1, 41, 70, 71, 136, 137, 138, 147, 148, 149, 200])
def test_expressions_near_the_edges_of_windows_are_found_once(filler):
    # Anchors (May, 2022, 5th, Monday) `filler` characters apart: with _REACH = 80, the windows of two
    # months or two ordinals overlap by one character (41, 70, 136, 147), meet (137, 148: one window) or are one
    # character apart (71, 138, 149: two windows).
    gap = " " + "x" * filler + " "
    text = f"in early May, of 2022{gap}on the 5th{gap}last Monday{gap}May 5th, 2021{gap}the 5th of May"
    _assert_scans_near_anchors_like_the_whole_text(text)
    events = resolve_expressions(text, MONDAY)
    assert [e.expression for e in events] == [
        "in early May, of 2022", "on the 5th", "last Monday", "May 5th, 2021", "the 5th of May"]


_GAP = " " * 8  # the longest run of spaces that leaves the text scanned near anchors only
_LONG_EXPRESSIONS = [expression.replace(" ", _GAP) for expression in [
    "the past a couple of weeks", "December. the 31st, 2022", "throughout the early summer of 2022",
    "a couple of weekends from today", "in a couple of weeks’s time", "the 31st of December, 2022",
    "throughout early September., of 2022", "on the 5th", "last Monday",
]]


@pytest.mark.parametrize("filler", range(0, 200, 3))
def test_the_longest_expressions_are_found_whole_near_their_anchors(filler):
    # Each reads far before or after its anchor (past, December, summer, from today, weeks, 5th).
    text = (f"{_GAP}{'x' * filler}{_GAP}" if filler else _GAP).join(_LONG_EXPRESSIONS)
    _assert_scans_near_anchors_like_the_whole_text(text)
    assert [e.expression for e in resolve_expressions(text, MONDAY)] == _LONG_EXPRESSIONS


@pytest.mark.parametrize("shift", [-2, -1, 0, 1, 2])
def test_a_word_cut_at_the_end_of_a_window_is_no_expression(shift):
    # At shift 0, "may" of "mayor" ends where the scan near "May" stops: cut there, "in may"
    # would match.
    from memlane.ingest.temporal import _REACH

    text = "in May " + "x" * (_REACH - 8 + shift) + " in mayor."
    _assert_scans_near_anchors_like_the_whole_text(text)
    assert [e.expression for e in resolve_expressions(text, MONDAY)] == ["in May"]


def test_an_expression_across_a_long_gap_is_still_found():
    # A run of more than _MAX_GAP spaces makes the whole text scanned, as does a letter that
    # folds otherwise than IGNORECASE matches it.
    events = resolve_expressions("I moved last" + " " * 30 + "week, yesterday.", MONDAY)
    assert [e.expression for e in events] == ["last" + " " * 30 + "week", "yesterday"]
    events = resolve_expressions("Straße, ıdle, yesterday", MONDAY)
    assert [e.expression for e in events] == ["yesterday"]


_WORDS = st.sampled_from([
    "the", "day", "before", "yesterday", "after", "tomorrow", "last", "night", "today", "tonight", "this",
    "morning", "other", "a", "couple", "of", "few", "two", "12", "days", "weeks", "weekend", "months", "years",
    "ago", "from", "now", "in", "'s", "time", "past", "previous", "over", "on", "at", "during", "Monday", "sunday",
    "coming", "next", "January", "may", "March", "Sept.", "sep", "dec", "since", "early", "mid-", "late", "5th",
    "1st", "22nd", "1\u0663th", "3", "30", "2022", "1999", "2023-05-07", "2020/1/3", "1,000", "spring", "summer",
    "fall", "winter", "water", "floor", "be", "every", "will", ".", ",", "!", "\n", "-",
])
_SEPARATORS = st.sampled_from([" ", " ", "  ", "\n", "-", " - ", ", ", ". ", "", " " * 8])
_PIECES = st.one_of(_WORDS, _WORDS.map(str.upper), st.integers(1, 170).map(lambda n: "x" * n))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(_PIECES, _SEPARATORS), max_size=60))
def test_scanning_near_anchors_finds_what_the_whole_text_scan_finds(parts):
    from memlane.ingest.temporal import _can_scan_near_anchors

    text = "".join(piece + separator for piece, separator in parts)
    assume(_can_scan_near_anchors(text, text.casefold()))
    _assert_scans_near_anchors_like_the_whole_text(text)


def test_letters_that_match_case_insensitively_resolve_like_their_plain_forms():
    # re.IGNORECASE takes "ſ" for "s" (and the Kelvin sign for "k", "ı" for "i"); lookups once failed on them.
    anchor = date(2023, 5, 8)
    for odd, plain in [("in ſeptember 2022", "in september 2022"), ("last ſummer", "last summer"),
                       ("two dayſ ago", "two days ago"), ("laſt week", "last week")]:
        assert [(e.start, e.end) for e in resolve_expressions(odd, anchor)] == \
            [(e.start, e.end) for e in resolve_expressions(plain, anchor)] != []


_ODD = st.sampled_from(["ſ", "ı", "İ", "\u212a", "ß", "\u0345", "\u0307", "٣", " ", "-", "May", "last ", "ago",
                        "summer", "5th of ", "2022", "week", "Sept", "the day before "])


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.lists(st.one_of(_ODD, st.text(max_size=6)), max_size=25).map("".join))
def test_any_text_resolves_without_an_error(text):
    events = resolve_expressions(text, date(2023, 5, 8))
    assert all(e.start <= e.end for e in events)
    parse_query_range(text, date(2023, 5, 8))
