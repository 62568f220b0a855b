"""Filter: the search and list filter, parsed and validated once, with the helpers the retriever uses."""

from dataclasses import FrozenInstanceError, replace
from datetime import date, datetime, timedelta, timezone

import pytest

from memlane import Category, Filter, NodeType
from memlane.errors import InputError


# --- parsing ----------------------------------------------------------------------------------------


def test_none_is_the_filter_that_restricts_nothing():
    f = Filter.parse(None)
    assert f == Filter() and f.is_empty and f.restricted == () and f.to_dict() == {}


def test_a_filter_is_parsed_as_itself():
    f = Filter(node_type="turn")
    assert Filter.parse(f) is f


@pytest.mark.parametrize("field", ["node_type", "category", "agent_id", "session_id", "speaker"])
def test_each_list_field_takes_a_string_or_a_list_of_strings(field):
    assert getattr(Filter.parse({field: "a"}), field) == ("a",)
    assert getattr(Filter.parse({field: ["a", "b"]}), field) == ("a", "b")
    assert getattr(Filter.parse({field: ("a",)}), field) == ("a",)
    assert getattr(Filter.parse({field: {"b", "a"}}), field) == ("a", "b")  # sets in a stable order
    assert Filter.parse({field: "a"}).restricted == (field,)


def test_an_empty_list_is_kept_and_means_nothing_passes():
    f = Filter.parse({"speaker": []})
    assert f.speaker == () and not f.is_empty
    assert not Filter(node_type=[]).allows_node_type("turn")


def test_none_leaves_a_field_unrestricted():
    assert Filter.parse({"node_type": None, "date_from": None}).is_empty


def test_enums_are_taken_as_their_value():
    f = Filter.parse({"category": Category.EPISODIC, "node_type": [NodeType.TURN, "session"]})
    assert f.category == ("episodic",) and f.node_type == ("turn", "session")
    assert all(type(v) is str for v in f.category + f.node_type)


@pytest.mark.parametrize("value, day", [
    ("2023-05-07", "2023-05-07"),
    (" 2023-05-07 ", "2023-05-07"),
    ("2023-05-07T12:00", "2023-05-07"),
    ("2023-05-07T23:30-02:00", "2023-05-08"),  # offsets give the UTC day
    (date(2023, 5, 7), "2023-05-07"),
    (datetime(2023, 5, 7, 9, 30), "2023-05-07"),
    (datetime(2023, 5, 7, 23, 0, tzinfo=timezone(timedelta(hours=-5))), "2023-05-08"),
])
@pytest.mark.parametrize("field", ["date_from", "date_to", "as_of"])
def test_dates_become_iso_days(field, value, day):
    assert getattr(Filter.parse({field: value}), field) == day


@pytest.mark.parametrize("field", ["date_from", "date_to", "as_of"])
@pytest.mark.parametrize("value", ["2023-02-30", "2023-05-07xyz", "2023-5-7", "0000-01-01", "99", "-2023-01-01",
                                   "8 May 2023", 20230507, ["2023-05-07"]])
def test_date_filters_take_only_real_iso_days(field, value):
    with pytest.raises(InputError) as caught:
        Filter.parse({field: value})
    assert caught.value.field == field and repr(value) in str(caught.value) and "YYYY-MM-DD" in str(caught.value)


@pytest.mark.parametrize("value", [42, 10**30, True, {"a": 1}, [b"turn"], ["turn", None], [["turn"]]])
def test_list_fields_take_strings_only(value):
    with pytest.raises(InputError, match="node_type takes a string or a list of strings") as caught:
        Filter.parse({"node_type": value})
    assert caught.value.field == "node_type"


def test_a_lone_surrogate_is_refused_by_field():
    with pytest.raises(InputError, match="surrogate") as caught:
        Filter.parse({"speaker": ["Ana", "B\ud800o"]})
    assert caught.value.field == "speaker"
    with pytest.raises(InputError) as caught:
        Filter.parse({"date_to": "2023-05-07\udfff"})
    assert caught.value.field == "date_to"


def test_a_list_field_takes_at_most_a_thousand_values():
    assert len(Filter.parse({"session_id": [f"s{i}" for i in range(1_000)]}).session_id) == 1_000
    with pytest.raises(InputError, match="1,001 values; at most 1,000") as caught:
        Filter.parse({"session_id": [f"s{i}" for i in range(1_001)]})
    assert caught.value.field == "session_id"


def test_unknown_filters_name_the_valid_ones():
    with pytest.raises(InputError, match="unknown filter 'colour'.*node_type.*as_of") as caught:
        Filter.parse({"colour": "red", "node_type": "turn"})
    assert caught.value.field == "filters"
    with pytest.raises(InputError, match="filter names must be strings"):
        Filter.parse({1: "turn"})


