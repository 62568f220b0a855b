import json
import lzma
import re
from datetime import date, datetime, timedelta, timezone

import pytest
from _support import DATA

from memlane.errors import InputError
from memlane.ingest.dates import parse_iso_day, parse_session_date


@pytest.mark.parametrize("text, expected", [
    ("2023-05-08", datetime(2023, 5, 8)),
    ("2023-05-08T13:56", datetime(2023, 5, 8, 13, 56)),
    ("2023-05-08 13:56:07", datetime(2023, 5, 8, 13, 56, 7)),
    ("2023-05-08T13:56:07.25", datetime(2023, 5, 8, 13, 56, 7, 250000)),
    ("1:56 pm on 8 May, 2023", datetime(2023, 5, 8, 13, 56)),  # LoCoMo
    ("12:05 am on 1 January, 2024", datetime(2024, 1, 1, 0, 5)),
    ("12:30 pm on 19 June, 2022", datetime(2022, 6, 19, 12, 30)),
    ("2023/05/30 (Tue) 23:40", datetime(2023, 5, 30, 23, 40)),  # LongMemEval
    ("2023/05/30", datetime(2023, 5, 30)),
    ("8 May 2023", datetime(2023, 5, 8)),
    ("8 May, 2023", datetime(2023, 5, 8)),
    ("May 8, 2023", datetime(2023, 5, 8)),
    ("8th Sept 2023", datetime(2023, 9, 8)),
    ("  2023-05-08  ", datetime(2023, 5, 8)),
])
def test_the_accepted_formats_parse(text, expected):
    assert parse_session_date(text) == expected


@pytest.mark.parametrize("text, expected", [
    ("2023-05-08T13:56Z", datetime(2023, 5, 8, 13, 56)),
    ("2023-05-08T13:56+02:00", datetime(2023, 5, 8, 11, 56)),
    ("2023-05-08T23:30-05:00", datetime(2023, 5, 9, 4, 30)),
    ("2023-05-08T13:56:00-0130", datetime(2023, 5, 8, 15, 26)),
])
def test_offsets_are_converted_to_utc_not_dropped(text, expected):
    assert parse_session_date(text) == expected


def test_date_and_datetime_objects_are_taken_as_they_are_and_aware_ones_in_utc():
    assert parse_session_date(date(2023, 5, 8)) == datetime(2023, 5, 8)
    assert parse_session_date(datetime(2023, 5, 8, 13, 56)) == datetime(2023, 5, 8, 13, 56)
    aware = datetime(2023, 5, 8, 1, 0, tzinfo=timezone(timedelta(hours=3)))
    assert parse_session_date(aware) == datetime(2023, 5, 7, 22, 0)


@pytest.mark.parametrize("text", [
    "99", "1/2/3", "05/08/2023", "8/5/2023", "-2023-01-01", "2023-02-30", "2023-05-07xyz", "2023-13-01",
    "0000-01-01", "10000-01-01", "2023-05-08T24:00", "2023-05-08T13", "20230508", "2023-W19-1",
    "2023-05-08T13:56+24:00", "0001-01-01T00:00+01:00", "9999-12-31T23:59-01:00", "May 2023", "8 May 23",
    "8 Mai 2023", "13:00 pm on 8 May, 2023", "1:56 pm on sometime", "2023/05/30 (Wed) 23:40",
    "２０２３-05-08", "sometime in spring", "", "  ",
])
def test_anything_else_is_an_input_error_naming_field_value_and_formats(text):
    with pytest.raises(InputError) as caught:
        parse_session_date(text, field="session_date")
    message = str(caught.value)
    assert caught.value.field == "session_date" and repr(text) in message
    assert "2023-05-08" in message and "1:56 pm on 8 May, 2023" in message


@pytest.mark.parametrize("value", [None, 5, 2023.5, True, ["2023-05-08"]])
def test_non_strings_are_input_errors(value):
    with pytest.raises(InputError, match="expected a date string"):
        parse_session_date(value)


def _real_dates() -> list[tuple[str, str]]:
    """(text, strptime format) of every session date in the LoCoMo files and LongMemEval's oracle file."""
    found = []
    for path in sorted((DATA / "locomo").glob("*.json")):
        data = json.loads(path.read_text())
        for item in data if isinstance(data, list) else [data]:
            conversation = item.get("conversation", item)
            found += [(v, "%I:%M %p on %d %B, %Y") for k, v in conversation.items()
                      if re.fullmatch(r"session_\d+_date_time", k)]
    with lzma.open(DATA / "longmemeval" / "longmemeval_oracle_dev.json.xz") as handle:
        for question in json.load(handle):
            found += [(v, "%Y/%m/%d (%a) %H:%M") for v in [*question["haystack_dates"], question["question_date"]]]
    return found


def test_every_date_of_the_real_datasets_parses_as_its_format_says():
    found = _real_dates()
    assert len(found) > 1000
    wrong = [(text, parse_session_date(text)) for text, fmt in found
             if parse_session_date(text) != datetime.strptime(text, fmt)]
    assert wrong == []


@pytest.mark.parametrize("value, expected", [
    ("2023-05-08", "2023-05-08"),
    ("2023-05-08T13:56", "2023-05-08"),
    ("2023-05-08T23:30-05:00", "2023-05-09"),  # the UTC day, as stored dates are UTC
    ("2024-02-29", "2024-02-29"),
    (date(2023, 5, 8), "2023-05-08"),
    (datetime(2023, 5, 8, 13, 56), "2023-05-08"),
])
def test_iso_day_is_the_utc_calendar_day(value, expected):
    assert parse_iso_day(value, "date_from") == expected


@pytest.mark.parametrize("value", [
    "2023-02-30", "2023-05-07xyz", "2023-5-7", "8 May 2023", "1:56 pm on 8 May, 2023", "0000-01-01",
    "2023-05-08T25:00", "", None, 20230508,
])
def test_iso_day_refuses_anything_but_a_real_iso_day(value):
    with pytest.raises(InputError) as caught:
        parse_iso_day(value, "date_to")
    assert caught.value.field == "date_to" and repr(value) in str(caught.value) and "YYYY-MM-DD" in str(caught.value)
