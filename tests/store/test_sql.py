import pytest

from memlane.filters import Filter
from memlane.store.sql import filter_sql


def test_no_filters_is_always_true():
    assert filter_sql(Filter()) == ("1", [])


def test_equality_filters_accept_values_and_lists():
    sql, params = filter_sql(Filter(node_type="turn", speaker=["Ana", "Bo"]))
    assert sql == "m.node_type IN (?) AND m.speaker IN (?, ?)"
    assert params == ["turn", "Ana", "Bo"]


def test_every_equality_field_in_field_order_under_the_alias():
    sql, params = filter_sql(Filter(speaker="Ana", session_id="s1", agent_id="a", category="episodic",
                                    node_type="turn"), alias="x")
    assert sql == ("x.node_type IN (?) AND x.category IN (?) AND x.agent_id IN (?) "
                   "AND x.session_id IN (?) AND x.speaker IN (?)")
    assert params == ["turn", "episodic", "a", "s1", "Ana"]


def test_date_range_matches_event_dates_or_session_date():
    sql, params = filter_sql(Filter(date_from="2023-05-01", date_to="2023-05-31"))
    assert sql == ("((COALESCE(m.event_start, '9999') <= ? AND COALESCE(m.event_end, '0000') >= ?)"
                   " OR (substr(m.session_date, 1, 10) BETWEEN ? AND ?))")
    assert params == ["2023-05-31", "2023-05-01", "2023-05-01", "2023-05-31"]


def test_as_of_keeps_what_was_stated_by_then_and_not_yet_superseded():
    clause, params = filter_sql(Filter(as_of="2023-06-01T12:00"))
    assert clause == ("substr(COALESCE(m.valid_from, m.session_date, m.recorded_at), 1, 10) <= ? "
                      "AND (m.valid_until IS NULL OR substr(m.valid_until, 1, 10) > ?)")
    assert params == ["2023-06-01", "2023-06-01"]


def test_date_filters_convert_offsets_to_the_utc_day():
    _, params = filter_sql(Filter.parse({"date_from": "2023-05-01T23:30-02:00", "date_to": "2023-05-31T00:30+02:00"}))
    assert params == ["2023-05-30", "2023-05-02", "2023-05-02", "2023-05-30"]
    _, params = filter_sql(Filter.parse({"as_of": "2023-06-01T23:00-05:00"}))
    assert params == ["2023-06-02", "2023-06-02"]


def test_an_open_date_range_keeps_its_other_end():
    _, params = filter_sql(Filter(date_to="2023-05-31"))
    assert params == ["2023-05-31", "0000-01-01", "0000-01-01", "2023-05-31"]
    _, params = filter_sql(Filter(date_from="2023-05-01"))
    assert params == ["9999-12-31", "2023-05-01", "2023-05-01", "9999-12-31"]


def test_all_conditions_are_joined_with_and_in_order():
    sql, params = filter_sql(Filter(speaker="Ana", date_from="2023-05-01", as_of="2023-06-01"))
    assert sql.startswith("m.speaker IN (?) AND ((COALESCE(") and " AND substr(COALESCE(m.valid_from" in sql
    assert params == ["Ana", "9999-12-31", "2023-05-01", "2023-05-01", "9999-12-31", "2023-06-01", "2023-06-01"]


def test_an_empty_list_matches_nothing():
    assert filter_sql(Filter(speaker=[])) == ("0", [])
    assert filter_sql(Filter.parse({"speaker": []})) == ("0", [])


def test_only_a_filter_is_translated():
    with pytest.raises(AssertionError, match="takes a Filter"):
        filter_sql({"node_type": "turn"})
