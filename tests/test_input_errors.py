"""Bad input to any public call is answered with a MemlaneError that says what was wrong, and
writes nothing; inputs past the documented limits (config `limits`) are refused the same way."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from memlane import Memory
from memlane.errors import InputError, MemlaneError

from _support import CHAT


def _state(memory: Memory) -> tuple:
    """Everything a refused call must leave as it was."""
    stats = memory.stats()
    records = [(r.id, r.text) for user in ("ana", "bo") for r in memory.get_all(user, limit=1000).records]
    return stats.memories, stats.users, records


@pytest.fixture
def filled(memory):
    memory.add(CHAT, user_id="ana", session_id="s1")
    memory.add("I keep bees on the roof.", user_id="bo")
    return memory


CASES = [
    # (call, args, kwargs, words the message must hold)
    ("get_all", ("ana",), {"limit": 0}, "limit"),
    ("get_all", ("ana",), {"limit": 1.5}, "limit"),
    ("get_all", ("ana",), {"limit": "5"}, "limit"),
    ("get_all", ("ana",), {"limit": True}, "limit"),
    ("get_all", ("ana",), {"limit": 10**9}, "limit"),
    ("get_all", ("ana",), {"cursor": "abc"}, "cursor"),
    ("get_all", ("ana",), {"cursor": str(2**63)}, "cursor"),
    ("get_all", ("ana",), {"cursor": 5}, "cursor"),
    ("get_all", ("ana",), {"filters": {"date_from": "2023-02-30"}}, "date_from"),
    ("get_all", ("ana",), {"filters": {"as_of": "2023-05-07xyz"}}, "as_of"),
    ("get_all", ("ana",), {"filters": {"session_id": {"a": 1}}}, "session_id"),
    ("get_all", ("ana",), {"filters": {"speaker": ["ok", 3]}}, "speaker"),
    ("add", (None,), {"user_id": "ana"}, "messages"),
    ("add", (42,), {"user_id": "ana"}, "messages"),
    ("add", (b"hello",), {"user_id": "ana"}, "decod"),
    ("add", ({"role": "user", "content": "hi"},), {"user_id": "ana"}, "messages"),
    ("add", ("hi",), {"user_id": "ana", "metadata": {"when": object()}}, "metadata"),
    ("add", ("hi",), {"user_id": "ana", "metadata": {"n": 10**5000}}, "metadata"),
    ("add", ("hi",), {"user_id": "ana", "metadata": {"x": float("nan")}}, "metadata"),
    ("add", ("hi",), {"user_id": "ana", "metadata": {1: "a"}}, "metadata"),
    ("add", ("hi",), {"user_id": "ana", "session_id": {"a": 1}}, "session_id"),
    ("add", ("hi",), {"user_id": "ana", "session_id": 5}, "session_id"),
    ("add", ("hi",), {"user_id": "ana", "agent_id": ["x"]}, "agent_id"),
    ("add", ("hi",), {"user_id": 7}, "user_id"),
    ("add", ("hi \ud800 there",), {"user_id": "ana"}, "surrogate"),
    ("add", ([{"role": "user", "content": "a\udfffb"}],), {"user_id": "ana"}, "surrogate"),
    ("add", ("hi",), {"user_id": "an\ud800a"}, "surrogate"),
    ("add", ("hi",), {"user_id": "ana", "category": 3}, "category"),
    ("add", ("x" * 100_001,), {"user_id": "ana"}, "max_text_chars"),
    ("add", ([{"role": "user", "content": "x"}] * 10_001,), {"user_id": "ana"}, "messages"),
    ("search", ("a" * 4_001,), {"user_id": "ana"}, "max_query_chars"),
    ("search", ("q\ud800",), {"user_id": "ana"}, "surrogate"),
    ("search", (None,), {"user_id": "ana"}, "query"),
    ("search", ("q",), {"user_id": "ana", "limit": 0}, "limit"),
    ("search", ("q",), {"user_id": "ana", "limit": 10**6}, "limit"),
    ("search", ("q",), {"user_id": "ana", "filters": ["node_type"]}, "filters"),
    ("search", ("q",), {"user_id": "ana", "filters": {"colour": "red"}}, "colour"),
    ("search", ("q",), {"user_id": "ana", "now": "yesterday-ish"}, "date"),
    ("search", ("q",), {"user_id": "ana", "as_of": "2023-05-07xyz"}, "date"),
    ("search", ("q",), {"user_id": "ana", "explain": "yes"}, "explain"),
    ("update", ("some-id", None), {"user_id": "ana"}, "text"),
    ("update", ("some-id", "x" * 100_001), {"user_id": "ana"}, "max_text_chars"),
    ("delete", (None,), {"user_id": "ana"}, "memory_id"),
    ("delete", ({"id": 1},), {"user_id": "ana"}, "memory_id"),
    ("get", ("x" * 10_000,), {"user_id": "ana"}, "memory_id"),
    ("history", (3,), {"user_id": "ana"}, "memory_id"),
    ("delete_all", (None,), {}, "user_id"),
]


@pytest.mark.parametrize("call, args, kwargs, words", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_bad_input_is_refused_by_name_and_writes_nothing(filled, call, args, kwargs, words):
    before = _state(filled)
    with pytest.raises(InputError) as raised:
        getattr(filled, call)(*args, **kwargs)
    assert words.lower() in str(raised.value).lower()
    assert _state(filled) == before


def test_deeply_nested_metadata_is_refused_without_exhausting_the_stack(filled):
    nested: dict = {}
    for _ in range(100_000):
        nested = {"a": nested}
    before = _state(filled)
    with pytest.raises(InputError, match="nested"):
        filled.add("hi", user_id="ana", metadata=nested)
    assert _state(filled) == before


def test_the_largest_allowed_inputs_are_accepted(filled):
    limits = filled.config.limits
    long_text = ("I went to the market yesterday. " * 4000)[: limits.max_text_chars]
    assert filled.add(long_text, user_id="ana")
    assert isinstance(filled.search("market " * (limits.max_query_chars // 7), user_id="ana"), list)
    assert filled.get_all("ana", limit=limits.max_page).records


# --- fuzz: any value in any argument ----------------------------------------------------------------------

any_text = st.text(st.characters(min_codepoint=0, max_codepoint=0x10FFFF, blacklist_categories=()), max_size=40)
scalar = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=True),
                   any_text, st.binary(max_size=20), st.just("ana"), st.just("1"), st.just(str(2**63)))
anything = st.recursive(scalar, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                        st.dictionaries(st.one_of(any_text, st.integers()), inner, max_size=4)),
                        max_leaves=12)
message = st.fixed_dictionaries({"role": st.one_of(st.sampled_from(["user", "assistant"]), anything),
                                 "content": st.one_of(any_text, anything)},
                                optional={"name": anything, "timestamp": anything, "metadata": anything})

CALLS = {
    "add": st.tuples(st.one_of(anything, any_text, st.lists(st.one_of(message, anything), max_size=4)),
                     st.fixed_dictionaries({"user_id": st.one_of(st.just("ana"), anything)},
                                           optional={"session_id": anything, "agent_id": anything, "metadata": anything,
                                                     "session_date": anything, "category": anything})),
    "search": st.tuples(st.one_of(any_text, anything),
                        st.fixed_dictionaries({"user_id": st.one_of(st.just("ana"), anything)},
                                              optional={"limit": anything, "filters": anything, "now": anything,
                                                        "as_of": anything, "explain": anything})),
    "get_all": st.tuples(st.one_of(st.just("ana"), anything),
                         st.fixed_dictionaries({}, optional={"limit": anything, "cursor": anything, "filters": anything})),
    "get": st.tuples(anything, st.fixed_dictionaries({"user_id": st.one_of(st.just("ana"), anything)})),
    "history": st.tuples(anything, st.fixed_dictionaries({"user_id": st.one_of(st.just("ana"), anything)})),
    "delete": st.tuples(anything, st.fixed_dictionaries({"user_id": st.one_of(st.just("bo"), anything)})),
    "update": st.tuples(st.tuples(anything, st.one_of(any_text, anything)),
                        st.fixed_dictionaries({"user_id": st.one_of(st.just("bo"), anything)})),
    "define_node": st.tuples(anything, st.just({})),
    "remove_node": st.tuples(anything, st.just({})),
    "consolidate": st.tuples(st.one_of(st.just("ana"), anything), st.just({})),
    "expired": st.tuples(st.one_of(st.just("ana"), anything), st.just({})),
    "purge": st.tuples(st.one_of(st.just("bo"), anything), st.just({})),
    "restore": st.tuples(anything, st.fixed_dictionaries({"user_id": st.one_of(st.just("ana"), anything)})),
    "apply_retention": st.tuples(st.just(None), st.fixed_dictionaries({}, optional={"now": anything, "user_id": anything})),
}


@settings(max_examples=400, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(st.sampled_from(sorted(CALLS)).flatmap(lambda name: st.tuples(st.just(name), CALLS[name])))
def test_any_argument_gives_a_result_or_a_memlane_error(filled, call):
    name, (first, kwargs) = call
    args = first if name == "update" else () if name == "apply_retention" else (first,)
    before = _state(filled)
    try:
        getattr(filled, name)(*args, **kwargs)
    except MemlaneError:
        assert _state(filled) == before  # a refused call wrote nothing