@pytest.mark.parametrize("value", [["node_type"], "turn", 3])
def test_filters_must_be_a_dict_or_a_filter(value):
    with pytest.raises(InputError, match="must be a dict or a Filter") as caught:
        Filter.parse(value)
    assert caught.value.field == "filters"


def test_a_filter_built_directly_is_checked_too():
    assert Filter(node_type="turn", date_from=date(2023, 5, 1)) == Filter.parse({"node_type": ["turn"],
                                                                                 "date_from": "2023-05-01"})
    with pytest.raises(InputError, match="as_of"):
        Filter(as_of="June")


def test_a_filter_is_frozen_and_hashable():
    f = Filter(node_type="turn")
    with pytest.raises(FrozenInstanceError):
        f.node_type = ("session",)  # type: ignore[misc]
    assert hash(f) == hash(Filter.parse({"node_type": "turn"}))


# --- helpers ----------------------------------------------------------------------------------------


def test_narrowing_a_filter_without_a_range_gives_that_range():
    f = Filter(speaker="Ana").narrowed_to(date(2023, 5, 1), date(2023, 5, 31))
    assert (f.speaker, f.date_from, f.date_to) == (("Ana",), "2023-05-01", "2023-05-31")


def test_narrowing_intersects_an_existing_range():
    f = Filter(date_from="2023-05-10", date_to="2023-06-30").narrowed_to(date(2023, 5, 1), date(2023, 5, 31))
    assert (f.date_from, f.date_to) == ("2023-05-10", "2023-05-31")
    half_open = Filter(date_to="2023-05-20").narrowed_to("2023-05-01", "2023-05-31")
    assert (half_open.date_from, half_open.date_to) == ("2023-05-01", "2023-05-20")
    half_open = Filter(date_from="2023-05-20").narrowed_to("2023-05-01", "2023-05-31")
    assert (half_open.date_from, half_open.date_to) == ("2023-05-20", "2023-05-31")


def test_narrowing_keeps_as_of_and_the_other_fields():
    f = Filter(node_type="turn", as_of="2023-07-01").narrowed_to("2023-05-01", "2023-05-31")
    assert f.node_type == ("turn",) and f.as_of == "2023-07-01"


def test_only_restricts_to_node_types_instead_of_those_asked_for():
    f = Filter(node_type=["turn"], speaker="Ana", date_from="2023-05-01")
    sessions = f.only(node_type="session")
    assert sessions.node_type == ("session",) and sessions.speaker == ("Ana",) and sessions.date_from == "2023-05-01"
    assert Filter().only(node_type=[NodeType.TURN, NodeType.SESSION, "profile"]).node_type == \
        ("turn", "session", "profile")


def test_allows_node_type():
    assert Filter().allows_node_type("turn")
    assert Filter(speaker="Ana").allows_node_type("turn")
    assert Filter(node_type=["turn", "session"]).allows_node_type("turn")
    assert not Filter(node_type="session").allows_node_type("turn")


def test_with_replaces_fields_and_checks_them():
    f = Filter(node_type="turn")
    assert f.with_(as_of=date(2023, 6, 1)) == Filter(node_type="turn", as_of="2023-06-01")
    assert replace(f, speaker="Ana").speaker == ("Ana",)  # dataclasses.replace checks too
    with pytest.raises(InputError, match="unknown filter 'colour'"):
        f.with_(colour="red")
    with pytest.raises(InputError) as caught:
        f.with_(date_to="soon")
    assert caught.value.field == "date_to"


def test_restricted_names_the_fields_set_in_field_order():
    assert Filter(as_of="2023-06-01", speaker=[], node_type="turn").restricted == ("node_type", "speaker", "as_of")


# --- the public dict form ---------------------------------------------------------------------------------


def test_to_dict_gives_the_public_form_of_what_is_restricted():
    f = Filter.parse({"node_type": "turn", "speaker": [], "category": Category.SOCIAL,
                      "date_from": date(2023, 5, 1), "as_of": "2023-06-01T23:00-05:00"})
    assert f.to_dict() == {"node_type": ["turn"], "category": ["social"], "speaker": [],
                           "date_from": "2023-05-01", "as_of": "2023-06-02"}


@pytest.mark.parametrize("value", [
    {},
    {"node_type": "turn"},
    {"speaker": []},
    {"node_type": ["turn", "session"], "category": "episodic", "agent_id": "bot", "session_id": ["s1", "s2"],
     "speaker": "Ana", "date_from": "2023-05-01", "date_to": datetime(2023, 5, 31, 8), "as_of": date(2023, 6, 1)},
])
def test_to_dict_and_parse_round_trip(value):
    f = Filter.parse(value)
    assert Filter.parse(f.to_dict()) == f
    assert Filter.parse(f.to_dict()).to_dict() == f.to_dict()
