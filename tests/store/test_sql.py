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
