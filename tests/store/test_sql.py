import pytest

from memlane.errors import InputError
from memlane.store.sql import filter_sql


def test_no_filters_is_always_true():
    assert filter_sql(None) == ("1", [])


def test_equality_filters_accept_values_and_lists():
    sql, params = filter_sql({"node_type": "turn", "speaker": ["Ana", "Bo"]})
    assert sql == "m.node_type IN (?) AND m.speaker IN (?, ?)"
    assert params == ["turn", "Ana", "Bo"]


def test_date_range_matches_event_dates_or_session_date():
    sql, params = filter_sql({"date_from": "2023-05-01", "date_to": "2023-05-31"})
    assert "m.event_start" in sql and "m.session_date" in sql
    assert params == ["2023-05-31", "2023-05-01", "2023-05-01", "2023-05-31"]


def test_unknown_filter_names_the_valid_ones():
    with pytest.raises(InputError, match="unknown filter 'colour'.*node_type"):
        filter_sql({"colour": "red"})


def test_bad_date_filter_says_the_format():
    with pytest.raises(InputError, match="YYYY-MM-DD"):
        filter_sql({"date_from": "last week"})


def test_as_of_keeps_what_was_stated_by_then_and_not_yet_superseded():
    clause, params = filter_sql({"as_of": "2023-06-01T12:00"})
    assert clause == ("substr(COALESCE(m.valid_from, m.session_date, m.recorded_at), 1, 10) <= ? "
                      "AND (m.valid_until IS NULL OR substr(m.valid_until, 1, 10) > ?)")
    assert params == ["2023-06-01", "2023-06-01"]
    with pytest.raises(InputError, match="as_of"):
        filter_sql({"as_of": "June"})


@pytest.mark.parametrize("field", ["date_from", "date_to", "as_of"])
@pytest.mark.parametrize("value", ["2023-02-30", "2023-05-07xyz", "2023-5-7", "0000-01-01", "99", "-2023-01-01",
                                   "8 May 2023", 20230507, ["2023-05-07"]])
def test_date_filters_take_only_real_iso_days(field, value):
    with pytest.raises(InputError) as caught:
        filter_sql({field: value})
    assert caught.value.field == field and repr(value) in str(caught.value) and "YYYY-MM-DD" in str(caught.value)


def test_date_filters_convert_offsets_to_the_utc_day():
    _, params = filter_sql({"date_from": "2023-05-01T23:30-02:00", "date_to": "2023-05-31T00:30+02:00"})
    assert params == ["2023-05-30", "2023-05-02", "2023-05-02", "2023-05-30"]
    _, params = filter_sql({"as_of": "2023-06-01T23:00-05:00"})
    assert params == ["2023-06-02", "2023-06-02"]


def test_an_open_date_range_keeps_its_other_end():
    _, params = filter_sql({"date_to": "2023-05-31"})
    assert params == ["2023-05-31", "0000-01-01", "0000-01-01", "2023-05-31"]


@pytest.mark.parametrize("value", [42, 10**30, True, {"a": 1}, [b"turn"], ["turn", None]])
def test_equality_filters_take_strings_only(value):
    with pytest.raises(InputError, match="node_type takes strings"):
        filter_sql({"node_type": value})


def test_an_empty_list_matches_nothing():
    assert filter_sql({"speaker": []}) == ("0", [])


def test_filters_must_be_a_dict():
    with pytest.raises(InputError, match="must be a dict"):
        filter_sql(["node_type"])
